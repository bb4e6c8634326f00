//! The training loop, nanoGPT style: one function, top to bottom.

use crate::checkpoint::DataInfo;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use candle_core::Var;
use rand::SeedableRng;
use rand::rngs::StdRng;
use trainconsole_protocol::{Checkpoint, Eval, Event, ModelShape, RunStart, RunState, Sample, StateChange, Step};

use crate::checkpoint::{
    CHECKPOINT_FORMAT_VERSION, CheckpointMeta, load_checkpoint, read_checkpoint_meta, save_checkpoint,
};
use crate::data::{Corpus, Split, decode};
use crate::error::TensorContext;
use crate::engine::{GptEngine, default_threads};
use crate::optim::{AdamWState, LrSchedule};
use crate::{Gpt, ParamStore, TrainConfig, TrainError};

/// Sampling temperature of the text samples (1.0: the model's own distribution).
pub const SAMPLE_TEMPERATURE: f64 = 1.0;
/// The token samples start from: a newline.
pub const SAMPLE_PROMPT: u8 = b'\n';

/// Config fields that may differ between a checkpoint and the config used to resume it: the
/// budget and the evaluation/checkpoint cadence. Every other field must be equal.
pub const RESUME_MUTABLE_FIELDS: [&str; 6] =
    ["max_tokens", "eval_interval", "eval_iters", "sample_tokens", "checkpoint_interval", "keep_checkpoints"];

/// Cloneable request to stop a run (an `Arc<AtomicBool>`). The loop checks it between steps,
/// between validation batches and between sampled tokens; once requested, the run stops
/// within one step, writes a checkpoint and ends in state `aborted`.
#[derive(Debug, Clone, Default)]
pub struct AbortHandle(Arc<AtomicBool>);

impl AbortHandle {
    /// A handle with no abort requested.
    pub fn new() -> Self {
        Self::default()
    }

    /// Ask the run to stop. Idempotent; safe from any thread or a signal-handling task.
    pub fn request(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// Whether a stop was requested.
    pub fn is_requested(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// Receives the run's events in order. The implementor promises that `emit` does not block
/// (e.g. it pushes into a bounded queue with `try_send` and counts what it drops): the loop
/// calls it on the training thread.
pub trait EventSink {
    /// Take one event.
    fn emit(&mut self, event: Event);
}

/// Collects every event, for tests and simple callers.
impl EventSink for Vec<Event> {
    fn emit(&mut self, event: Event) {
        self.push(event);
    }
}

/// Any `FnMut(Event)` closure is a sink.
impl<F: FnMut(Event)> EventSink for F {
    fn emit(&mut self, event: Event) {
        self(event);
    }
}

/// How a run executes, as opposed to what it trains ([`TrainConfig`]): nothing here changes
/// the numbers a run produces beyond f32 rounding, so it is not stored in checkpoints and may
/// differ when resuming.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrainOptions {
    /// Threads of the training step's pool (forward, backward, optimizer).
    pub threads: usize,
}

impl Default for TrainOptions {
    /// As many threads as the process has cores ([`default_threads`]).
    fn default() -> Self {
        Self { threads: default_threads() }
    }
}

/// How a call to [`train`] ended.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainOutcome {
    /// [`RunState::Completed`] (budget reached) or [`RunState::Aborted`] (stopped on request).
    pub state: RunState,
    /// Optimizer steps completed, counting those restored on resume.
    pub step: u64,
    /// Tokens trained, counting those restored on resume.
    pub tokens: u64,
    /// Last validation loss measured by this call (nats/token); `None` if none was.
    pub val_loss: Option<f64>,
    /// The final checkpoint directory.
    pub checkpoint: PathBuf,
    /// Wall time of the call in seconds, including evaluation, samples and checkpoints.
    pub elapsed_secs: f64,
    /// Tokens trained by this call divided by the summed `step_time_ms` of its steps: the
    /// training throughput without evaluation, samples and checkpoints. 0 if no step ran.
    pub tokens_per_sec: f64,
}

/// Train a byte-level GPT on `corpus` until `cfg.max_tokens` are trained or `abort` is
/// requested, reporting to `sink` and writing checkpoints under `run_dir/checkpoints/`.
///
/// Each step: learning rate from the warm-up + cosine schedule, a random train batch
/// (drawn from an RNG seeded by `(cfg.seed, step)`), forward, loss, backward, gradient-norm
/// clipping to `cfg.grad_clip`, AdamW update, then a `step` event. The step runs on the
/// [`GptEngine`] (fused operations, buffers allocated once) with as many threads as the machine
/// has cores; [`train_with`] chooses the thread count. Every `cfg.eval_interval`
/// steps and after the last one: `eval` (mean loss over `cfg.eval_iters` validation batches, the
/// same batches every time so that evaluations compare) and `sample` (`cfg.sample_tokens` bytes
/// generated from a newline). Every `cfg.checkpoint_interval` steps and at the end: a checkpoint,
/// then a `checkpoint` event.
///
/// Events, in order: `run_start`, `state: running`, then `step`, `eval`, `sample`, `checkpoint`
/// as above, and last `state: completed` or `state: aborted` (the final checkpoint is written
/// and reported before it). `stopping` and `failed` are left to the caller.
///
/// A step whose loss is not finite (NaN, ±∞) is reported with that loss and no `grad_norm`, and
/// changes no weight; a step whose gradient norm is not finite is reported with it and changes
/// no weight either. Both still count toward the budget.
///
/// `resume`: a checkpoint directory to continue from: its weights, AdamW state, step and token
/// count are restored and training continues to `cfg.max_tokens`. `cfg` must equal the
/// checkpoint's config except for [`RESUME_MUTABLE_FIELDS`] ([`resume_config`] reads it).
///
/// # Errors
/// An invalid `cfg`, an unreadable or mismatching checkpoint, a corpus too short for
/// `cfg.block_size`, an I/O error while checkpointing, or a failed tensor operation. Events
/// already emitted stay valid; no terminal state event is emitted on error.
pub fn train(
    cfg: &TrainConfig,
    corpus: &Corpus,
    run_dir: &Path,
    resume: Option<&Path>,
    name: &str,
    abort: &AbortHandle,
    sink: &mut dyn EventSink,
) -> Result<TrainOutcome, TrainError> {
    train_with(cfg, corpus, run_dir, resume, name, abort, sink, &TrainOptions::default())
}

/// [`train`] with [`TrainOptions`] (the thread count).
///
/// # Errors
/// As [`train`], and [`TrainError::Config`] if `options.threads` is 0 or the threads cannot
/// be started.
#[allow(clippy::too_many_arguments)]
pub fn train_with(
    cfg: &TrainConfig,
    corpus: &Corpus,
    run_dir: &Path,
    resume: Option<&Path>,
    name: &str,
    abort: &AbortHandle,
    sink: &mut dyn EventSink,
    options: &TrainOptions,
) -> Result<TrainOutcome, TrainError> {
    let started = Instant::now();
    cfg.validate()?;

    // ---- model and optimizer, fresh or restored ----
    let Start { params, mut engine, step: start_step, tokens: start_tokens } = start(cfg, resume, options)?;
    let data = DataInfo {
        path: corpus.path().display().to_string(),
        sha256: corpus.sha256().to_string(),
        bytes: corpus.len_bytes() as u64,
    };
    if let Some(dir) = resume {
        check_resume_data(dir, &data)?;
    }
    let schedule = LrSchedule::from_config(cfg);
    let total_steps = cfg.total_steps();
    let tokens_per_step = cfg.tokens_per_step();
    tracing::info!(params = engine.num_params(), tokens_per_step, total_steps, start_step, threads = engine.threads(), "training starts");

    let config_json = serde_json::to_value(cfg).map_err(|e| TrainError::Config(format!("cannot serialize: {e}")))?;
    sink.emit(Event::now(RunStart {
        name: name.to_string(),
        config: config_json,
        total_tokens: Some(cfg.max_tokens),
        total_steps: Some(total_steps),
        tokens_per_step: Some(tokens_per_step),
        start_step,
        start_tokens,
        resumed_from: resume.map(|dir| dir.display().to_string()),
        grad_accum: Some(1),
        world_size: None,
        // nanoGPT's get_num_params(): position embeddings do not take part in the matmuls.
        model: Some(ModelShape {
            params: Some(engine.num_params().saturating_sub(cfg.block_size * cfg.n_embd) as u64),
            n_layer: Some(cfg.n_layer as u64),
            d_model: Some(cfg.n_embd as u64),
            seq_len: Some(cfg.block_size as u64),
            flops_per_token: None,
        }),
        // The peak depends on the machine, which the caller knows.
        peak_flops_per_sec: None,
        peak_flops_source: None,
    }));
    sink.emit(Event::now(StateChange { state: RunState::Running, message: String::new() }));

    let mut step = start_step;
    let mut tokens = start_tokens;
    let mut val_loss = None;
    let mut last_checkpoint: Option<(u64, PathBuf)> = None;
    let mut train_time = Duration::ZERO;
    let saver = Saver { run_dir, cfg, name, params: &params, data: &data };

    while step < total_steps && !abort.is_requested() {
        // ---- one optimizer step ----
        let step_start = Instant::now();
        let lr = schedule.lr_at(step);
        let (x, y) = corpus.batch_ids(Split::Train, cfg.batch_size, cfg.block_size, &mut batch_rng(cfg.seed, step))?;
        let loss_value = engine.forward_backward(&x, &y)?;
        // A non-finite loss skips the backward and the update; a non-finite norm skips the update.
        let grad_norm = loss_value.is_finite().then(|| engine.clip_and_update(lr, cfg.grad_clip));
        step += 1;
        tokens += tokens_per_step;
        let step_time = step_start.elapsed();
        train_time += step_time;
        let step_time_ms = step_time.as_secs_f64() * 1e3;
        tracing::debug!(step, loss = loss_value, lr, ?grad_norm, step_time_ms, "step");
        sink.emit(Event::now(Step {
            step,
            tokens,
            loss: loss_value,
            lr: Some(lr),
            grad_norm,
            step_time_ms: Some(step_time_ms),
            ..Default::default()
        }));

        // ---- evaluation and sample ----
        if step % cfg.eval_interval == 0 || step == total_steps {
            if let Some(loss) = evaluate(&mut engine, corpus, cfg, abort)? {
                val_loss = Some(loss);
                sink.emit(Event::now(Eval { step, val_loss: loss }));
            }
            if let Some(text) = sample(&mut engine, cfg, step, abort)? {
                sink.emit(Event::now(Sample { step, text }));
            }
        }

        // ---- periodic checkpoint (the final one is written after the loop) ----
        if cfg.checkpoint_interval > 0 && step % cfg.checkpoint_interval == 0 && step < total_steps {
            let dir = saver.save(step, tokens, val_loss, &engine, sink)?;
            last_checkpoint = Some((step, dir));
        }
    }

    // ---- final checkpoint and state ----
    let checkpoint = match last_checkpoint {
        Some((saved_step, dir)) if saved_step == step => dir,
        _ => saver.save(step, tokens, val_loss, &engine, sink)?,
    };
    let state = if step >= total_steps { RunState::Completed } else { RunState::Aborted };
    sink.emit(Event::now(StateChange { state, message: String::new() }));

    let trained_tokens = tokens - start_tokens;
    let train_secs = train_time.as_secs_f64();
    let outcome = TrainOutcome {
        state,
        step,
        tokens,
        val_loss,
        checkpoint,
        elapsed_secs: started.elapsed().as_secs_f64(),
        tokens_per_sec: if train_secs > 0.0 { trained_tokens as f64 / train_secs } else { 0.0 },
    };
    tracing::info!(%state, step, tokens, ?val_loss, elapsed_secs = outcome.elapsed_secs, tokens_per_sec = outcome.tokens_per_sec, "training ends");
    Ok(outcome)
}

/// What a run starts from: the composed model's parameters (the checkpoint's variables), the
/// engine that trains and samples (weights and AdamW state), and the step and token count
/// already done.
struct Start {
    params: Vec<(String, Var)>,
    engine: GptEngine,
    step: u64,
    tokens: u64,
}

/// A fresh model (weights seeded by `cfg.seed`, zero moments, step 0), or the one in the
/// checkpoint directory `resume`, checked against `cfg`.
fn start(cfg: &TrainConfig, resume: Option<&Path>, options: &TrainOptions) -> Result<Start, TrainError> {
    let Some(dir) = resume else {
        let store = ParamStore::seeded(cfg.seed);
        // Building the composed model draws the initial weights, by name and in its order.
        Gpt::load(store.var_builder(), cfg).context("building the model")?;
        let params = store.vars();
        let engine = GptEngine::from_params(cfg, &params, options.threads)?;
        return Ok(Start { params, engine, step: 0, tokens: 0 });
    };
    let checkpoint = load_checkpoint(dir)?;
    check_resume_config(cfg, &checkpoint.meta.config, dir)?;
    let store = ParamStore::from_tensors(checkpoint.weights);
    Gpt::load(store.var_builder(), cfg)
        .map_err(|e| TrainError::checkpoint(dir, format!("weights do not fit the model: {e}")))?;
    if let Some(unused) = store.unused_names().first() {
        return Err(TrainError::checkpoint(dir, format!("weight {unused} is not a parameter of the model")));
    }
    let params = store.vars();
    let mut engine = GptEngine::from_params(cfg, &params, options.threads)?;
    engine.load_optimizer_state(checkpoint.optimizer).map_err(|e| TrainError::checkpoint(dir, e.to_string()))?;
    Ok(Start { params, engine, step: checkpoint.meta.step, tokens: checkpoint.meta.tokens })
}

/// The config stored in the checkpoint directory `dir`, with `max_tokens` replaced when given:
/// the config to pass to [`train`] when resuming.
///
/// # Errors
/// As [`read_checkpoint_meta`](crate::read_checkpoint_meta).
pub fn resume_config(dir: &Path, max_tokens: Option<u64>) -> Result<TrainConfig, TrainError> {
    let mut cfg = read_checkpoint_meta(dir)?.config;
    if let Some(max_tokens) = max_tokens {
        cfg.max_tokens = max_tokens;
    }
    Ok(cfg)
}

/// Error unless the text given is the one the checkpoint in `dir` was trained on (when it
/// says which): same sha256. The message names both files.
fn check_resume_data(dir: &Path, data: &DataInfo) -> Result<(), TrainError> {
    let Some(saved) = read_checkpoint_meta(dir)?.data else { return Ok(()) };
    if saved.sha256 == data.sha256 {
        return Ok(());
    }
    Err(TrainError::checkpoint(
        dir,
        format!(
            "it was trained on {} ({} bytes, sha256 {}), but the data given is {} ({} bytes, sha256 {}); pass --data {} to resume it",
            saved.path, saved.bytes, saved.sha256, data.path, data.bytes, data.sha256, saved.path
        ),
    ))
}

/// Error unless `cfg` equals `saved` outside [`RESUME_MUTABLE_FIELDS`]; names the fields.
fn check_resume_config(cfg: &TrainConfig, saved: &TrainConfig, dir: &Path) -> Result<(), TrainError> {
    let to_map = |cfg: &TrainConfig| match serde_json::to_value(cfg) {
        Ok(serde_json::Value::Object(map)) => map,
        _ => serde_json::Map::new(),
    };
    let (ours, theirs) = (to_map(cfg), to_map(saved));
    let differing: Vec<String> = ours
        .iter()
        .filter(|(field, value)| !RESUME_MUTABLE_FIELDS.contains(&field.as_str()) && theirs.get(*field) != Some(*value))
        .map(|(field, value)| {
            format!("{field} ({value}, checkpoint has {})", theirs.get(field).unwrap_or(&serde_json::Value::Null))
        })
        .collect();
    if differing.is_empty() {
        return Ok(());
    }
    Err(TrainError::checkpoint(
        dir,
        format!("the config to resume with differs from the checkpoint's in {}", differing.join(", ")),
    ))
}

/// Mean loss over `cfg.eval_iters` validation batches, in nats/token; `None` if `abort` was
/// requested before the last batch. The batches come from a fixed seed, so every evaluation of
/// a run scores the same tokens.
fn evaluate(engine: &mut GptEngine, corpus: &Corpus, cfg: &TrainConfig, abort: &AbortHandle) -> Result<Option<f64>, TrainError> {
    let mut rng = derived_rng(cfg.seed, RngStream::Eval, 0);
    let mut sum = 0.0;
    for _ in 0..cfg.eval_iters {
        if abort.is_requested() {
            return Ok(None);
        }
        let (x, y) = corpus.batch_ids(Split::Val, cfg.batch_size, cfg.block_size, &mut rng)?;
        sum += engine.loss(&x, &y)?;
    }
    Ok(Some(sum / cfg.eval_iters as f64))
}

/// `cfg.sample_tokens` bytes generated after a newline, as text (invalid UTF-8 becomes U+FFFD);
/// `None` if samples are disabled or `abort` was requested before the last token.
fn sample(engine: &mut GptEngine, cfg: &TrainConfig, step: u64, abort: &AbortHandle) -> Result<Option<String>, TrainError> {
    if cfg.sample_tokens == 0 {
        return Ok(None);
    }
    let mut rng = derived_rng(cfg.seed, RngStream::Sample, step);
    let should_stop = || abort.is_requested();
    let tokens =
        engine.generate(&[u32::from(SAMPLE_PROMPT)], cfg.sample_tokens, SAMPLE_TEMPERATURE, &mut rng, &should_stop)?;
    if tokens.len() < cfg.sample_tokens {
        return Ok(None);
    }
    Ok(Some(decode(&tokens)))
}

/// Writes checkpoints of one run and reports them.
struct Saver<'a> {
    data: &'a DataInfo,
    run_dir: &'a Path,
    cfg: &'a TrainConfig,
    name: &'a str,
    params: &'a [(String, Var)],
}

impl Saver<'_> {
    /// Write the checkpoint of `step` (the engine's weights and AdamW state, in the format of
    /// the composed model's `ParamStore` and [`crate::AdamW`]), then emit its `checkpoint` event.
    fn save(
        &self,
        step: u64,
        tokens: u64,
        val_loss: Option<f64>,
        engine: &GptEngine,
        sink: &mut dyn EventSink,
    ) -> Result<PathBuf, TrainError> {
        engine.write_params(self.params)?;
        let optimizer: AdamWState = engine.optimizer_state()?;
        let meta = CheckpointMeta {
            format_version: CHECKPOINT_FORMAT_VERSION,
            step,
            tokens,
            config: self.cfg.clone(),
            run_name: self.name.to_string(),
            saved_at_unix_secs: trainconsole_protocol::event::unix_time_secs(),
            val_loss: val_loss.filter(|loss| loss.is_finite()),
            data: Some(self.data.clone()),
        };
        let dir = save_checkpoint(self.run_dir, &meta, self.params, &optimizer)?;
        tracing::debug!(step, path = %dir.display(), "checkpoint written");
        sink.emit(Event::now(Checkpoint { step, tokens, path: dir.display().to_string() }));
        for old in crate::checkpoint::prune_checkpoints(self.run_dir, self.cfg.keep_checkpoints)? {
            tracing::debug!(path = %old.display(), "old checkpoint removed");
        }
        Ok(dir)
    }
}

/// Independent random streams of a run.
#[derive(Clone, Copy)]
enum RngStream {
    /// Training batches, one RNG per step.
    Batch = 1,
    /// Validation batches, the same RNG for every evaluation.
    Eval = 2,
    /// Text samples, one RNG per evaluated step.
    Sample = 3,
}

/// An RNG keyed by `(seed, stream, index)`: ChaCha12 with those three numbers as its 256-bit
/// key, so distinct triples give independent streams and any step can be reproduced without
/// saved RNG state.
fn derived_rng(seed: u64, stream: RngStream, index: u64) -> StdRng {
    let mut key = [0u8; 32];
    key[..8].copy_from_slice(&seed.to_le_bytes());
    key[8..16].copy_from_slice(&(stream as u64).to_le_bytes());
    key[16..24].copy_from_slice(&index.to_le_bytes());
    StdRng::from_seed(key)
}

/// The RNG of the training batch of the step that runs after `step` steps.
fn batch_rng(seed: u64, step: u64) -> StdRng {
    derived_rng(seed, RngStream::Batch, step)
}
