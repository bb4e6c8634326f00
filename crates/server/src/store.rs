//! The event store: every event of every run, in one SQLite file under the runs directory.
//!
//! Layout: `<runs_dir>/trainconsole.sqlite3`, WAL mode, four tables:
//! `runs(id, created_time, name)` and `events(run_id, seq, time, kind, body)` where `body`
//! is the stored event's JSON. `(run_id, seq)` is the primary key, so a seq is stored once.
//! Runs reported over HTTP by an external trainer also have a row in
//! `external_runs(run_id, token_sha256, force_kill_grace_secs)`, and
//! `ingest_batches(run_id, key, events)` remembers how many events of each posted batch
//! (named by its `Idempotency-Key`) were stored, in the same transaction as the events, so
//! a batch posted again after a lost answer is not stored twice.
//!
//! One writer connection (owned by the writer thread, see [`crate::hub`]) and one reader
//! connection; WAL lets readers run while the writer commits.

use rusqlite::{Connection, OptionalExtension, params};
use std::path::{Path, PathBuf};
use std::time::Duration;
use trainconsole_protocol::StoredEvent;

/// File name of the database inside the runs directory.
pub const DATABASE_FILE: &str = "trainconsole.sqlite3";
/// How long a connection waits on a lock before giving up.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Errors of the store. Messages name the file or run concerned.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The runs directory could not be created or written.
    #[error("cannot use runs directory {path}: {source}")]
    RunsDir { path: PathBuf, source: std::io::Error },
    /// SQLite failed on the database file.
    #[error("event store {path}: {source}")]
    Sqlite { path: PathBuf, source: rusqlite::Error },
    /// A stored event could not be decoded (the file was damaged or written by a newer version).
    #[error("event store {path}: run {run_id} seq {seq} is not a valid event: {source}")]
    Decode { path: PathBuf, run_id: String, seq: u64, source: serde_json::Error },
}

/// A run as listed in the store.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredRun {
    /// The run's id.
    pub id: String,
    /// Seconds since the Unix epoch when the run was created.
    pub created_time: f64,
    /// Name given at creation (may be empty).
    pub name: String,
}

/// What the store keeps of a run reported over HTTP by an external trainer.
#[derive(Debug, Clone, PartialEq)]
pub struct ExternalRun {
    /// SHA-256 of the run's write token, lowercase hex (the token itself is never stored).
    pub token_sha256: String,
    /// Seconds after the abort request from which the console that started the trainer's
    /// process may force-kill it; `None` when no console can.
    pub force_kill_grace_secs: Option<f64>,
}

/// How many events of a posted batch, named by its idempotency key, are already stored.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchRecord {
    /// The client's key for the batch (the `Idempotency-Key` header).
    pub key: String,
    /// Events of the batch stored so far (all of it, or those before a bad line).
    pub events: u64,
}

/// One connection to the store's database.
pub struct Store {
    conn: Connection,
    path: PathBuf,
}

impl Store {
    /// Open (creating when needed) the store in `runs_dir`, creating the directory too.
    ///
    /// Errors: [`StoreError::RunsDir`] when the directory cannot be created or is not
    /// writable; [`StoreError::Sqlite`] when the database cannot be opened (a damaged file
    /// is reported, never replaced).
    pub fn open(runs_dir: &Path) -> Result<Self, StoreError> {
        if runs_dir.exists() && !runs_dir.is_dir() {
            let source = std::io::Error::new(std::io::ErrorKind::NotADirectory, "it is a file, not a directory");
            return Err(StoreError::RunsDir { path: runs_dir.to_path_buf(), source });
        }
        std::fs::create_dir_all(runs_dir).map_err(|source| StoreError::RunsDir { path: runs_dir.to_path_buf(), source })?;
        check_writable(runs_dir)?;
        let path = runs_dir.join(DATABASE_FILE);
        let conn = Connection::open(&path).map_err(|source| StoreError::Sqlite { path: path.clone(), source })?;
        let store = Self { conn, path };
        store.init()?;
        Ok(store)
    }

    fn sqlite_err(&self) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
        |source| StoreError::Sqlite { path: self.path.clone(), source }
    }

    fn init(&self) -> Result<(), StoreError> {
        self.conn.busy_timeout(BUSY_TIMEOUT).map_err(self.sqlite_err())?;
        self.conn
            .execute_batch(
                "PRAGMA journal_mode = WAL;
                 PRAGMA synchronous = NORMAL;
                 CREATE TABLE IF NOT EXISTS runs (
                     id TEXT PRIMARY KEY,
                     created_time REAL NOT NULL,
                     name TEXT NOT NULL DEFAULT ''
                 );
                 CREATE TABLE IF NOT EXISTS events (
                     run_id TEXT NOT NULL,
                     seq INTEGER NOT NULL,
                     time REAL NOT NULL,
                     kind TEXT NOT NULL,
                     body TEXT NOT NULL,
                     PRIMARY KEY (run_id, seq)
                 ) WITHOUT ROWID;
                 CREATE TABLE IF NOT EXISTS external_runs (
                     run_id TEXT PRIMARY KEY,
                     token_sha256 TEXT NOT NULL,
                     force_kill_grace_secs REAL
                 );
                 CREATE TABLE IF NOT EXISTS ingest_batches (
                     run_id TEXT NOT NULL,
                     key TEXT NOT NULL,
                     events INTEGER NOT NULL,
                     PRIMARY KEY (run_id, key)
                 ) WITHOUT ROWID;",
            )
            .map_err(self.sqlite_err())
    }

    /// Path of the database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Record a new run.
    pub fn create_run(&self, run: &StoredRun) -> Result<(), StoreError> {
        self.conn
            .execute("INSERT INTO runs (id, created_time, name) VALUES (?1, ?2, ?3)", params![run.id, run.created_time, run.name])
            .map_err(self.sqlite_err())?;
        Ok(())
    }

    /// Record a new run reported over HTTP, with its token's hash: both rows or none.
    pub fn create_external_run(&mut self, run: &StoredRun, external: &ExternalRun) -> Result<(), StoreError> {
        let path = self.path.clone();
        let err = |source| StoreError::Sqlite { path: path.clone(), source };
        let tx = self.conn.transaction().map_err(err)?;
        tx.execute("INSERT INTO runs (id, created_time, name) VALUES (?1, ?2, ?3)", params![run.id, run.created_time, run.name])
            .map_err(err)?;
        tx.execute(
            "INSERT INTO external_runs (run_id, token_sha256, force_kill_grace_secs) VALUES (?1, ?2, ?3)",
            params![run.id, external.token_sha256, external.force_kill_grace_secs],
        )
        .map_err(err)?;
        tx.commit().map_err(err)
    }

    /// The external-run record of `id`; `None` for a run this console trained itself.
    pub fn external_run(&self, id: &str) -> Result<Option<ExternalRun>, StoreError> {
        self.conn
            .query_row("SELECT token_sha256, force_kill_grace_secs FROM external_runs WHERE run_id = ?1", [id], |row| {
                Ok(ExternalRun { token_sha256: row.get(0)?, force_kill_grace_secs: row.get(1)? })
            })
            .optional()
            .map_err(self.sqlite_err())
    }

    /// Events of the batch `key` of run `run_id` already stored; 0 for a batch not seen.
    pub fn batch_events(&self, run_id: &str, key: &str) -> Result<u64, StoreError> {
        self.conn
            .query_row("SELECT events FROM ingest_batches WHERE run_id = ?1 AND key = ?2", [run_id, key], |row| row.get::<_, i64>(0))
            .optional()
            .map(|events| events.unwrap_or(0) as u64)
            .map_err(self.sqlite_err())
    }

    /// All runs, newest first.
    pub fn list_runs(&self) -> Result<Vec<StoredRun>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT id, created_time, name FROM runs ORDER BY created_time DESC, id DESC")
            .map_err(self.sqlite_err())?;
        let rows = stmt
            .query_map([], |row| Ok(StoredRun { id: row.get(0)?, created_time: row.get(1)?, name: row.get(2)? }))
            .map_err(self.sqlite_err())?;
        rows.collect::<Result<Vec<_>, _>>().map_err(self.sqlite_err())
    }

    /// Whether run `id` exists.
    pub fn has_run(&self, id: &str) -> Result<bool, StoreError> {
        self.conn
            .query_row("SELECT 1 FROM runs WHERE id = ?1", [id], |_| Ok(()))
            .optional()
            .map(|found| found.is_some())
            .map_err(self.sqlite_err())
    }

    /// Append events (already numbered) to run `run_id` in one transaction: all or none.
    pub fn append(&mut self, run_id: &str, events: &[StoredEvent]) -> Result<(), StoreError> {
        self.append_with_batches(run_id, events, &[])
    }

    /// Append events (already numbered) to run `run_id` and record how many events of each
    /// posted batch are stored, in one transaction: all or none.
    pub fn append_with_batches(&mut self, run_id: &str, events: &[StoredEvent], batches: &[BatchRecord]) -> Result<(), StoreError> {
        let path = self.path.clone();
        let err = |source| StoreError::Sqlite { path: path.clone(), source };
        let tx = self.conn.transaction().map_err(err)?;
        {
            let mut stmt = tx
                .prepare_cached("INSERT INTO events (run_id, seq, time, kind, body) VALUES (?1, ?2, ?3, ?4, ?5)")
                .map_err(err)?;
            for stored in events {
                // Serializing our own types cannot fail: every field is a plain value.
                let body = serde_json::to_string(stored).unwrap_or_default();
                stmt.execute(params![run_id, stored.seq as i64, stored.event.time, stored.event.kind(), body]).map_err(err)?;
            }
            let mut stmt = tx
                .prepare_cached("INSERT OR REPLACE INTO ingest_batches (run_id, key, events) VALUES (?1, ?2, ?3)")
                .map_err(err)?;
            for batch in batches {
                stmt.execute(params![run_id, batch.key, batch.events as i64]).map_err(err)?;
            }
        }
        tx.commit().map_err(err)
    }

    /// Stored events of `run_id` with `seq > after`, in seq order, at most `limit`.
    pub fn events_after(&self, run_id: &str, after: u64, limit: usize) -> Result<Vec<StoredEvent>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT seq, body FROM events WHERE run_id = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3")
            .map_err(self.sqlite_err())?;
        let rows = stmt
            .query_map(params![run_id, after as i64, limit as i64], |row| Ok((row.get::<_, i64>(0)?, row.get::<_, String>(1)?)))
            .map_err(self.sqlite_err())?;
        let mut events = Vec::new();
        for row in rows {
            let (seq, body) = row.map_err(self.sqlite_err())?;
            let stored = serde_json::from_str(&body).map_err(|source| StoreError::Decode {
                path: self.path.clone(),
                run_id: run_id.to_string(),
                seq: seq as u64,
                source,
            })?;
            events.push(stored);
        }
        Ok(events)
    }

    /// The latest seq of `run_id`; 0 when it has no events.
    pub fn last_seq(&self, run_id: &str) -> Result<u64, StoreError> {
        self.conn
            .query_row("SELECT COALESCE(MAX(seq), 0) FROM events WHERE run_id = ?1", [run_id], |row| row.get::<_, i64>(0))
            .map(|seq| seq as u64)
            .map_err(self.sqlite_err())
    }
}

/// Fail early, with the directory's name, when the runs directory is not writable.
fn check_writable(dir: &Path) -> Result<(), StoreError> {
    let probe = dir.join(format!(".write-test-{}", std::process::id()));
    std::fs::write(&probe, b"")
        .and_then(|()| std::fs::remove_file(&probe))
        .map_err(|source| StoreError::RunsDir { path: dir.to_path_buf(), source })
}

#[cfg(test)]
mod tests {
    use super::*;
    use trainconsole_protocol::{Event, Sample};

    fn sample(seq: u64) -> StoredEvent {
        StoredEvent { seq, event: Event::new(seq as f64, Sample { step: seq, text: format!("text {seq}") }) }
    }

    #[test]
    fn append_and_read_back_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path()).unwrap();
        store.create_run(&StoredRun { id: "a".into(), created_time: 1.0, name: "first".into() }).unwrap();
        store.append("a", &(1..=5).map(sample).collect::<Vec<_>>()).unwrap();
        assert_eq!(store.last_seq("a").unwrap(), 5);
        assert_eq!(store.last_seq("b").unwrap(), 0);
        let got = store.events_after("a", 2, 2).unwrap();
        assert_eq!(got, vec![sample(3), sample(4)]);
        assert_eq!(store.list_runs().unwrap()[0].name, "first");
    }

    #[test]
    fn a_failed_batch_stores_nothing_and_keeps_what_was_there() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path()).unwrap();
        store.append("a", &[sample(1), sample(2)]).unwrap();
        // seq 2 again: the primary key refuses it, and seq 3 of the same batch is not stored.
        assert!(store.append("a", &[sample(3), sample(2)]).is_err());
        assert_eq!(store.events_after("a", 0, 100).unwrap(), vec![sample(1), sample(2)]);
    }

    #[test]
    fn unwritable_runs_dir_is_named_in_the_error() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("not-a-dir");
        std::fs::write(&file, b"x").unwrap();
        let err = Store::open(&file.join("runs")).err().unwrap();
        assert!(err.to_string().contains("cannot use runs directory"), "{err}");
        assert!(err.to_string().contains("not-a-dir"), "{err}");
    }

    #[test]
    fn damaged_database_is_reported_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(DATABASE_FILE);
        std::fs::write(&path, b"this is not a sqlite database, it is damaged........................................................").unwrap();
        let err = Store::open(dir.path()).err().unwrap();
        assert!(err.to_string().contains(DATABASE_FILE), "{err}");
        assert!(std::fs::read(&path).unwrap().starts_with(b"this is not a sqlite"), "the file was kept");
    }
}
