//! A Meta template with a media header, from the binary: `wagate templates create
//! --header-file` sends the sample to the hub, the hub uploads it through the fake Graph API's
//! Resumable Upload API (`Authorization: OAuth …` on the upload step) and creates the template
//! with the handle the upload answered as `example.header_handle`. Without `WAGATE_META_APP_ID`
//! the same template is refused naming the setting, and the fake hears nothing.

use std::process::Command;

use serde_json::{json, Value};
use wiremock::matchers::{body_bytes, header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::*;

const WABA: &str = "102290129340398";
const APP_ID: &str = "7654321";
const TOKEN: &str = "meta-e2e-token";
const HANDLE: &str = "4::aW1hZ2UvcG5n:ARb-e2e";
/// A sample file's bytes (the fake compares them byte for byte).
const PNG: &[u8] = b"\x89PNG\r\n\x1a\nwagate-e2e-sample";

fn hub_env(graph: &MockServer, app_id: Option<&str>) -> Vec<(&'static str, String)> {
    let mut env = vec![
        ("WAGATE_META_ACCESS_TOKEN", TOKEN.to_owned()),
        ("WAGATE_META_APP_SECRET", META_APP_SECRET.to_owned()),
        ("WAGATE_META_API_BASE", graph.uri()),
        ("WAGATE_META_WABA_ID", WABA.to_owned()),
    ];
    if let Some(app_id) = app_id {
        env.push(("WAGATE_META_APP_ID", app_id.to_owned()));
    }
    env
}

/// `wagate templates create` with an image header and `--header-file`, against `hub`.
fn create_with_header_file(hub: &Hub, file: &std::path::Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_wagate"))
        .args([
            "templates",
            "create",
            "--provider",
            "meta",
            "--name",
            "listing_photo",
            "--language",
            "de",
            "--category",
            "marketing",
            "--body",
            "Hallo {{1}}, ein neues Objekt wartet auf Sie.",
            "--header",
            "image:https://cdn.example.com/p/1.png",
            "--example",
            "1=Lea",
            "--json",
            "--hub",
            &hub.base,
            "--header-file",
        ])
        .arg(file)
        .env("WAGATE_API_TOKEN", &hub.token)
        .env("WAGATE_LOG", "warn")
        .output()
        .expect("wagate templates create")
}

#[tokio::test]
async fn a_media_header_template_is_created_with_the_handle_of_the_uploaded_sample() {
    let graph = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(format!("/v21.0/{APP_ID}/uploads")))
        .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
        .and(query_param("file_name", "listing.png"))
        .and(query_param("file_length", PNG.len().to_string()))
        .and(query_param("file_type", "image/png"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"id": "upload:MTphdHRhY2g6ZTJl"})),
        )
        .expect(1)
        .mount(&graph)
        .await;
    Mock::given(method("POST"))
        .and(path("/v21.0/upload:MTphdHRhY2g6ZTJl"))
        .and(header("authorization", format!("OAuth {TOKEN}").as_str()))
        .and(header("file_offset", "0"))
        .and(body_bytes(PNG))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"h": HANDLE})))
        .expect(1)
        .mount(&graph)
        .await;
    Mock::given(method("POST"))
        .and(path(format!("/v21.0/{WABA}/message_templates")))
        .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"id": "889900112233", "status": "PENDING", "category": "MARKETING"}),
        ))
        .expect(1)
        .mount(&graph)
        .await;

    let dir = tempfile::tempdir().expect("dir");
    let env = hub_env(&graph, Some(APP_ID));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let hub = start_with(dir.path(), &env, &["--no-dispatch"]);
    let file = dir.path().join("listing.png");
    std::fs::write(&file, PNG).expect("sample");

    let output = create_with_header_file(&hub, &file);
    assert!(output.status.success(), "{output:?}");
    let created: Value = serde_json::from_slice(&output.stdout).expect("json");
    assert_eq!(created["id"], "listing_photo@de", "{created}");
    assert_eq!(created["status"], "pending", "{created}");

    // The template went to Meta with the handle the upload answered, not the URL.
    let requests = graph.received_requests().await.expect("recorded");
    let create = requests
        .iter()
        .find(|r| r.url.path().ends_with("/message_templates"))
        .expect("template created");
    let body: Value = serde_json::from_slice(&create.body).expect("json body");
    assert_eq!(body["components"][0]["type"], "HEADER", "{body}");
    assert_eq!(body["components"][0]["format"], "IMAGE", "{body}");
    assert_eq!(
        body["components"][0]["example"]["header_handle"],
        json!([HANDLE])
    );
    // The upload step was authorized with `OAuth`, the session step with `Bearer`.
    let upload = requests
        .iter()
        .find(|r| r.url.path().contains("upload:"))
        .expect("upload step");
    assert_eq!(
        upload.headers.get("authorization").expect("authorization"),
        format!("OAuth {TOKEN}").as_str()
    );
}

#[tokio::test]
async fn without_an_app_id_a_media_header_template_is_refused_naming_the_setting() {
    let graph = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(500))
        .expect(0)
        .mount(&graph)
        .await;
    let dir = tempfile::tempdir().expect("dir");
    let env = hub_env(&graph, None);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let hub = start_with(dir.path(), &env, &["--no-dispatch"]);
    let file = dir.path().join("listing.png");
    std::fs::write(&file, PNG).expect("sample");

    let output = create_with_header_file(&hub, &file);
    assert!(!output.status.success(), "{output:?}");
    let said = String::from_utf8_lossy(&output.stderr).into_owned()
        + &String::from_utf8_lossy(&output.stdout);
    assert!(said.contains("WAGATE_META_APP_ID"), "{said}");
    // Nothing was recorded either.
    let listed: Vec<Value> = hub.get("/v1/templates").await.json().await.expect("json");
    assert!(listed.is_empty(), "{listed:?}");
}
