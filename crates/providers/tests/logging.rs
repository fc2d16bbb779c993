//! Sends are traced with ids and outcomes, never with secrets or message text.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{fixture, MESSAGE_ID};
use wagate_domain::{MessageId, PhoneNumber, TwilioSid};
use wagate_providers::meta::{MetaClient, MetaConfig};
use wagate_providers::twilio::{TwilioClient, TwilioConfig};
use wagate_providers::{OutboundContent, OutboundRequest, Provider, Secret, Sender};
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

const TWILIO_TOKEN: &str = "f3b9c0d1e2a34b5c6d7e8f90a1b2c3d4";
const META_TOKEN: &str = "EAAGm0PX4ZCpsBAsecret";
const TEXT: &str = "my secret appointment details";

#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Write for Buffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .expect("not poisoned")
            .extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn request(from: Sender) -> OutboundRequest {
    OutboundRequest {
        message_id: MessageId::parse(MESSAGE_ID).expect("id"),
        from,
        to: PhoneNumber::parse("+41790000001").expect("number"),
        content: OutboundContent::Text { body: TEXT.into() },
    }
}

#[tokio::test]
async fn traces_carry_ids_not_secrets_or_bodies() {
    let buffer = Buffer::default();
    let writer = buffer.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(201).set_body_raw(
            fixture("twilio_message_create_201.json"),
            "application/json",
        ))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(429)
                .set_body_raw(fixture("meta_send_error_130429.json"), "application/json"),
        )
        .mount(&server)
        .await;

    let mut twilio = TwilioConfig::new(
        TwilioSid::parse("AC3f9d2c41b7e85a06d1c4f0e9a2b7d315").expect("sid"),
        Secret::new(TWILIO_TOKEN),
        "https://hub.example.com",
    );
    twilio.api_base = server.uri();
    twilio.timeout = Duration::from_secs(5);
    let twilio = TwilioClient::new(twilio).expect("client");
    twilio
        .send(&request(Sender::Number(
            PhoneNumber::parse("+15555550100").expect("number"),
        )))
        .await
        .expect("accepted");

    let mut meta = MetaConfig::new(Secret::new(META_TOKEN));
    meta.api_base = server.uri();
    let meta = MetaClient::new(meta).expect("client");
    meta.send(&request(Sender::MetaPhoneNumberId(
        "109876543210987".into(),
    )))
    .await
    .expect_err("rate limited");

    let logs = String::from_utf8(buffer.0.lock().expect("not poisoned").clone()).expect("utf-8");
    assert!(logs.contains(MESSAGE_ID), "{logs}");
    assert!(
        logs.contains("SM9a4e1c7d3b2f8065e1d4c9b7a3f20e61"),
        "{logs}"
    );
    assert!(logs.contains("130429"), "{logs}");
    for secret in [TWILIO_TOKEN, META_TOKEN, TEXT, "+41790000001"] {
        assert!(
            !logs.contains(secret),
            "{secret:?} leaked into logs:\n{logs}"
        );
    }
}
