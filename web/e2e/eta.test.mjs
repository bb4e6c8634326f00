// Real-browser test of the ETA through a whole run, against the real binary.
//
//   npm run e2e                       # uses ../target/debug/trainconsole
//
// Starts `trainconsole serve` and reports a run through the ingest API in four posts, waiting
// for the page to show each phase before the next post, so that no phase can be skipped
// however fast the machine is: "estimating…" after the warm-up step, then the time left with
// its 10th–90th percentile range and a finish clock, then "finishing" once the budget is
// reached (the trainer still saving), then nothing once the run has completed. The stream is
// like the acceptance check's: a 20 s first step, then 0.25 s per step on average at 1,000
// tokens a step.

import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { BASE_URL_RE, launchChromium, startConsole, stopProcess } from './harness.mjs'

const TOKENS_PER_STEP = 1000
const TOTAL_TOKENS = 100_000

/** @type {import('node:child_process').ChildProcess | null} */
let server = null
let runsDir = ''
/** @type {import('playwright-core').Browser | null} */
let browser = null

function log(...args) {
  console.log('[e2e eta]', ...args)
}

async function startServer() {
  runsDir = mkdtempSync(path.join(tmpdir(), 'tc-e2e-eta-'))
  const started = await startConsole(['serve', '--port', '0', '--runs-dir', runsDir], { urlPattern: BASE_URL_RE, log })
  server = started.child
  return started.url
}

before(async () => {
  browser = await launchChromium()
})

after(async () => {
  await browser?.close().catch(() => {})
  await stopProcess(server)
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

  const base = await startServer()
  log('console at', base)
  const created = await fetch(`${base}/api/runs`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ name: 'eta e2e', total_tokens: TOTAL_TOKENS }),
  })
  assert.equal(created.status, 201, await created.clone().text())
  const { id, token } = await created.json()
  const post = async (lines) => {
    const res = await fetch(`${base}/api/runs/${id}/events`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-ndjson', authorization: `Bearer ${token}` },
      body: lines.map((line) => JSON.stringify(line)).join('\n'),
    })
    assert.equal(res.status, 200, await res.clone().text())
  }
  // Producer times a little in the past, so nothing looks stale or from the future.
  let time = Date.now() / 1000 - 60
  const stepTimes = new Map()
  let seed = 12345
  const steps = (from, to) => {
    const lines = []
    for (let step = from; step <= to; step++) {
      // Step times spread over 0.1–0.4 s (a fixed pseudo-random sequence), for a range.
      seed = (seed * 1103515245 + 12345) % 2 ** 31
      time += step === 1 ? 20 : 0.1 + 0.3 * (seed / 2 ** 31)
      stepTimes.set(step, time)
      lines.push({ kind: 'step', time, step, tokens: step * TOKENS_PER_STEP, loss: 3 - step * 0.001 })
    }
    return lines
  }
  const eta = page.locator('[data-testid="eta"]')

  await page.goto(`${base}/runs/${id}`)
  await page.getByRole('heading', { level: 1 }).waitFor()
  await post([{ kind: 'run_start', time, name: 'eta e2e', total_tokens: TOTAL_TOKENS }, ...steps(1, 2)])
  await eta.filter({ hasText: 'estimating…' }).waitFor({ timeout: 20_000 })
  await post(steps(3, 40))
  await page.locator('[data-testid="eta-range"]').waitFor({ timeout: 20_000 })
  await post(steps(41, TOTAL_TOKENS / TOKENS_PER_STEP))
  await eta.filter({ hasText: 'finishing' }).waitFor({ timeout: 20_000 })
  time += 1
  await post([{ kind: 'state', time, state: 'completed' }])
  await page.locator('[data-testid="state"]', { hasText: 'Completed' }).waitFor({ timeout: 20_000 })
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
  assert.match(seen[finishing].tokens ?? '', /^100,000 \/ 100,000 tokens 100\.0%$/)
  // The estimate is the stream's: at step 40, the 60,000 tokens left at the rate since the
  // warm-up (steps 3 to 40, docs/metrics.md); the range holds it. Shown as whole seconds.
  const rate = (37 * TOKENS_PER_STEP) / (stepTimes.get(40) - stepTimes.get(3))
  const want = (TOTAL_TOKENS - 40 * TOKENS_PER_STEP) / rate
  const secs = Number(/^(\d+)s$/.exec(seen[estimate].eta)?.[1])
  assert.ok(Math.abs(secs - want) <= 1, `ETA at step 40 = ${seen[estimate].eta}, want ${want.toFixed(1)} s`)
  const [low, high] = (seen[estimate].range ?? '').split(' – ').map((t) => Number(/^(\d+)s$/.exec(t)?.[1]))
  assert.ok(low < high && low <= secs && secs <= high, `range ${seen[estimate].range} should be a spread around ${secs}s`)
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
