//! The webhook audit log: an append-only JSON Lines file next to the store
//! (`<data>/webhook-audit.jsonl`), independent of sled so it still works when the store cannot
//! be written. One line per rejected request (bad signature, malformed, too large), per item a
//! Meta batch could not use, and per genuine webhook the store could not take:
//!
//! ```json
//! {"time":"2026-11-25T09:00:00.000Z","route":"/webhooks/twilio/status","remote":"127.0.0.1:50432",
//!  "verdict":"forbidden","reason":"signature does not match the request","body_base64":"TWVzc2Fn…"}
//! ```
//!
//! Each line is written with one `write` and followed by `fdatasync` before the request is
//! answered. Lines are whole or absent: a crash mid-write can leave a partial last line, which
//! readers skip.

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine as _;
use parking_lot::Mutex;
use serde::Serialize;
use wagate_domain::Timestamp;

/// The file's name under the data directory.
pub const AUDIT_FILE: &str = "webhook-audit.jsonl";

#[derive(Debug, thiserror::Error)]
#[error("webhook audit log {path}: {source}")]
pub struct AuditError {
    path: PathBuf,
    source: std::io::Error,
}

/// One line of the audit log.
#[derive(Debug, Clone, Serialize)]
pub struct AuditEntry {
    pub time: String,
    pub route: String,
    /// The peer address, when known.
    pub remote: Option<String>,
    /// `forbidden`, `malformed`, `too_large`, `item_rejected`, `unavailable`, `unhandled`, …
    pub verdict: &'static str,
    /// Why, in words (never a secret; never the body).
    pub reason: String,
    pub body_base64: String,
}

impl AuditEntry {
    pub fn new(
        at: Timestamp,
        route: &str,
        remote: Option<String>,
        verdict: &'static str,
        reason: impl Into<String>,
        body: &[u8],
    ) -> Self {
        Self {
            time: crate::convert::timestamp(at),
            route: route.to_owned(),
            remote,
            verdict,
            reason: reason.into(),
            body_base64: base64::engine::general_purpose::STANDARD.encode(body),
        }
    }
}

/// The audit log file. Cheap to clone.
#[derive(Debug, Clone)]
pub struct WebhookAudit {
    path: PathBuf,
    file: Arc<Mutex<File>>,
}

impl WebhookAudit {
    /// Opens (creating) `<dir>/webhook-audit.jsonl` for appending.
    pub fn open(dir: &Path) -> Result<Self, AuditError> {
        let path = dir.join(AUDIT_FILE);
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|source| AuditError {
                path: path.clone(),
                source,
            })?;
        Ok(Self {
            path,
            file: Arc::new(Mutex::new(file)),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends entries durably (one fsync for all of them), off the async threads.
    pub async fn record(&self, entries: Vec<AuditEntry>) -> Result<(), AuditError> {
        if entries.is_empty() {
            return Ok(());
        }
        let this = self.clone();
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || this.record_blocking(&entries))
            .await
            .map_err(|e| AuditError {
                path,
                source: std::io::Error::other(e.to_string()),
            })?
    }

    fn record_blocking(&self, entries: &[AuditEntry]) -> Result<(), AuditError> {
        let mut buffer = Vec::new();
        for entry in entries {
            // Serializing a struct of strings cannot fail.
            if serde_json::to_writer(&mut buffer, entry).is_ok() {
                buffer.push(b'\n');
            }
        }
        let fail = |source| AuditError {
            path: self.path.clone(),
            source,
        };
        let mut file = self.file.lock();
        file.write_all(&buffer).map_err(fail)?;
        file.sync_data().map_err(fail)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn entries_are_appended_as_json_lines() {
        let dir = tempfile::tempdir().expect("dir");
        let audit = WebhookAudit::open(dir.path()).expect("open");
        let at = chrono::Utc::now();
        audit
            .record(vec![AuditEntry::new(
                at,
                "/webhooks/meta",
                Some("127.0.0.1:1".into()),
                "forbidden",
                "signature does not match the request",
                b"{}",
            )])
            .await
            .expect("record");
        audit
            .record(vec![AuditEntry::new(
                at,
                "/x",
                None,
                "malformed",
                "r",
                b"a",
            )])
            .await
            .expect("record");
        let text = std::fs::read_to_string(audit.path()).expect("read");
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).expect("json"))
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["verdict"], "forbidden");
        assert_eq!(lines[0]["body_base64"], "e30=");
        assert_eq!(lines[1]["remote"], serde_json::Value::Null);
    }
}
