//! Events: the closed set of things a producer reports about a run.
//!
//! On the wire an event is one flat JSON object with `kind` and `time` and the fields of
//! its kind, for example
//! `{"kind":"step","time":1764400000.25,"step":12,"tokens":24576,"loss":2.71,"lr":0.0006,"grad_norm":0.83,"step_time_ms":912.4}`.
//! A stored event adds `seq`, its 1-based position in the run (no gaps).

use serde::{Deserialize, Serialize};

/// One event as a producer reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// The producer's clock when the event happened: seconds since the Unix epoch.
    /// Rates and ETAs are computed from these stamps, never from arrival times.
    pub time: f64,
    /// What happened; its `kind` tag and fields sit beside `time` in the JSON object.
    #[serde(flatten)]
    pub body: EventBody,
}

impl Event {
    /// An event stamped with `time` (seconds since the Unix epoch).
    pub fn new(time: f64, body: impl Into<EventBody>) -> Self {
        Self { time, body: body.into() }
    }

    /// An event stamped with this machine's clock now.
    pub fn now(body: impl Into<EventBody>) -> Self {
        Self::new(unix_time_secs(), body)
    }

    /// The wire name of this event's kind (`"step"`, `"eval"`, …).
    pub fn kind(&self) -> &'static str {
        self.body.kind()
    }
}

/// Seconds since the Unix epoch on this machine's clock, as a float.
pub fn unix_time_secs() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// An event with the sequence number the store gave it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredEvent {
    /// 1-based position of the event in its run: 1, 2, 3, … with no gaps.
    pub seq: u64,
    /// The event as reported.
    #[serde(flatten)]
    pub event: Event,
}

/// The kinds of event, tagged on the wire by `kind` in snake case.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EventBody {
    /// First event of a run: its name, configuration and budget.
    RunStart(RunStart),
    /// One optimizer step finished.
    Step(Step),
    /// A validation loss was measured.
    Eval(Eval),
    /// The model generated a text sample.
    Sample(Sample),
    /// A checkpoint was written completely (it is safe to load).
    Checkpoint(Checkpoint),
    /// The run's state changed.
    State(StateChange),
    /// The trainer's process ended (reported by the console that started it).
    Exit(ProcessExit),
}

impl EventBody {
    /// The wire name of this kind.
    pub fn kind(&self) -> &'static str {
        match self {
            EventBody::RunStart(_) => "run_start",
            EventBody::Step(_) => "step",
            EventBody::Eval(_) => "eval",
            EventBody::Sample(_) => "sample",
            EventBody::Checkpoint(_) => "checkpoint",
            EventBody::State(_) => "state",
            EventBody::Exit(_) => "exit",
        }
    }
}

/// `kind: "run_start"`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunStart {
    /// Human-readable run name; empty means none was given.
    #[serde(default)]
    pub name: String,
    /// The trainer's configuration as a JSON object (model, optimizer, data …).
    #[serde(default)]
    pub config: serde_json::Value,
    /// Token budget of the whole run; `None` when the trainer knows none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_tokens: Option<u64>,
    /// Optimizer steps of the whole run; `None` when unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_steps: Option<u64>,
    /// Tokens one optimizer step trains (batch × context × accumulation); `None` when it varies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_per_step: Option<u64>,
    /// Step the run starts from: 0 for a fresh run, the checkpoint's step on resume.
    #[serde(default)]
    pub start_step: u64,
    /// Tokens already trained when the run starts: 0 fresh, the checkpoint's count on resume.
    #[serde(default)]
    pub start_tokens: u64,
    /// Path of the checkpoint this run resumed from, if any (display text only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resumed_from: Option<String>,
    /// Micro-batches accumulated into one optimizer step (1 when there is no accumulation);
    /// `None` when the trainer does not say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grad_accum: Option<u32>,
    /// Number of ranks (processes) that report this run; `None` means one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub world_size: Option<u32>,
}

/// `kind: "step"`: one optimizer step, or one micro-batch of it when `micro_step` is set.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Step {
    /// Optimizer steps completed, counting from 1 (the first finished step is 1).
    pub step: u64,
    /// Tokens trained so far in the run, cumulative, including restored ones on resume.
    pub tokens: u64,
    /// Mean training loss of this step in nats per token; may be NaN or ±Infinity.
    #[serde(with = "crate::float")]
    pub loss: f64,
    /// Learning rate used by this step.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "crate::float::option")]
    pub lr: Option<f64>,
    /// Global L2 norm of the gradients before clipping.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "crate::float::option")]
    pub grad_norm: Option<f64>,
    /// Wall time of this step (forward, backward, optimizer) in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "crate::float::option")]
    pub step_time_ms: Option<f64>,
    /// Which rank (process) of a multi-process run reported this step; `None` means rank 0
    /// of a single-process run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rank: Option<u32>,
    /// 0-based micro-batch within optimizer step `step` under gradient accumulation; `None`
    /// when the event reports the whole optimizer step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub micro_step: Option<u32>,
}

/// `kind: "eval"`: a validation loss measured after `step`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Eval {
    /// Optimizer steps completed when the loss was measured.
    pub step: u64,
    /// Mean validation loss in nats per token; may be NaN or ±Infinity.
    #[serde(with = "crate::float")]
    pub val_loss: f64,
}

/// `kind: "sample"`: text generated by the model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// Optimizer steps completed when the sample was generated.
    pub step: u64,
    /// The generated text (display as text, never as HTML).
    pub text: String,
}

/// `kind: "checkpoint"`: a checkpoint was written and is complete.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Optimizer steps completed at the checkpoint.
    pub step: u64,
    /// Tokens trained at the checkpoint.
    #[serde(default)]
    pub tokens: u64,
    /// Where the checkpoint was written (display text only).
    pub path: String,
}

/// `kind: "state"`: the run moved to `state`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StateChange {
    /// The new state.
    pub state: RunState,
    /// Why, for people (for example the error of a failed run); empty means nothing to add.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
}

/// `kind: "exit"`: the trainer's process ended. Reported by `trainconsole run`, which
/// started the process; a trainer never reports its own exit.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProcessExit {
    /// Exit status of a process that exited on its own (0 is success); `None` when a signal
    /// ended it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// Name of the signal that ended the process (`"SIGKILL"`, or `"signal 40"` for one
    /// without a name); `None` when it exited on its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<String>,
    /// The last lines the process wrote (stdout lines that were not events, and stderr),
    /// oldest first; at most 50.
    #[serde(default)]
    pub output_tail: Vec<String>,
}

impl ProcessExit {
    /// How the process ended, for people: `"exit status 0"`, `"killed by SIGKILL"`.
    pub fn describe(&self) -> String {
        match (&self.signal, self.exit_code) {
            (Some(signal), _) => format!("killed by {signal}"),
            (None, Some(code)) => format!("exit status {code}"),
            (None, None) => "ended".to_string(),
        }
    }
}

/// Life cycle of a run: `running` → (`stopping` →) `aborted` | `completed` | `failed`.
///
/// `interrupted` is never reported by a producer: a viewer shows it for a run whose producer
/// went away without reporting an end (killed process, server restart).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    /// Training.
    #[default]
    Running,
    /// An abort was requested; the trainer is finishing its step and saving.
    Stopping,
    /// Stopped on request, after saving.
    Aborted,
    /// Reached its budget.
    Completed,
    /// Stopped by an error.
    Failed,
    /// Its producer went away without reporting an end.
    Interrupted,
}

impl RunState {
    /// Whether the run has ended (no more steps will come).
    pub fn is_finished(self) -> bool {
        matches!(self, RunState::Aborted | RunState::Completed | RunState::Failed | RunState::Interrupted)
    }

    /// The wire name (`"running"`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Running => "running",
            RunState::Stopping => "stopping",
            RunState::Aborted => "aborted",
            RunState::Completed => "completed",
            RunState::Failed => "failed",
            RunState::Interrupted => "interrupted",
        }
    }
}

impl std::fmt::Display for RunState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

macro_rules! into_body {
    ($($t:ident => $v:ident),*) => {$(
        impl From<$t> for EventBody {
            fn from(value: $t) -> Self { EventBody::$v(value) }
        }
    )*};
}
into_body!(RunStart => RunStart, Step => Step, Eval => Eval, Sample => Sample, Checkpoint => Checkpoint, StateChange => State, ProcessExit => Exit);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_round_trips_as_flat_json() {
        let event = Event::new(
            1764400000.25,
            Step { step: 12, tokens: 24576, loss: 2.5, lr: Some(6e-4), grad_norm: Some(0.75), step_time_ms: Some(912.5), ..Default::default() },
        );
        let json = serde_json::to_string(&StoredEvent { seq: 7, event: event.clone() }).unwrap();
        assert_eq!(
            json,
            r#"{"seq":7,"time":1764400000.25,"kind":"step","step":12,"tokens":24576,"loss":2.5,"lr":0.0006,"grad_norm":0.75,"step_time_ms":912.5}"#
        );
        let back: StoredEvent = serde_json::from_str(&json).unwrap();
        assert_eq!(back.seq, 7);
        assert_eq!(back.event, event);
    }

    #[test]
    fn non_finite_losses_survive_the_wire() {
        for (loss, text) in [(f64::NAN, "\"NaN\""), (f64::INFINITY, "\"Infinity\""), (f64::NEG_INFINITY, "\"-Infinity\"")] {
            let event = Event::new(1.0, Step { step: 1, tokens: 8, loss, lr: None, grad_norm: None, step_time_ms: None, ..Default::default() });
            let json = serde_json::to_string(&event).unwrap();
            assert!(json.contains(&format!("\"loss\":{text}")), "{json}");
            let back: Event = serde_json::from_str(&json).unwrap();
            let EventBody::Step(step) = back.body else { panic!("not a step: {json}") };
            assert_eq!(step.loss.to_bits(), loss.to_bits());
        }
    }

    #[test]
    fn unknown_kind_is_an_error_that_names_it() {
        let err = serde_json::from_str::<Event>(r#"{"kind":"bogus","time":1}"#).unwrap_err();
        assert!(err.to_string().contains("bogus"), "{err}");
    }

    #[test]
    fn state_names_are_snake_case() {
        let json = serde_json::to_string(&Event::new(2.0, StateChange { state: RunState::Aborted, message: String::new() })).unwrap();
        assert_eq!(json, r#"{"time":2.0,"kind":"state","state":"aborted"}"#);
    }
}
