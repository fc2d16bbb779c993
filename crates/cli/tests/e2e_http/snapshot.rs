//! A clean shutdown saves the projection's snapshot at the log's head, so the next start
//! replays nothing (docs/storage.md, "Snapshots").

use crate::support::*;

#[tokio::test]
async fn sigterm_saves_the_projection_snapshot_at_the_head() {
    let dir = tempfile::tempdir().expect("dir");
    let hub = start(dir.path());
    hub.ready().await;
    let events = hub.events().await;
    assert!(
        !events.is_empty(),
        "the sandbox start-up records its sender and template"
    );
    let status = hub.terminate();
    assert!(status.success(), "{status}");
    let store = wagate_store::Store::open(dir.path(), wagate_store::Options::default())
        .expect("open the stopped hub's data");
    let snapshot = store
        .snapshot("projection")
        .expect("read")
        .expect("a snapshot saved at shutdown");
    assert_eq!(snapshot.position, store.head_position());
    store.close().expect("close");
}
