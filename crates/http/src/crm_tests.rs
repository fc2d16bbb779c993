//! `POST /v1/crm/backfill` through the router, with a fake mirror handle: each answer of the
//! handle becomes its status, and a hub without a handle says so.

use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use serde_json::{json, Value};
use tokio::sync::watch;
use tower::ServiceExt as _;
use wagate_app::{Hub, SystemClock};
use wagate_domain::{Policy, Role};
use wagate_providers::Secret;

use super::{BackfillRefusal, CrmBackfills, CrmHandle};
use crate::api;
use crate::audit::{RejectionLimits, WebhookAudit};
use crate::settings::ApiToken;
use crate::state::{AppState, WebhookKeys};

/// Answers what it is told to, and records the positions it was asked for.
#[derive(Debug)]
struct Fake {
    answer: Result<api::CrmBackfillScheduled, BackfillRefusal>,
    asked: Mutex<Vec<u64>>,
}

impl CrmBackfills for Fake {
    fn start_backfill(&self, from: u64) -> Result<api::CrmBackfillScheduled, BackfillRefusal> {
        self.asked.lock().expect("asked").push(from);
        self.answer.clone()
    }
}

async fn call(crm: Option<CrmHandle>, token: &str, body: Value) -> (StatusCode, Value) {
    let dir = tempfile::tempdir().expect("dir");
    let hub = Hub::open_temporary(Arc::new(SystemClock), Policy::default()).expect("hub");
    let audit = WebhookAudit::open(dir.path(), RejectionLimits::default()).expect("audit");
    let keys = WebhookKeys {
        public_url: "https://hub.example.com".into(),
        twilio: None,
        meta_app_secret: None,
        meta_verify_token: None,
    };
    let (_stop, stopped) = watch::channel(false);
    let tokens = vec![
        ApiToken::new("ops", Role::Operator, Secret::new("op-token")),
        ApiToken::new("agent", Role::Agent, Secret::new("agent-token")),
    ];
    let state = AppState::with_parts(
        hub,
        tokens,
        keys,
        audit,
        stopped,
        false,
        Default::default(),
        crm,
    );
    let request = Request::post("/v1/crm/backfill")
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .expect("request");
    let response = crate::routes::router(state)
        .oneshot(request)
        .await
        .expect("response");
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .expect("body");
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

fn fake(answer: Result<api::CrmBackfillScheduled, BackfillRefusal>) -> Arc<Fake> {
    Arc::new(Fake {
        answer,
        asked: Mutex::new(Vec::new()),
    })
}

#[tokio::test]
async fn a_scheduled_backfill_is_202_with_what_was_scheduled() {
    let crm = fake(Ok(api::CrmBackfillScheduled { from: 3, to: 40 }));
    let (status, body) = call(Some(crm.clone()), "op-token", json!({"from": 3})).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(body, json!({"from": 3, "to": 40}));
    assert_eq!(*crm.asked.lock().expect("asked"), vec![3]);
}

#[tokio::test]
async fn refusals_become_409_400_and_503() {
    let running = BackfillRefusal::Running {
        running: api::CrmBackfillScheduled { from: 1, to: 40 },
        at: 12,
    };
    let (status, body) = call(Some(fake(Err(running))), "op-token", json!({"from": 5})).await;
    assert_eq!(status, StatusCode::CONFLICT);
    let message = body["error"]["message"].as_str().expect("message");
    assert!(
        message.contains("from position 1 to 40") && message.contains("at position 12"),
        "{message}"
    );

    let past = BackfillRefusal::Position("from 99 is past the log's head (40)".into());
    let (status, body) = call(Some(fake(Err(past))), "op-token", json!({"from": 99})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["field"], "from");

    let stopped = BackfillRefusal::Stopped("the HubSpot mirror is not running".into());
    let (status, body) = call(Some(fake(Err(stopped))), "op-token", json!({"from": 1})).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["error"]["code"], "unavailable");
}

#[tokio::test]
async fn a_hub_without_a_mirror_bad_bodies_and_other_roles_are_refused() {
    let (status, body) = call(None, "op-token", json!({"from": 1})).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(
        body["error"]["message"]
            .as_str()
            .expect("message")
            .contains("runs no CRM mirror"),
        "{body}"
    );

    let crm = fake(Ok(api::CrmBackfillScheduled { from: 1, to: 1 }));
    let (status, _) = call(Some(crm.clone()), "op-token", json!({"from": "one"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, body) = call(Some(crm.clone()), "agent-token", json!({"from": 1})).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["error"]["required_role"], "operator");
    assert!(crm.asked.lock().expect("asked").is_empty());
}
