// Scales and ticks: pure functions, no canvas.

import { formatCompact } from '../format'

/** A linear map from a data domain [d0, d1] to a pixel range [r0, r1]. */
export interface LinearScale {
  readonly domain: readonly [number, number]
  readonly range: readonly [number, number]
  /** Data value → pixel. */
  map(value: number): number
  /** Pixel → data value. */
  invert(px: number): number
}

/**
 * A linear scale. A degenerate domain (d0 === d1) maps every value to the middle of the
 * range rather than dividing by zero.
 */
export function linearScale(domain: readonly [number, number], range: readonly [number, number]): LinearScale {
  const [d0, d1] = domain
  const [r0, r1] = range
  const span = d1 - d0
  if (span === 0 || !Number.isFinite(span)) {
    const mid = (r0 + r1) / 2
    return { domain: [d0, d1], range: [r0, r1], map: () => mid, invert: () => d0 }
  }
  const k = (r1 - r0) / span
  return {
    domain: [d0, d1],
    range: [r0, r1],
    map: (value) => r0 + (value - d0) * k,
    invert: (px) => d0 + (px - r0) / k,
  }
}

/**
 * The "nice" step (1, 2 or 5 × 10^k) closest to `span / target`: the spacing of about
 * `target` ticks over `span`.
 */
export function niceStep(span: number, target = 5): number {
  if (!(span > 0) || !Number.isFinite(span) || !(target > 0)) return 1
  const raw = span / target
  const magnitude = Math.pow(10, Math.floor(Math.log10(raw)))
  const normalized = raw / magnitude
  let nice: number
  if (normalized < 1.5) nice = 1
  else if (normalized < 3) nice = 2
  else if (normalized < 7) nice = 5
  else nice = 10
  return nice * magnitude
}

/** Decimals needed to print multiples of `step` exactly: 0.2 → 1, 0.05 → 2, 5 → 0. */
export function stepDecimals(step: number): number {
  if (!(step > 0) || !Number.isFinite(step)) return 0
  return Math.max(0, -Math.floor(Math.log10(step) + 1e-9))
}

/** Ticks over [min, max]: their `step` and the multiples of it inside the interval. */
export interface Ticks {
  step: number
  values: number[]
}

/**
 * Nice ticks: the multiples of `niceStep(max - min, target)` that lie in [min, max],
 * rounded to the step's decimals so that 0.1 + 0.2 shows as 0.3.
 * niceTicks(0, 10, 5) → step 2, values [0, 2, 4, 6, 8, 10].
 */
export function niceTicks(min: number, max: number, target = 5): Ticks {
  if (!Number.isFinite(min) || !Number.isFinite(max) || max < min) return { step: 1, values: [] }
  if (max === min) return { step: 1, values: [min] }
  const step = niceStep(max - min, target)
  const decimals = stepDecimals(step)
  const epsilon = step * 1e-9
  const first = Math.ceil((min - epsilon) / step)
  const last = Math.floor((max + epsilon) / step)
  const values: number[] = []
  for (let i = first; i <= last; i++) {
    values.push(Number((i * step).toFixed(decimals)) + 0) // + 0 turns -0 into 0
  }
  return { step, values }
}

/**
 * The domain shown for data spanning [min, max]: padded by `pad` of the span on both
 * sides; a flat series gets ±10% of its value (or ±1 at 0) so that it sits mid-height.
 */
export function paddedDomain(min: number, max: number, pad = 0.05): [number, number] {
  if (max > min) {
    const margin = (max - min) * pad
    return [min - margin, max + margin]
  }
  const margin = min === 0 ? 1 : Math.abs(min) * 0.1
  return [min - margin, max + margin]
}

/** Magnitudes from which ticks are written in exponent notation ("2.5e296", "1.2e-9"). */
const EXPONENT_ABOVE = 1e15
const EXPONENT_BELOW = 1e-4

/**
 * A tick label: the value with the step's decimals; large round values in compact form
 * ("20k", "1.5M") when the step is at least 1000; huge or tiny values (beyond the SI
 * suffixes, or steps below 1e-4) in exponent notation with the digits the step needs
 * ("2.5e296" for step 5e295, "1.2e-9" for step 1e-10).
 */
export function formatTick(value: number, step: number): string {
  const abs = Math.abs(value)
  if (value !== 0 && Number.isFinite(value) && (abs >= EXPONENT_ABOVE || (step > 0 && step < EXPONENT_BELOW))) {
    const decimals = step > 0 ? Math.floor(Math.log10(abs) + 1e-9) - Math.floor(Math.log10(step) + 1e-9) : 2
    return exponent(value, Math.min(15, Math.max(0, decimals)))
  }
  if (step >= 1000 && abs >= 1000) return formatCompact(value)
  return value.toFixed(stepDecimals(step))
}

/** `value` as "m.mmme±k" with `decimals` mantissa decimals, without the "+": "1.5e296". */
function exponent(value: number, decimals: number): string {
  return value.toExponential(decimals).replace('e+', 'e')
}

/** A data→pixel map, linear or logarithmic (base 10). */
export interface Scale extends LinearScale {
  readonly log: boolean
}

/**
 * A log10 scale from a positive domain [d0, d1] to [r0, r1]. Values ≤ 0 map to NaN (the
 * caller leaves them out and counts them).
 */
export function logScale(domain: readonly [number, number], range: readonly [number, number]): Scale {
  const l0 = Math.log10(domain[0])
  const l1 = Math.log10(domain[1])
  const inner = linearScale([l0, l1], range)
  return {
    log: true,
    domain: [domain[0], domain[1]],
    range: [range[0], range[1]],
    map: (value) => (value > 0 ? inner.map(Math.log10(value)) : NaN),
    invert: (px) => Math.pow(10, inner.invert(px)),
  }
}

/** `linearScale` marked as such. */
export function linScale(domain: readonly [number, number], range: readonly [number, number]): Scale {
  return { ...linearScale(domain, range), log: false }
}

/**
 * Ticks of a log axis over [min, max] (both > 0): powers of ten when the domain spans at
 * least two decades, with 2 and 5 × 10^k added when that gives fewer than `target / 2`
 * ticks; inside about one decade, where powers of ten would leave one tick or none, the
 * linear nice ticks of the domain (a loss going from 4.2 to 1.5 reads better as 2, 3, 4).
 * `step` is the smallest gap between ticks (for label decimals).
 */
export function logTicks(min: number, max: number, target = 5): Ticks {
  if (!(min > 0) || !(max > min) || !Number.isFinite(max)) return niceTicks(min, max, target)
  const k0 = Math.floor(Math.log10(min))
  const k1 = Math.ceil(Math.log10(max))
  const inRange = (v: number) => v >= min * (1 - 1e-9) && v <= max * (1 + 1e-9)
  const decades: number[] = []
  for (let k = k0; k <= k1; k++) {
    const v = Number((10 ** k).toPrecision(12))
    if (inRange(v)) decades.push(v)
  }
  if (decades.length >= Math.max(2, target / 2)) {
    // Too many decades: keep every n-th.
    const every = Math.max(1, Math.ceil(decades.length / Math.max(target, 2)))
    const values = decades.filter((v) => Math.round(Math.log10(v)) % every === 0)
    return { step: values[0] ?? 1, values }
  }
  const values: number[] = []
  for (let k = k0; k <= k1; k++) {
    for (const m of [1, 2, 5]) {
      const v = Number((m * 10 ** k).toPrecision(12))
      if (inRange(v)) values.push(v)
    }
  }
  if (values.length >= 3) return { step: values[0], values }
  return niceTicks(min, max, target)
}

/** A tick label of a log axis: "0.001", "20", "1e-6", "1M", "1e296". */
export function formatLogTick(value: number): string {
  if (value >= EXPONENT_ABOVE) return exponent(value, 0)
  if (value >= 1000) return formatCompact(value)
  if (value >= 1e-4) return String(Number(value.toPrecision(6)))
  return value.toExponential(0).replace('e+', 'e')
}

/** Tick steps of a wall-clock axis, in seconds. */
const TIME_STEPS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400, 172800, 604800]

/**
 * Ticks of a wall-clock axis over [min, max] (seconds since the epoch): the smallest step of
 * `TIME_STEPS` giving at most `target` ticks, on multiples of the step in local time.
 */
export function timeTicks(min: number, max: number, target = 5): Ticks {
  if (!Number.isFinite(min) || !Number.isFinite(max) || max < min) return { step: 1, values: [] }
  if (max === min) return { step: 1, values: [min] }
  const span = max - min
  let step = TIME_STEPS[TIME_STEPS.length - 1]
  for (const s of TIME_STEPS) {
    if (span / s <= target) {
      step = s
      break
    }
  }
  if (span / step > target) step = Math.ceil(span / target / 86400) * 86400
  // Align to the local time zone (a 1-hour step falls on the hour in local time).
  const offset = -new Date(min * 1000).getTimezoneOffset() * 60
  const first = Math.ceil((min + offset) / step) * step - offset
  const values: number[] = []
  for (let v = first; v <= max + 1e-9; v += step) values.push(v)
  return { step, values }
}

/** A wall-clock tick label: "14:05" (steps of a minute and up), "14:05:30" below, "Nov 29" for days. */
export function formatTimeTick(epochSecs: number, step: number): string {
  const d = new Date(epochSecs * 1000)
  const pad = (n: number) => String(n).padStart(2, '0')
  if (step >= 86400) return d.toLocaleDateString('en', { month: 'short', day: 'numeric' })
  const hm = `${pad(d.getHours())}:${pad(d.getMinutes())}`
  return step >= 60 ? hm : `${hm}:${pad(d.getSeconds())}`
}

/**
 * The value at quantile `q` (0…1) of `values` (finite numbers), by selection: O(n) average.
 * Rank `q × (n − 1)`, rounded down (the "lower" method). Reorders `values`. NaN when empty.
 */
export function quantile(values: Float64Array, q: number): number {
  const n = values.length
  if (n === 0) return NaN
  const k = Math.min(n - 1, Math.max(0, Math.floor(q * (n - 1))))
  let lo = 0
  let hi = n - 1
  while (hi > lo) {
    // Median of three as the pivot.
    const mid = (lo + hi) >>> 1
    const a = values[lo]
    const b = values[mid]
    const c = values[hi]
    const pivot = a < b ? (b < c ? b : a < c ? c : a) : a < c ? a : b < c ? c : b
    let i = lo
    let j = hi
    while (i <= j) {
      while (values[i] < pivot) i++
      while (values[j] > pivot) j--
      if (i <= j) {
        const t = values[i]
        values[i] = values[j]
        values[j] = t
        i++
        j--
      }
    }
    if (k <= j) hi = j
    else if (k >= i) lo = i
    else return values[k]
  }
  return values[k]
}
