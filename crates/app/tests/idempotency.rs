//! `Idempotency-Key` on sends: a retry gets the first answer marked as replayed, the same key
//! with a different request gets `IdempotencyKeyReused`, also when the two race.

use std::collections::BTreeMap;

use wagate_app::{AppError, SendOptions, SendRequest};
use wagate_domain::{Event, MessageEvent, SendContent};
use wagate_store::{AppendRequest, EventLog, IdempotencyKey};

use crate::support::*;

fn keyed(key: &str) -> SendOptions {
    SendOptions {
        idempotency_key: Some(key.into()),
        dry_run: false,
    }
}

fn intents(t: &TestHub) -> usize {
    log(&t.hub)
        .into_iter()
        .filter(|(_, event)| matches!(event, Event::Message(MessageEvent::TemplateSent { .. })))
        .count()
}

/// The same send with one variable changed.
fn other_request() -> SendRequest {
    let mut request = template_request(CONTACT);
    if let SendContent::Template { variables, .. } = &mut request.content {
        variables.insert("2".into(), "Fri 11:00".into());
    }
    request
}

#[tokio::test]
async fn a_retry_is_replayed_and_the_same_key_with_another_request_is_refused() {
    let t = hub();
    ready(&t.hub).await;
    opt_in(&t.hub, &contact()).await;
    let first = t
        .hub
        .send(template_request(CONTACT), keyed("visit-1"))
        .await
        .expect("first");
    assert!(!first.replayed);
    // The same request, spelled differently: the only sender given explicitly, variables in
    // another order.
    let mut same = template_request(CONTACT);
    same.sender = Some(sender());
    if let SendContent::Template { variables, .. } = &mut same.content {
        *variables = variables
            .iter()
            .rev()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect::<BTreeMap<_, _>>();
    }
    let again = t.hub.send(same, keyed("visit-1")).await.expect("replay");
    assert_eq!(again.message_id, first.message_id);
    assert!(again.replayed);
    assert!(!again.dry_run);

    let head = log(&t.hub).len();
    for (what, request, options) in [
        ("another variable", other_request(), keyed("visit-1")),
        (
            "a dry run of it",
            template_request(CONTACT),
            SendOptions {
                dry_run: true,
                ..keyed("visit-1")
            },
        ),
        (
            "another recipient",
            template_request("+41790000002"),
            keyed("visit-1"),
        ),
    ] {
        match t.hub.send(request, options).await {
            Err(AppError::IdempotencyKeyReused { key }) => assert_eq!(key, "visit-1", "{what}"),
            other => panic!("{what}: expected IdempotencyKeyReused, got {other:?}"),
        }
    }
    assert_eq!(log(&t.hub).len(), head, "a reused key records nothing");
    assert_eq!(intents(&t), 1);

    // Another key is another send.
    let other = t
        .hub
        .send(other_request(), keyed("visit-2"))
        .await
        .expect("other key");
    assert_ne!(other.message_id, first.message_id);
    assert!(!other.replayed);
}

#[tokio::test]
async fn a_refusal_is_replayed_whole() {
    let t = hub();
    ready(&t.hub).await;
    // No consent: refused, and recorded with the key.
    let Err(AppError::Refused(refusal)) = t
        .hub
        .send(template_request(CONTACT), keyed("no-consent"))
        .await
    else {
        panic!("expected a refusal");
    };
    let head = log(&t.hub).len();
    match t
        .hub
        .send(template_request(CONTACT), keyed("no-consent"))
        .await
    {
        Err(AppError::ReplayedRefusal(replayed)) => assert_eq!(replayed, refusal),
        other => panic!("expected the replayed refusal, got {other:?}"),
    }
    assert!(matches!(
        t.hub.send(other_request(), keyed("no-consent")).await,
        Err(AppError::IdempotencyKeyReused { .. })
    ));
    assert_eq!(log(&t.hub).len(), head);
}

/// A record of format 1 (written before digests, live for a day after an upgrade) cannot tell
/// requests apart: any request with its key gets its answer, as before the upgrade.
#[tokio::test]
async fn a_record_without_a_digest_answers_any_request() {
    let t = hub();
    ready(&t.hub).await;
    let v1 = std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../fixtures/send_results/accepted.v1.bin"),
    )
    .expect("v1 fixture");
    let decoded = wagate_store::send_result::decode(&v1).expect("v1 decodes");
    assert_eq!(decoded.request, None);
    let wagate_store::send_result::SendResult::Accepted { message_id } = decoded.result else {
        panic!("the fixture is an accepted send");
    };
    EventLog::append(
        &t.store,
        AppendRequest::key_only(IdempotencyKey {
            key: b"send:before-upgrade".to_vec(),
            expires_at_ms: i64::MAX,
            result: v1,
        }),
    )
    .await
    .expect("key");
    let answer = t
        .hub
        .send(other_request(), keyed("before-upgrade"))
        .await
        .expect("answered from the v1 record");
    assert_eq!(answer.message_id, message_id);
    assert!(answer.replayed);
}

/// Two requests with one key and different bodies, at once: the log's atomic key insert picks
/// one; the other gets `IdempotencyKeyReused`, never the winner's answer, and one intent is
/// recorded per key.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_requests_with_one_key_and_different_bodies() {
    let t = hub();
    ready(&t.hub).await;
    opt_in(&t.hub, &contact()).await;
    const ROUNDS: usize = 16;
    for round in 0..ROUNDS {
        let key = format!("race-{round}");
        let tasks = [template_request(CONTACT), other_request()].map(|request| {
            let hub = t.hub.clone();
            let options = keyed(&key);
            tokio::spawn(async move { hub.send(request, options).await })
        });
        let mut accepted = 0;
        let mut reused = 0;
        for task in tasks {
            match task.await.expect("task") {
                Ok(answer) => {
                    assert!(
                        !answer.replayed,
                        "round {round}: a replay of the other body"
                    );
                    accepted += 1;
                }
                Err(AppError::IdempotencyKeyReused { key: named }) => {
                    assert_eq!(named, key);
                    reused += 1;
                }
                Err(other) => panic!("round {round}: {other}"),
            }
        }
        assert_eq!((accepted, reused), (1, 1), "round {round}");
    }
    assert_eq!(intents(&t), ROUNDS);
}
