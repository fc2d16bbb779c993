//! `wagate audit`: replays the whole log and checks every invariant independently of the command
//! handlers (the checks live in `audit/checks.rs` and work on the exported records, so a database,
//! an export file and a running hub are audited by the same code).

mod checks;

use std::fmt::Write as _;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::{json, Value};
use wagate_store::{EventLog as _, StoreError};

use checks::{AuditPolicy, Auditor, Check, Summary};

use crate::client::HubClient;
use crate::source::{self, Flow};
use crate::EXIT_VIOLATION;

#[derive(Debug, clap::Args)]
#[command(
    group(clap::ArgGroup::new("source").required(true).args(["data", "store", "file", "hub"])),
    after_help = "Checks, in log order: no dispatch after an opt-out without a new opt-in, nor to a \
contact while an identity linked to it is opted out; no template sent or claimed without an opt-in and an \
approved template (with matching variables); no freeform text from a sender outside the 24 h window the \
contact opened by writing to that sender; no send or claim from an unauthorized sender or one whose \
registration changed since its authorization, to an invalid number, naming a workflow outside the \
allowlist, to a contact flagged not on WhatsApp, or of a marketing template to a contact who paused \
marketing; no template to a new recipient outside a window once the portfolio reached its messaging limit \
in the rolling 24 h; no keyword opt-in but from a signed inbound, no opt-in recorded by anyone but an \
operator or a webhook, no opt-in with evidence older than the newest opt-out; no claim that moves a message \
backwards; no claim without its decision; no campaign row processed twice, after its campaign was \
cancelled or completed, beyond its rows, or without its send; positions and stream versions without gaps.\n\n\
The allowlist, the default messaging limit and the marketing pause on a quality drop are the hub's \
settings, not facts in the log: give the hub's values (--workflows, --messaging-limit, --quality-pause, \
or the same WAGATE_WORKFLOWS, WAGATE_MESSAGING_LIMIT and WAGATE_PAUSE_MARKETING_ON_QUALITY_DROP the hub \
reads); without them the hub's defaults are assumed.\n\n\
Exit codes: 0 clean, 3 a violation was found, 1 the log could not be read or a setting is invalid.\n\n\
Examples:\n  wagate audit --data ./wagate-data\n  wagate audit --file log.jsonl --json\n  wagate audit --store postgres://wagate@db.internal/wagate"
)]
pub struct AuditArgs {
    /// Audit a stopped hub's database directory (a running hub holds its lock: use --hub).
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,

    /// Audit the log in this PostgreSQL database (`postgres://…`) directly, up to its head when
    /// the audit starts (hubs may be running on it).
    #[arg(long, value_name = "URL")]
    store: Option<String>,

    /// Audit an export file (`wagate export` output, JSON Lines, the whole log from position 1).
    #[arg(long, value_name = "EXPORT.jsonl")]
    file: Option<PathBuf>,

    /// Audit a running hub through its event feed (GET /v1/events), e.g. http://127.0.0.1:8080.
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

    /// The workflows the hub allows, comma-separated, as the hub's own setting (default: the
    /// hub's default allowlist, lead_qualification,appointment_scheduling,status_update).
    #[arg(long, env = "WAGATE_WORKFLOWS", value_name = "LIST")]
    workflows: Option<String>,

    /// The hub's default messaging limit per portfolio, a number of recipients or `unlimited`,
    /// as the hub's own setting (default: the hub's default, 250). A portfolio's
    /// `MessagingLimitChanged` in the log overrides it.
    #[arg(long, env = "WAGATE_MESSAGING_LIMIT", value_name = "N|unlimited")]
    messaging_limit: Option<String>,

    /// Whether the hub paused marketing templates on a number whose quality dropped, as the
    /// hub's own setting (`on` or `off`, also true/false/1/0/yes/no; default: the hub's
    /// default, on). The hub does not record this setting in the log, so a hub run with
    /// WAGATE_PAUSE_MARKETING_ON_QUALITY_DROP=off must be audited with `--quality-pause off`:
    /// with it off, marketing from a number whose quality dropped is not a violation.
    #[arg(
        long,
        env = "WAGATE_PAUSE_MARKETING_ON_QUALITY_DROP",
        value_name = "on|off"
    )]
    quality_pause: Option<String>,

    /// Print the summary as one JSON object (for machines) instead of text.
    #[arg(long)]
    json: bool,
}

/// The hub's default policy, as the auditor needs it. Taken from the domain's `Policy::default`
/// so the two defaults cannot disagree: they are settings, not rules (the rules the auditor
/// checks are its own code).
pub fn hub_default_policy() -> AuditPolicy {
    let policy = wagate_domain::Policy::default();
    AuditPolicy {
        workflows: policy
            .workflows_allowed
            .iter()
            .map(|workflow| workflow.as_str().to_owned())
            .collect(),
        default_limit: limit(policy.default_messaging_limit),
        pause_marketing_on_quality_drop: policy.pause_marketing_on_quality_drop,
    }
}

fn limit(limit: wagate_domain::MessagingLimit) -> Option<u64> {
    match limit {
        wagate_domain::MessagingLimit::Limited(n) => Some(u64::from(n)),
        wagate_domain::MessagingLimit::Unlimited => None,
    }
}

/// The policy the audit checks against: the hub's defaults, overridden by the flags.
fn audit_policy(args: &AuditArgs) -> anyhow::Result<AuditPolicy> {
    let mut policy = hub_default_policy();
    if let Some(list) = &args.workflows {
        // Read as the hub reads WAGATE_WORKFLOWS: comma-separated, trimmed, empty entries skipped.
        let workflows: std::collections::BTreeSet<String> = list
            .split(',')
            .map(str::trim)
            .filter(|name| !name.is_empty())
            .map(str::to_owned)
            .collect();
        if workflows.is_empty() {
            anyhow::bail!("--workflows (WAGATE_WORKFLOWS) names no workflow: {list:?}");
        }
        policy.workflows = workflows;
    }
    if let Some(raw) = &args.messaging_limit {
        let parsed = wagate_http::parse_messaging_limit(raw).with_context(|| {
            format!(
                "--messaging-limit (WAGATE_MESSAGING_LIMIT) {raw:?} is neither a number of recipients nor \"unlimited\""
            )
        })?;
        policy.default_limit = limit(parsed);
    }
    if let Some(raw) = &args.quality_pause {
        policy.pause_marketing_on_quality_drop = switch(raw).with_context(|| {
            format!(
                "--quality-pause (WAGATE_PAUSE_MARKETING_ON_QUALITY_DROP) {raw:?} is neither on nor off"
            )
        })?;
    }
    Ok(policy)
}

/// An on/off setting read with the words the hub accepts for it (settings/policy.rs).
fn switch(raw: &str) -> Option<bool> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "on" | "true" | "1" | "yes" => Some(true),
        "off" | "false" | "0" | "no" => Some(false),
        _ => None,
    }
}

pub async fn run(args: AuditArgs) -> anyhow::Result<ExitCode> {
    let policy = audit_policy(&args)?;
    let (label, summary) = if let Some(dir) = args.data.clone() {
        let label = format!("database {}", dir.display());
        let summary = tokio::task::spawn_blocking(move || audit_database(&dir, policy))
            .await
            .context("the audit thread stopped")??;
        (label, summary)
    } else if let Some(url) = args.store.clone() {
        let (summary, target) = tokio::task::spawn_blocking(move || audit_postgres(&url, policy))
            .await
            .context("the audit thread stopped")??;
        (format!("PostgreSQL log {target}"), summary)
    } else if let Some(path) = args.file.clone() {
        let label = format!("export file {}", path.display());
        let summary = tokio::task::spawn_blocking(move || audit_file(&path, policy))
            .await
            .context("the audit thread stopped")??;
        (label, summary)
    } else if let Some(hub) = &args.hub {
        let client = HubClient::new(hub, args.token.clone())?;
        let summary = audit_hub_with(&client, policy).await?;
        (format!("hub {}", client.base()), summary)
    } else {
        // Unreachable: clap requires one source.
        anyhow::bail!("give --data DIR, --store URL, --file EXPORT.jsonl or --hub URL");
    };
    if args.json {
        println!("{}", to_json(&label, &summary));
    } else {
        print!("{}", render(&label, &summary));
    }
    Ok(if summary.is_clean() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_VIOLATION)
    })
}

/// A progress bar on stderr when it is a terminal (hidden otherwise, so logs and pipes stay
/// clean). `bytes`: the length is a file size.
fn progress_bar(length: u64, bytes: bool) -> ProgressBar {
    if !std::io::stderr().is_terminal() || length == 0 {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(length), ProgressDrawTarget::stderr());
    let template = if bytes {
        "replaying {wide_bar} {bytes}/{total_bytes} (eta {eta})"
    } else {
        "replaying {wide_bar} {human_pos}/{human_len} events (eta {eta})"
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

pub fn audit_database(dir: &Path, policy: AuditPolicy) -> anyhow::Result<Summary> {
    let store = source::open_database(dir)?;
    let bar = progress_bar(store.head_position(), false);
    let mut auditor = Auditor::new(policy);
    let replayed = store.replay(
        1,
        |record| match source::export_record(&record) {
            Ok(event) => auditor.observe(&event),
            Err(why) => auditor.observe_undecodable(
                record.position,
                record.stream.as_str(),
                record.version,
                &why,
            ),
        },
        |progress| bar.set_position(progress.position),
    );
    bar.finish_and_clear();
    match replayed {
        Ok(_) => {}
        Err(StoreError::Corrupt { detail, .. }) => {
            let check = if detail.contains("gap") {
                Check::PositionGap
            } else {
                Check::Malformed
            };
            auditor.report(
                None,
                check,
                format!(
                    "the store cannot read the log past position {}: {detail}",
                    auditor.last_position()
                ),
            );
        }
        Err(error) => {
            return Err(anyhow::Error::new(error).context(format!("replaying {}", dir.display())))
        }
    }
    store
        .close()
        .context("closing the database after the audit")?;
    Ok(auditor.finish())
}

/// Audits the PostgreSQL log `url` up to its head at open; answers the summary and the database
/// (without its password) for the label.
pub fn audit_postgres(url: &str, policy: AuditPolicy) -> anyhow::Result<(Summary, String)> {
    let log = source::open_postgres(url)?;
    let target = log.target().to_owned();
    let bar = progress_bar(log.head_position(), false);
    let mut auditor = Auditor::new(policy);
    let replayed = log.replay(1, &mut |record| {
        match source::export_record(&record) {
            Ok(event) => auditor.observe(&event),
            Err(why) => auditor.observe_undecodable(
                record.position,
                record.stream.as_str(),
                record.version,
                &why,
            ),
        }
        bar.set_position(record.position);
    });
    bar.finish_and_clear();
    replayed.with_context(|| format!("replaying the PostgreSQL log at {target}"))?;
    Ok((auditor.finish(), target))
}

pub fn audit_file(path: &Path, policy: AuditPolicy) -> anyhow::Result<Summary> {
    let length = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    let bar = progress_bar(length, true);
    let mut auditor = Auditor::new(policy);
    let result = source::file_records(
        path,
        |record| {
            auditor.observe(&record);
            Ok(Flow::Continue)
        },
        |bytes| bar.set_position(bytes),
    );
    bar.finish_and_clear();
    result?;
    Ok(auditor.finish())
}

/// Audits a running hub that runs with the default policy (what `wagate demo` starts).
pub async fn audit_hub(client: &HubClient) -> anyhow::Result<Summary> {
    audit_hub_with(client, hub_default_policy()).await
}

pub async fn audit_hub_with(client: &HubClient, policy: AuditPolicy) -> anyhow::Result<Summary> {
    let mut auditor = Auditor::new(policy);
    source::hub_records(client, 1, None, |record| {
        auditor.observe(&record);
        Ok(Flow::Continue)
    })
    .await?;
    Ok(auditor.finish())
}

pub fn to_json(label: &str, summary: &Summary) -> Value {
    let mut value = serde_json::to_value(summary).unwrap_or(Value::Null);
    if let Value::Object(map) = &mut value {
        map.insert("source".into(), json!(label));
        map.insert("ok".into(), json!(summary.is_clean()));
    }
    value
}

fn counts(map: &std::collections::BTreeMap<String, u64>) -> String {
    if map.is_empty() {
        return "none".into();
    }
    let mut pairs: Vec<(&String, &u64)> = map.iter().collect();
    pairs.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    pairs
        .iter()
        .map(|(name, count)| format!("{name} {count}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The human summary.
pub fn render(label: &str, summary: &Summary) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = writeln!(out, "wagate audit of {label}");
    let positions = if summary.events == 0 {
        "the log is empty".to_owned()
    } else {
        format!("positions 1..={}", summary.last_position)
    };
    let _ = writeln!(
        out,
        "  events              {} ({positions})",
        summary.events
    );
    let _ = writeln!(
        out,
        "  contacts            {} ({} opted in, {} opted out)",
        summary.contacts, summary.contacts_opted_in, summary.contacts_opted_out
    );
    let _ = writeln!(
        out,
        "  messages            {}: {}",
        summary.messages,
        counts(&summary.messages_by_status)
    );
    let _ = writeln!(out, "  dispatch claims     {}", summary.dispatch_claims);
    let _ = writeln!(
        out,
        "  refusals by rule    {}",
        counts(&summary.refusals_by_rule)
    );
    let _ = writeln!(
        out,
        "  claims refused      {}",
        counts(&summary.claims_refused_by_rule)
    );
    if summary.unmatched_statuses > 0 {
        let _ = writeln!(out, "  unmatched callbacks {}", summary.unmatched_statuses);
    }
    if !summary.unknown_event_types.is_empty() {
        let _ = writeln!(
            out,
            "  unknown event types {} (not checked: a newer wagate wrote them)",
            counts(&summary.unknown_event_types)
        );
    }
    if summary.is_clean() {
        let _ = writeln!(out, "violations: none, every invariant holds");
        return out;
    }
    let _ = writeln!(out, "VIOLATIONS: {}", summary.violations_total);
    for violation in &summary.violations {
        let position = violation
            .position
            .map_or_else(|| "position ?".to_owned(), |p| format!("position {p}"));
        let stream = violation
            .stream
            .as_deref()
            .map(|s| format!(" {s}"))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "  {position} [{}]{stream}: {}",
            violation.check.as_str(),
            violation.message
        );
    }
    let shown = summary.violations.len() as u64;
    if summary.violations_total > shown {
        let _ = writeln!(
            out,
            "  … and {} more (the first {shown} are listed)",
            summary.violations_total - shown
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::{audit_policy, AuditArgs};

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        args: AuditArgs,
    }

    fn args(extra: &[&str]) -> AuditArgs {
        let mut argv = vec!["wagate-audit", "--file", "log.jsonl"];
        argv.extend_from_slice(extra);
        Cli::try_parse_from(argv).expect("arguments").args
    }

    #[test]
    fn the_quality_pause_is_on_by_default_and_the_flag_turns_it_off() {
        // The hub's default (on) unless the flag (or the hub's variable) says otherwise.
        let default = args(&[]);
        if default.quality_pause.is_none() {
            assert!(
                audit_policy(&default)
                    .expect("policy")
                    .pause_marketing_on_quality_drop
            );
        }
        let off = audit_policy(&args(&["--quality-pause", "off"])).expect("policy");
        assert!(!off.pause_marketing_on_quality_drop);
        let on = audit_policy(&args(&["--quality-pause", "ON"])).expect("policy");
        assert!(on.pause_marketing_on_quality_drop);
        let hub_word = audit_policy(&args(&["--quality-pause", "false"])).expect("policy");
        assert!(!hub_word.pause_marketing_on_quality_drop);
    }

    #[test]
    fn a_quality_pause_that_is_neither_on_nor_off_is_refused_naming_the_flag() {
        let error = audit_policy(&args(&["--quality-pause", "sometimes"])).expect_err("refused");
        let text = format!("{error:#}");
        assert!(text.contains("--quality-pause"), "{text}");
        assert!(text.contains("sometimes"), "{text}");
    }
}
