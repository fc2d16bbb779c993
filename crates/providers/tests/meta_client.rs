//! The Cloud API client against a local fake (wiremock on 127.0.0.1).

mod common;

use std::time::Duration;

use common::{fixture, refused_base_url, MESSAGE_ID};
use serde_json::Value;
use wagate_domain::{
    MediaKind, MessageId, MessageStatus, PhoneNumber, ReplyButton, RichReply, TemplateId,
    TemplateMedia, TwilioSid,
};
use wagate_providers::meta::{MetaClient, MetaConfig};
use wagate_providers::{
    OutboundContent, OutboundRequest, Provider, Secret, SendError, Sender, TemplateContent,
};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const TOKEN: &str = "EAAGm0PX4ZCpsBAsecret";
const PHONE_NUMBER_ID: &str = "109876543210987";
const MESSAGES_PATH: &str = "/v21.0/109876543210987/messages";

fn client(base: &str, timeout: Duration) -> MetaClient {
    let mut config = MetaConfig::new(Secret::new(TOKEN));
    config.api_base = base.to_owned();
    config.timeout = timeout;
    config.phone_number_ids.insert(
        PhoneNumber::parse("+15555550100").expect("number"),
        PHONE_NUMBER_ID.to_owned(),
    );
    MetaClient::new(config).expect("client")
}

fn text_request() -> OutboundRequest {
    OutboundRequest {
        message_id: MessageId::parse(MESSAGE_ID).expect("id"),
        from: Sender::MetaPhoneNumberId(PHONE_NUMBER_ID.into()),
        to: PhoneNumber::parse("+41790000001").expect("number"),
        content: OutboundContent::Text {
            body: "Thursday at 10:00 works. See you then!".into(),
        },
    }
}

fn template_request() -> OutboundRequest {
    OutboundRequest {
        message_id: MessageId::parse(MESSAGE_ID).expect("id"),
        // By number: looked up in phone_number_ids.
        from: Sender::Number(PhoneNumber::parse("+15555550100").expect("number")),
        to: PhoneNumber::parse("+41790000001").expect("number"),
        content: OutboundContent::Template(TemplateContent {
            media: Vec::new(),
            template: TemplateId::parse("appointment_reminder").expect("name"),
            language: Some("en_US".into()),
            // Out of order on purpose: positional parameters are sent in numeric order.
            variables: vec![
                ("2".into(), "Thu 26 Nov, 10:00".into()),
                ("1".into(), "Lea".into()),
            ],
            button_payloads: vec!["appt:7f3a:confirm".into()],
        }),
    }
}

/// The fixture body plus the callback data wagate always adds.
fn expected_json(fixture_name: &str) -> Value {
    let mut value: Value = serde_json::from_slice(&fixture(fixture_name)).expect("json");
    value["biz_opaque_callback_data"] = Value::String(MESSAGE_ID.into());
    value
}

async fn fake(status: u16, body: Vec<u8>) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(MESSAGES_PATH))
        .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
        .and(header("content-type", "application/json"))
        .respond_with(ResponseTemplate::new(status).set_body_raw(body, "application/json"))
        .mount(&server)
        .await;
    server
}

async fn sent_json(server: &MockServer) -> Value {
    let requests = server.received_requests().await.expect("recording on");
    assert_eq!(requests.len(), 1);
    serde_json::from_slice(&requests[0].body).expect("request body is JSON")
}

#[tokio::test]
async fn text_request_matches_fixture_and_200_is_parsed() {
    let server = fake(200, fixture("meta_send_response_text_200.json")).await;
    let accepted = client(&server.uri(), Duration::from_secs(5))
        .send(&text_request())
        .await
        .expect("accepted");
    assert_eq!(
        accepted.provider_message_id.as_str(),
        "wamid.HBgLNDE3OTAwMDAwMDEVAgASGBQzRUIwRjlFOEQ3QzZCNUE0OTM4MjcxAA=="
    );
    assert_eq!(accepted.status, None, "text sends carry no message_status");
    assert_eq!(accepted.http_status, 200);
    assert_eq!(
        sent_json(&server).await,
        expected_json("meta_send_request_text.json")
    );
}

#[tokio::test]
async fn template_request_matches_fixture_and_status_is_kept() {
    let server = fake(200, fixture("meta_send_response_template_200.json")).await;
    let accepted = client(&server.uri(), Duration::from_secs(5))
        .send(&template_request())
        .await
        .expect("accepted");
    assert_eq!(accepted.status, Some(MessageStatus::Accepted));
    assert_eq!(
        sent_json(&server).await,
        expected_json("meta_send_request_template.json")
    );
}

fn rich_request(rich: RichReply) -> OutboundRequest {
    OutboundRequest {
        content: OutboundContent::Rich(rich),
        ..text_request()
    }
}

/// Freeform media and interactive buttons, each against its fixture.
#[tokio::test]
async fn rich_requests_match_their_fixtures() {
    let image = RichReply::media(
        MediaKind::Image,
        "https://cdn.example.com/listings/42/living.jpg",
        "The flat at Seestrasse 12, living room".into(),
    )
    .expect("valid");
    let document = RichReply::media(
        MediaKind::Document,
        "https://cdn.example.com/listings/42/floorplan.pdf",
        String::new(),
    )
    .expect("valid");
    let button = |id: &str, title: &str| ReplyButton {
        id: id.into(),
        title: title.into(),
    };
    let buttons = RichReply::buttons(
        "Would you like to visit the flat on Thursday?".into(),
        vec![
            button("visit:42:yes", "Yes, Thursday"),
            button("visit:42:other", "Another day"),
            button("visit:42:no", "No, thanks"),
        ],
    )
    .expect("valid");
    for (rich, fixture_name) in [
        (image, "meta_send_request_image.json"),
        (document, "meta_send_request_document.json"),
        (buttons, "meta_send_request_interactive_buttons.json"),
    ] {
        let server = fake(200, fixture("meta_send_response_text_200.json")).await;
        client(&server.uri(), Duration::from_secs(5))
            .send(&rich_request(rich))
            .await
            .expect("accepted");
        assert_eq!(
            sent_json(&server).await,
            expected_json(fixture_name),
            "{fixture_name}"
        );
    }
}

/// Template header media and carousel cards' header media, each against its fixture.
#[tokio::test]
async fn template_media_and_carousel_cards_match_their_fixtures() {
    let media = |card, kind, url| TemplateMedia::new(card, kind, url).expect("valid");
    let header = TemplateContent {
        template: TemplateId::parse("listing_update").expect("name"),
        language: Some("de".into()),
        variables: vec![("1".into(), "Ana".into()), ("2".into(), "Mitte".into())],
        button_payloads: vec![],
        media: vec![media(
            None,
            MediaKind::Image,
            "https://cdn.example.com/p/1.jpg",
        )],
    };
    let carousel = TemplateContent {
        template: TemplateId::parse("listing_carousel").expect("name"),
        language: Some("en_US".into()),
        variables: vec![("1".into(), "Lea".into())],
        button_payloads: vec![],
        media: vec![
            media(
                Some(0),
                MediaKind::Image,
                "https://cdn.example.com/listings/42.jpg",
            ),
            media(
                Some(1),
                MediaKind::Video,
                "https://cdn.example.com/listings/43/tour.mp4",
            ),
        ],
    };
    for (template, fixture_name) in [
        (header, "meta_send_request_template_media.json"),
        (carousel, "meta_send_request_template_carousel.json"),
    ] {
        let server = fake(200, fixture("meta_send_response_template_200.json")).await;
        let request = OutboundRequest {
            content: OutboundContent::Template(template),
            ..template_request()
        };
        client(&server.uri(), Duration::from_secs(5))
            .send(&request)
            .await
            .expect("accepted");
        assert_eq!(
            sent_json(&server).await,
            expected_json(fixture_name),
            "{fixture_name}"
        );
    }
}

#[tokio::test]
async fn a_template_named_by_name_and_language_is_sent_as_both() {
    let server = fake(200, fixture("meta_send_response_template_200.json")).await;
    let mut request = template_request();
    if let OutboundContent::Template(t) = &mut request.content {
        t.template = TemplateId::parse("appointment_reminder@en_US").expect("id");
        t.language = Some("de".into());
    }
    client(&server.uri(), Duration::from_secs(5))
        .send(&request)
        .await
        .expect("accepted");
    let sent = sent_json(&server).await;
    assert_eq!(sent["template"]["name"], "appointment_reminder");
    assert_eq!(sent["template"]["language"]["code"], "en_US");
}

#[tokio::test]
async fn named_parameters_and_pacing_status() {
    let response = br#"{"messaging_product":"whatsapp","contacts":[{"input":"+41790000001","wa_id":"41790000001"}],"messages":[{"id":"wamid.HELD=","message_status":"held_for_quality_assessment"}]}"#;
    let server = fake(200, response.to_vec()).await;
    let mut request = template_request();
    if let OutboundContent::Template(t) = &mut request.content {
        t.variables = vec![("first_name".into(), "Lea".into())];
        t.button_payloads.clear();
    }
    let accepted = client(&server.uri(), Duration::from_secs(5))
        .send(&request)
        .await
        .expect("accepted");
    assert_eq!(
        accepted.status,
        Some(MessageStatus::Other("held_for_quality_assessment".into()))
    );
    let sent = sent_json(&server).await;
    assert_eq!(
        sent["template"]["components"],
        serde_json::json!([{"type":"body","parameters":[{"type":"text","parameter_name":"first_name","text":"Lea"}]}])
    );
}

#[tokio::test]
async fn every_error_fixture_keeps_code_details_and_trace() {
    let cases = [
        (
            "meta_send_error_100.json",
            400,
            100,
            Some("not a valid phone number"),
            "AbC1dEf2GhI3jKl4MnO5pQr",
        ),
        (
            "meta_send_error_130429.json",
            429,
            130429,
            Some("throughput"),
            "Xy9Zw8Vu7Ts6Rq5Po4Nm3Lk",
        ),
        (
            "meta_send_error_190.json",
            401,
            190,
            None,
            "Qw1Er2Ty3Ui4Op5As6Df7Gh",
        ),
    ];
    for (file, status, code, details_text, trace) in cases {
        let server = fake(status, fixture(file)).await;
        let error = client(&server.uri(), Duration::from_secs(5))
            .send(&text_request())
            .await
            .expect_err(file);
        assert_eq!(
            (error.code(), error.http_status()),
            (Some(code), Some(status)),
            "{file}"
        );
        assert!(
            !error.is_transport() && !error.may_have_been_sent(),
            "{file}"
        );
        match &error {
            SendError::Rejected {
                details,
                reference,
                message,
                ..
            } => {
                assert_eq!(reference.as_deref(), Some(trace), "{file}");
                assert!(!message.is_empty(), "{file}");
                match details_text {
                    Some(text) => assert!(
                        details.as_deref().is_some_and(|d| d.contains(text)),
                        "{file}: {details:?}"
                    ),
                    None => assert_eq!(details, &None, "{file}"),
                }
            }
            other => panic!("{file}: {other:?}"),
        }
    }
}

#[tokio::test]
async fn timeout_and_connection_refused() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(5)))
        .mount(&server)
        .await;
    let error = client(&server.uri(), Duration::from_millis(200))
        .send(&text_request())
        .await
        .expect_err("times out");
    assert!(
        error.is_timeout() && error.is_transport() && error.may_have_been_sent(),
        "{error:?}"
    );

    let error = client(&refused_base_url(), Duration::from_secs(2))
        .send(&text_request())
        .await
        .expect_err("refused");
    assert!(matches!(error, SendError::Connect { .. }), "{error:?}");
    assert!(error.is_transport() && !error.may_have_been_sent());
}

#[tokio::test]
async fn requests_meta_cannot_express_are_refused_locally() {
    let meta = client(&refused_base_url(), Duration::from_secs(1));
    let mut request = text_request();
    request.from = Sender::Number(PhoneNumber::parse("+15555550199").expect("number"));
    assert!(
        matches!(
            meta.send(&request).await,
            Err(SendError::InvalidRequest { .. })
        ),
        "unknown sender number"
    );
    request.from = Sender::TwilioMessagingService(
        TwilioSid::parse("MG8e27c0b4d91f3a5c6e0d2b7f41a9c853").expect("sid"),
    );
    assert!(matches!(
        meta.send(&request).await,
        Err(SendError::InvalidRequest { .. })
    ));
    request.from = Sender::MetaPhoneNumberId("../admin".into());
    assert!(
        matches!(
            meta.send(&request).await,
            Err(SendError::InvalidRequest { .. })
        ),
        "path injection"
    );
    let mut request = template_request();
    if let OutboundContent::Template(t) = &mut request.content {
        t.language = None;
    }
    assert!(
        matches!(
            meta.send(&request).await,
            Err(SendError::InvalidRequest { .. })
        ),
        "no language"
    );
}

#[test]
fn secrets_stay_out_of_debug_output() {
    let client = client("http://127.0.0.1:9", Duration::from_secs(1));
    let debug = format!("{client:?}");
    assert!(!debug.contains(TOKEN), "{debug}");
}

#[tokio::test]
async fn a_wa_id_other_than_the_number_is_reported_as_the_recipient() {
    let server = fake(200, fixture("meta_send_response_wa_id_differs_200.json")).await;
    let accepted = client(&server.uri(), Duration::from_secs(5))
        .send(&text_request())
        .await
        .expect("accepted");
    assert_eq!(
        accepted.recipient.map(|r| r.to_string()).as_deref(),
        Some("+551188887777")
    );
    // The plain response names the number itself.
    let server = fake(200, fixture("meta_send_response_text_200.json")).await;
    let accepted = client(&server.uri(), Duration::from_secs(5))
        .send(&text_request())
        .await
        .expect("accepted");
    assert_eq!(
        accepted.recipient.map(|r| r.to_string()).as_deref(),
        Some("+41790000001")
    );
}
