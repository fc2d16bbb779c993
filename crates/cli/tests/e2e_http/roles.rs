//! Roles over HTTP against the real binary: each token is held to its role's routes, a refused
//! token appends nothing, every command event records who asked; and `wagate serve` refuses to
//! start with a blank secret or webhooks no provider could pass.

use std::process::{Command, Stdio};

use serde_json::{json, Value};

use crate::support::*;

#[tokio::test]
async fn an_agent_is_refused_an_operator_action_with_403_and_nothing_appended() {
    let dir = tempfile::tempdir().expect("dir");
    let hub = start(dir.path());
    hub.ready().await;
    let before = hub.events().await.len();

    // The outreach agent tries to record a consent itself.
    let response = hub
        .post_as(
            AGENT_TOKEN,
            "/v1/contacts/+41790000002/opt-in",
            json!({"source": "web_form", "evidence": "trust me", "recorded_by": "agent", "wording_version": "v1"}),
        )
        .await;
    assert_eq!(response.status(), 403);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["error"]["code"], "forbidden");
    assert_eq!(body["error"]["required_role"], "operator");
    // …or to approve a template, lift the limit, or claim a message.
    for (path, body, role) in [
        (
            "/v1/templates/HX0123456789abcdef0123456789abcdef/status",
            json!({"status": "approved"}),
            "operator",
        ),
        (
            "/v1/portfolios/default/messaging-limit",
            json!({"limit": "unlimited"}),
            "operator",
        ),
        (
            "/v1/messages/0190b5a2-7c1e-7000-8000-000000000001/claim",
            Value::Null,
            "dispatcher",
        ),
    ] {
        let response = hub.post_as(AGENT_TOKEN, path, body).await;
        assert_eq!(response.status(), 403, "{path}");
        let body: Value = response.json().await.expect("json");
        assert_eq!(body["error"]["required_role"], role, "{path}");
    }
    assert_eq!(
        hub.events().await.len(),
        before,
        "a refusal appends nothing"
    );

    // The auditor reads but writes nothing; an unknown token is 401.
    assert_eq!(hub.get_as(AUDITOR_TOKEN, "/v1/events").await.status(), 200);
    assert_eq!(
        hub.post_as(AUDITOR_TOKEN, "/v1/messages", template_send(CONTACT))
            .await
            .status(),
        403
    );
    assert_eq!(hub.get_as("nobody", "/v1/senders").await.status(), 401);
    assert_eq!(hub.events().await.len(), before);

    // What the agent may do, it does.
    let response = hub
        .post_as(AGENT_TOKEN, "/v1/messages", template_send(CONTACT))
        .await;
    assert_eq!(response.status(), 202);
}

#[tokio::test]
async fn the_export_shows_who_asked_for_each_event() {
    let dir = tempfile::tempdir().expect("dir");
    let hub = start(dir.path());
    hub.ready().await;
    let response = hub
        .post_as(AGENT_TOKEN, "/v1/messages", template_send(CONTACT))
        .await;
    assert_eq!(response.status(), 202);
    let signature = twilio_signature("/webhooks/twilio/inbound", "twilio_inbound_text.form");
    let inbound = hub
        .twilio(
            "/webhooks/twilio/inbound",
            fixture("twilio_inbound_text.form"),
            &signature,
        )
        .await;
    assert!(inbound.status().is_success(), "{}", inbound.status());

    let events = hub.events().await;
    let actor = |kind: &str| {
        events
            .iter()
            .find(|event| event["type"] == kind)
            .map(|event| event["actor"].clone())
            .unwrap_or_else(|| panic!("no {kind} in {events:?}"))
    };
    assert_eq!(actor("OptedIn"), json!({"kind": "operator", "name": "api"}));
    assert_eq!(
        actor("TemplateSent"),
        json!({"kind": "agent", "name": "agent"})
    );
    assert_eq!(
        actor("InboundReceived"),
        json!({"kind": "webhook", "name": "twilio"})
    );
    // Every event says who asked: none is recorded without an actor.
    assert!(events.iter().all(|event| event["actor"].is_object()));

    // `wagate export` of the stopped database shows the same.
    let status = hub.terminate();
    assert!(status.success());
    let output = Command::new(env!("CARGO_BIN_EXE_wagate"))
        .args(["export", "--data"])
        .arg(dir.path())
        .env("WAGATE_LOG", "warn")
        .output()
        .expect("export");
    assert!(output.status.success(), "{output:?}");
    let text = String::from_utf8_lossy(&output.stdout);
    let sent: Value = text
        .lines()
        .map(|line| serde_json::from_str::<Value>(line).expect("json"))
        .find(|line| line["type"] == "TemplateSent")
        .expect("TemplateSent exported");
    assert_eq!(sent["actor"], json!({"kind": "agent", "name": "agent"}));
}

#[tokio::test]
async fn sandbox_mode_prints_a_token_per_role_and_each_holds_its_role() {
    let dir = tempfile::tempdir().expect("dir");
    let hub = start_sandbox(dir.path());
    let token = |label: &str| {
        hub.banner
            .iter()
            .find_map(|line| line.strip_prefix(&format!("{label}: ")))
            .unwrap_or_else(|| panic!("no {label} in {:?}", hub.banner))
            .to_owned()
    };
    let agent = token("agent token");
    let auditor = token("auditor token");
    let dispatcher = token("dispatcher token");
    assert!(agent.starts_with("wg_agent_"));
    assert_eq!(
        hub.get_as(&dispatcher, "/v1/dispatch/pending")
            .await
            .status(),
        200
    );
    assert_eq!(
        hub.get_as(&agent, "/v1/dispatch/pending").await.status(),
        403
    );
    assert_eq!(hub.get_as(&auditor, "/v1/events").await.status(), 200);
    assert_eq!(hub.get_as(&agent, "/v1/events").await.status(), 403);
    assert_eq!(hub.get("/v1/senders").await.status(), 200);
}

/// `wagate serve` with only `env` (no inherited WAGATE_ variable): it must exit non-zero at once,
/// its message naming `needles`.
fn refuses_to_start(env: &[(&str, &str)], args: &[&str], needles: &[&str]) {
    let dir = tempfile::tempdir().expect("dir");
    let mut command = Command::new(env!("CARGO_BIN_EXE_wagate"));
    command
        .args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(dir.path().join("data"))
        .args(args)
        .stdin(Stdio::null());
    for (name, _) in std::env::vars() {
        if name.starts_with("WAGATE_") {
            command.env_remove(name);
        }
    }
    command.env("WAGATE_LOG", "warn");
    for (name, value) in env {
        command.env(name, value);
    }
    let output = command.output().expect("run");
    assert!(!output.status.success(), "{env:?} started");
    assert_eq!(output.status.code(), Some(1), "{env:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    for needle in needles {
        assert!(stderr.contains(needle), "{needle:?} not in {stderr}");
    }
    // Nothing was created: it refused before opening the log.
    assert!(!dir.path().join("data").exists());
}

#[test]
fn blank_secrets_refuse_to_start_naming_the_setting() {
    for var in [
        "WAGATE_TWILIO_AUTH_TOKEN",
        "WAGATE_META_APP_SECRET",
        "WAGATE_API_TOKEN",
        "WAGATE_AGENT_TOKEN",
    ] {
        refuses_to_start(&[(var, "  ")], &[], &[var, "empty"]);
    }
    let dir = tempfile::tempdir().expect("dir");
    let config = dir.path().join("wagate.toml");
    std::fs::write(
        &config,
        "api_token = \"tok\"\npublic_url = \"https://hub.example.com\"\ntwilio_auth_token = \"\"\n",
    )
    .expect("write");
    refuses_to_start(
        &[],
        &["--config", config.to_str().expect("utf-8")],
        &["twilio_auth_token", "empty"],
    );
    std::fs::write(
        &config,
        "[[tokens]]\nname = \"root\"\nrole = \"admin\"\ntoken = \"x\"\n",
    )
    .expect("write");
    refuses_to_start(
        &[],
        &["--config", config.to_str().expect("utf-8")],
        &["unknown role \"admin\""],
    );
}

#[test]
fn unverifiable_webhooks_refuse_to_start_unless_allowed() {
    refuses_to_start(
        &[
            ("WAGATE_TWILIO_AUTH_TOKEN", TWILIO_AUTH_TOKEN),
            ("WAGATE_API_TOKEN", API_TOKEN),
        ],
        &[],
        &["WAGATE_TWILIO_AUTH_TOKEN", "Set WAGATE_PUBLIC_URL"],
    );
    refuses_to_start(
        &[
            ("WAGATE_META_ACCESS_TOKEN", "meta-token"),
            ("WAGATE_API_TOKEN", API_TOKEN),
        ],
        &[],
        &["WAGATE_META_ACCESS_TOKEN", "Set WAGATE_META_APP_SECRET"],
    );
}

#[tokio::test]
async fn the_override_starts_with_a_loud_warning() {
    let dir = tempfile::tempdir().expect("dir");
    let data = dir.path().join("data");
    let mut command = Command::new(env!("CARGO_BIN_EXE_wagate"));
    command
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--allow-unverifiable-webhooks",
            "--no-dispatch",
            "--data",
        ])
        .arg(&data)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (name, _) in std::env::vars() {
        if name.starts_with("WAGATE_") {
            command.env_remove(name);
        }
    }
    command
        .env("WAGATE_LOG", "warn")
        .env("WAGATE_META_ACCESS_TOKEN", "meta-token")
        .env("WAGATE_API_TOKEN", API_TOKEN);
    let mut child = command.spawn().expect("start");
    let stderr = child.stderr.take().expect("stderr");
    let mut first = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(stderr), &mut first)
        .expect("read stderr");
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        first.contains("--allow-unverifiable-webhooks") && first.contains("WAGATE_META_APP_SECRET"),
        "{first}"
    );
}
