// Sentences about a run, for notices and the screen-reader live region. Pure.

import type { ProcessExit, RunSummary } from './api/types'
import { formatInt } from './format'

/** The step a run stopped at: its checkpoint's step when it has one, else its last step. */
function stopStep(summary: RunSummary): number {
  return summary.checkpoint_step ?? summary.step
}

/**
 * Whole seconds since the run was asked to stop, at `nowMs` (milliseconds since the Unix
 * epoch); null when no abort was requested.
 */
export function stoppingSecs(summary: RunSummary, nowMs: number): number | null {
  if (summary.stopping_since == null) return null
  return Math.max(0, Math.floor(nowMs / 1000 - summary.stopping_since))
}

/**
 * Whole seconds until Force kill is accepted (0: now), for a stopping run whose process the
 * console started; null when Force kill does not apply.
 */
export function forceKillInSecs(summary: RunSummary, nowMs: number): number | null {
  if (summary.state !== 'stopping' || summary.force_kill_grace_secs == null || summary.stopping_since == null) return null
  return Math.max(0, Math.ceil(summary.stopping_since + summary.force_kill_grace_secs - nowMs / 1000))
}

/** How a trainer's process ended, e.g. "exit status 0", "killed by SIGKILL". */
export function processEndText(exit: ProcessExit): string {
  if (exit.signal) return `killed by ${exit.signal}`
  if (exit.exit_code !== null) return `exit status ${exit.exit_code}`
  return 'ended'
}

/**
 * Headline for a run's current state, e.g. "Aborted at step 120". With `nowMs`, a stopping
 * run says for how long it has been stopping: "Stopping… (12 s): …".
 */
export function stateHeadline(summary: RunSummary, nowMs?: number): string {
  switch (summary.state) {
    case 'running':
      return 'Training'
    case 'stopping': {
      const secs = nowMs === undefined ? null : stoppingSecs(summary, nowMs)
      const what = 'the trainer is finishing its step and saving a checkpoint'
      return secs === null ? `Stopping… ${what}` : `Stopping… (${secs} s): ${what}`
    }
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

/**
 * Sentences as one text for the live region: each trimmed, without leading punctuation or
 * space, ended with a full stop when it has no end mark, and separated by exactly one
 * space. Empty parts are left out.
 */
export function joinSentences(parts: readonly (string | null | undefined)[]): string {
  const sentences: string[] = []
  for (const part of parts) {
    if (!part) continue
    let sentence = part.replace(/\s+/g, ' ').replace(/^[\s.,;:·]+/, '').trim()
    if (!sentence) continue
    if (!/[.!?…]$/.test(sentence)) sentence += '.'
    sentences.push(sentence)
  }
  return sentences.join(' ')
}

/** What the live region says when the state changes. */
export function stateAnnouncement(summary: RunSummary): string {
  const checkpoint = summary.checkpoint_path ? `Checkpoint: ${summary.checkpoint_path}` : null
  switch (summary.state) {
    case 'running':
      return 'Run is training.'
    case 'stopping':
      return 'Stopping: the trainer is finishing its step and saving a checkpoint.'
    case 'aborted':
      return joinSentences([`Run aborted at step ${formatInt(stopStep(summary))}`, checkpoint])
    case 'completed':
      return joinSentences([`Run completed at step ${formatInt(summary.step)}`, checkpoint])
    case 'failed':
      return joinSentences([`Run failed at step ${formatInt(summary.step)}`, summary.message])
    case 'interrupted':
      return `Run interrupted at step ${formatInt(summary.step)}.`
  }
}
