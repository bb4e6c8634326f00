// Path reduction: the points of a series that fall in the visible window become at most
// four vertices per device-pixel column — the first, minimum, maximum and last value in it
// (the "M4" reduction) — so every spike keeps its true height at every zoom, and the cost
// of a draw depends on the width in pixels, not on the number of points. Minima and maxima
// come from the column's pyramid (ValueColumn.range, O(log N) per column); nothing is sampled.
//
// Breaks: a non-finite value (and, on a log axis, a value ≤ 0) lifts the pen, and so does a
// restart (a new segment). A finite run with nothing to connect to on either side becomes a
// lone vertex, which the chart draws as a dot, so a single point between two NaNs shows.

import type { Scale } from './scale'
import type { IndexList, PointSeries, RangeList, RangeResult, ValueColumn, XAxisKind } from './series'
import { emptyRange } from './series'

/** What to reduce: one value column of a series, on one x axis, through two scales. */
export interface ReduceInput {
  series: PointSeries
  column: ValueColumn
  axis: XAxisKind
  xScale: Scale
  yScale: Scale
  /** Device pixels per CSS pixel: columns are device pixels wide. */
  dpr: number
}

/**
 * At most this many finite runs are drawn apart inside one pixel column; past it the rest of
 * the column is one vertical bar from its minimum to its maximum (pixel-exact in height; it
 * only joins runs that are less than a pixel apart). Keeps a column O(log N) with a million
 * NaNs in it.
 */
export const MAX_RUNS_PER_COLUMN = 4

/**
 * Reduce the visible part of a series to line vertices in CSS pixels: flat
 * `[px0, py0, px1, py1, …]` with a NaN pair where the line breaks.
 *
 * With at most two points per device column the points themselves are the vertices;
 * otherwise each column gives its first, min, max and last value (M4).
 */
export function reduceSeries(input: ReduceInput): Float64Array {
  return new PathCache().reduce(input)
}

/**
 * The reduction of one series, kept between draws. While the x scale stays the same and
 * points are only appended, a redraw recomputes only the last pixel column and the new
 * ones (O(new points + new columns × log N)); the vertices are kept with their data values
 * and mapped through the y scale at each draw (O(vertices)), so a change of the y range
 * costs no reduction either.
 */
export class PathCache {
  private key = ''
  private rewrites = -1
  private segments = 0
  /** Vertices [px, value, …] (NaN px: a break). */
  private out = new VertexBuffer(4096)
  /** Where the last column of the last segment starts (index, offset in `out`), or null. */
  private tail: { start: number; index: number; offset: number } | null = null
  /** Columns recomputed by the last reduce() (for tests and the benchmark). */
  lastColumns = 0

  reduce(input: ReduceInput): Float64Array {
    const { series, xScale, yScale, axis } = input
    const log = yScale.log
    const key = `${axis}|${xScale.domain[0]}|${xScale.domain[1]}|${xScale.range[0]}|${xScale.range[1]}|${input.dpr}|${log}`
    const segments = series.segments()
    const [x0, x1] = xScale.domain
    const columns = Math.abs(xScale.range[1] - xScale.range[0]) * input.dpr
    this.lastColumns = 0
    const tail = this.tail
    const [s, e] = segments[segments.length - 1] ?? [0, 0]
    if (
      tail &&
      key === this.key &&
      this.rewrites === series.rewrites &&
      segments.length === this.segments &&
      tail.start === s
    ) {
      // Only appended since: redo the last column onwards.
      const b = Math.min(e, series.upperBound(axis, s, e, x1) + 1)
      this.out.truncate(tail.offset)
      this.tail = { start: s, index: tail.index, offset: tail.offset }
      this.lastColumns = reduceColumns(input, tail.index, b, this.out, this.tail)
      return this.out.mapped(yScale)
    }
    this.key = key
    this.rewrites = series.rewrites
    this.segments = segments.length
    this.out = new VertexBuffer(Math.ceil(columns) * 8 + 64)
    this.tail = null
    for (let k = 0; k < segments.length; k++) {
      const [s, e] = segments[k]
      // One point past each edge, so the line runs to the edge of the plot.
      const a = Math.max(s, series.lowerBound(axis, s, e, x0) - 1)
      const b = Math.min(e, series.upperBound(axis, s, e, x1) + 1)
      if (b <= a) continue
      this.out.breakLine()
      if (b - a <= 2 * columns) reduceRaw(input, a, b, this.out)
      else {
        const tail = k === segments.length - 1 ? { start: s, index: a, offset: this.out.length() } : null
        this.lastColumns += reduceColumns(input, a, b, this.out, tail)
        this.tail = tail
      }
    }
    return this.out.mapped(yScale)
  }
}

/** Whether value `v` is drawn on this y scale. */
function drawable(v: number, log: boolean): boolean {
  return Number.isFinite(v) && (!log || v > 0)
}

function reduceRaw(input: ReduceInput, a: number, b: number, out: VertexBuffer): void {
  const { series, column, axis, xScale, yScale } = input
  const log = yScale.log
  for (let i = a; i < b; i++) {
    const v = column.get(i)
    if (!drawable(v, log)) {
      out.breakLine()
      continue
    }
    out.push(xScale.map(series.xAt(axis, i)), v)
  }
}

/**
 * Finds the break indices (non-finite values; non-positive ones too on a log axis) at or
 * after an index, moving forward only.
 */
export class BreakCursor {
  private readonly lists: IndexList[]
  private readonly pos: number[]
  private readonly missing: RangeList | null

  /** Breaks of `column`: its non-finite and missing values; on a log axis also those ≤ 0. */
  constructor(column: ValueColumn, log: boolean, from: number, withMissing = true) {
    this.lists = log ? [column.nonFinite, column.nonPositive] : [column.nonFinite]
    this.pos = this.lists.map((l) => l.lowerBound(from))
    this.missing = withMissing && column.missing.count > 0 ? column.missing : null
  }

  /** The first break index >= i (Infinity when none). */
  next(i: number): number {
    let best = Infinity
    if (this.missing) {
      const m = this.missing
      const p = m.seek(i)
      if (p < m.starts.length) best = Math.max(i, m.starts[p])
    }
    for (let k = 0; k < this.lists.length; k++) {
      const l = this.lists[k]
      const p = this.seek(k, i)
      if (p < l.length && l.data[p] < best) best = l.data[p]
    }
    return best
  }

  /** Position of list k's first entry >= i (usually a step forward; back after a skip). */
  private seek(k: number, i: number): number {
    const l = this.lists[k]
    let p = this.pos[k]
    if (p > 0 && l.data[p - 1] >= i) p = lowerBoundFrom(l.data, 0, p, i)
    else if (p < l.length && l.data[p] < i) p = lowerBoundFrom(l.data, p, l.length, i)
    this.pos[k] = p
    return p
  }

  /** The first index >= i that is not a break (skips a run of consecutive breaks in O(log N)). */
  skip(i: number): number {
    for (;;) {
      const before = i
      for (let k = 0; k < this.lists.length; k++) {
        const l = this.lists[k]
        const p = this.seek(k, i)
        if (p < l.length && l.data[p] === i) {
          // Entries p, p+1, … are consecutive while data[q] − q stays data[p] − p.
          const key = l.data[p] - p
          let lo = p
          let hi = l.length
          while (lo < hi) {
            const mid = (lo + hi) >>> 1
            if (l.data[mid] - mid <= key) lo = mid + 1
            else hi = mid
          }
          i = l.data[lo - 1] + 1
          this.pos[k] = lo
        }
      }
      if (this.missing) {
        const m = this.missing
        const p = m.seek(i)
        if (p < m.starts.length && m.starts[p] <= i) i = m.ends[p]
      }
      if (i === before) return i
    }
  }
}

function lowerBoundFrom(data: Uint32Array, lo: number, hi: number, value: number): number {
  while (lo < hi) {
    const mid = (lo + hi) >>> 1
    if (data[mid] < value) lo = mid + 1
    else hi = mid
  }
  return lo
}

const scratch: RangeResult = emptyRange()

/**
 * The start index of every non-empty device column of points [a, b), then b: column k holds
 * points [starts[k], starts[k + 1]) and is device column `cols[k]`. A column's end is found
 * by search on the x column (arithmetic for regular steps) and checked with the very
 * arithmetic that places points in columns, so no point is counted in a neighbour.
 * Cached for the last call, so the raw loss and its EMA (same x) share the work.
 */
function columnStarts(input: ReduceInput, a: number, b: number): { starts: Int32Array; cols: Int32Array; count: number } {
  const { series, axis, xScale, dpr } = input
  const key = `${axis}|${xScale.domain[0]}|${xScale.domain[1]}|${xScale.range[0]}|${xScale.range[1]}|${dpr}|${a}|${b}`
  if (boundsCache && boundsCache.series === series && boundsCache.version === series.version && boundsCache.key === key) return boundsCache
  const xs = series.x(axis)
  const unit = axis === 'time' ? 0.001 : 1
  const [d0, d1] = xScale.domain
  const [r0, r1] = xScale.range
  const k = (r1 - r0) / (d1 - d0)
  const columnOf = (raw: number) => Math.floor((r0 + (raw * unit - d0) * k) * dpr)
  const rawAt = (c: number) => (d0 + (c / dpr - r0) / k) / unit
  const capacity = Math.min(b - a, Math.ceil(Math.abs(r1 - r0) * dpr) + 4) + 1
  let starts = new Int32Array(capacity)
  let cols = new Int32Array(capacity)
  let count = 0
  let i = a
  while (i < b) {
    const c = columnOf(xs.get(i))
    let j = xs.lowerBound(rawAt(c + 1), i + 1, b)
    while (j > i + 1 && columnOf(xs.get(j - 1)) > c) j--
    while (j < b && columnOf(xs.get(j)) <= c) j++
    if (count + 1 >= starts.length) {
      const grow = (arr: Int32Array) => {
        const next = new Int32Array(arr.length * 2)
        next.set(arr)
        return next
      }
      starts = grow(starts)
      cols = grow(cols)
    }
    starts[count] = i
    cols[count] = c
    count++
    i = j
  }
  starts[count] = b
  boundsCache = { series, version: series.version, key, starts, cols, count }
  return boundsCache
}

let boundsCache: { series: PointSeries; version: number; key: string; starts: Int32Array; cols: Int32Array; count: number } | null = null

/**
 * Column-mode reduction of points [a, b) into `out`; records in `tail` where the last
 * column starts. Returns the number of columns.
 */
function reduceColumns(
  input: ReduceInput,
  a: number,
  b: number,
  out: VertexBuffer,
  tail: { index: number; offset: number } | null,
): number {
  const { series, column, axis, yScale, dpr } = input
  const log = yScale.log
  const xs = series.x(axis)
  const unit = axis === 'time' ? 0.001 : 1
  const breaks = new BreakCursor(column, log, a)
  let nextBreak = breaks.next(a)
  const { starts, cols, count } = columnStarts(input, a, b)
  for (let n = 0; n < count; n++) {
    const i = starts[n]
    const j = starts[n + 1]
    const c = cols[n]
    if (tail && n === count - 1) {
      tail.index = i
      tail.offset = out.length()
    }
    const mid = (c + 0.5) / dpr
    if (nextBreak >= j) {
      emitRun(input, xs, unit, i, j, mid, out)
    } else {
      let p = i
      let runs = 0
      while (p < j) {
        if (nextBreak < p) nextBreak = breaks.next(p)
        if (nextBreak === p) {
          out.breakLine()
          p = Math.min(j, breaks.skip(p))
          nextBreak = breaks.next(p)
          continue
        }
        if (++runs > MAX_RUNS_PER_COLUMN) {
          // The rest of the column as one bar (its drawable min to max), apart from the rest.
          column.range(p, j, scratch)
          const low = log ? scratch.minPositive : scratch.min
          if (low <= scratch.max) {
            out.breakLine()
            out.push(mid, low)
            out.push(mid, scratch.max)
            out.breakLine()
          }
          break
        }
        const end = Math.min(j, nextBreak)
        emitRun(input, xs, unit, p, end, mid, out)
        p = end
      }
      if (nextBreak < j) nextBreak = breaks.next(j)
    }
  }
  return count
}

/**
 * Vertices of the finite run [k, end) inside one column, as [px, value]: first, min, max,
 * last — or only first and last when the min and max are those two (a monotone stretch,
 * as a smooth curve such as the EMA mostly is): the same pixels with half the vertices.
 */
function emitRun(
  input: ReduceInput,
  xs: { get(i: number): number },
  unit: number,
  k: number,
  end: number,
  mid: number,
  out: VertexBuffer,
): void {
  const { column, xScale, yScale } = input
  const first = column.get(k)
  const pxFirst = xScale.map(xs.get(k) * unit)
  if (end - k === 1) {
    out.push(pxFirst, first)
    return
  }
  const last = column.get(end - 1)
  column.range(k, end, scratch)
  const min = yScale.log ? scratch.minPositive : scratch.min
  const max = scratch.max
  out.push(pxFirst, first)
  if (min < Math.min(first, last) || max > Math.max(first, last)) {
    out.push(mid, min)
    out.push(mid, max)
  }
  out.push(xScale.map(xs.get(end - 1) * unit), last)
}

/** A growable Float64Array of vertex pairs, NaN pairs marking breaks. */
export class VertexBuffer {
  private data: Float64Array
  private used = 0

  constructor(capacity: number) {
    this.data = new Float64Array(Math.max(capacity, 8))
  }

  push(x: number, y: number): void {
    if (this.used + 2 > this.data.length) {
      const next = new Float64Array(this.data.length * 2)
      next.set(this.data)
      this.data = next
    }
    this.data[this.used++] = x
    this.data[this.used++] = y
  }

  /** Number of doubles held. */
  length(): number {
    return this.used
  }

  /** Drop everything from offset `used` on. */
  truncate(used: number): void {
    this.used = Math.min(this.used, used)
  }

  /**
   * A copy with the second of each pair mapped through `scale` (data value → pixel y),
   * without a trailing break.
   */
  mapped(scale: { map(v: number): number }): Float64Array {
    let used = this.used
    if (used >= 2 && Number.isNaN(this.data[used - 2])) used -= 2
    const out = new Float64Array(used)
    const d = this.data
    for (let i = 0; i < used; i += 2) {
      out[i] = d[i]
      out[i + 1] = Number.isNaN(d[i]) ? NaN : scale.map(d[i + 1])
    }
    return out
  }

  /** A break, unless the line is already lifted (or has not started). */
  breakLine(): void {
    if (this.used === 0 || Number.isNaN(this.data[this.used - 1])) return
    this.push(NaN, NaN)
  }
}

/** Number of vertices in a reduced path (break markers excluded). */
export function vertexCount(vertices: Float64Array): number {
  let n = 0
  for (let i = 0; i < vertices.length; i += 2) if (!Number.isNaN(vertices[i])) n++
  return n
}

/**
 * The vertices that no line segment touches: a single finite value between breaks (or at
 * either end), such as the only point of a series. `tracePath` gives them a moveTo and
 * nothing else, so they would not show; draw them as dots. Returns flat `[px, py, …]`.
 */
export function loneVertices(vertices: Float64Array): Float64Array {
  const out: number[] = []
  const n = vertices.length
  for (let i = 0; i < n; i += 2) {
    if (Number.isNaN(vertices[i])) continue
    const before = i >= 2 && !Number.isNaN(vertices[i - 2])
    const after = i + 2 < n && !Number.isNaN(vertices[i + 2])
    if (!before && !after) out.push(vertices[i], vertices[i + 1])
  }
  return Float64Array.from(out)
}

/**
 * Trace reduced vertices into `path` (a CanvasPath such as Path2D or a 2D context):
 * moveTo after each break, lineTo otherwise.
 */
export function tracePath(path: Pick<CanvasPath, 'moveTo' | 'lineTo'>, vertices: Float64Array): void {
  let pen = false
  for (let i = 0; i < vertices.length; i += 2) {
    const x = vertices[i]
    const y = vertices[i + 1]
    if (Number.isNaN(x)) {
      pen = false
      continue
    }
    if (pen) path.lineTo(x, y)
    else {
      path.moveTo(x, y)
      pen = true
    }
  }
}
