//! Throughput, progress and ETA bookkeeping for one session of a run: pure functions of the
//! step and state events and their own `time` stamps (the producer's clock).
//!
//! A **session** is the stretch of a run from one `run_start` to the next: a fresh run has
//! one; a run resumed from a checkpoint in the same stream starts a new one, whose restored
//! tokens count as done but not as work of the session. The definitions and formulas are
//! written out in `docs/metrics.md`; the constants below are the tunable parts.
//!
//! Time is measured on the session's **active clock**: producer seconds since the session's
//! `run_start`, minus the time spent in state `paused`. It never runs backwards (a stamp
//! earlier than the latest one seen counts as that one), so every interval is ≥ 0.

use crate::event::{RunStart, Step};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};

/// Width of the recent window for the shown tokens/s, in seconds of the active clock.
pub const RATE_WINDOW_SECS: f64 = 30.0;
/// Shortest interval a rate is computed over, in seconds: a shorter one gives no rate
/// rather than a spike.
pub const MIN_RATE_INTERVAL_SECS: f64 = 1.0;
/// Optimizer steps at the start of a session that the ETA's rate leaves out (compilation,
/// cache and allocator warm-up, the first eval before step 1).
pub const WARMUP_STEPS: u64 = 3;
/// Optimizer steps after warm-up needed before an ETA is given.
pub const MIN_ETA_STEPS: u64 = 5;
/// Most step events kept for the recent window. Past it every other one is dropped (the
/// window's two ends stay, so tokens/s is unchanged; the mean step time becomes a sample).
/// Only a producer sending hundreds of events a second gets there; bounds memory per run.
pub const MAX_WINDOW_POINTS: usize = 8192;
/// z-score of the 90th percentile of the standard normal distribution: the ETA range is
/// `eta ± ETA_RANGE_Z · sd`, its 10th to 90th percentile.
pub const ETA_RANGE_Z: f64 = 1.281_551_565_545;

/// What the ETA fields of the run summary hold (`eta_status` on the wire).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EtaStatus {
    /// No ETA: no budget is known, no run has started, or the run is stopping or has ended.
    #[default]
    None,
    /// Not enough evidence yet (warm-up, or too few steps after it); `eta_secs` is null.
    Estimating,
    /// `eta_secs`, its range and `finish_time` hold an estimate.
    Estimated,
    /// The run is paused: `eta_secs` is the training time left (if known), `finish_time` null.
    Paused,
    /// The budget is reached; the trainer is finishing (final eval, checkpoint). `eta_secs` 0.
    Finishing,
}

/// The remaining-time estimate of a session.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Eta {
    /// Training seconds left: remaining work over the long-run rate. Finite and ≥ 0.
    pub secs: f64,
    /// 10th percentile of the remaining seconds. Finite, in `[0, secs]`.
    pub low_secs: f64,
    /// 90th percentile of the remaining seconds. Finite, ≥ `secs`.
    pub high_secs: f64,
}

/// One point of the session's timeline, taken at each applied step event.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Point {
    /// Active-clock seconds since the session started.
    active_secs: f64,
    /// Producer time of the event, seconds since the Unix epoch.
    time: f64,
    /// The run's token count after the event.
    tokens: u64,
    /// Optimizer steps completed after the event.
    step: u64,
    /// The event's reported step time, milliseconds.
    step_time_ms: Option<f64>,
}

/// What one rank has reported in this session.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Rank {
    /// Its latest cumulative token count.
    tokens: u64,
    /// `(step, micro_step)` of its latest applied event: later events must be greater.
    last_key: Option<(u64, u32)>,
}

/// Token-weighted loss of the micro-batches of one optimizer step.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct LossSum {
    weighted: f64,
    weight: f64,
    plain: f64,
    count: u32,
}

impl LossSum {
    fn add(&mut self, loss: f64, weight: f64) {
        self.weighted += loss * weight;
        self.weight += weight;
        self.plain += loss;
        self.count += 1;
    }

    /// Token-weighted mean; the plain mean when no weights are known.
    fn mean(&self) -> f64 {
        if self.weight > 0.0 {
            self.weighted / self.weight
        } else {
            self.plain / f64::from(self.count.max(1))
        }
    }
}

/// Step costs since warm-up, grouped in blocks for their long-run variance (the method of
/// batch means): the variance of block means × steps per block. Unlike the plain variance of
/// step costs, it is not inflated by overheads that recur on a schedule (an eval every 100
/// steps averages out within blocks), and it grows when costs drift (a slowing machine makes
/// neighbouring blocks alike). Blocks start one step long and double whenever
/// [`MAX_BLOCKS`] are full, merging pairwise, so between `MAX_BLOCKS / 2` and `MAX_BLOCKS`
/// are kept: memory is constant.
#[derive(Debug, Clone, Default, PartialEq)]
struct StepCosts {
    /// Steps per block.
    block_steps: f64,
    /// `(steps, Σ steps × seconds per step)` of each full block, oldest first.
    blocks: Vec<(f64, f64)>,
    /// The block being filled.
    open: (f64, f64),
}

/// Most blocks of step costs kept; see [`StepCosts`].
const MAX_BLOCKS: usize = 32;

impl StepCosts {
    /// Add `steps` optimizer steps that took `secs_per_step` each.
    fn add(&mut self, secs_per_step: f64, steps: f64) {
        if !(secs_per_step.is_finite() && steps > 0.0) {
            return;
        }
        self.block_steps = self.block_steps.max(1.0);
        self.open.0 += steps;
        self.open.1 += steps * secs_per_step;
        if self.open.0 >= self.block_steps {
            self.blocks.push(std::mem::take(&mut self.open));
            if self.blocks.len() >= MAX_BLOCKS {
                self.blocks = self
                    .blocks
                    .chunks(2)
                    .map(|pair| pair.iter().fold((0.0, 0.0), |(w, s), b| (w + b.0, s + b.1)))
                    .collect();
                self.block_steps *= 2.0;
            }
        }
    }

    /// Steps in full blocks.
    fn steps(&self) -> f64 {
        self.blocks.iter().map(|b| b.0).sum()
    }

    /// Long-run standard deviation of the seconds per step, `√(Σ wᵢ·(mᵢ − m)² / (K − 1))`
    /// over the `K` full blocks with `wᵢ` steps and mean `mᵢ` (overall mean `m`); for
    /// one-step blocks this is the plain sample standard deviation. 0 with fewer than 2 blocks.
    fn long_run_std_dev(&self) -> f64 {
        let k = self.blocks.len();
        if k < 2 {
            return 0.0;
        }
        let (steps, sum) = self
            .blocks
            .iter()
            .fold((0.0, 0.0), |(w, s), b| (w + b.0, s + b.1));
        let mean = sum / steps;
        let squares: f64 = self
            .blocks
            .iter()
            .map(|&(w, s)| w * (s / w - mean).powi(2))
            .sum();
        (squares / (k - 1) as f64).max(0.0).sqrt()
    }
}

/// Step completion on the active clock: where step costs are measured from.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Completion {
    active_secs: f64,
    step: u64,
    tokens: u64,
}

/// Bookkeeping of one session: token counts per rank, the step counter under gradient
/// accumulation, the timeline for rates, and the spread of step times for the ETA range.
///
/// Memory is bounded: the ranks, the last two steps' losses, and the points of the last
/// [`RATE_WINDOW_SECS`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Session {
    /// The `run_start` that began the session and its time (a repeat of it is ignored).
    start: Option<(f64, RunStart)>,
    ranks: BTreeMap<u32, Rank>,
    /// Sum of the ranks' `tokens`.
    rank_tokens: u64,
    /// Optimizer steps completed (the largest completed by any rank).
    step: u64,
    /// Largest `micro_step` seen, for telling the end of a step when `grad_accum` is unknown.
    max_micro_step: u32,
    /// Losses of the optimizer steps still accumulating and of the latest completed one.
    losses: BTreeMap<u64, LossSum>,
    /// Producer time when the current pause began.
    paused_since: Option<f64>,
    /// Seconds spent paused so far in this session.
    paused_secs: f64,
    /// The active clock at the latest step event: `(producer time, paused_secs then,
    /// active seconds)`. The active clock advances by each forward step of the producer's
    /// clock between step events, less time paused, and never goes back (see
    /// [`Session::active_secs`]).
    clock: Option<(f64, f64, f64)>,
    /// Points of the last [`RATE_WINDOW_SECS`], oldest first; the first may lie just before
    /// the window, as its left edge.
    recent: VecDeque<Point>,
    /// `(Σ, count)` of the valid reported step times in `recent`, kept as points come and
    /// go so that the mean costs O(1) per event however fast steps arrive.
    recent_step_time_ms: (f64, u32),
    /// The point at which the warm-up ended.
    warm: Option<Point>,
    /// The latest step completion after warm-up.
    completion: Option<Completion>,
    /// Seconds per optimizer step between completions after warm-up (all overheads included).
    step_costs: StepCosts,
}

impl Session {
    /// A new session begun by `start` at producer time `time`.
    pub fn new(time: f64, start: &RunStart) -> Self {
        Self {
            start: Some((time, start.clone())),
            step: start.start_step,
            ..Self::default()
        }
    }

    /// Whether `start` at `time` is the very event that began this session (a duplicate).
    pub fn is_started_by(&self, time: f64, start: &RunStart) -> bool {
        self.start
            .as_ref()
            .is_some_and(|(t, s)| t.to_bits() == time.to_bits() && s == start)
    }

    fn start_time(&self) -> Option<f64> {
        self.start
            .as_ref()
            .map(|(t, _)| *t)
            .filter(|t| t.is_finite())
    }

    /// Tokens restored at the start of the session (0 for a fresh run).
    pub fn start_tokens(&self) -> u64 {
        self.start.as_ref().map_or(0, |(_, s)| s.start_tokens)
    }

    fn world_size(&self) -> u32 {
        self.start
            .as_ref()
            .and_then(|(_, s)| s.world_size)
            .unwrap_or(1)
            .max(1)
    }

    /// The run's token count: the sum over ranks of their latest cumulative counts, and at
    /// least the tokens restored at the start.
    pub fn tokens(&self) -> u64 {
        self.rank_tokens.max(self.start_tokens())
    }

    /// Optimizer steps completed.
    pub fn step(&self) -> u64 {
        self.step
    }

    /// Training loss of the latest completed optimizer step: the token-weighted mean of its
    /// micro-batches over every rank reported so far.
    pub fn loss(&self) -> Option<f64> {
        self.losses.get(&self.step).map(LossSum::mean)
    }

    /// Apply a step event at producer time `time`. Returns `false` (and changes nothing) for
    /// a duplicate: an event whose `(step, micro_step)` is not after the latest one its rank
    /// reported in this session.
    pub fn record_step(&mut self, time: f64, step: &Step) -> bool {
        let micro_step = step.micro_step.unwrap_or(0);
        let key = (step.step, micro_step);
        let first_share = self.start_tokens() / u64::from(self.world_size());
        // A rank's first event is measured from its share of the restored tokens.
        let rank = self.ranks.entry(step.rank.unwrap_or(0)).or_insert_with(|| {
            self.rank_tokens = self.rank_tokens.saturating_add(first_share);
            Rank {
                tokens: first_share,
                last_key: None,
            }
        });
        if rank.last_key.is_some_and(|last| key <= last) {
            return false;
        }
        // The event's own tokens: the rise of its rank's cumulative count.
        let rise = step.tokens.saturating_sub(rank.tokens);
        rank.tokens += rise;
        rank.last_key = Some(key);
        self.rank_tokens = self.rank_tokens.saturating_add(rise);
        let weight = rise as f64;

        self.losses
            .entry(step.step)
            .or_default()
            .add(step.loss, weight);
        self.max_micro_step = self.max_micro_step.max(micro_step);
        let grad_accum = self
            .start
            .as_ref()
            .and_then(|(_, s)| s.grad_accum)
            .unwrap_or(self.max_micro_step.saturating_add(1))
            .max(1);
        let completed = match step.micro_step {
            Some(micro) if micro.saturating_add(1) < grad_accum => step.step.saturating_sub(1),
            _ => step.step,
        };
        let new_step = completed > self.step;
        self.step = self.step.max(completed);
        let latest = self.step;
        self.losses.retain(|&s, _| s >= latest);

        if let Some(active_secs) = self.active_secs(time) {
            let point = Point {
                active_secs,
                time,
                tokens: self.tokens(),
                step: self.step,
                step_time_ms: step.step_time_ms,
            };
            self.push_point(point);
            if new_step {
                self.complete_step(point);
            }
        }
        true
    }

    /// Apply a change of state at producer time `time`: `paused` starts a pause, anything
    /// else ends one.
    pub fn record_pause(&mut self, time: f64, paused: bool) {
        if paused {
            if self.paused_since.is_none() && time.is_finite() {
                self.paused_since = Some(time);
            }
        } else {
            self.end_pause(time);
        }
    }

    /// Whether a pause is underway.
    pub fn is_paused(&self) -> bool {
        self.paused_since.is_some()
    }

    fn end_pause(&mut self, time: f64) {
        if let Some(since) = self.paused_since.take()
            && time.is_finite()
        {
            self.paused_secs += (time - since).max(0.0);
        }
    }

    /// `time` on the active clock; `None` for a non-finite stamp or before any `run_start`.
    fn active_secs(&mut self, time: f64) -> Option<f64> {
        if !time.is_finite() {
            return None;
        }
        // A step means training goes on: a pause the producer did not close ends here.
        self.end_pause(time);
        let start = self.start_time()?;
        // Sum the forward moves of the producer's clock from event to event (less pauses),
        // rather than taking `time − start`: a clock stepped back (NTP, a restored VM) then
        // adds nothing and the next moves count again, instead of freezing the active clock
        // until the producer's catches up while tokens keep rising (a rate climbing without
        // bound); a single stamp in the future adds its jump once and does not hold the
        // later events back.
        let (last_time, last_paused, last_active) = self.clock.unwrap_or((start, 0.0, 0.0));
        let moved = (time - last_time) - (self.paused_secs - last_paused);
        let active = last_active + moved.max(0.0);
        self.clock = Some((time, self.paused_secs, active));
        Some(active)
    }

    fn push_point(&mut self, point: Point) {
        self.recent.push_back(point);
        if let Some(ms) = valid_step_time_ms(&point) {
            self.recent_step_time_ms.0 += ms;
            self.recent_step_time_ms.1 += 1;
        }
        // Keep one point at or before the window's left edge.
        while self.recent.len() > 2
            && self.recent[1].active_secs <= point.active_secs - RATE_WINDOW_SECS
        {
            if let Some(ms) = self
                .recent
                .pop_front()
                .as_ref()
                .and_then(valid_step_time_ms)
            {
                self.recent_step_time_ms.0 -= ms;
                self.recent_step_time_ms.1 -= 1;
            }
        }
        if self.recent.len() > MAX_WINDOW_POINTS {
            let last = self.recent.len() - 1;
            let mut index = 0;
            self.recent.retain(|_| {
                index += 1;
                (index - 1) % 2 == 0 || index - 1 == last
            });
            // Thinning is rare (once per MAX_WINDOW_POINTS / 2 pushes): sum afresh, which
            // also clears the rounding the running subtraction gathered.
            self.recent_step_time_ms = self
                .recent
                .iter()
                .filter_map(valid_step_time_ms)
                .fold((0.0, 0), |(sum, count), ms| (sum + ms, count + 1));
        }
    }

    fn complete_step(&mut self, point: Point) {
        let start_step = self.start.as_ref().map_or(0, |(_, s)| s.start_step);
        match self.completion {
            None if self.warm.is_none()
                && point.step >= start_step.saturating_add(WARMUP_STEPS) =>
            {
                self.warm = Some(point);
                self.completion = Some(Completion {
                    active_secs: point.active_secs,
                    step: point.step,
                    tokens: point.tokens,
                });
            }
            None => {}
            Some(previous) => {
                let steps = point.step - previous.step;
                let secs = point.active_secs - previous.active_secs;
                self.step_costs.add(secs / steps as f64, steps as f64);
                self.completion = Some(Completion {
                    active_secs: point.active_secs,
                    step: point.step,
                    tokens: point.tokens,
                });
            }
        }
    }

    /// Producer time of the latest step event with a finite stamp.
    pub fn last_step_time(&self) -> Option<f64> {
        self.recent.back().map(|p| p.time)
    }

    /// Tokens/s over the last [`RATE_WINDOW_SECS`] of the active clock: the rise in tokens
    /// from the point at (or nearest after) the window's left edge to the latest point, over
    /// the active seconds between them. `None` until that spans [`MIN_RATE_INTERVAL_SECS`].
    pub fn recent_tokens_per_sec(&self) -> Option<f64> {
        let (first, last) = (self.recent.front()?, self.recent.back()?);
        rate(
            first.active_secs,
            first.tokens,
            last.active_secs,
            last.tokens,
        )
    }

    /// Mean reported step time over the recent window, in milliseconds.
    pub fn recent_step_time_ms(&self) -> Option<f64> {
        let (sum, count) = self.recent_step_time_ms;
        (count > 0).then(|| (sum / f64::from(count)).max(0.0))
    }

    /// Tokens/s since the end of warm-up on the active clock (evals, samples and checkpoints
    /// between steps included, so their cost is amortized). `None` until [`MIN_ETA_STEPS`]
    /// optimizer steps after warm-up spanning [`MIN_RATE_INTERVAL_SECS`].
    pub fn long_run_tokens_per_sec(&self) -> Option<f64> {
        let (warm, completion) = (self.warm?, self.completion?);
        if completion.step - warm.step < MIN_ETA_STEPS {
            return None;
        }
        let last = self.recent.back()?;
        rate(warm.active_secs, warm.tokens, last.active_secs, last.tokens).filter(|r| *r > 0.0)
    }

    /// Optimizer steps/s since the end of warm-up on the active clock, as
    /// [`Session::long_run_tokens_per_sec`] with steps for tokens: the rate for an ETA of a
    /// trainer that reports no token counts.
    pub fn long_run_steps_per_sec(&self) -> Option<f64> {
        let (warm, completion) = (self.warm?, self.completion?);
        if completion.step - warm.step < MIN_ETA_STEPS {
            return None;
        }
        let last = self.recent.back()?;
        rate(warm.active_secs, warm.step, last.active_secs, last.step).filter(|r| *r > 0.0)
    }

    /// The ETA for `remaining_tokens` and/or `remaining_steps` of work (the smaller wins when
    /// both are known); `None` while estimating or when neither is known.
    ///
    /// `secs = remaining_tokens / long_run_tokens_per_sec`. For the range, the `n` steps left
    /// take the time of `n` steps like those seen since warm-up: with `σ` the long-run
    /// standard deviation of seconds per step (batch means, docs/metrics.md) over `k`
    /// steps, their total has variance `n·σ²`, and the mean step time is itself uncertain by
    /// `σ/√k`, adding `(n·σ)²/k`; so `sd = σ·√(n + n²/k)`, and the range is
    /// `secs ± ETA_RANGE_Z · sd` (normal approximation of the 10th and 90th percentiles),
    /// the low end floored at 0.
    pub fn eta(&self, remaining_tokens: Option<u64>, remaining_steps: Option<u64>) -> Option<Eta> {
        let (warm, completion) = (self.warm?, self.completion?);
        let steps_seen = (completion.step - warm.step) as f64;
        let tokens_per_step = completion.tokens.saturating_sub(warm.tokens) as f64 / steps_seen;
        let (secs, steps_left) = if tokens_per_step > 0.0 {
            let rate = self.long_run_tokens_per_sec()?;
            let by_tokens = remaining_tokens.map(|t| t as f64);
            let by_steps = remaining_steps.map(|s| s as f64 * tokens_per_step);
            let remaining = match (by_tokens, by_steps) {
                (Some(a), Some(b)) => a.min(b),
                (Some(a), None) | (None, Some(a)) => a,
                (None, None) => return None,
            };
            (remaining / rate, remaining / tokens_per_step)
        } else {
            // A trainer that reports steps but no tokens: steps left over the step rate.
            let steps = remaining_steps? as f64;
            (steps / self.long_run_steps_per_sec()?, steps)
        };
        let k = self.step_costs.steps().max(1.0);
        let spread = ETA_RANGE_Z
            * self.step_costs.long_run_std_dev()
            * (steps_left + steps_left * steps_left / k).sqrt();
        if !(secs.is_finite() && spread.is_finite()) {
            return None;
        }
        let secs = secs.max(0.0);
        Some(Eta {
            secs,
            low_secs: (secs - spread).max(0.0),
            high_secs: secs + spread,
        })
    }
}

/// A point's reported step time when it is usable: finite and not negative.
fn valid_step_time_ms(point: &Point) -> Option<f64> {
    point.step_time_ms.filter(|ms| ms.is_finite() && *ms >= 0.0)
}

/// `(tokens1 − tokens0) / (secs1 − secs0)`; `None` when the interval is shorter than
/// [`MIN_RATE_INTERVAL_SECS`] (or not a number). Never NaN or infinite.
fn rate(secs0: f64, tokens0: u64, secs1: f64, tokens1: u64) -> Option<f64> {
    let secs = secs1 - secs0;
    if secs.is_nan() || secs < MIN_RATE_INTERVAL_SECS {
        return None;
    }
    let rate = tokens1.saturating_sub(tokens0) as f64 / secs;
    rate.is_finite().then_some(rate)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_stays_bounded_under_a_flood_of_events() {
        let mut session = Session::new(0.0, &RunStart::default());
        // 60,000 steps in 1.2 s: the rate over what is kept is still right.
        for s in 1..=60_000u64 {
            let step = Step {
                step: s,
                tokens: s * 10,
                loss: 1.0,
                ..Default::default()
            };
            assert!(session.record_step(1.0 + s as f64 * 2e-5, &step));
        }
        assert!(
            session.recent.len() <= MAX_WINDOW_POINTS,
            "{}",
            session.recent.len()
        );
        assert_eq!(session.losses.len(), 1);
        assert!(session.step_costs.blocks.len() < MAX_BLOCKS);
        // 10 tokens every 20 µs: 500,000 tokens/s.
        let rate = session
            .recent_tokens_per_sec()
            .expect("the kept window spans 1.2 s");
        assert!((rate - 500_000.0).abs() < 1.0, "{rate}");
    }

    #[test]
    fn the_running_mean_step_time_is_the_mean_over_the_window() {
        let mut session = Session::new(0.0, &RunStart::default());
        // One step every 1 ms for 40 s; step times cycle 5, 10, 15 ms, with an invalid one
        // every 7th step. The window fills past MAX_WINDOW_POINTS (thinned) and slides.
        let mut thinned = false;
        for s in 1..=40_000u64 {
            let step_time_ms = match s % 7 {
                0 => Some(f64::NAN),
                _ => Some([5.0, 10.0, 15.0][(s % 3) as usize]),
            };
            let step = Step {
                step: s,
                tokens: s * 10,
                loss: 1.0,
                step_time_ms,
                ..Default::default()
            };
            assert!(session.record_step(s as f64 * 0.001, &step));
            thinned |= session.recent.len() < (s as usize).min(30_000);
            if s % 3_997 == 0 || s == 40_000 {
                let valid: Vec<f64> = session
                    .recent
                    .iter()
                    .filter_map(valid_step_time_ms)
                    .collect();
                let brute_force = valid.iter().sum::<f64>() / valid.len() as f64;
                let running = session
                    .recent_step_time_ms()
                    .expect("valid step times in the window");
                assert!(
                    (running - brute_force).abs() < 1e-9,
                    "step {s}: {running} vs {brute_force}"
                );
                // The three times cycle evenly, so their mean is 10 ms give or take one point.
                assert!((running - 10.0).abs() < 0.1, "step {s}: {running}");
            }
        }
        assert!(
            thinned,
            "the window was never thinned: the test missed the resum path"
        );
    }
}

#[cfg(test)]
mod step_cost_tests {
    use super::*;

    #[test]
    fn one_step_blocks_give_the_sample_standard_deviation() {
        let mut costs = StepCosts::default();
        for x in [1.0, 2.0, 3.0, 4.0] {
            costs.add(x, 1.0);
        }
        // Sample variance of 1, 2, 3, 4: 5 / 3.
        assert!((costs.long_run_std_dev() - (5.0f64 / 3.0).sqrt()).abs() < 1e-12);
        assert_eq!(costs.steps(), 4.0);
    }

    #[test]
    fn a_scheduled_overhead_averages_out_and_a_drift_does_not() {
        // 0.5 s steps with 5 s more every 8th: blocks of 8 steps all cost the same.
        let mut periodic = StepCosts::default();
        for i in 1..=256 {
            periodic.add(if i % 8 == 0 { 5.5 } else { 0.5 }, 1.0);
        }
        assert_eq!(periodic.block_steps, 16.0);
        assert!(
            periodic.long_run_std_dev() < 1e-9,
            "{}",
            periodic.long_run_std_dev()
        );
        // Steps slowing from 0.5 s to 1.5 s: far more spread than steps of random order.
        let mut drifting = StepCosts::default();
        for i in 0..256 {
            drifting.add(0.5 + f64::from(i) / 256.0, 1.0);
        }
        // Plain standard deviation of a uniform ramp of width 1: 1/√12 = 0.289; blocks of 16
        // steps have means 1/16 apart, long-run sd = √16 × 0.289 × (about 1) ≈ 1.15.
        assert!(
            drifting.long_run_std_dev() > 1.0,
            "{}",
            drifting.long_run_std_dev()
        );
    }
}
