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
        "The ops page shows all of this",
        "wagate demo --keep",
        "open http://HOST:PORT/ops and sign in",
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

#[test]
fn with_keep_the_demo_leaves_its_hub_up_for_the_ops_page_until_interrupted() {
    use std::io::{BufRead as _, BufReader};
    let child = Command::new(env!("CARGO_BIN_EXE_wagate"))
        .args(["demo", "--timeout", "60", "--keep"])
        .env("WAGATE_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start wagate demo --keep");
    let mut child = Killed(child);
    let stdout = child.0.stdout.take().expect("stdout");
    let (lines_in, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines_in.send(line).is_err() {
                return;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(240);
    let mut seen = String::new();
    let mut ops = None;
    let mut token = None;
    while token.is_none() {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = lines
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("no sign-in line in time:\n{seen}"));
        seen.push_str(&line);
        seen.push('\n');
        if let Some(url) = line.trim().strip_prefix("open ") {
            ops = Some(url.to_owned());
        }
        if let Some(rest) = line.trim().strip_prefix("sign in with the operator token ") {
            token = rest.split_whitespace().next().map(str::to_owned);
        }
    }
    let ops = ops.unwrap_or_else(|| panic!("no ops URL in:\n{seen}"));
    assert!(
        ops.starts_with("http://127.0.0.1:") && ops.ends_with("/ops"),
        "{ops}"
    );
    assert!(!token.expect("token").is_empty());
    // The hub is still up: its page answers (the sign-in redirect: no data without a session).
    let answer = get(&ops);
    let head = answer.lines().next().unwrap_or_default();
    assert!(head.contains(" 303 "), "{answer}");
    assert!(
        answer
            .lines()
            .any(|line| line.eq_ignore_ascii_case("location: /ops/sign-in")),
        "{answer}"
    );
    // Ctrl-C: the hub stops and the data goes.
    let interrupted = Command::new("kill")
        .args(["-INT", &child.0.id().to_string()])
        .status()
        .expect("kill -INT");
    assert!(interrupted.success());
    let status = loop {
        if let Some(status) = child.0.try_wait().expect("wait") {
            break status;
        }
        assert!(Instant::now() < deadline, "wagate demo --keep did not stop");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "{status}");
    // The reader ends with the demo's stdout; its last lines say the data went.
    let rest: Vec<String> = lines.iter().collect();
    assert!(
        rest.iter().any(|line| line.contains("nothing left behind")),
        "{rest:?}"
    );
}

/// A plain HTTP/1.1 GET of `url` (`http://host:port/path`): the answer's head and body as text.
fn get(url: &str) -> String {
    use std::io::{Read as _, Write as _};
    let rest = url.strip_prefix("http://").expect("an http URL");
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let mut stream = std::net::TcpStream::connect(authority).expect("connect to the hub");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n"
    )
    .expect("request");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("answer");
    answer.replace("\r\n", "\n")
}
