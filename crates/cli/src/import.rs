//! `wagate import FILE --data DIR`: rebuilds a new database from an export file (a restore).
//!
//! Every line's domain event is decoded back from its payload ([`ExportedEvent::to_event`]),
//! encoded with the store's persisted layer and appended with its original event id, stream,
//! expected version and actor, in position order. The store numbers positions from 1 without
//! gaps, so a complete export imported in order lands on the very same positions; each one is
//! checked, and the import stops at the first line that would land elsewhere.
//!
//! Webhook de-duplication keys are not in the export. The ones the log determines are recorded
//! again (see [`webhook_key`]) with the expiry the hub gave them (event time + the horizon), so a
//! provider retry after a restore is still a duplicate. An `Idempotency-Key` of the command API
//! keeps the original answer's bytes, which the log does not hold: those are not restored.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context as _};
use chrono::TimeDelta;
use wagate_domain::Event;
use wagate_export::ExportedEvent;
use wagate_store::{
    AppendOutcome, AppendRequest, ExpectedVersion, IdempotencyKey, Options, Origin, Pending, Store,
    StreamId,
};

use crate::source::{self, Flow};

/// Appends queued at once: the store's writer commits what is queued as one batch (one fsync),
/// and its queue holds at most `DEFAULT_MAX_QUEUED_REQUESTS`.
const IN_FLIGHT: usize = 1000;

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  wagate export --hub http://127.0.0.1:8080 --output backup.jsonl\n  wagate import backup.jsonl --data ./restored\n  wagate serve --data ./restored\n\nSee docs/operations.md (\"Backups, restores and salvage\")."
)]
pub struct ImportArgs {
    /// The export file (`wagate export`'s JSON Lines) to rebuild from. It must start at
    /// position 1 and have no gaps.
    #[arg(value_name = "FILE")]
    file: PathBuf,

    /// The database directory to create. It must not exist yet, or be empty.
    #[arg(
        long,
        value_name = "DIR",
        required_unless_present = "store",
        conflicts_with = "store"
    )]
    data: Option<PathBuf>,

    /// Import into this PostgreSQL database (`postgres://…`) instead: its wagate log must be
    /// empty (the schema is created if missing). Positions, versions and ids are kept.
    #[arg(long, value_name = "URL")]
    store: Option<String>,

    /// The webhook de-duplication horizon the hub runs with (days): re-derived webhook keys
    /// expire at their event's time plus this.
    #[arg(
        long,
        env = "WAGATE_WEBHOOK_DEDUP_DAYS",
        value_name = "DAYS",
        default_value_t = wagate_domain::policy::WEBHOOK_DEDUP_DEFAULT.num_days(),
        value_parser = clap::value_parser!(i64).range(1..)
    )]
    webhook_dedup_days: i64,
}

pub async fn run(args: ImportArgs) -> anyhow::Result<ExitCode> {
    let horizon = TimeDelta::days(args.webhook_dedup_days);
    let (Some(data), None) = (args.data.clone(), args.store.clone()) else {
        let url = args
            .store
            .clone()
            .context("--data or --store is required")?;
        return crate::import_postgres::run(args.file, url, horizon).await;
    };
    let file = args.file;
    let fresh = !data.exists() || is_empty(&data);
    let target = data.clone();
    let summary = tokio::task::spawn_blocking(move || import(&file, &target, horizon))
        .await
        .context("the import thread stopped")?
        .map_err(|error| {
            // The refusal of a non-empty directory touched nothing; any later failure left a
            // database that is not the export.
            if !fresh || !data.exists() || is_empty(&data) {
                error
            } else {
                error.context(format!(
                    "the import stopped; {} holds an incomplete database: remove it before importing again",
                    data.display()
                ))
            }
        })?;
    eprintln!(
        "imported {} events (positions 1..={}) into {}; {} webhook de-duplication keys restored ({} already expired)",
        summary.events,
        summary.events,
        summary.data.display(),
        summary.keys,
        summary.expired_keys
    );
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug)]
struct Summary {
    data: PathBuf,
    events: u64,
    keys: u64,
    expired_keys: u64,
}

/// An append on its way, and the export line it came from.
struct InFlight {
    line: u64,
    position: u64,
    pending: Pending<AppendOutcome>,
}

fn is_empty(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|mut entries| entries.next().is_none())
}

fn refuse_non_empty(data: &Path) -> anyhow::Result<()> {
    match std::fs::read_dir(data) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                bail!(
                    "{} is not empty: import builds a new database; give a directory that does not exist or is empty",
                    data.display()
                );
            }
            Ok(())
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(error).with_context(|| format!("cannot read {}", data.display())),
    }
}

fn import(file: &Path, data: &Path, horizon: TimeDelta) -> anyhow::Result<Summary> {
    refuse_non_empty(data)?;
    if !file.is_file() {
        bail!("no export file at {}", file.display());
    }
    let store = Store::open(data, Options::default())
        .with_context(|| format!("cannot create the database at {}", data.display()))?;
    let mut lines = ImportLines::new(horizon);
    let mut in_flight: VecDeque<InFlight> = VecDeque::new();
    source::file_records(
        file,
        |line| {
            let (_, request) = lines.read(&line)?;
            in_flight.push_back(InFlight {
                line: lines.line_number,
                position: line.position,
                pending: store.append(request),
            });
            if in_flight.len() >= IN_FLIGHT {
                settle(in_flight.pop_front())?;
            }
            Ok(Flow::Continue)
        },
        |_| {},
    )?;
    while let Some(next) = in_flight.pop_front() {
        settle(Some(next))?;
    }
    let mut restored = 0_u64;
    let mut waiting = VecDeque::new();
    for (key, expires_at_ms) in lines.keys {
        waiting.push_back(store.append(AppendRequest::key_only(IdempotencyKey {
            key: key.into_bytes(),
            expires_at_ms,
            result: Vec::new(),
        })));
        if waiting.len() >= IN_FLIGHT {
            waiting
                .pop_front()
                .map(Pending::wait)
                .transpose()
                .context("recording a webhook de-duplication key")?;
        }
        restored += 1;
    }
    for pending in waiting {
        pending
            .wait()
            .context("recording a webhook de-duplication key")?;
    }
    store
        .verify()
        .context("the imported database does not verify")?;
    store.close().context("closing the imported database")?;
    Ok(Summary {
        data: data.to_path_buf(),
        events: lines.expected_position - 1,
        keys: restored,
        expired_keys: lines.expired_keys,
    })
}

/// What every import does with the export's lines, whichever store they go to: each line must
/// follow the last one's position, decodes to its append request, and may carry a webhook
/// de-duplication key, kept (with its newest expiry) while still inside its horizon.
pub(crate) struct ImportLines {
    horizon: TimeDelta,
    now_ms: i64,
    /// The 1-based number of the last line read.
    pub(crate) line_number: u64,
    /// The position the next line must have.
    pub(crate) expected_position: u64,
    /// Webhook keys still inside their horizon, with their expiry (ms since the epoch).
    pub(crate) keys: HashMap<String, i64>,
    /// Webhook keys already past their horizon, not restored.
    pub(crate) expired_keys: u64,
}

impl ImportLines {
    pub(crate) fn new(horizon: TimeDelta) -> Self {
        Self {
            horizon,
            now_ms: chrono::Utc::now().timestamp_millis(),
            line_number: 0,
            expected_position: 1,
            keys: HashMap::new(),
            expired_keys: 0,
        }
    }

    /// The next line as its append request, with the words that name it in errors
    /// (`line N (position P)`).
    pub(crate) fn read(&mut self, line: &ExportedEvent) -> anyhow::Result<(String, AppendRequest)> {
        self.line_number += 1;
        let at = format!("line {} (position {})", self.line_number, line.position);
        if line.position != self.expected_position {
            bail!(
                "{at}: expected position {}; an import needs a complete export, from position 1 without gaps",
                self.expected_position
            );
        }
        let event = line
            .to_event()
            .with_context(|| format!("{at}: the {} payload does not decode", line.event_type))?;
        let request = append_request(line, &event).with_context(|| at.clone())?;
        if let Some(key) = webhook_key(line, &event) {
            let expires_at_ms = (event.at() + self.horizon).timestamp_millis();
            if expires_at_ms <= self.now_ms {
                self.expired_keys += 1;
            } else {
                let entry = self.keys.entry(key).or_insert(expires_at_ms);
                *entry = (*entry).max(expires_at_ms);
            }
        }
        self.expected_position += 1;
        Ok((at, request))
    }
}

/// Waits for one append and checks it landed on its line's position.
fn settle(next: Option<InFlight>) -> anyhow::Result<()> {
    let Some(InFlight {
        line,
        position,
        pending,
    }) = next
    else {
        return Ok(());
    };
    let outcome = pending
        .wait()
        .with_context(|| format!("line {line} (position {position}) could not be appended"))?;
    match outcome {
        AppendOutcome::Appended(committed) if committed.positions == [position] => Ok(()),
        AppendOutcome::Appended(committed) => bail!(
            "line {line}: position {position} landed at {:?}; the import stops here",
            committed.positions
        ),
        other => bail!(
            "line {line} (position {position}): the store answered {other:?} (a repeated event id?); the import stops here"
        ),
    }
}

/// The line as an append of its event to its stream at its version, with its id and actor.
pub(crate) fn append_request(line: &ExportedEvent, event: &Event) -> anyhow::Result<AppendRequest> {
    let event_id = uuid::Uuid::parse_str(&line.event_id)
        .with_context(|| format!("event_id {:?} is not a UUID", line.event_id))?;
    let stream = StreamId::new(&line.stream)
        .with_context(|| format!("stream {:?} is not a stream id", line.stream))?;
    if line.version == 0 {
        bail!("version 0: stream versions start at 1");
    }
    let mut new = wagate_store::persisted::encode(event, event_id);
    new.origin = line.actor.as_ref().map(|actor| Origin {
        kind: actor.kind.clone(),
        name: actor.name.clone(),
    });
    Ok(AppendRequest::single(
        stream,
        ExpectedVersion::Exact(line.version - 1),
        vec![new],
    ))
}

/// The de-duplication key the hub recorded with this event when a provider webhook brought it,
/// as `WebhookEvent::dedup_key` (crates/providers) built it, under the hub's `webhook:` prefix.
///
/// Re-derived: inbound and group messages (`<provider>/inbound/<provider message id>`) and
/// status callbacks (`<provider>/status/<id>/<status>/<error codes>`; exact when the callback
/// carried at most one error code, the only one the event keeps). The provider is the event's
/// actor (`webhook`/`<provider>`); events without one are skipped. Not re-derivable: system
/// notices, user preferences and channel errors (their keys hold fields the log does not keep).
pub(crate) fn webhook_key(line: &ExportedEvent, event: &Event) -> Option<String> {
    use wagate_domain::{ContactEvent, MessageEvent};
    let actor = line
        .actor
        .as_ref()
        .filter(|actor| actor.kind == "webhook")?;
    let provider = &actor.name;
    let key = match event {
        Event::Contact(
            ContactEvent::InboundReceived {
                provider_ref: Some(reference),
                ..
            }
            | ContactEvent::GroupMessageReceived {
                provider_ref: Some(reference),
                ..
            },
        ) => format!("{provider}/inbound/{reference}"),
        Event::Message(
            MessageEvent::StatusChanged {
                provider_ref: Some(reference),
                status,
                error_code,
                ..
            }
            | MessageEvent::UnmatchedStatusReceived {
                provider_ref: reference,
                status,
                error_code,
                ..
            },
        ) => format!(
            "{provider}/status/{reference}/{}/{}",
            status.as_str(),
            error_code.map(|code| code.to_string()).unwrap_or_default()
        ),
        _ => return None,
    };
    Some(format!("webhook:{key}"))
}
