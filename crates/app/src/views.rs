//! What the service answers with: plain data for the HTTP layer and the CLI to render.

use wagate_domain::template::TemplateDefinition;

use crate::reads::LoggedEvent;
use wagate_domain::{
    ContactId, ContactState, DispatchPhase, Event, Intent, MessageId, MessageState, SenderState,
    Timestamp, WhatsAppAddress,
};

/// A send that was allowed (and, unless a dry run, recorded as an intent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendAccepted {
    pub message_id: MessageId,
    pub status: String,
    pub dry_run: bool,
    /// The answer stored under the request's `Idempotency-Key` by an earlier identical
    /// request: nothing was recorded now.
    pub replayed: bool,
}

/// What a webhook did to the log.
#[derive(Debug, Clone, PartialEq)]
pub enum Ingested {
    Appended {
        positions: Vec<u64>,
        events: Vec<Event>,
    },
    /// The same provider event was already recorded: nothing appended.
    Duplicate,
}

#[derive(Debug, Clone)]
pub struct ContactView {
    pub contact: ContactId,
    /// The person's other identities (every one reachable through `IdentityLinked`) with their
    /// own states; sends to `contact` are judged over all of them.
    pub linked: Vec<(ContactId, ContactState)>,
    pub version: u64,
    pub state: ContactState,
    /// The latest end of any business number's window ("any sender").
    pub window_open_until: Option<Timestamp>,
    /// Each business number's window, by sender.
    pub windows: Vec<SenderWindowView>,
    /// Newest first.
    pub recent_messages: Vec<(MessageId, MessageState)>,
}

/// One business number's 24 h window with a contact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SenderWindowView {
    pub sender: WhatsAppAddress,
    /// When the person last wrote to this number (their time, never later than receipt).
    pub last_inbound_at: Option<Timestamp>,
    /// The window's end less the safety margin; `None` when the provider reported it closed.
    pub open_until: Option<Timestamp>,
}

#[derive(Debug, Clone)]
pub struct MessageView {
    pub message_id: MessageId,
    pub state: MessageState,
    /// Every event of the message's stream, in order.
    pub history: Vec<HistoryEntry>,
}

/// One event of a stream with where it sits in the log (the read side's [`LoggedEvent`]).
pub type HistoryEntry = LoggedEvent;

/// What a dispatch write (an outcome, an in-doubt expiry) did: the positions it appended (none
/// when it changed nothing) and the message's dispatch phase after it, so the caller need not
/// read the message again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DispatchUpdate {
    pub positions: Vec<u64>,
    pub phase: DispatchPhase,
}

/// A claimed message: everything the dispatcher needs for the provider call.
#[derive(Debug, Clone)]
pub struct ClaimedMessage {
    pub message_id: MessageId,
    pub attempt: u32,
    pub intent: Intent,
    pub sender: SenderState,
    /// The template's registration, for template messages (Meta needs its name and language).
    pub template: Option<TemplateDefinition>,
}
