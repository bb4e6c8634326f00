import { describe, expect, it } from 'vitest'
import { CHUNK_SIZE, DebiasedEma, IntColumn, PointSeries, ValueColumn, emptyRange } from './series'
import { rng } from './random'


describe('IntColumn', () => {
  it('stores an arithmetic progression as two numbers per chunk, exactly', () => {
    const c = new IntColumn()
    for (let i = 0; i < CHUNK_SIZE + 10; i++) c.push(1000 + i * 2048)
    expect(c.length).toBe(CHUNK_SIZE + 10)
    expect(c.get(0)).toBe(1000)
    expect(c.get(CHUNK_SIZE + 9)).toBe(1000 + (CHUNK_SIZE + 9) * 2048)
    expect(c.bytes()).toBe(48) // two chunk headers, no arrays
  })

  it('keeps irregular values as Int32 offsets and huge or fractional ones as Float64', () => {
    const c = new IntColumn()
    const values = [5, 6, 7, 9, 8, 1_764_400_000_123, 0.5, NaN, -3, 2 ** 40]
    for (const v of values) c.push(v)
    expect(values.map((_, i) => c.get(i))).toEqual(values)
    const d = new IntColumn()
    for (const v of [10, 20, 30, 31, -5]) d.push(v)
    expect([0, 1, 2, 3, 4].map((i) => d.get(i))).toEqual([10, 20, 30, 31, -5])
    expect(d.bytes()).toBe(24 + 4 * CHUNK_SIZE) // Int32 offsets
  })
})

/** Brute-force finite min, max and smallest positive value of values[i, j). */
function bruteRange(values: number[], i: number, j: number) {
  const r = emptyRange()
  for (let k = Math.max(0, i); k < Math.min(values.length, j); k++) {
    const v = values[k]
    if (!Number.isFinite(v)) continue
    r.min = Math.min(r.min, v)
    r.max = Math.max(r.max, v)
    if (v > 0) r.minPositive = Math.min(r.minPositive, v)
  }
  return r
}

/** Random values with NaN, ±Infinity, zeros, negatives and spikes, all float32-exact. */
function nastyValues(n: number, random: () => number): number[] {
  const out: number[] = []
  for (let i = 0; i < n; i++) {
    const u = random()
    if (u < 0.01) out.push(NaN)
    else if (u < 0.015) out.push(Infinity)
    else if (u < 0.02) out.push(-Infinity)
    else if (u < 0.03) out.push(0)
    else if (u < 0.05) out.push(Math.fround(-random() * 3))
    else if (u < 0.052) out.push(Math.fround(50 + random() * 50))
    else out.push(Math.fround(1 + random() * 3))
  }
  return out
}

describe('ValueColumn', () => {
  it('answers range queries like a brute-force scan, while values are appended', () => {
    const random = rng(7)
    const values = nastyValues(40_000, random)
    const col = new ValueColumn()
    const out = emptyRange()
    let appended = 0
    for (const batch of [1, 63, 64, 1000, 5000, 33_872]) {
      for (let k = 0; k < batch; k++) col.push(values[appended++])
      for (let q = 0; q < 300; q++) {
        const i = Math.floor(random() * appended)
        const j = i + Math.floor(random() * (appended - i + 1))
        expect(col.range(i, j, out)).toEqual(bruteRange(values, i, j))
      }
    }
    expect(col.length).toBe(40_000)
    expect(col.range(0, 40_000, out)).toEqual(bruteRange(values, 0, 40_000))
    expect(col.isWide()).toBe(false)
    // The index lists hold exactly the non-finite and the finite ≤ 0 values.
    const nonFinite = values.flatMap((v, i) => (Number.isFinite(v) ? [] : [i]))
    const nonPositive = values.flatMap((v, i) => (Number.isFinite(v) && v <= 0 ? [i] : []))
    expect(Array.from(col.nonFinite.data.subarray(0, col.nonFinite.length))).toEqual(nonFinite)
    expect(Array.from(col.nonPositive.data.subarray(0, col.nonPositive.length))).toEqual(nonPositive)
    expect(col.nonFinite.countIn(100, 20_000)).toBe(nonFinite.filter((i) => i >= 100 && i < 20_000).length)
  })

  it('keeps float32 values in 4 bytes and switches to float64 for one that is not', () => {
    const col = new ValueColumn()
    col.push(2.5)
    col.push(Math.fround(0.1))
    expect(col.isWide()).toBe(false)
    col.push(0.1)
    expect(col.isWide()).toBe(true)
    expect([col.get(0), col.get(1), col.get(2)]).toEqual([2.5, Math.fround(0.1), 0.1])
    expect(col.extent()).toEqual({ min: Math.fround(0.1) < 0.1 ? Math.fround(0.1) : 0.1, max: 2.5 })
  })
})

describe('DebiasedEma (TensorBoard smoothing)', () => {
  it('matches hand-computed values', () => {
    const ema = new DebiasedEma(0.6)
    // n=1: last = 0.4·1 = 0.4, debias 1 − 0.6 = 0.4 → 1
    expect(ema.next(1)).toBeCloseTo(1, 12)
    // n=2: last = 0.6·0.4 + 0.4·2 = 1.04, debias 1 − 0.36 = 0.64 → 1.625
    expect(ema.next(2)).toBeCloseTo(1.625, 12)
    // a NaN passes through and does not move the average
    expect(ema.next(NaN)).toBeNaN()
    // n=3: last = 0.6·1.04 + 0.4·3 = 1.824, debias 1 − 0.216 = 0.784 → 2.326530612…
    expect(ema.next(3)).toBeCloseTo(1.824 / 0.784, 12)
  })

  it('is the identity at weight 0 and starts at the first value at any weight', () => {
    const none = new DebiasedEma(0)
    expect([3, 1, 4].map((v) => none.next(v))).toEqual([3, 1, 4])
    expect(new DebiasedEma(0.999).next(2.75)).toBeCloseTo(2.75, 9)
  })
})

function stepSeries(steps: number[], losses: number[]): PointSeries {
  const s = new PointSeries({ values: ['loss'], smoothed: [{ name: 'loss_ema', of: 'loss' }], smoothing: 0.5 })
  steps.forEach((step, i) => s.push({ step, tokens: step * 100, timeSecs: 1000 + i, values: { loss: losses[i] } }))
  return s
}

describe('PointSeries', () => {
  it('starts a new segment where the step goes back, keeping every point', () => {
    const s = stepSeries([1, 2, 3, 4, 5, 3, 4, 5, 6], [5, 4, 3, 2, 1, 3.5, 3, 2.5, 2])
    expect(s.segments()).toEqual([
      [0, 5],
      [5, 9],
    ])
    expect(s.stepArray()).toEqual([1, 2, 3, 4, 5, 3, 4, 5, 6])
    expect(s.valueArray('loss')).toEqual([5, 4, 3, 2, 1, 3.5, 3, 2.5, 2])
    // The EMA starts afresh at the restart: its first value is the raw value.
    expect(s.column('loss_ema').get(5)).toBe(3.5)
    // Windows are per segment.
    expect(s.window('step', 0, 5, 3, 4)).toEqual([2, 4])
    expect(s.window('step', 5, 9, 3, 4)).toEqual([5, 7])
    // Hover prefers the newest segment covering x.
    expect(s.nearest('step', 4)).toBe(6)
    expect(s.nearest('step', 1.2)).toBe(0)
    expect(s.xExtent('tokens')).toEqual({ min: 100, max: 600 })
    expect(s.xExtent('time')).toEqual({ min: 1000, max: 1008 })
  })

  it('recomputes the EMA when the weight changes', () => {
    const s = stepSeries([1, 2, 3], [1, 2, 3])
    expect(s.valueArray('loss_ema')).toEqual([1, Math.fround((0.5 * 0.5 + 0.5 * 2) / 0.75), Math.fround(((0.5 * 0.5 + 0.5 * 2) * 0.5 + 0.5 * 3) / 0.875)])
    s.setSmoothing(0)
    expect(s.valueArray('loss_ema')).toEqual([1, 2, 3])
    // Recomputed across a restart and a NaN: afresh at the restart, the NaN passed through.
    const r = stepSeries([1, 2, 3, 1, 2], [4, NaN, 2, 8, 6])
    r.setSmoothing(0.5)
    expect(r.valueArray('loss_ema')).toEqual([4, NaN, Math.fround((0.5 * 0.5 * 4 + 0.5 * 2) / 0.75), 8, Math.fround((0.5 * 0.5 * 8 + 0.5 * 6) / 0.75)])
    expect(r.column('loss_ema').nonFinite.length).toBe(1)
    expect(r.column('loss_ema').extent()).toEqual({ min: Math.fround(2.6666666666666665), max: 8 })
    s.setSmoothing(5)
    expect(s.smoothing()).toBe(0.999)
  })

  it('reports its memory', () => {
    const s = stepSeries(
      Array.from({ length: 1000 }, (_, i) => i + 1),
      Array.from({ length: 1000 }, () => 2),
    )
    // loss and EMA chunks (Float32, 65,536 each) dominate at this size.
    expect(s.bytes()).toBeGreaterThanOrEqual(2 * 4 * CHUNK_SIZE)
    expect(() => s.column('nope')).toThrow('series has no column "nope" (has: loss, loss_ema)')
  })
})

/** Every stored fact of a series, for comparing two ways of filling it. */
function snapshot(s: PointSeries) {
  const out: Record<string, unknown> = {
    length: s.length,
    step: s.stepArray(),
    tokens: Array.from({ length: s.length }, (_, i) => s.tokens.get(i)),
    timeMs: Array.from({ length: s.length }, (_, i) => s.timeMs.get(i)),
    restarts: Array.from(s.restarts.data.subarray(0, s.restarts.length)),
  }
  const r = emptyRange()
  for (const [name, c] of s.columns) {
    const ranges: number[][] = []
    for (const [a, b] of [[0, s.length], [3, 200], [64, 70_000], [65_530, 65_600], [1000, s.length - 7]]) {
      c.range(a, b, r)
      ranges.push([r.min, r.max, r.minPositive])
    }
    out[name] = {
      values: s.valueArray(name).map((v) => (Number.isNaN(v) ? 'NaN' : v)),
      wide: c.isWide(),
      extent: c.extent(),
      minPositive: c.minPositive(),
      nonFinite: Array.from(c.nonFinite.data.subarray(0, c.nonFinite.length)),
      nonPositive: Array.from(c.nonPositive.data.subarray(0, c.nonPositive.length)),
      missing: [c.missing.starts, c.missing.ends, c.missing.count],
      ranges,
    }
  }
  // After the range queries: the pyramids are built either way (a bulk load builds their
  // finest level as it copies; push leaves it to the first query).
  out.bytes = s.bytes()
  return out
}

describe('PointSeries.appendColumns (bulk ingest)', () => {
  function columns(n: number, seed: number, wideAt = -1) {
    const random = rng(seed)
    const step = new Float64Array(n)
    const tokens = new Float64Array(n)
    const timeSecs = new Float64Array(n)
    const loss = new Float64Array(n)
    const lr = new Float64Array(n)
    const lrMissing = new Uint8Array(n)
    let s = 0
    for (let i = 0; i < n; i++) {
      // Mostly step + 1; a restart now and then; an irregular stretch in the second chunk.
      s = random() < 0.0005 ? Math.max(0, s - 500) : i > CHUNK_SIZE && i < CHUNK_SIZE + 3000 ? s + 1 + Math.floor(random() * 3) : s + 1
      step[i] = s
      tokens[i] = i === 7 ? NaN : s * 2048
      timeSecs[i] = 1_764_400_000 + i * 0.34 + (i % 7) * 0.001
      const u = random()
      loss[i] = u < 0.01 ? NaN : u < 0.012 ? Infinity : u < 0.014 ? -Infinity : u < 0.02 ? 0 : u < 0.03 ? Math.fround(-random()) : Math.fround(1 + 3 * random())
      if (i === wideAt) loss[i] = 0.1 // not a float32: the column widens
      lr[i] = 3e-4 * random()
      lrMissing[i] = i % 1000 < 10 ? 1 : 0
    }
    return { step, tokens, timeSecs, loss, lr, lrMissing }
  }
  const make = () =>
    new PointSeries({ values: ['loss', 'lr', 'grad_norm'], lossy: ['lr', 'grad_norm'], smoothed: [{ name: 'loss_ema', of: 'loss' }], smoothing: 0.6 })
  const pushAll = (s: PointSeries, c: ReturnType<typeof columns>, from: number, to: number) => {
    for (let i = from; i < to; i++) {
      s.push({ step: c.step[i], tokens: c.tokens[i], timeSecs: c.timeSecs[i], values: { loss: c.loss[i], lr: c.lrMissing[i] ? undefined : c.lr[i] } })
    }
  }

  for (const [label, wideAt] of [['float32 losses', -1], ['a loss that is not a float32', 100_000]] as const) {
    it(`stores exactly what push does, point by point (${label})`, () => {
      const n = 2 * CHUNK_SIZE + 12_345
      const c = columns(n, 11, wideAt)
      const expected = make()
      pushAll(expected, c, 0, n)
      // Bulk in uneven pieces, after a few single pushes (chunks filled partly by each).
      const bulk = make()
      pushAll(bulk, c, 0, 5)
      let from = 5
      for (const to of [70, 65_540, 100_001, n]) {
        const sub = (a: Float64Array | Uint8Array) => a.subarray(from, to)
        bulk.appendColumns({ step: sub(c.step), tokens: sub(c.tokens), timeSecs: sub(c.timeSecs), values: { loss: sub(c.loss), lr: sub(c.lr) }, missing: { lr: sub(c.lrMissing) } })
        from = to
      }
      expect(bulk.restarts.length).toBeGreaterThan(10)
      expect(bulk.column('loss').isWide()).toBe(wideAt >= 0)
      expect(snapshot(bulk)).toEqual(snapshot(expected))
      // And points pushed after a bulk load continue it (the EMA, the restarts).
      const more = columns(300, 12)
      for (const s of [bulk, expected]) {
        for (let i = 0; i < 300; i++) s.push({ step: n + more.step[i], tokens: more.tokens[i], timeSecs: 1_800_000_000 + i, values: { loss: more.loss[i] } })
      }
      expect(snapshot(bulk)).toEqual(snapshot(expected))
    })
  }

  it('takes plain arrays, leaves out columns as gaps, and refuses columns of different lengths', () => {
    const a = make()
    a.appendColumns({ step: [1, 2, 3], timeSecs: [10, 11, 12], values: { loss: [3, NaN, 2] } })
    expect(a.valueArray('loss')).toEqual([3, NaN, 2])
    expect(a.column('lr').missing.count).toBe(3)
    expect(a.column('lr').nonFinite.length).toBe(0)
    expect(Number.isNaN(a.tokens.get(0))).toBe(true)
    expect(a.valueArray('loss_ema')).toEqual([3, NaN, Math.fround((0.6 * 0.4 * 3 + 0.4 * 2) / (1 - 0.36))])
    expect(() => a.appendColumns({ step: [4, 5], timeSecs: [13], values: { loss: [1, 2] } })).toThrow('appendColumns: timeSecs has 1 values, step has 2')
    expect(() => a.appendColumns({ step: [4], timeSecs: [13], values: { nope: [1] } })).toThrow('series has no column "nope"')
    expect(a.length).toBe(3)
  })
})

describe('values float32 cannot represent', () => {
  it('widens a lossy column (the EMA, lr) instead of storing ±Infinity or 0', () => {
    const col = new ValueColumn({ lossy: true })
    col.push(2.5)
    col.push(0.1) // rounded: lossy
    expect(col.isWide()).toBe(false)
    expect(col.get(1)).toBe(Math.fround(0.1))
    col.push(1e308)
    expect(col.isWide()).toBe(true)
    expect(col.get(2)).toBe(1e308)
    expect(col.nonFinite.length).toBe(0)
    const tiny = new ValueColumn({ lossy: true })
    tiny.appendArray([1, 1e-300, 2])
    expect(tiny.isWide()).toBe(true)
    expect(tiny.get(1)).toBe(1e-300)
    expect(tiny.minPositive()).toBe(1e-300)
  })

  it('keeps the EMA of a loss of 1e308 finite (as many NaN/Inf as the loss)', () => {
    const s = stepSeries([1, 2, 3, 4], [1e308, 1.5e308, NaN, 1e308])
    expect(s.column('loss_ema').nonFinite.length).toBe(s.column('loss').nonFinite.length)
    expect(s.column('loss_ema').get(0)).toBe(1e308)
    expect(s.column('loss_ema').isWide()).toBe(true)
    s.setSmoothing(0.9)
    expect(s.column('loss_ema').nonFinite.length).toBe(1)
    expect(s.column('loss_ema').get(0)).toBe(1e308)
  })
})

/** The pyramid's internals, for comparing the two ways of building it. */
function pyramidOf(c: ValueColumn): { levels: Float64Array[]; blocksDone: number } {
  return c as unknown as { levels: Float64Array[]; blocksDone: number }
}

describe('the pyramid built during a bulk append', () => {
  function values(n: number, seed: number, wideAt: number): Float64Array {
    const random = rng(seed)
    const v = new Float64Array(n)
    for (let i = 0; i < n; i++) {
      const u = random()
      v[i] = u < 0.002 ? NaN : u < 0.003 ? Infinity : u < 0.004 ? -Infinity : u < 0.006 ? 0 : u < 0.01 ? Math.fround(-random()) : Math.fround(0.5 + random())
    }
    if (wideAt >= 0) v[wideAt] = 0.1 // not a float32: a non-lossy column widens mid-block
    return v
  }

  for (const [label, lossy, wideAt] of [
    ['float32 values', false, -1],
    ['a column that widens mid-block', false, 40_003],
    ['a lossy column', true, 40_003],
  ] as const) {
    it(`has the finest level a lazy build gives, with no query (${label})`, () => {
      const n = CHUNK_SIZE + 5_000
      const v = values(n, 21, wideAt)
      const bulk = new ValueColumn({ lossy })
      for (let i = 0; i < 3; i++) bulk.push(v[i]) // the first append starts mid-block
      bulk.appendArray(v, 3, 1_000)
      bulk.appendArray(v, 1_000, n)
      const lazy = new ValueColumn({ lossy })
      for (let i = 0; i < n; i++) lazy.push(v[i])
      expect(pyramidOf(lazy).blocksDone).toBe(0)
      const blocks = n >>> 6
      expect(pyramidOf(bulk).blocksDone).toBe(blocks) // every complete block, while copying
      lazy.update()
      const level0 = (c: ValueColumn) => Array.from(pyramidOf(c).levels[0].subarray(0, 3 * blocks))
      expect(level0(bulk)).toEqual(level0(lazy))
      // Some blocks hold only positive finite values, some a NaN, an Infinity or a value ≤ 0.
      const mins = level0(lazy).filter((_, k) => k % 3 === 0)
      const minPositives = level0(lazy).filter((_, k) => k % 3 === 2)
      expect(mins.some((m, k) => m === minPositives[k])).toBe(true)
      expect(mins.some((m, k) => m !== minPositives[k])).toBe(true)
      bulk.update()
      const all = (c: ValueColumn) => pyramidOf(c).levels.map((l) => Array.from(l.subarray(0, 3 * ((n + 63) >>> 6))))
      expect(all(bulk)[0]).toEqual(all(lazy)[0])
      expect(pyramidOf(bulk).levels.length).toBe(pyramidOf(lazy).levels.length)
      const r = emptyRange()
      const s = emptyRange()
      for (const [a, b] of [[0, n], [5, 40_010], [64, CHUNK_SIZE + 64], [1_000, n - 1]]) {
        expect(bulk.range(a, b, r)).toEqual(lazy.range(a, b, s))
      }
    })
  }

  it('is built for the EMA column too, equal to the lazy one', () => {
    const n = CHUNK_SIZE + 777
    const loss = values(n, 22, -1)
    const step = Float64Array.from({ length: n }, (_, i) => (i === 50_000 ? 10 : i)) // one restart
    const timeSecs = Float64Array.from({ length: n }, (_, i) => 1_700_000_000 + i)
    const make = () => new PointSeries({ values: ['loss'], smoothed: [{ name: 'loss_ema', of: 'loss' }], smoothing: 0.6 })
    const bulk = make()
    bulk.appendColumns({ step, timeSecs, values: { loss } })
    const lazy = make()
    for (let i = 0; i < n; i++) lazy.push({ step: step[i], tokens: NaN, timeSecs: timeSecs[i], values: { loss: loss[i] } })
    const ema = bulk.column('loss_ema')
    expect(pyramidOf(ema).blocksDone).toBe(n >>> 6)
    lazy.column('loss_ema').update()
    const level0 = (c: ValueColumn) => Array.from(pyramidOf(c).levels[0].subarray(0, 3 * (n >>> 6)))
    expect(level0(ema)).toEqual(level0(lazy.column('loss_ema')))
  })
})

describe('the EMA without the debias division', () => {
  // First n where 1 − wⁿ (wⁿ by repeated multiplication) is exactly 1.0 in f64.
  const firstExact: [number, number][] = [
    [0.3, 32],
    [0.6, 74],
    [0.9, 356],
    [0.99, 3725],
  ]
  for (const [w, exactAt] of firstExact) {
    it(`gives last / (1 − wⁿ) bit for bit at w = ${w}, dividing only up to n = ${exactAt - 1}`, () => {
      const random = rng(31)
      const ys = Array.from({ length: exactAt + 500 }, () => 1 + 3 * random())
      const ema = new DebiasedEma(w)
      let last = 0
      let pow = 1
      const expected: number[] = []
      const got: number[] = []
      let skipsFrom = -1
      for (let n = 1; n <= ys.length; n++) {
        last = last * w + (1 - w) * ys[n - 1]
        pow *= w
        expected.push(last / (1 - pow))
        got.push(ema.next(ys[n - 1]))
        if (skipsFrom < 0 && ema.weightPow === 0) skipsFrom = n
      }
      expect(got).toEqual(expected)
      expect(skipsFrom).toBe(exactAt)
      // The bulk path (fused loop) stores the same values, as float32, across a restart.
      const s = new PointSeries({ values: ['loss'], smoothed: [{ name: 'loss_ema', of: 'loss' }], smoothing: w })
      const half = ys.length >> 1
      const step = Float64Array.from(ys, (_, i) => (i < half ? i : i - half)) // restart at half
      s.appendColumns({ step, timeSecs: Float64Array.from(ys, (_, i) => i), values: { loss: Float64Array.from(ys, Math.fround) } })
      const ref = new DebiasedEma(w)
      const want = ys.map((y, i) => {
        if (i === half) ref.reset()
        return Math.fround(ref.next(Math.fround(y)))
      })
      expect(s.restarts.length).toBe(1)
      expect(s.valueArray('loss_ema')).toEqual(want)
    })
  }
})
