//! Twilio's form-encoded webhooks: inbound messages, status callbacks (with the callback URL's
//! query) and the `message_id` in that query. Input: `<callback query>\n<form body>`; without a
//! newline the whole input is the body. Any input must give an answer, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wagate_providers::twilio::{callback_message_id, parse_inbound, parse_status, SortedParams};

fuzz_target!(|data: &[u8]| {
    let (query, body) = match data.iter().position(|&b| b == b'\n') {
        Some(at) => (String::from_utf8_lossy(&data[..at]), &data[at + 1..]),
        None => (Default::default(), data),
    };
    let _ = parse_inbound(body);
    let _ = parse_status(body, &query);
    let _ = callback_message_id(&query);
    let _ = SortedParams::from_form(body);
});
