// Real-browser test of runs reported by external trainers through `trainconsole run -- CMD`.
//
//   npm run e2e                       # uses ../target/debug/trainconsole and python3
//
// 1. The stdlib toy trainer (examples/python/train_toy.py): the page shows its token counter,
//    loss chart, throughput and ETA like our own worker's, and Abort ends in "Aborted" with
//    the checkpoint the trainer wrote.
// 2. A trainer that ignores SIGINT (and whose loss turns NaN, shown as not finite): after Abort the page shows "Stopping… (N s)" and never
//    "Aborted"; after the grace period it offers Force kill, which ends the process, and
//    the page says how (killed by SIGTERM).

import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { launchChromium, numberAttr, startConsole, until, webDir } from './harness.mjs'

const toy = path.resolve(webDir, '../examples/python/train_toy.py')

/**
 * A trainer that ignores SIGINT (Abort) and reports a step every 50 ms; its loss diverges to
 * NaN after step 5 (Python writes it as a bare NaN).
 */
const STUBBORN = `
import json, signal, time
signal.signal(signal.SIGINT, signal.SIG_IGN)
print(json.dumps({"kind": "run_start", "time": time.time(), "name": "stubborn trainer", "total_tokens": 10**9}), flush=True)
step = 0
while True:
    step += 1
    print(json.dumps({"kind": "step", "time": time.time(), "step": step, "tokens": step * 512, "loss": 3.0 if step <= 5 else float("nan")}), flush=True)
    print(f"plain output line {step}", flush=True)
    time.sleep(0.05)
`

const started = [] // { child, runsDir }
/** @type {import('playwright-core').Browser | null} */
let browser = null

function log(...args) {
  console.log('[e2e external]', ...args)
}

/** `trainconsole run … -- command…`; resolves with { child, url, runsDir, output() }. */
async function startRun(runArgs, command) {
  const runsDir = mkdtempSync(path.join(tmpdir(), 'tc-e2e-ext-'))
  const args = ['run', '--port', '0', '--runs-dir', runsDir, ...runArgs, '--', ...command]
  const entry = { child: null, runsDir }
  started.push(entry)
  const run = await startConsole(args, { timeoutMs: 60_000, log })
  entry.child = run.child
  return { ...run, runsDir }
}

before(async () => {
  browser = await launchChromium()
})

after(async () => {
  await browser?.close().catch(() => {})
  for (const { child, runsDir } of started) {
    if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
    rmSync(runsDir, { recursive: true, force: true })
  }
})

test('an external trainer shows counter, chart, throughput and ETA, and aborts with a checkpoint', { timeout: 180_000 }, async () => {
  const checkpoints = mkdtempSync(path.join(tmpdir(), 'tc-e2e-toy-'))
  started.push({ child: { exitCode: 0 }, runsDir: checkpoints })
  const run = await startRun(['--grace-secs', '30'], ['python3', toy, '--steps', '100000', '--step-secs', '0.01', '--checkpoint-dir', checkpoints])
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } })
  const pageErrors = []
  page.on('pageerror', (err) => pageErrors.push(err.message))
  await page.goto(run.url)
  await page.locator('[data-testid="state"]', { hasText: 'Running' }).waitFor()
  assert.equal(await page.getByRole('heading', { level: 1 }).innerText(), 'toy linear regression')

  const tokens1 = await until('a token count', async () => (await numberAttr(page, '[data-testid="tokens"]', 'data-value')) || 0)
  await until('the counter to rise', async () => (await numberAttr(page, '[data-testid="tokens"]', 'data-value')) > tokens1)
  assert.match((await page.getByTestId('tokens').innerText()).replace(/\s+/g, ' '), /^[\d,]+ \/ 51,200,000 tokens \d+\.\d{1,2}%$/)
  const points = await until('chart points', async () => (await numberAttr(page, '[data-testid="loss-chart"]', 'data-points')) || 0)
  await until('the chart to gain points', async () => (await numberAttr(page, '[data-testid="loss-chart"]', 'data-points')) > points)
  const throughput = await until('a throughput', async () => {
    const t = (await page.getByTestId('tokens-per-sec').innerText()).trim()
    return /^[\d,]+ tok\/s$/.test(t) ? t : ''
  })
  const eta = await until('an ETA', async () => {
    const t = (await page.getByTestId('eta').innerText()).trim()
    return t !== 'estimating…' && t !== '—' ? t : ''
  })
  assert.match(eta, /\d/)
  assert.notEqual((await page.getByTestId('finish-time').innerText()).trim(), '—')
  log(`throughput ${throughput}, ETA ${eta}`)

  await page.getByRole('button', { name: 'Abort run', exact: true }).click()
  await page.getByRole('dialog', { name: 'Abort this run?' }).getByRole('button', { name: 'Confirm abort', exact: true }).click()
  await page.locator('[data-testid="state"]', { hasText: 'Aborted' }).waitFor({ timeout: 30_000 })
  assert.match(await page.getByTestId('notice-headline').innerText(), /^Aborted at step [\d,]+$/)
  const ckpt = (await page.getByTestId('checkpoint-path').innerText()).trim()
  assert.ok(ckpt.startsWith(checkpoints) && existsSync(ckpt), `the checkpoint the trainer reported exists: ${ckpt}`)
  assert.equal(await page.getByTestId('process-end').innerText(), 'exit status 0')
  assert.deepEqual(pageErrors, [])
  await page.close()
})

test('a trainer that ignores Abort: Stopping… (N s), then Force kill', { timeout: 180_000 }, async () => {
  const run = await startRun(['--grace-secs', '3'], ['python3', '-c', STUBBORN])
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } })
  const pageErrors = []
  page.on('pageerror', (err) => pageErrors.push(err.message))
  await page.goto(run.url)
  await page.locator('[data-testid="state"]', { hasText: 'Running' }).waitFor()
  await until('steps', async () => (await numberAttr(page, '[data-testid="tokens"]', 'data-value')) > 5 * 512)
  // The NaN loss is kept and shown as not finite.
  await until('the NaN loss', async () => /not finite/.test(await page.getByTestId('loss').innerText()))
  // Record every headline and badge the page shows from here on.
  await page.evaluate(() => {
    window.__seen = new Set()
    const record = () => {
      for (const id of ['notice-headline', 'state']) {
        const el = document.querySelector(`[data-testid="${id}"]`)
        if (el) window.__seen.add(el.textContent.trim())
      }
    }
    new MutationObserver(record).observe(document.body, { subtree: true, childList: true, characterData: true })
  })

  await page.getByRole('button', { name: 'Abort run', exact: true }).click()
  await page.getByRole('dialog', { name: 'Abort this run?' }).getByRole('button', { name: 'Confirm abort', exact: true }).click()
  await until('Stopping… (N s)', async () => /^Stopping… \(\d+ s\)/.test(await page.getByTestId('notice-headline').innerText()))
  const tokensAtAbort = await numberAttr(page, '[data-testid="tokens"]', 'data-value')
  assert.ok(await page.getByTestId('force-kill-wait').isVisible(), 'the page says when Force kill comes')
  const forceKill = page.getByTestId('force-kill')
  await forceKill.waitFor({ timeout: 15_000 })
  const headline = await page.getByTestId('notice-headline').innerText()
  assert.match(headline, /^Stopping… \((\d+) s\)/)
  assert.ok(Number(/\((\d+) s\)/.exec(headline)[1]) >= 3, headline)
  assert.ok((await numberAttr(page, '[data-testid="tokens"]', 'data-value')) > tokensAtAbort, 'metrics still arrive while stopping')
  const seen = await page.evaluate(() => [...window.__seen])
  assert.ok(!seen.some((t) => /Aborted/.test(t)), `never Aborted before the process ended: ${seen.join(' | ')}`)

  await forceKill.click()
  await page.getByRole('dialog', { name: 'Force kill the trainer?' }).getByRole('button', { name: 'Force kill', exact: true }).click()
  await page.locator('[data-testid="state"]', { hasText: 'Aborted' }).waitFor({ timeout: 30_000 })
  assert.equal(await page.getByTestId('process-end').innerText(), 'killed by SIGTERM')
  assert.match(await page.getByTestId('end-detail').innerText(), /killed by SIGTERM/)
  const code = await new Promise((resolve) => (run.child.exitCode !== null ? resolve(run.child.exitCode) : run.child.once('exit', (c) => resolve(c))))
  assert.equal(code, 128 + 15, 'trainconsole run exits as its child did')
  assert.deepEqual(pageErrors, [])
  await page.close()
})
