//! The command API against the real binary.

use serde_json::{json, Value};

use crate::support::*;

#[tokio::test]
async fn bad_input_unknown_ids_dry_runs_and_idempotency_keys() {
    let dir = tempfile::tempdir().expect("dir");
    let hub = start(dir.path());
    hub.ready().await;

    let unauthorized = hub
        .http
        .get(hub.url("/v1/senders"))
        .bearer_auth("wrong")
        .send()
        .await
        .expect("get");
    assert_eq!(unauthorized.status(), 401);

    for (body, field) in [
        (json!({"text": "hi"}), "to"),
        (
            json!({"to": CONTACT, "from": "+15555550100", "text": "hi"}),
            "from",
        ),
        (
            json!({"to": CONTACT, "template": {"content_sid": "nope!"}}),
            "template.content_sid",
        ),
    ] {
        let response = hub.post("/v1/messages", body.clone()).await;
        assert_eq!(response.status(), 400, "{body}");
        let error: Value = response.json().await.expect("json");
        assert_eq!(error["error"]["field"], field, "{error}");
    }
    let unknown = hub
        .get("/v1/messages/01934b8e-0000-7000-8000-000000000000")
        .await;
    assert_eq!(unknown.status(), 404);

    let head = hub.events().await.len();
    let dry = hub
        .post("/v1/messages?dry_run=true", template_send(CONTACT))
        .await;
    assert_eq!(dry.status(), 202);
    let dry: Value = dry.json().await.expect("json");
    assert_eq!(dry["dry_run"], true);
    assert_eq!(hub.events().await.len(), head, "a dry run records nothing");

    let keyed = || {
        hub.http
            .post(hub.url("/v1/messages"))
            .bearer_auth(&hub.token)
            .header("Idempotency-Key", "lead-7-reminder")
            .json(&template_send(CONTACT))
            .send()
    };
    let first: Value = keyed().await.expect("send").json().await.expect("json");
    let after_first = hub.events().await.len();
    let second: Value = keyed().await.expect("send").json().await.expect("json");
    assert_eq!(first["message_id"], second["message_id"]);
    assert_eq!(hub.events().await.len(), after_first);

    let id = first["message_id"].as_str().expect("id");
    let message: Value = hub
        .get(&format!("/v1/messages/{id}"))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(message["status"], "queued");
    assert_eq!(message["intent"]["content"]["template"], TEMPLATE);
    let contact: Value = hub
        .get("/v1/contacts/+41790000001")
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(contact["consent"]["state"], "opted_in");
    assert_eq!(contact["recent_messages"][0]["message_id"], id);
}

#[tokio::test]
pub(crate) async fn the_event_feed_follows_new_events() {
    let dir = tempfile::tempdir().expect("dir");
    let hub = start(dir.path());
    hub.ready().await;
    let head = hub.events().await.len();
    let mut follow = hub
        .get(&format!("/v1/events?after={head}&follow=true"))
        .await;
    assert_eq!(follow.status(), 200);
    let path = "/webhooks/twilio/inbound";
    let response = hub
        .twilio(
            path,
            fixture("twilio_inbound_text.form"),
            &twilio_signature(path, "twilio_inbound_text.form"),
        )
        .await;
    assert_eq!(response.status(), 200);
    let wait = async {
        let mut text = String::new();
        while !text.ends_with('\n') {
            let chunk = follow.chunk().await.expect("chunk").expect("open feed");
            text.push_str(&String::from_utf8_lossy(&chunk));
        }
        text
    };
    // A safety net so the test always stops; the event normally arrives at once.
    let text = tokio::time::timeout(std::time::Duration::from_secs(60), wait)
        .await
        .expect("the followed feed delivers the new event");
    let first: Value = serde_json::from_str(text.lines().next().expect("line")).expect("json");
    assert_eq!(first["position"], head as u64 + 1);
    assert_eq!(first["type"], "InboundReceived");
}
