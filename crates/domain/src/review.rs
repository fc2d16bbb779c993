//! The review queue's decisions: which events need a person (and why), what resolving each
//! means, and the time-based checks (a message with no terminal status after a while). Pure:
//! the app's projection and the alert outbox call the same [`raised_by`], so the queue and the
//! alerts cannot disagree about what is an item.

use std::collections::BTreeSet;
use std::fmt;

use crate::endpoints::EndpointEvent;
use crate::events::{
    ApprovalStatus, ContactEvent, ContactFlag, Event, MessageEvent, ProviderEvent, ReviewEvent,
    SenderEvent, TemplateEvent,
};
use crate::ids::{ContactId, MessageId, PhoneNumber, TemplateId, WhatsAppAddress};
use crate::{Aggregate, Retry, Timestamp};

/// Why an item needs a person. The names are the API's `reason` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ReviewReason {
    /// Free text that mentions opting out (`OptOutReviewRequested`).
    OptOutRequest,
    /// A send failed for good: the contact needs manual outreach.
    PermanentFailure,
    /// The contact is not on WhatsApp (63003, 63024, 131026): the SMS fallback signal.
    NotOnWhatsapp,
    /// A claimed send with no outcome expired: it may or may not have gone out.
    InDoubtExpired,
    /// A send failed after its last retry.
    RetriesExhausted,
    /// A sender was suspended (by a provider follow-up or an operator).
    SenderSuspended,
    /// A template was rejected, paused or disabled (an operator's approval change or a status
    /// the provider reported).
    TemplateNotSendable,
    /// The provider reported a phone number's quality dropped (Meta's
    /// `phone_number_quality_update` `FLAGGED` or `DOWNGRADE`): its messaging limit may follow.
    QualityDrop,
    /// A message with no terminal status long after it was sent (raised by a watcher).
    NoTerminalStatus,
    /// No provider callbacks for a while although messages are in flight (raised by a watcher).
    WebhookSilence,
    /// A burst of rejected webhooks, for example a wrong public URL (raised by a watcher).
    WebhookRejections,
    /// The alert endpoint kept failing: alerts are not reaching people.
    AlertDeliveryFailed,
    /// HubSpot refused to take a record of the CRM mirror (a contact it cannot create, a
    /// property it does not know): that record is missing from the timeline.
    CrmSyncFailed,
    /// An outgoing webhook endpoint failed for longer than the threshold and was disabled
    /// (`WebhookEndpointDisabled`): its receiver gets nothing until it is retried.
    WebhookEndpointDisabled,
}

impl ReviewReason {
    pub const ALL: [Self; 14] = [
        Self::OptOutRequest,
        Self::PermanentFailure,
        Self::NotOnWhatsapp,
        Self::InDoubtExpired,
        Self::RetriesExhausted,
        Self::SenderSuspended,
        Self::TemplateNotSendable,
        Self::QualityDrop,
        Self::NoTerminalStatus,
        Self::WebhookSilence,
        Self::WebhookRejections,
        Self::AlertDeliveryFailed,
        Self::CrmSyncFailed,
        Self::WebhookEndpointDisabled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::OptOutRequest => "opt_out_request",
            Self::PermanentFailure => "permanent_failure",
            Self::NotOnWhatsapp => "not_on_whatsapp",
            Self::InDoubtExpired => "in_doubt_expired",
            Self::RetriesExhausted => "retries_exhausted",
            Self::SenderSuspended => "sender_suspended",
            Self::TemplateNotSendable => "template_not_sendable",
            Self::QualityDrop => "quality_drop",
            Self::NoTerminalStatus => "no_terminal_status",
            Self::WebhookSilence => "webhook_silence",
            Self::WebhookRejections => "webhook_rejections",
            Self::AlertDeliveryFailed => "alert_delivery_failed",
            Self::CrmSyncFailed => "crm_sync_failed",
            Self::WebhookEndpointDisabled => "webhook_endpoint_disabled",
        }
    }

    pub fn parse(input: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|reason| reason.as_str() == input)
    }

    /// For people: what happened.
    pub fn title(self) -> &'static str {
        match self {
            Self::OptOutRequest => "Possible opt-out in free text",
            Self::PermanentFailure => "Message failed permanently",
            Self::NotOnWhatsapp => "Contact is not on WhatsApp",
            Self::InDoubtExpired => "Send in doubt expired",
            Self::RetriesExhausted => "Send failed after its last retry",
            Self::SenderSuspended => "Sender suspended",
            Self::TemplateNotSendable => "Template can no longer be sent",
            Self::QualityDrop => "Phone number quality dropped",
            Self::NoTerminalStatus => "Message has no final status",
            Self::WebhookSilence => "Provider webhooks went silent",
            Self::WebhookRejections => "Burst of rejected webhooks",
            Self::AlertDeliveryFailed => "Alerts are not being delivered",
            Self::CrmSyncFailed => "A record did not reach HubSpot",
            Self::WebhookEndpointDisabled => "A webhook endpoint was disabled",
        }
    }

    /// For people: what resolving the item means.
    pub fn resolving(self) -> &'static str {
        match self {
            Self::OptOutRequest => {
                "read the text: `confirm_opt_out` records the opt-out, `dismiss` if it is not one"
            }
            Self::PermanentFailure | Self::RetriesExhausted => {
                "reach the contact another way (manual outreach), then `handled`"
            }
            Self::NotOnWhatsapp => "reach the contact by SMS or phone, then `handled`",
            Self::InDoubtExpired => {
                "check with the provider whether it went out; never re-send blindly; then `handled`"
            }
            Self::SenderSuspended => {
                "fix the sender at the provider and re-authorize it, then `handled`"
            }
            Self::TemplateNotSendable => {
                "fix or replace the template at the provider, then `handled`"
            }
            Self::QualityDrop => {
                "read the recent replies and blocks in WhatsApp Manager, slow or pause the campaigns that cause them, then `handled`"
            }
            Self::NoTerminalStatus => "look the message up at the provider, then `handled`",
            Self::WebhookSilence | Self::WebhookRejections => {
                "check the provider's webhook settings and the public URL, then `handled`"
            }
            Self::AlertDeliveryFailed => "fix the alert webhook URL, then `handled`",
            Self::CrmSyncFailed => {
                "fix the cause in HubSpot (the detail says which), then `wagate crm backfill`, then `handled`"
            }
            Self::WebhookEndpointDisabled => {
                "fix the receiver, then `wagate endpoints retry ID` (it resumes where it stopped), then `handled`"
            }
        }
    }

    /// The decisions that resolve an item of this reason.
    pub fn decisions(self) -> &'static [ReviewDecision] {
        match self {
            Self::OptOutRequest => &[ReviewDecision::ConfirmOptOut, ReviewDecision::Dismiss],
            _ => &[ReviewDecision::Handled, ReviewDecision::Dismiss],
        }
    }
}

impl fmt::Display for ReviewReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a person resolved an item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReviewDecision {
    /// The free text was an opt-out: record it (an `OptedOut` by an operator).
    ConfirmOptOut,
    /// Nothing to do (not an opt-out, a false alarm).
    Dismiss,
    /// Dealt with outside wagate (manual outreach, provider settings fixed).
    Handled,
}

impl ReviewDecision {
    pub const ALL: [Self; 3] = [Self::ConfirmOptOut, Self::Dismiss, Self::Handled];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::ConfirmOptOut => "confirm_opt_out",
            Self::Dismiss => "dismiss",
            Self::Handled => "handled",
        }
    }

    pub fn parse(input: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|d| d.as_str() == input)
    }
}

/// What an item is about (each part when known).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReviewSubject {
    pub contact: Option<ContactId>,
    pub message_id: Option<MessageId>,
    pub sender: Option<WhatsAppAddress>,
    pub template: Option<TemplateId>,
}

/// An item an event raises.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Raise {
    pub reason: ReviewReason,
    pub subject: ReviewSubject,
    /// For people: the free text, the error, the reason given.
    pub detail: String,
    pub at: Timestamp,
}

/// The item `event` raises, if any. One event raises at most one item, so the raising event's
/// log position is the item's id, stable across rebuilds.
pub fn raised_by(event: &Event) -> Option<Raise> {
    let subject = ReviewSubject::default();
    let (reason, subject, detail) = match event {
        Event::Contact(ContactEvent::OptOutReviewRequested { contact, text, .. }) => (
            ReviewReason::OptOutRequest,
            ReviewSubject {
                contact: Some(contact.clone()),
                ..subject
            },
            text.clone(),
        ),
        Event::Contact(ContactEvent::FlagRaised {
            contact,
            flag: ContactFlag::NotOnWhatsapp,
            reason,
            ..
        }) => (
            ReviewReason::NotOnWhatsapp,
            ReviewSubject {
                contact: Some(contact.clone()),
                ..subject
            },
            reason.clone(),
        ),
        Event::Message(MessageEvent::DispatchFailed {
            message_id,
            error,
            retry,
            retry_at: None,
            ..
        }) => (
            match retry {
                Retry::Permanent => ReviewReason::PermanentFailure,
                Retry::Retryable => ReviewReason::RetriesExhausted,
            },
            ReviewSubject {
                message_id: Some(*message_id),
                ..subject
            },
            error.to_string(),
        ),
        // A failure the provider reported after accepting the message.
        Event::Message(MessageEvent::StatusChanged {
            message_id,
            status,
            error_code,
            ..
        }) if status.is_failure() => (
            ReviewReason::PermanentFailure,
            ReviewSubject {
                message_id: Some(*message_id),
                ..subject
            },
            match error_code {
                Some(code) => format!("{} (error {code})", status.as_str()),
                None => status.as_str().to_owned(),
            },
        ),
        Event::Message(MessageEvent::InDoubtExpired {
            message_id,
            attempt,
            ..
        }) => (
            ReviewReason::InDoubtExpired,
            ReviewSubject {
                message_id: Some(*message_id),
                ..subject
            },
            format!("attempt {attempt} has no recorded outcome"),
        ),
        Event::Sender(SenderEvent::Suspended { sender, reason, .. }) => (
            ReviewReason::SenderSuspended,
            ReviewSubject {
                sender: Some(sender.clone()),
                ..subject
            },
            reason.clone(),
        ),
        Event::Template(TemplateEvent::ApprovalChanged {
            template,
            status:
                status @ (ApprovalStatus::Rejected | ApprovalStatus::Paused | ApprovalStatus::Disabled),
            reason,
            ..
        }) => (
            ReviewReason::TemplateNotSendable,
            ReviewSubject {
                template: Some(template.clone()),
                ..subject
            },
            format!("{}: {reason}", status.as_str()),
        ),
        // What the provider reports (the template-creation work's status sync and webhooks):
        // the same rule as an operator's approval change.
        Event::Template(TemplateEvent::StatusReported {
            template,
            status:
                status @ (ApprovalStatus::Rejected | ApprovalStatus::Paused | ApprovalStatus::Disabled),
            reason,
            ..
        }) => (
            ReviewReason::TemplateNotSendable,
            ReviewSubject {
                template: Some(template.clone()),
                ..subject
            },
            if reason.is_empty() {
                format!("reported {} by the provider", status.as_str())
            } else {
                format!("reported {} by the provider: {reason}", status.as_str())
            },
        ),
        Event::Provider(ProviderEvent::NoticeReceived { kind, details, .. }) => {
            let (sender, detail) = quality_drop(kind, details)?;
            (
                ReviewReason::QualityDrop,
                ReviewSubject { sender, ..subject },
                detail,
            )
        }
        Event::Review(ReviewEvent::Raised {
            reason,
            subject: raised,
            detail,
            ..
        }) => (*reason, raised.clone(), detail.clone()),
        Event::Endpoint(EndpointEvent::Disabled {
            endpoint,
            reason,
            failing_since,
            ..
        }) => (
            ReviewReason::WebhookEndpointDisabled,
            subject,
            format!(
                "webhook endpoint {endpoint} disabled: failing since {}: {reason}",
                failing_since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            ),
        ),
        _ => return None,
    };
    Some(Raise {
        reason,
        subject,
        detail,
        at: event.at(),
    })
}

/// Meta's quality events that mean a drop (the providers crate's account signals use the same
/// two): `FLAGGED` (quality is low; the number may be limited) and `DOWNGRADE` (it was).
const QUALITY_DROPS: [&str; 2] = ["FLAGGED", "DOWNGRADE"];

/// A quality drop in a recorded notice: the number it names (as a sender address, when it is a
/// number) and, for people, what Meta said.
fn quality_drop(
    kind: &str,
    details: &[(String, String)],
) -> Option<(Option<WhatsAppAddress>, String)> {
    if kind != "phone_number_quality_update" {
        return None;
    }
    let get = |key: &str| {
        details
            .iter()
            .find(|(name, _)| name == key)
            .map(|(_, value)| value.as_str())
    };
    let event = get("value.event")?.trim().to_ascii_uppercase();
    if !QUALITY_DROPS.contains(&event.as_str()) {
        return None;
    }
    let display = get("value.display_phone_number");
    let sender = display.and_then(|display| {
        let digits: String = display.chars().filter(char::is_ascii_digit).collect();
        PhoneNumber::parse(&format!("+{digits}"))
            .ok()
            .map(WhatsAppAddress::from_number)
    });
    let mut detail = format!("Meta reported quality {event}");
    if let Some(display) = display {
        detail.push_str(&format!(" for {display}"));
    }
    if let Some(limit) = get("value.current_limit") {
        detail.push_str(&format!(" (current limit {limit})"));
    }
    Some((sender, detail))
}

/// The review stream's state: which items are resolved.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReviewState {
    pub resolved: BTreeSet<u64>,
    /// Messages a watcher already raised `no_terminal_status` for (raised once per message).
    pub overdue_raised: BTreeSet<MessageId>,
    /// When the last `webhook_rejections` item was raised (one per burst window).
    pub rejections_raised_at: Option<Timestamp>,
    /// When the last `webhook_silence` item was raised (one per silence: the next needs a
    /// callback after it).
    pub silence_raised_at: Option<Timestamp>,
}

impl Aggregate for ReviewState {
    type Event = ReviewEvent;

    fn apply(mut self, event: &ReviewEvent) -> Self {
        match event {
            ReviewEvent::Resolved { item, .. } => {
                self.resolved.insert(*item);
            }
            ReviewEvent::Raised {
                reason: ReviewReason::NoTerminalStatus,
                subject:
                    ReviewSubject {
                        message_id: Some(message_id),
                        ..
                    },
                ..
            } => {
                self.overdue_raised.insert(*message_id);
            }
            ReviewEvent::Raised {
                reason: ReviewReason::WebhookRejections,
                at,
                ..
            } => {
                self.rejections_raised_at = Some(*at);
            }
            ReviewEvent::Raised {
                reason: ReviewReason::WebhookSilence,
                at,
                ..
            } => {
                self.silence_raised_at = Some(*at);
            }
            ReviewEvent::Raised { .. } => {}
        }
        self
    }
}

/// Why a resolution was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReviewError {
    #[error("review item {0} is already resolved")]
    AlreadyResolved(u64),
    #[error("decision `{decision}` does not resolve a `{reason}` item (use one of: {allowed})")]
    DecisionNotAllowed {
        decision: &'static str,
        reason: ReviewReason,
        allowed: String,
    },
}

/// Resolves item `item` (raised for `raise`) with `decision`: the `Resolved` event and, for a
/// confirmed free-text opt-out, the contact's `OptedOut` (by an operator, dated now).
pub fn resolve(
    state: &ReviewState,
    item: u64,
    raise: &Raise,
    decision: ReviewDecision,
    note: &str,
    now: Timestamp,
) -> Result<Vec<Event>, ReviewError> {
    if state.resolved.contains(&item) {
        return Err(ReviewError::AlreadyResolved(item));
    }
    if !raise.reason.decisions().contains(&decision) {
        return Err(ReviewError::DecisionNotAllowed {
            decision: decision.as_str(),
            reason: raise.reason,
            allowed: raise
                .reason
                .decisions()
                .iter()
                .map(|d| d.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        });
    }
    let mut events = vec![Event::Review(ReviewEvent::Resolved {
        item,
        reason: raise.reason,
        decision,
        note: note.to_owned(),
        at: now,
    })];
    if let (ReviewDecision::ConfirmOptOut, Some(contact)) = (decision, &raise.subject.contact) {
        events.push(Event::Contact(ContactEvent::OptedOut {
            contact: contact.clone(),
            source: crate::OptOutSource::Operator,
            detail: format!("review item {item}: {note}"),
            evidence_at: raise.at,
            at: now,
        }));
    }
    Ok(events)
}

/// What counts as a burst of rejected webhooks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RejectionBurst {
    /// At least this many rejections…
    pub threshold: usize,
    /// …within this long; at most one item is raised per window.
    pub window: chrono::Duration,
}

impl Default for RejectionBurst {
    fn default() -> Self {
        RejectionBurst {
            threshold: 20,
            window: chrono::Duration::minutes(5),
        }
    }
}

/// A `webhook_rejections` item when at least `burst.threshold` of the rejections at `times`
/// fall within the window before `now`, unless one was raised within the window already.
pub fn webhook_rejections(
    state: &ReviewState,
    times: &[Timestamp],
    now: Timestamp,
    burst: RejectionBurst,
) -> Option<Event> {
    if state
        .rejections_raised_at
        .is_some_and(|raised| now - raised < burst.window)
    {
        return None;
    }
    let recent = times.iter().filter(|at| now - **at < burst.window).count();
    if recent < burst.threshold {
        return None;
    }
    Some(Event::Review(ReviewEvent::Raised {
        reason: ReviewReason::WebhookRejections,
        subject: ReviewSubject::default(),
        detail: format!(
            "{recent} webhooks rejected in the last {} minutes (a wrong public URL or secret?): see the rejection log",
            burst.window.num_minutes()
        ),
        at: now,
    }))
}

/// What the webhook-silence watcher sees: the callbacks that arrived and the messages that wait
/// for their first one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Callbacks {
    /// When the last status callback of any message arrived (`None`: none since the log began).
    pub last: Option<Timestamp>,
    /// Messages the provider accepted that have had no status callback yet.
    pub in_flight: usize,
    /// When the oldest of them was accepted.
    pub oldest_in_flight: Option<Timestamp>,
}

/// A `webhook_silence` item when messages are in flight and no status callback arrived for at
/// least `after`: silent since the later of the last callback and the oldest in-flight message's
/// acceptance (a message accepted a moment ago has had no time for its callback yet). Raised
/// once per silence: not again until a callback arrived after the last item.
pub fn webhook_silence(
    state: &ReviewState,
    callbacks: Callbacks,
    now: Timestamp,
    after: chrono::Duration,
) -> Option<Event> {
    let oldest = callbacks
        .oldest_in_flight
        .filter(|_| callbacks.in_flight > 0)?;
    if state
        .silence_raised_at
        .is_some_and(|raised| callbacks.last.is_none_or(|last| last <= raised))
    {
        return None;
    }
    let silent_since = callbacks.last.map_or(oldest, |last| last.max(oldest));
    if now - silent_since < after {
        return None;
    }
    let last = match callbacks.last {
        Some(last) => format!(
            "the last one arrived {} minutes ago",
            (now - last).num_minutes()
        ),
        None => "none has arrived since the log began".to_owned(),
    };
    let waiting = match callbacks.in_flight {
        1 => "1 message waits".to_owned(),
        n => format!("{n} messages wait"),
    };
    Some(Event::Review(ReviewEvent::Raised {
        reason: ReviewReason::WebhookSilence,
        subject: ReviewSubject::default(),
        detail: format!(
            "{waiting} for a first status callback, the oldest accepted {} minutes ago; {last} (webhook URL or provider settings broken?)",
            (now - oldest).num_minutes()
        ),
        at: now,
    }))
}

/// Whether a message sent at `sent_at` and still without a terminal status at `now` is overdue
/// (older than `after`), and not yet raised.
pub fn no_terminal_status(
    state: &ReviewState,
    message_id: MessageId,
    sent_at: Timestamp,
    now: Timestamp,
    after: chrono::Duration,
) -> Option<Event> {
    if state.overdue_raised.contains(&message_id) || now - sent_at < after {
        return None;
    }
    Some(Event::Review(ReviewEvent::Raised {
        reason: ReviewReason::NoTerminalStatus,
        subject: ReviewSubject {
            message_id: Some(message_id),
            ..ReviewSubject::default()
        },
        detail: format!(
            "no final status {} minutes after it was sent",
            (now - sent_at).num_minutes()
        ),
        at: now,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::ProviderError;
    use crate::status::MessageStatus;
    use crate::ProviderKind;

    fn at(minutes: i64) -> Timestamp {
        chrono::DateTime::from_timestamp(1_764_000_000 + minutes * 60, 0).expect("time")
    }

    fn message_id() -> MessageId {
        MessageId::from_uuid(uuid_v7()).expect("id")
    }

    fn uuid_v7() -> uuid::Uuid {
        uuid::Uuid::from_u128(0x0190_b5a2_7c1e_7000_8000_0000_0000_0001)
    }

    fn failed(retry: Retry, retry_at: Option<Timestamp>) -> Event {
        MessageEvent::DispatchFailed {
            message_id: message_id(),
            attempt: 3,
            error: ProviderError {
                provider: ProviderKind::Twilio,
                code: Some(21211),
                http_status: Some(400),
                message: "invalid number".into(),
            },
            retry,
            retry_at,
            at: at(0),
        }
        .into()
    }

    #[test]
    fn a_final_failure_raises_by_its_retry_class_and_a_scheduled_retry_raises_nothing() {
        let permanent = raised_by(&failed(Retry::Permanent, None)).expect("raised");
        assert_eq!(permanent.reason, ReviewReason::PermanentFailure);
        assert_eq!(permanent.subject.message_id, Some(message_id()));
        let exhausted = raised_by(&failed(Retry::Retryable, None)).expect("raised");
        assert_eq!(exhausted.reason, ReviewReason::RetriesExhausted);
        assert_eq!(raised_by(&failed(Retry::Retryable, Some(at(5)))), None);
    }

    #[test]
    fn only_unsendable_template_statuses_raise() {
        let changed = |status| {
            Event::from(TemplateEvent::ApprovalChanged {
                template: TemplateId::parse("t1").expect("template"),
                status,
                reason: "quality".into(),
                at: at(0),
            })
        };
        for status in [
            ApprovalStatus::Rejected,
            ApprovalStatus::Paused,
            ApprovalStatus::Disabled,
        ] {
            assert_eq!(
                raised_by(&changed(status)).map(|r| r.reason),
                Some(ReviewReason::TemplateNotSendable)
            );
        }
        assert_eq!(raised_by(&changed(ApprovalStatus::Approved)), None);
    }

    #[test]
    fn a_failed_status_callback_raises_a_permanent_failure_and_a_delivery_does_not() {
        let status = |status| {
            Event::from(MessageEvent::StatusChanged {
                message_id: message_id(),
                provider_ref: None,
                status,
                error_code: Some(63016),
                details: Vec::new(),
                at: at(0),
                pricing: None,
            })
        };
        let raise = raised_by(&status(MessageStatus::Failed)).expect("raised");
        assert_eq!(raise.reason, ReviewReason::PermanentFailure);
        assert!(raise.detail.contains("63016"), "{}", raise.detail);
        assert_eq!(raised_by(&status(MessageStatus::Delivered)), None);
    }

    fn opt_out_raise() -> Raise {
        raised_by(&Event::from(ContactEvent::OptOutReviewRequested {
            contact: ContactId::parse("+41790000001").expect("contact"),
            text: "bitte keine Nachrichten mehr".into(),
            matched: "nachrichten mehr".into(),
            at: at(0),
        }))
        .expect("raised")
    }

    #[test]
    fn confirming_an_opt_out_request_records_the_opt_out_by_an_operator() {
        let raise = opt_out_raise();
        let events = resolve(
            &ReviewState::default(),
            12,
            &raise,
            ReviewDecision::ConfirmOptOut,
            "asked by phone",
            at(10),
        )
        .expect("resolved");
        assert_eq!(events.len(), 2);
        assert!(matches!(
            &events[0],
            Event::Review(ReviewEvent::Resolved { item: 12, .. })
        ));
        assert!(matches!(
            &events[1],
            Event::Contact(ContactEvent::OptedOut { source: crate::OptOutSource::Operator, evidence_at, .. })
                if *evidence_at == at(0)
        ));
    }

    #[test]
    fn resolving_twice_or_with_a_foreign_decision_is_refused() {
        let raise = opt_out_raise();
        let state = ReviewState::default().apply(&ReviewEvent::Resolved {
            item: 12,
            reason: raise.reason,
            decision: ReviewDecision::Dismiss,
            note: String::new(),
            at: at(1),
        });
        assert_eq!(
            resolve(&state, 12, &raise, ReviewDecision::Dismiss, "", at(2)),
            Err(ReviewError::AlreadyResolved(12))
        );
        let error = resolve(
            &ReviewState::default(),
            12,
            &raise,
            ReviewDecision::Handled,
            "",
            at(2),
        )
        .expect_err("handled does not resolve an opt-out request");
        assert!(
            error.to_string().contains("confirm_opt_out, dismiss"),
            "{error}"
        );
    }

    #[test]
    fn a_message_is_overdue_after_the_configured_time_and_raised_once() {
        let after = chrono::Duration::hours(1);
        let id = message_id();
        assert_eq!(
            no_terminal_status(&ReviewState::default(), id, at(0), at(59), after),
            None
        );
        let Some(Event::Review(raised)) =
            no_terminal_status(&ReviewState::default(), id, at(0), at(60), after)
        else {
            panic!("overdue at exactly the configured time");
        };
        let state = ReviewState::default().apply(&raised);
        assert_eq!(no_terminal_status(&state, id, at(0), at(600), after), None);
    }

    #[test]
    fn a_burst_of_rejections_raises_once_per_window() {
        let burst = RejectionBurst {
            threshold: 3,
            window: chrono::Duration::minutes(5),
        };
        let state = ReviewState::default();
        let two = [at(0), at(1)];
        assert_eq!(webhook_rejections(&state, &two, at(1), burst), None);
        let old_and_new = [at(0), at(1), at(7)];
        assert_eq!(webhook_rejections(&state, &old_and_new, at(7), burst), None);
        let three = [at(0), at(1), at(2)];
        let Some(Event::Review(raised)) = webhook_rejections(&state, &three, at(2), burst) else {
            panic!("a burst");
        };
        let state = state.apply(&raised);
        let more = [at(0), at(1), at(2), at(3)];
        assert_eq!(
            webhook_rejections(&state, &more, at(3), burst),
            None,
            "once per window"
        );
        let later = [at(8), at(9), at(10)];
        assert!(webhook_rejections(&state, &later, at(10), burst).is_some());
    }

    #[test]
    fn a_provider_reported_unsendable_status_raises_and_an_approval_does_not() {
        let reported = |status, reason: &str| {
            Event::from(TemplateEvent::StatusReported {
                template: TemplateId::parse("welcome@en").expect("template"),
                status,
                reason: reason.into(),
                at: at(0),
            })
        };
        for status in [
            ApprovalStatus::Rejected,
            ApprovalStatus::Paused,
            ApprovalStatus::Disabled,
        ] {
            let raise = raised_by(&reported(status, "INVALID_FORMAT")).expect("raised");
            assert_eq!(raise.reason, ReviewReason::TemplateNotSendable);
            assert_eq!(
                raise.subject.template.as_ref().map(TemplateId::as_str),
                Some("welcome@en")
            );
            assert!(raise.detail.contains("INVALID_FORMAT"), "{}", raise.detail);
        }
        assert_eq!(raised_by(&reported(ApprovalStatus::Approved, "")), None);
        assert_eq!(raised_by(&reported(ApprovalStatus::Pending, "")), None);
    }

    fn quality_notice(event: &str) -> Event {
        Event::from(ProviderEvent::NoticeReceived {
            provider: ProviderKind::Meta,
            subject: "102938475610293".into(),
            kind: "phone_number_quality_update".into(),
            details: vec![
                ("value.display_phone_number".into(), "15555550100".into()),
                ("value.event".into(), event.into()),
                ("value.current_limit".into(), "TIER_2K".into()),
            ],
            at: at(0),
        })
    }

    #[test]
    fn a_quality_drop_notice_raises_for_its_number_and_an_upgrade_does_not() {
        for event in ["FLAGGED", "DOWNGRADE"] {
            let raise = raised_by(&quality_notice(event)).expect("raised");
            assert_eq!(raise.reason, ReviewReason::QualityDrop);
            assert_eq!(
                raise.subject.sender,
                Some(WhatsAppAddress::parse("whatsapp:+15555550100").expect("address"))
            );
            assert!(raise.detail.contains(event) && raise.detail.contains("TIER_2K"));
        }
        for event in ["UPGRADE", "UNFLAGGED", "ONBOARDING"] {
            assert_eq!(raised_by(&quality_notice(event)), None, "{event}");
        }
        let other = Event::from(ProviderEvent::NoticeReceived {
            provider: ProviderKind::Meta,
            subject: "102938475610293".into(),
            kind: "account_update".into(),
            details: vec![("value.event".into(), "FLAGGED".into())],
            at: at(0),
        });
        assert_eq!(raised_by(&other), None, "only quality updates");
    }

    #[test]
    fn silence_is_raised_after_the_configured_time_once_until_a_callback_arrives() {
        let after = chrono::Duration::minutes(30);
        let state = ReviewState::default();
        let waiting = |last, oldest| Callbacks {
            last,
            in_flight: 2,
            oldest_in_flight: Some(oldest),
        };
        // Nothing in flight: no silence, however long.
        let idle = Callbacks {
            last: Some(at(0)),
            in_flight: 0,
            oldest_in_flight: None,
        };
        assert_eq!(webhook_silence(&state, idle, at(600), after), None);
        // A message accepted a moment ago has had no time for its callback.
        assert_eq!(
            webhook_silence(&state, waiting(Some(at(0)), at(100)), at(110), after),
            None
        );
        assert_eq!(
            webhook_silence(&state, waiting(Some(at(10)), at(5)), at(39), after),
            None
        );
        let Some(Event::Review(raised)) =
            webhook_silence(&state, waiting(Some(at(10)), at(5)), at(40), after)
        else {
            panic!("silent for exactly the configured time");
        };
        assert!(matches!(
            &raised,
            ReviewEvent::Raised { reason: ReviewReason::WebhookSilence, detail, .. }
                if detail.contains("2 messages")
        ));
        let state = state.apply(&raised);
        assert_eq!(
            webhook_silence(&state, waiting(Some(at(10)), at(5)), at(400), after),
            None,
            "once per silence"
        );
        // A callback after the item, then silence again: a new item.
        assert!(webhook_silence(&state, waiting(Some(at(50)), at(45)), at(90), after).is_some());
        // No callback ever, but messages waiting long enough.
        assert!(
            webhook_silence(&ReviewState::default(), waiting(None, at(0)), at(30), after).is_some()
        );
    }

    #[test]
    fn reason_names_round_trip() {
        for reason in ReviewReason::ALL {
            assert_eq!(ReviewReason::parse(reason.as_str()), Some(reason));
        }
        for decision in ReviewDecision::ALL {
            assert_eq!(ReviewDecision::parse(decision.as_str()), Some(decision));
        }
    }
}
