//! Handler tests through the real router (`tower::ServiceExt::oneshot`), on a temporary store with
//! a fixed clock, with the keys the signed fixtures in `fixtures/providers/` were made with.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use axum::Router;
use chrono::{TimeZone, Utc};
use serde_json::{json, Value};
use tokio::sync::watch;
use tower::ServiceExt as _;
use wagate_app::{FixedClock, Hub};
use wagate_domain::{Policy, Role};
use wagate_providers::twilio::{
    compute_signature, SigningAlgorithm, SortedParams, TwilioSigningKeys,
};
use wagate_providers::Secret;

use crate::audit::WebhookAudit;

#[path = "parity_tests.rs"]
mod parity;
use crate::routes::{router, Access, ROUTES};
use crate::settings::ApiToken;
use crate::state::{AppState, WebhookKeys};

/// The operator's token; each role has its own (see `token_of`).
const TOKEN: &str = "test-token";
const AGENT_TOKEN: &str = "agent-token";
const DISPATCHER_TOKEN: &str = "dispatcher-token";
const AUDITOR_TOKEN: &str = "auditor-token";

fn token_of(role: Role) -> &'static str {
    match role {
        Role::Operator => TOKEN,
        Role::Agent => AGENT_TOKEN,
        Role::Dispatcher => DISPATCHER_TOKEN,
        Role::Auditor => AUDITOR_TOKEN,
    }
}
const TWILIO_AUTH_TOKEN: &str = "12345";
const META_APP_SECRET: &str = "9d5e1c2b7a8f40136e2d9c8b7a6f5e4d";
const PUBLIC_URL: &str = "https://hub.example.com";
const SENDER: &str = "whatsapp:+15555550100";
const CONTACT: &str = "+41790000001";
const TEMPLATE: &str = "HX0123456789abcdef0123456789abcdef";

struct TestApp {
    router: Router,
    hub: Hub,
    dir: tempfile::TempDir,
    _stop: watch::Sender<bool>,
}

fn app() -> TestApp {
    // After the provider fixtures' own times (09:15-09:24): a provider time in the future is
    // refused.
    let clock = FixedClock::new(
        Utc.with_ymd_and_hms(2026, 11, 25, 9, 30, 0)
            .single()
            .expect("valid time"),
    );
    let dir = tempfile::tempdir().expect("dir");
    let hub = Hub::open_temporary(Arc::new(clock), Policy::default()).expect("hub");
    let audit =
        WebhookAudit::open(dir.path(), crate::audit::RejectionLimits::default()).expect("audit");
    let keys = WebhookKeys {
        public_url: PUBLIC_URL.into(),
        twilio: Some(TwilioSigningKeys::new(Secret::new(TWILIO_AUTH_TOKEN))),
        meta_app_secret: Some(Secret::new(META_APP_SECRET)),
        meta_verify_token: Some(Secret::new("wagate-verify-token")),
    };
    let (stop, stopped) = watch::channel(false);
    let tokens = Role::ALL
        .into_iter()
        .map(|role| ApiToken::new(format!("test-{role}"), role, Secret::new(token_of(role))))
        .collect();
    let state = AppState::new(hub.clone(), tokens, keys, audit, stopped, false);
    TestApp {
        router: router(state),
        hub,
        dir,
        _stop: stop,
    }
}

fn fixture(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/providers")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The expected signature of a fixture from `signatures.tsv` (first row for the file).
fn signature(file: &str) -> String {
    let table = String::from_utf8(fixture("signatures.tsv")).expect("utf-8");
    table
        .lines()
        .map(|line| line.split('\t').collect::<Vec<_>>())
        .find(|cols| {
            cols.len() >= 4
                && cols[2] == file
                && !cols[0].contains('?')
                && !cols[0].contains(":443")
                && cols[1] != "f3b9c0d1e2a34b5c6d7e8f90a1b2c3d4"
        })
        .map(|cols| cols[3].to_owned())
        .unwrap_or_else(|| panic!("no signature for {file}"))
}

struct Answer {
    status: StatusCode,
    content_type: Option<String>,
    headers: axum::http::HeaderMap,
    body: Vec<u8>,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&self.body)))
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// The route template of `ROUTES` a request path matches (`{param}` matches one segment).
fn route_of(method: &Method, path: &str) -> Option<&'static str> {
    let segments: Vec<&str> = path.split('/').collect();
    ROUTES
        .iter()
        .filter(|(route_method, _, _)| route_method == method)
        .map(|(_, route, _)| *route)
        .find(|route| {
            let parts: Vec<&str> = route.split('/').collect();
            parts.len() == segments.len()
                && parts
                    .iter()
                    .zip(&segments)
                    .all(|(part, segment)| part.starts_with('{') || part == segment)
        })
}

/// Fails when a handler answers a status that docs/openapi.yaml does not list for its operation
/// (requests to no route, answered by the fallback, have no operation to check).
fn assert_documented(method: &Method, path: &str, status: StatusCode) {
    static DOCUMENT: OnceLock<utoipa::openapi::OpenApi> = OnceLock::new();
    let Some(route) = route_of(method, path) else {
        return;
    };
    let document = DOCUMENT.get_or_init(crate::openapi::document);
    let statuses = crate::openapi::documented_statuses(document, method, route)
        .unwrap_or_else(|| panic!("{method} {route} is not in the OpenAPI document"));
    assert!(
        statuses.iter().any(|listed| listed == status.as_str()),
        "{method} {route} answered {status}, which its OpenAPI operation does not list \
         (it lists {statuses:?}): add it in crates/http/src/openapi.rs"
    );
}

async fn call(app: &TestApp, request: Request<Body>) -> Answer {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let response = app
        .router
        .clone()
        .oneshot(request)
        .await
        .expect("infallible");
    let status = response.status();
    assert_documented(&method, &path, status);
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let headers = response.headers().clone();
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .expect("body")
        .to_vec();
    Answer {
        status,
        content_type,
        headers,
        body,
    }
}

fn twilio(path: &str, body: Vec<u8>, signature: Option<&str>) -> Request<Body> {
    let mut builder =
        Request::post(path).header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    if let Some(signature) = signature {
        builder = builder.header("X-Twilio-Signature", signature);
    }
    builder.body(Body::from(body)).expect("request")
}

fn signed_twilio(path_and_query: &str, body: &str) -> Request<Body> {
    let signature = compute_signature(
        &Secret::new(TWILIO_AUTH_TOKEN),
        SigningAlgorithm::HmacSha1,
        &format!("{PUBLIC_URL}{path_and_query}"),
        &SortedParams::from_form(body.as_bytes()),
    );
    twilio(path_and_query, body.as_bytes().to_vec(), Some(&signature))
}

/// A request with the token of a role the route allows (the operator's where it may).
fn api(method: Method, path: &str, body: Option<Value>) -> Request<Body> {
    let access = route_of(&method, path)
        .and_then(|route| {
            ROUTES
                .iter()
                .find(|(m, r, _)| *m == method && *r == route)
                .map(|(_, _, access)| *access)
        })
        .unwrap_or(Access::Open);
    let role = if access.allows(Role::Operator) {
        Role::Operator
    } else {
        access.required_role().unwrap_or(Role::Operator)
    };
    api_as(role, method, path, body)
}

fn api_as(role: Role, method: Method, path: &str, body: Option<Value>) -> Request<Body> {
    let token = token_of(role);
    let builder = Request::builder()
        .method(method)
        .uri(path)
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .header(header::CONTENT_TYPE, "application/json");
    let body = body.map_or_else(Body::empty, |b| Body::from(b.to_string()));
    builder.body(body).expect("request")
}

fn audit_lines(app: &TestApp) -> Vec<Value> {
    crate::audit::read_dir_entries(app.dir.path())
}

fn head(app: &TestApp) -> u64 {
    app.hub.head_position()
}

async fn ready(app: &TestApp) {
    let calls = [
        (
            "/v1/senders",
            json!({"address": SENDER, "provider": "twilio", "portfolio": "acme"}),
        ),
        (
            "/v1/senders/whatsapp:+15555550100/authorize",
            json!({"by": "ops@example.com"}),
        ),
        (
            "/v1/templates",
            json!({"content_sid": TEMPLATE, "name": "viewing_reminder", "language": "en",
                   "category": "UTILITY", "placeholders": ["1", "2"]}),
        ),
        (
            "/v1/templates/HX0123456789abcdef0123456789abcdef/status",
            json!({"status": "approved", "reason": "Meta approved"}),
        ),
    ];
    for (path, body) in calls {
        let answer = call(app, api(Method::POST, path, Some(body))).await;
        assert!(
            answer.status.is_success(),
            "{path}: {} {}",
            answer.status,
            answer.text()
        );
    }
    // The wording after the registrations, so the log still opens with them.
    let wording = published_wording(app).await;
    let opted_in = call(
        app,
        api(
            Method::POST,
            "/v1/contacts/+41790000001/opt-in",
            Some(
                json!({"source": "web_form", "evidence": "https://example.com/f/1",
                        "recorded_by": "agent", "wording_version": wording}),
            ),
        ),
    )
    .await;
    assert!(opted_in.status.is_success(), "{}", opted_in.text());
}

/// Publishes the consent wording test opt-ins cite (an opt-in must cite a published one); the
/// same text again is the same version. Answers the version.
async fn published_wording(app: &TestApp) -> String {
    let answer = call(
        app,
        api(
            Method::POST,
            "/v1/consent/wordings",
            Some(json!({"business": "Acme Homes", "language": "en",
                        "text": "I agree to receive WhatsApp messages from Acme Homes."})),
        ),
    )
    .await;
    assert!(answer.status.is_success(), "{}", answer.text());
    answer.json()["version"]
        .as_str()
        .expect("version")
        .to_owned()
}

fn template_send() -> Value {
    json!({"to": CONTACT, "workflow": "appointment_scheduling",
           "template": {"content_sid": TEMPLATE, "variables": {"1": "Lea", "2": "Thu 10:00"}}})
}

#[tokio::test]
async fn signed_twilio_inbound_is_accepted_once() {
    let app = app();
    let request = || {
        twilio(
            "/webhooks/twilio/inbound",
            fixture("twilio_inbound_text.form"),
            Some(&signature("twilio_inbound_text.form")),
        )
    };
    let first = call(&app, request()).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text());
    assert_eq!(first.text(), crate::EMPTY_TWIML);
    assert!(first
        .content_type
        .as_deref()
        .is_some_and(|t| t.starts_with("text/xml")));
    let after_first = head(&app);
    assert_eq!(after_first, 1);
    let second = call(&app, request()).await;
    assert_eq!(second.status, StatusCode::OK);
    assert_eq!(head(&app), after_first, "a duplicate appends nothing");
    let contact = call(&app, api(Method::GET, "/v1/contacts/+41790000001", None)).await;
    assert!(
        contact.json()["window_open_until"].is_string(),
        "{}",
        contact.text()
    );
}

#[tokio::test]
async fn tampered_or_unsigned_webhooks_are_403_and_audited() {
    let app = app();
    let mut tampered = fixture("twilio_status_delivered.form");
    tampered.extend_from_slice(b"&Extra=1");
    let cases = [
        twilio(
            "/webhooks/twilio/status",
            tampered,
            Some(&signature("twilio_status_delivered.form")),
        ),
        twilio(
            "/webhooks/twilio/status",
            fixture("twilio_status_delivered.form"),
            None,
        ),
        // Signed for another URL.
        twilio(
            "/webhooks/twilio/status?tenant=evil",
            fixture("twilio_status_delivered.form"),
            Some(&signature("twilio_status_delivered.form")),
        ),
        Request::post("/webhooks/meta")
            .header("X-Hub-Signature-256", "sha256=00")
            .body(Body::from(fixture("meta_webhook_inbound_text.json")))
            .expect("request"),
    ];
    for request in cases {
        let answer = call(&app, request).await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN, "{}", answer.text());
    }
    assert_eq!(head(&app), 0, "nothing appended");
    let lines = audit_lines(&app);
    assert_eq!(lines.len(), 4);
    assert!(lines.iter().all(|l| l["verdict"] == "forbidden"));
    assert_eq!(lines[3]["route"], "/webhooks/meta");
}

#[tokio::test]
async fn status_query_is_part_of_the_signed_url() {
    let app = app();
    // signatures.tsv signs this fixture with ?tenant=acme&attempt=1 too.
    let table = String::from_utf8(fixture("signatures.tsv")).expect("utf-8");
    let signature = table
        .lines()
        .find(|l| l.contains("?tenant=acme&attempt=1"))
        .and_then(|l| l.split('\t').nth(3))
        .expect("row")
        .to_owned();
    let answer = call(
        &app,
        twilio(
            "/webhooks/twilio/status?tenant=acme&attempt=1",
            fixture("twilio_status_delivered.form"),
            Some(&signature),
        ),
    )
    .await;
    assert_eq!(answer.status, StatusCode::NO_CONTENT, "{}", answer.text());
    assert_eq!(head(&app), 1, "kept as an unmatched status");
}

#[tokio::test]
async fn malformed_and_oversized_webhooks_are_rejected_and_audited() {
    let app = app();
    let malformed = call(
        &app,
        signed_twilio(
            "/webhooks/twilio/status",
            "MessageSid=nope&MessageStatus=sent",
        ),
    )
    .await;
    assert_eq!(malformed.status, StatusCode::BAD_REQUEST);
    assert_eq!(malformed.json()["error"]["field"], "MessageSid");

    let big = vec![b'a'; crate::WEBHOOK_BODY_LIMIT + 1];
    let too_large = call(&app, twilio("/webhooks/twilio/inbound", big, Some("x"))).await;
    assert_eq!(too_large.status, StatusCode::PAYLOAD_TOO_LARGE);

    let body = b"{\"object\":\"page\",\"entry\":[]}".to_vec();
    let signature = wagate_providers::meta::compute_signature(&Secret::new(META_APP_SECRET), &body);
    let meta = call(
        &app,
        Request::post("/webhooks/meta")
            .header("X-Hub-Signature-256", signature)
            .body(Body::from(body))
            .expect("request"),
    )
    .await;
    assert_eq!(meta.status, StatusCode::BAD_REQUEST, "{}", meta.text());
    assert_eq!(meta.json()["error"]["field"], "object");

    assert_eq!(head(&app), 0);
    let verdicts: Vec<Value> = audit_lines(&app)
        .iter()
        .map(|l| l["verdict"].clone())
        .collect();
    assert_eq!(
        verdicts,
        [json!("malformed"), json!("too_large"), json!("malformed")]
    );
}

#[tokio::test]
async fn a_stop_makes_the_next_send_422_opted_out_and_start_reopens() {
    let app = app();
    ready(&app).await;
    let allowed = call(
        &app,
        api(Method::POST, "/v1/messages", Some(template_send())),
    )
    .await;
    assert_eq!(allowed.status, StatusCode::ACCEPTED, "{}", allowed.text());
    assert_eq!(allowed.json()["status"], "queued");

    let stop = call(
        &app,
        twilio(
            "/webhooks/twilio/inbound",
            fixture("twilio_inbound_stop.form"),
            Some(&signature("twilio_inbound_stop.form")),
        ),
    )
    .await;
    assert_eq!(stop.status, StatusCode::OK);

    let refused = call(
        &app,
        api(Method::POST, "/v1/messages", Some(template_send())),
    )
    .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    let error = &refused.json()["error"];
    assert_eq!(error["rule"], "opted_out");
    assert_eq!(error["code"], "refused");
    assert!(error["message"].as_str().is_some_and(|m| !m.is_empty()));

    let contact = call(&app, api(Method::GET, "/v1/contacts/+41790000001", None)).await;
    assert_eq!(contact.json()["consent"]["state"], "opted_out");

    let start = call(
        &app,
        twilio(
            "/webhooks/twilio/inbound",
            fixture("twilio_inbound_start.form"),
            Some(&signature("twilio_inbound_start.form")),
        ),
    )
    .await;
    assert_eq!(start.status, StatusCode::OK);
    let again = call(
        &app,
        api(Method::POST, "/v1/messages", Some(template_send())),
    )
    .await;
    assert_eq!(again.status, StatusCode::ACCEPTED, "{}", again.text());

    let metrics = call(
        &app,
        Request::get("/metrics")
            .body(Body::empty())
            .expect("request"),
    )
    .await;
    let text = metrics.text();
    assert!(
        text.contains("wagate_refusals_total{rule=\"opted_out\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("wagate_http_requests_total{route=\"/v1/messages\",verdict=\"refused\"} 1"),
        "{text}"
    );
}

#[tokio::test]
async fn meta_webhooks_verify_parse_batches_and_deduplicate() {
    let app = app();
    let query = String::from_utf8(fixture("meta_verify_request.query")).expect("query");
    let verify = call(
        &app,
        Request::get(format!("/webhooks/meta?{query}"))
            .body(Body::empty())
            .expect("request"),
    )
    .await;
    assert_eq!(verify.status, StatusCode::OK);
    assert_eq!(verify.text(), "1158201444");
    let wrong = call(
        &app,
        Request::get("/webhooks/meta?hub.mode=subscribe&hub.challenge=1&hub.verify_token=guess")
            .body(Body::empty())
            .expect("request"),
    )
    .await;
    assert_eq!(wrong.status, StatusCode::FORBIDDEN);

    let table = String::from_utf8(fixture("signatures.tsv")).expect("utf-8");
    let signature = table
        .lines()
        .find(|l| l.contains("\tmeta_webhook_batched.json\t"))
        .and_then(|l| l.split('\t').nth(3))
        .expect("row")
        .to_owned();
    let request = || {
        Request::post("/webhooks/meta")
            .header("X-Hub-Signature-256", signature.as_str())
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(fixture("meta_webhook_batched.json")))
            .expect("request")
    };
    let first = call(&app, request()).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text());
    let summary = first.json();
    assert!(
        summary["appended"].as_u64().is_some_and(|n| n >= 4),
        "{summary}"
    );
    let after = head(&app);
    let second = call(&app, request()).await;
    assert_eq!(second.status, StatusCode::OK);
    assert_eq!(second.json()["appended"], 0);
    assert_eq!(head(&app), after, "a redelivered batch appends nothing");
}

#[tokio::test]
async fn the_command_api_needs_the_bearer_token() {
    let app = app();
    for auth in [None, Some("Bearer wrong"), Some("Basic dGVzdA==")] {
        let mut builder = Request::get("/v1/senders");
        if let Some(auth) = auth {
            builder = builder.header(header::AUTHORIZATION, auth);
        }
        let answer = call(&app, builder.body(Body::empty()).expect("request")).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{auth:?}");
        assert_eq!(answer.json()["error"]["code"], "unauthorized");
    }
    let ok = call(&app, api(Method::GET, "/v1/senders", None)).await;
    assert_eq!(ok.status, StatusCode::OK);
    let health = call(
        &app,
        Request::get("/healthz")
            .body(Body::empty())
            .expect("request"),
    )
    .await;
    assert_eq!(health.json()["status"], "ok");
}

#[tokio::test]
async fn bad_input_names_the_field_and_unknown_ids_are_404() {
    let app = app();
    ready(&app).await;
    let cases = [
        (json!({"workflow": "status_update", "text": "hi"}), "to"),
        (
            json!({"to": CONTACT, "from": "+15555550100", "text": "hi"}),
            "from",
        ),
        (
            json!({"to": CONTACT, "text": "hi", "template": {"content_sid": TEMPLATE}}),
            "template",
        ),
        (
            json!({"to": CONTACT, "template": {"content_sid": "HXnope"}}),
            "template.content_sid",
        ),
        (json!({"to": CONTACT, "txt": "hi"}), "txt"),
    ];
    for (body, field) in cases {
        let answer = call(&app, api(Method::POST, "/v1/messages", Some(body.clone()))).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(answer.json()["error"]["field"], field, "{body}");
    }
    let bad_contact = call(&app, api(Method::GET, "/v1/contacts/0041790000001", None)).await;
    assert_eq!(bad_contact.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad_contact.json()["error"]["field"], "contact");
    let bad_source = call(
        &app,
        api(
            Method::POST,
            "/v1/contacts/+41790000002/opt-in",
            Some(json!({"source": "rumour", "evidence": "x", "recorded_by": "y", "wording_version": "v1"})),
        ),
    )
    .await;
    assert_eq!(bad_source.json()["error"]["field"], "source");

    let unknown = "01934b8e-0000-7000-8000-000000000000";
    for (method, path) in [
        (Method::GET, format!("/v1/messages/{unknown}")),
        (Method::POST, format!("/v1/messages/{unknown}/claim")),
    ] {
        let answer = call(&app, api(method, &path, None)).await;
        assert_eq!(
            answer.status,
            StatusCode::NOT_FOUND,
            "{path}: {}",
            answer.text()
        );
    }
    let bad_id = call(&app, api(Method::GET, "/v1/messages/nope", None)).await;
    assert_eq!(bad_id.json()["error"]["field"], "message_id");
    let no_route = call(&app, api(Method::GET, "/v1/nothing", None)).await;
    assert_eq!(no_route.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn dry_runs_record_nothing_and_idempotency_keys_repeat_the_answer() {
    let app = app();
    ready(&app).await;
    let before = head(&app);
    let dry = call(
        &app,
        api(
            Method::POST,
            "/v1/messages?dry_run=true",
            Some(template_send()),
        ),
    )
    .await;
    assert_eq!(dry.status, StatusCode::ACCEPTED);
    assert_eq!(dry.json()["dry_run"], true);
    assert_eq!(head(&app), before);

    let keyed = || {
        let mut request = api(Method::POST, "/v1/messages", Some(template_send()));
        request
            .headers_mut()
            .insert("Idempotency-Key", "order-42".parse().expect("header"));
        request
    };
    let first = call(&app, keyed()).await;
    assert_eq!(first.status, StatusCode::ACCEPTED);
    let after_first = head(&app);
    assert!(after_first > before);
    let second = call(&app, keyed()).await;
    assert_eq!(first.json()["message_id"], second.json()["message_id"]);
    assert_eq!(
        head(&app),
        after_first,
        "one intent for two identical keyed requests"
    );
}

fn replayed(answer: &Answer) -> Option<&str> {
    answer
        .headers
        .get("Idempotent-Replayed")
        .map(|value| value.to_str().expect("ascii"))
}

fn keyed_send(key: &str, body: Value) -> Request<Body> {
    let mut request = api(Method::POST, "/v1/messages", Some(body));
    request
        .headers_mut()
        .insert("Idempotency-Key", key.parse().expect("header"));
    request
}

#[tokio::test]
async fn a_replayed_send_says_so_and_a_reused_key_is_409() {
    let app = app();
    ready(&app).await;
    let first = call(&app, keyed_send("order-7", template_send())).await;
    assert_eq!(first.status, StatusCode::ACCEPTED, "{}", first.text());
    assert_eq!(replayed(&first), None);
    let after_first = head(&app);

    // The same request with other JSON spelling: fields reordered, whitespace.
    let respelled: Value = serde_json::from_str(
        r#"{ "template": {"variables": {"2": "Thu 10:00", "1": "Lea"}, "content_sid": "TEMPLATE"},
             "workflow": "appointment_scheduling", "to": "CONTACT" }"#
            .replace("TEMPLATE", TEMPLATE)
            .replace("CONTACT", CONTACT)
            .as_str(),
    )
    .expect("json");
    let again = call(&app, keyed_send("order-7", respelled)).await;
    assert_eq!(again.status, StatusCode::ACCEPTED, "{}", again.text());
    assert_eq!(replayed(&again), Some("true"));
    assert_eq!(again.json(), first.json(), "the same body");

    let mut changed = template_send();
    changed["template"]["variables"]["2"] = json!("Fri 11:00");
    let reused = call(&app, keyed_send("order-7", changed)).await;
    assert_eq!(reused.status, StatusCode::CONFLICT, "{}", reused.text());
    assert_eq!(replayed(&reused), None);
    let error = reused.json();
    assert_eq!(error["error"]["code"], "idempotency_key_reused");
    assert_eq!(error["error"]["field"], "Idempotency-Key");
    assert!(
        error["error"]["message"]
            .as_str()
            .expect("message")
            .contains("\"order-7\""),
        "{error}"
    );
    assert_eq!(head(&app), after_first, "replay and 409 record nothing");
}

#[tokio::test]
async fn a_replayed_refusal_is_the_same_422_and_says_so() {
    let app = app();
    ready(&app).await;
    // Freeform text with no open window: refused, and recorded with the key.
    let outside_window = json!({"to": CONTACT, "text": "hello"});
    let first = call(&app, keyed_send("reply-1", outside_window.clone())).await;
    assert_eq!(
        first.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        first.text()
    );
    assert_eq!(replayed(&first), None);
    let after_first = head(&app);
    let again = call(&app, keyed_send("reply-1", outside_window)).await;
    assert_eq!(again.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(replayed(&again), Some("true"));
    // The same answer; only the request id is this request's own.
    let answer = |response: &Answer| {
        let mut body = response.json();
        body["error"]
            .as_object_mut()
            .expect("error")
            .remove("request_id");
        body
    };
    assert_eq!(
        answer(&again),
        answer(&first),
        "rule, sentence and also_broken"
    );
    assert!(again.json()["error"]["also_broken"].is_array());
    let other = call(
        &app,
        keyed_send("reply-1", json!({"to": CONTACT, "text": "hi"})),
    )
    .await;
    assert_eq!(other.status, StatusCode::CONFLICT, "{}", other.text());
    assert_eq!(head(&app), after_first);
}

/// A sender's rate is registered with it (tier or an operator's figure), shown on the sender and
/// handed to the dispatcher with each pending message; a rate no provider offers is a 400
/// naming the field, and nothing is appended.
#[tokio::test]
async fn a_senders_rate_is_registered_and_reaches_the_pending_list() {
    let app = app();
    ready(&app).await;
    let upgraded = call(
        &app,
        api(
            Method::POST,
            "/v1/senders",
            Some(
                json!({"address": "whatsapp:+15555550101", "provider": "meta",
                        "meta_phone_number_id": "1099", "upgraded": true}),
            ),
        ),
    )
    .await;
    assert_eq!(upgraded.status, StatusCode::CREATED, "{}", upgraded.text());
    assert_eq!(upgraded.json()["rate_per_second"], 1000);
    assert_eq!(upgraded.json()["upgraded"], true);

    let before = head(&app);
    let zero = call(
        &app,
        api(
            Method::POST,
            "/v1/senders",
            Some(
                json!({"address": SENDER, "provider": "twilio", "portfolio": "acme",
                        "rate_per_second": 0}),
            ),
        ),
    )
    .await;
    assert_eq!(zero.status, StatusCode::BAD_REQUEST, "{}", zero.text());
    assert!(zero.text().contains("rate_per_second"), "{}", zero.text());
    assert_eq!(head(&app), before);

    let own = call(
        &app,
        api(
            Method::POST,
            "/v1/senders",
            Some(
                json!({"address": SENDER, "provider": "twilio", "portfolio": "acme",
                        "rate_per_second": 25}),
            ),
        ),
    )
    .await;
    assert_eq!(own.status, StatusCode::CREATED, "{}", own.text());
    assert_eq!(
        own.json()["may_send"],
        true,
        "a rate is not another channel"
    );
    let mut send = template_send();
    send["from"] = json!(SENDER);
    let sent = call(&app, api(Method::POST, "/v1/messages", Some(send))).await;
    assert_eq!(sent.status, StatusCode::ACCEPTED, "{}", sent.text());
    let pending = call(&app, api(Method::GET, "/v1/dispatch/pending", None)).await;
    assert_eq!(
        pending.json()["messages"][0]["sender_rate_per_second"],
        25,
        "{}",
        pending.text()
    );
}

#[tokio::test]
async fn the_dispatcher_routes_claim_record_and_report_phases() {
    let app = app();
    ready(&app).await;
    let sent = call(
        &app,
        api(Method::POST, "/v1/messages", Some(template_send())),
    )
    .await;
    let id = sent.json()["message_id"].as_str().expect("id").to_owned();

    let pending = call(&app, api(Method::GET, "/v1/dispatch/pending", None)).await;
    let pending = pending.json();
    assert_eq!(pending["messages"][0]["message_id"], id.as_str());
    assert_eq!(pending["messages"][0]["phase"], "pending");
    assert_eq!(pending["messages"][0]["sender"], SENDER);
    assert_eq!(pending["messages"][0]["sender_rate_per_second"], 80);

    let claim = call(
        &app,
        api(Method::POST, &format!("/v1/messages/{id}/claim"), None),
    )
    .await;
    assert_eq!(claim.status, StatusCode::OK, "{}", claim.text());
    let claim = claim.json();
    assert_eq!(claim["attempt"], 1);
    assert_eq!(claim["intent"]["content"]["type"], "template");
    assert_eq!(claim["template"]["name"], "viewing_reminder");
    assert_eq!(claim["sender"]["provider"], "twilio");

    let again = call(
        &app,
        api(Method::POST, &format!("/v1/messages/{id}/claim"), None),
    )
    .await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{}", again.text());
    assert_eq!(again.json()["error"]["phase"]["phase"], "claimed");

    let outcome = call(
        &app,
        api(
            Method::POST,
            &format!("/v1/messages/{id}/outcome"),
            Some(json!({"attempt": 1, "accepted": {"provider_ref": "SM9a4e1c7d3b2f8065e1d4c9b7a3f20e61", "provider_status": "queued"}})),
        ),
    )
    .await;
    assert_eq!(outcome.status, StatusCode::OK, "{}", outcome.text());
    assert_eq!(outcome.json()["phase"], "done");

    // The delivered callback for that SID now lands on the message.
    let delivered = call(
        &app,
        twilio(
            "/webhooks/twilio/status",
            fixture("twilio_status_delivered.form"),
            Some(&signature("twilio_status_delivered.form")),
        ),
    )
    .await;
    assert_eq!(delivered.status, StatusCode::NO_CONTENT);
    let message = call(&app, api(Method::GET, &format!("/v1/messages/{id}"), None)).await;
    let message = message.json();
    assert_eq!(message["status"], "delivered", "{message}");
    assert!(message["history"].as_array().is_some_and(|h| h.len() >= 4));

    let two = call(
        &app,
        api(
            Method::POST,
            &format!("/v1/messages/{id}/outcome"),
            Some(json!({"attempt": 1, "accepted": {"provider_ref": "SM1", "provider_status": "queued"},
                        "transport": {"provider": "twilio", "message": "timeout"}})),
        ),
    )
    .await;
    assert_eq!(two.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn the_event_feed_is_ndjson_from_a_position() {
    let app = app();
    ready(&app).await;
    let all = call(&app, api(Method::GET, "/v1/events?after=0", None)).await;
    assert_eq!(all.content_type.as_deref(), Some("application/x-ndjson"));
    let lines: Vec<Value> = all
        .text()
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    assert_eq!(lines.len() as u64, head(&app));
    assert_eq!(lines[0]["position"], 1);
    assert_eq!(lines[0]["type"], "SenderRegistered");
    // RFC 3339 in UTC (the precision is wagate-export's choice).
    assert!(lines[0]["timestamp"]
        .as_str()
        .is_some_and(|t| t.starts_with("2026-11-25T09:30:00") && t.ends_with('Z')));
    let tail = call(&app, api(Method::GET, "/v1/events?after=3&limit=1", None)).await;
    let text = tail.text();
    let tail: Vec<&str> = text.lines().collect();
    assert_eq!(tail.len(), 1);
    assert!(tail[0].contains("\"position\":4"));
    let bad = call(&app, api(Method::GET, "/v1/events?after=-1", None)).await;
    assert_eq!(bad.json()["error"]["field"], "after");
}

/// Answers the hand-written OpenAPI document of wave 1 got wrong (the shared `call` helper checks
/// each against the generated one): claim and expire-in-doubt answer 400 to a malformed id, and
/// an opt-out takes `"detail": null`.
#[tokio::test]
async fn malformed_ids_are_400_on_dispatch_routes_and_opt_out_detail_may_be_null() {
    let app = app();
    for path in [
        "/v1/messages/nope/claim",
        "/v1/messages/nope/expire-in-doubt",
    ] {
        let answer = call(&app, api(Method::POST, path, None)).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{path}");
        assert_eq!(answer.json()["error"]["field"], "message_id", "{path}");
    }
    let opted_out = call(
        &app,
        api(
            Method::POST,
            "/v1/contacts/+41790000001/opt-out",
            Some(json!({"source": "operator", "detail": null})),
        ),
    )
    .await;
    assert_eq!(opted_out.status, StatusCode::OK, "{}", opted_out.text());
    let contact = call(&app, api(Method::GET, "/v1/contacts/+41790000001", None)).await;
    assert_eq!(contact.json()["consent"]["opt_out"]["detail"], "");
}

#[test]
fn route_templates_match_one_segment_per_parameter() {
    assert_eq!(
        route_of(&Method::POST, "/v1/senders/whatsapp:+15555550100/authorize"),
        Some("/v1/senders/{address}/authorize")
    );
    assert_eq!(
        route_of(&Method::GET, "/v1/messages/x"),
        Some("/v1/messages/{message_id}")
    );
    assert_eq!(route_of(&Method::GET, "/v1/messages/x/claim"), None);
    assert_eq!(route_of(&Method::GET, "/v1/nothing"), None);
}

/// The OpenAPI document (docs/openapi.yaml is it, see `openapi_yaml_is_up_to_date`) and
/// docs/api.md document every route the router serves.
#[test]
fn every_route_is_in_openapi_yaml() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/api.md");
    let docs = std::fs::read_to_string(&path).expect("docs/api.md");
    let document = crate::openapi::document();
    for (method, route, _) in ROUTES {
        assert!(
            crate::openapi::documented_statuses(&document, method, route).is_some(),
            "{method} {route} is not in the OpenAPI document"
        );
        assert!(
            docs.contains(&format!("{method} {route}")),
            "{method} {route} is not in docs/api.md"
        );
    }
}

/// The position of each event of `type_name` in the log, with its payload as exported.
fn logged(app: &TestApp, type_name: &str) -> Vec<(u64, wagate_domain::Event)> {
    app.hub
        .events_after(0, 10_000)
        .expect("events")
        .into_iter()
        .filter(|logged| logged.event.type_name() == type_name)
        .map(|logged| (logged.position, logged.event))
        .collect()
}

#[tokio::test]
async fn explain_cites_the_positions_an_allowed_and_a_refused_send_relied_on() {
    let app = app();
    ready(&app).await;
    let allowed = call(
        &app,
        api(Method::POST, "/v1/messages", Some(template_send())),
    )
    .await;
    assert_eq!(allowed.status, StatusCode::ACCEPTED, "{}", allowed.text());
    let id = allowed.json()["message_id"]
        .as_str()
        .expect("id")
        .to_owned();
    let explained = call(
        &app,
        api(Method::GET, &format!("/v1/messages/{id}/explain"), None),
    )
    .await;
    assert_eq!(explained.status, StatusCode::OK, "{}", explained.text());
    let body = explained.json();
    assert_eq!(body["decision"], "allowed");
    assert!(body.get("rule").is_none(), "no rule when allowed: {body}");
    let cited: Vec<u64> = body["facts"]
        .as_array()
        .expect("facts")
        .iter()
        .map(|fact| fact["position"].as_u64().expect("position"))
        .collect();
    for event_type in [
        "TemplateSent",
        "OptedIn",
        "TemplateApprovalChanged",
        "SenderAuthorized",
        "SenderRegistered",
    ] {
        let (position, _) = logged(&app, event_type)[0];
        assert!(
            cited.contains(&position),
            "{event_type} at {position}: {body}"
        );
    }

    let stop = call(
        &app,
        twilio(
            "/webhooks/twilio/inbound",
            fixture("twilio_inbound_stop.form"),
            Some(&signature("twilio_inbound_stop.form")),
        ),
    )
    .await;
    assert_eq!(stop.status, StatusCode::OK);
    let refused = call(
        &app,
        api(Method::POST, "/v1/messages", Some(template_send())),
    )
    .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    let (_, refusal) = logged(&app, "SendRefused").remove(0);
    let (stop_position, _) = logged(&app, "OptedOut")[0];
    let refused_id = match refusal {
        wagate_domain::Event::Message(event) => event.message_id().expect("id"),
        other => panic!("{other:?}"),
    };
    let explained = call(
        &app,
        api(
            Method::GET,
            &format!("/v1/messages/{refused_id}/explain"),
            None,
        ),
    )
    .await;
    assert_eq!(explained.status, StatusCode::OK);
    let body = explained.json();
    assert_eq!(body["decision"], "refused");
    assert_eq!(body["rule"], "opted_out");
    assert!(
        body["facts"].as_array().expect("facts").iter().any(|fact| {
            fact["position"] == stop_position
                && fact["text"]
                    .as_str()
                    .is_some_and(|t| t.contains("opted_out"))
        }),
        "the STOP at {stop_position} is cited: {body}"
    );

    let unknown = call(
        &app,
        api(
            Method::GET,
            "/v1/messages/01934b8e-0000-7000-8000-000000000000/explain",
            None,
        ),
    )
    .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    let malformed = call(
        &app,
        api(Method::GET, "/v1/messages/not-a-uuid/explain", None),
    )
    .await;
    assert_eq!(malformed.status, StatusCode::BAD_REQUEST);
    assert_eq!(malformed.json()["error"]["field"], "message_id");
}

/// A concrete path for a route template.
fn concrete(route: &str) -> String {
    route
        .replace("{contact}", CONTACT)
        .replace("{message_id}", "0190b5a2-7c1e-7000-8000-000000000001")
        .replace("{content_sid}", TEMPLATE)
        .replace("{address}", SENDER)
        .replace("{portfolio}", "default")
}

#[tokio::test]
async fn every_role_may_use_exactly_its_routes_and_is_refused_403_elsewhere() {
    let app = app();
    ready(&app).await;
    for (method, route, access) in ROUTES {
        let Access::Roles(allowed) = *access else {
            continue;
        };
        assert!(!allowed.is_empty(), "{method} {route} allows no role");
        let path = concrete(route);
        for role in Role::ALL {
            let before = head(&app);
            let body = (method == Method::POST).then(|| json!({}));
            let answer = call(&app, api_as(role, method.clone(), &path, body)).await;
            if allowed.contains(&role) {
                assert!(
                    answer.status != StatusCode::UNAUTHORIZED
                        && answer.status != StatusCode::FORBIDDEN,
                    "{role} on {method} {route}: {} {}",
                    answer.status,
                    answer.text()
                );
            } else {
                assert_eq!(
                    answer.status,
                    StatusCode::FORBIDDEN,
                    "{role} on {method} {route}: {}",
                    answer.text()
                );
                let error = &answer.json()["error"];
                assert_eq!(error["code"], "forbidden");
                let required = access.required_role().expect("a role");
                assert_eq!(error["required_role"], required.as_str());
                assert!(allowed.contains(&required));
                assert!(allowed.iter().all(|other| required <= *other));
                assert_eq!(head(&app), before, "{role} on {method} {route} appended");
            }
        }
        // No token, or an unknown one, is 401 whatever the route.
        let request = Request::builder()
            .method(method.clone())
            .uri(&path)
            .header(header::AUTHORIZATION, "Bearer nobody")
            .body(Body::empty())
            .expect("request");
        assert_eq!(call(&app, request).await.status, StatusCode::UNAUTHORIZED);
    }
}

#[tokio::test]
async fn the_roles_are_the_issues_roles() {
    let allowed = |method: Method, route: &str| -> Vec<Role> {
        let (_, _, access) = ROUTES
            .iter()
            .find(|(m, r, _)| *m == method && *r == route)
            .expect("route");
        access.roles().to_vec()
    };
    use Role::*;
    // The agent sends, reads contacts and messages and asks why, nothing else.
    let agent: Vec<(Method, &str)> = ROUTES
        .iter()
        .filter(|(_, _, access)| matches!(access, Access::Roles(_)) && access.allows(Agent))
        .map(|(m, r, _)| (m.clone(), *r))
        .collect();
    assert_eq!(
        agent,
        vec![
            (Method::GET, "/v1/contacts/{contact}"),
            (Method::POST, "/v1/messages"),
            (Method::GET, "/v1/messages/{message_id}"),
            (Method::GET, "/v1/messages/{message_id}/explain"),
        ]
    );
    // Only an operator records consent and configures templates, senders and limits.
    for (method, route) in [
        (Method::POST, "/v1/contacts/{contact}/opt-in"),
        (Method::POST, "/v1/contacts/{contact}/opt-out"),
        (Method::POST, "/v1/templates"),
        (Method::POST, "/v1/templates/{content_sid}/status"),
        (Method::POST, "/v1/senders"),
        (Method::POST, "/v1/senders/{address}/authorize"),
        (Method::POST, "/v1/senders/{address}/suspend"),
        (Method::POST, "/v1/portfolios/{portfolio}/messaging-limit"),
        (Method::POST, "/v1/review/{id}/resolve"),
    ] {
        assert_eq!(allowed(method, route), vec![Operator], "{route}");
    }
    // Only the dispatcher claims and reports.
    for (method, route) in [
        (Method::GET, "/v1/dispatch/pending"),
        (Method::POST, "/v1/messages/{message_id}/claim"),
        (Method::POST, "/v1/messages/{message_id}/outcome"),
        (Method::POST, "/v1/messages/{message_id}/expire-in-doubt"),
    ] {
        assert_eq!(allowed(method, route), vec![Dispatcher], "{route}");
    }
    // The auditor only reads.
    assert!(ROUTES
        .iter()
        .filter(|(_, _, access)| matches!(access, Access::Roles(_)) && access.allows(Auditor))
        .all(|(method, _, _)| *method == Method::GET));
    assert!(allowed(Method::GET, "/v1/events").contains(&Auditor));
}

#[tokio::test]
async fn command_events_record_the_token_and_webhook_events_their_provider() {
    let app = app();
    ready(&app).await;
    let answer = call(
        &app,
        api_as(
            Role::Agent,
            Method::POST,
            "/v1/messages",
            Some(template_send()),
        ),
    )
    .await;
    assert_eq!(answer.status, StatusCode::ACCEPTED, "{}", answer.text());
    let inbound = call(
        &app,
        twilio(
            "/webhooks/twilio/inbound",
            fixture("twilio_inbound_text.form"),
            Some(&signature("twilio_inbound_text.form")),
        ),
    )
    .await;
    assert!(inbound.status.is_success(), "{}", inbound.text());
    let events = app.hub.events_after(0, usize::MAX).expect("events");
    let actor_of = |kind: &str| {
        events
            .iter()
            .find(|logged| logged.event.type_name() == kind)
            .and_then(|logged| logged.actor.clone())
    };
    assert_eq!(
        actor_of("SenderRegistered"),
        Some(wagate_domain::Actor::token(Role::Operator, "test-operator"))
    );
    assert_eq!(
        actor_of("TemplateSent"),
        Some(wagate_domain::Actor::token(Role::Agent, "test-agent"))
    );
    assert_eq!(
        actor_of("InboundReceived"),
        Some(wagate_domain::Actor::webhook("twilio"))
    );
    // The feed shows it.
    let feed = call(&app, api(Method::GET, "/v1/events", None)).await;
    let lines: Vec<Value> = feed
        .text()
        .lines()
        .map(|line| serde_json::from_str(line).expect("json"))
        .collect();
    let sent = lines
        .iter()
        .find(|line| line["type"] == "TemplateSent")
        .expect("sent");
    assert_eq!(
        sent["actor"],
        json!({"kind": "agent", "name": "test-agent"})
    );
}

#[tokio::test]
async fn a_token_in_the_wrong_place_gets_a_401_naming_the_right_place() {
    let app = app();
    let before = head(&app);
    let cases = [
        (
            None,
            "/v1/contacts/+41790000001?token=secret",
            "query string",
        ),
        (None, "/v1/contacts/+41790000001", "no Authorization header"),
        (
            Some("Token secret"),
            "/v1/contacts/+41790000001",
            "Bearer scheme",
        ),
        (
            Some("Bearer "),
            "/v1/contacts/+41790000001",
            "bearer token is empty",
        ),
        (
            Some("Bearer nobody"),
            "/v1/contacts/+41790000001",
            "unknown bearer token",
        ),
    ];
    for (authorization, uri, says) in cases {
        let mut request = Request::builder().method(Method::GET).uri(uri);
        if let Some(value) = authorization {
            request = request.header(header::AUTHORIZATION, value);
        }
        let answer = call(&app, request.body(Body::empty()).expect("request")).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{uri}");
        let error = &answer.json()["error"];
        assert_eq!(error["code"], "unauthorized");
        let message = error["message"].as_str().expect("message");
        assert!(message.contains(says), "{authorization:?} {uri}: {message}");
        assert!(!message.contains("secret"), "the token is never echoed");
    }
    assert_eq!(head(&app), before, "nothing appended");
}

/// Every answer carries `x-request-id`: a valid incoming one echoed, an invalid or missing one
/// replaced by a generated UUID; an error body names the same id.
#[tokio::test]
async fn every_answer_carries_a_request_id_and_error_bodies_name_it() {
    let app = app();
    let ask = |id: Option<&'static str>| {
        let mut request = Request::builder().uri("/v1/contacts/%2B41790000001");
        if let Some(id) = id {
            request = request.header("x-request-id", id);
        }
        app.router
            .clone()
            .oneshot(request.body(Body::empty()).expect("request"))
    };

    let echoed = ask(Some("client-7f3a")).await.expect("answer");
    assert_eq!(echoed.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(echoed.headers()["x-request-id"], "client-7f3a");
    let body = axum::body::to_bytes(echoed.into_body(), 64 * 1024)
        .await
        .expect("body");
    let body: Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(body["error"]["request_id"], "client-7f3a");

    for id in [None, Some("two words")] {
        let generated = ask(id).await.expect("answer");
        let value = generated.headers()["x-request-id"]
            .to_str()
            .expect("ascii")
            .to_owned();
        assert!(uuid::Uuid::parse_str(&value).is_ok(), "{id:?} → {value}");
        let body = axum::body::to_bytes(generated.into_body(), 64 * 1024)
            .await
            .expect("body");
        let body: Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(body["error"]["request_id"], value.as_str());
    }
}

/// A Meta batch with several unusable items is one line of the rejection log: its body once,
/// each item's reason in `notes`.
#[tokio::test]
async fn a_batch_with_several_unusable_items_is_logged_once() {
    let app = app();
    let message = |id: &str| {
        json!({"from": "41790000001", "id": id, "timestamp": "9999999999", "type": "text",
               "text": {"body": "hello"}})
    };
    let body = json!({"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [{
        "field": "messages",
        "value": {"messaging_product": "whatsapp",
                  "metadata": {"display_phone_number": "15555550100", "phone_number_id": "1"},
                  "messages": [message("wamid.A"), message("wamid.B")]}}]}]})
    .to_string()
    .into_bytes();
    let signature = wagate_providers::meta::compute_signature(&Secret::new(META_APP_SECRET), &body);
    let answer = call(
        &app,
        Request::post("/webhooks/meta")
            .header("X-Hub-Signature-256", signature.as_str())
            .body(Body::from(body.clone()))
            .expect("request"),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    assert_eq!(answer.json()["rejected"], 2);
    let lines = audit_lines(&app);
    assert_eq!(lines.len(), 1, "{lines:?}");
    let notes = lines[0]["notes"].as_array().expect("notes");
    assert_eq!(notes.len(), 2, "{notes:?}");
    assert!(notes.iter().all(|n| n["verdict"] == "item_rejected"));
    assert_eq!(lines[0]["status"], 200);
    assert_eq!(
        lines[0]["signatures"]["x-hub-signature-256"],
        signature.as_str()
    );
    let raw: String = std::fs::read_dir(app.dir.path())
        .expect("dir")
        .filter_map(|e| std::fs::read_to_string(e.expect("entry").path()).ok())
        .collect();
    let encoded = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &body);
    assert_eq!(raw.matches(&encoded).count(), 1, "the body is written once");
}

#[tokio::test]
async fn the_review_queue_lists_filters_and_resolves_by_role() {
    let app = app();
    ready(&app).await;
    app.hub
        .request_review(
            wagate_domain::decide::RequestReview {
                contact: wagate_domain::ContactId::parse("+41790000001").expect("contact"),
                text: "please stop messaging me".into(),
                reason: "free_text_opt_out".into(),
            },
            "review-test",
        )
        .await
        .expect("review requested");
    let list = call(
        &app,
        api_as(Role::Operator, Method::GET, "/v1/review?state=open", None),
    )
    .await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.text());
    let items = list.json()["items"].as_array().expect("items").clone();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["reason"], "opt_out_request");
    assert_eq!(items[0]["state"], "open");
    assert_eq!(items[0]["contact"], "+41790000001");
    let id = items[0]["id"].as_u64().expect("id");
    let path = format!("/v1/review/{id}/resolve");
    let body = json!({"decision": "confirm_opt_out", "note": "called back"});
    let agent = call(
        &app,
        api_as(Role::Agent, Method::POST, &path, Some(body.clone())),
    )
    .await;
    assert_eq!(agent.status, StatusCode::FORBIDDEN);
    let bad = call(
        &app,
        api_as(
            Role::Operator,
            Method::POST,
            &path,
            Some(json!({"decision": "maybe", "note": ""})),
        ),
    )
    .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad.json()["error"]["field"], "decision");
    let resolved = call(
        &app,
        api_as(Role::Operator, Method::POST, &path, Some(body.clone())),
    )
    .await;
    assert_eq!(resolved.status, StatusCode::OK, "{}", resolved.text());
    assert_eq!(resolved.json()["state"], "resolved");
    assert_eq!(resolved.json()["resolution"]["by"], "test-operator");
    let again = call(
        &app,
        api_as(Role::Operator, Method::POST, &path, Some(body)),
    )
    .await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    let open = call(
        &app,
        api_as(Role::Auditor, Method::GET, "/v1/review?state=open", None),
    )
    .await;
    assert_eq!(open.json()["items"], json!([]));
    let unknown = call(
        &app,
        api_as(Role::Auditor, Method::GET, "/v1/review?reason=bogus", None),
    )
    .await;
    assert_eq!(unknown.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_burst_of_rejected_webhooks_raises_one_review_item() {
    let app = app();
    let threshold = wagate_domain::review::RejectionBurst::default().threshold;
    for _ in 0..threshold + 3 {
        let answer = call(
            &app,
            twilio(
                "/webhooks/twilio/inbound",
                fixture("twilio_inbound_text.form"),
                Some("bm90IHRoZSBzaWduYXR1cmU="),
            ),
        )
        .await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN);
    }
    let items = app
        .hub
        .review_items(wagate_app::ReviewFilter::default())
        .await
        .expect("items");
    let reasons: Vec<_> = items.iter().map(|item| item.reason.as_str()).collect();
    assert_eq!(reasons, ["webhook_rejections"]);
    assert!(
        items[0]
            .detail
            .starts_with(&format!("{threshold} webhooks rejected")),
        "{}",
        items[0].detail
    );
}

mod ops_page;
mod provider_notices;
