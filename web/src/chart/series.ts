// The chart's data layer: columnar, append-only series that stay small and fast at tens of
// millions of points.
//
// * `IntColumn` holds step, tokens and wall-clock milliseconds. A chunk of 65,536 values
//   that follows an arithmetic progression (step + 1, tokens + tokens_per_step) is stored
//   as two numbers; otherwise as Int32 offsets from the chunk's first value (4 B/value),
//   and only values that do not fit that as Float64 (8 B/value). Exact in every case.
// * `ValueColumn` holds one y value per point (loss, EMA, lr, grad norm): Float32 while
//   every value is exactly a float32 (a trainer computing in f32 sends those), switched to
//   Float64 the first time one is not. Beside the values it keeps a min/max pyramid
//   (finite min, finite max and smallest positive value per block of 64 points, then per
//   2, 4, 8… blocks) that `range()` answers any [i, j) query from in O(log N), and sorted
//   lists of the indices of non-finite and non-positive values (for marks and notes).
//   The pyramid is brought up to date lazily: appending is O(1), and the next query
//   rebuilds only the tail that changed (O(new points + log N)). A bulk append writes the
//   finest level as it copies (a running min/max per block), leaving N/64 work to the query.
// * `PointSeries` ties an x per axis (step, tokens, time) to named value columns, and splits
//   the points into segments where the step goes backwards (a restart from an earlier
//   checkpoint): each segment is sorted on every x axis, so the visible window of a segment
//   is a binary search.
//
// Nothing here is reactive: the owner appends and then tells the chart (`invalidate()`).
// `version` changes on every mutation.

/** Finite minimum and maximum of some values. */
export interface Extent {
  min: number
  max: number
}

/** The x axes a point can be drawn against. */
export type XAxisKind = 'step' | 'tokens' | 'time'

/** Points per storage chunk (a power of two, a multiple of the pyramid's block). */
export const CHUNK_SIZE = 1 << 16
const CHUNK_SHIFT = 16
const CHUNK_MASK = CHUNK_SIZE - 1
/** Points per block of the pyramid's finest level. */
export const BLOCK_SIZE = 64
const BLOCK_SHIFT = 6
const BLOCK_MASK = BLOCK_SIZE - 1
/** `ValueColumn.blockHead`'s result: min, max, 1 if a value is not in (0, ∞). */
const BLOCK_HEAD = new Float64Array(3)

interface IntChunk {
  /** The chunk's first value. */
  base: number
  /** While `data` is null: the chunk is `base + j × delta`. */
  delta: number
  /** Values stored: offsets from `base` (Int32Array) or the values themselves (Float64Array). */
  data: Int32Array | Float64Array | null
}

/**
 * A column of integers (steps, token counts, milliseconds). Exact: a value that is not a
 * safe integer is stored as it is in a Float64 chunk. See the module comment for the storage.
 */
export class IntColumn {
  length = 0
  private chunks: IntChunk[] = []

  push(value: number): void {
    const i = this.length
    const j = i & CHUNK_MASK
    if (j === 0) {
      this.chunks.push({ base: value, delta: 0, data: null })
      this.length++
      return
    }
    const chunk = this.chunks[i >>> CHUNK_SHIFT]
    if (chunk.data === null) {
      if (j === 1) chunk.delta = value - chunk.base
      if (chunk.base + j * chunk.delta === value && Number.isFinite(chunk.delta)) {
        this.length++
        return
      }
      this.materialize(chunk, j)
    }
    this.store(chunk, j, value)
    this.length++
  }

  /**
   * Append `src[from..to)` in bulk: the same storage as `push` value by value, in tight
   * loops per chunk (an arithmetic progression is checked, not stored; otherwise Int32
   * offsets are written directly, and only a value that does not fit goes the slow way).
   */
  appendArray(src: ArrayLike<number>, from = 0, to = src.length): void {
    let k = from
    while (k < to) {
      let j = this.length & CHUNK_MASK
      const take = Math.min(to - k, CHUNK_SIZE - j)
      const end = k + take
      if (j === 0) this.chunks.push({ base: src[k], delta: 0, data: null })
      const chunk = this.chunks[this.chunks.length - 1]
      if (chunk.data === null) {
        let m = k
        if (j === 0) {
          m++
          j++
        }
        if (j === 1 && m < end) chunk.delta = src[m] - chunk.base
        const { base, delta } = chunk
        if (Number.isFinite(delta)) {
          while (m < end && base + j * delta === src[m]) {
            m++
            j++
          }
        }
        this.length += m - k
        k = m
        if (k === end) continue
        this.materialize(chunk, j)
      }
      const data = chunk.data
      const base = chunk.base
      if (data instanceof Int32Array && Number.isSafeInteger(base - 0x80000000) && Number.isSafeInteger(base + 0x7fffffff)) {
        let m = k
        for (; m < end; m++, j++) {
          const offset = src[m] - base
          if (offset !== (offset | 0)) break // not an integer, or outside Int32
          data[j] = offset
        }
        this.length += m - k
        k = m
      }
      for (; k < end; k++, j++) {
        this.store(chunk, j, src[k])
        this.length++
      }
    }
  }

  /** The value at index `i` (0 ≤ i < length). */
  get(i: number): number {
    const chunk = this.chunks[i >>> CHUNK_SHIFT]
    const j = i & CHUNK_MASK
    const data = chunk.data
    if (data === null) return chunk.base + j * chunk.delta
    return data instanceof Int32Array ? chunk.base + data[j] : data[j]
  }

  /** The last value, or NaN when empty. */
  last(): number {
    return this.length > 0 ? this.get(this.length - 1) : NaN
  }

  /**
   * First index in [lo, hi) whose value is >= `value`, for values sorted ascending there;
   * `hi` when none. Arithmetic in a progression chunk, a typed-array bisection otherwise.
   */
  lowerBound(value: number, lo: number, hi: number): number {
    while (lo < hi) {
      const k = lo >>> CHUNK_SHIFT
      const k0 = k << CHUNK_SHIFT
      const end = Math.min(hi, k0 + CHUNK_SIZE)
      if (this.get(end - 1) < value) {
        lo = end
        continue
      }
      const chunk = this.chunks[k]
      let a = lo - k0
      let b = end - k0 - 1 // get(b) >= value: the answer is in [a, b]
      const data = chunk.data
      if (data === null) {
        if (chunk.delta > 0) {
          let j = Math.ceil((value - chunk.base) / chunk.delta)
          j = Math.max(a, Math.min(b, j))
          while (j > a && chunk.base + (j - 1) * chunk.delta >= value) j--
          while (j < b && chunk.base + j * chunk.delta < value) j++
          return k0 + j
        }
        return lo // a constant run whose last value is >= value
      }
      if (data instanceof Int32Array) {
        const v = value - chunk.base
        while (a < b) {
          const m = (a + b) >>> 1
          if (data[m] < v) a = m + 1
          else b = m
        }
      } else {
        while (a < b) {
          const m = (a + b) >>> 1
          if (data[m] < value) a = m + 1
          else b = m
        }
      }
      return k0 + a
    }
    return hi
  }

  /** Bytes held by the column's arrays (for the memory figure). */
  bytes(): number {
    let n = 0
    for (const c of this.chunks) n += 24 + (c.data ? c.data.byteLength : 0)
    return n
  }

  clear(): void {
    this.chunks = []
    this.length = 0
  }

  /** Turn an arithmetic chunk holding `count` values into stored offsets (or values). */
  private materialize(chunk: IntChunk, count: number): void {
    const lastValue = chunk.base + (count - 1) * chunk.delta
    if (Number.isInteger(chunk.delta) && this.fitsOffsets(chunk, lastValue)) {
      const data = new Int32Array(CHUNK_SIZE)
      for (let j = 0; j < count; j++) data[j] = j * chunk.delta
      chunk.data = data
    } else {
      const data = new Float64Array(CHUNK_SIZE)
      for (let j = 0; j < count; j++) data[j] = j === 0 ? chunk.base : chunk.base + j * chunk.delta
      chunk.data = data
    }
  }

  /** Whether `value` can be kept as an Int32 offset from the chunk's base. */
  private fitsOffsets(chunk: IntChunk, value: number): boolean {
    const offset = value - chunk.base
    return Number.isSafeInteger(chunk.base) && Number.isSafeInteger(value) && offset >= -0x80000000 && offset <= 0x7fffffff
  }

  private store(chunk: IntChunk, j: number, value: number): void {
    let data = chunk.data as Int32Array | Float64Array
    if (data instanceof Int32Array) {
      if (this.fitsOffsets(chunk, value)) {
        data[j] = value - chunk.base
        return
      }
      // Int32 offsets → Float64 values, for a value that does not fit an offset.
      const wide = new Float64Array(CHUNK_SIZE)
      for (let k = 0; k < j; k++) wide[k] = chunk.base + data[k]
      chunk.data = data = wide
    }
    data[j] = value
  }
}

/** A growable Uint32 list (indices of notable points). */
export class IndexList {
  data = new Uint32Array(16)
  length = 0

  push(i: number): void {
    if (this.length === this.data.length) {
      const next = new Uint32Array(this.data.length * 2)
      next.set(this.data)
      this.data = next
    }
    this.data[this.length++] = i
  }

  /** How many entries lie in [i, j) (the list is sorted). */
  countIn(i: number, j: number): number {
    return lowerBoundArray(this.data, this.length, j) - lowerBoundArray(this.data, this.length, i)
  }

  /**
   * How many distinct indices in [i, j) the lists hold together (each list sorted): a merge
   * of their entries in the window, O(entries).
   */
  static countUnionIn(lists: readonly IndexList[], i: number, j: number): number {
    if (lists.length === 1) return lists[0].countIn(i, j)
    const at = lists.map((l) => l.lowerBound(i))
    const ends = lists.map((l) => l.lowerBound(j))
    let n = 0
    for (;;) {
      let next = Infinity
      for (let k = 0; k < lists.length; k++) if (at[k] < ends[k] && lists[k].data[at[k]] < next) next = lists[k].data[at[k]]
      if (next === Infinity) return n
      n++
      for (let k = 0; k < lists.length; k++) if (at[k] < ends[k] && lists[k].data[at[k]] === next) at[k]++
    }
  }

  /** First position whose entry is >= i. */
  lowerBound(i: number): number {
    return lowerBoundArray(this.data, this.length, i)
  }

  clear(): void {
    this.length = 0
  }
}

/**
 * Sorted, disjoint index ranges [start, end) built by appending indices in order: a run of
 * consecutive indices costs one range (a column that a trainer never reports is one range).
 */
export class RangeList {
  starts: number[] = []
  ends: number[] = []
  /** Number of indices held. */
  count = 0

  push(i: number): void {
    const n = this.ends.length
    if (n > 0 && this.ends[n - 1] === i) this.ends[n - 1] = i + 1
    else {
      this.starts.push(i)
      this.ends.push(i + 1)
    }
    this.count++
  }

  /** Add the indices [start, end) (start ≥ every index held). */
  pushRange(start: number, end: number): void {
    if (end <= start) return
    const n = this.ends.length
    if (n > 0 && this.ends[n - 1] === start) this.ends[n - 1] = end
    else {
      this.starts.push(start)
      this.ends.push(end)
    }
    this.count += end - start
  }

  /** Position of the first range whose end is > i (the range holding i, or the next one). */
  seek(i: number): number {
    let lo = 0
    let hi = this.ends.length
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      if (this.ends[mid] <= i) lo = mid + 1
      else hi = mid
    }
    return lo
  }

  clear(): void {
    this.starts = []
    this.ends = []
    this.count = 0
  }
}

/** Result of a range query: finite min and max, and the smallest value > 0 (for log axes). */
export interface RangeResult {
  min: number
  max: number
  minPositive: number
}

/** An empty result (min = +∞, max = −∞, minPositive = +∞). */
export function emptyRange(): RangeResult {
  return { min: Infinity, max: -Infinity, minPositive: Infinity }
}

/**
 * One y value per point, with the min/max pyramid (see the module comment).
 *
 * `lossy`: store every value as float32 (for derived values such as the EMA, where the
 * seventh significant digit does not matter); otherwise the column keeps values exactly.
 */
export class ValueColumn {
  length = 0
  /** Value chunks; null while every value in it is missing (not allocated). */
  /** @internal Value chunks (read by the fused EMA loop of another column). */
  chunks: (Float32Array | Float64Array | null)[] = []
  private wide = false
  private readonly lossy: boolean
  /** Indices of NaN and ±Infinity values that were reported as such. */
  readonly nonFinite = new IndexList()
  /** Points with no value at all (stored as NaN, drawn as gaps, not counted as NaN). */
  readonly missing = new RangeList()
  /** Indices of finite values ≤ 0 (left out on a log axis). */
  readonly nonPositive = new IndexList()
  /** Pyramid levels: per entry [min, max, minPositive] at 3k, 3k+1, 3k+2. */
  private levels: Float64Array[] = []
  private levelCounts: number[] = []
  /** Points covered by the pyramid as of the last rebuild. */
  private built = 0
  /**
   * Level-0 entries [0, blocksDone) are valid: written by `update()`, or by a bulk append as
   * it copies (each complete block of 64 values), so the first query builds only the upper
   * levels (N/64 work) instead of rescanning every value.
   */
  private blocksDone = 0

  constructor(options: { lossy?: boolean } = {}) {
    this.lossy = options.lossy ?? false
  }

  /** Append a value; `undefined` is a missing value (a gap, not a NaN). */
  push(value: number | undefined): void {
    const i = this.length
    const k = i >>> CHUNK_SHIFT
    if ((i & CHUNK_MASK) === 0) this.chunks.push(null)
    this.length++
    if (value === undefined) {
      this.missing.push(i)
      const chunk = this.chunks[k]
      if (chunk) chunk[i & CHUNK_MASK] = NaN
      return
    }
    if (!this.wide) {
      const f = Math.fround(value)
      if (this.lossy ? !float32Represents(f, value) : f !== value && value === value) this.widen()
      else value = f
    }
    let chunk = this.chunks[k]
    if (!chunk) {
      chunk = this.wide ? new Float64Array(CHUNK_SIZE) : new Float32Array(CHUNK_SIZE)
      chunk.fill(NaN, 0, i & CHUNK_MASK) // the missing values before this one
      this.chunks[k] = chunk
    }
    chunk[i & CHUNK_MASK] = value
    if (!(value > 0 && value < Infinity)) {
      if (value <= 0 && value > -Infinity) this.nonPositive.push(i)
      else this.nonFinite.push(i)
    }
  }

  /**
   * Append `src[from..to)` in bulk, the same as `push` value by value but in tight loops per
   * chunk: copy with the float32 check, then the extent and the NaN/≤ 0 lists. `missing`
   * (indexed like `src`, non-zero = no value) marks gaps; null when every value is there.
   */
  appendArray(src: ArrayLike<number>, from = 0, to = src.length, missing: ArrayLike<number> | null = null): void {
    let k = from
    while (k < to) {
      const i = this.length
      const j0 = i & CHUNK_MASK
      const take = Math.min(to - k, CHUNK_SIZE - j0)
      const end = k + take
      if (missing !== null) {
        let gaps = false
        for (let m = k; m < end; m++) if (missing[m]) gaps = true
        if (gaps) {
          for (let m = k; m < end; m++) this.push(missing[m] ? undefined : src[m])
          k = end
          continue
        }
      }
      if (j0 === 0) this.chunks.push(null)
      const ci = i >>> CHUNK_SHIFT
      let chunk = this.chunks[ci]
      if (!chunk) {
        chunk = this.wide ? new Float64Array(CHUNK_SIZE) : new Float32Array(CHUNK_SIZE)
        chunk.fill(NaN, 0, j0) // the missing values before these
        this.chunks[ci] = chunk
      }
      // Copy, noting NaN/±Infinity and values ≤ 0 (rare: one predictable test per value);
      // a float32 chunk checks each value against what it stored. Each complete block of 64
      // values gets its level-0 pyramid entry from a running min and max (`fuse`).
      let m = k
      let j = j0
      const nonFinite = this.nonFinite
      const nonPositive = this.nonPositive
      const at = i - j0 // index of chunk position 0
      const fuse = this.fuseFrom(i, i + take)
      const level = this.levels[0] // written only when fuse
      // Plain numbers (not destructured) so that the loop keeps them unboxed in registers.
      ValueColumn.blockHead(chunk, j0)
      let min = BLOCK_HEAD[0]
      let max = BLOCK_HEAD[1]
      let dirty = BLOCK_HEAD[2] !== 0
      if (chunk instanceof Float32Array) {
        if (this.lossy) {
          for (; m < end; m++, j++) {
            const v = src[m]
            chunk[j] = v
            const f = chunk[j]
            if (!(f > 0 && f < Infinity)) {
              // Overflow to ±Infinity or underflow: not representable (float32Represents).
              if (!float32Represents(f, v)) break
              if (f <= 0 && f > -Infinity) nonPositive.push(at + j)
              else nonFinite.push(at + j)
              dirty = true
            } else if (f !== v && !float32Represents(f, v)) break // a positive subnormal
            if (f < min) min = f
            if (f > max) max = f
            if ((j & BLOCK_MASK) === BLOCK_MASK && fuse) {
              const e3 = 3 * ((at + j) >>> BLOCK_SHIFT)
              if (dirty) this.rescanBlock(e3, chunk, j - BLOCK_MASK)
              else {
                level[e3] = min
                level[e3 + 1] = max
                level[e3 + 2] = min // no value ≤ 0: the smallest positive is the min
              }
              min = Infinity
              max = -Infinity
              dirty = false
            }
          }
        } else {
          for (; m < end; m++, j++) {
            const v = src[m]
            const f = Math.fround(v) // in a register: no store and reload to compare
            if (!(v > 0 && v < Infinity)) {
              if (f !== v && v === v) break
              if (v <= 0 && v > -Infinity) nonPositive.push(at + j)
              else nonFinite.push(at + j)
              dirty = true
            } else if (f !== v) break
            chunk[j] = f
            if (v < min) min = v
            if (v > max) max = v
            if ((j & BLOCK_MASK) === BLOCK_MASK && fuse) {
              const e3 = 3 * ((at + j) >>> BLOCK_SHIFT)
              if (dirty) this.rescanBlock(e3, chunk, j - BLOCK_MASK)
              else {
                level[e3] = min
                level[e3 + 1] = max
                level[e3 + 2] = min // no value ≤ 0: the smallest positive is the min
              }
              min = Infinity
              max = -Infinity
              dirty = false
            }
          }
        }
        if (m < end) {
          this.widen()
          chunk = this.chunks[ci] as Float64Array
        }
      }
      for (; m < end; m++, j++) {
        const v = src[m]
        chunk[j] = v
        if (!(v > 0 && v < Infinity)) {
          if (v <= 0 && v > -Infinity) nonPositive.push(at + j)
          else nonFinite.push(at + j)
          dirty = true
        }
        if (v < min) min = v
        if (v > max) max = v
        if ((j & BLOCK_MASK) === BLOCK_MASK && fuse) {
          const e3 = 3 * ((at + j) >>> BLOCK_SHIFT)
          if (dirty) this.rescanBlock(e3, chunk, j - BLOCK_MASK)
          else {
            level[e3] = min
            level[e3 + 1] = max
            level[e3 + 2] = min // no value ≤ 0: the smallest positive is the min
          }
          min = Infinity
          max = -Infinity
          dirty = false
        }
      }
      if (fuse) this.blocksDone = (at + j) >>> BLOCK_SHIFT
      this.length += take
      k = end
    }
  }

  /**
   * Append the debiased EMA (state `ema`, reset at every index of `restarts` from position
   * `r`) of `source`'s points [i0, i0 + count): one fused loop per chunk that computes, stores
   * as float32 and notes NaN/±Infinity and ≤ 0 values. It stops before the first value
   * float32 cannot represent, and does nothing for a wide column or a source with gaps;
   * returns how many points it appended (the caller does the rest the general way), with
   * `ema` updated to match.
   */
  appendEmaOf(source: ValueColumn, i0: number, count: number, ema: DebiasedEma, restarts: IndexList, r: number): number {
    if (this.wide || source.missing.count > 0 || this.length !== i0 || source.length < i0 + count) return 0
    const w = ema.weight
    const c = 1 - w
    let last = ema.last
    let pow = ema.weightPow
    while (r < restarts.length && restarts.data[r] < i0) r++
    let nextRestart = r < restarts.length ? restarts.data[r] : -1
    const nonFinite = this.nonFinite
    const nonPositive = this.nonPositive
    let i = i0
    const end = i0 + count
    let stopped = false
    while (i < end && !stopped) {
      const j0 = i & CHUNK_MASK
      const take = Math.min(end - i, CHUNK_SIZE - j0)
      const ci = i >>> CHUNK_SHIFT
      if (j0 === 0) this.chunks.push(null)
      let chunk = this.chunks[ci]
      if (!chunk) {
        chunk = new Float32Array(CHUNK_SIZE)
        chunk.fill(NaN, 0, j0)
        this.chunks[ci] = chunk
      }
      const src = source.chunks[ci]
      const at = ci << CHUNK_SHIFT
      let j = j0
      if (src) {
        // Level-0 pyramid entries as it goes, as in appendArray.
        const fuse = this.fuseFrom(i, i + take)
        const level = this.levels[0] // written only when fuse
        // Plain numbers (not destructured) so that the loop keeps them unboxed in registers.
        ValueColumn.blockHead(chunk, j0)
        let min = BLOCK_HEAD[0]
        let max = BLOCK_HEAD[1]
        let dirty = BLOCK_HEAD[2] !== 0
        const e = j0 + take
        while (j < e && !stopped) {
          if (at + j === nextRestart) {
            // A restart: the average starts afresh. (Stopping right here leaves `ema` reset,
            // which the general way redoes at this index anyway.)
            last = 0
            pow = 1
            r++
            nextRestart = r < restarts.length ? restarts.data[r] : -1
          }
          // Up to the next restart in this chunk, no restart test per value.
          const stop = nextRestart > at + j && nextRestart < at + e ? nextRestart - at : e
          for (; j < stop; j++) {
            const lastBefore = last
            const powBefore = pow
            const y = src[j]
            let v = y // NaN and ±Infinity pass through
            if (y - y === 0) {
              last = last * w + c * y
              // pow = 0 once 1 − wⁿ is exactly 1 in f64 (DebiasedEma.next): v = last / 1.
              if (pow === 0) v = last
              else {
                pow *= w
                const debias = 1 - pow
                if (debias === 1) pow = 0
                v = debias > 0 ? last / debias : y
              }
            }
            chunk[j] = v
            const f = chunk[j]
            if (!(f >= FLOAT32_MIN_NORMAL && f < Infinity)) {
              if (!float32Represents(f, v)) {
                last = lastBefore
                pow = powBefore
                stopped = true
                break
              }
              if (f <= 0 && f > -Infinity) {
                nonPositive.push(at + j)
                dirty = true
              } else if (!(f > 0 && f < Infinity)) {
                nonFinite.push(at + j)
                dirty = true
              }
            }
            if (f < min) min = f
            if (f > max) max = f
            if ((j & BLOCK_MASK) === BLOCK_MASK && fuse) {
              const e3 = 3 * ((at + j) >>> BLOCK_SHIFT)
              if (dirty) this.rescanBlock(e3, chunk, j - BLOCK_MASK)
              else {
                level[e3] = min
                level[e3 + 1] = max
                level[e3 + 2] = min // no value ≤ 0: the smallest positive is the min
              }
              min = Infinity
              max = -Infinity
              dirty = false
            }
          }
        }
        if (fuse) this.blocksDone = (at + j) >>> BLOCK_SHIFT
      } else if (j0 === 0) {
        this.chunks[ci] = null // cannot happen without gaps; kept consistent anyway
        j = j0 + take
      }
      this.length += j - j0
      i += j - j0
    }
    ema.last = last
    ema.weightPow = pow
    return i - i0
  }

  /** Append `count` points with no value (gaps). */
  appendMissing(count: number): void {
    const start = this.length
    let i = start
    while (i < start + count) {
      const j0 = i & CHUNK_MASK
      const take = Math.min(start + count - i, CHUNK_SIZE - j0)
      if (j0 === 0) this.chunks.push(null)
      this.chunks[i >>> CHUNK_SHIFT]?.fill(NaN, j0, j0 + take)
      i += take
    }
    this.missing.pushRange(start, start + count)
    this.length += count
  }

  /** The storage chunk holding index i (null while all its values are missing). */
  chunkAt(i: number): Float32Array | Float64Array | null {
    return this.chunks[i >>> CHUNK_SHIFT] ?? null
  }

  /** The value at index i, as stored. */
  get(i: number): number {
    const chunk = this.chunks[i >>> CHUNK_SHIFT]
    return chunk ? chunk[i & CHUNK_MASK] : NaN
  }

  last(): number {
    return this.length > 0 ? this.get(this.length - 1) : NaN
  }

  /** Whether point i has no value (O(log ranges)). */
  isMissing(i: number): boolean {
    const m = this.missing
    if (m.count === 0) return false
    const p = m.seek(i)
    return p < m.starts.length && m.starts[p] <= i
  }

  /** Whether values are kept as Float64 (some value was not exactly a float32). */
  isWide(): boolean {
    return this.wide
  }

  /** Finite extent of every value (O(log N) from the pyramid); `null` when there is none. */
  extent(): Extent | null {
    const r = this.range(0, this.length, emptyRange())
    return r.min <= r.max ? { min: r.min, max: r.max } : null
  }

  /** Smallest positive value of the column, +∞ when there is none. */
  minPositive(): number {
    return this.range(0, this.length, emptyRange()).minPositive
  }

  /** Remove every value (the EMA column is cleared and refilled when its weight changes). */
  clear(): void {
    this.chunks = []
    this.length = 0
    this.wide = false
    this.nonFinite.clear()
    this.nonPositive.clear()
    this.missing.clear()
    this.levels = []
    this.levelCounts = []
    this.built = 0
    this.blocksDone = 0
  }

  /**
   * Replace every value in place by `next(value of source at i)` for i in order (the EMA
   * when its weight changes): O(N) with no reallocation; missing values stay missing.
   * `reset()` is called at each restart index (the EMA starts afresh there).
   */
  rewriteFrom(source: ValueColumn, next: (v: number) => number, restarts: IndexList, reset: () => void): void {
    if (this.wide) {
      // Narrow again: the new values may all be float32 (widened below if not).
      this.wide = false
      this.chunks = this.chunks.map((c) => (c ? Float32Array.from(c) : null))
    }
    this.nonFinite.clear()
    this.nonPositive.clear()
    this.built = 0
    this.blocksDone = 0
    let r = 0
    for (let k = 0; k < this.chunks.length; k++) {
      let chunk = this.chunks[k]
      if (!chunk) continue
      const k0 = k << CHUNK_SHIFT
      const end = Math.min(CHUNK_SIZE, this.length - k0)
      for (let j = 0; j < end; j++) {
        const i = k0 + j
        while (r < restarts.length && restarts.data[r] <= i) {
          if (restarts.data[r] === i) reset()
          r++
        }
        const y = source.get(i)
        if (y !== y && source.isMissing(i)) {
          chunk[j] = NaN
          continue
        }
        const exact = next(y)
        chunk[j] = exact
        if (!this.wide && !float32Represents(chunk[j], exact)) {
          this.widen()
          chunk = this.chunks[k] as Float64Array
          chunk[j] = exact
        }
        const v = chunk[j] // as stored (a Float32 chunk rounds)
        if (!(v > 0 && v < Infinity)) {
          if (v <= 0 && v > -Infinity) this.nonPositive.push(i)
          else this.nonFinite.push(i)
        }
      }
    }
  }

  /** Bytes held by the values, the pyramid and the index lists. */
  bytes(): number {
    let n = 0
    for (const c of this.chunks) n += c ? c.byteLength : 0
    n += 16 * this.missing.starts.length
    for (const l of this.levels) n += l.byteLength
    return n + this.nonFinite.data.byteLength + this.nonPositive.data.byteLength
  }

  /**
   * Finite min, max and smallest positive value of points [i, j), into `out` (which is
   * reset first). O(log N) from the pyramid plus at most two partial blocks.
   */
  range(i: number, j: number, out: RangeResult): RangeResult {
    out.min = Infinity
    out.max = -Infinity
    out.minPositive = Infinity
    if (i < 0) i = 0
    if (j > this.length) j = this.length
    if (j <= i) return out
    if (j - i <= 2 * BLOCK_SIZE) {
      this.scan(i, j, out)
      return out
    }
    this.update()
    let lo = (i + BLOCK_SIZE - 1) >>> BLOCK_SHIFT
    let hi = j >>> BLOCK_SHIFT
    this.scan(i, lo << BLOCK_SHIFT, out)
    this.scan(hi << BLOCK_SHIFT, j, out)
    let level = 0
    while (lo < hi) {
      const l = this.levels[level]
      if (lo & 1) this.take(l, lo++, out)
      if (hi & 1) this.take(l, --hi, out)
      lo >>>= 1
      hi >>>= 1
      level++
    }
    return out
  }

  private take(level: Float64Array, k: number, out: RangeResult): void {
    const a = level[3 * k]
    const b = level[3 * k + 1]
    const c = level[3 * k + 2]
    if (a < out.min) out.min = a
    if (b > out.max) out.max = b
    if (c < out.minPositive) out.minPositive = c
  }

  /** Direct scan of [i, j); callers keep it within one chunk or call per chunk. */
  private scan(i: number, j: number, out: RangeResult): void {
    while (i < j) {
      const chunk = this.chunks[i >>> CHUNK_SHIFT]
      const base = i & ~CHUNK_MASK
      const end = Math.min(j, base + CHUNK_SIZE)
      if (!chunk) {
        i = end
        continue
      }
      let min = out.min
      let max = out.max
      let minPositive = out.minPositive
      for (let k = i - base, e = end - base; k < e; k++) {
        const v = chunk[k]
        // NaN fails every comparison; ±Infinity are excluded explicitly.
        if (v < min && v !== -Infinity) min = v
        if (v > max && v !== Infinity) max = v
        if (v > 0 && v < minPositive) minPositive = v
      }
      out.min = min
      out.max = max
      out.minPositive = minPositive
      i = end
    }
  }

  /** Bring the pyramid up to date with the appended points: O(new points + log N). */
  update(): void {
    if (this.built === this.length) return
    const blocks = (this.length + BLOCK_SIZE - 1) >>> BLOCK_SHIFT
    let from = this.built >>> BLOCK_SHIFT // the first block that changed
    let count = blocks
    for (let level = 0; count > 0; level++) {
      let l = this.levels[level]
      if (!l || l.length < 3 * count) {
        const next = new Float64Array(3 * Math.max(count, Math.ceil((l ? l.length / 3 : 4) * 1.5)))
        if (l) next.set(l)
        l = next
        this.levels[level] = l
      }
      if (level === 0) {
        // Blocks never straddle chunks (CHUNK_SIZE is a multiple of BLOCK_SIZE). A block
        // with no NaN/±Infinity, no value ≤ 0 and no gap (the common case, known from the
        // sorted lists) needs only min and max; minPositive is its min.
        const nf = this.nonFinite
        const np = this.nonPositive
        const first = Math.max(from, this.blocksDone) // entries before it are valid
        let nfAt = nf.lowerBound(first << BLOCK_SHIFT)
        let npAt = np.lowerBound(first << BLOCK_SHIFT)
        const gaps = this.missing.count > 0
        for (let k = first; k < count; k++) {
          const start = k << BLOCK_SHIFT
          const end = Math.min(this.length, start + BLOCK_SIZE)
          const chunk = this.chunks[start >>> CHUNK_SHIFT]
          let min = Infinity
          let max = -Infinity
          let minPositive = Infinity
          let clean = !gaps
          while (nfAt < nf.length && nf.data[nfAt] < end) {
            nfAt++
            clean = false
          }
          while (npAt < np.length && np.data[npAt] < end) {
            npAt++
            clean = false
          }
          if (chunk) {
            const a = start & CHUNK_MASK
            const e = a + (end - start)
            if (clean) {
              min = max = chunk[a]
              for (let jj = a + 1; jj < e; jj++) {
                const v = chunk[jj]
                if (v < min) min = v
                if (v > max) max = v
              }
              minPositive = min
            } else {
              for (let jj = a; jj < e; jj++) {
                const v = chunk[jj]
                // NaN fails every comparison; ±Infinity are excluded explicitly.
                if (v < min && v !== -Infinity) min = v
                if (v > max && v !== Infinity) max = v
                if (v > 0 && v < minPositive) minPositive = v
              }
            }
          }
          l[3 * k] = min
          l[3 * k + 1] = max
          l[3 * k + 2] = minPositive
        }
      } else {
        const below = this.levels[level - 1]
        const belowCount = this.levelCounts[level - 1]
        for (let k = from; k < count; k++) {
          const a = 6 * k // entry 2k of the level below
          let min = below[a]
          let max = below[a + 1]
          let minPositive = below[a + 2]
          if (2 * k + 1 < belowCount) {
            if (below[a + 3] < min) min = below[a + 3]
            if (below[a + 4] > max) max = below[a + 4]
            if (below[a + 5] < minPositive) minPositive = below[a + 5]
          }
          l[3 * k] = min
          l[3 * k + 1] = max
          l[3 * k + 2] = minPositive
        }
      }
      this.levelCounts[level] = count
      if (count === 1) break
      from >>>= 1
      count = (count + 1) >>> 1
    }
    this.built = this.length
    this.blocksDone = this.length >>> BLOCK_SHIFT
  }

  /**
   * Size the pyramid's finest level for `points` points in all (a bulk load knows its size:
   * one allocation of the exact size instead of growing as it goes).
   */
  reserve(points: number): void {
    const need = 3 * ((points + BLOCK_SIZE - 1) >>> BLOCK_SHIFT)
    const l = this.levels[0]
    if (l && l.length >= need) return
    const next = new Float64Array(need)
    if (l) next.set(l)
    this.levels[0] = next
  }

  /**
   * Whether a bulk append starting at point `i` can write level-0 entries as it copies
   * (every entry before i's block is valid); grows level 0 to hold the blocks up to `end`.
   */
  private fuseFrom(i: number, end: number): boolean {
    if (this.blocksDone !== i >>> BLOCK_SHIFT) return false
    const need = 3 * ((end + BLOCK_SIZE - 1) >>> BLOCK_SHIFT)
    const l = this.levels[0]
    if (!l || l.length < need) {
      const next = new Float64Array(Math.max(need, 3 * Math.ceil((l ? l.length / 3 : 4) * 1.5)))
      if (l) next.set(l)
      this.levels[0] = next
    }
    return true
  }

  /**
   * Level-0 entry at `e3` (= 3 × block index) for the complete block of `chunk` at position
   * `a` that holds a NaN, ±Infinity or a value ≤ 0: min, max and smallest positive value the
   * exact way (a copy loop writes the entries of the other blocks from its running min/max).
   */
  private rescanBlock(e3: number, chunk: Float32Array | Float64Array, a: number): void {
    let min = Infinity
    let max = -Infinity
    let minPositive = Infinity
    for (let j = a, e = a + BLOCK_SIZE; j < e; j++) {
      const v = chunk[j]
      if (v < min && v !== -Infinity) min = v
      if (v > max && v !== Infinity) max = v
      if (v > 0 && v < minPositive) minPositive = v
    }
    const l = this.levels[0]
    l[e3] = min
    l[e3 + 1] = max
    l[e3 + 2] = minPositive
  }

  /**
   * The running state of the block a bulk append enters at position `j` of `chunk`, into
   * `BLOCK_HEAD`: min and max of the values already there, 1 if one is not in (0, ∞).
   */
  private static blockHead(chunk: Float32Array | Float64Array, j: number): void {
    let min = Infinity
    let max = -Infinity
    let dirty = 0
    for (let a = j & ~BLOCK_MASK; a < j; a++) {
      const v = chunk[a]
      if (!(v > 0 && v < Infinity)) dirty = 1
      if (v < min) min = v
      if (v > max) max = v
    }
    BLOCK_HEAD[0] = min
    BLOCK_HEAD[1] = max
    BLOCK_HEAD[2] = dirty
  }


  private widen(): void {
    this.wide = true
    this.chunks = this.chunks.map((c) => (c ? Float64Array.from(c) : null))
  }
}

/** The smallest normal float32: from it up to the largest, float32 rounds within 2⁻²⁴. */
const FLOAT32_MIN_NORMAL = 1.1754943508222875e-38

/** 2⁻²³: the relative rounding error of float32 is at most half of it. */
const FLOAT32_EPSILON = 2 ** -23

/**
 * Whether `f` (= Math.fround(v)) stands for `v` within float32's rounding: false when `v`
 * overflows to ±Infinity or underflows (to 0 or a subnormal). NaN and ±Infinity are
 * represented by themselves.
 */
export function float32Represents(f: number, v: number): boolean {
  return !(Math.abs(f - v) > Math.abs(v) * FLOAT32_EPSILON)
}

/**
 * The debiased exponential moving average of TensorBoard's scalar dashboard
 * (tensorboard/plugins/scalar/vz_line_chart2, "smoothing"):
 *
 *     last = last × w + (1 − w) × y;  n += 1;  smoothed = last / (1 − wⁿ)
 *
 * over the finite values only (a non-finite value is passed through and does not move the
 * average). Dividing by 1 − wⁿ removes the bias towards the initial 0, so the first smoothed
 * value is the first value itself. `w` is in [0, 1); w = 0 is no smoothing.
 */
export class DebiasedEma {
  /** The biased average so far (`last` above). */
  last = 0
  /**
   * wⁿ for the n finite values so far; 0 from the first n where 1 − wⁿ rounds to exactly 1
   * in f64 (wⁿ ≤ 2⁻⁵⁴, n ≥ 74 at w = 0.6): dividing by 1 changes nothing, so the smoothed
   * value is `last` from there on, bit for bit the same as dividing.
   */
  weightPow = 1
  constructor(readonly weight: number) {}

  reset(): void {
    this.last = 0
    this.weightPow = 1
  }

  next(y: number): number {
    if (!Number.isFinite(y)) return y
    const w = this.weight
    this.last = this.last * w + (1 - w) * y
    if (this.weightPow === 0) return this.last
    this.weightPow *= w
    const debias = 1 - this.weightPow
    if (debias === 1) this.weightPow = 0
    return debias > 0 ? this.last / debias : y
  }
}

/** Options of a `PointSeries`. */
export interface PointSeriesOptions {
  /** Names of the value columns, e.g. ['loss', 'lr', 'grad_norm']. */
  values: string[]
  /** Columns kept as float32 whatever their values (display-only figures such as lr). */
  lossy?: string[]
  /** EMA columns: `{ name: 'loss_ema', of: 'loss' }`, recomputed by `setSmoothing`. */
  smoothed?: { name: string; of: string }[]
  /** Initial EMA weight (TensorBoard's default is 0.6). */
  smoothing?: number
}

/** One point to append: the x of each axis and a value per column (missing → NaN). */
export interface PointInput {
  step: number
  /** Tokens trained at this point; NaN when unknown. */
  tokens: number
  /** Wall-clock time, seconds since the Unix epoch (kept to the millisecond). */
  timeSecs: number
  values: Record<string, number | undefined>
}

/**
 * Points to append in bulk, as columns (typed arrays or plain arrays of equal length): the
 * fast way to load a history (`PointSeries.appendColumns`).
 */
export interface ColumnarInput {
  step: ArrayLike<number>
  /** Tokens trained at each point; NaN where unknown; omitted: all unknown. */
  tokens?: ArrayLike<number>
  /** Wall-clock time, seconds since the Unix epoch. */
  timeSecs: ArrayLike<number>
  /** Per raw value column; a column left out has no value at these points (a gap). */
  values: Record<string, ArrayLike<number> | undefined>
  /** Per raw value column: non-zero where the point has no value (a gap, not a NaN). */
  missing?: Record<string, ArrayLike<number> | undefined>
}

/** Points per slice of a bulk append (scratch arrays stay small and cache-resident). */
const BULK_SLICE = CHUNK_SIZE

/**
 * A series of points (a run's steps or evals): x per axis, named value columns, segments.
 *
 * A new segment starts where the step, the token count or the time goes backwards (the run
 * was restarted from an earlier checkpoint): nothing is dropped, each segment is sorted on
 * every axis, and the chart breaks the line and marks the restart there.
 */
export class PointSeries {
  readonly step = new IntColumn()
  readonly tokens = new IntColumn()
  /** Wall-clock time in milliseconds since the Unix epoch. */
  readonly timeMs = new IntColumn()
  readonly columns = new Map<string, ValueColumn>()
  /** Start index of every segment after the first (restarts), ascending. */
  readonly restarts = new IndexList()
  length = 0
  /** Bumped on every change. */
  version = 0
  /** Bumped when existing values change (smoothing recomputed, cleared): caches restart. */
  rewrites = 0
  private readonly smoothed: { name: string; of: string; ema: DebiasedEma; source: ValueColumn; target: ValueColumn }[]
  private readonly raw: [string, ValueColumn][]
  private smoothingWeight: number
  private lastStep = NaN
  private lastTokens = NaN
  private lastTimeMs = NaN

  constructor(options: PointSeriesOptions) {
    for (const name of options.values) this.columns.set(name, new ValueColumn({ lossy: options.lossy?.includes(name) }))
    this.raw = [...this.columns]
    this.smoothingWeight = clampWeight(options.smoothing ?? 0.6)
    this.smoothed = (options.smoothed ?? []).map((s) => {
      const source = this.column(s.of)
      const target = new ValueColumn({ lossy: true })
      this.columns.set(s.name, target)
      return { ...s, ema: new DebiasedEma(this.smoothingWeight), source, target }
    })
  }

  /** The column `name`; throws for a name the series was not made with. */
  column(name: string): ValueColumn {
    const c = this.columns.get(name)
    if (!c) throw new Error(`series has no column "${name}" (has: ${[...this.columns.keys()].join(', ')})`)
    return c
  }

  /**
   * The raw column whose points `name` shows: `of` for a smoothed column (the EMA of loss
   * is loss's points), `name` itself otherwise. Counts of notable points go by it, so a NaN
   * shown by both the loss and its EMA is one NaN.
   */
  sourceOf(name: string): string {
    return this.smoothed.find((s) => s.name === name)?.of ?? name
  }

  /** The x axis column for `kind`. */
  x(kind: XAxisKind): IntColumn {
    return kind === 'step' ? this.step : kind === 'tokens' ? this.tokens : this.timeMs
  }

  /** x of point i in the units shown: steps, tokens, or seconds since the epoch. */
  xAt(kind: XAxisKind, i: number): number {
    return kind === 'time' ? this.timeMs.get(i) / 1000 : this.x(kind).get(i)
  }

  push(point: PointInput): void {
    const i = this.length
    const timeMs = Math.round(point.timeSecs * 1000)
    // NaN compares false: an unknown x never starts a segment.
    if (point.step < this.lastStep || point.tokens < this.lastTokens || timeMs < this.lastTimeMs) {
      this.restarts.push(i)
      for (const s of this.smoothed) s.ema.reset()
    }
    this.lastStep = point.step
    this.lastTokens = point.tokens
    this.lastTimeMs = timeMs
    this.step.push(point.step)
    this.tokens.push(point.tokens)
    this.timeMs.push(timeMs)
    for (const [name, column] of this.raw) {
      const v = point.values[name]
      column.push(typeof v === 'number' ? v : undefined)
    }
    for (const s of this.smoothed) {
      const y = s.source.get(i)
      s.target.push(y !== y && s.source.isMissing(i) ? undefined : s.ema.next(y))
    }
    this.length++
    this.version++
  }

  /**
   * Append points given as columns: the same result as `push` point by point, in tight
   * loops over typed arrays (restarts, the x columns, each value column with its extent,
   * the EMA), slice by slice. Loading a history this way costs a few ns per point.
   * Throws (appending nothing) when the columns' lengths differ.
   */
  appendColumns(input: ColumnarInput): void {
    const n = input.step.length
    const check = (what: string, a: ArrayLike<number> | undefined) => {
      if (a !== undefined && a.length !== n) throw new Error(`appendColumns: ${what} has ${a.length} values, step has ${n}`)
    }
    check('tokens', input.tokens)
    check('timeSecs', input.timeSecs)
    for (const [name, a] of Object.entries(input.values)) {
      this.column(name)
      check(`values.${name}`, a)
    }
    for (const [name, a] of Object.entries(input.missing ?? {})) check(`missing.${name}`, a)
    if (n === 0) return
    for (const c of this.columns.values()) c.reserve(this.length + n)
    const timeMs = new Float64Array(Math.min(n, BULK_SLICE))
    const tokensNone = input.tokens === undefined ? new Float64Array(timeMs.length).fill(NaN) : null
    const ema = new Float64Array(timeMs.length)
    for (let from = 0; from < n; from += BULK_SLICE) {
      const to = Math.min(n, from + BULK_SLICE)
      const i0 = this.length
      const { step, timeSecs } = input
      const firstRestart = this.restarts.length
      this.scanSlice(step, input.tokens ?? tokensNone!, input.tokens ? from : 0, timeSecs, from, to, timeMs)
      this.step.appendArray(step, from, to)
      if (input.tokens) this.tokens.appendArray(input.tokens, from, to)
      else this.tokens.appendArray(tokensNone!, 0, to - from)
      this.timeMs.appendArray(timeMs, 0, to - from)
      for (const [name, column] of this.raw) {
        const values = input.values[name]
        if (values === undefined) {
          column.appendMissing(to - from)
          continue
        }
        const missing = input.missing?.[name]
        column.appendArray(values, from, to, missing ?? null)
      }
      for (const s of this.smoothed) this.appendEma(s, i0, to - from, firstRestart, ema)
      this.length += to - from
    }
    this.version++
  }

  /**
   * Restarts (a step, token count or clock going back) among points `from..to` of a bulk
   * append, and their time in ms into `timeMs[0..)`; `tokens` is read from `tokensFrom`.
   * A method of its own (a small, hot function) so that the engine optimizes it early.
   */
  private scanSlice(step: ArrayLike<number>, tokens: ArrayLike<number>, tokensFrom: number, timeSecs: ArrayLike<number>, from: number, to: number, timeMs: Float64Array): void {
    const i0 = this.length - from
    const shift = tokensFrom - from
    let lastStep = this.lastStep
    let lastTokens = this.lastTokens
    let lastTimeMs = this.lastTimeMs
    for (let k = from; k < to; k++) {
      const s = step[k]
      const t = tokens[k + shift]
      const ms = Math.round(timeSecs[k] * 1000)
      timeMs[k - from] = ms
      if (s < lastStep || t < lastTokens || ms < lastTimeMs) this.restarts.push(i0 + k)
      lastStep = s
      lastTokens = t
      lastTimeMs = ms
    }
    this.lastStep = lastStep
    this.lastTokens = lastTokens
    this.lastTimeMs = lastTimeMs
  }

  /** The EMA of `s.source` over points [i0, i0 + count) into `s.target` (restarts reset it). */
  private appendEma(s: PointSeries['smoothed'][number], i0: number, count: number, firstRestart: number, out: Float64Array): void {
    const { source, target, ema } = s
    const done = target.appendEmaOf(source, i0, count, ema, this.restarts, firstRestart)
    if (done === count) return
    // The general way (a source with gaps, a value float32 cannot hold): compute, then append.
    i0 += done
    count -= done
    while (firstRestart < this.restarts.length && this.restarts.data[firstRestart] < i0) firstRestart++
    const w = ema.weight
    const c = 1 - w
    let last = ema.last
    let pow = ema.weightPow
    let r = firstRestart
    let nextRestart = r < this.restarts.length ? this.restarts.data[r] : -1
    let i = i0
    while (i < i0 + count) {
      const chunk = source.chunkAt(i)
      const j0 = i & CHUNK_MASK
      const take = Math.min(i0 + count - i, CHUNK_SIZE - j0)
      const o = i - i0
      if (chunk === null) {
        out.fill(NaN, o, o + take)
      } else {
        for (let j = j0, m = o, e = j0 + take; j < e; j++, m++) {
          if (i0 + m === nextRestart) {
            last = 0
            pow = 1
            r++
            nextRestart = r < this.restarts.length ? this.restarts.data[r] : -1
          }
          const y = chunk[j]
          if (y - y === 0) {
            last = last * w + c * y
            if (pow === 0) out[m] = last // 1 − wⁿ is 1 in f64: no bias left (DebiasedEma.next)
            else {
              pow *= w
              const debias = 1 - pow
              if (debias === 1) pow = 0
              out[m] = debias > 0 ? last / debias : y
            }
          } else out[m] = y // NaN and ±Infinity pass through
        }
      }
      i += take
    }
    ema.last = last
    ema.weightPow = pow
    let missing: Uint8Array | null = null
    if (source.missing.count > 0) {
      missing = new Uint8Array(count)
      for (let k = 0; k < count; k++) if (source.isMissing(i0 + k)) missing[k] = 1
    }
    target.appendArray(out, 0, count, missing)
  }

  /** Every step as a plain array (for tests and debugging: O(N)). */
  stepArray(): number[] {
    return Array.from({ length: this.length }, (_, i) => this.step.get(i))
  }

  /** Every value of column `name` as a plain array (for tests and debugging: O(N)). */
  valueArray(name: string): number[] {
    const c = this.column(name)
    return Array.from({ length: this.length }, (_, i) => c.get(i))
  }

  /** The segments as [start, end) index pairs, in order. */
  segments(): [number, number][] {
    const out: [number, number][] = []
    let start = 0
    for (let k = 0; k < this.restarts.length; k++) {
      out.push([start, this.restarts.data[k]])
      start = this.restarts.data[k]
    }
    if (this.length > start) out.push([start, this.length])
    return out
  }

  /** Current EMA weight. */
  smoothing(): number {
    return this.smoothingWeight
  }

  /** Set the EMA weight (clamped to [0, 0.999]) and recompute the smoothed columns: O(N). */
  setSmoothing(weight: number): void {
    const w = clampWeight(weight)
    if (w === this.smoothingWeight) return
    this.smoothingWeight = w
    this.rewrites++
    for (const s of this.smoothed) {
      const ema = new DebiasedEma(w)
      s.ema = ema
      s.target.rewriteFrom(s.source, (v) => ema.next(v), this.restarts, () => ema.reset())
    }
    this.version++
  }

  clear(): void {
    this.step.clear()
    this.tokens.clear()
    this.timeMs.clear()
    for (const c of this.columns.values()) c.clear()
    for (const s of this.smoothed) s.ema.reset()
    this.restarts.clear()
    this.length = 0
    this.lastStep = this.lastTokens = this.lastTimeMs = NaN
    this.version++
    this.rewrites++
  }

  /** Bytes held by all columns (x axes, values, pyramids, index lists). */
  bytes(): number {
    let n = this.step.bytes() + this.tokens.bytes() + this.timeMs.bytes() + this.restarts.data.byteLength
    for (const c of this.columns.values()) n += c.bytes()
    return n
  }

  /**
   * Index range [i, j) of segment [start, end) whose x on `kind` lies in [x0, x1]
   * (binary searches; x is sorted within a segment).
   */
  window(kind: XAxisKind, start: number, end: number, x0: number, x1: number): [number, number] {
    return [this.lowerBound(kind, start, end, x0), this.upperBound(kind, start, end, x1)]
  }

  /** First index in [start, end) whose x on `kind` is >= value. */
  lowerBound(kind: XAxisKind, start: number, end: number, value: number): number {
    return this.x(kind).lowerBound(kind === 'time' ? value * 1000 : value, start, end)
  }

  /** First index in [start, end) whose x on `kind` is > value. */
  upperBound(kind: XAxisKind, start: number, end: number, value: number): number {
    const col = this.x(kind)
    const v = kind === 'time' ? value * 1000 : value
    let lo = start
    let hi = end
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      if (col.get(mid) <= v) lo = mid + 1
      else hi = mid
    }
    return lo
  }

  /** Extent of x on `kind` over all points (first/last of each segment); null when empty. */
  xExtent(kind: XAxisKind): Extent | null {
    let min = Infinity
    let max = -Infinity
    for (const [s, e] of this.segments()) {
      const a = this.xAt(kind, s)
      const b = this.xAt(kind, e - 1)
      if (a < min) min = a
      if (b > max) max = b
    }
    return min <= max ? { min, max } : null
  }

  /**
   * The point nearest to x on `kind`, preferring the latest segment that covers x (after a
   * restart the new points supersede the old ones); -1 when empty.
   */
  nearest(kind: XAxisKind, x: number): number {
    const segs = this.segments()
    let best = -1
    let bestDist = Infinity
    for (let k = segs.length - 1; k >= 0; k--) {
      const [s, e] = segs[k]
      const i = this.lowerBound(kind, s, e, x)
      for (const c of [i - 1, i]) {
        if (c < s || c >= e) continue
        const d = Math.abs(this.xAt(kind, c) - x)
        if (d < bestDist) {
          bestDist = d
          best = c
        }
      }
      const a = this.xAt(kind, s)
      const b = this.xAt(kind, e - 1)
      if (x >= a && x <= b) return best
    }
    return best
  }
}

function clampWeight(w: number): number {
  if (!Number.isFinite(w)) return 0
  return Math.min(0.999, Math.max(0, w))
}

/** First index in sorted `xs[0..length)` whose value is >= `value` (binary search). */
export function lowerBoundArray(xs: ArrayLike<number>, length: number, value: number): number {
  let lo = 0
  let hi = length
  while (lo < hi) {
    const mid = (lo + hi) >>> 1
    if (xs[mid] < value) lo = mid + 1
    else hi = mid
  }
  return lo
}
