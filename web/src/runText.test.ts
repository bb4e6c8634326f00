import { describe, expect, it } from 'vitest'
import { parseSummary } from './api/types'
import { forceKillInSecs, joinSentences, processEndText, stateAnnouncement, stateHeadline } from './runText'

const summary = (extra: Record<string, unknown>) => parseSummary({ id: 'r', state: 'running', step: 1234, tokens: 0, last_seq: 9, ...extra })!

describe('run sentences', () => {
  it('says where an aborted run stopped and where its checkpoint is', () => {
    const s = summary({ state: 'aborted', checkpoint_path: 'runs/r/checkpoints/step-001234', checkpoint_step: 1234 })
    expect(stateHeadline(s)).toBe('Aborted at step 1,234')
    expect(stateAnnouncement(s)).toBe('Run aborted at step 1,234. Checkpoint: runs/r/checkpoints/step-001234.')
  })

  it('names the other states', () => {
    expect(stateHeadline(summary({ state: 'completed' }))).toBe('Completed at step 1,234')
    expect(stateHeadline(summary({ state: 'failed', message: 'loss is NaN' }))).toBe('Failed at step 1,234: loss is NaN')
    expect(stateAnnouncement(summary({ state: 'stopping' }))).toBe('Stopping: the trainer is finishing its step and saving a checkpoint.')
    expect(stateAnnouncement(summary({ state: 'interrupted' }))).toBe('Run interrupted at step 1,234.')
  })
})

describe('stopping and force kill', () => {
  const stopping = summary({ state: 'stopping', stopping_since: 1000, force_kill_grace_secs: 60 })

  it('says for how long a run has been stopping', () => {
    expect(stateHeadline(stopping, 1_012_900)).toBe('Stopping… (12 s): the trainer is finishing its step and saving a checkpoint')
    expect(stateHeadline(stopping)).toBe('Stopping… the trainer is finishing its step and saving a checkpoint')
    expect(stateHeadline(summary({ state: 'stopping' }), 1_012_900)).toBe('Stopping… the trainer is finishing its step and saving a checkpoint')
  })

  it('counts down to force kill only for a stopping run the console can kill', () => {
    expect(forceKillInSecs(stopping, 1_012_900)).toBe(48)
    expect(forceKillInSecs(stopping, 1_059_500)).toBe(1)
    expect(forceKillInSecs(stopping, 1_060_000)).toBe(0)
    expect(forceKillInSecs(stopping, 1_900_000)).toBe(0)
    expect(forceKillInSecs(summary({ state: 'stopping', stopping_since: 1000 }), 1_900_000)).toBeNull()
    expect(forceKillInSecs(summary({ state: 'aborted', stopping_since: 1000, force_kill_grace_secs: 60 }), 1_900_000)).toBeNull()
  })

  it('says how a process ended', () => {
    expect(processEndText({ exit_code: null, signal: 'SIGKILL', output_tail: [] })).toBe('killed by SIGKILL')
    expect(processEndText({ exit_code: 3, signal: null, output_tail: [] })).toBe('exit status 3')
  })
})

describe('joinSentences', () => {
  it('separates sentences by exactly one space', () => {
    expect(
      joinSentences([
        'Abort requested. The trainer is finishing its step and saving a checkpoint.',
        'Run aborted at step 41. Checkpoint: runs/r1/checkpoints/step-41.',
      ]),
    ).toBe(
      'Abort requested. The trainer is finishing its step and saving a checkpoint. Run aborted at step 41. Checkpoint: runs/r1/checkpoints/step-41.',
    )
    expect(joinSentences(['  One.  ', 'Two.', '   Three. '])).toBe('One. Two. Three.')
  })

  it('never starts with punctuation, and ends each sentence', () => {
    expect(joinSentences(['', '. The console server went away'])).toBe('The console server went away.')
    expect(joinSentences([null, undefined, '.', ' ', 'Reconnected'])).toBe('Reconnected.')
    expect(joinSentences(['Stopping…', 'Really?', 'Done!'])).toBe('Stopping… Really? Done!')
    expect(joinSentences([])).toBe('')
  })

  it('ends a failed run\'s message once', () => {
    expect(stateAnnouncement(summary({ state: 'failed', message: 'loss is NaN.' }))).toBe('Run failed at step 1,234. loss is NaN.')
    expect(stateAnnouncement(summary({ state: 'failed', message: '' }))).toBe('Run failed at step 1,234.')
    expect(stateAnnouncement(summary({ state: 'completed' }))).toBe('Run completed at step 1,234.')
  })
})
