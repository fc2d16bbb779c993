//! The ops counts as a checkpointed reader: restored from their own snapshot they equal the
//! counts rebuilt from the whole log, an older or unreadable counts snapshot is rebuilt, their
//! per-message entries leave memory at a terminal stage or with age, and concurrent sends are
//! counted exactly once.

use chrono::TimeDelta;
use wagate_app::{Hub, OpsCounts, Stage, StatusCallback, COUNTS_SLOT};
use wagate_domain::decide::{DispatchOutcome, RecordOutcome};
use wagate_domain::{MessageId, MessageStatus, ProviderKind};
use wagate_store::{EventLog, SnapshotSave};

use crate::reopen::*;
use crate::support::*;

async fn send(hub: &Hub, n: usize) -> MessageId {
    hub.send(template_request(&phone(n)), no_options())
        .await
        .expect("send")
        .message_id
}

/// A send to a contact who never opted in: refused, and recorded.
async fn refused_send(hub: &Hub, n: usize) {
    assert!(hub
        .send(template_request(&phone(1000 + n)), no_options())
        .await
        .is_err());
}

async fn callback(hub: &Hub, n: usize, status: MessageStatus) {
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
    .expect("callback");
}

/// Claims `id` (sent to contact `n`), records the provider's acceptance and `status`.
async fn dispatch(hub: &Hub, n: usize, id: MessageId, status: MessageStatus) {
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
    callback(hub, n, status).await;
}

fn row(counts: &OpsCounts) -> [u64; 8] {
    counts
        .funnel
        .iter()
        .find(|row| row.workflow == "appointment_scheduling")
        .map_or([0; 8], |row| row.stages)
}

/// Overwrites the counts' slot with `bytes` at `position`.
async fn overwrite_counts(dir: &std::path::Path, position: u64, bytes: Vec<u8>) {
    let store = open(dir);
    EventLog::save_snapshot(
        &store,
        COUNTS_SLOT,
        SnapshotSave {
            position,
            bytes,
            entries: Vec::new(),
            replace_entries: false,
        },
    )
    .await
    .expect("overwrite the counts snapshot");
    store.close().expect("close");
}

#[tokio::test]
async fn counts_restored_from_their_snapshot_equal_counts_rebuilt_from_the_whole_log() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (before, saved_at) = {
        let t = hub_on(&open(dir.path()));
        ready_for(&t, 6).await;
        let first = send(&t.hub, 0).await;
        dispatch(&t.hub, 0, first, MessageStatus::Delivered).await;
        send(&t.hub, 1).await;
        refused_send(&t.hub, 0).await;
        t.hub.save_snapshot().await.expect("snapshot");
        let saved_at = t.store.head_position();
        // After the snapshot: the tail. A read of the first message (followed across the
        // restart), more sends, another refusal.
        callback(&t.hub, 0, MessageStatus::Read).await;
        for n in 2..5 {
            send(&t.hub, n).await;
        }
        refused_send(&t.hub, 1).await;
        let before = t.hub.ops_counts();
        close(t);
        (before, saved_at)
    };
    assert_eq!(row(&before)[Stage::Allowed as usize], 5);
    assert_eq!(row(&before)[Stage::Read as usize], 1);
    assert_eq!(before.refusals_24h.values().sum::<u64>(), 2);

    let t = hub_on(&open(dir.path()));
    let stats = t.hub.open_stats();
    assert_eq!(stats.counts_snapshot_position, saved_at, "{stats:?}");
    assert!(!stats.counts_snapshot_refused);
    assert_eq!(
        stats.snapshot_position, saved_at,
        "one replay of the tail for both"
    );
    assert_eq!(t.hub.ops_counts(), before);
    close(t);

    // No counts snapshot at all (empty bytes do not decode): rebuilt from the whole log.
    overwrite_counts(dir.path(), saved_at, Vec::new()).await;
    let t = hub_on(&open(dir.path()));
    assert!(t.hub.open_stats().counts_snapshot_refused);
    assert_eq!(t.hub.ops_counts(), before);
    close(t);
}

#[tokio::test]
async fn an_older_or_corrupt_counts_snapshot_is_rebuilt_from_the_log() {
    let dir = tempfile::tempdir().expect("tempdir");
    let before = {
        let t = hub_on(&open(dir.path()));
        ready_for(&t, 3).await;
        let id = send(&t.hub, 0).await;
        dispatch(&t.hub, 0, id, MessageStatus::Delivered).await;
        send(&t.hub, 1).await;
        refused_send(&t.hub, 0).await;
        t.hub.save_snapshot().await.expect("snapshot");
        let before = t.hub.ops_counts();
        close(t);
        before
    };
    let store = open(dir.path());
    let saved = store
        .snapshot(COUNTS_SLOT)
        .expect("read")
        .expect("the counts were saved with the projection");
    let head = store.head_position();
    store.close().expect("close");
    assert_eq!(saved.position, head);
    let mut older = saved.bytes.clone();
    older[..2].copy_from_slice(&0u16.to_be_bytes());
    for (bytes, position) in [
        (older, saved.position),
        (b"\x00\x01garbage".to_vec(), saved.position),
        // Past the log's head: refused whatever it holds.
        (saved.bytes.clone(), head + 10),
    ] {
        overwrite_counts(dir.path(), position, bytes).await;
        let t = hub_on(&open(dir.path()));
        let stats = t.hub.open_stats();
        assert!(stats.counts_snapshot_refused, "{stats:?}");
        assert_eq!(stats.counts_snapshot_position, 0);
        // The projection's own snapshot is still used: only the counts are rebuilt.
        assert!(!stats.snapshot_refused);
        assert_eq!(stats.snapshot_position, head);
        assert_eq!(t.hub.ops_counts(), before);
        // The rebuilt counts are saved again, and then used.
        t.hub.save_snapshot().await.expect("snapshot");
        close(t);
        let t = hub_on(&open(dir.path()));
        let stats = t.hub.open_stats();
        assert!(!stats.counts_snapshot_refused);
        assert_eq!(stats.counts_snapshot_position, head);
        assert_eq!(t.hub.ops_counts(), before);
        close(t);
    }
}

#[tokio::test]
async fn per_message_entries_are_dropped_at_a_terminal_stage_and_with_age() {
    let dir = tempfile::tempdir().expect("tempdir");
    let t = hub_on(&open(dir.path()));
    ready_for(&t, 4).await;
    let read = send(&t.hub, 0).await;
    dispatch(&t.hub, 0, read, MessageStatus::Read).await;
    let failed = send(&t.hub, 1).await;
    dispatch(&t.hub, 1, failed, MessageStatus::Failed).await;
    let delivered = send(&t.hub, 2).await;
    dispatch(&t.hub, 2, delivered, MessageStatus::Delivered).await;
    refused_send(&t.hub, 0).await;
    let counts = t.hub.ops_counts();
    assert_eq!(t.hub.counts_open_entries(), 1, "only the delivered message");
    assert_eq!(row(&counts)[Stage::Read as usize], 1);
    assert_eq!(row(&counts)[Stage::Failed as usize], 1);

    // Past the age: the next event drops the delivered message's entry; its late read is not
    // counted, and what was counted stays.
    t.clock
        .advance(wagate_app::FUNNEL_ENTRY_MAX_AGE + TimeDelta::hours(1));
    send(&t.hub, 3).await;
    t.hub.ops_counts();
    assert_eq!(t.hub.counts_open_entries(), 1, "only the new message");
    callback(&t.hub, 2, MessageStatus::Read).await;
    let later = t.hub.ops_counts();
    assert_eq!(row(&later)[Stage::Read as usize], 1);
    assert_eq!(row(&later)[Stage::Delivered as usize], 2);
    assert_eq!(row(&later)[Stage::Allowed as usize], 4);
    // The same rules give the same counts when rebuilt from the log.
    let clock = t.clock.clone();
    close(t);
    let t = hub_on(&open(dir.path()));
    t.clock.set(wagate_app::Clock::now(&clock));
    assert_eq!(t.hub.ops_counts(), later);
    assert_eq!(t.hub.counts_open_entries(), 1);
    close(t);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_sends_are_counted_exactly_once() {
    const SENDS: usize = 40;
    let dir = tempfile::tempdir().expect("tempdir");
    let t = hub_on(&open(dir.path()));
    ready_for(&t, SENDS).await;
    let mut tasks = Vec::new();
    for n in 0..SENDS {
        let hub = t.hub.clone();
        tasks.push(tokio::spawn(async move {
            send(&hub, n).await;
            // Readers catch the counts up while other sends are being appended.
            hub.ops_counts()
        }));
    }
    for task in tasks {
        task.await.expect("task");
    }
    let counts = t.hub.ops_counts();
    assert_eq!(counts.position, t.store.head_position());
    assert_eq!(row(&counts)[Stage::Requested as usize], SENDS as u64);
    assert_eq!(row(&counts)[Stage::Allowed as usize], SENDS as u64);
    close(t);
    // Rebuilt from the whole log (no counts snapshot was saved): the same numbers.
    let t = hub_on(&open(dir.path()));
    assert_eq!(t.hub.open_stats().counts_snapshot_position, 0);
    assert_eq!(t.hub.ops_counts(), counts);
    close(t);
}
