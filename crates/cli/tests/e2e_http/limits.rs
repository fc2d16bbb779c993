//! The limits on every connection, against the real binary over raw TCP where a well-behaved
//! HTTP client could not misbehave: slow headers, a trickling body, a huge header, more
//! connections than the cap, SIGTERM with a slow client open, and request ids.
//!
//! Every bound asserted is a generous multiple of the configured limit: these tests check that a
//! client is cut off at all (without the limits each would hang for a minute or more), not how
//! fast.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::support::{start_with, Hub, API_TOKEN, CONTACT};

/// The hub without its in-process dispatcher (the sandbox dispatcher calls back over HTTP and
/// would take connections of its own), with `limits` as environment.
fn serve(data: &std::path::Path, limits: &[(&str, &str)]) -> Hub {
    start_with(data, limits, &["--no-dispatch"])
}

async fn connect(hub: &Hub) -> TcpStream {
    let address = hub.base.strip_prefix("http://").expect("http base");
    TcpStream::connect(address).await.expect("connect")
}

/// Reads until the peer closes the connection (or resets it) or `bound` passes; `None`: still
/// open after `bound`.
async fn read_until_closed(stream: &mut TcpStream, bound: Duration) -> Option<Vec<u8>> {
    let mut received = Vec::new();
    let read = tokio::time::timeout(bound, async {
        let mut chunk = [0_u8; 8192];
        loop {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => received.extend_from_slice(&chunk[..n]),
            }
        }
    })
    .await;
    read.ok().map(|()| received)
}

/// A request whose body (`length` bytes of a JSON string) is written one byte per `every`,
/// on its own task; the stream's read half is returned to read the answer from.
async fn trickle(hub: &Hub, length: usize, every: Duration) -> tokio::net::tcp::OwnedReadHalf {
    let stream = connect(hub).await;
    let (read, mut write) = stream.into_split();
    let head = format!(
        "POST /v1/contacts/{CONTACT}/opt-in HTTP/1.1\r\nHost: hub\r\n\
         Authorization: Bearer {API_TOKEN}\r\nContent-Type: application/json\r\n\
         Content-Length: {length}\r\n\r\n"
    );
    write.write_all(head.as_bytes()).await.expect("head");
    tokio::spawn(async move {
        for _ in 0..length {
            if write.write_all(b" ").await.is_err() {
                return;
            }
            tokio::time::sleep(every).await;
        }
    });
    read
}

#[tokio::test]
async fn a_client_that_never_finishes_its_headers_is_cut_off() {
    let data = tempfile::tempdir().expect("dir");
    let hub = serve(data.path(), &[("WAGATE_HEADER_READ_TIMEOUT_SECONDS", "1")]);
    let mut stream = connect(&hub).await;
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: hub\r\n")
        .await
        .expect("partial head");
    let started = Instant::now();
    let answer = read_until_closed(&mut stream, Duration::from_secs(15))
        .await
        .expect("the hub closes a connection whose headers never end");
    // hyper answers 408 or just closes; either way nothing was served.
    let answer = String::from_utf8_lossy(&answer);
    assert!(!answer.contains("200 OK"), "{answer}");
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "cut before the limit"
    );
}

#[tokio::test]
async fn a_body_trickling_a_byte_a_second_is_cut_off_with_408() {
    let data = tempfile::tempdir().expect("dir");
    // The gap between bytes is under the body-read timeout: only the request timeout stops it.
    let hub = serve(
        data.path(),
        &[
            ("WAGATE_REQUEST_TIMEOUT_SECONDS", "2"),
            ("WAGATE_BODY_READ_TIMEOUT_SECONDS", "30"),
        ],
    );
    let mut read = trickle(&hub, 120, Duration::from_secs(1)).await;
    let mut answer = Vec::new();
    let got = tokio::time::timeout(Duration::from_secs(20), async {
        let mut chunk = [0_u8; 4096];
        while !String::from_utf8_lossy(&answer).contains("}}") {
            match read.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => answer.extend_from_slice(&chunk[..n]),
            }
        }
    })
    .await;
    assert!(got.is_ok(), "no answer while the body trickles");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("x-request-id: "), "{answer}");
    assert!(answer.contains(r#""code":"request_timeout""#), "{answer}");
    // Nothing was recorded: the opt-in never arrived whole.
    let contact = hub.get(&format!("/v1/contacts/{CONTACT}")).await;
    let contact: Value = contact.json().await.expect("json");
    assert_ne!(contact["consent"]["state"], "opted_in", "{contact}");
}

/// Sends a request whose head carries `padding` bytes of header and returns what came back.
async fn with_header_of(hub: &Hub, padding: usize) -> String {
    let stream = connect(hub).await;
    let (mut read, mut write) = stream.into_split();
    let head = format!(
        "GET /healthz HTTP/1.1\r\nHost: hub\r\nConnection: close\r\nX-Padding: {}\r\n\r\n",
        "a".repeat(padding)
    );
    // The hub answers (and closes) before it has read it all: a failed write is expected. The
    // write half stays open meanwhile (a half-closed connection's request is abandoned).
    tokio::spawn(async move {
        let _ = write.write_all(head.as_bytes()).await;
        tokio::time::sleep(Duration::from_secs(15)).await;
        drop(write);
    });
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), async {
        let mut chunk = [0_u8; 4096];
        while let Ok(n @ 1..) = read.read(&mut chunk).await {
            answer.extend_from_slice(&chunk[..n]);
        }
    })
    .await;
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test]
async fn a_500_kb_header_is_answered_431() {
    let data = tempfile::tempdir().expect("dir");
    let hub = serve(data.path(), &[]);
    // 100 KB is under hyper's own default buffer (~400 KB) but over wagate's 64 KiB default.
    for padding in [500 * 1024, 100 * 1024] {
        let answer = with_header_of(&hub, padding).await;
        assert!(answer.starts_with("HTTP/1.1 431"), "{padding}: {answer:?}");
    }
    // A head under the limit is served as usual.
    let answer = with_header_of(&hub, 32 * 1024).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
}

/// Connections beyond the cap are not refused: they wait in the listen backlog until one of the
/// open connections closes.
#[tokio::test]
async fn connections_beyond_the_cap_wait_for_a_free_slot() {
    let data = tempfile::tempdir().expect("dir");
    let hub = serve(
        data.path(),
        &[
            ("WAGATE_MAX_CONNECTIONS", "2"),
            ("WAGATE_HEADER_READ_TIMEOUT_SECONDS", "60"),
        ],
    );
    let first = connect(&hub).await;
    let second = connect(&hub).await;
    let url = hub.url("/healthz");
    let waiting = tokio::spawn(async move {
        reqwest::Client::new()
            .get(url)
            .send()
            .await
            .map(|r| r.status())
    });
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        !waiting.is_finished(),
        "a third connection was served while two were open"
    );
    drop(first);
    let status = tokio::time::timeout(Duration::from_secs(10), waiting)
        .await
        .expect("served once a slot is free")
        .expect("task")
        .expect("request");
    assert_eq!(status, 200);
    drop(second);
}

#[tokio::test]
async fn sigterm_with_a_slow_client_open_exits_within_the_grace_and_keeps_what_was_acknowledged() {
    let data = tempfile::tempdir().expect("dir");
    let limits = [
        ("WAGATE_SHUTDOWN_GRACE_SECONDS", "1"),
        ("WAGATE_REQUEST_TIMEOUT_SECONDS", "600"),
        ("WAGATE_BODY_READ_TIMEOUT_SECONDS", "600"),
    ];
    let hub = serve(data.path(), &limits);
    let wording = hub.published_wording().await;
    let acknowledged = hub
        .post(
            &format!("/v1/contacts/{CONTACT}/opt-in"),
            json!({"source": "web_form", "evidence": "https://example.com/f/1",
                   "recorded_by": "e2e", "wording_version": wording}),
        )
        .await;
    assert!(
        acknowledged.status().is_success(),
        "{}",
        acknowledged.status()
    );
    // Would take two minutes to finish.
    let _slow = trickle(&hub, 120, Duration::from_secs(1)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;

    let (status, took) = tokio::task::spawn_blocking(move || {
        let started = Instant::now();
        (hub.terminate(), started.elapsed())
    })
    .await
    .expect("terminate");
    assert!(status.success(), "{status}");
    assert!(took < Duration::from_secs(15), "shutdown took {took:?}");

    let hub = serve(data.path(), &[]);
    let contact: Value = hub
        .get(&format!("/v1/contacts/{CONTACT}"))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(contact["consent"]["state"], "opted_in", "{contact}");
}

#[tokio::test]
async fn request_ids_are_echoed_or_generated_and_named_in_error_bodies() {
    let data = tempfile::tempdir().expect("dir");
    let hub = serve(data.path(), &[]);
    let echoed = hub
        .http
        .get(hub.url("/healthz"))
        .header("x-request-id", "lb-8d2f.1")
        .send()
        .await
        .expect("healthz");
    assert_eq!(echoed.headers()["x-request-id"], "lb-8d2f.1");

    let generated = hub.get("/no/such/route").await;
    assert_eq!(generated.status(), 404);
    let id = generated.headers()["x-request-id"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(uuid::Uuid::parse_str(&id).is_ok(), "{id}");
    let body: Value = generated.json().await.expect("json");
    assert_eq!(body["error"]["request_id"], id.as_str());
}
