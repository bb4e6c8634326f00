import { describe, expect, it } from 'vitest'
import { connectionText } from './connectionText'

describe('connectionText', () => {
  it('counts down to the next attempt in whole seconds', () => {
    expect(connectionText('live', null, 0)).toBe('Live')
    expect(connectionText('connecting', null, 0)).toBe('Connecting…')
    expect(connectionText('reconnecting', 10_000, 7_000)).toBe('Reconnecting in 3s')
    expect(connectionText('reconnecting', 10_000, 7_001)).toBe('Reconnecting in 3s')
    expect(connectionText('reconnecting', 10_000, 9_900)).toBe('Reconnecting in 1s')
    expect(connectionText('reconnecting', 10_000, 10_000)).toBe('Reconnecting…')
    expect(connectionText('reconnecting', null, 0)).toBe('Reconnecting…')
    expect(connectionText('exited', null, 0)).toBe('Console server has exited')
    expect(connectionText('not_found', null, 0)).toBe('Run not found')
  })
})
