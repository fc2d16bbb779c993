//! Review items raised by what providers report, through the real binary: Meta's signed
//! `phone_number_quality_update` with a `FLAGGED` event raises one `quality_drop` item about the
//! number, and the same delivery again (a provider retry) raises nothing more.

use serde_json::Value;
use wagate_providers::{meta, Secret};

use crate::support::*;

async fn post_meta(hub: &Hub, body: Vec<u8>) -> u16 {
    let signature = meta::compute_signature(&Secret::new(META_APP_SECRET), &body);
    hub.http
        .post(hub.url("/webhooks/meta"))
        .header("Content-Type", "application/json")
        .header("X-Hub-Signature-256", signature)
        .body(body)
        .send()
        .await
        .expect("POST /webhooks/meta")
        .status()
        .as_u16()
}

#[tokio::test]
async fn a_meta_quality_drop_raises_one_review_item_about_its_number() {
    let dir = tempfile::tempdir().expect("dir");
    let hub = start(dir.path());
    hub.ready().await;
    let body = fixture("meta_webhook_phone_number_quality_update.json");
    assert_eq!(post_meta(&hub, body.clone()).await, 200);
    assert_eq!(post_meta(&hub, body).await, 200, "a redelivery");
    let list: Value = hub
        .get("/v1/review?reason=quality_drop")
        .await
        .json()
        .await
        .expect("review list");
    let items = list["items"].as_array().expect("items");
    assert_eq!(items.len(), 1, "{list}");
    assert_eq!(items[0]["state"], "open");
    assert_eq!(items[0]["sender"], "whatsapp:+15555550100");
    let detail = items[0]["detail"].as_str().expect("detail");
    assert!(
        detail.contains("FLAGGED") && detail.contains("TIER_2K"),
        "{detail}"
    );
    assert_eq!(
        items[0]["decisions"],
        serde_json::json!(["handled", "dismiss"])
    );
}
