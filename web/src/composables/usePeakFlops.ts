import { readonly, ref, type Ref } from 'vue'
import { parsePeakFlops } from '../format'

/** localStorage key of the peak FLOP/s the user set on the page (for every run). */
export const PEAK_FLOPS_KEY = 'trainconsole.peakFlops'

/**
 * The peak FLOP/s the user set on this page for MFU, kept in localStorage; null means "use
 * the run's own peak" (from its `run_start`). `set` takes what the user typed ("312T",
 * "3e11"; empty clears) and returns false, changing nothing, when it is not a positive number.
 */
export function usePeakFlops(): { peak: Readonly<Ref<number | null>>; set: (text: string) => boolean } {
  const peak = ref<number | null>(load())
  function set(text: string): boolean {
    if (text.trim() === '') {
      peak.value = null
      store(null)
      return true
    }
    const value = parsePeakFlops(text)
    if (value === null) return false
    peak.value = value
    store(value)
    return true
  }
  return { peak: readonly(peak), set }
}

function load(): number | null {
  try {
    const text = globalThis.localStorage?.getItem(PEAK_FLOPS_KEY)
    const value = text ? Number(text) : NaN
    return Number.isFinite(value) && value > 0 ? value : null
  } catch {
    return null // storage disabled
  }
}

function store(value: number | null): void {
  try {
    if (value === null) globalThis.localStorage?.removeItem(PEAK_FLOPS_KEY)
    else globalThis.localStorage?.setItem(PEAK_FLOPS_KEY, String(value))
  } catch {
    // Storage disabled: the setting lasts for this page only.
  }
}
