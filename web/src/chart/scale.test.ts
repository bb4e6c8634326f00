import { describe, expect, it } from 'vitest'
import { formatLogTick, formatTick, formatTimeTick, linearScale, logScale, logTicks, niceStep, niceTicks, paddedDomain, quantile, stepDecimals, timeTicks } from './scale'

describe('linearScale', () => {
  it('maps data to pixels and back', () => {
    const x = linearScale([0, 100], [50, 550])
    expect(x.map(0)).toBe(50)
    expect(x.map(100)).toBe(550)
    expect(x.map(25)).toBe(175)
    expect(x.invert(175)).toBe(25)
  })

  it('flips for a y axis (pixel y grows downwards)', () => {
    const y = linearScale([2, 4], [300, 100])
    expect(y.map(2)).toBe(300)
    expect(y.map(4)).toBe(100)
    expect(y.map(3)).toBe(200)
  })

  it('maps a degenerate domain to the middle of the range', () => {
    const y = linearScale([5, 5], [300, 100])
    expect(y.map(5)).toBe(200)
    expect(y.map(123)).toBe(200)
  })
})

describe('nice ticks', () => {
  it('picks 1, 2 or 5 times a power of ten', () => {
    expect(niceStep(10, 5)).toBe(2)
    expect(niceStep(100, 5)).toBe(20)
    expect(niceStep(1, 5)).toBe(0.2)
    expect(niceStep(7, 5)).toBe(1) // raw 1.4
    expect(niceStep(12, 5)).toBe(2) // raw 2.4
    expect(niceStep(25, 5)).toBe(5)
    expect(niceStep(40, 5)).toBe(10) // raw 8
    expect(niceStep(48_828, 10)).toBe(5000)
    expect(niceStep(0.003, 3)).toBe(0.001)
  })

  it('lists the multiples of the step inside the interval', () => {
    expect(niceTicks(0, 10, 5)).toEqual({ step: 2, values: [0, 2, 4, 6, 8, 10] })
    expect(niceTicks(0.13, 0.97, 5)).toEqual({ step: 0.2, values: [0.2, 0.4, 0.6, 0.8] })
    expect(niceTicks(1.83, 4.31, 5)).toEqual({ step: 0.5, values: [2, 2.5, 3, 3.5, 4] })
    expect(niceTicks(0, 1200, 6)).toEqual({ step: 200, values: [0, 200, 400, 600, 800, 1000, 1200] })
    expect(niceTicks(-1, 1, 4)).toEqual({ step: 0.5, values: [-1, -0.5, 0, 0.5, 1] })
  })

  it('has no floating-point noise in the values', () => {
    const { values } = niceTicks(0, 0.7, 7)
    expect(values).toEqual([0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7])
  })

  it('handles empty and flat intervals', () => {
    expect(niceTicks(3, 3)).toEqual({ step: 1, values: [3] })
    expect(niceTicks(NaN, 3)).toEqual({ step: 1, values: [] })
    expect(niceTicks(4, 3)).toEqual({ step: 1, values: [] })
  })

  it('labels ticks with the decimals of the step', () => {
    expect(stepDecimals(0.2)).toBe(1)
    expect(stepDecimals(0.05)).toBe(2)
    expect(stepDecimals(5)).toBe(0)
    expect(formatTick(2.5, 0.5)).toBe('2.5')
    expect(formatTick(3, 0.5)).toBe('3.0')
    expect(formatTick(400, 200)).toBe('400')
    expect(formatTick(20_000, 5000)).toBe('20k')
    expect(formatTick(1_500_000, 500_000)).toBe('1.5M')
    // Huge and tiny values: exponent notation with the digits the step needs, no SI suffix.
    expect(formatTick(1e296, 5e295)).toBe('1.0e296')
    expect(formatTick(2.5e296, 5e295)).toBe('2.5e296')
    expect(formatTick(-3e300, 1e300)).toBe('-3e300')
    expect(formatTick(0, 5e295)).toBe('0')
    expect(formatTick(1.2e-9, 1e-10)).toBe('1.2e-9')
    expect(formatTick(3e-5, 1e-5)).toBe('3e-5')
    expect(formatTick(2e15, 5e14)).toBe('2.0e15')
    const huge = niceTicks(0.9e308, 1.7e308, 4)
    const labels = huge.values.map((v) => formatTick(v, huge.step))
    expect(labels).toEqual(['1.0e308', '1.2e308', '1.4e308', '1.6e308'])
    expect(labels.every((l) => /^-?\d(\.\d+)?e-?\d+$/.test(l))).toBe(true)
  })
})

describe('paddedDomain', () => {
  it('pads by a fraction of the span', () => {
    expect(paddedDomain(2, 4, 0.05)).toEqual([1.9, 4.1])
  })
  it('centres a flat series', () => {
    expect(paddedDomain(2, 2)).toEqual([1.8, 2.2])
    expect(paddedDomain(0, 0)).toEqual([-1, 1])
  })
})

describe('logScale and logTicks', () => {
  it('maps decades evenly and leaves values ≤ 0 out', () => {
    const y = logScale([1, 1000], [300, 0])
    expect(y.map(1)).toBe(300)
    expect(y.map(10)).toBeCloseTo(200, 9)
    expect(y.map(1000)).toBeCloseTo(0, 9)
    expect(y.map(0)).toBeNaN()
    expect(y.map(-1)).toBeNaN()
    expect(y.invert(200)).toBeCloseTo(10, 9)
    expect(y.log).toBe(true)
  })

  it('ticks powers of ten over several decades, 1-2-5 over a few, linear ticks inside one', () => {
    expect(logTicks(0.001, 1000, 8).values).toEqual([0.001, 0.01, 0.1, 1, 10, 100, 1000])
    expect(logTicks(1e-6, 1e6, 5).values).toEqual([1e-6, 1e-3, 1, 1e3, 1e6])
    expect(logTicks(0.5, 30, 5).values).toEqual([0.5, 1, 2, 5, 10, 20])
    expect(logTicks(1.5, 4.2, 5).values).toEqual([1.5, 2, 2.5, 3, 3.5, 4])
    expect(formatLogTick(1000)).toBe('1k')
    expect(formatLogTick(0.001)).toBe('0.001')
    expect(formatLogTick(1e-6)).toBe('1e-6')
    expect(formatLogTick(1e296)).toBe('1e296')
  })
})

describe('timeTicks', () => {
  it('picks a clock step giving at most the target number of ticks, on round times', () => {
    // 10 minutes: 2-minute ticks on even minutes (UTC offsets are whole minutes).
    const t0 = Date.UTC(2026, 10, 29, 12, 0, 30) / 1000
    const ticks = timeTicks(t0, t0 + 600, 5)
    expect(ticks.step).toBe(120)
    expect(ticks.values).toHaveLength(5)
    for (const v of ticks.values) expect(new Date(v * 1000).getSeconds()).toBe(0)
    expect(formatTimeTick(ticks.values[0], ticks.step)).toMatch(/^\d\d:\d\d$/)
    expect(timeTicks(t0, t0 + 20, 5).step).toBe(5)
    expect(formatTimeTick(t0, 5)).toMatch(/^\d\d:\d\d:30$/)
  })
})

describe('quantile', () => {
  it('selects the lower-rank quantile like sorting would', () => {
    const values = Float64Array.from({ length: 1001 }, (_, i) => (i * 7919) % 1001) // 0…1000 shuffled
    expect(quantile(values.slice(), 0.01)).toBe(10)
    expect(quantile(values.slice(), 0.99)).toBe(990)
    expect(quantile(values.slice(), 0.5)).toBe(500)
    expect(quantile(Float64Array.from([3, 1, 2]), 1)).toBe(3)
    expect(quantile(new Float64Array(0), 0.5)).toBeNaN()
    // Many ties.
    expect(quantile(Float64Array.from({ length: 500 }, (_, i) => i % 2), 0.99)).toBe(1)
  })
})
