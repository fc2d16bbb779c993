//! A `wagate serve` child process and helpers to talk to it.

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};

use serde_json::{json, Value};

pub const PUBLIC_URL: &str = "https://hub.example.com";
pub const TWILIO_AUTH_TOKEN: &str = "12345";
pub const META_APP_SECRET: &str = "9d5e1c2b7a8f40136e2d9c8b7a6f5e4d";
/// The operator's token (`WAGATE_API_TOKEN`); each other role has its own.
pub const API_TOKEN: &str = "e2e-token";
pub const AGENT_TOKEN: &str = "e2e-agent-token";
pub const DISPATCHER_TOKEN: &str = "e2e-dispatcher-token";
pub const AUDITOR_TOKEN: &str = "e2e-auditor-token";
pub const SENDER: &str = "whatsapp:+15555550100";
pub const CONTACT: &str = "+41790000001";
pub const TEMPLATE: &str = "HX0123456789abcdef0123456789abcdef";

/// A running hub; killed on drop.
pub struct Hub {
    child: Child,
    /// A rejection log directory beside a temporary directory used as the data directory
    /// itself, outside that temporary directory: removed on drop so no test leaves it behind.
    stray_rejected: Option<PathBuf>,
    _stdout: BufReader<ChildStdout>,
    /// What serve printed at start (address, URL, mode, generated secrets).
    pub banner: Vec<String>,
    pub base: String,
    pub http: reqwest::Client,
    /// The operator's token.
    pub token: String,
    /// The dispatcher's token.
    pub dispatcher: String,
}

impl Drop for Hub {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(dir) = &self.stray_rejected {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// The variable that puts every hub of a test binary on PostgreSQL: `WAGATE_E2E_STORE=postgres`
/// (unset or `sled`: the default, a sled folder in the data directory).
pub const E2E_STORE: &str = "WAGATE_E2E_STORE";

thread_local! {
    /// Set by [`on_postgres`] for the scenario running on this thread; counts the hubs started.
    static ON_POSTGRES: std::cell::Cell<Option<usize>> = const { std::cell::Cell::new(None) };
}

/// Runs `scenario` (a test function of this suite) with its hubs on PostgreSQL, and fails if it
/// started none there. The store is chosen per thread, so the scenario must start its hubs on
/// the thread that runs it (as `#[tokio::test]`'s main future does).
#[allow(dead_code)] // Not every test binary sharing this module runs scenarios on PostgreSQL.
pub fn on_postgres(scenario: fn()) {
    ON_POSTGRES.with(|cell| cell.set(Some(0)));
    // Reset even when the scenario panics, so the test thread is left as found.
    struct Reset;
    impl Drop for Reset {
        fn drop(&mut self) {
            ON_POSTGRES.with(|cell| cell.set(None));
        }
    }
    let _reset = Reset;
    scenario();
    let started = ON_POSTGRES.with(std::cell::Cell::get).unwrap_or(0);
    assert!(started > 0, "the scenario started no hub on PostgreSQL");
}

/// Whether the hubs started on this thread go on PostgreSQL.
fn postgres_selected() -> bool {
    if ON_POSTGRES.with(std::cell::Cell::get).is_some() {
        return true;
    }
    match std::env::var(E2E_STORE).as_deref() {
        Err(_) | Ok("sled") | Ok("") => false,
        Ok("postgres") => true,
        Ok(other) => panic!("{E2E_STORE}={other:?}: expected `sled` or `postgres`"),
    }
}

/// The PostgreSQL database of the hub on data directory `data`, when PostgreSQL is selected:
/// one database per data directory (a hub restarted on the same directory finds its log again),
/// all on one private server per test binary (wagate-store-postgres's `test_server`).
fn postgres_store(data: &Path) -> Option<String> {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    static DATABASES: OnceLock<Mutex<HashMap<PathBuf, String>>> = OnceLock::new();
    if !postgres_selected() {
        return None;
    }
    ON_POSTGRES.with(|cell| cell.set(cell.get().map(|started| started + 1)));
    let mut databases = DATABASES
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let url = databases
        .entry(data.to_path_buf())
        .or_insert_with(|| wagate_store_postgres::test_server::shared().fresh_database());
    Some(url.clone())
}

fn command(data: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_wagate"));
    command
        .args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(data)
        .env("WAGATE_LOG", "warn");
    for (name, _) in std::env::vars() {
        if name.starts_with("WAGATE_") && name != "WAGATE_LOG" {
            command.env_remove(name);
        }
    }
    // With Twilio credentials the template poller would call content.twilio.com; a test that
    // wants it points WAGATE_TWILIO_CONTENT_API_BASE at a fake and sets this again.
    command.env("WAGATE_TEMPLATE_SYNC_SECONDS", "0");
    if let Some(url) = postgres_store(data) {
        command.env("WAGATE_STORE_URL", url);
    }
    command
}

/// Starts a hub with the fixtures' provider keys.
pub fn start(data: &Path) -> Hub {
    let mut command = command(data);
    command
        .env("WAGATE_PUBLIC_URL", PUBLIC_URL)
        .env("WAGATE_API_TOKEN", API_TOKEN)
        .env("WAGATE_TWILIO_AUTH_TOKEN", TWILIO_AUTH_TOKEN)
        .env("WAGATE_META_APP_SECRET", META_APP_SECRET)
        .env("WAGATE_META_VERIFY_TOKEN", "wagate-verify-token");
    with_role_tokens(&mut command);
    spawn(command, API_TOKEN.to_owned())
}

/// Starts a hub with the fixtures' public URL and API token, plus `env` and extra `args`.
#[allow(dead_code)] // Used by the e2e_dispatch target, which shares this module.
pub fn start_with(data: &Path, env: &[(&str, &str)], args: &[&str]) -> Hub {
    let mut command = command(data);
    command
        .args(args)
        .env("WAGATE_PUBLIC_URL", PUBLIC_URL)
        .env("WAGATE_API_TOKEN", API_TOKEN);
    with_role_tokens(&mut command);
    for (name, value) in env {
        command.env(name, value);
    }
    spawn(command, API_TOKEN.to_owned())
}

/// The agent's, dispatcher's and auditor's tokens (the operator's is `WAGATE_API_TOKEN`).
fn with_role_tokens(command: &mut Command) {
    command
        .env("WAGATE_AGENT_TOKEN", AGENT_TOKEN)
        .env("WAGATE_DISPATCHER_TOKEN", DISPATCHER_TOKEN)
        .env("WAGATE_AUDITOR_TOKEN", AUDITOR_TOKEN);
}

/// Starts a hub with no provider secret (sandbox mode); the token is read from its banner.
pub fn start_sandbox(data: &Path) -> Hub {
    spawn(command(data), String::new())
}

fn spawn(mut command: Command, token: String) -> Hub {
    let args: Vec<_> = command.get_args().collect();
    let stray_rejected = args
        .iter()
        .position(|arg| *arg == "--data")
        .and_then(|i| args.get(i + 1))
        .map(PathBuf::from)
        .filter(|data| data.parent() == Some(std::env::temp_dir().as_path()))
        .map(|data| rejected_dir(&data));
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start wagate serve");
    let stdout = child.stdout.take().expect("stdout");
    let mut stdout = BufReader::new(stdout);
    let mut banner = Vec::new();
    // serve prints its banner, ending with the mode and any generated secrets, then nothing.
    loop {
        let mut line = String::new();
        let read = stdout.read_line(&mut line).expect("read stdout");
        if read == 0 {
            let status = child.wait().expect("wait");
            panic!("wagate serve exited ({status}) before it was ready: {banner:?}");
        }
        banner.push(line.trim_end().to_owned());
        let mode = line.starts_with("mode: ");
        if mode && !line.contains("sandbox") {
            break;
        }
        if line.starts_with("sandbox twilio auth token: ") {
            break;
        }
    }
    let on_postgres = command
        .get_envs()
        .any(|(name, value)| name == "WAGATE_STORE_URL" && value.is_some());
    assert_eq!(
        banner
            .iter()
            .any(|l| l.starts_with("store: PostgreSQL at ")),
        on_postgres,
        "the hub runs on the store the harness chose: {banner:?}"
    );
    let address = banner
        .iter()
        .find_map(|l| l.strip_prefix("wagate listening on "))
        .expect("listening line")
        .to_owned();
    let token = if token.is_empty() {
        banner
            .iter()
            .find_map(|l| l.strip_prefix("api token: "))
            .expect("generated api token")
            .to_owned()
    } else {
        token
    };
    let dispatcher = banner
        .iter()
        .find_map(|l| l.strip_prefix("dispatcher token: "))
        .unwrap_or(DISPATCHER_TOKEN)
        .to_owned();
    Hub {
        child,
        stray_rejected,
        _stdout: stdout,
        banner,
        base: address,
        http: reqwest::Client::new(),
        token,
        dispatcher,
    }
}

impl Hub {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(self.url(path))
            .bearer_auth(&self.token)
            .send()
            .await
            .expect("GET")
    }

    /// `GET` with `token` instead of the operator's.
    pub async fn get_as(&self, token: &str, path: &str) -> reqwest::Response {
        self.http
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .expect("GET")
    }

    /// `POST` with `token` instead of the operator's.
    pub async fn post_as(&self, token: &str, path: &str, body: Value) -> reqwest::Response {
        self.http
            .post(self.url(path))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .expect("POST")
    }

    pub async fn post(&self, path: &str, body: Value) -> reqwest::Response {
        self.http
            .post(self.url(path))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await
            .expect("POST")
    }

    /// Posts a Twilio form webhook with the given signature.
    pub async fn twilio(&self, path: &str, body: Vec<u8>, signature: &str) -> reqwest::Response {
        self.http
            .post(self.url(path))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .header("X-Twilio-Signature", signature)
            .body(body)
            .send()
            .await
            .expect("POST webhook")
    }

    /// Every event in the log, from the NDJSON feed.
    pub async fn events(&self) -> Vec<Value> {
        let text = self
            .get("/v1/events?after=0")
            .await
            .text()
            .await
            .expect("feed");
        text.lines()
            .map(|l| serde_json::from_str(l).expect("json line"))
            .collect()
    }

    /// The hub's exit status once it exits by itself, or `None` if it is still running after
    /// `within` (a guard against a hung suite, not a timing bound).
    #[allow(dead_code)] // Used by some e2e targets only.
    pub fn exited_within(&mut self, within: std::time::Duration) -> Option<ExitStatus> {
        let deadline = std::time::Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Some(status);
            }
            if std::time::Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    /// Stops the hub with SIGTERM and waits for it.
    pub fn terminate(mut self) -> ExitStatus {
        let pid = self.child.id().to_string();
        let killed = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill");
        assert!(killed.success());
        self.child.wait().expect("wait")
    }

    /// Publishes the consent wording test opt-ins cite (an opt-in must cite a published one);
    /// the same text again is the same version. Answers the version.
    pub async fn published_wording(&self) -> String {
        let response = self
            .post(
                "/v1/consent/wordings",
                json!({"business": "Acme Homes", "language": "en",
                       "text": "I agree to receive WhatsApp messages from Acme Homes."}),
            )
            .await;
        assert!(response.status().is_success(), "{}", response.status());
        let body: Value = response.json().await.expect("json");
        body["version"].as_str().expect("version").to_owned()
    }

    /// A sender, an approved template and an opted-in contact.
    pub async fn ready(&self) {
        let wording = self.published_wording().await;
        let calls = [
            (
                "/v1/senders",
                json!({"address": SENDER, "provider": "twilio"}),
            ),
            (
                "/v1/senders/whatsapp:+15555550100/authorize",
                json!({"by": "ops@example.com"}),
            ),
            (
                "/v1/templates",
                json!({"content_sid": TEMPLATE, "name": "viewing_reminder", "language": "en",
                       "category": "utility", "placeholders": ["1", "2"]}),
            ),
            (
                "/v1/templates/HX0123456789abcdef0123456789abcdef/status",
                json!({"status": "approved"}),
            ),
            (
                "/v1/contacts/+41790000001/opt-in",
                json!({"source": "web_form", "evidence": "https://example.com/f/1",
                       "recorded_by": "e2e", "wording_version": wording}),
            ),
        ];
        for (path, body) in calls {
            let response = self.post(path, body).await;
            assert!(
                response.status().is_success(),
                "{path}: {}",
                response.status()
            );
        }
    }
}

pub fn template_send(to: &str) -> Value {
    json!({"to": to, "workflow": "appointment_scheduling",
           "template": {"content_sid": TEMPLATE, "variables": {"1": "Lea", "2": "Thu 10:00"}}})
}

pub fn fixture(name: &str) -> Vec<u8> {
    let path = fixtures_dir().join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/providers")
}

/// The signature `signatures.tsv` lists for `file` signed over `url` with `key`.
pub fn signature(url: &str, key: &str, file: &str) -> String {
    let table = String::from_utf8(fixture("signatures.tsv")).expect("utf-8");
    table
        .lines()
        .map(|line| line.split('\t').collect::<Vec<_>>())
        .find(|cols| cols.len() >= 4 && cols[0] == url && cols[1] == key && cols[2] == file)
        .map(|cols| cols[3].to_owned())
        .unwrap_or_else(|| panic!("no signature for {file} at {url}"))
}

pub fn twilio_signature(path: &str, file: &str) -> String {
    signature(&format!("{PUBLIC_URL}{path}"), TWILIO_AUTH_TOKEN, file)
}

pub fn meta_signature(file: &str) -> String {
    signature(
        &format!("{PUBLIC_URL}/webhooks/meta"),
        META_APP_SECRET,
        file,
    )
}

/// The webhook rejection log's directory for the data directory `data` (serve's default,
/// `<data>.rejected`, beside it).
pub fn rejected_dir(data: &Path) -> PathBuf {
    let mut name = data
        .file_name()
        .expect("data directory name")
        .to_os_string();
    name.push(".rejected");
    data.with_file_name(name)
}

/// The webhook rejection log's lines, oldest first.
pub fn audit_lines(data: &Path) -> Vec<Value> {
    let Ok(entries) = std::fs::read_dir(rejected_dir(data)) else {
        return Vec::new();
    };
    let mut segments: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("rejected-"))
        })
        .collect();
    segments.sort();
    segments
        .iter()
        .flat_map(|p| {
            std::fs::read_to_string(p)
                .expect("segment")
                .lines()
                .map(|l| serde_json::from_str(l).expect("rejection log line"))
                .collect::<Vec<Value>>()
        })
        .collect()
}
