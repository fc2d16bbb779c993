//! `X-Hub-Signature-256` verification and the subscription handshake's query. Input:
//! `<header>\n<body>`; the body is also read as a handshake query. Checks that no forged header
//! verifies unless it is the real MAC, and that the real MAC always does.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wagate_providers::meta::{compute_signature, verify_signature, verify_subscription};
use wagate_providers::Secret;

fuzz_target!(|data: &[u8]| {
    let (header, body) = match data.iter().position(|&b| b == b'\n') {
        Some(at) => (
            Some(String::from_utf8_lossy(&data[..at]).into_owned()),
            &data[at + 1..],
        ),
        None => (None, data),
    };
    let secret = Secret::new("9d5e1c2b7a8f40136e2d9c8b7a6f5e4d".to_owned());
    let genuine = compute_signature(&secret, body);
    let verdict = verify_signature(&secret, body, header.as_deref());
    if verdict.is_ok() {
        // Only the real MAC (any hex case, surrounding spaces) may pass.
        let claimed = header
            .as_deref()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        assert_eq!(claimed, genuine, "a forged signature verified");
    }
    assert!(verify_signature(&secret, body, Some(&genuine)).is_ok());

    let verify_token = Secret::new("verify-me".to_owned());
    let _ = verify_subscription(&String::from_utf8_lossy(body), &verify_token);
});
