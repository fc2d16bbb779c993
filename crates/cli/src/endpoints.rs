//! `wagate endpoints add|list|delete|deliveries|retry`: outgoing event webhooks, through the
//! hub's API (`POST /v1/webhook-endpoints`, `GET /v1/webhook-endpoints`,
//! `DELETE /v1/webhook-endpoints/{id}`, `GET /v1/webhook-endpoints/{id}/deliveries`,
//! `POST /v1/webhook-endpoints/{id}/retry`; operator token, or auditor for deliveries).
//! docs/webhooks.md.

use std::process::ExitCode;

use wagate_api as api;

use crate::ops::{client, expect_ok, output, typed, Common};

#[derive(Debug, clap::Subcommand)]
#[command(
    after_help = "Examples:\n  wagate endpoints add https://agent.example.com/wagate --event inbound_message --event opted_out\n  wagate endpoints list\n  wagate endpoints delete ep_5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a\n  wagate endpoints deliveries ep_5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a --limit 20\n  wagate endpoints retry ep_5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a"
)]
pub enum EndpointsCommand {
    /// Register an endpoint; prints its id and signing secret (shown once).
    Add {
        /// https://…, or http:// to a loopback host (127.0.0.0/8, localhost, [::1]).
        url: String,
        /// An event type to deliver (repeat): inbound_message, opted_out, opted_in,
        /// status_changed, send_refused, review_item_raised.
        #[arg(long = "event", value_name = "TYPE", required = true)]
        events: Vec<String>,
        #[command(flatten)]
        common: Common,
    },
    /// List the endpoints (deleted ones too), without secrets.
    List {
        #[command(flatten)]
        common: Common,
    },
    /// Delete an endpoint: nothing more is delivered to it.
    Delete {
        /// The endpoint's id (ep_…).
        id: String,
        #[command(flatten)]
        common: Common,
    },
    /// Show an endpoint's delivery log: its newest attempts, newest first.
    Deliveries {
        /// The endpoint's id (ep_…).
        id: String,
        /// At most this many attempts (default 50; at most the 1000 kept).
        #[arg(long, value_name = "N")]
        limit: Option<u64>,
        #[command(flatten)]
        common: Common,
    },
    /// Retry an endpoint now: re-enables a disabled one (it resumes where it stopped), or cuts
    /// a live one's backoff short.
    Retry {
        /// The endpoint's id (ep_…).
        id: String,
        #[command(flatten)]
        common: Common,
    },
}

pub async fn run(command: EndpointsCommand) -> anyhow::Result<ExitCode> {
    match command {
        EndpointsCommand::Add {
            url,
            events,
            common,
        } => {
            let what = "POST /v1/webhook-endpoints";
            let request = api::RegisterEndpointRequest { url, events };
            let body = expect_ok(
                client(&common)?
                    .post(&["v1", "webhook-endpoints"], &[], &[], &request, what)
                    .await?,
                what,
            )?;
            output(&common, &body, || {
                let endpoint: api::EndpointView = typed(body.clone(), what)?;
                Ok(format!(
                    "{}\nsecret {} (shown once: give it to the receiver to verify Wagate-Signature)\n",
                    line(&endpoint),
                    endpoint.secret.as_deref().unwrap_or("?")
                ))
            })
        }
        EndpointsCommand::List { common } => {
            let what = "GET /v1/webhook-endpoints";
            let body = expect_ok(
                client(&common)?
                    .get(&["v1", "webhook-endpoints"], what)
                    .await?,
                what,
            )?;
            output(&common, &body, || {
                let list: api::EndpointList = typed(body.clone(), what)?;
                if list.endpoints.is_empty() {
                    return Ok("no endpoints\n".to_owned());
                }
                Ok(list
                    .endpoints
                    .iter()
                    .map(|endpoint| format!("{}\n", line(endpoint)))
                    .collect())
            })
        }
        EndpointsCommand::Delete { id, common } => {
            let what = format!("DELETE /v1/webhook-endpoints/{id}");
            let body = expect_ok(
                client(&common)?
                    .delete(&["v1", "webhook-endpoints", &id], &what)
                    .await?,
                &what,
            )?;
            output(&common, &body, || {
                let endpoint: api::EndpointView = typed(body.clone(), &what)?;
                Ok(format!("deleted {}\n", line(&endpoint)))
            })
        }
        EndpointsCommand::Deliveries { id, limit, common } => {
            let what = format!("GET /v1/webhook-endpoints/{id}/deliveries");
            let query: Vec<(&str, String)> = limit
                .map(|limit| ("limit", limit.to_string()))
                .into_iter()
                .collect();
            let body = expect_ok(
                client(&common)?
                    .get_query(
                        &["v1", "webhook-endpoints", &id, "deliveries"],
                        &query,
                        &what,
                    )
                    .await?,
                &what,
            )?;
            output(&common, &body, || {
                let list: api::DeliveryList = typed(body.clone(), &what)?;
                Ok(deliveries_table(&list))
            })
        }
        EndpointsCommand::Retry { id, common } => {
            let what = format!("POST /v1/webhook-endpoints/{id}/retry");
            let body = expect_ok(
                client(&common)?
                    .post(
                        &["v1", "webhook-endpoints", &id, "retry"],
                        &[],
                        &[],
                        &serde_json::json!({}),
                        &what,
                    )
                    .await?,
                &what,
            )?;
            output(&common, &body, || {
                let endpoint: api::EndpointView = typed(body.clone(), &what)?;
                Ok(format!("retrying {}\n", line(&endpoint)))
            })
        }
    }
}

fn line(endpoint: &api::EndpointView) -> String {
    format!(
        "{}  {}  {}  {}  by {}",
        endpoint.id,
        endpoint.state,
        endpoint.url,
        endpoint.events.join(","),
        endpoint.created_by.as_deref().unwrap_or("?")
    )
}

/// The endpoint's health, then one row per attempt.
fn deliveries_table(list: &api::DeliveryList) -> String {
    let endpoint = &list.endpoint;
    let mut out = format!("{}\n", line(endpoint));
    if let Some(since) = &endpoint.failing_since {
        out.push_str(&format!("failing since {since}\n"));
    }
    if let Some(at) = &endpoint.last_success_at {
        out.push_str(&format!("last success  {at}\n"));
    }
    if let Some(at) = &endpoint.disabled_at {
        out.push_str(&format!(
            "disabled at   {at}: {}\n",
            endpoint.disabled_reason.as_deref().unwrap_or("?")
        ));
    }
    if list.deliveries.is_empty() {
        out.push_str("no deliveries\n");
        return out;
    }
    out.push_str(&format!(
        "{:<24}  {:>8}  {:>7}  {:<18}  {}\n",
        "AT", "POSITION", "ATTEMPT", "TYPE", "ANSWER"
    ));
    for attempt in &list.deliveries {
        let answer = match (&attempt.status, &attempt.error) {
            (Some(status), _) if attempt.acknowledged => format!("{status} ok"),
            (Some(status), _) => format!("{status} failed"),
            (None, Some(error)) => format!("failed: {error}"),
            (None, None) => "failed".to_owned(),
        };
        out.push_str(&format!(
            "{:<24}  {:>8}  {:>7}  {:<18}  {}\n",
            attempt.at, attempt.position, attempt.attempt, attempt.kind, answer
        ));
    }
    out
}
