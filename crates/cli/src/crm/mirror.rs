//! The follower's handler: each event of interest becomes (or updates) a HubSpot record.
//!
//! - An outbound message (its intent, then each dispatch outcome and status callback) is one
//!   Communication, keyed `msg:<message id>`: created at the first event that finds it unlinked,
//!   patched with the message's current text and status at every later one.
//! - An inbound message is one Communication, keyed `in:<event id>`, created once.
//! - An opt-in or opt-out is one note on the contact, keyed `note:<event id>`, and (when
//!   configured) the contact's consent property set to `opted_in` / `opted_out`.
//!
//! Idempotent: a record's HubSpot id is recorded durably ([`Links`]) once it is created and
//! associated, so a replay patches instead of creating; the window between HubSpot's create
//! answer and that record is closed by a `pending` mark written before the create and, when an
//! idempotency property is configured, a search by that property before creating again.
//! HubSpot refusing one record raises a `crm_sync_failed` review item and the mirror goes on;
//! a 429 or an outage stops the batch at that event, to be retried after the wait.

use std::collections::{BTreeMap, HashMap};

use wagate_app::{Handler, HandlerFailure, Hub, LoggedEvent};
use wagate_domain::{
    Consent, ContactEvent, ContactId, Event, MessageEvent, MessageId, ReviewReason, ReviewSubject,
    Timestamp,
};
use wagate_providers::hubspot::{
    CommunicationInput, HubSpotClient, HubSpotError, NoteInput, ObjectType,
};

use super::links::{Links, LinksError};
use super::render;
use crate::settings::{CrmSettings, Mirrored};

/// Why one event was not mirrored.
#[derive(Debug, thiserror::Error)]
enum MirrorError {
    /// HubSpot may take it later (429, 5xx, transport).
    #[error(transparent)]
    Retry(HubSpotError),
    /// HubSpot will not take it without a person: raise a review item, go on.
    #[error("{0}")]
    Refused(String),
    /// Our own state cannot be written: stop and retry (nothing is skipped).
    #[error(transparent)]
    Local(#[from] LinksError),
    /// The hub could not be read.
    #[error("{0}")]
    Hub(String),
}

impl From<HubSpotError> for MirrorError {
    fn from(error: HubSpotError) -> Self {
        if error.is_retryable() {
            MirrorError::Retry(error)
        } else {
            MirrorError::Refused(error.to_string())
        }
    }
}

/// How the mirror behaves (from [`CrmSettings`]).
#[derive(Debug, Clone)]
pub struct MirrorOptions {
    pub mirrored: Mirrored,
    pub create_contacts: bool,
    pub consent_property: Option<String>,
    pub id_property: Option<String>,
}

impl MirrorOptions {
    pub fn from_settings(settings: &CrmSettings) -> Self {
        MirrorOptions {
            mirrored: settings.mirrored,
            create_contacts: settings.create_contacts,
            consent_property: settings.consent_property.clone(),
            id_property: settings.id_property.clone(),
        }
    }
}

/// What a record is, for creating it.
enum Record {
    Communication(CommunicationInput),
    Note(NoteInput),
}

impl Record {
    fn object(&self) -> ObjectType {
        match self {
            Record::Communication(_) => ObjectType::Communications,
            Record::Note(_) => ObjectType::Notes,
        }
    }

    fn stamp(&mut self, property: &str, key: &str) {
        let extra = match self {
            Record::Communication(input) => &mut input.extra,
            Record::Note(input) => &mut input.extra,
        };
        extra.insert(property.to_owned(), key.to_owned());
    }
}

/// Counts for a backfill's report.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct MirrorCounts {
    pub created: u64,
    pub updated: u64,
    pub refused: u64,
}

/// The handler.
#[derive(Debug)]
pub struct Mirror {
    client: HubSpotClient,
    options: MirrorOptions,
    links: Links,
    /// The body last written per outbound record (this run): an unchanged body is not patched.
    written: HashMap<String, String>,
    pub counts: MirrorCounts,
}

fn timestamp(at: &Timestamp) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

impl Mirror {
    pub fn new(client: HubSpotClient, options: MirrorOptions, links: Links) -> Self {
        Mirror {
            client,
            options,
            links,
            written: HashMap::new(),
            counts: MirrorCounts::default(),
        }
    }

    async fn mirror(&mut self, hub: &Hub, logged: &LoggedEvent) -> Result<(), MirrorError> {
        let mirrored = self.options.mirrored;
        match &logged.event {
            Event::Message(MessageEvent::TemplateSent { message_id, .. })
            | Event::Message(MessageEvent::ReplySent { message_id, .. })
                if mirrored.outbound =>
            {
                self.sync_message(hub, *message_id).await
            }
            Event::Message(
                MessageEvent::DispatchSucceeded { message_id, .. }
                | MessageEvent::DispatchFailed { message_id, .. }
                | MessageEvent::StatusChanged { message_id, .. }
                | MessageEvent::ClaimRefused { message_id, .. }
                | MessageEvent::InDoubtExpired { message_id, .. },
            ) if mirrored.status => {
                let key = format!("msg:{message_id}");
                if self.links.id(&key).is_some() || mirrored.outbound {
                    self.sync_message(hub, *message_id).await
                } else {
                    Ok(())
                }
            }
            Event::Contact(ContactEvent::InboundReceived {
                contact,
                kind,
                text,
                provider_at,
                at,
                ..
            }) if mirrored.inbound => {
                let record = Record::Communication(CommunicationInput {
                    body: render::inbound_body(kind, text),
                    timestamp: timestamp(provider_at.as_ref().unwrap_or(at)),
                    extra: BTreeMap::new(),
                });
                let key = format!("in:{}", logged.event_id);
                self.create_once(contact, &key, record).await.map(|_| ())
            }
            Event::Contact(ContactEvent::OptedIn {
                contact,
                source,
                evidence_at,
                ..
            }) if mirrored.consent => {
                let text = format!(
                    "WhatsApp opt-in recorded by wagate (source: {}).",
                    source.as_str()
                );
                self.consent(hub, contact, logged, &text, evidence_at).await
            }
            Event::Contact(ContactEvent::OptedOut {
                contact,
                source,
                evidence_at,
                ..
            }) if mirrored.consent => {
                let text = format!(
                    "WhatsApp opt-out recorded by wagate (source: {}): no more business-initiated WhatsApp messages.",
                    source.as_str()
                );
                self.consent(hub, contact, logged, &text, evidence_at).await
            }
            _ => Ok(()),
        }
    }

    /// Creates or patches the Communication of an outbound message from its current state.
    async fn sync_message(&mut self, hub: &Hub, message_id: MessageId) -> Result<(), MirrorError> {
        let view = hub
            .message(message_id)
            .map_err(|error| MirrorError::Hub(error.to_string()))?;
        let Some(intent) = view.state.intent.clone() else {
            // Refused sends never went out: nothing for the timeline.
            return Ok(());
        };
        let text = render::outbound_text(hub, &view).unwrap_or_default();
        let body = render::outbound_body(&text, &render::status_line(&view));
        let key = format!("msg:{message_id}");
        if self.written.get(&key) == Some(&body) {
            return Ok(());
        }
        match self.links.id(&key).map(ToOwned::to_owned) {
            Some(id) => {
                self.client.update_communication(&id, &body).await?;
                self.counts.updated += 1;
            }
            None => {
                let record = Record::Communication(CommunicationInput {
                    body: body.clone(),
                    timestamp: timestamp(&intent.decided_at),
                    extra: BTreeMap::new(),
                });
                if !self.create_once(&intent.contact, &key, record).await? {
                    return Ok(());
                }
            }
        }
        self.written.insert(key, body);
        Ok(())
    }

    /// The note of one opt-in or opt-out, and the consent property set to the contact's
    /// consent now: a backfill re-reading an old opt-out must not undo a later opt-in.
    async fn consent(
        &mut self,
        hub: &Hub,
        contact: &ContactId,
        logged: &LoggedEvent,
        text: &str,
        at: &Timestamp,
    ) -> Result<(), MirrorError> {
        let record = Record::Note(NoteInput {
            body: render::html(text),
            timestamp: timestamp(at),
            extra: BTreeMap::new(),
        });
        let key = format!("note:{}", logged.event_id);
        if !self.create_once(contact, &key, record).await? {
            return Ok(());
        }
        if let Some(property) = self.options.consent_property.clone() {
            let Some(hubspot_contact) = self.contact(contact).await? else {
                return Ok(());
            };
            let view = hub
                .contact(contact)
                .map_err(|error| MirrorError::Hub(error.to_string()))?;
            let state = match view.state.consent {
                Consent::OptedIn(_) => "opted_in",
                Consent::OptedOut { .. } => "opted_out",
                Consent::Unknown => return Ok(()),
            };
            let properties = BTreeMap::from([(property, state.to_owned())]);
            self.client
                .update_contact(&hubspot_contact, &properties)
                .await?;
        }
        Ok(())
    }

    /// The HubSpot contact of `contact`: remembered, found by phone, or created when allowed.
    /// `None`: none exists and creating is off (or the contact has no phone number).
    async fn contact(&mut self, contact: &ContactId) -> Result<Option<String>, MirrorError> {
        let Some(phone) = contact.phone() else {
            return Ok(None);
        };
        let key = format!("contact:{phone}");
        if let Some(id) = self.links.id(&key) {
            return Ok(Some(id.to_owned()));
        }
        let found = self.client.find_contact_by_phone(phone.as_str()).await?;
        let id = match found {
            Some(id) => id,
            None if self.options.create_contacts => {
                self.client.create_contact(phone.as_str()).await?
            }
            None => return Ok(None),
        };
        self.links.link(&key, &id)?;
        Ok(Some(id))
    }

    /// Creates the record `key` once: found when already linked (or, after a crash between
    /// create and link, by its idempotency property), else created and associated. Answers
    /// whether the record exists now (`false`: no HubSpot contact to put it on).
    async fn create_once(
        &mut self,
        contact: &ContactId,
        key: &str,
        mut record: Record,
    ) -> Result<bool, MirrorError> {
        if self.links.id(key).is_some() {
            return Ok(true);
        }
        let Some(hubspot_contact) = self.contact(contact).await? else {
            tracing::debug!(
                record = key,
                "no HubSpot contact for this record; not mirrored"
            );
            return Ok(false);
        };
        let object = record.object();
        let mut found = None;
        if let Some(property) = self.options.id_property.clone() {
            if self.links.is_pending(key) {
                found = self.client.find_by_property(object, &property, key).await?;
            }
            record.stamp(&property, key);
            if found.is_none() {
                self.links.mark_pending(key)?;
            }
        }
        let id = match found {
            Some(id) => id,
            None => {
                let id = match &record {
                    Record::Communication(input) => self.client.create_communication(input).await?,
                    Record::Note(input) => self.client.create_note(input).await?,
                };
                self.counts.created += 1;
                id
            }
        };
        // Associated before it is linked: a crash in between repeats the (idempotent) PUT.
        self.client
            .associate_to_contact(object, &id, &hubspot_contact)
            .await?;
        self.links.link(key, &id)?;
        Ok(true)
    }

    /// Raises the review item for a record HubSpot refused.
    async fn raise(
        &mut self,
        hub: &Hub,
        logged: &LoggedEvent,
        cause: &str,
    ) -> Result<(), HandlerFailure> {
        let subject = subject(&logged.event);
        let detail = format!("HubSpot: {cause} (log position {})", logged.position);
        // HubSpot's message may quote a value (a phone number): it goes to the item, not the log.
        tracing::warn!(
            position = logged.position,
            "HubSpot refused a record; raising a crm_sync_failed review item"
        );
        self.counts.refused += 1;
        hub.raise_review(ReviewReason::CrmSyncFailed, subject, &detail)
            .await
            .map(|_| ())
            .map_err(|error| HandlerFailure::new(error.to_string()))
    }
}

/// Who and what a refused record is about.
fn subject(event: &Event) -> ReviewSubject {
    let mut subject = ReviewSubject::default();
    match event {
        Event::Message(message) => {
            subject.message_id = message.message_id();
        }
        Event::Contact(contact) => subject.contact = Some(contact.contact().clone()),
        _ => {}
    }
    subject
}

impl Handler for Mirror {
    async fn handle(&mut self, hub: &Hub, events: &[LoggedEvent]) -> Result<(), HandlerFailure> {
        let mut handled_through = None;
        for logged in events {
            match self.mirror(hub, logged).await {
                Ok(()) => {}
                Err(MirrorError::Refused(cause)) => {
                    if let Err(mut failure) = self.raise(hub, logged, &cause).await {
                        failure.handled_through = handled_through;
                        return Err(failure);
                    }
                }
                Err(error) => {
                    let retry_after = match &error {
                        MirrorError::Retry(HubSpotError::RateLimited(wait)) => Some(*wait),
                        _ => None,
                    };
                    return Err(HandlerFailure {
                        handled_through,
                        retry_after,
                        cause: error.to_string(),
                    });
                }
            }
            handled_through = Some(logged.position);
        }
        Ok(())
    }
}
