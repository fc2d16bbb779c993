//! The invariants, checked from the hub's log and the provider's call record alone. They do not
//! re-use the domain's folding or gates: each rule is re-read from the raw events, so a bug in
//! `decide` or `apply` cannot hide itself.

use std::collections::BTreeMap;
use std::fmt;

use wagate_domain::{
    ApprovalStatus, ContactEvent, ContactId, Event, MessageContent, MessageEvent, MessageId,
    MessageStatus, Retry, TemplateId, Timestamp, WhatsAppAddress,
};

use crate::hub::{self, Recorded, SimHub};
use crate::provider::ProviderCall;

/// A broken invariant, described for a person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation(pub String);

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Violation {}

fn fail<T>(message: String) -> Result<T, Violation> {
    Err(Violation(message))
}

/// Positions are contiguous from 0 and every stream's versions from 1.
pub fn log_is_contiguous(hub: &SimHub) -> Result<(), Violation> {
    let mut versions = BTreeMap::new();
    for (index, record) in hub.log().iter().enumerate() {
        if record.position != index as u64 {
            return fail(format!("position {} at index {index}", record.position));
        }
        if record.stream != record.event.stream() {
            return fail(format!("event at {index} filed under {}", record.stream));
        }
        let version = versions.entry(&record.stream).or_insert(0_u64);
        *version += 1;
        if record.version != *version {
            return fail(format!(
                "{} version {} at {index}, expected {version}",
                record.stream, record.version
            ));
        }
    }
    Ok(())
}

/// The claim event of one attempt: its position and time.
fn claim_of(log: &[Recorded], message: MessageId, attempt: u32) -> Option<(usize, Timestamp)> {
    log.iter()
        .enumerate()
        .find_map(|(index, record)| match &record.event {
            Event::Message(MessageEvent::DispatchClaimed {
                message_id,
                attempt: claimed,
                at,
            }) if *message_id == message && *claimed == attempt => Some((index, *at)),
            _ => None,
        })
}

/// Checks `calls[from..]` (earlier ones were checked when they were new: everything a call is
/// judged by lies in the log before its claim, which never changes). Returns how many calls
/// are checked now.
pub fn calls_were_allowed(
    hub: &SimHub,
    calls: &[ProviderCall],
    from: usize,
) -> Result<usize, Violation> {
    let log = hub.log();
    for (index, call) in calls.iter().enumerate().skip(from) {
        let what = format!("call {index} ({}#{})", call.message_id, call.attempt);
        // The claim precedes the call.
        let Some((claim, claimed_at)) = claim_of(log, call.message_id, call.attempt) else {
            return fail(format!("{what} has no claim in the log"));
        };
        if claim as u64 >= call.log_head {
            return fail(format!("{what} was made before its claim was appended"));
        }
        // At most one call per claim; a second call for a message only after a retryable
        // failure of the previous attempt was recorded.
        for earlier in &calls[..index] {
            if earlier.message_id != call.message_id {
                continue;
            }
            if earlier.attempt == call.attempt {
                return fail(format!("{what}: a second call for the same claim"));
            }
            let retry_recorded = log[..claim].iter().any(|record| {
                matches!(
                    &record.event,
                    Event::Message(MessageEvent::DispatchFailed {
                        message_id,
                        attempt,
                        retry: Retry::Retryable,
                        retry_at: Some(_),
                        ..
                    }) if *message_id == call.message_id && *attempt == earlier.attempt
                )
            });
            if !retry_recorded {
                return fail(format!(
                    "{what}: called again with no retryable failure recorded for attempt {}",
                    earlier.attempt
                ));
            }
        }
        check_gates_at_claim(hub, call, &log[..claim], claimed_at, &what)?;
    }
    Ok(calls.len())
}

/// The rules as they stood just before the claim.
fn check_gates_at_claim(
    hub: &SimHub,
    call: &ProviderCall,
    before: &[Recorded],
    claimed_at: Timestamp,
    what: &str,
) -> Result<(), Violation> {
    let contact = &call.request.to;
    let consent = before
        .iter()
        .filter(|record| hub::contact_of(&record.event) == Some(contact))
        .filter_map(|record| hub::is_consent(&record.event))
        .next_back();
    if consent == Some(false) {
        return fail(format!(
            "{what}: claimed after {contact} opted out with no re-opt-in"
        ));
    }
    let sender_ok = before
        .iter()
        .filter_map(|record| hub::sender_may_send(&record.event, &call.request.sender))
        .next_back();
    if sender_ok != Some(true) {
        return fail(format!(
            "{what}: the sender was not authorized at the claim"
        ));
    }
    match &call.request.content {
        MessageContent::Template { template, .. } => {
            if consent != Some(true) {
                return fail(format!("{what}: template claimed without an opt-in"));
            }
            let approval = approval_before(before, template);
            if approval != Some(ApprovalStatus::Approved) {
                return fail(format!(
                    "{what}: template {template} claimed while {approval:?}"
                ));
            }
        }
        MessageContent::Freeform { .. } | MessageContent::Rich(_) => {
            let open_until = window_open_until(hub, before, contact, &call.request.sender);
            if open_until.is_none_or(|until| claimed_at >= until) {
                return fail(format!(
                    "{what}: freeform claimed at {claimed_at} with the window closed \
                     (open until {open_until:?})"
                ));
            }
        }
    }
    Ok(())
}

fn approval_before(before: &[Recorded], template: &TemplateId) -> Option<ApprovalStatus> {
    let mut approval = None;
    for record in before {
        match hub::template_status(&record.event, template) {
            // Registration starts a template at pending; a re-registration keeps its status.
            Some(ApprovalStatus::Pending)
                if matches!(
                    record.event,
                    Event::Template(wagate_domain::TemplateEvent::Registered { .. })
                ) =>
            {
                approval.get_or_insert(ApprovalStatus::Pending);
            }
            Some(status) => approval = Some(status),
            None => {}
        }
    }
    approval
}

/// The window as the rule table defines it: 24 h after the newest message the person wrote to
/// `sender` (their time, never later than receipt), less the safety margin, unless the provider
/// reported that sender's window closed (63016/131047) and nothing was written at or after
/// that report.
fn window_open_until(
    hub: &SimHub,
    before: &[Recorded],
    contact: &ContactId,
    sender: &WhatsAppAddress,
) -> Option<Timestamp> {
    let mut last_inbound: Option<Timestamp> = None;
    let mut reported_closed: Option<Timestamp> = None;
    for record in before {
        match &record.event {
            Event::Contact(ContactEvent::InboundReceived {
                contact: c,
                sender: Some(to),
                provider_at,
                at,
                ..
            }) if c == contact && to == sender => {
                let written = provider_at.map_or(*at, |p| p.min(*at));
                last_inbound = Some(last_inbound.map_or(written, |last| last.max(written)));
                if reported_closed.is_some_and(|closed| closed <= written) {
                    reported_closed = None;
                }
            }
            Event::Contact(ContactEvent::WindowReportedClosed {
                contact: c,
                sender: to,
                at,
                ..
            }) if c == contact && to.as_ref().is_none_or(|to| to == sender) => {
                reported_closed = Some(*at);
            }
            _ => {}
        }
    }
    let last = last_inbound?;
    if reported_closed.is_some_and(|closed| closed >= last) {
        return None;
    }
    Some(last + wagate_domain::policy::WINDOW - hub.policy.window_safety_margin)
}

/// No message's status moves backwards between two observations, and nothing moves a
/// terminal one.
pub fn statuses_move_forward(
    hub: &SimHub,
    seen: &mut BTreeMap<MessageId, MessageStatus>,
) -> Result<(), Violation> {
    for (id, message) in hub.messages() {
        let now = &message.status;
        if let Some(before) = seen.get(id) {
            let forward = before == now
                || (!before.is_terminal()
                    && match (before.rank(), now.rank()) {
                        (Some(before), Some(now)) => now > before,
                        (Some(before), None) => {
                            now.is_failure() && Some(before) < MessageStatus::Delivered.rank()
                        }
                        (None, _) => false,
                    });
            if !forward {
                return fail(format!("message {id} moved from {before} to {now}"));
            }
        }
        seen.insert(*id, now.clone());
    }
    Ok(())
}

/// A dispatcher restarted from the saved checkpoint still sees every open message.
pub fn checkpoint_passes_no_open_message(hub: &SimHub) -> Result<(), Violation> {
    let checkpoint = hub.checkpoint();
    for intent in hub.open_intents() {
        if intent.position < checkpoint {
            return fail(format!(
                "checkpoint {checkpoint} passed open message {} at {}",
                intent.message_id, intent.position
            ));
        }
    }
    Ok(())
}
