//! The CRM mirror's own durable state: which HubSpot object each wagate record became.
//!
//! An append-only JSON Lines file beside the data directory (`<data>.hubspot.jsonl` unless
//! `WAGATE_HUBSPOT_STATE_FILE` says otherwise), one line per fact, each written and
//! `fdatasync`ed before the mirror goes on:
//!
//! - `{"pending":"msg:<id>"}`: a create is about to be sent for this record. A pending record
//!   with no link after a crash is looked up in HubSpot by its idempotency property before it is
//!   created again (HubSpot has no idempotency key; docs/providers.md).
//! - `{"key":"msg:<id>","id":"30001"}`: the record is that HubSpot object (created and
//!   associated to its contact).
//!
//! Kept out of the event log on purpose: these are facts about HubSpot, not about the
//! conversation, and a new event type per HubSpot write would grow the log the auditors replay
//! with bookkeeping. The cost: the file is not in `wagate export`; a lost file is recovered
//! through the idempotency property (docs/operations.md, "CRM timeline"). A torn last line (a
//! crash mid-write) is ignored on load; any other unreadable line is an error naming it.

use std::collections::{HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize)]
#[serde(untagged)]
enum Line {
    Link { key: String, id: String },
    Pending { pending: String },
}

#[derive(Debug, thiserror::Error)]
pub enum LinksError {
    #[error("cannot use the HubSpot state file {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the HubSpot state file {path} is damaged at line {line}")]
    Damaged { path: PathBuf, line: usize },
}

/// Record key → HubSpot object id, durable.
#[derive(Debug)]
pub struct Links {
    path: PathBuf,
    file: File,
    ids: HashMap<String, String>,
    pending: HashSet<String>,
}

impl Links {
    /// Opens (or creates) the file at `path` and loads it.
    pub fn open(path: &Path) -> Result<Self, LinksError> {
        let io = |source| LinksError::Io {
            path: path.to_path_buf(),
            source,
        };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(io)?;
        }
        let mut ids = HashMap::new();
        let mut pending = HashSet::new();
        // The length of the file up to the end of its last whole line.
        let mut whole = 0u64;
        let mut torn_tail = false;
        if path.exists() {
            let bytes = std::fs::read(path).map_err(io)?;
            let lines: Vec<&[u8]> = bytes.split(|b| *b == b'\n').collect();
            let count = lines.len();
            for (index, raw) in lines.into_iter().enumerate() {
                let text = String::from_utf8_lossy(raw);
                let last = index + 1 == count;
                if text.trim().is_empty() {
                    if !last {
                        whole += raw.len() as u64 + 1;
                    }
                    continue;
                }
                match serde_json::from_str::<Line>(&text) {
                    Ok(Line::Link { key, id }) => {
                        pending.remove(&key);
                        ids.insert(key, id);
                    }
                    Ok(Line::Pending { pending: key }) => {
                        if !ids.contains_key(&key) {
                            pending.insert(key);
                        }
                    }
                    // Only the last line can be torn by a crash: everything before it was
                    // synced whole.
                    Err(_) if last => {
                        torn_tail = true;
                        continue;
                    }
                    Err(_) => {
                        return Err(LinksError::Damaged {
                            path: path.to_path_buf(),
                            line: index + 1,
                        })
                    }
                }
                // A whole line ends with its newline; an unterminated but valid last line
                // (written, the newline not) is kept and terminated below.
                whole += raw.len() as u64 + u64::from(!last);
                if last {
                    torn_tail = true;
                }
            }
        }
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(io)?;
        if torn_tail {
            // Drops a torn line (or terminates a whole one) so the next fact starts on a line
            // of its own.
            file.set_len(whole).map_err(io)?;
            if whole > 0 && std::fs::read(path).map_err(io)?.last() != Some(&b'\n') {
                file.write_all(b"\n").map_err(io)?;
            }
            file.sync_data().map_err(io)?;
        }
        Ok(Links {
            path: path.to_path_buf(),
            file,
            ids,
            pending,
        })
    }

    /// The HubSpot object `key` became, if it is known.
    pub fn id(&self, key: &str) -> Option<&str> {
        self.ids.get(key).map(String::as_str)
    }

    /// Whether a create was sent for `key` with no answer recorded (a crash in between).
    pub fn is_pending(&self, key: &str) -> bool {
        self.pending.contains(key)
    }

    /// Durably notes that a create for `key` is about to be sent.
    pub fn mark_pending(&mut self, key: &str) -> Result<(), LinksError> {
        self.append(&Line::Pending {
            pending: key.to_owned(),
        })?;
        self.pending.insert(key.to_owned());
        Ok(())
    }

    /// Durably records that `key` is HubSpot object `id`.
    pub fn link(&mut self, key: &str, id: &str) -> Result<(), LinksError> {
        self.append(&Line::Link {
            key: key.to_owned(),
            id: id.to_owned(),
        })?;
        self.pending.remove(key);
        self.ids.insert(key.to_owned(), id.to_owned());
        Ok(())
    }

    fn append(&mut self, line: &Line) -> Result<(), LinksError> {
        let io = |source| LinksError::Io {
            path: self.path.clone(),
            source,
        };
        // Invariant: `Line` is strings only, which always serialize.
        let mut bytes = serde_json::to_vec(line).expect("a line serializes");
        bytes.push(b'\n');
        self.file.write_all(&bytes).map_err(io)?;
        self.file.sync_data().map_err(io)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_survive_a_reopen_and_a_torn_tail_is_dropped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("links.jsonl");
        let mut links = Links::open(&path).expect("open");
        links.mark_pending("msg:a").expect("pending");
        links.link("msg:a", "30001").expect("link");
        links.mark_pending("msg:b").expect("pending");
        drop(links);
        // A crash in the middle of the next line.
        let mut file = OpenOptions::new().append(true).open(&path).expect("file");
        file.write_all(br#"{"key":"msg:c","i"#).expect("torn");
        drop(file);

        let mut links = Links::open(&path).expect("reopen");
        assert_eq!(links.id("msg:a"), Some("30001"));
        assert!(!links.is_pending("msg:a"));
        assert!(links.is_pending("msg:b") && links.id("msg:b").is_none());
        assert_eq!(links.id("msg:c"), None);
        links.link("msg:b", "30002").expect("link");
        drop(links);
        let links = Links::open(&path).expect("reopen again");
        assert_eq!(links.id("msg:b"), Some("30002"));
    }

    #[test]
    fn a_damaged_line_before_the_end_is_an_error_naming_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("links.jsonl");
        std::fs::write(&path, "garbage\n{\"key\":\"msg:a\",\"id\":\"1\"}\n").expect("write");
        let error = Links::open(&path).expect_err("damaged");
        assert!(error.to_string().contains("line 1"), "{error}");
    }
}
