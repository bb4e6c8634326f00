import { describe, expect, it } from 'vitest'
import { parseSummary } from './api/types'
import { joinSentences, stateAnnouncement, stateHeadline } from './runText'

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
