//! A private PostgreSQL server for tests: `initdb` into a temporary folder, listening only on a
//! Unix socket in that folder, stopped when dropped (and, for [`shared`], when the test process
//! exits). No service needs to run beforehand; Debian's `postgresql` package is enough.
//!
//! `initdb` and `postgres` refuse to run as root, and the project's machines run everything as
//! root: then the server runs as the unprivileged `postgres` user (via `runuser`). If the server
//! cannot start, [`TestServer::start`] says why — tests fail, never skip.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// The folders searched for the server binaries (highest version first) unless `WAGATE_PG_BIN`
/// names one.
const DEBIAN_BINARIES: &str = "/usr/lib/postgresql";
/// The user the server runs as when the tests run as root.
const SERVER_USER: &str = "postgres";

/// A running private server.
#[derive(Debug)]
pub struct TestServer {
    dir: tempfile::TempDir,
    bin: PathBuf,
    as_user: Option<String>,
    databases: AtomicU64,
}

static SHARED: OnceLock<TestServer> = OnceLock::new();

/// One server for the whole test process, started on first use; each test takes a fresh
/// database of it with [`TestServer::fresh_database`]. Panics, saying why, when it cannot start.
pub fn shared() -> &'static TestServer {
    SHARED.get_or_init(|| {
        let server = TestServer::start().unwrap_or_else(|why| panic!("{why}"));
        server.stop_when_process_exits();
        server
    })
}

fn binaries() -> Result<PathBuf, String> {
    if let Some(bin) = std::env::var_os("WAGATE_PG_BIN") {
        return Ok(PathBuf::from(bin));
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir(DEBIAN_BINARIES)
        .map_err(|error| {
            format!(
                "PostgreSQL's server binaries are not installed ({DEBIAN_BINARIES}: {error}); \
                 install Debian's postgresql package (.ci/run does) or set WAGATE_PG_BIN"
            )
        })?
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let version = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin).ok_or_else(|| {
        format!("no PostgreSQL server binaries under {DEBIAN_BINARIES}/*/bin; install postgresql")
    })
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
        .unwrap_or(false)
}

impl TestServer {
    /// Creates the cluster and starts the server; the error says what failed.
    pub fn start() -> Result<TestServer, String> {
        let bin = binaries()?;
        let dir = tempfile::Builder::new()
            .prefix("wagate-pg-")
            .tempdir()
            .map_err(|error| format!("cannot create a folder for PostgreSQL: {error}"))?;
        let as_user = running_as_root().then(|| SERVER_USER.to_owned());
        if let Some(user) = &as_user {
            let chown = Command::new("chown")
                .arg(format!("{user}:"))
                .arg(dir.path())
                .status()
                .map_err(|error| format!("cannot run chown: {error}"))?;
            if !chown.success() {
                return Err(format!(
                    "running as root, PostgreSQL must run as the user {user:?}, but \
                     `chown {user}: {}` failed (does the user exist? the postgresql package \
                     creates it)",
                    dir.path().display()
                ));
            }
        }
        let server = TestServer {
            dir,
            bin,
            as_user,
            databases: AtomicU64::new(0),
        };
        let data = server.data();
        server.run(
            "initdb",
            &[
                "-D",
                &data,
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
        )?;
        let socket = server.socket_dir().display().to_string();
        let options =
            format!("-k {socket} -c listen_addresses='' -c fsync=off -c max_connections=300");
        let log = format!("{}/server.log", socket);
        server
            .run(
                "pg_ctl",
                &["start", "-w", "-D", &data, "-l", &log, "-o", &options],
            )
            .map_err(|why| {
                let tail = std::fs::read_to_string(&log).unwrap_or_default();
                format!("{why}\nserver log:\n{tail}")
            })?;
        Ok(server)
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    /// The folder holding the server's socket.
    pub fn socket_dir(&self) -> &Path {
        self.dir.path()
    }

    fn command(&self, program: &str) -> Command {
        let binary = self.bin.join(program);
        match &self.as_user {
            Some(user) => {
                let mut command = Command::new("runuser");
                command.args(["-u", user, "--"]).arg(binary);
                command
            }
            None => Command::new(binary),
        }
    }

    fn run(&self, program: &str, args: &[&str]) -> Result<(), String> {
        let output = self
            .command(program)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(|error| format!("cannot run {program}: {error}"))?;
        if output.status.success() {
            Ok(())
        } else {
            Err(format!(
                "{program} failed ({}): {}{}",
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ))
        }
    }

    /// A `postgres://` URL for database `name` of this server (the socket folder as the host,
    /// percent-encoded).
    pub fn url(&self, name: &str) -> String {
        let host = self.socket_dir().display().to_string().replace('/', "%2F");
        format!("postgres://postgres@{host}:5432/{name}")
    }

    /// Creates a new, empty database and answers its connection string.
    pub fn fresh_database(&self) -> String {
        let name = format!(
            "wagate_test_{}",
            self.databases.fetch_add(1, Ordering::Relaxed)
        );
        self.create_database(&name)
            .unwrap_or_else(|why| panic!("cannot create database {name}: {why}"));
        self.url(&name)
    }

    /// Creates database `name` (`createdb`, as the server's user).
    pub fn create_database(&self, name: &str) -> Result<(), String> {
        let socket = self.socket_dir().display().to_string();
        self.run(
            "createdb",
            &["-h", &socket, "-p", "5432", "-U", "postgres", name],
        )
    }

    /// Stops the server now (fast shutdown: connections are cut).
    fn stop(&self) {
        let data = self.data();
        if let Err(why) = self.run("pg_ctl", &["stop", "-w", "-m", "fast", "-D", &data]) {
            tracing::warn!(%why, "stopping the test PostgreSQL failed");
        }
    }

    /// A static is never dropped: a watcher stops the server and deletes its folder once this
    /// process is gone.
    fn stop_when_process_exits(&self) {
        let pg_ctl = self.command("pg_ctl").get_program().to_owned();
        let mut stop = self.command("pg_ctl");
        stop.args(["stop", "-m", "immediate", "-D", &self.data()]);
        let stop_line = std::iter::once(pg_ctl.to_string_lossy().into_owned())
            .chain(
                stop.get_args()
                    .map(|arg| arg.to_string_lossy().into_owned()),
            )
            .map(|part| format!("'{part}'"))
            .collect::<Vec<_>>()
            .join(" ");
        let script = format!(
            "while [ -d /proc/{pid} ]; do sleep 1; done; {stop_line} >/dev/null 2>&1; rm -rf '{dir}'",
            pid = std::process::id(),
            dir = self.dir.path().display(),
        );
        if let Err(error) = Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
        {
            tracing::warn!(%error, "cannot watch the test process to stop PostgreSQL");
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop();
    }
}
