//! The confirmation template of a double opt-in (issue 15, point 3): the one business-initiated
//! message a pending opt-in permits, and the person's answer to it.
//!
//! A pending opt-in (`OptInRequested` for campaign C) is not consent: every template to that
//! contact stays refused by `no_opt_in`. [`permits_confirmation`] names the single exception:
//! C's confirmation template, from C's sender, to that contact, sent under the workflow
//! [`CONFIRMATION_WORKFLOW`], within [`CONFIRMATION_BOUND`] after the request, while C is open
//! and the contact has not opted out since the request, and only once per request. It is safe
//! because the person asked for exactly this message a moment ago on C's page, the message can
//! only ask them to confirm, and it cannot repeat.
//!
//! [`confirm_by_answer`] is the other half: the person's signed answer to C's sender within the
//! bound (a word of [`CONFIRMATION_ANSWERS`] or the template's quick-reply payload,
//! [`confirmation_payload`]) confirms the pending request exactly as the campaign code does
//! ([`crate::consent::confirm`]), so the receipt is the same.
//!
//! `gates::check` applies the exception at `no_opt_in` (so the dispatcher's claim, which re-runs
//! the gates, agrees), and the send decision records `OptInConfirmationSent` beside the
//! `TemplateSent`, which is how the second confirmation is refused.

use chrono::{SubsecRound, TimeDelta};

use crate::consent::{confirm, Campaign, CodeMessage, ConsentState, NotConfirmed, Wording};
use crate::events::Event;
use crate::ids::{MessageId, TemplateId, WhatsAppAddress};
use crate::{ContactState, Timestamp};

/// The workflow a confirmation send names: the send says it is the confirmation, so the
/// exception never applies to a send that merely happens to use the same template.
pub const CONFIRMATION_WORKFLOW: &str = "consent_confirmation";

/// How long after the form submission the confirmation may be sent, and answered.
pub const CONFIRMATION_BOUND: TimeDelta = TimeDelta::hours(24);

/// The answers (compared trimmed, case and a trailing `!` or `.` ignored) that confirm: English,
/// German, French, Italian, Spanish, Dutch, Portuguese.
pub const CONFIRMATION_ANSWERS: [&str; 9] = [
    "yes",
    "ja",
    "oui",
    "si",
    "sí",
    "sì",
    "yes please",
    "sim",
    "confirm",
];

/// The quick-reply payload a campaign's confirmation template carries on its "yes" button.
pub fn confirmation_payload(campaign: &str) -> String {
    format!("{campaign}:CONFIRM")
}

/// The pending opt-in a confirmation send is judged against.
#[derive(Debug, Clone, Copy)]
pub struct PendingConfirmation<'a> {
    pub campaign: &'a Campaign,
    /// The campaign's confirmation template (`None`: the campaign has none, nothing is
    /// permitted).
    pub confirmation_template: Option<&'a TemplateId>,
    /// When the contact's newest request for the campaign was recorded.
    pub requested_at: Timestamp,
    /// The message already allowed as this request's confirmation, if any.
    pub sent: Option<MessageId>,
}

/// What the gates carry for a send naming [`CONFIRMATION_WORKFLOW`]: the contact's pending
/// opt-in and the send's own id.
#[derive(Debug, Clone, Copy)]
pub struct ConfirmationCheck<'a> {
    pub pending: PendingConfirmation<'a>,
    pub message_id: MessageId,
}

/// The send asking to be the confirmation.
#[derive(Debug, Clone, Copy)]
pub struct ConfirmationSend<'a> {
    pub message_id: MessageId,
    pub sender: &'a WhatsAppAddress,
    pub template: &'a TemplateId,
    pub workflow: Option<&'a str>,
    /// The contact's state (all linked identities merged, as the gates see it).
    pub contact: &'a ContactState,
}

/// Why a send is not the permitted confirmation (it then stays refused by `no_opt_in`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotPermitted {
    #[error("the send does not name the workflow {CONFIRMATION_WORKFLOW}")]
    NotConfirmationWorkflow,
    #[error("campaign {0} has no confirmation template")]
    NoTemplate(String),
    #[error("only campaign {campaign}'s confirmation template {expected} may be sent")]
    OtherTemplate { campaign: String, expected: String },
    #[error("the confirmation goes only from campaign {campaign}'s sender {expected}")]
    OtherSender { campaign: String, expected: String },
    #[error("campaign {0} is closed")]
    Closed(String),
    #[error("the confirmation may be sent only within 24 h of the form submission")]
    Late,
    #[error("the contact opted out after the form submission")]
    OptedOutSince,
    #[error("this request's confirmation was already sent")]
    AlreadySent,
}

/// Whether `send` is the one message the pending opt-in permits. The same message judged again
/// (the dispatcher's claim re-runs the gates) is still permitted: `sent` is that message.
pub fn permits_confirmation(
    pending: &PendingConfirmation<'_>,
    send: &ConfirmationSend<'_>,
    now: Timestamp,
) -> Result<(), NotPermitted> {
    let code = &pending.campaign.code;
    if send.workflow != Some(CONFIRMATION_WORKFLOW) {
        return Err(NotPermitted::NotConfirmationWorkflow);
    }
    let Some(expected) = pending.confirmation_template else {
        return Err(NotPermitted::NoTemplate(code.clone()));
    };
    if send.template != expected {
        return Err(NotPermitted::OtherTemplate {
            campaign: code.clone(),
            expected: expected.to_string(),
        });
    }
    if send.sender != &pending.campaign.sender {
        return Err(NotPermitted::OtherSender {
            campaign: code.clone(),
            expected: pending.campaign.sender.to_string(),
        });
    }
    if pending
        .campaign
        .closed_at
        .is_some_and(|closed| closed <= now)
    {
        return Err(NotPermitted::Closed(code.clone()));
    }
    if now < pending.requested_at || now > pending.requested_at + CONFIRMATION_BOUND {
        return Err(NotPermitted::Late);
    }
    if send.contact.is_opted_out()
        || send
            .contact
            .last_opt_out_at
            .is_some_and(|stop| stop >= pending.requested_at)
    {
        return Err(NotPermitted::OptedOutSince);
    }
    if pending.sent.is_some_and(|sent| sent != send.message_id) {
        return Err(NotPermitted::AlreadySent);
    }
    Ok(())
}

/// Whether an inbound's text or button payload answers `campaign`'s confirmation with yes.
pub fn is_confirmation_answer(text: Option<&str>, payload: Option<&str>, campaign: &str) -> bool {
    if payload.is_some_and(|p| p.trim() == confirmation_payload(campaign)) {
        return true;
    }
    text.is_some_and(|text| {
        let word = text
            .trim()
            .trim_end_matches(['!', '.'])
            .trim()
            .to_lowercase();
        CONFIRMATION_ANSWERS.contains(&word.as_str())
    })
}

/// Why an answer confirmed nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AnswerRefused {
    /// Neither a confirming word nor the template's payload.
    NotAnAnswer,
    /// No request for the campaign from this contact.
    NoPendingRequest,
    /// Written more than [`CONFIRMATION_BOUND`] after the newest request.
    Late,
    /// As a campaign-code confirmation would be refused.
    Confirmation(NotConfirmed),
}

/// The person's signed answer (`text` / `payload`) to `campaign`'s confirmation template:
/// confirms their newest pending request exactly as a message carrying the campaign code does.
#[allow(clippy::too_many_arguments)]
pub fn confirm_by_answer(
    campaign: &Campaign,
    wording: &Wording,
    requests: &ConsentState,
    contact: &ContactState,
    message: &CodeMessage,
    text: Option<&str>,
    payload: Option<&str>,
    now: Timestamp,
) -> Result<Vec<Event>, AnswerRefused> {
    if !is_confirmation_answer(text, payload, &campaign.code) {
        return Err(AnswerRefused::NotAnAnswer);
    }
    let Some(request) = requests
        .requests
        .iter()
        .rev()
        .find(|r| r.campaign == campaign.code)
    else {
        return Err(AnswerRefused::NoPendingRequest);
    };
    // Meta dates a message in whole seconds: an answer in the request's own second counts.
    let earliest = request.at.trunc_subsecs(0);
    if message.written_at < earliest || message.written_at > request.at + CONFIRMATION_BOUND {
        return Err(AnswerRefused::Late);
    }
    confirm(campaign, wording, requests, contact, message, now).map_err(AnswerRefused::Confirmation)
}

#[cfg(test)]
#[path = "consent_confirmation_tests.rs"]
mod tests;
