import { describe, expect, it } from 'vitest'
import {
  DASH,
  formatClock,
  formatCompact,
  formatCount,
  formatDuration,
  formatEta,
  formatFloat,
  formatFlops,
  formatMfu,
  parsePeakFlops,
  type EtaStatus,
  formatInt,
  formatLoss,
  formatLr,
  formatMs,
  formatPercent,
  formatStepCounter,
  formatTokenCounter,
  formatTokensPerSec,
} from './format'


const eta = (eta_status: EtaStatus, eta_secs: number | null = null, eta_low_secs: number | null = null, eta_high_secs: number | null = null) =>
  formatEta({ eta_status, eta_secs, eta_low_secs, eta_high_secs })

describe('token counter', () => {
  it('groups thousands', () => {
    expect(formatInt(0)).toBe('0')
    expect(formatInt(999)).toBe('999')
    expect(formatInt(1000)).toBe('1,000')
    expect(formatInt(1234567)).toBe('1,234,567')
    expect(formatInt(100_000_000)).toBe('100,000,000')
    expect(formatInt(-4096)).toBe('-4,096')
    expect(formatInt(1234.6)).toBe('1,235')
  })

  it('compacts to three significant digits', () => {
    expect(formatCompact(999)).toBe('999')
    expect(formatCompact(1000)).toBe('1k')
    expect(formatCompact(1500)).toBe('1.5k')
    expect(formatCompact(12_345)).toBe('12.3k')
    expect(formatCompact(123_456)).toBe('123k')
    expect(formatCompact(1_234_567)).toBe('1.23M')
    expect(formatCompact(100_000_000)).toBe('100M')
    expect(formatCompact(2_000_000_000)).toBe('2B')
    expect(formatCompact(999_999)).toBe('1M')
    expect(formatCompact(2.5)).toBe('2.5')
  })

  it('writes tokens over budget and steps over total', () => {
    expect(formatTokenCounter(1_234_567, 100_000_000)).toBe('1,234,567 / 100,000,000 tokens')
    expect(formatTokenCounter(81_920, null)).toBe('81,920 tokens')
    expect(formatStepCounter(40, 48_828)).toBe('step 40 / 48,828')
    expect(formatStepCounter(40, null)).toBe('step 40')
  })

  it('uses the singular for exactly one', () => {
    expect(formatCount(0, 'step')).toBe('0 steps')
    expect(formatCount(1, 'step')).toBe('1 step')
    expect(formatCount(2, 'step')).toBe('2 steps')
    expect(formatCount(1, 'eval')).toBe('1 eval')
    expect(formatCount(1234, 'eval')).toBe('1,234 evals')
    expect(formatCount(1, 'entry', 'entries')).toBe('1 entry')
    expect(formatCount(3, 'entry', 'entries')).toBe('3 entries')
    expect(formatCount(null, 'step')).toBe('— steps')
  })

  it('shows the percent rounded down to a tenth', () => {
    expect(formatPercent(0)).toBe('0.00%')
    expect(formatPercent(0.0005888)).toBe('0.05%')
    expect(formatPercent(0.0099999)).toBe('0.99%')
    expect(formatPercent(0.01)).toBe('1.0%')
    expect(formatPercent(0.1234)).toBe('12.3%')
    expect(formatPercent(1.5)).toBe('100.0%') // clamped
    expect(formatPercent(0.012345)).toBe('1.2%')
    expect(formatPercent(0.99999)).toBe('99.9%')
    expect(formatPercent(1)).toBe('100.0%')
    expect(formatPercent(0.07)).toBe('7.0%')
    expect(formatPercent(null)).toBe(DASH)
  })
})

describe('throughput', () => {
  it('formats tokens per second', () => {
    expect(formatTokensPerSec(12_345.6)).toBe('12,346 tok/s')
    expect(formatTokensPerSec(2000)).toBe('2,000 tok/s')
    expect(formatTokensPerSec(1_234_567)).toBe('1.23M tok/s')
    expect(formatTokensPerSec(45.64)).toBe('45.6 tok/s')
    expect(formatTokensPerSec(null)).toBe(DASH)
  })

  it('formats milliseconds', () => {
    expect(formatMs(880.2)).toBe('880 ms')
    expect(formatMs(1234.4)).toBe('1,234 ms')
    expect(formatMs(12.34)).toBe('12.3 ms')
    expect(formatMs(1.234)).toBe('1.23 ms')
    expect(formatMs(null)).toBe(DASH)
  })
})

describe('durations and ETA', () => {
  it('formats durations', () => {
    expect(formatDuration(0)).toBe('0s')
    expect(formatDuration(45)).toBe('45s')
    expect(formatDuration(45.9)).toBe('45s')
    expect(formatDuration(200)).toBe('3m 20s')
    expect(formatDuration(185)).toBe('3m 05s')
    expect(formatDuration(3723)).toBe('1h 02m 03s')
    expect(formatDuration(36_000)).toBe('10h 00m 00s')
    expect(formatDuration(2 * 86400 + 3 * 3600 + 4 * 60 + 5)).toBe('2d 03h 04m')
    expect(formatDuration(-5)).toBe('0s')
  })

  it('says estimating, then the time left with its range, then finishing', () => {
    expect(eta('estimating')).toEqual({ text: 'estimating…', range: null })
    expect(eta('estimated', 200, 180, 230.5)).toEqual({ text: '3m 20s', range: '3m 00s – 3m 51s' })
    expect(eta('estimated', 199.2, 0, 400)).toEqual({ text: '3m 20s', range: '0s – 6m 40s' }) // rounded up
    expect(eta('estimated', 0.3, 0.1, 0.6)).toEqual({ text: '1s', range: '1s – 1s' })
    expect(eta('estimated', 3723, 3600, 3900)?.text).toBe('1h 02m 03s')
    expect(eta('estimated', 200)).toEqual({ text: '3m 20s', range: null }) // no range sent
    expect(eta('finishing', 0, 0, 0)).toEqual({ text: 'finishing', range: null })
  })

  it('says paused with the training time left', () => {
    expect(eta('paused', 40, 35, 45)).toEqual({ text: 'paused', range: '40s of training left' })
    expect(eta('paused')).toEqual({ text: 'paused', range: null })
  })

  it('shows nothing without a budget or once the run has ended', () => {
    expect(eta('none')).toBeNull()
    expect(eta('none', 120, 100, 140)).toBeNull()
    expect(formatEta(null)).toBeNull()
    expect(formatEta(undefined)).toBeNull()
  })

  it('shows the finish time as a local clock', () => {
    const now = new Date(2026, 10, 29, 9, 0, 0).getTime() // Sun 29 Nov 2026, 09:00 local
    const at = (y: number, mo: number, d: number, h: number, mi: number, s: number) => new Date(y, mo, d, h, mi, s).getTime() / 1000
    expect(formatClock(at(2026, 10, 29, 14, 5, 9), now)).toBe('14:05:09')
    expect(formatClock(at(2026, 10, 29, 0, 0, 0), now)).toBe('00:00:00')
    expect(formatClock(at(2026, 10, 30, 8, 30, 0), now)).toBe('Mon 08:30')
    expect(formatClock(at(2026, 11, 24, 18, 0, 0), now)).toBe('Dec 24 18:00')
    expect(formatClock(null, now)).toBe(DASH)
  })
})

describe('losses and floats', () => {
  it('formats the figures', () => {
    expect(formatLoss(2.31)).toBe('2.3100')
    expect(formatLr(0.0029)).toBe('2.90e-3')
    expect(formatLr(0.03)).toBe('0.0300')
    expect(formatLr(6e-4)).toBe('6.00e-4')
    expect(formatFloat(0.61)).toBe('0.6100')
    expect(formatFloat(12.5)).toBe('12.50')
    expect(formatFloat(0.0029)).toBe('2.900e-3')
    expect(formatFloat(123456)).toBe('1.235e5')
  })

  it('never shows NaN or Infinity', () => {
    const formatters = [formatInt, formatCompact, formatPercent, formatTokensPerSec, formatMs, formatDuration, formatLoss, formatFloat, formatLr, formatClock]
    for (const format of formatters) {
      for (const value of [NaN, Infinity, -Infinity, null, undefined]) {
        expect(format(value as number)).toBe(DASH)
      }
    }
    expect(eta('estimated', NaN, 1, 2)).toEqual({ text: 'estimating…', range: null })
    expect(eta('estimated', Infinity, 1, 2)).toEqual({ text: 'estimating…', range: null })
    expect(eta('estimated', -5, -6, -4)).toEqual({ text: 'estimating…', range: null })
    expect(eta('estimated', 10, NaN, Infinity)).toEqual({ text: '10s', range: null })
    expect(formatMfu(NaN, 1e12)).toEqual({ text: DASH, warning: null })
    expect(formatMfu(1e9, 0)).toEqual({ text: DASH, warning: null })
    expect(formatFlops(Infinity)).toBe(DASH)
    expect(formatTokenCounter(NaN, 100)).toBe('— / 100 tokens')
  })
})

describe('MFU', () => {
  it('formats model FLOP/s and the peak with SI prefixes', () => {
    expect(formatFlops(11.486e9)).toBe('11.5 GFLOP/s')
    expect(formatFlops(166.144e9)).toBe('166 GFLOP/s')
    expect(formatFlops(312e12)).toBe('312 TFLOP/s')
    expect(formatFlops(999.6e9)).toBe('1.00 TFLOP/s')
    expect(formatFlops(12)).toBe('12.0 FLOP/s')
  })

  it('is model FLOP/s over the peak, and warns above 100%', () => {
    expect(formatMfu(11.486e9, 1e11)).toEqual({ text: '11.5%', warning: null })
    expect(formatMfu(11.486e9, 312e12)).toEqual({ text: '0.00%', warning: null })
    expect(formatMfu(4.2e9, 1e12)).toEqual({ text: '0.42%', warning: null })
    expect(formatMfu(1.5e12, 1e12)).toEqual({ text: '150.0%', warning: 'above 100%: the peak is set too low' })
  })

  it('reads a peak the user types', () => {
    expect(parsePeakFlops('3e11')).toBe(3e11)
    expect(parsePeakFlops('312T')).toBe(312e12)
    expect(parsePeakFlops(' 1.5 PFLOP/s ')).toBe(1.5e15)
    expect(parsePeakFlops('166 gflop/s')).toBe(166e9)
    expect(parsePeakFlops('166 GFLOPS')).toBe(166e9)
    for (const bad of ['', 'fast', '0', '-3e11', '1e400', '12 X']) expect(parsePeakFlops(bad)).toBeNull()
  })
})
