// A framework-free canvas chart for loss curves that shows every point at any zoom.
//
// * Data: `PointSeries` (columnar, with a min/max pyramid), appended to by the owner, who
//   then calls invalidate(). A draw reduces each visible series to ≤ 4 vertices per device
//   pixel column (path.ts), so its cost is O(pixels × log N), whatever the run's length.
// * Drawing: at most once per animation frame however often invalidate() is called, not at
//   all while the page is hidden (redrawn when it shows again).
// * Crisp on HiDPI (backing store = CSS size × devicePixelRatio), follows its container's
//   size (ResizeObserver) and the theme (CSS variables read at draw time).
// * Interaction without repainting: the crosshair, tooltip and drag selection are DOM
//   elements over the canvas; only a change of view (zoom, axis) draws again.
// * Truth: NaN/±Infinity get a red tick at the top edge and a count in the legend; values
//   ≤ 0 on a log axis are left out and counted in a note; restarts break the line and get
//   a dashed mark; with "ignore outliers" the y range is the 1st–99th percentile and a note
//   says how many points lie outside.

import { formatClock } from '../format'
import './chart.css'
import { BreakCursor, PathCache, loneVertices, tracePath } from './path'
import {
  formatLogTick,
  formatTick,
  formatTimeTick,
  linScale,
  logScale,
  logTicks,
  niceStep,
  niceTicks,
  paddedDomain,
  quantile,
  timeTicks,
  type Scale,
  type Ticks,
} from './scale'
import { IndexList, emptyRange, type Extent, type PointSeries, type XAxisKind } from './series'

/** How a series is drawn. */
export type SeriesStyle = 'line' | 'line+points'

/** One line of the chart: a value column of a `PointSeries`. */
export interface ChartSeries {
  /** The data (owned by the caller). */
  data: PointSeries
  /** The value column drawn, e.g. 'loss', 'loss_ema', 'val_loss', 'lr'. */
  column: string
  /** Legend text. */
  label: string
  /** CSS variable holding the colour, e.g. `--chart-train`. */
  colorVar: string
  /** Colour when the variable is not set. */
  fallbackColor: string
  style: SeriesStyle
  /** Line width in CSS pixels. */
  lineWidth?: number
  /** Opacity of the line (the raw train loss is drawn faint under its EMA). */
  alpha?: number
  /** Left axis ('y', the default) or right axis ('y2', e.g. learning rate, grad norm). */
  axis?: 'y' | 'y2'
  /** Shown at first (the legend toggles it); default true. */
  visible?: boolean
}

/** The x axis units shown. */
export const X_AXIS_LABELS: Record<XAxisKind, string> = { step: 'step', tokens: 'tokens', time: 'wall-clock time' }

export interface LossChartOptions {
  series: ChartSeries[]
  yLabel: string
  /** Title of the right axis when its series has no label (it shows one series at a time, titled by its label). */
  y2Label?: string
  /** Shown in the plot while there is no data. */
  emptyText?: string
  /** Accessible name of the canvas; a summary of the latest values is appended. */
  ariaLabel?: string
  xAxis?: XAxisKind
  /** Log scale on the left axis. */
  logY?: boolean
  /** Ignore outliers in the left axis's automatic range (1st–99th percentile). */
  ignoreOutliers?: boolean
  /** Keep the newest point in view while data arrives (default true). */
  follow?: boolean
  /** Told when the view changes through interaction (zoom, reset, follow). */
  onViewChange?: (view: ChartView) => void
}

/** The view state, for controls outside the chart. */
export interface ChartView {
  /** The zoomed x window, or null for the whole run. */
  xWindow: [number, number] | null
  follow: boolean
}

/** Colours and font of a draw, from CSS variables. */
export interface ChartTheme {
  text: string
  muted: string
  grid: string
  axis: string
  font: string
  bad: string
  restart: string
  series: string[]
}

/** Read the theme from CSS custom properties of `el` (at draw time, so it follows dark mode). */
export function readTheme(el: Element, series: readonly ChartSeries[]): ChartTheme {
  const style = getComputedStyle(el)
  const v = (name: string, fallback: string) => style.getPropertyValue(name).trim() || fallback
  return {
    text: v('--chart-text', '#374151'),
    muted: v('--chart-muted', '#6b7280'),
    grid: v('--chart-grid', 'rgba(127,127,127,0.18)'),
    axis: v('--chart-axis', 'rgba(127,127,127,0.5)'),
    font: v('--chart-font', '12px system-ui, sans-serif'),
    bad: v('--chart-bad', '#dc2626'),
    restart: v('--chart-restart', 'rgba(127,127,127,0.8)'),
    series: series.map((s) => v(s.colorVar, s.fallbackColor)),
  }
}

/** Plot margins in CSS pixels (left and right widen to fit tick labels). */
const MARGIN = { top: 14, right: 16, bottom: 40, leftMin: 40 }
const Y_TITLE_SPACE = 18
const TICK_TARGET_PX = { x: 100, y: 48 }
/** Radius of a data point drawn as a dot, in CSS pixels. */
const DOT_RADIUS = 3
/** Height of the NaN/Infinity mark at the top edge, in CSS pixels. */
const BAD_TICK_PX = 8
/** Quantiles of the outlier-robust range. */
export const OUTLIER_QUANTILES: [number, number] = [0.01, 0.99]
/** Values examined for the quantiles: all of them up to this count, else evenly spaced ones. */
export const QUANTILE_SAMPLE = 200_000
/** Zoom factor per wheel notch (deltaY 100) and per key press. */
const ZOOM_STEP = 1.25

/**
 * The x window for data spanning `ext`: from step 0 when the data starts near it (a fresh
 * run), else from the first x (a resumed run, or a time axis), to the last. A single x (one
 * point so far) is centred, with 5 % of its value (at least 1) on either side — 1 second on
 * a time axis — so that its dot is drawn whole, away from the axis.
 */
export function xDomainFor(ext: Extent, fromZero = true): [number, number] {
  if (ext.max === ext.min) {
    const pad = fromZero ? Math.max(1, Math.abs(ext.min) * 0.05) : 1
    return [ext.min - pad, ext.min + pad]
  }
  const start =
    fromZero && (ext.min <= 0 || ext.min <= (ext.max - ext.min) * 0.25) ? Math.min(0, ext.min) : ext.min
  return ext.max > start ? [start, ext.max] : [start, start + 1]
}

/** The plot area, in CSS pixels. */
interface Box {
  left: number
  right: number
  top: number
  bottom: number
}

/** Plot box and scales of the last draw. */
interface Layout extends Box {
  xScale: Scale
  yScale: Scale
  y2Scale: Scale | null
  axis: XAxisKind
}

/** Range of the left axis with what it left out (for notes). */
interface YRange {
  domain: [number, number]
  above: number
  below: number
  approximate: boolean
}

export class LossChart {
  /** The root element the chart creates inside its container. */
  readonly root: HTMLDivElement
  readonly canvas: HTMLCanvasElement
  private readonly plot: HTMLDivElement
  private readonly legend: HTMLUListElement
  private readonly legendValues: HTMLSpanElement[] = []
  private readonly legendButtons: HTMLButtonElement[] = []
  private readonly notes: HTMLDivElement
  private readonly crossX: HTMLDivElement
  private readonly crossY: HTMLDivElement
  private readonly tooltip: HTMLDivElement
  private readonly selection: HTMLDivElement
  private readonly options: LossChartOptions
  private readonly visible: boolean[]
  /** Per series: its reduction, reused while only points are appended. */
  private readonly paths: PathCache[]
  private readonly resizeObserver: ResizeObserver | null
  private readonly colorScheme: MediaQueryList | null
  private cssWidth = 0
  private cssHeight = 0
  private dpr = 1
  private frame = 0
  private dirty = true
  private destroyed = false
  private axis: XAxisKind
  private logY: boolean
  private ignoreOutliers: boolean
  private follow: boolean
  private xWindow: [number, number] | null = null
  private layout: Layout | null = null
  private dragStartPx: number | null = null
  private hoverPx: { x: number; y: number } | null = null
  private keyCursor: number | null = null
  private quantileCache: { key: string; total: number; lo: number; hi: number; above: number; below: number; approximate: boolean } | null = null
  /** Number of completed draws (for tests and diagnostics). */
  drawCount = 0
  /** Vertices drawn in the last draw (for tests and the benchmark). */
  lastVertexCount = 0
  /** Phase times of the last draw in ms, when `profile` is set (the benchmark's breakdown). */
  profile: Record<string, number> | null = null
  private mark(name: string, t0: number): number {
    const t = performance.now()
    if (this.profile) this.profile[name] = (this.profile[name] ?? 0) + t - t0
    return t
  }

  constructor(container: HTMLElement, options: LossChartOptions) {
    this.options = options
    this.axis = options.xAxis ?? 'step'
    this.logY = options.logY ?? false
    this.ignoreOutliers = options.ignoreOutliers ?? false
    this.follow = options.follow ?? true
    // One series on the right axis at a time: the first one asked to be visible.
    let y2Shown = false
    this.visible = options.series.map((s) => {
      const shown = s.visible ?? true
      if (!shown || s.axis !== 'y2') return shown
      if (y2Shown) return false
      y2Shown = true
      return true
    })
    this.paths = options.series.map(() => new PathCache())
    const doc = container.ownerDocument
    const el = <K extends keyof HTMLElementTagNameMap>(tag: K, className: string) => {
      const e = doc.createElement(tag)
      e.className = className
      return e
    }
    this.root = el('div', 'loss-chart')

    this.legend = el('ul', 'loss-chart__legend')
    options.series.forEach((s, i) => {
      const item = doc.createElement('li')
      const button = el('button', 'loss-chart__toggle')
      button.type = 'button'
      button.setAttribute('aria-pressed', String(this.visible[i]))
      button.title = `Show or hide ${s.label}`
      const swatch = el('span', `loss-chart__swatch loss-chart__swatch--${s.style === 'line' ? 'line' : 'points'}`)
      swatch.style.setProperty('--swatch-color', `var(${s.colorVar}, ${s.fallbackColor})`)
      if (s.alpha !== undefined) swatch.style.opacity = String(Math.max(0.35, s.alpha))
      swatch.setAttribute('aria-hidden', 'true')
      const label = el('span', 'loss-chart__label')
      label.textContent = s.label
      button.append(swatch, label)
      button.addEventListener('click', () => this.setSeriesVisible(i, !this.visible[i]))
      const value = el('span', 'loss-chart__value')
      item.append(button, value)
      this.legend.append(item)
      this.legendValues.push(value)
      this.legendButtons.push(button)
    })

    this.notes = el('div', 'loss-chart__notes')
    this.notes.setAttribute('aria-live', 'polite')
    this.plot = el('div', 'loss-chart__plot')
    this.plot.tabIndex = 0
    this.plot.setAttribute(
      'aria-label',
      'Loss chart. Left and right arrows read the values point by point; Shift with an arrow pans; plus and minus zoom; Escape resets the zoom; F follows the latest step.',
    )
    this.canvas = doc.createElement('canvas')
    this.canvas.setAttribute('role', 'img')
    this.crossX = el('div', 'loss-chart__cross loss-chart__cross--x')
    this.crossY = el('div', 'loss-chart__cross loss-chart__cross--y')
    this.tooltip = el('div', 'loss-chart__tooltip')
    this.tooltip.setAttribute('role', 'status')
    this.selection = el('div', 'loss-chart__selection')
    for (const e of [this.crossX, this.crossY, this.tooltip, this.selection]) e.hidden = true
    this.plot.append(this.canvas, this.crossX, this.crossY, this.selection, this.tooltip)
    this.root.append(this.legend, this.notes, this.plot)
    container.append(this.root)

    this.plot.addEventListener('pointermove', this.onPointerMove)
    this.plot.addEventListener('pointerdown', this.onPointerDown)
    this.plot.addEventListener('pointerup', this.onPointerUp)
    this.plot.addEventListener('pointerleave', this.onPointerLeave)
    this.plot.addEventListener('dblclick', this.onDoubleClick)
    this.plot.addEventListener('wheel', this.onWheel, { passive: false })
    this.plot.addEventListener('keydown', this.onKeyDown)
    this.plot.addEventListener('blur', this.onBlur)

    const view = doc.defaultView
    this.resizeObserver = view && 'ResizeObserver' in view ? new view.ResizeObserver(() => this.measure()) : null
    this.resizeObserver?.observe(this.plot)
    this.colorScheme = view?.matchMedia ? view.matchMedia('(prefers-color-scheme: dark)') : null
    this.colorScheme?.addEventListener?.('change', this.onThemeChange)
    doc.addEventListener('visibilitychange', this.onVisibilityChange)

    this.measure()
    this.updateLabels()
  }

  /**
   * The data changed: schedule one redraw on the next animation frame. Any number of calls
   * before that frame cost one draw.
   */
  invalidate(): void {
    this.dirty = true
    this.updateLabels()
    this.schedule()
  }

  /** Show x as step, tokens or wall-clock time (resets the zoom). */
  setXAxis(axis: XAxisKind): void {
    if (axis === this.axis) return
    this.axis = axis
    this.xWindow = null
    this.hideHover()
    this.viewChanged()
  }

  setLogY(log: boolean): void {
    this.logY = log
    this.invalidate()
  }

  setIgnoreOutliers(ignore: boolean): void {
    this.ignoreOutliers = ignore
    this.invalidate()
  }

  /** Keep the latest point in view: the whole run, or a zoomed window slid to the end. */
  setFollow(follow: boolean): void {
    this.follow = follow
    this.viewChanged()
  }

  /**
   * Show or hide series `index`. The right axis shows one series at a time (learning rate
   * and grad norm differ by orders of magnitude, so a shared linear axis would flatten one):
   * showing a 'y2' series hides the other 'y2' series.
   */
  setSeriesVisible(index: number, visible: boolean): void {
    const series = this.options.series
    if (visible && series[index]?.axis === 'y2') {
      series.forEach((s, i) => {
        if (i !== index && s.axis === 'y2' && this.visible[i]) {
          this.visible[i] = false
          this.legendButtons[i]?.setAttribute('aria-pressed', 'false')
        }
      })
    }
    this.visible[index] = visible
    this.legendButtons[index]?.setAttribute('aria-pressed', String(visible))
    this.invalidate()
  }

  /** Whether series `index` is shown. */
  isSeriesVisible(index: number): boolean {
    return this.visible[index] ?? false
  }

  /** Zoom x to [x0, x1] (in the axis's units; seconds for time). Stops following. */
  zoomTo(x0: number, x1: number): void {
    if (!(x1 > x0)) return
    this.xWindow = [x0, x1]
    this.follow = false
    this.viewChanged()
  }

  /** Back to the whole run, following the latest point. */
  resetZoom(): void {
    this.xWindow = null
    this.follow = true
    this.viewChanged()
  }

  view(): ChartView {
    return { xWindow: this.xWindow ? [...this.xWindow] : null, follow: this.follow }
  }

  /** Stop observing and remove the chart's elements. */
  destroy(): void {
    this.destroyed = true
    if (this.frame) cancelAnimationFrame(this.frame)
    this.frame = 0
    this.resizeObserver?.disconnect()
    this.colorScheme?.removeEventListener?.('change', this.onThemeChange)
    this.root.ownerDocument.removeEventListener('visibilitychange', this.onVisibilityChange)
    this.root.remove()
  }

  private viewChanged(): void {
    this.options.onViewChange?.(this.view())
    this.invalidate()
  }

  private schedule(): void {
    if (this.frame || this.destroyed || this.root.ownerDocument.hidden) return
    this.frame = requestAnimationFrame(() => {
      this.frame = 0
      if (this.root.ownerDocument.hidden) return // drawn on visibilitychange
      if (this.dirty) this.draw()
    })
  }

  private readonly onVisibilityChange = () => {
    if (!this.root.ownerDocument.hidden && this.dirty) this.schedule()
  }

  private readonly onThemeChange = () => {
    this.dirty = true
    this.schedule()
  }

  /** Read the plot's CSS size and size the backing store to it × devicePixelRatio. */
  private measure(): void {
    const rect = this.plot.getBoundingClientRect()
    const width = Math.max(0, Math.floor(rect.width))
    const height = Math.max(0, Math.floor(rect.height))
    const dpr = this.root.ownerDocument.defaultView?.devicePixelRatio || 1
    if (width === this.cssWidth && height === this.cssHeight && dpr === this.dpr) return
    this.cssWidth = width
    this.cssHeight = height
    this.dpr = dpr
    this.canvas.width = Math.round(width * dpr)
    this.canvas.height = Math.round(height * dpr)
    this.canvas.style.width = `${width}px`
    this.canvas.style.height = `${height}px`
    // Resizing cleared the canvas: draw now rather than showing a blank frame.
    this.dirty = true
    if (!this.root.ownerDocument.hidden && !this.destroyed) this.draw()
  }

  /** Legend values (latest value, NaN/Inf count) and the canvas's accessible name. */
  private updateLabels(): void {
    const parts: string[] = []
    this.options.series.forEach((s, i) => {
      const column = s.data.columns.get(s.column)
      const n = column?.length ?? 0
      const y = column ? column.last() : NaN
      const bad = column?.nonFinite.length ?? 0
      let text = Number.isFinite(y) ? formatValue(y) : n > 0 ? '—' : ''
      if (bad > 0) text += ` · ${bad.toLocaleString('en')} NaN/Inf`
      if (this.legendValues[i].textContent !== text) this.legendValues[i].textContent = text
      this.legendValues[i].classList.toggle('loss-chart__value--bad', bad > 0)
      if (!this.visible[i]) return
      parts.push(
        `${s.label}: ${n.toLocaleString('en')} ${n === 1 ? 'point' : 'points'}${Number.isFinite(y) ? `, latest ${formatValue(y)}` : ''}${bad > 0 ? `, ${bad} not finite` : ''}`,
      )
    })
    const label = `${this.options.ariaLabel ?? 'Chart'}. ${parts.join('; ')}.`
    if (this.canvas.getAttribute('aria-label') !== label) this.canvas.setAttribute('aria-label', label)
  }

  private shown(): number[] {
    const out: number[] = []
    this.options.series.forEach((s, i) => {
      if (this.visible[i] && s.data.columns.has(s.column)) out.push(i)
    })
    return out
  }

  /** The x extent of the shown series on the current axis. */
  private xExtent(shown: number[]): Extent | null {
    let min = Infinity
    let max = -Infinity
    for (const i of shown) {
      const e = this.options.series[i].data.xExtent(this.axis)
      if (!e || !Number.isFinite(e.min) || !Number.isFinite(e.max)) continue
      min = Math.min(min, e.min)
      max = Math.max(max, e.max)
    }
    return min <= max ? { min, max } : null
  }

  /** The x domain shown: the zoom window (slid to the end when following) or the whole run. */
  private xDomain(ext: Extent | null, points: number): [number, number] {
    if (!ext) return [0, 1]
    const whole = xDomainFor(ext, this.axis !== 'time')
    if (!this.xWindow) {
      // A long run: the right end moves in steps of about 1 % of the span, so that between
      // steps the x scale stays put and a redraw only reduces the newest pixel columns.
      if (points > 8 * this.cssWidth * this.dpr) {
        const quantum = niceStep(whole[1] - whole[0], 100)
        return [whole[0], Math.ceil(whole[1] / quantum) * quantum]
      }
      return whole
    }
    if (this.follow) {
      // Slid in steps of 1 % of its width, for the same reason as above.
      const width = this.xWindow[1] - this.xWindow[0]
      const quantum = points > 8 * this.cssWidth * this.dpr ? niceStep(width, 100) : 0
      const end = quantum > 0 ? Math.ceil(ext.max / quantum) * quantum : ext.max
      this.xWindow = [end - width, end]
    }
    return this.xWindow
  }

  /** Finite (or positive, on log) min/max of series `indices` over x window [x0, x1]. */
  private yExtent(indices: number[], x0: number, x1: number, log: boolean): Extent | null {
    let min = Infinity
    let max = -Infinity
    const r = emptyRange()
    for (const i of indices) {
      const s = this.options.series[i]
      const column = s.data.column(s.column)
      for (const [a, b] of s.data.segments()) {
        const [lo, hi] = s.data.window(this.axis, a, b, x0, x1)
        column.range(lo, hi, r)
        const m = log ? r.minPositive : r.min
        if (m < min) min = m
        if (r.max > max) max = r.max
      }
    }
    return min <= max ? { min, max } : null
  }

  /**
   * The 1st and 99th percentiles of the values of `indices` in [x0, x1], and how many values
   * lie outside them. Exact up to QUANTILE_SAMPLE values, else from evenly spaced ones.
   * Cached while the window and the data stay the same.
   */
  private quantileRange(indices: number[], x0: number, x1: number, log: boolean) {
    const spans: { column: ReturnType<PointSeries['column']>; a: number; b: number }[] = []
    let total = 0
    let key = `${x0}|${x1}|${log}`
    for (const i of indices) {
      const s = this.options.series[i]
      const column = s.data.column(s.column)
      key += `|${i}:${s.data.rewrites}`
      for (const [a, b] of s.data.segments()) {
        const [lo, hi] = s.data.window(this.axis, a, b, x0, x1)
        if (hi > lo) {
          spans.push({ column, a: lo, b: hi })
          total += hi - lo
        }
      }
    }
    // Reused while the window is the same and its points grew by less than 1 % (a live run
    // would otherwise pay a selection over up to QUANTILE_SAMPLE values every frame).
    const cached = this.quantileCache
    if (cached?.key === key && total >= cached.total && total <= cached.total * 1.01) return cached
    const stride = Math.max(1, Math.ceil(total / QUANTILE_SAMPLE))
    const values = new Float64Array(Math.ceil(total / stride) + spans.length)
    let n = 0
    for (const { column, a, b } of spans) {
      for (let i = a; i < b; i += stride) {
        const v = column.get(i)
        if (Number.isFinite(v) && (!log || v > 0)) values[n++] = v
      }
    }
    const sample = values.subarray(0, n)
    const lo = quantile(sample, OUTLIER_QUANTILES[0])
    const hi = quantile(sample, OUTLIER_QUANTILES[1])
    let above = 0
    let below = 0
    for (let i = 0; i < n; i++) {
      if (sample[i] > hi) above++
      else if (sample[i] < lo) below++
    }
    this.quantileCache = { key, total, lo, hi, above: above * stride, below: below * stride, approximate: stride > 1 }
    return this.quantileCache
  }

  private yRange(indices: number[], x0: number, x1: number, log: boolean, robust: boolean): YRange | null {
    const ext = this.yExtent(indices, x0, x1, log)
    if (!ext) return null
    let min = ext.min
    let max = ext.max
    let above = 0
    let below = 0
    let approximate = false
    if (robust) {
      const q = this.quantileRange(indices, x0, x1, log)
      if (q.lo <= q.hi) {
        min = q.lo
        max = q.hi
        above = q.above
        below = q.below
        approximate = q.approximate
      }
    }
    if (log) {
      const lmin = Math.log10(min)
      const lmax = Math.log10(max)
      const [a, b] = paddedDomain(lmin, lmax, 0.05)
      return { domain: [10 ** a, 10 ** b], above, below, approximate }
    }
    return { domain: paddedDomain(min, max), above, below, approximate }
  }

  /** Draw now (normally called from the animation frame). */
  draw(): void {
    this.dirty = false
    this.drawCount++
    const view = this.root.ownerDocument.defaultView
    if (view && (view.devicePixelRatio || 1) !== this.dpr) {
      this.measure() // draws at the new resolution
      return
    }
    const ctx = this.canvas.getContext('2d')
    if (!ctx || this.cssWidth === 0 || this.cssHeight === 0) return
    const { series } = this.options
    let t = performance.now()
    const theme = readTheme(this.root, series)
    t = this.mark('theme', t)
    const W = this.cssWidth
    const H = this.cssHeight
    const axis = this.axis

    ctx.setTransform(this.dpr, 0, 0, this.dpr, 0, 0)
    ctx.clearRect(0, 0, W, H)
    ctx.font = theme.font
    ctx.lineJoin = 'round'
    ctx.lineCap = 'round'

    const shown = this.shown()
    const left = shown.filter((i) => (series[i].axis ?? 'y') === 'y')
    const right = shown.filter((i) => series[i].axis === 'y2')
    const xExt = this.xExtent(shown)
    const xDomain = this.xDomain(xExt, shown.reduce((n, i) => Math.max(n, series[i].data.length), 0))
    const log = this.logY
    const yRange = this.yRange(left, xDomain[0], xDomain[1], log, this.ignoreOutliers)
    const y2Range = right.length > 0 ? this.yRange(right, xDomain[0], xDomain[1], false, false) : null
    const yDomain: [number, number] = yRange?.domain ?? (log ? [0.1, 10] : [0, 1])
    t = this.mark('ranges', t)

    const top = MARGIN.top
    const bottom = H - MARGIN.bottom
    const plotHeight = Math.max(1, bottom - top)
    const yTarget = Math.max(2, Math.round(plotHeight / TICK_TARGET_PX.y))
    const yTicks = log ? logTicks(yDomain[0], yDomain[1], yTarget) : niceTicks(yDomain[0], yDomain[1], yTarget)
    const yLabels = yTicks.values.map((v) => (log && yTicks.values.length > 0 && isDecadeTicks(yTicks) ? formatLogTick(v) : formatTick(v, yTicks.step)))
    const labelWidth = yLabels.reduce((w, t) => Math.max(w, ctx.measureText(t).width), 0)
    const plotLeft = Math.max(MARGIN.leftMin, Math.ceil(labelWidth) + 10 + Y_TITLE_SPACE)
    let y2Ticks: Ticks | null = null
    let y2Labels: string[] = []
    let plotRight = W - MARGIN.right
    if (y2Range) {
      y2Ticks = niceTicks(y2Range.domain[0], y2Range.domain[1], yTarget)
      y2Labels = y2Ticks.values.map((v) => formatValue(v, y2Ticks!.step))
      const w2 = y2Labels.reduce((w, t) => Math.max(w, ctx.measureText(t).width), 0)
      plotRight = W - Math.max(MARGIN.right, Math.ceil(w2) + 10 + Y_TITLE_SPACE)
    }
    const plotWidth = Math.max(1, plotRight - plotLeft)

    const xScale = linScale(xDomain, [plotLeft, plotRight])
    const yScale = log ? logScale(yDomain, [bottom, top]) : linScale(yDomain, [bottom, top])
    const y2Scale = y2Range ? linScale(y2Range.domain, [bottom, top]) : null
    const xTarget = Math.max(2, Math.round(plotWidth / TICK_TARGET_PX.x))
    const xTicks = axis === 'time' ? timeTicks(xDomain[0], xDomain[1], xTarget) : niceTicks(xDomain[0], xDomain[1], xTarget)
    const box = { left: plotLeft, right: plotRight, top, bottom }
    this.layout = { ...box, xScale, yScale, y2Scale, axis }

    this.drawAxes(ctx, theme, xScale, yScale, xTicks, yTicks.values, yLabels, box)
    if (y2Scale && y2Ticks) this.drawRightAxis(ctx, theme, y2Scale, y2Ticks.values, y2Labels, box)
    t = this.mark('axes', t)

    const notes: string[] = []
    if (!xExt) {
      ctx.fillStyle = theme.muted
      ctx.textAlign = 'center'
      ctx.textBaseline = 'middle'
      ctx.fillText(this.options.emptyText ?? 'No data yet', (plotLeft + plotRight) / 2, (top + bottom) / 2)
      this.lastVertexCount = 0
      this.setNotes(notes)
      return
    }

    ctx.save()
    ctx.beginPath()
    // A little room on every side, so a dot at the edge of the domain is drawn whole.
    ctx.rect(plotLeft - DOT_RADIUS - 1, top - BAD_TICK_PX, plotWidth + 2 * DOT_RADIUS + 2, plotHeight + BAD_TICK_PX + 4)
    ctx.clip()
    this.drawRestarts(ctx, theme, shown, xScale, box)
    let vertices = 0
    for (const i of shown) {
      const s = series[i]
      const onY2 = s.axis === 'y2'
      const ys = onY2 ? y2Scale! : yScale
      vertices += this.drawSeries(ctx, s, this.paths[i], theme.series[i], xScale, ys, plotWidth)
    }
    this.lastVertexCount = vertices
    t = this.mark('series', t)
    this.drawBadMarks(ctx, theme, shown, xScale, box)
    const bad = this.countPoints(shown, 'nonFinite', xDomain)
    const nonPositive = log ? this.countPoints(left, 'nonPositive', xDomain) : 0
    ctx.restore()
    t = this.mark('marks', t)

    if (bad > 0) notes.push(`${bad.toLocaleString('en')} NaN/Inf ${bad === 1 ? 'value' : 'values'} in view, marked in red at the top`)
    if (nonPositive > 0) notes.push(`log scale: ${nonPositive.toLocaleString('en')} ${nonPositive === 1 ? 'value' : 'values'} ≤ 0 left out`)
    if (yRange && (yRange.above > 0 || yRange.below > 0)) {
      const approx = yRange.approximate ? '≈' : ''
      notes.push(
        `outliers ignored (1st–99th percentile): ${approx}${yRange.above.toLocaleString('en')} above, ${approx}${yRange.below.toLocaleString('en')} below the plot`,
      )
    }
    this.setNotes(notes)
    if (this.hoverPx) this.showHover(this.hoverPx.x, this.hoverPx.y)
  }

  private setNotes(notes: string[]): void {
    const text = notes.join(' · ')
    if (this.notes.textContent !== text) this.notes.textContent = text
    this.notes.hidden = notes.length === 0
  }

  /**
   * How many data points of series `indices` within the x window are in `list` (NaN/±Inf,
   * or ≤ 0), each counted once: series showing the same points (the loss and its EMA) are
   * grouped by their source column, and a point in any of the group's lists counts once.
   */
  private countPoints(indices: number[], list: 'nonFinite' | 'nonPositive', xDomain: [number, number]): number {
    const groups = new Map<PointSeries, Map<string, IndexList[]>>()
    for (const i of indices) {
      const s = this.options.series[i]
      const source = s.data.sourceOf(s.column)
      let bySource = groups.get(s.data)
      if (!bySource) groups.set(s.data, (bySource = new Map()))
      const lists = bySource.get(source) ?? []
      lists.push(s.data.column(s.column)[list])
      bySource.set(source, lists)
    }
    let n = 0
    for (const [data, bySource] of groups) {
      for (const lists of bySource.values()) {
        const nonEmpty = lists.filter((l) => l.length > 0)
        if (nonEmpty.length === 0) continue
        for (const [a, b] of data.segments()) {
          const [lo, hi] = data.window(this.axis, a, b, xDomain[0], xDomain[1])
          n += IndexList.countUnionIn(nonEmpty, lo, hi)
        }
      }
    }
    return n
  }

  private drawAxes(
    ctx: CanvasRenderingContext2D,
    theme: ChartTheme,
    xScale: Scale,
    yScale: Scale,
    xTicks: Ticks,
    yTicks: number[],
    yLabels: string[],
    box: Box,
  ): void {
    // Snap 1px lines to the device pixel grid so they stay crisp.
    const snap = (v: number) => (Math.round(v * this.dpr) + 0.5) / this.dpr
    ctx.lineWidth = 1 / this.dpr
    ctx.strokeStyle = theme.grid
    ctx.beginPath()
    for (const v of yTicks) {
      const y = snap(yScale.map(v))
      ctx.moveTo(box.left, y)
      ctx.lineTo(box.right, y)
    }
    for (const v of xTicks.values) {
      const x = snap(xScale.map(v))
      ctx.moveTo(x, box.top)
      ctx.lineTo(x, box.bottom)
    }
    ctx.stroke()

    ctx.strokeStyle = theme.axis
    ctx.beginPath()
    const yAxisX = snap(box.left)
    const xAxisY = snap(box.bottom)
    ctx.moveTo(yAxisX, box.top)
    ctx.lineTo(yAxisX, xAxisY)
    ctx.lineTo(box.right, xAxisY)
    ctx.stroke()

    ctx.fillStyle = theme.muted
    ctx.textAlign = 'right'
    ctx.textBaseline = 'middle'
    yTicks.forEach((v, i) => ctx.fillText(yLabels[i], box.left - 6, yScale.map(v)))
    ctx.textAlign = 'center'
    ctx.textBaseline = 'top'
    const timeAxis = this.axis === 'time'
    for (const v of xTicks.values) {
      ctx.fillText(timeAxis ? formatTimeTick(v, xTicks.step) : formatTick(v, xTicks.step), xScale.map(v), box.bottom + 6)
    }

    // Axis titles.
    ctx.fillStyle = theme.text
    ctx.textAlign = 'center'
    ctx.textBaseline = 'bottom'
    ctx.fillText(X_AXIS_LABELS[this.axis], (box.left + box.right) / 2, this.cssHeight - 2)
    ctx.save()
    ctx.translate(2, (box.top + box.bottom) / 2)
    ctx.rotate(-Math.PI / 2)
    ctx.textBaseline = 'top'
    ctx.fillText(this.logY ? `${this.options.yLabel}, log scale` : this.options.yLabel, 0, 0)
    ctx.restore()
  }

  private drawRightAxis(
    ctx: CanvasRenderingContext2D,
    theme: ChartTheme,
    scale: Scale,
    ticks: number[],
    labels: string[],
    box: Box,
  ): void {
    const x = (Math.round(box.right * this.dpr) + 0.5) / this.dpr
    ctx.strokeStyle = theme.axis
    ctx.lineWidth = 1 / this.dpr
    ctx.beginPath()
    ctx.moveTo(x, box.top)
    ctx.lineTo(x, box.bottom)
    ctx.stroke()
    ctx.fillStyle = theme.muted
    ctx.textAlign = 'left'
    ctx.textBaseline = 'middle'
    ticks.forEach((v, i) => ctx.fillText(labels[i], box.right + 6, scale.map(v)))
    ctx.fillStyle = theme.text
    ctx.save()
    ctx.translate(this.cssWidth - 2, (box.top + box.bottom) / 2)
    ctx.rotate(Math.PI / 2)
    ctx.textAlign = 'center'
    ctx.textBaseline = 'top'
    const shown = this.options.series.find((s, i) => s.axis === 'y2' && this.visible[i])
    ctx.fillText(shown?.label ?? this.options.y2Label ?? '', 0, 0)
    ctx.restore()
  }

  /** Returns the number of vertices drawn. */
  private drawSeries(
    ctx: CanvasRenderingContext2D,
    s: ChartSeries,
    cache: PathCache,
    color: string,
    xScale: Scale,
    yScale: Scale,
    plotWidth: number,
  ): number {
    const { data } = s
    if (data.length === 0) return 0
    const column = data.column(s.column)
    let t = performance.now()
    const vertices = cache.reduce({ series: data, column, axis: this.axis, xScale, yScale, dpr: this.dpr })
    t = this.mark('series.reduce', t)
    const path = new Path2D()
    tracePath(path, vertices)
    ctx.globalAlpha = s.alpha ?? 1
    ctx.strokeStyle = color
    ctx.lineWidth = s.lineWidth ?? 1.5
    ctx.stroke(path)
    this.mark('series.stroke', t)

    ctx.fillStyle = color
    const dots = new Path2D()
    let few = false
    if (s.style === 'line+points') {
      let count = 0
      for (const [a, b] of data.segments()) {
        const [lo, hi] = data.window(this.axis, a, b, xScale.domain[0], xScale.domain[1])
        count += hi - lo
      }
      few = count <= plotWidth / 4
    }
    if (few) {
      for (const [a, b] of data.segments()) {
        const [lo, hi] = data.window(this.axis, a, b, xScale.domain[0], xScale.domain[1])
        for (let i = lo; i < hi; i++) {
          const y = column.get(i)
          if (!Number.isFinite(y) || (yScale.log && y <= 0)) continue
          const px = xScale.map(data.xAt(this.axis, i))
          const py = yScale.map(y)
          dots.moveTo(px + DOT_RADIUS, py)
          dots.arc(px, py, DOT_RADIUS, 0, Math.PI * 2)
        }
      }
    } else {
      // A point with no neighbour makes no line (the first step, a value between two
      // non-finite ones): show it as a dot.
      const lone = loneVertices(vertices)
      for (let i = 0; i < lone.length; i += 2) {
        dots.moveTo(lone[i] + DOT_RADIUS, lone[i + 1])
        dots.arc(lone[i], lone[i + 1], DOT_RADIUS, 0, Math.PI * 2)
      }
    }
    ctx.fill(dots)
    ctx.globalAlpha = 1
    return vertices.length / 2
  }

  /** A dashed line where a series restarts (its step went back), labelled at the top. */
  private drawRestarts(ctx: CanvasRenderingContext2D, theme: ChartTheme, shown: number[], xScale: Scale, box: Box): void {
    const seen = new Set<PointSeries>()
    ctx.strokeStyle = theme.restart
    ctx.fillStyle = theme.restart
    ctx.lineWidth = 1
    ctx.setLineDash([4, 3])
    ctx.textAlign = 'left'
    ctx.textBaseline = 'top'
    for (const i of shown) {
      const data = this.options.series[i].data
      if (seen.has(data) || data.restarts.length === 0) continue
      seen.add(data)
      let lastPx = -Infinity
      for (let k = 0; k < data.restarts.length; k++) {
        const index = data.restarts.data[k]
        // A segment also starts where only the clock or the token count went back: the
        // line breaks there, but only a step going back is a restart.
        if (!(data.step.get(index) < data.step.get(index - 1))) continue
        const px = xScale.map(data.xAt(this.axis, index))
        if (px < box.left - 1 || px > box.right + 1 || px - lastPx < 2) continue
        lastPx = px
        const x = (Math.round(px * this.dpr) + 0.5) / this.dpr
        ctx.beginPath()
        ctx.moveTo(x, box.top)
        ctx.lineTo(x, box.bottom)
        ctx.stroke()
        // Right of the line, or left of it where the label would cross the right edge.
        const label = `↺ restart at step ${data.step.get(index).toLocaleString('en')}`
        const width = ctx.measureText(label).width
        const labelX = x + 3 + width <= box.right ? x + 3 : Math.max(box.left + 2, x - 3 - width)
        ctx.fillText(label, labelX, box.top + 2)
      }
    }
    ctx.setLineDash([])
  }

  /**
   * A red tick at the top edge in each device column holding a NaN or ±Infinity of a shown
   * series; O(columns × log N) however many there are.
   */
  private drawBadMarks(ctx: CanvasRenderingContext2D, theme: ChartTheme, shown: number[], xScale: Scale, box: Box): void {
    let marks = 0
    const path = new Path2D()
    const [x0, x1] = xScale.domain
    for (const i of shown) {
      const s = this.options.series[i]
      const column = s.data.column(s.column)
      if (column.nonFinite.length === 0) continue
      for (const [a, b] of s.data.segments()) {
        const [lo, hi] = s.data.window(this.axis, a, b, x0, x1)
        const cursor = new BreakCursor(column, false, lo, false)
        let k = cursor.next(lo)
        while (k < hi) {
          const px = xScale.map(s.data.xAt(this.axis, k))
          const c = Math.floor(px * this.dpr)
          const x = (c + 0.5) / this.dpr
          path.moveTo(x, box.top - BAD_TICK_PX)
          path.lineTo(x, box.top)
          marks++
          // Jump to the first point right of this device column.
          const next = s.data.lowerBound(this.axis, k + 1, b, xScale.invert((c + 1) / this.dpr))
          k = cursor.next(Math.max(k + 1, next))
        }
      }
    }
    if (marks > 0) {
      ctx.strokeStyle = theme.bad
      ctx.lineWidth = Math.max(1.5, 2 / this.dpr)
      ctx.stroke(path)
    }
  }

  // ---- interaction: DOM overlay only, the canvas is not repainted ----

  private plotX(event: MouseEvent): { x: number; y: number } {
    const rect = this.plot.getBoundingClientRect()
    return { x: event.clientX - rect.left, y: event.clientY - rect.top }
  }

  private readonly onPointerMove = (event: PointerEvent) => {
    const p = this.plotX(event)
    if (this.dragStartPx !== null && this.layout) {
      const a = clamp(Math.min(this.dragStartPx, p.x), this.layout.left, this.layout.right)
      const b = clamp(Math.max(this.dragStartPx, p.x), this.layout.left, this.layout.right)
      this.selection.hidden = b - a < 2
      this.selection.style.left = `${a}px`
      this.selection.style.width = `${b - a}px`
      this.selection.style.top = `${this.layout.top}px`
      this.selection.style.height = `${this.layout.bottom - this.layout.top}px`
    }
    this.hoverPx = p
    this.keyCursor = null
    this.showHover(p.x, p.y)
  }

  private readonly onPointerDown = (event: PointerEvent) => {
    if (event.button !== 0 || !this.layout) return
    const p = this.plotX(event)
    if (p.x < this.layout.left || p.x > this.layout.right) return
    this.dragStartPx = p.x
    this.plot.setPointerCapture?.(event.pointerId)
  }

  private readonly onPointerUp = (event: PointerEvent) => {
    const start = this.dragStartPx
    this.dragStartPx = null
    this.selection.hidden = true
    if (start === null || !this.layout) return
    const end = this.plotX(event).x
    const a = clamp(Math.min(start, end), this.layout.left, this.layout.right)
    const b = clamp(Math.max(start, end), this.layout.left, this.layout.right)
    if (b - a < 4) return // a click, not a drag
    this.zoomTo(this.invertX(a), this.invertX(b))
  }

  private readonly onPointerLeave = () => {
    if (this.dragStartPx !== null) return
    this.hoverPx = null
    this.hideHover()
  }

  private readonly onDoubleClick = () => this.resetZoom()

  private readonly onWheel = (event: WheelEvent) => {
    if (!this.layout) return
    event.preventDefault()
    const p = this.plotX(event)
    const factor = Math.pow(ZOOM_STEP, (event.deltaMode === 1 ? event.deltaY * 33 : event.deltaY) / 100)
    this.zoomAround(this.invertX(p.x), factor)
  }

  /** The x domain shown now: the zoom window if set since the last draw, else the drawn one. */
  private currentDomain(): [number, number] {
    if (this.xWindow) return this.xWindow
    const d = this.layout?.xScale.domain ?? [0, 1]
    return [d[0], d[1]]
  }

  /** Plot x (CSS px) → data x on the current domain. */
  private invertX(px: number): number {
    const layout = this.layout!
    const [d0, d1] = this.currentDomain()
    const t = (clamp(px, layout.left, layout.right) - layout.left) / Math.max(1, layout.right - layout.left)
    return d0 + t * (d1 - d0)
  }

  /** Scale the x window by `factor` (> 1 zooms out) keeping `center` where it is. */
  private zoomAround(center: number, factor: number): void {
    if (!this.layout) return
    const [d0, d1] = this.currentDomain()
    const ext = this.xExtent(this.shown())
    let x0 = center - (center - d0) * factor
    let x1 = center + (d1 - center) * factor
    if (ext) {
      const whole = xDomainFor(ext, this.axis !== 'time')
      if (x1 - x0 >= whole[1] - whole[0]) {
        this.resetZoom()
        return
      }
    }
    const minWidth = this.axis === 'time' ? 1 : 2
    if (x1 - x0 < minWidth) {
      x0 = center - minWidth / 2
      x1 = center + minWidth / 2
    }
    this.xWindow = [x0, x1]
    // Zooming at the right edge while following keeps following.
    this.follow = this.follow && ext !== null && x1 >= ext.max
    this.viewChanged()
  }

  private pan(fraction: number): void {
    if (!this.layout) return
    const [d0, d1] = this.currentDomain()
    const dx = (d1 - d0) * fraction
    this.xWindow = [d0 + dx, d1 + dx]
    this.follow = false
    this.viewChanged()
  }

  private readonly onKeyDown = (event: KeyboardEvent) => {
    if (!this.layout) return
    const [d0, d1] = this.currentDomain()
    let handled = true
    switch (event.key) {
      case 'ArrowLeft':
      case 'ArrowRight': {
        const dir = event.key === 'ArrowLeft' ? -1 : 1
        if (event.shiftKey) this.pan(0.1 * dir)
        else this.moveKeyCursor(dir)
        break
      }
      case '+':
      case '=':
        this.zoomAround(this.keyCursorX() ?? (d0 + d1) / 2, 1 / ZOOM_STEP)
        break
      case '-':
      case '_':
        this.zoomAround(this.keyCursorX() ?? (d0 + d1) / 2, ZOOM_STEP)
        break
      case 'Escape':
      case 'Home':
      case '0':
        this.resetZoom()
        break
      case 'f':
      case 'F':
        this.setFollow(!this.follow)
        break
      default:
        handled = false
    }
    if (handled) event.preventDefault()
  }

  private readonly onBlur = () => {
    this.keyCursor = null
    if (!this.hoverPx) this.hideHover()
  }

  /** The series the tooltip and the keyboard walk along: the first shown one. */
  private primary(): ChartSeries | null {
    const shown = this.shown()
    return shown.length > 0 ? this.options.series[shown[0]] : null
  }

  private keyCursorX(): number | null {
    const p = this.primary()
    if (this.keyCursor === null || !p || this.keyCursor >= p.data.length) return null
    return p.data.xAt(this.axis, this.keyCursor)
  }

  /** Move the keyboard read-out by one point (by one pixel's worth when points are dense). */
  private moveKeyCursor(dir: number): void {
    const p = this.primary()
    const layout = this.layout
    if (!p || !layout || p.data.length === 0) return
    const [d0, d1] = layout.xScale.domain
    let x = this.keyCursorX()
    if (x === null) x = dir > 0 ? d0 : d1
    else {
      const perPx = (d1 - d0) / Math.max(1, layout.right - layout.left)
      const i = p.data.nearest(this.axis, x + dir * Math.max(perPx, 1e-9))
      const xi = i >= 0 ? p.data.xAt(this.axis, i) : x
      x = xi === x ? x + dir * perPx : xi
    }
    x = clamp(x, d0, d1)
    this.keyCursor = p.data.nearest(this.axis, x)
    if (this.keyCursor < 0) return
    const px = layout.xScale.map(p.data.xAt(this.axis, this.keyCursor))
    const v = p.data.column(p.column).get(this.keyCursor)
    const py = Number.isFinite(v) && !(layout.yScale.log && v <= 0) ? layout.yScale.map(v) : (layout.top + layout.bottom) / 2
    this.showHover(px, py)
  }

  private hideHover(): void {
    this.crossX.hidden = true
    this.crossY.hidden = true
    this.tooltip.hidden = true
  }

  /** Crosshair at the point nearest to plot position (px, py), and the tooltip. */
  private showHover(px: number, py: number): void {
    const layout = this.layout
    const primary = this.primary()
    if (!layout || !primary || primary.data.length === 0 || px < layout.left || px > layout.right || py < layout.top - 4 || py > layout.bottom + 4) {
      this.hideHover()
      return
    }
    const axis = this.axis
    const x = layout.xScale.invert(px)
    const index = primary.data.nearest(axis, x)
    if (index < 0) {
      this.hideHover()
      return
    }
    const snapped = layout.xScale.map(primary.data.xAt(axis, index))
    this.crossX.hidden = false
    this.crossX.style.transform = `translateX(${Math.round(snapped)}px)`
    this.crossX.style.top = `${layout.top}px`
    this.crossX.style.height = `${layout.bottom - layout.top}px`
    this.crossY.hidden = false
    this.crossY.style.transform = `translateY(${Math.round(clamp(py, layout.top, layout.bottom))}px)`
    this.crossY.style.left = `${layout.left}px`
    this.crossY.style.width = `${layout.right - layout.left}px`

    const data = primary.data
    const rows: [string, string][] = [['step', data.step.get(index).toLocaleString('en')]]
    const tokens = data.tokens.get(index)
    if (Number.isFinite(tokens)) rows.push(['tokens', tokens.toLocaleString('en')])
    const t = data.timeMs.get(index)
    if (Number.isFinite(t)) rows.push(['time', formatClock(t / 1000)])
    this.options.series.forEach((s, i) => {
      if (!this.visible[i]) return
      const column = s.data.columns.get(s.column)
      if (!column || s.data.length === 0) return
      if (s.data === data) {
        rows.push([s.label, formatValue(column.get(index))])
        return
      }
      // Another series (val loss): its point nearest in x, within 3 % of the window.
      const j = s.data.nearest(axis, data.xAt(axis, index))
      if (j < 0) return
      const dx = Math.abs(s.data.xAt(axis, j) - data.xAt(axis, index))
      if (dx > (layout.xScale.domain[1] - layout.xScale.domain[0]) * 0.03) return
      const at = s.data.step.get(j) === data.step.get(index) ? '' : ` (step ${s.data.step.get(j).toLocaleString('en')})`
      rows.push([s.label, formatValue(column.get(j)) + at])
    })
    this.tooltip.replaceChildren(
      ...rows.map(([k, v]) => {
        const row = this.root.ownerDocument.createElement('div')
        const key = this.root.ownerDocument.createElement('span')
        key.className = 'loss-chart__tooltip-key'
        key.textContent = k
        const value = this.root.ownerDocument.createElement('span')
        value.className = 'loss-chart__tooltip-value'
        value.textContent = v
        row.append(key, value)
        return row
      }),
    )
    this.tooltip.hidden = false
    // Right of the crosshair, or left of it near the right edge.
    const tipWidth = this.tooltip.offsetWidth || 180
    const left = snapped + 12 + tipWidth > layout.right ? snapped - 12 - tipWidth : snapped + 12
    this.tooltip.style.transform = `translate(${Math.round(Math.max(0, left))}px, ${Math.round(layout.top + 4)}px)`
  }
}

function clamp(v: number, lo: number, hi: number): number {
  return Math.min(hi, Math.max(lo, v))
}

/** Whether the ticks are powers of ten (or 1/2/5 × 10^k), to be labelled compactly. */
function isDecadeTicks(ticks: Ticks): boolean {
  return ticks.values.every((v) => {
    const m = v / 10 ** Math.floor(Math.log10(v) + 1e-9)
    return Math.abs(m - 1) < 1e-9 || Math.abs(m - 2) < 1e-9 || Math.abs(m - 5) < 1e-9
  })
}

/** A value for the legend, tooltip and right axis: "2.3104", "3.00e-4", "NaN", "+Inf". */
export function formatValue(v: number, step?: number): string {
  if (Number.isNaN(v)) return 'NaN'
  if (v === Infinity) return '+Inf'
  if (v === -Infinity) return '−Inf'
  if (step !== undefined && step >= 0.01) return formatTick(v, step)
  const abs = Math.abs(v)
  if (abs !== 0 && (abs < 0.01 || abs >= 1e5)) return v.toExponential(2).replace('e+', 'e')
  return v.toFixed(4)
}
