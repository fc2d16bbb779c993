//! The confirmation template of a double opt-in through the hub: the follower of form
//! submissions sends it once (a crash before its checkpoint replays, sending nothing twice), the
//! dispatcher's claim re-runs the same gates and agrees within the bound and refuses after it,
//! and a second confirmation is refused `no_opt_in`.

use chrono::TimeDelta;
use wagate_app::{AppError, ConsentConfirmations, Follower, FollowerSettings, SendRequest};
use wagate_domain::consent::{CampaignMedium, ConsentEvent, CreateCampaign, RequestOptIn};
use wagate_domain::decide::RegisterTemplate;
use wagate_domain::{
    ApprovalStatus, ContactId, Event, MessageEvent, RuleId, SendContent, TemplateCategory,
    TemplateId, Workflow,
};

use crate::support::*;

const CONFIRM: &str = "HX00000000000000000000000000c0ffee";

fn confirm_template() -> TemplateId {
    TemplateId::parse(CONFIRM).expect("template")
}

async fn campaign(hub: &wagate_app::Hub) -> String {
    hub.register_template(RegisterTemplate {
        template: confirm_template(),
        name: "optin_confirm".into(),
        language: "en".into(),
        category: TemplateCategory::Utility,
        placeholders: Vec::new(),
    })
    .await
    .expect("register");
    hub.set_template_status(&confirm_template(), ApprovalStatus::Approved, "ok")
        .await
        .expect("approve");
    let wording_version = published_wording(hub).await;
    let (campaign, _) = hub
        .create_campaign(CreateCampaign {
            code: "WG-CONF1".into(),
            sender: sender(),
            wording_version,
            workflows: vec![Workflow::parse("appointment_scheduling").expect("workflow")],
            medium: CampaignMedium::WebForm,
            confirmation_template: Some(confirm_template()),
        })
        .await
        .expect("campaign");
    campaign.code
}

/// Runs the confirmations from the start of the log (a fresh in-memory follower: what a crash
/// before the checkpoint would repeat).
async fn run_confirmations(hub: &wagate_app::Hub) {
    let mut follower = Follower::in_memory("test:confirmations", FollowerSettings::default());
    while let wagate_app::Step::Advanced { more: true, .. } = follower
        .step(hub, &mut ConsentConfirmations)
        .await
        .expect("step")
    {}
}

fn confirmations(hub: &wagate_app::Hub) -> Vec<Event> {
    log(hub)
        .into_iter()
        .map(|(_, e)| e)
        .filter(|e| {
            matches!(
                e,
                Event::Message(MessageEvent::TemplateSent { workflow, .. })
                    if workflow.as_str() == "consent_confirmation"
            ) || matches!(e, Event::Consent(ConsentEvent::ConfirmationSent { .. }))
        })
        .collect()
}

#[tokio::test]
async fn the_follower_sends_the_confirmation_once_and_the_claim_agrees_within_the_bound() {
    let test = hub();
    let hub = &test.hub;
    ready(hub).await;
    let code = campaign(hub).await;
    let person = ContactId::parse("+41790000077").expect("contact");
    hub.request_opt_in(
        &code,
        RequestOptIn {
            contact: person.clone(),
            evidence: "form from 192.0.2.7".into(),
        },
    )
    .await
    .expect("request");

    run_confirmations(hub).await;
    let sent = confirmations(hub);
    assert_eq!(sent.len(), 2, "{sent:?}");
    let Event::Message(MessageEvent::TemplateSent { message_id, .. }) = &sent[0] else {
        panic!("{sent:?}");
    };
    // Handled again (a crash before the checkpoint): replayed, nothing sent twice.
    run_confirmations(hub).await;
    assert_eq!(confirmations(hub).len(), 2);

    // The dispatcher's claim re-runs the gates with the same pending opt-in: it agrees.
    hub.claim(*message_id).await.expect("claimed");

    // A second confirmation, by hand, is refused no_opt_in.
    let again = hub
        .send(
            SendRequest {
                to: person.to_string(),
                sender: Some(sender()),
                workflow: Some("consent_confirmation".into()),
                content: SendContent::Template {
                    template: confirm_template(),
                    variables: Default::default(),
                    media: Vec::new(),
                },
            },
            no_options(),
        )
        .await;
    let Err(AppError::Refused(refusal)) = again else {
        panic!("{again:?}");
    };
    assert_eq!(refusal.rule, RuleId::NoOptIn);
    assert!(
        refusal.message.contains("already sent"),
        "{}",
        refusal.message
    );
}

#[tokio::test]
async fn a_claim_after_the_bound_is_refused() {
    let test = hub();
    let hub = &test.hub;
    ready(hub).await;
    let code = campaign(hub).await;
    let person = ContactId::parse("+41790000078").expect("contact");
    hub.request_opt_in(
        &code,
        RequestOptIn {
            contact: person,
            evidence: "form from 192.0.2.8".into(),
        },
    )
    .await
    .expect("request");
    run_confirmations(hub).await;
    let Some(Event::Message(MessageEvent::TemplateSent { message_id, .. })) =
        confirmations(hub).into_iter().next()
    else {
        panic!("no confirmation sent");
    };
    test.clock.advance(TimeDelta::hours(25));
    let claimed = hub.claim(message_id).await;
    let Err(AppError::Refused(refusal)) = claimed else {
        panic!("{claimed:?}");
    };
    assert_eq!(refusal.rule, RuleId::NoOptIn);
}
