//! `/readyz` and `wagate_store_failed` on a hub whose store fails a commit (the store's injected
//! sync fault), and while the server drains.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use serde_json::Value;
use tokio::sync::watch;
use tower::ServiceExt as _;
use wagate_app::{Hub, SyncFault, SystemClock};
use wagate_domain::decide::RecordOptIn;
use wagate_domain::{ContactId, OptInSource, Policy};
use wagate_providers::Secret;

use crate::audit::WebhookAudit;
use crate::routes::router;
use crate::state::{AppState, WebhookKeys};

async fn get(router: &Router, path: &str) -> (StatusCode, String) {
    let response = router
        .clone()
        .oneshot(Request::get(path).body(Body::empty()).expect("request"))
        .await
        .expect("answer");
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .expect("body");
    (status, String::from_utf8(bytes.to_vec()).expect("utf-8"))
}

#[tokio::test]
async fn readyz_answers_503_with_the_cause_once_the_store_failed_and_while_draining() {
    let fault = SyncFault::default();
    let hub =
        Hub::open_temporary_with_fault(Arc::new(SystemClock), Policy::default(), fault.clone())
            .expect("hub");
    let dir = tempfile::tempdir().expect("dir");
    let keys = WebhookKeys {
        public_url: "http://127.0.0.1:1".into(),
        twilio: None,
        meta_app_secret: Some(Secret::new("unused")),
        meta_verify_token: None,
    };
    let (stop, stopped) = watch::channel(false);
    let state = AppState::new(
        hub.clone(),
        Vec::new(),
        keys,
        WebhookAudit::open(dir.path(), crate::audit::RejectionLimits::default()).expect("audit"),
        stopped,
        true,
    );
    let router = router(state);

    let (status, body) = get(&router, "/readyz").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let ready: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(ready["status"], "ready");
    assert!(ready.get("reason").is_none());
    let (_, metrics) = get(&router, "/metrics").await;
    assert!(metrics.contains("wagate_store_failed 0"), "{metrics}");

    let (wording, _) = hub
        .publish_wording(wagate_domain::consent::PublishWording {
            business: "Acme Homes".into(),
            language: "en".into(),
            text: "I agree to receive WhatsApp messages from Acme Homes.".into(),
        })
        .await
        .expect("wording");
    fault.fail_next();
    let failed = hub
        .opt_in(RecordOptIn {
            contact: ContactId::parse("+41790000001").expect("contact"),
            source: OptInSource::WebForm,
            evidence: "https://example.com/forms/1".into(),
            recorded_by: "test".into(),
            wording_version: wording.version,
            evidence_at: None,
        })
        .await;
    assert!(failed.is_err(), "{failed:?}");

    let (status, body) = get(&router, "/readyz").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    let unready: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(unready["status"], "unavailable");
    let reason = unready["reason"].as_str().expect("reason");
    assert!(reason.starts_with("store failed: "), "{reason}");
    assert!(reason.contains("injected sync fault"), "{reason}");
    // Liveness is unchanged: the process still answers.
    assert_eq!(get(&router, "/healthz").await.0, StatusCode::OK);
    let (_, metrics) = get(&router, "/metrics").await;
    assert!(metrics.contains("wagate_store_failed 1"), "{metrics}");

    // Draining is reported on its own (a fresh, healthy store).
    let healthy = Hub::open_temporary(Arc::new(SystemClock), Policy::default()).expect("hub");
    let (stop_healthy, stopped_healthy) = watch::channel(false);
    let router = crate::routes::router(AppState::new(
        healthy,
        Vec::new(),
        WebhookKeys {
            public_url: "http://127.0.0.1:1".into(),
            twilio: None,
            meta_app_secret: Some(Secret::new("unused")),
            meta_verify_token: None,
        },
        WebhookAudit::open(dir.path(), crate::audit::RejectionLimits::default()).expect("audit"),
        stopped_healthy,
        true,
    ));
    assert_eq!(get(&router, "/readyz").await.0, StatusCode::OK);
    stop_healthy.send(true).expect("send");
    let (status, body) = get(&router, "/readyz").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    let draining: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(draining["reason"], "draining");
    drop(stop);
}
