//! Properties of the run summary over any event stream, however odd: clocks that jump back
//! or stand still, duplicates, resumes, pauses, several ranks, micro-steps, huge counts.

use proptest::prelude::*;
use trainconsole_protocol::{
    EtaStatus, Eval, Event, EventBody, RunStart, RunState, RunSummary, StateChange, Step,
    StoredEvent,
};

/// One thing a producer may do next.
#[derive(Debug, Clone)]
enum Op {
    Step {
        dt: f64,
        tokens: u64,
        rank: Option<u32>,
        micro_step: Option<u32>,
        loss: f64,
    },
    Eval {
        dt: f64,
    },
    State {
        dt: f64,
        state: RunState,
    },
    Resume {
        dt: f64,
        start_tokens: u64,
        total_tokens: Option<u64>,
        total_steps: Option<u64>,
    },
    Repeat {
        back: usize,
    },
}

fn dt() -> impl Strategy<Value = f64> {
    prop_oneof![
        4 => 0.0..2.0f64,
        1 => Just(0.0),
        1 => -5.0..0.0f64,
        1 => 0.0..1e6f64,
        1 => Just(f64::NAN),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (dt(), prop_oneof![0..5_000u64, Just(u64::MAX / 4)], proptest::option::of(prop_oneof![0..3u32, Just(u32::MAX)]), proptest::option::of(prop_oneof![0..4u32, Just(u32::MAX)]), prop_oneof![0.0..10.0f64, Just(f64::NAN)])
            .prop_map(|(dt, tokens, rank, micro_step, loss)| Op::Step { dt, tokens, rank, micro_step, loss }),
        1 => dt().prop_map(|dt| Op::Eval { dt }),
        1 => (dt(), prop_oneof![Just(RunState::Paused), Just(RunState::Running), Just(RunState::Stopping), Just(RunState::Completed)])
            .prop_map(|(dt, state)| Op::State { dt, state }),
        1 => (dt(), 0..10_000_000u64, proptest::option::of(0..20_000_000u64), proptest::option::of(0..20_000u64))
            .prop_map(|(dt, start_tokens, total_tokens, total_steps)| Op::Resume { dt, start_tokens, total_tokens, total_steps }),
        1 => (1..10usize).prop_map(|back| Op::Repeat { back }),
    ]
}

/// Build the stored events of `ops` after a first `run_start`.
fn events(total_tokens: Option<u64>, ops: &[Op]) -> Vec<StoredEvent> {
    let mut time = 1_800_000_000.0;
    let mut out: Vec<Event> = vec![Event::new(
        time,
        RunStart {
            total_tokens,
            total_steps: Some(500),
            ..Default::default()
        },
    )];
    let (mut step, mut tokens) = (0u64, 0u64);
    let mut advance = |dt: f64| {
        time += if dt.is_nan() { 0.0 } else { dt };
        if dt.is_nan() { f64::NAN } else { time }
    };
    for op in ops {
        let event = match *op {
            Op::Step {
                dt,
                tokens: more,
                rank,
                micro_step,
                loss,
            } => {
                step += u64::from(micro_step.is_none_or(|m| m == 0));
                tokens = tokens.saturating_add(more);
                Event::new(
                    advance(dt),
                    Step {
                        step,
                        tokens,
                        loss,
                        rank,
                        micro_step,
                        ..Default::default()
                    },
                )
            }
            Op::Eval { dt } => Event::new(
                advance(dt),
                Eval {
                    step,
                    val_loss: 2.0,
                },
            ),
            Op::State { dt, state } => Event::new(
                advance(dt),
                StateChange {
                    state,
                    message: String::new(),
                },
            ),
            Op::Resume {
                dt,
                start_tokens,
                total_tokens,
                total_steps,
            } => {
                tokens = start_tokens;
                Event::new(
                    advance(dt),
                    RunStart {
                        total_tokens,
                        total_steps,
                        start_tokens,
                        start_step: step / 2,
                        ..Default::default()
                    },
                )
            }
            Op::Repeat { back } => out[out.len().saturating_sub(back)].clone(),
        };
        out.push(event);
    }
    out.into_iter()
        .enumerate()
        .map(|(i, event)| StoredEvent {
            seq: i as u64 + 1,
            event,
        })
        .collect()
}

fn check(summary: &RunSummary) -> Result<(), TestCaseError> {
    let finite_non_negative = |v: Option<f64>| v.is_none_or(|v| v.is_finite() && v >= 0.0);
    prop_assert!(
        finite_non_negative(summary.eta_secs),
        "eta_secs {:?}",
        summary.eta_secs
    );
    prop_assert!(
        finite_non_negative(summary.eta_low_secs),
        "eta_low_secs {:?}",
        summary.eta_low_secs
    );
    prop_assert!(
        finite_non_negative(summary.eta_high_secs),
        "eta_high_secs {:?}",
        summary.eta_high_secs
    );
    if let (Some(low), Some(eta), Some(high)) = (
        summary.eta_low_secs,
        summary.eta_secs,
        summary.eta_high_secs,
    ) {
        prop_assert!(low <= eta && eta <= high, "range {low} ≤ {eta} ≤ {high}");
    }
    prop_assert_eq!(summary.eta_secs.is_some(), summary.eta_low_secs.is_some());
    prop_assert!(summary.finish_time.is_none_or(f64::is_finite));
    prop_assert!(
        finite_non_negative(summary.tokens_per_sec),
        "tokens_per_sec {:?}",
        summary.tokens_per_sec
    );
    prop_assert!(finite_non_negative(summary.long_run_tokens_per_sec));
    prop_assert!(finite_non_negative(summary.mfu));
    prop_assert!(
        summary.progress.is_none_or(|p| (0.0..=1.0).contains(&p)),
        "progress {:?}",
        summary.progress
    );
    match summary.eta_status {
        EtaStatus::Estimated => {
            prop_assert!(summary.eta_secs.is_some() && summary.finish_time.is_some())
        }
        EtaStatus::Finishing => prop_assert_eq!(summary.eta_secs, Some(0.0)),
        EtaStatus::None | EtaStatus::Estimating => prop_assert!(summary.eta_secs.is_none()),
        EtaStatus::Paused => prop_assert!(summary.finish_time.is_none()),
    }
    if summary.state.is_finished() {
        prop_assert!(summary.eta_secs.is_none());
    }
    let json = serde_json::to_string(summary).map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert!(
        !json.contains("Infinity") && !json.contains("NaN")
            || summary.loss.is_some_and(f64::is_nan),
        "{}",
        json
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn eta_is_finite_and_never_negative(total_tokens in proptest::option::of(0..10_000_000u64), ops in proptest::collection::vec(op(), 0..200)) {
        let mut summary = RunSummary::new("r");
        for stored in events(total_tokens, &ops) {
            summary.apply(&stored);
            check(&summary)?;
        }
    }

    #[test]
    fn folding_twice_changes_nothing(ops in proptest::collection::vec(op(), 0..100)) {
        let events = events(Some(1_000_000), &ops);
        let mut once = RunSummary::new("r");
        events.iter().for_each(|e| once.apply(e));
        let mut twice = once.clone();
        events.iter().for_each(|e| twice.apply(e));
        // Debug text, as NaN losses are not equal to themselves.
        prop_assert_eq!(format!("{once:?}"), format!("{twice:?}"));
    }
}

#[test]
fn a_run_start_alone_is_estimating() {
    let mut summary = RunSummary::new("r");
    summary.apply(&StoredEvent {
        seq: 1,
        event: Event::new(
            1.0,
            EventBody::RunStart(RunStart {
                total_tokens: Some(10),
                ..Default::default()
            }),
        ),
    });
    assert_eq!(
        (summary.eta_status, summary.eta_secs),
        (EtaStatus::Estimating, None)
    );
}
