//! Training configuration: one plain struct with named presets.
//!
//! The model is a byte-level GPT (vocabulary = the 256 byte values) without dropout; the
//! optimizer is AdamW with a warm-up + cosine learning-rate schedule, as in nanoGPT.

use serde::{Deserialize, Serialize};

use crate::TrainError;

/// Vocabulary of the byte-level tokenizer: one token per byte value.
pub const BYTE_VOCAB_SIZE: usize = 256;

/// Everything that decides a training run: model shape, token budget, optimizer, evaluation.
///
/// Build it from a preset ([`TrainConfig::small`], [`TrainConfig::tiny`],
/// [`TrainConfig::preset`]) and change fields as needed; [`TrainConfig::validate`] checks it.
/// `Default` is the `small` preset. Serialized as-is into `run_start` events and `meta.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    // ---- model ----
    /// Vocabulary size; must be 256 (byte-level tokens).
    pub vocab_size: usize,
    /// Transformer blocks.
    pub n_layer: usize,
    /// Attention heads per block; must divide `n_embd`.
    pub n_head: usize,
    /// Width of the residual stream (embedding size C).
    pub n_embd: usize,
    /// Context length T in tokens (also the number of position embeddings).
    pub block_size: usize,

    // ---- data and budget ----
    /// Sequences per optimizer step (B). No gradient accumulation.
    pub batch_size: usize,
    /// Token budget of the whole run; the run ends after [`TrainConfig::total_steps`] steps.
    pub max_tokens: u64,

    // ---- optimizer (AdamW) and schedule ----
    /// Peak learning rate, reached at the end of the warm-up.
    pub learning_rate: f64,
    /// Learning rate at the end of the cosine decay (nanoGPT: about `learning_rate / 10`).
    pub min_lr: f64,
    /// Steps of linear warm-up from near 0 to `learning_rate`.
    pub warmup_steps: u64,
    /// Decoupled weight decay, applied only to parameters with 2 or more dimensions.
    pub weight_decay: f64,
    /// AdamW β1 (decay of the first-moment average).
    pub beta1: f64,
    /// AdamW β2 (decay of the second-moment average).
    pub beta2: f64,
    /// Clip the global L2 norm of the gradients to this value; 0 disables clipping.
    pub grad_clip: f64,

    // ---- evaluation, samples, checkpoints ----
    /// Measure the validation loss and generate a sample every this many steps (and at the end).
    pub eval_interval: u64,
    /// Validation batches averaged per evaluation.
    pub eval_iters: usize,
    /// Bytes generated per sample; 0 disables samples.
    pub sample_tokens: usize,
    /// Seed of the weight initialisation, the batch order and the samples.
    pub seed: u64,
    /// Write a checkpoint every this many steps; 0 means only the final checkpoint.
    pub checkpoint_interval: u64,
    /// Checkpoints kept in the run directory: after each save, older ones beyond this many
    /// are deleted (the newest, including the final one, always stays); 0 keeps all.
    #[serde(default = "default_keep_checkpoints")]
    pub keep_checkpoints: usize,
}

fn default_keep_checkpoints() -> usize {
    3
}

impl Default for TrainConfig {
    /// The `small` preset.
    fn default() -> Self {
        Self::small()
    }
}

impl TrainConfig {
    /// Names accepted by [`TrainConfig::preset`].
    pub const PRESETS: [&'static str; 2] = ["tiny", "small"];

    /// The default model: 4 layers, 4 heads, width 128, context 128, batch 16
    /// (842,496 parameters, 2,048 tokens per step, 977 steps for 2M tokens).
    ///
    /// The optimizer settings follow nanoGPT's `shakespeare_char` config (β2 = 0.99 because
    /// steps are small, min_lr = lr / 10) with a higher peak rate for the smaller model;
    /// tuned so that 2M tokens of Tiny Shakespeare end below 2.0 nats/token validation loss.
    pub fn small() -> Self {
        Self {
            vocab_size: BYTE_VOCAB_SIZE,
            n_layer: 4,
            n_head: 4,
            n_embd: 128,
            block_size: 128,
            batch_size: 16,
            max_tokens: 2_000_000,
            learning_rate: 3e-3,
            min_lr: 3e-4,
            warmup_steps: 50,
            weight_decay: 0.1,
            beta1: 0.9,
            beta2: 0.99,
            grad_clip: 1.0,
            eval_interval: 100,
            eval_iters: 20,
            sample_tokens: 200,
            seed: 1337,
            checkpoint_interval: 250,
            keep_checkpoints: default_keep_checkpoints(),
        }
    }

    /// A toy model for tests and demos: 2 layers, 2 heads, width 32, context 32, batch 4
    /// (128 tokens per step; a step takes a few milliseconds).
    pub fn tiny() -> Self {
        Self {
            n_layer: 2,
            n_head: 2,
            n_embd: 32,
            block_size: 32,
            batch_size: 4,
            learning_rate: 1e-2,
            min_lr: 1e-3,
            warmup_steps: 10,
            eval_interval: 100,
            eval_iters: 5,
            sample_tokens: 100,
            checkpoint_interval: 1000,
            ..Self::small()
        }
    }

    /// The preset called `name` (`"tiny"` or `"small"`).
    ///
    /// # Errors
    /// [`TrainError::UnknownPreset`] for any other name.
    pub fn preset(name: &str) -> Result<Self, TrainError> {
        match name {
            "tiny" => Ok(Self::tiny()),
            "small" => Ok(Self::small()),
            _ => Err(TrainError::UnknownPreset { name: name.to_string(), known: Self::PRESETS.join(", ") }),
        }
    }

    /// Tokens trained by one optimizer step: `batch_size × block_size`.
    pub fn tokens_per_step(&self) -> u64 {
        (self.batch_size * self.block_size) as u64
    }

    /// Optimizer steps of the whole run: `ceil(max_tokens / tokens_per_step)`.
    /// The last step trains a full batch, so a run may train up to one step's worth of tokens
    /// more than `max_tokens`. Returns 0 if `tokens_per_step` is 0 (an invalid config).
    pub fn total_steps(&self) -> u64 {
        let tokens_per_step = self.tokens_per_step();
        if tokens_per_step == 0 {
            return 0;
        }
        self.max_tokens.div_ceil(tokens_per_step)
    }

    /// Check every field.
    ///
    /// # Errors
    /// [`TrainError::Config`] naming the first field that is out of range.
    pub fn validate(&self) -> Result<(), TrainError> {
        let fail = |message: String| Err(TrainError::Config(message));
        if self.vocab_size != BYTE_VOCAB_SIZE {
            return fail(format!(
                "vocab_size is {}, but the byte-level tokenizer needs {BYTE_VOCAB_SIZE}",
                self.vocab_size
            ));
        }
        for (name, value) in [
            ("n_layer", self.n_layer),
            ("n_head", self.n_head),
            ("n_embd", self.n_embd),
            ("block_size", self.block_size),
            ("batch_size", self.batch_size),
            ("eval_iters", self.eval_iters),
        ] {
            if value == 0 {
                return fail(format!("{name} must be at least 1"));
            }
        }
        if !self.n_embd.is_multiple_of(self.n_head) {
            return fail(format!("n_embd ({}) must be a multiple of n_head ({})", self.n_embd, self.n_head));
        }
        if self.max_tokens == 0 {
            return fail("max_tokens must be at least 1".to_string());
        }
        if self.eval_interval == 0 {
            return fail("eval_interval must be at least 1 step".to_string());
        }
        if !(self.learning_rate.is_finite() && self.learning_rate > 0.0) {
            return fail(format!("learning_rate must be a positive number, got {}", self.learning_rate));
        }
        if !(self.min_lr.is_finite() && self.min_lr >= 0.0 && self.min_lr <= self.learning_rate) {
            return fail(format!(
                "min_lr must be between 0 and learning_rate ({}), got {}",
                self.learning_rate, self.min_lr
            ));
        }
        for (name, value) in [("beta1", self.beta1), ("beta2", self.beta2)] {
            if !(0.0..1.0).contains(&value) {
                return fail(format!("{name} must be in [0, 1), got {value}"));
            }
        }
        for (name, value) in [("weight_decay", self.weight_decay), ("grad_clip", self.grad_clip)] {
            if !(value.is_finite() && value >= 0.0) {
                return fail(format!("{name} must be a non-negative number, got {value}"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_budget_in_steps() {
        let cfg = TrainConfig::small();
        assert_eq!(cfg.tokens_per_step(), 2048);
        // 2_000_000 / 2048 = 976.56… → 977 steps.
        assert_eq!(cfg.total_steps(), 977);
        assert_eq!(TrainConfig::tiny().tokens_per_step(), 128);
    }

    #[test]
    fn presets_validate_and_unknown_names_are_listed() {
        for name in TrainConfig::PRESETS {
            TrainConfig::preset(name).unwrap().validate().unwrap();
        }
        let err = TrainConfig::preset("huge").unwrap_err().to_string();
        assert_eq!(err, "unknown preset \"huge\"; known presets: tiny, small");
    }

    #[test]
    fn invalid_fields_are_named() {
        let cfg = TrainConfig { n_head: 3, ..TrainConfig::small() };
        assert_eq!(
            cfg.validate().unwrap_err().to_string(),
            "invalid training config: n_embd (128) must be a multiple of n_head (3)"
        );
        let cfg = TrainConfig { min_lr: 1.0, ..TrainConfig::small() };
        assert!(cfg.validate().unwrap_err().to_string().contains("min_lr"));
        let cfg = TrainConfig { batch_size: 0, ..TrainConfig::small() };
        assert_eq!(cfg.validate().unwrap_err().to_string(), "invalid training config: batch_size must be at least 1");
    }
}
