//! Raw sled access from the store's tests (shared with `#[path]`, like `kill.rs`).

use std::path::Path;
use std::time::{Duration, Instant};

/// Drops a raw sled handle and waits until sled's threads let go of the folder's lock (they can
/// outlive the handle by a moment), so the next open in the test is not refused as
/// `AlreadyOpen` (seen under the full suite's load).
pub fn release(db: sled::Db, path: &Path) {
    use fs2::FileExt as _;
    drop(db);
    let file = std::fs::File::open(path.join("db")).expect("sled's db file");
    let deadline = Instant::now() + Duration::from_secs(10);
    while file.try_lock_exclusive().is_err() {
        assert!(Instant::now() < deadline, "sled kept the lock");
        std::thread::sleep(Duration::from_millis(5));
    }
    fs2::FileExt::unlock(&file).expect("unlock");
}
