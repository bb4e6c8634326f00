//! The run summary: a run's headline figures, folded from its events.
//!
//! Every figure is a pure function of the event stream and the events' own `time` stamps
//! (the producer's clock), so a replayed or delayed stream gives the same numbers, and the
//! server, the page and the terminal bar agree.
//!
//! * `tokens_per_sec`: tokens trained over the last [`RATE_WINDOW_SECS`] of step events of
//!   the current session, `(tokens_last − tokens_first) / (time_last − time_first)`; `None`
//!   until that window spans at least [`MIN_RATE_INTERVAL_SECS`] (no spike from a near-zero
//!   interval, never NaN or Infinity).
//! * `eta_secs`: remaining tokens divided by the long-run rate since warm-up,
//!   `(tokens_last − tokens_w) / (time_last − time_w)` where `w` is the step event that ends
//!   the warm-up (the first [`WARMUP_STEPS`] steps of the session, which include compilation
//!   and cache warming). Evals, samples and checkpoints that recur between steps are inside
//!   that interval, so their cost is amortized. `None` ("estimating…") until
//!   [`MIN_ETA_STEPS`] steps after warm-up spanning [`MIN_RATE_INTERVAL_SECS`]; `0` once the
//!   budget is reached; `None` again once the run has ended.

use crate::event::{Event, EventBody, ProcessExit, RunState, Sample, StoredEvent};
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;

/// Width of the recent window for the shown tokens/s, in seconds of producer time.
pub const RATE_WINDOW_SECS: f64 = 30.0;
/// Shortest interval a rate is computed over, in seconds.
pub const MIN_RATE_INTERVAL_SECS: f64 = 1.0;
/// Steps at the start of a session left out of the ETA's rate (compile, warm caches).
pub const WARMUP_STEPS: u64 = 3;
/// Steps after warm-up needed before an ETA is given.
pub const MIN_ETA_STEPS: u64 = 3;

/// A run's headline figures, as `GET /api/runs/{id}` returns them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunSummary {
    /// The run's id.
    pub id: String,
    /// Human-readable name; empty when none.
    pub name: String,
    /// Current state.
    pub state: RunState,
    /// Why the state is what it is (error text of a failed run); empty when nothing to add.
    pub message: String,
    /// The trainer's configuration (`null` before `run_start`).
    pub config: serde_json::Value,
    /// Token budget; `None` when unknown.
    pub total_tokens: Option<u64>,
    /// Optimizer steps of the whole run; `None` when unknown.
    pub total_steps: Option<u64>,
    /// Optimizer steps completed.
    pub step: u64,
    /// Tokens trained, cumulative (the true count, even past the budget).
    pub tokens: u64,
    /// Tokens already trained when the run started: 0, or the checkpoint's count on resume.
    pub start_tokens: u64,
    /// Fraction of the budget done, in `[0, 1]` (tokens over budget, else steps over total
    /// steps); `None` when no budget is known.
    pub progress: Option<f64>,
    /// Training loss of the latest step, nats per token.
    #[serde(with = "crate::float::option")]
    pub loss: Option<f64>,
    /// Latest validation loss, nats per token.
    #[serde(with = "crate::float::option")]
    pub val_loss: Option<f64>,
    /// Learning rate of the latest step.
    #[serde(with = "crate::float::option")]
    pub lr: Option<f64>,
    /// Gradient norm of the latest step (before clipping).
    #[serde(with = "crate::float::option")]
    pub grad_norm: Option<f64>,
    /// Recent throughput in tokens per second (see the module docs); `None` while unknown.
    pub tokens_per_sec: Option<f64>,
    /// Mean step time over the same recent window, milliseconds; `None` while unknown.
    pub step_time_ms: Option<f64>,
    /// Seconds of training left; `None` while estimating and after the run has ended.
    pub eta_secs: Option<f64>,
    /// Expected finish, seconds since the Unix epoch (producer clock); `None` with `eta_secs`.
    pub finish_time: Option<f64>,
    /// `time` of the `run_start` event, seconds since the Unix epoch.
    pub start_time: Option<f64>,
    /// `time` of the latest event.
    pub last_time: Option<f64>,
    /// Seconds from `run_start` to the latest event.
    pub elapsed_secs: f64,
    /// `seq` of the latest event folded in; 0 before any.
    pub last_seq: u64,
    /// Path of the latest complete checkpoint (display text only).
    pub checkpoint_path: Option<String>,
    /// Step of that checkpoint.
    pub checkpoint_step: Option<u64>,
    /// Latest generated text sample.
    pub sample: Option<Sample>,
    /// `time` of the first `stopping` state event: when the abort was requested (or the
    /// trainer began to stop on its own); `None` while no one has asked the run to stop.
    pub stopping_since: Option<f64>,
    /// How the trainer's process ended, when the console that started it reported it.
    pub exit: Option<ProcessExit>,
    /// For a run whose process this console started (`trainconsole run`): seconds after
    /// `stopping_since` from which a force kill is accepted. `None` when the console cannot
    /// kill the run's process. Set by the server, not folded from events.
    pub force_kill_grace_secs: Option<f64>,
    /// Rate bookkeeping; not part of the wire format.
    #[serde(skip)]
    pub meter: ThroughputMeter,
}

impl RunSummary {
    /// An empty summary for run `id`.
    pub fn new(id: impl Into<String>) -> Self {
        Self { id: id.into(), ..Self::default() }
    }

    /// Fold a stored event in. Events must come in `seq` order; a repeated or older `seq`
    /// is ignored, so applying a stream twice changes nothing.
    pub fn apply(&mut self, stored: &StoredEvent) {
        if stored.seq <= self.last_seq && self.last_seq != 0 {
            return;
        }
        self.last_seq = stored.seq;
        self.apply_event(&stored.event);
    }

    fn apply_event(&mut self, event: &Event) {
        let time = event.time;
        if time.is_finite() {
            self.last_time = Some(self.last_time.map_or(time, |t| t.max(time)));
        }
        match &event.body {
            EventBody::RunStart(start) => {
                self.name = start.name.clone();
                self.config = start.config.clone();
                self.total_tokens = start.total_tokens;
                self.total_steps = start.total_steps;
                self.step = start.start_step;
                self.tokens = start.start_tokens;
                self.start_tokens = start.start_tokens;
                self.state = RunState::Running;
                self.start_time.get_or_insert(time);
                self.meter = ThroughputMeter::default();
            }
            EventBody::Step(step) => {
                self.step = step.step;
                self.tokens = step.tokens;
                self.loss = Some(step.loss);
                self.lr = step.lr;
                self.grad_norm = step.grad_norm;
                self.meter.record_step(time, step.tokens, step.step_time_ms);
            }
            EventBody::Eval(eval) => self.val_loss = Some(eval.val_loss),
            EventBody::Sample(sample) => self.sample = Some(sample.clone()),
            EventBody::Checkpoint(ckpt) => {
                self.checkpoint_path = Some(ckpt.path.clone());
                self.checkpoint_step = Some(ckpt.step);
            }
            EventBody::State(change) => {
                self.state = change.state;
                self.message = change.message.clone();
                if change.state == RunState::Stopping {
                    self.stopping_since.get_or_insert(time);
                }
            }
            EventBody::Exit(exit) => {
                self.exit = Some(exit.clone());
                // A dead process cannot be killed.
                self.force_kill_grace_secs = None;
            }
        }
        self.refresh_derived();
    }

    /// Mark a run whose producer went away without reporting an end as `interrupted`.
    pub fn mark_interrupted(&mut self) {
        if !self.state.is_finished() {
            self.state = RunState::Interrupted;
            self.refresh_derived();
        }
    }

    fn refresh_derived(&mut self) {
        self.elapsed_secs = match (self.start_time, self.last_time) {
            (Some(start), Some(last)) => (last - start).max(0.0),
            _ => 0.0,
        };
        self.progress = match (self.total_tokens, self.total_steps) {
            (Some(total), _) if total > 0 => Some((self.tokens as f64 / total as f64).min(1.0)),
            (_, Some(total)) if total > 0 => Some((self.step as f64 / total as f64).min(1.0)),
            _ => None,
        };
        self.tokens_per_sec = self.meter.recent_tokens_per_sec();
        self.step_time_ms = self.meter.recent_step_time_ms();
        self.eta_secs = if self.state.is_finished() { None } else { self.remaining_secs() };
        self.finish_time = match (self.eta_secs, self.meter.last_time()) {
            (Some(eta), Some(last)) => Some(last + eta),
            _ => None,
        };
    }

    fn remaining_secs(&self) -> Option<f64> {
        let rate = self.meter.long_run_tokens_per_sec()?;
        let remaining_tokens = match (self.total_tokens, self.total_steps) {
            (Some(total), _) => total.saturating_sub(self.tokens) as f64,
            (None, Some(total_steps)) => {
                // Without a token budget, work is counted in steps at the session's mean
                // tokens per step.
                let tokens_per_step = self.meter.mean_tokens_per_step()?;
                total_steps.saturating_sub(self.step) as f64 * tokens_per_step
            }
            (None, None) => return None,
        };
        Some(remaining_tokens / rate)
    }
}

/// Bookkeeping for tokens/s and ETA over the step events of the current session.
///
/// Keeps the step events of the last [`RATE_WINDOW_SECS`] plus the one step that ends the
/// warm-up, so memory stays bounded however long the run is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ThroughputMeter {
    /// Step events seen in this session.
    steps_seen: u64,
    /// `(time, tokens)` of the step event that ends the warm-up.
    warm: Option<(f64, u64)>,
    /// `(time, tokens, step_time_ms)` of recent steps, oldest first.
    recent: VecDeque<(f64, u64, Option<f64>)>,
}

impl ThroughputMeter {
    /// Record a step event at `time` (seconds) with cumulative `tokens`.
    pub fn record_step(&mut self, time: f64, tokens: u64, step_time_ms: Option<f64>) {
        if !time.is_finite() {
            return;
        }
        self.steps_seen += 1;
        if self.steps_seen == WARMUP_STEPS.max(1) {
            self.warm = Some((time, tokens));
        }
        self.recent.push_back((time, tokens, step_time_ms));
        while let Some(&(oldest, _, _)) = self.recent.front() {
            if time - oldest > RATE_WINDOW_SECS && self.recent.len() > 2 {
                self.recent.pop_front();
            } else {
                break;
            }
        }
    }

    /// Time of the latest step event recorded.
    pub fn last_time(&self) -> Option<f64> {
        self.recent.back().map(|r| r.0)
    }

    /// Tokens/s over the recent window; `None` until it spans [`MIN_RATE_INTERVAL_SECS`].
    pub fn recent_tokens_per_sec(&self) -> Option<f64> {
        let (first, last) = (self.recent.front()?, self.recent.back()?);
        rate(first.0, first.1, last.0, last.1)
    }

    /// Mean of the reported step times over the recent window, in milliseconds.
    pub fn recent_step_time_ms(&self) -> Option<f64> {
        let times: Vec<f64> = self.recent.iter().filter_map(|r| r.2).filter(|t| t.is_finite()).collect();
        if times.is_empty() {
            return None;
        }
        Some(times.iter().sum::<f64>() / times.len() as f64)
    }

    /// Tokens/s since the end of warm-up; `None` until [`MIN_ETA_STEPS`] steps after it.
    pub fn long_run_tokens_per_sec(&self) -> Option<f64> {
        let (warm_time, warm_tokens) = self.warm?;
        if self.steps_seen < WARMUP_STEPS.max(1) + MIN_ETA_STEPS {
            return None;
        }
        let last = self.recent.back()?;
        rate(warm_time, warm_tokens, last.0, last.1)
    }

    /// Mean tokens per step since warm-up.
    fn mean_tokens_per_step(&self) -> Option<f64> {
        let (_, warm_tokens) = self.warm?;
        let last = self.recent.back()?;
        let steps = self.steps_seen.checked_sub(WARMUP_STEPS.max(1)).filter(|&s| s > 0)?;
        Some(last.1.saturating_sub(warm_tokens) as f64 / steps as f64)
    }
}

/// `(tokens1 − tokens0) / (time1 − time0)`, or `None` when the interval is shorter than
/// [`MIN_RATE_INTERVAL_SECS`] or no tokens were trained.
fn rate(time0: f64, tokens0: u64, time1: f64, tokens1: u64) -> Option<f64> {
    let secs = time1 - time0;
    // `secs` may be NaN; only a finite interval of at least the minimum counts.
    if secs.is_nan() || secs < MIN_RATE_INTERVAL_SECS || tokens1 <= tokens0 {
        return None;
    }
    Some((tokens1 - tokens0) as f64 / secs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Checkpoint, RunStart, StateChange, Step};

    fn stream(total_tokens: u64, step_secs: f64, steps: u64) -> Vec<StoredEvent> {
        let mut events = vec![Event::new(
            100.0,
            RunStart { name: "t".into(), total_tokens: Some(total_tokens), total_steps: Some(total_tokens / 1000), ..Default::default() },
        )];
        for s in 1..=steps {
            // The first step is slow (compile); later ones take `step_secs` each.
            let time = 100.0 + 10.0 + step_secs * (s - 1) as f64;
            events.push(Event::new(time, Step { step: s, tokens: s * 1000, loss: 3.0, lr: None, grad_norm: None, step_time_ms: Some(step_secs * 1000.0), ..Default::default() }));
        }
        events.into_iter().enumerate().map(|(i, event)| StoredEvent { seq: i as u64 + 1, event }).collect()
    }

    fn fold(events: &[StoredEvent]) -> RunSummary {
        let mut summary = RunSummary::new("r");
        events.iter().for_each(|e| summary.apply(e));
        summary
    }

    #[test]
    fn rate_and_eta_leave_out_warm_up() {
        // 1000 tokens every 0.5 s after a 10 s first step: 2000 tokens/s.
        let summary = fold(&stream(100_000, 0.5, 20));
        assert_eq!(summary.tokens, 20_000);
        assert_eq!(summary.tokens_per_sec, Some(2000.0));
        // 80,000 tokens left at 2000 tokens/s.
        assert_eq!(summary.eta_secs, Some(40.0));
        assert_eq!(summary.finish_time, Some(100.0 + 10.0 + 0.5 * 19.0 + 40.0));
        assert_eq!(summary.progress, Some(0.2));
        assert_eq!(summary.step_time_ms, Some(500.0));
        assert_eq!(summary.elapsed_secs, 10.0 + 0.5 * 19.0);
    }

    #[test]
    fn estimating_until_enough_steps_after_warm_up() {
        let summary = fold(&stream(100_000, 0.5, WARMUP_STEPS + MIN_ETA_STEPS - 1));
        assert_eq!(summary.eta_secs, None);
        let summary = fold(&stream(100_000, 0.5, WARMUP_STEPS + MIN_ETA_STEPS));
        assert!(summary.eta_secs.is_some());
    }

    #[test]
    fn no_rate_from_a_near_zero_interval() {
        // Two steps 1 ms apart: no tokens/s rather than a spike.
        let summary = fold(&stream(100_000, 0.001, 2)[..]);
        assert_eq!(summary.tokens_per_sec, None);
    }

    #[test]
    fn eta_is_zero_at_budget_and_cleared_at_end() {
        let mut events = stream(10_000, 0.5, 12);
        let summary = fold(&events);
        assert_eq!(summary.eta_secs, Some(0.0));
        assert_eq!(summary.progress, Some(1.0));
        assert_eq!(summary.tokens, 12_000, "the counter keeps the true number");
        events.push(StoredEvent { seq: 14, event: Event::new(200.0, StateChange { state: RunState::Completed, message: String::new() }) });
        let summary = fold(&events);
        assert_eq!(summary.eta_secs, None);
        assert_eq!(summary.state, RunState::Completed);
    }

    #[test]
    fn applying_twice_changes_nothing() {
        let events = stream(100_000, 0.5, 10);
        let once = fold(&events);
        let mut twice = once.clone();
        events.iter().for_each(|e| twice.apply(e));
        assert_eq!(once, twice);
    }

    #[test]
    fn checkpoint_and_interrupted() {
        let mut events = stream(100_000, 0.5, 4);
        events.push(StoredEvent { seq: 6, event: Event::new(130.0, Checkpoint { step: 4, tokens: 4000, path: "runs/x/ckpt".into() }) });
        let mut summary = fold(&events);
        assert_eq!(summary.checkpoint_path.as_deref(), Some("runs/x/ckpt"));
        assert_eq!(summary.checkpoint_step, Some(4));
        summary.mark_interrupted();
        assert_eq!(summary.state, RunState::Interrupted);
        assert_eq!(summary.eta_secs, None);
    }
}
