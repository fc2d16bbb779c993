//! Many tasks sending to, claiming for, and opting out the same contact: the log never shows a
//! claim after an opt-out (without a re-opt-in between).

use std::collections::HashSet;

use chrono::TimeDelta;
use wagate_domain::decide::{ReceiveInbound, RecordOptOut};
use wagate_domain::{ContactEvent, Event, MessageEvent, OptOutSource};

use crate::support::*;

const ROUNDS: u32 = 8;
const SENDERS_PER_ROUND: u32 = 8;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_claim_after_opt_out_under_concurrency() {
    let t = hub();
    ready(&t.hub).await;
    let mut sends_allowed = 0;
    for round in 0..ROUNDS {
        // Each round starts opted in, then a STOP races the sends and claims, then a START.
        opt_in(&t.hub, &contact()).await;
        let mut tasks = Vec::new();
        for index in 0..=SENDERS_PER_ROUND {
            let hub = t.hub.clone();
            tasks.push(tokio::spawn(async move {
                if index == SENDERS_PER_ROUND / 2 {
                    hub.opt_out(RecordOptOut {
                        contact: contact(),
                        source: OptOutSource::Keyword,
                        detail: "STOP".into(),
                    })
                    .await
                    .expect("opt out");
                    return false;
                }
                let Ok(accepted) = hub.send(template_request(CONTACT), no_options()).await else {
                    return false;
                };
                // Refused claims are expected; errors other than refusals are not.
                match hub.claim(accepted.message_id).await {
                    Ok(_) | Err(wagate_app::AppError::Refused(_)) => true,
                    Err(other) => panic!("claim failed: {other}"),
                }
            }));
        }
        for task in tasks {
            if task.await.expect("task") {
                sends_allowed += 1;
            }
        }
        // The contact opts in again with their own START, written after the STOP (consent by
        // keyword comes only from the contact's message, and is ordered after the STOP by time).
        t.clock.advance(TimeDelta::seconds(1));
        t.hub
            .receive_inbound(
                ReceiveInbound {
                    details: Vec::new(),
                    contact: contact(),
                    sender: Some(sender()),
                    provider_ref: None,
                    kind: "text".into(),
                    text: "START".into(),
                    provider_at: None,
                },
                &format!("start-{round}"),
            )
            .await
            .expect("START");
        t.clock.advance(TimeDelta::seconds(1));
    }

    let mut opted_out = false;
    let mut claims = 0;
    let mut claim_refusals = 0;
    let mut claimed_ids = HashSet::new();
    for (position, event) in log(&t.hub) {
        match event {
            Event::Contact(ContactEvent::OptedOut { .. }) => opted_out = true,
            Event::Contact(ContactEvent::OptedIn { .. }) => opted_out = false,
            Event::Message(MessageEvent::DispatchClaimed { message_id, .. }) => {
                assert!(
                    !opted_out,
                    "claim of {message_id} at position {position} after an opt-out"
                );
                assert!(claimed_ids.insert(message_id), "claimed twice");
                claims += 1;
            }
            Event::Message(MessageEvent::ClaimRefused { .. }) => claim_refusals += 1,
            _ => {}
        }
    }
    // Every allowed send was either claimed or had its claim refused, never both, never lost.
    assert_eq!(claims + claim_refusals, sends_allowed);
    let report = t
        .store
        .verify()
        .expect("the log is gap-free and consistent");
    assert_eq!(report.events, log(&t.hub).len() as u64);
}
