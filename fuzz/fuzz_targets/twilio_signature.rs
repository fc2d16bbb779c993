//! `X-Twilio-Signature` verification, with `X-Twilio-Webhooks-Signature-Settings` and the
//! `bodySHA256` JSON-body variant. Input: `<url>\n<signature>\n<settings>\n<body>` (missing
//! fields are absent headers). A request the fuzzer built cannot carry a valid MAC, so besides
//! "no panic" the target checks that a request it signs itself verifies.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wagate_providers::twilio::{
    compute_signature, verify_signature, SignatureSettings, SortedParams, TwilioSigningKeys,
    TwilioWebhookRequest,
};
use wagate_providers::Secret;

fuzz_target!(|data: &[u8]| {
    let mut parts = data.splitn(4, |&b| b == b'\n');
    let url = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    let signature = parts
        .next()
        .map(|s| String::from_utf8_lossy(s).into_owned());
    let settings = parts
        .next()
        .map(|s| String::from_utf8_lossy(s).into_owned());
    let body = parts.next().unwrap_or_default();

    let keys = TwilioSigningKeys::new(Secret::new("12345".to_owned()))
        .with_shared_key("KS1", Secret::new("shared".to_owned()));
    let request = TwilioWebhookRequest {
        url: &url,
        body,
        signature: signature.as_deref(),
        signature_settings: settings.as_deref(),
    };
    let _ = verify_signature(&keys, &request);

    // The same request, signed as Twilio would sign it, must verify whatever its bytes are
    // (form bodies only: the bodySHA256 variant also needs the hash in the URL).
    if let Ok(parsed) = SignatureSettings::parse(settings.as_deref()) {
        let secret = match parsed.key_id.as_deref() {
            None => Secret::new("12345".to_owned()),
            Some("KS1") => Secret::new("shared".to_owned()),
            Some(_) => return,
        };
        if !url.contains("://") || url.contains("bodySHA256") {
            return;
        }
        let signed = compute_signature(
            &secret,
            parsed.algorithm,
            &url,
            &SortedParams::from_form(body),
        );
        let genuine = TwilioWebhookRequest {
            signature: Some(&signed),
            ..request
        };
        if verify_signature(&keys, &genuine).is_ok() {
            return;
        }
        // Only a URL verify_signature refuses to read (no host, a port that is not a number)
        // may fail here.
        let refused = verify_signature(&keys, &genuine).unwrap_err();
        assert!(
            matches!(refused, wagate_providers::SignatureError::InvalidUrl(_)),
            "a correctly signed request was refused: {refused:?} for {url:?}"
        );
    }
});
