// Path reduction: dense data becomes at most four vertices per pixel column (the first,
// minimum, maximum and last value that fall in it), so every spike keeps its true height
// and the cost of drawing depends on the width, not on the number of points. No sampling.

import type { LinearScale } from './scale'

/**
 * Reduce points `[start, end)` of a sorted series to line vertices in pixels.
 *
 * Returns a flat array `[px0, py0, px1, py1, …]`. A pair of NaN marks a break: the line
 * is lifted there (a non-finite y value, which is never drawn). `columnsPerPx` is the
 * number of pixel columns per CSS pixel (the devicePixelRatio), so the reduction works
 * at device resolution.
 */
export function reduceMinMax(
  xs: ArrayLike<number>,
  ys: ArrayLike<number>,
  start: number,
  end: number,
  xScale: LinearScale,
  yScale: LinearScale,
  columnsPerPx = 1,
): Float64Array {
  const out = new VertexBuffer(Math.min(Math.max(end - start, 0), 4096) * 2 + 8)
  let column = NaN
  let count = 0
  let firstPx = 0
  let lastPx = 0
  let firstY = 0
  let lastY = 0
  let minY = 0
  let maxY = 0

  const flush = () => {
    if (count === 0) return
    if (count === 1) {
      out.push(firstPx, yScale.map(firstY))
    } else {
      const midPx = (firstPx + lastPx) / 2
      out.push(firstPx, yScale.map(firstY))
      out.push(midPx, yScale.map(minY))
      out.push(midPx, yScale.map(maxY))
      out.push(lastPx, yScale.map(lastY))
    }
    count = 0
  }

  for (let i = start; i < end; i++) {
    const y = ys[i]
    if (!Number.isFinite(y)) {
      flush()
      column = NaN
      out.breakLine()
      continue
    }
    const px = xScale.map(xs[i])
    const c = Math.floor(px * columnsPerPx)
    if (c !== column || count === 0) {
      flush()
      column = c
      count = 1
      firstPx = lastPx = px
      firstY = lastY = minY = maxY = y
    } else {
      count++
      lastPx = px
      lastY = y
      if (y < minY) minY = y
      if (y > maxY) maxY = y
    }
  }
  flush()
  return out.result()
}

/** A growable Float64Array of vertex pairs. */
class VertexBuffer {
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
