// The chart lab: a blank page that drives our chart module and uPlot on the same data, for
// the benchmark (bench/run.mjs) and the real-browser pixel test (e2e/chart.test.mjs).
// Everything is on `window.lab`, called through page.evaluate.

import uPlot from 'uplot'
import 'uplot/dist/uPlot.min.css'
import { LossChart, type ChartSeries } from '../src/chart/LossChart'
import { PointSeries } from '../src/chart/series'
import { rng } from '../src/chart/random'


/** A loss curve's point i: a decaying mean with noise; f32-exact, like a trainer's. */
function makeLoss(seed: number) {
  const random = rng(seed)
  return (i: number) => Math.fround(1.6 + 2.6 * Math.exp(-i / 2e5) + 0.15 * (random() - 0.5))
}

const T0 = 1_764_400_000 // seconds since the epoch
const TOKENS_PER_STEP = 2048

let ours: { chart: LossChart; train: PointSeries; val: PointSeries; next: (i: number) => number } | null = null
let up: { u: uPlot; xs: Float64Array; ys: Float64Array; ema: Float64Array; len: number; next: (i: number) => number } | null = null

function oursHost(): HTMLElement {
  const el = document.getElementById('ours')!
  el.replaceChildren()
  return el
}

function trainSeries(): PointSeries {
  return new PointSeries({ values: ['loss'], smoothed: [{ name: 'loss_ema', of: 'loss' }], smoothing: 0.6 })
}

function pushStep(s: PointSeries, step: number, loss: number) {
  s.push({ step, tokens: step * TOKENS_PER_STEP, timeSecs: T0 + step * 0.34 + (step % 7) * 0.001, values: { loss } })
}

function chartOf(train: PointSeries, val: PointSeries): LossChart {
  const series: ChartSeries[] = [
    { data: train, column: 'loss', label: 'train loss', colorVar: '--chart-train', fallbackColor: '#2563eb', style: 'line', lineWidth: 1, alpha: 0.3 },
    { data: train, column: 'loss_ema', label: 'train loss (EMA)', colorVar: '--chart-train', fallbackColor: '#2563eb', style: 'line', lineWidth: 1 },
    { data: val, column: 'val_loss', label: 'val loss', colorVar: '--chart-val', fallbackColor: '#e8590c', style: 'line+points', lineWidth: 2 },
  ]
  return new LossChart(oursHost(), { series, yLabel: 'loss', ariaLabel: 'lab' })
}

/** Force the canvas's pending drawing to be rasterized (reading a pixel waits for it). */
function flush(canvas: HTMLCanvasElement) {
  canvas.getContext('2d')!.getImageData(0, 0, 1, 1)
}

/**
 * The data in hand before either chart sees it: the columns a page has once it parsed a
 * run's history (step, tokens, time, loss), as Float64Arrays. uPlot is given `step` and
 * `loss` themselves (and an EMA computed for it, outside its timing).
 */
let columns: { n: number; step: Float64Array; tokens: Float64Array; timeSecs: Float64Array; loss: Float64Array; next: (i: number) => number } | null = null

function makeColumns(n: number, seed: number) {
  const next = makeLoss(seed)
  const step = new Float64Array(n)
  const tokens = new Float64Array(n)
  const timeSecs = new Float64Array(n)
  const loss = new Float64Array(n)
  for (let i = 1; i <= n; i++) {
    step[i - 1] = i
    tokens[i - 1] = i * TOKENS_PER_STEP
    timeSecs[i - 1] = T0 + i * 0.34 + (i % 7) * 0.001
    loss[i - 1] = next(i)
  }
  columns = { n, step, tokens, timeSecs, loss, next }
  return columns
}

/** A full garbage collection before a timed first render (Chromium runs with --expose-gc), so that neither chart pays for the other's garbage. */
function collect() {
  ;(globalThis as { gc?: () => void }).gc?.()
}

const lab = {
  /** Make the n points both charts are given (outside every timing). */
  load(n: number, seed = 1) {
    makeColumns(n, seed)
  },

  /**
   * Our first render, from the columns in hand to pixels: bulk ingest (x columns, loss,
   * EMA), then creating the chart (pyramids built by its first draw) and rasterizing.
   * Returns the total and its two parts in ms, and bytes per point.
   */
  oursFirstRender() {
    if (!columns) throw new Error('load first')
    ours?.chart?.destroy()
    ours = null
    collect()
    const { step, tokens, timeSecs, loss, next, n } = columns
    const t0 = performance.now()
    const train = trainSeries()
    train.appendColumns({ step, tokens, timeSecs, values: { loss } })
    const t1 = performance.now()
    const val = new PointSeries({ values: ['val_loss'] })
    ours = { chart: chartOf(train, val), train, val, next }
    flush(ours.chart.canvas)
    const t2 = performance.now()
    return { totalMs: t2 - t0, ingestMs: t1 - t0, drawMs: t2 - t1, bytesPerPoint: train.bytes() / n, wide: train.column('loss').isWide() }
  },

  /** A new chart on the series already loaded (pyramids built): render without ingest. */
  oursRenderLoaded() {
    if (!ours) throw new Error('oursFirstRender first')
    ours.chart.destroy()
    collect()
    const t0 = performance.now()
    ours.chart = chartOf(ours.train, ours.val)
    flush(ours.chart.canvas)
    return performance.now() - t0
  },

  /** The old way of loading: point by point through `push` (for the ingest comparison). */
  oursPushLoad() {
    if (!columns) throw new Error('load first')
    const { step, tokens, timeSecs, loss, n } = columns
    const t0 = performance.now()
    const train = trainSeries()
    for (let i = 0; i < n; i++) train.push({ step: step[i], tokens: tokens[i], timeSecs: timeSecs[i], values: { loss: loss[i] } })
    train.column('loss').update()
    train.column('loss_ema').update()
    return performance.now() - t0
  },

  /** Append 100 points and redraw (what one animation frame does while live). */
  oursAppend(count = 100) {
    if (!ours) throw new Error('oursLoad first')
    const { train, chart, next } = ours
    const t0 = performance.now()
    const start = train.length + 1
    for (let i = start; i < start + count; i++) pushStep(train, i, next(i))
    chart.invalidate()
    chart.draw()
    flush(chart.canvas)
    return performance.now() - t0
  },

  /** uPlot's arrays: the same step and loss columns, with room to append (outside the timing). */
  uplotLoad(room = 100_000) {
    if (!columns) throw new Error('load first')
    up?.u.destroy()
    const { n, step, loss } = columns
    const next = makeLoss(1)
    const xs = new Float64Array(n + room)
    const ys = new Float64Array(n + room)
    const ema = new Float64Array(n + room)
    xs.set(step)
    ys.set(loss)
    let last = 0
    let pow = 1
    for (let i = 0; i < n; i++) {
      last = last * 0.6 + 0.4 * ys[i]
      pow *= 0.6
      ema[i] = last / (1 - pow)
    }
    for (let i = 1; i <= n; i++) next(i) // the same continuation as ours
    const fill = (i: number) => {
      xs[i - 1] = i
      const y = next(i)
      ys[i - 1] = y
      last = last * 0.6 + 0.4 * y
      pow *= 0.6
      ema[i - 1] = last / (1 - pow)
    }
    up = { u: null as unknown as uPlot, xs, ys, ema, len: n, next: (i) => (fill(i), 0) }
  },

  /** uPlot's first render of the same data on a 1200×400 canvas. */
  async uplotFirstRender() {
    if (!up) throw new Error('uplotLoad first')
    const host = document.getElementById('uplot')!
    host.replaceChildren()
    const { xs, ys, ema, len } = up
    collect()
    const t0 = performance.now()
    let drawn = false
    up.u = new uPlot(
      {
        width: 1200,
        height: 400,
        pxAlign: 0,
        legend: { show: false },
        cursor: { show: false },
        scales: { x: { time: false } },
        series: [{}, { stroke: 'rgba(37,99,235,0.3)', width: 1 }, { stroke: '#2563eb', width: 1 }],
        hooks: { draw: [() => (drawn = true)] },
      },
      [xs.subarray(0, len), ys.subarray(0, len), ema.subarray(0, len)] as unknown as uPlot.AlignedData,
      host,
    )
    while (!drawn) await Promise.resolve()
    flush(up.u.ctx.canvas)
    return performance.now() - t0
  },

  /** uPlot: append 100 points (typed-array views, no copy) and redraw. */
  async uplotAppend(count = 100) {
    if (!up) throw new Error('uplotLoad first')
    const t0 = performance.now()
    for (let i = up.len + 1; i <= up.len + count; i++) up.next(i)
    up.len += count
    let drawn = false
    const off = () => (drawn = true)
    up.u.hooks.draw = [off]
    up.u.setData([up.xs.subarray(0, up.len), up.ys.subarray(0, up.len), up.ema.subarray(0, up.len)] as unknown as uPlot.AlignedData)
    while (!drawn) await Promise.resolve()
    flush(up.u.ctx.canvas)
    return performance.now() - t0
  },

  /** Free everything (between sizes). */
  reset() {
    ours?.chart?.destroy()
    ours = null
    columns = null
    up?.u?.destroy()
    up = null
    document.getElementById('uplot')!.replaceChildren()
  },

  // ---- for the pixel test ----

  /**
   * n points of flat loss 2.0 with one spike to 5.0 at step `spikeAt`, and NaN at
   * `isolatedAt − 1` and `isolatedAt + 1` around a finite 1.0 (everything else 2.0).
   * Draws only the raw loss, in a fixed colour, with a fixed y range; returns where the
   * spike and the isolated point should be in canvas pixels.
   */
  pixelScene(n: number, spikeAt: number, isolatedAt: number) {
    ours?.chart?.destroy()
    const train = new PointSeries({ values: ['loss'] })
    const val = new PointSeries({ values: ['val_loss'] })
    // Loaded in bulk, as the page loads a history (the first 1,000 points one by one).
    const step = new Float64Array(n)
    const tokens = new Float64Array(n)
    const timeSecs = new Float64Array(n)
    const loss = new Float64Array(n)
    for (let i = 1; i <= n; i++) {
      let y = 2
      if (i === spikeAt) y = 5
      else if (i === isolatedAt - 1 || i === isolatedAt + 1) y = NaN
      else if (i === isolatedAt) y = 1
      step[i - 1] = i
      tokens[i - 1] = i * TOKENS_PER_STEP
      timeSecs[i - 1] = T0 + i
      loss[i - 1] = y
    }
    const head = Math.min(n, 1000)
    for (let i = 0; i < head; i++) train.push({ step: step[i], tokens: tokens[i], timeSecs: timeSecs[i], values: { loss: loss[i] } })
    train.appendColumns({ step: step.subarray(head), tokens: tokens.subarray(head), timeSecs: timeSecs.subarray(head), values: { loss: loss.subarray(head) } })
    const chart = new LossChart(oursHost(), {
      series: [{ data: train, column: 'loss', label: 'train loss', colorVar: '--lab-none', fallbackColor: '#000000', style: 'line', lineWidth: 1 }],
      yLabel: 'loss',
      ariaLabel: 'pixel test',
    })
    ours = { chart, train, val, next: () => 2 }
    chart.draw()
    const layout = (chart as unknown as { layout: { left: number; right: number; top: number; bottom: number; xScale: { map(v: number): number }; yScale: { map(v: number): number } } }).layout
    return {
      width: chart.canvas.width,
      height: chart.canvas.height,
      box: { left: layout.left, right: layout.right, top: layout.top, bottom: layout.bottom },
      spike: { x: layout.xScale.map(spikeAt), yTop: layout.yScale.map(5), yBase: layout.yScale.map(2) },
      isolated: { x: layout.xScale.map(isolatedAt), y: layout.yScale.map(1), yBase: layout.yScale.map(2) },
    }
  },

  /**
   * The console's series set (loss, its EMA, val loss, lr and grad norm on the right axis)
   * over 200,000 points loaded in bulk, with three NaN losses and a restart near the right
   * edge. Returns the notes and legend as a person reads them, and the restart label's box.
   */
  notesScene() {
    ours?.chart?.destroy()
    const n = 200_000
    const train = new PointSeries({ values: ['loss', 'lr', 'grad_norm'], lossy: ['lr', 'grad_norm'], smoothed: [{ name: 'loss_ema', of: 'loss' }], smoothing: 0.6 })
    const val = new PointSeries({ values: ['val_loss'] })
    const next = makeLoss(3)
    const step = new Float64Array(n)
    const loss = new Float64Array(n)
    const lr = new Float64Array(n)
    const gradNorm = new Float64Array(n)
    const timeSecs = new Float64Array(n)
    for (let i = 0; i < n; i++) {
      step[i] = i < n - 100 ? i + 1 : i - 200 // the last 100 points: restarted 300 steps back
      loss[i] = i === 5000 || i === 90_000 || i === 150_000 ? NaN : next(i + 1)
      lr[i] = 1e-3 * Math.min(1, (i + 1) / 2000)
      gradNorm[i] = 1 + 0.2 * Math.sin(i / 500)
      timeSecs[i] = T0 + i
    }
    train.appendColumns({ step, timeSecs, values: { loss, lr, grad_norm: gradNorm } })
    const s = (column: string, label: string, extra: Partial<ChartSeries> = {}): ChartSeries => ({ data: train, column, label, colorVar: '--chart-train', fallbackColor: '#2563eb', style: 'line', lineWidth: 1, ...extra })
    const chart = new LossChart(oursHost(), {
      series: [
        s('loss', 'train loss', { alpha: 0.3 }),
        s('loss_ema', 'train loss (EMA)'),
        { data: val, column: 'val_loss', label: 'val loss', colorVar: '--chart-val', fallbackColor: '#e8590c', style: 'line+points' },
        s('lr', 'learning rate', { axis: 'y2', visible: false }),
        s('grad_norm', 'grad norm', { axis: 'y2', visible: false }),
      ],
      yLabel: 'loss',
      ariaLabel: 'notes test',
    })
    ours = { chart, train, val, next }
    chart.draw()
    const read = () => ({
      notes: ours!.chart.root.querySelector('.loss-chart__notes')!.textContent,
      legend: Array.from(ours!.chart.root.querySelectorAll('.loss-chart__legend li')).map((li) => li.textContent),
      pressed: Array.from(ours!.chart.root.querySelectorAll('.loss-chart__toggle')).map((b) => b.getAttribute('aria-pressed')),
    })
    return read()
  },

  /** Click legend entry `index` of the current chart, draw, and read the legend state back. */
  clickLegend(index: number) {
    const chart = ours!.chart
    chart.root.querySelectorAll<HTMLButtonElement>('.loss-chart__toggle')[index].click()
    chart.draw()
    return Array.from(chart.root.querySelectorAll('.loss-chart__toggle')).map((b) => b.getAttribute('aria-pressed'))
  },

  // ---- diagnostics (not used by the benchmark's table) ----

  /** Mean phase times (ms) of `n` appends of 100 points and redraws: where the time goes. */
  profileAppend(n = 30) {
    if (!ours) throw new Error('oursLoad and oursFirstRender first')
    const { chart, train, next } = ours
    chart.profile = {}
    const out: Record<string, number> = { total: 0, push: 0, invalidate: 0, draw: 0, flush: 0 }
    for (let k = 0; k < n; k++) {
      const t0 = performance.now()
      const start = train.length + 1
      for (let i = start; i < start + 100; i++) pushStep(train, i, next(i))
      const t1 = performance.now()
      chart.invalidate()
      const t2 = performance.now()
      chart.draw()
      const t3 = performance.now()
      flush(chart.canvas)
      const t4 = performance.now()
      out.push += t1 - t0
      out.invalidate += t2 - t1
      out.draw += t3 - t2
      out.flush += t4 - t3
      out.total += t4 - t0
    }
    for (const [k, v] of Object.entries(chart.profile)) out[`draw.${k}`] = v
    for (const k of Object.keys(out)) out[k] /= n
    chart.profile = null
    return out
  },

  /** Time (ms) to set the EMA weight (recomputing it over every point) and redraw. */
  timeSmoothing(weight: number) {
    if (!ours) throw new Error('oursLoad and oursFirstRender first')
    const t0 = performance.now()
    ours.train.setSmoothing(weight)
    ours.chart.draw()
    flush(ours.chart.canvas)
    return performance.now() - t0
  },

  /** RGBA of the chart's canvas as a plain array (rows of width × 4). */
  pixels(): { width: number; height: number; data: number[] } {
    const canvas = ours!.chart.canvas
    const img = canvas.getContext('2d')!.getImageData(0, 0, canvas.width, canvas.height)
    return { width: img.width, height: img.height, data: Array.from(img.data) }
  },
}

declare global {
  interface Window {
    lab: typeof lab
  }
}
window.lab = lab
document.body.dataset.ready = 'true'
