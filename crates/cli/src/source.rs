//! Where `export` and `audit` read the log from: a stopped database (opened directly), an export
//! file, or a running hub's event feed. Each reader hands records over one at a time, so memory
//! stays flat however long the log is.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;

use anyhow::{bail, Context as _};
use wagate_export::ExportedEvent;
use wagate_store::{EventLog, Options, RecordedEvent, Store, StoreError};
use wagate_store_postgres::{PgLog, PgOptions};

use crate::client::HubClient;

/// Records read from the database per call.
const PAGE: usize = 4096;

/// sled's page cache when reading a stopped database from end to end.
const READ_CACHE_BYTES: u64 = 16 * 1024 * 1024;

/// Whether a reader should go on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    Continue,
    Stop,
}

/// Opens a stopped hub's database, with a clear sentence for the usual mistakes.
pub fn open_database(dir: &Path) -> anyhow::Result<Store> {
    if !dir.is_dir() {
        bail!(
            "no database at {}: the directory does not exist",
            dir.display()
        );
    }
    // sled keeps its log in `<dir>/db`; without it, opening would create a new, empty database.
    if !dir.join("db").is_file() {
        bail!(
            "no wagate database in {} (no `db` file there; point --data at the directory `wagate serve --data` used)",
            dir.display()
        );
    }
    // A sequential scan gains nothing from a large page cache: keep memory low.
    let options = Options {
        cache_capacity_bytes: READ_CACHE_BYTES,
        ..Options::default()
    };
    Store::open(dir, options).map_err(|error| match error {
        StoreError::AlreadyOpen { .. } => anyhow::anyhow!(
            "database is in use by a running hub; use --hub URL to read it through the hub, or stop the hub first ({})",
            dir.display()
        ),
        other => anyhow::Error::new(other).context(format!("cannot open the database at {}", dir.display())),
    })
}

/// A record as the auditors' format, or why it cannot be decoded.
pub fn export_record(record: &RecordedEvent) -> Result<ExportedEvent, String> {
    wagate_store::persisted::decode(record)
        .map(|event| ExportedEvent::from_event(record, &event))
        .map_err(|error| error.to_string())
}

/// Opens the wagate log in the PostgreSQL database `url` names, to read it (`--store`). Unlike a
/// sled folder, the database may be in use by running hubs: the reader sees the log up to the
/// head at the time it opened.
pub fn open_postgres(url: &str) -> anyhow::Result<PgLog> {
    if !wagate_store_postgres::is_postgres_url(url) {
        bail!("--store takes a postgres:// (or postgresql://) URL; for a sled folder use --data");
    }
    // One connection: a reader reads in order, one page at a time.
    let options = PgOptions {
        connections: 1,
        ..PgOptions::default()
    };
    PgLog::open(url, options).context("cannot open the PostgreSQL log")
}

/// Reads positions `from..=to` of an open log (sled or PostgreSQL) in pages.
pub fn database_records(
    store: &dyn EventLog,
    from: u64,
    to: u64,
    mut each: impl FnMut(&RecordedEvent) -> anyhow::Result<Flow>,
) -> anyhow::Result<()> {
    let mut next = from.max(1);
    while next <= to {
        let wanted = usize::try_from(to - next + 1)
            .unwrap_or(usize::MAX)
            .min(PAGE);
        let page = store
            .read_from(next, wanted)
            .with_context(|| format!("reading the log at position {next}"))?;
        let Some(last) = page.last().map(|record| record.position) else {
            return Ok(());
        };
        for record in &page {
            if record.position > to {
                return Ok(());
            }
            if each(record)? == Flow::Stop {
                return Ok(());
            }
        }
        next = last + 1;
    }
    Ok(())
}

/// Reads an export file line by line; `on_bytes` gets the bytes read so far (for a progress bar).
pub fn file_records(
    path: &Path,
    mut each: impl FnMut(ExportedEvent) -> anyhow::Result<Flow>,
    mut on_bytes: impl FnMut(u64),
) -> anyhow::Result<()> {
    let file = File::open(path)
        .with_context(|| format!("cannot open the export file {}", path.display()))?;
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut line = String::new();
    let mut number = 0_u64;
    let mut read = 0_u64;
    loop {
        line.clear();
        let length = reader
            .read_line(&mut line)
            .with_context(|| format!("reading {} after line {number}", path.display()))?;
        if length == 0 {
            return Ok(());
        }
        number += 1;
        read += length as u64;
        if number % 65_536 == 0 {
            on_bytes(read);
        }
        let text = line.trim_end_matches(['\n', '\r']);
        if text.trim().is_empty() {
            continue;
        }
        let record = ExportedEvent::parse_line(text, number)
            .with_context(|| format!("{} is not a wagate export", path.display()))?;
        if each(record)? == Flow::Stop {
            return Ok(());
        }
    }
}

/// Reads a running hub's event feed (`GET /v1/events?after=N[&limit=M]`, NDJSON) from position
/// `from` to `to`, or to the hub's durable head when no `to` is given. The feed streams chunk by
/// chunk, and so does this reader.
pub async fn hub_records(
    client: &HubClient,
    from: u64,
    to: Option<u64>,
    mut each: impl FnMut(ExportedEvent) -> anyhow::Result<Flow>,
) -> anyhow::Result<()> {
    let from = from.max(1);
    let mut query = vec![("after", (from - 1).to_string())];
    if let Some(to) = to {
        query.push(("limit", (to.saturating_sub(from) + 1).to_string()));
    }
    let mut response = client
        .get_stream(&["v1", "events"], &query, "GET /v1/events")
        .await?;
    let mut buffer: Vec<u8> = Vec::new();
    let mut number = 0_u64;
    let mut handle = |line: &[u8]| -> anyhow::Result<Flow> {
        let text = std::str::from_utf8(line)
            .context("the hub's event feed sent a line that is not UTF-8")?
            .trim();
        if text.is_empty() {
            return Ok(Flow::Continue);
        }
        number += 1;
        let record = match ExportedEvent::parse_line(text, number) {
            Ok(record) => record,
            Err(error) => {
                // The feed ends with `{"error": {...}}` when the hub cannot read further.
                let stopped = serde_json::from_str::<serde_json::Value>(text)
                    .ok()
                    .and_then(|value| {
                        value
                            .pointer("/error/message")
                            .and_then(serde_json::Value::as_str)
                            .map(str::to_owned)
                    });
                match stopped {
                    Some(message) => bail!(
                        "the event feed of the hub at {} stopped: {message}",
                        client.base()
                    ),
                    None => {
                        return Err(anyhow::Error::new(error).context(format!(
                            "the hub at {} sent an event the export format cannot read",
                            client.base()
                        )))
                    }
                }
            }
        };
        if to.is_some_and(|to| record.position > to) {
            return Ok(Flow::Stop);
        }
        each(record)
    };
    while let Some(chunk) = response
        .chunk()
        .await
        .with_context(|| format!("reading the event feed of the hub at {}", client.base()))?
    {
        buffer.extend_from_slice(&chunk);
        let mut start = 0;
        while let Some(offset) = buffer[start..].iter().position(|byte| *byte == b'\n') {
            let end = start + offset;
            if handle(&buffer[start..end])? == Flow::Stop {
                return Ok(());
            }
            start = end + 1;
        }
        buffer.drain(..start);
    }
    if !buffer.is_empty() {
        handle(&buffer)?;
    }
    Ok(())
}
