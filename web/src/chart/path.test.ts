import { describe, expect, it } from 'vitest'
import { loneVertices, reduceMinMax, tracePath, vertexCount } from './path'
import { linearScale } from './scale'

function pairs(v: Float64Array): [number, number][] {
  const out: [number, number][] = []
  for (let i = 0; i < v.length; i += 2) out.push([v[i], v[i + 1]])
  return out
}

describe('reduceMinMax', () => {
  it('keeps every point when the data is sparse', () => {
    const xs = [0, 10, 20]
    const ys = [3, 2, 1]
    const x = linearScale([0, 20], [0, 200])
    const y = linearScale([0, 4], [400, 0])
    expect(pairs(reduceMinMax(xs, ys, 0, 3, x, y))).toEqual([
      [0, 100],
      [100, 200],
      [200, 300],
    ])
  })

  it('keeps a one-point spike in dense data at its true value', () => {
    const n = 100_000
    const xs = new Float64Array(n)
    const ys = new Float64Array(n)
    for (let i = 0; i < n; i++) {
      xs[i] = i
      ys[i] = 2 + 0.01 * Math.sin(i)
    }
    ys[54_321] = 9.5 // the spike
    ys[77_777] = 0.25 // and a dip
    const width = 300
    const x = linearScale([0, n - 1], [0, width])
    const y = linearScale([0, 10], [500, 0])
    const v = reduceMinMax(xs, ys, 0, n, x, y, 1)

    // At most four vertices per pixel column, not one per point.
    expect(vertexCount(v)).toBeLessThanOrEqual(4 * (width + 1))
    let top = Infinity
    let bottom = -Infinity
    for (let i = 1; i < v.length; i += 2) {
      top = Math.min(top, v[i])
      bottom = Math.max(bottom, v[i])
    }
    expect(top).toBe(y.map(9.5)) // 25
    expect(top).toBe(25)
    expect(bottom).toBe(y.map(0.25)) // 487.5
    // The spike sits in its own pixel column.
    const spikeColumn = Math.floor(x.map(54_321))
    const inColumn = pairs(v).filter(([px]) => Math.floor(px) === spikeColumn)
    expect(inColumn.some(([, py]) => py === 25)).toBe(true)
  })

  it('reduces per device pixel with columnsPerPx', () => {
    const n = 1000
    const xs = Array.from({ length: n }, (_, i) => i)
    const ys = Array.from({ length: n }, (_, i) => i % 2)
    const x = linearScale([0, n], [0, 100])
    const y = linearScale([0, 1], [100, 0])
    expect(vertexCount(reduceMinMax(xs, ys, 0, n, x, y, 1))).toBe(400) // 100 columns × 4
    expect(vertexCount(reduceMinMax(xs, ys, 0, n, x, y, 2))).toBe(800) // 200 device columns × 4
  })

  it('lifts the line over non-finite values and never emits them', () => {
    const xs = [0, 1, 2, 3, 4]
    const ys = [1, NaN, 2, Infinity, 3]
    const x = linearScale([0, 4], [0, 400])
    const y = linearScale([0, 4], [400, 0])
    const v = reduceMinMax(xs, ys, 0, 5, x, y)
    expect(pairs(v).map(([a, b]) => [Number.isNaN(a) ? 'break' : a, Number.isNaN(b) ? 'break' : b])).toEqual([
      [0, 300],
      ['break', 'break'],
      [200, 200],
      ['break', 'break'],
      [400, 100],
    ])
    const calls: string[] = []
    tracePath({ moveTo: (a, b) => calls.push(`M${a},${b}`), lineTo: (a, b) => calls.push(`L${a},${b}`) }, v)
    expect(calls).toEqual(['M0,300', 'M200,200', 'M400,100'])
  })

  it('draws a line through reduced columns', () => {
    const xs = [0, 0.2, 0.4, 5]
    const ys = [1, 3, 2, 0]
    const x = linearScale([0, 5], [0, 5])
    const y = linearScale([0, 4], [4, 0])
    const v = reduceMinMax(xs, ys, 0, 4, x, y)
    // Column 0 holds three points: first 1, min 1, max 3, last 2.
    expect(pairs(v)).toEqual([
      [0, 3],
      [0.2, 3],
      [0.2, 1],
      [0.4, 2],
      [5, 4],
    ])
    const calls: string[] = []
    tracePath({ moveTo: (a, b) => calls.push(`M${a},${b}`), lineTo: (a, b) => calls.push(`L${a},${b}`) }, v)
    expect(calls).toEqual(['M0,3', 'L0.2,3', 'L0.2,1', 'L0.4,2', 'L5,4'])
  })
})

describe('loneVertices', () => {
  it('finds the vertices no segment touches', () => {
    const x = linearScale([0, 5], [0, 500])
    const y = linearScale([0, 10], [100, 0])
    // 1 alone, then 3 → 4 a line, then 6 alone at the end.
    const v = reduceMinMax([0, 1, 2, 3, 4, 5], [1, NaN, 3, 4, NaN, 6], 0, 6, x, y)
    expect(Array.from(loneVertices(v))).toEqual([0, 90, 500, 40])
  })

  it('returns the only point of a one-point series', () => {
    const x = linearScale([1, 2], [40, 140])
    const y = linearScale([4.5, 5.5], [100, 0])
    expect(Array.from(loneVertices(reduceMinMax([1], [5], 0, 1, x, y)))).toEqual([40, 50])
  })

  it('returns nothing for a line or for no data', () => {
    const x = linearScale([0, 2], [0, 200])
    const y = linearScale([0, 4], [400, 0])
    expect(Array.from(loneVertices(reduceMinMax([0, 1, 2], [3, 2, 1], 0, 3, x, y)))).toEqual([])
    expect(Array.from(loneVertices(reduceMinMax([0, 1], [NaN, Infinity], 0, 2, x, y)))).toEqual([])
    expect(Array.from(loneVertices(new Float64Array(0)))).toEqual([])
  })
})
