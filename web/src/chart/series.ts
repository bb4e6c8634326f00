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
//   rebuilds only the tail that changed (O(new points + log N)).
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
  private chunks: (Float32Array | Float64Array | null)[] = []
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
  private minAll = Infinity
  private maxAll = -Infinity
  private minPositiveAll = Infinity

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
    if (this.lossy) value = Math.fround(value)
    else if (!this.wide && Math.fround(value) !== value && !Number.isNaN(value)) this.widen()
    let chunk = this.chunks[k]
    if (!chunk) {
      chunk = this.wide ? new Float64Array(CHUNK_SIZE) : new Float32Array(CHUNK_SIZE)
      chunk.fill(NaN, 0, i & CHUNK_MASK) // the missing values before this one
      this.chunks[k] = chunk
    }
    chunk[i & CHUNK_MASK] = value
    if (Number.isFinite(value)) {
      if (value < this.minAll) this.minAll = value
      if (value > this.maxAll) this.maxAll = value
      if (value > 0) {
        if (value < this.minPositiveAll) this.minPositiveAll = value
      } else this.nonPositive.push(i)
    } else this.nonFinite.push(i)
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

  /** Finite extent of every value (O(1)); `null` when there is none. */
  extent(): Extent | null {
    return this.minAll <= this.maxAll ? { min: this.minAll, max: this.maxAll } : null
  }

  /** Smallest positive value of the column, +∞ when there is none. */
  minPositive(): number {
    return this.minPositiveAll
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
    this.minAll = Infinity
    this.maxAll = -Infinity
    this.minPositiveAll = Infinity
  }

  /**
   * Replace every value in place by `next(value of source at i)` for i in order (the EMA
   * when its weight changes): O(N) with no reallocation; missing values stay missing.
   * `reset()` is called at each restart index (the EMA starts afresh there).
   */
  rewriteFrom(source: ValueColumn, next: (v: number) => number, restarts: IndexList, reset: () => void): void {
    this.nonFinite.clear()
    this.nonPositive.clear()
    this.minAll = Infinity
    this.maxAll = -Infinity
    this.minPositiveAll = Infinity
    this.built = 0
    let r = 0
    for (let k = 0; k < this.chunks.length; k++) {
      const chunk = this.chunks[k]
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
        chunk[j] = next(y)
        const v = chunk[j] // as stored (a Float32 chunk rounds)
        if (Number.isFinite(v)) {
          if (v < this.minAll) this.minAll = v
          if (v > this.maxAll) this.maxAll = v
          if (v > 0) {
            if (v < this.minPositiveAll) this.minPositiveAll = v
          } else this.nonPositive.push(i)
        } else this.nonFinite.push(i)
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
    const scratch = emptyRange()
    let count = blocks
    for (let level = 0; count > 0; level++) {
      let l = this.levels[level]
      if (!l || l.length < 3 * count) {
        const next = new Float64Array(3 * Math.max(count, Math.ceil((l ? l.length / 3 : 4) * 1.5)))
        if (l) next.set(l)
        l = next
        this.levels[level] = l
      }
      for (let k = from; k < count; k++) {
        if (level === 0) {
          scratch.min = Infinity
          scratch.max = -Infinity
          scratch.minPositive = Infinity
          this.scan(k << BLOCK_SHIFT, Math.min(this.length, (k + 1) << BLOCK_SHIFT), scratch)
        } else {
          const below = this.levels[level - 1]
          const belowCount = this.levelCounts[level - 1]
          const a = 2 * k
          scratch.min = below[3 * a]
          scratch.max = below[3 * a + 1]
          scratch.minPositive = below[3 * a + 2]
          if (a + 1 < belowCount) this.take(below, a + 1, scratch)
        }
        l[3 * k] = scratch.min
        l[3 * k + 1] = scratch.max
        l[3 * k + 2] = scratch.minPositive
      }
      this.levelCounts[level] = count
      if (count === 1) break
      from >>>= 1
      count = (count + 1) >>> 1
    }
    this.built = this.length
  }

  private widen(): void {
    this.wide = true
    this.chunks = this.chunks.map((c) => (c ? Float64Array.from(c) : null))
  }
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
  private last = 0
  private weightPow = 1
  constructor(readonly weight: number) {}

  reset(): void {
    this.last = 0
    this.weightPow = 1
  }

  next(y: number): number {
    if (!Number.isFinite(y)) return y
    const w = this.weight
    this.last = this.last * w + (1 - w) * y
    this.weightPow *= w
    const debias = 1 - this.weightPow
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
