use std::collections::BTreeMap;

use wagate_domain::template::{
    ButtonKind, HeaderFormat, TemplateButton, TemplateContent, TemplateHeader,
};
use wiremock::matchers::{basic_auth, body_string, header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

use super::*;

const SID: &str = "HXaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const ACCOUNT: &str = "AC00000000000000000000000000000000";

fn client(base: &str) -> TwilioTemplates {
    let mut config = TwilioContentConfig::new(
        TwilioSid::parse(ACCOUNT).expect("account sid"),
        Secret::new("token"),
    );
    config.api_base = base.to_owned();
    TwilioTemplates::new(config).expect("client")
}

fn listing(header: Option<TemplateHeader>, buttons: Vec<TemplateButton>) -> NewTemplate {
    NewTemplate {
        name: "listing_update".into(),
        language: "de".into(),
        category: TemplateCategory::Marketing,
        content: TemplateContent {
            body: "Hallo {{1}}, neues Objekt in {{2}}.".into(),
            header,
            buttons,
            cards: Vec::new(),
        },
        examples: BTreeMap::from([("1".into(), "Ana".into())]),
        header_sample: None,
    }
}

#[tokio::test]
async fn create_posts_the_content_then_submits_it() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/Content"))
        .and(basic_auth(ACCOUNT, "token"))
        .and(header("content-type", "application/json"))
        .and(body_string(
            r#"{"friendly_name":"listing_update","language":"de","types":{"twilio/media":{"body":"Hallo {{1}}, neues Objekt in {{2}}.","media":["https://cdn.example.com/p/1.jpg"]}},"variables":{"1":"Ana","2":"example_2"}}"#,
        ))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"sid": SID, "language": "de"})))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(format!("/v1/Content/{SID}/ApprovalRequests/whatsapp")))
        .and(basic_auth(ACCOUNT, "token"))
        .and(body_string(
            r#"{"category":"MARKETING","name":"listing_update"}"#,
        ))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({
            "name": "listing_update", "category": "MARKETING", "content_type": "twilio/media",
            "status": "received", "rejection_reason": "", "allow_category_change": true})))
        .expect(1)
        .mount(&server)
        .await;
    let template = listing(
        Some(TemplateHeader {
            format: HeaderFormat::Image,
            value: "https://cdn.example.com/p/1.jpg".into(),
        }),
        Vec::new(),
    );
    let submitted = client(&server.uri())
        .create(&template)
        .await
        .expect("created");
    assert_eq!(submitted.template.as_str(), SID);
    assert_eq!(submitted.status, ApprovalStatus::Pending);
}

#[tokio::test]
async fn a_failed_submission_keeps_the_content_as_unsubmitted_with_the_reason() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/Content"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"sid": SID})))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(format!("/v1/Content/{SID}/ApprovalRequests/whatsapp")))
        .respond_with(ResponseTemplate::new(400).set_body_json(
            json!({"code": 92009, "message": "already submitted for approval", "status": 400}),
        ))
        .mount(&server)
        .await;
    let submitted = client(&server.uri())
        .create(&listing(None, Vec::new()))
        .await
        .expect("content created");
    assert_eq!(submitted.status, ApprovalStatus::Unsubmitted);
    assert!(submitted.reason.contains("92009"), "{}", submitted.reason);
}

#[test]
fn each_shape_gets_its_content_type() {
    let kind = |template: &NewTemplate| {
        content_body(template).expect("body")["types"]
            .as_object()
            .expect("types")
            .keys()
            .next()
            .cloned()
            .expect("one type")
    };
    assert_eq!(kind(&listing(None, Vec::new())), "twilio/text");
    let quick = TemplateButton {
        kind: ButtonKind::QuickReply,
        text: "Ja".into(),
        value: String::new(),
    };
    let url = TemplateButton {
        kind: ButtonKind::Url,
        text: "Details".into(),
        value: "https://example.com/p/1".into(),
    };
    assert_eq!(
        kind(&listing(None, vec![quick.clone()])),
        "twilio/quick-reply"
    );
    assert_eq!(
        kind(&listing(None, vec![quick, url.clone()])),
        "twilio/call-to-action"
    );
    let image = TemplateHeader {
        format: HeaderFormat::Image,
        value: "https://cdn.example.com/p/1.jpg".into(),
    };
    assert_eq!(kind(&listing(Some(image), vec![url])), "twilio/card");
    let text_header = listing(
        Some(TemplateHeader {
            format: HeaderFormat::Text,
            value: "Neu".into(),
        }),
        Vec::new(),
    );
    assert!(matches!(
        content_body(&text_header),
        Err(TemplateApiError::Unsupported { .. })
    ));
}

#[tokio::test]
async fn list_follows_the_pages_and_maps_the_statuses() {
    let server = MockServer::start().await;
    let next = format!(
        "{}/v1/ContentAndApprovals?PageSize=50&Page=1&PageToken=PA1",
        server.uri()
    );
    Mock::given(method("GET"))
        .and(path("/v1/ContentAndApprovals"))
        .and(query_param("Page", "1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "contents": [{"sid": "HXbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb", "friendly_name": "b", "language": "en",
                "types": {"twilio/text": {"body": "Hi {{1}}."}},
                "approval_requests": {"name": "b", "category": "UTILITY", "status": "paused", "rejection_reason": ""}}],
            "meta": {"next_page_url": null}})))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1/ContentAndApprovals"))
        .and(query_param("PageSize", "50"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "contents": [{"sid": SID, "friendly_name": "a", "language": "de", "types": {},
                "approval_requests": {"name": "a", "category": "MARKETING", "status": "rejected",
                    "rejection_reason": "INVALID_FORMAT"}}],
            "meta": {"next_page_url": next}})))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    let listed = client(&server.uri()).list().await.expect("listed");
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0].status, Some(ApprovalStatus::Rejected));
    assert_eq!(listed[0].reason, "INVALID_FORMAT");
    assert_eq!(listed[1].status, Some(ApprovalStatus::Paused));
    assert_eq!(listed[1].body.as_deref(), Some("Hi {{1}}."));
}

#[tokio::test]
async fn throttling_and_server_errors_say_to_back_off() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("Retry-After", "7")
                .set_body_json(json!({"code": 20429, "message": "Too Many Requests"})),
        )
        .mount(&server)
        .await;
    let error = client(&server.uri()).list().await.expect_err("throttled");
    assert!(error.is_throttled());
    assert_eq!(error.retry_after(), Some(Duration::from_secs(7)));
}
