//! Every rule of the table, through `decide::send` and through `decide::claim` (the re-check at
//! dispatch), in check order.

use std::collections::BTreeSet;

use wagate_domain::decide::{self, ClaimDecision, ClaimDispatch, SendMessage};
use wagate_domain::Recipient;
use wagate_domain::{
    Aggregate, ApprovalStatus, BusinessScopedUserId, ContactFlag, ContactId, ContactState,
    MessageEvent, MessageState, MessageStatus, MessagingLimit, PortfolioEvent, PortfolioId, RuleId,
    SenderState, TemplateCategory, TemplateState, Timestamp, Workflow,
};

use crate::support::*;

struct SendCase {
    fx: Fx,
    command: SendMessage,
    now: Timestamp,
    rule: RuleId,
    fragment: &'static str,
    also: Vec<RuleId>,
}

fn case(
    fx: Fx,
    command: SendMessage,
    rule: RuleId,
    fragment: &'static str,
    also: &[RuleId],
) -> SendCase {
    SendCase {
        fx,
        command,
        now: t0(),
        rule,
        fragment,
        also: also.to_vec(),
    }
}

/// One request per way of breaking each rule, each breaking only that rule (unless `also`).
fn send_cases() -> Vec<SendCase> {
    let mut cases = Vec::new();

    // channel_not_authorized: unregistered, unauthorized, suspended.
    let mut fx = Fx::ready();
    fx.sender = SenderState::default();
    let command = fx.default_template_send();
    cases.push(case(
        fx,
        command,
        RuleId::ChannelNotAuthorized,
        "is not registered",
        &[],
    ));
    let mut fx = Fx::ready();
    fx.sender = SenderState::default();
    fx.register_sender(t0() - hours(1));
    let command = fx.default_template_send();
    cases.push(case(
        fx,
        command,
        RuleId::ChannelNotAuthorized,
        "has not been authorized by an operator",
        &[],
    ));
    let mut fx = Fx::ready();
    fx.suspend_sender(t0() - hours(1));
    let command = fx.default_template_send();
    cases.push(case(
        fx,
        command,
        RuleId::ChannelNotAuthorized,
        "is suspended: quality rating low",
        &[],
    ));

    // invalid_number: no contact state exists for an invalid number.
    for (to, fragment) in [
        ("0041790000001", "start with '+'"),
        ("+41 79 000 00 01", "is not a digit"),
        ("+4179", "too short"),
    ] {
        let mut fx = Fx::ready();
        fx.contact = ContactState::default();
        let mut command = fx.default_template_send();
        command.to = Recipient::parse(to);
        cases.push(case(fx, command, RuleId::InvalidNumber, fragment, &[]));
    }

    // opted_out: a freeform reply inside the window breaks only this rule; a template also
    // lacks an opt-in (the opt-out withdrew it).
    let mut fx = Fx::ready();
    fx.inbound("text", "When can I visit?", t0() - hours(1));
    fx.opt_out(t0() - mins(30));
    let command = fx.freeform_send();
    cases.push(case(
        fx.clone(),
        command,
        RuleId::OptedOut,
        "opted out and has not opted in again",
        &[],
    ));
    let command = fx.default_template_send();
    cases.push(case(
        fx,
        command,
        RuleId::OptedOut,
        "opted out",
        &[RuleId::NoOptIn],
    ));

    // no_opt_in: an inbound message opens the window but is not an opt-in; inside the window
    // a template needs the opt-in all the same.
    let mut fx = Fx::ready();
    fx.contact = ContactState::default();
    fx.inbound("text", "Hello", t0() - hours(1));
    let command = fx.default_template_send();
    cases.push(case(
        fx,
        command,
        RuleId::NoOptIn,
        "has no explicit opt-in on record",
        &[],
    ));

    // window_closed: never wrote; wrote 25 h ago.
    let mut fx = Fx::ready();
    let command = fx.freeform_send();
    cases.push(case(
        fx,
        command,
        RuleId::WindowClosed,
        "has never written to us",
        &[],
    ));
    let mut fx = Fx::ready();
    fx.inbound("text", "Hello", t0() - hours(25));
    let command = fx.freeform_send();
    cases.push(case(
        fx,
        command,
        RuleId::WindowClosed,
        "window after +41790000001's last message to whatsapp:+15550001111 (2026-11-24T08:00:00+00:00) is closed",
        &[],
    ));

    // template_unknown.
    let mut fx = Fx::ready();
    fx.template = TemplateState::default();
    let command = fx.default_template_send();
    cases.push(case(
        fx,
        command,
        RuleId::TemplateUnknown,
        "template viewing_reminder is not registered",
        &[],
    ));

    // template_not_approved: every status but approved.
    for (status, fragment) in [
        (ApprovalStatus::Unsubmitted, "is unsubmitted, not approved"),
        (ApprovalStatus::Pending, "is pending, not approved"),
        (ApprovalStatus::Rejected, "is rejected, not approved"),
        (ApprovalStatus::Paused, "is paused, not approved"),
        (ApprovalStatus::Disabled, "is disabled, not approved"),
    ] {
        let mut fx = Fx::ready();
        fx.set_template(status, t0() - hours(1));
        let command = fx.default_template_send();
        cases.push(case(
            fx,
            command,
            RuleId::TemplateNotApproved,
            fragment,
            &[],
        ));
    }

    // template_variables: missing, unknown, empty (whitespace only).
    for (variables, fragment) in [
        (vars(&[]), "missing variables: 1"),
        (
            vars(&[("1", "Lea"), ("2", "Thu")]),
            "has no placeholders named 2",
        ),
        (vars(&[("1", "  ")]), "empty variables: 1"),
    ] {
        let mut fx = Fx::ready();
        let command = fx.template_send(variables);
        cases.push(case(fx, command, RuleId::TemplateVariables, fragment, &[]));
    }

    // workflow_not_allowed: none, outside the allowlist, not even a valid name.
    for (workflow, fragment) in [
        (None, "names no workflow"),
        (Some("open_chat"), "workflow \"open_chat\" is not allowed"),
        (Some("Open Chat"), "is not allowed (allowed: "),
    ] {
        let mut fx = Fx::ready();
        let mut command = fx.default_template_send();
        command.workflow = workflow.map(str::to_owned);
        cases.push(case(fx, command, RuleId::WorkflowNotAllowed, fragment, &[]));
    }

    // tier_limit: one other recipient reached an hour ago, limit 1.
    let mut fx = Fx::ready();
    fx.set_limit(MessagingLimit::Limited(1), t0() - hours(2));
    fx.apply(&[reached("+41790000002", 99, t0() - hours(1))]);
    let command = fx.default_template_send();
    cases.push(case(
        fx,
        command,
        RuleId::TierLimit,
        "reached 1 of its 1 unique recipients in the last 24 h",
        &[],
    ));

    // not_on_whatsapp.
    let mut fx = Fx::ready();
    fx.flag(ContactFlag::NotOnWhatsapp, t0() - hours(1));
    let command = fx.default_template_send();
    cases.push(case(
        fx,
        command,
        RuleId::NotOnWhatsapp,
        "was reported not to be a WhatsApp user",
        &[],
    ));

    // marketing_paused: only marketing templates.
    let mut fx = Fx::ready();
    fx.register_template(TemplateCategory::Marketing, &["1"], t0() - hours(2));
    fx.flag(ContactFlag::MarketingPaused, t0() - hours(1));
    let command = fx.default_template_send();
    cases.push(case(
        fx,
        command,
        RuleId::MarketingPaused,
        "stopped marketing messages from this business",
        &[],
    ));

    // sender_quality_dropped: marketing from a number the provider flagged.
    let mut fx = Fx::ready();
    fx.register_template(TemplateCategory::Marketing, &["1"], t0() - hours(2));
    let sender = fx.sender_address.clone();
    let drop = decide::report_sender_quality(&fx.sender, &sender, "FLAGGED", true, t0() - hours(1));
    fx.apply(&drop);
    let command = fx.default_template_send();
    cases.push(case(
        fx,
        command,
        RuleId::SenderQualityDropped,
        "quality dropped (FLAGGED)",
        &[],
    ));

    cases
}

pub fn reached(contact: &str, id: u64, at: Timestamp) -> wagate_domain::Event {
    PortfolioEvent::RecipientReached {
        portfolio: PortfolioId::parse("acme").expect("valid"),
        contact: contact_id(contact),
        message_id: message_id(1000 + id),
        at,
    }
    .into()
}

#[test]
fn every_rule_refuses_a_send_with_its_sentence() {
    let mut covered = BTreeSet::new();
    for case in send_cases() {
        let SendCase {
            mut fx,
            command,
            now,
            rule,
            fragment,
            also,
        } = case;
        let result = fx.send(&command, now);
        check_refusal(&result, rule, fragment, &also);
        // The refusal is recorded for the auditors.
        match fx.log.last() {
            Some(wagate_domain::Event::Message(MessageEvent::SendRefused {
                rule: recorded,
                message_id,
                also_broken,
                ..
            })) => {
                assert_eq!((*recorded, *message_id), (rule, command.message_id));
                assert_eq!(also_broken, &also, "{rule}: every broken rule is recorded");
            }
            other => panic!("{rule}: refusal not recorded, last event {other:?}"),
        }
        covered.insert(rule);
    }
    assert_eq!(
        covered.into_iter().collect::<Vec<_>>(),
        RuleId::ALL.to_vec(),
        "every rule has a send case"
    );
}

#[test]
fn the_ready_fixture_is_allowed() {
    // Guards the cases above: each breaks the fixture in one way only.
    let mut fx = Fx::ready();
    let command = fx.default_template_send();
    let message = fx.allowed(&command, t0());
    assert!(message.intent.is_some());
    let mut fx = Fx::ready();
    fx.inbound("text", "Hi", t0() - hours(1));
    let command = fx.freeform_send();
    assert!(fx.send(&command, t0()).is_ok());
}

#[test]
fn a_request_breaking_several_rules_names_the_first_and_lists_the_rest() {
    // Unregistered sender, opted-out contact, pending template with a missing variable, no
    // workflow: every rule broken is listed, in table order.
    let mut fx = Fx::ready();
    fx.sender = SenderState::default();
    fx.opt_out(t0() - hours(2));
    fx.set_template(ApprovalStatus::Pending, t0() - hours(1));
    let mut command = fx.template_send(vars(&[]));
    command.workflow = None;
    let result = fx.send(&command, t0());
    check_refusal(
        &result,
        RuleId::ChannelNotAuthorized,
        "is not registered",
        &[
            RuleId::OptedOut,
            RuleId::NoOptIn,
            RuleId::TemplateNotApproved,
            RuleId::TemplateVariables,
            RuleId::WorkflowNotAllowed,
        ],
    );

    // The tail of the table: tier, not on WhatsApp and marketing paused together.
    let mut fx = Fx::ready();
    fx.register_template(TemplateCategory::Marketing, &["1"], t0() - hours(3));
    fx.set_limit(MessagingLimit::Limited(0), t0() - hours(3));
    fx.flag(ContactFlag::NotOnWhatsapp, t0() - hours(2));
    fx.flag(ContactFlag::MarketingPaused, t0() - hours(1));
    let mut command = fx.default_template_send();
    command.workflow = Some("open_chat".into());
    let result = fx.send(&command, t0());
    check_refusal(
        &result,
        RuleId::WorkflowNotAllowed,
        "open_chat",
        &[
            RuleId::TierLimit,
            RuleId::NotOnWhatsapp,
            RuleId::MarketingPaused,
        ],
    );

    // An unknown template hides the checks that need its definition.
    let mut fx = Fx::ready();
    fx.template = TemplateState::default();
    fx.flag(ContactFlag::MarketingPaused, t0() - hours(1));
    let command = fx.template_send(vars(&[]));
    check_refusal(
        &fx.send(&command, t0()),
        RuleId::TemplateUnknown,
        "not registered",
        &[],
    );

    // An invalid number hides the checks that need a contact.
    let mut fx = Fx::ready();
    fx.contact = ContactState::default();
    let mut command = fx.freeform_send();
    command.to = Recipient::parse("nobody");
    command.workflow = None;
    check_refusal(
        &fx.send(&command, t0()),
        RuleId::InvalidNumber,
        "start with '+'",
        &[RuleId::WorkflowNotAllowed],
    );
}

#[test]
fn the_same_request_gets_the_same_answer() {
    let mut fx = Fx::ready();
    fx.sender = SenderState::default();
    fx.set_template(ApprovalStatus::Paused, t0() - hours(1));
    let command = fx.default_template_send();
    let first = decide::send(&fx.state(), &command, &fx.policy, t0());
    let second = decide::send(&fx.state(), &command, &fx.policy, t0());
    assert_eq!(first, second);
    assert!(first.refusal().is_some());
}

// ---------------------------------------------------------------------------------------------
// The re-check at dispatch.

/// A message allowed at `t0()` (built from its intent event, as the store would), then the world
/// changed: the claim must be refused with `rule`, and the message canceled.
#[track_caller]
fn check_claim_refused(
    fx: &mut Fx,
    message: &MessageState,
    now: Timestamp,
    rule: RuleId,
    fragment: &str,
) {
    let before = fx.log.len();
    match fx.claim(message, now) {
        ClaimDecision::Refused { refusal, events } => {
            assert_eq!(refusal.rule, rule, "{refusal}");
            assert!(
                refusal.message.contains(fragment),
                "{rule}: {:?} does not contain {fragment:?}",
                refusal.message
            );
            assert_eq!(type_names(&events), ["ClaimRefused"]);
            let after = fold_message(message.clone(), &events);
            assert_eq!(after.canceled_by, Some(rule));
            assert_eq!(after.status, MessageStatus::Canceled);
            assert_eq!(after.phase(), wagate_domain::DispatchPhase::Done);
            assert!(
                decide::claim(
                    &after,
                    &fx.state(),
                    &ClaimDispatch {
                        message_id: message.id.expect("id")
                    },
                    &fx.policy,
                    now
                )
                .is_err(),
                "a canceled message cannot be claimed again"
            );
        }
        ClaimDecision::Claimed { events, .. } => {
            panic!("expected {rule} at claim, got {:?}", type_names(&events))
        }
    }
    assert_eq!(fx.log.len(), before + 1);
}

/// A message state from a hand-made intent (a decision taken under an earlier state).
fn intent_for(contact: ContactId, template: &str, category: TemplateCategory) -> MessageState {
    MessageState::default().replay(&[MessageEvent::TemplateSent {
        media: Vec::new(),
        message_id: message_id(500),
        contact,
        sender: address(SENDER),
        template: template_id(template),
        category,
        variables: vec![("1".into(), "Lea".into())],
        workflow: Workflow::parse(WORKFLOW).expect("valid"),
        at: t0(),
    }])
}

#[test]
fn every_rule_is_rechecked_at_claim() {
    let later = t0() + mins(2);
    let mut covered = BTreeSet::new();
    let mut check = |fx: &mut Fx, message: &MessageState, now, rule, fragment| {
        check_claim_refused(fx, message, now, rule, fragment);
        covered.insert(rule);
    };

    // channel_not_authorized: the sender was suspended after the decision.
    let mut fx = Fx::ready();
    let command = fx.default_template_send();
    let message = fx.allowed(&command, t0());
    fx.suspend_sender(t0() + mins(1));
    check(
        &mut fx,
        &message,
        later,
        RuleId::ChannelNotAuthorized,
        "is suspended",
    );

    // invalid_number: an intent for a contact known only by a business-scoped id cannot be
    // dispatched to a number.
    let mut fx = Fx::ready();
    fx.contact = ContactState::default();
    let bsuid = ContactId::BusinessScoped(BusinessScopedUserId::parse("CO.123").expect("valid"));
    let message = intent_for(bsuid, TEMPLATE, TemplateCategory::Utility);
    check(
        &mut fx,
        &message,
        later,
        RuleId::InvalidNumber,
        "bsuid:CO.123",
    );

    // opted_out: STOP between decision and claim (freeform, so no other rule is involved).
    let mut fx = Fx::ready();
    fx.inbound("text", "Can I visit?", t0() - hours(1));
    let command = fx.freeform_send();
    let message = fx.allowed(&command, t0());
    fx.inbound("text", "STOP", t0() + mins(1));
    check(
        &mut fx,
        &message,
        later,
        RuleId::OptedOut,
        "opted out and has not opted in again",
    );

    // no_opt_in: an intent whose contact has no opt-in at dispatch time.
    let mut fx = Fx::ready();
    fx.contact = ContactState::default();
    let message = intent_for(contact_id(TO), TEMPLATE, TemplateCategory::Utility);
    check(
        &mut fx,
        &message,
        later,
        RuleId::NoOptIn,
        "no explicit opt-in",
    );

    // window_closed: the window (less the margin) ran out while the reply was queued.
    let mut fx = Fx::ready();
    fx.inbound("text", "Hi", t0() - hours(1));
    let command = fx.freeform_send();
    let message = fx.allowed(&command, t0());
    check(
        &mut fx,
        &message,
        t0() + hours(23) - mins(10),
        RuleId::WindowClosed,
        "is closed",
    );

    // template_unknown: the intent names a template this hub does not know.
    let mut fx = Fx::ready();
    let message = intent_for(contact_id(TO), "gone_template", TemplateCategory::Utility);
    fx.template = TemplateState::default();
    check(
        &mut fx,
        &message,
        later,
        RuleId::TemplateUnknown,
        "gone_template is not registered",
    );

    // template_not_approved: paused by Meta between decision and claim.
    let mut fx = Fx::ready();
    let command = fx.default_template_send();
    let message = fx.allowed(&command, t0());
    fx.set_template(ApprovalStatus::Paused, t0() + mins(1));
    check(
        &mut fx,
        &message,
        later,
        RuleId::TemplateNotApproved,
        "is paused",
    );

    // template_variables: the template was re-registered with a second placeholder.
    let mut fx = Fx::ready();
    let command = fx.default_template_send();
    let message = fx.allowed(&command, t0());
    fx.register_template(TemplateCategory::Utility, &["1", "2"], t0() + mins(1));
    check(
        &mut fx,
        &message,
        later,
        RuleId::TemplateVariables,
        "missing variables: 2",
    );

    // workflow_not_allowed: the allowlist changed.
    let mut fx = Fx::ready();
    let command = fx.default_template_send();
    let message = fx.allowed(&command, t0());
    fx.policy
        .workflows_allowed
        .retain(|workflow| workflow.as_str() != WORKFLOW);
    check(
        &mut fx,
        &message,
        later,
        RuleId::WorkflowNotAllowed,
        "is not allowed",
    );

    // tier_limit: decided inside the window (not counted), claimed after it closed, when the
    // portfolio was full.
    let mut fx = Fx::ready();
    fx.set_limit(MessagingLimit::Limited(1), t0() - hours(30));
    fx.inbound("text", "Hi", t0() - hours(23));
    let command = fx.default_template_send();
    let events = fx.send(&command, t0()).expect("allowed");
    assert_eq!(type_names(&events), ["TemplateSent"], "inside the window");
    let message = message_state(&events);
    fx.apply(&[reached("+41790000002", 1, t0() + mins(30))]);
    check(
        &mut fx,
        &message,
        t0() + hours(2),
        RuleId::TierLimit,
        "reached 1 of its 1",
    );

    // not_on_whatsapp: reported by a failed earlier message.
    let mut fx = Fx::ready();
    let command = fx.default_template_send();
    let message = fx.allowed(&command, t0());
    fx.flag(ContactFlag::NotOnWhatsapp, t0() + mins(1));
    check(
        &mut fx,
        &message,
        later,
        RuleId::NotOnWhatsapp,
        "not to be a WhatsApp user",
    );

    // marketing_paused: the contact stopped marketing between decision and claim.
    let mut fx = Fx::ready();
    fx.register_template(TemplateCategory::Marketing, &["1"], t0() - hours(1));
    let command = fx.default_template_send();
    let message = fx.allowed(&command, t0());
    fx.flag(ContactFlag::MarketingPaused, t0() + mins(1));
    check(
        &mut fx,
        &message,
        later,
        RuleId::MarketingPaused,
        "stopped marketing",
    );

    let mut fx = Fx::ready();
    fx.register_template(TemplateCategory::Marketing, &["1"], t0() - hours(1));
    let command = fx.default_template_send();
    let message = fx.allowed(&command, t0());
    let sender = fx.sender_address.clone();
    let drop =
        decide::report_sender_quality(&fx.sender, &sender, "DOWNGRADE", true, t0() + mins(1));
    fx.apply(&drop);
    check(
        &mut fx,
        &message,
        later,
        RuleId::SenderQualityDropped,
        "quality dropped (DOWNGRADE)",
    );

    assert_eq!(
        covered.into_iter().collect::<Vec<_>>(),
        RuleId::ALL.to_vec(),
        "every rule has a claim case"
    );
}

#[test]
fn a_claim_refusal_lists_every_broken_rule_in_order() {
    let mut fx = Fx::ready();
    let command = fx.default_template_send();
    let message = fx.allowed(&command, t0());
    fx.opt_out(t0() + mins(1));
    fx.set_template(ApprovalStatus::Disabled, t0() + mins(1));
    fx.flag(ContactFlag::NotOnWhatsapp, t0() + mins(1));
    match fx.claim(&message, t0() + mins(2)) {
        ClaimDecision::Refused { refusal, .. } => {
            assert_eq!(refusal.rule, RuleId::OptedOut);
            assert_eq!(
                refusal.also_broken,
                [
                    RuleId::NoOptIn,
                    RuleId::TemplateNotApproved,
                    RuleId::NotOnWhatsapp
                ]
            );
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}
