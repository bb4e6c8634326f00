// HTTP calls of the console API (docs/api.md). Errors come back as values, with the
// server's `{"error": "…"}` text when there is one.

import { runApiPath } from '../composables/runStream'
import { parseSummary, type RunState, type RunSummary } from './types'

export type Result<T> = { ok: true; value: T } | { ok: false; status: number; error: string }

/** The server's `error` text, or a generic one for the status. */
async function errorText(response: Response): Promise<string> {
  try {
    const body = (await response.json()) as unknown
    if (body && typeof body === 'object' && typeof (body as { error?: unknown }).error === 'string') {
      return (body as { error: string }).error
    }
  } catch {
    // not JSON
  }
  return `HTTP ${response.status}${response.statusText ? ` ${response.statusText}` : ''}`
}

function unreachable(err: unknown): Result<never> {
  const detail = err instanceof Error && err.message ? ` (${err.message})` : ''
  return { ok: false, status: 0, error: `Could not reach the console server${detail}` }
}

/** `GET /api/runs`: every run's summary, newest first. */
export async function fetchRuns(fetchImpl: typeof fetch = fetch): Promise<Result<RunSummary[]>> {
  try {
    const response = await fetchImpl('/api/runs', { headers: { Accept: 'application/json' } })
    if (!response.ok) return { ok: false, status: response.status, error: await errorText(response) }
    const body = (await response.json()) as { runs?: unknown }
    const runs = Array.isArray(body?.runs) ? body.runs : []
    return { ok: true, value: runs.map(parseSummary).filter((s): s is RunSummary => s !== null) }
  } catch (err) {
    return unreachable(err)
  }
}

/** `POST /api/runs/{id}/abort`: 202 with the run's state (`stopping`), else the error. */
export async function requestAbort(runId: string, fetchImpl: typeof fetch = fetch): Promise<Result<RunState | null>> {
  return postRunAction(runId, '/abort', fetchImpl)
}

/**
 * `POST /api/runs/{id}/kill`: force-kill the process of a run that did not stop within its
 * grace period (SIGTERM, then SIGKILL). 202 with the run's state, else the error.
 */
export async function requestKill(runId: string, fetchImpl: typeof fetch = fetch): Promise<Result<RunState | null>> {
  return postRunAction(runId, '/kill', fetchImpl)
}

async function postRunAction(runId: string, action: '/abort' | '/kill', fetchImpl: typeof fetch): Promise<Result<RunState | null>> {
  try {
    const response = await fetchImpl(runApiPath(runId, action), {
      method: 'POST',
      headers: { Accept: 'application/json' },
    })
    if (response.status === 202 || response.ok) {
      let state: RunState | null = null
      try {
        const body = (await response.json()) as { state?: unknown }
        if (typeof body?.state === 'string') state = body.state as RunState
      } catch {
        // an empty body is fine
      }
      return { ok: true, value: state }
    }
    return { ok: false, status: response.status, error: await errorText(response) }
  } catch (err) {
    return unreachable(err)
  }
}
