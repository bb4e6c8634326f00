// Pure logic of the run stream: folding batches of stored events into a client-side run
// state (with dedupe and gap detection), reconnect back-off, and stream URLs.
// useRunStream.ts wires these to a WebSocket and Vue; the unit tests target this file.

import type { RunSummary, StoredEvent } from '../api/types'
import { PointSeries } from '../chart/series'

/** Where a resumed run started from, as its `run_start` event says. */
export interface ResumeInfo {
  /** The checkpoint it was resumed from (`resumed_from`). */
  path: string
  /** Steps and tokens already done at the checkpoint (`start_step`, `start_tokens`). */
  step: number
  tokens: number
}

/** What the page keeps of a run: its latest summary, the chart series, how it started. */
export interface RunData {
  /** `seq` of the latest event applied; 0 before any. Resume with `after=lastSeq`. */
  lastSeq: number
  /** Number of distinct events applied. */
  eventCount: number
  /** Latest summary from the server (it computes every figure). */
  summary: RunSummary | null
  /**
   * One point per optimizer step (x: step, tokens, time): columns `loss`, `lr`, `grad_norm`
   * and `loss_ema` (the debiased EMA of `loss`, see chart/series.ts).
   */
  train: PointSeries
  /** One point per eval: column `val_loss`; its tokens are the train step's. */
  val: PointSeries
  /**
   * Set from the `run_start` event when it has `resumed_from` (the summary does not carry
   * it); `null` for a fresh run and before `run_start` arrives.
   */
  resumed: ResumeInfo | null
}

export function createRunData(): RunData {
  return { lastSeq: 0, eventCount: 0, summary: null, train: createTrainSeries(), val: createValSeries(), resumed: null }
}

/** The train series: loss, lr, grad norm and the loss's EMA (TensorBoard's default weight 0.6). */
export function createTrainSeries(): PointSeries {
  return new PointSeries({ values: ['loss', 'lr', 'grad_norm'], lossy: ['lr', 'grad_norm'], smoothed: [{ name: 'loss_ema', of: 'loss' }], smoothing: 0.6 })
}

export function createValSeries(): PointSeries {
  return new PointSeries({ values: ['val_loss'] })
}

/** A jump in `seq`: events `expected` … `got − 1` are missing. */
export interface Gap {
  expected: number
  got: number
}

/** What applying one batch did. */
export interface BatchResult {
  /** Events applied (new and in order). */
  applied: number
  /** Events skipped because their seq was not above the last one applied. */
  duplicates: number
  /** The first seq jump seen; events from it on were not applied. */
  gap: Gap | null
  /** Whether the summary was replaced. */
  summaryChanged: boolean
}

/**
 * Fold a batch of stored events (and the summary that came with it) into `data`.
 *
 * * An event whose seq is not above `data.lastSeq` is a duplicate and is skipped.
 * * An event whose seq is above `lastSeq + 1` reveals a gap: it and the rest of the batch
 *   are dropped, so the series never have holes; the caller resumes from `lastSeq`.
 * * The summary replaces the current one unless it is older (lower `last_seq`). One with the
 *   same `last_seq` is applied: the server sends an empty batch when only the summary
 *   changed (e.g. the trainer died and the run became `interrupted`, with no new event).
 */
export function applyBatch(data: RunData, events: readonly StoredEvent[], summary: RunSummary | null): BatchResult {
  let applied = 0
  let duplicates = 0
  let gap: Gap | null = null
  // Step events are gathered into columns and appended to the chart series in bulk (a
  // history of a million steps loads in milliseconds, not point by point); flushed before
  // anything that reads the series (an eval looks up its step's tokens) and at the end.
  const steps = new StepColumns(events.length)
  for (const event of events) {
    if (event.seq <= data.lastSeq) {
      duplicates++
      continue
    }
    if (event.seq !== data.lastSeq + 1) {
      gap = { expected: data.lastSeq + 1, got: event.seq }
      break
    }
    if (event.kind === 'step') steps.add(event)
    else {
      steps.flushTo(data.train)
      applyEvent(data, event)
    }
    data.lastSeq = event.seq
    data.eventCount++
    applied++
  }
  steps.flushTo(data.train)
  let summaryChanged = false
  if (summary && (data.summary === null || summary.last_seq >= data.summary.last_seq)) {
    data.summary = summary
    summaryChanged = true
  }
  return { applied, duplicates, gap, summaryChanged }
}

/**
 * Add one (new, in-order) event to the series, and note where a resumed run started.
 * Other kinds only move the summary.
 */
function applyEvent(data: RunData, event: StoredEvent): void {
  switch (event.kind) {
    case 'run_start':
      data.resumed = event.resumed_from
        ? { path: event.resumed_from, step: event.start_step, tokens: event.start_tokens }
        : null
      break
    case 'eval':
      if (!Number.isFinite(event.step)) break
      data.val.push({ step: event.step, tokens: tokensAtStep(data.train, event.step), timeSecs: event.time, values: { val_loss: event.val_loss } })
      break
    default:
      break
  }
}

type StepEvent = Extract<StoredEvent, { kind: 'step' }>

/** Step events of a batch as columns, for `PointSeries.appendColumns`. */
class StepColumns {
  private n = 0
  private readonly step: Float64Array
  private readonly tokens: Float64Array
  private readonly timeSecs: Float64Array
  private readonly loss: Float64Array
  private readonly lr: Float64Array
  private readonly gradNorm: Float64Array
  /** 1 where the event has no lr / grad_norm. */
  private readonly lrMissing: Uint8Array
  private readonly gradNormMissing: Uint8Array

  constructor(capacity: number) {
    this.step = new Float64Array(capacity)
    this.tokens = new Float64Array(capacity)
    this.timeSecs = new Float64Array(capacity)
    this.loss = new Float64Array(capacity)
    this.lr = new Float64Array(capacity)
    this.gradNorm = new Float64Array(capacity)
    this.lrMissing = new Uint8Array(capacity)
    this.gradNormMissing = new Uint8Array(capacity)
  }

  /**
   * Add a step event. The chart shows optimizer steps as rank 0 reports them: micro-batch
   * events and other ranks' copies would draw the same step several times.
   */
  add(event: StepEvent): void {
    if ((event.rank ?? 0) !== 0 || event.micro_step !== undefined || !Number.isFinite(event.step)) return
    const i = this.n++
    this.step[i] = event.step
    this.tokens[i] = event.tokens
    this.timeSecs[i] = event.time
    this.loss[i] = event.loss
    const lr = event.lr
    const gradNorm = event.grad_norm
    this.lr[i] = typeof lr === 'number' ? lr : NaN
    this.lrMissing[i] = typeof lr === 'number' ? 0 : 1
    this.gradNorm[i] = typeof gradNorm === 'number' ? gradNorm : NaN
    this.gradNormMissing[i] = typeof gradNorm === 'number' ? 0 : 1
  }

  /** Append the gathered steps to `train` and start over. */
  flushTo(train: PointSeries): void {
    const n = this.n
    if (n === 0) return
    this.n = 0
    if (n === 1) {
      train.push({
        step: this.step[0],
        tokens: this.tokens[0],
        timeSecs: this.timeSecs[0],
        values: { loss: this.loss[0], lr: this.lrMissing[0] ? undefined : this.lr[0], grad_norm: this.gradNormMissing[0] ? undefined : this.gradNorm[0] },
      })
      return
    }
    train.appendColumns({
      step: this.step.subarray(0, n),
      tokens: this.tokens.subarray(0, n),
      timeSecs: this.timeSecs.subarray(0, n),
      values: { loss: this.loss.subarray(0, n), lr: this.lr.subarray(0, n), grad_norm: this.gradNorm.subarray(0, n) },
      missing: { lr: this.lrMissing.subarray(0, n), grad_norm: this.gradNormMissing.subarray(0, n) },
    })
  }
}

/**
 * Tokens trained at `step`, from the train series' latest segment (an eval follows its
 * step's event); NaN when the train series does not reach that step.
 */
function tokensAtStep(train: PointSeries, step: number): number {
  const segments = train.segments()
  if (segments.length === 0) return NaN
  const [start, end] = segments[segments.length - 1]
  const i = train.upperBound('step', start, end, step) - 1
  if (i < start) return NaN
  return train.step.get(i) === step ? train.tokens.get(i) : NaN
}

/** Reconnect back-off: `initialMs` doubling per attempt up to `maxMs`, ± `jitter`. */
export interface BackoffOptions {
  initialMs: number
  maxMs: number
  /** Fraction of the delay drawn at random on either side: 0.5 → ×[0.5, 1.5). */
  jitter: number
}

export const DEFAULT_BACKOFF: BackoffOptions = { initialMs: 250, maxMs: 10_000, jitter: 0.5 }

/**
 * Delay before reconnect attempt `attempt` (0 for the first retry):
 * `min(maxMs, initialMs × 2^attempt)` times a random factor in [1 − jitter, 1 + jitter),
 * never above `maxMs`. `random` is a number in [0, 1) (Math.random()).
 * With the defaults: attempt 0 → 125…375 ms, attempt 5 → 4…10 s, attempt ≥ 6 → 5…10 s.
 */
export function backoffDelay(attempt: number, random: number, options: BackoffOptions = DEFAULT_BACKOFF): number {
  const exponent = Math.min(Math.max(0, Math.floor(attempt)), 60)
  const base = Math.min(options.maxMs, options.initialMs * Math.pow(2, exponent))
  const r = Math.min(Math.max(random, 0), 1)
  const factor = 1 - options.jitter + 2 * options.jitter * r
  return Math.round(Math.min(options.maxMs, base * factor))
}

/** The parts of `window.location` a URL is built from. */
export interface LocationLike {
  protocol: string
  host: string
}

/** `ws://host/api/runs/{id}/stream?after=SEQ` (`wss:` when the page is served over https). */
export function streamUrl(location: LocationLike, runId: string, after: number): string {
  const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:'
  const seq = Number.isFinite(after) && after > 0 ? Math.floor(after) : 0
  return `${scheme}//${location.host}/api/runs/${encodeURIComponent(runId)}/stream?after=${seq}`
}

/** `/api/runs/{id}` and below, with the id escaped. */
export function runApiPath(runId: string, suffix = ''): string {
  return `/api/runs/${encodeURIComponent(runId)}${suffix}`
}

/** The run id of a console page path (`/runs/{id}`), or `null` for any other path. */
export function runIdFromPath(pathname: string): string | null {
  const match = /^\/runs\/([^/]+)\/?$/.exec(pathname)
  if (!match) return null
  try {
    return decodeURIComponent(match[1])
  } catch {
    return null
  }
}
