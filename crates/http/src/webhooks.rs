//! Provider webhooks. Each request is read raw (at most 1 MiB, else 413), its signature checked
//! on the raw bytes and the public URL (`WAGATE_PUBLIC_URL` + path + query as received) before
//! anything is parsed (403 when it fails), then parsed (400 with the reason), then appended
//! through the hub with the event's de-duplication key (2xx once durable; a duplicate is 2xx and
//! appends nothing). Every rejected request, every Meta batch with unusable items and every genuine
//! webhook the store could not take is written to the rejection log ([`crate::audit`]), once per
//! request; [`retry_rejected`] runs what it kept through these same handlers again.

use std::net::SocketAddr;

use axum::extract::connect_info::ConnectInfo;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::Bytes;
use wagate_api::{MetaWebhookSummary, RetryRejectedSummary};
use wagate_app::{Ingested, StatusCallback};
use wagate_domain::decide::{
    LinkIdentities, ReceiveGroupMessage, ReceiveInbound, RecordProviderNotice, RequestReview,
    SetContactFlag,
};
use wagate_domain::{ContactFlag, ContactId, IdentitySource, ProviderKind, WhatsAppAddress};
use wagate_providers::details::is_truncated;
use wagate_providers::twilio::{self, TwilioWebhookRequest};
use wagate_providers::{
    meta, ContactRef, InboundContent, InboundMessage, PreferenceValue, ProviderNotice,
    StatusUpdate, SystemNotice, SystemNoticeKind, UserPreferenceChange, WebhookEvent,
};

use crate::audit::{AuditEntry, Note};
use crate::body::{read_limited, ReadError, WEBHOOK_BODY_LIMIT};
use crate::error::{with_verdict, ApiError, Verdict};
use crate::metrics::Source;
use crate::state::AppState;

/// The answer Twilio's inbound webhook expects: empty TwiML sends no reply.
pub const EMPTY_TWIML: &str = r#"<?xml version="1.0" encoding="UTF-8"?><Response></Response>"#;

const TWILIO_SIGNATURE: &str = "x-twilio-signature";
const TWILIO_SIGNATURE_SETTINGS: &str = "x-twilio-webhooks-signature-settings";
const META_SIGNATURE: &str = "x-hub-signature-256";
/// The headers a signature check reads: kept in the rejection log so it can be checked again.
const SIGNATURE_HEADERS: [&str; 3] = [TWILIO_SIGNATURE, TWILIO_SIGNATURE_SETTINGS, META_SIGNATURE];

/// Marks a request replayed from the rejection log: a refusal is not logged again.
#[derive(Debug, Clone, Copy)]
struct Replay;

/// A webhook request, read.
struct Raw {
    method: String,
    route: &'static str,
    /// Path and query exactly as received.
    path_and_query: String,
    query: String,
    remote: Option<String>,
    headers: HeaderMap,
    body: Bytes,
    /// Replayed from the rejection log: already there.
    replay: bool,
}

impl Raw {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// Writes `raw` to the rejection log once, with every reason in `notes`.
async fn audit(state: &AppState, raw: &Raw, status: StatusCode, notes: Vec<Note>) {
    if raw.replay || notes.is_empty() {
        return;
    }
    let signatures = SIGNATURE_HEADERS
        .iter()
        .filter_map(|name| Some(((*name).to_owned(), raw.header(name)?.to_owned())))
        .collect();
    let entry = AuditEntry {
        time: AuditEntry::at(state.hub().now()),
        method: raw.method.clone(),
        route: raw.route.to_owned(),
        path_and_query: raw.path_and_query.clone(),
        url: format!("{}{}", state.keys().public_url, raw.path_and_query),
        remote: raw.remote.clone(),
        status: status.as_u16(),
        notes,
        signatures,
        body: raw.body.to_vec(),
    };
    if let Err(error) = state.audit().record(entry).await {
        tracing::error!(%error, route = raw.route, "cannot write the webhook rejection log");
    }
    // A burst (a wrong public URL makes every signature fail) needs a person: the review queue.
    let burst = wagate_domain::review::RejectionBurst::default();
    let times = state.note_rejection(state.hub().now(), burst.threshold);
    if times.len() >= burst.threshold {
        if let Err(error) = state.hub().raise_rejection_burst(&times, burst).await {
            tracing::warn!(%error, "cannot raise the webhook rejection burst for review");
        }
    }
}

/// Audits a rejected request and answers it.
async fn reject(state: &AppState, raw: &Raw, verdict: &'static str, error: ApiError) -> Response {
    let reason = match &error {
        ApiError::Invalid { message, .. }
        | ApiError::Forbidden(message)
        | ApiError::TooLarge(message)
        | ApiError::NotFound(message)
        | ApiError::Unavailable(message)
        | ApiError::Internal(message) => message.clone(),
        other => format!("{other:?}"),
    };
    let response = error.into_response();
    let note = Note {
        verdict: verdict.to_owned(),
        reason: reason.clone(),
    };
    audit(state, raw, response.status(), vec![note]).await;
    tracing::info!(route = raw.route, verdict, %reason, replay = raw.replay, "webhook rejected");
    with_verdict(response, verdict)
}

async fn read(state: &AppState, route: &'static str, request: Request) -> Result<Raw, Response> {
    let remote = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|info| info.0.to_string());
    let replay = request.extensions().get::<Replay>().is_some();
    let (parts, body) = request.into_parts();
    let path_and_query = parts
        .uri
        .path_and_query()
        .map_or_else(|| parts.uri.path().to_owned(), |pq| pq.as_str().to_owned());
    let query = parts.uri.query().unwrap_or_default().to_owned();
    let declared_too_large = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .is_some_and(|length| length > WEBHOOK_BODY_LIMIT as u64);
    let body = if declared_too_large {
        Err(ReadError::TooLarge(Bytes::new()))
    } else {
        read_limited(body, WEBHOOK_BODY_LIMIT).await
    };
    let mut raw = Raw {
        method: parts.method.to_string(),
        route,
        path_and_query,
        query,
        remote,
        headers: parts.headers,
        body: Bytes::new(),
        replay,
    };
    match body {
        Ok(body) => {
            raw.body = body;
            Ok(raw)
        }
        Err(ReadError::TooLarge(prefix)) => {
            raw.body = prefix;
            let error = ApiError::TooLarge(format!(
                "webhook bodies are limited to {WEBHOOK_BODY_LIMIT} bytes"
            ));
            Err(reject(state, &raw, "too_large", error).await)
        }
        Err(ReadError::Broken(reason)) => {
            let error = ApiError::invalid("body", format!("could not be read: {reason}"));
            Err(reject(state, &raw, "malformed", error).await)
        }
    }
}

fn verify_twilio(state: &AppState, raw: &Raw) -> Result<(), ApiError> {
    let keys = state.keys();
    let Some(signing) = &keys.twilio else {
        return Err(ApiError::Forbidden(
            "Twilio webhooks are not configured (WAGATE_TWILIO_AUTH_TOKEN)".into(),
        ));
    };
    let url = format!("{}{}", keys.public_url, raw.path_and_query);
    twilio::verify_signature(
        signing,
        &TwilioWebhookRequest {
            url: &url,
            body: &raw.body,
            signature: raw.header(TWILIO_SIGNATURE),
            signature_settings: raw.header(TWILIO_SIGNATURE_SETTINGS),
        },
    )
    .map_err(|e| ApiError::Forbidden(e.to_string()))
}

/// What ingesting one event did.
pub(crate) enum Ingest {
    Appended,
    Duplicate,
}

fn provider_label(provider: ProviderKind) -> &'static str {
    provider.as_str()
}

/// The hub as a signed webhook of `provider`: what it appends records the provider as its
/// source (only a webhook whose signature was checked gets this far).
fn webhook_hub(state: &AppState, provider: ProviderKind) -> wagate_app::Hub {
    state
        .hub()
        .acting(wagate_domain::Actor::webhook(provider_label(provider)))
}

fn count(state: &AppState, provider: ProviderKind, ingested: &Ingested) -> Ingest {
    match ingested {
        Ingested::Appended { events, .. } => {
            state.metrics().appended(Source::Webhook, events.len());
            Ingest::Appended
        }
        Ingested::Duplicate => {
            state.metrics().duplicate(provider_label(provider));
            Ingest::Duplicate
        }
    }
}

/// The text the domain records (and reads keywords from, for text, button and interactive
/// messages): what the contact typed, or the label they tapped, or a caption.
fn inbound_text(content: &InboundContent) -> String {
    match content {
        InboundContent::Text { body } => body.clone(),
        InboundContent::Button { text, .. } => text.clone(),
        InboundContent::ButtonReply { title, .. } | InboundContent::ListReply { title, .. } => {
            title.clone()
        }
        InboundContent::Media { caption, .. } => caption.clone().unwrap_or_default(),
        InboundContent::Other { body, .. } => body.clone().unwrap_or_default(),
    }
}

/// The time the person wrote, as the provider gives it (Meta's `timestamp`, unix seconds;
/// Twilio gives none, and receipt time stands for it). Out of range is bad input; a time in the
/// future is refused by the domain.
fn provider_time(timestamp: Option<u64>) -> Result<Option<wagate_domain::Timestamp>, ApiError> {
    let Some(seconds) = timestamp else {
        return Ok(None);
    };
    i64::try_from(seconds)
        .ok()
        .and_then(|seconds| chrono::DateTime::from_timestamp(seconds, 0))
        .map(Some)
        .ok_or_else(|| {
            ApiError::invalid(
                "timestamp",
                format!("{seconds} is not a time (expected unix seconds)"),
            )
        })
}

/// A webhook that names a contact by number and by business-scoped user id says the two are
/// one person: link them (nothing is appended when they already are), so a STOP under either
/// stops both.
async fn link_pair(state: &AppState, contact: &ContactRef) -> Result<(), ApiError> {
    let (ContactId::Phone(_), Some(bsuid)) = (&contact.id, &contact.bsuid) else {
        return Ok(());
    };
    let ingested = state
        .hub()
        .link_identities(
            LinkIdentities {
                contact: contact.id.clone(),
                other: ContactId::BusinessScoped(bsuid.clone()),
                source: IdentitySource::Webhook,
            },
            None,
        )
        .await?;
    if let Ingested::Appended { events, .. } = &ingested {
        state.metrics().appended(Source::Webhook, events.len());
    }
    Ok(())
}

async fn ingest_inbound(state: &AppState, message: InboundMessage) -> Result<Ingest, ApiError> {
    let event = WebhookEvent::Inbound(message);
    let key = event.dedup_key();
    let provider = event.provider();
    let WebhookEvent::Inbound(message) = event else {
        unreachable!("built as WebhookEvent::Inbound three lines above");
    };
    link_pair(state, &message.from).await?;
    if let Some(group) = &message.group {
        // Written to a group, not to the business: recorded, but no window (a STOP in it
        // still opts the person out, and asks for a review).
        let command = ReceiveGroupMessage {
            contact: message.from.id.clone(),
            group: group.clone(),
            sender: message.to.number.clone().map(WhatsAppAddress::from_number),
            provider_ref: Some(message.id.clone()),
            kind: message.content.kind().to_owned(),
            text: inbound_text(&message.content),
        };
        let ingested = state
            .hub()
            .receive_group_message(command, key.as_str())
            .await?;
        // `GroupMessageReceived` keeps no details: the rest of what the provider said is a
        // notice beside it.
        if !message.details.is_empty() {
            let notice = ProviderNotice {
                provider,
                account: message.to.account.clone(),
                kind: "group_message".into(),
                details: message.details,
            };
            ingest_provider_notice(state, notice).await?;
        }
        return Ok(count(state, provider, &ingested));
    }
    let command = ReceiveInbound {
        contact: message.from.id.clone(),
        sender: message.to.number.clone().map(WhatsAppAddress::from_number),
        provider_ref: Some(message.id.clone()),
        kind: message.content.kind().to_owned(),
        text: inbound_text(&message.content),
        provider_at: provider_time(message.timestamp)?,
        details: message.details,
    };
    let ingested = webhook_hub(state, provider)
        .receive_inbound(command, key.as_str())
        .await?;
    Ok(count(state, provider, &ingested))
}

async fn ingest_status(state: &AppState, update: StatusUpdate) -> Result<Ingest, ApiError> {
    let event = WebhookEvent::Status(update);
    let key = event.dedup_key();
    let provider = event.provider();
    let WebhookEvent::Status(update) = event else {
        unreachable!("built as WebhookEvent::Status three lines above");
    };
    if let Some(recipient) = &update.recipient {
        link_pair(state, recipient).await?;
    }
    let callback = StatusCallback {
        provider,
        provider_ref: Some(update.id.clone()),
        status: update.status.clone(),
        error_code: update.errors.first().map(|e| e.code),
        details: update.details,
        pricing: update.pricing,
    };
    let ingested = webhook_hub(state, provider)
        .record_status_callback(update.message_id, callback, key.as_str())
        .await?;
    Ok(count(state, provider, &ingested))
}

/// Meta `user_preferences`: marketing stop raises `marketing_paused`, resume (or signup)
/// clears it. A preference wagate does not act on is recorded as a provider notice.
async fn ingest_preference(
    state: &AppState,
    change: UserPreferenceChange,
) -> Result<Ingest, ApiError> {
    let raised = match change.preference {
        _ if !change.category.to_ascii_lowercase().contains("marketing") => None,
        PreferenceValue::Stop => Some(true),
        PreferenceValue::Resume => Some(false),
        PreferenceValue::Other(_) => None,
    };
    // The change is recorded whole as a notice, acted on or not: the flag events carry only
    // the reason.
    let notice = ProviderNotice {
        provider: ProviderKind::Meta,
        account: change.business.account.clone(),
        kind: "user_preferences".into(),
        details: change.details.clone(),
    };
    let recorded = ingest_provider_notice(state, notice).await?;
    let Some(raised) = raised else {
        return Ok(recorded);
    };
    link_pair(state, &change.contact).await?;
    let positions = webhook_hub(state, ProviderKind::Meta)
        .set_contact_flag(SetContactFlag {
            contact: change.contact.id.clone(),
            flag: ContactFlag::MarketingPaused,
            raised,
            reason: format!(
                "meta user_preferences: {} {}",
                change.category,
                change.preference.as_str()
            ),
        })
        .await?;
    state.metrics().appended(Source::Webhook, positions.len());
    Ok(match recorded {
        Ingest::Duplicate if positions.is_empty() => Ingest::Duplicate,
        _ => Ingest::Appended,
    })
}

/// Records a provider notice (always), after acting on what Meta's account notices ask:
/// the portfolio's messaging limit follows Meta, a restricted or banned account suspends its
/// senders. Each action is appended by the webhook's actor, so the log names Meta as its
/// source. Reusable by any handler that receives a notice (template updates, …): act, then
/// record through here.
pub(crate) async fn ingest_provider_notice(
    state: &AppState,
    notice: ProviderNotice,
) -> Result<Ingest, ApiError> {
    let event = WebhookEvent::Notice(notice);
    let key = event.dedup_key();
    let provider = event.provider();
    let WebhookEvent::Notice(notice) = event else {
        unreachable!("built as WebhookEvent::Notice three lines above");
    };
    // De-duplication first: a redelivered notice is not acted on again (an operator may have
    // re-authorized a sender the first delivery suspended). A crash between acting and
    // recording acts again on the redelivery, which is the safe side for a restriction.
    if webhook_hub(state, provider).webhook_seen(key.as_str())? {
        return Ok(count(state, provider, &Ingested::Duplicate));
    }
    if provider == ProviderKind::Meta {
        crate::account_notices::act(state, &webhook_hub(state, provider), &notice).await?;
    }
    let ingested = webhook_hub(state, provider)
        .record_provider_notice(
            RecordProviderNotice {
                provider,
                account: notice.account,
                kind: notice.kind,
                details: notice.details,
            },
            key.as_str(),
        )
        .await?;
    Ok(count(state, provider, &ingested))
}

/// Meta's system notices are not messages from the person: they open no window. A changed
/// number or user id links the old and the new identity (consent follows the person); a
/// changed identity asks a person to review the contact. Any other is recorded as a provider
/// notice.
async fn ingest_notice(state: &AppState, notice: SystemNotice) -> Result<Ingest, ApiError> {
    let event = WebhookEvent::SystemNotice(notice);
    let key = event.dedup_key();
    let provider = event.provider();
    let WebhookEvent::SystemNotice(notice) = event else {
        unreachable!("built as WebhookEvent::SystemNotice three lines above");
    };
    link_pair(state, &notice.from).await?;
    // The links and review requests keep only what they need: the notice itself (its body,
    // the identity hash, …) is recorded whole beside them.
    let mut details = notice.details.clone();
    details.push(("system.type".into(), notice.kind.as_str().to_owned()));
    let recorded = ingest_provider_notice(
        state,
        ProviderNotice {
            provider,
            account: notice.to.account.clone(),
            kind: "system".into(),
            details,
        },
    )
    .await?;
    let link = |other: ContactId, source: IdentitySource| LinkIdentities {
        contact: notice.from.id.clone(),
        other,
        source,
    };
    let ingested = match &notice.kind {
        SystemNoticeKind::ChangedNumber { new_number } => {
            let command = link(
                ContactId::Phone(new_number.clone()),
                IdentitySource::UserChangedNumber,
            );
            state
                .hub()
                .link_identities(command, Some(key.as_str()))
                .await?
        }
        SystemNoticeKind::ChangedUserId { new_user_id } => {
            let command = link(
                ContactId::BusinessScoped(new_user_id.clone()),
                IdentitySource::UserChangedUserId,
            );
            state
                .hub()
                .link_identities(command, Some(key.as_str()))
                .await?
        }
        SystemNoticeKind::IdentityChanged { .. } => {
            let command = RequestReview {
                contact: notice.from.id.clone(),
                text: notice.body.clone().unwrap_or_default(),
                reason: notice.kind.as_str().to_owned(),
            };
            state.hub().request_review(command, key.as_str()).await?
        }
        SystemNoticeKind::Other(_) => return Ok(recorded),
    };
    Ok(match (&ingested, recorded) {
        // Already linked and the notice already recorded: nothing new, as for a redelivery.
        (Ingested::Appended { events, .. }, Ingest::Duplicate) if events.is_empty() => {
            Ingest::Duplicate
        }
        (Ingested::Duplicate, Ingest::Duplicate) => Ingest::Duplicate,
        _ => {
            count(state, provider, &ingested);
            Ingest::Appended
        }
    })
}

/// The answer when the hub could not take a genuine webhook: the body goes to the rejection log
/// (the provider retries; the file keeps it meanwhile).
async fn hub_failed(state: &AppState, raw: &Raw, error: ApiError) -> Response {
    let verdict = match &error {
        ApiError::Unavailable(_) => "unavailable",
        ApiError::Invalid { .. } => "malformed",
        ApiError::Internal(_) => "error",
        _ => "rejected",
    };
    reject(state, raw, verdict, error).await
}

fn ingest_response(ingest: &Ingest, body: Response) -> Response {
    match ingest {
        Ingest::Appended => with_verdict(body, "ok"),
        Ingest::Duplicate => with_verdict(body, "duplicate"),
    }
}

fn twiml() -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/xml; charset=utf-8")],
        EMPTY_TWIML,
    )
        .into_response()
}

/// Rejects a webhook whose body does not parse: 400 naming the field, written to the rejection log.
async fn malformed(state: &AppState, raw: &Raw, error: &wagate_providers::ParseError) -> Response {
    let field = error.field().unwrap_or("body").to_owned();
    reject(
        state,
        raw,
        "malformed",
        ApiError::invalid(field, error.to_string()),
    )
    .await
}

/// A Twilio form whose values did not all fit the event's details: the whole body goes to the
/// rejection log (answered 2xx, so never retried from there).
async fn keep_if_truncated(state: &AppState, raw: &Raw, truncated: bool) {
    if truncated {
        let note = Note {
            verdict: "details_truncated".into(),
            reason: "some values exceeded the bounds of the event's details".into(),
        };
        audit(state, raw, StatusCode::OK, vec![note]).await;
    }
}

/// `POST /webhooks/twilio/inbound`
pub async fn twilio_inbound(State(state): State<AppState>, request: Request) -> Response {
    let raw = match read(&state, "/webhooks/twilio/inbound", request).await {
        Ok(raw) => raw,
        Err(response) => return response,
    };
    if let Err(error) = verify_twilio(&state, &raw) {
        return reject(&state, &raw, "forbidden", error).await;
    }
    let message = match twilio::parse_inbound(&raw.body) {
        Ok(message) => message,
        Err(error) => return malformed(&state, &raw, &error).await,
    };
    let truncated = is_truncated(&message.details);
    match ingest_inbound(&state, message).await {
        Ok(ingest) => {
            keep_if_truncated(&state, &raw, truncated).await;
            ingest_response(&ingest, twiml())
        }
        Err(error) => hub_failed(&state, &raw, error).await,
    }
}

/// `POST /webhooks/twilio/status`
pub async fn twilio_status(State(state): State<AppState>, request: Request) -> Response {
    let raw = match read(&state, "/webhooks/twilio/status", request).await {
        Ok(raw) => raw,
        Err(response) => return response,
    };
    if let Err(error) = verify_twilio(&state, &raw) {
        return reject(&state, &raw, "forbidden", error).await;
    }
    let update = match twilio::parse_status(&raw.body, &raw.query) {
        Ok(update) => update,
        Err(error) => return malformed(&state, &raw, &error).await,
    };
    let truncated = is_truncated(&update.details);
    match ingest_status(&state, update).await {
        Ok(ingest) => {
            keep_if_truncated(&state, &raw, truncated).await;
            ingest_response(&ingest, StatusCode::NO_CONTENT.into_response())
        }
        Err(error) => hub_failed(&state, &raw, error).await,
    }
}

/// `GET /webhooks/meta`: the subscription handshake.
pub async fn meta_verify(State(state): State<AppState>, request: Request) -> Response {
    let raw = match read(&state, "/webhooks/meta", request).await {
        Ok(raw) => raw,
        Err(response) => return response,
    };
    // The query holds the verify token tried (and the challenge): never written to the log.
    let raw = Raw {
        path_and_query: raw.route.to_owned(),
        ..raw
    };
    let Some(token) = &state.keys().meta_verify_token else {
        let error = ApiError::Forbidden(
            "Meta webhooks are not configured (WAGATE_META_VERIFY_TOKEN)".into(),
        );
        return reject(&state, &raw, "forbidden", error).await;
    };
    match meta::verify_subscription(&raw.query, token) {
        Ok(challenge) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            challenge,
        )
            .into_response(),
        Err(refusal) => {
            // Only the outcome is logged: the request has no body to retry.
            let raw = Raw {
                body: Bytes::new(),
                ..raw
            };
            reject(
                &state,
                &raw,
                "forbidden",
                ApiError::Forbidden(refusal.to_string()),
            )
            .await
        }
    }
}

/// `POST /webhooks/meta`
pub async fn meta_events(State(state): State<AppState>, request: Request) -> Response {
    let raw = match read(&state, "/webhooks/meta", request).await {
        Ok(raw) => raw,
        Err(response) => return response,
    };
    let Some(secret) = &state.keys().meta_app_secret else {
        let error =
            ApiError::Forbidden("Meta webhooks are not configured (WAGATE_META_APP_SECRET)".into());
        return reject(&state, &raw, "forbidden", error).await;
    };
    if let Err(e) = meta::verify_signature(secret, &raw.body, raw.header(META_SIGNATURE)) {
        return reject(
            &state,
            &raw,
            "forbidden",
            ApiError::Forbidden(e.to_string()),
        )
        .await;
    }
    let webhook = match meta::parse_webhook(&raw.body) {
        Ok(webhook) => webhook,
        Err(error) => return malformed(&state, &raw, &error).await,
    };
    let mut notes: Vec<(&'static str, String)> = webhook
        .rejected
        .iter()
        .map(|e| ("item_rejected", e.to_string()))
        .collect();
    if webhook
        .events
        .iter()
        .any(|event| is_truncated(event_details(event)))
    {
        // The log got what fits; the rejection log keeps the whole body.
        notes.push((
            "details_truncated",
            "some values exceeded the bounds of an event's details".into(),
        ));
    }
    state
        .metrics()
        .item_rejected("meta", webhook.rejected.len() as u64);
    let (mut appended, mut duplicates) = (0_usize, 0_usize);
    for event in webhook.events {
        let result = match event {
            WebhookEvent::Inbound(message) => ingest_inbound(&state, message).await,
            WebhookEvent::Status(update) => ingest_status(&state, update).await,
            WebhookEvent::UserPreference(change) => ingest_preference(&state, change).await,
            WebhookEvent::SystemNotice(notice) => ingest_notice(&state, notice).await,
            WebhookEvent::Notice(notice) => {
                if notice.kind == "errors" {
                    tracing::warn!(account = ?notice.account, "Meta reported value-level errors");
                }
                ingest_provider_notice(&state, notice).await
            }
        };
        match result {
            Ok(Ingest::Appended) => appended += 1,
            Ok(Ingest::Duplicate) => duplicates += 1,
            // Meta redelivers the whole batch; what was appended is recognised then.
            Err(error) if error.is_unavailable() => return hub_failed(&state, &raw, error).await,
            Err(error) => notes.push(("item_rejected", format!("{error:?}"))),
        }
    }
    let template_hub = webhook_hub(&state, ProviderKind::Meta);
    for notice in &webhook.templates {
        match crate::templates::report_notice(&state, &template_hub, notice).await {
            // Recorded as the webhook's provider notice (counted with the events above).
            Ok(None) => {}
            Ok(Some(Ok(0))) => duplicates += 1,
            Ok(Some(Ok(_))) => appended += 1,
            // Kept in the rejection log's notes, so an auditor sees it.
            Ok(Some(Err(note))) => notes.push(("unhandled", note)),
            Err(error) if error.is_unavailable() => return hub_failed(&state, &raw, error).await,
            Err(error) => notes.push(("item_rejected", format!("{error:?}"))),
        }
    }
    let rejected = notes.len() as u64;
    let notes = notes
        .into_iter()
        .map(|(verdict, reason)| Note {
            verdict: verdict.to_owned(),
            reason,
        })
        .collect();
    audit(&state, &raw, StatusCode::OK, notes).await;
    let verdict = if appended == 0 && duplicates > 0 {
        "duplicate"
    } else {
        "ok"
    };
    let body = Json(MetaWebhookSummary {
        appended: appended as u64,
        duplicates: duplicates as u64,
        rejected,
    });
    with_verdict((StatusCode::OK, body).into_response(), verdict)
}

/// The details an event carries.
fn event_details(event: &WebhookEvent) -> &[(String, String)] {
    match event {
        WebhookEvent::Inbound(m) => &m.details,
        WebhookEvent::Status(s) => &s.details,
        WebhookEvent::UserPreference(p) => &p.details,
        WebhookEvent::SystemNotice(n) => &n.details,
        WebhookEvent::Notice(n) => &n.details,
    }
}

/// Whether a logged request can be run again: a POST that was refused (not one answered 2xx
/// with some items unused, which the provider will not redeliver either) and whose body was
/// kept whole (not one cut at the size limit).
fn retryable(entry: &crate::audit::Rejected) -> bool {
    entry.method == "POST"
        && !(200..300).contains(&entry.status)
        && entry.status != StatusCode::PAYLOAD_TOO_LARGE.as_u16()
}

/// `POST /v1/webhooks/retry-rejected`: runs every refused request of the rejection log not yet
/// resolved through its webhook handler again, as if it had just arrived: its signature checked
/// with today's keys and public URL, then parsed and appended with its de-duplication key (so a
/// delivery already in the log is a duplicate). What is ingested or found a duplicate is marked
/// resolved and skipped by the next retry; what is still refused stays for a later one.
pub async fn retry_rejected(
    State(state): State<AppState>,
) -> Result<Json<RetryRejectedSummary>, ApiError> {
    let log = state.audit().clone();
    let (entries, resolved_before) = tokio::task::spawn_blocking(move || {
        Ok::<_, crate::audit::AuditError>((log.entries()?, log.retried()?))
    })
    .await
    .map_err(|e| ApiError::Internal(e.to_string()))?
    .map_err(|e| ApiError::Internal(e.to_string()))?;
    let mut summary = RetryRejectedSummary {
        retried: 0,
        ingested: 0,
        duplicates: 0,
        still_rejected: 0,
    };
    for entry in entries {
        if resolved_before.contains(&entry.id) || !retryable(&entry) {
            continue;
        }
        let Some(body) = entry.body() else {
            continue;
        };
        let mut builder = Request::builder()
            .method(axum::http::Method::POST)
            .uri(&entry.path_and_query);
        for (name, value) in &entry.signatures {
            builder = builder.header(name, value);
        }
        let Ok(mut request) = builder.body(axum::body::Body::from(body)) else {
            // A line edited by hand into an invalid URI or header: nothing to replay.
            continue;
        };
        request.extensions_mut().insert(Replay);
        summary.retried += 1;
        let response = match entry.route.as_str() {
            "/webhooks/twilio/inbound" => twilio_inbound(State(state.clone()), request).await,
            "/webhooks/twilio/status" => twilio_status(State(state.clone()), request).await,
            "/webhooks/meta" => meta_events(State(state.clone()), request).await,
            _ => {
                summary.still_rejected += 1;
                continue;
            }
        };
        let resolved = match response.extensions().get::<Verdict>().map(|v| v.0) {
            Some("ok") => {
                summary.ingested += 1;
                true
            }
            Some("duplicate") => {
                summary.duplicates += 1;
                true
            }
            _ => {
                summary.still_rejected += 1;
                false
            }
        };
        if resolved {
            // Marked one by one: a retry cut short (the request timeout, a restart) still
            // leaves what it resolved marked, and the rest is found again next time.
            let log = state.audit().clone();
            let id = vec![entry.id];
            tokio::task::spawn_blocking(move || log.mark_retried(&id))
                .await
                .map_err(|e| ApiError::Internal(e.to_string()))?
                .map_err(|e| ApiError::Internal(e.to_string()))?;
        }
    }
    tracing::info!(
        retried = summary.retried,
        ingested = summary.ingested,
        duplicates = summary.duplicates,
        still_rejected = summary.still_rejected,
        "rejected webhooks retried"
    );
    Ok(Json(summary))
}
