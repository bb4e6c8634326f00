import { describe, expect, it } from 'vitest'
import { XYSeries, finiteExtent, lowerBound, upperBound } from './series'

describe('XYSeries', () => {
  it('grows past its capacity and keeps the data', () => {
    const s = new XYSeries(2)
    for (let i = 0; i < 1000; i++) s.push(i, i * 2)
    expect(s.length).toBe(1000)
    expect(s.x.length).toBeGreaterThanOrEqual(1000)
    expect(s.x[999]).toBe(999)
    expect(s.y[500]).toBe(1000)
    expect(s.lastX()).toBe(999)
    expect(s.xExtent()).toEqual({ min: 0, max: 999 })
  })

  it('keeps non-finite values out of the y extent', () => {
    const s = new XYSeries()
    s.push(1, 3)
    s.push(2, NaN)
    s.push(3, Infinity)
    s.push(4, 1.5)
    s.push(5, -Infinity)
    expect(s.yExtent()).toEqual({ min: 1.5, max: 3 })
    expect(Number.isNaN(s.y[1])).toBe(true) // the value itself is kept
    s.clear()
    expect(s.length).toBe(0)
    expect(s.yExtent()).toBeNull()
  })

  it('bumps its version on every change', () => {
    const s = new XYSeries()
    const v0 = s.version
    s.push(1, 1)
    s.push(2, 2)
    expect(s.version).toBe(v0 + 2)
  })
})

describe('finiteExtent', () => {
  it('ignores NaN and ±Infinity', () => {
    expect(finiteExtent([NaN, 2, Infinity, -1, -Infinity, 5])).toEqual({ min: -1, max: 5 })
    expect(finiteExtent([NaN, Infinity])).toBeNull()
    expect(finiteExtent([])).toBeNull()
    expect(finiteExtent([4, 1, 9, 2], 1, 3)).toEqual({ min: 1, max: 9 })
  })
})

describe('binary search', () => {
  const xs = [1, 2, 2, 2, 5, 8]
  it('finds the visible window', () => {
    expect(lowerBound(xs, xs.length, 2)).toBe(1)
    expect(upperBound(xs, xs.length, 2)).toBe(4)
    expect(lowerBound(xs, xs.length, 0)).toBe(0)
    expect(upperBound(xs, xs.length, 100)).toBe(6)
    expect(lowerBound(xs, xs.length, 6)).toBe(5)
    expect(lowerBound(xs, 3, 5)).toBe(3) // only the first 3 entries count
  })
})
