import { onScopeDispose, readonly, ref, toValue, watch, type MaybeRefOrGetter, type Ref } from 'vue'

/**
 * The current time in ms, updated every `intervalMs` (for live clocks and countdowns). The
 * interval may be a ref or getter: when it changes, the clock ticks at the new rate from then
 * on (a countdown ticks faster near its end, for example).
 */
export function useNow(intervalMs: MaybeRefOrGetter<number> = 1000): Readonly<Ref<number>> {
  const now = ref(Date.now())
  let timer: ReturnType<typeof setInterval> | undefined
  watch(
    () => toValue(intervalMs),
    (ms) => {
      if (timer !== undefined) clearInterval(timer)
      timer = setInterval(() => {
        now.value = Date.now()
      }, ms)
    },
    { immediate: true },
  )
  onScopeDispose(() => clearInterval(timer))
  return readonly(now)
}
