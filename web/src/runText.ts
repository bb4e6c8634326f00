// Sentences about a run, for notices and the screen-reader live region. Pure.

import type { RunSummary } from './api/types'
import { formatInt } from './format'

/** The step a run stopped at: its checkpoint's step when it has one, else its last step. */
function stopStep(summary: RunSummary): number {
  return summary.checkpoint_step ?? summary.step
}

/** Headline for a run's current state, e.g. "Aborted at step 120". */
export function stateHeadline(summary: RunSummary): string {
  switch (summary.state) {
    case 'running':
      return 'Training'
    case 'stopping':
      return 'Stopping… the trainer is finishing its step and saving a checkpoint'
    case 'aborted':
      return `Aborted at step ${formatInt(stopStep(summary))}`
    case 'completed':
      return `Completed at step ${formatInt(summary.step)}`
    case 'failed':
      return summary.message ? `Failed at step ${formatInt(summary.step)}: ${summary.message}` : `Failed at step ${formatInt(summary.step)}`
    case 'interrupted':
      return `Interrupted at step ${formatInt(summary.step)}: the trainer went away without reporting an end`
  }
}

/** What the live region says when the state changes. */
export function stateAnnouncement(summary: RunSummary): string {
  const checkpoint = summary.checkpoint_path ? ` Checkpoint: ${summary.checkpoint_path}.` : ''
  switch (summary.state) {
    case 'running':
      return 'Run is training.'
    case 'stopping':
      return 'Stopping: the trainer is finishing its step and saving a checkpoint.'
    case 'aborted':
      return `Run aborted at step ${formatInt(stopStep(summary))}.${checkpoint}`
    case 'completed':
      return `Run completed at step ${formatInt(summary.step)}.${checkpoint}`
    case 'failed':
      return `Run failed at step ${formatInt(summary.step)}.${summary.message ? ` ${summary.message}.` : ''}`
    case 'interrupted':
      return `Run interrupted at step ${formatInt(summary.step)}.`
  }
}
