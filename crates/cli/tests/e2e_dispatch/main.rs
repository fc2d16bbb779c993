//! End-to-end: a message from `POST /v1/messages` through the dispatcher and the sandbox to
//! `read`, with the dispatcher inside `wagate serve` and as its own `wagate dispatch` process.

#[path = "../e2e_http/support.rs"]
#[allow(dead_code)]
mod support;

mod campaigns;
mod in_doubt;
mod live;
mod on_postgres;
mod remote_driver;
mod rich;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::Hub;

/// A `wagate dispatch` child; killed on drop.
struct Dispatcher(Child);

impl Drop for Dispatcher {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

const SANDBOX_SENDER: &str = "whatsapp:+15550001111";

async fn sandbox_ready(hub: &Hub, contact: &str) {
    let wording = hub.published_wording().await;
    let calls = [
        (
            "/v1/senders".to_owned(),
            json!({"address": SANDBOX_SENDER, "provider": "sandbox"}),
        ),
        (
            format!("/v1/senders/{SANDBOX_SENDER}/authorize"),
            json!({"by": "e2e"}),
        ),
        (
            "/v1/templates".to_owned(),
            json!({"content_sid": support::TEMPLATE, "name": "viewing_reminder", "language": "en",
                   "category": "utility", "placeholders": ["1", "2"]}),
        ),
        (
            format!("/v1/templates/{}/status", support::TEMPLATE),
            json!({"status": "approved"}),
        ),
        (
            format!("/v1/contacts/{contact}/opt-in"),
            json!({"source": "web_form", "evidence": "https://example.com/f/1", "recorded_by": "e2e", "wording_version": wording}),
        ),
    ];
    for (path, body) in calls {
        let response = hub.post(&path, body).await;
        assert!(
            response.status().is_success(),
            "{path}: {}",
            response.status()
        );
    }
}

/// Sends a template and waits (bounded) until the message reaches `status`.
async fn send_and_wait(hub: &Hub, to: &str, status: &str) -> Value {
    let response = hub.post("/v1/messages", support::template_send(to)).await;
    assert_eq!(response.status().as_u16(), 202);
    let accepted: Value = response.json().await.expect("json");
    let id = accepted["message_id"]
        .as_str()
        .expect("message id")
        .to_owned();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let view: Value = hub
            .get(&format!("/v1/messages/{id}"))
            .await
            .json()
            .await
            .expect("json");
        if view["status"] == status {
            return view;
        }
        assert!(
            Instant::now() < deadline,
            "message never reached {status}: {view}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn history_types(view: &Value) -> Vec<String> {
    view["history"]
        .as_array()
        .expect("history")
        .iter()
        .map(|event| event["type"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test]
pub(crate) async fn serve_carries_a_message_through_the_sandbox_to_read() {
    let data = tempfile::tempdir().expect("tempdir");
    let hub = support::start_sandbox(data.path());
    sandbox_ready(&hub, support::CONTACT).await;
    let view = send_and_wait(&hub, support::CONTACT, "read").await;
    let types = history_types(&view);
    assert_eq!(
        &types[..3],
        ["TemplateSent", "DispatchClaimed", "DispatchSucceeded"],
        "{types:?}"
    );
    assert_eq!(
        types.iter().filter(|t| *t == "StatusChanged").count(),
        4,
        "queued, sent, delivered, read"
    );
}

#[tokio::test]
async fn a_number_that_is_not_on_whatsapp_fails_and_flags_the_contact() {
    let data = tempfile::tempdir().expect("tempdir");
    let hub = support::start_sandbox(data.path());
    // The sandbox's test number for "not on WhatsApp" (63024).
    let contact = "+15550100001";
    sandbox_ready(&hub, contact).await;
    send_and_wait(&hub, contact, "undelivered").await;
    let view: Value = hub
        .get(&format!("/v1/contacts/{contact}"))
        .await
        .json()
        .await
        .expect("json");
    assert!(view["flags"]["not_on_whatsapp"].is_string(), "{view}");
    let again = hub
        .post("/v1/messages", support::template_send(contact))
        .await;
    assert_eq!(again.status().as_u16(), 422);
    let body: Value = again.json().await.expect("json");
    assert_eq!(body["error"]["rule"], "not_on_whatsapp");
}

/// A hub without an in-process dispatcher that checks Twilio-style webhooks with `token`, and a
/// message queued on it that nothing dispatches yet.
async fn hub_with_a_queued_message(data: &std::path::Path, token: &str) -> (Hub, String) {
    let hub = support::start_with(
        data,
        &[("WAGATE_TWILIO_AUTH_TOKEN", token)],
        &["--no-dispatch"],
    );
    sandbox_ready(&hub, support::CONTACT).await;
    let response = hub
        .post("/v1/messages", support::template_send(support::CONTACT))
        .await;
    assert_eq!(response.status().as_u16(), 202);
    let accepted: Value = response.json().await.expect("json");
    let id = accepted["message_id"].as_str().expect("id").to_owned();
    // Nothing dispatches it while no dispatcher runs.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let view: Value = hub
        .get(&format!("/v1/messages/{id}"))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(view["status"], "queued");
    (hub, id)
}

/// `wagate dispatch` with no `WAGATE_*` variable inherited from the test's environment.
fn dispatch_command() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_wagate"));
    for (name, _) in std::env::vars() {
        if name.starts_with("WAGATE_") {
            command.env_remove(name);
        }
    }
    command.env("WAGATE_LOG", "warn").stdout(Stdio::null());
    command
}

async fn wait_until_read(hub: &Hub, id: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let view: Value = hub
            .get(&format!("/v1/messages/{id}"))
            .await
            .json()
            .await
            .expect("json");
        if view["status"] == "read" {
            break;
        }
        assert!(Instant::now() < deadline, "never reached read: {view}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
pub(crate) async fn wagate_dispatch_as_a_second_process() {
    let data = tempfile::tempdir().expect("tempdir");
    // The hub checks Twilio-style webhooks with this token; the dispatcher's sandbox signs with it.
    let token = "e2e-sandbox-token";
    let (hub, id) = hub_with_a_queued_message(data.path(), token).await;

    let mut command = dispatch_command();
    command
        .args(["dispatch", "--sandbox", "--hub", &hub.base])
        .env("WAGATE_DISPATCHER_TOKEN", &hub.dispatcher)
        .env("WAGATE_TWILIO_AUTH_TOKEN", token)
        .env("WAGATE_PUBLIC_URL", support::PUBLIC_URL);
    let _dispatcher = Dispatcher(command.spawn().expect("start wagate dispatch"));
    wait_until_read(&hub, &id).await;
}

/// `wagate dispatch --config FILE`: the hub URL, its API token and the sandbox's signing token come
/// from the file, the two secrets as `op://` references read with the 1Password CLI (a fake `op`
/// first on PATH).
#[cfg(unix)]
#[tokio::test]
async fn wagate_dispatch_reads_a_config_file_with_op_references() {
    use std::os::unix::fs::PermissionsExt;

    let data = tempfile::tempdir().expect("tempdir");
    let token = "e2e-sandbox-token";
    let (hub, id) = hub_with_a_queued_message(data.path(), token).await;

    let tools = tempfile::tempdir().expect("tempdir");
    let op = tools.path().join("op");
    std::fs::write(
        &op,
        format!(
            "#!/bin/sh\n\
             [ \"$1 $2\" = \"read --no-newline\" ] || exit 2\n\
             case \"$3\" in\n\
             op://e2e/hub/dispatcher_token) printf '%s' '{}' ;;\n\
             op://e2e/sandbox/auth_token) printf '%s' '{token}' ;;\n\
             *) echo \"item not found\" >&2; exit 1 ;;\n\
             esac\n",
            hub.dispatcher
        ),
    )
    .expect("write fake op");
    std::fs::set_permissions(&op, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let config = tools.path().join("dispatch.toml");
    std::fs::write(
        &config,
        format!(
            "hub = \"{}\"\npublic_url = \"{}\"\ndispatcher_token = \"op://e2e/hub/dispatcher_token\"\n\
             twilio_auth_token = \"op://e2e/sandbox/auth_token\"\n",
            hub.base,
            support::PUBLIC_URL
        ),
    )
    .expect("write config");
    let path = format!(
        "{}:{}",
        tools.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );

    let mut command = dispatch_command();
    command
        .args(["dispatch", "--sandbox", "--config"])
        .arg(&config)
        .env("PATH", path);
    let _dispatcher = Dispatcher(command.spawn().expect("start wagate dispatch"));
    wait_until_read(&hub, &id).await;
}

#[test]
fn wagate_dispatch_names_a_missing_hub_token() {
    let output = dispatch_command()
        .args(["dispatch", "--sandbox"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .expect("run wagate dispatch");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("the hub's dispatcher token is required")
            && stderr.contains("WAGATE_DISPATCHER_TOKEN"),
        "{stderr}"
    );
}

/// Publishes, through an in-process hub, the consent wording test opt-ins cite (an opt-in must
/// cite a published one); the same text again is the same version. Answers the version.
pub(crate) async fn published_wording(hub: &wagate_app::Hub) -> String {
    hub.publish_wording(wagate_domain::consent::PublishWording {
        business: "Acme Homes".into(),
        language: "en".into(),
        text: "I agree to receive WhatsApp messages from Acme Homes.".into(),
    })
    .await
    .expect("publish wording")
    .0
    .version
}
