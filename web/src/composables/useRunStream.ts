// useRunStream: a run's live state from the stream WebSocket.
//
// Opens `ws(s)://host/api/runs/{id}/stream?after=SEQ`, folds every `events` message into
// a RunData (dedupe by seq, gap → resume from the last seq), and reconnects with jittered
// exponential back-off, always resuming from the last seq it has. After `{"type":"bye"}`
// (the console process is exiting) or when the server stays unreachable, the status says
// so and the last data stays; a slow retry picks the run up again if a server comes back.
//
// The chart series are plain typed arrays mutated outside Vue's reactivity: `version`
// changes once per batch that changed something, and `onData` is called, so the chart is
// told explicitly.

import { computed, getCurrentScope, onScopeDispose, ref, shallowRef, type ComputedRef } from 'vue'
import { isFinished, parseStreamMessage, type RunSummary } from '../api/types'
import {
  applyBatch,
  backoffDelay,
  createRunData,
  DEFAULT_BACKOFF,
  runApiPath,
  streamUrl,
  type BackoffOptions,
  type LocationLike,
  type ResumeInfo,
  type RunData,
} from './runStream'

/**
 * Connection to the console server:
 * `connecting` (first attempt), `live` (messages arriving), `reconnecting` (lost, retrying
 * at `retryAt`), `exited` (the server said bye or cannot be reached), `not_found` (no such run).
 */
export type ConnectionStatus = 'connecting' | 'live' | 'reconnecting' | 'exited' | 'not_found'

/** The subset of the WebSocket constructor this composable uses (replaceable in tests). */
export interface WebSocketLike {
  onopen: ((ev: Event) => unknown) | null
  onmessage: ((ev: MessageEvent) => unknown) | null
  onclose: ((ev: CloseEvent) => unknown) | null
  onerror: ((ev: Event) => unknown) | null
  close(code?: number, reason?: string): void
}
export type WebSocketFactory = (url: string) => WebSocketLike

export interface UseRunStreamOptions {
  runId: string
  /** Where the server is; `window.location` by default. */
  location?: LocationLike
  /** Opens a socket; `new WebSocket(url)` by default. */
  connect?: WebSocketFactory
  /** Used once to tell "no such run" from "server down"; `window.fetch` by default. */
  fetch?: typeof fetch
  /** Random numbers in [0, 1) for the back-off jitter. */
  random?: () => number
  backoff?: Partial<BackoffOptions>
  /**
   * Failed attempts in a row (no message received) before the server counts as exited;
   * one when the run has already ended.
   */
  exitAfterFailures?: number
  /** Delay between retries once the server has exited, in ms. */
  exitedRetryMs?: number
  /** Called after each batch that changed the data (the chart's cue to redraw). */
  onData?: (data: RunData) => void
  /** Clock in ms (for `retryAt`); `Date.now` by default. */
  now?: () => number
}

export interface RunStream {
  /** Latest summary (null until the first message). */
  summary: ComputedRef<RunSummary | null>
  status: ComputedRef<ConnectionStatus>
  /** While reconnecting: when the next attempt starts (ms since epoch, `now()` clock). */
  retryAt: ComputedRef<number | null>
  /** Why the server said bye, if it did. */
  byeReason: ComputedRef<string | null>
  /** Where the run was resumed from (its `run_start` event); null for a fresh run. */
  resumed: ComputedRef<ResumeInfo | null>
  /** Distinct events applied. */
  eventCount: ComputedRef<number>
  /** Latest seq applied. */
  lastSeq: ComputedRef<number>
  /** Bumped once per batch that changed the data. */
  version: ComputedRef<number>
  /** The run data (summary and series), mutated in place; not reactive. */
  data: RunData
  /** Number of sockets opened so far (diagnostics). */
  connections: ComputedRef<number>
  /** Close the socket and stop retrying (also done on scope dispose). */
  close(): void
  /** Retry now (e.g. a "reconnect" button). */
  reconnectNow(): void
}

export function useRunStream(options: UseRunStreamOptions): RunStream {
  const location = options.location ?? window.location
  const open: WebSocketFactory = options.connect ?? ((url) => new WebSocket(url))
  const doFetch = options.fetch ?? ((input, init) => window.fetch(input, init))
  const random = options.random ?? Math.random
  const now = options.now ?? Date.now
  const backoff: BackoffOptions = { ...DEFAULT_BACKOFF, ...options.backoff }
  const exitAfterFailures = options.exitAfterFailures ?? 5
  const exitedRetryMs = options.exitedRetryMs ?? 30_000

  const data = createRunData()
  const summary = shallowRef<RunSummary | null>(null)
  const status = ref<ConnectionStatus>('connecting')
  const retryAt = ref<number | null>(null)
  const byeReason = ref<string | null>(null)
  const resumed = shallowRef<ResumeInfo | null>(null)
  const eventCount = ref(0)
  const lastSeq = ref(0)
  const version = ref(0)
  const connections = ref(0)

  let socket: WebSocketLike | null = null
  let timer: ReturnType<typeof setTimeout> | null = null
  let disposed = false
  /** Attempts in a row that ended without a message. */
  let failures = 0
  /** Gap-triggered reconnects in a row. */
  let gapStreak = 0
  let probed = false

  function clearTimer() {
    if (timer !== null) clearTimeout(timer)
    timer = null
  }

  function connect() {
    clearTimer()
    if (disposed) return
    retryAt.value = null
    const ws = open(streamUrl(location, options.runId, data.lastSeq))
    socket = ws
    connections.value++
    let received = false
    let saidBye = false

    ws.onmessage = (ev: MessageEvent) => {
      if (socket !== ws || disposed) return
      let raw: unknown
      try {
        raw = JSON.parse(typeof ev.data === 'string' ? ev.data : String(ev.data))
      } catch {
        return
      }
      const message = parseStreamMessage(raw)
      if (!message) return
      if (message.type === 'bye') {
        saidBye = true
        byeReason.value = message.reason || 'the console server is exiting'
        status.value = 'exited'
        return
      }
      received = true
      failures = 0
      if (!saidBye) status.value = 'live'
      const result = applyBatch(data, message.events, message.summary)
      if (result.applied > 0 || result.summaryChanged) {
        if (result.summaryChanged) summary.value = data.summary
        resumed.value = data.resumed
        eventCount.value = data.eventCount
        lastSeq.value = data.lastSeq
        version.value++
        options.onData?.(data)
      }
      if (result.gap) {
        // Events are missing: drop this socket and resume from the last seq we hold.
        const delay = gapStreak === 0 ? 0 : backoffDelay(gapStreak - 1, random(), backoff)
        gapStreak++
        retire(ws)
        schedule(delay, 'reconnecting')
      } else if (result.applied > 0) {
        gapStreak = 0
      }
    }

    ws.onclose = () => {
      if (socket !== ws || disposed) return
      socket = null
      if (saidBye) {
        schedule(exitedRetryMs, 'exited')
        return
      }
      if (!received) failures++
      if (!received && !probed && data.summary === null) {
        probed = true
        void probe()
      }
      // A run that has ended is not coming back: when its server stops answering, the
      // process has most likely exited with it, so one failed attempt is enough to say so.
      const threshold = isFinished(data.summary?.state) ? 1 : exitAfterFailures
      if (status.value === 'exited' || status.value === 'not_found' || failures >= threshold) {
        if (status.value === 'not_found') return
        status.value = 'exited'
        schedule(Math.max(exitedRetryMs, 0), 'exited')
        return
      }
      schedule(backoffDelay(Math.max(0, failures - 1), random(), backoff), 'reconnecting')
    }
    ws.onerror = () => {
      // A close event follows; that is where reconnecting is decided.
    }
  }

  /** Stop listening to a socket and close it. */
  function retire(ws: WebSocketLike) {
    if (socket === ws) socket = null
    ws.onmessage = ws.onclose = ws.onerror = ws.onopen = null
    try {
      ws.close(1000, 'resync')
    } catch {
      // already closed
    }
  }

  function schedule(delayMs: number, nextStatus: ConnectionStatus) {
    clearTimer()
    if (disposed) return
    status.value = nextStatus
    retryAt.value = nextStatus === 'reconnecting' ? now() + delayMs : null
    timer = setTimeout(connect, delayMs)
  }

  /** Ask over HTTP whether the run exists, to stop retrying for an unknown id. */
  async function probe() {
    try {
      const response = await doFetch(runApiPath(options.runId), { headers: { Accept: 'application/json' } })
      if (response.status === 404 && !disposed && data.summary === null) {
        clearTimer()
        status.value = 'not_found'
        retryAt.value = null
      }
    } catch {
      // Unreachable: the back-off goes on.
    }
  }

  function close() {
    disposed = true
    clearTimer()
    if (socket) retire(socket)
    socket = null
  }

  function reconnectNow() {
    if (disposed) return
    if (socket) retire(socket)
    failures = 0
    status.value = data.summary ? 'reconnecting' : 'connecting'
    connect()
  }

  connect()
  if (getCurrentScope()) onScopeDispose(close)

  return {
    summary: computed(() => summary.value),
    status: computed(() => status.value),
    retryAt: computed(() => retryAt.value),
    byeReason: computed(() => byeReason.value),
    resumed: computed(() => resumed.value),
    eventCount: computed(() => eventCount.value),
    lastSeq: computed(() => lastSeq.value),
    version: computed(() => version.value),
    connections: computed(() => connections.value),
    data,
    close,
    reconnectNow,
  }
}
