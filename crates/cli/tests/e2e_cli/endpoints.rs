//! `wagate endpoints add|list|delete` against a real `wagate serve` on 127.0.0.1.

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
fn an_operator_adds_lists_and_deletes_an_endpoint() {
    let hub = ServedHub::start();

    let added: Value = serde_json::from_str(&ok(&hub.wagate(&[
        "endpoints",
        "add",
        "http://127.0.0.1:9/wagate-events",
        "--event",
        "inbound_message",
        "--event",
        "opted_out",
        "--json",
    ])))
    .expect("json");
    let id = added["id"].as_str().expect("id").to_owned();
    assert!(added["secret"]
        .as_str()
        .expect("secret")
        .starts_with("whsec_"));

    let text = ok(&hub.wagate(&["endpoints", "list"]));
    assert!(
        text.contains(&id) && text.contains("active") && text.contains("inbound_message,opted_out"),
        "{text}"
    );
    assert!(!text.contains("whsec_"), "{text}");

    let text = ok(&hub.wagate(&["endpoints", "delete", &id]));
    assert!(text.contains(&format!("deleted {id}  deleted")), "{text}");

    // Plain http to another host is refused, naming the field.
    let output = hub.wagate(&[
        "endpoints",
        "add",
        "http://agent.example.com/x",
        "--event",
        "opted_out",
    ]);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("url"), "{}", stderr(&output));
}
