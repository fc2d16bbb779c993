//! PostgreSQL errors as the store's errors, so the app sees the same typed errors on both
//! backends, and the errors of opening a database, which name what is wrong.

use std::io::ErrorKind;

use tokio_postgres::error::SqlState;
use wagate_store::StoreError;

/// A query failed on an open log.
pub(crate) fn from_pg(error: tokio_postgres::Error) -> StoreError {
    if let Some(db) = error.as_db_error() {
        let kind = if *db.code() == SqlState::INSUFFICIENT_PRIVILEGE {
            ErrorKind::PermissionDenied
        } else {
            ErrorKind::Other
        };
        return StoreError::Io {
            kind,
            detail: format!("PostgreSQL: {} ({})", db.message(), db.code().code()),
        };
    }
    if error.is_closed() {
        return StoreError::Io {
            kind: ErrorKind::ConnectionAborted,
            detail: "the connection to PostgreSQL is closed".into(),
        };
    }
    StoreError::Io {
        kind: ErrorKind::Other,
        detail: format!("PostgreSQL: {error}"),
    }
}

/// Connecting to `target` (a description without the password) failed.
pub(crate) fn connect_error(target: &str, error: tokio_postgres::Error) -> StoreError {
    if let Some(db) = error.as_db_error() {
        let code = db.code();
        if *code == SqlState::INVALID_PASSWORD
            || *code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION
            || *code == SqlState::INSUFFICIENT_PRIVILEGE
        {
            return StoreError::Io {
                kind: ErrorKind::PermissionDenied,
                detail: format!("PostgreSQL at {target} refused the login: {}", db.message()),
            };
        }
        if *code == SqlState::INVALID_CATALOG_NAME {
            return StoreError::Io {
                kind: ErrorKind::NotFound,
                detail: format!("PostgreSQL at {target}: {}", db.message()),
            };
        }
        return StoreError::Io {
            kind: ErrorKind::Other,
            detail: format!("PostgreSQL at {target}: {}", db.message()),
        };
    }
    // tokio-postgres's message ("error connecting to server") leaves the cause to its source.
    let cause = std::error::Error::source(&error)
        .map(|source| format!(": {source}"))
        .unwrap_or_default();
    StoreError::Io {
        kind: ErrorKind::ConnectionRefused,
        detail: format!("cannot reach PostgreSQL at {target}: {error}{cause}"),
    }
}

/// A migration failed; a missing permission gets a message that says which.
pub(crate) fn migration_error(target: &str, error: tokio_postgres::Error) -> StoreError {
    if let Some(db) = error.as_db_error() {
        if *db.code() == SqlState::INSUFFICIENT_PRIVILEGE {
            return StoreError::Io {
                kind: ErrorKind::PermissionDenied,
                detail: format!(
                    "the PostgreSQL user at {target} lacks a permission wagate needs ({}): it \
                     must be able to CREATE tables in the current schema for the migrations, and \
                     SELECT, INSERT, UPDATE and DELETE on the wagate_* tables",
                    db.message()
                ),
            };
        }
    }
    from_pg(error)
}
