//! Durable file writes: write, fsync, rename, fsync the parent directory.

use std::fs::File;
use std::io::Write;
use std::path::Path;

use crate::TrainError;

/// Write `bytes` to `path` (created or truncated) and fsync the file before returning.
///
/// # Errors
/// [`TrainError::Io`] naming `path` if creating, writing or syncing fails.
pub(crate) fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), TrainError> {
    let mut file = File::create(path).map_err(|e| TrainError::io("cannot create", path, e))?;
    file.write_all(bytes).map_err(|e| TrainError::io("cannot write", path, e))?;
    file.sync_all().map_err(|e| TrainError::io("cannot fsync", path, e))
}

/// fsync a directory so that renames and new entries in it survive a crash.
///
/// # Errors
/// [`TrainError::Io`] naming `dir` if it cannot be opened or synced.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), TrainError> {
    let handle = File::open(dir).map_err(|e| TrainError::io("cannot open directory", dir, e))?;
    handle.sync_all().map_err(|e| TrainError::io("cannot fsync directory", dir, e))
}

/// Rename `from` to `to`.
///
/// # Errors
/// [`TrainError::Io`] naming `to` if the rename fails.
pub(crate) fn rename(from: &Path, to: &Path) -> Result<(), TrainError> {
    std::fs::rename(from, to).map_err(|e| TrainError::io("cannot rename into place", to, e))
}
