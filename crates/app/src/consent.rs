//! Consent capture through the hub: wordings, campaigns, form submissions, and the receipts a
//! contact can be shown. The decisions are `wagate_domain::consent`'s; confirmation by the
//! person's own message happens inside `Hub::receive_inbound`, atomically with the inbound.

use tracing::info;
use wagate_domain::consent::{
    self, Campaign, CreateCampaign, PublishWording, RequestOptIn, Wording,
};
use wagate_domain::consent_confirmation;
use wagate_domain::contact::written_at;
use wagate_domain::decide::ReceiveInbound;
use wagate_domain::{
    ConsentEvent, ConsentState, ContactEvent, ContactId, ContactState, Event, SenderState,
    StreamKey, TemplateState, Timestamp,
};

use crate::codec;
use crate::error::{AppError, Result};
use crate::hub::Hub;
use crate::reads::LoggedEvent;

/// One consent receipt: an opt-in (confirmed) or a form submission still waiting for the
/// person's message (pending), with its withdrawal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentReceiptEntry {
    /// `web_form`, `qr_code`, `api`, `keyword`, …
    pub source: String,
    /// `confirmed` or `pending`.
    pub state: &'static str,
    pub campaign: Option<String>,
    pub wording_version: String,
    /// The wording's text and hash when that version is published.
    pub wording: Option<Wording>,
    pub evidence: String,
    pub recorded_by: String,
    pub requested_at: Option<Timestamp>,
    pub confirmed_at: Option<Timestamp>,
    pub withdrawn_at: Option<Timestamp>,
    /// The log position of the `OptedIn` (or the `OptInRequested` while pending).
    pub position: u64,
}

/// A confirmation decided with an inbound: the streams it read (at their versions) and the
/// `OptedIn` it appends.
pub(crate) type Confirmation = (Vec<(StreamKey, u64)>, Vec<Event>);

impl Hub {
    fn consent_stream(&self, name: String) -> Result<ConsentState> {
        Ok(self.load::<ConsentState>(&StreamKey::Consent(name))?.state)
    }

    /// A published wording, if any.
    pub fn wording(&self, version: &str) -> Result<Option<Wording>> {
        Ok(self
            .consent_stream(consent::wording_stream(version))?
            .wording)
    }

    /// A campaign and its wording, if the campaign exists.
    pub fn campaign(&self, code: &str) -> Result<Option<(Campaign, Wording)>> {
        if !consent::is_campaign_code(code) {
            return Ok(None);
        }
        let Some(campaign) = self
            .consent_stream(consent::campaign_stream(code))?
            .campaign
        else {
            return Ok(None);
        };
        let wording =
            self.wording(&campaign.wording_version)?
                .ok_or_else(|| AppError::NotFound {
                    what: format!("consent wording {}", campaign.wording_version),
                })?;
        Ok(Some((campaign, wording)))
    }

    /// Publishes a wording; the same business, language and text again is the same version
    /// (nothing appended). Answers the wording and whether it was new.
    pub async fn publish_wording(&self, command: PublishWording) -> Result<(Wording, bool)> {
        let version = consent::wording_version(&command.business, &command.language, &command.text);
        let key = StreamKey::Consent(consent::wording_stream(&version));
        let positions = self
            .decide_one(key, |state: &ConsentState, now| {
                Ok(consent::publish_wording(state, &command, now)?)
            })
            .await?;
        let wording = self.wording(&version)?.ok_or_else(|| AppError::NotFound {
            what: format!("consent wording {version}"),
        })?;
        Ok((wording, !positions.is_empty()))
    }

    /// Creates a campaign under `command.code` (drawn by the caller).
    pub async fn create_campaign(&self, command: CreateCampaign) -> Result<(Campaign, Wording)> {
        let key = StreamKey::Consent(consent::campaign_stream(&command.code));
        let wording_key = StreamKey::Consent(consent::wording_stream(&command.wording_version));
        let sender = self.load::<SenderState>(&StreamKey::Sender(command.sender.clone()))?;
        let wording = self.load::<ConsentState>(&wording_key)?;
        let registered = sender.version > 0;
        let template = match &command.confirmation_template {
            Some(id) => Some(
                self.load::<TemplateState>(&StreamKey::Template(id.clone()))?
                    .state,
            ),
            None => None,
        };
        self.decide_one(key, |existing: &ConsentState, now| {
            if existing.campaign.is_some() {
                return Err(AppError::Conflict {
                    reason: format!("campaign {} exists", command.code),
                });
            }
            Ok(consent::create_campaign(
                &wording.state,
                registered,
                template.as_ref(),
                &command,
                now,
            )?)
        })
        .await?;
        self.campaign(&command.code)?
            .ok_or_else(|| AppError::NotFound {
                what: format!("consent campaign {}", command.code),
            })
    }

    /// Closes a campaign: its page and its code record nothing from then on. Answers the
    /// campaign as closed and whether this call closed it (a second close appends nothing).
    pub async fn close_campaign(&self, code: &str) -> Result<((Campaign, Wording), bool)> {
        if !consent::is_campaign_code(code) {
            return Err(AppError::NotFound {
                what: format!("consent campaign {code}"),
            });
        }
        let key = StreamKey::Consent(consent::campaign_stream(code));
        let positions = self
            .decide_one(key, |existing: &ConsentState, now| {
                Ok(consent::close_campaign(existing, code, now)?)
            })
            .await?;
        let found = self.campaign(code)?.ok_or_else(|| AppError::NotFound {
            what: format!("consent campaign {code}"),
        })?;
        if !positions.is_empty() {
            info!(campaign = %code, "consent campaign closed");
        }
        Ok((found, !positions.is_empty()))
    }

    /// A form submission: records the pending opt-in with its evidence.
    pub async fn request_opt_in(&self, code: &str, command: RequestOptIn) -> Result<Vec<u64>> {
        let Some((campaign, _)) = self.campaign(code)? else {
            return Err(AppError::NotFound {
                what: format!("consent campaign {code}"),
            });
        };
        let campaign_state = self.consent_stream(consent::campaign_stream(code))?;
        let wording = self.consent_stream(consent::wording_stream(&campaign.wording_version))?;
        let key = StreamKey::Consent(consent::requests_stream(&command.contact));
        self.decide_one(key, |_: &ConsentState, now| {
            Ok(consent::request_opt_in(
                &campaign_state,
                &wording,
                &command,
                now,
            )?)
        })
        .await
    }

    /// Every consent receipt of `contact`, oldest first: each opt-in with its withdrawal (the
    /// first opt-out after it), and each form submission not yet confirmed.
    pub fn consent_receipts(&self, contact: &ContactId) -> Result<Vec<ConsentReceiptEntry>> {
        let contact_events = self.read_all(&StreamKey::Contact(contact.clone()))?;
        let requests = self.read_all(&StreamKey::Consent(consent::requests_stream(contact)))?;
        let mut receipts: Vec<ConsentReceiptEntry> = Vec::new();
        for logged in &contact_events {
            match &logged.event {
                Event::Contact(ContactEvent::OptedIn {
                    source,
                    evidence,
                    recorded_by,
                    wording_version,
                    at,
                    ..
                }) => receipts.push(ConsentReceiptEntry {
                    source: source.as_str().into(),
                    state: "confirmed",
                    campaign: campaign_of(evidence),
                    wording_version: wording_version.clone(),
                    wording: self.wording(wording_version)?,
                    evidence: evidence.clone(),
                    recorded_by: recorded_by.clone(),
                    requested_at: None,
                    confirmed_at: Some(*at),
                    withdrawn_at: None,
                    position: logged.position,
                }),
                Event::Contact(ContactEvent::OptedOut { at, .. }) => {
                    for receipt in receipts.iter_mut().filter(|r| r.withdrawn_at.is_none()) {
                        receipt.withdrawn_at = Some(*at);
                    }
                }
                _ => {}
            }
        }
        for logged in &requests {
            let Event::Consent(ConsentEvent::OptInRequested {
                campaign,
                wording_version,
                evidence,
                at,
                ..
            }) = &logged.event
            else {
                continue;
            };
            let confirmed = receipts.iter_mut().find(|r| {
                r.campaign.as_deref() == Some(campaign.as_str())
                    && r.requested_at.is_none()
                    && r.confirmed_at.is_some_and(|c| c >= *at)
            });
            match confirmed {
                Some(receipt) => receipt.requested_at = Some(*at),
                None => {
                    let source = self
                        .campaign(campaign)?
                        .map_or("web_form", |(c, _)| c.medium.opt_in_source().as_str());
                    receipts.push(ConsentReceiptEntry {
                        source: source.into(),
                        state: "pending",
                        campaign: Some(campaign.clone()),
                        wording_version: wording_version.clone(),
                        wording: self.wording(wording_version)?,
                        evidence: evidence.clone(),
                        recorded_by: "wagate:consent".into(),
                        requested_at: Some(*at),
                        confirmed_at: None,
                        withdrawn_at: None,
                        position: logged.position,
                    });
                }
            }
        }
        receipts.sort_by_key(|r| r.position);
        Ok(receipts)
    }

    /// When an inbound's text carries a campaign code: the `OptedIn` it confirms and the
    /// streams that decision read (appended with the inbound, atomically), or `None`.
    pub(crate) fn campaign_confirmation(
        &self,
        command: &ReceiveInbound,
        before: &ContactState,
        inbound_events: &[Event],
        now: Timestamp,
    ) -> Result<Option<Confirmation>> {
        if !["text", "button", "interactive"].contains(&command.kind.as_str()) {
            return Ok(None);
        }
        let Some(code) = consent::campaign_code_in(&command.text) else {
            return self.answer_confirmation(command, before, inbound_events, now);
        };
        let campaign_key = StreamKey::Consent(consent::campaign_stream(&code));
        let campaign = self.load::<ConsentState>(&campaign_key)?;
        let Some(found) = &campaign.state.campaign else {
            info!(campaign = %code, "inbound names an unknown consent campaign: nothing confirmed");
            return Ok(None);
        };
        let requests_key = StreamKey::Consent(consent::requests_stream(&command.contact));
        let requests = self.load::<ConsentState>(&requests_key)?;
        let after = after_inbound(before, inbound_events);
        let message = code_message(command, now);
        let Some(wording) = self.wording(&found.wording_version)? else {
            return Ok(None);
        };
        match consent::confirm(found, &wording, &requests.state, &after, &message, now) {
            Ok(events) => {
                info!(campaign = %code, "consent confirmed by the contact's own message");
                Ok(Some((
                    vec![
                        (campaign_key, campaign.version),
                        (requests_key, requests.version),
                    ],
                    events,
                )))
            }
            Err(why) => {
                info!(campaign = %code, reason = ?why, "campaign code confirmed nothing");
                Ok(None)
            }
        }
    }

    /// An inbound without a campaign code that answers the confirmation template of the
    /// contact's newest pending request ("YES", "JA", … or the template's button payload):
    /// confirms it exactly as the campaign code would, within the bound after the request.
    fn answer_confirmation(
        &self,
        command: &ReceiveInbound,
        before: &ContactState,
        inbound_events: &[Event],
        now: Timestamp,
    ) -> Result<Option<Confirmation>> {
        // YES from an opted-out contact is already a keyword opt-in (START's family): that
        // receipt stands on its own, the answer adds none.
        if inbound_events
            .iter()
            .any(|e| matches!(e, Event::Contact(ContactEvent::OptedIn { .. })))
        {
            return Ok(None);
        }
        let requests_key = StreamKey::Consent(consent::requests_stream(&command.contact));
        let requests = self.load::<ConsentState>(&requests_key)?;
        let Some(code) = requests.state.requests.last().map(|r| r.campaign.clone()) else {
            return Ok(None);
        };
        let campaign_key = StreamKey::Consent(consent::campaign_stream(&code));
        let campaign = self.load::<ConsentState>(&campaign_key)?;
        let Some(found) = campaign
            .state
            .campaign
            .as_ref()
            .filter(|c| c.confirmation_template.is_some())
        else {
            return Ok(None);
        };
        let Some(wording) = self.wording(&found.wording_version)? else {
            return Ok(None);
        };
        let expected = consent_confirmation::confirmation_payload(&code);
        let payload = command
            .details
            .iter()
            .map(|(_, value)| value.as_str())
            .find(|value| value.trim() == expected);
        let after = after_inbound(before, inbound_events);
        match consent_confirmation::confirm_by_answer(
            found,
            &wording,
            &requests.state,
            &after,
            &code_message(command, now),
            Some(&command.text),
            payload,
            now,
        ) {
            Ok(events) => {
                info!(campaign = %code, "consent confirmed by the answer to the confirmation template");
                Ok(Some((
                    vec![
                        (campaign_key, campaign.version),
                        (requests_key, requests.version),
                    ],
                    events,
                )))
            }
            Err(consent_confirmation::AnswerRefused::NotAnAnswer) => Ok(None),
            Err(why) => {
                info!(campaign = %code, reason = ?why, "answer confirmed nothing");
                Ok(None)
            }
        }
    }

    /// For a send naming the workflow `consent_confirmation`: the contact's newest form
    /// submission, its campaign, and the requests stream at the version read (asserted when the
    /// send is appended, so two confirmations cannot both pass). `None` when there is none.
    pub(crate) fn pending_confirmation(
        &self,
        contact: Option<&StreamKey>,
        workflow: Option<&str>,
    ) -> Result<Option<PendingLoaded>> {
        let Some(StreamKey::Contact(contact)) = contact else {
            return Ok(None);
        };
        if workflow != Some(consent_confirmation::CONFIRMATION_WORKFLOW) {
            return Ok(None);
        }
        let requests_key = StreamKey::Consent(consent::requests_stream(contact));
        let requests = self.load::<ConsentState>(&requests_key)?;
        let Some(request) = requests.state.requests.last().cloned() else {
            return Ok(None);
        };
        let Some(campaign) = self
            .consent_stream(consent::campaign_stream(&request.campaign))?
            .campaign
        else {
            return Ok(None);
        };
        Ok(Some(PendingLoaded {
            requests_key,
            requests_version: requests.version,
            campaign,
            request,
        }))
    }

    fn read_all(&self, key: &StreamKey) -> Result<Vec<LoggedEvent>> {
        let stream = codec::stream_id(key)?;
        self.inner
            .log
            .read_stream(&stream, 1, usize::MAX)?
            .iter()
            .map(LoggedEvent::decode)
            .collect()
    }
}

/// The contact as the inbound leaves it (a STOP in the same message would count).
fn after_inbound(before: &ContactState, inbound_events: &[Event]) -> ContactState {
    inbound_events
        .iter()
        .fold(before.clone(), |state, event| match event {
            Event::Contact(contact_event) => state.apply(contact_event),
            _ => state,
        })
}

/// The inbound as the evidence of a confirmation.
fn code_message(command: &ReceiveInbound, now: Timestamp) -> consent::CodeMessage {
    consent::CodeMessage {
        contact: command.contact.clone(),
        to: command.sender.clone(),
        message_ref: command
            .provider_ref
            .as_ref()
            .map_or_else(|| "(no provider id)".to_owned(), ToString::to_string),
        written_at: written_at(command.provider_at, now),
    }
}

/// A contact's pending opt-in as a confirmation send reads it.
pub(crate) struct PendingLoaded {
    pub requests_key: StreamKey,
    pub requests_version: u64,
    pub campaign: Campaign,
    pub request: consent::OptInRequest,
}

impl PendingLoaded {
    pub fn as_pending(&self) -> consent_confirmation::PendingConfirmation<'_> {
        consent_confirmation::PendingConfirmation {
            campaign: &self.campaign,
            confirmation_template: self.campaign.confirmation_template.as_ref(),
            requested_at: self.request.at,
            sent: self.request.confirmation_sent,
        }
    }
}

/// The campaign a confirmation's evidence names (`campaign WG-…; …`).
fn campaign_of(evidence: &str) -> Option<String> {
    let rest = evidence.strip_prefix("campaign ")?;
    let code = rest.split(';').next()?.trim();
    consent::is_campaign_code(code).then(|| code.to_owned())
}
