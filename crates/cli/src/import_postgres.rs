//! `wagate import FILE --store postgres://…`: the restore of `import.rs` into an empty
//! PostgreSQL log (issue 17, "move an existing log"): the same lines, checks and re-derived
//! webhook keys, appended one transaction at a time through the `EventLog` interface. Positions,
//! versions and event ids land as in the export, so `wagate export --hub` of a hub serving the
//! database gives the same lines.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context as _};
use chrono::TimeDelta;
use wagate_store::{AppendOutcome, AppendRequest, EventLog, IdempotencyKey};
use wagate_store_postgres::{PgLog, PgOptions};

use crate::import::ImportLines;
use crate::source::{self, Flow};

pub async fn run(file: PathBuf, url: String, horizon: TimeDelta) -> anyhow::Result<ExitCode> {
    let handle = tokio::runtime::Handle::current();
    let (target, events, keys, expired) =
        tokio::task::spawn_blocking(move || import(&handle, &file, &url, horizon))
            .await
            .context("the import thread stopped")??;
    eprintln!(
        "imported {events} events (positions 1..={events}) into PostgreSQL at {target}; {keys} webhook de-duplication keys restored ({expired} already expired)"
    );
    Ok(ExitCode::SUCCESS)
}

fn import(
    handle: &tokio::runtime::Handle,
    file: &std::path::Path,
    url: &str,
    horizon: TimeDelta,
) -> anyhow::Result<(String, u64, u64, u64)> {
    if !file.is_file() {
        bail!("no export file at {}", file.display());
    }
    let log = PgLog::open(url, PgOptions::default()).context("cannot open the PostgreSQL log")?;
    let target = log.target().to_owned();
    if log.head_position() != 0 {
        bail!(
            "the wagate log in PostgreSQL at {target} is not empty (head {}): import builds a new log",
            log.head_position()
        );
    }
    let mut lines = ImportLines::new(horizon);
    source::file_records(
        file,
        |line| {
            let (at, request) = lines.read(&line)?;
            match handle.block_on(log.append(request)) {
                Ok(AppendOutcome::Appended(committed)) if committed.positions == [line.position] => {}
                Ok(other) => bail!(
                    "{at}: the store answered {other:?}; the import stops here (the PostgreSQL log now holds an incomplete import)"
                ),
                Err(error) => {
                    return Err(anyhow::Error::new(error)
                        .context(format!("{at} could not be appended")))
                }
            }
            Ok(Flow::Continue)
        },
        |_| {},
    )?;
    let restored = lines.keys.len() as u64;
    for (key, expires_at_ms) in lines.keys {
        handle
            .block_on(log.append(AppendRequest::key_only(IdempotencyKey {
                key: key.into_bytes(),
                expires_at_ms,
                result: Vec::new(),
            })))
            .context("recording a webhook de-duplication key")?;
    }
    Ok((
        target,
        lines.expected_position - 1,
        restored,
        lines.expired_keys,
    ))
}
