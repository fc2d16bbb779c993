//! What only a shared database shows: several logs (hubs) on one database, and the errors of
//! opening one. The `EventLog` contract itself runs on PostgreSQL in wagate-store's
//! `tests/store.rs`.

use std::io::ErrorKind;
use std::sync::Arc;
use std::time::Duration;

use uuid::Uuid;
use wagate_store::{
    AppendOutcome, AppendRequest, EventLog, ExpectedVersion, IdempotencyKey, NewEvent, StoreError,
    StreamId,
};
use wagate_store_postgres::{test_server, PgLog, PgOptions, SCHEMA_VERSION};

fn stream(id: &str) -> StreamId {
    StreamId::new(id).expect("valid stream id")
}

fn event(kind: &str) -> NewEvent {
    NewEvent {
        event_id: Uuid::now_v7(),
        event_type: kind.to_owned(),
        schema_version: 1,
        timestamp_ms: 1_700_000_000_000,
        payload: b"x".to_vec(),
        origin: None,
    }
}

fn open(url: &str) -> Arc<PgLog> {
    Arc::new(PgLog::open(url, PgOptions::default()).expect("open"))
}

/// Runs `sql` on the database `url` names.
async fn sql(url: &str, sql: &str) {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(connection);
    client.batch_execute(sql).await.expect("sql");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hubs_write_one_gap_free_log_and_follow_each_other() {
    let url = test_server::shared().fresh_database();
    let hubs = [open(&url), open(&url)];
    let shared_stream = stream("contact:+41790000001");
    let writers: Vec<_> = (0..4usize)
        .map(|w| {
            let log = Arc::clone(&hubs[w % 2]);
            let target = shared_stream.clone();
            tokio::spawn(async move {
                let mut written = 0;
                while written < 25 {
                    let version = log
                        .read_stream(&target, 1, usize::MAX)
                        .expect("read")
                        .last()
                        .map_or(0, |e| e.version);
                    let request = AppendRequest::single(
                        target.clone(),
                        ExpectedVersion::Exact(version),
                        vec![event("E")],
                    );
                    match log.append(request).await {
                        Ok(AppendOutcome::Appended(_)) => written += 1,
                        // The other hub wrote first: the same typed error as on sled.
                        Err(StoreError::Conflict { .. }) => {}
                        other => panic!("unexpected {other:?}"),
                    }
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.expect("writer");
    }
    // Each hub learns of the other's appends by notification (or poll), without reading; its
    // reads of the log reach as far as that head.
    for hub in &hubs {
        let mut head = hub.subscribe();
        tokio::time::timeout(Duration::from_secs(30), head.wait_for(|head| *head == 100))
            .await
            .expect("each hub follows the shared head")
            .expect("log alive");
        let events = hub.read_from(1, usize::MAX).expect("read");
        let positions: Vec<u64> = events.iter().map(|e| e.position).collect();
        assert_eq!(positions, (1..=100).collect::<Vec<_>>());
        let versions: Vec<u64> = events.iter().map(|e| e.version).collect();
        assert_eq!(versions, (1..=100).collect::<Vec<_>>());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicate_delivered_to_two_hubs_is_recorded_once() {
    let url = test_server::shared().fresh_database();
    let (a, b) = (open(&url), open(&url));
    let request = || {
        AppendRequest::single(
            stream("message:m1"),
            ExpectedVersion::Any,
            vec![event("Delivered")],
        )
        .with_idempotency_key(IdempotencyKey {
            key: b"twilio:SM1:delivered".to_vec(),
            expires_at_ms: i64::MAX,
            result: b"200".to_vec(),
        })
    };
    let (first, second) = tokio::join!(a.append(request()), b.append(request()));
    let mut answers = [first.expect("a"), second.expect("b")];
    answers.sort_by_key(|answer| matches!(answer, AppendOutcome::Duplicate { .. }));
    assert!(
        matches!(answers[0], AppendOutcome::Appended(_)),
        "{answers:?}"
    );
    assert!(
        matches!(answers[1], AppendOutcome::Duplicate { .. }),
        "{answers:?}"
    );
    assert_eq!(a.read_from(1, 10).expect("read").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrations_run_once_and_a_newer_schema_is_refused() {
    let url = test_server::shared().fresh_database();
    drop(open(&url));
    drop(open(&url));
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(connection);
    let applied: i64 = client
        .query_one("SELECT count(*) FROM wagate_schema_migrations", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(applied, i64::from(SCHEMA_VERSION));

    let newer = SCHEMA_VERSION + 1;
    sql(
        &url,
        &format!("INSERT INTO wagate_schema_migrations (version) VALUES ({newer})"),
    )
    .await;
    match PgLog::open(&url, PgOptions::default()) {
        Err(StoreError::Foreign { detail, .. }) => {
            assert!(
                detail.contains(&format!("version {newer}, newer")),
                "{detail}"
            );
        }
        other => panic!("expected Foreign, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_database_is_named_without_its_password() {
    let missing = tempfile::tempdir().expect("tempdir");
    let url = format!(
        "host={} port=5432 user=wagate password=s3cret dbname=log",
        missing.path().display()
    );
    match PgLog::open(&url, PgOptions::default()) {
        Err(StoreError::Io { kind, detail }) => {
            assert_eq!(kind, ErrorKind::ConnectionRefused);
            assert!(detail.contains("cannot reach PostgreSQL at"), "{detail}");
            assert!(detail.contains("/log as wagate"), "{detail}");
            assert!(!detail.contains("s3cret"), "{detail}");
        }
        other => panic!("expected Io, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_without_permissions_is_told_which() {
    let server = test_server::shared();
    let url = server.fresh_database();
    // Since PostgreSQL 15 only the owner may create in the public schema.
    sql(&url, "CREATE ROLE reader LOGIN").await;
    let reader = url.replace("postgres://postgres@", "postgres://reader@");
    match PgLog::open(&reader, PgOptions::default()) {
        Err(StoreError::Io { kind, detail }) => {
            assert_eq!(kind, ErrorKind::PermissionDenied, "{detail}");
            assert!(detail.contains("lacks a permission"), "{detail}");
        }
        other => panic!("expected PermissionDenied, got {other:?}"),
    }
}
