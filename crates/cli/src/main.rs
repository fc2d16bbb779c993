//! `wagate`: the compliance-gated WhatsApp Business messaging hub.
//!
//! Exit codes (documented in `wagate --help` and README.md):
//! 0 success; 1 an error (bad input, a hub that cannot be reached, an I/O failure);
//! 2 usage error (clap); 3 `audit` found a violation; 4 a send or claim was refused by a rule;
//! 5 `serve` stopped because its event log failed (restart it); 6 `export --data` stopped at a
//! damaged entry of the log after writing the good prefix before it.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// jemalloc instead of glibc's malloc. Under the soak's steady load glibc's per-thread arenas
/// kept the memory sled and the hub freed: RSS grew ~5 times faster than the live heap
/// (docs/performance.md, "Soak"). jemalloc returns unused pages to the system after its decay
/// time (10 s), so RSS follows what the hub holds.
#[cfg(feature = "jemalloc")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

mod alerts;
mod audit;
mod campaign;
mod client;
mod compose;
mod consent;
mod costs;
mod crm;
mod demo;
mod dispatch;
mod endpoints;
mod event_webhooks;
mod export;
mod healthcheck;
mod import;
mod import_postgres;
mod ops;
mod outbound;
mod rejected;
mod review;
mod serve;
mod settings;
mod signals;
mod source;
mod template_sample;
mod template_sync;
mod twilio_prices;

/// Exit code when `audit` finds a violation.
pub const EXIT_VIOLATION: u8 = 3;
/// Exit code when a rule refused a send.
pub const EXIT_REFUSED: u8 = 4;
/// Exit code when `export --data` stopped at a damaged entry of the log, having written the good
/// prefix before it (stderr names the position and the reason).
pub const EXIT_SALVAGED: u8 = 6;

#[derive(Debug, Parser)]
#[command(
    name = "wagate",
    version,
    about = "A compliance-gated WhatsApp Business messaging hub",
    long_about = "wagate decides, from an append-only event log, whether a WhatsApp message may be sent \
(opt-in, STOP, 24 h window, approved template, workflow, sender authorization, tier limit), records \
every decision, and dispatches allowed messages through Twilio, Meta's Cloud API or a local sandbox.",
    after_help = "Exit codes: 0 success, 1 error, 2 usage error, 3 audit found a violation, 4 refused by a rule, 5 serve stopped because its event log failed, 6 export stopped at a damaged log entry (the good prefix was written)."
)]
struct Cli {
    /// Log filter (tracing's EnvFilter syntax), e.g. `info` or `wagate=debug`.
    #[arg(long, global = true, env = "WAGATE_LOG", default_value = "info")]
    log: String,

    /// Log as JSON lines instead of text.
    #[arg(long, global = true, env = "WAGATE_LOG_JSON")]
    log_json: bool,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the hub: webhooks, command API, and (by default) the dispatcher.
    Serve(serve::ServeArgs),
    /// Run the dispatcher as its own process against a running hub.
    Dispatch(dispatch::DispatchArgs),
    /// Walk through a complete scenario on a temporary hub with the sandbox provider.
    Demo(demo::DemoArgs),
    /// Ask a running hub to send a message.
    Send(ops::SendArgs),
    /// Record an explicit opt-in.
    OptIn(ops::OptInArgs),
    /// Record an opt-out.
    OptOut(ops::OptOutArgs),
    /// Show a contact: consent, window, flags, recent messages.
    Contact(ops::ContactArgs),
    /// Show a message: status and history.
    Message(ops::MessageArgs),
    /// Say why a message was allowed or refused, citing the log positions of what the decision
    /// relied on.
    Explain(ops::ExplainArgs),
    /// Register templates, set their approval status, list them.
    #[command(subcommand)]
    Templates(ops::TemplatesCommand),
    /// Register, authorize, suspend and list senders.
    #[command(subcommand)]
    Senders(ops::SendersCommand),
    /// Replay the log and check every invariant independently of the command handlers.
    Audit(audit::AuditArgs),
    /// Write the log as JSON Lines (the auditors' format).
    Export(export::ExportArgs),
    /// GET a URL (the hub's /readyz by default): exit 0 on 200, else 1 with the reason (for
    /// container health checks and readiness waits).
    Healthcheck(healthcheck::HealthcheckArgs),
    /// Rebuild a new database directory from an export file (a restore).
    Import(import::ImportArgs),
    /// Webhooks the hub rejected: verify them again and ingest the genuine ones.
    #[command(subcommand)]
    Webhooks(rejected::WebhooksCommand),
    /// The review queue: what needs a person; `review resolve ID` resolves an item.
    Review(review::ReviewArgs),
    /// What delivered messages cost, by campaign, workflow, template, sender or month.
    Costs(costs::CostsArgs),
    /// The HubSpot timeline: `crm backfill --from POSITION` mirrors the log from a position.
    #[command(subcommand)]
    Crm(crm::CrmArgs),
    /// Consent capture: wordings, campaigns, QR codes, a contact's receipts.
    #[command(subcommand)]
    Consent(consent::ConsentCommand),
    /// Outgoing event webhooks: register, list and delete endpoints (docs/webhooks.md).
    #[command(subcommand)]
    Endpoints(endpoints::EndpointsCommand),
    /// Campaigns: one template to a list, previewed, paced, paused, cancelled
    /// (docs/campaigns.md).
    #[command(subcommand)]
    Campaign(campaign::CampaignCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(&cli.log, cli.log_json);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Serve(args) => serve::run(args).await,
            Command::Dispatch(args) => dispatch::run(args).await,
            Command::Demo(args) => demo::run(args).await,
            Command::Send(args) => ops::send(args).await,
            Command::OptIn(args) => ops::opt_in(args).await,
            Command::OptOut(args) => ops::opt_out(args).await,
            Command::Contact(args) => ops::contact(args).await,
            Command::Message(args) => ops::message(args).await,
            Command::Explain(args) => ops::explain(args).await,
            Command::Templates(command) => ops::templates(command).await,
            Command::Senders(command) => ops::senders(command).await,
            Command::Audit(args) => audit::run(args).await,
            Command::Export(args) => export::run(args).await,
            Command::Healthcheck(args) => healthcheck::run(args).await,
            Command::Import(args) => import::run(args).await,
            Command::Webhooks(command) => rejected::run(command).await,
            Command::Review(args) => review::run(args).await,
            Command::Costs(args) => costs::run(args).await,
            Command::Crm(args) => crm::backfill(args).await,
            Command::Consent(command) => consent::run(command).await,
            Command::Endpoints(command) => endpoints::run(command).await,
            Command::Campaign(command) => campaign::run(command).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing(filter: &str, json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colours only for a person at a terminal, never in files or CI logs.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}
