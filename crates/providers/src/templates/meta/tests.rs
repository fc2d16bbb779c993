use std::collections::BTreeMap;

use wagate_domain::template::{
    ButtonKind, HeaderFormat, TemplateButton, TemplateCard, TemplateContent, TemplateHeader,
};
use wiremock::matchers::{
    body_bytes, body_string, body_string_contains, header, method, path, query_param,
};
use wiremock::{Mock, MockServer, ResponseTemplate};

use super::*;
use crate::templates::{sample_max_bytes, MediaSample};

fn client(base: &str) -> MetaTemplates {
    MetaTemplates::new(MetaTemplateConfig {
        api_base: base.to_owned(),
        api_version: "v21.0".into(),
        waba_id: "102290129340398".into(),
        access_token: Secret::new("meta-token"),
        timeout: Duration::from_secs(5),
        app_id: Some(APP_ID.into()),
    })
    .expect("client")
}

const APP_ID: &str = "1234567890";
const SESSION: &str = "upload:MTphdHRhY2htZW50OjQ5ZGQ?sig=ARZ";
const HANDLE: &str = "4::aW1hZ2UvanBlZw==:ARa";

/// A PNG's first bytes: enough to be a sample the fakes can compare.
fn png() -> MediaSample {
    MediaSample {
        file_name: "p1.png".into(),
        content_type: "image/png".into(),
        bytes: b"\x89PNG\r\n\x1a\nsample".to_vec(),
    }
}

/// The two upload steps on `server`, each expected `times`.
async fn mount_upload(server: &MockServer, times: u64) {
    Mock::given(method("POST"))
        .and(path(format!("/v21.0/{APP_ID}/uploads")))
        .and(header("authorization", "Bearer meta-token"))
        .and(query_param("file_name", "p1.png"))
        .and(query_param("file_length", png().bytes.len().to_string()))
        .and(query_param("file_type", "image/png"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": SESSION})))
        .expect(times)
        .mount(server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v21.0/upload:MTphdHRhY2htZW50OjQ5ZGQ"))
        .and(query_param("sig", "ARZ"))
        .and(header("authorization", "OAuth meta-token"))
        .and(header("file_offset", "0"))
        .and(body_bytes(png().bytes))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"h": HANDLE})))
        .expect(times)
        .mount(server)
        .await;
}

fn template(content: TemplateContent) -> NewTemplate {
    NewTemplate {
        name: "listing_update".into(),
        language: "de".into(),
        category: TemplateCategory::Marketing,
        content,
        examples: BTreeMap::from([("1".into(), "Ana".into()), ("2".into(), "Mitte".into())]),
        header_sample: None,
    }
}

#[tokio::test]
async fn create_uploads_the_header_sample_and_posts_the_components_with_its_handle() {
    let server = MockServer::start().await;
    mount_upload(&server, 1).await;
    Mock::given(method("POST"))
        .and(path("/v21.0/102290129340398/message_templates"))
        .and(header("authorization", "Bearer meta-token"))
        .and(body_string(
            r#"{"category":"MARKETING","components":[{"example":{"header_handle":["4::aW1hZ2UvanBlZw==:ARa"]},"format":"IMAGE","type":"HEADER"},{"example":{"body_text":[["Ana","Mitte"]]},"text":"Hallo {{1}}, neues Objekt in {{2}}.","type":"BODY"},{"buttons":[{"phone_number":"+4930123456","text":"Anrufen","type":"PHONE_NUMBER"}],"type":"BUTTONS"}],"language":"de","name":"listing_update","parameter_format":"positional"}"#,
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"id": "572279198452421", "status": "PENDING", "category": "MARKETING"}),
        ))
        .expect(1)
        .mount(&server)
        .await;
    let mut new = template(TemplateContent {
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
    });
    new.header_sample = Some(png());
    let submitted = client(&server.uri()).create(&new).await.expect("created");
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
    let handles = Handles {
        header: None,
        cards: vec![Some("h1".into()), Some("h2".into())],
    };
    let body = create_body(
        &template(TemplateContent {
            body: "Neue Objekte für {{1}}.".into(),
            header: None,
            buttons: Vec::new(),
            cards: vec![card.clone(), card],
        }),
        &handles,
    );
    let carousel = &body["components"][1];
    assert_eq!(carousel["type"], "CAROUSEL");
    assert_eq!(carousel["cards"].as_array().expect("cards").len(), 2);
    assert_eq!(carousel["cards"][0]["components"][0]["format"], "IMAGE");
    // Each card's header carries its own upload handle.
    assert_eq!(
        carousel["cards"][1]["components"][0]["example"]["header_handle"][0],
        "h2"
    );
    assert_eq!(
        carousel["cards"][0]["components"][2]["buttons"][0]["type"],
        "QUICK_REPLY"
    );
}

#[test]
fn named_placeholders_use_named_examples() {
    let body = create_body(
        &template(TemplateContent {
            body: "Hallo {{first_name}}, willkommen.".into(),
            header: None,
            buttons: Vec::new(),
            cards: Vec::new(),
        }),
        &Handles::default(),
    );
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

fn image_header(url: &str) -> TemplateContent {
    TemplateContent {
        body: "Hallo {{1}}, neues Objekt in {{2}}.".into(),
        header: Some(TemplateHeader {
            format: HeaderFormat::Image,
            value: url.into(),
        }),
        buttons: Vec::new(),
        cards: Vec::new(),
    }
}

/// Without an app id a media-header template is refused naming the setting, and neither the
/// upload nor the template API hears of it.
#[tokio::test]
async fn a_media_header_without_an_app_id_is_refused_before_anything_is_sent() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(500))
        .expect(0)
        .mount(&server)
        .await;
    let client = MetaTemplates::new(MetaTemplateConfig {
        api_base: server.uri(),
        api_version: "v21.0".into(),
        waba_id: "102290129340398".into(),
        access_token: Secret::new("meta-token"),
        timeout: Duration::from_secs(5),
        app_id: None,
    })
    .expect("client");
    let mut new = template(image_header("https://cdn.example.com/p/1.jpg"));
    new.header_sample = Some(png());
    let error = client.create(&new).await.expect_err("refused");
    assert!(
        matches!(
            error,
            TemplateApiError::NotConfigured {
                setting: "WAGATE_META_APP_ID",
                ..
            }
        ),
        "{error:?}"
    );
    assert!(error.to_string().contains("WAGATE_META_APP_ID"), "{error}");
}

/// Without a header file the sample is fetched from the header's URL (here the fake's), and its
/// bytes are what the upload carries.
#[tokio::test]
async fn the_sample_is_fetched_from_the_header_url_when_no_file_is_given() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/media/p1.png"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("content-type", "image/png")
                .set_body_bytes(png().bytes),
        )
        .expect(1)
        .mount(&server)
        .await;
    mount_upload(&server, 1).await;
    Mock::given(method("POST"))
        .and(path("/v21.0/102290129340398/message_templates"))
        .and(body_string_contains(HANDLE))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"id": "1", "status": "PENDING"})),
        )
        .expect(1)
        .mount(&server)
        .await;
    let url = format!("{}/media/p1.png", server.uri());
    client(&server.uri())
        .create(&template(image_header(&url)))
        .await
        .expect("created");
}

/// Media of the wrong kind, or larger than allowed, is refused before any upload.
#[tokio::test]
async fn a_fetched_sample_of_the_wrong_type_or_size_is_refused() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/media/page.html"))
        .respond_with(
            ResponseTemplate::new(200).set_body_raw("<html></html>", "text/html; charset=utf-8"),
        )
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/media/huge.jpg"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("content-type", "image/jpeg")
                .set_body_bytes(vec![0_u8; sample_max_bytes(HeaderFormat::Image) + 1]),
        )
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(500))
        .expect(0)
        .mount(&server)
        .await;
    let client = client(&server.uri());
    for (file, expected) in [("page.html", "text/html"), ("huge.jpg", "larger than")] {
        let url = format!("{}/media/{file}", server.uri());
        let error = client
            .create(&template(image_header(&url)))
            .await
            .expect_err("refused");
        assert!(matches!(error, TemplateApiError::Media { .. }), "{error:?}");
        assert!(error.to_string().contains(expected), "{error}");
    }
    // A header file of a type the header does not take is refused the same way.
    let mut new = template(image_header("https://cdn.example.com/p/1.jpg"));
    new.header_sample = Some(MediaSample {
        content_type: "video/mp4".into(),
        ..png()
    });
    let error = client.create(&new).await.expect_err("refused");
    assert!(error.to_string().contains("video/mp4"), "{error}");
}

/// Meta's refusal of the upload (its JSON error) is the error, and no template is created.
#[tokio::test]
async fn a_refused_upload_stops_the_creation_with_metas_message() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(format!("/v21.0/{APP_ID}/uploads")))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({"error": {
            "message": "(#100) Invalid parameter", "type": "OAuthException", "code": 100}})))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v21.0/102290129340398/message_templates"))
        .respond_with(ResponseTemplate::new(200))
        .expect(0)
        .mount(&server)
        .await;
    let mut new = template(image_header("https://cdn.example.com/p/1.jpg"));
    new.header_sample = Some(png());
    let error = client(&server.uri())
        .create(&new)
        .await
        .expect_err("refused");
    assert_eq!(
        error,
        TemplateApiError::Refused {
            provider: "meta",
            http_status: 400,
            code: Some(100),
            message: "(#100) Invalid parameter".into(),
        }
    );
}

/// A session id that would leave the configured base's path is not followed.
#[tokio::test]
async fn a_session_id_that_is_not_an_upload_id_is_not_followed() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(format!("/v21.0/{APP_ID}/uploads")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": "../../evil"})))
        .mount(&server)
        .await;
    let mut new = template(image_header("https://cdn.example.com/p/1.jpg"));
    new.header_sample = Some(png());
    let error = client(&server.uri())
        .create(&new)
        .await
        .expect_err("refused");
    assert!(
        matches!(error, TemplateApiError::Unexpected { .. }),
        "{error:?}"
    );
    assert_eq!(server.received_requests().await.expect("recorded").len(), 1);
}
