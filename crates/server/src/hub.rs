//! The hub: the console's shared state between producers, the store and viewers.
//!
//! Data flow: a producer hands events to [`Publisher::publish`] (never blocks) → a bounded
//! channel → the single writer thread, which numbers them per run (seq 1, 2, 3, …), stores
//! a batch in one transaction, folds it into the run's [`RunSummary`], and then broadcasts
//! it to live viewers. A viewer subscribes to the broadcast *before* reading the store, so
//! between the two it sees every seq, and one that falls behind the broadcast resyncs from
//! the store (see [`crate::http`]).

use crate::store::{BatchRecord, ExternalRun, Store, StoreError, StoredRun};
use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use trainconsole_protocol::{Event, EventBody, RunStart, RunState, RunSummary, StateChange, StoredEvent};

/// File in a run's directory that the process training it keeps locked while it runs; it
/// holds that process's console address. Another process (`trainconsole serve` on the same
/// runs directory) sees the lock and follows the run from the store instead of calling it
/// interrupted.
pub const PRODUCER_LOCK_FILE: &str = "producer.lock";
/// How often a run trained by another process is read back from the store.
pub const FOREIGN_POLL_INTERVAL: Duration = Duration::from_millis(200);

/// A run reported over HTTP whose trainer has posted nothing (not even an empty poll) for
/// this long shows as `interrupted` until it posts again. The Python client polls every
/// second, `trainconsole run` every 0.5 s.
pub const EXTERNAL_SILENCE: Duration = Duration::from_secs(60);
/// How often runs reported over HTTP are checked for [`EXTERNAL_SILENCE`].
const SILENCE_CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// Capacity of the channel from producers to the writer, in batches.
pub const WRITE_QUEUE_BATCHES: usize = 1024;
/// Most events the writer stores in one transaction.
pub const MAX_WRITE_BATCH_EVENTS: usize = 4096;
/// Capacity of each run's live broadcast, in batches; a viewer further behind resyncs from
/// the store.
pub const LIVE_BROADCAST_BATCHES: usize = 256;

/// Errors of the hub.
#[derive(Debug, thiserror::Error)]
pub enum HubError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// No run has this id.
    #[error("no run with id {0:?}")]
    UnknownRun(String),
    /// The run has ended; nothing can be asked of it.
    #[error("run {id} has already ended ({state})")]
    Finished { id: String, state: RunState },
    /// The run is trained by another process, whose console can abort it.
    #[error("run {id} is trained by another trainconsole process; abort it from that process's console at {console}")]
    OtherProcess { id: String, console: String },
    /// The run has no producer in this process that could be asked to stop.
    #[error("run {id} has no live trainer attached to this console ({state}); nothing to abort")]
    NoProducer { id: String, state: RunState },
    /// The writer could not store the events (the message says why, e.g. disk full); nothing
    /// of that batch was stored, and nothing stored before is touched.
    #[error("storing events failed: {0}")]
    WriteFailed(String),
    /// The writer thread has stopped (the process is shutting down or the store failed).
    #[error("the event writer has stopped")]
    WriterGone,
    /// A post to an external run came without its write token.
    #[error("run {0} takes events only with its write token: send `Authorization: Bearer TOKEN` (the token POST /api/runs answered)")]
    MissingToken(String),
    /// A post to an external run came with a token that is not its own.
    #[error("the write token is not run {0}'s")]
    WrongToken(String),
    /// A post to a run that this console trains itself.
    #[error("run {0} is trained by this console, not reported over HTTP; create a run with POST /api/runs to report one")]
    NotExternal(String),
    /// A force kill of a run whose process this console did not start.
    #[error("run {0}'s process was not started by this console (`trainconsole run`), so it cannot kill it")]
    NotKillable(String),
    /// A force kill before the abort request, or before the grace period after it is over.
    #[error("run {id}: {reason}")]
    KillTooEarly { id: String, reason: String },
}

/// What the abort endpoint calls to ask a producer to stop. Must return at once.
pub type AbortFn = Box<dyn Fn() + Send + Sync>;

/// One run as the hub knows it.
pub struct RunEntry {
    id: String,
    summary: Mutex<RunSummary>,
    live: broadcast::Sender<Arc<[StoredEvent]>>,
    abort: Mutex<Option<AbortFn>>,
    abort_sent: AtomicBool,
    /// Held (locked) while this process produces the run; see [`PRODUCER_LOCK_FILE`].
    producer_lock: Mutex<Option<std::fs::File>>,
    /// Console address of the other process that trains this run, while it does.
    other_console: Mutex<Option<String>>,
    /// Whether the last write of this run's events failed (to log a failure once).
    store_failing: AtomicBool,
    /// Set for a run reported over HTTP by an external trainer.
    external: Option<External>,
}

/// What the hub keeps of a run reported over HTTP (`POST /api/runs`).
struct External {
    /// SHA-256 of the write token, lowercase hex.
    token_sha256: String,
    /// A viewer asked to force-kill the trainer's process; the console that started it
    /// learns so from the answer to its next post.
    kill_requested: AtomicBool,
    /// State and message the run had when this console showed it as `interrupted` (it was
    /// not running when the console started, or its trainer fell silent); they come back
    /// when the trainer posts again.
    interrupted_from: Mutex<Option<(RunState, String)>>,
    /// When the trainer last posted (events or an empty poll), or the run was created or loaded.
    last_post: Mutex<std::time::Instant>,
    /// The run was created with `force_kill_grace_secs`: a console started the trainer's
    /// process (`trainconsole run`), and only for such a run is an `exit` event taken.
    supervised: bool,
}

impl External {
    fn new(token_sha256: String, interrupted_from: Option<(RunState, String)>, supervised: bool) -> Self {
        Self {
            supervised,
            token_sha256,
            kill_requested: AtomicBool::new(false),
            interrupted_from: Mutex::new(interrupted_from),
            last_post: Mutex::new(std::time::Instant::now()),
        }
    }
}

impl RunEntry {
    fn new(id: String, summary: RunSummary) -> Self {
        Self::with_external(id, summary, None)
    }

    fn with_external(id: String, summary: RunSummary, external: Option<External>) -> Self {
        let (live, _) = broadcast::channel(LIVE_BROADCAST_BATCHES);
        Self {
            id,
            summary: Mutex::new(summary),
            live,
            abort: Mutex::new(None),
            abort_sent: AtomicBool::new(false),
            producer_lock: Mutex::new(None),
            other_console: Mutex::new(None),
            store_failing: AtomicBool::new(false),
            external,
        }
    }

    /// Fold newly stored events into the summary, then broadcast them to live viewers.
    fn publish_stored(&self, stored: Vec<StoredEvent>) {
        {
            let mut summary = lock(&self.summary);
            for event in &stored {
                summary.apply(event);
            }
            if summary.state.is_finished() {
                // An ended run cannot be aborted any more.
                *lock(&self.abort) = None;
            }
        }
        if !stored.is_empty() {
            // No receiver is fine: nobody is watching.
            let _ = self.live.send(stored.into());
        }
    }

    /// Tell live viewers that the summary changed without a new event (an empty batch makes
    /// each viewer send the current summary).
    fn announce_summary(&self) {
        let _ = self.live.send(Vec::new().into());
    }

    /// The run's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// A copy of the run's current summary.
    pub fn summary(&self) -> RunSummary {
        lock(&self.summary).clone()
    }

    /// Receive every batch stored from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<[StoredEvent]>> {
        self.live.subscribe()
    }
}

struct WriteRequest {
    run_id: String,
    events: Vec<Event>,
    ack: Option<oneshot::Sender<Result<Written, String>>>,
    /// Idempotency key of a posted batch: events of it stored before are skipped.
    key: Option<String>,
}

/// What the writer did with one request: the run's last seq after it, and how many of its
/// events it stored (fewer than sent when an idempotent batch was sent again).
#[derive(Debug, Clone, Copy)]
struct Written {
    last_seq: u64,
    stored: u64,
}

/// The answer to a post of events to an external run (`POST /api/runs/{id}/events`).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct IngestAnswer {
    /// The run's latest stored seq after this post.
    pub last_seq: u64,
    /// Events of this post stored now (fewer than posted when a batch is posted again).
    pub stored: u64,
    /// Someone asked the run to stop: the trainer should save a checkpoint, report it, and
    /// report `state: aborted`.
    pub abort_requested: bool,
    /// A viewer asked to force-kill the trainer's process (for the console that started it).
    pub kill_requested: bool,
    /// The run's state as the console shows it.
    pub state: RunState,
}

/// An event of a post that the hub did not store, and why; the events before it are stored,
/// none after it.
#[derive(Debug, Clone, PartialEq)]
pub struct Refused {
    /// 0-based index of the event in the post.
    pub index: usize,
    /// Why it was not stored.
    pub reason: Refusal,
}

/// Why the hub refused a posted event.
#[derive(Debug, Clone, PartialEq)]
pub enum Refusal {
    /// A kind only the console reports: `exit`, which the console that started the
    /// trainer's process (`trainconsole run`) records, and which no trainer may report.
    ConsoleOwned {
        /// The event's kind.
        kind: &'static str,
    },
    /// The run has ended (`completed`, `aborted` or `failed`): it takes no more events. A
    /// trainer restarted after the end reports a new run (`POST /api/runs`, with the
    /// checkpoint's `start_step`, `start_tokens` and `resumed_from`).
    Ended {
        /// The state it ended in.
        state: RunState,
    },
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::ConsoleOwned { kind } => write!(
                f,
                "kind `{kind}` is reported by the console that started the trainer's process (`trainconsole run`), not by a trainer"
            ),
            Refusal::Ended { state } => write!(
                f,
                "the run has already ended ({state}) and takes no more events; a trainer restarted after the end reports a new run (POST /api/runs, with its checkpoint's start_step, start_tokens and resumed_from)"
            ),
        }
    }
}

/// Length of a write token in random bytes (written as 64 hex digits).
pub const WRITE_TOKEN_BYTES: usize = 32;

/// The console's shared state. Cheap to clone.
#[derive(Clone)]
pub struct Hub {
    inner: Arc<HubInner>,
}

struct HubInner {
    runs: Mutex<HashMap<String, Arc<RunEntry>>>,
    reader: Mutex<Store>,
    writes: mpsc::Sender<WriteRequest>,
    runs_dir: PathBuf,
    shutdown: watch::Sender<bool>,
    /// Number of open viewer connections, so that shutdown can wait for their last message.
    viewers: watch::Sender<usize>,
}

impl Hub {
    /// Open the store in `runs_dir` and start the writer thread.
    ///
    /// Runs found in the store whose last state is not an end are shown as `interrupted`
    /// until a producer attaches to them.
    pub fn open(runs_dir: &Path) -> Result<Self, HubError> {
        let writer_store = Store::open(runs_dir)?;
        let reader = Store::open(runs_dir)?;
        let (writes, write_rx) = mpsc::channel(WRITE_QUEUE_BATCHES);
        let (shutdown, _) = watch::channel(false);
        let hub = Self {
            inner: Arc::new(HubInner {
                runs: Mutex::new(HashMap::new()),
                reader: Mutex::new(reader),
                writes,
                runs_dir: runs_dir.to_path_buf(),
                shutdown,
                viewers: watch::channel(0).0,
            }),
        };
        // The writer holds the hub weakly: when the last `Hub` is dropped, the queue's sender
        // goes with it and the writer ends.
        let writer_hub = Arc::downgrade(&hub.inner);
        std::thread::Builder::new()
            .name("trainconsole-writer".into())
            .spawn(move || writer_loop(writer_hub, writer_store, write_rx))
            .map_err(|source| StoreError::RunsDir { path: runs_dir.to_path_buf(), source })?;
        let watched = Arc::downgrade(&hub.inner);
        std::thread::Builder::new()
            .name("trainconsole-silence".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(SILENCE_CHECK_INTERVAL);
                    let Some(inner) = watched.upgrade() else { break };
                    Hub { inner }.interrupt_silent_runs(EXTERNAL_SILENCE);
                }
            })
            .map_err(|source| StoreError::RunsDir { path: runs_dir.to_path_buf(), source })?;
        Ok(hub)
    }

    /// The runs directory.
    pub fn runs_dir(&self) -> &Path {
        &self.inner.runs_dir
    }

    /// Run a read on the reader connection.
    pub fn read<T>(&self, f: impl FnOnce(&Store) -> Result<T, StoreError>) -> Result<T, StoreError> {
        f(&lock(&self.inner.reader))
    }

    /// Create a new run named `name` whose producer lives in this process; `abort` is called
    /// (once) when a viewer asks the run to stop.
    ///
    /// `console_url` is this process's console address; it is written into the run's
    /// [`PRODUCER_LOCK_FILE`], which stays locked until [`Hub::detach_producer`].
    pub fn create_run(&self, name: &str, console_url: &str, abort: AbortFn) -> Result<Arc<RunEntry>, HubError> {
        let created_time = trainconsole_protocol::event::unix_time_secs();
        let id = new_run_id(created_time);
        let run_dir = self.inner.runs_dir.join(&id);
        let lock_file = take_producer_lock(&run_dir, console_url)
            .map_err(|source| StoreError::RunsDir { path: run_dir.clone(), source })?;
        self.read(|store| store.create_run(&StoredRun { id: id.clone(), created_time, name: name.to_string() }))?;
        let mut summary = RunSummary::new(&id);
        summary.name = name.to_string();
        let entry = Arc::new(RunEntry::new(id.clone(), summary));
        *lock(&entry.abort) = Some(abort);
        *lock(&entry.producer_lock) = Some(lock_file);
        lock(&self.inner.runs).insert(id, entry.clone());
        Ok(entry)
    }

    /// The run `id`, loading it from the store on first use.
    pub fn run(&self, id: &str) -> Result<Arc<RunEntry>, HubError> {
        if let Some(entry) = lock(&self.inner.runs).get(id) {
            return Ok(entry.clone());
        }
        let (exists, summary, external) = self.read(|store| {
            if !store.has_run(id)? {
                return Ok((false, RunSummary::new(id), None));
            }
            Ok((true, fold_stored(store, id)?, store.external_run(id)?))
        })?;
        if !exists {
            return Err(HubError::UnknownRun(id.to_string()));
        }
        let other_console = producer_elsewhere(&self.inner.runs_dir.join(id));
        let mut summary = summary;
        let external = external.map(|record| {
            if summary.exit.is_none() {
                summary.force_kill_grace_secs = record.force_kill_grace_secs;
            }
            let supervised = record.force_kill_grace_secs.is_some();
            External::new(record.token_sha256, Some((summary.state, summary.message.clone())), supervised)
        });
        if other_console.is_none() {
            summary.mark_interrupted();
        }
        let mut runs = lock(&self.inner.runs);
        if let Some(entry) = runs.get(id) {
            return Ok(entry.clone());
        }
        let entry = Arc::new(RunEntry::with_external(id.to_string(), summary, external));
        runs.insert(id.to_string(), entry.clone());
        drop(runs);
        if let Some(console) = other_console {
            *lock(&entry.other_console) = Some(console);
            let (hub, followed) = (self.clone(), entry.clone());
            let spawned = std::thread::Builder::new()
                .name(format!("trainconsole-follow-{id}"))
                .spawn(move || follow_other_process(hub, followed));
            if let Err(err) = spawned {
                tracing::warn!("cannot follow run {id} trained by another process: {err}");
            }
        }
        Ok(entry)
    }

    /// Create a run reported by an external trainer: stores `start` (stamped `time`) as its
    /// `run_start` event and returns the run with its write token (64 hex digits; only its
    /// SHA-256 is stored).
    ///
    /// `force_kill_grace_secs` is given by a console that started the trainer's process and
    /// can kill it (`trainconsole run`). `producer_console` is the address of this process's
    /// console when the trainer's process is this process's child: the run's
    /// [`PRODUCER_LOCK_FILE`] is then held until [`Hub::detach_producer`], so that another
    /// `serve` on the same runs directory follows it.
    pub async fn create_external_run(
        &self,
        start: RunStart,
        time: f64,
        force_kill_grace_secs: Option<f64>,
        producer_console: Option<&str>,
    ) -> Result<(Arc<RunEntry>, String), HubError> {
        let created_time = trainconsole_protocol::event::unix_time_secs();
        let id = new_run_id(created_time);
        let token: String = (0..WRITE_TOKEN_BYTES).map(|_| format!("{:02x}", rand::random::<u8>())).collect();
        let record = ExternalRun { token_sha256: sha256_hex(&token), force_kill_grace_secs };
        let lock_file = match producer_console {
            Some(console) => {
                let run_dir = self.inner.runs_dir.join(&id);
                Some(take_producer_lock(&run_dir, console).map_err(|source| StoreError::RunsDir { path: run_dir.clone(), source })?)
            }
            None => None,
        };
        let run = StoredRun { id: id.clone(), created_time, name: start.name.clone() };
        {
            let mut store = lock(&self.inner.reader);
            store.create_external_run(&run, &record)?;
        }
        let mut summary = RunSummary::new(&id);
        summary.name = start.name.clone();
        summary.force_kill_grace_secs = force_kill_grace_secs;
        let external = External::new(record.token_sha256, None, force_kill_grace_secs.is_some());
        let entry = Arc::new(RunEntry::with_external(id.clone(), summary, Some(external)));
        *lock(&entry.producer_lock) = lock_file;
        lock(&self.inner.runs).insert(id.clone(), entry.clone());
        self.append(&id, vec![Event::new(time, start)]).await?;
        Ok((entry, token))
    }

    /// The external run `id`, if `token` is its write token.
    ///
    /// Errors: unknown run; [`HubError::NotExternal`] for a run this console trains;
    /// [`HubError::MissingToken`] / [`HubError::WrongToken`]; [`HubError::OtherProcess`]
    /// when another process produces the run (its events go through that process).
    pub fn authorize(&self, id: &str, token: Option<&str>) -> Result<Arc<RunEntry>, HubError> {
        let entry = self.run(id)?;
        let Some(external) = &entry.external else {
            return Err(HubError::NotExternal(id.to_string()));
        };
        let Some(token) = token else {
            return Err(HubError::MissingToken(id.to_string()));
        };
        // Comparing hashes: the time taken says nothing about the token.
        if sha256_hex(token) != external.token_sha256 {
            return Err(HubError::WrongToken(id.to_string()));
        }
        if let Some(console) = lock(&entry.other_console).clone() {
            return Err(HubError::OtherProcess { id: id.to_string(), console });
        }
        Ok(entry)
    }

    /// Store `events` posted for the external run `entry` (already authorized) and answer
    /// what the trainer should know. `key` names the batch: a batch posted again with the
    /// same key stores only the events of it not stored before.
    ///
    /// The events are stored up to the first one the run does not take ([`Refused`]): an
    /// `exit` event for a run whose process no console started, or any event once the run
    /// has ended (an `exit` from the console that started the process excepted).
    pub async fn ingest(
        &self,
        entry: &RunEntry,
        mut events: Vec<Event>,
        key: Option<String>,
    ) -> Result<(IngestAnswer, Option<Refused>), HubError> {
        if let Some(external) = &entry.external {
            *lock(&external.last_post) = std::time::Instant::now();
        }
        // Lock order: `interrupted_from` is let go before `summary` is taken.
        let restored = entry.external.as_ref().and_then(|external| lock(&external.interrupted_from).take());
        if let Some((state, message)) = restored {
            // The trainer is back (this console restarted while it ran): show its own state.
            let mut summary = lock(&entry.summary);
            if summary.state == RunState::Interrupted {
                summary.state = state;
                summary.message = message;
            }
            drop(summary);
            entry.announce_summary();
        }
        // Events of a batch posted again that are stored already were taken then.
        let stored_before = match &key {
            Some(key) => self.read(|store| store.batch_events(&entry.id, key))? as usize,
            None => 0,
        };
        let refused = refused_event(entry, &events, stored_before);
        if let Some(refused) = &refused {
            events.truncate(refused.index);
        }
        let (last_seq, stored) = if events.is_empty() {
            (entry.summary().last_seq, 0)
        } else {
            let (ack, done) = oneshot::channel();
            let request = WriteRequest { run_id: entry.id.clone(), events, ack: Some(ack), key };
            self.inner.writes.send(request).await.map_err(|_| HubError::WriterGone)?;
            match done.await {
                Ok(Ok(written)) => (written.last_seq, written.stored),
                Ok(Err(message)) => return Err(HubError::WriteFailed(message)),
                Err(_) => return Err(HubError::WriterGone),
            }
        };
        let mut answer = self.ingest_answer(entry, stored);
        // Other posts may have been stored since; this one's seq is no later than the summary's.
        answer.last_seq = answer.last_seq.max(last_seq);
        Ok((answer, refused))
    }

    /// Show as `interrupted` every live run reported over HTTP whose trainer has not posted
    /// for `silence`; its next post brings its own state back. Called every second with
    /// [`EXTERNAL_SILENCE`] by a thread of the hub.
    pub fn interrupt_silent_runs(&self, silence: Duration) {
        let entries: Vec<Arc<RunEntry>> = lock(&self.inner.runs).values().cloned().collect();
        for entry in entries {
            let Some(external) = &entry.external else { continue };
            if lock(&external.last_post).elapsed() < silence || lock(&entry.other_console).is_some() {
                continue;
            }
            let mut summary = lock(&entry.summary);
            if summary.state.is_finished() {
                continue;
            }
            *lock(&external.interrupted_from) = Some((summary.state, summary.message.clone()));
            summary.mark_interrupted();
            summary.message = format!("the trainer has posted nothing for {} s", silence.as_secs());
            drop(summary);
            entry.announce_summary();
        }
    }

    /// What a trainer reporting run `entry` should know now.
    pub fn ingest_answer(&self, entry: &RunEntry, stored: u64) -> IngestAnswer {
        let summary = entry.summary();
        IngestAnswer {
            last_seq: summary.last_seq,
            stored,
            abort_requested: summary.stopping_since.is_some(),
            kill_requested: entry.external.as_ref().is_some_and(|e| e.kill_requested.load(Ordering::SeqCst)),
            state: summary.state,
        }
    }

    /// Ask the console that started run `id`'s process to kill it (SIGTERM, then SIGKILL).
    ///
    /// Accepted only for a run started by `trainconsole run`, once an abort was requested and
    /// its grace period ([`RunSummary::force_kill_grace_secs`]) has passed. Returns the run's
    /// state. Errors: unknown run; [`HubError::Finished`]; [`HubError::NotKillable`];
    /// [`HubError::KillTooEarly`].
    pub fn kill(&self, id: &str) -> Result<RunState, HubError> {
        let entry = self.run(id)?;
        let summary = entry.summary();
        if summary.state.is_finished() {
            return Err(HubError::Finished { id: id.to_string(), state: summary.state });
        }
        let (Some(external), Some(grace_secs)) = (&entry.external, summary.force_kill_grace_secs) else {
            return Err(HubError::NotKillable(id.to_string()));
        };
        let Some(since) = summary.stopping_since else {
            return Err(HubError::KillTooEarly { id: id.to_string(), reason: "abort it first; force kill is for a trainer that does not stop".into() });
        };
        let waited = trainconsole_protocol::event::unix_time_secs() - since;
        if waited < grace_secs {
            let reason = format!("the trainer has {:.0} s of its {grace_secs:.0} s grace period left to stop by itself", (grace_secs - waited).ceil());
            return Err(HubError::KillTooEarly { id: id.to_string(), reason });
        }
        external.kill_requested.store(true, Ordering::SeqCst);
        Ok(summary.state)
    }

    /// Summaries of all runs, newest first.
    pub fn list(&self) -> Result<Vec<RunSummary>, HubError> {
        let runs = self.read(|store| store.list_runs())?;
        runs.iter().map(|run| self.run(&run.id).map(|entry| entry.summary())).collect()
    }

    /// A publisher for run `id`'s events.
    pub fn publisher(&self, id: &str) -> Publisher {
        Publisher { hub: self.clone(), run_id: id.to_string(), pending: VecDeque::new() }
    }

    /// Store `events` for run `id` and wait until they are stored; returns the last seq.
    pub async fn append(&self, id: &str, events: Vec<Event>) -> Result<u64, HubError> {
        let (ack, done) = oneshot::channel();
        self.inner
            .writes
            .send(WriteRequest { run_id: id.to_string(), events, ack: Some(ack), key: None })
            .await
            .map_err(|_| HubError::WriterGone)?;
        match done.await {
            Ok(Ok(written)) => Ok(written.last_seq),
            Ok(Err(message)) => Err(HubError::WriteFailed(message)),
            Err(_) => Err(HubError::WriterGone),
        }
    }

    /// Ask run `id` to stop: calls its producer's abort once and records `state: stopping`.
    ///
    /// Returns the run's state after the request. A second request changes nothing.
    /// Errors: unknown run; [`HubError::Finished`] when it has ended;
    /// [`HubError::NoProducer`] when nothing in this process can stop it.
    ///
    /// A run reported over HTTP that shows as `interrupted` because its trainer fell silent
    /// (or this console restarted while it ran) can still be asked: the request is recorded,
    /// the run keeps showing `interrupted`, and the trainer's next post brings it back as
    /// `stopping` with `abort_requested`.
    pub async fn abort(&self, id: &str) -> Result<RunState, HubError> {
        let entry = self.run(id)?;
        let state = entry.summary().state;
        // Interrupted, but it was live: its trainer may post again.
        let silent = state == RunState::Interrupted
            && entry.external.as_ref().is_some_and(|external| {
                lock(&external.interrupted_from).as_ref().is_some_and(|(from, _)| !from.is_finished())
            });
        if state.is_finished() && !silent {
            return Err(HubError::Finished { id: id.to_string(), state });
        }
        if let Some(console) = lock(&entry.other_console).clone() {
            return Err(HubError::OtherProcess { id: id.to_string(), console });
        }
        if entry.external.is_some() {
            // An external trainer learns of the request from the answer to its next post
            // (`trainconsole run` passes it on as SIGINT); it answers `stopping`, then
            // `checkpoint`, then `state: aborted`.
            if entry.summary().stopping_since.is_none() && !entry.abort_sent.swap(true, Ordering::SeqCst) {
                self.append(id, vec![Event::now(StateChange { state: RunState::Stopping, message: "abort requested".into() })]).await?;
            }
            if silent {
                keep_interrupted(&entry);
            }
            return Ok(entry.summary().state.max_progress(RunState::Stopping));
        }
        // Lock order: never take `summary` while holding `abort` (the writer does the reverse).
        let already_sent = {
            let abort = lock(&entry.abort);
            let Some(abort) = abort.as_ref() else {
                return Err(HubError::NoProducer { id: id.to_string(), state });
            };
            let already_sent = entry.abort_sent.swap(true, Ordering::SeqCst);
            if !already_sent {
                abort();
            }
            already_sent
        };
        if already_sent {
            return Ok(entry.summary().state.max_progress(RunState::Stopping));
        }
        self.append(id, vec![Event::now(StateChange { state: RunState::Stopping, message: "abort requested".into() })]).await?;
        Ok(entry.summary().state.max_progress(RunState::Stopping))
    }

    /// Detach run `id`'s producer (it has ended); later aborts answer 409.
    pub fn detach_producer(&self, id: &str) {
        if let Some(entry) = lock(&self.inner.runs).get(id) {
            *lock(&entry.abort) = None;
            if lock(&entry.producer_lock).take().is_some() {
                // Unlocked by the drop above; the file has no use any more.
                let _ = std::fs::remove_file(self.inner.runs_dir.join(id).join(PRODUCER_LOCK_FILE));
            }
        }
    }

    /// Tell every viewer the process is exiting.
    pub fn shut_down(&self) {
        self.inner.shutdown.send_replace(true);
    }

    /// Resolves when [`Hub::shut_down`] is called.
    pub fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.inner.shutdown.subscribe()
    }

    /// Count an open viewer until the returned guard is dropped.
    pub fn viewer_guard(&self) -> ViewerGuard {
        self.inner.viewers.send_modify(|n| *n += 1);
        ViewerGuard { hub: self.clone() }
    }

    /// Wait until every viewer has closed (after [`Hub::shut_down`] each sends its last
    /// events and `bye`), or `timeout` has passed. Returns whether all closed.
    pub async fn wait_for_viewers(&self, timeout: Duration) -> bool {
        let mut viewers = self.inner.viewers.subscribe();
        tokio::time::timeout(timeout, viewers.wait_for(|&n| n == 0)).await.is_ok_and(|r| r.is_ok())
    }
}

/// Keeps a viewer counted by the hub while it lives; see [`Hub::viewer_guard`].
pub struct ViewerGuard {
    hub: Hub,
}

impl Drop for ViewerGuard {
    fn drop(&mut self) {
        self.hub.inner.viewers.send_modify(|n| *n = n.saturating_sub(1));
    }
}

/// Small helper for the abort answer: once stopping, the answer never goes back to running.
trait MaxProgress {
    fn max_progress(self, floor: RunState) -> RunState;
}

impl MaxProgress for RunState {
    fn max_progress(self, floor: RunState) -> RunState {
        if self == RunState::Running { floor } else { self }
    }
}

/// Hands a run's events to the writer without ever blocking.
///
/// When the write queue is full, events wait in this publisher (in order) and go out with the
/// next publish or [`Publisher::flush`]; nothing is dropped. The memory this can take is
/// bounded by the producer's own event count while the writer is stalled.
pub struct Publisher {
    hub: Hub,
    run_id: String,
    pending: VecDeque<Event>,
}

impl Publisher {
    /// Queue `event` for storing; returns at once.
    pub fn publish(&mut self, event: Event) {
        self.pending.push_back(event);
        self.try_drain();
    }

    fn try_drain(&mut self) {
        while !self.pending.is_empty() {
            let events: Vec<Event> = self.pending.drain(..self.pending.len().min(MAX_WRITE_BATCH_EVENTS)).collect();
            let request = WriteRequest { run_id: self.run_id.clone(), events, ack: None, key: None };
            match self.hub.inner.writes.try_send(request) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(request) | mpsc::error::TrySendError::Closed(request)) => {
                    for event in request.events.into_iter().rev() {
                        self.pending.push_front(event);
                    }
                    return;
                }
            }
        }
    }

    /// Events still waiting for room in the write queue.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Hand over every pending event and wait (up to `timeout`) until all are stored.
    /// Returns the last stored seq. Call from a thread that may block (not an async task).
    pub fn flush(&mut self, timeout: Duration) -> Result<u64, HubError> {
        let deadline = std::time::Instant::now() + timeout;
        let events: Vec<Event> = self.pending.drain(..).collect();
        let (ack, done) = oneshot::channel();
        let mut request = WriteRequest { run_id: self.run_id.clone(), events, ack: Some(ack), key: None };
        loop {
            match self.hub.inner.writes.try_send(request) {
                Ok(()) => break,
                Err(mpsc::error::TrySendError::Closed(_)) => return Err(HubError::WriterGone),
                Err(mpsc::error::TrySendError::Full(back)) => {
                    if std::time::Instant::now() > deadline {
                        self.pending.extend(back.events);
                        return Err(HubError::WriterGone);
                    }
                    request = back;
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
        }
        let mut done = done;
        loop {
            match done.try_recv() {
                Ok(result) => return result.map(|written| written.last_seq).map_err(HubError::WriteFailed),
                Err(oneshot::error::TryRecvError::Closed) => return Err(HubError::WriterGone),
                Err(oneshot::error::TryRecvError::Empty) if std::time::Instant::now() > deadline => return Err(HubError::WriterGone),
                Err(oneshot::error::TryRecvError::Empty) => std::thread::sleep(Duration::from_millis(2)),
            }
        }
    }
}

/// The writer thread: numbers, stores, folds and broadcasts, one batch at a time.
fn writer_loop(hub: std::sync::Weak<HubInner>, mut store: Store, mut rx: mpsc::Receiver<WriteRequest>) {
    while let Some(first) = rx.blocking_recv() {
        let Some(inner) = hub.upgrade() else { break };
        let hub = Hub { inner };
        // Gather what is already queued, so one transaction stores many events.
        let mut requests = vec![first];
        let mut count = requests[0].events.len();
        while count < MAX_WRITE_BATCH_EVENTS {
            match rx.try_recv() {
                Ok(request) => {
                    count += request.events.len();
                    requests.push(request);
                }
                Err(_) => break,
            }
        }
        // Group by run, keeping order within each run.
        let mut by_run: Vec<(String, Vec<WriteRequest>)> = Vec::new();
        for request in requests {
            match by_run.iter_mut().find(|(id, _)| *id == request.run_id) {
                Some((_, list)) => list.push(request),
                None => by_run.push((request.run_id.clone(), vec![request])),
            }
        }
        for (run_id, requests) in by_run {
            write_run_batch(&hub, &mut store, &run_id, requests);
        }
    }
}

fn write_run_batch(hub: &Hub, store: &mut Store, run_id: &str, requests: Vec<WriteRequest>) {
    let entry = match hub.run(run_id) {
        Ok(entry) => entry,
        Err(err) => {
            for request in requests {
                if let Some(ack) = request.ack {
                    let _ = ack.send(Err(err.to_string()));
                }
            }
            return;
        }
    };
    let mut seq = entry.summary().last_seq;
    let mut acks = Vec::new();
    let mut stored = Vec::new();
    let mut batches: Vec<BatchRecord> = Vec::new();
    for request in requests {
        let mut skip = 0;
        if let Some(key) = request.key {
            // A batch posted again (its answer was lost): skip what is stored of it already.
            let done = batches.iter().find(|b| b.key == key).map(|b| Ok(b.events)).unwrap_or_else(|| store.batch_events(run_id, &key));
            let done = match done {
                Ok(done) => done,
                Err(err) => {
                    if let Some(ack) = request.ack {
                        let _ = ack.send(Err(err.to_string()));
                    }
                    continue;
                }
            };
            skip = done as usize;
            let total = done.max(request.events.len() as u64);
            match batches.iter_mut().find(|b| b.key == key) {
                Some(batch) => batch.events = total,
                None => batches.push(BatchRecord { key, events: total }),
            }
        }
        let before = seq;
        for event in request.events.into_iter().skip(skip) {
            seq += 1;
            stored.push(StoredEvent { seq, event });
        }
        acks.extend(request.ack.map(|ack| (ack, Written { last_seq: seq, stored: seq - before })));
    }
    match store.append_with_batches(run_id, &stored, &batches) {
        Ok(()) => {
            entry.store_failing.store(false, Ordering::Relaxed);
            entry.publish_stored(stored);
            for (ack, written) in acks {
                let _ = ack.send(Ok(written));
            }
        }
        Err(err) => {
            // Said once per run until a write succeeds again, not once per failed batch.
            if !entry.store_failing.swap(true, Ordering::Relaxed) {
                tracing::error!("storing events of run {run_id} failed (further failures are not logged): {err}");
            }
            for (ack, _) in acks {
                let _ = ack.send(Err(err.to_string()));
            }
        }
    }
}

/// After an abort request was stored for the silent external run `entry`: show it as
/// `interrupted` again unless its trainer posted meanwhile; its next post brings back
/// `stopping`.
fn keep_interrupted(entry: &RunEntry) {
    let Some(external) = &entry.external else { return };
    // Lock order as in `Hub::interrupt_silent_runs`: summary, then interrupted_from.
    let mut summary = lock(&entry.summary);
    let mut from = lock(&external.interrupted_from);
    if from.is_none() || summary.state.is_finished() {
        // The trainer posted since (taking `interrupted_from`), or reported an end.
        return;
    }
    *from = Some((summary.state, summary.message.clone()));
    summary.mark_interrupted();
    summary.message = "abort requested while the trainer was silent; it learns of it from the answer to its next post".into();
    drop(from);
    drop(summary);
    entry.announce_summary();
}

/// The first of `events` (posted for `entry`) that the run does not take, if any: see
/// [`Hub::ingest`]. State events earlier in the same post count: a post that ends the run and
/// then reports a step has the step refused. The first `stored_before` events (of a batch
/// posted again) were taken when it was first posted and are not refused now.
fn refused_event(entry: &RunEntry, events: &[Event], stored_before: usize) -> Option<Refused> {
    let supervised = entry.external.as_ref().is_some_and(|external| external.supervised);
    let mut state = lock(&entry.summary).state;
    for (index, event) in events.iter().enumerate() {
        let refuse = |reason| Some(Refused { index, reason });
        if index < stored_before {
            if let EventBody::State(change) = &event.body {
                state = change.state;
            }
            continue;
        }
        match &event.body {
            EventBody::Exit(_) if supervised => continue,
            EventBody::Exit(_) => return refuse(Refusal::ConsoleOwned { kind: "exit" }),
            _ if state.is_finished() && state != RunState::Interrupted => return refuse(Refusal::Ended { state }),
            EventBody::State(change) => state = change.state,
            _ => {}
        }
    }
    None
}

/// SHA-256 of `text`, lowercase hex.
fn sha256_hex(text: &str) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(text.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// Create `run_dir` and its producer lock file holding `console_url`, locked exclusively.
fn take_producer_lock(run_dir: &Path, console_url: &str) -> std::io::Result<std::fs::File> {
    use std::io::Write as _;
    std::fs::create_dir_all(run_dir)?;
    let mut file = std::fs::OpenOptions::new().create(true).truncate(true).write(true).open(run_dir.join(PRODUCER_LOCK_FILE))?;
    file.try_lock().map_err(std::io::Error::other)?;
    file.write_all(console_url.as_bytes())?;
    file.flush()?;
    Ok(file)
}

/// The console address of another process that holds `run_dir`'s producer lock, if one does.
fn producer_elsewhere(run_dir: &Path) -> Option<String> {
    let file = std::fs::File::open(run_dir.join(PRODUCER_LOCK_FILE)).ok()?;
    match file.try_lock_shared() {
        Ok(()) => None,
        Err(std::fs::TryLockError::WouldBlock) => {
            Some(std::fs::read_to_string(run_dir.join(PRODUCER_LOCK_FILE)).unwrap_or_default())
        }
        Err(std::fs::TryLockError::Error(_)) => None,
    }
}

/// Follow a run trained by another process: read its new events from the store every
/// [`FOREIGN_POLL_INTERVAL`] and publish them here, until that process lets go of the run.
fn follow_other_process(hub: Hub, entry: Arc<RunEntry>) {
    let run_dir = hub.runs_dir().join(entry.id());
    loop {
        let alive = producer_elsewhere(&run_dir).is_some();
        loop {
            let after = entry.summary().last_seq;
            match hub.read(|store| store.events_after(entry.id(), after, 10_000)) {
                Ok(events) if events.is_empty() => break,
                Ok(events) => entry.publish_stored(events),
                Err(err) => {
                    tracing::warn!("following run {}: {err}", entry.id());
                    break;
                }
            }
        }
        if !alive || *hub.inner.shutdown.borrow() {
            break;
        }
        std::thread::sleep(FOREIGN_POLL_INTERVAL);
    }
    *lock(&entry.other_console) = None;
    let was_finished = entry.summary().state.is_finished();
    lock(&entry.summary).mark_interrupted();
    if !was_finished {
        entry.announce_summary();
    }
}

/// Fold every stored event of `id` into a summary.
fn fold_stored(store: &Store, id: &str) -> Result<RunSummary, StoreError> {
    let mut summary = RunSummary::new(id);
    let mut after = 0;
    loop {
        let events = store.events_after(id, after, 10_000)?;
        let Some(last) = events.last() else { break };
        after = last.seq;
        events.iter().for_each(|e| summary.apply(e));
    }
    if summary.name.is_empty()
        && let Some(run) = store.list_runs()?.into_iter().find(|r| r.id == id)
    {
        summary.name = run.name;
    }
    Ok(summary)
}

/// A run id: the UTC creation time and 4 random hex digits, e.g. `20261129-181230-3fa2`;
/// sortable and readable.
fn new_run_id(unix_secs: f64) -> String {
    let secs = unix_secs.max(0.0) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    let suffix: u16 = rand::random();
    format!("{y:04}{m:02}{d:02}-{:02}{:02}{:02}-{suffix:04x}", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// Days since 1970-01-01 to (year, month, day), Howard Hinnant's `civil_from_days`.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// Lock a mutex, recovering the data if a thread panicked while holding it.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_carry_the_utc_date() {
        // 2026-11-29 18:12:30 UTC.
        let id = new_run_id(1_795_975_950.0);
        assert!(id.starts_with("20261129-181230-"), "{id}");
        assert_eq!(id.len(), "20261129-181230-abcd".len());
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }
}
