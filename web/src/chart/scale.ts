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

/**
 * A tick label: the value with the step's decimals; large round values in compact form
 * ("20k", "1.5M") when the step is at least 1000.
 */
export function formatTick(value: number, step: number): string {
  if (step >= 1000 && Math.abs(value) >= 1000) return formatCompact(value)
  return value.toFixed(stepDecimals(step))
}
