// Real-browser test of the console against the real binary.
//
//   npm run e2e                       # uses ../target/debug/trainconsole
//   TRAINCONSOLE_BIN=/path/to/bin npm run e2e
//   TRAINCONSOLE_DATA=/path/to/text npm run e2e
//
// Starts `trainconsole train --preset tiny … --port 0`, reads the console URL from its
// stdout, and drives Debian's Chromium through playwright-core: the token counter rises,
// the chart gains points, a reload brings the history back, a second tab shows the same
// run, Abort (confirmed in the in-page dialog) stops it in both tabs with a checkpoint that
// exists on disk. Saves a screenshot of the live console (to $TRAINCONSOLE_SCREENSHOT, default in the temp dir).

import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { launchChromium, numberAttr, startConsole, stopProcess, until, webDir } from './harness.mjs'

const data = path.resolve(webDir, process.env.TRAINCONSOLE_DATA || '../../shared/data/tinyshakespeare.txt')
// The README's screenshot is refreshed with TRAINCONSOLE_SCREENSHOT=$PWD/../docs/console.png;
// by default the test leaves the working tree alone.
const screenshotPath = path.resolve(webDir, process.env.TRAINCONSOLE_SCREENSHOT || path.join(tmpdir(), 'trainconsole-console.png'))

/** @type {import('node:child_process').ChildProcess | null} */
let server = null
let runsDir = ''
let consoleUrl = ''
/** @type {import('playwright-core').Browser | null} */
let browser = null

function log(...args) {
  console.log('[e2e]', ...args)
}

/** Every file under `dir`, recursively. */
function walk(dir) {
  const out = []
  for (const name of readdirSync(dir)) {
    const full = path.join(dir, name)
    if (statSync(full).isDirectory()) out.push(...walk(full))
    else out.push(full)
  }
  return out
}

before(async () => {
  assert.ok(existsSync(data), `no training text at ${data} (set TRAINCONSOLE_DATA)`)
  runsDir = mkdtempSync(path.join(tmpdir(), 'tc-e2e-'))
  const started = await startConsole(
    ['train', '--preset', 'tiny', '--data', data, '--port', '0', '--runs-dir', runsDir, '--max-tokens', '100000000'],
    { log },
  )
  server = started.child
  consoleUrl = started.url
  log('console at', consoleUrl)
  browser = await launchChromium()
})

after(async () => {
  await browser?.close().catch(() => {})
  await stopProcess(server)
  if (runsDir) rmSync(runsDir, { recursive: true, force: true })
})

test('live console: counter, chart, reload, second tab, abort', { timeout: 300_000 }, async () => {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, deviceScaleFactor: 1 })
  const pageErrors = []
  const abortPosts = []
  context.on('request', (request) => {
    if (request.method() === 'POST' && /\/api\/runs\/[^/]+\/abort$/.test(new URL(request.url()).pathname)) {
      abortPosts.push(request.url())
    }
  })
  const watch = (page, name) => {
    page.on('pageerror', (err) => pageErrors.push(`${name}: ${err.message}`))
    page.on('console', (msg) => {
      if (msg.type() === 'error') log(`${name} console error:`, msg.text())
    })
  }

  // ---- Tab 1: the live console ----------------------------------------------------------
  const page = await context.newPage()
  watch(page, 'tab1')
  await page.goto(consoleUrl)
  await page.getByRole('heading', { level: 1 }).waitFor()

  const tokens1 = await until('a first token count', async () => (await numberAttr(page, '[data-testid="tokens"]', 'data-value')) || 0)
  const tokens2 = await until('the token counter to rise', async () => {
    const t = await numberAttr(page, '[data-testid="tokens"]', 'data-value')
    return t > tokens1 ? t : 0
  })
  log(`tokens rose ${tokens1} → ${tokens2}`)
  const shownTokens = (await page.getByTestId('tokens').innerText()).replace(/\s+/g, ' ')
  assert.match(shownTokens, /^[\d,]+ \/ 100,000,000 tokens \d+\.\d{1,2}%$/, `token counter text: ${shownTokens}`)
  assert.match(await page.getByTestId('steps').innerText(), /step [\d,]+ \/ [\d,]+/)

  const points1 = await until('chart points', async () => (await numberAttr(page, '[data-testid="loss-chart"]', 'data-points')) || 0)
  const points2 = await until('the chart to gain points', async () => {
    const p = await numberAttr(page, '[data-testid="loss-chart"]', 'data-points')
    return p > points1 ? p : 0
  })
  log(`chart points ${points1} → ${points2}`)
  assert.equal(await page.getByTestId('connection').getAttribute('data-status'), 'live')
  await page.locator('[data-testid="state"]', { hasText: 'Running' }).waitFor()

  // The canvas is sized to its box × devicePixelRatio and has been drawn on.
  const canvas = await page.evaluate(() => {
    const c = document.querySelector('[data-testid="loss-chart"] canvas')
    if (!c) return null
    const rect = c.getBoundingClientRect()
    const ctx = c.getContext('2d')
    const pixels = ctx.getImageData(0, 0, c.width, c.height).data
    let painted = 0
    for (let i = 3; i < pixels.length; i += 4) if (pixels[i] > 0) painted++
    return { width: c.width, height: c.height, cssWidth: rect.width, dpr: window.devicePixelRatio, painted }
  })
  assert.ok(canvas, 'the chart has a canvas')
  assert.equal(canvas.width, Math.round(Math.floor(canvas.cssWidth) * canvas.dpr))
  assert.ok(canvas.painted > 1000, `the canvas is drawn on (${canvas.painted} pixels)`)

  // ---- Reload: the history comes back ---------------------------------------------------
  const before = await numberAttr(page, '[data-testid="loss-chart"]', 'data-points')
  await page.reload()
  const afterReload = await until('the history after reload', async () => {
    const p = await numberAttr(page, '[data-testid="loss-chart"]', 'data-points')
    return p >= before ? p : 0
  })
  log(`after reload: ${afterReload} points (had ${before})`)

  // ---- Screenshot of the live console ---------------------------------------------------
  await until('a val loss and a sample', async () => {
    const val = await page.getByTestId('val-loss').innerText()
    const samples = await page.getByTestId('sample').count()
    return val.trim() !== '—' && samples > 0
  })
  await until('an ETA', async () => {
    const eta = (await page.getByTestId('eta').innerText()).trim()
    return eta !== 'estimating…' && eta !== '—' ? eta : ''
  })
  await page.waitForTimeout(1500) // let a couple more batches draw
  mkdirSync(path.dirname(screenshotPath), { recursive: true })
  await page.screenshot({ path: screenshotPath })
  log('screenshot saved to', screenshotPath)

  // ---- Tab 2: the same run --------------------------------------------------------------
  const page2 = await context.newPage()
  watch(page2, 'tab2')
  await page2.goto(consoleUrl)
  await page2.locator('[data-testid="state"]', { hasText: 'Running' }).waitFor()
  const title1 = await page.getByRole('heading', { level: 1 }).innerText()
  assert.equal(await page2.getByRole('heading', { level: 1 }).innerText(), title1)
  await until('tab 2 to show the run', async () => (await numberAttr(page2, '[data-testid="loss-chart"]', 'data-points')) >= afterReload)

  // ---- Abort from tab 1 -----------------------------------------------------------------
  await page.bringToFront()
  const abort = page.getByRole('button', { name: 'Abort run', exact: true })
  assert.equal(await abort.isEnabled(), true)
  const focused = () => page.evaluate(() => document.activeElement?.textContent?.trim() ?? '')
  await abort.focus()
  await page.keyboard.press('Enter') // the keyboard opens it
  const dialog = page.getByRole('dialog', { name: 'Abort this run?' })
  await dialog.waitFor()
  assert.equal(await focused(), 'Keep training', 'focus moves into the dialog, on the safe choice')
  // Escape cancels: nothing is sent and focus returns to the Abort button.
  await page.keyboard.press('Escape')
  await dialog.waitFor({ state: 'hidden' })
  assert.equal(abortPosts.length, 0, 'Escape sent nothing')
  assert.equal(await focused(), 'Abort run', 'focus is back on the Abort button')
  // Now for real. Record every label the button shows on the way.
  await page.evaluate(() => {
    const button = document.querySelector('[data-testid="abort"]')
    window.__abortLabels = []
    new MutationObserver(() => window.__abortLabels.push(`${button.textContent.trim()}|${button.disabled}`)).observe(button, {
      subtree: true,
      characterData: true,
      childList: true,
      attributes: true,
    })
  })
  await abort.click()
  await dialog.waitFor()
  await dialog.getByRole('button', { name: 'Confirm abort', exact: true }).click()
  await until('the abort button to say Stopping… and disable itself', async () =>
    (await page.evaluate(() => window.__abortLabels)).includes('Stopping…|true'),
  )

  for (const [name, p] of [
    ['tab1', page],
    ['tab2', page2],
  ]) {
    try {
      await p.locator('[data-testid="state"]', { hasText: 'Aborted' }).waitFor({ timeout: 60_000 })
    } catch (err) {
      const state = await p.locator('[data-testid="state"]').innerText().catch(() => '?')
      const connection = await p.getByTestId('connection').getAttribute('data-status').catch(() => '?')
      throw new Error(
        `${name} never showed Aborted (state badge: ${state}, connection: ${connection}). If the connection is ` +
          `"exited", the server exited before delivering the final events and bye to its viewers.\n${err.message}`,
      )
    }
    const headline = await p.getByTestId('notice-headline').innerText()
    assert.match(headline, /^Aborted at step [\d,]+$/, `${name} headline: ${headline}`)
    const ckpt = (await p.getByTestId('checkpoint-path').innerText()).trim()
    assert.ok(ckpt.length > 0, `${name} shows the checkpoint path`)
    log(`${name}: ${headline}; checkpoint ${ckpt}`)
    assert.equal(await p.getByTestId('eta').count(), 0, `${name} shows no ETA after the run ended`)
    assert.equal(await p.getByTestId('abort').isDisabled(), true)
  }
  assert.equal(abortPosts.length, 1, `exactly one abort request (${abortPosts.join(', ')})`)

  // The checkpoint exists on disk, under the runs dir.
  const ckptPath = (await page.getByTestId('checkpoint-path').innerText()).trim()
  const ckptAbs = path.isAbsolute(ckptPath) ? ckptPath : path.resolve(webDir, ckptPath)
  assert.ok(existsSync(ckptAbs), `checkpoint path exists: ${ckptAbs}`)
  const safetensors = walk(runsDir).filter((f) => f.endsWith('.safetensors'))
  assert.ok(safetensors.length > 0, `a *.safetensors file under ${runsDir}`)
  log('checkpoint files:', safetensors.map((f) => path.relative(runsDir, f)).join(', '))

  // The process exits after the run ends: the page says so and keeps the data.
  await page.locator('[data-testid="connection"][data-status="exited"]').waitFor({ timeout: 60_000 })
  assert.match(await page.getByTestId('notice-headline').innerText(), /^Aborted at step/)
  assert.ok((await numberAttr(page, '[data-testid="loss-chart"]', 'data-points')) >= afterReload)
  log('tab1 connection:', (await page.locator('[data-testid="connection"] .conn__text').innerText()).trim())

  assert.deepEqual(pageErrors, [], 'no uncaught errors in the pages')
  await context.close()
})
