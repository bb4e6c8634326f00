// Real-browser test of the list of runs (`/`) with a long run name.
//
//   npm run e2e                       # uses ../target/debug/trainconsole
//
// `trainconsole run` names a run after its whole command line, so names can be long (up to
// the console's limit of 200 characters). The list cuts such a name with an ellipsis (its
// full text in the tooltip) and keeps every column in view at 1300 px; on a phone-sized screen
// each run is a card whose name wraps onto at most three lines, with nothing wider than the
// screen. `serve` also creates the runs directory it is given.

import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { launchChromium, startConsole } from './harness.mjs'

const LONG_NAME = (
  'python3 examples/python/train_torch.py --data ../shared/data/tinyshakespeare.txt --n-layer 12 ' +
  '--n-head 12 --d-model 768 --lr 6e-4 --batch-size 32 --grad-accum 8 --warmup-steps 2000 --seed 1337 --compile'
).slice(0, 199) + '…'

let server = null
let tempDir = null
/** @type {import('playwright-core').Browser | null} */
let browser = null

/** `trainconsole serve` on a runs directory that does not exist yet; resolves with its base URL. */
async function startServe(runsDir) {
  const started = await startConsole(['serve', '--port', '0', '--runs-dir', runsDir], {
    urlPattern: /at (http:\/\/127\.0\.0\.1:\d+)\//,
    timeoutMs: 30_000,
  })
  server = started.child
  return { base: started.url.replace(/^at /, '').replace(/\/$/, ''), firstLine: started.output().split('\n')[0] }
}

async function post(url, body, token) {
  const headers = { 'content-type': 'application/json' }
  if (token) headers.authorization = `Bearer ${token}`
  const response = await fetch(url, { method: 'POST', headers, body })
  return { status: response.status, json: await response.json() }
}

before(async () => {
  browser = await launchChromium()
})

after(async () => {
  await browser?.close().catch(() => {})
  if (server && server.exitCode === null) server.kill('SIGKILL')
  if (tempDir) rmSync(tempDir, { recursive: true, force: true })
})

/** Every header and every cell of the long-named run's row lies inside the viewport. */
async function columnsInView(page, width) {
  const boxes = await page.evaluate(() => {
    const row = document.querySelector('tbody tr[data-run-id]')
    const cells = [...document.querySelectorAll('thead th'), ...(row ? row.children : [])]
    return cells.map((cell) => {
      const box = cell.getBoundingClientRect()
      return { text: cell.textContent.trim().slice(0, 30), left: box.left, right: box.right, width: box.width }
    })
  })
  for (const box of boxes) {
    assert.ok(box.width > 0 && box.left >= 0 && box.right <= width + 0.5, `column ${JSON.stringify(box)} is out of the ${width} px view`)
  }
}

test('a long run name is cut with an ellipsis and every column stays in view', { timeout: 120_000 }, async () => {
  tempDir = mkdtempSync(path.join(tmpdir(), 'tc-e2e-list-'))
  const { base, firstLine } = await startServe(path.join(tempDir, 'runs'))
  assert.match(firstLine, /serving 0 run\(s\) from the new runs directory /)

  // The console refuses a name above its limit, naming the field.
  const tooLong = await post(`${base}/api/runs`, JSON.stringify({ name: 'x'.repeat(201) }))
  assert.equal(tooLong.status, 400)
  assert.equal(tooLong.json.error, 'field `name` is 201 characters long; a run name has at most 200')

  const created = await post(`${base}/api/runs`, JSON.stringify({ name: LONG_NAME, total_steps: 100, time: 1_800_000_000 }))
  assert.equal(created.status, 201, JSON.stringify(created.json))
  const steps = [1, 2, 3].map((step) => JSON.stringify({ kind: 'step', time: 1_800_000_000 + step * 3600, step, tokens: step * 1000, loss: 2.5 })).join('\n')
  assert.equal((await post(`${base}/api/runs/${created.json.id}/events`, steps, created.json.token)).status, 200)

  const page = await browser.newPage({ viewport: { width: 1300, height: 800 } })
  await page.goto(`${base}/`)
  const link = page.locator(`tr[data-run-id="${created.json.id}"] .run-link`)
  await link.waitFor()
  assert.equal(await link.innerText(), LONG_NAME, 'the text is whole; CSS cuts it')
  assert.equal(await link.getAttribute('title'), LONG_NAME, 'the full name is in the tooltip')
  const cut = await link.evaluate((el) => ({ scroll: el.scrollWidth, client: el.clientWidth, overflow: getComputedStyle(el).textOverflow }))
  assert.ok(cut.scroll > cut.client, `the name is cut: ${JSON.stringify(cut)}`)
  assert.equal(cut.overflow, 'ellipsis')
  await columnsInView(page, 1300)
  const wrap = await page.locator('.table-wrap').evaluate((el) => ({ scroll: el.scrollWidth, client: el.clientWidth }))
  assert.ok(wrap.scroll <= wrap.client, `the table needs no horizontal scrolling at 1300 px: ${JSON.stringify(wrap)}`)
  assert.equal(await page.locator(`tr[data-run-id="${created.json.id}"] td[data-label="Elapsed"]`).innerText(), '3h 00m 00s')

  // A phone: each run is a card; nothing is wider than the screen, and the name takes at most
  // three lines.
  await page.setViewportSize({ width: 375, height: 800 })
  const page375 = await page.evaluate(() => ({ scroll: document.documentElement.scrollWidth, client: document.documentElement.clientWidth }))
  assert.ok(page375.scroll <= page375.client, `nothing wider than the screen: ${JSON.stringify(page375)}`)
  await columnsInView(page, 375)
  const lines = await link.evaluate((el) => el.getBoundingClientRect().height / parseFloat(getComputedStyle(el).lineHeight))
  assert.ok(lines > 1.5 && lines <= 3.05, `the name wraps onto at most 3 lines, got ${lines}`)
  for (const label of ['State', 'Progress', 'Tokens', 'Loss', 'Val loss', 'Started', 'Elapsed']) {
    assert.ok(await page.locator(`tr[data-run-id="${created.json.id}"] td[data-label="${label}"]`).isVisible(), label)
  }
  await page.close()
})
