//! Indexes over the whole log that the streams alone cannot answer: which message a provider id
//! belongs to, a contact's recent messages, the registered senders and templates, and the
//! messages the dispatcher still has work for. Kept current by the service after each of its
//! own appends (and, when several hubs share a PostgreSQL log, by `Hub::follow_shared_log` for
//! the others'), saved as a snapshot with the log position it reflects (`crate::snapshots`),
//! and restored from it at start.
//!
//! Memory grows with open work and recent traffic, not with history. In memory (and in the
//! snapshot's bytes): the senders, the templates, the open messages, and the provider id →
//! message id lookup of the messages that are open or whose latest event is within
//! [`PROVIDER_REF_HORIZON`] of the newest event observed (pruned as event time advances; at
//! start, decoded on a thread of its own while the hub gets ready, see `Projection::restore`). On
//! disk, in the snapshot slot's index, written atomically with the snapshot
//! (`EventLog::save_snapshot`) and read from there on a miss: each contact's last
//! [`RECENT_MESSAGES_MAX`] message ids (one entry per contact: the size of the business, not
//! of its history). Memory holds only the recent lists changed since the last saved snapshot.
//!
//! Why the provider-id lookup is bounded: it is only the fallback of status matching. Both
//! providers echo wagate's own message id with every status (Twilio: the `StatusCallback` URL
//! carries `?message_id=<id>`; Meta: `biz_opaque_callback_data`), and `Hub::record_status_callback`
//! matches by that first. A callback without wagate's id, for a message settled and quiet for
//! longer than the horizon, is recorded as unmatched on its provider id's stream (as one for an
//! unknown provider id always was). Before snapshot form 2 the lookup was one index entry per
//! message ever dispatched, which made the database's keys, and its open time, grow with
//! history; a form-1 snapshot is not restored, so its next save replaces the index whole and
//! those entries go.
//!
//! Why the snapshot's index rather than an index written with the events: it needs nothing of
//! the log's write path (another backend gets it with its snapshot slots), and it is exact: it
//! reflects the snapshot's position, and the events after it are replayed into memory at start.
//!
//! Every observation is idempotent (a set insert, a lookup insert, a recent list that does not
//! list an id twice, a latest time that only moves forward), so an event seen twice (by the
//! commit that appended it and by the snapshot's catch-up, or replayed after a snapshot that
//! already held it) changes nothing.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use std::thread::JoinHandle;

use chrono::TimeDelta;
use parking_lot::{Mutex, RwLock};
use tracing::warn;
use uuid::Uuid;
use wagate_domain::open_intent::is_open;
use wagate_domain::{
    ContactId, Event, MessageEvent, MessageId, MessageState, ProviderMessageRef, SenderEvent,
    TemplateEvent, TemplateId, WhatsAppAddress,
};
use wagate_store::snapshot_forms::{self, ProjectionV2};
use wagate_store::{EventLog, SnapshotSave};

use crate::error::{AppError, Result};

/// How many message ids a contact view lists.
pub const RECENT_MESSAGES_MAX: usize = 20;

/// The snapshot slot of the projection.
pub const SNAPSHOT_SLOT: &str = "projection";

/// How long after its latest event (in event time) a settled message's provider ids are kept
/// for matching a status callback that lacks wagate's message id (see the module doc).
pub const PROVIDER_REF_HORIZON: TimeDelta = TimeDelta::days(7);

/// Index entry keys: a kind byte, then the id's text. (Form 1 also wrote `p`, provider id →
/// message id, one per message ever dispatched: gone with the first save of form 2.)
const RECENT: u8 = b'r';

/// A message whose provider ids are kept.
#[derive(Debug, Clone)]
struct Tracked {
    /// Its latest event's time (unix seconds).
    latest: i64,
    refs: Vec<ProviderMessageRef>,
}

#[derive(Debug, Default)]
struct Indexes {
    /// Provider ids of the messages in `tracked`.
    by_provider_ref: HashMap<ProviderMessageRef, MessageId>,
    /// The messages whose provider ids are kept: open, or within the horizon.
    tracked: HashMap<MessageId, Tracked>,
    /// The newest event time observed (unix seconds).
    newest: Option<i64>,
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

impl Indexes {
    /// Moves event time forward to `at` (unix seconds); once per hour of event time, forgets
    /// the provider ids of the messages past the horizon.
    fn advance(&mut self, at: i64) {
        let previous = self.newest.unwrap_or(i64::MIN);
        if at <= previous {
            return;
        }
        self.newest = Some(at);
        if previous != i64::MIN && at.div_euclid(3600) == previous.div_euclid(3600) {
            return;
        }
        let oldest = at - PROVIDER_REF_HORIZON.num_seconds();
        let Indexes {
            by_provider_ref,
            tracked,
            open_messages,
            ..
        } = self;
        tracked.retain(|id, entry| {
            let keep = entry.latest >= oldest || open_messages.contains_key(id);
            if !keep {
                for reference in &entry.refs {
                    if by_provider_ref.get(reference) == Some(id) {
                        by_provider_ref.remove(reference);
                    }
                }
            }
            keep
        });
    }

    /// Keeps `reference` → `id`, unless the reference already names a message.
    fn track(&mut self, reference: &ProviderMessageRef, id: MessageId, at: i64) {
        if self.by_provider_ref.contains_key(reference) {
            return;
        }
        self.by_provider_ref.insert(reference.clone(), id);
        let entry = self.tracked.entry(id).or_insert(Tracked {
            latest: at,
            refs: Vec::new(),
        });
        entry.refs.push(reference.clone());
    }

    /// Takes the provider-id lookup a restore built (see [`Projection::restore`]). Every change
    /// to the lookup waits for that restore first (`Projection::refs_ready`), so until now it
    /// was empty.
    fn take_refs(&mut self, built: Indexes) {
        self.by_provider_ref = built.by_provider_ref;
        self.tracked = built.tracked;
    }

    /// Whether `id`'s provider ids are still answered (exact between two prunings).
    fn within_horizon(&self, id: &MessageId) -> bool {
        if self.open_messages.contains_key(id) {
            return true;
        }
        match (self.tracked.get(id), self.newest) {
            (Some(entry), Some(newest)) => {
                entry.latest >= newest - PROVIDER_REF_HORIZON.num_seconds()
            }
            (Some(_), None) => true,
            (None, _) => false,
        }
    }
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
    /// The provider-id lookup of the snapshot restored last, decoded and built on a thread of
    /// its own (it is most of the snapshot: decoding it in `Hub::open` made readiness wait for
    /// a lookup that only status callbacks without wagate's id need). Taken into `indexes` by
    /// the first use of the lookup, which waits for it; held locked meanwhile, so no reader
    /// sees the lookup before it is taken.
    restoring: Mutex<Option<JoinHandle<Indexes>>>,
}

/// The provider-id lookup in a snapshot's `provider_refs` bytes. A bad entry is left out with
/// a warning rather than failing the restore: the lookup is only a fallback (module doc).
fn build_refs(bytes: &[u8]) -> Indexes {
    let mut built = Indexes::default();
    let refs = match snapshot_forms::decode_provider_refs(bytes) {
        Ok(refs) => refs,
        Err(error) => {
            warn!(%error, "projection snapshot: provider ids not restored");
            return built;
        }
    };
    for (raw, latest, references) in refs {
        let Ok(id) = MessageId::from_uuid(Uuid::from_bytes(raw)) else {
            warn!("projection snapshot: a provider id's message id is not valid; left out");
            continue;
        };
        for reference in references {
            match ProviderMessageRef::parse(&reference) {
                Ok(reference) => built.track(&reference, id, latest),
                Err(error) => warn!(%error, "projection snapshot: a provider id left out"),
            }
        }
    }
    built
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
        if matches!(event, Event::Message(_)) {
            self.refs_ready();
        }
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
        let at = event.at().timestamp();
        indexes.advance(at);
        match event {
            Event::Message(message_event) => {
                if let Some(entry) = message_event
                    .message_id()
                    .and_then(|id| indexes.tracked.get_mut(&id))
                {
                    entry.latest = entry.latest.max(at);
                }
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
                        provider_ref: reference,
                        ..
                    }
                    | MessageEvent::StatusChanged {
                        message_id,
                        provider_ref: Some(reference),
                        ..
                    } => indexes.track(reference, *message_id, at),
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

    /// The message `reference` names, while that message is open or its latest event is within
    /// [`PROVIDER_REF_HORIZON`] of the newest event observed.
    pub fn message_by_provider_ref(&self, reference: &ProviderMessageRef) -> Option<MessageId> {
        self.refs_ready();
        let indexes = self.indexes.read();
        let id = indexes.by_provider_ref.get(reference)?;
        indexes.within_horizon(id).then_some(*id)
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
        self.refs_ready();
        let indexes = self.indexes.read();
        ProjectionSizes {
            open_messages: indexes.open_messages.len(),
            provider_refs_in_memory: indexes.by_provider_ref.len(),
            recent_lists_in_memory: indexes.recent_by_contact.len(),
        }
    }

    /// Takes the state restored from a snapshot (whose slot index is then valid).
    pub fn restore(&self, form: ProjectionV2) -> Result<()> {
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
        restored.newest = form.newest;
        let bytes: std::sync::Arc<[u8]> = form.provider_refs.into();
        let for_thread = std::sync::Arc::clone(&bytes);
        let mut restoring = self.restoring.lock();
        // A restore pending from before is replaced whole (its thread is left to finish).
        restoring.take();
        *self.indexes.write() = restored;
        *restoring = match std::thread::Builder::new()
            .name("projection-restore".into())
            .spawn(move || build_refs(&for_thread))
        {
            Ok(handle) => Some(handle),
            Err(error) => {
                warn!(%error, "no thread to restore provider ids on; restored now");
                self.indexes.write().take_refs(build_refs(&bytes));
                None
            }
        };
        Ok(())
    }

    /// Waits for the provider ids a restore is building, and takes them (once).
    fn refs_ready(&self) {
        let mut restoring = self.restoring.lock();
        if let Some(handle) = restoring.take() {
            match handle.join() {
                Ok(built) => self.indexes.write().take_refs(built),
                Err(_) => warn!("restoring the provider ids failed; they are not kept"),
            }
        }
    }

    /// What a save of this projection at `position` writes: the state held in memory, and the
    /// recent lists changed since the last save (all of them, replacing the disk index, after a
    /// rebuild).
    pub fn to_save(&self, position: u64) -> (SnapshotSave, Pending) {
        self.refs_ready();
        let indexes = self.indexes.read();
        let form = ProjectionV2 {
            senders: indexes.senders.iter().map(ToString::to_string).collect(),
            templates: indexes.templates.iter().map(ToString::to_string).collect(),
            open_messages: indexes
                .open_messages
                .iter()
                .map(|(id, position)| (*id.as_uuid().as_bytes(), *position))
                .collect(),
            newest: indexes.newest,
            provider_refs: snapshot_forms::encode_provider_refs(
                &indexes
                    .tracked
                    .iter()
                    .map(|(id, entry)| {
                        (
                            *id.as_uuid().as_bytes(),
                            entry.latest,
                            entry.refs.iter().map(ToString::to_string).collect(),
                        )
                    })
                    .collect(),
            ),
        };
        let mut entries = Vec::with_capacity(indexes.recent_by_contact.len());
        let mut pending = Pending::default();
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
    recent: Vec<(ContactId, VecDeque<MessageId>)>,
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use chrono::{TimeZone, Utc};
    use wagate_domain::{
        MessageStatus, Policy, TemplateCategory, TemplateId as Template, Timestamp, Workflow,
    };
    use wagate_store::snapshot_forms::{decode_projection, encode_projection};
    use wagate_store::Store;

    use super::*;
    use crate::{FixedClock, Hub};

    fn at(day: u32, hour: u32) -> Timestamp {
        Utc.with_ymd_and_hms(2026, 11, day, hour, 0, 0)
            .single()
            .expect("time")
    }

    fn message(n: u8) -> MessageId {
        MessageId::parse(&format!("0193b0c2-7c1e-7d4e-9d7a-1f2e3d4c5b{n:02x}")).expect("id")
    }

    fn reference(n: u8) -> ProviderMessageRef {
        ProviderMessageRef::parse(&format!("SM{n:032x}")).expect("sid")
    }

    fn sent(n: u8, when: Timestamp) -> Event {
        Event::Message(MessageEvent::TemplateSent {
            message_id: message(n),
            contact: ContactId::parse("+41790000001").expect("contact"),
            sender: WhatsAppAddress::parse("whatsapp:+15555550100").expect("sender"),
            template: Template::parse("HX0123456789abcdef0123456789abcdef").expect("template"),
            category: TemplateCategory::Utility,
            variables: Vec::new(),
            workflow: Workflow::parse("deal_alerts").expect("workflow"),
            media: Vec::new(),
            at: when,
        })
    }

    fn dispatched(n: u8, when: Timestamp) -> Event {
        Event::Message(MessageEvent::DispatchSucceeded {
            message_id: message(n),
            attempt: 1,
            provider_ref: reference(n),
            provider_status: MessageStatus::Queued,
            at: when,
        })
    }

    fn delivered(n: u8, when: Timestamp) -> Event {
        Event::Message(MessageEvent::StatusChanged {
            message_id: message(n),
            provider_ref: Some(reference(n)),
            status: MessageStatus::Delivered,
            error_code: None,
            details: Vec::new(),
            at: when,
            pricing: None,
        })
    }

    /// Feeds `events` of one message, each with the message's state after it.
    fn feed(projection: &Projection, log: &dyn EventLog, events: &[Event], position: &mut u64) {
        let mut state = MessageState::default();
        for event in events {
            *position += 1;
            if let Event::Message(message_event) = event {
                state = state.apply(message_event);
            }
            projection
                .observe(log, event, *position, Some(&state))
                .expect("observe");
        }
    }

    #[test]
    fn a_provider_id_is_found_within_the_horizon_and_not_after() {
        let store = Store::open_temporary().expect("store");
        let projection = Projection::default();
        let mut position = 0;
        feed(
            &projection,
            &store,
            &[
                sent(1, at(1, 9)),
                dispatched(1, at(1, 9)),
                delivered(1, at(2, 9)),
            ],
            &mut position,
        );
        assert_eq!(
            projection.message_by_provider_ref(&reference(1)),
            Some(message(1))
        );
        // Time moves on with other messages: 7 days after message 1's latest event, still found.
        feed(&projection, &store, &[sent(2, at(9, 9))], &mut position);
        assert_eq!(
            projection.message_by_provider_ref(&reference(1)),
            Some(message(1))
        );
        // An hour later it is past the horizon: not found, and gone from memory.
        feed(&projection, &store, &[sent(3, at(9, 10))], &mut position);
        assert_eq!(projection.message_by_provider_ref(&reference(1)), None);
        assert_eq!(projection.sizes().provider_refs_in_memory, 0);
    }

    #[test]
    fn an_open_messages_provider_id_is_kept_past_the_horizon() {
        let store = Store::open_temporary().expect("store");
        let projection = Projection::default();
        projection
            .restore(ProjectionV2 {
                open_messages: vec![(*message(1).as_uuid().as_bytes(), 1)],
                provider_refs: snapshot_forms::encode_provider_refs(&vec![(
                    *message(1).as_uuid().as_bytes(),
                    at(1, 9).timestamp(),
                    vec![reference(1).to_string()],
                )]),
                newest: Some(at(1, 9).timestamp()),
                ..ProjectionV2::default()
            })
            .expect("restore");
        let mut position = 1;
        feed(&projection, &store, &[sent(2, at(20, 9))], &mut position);
        assert_eq!(
            projection.message_by_provider_ref(&reference(1)),
            Some(message(1))
        );
        assert_eq!(projection.sizes().provider_refs_in_memory, 1);
    }

    #[test]
    fn undecodable_provider_ids_are_left_out_and_the_rest_is_restored() {
        let projection = Projection::default();
        projection
            .restore(ProjectionV2 {
                senders: vec!["whatsapp:+15555550100".into()],
                open_messages: vec![(*message(1).as_uuid().as_bytes(), 1)],
                provider_refs: vec![0xff, 0xff],
                ..ProjectionV2::default()
            })
            .expect("restore");
        assert_eq!(projection.message_by_provider_ref(&reference(1)), None);
        assert_eq!(projection.senders().len(), 1);
        assert_eq!(projection.open_messages(), vec![(message(1), 1)]);
    }

    #[test]
    fn the_snapshot_round_trips_the_provider_ids() {
        let store = Store::open_temporary().expect("store");
        let projection = Projection::default();
        let mut position = 0;
        feed(
            &projection,
            &store,
            &[
                sent(1, at(1, 9)),
                dispatched(1, at(1, 9)),
                delivered(1, at(1, 10)),
            ],
            &mut position,
        );
        feed(&projection, &store, &[sent(2, at(1, 11))], &mut position);
        let (save, _) = projection.to_save(position);
        assert!(
            save.entries.iter().all(|(key, _)| key[0] == RECENT),
            "no provider id is written as an index entry"
        );
        let form = decode_projection(&save.bytes).expect("decodes");
        assert_eq!(
            snapshot_forms::decode_provider_refs(&form.provider_refs),
            Ok(vec![(
                *message(1).as_uuid().as_bytes(),
                at(1, 10).timestamp(),
                vec![reference(1).to_string()]
            )])
        );
        assert_eq!(form.newest, Some(at(1, 11).timestamp()));
        let restored = Projection::default();
        restored.restore(form.clone()).expect("restore");
        assert_eq!(
            restored.message_by_provider_ref(&reference(1)),
            Some(message(1))
        );
        assert_eq!(restored.open_messages(), projection.open_messages());
        let (again, _) = restored.to_save(position);
        assert_eq!(decode_projection(&again.bytes), Ok(form));
    }

    #[tokio::test]
    async fn the_provider_id_entries_of_a_form_1_snapshot_are_removed_by_the_next_save() {
        let clock = Arc::new(FixedClock::new(at(1, 9)));
        let store = Store::open_temporary().expect("store");
        let log: Arc<dyn EventLog> = Arc::new(store.clone());
        let old_key = [&[b'p'][..], reference(1).to_string().as_bytes()].concat();
        let mut form_1 = 1u16.to_be_bytes().to_vec();
        // Form 1's postcard body (`ProjectionV1`): three empty lists.
        form_1.extend([0, 0, 0]);
        log.save_snapshot(
            SNAPSHOT_SLOT,
            SnapshotSave {
                position: 0,
                bytes: form_1,
                entries: vec![(
                    old_key.clone(),
                    Some(message(1).as_uuid().as_bytes().to_vec()),
                )],
                replace_entries: false,
            },
        )
        .await
        .expect("save form 1");
        assert!(log
            .snapshot_entry(SNAPSHOT_SLOT, &old_key)
            .expect("read")
            .is_some());

        let hub = Hub::open(Arc::clone(&log), clock, Policy::default()).expect("open");
        assert!(
            hub.open_stats().snapshot_refused,
            "form 1 is rebuilt from the log"
        );
        hub.save_snapshot().await.expect("save");
        assert_eq!(
            log.snapshot_entry(SNAPSHOT_SLOT, &old_key).expect("read"),
            None
        );
        let saved = log.snapshot(SNAPSHOT_SLOT).expect("read").expect("saved");
        assert!(
            decode_projection(&saved.bytes).is_ok(),
            "saved in the current form"
        );
        assert_eq!(
            encode_projection(&decode_projection(&saved.bytes).expect("form")),
            saved.bytes
        );
    }
}
