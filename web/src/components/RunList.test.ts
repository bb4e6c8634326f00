// @vitest-environment happy-dom
import { afterEach, describe, expect, it, vi } from 'vitest'
import { createApp, nextTick, type App } from 'vue'
import RunList from './RunList.vue'

let app: App | null = null
let root: HTMLElement

async function flush() {
  for (let i = 0; i < 6; i++) {
    await Promise.resolve()
    await nextTick()
  }
}

afterEach(() => {
  app?.unmount()
  app = null
  root?.remove()
  vi.unstubAllGlobals()
})

function mount() {
  root = document.createElement('div')
  document.body.append(root)
  app = createApp(RunList)
  app.mount(root)
}

describe('RunList', () => {
  it('lists the runs with state, tokens and loss, linking to their consoles', async () => {
    const runs = [
      { id: 'b', name: 'small on input.txt', state: 'running', tokens: 1_234_567, total_tokens: 2_000_000, progress: 0.6172835, loss: 'NaN', val_loss: 1.5, elapsed_secs: 200, start_time: 1764400000, last_seq: 9, step: 9 },
      { id: 'a/1', name: '', state: 'aborted', tokens: 4096, total_tokens: null, progress: null, loss: 2.5, val_loss: null, elapsed_secs: 3723, start_time: 1764300000, last_seq: 3, step: 2 },
    ]
    const fetchMock = vi.fn(async () => new Response(JSON.stringify({ runs }), { status: 200 }))
    vi.stubGlobal('fetch', fetchMock)
    mount()
    await flush()
    expect(fetchMock).toHaveBeenCalledWith('/api/runs', expect.anything())
    const rows = Array.from(root.querySelectorAll('tbody tr'))
    expect(rows).toHaveLength(2)
    const cells = (row: Element) => Array.from(row.children).map((c) => c.textContent?.replace(/\s+/g, ' ').trim())
    expect(cells(rows[0])).toEqual(['small on input.txt b', 'Running', '61.7%', '1.23M / 2M', '—', '1.5000', expect.any(String), '3m 20s'])
    expect(cells(rows[1])).toEqual(['a/1', 'Aborted', '—', '4.1k', '2.5000', '—', expect.any(String), '1h 02m 03s'])
    expect(rows[0].querySelector('a')?.getAttribute('href')).toBe('/runs/b')
    expect(rows[1].querySelector('a')?.getAttribute('href')).toBe('/runs/a%2F1')
  })

  it('says so when there is no run, and shows errors', async () => {
    vi.stubGlobal('fetch', vi.fn(async () => new Response('{"runs":[]}', { status: 200 })))
    mount()
    await flush()
    expect(root.textContent).toContain('No runs yet.')
    app?.unmount()
    root.remove()
    vi.stubGlobal('fetch', vi.fn(async () => new Response('{"error":"store is locked"}', { status: 500 })))
    mount()
    await flush()
    expect(root.querySelector('[role="alert"]')?.textContent).toBe('Could not load the runs: store is locked')
  })
})
