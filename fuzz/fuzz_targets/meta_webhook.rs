//! Meta's webhook JSON (messages, statuses, system notices, batches). Any input must give an
//! answer, never a panic; whatever is parsed must also serialise through Debug (every field is
//! readable).
#![no_main]

use libfuzzer_sys::fuzz_target;
use wagate_providers::meta::parse_webhook;

fuzz_target!(|data: &[u8]| {
    if let Ok(webhook) = parse_webhook(data) {
        let _ = format!("{webhook:?}");
    }
});
