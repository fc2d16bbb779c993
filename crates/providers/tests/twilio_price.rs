//! Twilio's price of a message: the Message resource fetched from a local fake (wiremock on
//! 127.0.0.1) answering recorded resources.

mod common;

use std::time::Duration;

use common::fixture;
use wagate_domain::TwilioSid;
use wagate_providers::twilio::{MessagePrice, PriceError, TwilioConfig, TwilioPriceClient};
use wagate_providers::Secret;
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const ACCOUNT: &str = "AC3f9d2c41b7e85a06d1c4f0e9a2b7d315";
const TOKEN: &str = "f3b9c0d1e2a34b5c6d7e8f90a1b2c3d4";
const SID: &str = "SM9a4e1c7d3b2f8065e1d4c9b7a3f20e61";
const RESOURCE: &str = "/2010-04-01/Accounts/AC3f9d2c41b7e85a06d1c4f0e9a2b7d315/Messages/SM9a4e1c7d3b2f8065e1d4c9b7a3f20e61.json";

fn client(base: &str) -> TwilioPriceClient {
    let mut config = TwilioConfig::new(
        TwilioSid::parse(ACCOUNT).expect("sid"),
        Secret::new(TOKEN),
        "https://hub.example.com/",
    );
    config.api_base = base.to_owned();
    config.timeout = Duration::from_secs(5);
    TwilioPriceClient::new(&config).expect("client")
}

async fn fake(status: u16, body: Vec<u8>) -> MockServer {
    let server = MockServer::start().await;
    let basic = format!(
        "Basic {}",
        base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            format!("{ACCOUNT}:{TOKEN}")
        )
    );
    Mock::given(method("GET"))
        .and(path(RESOURCE))
        .and(header("authorization", basic.as_str()))
        .respond_with(ResponseTemplate::new(status).set_body_raw(body, "application/json"))
        .expect(1)
        .mount(&server)
        .await;
    server
}

#[tokio::test]
async fn a_final_price_is_read_as_a_positive_charge() {
    let server = fake(200, fixture("twilio_message_fetch_priced.json")).await;
    let price = client(&server.uri())
        .message_price(SID)
        .await
        .expect("price");
    assert_eq!(
        price,
        Some(MessagePrice {
            amount_micros: 5_000,
            currency: "USD".into()
        })
    );
}

#[tokio::test]
async fn a_null_price_is_not_yet_known() {
    let server = fake(200, fixture("twilio_message_fetch_unpriced.json")).await;
    let price = client(&server.uri())
        .message_price(SID)
        .await
        .expect("answer");
    assert_eq!(price, None);
}

#[tokio::test]
async fn an_error_answer_and_a_garbled_price_are_errors() {
    let server = fake(404, fixture("twilio_error_21211.json")).await;
    let error = client(&server.uri()).message_price(SID).await;
    assert!(matches!(error, Err(PriceError::Call(_))), "{error:?}");
    let garbled = br#"{"price": "-0.0050000001", "price_unit": "USD"}"#.to_vec();
    let server = fake(200, garbled).await;
    let error = client(&server.uri()).message_price(SID).await;
    assert!(
        matches!(&error, Err(PriceError::Unreadable(reason)) if reason.contains("-0.0050000001")),
        "{error:?}"
    );
    assert!(client(&server.uri()).message_price("SM../x").await.is_err());
}
