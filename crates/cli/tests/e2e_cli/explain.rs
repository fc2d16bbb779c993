//! `wagate explain` against a real `wagate serve`: plain words citing the log positions that
//! `wagate export` shows.

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

const SEND_TEMPLATE: [&str; 12] = [
    "send",
    "--to",
    LEA,
    "--workflow",
    "appointment_scheduling",
    "--template",
    TEMPLATE,
    "--var",
    "1=Lea",
    "--var",
    "2=Thu 10:00",
    "--json",
];

fn exported(hub: &ServedHub) -> Vec<Value> {
    ok(&hub.wagate(&["export", "--hub", &hub.url]))
        .lines()
        .map(|line| serde_json::from_str(line).expect("json line"))
        .collect()
}

fn position_of(events: &[Value], event_type: &str) -> u64 {
    events
        .iter()
        .rfind(|event| event["type"] == event_type)
        .and_then(|event| event["position"].as_u64())
        .unwrap_or_else(|| panic!("no {event_type} exported"))
}

#[test]
fn explain_says_why_in_plain_words_citing_log_positions() {
    let hub = ServedHub::start();
    ok(&hub.wagate(&["senders", "register", SENDER, "--provider", "sandbox"]));
    ok(&hub.wagate(&["senders", "authorize", SENDER, "--by", "ops@example.com"]));
    ok(&hub.wagate(&[
        "templates",
        "register",
        TEMPLATE,
        "--name",
        "viewing_reminder",
        "--language",
        "en",
        "--category",
        "utility",
        "--placeholder",
        "1",
        "--placeholder",
        "2",
    ]));
    ok(&hub.wagate(&["templates", "status", TEMPLATE, "approved"]));
    let wording = hub.published_wording();
    ok(&hub.wagate(&[
        "opt-in",
        LEA,
        "--source",
        "web_form",
        "--evidence",
        "https://example.com/forms/123",
        "--recorded-by",
        "ops@example.com",
        "--wording-version",
        wording.as_str(),
    ]));
    let sent: Value = serde_json::from_str(&ok(&hub.wagate(&SEND_TEMPLATE))).expect("json");
    let id = sent["message_id"].as_str().expect("message id").to_owned();

    let text = ok(&hub.wagate(&["explain", &id]));
    let events = exported(&hub);
    assert!(
        text.starts_with(&format!("Message {id} was allowed, because:")),
        "{text}"
    );
    for event_type in [
        "TemplateSent",
        "OptedIn",
        "TemplateApprovalChanged",
        "SenderAuthorized",
    ] {
        let position = position_of(&events, event_type);
        assert!(
            text.contains(&format!("[log position {position}]")),
            "{event_type} at {position}: {text}"
        );
    }
    assert!(
        text.contains("https://example.com/forms/123"),
        "the consent receipt's evidence: {text}"
    );

    ok(&hub.wagate(&["opt-out", LEA, "--detail", "asked by phone"]));
    let refused = hub.wagate(&SEND_TEMPLATE);
    assert_eq!(refused.status.code(), Some(4), "{}", stderr(&refused));
    let events = exported(&hub);
    let refusal = events
        .iter()
        .rfind(|event| event["type"] == "SendRefused")
        .expect("refusal exported");
    let refused_id = refusal["payload"]["message_id"].as_str().expect("id");
    let text = ok(&hub.wagate(&["explain", refused_id]));
    assert!(
        text.starts_with(&format!(
            "Message {refused_id} was refused by rule opted_out, because:"
        )),
        "{text}"
    );
    let stop = position_of(&events, "OptedOut");
    assert!(
        text.lines()
            .any(|line| line.contains(&format!("[log position {stop}]"))
                && line.contains("opted out")),
        "the opt-out at {stop}: {text}"
    );
    let json: Value =
        serde_json::from_str(&ok(&hub.wagate(&["explain", refused_id, "--json"]))).expect("json");
    assert_eq!(json["decision"], "refused");
    assert_eq!(json["rule"], "opted_out");

    let unknown = hub.wagate(&["explain", "01934b8e-0000-7000-8000-000000000000"]);
    assert_ne!(unknown.status.code(), Some(0));
    assert!(
        stderr(&unknown).contains("not found"),
        "{}",
        stderr(&unknown)
    );
}
