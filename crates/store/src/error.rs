//! The one error type of the store.
//!
//! Every variant is something a caller can act on; the doc of each variant says how. The type is
//! `Clone` because one failed group commit answers every request of its batch with the same error.

use std::io;
use std::path::PathBuf;

use uuid::Uuid;

use crate::record::ExpectedVersion;
use crate::stream::StreamId;

/// Result alias used throughout the store.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Everything that can go wrong in the store.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// Optimistic concurrency: a stream's version was not the expected one. Nothing of the request
    /// was written. Reload the stream, decide again and retry.
    #[error("conflict on stream {stream}: expected {expected}, actual version {actual}")]
    Conflict {
        stream: StreamId,
        expected: ExpectedVersion,
        actual: u64,
    },

    /// Some, but not all, of the request's event ids were already written. A retried append must
    /// carry exactly the same events; this one mixes old and new ones. Nothing was written.
    #[error("{} of the request's event ids were already written, {new} were not", already_written.len())]
    EventIdsMismatch {
        already_written: Vec<Uuid>,
        new: usize,
    },

    /// The request itself is malformed (duplicate stream or event id within it, an oversized event,
    /// a checkpoint past the head, an empty request). Fix the caller; retrying cannot help.
    #[error("invalid request: {0}")]
    InvalidRequest(String),

    /// A stream id that breaks the naming rules (see [`StreamId`]).
    #[error("invalid stream id {id:?}: {reason}")]
    InvalidStreamId { id: String, reason: &'static str },

    /// The database is damaged: an undecodable envelope, a gap in positions, an index that does not
    /// match the log. Stop, keep the files, restore from a backup or export.
    #[error("corrupt database at {path}: {detail}")]
    Corrupt { path: PathBuf, detail: String },

    /// The directory holds a sled database that wagate did not create, or one written by a newer
    /// on-disk format. Point the store elsewhere or upgrade wagate.
    #[error("not a wagate database (or an unsupported format) at {path}: {detail}")]
    Foreign { path: PathBuf, detail: String },

    /// Another process (or another handle in this one) holds sled's file lock on the database.
    /// Stop the other process, or reach the log through it (HTTP API, export).
    #[error("database at {path} is already open by another process")]
    AlreadyOpen { path: PathBuf },

    /// The disk is full (ENOSPC). Everything acknowledged before is durable; the store is now in
    /// the failed state and must be reopened after space is freed.
    #[error("disk full: {detail}")]
    DiskFull { detail: String },

    /// Any other I/O error. If it happened while writing, the store is now in the failed state.
    #[error("i/o error ({kind:?}): {detail}")]
    Io { kind: io::ErrorKind, detail: String },

    /// An earlier write, flush or sync failed, so the store refuses further writes: it can no longer
    /// tell what is on disk. Everything acknowledged before the failure is durable. Reopen the store.
    #[error("store refuses writes after an earlier write failure: {cause}")]
    Failed { cause: String },

    /// The writer's queue holds [`Options::max_queued_requests`](crate::Options) requests
    /// already: the disk is behind. Nothing of this request was queued or written; retry after a
    /// short wait (the HTTP API answers 503 with `Retry-After`).
    #[error("the log's write queue is full ({capacity} requests); retry")]
    Busy { capacity: usize },

    /// The store was closed (or its writer thread is gone).
    #[error("store is closed")]
    Closed,
}

impl StoreError {
    /// True for the errors that put the store into the failed state when they happen on the write
    /// path.
    pub fn is_io(&self) -> bool {
        matches!(self, StoreError::DiskFull { .. } | StoreError::Io { .. })
    }
}

impl From<io::Error> for StoreError {
    fn from(error: io::Error) -> Self {
        if error.raw_os_error() == Some(libc::ENOSPC) || error.kind() == io::ErrorKind::StorageFull
        {
            return StoreError::DiskFull {
                detail: error.to_string(),
            };
        }
        StoreError::Io {
            kind: error.kind(),
            detail: error.to_string(),
        }
    }
}

/// Maps a sled error raised while operating on the database at `path`.
pub(crate) fn from_sled(error: sled::Error, path: &std::path::Path) -> StoreError {
    match error {
        sled::Error::Io(io_error) => {
            // sled 0.34 reports a held `flock` as `ErrorKind::Other` with this message
            // (`Config::try_lock` in sled's config.rs); there is no dedicated error kind.
            if io_error.kind() == io::ErrorKind::Other
                && io_error.to_string().contains("could not acquire lock")
            {
                return StoreError::AlreadyOpen {
                    path: path.to_path_buf(),
                };
            }
            StoreError::from(io_error)
        }
        sled::Error::Corruption { at, .. } => StoreError::Corrupt {
            path: path.to_path_buf(),
            detail: format!("sled reports corruption at {at:?}"),
        },
        sled::Error::Unsupported(detail) => StoreError::Foreign {
            path: path.to_path_buf(),
            detail,
        },
        sled::Error::ReportableBug(detail) => StoreError::Io {
            kind: io::ErrorKind::Other,
            detail: format!("sled bug: {detail}"),
        },
        sled::Error::CollectionNotFound(name) => StoreError::Corrupt {
            path: path.to_path_buf(),
            detail: format!("missing sled collection {name:?}"),
        },
    }
}
