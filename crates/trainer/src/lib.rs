//! The training worker of trainconsole: a small byte-level GPT trained on the CPU with candle.
//!
//! * [`TrainConfig`]: model shape, budget and optimizer settings, with presets `tiny`, `small`.
//! * [`Corpus`]: a UTF-8 text file split 90/10 into train and validation bytes;
//!   [`tinyshakespeare_path`] fetches and caches the default corpus.
//! * [`Gpt`]: the model (nanoGPT's architecture), its weights in a [`ParamStore`].
//! * [`GptEngine`]: the training hot path for that model: a fixed forward/backward with
//!   buffers allocated once, the fused operations of [`kernels`], AdamW, generation; tested
//!   against [`Gpt`].
//! * [`AdamW`], [`LrSchedule`], [`clip_grad_norm`]: the optimizer.
//! * [`save_checkpoint`] / [`load_checkpoint`]: atomic checkpoint directories.
//! * [`train`]: the loop, reporting [`trainconsole_protocol::Event`]s to an [`EventSink`] and
//!   stopping on an [`AbortHandle`].
//!
//! Every error is a [`TrainError`] whose message names what was wrong and where.

#![warn(missing_docs)]

pub mod checkpoint;
pub mod config;
pub mod data;
pub mod engine;
mod error;
mod fsutil;
pub mod kernels;
pub mod model;
pub mod optim;
pub mod params;
pub mod peak;
pub mod train;

pub use checkpoint::{CheckpointMeta, DataInfo, LoadedCheckpoint, load_checkpoint, prune_checkpoints, read_checkpoint_meta, save_checkpoint};
pub use config::TrainConfig;
pub use engine::{GptEngine, default_threads};
pub use data::{Corpus, Split, tinyshakespeare_path};
pub use error::TrainError;
pub use model::Gpt;
pub use optim::{AdamW, AdamWParams, AdamWState, LrSchedule, clip_grad_norm};
pub use params::ParamStore;
pub use train::{AbortHandle, EventSink, TrainOptions, TrainOutcome, resume_config, train, train_with};
