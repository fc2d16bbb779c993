//! Issue 16's "a backfill from any log position", on a running hub: `wagate crm backfill --hub`
//! (and `POST /v1/crm/backfill`) makes the running mirror read the log again beside the live
//! one. What HubSpot refused earlier is created once HubSpot takes it; what it already has is
//! not created twice, however often the backfill runs; one backfill runs at a time.

use std::time::Duration;

use serde_json::{json, Value};

use crate::crm_hubspot::{
    dispatch, fake_hubspot, send, start_hub, wait_for, wait_for_async, FakeHubSpot,
};
use crate::support::*;

/// `wagate crm backfill --hub URL --from POSITION` with the operator's token.
fn backfill_cli(hub: &Hub, from: &str) -> std::process::Output {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_wagate"));
    for (name, _) in std::env::vars() {
        if name.starts_with("WAGATE_") {
            command.env_remove(name);
        }
    }
    command
        .args(["crm", "backfill", "--from", from, "--hub", &hub.base])
        .env("WAGATE_API_TOKEN", &hub.token)
        .env("WAGATE_LOG", "warn")
        .output()
        .expect("run wagate crm backfill --hub")
}

/// What HubSpot holds: (contacts, communications, notes).
fn counts(fake: &FakeHubSpot) -> (usize, usize, usize) {
    fake.with(|s| (s.contacts.len(), s.communications.len(), s.notes.len()))
}

/// Schedules a backfill from 1 through the route, waiting out the one running.
async fn backfill_when_free(hub: &Hub) {
    wait_for_async("the running backfill to finish", async || {
        let response = hub.post("/v1/crm/backfill", json!({"from": 1})).await;
        match response.status().as_u16() {
            202 => true,
            409 => false,
            other => panic!("{other}: {}", response.text().await.unwrap_or_default()),
        }
    })
    .await;
}

#[tokio::test]
async fn a_backfill_on_a_running_hub_mirrors_what_hubspot_refused_and_nothing_twice() {
    let (server, fake) = fake_hubspot().await;
    // The opt-in's note needs the contact, which HubSpot refuses to create: skipped, a review
    // item raised, no link written.
    fake.with(|s| s.refuse_contacts = true);
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("db");
    let hub = start_hub(&data, &server);
    hub.ready().await;
    wait_for_async("the crm_sync_failed item", async || {
        let response = hub.get("/v1/review?reason=crm_sync_failed").await;
        let items = response.json::<Value>().await.expect("json")["items"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        !items.is_empty()
    })
    .await;

    // HubSpot takes contacts again: the live mirror goes on with the next message.
    fake.with(|s| s.refuse_contacts = false);
    send(&hub).await;
    wait_for("the live mirror's communication", || {
        counts(&fake) == (1, 1, 0)
    })
    .await;

    // Bad positions are refused, naming the field.
    for from in [0, 1_000_000] {
        let response = hub.post("/v1/crm/backfill", json!({"from": from})).await;
        assert_eq!(response.status(), 400, "from {from}");
        let body: Value = response.json().await.expect("json");
        assert_eq!(body["error"]["field"], "from", "{body}");
    }
    // An operator's route: the agent may not.
    let response = hub
        .post_as(AGENT_TOKEN, "/v1/crm/backfill", json!({"from": 1}))
        .await;
    assert_eq!(response.status(), 403);

    // HubSpot answers the backfill's note create slowly: the backfill is still running.
    fake.with(|s| s.slow_notes = Some(Duration::from_secs(2)));
    let output = backfill_cli(&hub, "1");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("backfill scheduled"), "{stdout}");
    assert!(stdout.contains("positions 1..="), "{stdout}");

    // One at a time: a second one is refused, naming the running one.
    let response = hub.post("/v1/crm/backfill", json!({"from": 2})).await;
    assert_eq!(response.status(), 409);
    let body: Value = response.json().await.expect("json");
    let message = body["error"]["message"].as_str().expect("message");
    assert!(
        message.contains("already running") && message.contains("from position 1"),
        "{message}"
    );

    wait_for("the backfilled opt-in note", || counts(&fake).2 == 1).await;
    fake.with(|s| s.slow_notes = None);
    // Run it twice more to its end: nothing is created again.
    backfill_when_free(&hub).await;
    backfill_when_free(&hub).await;
    backfill_when_free(&hub).await;
    fake.with(|s| {
        assert_eq!(s.contacts.len(), 1, "{:?}", s.contacts);
        assert_eq!(s.communications.len(), 1, "{:?}", s.communications);
        assert_eq!(s.notes.len(), 1, "{:?}", s.notes);
        let contact = s.contacts.keys().next().expect("contact").clone();
        let note = s.notes.keys().next().expect("note").clone();
        assert!(s
            .associations
            .contains(&("notes".into(), note, contact.clone())));
        assert_eq!(
            s.contact_properties[&contact]["whatsapp_consent"],
            "opted_in"
        );
    });

    // The live mirror still runs after the backfills.
    let id = send(&hub).await;
    dispatch(&hub, &id).await;
    wait_for("the next message's communication", || {
        counts(&fake) == (1, 2, 1)
    })
    .await;
}

#[tokio::test]
async fn a_hub_without_a_crm_mirror_says_so() {
    let dir = tempfile::tempdir().expect("tempdir");
    let hub = start_with(
        &dir.path().join("db"),
        &[("WAGATE_TWILIO_AUTH_TOKEN", TWILIO_AUTH_TOKEN)],
        &["--no-dispatch"],
    );
    hub.ready().await;
    let response = hub.post("/v1/crm/backfill", json!({"from": 1})).await;
    assert_eq!(response.status(), 409);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["error"]["code"], "conflict");
    assert!(
        body["error"]["message"]
            .as_str()
            .expect("message")
            .contains("runs no CRM mirror"),
        "{body}"
    );

    let output = backfill_cli(&hub, "1");
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("runs no CRM mirror"), "{stderr}");
}
