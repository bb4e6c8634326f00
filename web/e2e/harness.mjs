// What every real-browser test shares: where the binary and Chromium are, starting the binary
// and reading the address it prints, stopping it, launching Chromium, and waiting for a
// condition. Not a test file itself (`node --test e2e/` runs only `*.test.mjs`).

import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import path from 'node:path'
import assert from 'node:assert/strict'
import { fileURLToPath } from 'node:url'
import { chromium } from 'playwright-core'

/** The web/ folder: the tests' working directory. */
export const webDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
/** The trainconsole binary under test ($TRAINCONSOLE_BIN, default the debug build). */
export const bin = path.resolve(webDir, process.env.TRAINCONSOLE_BIN || '../target/debug/trainconsole')
/** Debian's Chromium ($CHROMIUM_PATH). */
export const chromiumPath = process.env.CHROMIUM_PATH || '/usr/bin/chromium'
/** A run page's address as `train` and `run` print it. */
export const RUN_URL_RE = /http:\/\/127\.0\.0\.1:\d+\/runs\/[^\s]+/
/** The console's base address as `serve` prints it (`… at http://127.0.0.1:PORT/`). */
export const BASE_URL_RE = /http:\/\/127\.0\.0\.1:\d+/

/** Most characters of a process's output kept for failure messages. */
const OUTPUT_KEEP = 100_000

/**
 * Start `bin args…` and resolve, once its stdout matches `urlPattern`, with
 * `{ child, url, output }`: the process, the first match, and a function giving its stdout and
 * stderr so far (the last 100,000 characters or more), for failure messages. Both pipes are
 * always drained, so the process never blocks on a full pipe. Rejects if the process exits
 * first or prints no address within `timeoutMs`.
 */
export function startConsole(args, { urlPattern = RUN_URL_RE, timeoutMs = 120_000, log = () => {} } = {}) {
  assert.ok(existsSync(bin), `no binary at ${bin} (build it with cargo build, or set TRAINCONSOLE_BIN)`)
  log('starting', bin, args.join(' '))
  const child = spawn(bin, args, { cwd: webDir, stdio: ['ignore', 'pipe', 'pipe'] })
  let output = ''
  let stdout = ''
  const collect = (chunk) => {
    output += chunk
    if (output.length > 2 * OUTPUT_KEEP) output = output.slice(-OUTPUT_KEEP)
  }
  child.stderr.setEncoding('utf8')
  child.stderr.on('data', collect)
  child.stdout.setEncoding('utf8')
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`no console address within ${timeoutMs / 1000} s; output:\n${output.slice(-3000)}`)),
      timeoutMs,
    )
    let found = false
    child.stdout.on('data', (chunk) => {
      collect(chunk)
      if (found) return
      stdout += chunk
      const match = urlPattern.exec(stdout)
      if (match) {
        found = true
        clearTimeout(timer)
        resolve({ child, url: match[0], output: () => output })
      }
    })
    child.on('error', (err) => {
      clearTimeout(timer)
      reject(err)
    })
    child.on('exit', (code, signal) => {
      clearTimeout(timer)
      if (!found) reject(new Error(`${args[0]} exited (${code ?? signal}) before printing its address; output:\n${output.slice(-3000)}`))
    })
  })
}

/** Stop `child` if it still runs: SIGTERM, then SIGKILL after `graceMs`. Resolves once it exited. */
export async function stopProcess(child, graceMs = 5000) {
  if (!child || child.exitCode !== null || child.signalCode !== null) return
  const exited = new Promise((resolve) => child.once('exit', resolve))
  child.kill('SIGTERM')
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs)
  await exited
  clearTimeout(timer)
}

/** Launch Debian's headless Chromium (software rendering, no background traffic). */
export async function launchChromium() {
  assert.ok(existsSync(chromiumPath), `no Chromium at ${chromiumPath} (apt-get install chromium, or set CHROMIUM_PATH)`)
  return chromium.launch({
    executablePath: chromiumPath,
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  })
}

/** Wait until `fn()` (async) returns a truthy value, polling every `everyMs`; return it. */
export async function until(what, fn, timeoutMs = 30_000, everyMs = 100) {
  const deadline = Date.now() + timeoutMs
  let last
  for (;;) {
    last = await fn()
    if (last) return last
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what} (last: ${JSON.stringify(last)})`)
    await new Promise((r) => setTimeout(r, everyMs))
  }
}

/** Numeric attribute `attr` of the first element matching `selector`. */
export async function numberAttr(page, selector, attr) {
  return Number(await page.locator(selector).first().getAttribute(attr))
}
