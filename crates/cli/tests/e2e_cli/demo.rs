//! `wagate demo` end to end: the real binary starts its own hub and walks the whole scenario.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Kills the demo if the test gives up on it.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn the_demo_walks_the_whole_scenario_and_leaves_nothing_behind() {
    let out = tempfile::NamedTempFile::new().expect("stdout file");
    let child = Command::new(env!("CARGO_BIN_EXE_wagate"))
        .args(["demo", "--timeout", "60"])
        .env("WAGATE_LOG", "warn")
        .stdout(Stdio::from(out.reopen().expect("reopen")))
        .stderr(Stdio::piped())
        .spawn()
        .expect("start wagate demo");
    let mut child = Killed(child);
    // Generous bound: the scenario takes a few seconds; a loaded CI machine gets minutes.
    let deadline = Instant::now() + Duration::from_secs(240);
    let status = loop {
        if let Some(status) = child.0.try_wait().expect("wait") {
            break status;
        }
        assert!(Instant::now() < deadline, "wagate demo did not finish");
        std::thread::sleep(Duration::from_millis(100));
    };
    let text = std::fs::read_to_string(out.path()).expect("read stdout");
    let mut errors = String::new();
    if let Some(mut stderr) = child.0.stderr.take() {
        use std::io::Read as _;
        let _ = stderr.read_to_string(&mut errors);
    }
    assert!(status.success(), "{text}\n{errors}");
    for expected in [
        "✓ authorized by ops@example.com: it may send",
        "✓ status approved",
        "✓ consent opted_in",
        "✓ 403 forbidden: consent is the operator's to record; nothing appended",
        "… read",
        "✓ delivered and read",
        "✓ refused by window_closed",
        "✓ allowed and delivered",
        "✓ Lea is opted out",
        "✓ refused by opted_out",
        "✓ Lea is opted in again",
        "✓ dispatched and delivered",
        "violations: none, every invariant holds",
        "nothing left behind",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
    // The temporary database is gone.
    let data = text
        .lines()
        .find_map(|line| line.split("(data in ").nth(1))
        .and_then(|rest| rest.strip_suffix(')'))
        .expect("the demo names its data directory");
    assert!(
        !std::path::Path::new(data).exists(),
        "{data} was left behind"
    );
}
