import type { ConnectionStatus } from './useRunStream'

/**
 * What the connection indicator says: "Live", "Connecting…", "Reconnecting in 3s",
 * "Reconnecting…", "Console server has exited", "Run not found".
 */
export function connectionText(status: ConnectionStatus, retryAt: number | null, nowMs: number): string {
  switch (status) {
    case 'live':
      return 'Live'
    case 'connecting':
      return 'Connecting…'
    case 'reconnecting': {
      if (retryAt === null) return 'Reconnecting…'
      const secs = Math.ceil((retryAt - nowMs) / 1000)
      return secs >= 1 ? `Reconnecting in ${secs}s` : 'Reconnecting…'
    }
    case 'exited':
      return 'Console server has exited'
    case 'not_found':
      return 'Run not found'
  }
}
