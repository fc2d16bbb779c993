//! The crash tests' parent side, shared: run this test binary's child test (which opens the
//! database named by an environment variable, prints `READY`, then one line per acknowledged
//! append), SIGKILL it at a random moment after it is ready, and return the acknowledgements it
//! printed before dying.

use std::io::{BufRead, BufReader};
use std::ops::Range;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use rand::Rng;

/// Runs child test `child_test` with `env` set to `dir`, kills it `kill_after_ms` (drawn at
/// random) after it said `READY`, and returns the lines `parse` accepted, in order.
pub fn run_and_kill<T: Send + 'static>(
    child_test: &str,
    env: &str,
    dir: &Path,
    kill_after_ms: Range<u64>,
    rng: &mut impl Rng,
    parse: fn(&str) -> Option<T>,
) -> Vec<T> {
    let mut child = Command::new(std::env::current_exe().expect("test binary"))
        .args(["--exact", child_test, "--nocapture", "--test-threads=1"])
        .env(env, dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn child");
    let stdout = child.stdout.take().expect("piped stdout");
    let (ready_tx, ready_rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut acks = Vec::new();
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if line.ends_with("READY") {
                let _ = ready_tx.send(());
            } else if let Some(ack) = parse(&line) {
                acks.push(ack);
            }
        }
        acks
    });
    // A child that cannot open the database never says READY: fail instead of hanging.
    ready_rx
        .recv_timeout(Duration::from_secs(15))
        .expect("child did not become ready");
    std::thread::sleep(Duration::from_millis(rng.gen_range(kill_after_ms)));
    // std's Child::kill sends SIGKILL on Unix.
    child.kill().expect("kill child");
    child.wait().expect("reap child");
    reader.join().expect("reader thread")
}
