//! Issue 16's HubSpot timeline against the real binary and a local fake of HubSpot's CRM API
//! (contact search and create, communication and note create, communication update and search,
//! default associations, a 429 with its rate-limit headers): a message's whole life is one
//! Communication updated to `read`; a SIGKILL while HubSpot holds a create's answer, then a
//! restart, creates no second one.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};
use wagate_providers::twilio::{compute_signature, SigningAlgorithm, SortedParams};
use wagate_providers::Secret;
use wiremock::matchers::any;
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use crate::support::*;

const HUBSPOT_TOKEN: &str = "pat-na1-e2e";
const PROVIDER_SID: &str = "SM0f1e2d3c4b5a69788796a5b4c3d2e1f0";

/// HubSpot as far as the mirror uses it, in memory.
#[derive(Debug, Default)]
pub(crate) struct State {
    pub(crate) next_id: u64,
    /// id → phone.
    pub(crate) contacts: BTreeMap<String, String>,
    pub(crate) contact_properties: BTreeMap<String, Map<String, Value>>,
    pub(crate) communications: BTreeMap<String, Map<String, Value>>,
    pub(crate) notes: BTreeMap<String, Map<String, Value>>,
    /// (object type, object id, contact id).
    pub(crate) associations: Vec<(String, String, String)>,
    /// 429s still to answer (to the next requests, whatever they are).
    pub(crate) rate_limited: u32,
    /// Communication creates answered only after this long (the create is done at once).
    pub(crate) slow_creates: Option<Duration>,
    /// Note creates answered only after this long (the create is done at once).
    pub(crate) slow_notes: Option<Duration>,
    pub(crate) communication_searches: u32,
    pub(crate) unauthorized: u32,
    /// Contact creates answered 400, as HubSpot does for an invalid property value.
    pub(crate) refuse_contacts: bool,
}

#[derive(Clone, Default)]
pub(crate) struct FakeHubSpot(Arc<Mutex<State>>);

impl FakeHubSpot {
    pub(crate) fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        f(&mut self.0.lock().expect("fake state"))
    }
}

fn properties(request: &Request) -> Map<String, Value> {
    let body: Value = serde_json::from_slice(&request.body).expect("json body");
    body["properties"].as_object().cloned().unwrap_or_default()
}

fn object(id: &str, properties: &Map<String, Value>) -> Value {
    json!({"id": id, "properties": properties, "createdAt": "2026-12-05T10:00:00.000Z",
           "updatedAt": "2026-12-05T10:00:00.000Z", "archived": false})
}

fn search_value(request: &Request) -> (String, String) {
    let body: Value = serde_json::from_slice(&request.body).expect("json body");
    let filter = &body["filterGroups"][0]["filters"][0];
    (
        filter["propertyName"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        filter["value"].as_str().unwrap_or_default().to_owned(),
    )
}

impl Respond for FakeHubSpot {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let mut state = self.0.lock().expect("fake state");
        let bearer = request
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok());
        if bearer != Some(&format!("Bearer {HUBSPOT_TOKEN}")) {
            state.unauthorized += 1;
            return ResponseTemplate::new(401).set_body_json(json!({"status": "error",
                "message": "Authentication credentials not found.", "category": "INVALID_AUTHENTICATION"}));
        }
        if state.rate_limited > 0 {
            state.rate_limited -= 1;
            return ResponseTemplate::new(429)
                .insert_header("Retry-After", "1")
                .insert_header("X-HubSpot-RateLimit-Interval-Milliseconds", "10000")
                .insert_header("X-HubSpot-RateLimit-Max", "100")
                .insert_header("X-HubSpot-RateLimit-Remaining", "0")
                .set_body_json(json!({"status": "error", "message": "You have reached your ten_secondly_rolling limit.",
                    "errorType": "RATE_LIMIT", "correlationId": "c033cdaa-2c40-4a64-ae48-b4cec88dad24",
                    "policyName": "TEN_SECONDLY_ROLLING"}));
        }
        let path = request.url.path().to_owned();
        let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        let method = request.method.as_str();
        let new_id = |state: &mut State| {
            state.next_id += 1;
            (30_000 + state.next_id).to_string()
        };
        match (method, segments.as_slice()) {
            ("POST", ["crm", "v3", "objects", "contacts", "search"]) => {
                let body: Value = serde_json::from_slice(&request.body).expect("json");
                let phone = body["filterGroups"][0]["filters"][0]["value"]
                    .as_str()
                    .unwrap_or_default();
                let results: Vec<Value> = state
                    .contacts
                    .iter()
                    .filter(|(_, p)| p.as_str() == phone)
                    .map(|(id, p)| json!({"id": id, "properties": {"phone": p}}))
                    .take(1)
                    .collect();
                ResponseTemplate::new(200)
                    .set_body_json(json!({"total": results.len(), "results": results}))
            }
            ("POST", ["crm", "v3", "objects", "contacts"]) if state.refuse_contacts => {
                ResponseTemplate::new(400).set_body_json(json!({"status": "error",
                    "message": "Property values were not valid: phone", "correlationId": "aeb5f871-7f07-4993-9211-075dc63e7cbf",
                    "category": "VALIDATION_ERROR"}))
            }
            ("POST", ["crm", "v3", "objects", "contacts"]) => {
                let props = properties(request);
                let id = new_id(&mut state);
                let phone = props["phone"].as_str().unwrap_or_default().to_owned();
                state.contacts.insert(id.clone(), phone);
                ResponseTemplate::new(201).set_body_json(object(&id, &props))
            }
            ("PATCH", ["crm", "v3", "objects", "contacts", id]) => {
                let props = properties(request);
                state
                    .contact_properties
                    .entry((*id).to_owned())
                    .or_default()
                    .extend(props.clone());
                ResponseTemplate::new(200).set_body_json(object(id, &props))
            }
            ("POST", ["crm", "v3", "objects", "communications"]) => {
                let props = properties(request);
                assert_eq!(props["hs_communication_channel_type"], "WHATS_APP");
                let id = new_id(&mut state);
                state.communications.insert(id.clone(), props.clone());
                let answer = ResponseTemplate::new(201).set_body_json(object(&id, &props));
                match state.slow_creates {
                    Some(delay) => answer.set_delay(delay),
                    None => answer,
                }
            }
            ("POST", ["crm", "v3", "objects", kind @ ("communications" | "notes"), "search"]) => {
                if *kind == "communications" {
                    state.communication_searches += 1;
                }
                let (property, value) = search_value(request);
                let records = if *kind == "communications" {
                    &state.communications
                } else {
                    &state.notes
                };
                let results: Vec<Value> = records
                    .iter()
                    .filter(|(_, props)| {
                        props.get(&property).and_then(Value::as_str) == Some(&value)
                    })
                    .map(|(id, props)| object(id, props))
                    .collect();
                ResponseTemplate::new(200)
                    .set_body_json(json!({"total": results.len(), "results": results}))
            }
            ("PATCH", ["crm", "v3", "objects", "communications", id]) => {
                let props = properties(request);
                match state.communications.get_mut(*id) {
                    Some(existing) => {
                        existing.extend(props);
                        let answer = object(id, existing);
                        ResponseTemplate::new(200).set_body_json(answer)
                    }
                    None => ResponseTemplate::new(404).set_body_json(json!({"status": "error",
                        "message": "Object not found", "category": "OBJECT_NOT_FOUND"})),
                }
            }
            ("POST", ["crm", "v3", "objects", "notes"]) => {
                let props = properties(request);
                let id = new_id(&mut state);
                state.notes.insert(id.clone(), props.clone());
                let answer = ResponseTemplate::new(201).set_body_json(object(&id, &props));
                match state.slow_notes {
                    Some(delay) => answer.set_delay(delay),
                    None => answer,
                }
            }
            (
                "PUT",
                ["crm", "v4", "objects", kind, id, "associations", "default", "contacts", contact],
            ) => {
                let association = ((*kind).to_owned(), (*id).to_owned(), (*contact).to_owned());
                if !state.associations.contains(&association) {
                    state.associations.push(association);
                }
                ResponseTemplate::new(200)
                    .set_body_json(json!({"status": "COMPLETE", "results": []}))
            }
            _ => ResponseTemplate::new(404).set_body_json(
                json!({"status": "error", "message": format!("no route {method} {path}")}),
            ),
        }
    }
}

pub(crate) async fn fake_hubspot() -> (MockServer, FakeHubSpot) {
    let server = MockServer::start().await;
    let fake = FakeHubSpot::default();
    Mock::given(any())
        .respond_with(fake.clone())
        .mount(&server)
        .await;
    (server, fake)
}

pub(crate) fn start_hub(data: &std::path::Path, hubspot: &MockServer) -> Hub {
    start_with(
        data,
        &[
            ("WAGATE_TWILIO_AUTH_TOKEN", TWILIO_AUTH_TOKEN),
            ("WAGATE_HUBSPOT_TOKEN", HUBSPOT_TOKEN),
            ("WAGATE_HUBSPOT_API_BASE", &hubspot.uri()),
            ("WAGATE_HUBSPOT_CREATE_CONTACTS", "true"),
            ("WAGATE_HUBSPOT_CONSENT_PROPERTY", "whatsapp_consent"),
            ("WAGATE_HUBSPOT_ID_PROPERTY", "wagate_id"),
        ],
        &["--no-dispatch"],
    )
}

pub(crate) async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Sends the template as the agent: its message id.
pub(crate) async fn send(hub: &Hub) -> String {
    let sent = hub
        .post_as(AGENT_TOKEN, "/v1/messages", template_send(CONTACT))
        .await;
    assert_eq!(sent.status(), 202);
    sent.json::<Value>().await.expect("json")["message_id"]
        .as_str()
        .expect("id")
        .to_owned()
}

/// Claims `id` and reports Twilio's acceptance, as the dispatcher.
pub(crate) async fn dispatch(hub: &Hub, id: &str) {
    let claim = hub
        .post_as(
            DISPATCHER_TOKEN,
            &format!("/v1/messages/{id}/claim"),
            json!({}),
        )
        .await;
    assert_eq!(claim.status(), 200);
    let attempt = claim.json::<Value>().await.expect("json")["attempt"]
        .as_u64()
        .expect("attempt");
    let outcome = hub
        .post_as(
            DISPATCHER_TOKEN,
            &format!("/v1/messages/{id}/outcome"),
            json!({"attempt": attempt, "accepted": {"provider_ref": PROVIDER_SID, "provider_status": "queued"}}),
        )
        .await;
    assert_eq!(
        outcome.status(),
        200,
        "{}",
        outcome.text().await.unwrap_or_default()
    );
}

/// A signed Twilio status callback for the message.
async fn status(hub: &Hub, status: &str) {
    let pairs = [
        ("MessageSid", PROVIDER_SID),
        ("SmsSid", PROVIDER_SID),
        ("MessageStatus", status),
        ("SmsStatus", status),
        ("AccountSid", "AC3f9d2c41b7e85a06d1c4f0e9a2b7d315"),
        ("From", SENDER),
        ("To", "whatsapp:+41790000001"),
        ("ApiVersion", "2010-04-01"),
    ];
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish();
    let signature = compute_signature(
        &Secret::new(TWILIO_AUTH_TOKEN),
        SigningAlgorithm::HmacSha1,
        &format!("{PUBLIC_URL}/webhooks/twilio/status"),
        &SortedParams::from_pairs(pairs),
    );
    let response = hub
        .twilio("/webhooks/twilio/status", body.into_bytes(), &signature)
        .await;
    assert!(
        response.status().is_success(),
        "{status}: {}",
        response.status()
    );
}

fn body_of_props(props: &Map<String, Value>) -> String {
    props["hs_communication_body"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// A signed Twilio inbound message from the contact.
async fn inbound(hub: &Hub, text: &str) {
    let pairs = [
        ("MessageSid", "SM1a2b3c4d5e6f708192a3b4c5d6e7f809"),
        ("SmsMessageSid", "SM1a2b3c4d5e6f708192a3b4c5d6e7f809"),
        ("AccountSid", "AC3f9d2c41b7e85a06d1c4f0e9a2b7d315"),
        ("From", "whatsapp:+41790000001"),
        ("To", SENDER),
        ("Body", text),
        ("NumMedia", "0"),
        ("ProfileName", "Lea"),
        ("WaId", "41790000001"),
        ("ApiVersion", "2010-04-01"),
    ];
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish();
    let signature = compute_signature(
        &Secret::new(TWILIO_AUTH_TOKEN),
        SigningAlgorithm::HmacSha1,
        &format!("{PUBLIC_URL}/webhooks/twilio/inbound"),
        &SortedParams::from_pairs(pairs),
    );
    let response = hub
        .twilio("/webhooks/twilio/inbound", body.into_bytes(), &signature)
        .await;
    assert!(
        response.status().is_success(),
        "inbound: {}",
        response.status()
    );
}

fn body_of(fake: &FakeHubSpot, id: &str) -> String {
    fake.with(|s| {
        s.communications[id]["hs_communication_body"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    })
}

#[tokio::test]
async fn a_message_lifecycle_is_one_communication_updated_to_read() {
    let (server, fake) = fake_hubspot().await;
    // HubSpot's burst limit answers the mirror's first call.
    fake.with(|s| s.rate_limited = 1);
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("db");
    let hub = start_hub(&data, &server);
    hub.ready().await;

    let id = send(&hub).await;
    dispatch(&hub, &id).await;
    for step in ["sent", "delivered", "read"] {
        status(&hub, step).await;
    }
    wait_for("the communication to say read", || {
        fake.with(|s| s.communications.len() == 1)
            && body_of(
                &fake,
                fake.with(|s| s.communications.keys().next().cloned())
                    .as_deref()
                    .unwrap_or_default(),
            )
            .contains("Status: read")
    })
    .await;

    let (comm_id, props) = fake.with(|s| {
        let (id, props) = s.communications.iter().next().expect("one");
        (id.clone(), props.clone())
    });
    let body = props["hs_communication_body"].as_str().expect("body");
    assert!(
        body.contains("viewing_reminder") && body.contains("Lea"),
        "{body}"
    );
    assert_eq!(props["wagate_id"], format!("msg:{id}"));
    assert_eq!(props["hs_communication_logged_from"], "CRM");
    let (contact_id, phone) = fake.with(|s| {
        assert_eq!(s.contacts.len(), 1, "one contact created");
        s.contacts
            .iter()
            .next()
            .map(|(i, p)| (i.clone(), p.clone()))
            .expect("contact")
    });
    assert_eq!(phone, CONTACT);
    fake.with(|s| {
        assert!(s.associations.contains(&(
            "communications".into(),
            comm_id.clone(),
            contact_id.clone()
        )));
        // The opt-in: a note on the contact and the consent property.
        assert_eq!(s.notes.len(), 1);
        let note_id = s.notes.keys().next().expect("note").clone();
        assert!(s
            .associations
            .contains(&("notes".into(), note_id, contact_id.clone())));
        assert_eq!(
            s.contact_properties[&contact_id]["whatsapp_consent"],
            "opted_in"
        );
        assert_eq!(s.rate_limited, 0, "the 429 was answered");
        assert_eq!(s.unauthorized, 0, "every call carried the bearer token");
    });

    // The contact answers: a second Communication, on the same contact.
    inbound(&hub, "Thanks, <see> you Thursday").await;
    // Created, then associated (a second call): wait for both.
    wait_for("the inbound communication, associated", || {
        fake.with(|s| {
            s.communications.len() == 2
                && s.associations
                    .iter()
                    .any(|(kind, id, _)| kind == "communications" && *id != comm_id)
        })
    })
    .await;
    fake.with(|s| {
        let (inbound_id, props) = s
            .communications
            .iter()
            .find(|(id, _)| **id != comm_id)
            .expect("inbound");
        let body = props["hs_communication_body"].as_str().expect("body");
        assert!(
            body.contains("received") && body.contains("Thanks, &lt;see&gt; you Thursday"),
            "{body}"
        );
        assert!(props["wagate_id"].as_str().expect("key").starts_with("in:"));
        assert!(s.associations.contains(&(
            "communications".into(),
            inbound_id.clone(),
            contact_id.clone()
        )));
        assert!(body_of_props(&s.communications[&comm_id]).contains("Status: read"));
    });

    let requests = server.received_requests().await.expect("recording");
    assert!(requests
        .iter()
        .all(|r| r.headers.get("authorization").map(|v| v.as_bytes())
            == Some(format!("Bearer {HUBSPOT_TOKEN}").as_bytes())));
}

#[tokio::test]
async fn a_sigkill_while_hubspot_answers_a_create_leaves_no_duplicate() {
    let (server, fake) = fake_hubspot().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("db");
    let hub = start_hub(&data, &server);
    hub.ready().await;
    wait_for("the opt-in note", || fake.with(|s| s.notes.len() == 1)).await;

    // HubSpot makes the Communication at once but answers only much later: the hub dies in
    // between, before it could record the id.
    fake.with(|s| s.slow_creates = Some(Duration::from_secs(30)));
    let id = send(&hub).await;
    wait_for("the create to reach HubSpot", || {
        fake.with(|s| s.communications.len() == 1)
    })
    .await;
    drop(hub); // SIGKILL
    fake.with(|s| s.slow_creates = None);

    let hub = start_hub(&data, &server);
    dispatch(&hub, &id).await;
    status(&hub, "read").await;
    wait_for("the communication to say read", || {
        let only = fake.with(|s| s.communications.keys().next().cloned());
        only.is_some_and(|comm| body_of(&fake, &comm).contains("Status: read"))
    })
    .await;
    fake.with(|s| {
        assert_eq!(
            s.communications.len(),
            1,
            "no second Communication: {:?}",
            s.communications
        );
        assert!(
            s.communication_searches >= 1,
            "the lost create was looked up"
        );
        let comm = s.communications.keys().next().expect("one").clone();
        let contact = s.contacts.keys().next().expect("contact").clone();
        assert!(s
            .associations
            .contains(&("communications".into(), comm, contact)));
        assert_eq!(s.notes.len(), 1, "the opt-in note was not repeated");
        assert_eq!(s.contacts.len(), 1);
    });
    drop(hub);
}

/// `wagate crm backfill` on the stopped hub's database, against the fake.
fn backfill(data: &std::path::Path, hubspot: &MockServer, from: &str) -> std::process::Output {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_wagate"));
    for (name, _) in std::env::vars() {
        if name.starts_with("WAGATE_") {
            command.env_remove(name);
        }
    }
    command
        .args(["crm", "backfill", "--from", from, "--data"])
        .arg(data)
        .env("WAGATE_LOG", "warn")
        .env("WAGATE_HUBSPOT_TOKEN", HUBSPOT_TOKEN)
        .env("WAGATE_HUBSPOT_API_BASE", hubspot.uri())
        .env("WAGATE_HUBSPOT_CREATE_CONTACTS", "true")
        .env("WAGATE_HUBSPOT_ID_PROPERTY", "wagate_id")
        .output()
        .expect("run wagate crm backfill")
}

#[tokio::test]
async fn a_backfill_mirrors_the_history_once_however_often_it_runs() {
    let (server, fake) = fake_hubspot().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("db");
    // A hub with no HubSpot settings: nothing is mirrored while it runs.
    let hub = start_with(
        &data,
        &[("WAGATE_TWILIO_AUTH_TOKEN", TWILIO_AUTH_TOKEN)],
        &["--no-dispatch"],
    );
    hub.ready().await;
    let id = send(&hub).await;
    dispatch(&hub, &id).await;
    status(&hub, "delivered").await;
    let stopped = hub.terminate();
    assert!(stopped.success(), "{stopped}");
    assert!(server
        .received_requests()
        .await
        .expect("recording")
        .is_empty());

    let past = backfill(&data, &server, "100000");
    assert_eq!(past.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&past.stderr).contains("past the log's head"));

    for run in 0..2 {
        let output = backfill(&data, &server, "1");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "run {run}: {stdout} {}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(stdout.starts_with("backfill: positions 1..="), "{stdout}");
        fake.with(|s| {
            assert_eq!(s.communications.len(), 1, "run {run}");
            assert_eq!(s.notes.len(), 1, "run {run}");
            assert_eq!(s.contacts.len(), 1, "run {run}");
            let body = s.communications.values().next().expect("one")["hs_communication_body"]
                .as_str()
                .expect("body")
                .to_owned();
            assert!(body.contains("Status: delivered"), "{body}");
        });
    }
}

#[tokio::test]
async fn a_record_hubspot_refuses_is_a_review_item_and_the_rest_goes_on() {
    let (server, fake) = fake_hubspot().await;
    fake.with(|s| s.refuse_contacts = true);
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("db");
    let hub = start_hub(&data, &server);
    hub.ready().await;
    // The opt-in's note needs the contact, which HubSpot refuses to create.
    let mut items = Vec::new();
    wait_for_async("a crm_sync_failed item", async || {
        let response = hub.get("/v1/review?reason=crm_sync_failed").await;
        assert_eq!(response.status(), 200);
        items = response.json::<Value>().await.expect("json")["items"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        !items.is_empty()
    })
    .await;
    assert_eq!(items.len(), 1, "{items:?}");
    assert_eq!(items[0]["contact"], CONTACT);
    let detail = items[0]["detail"].as_str().expect("detail");
    assert!(
        detail.contains("VALIDATION_ERROR") && detail.contains("not valid"),
        "{detail}"
    );

    // HubSpot takes contacts again: the next message is mirrored.
    fake.with(|s| s.refuse_contacts = false);
    send(&hub).await;
    wait_for("the next message's communication", || {
        fake.with(|s| s.communications.len() == 1)
    })
    .await;
    fake.with(|s| {
        assert!(
            s.notes.is_empty(),
            "the refused note was skipped, not retried"
        )
    });
}

pub(crate) async fn wait_for_async(what: &str, mut done: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
