//! The model's trainable parameters by checkpoint name, created with a seeded initialisation or
//! taken from a checkpoint.
//!
//! [`ParamStore`] is a candle `SimpleBackend`: [`Gpt::load`](crate::Gpt::load) asks a
//! `VarBuilder` for each weight by name, and the store either draws it from its own seeded RNG
//! (candle's CPU RNG cannot be seeded) or hands out the checkpoint tensor of that name.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use candle_core::{DType, Device, Shape, Tensor, Var};
use candle_nn::{Init, VarBuilder, var_builder::SimpleBackend};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Named trainable parameters (f32, CPU). Cloning shares the same parameters.
#[derive(Clone)]
pub struct ParamStore {
    state: Arc<Mutex<State>>,
}

struct State {
    /// Parameters handed out so far, by checkpoint name.
    vars: BTreeMap<String, Var>,
    /// Where parameters not handed out yet come from.
    source: Source,
}

enum Source {
    /// Drawn from this RNG according to the model's init hint.
    Seeded(Box<StdRng>),
    /// Taken from these tensors (a checkpoint); names not among them are an error.
    Loaded(BTreeMap<String, Tensor>),
}

impl ParamStore {
    /// An empty store that initialises each parameter on first request from an RNG seeded
    /// with `seed`; the same seed and model give the same weights.
    pub fn seeded(seed: u64) -> Self {
        Self::with_source(Source::Seeded(Box::new(StdRng::seed_from_u64(seed))))
    }

    /// A store that hands out `tensors` (e.g. a checkpoint's weights) by name. Requests for
    /// names not among them, or with another shape, fail.
    pub fn from_tensors(tensors: BTreeMap<String, Tensor>) -> Self {
        Self::with_source(Source::Loaded(tensors))
    }

    fn with_source(source: Source) -> Self {
        Self { state: Arc::new(Mutex::new(State { vars: BTreeMap::new(), source })) }
    }

    /// A `VarBuilder` (f32, CPU) whose `get` calls go to this store.
    pub fn var_builder(&self) -> VarBuilder<'static> {
        VarBuilder::from_backend(Box::new(self.clone()), DType::F32, Device::Cpu)
    }

    /// The parameters handed out so far, sorted by name.
    pub fn vars(&self) -> Vec<(String, Var)> {
        self.lock().vars.iter().map(|(name, var)| (name.clone(), var.clone())).collect()
    }

    /// Number of scalar parameters handed out so far.
    pub fn num_params(&self) -> usize {
        self.lock().vars.values().map(|var| var.elem_count()).sum()
    }

    /// Names of loaded tensors that no model layer asked for (sorted); empty for a seeded store.
    pub fn unused_names(&self) -> Vec<String> {
        match &self.lock().source {
            Source::Seeded(_) => Vec::new(),
            Source::Loaded(pending) => pending.keys().cloned().collect(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A poisoned lock only means another thread panicked while holding it; the map itself
        // is still consistent (every update is a single insert/remove).
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl SimpleBackend for ParamStore {
    fn get(&self, shape: Shape, name: &str, init: Init, dtype: DType, device: &Device) -> candle_core::Result<Tensor> {
        let mut state = self.lock();
        if let Some(var) = state.vars.get(name) {
            if var.shape() != &shape {
                candle_core::bail!(
                    "parameter {name} was created with shape {:?}, now requested as {shape:?}",
                    var.shape()
                )
            }
            return Ok(var.as_tensor().clone());
        }
        let tensor = match &mut state.source {
            Source::Seeded(rng) => init_tensor(rng, &shape, init, name)?,
            Source::Loaded(pending) => {
                let Some(tensor) = pending.remove(name) else {
                    candle_core::bail!("no tensor named {name} among the loaded weights")
                };
                if tensor.shape() != &shape {
                    candle_core::bail!("tensor {name} has shape {:?}, the model expects {shape:?}", tensor.shape())
                }
                tensor
            }
        };
        let var = Var::from_tensor(&tensor.to_dtype(dtype)?.to_device(device)?)?;
        let handle = var.as_tensor().clone();
        state.vars.insert(name.to_string(), var);
        Ok(handle)
    }

    fn get_unchecked(&self, name: &str, _dtype: DType, _device: &Device) -> candle_core::Result<Tensor> {
        match self.lock().vars.get(name) {
            Some(var) => Ok(var.as_tensor().clone()),
            None => candle_core::bail!("parameter {name} has not been created (its shape is unknown)"),
        }
    }

    fn contains_tensor(&self, name: &str) -> bool {
        let state = self.lock();
        state.vars.contains_key(name) || matches!(&state.source, Source::Loaded(pending) if pending.contains_key(name))
    }
}

/// Draw an f32 CPU tensor of `shape` for `init` from `rng`.
///
/// Normal values come from the Box–Muller transform (`rand` 0.9 has no normal distribution):
/// `z = sqrt(-2 ln u1) · cos(2π u2)` for independent uniform `u1 ∈ (0, 1]`, `u2 ∈ [0, 1)`.
fn init_tensor(rng: &mut StdRng, shape: &Shape, init: Init, name: &str) -> candle_core::Result<Tensor> {
    let count = shape.elem_count();
    let values: Vec<f32> = match init {
        Init::Const(value) => vec![value as f32; count],
        Init::Uniform { lo, up } => (0..count).map(|_| rng.random_range(lo..up) as f32).collect(),
        Init::Randn { mean, stdev } => (0..count)
            .map(|_| {
                let u1 = 1.0 - rng.random::<f64>();
                let u2 = rng.random::<f64>();
                let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
                (mean + stdev * z) as f32
            })
            .collect(),
        Init::Kaiming { .. } => candle_core::bail!("parameter {name}: Kaiming init is not supported by ParamStore"),
    };
    Tensor::from_vec(values, shape.clone(), &Device::Cpu)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_init_is_reproducible_and_has_the_asked_statistics() {
        let draw = |seed| {
            let store = ParamStore::seeded(seed);
            let vb = store.var_builder();
            vb.get_with_hints((100, 100), "w", Init::Randn { mean: 0.0, stdev: 0.02 })
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap()
        };
        let a = draw(7);
        assert_eq!(a, draw(7));
        assert_ne!(a, draw(8));
        let mean = a.iter().map(|&x| f64::from(x)).sum::<f64>() / a.len() as f64;
        let std = (a.iter().map(|&x| (f64::from(x) - mean).powi(2)).sum::<f64>() / a.len() as f64).sqrt();
        // 10,000 draws: the standard error of the mean is 0.0002, of the std about 0.00014.
        assert!(mean.abs() < 0.001, "{mean}");
        assert!((std - 0.02).abs() < 0.001, "{std}");
    }

    #[test]
    fn loaded_store_checks_names_and_shapes() {
        let mut tensors = BTreeMap::new();
        tensors.insert("a".to_string(), Tensor::ones((2, 3), DType::F32, &Device::Cpu).unwrap());
        tensors.insert("extra".to_string(), Tensor::ones(1, DType::F32, &Device::Cpu).unwrap());
        let store = ParamStore::from_tensors(tensors);
        let vb = store.var_builder();
        let err = vb.get((3, 2), "a").unwrap_err().to_string();
        assert!(err.contains("tensor a has shape [2, 3], the model expects [3, 2]"), "{err}");
        let err = vb.get(4, "b").unwrap_err().to_string();
        assert!(err.contains("no tensor named b"), "{err}");
        assert_eq!(store.unused_names(), vec!["extra".to_string()]);
    }
}
