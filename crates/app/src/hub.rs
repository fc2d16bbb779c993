//! The command service: for each command, load the aggregates it reads, decide with the domain,
//! and append the result with the expected version of every stream read, retrying a bounded
//! number of times on conflict. Nothing here decides anything: the domain does.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

use chrono::TimeDelta;
use tracing::{debug, info_span, Instrument};
use wagate_domain::decide::{
    self, ClaimDecision, ClaimDispatch, CreateTemplate, EarlyStatus, LinkIdentities,
    ReceiveGroupMessage, ReceiveInbound, RecordOptIn, RecordOptOut, RecordOutcome,
    RecordProviderNotice, RegisterSender, RegisterTemplate, RequestReview, SendMessage, SendState,
    SetContactFlag,
};
use wagate_domain::{
    Actor, ApprovalStatus, ContactId, ContactState, Event, MessageId, MessageState, MessagingLimit,
    Policy, PortfolioId, PortfolioState, Recipient, SendContent, SenderState, StreamKey,
    TemplateCategory, TemplateId, TemplateState, Timestamp, WhatsAppAddress,
};
use wagate_store::send_result::{self, RequestDigest, SendResult};
use wagate_store::{AppendOutcome, AppendRequest, EventLog, ExpectedVersion, IdempotencyKey};

use crate::aggregates::{Cache, Loaded, Stored};
use crate::clock::Clock;
use crate::codec;
use crate::consent::PendingLoaded;
use crate::costs::Costs;
use crate::counts::Counts;
use crate::error::{AppError, Result};
use crate::locks::StreamLocks;
use crate::pricing::PriceTable;
use crate::projection::Projection;
use crate::reads::LoggedEvent;
use crate::review::ReviewQueue;
use crate::send_digest;
use crate::snapshots::Saver;
use crate::views::{
    ClaimedMessage, ContactView, DispatchUpdate, Ingested, MessageView, SendAccepted,
    SenderWindowView,
};

/// Attempts per command before giving up on a conflict. Same-stream commands are serialized by
/// the stream locks, so conflicts come only from streams shared across contacts (portfolios).
const CONFLICT_ATTEMPTS_MAX: u32 = 16;

/// The default webhook de-duplication window (the hub uses its policy's `webhook_dedup`, which
/// defaults to this): longer than any provider retries (Meta: 7 days), because an inbound
/// re-applied after its key expired would reopen a window or replay a START.
pub const WEBHOOK_DEDUP_TTL: TimeDelta = wagate_domain::policy::WEBHOOK_DEDUP_DEFAULT;

/// The most identities of one person a decision loads (the contact and every identity reachable
/// through `IdentityLinked`). A person has a number, maybe a `wa_id` spelled differently, a
/// business-scoped user id and a few old numbers; more than this is refused rather than judged
/// on a partial view.
pub const LINKED_IDENTITIES_MAX: usize = 32;

/// How long an `Idempotency-Key` of the command API is remembered.
pub const COMMAND_KEY_TTL: TimeDelta = TimeDelta::hours(24);

/// The hub's command service. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Hub {
    pub(crate) inner: Arc<Inner>,
    /// Who the commands of this handle are asked by: recorded with every event they append,
    /// never read by a decision (see [`Hub::acting`]).
    actor: Option<Actor>,
    /// What messages cost (`pricing.rs`); empty unless the composition sets one, and then
    /// every cost is reported unpriced.
    prices: PriceTable,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) log: Arc<dyn EventLog>,
    clock: Arc<dyn Clock>,
    policy: Policy,
    pub(crate) cache: Cache,
    pub(crate) locks: StreamLocks,
    pub(crate) projection: Projection,
    pub(crate) saver: Saver,
    pub(crate) counts: Counts,
    /// The cost ledger (`costs.rs`), caught up on every read.
    pub(crate) costs: Costs,
    /// The review queue's projection (`review.rs`), caught up on every read.
    pub(crate) review: ReviewQueue,
    /// The outgoing webhooks' signing key (`endpoints.rs`), read or created on first use.
    pub(crate) endpoint_key: tokio::sync::OnceCell<Vec<u8>>,
    /// Manual retries of webhook endpoints (`deliveries.rs`): each endpoint's follower listens
    /// for its id and retries at once, cutting its backoff.
    pub(crate) endpoint_retries: tokio::sync::broadcast::Sender<wagate_domain::EndpointId>,
    /// Serializes writes of the webhook delivery logs (`delivery_log.rs`: read, then save).
    pub(crate) delivery_log: tokio::sync::Mutex<()>,
}

/// A decision ready to append: the streams it read (with their versions) and what it writes.
#[derive(Debug, Default)]
pub(crate) struct Plan {
    streams: BTreeMap<StreamKey, (ExpectedVersion, Vec<Event>)>,
    order: Vec<StreamKey>,
    key: Option<IdempotencyKey>,
}

impl Plan {
    /// The decision read `key` at `version`: the append fails if it changed.
    pub(crate) fn read(&mut self, key: StreamKey, version: u64) {
        self.entry(key).0 = ExpectedVersion::Exact(version);
    }

    /// Appends `events`, each to its own stream (unread streams are appended at any version:
    /// they receive facts, not decisions).
    pub(crate) fn write(&mut self, events: Vec<Event>) {
        for event in events {
            self.entry(event.stream()).1.push(event);
        }
    }

    fn entry(&mut self, key: StreamKey) -> &mut (ExpectedVersion, Vec<Event>) {
        if !self.streams.contains_key(&key) {
            self.order.push(key.clone());
        }
        self.streams
            .entry(key)
            .or_insert((ExpectedVersion::Any, Vec::new()))
    }

    fn is_empty(&self) -> bool {
        self.streams.values().all(|(_, events)| events.is_empty())
    }

    fn into_request(mut self, actor: Option<&Actor>) -> Result<(AppendRequest, Vec<Event>)> {
        let mut request = AppendRequest {
            streams: Vec::new(),
            idempotency_key: self.key.take(),
        };
        let mut written = Vec::new();
        for key in self.order {
            let Some((expected, events)) = self.streams.remove(&key) else {
                continue;
            };
            let encoded = events
                .iter()
                .map(|event| codec::encode(event, actor))
                .collect::<Result<Vec<_>>>()?;
            request = request.with_stream(codec::stream_id(&key)?, expected, encoded);
            written.extend(events);
        }
        Ok((request, written))
    }
}

/// What an append did.
pub(crate) enum Appended {
    Written {
        positions: Vec<u64>,
        events: Vec<Event>,
    },
    Duplicate {
        result: Vec<u8>,
    },
}

impl Hub {
    /// Opens the service on `log`, restoring the in-memory indexes from their snapshot and the
    /// log's tail after it (the whole log when there is no usable snapshot). The hub
    /// is the log's only writer and, through its read side (`reads`), the only door to it.
    pub fn open(log: Arc<dyn EventLog>, clock: Arc<dyn Clock>, policy: Policy) -> Result<Self> {
        let hub = Self {
            inner: Arc::new(Inner {
                log,
                clock,
                policy,
                cache: Cache::default(),
                locks: StreamLocks::default(),
                projection: Projection::default(),
                saver: Saver::default(),
                counts: Counts::default(),
                costs: Costs::default(),
                review: ReviewQueue::default(),
                endpoint_key: tokio::sync::OnceCell::new(),
                endpoint_retries: tokio::sync::broadcast::channel(64).0,
                delivery_log: tokio::sync::Mutex::new(()),
            }),
            actor: None,
            prices: PriceTable::empty(),
        };
        hub.restore_projection()?;
        Ok(hub)
    }

    /// A hub on a fresh sled log in a temporary directory (removed when the hub and the log are
    /// gone), whose idempotency keys expire on `clock` too: for tests and demos, which would
    /// otherwise each compose a store and a hub by hand.
    pub fn open_temporary(clock: Arc<dyn Clock>, policy: Policy) -> Result<Self> {
        let keys_clock = Arc::clone(&clock);
        let log = wagate_store::Store::open_temporary_with(wagate_store::Options {
            clock: wagate_store::Clock::from_fn(move || keys_clock.now().timestamp_millis()),
            ..wagate_store::Options::default()
        })?;
        Self::open(Arc::new(log), clock, policy)
    }

    /// A hub on a temporary sled log whose next commit can be made to fail (`fault.fail_next()`),
    /// as a failed fdatasync would: for tests of what readers see once the log has failed.
    pub fn open_temporary_with_fault(
        clock: Arc<dyn Clock>,
        policy: Policy,
        fault: wagate_store::SyncFault,
    ) -> Result<Self> {
        let log = wagate_store::Store::open_temporary_with(wagate_store::Options {
            sync_fault: fault,
            ..wagate_store::Options::default()
        })?;
        Self::open(Arc::new(log), clock, policy)
    }

    /// The same hub, whose commands record `actor` as who asked for every event they append.
    /// Cheap (a clone of an `Arc`); the handle the HTTP face makes per request.
    pub fn acting(&self, actor: Actor) -> Hub {
        Hub {
            inner: Arc::clone(&self.inner),
            actor: Some(actor),
            prices: self.prices.clone(),
        }
    }

    /// The same hub, pricing messages by `prices` (the cost ledger and previews read it).
    pub fn with_price_table(mut self, prices: PriceTable) -> Hub {
        self.prices = prices;
        self
    }

    /// The price table this hub prices messages by (cheap to clone: shared inside).
    pub fn price_table(&self) -> &PriceTable {
        &self.prices
    }

    /// Who this handle's commands are recorded as asked by.
    pub fn actor(&self) -> Option<&Actor> {
        self.actor.as_ref()
    }

    pub fn policy(&self) -> &Policy {
        &self.inner.policy
    }

    pub fn now(&self) -> Timestamp {
        self.inner.clock.now()
    }

    pub(crate) fn load<A: Stored>(&self, key: &StreamKey) -> Result<Loaded<A>> {
        self.inner.cache.load(&self.inner.log, key)
    }

    /// Loads `key`'s aggregate for a read that says nothing about whether it will be decided on
    /// again (a view, the projection's look after a write): a cached state serves and is
    /// refreshed, but one not cached stays out of the cache, so such reads cannot push out the
    /// aggregates commands keep deciding on.
    pub(crate) fn load_without_caching<A: Stored>(&self, key: &StreamKey) -> Result<Loaded<A>> {
        self.inner.cache.load_without_caching(&self.inner.log, key)
    }

    /// Loads `key`'s aggregate, or an empty one at version 0 when the decision reads no such
    /// stream (no template for freeform text, no portfolio for an unknown sender).
    fn load_or_empty<A: Stored>(&self, key: Option<&StreamKey>) -> Result<Loaded<A>> {
        match key {
            Some(key) => self.load(key),
            None => Ok(Loaded {
                state: A::default(),
                version: 0,
            }),
        }
    }

    /// The message state the projection indexes a message event with: the message's aggregate
    /// now, read without filling the cache (a write or a replay says nothing about whether the
    /// message will be decided on again: a refused send's never is).
    pub(crate) fn projected_message_state(&self, event: &Event) -> Result<Option<MessageState>> {
        let Event::Message(message_event) = event else {
            return Ok(None);
        };
        let Some(id) = message_event.message_id() else {
            return Ok(None);
        };
        Ok(Some(
            self.load_without_caching::<MessageState>(&StreamKey::Message(id))?
                .state,
        ))
    }

    /// Appends a plan durably and indexes what it wrote.
    pub(crate) async fn commit(&self, plan: Plan) -> Result<Appended> {
        let (request, events) = plan.into_request(self.actor.as_ref())?;
        let outcome = self.inner.log.append(request).await?;
        match outcome {
            AppendOutcome::Appended(committed) | AppendOutcome::AlreadyAppended(committed) => {
                // The log answers the positions in request order, which is `events`' order.
                for (event, position) in events.iter().zip(&committed.positions) {
                    let state = self.projected_message_state(event)?;
                    self.inner.projection.observe(
                        self.inner.log.as_ref(),
                        event,
                        *position,
                        state.as_ref(),
                    )?;
                }
                self.after_append(committed.positions.len() as u64);
                Ok(Appended::Written {
                    positions: committed.positions,
                    events,
                })
            }
            AppendOutcome::Duplicate { result, .. } => Ok(Appended::Duplicate { result }),
        }
    }

    /// The stored form of a webhook's de-duplication key, or `None` when that webhook is already
    /// recorded (the log answers only keys that are durable).
    fn unseen_webhook(&self, dedup_key: &str) -> Result<Option<String>> {
        let dedup = format!("webhook:{dedup_key}");
        Ok(match self.inner.log.idempotency_key(dedup.as_bytes())? {
            Some(_) => None,
            None => Some(dedup),
        })
    }

    /// True when a webhook with `dedup_key` was already recorded: a caller that acts on a
    /// webhook through other commands (an account notice suspending senders) asks first, so a
    /// redelivery is not acted on twice.
    pub fn webhook_seen(&self, dedup_key: &str) -> Result<bool> {
        Ok(self.unseen_webhook(dedup_key)?.is_none())
    }

    /// Appends a webhook's plan: what it appended, or `Duplicate` when its key was recorded
    /// meanwhile (the pre-check and the append race; the append decides).
    async fn commit_webhook(&self, plan: Plan) -> Result<Ingested> {
        Ok(match self.commit(plan).await? {
            Appended::Written { positions, events } => Ingested::Appended { positions, events },
            Appended::Duplicate { .. } => Ingested::Duplicate,
        })
    }

    fn webhook_key(&self, dedup: &str) -> IdempotencyKey {
        IdempotencyKey {
            key: dedup.as_bytes().to_vec(),
            // At least the providers' retry horizon (Meta retries for 7 days): a key that expired
            // sooner would let a retried or replayed webhook be applied a second time.
            expires_at_ms: self.expires_at_ms(self.inner.policy.webhook_dedup),
            result: Vec::new(),
        }
    }

    fn expires_at_ms(&self, ttl: TimeDelta) -> i64 {
        (self.now() + ttl).timestamp_millis()
    }

    /// Runs `attempt` until it does not conflict, at most `CONFLICT_ATTEMPTS_MAX` times.
    pub(crate) async fn retrying<T, F, Fut>(&self, mut attempt: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        for number in 1..=CONFLICT_ATTEMPTS_MAX {
            match attempt().await {
                Err(error) if error.is_conflict() => {
                    debug!(attempt = number, %error, "conflict, deciding again");
                }
                other => return other,
            }
        }
        Err(AppError::Contended {
            attempts: CONFLICT_ATTEMPTS_MAX,
        })
    }

    // -----------------------------------------------------------------------------------------
    // Consent and inbound

    pub async fn opt_in(&self, command: RecordOptIn) -> Result<Vec<u64>> {
        let key = StreamKey::Contact(command.contact.clone());
        // Wordings are immutable once published, so reading it outside the contact's lock
        // cannot go stale in a way that matters.
        let wording = self
            .load::<wagate_domain::ConsentState>(&StreamKey::Consent(
                wagate_domain::consent::wording_stream(&command.wording_version),
            ))?
            .state;
        self.decide_one(key, |contact: &ContactState, now| {
            Ok(decide::opt_in(contact, &wording, &command, now)?)
        })
        .instrument(info_span!("opt_in", contact = %command.contact))
        .await
    }

    pub async fn opt_out(&self, command: RecordOptOut) -> Result<Vec<u64>> {
        let key = StreamKey::Contact(command.contact.clone());
        self.decide_one(key, |contact: &ContactState, now| {
            Ok(decide::opt_out(contact, &command, now))
        })
        .instrument(info_span!("opt_out", contact = %command.contact))
        .await
    }

    pub async fn set_contact_flag(&self, command: SetContactFlag) -> Result<Vec<u64>> {
        let key = StreamKey::Contact(command.contact.clone());
        self.decide_one(key, |contact: &ContactState, now| {
            Ok(decide::set_contact_flag(contact, &command, now))
        })
        .await
    }

    /// Records what a provider billed for a message (Twilio's Message resource `price`, read
    /// once final): the cost ledger prices the message by it (docs/costs.md).
    pub async fn record_provider_price(
        &self,
        message_id: MessageId,
        provider: wagate_domain::ProviderKind,
        amount_micros: i64,
        currency: &str,
    ) -> Result<Vec<u64>> {
        let key = StreamKey::Message(message_id);
        self.decide_one(key, |_: &MessageState, now| {
            Ok(vec![wagate_domain::MessageEvent::PriceReported {
                message_id,
                provider,
                amount_micros,
                currency: currency.to_owned(),
                at: now,
            }
            .into()])
        })
        .instrument(info_span!("provider_price", message_id = %message_id))
        .await
    }

    /// Runs a command that reads and writes one stream: lock it, load it, decide, append at the
    /// version read, and decide again on a conflict.
    pub(crate) async fn decide_one<A, F>(&self, key: StreamKey, decide: F) -> Result<Vec<u64>>
    where
        A: Stored,
        F: Fn(&A, Timestamp) -> Result<Vec<Event>>,
    {
        let _guards = self.inner.locks.lock(&[&key]).await;
        self.retrying(|| async {
            let loaded = self.load::<A>(&key)?;
            let events = decide(&loaded.state, self.now())?;
            self.commit_simple(key.clone(), loaded.version, events)
                .await
        })
        .await
    }

    /// Appends `events` to the stream they were decided on (read at `version`).
    pub(crate) async fn commit_simple(
        &self,
        key: StreamKey,
        version: u64,
        events: Vec<Event>,
    ) -> Result<Vec<u64>> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let mut plan = Plan::default();
        plan.read(key, version);
        plan.write(events);
        match self.commit(plan).await? {
            Appended::Written { positions, .. } => Ok(positions),
            Appended::Duplicate { .. } => Ok(Vec::new()),
        }
    }

    /// An inbound message from a provider webhook, de-duplicated by `dedup_key`.
    pub async fn receive_inbound(
        &self,
        command: ReceiveInbound,
        dedup_key: &str,
    ) -> Result<Ingested> {
        let key = StreamKey::Contact(command.contact.clone());
        let Some(dedup) = self.unseen_webhook(dedup_key)? else {
            return Ok(Ingested::Duplicate);
        };
        let _guards = self.inner.locks.lock(&[&key]).await;
        self.retrying(|| async {
            let contact = self.load::<ContactState>(&key)?;
            let now = self.now();
            let mut events = decide::inbound(&contact.state, &command, &self.inner.policy, now)?;
            let mut plan = Plan::default();
            plan.read(key.clone(), contact.version);
            let confirmation =
                self.campaign_confirmation(&command, &contact.state, &events, now)?;
            if let Some((reads, confirmed)) = confirmation {
                for (stream, version) in reads {
                    plan.read(stream, version);
                }
                events.extend(confirmed);
            }
            plan.write(events);
            plan.key = Some(self.webhook_key(&dedup));
            self.commit_webhook(plan).await
        })
        .instrument(info_span!("inbound", contact = %command.contact))
        .await
    }

    /// A provider status callback, de-duplicated by `dedup_key`. Matched to its message by the
    /// wagate message id (callback URL, `biz_opaque_callback_data`) or the provider id; a
    /// callback that matches nothing yet is kept on the provider id's stream and joined later.
    pub async fn record_status_callback(
        &self,
        message_id: Option<MessageId>,
        command: StatusCallback,
        dedup_key: &str,
    ) -> Result<Ingested> {
        let Some(dedup) = self.unseen_webhook(dedup_key)? else {
            return Ok(Ingested::Duplicate);
        };
        let by_ref = command
            .provider_ref
            .as_ref()
            .and_then(|reference| self.inner.projection.message_by_provider_ref(reference));
        let message_id = match message_id {
            Some(id) if self.load::<MessageState>(&StreamKey::Message(id))?.version > 0 => Some(id),
            _ => by_ref,
        };
        let lock_key = match (&message_id, &command.provider_ref) {
            (Some(id), _) => StreamKey::Message(*id),
            (None, Some(reference)) => StreamKey::ProviderMessage(reference.clone()),
            (None, None) => {
                return Err(AppError::invalid(
                    "callback",
                    "names neither a wagate message id nor a provider message id",
                ))
            }
        };
        let _guards = self.inner.locks.lock(&[&lock_key]).await;
        let span =
            info_span!("status_callback", status = %command.status, matched = message_id.is_some());
        self.retrying(|| async {
            let mut plan = Plan {
                key: Some(self.webhook_key(&dedup)),
                ..Plan::default()
            };
            let now = self.now();
            let matched = match message_id {
                Some(message_id) => {
                    let key = StreamKey::Message(message_id);
                    let message = self.load::<MessageState>(&key)?;
                    plan.read(key, message.version);
                    Some((message_id, message.state))
                }
                None => None,
            };
            let decision = decide::status_callback(
                matched.as_ref().map(|(id, state)| (*id, state)),
                &command,
                now,
            )?;
            plan.write(decision.into_events());
            self.commit_webhook(plan).await
        })
        .instrument(span)
        .await
    }

    // -----------------------------------------------------------------------------------------
    // Sending

    /// Decides a send; appends the intent (or the refusal) unless `dry_run`.
    pub async fn send(&self, request: SendRequest, options: SendOptions) -> Result<SendAccepted> {
        self.send_as(request, options, None).await
    }

    /// A send, optionally as a campaign's row: then the row's outcome is appended in the same
    /// append as the send's events, with the campaign stream's expected version, and a row the
    /// campaign may not process now (not running, already processed) appends nothing
    /// ([`AppError::CampaignRowWithdrawn`]); with `hold_on_limit`, a send refused by the
    /// messaging limit alone appends nothing either ([`AppError::CampaignRowHeld`]).
    pub(crate) async fn send_as(
        &self,
        request: SendRequest,
        options: SendOptions,
        campaign_row: Option<crate::campaigns::RowRef>,
    ) -> Result<SendAccepted> {
        let sender = match request.sender.clone() {
            Some(sender) => sender,
            None => self.only_sender()?,
        };
        let recipient = Recipient::parse(&request.to);
        // The key, namespaced in the log, with the digest of this request.
        let idempotency = options.idempotency_key.as_ref().map(|key| {
            (
                format!("send:{key}"),
                send_digest::of(&request, &recipient, &sender, options.dry_run),
            )
        });
        if let Some((stored_key, digest)) = &idempotency {
            if let Some(record) = self.inner.log.idempotency_key(stored_key.as_bytes())? {
                return replay(&record.result, digest, &options);
            }
        }
        let contact_key = recipient
            .number()
            .map(|n| StreamKey::Contact(ContactId::Phone(n.clone())));
        let sender_key = StreamKey::Sender(sender.clone());
        let sender_state = self.load::<SenderState>(&sender_key)?;
        let portfolio_id = sender_state
            .state
            .registration
            .as_ref()
            .map(|r| r.portfolio.clone());
        let portfolio_key = portfolio_id.map(StreamKey::Portfolio);
        let mut lock_keys: Vec<&StreamKey> = Vec::new();
        lock_keys.extend(contact_key.as_ref());
        if request.content.is_template() {
            lock_keys.extend(portfolio_key.as_ref());
        }
        let _guards = self.inner.locks.lock(&lock_keys).await;
        let span = info_span!(
            "send",
            dry_run = options.dry_run,
            template = request.content.is_template()
        );
        self.retrying(|| async {
            let message_id = MessageId::from_uuid(uuid::Uuid::now_v7())
                .map_err(|e| AppError::from_id("message_id", e))?;
            let command = SendMessage {
                message_id,
                sender: sender.clone(),
                to: recipient.clone(),
                workflow: request.workflow.clone(),
                content: request.content.clone(),
            };
            let sender_state = self.load::<SenderState>(&sender_key)?;
            let contact = self.load_or_empty::<ContactState>(contact_key.as_ref())?;
            let linked = match contact_key.as_ref() {
                Some(StreamKey::Contact(id)) => self.load_linked(id, &contact.state)?,
                _ => Vec::new(),
            };
            let linked_states: Vec<ContactState> = linked
                .iter()
                .map(|(_, loaded)| loaded.state.clone())
                .collect();
            let template_key = match &request.content {
                SendContent::Template { template, .. } => {
                    Some(StreamKey::Template(template.clone()))
                }
                SendContent::Freeform { .. } | SendContent::Rich(_) => None,
            };
            let template = self.load_or_empty::<TemplateState>(template_key.as_ref())?;
            let portfolio = self.load_or_empty::<PortfolioState>(portfolio_key.as_ref())?;
            let pending =
                self.pending_confirmation(contact_key.as_ref(), request.workflow.as_deref())?;
            let state = SendState {
                sender: &sender_state.state,
                contact: &contact.state,
                linked: &linked_states,
                template: &template.state,
                portfolio: &portfolio.state,
                confirmation: pending.as_ref().map(PendingLoaded::as_pending),
            };
            let now = self.now();
            let decision = decide::send(&state, &command, &self.inner.policy, now);
            let (mut events, refusal) = decision.into_parts();
            let mut campaign_read = None;
            if let Some(row_ref) = &campaign_row {
                let key = row_ref.stream_key();
                let loaded = self.load::<wagate_domain::CampaignState>(&key)?;
                if row_ref.hold_on_limit
                    && refusal.as_ref().is_some_and(|refusal| {
                        refusal.rule == wagate_domain::RuleId::TierLimit
                            && refusal.also_broken.is_empty()
                    })
                {
                    wagate_domain::campaign::check_row(&loaded.state, row_ref.row).map_err(
                        |withdrawn| AppError::CampaignRowWithdrawn {
                            reason: withdrawn.to_string(),
                        },
                    )?;
                    return Err(AppError::CampaignRowHeld {
                        until: portfolio.state.next_headroom_at(now),
                    });
                }
                let outcome = wagate_domain::campaign::row_outcome(
                    &loaded.state,
                    row_ref.row,
                    message_id,
                    refusal.as_ref(),
                    now,
                )
                .map_err(|withdrawn| AppError::CampaignRowWithdrawn {
                    reason: withdrawn.to_string(),
                })?;
                events.push(outcome);
                campaign_read = Some((key, loaded.version));
            }
            if options.dry_run {
                return match refusal {
                    None => Ok(SendAccepted {
                        message_id,
                        status: "queued".into(),
                        dry_run: true,
                        replayed: false,
                    }),
                    Some(refusal) => Err(AppError::Refused(refusal)),
                };
            }
            let mut plan = Plan::default();
            plan.read(StreamKey::Message(message_id), 0);
            plan.read(sender_key.clone(), sender_state.version);
            if let Some(key) = &contact_key {
                plan.read(key.clone(), contact.version);
            }
            // A STOP recorded meanwhile under a linked identity makes the append conflict, and
            // the send is decided again.
            for (key, loaded) in &linked {
                plan.read(key.clone(), loaded.version);
            }
            if let Some(key) = &template_key {
                plan.read(key.clone(), template.version);
            }
            if let (Some(key), true) = (&portfolio_key, request.content.is_template()) {
                plan.read(key.clone(), portfolio.version);
            }
            // A confirmation recorded meanwhile for the same request makes the append conflict,
            // and this one is decided again (then refused).
            if let Some(pending) = &pending {
                plan.read(pending.requests_key.clone(), pending.requests_version);
            }
            // A cancel or another hub's row recorded meanwhile makes the append conflict, and
            // the row is decided again (then withdrawn).
            if let Some((key, version)) = &campaign_read {
                plan.read(key.clone(), *version);
            }
            let accepted = SendAccepted {
                message_id,
                status: "queued".into(),
                dry_run: false,
                replayed: false,
            };
            plan.write(events);
            if let Some((stored_key, digest)) = &idempotency {
                plan.key = Some(IdempotencyKey {
                    key: stored_key.clone().into_bytes(),
                    expires_at_ms: self.expires_at_ms(COMMAND_KEY_TTL),
                    result: encode_send_result(&accepted, refusal.as_ref(), digest),
                });
            }
            match self.commit(plan).await? {
                // A concurrent request with the same key was written first (the log's atomic key
                // insert decides): its answer if it was this request, 409 if it was another.
                Appended::Duplicate { result } => match &idempotency {
                    Some((_, digest)) => replay(&result, digest, &options),
                    // Cannot happen (a plan without a key is never a duplicate): an error rather
                    // than a panic in a request.
                    None => Err(AppError::invalid(
                        "idempotency record",
                        "the log reported a duplicate key for a send without one",
                    )),
                },
                Appended::Written { .. } => match refusal {
                    Some(refusal) => Err(AppError::Refused(refusal)),
                    None => Ok(accepted),
                },
            }
        })
        .instrument(span)
        .await
    }

    fn only_sender(&self) -> Result<WhatsAppAddress> {
        let senders = self.inner.projection.senders();
        match senders.as_slice() {
            [only] => Ok(only.clone()),
            [] => Err(AppError::invalid("from", "no sender is registered yet")),
            _ => Err(AppError::invalid(
                "from",
                "required when more than one sender is registered",
            )),
        }
    }

    // -----------------------------------------------------------------------------------------
    // Dispatch (the work list is on the read side: `reads::open_intents`)

    /// Claims a message for one provider call, re-checking every gate against the newest state.
    pub async fn claim(&self, message_id: MessageId) -> Result<ClaimedMessage> {
        let message_key = StreamKey::Message(message_id);
        let first = self.load::<MessageState>(&message_key)?;
        let Some(intent) = first.state.intent.clone() else {
            return Err(match first.version {
                0 => AppError::NotFound {
                    what: format!("message {message_id}"),
                },
                _ => AppError::NotClaimable {
                    message_id,
                    reason: "it was never allowed".into(),
                },
            });
        };
        let contact_key = StreamKey::Contact(intent.contact.clone());
        let sender_key = StreamKey::Sender(intent.sender.clone());
        let sender_first = self.load::<SenderState>(&sender_key)?;
        let portfolio_key = sender_first
            .state
            .registration
            .as_ref()
            .map(|r| StreamKey::Portfolio(r.portfolio.clone()));
        // The portfolio is read (the tier gate) and its version asserted, but not locked: a
        // claim almost never writes to it (the send already counted the recipient), so claims
        // for different contacts need not queue behind each other; a concurrent change to the
        // portfolio makes the append conflict and the claim is decided again.
        let _guards = self.inner.locks.lock(&[&message_key, &contact_key]).await;
        self.retrying(|| async {
            let message = self.load::<MessageState>(&message_key)?;
            let sender = self.load::<SenderState>(&sender_key)?;
            let contact = self.load::<ContactState>(&contact_key)?;
            let linked = self.load_linked(&intent.contact, &contact.state)?;
            let linked_states: Vec<ContactState> = linked
                .iter()
                .map(|(_, loaded)| loaded.state.clone())
                .collect();
            let template_key = match &intent.content {
                wagate_domain::MessageContent::Template { template, .. } => {
                    Some(StreamKey::Template(template.clone()))
                }
                wagate_domain::MessageContent::Freeform { .. }
                | wagate_domain::MessageContent::Rich(_) => None,
            };
            let template = self.load_or_empty::<TemplateState>(template_key.as_ref())?;
            let portfolio = self.load_or_empty::<PortfolioState>(portfolio_key.as_ref())?;
            let pending =
                self.pending_confirmation(Some(&contact_key), Some(intent.workflow.as_str()))?;
            let state = SendState {
                sender: &sender.state,
                contact: &contact.state,
                linked: &linked_states,
                template: &template.state,
                portfolio: &portfolio.state,
                confirmation: pending.as_ref().map(PendingLoaded::as_pending),
            };
            let decision = decide::claim(
                &message.state,
                &state,
                &ClaimDispatch { message_id },
                &self.inner.policy,
                self.now(),
            )?;
            let mut plan = Plan::default();
            plan.read(message_key.clone(), message.version);
            plan.read(contact_key.clone(), contact.version);
            for (key, loaded) in &linked {
                plan.read(key.clone(), loaded.version);
            }
            plan.read(sender_key.clone(), sender.version);
            if let Some(key) = &template_key {
                plan.read(key.clone(), template.version);
            }
            if let Some(key) = &portfolio_key {
                plan.read(key.clone(), portfolio.version);
            }
            let (attempt, refusal, events) = match decision {
                ClaimDecision::Claimed { attempt, events } => (attempt, None, events),
                ClaimDecision::Refused { refusal, events } => (0, Some(refusal), events),
            };
            plan.write(events);
            self.commit(plan).await?;
            if let Some(refusal) = refusal {
                return Err(AppError::Refused(refusal));
            }
            Ok(ClaimedMessage {
                message_id,
                attempt,
                intent: intent.clone(),
                sender: sender.state.clone(),
                template: template.state.definition.clone(),
            })
        })
        .instrument(info_span!("claim", message_id = %message_id))
        .await
    }

    /// Records a provider call's outcome; joins callbacks that arrived before it. Answers the
    /// positions appended and the message's dispatch phase after them.
    pub async fn record_outcome(&self, command: RecordOutcome) -> Result<DispatchUpdate> {
        let message_id = command.message_id;
        let positions = self.append_outcome(command).await?;
        self.dispatch_update(message_id, positions)
    }

    async fn append_outcome(&self, command: RecordOutcome) -> Result<Vec<u64>> {
        let message_key = StreamKey::Message(command.message_id);
        let _guards = self.inner.locks.lock(&[&message_key]).await;
        self.retrying(|| async {
            let message = self.load::<MessageState>(&message_key)?;
            if message.version == 0 {
                return Err(AppError::NotFound { what: format!("message {}", command.message_id) });
            }
            let now = self.now();
            let mut plan = Plan::default();
            plan.read(message_key.clone(), message.version);
            // Callbacks that came before the response named this provider id: the decision
            // joins them, and their stream is read so a callback landing meanwhile conflicts.
            let early = match command.joins() {
                Some(provider_ref) => {
                    let key = StreamKey::ProviderMessage(provider_ref.clone());
                    let (version, early) = self.early_statuses(&key)?;
                    plan.read(key, version);
                    early
                }
                None => Vec::new(),
            };
            let events = decide::record_outcome(
                &message.state,
                &command,
                &early,
                &self.inner.policy,
                now,
            )?;
            plan.write(events);
            // Meta delivered to another identity than the number messaged (its `wa_id`):
            // link the two, so a STOP under either one stops both. The contact stream is
            // read so a link recorded meanwhile is not recorded twice.
            if let Some(link) = command.identity_link(&message.state) {
                let key = StreamKey::Contact(link.contact.clone());
                let contact = self.load::<ContactState>(&key)?;
                let links = decide::link_identities(&contact.state, &link, now);
                if !links.is_empty() {
                    plan.read(key, contact.version);
                    plan.write(links);
                }
            }
            if plan.is_empty() {
                return Ok(Vec::new());
            }
            match self.commit(plan).await? {
                Appended::Written { positions, .. } => Ok(positions),
                Appended::Duplicate { .. } => Ok(Vec::new()),
            }
        })
        .instrument(info_span!("record_outcome", message_id = %command.message_id, attempt = command.attempt))
        .await
    }

    /// The callbacks kept on a provider id's stream before its message was known, and the
    /// stream's version.
    fn early_statuses(&self, key: &StreamKey) -> Result<(u64, Vec<EarlyStatus>)> {
        let stream = codec::stream_id(key)?;
        let records = self.inner.log.read_stream(&stream, 1, usize::MAX)?;
        let version = records.last().map_or(0, |record| record.version);
        let mut statuses = Vec::new();
        for record in &records {
            statuses.extend(EarlyStatus::of(&codec::decode(record)?));
        }
        Ok((version, statuses))
    }

    /// Fails a claim that has been in doubt for longer than the policy allows. Answers the
    /// positions appended (none when the claim is not in doubt long enough) and the message's
    /// dispatch phase after them.
    pub async fn expire_in_doubt(&self, message_id: MessageId) -> Result<DispatchUpdate> {
        let policy = &self.inner.policy;
        let positions = self
            .decide_one(
                StreamKey::Message(message_id),
                |message: &MessageState, now| Ok(decide::expire_in_doubt(message, policy, now)),
            )
            .await?;
        self.dispatch_update(message_id, positions)
    }

    /// The answer of a dispatch write: its positions and the phase now. The load is served by
    /// the cache the write just updated (it reads only what the stream gained since).
    fn dispatch_update(
        &self,
        message_id: MessageId,
        positions: Vec<u64>,
    ) -> Result<DispatchUpdate> {
        Ok(DispatchUpdate {
            positions,
            phase: self.dispatch_phase(message_id)?,
        })
    }

    // -----------------------------------------------------------------------------------------
    // Senders, templates, portfolios

    pub async fn register_sender(&self, command: RegisterSender) -> Result<Vec<u64>> {
        let key = StreamKey::Sender(command.sender.clone());
        self.decide_one(key, |sender: &SenderState, now| {
            Ok(decide::register_sender(sender, &command, now)?)
        })
        .await
    }

    pub async fn authorize_sender(&self, sender: &WhatsAppAddress, by: &str) -> Result<Vec<u64>> {
        self.decide_one(
            StreamKey::Sender(sender.clone()),
            |state: &SenderState, now| Ok(decide::authorize_sender(state, sender, by, now)?),
        )
        .await
    }

    pub async fn suspend_sender(&self, sender: &WhatsAppAddress, reason: &str) -> Result<Vec<u64>> {
        self.decide_one(
            StreamKey::Sender(sender.clone()),
            |state: &SenderState, now| Ok(decide::suspend_sender(state, sender, reason, now)?),
        )
        .await
    }

    pub async fn register_template(&self, command: RegisterTemplate) -> Result<Vec<u64>> {
        let key = StreamKey::Template(command.template.clone());
        self.decide_one(key, |template: &TemplateState, now| {
            Ok(decide::register_template(template, &command, now)?)
        })
        .await
    }

    pub async fn set_template_status(
        &self,
        template: &TemplateId,
        status: ApprovalStatus,
        reason: &str,
    ) -> Result<Vec<u64>> {
        self.decide_one(
            StreamKey::Template(template.clone()),
            |state: &TemplateState, now| {
                Ok(decide::set_template_status(
                    state, template, status, reason, now,
                )?)
            },
        )
        .await
    }

    /// Records a template the provider's API accepted (`decide::create_template`).
    pub async fn create_template(&self, command: CreateTemplate) -> Result<Vec<u64>> {
        let key = StreamKey::Template(command.template.clone());
        self.decide_one(key, |template: &TemplateState, now| {
            Ok(decide::create_template(template, &command, now)?)
        })
        .await
    }

    /// Records the status the provider reported, if it changed (`decide::report_template_status`):
    /// the poller and the webhook call this on every report, and only a change is appended.
    pub async fn report_template_status(
        &self,
        template: &TemplateId,
        status: ApprovalStatus,
        reason: &str,
    ) -> Result<Vec<u64>> {
        self.decide_one(
            StreamKey::Template(template.clone()),
            |state: &TemplateState, now| {
                Ok(decide::report_template_status(
                    state, template, status, reason, now,
                ))
            },
        )
        .await
    }

    pub async fn report_template_category(
        &self,
        template: &TemplateId,
        category: TemplateCategory,
        previous: &str,
    ) -> Result<Vec<u64>> {
        self.decide_one(
            StreamKey::Template(template.clone()),
            |state: &TemplateState, now| {
                Ok(decide::report_template_category(
                    state, template, category, previous, now,
                ))
            },
        )
        .await
    }

    pub async fn report_sender_quality(
        &self,
        sender: &WhatsAppAddress,
        event: &str,
        dropped: bool,
    ) -> Result<Vec<u64>> {
        self.decide_one(
            StreamKey::Sender(sender.clone()),
            |state: &SenderState, now| {
                Ok(decide::report_sender_quality(
                    state, sender, event, dropped, now,
                ))
            },
        )
        .await
    }

    pub async fn set_messaging_limit(
        &self,
        portfolio: &PortfolioId,
        limit: MessagingLimit,
    ) -> Result<Vec<u64>> {
        self.decide_one(
            StreamKey::Portfolio(portfolio.clone()),
            |state: &PortfolioState, now| {
                Ok(decide::set_messaging_limit(state, portfolio, limit, now))
            },
        )
        .await
    }

    // -----------------------------------------------------------------------------------------
    // Linked identities

    /// Every other identity of `contact`'s person (reachable through `IdentityLinked`, breadth
    /// first, sorted by stream), loaded: the decisions judge consent over all of them and
    /// assert each one's version, so a STOP landing on any of them forces a new decision.
    pub(crate) fn load_linked(
        &self,
        contact: &ContactId,
        state: &ContactState,
    ) -> Result<Vec<(StreamKey, Loaded<ContactState>)>> {
        let mut seen: BTreeSet<ContactId> = BTreeSet::from([contact.clone()]);
        let mut queue: VecDeque<ContactId> = state.linked.iter().cloned().collect();
        let mut loaded = BTreeMap::new();
        while let Some(id) = queue.pop_front() {
            if !seen.insert(id.clone()) {
                continue;
            }
            if seen.len() > LINKED_IDENTITIES_MAX {
                return Err(AppError::invalid(
                    "contact",
                    format!(
                        "{contact} has more than {LINKED_IDENTITIES_MAX} linked identities; \
                         an operator must look at it"
                    ),
                ));
            }
            let key = StreamKey::Contact(id);
            let other = self.load::<ContactState>(&key)?;
            queue.extend(
                other
                    .state
                    .linked
                    .iter()
                    .filter(|next| !seen.contains(*next))
                    .cloned(),
            );
            loaded.insert(key, other);
        }
        Ok(loaded.into_iter().collect())
    }

    /// Links two identities of one person (a provider asserted it), de-duplicated by
    /// `dedup_key` when it came from a webhook. Nothing is appended when they are already
    /// linked.
    pub async fn link_identities(
        &self,
        command: LinkIdentities,
        dedup_key: Option<&str>,
    ) -> Result<Ingested> {
        let key = StreamKey::Contact(command.contact.clone());
        let other_key = StreamKey::Contact(command.other.clone());
        let dedup = match dedup_key {
            Some(dedup_key) => match self.unseen_webhook(dedup_key)? {
                Some(dedup) => Some(dedup),
                None => return Ok(Ingested::Duplicate),
            },
            None => None,
        };
        let _guards = self.inner.locks.lock(&[&key, &other_key]).await;
        self.retrying(|| async {
            let contact = self.load::<ContactState>(&key)?;
            let events = decide::link_identities(&contact.state, &command, self.now());
            if events.is_empty() {
                return Ok(Ingested::Appended {
                    positions: Vec::new(),
                    events: Vec::new(),
                });
            }
            let mut plan = Plan::default();
            plan.read(key.clone(), contact.version);
            plan.write(events);
            plan.key = dedup.as_deref().map(|d| self.webhook_key(d));
            self.commit_webhook(plan).await
        })
        .instrument(
            info_span!("link_identities", contact = %command.contact, other = %command.other),
        )
        .await
    }

    /// A review request about a contact (Meta's `customer_identity_changed` notice),
    /// de-duplicated by `dedup_key`.
    pub async fn request_review(
        &self,
        command: RequestReview,
        dedup_key: &str,
    ) -> Result<Ingested> {
        let key = StreamKey::Contact(command.contact.clone());
        let Some(dedup) = self.unseen_webhook(dedup_key)? else {
            return Ok(Ingested::Duplicate);
        };
        let _guards = self.inner.locks.lock(&[&key]).await;
        self.retrying(|| async {
            let mut plan = Plan::default();
            plan.write(decide::request_review(&command, self.now()));
            plan.key = Some(self.webhook_key(&dedup));
            self.commit_webhook(plan).await
        })
        .instrument(info_span!("request_review", contact = %command.contact))
        .await
    }

    /// A message a contact wrote in a group chat, de-duplicated by `dedup_key`: recorded, no
    /// window; a STOP in it opts the person out and raises a review request.
    pub async fn receive_group_message(
        &self,
        command: ReceiveGroupMessage,
        dedup_key: &str,
    ) -> Result<Ingested> {
        let key = StreamKey::Contact(command.contact.clone());
        let Some(dedup) = self.unseen_webhook(dedup_key)? else {
            return Ok(Ingested::Duplicate);
        };
        let _guards = self.inner.locks.lock(&[&key]).await;
        self.retrying(|| async {
            let contact = self.load::<ContactState>(&key)?;
            let events = decide::group_inbound(&contact.state, &command, self.now());
            let mut plan = Plan::default();
            plan.read(key.clone(), contact.version);
            plan.write(events);
            plan.key = Some(self.webhook_key(&dedup));
            self.commit_webhook(plan).await
        })
        .instrument(info_span!("group_message", contact = %command.contact))
        .await
    }

    /// A provider notice (an account, quality or limit update, value-level errors, a field wagate
    /// does not act on), de-duplicated by `dedup_key`: always recorded, for auditors. Other
    /// webhook handlers that act on a notice record it through here too.
    pub async fn record_provider_notice(
        &self,
        command: RecordProviderNotice,
        dedup_key: &str,
    ) -> Result<Ingested> {
        let Some(dedup) = self.unseen_webhook(dedup_key)? else {
            return Ok(Ingested::Duplicate);
        };
        self.retrying(|| async {
            let mut plan = Plan::default();
            plan.write(decide::record_provider_notice(&command, self.now())?);
            plan.key = Some(self.webhook_key(&dedup));
            self.commit_webhook(plan).await
        })
        .instrument(info_span!("provider_notice", kind = %command.kind))
        .await
    }

    // -----------------------------------------------------------------------------------------
    // Queries

    pub fn contact(&self, contact: &ContactId) -> Result<ContactView> {
        let loaded = self.load::<ContactState>(&StreamKey::Contact(contact.clone()))?;
        let mut recent = Vec::new();
        for id in self
            .inner
            .projection
            .recent_messages(self.inner.log.as_ref(), contact)?
        {
            let message = self.load::<MessageState>(&StreamKey::Message(id))?.state;
            recent.push((id, message));
        }
        let linked = self
            .load_linked(contact, &loaded.state)?
            .into_iter()
            .filter_map(|(key, linked)| match key {
                StreamKey::Contact(id) => Some((id, linked.state)),
                _ => None,
            })
            .collect();
        Ok(ContactView {
            contact: contact.clone(),
            linked,
            version: loaded.version,
            window_open_until: loaded
                .state
                .window_open_until(self.inner.policy.window_safety_margin),
            windows: loaded
                .state
                .windows
                .iter()
                .map(|(sender, window)| SenderWindowView {
                    sender: sender.clone(),
                    last_inbound_at: window.last_inbound_at,
                    open_until: window.open_until(self.inner.policy.window_safety_margin),
                })
                .collect(),
            state: loaded.state,
            recent_messages: recent,
        })
    }

    pub fn message(&self, message_id: MessageId) -> Result<MessageView> {
        let key = StreamKey::Message(message_id);
        let stream = codec::stream_id(&key)?;
        let records = self.inner.log.read_stream(&stream, 1, usize::MAX)?;
        if records.is_empty() {
            return Err(AppError::NotFound {
                what: format!("message {message_id}"),
            });
        }
        let mut state = MessageState::default();
        let mut history = Vec::with_capacity(records.len());
        for record in &records {
            let entry = LoggedEvent::decode(record)?;
            if let Event::Message(message_event) = &entry.event {
                state = state.apply(message_event);
            }
            history.push(entry);
        }
        Ok(MessageView {
            message_id,
            state,
            history,
        })
    }

    pub fn sender(&self, sender: &WhatsAppAddress) -> Result<Loaded<SenderState>> {
        self.load(&StreamKey::Sender(sender.clone()))
    }

    pub fn template(&self, template: &TemplateId) -> Result<Loaded<TemplateState>> {
        self.load(&StreamKey::Template(template.clone()))
    }

    pub fn senders(&self) -> Vec<WhatsAppAddress> {
        self.inner.projection.senders()
    }

    pub fn templates(&self) -> Vec<TemplateId> {
        self.inner.projection.templates()
    }
}

/// A provider status callback, parsed and validated by the webhook layer; decided by the
/// domain.
pub use wagate_domain::decide::StatusCallback;

/// What the agent asks to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendRequest {
    pub to: String,
    /// Optional when exactly one sender is registered.
    pub sender: Option<WhatsAppAddress>,
    pub workflow: Option<String>,
    pub content: SendContent,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SendOptions {
    pub idempotency_key: Option<String>,
    pub dry_run: bool,
}

/// The answer stored with an `Idempotency-Key`: the message id, or the refusal (a versioned
/// persisted form, `wagate_store::send_result`).
fn encode_send_result(
    accepted: &SendAccepted,
    refusal: Option<&wagate_domain::Refusal>,
    request: &RequestDigest,
) -> Vec<u8> {
    send_result::encode(
        &match refusal {
            None => SendResult::Accepted {
                message_id: accepted.message_id,
            },
            Some(refusal) => SendResult::Refused(refusal.clone()),
        },
        request,
    )
}

/// The answer stored under the key, marked as replayed, when it answered this same request;
/// [`AppError::IdempotencyKeyReused`] when it answered another. A record written before digests
/// were kept (format 1, legacy text) cannot tell: it is taken as this request, as it was then.
fn replay(bytes: &[u8], request: &RequestDigest, options: &SendOptions) -> Result<SendAccepted> {
    let stored = send_result::decode(bytes)
        .map_err(|error| AppError::invalid("idempotency record", error.to_string()))?;
    if stored.request.is_some_and(|digest| digest != *request) {
        return Err(AppError::IdempotencyKeyReused {
            key: options.idempotency_key.clone().unwrap_or_default(),
        });
    }
    match stored.result {
        SendResult::Accepted { message_id } => Ok(SendAccepted {
            message_id,
            status: "queued".into(),
            dry_run: false,
            replayed: true,
        }),
        SendResult::Refused(refusal) => Err(AppError::ReplayedRefusal(refusal)),
    }
}
