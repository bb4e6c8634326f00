//! The one error type of the trainer crate.

use std::path::PathBuf;

/// Everything that can go wrong while configuring, loading data, training or checkpointing.
///
/// Every message says what was wrong and where (the file, the config field, the tensor name),
/// so that a caller can show it to a person as it is.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// A configuration value is out of range or inconsistent with another.
    #[error("invalid training config: {0}")]
    Config(String),

    /// `TrainConfig::preset` was given a name it does not know.
    #[error("unknown preset {name:?}; known presets: {known}")]
    UnknownPreset {
        /// The name that was asked for.
        name: String,
        /// The known names, comma-separated.
        known: String,
    },

    /// Reading, writing, renaming or syncing a file or directory failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done, e.g. "cannot read".
        action: &'static str,
        /// The file or directory concerned.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },

    /// The training text file is empty.
    #[error("training data {path} is empty")]
    EmptyData {
        /// The data file.
        path: PathBuf,
    },

    /// The training text file is not UTF-8 text.
    #[error("training data {path} is not UTF-8 text: invalid byte at offset {offset} (0-based)")]
    NotUtf8 {
        /// The data file.
        path: PathBuf,
        /// Byte offset of the first byte that is not valid UTF-8.
        offset: usize,
    },

    /// The training text is too short for one context window in both the train and the val split.
    #[error(
        "training data {path} is too short: {actual_bytes} bytes, but a 90/10 train/val split with \
         a context of {block_size} tokens needs at least {needed_bytes} bytes"
    )]
    DataTooShort {
        /// The data file.
        path: PathBuf,
        /// Bytes in the file.
        actual_bytes: usize,
        /// Bytes needed so that each split holds `block_size + 1` tokens.
        needed_bytes: usize,
        /// The context length (tokens) of the config.
        block_size: usize,
    },

    /// Tiny Shakespeare could not be downloaded into the cache.
    #[error(
        "cannot download Tiny Shakespeare from {url}: {reason}. Pass `--data FILE` with a UTF-8 text \
         file instead, or put a copy of Tiny Shakespeare (1,115,394 bytes, sha256 {sha256}) at {path}"
    )]
    Download {
        /// Where it was downloaded from.
        url: String,
        /// What went wrong.
        reason: String,
        /// The cache file the download was meant to fill.
        path: PathBuf,
        /// The expected sha256 of the file, in hex.
        sha256: &'static str,
    },

    /// No cache directory could be found (no `TRAINCONSOLE_CACHE_DIR`, no platform cache dir).
    #[error("no cache directory: set TRAINCONSOLE_CACHE_DIR or pass `--data FILE`")]
    NoCacheDir,

    /// A checkpoint directory or one of its files is missing, corrupt or inconsistent.
    #[error("checkpoint {path}: {reason}")]
    Checkpoint {
        /// The checkpoint directory or file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// A tensor operation failed; `context` says which part of the trainer ran it.
    #[error("{context}: {source}")]
    Tensor {
        /// What the trainer was doing, e.g. "forward pass".
        context: String,
        /// candle's error.
        source: candle_core::Error,
    },
}

impl TrainError {
    /// An [`TrainError::Io`] error for `path`.
    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        TrainError::Io { action, path: path.into(), source }
    }

    /// A [`TrainError::Checkpoint`] error for `path`.
    pub(crate) fn checkpoint(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        TrainError::Checkpoint { path: path.into(), reason: reason.into() }
    }
}

/// Attach a context to candle errors: `tensor_op(...).context("forward pass")?`.
pub(crate) trait TensorContext<T> {
    /// Wrap a candle error into [`TrainError::Tensor`] with `context`.
    fn context(self, context: &str) -> Result<T, TrainError>;
}

impl<T> TensorContext<T> for candle_core::Result<T> {
    fn context(self, context: &str) -> Result<T, TrainError> {
        self.map_err(|source| TrainError::Tensor { context: context.to_string(), source })
    }
}
