//! In-memory indexes over the whole log that the streams alone cannot answer: which message a
//! provider id belongs to, a contact's recent messages, the registered senders and templates, and
//! the messages the dispatcher still has work for. Rebuilt by replaying the log at start, then
//! kept current by the service after each of its own appends (the hub is the log's only writer).

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use parking_lot::RwLock;
use wagate_domain::open_intent::is_open;
use wagate_domain::{
    ContactId, Event, MessageEvent, MessageId, MessageState, ProviderMessageRef, SenderEvent,
    TemplateEvent, TemplateId, WhatsAppAddress,
};

/// How many message ids a contact view lists.
pub const RECENT_MESSAGES_MAX: usize = 20;

#[derive(Debug, Default)]
struct Indexes {
    by_provider_ref: HashMap<ProviderMessageRef, MessageId>,
    recent_by_contact: HashMap<ContactId, VecDeque<MessageId>>,
    senders: BTreeSet<WhatsAppAddress>,
    templates: BTreeSet<TemplateId>,
    /// Messages with an intent that are not done (the dispatcher's work list), with the log
    /// position of their intent event, so the list is built without reading any stream.
    open_messages: BTreeMap<MessageId, u64>,
}

#[derive(Debug, Default)]
pub struct Projection {
    indexes: RwLock<Indexes>,
}

impl Projection {
    /// Indexes one event at log `position`; `message` is the message's state after it, for
    /// message events.
    pub fn observe(&self, event: &Event, position: u64, message: Option<&MessageState>) {
        let mut indexes = self.indexes.write();
        match event {
            Event::Message(message_event) => {
                match message_event {
                    MessageEvent::TemplateSent {
                        message_id,
                        contact,
                        ..
                    }
                    | MessageEvent::ReplySent {
                        message_id,
                        contact,
                        ..
                    } => {
                        let recent = indexes
                            .recent_by_contact
                            .entry(contact.clone())
                            .or_default();
                        recent.push_front(*message_id);
                        recent.truncate(RECENT_MESSAGES_MAX);
                        // Kept only while the message is open (the phase check below).
                        indexes.open_messages.insert(*message_id, position);
                    }
                    MessageEvent::DispatchSucceeded {
                        message_id,
                        provider_ref,
                        ..
                    } => {
                        indexes
                            .by_provider_ref
                            .insert(provider_ref.clone(), *message_id);
                    }
                    MessageEvent::StatusChanged {
                        message_id,
                        provider_ref: Some(reference),
                        ..
                    } => {
                        indexes
                            .by_provider_ref
                            .entry(reference.clone())
                            .or_insert(*message_id);
                    }
                    _ => {}
                }
                if let (Some(id), Some(state)) = (message_event.message_id(), message) {
                    // An open message has an intent, whose event was observed first.
                    if !is_open(&state.phase()) {
                        indexes.open_messages.remove(&id);
                    }
                }
            }
            Event::Sender(SenderEvent::Registered { sender, .. }) => {
                indexes.senders.insert(sender.clone());
            }
            // A status the provider reported for a template wagate does not know is listed too,
            // so an operator sees it (and it has no definition, so nothing can send it).
            Event::Template(
                TemplateEvent::Registered { template, .. }
                | TemplateEvent::Created { template, .. }
                | TemplateEvent::StatusReported { template, .. },
            ) => {
                indexes.templates.insert(template.clone());
            }
            _ => {}
        }
    }

    pub fn message_by_provider_ref(&self, reference: &ProviderMessageRef) -> Option<MessageId> {
        self.indexes.read().by_provider_ref.get(reference).copied()
    }

    pub fn recent_messages(&self, contact: &ContactId) -> Vec<MessageId> {
        self.indexes
            .read()
            .recent_by_contact
            .get(contact)
            .map(|recent| recent.iter().copied().collect())
            .unwrap_or_default()
    }

    pub fn senders(&self) -> Vec<WhatsAppAddress> {
        self.indexes.read().senders.iter().cloned().collect()
    }

    pub fn templates(&self) -> Vec<TemplateId> {
        self.indexes.read().templates.iter().cloned().collect()
    }

    /// The open messages with the position of their intent event, by message id.
    pub fn open_messages(&self) -> Vec<(MessageId, u64)> {
        self.indexes
            .read()
            .open_messages
            .iter()
            .map(|(id, position)| (*id, *position))
            .collect()
    }
}
