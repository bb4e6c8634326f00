//! Tokens, progress, tokens/s and ETA in the situations of a real run, each checked against
//! figures worked out by hand (comments give the arithmetic), within 10%.

use trainconsole_protocol::{
    Checkpoint, EtaStatus, Eval, Event, EventBody, ModelShape, RunStart, RunState, RunSummary,
    StateChange, Step, StoredEvent,
};

/// Producer time of the first event of every stream.
const T0: f64 = 1_800_000_000.0;

/// An event stream built step by step on the producer's clock.
struct Stream {
    events: Vec<StoredEvent>,
    time: f64,
}

impl Stream {
    fn new(start: RunStart) -> Self {
        let mut stream = Self {
            events: Vec::new(),
            time: T0,
        };
        stream.push(0.0, start);
        stream
    }

    /// Advance the clock by `dt` seconds and report `body` then.
    fn push(&mut self, dt: f64, body: impl Into<EventBody>) -> &mut Self {
        self.time += dt;
        let seq = self.events.len() as u64 + 1;
        self.events.push(StoredEvent {
            seq,
            event: Event::new(self.time, body),
        });
        self
    }

    /// Steps `from..=to` of a run that trains `tokens_per_step` per step, `dt` seconds apart.
    fn steps(&mut self, from: u64, to: u64, dt: f64, tokens_per_step: u64) -> &mut Self {
        for s in from..=to {
            self.push(dt, step(s, s * tokens_per_step));
        }
        self
    }

    fn fold(&self) -> RunSummary {
        let mut summary = RunSummary::new("r");
        self.events.iter().for_each(|e| summary.apply(e));
        summary
    }
}

fn budget(total_tokens: u64) -> RunStart {
    RunStart {
        total_tokens: Some(total_tokens),
        ..Default::default()
    }
}

fn step(step: u64, tokens: u64) -> Step {
    Step {
        step,
        tokens,
        loss: 2.0,
        ..Default::default()
    }
}

fn state(state: RunState) -> StateChange {
    StateChange {
        state,
        message: String::new(),
    }
}

#[track_caller]
fn assert_near(actual: Option<f64>, expected: f64, what: &str) {
    let actual = actual.unwrap_or_else(|| panic!("{what} is None, want {expected}"));
    let tolerance = 0.10 * expected.abs();
    assert!(
        (actual - expected).abs() <= tolerance,
        "{what} = {actual}, want {expected} ± 10%"
    );
}

/// The stream of `../shared/acceptance/throughput-eta`: a 20 s first step, then 0.25 s per
/// 1,000-token step, a 5 s eval after every 200th step, budget 1,000,000 tokens.
fn acceptance_stream(last_step: u64) -> Stream {
    let mut stream = Stream::new(budget(1_000_000));
    for s in 1..=last_step {
        stream.push(if s == 1 { 20.0 } else { 0.25 }, step(s, s * 1000));
        if s % 200 == 0 && s <= 350 {
            stream.push(
                5.0,
                Eval {
                    step: s,
                    val_loss: 2.5,
                },
            );
        }
    }
    stream
}

#[test]
fn acceptance_stream_at_step_350_and_past_the_budget() {
    let summary = acceptance_stream(350).fold();
    // The last 30 s (steps 230..350) hold no eval: 1,000 tokens per 0.25 s.
    assert_near(summary.tokens_per_sec, 4000.0, "tokens/s");
    // Since warm-up (step 3, T0 + 20.5 s) to step 350 (T0 + 112.25 s): 347,000 tokens in
    // 91.75 s = 3,782 tokens/s; 650,000 tokens left → 171.9 s. The script wants 179 ± 10%
    // (650 steps × (0.25 + 5/200) s).
    assert_near(summary.eta_secs, 179.0, "ETA");
    assert_near(summary.eta_secs, 171.9, "ETA");
    assert_eq!(summary.eta_status, EtaStatus::Estimated);
    // What the rest of the run really takes: 650 × 0.25 s + evals after steps 400, 600, 800.
    let (low, high) = (
        summary.eta_low_secs.unwrap(),
        summary.eta_high_secs.unwrap(),
    );
    assert!(
        low <= 177.5 && 177.5 <= high,
        "range {low}..{high} misses the true 177.5 s"
    );
    // Step costs since warm-up, in 21 full blocks of 16 steps (336 steps): 20 blocks at
    // 0.25 s per step and the one with the eval at 0.25 + 5/16 s; long-run σ² = 16 × (20 ×
    // 0.01488² + 0.29762²) / 20 = 0.0744, σ = 0.2728 s; n = 650 steps left, k = 336:
    // 1.2816 × 0.2728 × √(650 + 650²/336) = 15.3 s either side.
    let eta = summary.eta_secs.unwrap();
    assert_near(Some(eta - low), 15.3, "ETA − low");
    assert_near(Some(high - eta), 15.3, "high − ETA");
    assert_eq!(summary.progress, Some(0.35));
    assert_near(
        summary.finish_time.map(|t| t - T0),
        112.25 + 171.9,
        "finish time",
    );

    // On to step 1010 (no evals in the script's second batch): past the budget.
    let mut stream = acceptance_stream(350);
    let mut summary = stream.fold();
    for s in 351..=1010 {
        stream.push(0.25, step(s, s * 1000));
        summary.apply(stream.events.last().unwrap());
        let eta = summary.eta_secs;
        assert!(
            eta.is_none_or(|e| e.is_finite() && e >= 0.0),
            "ETA {eta:?} at step {s}"
        );
        if s >= 1000 {
            assert_eq!(summary.eta_status, EtaStatus::Finishing, "step {s}");
            assert_eq!(eta, Some(0.0));
        }
    }
    assert_eq!(
        summary.tokens, 1_010_000,
        "the counter keeps the true count"
    );
    assert_eq!(summary.progress, Some(1.0), "the bar stops at 100%");
    assert_near(summary.tokens_per_sec, 4000.0, "tokens/s past the budget");
    assert_eq!(summary.finish_time, None);

    // The run ends: the ETA is cleared.
    stream.push(3.0, state(RunState::Completed));
    summary.apply(stream.events.last().unwrap());
    assert_eq!(
        (summary.eta_status, summary.eta_secs, summary.eta_low_secs),
        (EtaStatus::None, None, None)
    );
}

#[test]
fn slow_first_step_is_left_out() {
    // Step 1 takes 30 s (compile), then 1,000 tokens every 0.5 s; budget 100,000.
    let mut stream = Stream::new(budget(100_000));
    stream.push(30.0, step(1, 1000)).steps(2, 7, 0.5, 1000);
    // Warm-up ends at step 3; 4 steps after it are too few.
    let summary = stream.fold();
    assert_eq!(
        (summary.eta_status, summary.eta_secs),
        (EtaStatus::Estimating, None)
    );
    assert_near(
        summary.tokens_per_sec,
        2000.0,
        "tokens/s right after warm-up",
    );
    stream.steps(8, 20, 0.5, 1000);
    let summary = stream.fold();
    assert_eq!(summary.tokens, 20_000);
    assert_eq!(summary.progress, Some(0.2));
    // 2,000 tokens/s, not 20,000 / 39.5 s = 506 with the compile step.
    assert_near(summary.tokens_per_sec, 2000.0, "tokens/s");
    // 80,000 tokens left at 2,000 tokens/s.
    assert_near(summary.eta_secs, 40.0, "ETA");
    assert_eq!(summary.eta_status, EtaStatus::Estimated);
    assert_near(
        summary.finish_time.map(|t| t - T0),
        30.0 + 19.0 * 0.5 + 40.0,
        "finish time",
    );
}

#[test]
fn periodic_eval_is_amortized() {
    // 0.5 s steps of 1,000 tokens; after every 10th step a 5 s eval: 10 steps per 10 s.
    let mut stream = Stream::new(budget(1_000_000));
    stream.push(1.0, step(1, 1000));
    for s in 2..=203 {
        stream.push(0.5, step(s, s * 1000));
        if s % 10 == 0 {
            stream.push(
                5.0,
                Eval {
                    step: s,
                    val_loss: 2.4,
                },
            );
        }
    }
    let summary = stream.fold();
    // Long run: 1,000 tokens/s (0.5 + 5/10 s per step); 797,000 tokens left → 797 s.
    assert_near(summary.eta_secs, 797.0, "ETA");
    // The last 30 s span three whole eval periods: 30,000 tokens in 30 s.
    assert_near(summary.tokens_per_sec, 1000.0, "tokens/s");
    assert_eq!(summary.val_loss, Some(2.4));
    // Range: 200 step costs after warm-up in 25 blocks of 8 steps. Of every 5 blocks (40
    // steps, 4 evals) 4 hold an eval, costing (8 × 0.5 + 5) / 8 = 1.125 s per step, and one
    // costs 0.5 s; the mean is 1 s. Long-run σ² = 8 × (20 × 0.125² + 5 × 0.5²) / 24 = 0.521,
    // σ = 0.72 s; n = 797 steps left: 1.2816 × 0.72 × √(797 + 797²/200) = 58 s either side
    // (the plain σ of 1.5 s would give 121 s: the schedule of evals is no uncertainty).
    let eta = summary.eta_secs.unwrap();
    assert_near(summary.eta_low_secs.map(|low| eta - low), 58.0, "ETA − low");
    assert_near(
        summary.eta_high_secs.map(|high| high - eta),
        58.0,
        "high − ETA",
    );
}

#[test]
fn paused_time_is_left_out() {
    // 1,000 tokens per 0.5 s; paused for 10 minutes after step 20.
    let mut stream = Stream::new(budget(100_000));
    stream.steps(1, 20, 0.5, 1000);
    stream.push(0.1, state(RunState::Paused));
    let summary = stream.fold();
    assert_eq!(summary.state, RunState::Paused);
    assert_eq!(summary.eta_status, EtaStatus::Paused);
    // Training time left: 80,000 tokens at 2,000 tokens/s; no finish clock time while paused.
    assert_near(summary.eta_secs, 40.0, "ETA while paused");
    assert_eq!(summary.finish_time, None);

    stream
        .push(600.0, state(RunState::Running))
        .push(0.4, step(21, 21_000))
        .steps(22, 40, 0.5, 1000);
    let summary = stream.fold();
    // Without the pause left out: 37,000 tokens in 618.5 s = 60 tokens/s.
    assert_near(summary.tokens_per_sec, 2000.0, "tokens/s");
    assert_near(summary.eta_secs, 30.0, "ETA");
    assert_eq!(summary.eta_status, EtaStatus::Estimated);
    assert_near(
        summary.finish_time.map(|t| t - stream.time),
        30.0,
        "finish time after the latest step",
    );
}

#[test]
fn resume_from_checkpoint_counts_restored_tokens_as_done_not_as_work() {
    // Session 1: 1,000 tokens per 0.5 s; checkpoint at step 500; the worker dies at step 520.
    let mut stream = Stream::new(RunStart {
        total_tokens: Some(1_000_000),
        total_steps: Some(1000),
        ..Default::default()
    });
    stream.steps(1, 500, 0.5, 1000);
    stream.push(
        1.0,
        Checkpoint {
            step: 500,
            tokens: 500_000,
            path: "ckpt/step-500".into(),
        },
    );
    stream.steps(501, 520, 0.5, 1000);
    // 15 minutes later it is resumed from step 500 on a machine twice as fast.
    let resume = RunStart {
        total_tokens: Some(1_000_000),
        total_steps: Some(1000),
        start_step: 500,
        start_tokens: 500_000,
        resumed_from: Some("ckpt/step-500".into()),
        ..Default::default()
    };
    stream.push(900.0, resume);
    let summary = stream.fold();
    assert_eq!(
        (summary.tokens, summary.step),
        (500_000, 500),
        "back to the checkpoint"
    );
    assert_eq!(summary.progress, Some(0.5));
    assert_eq!(
        (summary.eta_status, summary.tokens_per_sec),
        (EtaStatus::Estimating, None)
    );

    stream
        .push(20.0, step(501, 501_000))
        .steps(502, 505, 0.25, 1000);
    assert_eq!(
        stream.fold().eta_status,
        EtaStatus::Estimating,
        "a new warm-up"
    );
    stream.steps(506, 600, 0.25, 1000);
    let summary = stream.fold();
    assert_eq!(summary.tokens, 600_000);
    assert_eq!(summary.start_tokens, 500_000);
    assert_eq!(summary.progress, Some(0.6));
    // This session's rate only: 1,000 tokens per 0.25 s (not 600,000 tokens over the run's
    // life, nor the old 2,000 tokens/s); 400,000 tokens left → 100 s.
    assert_near(summary.tokens_per_sec, 4000.0, "tokens/s");
    assert_near(summary.eta_secs, 100.0, "ETA");
    assert_eq!(summary.checkpoint_step, Some(500));
}

#[test]
fn gradient_accumulation_counts_optimizer_steps_and_weights_the_loss_by_tokens() {
    // 4 micro-batches of 100, 200, 300 and 400 tokens per optimizer step (1,000 tokens),
    // 0.125 s each; their losses 4, 3, 2, 1: the step's loss is (400 + 600 + 600 + 400) /
    // 1,000 = 2.0 (the plain mean would be 2.5).
    let mut stream = Stream::new(RunStart {
        total_tokens: Some(100_000),
        total_steps: Some(100),
        grad_accum: Some(4),
        ..Default::default()
    });
    let micro = |stream: &mut Stream, s: u64, m: u32| {
        let tokens = (s - 1) * 1000 + [100, 300, 600, 1000][m as usize];
        let loss = [4.0, 3.0, 2.0, 1.0][m as usize];
        stream.push(
            0.125,
            Step {
                step: s,
                tokens,
                loss,
                micro_step: Some(m),
                ..Default::default()
            },
        );
    };
    for s in 1..=20 {
        (0..4).for_each(|m| micro(&mut stream, s, m));
    }
    let summary = stream.fold();
    assert_eq!((summary.step, summary.tokens), (20, 20_000));
    assert_eq!(summary.progress, Some(0.2));
    assert_near(summary.loss, 2.0, "token-weighted loss");
    assert_near(summary.tokens_per_sec, 2000.0, "tokens/s");
    assert_near(summary.eta_secs, 40.0, "ETA");
    // Half-way through step 21 the step counter waits; tokens do not.
    micro(&mut stream, 21, 0);
    micro(&mut stream, 21, 1);
    let summary = stream.fold();
    assert_eq!((summary.step, summary.tokens), (20, 20_300));
    assert_near(summary.loss, 2.0, "loss of the last whole step");

    // Without `grad_accum` in run_start, the largest micro_step seen tells where steps end.
    let mut events = stream.events.clone();
    let EventBody::RunStart(start) = &mut events[0].event.body else {
        panic!()
    };
    start.grad_accum = None;
    let mut summary = RunSummary::new("r");
    events.iter().for_each(|e| summary.apply(e));
    assert_eq!((summary.step, summary.tokens), (20, 20_300));
}

#[test]
fn two_ranks_sum_their_tokens() {
    // Two ranks each train 1,000 tokens per 0.5 s step and report their own counts.
    let mut stream = Stream::new(RunStart {
        total_tokens: Some(100_000),
        world_size: Some(2),
        ..Default::default()
    });
    for s in 1..=20 {
        stream.push(
            0.49,
            Step {
                step: s,
                tokens: s * 1000,
                loss: 3.0,
                rank: Some(0),
                ..Default::default()
            },
        );
        stream.push(
            0.01,
            Step {
                step: s,
                tokens: s * 1000,
                loss: 2.0,
                rank: Some(1),
                ..Default::default()
            },
        );
    }
    let summary = stream.fold();
    assert_eq!((summary.step, summary.tokens), (20, 40_000));
    assert_eq!(summary.progress, Some(0.4));
    assert_eq!(summary.world_size, 2);
    assert_near(summary.loss, 2.5, "loss over both ranks");
    assert_near(summary.tokens_per_sec, 4000.0, "tokens/s");
    // 60,000 tokens left at 4,000 tokens/s.
    assert_near(summary.eta_secs, 15.0, "ETA");
}

#[test]
fn a_duplicated_event_is_applied_once() {
    // The acceptance stream with every step delivered twice (a retrying producer), the
    // run_start repeated, and step 100 delivered again much later: same figures.
    let clean = acceptance_stream(350);
    let mut doubled = Stream {
        events: Vec::new(),
        time: T0,
    };
    for stored in &clean.events {
        doubled.time = stored.event.time;
        doubled.push(0.0, stored.event.body.clone());
        if matches!(
            stored.event.body,
            EventBody::Step(_) | EventBody::RunStart(_)
        ) {
            doubled.push(0.0, stored.event.body.clone());
        }
    }
    let late = clean
        .events
        .iter()
        .find(|e| matches!(&e.event.body, EventBody::Step(s) if s.step == 100))
        .unwrap();
    doubled.time = late.event.time;
    doubled.push(0.0, late.event.body.clone());
    let (once, twice) = (clean.fold(), doubled.fold());
    assert_eq!(twice.tokens, 350_000);
    assert_eq!(twice.step, 350);
    assert_eq!(twice.tokens_per_sec, once.tokens_per_sec);
    assert_eq!(twice.eta_secs, once.eta_secs);
    assert_eq!(twice.eta_low_secs, once.eta_low_secs);
    assert_near(twice.eta_secs, 179.0, "ETA");
}

#[test]
fn a_near_zero_interval_gives_no_spike() {
    // Two steps 1 ms apart at the start: no rate rather than 1,000,000 tokens/s.
    let mut stream = Stream::new(budget(100_000));
    stream.push(2.0, step(1, 1000)).push(0.001, step(2, 2000));
    let summary = stream.fold();
    assert_eq!(summary.tokens_per_sec, None);
    let json = serde_json::to_string(&summary).unwrap();
    assert!(
        json.contains(r#""tokens_per_sec":null"#)
            && !json.contains("Infinity")
            && !json.contains("NaN"),
        "{json}"
    );

    // Mid-run, a producer stamps steps 10 and 11 with the same time: the rate stays right.
    let mut stream = Stream::new(budget(100_000));
    stream
        .steps(1, 10, 0.5, 1000)
        .push(0.0, step(11, 11_000))
        .push(1.0, step(12, 12_000))
        .steps(13, 20, 0.5, 1000);
    let summary = stream.fold();
    assert_near(summary.tokens_per_sec, 2000.0, "tokens/s");
    assert_near(summary.eta_secs, 40.0, "ETA");
    assert!(summary.tokens_per_sec.unwrap().is_finite());
}

#[test]
fn counts_beyond_2_to_the_32() {
    // Resumed at 5e9 tokens; 2^20 tokens per 0.5 s step; budget 1e10.
    let start = RunStart {
        total_tokens: Some(10_000_000_000),
        start_step: 4768,
        start_tokens: 5_000_000_000,
        ..Default::default()
    };
    let mut stream = Stream::new(start);
    for s in 1..=20u64 {
        stream.push(
            if s == 1 { 5.0 } else { 0.5 },
            step(4768 + s, 5_000_000_000 + s * (1 << 20)),
        );
    }
    let summary = stream.fold();
    let tokens = 5_000_000_000 + 20 * (1u64 << 20);
    assert_eq!(summary.tokens, tokens);
    assert_near(summary.progress, tokens as f64 / 1e10, "progress");
    // 2^21 = 2,097,152 tokens/s; (1e10 − 5,020,971,520) / 2,097,152 = 2,374.3 s.
    assert_near(summary.tokens_per_sec, 2_097_152.0, "tokens/s");
    assert_near(summary.eta_secs, 2374.3, "ETA");
    let json = serde_json::to_string(&summary).unwrap();
    assert!(json.contains(&format!(r#""tokens":{tokens}"#)), "{json}");
}

#[test]
fn mfu_from_model_shape_and_peak() {
    // The small preset: 826,112 parameters without position embeddings, 4 layers, width
    // 128, context 128: 6 × 826,112 + 12 × 4 × 128 × 128 = 5,743,104 FLOPs per token.
    let start = RunStart {
        total_tokens: Some(100_000),
        model: Some(ModelShape {
            params: Some(826_112),
            n_layer: Some(4),
            d_model: Some(128),
            seq_len: Some(128),
            flops_per_token: None,
        }),
        peak_flops_per_sec: Some(1e11),
        peak_flops_source: Some("test".into()),
        ..Default::default()
    };
    let mut stream = Stream::new(start);
    stream.steps(1, 20, 0.5, 1000);
    let summary = stream.fold();
    assert_eq!(summary.flops_per_token, Some(5_743_104.0));
    // At 2,000 tokens/s: 11.486 GFLOP/s, 11.5% of 100 GFLOP/s.
    assert_near(summary.model_flops_per_sec, 11.486e9, "model FLOP/s");
    assert_near(summary.mfu, 0.11486, "MFU");
    assert_eq!(summary.peak_flops_source.as_deref(), Some("test"));
}

#[test]
fn a_clock_stepped_back_neither_freezes_nor_inflates_the_rate() {
    // 2,000 tokens/s: 1,000 tokens every 0.5 s. After step 100 the producer's clock steps
    // back 300 s (NTP, a restored VM) and goes on at the same pace.
    let mut stream = Stream::new(budget(2_000_000));
    stream.steps(1, 100, 0.5, 1000);
    stream.push(-300.0 + 0.5, step(101, 101_000));
    stream.steps(102, 700, 0.5, 1000);
    let summary = stream.fold();
    // The step back adds nothing; every other step 0.5 s: still 2,000 tokens/s over the window
    // and since warm-up; 1,300,000 tokens left take 650 s.
    assert_near(summary.tokens_per_sec, 2000.0, "tokens/s after the clock stepped back");
    assert_near(summary.eta_secs, 650.0, "ETA after the clock stepped back");
    // The finish clock runs from the latest stamp, on the producer's (now corrected) clock.
    assert_near(summary.finish_time.map(|t| t - stream.time), 650.0, "finish time − latest stamp");
}

#[test]
fn a_single_stamp_in_the_future_does_not_hold_the_rate_down() {
    // Steps every 0.5 s at 1,000 tokens, but step 61 is stamped 1,000 s ahead.
    let mut stream = Stream::new(budget(1_000_000));
    stream.steps(1, 60, 0.5, 1000);
    stream.push(1000.0, step(61, 61_000));
    stream.push(-1000.0 + 0.5, step(62, 62_000));
    stream.steps(63, 160, 0.5, 1000);
    let summary = stream.fold();
    // 98 steps (49 s) after the bad stamp the 30 s window holds only normal steps.
    assert_near(summary.tokens_per_sec, 2000.0, "tokens/s 49 s after a stamp in the future");
    // Before this fix the active clock stood still until the producer's passed the bad stamp
    // (tokens/s 41, ETA 9,255 s). The jump still counts once in the long-run rate: 157
    // steps since warm-up over 78.5 + 1,000 s: 145.6 tokens/s, 840,000 tokens left: ≈ 5,770 s.
    // It is finite and positive; the window's rate is the figure to trust here.
    let eta = summary.eta_secs.expect("an ETA");
    assert!(eta.is_finite() && eta > 0.0, "{eta}");
}

#[test]
fn a_step_after_a_pause_without_running_ends_the_pause() {
    // 40 steps at 0.5 s, `paused`, then steps again 100 s later with no `state: running`.
    let mut stream = Stream::new(budget(100_000));
    stream.steps(1, 40, 0.5, 1000);
    stream.push(0.1, state(RunState::Paused));
    let paused = stream.fold();
    assert_eq!(paused.state, RunState::Paused);
    assert_eq!(paused.eta_status, EtaStatus::Paused);
    stream.push(100.0, step(41, 41_000));
    stream.steps(42, 60, 0.5, 1000);
    let summary = stream.fold();
    assert_eq!(summary.state, RunState::Running, "a step ends the pause");
    assert_eq!(summary.eta_status, EtaStatus::Estimated);
    // The pause is left out of the rate: 2,000 tokens/s; 40,000 tokens left: 20 s.
    assert_near(summary.long_run_tokens_per_sec, 2000.0, "long-run tokens/s after the pause");
    assert_near(summary.eta_secs, 20.0, "ETA after the pause");
}

#[test]
fn a_step_budget_without_token_counts_gets_an_eta_from_the_step_rate() {
    // total_steps 100, every step reports 0 tokens, 40 steps 0.5 s apart.
    let mut stream = Stream::new(RunStart { total_steps: Some(100), ..Default::default() });
    for s in 1..=40 {
        stream.push(0.5, step(s, 0));
    }
    let summary = stream.fold();
    assert_eq!(summary.progress, Some(0.4));
    // 2 steps/s; 60 steps left: 30 s.
    assert_eq!(summary.eta_status, EtaStatus::Estimated);
    assert_near(summary.eta_secs, 30.0, "ETA from the step rate");
}
