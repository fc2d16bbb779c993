//! Every vector of fixtures/providers/signatures.tsv (computed with twilio-python 9.13.0 and
//! cross-checked with twilio-node), plus tampered variants that must fail.

mod common;

use common::{fixture, fixture_str, signature_rows, SignatureRow};
use wagate_providers::twilio::{self, TwilioSigningKeys, TwilioWebhookRequest};
use wagate_providers::{meta, Secret, SignatureError};

fn twilio_check(
    row: &SignatureRow,
    url: &str,
    body: &[u8],
    token: &str,
) -> Result<(), SignatureError> {
    twilio::verify_signature(
        &TwilioSigningKeys::new(Secret::new(token)),
        &TwilioWebhookRequest {
            url,
            body,
            signature: Some(&row.signature),
            signature_settings: None,
        },
    )
}

/// The same URL with the port toggled, as Twilio's back end may have signed it.
fn toggle_port(url: &str) -> String {
    if url.contains(":443/") {
        url.replacen(":443/", "/", 1)
    } else {
        url.replacen(".com/", ".com:443/", 1)
    }
}

#[test]
fn every_vector_verifies_and_every_tampering_fails() {
    let rows = signature_rows();
    assert_eq!(rows.len(), 31, "signatures.tsv changed: review this test");
    let mut seen = std::collections::BTreeMap::<&str, usize>::new();
    for row in &rows {
        *seen.entry(row.scheme.as_str()).or_default() += 1;
        let body = fixture(&row.file);
        match row.scheme.as_str() {
            "twilio-hmac-sha1" => twilio_row(row, &body),
            "twilio-hmac-sha1-body" => twilio_body_row(row, &body),
            "meta-hmac-sha256" => meta_row(row, &body),
            other => panic!("unknown scheme {other}"),
        }
    }
    assert_eq!(seen.get("twilio-hmac-sha1"), Some(&14));
    assert_eq!(seen.get("twilio-hmac-sha1-body"), Some(&1));
    assert_eq!(seen.get("meta-hmac-sha256"), Some(&16));
}

fn twilio_row(row: &SignatureRow, body: &[u8]) {
    let ctx = format!("{} {}", row.file, row.url);
    assert_eq!(
        twilio_check(row, &row.url, body, &row.secret),
        Ok(()),
        "{ctx}"
    );
    // Port quirk: accepted whether or not the URL the hub reconstructs carries :443.
    assert_eq!(
        twilio_check(row, &toggle_port(&row.url), body, &row.secret),
        Ok(()),
        "{ctx} port toggled"
    );

    // Twilio signs decoded values: a different but equivalent encoding still verifies.
    let reencoded = String::from_utf8(body.to_vec())
        .expect("utf-8")
        .replace('+', "%20");
    assert_eq!(
        twilio_check(row, &row.url, reencoded.as_bytes(), &row.secret),
        Ok(()),
        "{ctx} re-encoded"
    );
    // Field order does not matter either.
    let mut fields: Vec<&str> = std::str::from_utf8(body)
        .expect("utf-8")
        .split('&')
        .collect();
    fields.reverse();
    assert_eq!(
        twilio_check(row, &row.url, fields.join("&").as_bytes(), &row.secret),
        Ok(()),
        "{ctx} reordered"
    );

    let mismatch = Err(SignatureError::Mismatch);
    // Tampered body: a value changed, a field added, a field removed.
    let changed = String::from_utf8(body.to_vec()).expect("utf-8").replacen(
        "whatsapp%3A%2B4179",
        "whatsapp%3A%2B4178",
        1,
    );
    assert_ne!(changed.as_bytes(), body);
    assert_eq!(
        twilio_check(row, &row.url, changed.as_bytes(), &row.secret),
        mismatch,
        "{ctx} value changed"
    );
    let added = format!("{}&Extra=1", std::str::from_utf8(body).expect("utf-8"));
    assert_eq!(
        twilio_check(row, &row.url, added.as_bytes(), &row.secret),
        mismatch,
        "{ctx} field added"
    );
    let removed = fields[1..].join("&");
    assert_eq!(
        twilio_check(row, &row.url, removed.as_bytes(), &row.secret),
        mismatch,
        "{ctx} field removed"
    );
    // Tampered URL: other path, other host, query changed, scheme changed.
    for url in [
        row.url.replace("/webhooks/twilio/", "/webhooks/twilio2/"),
        row.url.replace("hub.example.com", "evil.example.com"),
        format!(
            "{}{}x=1",
            row.url,
            if row.url.contains('?') { "&" } else { "?" }
        ),
        row.url.replacen("https://", "http://", 1),
    ] {
        assert_eq!(
            twilio_check(row, &url, body, &row.secret),
            mismatch,
            "{ctx} url {url}"
        );
    }
    // Wrong token.
    assert_eq!(
        twilio_check(row, &row.url, body, &format!("{}x", row.secret)),
        mismatch,
        "{ctx} token"
    );
    // Signing does not depend on the header's surrounding whitespace, but does on its bytes.
    let mut flipped = row.clone();
    flipped.signature = flip_base64_char(&row.signature);
    assert_eq!(
        twilio_check(&flipped, &row.url, body, &row.secret),
        mismatch,
        "{ctx} header"
    );
}

fn flip_base64_char(sig: &str) -> String {
    let mut chars: Vec<char> = sig.chars().collect();
    chars[0] = if chars[0] == 'A' { 'B' } else { 'A' };
    chars.into_iter().collect()
}

fn twilio_body_row(row: &SignatureRow, body: &[u8]) {
    assert!(row.url.contains("bodySHA256="));
    assert_eq!(twilio_check(row, &row.url, body, &row.secret), Ok(()));
    assert_eq!(
        twilio_check(row, &toggle_port(&row.url), body, &row.secret),
        Ok(())
    );
    // One byte more in the body: the hash no longer matches.
    let mut tampered = body.to_vec();
    tampered.push(b' ');
    assert_eq!(
        twilio_check(row, &row.url, &tampered, &row.secret),
        Err(SignatureError::BodyHashMismatch)
    );
    // A body hash in the URL that matches a tampered body: the URL signature breaks.
    let forged_hash = {
        use sha2::Digest as _;
        hex::encode(sha2::Sha256::digest(&tampered))
    };
    let forged_url =
        format!("https://hub.example.com/webhooks/twilio/status?bodySHA256={forged_hash}");
    assert_eq!(
        twilio_check(row, &forged_url, &tampered, &row.secret),
        Err(SignatureError::Mismatch)
    );
    assert_eq!(
        twilio_check(row, &row.url, body, "wrong"),
        Err(SignatureError::Mismatch)
    );
}

fn meta_row(row: &SignatureRow, body: &[u8]) {
    let secret = Secret::new(row.secret.as_str());
    assert_eq!(
        meta::verify_signature(&secret, body, Some(&row.signature)),
        Ok(()),
        "{}",
        row.file
    );
    assert_eq!(meta::compute_signature(&secret, body), row.signature);
    let mut tampered = body.to_vec();
    tampered.push(b'\n');
    assert_eq!(
        meta::verify_signature(&secret, &tampered, Some(&row.signature)),
        Err(SignatureError::Mismatch)
    );
    assert_eq!(
        meta::verify_signature(&Secret::new("wrong"), body, Some(&row.signature)),
        Err(SignatureError::Mismatch)
    );
    // Re-serialising the JSON changes the bytes (whitespace, \u escapes): must fail.
    let value: serde_json::Value = serde_json::from_slice(body).expect("fixture is JSON");
    let reserialised = serde_json::to_vec(&value).expect("serialise");
    assert_ne!(reserialised, body);
    assert_eq!(
        meta::verify_signature(&secret, &reserialised, Some(&row.signature)),
        Err(SignatureError::Mismatch)
    );
}

#[test]
fn meta_unicode_fixture_is_signed_over_escaped_bytes() {
    let body = fixture("meta_webhook_inbound_text_unicode.json");
    assert!(fixture_str("meta_webhook_inbound_text_unicode.json").contains("\\u00fc"));
    let row = signature_rows()
        .into_iter()
        .find(|r| r.file == "meta_webhook_inbound_text_unicode.json")
        .expect("row");
    let secret = Secret::new(row.secret.as_str());
    assert_eq!(
        meta::verify_signature(&secret, &body, Some(&row.signature)),
        Ok(())
    );
    // The same document with the escapes decoded is different bytes.
    let decoded =
        serde_json::to_vec(&serde_json::from_slice::<serde_json::Value>(&body).expect("json"))
            .expect("ser");
    assert_eq!(
        meta::verify_signature(&secret, &decoded, Some(&row.signature)),
        Err(SignatureError::Mismatch)
    );
}

#[test]
fn missing_signature_headers() {
    let body = fixture("twilio_status_sent.form");
    assert_eq!(
        twilio::verify_signature(
            &TwilioSigningKeys::new(Secret::new("12345")),
            &TwilioWebhookRequest {
                url: "https://hub.example.com/webhooks/twilio/status",
                body: &body,
                signature: None,
                signature_settings: None,
            }
        ),
        Err(SignatureError::MissingHeader {
            header: "X-Twilio-Signature"
        })
    );
    assert_eq!(
        meta::verify_signature(&Secret::new("x"), b"{}", None),
        Err(SignatureError::MissingHeader {
            header: "X-Hub-Signature-256"
        })
    );
}

#[test]
fn meta_verify_request_fixture() {
    let query = fixture_str("meta_verify_request.query");
    assert_eq!(
        meta::verify_subscription(&query, &Secret::new("wagate-verify-token")),
        Ok("1158201444".to_owned())
    );
    assert_eq!(
        meta::verify_subscription(&query, &Secret::new("other-token")),
        Err(meta::SubscriptionRefusal::TokenMismatch)
    );
}
