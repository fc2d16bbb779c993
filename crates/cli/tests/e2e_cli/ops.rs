//! The operator commands against a real `wagate serve` on 127.0.0.1.

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

fn json(output: &std::process::Output) -> Value {
    serde_json::from_str(&stdout(output))
        .unwrap_or_else(|error| panic!("not JSON ({error}): {}", stdout(output)))
}

const SEND_TEMPLATE: [&str; 11] = [
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
];

#[test]
fn an_operator_sets_up_a_hub_and_sends() {
    let hub = ServedHub::start();

    let text = ok(&hub.wagate(&["senders", "register", SENDER, "--provider", "sandbox"]));
    assert!(text.contains("not authorized"), "{text}");
    let text = ok(&hub.wagate(&["senders", "authorize", SENDER, "--by", "ops@example.com"]));
    assert!(
        text.contains("may send (authorized by ops@example.com)"),
        "{text}"
    );
    let senders = json(&hub.wagate(&["senders", "list", "--json"]));
    assert_eq!(senders[0]["address"], SENDER);
    assert_eq!(senders[0]["may_send"], true);

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
    let text = ok(&hub.wagate(&["templates", "status", TEMPLATE, "approved"]));
    assert!(text.contains("approved"), "{text}");
    let text = ok(&hub.wagate(&["templates", "list"]));
    assert!(
        text.contains(TEMPLATE) && text.contains("approved"),
        "{text}"
    );

    // No opt-in yet: refused, exit 4, the rule and its sentence on stderr.
    let output = hub.wagate(&SEND_TEMPLATE);
    assert_eq!(output.status.code(), Some(4), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("refused by rule no_opt_in: +41790000001 has no explicit opt-in"),
        "{}",
        stderr(&output)
    );
    // The same as JSON for machines.
    let mut args = SEND_TEMPLATE.to_vec();
    args.push("--json");
    let output = hub.wagate(&args);
    assert_eq!(output.status.code(), Some(4));
    assert_eq!(json(&output)["error"]["rule"], "no_opt_in");

    let wording = hub.published_wording();
    let text = ok(&hub.wagate(&[
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
    assert!(
        text.contains("opt-in of +41790000001 (web_form) recorded at position"),
        "{text}"
    );

    let mut dry = SEND_TEMPLATE.to_vec();
    dry.push("--dry-run");
    let text = ok(&hub.wagate(&dry));
    assert!(text.contains("would be allowed now"), "{text}");

    let mut keyed = SEND_TEMPLATE.to_vec();
    keyed.extend(["--idempotency-key", "visit-42", "--json"]);
    let first = json(&hub.wagate(&keyed));
    let again = json(&hub.wagate(&keyed));
    let id = first["message_id"].as_str().expect("message id").to_owned();
    assert_eq!(again["message_id"], id.as_str(), "same key, same message");

    let text = ok(&hub.wagate(&["message", &id]));
    assert!(text.contains(&format!("message {id}")), "{text}");
    assert!(
        text.contains("template HX0123456789abcdef0123456789abcdef (utility) 1=Lea 2=Thu 10:00"),
        "{text}"
    );
    assert!(text.contains("TemplateSent"), "{text}");
    let message = json(&hub.wagate(&["message", &id, "--json"]));
    assert_eq!(message["message_id"], id.as_str());

    let text = ok(&hub.wagate(&["contact", LEA]));
    assert!(text.contains("consent          opted_in"), "{text}");
    assert!(text.contains(&format!("wording {wording}")), "{text}");
    assert!(text.contains(&id), "{text}");

    // Freeform without an inbound: window_closed.
    let output = hub.wagate(&[
        "send",
        "--to",
        LEA,
        "--workflow",
        "lead_qualification",
        "--text",
        "Hi",
    ]);
    assert_eq!(output.status.code(), Some(4));
    assert!(
        stderr(&output).contains("refused by rule window_closed"),
        "{}",
        stderr(&output)
    );

    let text = ok(&hub.wagate(&["opt-out", LEA, "--detail", "asked by phone"]));
    assert!(
        text.contains("opt-out of +41790000001 (operator) recorded"),
        "{text}"
    );
    let output = hub.wagate(&SEND_TEMPLATE);
    assert_eq!(output.status.code(), Some(4));
    assert!(
        stderr(&output).contains("refused by rule opted_out"),
        "{}",
        stderr(&output)
    );
    let text = ok(&hub.wagate(&["contact", LEA]));
    assert!(text.contains("consent          opted_out"), "{text}");
    assert!(text.contains("opt-out          operator"), "{text}");

    // The suspended sender refuses everything, with its reason.
    ok(&hub.wagate(&[
        "senders",
        "suspend",
        SENDER,
        "--reason",
        "number under review",
    ]));
    let text = ok(&hub.wagate(&["senders", "list"]));
    assert!(text.contains("SUSPENDED: number under review"), "{text}");

    // Export and audit through the running hub (its database is locked).
    let output = hub.wagate(&["export", "--hub", &hub.url]);
    let exported = ok(&output);
    assert!(exported.lines().count() >= 12, "{exported}");
    let output = hub.wagate(&["export", "--hub", &hub.url, "--from", "2", "--to", "4"]);
    let positions: Vec<u64> = ok(&output)
        .lines()
        .map(|line| {
            serde_json::from_str::<Value>(line).expect("line")["position"]
                .as_u64()
                .expect("position")
        })
        .collect();
    assert_eq!(positions, [2, 3, 4]);
    let data = hub.data.path().join("data");
    let output = hub.wagate(&["export", "--data", data.to_str().expect("utf-8")]);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("database is in use by a running hub; use --hub"));
    let text = ok(&hub.wagate(&["audit", "--hub", &hub.url]));
    assert!(text.contains("violations: none"), "{text}");

    // Once the hub is stopped, the database gives the very same lines (and maybe a few more:
    // sandbox callbacks that landed after the export above).
    let mut hub = hub;
    hub.stop();
    let from_data = ok(&wagate(&[
        "export",
        "--data",
        data.to_str().expect("utf-8"),
    ]));
    let from_data: Vec<&str> = from_data.lines().collect();
    let from_hub: Vec<&str> = exported.lines().collect();
    assert!(from_data.len() >= from_hub.len());
    assert_eq!(from_data[..from_hub.len()], from_hub[..]);
    let text = ok(&wagate(&["audit", "--data", data.to_str().expect("utf-8")]));
    assert!(text.contains("violations: none"), "{text}");
}

#[test]
fn unreachable_hubs_and_bad_tokens_are_named() {
    // A port nobody listens on: bind, note it, close.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let output = wagate(&["contact", LEA, "--hub", &url]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains(&format!("cannot reach the hub at {url}")),
        "{}",
        stderr(&output)
    );

    let hub = ServedHub::start();
    let output = wagate(&["contact", LEA, "--hub", &hub.url, "--token", "wrong"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("refused the API token (401)"),
        "{}",
        stderr(&output)
    );
    let output = wagate(&["senders", "list", "--hub", &hub.url]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("no token was given"),
        "{}",
        stderr(&output)
    );
    let output = hub.wagate(&["message", "not-a-uuid"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("message_id"),
        "{}",
        stderr(&output)
    );
    let output = hub.wagate(&["send", "--to", LEA, "--text", "a", "--template", TEMPLATE]);
    assert_eq!(
        output.status.code(),
        Some(2),
        "--text and --template conflict"
    );
}
