//! End-to-end runs of the training loop with the tiny preset.

use std::path::{Path, PathBuf};

use candle_core::Var;
use trainconsole_protocol::{Event, EventBody, RunState};
use trainconsole_trainer::{
    AbortHandle, Corpus, TrainConfig, TrainError, load_checkpoint, resume_config, save_checkpoint, train,
};

fn shakespeare_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/tinyshakespeare.txt")
}

/// The first `bytes` bytes of Tiny Shakespeare (ASCII, so any cut is valid UTF-8).
fn shakespeare_prefix(bytes: usize, block_size: usize) -> Corpus {
    let mut text = std::fs::read(shakespeare_path()).unwrap();
    text.truncate(bytes);
    Corpus::from_bytes(text, Path::new("tinyshakespeare-prefix.txt"), block_size).unwrap()
}

/// The tiny preset for `steps` steps, evaluating every 5 with short samples.
fn tiny(steps: u64) -> TrainConfig {
    let cfg = TrainConfig {
        eval_interval: 5,
        eval_iters: 2,
        sample_tokens: 20,
        checkpoint_interval: 0,
        ..TrainConfig::tiny()
    };
    TrainConfig { max_tokens: steps * cfg.tokens_per_step(), ..cfg }
}

fn steps(events: &[Event]) -> Vec<&trainconsole_protocol::Step> {
    events.iter().filter_map(|e| if let EventBody::Step(s) = &e.body { Some(s) } else { None }).collect()
}

fn kinds(events: &[Event]) -> Vec<&'static str> {
    events.iter().map(Event::kind).collect()
}

fn state_of(event: &Event) -> Option<RunState> {
    if let EventBody::State(change) = &event.body { Some(change.state) } else { None }
}

#[test]
fn loss_falls_on_a_small_corpus() {
    let cfg = tiny(60);
    let corpus = shakespeare_prefix(20_000, cfg.block_size);
    let run_dir = tempfile::tempdir().unwrap();
    let mut events = Vec::new();
    let outcome = train(&cfg, &corpus, run_dir.path(), None, "loss falls", &AbortHandle::new(), &mut events).unwrap();

    let losses: Vec<f64> = steps(&events).iter().map(|s| s.loss).collect();
    assert_eq!(losses.len(), 60);
    let first = losses[..5].iter().sum::<f64>() / 5.0;
    let last = losses[50..].iter().sum::<f64>() / 10.0;
    // Untrained, the loss is about ln 256 = 5.55 nats; byte frequencies alone bring it near 3.3.
    assert!((first - 5.55).abs() < 0.3, "first steps: {first}");
    assert!(last < 3.5 && last < first - 1.5, "first {first}, last {last}");
    let val_loss = outcome.val_loss.unwrap();
    assert!(val_loss < 3.7, "{val_loss}");
    assert_eq!(outcome.state, RunState::Completed);
    assert!(outcome.tokens_per_sec > 0.0);
}

#[test]
fn a_complete_run_reports_every_event_in_order() {
    let cfg = tiny(12);
    let corpus = shakespeare_prefix(20_000, cfg.block_size);
    let run_dir = tempfile::tempdir().unwrap();
    let mut events = Vec::new();
    let outcome = train(&cfg, &corpus, run_dir.path(), None, "order", &AbortHandle::new(), &mut events).unwrap();

    // Evaluations at steps 5 and 10 and after the last step, 12; one final checkpoint.
    let mut expected = vec!["run_start", "state"];
    for step in 1..=12 {
        expected.push("step");
        if step % 5 == 0 || step == 12 {
            expected.extend(["eval", "sample"]);
        }
    }
    expected.extend(["checkpoint", "state"]);
    assert_eq!(kinds(&events), expected);

    let EventBody::RunStart(start) = &events[0].body else { panic!("first event is not run_start") };
    assert_eq!(start.name, "order");
    assert_eq!(start.config, serde_json::to_value(&cfg).unwrap());
    assert_eq!((start.total_tokens, start.total_steps, start.tokens_per_step), (Some(12 * 128), Some(12), Some(128)));
    assert_eq!((start.start_step, start.start_tokens, start.resumed_from.clone()), (0, 0, None));
    assert_eq!(state_of(&events[1]), Some(RunState::Running));

    for (i, step) in steps(&events).iter().enumerate() {
        assert_eq!(step.step, i as u64 + 1);
        assert_eq!(step.tokens, (i as u64 + 1) * 128);
        assert!(step.loss.is_finite() && step.grad_norm.unwrap() > 0.0 && step.step_time_ms.unwrap() > 0.0);
    }
    // Warm-up of 10 steps: lr(0) = 1e-2 · 1/11.
    assert!((steps(&events)[0].lr.unwrap() - 1e-2 / 11.0).abs() < 1e-12);

    let samples: Vec<&String> =
        events.iter().filter_map(|e| if let EventBody::Sample(s) = &e.body { Some(&s.text) } else { None }).collect();
    assert_eq!(samples.len(), 3);
    for text in samples {
        // 20 bytes; a byte that is not valid UTF-8 becomes one U+FFFD.
        assert!(!text.is_empty() && text.chars().count() <= 20, "{text:?}");
    }

    let n = events.len();
    let EventBody::Checkpoint(checkpoint) = &events[n - 2].body else { panic!("no checkpoint before the end") };
    assert_eq!((checkpoint.step, checkpoint.tokens), (12, 12 * 128));
    assert_eq!(PathBuf::from(&checkpoint.path), run_dir.path().join("checkpoints/step-000012"));
    assert_eq!(state_of(&events[n - 1]), Some(RunState::Completed));

    assert_eq!((outcome.state, outcome.step, outcome.tokens), (RunState::Completed, 12, 12 * 128));
    assert_eq!(outcome.checkpoint, run_dir.path().join("checkpoints/step-000012"));
    let last_eval =
        events.iter().rev().find_map(|e| if let EventBody::Eval(v) = &e.body { Some(v) } else { None }).unwrap();
    assert_eq!((last_eval.step, Some(last_eval.val_loss)), (12, outcome.val_loss));
}

/// Runs `cfg` and requests an abort as soon as the `step` event of `abort_at` is emitted.
fn run_aborting_at(
    cfg: &TrainConfig,
    corpus: &Corpus,
    run_dir: &Path,
    resume: Option<&Path>,
    abort_at: u64,
) -> (Vec<Event>, Result<trainconsole_trainer::TrainOutcome, TrainError>) {
    let abort = AbortHandle::new();
    let handle = abort.clone();
    let mut events = Vec::new();
    let mut sink = |event: Event| {
        if matches!(&event.body, EventBody::Step(s) if s.step == abort_at) {
            handle.request();
        }
        events.push(event);
    };
    let outcome = train(cfg, corpus, run_dir, resume, "abort", &abort, &mut sink);
    (events, outcome)
}

#[test]
fn abort_stops_after_the_step_and_saves_a_loadable_checkpoint() {
    let cfg = tiny(1000);
    let corpus = shakespeare_prefix(20_000, cfg.block_size);
    let run_dir = tempfile::tempdir().unwrap();
    let (events, outcome) = run_aborting_at(&cfg, &corpus, run_dir.path(), None, 3);
    let outcome = outcome.unwrap();

    assert_eq!((outcome.state, outcome.step, outcome.tokens), (RunState::Aborted, 3, 384));
    assert_eq!(kinds(&events), vec!["run_start", "state", "step", "step", "step", "checkpoint", "state"]);
    assert_eq!(state_of(events.last().unwrap()), Some(RunState::Aborted));

    let dir = run_dir.path().join("checkpoints/step-000003");
    assert_eq!(outcome.checkpoint, dir);
    let loaded = load_checkpoint(&dir).unwrap();
    assert_eq!((loaded.meta.step, loaded.meta.tokens, loaded.optimizer.step), (3, 384, 3));
    assert_eq!(loaded.meta.config, cfg);
    assert_eq!(loaded.meta.run_name, "abort");
    // No temporary directory is left next to it.
    assert_eq!(std::fs::read_dir(run_dir.path().join("checkpoints")).unwrap().count(), 1);
}

#[test]
fn abort_during_evaluation_skips_the_partial_eval() {
    let cfg = TrainConfig { eval_iters: 1000, ..tiny(100) };
    let corpus = shakespeare_prefix(20_000, cfg.block_size);
    let run_dir = tempfile::tempdir().unwrap();
    // Abort at step 5: the evaluation of step 5 sees the request before its first batch.
    let (events, outcome) = run_aborting_at(&cfg, &corpus, run_dir.path(), None, 5);
    assert_eq!(outcome.unwrap().step, 5);
    assert_eq!(kinds(&events)[7..], ["checkpoint", "state"]);
}

#[test]
fn resumed_run_continues_like_an_uninterrupted_one() {
    let cfg = tiny(10);
    let corpus = shakespeare_prefix(20_000, cfg.block_size);

    let straight_dir = tempfile::tempdir().unwrap();
    let mut straight = Vec::new();
    train(&cfg, &corpus, straight_dir.path(), None, "straight", &AbortHandle::new(), &mut straight).unwrap();

    let first_dir = tempfile::tempdir().unwrap();
    let (_, first) = run_aborting_at(&cfg, &corpus, first_dir.path(), None, 4);
    let checkpoint = first.unwrap().checkpoint;

    let resumed_cfg = resume_config(&checkpoint, None).unwrap();
    assert_eq!(resumed_cfg, cfg);
    let second_dir = tempfile::tempdir().unwrap();
    let mut resumed = Vec::new();
    let outcome = train(
        &resumed_cfg,
        &corpus,
        second_dir.path(),
        Some(&checkpoint),
        "resumed",
        &AbortHandle::new(),
        &mut resumed,
    )
    .unwrap();

    let EventBody::RunStart(start) = &resumed[0].body else { panic!("first event is not run_start") };
    assert_eq!((start.start_step, start.start_tokens), (4, 512));
    assert_eq!(start.resumed_from.as_deref(), Some(checkpoint.display().to_string().as_str()));
    assert_eq!((outcome.state, outcome.step, outcome.tokens), (RunState::Completed, 10, 1280));

    // Same weights, optimizer state and batches: steps 5..=10 repeat the uninterrupted run.
    let expected = &steps(&straight)[4..];
    let got = steps(&resumed);
    assert_eq!(got.len(), 6);
    for (a, b) in expected.iter().zip(&got) {
        assert_eq!((a.step, a.tokens, a.lr), (b.step, b.tokens, b.lr));
        assert!((a.loss - b.loss).abs() < 1e-5, "step {}: {} vs {}", a.step, a.loss, b.loss);
    }
}

#[test]
fn resume_rejects_a_different_model_and_allows_a_new_budget() {
    let cfg = tiny(100);
    let corpus = shakespeare_prefix(20_000, cfg.block_size);
    let run_dir = tempfile::tempdir().unwrap();
    let (_, first) = run_aborting_at(&cfg, &corpus, run_dir.path(), None, 2);
    let checkpoint = first.unwrap().checkpoint;

    let other = TrainConfig { n_layer: 3, ..cfg.clone() };
    let err = train(&other, &corpus, run_dir.path(), Some(&checkpoint), "x", &AbortHandle::new(), &mut Vec::new())
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "checkpoint {}: the config to resume with differs from the checkpoint's in n_layer (3, checkpoint has 2)",
            checkpoint.display()
        )
    );

    // A budget of 3 steps: one more step, then completed.
    let cfg3 = resume_config(&checkpoint, Some(3 * 128)).unwrap();
    let outcome =
        train(&cfg3, &corpus, run_dir.path(), Some(&checkpoint), "x", &AbortHandle::new(), &mut Vec::new()).unwrap();
    assert_eq!((outcome.state, outcome.step), (RunState::Completed, 3));
}

#[test]
fn non_finite_loss_is_reported_and_changes_no_weight() {
    let cfg = tiny(100);
    let corpus = shakespeare_prefix(20_000, cfg.block_size);
    let run_dir = tempfile::tempdir().unwrap();
    let (_, first) = run_aborting_at(&cfg, &corpus, run_dir.path(), None, 1);
    let mut checkpoint = load_checkpoint(&first.unwrap().checkpoint).unwrap();

    // Poison the final LayerNorm gain: every logit, hence every loss, becomes NaN.
    let gain = checkpoint.weights["ln_f.weight"].clone();
    let poisoned = (gain.ones_like().unwrap() * f64::NAN).unwrap();
    checkpoint.weights.insert("ln_f.weight".to_string(), poisoned);
    let vars: Vec<(String, Var)> =
        checkpoint.weights.iter().map(|(name, t)| (name.clone(), Var::from_tensor(t).unwrap())).collect();
    let poisoned_dir = tempfile::tempdir().unwrap();
    let poisoned_checkpoint =
        save_checkpoint(poisoned_dir.path(), &checkpoint.meta, &vars, &checkpoint.optimizer).unwrap();

    let cfg3 = resume_config(&poisoned_checkpoint, Some(3 * 128)).unwrap();
    let mut events = Vec::new();
    let outcome =
        train(&cfg3, &corpus, run_dir.path(), Some(&poisoned_checkpoint), "nan", &AbortHandle::new(), &mut events)
            .unwrap();
    assert_eq!((outcome.state, outcome.step), (RunState::Completed, 3));
    let reported = steps(&events);
    assert_eq!(reported.iter().map(|s| s.step).collect::<Vec<_>>(), vec![2, 3]);
    for step in reported {
        assert!(step.loss.is_nan() && step.grad_norm.is_none(), "{step:?}");
    }
    assert!(outcome.val_loss.unwrap().is_nan());
    // No update was applied: same weights (apart from the NaNs) and AdamW step count.
    let last = load_checkpoint(&outcome.checkpoint).unwrap();
    assert_eq!(last.optimizer.step, 1);
    let values = |t: &candle_core::Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    assert_eq!(values(&last.weights["wte.weight"]), values(&checkpoint.weights["wte.weight"]));
}

/// The acceptance figure of the default preset: 2M tokens of Tiny Shakespeare must end below
/// 2.0 nats/token validation loss. About 1–2.5 minutes on 2 cores (val loss 1.8314), so
/// ignored by default: `cargo test -p trainconsole-trainer -- --ignored full_small_run --nocapture`.
#[test]
#[ignore]
fn full_small_run() {
    let cfg = TrainConfig::small();
    let corpus = Corpus::from_file(&shakespeare_path(), cfg.block_size).unwrap();
    let run_dir = tempfile::tempdir().unwrap();
    let mut events = Vec::new();
    let outcome =
        train(&cfg, &corpus, run_dir.path(), None, "full small run", &AbortHandle::new(), &mut events).unwrap();
    let val_loss = outcome.val_loss.unwrap();
    println!(
        "small preset, {} tokens: val_loss {val_loss:.4}, {:.0} train tokens/s, wall {:.1} s",
        outcome.tokens, outcome.tokens_per_sec, outcome.elapsed_secs
    );
    assert_eq!((outcome.state, outcome.step), (RunState::Completed, 977));
    assert!(val_loss < 2.0, "val_loss {val_loss}");
}
