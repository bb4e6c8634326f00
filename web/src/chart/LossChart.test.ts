// @vitest-environment happy-dom
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { LossChart, xDomainFor, type LossChartOptions } from './LossChart'
import { PointSeries } from './series'

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

function trainSeries() {
  return new PointSeries({ values: ['loss'] })
}
function valSeries() {
  return new PointSeries({ values: ['val_loss'] })
}
/** Append a point at `step` (tokens 100 per step, one second per step). */
function add(s: PointSeries, step: number, y: number) {
  const name = s.columns.has('loss') ? 'loss' : 'val_loss'
  s.push({ step, tokens: step * 100, timeSecs: 1_700_000_000 + step, values: { [name]: y } })
}

function makeChart(train = trainSeries(), val = valSeries(), extra: Partial<LossChartOptions> = {}) {
  return new LossChart(container, {
    series: [
      { data: train, column: 'loss', label: 'train loss', colorVar: '--chart-train', fallbackColor: '#00f', style: 'line' },
      { data: val, column: 'val_loss', label: 'val loss', colorVar: '--chart-val', fallbackColor: '#f80', style: 'line+points' },
    ],
    yLabel: 'loss',
    ariaLabel: 'Loss by step',
    ...extra,
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
      moveTo(x: number, y: number) {
        calls.push(`path.moveTo(${x},${y})`)
      }
      lineTo(x: number, y: number) {
        calls.push(`path.lineTo(${x},${y})`)
      }
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
    const train = trainSeries()
    const chart = makeChart(train)
    const before = chart.drawCount
    for (let i = 1; i <= 500; i++) {
      add(train, i, 3 - i / 1000)
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
    const train = trainSeries()
    const chart = makeChart(train)
    const before = chart.drawCount
    hidden = true
    add(train, 1, 2)
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
    const train = trainSeries()
    const val = valSeries()
    const chart = makeChart(train, val)
    add(train, 1, 4.25)
    add(train, 2, NaN)
    add(val, 2, 3.5)
    chart.invalidate()
    const legend = container.querySelector('.loss-chart__legend')!
    expect(Array.from(legend.querySelectorAll('li')).map((li) => li.textContent)).toEqual(['train loss— · 1 NaN/Inf', 'val loss3.5000'])
    expect(chart.canvas.getAttribute('role')).toBe('img')
    expect(chart.canvas.getAttribute('aria-label')).toBe('Loss by step. train loss: 2 points, 1 not finite; val loss: 1 point, latest 3.5000.')
    chart.destroy()
  })

  it('draws the only point of a series as a dot', () => {
    const train = trainSeries()
    const chart = makeChart(train)
    add(train, 1, 5)
    chart.invalidate()
    calls.length = 0
    runFrames()
    // x domain [0, 2] (a lone point is centred) → the middle of the plot, 46…584 (46: y
    // labels "4.6"… are 18px + 28); y domain 5 ± 0.5 → the middle of 14…260.
    expect(calls.filter((c) => c.startsWith('path.arc'))).toEqual([`path.arc(315,137,3)`])
    expect(calls).toContain('fill()')
    expect(chart.canvas.getAttribute('aria-label')).toBe('Loss by step. train loss: 1 point, latest 5.0000; val loss: 0 points.')

    // Two points make a line: no dot any more.
    add(train, 2, 4.5)
    chart.invalidate()
    calls.length = 0
    runFrames()
    expect(calls.filter((c) => c.startsWith('path.arc'))).toEqual([])
    chart.destroy()
  })

  it('removes itself and stops drawing when destroyed', () => {
    const train = trainSeries()
    const chart = makeChart(train)
    chart.destroy()
    expect(container.querySelector('canvas')).toBeNull()
    chart.invalidate()
    expect(frames).toHaveLength(0)
  })
})

describe('LossChart truth marks and notes', () => {
  const notes = () => container.querySelector('.loss-chart__notes')!
  const texts = () => calls.filter((c) => c.startsWith('fillText(')).map((c) => c.slice(9, c.indexOf(',')))

  it('marks NaN/Inf with a red tick at the top edge, counts them, and keeps them out of the range', () => {
    const train = trainSeries()
    ;[3, NaN, 2, Infinity, 1].forEach((y, i) => add(train, i + 1, y))
    const chart = makeChart(train)
    calls.length = 0
    chart.draw()
    expect(notes().textContent).toBe('2 NaN/Inf values in view, marked in red at the top')
    // Two ticks from above the plot (top 14 − 8) down to its top edge, at steps 2 and 4.
    const ticks = calls.filter((c) => /^path\.moveTo\([\d.]+,6\)$/.test(c))
    expect(ticks).toHaveLength(2)
    // The y range is that of the finite values: 1…3 padded by 5 % → ticks 1 … 3.
    expect(texts()).toEqual(expect.arrayContaining(['1.0', '2.0', '3.0']))
    expect(texts()).not.toContain('Infinity')
    expect(container.querySelector('.loss-chart__legend li')!.textContent).toBe('train loss1.0000 · 2 NaN/Inf')
    chart.destroy()
  })

  it('leaves values ≤ 0 out of a log axis and says how many', () => {
    const train = trainSeries()
    ;[10, 0, 1, -2, 0.1].forEach((y, i) => add(train, i + 1, y))
    const chart = makeChart(train, valSeries(), { logY: true })
    calls.length = 0
    chart.draw()
    expect(notes().textContent).toBe('log scale: 2 values ≤ 0 left out')
    expect(texts()).toEqual(expect.arrayContaining(['0.1', '1', '10']))
    expect(calls).toContain('fillText(loss, log scale,0,0)')
    chart.setLogY(false)
    chart.draw()
    expect((notes() as HTMLElement).hidden).toBe(true)
    chart.destroy()
  })

  it('counts each data point once when the loss and its EMA are both shown', () => {
    const train = new PointSeries({ values: ['loss'], smoothed: [{ name: 'loss_ema', of: 'loss' }], smoothing: 0.6 })
    ;[3, NaN, 2, Infinity, 1, -Infinity, -8, 0.5, 0, 2].forEach((y, i) => add(train, i + 1, y))
    const series = (column: string, label: string) => ({ data: train, column, label, colorVar: '--chart-train', fallbackColor: '#00f', style: 'line' as const })
    const chart = new LossChart(container, { series: [series('loss', 'train loss'), series('loss_ema', 'train loss (EMA)')], yLabel: 'loss', logY: true })
    chart.draw()
    // 3 NaN/Inf points (not 6); on the log axis, 2 raw values ≤ 0 and the EMA's ≤ 0 values
    // at other steps count as points too, each once.
    const ema = train.valueArray('loss_ema')
    const nonPositive = ema.map((v, i) => (v <= 0 && v > -Infinity) || [6, 8].includes(i)).filter(Boolean).length
    expect(nonPositive).toBeGreaterThan(2) // the EMA goes ≤ 0 where the raw loss does not
    expect(notes().textContent).toBe(`3 NaN/Inf values in view, marked in red at the top · log scale: ${nonPositive} values ≤ 0 left out`)
    const legend = Array.from(container.querySelectorAll('.loss-chart__legend li')).map((li) => li.textContent)
    expect(legend).toEqual(['train loss2.0000 · 3 NaN/Inf', `train loss (EMA)${ema[9].toFixed(4)} · 3 NaN/Inf`])
    chart.destroy()
  })

  it('labels huge losses in exponent notation and keeps their EMA finite', () => {
    const train = new PointSeries({ values: ['loss'], smoothed: [{ name: 'loss_ema', of: 'loss' }], smoothing: 0.6 })
    ;[1e308, 1.5e308, NaN, 1.2e308, 1.7e308].forEach((y, i) => add(train, i + 1, y))
    const series = (column: string, label: string) => ({ data: train, column, label, colorVar: '--chart-train', fallbackColor: '#00f', style: 'line' as const })
    const chart = new LossChart(container, { series: [series('loss', 'train loss'), series('loss_ema', 'train loss (EMA)')], yLabel: 'loss' })
    calls.length = 0
    chart.draw()
    const yLabels = calls.filter((c) => c.startsWith('fillText(') && /e30\d/.test(c)).map((c) => c.slice(9, c.indexOf(',')))
    expect(yLabels.length).toBeGreaterThanOrEqual(2)
    for (const l of yLabels) expect(l).toMatch(/^\d\.\de30\d$/)
    expect(notes().textContent).toBe('1 NaN/Inf value in view, marked in red at the top')
    const legend = Array.from(container.querySelectorAll('.loss-chart__legend li')).map((li) => li.textContent)
    expect(legend[0]).toBe('train loss1.70e308 · 1 NaN/Inf')
    expect(legend[1]).toMatch(/^train loss \(EMA\)1\.\d\de308 · 1 NaN\/Inf$/)
    chart.destroy()
  })

  it('keeps a restart label inside the plot near the right edge', () => {
    const train = trainSeries()
    ;[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 9].forEach((step, i) => add(train, step, 3 - i / 100))
    const chart = makeChart(train)
    calls.length = 0
    chart.draw()
    const call = calls.find((c) => c.startsWith('fillText(↺ restart at step 9,'))!
    const x = Number(call.split(',')[1])
    const width = '↺ restart at step 9'.length * 6 // the test context's measureText
    const box = (chart as unknown as { layout: { left: number; right: number; xScale: { map(v: number): number } } }).layout
    const line = box.xScale.map(9)
    expect(line).toBeGreaterThan(box.right - width) // near the edge: right of the line it would not fit
    expect(x + width).toBeLessThanOrEqual(box.right)
    expect(x).toBeGreaterThanOrEqual(box.left)
    expect(x + width).toBeLessThan(line) // left of the line
    chart.destroy()
  })

  it('draws a lone first point whole, centred', () => {
    const train = trainSeries()
    add(train, 1000, 2)
    const chart = makeChart(train)
    calls.length = 0
    chart.draw()
    const box = (chart as unknown as { layout: { left: number; right: number } }).layout
    const arc = calls.find((c) => c.startsWith('path.arc('))!
    const x = Number(arc.slice(9).split(',')[0])
    expect(x).toBeCloseTo((box.left + box.right) / 2, 6)
    chart.destroy()
  })

  it('gives the right axis to one series at a time', () => {
    const train = new PointSeries({ values: ['loss', 'lr', 'grad_norm'] })
    for (let i = 1; i <= 50; i++) train.push({ step: i, tokens: i, timeSecs: 1e9 + i, values: { loss: 3, lr: 1e-3 * (i / 50), grad_norm: 1 + (i % 5) / 10 } })
    const s = (column: string, label: string, axis: 'y' | 'y2', visible = true) => ({ data: train, column, label, colorVar: '--x', fallbackColor: '#000', style: 'line' as const, axis, visible })
    const chart = new LossChart(container, { series: [s('loss', 'train loss', 'y'), s('lr', 'learning rate', 'y2'), s('grad_norm', 'grad norm', 'y2')], yLabel: 'loss' })
    // Both asked visible: only the first gets the axis.
    expect([0, 1, 2].map((i) => chart.isSeriesVisible(i))).toEqual([true, true, false])
    calls.length = 0
    chart.draw()
    expect(calls).toContain('fillText(learning rate,0,0)')
    // lr alone on the axis: its ticks span 2e-5 … 1e-3, not 0 … 1.5.
    expect(calls.some((c) => /^fillText\(1\.00e-3,/.test(c))).toBe(true)
    const buttons = container.querySelectorAll<HTMLButtonElement>('.loss-chart__toggle')
    buttons[2].click() // grad norm: takes the axis, lr is hidden
    expect([0, 1, 2].map((i) => chart.isSeriesVisible(i))).toEqual([true, false, true])
    expect(buttons[1].getAttribute('aria-pressed')).toBe('false')
    calls.length = 0
    chart.draw()
    expect(calls).toContain('fillText(grad norm,0,0)')
    expect(calls.some((c) => /e-3,/.test(c))).toBe(false)
    buttons[0].click() // the left axis is not affected
    expect(chart.isSeriesVisible(2)).toBe(true)
    chart.destroy()
  })

  it('ranges over the 1st–99th percentile when asked, and says how many points lie outside', () => {
    const train = trainSeries()
    for (let i = 1; i <= 900; i++) add(train, i, i === 500 ? 1000 : i === 600 ? -1000 : 2 + (i % 10) / 100)
    const chart = makeChart(train, valSeries(), { ignoreOutliers: true })
    chart.draw()
    expect(notes().textContent).toBe('outliers ignored (1st–99th percentile): 1 above, 1 below the plot')
    expect(texts()).not.toContain('1000')
    chart.setIgnoreOutliers(false)
    calls.length = 0
    chart.draw()
    expect(notes().textContent).toBe('')
    expect(texts()).toContain('1000')
    chart.destroy()
  })

  it('marks a restart (the step went back) with a labelled line', () => {
    const train = trainSeries()
    ;[1, 2, 3, 4, 5, 6, 3, 4, 5, 6, 7, 8].forEach((step, i) => add(train, step, 3 - i / 100))
    const chart = makeChart(train)
    calls.length = 0
    chart.draw()
    expect(texts()).toContain('↺ restart at step 3')
    expect(chart.canvas.getAttribute('aria-label')).toContain('train loss: 12 points')
    chart.destroy()
  })
})

describe('LossChart interaction', () => {
  function pointer(type: string, x: number, y = 100, button = 0) {
    const e = new MouseEvent(type, { clientX: x, clientY: y, button, bubbles: true }) as PointerEvent
    Object.defineProperty(e, 'pointerId', { value: 1 })
    return e
  }
  const plot = () => container.querySelector('.loss-chart__plot') as HTMLElement

  it('shows a crosshair and tooltip on hover without drawing', () => {
    const train = trainSeries()
    for (let i = 1; i <= 100; i++) add(train, i, 3 - i / 100)
    const chart = makeChart(train)
    const draws = chart.drawCount
    plot().dispatchEvent(pointer('pointermove', 300))
    const tip = container.querySelector('.loss-chart__tooltip') as HTMLElement
    expect(tip.hidden).toBe(false)
    // Step 47 of 1…100 at x = 300 px; time as formatClock shows a day long gone ("Nov 14 22:14").
    expect(tip.textContent).toMatch(/^step47tokens4,700time[A-Z][a-z]{2} \d+ \d\d:\d\dtrain loss2\.5300$/)
    expect((container.querySelector('.loss-chart__cross--x') as HTMLElement).hidden).toBe(false)
    expect(chart.drawCount).toBe(draws)
    expect(frames).toHaveLength(0)
    plot().dispatchEvent(pointer('pointerleave', 300))
    expect(tip.hidden).toBe(true)
    chart.destroy()
  })

  it('zooms x by dragging, by the wheel and by keys; a double-click resets', () => {
    const train = trainSeries()
    for (let i = 1; i <= 1000; i++) add(train, i, 3 - i / 1000)
    const views: unknown[] = []
    const chart = makeChart(train, valSeries(), { onViewChange: (v) => views.push(v) })
    plot().dispatchEvent(pointer('pointerdown', 200))
    plot().dispatchEvent(pointer('pointermove', 400))
    expect((container.querySelector('.loss-chart__selection') as HTMLElement).hidden).toBe(false)
    plot().dispatchEvent(pointer('pointerup', 400))
    const zoomed = chart.view()
    expect(zoomed.follow).toBe(false)
    expect(zoomed.xWindow![0]).toBeGreaterThan(200)
    expect(zoomed.xWindow![1]).toBeLessThan(800)
    expect(views).toHaveLength(1)

    const width = zoomed.xWindow![1] - zoomed.xWindow![0]
    const wheel = new MouseEvent('wheel', { clientX: 300, bubbles: true, cancelable: true })
    Object.defineProperty(wheel, 'deltaY', { value: -100 })
    Object.defineProperty(wheel, 'deltaMode', { value: 0 })
    plot().dispatchEvent(wheel)
    expect(chart.view().xWindow![1] - chart.view().xWindow![0]).toBeCloseTo(width / 1.25, 6)

    plot().dispatchEvent(new KeyboardEvent('keydown', { key: 'ArrowRight', shiftKey: true }))
    expect(chart.view().xWindow![0]).toBeGreaterThan(zoomed.xWindow![0])
    plot().dispatchEvent(new KeyboardEvent('keydown', { key: 'ArrowRight' }))
    expect((container.querySelector('.loss-chart__tooltip') as HTMLElement).hidden).toBe(false)

    plot().dispatchEvent(new MouseEvent('dblclick', { bubbles: true }))
    expect(chart.view()).toEqual({ xWindow: null, follow: true })
    chart.destroy()
  })

  it('follows the latest point with a zoomed window', () => {
    const train = trainSeries()
    for (let i = 1; i <= 100; i++) add(train, i, 2)
    const chart = makeChart(train)
    chart.zoomTo(10, 30)
    const plot = container.querySelector('.loss-chart__plot')!
    // F toggles following (as docs/chart.md says): on, off, on.
    plot.dispatchEvent(new KeyboardEvent('keydown', { key: 'f' }))
    expect(chart.view().follow).toBe(true)
    plot.dispatchEvent(new KeyboardEvent('keydown', { key: 'F' }))
    expect(chart.view().follow).toBe(false)
    plot.dispatchEvent(new KeyboardEvent('keydown', { key: 'f' }))
    expect(chart.view().follow).toBe(true)
    chart.draw()
    expect(chart.view().xWindow).toEqual([80, 100])
    for (let i = 101; i <= 150; i++) add(train, i, 2)
    chart.draw()
    expect(chart.view().xWindow).toEqual([130, 150])
    chart.destroy()
  })
})

describe('xDomainFor', () => {
  it('starts a fresh run at step 0 and a resumed one at its first step', () => {
    expect(xDomainFor({ min: 1, max: 500 })).toEqual([0, 500])
    expect(xDomainFor({ min: 100, max: 500 })).toEqual([0, 500])
    expect(xDomainFor({ min: 5000, max: 6000 })).toEqual([5000, 6000])
    // A single point is centred, not on an edge where its dot would be cut.
    expect(xDomainFor({ min: 7, max: 7 })).toEqual([6, 8])
    expect(xDomainFor({ min: 0, max: 0 })).toEqual([-1, 1])
    expect(xDomainFor({ min: 1000, max: 1000 })).toEqual([950, 1050])
    expect(xDomainFor({ min: 1.7e9, max: 1.7e9 }, false)).toEqual([1.7e9 - 1, 1.7e9 + 1])
  })
})
