//! The run summary: a run's headline figures, folded from its events.
//!
//! Every figure is a pure function of the event stream and the events' own `time` stamps
//! (the producer's clock), so a replayed or delayed stream gives the same numbers, and the
//! server, the page and the terminal bar agree. The definitions and formulas are in
//! `docs/metrics.md`; the bookkeeping behind tokens/s and the ETA is [`crate::metrics`].

use crate::event::{Event, EventBody, ProcessExit, RunState, Sample, StoredEvent};
use crate::metrics::{EtaStatus, Session};
use serde::{Deserialize, Serialize};

pub use crate::metrics::{MIN_ETA_STEPS, MIN_RATE_INTERVAL_SECS, RATE_WINDOW_SECS, WARMUP_STEPS};

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
    /// Tokens/s over the last 30 s of training in this session; `None` while unknown.
    pub tokens_per_sec: Option<f64>,
    /// Mean step time over the same recent window, milliseconds; `None` while unknown.
    pub step_time_ms: Option<f64>,
    /// Tokens/s since the end of warm-up in this session, evals and checkpoints amortized:
    /// the rate the ETA divides by. `None` while estimating.
    pub long_run_tokens_per_sec: Option<f64>,
    /// What the ETA fields hold: `estimating`, `estimated`, `paused`, `finishing` or `none`.
    pub eta_status: EtaStatus,
    /// Seconds of training left; `None` unless `eta_status` is `estimated`, `paused` or
    /// `finishing` (0).
    pub eta_secs: Option<f64>,
    /// 10th percentile of the seconds left; `None` with `eta_secs`.
    pub eta_low_secs: Option<f64>,
    /// 90th percentile of the seconds left; `None` with `eta_secs`.
    pub eta_high_secs: Option<f64>,
    /// Expected finish, seconds since the Unix epoch (producer clock): the latest step's
    /// time plus `eta_secs`. `None` unless `eta_status` is `estimated`.
    pub finish_time: Option<f64>,
    /// Training FLOPs per token from `run_start.model` (see [`crate::ModelShape`]).
    pub flops_per_token: Option<f64>,
    /// Model FLOP/s: `flops_per_token × tokens_per_sec`.
    pub model_flops_per_sec: Option<f64>,
    /// Peak FLOP/s of the hardware, from `run_start` (MFU's denominator).
    pub peak_flops_per_sec: Option<f64>,
    /// Where `peak_flops_per_sec` comes from, for people.
    pub peak_flops_source: Option<String>,
    /// Model FLOPs utilization, `model_flops_per_sec / peak_flops_per_sec`, as a fraction.
    /// Not capped: above 1 means the peak is set too low (viewers warn).
    pub mfu: Option<f64>,
    /// Ranks that report the run (`run_start.world_size`, else 1).
    pub world_size: u32,
    /// Micro-batches per optimizer step (`run_start.grad_accum`); `None` when not said.
    pub grad_accum: Option<u32>,
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
    /// Bookkeeping of the current session; not part of the wire format.
    #[serde(skip)]
    pub session: Session,
}

impl RunSummary {
    /// An empty summary for run `id`.
    pub fn new(id: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            ..Self::default()
        }
    }

    /// Fold a stored event in. Events must come in `seq` order; a repeated or older `seq`
    /// is ignored, so applying a stream twice changes nothing. An event delivered twice
    /// under different `seq`s (same identity: a step's rank, step and micro-step, or the
    /// same `run_start`) is applied once.
    pub fn apply(&mut self, stored: &StoredEvent) {
        if stored.seq <= self.last_seq && self.last_seq != 0 {
            return;
        }
        self.last_seq = stored.seq;
        self.apply_event(&stored.event);
    }

    /// Fold an event in (for streams without `seq`, such as a producer's own view).
    pub fn apply_event(&mut self, event: &Event) {
        let time = event.time;
        if time.is_finite() {
            self.last_time = Some(self.last_time.map_or(time, |t| t.max(time)));
        }
        match &event.body {
            EventBody::RunStart(start) => {
                if self.session.is_started_by(time, start) {
                    return self.refresh_derived();
                }
                // A later run_start (a resume) that gives no name or config keeps the run's.
                if !start.name.is_empty() || self.name.is_empty() {
                    self.name = start.name.clone();
                }
                if !start.config.is_null() {
                    self.config = start.config.clone();
                }
                self.total_tokens = start.total_tokens;
                self.total_steps = start.total_steps;
                self.step = start.start_step;
                self.tokens = start.start_tokens;
                self.start_tokens = start.start_tokens;
                self.loss = None;
                self.state = RunState::Running;
                self.message.clear();
                if time.is_finite() {
                    self.start_time.get_or_insert(time);
                }
                self.world_size = start.world_size.unwrap_or(1).max(1);
                self.grad_accum = start.grad_accum;
                self.flops_per_token = start
                    .model
                    .as_ref()
                    .and_then(|m| m.training_flops_per_token());
                self.peak_flops_per_sec = start
                    .peak_flops_per_sec
                    .filter(|p| p.is_finite() && *p > 0.0);
                self.peak_flops_source = start.peak_flops_source.clone();
                self.session = Session::new(time, start);
            }
            EventBody::Step(step) => {
                // A step means training goes on: a pause the producer did not close with
                // `state: running` ends here, for the state as for the rates.
                if self.state == RunState::Paused {
                    self.state = RunState::Running;
                    self.message.clear();
                }
                if self.session.record_step(time, step) {
                    self.step = self.session.step();
                    self.tokens = self.session.tokens();
                    self.loss = self.session.loss().or(self.loss);
                    self.lr = step.lr;
                    self.grad_norm = step.grad_norm;
                }
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
                self.session
                    .record_pause(time, change.state == RunState::Paused);
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
        self.tokens_per_sec = self.session.recent_tokens_per_sec();
        self.step_time_ms = self.session.recent_step_time_ms();
        self.long_run_tokens_per_sec = self.session.long_run_tokens_per_sec();
        self.refresh_eta();
        self.model_flops_per_sec = match (self.flops_per_token, self.tokens_per_sec) {
            (Some(flops), Some(rate)) => Some(flops * rate).filter(|f| f.is_finite()),
            _ => None,
        };
        self.mfu = match (self.model_flops_per_sec, self.peak_flops_per_sec) {
            (Some(flops), Some(peak)) => Some(flops / peak).filter(|f| f.is_finite()),
            _ => None,
        };
    }

    fn refresh_eta(&mut self) {
        (
            self.eta_secs,
            self.eta_low_secs,
            self.eta_high_secs,
            self.finish_time,
        ) = (None, None, None, None);
        let budget_known =
            self.total_tokens.is_some_and(|t| t > 0) || self.total_steps.is_some_and(|s| s > 0);
        let live = self.last_seq > 0 || self.start_time.is_some();
        self.eta_status = if !budget_known
            || !live
            || self.state.is_finished()
            || self.state == RunState::Stopping
        {
            EtaStatus::None
        } else if self.budget_reached() {
            (self.eta_secs, self.eta_low_secs, self.eta_high_secs) =
                (Some(0.0), Some(0.0), Some(0.0));
            EtaStatus::Finishing
        } else {
            let remaining_tokens = self
                .total_tokens
                .filter(|t| *t > 0)
                .map(|t| t.saturating_sub(self.tokens));
            let remaining_steps = self
                .total_steps
                .filter(|s| *s > 0)
                .map(|s| s.saturating_sub(self.step));
            let eta = self.session.eta(remaining_tokens, remaining_steps);
            if let Some(eta) = eta {
                (self.eta_secs, self.eta_low_secs, self.eta_high_secs) =
                    (Some(eta.secs), Some(eta.low_secs), Some(eta.high_secs));
            }
            match (
                eta,
                self.state == RunState::Paused || self.session.is_paused(),
            ) {
                (_, true) => EtaStatus::Paused,
                (Some(eta), false) => {
                    self.finish_time = self.session.last_step_time().map(|t| t + eta.secs);
                    EtaStatus::Estimated
                }
                (None, false) => EtaStatus::Estimating,
            }
        };
    }

    /// Whether the token budget (or, without one, the step budget) is reached.
    fn budget_reached(&self) -> bool {
        match (self.total_tokens, self.total_steps) {
            (Some(total), _) if total > 0 => {
                self.tokens >= total || self.total_steps.is_some_and(|s| s > 0 && self.step >= s)
            }
            (_, Some(total)) if total > 0 => self.step >= total,
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Checkpoint, RunStart, StateChange, Step};

    fn stream(total_tokens: u64, step_secs: f64, steps: u64) -> Vec<StoredEvent> {
        let mut events = vec![Event::new(
            100.0,
            RunStart {
                name: "t".into(),
                total_tokens: Some(total_tokens),
                total_steps: Some(total_tokens / 1000),
                ..Default::default()
            },
        )];
        for s in 1..=steps {
            // The first step is slow (compile); later ones take `step_secs` each.
            let time = 100.0 + 10.0 + step_secs * (s - 1) as f64;
            events.push(Event::new(
                time,
                Step {
                    step: s,
                    tokens: s * 1000,
                    loss: 3.0,
                    lr: None,
                    grad_norm: None,
                    step_time_ms: Some(step_secs * 1000.0),
                    ..Default::default()
                },
            ));
        }
        events
            .into_iter()
            .enumerate()
            .map(|(i, event)| StoredEvent {
                seq: i as u64 + 1,
                event,
            })
            .collect()
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
        events.push(StoredEvent {
            seq: 14,
            event: Event::new(
                200.0,
                StateChange {
                    state: RunState::Completed,
                    message: String::new(),
                },
            ),
        });
        let summary = fold(&events);
        assert_eq!(summary.eta_secs, None);
        assert_eq!(summary.state, RunState::Completed);
    }

    #[test]
    fn a_resume_without_name_or_config_keeps_the_runs() {
        let mut events = stream(100_000, 0.5, 4);
        let EventBody::RunStart(start) = &mut events[0].event.body else {
            panic!()
        };
        start.config = serde_json::json!({"preset": "tiny"});
        events.push(StoredEvent {
            seq: 6,
            event: Event::new(
                200.0,
                RunStart {
                    total_tokens: Some(100_000),
                    start_step: 2,
                    start_tokens: 2000,
                    ..Default::default()
                },
            ),
        });
        let summary = fold(&events);
        assert_eq!(summary.name, "t");
        assert_eq!(summary.config, serde_json::json!({"preset": "tiny"}));
        assert_eq!((summary.step, summary.tokens), (2, 2000));
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
        events.push(StoredEvent {
            seq: 6,
            event: Event::new(
                130.0,
                Checkpoint {
                    step: 4,
                    tokens: 4000,
                    path: "runs/x/ckpt".into(),
                },
            ),
        });
        let mut summary = fold(&events);
        assert_eq!(summary.checkpoint_path.as_deref(), Some("runs/x/ckpt"));
        assert_eq!(summary.checkpoint_step, Some(4));
        summary.mark_interrupted();
        assert_eq!(summary.state, RunState::Interrupted);
        assert_eq!(summary.eta_secs, None);
    }
}
