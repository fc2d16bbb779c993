//! `Idempotency-Key` over HTTP against the real binary: a retry (however its JSON is spelled) is
//! the first answer with `Idempotent-Replayed: true`, the key with another send is 409, two
//! different sends racing on one key record one and refuse the other, and all of it holds after
//! a restart (the request digest is on disk with the answer).

use serde_json::{json, Value};

use crate::support::*;

/// Posts raw JSON text with a key: the bytes, not a re-serialized value, are what is compared.
async fn keyed(hub: &Hub, key: &str, body: &str) -> reqwest::Response {
    hub.http
        .post(hub.url("/v1/messages"))
        .bearer_auth(&hub.token)
        .header("Idempotency-Key", key)
        .header("Content-Type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .expect("send")
}

fn replayed(response: &reqwest::Response) -> Option<String> {
    response
        .headers()
        .get("Idempotent-Replayed")
        .map(|value| value.to_str().expect("ascii").to_owned())
}

/// Status, the replay header and the JSON body.
/// Status, `Idempotent-Replayed`, and the body without its `error.request_id` (every request
/// has its own; the rest of a replayed answer is the first one's).
async fn answer(response: reqwest::Response) -> (u16, Option<String>, Value) {
    let status = response.status().as_u16();
    let header = replayed(&response);
    let mut body: Value = response.json().await.expect("json");
    if let Some(error) = body.get_mut("error").and_then(Value::as_object_mut) {
        error.remove("request_id");
    }
    (status, header, body)
}

fn template_body(second_variable: &str) -> String {
    json!({"to": CONTACT, "workflow": "appointment_scheduling",
           "template": {"content_sid": TEMPLATE,
                        "variables": {"1": "Lea", "2": second_variable}}})
    .to_string()
}

/// The template send of `template_body("Thu 10:00")`, spelled differently.
fn respelled() -> String {
    format!(
        "{{\n  \"template\" : {{ \"variables\": {{\"2\": \"Thu 10:00\", \"1\": \"Lea\"}},\n \
         \"content_sid\": \"{TEMPLATE}\" }},\n  \"from\": \"{SENDER}\",\n  \
         \"workflow\": \"appointment_scheduling\", \"to\": \"{CONTACT}\"\n}}"
    )
}

async fn template_intents(hub: &Hub) -> usize {
    hub.events()
        .await
        .iter()
        .filter(|event| event["type"] == "TemplateSent")
        .count()
}

#[tokio::test]
pub(crate) async fn replays_reused_keys_and_races_over_http_and_across_a_restart() {
    let dir = tempfile::tempdir().expect("dir");
    let hub = start(dir.path());
    hub.ready().await;

    let (status, header, first) =
        answer(keyed(&hub, "visit-1", &template_body("Thu 10:00")).await).await;
    assert_eq!(status, 202, "{first}");
    assert_eq!(header, None, "a first answer is not a replay");
    let head = hub.events().await.len();

    let (status, header, again) = answer(keyed(&hub, "visit-1", &respelled()).await).await;
    assert_eq!((status, header.as_deref()), (202, Some("true")), "{again}");
    assert_eq!(again, first, "the same message id, status and dry_run");

    let (status, header, reused) =
        answer(keyed(&hub, "visit-1", &template_body("Fri 11:00")).await).await;
    assert_eq!((status, header), (409, None), "{reused}");
    assert_eq!(reused["error"]["code"], "idempotency_key_reused");
    assert_eq!(reused["error"]["field"], "Idempotency-Key");
    assert!(
        reused["error"]["message"]
            .as_str()
            .expect("message")
            .contains("\"visit-1\""),
        "{reused}"
    );
    let dry = hub
        .http
        .post(hub.url("/v1/messages?dry_run=true"))
        .bearer_auth(&hub.token)
        .header("Idempotency-Key", "visit-1")
        .header("Content-Type", "application/json")
        .body(template_body("Thu 10:00"))
        .send()
        .await
        .expect("dry run");
    assert_eq!(dry.status(), 409, "a dry run is another request");
    assert_eq!(
        hub.events().await.len(),
        head,
        "replays and 409s record nothing"
    );

    // A refusal (freeform text, no window open) replays whole: rule, sentence, also_broken.
    let text = json!({"to": CONTACT, "text": "are you there?"}).to_string();
    let (status, header, refused) = answer(keyed(&hub, "nudge-1", &text).await).await;
    assert_eq!((status, header), (422, None), "{refused}");
    let (status, header, refused_again) = answer(keyed(&hub, "nudge-1", &text).await).await;
    assert_eq!((status, header.as_deref()), (422, Some("true")));
    assert_eq!(refused_again, refused);
    assert!(
        refused_again["error"]["also_broken"].is_array(),
        "{refused_again}"
    );

    // Two different sends racing on one key: one is recorded, the other is 409 (never the
    // winner's 202).
    const ROUNDS: usize = 8;
    let (thursday, friday) = (template_body("Thu 10:00"), template_body("Fri 11:00"));
    for round in 0..ROUNDS {
        let key = format!("race-{round}");
        let (a, b) = tokio::join!(keyed(&hub, &key, &thursday), keyed(&hub, &key, &friday));
        let mut statuses = [a.status().as_u16(), b.status().as_u16()];
        assert_eq!(replayed(&a), None);
        assert_eq!(replayed(&b), None);
        statuses.sort_unstable();
        assert_eq!(statuses, [202, 409], "round {round}");
    }
    assert_eq!(template_intents(&hub).await, 1 + ROUNDS);

    // After a restart the stored answers and their digests are read back from disk.
    assert!(hub.terminate().success());
    let hub = start(dir.path());
    let (status, header, after_restart) = answer(keyed(&hub, "visit-1", &respelled()).await).await;
    assert_eq!(
        (status, header.as_deref()),
        (202, Some("true")),
        "{after_restart}"
    );
    assert_eq!(after_restart, first);
    let (status, _, reused) =
        answer(keyed(&hub, "visit-1", &template_body("Fri 11:00")).await).await;
    assert_eq!(status, 409, "{reused}");
    let (status, header, refused_again) = answer(keyed(&hub, "nudge-1", &text).await).await;
    assert_eq!((status, header.as_deref()), (422, Some("true")));
    assert_eq!(refused_again, refused);
    assert_eq!(template_intents(&hub).await, 1 + ROUNDS);
}
