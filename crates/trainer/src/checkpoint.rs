//! Checkpoints: a directory per save, written atomically.
//!
//! Layout: `<run_dir>/checkpoints/step-000123/` holds
//!
//! * `model.safetensors`: the weights (f32), keyed by the model's parameter names
//!   (`wte.weight`, `h.0.attn.c_attn.weight`, …; see [`crate::model`]);
//! * `optimizer.safetensors`: AdamW's moments as `m.<name>` and `v.<name>` (f32, shaped like the
//!   parameter), with the update count in the safetensors header metadata (`adamw_step`);
//! * `meta.json`: [`CheckpointMeta`] (format version, step, tokens, config, run name, time).
//!
//! A save writes `step-000123.tmp/`, fsyncs each file and the directory, renames it to
//! `step-000123/` and fsyncs `checkpoints/`, so a directory without the `.tmp` suffix is always
//! complete. The data order needs no saved RNG state: the batch of step `s` is drawn from an RNG
//! seeded by `(config.seed, s)`, so a resumed run sees the batches an uninterrupted run would.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor, Var};
use safetensors::SafeTensors;
use serde::{Deserialize, Serialize};

use crate::optim::AdamWState;
use crate::{TrainConfig, TrainError, fsutil};

/// Version of the checkpoint layout written by this crate; loading rejects other versions.
pub const CHECKPOINT_FORMAT_VERSION: u32 = 1;
/// File of the model weights inside a checkpoint directory.
pub const MODEL_FILE: &str = "model.safetensors";
/// File of the optimizer state inside a checkpoint directory.
pub const OPTIMIZER_FILE: &str = "optimizer.safetensors";
/// File of the metadata inside a checkpoint directory.
pub const META_FILE: &str = "meta.json";
/// Sub-directory of a run directory that holds its checkpoints.
pub const CHECKPOINTS_DIR: &str = "checkpoints";
/// Header metadata key of the AdamW update count in `optimizer.safetensors`.
const ADAMW_STEP_KEY: &str = "adamw_step";

/// `meta.json` of a checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckpointMeta {
    /// [`CHECKPOINT_FORMAT_VERSION`] of the writer.
    pub format_version: u32,
    /// Optimizer steps completed.
    pub step: u64,
    /// Tokens trained, cumulative over resumes.
    pub tokens: u64,
    /// The configuration of the run (its `seed` also fixes the data order).
    pub config: TrainConfig,
    /// Name of the run that wrote it; may be empty.
    pub run_name: String,
    /// When it was written: seconds since the Unix epoch.
    pub saved_at_unix_secs: f64,
    /// Last validation loss measured before it was written, in nats/token (`null` if none or
    /// not finite).
    pub val_loss: Option<f64>,
    /// The text the run was trained on; `None` in checkpoints written before it was recorded.
    #[serde(default)]
    pub data: Option<DataInfo>,
}

/// Which text a checkpoint was trained on, so that a resume can find it and check it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DataInfo {
    /// The path it was read from (as given).
    pub path: String,
    /// sha256 of its bytes, lower-case hex.
    pub sha256: String,
    /// Its size in bytes.
    pub bytes: u64,
}

/// A checkpoint read back by [`load_checkpoint`] (all tensors f32 on the CPU).
#[derive(Debug, Clone)]
pub struct LoadedCheckpoint {
    /// The checkpoint directory.
    pub dir: PathBuf,
    /// Its `meta.json`.
    pub meta: CheckpointMeta,
    /// Model weights by parameter name.
    pub weights: BTreeMap<String, Tensor>,
    /// AdamW's update count and moments.
    pub optimizer: AdamWState,
}

/// Name of the checkpoint directory of `step`: `step-000123` (zero-padded to 6 digits).
pub fn checkpoint_dir_name(step: u64) -> String {
    format!("step-{step:06}")
}

/// Delete all but the newest `keep` checkpoints of `run_dir` (by step), so that periodic
/// checkpoints of a long run do not fill the disk. `keep == 0` keeps all. Only complete
/// checkpoint directories named `step-NNNNNN` are touched; returns the ones removed.
///
/// # Errors
/// [`TrainError::Io`] naming the directory that could not be listed or removed.
pub fn prune_checkpoints(run_dir: &Path, keep: usize) -> Result<Vec<PathBuf>, TrainError> {
    let root = run_dir.join(CHECKPOINTS_DIR);
    if keep == 0 || !root.is_dir() {
        return Ok(Vec::new());
    }
    let entries = std::fs::read_dir(&root).map_err(|e| TrainError::io("cannot list directory", &root, e))?;
    let mut steps: Vec<(u64, PathBuf)> = entries
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name();
            let step = name.to_str()?.strip_prefix("step-")?.parse::<u64>().ok()?;
            entry.path().is_dir().then(|| (step, entry.path()))
        })
        .collect();
    steps.sort();
    let excess = steps.len().saturating_sub(keep);
    let mut removed = Vec::new();
    for (_, dir) in steps.into_iter().take(excess) {
        std::fs::remove_dir_all(&dir).map_err(|e| TrainError::io("cannot remove old checkpoint", &dir, e))?;
        removed.push(dir);
    }
    Ok(removed)
}

/// Write a checkpoint of `params` and `optimizer` to `<run_dir>/checkpoints/step-<meta.step>/`
/// atomically (see the module docs) and return that directory. An existing checkpoint of the
/// same step is replaced; a leftover `.tmp` directory from an interrupted save is removed.
///
/// # Errors
/// [`TrainError::Io`] naming the file or directory that could not be written, renamed or synced;
/// [`TrainError::Checkpoint`] if the tensors cannot be serialized.
pub fn save_checkpoint(
    run_dir: &Path,
    meta: &CheckpointMeta,
    params: &[(String, Var)],
    optimizer: &AdamWState,
) -> Result<PathBuf, TrainError> {
    let root = run_dir.join(CHECKPOINTS_DIR);
    if !root.is_dir() {
        std::fs::create_dir_all(&root).map_err(|e| TrainError::io("cannot create directory", &root, e))?;
        fsutil::sync_dir(run_dir)?;
    }
    let name = checkpoint_dir_name(meta.step);
    let dir = root.join(&name);
    let tmp = root.join(format!("{name}.tmp"));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(|e| TrainError::io("cannot remove stale directory", &tmp, e))?;
    }
    std::fs::create_dir(&tmp).map_err(|e| TrainError::io("cannot create directory", &tmp, e))?;

    let weights = params.iter().map(|(name, var)| (name.clone(), var.as_tensor()));
    let model_bytes = safetensors::serialize(weights, None)
        .map_err(|e| TrainError::checkpoint(tmp.join(MODEL_FILE), format!("cannot serialize weights: {e}")))?;
    fsutil::write_synced(&tmp.join(MODEL_FILE), &model_bytes)?;

    let moments = optimizer
        .m
        .iter()
        .map(|(name, m)| (format!("m.{name}"), m))
        .chain(optimizer.v.iter().map(|(name, v)| (format!("v.{name}"), v)));
    let header = HashMap::from([(ADAMW_STEP_KEY.to_string(), optimizer.step.to_string())]);
    let optimizer_bytes = safetensors::serialize(moments, Some(header)).map_err(|e| {
        TrainError::checkpoint(tmp.join(OPTIMIZER_FILE), format!("cannot serialize optimizer state: {e}"))
    })?;
    fsutil::write_synced(&tmp.join(OPTIMIZER_FILE), &optimizer_bytes)?;

    let meta_json = serde_json::to_vec_pretty(meta)
        .map_err(|e| TrainError::checkpoint(tmp.join(META_FILE), format!("cannot serialize metadata: {e}")))?;
    fsutil::write_synced(&tmp.join(META_FILE), &meta_json)?;
    fsutil::sync_dir(&tmp)?;

    // Replace an older checkpoint of the same step (e.g. a resumed run aborted at once): move it
    // aside first, because a directory cannot be renamed over a non-empty one.
    let old = root.join(format!("{name}.old"));
    let replaced = dir.exists();
    if replaced {
        if old.exists() {
            std::fs::remove_dir_all(&old).map_err(|e| TrainError::io("cannot remove stale directory", &old, e))?;
        }
        fsutil::rename(&dir, &old)?;
    }
    fsutil::rename(&tmp, &dir)?;
    fsutil::sync_dir(&root)?;
    if replaced {
        std::fs::remove_dir_all(&old).map_err(|e| TrainError::io("cannot remove replaced checkpoint", &old, e))?;
    }
    Ok(dir)
}

/// Read only `meta.json` of the checkpoint directory `dir`.
///
/// # Errors
/// [`TrainError::Checkpoint`] if `dir` is not a directory, `meta.json` is missing or not valid,
/// or its format version is not [`CHECKPOINT_FORMAT_VERSION`].
pub fn read_checkpoint_meta(dir: &Path) -> Result<CheckpointMeta, TrainError> {
    if !dir.is_dir() {
        return Err(TrainError::checkpoint(dir, "no such checkpoint directory"));
    }
    let path = dir.join(META_FILE);
    let bytes = read_file(&path)?;
    let meta: CheckpointMeta = serde_json::from_slice(&bytes)
        .map_err(|e| TrainError::checkpoint(&path, format!("not valid checkpoint metadata: {e}")))?;
    if meta.format_version != CHECKPOINT_FORMAT_VERSION {
        return Err(TrainError::checkpoint(
            &path,
            format!(
                "format version {} is not supported (this build reads version {CHECKPOINT_FORMAT_VERSION})",
                meta.format_version
            ),
        ));
    }
    Ok(meta)
}

/// Read the checkpoint directory `dir` written by [`save_checkpoint`].
///
/// # Errors
/// [`TrainError::Checkpoint`] naming the file if a file is missing, is not valid safetensors or
/// JSON, holds a tensor that is not f32, lacks `adamw_step`, or has moments whose names do not
/// match the weights.
pub fn load_checkpoint(dir: &Path) -> Result<LoadedCheckpoint, TrainError> {
    let meta = read_checkpoint_meta(dir)?;

    let model_path = dir.join(MODEL_FILE);
    let weights: BTreeMap<String, Tensor> = load_tensors(&model_path, &read_file(&model_path)?)?.into_iter().collect();

    let optimizer_path = dir.join(OPTIMIZER_FILE);
    let optimizer_bytes = read_file(&optimizer_path)?;
    let (_, header) = SafeTensors::read_metadata(&optimizer_bytes)
        .map_err(|e| TrainError::checkpoint(&optimizer_path, format!("not a valid safetensors file: {e}")))?;
    let adamw_step = header
        .metadata()
        .as_ref()
        .and_then(|metadata| metadata.get(ADAMW_STEP_KEY))
        .and_then(|step| step.parse::<u64>().ok())
        .ok_or_else(|| TrainError::checkpoint(&optimizer_path, format!("header has no numeric {ADAMW_STEP_KEY}")))?;
    let mut optimizer = AdamWState { step: adamw_step, m: BTreeMap::new(), v: BTreeMap::new() };
    for (key, tensor) in load_tensors(&optimizer_path, &optimizer_bytes)? {
        let (moments, name) = match key.split_once('.') {
            Some(("m", name)) => (&mut optimizer.m, name),
            Some(("v", name)) => (&mut optimizer.v, name),
            _ => return Err(TrainError::checkpoint(&optimizer_path, format!("unexpected tensor {key}"))),
        };
        moments.insert(name.to_string(), tensor);
    }
    for (kind, moments) in [("m", &optimizer.m), ("v", &optimizer.v)] {
        if !moments.keys().eq(weights.keys()) {
            return Err(TrainError::checkpoint(
                &optimizer_path,
                format!("the {kind} moments are not for the same parameters as {MODEL_FILE}"),
            ));
        }
    }
    Ok(LoadedCheckpoint { dir: dir.to_path_buf(), meta, weights, optimizer })
}

fn read_file(path: &Path) -> Result<Vec<u8>, TrainError> {
    std::fs::read(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => TrainError::checkpoint(path, "file is missing"),
        _ => TrainError::io("cannot read", path, e),
    })
}

/// Parse safetensors `bytes` (from `path`) into f32 CPU tensors.
fn load_tensors(path: &Path, bytes: &[u8]) -> Result<HashMap<String, Tensor>, TrainError> {
    let tensors = candle_core::safetensors::load_buffer(bytes, &Device::Cpu)
        .map_err(|e| TrainError::checkpoint(path, format!("not a valid safetensors file: {e}")))?;
    if let Some((name, tensor)) = tensors.iter().find(|(_, tensor)| tensor.dtype() != DType::F32) {
        return Err(TrainError::checkpoint(path, format!("tensor {name} is {:?}, expected f32", tensor.dtype())));
    }
    Ok(tensors)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::optim::{AdamW, AdamWParams};
    use crate::{Gpt, ParamStore};

    /// Copy of `tensor`'s values, for comparisons.
    pub(crate) fn values(tensor: &Tensor) -> Vec<f32> {
        tensor.flatten_all().unwrap().to_vec1::<f32>().unwrap()
    }

    /// A tiny model after one AdamW update, so that weights, m and v are all non-trivial.
    fn trained_tiny() -> (TrainConfig, ParamStore, AdamW) {
        let cfg = TrainConfig::tiny();
        let params = ParamStore::seeded(5);
        let model = Gpt::load(params.var_builder(), &cfg).unwrap();
        let mut optimizer = AdamW::new(params.vars(), AdamWParams::from_config(&cfg)).unwrap();
        let idx = Tensor::new(&[[1u32, 2, 3, 4], [5, 6, 7, 8]], &Device::Cpu).unwrap();
        let grads = model.loss(&idx, &idx).unwrap().backward().unwrap();
        optimizer.step(&grads, 1e-3).unwrap();
        (cfg, params, optimizer)
    }

    #[test]
    fn pruning_keeps_the_newest_checkpoints() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join(CHECKPOINTS_DIR);
        for step in [250, 1000, 500, 750] {
            std::fs::create_dir_all(root.join(checkpoint_dir_name(step))).unwrap();
        }
        std::fs::create_dir_all(root.join("step-001250.tmp")).unwrap();
        let removed = prune_checkpoints(dir.path(), 2).unwrap();
        assert_eq!(removed, vec![root.join("step-000250"), root.join("step-000500")]);
        let mut left: Vec<String> =
            std::fs::read_dir(&root).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        left.sort();
        assert_eq!(left, vec!["step-000750", "step-001000", "step-001250.tmp"]);
        assert_eq!(prune_checkpoints(dir.path(), 0).unwrap(), Vec::<PathBuf>::new());
    }

    fn meta(cfg: &TrainConfig, step: u64) -> CheckpointMeta {
        CheckpointMeta {
            format_version: CHECKPOINT_FORMAT_VERSION,
            step,
            tokens: step * cfg.tokens_per_step(),
            config: cfg.clone(),
            run_name: "round trip".to_string(),
            saved_at_unix_secs: 1_764_400_000.5,
            val_loss: Some(2.25),
            data: None,
        }
    }

    #[test]
    fn save_and_load_round_trip() {
        let run_dir = tempfile::tempdir().unwrap();
        let (cfg, params, optimizer) = trained_tiny();
        let meta = meta(&cfg, 123);
        let dir = save_checkpoint(run_dir.path(), &meta, &params.vars(), &optimizer.state()).unwrap();
        assert_eq!(dir, run_dir.path().join("checkpoints").join("step-000123"));
        let mut entries: Vec<String> = std::fs::read_dir(run_dir.path().join("checkpoints"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        entries.sort();
        assert_eq!(entries, vec!["step-000123".to_string()]);

        let loaded = load_checkpoint(&dir).unwrap();
        assert_eq!(loaded.meta, meta);
        assert_eq!(loaded.weights.len(), params.vars().len());
        for (name, var) in params.vars() {
            assert_eq!(values(&loaded.weights[&name]), values(var.as_tensor()), "{name}");
        }
        let state = optimizer.state();
        assert_eq!(loaded.optimizer.step, 1);
        for (name, m) in &state.m {
            assert_eq!(values(&loaded.optimizer.m[name]), values(m), "m.{name}");
            assert_eq!(values(&loaded.optimizer.v[name]), values(&state.v[name]), "v.{name}");
        }
        // The moments are not all zero: the round trip compared real values.
        assert!(values(&state.v["wte.weight"]).iter().any(|&x| x > 0.0));

        // Saving the same step again replaces the checkpoint.
        let dir2 = save_checkpoint(run_dir.path(), &meta, &params.vars(), &optimizer.state()).unwrap();
        assert_eq!(dir2, dir);
        assert_eq!(std::fs::read_dir(run_dir.path().join("checkpoints")).unwrap().count(), 1);
    }

    #[test]
    fn missing_and_corrupt_files_are_named() {
        let run_dir = tempfile::tempdir().unwrap();
        let (cfg, params, optimizer) = trained_tiny();
        let dir = save_checkpoint(run_dir.path(), &meta(&cfg, 7), &params.vars(), &optimizer.state()).unwrap();

        let err = load_checkpoint(&run_dir.path().join("nope")).unwrap_err().to_string();
        assert_eq!(err, format!("checkpoint {}: no such checkpoint directory", run_dir.path().join("nope").display()));

        std::fs::write(dir.join(MODEL_FILE), b"garbage").unwrap();
        let err = load_checkpoint(&dir).unwrap_err().to_string();
        assert!(
            err.starts_with(&format!("checkpoint {}: not a valid safetensors file", dir.join(MODEL_FILE).display())),
            "{err}"
        );

        std::fs::remove_file(dir.join(OPTIMIZER_FILE)).unwrap();
        std::fs::remove_file(dir.join(MODEL_FILE)).unwrap();
        let err = load_checkpoint(&dir).unwrap_err().to_string();
        assert_eq!(err, format!("checkpoint {}: file is missing", dir.join(MODEL_FILE).display()));

        std::fs::write(dir.join(META_FILE), b"{\"step\": 1}").unwrap();
        let err = load_checkpoint(&dir).unwrap_err().to_string();
        assert!(err.contains("meta.json: not valid checkpoint metadata: missing field"), "{err}");
    }
}
