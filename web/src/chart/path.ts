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
  const { series, xScale } = input
  const out = new VertexBuffer(4096)
  const [x0, x1] = xScale.domain
  const columns = Math.abs(xScale.range[1] - xScale.range[0]) * input.dpr
  for (const [s, e] of series.segments()) {
    // One point past each edge, so the line runs to the edge of the plot.
    const a = Math.max(s, series.lowerBound(input.axis, s, e, x0) - 1)
    const b = Math.min(e, series.upperBound(input.axis, s, e, x1) + 1)
    if (b <= a) continue
    out.breakLine()
    if (b - a <= 2 * columns) reduceRaw(input, a, b, out)
    else reduceColumns(input, a, b, out)
  }
  return out.result()
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
    out.push(xScale.map(series.xAt(axis, i)), yScale.map(v))
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

function reduceColumns(input: ReduceInput, a: number, b: number, out: VertexBuffer): void {
  const { series, column, axis, xScale, yScale, dpr } = input
  const log = yScale.log
  const xs = series.x(axis)
  // x in data units is the column's value × unit (time is stored in ms, shown in seconds).
  const unit = axis === 'time' ? 0.001 : 1
  const [d0, d1] = xScale.domain
  const [r0, r1] = xScale.range
  const k = (r1 - r0) / (d1 - d0)
  /** Device column of a stored x value. */
  const columnOf = (raw: number) => Math.floor((r0 + (raw * unit - d0) * k) * dpr)
  const breaks = new BreakCursor(column, log, a)
  let nextBreak = breaks.next(a)
  let i = a
  let step = 1
  while (i < b) {
    const c = columnOf(xs.get(i))
    // The first index past this device column: gallop from i, then bisect (on the same
    // arithmetic as columnOf, so a point is never counted in a neighbouring column).
    let lo = i + 1
    let hi = i + step
    while (hi < b && columnOf(xs.get(hi)) <= c) {
      lo = hi + 1
      hi = i + (step *= 2)
    }
    if (hi > b) hi = b
    while (lo < hi) {
      const m = (lo + hi) >>> 1
      if (columnOf(xs.get(m)) <= c) lo = m + 1
      else hi = m
    }
    const j = lo
    // Next column's gallop starts near this one's width.
    step = Math.max(1, (j - i) >>> 1)
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
            out.push(mid, yScale.map(low))
            out.push(mid, yScale.map(scratch.max))
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
    i = j
  }
}

/**
 * Vertices of the finite run [k, end) inside one column: first, min, max, last — or only
 * first and last when the min and max are those two (a monotone stretch, as a smooth curve
 * such as the EMA mostly is): the same pixels with half the vertices.
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
  const pxFirst = xScale.map(xs.get(k) * unit)
  const pyFirst = yScale.map(column.get(k))
  if (end - k === 1) {
    out.push(pxFirst, pyFirst)
    return
  }
  const pyLast = yScale.map(column.get(end - 1))
  const pxLast = xScale.map(xs.get(end - 1) * unit)
  column.range(k, end, scratch)
  const pyMin = yScale.map(yScale.log ? scratch.minPositive : scratch.min)
  const pyMax = yScale.map(scratch.max)
  // Pixel y grows downwards: the minimum is the lowest point on screen (largest y).
  const top = Math.min(pyFirst, pyLast)
  const bottom = Math.max(pyFirst, pyLast)
  out.push(pxFirst, pyFirst)
  if (!(pyMax >= top && pyMin <= bottom)) {
    out.push(mid, pyMin)
    out.push(mid, pyMax)
  }
  out.push(pxLast, pyLast)
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

  /** A break, unless the line is already lifted (or has not started). */
  breakLine(): void {
    if (this.used === 0 || Number.isNaN(this.data[this.used - 1])) return
    this.push(NaN, NaN)
  }

  result(): Float64Array {
    // Drop a trailing break.
    let used = this.used
    if (used >= 2 && Number.isNaN(this.data[used - 1])) used -= 2
    return this.data.slice(0, used)
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
