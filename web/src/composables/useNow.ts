import { onScopeDispose, readonly, ref, type Ref } from 'vue'

/** The current time in ms, updated every `intervalMs` (for live clocks and countdowns). */
export function useNow(intervalMs = 1000): Readonly<Ref<number>> {
  const now = ref(Date.now())
  const timer = setInterval(() => {
    now.value = Date.now()
  }, intervalMs)
  onScopeDispose(() => clearInterval(timer))
  return readonly(now)
}
