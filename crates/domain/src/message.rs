//! The message aggregate: the outbound intent, its dispatch attempts and its provider status.

use crate::events::{MessageEvent, ProviderError, TemplateCategory};
use crate::ids::{ContactId, MessageId, ProviderMessageRef, TemplateId, WhatsAppAddress, Workflow};
use crate::rules::RuleId;
use crate::status::MessageStatus;
use crate::Timestamp;

/// What the message says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MessageContent {
    Template {
        template: TemplateId,
        category: TemplateCategory,
        variables: Vec<(String, String)>,
        media: Vec<crate::rich::TemplateMedia>,
    },
    Freeform {
        text: String,
    },
    /// Freeform media or quick-reply buttons.
    Rich(crate::rich::RichReply),
}

/// An allowed message waiting for (or past) dispatch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Intent {
    pub contact: ContactId,
    pub sender: WhatsAppAddress,
    pub workflow: Workflow,
    pub content: MessageContent,
    pub decided_at: Timestamp,
}

/// One status observation, whether or not it moved the status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusObservation {
    pub status: MessageStatus,
    pub error_code: Option<u32>,
    pub at: Timestamp,
    /// Whether it moved the message's status.
    pub applied: bool,
}

/// Where a message stands for the dispatcher.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DispatchPhase {
    /// No intent: never allowed, or no such message.
    NotAllowed,
    /// Waiting for its first claim, or for a retry due at `not_before`.
    Pending {
        next_attempt: u32,
        not_before: Option<Timestamp>,
    },
    /// Claimed, with no outcome recorded yet: in flight, or in doubt after a crash.
    Claimed { attempt: u32, since: Timestamp },
    /// Nothing more for the dispatcher to do.
    Done,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageState {
    pub id: Option<MessageId>,
    pub intent: Option<Intent>,
    pub refused: Option<(RuleId, String)>,
    pub status: MessageStatus,
    /// Claims made so far (the attempt number of the newest claim).
    pub attempts: u32,
    /// Set while a claim has no outcome.
    pub claimed_at: Option<Timestamp>,
    pub retry_at: Option<Timestamp>,
    /// No more attempts: failed, canceled or in doubt expired.
    pub dispatch_closed: bool,
    /// The attempt whose provider outcome was recorded last: a second report of the same attempt
    /// (a dispatcher retrying its own report) must not append anything.
    pub outcome_recorded_for: Option<u32>,
    pub canceled_by: Option<RuleId>,
    pub provider_ref: Option<ProviderMessageRef>,
    pub last_error: Option<ProviderError>,
    pub history: Vec<StatusObservation>,
}

impl Default for MessageState {
    fn default() -> Self {
        Self {
            id: None,
            intent: None,
            refused: None,
            status: MessageStatus::Queued,
            attempts: 0,
            claimed_at: None,
            retry_at: None,
            dispatch_closed: false,
            outcome_recorded_for: None,
            canceled_by: None,
            provider_ref: None,
            last_error: None,
            history: Vec::new(),
        }
    }
}

impl MessageState {
    pub fn apply(mut self, event: &MessageEvent) -> Self {
        if let Some(id) = event.message_id() {
            self.id.get_or_insert(id);
        }
        match event {
            MessageEvent::TemplateSent {
                contact,
                sender,
                template,
                category,
                variables,
                media,
                workflow,
                at,
                ..
            } => {
                self.intent = Some(Intent {
                    contact: contact.clone(),
                    sender: sender.clone(),
                    workflow: workflow.clone(),
                    content: MessageContent::Template {
                        media: media.clone(),
                        template: template.clone(),
                        category: *category,
                        variables: variables.clone(),
                    },
                    decided_at: *at,
                });
            }
            MessageEvent::ReplySent {
                contact,
                sender,
                text,
                rich,
                workflow,
                at,
                ..
            } => {
                self.intent = Some(Intent {
                    contact: contact.clone(),
                    sender: sender.clone(),
                    workflow: workflow.clone(),
                    content: match rich {
                        Some(rich) => MessageContent::Rich(rich.clone()),
                        None => MessageContent::Freeform { text: text.clone() },
                    },
                    decided_at: *at,
                });
            }
            MessageEvent::SendRefused { rule, message, .. } => {
                self.refused = Some((*rule, message.clone()));
            }
            MessageEvent::DispatchClaimed { attempt, at, .. } => {
                self.attempts = *attempt;
                self.claimed_at = Some(*at);
                self.retry_at = None;
                self.advance(&MessageStatus::Sending);
            }
            MessageEvent::ClaimRefused { rule, .. } => {
                self.canceled_by = Some(*rule);
                self.claimed_at = None;
                self.dispatch_closed = true;
                self.advance(&MessageStatus::Canceled);
            }
            MessageEvent::DispatchSucceeded {
                attempt,
                provider_ref,
                provider_status,
                ..
            } => {
                self.outcome_recorded_for = Some(*attempt);
                self.claimed_at = None;
                self.dispatch_closed = true;
                self.provider_ref
                    .get_or_insert_with(|| provider_ref.clone());
                self.advance(provider_status);
            }
            MessageEvent::DispatchFailed {
                attempt,
                error,
                retry_at,
                ..
            } => {
                self.outcome_recorded_for = Some(*attempt);
                self.claimed_at = None;
                self.last_error = Some(error.clone());
                if self.dispatch_closed {
                    // A callback already showed the provider has the message (the failure was a
                    // lost response): never retry, and let the callbacks tell the status.
                } else if retry_at.is_some() {
                    self.retry_at = *retry_at;
                } else {
                    self.dispatch_closed = true;
                    self.advance(&MessageStatus::Failed);
                }
            }
            MessageEvent::StatusChanged {
                provider_ref,
                status,
                error_code,
                at,
                ..
            } => {
                if let Some(reference) = provider_ref {
                    self.provider_ref.get_or_insert_with(|| reference.clone());
                }
                self.observe(status, *error_code, *at);
            }
            MessageEvent::UnmatchedStatusReceived {
                provider_ref,
                status,
                error_code,
                at,
                ..
            } => {
                self.provider_ref
                    .get_or_insert_with(|| provider_ref.clone());
                self.observe(status, *error_code, *at);
            }
            // The price is the cost ledger's business; it changes nothing about delivery.
            MessageEvent::PriceReported { .. } => {}
            MessageEvent::InDoubtExpired { .. } => {
                self.claimed_at = None;
                self.dispatch_closed = true;
                self.advance(&MessageStatus::Failed);
            }
        }
        self
    }

    fn observe(&mut self, status: &MessageStatus, error_code: Option<u32>, at: Timestamp) {
        // A callback proves the provider has the message: an open claim is resolved (this is
        // how an in-doubt send is settled), and no retry may follow.
        if self.claimed_at.is_some() || self.retry_at.is_some() {
            self.claimed_at = None;
            self.retry_at = None;
            self.dispatch_closed = true;
        }
        let applied = self.advance(status);
        self.history.push(StatusObservation {
            status: status.clone(),
            error_code,
            at,
            applied,
        });
    }

    /// Moves the status forward if `observed` allows it; returns whether it moved.
    fn advance(&mut self, observed: &MessageStatus) -> bool {
        match self.status.advance(observed) {
            Some(next) => {
                self.status = next;
                true
            }
            None => false,
        }
    }

    pub fn phase(&self) -> DispatchPhase {
        if self.intent.is_none() {
            return DispatchPhase::NotAllowed;
        }
        if let Some(since) = self.claimed_at {
            return DispatchPhase::Claimed {
                attempt: self.attempts,
                since,
            };
        }
        if self.dispatch_closed || self.status.is_terminal() {
            return DispatchPhase::Done;
        }
        DispatchPhase::Pending {
            next_attempt: self.attempts + 1,
            not_before: self.retry_at,
        }
    }

    /// Whether this exact observation is already recorded (a duplicate callback).
    pub fn has_observed(&self, status: &MessageStatus, error_code: Option<u32>) -> bool {
        self.history
            .iter()
            .any(|seen| &seen.status == status && seen.error_code == error_code)
    }
}
