// Chart benchmark: our canvas chart against uPlot 1.6 on the same data, side by side in one
// run of Debian's Chromium (software canvas), 1200×400 canvas.
//
//   cd web && npm run bench   # BENCH_SIZES=1000000,10000000 BENCH_REPEATS=30 BENCH_FIRST_REPEATS=5
//
// Both charts are first warmed up, three rounds at 200,000 points (JIT). Measures, per size: first render
// from the same columns in hand (Float64Arrays of step, tokens, time, loss) to rasterized
// pixels — ours ingest included (bulk append: x columns, loss, EMA, the pyramids' first
// level; their upper levels in the first draw), uPlot's setData and first draw; our render of already loaded data (without
// ingest); append 100 points then redraw (median of BENCH_REPEATS); our bytes per point.
// BENCH_PUSH_INGEST=1 also times loading point by point through push(). uPlot is measured at the
// sizes up to BENCH_UPLOT_MAX (default 1M) with the same two series (raw loss and its EMA).

import os from 'node:os'
import { execFileSync } from 'node:child_process'
import { chromium } from 'playwright-core'
import { buildLab, serve, CHROMIUM_ARGS } from './serve.mjs'

const sizes = (process.env.BENCH_SIZES ?? '1000000,10000000').split(',').map(Number)
const repeats = Number(process.env.BENCH_REPEATS ?? 30)
const firstRepeats = Number(process.env.BENCH_FIRST_REPEATS ?? 5)
const uplotMax = Number(process.env.BENCH_UPLOT_MAX ?? 1_000_000)
const chromiumPath = process.env.CHROMIUM_PATH || '/usr/bin/chromium'

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b)
  return s.length % 2 ? s[(s.length - 1) >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2
}
const ms = (v) => (v === undefined ? '—' : `${v.toFixed(v < 10 ? 2 : 1)} ms`)

const dist = await buildLab()
const server = await serve(dist)
const browser = await chromium.launch({ executablePath: chromiumPath, headless: true, args: CHROMIUM_ARGS })
const version = browser.version()
const rows = []
try {
  const page = await browser.newPage({ viewport: { width: 1300, height: 1100 } })
  page.on('pageerror', (e) => console.error('[page]', e))
  await page.goto(server.url)
  await page.waitForSelector('body[data-ready="true"]', { state: 'attached' })
  // Warm both up on a small run first (JIT), so first renders compare the charts, not the compilers.
  // Three rounds at 200,000 points: bulk loops run long enough for the optimizing compiler.
  for (let k = 0; k < 3; k++) {
    await page.evaluate(() => window.lab.load(200_000))
    await page.evaluate(() => window.lab.oursFirstRender())
    await page.evaluate(() => window.lab.oursRenderLoaded())
    await page.evaluate(() => window.lab.uplotLoad())
    await page.evaluate(() => window.lab.uplotFirstRender())
  }
  for (let k = 0; k < 20; k++) {
    await page.evaluate(() => window.lab.oursAppend(100))
    await page.evaluate(() => window.lab.uplotAppend(100))
  }
  await page.evaluate(() => window.lab.reset())
  for (const n of sizes) {
    const r = { n }
    // Both charts start from the same columns in hand; interleaved, so drift on a shared
    // machine hits both alike.
    await page.evaluate((n) => window.lab.load(n), n)
    // First renders: each a fresh chart on the data in hand, median of firstRepeats rounds.
    const firsts = []
    const uFirsts = []
    const loaded = []
    for (let k = 0; k < firstRepeats; k++) {
      if (n <= uplotMax) {
        await page.evaluate(() => window.lab.uplotLoad())
        uFirsts.push(await page.evaluate(() => window.lab.uplotFirstRender()))
      }
      firsts.push(await page.evaluate(() => window.lab.oursFirstRender()))
      loaded.push(await page.evaluate(() => window.lab.oursRenderLoaded()))
    }
    const mid = [...firsts].sort((a, b) => a.totalMs - b.totalMs)[(firsts.length - 1) >> 1]
    r.first = mid.totalMs
    r.ingest = mid.ingestMs
    r.draw = mid.drawMs
    r.bytes = mid.bytesPerPoint
    r.uFirst = uFirsts.length ? median(uFirsts) : undefined
    r.loaded = median(loaded)
    if (process.env.BENCH_PUSH_INGEST) r.pushIngest = await page.evaluate(() => window.lab.oursPushLoad())
    const a = []
    const b = []
    for (let k = 0; k < repeats; k++) {
      a.push(await page.evaluate(() => window.lab.oursAppend(100)))
      if (n <= uplotMax) b.push(await page.evaluate(() => window.lab.uplotAppend(100)))
    }
    r.append = median(a)
    r.appendMax = Math.max(...a)
    r.uAppend = b.length ? median(b) : undefined
    r.uAppendMax = b.length ? Math.max(...b) : undefined
    rows.push(r)
    console.error(`n=${n}: ours first ${ms(r.first)} (ingest ${ms(r.ingest)}, draw ${ms(r.draw)}; loaded ${ms(r.loaded)}) append ${ms(r.append)}; uPlot first ${ms(r.uFirst)} append ${ms(r.uAppend)}`)
    await page.evaluate(() => window.lab.reset())
  }
} finally {
  await browser.close()
  await server.close()
}

let cpu = os.cpus()[0]?.model ?? 'unknown CPU'
try {
  cpu = execFileSync('sh', ['-c', "lscpu | sed -n 's/^Model name: *//p'"], { encoding: 'utf8' }).trim() || cpu
} catch {}
console.log(`\nChromium ${version} (headless, --disable-gpu: software canvas), 1200×400 canvas, devicePixelRatio 1`)
console.log(`${cpu}, ${os.cpus().length} cores; Node ${process.version}; first renders: median of ${firstRepeats}; appends: median of ${repeats}\n`)
console.log('| points | first render, ingest included: ours | = ingest + first draw | uPlot 1.6 | ratio | render of loaded data (ours) | append 100 + redraw, median (max): ours | uPlot 1.6 | ratio of medians | memory (ours) |')
console.log('|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|')
for (const r of rows) {
  const ratio = (a, b) => (b === undefined ? '—' : `${(a / b).toFixed(3)}×`)
  console.log(
    `| ${r.n.toLocaleString('en')} | ${ms(r.first)} | ${ms(r.ingest)} + ${ms(r.draw)} | ${ms(r.uFirst)} | ${ratio(r.first, r.uFirst)} | ${ms(r.loaded)} | ${ms(r.append)} (${ms(r.appendMax)}) | ${ms(r.uAppend)}${r.uAppendMax === undefined ? '' : ` (${ms(r.uAppendMax)})`} | ${ratio(r.append, r.uAppend)} | ${r.bytes.toFixed(2)} B/point |`,
  )
}
if (rows.some((r) => r.pushIngest !== undefined)) {
  console.log('\nIngest point by point through push() (the old path), for comparison:')
  for (const r of rows) if (r.pushIngest !== undefined) console.log(`  ${r.n.toLocaleString('en')} points: ${ms(r.pushIngest)} (bulk: ${ms(r.ingest)})`)
}
