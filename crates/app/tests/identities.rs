//! Linked identities through the service: links from a send response and from webhooks, and a
//! STOP under a linked identity stopping sends to the number, at decision and at claim.

use chrono::TimeDelta;
use wagate_app::AppError;
use wagate_domain::decide::{
    DispatchOutcome, LinkIdentities, ReceiveInbound, RecordOutcome, RequestReview,
};
use wagate_domain::{
    BusinessScopedUserId, ContactId, Event, IdentitySource, MessageStatus, ProviderMessageRef,
    RuleId,
};

use crate::support::*;

fn bsuid() -> ContactId {
    ContactId::BusinessScoped(BusinessScopedUserId::parse("CH.1349120865530274191").expect("id"))
}

fn rule<T: std::fmt::Debug>(result: Result<T, AppError>) -> RuleId {
    match result {
        Err(AppError::Refused(refusal)) => refusal.rule,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

async fn stop(hub: &wagate_app::Hub, contact: &ContactId, key: &str) {
    hub.receive_inbound(
        ReceiveInbound {
            details: Vec::new(),
            contact: contact.clone(),
            sender: None,
            provider_ref: None,
            kind: "text".into(),
            text: "STOP".into(),
            provider_at: None,
        },
        key,
    )
    .await
    .expect("inbound");
}

#[tokio::test]
async fn a_send_response_naming_another_wa_id_links_it_and_its_stop_stops_the_number() {
    let t = hub();
    ready(&t.hub).await;
    opt_in(&t.hub, &contact()).await;
    let accepted = t
        .hub
        .send(template_request(CONTACT), no_options())
        .await
        .expect("send");
    t.hub.claim(accepted.message_id).await.expect("claim");
    let wa_id = ContactId::parse("+41790000009").expect("wa_id");
    t.hub
        .record_outcome(RecordOutcome {
            message_id: accepted.message_id,
            attempt: 1,
            outcome: DispatchOutcome::Accepted {
                provider_ref: ProviderMessageRef::parse("wamid.ABC=").expect("wamid"),
                provider_status: MessageStatus::Accepted,
                recipient: Some(wa_id.clone()),
            },
            jitter: TimeDelta::zero(),
        })
        .await
        .expect("outcome");
    let links: Vec<String> = log(&t.hub)
        .into_iter()
        .filter(|(_, event)| event.type_name() == "IdentityLinked")
        .map(|(_, event)| event.stream().to_string())
        .collect();
    assert_eq!(links, ["contact:+41790000001", "contact:+41790000009"]);
    let view = t.hub.contact(&contact()).expect("view");
    assert_eq!(
        view.linked
            .iter()
            .map(|(id, _)| id.clone())
            .collect::<Vec<_>>(),
        std::slice::from_ref(&wa_id)
    );

    // The person writes STOP from the wa_id: the number is stopped too.
    stop(&t.hub, &wa_id, "meta/inbound/wamid.STOP=").await;
    assert_eq!(
        rule(t.hub.send(template_request(CONTACT), no_options()).await),
        RuleId::OptedOut
    );
}

#[tokio::test]
async fn a_stop_on_a_linked_identity_between_send_and_claim_cancels_the_message() {
    let t = hub();
    ready(&t.hub).await;
    opt_in(&t.hub, &contact()).await;
    t.hub
        .link_identities(
            LinkIdentities {
                contact: contact(),
                other: bsuid(),
                source: IdentitySource::Webhook,
            },
            None,
        )
        .await
        .expect("link");
    let accepted = t
        .hub
        .send(template_request(CONTACT), no_options())
        .await
        .expect("allowed: the linked identity has no consent on record");
    stop(&t.hub, &bsuid(), "meta/inbound/wamid.STOP2=").await;
    assert_eq!(
        rule(t.hub.claim(accepted.message_id).await),
        RuleId::OptedOut
    );
}

#[tokio::test]
async fn links_and_reviews_from_webhooks_are_recorded_once() {
    let t = hub();
    let command = LinkIdentities {
        contact: contact(),
        other: ContactId::parse("+41790000002").expect("new number"),
        source: IdentitySource::UserChangedNumber,
    };
    let first = t
        .hub
        .link_identities(command.clone(), Some("meta/system/wamid.S1="))
        .await
        .expect("link");
    assert!(
        matches!(first, wagate_app::Ingested::Appended { ref events, .. } if events.len() == 2)
    );
    let again = t
        .hub
        .link_identities(command, Some("meta/system/wamid.S1="))
        .await
        .expect("link");
    assert_eq!(again, wagate_app::Ingested::Duplicate);

    let review = RequestReview {
        contact: contact(),
        text: "security code changed".into(),
        reason: "customer_identity_changed".into(),
    };
    t.hub
        .request_review(review.clone(), "meta/system/wamid.S2=")
        .await
        .expect("review");
    t.hub
        .request_review(review, "meta/system/wamid.S2=")
        .await
        .expect("review again");
    let view = t.hub.contact(&contact()).expect("view");
    assert_eq!(view.state.reviews_requested, 1);
    assert_eq!(view.state.last_inbound_at, None, "no window from a notice");
    let types: Vec<&str> = log(&t.hub)
        .iter()
        .map(|(_, event)| Event::type_name(event))
        .collect();
    assert_eq!(
        types,
        ["IdentityLinked", "IdentityLinked", "OptOutReviewRequested"]
    );
}

#[tokio::test]
async fn an_explanation_cites_the_linked_identitys_stop_and_the_links_it_judged_over() {
    let t = hub();
    ready(&t.hub).await;
    opt_in(&t.hub, &contact()).await;
    t.hub
        .link_identities(
            LinkIdentities {
                contact: contact(),
                other: bsuid(),
                source: IdentitySource::Webhook,
            },
            None,
        )
        .await
        .expect("link");
    let allowed = t
        .hub
        .send(template_request("+41790000001"), no_options())
        .await
        .expect("allowed while no identity opted out");
    let explained = t.hub.explain(allowed.message_id).expect("explained");
    let link = log(&t.hub)
        .into_iter()
        .find(|(_, event)| event.type_name() == "IdentityLinked")
        .map(|(position, _)| position)
        .expect("link recorded");
    assert!(
        explained
            .facts
            .iter()
            .any(|fact| fact.position == link && fact.text.contains("judged over")),
        "{explained:?}"
    );

    stop(&t.hub, &bsuid(), "meta/inbound/wamid.LINKED-STOP=").await;
    let stop_position = log(&t.hub)
        .into_iter()
        .rfind(|(_, event)| event.type_name() == "OptedOut")
        .map(|(position, _)| position)
        .expect("stop recorded");
    assert_eq!(
        rule(
            t.hub
                .send(template_request("+41790000001"), no_options())
                .await
        ),
        RuleId::OptedOut
    );
    let refused = log(&t.hub)
        .into_iter()
        .rev()
        .find_map(|(_, event)| match event {
            Event::Message(message @ wagate_domain::MessageEvent::SendRefused { .. }) => {
                message.message_id()
            }
            _ => None,
        })
        .expect("refusal recorded");
    let explained = t.hub.explain(refused).expect("explained");
    assert_eq!(explained.rule, Some(RuleId::OptedOut));
    assert!(
        explained
            .facts
            .iter()
            .any(|fact| fact.position == stop_position && fact.text.contains("linked to")),
        "the linked identity's STOP at {stop_position} is cited: {explained:?}"
    );
}
