import { describe, expect, it } from 'vitest'
import { MAX_RUNS_PER_COLUMN, PathCache, loneVertices, reduceSeries, tracePath, vertexCount } from './path'
import { linScale, logScale, type Scale } from './scale'
import { PointSeries } from './series'
import { rng } from './random'

function pairs(v: Float64Array): [number, number][] {
  const out: [number, number][] = []
  for (let i = 0; i < v.length; i += 2) out.push([v[i], v[i + 1]])
  return out
}

function series(ys: number[], steps?: number[]): PointSeries {
  const s = new PointSeries({ values: ['loss'] })
  ys.forEach((y, i) => s.push({ step: steps ? steps[i] : i, tokens: NaN, timeSecs: NaN, values: { loss: y } }))
  return s
}

function reduce(s: PointSeries, xScale: Scale, yScale: Scale, dpr = 1) {
  return reduceSeries({ series: s, column: s.column('loss'), axis: 'step', xScale, yScale, dpr })
}

/** Random values with NaN, ±Infinity, zeros, negatives and spikes, float32-exact. */
function nasty(n: number, random: () => number): number[] {
  const out: number[] = []
  for (let i = 0; i < n; i++) {
    const u = random()
    if (u < 0.01) out.push(NaN)
    else if (u < 0.015) out.push(Infinity)
    else if (u < 0.02) out.push(-Infinity)
    else if (u < 0.03) out.push(0)
    else if (u < 0.05) out.push(Math.fround(-0.01 - random() * 3))
    else if (u < 0.052) out.push(Math.fround(50 + random() * 50))
    else out.push(Math.fround(0.5 + random() * 3))
  }
  // A run of NaNs longer than a column, and an isolated point between two NaNs.
  for (let i = 1000; i < 1600; i++) out[i] = NaN
  out[2000] = NaN
  out[2001] = 1.25
  out[2002] = NaN
  return out
}

/**
 * The brute-force truth: for every device column, the pixel y of the smallest and the
 * largest drawable value of the points whose x falls in it.
 */
function bruteColumns(ys: number[], xScale: Scale, yScale: Scale, dpr: number) {
  const cols = new Map<number, { lo: number; hi: number }>()
  const [x0, x1] = xScale.domain
  for (let i = 0; i < ys.length; i++) {
    const v = ys[i]
    if (i < x0 || i > x1 || !Number.isFinite(v) || (yScale.log && v <= 0)) continue
    const c = Math.floor(xScale.map(i) * dpr)
    const py = yScale.map(v)
    const e = cols.get(c)
    if (!e) cols.set(c, { lo: py, hi: py })
    else {
      e.lo = Math.min(e.lo, py)
      e.hi = Math.max(e.hi, py)
    }
  }
  return cols
}

describe('reduceSeries against a brute-force reference', () => {
  const random = rng(42)
  const n = 60_000
  const ys = nasty(n, random)
  const s = series(ys)

  for (const log of [false, true]) {
    for (const dpr of [1, 2]) {
      it(`gives every pixel column its true min and max (${log ? 'log' : 'linear'} y, dpr ${dpr}, 40 windows)`, () => {
        const failures: string[] = []
        for (let w = 0; w < 40; w++) {
          // Windows from the whole run down to a few points.
          const width = w === 0 ? n : Math.max(3, Math.floor(n * Math.pow(random(), 3)))
          const x0 = w === 0 ? 0 : random() * (n - width)
          const xScale = linScale([x0, x0 + width], [40, 40 + 300 + Math.floor(random() * 900)])
          const yScale = log ? logScale([0.01, 200], [400, 10]) : linScale([-5, 110], [400, 10])
          const v = reduce(s, xScale, yScale, dpr)
          const truth = bruteColumns(ys, xScale, yScale, dpr)
          // Vertices per column, from the reduced path (inside the window only).
          const got = new Map<number, { lo: number; hi: number }>()
          for (const [px, py] of pairs(v)) {
            if (Number.isNaN(px)) continue
            if (!Number.isFinite(py)) failures.push(`window ${w}: vertex at px ${px} has y ${py}`)
            const c = Math.floor(px * dpr + 1e-9)
            const x = xScale.invert(px)
            if (x < x0 - 1e-6 || x > x0 + width + 1e-6) continue // the points just past each edge
            const e = got.get(c)
            if (!e) got.set(c, { lo: py, hi: py })
            else {
              e.lo = Math.min(e.lo, py)
              e.hi = Math.max(e.hi, py)
            }
          }
          // Every column with data is drawn, exactly from its true min to its true max.
          for (const [c, t] of truth) {
            if (!got.has(c)) failures.push(`window ${w}: column ${c} has data but no vertex`)
          }
          for (const [c, g] of got) {
            const t = truth.get(c)
            if (!t) continue
            if (Math.abs(g.lo - t.lo) > 1e-6 || Math.abs(g.hi - t.hi) > 1e-6) failures.push(`window ${w}: column ${c} drawn ${g.lo}…${g.hi}, true ${t.lo}…${t.hi}`)
          }
          // The extremes of the window are exact: the spikes are at their true height.
          const all = [...truth.values()]
          const gotAll = [...got.values()]
          if (all.length > 0) {
            expect(Math.min(...gotAll.map((g) => g.lo))).toBeCloseTo(Math.min(...all.map((t) => t.lo)), 6)
            expect(Math.max(...gotAll.map((g) => g.hi))).toBeCloseTo(Math.max(...all.map((t) => t.hi)), 6)
          }
          // Bounded by the width, not by the number of points.
          expect(vertexCount(v)).toBeLessThanOrEqual((4 * MAX_RUNS_PER_COLUMN + 2) * (xScale.range[1] - xScale.range[0] + 2) * dpr + 8)
        }
        expect(failures.slice(0, 10)).toEqual([])
      }, 60_000)
    }
  }

  it('keeps a single point between two NaNs as a lone vertex, at any zoom', () => {
    for (const width of [n, 5000, 20]) {
      const xScale = linScale([2001 - width / 2, 2001 + width / 2], [0, 1000])
      const yScale = linScale([-5, 110], [400, 10])
      const lone = pairs(loneVertices(reduce(s, xScale, yScale)))
      expect(lone).toContainEqual([xScale.map(2001), yScale.map(1.25)])
    }
  })
})

describe('PathCache', () => {
  it('gives the same vertices appending batch by batch as reducing from scratch', () => {
    const random = rng(3)
    const ys = nasty(30_000, random)
    const s = new PointSeries({ values: ['loss'] })
    const cache = new PathCache()
    const xScale = linScale([0, 40_000], [30, 630])
    let step = 0
    let recomputed = 0
    for (const log of [false, true]) {
      const yScale = log ? logScale([0.01, 200], [400, 10]) : linScale([-5, 110], [400, 10])
      for (let n = 0; n < 15_000; ) {
        const batch = 1 + Math.floor(random() * 700)
        for (let k = 0; k < batch && n < 15_000; k++, n++) {
          // A restart (step back) now and then.
          step = random() < 0.0005 ? Math.max(0, step - 3000) : step + 1
          s.push({ step, tokens: NaN, timeSecs: NaN, values: { loss: ys[s.length] } })
        }
        const input = { series: s, column: s.column('loss'), axis: 'step' as const, xScale, yScale, dpr: 1 }
        const got = cache.reduce(input)
        recomputed += cache.lastColumns
        expect(Array.from(got)).toEqual(Array.from(reduceSeries(input)))
      }
    }
    // Appending reduced a few columns per batch, not all of them.
    expect(recomputed).toBeLessThan(15 * 600)
  })
})

describe('reduceSeries', () => {
  it('keeps every point when the data is sparse', () => {
    const s = series([3, 2, 1], [0, 10, 20])
    const x = linScale([0, 20], [0, 200])
    const y = linScale([0, 4], [400, 0])
    expect(pairs(reduce(s, x, y))).toEqual([
      [0, 100],
      [100, 200],
      [200, 300],
    ])
  })

  it('keeps a one-point spike in a million points at its true value', () => {
    const n = 1_000_000
    const ys = Array.from({ length: n }, (_, i) => Math.fround(2 + 0.01 * Math.sin(i)))
    ys[654_321] = 9
    const s = series(ys)
    const x = linScale([0, n - 1], [0, 1200])
    const y = linScale([0, 10], [400, 0])
    const v = pairs(reduce(s, x, y))
    expect(v.length).toBeLessThanOrEqual(4 * 1201)
    const top = Math.min(...v.map(([, py]) => py))
    expect(top).toBeCloseTo(y.map(9), 9)
    const at = v.find(([, py]) => py === top)!
    expect(Math.floor(at[0])).toBe(Math.floor(x.map(654_321)))
  })

  it('breaks the line at a restart instead of joining back (no zig-zag)', () => {
    const s = series([5, 4, 3, 2, 3.5, 3], [1, 2, 3, 4, 2, 3])
    const x = linScale([1, 4], [0, 300])
    const y = linScale([0, 10], [100, 0])
    expect(pairs(reduce(s, x, y))).toEqual([
      [0, 50],
      [100, 60],
      [200, 70],
      [300, 80],
      [NaN, NaN],
      [100, 65],
      [200, 70],
    ])
  })

  it('leaves out values ≤ 0 on a log axis, breaking the line there', () => {
    const s = series([1, 10, 0, 100, -1, 1000], [0, 1, 2, 3, 4, 5])
    const x = linScale([0, 5], [0, 500])
    const y = logScale([1, 1000], [300, 0])
    const v = pairs(reduce(s, x, y))
    expect(v).toEqual([
      [0, 300],
      [100, 200],
      [NaN, NaN],
      [300, 100],
      [NaN, NaN],
      [500, 0],
    ])
    expect(pairs(loneVertices(reduce(s, x, y)))).toEqual([
      [300, 100],
      [500, 0],
    ])
  })

  it('draws a line through the vertices', () => {
    const calls: string[] = []
    const path = { moveTo: (x: number, y: number) => calls.push(`M${x},${y}`), lineTo: (x: number, y: number) => calls.push(`L${x},${y}`) }
    tracePath(path, Float64Array.from([0, 1, 2, 3, NaN, NaN, 4, 5, 6, 7]))
    expect(calls).toEqual(['M0,1', 'L2,3', 'M4,5', 'L6,7'])
  })
})
