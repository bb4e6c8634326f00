//! The optimizer: AdamW with decoupled weight decay, global gradient-norm clipping, and the
//! warm-up + cosine learning-rate schedule (all as in nanoGPT / PyTorch).

use std::collections::BTreeMap;

use candle_core::backprop::GradStore;
use candle_core::{Result, Tensor, Var};

use crate::TrainConfig;

/// AdamW's ε, added to `sqrt(v̂)` in the denominator (PyTorch's default).
pub const ADAMW_EPS: f64 = 1e-8;
/// Added to the gradient norm before dividing by it when clipping (PyTorch's `clip_grad_norm_`).
const CLIP_EPS: f64 = 1e-6;

/// Linear warm-up, then cosine decay to `min_lr` (nanoGPT's `get_lr`, from Loshchilov &
/// Hutter 2017, "SGDR", without restarts):
///
/// * `step < warmup_steps`: `peak_lr · (step + 1) / (warmup_steps + 1)`;
/// * `step > decay_steps`: `min_lr`;
/// * else, with `r = (step - warmup_steps) / (decay_steps - warmup_steps)`:
///   `min_lr + 0.5 · (1 + cos(π r)) · (peak_lr - min_lr)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LrSchedule {
    /// Learning rate at the end of the warm-up.
    pub peak_lr: f64,
    /// Learning rate from `decay_steps` on.
    pub min_lr: f64,
    /// Steps of linear warm-up.
    pub warmup_steps: u64,
    /// Step at which the cosine reaches `min_lr` (nanoGPT's `lr_decay_iters`).
    pub decay_steps: u64,
}

impl LrSchedule {
    /// The schedule of `cfg`: decays over the whole run (`decay_steps = total_steps`).
    pub fn from_config(cfg: &TrainConfig) -> Self {
        Self {
            peak_lr: cfg.learning_rate,
            min_lr: cfg.min_lr,
            warmup_steps: cfg.warmup_steps,
            decay_steps: cfg.total_steps(),
        }
    }

    /// Learning rate of the optimizer step that runs after `step` steps have completed
    /// (0 for the first step).
    pub fn lr_at(&self, step: u64) -> f64 {
        if step < self.warmup_steps {
            return self.peak_lr * (step + 1) as f64 / (self.warmup_steps + 1) as f64;
        }
        if step >= self.decay_steps {
            return self.min_lr;
        }
        let decay_ratio = (step - self.warmup_steps) as f64 / (self.decay_steps - self.warmup_steps) as f64;
        let coeff = 0.5 * (1.0 + (std::f64::consts::PI * decay_ratio).cos());
        self.min_lr + coeff * (self.peak_lr - self.min_lr)
    }
}

/// Rescale the gradients of `params` in `grads` so that their global L2 norm is at most
/// `max_norm` (PyTorch's `clip_grad_norm_`: multiply by `max_norm / (norm + 1e-6)` when that is
/// below 1). `max_norm = 0` disables clipping. A non-finite norm leaves the gradients alone.
///
/// Returns the global norm `sqrt(Σ ‖g‖²)` before clipping. Parameters without a gradient are
/// skipped.
///
/// # Errors
/// If a tensor operation fails.
pub fn clip_grad_norm(grads: &mut GradStore, params: &[(String, Var)], max_norm: f64) -> Result<f64> {
    let mut sum_sq = 0.0;
    for (_, var) in params {
        if let Some(grad) = grads.get(var) {
            sum_sq += f64::from(grad.sqr()?.sum_all()?.to_scalar::<f32>()?);
        }
    }
    let norm = sum_sq.sqrt();
    let scale = max_norm / (norm + CLIP_EPS);
    if max_norm > 0.0 && norm.is_finite() && scale < 1.0 {
        for (_, var) in params {
            if let Some(grad) = grads.get(var) {
                let clipped = (grad * scale)?;
                grads.insert(var, clipped);
            }
        }
    }
    Ok(norm)
}

/// AdamW hyper-parameters other than the learning rate (which changes every step).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamWParams {
    /// Decay of the first-moment average.
    pub beta1: f64,
    /// Decay of the second-moment average.
    pub beta2: f64,
    /// Added to `sqrt(v̂)`.
    pub eps: f64,
    /// Decoupled weight decay per unit learning rate.
    pub weight_decay: f64,
}

impl AdamWParams {
    /// The values of `cfg`, with ε = [`ADAMW_EPS`].
    pub fn from_config(cfg: &TrainConfig) -> Self {
        Self { beta1: cfg.beta1, beta2: cfg.beta2, eps: ADAMW_EPS, weight_decay: cfg.weight_decay }
    }
}

/// AdamW (Loshchilov & Hutter 2019, "Decoupled Weight Decay Regularization"), as PyTorch's
/// `torch.optim.AdamW`. For each parameter θ with gradient g, at step t (from 1):
///
/// ```text
/// m ← β1 m + (1 - β1) g          v ← β2 v + (1 - β2) g²
/// m̂ = m / (1 - β1ᵗ)              v̂ = v / (1 - β2ᵗ)
/// θ ← θ (1 - lr · wd) - lr · m̂ / (sqrt(v̂) + ε)
/// ```
///
/// Weight decay applies only to parameters with 2 or more dimensions (linear weights and
/// embeddings), not to biases and LayerNorm parameters (nanoGPT's `configure_optimizers`).
pub struct AdamW {
    slots: Vec<Slot>,
    params: AdamWParams,
    /// Updates applied so far (t of the last update).
    step: u64,
}

/// One parameter and its moment estimates.
struct Slot {
    name: String,
    var: Var,
    /// First-moment average, same shape as the parameter.
    m: Tensor,
    /// Second-moment average, same shape as the parameter.
    v: Tensor,
    /// Whether weight decay applies (rank ≥ 2).
    decay: bool,
}

/// The state of an [`AdamW`] that a checkpoint stores: the update count and m and v by
/// parameter name.
#[derive(Debug, Clone)]
pub struct AdamWState {
    /// Updates applied so far.
    pub step: u64,
    /// First-moment averages by parameter name.
    pub m: BTreeMap<String, Tensor>,
    /// Second-moment averages by parameter name.
    pub v: BTreeMap<String, Tensor>,
}

impl AdamW {
    /// An optimizer for `params` (name, variable) with zero moments.
    ///
    /// # Errors
    /// If the zero tensors cannot be allocated.
    pub fn new(params: Vec<(String, Var)>, hyper: AdamWParams) -> Result<Self> {
        let slots = params
            .into_iter()
            .map(|(name, var)| {
                let zeros = var.zeros_like()?;
                let decay = var.rank() >= 2;
                Ok(Slot { name, m: zeros.clone(), v: zeros, var, decay })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { slots, params: hyper, step: 0 })
    }

    /// Updates applied so far.
    pub fn step_count(&self) -> u64 {
        self.step
    }

    /// The hyper-parameters.
    pub fn params(&self) -> AdamWParams {
        self.params
    }

    /// Apply one update with learning rate `lr` using the gradients in `grads`. Parameters
    /// without a gradient are left alone (their moments too).
    ///
    /// # Errors
    /// If a tensor operation fails.
    pub fn step(&mut self, grads: &GradStore, lr: f64) -> Result<()> {
        self.step += 1;
        let AdamWParams { beta1, beta2, eps, weight_decay } = self.params;
        let t = i32::try_from(self.step).unwrap_or(i32::MAX);
        let bias_correction1 = 1.0 - beta1.powi(t);
        let bias_correction2 = 1.0 - beta2.powi(t);
        for slot in &mut self.slots {
            let Some(grad) = grads.get(&slot.var) else { continue };
            slot.m = ((&slot.m * beta1)? + (grad * (1.0 - beta1))?)?;
            slot.v = ((&slot.v * beta2)? + (grad.sqr()? * (1.0 - beta2))?)?;
            let m_hat = (&slot.m / bias_correction1)?;
            let v_hat = (&slot.v / bias_correction2)?;
            let update = (m_hat / (v_hat.sqrt()? + eps)?)?;
            let theta = slot.var.as_detached_tensor();
            let theta = if slot.decay { (theta * (1.0 - lr * weight_decay))? } else { theta };
            slot.var.set(&(theta - (update * lr)?)?)?;
        }
        Ok(())
    }

    /// The moments and update count (tensor handles, no copy of the data).
    pub fn state(&self) -> AdamWState {
        AdamWState {
            step: self.step,
            m: self.slots.iter().map(|s| (s.name.clone(), s.m.clone())).collect(),
            v: self.slots.iter().map(|s| (s.name.clone(), s.v.clone())).collect(),
        }
    }

    /// Restore moments and update count saved by [`AdamW::state`].
    ///
    /// # Errors
    /// If a parameter has no m or v in `state`, its shape differs, or `state` holds moments
    /// for a parameter this optimizer does not have; the message names the parameter.
    pub fn load_state(&mut self, mut state: AdamWState) -> Result<()> {
        for slot in &mut self.slots {
            for (kind, moments, target) in [("m", &mut state.m, &mut slot.m), ("v", &mut state.v, &mut slot.v)] {
                let Some(tensor) = moments.remove(&slot.name) else {
                    candle_core::bail!("optimizer state has no {kind} for parameter {}", slot.name)
                };
                if tensor.shape() != slot.var.shape() {
                    candle_core::bail!(
                        "optimizer {kind} of {} has shape {:?}, the parameter has {:?}",
                        slot.name,
                        tensor.shape(),
                        slot.var.shape()
                    )
                }
                *target = tensor;
            }
        }
        if let Some(name) = state.m.keys().chain(state.v.keys()).next() {
            candle_core::bail!("optimizer state has moments for {name}, which is not a model parameter")
        }
        self.step = state.step;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn lr_schedule_known_values() {
        let schedule = LrSchedule { peak_lr: 1e-3, min_lr: 1e-4, warmup_steps: 10, decay_steps: 110 };
        // Warm-up: 1e-3 · (step + 1) / 11.
        let expected = [
            (0, 9.090909090909092e-05),
            (9, 9.090909090909091e-04),
            (10, 1e-3),
            // Quarter of the cosine: 1e-4 + 0.5 (1 + cos(π/4)) · 9e-4.
            (35, 8.681980515339464e-04),
            // Half way: (peak + min) / 2.
            (60, 5.5e-4),
            (85, 2.3180194846605365e-04),
            (110, 1e-4),
            (500, 1e-4),
        ];
        for (step, lr) in expected {
            let got = schedule.lr_at(step);
            assert!((got - lr).abs() < 1e-15, "step {step}: {got} vs {lr}");
        }
    }

    #[test]
    fn lr_schedule_without_warmup_starts_at_peak() {
        let schedule = LrSchedule { peak_lr: 2.0, min_lr: 1.0, warmup_steps: 0, decay_steps: 4 };
        assert_eq!(schedule.lr_at(0), 2.0);
        assert_eq!(schedule.lr_at(4), 1.0);
    }

    #[test]
    fn adamw_two_steps_match_hand_computation() {
        let var = Var::new(&[[1f32]], &Device::Cpu).unwrap();
        let hyper = AdamWParams { beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.0 };
        let mut opt = AdamW::new(vec![("w".to_string(), var.clone())], hyper).unwrap();
        for (gradient, expected) in [
            // t=1, g=0.5: m = 0.05, v = 0.00025, m̂ = 0.5, v̂ = 0.25 → θ = 1 - 0.1 · 0.5 / 0.5 = 0.9.
            (0.5f32, 0.9f32),
            // t=2, g=-1: m = -0.055, v = 0.00124975, m̂ = -0.055 / 0.19 = -0.2894737,
            // v̂ = 0.00124975 / 0.001999 = 0.6251876 → θ = 0.9 + 0.1 · 0.2894737 / 0.7906881 = 0.9366104.
            (-1.0, 0.936_610_35),
        ] {
            // loss = gradient · θ has dloss/dθ = gradient.
            let loss = (var.as_tensor() * f64::from(gradient)).unwrap().sum_all().unwrap();
            opt.step(&loss.backward().unwrap(), 0.1).unwrap();
            let got = var.as_tensor().to_vec2::<f32>().unwrap()[0][0];
            assert!((got - expected).abs() < 1e-6, "{got} vs {expected}");
        }
        assert_eq!(opt.step_count(), 2);
        let state = opt.state();
        assert!((state.m["w"].to_vec2::<f32>().unwrap()[0][0] - -0.055).abs() < 1e-7);
        assert!((state.v["w"].to_vec2::<f32>().unwrap()[0][0] - 0.001_249_75).abs() < 1e-9);
    }

    #[test]
    fn weight_decay_skips_one_dimensional_parameters() {
        let weight = Var::new(&[[2f32, -2.0]], &Device::Cpu).unwrap();
        let bias = Var::new(&[2f32, -2.0], &Device::Cpu).unwrap();
        let hyper = AdamWParams { beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.1 };
        let mut opt = AdamW::new(vec![("b".into(), bias.clone()), ("w".into(), weight.clone())], hyper).unwrap();
        // Gradient 0.5 everywhere: at t=1 the Adam update is m̂ / (sqrt(v̂) + ε) = 0.5 / 0.5 = 1, so
        // the weight becomes θ · (1 - lr · wd) - lr = θ · 0.99 - 0.1 and the bias θ - 0.1.
        let loss =
            ((weight.as_tensor().sum_all().unwrap() + bias.as_tensor().sum_all().unwrap()).unwrap() * 0.5).unwrap();
        opt.step(&loss.backward().unwrap(), 0.1).unwrap();
        let weight = weight.as_tensor().to_vec2::<f32>().unwrap();
        assert!((weight[0][0] - 1.88).abs() < 1e-6 && (weight[0][1] + 2.08).abs() < 1e-6, "{weight:?}");
        let bias = bias.as_tensor().to_vec1::<f32>().unwrap();
        assert!((bias[0] - 1.9).abs() < 1e-6 && (bias[1] + 2.1).abs() < 1e-6, "{bias:?}");
    }

    #[test]
    fn clipping_scales_to_max_norm_and_returns_the_norm_before() {
        let a = Var::new(&[3f32], &Device::Cpu).unwrap();
        let b = Var::new(&[[4f32]], &Device::Cpu).unwrap();
        let params = vec![("a".to_string(), a.clone()), ("b".to_string(), b.clone())];
        // Gradients 3 and 4: global norm 5.
        let loss = ((a.as_tensor() * a.as_tensor()).unwrap().sum_all().unwrap() * 0.5).unwrap()
            + ((b.as_tensor() * b.as_tensor()).unwrap().sum_all().unwrap() * 0.5).unwrap();
        let mut grads = loss.unwrap().backward().unwrap();
        let norm = clip_grad_norm(&mut grads, &params, 1.0).unwrap();
        assert!((norm - 5.0).abs() < 1e-9, "{norm}");
        let ga = grads.get(&a).unwrap().to_vec1::<f32>().unwrap()[0];
        let gb = grads.get(&b).unwrap().to_vec2::<f32>().unwrap()[0][0];
        // Scaled by 1 / (5 + 1e-6): 0.6 and 0.8.
        assert!((ga - 0.6).abs() < 1e-6 && (gb - 0.8).abs() < 1e-6, "{ga} {gb}");
        // Below the threshold nothing changes.
        let norm = clip_grad_norm(&mut grads, &params, 10.0).unwrap();
        assert!((norm - 1.0).abs() < 1e-5);
        assert!((grads.get(&a).unwrap().to_vec1::<f32>().unwrap()[0] - 0.6).abs() < 1e-6);
    }

    #[test]
    fn load_state_rejects_missing_and_foreign_moments() {
        let var = Var::new(&[1f32, 2.0], &Device::Cpu).unwrap();
        let hyper = AdamWParams { beta1: 0.9, beta2: 0.99, eps: 1e-8, weight_decay: 0.1 };
        let mut opt = AdamW::new(vec![("w".to_string(), var)], hyper).unwrap();
        let mut state = opt.state();
        state.m.remove("w");
        let err = opt.load_state(state).unwrap_err().to_string();
        assert!(err.contains("optimizer state has no m for parameter w"), "{err}");
        let mut state = opt.state();
        state.v.insert("x".to_string(), Tensor::zeros(1, candle_core::DType::F32, &Device::Cpu).unwrap());
        let err = opt.load_state(state).unwrap_err().to_string();
        assert!(err.contains("moments for x"), "{err}");
    }
}
