//! Meta's account and template notices through the router: acted on once, recorded through the
//! single notice path, and followed by the gates.

use super::*;

/// Posts `body` to Meta's webhook, signed as Meta would.
async fn meta_post(app: &TestApp, body: &Value) -> Answer {
    let bytes = serde_json::to_vec(body).expect("json");
    let signature =
        wagate_providers::meta::compute_signature(&Secret::new(META_APP_SECRET), &bytes);
    call(
        app,
        Request::post("/webhooks/meta")
            .header("X-Hub-Signature-256", signature)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(bytes))
            .expect("request"),
    )
    .await
}

fn fixture_json(name: &str) -> Value {
    serde_json::from_slice(&fixture(name)).expect("fixture json")
}

/// `SENDER` as an authorized Cloud API number.
async fn meta_sender(app: &TestApp) {
    let registered = call(
        app,
        api(
            Method::POST,
            "/v1/senders",
            Some(json!({"address": SENDER, "provider": "meta", "meta_phone_number_id": "1099"})),
        ),
    )
    .await;
    assert_eq!(
        registered.status,
        StatusCode::CREATED,
        "{}",
        registered.text()
    );
    authorize(app).await;
}

async fn authorize(app: &TestApp) {
    let authorized = call(
        app,
        api(
            Method::POST,
            &format!("/v1/senders/{SENDER}/authorize"),
            Some(json!({"by": "ops@example.com"})),
        ),
    )
    .await;
    assert_eq!(authorized.status, StatusCode::OK, "{}", authorized.text());
}

async fn may_send(app: &TestApp) -> bool {
    let senders = call(app, api(Method::GET, "/v1/senders", None))
        .await
        .json();
    senders
        .as_array()
        .expect("list")
        .iter()
        .find(|s| s["address"] == SENDER)
        .expect("sender")["may_send"]
        .as_bool()
        .expect("bool")
}

/// A restriction suspends the sender once: after an operator authorized it again, Meta's
/// redelivery of the same notice is a duplicate, not a second suspension.
#[tokio::test]
async fn a_redelivered_account_notice_is_not_acted_on_twice() {
    let app = app();
    meta_sender(&app).await;
    let notice = fixture_json("meta_webhook_account_update_restriction.json");
    let first = meta_post(&app, &notice).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text());
    assert!(!may_send(&app).await, "the restriction suspends the sender");

    authorize(&app).await;
    let before = head(&app);
    let again = meta_post(&app, &notice).await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.text());
    assert_eq!(again.json()["appended"], 0, "{}", again.text());
    assert_eq!(head(&app), before, "a redelivery appends nothing");
    assert!(may_send(&app).await, "a redelivery suspends nothing again");
}
