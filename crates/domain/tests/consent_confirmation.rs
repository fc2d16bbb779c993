//! The confirmation template's exception at `no_opt_in`, decided by `decide::send` and re-run by
//! `decide::claim`: the campaign's template, once, under `consent_confirmation`, passes without
//! an opt-in; the exception lifts no other rule and lets nothing else through.

use wagate_domain::consent::{Campaign, CampaignMedium};
use wagate_domain::consent_confirmation::{PendingConfirmation, CONFIRMATION_WORKFLOW};
use wagate_domain::decide::{self, SendDecision, SendMessage, SendState};
use wagate_domain::{
    ApprovalStatus, ConsentEvent, Event, MessageId, Recipient, RuleId, SendContent,
    TemplateCategory, Workflow,
};

use crate::support::*;

/// A sender, an approved utility template without variables, and a contact with no opt-in.
fn fx() -> Fx {
    let mut fx = Fx::empty();
    fx.register_sender(t0() - hours(48));
    fx.authorize_sender(t0() - hours(48));
    fx.register_template(TemplateCategory::Utility, &[], t0() - hours(48));
    fx.set_template(ApprovalStatus::Approved, t0() - hours(47));
    fx
}

fn campaign(fx: &Fx) -> Campaign {
    Campaign {
        code: "WG-CONF1".into(),
        sender: fx.sender_address.clone(),
        wording_version: "w-1".into(),
        workflows: vec![Workflow::parse("lead_qualification").expect("workflow")],
        medium: CampaignMedium::WebForm,
        confirmation_template: Some(fx.template_id.clone()),
        at: t0() - hours(2),
        closed_at: None,
    }
}

fn send(fx: &Fx, id: MessageId, workflow: &str, content: SendContent) -> SendMessage {
    SendMessage {
        message_id: id,
        sender: fx.sender_address.clone(),
        to: Recipient::Phone(phone(TO)),
        workflow: Some(workflow.into()),
        content,
    }
}

fn template(fx: &Fx) -> SendContent {
    SendContent::Template {
        template: fx.template_id.clone(),
        variables: Default::default(),
        media: Vec::new(),
    }
}

fn decide_with(
    fx: &Fx,
    campaign: &Campaign,
    sent: Option<MessageId>,
    command: &SendMessage,
    at: wagate_domain::Timestamp,
) -> SendDecision {
    let state = SendState {
        confirmation: Some(PendingConfirmation {
            campaign,
            confirmation_template: campaign.confirmation_template.as_ref(),
            requested_at: t0(),
            sent,
        }),
        ..fx.state()
    };
    decide::send(&state, command, &fx.policy, at)
}

#[test]
fn the_confirmation_passes_once_and_records_that_it_was_sent() {
    let fx = fx();
    let c = campaign(&fx);
    let id = message_id(1);
    let command = send(&fx, id, CONFIRMATION_WORKFLOW, template(&fx));
    let SendDecision::Allowed { events } = decide_with(&fx, &c, None, &command, t0() + mins(1))
    else {
        panic!("refused");
    };
    assert!(events.iter().any(|e| matches!(
        e,
        Event::Consent(ConsentEvent::ConfirmationSent { campaign, message_id, .. })
            if campaign == "WG-CONF1" && *message_id == id
    )));
    // Once sent, another message is refused no_opt_in, naming why.
    let again = send(&fx, message_id(2), CONFIRMATION_WORKFLOW, template(&fx));
    let refusal = decide_with(&fx, &c, Some(id), &again, t0() + mins(2))
        .refusal()
        .cloned()
        .expect("refused");
    assert_eq!(refusal.rule, RuleId::NoOptIn);
    assert!(
        refusal.message.contains("already sent"),
        "{}",
        refusal.message
    );
}

#[test]
fn nothing_else_gets_through_a_pending_opt_in() {
    let fx = fx();
    let c = campaign(&fx);
    let now = t0() + mins(1);
    // The same template under an ordinary workflow: no_opt_in.
    let ordinary = send(&fx, message_id(1), "lead_qualification", template(&fx));
    let refused = decide_with(&fx, &c, None, &ordinary, now);
    assert_eq!(refused.refusal().expect("refused").rule, RuleId::NoOptIn);
    // Freeform under the confirmation workflow: the window rule, and the workflow is not allowed.
    let freeform = send(
        &fx,
        message_id(2),
        CONFIRMATION_WORKFLOW,
        SendContent::Freeform { text: "hi".into() },
    );
    let refused = decide_with(&fx, &c, None, &freeform, now);
    let refusal = refused.refusal().expect("refused");
    assert_eq!(refusal.rule, RuleId::WindowClosed);
    assert!(refusal.also_broken.contains(&RuleId::WorkflowNotAllowed));
    // After the bound, or with the campaign closed: no_opt_in.
    let confirmation = send(&fx, message_id(3), CONFIRMATION_WORKFLOW, template(&fx));
    let late = decide_with(&fx, &c, None, &confirmation, t0() + hours(25));
    assert_eq!(late.refusal().expect("refused").rule, RuleId::NoOptIn);
    let closed = Campaign {
        closed_at: Some(t0() + secs(30)),
        ..c.clone()
    };
    let refused = decide_with(&fx, &closed, None, &confirmation, now);
    assert_eq!(refused.refusal().expect("refused").rule, RuleId::NoOptIn);
    // Without the pending opt-in loaded (any other contact): the workflow is unknown too.
    let plain = decide::send(&fx.state(), &confirmation, &fx.policy, now);
    let refusal = plain.refusal().expect("refused");
    assert_eq!(refusal.rule, RuleId::NoOptIn);
    assert!(refusal.also_broken.contains(&RuleId::WorkflowNotAllowed));
}

#[test]
fn an_opted_out_contact_gets_no_confirmation() {
    let mut fx = fx();
    fx.opt_out(t0() + secs(10));
    let c = campaign(&fx);
    let confirmation = send(&fx, message_id(1), CONFIRMATION_WORKFLOW, template(&fx));
    let refused = decide_with(&fx, &c, None, &confirmation, t0() + mins(1));
    assert_eq!(refused.refusal().expect("refused").rule, RuleId::OptedOut);
}
