//! `wagate serve` on a real full filesystem (a small tmpfs; mounting needs root): a write the
//! disk cannot hold is never acknowledged, and the process exits with code 5 so a supervisor
//! restarts it on a log it re-checks (docs/operations.md, "Faults"). Where no tmpfs can be
//! mounted the test says so loudly, and fails instead when `WAGATE_REQUIRE_FULL_DISK_TEST=1`.

use std::io::Write as _;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::support::{start_with, template_send, CONTACT};

/// Unmounts the tmpfs when the test ends, however it ends (lazily: the failed hub's files may
/// still be open while it exits).
struct Mount<'a>(&'a Path);

impl Drop for Mount<'_> {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.0).status();
    }
}

fn skip(reason: &str) {
    eprintln!(
        "SKIPPED serve_on_a_full_disk_refuses_writes_and_exits_5: {reason} \
         (set WAGATE_REQUIRE_FULL_DISK_TEST=1 to make this a failure)"
    );
    assert!(
        std::env::var("WAGATE_REQUIRE_FULL_DISK_TEST").as_deref() != Ok("1"),
        "WAGATE_REQUIRE_FULL_DISK_TEST=1 but the full-disk test could not run: {reason}"
    );
}

/// Writes zeros into `path` until the filesystem refuses more.
fn fill(path: &Path) {
    let mut file = std::fs::File::create(path).expect("create filler");
    let block = vec![0u8; 64 * 1024];
    loop {
        match file.write(&block) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
    // The last partial page too.
    while file.write(&[0u8; 512]).is_ok_and(|n| n > 0) {}
}

#[tokio::test(flavor = "multi_thread")]
async fn serve_on_a_full_disk_refuses_writes_and_exits_5() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=16m,mode=0700", "tmpfs"])
        .arg(dir.path())
        .output();
    match mounted {
        Ok(output) if output.status.success() => {}
        Ok(output) => {
            return skip(&format!(
                "cannot mount a tmpfs (needs root): {}",
                String::from_utf8_lossy(&output.stderr).trim()
            ))
        }
        Err(error) => return skip(&format!("cannot run mount: {error}")),
    }
    let mount = Mount(dir.path());
    let data = mount.0.join("data");
    // The rejection log lives elsewhere: only the log's own folder fills up.
    let rejected = tempfile::tempdir().expect("rejected dir");
    let rejected_dir = rejected.path().to_str().expect("utf-8 path").to_owned();
    let mut hub = start_with(&data, &[("WAGATE_REJECTED_DIR", &rejected_dir)], &[]);
    hub.ready().await;

    fill(&mount.0.join("filler"));
    let mut refused = None;
    for n in 0..500 {
        // Every send appends (its intent, or its refusal).
        let answer = hub.post("/v1/messages", template_send(CONTACT)).await;
        let status = answer.status();
        if !status.is_success() {
            refused = Some((n, status, answer.text().await.unwrap_or_default()));
            break;
        }
    }
    let (n, status, body) = refused.expect("a full filesystem must refuse a write");
    eprintln!("write {n} on the full disk answered {status}: {body}");
    assert_eq!(status, reqwest::StatusCode::SERVICE_UNAVAILABLE, "{body}");
    let exit = hub
        .exited_within(Duration::from_secs(60))
        .expect("serve must exit by itself once its log failed");
    assert_eq!(exit.code(), Some(5), "serve's exit on a failed log: {exit}");
}
