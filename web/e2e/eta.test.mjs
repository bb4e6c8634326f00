// Real-browser test of the ETA through a whole run, against the real binary.
//
//   npm run e2e                       # uses ../target/debug/trainconsole
//
// Trains the `small` preset for 16 steps (32,768 tokens) and records every text the page's
// ETA takes, from the first render to the end: "estimating…" through warm-up, then the time
// left with its 10th–90th percentile range and a finish clock, then "finishing" while the
// final eval, sample and checkpoint run with the budget reached, then nothing once the run
// has completed.

import { spawn } from 'node:child_process'
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { fileURLToPath } from 'node:url'
import { chromium } from 'playwright-core'

const webDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const bin = path.resolve(webDir, process.env.TRAINCONSOLE_BIN || '../target/debug/trainconsole')
const data = path.resolve(webDir, process.env.TRAINCONSOLE_DATA || '../../shared/data/tinyshakespeare.txt')
const chromiumPath = process.env.CHROMIUM_PATH || '/usr/bin/chromium'
const URL_RE = /http:\/\/127\.0\.0\.1:\d+\/runs\/[^\s]+/
const STEPS = 16
const TOKENS_PER_STEP = 2048 // the small preset: batch 16 × context 128

/** @type {import('node:child_process').ChildProcess | null} */
let server = null
let runsDir = ''
let output = ''
/** @type {import('playwright-core').Browser | null} */
let browser = null

function log(...args) {
  console.log('[e2e eta]', ...args)
}

function startServer() {
  runsDir = mkdtempSync(path.join(tmpdir(), 'tc-e2e-eta-'))
  const args = ['train', '--preset', 'small', '--data', data, '--port', '0', '--runs-dir', runsDir, '--max-tokens', String(STEPS * TOKENS_PER_STEP)]
  log('starting', bin, args.join(' '))
  server = spawn(bin, args, { cwd: webDir, stdio: ['ignore', 'pipe', 'pipe'] })
  return new Promise((resolve, reject) => {
    let stdout = ''
    const timer = setTimeout(() => reject(new Error(`no console URL within 120 s; output:\n${output.slice(-3000)}`)), 120_000)
    const keep = (chunk) => {
      output += chunk
      if (output.length > 200_000) output = output.slice(-100_000)
    }
    server.stdout.setEncoding('utf8')
    server.stdout.on('data', (chunk) => {
      stdout += chunk
      keep(chunk)
      const match = URL_RE.exec(stdout)
      if (match) {
        clearTimeout(timer)
        resolve(match[0])
      }
    })
    server.stderr.setEncoding('utf8')
    server.stderr.on('data', keep)
    server.on('error', (err) => {
      clearTimeout(timer)
      reject(err)
    })
    server.on('exit', (code, signal) => {
      clearTimeout(timer)
      reject(new Error(`server exited (${code ?? signal}) before printing its URL; output:\n${output.slice(-3000)}`))
    })
  })
}

before(async () => {
  assert.ok(existsSync(bin), `no binary at ${bin} (build it with cargo build, or set TRAINCONSOLE_BIN)`)
  assert.ok(existsSync(data), `no training text at ${data} (set TRAINCONSOLE_DATA)`)
  assert.ok(existsSync(chromiumPath), `no Chromium at ${chromiumPath} (apt-get install chromium, or set CHROMIUM_PATH)`)
  browser = await chromium.launch({
    executablePath: chromiumPath,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  })
})

after(async () => {
  await browser?.close().catch(() => {})
  if (server && server.exitCode === null && server.signalCode === null) {
    server.kill('SIGTERM')
    await new Promise((resolve) => {
      const timer = setTimeout(() => {
        server?.kill('SIGKILL')
        resolve()
      }, 5000)
      server?.once('exit', () => {
        clearTimeout(timer)
        resolve()
      })
    })
  }
  if (runsDir) rmSync(runsDir, { recursive: true, force: true })
})

test('ETA: estimating…, then a time with its range, then finishing, then nothing', { timeout: 300_000 }, async () => {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } })
  const page = await context.newPage()
  const pageErrors = []
  page.on('pageerror', (err) => pageErrors.push(err.message))
  // Record every distinct (ETA, range, finish clock) the page shows, as it renders them.
  await page.addInitScript(() => {
    const seen = []
    window.__etaSeen = seen
    const text = (id) => document.querySelector(`[data-testid="${id}"]`)?.textContent?.replace(/\s+/g, ' ').trim() ?? null
    const record = () => {
      const entry = { eta: text('eta'), range: text('eta-range'), finish: text('finish-time'), state: text('state'), tokens: text('tokens') }
      const last = seen[seen.length - 1]
      if (!last || last.eta !== entry.eta || last.range !== entry.range || (last.finish === null) !== (entry.finish === null)) seen.push(entry)
    }
    new MutationObserver(record).observe(document, { subtree: true, childList: true, characterData: true })
  })

  const consoleUrl = await startServer()
  log('console at', consoleUrl)
  await page.goto(consoleUrl)
  await page.getByRole('heading', { level: 1 }).waitFor()
  await page.locator('[data-testid="state"]', { hasText: 'Completed' }).waitFor({ timeout: 240_000 })
  // Let the last messages render.
  await page.waitForTimeout(500)

  const seen = await page.evaluate(() => window.__etaSeen)
  log('ETA as shown:', JSON.stringify(seen.map((e) => [e.eta, e.range, e.finish !== null])))
  const shown = seen.filter((e) => e.eta !== null)
  assert.ok(shown.length > 0, 'the ETA was never shown')

  const estimating = seen.findIndex((e) => e.eta === 'estimating…')
  const estimate = seen.findIndex((e) => /^(\d+h )?(\d+m )?\d+s$/.test(e.eta ?? '') && /^\S.* – \S.*$/.test(e.range ?? '') && e.finish !== null)
  const finishing = seen.findIndex((e) => e.eta === 'finishing')
  assert.ok(estimating >= 0, `never "estimating…": ${JSON.stringify(seen)}`)
  assert.ok(estimate > estimating, `no ETA with a range and finish clock after "estimating…": ${JSON.stringify(seen)}`)
  assert.ok(finishing > estimate, `no "finishing" after the estimate: ${JSON.stringify(seen)}`)
  // "finishing" comes with the budget reached: the counter at (or one step past) it.
  assert.match(seen[finishing].tokens ?? '', /^32,768 \/ 32,768 tokens 100\.0%$/)
  // Nothing after completion.
  const last = seen[seen.length - 1]
  assert.equal(last.eta, null, `the ETA is still shown after completion: ${JSON.stringify(last)}`)
  assert.equal(await page.locator('[data-testid="eta-figure"]').count(), 0)
  assert.equal(await page.locator('[data-testid="finish-time"]').count(), 0)
  // The ETA never went back to "estimating…" once it had a number, nor showed a negative or
  // non-numeric time.
  assert.ok(!seen.slice(estimate).some((e) => e.eta === 'estimating…'), `back to estimating: ${JSON.stringify(seen)}`)
  assert.ok(!seen.some((e) => /NaN|Infinity|-\d/.test(`${e.eta} ${e.range}`)), JSON.stringify(seen))
  assert.deepEqual(pageErrors, [])
})
