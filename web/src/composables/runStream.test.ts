import { describe, expect, it, vi } from 'vitest'
import { parseSummary, type StoredEvent } from '../api/types'
import { applyBatch, backoffDelay, createRunData, runIdFromPath, streamUrl } from './runStream'

const step = (seq: number, s: number, loss: number): StoredEvent => ({ seq, time: 100 + seq, kind: 'step', step: s, tokens: s * 2048, loss })
const evalAt = (seq: number, s: number, val_loss: number): StoredEvent => ({ seq, time: 100 + seq, kind: 'eval', step: s, val_loss })
const summaryAt = (last_seq: number) => parseSummary({ id: 'r1', state: 'running', step: last_seq, tokens: 0, elapsed_secs: 0, last_seq })!

describe('applyBatch', () => {
  it('applies events in order and fills the series', () => {
    const data = createRunData()
    const r = applyBatch(data, [step(1, 1, 4.2), step(2, 2, 3.9), evalAt(3, 2, 4.0), step(4, 3, 3.7)], summaryAt(4))
    expect(r).toEqual({ applied: 4, duplicates: 0, gap: null, summaryChanged: true })
    expect(data.lastSeq).toBe(4)
    expect(data.eventCount).toBe(4)
    expect(data.train.stepArray()).toEqual([1, 2, 3])
    expect(data.train.valueArray('loss')).toEqual([4.2, 3.9, 3.7])
    expect(data.val.stepArray()).toEqual([2])
    expect(data.summary?.last_seq).toBe(4)
  })

  it('loads a long history into the chart series in bulk, the same as event by event', () => {
    const events: StoredEvent[] = []
    let seq = 0
    for (let s = 1; s <= 5000; s++) {
      const lr = s % 100 === 0 ? undefined : 3e-4 * (1 - s / 5000)
      events.push({ seq: ++seq, time: 100 + s * 0.5, kind: 'step', step: s === 3000 ? 2000 : s, tokens: s * 2048, loss: s === 77 ? NaN : 4 / Math.sqrt(s), lr, grad_norm: 1 + (s % 7) / 10 })
      if (s % 1000 === 0) events.push(evalAt(++seq, s, 3 / Math.sqrt(s)))
    }
    events.push({ seq: ++seq, time: 9999, kind: 'step', step: 4, tokens: 4, loss: 1, rank: 1 }) // another rank: not drawn
    const bulk = createRunData()
    const spy = vi.spyOn(bulk.train, 'appendColumns')
    const pushSpy = vi.spyOn(bulk.train, 'push')
    applyBatch(bulk, events, null)
    expect(spy).toHaveBeenCalledTimes(5) // split by the five evals, not 5,000 pushes
    expect(pushSpy).not.toHaveBeenCalled()
    const one = createRunData()
    for (const e of events) applyBatch(one, [e], null)
    expect(bulk.train.length).toBe(5000)
    for (const name of ['loss', 'lr', 'grad_norm', 'loss_ema']) {
      expect(bulk.train.valueArray(name)).toEqual(one.train.valueArray(name))
      expect(bulk.train.column(name).missing.count).toBe(one.train.column(name).missing.count)
    }
    expect(bulk.train.column('lr').missing.count).toBe(50)
    expect(bulk.train.stepArray()).toEqual(one.train.stepArray())
    expect(bulk.train.segments()).toEqual([[0, 2999], [2999, 5000]])
    expect(bulk.train.segments()).toEqual(one.train.segments())
    expect(bulk.val.stepArray()).toEqual([1000, 2000, 3000, 4000, 5000])
    expect(Array.from({ length: 5 }, (_, i) => bulk.val.tokens.get(i))).toEqual([1000, 2000, NaN, 4000, 5000].map((s) => s * 2048))
    // Bytes include the pyramids: a bulk append builds their first level as it copies, events
    // one by one leave them to the first draw. Built on both, they take the same room.
    for (const data of [bulk, one]) for (const c of data.train.columns.values()) c.update()
    expect(bulk.train.bytes()).toBe(one.train.bytes())
  })

  it('ignores events at or below the last seq (dedupe)', () => {
    const data = createRunData()
    applyBatch(data, [step(1, 1, 4.2), step(2, 2, 3.9)], null)
    // A reconnect replays 2 and brings 3: only 3 is new.
    const r = applyBatch(data, [step(1, 1, 4.2), step(2, 2, 3.9), step(3, 3, 3.5)], null)
    expect(r).toEqual({ applied: 1, duplicates: 2, gap: null, summaryChanged: false })
    expect(data.train.length).toBe(3)
    expect(data.eventCount).toBe(3)
    expect(data.lastSeq).toBe(3)
  })

  it('stops at a seq jump and reports the gap', () => {
    const data = createRunData()
    applyBatch(data, [step(1, 1, 4.2), step(2, 2, 3.9)], null)
    const r = applyBatch(data, [step(3, 3, 3.5), step(6, 6, 3.1), step(7, 7, 3.0)], null)
    expect(r.applied).toBe(1)
    expect(r.gap).toEqual({ expected: 4, got: 6 })
    expect(data.lastSeq).toBe(3) // resume with after=3
    expect(data.train.length).toBe(3)
    // The refill then applies from 4 on without duplicating 3.
    const refill = applyBatch(data, [step(3, 3, 3.5), step(4, 4, 3.4), step(5, 5, 3.3), step(6, 6, 3.1)], null)
    expect(refill).toMatchObject({ applied: 3, duplicates: 1, gap: null })
    expect(data.train.stepArray()).toEqual([1, 2, 3, 4, 5, 6])
  })

  it('treats a first event above 1 as a gap', () => {
    const data = createRunData()
    const r = applyBatch(data, [step(5, 5, 3)], null)
    expect(r.gap).toEqual({ expected: 1, got: 5 })
    expect(data.lastSeq).toBe(0)
  })

  it('keeps the newer summary', () => {
    const data = createRunData()
    applyBatch(data, [], summaryAt(10))
    const older = applyBatch(data, [], summaryAt(7))
    expect(older.summaryChanged).toBe(false)
    expect(data.summary?.last_seq).toBe(10)
    expect(applyBatch(data, [], summaryAt(10)).summaryChanged).toBe(true)
  })

  it('applies a summary-only batch at the same last_seq (the trainer died: interrupted)', () => {
    const data = createRunData()
    applyBatch(data, [], summaryAt(10))
    expect(data.summary?.state).toBe('running')
    const interrupted = parseSummary({ id: 'r1', state: 'interrupted', step: 10, tokens: 0, elapsed_secs: 0, last_seq: 10 })!
    const r = applyBatch(data, [], interrupted)
    expect(r).toEqual({ applied: 0, duplicates: 0, gap: null, summaryChanged: true })
    expect(data.summary?.state).toBe('interrupted')
    expect(data.summary?.last_seq).toBe(10)
    expect(data.lastSeq).toBe(0)
    expect(data.eventCount).toBe(0)
  })

  it('keeps NaN losses in the series (the chart lifts the line there)', () => {
    const data = createRunData()
    applyBatch(data, [step(1, 1, 4), step(2, 2, NaN), step(3, 3, Infinity)], null)
    expect(data.train.length).toBe(3)
    expect(Number.isNaN(data.train.column('loss').get(1))).toBe(true)
    expect(data.train.column('loss').extent()).toEqual({ min: 4, max: 4 })
  })

  it('counts events of other kinds without adding points', () => {
    const data = createRunData()
    const r = applyBatch(
      data,
      [
        { seq: 1, time: 1, kind: 'run_start', name: 'x', config: {}, start_step: 0, start_tokens: 0 },
        { seq: 2, time: 2, kind: 'sample', step: 0, text: 'hi' },
        { seq: 3, time: 3, kind: 'other', wireKind: 'future_kind' },
        { seq: 4, time: 4, kind: 'state', state: 'aborted' },
      ],
      null,
    )
    expect(r.applied).toBe(4)
    expect(data.train.length + data.val.length).toBe(0)
    expect(data.resumed).toBeNull() // a fresh run
  })

  it('keeps where a resumed run started, from its run_start event', () => {
    const data = createRunData()
    expect(data.resumed).toBeNull()
    applyBatch(
      data,
      [
        {
          seq: 1,
          time: 1,
          kind: 'run_start',
          name: 'x',
          config: {},
          start_step: 1200,
          start_tokens: 2_457_600,
          resumed_from: 'runs/a/checkpoints/step-1200',
        },
        step(2, 1201, 2.1),
      ],
      null,
    )
    expect(data.resumed).toEqual({ path: 'runs/a/checkpoints/step-1200', step: 1200, tokens: 2_457_600 })
    // A later replay of run_start (a duplicate) changes nothing.
    applyBatch(data, [{ seq: 1, time: 1, kind: 'run_start', name: 'x', config: {}, start_step: 0, start_tokens: 0 }], null)
    expect(data.resumed).toEqual({ path: 'runs/a/checkpoints/step-1200', step: 1200, tokens: 2_457_600 })
  })
})

describe('backoffDelay', () => {
  it('doubles from 250 ms with ±50% jitter', () => {
    expect(backoffDelay(0, 0.5)).toBe(250)
    expect(backoffDelay(1, 0.5)).toBe(500)
    expect(backoffDelay(2, 0.5)).toBe(1000)
    expect(backoffDelay(3, 0.5)).toBe(2000)
    expect(backoffDelay(0, 0)).toBe(125)
    expect(backoffDelay(0, 0.999)).toBe(375)
    expect(backoffDelay(2, 0)).toBe(500)
  })

  it('never exceeds 10 s however many attempts', () => {
    expect(backoffDelay(6, 0.5)).toBe(10_000) // 16 s capped
    expect(backoffDelay(6, 0)).toBe(5000)
    expect(backoffDelay(100, 0.999)).toBe(10_000)
    expect(backoffDelay(1e9, 1)).toBe(10_000)
    for (let attempt = 0; attempt < 40; attempt++) {
      for (const r of [0, 0.25, 0.5, 0.75, 0.999]) {
        const d = backoffDelay(attempt, r)
        expect(d).toBeGreaterThanOrEqual(125)
        expect(d).toBeLessThanOrEqual(10_000)
      }
    }
  })
})

describe('URLs', () => {
  it('builds the stream URL with the last seq', () => {
    expect(streamUrl({ protocol: 'http:', host: '127.0.0.1:8080' }, 'r1', 0)).toBe('ws://127.0.0.1:8080/api/runs/r1/stream?after=0')
    expect(streamUrl({ protocol: 'https:', host: 'example.test' }, 'r1', 42)).toBe('wss://example.test/api/runs/r1/stream?after=42')
    expect(streamUrl({ protocol: 'http:', host: 'h' }, 'a b/c', 7)).toBe('ws://h/api/runs/a%20b%2Fc/stream?after=7')
  })

  it('reads the run id from the page path', () => {
    expect(runIdFromPath('/runs/20261129-abc')).toBe('20261129-abc')
    expect(runIdFromPath('/runs/20261129-abc/')).toBe('20261129-abc')
    expect(runIdFromPath('/runs/a%20b')).toBe('a b')
    expect(runIdFromPath('/')).toBeNull()
    expect(runIdFromPath('/runs/')).toBeNull()
    expect(runIdFromPath('/runs/x/y')).toBeNull()
  })
})
