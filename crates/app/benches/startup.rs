//! Start-up time and memory of a hub against the size of its log (a benchmark, not a test).
//!
//! `cargo bench -p wagate-app --bench startup [-- EVENTS...]` (or `just bench-startup`): for each
//! size (default 100,000 and 1,000,000 events; `just bench-startup 10000000` for 10M), it
//! generates a log in a fresh folder, then opens a hub on it in a child process twice:
//! 1. no snapshot: the projection is rebuilt from the whole log;
//! 2. the same open again after that child saved the projection's snapshot (what a clean
//!    shutdown does) and loaded the portfolio once (which saves its snapshot).
//!
//! It reports, per child: open until ready (`Store::open` + `Hub::open`), the first send's
//! decision (a dry run: it loads the portfolio, whose stream holds one event per message), and
//! the RSS when ready and its peak (`VmRSS`, `VmHWM`), each child being its own process.
//!
//! The log is realistic and generated quickly: per message, one append of its intent with the
//! portfolio's reach, then one of its claim, the provider's acceptance and the `sent` and
//! `delivered` callbacks (6 events), written through the log interface in requests of a few
//! thousand events; one message in 100 is left open (only its intent).
//!
//! The messages go to `WAGATE_BENCH_CONTACTS` contacts (default 100,000), in turn: a business
//! writes to its address book again and again, so the log grows with history while the number
//! of contacts does not. That matters here because the state kept per contact (a contact's
//! recent messages, its aggregate) is the size of the business, not of its history; one new
//! contact per message would make it grow with the log and hide what start-up costs per event.
//!
//! The messages are spread evenly over `WAGATE_BENCH_DAYS` days of event time (default 365)
//! before the bench's "now". The hub keeps rolling windows of event time (provider ids of the
//! last 7 days, cost entries of the last 30, the funnel's 7 days, the reach of 24 h): they hold
//! what a hub sends in those windows, which is open work, not history. 10M events over a year
//! is ~4,500 messages a day; squeezing them into 3 days (as this bench did before) measures a
//! hub sending 500,000 messages a day instead.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use uuid::Uuid;
use wagate_app::{FixedClock, Hub, SendOptions, SendRequest};
use wagate_domain::decide::{RecordOptIn, RegisterSender, RegisterTemplate};
use wagate_domain::{
    ApprovalStatus, ContactId, Event, MessageEvent, MessageId, MessageStatus, OptInSource,
    PhoneNumber, Policy, PortfolioEvent, PortfolioId, ProviderKind, ProviderMessageRef,
    SendContent, TemplateCategory, TemplateId, Timestamp, WhatsAppAddress, Workflow,
};
use wagate_store::{AppendRequest, EventLog, ExpectedVersion, Options, Store, StreamId};

const SENDER: &str = "whatsapp:+15550001111";
const TEMPLATE: &str = "HX0123456789abcdef0123456789abcdef";
/// Messages per append request during generation (× 6 events).
const MESSAGES_PER_REQUEST: usize = 500;
/// Requests between two waits for the store's packing during generation (~150,000 events).
const PACK_EVERY_REQUESTS: usize = 50;

fn now() -> Timestamp {
    Utc.with_ymd_and_hms(2026, 11, 25, 9, 0, 0)
        .single()
        .expect("time")
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

fn open_store(dir: &Path) -> Store {
    Store::open(dir, Options::default()).expect("open store")
}

fn open_hub(store: &Store) -> Hub {
    open_hub_at(store, now())
}

fn open_hub_at(store: &Store, at: Timestamp) -> Hub {
    Hub::open(
        Arc::new(store.clone()),
        Arc::new(FixedClock::new(at)),
        Policy::default(),
    )
    .expect("open hub")
}

/// Contacts the messages go to, in turn (see the module doc).
const DEFAULT_CONTACTS: usize = 100_000;
/// Days of event time the messages are spread over (see the module doc).
const DEFAULT_DAYS: u64 = 365;

fn days() -> u64 {
    match std::env::var("WAGATE_BENCH_DAYS") {
        Ok(value) => match value.parse::<u64>() {
            Ok(days) if (1..=3650).contains(&days) => days,
            _ => panic!("WAGATE_BENCH_DAYS must be a number from 1 to 3650, not {value:?}"),
        },
        Err(_) => DEFAULT_DAYS,
    }
}

fn contacts() -> usize {
    match std::env::var("WAGATE_BENCH_CONTACTS") {
        Ok(value) => match value.parse::<usize>() {
            Ok(count) if (1..=10_000_000).contains(&count) => count,
            _ => panic!("WAGATE_BENCH_CONTACTS must be a number from 1 to 10000000, not {value:?}"),
        },
        Err(_) => DEFAULT_CONTACTS,
    }
}

fn contact(n: usize, contacts: usize) -> ContactId {
    ContactId::Phone(PhoneNumber::parse(&format!("+4179{:07}", n % contacts)).expect("phone"))
}

fn stream(name: String) -> StreamId {
    StreamId::new(name).expect("stream")
}

/// A sender, a template, one opted-in contact for the sends, through the hub.
async fn set_up(hub: &Hub) {
    let sender = WhatsAppAddress::parse(SENDER).expect("sender");
    hub.register_sender(RegisterSender {
        sender: sender.clone(),
        provider: ProviderKind::Sandbox,
        portfolio: PortfolioId::parse("default").expect("portfolio"),
        rate: Default::default(),
        meta_phone_number_id: None,
    })
    .await
    .expect("sender");
    hub.authorize_sender(&sender, "ops")
        .await
        .expect("authorize");
    let template = TemplateId::parse(TEMPLATE).expect("template");
    hub.register_template(RegisterTemplate {
        template: template.clone(),
        name: "viewing_reminder".into(),
        language: "en".into(),
        category: TemplateCategory::Utility,
        placeholders: vec!["1".into()],
    })
    .await
    .expect("template");
    hub.set_template_status(&template, ApprovalStatus::Approved, "ok")
        .await
        .expect("approve");
    hub.set_messaging_limit(
        &PortfolioId::parse("default").expect("portfolio"),
        wagate_domain::MessagingLimit::Unlimited,
    )
    .await
    .expect("limit");
    // Opt-ins cite a published consent wording.
    let (wording, _) = hub
        .publish_wording(wagate_domain::consent::PublishWording {
            business: "Acme Homes".into(),
            language: "en".into(),
            text: "I agree to receive WhatsApp messages from Acme Homes.".into(),
        })
        .await
        .expect("wording");
    hub.opt_in(RecordOptIn {
        contact: ContactId::Phone(PhoneNumber::parse("+41780000000").expect("phone")),
        source: OptInSource::WebForm,
        evidence: "https://example.com/forms/1".into(),
        recorded_by: "bench".into(),
        wording_version: wording.version,
        evidence_at: None,
    })
    .await
    .expect("opt in");
}

/// The events of message `n`: its intent (and the portfolio's reach), then its life.
fn message_events(
    n: usize,
    contacts: usize,
    at: Timestamp,
) -> (MessageId, Vec<Event>, Option<Event>, Vec<Event>) {
    let id = MessageId::from_uuid(Uuid::now_v7()).expect("id");
    let contact = contact(n, contacts);
    let intent = Event::Message(MessageEvent::TemplateSent {
        message_id: id,
        contact: contact.clone(),
        sender: WhatsAppAddress::parse(SENDER).expect("sender"),
        template: TemplateId::parse(TEMPLATE).expect("template"),
        category: TemplateCategory::Utility,
        variables: vec![("1".into(), format!("Customer {n}"))],
        workflow: Workflow::parse("appointment_scheduling").expect("workflow"),
        media: Vec::new(),
        at,
    });
    let reach = Event::Portfolio(PortfolioEvent::RecipientReached {
        portfolio: PortfolioId::parse("default").expect("portfolio"),
        contact,
        message_id: id,
        at,
    });
    if n % 100 == 99 {
        return (id, vec![intent], Some(reach), Vec::new());
    }
    let reference = ProviderMessageRef::parse(&format!("SM{n:032x}")).expect("sid");
    let life = vec![
        Event::Message(MessageEvent::DispatchClaimed {
            message_id: id,
            attempt: 1,
            at,
        }),
        Event::Message(MessageEvent::DispatchSucceeded {
            message_id: id,
            attempt: 1,
            provider_ref: reference.clone(),
            provider_status: MessageStatus::Queued,
            at,
        }),
        Event::Message(MessageEvent::StatusChanged {
            message_id: id,
            provider_ref: Some(reference.clone()),
            status: MessageStatus::Sent,
            error_code: None,
            details: Vec::new(),
            at,
            pricing: None,
        }),
        Event::Message(MessageEvent::StatusChanged {
            message_id: id,
            provider_ref: Some(reference),
            status: MessageStatus::Delivered,
            error_code: None,
            details: Vec::new(),
            at,
            pricing: None,
        }),
    ];
    (id, vec![intent], Some(reach), life)
}

fn encode(events: &[Event]) -> Vec<wagate_store::NewEvent> {
    events
        .iter()
        .map(|event| wagate_store::persisted::encode(event, Uuid::now_v7()))
        .collect()
}

/// Fills `dir` with a log of about `events` events.
fn generate(dir: &Path, events: u64) {
    let started = Instant::now();
    let store = open_store(dir);
    let rt = runtime();
    rt.block_on(async {
        // The set-up happens when the history starts: a hub's events arrive in time order, and
        // the rolling windows (provider ids, costs, funnel) move with the newest event time.
        let start = now() - chrono::TimeDelta::days(days() as i64) - chrono::TimeDelta::hours(1);
        let hub = open_hub_at(&store, start);
        set_up(&hub).await;
        drop(hub);
        let log: Arc<dyn EventLog> = Arc::new(store.clone());
        let portfolio = stream("portfolio:default".into());
        let contacts = contacts();
        let span_seconds = (days() * 86_400) as f64;
        let mut n = 0usize;
        // Requests in flight together, so group commits overlap with encoding.
        let mut in_flight = Vec::new();
        while (n as u64) * 6 < events {
            // Intents (with the portfolio's reaches), then the lives of the same messages.
            let mut intents = AppendRequest::default();
            let mut lives = AppendRequest::default();
            let mut reaches = Vec::new();
            // Message n's time: evenly spread, the last one at the bench's "now".
            let messages_total = (events / 6).max(1) as f64;
            let behind = (messages_total - n as f64).max(0.0) / messages_total;
            let at = now() - chrono::TimeDelta::seconds((behind * span_seconds) as i64);
            for _ in 0..MESSAGES_PER_REQUEST {
                let (id, intent, reach, life) = message_events(n, contacts, at);
                let message = stream(format!("message:{id}"));
                intents = intents.with_stream(
                    message.clone(),
                    ExpectedVersion::Exact(0),
                    encode(&intent),
                );
                reaches.extend(reach);
                if !life.is_empty() {
                    lives = lives.with_stream(message, ExpectedVersion::Exact(1), encode(&life));
                }
                n += 1;
            }
            intents =
                intents.with_stream(portfolio.clone(), ExpectedVersion::Any, encode(&reaches));
            log.append(intents).await.expect("append intents");
            in_flight.push(log.append(lives));
            if in_flight.len() >= 4 {
                for pending in in_flight.drain(..) {
                    pending.await.expect("append lives");
                }
            }
            // A hub takes months to reach millions of events and its writer packs as it goes
            // (it has idle time between requests); generating at full speed would leave the
            // whole log unpacked until the end, which no hub sees, and leave sled holding pages
            // for all of it. So let packing catch up every so often.
            if (n / MESSAGES_PER_REQUEST) % PACK_EVERY_REQUESTS == 0 {
                for pending in in_flight.drain(..) {
                    pending.await.expect("append lives");
                }
                store
                    .wait_packed(Duration::from_secs(600))
                    .expect("packing catches up");
            }
        }
        for pending in in_flight.drain(..) {
            pending.await.expect("append lives");
        }
    });
    let head = store.head_position();
    let generated = started.elapsed();
    // The writer packs old events into blocks when it has time; a hub that ran this long would
    // have, so wait for it (bounded) before measuring an open.
    let packed = store
        .wait_packed(Duration::from_secs(3600))
        .expect("packing catches up");
    store.close().expect("close");
    println!(
        "generated {head} events ({} messages) in {:.1} s, packed up to {packed} {:.1} s later, {} MiB on disk",
        head / 6,
        generated.as_secs_f64(),
        (started.elapsed() - generated).as_secs_f64(),
        dir_size(dir) / (1024 * 1024)
    );
}

fn dir_size(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|entry| match entry.metadata() {
                    Ok(meta) if meta.is_dir() => dir_size(&entry.path()),
                    Ok(meta) => meta.len(),
                    Err(_) => 0,
                })
                .sum()
        })
        .unwrap_or(0)
}

fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|line| line.starts_with(field))
                .and_then(|line| line.split_whitespace().nth(1))
                .and_then(|kib| kib.parse().ok())
        })
        .unwrap_or(0)
}

/// The child: opens, measures, then saves the snapshots (as a clean shutdown does).
fn open_and_measure(dir: &Path) {
    let rt = runtime();
    let started = Instant::now();
    let store = open_store(dir);
    let store_opened = started.elapsed();
    let hub = open_hub(&store);
    let ready = started.elapsed();
    let rss_ready = status_kib("VmRSS:");
    let stats = hub.open_stats();
    let first_send = rt.block_on(async {
        let started = Instant::now();
        hub.send(
            SendRequest {
                to: "+41780000000".into(),
                sender: None,
                workflow: Some("appointment_scheduling".into()),
                content: SendContent::Template {
                    template: TemplateId::parse(TEMPLATE).expect("template"),
                    variables: [("1".to_owned(), "Lea".to_owned())].into(),
                    media: Vec::new(),
                },
            },
            SendOptions {
                idempotency_key: None,
                dry_run: true,
            },
        )
        .await
        .expect("dry-run send");
        started.elapsed()
    });
    println!(
        "RESULT ready_ms={:.0} (store_open_ms={:.0}) first_send_ms={:.0} rss_ready_mib={} rss_peak_mib={} replayed={} \
         snapshot_at={} open_messages={}",
        ready.as_secs_f64() * 1000.0,
        store_opened.as_secs_f64() * 1000.0,
        first_send.as_secs_f64() * 1000.0,
        rss_ready / 1024,
        status_kib("VmHWM:") / 1024,
        stats.replayed_events,
        stats.snapshot_position,
        hub.projection_sizes().open_messages,
    );
    rt.block_on(async {
        hub.save_snapshot()
            .await
            .expect("save the projection's snapshot");
        // The portfolio's snapshot is saved in the background by the first load: wait for it.
        for _ in 0..1000 {
            if store
                .snapshot("aggregate:portfolio:default")
                .expect("read")
                .is_some()
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    });
    drop(hub);
    drop(rt);
    store.close().expect("close");
}

fn child(dir: &Path) -> String {
    let output = Command::new(std::env::current_exe().expect("exe"))
        .arg("--child-open")
        .arg(dir)
        .output()
        .expect("run child");
    assert!(
        output.status.success(),
        "child failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .find_map(|line| line.strip_prefix("RESULT ").map(str::to_owned))
        .unwrap_or_default()
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(at) = args.iter().position(|arg| arg == "--child-open") {
        open_and_measure(Path::new(&args[at + 1]));
        return;
    }
    let sizes: Vec<u64> = {
        let given: Vec<u64> = args.iter().filter_map(|arg| arg.parse().ok()).collect();
        if given.is_empty() {
            vec![100_000, 1_000_000]
        } else {
            given
        }
    };
    let base = std::env::var_os("WAGATE_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")));
    for events in sizes {
        let dir = tempfile::Builder::new()
            .prefix("wagate-startup-")
            .tempdir_in(&base)
            .expect("tempdir");
        println!("== {events} events ==");
        generate(dir.path(), events);
        println!("without snapshots: {}", child(dir.path()));
        println!("with snapshots:    {}", child(dir.path()));
        // Kept for profiling `Store::open` on it (delete it afterwards: ~1 KB per event).
        if std::env::var_os("WAGATE_BENCH_KEEP").is_some() {
            println!("kept: {}", dir.keep().display());
        }
    }
}
