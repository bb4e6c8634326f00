import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { effectScope, type EffectScope } from 'vue'
import { useRunStream, type RunStream, type UseRunStreamOptions, type WebSocketLike } from './useRunStream'

/** A socket the test drives by hand. */
class FakeSocket implements WebSocketLike {
  onopen: WebSocketLike['onopen'] = null
  onmessage: WebSocketLike['onmessage'] = null
  onclose: WebSocketLike['onclose'] = null
  onerror: WebSocketLike['onerror'] = null
  closed = false
  constructor(readonly url: string) {}
  close() {
    this.closed = true
  }
  /** The server sends one JSON message. */
  send(message: unknown) {
    this.onmessage?.({ data: JSON.stringify(message) } as MessageEvent)
  }
  /** The connection drops (or never opened). */
  drop() {
    this.closed = true
    this.onclose?.({ code: 1006 } as CloseEvent)
  }
}

const step = (seq: number) => ({ seq, time: 1000 + seq, kind: 'step', step: seq, tokens: seq * 100, loss: seq === 3 ? 'NaN' : 5 - seq / 10 })
const summary = (last_seq: number, extra: Record<string, unknown> = {}) => ({
  id: 'r1',
  name: 'tiny',
  state: 'running',
  message: '',
  step: last_seq,
  tokens: last_seq * 100,
  loss: 4.5,
  elapsed_secs: last_seq,
  last_seq,
  ...extra,
})
const batch = (from: number, to: number, extra: Record<string, unknown> = {}) => ({
  type: 'events',
  events: Array.from({ length: to - from + 1 }, (_, i) => step(from + i)),
  summary: summary(to, extra),
})

let sockets: FakeSocket[]
let scope: EffectScope
let fetchMock: ReturnType<typeof vi.fn>

function start(extra: Partial<UseRunStreamOptions> = {}): RunStream {
  let stream!: RunStream
  scope.run(() => {
    stream = useRunStream({
      runId: 'r1',
      location: { protocol: 'http:', host: '127.0.0.1:9000' },
      connect: (url) => {
        const s = new FakeSocket(url)
        sockets.push(s)
        return s
      },
      fetch: fetchMock as unknown as typeof fetch,
      random: () => 0.5, // no jitter: delays are exactly 250, 500, 1000, …
      now: () => Date.now(),
      ...extra,
    })
  })
  return stream
}

const last = () => sockets[sockets.length - 1]

beforeEach(() => {
  vi.useFakeTimers()
  sockets = []
  scope = effectScope()
  fetchMock = vi.fn(async () => new Response('{}', { status: 200 }))
})
afterEach(() => {
  scope.stop()
  vi.useRealTimers()
})

describe('useRunStream', () => {
  it('connects from seq 0 and applies batches', () => {
    const onData = vi.fn()
    const stream = start({ onData })
    expect(sockets).toHaveLength(1)
    expect(last().url).toBe('ws://127.0.0.1:9000/api/runs/r1/stream?after=0')
    expect(stream.status.value).toBe('connecting')

    last().send({ type: 'events', events: [], summary: summary(0) })
    expect(stream.status.value).toBe('live')
    last().send(batch(1, 4))
    expect(stream.eventCount.value).toBe(4)
    expect(stream.lastSeq.value).toBe(4)
    expect(stream.summary.value?.tokens).toBe(400)
    expect(stream.data.train.length).toBe(4)
    expect(Number.isNaN(stream.data.train.column('loss').get(2))).toBe(true) // "NaN" on the wire
    expect(onData).toHaveBeenCalledTimes(2)
  })

  it('applies an empty batch whose summary changed at the same last_seq (interrupted)', () => {
    const onData = vi.fn()
    const stream = start({ onData })
    last().send(batch(1, 10))
    expect(stream.summary.value?.state).toBe('running')
    expect(stream.lastSeq.value).toBe(10)
    const versionBefore = stream.version.value
    last().send({ type: 'events', events: [], summary: summary(10, { state: 'interrupted' }) })
    expect(stream.summary.value?.state).toBe('interrupted')
    expect(stream.summary.value?.last_seq).toBe(10)
    expect(stream.lastSeq.value).toBe(10)
    expect(stream.eventCount.value).toBe(10)
    expect(stream.version.value).toBe(versionBefore + 1)
    expect(onData).toHaveBeenCalledTimes(2)
    expect(stream.status.value).toBe('live')
  })

  it('keeps the resume point of the run_start event the stream delivers', () => {
    const stream = start()
    last().send({ type: 'events', events: [], summary: summary(0) })
    expect(stream.resumed.value).toBeNull()
    last().send({
      type: 'events',
      events: [
        {
          seq: 1,
          time: 1000,
          kind: 'run_start',
          name: 'tiny',
          config: {},
          start_step: 500,
          start_tokens: 1_024_000,
          resumed_from: 'runs/r0/checkpoints/step-500',
        },
      ],
      summary: summary(1),
    })
    expect(stream.resumed.value).toEqual({ path: 'runs/r0/checkpoints/step-500', step: 500, tokens: 1_024_000 })
    // It stays through later batches and a reconnect that resumes after seq 1.
    last().send(batch(2, 3))
    last().drop()
    vi.advanceTimersByTime(250)
    expect(last().url).toBe('ws://127.0.0.1:9000/api/runs/r1/stream?after=3')
    last().send(batch(4, 4))
    expect(stream.resumed.value).toEqual({ path: 'runs/r0/checkpoints/step-500', step: 500, tokens: 1_024_000 })
  })

  it('has no resume point for a fresh run', () => {
    const stream = start()
    last().send({
      type: 'events',
      events: [{ seq: 1, time: 1000, kind: 'run_start', name: 'tiny', config: {}, start_step: 0, start_tokens: 0 }],
      summary: summary(1),
    })
    expect(stream.eventCount.value).toBe(1)
    expect(stream.resumed.value).toBeNull()
  })

  it('parses non-finite summary floats', () => {
    const stream = start()
    last().send(batch(1, 1, { loss: 'NaN', grad_norm: 'Infinity', val_loss: '-Infinity' }))
    expect(Number.isNaN(stream.summary.value!.loss!)).toBe(true)
    expect(stream.summary.value!.grad_norm).toBe(Infinity)
    expect(stream.summary.value!.val_loss).toBe(-Infinity)
  })

  it('reconnects with back-off and resumes after its last seq, without duplicates', () => {
    const stream = start()
    last().send(batch(1, 5))
    last().drop()
    expect(stream.status.value).toBe('reconnecting')
    expect(stream.retryAt.value).toBe(Date.now() + 250)
    expect(sockets).toHaveLength(1)
    vi.advanceTimersByTime(249)
    expect(sockets).toHaveLength(1)
    vi.advanceTimersByTime(1)
    expect(sockets).toHaveLength(2)
    expect(last().url).toBe('ws://127.0.0.1:9000/api/runs/r1/stream?after=5')

    // The server overlaps (4, 5 again): they are ignored.
    last().send(batch(4, 8))
    expect(stream.status.value).toBe('live')
    expect(stream.eventCount.value).toBe(8)
    expect(stream.data.train.stepArray()).toEqual([1, 2, 3, 4, 5, 6, 7, 8])
  })

  it('doubles the delay while attempts keep failing, and resets after a message', () => {
    const stream = start()
    last().send(batch(1, 2))
    const delays: number[] = []
    for (let i = 0; i < 4; i++) {
      last().drop()
      delays.push(stream.retryAt.value! - Date.now())
      vi.advanceTimersByTime(delays[i])
    }
    expect(delays).toEqual([250, 250, 500, 1000])
    last().send(batch(3, 3))
    last().drop()
    expect(stream.retryAt.value! - Date.now()).toBe(250)
  })

  it('refills a gap by reconnecting from the last seq it has', () => {
    const stream = start()
    last().send(batch(1, 3))
    const first = last()
    first.send(batch(7, 9)) // 4…6 went missing
    expect(stream.lastSeq.value).toBe(3)
    expect(first.closed).toBe(true)
    vi.advanceTimersByTime(0)
    expect(sockets).toHaveLength(2)
    expect(last().url).toBe('ws://127.0.0.1:9000/api/runs/r1/stream?after=3')
    last().send(batch(4, 9))
    expect(stream.lastSeq.value).toBe(9)
    expect(stream.data.train.length).toBe(9)
    // The retired socket's late messages change nothing.
    first.send(batch(10, 10))
    expect(stream.lastSeq.value).toBe(9)
  })

  it('says the server exited after bye, keeps the data, and retries only later', () => {
    const stream = start({ exitedRetryMs: 30_000 })
    last().send(batch(1, 4, { state: 'aborted', checkpoint_path: 'runs/r1/ckpt' }))
    last().send({ type: 'bye', reason: 'the run has ended' })
    last().drop()
    expect(stream.status.value).toBe('exited')
    expect(stream.byeReason.value).toBe('the run has ended')
    expect(stream.summary.value?.checkpoint_path).toBe('runs/r1/ckpt')
    expect(stream.data.train.length).toBe(4)
    vi.advanceTimersByTime(29_999)
    expect(sockets).toHaveLength(1)
    vi.advanceTimersByTime(1)
    expect(sockets).toHaveLength(2)
    expect(last().url).toContain('after=4')
    last().drop() // still gone
    expect(stream.status.value).toBe('exited')
  })

  it('gives up saying "exited" after repeated failures, still retrying slowly', () => {
    const stream = start({ exitAfterFailures: 3, exitedRetryMs: 30_000 })
    last().send(batch(1, 1))
    last().drop() // the connection was lost: not a failed attempt
    vi.advanceTimersByTime(250)
    last().drop() // failed attempt 1
    vi.advanceTimersByTime(250)
    last().drop() // failed attempt 2
    vi.advanceTimersByTime(500)
    expect(stream.status.value).toBe('reconnecting')
    last().drop() // failed attempt 3 in a row
    expect(stream.status.value).toBe('exited')
    vi.advanceTimersByTime(30_000)
    last().send(batch(2, 2)) // a server is back
    expect(stream.status.value).toBe('live')
  })

  it('says "exited" after one failed attempt when the run had already ended', () => {
    const stream = start({ exitAfterFailures: 5 })
    last().send(batch(1, 3, { state: 'completed' }))
    last().drop() // no bye (the process went away)
    expect(stream.status.value).toBe('reconnecting')
    vi.advanceTimersByTime(250)
    last().drop()
    expect(stream.status.value).toBe('exited')
    expect(stream.summary.value?.state).toBe('completed')
  })

  it('stops for an unknown run', async () => {
    fetchMock.mockImplementation(async () => new Response('{"error":"no run with id r1"}', { status: 404 }))
    const stream = start()
    last().drop()
    await vi.waitFor(() => expect(stream.status.value).toBe('not_found'))
    expect(fetchMock).toHaveBeenCalledWith('/api/runs/r1', expect.anything())
    vi.advanceTimersByTime(60_000)
    expect(sockets).toHaveLength(1)
  })

  it('closes its socket and timers when the scope ends', () => {
    start()
    const s = last()
    scope.stop()
    expect(s.closed).toBe(true)
    s.drop()
    vi.advanceTimersByTime(60_000)
    expect(sockets).toHaveLength(1)
  })
})
