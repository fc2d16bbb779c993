//! Indexes over the whole log that the streams alone cannot answer: which message a provider id
//! belongs to, a contact's recent messages, the registered senders and templates, and the
//! messages the dispatcher still has work for. Kept current by the service after each of its
//! own appends (and, when several hubs share a PostgreSQL log, by `Hub::follow_shared_log` for
//! the others'), saved as a snapshot with the log position it reflects (`crate::snapshots`),
//! and restored from it at start.
//!
//! Memory grows with open work, not with history. In memory: the senders, the templates, the
//! open messages, and the two big indexes' entries written since the last saved snapshot. The
//! rest of the big indexes lives in the snapshot slot's index on disk, written atomically with
//! the snapshot (`EventLog::save_snapshot`), and is read from there on a miss:
//! - provider id → message id: one entry per message ever dispatched; a late "read" callback
//!   for a message settled long ago still finds its message;
//! - contact → its last [`RECENT_MESSAGES_MAX`] message ids.
//!
//! Why the snapshot's index rather than an index written with the events: it needs nothing of
//! the log's write path (another backend gets it with its snapshot slots), and it is exact: it
//! reflects the snapshot's position, and the events after it are replayed into memory at start.
//!
//! Every observation is idempotent (a set insert, a lookup insert, a recent list that does not
//! list an id twice), so an event seen twice (by the commit that appended it and by the
//! snapshot's catch-up, or replayed after a snapshot that already held it) changes nothing.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use parking_lot::RwLock;
use uuid::Uuid;
use wagate_domain::open_intent::is_open;
use wagate_domain::{
    ContactId, Event, MessageEvent, MessageId, MessageState, ProviderMessageRef, SenderEvent,
    TemplateEvent, TemplateId, WhatsAppAddress,
};
use wagate_store::snapshot_forms::ProjectionV1;
use wagate_store::{EventLog, SnapshotSave};

use crate::error::{AppError, Result};

/// How many message ids a contact view lists.
pub const RECENT_MESSAGES_MAX: usize = 20;

/// The snapshot slot of the projection.
pub const SNAPSHOT_SLOT: &str = "projection";

/// Index entry keys: a kind byte, then the id's text.
const PROVIDER_REF: u8 = b'p';
const RECENT: u8 = b'r';

#[derive(Debug, Default)]
struct Indexes {
    /// Provider ids recorded since the last saved snapshot (older ones: on disk).
    by_provider_ref: HashMap<ProviderMessageRef, MessageId>,
    /// Whole recent lists of the contacts that got a message since the last saved snapshot.
    recent_by_contact: HashMap<ContactId, VecDeque<MessageId>>,
    senders: BTreeSet<WhatsAppAddress>,
    templates: BTreeSet<TemplateId>,
    /// Messages with an intent that are not done (the dispatcher's work list), with the log
    /// position of their intent event, so the list is built without reading any stream.
    open_messages: BTreeMap<MessageId, u64>,
    /// The slot's index on disk reflects the saved snapshot this projection started from, so
    /// misses are read from it. False while the projection was rebuilt from the log: memory
    /// then holds every entry, and the next save replaces the disk index whole.
    disk_valid: bool,
}

/// Sizes of the in-memory structures (for tests and metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProjectionSizes {
    pub open_messages: usize,
    pub provider_refs_in_memory: usize,
    pub recent_lists_in_memory: usize,
}

#[derive(Debug, Default)]
pub struct Projection {
    indexes: RwLock<Indexes>,
}

fn entry_key(kind: u8, text: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(text.len() + 1);
    key.push(kind);
    key.extend_from_slice(text.as_bytes());
    key
}

fn encode_ids(ids: &VecDeque<MessageId>) -> Vec<u8> {
    ids.iter().flat_map(|id| *id.as_uuid().as_bytes()).collect()
}

fn decode_ids(bytes: &[u8]) -> Result<VecDeque<MessageId>> {
    if bytes.len() % 16 != 0 {
        return Err(corrupt_index(
            "a message id list is not a whole number of ids",
        ));
    }
    bytes
        .chunks_exact(16)
        .map(|raw| {
            let raw: [u8; 16] = raw.try_into().map_err(|_| corrupt_index("short id"))?;
            MessageId::from_uuid(Uuid::from_bytes(raw))
                .map_err(|error| corrupt_index(&error.to_string()))
        })
        .collect()
}

fn corrupt_index(reason: &str) -> AppError {
    AppError::Corrupt {
        position: 0,
        reason: format!("projection snapshot index: {reason}"),
    }
}

impl Projection {
    /// Indexes one event at log `position`; `message` is the message's state after it (or
    /// newer), for message events. Reads a contact's recent list from disk on a miss.
    pub fn observe(
        &self,
        log: &dyn EventLog,
        event: &Event,
        position: u64,
        message: Option<&MessageState>,
    ) -> Result<()> {
        let mut indexes = self.indexes.write();
        if let Event::Message(
            MessageEvent::TemplateSent { contact, .. } | MessageEvent::ReplySent { contact, .. },
        ) = event
        {
            // A contact not in memory has its list on disk: read it without holding the lock,
            // then look again (a save may have moved the list to disk meanwhile, which only
            // happens once that save is durable, so the second read finds it).
            while !indexes.recent_by_contact.contains_key(contact) {
                drop(indexes);
                let from_disk = self.recent_on_disk(log, contact)?;
                indexes = self.indexes.write();
                if !indexes.recent_by_contact.contains_key(contact) {
                    indexes.recent_by_contact.insert(contact.clone(), from_disk);
                }
            }
        }
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
                        if !recent.contains(message_id) {
                            recent.push_front(*message_id);
                            recent.truncate(RECENT_MESSAGES_MAX);
                        }
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
        Ok(())
    }

    fn disk_valid(&self) -> bool {
        self.indexes.read().disk_valid
    }

    fn recent_on_disk(
        &self,
        log: &dyn EventLog,
        contact: &ContactId,
    ) -> Result<VecDeque<MessageId>> {
        if !self.disk_valid() {
            return Ok(VecDeque::new());
        }
        let key = entry_key(RECENT, &contact.to_string());
        match log.snapshot_entry(SNAPSHOT_SLOT, &key)? {
            Some(bytes) => decode_ids(&bytes),
            None => Ok(VecDeque::new()),
        }
    }

    pub fn message_by_provider_ref(
        &self,
        log: &dyn EventLog,
        reference: &ProviderMessageRef,
    ) -> Result<Option<MessageId>> {
        if let Some(id) = self.indexes.read().by_provider_ref.get(reference) {
            return Ok(Some(*id));
        }
        if !self.disk_valid() {
            return Ok(None);
        }
        let key = entry_key(PROVIDER_REF, &reference.to_string());
        match log.snapshot_entry(SNAPSHOT_SLOT, &key)? {
            Some(bytes) => Ok(decode_ids(&bytes)?.front().copied()),
            None => Ok(None),
        }
    }

    pub fn recent_messages(
        &self,
        log: &dyn EventLog,
        contact: &ContactId,
    ) -> Result<Vec<MessageId>> {
        if let Some(recent) = self.indexes.read().recent_by_contact.get(contact) {
            return Ok(recent.iter().copied().collect());
        }
        Ok(self.recent_on_disk(log, contact)?.into_iter().collect())
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

    pub fn sizes(&self) -> ProjectionSizes {
        let indexes = self.indexes.read();
        ProjectionSizes {
            open_messages: indexes.open_messages.len(),
            provider_refs_in_memory: indexes.by_provider_ref.len(),
            recent_lists_in_memory: indexes.recent_by_contact.len(),
        }
    }

    /// Takes the state restored from a snapshot (whose slot index is then valid).
    pub fn restore(&self, form: ProjectionV1) -> Result<()> {
        let bad = |what: &str, error: String| AppError::Corrupt {
            position: 0,
            reason: format!("projection snapshot: {what}: {error}"),
        };
        let mut restored = Indexes {
            disk_valid: true,
            ..Indexes::default()
        };
        for sender in form.senders {
            let sender =
                WhatsAppAddress::parse(&sender).map_err(|e| bad("sender", e.to_string()))?;
            restored.senders.insert(sender);
        }
        for template in form.templates {
            let template =
                TemplateId::parse(&template).map_err(|e| bad("template", e.to_string()))?;
            restored.templates.insert(template);
        }
        for (raw, position) in form.open_messages {
            let id = MessageId::from_uuid(Uuid::from_bytes(raw))
                .map_err(|e| bad("message id", e.to_string()))?;
            restored.open_messages.insert(id, position);
        }
        *self.indexes.write() = restored;
        Ok(())
    }

    /// What a save of this projection at `position` writes: the small state, and the index
    /// entries held in memory (all of them, replacing the disk index, after a rebuild).
    pub fn to_save(&self, position: u64) -> (SnapshotSave, Pending) {
        let indexes = self.indexes.read();
        let form = ProjectionV1 {
            senders: indexes.senders.iter().map(ToString::to_string).collect(),
            templates: indexes.templates.iter().map(ToString::to_string).collect(),
            open_messages: indexes
                .open_messages
                .iter()
                .map(|(id, position)| (*id.as_uuid().as_bytes(), *position))
                .collect(),
        };
        let mut entries =
            Vec::with_capacity(indexes.by_provider_ref.len() + indexes.recent_by_contact.len());
        let mut pending = Pending::default();
        for (reference, id) in &indexes.by_provider_ref {
            entries.push((
                entry_key(PROVIDER_REF, &reference.to_string()),
                Some(id.as_uuid().as_bytes().to_vec()),
            ));
            pending.provider_refs.push((reference.clone(), *id));
        }
        for (contact, recent) in &indexes.recent_by_contact {
            entries.push((
                entry_key(RECENT, &contact.to_string()),
                Some(encode_ids(recent)),
            ));
            pending.recent.push((contact.clone(), recent.clone()));
        }
        let save = SnapshotSave {
            position,
            bytes: wagate_store::snapshot_forms::encode_projection(&form),
            entries,
            replace_entries: !indexes.disk_valid,
        };
        (save, pending)
    }

    /// A save made by [`Projection::to_save`] is durable: its entries now come from disk, so
    /// those still unchanged leave memory.
    pub fn saved(&self, pending: Pending) {
        let mut indexes = self.indexes.write();
        indexes.disk_valid = true;
        for (reference, id) in pending.provider_refs {
            if indexes.by_provider_ref.get(&reference) == Some(&id) {
                indexes.by_provider_ref.remove(&reference);
            }
        }
        for (contact, recent) in pending.recent {
            if indexes.recent_by_contact.get(&contact) == Some(&recent) {
                indexes.recent_by_contact.remove(&contact);
            }
        }
    }
}

/// The in-memory entries a save wrote, to drop once it is durable.
#[derive(Debug, Default)]
pub struct Pending {
    provider_refs: Vec<(ProviderMessageRef, MessageId)>,
    recent: Vec<(ContactId, VecDeque<MessageId>)>,
}
