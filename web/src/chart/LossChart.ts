// A framework-free canvas line chart for loss curves.
//
// * Data: columnar XYSeries (Float64Array), mutated by the owner; call invalidate() after.
// * Drawing: at most once per animation frame however often invalidate() is called, not at
//   all while the page is hidden (redrawn when it shows again).
// * Crisp on HiDPI: the canvas backing store is CSS size × devicePixelRatio, the context is
//   scaled, and dense data is reduced per device pixel column (reduceMinMax).
// * Follows its container's size (ResizeObserver) and the theme (CSS variables read at
//   draw time, redrawn when prefers-color-scheme flips).
//
// Non-features for now: zoom, hover tooltip, log axis, smoothing (see the module README).

import { loneVertices, reduceMinMax, tracePath } from './path'
import { formatTick, linearScale, niceTicks, paddedDomain, type LinearScale } from './scale'
import { lowerBound, upperBound, type Extent, type XYSeries } from './series'

/** How a series is drawn. */
export type SeriesStyle = 'line' | 'line+points'

/** One series of the chart. */
export interface ChartSeries {
  /** The data (owned by the caller). */
  data: XYSeries
  /** Legend text. */
  label: string
  /** CSS variable holding the colour, e.g. `--chart-train`. */
  colorVar: string
  /** Colour when the variable is not set. */
  fallbackColor: string
  style: SeriesStyle
  /** Line width in CSS pixels. */
  lineWidth?: number
}

export interface LossChartOptions {
  series: ChartSeries[]
  /** Axis titles. */
  xLabel: string
  yLabel: string
  /** Shown in the plot while there is no data. */
  emptyText?: string
  /** Accessible name of the canvas; a summary of the latest values is appended. */
  ariaLabel?: string
}

/** Colours and font of a draw, from CSS variables. */
export interface ChartTheme {
  text: string
  muted: string
  grid: string
  axis: string
  font: string
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
    series: series.map((s) => v(s.colorVar, s.fallbackColor)),
  }
}

/** Plot margins in CSS pixels (left is widened to fit the y tick labels). */
const MARGIN = { top: 12, right: 16, bottom: 40, leftMin: 40 }
const Y_TITLE_SPACE = 18
const TICK_TARGET_PX = { x: 90, y: 48 }
/** Radius of a data point drawn as a dot, in CSS pixels. */
const DOT_RADIUS = 3

/** Union of the finite y extents of several series over the visible x window. */
function yExtentOf(series: readonly ChartSeries[], x0: number, x1: number, whole: boolean): Extent | null {
  let min = Infinity
  let max = -Infinity
  for (const { data } of series) {
    if (data.length === 0) continue
    if (whole) {
      const e = data.yExtent()
      if (e) {
        min = Math.min(min, e.min)
        max = Math.max(max, e.max)
      }
      continue
    }
    const start = lowerBound(data.x, data.length, x0)
    const end = upperBound(data.x, data.length, x1)
    for (let i = start; i < end; i++) {
      const y = data.y[i]
      if (!Number.isFinite(y)) continue
      if (y < min) min = y
      if (y > max) max = y
    }
  }
  return min <= max ? { min, max } : null
}

/**
 * The x window for data spanning `ext`: from step 0 when the data starts near it (a fresh
 * run), else from the first step (a resumed run), to the last step.
 */
export function xDomainFor(ext: Extent): [number, number] {
  const start = ext.min <= 0 || ext.min <= (ext.max - ext.min) * 0.25 ? Math.min(0, ext.min) : ext.min
  return ext.max > start ? [start, ext.max] : [start, start + 1]
}

function xExtentOf(series: readonly ChartSeries[]): Extent | null {
  let min = Infinity
  let max = -Infinity
  for (const { data } of series) {
    const e = data.xExtent()
    if (!e) continue
    min = Math.min(min, e.min)
    max = Math.max(max, e.max)
  }
  return min <= max ? { min, max } : null
}

export class LossChart {
  /** The root element the chart creates inside its container. */
  readonly root: HTMLDivElement
  readonly canvas: HTMLCanvasElement
  private readonly plot: HTMLDivElement
  private readonly legend: HTMLUListElement
  private readonly legendValues: HTMLSpanElement[] = []
  private readonly options: LossChartOptions
  private readonly resizeObserver: ResizeObserver | null
  private readonly colorScheme: MediaQueryList | null
  private cssWidth = 0
  private cssHeight = 0
  private dpr = 1
  private frame = 0
  private dirty = true
  private destroyed = false
  /** Number of completed draws (for tests and diagnostics). */
  drawCount = 0

  constructor(container: HTMLElement, options: LossChartOptions) {
    this.options = options
    const doc = container.ownerDocument
    this.root = doc.createElement('div')
    this.root.className = 'loss-chart'

    this.legend = doc.createElement('ul')
    this.legend.className = 'loss-chart__legend'
    for (const s of options.series) {
      const item = doc.createElement('li')
      const swatch = doc.createElement('span')
      swatch.className = `loss-chart__swatch loss-chart__swatch--${s.style === 'line' ? 'line' : 'points'}`
      swatch.style.setProperty('--swatch-color', `var(${s.colorVar}, ${s.fallbackColor})`)
      swatch.setAttribute('aria-hidden', 'true')
      const label = doc.createElement('span')
      label.className = 'loss-chart__label'
      label.textContent = s.label
      const value = doc.createElement('span')
      value.className = 'loss-chart__value'
      item.append(swatch, label, value)
      this.legend.append(item)
      this.legendValues.push(value)
    }

    this.plot = doc.createElement('div')
    this.plot.className = 'loss-chart__plot'
    this.canvas = doc.createElement('canvas')
    this.canvas.setAttribute('role', 'img')
    this.plot.append(this.canvas)
    this.root.append(this.legend, this.plot)
    container.append(this.root)

    const view = doc.defaultView
    this.resizeObserver =
      view && 'ResizeObserver' in view ? new view.ResizeObserver(() => this.measure()) : null
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

  /** Legend values and the canvas's accessible name (cheap, done on every invalidate). */
  private updateLabels(): void {
    const parts: string[] = []
    this.options.series.forEach((s, i) => {
      const y = s.data.lastY()
      const text = Number.isFinite(y) ? y.toFixed(4) : s.data.length > 0 ? '—' : ''
      if (this.legendValues[i].textContent !== text) this.legendValues[i].textContent = text
      parts.push(`${s.label}: ${s.data.length} ${s.data.length === 1 ? 'point' : 'points'}${Number.isFinite(y) ? `, latest ${y.toFixed(4)}` : ''}`)
    })
    const label = `${this.options.ariaLabel ?? 'Chart'}. ${parts.join('; ')}.`
    if (this.canvas.getAttribute('aria-label') !== label) this.canvas.setAttribute('aria-label', label)
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
    const theme = readTheme(this.root, series)
    const W = this.cssWidth
    const H = this.cssHeight

    ctx.setTransform(this.dpr, 0, 0, this.dpr, 0, 0)
    ctx.clearRect(0, 0, W, H)
    ctx.font = theme.font
    ctx.lineJoin = 'round'
    ctx.lineCap = 'round'

    const xExt = xExtentOf(series)
    const xDomain = xExt ? xDomainFor(xExt) : ([0, 1] as [number, number])
    const yExt = yExtentOf(series, xDomain[0], xDomain[1], true)
    const yDomain = yExt ? paddedDomain(yExt.min, yExt.max) : ([0, 1] as [number, number])

    const plotTop = MARGIN.top
    const plotBottom = H - MARGIN.bottom
    const plotHeight = Math.max(1, plotBottom - plotTop)
    const yTicks = niceTicks(yDomain[0], yDomain[1], Math.max(2, Math.round(plotHeight / TICK_TARGET_PX.y)))
    const yLabels = yTicks.values.map((v) => formatTick(v, yTicks.step))
    const labelWidth = yLabels.reduce((w, t) => Math.max(w, ctx.measureText(t).width), 0)
    const plotLeft = Math.max(MARGIN.leftMin, Math.ceil(labelWidth) + 10 + Y_TITLE_SPACE)
    const plotRight = W - MARGIN.right
    const plotWidth = Math.max(1, plotRight - plotLeft)

    const xScale = linearScale(xDomain, [plotLeft, plotRight])
    const yScale = linearScale(yDomain, [plotBottom, plotTop])
    const xTicks = niceTicks(xDomain[0], xDomain[1], Math.max(2, Math.round(plotWidth / TICK_TARGET_PX.x)))

    this.drawAxes(ctx, theme, xScale, yScale, xTicks.values, xTicks.step, yTicks.values, yLabels, {
      left: plotLeft,
      right: plotRight,
      top: plotTop,
      bottom: plotBottom,
    })

    if (!xExt) {
      ctx.fillStyle = theme.muted
      ctx.textAlign = 'center'
      ctx.textBaseline = 'middle'
      ctx.fillText(this.options.emptyText ?? 'No data yet', (plotLeft + plotRight) / 2, (plotTop + plotBottom) / 2)
      return
    }

    ctx.save()
    ctx.beginPath()
    // A little room on every side, so a dot at the edge of the domain is drawn whole.
    ctx.rect(plotLeft - DOT_RADIUS - 1, plotTop - 4, plotWidth + 2 * DOT_RADIUS + 2, plotHeight + 8)
    ctx.clip()
    series.forEach((s, i) => this.drawSeries(ctx, s, theme.series[i], xScale, yScale, plotWidth))
    ctx.restore()
  }

  private drawAxes(
    ctx: CanvasRenderingContext2D,
    theme: ChartTheme,
    xScale: LinearScale,
    yScale: LinearScale,
    xTicks: number[],
    xStep: number,
    yTicks: number[],
    yLabels: string[],
    box: { left: number; right: number; top: number; bottom: number },
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
    for (const v of xTicks) {
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
    for (const v of xTicks) ctx.fillText(formatTick(v, xStep), xScale.map(v), box.bottom + 6)

    // Axis titles.
    ctx.fillStyle = theme.text
    ctx.textAlign = 'center'
    ctx.textBaseline = 'bottom'
    ctx.fillText(this.options.xLabel, (box.left + box.right) / 2, this.cssHeight - 2)
    ctx.save()
    ctx.translate(2, (box.top + box.bottom) / 2)
    ctx.rotate(-Math.PI / 2)
    ctx.textBaseline = 'top'
    ctx.fillText(this.options.yLabel, 0, 0)
    ctx.restore()
  }

  private drawSeries(
    ctx: CanvasRenderingContext2D,
    s: ChartSeries,
    color: string,
    xScale: LinearScale,
    yScale: LinearScale,
    plotWidth: number,
  ): void {
    const { data } = s
    if (data.length === 0) return
    const start = lowerBound(data.x, data.length, xScale.domain[0])
    const end = upperBound(data.x, data.length, xScale.domain[1])
    const vertices = reduceMinMax(data.x, data.y, start, end, xScale, yScale, this.dpr)
    const path = new Path2D()
    tracePath(path, vertices)
    ctx.strokeStyle = color
    ctx.lineWidth = s.lineWidth ?? 1.5
    ctx.stroke(path)

    ctx.fillStyle = color
    const dots = new Path2D()
    if (s.style === 'line+points' && end - start <= plotWidth / 4) {
      for (let i = start; i < end; i++) {
        const y = data.y[i]
        if (!Number.isFinite(y)) continue
        const px = xScale.map(data.x[i])
        const py = yScale.map(y)
        dots.moveTo(px + DOT_RADIUS, py)
        dots.arc(px, py, DOT_RADIUS, 0, Math.PI * 2)
      }
    } else {
      // A point with no neighbour makes no line (the first step, a value between two
      // non-finite ones): show it as a dot.
      const lone = loneVertices(vertices)
      if (lone.length === 0) return
      for (let i = 0; i < lone.length; i += 2) {
        dots.moveTo(lone[i] + DOT_RADIUS, lone[i + 1])
        dots.arc(lone[i], lone[i + 1], DOT_RADIUS, 0, Math.PI * 2)
      }
    }
    ctx.fill(dots)
  }
}
