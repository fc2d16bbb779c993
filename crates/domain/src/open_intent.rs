//! The dispatcher's work list, defined once: a message with an intent that still needs a claim,
//! a retry or an outcome. The command service (the in-process dispatcher and the HTTP pending
//! route) and the simulator build their entries here, so the three cannot disagree.

use crate::events::MessageEvent;
use crate::ids::{ContactId, MessageId, WhatsAppAddress};
use crate::message::{DispatchPhase, MessageState};

/// Type names of the intent events (`TemplateSent`, `ReplySent`): a reader of raw records can
/// skip every other event without decoding it.
pub const INTENT_EVENT_TYPES: [&str; 2] = ["TemplateSent", "ReplySent"];

/// A message the dispatcher still has work for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenIntent {
    pub message_id: MessageId,
    /// The business number it goes out from: the per-sender rate limit's key.
    pub sender: WhatsAppAddress,
    /// The contact: with `sender`, the pair rate limit's key.
    pub recipient: ContactId,
    /// `Pending` (first claim, or a retry due at `not_before`) or `Claimed` (no outcome yet).
    pub phase: DispatchPhase,
    /// The log position of the message's intent event: a dispatcher's checkpoint never passes a
    /// message it still tracks.
    pub position: u64,
    /// The sender's registered rate in messages per second (`SenderRegistration::rate_per_second`),
    /// filled in by the reader that knows the senders; `None`: unknown here, the dispatcher's
    /// default applies.
    pub sender_rate_per_second: Option<u32>,
}

/// True for the phases the dispatcher has work in.
pub fn is_open(phase: &DispatchPhase) -> bool {
    matches!(
        phase,
        DispatchPhase::Pending { .. } | DispatchPhase::Claimed { .. }
    )
}

impl OpenIntent {
    /// The entry for message `message_id` in `state`, whose intent event sits at
    /// `intent_position`; `None` when the dispatcher has nothing to do for it (never allowed, or
    /// done).
    pub fn of(message_id: MessageId, state: &MessageState, intent_position: u64) -> Option<Self> {
        let intent = state.intent.as_ref()?;
        let phase = state.phase();
        is_open(&phase).then(|| OpenIntent {
            message_id,
            sender: intent.sender.clone(),
            recipient: intent.contact.clone(),
            phase,
            position: intent_position,
            sender_rate_per_second: None,
        })
    }

    /// The entry an intent event at `position` announces, as it stands right after that event
    /// (waiting for its first claim): for readers of new events, which do not fold the message's
    /// stream. `None` for every other event.
    pub fn announced(event: &MessageEvent, position: u64) -> Option<Self> {
        match event {
            MessageEvent::TemplateSent {
                message_id,
                contact,
                sender,
                ..
            }
            | MessageEvent::ReplySent {
                message_id,
                contact,
                sender,
                ..
            } => Some(OpenIntent {
                message_id: *message_id,
                sender: sender.clone(),
                recipient: contact.clone(),
                phase: DispatchPhase::Pending {
                    next_attempt: 1,
                    not_before: None,
                },
                position,
                sender_rate_per_second: None,
            }),
            _ => None,
        }
    }
}
