// @vitest-environment happy-dom
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { createApp, nextTick, type App } from 'vue'
import TrainConsole from './TrainConsole.vue'

class FakeWebSocket {
  static instances: FakeWebSocket[] = []
  onopen: ((ev: Event) => void) | null = null
  onmessage: ((ev: MessageEvent) => void) | null = null
  onclose: ((ev: CloseEvent) => void) | null = null
  onerror: ((ev: Event) => void) | null = null
  closed = false
  constructor(readonly url: string) {
    FakeWebSocket.instances.push(this)
  }
  close() {
    this.closed = true
  }
  send(message: unknown) {
    this.onmessage?.({ data: JSON.stringify(message) } as MessageEvent)
  }
}

const baseSummary = {
  id: 'r1',
  name: 'tiny-shakespeare',
  state: 'running',
  message: '',
  config: { preset: 'tiny', lr: 0.003 },
  total_tokens: 100_000_000,
  total_steps: 48_828,
  step: 40,
  tokens: 81_920,
  progress: 0.0008192,
  loss: 2.31,
  val_loss: null,
  lr: 0.0029,
  grad_norm: 0.61,
  tokens_per_sec: 2327.3,
  step_time_ms: 880.2,
  long_run_tokens_per_sec: null,
  eta_status: 'estimating',
  eta_secs: null,
  eta_low_secs: null,
  eta_high_secs: null,
  finish_time: null,
  flops_per_token: 5_743_104,
  model_flops_per_sec: 13.366e9,
  peak_flops_per_sec: 166.144e9,
  peak_flops_source: 'estimated: 2 threads × 2.60 GHz (/proc/cpuinfo) × 32 f32 FLOP/cycle',
  mfu: 0.0804,
  start_time: 1764400000,
  last_time: 1764400035.2,
  elapsed_secs: 35.2,
  last_seq: 41,
  checkpoint_path: null,
  checkpoint_step: null,
  sample: { step: 40, text: 'ROMEO:\n<b>not bold</b> & more' },
}

let app: App | null = null
let root: HTMLElement
let fetchMock: ReturnType<typeof vi.fn>

async function flush() {
  for (let i = 0; i < 5; i++) {
    await Promise.resolve()
    await nextTick()
  }
}

function text(testid: string): string {
  return root.querySelector(`[data-testid="${testid}"]`)?.textContent?.replace(/\s+/g, ' ').trim() ?? ''
}

function abortButton(): HTMLButtonElement {
  return root.querySelector('[data-testid="abort"]') as HTMLButtonElement
}

async function mount(summary: Record<string, unknown> = baseSummary) {
  root = document.createElement('div')
  document.body.append(root)
  app = createApp(TrainConsole, { runId: 'r1' })
  app.mount(root)
  const ws = FakeWebSocket.instances[0]
  ws.send({ type: 'events', events: [], summary })
  await flush()
  return ws
}

beforeEach(() => {
  FakeWebSocket.instances = []
  vi.stubGlobal('WebSocket', FakeWebSocket)
  fetchMock = vi.fn(async () => new Response('{"state":"stopping"}', { status: 202 }))
  vi.stubGlobal('fetch', fetchMock)
})
afterEach(() => {
  app?.unmount()
  app = null
  root?.remove()
  vi.unstubAllGlobals()
})

describe('TrainConsole', () => {
  it('shows the figures of the summary, formatted', async () => {
    await mount()
    expect(FakeWebSocket.instances[0].url).toMatch(/\/api\/runs\/r1\/stream\?after=0$/)
    expect(text('tokens')).toBe('81,920 / 100,000,000 tokens 0.08%')
    expect(text('steps')).toBe('Steps: step 40 / 48,828 · started ' + text('steps').split('started ')[1])
    expect(text('eta')).toBe('estimating…')
    expect(root.querySelector('[data-testid="eta-range"]')).toBeNull()
    expect(root.querySelector('[data-testid="finish-time"]')).toBeNull()
    expect(text('mfu')).toBe('8.0%of 166 GFLOP/s')
    expect(text('peak-source')).toBe('estimated: 2 threads × 2.60 GHz (/proc/cpuinfo) × 32 f32 FLOP/cycle')
    expect(text('loss')).toBe('2.3100')
    expect(text('val-loss')).toBe('—')
    expect(text('tokens-per-sec')).toBe('2,327 tok/s')
    expect(text('step-time')).toBe('880 ms')
    expect(text('lr')).toBe('2.90e-3')
    expect(text('grad-norm')).toBe('0.6100')
    expect(text('elapsed')).toBe('35s')
    expect(root.querySelector('[data-testid="state"]')?.textContent?.trim()).toBe('Running')
    expect(root.querySelector('[role="progressbar"]')?.getAttribute('aria-valuenow')).toBe('0.08')
  })

  it('puts the full run name, not the id, in the heading tooltip; the id stays in the details', async () => {
    const name = 'a very long run name that the header cuts off with an ellipsis on any laptop screen at all'
    await mount({ ...baseSummary, name })
    const h1 = root.querySelector('h1') as HTMLElement
    expect(h1.textContent).toBe(name)
    expect(h1.getAttribute('title')).toBe(name)
    const idRow = Array.from(root.querySelectorAll('.details .kv > div')).find((d) => d.querySelector('dt')?.textContent === 'Id')
    expect(idRow?.querySelector('dd code')?.textContent).toBe('r1')
  })

  it('shows the sample as text, never as HTML', async () => {
    await mount()
    const pre = root.querySelector('[data-testid="sample"]') as HTMLElement
    expect(pre.tagName).toBe('PRE')
    expect(pre.textContent).toBe('ROMEO:\n<b>not bold</b> & more')
    expect(pre.querySelector('b')).toBeNull()
  })

  it('shows the ETA with its range and finish clock, then "finishing", then nothing', async () => {
    const ws = await mount({ ...baseSummary, eta_status: 'estimated', eta_secs: 199.2, eta_low_secs: 180, eta_high_secs: 230.5, finish_time: 1764400235.2 })
    expect(text('eta')).toBe('3m 20s')
    expect(text('eta-range')).toBe('3m 00s – 3m 51s')
    expect(text('finish-time')).toMatch(/^(\d\d:\d\d:\d\d|\w{3} \d\d:\d\d|\w{3} \d+ \d\d:\d\d)$/)
    ws.send({ type: 'events', events: [], summary: { ...baseSummary, last_seq: 50, eta_status: 'finishing', eta_secs: 0, eta_low_secs: 0, eta_high_secs: 0 } })
    await flush()
    expect(text('eta')).toBe('finishing')
    expect(root.querySelector('[data-testid="eta-range"]')).toBeNull()
    expect(root.querySelector('[data-testid="finish-time"]')).toBeNull()
    ws.send({ type: 'events', events: [], summary: { ...baseSummary, last_seq: 52, state: 'completed', eta_status: 'none' } })
    await flush()
    expect(root.querySelector('[data-testid="eta-figure"]')).toBeNull()
  })

  it('warns when MFU is above 100%, and takes a peak set on the page', async () => {
    localStorage.removeItem('trainconsole.peakFlops')
    await mount({ ...baseSummary, peak_flops_per_sec: 1e9, mfu: 13.4 })
    expect(text('mfu')).toBe('1336.6%above 100%: the peak is set too low')
    expect(root.querySelector('[data-testid="mfu"]')?.classList.contains('figure__value--warn')).toBe(true)
    const input = root.querySelector('[data-testid="peak-input"]') as HTMLInputElement
    input.value = 'fast'
    input.dispatchEvent(new Event('change'))
    await flush()
    expect(text('peak-source')).toContain('not a number of FLOP/s')
    input.value = '100G'
    input.dispatchEvent(new Event('change'))
    await flush()
    expect(text('mfu')).toBe('13.4%of 100 GFLOP/s')
    expect(text('peak-source')).toBe('set on this page')
    expect(localStorage.getItem('trainconsole.peakFlops')).toBe('100000000000')
    localStorage.removeItem('trainconsole.peakFlops')
  })

  it("says where the peak comes from when the run gives a peak without a source", async () => {
    localStorage.removeItem('trainconsole.peakFlops')
    await mount({ ...baseSummary, peak_flops_source: null })
    expect(text('peak-source')).toBe("the run's own, source not given")
    await mount({ ...baseSummary, peak_flops_per_sec: null, peak_flops_source: null, mfu: null })
    expect(text('peak-source')).toBe('the run reports none')
  })

  it('labels every figure', async () => {
    await mount()
    for (const dd of Array.from(root.querySelectorAll('dd'))) {
      const dt = dd.previousElementSibling
      expect(dt?.tagName, dd.outerHTML).toBe('DT')
      expect(dt?.textContent?.trim()).not.toBe('')
    }
    expect(root.querySelector('[aria-live="polite"]')).not.toBeNull()
  })

  it('asks for confirmation, then sends one abort and shows Stopping…', async () => {
    const ws = await mount()
    abortButton().click()
    await flush()
    const dialog = root.querySelector('dialog') as HTMLDialogElement
    expect(dialog.open).toBe(true)
    expect(fetchMock).not.toHaveBeenCalled()
    expect(document.activeElement?.getAttribute('data-testid')).toBe('confirm-cancel')

    ;(root.querySelector('[data-testid="confirm-ok"]') as HTMLButtonElement).click()
    ;(root.querySelector('[data-testid="confirm-ok"]') as HTMLButtonElement).click() // a double click
    await flush()
    expect(fetchMock).toHaveBeenCalledTimes(1)
    expect(fetchMock.mock.calls[0][0]).toBe('/api/runs/r1/abort')
    expect(fetchMock.mock.calls[0][1]).toMatchObject({ method: 'POST' })
    expect(dialog.open).toBe(false)
    expect(abortButton().textContent?.trim()).toBe('Stopping…')
    expect(abortButton().disabled).toBe(true)
    abortButton().click()
    await flush()
    expect(fetchMock).toHaveBeenCalledTimes(1)

    ws.send({
      type: 'events',
      events: [],
      summary: { ...baseSummary, state: 'aborted', last_seq: 45, step: 41, checkpoint_path: 'runs/r1/checkpoints/step-41', checkpoint_step: 41 },
    })
    await flush()
    expect(text('notice-headline')).toBe('Aborted at step 41')
    expect(text('checkpoint-path')).toBe('runs/r1/checkpoints/step-41')
    expect(root.querySelector('[data-testid="eta-figure"]')).toBeNull()
    expect(abortButton().disabled).toBe(true)
    expect(text('announcer')).toContain('Run aborted at step 41. Checkpoint: runs/r1/checkpoints/step-41.')
    // Exactly one space between the sentences of successive announcements.
    expect(root.querySelector('[data-testid="announcer"]')?.textContent?.trim()).toBe(
      'Run is training. Abort requested. The trainer is finishing its step and saving a checkpoint. ' +
        'Run aborted at step 41. Checkpoint: runs/r1/checkpoints/step-41.',
    )
  })

  it('shows Stopping… (N s) while an external trainer stops, and offers Force kill after its grace period', async () => {
    const nowSecs = Date.now() / 1000
    const stopping = { ...baseSummary, state: 'stopping', stopping_since: nowSecs - 3.2, force_kill_grace_secs: 60 }
    const ws = await mount(stopping)
    expect(text('notice-headline')).toBe('Stopping… (3 s): the trainer is finishing its step and saving a checkpoint')
    expect(text('force-kill-wait')).toBe('Force kill in 57 s if it does not stop')
    expect(root.querySelector('[data-testid="force-kill"]')).toBeNull()
    expect(root.querySelector('[data-testid="state"]')?.textContent?.trim()).toBe('Stopping')

    // Metrics that still arrive are shown; the grace period is over: Force kill.
    ws.send({ type: 'events', events: [], summary: { ...stopping, step: 44, tokens: 90_112, progress: 0.00090112, stopping_since: nowSecs - 61.5 } })
    await flush()
    expect(text('notice-headline')).toBe('Stopping… (61 s): the trainer is finishing its step and saving a checkpoint')
    expect(text('tokens')).toBe('90,112 / 100,000,000 tokens 0.09%')
    expect(root.querySelector('[data-testid="force-kill-wait"]')).toBeNull()
    ;(root.querySelector('[data-testid="force-kill"]') as HTMLButtonElement).click()
    await flush()
    const dialog = root.querySelectorAll('dialog')[1] as HTMLDialogElement
    expect(dialog.open).toBe(true)
    expect(dialog.textContent).toContain('Force kill the trainer?')
    expect(fetchMock).not.toHaveBeenCalled()
    ;(dialog.querySelector('[data-testid="confirm-ok"]') as HTMLButtonElement).click()
    await flush()
    expect(fetchMock).toHaveBeenCalledTimes(1)
    expect(fetchMock.mock.calls[0][0]).toBe('/api/runs/r1/kill')
    expect(fetchMock.mock.calls[0][1]).toMatchObject({ method: 'POST' })
    expect(text('force-kill-sent')).toBe('Force kill sent: SIGTERM, then SIGKILL after 5 s')
    expect(root.querySelector('[data-testid="force-kill"]')).toBeNull()

    ws.send({
      type: 'events',
      events: [],
      summary: {
        ...stopping,
        state: 'aborted',
        step: 44,
        message: "the trainer's process ended (killed by SIGTERM) without reporting that it stopped",
        exit: { signal: 'SIGTERM', output_tail: ['step 43', 'step 44'] },
        force_kill_grace_secs: null,
      },
    })
    await flush()
    expect(text('notice-headline')).toBe('Aborted at step 44')
    expect(text('end-detail')).toBe("the trainer's process ended (killed by SIGTERM) without reporting that it stopped")
    expect(text('process-end')).toBe('killed by SIGTERM')
    expect(root.querySelector('[data-testid="output-tail"] pre')?.textContent).toBe('step 43\nstep 44')
    expect(root.querySelector('[data-testid="force-kill-sent"]')).toBeNull()
  })

  it('offers Force kill within 250 ms of the grace period\'s end (the clock ticks finer during the countdown)', async () => {
    vi.useFakeTimers({ now: 2_000_000_000_000 })
    try {
      // 1.1 s of the 60 s grace period left: the countdown says 2 s (whole seconds, rounded up).
      const stopping = { ...baseSummary, state: 'stopping', stopping_since: Date.now() / 1000 - 58.9, force_kill_grace_secs: 60 }
      await mount(stopping)
      expect(text('force-kill-wait')).toBe('Force kill in 2 s if it does not stop')
      vi.advanceTimersByTime(1099)
      await flush()
      expect(text('force-kill-wait')).toBe('Force kill in 1 s if it does not stop')
      expect(root.querySelector('[data-testid="force-kill"]')).toBeNull()
      // The grace period ends at 1,100 ms; a clock ticking once a second would show the button
      // only at 2,000 ms.
      vi.advanceTimersByTime(251)
      await flush()
      expect(root.querySelector('[data-testid="force-kill-wait"]')).toBeNull()
      expect(root.querySelector('[data-testid="force-kill"]')).not.toBeNull()
    } finally {
      vi.useRealTimers()
    }
  })

  it('never offers Force kill for a run the console did not start', async () => {
    await mount({ ...baseSummary, state: 'stopping', stopping_since: Date.now() / 1000 - 600 })
    expect(text('notice-headline')).toMatch(/^Stopping… \(600 s\)/)
    expect(root.querySelector('[data-testid="force-kill"]')).toBeNull()
    expect(root.querySelector('[data-testid="force-kill-wait"]')).toBeNull()
  })

  it('cancels on Escape without sending anything', async () => {
    await mount()
    abortButton().focus()
    abortButton().click()
    await flush()
    const dialog = root.querySelector('dialog') as HTMLDialogElement
    expect(dialog.open).toBe(true)
    dialog.dispatchEvent(new Event('cancel', { cancelable: true }))
    await flush()
    expect(dialog.open).toBe(false)
    expect(fetchMock).not.toHaveBeenCalled()
    expect(abortButton().disabled).toBe(false)
    expect(document.activeElement).toBe(abortButton())
  })

  it('shows the server error of a refused abort', async () => {
    fetchMock.mockImplementation(async () => new Response('{"error":"the run has already ended","state":"completed"}', { status: 409 }))
    await mount()
    abortButton().click()
    await flush()
    ;(root.querySelector('[data-testid="confirm-ok"]') as HTMLButtonElement).click()
    await flush()
    expect(text('notice-headline')).toBe('Cannot abort: the run has already ended')
    expect(abortButton().textContent?.trim()).toBe('Abort run')
  })

  it('keeps the last data when the server says bye', async () => {
    const ws = await mount()
    ws.send({ type: 'bye', reason: 'the run has ended' })
    ws.onclose?.({ code: 1000 } as CloseEvent)
    await flush()
    expect(text('connection')).toContain('Console server has exited')
    expect(text('server-exited')).toBe('The console server has exited (the run has ended). Showing the last data received.')
    expect(text('tokens')).toBe('81,920 / 100,000,000 tokens 0.08%')
    expect(abortButton().disabled).toBe(true)
    expect(root.querySelector('[data-testid="eta-figure"]')).toBeNull() // no estimate without a server
    expect(text('state')).toMatch(/^Not reporting\. /) // it was running when the server went away
  })

  it('has a chart element that counts its points', async () => {
    const ws = await mount()
    ws.send({
      type: 'events',
      events: [
        { seq: 1, time: 1, kind: 'run_start', name: 'x', config: {}, start_step: 0, start_tokens: 0 },
        { seq: 2, time: 2, kind: 'step', step: 1, tokens: 2048, loss: 4.2 },
        { seq: 3, time: 3, kind: 'step', step: 2, tokens: 4096, loss: 'NaN' },
        { seq: 4, time: 4, kind: 'eval', step: 2, val_loss: 4.1 },
      ],
      summary: { ...baseSummary, last_seq: 4 },
    })
    await flush()
    const chart = root.querySelector('[data-testid="loss-chart"]') as HTMLElement
    expect(chart.dataset.points).toBe('2')
    expect(chart.dataset.valPoints).toBe('1')
    expect(chart.querySelector('canvas')?.getAttribute('aria-label')).toBe(
      'Loss by step. train loss: 2 points, 1 not finite; train loss (EMA): 2 points, 1 not finite; val loss: 1 point, latest 4.1000.',
    )
  })

  it('counts steps and evals in the singular for one', async () => {
    const ws = await mount()
    expect(text('chart-counts')).toBe('0 steps · 0 evals')
    ws.send({
      type: 'events',
      events: [
        { seq: 1, time: 1, kind: 'run_start', name: 'x', config: {}, start_step: 0, start_tokens: 0 },
        { seq: 2, time: 2, kind: 'step', step: 1, tokens: 2048, loss: 4.2 },
      ],
      summary: { ...baseSummary, last_seq: 2 },
    })
    await flush()
    expect(text('chart-counts')).toBe('1 step · 0 evals')
    ws.send({
      type: 'events',
      events: [
        { seq: 3, time: 3, kind: 'step', step: 2, tokens: 4096, loss: 4.0 },
        { seq: 4, time: 4, kind: 'eval', step: 2, val_loss: 4.1 },
      ],
      summary: { ...baseSummary, last_seq: 4 },
    })
    await flush()
    expect(text('chart-counts')).toBe('2 steps · 1 eval')
  })

  it('shows where a resumed run started, from its run_start event', async () => {
    const ws = await mount()
    expect(root.querySelector('[data-testid="resumed"]')).toBeNull()
    ws.send({
      type: 'events',
      events: [
        {
          seq: 1,
          time: 1,
          kind: 'run_start',
          name: 'x',
          config: {},
          start_step: 1200,
          start_tokens: 2_457_600,
          resumed_from: 'runs/r0/checkpoints/<step-1200>',
        },
        { seq: 2, time: 2, kind: 'step', step: 1201, tokens: 2_459_648, loss: 2.1 },
      ],
      summary: { ...baseSummary, last_seq: 2 },
    })
    await flush()
    const dd = root.querySelector('[data-testid="resumed-from"]') as HTMLElement
    expect(dd.closest('.details')).not.toBeNull() // in the run details panel
    expect(`${dd.previousElementSibling?.textContent} ${text('resumed-from')}`).toBe(
      'Resumed from runs/r0/checkpoints/<step-1200> (step 1,200)',
    )
    expect(dd.querySelector('code')?.textContent).toBe('runs/r0/checkpoints/<step-1200>') // as text, not HTML
    expect(dd.querySelector('step-1200')).toBeNull()
  })

  it('applies a summary-only message: running at last_seq 10, then interrupted at last_seq 10', async () => {
    const ws = await mount({ ...baseSummary, last_seq: 10 })
    expect(text('state')).toBe('Running')
    ws.send({ type: 'events', events: [], summary: { ...baseSummary, state: 'interrupted', last_seq: 10 } })
    await flush()
    expect(text('state')).toBe('Interrupted')
    expect(text('notice-headline')).toBe('Interrupted at step 40: the trainer went away without reporting an end')
    expect(root.querySelector('[data-testid="eta-figure"]')).toBeNull()
    expect(abortButton().disabled).toBe(true)
    expect(document.title).toBe('interrupted · tiny-shakespeare · trainconsole')
  })

  it('shows no resume line for a fresh run', async () => {
    const ws = await mount()
    ws.send({
      type: 'events',
      events: [{ seq: 1, time: 1, kind: 'run_start', name: 'x', config: {}, start_step: 0, start_tokens: 0 }],
      summary: { ...baseSummary, last_seq: 1 },
    })
    await flush()
    expect(root.querySelector('[data-testid="resumed"]')).toBeNull()
  })
})

describe('TrainConsole for an unknown run', () => {
  it('shows only the banner with a link to all runs', async () => {
    fetchMock.mockImplementation(async () => new Response('{"error":"no run with id nope"}', { status: 404 }))
    root = document.createElement('div')
    document.body.append(root)
    app = createApp(TrainConsole, { runId: 'nope' })
    app.mount(root)
    FakeWebSocket.instances[0].onclose?.({ code: 1006 } as CloseEvent)
    await flush()
    expect(fetchMock).toHaveBeenCalledTimes(1)
    expect(fetchMock.mock.calls[0][0]).toBe('/api/runs/nope')
    expect(text('not-found')).toBe('There is no run with id nope. See all runs.')
    expect(root.querySelector('[data-testid="not-found"] a')?.getAttribute('href')).toBe('/')
    expect(root.querySelector('h1')?.textContent).toBe('Run not found')
    expect(document.title).toBe('Run not found · trainconsole')
    // None of the console.
    for (const id of ['loss-chart', 'abort', 'state', 'connection', 'tokens', 'steps', 'sample', 'notice']) {
      expect(root.querySelector(`[data-testid="${id}"]`), id).toBeNull()
    }
    expect(root.querySelectorAll('section')).toHaveLength(0)
    expect(root.querySelector('main')?.children).toHaveLength(1)
    expect(root.textContent).not.toContain('Waiting for the first step')
  })
})

describe('TrainConsole focus after abort', () => {
  it('moves focus to the status notice when the dialog closes with confirm, and keeps it there', async () => {
    let respond!: (r: Response) => void
    fetchMock.mockImplementation(() => new Promise<Response>((resolve) => (respond = resolve)))
    const ws = await mount()
    abortButton().focus()
    abortButton().click()
    await flush()
    expect(document.activeElement?.getAttribute('data-testid')).toBe('confirm-cancel')
    const ok = root.querySelector('[data-testid="confirm-ok"]') as HTMLButtonElement
    ok.focus()
    ok.click()
    await flush()
    // The dialog is closed, the request is in flight, the Abort button is disabled.
    expect((root.querySelector('dialog') as HTMLDialogElement).open).toBe(false)
    expect(abortButton().disabled).toBe(true)
    const notice = root.querySelector('[data-testid="notice"]') as HTMLElement
    expect(notice.getAttribute('tabindex')).toBe('-1')
    expect(document.activeElement).toBe(notice)
    expect(text('notice-headline')).toBe('Stopping… sending the abort request')

    respond(new Response('{"state":"stopping"}', { status: 202 }))
    await flush()
    expect(text('notice-headline')).toBe('Stopping… abort requested')
    expect(document.activeElement).toBe(notice)

    ws.send({ type: 'events', events: [], summary: { ...baseSummary, state: 'stopping', last_seq: 42 } })
    await flush()
    ws.send({
      type: 'events',
      events: [],
      summary: { ...baseSummary, state: 'aborted', last_seq: 45, step: 41, checkpoint_path: 'runs/r1/checkpoints/step-41', checkpoint_step: 41 },
    })
    await flush()
    expect(text('notice-headline')).toBe('Aborted at step 41')
    expect(document.activeElement).toBe(notice)
  })

  it('focuses the error notice when the abort is refused', async () => {
    fetchMock.mockImplementation(async () => new Response('{"error":"the run has already ended","state":"completed"}', { status: 409 }))
    await mount()
    abortButton().focus()
    abortButton().click()
    await flush()
    ;(root.querySelector('[data-testid="confirm-ok"]') as HTMLButtonElement).click()
    await flush()
    expect(text('notice-headline')).toBe('Cannot abort: the run has already ended')
    expect(document.activeElement).toBe(root.querySelector('[data-testid="notice"]'))
  })
})

describe('TrainConsole when the server goes away', () => {
  const explanation =
    'The console server went away while the run was live (last reported: Running). ' +
    'Its current state is unknown; the page shows the last data received.'

  function badge(): HTMLElement {
    return root.querySelector('[data-testid="state"]') as HTMLElement
  }

  it('says "Not reporting" after bye while running, keeping the data', async () => {
    const ws = await mount()
    expect(badge().getAttribute('data-state')).toBe('running')
    ws.send({ type: 'bye', reason: 'the console server is exiting' })
    ws.onclose?.({ code: 1000 } as CloseEvent)
    await flush()
    expect(badge().firstChild?.nextSibling?.textContent).toBe('Not reporting')
    expect(text('state')).toBe(`Not reporting. ${explanation}`)
    expect(badge().getAttribute('title')).toBe(explanation)
    expect(badge().getAttribute('data-state')).toBe('unknown')
    expect(badge().getAttribute('data-last-state')).toBe('running')
    expect(text('tokens')).toBe('81,920 / 100,000,000 tokens 0.08%')
    expect(text('loss')).toBe('2.3100')
    expect(document.title).toBe('not reporting · tiny-shakespeare · trainconsole')
    // The live region: no stray leading punctuation, one space between sentences.
    expect(root.querySelector('[data-testid="announcer"]')?.textContent?.trim()).toBe(
      'Run is training. The console server has exited. Showing the last data received.',
    )
    // The badge's hidden explanation is a sentence of its own, not ". The console…".
    expect(root.querySelector('[data-testid="state-explanation"]')?.textContent).toBe(` ${explanation}`)
    expect(badge().textContent).toBe(`Not reporting. ${explanation}`)
  })

  it('says "Not reporting" when the server stays unreachable (kill -9) while stopping', async () => {
    vi.useFakeTimers()
    try {
      const ws = await mount({ ...baseSummary, state: 'stopping' })
      fetchMock.mockImplementation(async () => {
        throw new TypeError('connection refused')
      })
      ws.onclose?.({ code: 1006 } as CloseEvent) // lost, no bye
      await flush()
      expect(text('state')).toBe('Stopping')
      // Five failed attempts in a row (the default) before the server counts as exited.
      for (let i = 0; i < 5; i++) {
        vi.advanceTimersByTime(20_000)
        FakeWebSocket.instances[FakeWebSocket.instances.length - 1].onclose?.({ code: 1006 } as CloseEvent)
        await flush()
        if (i < 4) expect(text('state')).toBe('Stopping')
      }
      expect(root.querySelector('[data-testid="connection"]')?.getAttribute('data-status')).toBe('exited')
      expect(text('state')).toBe(`Not reporting. ${explanation.replace('Running', 'Stopping')}`)
      expect(badge().getAttribute('data-last-state')).toBe('stopping')
      expect(text('tokens')).toBe('81,920 / 100,000,000 tokens 0.08%')
    } finally {
      vi.useRealTimers()
    }
  })

  it('keeps the final state of an ended run', async () => {
    const ws = await mount({ ...baseSummary, state: 'completed' })
    ws.send({ type: 'bye', reason: 'the run has ended' })
    ws.onclose?.({ code: 1000 } as CloseEvent)
    await flush()
    expect(text('state')).toBe('Completed')
    expect(badge().getAttribute('data-state')).toBe('completed')
    expect(badge().hasAttribute('title')).toBe(false)
  })
})

describe('TrainConsole when the run ends during an abort', () => {
  const abortedSummary = {
    ...baseSummary,
    state: 'aborted',
    last_seq: 45,
    step: 41,
    checkpoint_path: 'runs/r1/checkpoints/step-41',
    checkpoint_step: 41,
  }

  it('closes an open confirm dialog when another tab aborts the run, focusing the notice', async () => {
    const ws = await mount()
    abortButton().focus()
    abortButton().click()
    await flush()
    const dialog = root.querySelector('dialog') as HTMLDialogElement
    expect(dialog.open).toBe(true)
    ws.send({ type: 'events', events: [], summary: abortedSummary })
    await flush()
    expect(dialog.open).toBe(false)
    expect(abortButton().disabled).toBe(true)
    expect(abortButton().textContent?.trim()).toBe('Abort run')
    expect(text('notice-headline')).toBe('Aborted at step 41')
    expect(document.activeElement).toBe(root.querySelector('[data-testid="notice"]'))
    expect(fetchMock).not.toHaveBeenCalled()
  })

  it('closes an open confirm dialog when the run completes', async () => {
    const ws = await mount()
    abortButton().focus()
    abortButton().click()
    await flush()
    ws.send({ type: 'events', events: [], summary: { ...baseSummary, state: 'completed', last_seq: 50, step: 48_828 } })
    await flush()
    expect((root.querySelector('dialog') as HTMLDialogElement).open).toBe(false)
    expect(abortButton().disabled).toBe(true)
    expect(text('notice-headline')).toBe('Completed at step 48,828')
    expect(document.activeElement).toBe(root.querySelector('[data-testid="notice"]'))
    expect(document.activeElement).not.toBe(document.body)
  })

  it('shows the ended notice, not "Abort failed", when the request fails because the run ended', async () => {
    let fail!: (err: Error) => void
    fetchMock.mockImplementation(() => new Promise<Response>((_, reject) => (fail = reject)))
    const ws = await mount()
    abortButton().focus()
    abortButton().click()
    await flush()
    ;(root.querySelector('[data-testid="confirm-ok"]') as HTMLButtonElement).click()
    await flush()
    ws.send({ type: 'events', events: [], summary: abortedSummary })
    await flush()
    fail(new TypeError('Failed to fetch'))
    await flush()
    expect(text('notice-headline')).toBe('Aborted at step 41')
    expect(root.querySelector('[data-testid="notice"]')?.className).toContain('notice--ended')
    expect(text('announcer')).not.toContain('Abort failed')
    expect(abortButton().disabled).toBe(true)
    expect(document.activeElement).toBe(root.querySelector('[data-testid="notice"]'))
  })

  it('shows the ended notice when a 409 arrives before the stream says the run ended', async () => {
    fetchMock.mockImplementation(async () => new Response('{"error":"the run has already ended","state":"aborted"}', { status: 409 }))
    const ws = await mount()
    abortButton().click()
    await flush()
    ;(root.querySelector('[data-testid="confirm-ok"]') as HTMLButtonElement).click()
    await flush()
    expect(text('notice-headline')).toBe('Cannot abort: the run has already ended')
    ws.send({ type: 'events', events: [], summary: abortedSummary })
    await flush()
    expect(text('notice-headline')).toBe('Aborted at step 41')
    expect(abortButton().disabled).toBe(true)
  })

  it('still shows a network failure while the run is live', async () => {
    fetchMock.mockImplementation(async () => {
      throw new TypeError('Failed to fetch')
    })
    await mount()
    abortButton().click()
    await flush()
    ;(root.querySelector('[data-testid="confirm-ok"]') as HTMLButtonElement).click()
    await flush()
    expect(text('notice-headline')).toBe('Abort failed: Could not reach the console server (Failed to fetch)')
    expect(abortButton().disabled).toBe(false)
  })
})
