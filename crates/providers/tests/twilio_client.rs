//! The Twilio Messages API client against a local fake (wiremock on 127.0.0.1).

mod common;

use std::time::Duration;

use base64::Engine as _;
use common::{fixture, fixture_str, refused_base_url, MESSAGE_ID};
use wagate_domain::{
    MediaKind, MessageId, MessageStatus, PhoneNumber, ReplyButton, RichReply, TemplateId, TwilioSid,
};
use wagate_providers::twilio::{TwilioClient, TwilioConfig};
use wagate_providers::{
    OutboundContent, OutboundRequest, Provider, Secret, SendError, Sender, TemplateContent,
};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const ACCOUNT: &str = "AC3f9d2c41b7e85a06d1c4f0e9a2b7d315";
const TOKEN: &str = "f3b9c0d1e2a34b5c6d7e8f90a1b2c3d4";
const MESSAGES_PATH: &str = "/2010-04-01/Accounts/AC3f9d2c41b7e85a06d1c4f0e9a2b7d315/Messages.json";

fn client(base: &str, timeout: Duration) -> TwilioClient {
    let mut config = TwilioConfig::new(
        TwilioSid::parse(ACCOUNT).expect("sid"),
        Secret::new(TOKEN),
        "https://hub.example.com/",
    );
    config.api_base = base.to_owned();
    config.timeout = timeout;
    TwilioClient::new(config).expect("client")
}

fn template_request() -> OutboundRequest {
    OutboundRequest {
        message_id: MessageId::parse(MESSAGE_ID).expect("id"),
        from: Sender::Number(PhoneNumber::parse("+15555550100").expect("number")),
        to: PhoneNumber::parse("+41790000001").expect("number"),
        content: OutboundContent::Template(TemplateContent {
            media: Vec::new(),
            template: TemplateId::parse("HX6c1d84f2a9e07b35d4c8e1f0a2b6937d").expect("template"),
            language: None,
            variables: vec![
                ("1".into(), "Lea".into()),
                ("2".into(), "Thu 26 Nov, 10:00".into()),
            ],
            button_payloads: vec![],
        }),
    }
}

fn freeform_request() -> OutboundRequest {
    OutboundRequest {
        message_id: MessageId::parse(MESSAGE_ID).expect("id"),
        from: Sender::TwilioMessagingService(
            TwilioSid::parse("MG8e27c0b4d91f3a5c6e0d2b7f41a9c853").expect("sid"),
        ),
        to: PhoneNumber::parse("+41790000001").expect("number"),
        content: OutboundContent::Text {
            body: "Thursday at 10:00 works. See you then!".into(),
        },
    }
}

/// The fixture's StatusCallback plus the `?message_id=` wagate adds (encoded as a value).
fn expected_body(fixture_name: &str) -> String {
    format!("{}%3Fmessage_id%3D{MESSAGE_ID}", fixture_str(fixture_name))
}

async fn fake(status: u16, body: Vec<u8>) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(MESSAGES_PATH))
        .respond_with(ResponseTemplate::new(status).set_body_raw(body, "application/json"))
        .mount(&server)
        .await;
    server
}

#[tokio::test]
async fn template_request_is_byte_exact_and_201_is_parsed() {
    let server = fake(201, fixture("twilio_message_create_201.json")).await;
    let accepted = client(&server.uri(), Duration::from_secs(5))
        .send(&template_request())
        .await
        .expect("accepted");
    assert_eq!(
        accepted.provider_message_id.as_str(),
        "SM9a4e1c7d3b2f8065e1d4c9b7a3f20e61"
    );
    assert_eq!(accepted.status, Some(MessageStatus::Queued));
    assert_eq!(accepted.http_status, 201);

    let requests = server.received_requests().await.expect("recording on");
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(
        String::from_utf8(request.body.clone()).expect("utf-8"),
        expected_body("twilio_api_request_send_template.body")
    );
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{ACCOUNT}:{TOKEN}"));
    assert_eq!(
        request
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok()),
        Some(format!("Basic {basic}").as_str())
    );
    assert_eq!(
        request
            .headers
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("application/x-www-form-urlencoded")
    );
    // ContentVariables decodes to the JSON string Twilio expects.
    let form: Vec<(String, String)> = url::form_urlencoded::parse(&request.body)
        .into_owned()
        .collect();
    let vars = form
        .iter()
        .find(|(k, _)| k == "ContentVariables")
        .map(|(_, v)| v.as_str());
    assert_eq!(vars, Some(r#"{"1":"Lea","2":"Thu 26 Nov, 10:00"}"#));
    let callback = form
        .iter()
        .find(|(k, _)| k == "StatusCallback")
        .map(|(_, v)| v.as_str());
    assert_eq!(
        callback,
        Some(
            format!("https://hub.example.com/webhooks/twilio/status?message_id={MESSAGE_ID}")
                .as_str()
        )
    );
}

#[tokio::test]
async fn freeform_request_via_messaging_service_is_byte_exact() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(MESSAGES_PATH))
        .and(header("accept", "application/json"))
        .and(wiremock::matchers::body_string(expected_body(
            "twilio_api_request_send_freeform.body",
        )))
        .respond_with(ResponseTemplate::new(201).set_body_raw(
            fixture("twilio_message_create_201.json"),
            "application/json",
        ))
        .expect(1)
        .mount(&server)
        .await;
    let accepted = client(&server.uri(), Duration::from_secs(5))
        .send(&freeform_request())
        .await
        .expect("accepted");
    assert_eq!(accepted.http_status, 201);
}

/// Freeform media: the caption as `Body`, the link as `MediaUrl`; buttons are refused locally
/// (Twilio sends them only from a Content resource).
#[tokio::test]
async fn media_request_is_byte_exact_and_buttons_are_refused() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(MESSAGES_PATH))
        .and(wiremock::matchers::body_string(expected_body(
            "twilio_api_request_send_media.body",
        )))
        .respond_with(ResponseTemplate::new(201).set_body_raw(
            fixture("twilio_message_create_201.json"),
            "application/json",
        ))
        .expect(1)
        .mount(&server)
        .await;
    let client = client(&server.uri(), Duration::from_secs(5));
    let mut request = freeform_request();
    request.content = OutboundContent::Rich(
        RichReply::media(
            MediaKind::Image,
            "https://cdn.example.com/listings/42/living.jpg",
            "The flat at Seestrasse 12, living room".into(),
        )
        .expect("valid"),
    );
    client.send(&request).await.expect("accepted");
    request.content = OutboundContent::Rich(
        RichReply::buttons(
            "Visit on Thursday?".into(),
            vec![ReplyButton {
                id: "yes".into(),
                title: "Yes".into(),
            }],
        )
        .expect("valid"),
    );
    let error = client.send(&request).await.expect_err("refused");
    assert!(
        matches!(error, SendError::InvalidRequest { .. }),
        "{error:?}"
    );
}

#[tokio::test]
async fn every_error_fixture_keeps_code_status_and_message() {
    let cases = [
        (
            "twilio_error_21211.json",
            400,
            21211,
            "Invalid 'To' Phone Number",
        ),
        (
            "twilio_error_63007.json",
            400,
            63007,
            "could not find a Channel",
        ),
        ("twilio_error_21656.json", 400, 21656, "ContentVariables"),
        ("twilio_error_20429.json", 429, 20429, "Too Many Requests"),
    ];
    for (file, status, code, text) in cases {
        let server = fake(status, fixture(file)).await;
        let error = client(&server.uri(), Duration::from_secs(5))
            .send(&template_request())
            .await
            .expect_err(file);
        assert_eq!(error.code(), Some(code), "{file}");
        assert_eq!(error.http_status(), Some(status), "{file}");
        assert!(!error.is_transport(), "{file}");
        assert!(!error.may_have_been_sent(), "{file}");
        match &error {
            SendError::Rejected {
                message, reference, ..
            } => {
                assert!(message.contains(text), "{file}: {message}");
                assert_eq!(
                    reference.as_deref(),
                    Some(format!("https://www.twilio.com/docs/errors/{code}").as_str())
                );
            }
            other => panic!("{file}: {other:?}"),
        }
        assert!(error.to_string().contains(&code.to_string()), "{error}");
    }
}

#[tokio::test]
async fn rfc9457_and_non_json_errors() {
    let problem = br#"{"type":"https://www.twilio.com/docs/errors/20003","title":"Authenticate","status":401,"code":20003,"detail":"Your AccountSid or AuthToken was incorrect.","instance":"/x"}"#;
    let server = fake(401, problem.to_vec()).await;
    let error = client(&server.uri(), Duration::from_secs(5))
        .send(&template_request())
        .await
        .expect_err("401");
    assert_eq!(
        (error.code(), error.http_status()),
        (Some(20003), Some(401))
    );
    assert!(
        error.to_string().contains("AuthToken was incorrect"),
        "{error}"
    );

    let server = fake(502, b"<html>Bad Gateway</html>".to_vec()).await;
    let error = client(&server.uri(), Duration::from_secs(5))
        .send(&template_request())
        .await
        .expect_err("502");
    assert_eq!((error.code(), error.http_status()), (None, Some(502)));
    assert!(error.to_string().contains("Bad Gateway"), "{error}");
}

#[tokio::test]
async fn garbled_success_is_in_doubt() {
    let server = fake(201, b"{\"nope\":true}".to_vec()).await;
    let error = client(&server.uri(), Duration::from_secs(5))
        .send(&template_request())
        .await
        .expect_err("no sid");
    assert!(
        matches!(
            error,
            SendError::UnexpectedResponse {
                http_status: 201,
                ..
            }
        ),
        "{error:?}"
    );
    assert!(error.may_have_been_sent());
}

#[tokio::test]
async fn timeout_is_transport_and_in_doubt() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(201).set_delay(Duration::from_secs(5)))
        .mount(&server)
        .await;
    let started = std::time::Instant::now();
    let error = client(&server.uri(), Duration::from_millis(200))
        .send(&template_request())
        .await
        .expect_err("times out");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "the timeout applied"
    );
    assert!(error.is_timeout(), "{error:?}");
    assert!(error.is_transport());
    assert!(error.may_have_been_sent());
    assert_eq!((error.code(), error.http_status()), (None, None));
}

#[tokio::test]
async fn connection_refused_is_transport_and_not_sent() {
    let error = client(&refused_base_url(), Duration::from_secs(2))
        .send(&template_request())
        .await
        .expect_err("refused");
    assert!(matches!(error, SendError::Connect { .. }), "{error:?}");
    assert!(error.is_transport());
    assert!(!error.is_timeout());
    assert!(!error.may_have_been_sent());
    assert!(
        !error.to_string().contains(ACCOUNT),
        "no URL in the message: {error}"
    );
}

#[tokio::test]
async fn requests_twilio_cannot_express_are_refused_locally() {
    let twilio = client(&refused_base_url(), Duration::from_secs(1));
    let mut request = template_request();
    request.from = Sender::MetaPhoneNumberId("109876543210987".into());
    assert!(matches!(
        twilio.send(&request).await,
        Err(SendError::InvalidRequest { .. })
    ));
    let mut request = template_request();
    if let OutboundContent::Template(t) = &mut request.content {
        t.template = TemplateId::parse("appointment_reminder").expect("name");
    }
    assert!(matches!(
        twilio.send(&request).await,
        Err(SendError::InvalidRequest { .. })
    ));
}

#[test]
fn secrets_stay_out_of_debug_output() {
    let client = client("http://127.0.0.1:9", Duration::from_secs(1));
    let debug = format!("{client:?}");
    assert!(!debug.contains(TOKEN), "{debug}");
    assert!(debug.contains("***"));
}

#[test]
fn configuration_is_validated() {
    let config = |sid: &str, base: &str| {
        let mut c = TwilioConfig::new(
            TwilioSid::parse(sid).expect("sid"),
            Secret::new(TOKEN),
            "https://hub.example.com",
        );
        c.api_base = base.to_owned();
        c
    };
    assert!(TwilioClient::new(config(
        "SM9a4e1c7d3b2f8065e1d4c9b7a3f20e61",
        "https://api.twilio.com"
    ))
    .is_err());
    assert!(TwilioClient::new(config(ACCOUNT, "api.twilio.com")).is_err());
    let mut zero = config(ACCOUNT, "https://api.twilio.com");
    zero.timeout = Duration::ZERO;
    assert!(TwilioClient::new(zero).is_err());
}
