//! `wagate consent …` against a real `wagate serve`: publish a wording, create a QR campaign,
//! write its QR code as SVG and PNG, and show an empty receipt document.

use serde_json::Value;

use crate::support::*;

fn ok(output: &std::process::Output) -> String {
    assert_eq!(
        output.status.code(),
        Some(0),
        "stdout:\n{}\nstderr:\n{}",
        stdout(output),
        stderr(output)
    );
    stdout(output)
}

#[test]
fn an_operator_publishes_a_wording_creates_a_campaign_and_prints_its_qr_code() {
    let hub = ServedHub::start();
    ok(&hub.wagate(&["senders", "register", SENDER, "--provider", "sandbox"]));
    let wording: Value = serde_json::from_str(&ok(&hub.wagate(&[
        "consent",
        "wording",
        "--business",
        "Acme Homes",
        "--language",
        "en",
        "--text",
        "I agree to WhatsApp messages about viewings from Acme Homes.",
        "--json",
    ])))
    .expect("json");
    let version = wording["version"].as_str().expect("version");
    let text = ok(&hub.wagate(&[
        "consent",
        "campaign",
        "--sender",
        SENDER,
        "--wording-version",
        version,
        "--workflow",
        "appointment_scheduling",
        "--medium",
        "qr_code",
    ]));
    assert!(text.contains("https://wa.me/"), "{text}");
    let code = text
        .split_whitespace()
        .nth(1)
        .expect("campaign code")
        .to_owned();
    assert!(code.starts_with("WG-"), "{text}");
    let dir = tempfile::tempdir().expect("dir");
    for name in ["qr.svg", "qr.png"] {
        let file = dir.path().join(name);
        ok(&hub.wagate(&[
            "consent",
            "qr",
            &code,
            "--output",
            file.to_str().expect("utf-8 path"),
        ]));
        let bytes = std::fs::read(&file).expect("written");
        if name.ends_with(".png") {
            assert!(bytes.starts_with(b"\x89PNG"), "a PNG");
        } else {
            assert!(String::from_utf8_lossy(&bytes).contains("<svg"));
        }
    }
    let shown = ok(&hub.wagate(&["consent", "show", LEA]));
    assert!(shown.contains("No consent on record."), "{shown}");
    // An unknown campaign is an error naming it.
    let missing = hub.wagate(&[
        "consent",
        "qr",
        "WG-NOPE0000",
        "--output",
        dir.path().join("x.svg").to_str().expect("path"),
    ]);
    assert_ne!(missing.status.code(), Some(0));
}
