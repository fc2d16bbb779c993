//! [`HubPort`] over the hub's HTTP API, for a dispatcher in its own process
//! (`wagate dispatch --hub URL`): `GET /v1/dispatch/pending`, `POST /v1/messages/{id}/claim`,
//! `…/outcome`, `…/expire-in-doubt`, with the JSON shapes of `wagate_api`.
//!
//! A lost answer is `Unavailable`: the machine asks again, and the hub then reports where the
//! message stands (a claim that did land shows up as claimed, so it is never used twice).
//! The pending list is a full snapshot of the open messages, so this port keeps no checkpoint
//! (it resumes from 0: the snapshot already holds everything still to do), and it has no
//! change signal: the driver polls on its interval.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use chrono::DateTime;
use reqwest::StatusCode;
use serde::de::DeserializeOwned;
use wagate_api::{
    AcceptedOutcome, ClaimResponse, ContentView, DispatchRecorded, ErrorBody, MessageResponse,
    OutcomeRequest, PendingMessageView, PendingResponse, Phase, RejectedOutcome, TransportOutcome,
};
use wagate_domain::decide::{DispatchOutcome, RecordOutcome};
use wagate_domain::{
    ContactId, DispatchPhase, MediaKind, MessageContent, MessageId, ProviderKind, ReplyButton,
    RichReply, RuleId, TemplateCategory, TemplateId, TemplateMedia, Timestamp, WhatsAppAddress,
};
use wagate_providers::Secret;

use crate::driver::{BoxFuture, ClaimedIntent, HubError, HubPort, Snapshot};
use crate::machine::{ClaimAnswer, HubAnswer, PendingIntent};

/// The hub's command API, as a dispatcher client.
#[derive(Clone)]
pub struct RemoteHub {
    client: reqwest::Client,
    /// Without a trailing slash.
    base_url: String,
    api_token: Secret,
}

impl fmt::Debug for RemoteHub {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteHub")
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

fn protocol(what: impl fmt::Display) -> HubError {
    HubError::Protocol(what.to_string())
}

fn parse_time(raw: &str) -> Result<Timestamp, HubError> {
    DateTime::parse_from_rfc3339(raw)
        .map(|at| at.to_utc())
        .map_err(|error| protocol(format!("time {raw:?}: {error}")))
}

/// The API's phase as the domain's.
pub fn phase_from_api(phase: &Phase) -> Result<DispatchPhase, HubError> {
    Ok(match phase {
        Phase::NotAllowed => DispatchPhase::NotAllowed,
        Phase::Pending {
            next_attempt,
            not_before,
        } => DispatchPhase::Pending {
            next_attempt: *next_attempt,
            not_before: not_before.as_deref().map(parse_time).transpose()?,
        },
        Phase::Claimed { attempt, since } => DispatchPhase::Claimed {
            attempt: *attempt,
            since: parse_time(since)?,
        },
        Phase::Done => DispatchPhase::Done,
    })
}

fn pending_intent(view: &PendingMessageView) -> Result<PendingIntent, HubError> {
    Ok(PendingIntent {
        message_id: MessageId::parse(&view.message_id).map_err(protocol)?,
        sender: WhatsAppAddress::parse(&view.sender).map_err(protocol)?,
        recipient: ContactId::parse(&view.recipient).map_err(protocol)?,
        phase: phase_from_api(&view.phase)?,
        position: view.position,
        sender_rate_per_second: view.sender_rate_per_second,
    })
}

/// A claim's answer as the provider call needs it.
pub fn claimed_from_api(claim: &ClaimResponse) -> Result<ClaimedIntent, HubError> {
    let content = match &claim.intent.content {
        ContentView::Template {
            template,
            category,
            variables,
            media,
        } => MessageContent::Template {
            media: media
                .iter()
                .map(|m| {
                    let kind = MediaKind::parse(&m.kind)
                        .ok_or_else(|| protocol(format!("media kind {:?}", m.kind)))?;
                    TemplateMedia::new(m.card, kind, &m.url).map_err(protocol)
                })
                .collect::<Result<Vec<_>, _>>()?,
            template: TemplateId::parse(template).map_err(protocol)?,
            category: TemplateCategory::parse(category)
                .ok_or_else(|| protocol(format!("template category {category:?}")))?,
            // A BTreeMap iterates sorted by key, as the domain keeps them.
            variables: variables
                .iter()
                .map(|(key, value)| (key.clone(), value.clone()))
                .collect::<BTreeMap<_, _>>()
                .into_iter()
                .collect(),
        },
        ContentView::Text { text } => MessageContent::Freeform { text: text.clone() },
        // Validated again: a hub that hands out content no provider takes is a protocol error.
        ContentView::Media { kind, url, caption } => MessageContent::Rich(
            RichReply::media(
                MediaKind::parse(kind).ok_or_else(|| protocol(format!("media kind {kind:?}")))?,
                url,
                caption.clone(),
            )
            .map_err(protocol)?,
        ),
        ContentView::Buttons { body, buttons } => MessageContent::Rich(
            RichReply::buttons(
                body.clone(),
                buttons
                    .iter()
                    .map(|button| ReplyButton {
                        id: button.id.clone(),
                        title: button.title.clone(),
                    })
                    .collect(),
            )
            .map_err(protocol)?,
        ),
    };
    let provider = match claim.sender.provider.as_deref() {
        Some(raw) => {
            Some(ProviderKind::parse(raw).ok_or_else(|| protocol(format!("provider {raw:?}")))?)
        }
        None => None,
    };
    Ok(ClaimedIntent {
        attempt: claim.attempt,
        sender: WhatsAppAddress::parse(&claim.intent.from).map_err(protocol)?,
        recipient: ContactId::parse(&claim.intent.to).map_err(protocol)?,
        content,
        provider,
        meta_phone_number_id: claim.sender.meta_phone_number_id.clone(),
        template_language: claim
            .template
            .as_ref()
            .map(|template| template.language.clone()),
    })
}

/// The outcome as the API takes it.
pub fn outcome_to_api(command: &RecordOutcome) -> OutcomeRequest {
    let mut request = OutcomeRequest {
        attempt: command.attempt,
        accepted: None,
        rejected: None,
        transport: None,
        jitter_ms: u64::try_from(command.jitter.num_milliseconds()).unwrap_or(0),
    };
    match &command.outcome {
        DispatchOutcome::Accepted {
            provider_ref,
            provider_status,
            recipient,
        } => {
            request.accepted = Some(AcceptedOutcome {
                provider_ref: provider_ref.to_string(),
                provider_status: provider_status.to_string(),
                recipient: recipient.as_ref().map(ToString::to_string),
            });
        }
        DispatchOutcome::Rejected { error } => {
            request.rejected = Some(RejectedOutcome {
                provider: error.provider.as_str().to_owned(),
                code: error.code,
                http_status: error.http_status,
                message: error.message.clone(),
            });
        }
        DispatchOutcome::Transport { provider, message } => {
            request.transport = Some(TransportOutcome {
                provider: provider.as_str().to_owned(),
                message: message.clone(),
            });
        }
    }
    request
}

impl RemoteHub {
    /// A client of the hub at `base_url` (`http://host:port`), authenticating with the API
    /// token; every request gives up after `timeout`.
    pub fn new(base_url: &str, api_token: Secret, timeout: Duration) -> Result<Self, HubError> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|error| HubError::Unavailable(format!("HTTP client: {error}")))?;
        Ok(Self {
            client,
            base_url: base_url.trim_end_matches('/').to_owned(),
            api_token,
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// Sends a request; the status and body, or `Unavailable` when no answer came.
    async fn exchange(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<(StatusCode, bytes::Bytes), HubError> {
        let response = request
            .bearer_auth(self.api_token.expose())
            .send()
            .await
            .map_err(|error| HubError::Unavailable(error.to_string()))?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|error| HubError::Unavailable(error.to_string()))?;
        Ok((status, body))
    }

    fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, HubError> {
        serde_json::from_slice(body).map_err(protocol)
    }

    /// The message's phase, read from `GET /v1/messages/{id}`.
    async fn phase(&self, message_id: MessageId) -> Result<DispatchPhase, HubError> {
        let request = self
            .client
            .get(self.url(&format!("/v1/messages/{message_id}")));
        let (status, body) = self.exchange(request).await?;
        match status {
            StatusCode::OK => phase_from_api(&Self::decode::<MessageResponse>(&body)?.phase),
            StatusCode::NOT_FOUND => Ok(DispatchPhase::NotAllowed),
            other => Err(HubError::Unavailable(format!("HTTP {other}"))),
        }
    }

    /// The answer to an outcome or an expiry: the phase in the body, or (for a refusal of the
    /// domain, 409/404) the phase read afresh.
    async fn recorded(&self, message_id: MessageId, status: StatusCode, body: &[u8]) -> HubAnswer {
        let phase = match status {
            StatusCode::OK => Self::decode::<DispatchRecorded>(body)
                .and_then(|recorded| phase_from_api(&recorded.phase)),
            StatusCode::CONFLICT | StatusCode::NOT_FOUND => self.phase(message_id).await,
            other => Err(HubError::Unavailable(format!("HTTP {other}"))),
        };
        match phase {
            Ok(phase) => HubAnswer::Phase(phase),
            Err(error) => {
                tracing::warn!(%error, %message_id, "hub answer not understood");
                HubAnswer::Unavailable
            }
        }
    }
}

impl HubPort for RemoteHub {
    fn pending(&self) -> BoxFuture<'_, Result<Snapshot, HubError>> {
        Box::pin(async move {
            let request = self.client.get(self.url("/v1/dispatch/pending"));
            let (status, body) = self.exchange(request).await?;
            if status != StatusCode::OK {
                return Err(HubError::Unavailable(format!("HTTP {status}")));
            }
            let pending: PendingResponse = Self::decode(&body)?;
            let intents = pending
                .messages
                .iter()
                .map(pending_intent)
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Snapshot {
                intents,
                read_up_to: pending.head + 1,
                more: false,
            })
        })
    }

    fn intents_since(&self, _from: u64) -> BoxFuture<'_, Result<Snapshot, HubError>> {
        self.pending()
    }

    fn claim(&self, message_id: MessageId) -> BoxFuture<'_, ClaimAnswer<ClaimedIntent>> {
        Box::pin(async move {
            let request = self
                .client
                .post(self.url(&format!("/v1/messages/{message_id}/claim")));
            let Ok((status, body)) = self.exchange(request).await else {
                return ClaimAnswer::Unavailable;
            };
            let answer = match status {
                StatusCode::OK => Self::decode::<ClaimResponse>(&body)
                    .and_then(|claim| claimed_from_api(&claim))
                    .map(|claimed| ClaimAnswer::Claimed {
                        attempt: claimed.attempt,
                        request: claimed,
                    }),
                StatusCode::UNPROCESSABLE_ENTITY => {
                    Self::decode::<ErrorBody>(&body).and_then(|error| {
                        let rule = error.error.rule.unwrap_or_default();
                        RuleId::parse(&rule)
                            .map(|rule| ClaimAnswer::Refused { rule })
                            .ok_or_else(|| protocol(format!("rule {rule:?}")))
                    })
                }
                StatusCode::CONFLICT => {
                    let phase = match Self::decode::<ErrorBody>(&body)
                        .ok()
                        .and_then(|error| error.error.phase)
                    {
                        Some(phase) => phase_from_api(&phase),
                        None => self.phase(message_id).await,
                    };
                    phase.map(|phase| ClaimAnswer::NotClaimable { phase })
                }
                StatusCode::NOT_FOUND => Ok(ClaimAnswer::NotClaimable {
                    phase: DispatchPhase::NotAllowed,
                }),
                other => Err(HubError::Unavailable(format!("HTTP {other}"))),
            };
            answer.unwrap_or_else(|error| {
                tracing::warn!(%error, %message_id, "claim answer not understood");
                ClaimAnswer::Unavailable
            })
        })
    }

    fn record_outcome(&self, command: RecordOutcome) -> BoxFuture<'_, HubAnswer> {
        Box::pin(async move {
            let message_id = command.message_id;
            let request = self
                .client
                .post(self.url(&format!("/v1/messages/{message_id}/outcome")))
                .json(&outcome_to_api(&command));
            match self.exchange(request).await {
                Ok((status, body)) => self.recorded(message_id, status, &body).await,
                Err(_) => HubAnswer::Unavailable,
            }
        })
    }

    fn expire_in_doubt(&self, message_id: MessageId) -> BoxFuture<'_, HubAnswer> {
        Box::pin(async move {
            let request = self
                .client
                .post(self.url(&format!("/v1/messages/{message_id}/expire-in-doubt")));
            match self.exchange(request).await {
                Ok((status, body)) => self.recorded(message_id, status, &body).await,
                Err(_) => HubAnswer::Unavailable,
            }
        })
    }

    fn checkpoint(&self) -> BoxFuture<'_, Result<u64, HubError>> {
        Box::pin(async { Ok(0) })
    }

    fn save_checkpoint(&self, _resume_from: u64) -> BoxFuture<'_, Result<(), HubError>> {
        Box::pin(async { Ok(()) })
    }

    fn changes(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        None
    }
}
