//! A GPT-2-style decoder-only transformer (nanoGPT's `model.py`) in candle, on the CPU.
//!
//! Token + position embeddings, `n_layer` pre-LayerNorm blocks (causal self-attention with a
//! packed q/k/v projection, then a 4× GELU MLP), a final LayerNorm, and an output head tied
//! to the token embedding. No dropout.
//!
//! candle 0.11's fused `LayerNorm` and `softmax_last_dim` have no backward pass, so layer
//! norm, softmax and log-softmax are composed here from ops that do.
//!
//! Checkpoint names (the `vb.pp` paths) follow nanoGPT without its `transformer.` prefix:
//! `wte.weight`, `wpe.weight`, `h.{i}.ln_1.{weight,bias}`, `h.{i}.attn.c_attn.{weight,bias}`,
//! `h.{i}.attn.c_proj.{weight,bias}`, `h.{i}.ln_2.{weight,bias}`, `h.{i}.mlp.c_fc.{weight,bias}`,
//! `h.{i}.mlp.c_proj.{weight,bias}`, `ln_f.{weight,bias}`. Linear weights are stored
//! `(out_features, in_features)` as in PyTorch.

use candle_core::{D, Device, Module, Result, Tensor};
use candle_nn::{Init, Linear, VarBuilder};
use rand::Rng;
use rand::rngs::StdRng;

use crate::TrainConfig;

/// Standard deviation of the normal init of weights and embeddings (GPT-2, nanoGPT).
const INIT_STD: f64 = 0.02;
/// ε added to the variance in layer norm (PyTorch's default).
const LAYER_NORM_EPS: f64 = 1e-5;

/// The GPT model. Its weights live in the `VarBuilder`'s backend (a [`ParamStore`](crate::ParamStore)
/// when training); this struct holds handles to them.
pub struct Gpt {
    /// Token embedding, also the output head (weight tying): `(V, C)`.
    wte: Tensor,
    /// Learned position embedding: `(block_size, C)`.
    wpe: Tensor,
    blocks: Vec<Block>,
    ln_f: LayerNorm,
    /// 0 on and below the diagonal, -∞ above: `(block_size, block_size)`.
    causal_mask: Tensor,
    block_size: usize,
    vocab_size: usize,
}

impl Gpt {
    /// Build the model from `vb` for the shape in `cfg` (`vocab_size`, `n_layer`, `n_head`,
    /// `n_embd`, `block_size`).
    ///
    /// Initialisation as nanoGPT: every weight and embedding normal(0, 0.02), except the
    /// residual output projections (`attn.c_proj`, `mlp.c_proj`), which use
    /// 0.02 / sqrt(2 · n_layer) (GPT-2 paper, §2.3); biases 0; LayerNorm gain 1, bias 0.
    ///
    /// # Errors
    /// If the backend cannot provide a tensor (e.g. a checkpoint lacks it or has another shape),
    /// or if `n_embd` is not a multiple of `n_head`.
    pub fn load(vb: VarBuilder, cfg: &TrainConfig) -> Result<Self> {
        if cfg.n_head == 0 || !cfg.n_embd.is_multiple_of(cfg.n_head) {
            candle_core::bail!("n_embd ({}) must be a multiple of n_head ({})", cfg.n_embd, cfg.n_head)
        }
        let normal = Init::Randn { mean: 0.0, stdev: INIT_STD };
        let wte = vb.pp("wte").get_with_hints((cfg.vocab_size, cfg.n_embd), "weight", normal)?;
        let wpe = vb.pp("wpe").get_with_hints((cfg.block_size, cfg.n_embd), "weight", normal)?;
        let blocks = (0..cfg.n_layer).map(|i| Block::load(vb.pp("h").pp(i), cfg)).collect::<Result<Vec<_>>>()?;
        let ln_f = LayerNorm::load(vb.pp("ln_f"), cfg.n_embd)?;
        Ok(Self {
            wte,
            wpe,
            blocks,
            ln_f,
            causal_mask: causal_mask(cfg.block_size, vb.device())?.to_dtype(vb.dtype())?,
            block_size: cfg.block_size,
            vocab_size: cfg.vocab_size,
        })
    }

    /// Context length: the most tokens [`Gpt::forward`] accepts per sequence.
    pub fn block_size(&self) -> usize {
        self.block_size
    }

    /// Number of scalar parameters (the tied head counted once, position embeddings included).
    pub fn num_params(&self) -> usize {
        let blocks: usize = self.blocks.iter().map(Block::num_params).sum();
        self.wte.elem_count() + self.wpe.elem_count() + blocks + self.ln_f.num_params()
    }

    /// Next-token logits for every position.
    ///
    /// `idx`: u32 token ids of shape `(B, T)` with `1 ≤ T ≤ block_size`.
    /// Returns f32 logits of shape `(B, T, V)` (unnormalised log-probabilities).
    ///
    /// # Errors
    /// If `idx` is not 2-D, `T` exceeds the context length, or a token id is `≥ V`.
    pub fn forward(&self, idx: &Tensor) -> Result<Tensor> {
        let (b, t) = idx.dims2()?;
        if t == 0 || t > self.block_size {
            candle_core::bail!("sequence length {t} is outside 1..={} (the context length)", self.block_size)
        }
        let n_embd = self.wte.dim(1)?;
        let tok_emb = self.wte.index_select(&idx.flatten_all()?, 0)?.reshape((b, t, n_embd))?; // (B, T, C)
        let pos_emb = self.wpe.narrow(0, 0, t)?; // (T, C)
        let mut x = tok_emb.broadcast_add(&pos_emb)?; // (B, T, C)
        let mask = self.causal_mask.narrow(0, 0, t)?.narrow(1, 0, t)?; // (T, T)
        for block in &self.blocks {
            x = block.forward(&x, &mask)?;
        }
        let x = self.ln_f.forward(&x)?.reshape((b * t, n_embd))?; // (B·T, C)
        let logits = x.matmul(&self.wte.t()?)?; // (B·T, V): head tied to wte
        logits.reshape((b, t, self.vocab_size)) // (B, T, V)
    }

    /// Mean cross-entropy of the next-token predictions in nats per token: a scalar f32 tensor
    /// `-mean(log softmax(logits)[targets])`, differentiable.
    ///
    /// `idx`, `targets`: u32 of shape `(B, T)`; `targets[b, t]` is the token after `idx[b, t]`.
    ///
    /// # Errors
    /// As [`Gpt::forward`], or if the shapes of `idx` and `targets` differ.
    pub fn loss(&self, idx: &Tensor, targets: &Tensor) -> Result<Tensor> {
        if idx.dims() != targets.dims() {
            candle_core::bail!("inputs {:?} and targets {:?} differ in shape", idx.dims(), targets.dims())
        }
        let logits = self.forward(idx)?; // (B, T, V)
        let (b, t, v) = logits.dims3()?;
        let log_probs = log_softmax_last_dim(&logits.reshape((b * t, v))?)?; // (B·T, V)
        let targets = targets.flatten_all()?.unsqueeze(1)?; // (B·T, 1)
        let target_log_probs = log_probs.gather(&targets, 1)?; // (B·T, 1)
        target_log_probs.mean_all()?.neg()
    }

    /// Generate `max_new_tokens` tokens after `prompt`, each drawn from the softmax of the
    /// last position's logits divided by `temperature` (nanoGPT's `generate`). The context is
    /// cropped to the last `block_size` tokens. `should_stop` is called before each token;
    /// when it returns true, generation ends early with the tokens made so far.
    ///
    /// Returns only the new tokens.
    ///
    /// # Errors
    /// If `prompt` is empty, `temperature` is not positive, or the forward pass fails.
    pub fn generate(
        &self,
        prompt: &[u32],
        max_new_tokens: usize,
        temperature: f64,
        rng: &mut StdRng,
        should_stop: &dyn Fn() -> bool,
    ) -> Result<Vec<u32>> {
        if prompt.is_empty() {
            candle_core::bail!("generation needs a prompt of at least one token")
        }
        if temperature.is_nan() || temperature <= 0.0 {
            candle_core::bail!("temperature must be positive, got {temperature}")
        }
        let mut tokens = prompt.to_vec();
        for _ in 0..max_new_tokens {
            if should_stop() {
                break;
            }
            let context = &tokens[tokens.len().saturating_sub(self.block_size)..];
            let idx = Tensor::from_slice(context, (1, context.len()), self.wte.device())?; // (1, T)
            let logits = self.forward(&idx)?.squeeze(0)?.get(context.len() - 1)?; // (V,)
            let logits = logits.to_vec1::<f32>()?;
            tokens.push(sample_token(&logits, temperature, rng));
        }
        Ok(tokens.split_off(prompt.len()))
    }
}

/// Draw a token index from `softmax(logits / temperature)` with `rng` (inverse-CDF sampling,
/// computed in f64 with the maximum subtracted for stability). Non-finite logits get
/// probability 0; if no logit is finite the last index is returned.
pub fn sample_token(logits: &[f32], temperature: f64, rng: &mut StdRng) -> u32 {
    let max = logits.iter().copied().filter(|l| l.is_finite()).fold(f32::NEG_INFINITY, f32::max);
    let weights: Vec<f64> = logits
        .iter()
        .map(|&l| if l.is_finite() { ((f64::from(l) - f64::from(max)) / temperature).exp() } else { 0.0 })
        .collect();
    let total: f64 = weights.iter().sum();
    let last = logits.len().saturating_sub(1) as u32;
    if total.is_nan() || total <= 0.0 {
        return last;
    }
    let mut threshold = rng.random::<f64>() * total;
    for (index, weight) in weights.iter().enumerate() {
        threshold -= weight;
        if threshold < 0.0 {
            return index as u32;
        }
    }
    last
}

/// One transformer block: `x + attn(ln_1(x))`, then `x + mlp(ln_2(x))`.
struct Block {
    ln_1: LayerNorm,
    attn: CausalSelfAttention,
    ln_2: LayerNorm,
    mlp: Mlp,
}

impl Block {
    fn load(vb: VarBuilder, cfg: &TrainConfig) -> Result<Self> {
        Ok(Self {
            ln_1: LayerNorm::load(vb.pp("ln_1"), cfg.n_embd)?,
            attn: CausalSelfAttention::load(vb.pp("attn"), cfg)?,
            ln_2: LayerNorm::load(vb.pp("ln_2"), cfg.n_embd)?,
            mlp: Mlp::load(vb.pp("mlp"), cfg)?,
        })
    }

    fn num_params(&self) -> usize {
        self.ln_1.num_params() + self.attn.num_params() + self.ln_2.num_params() + self.mlp.num_params()
    }

    /// `x`: `(B, T, C)`, `mask`: `(T, T)` → `(B, T, C)`.
    fn forward(&self, x: &Tensor, mask: &Tensor) -> Result<Tensor> {
        let x = (x + self.attn.forward(&self.ln_1.forward(x)?, mask)?)?;
        &x + self.mlp.forward(&self.ln_2.forward(&x)?)?
    }
}

/// Multi-head causal self-attention with one packed q/k/v projection.
struct CausalSelfAttention {
    /// `C → 3C`: q, k and v side by side.
    c_attn: Linear,
    /// `C → C`, a residual output projection.
    c_proj: Linear,
    n_head: usize,
}

impl CausalSelfAttention {
    fn load(vb: VarBuilder, cfg: &TrainConfig) -> Result<Self> {
        Ok(Self {
            c_attn: linear(vb.pp("c_attn"), cfg.n_embd, 3 * cfg.n_embd, INIT_STD)?,
            c_proj: linear(vb.pp("c_proj"), cfg.n_embd, cfg.n_embd, residual_std(cfg))?,
            n_head: cfg.n_head,
        })
    }

    fn num_params(&self) -> usize {
        linear_params(&self.c_attn) + linear_params(&self.c_proj)
    }

    /// `softmax(q kᵀ / sqrt(head_dim) + mask) v` per head (Vaswani et al. 2017, eq. 1).
    /// `x`: `(B, T, C)`, `mask`: `(T, T)` → `(B, T, C)`.
    fn forward(&self, x: &Tensor, mask: &Tensor) -> Result<Tensor> {
        let (b, t, c) = x.dims3()?;
        let head_dim = c / self.n_head;
        let qkv = self.c_attn.forward(x)?.reshape((b, t, 3, self.n_head, head_dim))?; // (B, T, 3, nh, hd)
        let qkv = qkv.permute((2, 0, 3, 1, 4))?.contiguous()?; // (3, B, nh, T, hd)
        // Scaling q rather than the scores touches T·hd instead of T·T values per head.
        let q = (qkv.get(0)? * (1.0 / (head_dim as f64).sqrt()))?; // (B, nh, T, hd)
        let k = qkv.get(1)?; // (B, nh, T, hd)
        let v = qkv.get(2)?; // (B, nh, T, hd)
        let scores = q.matmul(&k.t()?)?.broadcast_add(mask)?; // (B, nh, T, T)
        let weights = softmax_last_dim(&scores)?; // (B, nh, T, T)
        let y = weights.matmul(&v)?; // (B, nh, T, hd)
        let y = y.transpose(1, 2)?.reshape((b, t, c))?; // (B, T, nh, hd) → (B, T, C)
        self.c_proj.forward(&y)
    }
}

/// Position-wise feed-forward network: `C → 4C`, GELU, `4C → C`.
struct Mlp {
    c_fc: Linear,
    /// A residual output projection.
    c_proj: Linear,
}

impl Mlp {
    fn load(vb: VarBuilder, cfg: &TrainConfig) -> Result<Self> {
        Ok(Self {
            c_fc: linear(vb.pp("c_fc"), cfg.n_embd, 4 * cfg.n_embd, INIT_STD)?,
            c_proj: linear(vb.pp("c_proj"), 4 * cfg.n_embd, cfg.n_embd, residual_std(cfg))?,
        })
    }

    fn num_params(&self) -> usize {
        linear_params(&self.c_fc) + linear_params(&self.c_proj)
    }

    /// `(B, T, C)` → `(B, T, C)`, with the exact (erf) GELU as PyTorch's `nn.GELU()`.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.c_proj.forward(&self.c_fc.forward(x)?.gelu_erf()?)
    }
}

/// Layer normalisation over the last dimension (Ba et al. 2016), from composed ops:
/// `(x - mean) / sqrt(var + ε) · weight + bias`, with the biased variance as PyTorch.
struct LayerNorm {
    weight: Tensor,
    bias: Tensor,
}

impl LayerNorm {
    fn load(vb: VarBuilder, size: usize) -> Result<Self> {
        Ok(Self {
            weight: vb.get_with_hints(size, "weight", Init::Const(1.0))?,
            bias: vb.get_with_hints(size, "bias", Init::Const(0.0))?,
        })
    }

    fn num_params(&self) -> usize {
        self.weight.elem_count() + self.bias.elem_count()
    }

    /// `(…, C)` → `(…, C)`.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mean = x.mean_keepdim(D::Minus1)?; // (…, 1)
        let centered = x.broadcast_sub(&mean)?; // (…, C)
        let var = centered.sqr()?.mean_keepdim(D::Minus1)?; // (…, 1)
        let normed = centered.broadcast_div(&(var + LAYER_NORM_EPS)?.sqrt()?)?; // (…, C)
        normed.broadcast_mul(&self.weight)?.broadcast_add(&self.bias)
    }
}

/// A linear layer `in_features → out_features` with bias; weight normal(0, `std`), bias 0.
fn linear(vb: VarBuilder, in_features: usize, out_features: usize, std: f64) -> Result<Linear> {
    let weight = vb.get_with_hints((out_features, in_features), "weight", Init::Randn { mean: 0.0, stdev: std })?;
    let bias = vb.get_with_hints(out_features, "bias", Init::Const(0.0))?;
    Ok(Linear::new(weight, Some(bias)))
}

fn linear_params(layer: &Linear) -> usize {
    layer.weight().elem_count() + layer.bias().map_or(0, Tensor::elem_count)
}

/// Init std of the residual output projections: 0.02 / sqrt(2 · n_layer) (nanoGPT, GPT-2).
fn residual_std(cfg: &TrainConfig) -> f64 {
    INIT_STD / (2.0 * cfg.n_layer as f64).sqrt()
}

/// `(n, n)` f32 mask (converted to the model's dtype by the caller): 0 where key position ≤ query position, -∞ above the diagonal.
fn causal_mask(n: usize, device: &Device) -> Result<Tensor> {
    let values: Vec<f32> =
        (0..n).flat_map(|query| (0..n).map(move |key| if key <= query { 0.0 } else { f32::NEG_INFINITY })).collect();
    Tensor::from_vec(values, (n, n), device)
}

/// Softmax over the last dimension, composed so that it backpropagates.
/// The row maximum is subtracted for stability and detached: softmax is invariant to it, so
/// no gradient needs to flow through it.
fn softmax_last_dim(x: &Tensor) -> Result<Tensor> {
    let max = x.max_keepdim(D::Minus1)?.detach(); // (…, 1)
    let exp = x.broadcast_sub(&max)?.exp()?; // (…, N)
    exp.broadcast_div(&exp.sum_keepdim(D::Minus1)?)
}

/// Log-softmax over the last dimension: `x - max - log Σ exp(x - max)`, composed so that it
/// backpropagates (max detached as in [`softmax_last_dim`]).
fn log_softmax_last_dim(x: &Tensor) -> Result<Tensor> {
    let max = x.max_keepdim(D::Minus1)?.detach(); // (…, 1)
    let shifted = x.broadcast_sub(&max)?; // (…, N)
    let log_sum_exp = shifted.exp()?.sum_keepdim(D::Minus1)?.log()?; // (…, 1)
    shifted.broadcast_sub(&log_sum_exp)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ParamStore;
    use candle_core::DType;
    use rand::SeedableRng;

    #[test]
    fn small_preset_shapes_and_parameter_count() {
        let cfg = TrainConfig::small();
        let store = ParamStore::seeded(0);
        let model = Gpt::load(store.var_builder(), &cfg).unwrap();
        // wte 256·128 = 32,768; wpe 128·128 = 16,384; ln_f 2·128 = 256.
        // Per block: ln_1 + ln_2 = 512; c_attn 128·384 + 384 = 49,536; attn.c_proj 128·128 + 128
        // = 16,512; c_fc 128·512 + 512 = 66,048; mlp.c_proj 512·128 + 128 = 65,664 → 198,272.
        // Total: 32,768 + 16,384 + 4 · 198,272 + 256 = 842,496.
        assert_eq!(model.num_params(), 842_496);
        assert_eq!(store.num_params(), 842_496);
        assert_eq!(store.vars().len(), 2 + 4 * 12 + 2);

        let idx = Tensor::zeros((2, 5), DType::U32, &Device::Cpu).unwrap();
        assert_eq!(model.forward(&idx).unwrap().dims(), &[2, 5, 256]);
        let targets = Tensor::new(&[[1u32, 2, 3, 4, 5], [6, 7, 8, 9, 10]], &Device::Cpu).unwrap();
        let loss = model.loss(&idx, &targets).unwrap();
        assert_eq!(loss.dims(), &[] as &[usize]);
        // With weights of std 0.02 the logits are near 0, so the loss is near ln 256 = 5.545.
        // (Targets differ from the inputs: with the tied head, an input token's own logit is
        // raised by the residual stream.)
        let loss = loss.to_scalar::<f32>().unwrap();
        assert!((loss - 5.545).abs() < 0.05, "{loss}");

        let too_long = Tensor::zeros((1, 129), DType::U32, &Device::Cpu).unwrap();
        assert!(model.forward(&too_long).unwrap_err().to_string().contains("outside 1..=128"));
    }

    /// Backprop through the composed layer norm, attention, GELU and log-softmax agrees with
    /// central finite differences, computed in f64 so that both are accurate to ~1e-9.
    #[test]
    fn gradients_match_finite_differences() {
        let cfg = TrainConfig { n_layer: 1, n_head: 2, n_embd: 8, block_size: 6, ..TrainConfig::tiny() };
        let store = ParamStore::seeded(11);
        let vb = VarBuilder::from_backend(Box::new(store.clone()), DType::F64, Device::Cpu);
        let model = Gpt::load(vb, &cfg).unwrap();
        // Larger weights than the 0.02 init, so that every nonlinearity is exercised.
        for (_, var) in store.vars() {
            let scaled = (var.as_detached_tensor() * 10.0).unwrap();
            var.set(&scaled).unwrap();
        }
        let idx = Tensor::new(&[[3u32, 1, 4, 1, 5, 9], [2, 6, 5, 3, 5, 8]], &Device::Cpu).unwrap();
        let targets = Tensor::new(&[[1u32, 4, 1, 5, 9, 2], [6, 5, 3, 5, 8, 9]], &Device::Cpu).unwrap();
        let loss_of = |model: &Gpt| model.loss(&idx, &targets).unwrap().to_scalar::<f64>().unwrap();
        let grads = model.loss(&idx, &targets).unwrap().backward().unwrap();
        let mut checked = 0;
        for (name, var) in store.vars() {
            let grad = grads.get(&var).unwrap().flatten_all().unwrap().to_vec1::<f64>().unwrap();
            let values = var.as_detached_tensor().flatten_all().unwrap().to_vec1::<f64>().unwrap();
            // Three coordinates per parameter: first, middle, last.
            for i in [0, values.len() / 2, values.len() - 1] {
                let eps = 1e-5;
                let mut shifted = values.clone();
                let mut loss_at = |delta: f64| {
                    shifted[i] = values[i] + delta;
                    var.set(&Tensor::from_slice(&shifted, var.shape(), &Device::Cpu).unwrap()).unwrap();
                    loss_of(&model)
                };
                let numeric = (loss_at(eps) - loss_at(-eps)) / (2.0 * eps);
                var.set(&Tensor::from_slice(&values, var.shape(), &Device::Cpu).unwrap()).unwrap();
                let tolerance = 1e-6 + 1e-4 * numeric.abs();
                assert!(
                    (grad[i] - numeric).abs() < tolerance,
                    "{name}[{i}]: backprop {} vs numeric {numeric}",
                    grad[i]
                );
                checked += 1;
            }
        }
        // 16 parameter tensors (2 embeddings, 12 in the block, 2 in ln_f), 3 coordinates each.
        assert_eq!(checked, 48);
    }

    #[test]
    fn attention_is_causal() {
        let cfg = TrainConfig::tiny();
        let model = Gpt::load(ParamStore::seeded(1).var_builder(), &cfg).unwrap();
        let a = Tensor::new(&[[1u32, 2, 3, 4, 5]], &Device::Cpu).unwrap();
        let b = Tensor::new(&[[1u32, 2, 3, 9, 9]], &Device::Cpu).unwrap();
        let la = model.forward(&a).unwrap().squeeze(0).unwrap().to_vec2::<f32>().unwrap();
        let lb = model.forward(&b).unwrap().squeeze(0).unwrap().to_vec2::<f32>().unwrap();
        // Positions 0..3 do not see the changed tokens 3 and 4; position 3 does.
        assert_eq!(la[..3], lb[..3]);
        assert_ne!(la[3], lb[3]);
    }

    #[test]
    fn composed_softmaxes_match_the_formula() {
        let x = Tensor::new(&[[1f32, 2.0, 3.0], [0.0, 0.0, f32::NEG_INFINITY]], &Device::Cpu).unwrap();
        let s = softmax_last_dim(&x).unwrap().to_vec2::<f32>().unwrap();
        // e^1, e^2, e^3 normalised: 0.09003, 0.24473, 0.66524.
        for (got, want) in s[0].iter().zip([0.090_030_57, 0.244_728_47, 0.665_240_96]) {
            assert!((got - want).abs() < 1e-6, "{got} vs {want}");
        }
        assert_eq!(s[1], vec![0.5, 0.5, 0.0]);
        let ls = log_softmax_last_dim(&x).unwrap().to_vec2::<f32>().unwrap();
        assert!((ls[0][2] - 0.665_240_96f32.ln()).abs() < 1e-6);
    }

    #[test]
    fn sampling_follows_the_distribution() {
        let mut rng = StdRng::seed_from_u64(3);
        // ln 3 vs 0: probabilities 3/4 and 1/4.
        let logits = [3f32.ln(), 0.0, f32::NEG_INFINITY];
        let draws = 40_000;
        let zeros = (0..draws).filter(|_| sample_token(&logits, 1.0, &mut rng) == 0).count();
        // Binomial(40,000, 0.75): std 87, so ±500 is over 5 standard deviations.
        assert!((zeros as i64 - 30_000).abs() < 500, "{zeros}");
        assert_eq!(sample_token(&[f32::NAN, f32::NAN], 1.0, &mut rng), 1);
    }
}
