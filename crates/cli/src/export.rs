//! `wagate export`: the log as JSON Lines (the auditors' format, `wagate-export`), one event per
//! line, streamed: memory stays flat for any number of events.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context as _};
use wagate_store::{EventLog as _, SalvageEnd, SalvageFlow, SalvageStop, StoreError};

use crate::client::HubClient;
use crate::source::{self, Flow};

#[derive(Debug, clap::Args)]
#[command(
    group(clap::ArgGroup::new("source").required(true).args(["data", "store", "hub"])),
    after_help = "Examples:\n  wagate export --data ./wagate-data > log.jsonl\n  wagate export --hub http://127.0.0.1:8080 --from 1000 --output tail.jsonl\n  wagate export --store postgres://wagate@db.internal/wagate > log.jsonl\n\nThe format is documented in docs/events.md (\"Export format\")."
)]
pub struct ExportArgs {
    /// Read a stopped hub's database directory directly (a running hub holds its lock: use --hub).
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,

    /// Read the log in this PostgreSQL database (`postgres://…`) directly; hubs may be running on
    /// it: the export ends at the head when it starts (or --to).
    #[arg(long, value_name = "URL")]
    store: Option<String>,

    /// Read from a running hub's event feed (GET /v1/events), e.g. http://127.0.0.1:8080.
    #[arg(long, value_name = "URL")]
    hub: Option<String>,

    /// Bearer token for --hub.
    #[arg(
        long,
        env = "WAGATE_API_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    token: Option<String>,

    /// First log position to export (inclusive; positions start at 1).
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    from: u64,

    /// Last log position to export (inclusive). Default: the head when the export starts.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    to: Option<u64>,

    /// Write to FILE instead of standard output. It is written as FILE.partial and renamed to FILE
    /// only once complete.
    #[arg(long, short, value_name = "FILE")]
    output: Option<PathBuf>,
}

pub async fn run(args: ExportArgs) -> anyhow::Result<ExitCode> {
    if let Some(to) = args.to {
        if to < args.from {
            bail!("--to {to} is before --from {}", args.from);
        }
    }
    let mut sink = Sink::open(args.output.as_deref())?;
    let outcome = match (&args.data, &args.hub) {
        _ if args.store.is_some() => {
            let url = args.store.clone().unwrap_or_default();
            let (from, to) = (args.from, args.to);
            let (result, sink_back) = tokio::task::spawn_blocking(move || {
                let result = export_postgres(&url, from, to, &mut sink);
                (result, sink)
            })
            .await
            .context("the export thread stopped")?;
            sink = sink_back;
            result
        }
        (Some(dir), _) => {
            let dir = dir.clone();
            let (from, to) = (args.from, args.to);
            let (result, sink_back) = tokio::task::spawn_blocking(move || {
                let result = export_database(&dir, from, to, &mut sink);
                (result, sink)
            })
            .await
            .context("the export thread stopped")?;
            sink = sink_back;
            result
        }
        (None, Some(hub)) => export_hub(hub, &args, &mut sink)
            .await
            .map(|count| (count, None)),
        // Unreachable: clap requires one of the two.
        (None, None) => Err(anyhow::anyhow!("give --data DIR, --store URL or --hub URL")),
    };
    let (written, damage) = match outcome {
        Ok(written) => written,
        Err(error) => {
            sink.abandon();
            return Err(error);
        }
    };
    let target = sink.finish()?;
    let range = match (written.first, written.last) {
        (Some(first), Some(last)) => format!(" (positions {first}..={last})"),
        _ => String::new(),
    };
    if let Some(target) = target {
        eprintln!(
            "exported {} events{range} to {}",
            written.events,
            target.display()
        );
    }
    if let Some(Damage { position, reason }) = damage {
        // The good prefix is written (and, with --output, kept): the exit code tells scripts it
        // is not the whole log.
        eprintln!(
            "export stopped at position {position}: {reason}; the {} events before it were exported{range}",
            written.events
        );
        return Ok(ExitCode::from(crate::EXIT_SALVAGED));
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, Default)]
struct Count {
    events: u64,
    first: Option<u64>,
    last: Option<u64>,
}

impl Count {
    fn add(&mut self, position: u64) {
        self.events += 1;
        self.first.get_or_insert(position);
        self.last = Some(position);
    }
}

async fn export_hub(hub: &str, args: &ExportArgs, sink: &mut Sink) -> anyhow::Result<Count> {
    let client = HubClient::new(hub, args.token.clone())?;
    let mut count = Count::default();
    source::hub_records(&client, args.from, args.to, |record| {
        let flow = sink.line(&record.to_line())?;
        if flow == Flow::Continue {
            count.add(record.position);
        }
        Ok(flow)
    })
    .await?;
    Ok(count)
}

/// Why a `--data` export stopped before the end: a damaged entry (the good prefix before it was
/// written).
#[derive(Debug)]
struct Damage {
    position: u64,
    reason: String,
}

fn export_database(
    dir: &Path,
    from: u64,
    to: Option<u64>,
    sink: &mut Sink,
) -> anyhow::Result<(Count, Option<Damage>)> {
    let mut count = Count::default();
    let store = match source::open_database(dir) {
        Ok(store) => store,
        // The open-time check found a damaged tail: read what comes before it instead.
        Err(error) if is_corrupt(&error) => {
            let damage = salvage_database(dir, from, to, sink, &mut count)?;
            return Ok((count, damage));
        }
        Err(error) => return Err(error),
    };
    let head = store.head_position();
    let to = to.map_or(head, |to| to.min(head));
    let mut damage = None;
    let read = source::database_records(&store, from, to, |record| {
        let line = match source::export_record(record) {
            Ok(event) => event.to_line(),
            Err(why) => {
                damage = Some(undecodable(record, &why));
                return Ok(Flow::Stop);
            }
        };
        let flow = sink.line(&line)?;
        if flow == Flow::Continue {
            count.add(record.position);
        }
        Ok(flow)
    });
    match read {
        Ok(()) => {
            store
                .close()
                .context("closing the database after the export")?;
            Ok((count, damage))
        }
        // Damage past the tail the open checked: close, and read on from where the export got
        // to with the salvage reader, which names the damaged position.
        Err(error) if is_corrupt(&error) => {
            // The read error is what matters; the store failed no write, so close is a formality.
            let _ = store.close();
            let next = count.last.map_or(from, |last| last + 1);
            let damage = salvage_database(dir, next, Some(to), sink, &mut count)?;
            Ok((count, damage))
        }
        Err(error) => Err(error),
    }
}

/// Exports positions `from..=to` of the PostgreSQL log `url`. The database checks what it holds,
/// so there is no salvage read: an undecodable payload stops the export like `--data`'s.
fn export_postgres(
    url: &str,
    from: u64,
    to: Option<u64>,
    sink: &mut Sink,
) -> anyhow::Result<(Count, Option<Damage>)> {
    let log = source::open_postgres(url)?;
    let head = log.head_position();
    let to = to.map_or(head, |to| to.min(head));
    let mut count = Count::default();
    let mut damage = None;
    source::database_records(&log, from, to, |record| {
        let line = match source::export_record(record) {
            Ok(event) => event.to_line(),
            Err(why) => {
                damage = Some(undecodable(record, &why));
                return Ok(Flow::Stop);
            }
        };
        let flow = sink.line(&line)?;
        if flow == Flow::Continue {
            count.add(record.position);
        }
        Ok(flow)
    })
    .with_context(|| format!("reading the PostgreSQL log at {}", log.target()))?;
    Ok((count, damage))
}

fn is_corrupt(error: &anyhow::Error) -> bool {
    error
        .chain()
        .any(|cause| matches!(cause.downcast_ref(), Some(StoreError::Corrupt { .. })))
}

fn undecodable(record: &wagate_store::RecordedEvent, why: &str) -> Damage {
    Damage {
        position: record.position,
        reason: format!(
            "its {} payload (stream {}) cannot be decoded: {why}",
            record.event_type, record.stream
        ),
    }
}

/// Exports positions `from..=to` of a damaged database with the store's salvage read, up to the
/// first damaged entry.
fn salvage_database(
    dir: &Path,
    from: u64,
    to: Option<u64>,
    sink: &mut Sink,
    count: &mut Count,
) -> anyhow::Result<Option<Damage>> {
    let mut damage = None;
    let mut failure = None;
    let end = wagate_store::salvage(dir, from, to, |record| {
        let line = match source::export_record(&record) {
            Ok(event) => event.to_line(),
            Err(why) => {
                damage = Some(undecodable(&record, &why));
                return SalvageFlow::Stop;
            }
        };
        match sink.line(&line) {
            Ok(Flow::Continue) => {
                count.add(record.position);
                SalvageFlow::Continue
            }
            Ok(Flow::Stop) => SalvageFlow::Stop,
            Err(error) => {
                failure = Some(error);
                SalvageFlow::Stop
            }
        }
    })
    .with_context(|| format!("cannot read the damaged database at {}", dir.display()))?;
    if let Some(error) = failure {
        return Err(error);
    }
    Ok(match end {
        SalvageEnd::Damaged(SalvageStop { position, reason }) => Some(Damage { position, reason }),
        SalvageEnd::Complete | SalvageEnd::Stopped => damage,
    })
}

/// Standard output or a file written under a temporary name.
enum Sink {
    Stdout {
        out: BufWriter<io::Stdout>,
        /// The reader went away (`wagate export | head`): stop quietly.
        closed: bool,
    },
    File {
        out: BufWriter<File>,
        partial: PathBuf,
        target: PathBuf,
    },
}

impl Sink {
    fn open(output: Option<&Path>) -> anyhow::Result<Self> {
        Ok(match output {
            None => Sink::Stdout {
                out: BufWriter::with_capacity(1 << 16, io::stdout()),
                closed: false,
            },
            Some(target) => {
                let mut partial = target.as_os_str().to_owned();
                partial.push(".partial");
                let partial = PathBuf::from(partial);
                let file = File::create(&partial)
                    .with_context(|| format!("cannot create {}", partial.display()))?;
                Sink::File {
                    out: BufWriter::with_capacity(1 << 16, file),
                    partial,
                    target: target.to_path_buf(),
                }
            }
        })
    }

    fn line(&mut self, line: &str) -> anyhow::Result<Flow> {
        match self {
            Sink::Stdout { out, closed } => {
                if *closed {
                    return Ok(Flow::Stop);
                }
                match writeln!(out, "{line}") {
                    Ok(()) => Ok(Flow::Continue),
                    Err(error) if error.kind() == io::ErrorKind::BrokenPipe => {
                        *closed = true;
                        Ok(Flow::Stop)
                    }
                    Err(error) => Err(error).context("writing to standard output"),
                }
            }
            Sink::File { out, partial, .. } => {
                writeln!(out, "{line}")
                    .with_context(|| format!("writing {}", partial.display()))?;
                Ok(Flow::Continue)
            }
        }
    }

    /// Removes a partial file after a failure (standard output cannot be taken back).
    fn abandon(self) {
        if let Sink::File { out, partial, .. } = self {
            drop(out);
            // Best effort: the error that caused this is what the user needs to see.
            let _ = std::fs::remove_file(&partial);
        }
    }

    /// Flushes; a file is synced and renamed to its name. Returns the file written, if any.
    fn finish(self) -> anyhow::Result<Option<PathBuf>> {
        match self {
            Sink::Stdout { mut out, closed } => {
                if !closed {
                    match out.flush() {
                        Err(error) if error.kind() != io::ErrorKind::BrokenPipe => {
                            return Err(error).context("writing to standard output")
                        }
                        _ => {}
                    }
                }
                Ok(None)
            }
            Sink::File {
                out,
                partial,
                target,
            } => {
                let file = out
                    .into_inner()
                    .map_err(|error| error.into_error())
                    .with_context(|| format!("writing {}", partial.display()))?;
                file.sync_all()
                    .with_context(|| format!("syncing {}", partial.display()))?;
                std::fs::rename(&partial, &target).with_context(|| {
                    format!("renaming {} to {}", partial.display(), target.display())
                })?;
                Ok(Some(target))
            }
        }
    }
}

impl std::fmt::Debug for Sink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Sink::Stdout { .. } => f.write_str("Sink::Stdout"),
            Sink::File { target, .. } => write!(f, "Sink::File({})", target.display()),
        }
    }
}
