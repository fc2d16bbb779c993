use std::collections::BTreeMap;

use wagate_domain::template::{
    ButtonKind, HeaderFormat, TemplateButton, TemplateCard, TemplateContent, TemplateHeader,
};
use wiremock::matchers::{body_string, header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

use super::*;

fn client(base: &str) -> MetaTemplates {
    MetaTemplates::new(MetaTemplateConfig {
        api_base: base.to_owned(),
        api_version: "v21.0".into(),
        waba_id: "102290129340398".into(),
        access_token: Secret::new("meta-token"),
        timeout: Duration::from_secs(5),
    })
    .expect("client")
}

fn template(content: TemplateContent) -> NewTemplate {
    NewTemplate {
        name: "listing_update".into(),
        language: "de".into(),
        category: TemplateCategory::Marketing,
        content,
        examples: BTreeMap::from([("1".into(), "Ana".into()), ("2".into(), "Mitte".into())]),
    }
}

#[tokio::test]
async fn create_posts_the_components_to_the_business_account() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v21.0/102290129340398/message_templates"))
        .and(header("authorization", "Bearer meta-token"))
        .and(body_string(
            r#"{"category":"MARKETING","components":[{"example":{"header_handle":["https://cdn.example.com/p/1.jpg"]},"format":"IMAGE","type":"HEADER"},{"example":{"body_text":[["Ana","Mitte"]]},"text":"Hallo {{1}}, neues Objekt in {{2}}.","type":"BODY"},{"buttons":[{"phone_number":"+4930123456","text":"Anrufen","type":"PHONE_NUMBER"}],"type":"BUTTONS"}],"language":"de","name":"listing_update","parameter_format":"positional"}"#,
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"id": "572279198452421", "status": "PENDING", "category": "MARKETING"}),
        ))
        .expect(1)
        .mount(&server)
        .await;
    let submitted = client(&server.uri())
        .create(&template(TemplateContent {
            body: "Hallo {{1}}, neues Objekt in {{2}}.".into(),
            header: Some(TemplateHeader {
                format: HeaderFormat::Image,
                value: "https://cdn.example.com/p/1.jpg".into(),
            }),
            buttons: vec![TemplateButton {
                kind: ButtonKind::PhoneNumber,
                text: "Anrufen".into(),
                value: "+4930123456".into(),
            }],
            cards: Vec::new(),
        }))
        .await
        .expect("created");
    assert_eq!(submitted.template.as_str(), "listing_update@de");
    assert_eq!(submitted.provider_ref, "572279198452421");
    assert_eq!(submitted.status, ApprovalStatus::Pending);
}

#[test]
fn a_carousel_becomes_a_carousel_component() {
    let card = TemplateCard {
        header: TemplateHeader {
            format: HeaderFormat::Image,
            value: "https://cdn.example.com/p/1.jpg".into(),
        },
        body: "Objekt in {{2}}, drei Zimmer.".into(),
        buttons: vec![TemplateButton {
            kind: ButtonKind::QuickReply,
            text: "Interesse".into(),
            value: String::new(),
        }],
    };
    let body = create_body(&template(TemplateContent {
        body: "Neue Objekte für {{1}}.".into(),
        header: None,
        buttons: Vec::new(),
        cards: vec![card.clone(), card],
    }));
    let carousel = &body["components"][1];
    assert_eq!(carousel["type"], "CAROUSEL");
    assert_eq!(carousel["cards"].as_array().expect("cards").len(), 2);
    assert_eq!(carousel["cards"][0]["components"][0]["format"], "IMAGE");
    assert_eq!(
        carousel["cards"][0]["components"][2]["buttons"][0]["type"],
        "QUICK_REPLY"
    );
}

#[test]
fn named_placeholders_use_named_examples() {
    let body = create_body(&template(TemplateContent {
        body: "Hallo {{first_name}}, willkommen.".into(),
        header: None,
        buttons: Vec::new(),
        cards: Vec::new(),
    }));
    assert_eq!(body["parameter_format"], "named");
    assert_eq!(
        body["components"][0]["example"]["body_text_named_params"][0]["param_name"],
        "first_name"
    );
}

#[tokio::test]
async fn list_reads_every_page_and_keys_by_name_and_language() {
    let server = MockServer::start().await;
    let next = format!(
        "{}/v21.0/102290129340398/message_templates?fields=name&after=QVFI",
        server.uri()
    );
    Mock::given(method("GET"))
        .and(path("/v21.0/102290129340398/message_templates"))
        .and(query_param("after", "QVFI"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "data": [{"name": "listing_update", "language": "en_US", "status": "PAUSED", "id": "2"}],
            "paging": {"cursors": {"before": "a", "after": "b"}}})))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v21.0/102290129340398/message_templates"))
        .and(query_param("fields", LIST_FIELDS))
        .and(header("authorization", "Bearer meta-token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "data": [{"name": "listing_update", "language": "de", "status": "REJECTED",
                "category": "MARKETING", "id": "1", "rejected_reason": "INVALID_FORMAT"}],
            "paging": {"next": next}})))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    let listed = client(&server.uri()).list().await.expect("listed");
    let ids: Vec<&str> = listed.iter().map(|t| t.template.as_str()).collect();
    assert_eq!(ids, ["listing_update@de", "listing_update@en_US"]);
    assert_eq!(listed[0].status, Some(ApprovalStatus::Rejected));
    assert_eq!(listed[0].reason, "INVALID_FORMAT");
    assert_eq!(listed[1].status, Some(ApprovalStatus::Paused));
}

#[tokio::test]
async fn a_next_page_elsewhere_is_not_followed() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "data": [], "paging": {"next": "https://evil.example.com/steal"}})))
        .mount(&server)
        .await;
    let error = client(&server.uri()).list().await.expect_err("refused");
    assert!(error.to_string().contains("away from"), "{error}");
}

#[test]
fn meta_status_words_map_to_sendability() {
    assert_eq!(meta_status("APPROVED"), Some(ApprovalStatus::Approved));
    assert_eq!(meta_status("PAUSED"), Some(ApprovalStatus::Paused));
    assert_eq!(
        meta_status("PENDING_DELETION"),
        Some(ApprovalStatus::Disabled)
    );
    assert_eq!(meta_status("FLAGGED"), None);
}
