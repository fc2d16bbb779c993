//! Many tasks sending to, claiming for, and opting out the same contact: the log never shows a
//! claim after an opt-out (without a re-opt-in between).

use std::collections::HashSet;

use wagate_domain::decide::{RecordOptIn, RecordOptOut};
use wagate_domain::{ContactEvent, Event, MessageEvent, OptInSource, OptOutSource};

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_claim_after_opt_out_under_concurrency() {
    let t = hub();
    ready(&t.hub).await;
    opt_in(&t.hub, &contact()).await;
    let mut tasks = Vec::new();
    for round in 0..64_u32 {
        let hub = t.hub.clone();
        tasks.push(tokio::spawn(async move {
            match round % 8 {
                3 => {
                    hub.opt_out(RecordOptOut {
                        contact: contact(),
                        source: OptOutSource::Keyword,
                        detail: "STOP".into(),
                    })
                    .await
                    .expect("opt out");
                }
                6 => {
                    hub.opt_in(RecordOptIn {
                        contact: contact(),
                        source: OptInSource::Keyword,
                        evidence: "START".into(),
                        recorded_by: "test".into(),
                        wording_version: "v1".into(),
                    })
                    .await
                    .expect("opt in");
                }
                _ => {
                    if let Ok(accepted) = hub.send(template_request(CONTACT), no_options()).await {
                        // Refused claims are expected; errors other than refusals are not.
                        match hub.claim(accepted.message_id).await {
                            Ok(_) | Err(wagate_app::AppError::Refused(_)) => {}
                            Err(other) => panic!("claim failed: {other}"),
                        }
                    }
                }
            }
        }));
    }
    for task in tasks {
        task.await.expect("task");
    }

    let mut opted_out = false;
    let mut claims = 0;
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
            _ => {}
        }
    }
    assert!(claims > 0, "the test exercised at least one claim");
    let report = t.hub.store().verify().expect("verify");
    assert!(format!("{report:?}").contains("events"), "{report:?}");
}
