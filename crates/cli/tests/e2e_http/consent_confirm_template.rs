//! Issue 15, point 3, the template path of the double opt-in through the real binary: a campaign
//! names an approved utility confirmation template (a bad one is a 400 naming the field); a form
//! submission makes the hub send it (a `TemplateSent` under the workflow `consent_confirmation`
//! with its `OptInConfirmationSent`); while the opt-in is pending every other template, and a
//! second confirmation, is refused `no_opt_in`; the person's signed "YES" to the campaign's
//! sender confirms, and the receipt shows it.

use std::time::Duration;

use serde_json::{json, Value};

use crate::consent::{local, meta_text, open_form, receipts, send_to, submit, BUSINESS, WORDING};
use crate::support::*;

/// A number no other step opts in.
const PERSON: &str = "+41791234569";
/// The confirmation template: utility, no variables.
const CONFIRM: &str = "HX00000000000000000000000000c0ffee";

async fn ok(hub: &Hub, path: &str, body: Value) {
    let response = hub.post(path, body).await;
    assert!(
        response.status().is_success(),
        "{path}: {}",
        response.status()
    );
}

async fn create(hub: &Hub, version: &str, template: &str) -> reqwest::Response {
    hub.post(
        "/v1/consent/campaigns",
        json!({"sender": SENDER, "wording_version": version,
               "workflows": ["appointment_scheduling"], "medium": "web_form",
               "confirmation_template": template}),
    )
    .await
}

/// Waits (bounded) until the follower's send is in the log.
async fn confirmation_sent(hub: &Hub) -> Vec<Value> {
    for _ in 0..100 {
        let events = hub.events().await;
        if events.iter().any(|e| e["type"] == "OptInConfirmationSent") {
            return events;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no confirmation was sent: {:?}", hub.events().await);
}

fn confirmation_send() -> Value {
    json!({"to": PERSON, "from": SENDER, "workflow": "consent_confirmation",
           "template": {"content_sid": CONFIRM}})
}

#[tokio::test]
async fn the_confirmation_template_is_the_one_message_a_pending_opt_in_lets_through() {
    let data = tempfile::tempdir().expect("dir");
    let hub = start(data.path());
    hub.ready().await;
    ok(
        &hub,
        "/v1/templates",
        json!({"content_sid": CONFIRM, "name": "optin_confirm", "language": "en",
               "category": "utility", "placeholders": []}),
    )
    .await;
    let wording = hub
        .post(
            "/v1/consent/wordings",
            json!({"business": BUSINESS, "language": "en", "text": WORDING}),
        )
        .await;
    let version = wording.json::<Value>().await.expect("json")["version"]
        .as_str()
        .expect("version")
        .to_owned();

    // Not yet approved, a template with variables, an unknown one: 400 naming the field.
    for (template, says) in [
        (CONFIRM, "not approved"),
        (TEMPLATE, "has variables"),
        (
            "HX0000000000000000000000000000beef",
            "not a registered template",
        ),
    ] {
        let refused = create(&hub, &version, template).await;
        assert_eq!(refused.status(), 400, "{template}");
        let error: Value = refused.json().await.expect("json");
        assert_eq!(error["error"]["field"], "confirmation_template", "{error}");
        assert!(
            error.to_string().contains(says),
            "{template}: {error} should say {says}"
        );
    }
    ok(
        &hub,
        &format!("/v1/templates/{CONFIRM}/status"),
        json!({"status": "approved"}),
    )
    .await;
    let created = create(&hub, &version, CONFIRM).await;
    assert_eq!(created.status(), 201);
    let campaign: Value = created.json().await.expect("json");
    let code = campaign["id"].as_str().expect("id").to_owned();
    assert_eq!(campaign["confirmation_template"], CONFIRM);
    assert_eq!(campaign["confirmation_payload"], format!("{code}:CONFIRM"));

    // Before any submission the confirmation is an ordinary template: no opt-in.
    let early = hub.post("/v1/messages", confirmation_send()).await;
    let status = early.status();
    let early: Value = early.json().await.expect("json");
    assert_eq!(status, 422, "{early}");
    assert_eq!(early["error"]["rule"], "no_opt_in", "{early}");

    // The page submission: the hub sends the confirmation template, once.
    let page = local(&hub, campaign["page_url"].as_str().expect("page"));
    let csrf = open_form(&hub, &page).await;
    let (status, html) = submit(
        &hub,
        &page,
        &[("csrf", &csrf), ("number", PERSON), ("agree", "yes")],
    )
    .await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("reply YES"), "{html}");
    let events = confirmation_sent(&hub).await;
    let sent: Vec<&Value> = events
        .iter()
        .filter(|e| e["type"] == "TemplateSent" && e["payload"]["contact"] == PERSON)
        .collect();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0]["payload"]["workflow"], "consent_confirmation");
    assert_eq!(sent[0]["payload"]["template"], CONFIRM);
    assert_eq!(sent[0]["payload"]["sender"], SENDER);
    let marker = events
        .iter()
        .find(|e| e["type"] == "OptInConfirmationSent")
        .expect("marker");
    assert_eq!(
        marker["payload"]["message_id"],
        sent[0]["payload"]["message_id"]
    );
    assert_eq!(marker["payload"]["campaign"], code.as_str());

    // Still pending: another template, and a second confirmation, are refused no_opt_in.
    for body in [send_to(PERSON), confirmation_send()] {
        let refused = hub.post("/v1/messages", body.clone()).await;
        assert_eq!(refused.status(), 422, "{body}");
        let error: Value = refused.json().await.expect("json");
        assert_eq!(error["error"]["rule"], "no_opt_in", "{error}");
    }
    let pending = receipts(&hub, PERSON).await;
    assert_eq!(pending.len(), 1, "{pending:?}");
    assert!(pending[0]["confirmed_at"].is_null());

    // "YES" to another business number confirms nothing; to the campaign's sender it does.
    let digits = PERSON.trim_start_matches('+');
    meta_text(&hub, digits, "15555550199", "Y1", "YES").await;
    assert!(receipts(&hub, PERSON).await[0]["confirmed_at"].is_null());
    meta_text(&hub, digits, "15555550100", "Y2", "YES").await;
    let confirmed = receipts(&hub, PERSON).await;
    assert_eq!(confirmed.len(), 1, "{confirmed:?}");
    let receipt = &confirmed[0];
    assert_eq!(receipt["state"], "confirmed", "{receipt}");
    assert_eq!(receipt["source"], "web_form");
    assert_eq!(receipt["campaign"], code.as_str());
    assert_eq!(receipt["wording_version"], version.as_str());
    assert!(!receipt["confirmed_at"].is_null());
    assert!(receipt["evidence"]
        .as_str()
        .expect("evidence")
        .contains("wamid.CONSENTY2"));
    // Confirmed: templates go through.
    assert_eq!(
        hub.post("/v1/messages", send_to(PERSON)).await.status(),
        202
    );
}
