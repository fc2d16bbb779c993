//! Operator commands that act on a running hub through its HTTP API (`--hub`, `WAGATE_HUB`;
//! token from `--token` / `WAGATE_API_TOKEN`). Human-readable output by default, `--json` for
//! machines (the hub's own JSON answer, unchanged).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::process::ExitCode;

use anyhow::{bail, Context as _};
use serde::de::DeserializeOwned;
use serde_json::Value;
use wagate_api as api;

use crate::client::{Answer, HubArgs, HubClient, Refused};
use crate::EXIT_REFUSED;

/// What every hub command takes.
#[derive(Debug, Clone, clap::Args)]
pub struct Common {
    #[command(flatten)]
    pub hub: HubArgs,

    /// Print the hub's JSON answer instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  wagate send --to +41790000001 --workflow appointment_scheduling \\\n      --template HX0123456789abcdef0123456789abcdef --var 1=Lea --var '2=Thu 10:00'\n  wagate send --to +41790000001 --workflow lead_qualification --text 'Yes, it is still available.'\n\nExit codes: 0 queued (or allowed, with --dry-run), 4 refused by a rule (the rule and its sentence are printed), 1 error."
)]
pub struct SendArgs {
    /// The recipient, E.164 (`+41790000001`).
    #[arg(long, value_name = "E164")]
    to: String,

    /// The sender, `whatsapp:+E164`; optional when the hub has exactly one sender.
    #[arg(long, value_name = "ADDRESS")]
    from: Option<String>,

    /// The task-specific workflow (lead_qualification, appointment_scheduling, status_update, …).
    #[arg(long, value_name = "NAME")]
    workflow: Option<String>,

    /// A business-initiated template message: the Content SID (`HX…`) or Meta template name.
    #[arg(
        long,
        value_name = "CONTENT_SID",
        conflicts_with = "text",
        required_unless_present = "text"
    )]
    template: Option<String>,

    /// A template variable, `KEY=VALUE` (repeat for each placeholder: --var 1=Lea --var 2=…).
    #[arg(long = "var", value_name = "KEY=VALUE", requires = "template", value_parser = parse_var)]
    vars: Vec<(String, String)>,

    /// Freeform text: only allowed inside the contact's 24 h window.
    #[arg(long, value_name = "TEXT")]
    text: Option<String>,

    /// Makes retries safe: the same key within 24 h returns the first answer, sends nothing new.
    #[arg(long, value_name = "KEY")]
    idempotency_key: Option<String>,

    /// Check every rule and answer, but record and send nothing.
    #[arg(long)]
    dry_run: bool,

    #[command(flatten)]
    common: Common,
}

fn parse_var(raw: &str) -> Result<(String, String), String> {
    match raw.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() => {
            Ok((key.trim().to_owned(), value.to_owned()))
        }
        _ => Err(format!("{raw:?} is not KEY=VALUE (e.g. 1=Lea)")),
    }
}

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Example:\n  wagate opt-in +41790000001 --source web_form \\\n      --evidence https://example.com/forms/123 --recorded-by ops@example.com --wording-version v2"
)]
pub struct OptInArgs {
    /// The contact, E.164.
    #[arg(value_name = "E164")]
    contact: String,

    /// Where the consent was collected: web_form, qr_code, click_to_whatsapp_ad, operator or
    /// api (`keyword` consent comes only from the contact's own START, never from here).
    #[arg(long, value_name = "SOURCE")]
    source: String,

    /// The proof: free text or a URL (the form submission, the ad click, …).
    #[arg(long, value_name = "TEXT")]
    evidence: String,

    /// Who records it (an operator's name or address).
    #[arg(long, value_name = "WHO")]
    recorded_by: String,

    /// The version of the published consent wording the contact agreed to (required;
    /// `POST /v1/consent/wordings` answers it).
    #[arg(long, value_name = "VERSION")]
    wording_version: String,

    /// When the evidence is dated, RFC 3339 (default: now). Required after the contact opted
    /// out, and then it must be after the opt-out.
    #[arg(long, value_name = "RFC3339")]
    evidence_at: Option<String>,

    #[command(flatten)]
    common: Common,
}

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Example:\n  wagate opt-out +41790000001 --detail 'asked by phone to stop messages'"
)]
pub struct OptOutArgs {
    /// The contact, E.164.
    #[arg(value_name = "E164")]
    contact: String,

    /// How the opt-out reached you: operator (default), api, keyword or provider_report.
    #[arg(long, value_name = "SOURCE", default_value = "operator")]
    source: String,

    /// Why, in a few words.
    #[arg(long, value_name = "TEXT")]
    detail: Option<String>,

    #[command(flatten)]
    common: Common,
}

#[derive(Debug, clap::Args)]
pub struct ContactArgs {
    /// The contact, E.164.
    #[arg(value_name = "E164")]
    contact: String,

    #[command(flatten)]
    common: Common,
}

#[derive(Debug, clap::Args)]
pub struct MessageArgs {
    /// The message id (a UUID, as `send` printed it).
    #[arg(value_name = "ID")]
    message_id: String,

    #[command(flatten)]
    common: Common,
}

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Example:\n  wagate explain 01934b8e-1c2d-7e3f-8a4b-5c6d7e8f9a0b\n\n\
    Each line cites the log position of an event (see `wagate export` or GET /v1/events)."
)]
pub struct ExplainArgs {
    /// The message id (a UUID, as `send` printed it, or a `SendRefused` event's `message_id`).
    #[arg(value_name = "MESSAGE_ID")]
    message_id: String,

    #[command(flatten)]
    common: Common,
}

#[derive(Debug, clap::Subcommand)]
pub enum TemplatesCommand {
    /// Register a template (it starts pending until its status is set to approved).
    #[command(
        after_help = "Example:\n  wagate templates register HX0123456789abcdef0123456789abcdef --name viewing_reminder \\\n      --language en --category utility --placeholder 1 --placeholder 2"
    )]
    Register {
        /// The template id: a Twilio Content SID (`HX` + 32 hex) or a Meta template name.
        #[arg(value_name = "CONTENT_SID")]
        content_sid: String,
        /// The template's name at Meta.
        #[arg(long)]
        name: String,
        /// Language code, e.g. en or de_CH.
        #[arg(long)]
        language: String,
        /// marketing, utility or authentication.
        #[arg(long)]
        category: String,
        /// A placeholder key (repeat: --placeholder 1 --placeholder 2).
        #[arg(long = "placeholder", value_name = "KEY")]
        placeholders: Vec<String>,
        #[command(flatten)]
        common: Common,
    },
    /// Set a template's approval status (as Meta/Twilio reported it).
    #[command(
        after_help = "Example:\n  wagate templates status HX0123456789abcdef0123456789abcdef approved"
    )]
    Status {
        #[arg(value_name = "CONTENT_SID")]
        content_sid: String,
        /// unsubmitted, pending, approved, rejected, paused or disabled.
        #[arg(value_name = "STATUS")]
        status: String,
        /// Why (e.g. Meta's rejection reason).
        #[arg(long)]
        reason: Option<String>,
        #[command(flatten)]
        common: Common,
    },
    /// Create a template in wagate and submit it to the provider for WhatsApp's approval.
    #[command(
        after_help = "Example:\n  wagate templates create --provider meta --name listing_update --language de \\\n      --category marketing --body 'Hallo {{1}}, neues Objekt in {{2}}.' \\\n      --header image:https://cdn.example.com/p/1.jpg --header-file listing.jpg \\\n      --button url:Details:https://example.com/p/1 --example 1=Ana --example 2=Mitte"
    )]
    Create(CreateTemplateArgs),
    /// Read every template's status from the providers now; import the ones wagate does not know.
    Sync {
        #[command(flatten)]
        common: Common,
    },
    /// List the registered templates and their status.
    List {
        #[command(flatten)]
        common: Common,
    },
}

#[derive(Debug, clap::Args)]
pub struct CreateTemplateArgs {
    /// twilio or meta.
    #[arg(long)]
    provider: String,
    /// The template's name (lower-case letters, digits, _).
    #[arg(long)]
    name: String,
    /// Language code, e.g. en or de_CH.
    #[arg(long)]
    language: String,
    /// marketing, utility or authentication.
    #[arg(long)]
    category: String,
    /// The body text with {{1}}, {{2}}… placeholders (not at the very start or end).
    #[arg(long)]
    body: String,
    /// A header, FORMAT:VALUE: text:Neu im Angebot, or image|video|document:https://…
    #[arg(long, value_name = "FORMAT:VALUE")]
    header: Option<String>,
    /// A button, TYPE:TEXT[:VALUE] (repeat): quick_reply:Ja, url:Details:https://…,
    /// phone_number:Anrufen:+4930123456.
    #[arg(long = "button", value_name = "TYPE:TEXT[:VALUE]")]
    buttons: Vec<String>,
    /// A JSON file with the carousel's cards: [{"header": {"format", "value"}, "body",
    /// "buttons": [{"type", "text", "value"}]}, …].
    #[arg(long, value_name = "FILE")]
    cards: Option<std::path::PathBuf>,
    /// A sample value for a placeholder, shown to the reviewers (repeat: --example 1=Ana).
    #[arg(long = "example", value_name = "KEY=VALUE", value_parser = parse_var)]
    examples: Vec<(String, String)>,
    /// Meta, media header: the sample file Meta's reviewers see (.jpg, .png, .mp4 or .pdf, at
    /// most 1.5 MB), instead of the file at the header's URL. The hub needs WAGATE_META_APP_ID.
    #[arg(long, value_name = "FILE")]
    header_file: Option<std::path::PathBuf>,
    #[command(flatten)]
    common: Common,
}

impl CreateTemplateArgs {
    fn request(&self) -> anyhow::Result<api::RegisterTemplateRequest> {
        let header = match &self.header {
            None => None,
            Some(raw) => {
                let (format, value) = raw.split_once(':').ok_or_else(|| {
                    anyhow::anyhow!("--header {raw:?}: expected FORMAT:VALUE, e.g. image:https://…")
                })?;
                Some(api::TemplateHeaderBody {
                    format: format.to_owned(),
                    value: value.to_owned(),
                })
            }
        };
        let buttons = self
            .buttons
            .iter()
            .map(|raw| {
                let mut parts = raw.splitn(3, ':');
                match (parts.next(), parts.next(), parts.next()) {
                    (Some(kind), Some(text), value) => Ok(api::TemplateButtonBody {
                        kind: kind.to_owned(),
                        text: text.to_owned(),
                        value: value.unwrap_or_default().to_owned(),
                    }),
                    _ => Err(anyhow::anyhow!(
                        "--button {raw:?}: expected TYPE:TEXT[:VALUE], e.g. quick_reply:Ja"
                    )),
                }
            })
            .collect::<anyhow::Result<_>>()?;
        let cards = match &self.cards {
            None => Vec::new(),
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| anyhow::anyhow!("--cards {}: {e}", path.display()))?;
                serde_json::from_str(&text)
                    .map_err(|e| anyhow::anyhow!("--cards {}: {e}", path.display()))?
            }
        };
        Ok(api::RegisterTemplateRequest {
            content_sid: None,
            provider: Some(self.provider.clone()),
            name: self.name.clone(),
            language: self.language.clone(),
            category: self.category.clone(),
            placeholders: Vec::new(),
            body: Some(self.body.clone()),
            header,
            buttons,
            cards,
            examples: self.examples.iter().cloned().collect(),
            header_sample: self
                .header_file
                .as_deref()
                .map(crate::template_sample::read)
                .transpose()?,
        })
    }
}

#[derive(Debug, clap::Subcommand)]
pub enum SendersCommand {
    /// Register a business number (it cannot send until an operator authorizes it).
    #[command(
        after_help = "Example:\n  wagate senders register whatsapp:+15550001111 --provider twilio"
    )]
    Register {
        /// The sender, `whatsapp:+E164`.
        #[arg(value_name = "ADDRESS")]
        address: String,
        /// twilio, meta or sandbox.
        #[arg(long)]
        provider: String,
        /// The Meta business portfolio whose messaging limit it shares (default: default).
        #[arg(long)]
        portfolio: Option<String>,
        /// The Cloud API phone-number id (required for --provider meta).
        #[arg(long, value_name = "ID")]
        meta_phone_number_id: Option<String>,
        /// Meta upgraded this Cloud API number (1,000 msg/s instead of 80).
        #[arg(long)]
        upgraded: bool,
        /// Hold it to this many messages per second instead of its provider's and tier's rate.
        #[arg(long, value_name = "N")]
        rate_per_second: Option<u32>,
        #[command(flatten)]
        common: Common,
    },
    /// Authorize a registered sender (also lifts a suspension).
    Authorize {
        #[arg(value_name = "ADDRESS")]
        address: String,
        /// Who authorizes it (default: api).
        #[arg(long, value_name = "WHO")]
        by: Option<String>,
        #[command(flatten)]
        common: Common,
    },
    /// Suspend a sender: every send and claim from it is refused until it is authorized again.
    Suspend {
        #[arg(value_name = "ADDRESS")]
        address: String,
        /// Why.
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        common: Common,
    },
    /// List the senders and whether each may send.
    List {
        #[command(flatten)]
        common: Common,
    },
}

// ---------------------------------------------------------------------------------------------

pub(crate) fn client(common: &Common) -> anyhow::Result<HubClient> {
    HubClient::from_args(&common.hub)
}

pub(crate) fn typed<T: DeserializeOwned>(body: Value, what: &str) -> anyhow::Result<T> {
    serde_json::from_value(body)
        .with_context(|| format!("the hub's answer to {what} is not what this wagate expects"))
}

fn print_json(value: &Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
    );
}

/// Prints a refusal (stderr for people, the body on stdout with --json) and gives exit 4.
fn refused(refusal: &Refused, json: bool) -> ExitCode {
    if json {
        print_json(&refusal.body);
    } else {
        eprintln!("refused by rule {}: {}", refusal.rule, refusal.message);
        if !refusal.also_broken.is_empty() {
            eprintln!("also broken: {}", refusal.also_broken.join(", "));
        }
    }
    ExitCode::from(EXIT_REFUSED)
}

/// The body of a 2xx answer; a 422 where none is expected is an error.
pub(crate) fn expect_ok(answer: Answer, what: &str) -> anyhow::Result<Value> {
    match answer {
        Answer::Ok(body) => Ok(body),
        Answer::Refused(refusal) => bail!(
            "{what} was refused by rule {}: {}",
            refusal.rule,
            refusal.message
        ),
    }
}

/// Prints `text` or, with --json, the body.
pub(crate) fn output(
    common: &Common,
    body: &Value,
    text: impl FnOnce() -> anyhow::Result<String>,
) -> anyhow::Result<ExitCode> {
    if common.json {
        print_json(body);
    } else {
        print!("{}", text()?);
    }
    Ok(ExitCode::SUCCESS)
}

/// POSTs `request` to the route `segments` and prints the answer's view with `render`
/// (or, with --json, the body).
pub(crate) async fn post_and_show<R: serde::Serialize, V: DeserializeOwned>(
    common: &Common,
    segments: &[&str],
    request: &R,
    render: impl FnOnce(&V) -> String,
) -> anyhow::Result<ExitCode> {
    let what = format!("POST /{}", segments.join("/"));
    let answer = client(common)?
        .post(segments, &[], &[], request, &what)
        .await?;
    let body = expect_ok(answer, &what)?;
    output(common, &body, || Ok(render(&typed(body.clone(), &what)?)))
}

/// GETs the list at the route `segments` and prints one `line` per item (`empty` when there is
/// none; with --json, the body).
async fn list<V: DeserializeOwned>(
    common: &Common,
    segments: &[&str],
    empty: &str,
    line: fn(&V) -> String,
) -> anyhow::Result<ExitCode> {
    let what = format!("GET /{}", segments.join("/"));
    let body = expect_ok(client(common)?.get(segments, &what).await?, &what)?;
    output(common, &body, || {
        let views: Vec<V> = typed(body.clone(), &what)?;
        if views.is_empty() {
            return Ok(format!("{empty}\n"));
        }
        Ok(views
            .iter()
            .map(|view| format!("{}\n", line(view)))
            .collect())
    })
}

fn positions(recorded: &api::Recorded) -> String {
    match recorded.positions.as_slice() {
        [] => "nothing changed (already so)".to_owned(),
        [one] => format!("recorded at position {one}"),
        many => format!(
            "recorded at positions {}",
            many.iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

// ---------------------------------------------------------------------------------------------

pub async fn send(args: SendArgs) -> anyhow::Result<ExitCode> {
    let client = client(&args.common)?;
    let request = api::SendMessageRequest {
        to: args.to.clone(),
        from: args.from.clone(),
        workflow: args.workflow.clone(),
        template: args.template.clone().map(|id| api::TemplateContentRequest {
            id: Some(id),
            content_sid: None,
            media: Vec::new(),
            variables: args.vars.iter().cloned().collect::<BTreeMap<_, _>>(),
        }),
        text: args.text.clone(),
        media: None,
        interactive: None,
    };
    let mut query = Vec::new();
    if args.dry_run {
        query.push(("dry_run", "true".to_owned()));
    }
    let mut headers = Vec::new();
    if let Some(key) = &args.idempotency_key {
        headers.push(("Idempotency-Key", key.clone()));
    }
    let what = "POST /v1/messages";
    let answer = client
        .post(&["v1", "messages"], &query, &headers, &request, what)
        .await?;
    let body = match answer {
        Answer::Refused(refusal) => return Ok(refused(&refusal, args.common.json)),
        Answer::Ok(body) => body,
    };
    output(&args.common, &body, || {
        let sent: api::SendMessageResponse = typed(body.clone(), what)?;
        let content = match (&args.template, &args.text) {
            (Some(template), _) => format!("template {template}"),
            _ => "freeform text".to_owned(),
        };
        Ok(if sent.dry_run {
            format!(
                "dry run: {content} to {} would be allowed now (nothing recorded, nothing sent)\n",
                args.to
            )
        } else {
            format!(
                "queued: message {} ({content} to {})\nfollow it with: wagate message {}\n",
                sent.message_id, args.to, sent.message_id
            )
        })
    })
}

pub async fn opt_in(args: OptInArgs) -> anyhow::Result<ExitCode> {
    let request = api::OptInRequest {
        source: args.source.clone(),
        evidence: args.evidence.clone(),
        recorded_by: args.recorded_by.clone(),
        wording_version: Some(args.wording_version.clone()),
        evidence_at: args.evidence_at.clone(),
    };
    let segments = ["v1", "contacts", &args.contact, "opt-in"];
    post_and_show(
        &args.common,
        &segments,
        &request,
        |recorded: &api::Recorded| {
            format!(
                "opt-in of {} ({}) {}\n",
                args.contact,
                args.source,
                positions(recorded)
            )
        },
    )
    .await
}

pub async fn opt_out(args: OptOutArgs) -> anyhow::Result<ExitCode> {
    let request = api::OptOutRequest {
        source: Some(args.source.clone()),
        detail: args.detail.clone(),
    };
    let segments = ["v1", "contacts", &args.contact, "opt-out"];
    post_and_show(
        &args.common,
        &segments,
        &request,
        |recorded: &api::Recorded| {
            format!(
                "opt-out of {} ({}) {}\n",
                args.contact,
                args.source,
                positions(recorded)
            )
        },
    )
    .await
}

pub async fn contact(args: ContactArgs) -> anyhow::Result<ExitCode> {
    let client = client(&args.common)?;
    let what = &format!("GET /v1/contacts/{}", args.contact);
    let answer = client.get(&["v1", "contacts", &args.contact], what).await?;
    let body = expect_ok(answer, what)?;
    output(&args.common, &body, || {
        let contact: api::ContactResponse = typed(body.clone(), what)?;
        Ok(render_contact(&contact))
    })
}

fn or_none(value: Option<&str>) -> &str {
    value.unwrap_or("-")
}

fn render_contact(contact: &api::ContactResponse) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = writeln!(out, "contact {}", contact.contact);
    if contact.version == 0 {
        let _ = writeln!(out, "  nothing recorded for this contact yet");
    }
    let consent = &contact.consent;
    let _ = writeln!(out, "  consent          {}", consent.state);
    if let Some(receipt) = &consent.receipt {
        let label = if consent.state == "opted_in" {
            "opt-in"
        } else {
            "withdrawn opt-in"
        };
        let _ = writeln!(
            out,
            "  {label:<16} {} at {}, by {}, wording {}, evidence: {}",
            receipt.source,
            receipt.at,
            receipt.recorded_by,
            receipt.wording_version,
            receipt.evidence
        );
    }
    if let Some(opt_out) = &consent.opt_out {
        let detail = if opt_out.detail.is_empty() {
            String::new()
        } else {
            format!(" ({})", opt_out.detail)
        };
        let _ = writeln!(
            out,
            "  opt-out          {} at {}{detail}",
            opt_out.source, opt_out.at
        );
    }
    let _ = writeln!(
        out,
        "  last inbound     {}",
        or_none(contact.last_inbound_at.as_deref())
    );
    let _ = writeln!(
        out,
        "  window           {}",
        contact.window_open_until.as_deref().map_or_else(
            || "closed (templates only)".to_owned(),
            |until| format!("open until {until} (any sender)")
        )
    );
    // The window that gates a freeform send is the sending number's own.
    for window in &contact.windows {
        let _ = writeln!(
            out,
            "    from {:<22} {}",
            window.sender,
            window.open_until.as_deref().map_or_else(
                || "closed by the provider (templates only)".to_owned(),
                |until| format!("open until {until}")
            )
        );
    }
    let mut flags = Vec::new();
    if let Some(since) = &contact.flags.not_on_whatsapp {
        flags.push(format!("not_on_whatsapp since {since}"));
    }
    if let Some(since) = &contact.flags.marketing_paused {
        flags.push(format!("marketing_paused since {since}"));
    }
    let _ = writeln!(
        out,
        "  flags            {}",
        if flags.is_empty() {
            "none".to_owned()
        } else {
            flags.join(", ")
        }
    );
    if contact.reviews_requested > 0 {
        let _ = writeln!(
            out,
            "  opt-out reviews  {} free-text message(s) mention opting out: a person should decide",
            contact.reviews_requested
        );
    }
    if !contact.linked_identities.is_empty() {
        let linked: Vec<String> = contact
            .linked_identities
            .iter()
            .map(|linked| format!("{} ({})", linked.contact, linked.consent.state))
            .collect();
        let _ = writeln!(out, "  linked           {}", linked.join(", "));
        let _ = writeln!(
            out,
            "  sends judged as  {} (the most restrictive consent among them)",
            contact.effective_consent
        );
    }
    if contact.recent_messages.is_empty() {
        let _ = writeln!(out, "  recent messages  none");
    } else {
        let _ = writeln!(out, "  recent messages (newest first)");
        for message in &contact.recent_messages {
            let refused = message
                .refused
                .as_deref()
                .map(|rule| format!(" (refused: {rule})"))
                .unwrap_or_default();
            let status = if message.refused.is_some() {
                "refused"
            } else {
                message.status.as_str()
            };
            let _ = writeln!(out, "    {}  {status}{refused}", message.message_id);
        }
    }
    out
}

pub async fn message(args: MessageArgs) -> anyhow::Result<ExitCode> {
    let client = client(&args.common)?;
    let what = &format!("GET /v1/messages/{}", args.message_id);
    let answer = client
        .get(&["v1", "messages", &args.message_id], what)
        .await?;
    let body = expect_ok(answer, what)?;
    output(&args.common, &body, || {
        let message: api::MessageResponse = typed(body.clone(), what)?;
        Ok(render_message(&message))
    })
}

pub async fn explain(args: ExplainArgs) -> anyhow::Result<ExitCode> {
    let client = client(&args.common)?;
    let what = &format!("GET /v1/messages/{}/explain", args.message_id);
    let answer = client
        .get(&["v1", "messages", &args.message_id, "explain"], what)
        .await?;
    let body = expect_ok(answer, what)?;
    output(&args.common, &body, || {
        let explanation: api::ExplainResponse = typed(body.clone(), what)?;
        Ok(render_explanation(&explanation))
    })
}

/// The explanation in plain words: the verdict, then one line per fact with its log position.
fn render_explanation(explanation: &api::ExplainResponse) -> String {
    let mut out = String::new();
    let verdict = match (&explanation.decision, &explanation.rule) {
        (api::ExplainDecision::Allowed, _) => "was allowed".to_owned(),
        (api::ExplainDecision::Refused, Some(rule)) => format!("was refused by rule {rule}"),
        (api::ExplainDecision::Refused, None) => "was refused".to_owned(),
    };
    let _ = writeln!(
        out,
        "Message {} {verdict}, because:",
        explanation.message_id
    );
    let width = explanation
        .facts
        .iter()
        .map(|fact| fact.position.to_string().len())
        .max()
        .unwrap_or(1);
    for fact in &explanation.facts {
        let _ = writeln!(
            out,
            "  [log position {:>width$}] {}",
            fact.position, fact.text
        );
    }
    out
}

fn phase(phase: &api::Phase) -> String {
    match phase {
        api::Phase::NotAllowed => "not allowed (refused)".into(),
        api::Phase::Pending {
            next_attempt,
            not_before: None,
        } => format!("waiting for dispatch (attempt {next_attempt})"),
        api::Phase::Pending {
            next_attempt,
            not_before: Some(at),
        } => format!("waiting for retry (attempt {next_attempt} not before {at})"),
        api::Phase::Claimed { attempt, since } => {
            format!("claimed (attempt {attempt} since {since}, no outcome yet)")
        }
        api::Phase::Done => "done".into(),
    }
}

fn render_message(message: &api::MessageResponse) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "message {}", message.message_id);
    if let Some(refused) = &message.refused {
        let _ = writeln!(
            out,
            "  refused          {}: {}",
            refused.rule, refused.message
        );
    }
    let _ = writeln!(out, "  status           {}", message.status);
    if let Some(rule) = &message.canceled_by {
        let _ = writeln!(out, "  canceled by      {rule} (at dispatch time)");
    }
    if let Some(intent) = &message.intent {
        let content = match &intent.content {
            api::ContentView::Template {
                template,
                category,
                variables,
                media,
            } => {
                let mut vars: Vec<String> =
                    variables.iter().map(|(k, v)| format!("{k}={v}")).collect();
                vars.extend(media.iter().map(|m| match m.card {
                    None => format!("header {} {}", m.kind, m.url),
                    Some(card) => format!("card {card} {} {}", m.kind, m.url),
                }));
                format!("template {template} ({category}) {}", vars.join(" "))
            }
            api::ContentView::Text { text } => format!("text {text:?}"),
            api::ContentView::Media { kind, url, caption } => {
                format!("{kind} {url} caption {caption:?}")
            }
            api::ContentView::Buttons { body, buttons } => {
                let titles: Vec<String> = buttons
                    .iter()
                    .map(|b| format!("[{}={}]", b.id, b.title))
                    .collect();
                format!("buttons {body:?} {}", titles.join(" "))
            }
        };
        let _ = writeln!(out, "  to               {}", intent.to);
        let _ = writeln!(out, "  from             {}", intent.from);
        let _ = writeln!(out, "  workflow         {}", intent.workflow);
        let _ = writeln!(out, "  content          {}", content.trim_end());
        let _ = writeln!(out, "  decided at       {}", intent.decided_at);
    }
    let _ = writeln!(out, "  dispatch         {}", phase(&message.phase));
    let _ = writeln!(out, "  attempts         {}", message.attempts);
    if let Some(reference) = &message.provider_ref {
        let _ = writeln!(out, "  provider id      {reference}");
    }
    if let Some(error) = &message.last_error {
        let code = error.code.map(|c| format!(" {c}")).unwrap_or_default();
        let _ = writeln!(
            out,
            "  last error       {}{code}: {}",
            error.provider, error.message
        );
    }
    if !message.statuses.is_empty() {
        let _ = writeln!(out, "  provider statuses");
        for status in &message.statuses {
            let code = status
                .error_code
                .map(|c| format!(" (error {c})"))
                .unwrap_or_default();
            let note = if status.applied {
                ""
            } else {
                "  (recorded, changed nothing)"
            };
            let _ = writeln!(out, "    {}  {}{code}{note}", status.at, status.status);
        }
    }
    if !message.history.is_empty() {
        let _ = writeln!(out, "  history");
        for event in &message.history {
            let position = event.get("position").and_then(Value::as_u64).unwrap_or(0);
            let kind = event.get("type").and_then(Value::as_str).unwrap_or("?");
            let at = event
                .pointer("/payload/at")
                .and_then(Value::as_str)
                .or_else(|| event.get("timestamp").and_then(Value::as_str))
                .unwrap_or("");
            let _ = writeln!(out, "    #{position:<8} {at}  {kind}");
        }
    }
    out
}

pub async fn templates(command: TemplatesCommand) -> anyhow::Result<ExitCode> {
    match command {
        TemplatesCommand::Register {
            content_sid,
            name,
            language,
            category,
            placeholders,
            common,
        } => {
            let request = api::RegisterTemplateRequest {
                content_sid: Some(content_sid),
                name,
                language,
                category,
                placeholders,
                ..Default::default()
            };
            post_and_show(&common, &["v1", "templates"], &request, |view| {
                format!("registered {}\n", template_line(view))
            })
            .await
        }
        TemplatesCommand::Status {
            content_sid,
            status,
            reason,
            common,
        } => {
            let request = api::TemplateStatusRequest { status, reason };
            let segments = ["v1", "templates", &content_sid, "status"];
            post_and_show(&common, &segments, &request, |view| {
                format!("{}\n", template_line(view))
            })
            .await
        }
        TemplatesCommand::Create(args) => {
            let request = args.request()?;
            post_and_show(&args.common, &["v1", "templates"], &request, |view| {
                format!("created {}\n", template_line(view))
            })
            .await
        }
        TemplatesCommand::Sync { common } => {
            post_and_show(
                &common,
                &["v1", "templates", "sync"],
                &serde_json::json!({}),
                |summary: &api::TemplateSyncResponse| {
                    format!(
                        "listed {}, imported {}, status changes recorded {}\n",
                        summary.listed, summary.imported, summary.changed
                    )
                },
            )
            .await
        }
        TemplatesCommand::List { common } => {
            list(
                &common,
                &["v1", "templates"],
                "no templates registered",
                template_line,
            )
            .await
        }
    }
}

fn template_line(view: &api::TemplateView) -> String {
    format!(
        "{}  {} ({})  name={} language={} category={} placeholders=[{}]",
        view.id,
        or_none(view.status.as_deref()),
        or_none(view.source.as_deref()),
        or_none(view.name.as_deref()),
        or_none(view.language.as_deref()),
        or_none(view.category.as_deref()),
        view.placeholders.join(", ")
    )
}

pub async fn senders(command: SendersCommand) -> anyhow::Result<ExitCode> {
    match command {
        SendersCommand::Register {
            address,
            provider,
            portfolio,
            meta_phone_number_id,
            upgraded,
            rate_per_second,
            common,
        } => {
            let request = api::RegisterSenderRequest {
                address,
                provider,
                portfolio,
                meta_phone_number_id,
                upgraded: upgraded.then_some(true),
                rate_per_second,
            };
            post_and_show(
                &common,
                &["v1", "senders"],
                &request,
                |view: &api::SenderView| {
                    format!(
                    "registered {}\nit cannot send until authorized: wagate senders authorize {}\n",
                    sender_line(view),
                    view.address
                )
                },
            )
            .await
        }
        SendersCommand::Authorize {
            address,
            by,
            common,
        } => {
            let request = api::AuthorizeSenderRequest { by };
            let segments = ["v1", "senders", &address, "authorize"];
            post_and_show(&common, &segments, &request, |view| {
                format!("{}\n", sender_line(view))
            })
            .await
        }
        SendersCommand::Suspend {
            address,
            reason,
            common,
        } => {
            let request = api::SuspendSenderRequest { reason };
            let segments = ["v1", "senders", &address, "suspend"];
            post_and_show(&common, &segments, &request, |view| {
                format!("{}\n", sender_line(view))
            })
            .await
        }
        SendersCommand::List { common } => {
            list(
                &common,
                &["v1", "senders"],
                "no senders registered",
                sender_line,
            )
            .await
        }
    }
}

fn sender_line(view: &api::SenderView) -> String {
    let state = if view.may_send {
        format!(
            "may send (authorized by {})",
            or_none(view.authorized_by.as_deref())
        )
    } else if let Some(reason) = &view.suspended {
        format!("SUSPENDED: {reason}")
    } else if view.authorized_by.is_none() {
        "not authorized".to_owned()
    } else {
        "may not send".to_owned()
    };
    format!(
        "{}  {}  provider={} portfolio={}{}{}",
        view.address,
        state,
        or_none(view.provider.as_deref()),
        or_none(view.portfolio.as_deref()),
        view.meta_phone_number_id
            .as_deref()
            .map(|id| format!(" meta_phone_number_id={id}"))
            .unwrap_or_default(),
        view.rate_per_second
            .map(|rate| format!(
                " rate={rate}/s{}",
                if view.upgraded { " (upgraded)" } else { "" }
            ))
            .unwrap_or_default()
    )
}
