//! `wagate consent …`: consent wordings, campaigns, their QR codes and a contact's receipts,
//! through a running hub's API (docs/compliance.md, "Consent capture").

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use wagate_api as api;

use crate::ops::{client, expect_ok, output, post_and_show, typed, Common};

#[derive(Debug, clap::Subcommand)]
pub enum ConsentCommand {
    /// Publish a consent wording (immutable; the same text again is the same version).
    Wording(WordingArgs),
    /// Create a consent campaign (hosted page, click-to-chat link, QR codes), or
    /// `campaign close ID` to close one.
    Campaign(CampaignArgs),
    /// Write a campaign's QR code (SVG, or PNG when FILE ends in .png).
    Qr(QrArgs),
    /// Show a contact's consent receipts: what they agreed to, when, how, withdrawal.
    Show(ShowArgs),
}

#[derive(Debug, clap::Args)]
pub struct WordingArgs {
    /// The business the person agrees to hear from.
    #[arg(long)]
    business: String,
    /// Language tag (en, de, pt_BR).
    #[arg(long)]
    language: String,
    /// The exact consent text.
    #[arg(long)]
    text: String,
    #[command(flatten)]
    common: Common,
}

/// Without a subcommand the flags create a campaign; `close ID` closes one (the flags are
/// then neither needed nor allowed).
#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct CampaignArgs {
    #[command(subcommand)]
    action: Option<CampaignAction>,
    /// The business number people confirm to (`whatsapp:+E164`).
    #[arg(long, required = true)]
    sender: Option<String>,
    /// A published wording's version.
    #[arg(long, required = true)]
    wording_version: Option<String>,
    /// A workflow the consent covers (repeat for more).
    #[arg(long = "workflow", required = true)]
    workflows: Vec<String>,
    /// web_form, qr_code or direct_mail.
    #[arg(long, required = true)]
    medium: Option<String>,
    /// An approved utility template (id or content SID) the hub sends after each form
    /// submission, asking the person to confirm.
    #[arg(long)]
    confirmation_template: Option<String>,
    #[command(flatten)]
    common: Common,
}

#[derive(Debug, clap::Subcommand)]
pub enum CampaignAction {
    /// Close a campaign: its page and its code record nothing from then on.
    Close(CloseArgs),
}

#[derive(Debug, clap::Args)]
pub struct CloseArgs {
    /// The campaign code (`WG-…`).
    campaign: String,
    #[command(flatten)]
    common: Common,
}

#[derive(Debug, clap::Args)]
pub struct QrArgs {
    /// The campaign code (`WG-…`).
    campaign: String,
    /// Where to write it.
    #[arg(long, value_name = "FILE")]
    output: PathBuf,
    #[command(flatten)]
    common: Common,
}

#[derive(Debug, clap::Args)]
pub struct ShowArgs {
    /// The contact, E.164.
    contact: String,
    #[command(flatten)]
    common: Common,
}

pub async fn run(command: ConsentCommand) -> anyhow::Result<ExitCode> {
    match command {
        ConsentCommand::Wording(args) => {
            let request = api::PublishWordingRequest {
                business: args.business,
                language: args.language,
                text: args.text,
            };
            post_and_show(
                &args.common,
                &["v1", "consent", "wordings"],
                &request,
                |w: &api::ConsentWordingView| {
                    format!("wording {} ({}, {})\n", w.version, w.business, w.language)
                },
            )
            .await
        }
        ConsentCommand::Campaign(CampaignArgs {
            action: Some(CampaignAction::Close(args)),
            ..
        }) => {
            post_and_show(
                &args.common,
                &["v1", "consent", "campaigns", &args.campaign, "close"],
                &serde_json::json!({}),
                |c: &api::ConsentCampaignView| {
                    format!(
                        "campaign {} closed at {}\n",
                        c.id,
                        c.closed_at.as_deref().unwrap_or("?")
                    )
                },
            )
            .await
        }
        ConsentCommand::Campaign(args) => {
            // clap requires the three when there is no subcommand.
            let (Some(sender), Some(wording_version), Some(medium)) =
                (args.sender, args.wording_version, args.medium)
            else {
                anyhow::bail!("creating a campaign needs --sender, --wording-version and --medium");
            };
            let request = api::CreateCampaignRequest {
                sender,
                wording_version,
                workflows: args.workflows,
                medium,
                confirmation_template: args.confirmation_template,
            };
            post_and_show(
                &args.common,
                &["v1", "consent", "campaigns"],
                &request,
                |c: &api::ConsentCampaignView| {
                    format!(
                        "campaign {}\n  page      {}\n  wa.me     {}\n  qr        {}\n",
                        c.id, c.page_url, c.wa_me_link, c.qr_svg_url
                    )
                },
            )
            .await
        }
        ConsentCommand::Qr(args) => qr(args).await,
        ConsentCommand::Show(args) => show(args).await,
    }
}

async fn qr(args: QrArgs) -> anyhow::Result<ExitCode> {
    let file = if args
        .output
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("png"))
    {
        "qr.png"
    } else {
        "qr.svg"
    };
    let segments = ["v1", "consent", "campaigns", &args.campaign, file];
    let what = format!("GET /{}", segments.join("/"));
    let response = client(&args.common)?
        .get_stream(&segments, &[], &what)
        .await?;
    let bytes = response
        .bytes()
        .await
        .with_context(|| format!("reading the answer to {what}"))?;
    std::fs::write(&args.output, &bytes)
        .with_context(|| format!("writing {}", args.output.display()))?;
    println!("wrote {} ({} bytes)", args.output.display(), bytes.len());
    Ok(ExitCode::SUCCESS)
}

async fn show(args: ShowArgs) -> anyhow::Result<ExitCode> {
    let segments = ["v1", "contacts", &args.contact, "consent"];
    let what = format!("GET /{}", segments.join("/"));
    let body = expect_ok(client(&args.common)?.get(&segments, &what).await?, &what)?;
    output(&args.common, &body, || {
        let receipts: api::ConsentReceiptsResponse = typed(body.clone(), &what)?;
        Ok(render(&receipts))
    })
}

/// The receipts as a document a person can be sent.
fn render(receipts: &api::ConsentReceiptsResponse) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = writeln!(out, "Consent record of {}", receipts.contact);
    if receipts.receipts.is_empty() {
        let _ = writeln!(out, "\nNo consent on record.");
    }
    for (n, r) in receipts.receipts.iter().enumerate() {
        let _ = writeln!(out, "\n{}. {} ({})", n + 1, r.state, r.source);
        if let Some(campaign) = &r.campaign {
            let _ = writeln!(out, "   campaign:   {campaign}");
        }
        let _ = writeln!(out, "   wording:    {}", r.wording_version);
        if let Some(text) = &r.wording_text {
            let _ = writeln!(out, "   you agreed: \"{text}\"");
        }
        if let Some(at) = &r.requested_at {
            let _ = writeln!(out, "   requested:  {at}");
        }
        let _ = writeln!(
            out,
            "   confirmed:  {}",
            r.confirmed_at.as_deref().unwrap_or("not yet")
        );
        let _ = writeln!(
            out,
            "   withdrawn:  {}",
            r.withdrawn_at.as_deref().unwrap_or("no")
        );
        let _ = writeln!(out, "   evidence:   {}", r.evidence);
    }
    out
}
