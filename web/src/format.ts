// Pure formatters for the figures of a run. They never return "NaN" or "Infinity": a
// missing or non-finite value is shown as DASH.

/** What is shown for a missing or non-finite figure. */
export const DASH = '—'

function finite(value: number | null | undefined): value is number {
  return typeof value === 'number' && Number.isFinite(value)
}

/** Group the digits of an integer string by thousands: "1234567" → "1,234,567". */
function groupThousands(digits: string): string {
  return digits.replace(/\B(?=(\d{3})+(?!\d))/g, ',')
}

/** An integer with thousands separators: 1234567 → "1,234,567" (rounded to an integer). */
export function formatInt(value: number | null | undefined): string {
  if (!finite(value)) return DASH
  const rounded = Math.round(value)
  const sign = rounded < 0 ? '-' : ''
  return sign + groupThousands(String(Math.abs(rounded)))
}

const COMPACT_UNITS: ReadonlyArray<[number, string]> = [
  [1e12, 'T'],
  [1e9, 'B'],
  [1e6, 'M'],
  [1e3, 'k'],
]

/**
 * A count in three significant digits with a unit: 1234567 → "1.23M", 12345 → "12.3k",
 * 100000000 → "100M", 999 → "999". Trailing zeros are dropped ("1.5M", "2M").
 */
export function formatCompact(value: number | null | undefined): string {
  if (!finite(value)) return DASH
  const abs = Math.abs(value)
  const sign = value < 0 ? '-' : ''
  if (abs < 1000) return sign + trimZeros(abs < 10 && !Number.isInteger(abs) ? abs.toFixed(2) : String(Math.round(abs)))
  for (let i = 0; i < COMPACT_UNITS.length; i++) {
    const [size, unit] = COMPACT_UNITS[i]
    if (abs >= size) {
      const scaled = abs / size
      const text = threeDigits(scaled)
      // 999,999 rounds to "1000k": move up to the next unit instead.
      if (Number(text) >= 1000 && i > 0) return sign + threeDigits(scaled / 1000) + COMPACT_UNITS[i - 1][1]
      return sign + text + unit
    }
  }
  return sign + String(abs)
}

/** `x` in [1, 1000) with three significant digits, trailing zeros dropped. */
function threeDigits(x: number): string {
  const decimals = x >= 100 ? 0 : x >= 10 ? 1 : 2
  return trimZeros(x.toFixed(decimals))
}

function trimZeros(text: string): string {
  return text.includes('.') ? text.replace(/\.?0+$/, '') : text
}

/** Tokens with separators: "1,234,567". */
export function formatTokens(value: number | null | undefined): string {
  return formatInt(value)
}

/**
 * A fraction in [0, 1] as a percent, rounded down so that 100.0% means done: one decimal
 * from 1% up (0.1234 → "12.3%", 0.99999 → "99.9%", 1 → "100.0%"), two below, so that the
 * start of a long run still moves (0.0005888 → "0.05%").
 */
export function formatPercent(fraction: number | null | undefined): string {
  if (!finite(fraction)) return DASH
  const clamped = Math.min(Math.max(fraction, 0), 1)
  const decimals = clamped < 0.01 ? 2 : 1
  const scale = Math.pow(10, decimals)
  const units = Math.floor(clamped * 100 * scale + 1e-9)
  return `${(units / scale).toFixed(decimals)}%`
}

/** The token counter: "1,234,567 / 100,000,000 tokens" (or "1,234,567 tokens" without budget). */
export function formatTokenCounter(tokens: number | null | undefined, total: number | null | undefined): string {
  if (!finite(total)) return `${formatInt(tokens)} tokens`
  return `${formatInt(tokens)} / ${formatInt(total)} tokens`
}

/**
 * A count with its noun, singular for exactly one: (1, "step") → "1 step",
 * (2, "step") → "2 steps", (1234, "eval") → "1,234 evals". `plural` defaults to noun + "s".
 */
export function formatCount(n: number | null | undefined, noun: string, plural = `${noun}s`): string {
  return `${formatInt(n)} ${finite(n) && Math.round(n) === 1 ? noun : plural}`
}

/** The step counter: "step 120 / 4,882" (or "step 120" without a total). */
export function formatStepCounter(step: number | null | undefined, total: number | null | undefined): string {
  if (!finite(total)) return `step ${formatInt(step)}`
  return `step ${formatInt(step)} / ${formatInt(total)}`
}

/**
 * Throughput: "12,345 tok/s" from 100 up to a million, "1.23M tok/s" above, "45.6 tok/s"
 * below 100.
 */
export function formatTokensPerSec(value: number | null | undefined): string {
  if (!finite(value) || value < 0) return DASH
  if (value >= 1e6) return `${formatCompact(value)} tok/s`
  if (value >= 100) return `${formatInt(value)} tok/s`
  return `${value.toFixed(1)} tok/s`
}

/** Milliseconds: "880 ms", "1,234 ms", "12.3 ms", "1.23 ms". */
export function formatMs(value: number | null | undefined): string {
  if (!finite(value) || value < 0) return DASH
  if (value >= 100) return `${formatInt(value)} ms`
  if (value >= 10) return `${value.toFixed(1)} ms`
  return `${value.toFixed(2)} ms`
}

function pad2(n: number): string {
  return n < 10 ? `0${n}` : String(n)
}

/**
 * A duration in whole seconds (rounded down): "45s", "3m 20s", "3m 05s", "1h 02m 03s",
 * "2d 03h 04m". Negative durations count as 0.
 */
export function formatDuration(secs: number | null | undefined): string {
  if (!finite(secs)) return DASH
  const total = Math.floor(Math.max(secs, 0))
  const days = Math.floor(total / 86400)
  const hours = Math.floor((total % 86400) / 3600)
  const minutes = Math.floor((total % 3600) / 60)
  const seconds = total % 60
  if (days > 0) return `${days}d ${pad2(hours)}h ${pad2(minutes)}m`
  if (hours > 0) return `${hours}h ${pad2(minutes)}m ${pad2(seconds)}s`
  if (minutes > 0) return `${minutes}m ${pad2(seconds)}s`
  return `${seconds}s`
}

/** What the summary's ETA fields hold (`eta_status` on the wire; see docs/metrics.md). */
export type EtaStatus = 'none' | 'estimating' | 'estimated' | 'paused' | 'finishing'

/** The ETA fields of a run summary. */
export interface EtaFields {
  eta_status: EtaStatus
  eta_secs: number | null
  eta_low_secs: number | null
  eta_high_secs: number | null
}

/** The ETA as the page shows it: the main text and, for an estimate, its range. */
export interface EtaDisplay {
  /** "estimating…", "3m 20s", "paused", "finishing". */
  text: string
  /** The 10th–90th percentile, "3m 02s – 3m 41s"; null when there is none. */
  range: string | null
}

/** Seconds left, rounded up so that "0s" is never shown while work remains. */
function formatSecsLeft(secs: number): string {
  return formatDuration(Math.ceil(secs))
}

/**
 * The ETA display for a summary: "estimating…" until the server has an estimate, then the
 * time left (rounded up) with its 10th–90th percentile range, "paused" (with the training
 * time left as its range line), "finishing" once the budget is reached, and null (show
 * nothing) when there is no ETA: no budget, stopping, or the run has ended.
 */
export function formatEta(fields: EtaFields | null | undefined): EtaDisplay | null {
  if (!fields) return null
  const eta = finite(fields.eta_secs) && fields.eta_secs >= 0 ? fields.eta_secs : null
  const low = fields.eta_low_secs
  const high = fields.eta_high_secs
  switch (fields.eta_status) {
    case 'estimating':
      return { text: 'estimating…', range: null }
    case 'finishing':
      return { text: 'finishing', range: null }
    case 'paused':
      return { text: 'paused', range: eta === null ? null : `${formatSecsLeft(eta)} of training left` }
    case 'estimated':
      if (eta === null) return { text: 'estimating…', range: null }
      return {
        text: formatSecsLeft(eta),
        range: finite(low) && finite(high) && low >= 0 && high >= low ? `${formatSecsLeft(low)} – ${formatSecsLeft(high)}` : null,
      }
    default:
      return null
  }
}

/** FLOP/s with an SI prefix in three significant digits: "166 GFLOP/s", "1.23 TFLOP/s". */
export function formatFlops(flopsPerSec: number | null | undefined): string {
  if (!finite(flopsPerSec) || flopsPerSec < 0) return DASH
  const prefixes = ['', 'k', 'M', 'G', 'T', 'P', 'E']
  let value = flopsPerSec
  let i = 0
  while (value >= 999.5 && i < prefixes.length - 1) {
    value /= 1000
    i += 1
  }
  return `${value >= 100 ? value.toFixed(0) : value.toPrecision(3)} ${prefixes[i]}FLOP/s`
}

/** MFU as the page shows it. */
export interface MfuDisplay {
  /** "4.8%", or DASH when unknown. */
  text: string
  /** Set when the MFU is above 100%, which means the peak is too low. */
  warning: string | null
}

/**
 * Model FLOPs utilization `modelFlopsPerSec / peakFlopsPerSec` as a percent with one
 * decimal ("4.8%"), two below 1% ("0.42%"). Above 100% the number is kept but flagged: the
 * peak is set too low.
 */
export function formatMfu(modelFlopsPerSec: number | null | undefined, peakFlopsPerSec: number | null | undefined): MfuDisplay {
  if (!finite(modelFlopsPerSec) || !finite(peakFlopsPerSec) || peakFlopsPerSec <= 0 || modelFlopsPerSec < 0) {
    return { text: DASH, warning: null }
  }
  const pct = (modelFlopsPerSec / peakFlopsPerSec) * 100
  const text = `${pct < 1 ? pct.toFixed(2) : pct.toFixed(1)}%`
  return { text, warning: pct > 100 ? 'above 100%: the peak is set too low' : null }
}

/**
 * Parse a peak typed by the user: a positive number of FLOP/s, plain ("312e12") or with an
 * SI prefix ("312T", "1.5 PFLOP/s", "166 GFLOP/s"). null for anything else.
 */
export function parsePeakFlops(text: string): number | null {
  const match = /^\s*([0-9]*\.?[0-9]+(?:e[+-]?[0-9]+)?)\s*([kMGTPE]?)\s*(?:FLOP\/s|FLOPS)?\s*$/i.exec(text)
  if (!match) return null
  const scale: Record<string, number> = { '': 1, K: 1e3, M: 1e6, G: 1e9, T: 1e12, P: 1e15, E: 1e18 }
  const value = Number(match[1]) * (scale[match[2].toUpperCase()] ?? 1)
  return Number.isFinite(value) && value > 0 ? value : null
}

const WEEKDAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat']
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec']

/**
 * A moment (seconds since the Unix epoch) as local clock time, 24-hour: "14:05:09" when it
 * falls on the same local day as `nowMs`, "Tue 14:05" within the next six days, and
 * "Dec 24 14:05" further away.
 */
export function formatClock(epochSecs: number | null | undefined, nowMs: number = Date.now()): string {
  if (!finite(epochSecs)) return DASH
  const at = new Date(epochSecs * 1000)
  if (Number.isNaN(at.getTime())) return DASH
  const now = new Date(nowMs)
  const hm = `${pad2(at.getHours())}:${pad2(at.getMinutes())}`
  const startOfDay = (d: Date) => new Date(d.getFullYear(), d.getMonth(), d.getDate()).getTime()
  const dayDiff = Math.round((startOfDay(at) - startOfDay(now)) / 86_400_000)
  if (dayDiff === 0) return `${hm}:${pad2(at.getSeconds())}`
  if (dayDiff > 0 && dayDiff < 7) return `${WEEKDAYS[at.getDay()]} ${hm}`
  return `${MONTHS[at.getMonth()]} ${at.getDate()} ${hm}`
}

/** A loss in nats per token: "2.3104" (four decimals). */
export function formatLoss(value: number | null | undefined): string {
  if (!finite(value)) return DASH
  return value.toFixed(4)
}

/**
 * A small or large float in four significant digits, in scientific notation outside
 * [0.01, 10000): 0.0029 → "2.900e-3", 0.61 → "0.6100", 12.5 → "12.50".
 */
export function formatFloat(value: number | null | undefined): string {
  if (!finite(value)) return DASH
  if (value === 0) return '0'
  const abs = Math.abs(value)
  if (abs < 1e-2 || abs >= 1e4) return value.toExponential(3).replace('e+', 'e')
  return value.toPrecision(4)
}

/** A learning rate: "2.90e-3" below 0.01, "0.0300" above. */
export function formatLr(value: number | null | undefined): string {
  if (!finite(value)) return DASH
  if (value === 0) return '0'
  if (Math.abs(value) < 0.01) return value.toExponential(2).replace('e+', 'e')
  return value.toPrecision(3)
}

/** Whether a float figure is present but not finite (NaN or ±Infinity). */
export function isNonFinite(value: number | null | undefined): boolean {
  return typeof value === 'number' && !Number.isFinite(value)
}
