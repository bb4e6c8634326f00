// @vitest-environment happy-dom
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { createApp, h, nextTick, type App } from 'vue'
import LossChartView from './LossChartView.vue'
import { createTrainSeries, createValSeries } from '../composables/runStream'

let app: App | null = null
let root: HTMLElement
let frames: FrameRequestCallback[] = []
const texts: string[] = []

async function flush() {
  for (let i = 0; i < 4; i++) {
    await Promise.resolve()
    await nextTick()
  }
}

function runFrames() {
  const pending = frames
  frames = []
  pending.forEach((cb) => cb(performance.now()))
}

beforeEach(() => {
  frames = []
  texts.length = 0
  vi.stubGlobal('requestAnimationFrame', (cb: FrameRequestCallback) => frames.push(cb))
  vi.stubGlobal('cancelAnimationFrame', () => {})
  vi.stubGlobal('Path2D', class { moveTo() {} lineTo() {} arc() {} })
  vi.spyOn(HTMLElement.prototype, 'getBoundingClientRect').mockReturnValue({ width: 600, height: 300, top: 0, left: 0, right: 600, bottom: 300, x: 0, y: 0, toJSON() {} } as DOMRect)
  const ctx = new Proxy({} as Record<string | symbol, unknown>, {
    get(target, prop) {
      if (prop === 'measureText') return (t: string) => ({ width: t.length * 6 })
      if (prop === 'fillText') return (t: string) => texts.push(t)
      if (prop in target) return target[prop]
      return () => {}
    },
    set(target, prop, value) {
      target[prop] = value
      return true
    },
  })
  vi.spyOn(HTMLCanvasElement.prototype, 'getContext').mockImplementation(() => ctx as never)
})

afterEach(() => {
  app?.unmount()
  app = null
  root?.remove()
  vi.restoreAllMocks()
  vi.unstubAllGlobals()
})

describe('LossChartView', () => {
  it('wires its controls to the chart: x axis, log scale, smoothing', async () => {
    const train = createTrainSeries()
    const val = createValSeries()
    for (let i = 1; i <= 50; i++) train.push({ step: i, tokens: i * 2048, timeSecs: 1_764_400_000 + i, values: { loss: i === 10 ? 0 : 3 - i / 100 } })
    root = document.createElement('div')
    document.body.append(root)
    app = createApp({ render: () => h(LossChartView, { train, val, trainPoints: train.length, valPoints: 0 }) })
    app.mount(root)
    await flush()
    expect(texts).toContain('step')

    const select = root.querySelector('[data-testid="chart-x-axis"]') as HTMLSelectElement
    select.value = 'tokens'
    select.dispatchEvent(new Event('change'))
    await flush()
    texts.length = 0
    runFrames()
    expect(texts).toContain('tokens')
    expect(texts).toContain('100k') // 50 steps × 2,048 tokens

    const log = root.querySelector('[data-testid="chart-log"]') as HTMLInputElement
    log.checked = true
    log.dispatchEvent(new Event('change'))
    await flush()
    runFrames()
    expect(root.querySelector('.loss-chart__notes')!.textContent).toBe('log scale: 1 value ≤ 0 left out')

    const slider = root.querySelector('[data-testid="chart-smoothing"]') as HTMLInputElement
    slider.value = '0'
    slider.dispatchEvent(new Event('input'))
    await flush()
    runFrames()
    expect(train.smoothing()).toBe(0)
    expect(train.valueArray('loss_ema')).toEqual(train.valueArray('loss').map((v) => Math.fround(v)))
  })
})
