//! `GET /v1/messages/{id}/explain` against the real binary: the positions an explanation cites
//! are the positions of the events in `GET /v1/events`.

use serde_json::{json, Value};

use crate::support::*;

/// The position of the last event of `event_type` in the feed that `matches`.
fn position_of(events: &[Value], event_type: &str, matches: impl Fn(&Value) -> bool) -> u64 {
    events
        .iter()
        .rfind(|event| event["type"] == event_type && matches(event))
        .and_then(|event| event["position"].as_u64())
        .unwrap_or_else(|| panic!("no {event_type} in the feed"))
}

fn cited(explanation: &Value) -> Vec<u64> {
    explanation["facts"]
        .as_array()
        .expect("facts")
        .iter()
        .map(|fact| {
            assert!(
                fact["text"].as_str().is_some_and(|text| !text.is_empty()),
                "{fact}"
            );
            fact["position"].as_u64().expect("position")
        })
        .collect()
}

#[tokio::test]
async fn explanations_cite_the_log_positions_of_what_the_decision_relied_on() {
    let dir = tempfile::tempdir().expect("dir");
    let hub = start(dir.path());
    hub.ready().await;

    let sent = hub.post("/v1/messages", template_send(CONTACT)).await;
    assert_eq!(sent.status(), 202);
    let sent: Value = sent.json().await.expect("json");
    let id = sent["message_id"].as_str().expect("id").to_owned();

    let explained = hub.get(&format!("/v1/messages/{id}/explain")).await;
    assert_eq!(explained.status(), 200);
    let explained: Value = explained.json().await.expect("json");
    assert_eq!(explained["message_id"], id.as_str());
    assert_eq!(explained["decision"], "allowed");
    assert!(explained.get("rule").is_none(), "{explained}");
    let events = hub.events().await;
    let positions = cited(&explained);
    let intent = position_of(&events, "TemplateSent", |e| {
        e["payload"]["message_id"] == id.as_str()
    });
    for (what, position) in [
        ("the intent", intent),
        ("the opt-in", position_of(&events, "OptedIn", |_| true)),
        (
            "the approval",
            position_of(&events, "TemplateApprovalChanged", |_| true),
        ),
        (
            "the authorization",
            position_of(&events, "SenderAuthorized", |_| true),
        ),
        (
            "the registration",
            position_of(&events, "SenderRegistered", |_| true),
        ),
    ] {
        assert!(
            positions.contains(&position),
            "{what} at {position} is not cited: {explained}"
        );
    }
    assert!(
        positions.iter().all(|position| *position <= intent),
        "an allowed send relied only on events before it: {explained}"
    );

    // Meta pauses the template: the next send is refused, and its explanation cites the pause.
    let paused = hub
        .post(
            &format!("/v1/templates/{TEMPLATE}/status"),
            json!({"status": "paused", "reason": "quality rating low"}),
        )
        .await;
    assert!(paused.status().is_success());
    let refused = hub.post("/v1/messages", template_send(CONTACT)).await;
    assert_eq!(refused.status(), 422);
    let events = hub.events().await;
    let refusal = events
        .iter()
        .rfind(|event| event["type"] == "SendRefused")
        .expect("the refusal is recorded");
    assert_eq!(refusal["payload"]["template"], TEMPLATE);
    let refused_id = refusal["payload"]["message_id"].as_str().expect("id");
    let explained: Value = hub
        .get(&format!("/v1/messages/{refused_id}/explain"))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(explained["decision"], "refused");
    assert_eq!(explained["rule"], "template_not_approved");
    let pause = position_of(&events, "TemplateApprovalChanged", |e| {
        e["payload"]["status"] == "paused"
    });
    let positions = cited(&explained);
    assert!(positions.contains(&refusal["position"].as_u64().expect("position")));
    assert!(
        positions.contains(&pause),
        "the pause at {pause} is cited: {explained}"
    );

    assert_eq!(
        hub.get("/v1/messages/01934b8e-0000-7000-8000-000000000000/explain")
            .await
            .status(),
        404
    );
    let malformed = hub.get("/v1/messages/nope/explain").await;
    assert_eq!(malformed.status(), 400);
    let error: Value = malformed.json().await.expect("json");
    assert_eq!(error["error"]["field"], "message_id");
}
