//! Why a message was allowed or refused: the app reads the streams its decision read, up to the
//! decision's position, and the domain (`wagate_domain::explain`) names the events it relied on.
//!
//! Exact without recording anything more: a decision is appended atomically with the expected
//! version of every stream it read, so the events of those streams below the decision's position
//! are exactly the state it saw.

use std::collections::{BTreeSet, VecDeque};
use wagate_domain::explain::{self, ExplainError, Explanation, LinkedStream, Streams};

use wagate_domain::{ContactEvent, ContactId, Event, MessageId, StreamKey};

use crate::codec;
use crate::error::{AppError, Result};
use crate::hub::{Hub, LINKED_IDENTITIES_MAX};

/// How many events a read asks the log for at a time.
const READ_CHUNK: usize = 4096;

impl Hub {
    /// Explains the recorded decision about `message_id` (its send, and the claim that canceled
    /// it, if one did). `NotFound` for a message the log does not hold.
    pub fn explain(&self, message_id: MessageId) -> Result<Explanation> {
        let not_found = || AppError::NotFound {
            what: format!("message {message_id}"),
        };
        let message =
            self.positioned(
                &StreamKey::Message(message_id),
                u64::MAX,
                |event| match event {
                    Event::Message(inner) => Some(inner),
                    _ => None,
                },
            )?;
        let subject = explain::subject(&message).map_err(|error| match error {
            ExplainError::Empty => not_found(),
            ExplainError::NoDecision(_) => AppError::NotFound {
                what: format!("a send decision for message {message_id}"),
            },
        })?;
        let until = subject.until;
        let sender = self.positioned(
            &StreamKey::Sender(subject.sender.clone()),
            until,
            |e| match e {
                Event::Sender(inner) => Some(inner),
                _ => None,
            },
        )?;
        let contact_events = match &subject.contact {
            Some(contact) => {
                self.positioned(&StreamKey::Contact(contact.clone()), until, |e| match e {
                    Event::Contact(inner) => Some(inner),
                    _ => None,
                })?
            }
            None => Vec::new(),
        };
        let template = match &subject.template {
            Some(template) => {
                self.positioned(&StreamKey::Template(template.clone()), until, |e| match e {
                    Event::Template(inner) => Some(inner),
                    _ => None,
                })?
            }
            None => Vec::new(),
        };
        let portfolio = match explain::portfolio_read(&sender, until) {
            Some(portfolio) => {
                self.positioned(&StreamKey::Portfolio(portfolio), until, |e| match e {
                    Event::Portfolio(inner) => Some(inner),
                    _ => None,
                })?
            }
            None => Vec::new(),
        };
        let linked = match &subject.contact {
            Some(contact) => self.linked_before(contact, &contact_events, until)?,
            None => Vec::new(),
        };
        let streams = Streams {
            message: &message,
            sender: &sender,
            contact: &contact_events,
            template: &template,
            portfolio: &portfolio,
            linked: &linked,
        };
        explain::explain(&streams, self.policy()).map_err(|error| AppError::NotFound {
            what: error.to_string(),
        })
    }

    /// The identities linked to `contact` before `until` (followed through, as the send and the
    /// claim follow them), each with its events below `until`.
    fn linked_before(
        &self,
        contact: &ContactId,
        events: &[(u64, ContactEvent)],
        until: u64,
    ) -> Result<Vec<LinkedStream>> {
        let links = |events: &[(u64, ContactEvent)]| -> Vec<ContactId> {
            events
                .iter()
                .filter_map(|(_, event)| match event {
                    ContactEvent::IdentityLinked { other, .. } => Some(other.clone()),
                    _ => None,
                })
                .collect()
        };
        let mut seen: BTreeSet<ContactId> = BTreeSet::from([contact.clone()]);
        let mut queue: VecDeque<ContactId> = links(events).into();
        let mut linked = Vec::new();
        while let Some(identity) = queue.pop_front() {
            if !seen.insert(identity.clone()) {
                continue;
            }
            if linked.len() >= LINKED_IDENTITIES_MAX {
                return Err(AppError::invalid(
                    "contact",
                    format!("{contact} has more than {LINKED_IDENTITIES_MAX} linked identities"),
                ));
            }
            let stream =
                self.positioned(&StreamKey::Contact(identity.clone()), until, |e| match e {
                    Event::Contact(inner) => Some(inner),
                    _ => None,
                })?;
            queue.extend(links(&stream));
            linked.push((identity, stream));
        }
        Ok(linked)
    }

    /// `key`'s events below position `until`, decoded, with their positions, in log order.
    fn positioned<E>(
        &self,
        key: &StreamKey,
        until: u64,
        pick: fn(Event) -> Option<E>,
    ) -> Result<Vec<(u64, E)>> {
        let stream = codec::stream_id(key)?;
        let mut events = Vec::new();
        let mut version = 0;
        loop {
            let records = self
                .inner
                .log
                .read_stream(&stream, version + 1, READ_CHUNK)?;
            let count = records.len();
            for record in records {
                if record.position >= until {
                    return Ok(events);
                }
                let Some(event) = pick(codec::decode(&record)?) else {
                    return Err(AppError::Corrupt {
                        position: record.position,
                        reason: format!("a {} event in stream {key}", record.event_type),
                    });
                };
                events.push((record.position, event));
                version = record.version;
            }
            if count < READ_CHUNK {
                return Ok(events);
            }
        }
    }
}
