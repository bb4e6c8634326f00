//! The training hot path of the GPT: a fixed forward and backward over flat f32 buffers that
//! are allocated once (as llm.c's `train_gpt2.c`), the fused operations of [`crate::kernels`],
//! gradient-norm clipping and a fused AdamW update, all on one rayon pool of `--threads`
//! threads; and the same forward for evaluation and for generating samples.
//!
//! The composed candle model ([`crate::Gpt`]) stays the reference and the owner of the
//! checkpoint format: [`GptEngine::from_params`] copies the weights in by their checkpoint
//! names, [`GptEngine::write_params`] copies them back (for checkpoints), and
//! [`GptEngine::optimizer_state`] / [`GptEngine::load_optimizer_state`] speak the same
//! [`AdamWState`] as [`crate::AdamW`]. Tests check every operation's gradient, the whole model's
//! gradients, 50-step loss curves and generated samples against it.

use std::collections::BTreeMap;
use std::ops::Range;

use candle_core::{Device, Tensor, Var};

use rand::rngs::StdRng;

use crate::kernels::{self, AdamWStep, AttentionShape};
use crate::model::sample_token;
use crate::optim::{AdamWParams, AdamWState};
use crate::{TrainConfig, TrainError};

/// Added to the gradient norm before dividing by it when clipping (PyTorch's `clip_grad_norm_`).
const CLIP_EPS: f64 = 1e-6;

/// The number of threads to train with when none is asked for: the cores available to this
/// process (1 if that cannot be told).
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
}

/// Where one parameter tensor lives in the flat buffers.
#[derive(Debug, Clone)]
struct Slot {
    /// Checkpoint name, e.g. `h.0.attn.c_attn.weight`.
    name: String,
    /// Shape as stored in checkpoints (`(out, in)` for linear weights).
    shape: Vec<usize>,
    range: Range<usize>,
}

/// Ranges of one block's parameters in the flat buffers.
#[derive(Debug, Clone)]
struct LayerRanges {
    ln_1_w: Range<usize>,
    ln_1_b: Range<usize>,
    attn_w: Range<usize>,
    attn_b: Range<usize>,
    attn_proj_w: Range<usize>,
    attn_proj_b: Range<usize>,
    ln_2_w: Range<usize>,
    ln_2_b: Range<usize>,
    fc_w: Range<usize>,
    fc_b: Range<usize>,
    fc_proj_w: Range<usize>,
    fc_proj_b: Range<usize>,
}

/// The layout of all parameters in one flat buffer, in the order of the forward pass.
#[derive(Debug, Clone)]
struct Layout {
    slots: Vec<Slot>,
    wte: Range<usize>,
    wpe: Range<usize>,
    layers: Vec<LayerRanges>,
    ln_f_w: Range<usize>,
    ln_f_b: Range<usize>,
    len: usize,
}

impl Layout {
    fn new(cfg: &TrainConfig) -> Self {
        let (c, v) = (cfg.n_embd, cfg.vocab_size);
        let mut slots = Vec::new();
        let mut offset = 0;
        let mut add = |name: String, shape: Vec<usize>| {
            let len: usize = shape.iter().product();
            let range = offset..offset + len;
            offset += len;
            slots.push(Slot { name, shape, range: range.clone() });
            range
        };
        let wte = add("wte.weight".into(), vec![v, c]);
        let wpe = add("wpe.weight".into(), vec![cfg.block_size, c]);
        let layers = (0..cfg.n_layer)
            .map(|i| {
                let mut p = |suffix: &str, shape: Vec<usize>| add(format!("h.{i}.{suffix}"), shape);
                LayerRanges {
                    ln_1_w: p("ln_1.weight", vec![c]),
                    ln_1_b: p("ln_1.bias", vec![c]),
                    attn_w: p("attn.c_attn.weight", vec![3 * c, c]),
                    attn_b: p("attn.c_attn.bias", vec![3 * c]),
                    attn_proj_w: p("attn.c_proj.weight", vec![c, c]),
                    attn_proj_b: p("attn.c_proj.bias", vec![c]),
                    ln_2_w: p("ln_2.weight", vec![c]),
                    ln_2_b: p("ln_2.bias", vec![c]),
                    fc_w: p("mlp.c_fc.weight", vec![4 * c, c]),
                    fc_b: p("mlp.c_fc.bias", vec![4 * c]),
                    fc_proj_w: p("mlp.c_proj.weight", vec![c, 4 * c]),
                    fc_proj_b: p("mlp.c_proj.bias", vec![c]),
                }
            })
            .collect();
        let ln_f_w = add("ln_f.weight".into(), vec![c]);
        let ln_f_b = add("ln_f.bias".into(), vec![c]);
        Self { slots, wte, wpe, layers, ln_f_w, ln_f_b, len: offset }
    }
}

/// A [`TrainError::Tensor`] from the engine with `message`.
fn engine_error(message: String) -> TrainError {
    TrainError::Tensor { context: "training engine".into(), source: candle_core::Error::Msg(message) }
}

/// Two disjoint mutable ranges of `buf`; `a` must end before `b` starts.
fn pair_mut(buf: &mut [f32], a: Range<usize>, b: Range<usize>) -> (&mut [f32], &mut [f32]) {
    assert!(a.end <= b.start);
    let (head, tail) = buf.split_at_mut(b.start);
    (&mut head[a], &mut tail[..b.end - b.start])
}

/// Activations of one block, kept for the backward.
struct LayerActs {
    /// `(B·T, C)` each.
    ln_1: Vec<f32>,
    ln_1_mean: Vec<f32>,
    ln_1_rstd: Vec<f32>,
    /// `(B·T, 3C)`.
    qkv: Vec<f32>,
    /// `(B, NH, T, T)`.
    att: Vec<f32>,
    /// `(B·T, C)`: attention output before its projection.
    atty: Vec<f32>,
    /// `(B·T, C)`: residual stream after the attention.
    res_2: Vec<f32>,
    ln_2: Vec<f32>,
    ln_2_mean: Vec<f32>,
    ln_2_rstd: Vec<f32>,
    /// `(B·T, 4C)`: MLP hidden before and after GELU.
    fc: Vec<f32>,
    fc_gelu: Vec<f32>,
    /// `(B·T, C)`: residual stream after the block.
    res_3: Vec<f32>,
}

/// Every buffer the forward and backward use, allocated once for `(B, T)`.
struct Buffers {
    /// `(B·T, C)`: embeddings, the input of block 0.
    encoded: Vec<f32>,
    layers: Vec<LayerActs>,
    ln_f: Vec<f32>,
    ln_f_mean: Vec<f32>,
    ln_f_rstd: Vec<f32>,
    /// `(B·T, V)`: logits, then (after the fused cross-entropy) their gradient.
    logits: Vec<f32>,
    /// `(B·T,)`: per-token losses.
    losses: Vec<f32>,
    /// Backward scratch: gradient of the residual stream `(B·T, C)`, of a LayerNorm's output
    /// `(B·T, C)`, of the attention output `(B·T, C)`, of qkv `(B·T, 3C)`, of the MLP hidden
    /// `(B·T, 4C)`, dP/dS `(B, NH, T, T)`, per-thread LayerNorm partial sums.
    d_res: Vec<f32>,
    d_ln: Vec<f32>,
    d_atty: Vec<f32>,
    d_qkv: Vec<f32>,
    d_fc: Vec<f32>,
    d_att: Vec<f32>,
    ln_scratch: Vec<f32>,
}

impl Buffers {
    fn new(cfg: &TrainConfig, threads: usize) -> Self {
        let (b, t, c, nh, v) = (cfg.batch_size, cfg.block_size, cfg.n_embd, cfg.n_head, cfg.vocab_size);
        let bt = b * t;
        let zeros = |n: usize| vec![0f32; n];
        let layers = (0..cfg.n_layer)
            .map(|_| LayerActs {
                ln_1: zeros(bt * c),
                ln_1_mean: zeros(bt),
                ln_1_rstd: zeros(bt),
                qkv: zeros(bt * 3 * c),
                att: zeros(b * nh * t * t),
                atty: zeros(bt * c),
                res_2: zeros(bt * c),
                ln_2: zeros(bt * c),
                ln_2_mean: zeros(bt),
                ln_2_rstd: zeros(bt),
                fc: zeros(bt * 4 * c),
                fc_gelu: zeros(bt * 4 * c),
                res_3: zeros(bt * c),
            })
            .collect();
        Self {
            encoded: zeros(bt * c),
            layers,
            ln_f: zeros(bt * c),
            ln_f_mean: zeros(bt),
            ln_f_rstd: zeros(bt),
            logits: zeros(bt * v),
            losses: zeros(bt),
            d_res: zeros(bt * c),
            d_ln: zeros(bt * c),
            d_atty: zeros(bt * c),
            d_qkv: zeros(bt * 3 * c),
            d_fc: zeros(bt * 4 * c),
            d_att: zeros(b * nh * t * t),
            ln_scratch: zeros(2 * c * threads.max(1)),
        }
    }
}

/// The GPT of a [`TrainConfig`] with its gradients, AdamW moments and activation buffers for
/// batches of exactly `(batch_size, block_size)` tokens, and the thread pool that runs it.
pub struct GptEngine {
    pool: rayon::ThreadPool,
    state: State,
}

struct State {
    cfg: TrainConfig,
    layout: Layout,
    params: Vec<f32>,
    grads: Vec<f32>,
    m: Vec<f32>,
    v: Vec<f32>,
    /// AdamW updates applied so far.
    adam_step: u64,
    adam: AdamWParams,
    buf: Buffers,
}

impl GptEngine {
    /// An engine for `cfg` with the weights of `params` (checkpoint name → variable, as
    /// [`ParamStore::vars`](crate::ParamStore::vars) gives them), zero AdamW moments, running
    /// on a new pool of `threads` threads.
    ///
    /// # Errors
    /// [`TrainError::Config`] if `cfg` is invalid or `threads` is 0; [`TrainError::Tensor`] if a
    /// parameter of the model is missing from `params`, has another shape, or `params` holds a
    /// name the model does not have; [`TrainError::Config`] if the pool cannot start.
    pub fn from_params(cfg: &TrainConfig, params: &[(String, Var)], threads: usize) -> Result<Self, TrainError> {
        cfg.validate()?;
        if threads == 0 {
            return Err(TrainError::Config("threads must be at least 1".into()));
        }
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("trainer-{i}"))
            .build()
            .map_err(|e| TrainError::Config(format!("cannot start {threads} training threads: {e}")))?;
        let layout = Layout::new(cfg);
        let n = layout.len;
        let mut state = State {
            cfg: cfg.clone(),
            params: vec![0.0; n],
            grads: vec![0.0; n],
            m: vec![0.0; n],
            v: vec![0.0; n],
            adam_step: 0,
            adam: AdamWParams::from_config(cfg),
            buf: Buffers::new(cfg, threads),
            layout,
        };
        state.read_params(params)?;
        Ok(Self { pool, state })
    }

    /// Threads of the engine's pool.
    pub fn threads(&self) -> usize {
        self.pool.current_num_threads()
    }

    /// Number of scalar parameters.
    pub fn num_params(&self) -> usize {
        self.state.layout.len
    }

    /// Copy the weights into `params` (checkpoint name → variable), e.g. before sampling
    /// with the candle model or writing a checkpoint.
    ///
    /// # Errors
    /// If a variable is missing or cannot be set.
    pub fn write_params(&self, params: &[(String, Var)]) -> Result<(), TrainError> {
        let by_name: BTreeMap<&str, &Var> = params.iter().map(|(name, var)| (name.as_str(), var)).collect();
        for slot in &self.state.layout.slots {
            let var = by_name
                .get(slot.name.as_str())
                .ok_or_else(|| engine_error(format!("writing weights: no variable {}", slot.name)))?;
            Tensor::from_slice(&self.state.params[slot.range.clone()], slot.shape.as_slice(), &Device::Cpu)
                .and_then(|t| var.set(&t))
                .map_err(|e| engine_error(format!("writing weight {}: {e}", slot.name)))?;
        }
        Ok(())
    }

    /// The AdamW moments and update count, as [`AdamW::state`](crate::AdamW::state) gives them
    /// (the checkpoint format).
    ///
    /// # Errors
    /// If a tensor cannot be created.
    pub fn optimizer_state(&self) -> Result<AdamWState, TrainError> {
        let s = &self.state;
        let mut m = BTreeMap::new();
        let mut v = BTreeMap::new();
        for slot in &s.layout.slots {
            let tensor = |buf: &[f32]| {
                Tensor::from_slice(&buf[slot.range.clone()], slot.shape.as_slice(), &Device::Cpu)
                    .map_err(|e| engine_error(format!("optimizer state of {}: {e}", slot.name)))
            };
            m.insert(slot.name.clone(), tensor(&s.m)?);
            v.insert(slot.name.clone(), tensor(&s.v)?);
        }
        Ok(AdamWState { step: s.adam_step, m, v })
    }

    /// Restore moments and update count saved by [`GptEngine::optimizer_state`] or
    /// [`AdamW::state`](crate::AdamW::state).
    ///
    /// # Errors
    /// If a parameter has no m or v in `state`, its shape differs, or `state` holds moments for
    /// a parameter the model does not have; the message names the parameter.
    pub fn load_optimizer_state(&mut self, mut state: AdamWState) -> Result<(), TrainError> {
        let s = &mut self.state;
        for slot in &s.layout.slots {
            for (kind, moments, target) in [("m", &mut state.m, &mut s.m), ("v", &mut state.v, &mut s.v)] {
                let Some(tensor) = moments.remove(&slot.name) else {
                    return Err(engine_error(format!("optimizer state has no {kind} for parameter {}", slot.name)));
                };
                if tensor.dims() != slot.shape.as_slice() {
                    return Err(engine_error(format!(
                        "optimizer {kind} of {} has shape {:?}, the parameter has {:?}",
                        slot.name,
                        tensor.dims(),
                        slot.shape
                    )));
                }
                let values = tensor
                    .flatten_all()
                    .and_then(|t| t.to_dtype(candle_core::DType::F32))
                    .and_then(|t| t.to_vec1::<f32>())
                    .map_err(|e| engine_error(format!("optimizer {kind} of {}: {e}", slot.name)))?;
                target[slot.range.clone()].copy_from_slice(&values);
            }
        }
        if let Some(name) = state.m.keys().chain(state.v.keys()).next() {
            return Err(engine_error(format!("optimizer state has moments for {name}, which is not a model parameter")));
        }
        s.adam_step = state.step;
        Ok(())
    }

    /// Mean cross-entropy in nats/token of the batch `tokens` → `targets` (each `(B, T)` flat,
    /// row-major, exactly `batch_size · block_size` ids below the vocabulary size), without
    /// gradients.
    ///
    /// # Errors
    /// [`TrainError::Tensor`] if the batch has another size or an id is out of range.
    pub fn loss(&mut self, tokens: &[u32], targets: &[u32]) -> Result<f64, TrainError> {
        let state = &mut self.state;
        state.check_batch(tokens, targets)?;
        Ok(self.pool.install(|| state.forward(tokens, targets, false)))
    }

    /// Forward and backward of the batch (see [`GptEngine::loss`]): returns the mean loss and
    /// leaves its gradient in the engine, unless the loss is not finite (then no backward runs
    /// and [`GptEngine::clip_and_update`] must not be called).
    ///
    /// # Errors
    /// As [`GptEngine::loss`].
    pub fn forward_backward(&mut self, tokens: &[u32], targets: &[u32]) -> Result<f64, TrainError> {
        let state = &mut self.state;
        state.check_batch(tokens, targets)?;
        Ok(self.pool.install(|| {
            let loss = state.forward(tokens, targets, true);
            if loss.is_finite() {
                state.backward(tokens);
            }
            loss
        }))
    }

    /// Clip the gradient of the last [`GptEngine::forward_backward`] to global L2 norm
    /// `max_norm` (0: no clipping; PyTorch's `clip_grad_norm_`), then, if the norm is finite,
    /// apply one AdamW update with learning rate `lr` (as [`AdamW::step`](crate::AdamW::step)).
    /// Returns the norm before clipping; a non-finite norm changes no weight.
    pub fn clip_and_update(&mut self, lr: f64, max_norm: f64) -> f64 {
        let state = &mut self.state;
        self.pool.install(|| state.clip_and_update(lr, max_norm))
    }

    /// Generate `max_new_tokens` tokens after `prompt`, each drawn with `rng` from the softmax
    /// of the last position's logits divided by `temperature` (as [`Gpt::generate`](crate::Gpt::generate),
    /// which it replaces in the training loop: same sampling, same cropping of the context to
    /// the last `block_size` tokens). `should_stop` is called before each token; when it
    /// returns true, generation ends early with the tokens made so far. Returns only the new
    /// tokens.
    ///
    /// # Errors
    /// [`TrainError::Tensor`] if `prompt` is empty, `temperature` is not positive, or a token id
    /// is outside the vocabulary.
    pub fn generate(
        &mut self,
        prompt: &[u32],
        max_new_tokens: usize,
        temperature: f64,
        rng: &mut StdRng,
        should_stop: &dyn Fn() -> bool,
    ) -> Result<Vec<u32>, TrainError> {
        if prompt.is_empty() {
            return Err(engine_error("generation needs a prompt of at least one token".into()));
        }
        if temperature.is_nan() || temperature <= 0.0 {
            return Err(engine_error(format!("temperature must be positive, got {temperature}")));
        }
        let vocab = self.state.cfg.vocab_size as u32;
        if let Some(bad) = prompt.iter().find(|&&id| id >= vocab) {
            return Err(engine_error(format!("token id {bad} is outside the vocabulary of {vocab}")));
        }
        let block_size = self.state.cfg.block_size;
        let state = &mut self.state;
        let mut tokens = prompt.to_vec();
        for _ in 0..max_new_tokens {
            if should_stop() {
                break;
            }
            let context = &tokens[tokens.len().saturating_sub(block_size)..];
            let next = self.pool.install(|| sample_token(state.next_token_logits(context), temperature, rng));
            tokens.push(next);
        }
        Ok(tokens.split_off(prompt.len()))
    }

    /// The gradient of the parameter called `name` after [`GptEngine::forward_backward`].
    pub fn grad(&self, name: &str) -> Option<&[f32]> {
        let slot = self.state.layout.slots.iter().find(|s| s.name == name)?;
        Some(&self.state.grads[slot.range.clone()])
    }

    /// Checkpoint names of the parameters, in the order of the flat buffers.
    pub fn param_names(&self) -> impl Iterator<Item = &str> {
        self.state.layout.slots.iter().map(|s| s.name.as_str())
    }
}

impl State {
    fn read_params(&mut self, params: &[(String, Var)]) -> Result<(), TrainError> {
        let by_name: BTreeMap<&str, &Var> = params.iter().map(|(name, var)| (name.as_str(), var)).collect();
        for slot in &self.layout.slots {
            let Some(var) = by_name.get(slot.name.as_str()) else {
                return Err(engine_error(format!("the model's parameter {} is missing", slot.name)));
            };
            if var.dims() != slot.shape.as_slice() {
                return Err(engine_error(format!(
                    "parameter {} has shape {:?}, the model expects {:?}",
                    slot.name,
                    var.dims(),
                    slot.shape
                )));
            }
            let values = var
                .as_detached_tensor()
                .flatten_all()
                .and_then(|t| t.to_dtype(candle_core::DType::F32))
                .and_then(|t| t.to_vec1::<f32>())
                .map_err(|e| engine_error(format!("reading parameter {}: {e}", slot.name)))?;
            self.params[slot.range.clone()].copy_from_slice(&values);
        }
        if let Some((name, _)) = params.iter().find(|(name, _)| !self.layout.slots.iter().any(|s| &s.name == name)) {
            return Err(engine_error(format!("{name} is not a parameter of the model")));
        }
        Ok(())
    }

    fn check_batch(&self, tokens: &[u32], targets: &[u32]) -> Result<(), TrainError> {
        let n = self.cfg.batch_size * self.cfg.block_size;
        if tokens.len() != n || targets.len() != n {
            return Err(engine_error(format!(
                "a batch must have {} × {} = {n} tokens and targets, got {} and {}",
                self.cfg.batch_size,
                self.cfg.block_size,
                tokens.len(),
                targets.len()
            )));
        }
        let vocab = self.cfg.vocab_size as u32;
        if let Some(bad) = tokens.iter().chain(targets).find(|&&id| id >= vocab) {
            return Err(engine_error(format!("token id {bad} is outside the vocabulary of {vocab}")));
        }
        Ok(())
    }

    fn attention_shape(&self) -> AttentionShape {
        AttentionShape { batch: self.cfg.batch_size, seq: self.cfg.block_size, channels: self.cfg.n_embd, heads: self.cfg.n_head }
    }

    /// The forward pass and the per-token losses; with `want_grad`, the logits buffer is left
    /// holding ∂loss/∂logits. Returns the mean loss.
    fn forward(&mut self, tokens: &[u32], targets: &[u32], want_grad: bool) -> f64 {
        let (c, v) = (self.cfg.n_embd, self.cfg.vocab_size);
        self.forward_to_ln_f(tokens, self.cfg.batch_size, self.cfg.block_size);
        let p = &self.params;
        let buf = &mut self.buf;
        // The head is tied to the token embedding: logits = ln_f · wteᵀ.
        kernels::linear_forward(&mut buf.logits, &buf.ln_f, &p[self.layout.wte.clone()], None, None, c, v);
        let rows = targets.len();
        let grad_scale = want_grad.then_some(1.0 / rows as f32);
        kernels::cross_entropy(&mut buf.logits, &mut buf.losses, targets, v, grad_scale);
        buf.losses.iter().map(|&l| f64::from(l)).sum::<f64>() / rows as f64
    }

    /// The forward pass from the tokens `(b, t)` (at most `(batch_size, block_size)`) to the
    /// final LayerNorm's output, in the first `b · t` rows of the buffers.
    fn forward_to_ln_f(&mut self, tokens: &[u32], b: usize, t: usize) {
        let c = self.cfg.n_embd;
        let shape = AttentionShape { batch: b, seq: t, ..self.attention_shape() };
        let n = b * t;
        debug_assert!(tokens.len() == n && b <= self.cfg.batch_size && t <= self.cfg.block_size);
        let p = &self.params;
        let lay = &self.layout;
        let buf = &mut self.buf;
        let encoded = &mut buf.encoded[..n * c];
        kernels::embedding_forward(encoded, tokens, &p[lay.wte.clone()], &p[lay.wpe.clone()], t, c);
        for (l, r) in lay.layers.iter().enumerate() {
            let (done, rest) = buf.layers.split_at_mut(l);
            let a = &mut rest[0];
            let input: &[f32] = if l == 0 { &buf.encoded[..n * c] } else { &done[l - 1].res_3[..n * c] };
            let (ln_1, ln_1_mean, ln_1_rstd) = (&mut a.ln_1[..n * c], &mut a.ln_1_mean[..n], &mut a.ln_1_rstd[..n]);
            kernels::layernorm_forward(ln_1, ln_1_mean, ln_1_rstd, input, &p[r.ln_1_w.clone()], &p[r.ln_1_b.clone()]);
            let qkv = &mut a.qkv[..n * 3 * c];
            kernels::linear_forward(qkv, ln_1, &p[r.attn_w.clone()], Some(&p[r.attn_b.clone()]), None, c, 3 * c);
            let atty = &mut a.atty[..n * c];
            kernels::attention_forward(atty, &mut a.att[..shape.att_len()], qkv, shape);
            let res_2 = &mut a.res_2[..n * c];
            kernels::linear_forward(res_2, atty, &p[r.attn_proj_w.clone()], Some(&p[r.attn_proj_b.clone()]), Some(input), c, c);
            let (ln_2, ln_2_mean, ln_2_rstd) = (&mut a.ln_2[..n * c], &mut a.ln_2_mean[..n], &mut a.ln_2_rstd[..n]);
            kernels::layernorm_forward(ln_2, ln_2_mean, ln_2_rstd, res_2, &p[r.ln_2_w.clone()], &p[r.ln_2_b.clone()]);
            let fc = &mut a.fc[..n * 4 * c];
            kernels::linear_forward(fc, ln_2, &p[r.fc_w.clone()], Some(&p[r.fc_b.clone()]), None, c, 4 * c);
            let fc_gelu = &mut a.fc_gelu[..n * 4 * c];
            kernels::gelu_forward(fc_gelu, fc);
            let res_3 = &mut a.res_3[..n * c];
            kernels::linear_forward(res_3, fc_gelu, &p[r.fc_proj_w.clone()], Some(&p[r.fc_proj_b.clone()]), Some(res_2), 4 * c, c);
        }
        let last: &[f32] = buf.layers.last().map_or(&buf.encoded[..n * c], |a| &a.res_3[..n * c]);
        let (ln_f, ln_f_mean, ln_f_rstd) = (&mut buf.ln_f[..n * c], &mut buf.ln_f_mean[..n], &mut buf.ln_f_rstd[..n]);
        kernels::layernorm_forward(ln_f, ln_f_mean, ln_f_rstd, last, &p[lay.ln_f_w.clone()], &p[lay.ln_f_b.clone()]);
    }

    /// Logits `(V,)` of the next token after `tokens` (one sequence, 1 to `block_size` ids).
    fn next_token_logits(&mut self, tokens: &[u32]) -> &[f32] {
        let (t, c, v) = (tokens.len(), self.cfg.n_embd, self.cfg.vocab_size);
        self.forward_to_ln_f(tokens, 1, t);
        let last = &self.buf.ln_f[(t - 1) * c..t * c];
        kernels::linear_forward(&mut self.buf.logits[..v], last, &self.params[self.layout.wte.clone()], None, None, c, v);
        &self.buf.logits[..v]
    }

    /// Backward of [`State::forward`] (called with `want_grad`): writes every gradient.
    fn backward(&mut self, tokens: &[u32]) {
        let (t, c, v) = (self.cfg.block_size, self.cfg.n_embd, self.cfg.vocab_size);
        let shape = self.attention_shape();
        let p = &self.params;
        let g = &mut self.grads;
        let lay = &self.layout;
        let buf = &mut self.buf;
        // Head (tied): d ln_f = dlogits · wte, d wte = dlogitsᵀ · ln_f (the embedding adds later).
        kernels::linear_backward(&mut buf.d_ln, &mut g[lay.wte.clone()], None, &buf.logits, &buf.ln_f, &p[lay.wte.clone()], c, v, false);
        let last: &[f32] = buf.layers.last().map_or(&buf.encoded, |a| &a.res_3);
        {
            let (dw, db) = pair_mut(g, lay.ln_f_w.clone(), lay.ln_f_b.clone());
            kernels::layernorm_backward(&mut buf.d_res, dw, db, &mut buf.ln_scratch, &buf.d_ln, last, &p[lay.ln_f_w.clone()], &buf.ln_f_mean, &buf.ln_f_rstd, false);
        }
        for (l, r) in lay.layers.iter().enumerate().rev() {
            let (done, rest) = buf.layers.split_at(l);
            let a = &rest[0];
            let input: &[f32] = if l == 0 { &buf.encoded } else { &done[l - 1].res_3 };
            // d_res holds ∂loss/∂res_3; it also flows unchanged to res_2 (the residual add).
            {
                let (dw, db) = pair_mut(g, r.fc_proj_w.clone(), r.fc_proj_b.clone());
                kernels::linear_backward(&mut buf.d_fc, dw, Some(db), &buf.d_res, &a.fc_gelu, &p[r.fc_proj_w.clone()], 4 * c, c, false);
            }
            kernels::gelu_backward(&mut buf.d_fc, &a.fc);
            {
                let (dw, db) = pair_mut(g, r.fc_w.clone(), r.fc_b.clone());
                kernels::linear_backward(&mut buf.d_ln, dw, Some(db), &buf.d_fc, &a.ln_2, &p[r.fc_w.clone()], c, 4 * c, false);
            }
            {
                let (dw, db) = pair_mut(g, r.ln_2_w.clone(), r.ln_2_b.clone());
                kernels::layernorm_backward(&mut buf.d_res, dw, db, &mut buf.ln_scratch, &buf.d_ln, &a.res_2, &p[r.ln_2_w.clone()], &a.ln_2_mean, &a.ln_2_rstd, true);
            }
            // d_res now holds ∂loss/∂res_2; it flows unchanged to the block's input too.
            {
                let (dw, db) = pair_mut(g, r.attn_proj_w.clone(), r.attn_proj_b.clone());
                kernels::linear_backward(&mut buf.d_atty, dw, Some(db), &buf.d_res, &a.atty, &p[r.attn_proj_w.clone()], c, c, false);
            }
            kernels::attention_backward(&mut buf.d_qkv, &mut buf.d_att, &buf.d_atty, &a.qkv, &a.att, shape);
            {
                let (dw, db) = pair_mut(g, r.attn_w.clone(), r.attn_b.clone());
                kernels::linear_backward(&mut buf.d_ln, dw, Some(db), &buf.d_qkv, &a.ln_1, &p[r.attn_w.clone()], c, 3 * c, false);
            }
            {
                let (dw, db) = pair_mut(g, r.ln_1_w.clone(), r.ln_1_b.clone());
                kernels::layernorm_backward(&mut buf.d_res, dw, db, &mut buf.ln_scratch, &buf.d_ln, input, &p[r.ln_1_w.clone()], &a.ln_1_mean, &a.ln_1_rstd, true);
            }
        }
        let (dwte, dwpe) = pair_mut(g, lay.wte.clone(), lay.wpe.clone());
        kernels::embedding_backward(dwte, dwpe, &buf.d_res, tokens, t, c);
    }

    fn clip_and_update(&mut self, lr: f64, max_norm: f64) -> f64 {
        let norm = kernels::sum_of_squares(&self.grads).sqrt();
        if !norm.is_finite() {
            return norm;
        }
        let clip = max_norm / (norm + CLIP_EPS);
        let grad_scale = if max_norm > 0.0 && clip < 1.0 { clip } else { 1.0 };
        self.adam_step += 1;
        let AdamWParams { beta1, beta2, eps, weight_decay } = self.adam;
        let t = i32::try_from(self.adam_step).unwrap_or(i32::MAX);
        let step = |decay: bool| AdamWStep {
            lr: lr as f32,
            beta1: beta1 as f32,
            beta2: beta2 as f32,
            eps: eps as f32,
            decay_factor: if decay { (1.0 - lr * weight_decay) as f32 } else { 1.0 },
            inv_bias_correction1: (1.0 / (1.0 - beta1.powi(t))) as f32,
            inv_bias_correction2: (1.0 / (1.0 - beta2.powi(t))) as f32,
            grad_scale: grad_scale as f32,
        };
        // Weight decay only for tensors of rank ≥ 2 (nanoGPT's `configure_optimizers`).
        // Consecutive slots with the same decay flag are updated in one call.
        let slots = &self.layout.slots;
        let mut i = 0;
        while i < slots.len() {
            let decay = slots[i].shape.len() >= 2;
            let start = slots[i].range.start;
            let mut end = slots[i].range.end;
            i += 1;
            while i < slots.len() && (slots[i].shape.len() >= 2) == decay {
                end = slots[i].range.end;
                i += 1;
            }
            kernels::adamw_update(&mut self.params[start..end], &self.grads[start..end], &mut self.m[start..end], &mut self.v[start..end], step(decay));
        }
        norm
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{Corpus, Split};
    use crate::optim::{AdamW, LrSchedule, clip_grad_norm};
    use crate::{Gpt, ParamStore};
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    /// Small enough for a quick test, with every dimension distinct and more than one head,
    /// layer and sequence.
    fn small_cfg() -> TrainConfig {
        TrainConfig { n_layer: 2, n_head: 2, n_embd: 32, block_size: 16, batch_size: 3, ..TrainConfig::tiny() }
    }

    fn corpus(block_size: usize) -> Corpus {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/tinyshakespeare.txt");
        let mut text = std::fs::read(path).unwrap();
        text.truncate(50_000);
        Corpus::from_bytes(text, std::path::Path::new("tinyshakespeare-prefix.txt"), block_size).unwrap()
    }

    fn max_abs(a: &[f32]) -> f32 {
        a.iter().fold(0f32, |m, x| m.max(x.abs()))
    }

    /// Every parameter's gradient from the engine equals the composed candle model's backward
    /// within 1e-5 of that gradient's largest magnitude, on weights scaled up so that every
    /// nonlinearity works away from its linear regime (×4: at ×8 even the composed model in f32
    /// is 1e-5 away from itself in f64). The reference runs in f64, so the difference is the
    /// engine's own f32 rounding (1.6e-6 when written; candle's f32 backward: 2.1e-6).
    #[test]
    fn gradients_match_the_composed_model() {
        let cfg = small_cfg();
        let store = ParamStore::seeded(5);
        let vb = candle_nn::VarBuilder::from_backend(Box::new(store.clone()), candle_core::DType::F64, Device::Cpu);
        let model = Gpt::load(vb, &cfg).unwrap();
        for (_, var) in store.vars() {
            var.set(&(var.as_detached_tensor() * 4.0).unwrap()).unwrap();
        }
        let vars = store.vars();
        let (x, y) =
            corpus(cfg.block_size).batch(Split::Train, cfg.batch_size, cfg.block_size, &mut StdRng::seed_from_u64(2)).unwrap();
        let tokens = x.flatten_all().unwrap().to_vec1::<u32>().unwrap();
        let targets = y.flatten_all().unwrap().to_vec1::<u32>().unwrap();
        let reference = model.loss(&x, &y).unwrap();
        let grads = reference.backward().unwrap();
        let reference = reference.to_scalar::<f64>().unwrap();
        assert!(reference > 1.0, "{reference}");
        for threads in [1, 2, 3] {
            let mut engine = GptEngine::from_params(&cfg, &vars, threads).unwrap();
            let loss = engine.forward_backward(&tokens, &targets).unwrap();
            assert!((loss - reference).abs() < 1e-5 * reference, "loss {loss} vs {reference}");
            let mut checked = 0;
            for (name, var) in &vars {
                let want: Vec<f32> = grads.get(var).unwrap().flatten_all().unwrap().to_vec1::<f64>().unwrap().into_iter().map(|g| g as f32).collect();
                let got = engine.grad(name).unwrap();
                let scale = max_abs(&want);
                assert!(scale > 0.0, "{name} has a zero gradient");
                let diff = got.iter().zip(&want).fold(0f32, |m, (a, b)| m.max((a - b).abs()));
                assert!(diff <= 1e-5 * scale, "{threads} threads, {name}: max |diff| {diff}, max |grad| {scale}");
                checked += 1;
            }
            // wte, wpe, ln_f (2) and 12 tensors per block.
            assert_eq!(checked, 4 + 12 * cfg.n_layer);
        }
    }

    /// 50 steps from the same weights on the same batches: the engine's losses follow the
    /// composed model with candle autograd, `clip_grad_norm` and [`AdamW`] within 1e-4.
    #[test]
    fn fifty_step_loss_curve_matches_the_composed_model() {
        let cfg = TrainConfig { max_tokens: 50 * 3 * 16, ..small_cfg() };
        let corpus = corpus(cfg.block_size);
        let schedule = LrSchedule::from_config(&cfg);

        let store = ParamStore::seeded(cfg.seed);
        let model = Gpt::load(store.var_builder(), &cfg).unwrap();
        let vars = store.vars();
        let mut engine = GptEngine::from_params(&cfg, &vars, 2).unwrap();
        let mut optimizer = AdamW::new(vars.clone(), AdamWParams::from_config(&cfg)).unwrap();
        let mut worst = 0f64;
        for step in 0..50 {
            let lr = schedule.lr_at(step);
            let mut rng = StdRng::seed_from_u64(step);
            let (x, y) = corpus.batch(Split::Train, cfg.batch_size, cfg.block_size, &mut rng).unwrap();
            let (tokens, targets) =
                corpus.batch_ids(Split::Train, cfg.batch_size, cfg.block_size, &mut StdRng::seed_from_u64(step)).unwrap();
            let loss = model.loss(&x, &y).unwrap();
            let reference = f64::from(loss.to_scalar::<f32>().unwrap());
            let mut grads = loss.backward().unwrap();
            let reference_norm = clip_grad_norm(&mut grads, &vars, cfg.grad_clip).unwrap();
            optimizer.step(&grads, lr).unwrap();

            let got = engine.forward_backward(&tokens, &targets).unwrap();
            let norm = engine.clip_and_update(lr, cfg.grad_clip);
            assert!((norm - reference_norm).abs() < 1e-3 * reference_norm, "step {step}: norm {norm} vs {reference_norm}");
            worst = worst.max((got - reference).abs());
            assert!((got - reference).abs() < 1e-4, "step {step}: loss {got} vs {reference}");
        }
        // The curve went somewhere: 50 steps bring the loss well below ln 256 = 5.55.
        let final_loss = engine
            .loss(
                &corpus.batch_ids(Split::Train, cfg.batch_size, cfg.block_size, &mut StdRng::seed_from_u64(99)).unwrap().0,
                &corpus.batch_ids(Split::Train, cfg.batch_size, cfg.block_size, &mut StdRng::seed_from_u64(99)).unwrap().1,
            )
            .unwrap();
        assert!(final_loss < 3.6, "{final_loss}");
        // The optimizer state matches too, through the checkpoint format.
        let ours = engine.optimizer_state().unwrap();
        let theirs = optimizer.state();
        assert_eq!(ours.step, 50);
        assert_eq!(theirs.step, 50);
        for (name, m) in &theirs.m {
            let want = m.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            let got = ours.m[name].flatten_all().unwrap().to_vec1::<f32>().unwrap();
            let diff = got.iter().zip(&want).fold(0f32, |acc, (a, b)| acc.max((a - b).abs()));
            assert!(diff <= 1e-3 * max_abs(&want) + 1e-9, "m of {name}: {diff}");
        }
        eprintln!("worst loss difference over 50 steps: {worst:e}");
    }

    /// The AVX2 and portable builds of the kernels give the same gradients as the AVX-512
    /// build (on a CPU that has it; elsewhere the levels coincide and this checks little).
    #[test]
    fn every_simd_level_gives_the_same_gradients() {
        use crate::kernels::{SimdLevel, limit_simd_level};
        let cfg = small_cfg();
        let store = ParamStore::seeded(8);
        let _model = Gpt::load(store.var_builder(), &cfg).unwrap();
        let vars = store.vars();
        let (tokens, targets) =
            corpus(cfg.block_size).batch_ids(Split::Train, cfg.batch_size, cfg.block_size, &mut StdRng::seed_from_u64(4)).unwrap();
        let grads_at = |level: SimdLevel| {
            limit_simd_level(level);
            let mut engine = GptEngine::from_params(&cfg, &vars, 2).unwrap();
            let loss = engine.forward_backward(&tokens, &targets).unwrap();
            (loss, engine.state.grads.clone())
        };
        let (loss_portable, portable) = grads_at(SimdLevel::Portable);
        let (loss_avx2, avx2) = grads_at(SimdLevel::Avx2);
        let (loss_widest, widest) = grads_at(SimdLevel::Avx512);
        let scale = max_abs(&widest);
        for (name, loss, grads) in [("portable", loss_portable, &portable), ("avx2", loss_avx2, &avx2)] {
            assert!((loss - loss_widest).abs() < 1e-5, "{name}: loss {loss} vs {loss_widest}");
            let diff = grads.iter().zip(&widest).fold(0f32, |m, (a, b)| m.max((a - b).abs()));
            assert!(diff <= 1e-5 * scale, "{name}: max |diff| {diff}, max |grad| {scale}");
        }
    }

    /// The engine's samples are the composed model's: same tokens for the same weights and
    /// random stream (logits agree to about 1e-6, far from any sampling boundary here), with
    /// a context that outgrows `block_size`.
    #[test]
    fn generation_matches_the_composed_model() {
        let cfg = small_cfg();
        let store = ParamStore::seeded(6);
        let model = Gpt::load(store.var_builder(), &cfg).unwrap();
        for (_, var) in store.vars() {
            var.set(&(var.as_detached_tensor() * 4.0).unwrap()).unwrap();
        }
        let mut engine = GptEngine::from_params(&cfg, &store.vars(), 2).unwrap();
        let prompt = [10u32, 65, 66];
        let new_tokens = 2 * cfg.block_size + 3;
        let want = model.generate(&prompt, new_tokens, 0.8, &mut StdRng::seed_from_u64(9), &|| false).unwrap();
        let got = engine.generate(&prompt, new_tokens, 0.8, &mut StdRng::seed_from_u64(9), &|| false).unwrap();
        assert_eq!(got.len(), new_tokens);
        assert_eq!(got, want);
        // Distinct tokens: the weights are not degenerate.
        assert!(got.iter().collect::<std::collections::BTreeSet<_>>().len() > 10);
        // The last-position logits equal the composed model's.
        let context: Vec<u32> = got[got.len() - cfg.block_size..].to_vec();
        let idx = Tensor::from_slice(&context, (1, context.len()), &Device::Cpu).unwrap();
        let reference = model.forward(&idx).unwrap().squeeze(0).unwrap().get(context.len() - 1).unwrap().to_vec1::<f32>().unwrap();
        let logits = engine.state.next_token_logits(&context).to_vec();
        let scale = max_abs(&reference);
        let diff = logits.iter().zip(&reference).fold(0f32, |m, (a, b)| m.max((a - b).abs()));
        assert!(diff <= 1e-5 * scale, "max |diff| {diff}, max |logit| {scale}");

        let stopped = engine.generate(&prompt, 10, 1.0, &mut StdRng::seed_from_u64(1), &|| true).unwrap();
        assert!(stopped.is_empty());
        let err = engine.generate(&[], 1, 1.0, &mut StdRng::seed_from_u64(1), &|| false).unwrap_err().to_string();
        assert!(err.contains("at least one token"), "{err}");
        let err = engine.generate(&prompt, 1, 0.0, &mut StdRng::seed_from_u64(1), &|| false).unwrap_err().to_string();
        assert!(err.contains("temperature must be positive, got 0"), "{err}");
    }

    #[test]
    fn weights_and_optimizer_state_round_trip() {
        let cfg = small_cfg();
        let store = ParamStore::seeded(3);
        let _model = Gpt::load(store.var_builder(), &cfg).unwrap();
        let vars = store.vars();
        let mut engine = GptEngine::from_params(&cfg, &vars, 1).unwrap();
        let (tokens, targets) =
            corpus(cfg.block_size).batch_ids(Split::Train, cfg.batch_size, cfg.block_size, &mut StdRng::seed_from_u64(1)).unwrap();
        engine.forward_backward(&tokens, &targets).unwrap();
        engine.clip_and_update(1e-2, 1.0);
        engine.write_params(&vars).unwrap();
        let state = engine.optimizer_state().unwrap();
        let mut copy = GptEngine::from_params(&cfg, &vars, 2).unwrap();
        copy.load_optimizer_state(state).unwrap();
        assert_eq!(copy.state.params, engine.state.params);
        assert_eq!(copy.state.m, engine.state.m);
        assert_eq!(copy.state.v, engine.state.v);
        assert_eq!(copy.state.adam_step, 1);

        let mut state = engine.optimizer_state().unwrap();
        state.v.remove("h.1.mlp.c_fc.bias");
        let err = copy.load_optimizer_state(state).unwrap_err().to_string();
        assert!(err.contains("optimizer state has no v for parameter h.1.mlp.c_fc.bias"), "{err}");
        let err = copy.loss(&tokens[1..], &targets[1..]).unwrap_err().to_string();
        assert!(err.contains("a batch must have 3 × 16 = 48 tokens"), "{err}");
        let mut bad = tokens.clone();
        bad[4] = 256;
        let err = copy.loss(&bad, &targets).unwrap_err().to_string();
        assert!(err.contains("token id 256 is outside the vocabulary of 256"), "{err}");
        let err = GptEngine::from_params(&cfg, &vars[1..], 1).err().unwrap().to_string();
        assert!(err.contains("is missing"), "{err}");
    }
}
