// A static file server for bench/dist (the chart lab), on an ephemeral port of 127.0.0.1.
import { createServer } from 'node:http'
import { readFile } from 'node:fs/promises'
import path from 'node:path'

const TYPES = { '.html': 'text/html', '.js': 'text/javascript', '.css': 'text/css' }

/** Serve `dir`; resolves with { url, close }. */
export function serve(dir) {
  const server = createServer(async (req, res) => {
    const name = decodeURIComponent(new URL(req.url, 'http://x').pathname)
    const file = path.join(dir, name === '/' ? 'index.html' : name)
    if (!file.startsWith(dir)) {
      res.writeHead(403).end()
      return
    }
    try {
      const body = await readFile(file)
      res.writeHead(200, { 'content-type': TYPES[path.extname(file)] ?? 'application/octet-stream' }).end(body)
    } catch {
      res.writeHead(404).end()
    }
  })
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address()
      resolve({ url: `http://127.0.0.1:${port}/`, close: () => new Promise((r) => server.close(r)) })
    })
  })
}

/** Build the lab page with Vite into bench/dist; returns the folder. */
export async function buildLab() {
  const { build } = await import('vite')
  const root = path.dirname(new URL(import.meta.url).pathname)
  await build({ configFile: path.join(root, 'vite.config.ts') })
  return path.join(root, 'dist')
}

/** Chromium flags: headless, software canvas (no GPU), fixed 1× scale. */
export const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-gpu-compositing', '--force-device-scale-factor=1', '--js-flags=--max-old-space-size=4096 --expose-gc']
