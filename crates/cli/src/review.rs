//! `wagate review` (list the review queue) and `wagate review resolve ID --decision … --note …`,
//! through the hub's API (`GET /v1/review`, `POST /v1/review/{id}/resolve`).

use std::process::ExitCode;

use wagate_api as api;

use crate::ops::{client, expect_ok, output, typed, Common};

#[derive(Debug, clap::Args)]
#[command(
    args_conflicts_with_subcommands = true,
    after_help = "Examples:\n  wagate review                      # open items\n  wagate review --all --reason opt_out_request\n  wagate review resolve 17 --decision confirm_opt_out --note 'asked by phone'"
)]
pub struct ReviewArgs {
    #[command(subcommand)]
    command: Option<ReviewCommand>,

    /// Only items raised for this reason (opt_out_request, permanent_failure, …).
    #[arg(long, value_name = "REASON")]
    reason: Option<String>,

    /// Resolved items too (default: open items only).
    #[arg(long)]
    all: bool,

    #[command(flatten)]
    common: Common,
}

#[derive(Debug, clap::Subcommand)]
enum ReviewCommand {
    /// Resolve an item (operator token): recorded with who and when.
    Resolve {
        /// The item's id (the first column of `wagate review`).
        id: u64,
        /// confirm_opt_out or dismiss for an opt_out_request; handled or dismiss otherwise.
        #[arg(long, value_name = "DECISION")]
        decision: String,
        /// Why, for the record.
        #[arg(long, value_name = "TEXT", default_value = "")]
        note: String,
        #[command(flatten)]
        common: Common,
    },
}

pub async fn run(args: ReviewArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        Some(ReviewCommand::Resolve {
            id,
            decision,
            note,
            common,
        }) => {
            let id = id.to_string();
            let segments = ["v1", "review", &id, "resolve"];
            let what = format!("POST /{}", segments.join("/"));
            let request = api::ResolveReviewRequest { decision, note };
            let answer = client(&common)?
                .post(&segments, &[], &[], &request, &what)
                .await?;
            let body = expect_ok(answer, &what)?;
            output(&common, &body, || {
                let item: api::ReviewItemView = typed(body.clone(), &what)?;
                Ok(format!("resolved {}\n", line(&item)))
            })
        }
        None => {
            let mut query = Vec::new();
            if !args.all {
                query.push(("state", "open".to_owned()));
            }
            if let Some(reason) = args.reason {
                query.push(("reason", reason));
            }
            let what = "GET /v1/review";
            let body = expect_ok(
                client(&args.common)?
                    .get_query(&["v1", "review"], &query, what)
                    .await?,
                what,
            )?;
            output(&args.common, &body, || {
                let list: api::ReviewList = typed(body.clone(), what)?;
                if list.items.is_empty() {
                    return Ok("nothing needs a person\n".to_owned());
                }
                Ok(list
                    .items
                    .iter()
                    .map(|item| {
                        let mut text = format!("{}\n", line(item));
                        if item.state == "open" {
                            text.push_str(&format!(
                                "    {}\n    to resolve: {}\n",
                                item.detail, item.resolving
                            ));
                        }
                        text
                    })
                    .collect())
            })
        }
    }
}

fn line(item: &api::ReviewItemView) -> String {
    let about = [
        item.contact.as_deref(),
        item.sender.as_deref(),
        item.template.as_deref(),
    ]
    .into_iter()
    .flatten()
    .collect::<Vec<_>>()
    .join(" ");
    let state = match &item.resolution {
        Some(resolution) => format!(
            "resolved ({} by {})",
            resolution.decision,
            resolution.by.as_deref().unwrap_or("?")
        ),
        None => "OPEN".to_owned(),
    };
    format!(
        "{}  {}  {}  {}  {}{}",
        item.id,
        state,
        item.reason,
        item.raised_at,
        about,
        item.message_id
            .as_deref()
            .map(|id| format!(" message={id}"))
            .unwrap_or_default()
    )
}
