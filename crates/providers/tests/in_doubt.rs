//! Which failed sends prove nothing reached the provider (retryable) and which leave the attempt
//! in doubt (`may_have_been_sent`: never retried blindly, settled by a callback or the expiry),
//! for both HTTP clients, against local fakes: wiremock for well-formed answers, a raw socket
//! for connections that break mid-answer.

mod common;

use std::time::Duration;

use common::{refused_base_url, MESSAGE_ID};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use wagate_domain::{MessageId, PhoneNumber, Retry, TwilioSid};
use wagate_providers::meta::{MetaClient, MetaConfig};
use wagate_providers::twilio::{TwilioClient, TwilioConfig};
use wagate_providers::{OutboundContent, OutboundRequest, Provider, Secret, SendError, Sender};
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

const ACCOUNT: &str = "AC3f9d2c41b7e85a06d1c4f0e9a2b7d315";
const PHONE_NUMBER_ID: &str = "109876543210987";

fn twilio(base: &str, timeout: Duration) -> Box<dyn Provider> {
    let mut config = TwilioConfig::new(
        TwilioSid::parse(ACCOUNT).expect("sid"),
        Secret::new("token"),
        "https://hub.example.com/",
    );
    config.api_base = base.to_owned();
    config.timeout = timeout;
    Box::new(TwilioClient::new(config).expect("client"))
}

fn meta(base: &str, timeout: Duration) -> Box<dyn Provider> {
    let mut config = MetaConfig::new(Secret::new("token"));
    config.api_base = base.to_owned();
    config.timeout = timeout;
    Box::new(MetaClient::new(config).expect("client"))
}

type Client = fn(&str, Duration) -> Box<dyn Provider>;
const CLIENTS: [(&str, Client); 2] = [("twilio", twilio), ("meta", meta)];

/// A text message: the Twilio sender is a number, the Meta sender a phone-number id.
fn request(client: &str) -> OutboundRequest {
    OutboundRequest {
        message_id: MessageId::parse(MESSAGE_ID).expect("id"),
        from: if client == "meta" {
            Sender::MetaPhoneNumberId(PHONE_NUMBER_ID.into())
        } else {
            Sender::Number(PhoneNumber::parse("+15555550100").expect("number"))
        },
        to: PhoneNumber::parse("+41790000001").expect("number"),
        content: OutboundContent::Text {
            body: "Thursday at 10:00 works.".into(),
        },
    }
}

async fn answering(status: u16, body: &'static [u8]) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(status).set_body_raw(body, "application/json"))
        .mount(&server)
        .await;
    server
}

/// A server that reads the whole request, writes `answer` (possibly nothing, possibly a cut-off
/// response) and closes the connection: the request did reach it.
async fn breaking(answer: &'static [u8]) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut request = Vec::new();
            let mut buffer = [0_u8; 4096];
            // Headers, then as many body bytes as Content-Length says.
            loop {
                let read = socket.read(&mut buffer).await.unwrap_or(0);
                if read == 0 {
                    break;
                }
                request.extend_from_slice(&buffer[..read]);
                if let Some(end) = find(&request, b"\r\n\r\n") {
                    let head = String::from_utf8_lossy(&request[..end]).to_ascii_lowercase();
                    let length = head
                        .lines()
                        .find_map(|line| line.strip_prefix("content-length:"))
                        .and_then(|value| value.trim().parse::<usize>().ok())
                        .unwrap_or(0);
                    if request.len() >= end + 4 + length {
                        break;
                    }
                }
            }
            let _ = socket.write_all(answer).await;
            let _ = socket.shutdown().await;
        }
    });
    format!("http://{address}")
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

async fn send(client: Client, name: &str, base: &str, timeout: Duration) -> SendError {
    client(base, timeout)
        .send(&request(name))
        .await
        .expect_err("the send fails")
}

#[tokio::test]
async fn a_success_status_with_an_unreadable_body_is_in_doubt() {
    for (name, client) in CLIENTS {
        for (status, body) in [
            (200, &b"<html>gateway says hi</html>"[..]),
            (201, &b""[..]),
            (200, &b"{\"truncated\": "[..]),
        ] {
            let server = answering(status, body).await;
            let error = send(client, name, &server.uri(), Duration::from_secs(5)).await;
            assert!(
                matches!(error, SendError::UnexpectedResponse { http_status, .. } if http_status == status),
                "{name} {status}: {error:?}"
            );
            assert!(error.may_have_been_sent(), "{name} {status}: {error:?}");
            assert_eq!(
                server.received_requests().await.map(|r| r.len()),
                Some(1),
                "one request, no retry inside the client"
            );
        }
    }
}

#[tokio::test]
async fn a_timeout_after_the_request_left_is_in_doubt() {
    for (name, client) in CLIENTS {
        // Headers never come.
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(5)))
            .mount(&server)
            .await;
        let error = send(client, name, &server.uri(), Duration::from_millis(200)).await;
        assert!(error.is_timeout(), "{name}: {error:?}");
        assert!(error.may_have_been_sent(), "{name}: {error:?}");
    }
}

#[tokio::test]
async fn a_connection_that_breaks_after_the_request_is_in_doubt() {
    let answers: [(&str, &'static [u8]); 3] = [
        ("closed without an answer", b""),
        (
            "200 with a cut-off body",
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 500\r\n\r\n{\"sid\":",
        ),
        ("half a status line", b"HTTP/1.1 20"),
    ];
    for (name, client) in CLIENTS {
        for (case, answer) in answers {
            let base = breaking(answer).await;
            let error = send(client, name, &base, Duration::from_secs(5)).await;
            assert!(
                !matches!(error, SendError::Connect { .. }),
                "{name}, {case}: the request was sent: {error:?}"
            );
            assert!(error.may_have_been_sent(), "{name}, {case}: {error:?}");
        }
    }
}

#[tokio::test]
async fn a_refused_connection_proves_nothing_was_sent_and_is_retryable() {
    for (name, client) in CLIENTS {
        let error = send(client, name, &refused_base_url(), Duration::from_secs(2)).await;
        assert!(
            matches!(error, SendError::Connect { .. }),
            "{name}: {error:?}"
        );
        assert!(!error.may_have_been_sent(), "{name}");
        assert_eq!(error.classify().retry, Retry::Retryable, "{name}");
    }
}

#[tokio::test]
async fn an_unresolvable_host_proves_nothing_was_sent() {
    for (name, client) in CLIENTS {
        // `.invalid` never resolves (RFC 6761).
        let error = send(
            client,
            name,
            "http://api.wagate-test.invalid",
            Duration::from_secs(5),
        )
        .await;
        assert!(
            matches!(error, SendError::Connect { .. }),
            "{name}: {error:?}"
        );
        assert!(!error.may_have_been_sent(), "{name}");
    }
}

#[tokio::test]
async fn an_error_answer_is_a_verdict_and_503_is_retryable() {
    for (name, client) in CLIENTS {
        let server = answering(503, b"<html>Service Unavailable</html>").await;
        let error = send(client, name, &server.uri(), Duration::from_secs(5)).await;
        assert!(
            matches!(
                error,
                SendError::Rejected {
                    http_status: 503,
                    ..
                }
            ),
            "{name}: {error:?}"
        );
        assert!(!error.may_have_been_sent(), "{name}");
        assert_eq!(error.classify().retry, Retry::Retryable, "{name}");
    }
}
