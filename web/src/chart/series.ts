// Columnar, growable series: one Float64Array per column, x sorted ascending.
//
// The arrays are mutated in place outside Vue's reactivity; whoever draws them is told
// explicitly (LossChart.invalidate()). `version` changes on every mutation so that caches
// (reduced paths, extents) can tell when they are stale.

/** Finite minimum and maximum of some values; `null` when there is no finite value. */
export interface Extent {
  min: number
  max: number
}

/** An (x, y) series stored as two growable Float64Arrays. */
export class XYSeries {
  /** x values (steps), ascending; only the first `length` entries are data. */
  x: Float64Array
  /** y values; NaN and ±Infinity are stored as they are and left out of ranges. */
  y: Float64Array
  /** Number of points. */
  length = 0
  /** Bumped on every change. */
  version = 0
  private yMinFinite = Infinity
  private yMaxFinite = -Infinity

  constructor(capacity = 1024) {
    const size = Math.max(1, Math.floor(capacity))
    this.x = new Float64Array(size)
    this.y = new Float64Array(size)
  }

  /** Append one point. `x` must not be below the last x (series stay sorted). */
  push(x: number, y: number): void {
    if (this.length === this.x.length) this.grow(this.length * 2)
    this.x[this.length] = x
    this.y[this.length] = y
    this.length++
    if (Number.isFinite(y)) {
      if (y < this.yMinFinite) this.yMinFinite = y
      if (y > this.yMaxFinite) this.yMaxFinite = y
    }
    this.version++
  }

  /** Remove every point (capacity is kept). */
  clear(): void {
    this.length = 0
    this.yMinFinite = Infinity
    this.yMaxFinite = -Infinity
    this.version++
  }

  /** The last x, or NaN when empty. */
  lastX(): number {
    return this.length > 0 ? this.x[this.length - 1] : NaN
  }

  /** The last y, or NaN when empty. */
  lastY(): number {
    return this.length > 0 ? this.y[this.length - 1] : NaN
  }

  /** Finite extent of all y values, kept up to date on push (O(1)). */
  yExtent(): Extent | null {
    return this.yMinFinite <= this.yMaxFinite ? { min: this.yMinFinite, max: this.yMaxFinite } : null
  }

  /** Extent of x (sorted, so first and last), or `null` when empty. */
  xExtent(): Extent | null {
    if (this.length === 0) return null
    return { min: this.x[0], max: this.x[this.length - 1] }
  }

  private grow(capacity: number): void {
    const x = new Float64Array(capacity)
    const y = new Float64Array(capacity)
    x.set(this.x.subarray(0, this.length))
    y.set(this.y.subarray(0, this.length))
    this.x = x
    this.y = y
  }
}

/** Finite min and max of `values[start..end)`; `null` when none is finite. */
export function finiteExtent(values: ArrayLike<number>, start = 0, end = values.length): Extent | null {
  let min = Infinity
  let max = -Infinity
  for (let i = start; i < end; i++) {
    const v = values[i]
    if (v < min) min = v // NaN compares false, so it never enters
    if (v > max) max = v
  }
  // ±Infinity would have entered above: drop them by rescanning only if needed.
  if (min === -Infinity || max === Infinity) {
    min = Infinity
    max = -Infinity
    for (let i = start; i < end; i++) {
      const v = values[i]
      if (!Number.isFinite(v)) continue
      if (v < min) min = v
      if (v > max) max = v
    }
  }
  return min <= max ? { min, max } : null
}

/** First index in sorted `xs[0..length)` whose value is >= `value` (binary search). */
export function lowerBound(xs: ArrayLike<number>, length: number, value: number): number {
  let lo = 0
  let hi = length
  while (lo < hi) {
    const mid = (lo + hi) >>> 1
    if (xs[mid] < value) lo = mid + 1
    else hi = mid
  }
  return lo
}

/** First index in sorted `xs[0..length)` whose value is > `value` (binary search). */
export function upperBound(xs: ArrayLike<number>, length: number, value: number): number {
  let lo = 0
  let hi = length
  while (lo < hi) {
    const mid = (lo + hi) >>> 1
    if (xs[mid] <= value) lo = mid + 1
    else hi = mid
  }
  return lo
}
