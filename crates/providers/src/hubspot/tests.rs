use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{json, Value};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use super::*;
use crate::Secret;

fn client(server: &MockServer) -> HubSpotClient {
    HubSpotClient::new(
        &server.uri(),
        Secret::new("pat-test-token"),
        Duration::from_secs(5),
    )
    .expect("client")
}

async fn only_request(server: &MockServer) -> wiremock::Request {
    let requests = server.received_requests().await.expect("recording");
    assert_eq!(requests.len(), 1, "{requests:?}");
    requests.into_iter().next().expect("one request")
}

fn json_body(request: &wiremock::Request) -> Value {
    serde_json::from_slice(&request.body).expect("json body")
}

#[tokio::test]
async fn a_contact_is_searched_by_phone_or_mobile_phone_with_the_bearer_token() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/crm/v3/objects/contacts/search"))
        .and(header("authorization", "Bearer pat-test-token"))
        .and(header("content-type", "application/json"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "total": 1, "results": [{"id": "501", "properties": {"phone": "+41790000001"},
            "createdAt": "2026-05-01T10:15:01.123Z", "updatedAt": "2026-05-01T10:15:01.123Z", "archived": false}]
        })))
        .mount(&server)
        .await;
    let found = client(&server)
        .find_contact_by_phone("+41790000001")
        .await
        .expect("search");
    assert_eq!(found.as_deref(), Some("501"));
    let request = only_request(&server).await;
    assert_eq!(
        json_body(&request),
        json!({
            "filterGroups": [
                {"filters": [{"propertyName": "phone", "operator": "EQ", "value": "+41790000001"}]},
                {"filters": [{"propertyName": "mobilephone", "operator": "EQ", "value": "+41790000001"}]},
            ],
            "properties": ["phone", "mobilephone"],
            "sorts": [{"propertyName": "createdate", "direction": "ASCENDING"}],
            "limit": 1,
        })
    );
}

#[tokio::test]
async fn no_result_is_no_contact() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/crm/v3/objects/contacts/search"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"total": 0, "results": []})))
        .mount(&server)
        .await;
    let found = client(&server)
        .find_contact_by_phone("+41790000001")
        .await
        .expect("search");
    assert_eq!(found, None);
}

#[tokio::test]
async fn a_communication_is_created_on_the_whatsapp_channel_and_associated_by_default() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/crm/v3/objects/communications"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({
            "id": "30001", "properties": {"hs_object_id": "30001"},
            "createdAt": "2026-05-01T10:15:01.123Z", "updatedAt": "2026-05-01T10:15:01.123Z", "archived": false
        })))
        .mount(&server)
        .await;
    Mock::given(method("PUT"))
        .and(path(
            "/crm/v4/objects/communications/30001/associations/default/contacts/501",
        ))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"status": "COMPLETE", "results": []})),
        )
        .mount(&server)
        .await;
    let hubspot = client(&server);
    let id = hubspot
        .create_communication(&CommunicationInput {
            body: "Outbound WhatsApp template".into(),
            timestamp: "2026-05-01T10:15:00.000Z".into(),
            extra: BTreeMap::from([("wagate_id".to_owned(), "msg:1".to_owned())]),
        })
        .await
        .expect("create");
    assert_eq!(id, "30001");
    hubspot
        .associate_to_contact(ObjectType::Communications, &id, "501")
        .await
        .expect("associate");
    let requests = server.received_requests().await.expect("recording");
    assert_eq!(requests.len(), 2);
    assert_eq!(
        String::from_utf8(requests[0].body.clone()).expect("utf-8"),
        r#"{"properties":{"hs_communication_body":"Outbound WhatsApp template","hs_communication_channel_type":"WHATS_APP","hs_communication_logged_from":"CRM","hs_timestamp":"2026-05-01T10:15:00.000Z","wagate_id":"msg:1"}}"#
    );
    assert!(requests[1].body.is_empty());
    assert_eq!(
        requests[1]
            .headers
            .get("authorization")
            .map(|v| v.as_bytes()),
        Some(&b"Bearer pat-test-token"[..])
    );
}

#[tokio::test]
async fn a_status_change_patches_the_body() {
    let server = MockServer::start().await;
    Mock::given(method("PATCH"))
        .and(path("/crm/v3/objects/communications/30001"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"id": "30001", "properties": {}})),
        )
        .mount(&server)
        .await;
    client(&server)
        .update_communication("30001", "Status: read")
        .await
        .expect("update");
    let request = only_request(&server).await;
    assert_eq!(
        json_body(&request),
        json!({"properties": {"hs_communication_body": "Status: read"}})
    );
}

#[tokio::test]
async fn a_429_waits_for_retry_after_else_the_window_else_ten_seconds() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("Retry-After", "3")
                .set_body_json(json!({"status": "error", "message": "You have reached your ten_secondly_rolling limit.", "errorType": "RATE_LIMIT", "policyName": "TEN_SECONDLY_ROLLING"})),
        )
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("X-HubSpot-RateLimit-Interval-Milliseconds", "5000")
                .insert_header("X-HubSpot-RateLimit-Max", "100")
                .insert_header("X-HubSpot-RateLimit-Remaining", "0"),
        )
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(429).set_body_string("not json"))
        .mount(&server)
        .await;
    let hubspot = client(&server);
    assert_eq!(
        hubspot.find_contact_by_phone("+41790000001").await,
        Err(HubSpotError::RateLimited(Duration::from_secs(3)))
    );
    assert_eq!(
        hubspot.find_contact_by_phone("+41790000001").await,
        Err(HubSpotError::RateLimited(Duration::from_secs(5)))
    );
    assert_eq!(
        hubspot.find_contact_by_phone("+41790000001").await,
        Err(HubSpotError::RateLimited(Duration::from_secs(10)))
    );
}

#[tokio::test]
async fn an_exhausted_window_delays_the_next_call() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("X-HubSpot-RateLimit-Secondly-Remaining", "0")
                .set_body_json(json!({"results": []})),
        )
        .mount(&server)
        .await;
    let hubspot = client(&server);
    hubspot
        .find_contact_by_phone("+41790000001")
        .await
        .expect("first");
    let started = tokio::time::Instant::now();
    hubspot
        .find_contact_by_phone("+41790000001")
        .await
        .expect("second");
    // The `Secondly` window is one second; the second call waited for it.
    assert!(started.elapsed() >= Duration::from_millis(900));
}

#[tokio::test]
async fn answers_are_sorted_by_what_retrying_can_do() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/crm/v3/objects/contacts"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({
            "status": "error", "message": "Property values were not valid: phone",
            "correlationId": "aeb5f871-7f07-4993-9211-075dc63e7cbf", "category": "VALIDATION_ERROR"
        })))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/crm/v3/objects/notes"))
        .respond_with(ResponseTemplate::new(502))
        .mount(&server)
        .await;
    let hubspot = client(&server);
    let refused = hubspot.create_contact("+41790000001").await;
    assert_eq!(
        refused,
        Err(HubSpotError::Refused {
            status: 400,
            category: Some("VALIDATION_ERROR".into()),
            message: "Property values were not valid: phone".into()
        })
    );
    assert!(!refused.expect_err("refused").is_retryable());
    let transient = hubspot
        .create_note(&NoteInput {
            body: "Opted out".into(),
            timestamp: "2026-05-01T10:15:00.000Z".into(),
            extra: BTreeMap::new(),
        })
        .await
        .expect_err("transient");
    assert!(matches!(transient, HubSpotError::Transient(_)) && transient.is_retryable());
}

#[tokio::test]
async fn a_record_is_found_by_its_idempotency_property() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/crm/v3/objects/communications/search"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"total": 1, "results": [{"id": "30001", "properties": {}}]})),
        )
        .mount(&server)
        .await;
    let found = client(&server)
        .find_by_property(ObjectType::Communications, "wagate_id", "msg:1")
        .await
        .expect("search");
    assert_eq!(found.as_deref(), Some("30001"));
    assert_eq!(
        json_body(&only_request(&server).await),
        json!({"filterGroups": [{"filters": [{"propertyName": "wagate_id", "operator": "EQ", "value": "msg:1"}]}],
               "properties": ["wagate_id"], "limit": 1})
    );
}
