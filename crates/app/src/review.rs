//! The review queue: every item that needs a person, as a projection of the log.
//!
//! The projection is an in-memory [`Follower`] (rebuilt from the log at every start, so it is
//! never missing or stale after an upgrade) whose handler applies the domain's
//! [`review::raised_by`] to each event: an item's id is the log position of the event that
//! raised it, stable across rebuilds. Each read catches the projection up to the durable head
//! first, so an item is listed as soon as the event that raised it is acknowledged.
//! Resolutions are `ReviewResolved` events on the `review:queue` stream, decided by
//! [`review::resolve`] against that stream's state, so two people resolving one item cannot
//! both succeed.

use std::collections::BTreeMap;

use wagate_domain::review::{self, Raise, ReviewDecision, ReviewReason, ReviewSubject};
use wagate_domain::{
    Actor, Event, MessageContent, MessageEvent, MessageId, MessageState, ReviewEvent, ReviewState,
    StreamKey, Timestamp,
};

use crate::error::{AppError, Result};
use crate::follower::{Follower, FollowerSettings, Handler, HandlerFailure, Step, StepError};
use crate::hub::Hub;
use crate::reads::LoggedEvent;

/// Whether an item still needs a person.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReviewItemState {
    Open,
    Resolved,
}

impl ReviewItemState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Resolved => "resolved",
        }
    }

    pub fn parse(input: &str) -> Option<Self> {
        [Self::Open, Self::Resolved]
            .into_iter()
            .find(|state| state.as_str() == input)
    }
}

/// How a person resolved an item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolution {
    pub decision: ReviewDecision,
    pub note: String,
    /// Who resolved it (the event's actor; `None` when none was recorded).
    pub by: Option<Actor>,
    pub at: Timestamp,
    /// Position of the `ReviewResolved` event.
    pub position: u64,
}

/// One item of the queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReviewItem {
    /// The log position of the event that raised it.
    pub id: u64,
    pub reason: ReviewReason,
    /// What it is about; a message's contact, sender and template are filled in from the
    /// message.
    pub subject: ReviewSubject,
    pub detail: String,
    pub raised_at: Timestamp,
    pub resolution: Option<Resolution>,
}

impl ReviewItem {
    pub fn state(&self) -> ReviewItemState {
        match self.resolution {
            Some(_) => ReviewItemState::Resolved,
            None => ReviewItemState::Open,
        }
    }

    /// For people: what resolving it means.
    pub fn resolving(&self) -> &'static str {
        self.reason.resolving()
    }

    /// The item as the domain raised it (for [`review::resolve`]).
    fn raise(&self) -> Raise {
        Raise {
            reason: self.reason,
            subject: self.subject.clone(),
            detail: self.detail.clone(),
            at: self.raised_at,
        }
    }
}

/// Which items to list.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReviewFilter {
    pub state: Option<ReviewItemState>,
    pub reason: Option<ReviewReason>,
}

impl ReviewFilter {
    fn admits(&self, item: &ReviewItem) -> bool {
        self.state.is_none_or(|state| item.state() == state)
            && self.reason.is_none_or(|reason| item.reason == reason)
    }
}

/// What an event means for the queue: a new item, a resolution, or nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReviewChange {
    Raised(ReviewItem),
    Resolved(ReviewItem),
}

impl ReviewChange {
    /// The queue's change from one logged event; a message's contact, sender and template
    /// are filled in from the message's state.
    pub fn of(hub: &Hub, event: &LoggedEvent) -> Result<Option<Self>> {
        if let Event::Review(ReviewEvent::Resolved {
            item,
            reason,
            decision,
            note,
            at,
        }) = &event.event
        {
            // The item itself is the queue's; the change carries what the event says.
            return Ok(Some(ReviewChange::Resolved(ReviewItem {
                id: *item,
                reason: *reason,
                subject: ReviewSubject::default(),
                detail: String::new(),
                raised_at: *at,
                resolution: Some(Resolution {
                    decision: *decision,
                    note: note.clone(),
                    by: event.actor.clone(),
                    at: *at,
                    position: event.position,
                }),
            })));
        }
        let Some(raise) = review::raised_by(&event.event) else {
            return Ok(None);
        };
        let mut subject = raise.subject;
        if let Some(message_id) = subject.message_id {
            let message = hub.load::<MessageState>(&StreamKey::Message(message_id))?;
            if let Some(intent) = message.state.intent {
                subject.contact.get_or_insert(intent.contact);
                subject.sender.get_or_insert(intent.sender);
                if let MessageContent::Template { template, .. } = intent.content {
                    subject.template.get_or_insert(template);
                }
            }
        }
        Ok(Some(ReviewChange::Raised(ReviewItem {
            id: event.position,
            reason: raise.reason,
            subject,
            detail: raise.detail,
            raised_at: raise.at,
            resolution: None,
        })))
    }
}

/// The projection: items by id, and the follower that feeds them.
#[derive(Debug)]
pub(crate) struct ReviewQueue {
    inner: tokio::sync::Mutex<Projected>,
}

#[derive(Debug)]
struct Projected {
    follower: Follower,
    items: BTreeMap<u64, ReviewItem>,
    /// Messages the provider accepted that have no settled status yet, with when they were
    /// accepted: the candidates for `no_terminal_status`.
    awaiting: BTreeMap<MessageId, Timestamp>,
    /// What the webhook-silence watcher needs.
    callbacks: CallbackWatch,
}

/// Status callbacks seen, and the accepted messages still waiting for their first one.
#[derive(Debug, Default)]
struct CallbackWatch {
    /// When the last status callback (of any message, matched or not) was recorded.
    last: Option<Timestamp>,
    /// Accepted messages with no status callback yet, with when they were accepted.
    uncalled: BTreeMap<MessageId, Timestamp>,
}

impl CallbackWatch {
    fn track(&mut self, event: &Event) {
        match event {
            Event::Message(MessageEvent::DispatchSucceeded { message_id, at, .. }) => {
                self.uncalled.entry(*message_id).or_insert(*at);
            }
            Event::Message(MessageEvent::StatusChanged { message_id, at, .. }) => {
                self.uncalled.remove(message_id);
                self.last = self.last.max(Some(*at));
            }
            Event::Message(MessageEvent::UnmatchedStatusReceived { at, .. }) => {
                self.last = self.last.max(Some(*at));
            }
            // Settled without a callback: nothing more is expected.
            Event::Message(
                MessageEvent::InDoubtExpired { message_id, .. }
                | MessageEvent::DispatchFailed {
                    message_id,
                    retry_at: None,
                    ..
                },
            ) => {
                self.uncalled.remove(message_id);
            }
            _ => {}
        }
    }

    fn view(&self) -> review::Callbacks {
        review::Callbacks {
            last: self.last,
            in_flight: self.uncalled.len(),
            oldest_in_flight: self.uncalled.values().min().copied(),
        }
    }
}

impl Default for ReviewQueue {
    fn default() -> Self {
        ReviewQueue {
            inner: tokio::sync::Mutex::new(Projected {
                follower: Follower::in_memory("review-queue", FollowerSettings::default()),
                items: BTreeMap::new(),
                awaiting: BTreeMap::new(),
                callbacks: CallbackWatch::default(),
            }),
        }
    }
}

/// Applies changes to the items.
struct Projector<'a> {
    items: &'a mut BTreeMap<u64, ReviewItem>,
    awaiting: &'a mut BTreeMap<MessageId, Timestamp>,
    callbacks: &'a mut CallbackWatch,
}

impl Projector<'_> {
    /// Tracks the messages still waiting for a settled status: delivered or read (read
    /// receipts may be off, so delivered counts), or failed for good.
    fn track(&mut self, event: &Event) {
        self.callbacks.track(event);
        match event {
            Event::Message(MessageEvent::DispatchSucceeded { message_id, at, .. }) => {
                self.awaiting.entry(*message_id).or_insert(*at);
            }
            Event::Message(MessageEvent::StatusChanged {
                message_id, status, ..
            }) if status.is_failure() || status.rank() >= Some(4) => {
                self.awaiting.remove(message_id);
            }
            Event::Message(
                MessageEvent::InDoubtExpired { message_id, .. }
                | MessageEvent::DispatchFailed {
                    message_id,
                    retry_at: None,
                    ..
                },
            ) => {
                self.awaiting.remove(message_id);
            }
            _ => {}
        }
    }
}

impl Handler for Projector<'_> {
    async fn handle(&mut self, hub: &Hub, events: &[LoggedEvent]) -> Result<(), HandlerFailure> {
        for event in events {
            self.track(&event.event);
            let change = ReviewChange::of(hub, event).map_err(|error| HandlerFailure {
                handled_through: None,
                retry_after: None,
                cause: error.to_string(),
            })?;
            match change {
                Some(ReviewChange::Raised(item)) => {
                    self.items.insert(item.id, item);
                }
                Some(ReviewChange::Resolved(resolved)) => {
                    if let Some(item) = self.items.get_mut(&resolved.id) {
                        item.resolution = resolved.resolution;
                    }
                }
                None => {}
            }
        }
        Ok(())
    }
}

impl Hub {
    /// Brings the projection up to the durable head and runs `read` on its items.
    async fn with_review_items<T>(
        &self,
        read: impl FnOnce(&BTreeMap<u64, ReviewItem>) -> T,
    ) -> Result<T> {
        self.with_review(|projected| read(&projected.items)).await
    }

    /// Brings the projection up to the durable head and runs `read` on it.
    async fn with_review<T>(&self, read: impl FnOnce(&Projected) -> T) -> Result<T> {
        let mut projected = self.inner.review.inner.lock().await;
        let Projected {
            follower,
            items,
            awaiting,
            callbacks,
        } = &mut *projected;
        loop {
            let mut projector = Projector {
                items,
                awaiting,
                callbacks,
            };
            match follower.step(self, &mut projector).await {
                Ok(Step::Advanced { more: true, .. }) => continue,
                Ok(_) => break,
                Err(StepError::Read(error) | StepError::Save(error)) => return Err(error),
                // A message's state could not be loaded: the log's failure, said as such.
                Err(StepError::Handler(failure)) => {
                    return Err(AppError::Corrupt {
                        position: follower.position() + 1,
                        reason: failure.cause,
                    })
                }
            }
        }
        Ok(read(&projected))
    }

    /// The review queue's items that `filter` admits, oldest first.
    pub async fn review_items(&self, filter: ReviewFilter) -> Result<Vec<ReviewItem>> {
        self.with_review_items(|items| {
            items
                .values()
                .filter(|item| filter.admits(item))
                .cloned()
                .collect()
        })
        .await
    }

    /// One item; [`AppError::NotFound`] when no event raised item `id`.
    pub async fn review_item(&self, id: u64) -> Result<ReviewItem> {
        self.with_review_items(|items| items.get(&id).cloned())
            .await?
            .ok_or_else(|| AppError::NotFound {
                what: format!("review item {id}"),
            })
    }

    /// Resolves item `id` with `decision` (as the acting person, who is recorded as the
    /// event's actor). A confirmed opt-out request also records the contact's opt-out.
    pub async fn resolve_review(
        &self,
        id: u64,
        decision: ReviewDecision,
        note: &str,
    ) -> Result<ReviewItem> {
        let item = self.review_item(id).await?;
        let key = StreamKey::Review;
        {
            let _guards = self.inner.locks.lock(&[&key]).await;
            self.retrying(|| async {
                let loaded = self.load::<ReviewState>(&key)?;
                let events =
                    review::resolve(&loaded.state, id, &item.raise(), decision, note, self.now())
                        .map_err(|error| match error {
                        review::ReviewError::AlreadyResolved(_) => AppError::Conflict {
                            reason: error.to_string(),
                        },
                        review::ReviewError::DecisionNotAllowed { .. } => AppError::Invalid {
                            field: "decision".into(),
                            reason: error.to_string(),
                        },
                    })?;
                self.commit_simple(key.clone(), loaded.version, events)
                    .await
            })
            .await?;
        }
        self.review_item(id).await
    }

    /// Raises `no_terminal_status` for every message the provider accepted more than `after`
    /// ago that has no settled status (delivered, read, failed) yet, once per message (the
    /// domain decides, with the clock's time as an argument). Answers the new items' ids.
    pub async fn raise_overdue(&self, after: chrono::TimeDelta) -> Result<Vec<u64>> {
        let now = self.now();
        let candidates: Vec<(MessageId, Timestamp)> = self
            .with_review(|projected| {
                projected
                    .awaiting
                    .iter()
                    .filter(|(_, sent_at)| now - **sent_at >= after)
                    .map(|(id, sent_at)| (*id, *sent_at))
                    .collect()
            })
            .await?;
        let key = StreamKey::Review;
        let mut raised = Vec::new();
        for (message_id, sent_at) in candidates {
            let _guards = self.inner.locks.lock(&[&key]).await;
            let positions = self
                .retrying(|| async {
                    let loaded = self.load::<ReviewState>(&key)?;
                    let events: Vec<Event> = review::no_terminal_status(
                        &loaded.state,
                        message_id,
                        sent_at,
                        self.now(),
                        after,
                    )
                    .into_iter()
                    .collect();
                    self.commit_simple(key.clone(), loaded.version, events)
                        .await
                })
                .await?;
            raised.extend(positions);
        }
        Ok(raised)
    }

    /// Raises `webhook_silence` when messages wait for their first status callback and none
    /// arrived for `after` (the domain decides, with the clock's time as an argument), once per
    /// silence. Answers the new item's id.
    pub async fn raise_webhook_silence(&self, after: chrono::TimeDelta) -> Result<Option<u64>> {
        let callbacks = self
            .with_review(|projected| projected.callbacks.view())
            .await?;
        let key = StreamKey::Review;
        let _guards = self.inner.locks.lock(&[&key]).await;
        let positions = self
            .retrying(|| async {
                let loaded = self.load::<ReviewState>(&key)?;
                let events: Vec<Event> =
                    review::webhook_silence(&loaded.state, callbacks, self.now(), after)
                        .into_iter()
                        .collect();
                self.commit_simple(key.clone(), loaded.version, events)
                    .await
            })
            .await?;
        Ok(positions.first().copied())
    }

    /// Raises `webhook_rejections` when the rejections at `times` (the rejection log's recent
    /// ones) make a burst, at most once per burst window. Answers the new item's id.
    pub async fn raise_rejection_burst(
        &self,
        times: &[Timestamp],
        burst: review::RejectionBurst,
    ) -> Result<Option<u64>> {
        let key = StreamKey::Review;
        let _guards = self.inner.locks.lock(&[&key]).await;
        let positions = self
            .retrying(|| async {
                let loaded = self.load::<ReviewState>(&key)?;
                let events: Vec<Event> =
                    review::webhook_rejections(&loaded.state, times, self.now(), burst)
                        .into_iter()
                        .collect();
                self.commit_simple(key.clone(), loaded.version, events)
                    .await
            })
            .await?;
        Ok(positions.first().copied())
    }

    /// Raises an item only a watcher notices (the alert endpoint failing, …): appends a
    /// `ReviewRaised`, whose position is the item's id.
    pub async fn raise_review(
        &self,
        reason: ReviewReason,
        subject: ReviewSubject,
        detail: &str,
    ) -> Result<u64> {
        let key = StreamKey::Review;
        let _guards = self.inner.locks.lock(&[&key]).await;
        let event = Event::Review(ReviewEvent::Raised {
            reason,
            subject,
            detail: detail.to_owned(),
            at: self.now(),
        });
        let positions = self
            .retrying(|| async {
                let loaded = self.load::<ReviewState>(&key)?;
                self.commit_simple(key.clone(), loaded.version, vec![event.clone()])
                    .await
            })
            .await?;
        positions.first().copied().ok_or_else(|| AppError::Corrupt {
            position: 0,
            reason: "the log answered no position for a written event".into(),
        })
    }
}

#[cfg(test)]
#[path = "review_tests.rs"]
mod tests;
