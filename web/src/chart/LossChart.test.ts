// @vitest-environment happy-dom
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { LossChart, xDomainFor } from './LossChart'
import { XYSeries } from './series'

let frames: FrameRequestCallback[]
let hidden: boolean
let container: HTMLElement
const calls: string[] = []

/** A 2D context that records what is called on it. */
function recordingContext(): CanvasRenderingContext2D {
  return new Proxy({} as Record<string | symbol, unknown>, {
    get(target, prop) {
      if (prop === 'measureText') return (t: string) => ({ width: t.length * 6 })
      if (prop in target) return target[prop]
      return (...args: unknown[]) => {
        calls.push(`${String(prop)}(${args.filter((a) => typeof a !== 'object').join(',')})`)
      }
    },
    set(target, prop, value) {
      target[prop] = value
      return true
    },
  }) as unknown as CanvasRenderingContext2D
}

function runFrames() {
  const pending = frames
  frames = []
  pending.forEach((cb) => cb(performance.now()))
}

function makeChart(train = new XYSeries(), val = new XYSeries()) {
  return new LossChart(container, {
    series: [
      { data: train, label: 'train loss', colorVar: '--chart-train', fallbackColor: '#00f', style: 'line' },
      { data: val, label: 'val loss', colorVar: '--chart-val', fallbackColor: '#f80', style: 'line+points' },
    ],
    xLabel: 'step',
    yLabel: 'loss',
    ariaLabel: 'Loss by step',
  })
}

beforeEach(() => {
  frames = []
  hidden = false
  calls.length = 0
  vi.stubGlobal('requestAnimationFrame', (cb: FrameRequestCallback) => {
    frames.push(cb)
    return frames.length
  })
  vi.stubGlobal('cancelAnimationFrame', () => {})
  vi.stubGlobal(
    'Path2D',
    class {
      moveTo() {}
      lineTo() {}
      arc(x: number, y: number, r: number) {
        calls.push(`path.arc(${x},${y},${r})`)
      }
    },
  )
  Object.defineProperty(document, 'hidden', { configurable: true, get: () => hidden })
  Object.defineProperty(window, 'devicePixelRatio', { configurable: true, value: 2 })
  vi.spyOn(HTMLElement.prototype, 'getBoundingClientRect').mockReturnValue({
    width: 600.7,
    height: 300,
    top: 0,
    left: 0,
    right: 600.7,
    bottom: 300,
    x: 0,
    y: 0,
    toJSON() {},
  } as DOMRect)
  vi.spyOn(HTMLCanvasElement.prototype, 'getContext').mockImplementation(() => recordingContext() as never)
  container = document.createElement('div')
  document.body.append(container)
})

afterEach(() => {
  container.remove()
  vi.restoreAllMocks()
  vi.unstubAllGlobals()
})

describe('LossChart', () => {
  it('sizes the canvas to its box × devicePixelRatio and scales the context', () => {
    const chart = makeChart()
    expect(chart.canvas.width).toBe(1200)
    expect(chart.canvas.height).toBe(600)
    expect(chart.canvas.style.width).toBe('600px')
    expect(chart.canvas.style.height).toBe('300px')
    expect(calls).toContain('setTransform(2,0,0,2,0,0)')
    expect(chart.drawCount).toBe(1) // drawn at once after sizing
    chart.destroy()
  })

  it('draws at most once per animation frame however often it is invalidated', () => {
    const train = new XYSeries()
    const chart = makeChart(train)
    const before = chart.drawCount
    for (let i = 1; i <= 500; i++) {
      train.push(i, 3 - i / 1000)
      chart.invalidate()
    }
    expect(frames).toHaveLength(1)
    expect(chart.drawCount).toBe(before)
    runFrames()
    expect(chart.drawCount).toBe(before + 1)
    runFrames()
    expect(chart.drawCount).toBe(before + 1) // nothing new, no draw
    chart.destroy()
  })

  it('does not draw while the page is hidden and catches up when it shows', () => {
    const train = new XYSeries()
    const chart = makeChart(train)
    const before = chart.drawCount
    hidden = true
    train.push(1, 2)
    chart.invalidate()
    expect(frames).toHaveLength(0)
    hidden = false
    document.dispatchEvent(new Event('visibilitychange'))
    expect(frames).toHaveLength(1)
    runFrames()
    expect(chart.drawCount).toBe(before + 1)
    chart.destroy()
  })

  it('has a legend and an accessible name with the latest values', () => {
    const train = new XYSeries()
    const val = new XYSeries()
    const chart = makeChart(train, val)
    train.push(1, 4.25)
    train.push(2, NaN)
    val.push(2, 3.5)
    chart.invalidate()
    const legend = container.querySelector('.loss-chart__legend')!
    expect(Array.from(legend.querySelectorAll('li')).map((li) => li.textContent)).toEqual(['train loss—', 'val loss3.5000'])
    expect(chart.canvas.getAttribute('role')).toBe('img')
    expect(chart.canvas.getAttribute('aria-label')).toBe('Loss by step. train loss: 2 points; val loss: 1 point, latest 3.5000.')
    chart.destroy()
  })

  it('draws the only point of a series as a dot', () => {
    const train = new XYSeries()
    const chart = makeChart(train)
    train.push(1, 5)
    chart.invalidate()
    calls.length = 0
    runFrames()
    // x domain [1, 2] → the left edge of the plot (46: y labels "4.6"… are 18px + 28);
    // y domain 5 ± 0.5 → the middle of 12…260.
    expect(calls.filter((c) => c.startsWith('path.arc'))).toEqual([`path.arc(46,136,3)`])
    expect(calls).toContain('fill()')
    expect(chart.canvas.getAttribute('aria-label')).toBe('Loss by step. train loss: 1 point, latest 5.0000; val loss: 0 points.')

    // Two points make a line: no dot any more.
    train.push(2, 4.5)
    chart.invalidate()
    calls.length = 0
    runFrames()
    expect(calls.filter((c) => c.startsWith('path.arc'))).toEqual([])
    chart.destroy()
  })

  it('removes itself and stops drawing when destroyed', () => {
    const train = new XYSeries()
    const chart = makeChart(train)
    chart.destroy()
    expect(container.querySelector('canvas')).toBeNull()
    chart.invalidate()
    expect(frames).toHaveLength(0)
  })
})

describe('xDomainFor', () => {
  it('starts a fresh run at step 0 and a resumed one at its first step', () => {
    expect(xDomainFor({ min: 1, max: 500 })).toEqual([0, 500])
    expect(xDomainFor({ min: 100, max: 500 })).toEqual([0, 500])
    expect(xDomainFor({ min: 5000, max: 6000 })).toEqual([5000, 6000])
    expect(xDomainFor({ min: 7, max: 7 })).toEqual([7, 8])
    expect(xDomainFor({ min: 0, max: 0 })).toEqual([0, 1])
  })
})
