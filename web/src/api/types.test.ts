import { describe, expect, it } from 'vitest'
import { isFinished, parseEvent, parseFloatField, parseStreamMessage, parseSummary } from './types'

describe('wire floats', () => {
  it('turns the non-finite strings back into numbers', () => {
    expect(parseFloatField(2.31)).toBe(2.31)
    expect(parseFloatField('NaN')).toBeNaN()
    expect(parseFloatField('Infinity')).toBe(Infinity)
    expect(parseFloatField('-Infinity')).toBe(-Infinity)
    expect(parseFloatField(null)).toBeNull()
    expect(parseFloatField(undefined)).toBeNull()
    expect(parseFloatField('junk')).toBeNull()
  })
})

describe('events', () => {
  it('parses the example of docs/api.md', () => {
    const raw = JSON.parse(
      '{"seq":42,"time":1764400012.5,"kind":"step","step":40,"tokens":81920,"loss":2.31,"lr":0.0029,"grad_norm":0.61,"step_time_ms":880.2}',
    )
    expect(parseEvent(raw)).toEqual({
      seq: 42,
      time: 1764400012.5,
      kind: 'step',
      step: 40,
      tokens: 81920,
      loss: 2.31,
      lr: 0.0029,
      grad_norm: 0.61,
      step_time_ms: 880.2,
    })
  })

  it('parses a non-finite loss, and keeps an unknown kind in sequence', () => {
    expect(parseEvent({ seq: 3, time: 1, kind: 'eval', step: 2, val_loss: 'Infinity' })).toEqual({
      seq: 3,
      time: 1,
      kind: 'eval',
      step: 2,
      val_loss: Infinity,
    })
    expect(parseEvent({ seq: 4, time: 1, kind: 'hello' })).toEqual({ seq: 4, time: 1, kind: 'other', wireKind: 'hello' })
    expect(parseEvent({ time: 1, kind: 'step' })).toBeNull()
    expect(parseEvent({ seq: 0, time: 1, kind: 'step' })).toBeNull()
  })
})

describe('summary and messages', () => {
  it('parses a summary with nulls and non-finite figures', () => {
    const s = parseSummary({
      id: 'r1',
      name: '',
      state: 'stopping',
      message: '',
      config: null,
      total_tokens: null,
      total_steps: 10,
      step: 3,
      tokens: 300,
      progress: 0.3,
      loss: 'NaN',
      val_loss: null,
      lr: 0.001,
      grad_norm: '-Infinity',
      tokens_per_sec: null,
      step_time_ms: 12.5,
      eta_secs: null,
      finish_time: null,
      start_time: 100,
      last_time: 103,
      elapsed_secs: 3,
      last_seq: 5,
      checkpoint_path: null,
      checkpoint_step: null,
      sample: { step: 2, text: 'hi' },
    })!
    expect(s.state).toBe('stopping')
    expect(s.loss).toBeNaN()
    expect(s.grad_norm).toBe(-Infinity)
    expect(s.total_tokens).toBeNull()
    expect(s.total_steps).toBe(10)
    expect(s.sample).toEqual({ step: 2, text: 'hi' })
    expect(s.stopping_since).toBeNull()
    expect(s.exit).toBeNull()
    expect(s.force_kill_grace_secs).toBeNull()
    expect(parseSummary('nope')).toBeNull()
  })

  it('parses how an external trainer ended and its force-kill grace period', () => {
    const s = parseSummary({
      id: 'r',
      state: 'aborted',
      stopping_since: 1764400010.5,
      force_kill_grace_secs: 60,
      exit: { signal: 'SIGKILL', output_tail: ['step 7', 3, 'bye'] },
    })!
    expect(s.stopping_since).toBe(1764400010.5)
    expect(s.force_kill_grace_secs).toBe(60)
    expect(s.exit).toEqual({ exit_code: null, signal: 'SIGKILL', output_tail: ['step 7', 'bye'] })
  })

  it('parses stream messages', () => {
    expect(parseStreamMessage({ type: 'bye', reason: 'exiting' })).toEqual({ type: 'bye', reason: 'exiting' })
    const m = parseStreamMessage({ type: 'events', events: [{ seq: 1, time: 1, kind: 'state', state: 'aborted' }, 7], summary: null })
    expect(m).toEqual({ type: 'events', events: [{ seq: 1, time: 1, kind: 'state', state: 'aborted', message: '' }], summary: null })
    expect(parseStreamMessage({ type: 'what' })).toBeNull()
  })

  it('knows which states have ended', () => {
    expect(['running', 'stopping', 'aborted', 'completed', 'failed', 'interrupted'].map((s) => isFinished(s as never))).toEqual([
      false,
      false,
      true,
      true,
      true,
      true,
    ])
  })
})
