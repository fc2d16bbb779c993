//! Everything a provider said about one item, flattened to `(path, value)` pairs for the log
//! (`wagate_domain::ProviderDetails`): what the provider-neutral events do not structure
//! (button payloads, Flow answers, locations, pricing, error titles, Twilio's extra form
//! fields, fields that do not exist yet) still reaches auditors.
//!
//! Pairs rather than the item's JSON text: the domain stays free of JSON, a Twilio form and a
//! Meta item come out alike, and an export shows each value once. Bounded, because a webhook
//! body is up to 1 MiB of untrusted input: what does not fit is dropped and a
//! [`TRUNCATED`] pair says how much; the webhook layer then writes the whole body to the
//! rejection log, so the values are kept there.

use serde_json::Value;
use wagate_domain::ProviderDetails;

/// At most this many pairs per item.
pub const MAX_PAIRS: usize = 256;
/// A longer value is cut (at a character boundary).
pub const MAX_VALUE_BYTES: usize = 8 * 1024;
/// Keys and values of one item together.
pub const MAX_TOTAL_BYTES: usize = 64 * 1024;
/// The key of the pair that says values were dropped or cut.
pub const TRUNCATED: &str = "wagate.truncated";

/// Whether `details` lost values to the bounds.
pub fn is_truncated(details: &[(String, String)]) -> bool {
    details.iter().any(|(key, _)| key == TRUNCATED)
}

/// Collects pairs within the bounds.
#[derive(Debug, Default)]
pub(crate) struct Details {
    pairs: ProviderDetails,
    bytes: usize,
    dropped: usize,
}

impl Details {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Adds one pair; empty values are skipped (Twilio sends empty fields for unset ones).
    pub(crate) fn push(&mut self, key: impl Into<String>, value: impl Into<String>) {
        let value = value.into();
        if !value.is_empty() {
            self.add(key.into(), value);
        }
    }

    /// Adds one pair, an empty value too (in JSON an explicit `""` says something: a
    /// reaction's empty `emoji` is its removal).
    fn add(&mut self, key: String, mut value: String) {
        if value.len() > MAX_VALUE_BYTES {
            let mut cut = MAX_VALUE_BYTES;
            while !value.is_char_boundary(cut) {
                cut -= 1;
            }
            value.truncate(cut);
            self.dropped += 1;
        }
        let size = key.len() + value.len();
        if self.pairs.len() >= MAX_PAIRS || self.bytes + size > MAX_TOTAL_BYTES {
            self.dropped += 1;
            return;
        }
        self.bytes += size;
        self.pairs.push((key, value));
    }

    /// Adds every leaf of `value` under `prefix` (`a.b[0].c`), skipping the top-level members
    /// named in `skip` (those the event already structures).
    pub(crate) fn json(&mut self, prefix: &str, value: &Value, skip: &[&str]) {
        match value {
            Value::Object(map) => {
                for (name, member) in map {
                    if skip.contains(&name.as_str()) {
                        continue;
                    }
                    let path = if prefix.is_empty() {
                        name.clone()
                    } else {
                        format!("{prefix}.{name}")
                    };
                    self.json(&path, member, &[]);
                }
            }
            Value::Array(items) => {
                for (index, item) in items.iter().enumerate() {
                    self.json(&format!("{prefix}[{index}]"), item, &[]);
                }
            }
            Value::Null => {}
            Value::String(text) => self.add(prefix.to_owned(), text.clone()),
            Value::Bool(_) | Value::Number(_) => self.push(prefix, value.to_string()),
        }
    }

    /// The pairs, with a [`TRUNCATED`] pair at the end when anything was dropped or cut.
    pub(crate) fn finish(mut self) -> ProviderDetails {
        if self.dropped > 0 {
            self.pairs.push((
                TRUNCATED.to_owned(),
                format!(
                    "{} values dropped or cut (the rejection log keeps the body)",
                    self.dropped
                ),
            ));
        }
        self.pairs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flattens_leaves_with_paths_and_skips_structured_members() {
        let value = serde_json::json!({
            "id": "skipped",
            "interactive": {"nfm_reply": {"response_json": "{\"a\":1}", "name": "flow"}},
            "location": {"latitude": 52.52, "longitude": 13.4},
            "list": [true, null, "x"],
            "empty": ""
        });
        let mut details = Details::new();
        details.json("", &value, &["id"]);
        let pairs = details.finish();
        let get = |key: &str| {
            pairs
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(get("id"), None);
        assert_eq!(
            get("interactive.nfm_reply.response_json"),
            Some("{\"a\":1}")
        );
        assert_eq!(get("location.latitude"), Some("52.52"));
        assert_eq!(get("list[0]"), Some("true"));
        assert_eq!(get("list[2]"), Some("x"));
        assert_eq!(get("empty"), Some(""));
        assert!(!is_truncated(&pairs));
    }

    #[test]
    fn bounds_are_kept_and_said() {
        let mut details = Details::new();
        details.push("long", "é".repeat(MAX_VALUE_BYTES));
        for n in 0..MAX_PAIRS + 5 {
            details.push(format!("k{n}"), "v");
        }
        let pairs = details.finish();
        assert!(pairs.len() <= MAX_PAIRS + 1);
        assert!(pairs[0].1.len() <= MAX_VALUE_BYTES);
        assert!(is_truncated(&pairs));
        let total: usize = pairs.iter().map(|(k, v)| k.len() + v.len()).sum();
        assert!(total <= MAX_TOTAL_BYTES + 200);
    }
}
