//! The projection's snapshot: a reopened hub replays only the log's tail, a bad snapshot is
//! rebuilt, settled messages leave memory but are still found by provider id within the
//! horizon.

use chrono::TimeDelta;
use futures::future::join_all;
use wagate_app::{Hub, Ingested, StatusCallback};
use wagate_domain::decide::{DispatchOutcome, RecordOutcome};
use wagate_domain::{ContactId, MessageId, MessageStatus, PhoneNumber, PortfolioId, ProviderKind};
use wagate_store::{EventLog, Options, SnapshotSave, Store};

use crate::reopen::*;
use crate::support::*;

async fn send(hub: &Hub, n: usize) -> MessageId {
    hub.send(template_request(&phone(n)), no_options())
        .await
        .expect("send")
        .message_id
}

async fn callback(hub: &Hub, n: usize, status: MessageStatus) -> Ingested {
    let dedup = format!("twilio:{n}:{status}");
    hub.record_status_callback(
        None,
        StatusCallback {
            provider: ProviderKind::Twilio,
            provider_ref: Some(reference(n)),
            status,
            error_code: None,
            details: Vec::new(),
            pricing: None,
        },
        &dedup,
    )
    .await
    .expect("callback")
}

/// Sends to contact `n`, claims, records the provider's acceptance and a `delivered` callback.
async fn settle(hub: &Hub, n: usize) -> MessageId {
    let id = send(hub, n).await;
    deliver(hub, n, id).await;
    id
}

/// Claims `id` (sent to contact `n`), records the provider's acceptance and a `delivered`
/// callback.
async fn deliver(hub: &Hub, n: usize, id: MessageId) {
    hub.claim(id).await.expect("claim");
    hub.record_outcome(RecordOutcome {
        message_id: id,
        attempt: 1,
        outcome: DispatchOutcome::Accepted {
            provider_ref: reference(n),
            provider_status: MessageStatus::Queued,
            recipient: None,
        },
        jitter: TimeDelta::zero(),
    })
    .await
    .expect("outcome");
    callback(hub, n, MessageStatus::Delivered).await;
}

#[tokio::test]
async fn a_reopened_hub_replays_only_the_tail() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (saved_at, ids) = {
        let t = hub_on(&open(dir.path()));
        ready_for(&t, 5).await;
        let mut ids = Vec::new();
        for n in 0..3 {
            ids.push(send(&t.hub, n).await);
        }
        t.hub.save_snapshot().await.expect("snapshot");
        let saved_at = t.store.head_position();
        for n in 3..5 {
            ids.push(send(&t.hub, n).await);
        }
        close(t);
        (saved_at, ids)
    };
    let store = open(dir.path());
    let head = store.head_position();
    let t = hub_on(&store);
    let stats = t.hub.open_stats();
    assert_eq!(stats.snapshot_position, saved_at);
    assert_eq!(stats.replayed_events, head - saved_at);
    assert!(stats.replayed_events < head / 2, "{stats:?} of {head}");
    let mut open: Vec<MessageId> = t
        .hub
        .open_intents()
        .expect("open")
        .intents
        .iter()
        .map(|intent| intent.message_id)
        .collect();
    open.sort();
    let mut expected = ids.clone();
    expected.sort();
    assert_eq!(open, expected);
    assert_eq!(t.hub.senders(), vec![sender()]);
    // Recent messages of a contact from before the snapshot come from its index on disk.
    let first = ContactId::Phone(PhoneNumber::parse(&phone(0)).expect("phone"));
    let view = t.hub.contact(&first).expect("contact");
    assert_eq!(
        view.recent_messages
            .iter()
            .map(|(id, _)| *id)
            .collect::<Vec<_>>(),
        vec![ids[0]]
    );
}

/// What a hub answers that the projection provides.
fn answers(hub: &Hub) -> (Vec<MessageId>, Vec<MessageId>, Option<MessageId>) {
    let mut open: Vec<MessageId> = hub
        .open_intents()
        .expect("open")
        .intents
        .iter()
        .map(|intent| intent.message_id)
        .collect();
    open.sort();
    let first = ContactId::Phone(PhoneNumber::parse(&phone(0)).expect("phone"));
    let recent = hub
        .contact(&first)
        .expect("contact")
        .recent_messages
        .iter()
        .map(|(id, _)| *id)
        .collect();
    let view = hub.message(open[0]).expect("message");
    (open, recent, view.state.id)
}

#[tokio::test]
async fn an_older_or_corrupt_snapshot_is_rebuilt_and_the_hub_answers_the_same() {
    let dir = tempfile::tempdir().expect("tempdir");
    let before = {
        let t = hub_on(&open(dir.path()));
        ready_for(&t, 3).await;
        settle(&t.hub, 0).await;
        for n in 0..3 {
            send(&t.hub, n).await;
        }
        t.hub.save_snapshot().await.expect("snapshot");
        let before = answers(&t.hub);
        close(t);
        before
    };
    let store = open(dir.path());
    let saved = store.snapshot("projection").expect("read");
    let saved = saved.expect("a snapshot was saved");
    store.close().expect("close");
    let mut older = saved.bytes.clone();
    older[..2].copy_from_slice(&0u16.to_be_bytes());
    for bytes in [older, b"\x00\x01garbage".to_vec(), Vec::new()] {
        let store = open(dir.path());
        EventLog::save_snapshot(
            &store,
            "projection",
            SnapshotSave {
                position: saved.position,
                bytes,
                entries: Vec::new(),
                replace_entries: false,
            },
        )
        .await
        .expect("overwrite the snapshot");
        let head = store.head_position();
        let t = hub_on(&store);
        drop(store);
        let stats = t.hub.open_stats();
        assert!(stats.snapshot_refused, "{stats:?}");
        assert_eq!(stats.snapshot_position, 0);
        assert_eq!(stats.replayed_events, head);
        assert_eq!(answers(&t.hub), before);
        // The rebuilt projection is saved again, and then used.
        t.hub.save_snapshot().await.expect("snapshot");
        close(t);
        let t = hub_on(&open(dir.path()));
        assert_eq!(t.hub.open_stats().replayed_events, 0);
        assert_eq!(answers(&t.hub), before);
        close(t);
    }
}

#[tokio::test]
async fn a_settled_messages_late_callback_still_matches_after_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let id = {
        let t = hub_on(&open(dir.path()));
        ready_for(&t, 1).await;
        let id = settle(&t.hub, 0).await;
        t.hub.save_snapshot().await.expect("snapshot");
        close(t);
        id
    };
    let t = hub_on(&open(dir.path()));
    let sizes = t.hub.projection_sizes();
    assert_eq!(sizes.open_messages, 0);
    // Within the horizon, its provider id came back with the snapshot's bytes.
    assert_eq!(sizes.provider_refs_in_memory, 1);
    let late = callback(&t.hub, 0, MessageStatus::Read).await;
    assert!(
        matches!(&late, Ingested::Appended { events, .. }
            if events.iter().all(|event| event.stream() == wagate_domain::StreamKey::Message(id))),
        "{late:?}"
    );
    assert_eq!(
        t.hub.message(id).expect("view").state.status,
        MessageStatus::Read
    );
}

#[tokio::test]
async fn memory_stays_bounded_after_many_settled_messages() {
    const MESSAGES: usize = 2_000;
    let t = hub();
    ready_for(&t, MESSAGES).await;
    // Concurrent (one contact each), so the log's group commit takes them in large batches;
    // sends first (they write the portfolio, which claims read: together they would conflict).
    for chunk in (0..MESSAGES).collect::<Vec<_>>().chunks(250) {
        let ids = join_all(chunk.iter().map(|n| send(&t.hub, *n))).await;
        join_all(chunk.iter().zip(ids).map(|(n, id)| deliver(&t.hub, *n, id))).await;
    }
    let before = t.hub.projection_sizes();
    assert_eq!(before.open_messages, 0, "settled messages are not open");
    t.hub.save_snapshot().await.expect("snapshot");
    let after = t.hub.projection_sizes();
    assert_eq!(after.open_messages, 0);
    assert_eq!(after.recent_lists_in_memory, 0, "{after:?}");
    // Provider ids stay in memory for the horizon (`provider_ref_horizon.rs` tests that they
    // leave after it).
    assert_eq!(after.provider_refs_in_memory, MESSAGES, "{after:?}");
    let late = callback(&t.hub, MESSAGES - 1, MessageStatus::Read).await;
    assert!(matches!(late, Ingested::Appended { .. }));
    // Recent lists: from disk.
    let contact = ContactId::Phone(PhoneNumber::parse(&phone(7)).expect("phone"));
    assert_eq!(
        t.hub.contact(&contact).expect("view").recent_messages.len(),
        1
    );
}

#[tokio::test]
async fn a_long_portfolio_stream_is_loaded_from_its_snapshot() {
    use wagate_domain::{Event, PortfolioEvent};
    use wagate_store::{AppendRequest, ExpectedVersion, StreamId};
    let dir = tempfile::tempdir().expect("tempdir");
    let portfolio = PortfolioId::parse("default").expect("portfolio");
    let history = wagate_app::AGGREGATE_SNAPSHOT_EVERY + 200;
    {
        let t = hub_on(&open(dir.path()));
        ready_for(&t, 2).await;
        // A long history of reaches, all older than the rolling period (so none counts).
        let long_ago = t.hub.now() - TimeDelta::days(3);
        let events = (0..history)
            .map(|n| {
                let event = Event::Portfolio(PortfolioEvent::RecipientReached {
                    portfolio: portfolio.clone(),
                    contact: ContactId::Phone(
                        PhoneNumber::parse(&phone(100 + n as usize)).expect("phone"),
                    ),
                    message_id: MessageId::from_uuid(uuid::Uuid::now_v7()).expect("id"),
                    at: long_ago,
                });
                wagate_store::persisted::encode(&event, uuid::Uuid::now_v7())
            })
            .collect();
        let stream = StreamId::new("portfolio:default").expect("stream");
        t.store
            .append(AppendRequest::default().with_stream(stream, ExpectedVersion::Any, events))
            .await
            .expect("append history");
        send(&t.hub, 0).await;
        assert!(t.hub.aggregate_events_applied() >= history);
        // Saved in the background: wait for it (bounded).
        let slot = "aggregate:portfolio:default";
        let mut saved = None;
        for _ in 0..500 {
            saved = t.store.snapshot(slot).expect("read");
            if saved.is_some() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        let saved = saved.expect("the portfolio's snapshot was saved");
        assert!(saved.position > history, "{}", saved.position);
        close(t);
    }
    // The background save may still hold the log for a moment after its write is visible.
    let mut store = Store::open(dir.path(), Options::default());
    for _ in 0..500 {
        if !matches!(store, Err(wagate_store::StoreError::AlreadyOpen { .. })) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        store = Store::open(dir.path(), Options::default());
    }
    let t = hub_on(&store.expect("reopen"));
    send(&t.hub, 1).await;
    assert!(
        t.hub.aggregate_events_applied() < 100,
        "{} events applied",
        t.hub.aggregate_events_applied()
    );
}

/// The review queue's aggregate (`review:queue`) gains an event per resolution and per watcher
/// item, forever, and every resolve loads it: a long history is read once, then started from its
/// snapshot, which keeps what the decisions need (a resolved item stays resolved).
#[tokio::test]
async fn a_long_review_stream_is_loaded_from_its_snapshot() {
    use wagate_domain::decide::RequestReview;
    use wagate_domain::{Event, ReviewDecision, ReviewEvent, ReviewReason};
    use wagate_store::{AppendRequest, ExpectedVersion, StreamId};
    let dir = tempfile::tempdir().expect("tempdir");
    let history = wagate_app::AGGREGATE_SNAPSHOT_EVERY + 200;
    let ids: Vec<u64>;
    {
        let t = hub_on(&open(dir.path()));
        for n in 0..2 {
            t.hub
                .request_review(
                    RequestReview {
                        contact: ContactId::parse(&phone(n)).expect("contact"),
                        text: "please stop messaging me".into(),
                        reason: "free_text_opt_out".into(),
                    },
                    &format!("review-{n}"),
                )
                .await
                .expect("review requested");
        }
        ids = t
            .hub
            .review_items(wagate_app::ReviewFilter::default())
            .await
            .expect("items")
            .iter()
            .map(|item| item.id)
            .collect();
        assert_eq!(ids.len(), 2);
        // A long history of resolutions (of items long gone from anyone's mind).
        let events = (0..history)
            .map(|n| {
                let event = Event::Review(ReviewEvent::Resolved {
                    item: 1_000_000 + n,
                    reason: ReviewReason::PermanentFailure,
                    decision: ReviewDecision::Handled,
                    note: String::new(),
                    at: t.hub.now(),
                });
                wagate_store::persisted::encode(&event, uuid::Uuid::now_v7())
            })
            .collect();
        let stream = StreamId::new("review:queue").expect("stream");
        t.store
            .append(AppendRequest::default().with_stream(stream, ExpectedVersion::Any, events))
            .await
            .expect("append history");
        let before = t.hub.aggregate_events_applied();
        t.hub
            .resolve_review(ids[0], ReviewDecision::Dismiss, "not an opt-out")
            .await
            .expect("resolved");
        assert!(
            t.hub.aggregate_events_applied() - before >= history,
            "the first load reads the whole history"
        );
        let slot = "aggregate:review:queue";
        let mut saved = None;
        for _ in 0..500 {
            saved = t.store.snapshot(slot).expect("read");
            if saved.is_some() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        let saved = saved.expect("the review queue's snapshot was saved");
        assert!(saved.position >= history, "{}", saved.position);
        close(t);
    }
    let mut store = Store::open(dir.path(), Options::default());
    for _ in 0..500 {
        if !matches!(store, Err(wagate_store::StoreError::AlreadyOpen { .. })) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        store = Store::open(dir.path(), Options::default());
    }
    let t = hub_on(&store.expect("reopen"));
    let before = t.hub.aggregate_events_applied();
    t.hub
        .resolve_review(ids[1], ReviewDecision::Dismiss, "not one either")
        .await
        .expect("resolved");
    let applied = t.hub.aggregate_events_applied() - before;
    assert!(applied < 100, "{applied} events applied");
    // What the snapshot kept still decides: the first item stays resolved.
    let again = t
        .hub
        .resolve_review(ids[0], ReviewDecision::Dismiss, "twice")
        .await
        .expect_err("already resolved");
    assert!(
        matches!(again, wagate_app::AppError::Conflict { .. }),
        "{again}"
    );
}
