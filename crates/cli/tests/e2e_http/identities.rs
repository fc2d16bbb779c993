//! One person, several identities (issue 11, point 4), against the real binary: a signed Meta
//! webhook links a business-scoped user id to the number, a STOP under the user id refuses a
//! send to the number, the contact view shows the linked identities, and Meta's system notices
//! link numbers or ask for a review without opening a window.

use serde_json::Value;

use crate::support::*;

async fn meta(hub: &Hub, file: &str) -> Value {
    let response = hub
        .http
        .post(hub.url("/webhooks/meta"))
        .header("Content-Type", "application/json")
        .header("X-Hub-Signature-256", meta_signature(file))
        .body(fixture(file))
        .send()
        .await
        .expect("meta webhook");
    assert_eq!(response.status(), 200, "{file}");
    response.json().await.expect("summary")
}

async fn contact(hub: &Hub, id: &str) -> Value {
    let response = hub.get(&format!("/v1/contacts/{id}")).await;
    assert_eq!(response.status(), 200, "{id}");
    response.json().await.expect("json")
}

fn count(events: &[Value], kind: &str) -> usize {
    events.iter().filter(|e| e["type"] == kind).count()
}

#[tokio::test]
async fn a_stop_under_a_linked_user_id_stops_the_number_and_notices_open_no_window() {
    let dir = tempfile::tempdir().expect("dir");
    let hub = start(dir.path());
    hub.ready().await;
    const BSUID: &str = "bsuid:CH.1349120865530274191";

    // A message carrying the number and the user id links them.
    meta(&hub, "meta_webhook_inbound_text_number_and_bsuid.json").await;
    let view = contact(&hub, CONTACT).await;
    assert_eq!(view["linked_identities"][0]["contact"], BSUID, "{view}");
    assert_eq!(view["effective_consent"], "opted_in");
    let linked = contact(&hub, BSUID).await;
    assert_eq!(
        linked["linked_identities"][0]["contact"], CONTACT,
        "{linked}"
    );

    // STOP from a username-only contact: recorded under the user id, not rejected.
    let summary = meta(&hub, "meta_webhook_inbound_username_from.json").await;
    assert_eq!(summary["rejected"], 0, "{summary}");
    let linked = contact(&hub, BSUID).await;
    assert_eq!(linked["consent"]["state"], "opted_out", "{linked}");

    // The number itself never said STOP, yet a send to it is refused.
    let view = contact(&hub, CONTACT).await;
    assert_eq!(view["consent"]["state"], "opted_in");
    assert_eq!(view["effective_consent"], "opted_out");
    assert_eq!(
        view["linked_identities"][0]["consent"]["state"],
        "opted_out"
    );
    let refused = hub.post("/v1/messages", template_send(CONTACT)).await;
    assert_eq!(refused.status(), 422);
    let refused: Value = refused.json().await.expect("json");
    assert_eq!(refused["error"]["rule"], "opted_out", "{refused}");

    // A change of number is no message from the person: no window, and consent follows.
    let inbound_before = count(&hub.events().await, "InboundReceived");
    meta(&hub, "meta_webhook_system_user_changed_number.json").await;
    let new_number = contact(&hub, "+41790000002").await;
    assert_eq!(new_number["window_open_until"], Value::Null, "{new_number}");
    assert_eq!(new_number["last_inbound_at"], Value::Null);
    assert_eq!(new_number["effective_consent"], "opted_out");
    let refused = hub
        .post("/v1/messages", template_send("+41790000002"))
        .await;
    assert_eq!(refused.status(), 422);

    // A changed identity asks a person to look; a group STOP opts out and asks too.
    meta(&hub, "meta_webhook_system_customer_identity_changed.json").await;
    meta(&hub, "meta_webhook_inbound_group_stop.json").await;
    let events = hub.events().await;
    assert_eq!(
        count(&events, "InboundReceived"),
        inbound_before,
        "{events:?}"
    );
    assert_eq!(count(&events, "GroupMessageReceived"), 1);
    let reviews: Vec<&Value> = events
        .iter()
        .filter(|e| e["type"] == "OptOutReviewRequested")
        .map(|e| &e["payload"]["matched"])
        .collect();
    assert_eq!(reviews, ["customer_identity_changed", "stop_in_group"]);
    let links: Vec<(&Value, &Value)> = events
        .iter()
        .filter(|e| e["type"] == "IdentityLinked")
        .map(|e| (&e["payload"]["other"], &e["payload"]["source"]))
        .collect();
    assert_eq!(links.len(), 4, "{links:?}");

    // Redeliveries append nothing.
    let head = events.len();
    for file in [
        "meta_webhook_system_user_changed_number.json",
        "meta_webhook_system_customer_identity_changed.json",
        "meta_webhook_inbound_group_stop.json",
    ] {
        let summary = meta(&hub, file).await;
        assert_eq!(summary["appended"], 0, "{file}: {summary}");
    }
    assert_eq!(hub.events().await.len(), head);
}
