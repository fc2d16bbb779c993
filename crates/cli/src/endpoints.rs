//! `wagate endpoints add|list|delete`: outgoing event webhooks, through the hub's API
//! (`POST /v1/webhook-endpoints`, `GET /v1/webhook-endpoints`,
//! `DELETE /v1/webhook-endpoints/{id}`; operator token). docs/webhooks.md.

use std::process::ExitCode;

use wagate_api as api;

use crate::ops::{client, expect_ok, output, typed, Common};

#[derive(Debug, clap::Subcommand)]
#[command(
    after_help = "Examples:\n  wagate endpoints add https://agent.example.com/wagate --event inbound_message --event opted_out\n  wagate endpoints list\n  wagate endpoints delete ep_5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a"
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
