// Real-browser pixel test of the chart module at a million points, in Debian's Chromium.
//
//   npm run e2e          (runs with the console test; this one needs no server binary)
//
// Builds the chart lab page (bench/index.html, see bench/lab.ts) with Vite, opens it, draws
// 1,000,000 points of a flat loss (2.0) with a single one-step spike (5.0) and a single
// finite point (1.0) between two NaNs on a 1200×400 canvas, reads the canvas's pixels back
// and finds both in them: the spike at its full height in its pixel column, the isolated
// point as a dot not joined to its neighbours, and the red NaN mark at the top edge.

import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { existsSync } from 'node:fs'
import { chromium } from 'playwright-core'
import { buildLab, serve, CHROMIUM_ARGS } from '../bench/serve.mjs'

const chromiumPath = process.env.CHROMIUM_PATH || '/usr/bin/chromium'
const N = 1_000_000
const SPIKE_AT = 654_321
const ISOLATED_AT = 333_333

/** @type {import('playwright-core').Browser | null} */
let browser = null
/** @type {{ url: string, close: () => Promise<void> } | null} */
let server = null

before(async () => {
  assert.ok(existsSync(chromiumPath), `no Chromium at ${chromiumPath} (apt-get install chromium, or set CHROMIUM_PATH)`)
  server = await serve(await buildLab())
  browser = await chromium.launch({ executablePath: chromiumPath, headless: true, args: CHROMIUM_ARGS })
})

after(async () => {
  await browser?.close()
  await server?.close()
})

test('a one-step spike and a point between NaNs are drawn at 1M points', { timeout: 120_000 }, async () => {
  const page = await browser.newPage({ viewport: { width: 1300, height: 900 } })
  const errors = []
  page.on('pageerror', (e) => errors.push(String(e)))
  await page.goto(server.url)
  await page.waitForSelector('body[data-ready="true"]', { state: 'attached' })
  const scene = await page.evaluate(([n, s, i]) => window.lab.pixelScene(n, s, i), [N, SPIKE_AT, ISOLATED_AT])
  const { width, height, data } = await page.evaluate(() => window.lab.pixels())
  assert.deepEqual(errors, [])
  assert.equal(width, 1200)
  assert.equal(height, 400)

  const at = (x, y) => {
    const o = (Math.round(y) * width + Math.round(x)) * 4
    return { r: data[o], g: data[o + 1], b: data[o + 2], a: data[o + 3] }
  }
  /** The series' ink: near-black and mostly opaque (grid lines are faint grey). */
  const ink = (x, y) => {
    const p = at(x, y)
    return p.a > 150 && p.r < 90 && p.g < 90 && p.b < 90
  }
  const red = (x, y) => {
    const p = at(x, y)
    return p.a > 120 && p.r > 150 && p.g < 110 && p.b < 110
  }
  /** Rows with ink in columns [x − dx, x + dx]. */
  const inkRows = (x, dx = 1) => {
    const rows = []
    for (let y = 0; y < height; y++) {
      for (let cx = Math.floor(x) - dx; cx <= Math.floor(x) + dx; cx++) {
        if (ink(cx, y)) {
          rows.push(y)
          break
        }
      }
    }
    return rows
  }

  // The baseline is drawn across the plot.
  const baseRows = inkRows(scene.box.left + 100)
  assert.ok(baseRows.length > 0 && baseRows.every((y) => Math.abs(y - scene.spike.yBase) <= 2), `baseline rows ${baseRows}`)

  // The spike: ink from the baseline up to the spike's true height in its own column…
  const spikeRows = inkRows(scene.spike.x)
  assert.ok(spikeRows.length > 0, 'ink in the spike column')
  const top = Math.min(...spikeRows)
  assert.ok(Math.abs(top - scene.spike.yTop) <= 2, `spike drawn up to y=${top}, its value is at y=${scene.spike.yTop.toFixed(1)}`)
  const mid = (scene.spike.yTop + scene.spike.yBase) / 2
  assert.ok(spikeRows.some((y) => Math.abs(y - mid) <= 1), 'the spike is a continuous line, not a dot')
  // …and only there: ten pixels to either side the line is flat.
  for (const dx of [-10, 10]) {
    const rows = inkRows(scene.spike.x + dx, 0)
    assert.ok(rows.every((y) => y > scene.spike.yBase - 3), `column ${dx} px from the spike has ink at ${rows}`)
  }

  // The isolated point: a dot at its value below the baseline…
  const isoRows = inkRows(scene.isolated.x, 2)
  assert.ok(isoRows.some((y) => Math.abs(y - scene.isolated.y) <= 2), `dot at y=${scene.isolated.y.toFixed(1)}; ink rows ${isoRows}`)
  // …not joined to the line (its neighbours are NaN): nothing halfway between them.
  const between = (scene.isolated.y + scene.isolated.yBase) / 2
  assert.ok(!isoRows.some((y) => Math.abs(y - between) <= 2), `no line from the point to the baseline; ink rows ${isoRows}`)

  // The NaNs around it: a red mark at the top edge, in that column.
  let marked = false
  for (let dx = -1; dx <= 1 && !marked; dx++) {
    for (let y = scene.box.top - 8; y < scene.box.top; y++) if (red(scene.isolated.x + dx, y)) marked = true
  }
  assert.ok(marked, 'red NaN mark at the top edge above the isolated point')
  await page.close()
})

test('notes count each NaN once with the loss and its EMA; the right axis takes one series', { timeout: 120_000 }, async () => {
  const page = await browser.newPage({ viewport: { width: 1300, height: 900 } })
  const errors = []
  page.on('pageerror', (e) => errors.push(String(e)))
  await page.goto(server.url)
  await page.waitForSelector('body[data-ready="true"]', { state: 'attached' })
  const scene = await page.evaluate(() => window.lab.notesScene())
  assert.deepEqual(errors, [])
  // Three NaN losses: three points, though the EMA passes each one through too.
  assert.equal(scene.notes, '3 NaN/Inf values in view, marked in red at the top')
  assert.match(scene.legend[0], /^train loss\d\.\d{4} · 3 NaN\/Inf$/)
  assert.match(scene.legend[1], /^train loss \(EMA\)\d\.\d{4} · 3 NaN\/Inf$/)
  assert.deepEqual(scene.pressed, ['true', 'true', 'true', 'false', 'false'])
  // Learning rate, then grad norm: the right axis changes hands.
  assert.deepEqual(await page.evaluate(() => window.lab.clickLegend(3)), ['true', 'true', 'true', 'true', 'false'])
  assert.deepEqual(await page.evaluate(() => window.lab.clickLegend(4)), ['true', 'true', 'true', 'false', 'true'])
  await page.close()
})
