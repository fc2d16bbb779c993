//! The service recipes in deploy/ (docs/operations.md, "Running as a service"): the systemd unit
//! keeps its restart policy and hardening, `systemd-analyze` accepts it where it exists, the
//! container recipe checks `/readyz` as a non-root user, and `wagate healthcheck` (what the
//! image's HEALTHCHECK runs) tells a ready hub from an unready one.
//!
//! No image is built here: a container daemon is not something CI can count on.

use std::collections::BTreeMap;
use std::io::{BufRead as _, Read as _, Write as _};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("repository root")
}

fn read(relative: &str) -> String {
    let path = repo_root().join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// A unit file as section -> key -> every value the key was given (systemd keys such as
/// `SystemCallFilter=` may repeat, and an empty assignment is a value too: it resets).
type Unit = BTreeMap<String, BTreeMap<String, Vec<String>>>;

fn parse_unit(text: &str) -> Unit {
    let mut unit = Unit::new();
    let mut section = String::new();
    let mut continued = String::new();
    for raw in text.lines() {
        let line = raw.trim();
        if continued.is_empty()
            && (line.is_empty() || line.starts_with('#') || line.starts_with(';'))
        {
            continue;
        }
        // A trailing backslash continues the line (systemd.syntax(7)).
        if let Some(head) = line.strip_suffix('\\') {
            continued.push_str(head);
            continued.push(' ');
            continue;
        }
        let line = format!("{continued}{line}");
        continued.clear();
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.to_owned();
            unit.entry(section.clone()).or_default();
            continue;
        }
        let (key, value) = line
            .split_once('=')
            .unwrap_or_else(|| panic!("unit line without '=': {line:?}"));
        assert!(!section.is_empty(), "key {key:?} outside any section");
        unit.entry(section.clone())
            .or_default()
            .entry(key.trim().to_owned())
            .or_default()
            .push(value.trim().to_owned());
    }
    unit
}

fn service_values<'a>(unit: &'a Unit, key: &str) -> &'a [String] {
    unit.get("Service")
        .and_then(|service| service.get(key))
        .map(Vec::as_slice)
        .unwrap_or_else(|| panic!("wagate.service has no {key}= in [Service]"))
}

fn service_value<'a>(unit: &'a Unit, key: &str) -> &'a str {
    let values = service_values(unit, key);
    assert_eq!(values.len(), 1, "{key}= is set {} times", values.len());
    &values[0]
}

#[test]
fn the_unit_restarts_on_failure_and_runs_serve() {
    let unit = parse_unit(&read("deploy/systemd/wagate.service"));
    // Exit code 5 (the event log failed) is a failure: on-failure restarts it; `always` would
    // also restart a deliberate stop, `no` would leave the hub down.
    assert_eq!(service_value(&unit, "Restart"), "on-failure");
    assert_eq!(service_value(&unit, "Type"), "simple");
    let exec = service_value(&unit, "ExecStart");
    let words: Vec<&str> = exec.split_whitespace().collect();
    assert!(
        words.first().is_some_and(|w| w.ends_with("/wagate")) && words.get(1) == Some(&"serve"),
        "ExecStart does not run `wagate serve`: {exec}"
    );
    let data = words
        .windows(2)
        .find(|w| w[0] == "--data")
        .map(|w| w[1])
        .expect("ExecStart names --data");
    assert_eq!(
        data, "/var/lib/wagate",
        "the data folder is the StateDirectory"
    );
    assert_eq!(
        unit.get("Install")
            .and_then(|i| i.get("WantedBy"))
            .map(Vec::as_slice),
        Some(&["multi-user.target".to_owned()][..])
    );
}

#[test]
fn the_unit_is_hardened() {
    let unit = parse_unit(&read("deploy/systemd/wagate.service"));
    for (key, expected) in [
        ("NoNewPrivileges", "yes"),
        ("PrivateTmp", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("DynamicUser", "yes"),
        ("StateDirectory", "wagate wagate-rejected"),
        ("CapabilityBoundingSet", ""),
        ("RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX"),
        ("MemoryDenyWriteExecute", "yes"),
        ("SystemCallArchitectures", "native"),
        ("ProtectKernelTunables", "yes"),
        ("ProtectKernelModules", "yes"),
        ("ProtectControlGroups", "yes"),
        ("RestrictNamespaces", "yes"),
        ("RestrictSUIDSGID", "yes"),
        ("LockPersonality", "yes"),
        ("PrivateDevices", "yes"),
    ] {
        assert_eq!(service_value(&unit, key), expected, "{key}=");
    }
    // The allow-list comes first; later lines may only narrow it (a `~` deny-list).
    let filters = service_values(&unit, "SystemCallFilter");
    assert_eq!(filters[0], "@system-service");
    assert!(
        filters[1..].iter().all(|f| f.starts_with('~')),
        "SystemCallFilter= widened after @system-service: {filters:?}"
    );
    // Writable: the data folder and the rejection log beside it, nothing else.
    assert_eq!(
        service_value(&unit, "ReadWritePaths"),
        "/var/lib/wagate /var/lib/wagate-rejected"
    );
    assert!(
        service_values(&unit, "Environment")
            .iter()
            .any(|value| value == "WAGATE_REJECTED_DIR=/var/lib/wagate-rejected"),
        "the rejection log is pointed at its own writable directory"
    );
    let env_file = service_value(&unit, "EnvironmentFile");
    assert!(
        env_file.starts_with('/') && !env_file.starts_with('-'),
        "EnvironmentFile= must be required (a missing file would start a sandbox hub): {env_file}"
    );
}

/// Where a tool the test can use but CI may lack is missing, say so loudly: a skipped check
/// must not look like a passed one.
fn tool_on_path(tool: &str) -> bool {
    let found = std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(tool).is_file()));
    if !found {
        eprintln!(
            "\n!!!!!!!! NOT CHECKED: `{tool}` is not on PATH, so deploy/systemd/wagate.service was \
             NOT verified by systemd (install the `systemd` package to run this check) !!!!!!!!\n"
        );
    }
    found
}

/// The unit as installed, with ExecStart on the binary this test built and the environment file
/// on the example (systemd-analyze checks both exist).
fn installable_unit(dir: &Path) -> PathBuf {
    let env_file = dir.join("wagate.env");
    std::fs::write(&env_file, read("deploy/systemd/wagate.env.example")).expect("env file");
    let unit = read("deploy/systemd/wagate.service")
        .replace("/usr/local/bin/wagate", env!("CARGO_BIN_EXE_wagate"))
        .replace(
            "EnvironmentFile=/etc/wagate/wagate.env",
            &format!("EnvironmentFile={}", env_file.display()),
        );
    let path = dir.join("wagate.service");
    std::fs::write(&path, unit).expect("unit");
    path
}

#[test]
fn systemd_analyze_verifies_the_unit() {
    if !tool_on_path("systemd-analyze") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let unit = installable_unit(dir.path());
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&unit)
        .output()
        .expect("run systemd-analyze");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "systemd-analyze verify failed:\n{stderr}"
    );
    // An unknown or misspelt key is only a warning (exit 0), printed with the unit's name.
    let about_unit: Vec<&str> = stderr
        .lines()
        .filter(|line| line.contains("wagate.service"))
        .collect();
    assert!(
        about_unit.is_empty(),
        "systemd warns about the unit:\n{stderr}"
    );
}

#[test]
fn systemd_rates_the_unit_exposure_low() {
    if !tool_on_path("systemd-analyze") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let unit = installable_unit(dir.path());
    let out = Command::new("systemd-analyze")
        .args(["security", "--offline=yes", "--no-pager"])
        .arg(&unit)
        .output()
        .expect("run systemd-analyze");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() && stderr.contains("--offline") {
        eprintln!(
            "\n!!!!!!!! NOT CHECKED: this systemd-analyze has no `security --offline` \
             (systemd < 252): {stderr} !!!!!!!!\n"
        );
        return;
    }
    // "→ Overall exposure level for wagate.service: 1.4 OK 🙂" (0 best, 10 worst). 1.4 when
    // written; 2.0 leaves room for a systemd that scores a setting differently, not for a
    // hardening line removed.
    let exposure: f64 = stdout
        .lines()
        .chain(stderr.lines())
        .find_map(|line| line.split_once("Overall exposure level for wagate.service:"))
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .and_then(|number| number.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in:\n{stdout}\n{stderr}"));
    assert!(exposure <= 2.0, "exposure {exposure} > 2.0:\n{stdout}");
}

#[test]
fn the_example_environment_names_only_settings_serve_knows_and_no_secret() {
    let help = Command::new(env!("CARGO_BIN_EXE_wagate"))
        .args(["serve", "--help"])
        .output()
        .expect("wagate serve --help");
    let help = String::from_utf8_lossy(&help.stdout);
    let example = read("deploy/systemd/wagate.env.example");
    let mut named = 0;
    for line in example.lines() {
        let setting = line.trim_start_matches(['#', ' ']);
        let Some((key, value)) = setting.split_once('=') else {
            continue;
        };
        if !key.starts_with("WAGATE_") || key.contains(' ') {
            continue;
        }
        named += 1;
        assert!(help.contains(key), "{key} is not a `wagate serve` setting");
        // Secrets in the example are references or obvious placeholders, never values.
        if key.ends_with("_TOKEN") || key.ends_with("_SECRET") {
            assert!(
                value.starts_with("op://") || value.contains("REPLACE"),
                "{key} in the example looks like a real secret: {value:?}"
            );
        }
    }
    assert!(named >= 8, "the example names only {named} settings");
}

/// The Containerfile's instructions of its last stage (what runs), joined over `\` lines.
fn final_stage(text: &str) -> Vec<(String, String)> {
    let mut instructions = Vec::new();
    let mut pending = String::new();
    for raw in text.lines() {
        let line = raw.trim();
        if pending.is_empty() && (line.is_empty() || line.starts_with('#')) {
            continue;
        }
        if let Some(head) = line.strip_suffix('\\') {
            pending.push_str(head);
            pending.push(' ');
            continue;
        }
        let full = format!("{pending}{line}");
        pending.clear();
        let (op, rest) = full.split_once(char::is_whitespace).unwrap_or((&full, ""));
        let op = op.to_ascii_uppercase();
        if op == "FROM" {
            instructions.clear();
        }
        instructions.push((op, rest.trim().to_owned()));
    }
    instructions
}

#[test]
fn the_container_runs_as_non_root_and_checks_readyz() {
    let text = read("deploy/container/Containerfile");
    assert!(
        text.lines()
            .any(|l| l.starts_with("FROM docker.io/library/rust:") && l.contains(" AS build")),
        "the build stage is not the official rust image"
    );
    let stage = final_stage(&text);
    let value_of = |op: &str| -> Vec<&str> {
        stage
            .iter()
            .filter(|(o, _)| o == op)
            .map(|(_, v)| v.as_str())
            .collect()
    };
    let from = value_of("FROM");
    assert!(
        from.len() == 1 && from[0].contains("debian:") && from[0].contains("-slim"),
        "the runtime stage is not slim Debian: {from:?}"
    );
    let user = value_of("USER");
    let user = user.last().expect("the runtime stage sets USER");
    let name = user.split(':').next().unwrap_or_default();
    assert!(
        !name.is_empty() && name != "root" && name != "0",
        "the runtime user is root: {user}"
    );
    assert!(value_of("VOLUME").contains(&"/var/lib/wagate"));
    assert!(value_of("VOLUME").contains(&"/var/lib/wagate-rejected"));
    assert!(value_of("EXPOSE").contains(&"8080"));

    let health = value_of("HEALTHCHECK");
    assert_eq!(health.len(), 1, "one HEALTHCHECK: {health:?}");
    let cmd = health[0]
        .split_once("CMD ")
        .map(|(_, cmd)| cmd)
        .expect("HEALTHCHECK … CMD");
    let argv: Vec<String> = serde_json::from_str(cmd).expect("HEALTHCHECK CMD in exec (JSON) form");
    assert!(
        argv.iter().any(|a| a.contains("/readyz")),
        "the health check does not target /readyz: {argv:?}"
    );
    // The checker must exist in the image: the binary copied into it, not curl.
    assert_eq!(argv[0], "/usr/local/bin/wagate");
    assert_eq!(argv[1], "healthcheck");
    assert!(
        stage
            .iter()
            .any(|(o, v)| o == "COPY" && v.ends_with("/usr/local/bin/wagate")),
        "the runtime stage does not copy /usr/local/bin/wagate"
    );
    // The hub must listen beyond the container's loopback for EXPOSE to mean anything.
    assert!(
        value_of("ENV")
            .iter()
            .any(|env| env.contains("WAGATE_LISTEN=0.0.0.0:8080")),
        "the image does not listen on 0.0.0.0:8080"
    );

    for ignore in [".dockerignore", ".containerignore"] {
        let list = read(ignore);
        for entry in ["target/", ".git/"] {
            assert!(
                list.lines().any(|l| l.trim() == entry),
                "{ignore} does not exclude {entry}"
            );
        }
    }
}

fn healthcheck(url: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wagate"))
        .args(["healthcheck", "--timeout-seconds", "5", "--url", url])
        .env("WAGATE_LOG", "warn")
        .output()
        .expect("run wagate healthcheck")
}

/// Answers one request with `status` and `body`, and hands back the request line it got.
fn one_answer(
    status: &'static str,
    body: &'static str,
) -> (String, std::thread::JoinHandle<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}/readyz", listener.local_addr().expect("addr"));
    let served = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().expect("accept");
        let mut reader = std::io::BufReader::new(stream.try_clone().expect("clone"));
        let mut request_line = String::new();
        reader.read_line(&mut request_line).expect("request line");
        // Read the rest of the head so the client sees a clean exchange.
        let mut line = String::new();
        while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
            line.clear();
        }
        let answer = format!(
            "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(answer.as_bytes()).expect("answer");
        request_line
    });
    (url, served)
}

#[test]
fn healthcheck_fails_with_the_reason_on_a_503() {
    let (url, served) = one_answer(
        "503 Service Unavailable",
        r#"{"ready":false,"reason":"store failed: No space left on device"}"#,
    );
    let out = healthcheck(&url);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("503"), "{stderr}");
    assert!(
        stderr.contains("store failed: No space left on device"),
        "{stderr}"
    );
    assert_eq!(served.join().expect("server"), "GET /readyz HTTP/1.1\r\n");
}

#[test]
fn healthcheck_does_not_follow_a_redirect() {
    let (url, served) = one_answer("302 Found\r\nlocation: http://127.0.0.1:1/", "");
    let out = healthcheck(&url);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("302"));
    served.join().expect("server");
}

#[test]
fn healthcheck_fails_when_nothing_listens_and_on_a_bad_url() {
    // A port that was free a moment ago: connection refused.
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let out = healthcheck(&format!("http://127.0.0.1:{port}/readyz"));
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("unhealthy"));

    let out = healthcheck("not a url");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not a URL"));
}

/// The unit's own ExecStart (data and address moved to a temporary place) starts a hub that
/// `wagate healthcheck` then finds ready: the pieces fit together, not only each alone.
#[test]
fn the_units_exec_start_serves_and_healthcheck_finds_it_ready() {
    let unit = parse_unit(&read("deploy/systemd/wagate.service"));
    let exec = service_value(&unit, "ExecStart").to_owned();
    let data = tempfile::tempdir().expect("tempdir");
    let mut args: Vec<String> = exec.split_whitespace().skip(1).map(str::to_owned).collect();
    for i in 0..args.len().saturating_sub(1) {
        match args[i].as_str() {
            "--data" => args[i + 1] = data.path().join("data").display().to_string(),
            "--listen" => args[i + 1] = "127.0.0.1:0".to_owned(),
            _ => {}
        }
    }
    let mut child = Command::new(env!("CARGO_BIN_EXE_wagate"))
        .args(&args)
        .env_remove("WAGATE_API_TOKEN")
        .env_remove("WAGATE_TWILIO_AUTH_TOKEN")
        .env_remove("WAGATE_META_APP_SECRET")
        .env("WAGATE_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start wagate serve");
    let mut stdout = std::io::BufReader::new(child.stdout.take().expect("stdout"));
    let mut first = String::new();
    let read_ok = stdout.read_line(&mut first).is_ok();
    let address = first
        .strip_prefix("wagate listening on ")
        .map(|rest| rest.trim().to_owned());
    let Some(address) = address.filter(|_| read_ok) else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("wagate serve did not print its address: {first:?}");
    };
    // Drain the rest of the banner so the hub never blocks on a full pipe.
    std::thread::spawn(move || {
        let mut sink = Vec::new();
        let _ = stdout.read_to_end(&mut sink);
    });
    // The banner is printed once the server is bound, so one check suffices; a few tries only
    // absorb a slow machine.
    let deadline = Instant::now() + Duration::from_secs(30);
    let out = loop {
        let out = healthcheck(&format!("{address}/readyz"));
        if out.status.success() || Instant::now() > deadline {
            break out;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let _ = child.kill();
    let _ = child.wait();
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("200"),
        "{out:?}"
    );
}
