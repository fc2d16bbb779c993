//! The rejection log: every webhook request the hub did not take (bad signature, malformed, too
//! large, the store unavailable) and every Meta batch with items it could not use, kept so that
//! a genuine webhook rejected by a configuration mistake (a wrong public URL, an old secret) can
//! be verified again and ingested later (`POST /v1/webhooks/retry-rejected`,
//! `wagate webhooks retry`).
//!
//! It lives in its own directory, never among the store's files (the binary's default is a
//! sibling of the data directory, `<data>.rejected/`), so it can neither fill nor corrupt the
//! store's folder. The directory is created 0700 and every file 0600: it holds bodies with
//! personal data and the providers' signatures.
//!
//! Segments `rejected-<seq>.jsonl`, JSON Lines, one line per **request** (a Meta batch with
//! several unusable items is one line listing each item's reason in `notes`; its body is
//! written once):
//!
//! ```json
//! {"id":"00000001-0","time":"2026-11-25T09:00:00.000Z","method":"POST",
//!  "route":"/webhooks/twilio/status","path_and_query":"/webhooks/twilio/status?x=1",
//!  "url":"https://hub.example.com/webhooks/twilio/status?x=1","remote":"127.0.0.1:50432",
//!  "status":403,"verdict":"forbidden","reason":"signature does not match the request",
//!  "notes":[{"verdict":"forbidden","reason":"signature does not match the request"}],
//!  "signatures":{"x-twilio-signature":"…"},"body_base64":"TWVzc2Fn…"}
//! ```
//!
//! Bounded: a segment is closed past [`RejectionLimits::segment_bytes`], and on every rotation
//! (and at start) segments older than [`RejectionLimits::retention`] are deleted, then the oldest
//! ones until the others and a whole segment for the one being written fit in
//! [`RejectionLimits::max_bytes`]. A segment holds at least one line, so only a single request
//! larger than a segment (at most ~1.4 MiB: a 1 MiB body in base64) can take it past its size.
//!
//! `retried.jsonl`, in the same directory, lists the ids of lines a retry resolved (ingested, or
//! found already in the store), so a second retry does nothing new; the ids of deleted segments
//! are dropped from it when segments are deleted.
//!
//! Each line is written with one `write` and followed by `fdatasync` before the request is
//! answered. Lines are whole or absent: a crash mid-write can leave a partial last line, which
//! readers skip.

use std::collections::{BTreeMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use wagate_domain::Timestamp;

const SEGMENT_PREFIX: &str = "rejected-";
const SEGMENT_SUFFIX: &str = ".jsonl";
/// The file listing the ids a retry resolved.
pub const RETRIED_FILE: &str = "retried.jsonl";

const MIB: u64 = 1024 * 1024;

/// How much the rejection log keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RejectionLimits {
    /// A segment is closed (a new one started) before a line would take it past this size.
    pub segment_bytes: u64,
    /// All segments together; the oldest are deleted past it.
    pub max_bytes: u64,
    /// Segments last written longer ago than this are deleted.
    pub retention: Duration,
}

impl Default for RejectionLimits {
    fn default() -> Self {
        Self {
            segment_bytes: 8 * MIB,
            max_bytes: 64 * MIB,
            retention: Duration::from_secs(14 * 24 * 3600),
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("webhook rejection log {path}: {source}")]
pub struct AuditError {
    path: PathBuf,
    source: std::io::Error,
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> AuditError + '_ {
    move |source| AuditError {
        path: path.to_owned(),
        source,
    }
}

/// One reason a request, or one item of it, was not used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Note {
    /// `forbidden`, `malformed`, `too_large`, `item_rejected`, `unavailable`, `unhandled`, …
    pub verdict: String,
    /// Why, in words (never a secret; never the body).
    pub reason: String,
}

/// A request as received, before it is written.
#[derive(Debug, Clone)]
pub struct AuditEntry {
    pub time: String,
    pub method: String,
    pub route: String,
    /// Path and query exactly as received (what a retry replays).
    pub path_and_query: String,
    /// The full URL the provider signed, as the hub saw it then (public URL + path and query).
    pub url: String,
    /// The peer address, when known.
    pub remote: Option<String>,
    /// The status the request was answered with.
    pub status: u16,
    pub notes: Vec<Note>,
    /// The signature headers, by lower-case name (what a retry verifies again).
    pub signatures: BTreeMap<String, String>,
    pub body: Vec<u8>,
}

impl AuditEntry {
    pub fn at(at: Timestamp) -> String {
        crate::convert::timestamp(at)
    }
}

/// One line of the rejection log, as written and read back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rejected {
    /// `<segment>-<byte offset>`: unique while the segment exists.
    pub id: String,
    pub time: String,
    pub method: String,
    pub route: String,
    pub path_and_query: String,
    pub url: String,
    pub remote: Option<String>,
    pub status: u16,
    /// The first note's verdict and reason (what most readers want).
    pub verdict: String,
    pub reason: String,
    pub notes: Vec<Note>,
    pub signatures: BTreeMap<String, String>,
    pub body_base64: String,
}

impl Rejected {
    pub fn body(&self) -> Option<Vec<u8>> {
        base64::engine::general_purpose::STANDARD
            .decode(&self.body_base64)
            .ok()
    }
}

#[derive(Debug)]
struct Current {
    seq: u64,
    file: File,
    len: u64,
}

/// The rejection log. Cheap to clone.
#[derive(Debug, Clone)]
pub struct WebhookAudit {
    dir: PathBuf,
    limits: RejectionLimits,
    current: Arc<Mutex<Current>>,
}

fn segment_name(seq: u64) -> String {
    format!("{SEGMENT_PREFIX}{seq:08}{SEGMENT_SUFFIX}")
}

fn segment_seq(name: &str) -> Option<u64> {
    name.strip_prefix(SEGMENT_PREFIX)?
        .strip_suffix(SEGMENT_SUFFIX)?
        .parse()
        .ok()
}

/// The segments in `dir`, oldest first.
pub fn segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>, AuditError> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io_error(dir))? {
        let entry = entry.map_err(io_error(dir))?;
        if let Some(seq) = entry.file_name().to_str().and_then(segment_seq) {
            found.push((seq, entry.path()));
        }
    }
    found.sort();
    Ok(found)
}

/// Whether `path` was last written longer ago than `age`.
fn older_than(path: &Path, age: Duration) -> bool {
    std::fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|m| SystemTime::now().duration_since(m).ok())
        .is_some_and(|elapsed| elapsed > age)
}

fn open_private(path: &Path, append: bool) -> Result<File, AuditError> {
    let file = OpenOptions::new()
        .create(true)
        .append(append)
        .write(true)
        .mode(0o600)
        .open(path)
        .map_err(io_error(path))?;
    // `mode` applies only when the file is created: tighten one left by an older wagate.
    file.set_permissions(std::fs::Permissions::from_mode(0o600))
        .map_err(io_error(path))?;
    Ok(file)
}

impl WebhookAudit {
    /// Opens the log in `dir` (created 0700 if missing), deletes what is past the limits, and
    /// appends to the newest segment.
    pub fn open(dir: &Path, limits: RejectionLimits) -> Result<Self, AuditError> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io_error(dir))?;
        let seq = match segments(dir)?.last() {
            None => 1,
            // The newest segment past the retention is not written to again: a new one is
            // started, so that one can be deleted now.
            Some((seq, path)) if older_than(path, limits.retention) => seq + 1,
            Some((seq, _)) => *seq,
        };
        let path = dir.join(segment_name(seq));
        let file = open_private(&path, true)?;
        let len = file.metadata().map_err(io_error(&path))?.len();
        let this = Self {
            dir: dir.to_owned(),
            limits,
            current: Arc::new(Mutex::new(Current { seq, file, len })),
        };
        this.prune(seq)?;
        Ok(this)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Deletes segments past the retention, then the oldest while all exceed the cap; never
    /// `keep` (the one being written).
    fn prune(&self, keep: u64) -> Result<(), AuditError> {
        let now = SystemTime::now();
        let mut sized = Vec::new();
        for (seq, path) in segments(&self.dir)? {
            let meta = std::fs::metadata(&path).map_err(io_error(&path))?;
            let age = meta
                .modified()
                .ok()
                .and_then(|m| now.duration_since(m).ok())
                .unwrap_or_default();
            if seq != keep && age > self.limits.retention {
                std::fs::remove_file(&path).map_err(io_error(&path))?;
                tracing::info!(
                    segment = seq,
                    "rejection log segment past retention deleted"
                );
            } else {
                sized.push((seq, path, meta.len()));
            }
        }
        // The segment being written may still grow to a whole segment: room is kept for it, so
        // all together stay within the cap.
        let mut others: u64 = sized
            .iter()
            .filter(|(seq, _, _)| *seq != keep)
            .map(|(_, _, len)| len)
            .sum();
        for (seq, path, len) in sized {
            if others + self.limits.segment_bytes <= self.limits.max_bytes || seq == keep {
                break;
            }
            std::fs::remove_file(&path).map_err(io_error(&path))?;
            others -= len;
            tracing::warn!(
                segment = seq,
                "rejection log over its cap: oldest segment deleted"
            );
        }
        self.prune_retried()
    }

    /// Drops from `retried.jsonl` the ids of segments no longer kept, so it stays as bounded
    /// as they are (rewritten whole, then renamed over the old one).
    fn prune_retried(&self) -> Result<(), AuditError> {
        let ids = self.retried()?;
        if ids.is_empty() {
            return Ok(());
        }
        let kept: HashSet<String> = segments(&self.dir)?
            .into_iter()
            .map(|(seq, _)| format!("{seq:08}"))
            .collect();
        let mut left: Vec<&String> = ids
            .iter()
            .filter(|id| id.split('-').next().is_some_and(|seq| kept.contains(seq)))
            .collect();
        if left.len() == ids.len() {
            return Ok(());
        }
        left.sort();
        let path = self.dir.join(RETRIED_FILE);
        let partial = self.dir.join(format!("{RETRIED_FILE}.partial"));
        let mut buffer = Vec::new();
        for id in left {
            buffer.extend(serde_json::to_vec(id).unwrap_or_default());
            buffer.push(b'\n');
        }
        let mut file = open_private(&partial, false)?;
        file.set_len(0).map_err(io_error(&partial))?;
        file.write_all(&buffer).map_err(io_error(&partial))?;
        file.sync_data().map_err(io_error(&partial))?;
        std::fs::rename(&partial, &path).map_err(io_error(&path))
    }

    /// Appends one request durably, off the async threads.
    pub async fn record(&self, entry: AuditEntry) -> Result<(), AuditError> {
        let this = self.clone();
        let dir = self.dir.clone();
        tokio::task::spawn_blocking(move || this.record_blocking(entry))
            .await
            .map_err(|e| AuditError {
                path: dir,
                source: std::io::Error::other(e.to_string()),
            })?
    }

    fn record_blocking(&self, entry: AuditEntry) -> Result<(), AuditError> {
        let mut current = self.current.lock();
        let body_base64 = base64::engine::general_purpose::STANDARD.encode(&entry.body);
        let (verdict, reason) = entry
            .notes
            .first()
            .map(|n| (n.verdict.clone(), n.reason.clone()))
            .unwrap_or_default();
        let mut line = Rejected {
            id: String::new(),
            time: entry.time,
            method: entry.method,
            route: entry.route,
            path_and_query: entry.path_and_query,
            url: entry.url,
            remote: entry.remote,
            status: entry.status,
            verdict,
            reason,
            notes: entry.notes,
            signatures: entry.signatures,
            body_base64,
        };
        // The id is fixed before the size is known; its length barely varies, so the estimate
        // (with the offset as it would be in this segment) decides the rotation.
        line.id = format!("{:08}-{}", current.seq, current.len);
        let estimate = serde_json::to_vec(&line).map_or(0, |b| b.len() as u64 + 1);
        if current.len > 0 && current.len + estimate > self.limits.segment_bytes {
            let seq = current.seq + 1;
            let path = self.dir.join(segment_name(seq));
            let file = open_private(&path, true)?;
            *current = Current { seq, file, len: 0 };
            self.prune(seq)?;
            line.id = format!("{seq:08}-0");
        }
        let mut buffer = serde_json::to_vec(&line).map_err(|e| AuditError {
            path: self.dir.clone(),
            source: std::io::Error::other(e),
        })?;
        buffer.push(b'\n');
        let path = self.dir.join(segment_name(current.seq));
        current.file.write_all(&buffer).map_err(io_error(&path))?;
        current.file.sync_data().map_err(io_error(&path))?;
        current.len += buffer.len() as u64;
        Ok(())
    }

    /// Every line still kept, oldest first (partial lines skipped).
    pub fn entries(&self) -> Result<Vec<Rejected>, AuditError> {
        // Hold the writer so no line is read half-written.
        let _current = self.current.lock();
        let mut lines = Vec::new();
        for (_, path) in segments(&self.dir)? {
            let text = match std::fs::read_to_string(&path) {
                Ok(text) => text,
                // Deleted by a rotation meanwhile: nothing to read.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io_error(&path)(e)),
            };
            lines.extend(text.lines().filter_map(|l| serde_json::from_str(l).ok()));
        }
        Ok(lines)
    }

    /// The ids a retry has resolved.
    pub fn retried(&self) -> Result<HashSet<String>, AuditError> {
        let path = self.dir.join(RETRIED_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => Ok(text
                .lines()
                .filter_map(|l| serde_json::from_str::<String>(l).ok())
                .collect()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(HashSet::new()),
            Err(e) => Err(io_error(&path)(e)),
        }
    }

    /// Records `ids` as resolved, durably.
    pub fn mark_retried(&self, ids: &[String]) -> Result<(), AuditError> {
        if ids.is_empty() {
            return Ok(());
        }
        let path = self.dir.join(RETRIED_FILE);
        let mut buffer = Vec::new();
        for id in ids {
            buffer.extend(serde_json::to_vec(id).unwrap_or_default());
            buffer.push(b'\n');
        }
        let mut file = open_private(&path, true)?;
        file.write_all(&buffer).map_err(io_error(&path))?;
        file.sync_data().map_err(io_error(&path))
    }
}

/// Every line kept in `dir` (for tests and tools; the server uses [`WebhookAudit::entries`]).
pub fn read_dir_entries(dir: &Path) -> Vec<serde_json::Value> {
    let Ok(found) = segments(dir) else {
        return Vec::new();
    };
    found
        .iter()
        .filter_map(|(_, path)| std::fs::read_to_string(path).ok())
        .flat_map(|text| {
            text.lines()
                .filter_map(|l| serde_json::from_str(l).ok())
                .collect::<Vec<_>>()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(notes: &[(&str, &str)], body: &[u8]) -> AuditEntry {
        AuditEntry {
            time: AuditEntry::at(chrono::Utc::now()),
            method: "POST".into(),
            route: "/webhooks/meta".into(),
            path_and_query: "/webhooks/meta?a=1".into(),
            url: "https://hub.example.com/webhooks/meta?a=1".into(),
            remote: Some("127.0.0.1:1".into()),
            status: 403,
            notes: notes
                .iter()
                .map(|(v, r)| Note {
                    verdict: (*v).into(),
                    reason: (*r).into(),
                })
                .collect(),
            signatures: BTreeMap::from([("x-hub-signature-256".into(), "sha256=ab".into())]),
            body: body.to_vec(),
        }
    }

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).expect("meta").permissions().mode() & 0o777
    }

    #[tokio::test]
    async fn a_request_is_one_line_with_its_body_once_and_every_reason() {
        let dir = tempfile::tempdir().expect("dir");
        let log = WebhookAudit::open(dir.path(), RejectionLimits::default()).expect("open");
        log.record(entry(
            &[("item_rejected", "first"), ("unhandled", "second")],
            b"{}",
        ))
        .await
        .expect("record");
        let lines = log.entries().expect("entries");
        assert_eq!(lines.len(), 1);
        let line = &lines[0];
        assert_eq!(line.id, "00000001-0");
        assert_eq!(line.verdict, "item_rejected");
        assert_eq!(line.notes.len(), 2);
        assert_eq!(line.notes[1].reason, "second");
        assert_eq!(line.body().expect("body"), b"{}");
        assert_eq!(line.url, "https://hub.example.com/webhooks/meta?a=1");
        assert_eq!(line.signatures["x-hub-signature-256"], "sha256=ab");
        let raw = std::fs::read_to_string(dir.path().join(segment_name(1))).expect("read");
        assert_eq!(raw.matches("e30=").count(), 1, "the body is written once");
    }

    #[tokio::test]
    async fn files_are_private() {
        let dir = tempfile::tempdir().expect("dir");
        let root = dir.path().join("rejected");
        let log = WebhookAudit::open(&root, RejectionLimits::default()).expect("open");
        log.record(entry(&[("forbidden", "r")], b"a"))
            .await
            .expect("record");
        log.mark_retried(&["00000001-0".into()]).expect("mark");
        assert_eq!(mode(&root), 0o700);
        assert_eq!(mode(&root.join(segment_name(1))), 0o600);
        assert_eq!(mode(&root.join(RETRIED_FILE)), 0o600);
        // A file an older wagate left readable is tightened on open.
        std::fs::set_permissions(
            root.join(segment_name(1)),
            std::fs::Permissions::from_mode(0o644),
        )
        .expect("chmod");
        WebhookAudit::open(&root, RejectionLimits::default()).expect("reopen");
        assert_eq!(mode(&root.join(segment_name(1))), 0o600);
    }

    #[tokio::test]
    async fn segments_rotate_and_the_oldest_go_past_the_cap() {
        let dir = tempfile::tempdir().expect("dir");
        let limits = RejectionLimits {
            segment_bytes: 2000,
            max_bytes: 5000,
            retention: Duration::from_secs(3600),
        };
        let log = WebhookAudit::open(dir.path(), limits).expect("open");
        let body = vec![b'x'; 600]; // ~800 base64 + ~400 of fields: one line ≈ 1.3 kB
        for _ in 0..12 {
            log.record(entry(&[("forbidden", "r")], &body))
                .await
                .expect("record");
        }
        let found = segments(dir.path()).expect("segments");
        assert!(found.len() > 1, "rotated: {found:?}");
        let total: u64 = found
            .iter()
            .map(|(_, p)| std::fs::metadata(p).expect("meta").len())
            .sum();
        assert!(total <= limits.max_bytes, "capped: {total}");
        for (_, path) in &found {
            assert!(std::fs::metadata(path).expect("meta").len() <= limits.segment_bytes);
        }
        assert_ne!(found[0].0, 1, "the oldest segment was deleted");
        let ids: HashSet<String> = log
            .entries()
            .expect("entries")
            .into_iter()
            .map(|e| e.id)
            .collect();
        assert_eq!(
            ids.len(),
            log.entries().expect("entries").len(),
            "ids unique"
        );
    }

    #[tokio::test]
    async fn segments_past_the_retention_are_deleted_at_start() {
        let dir = tempfile::tempdir().expect("dir");
        let limits = RejectionLimits {
            segment_bytes: 100,
            max_bytes: MIB,
            retention: Duration::from_secs(3600),
        };
        let log = WebhookAudit::open(dir.path(), limits).expect("open");
        for _ in 0..3 {
            log.record(entry(&[("forbidden", "r")], b"a"))
                .await
                .expect("record");
        }
        assert_eq!(segments(dir.path()).expect("segments").len(), 3);
        // Age the first two segments past the retention.
        let old = SystemTime::now() - Duration::from_secs(7200);
        for seq in [1, 2] {
            File::options()
                .write(true)
                .open(dir.path().join(segment_name(seq)))
                .expect("open")
                .set_modified(old)
                .expect("touch");
        }
        drop(log);
        WebhookAudit::open(dir.path(), limits).expect("reopen");
        let left: Vec<u64> = segments(dir.path())
            .expect("segments")
            .into_iter()
            .map(|(seq, _)| seq)
            .collect();
        assert_eq!(left, vec![3]);
        // The newest one too, once it is past the retention: a fresh segment takes over.
        File::options()
            .write(true)
            .open(dir.path().join(segment_name(3)))
            .expect("open")
            .set_modified(old)
            .expect("touch");
        WebhookAudit::open(dir.path(), limits).expect("reopen");
        let left: Vec<u64> = segments(dir.path())
            .expect("segments")
            .into_iter()
            .map(|(seq, _)| seq)
            .collect();
        assert_eq!(left, vec![4]);
    }

    #[tokio::test]
    async fn retried_ids_are_remembered() {
        let dir = tempfile::tempdir().expect("dir");
        let log = WebhookAudit::open(dir.path(), RejectionLimits::default()).expect("open");
        assert!(log.retried().expect("retried").is_empty());
        log.mark_retried(&["00000001-0".into(), "00000001-9".into()])
            .expect("mark");
        let again = WebhookAudit::open(dir.path(), RejectionLimits::default()).expect("reopen");
        let retried = again.retried().expect("retried");
        assert!(retried.contains("00000001-9") && retried.len() == 2);
        // Ids of a segment no longer kept are dropped when segments are pruned.
        again.mark_retried(&["00000007-0".into()]).expect("mark");
        drop(again);
        let reopened = WebhookAudit::open(dir.path(), RejectionLimits::default()).expect("reopen");
        let retried = reopened.retried().expect("retried");
        assert_eq!(retried.len(), 2, "{retried:?}");
        assert!(!retried.contains("00000007-0"));
        assert_eq!(mode(&dir.path().join(RETRIED_FILE)), 0o600);
    }
}
