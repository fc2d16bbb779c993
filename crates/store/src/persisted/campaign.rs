//! The persisted forms of the campaign events (`wagate_domain::campaign`), version 1, under the
//! same rules as the parent module's (strings for ids and small enums, nanoseconds for times).

use serde::{Deserialize, Serialize};
use uuid::Uuid;
use wagate_domain::campaign::{CampaignEvent, CampaignRow, OnLimit};
use wagate_domain::{CampaignId, Event, PhoneNumber};

use super::{bytes, id, ns, DecodeError, Reader};

#[derive(Serialize, Deserialize)]
struct CampaignRowV1 {
    to: String,
    /// Sorted by key.
    variables: Vec<(String, String)>,
}

#[derive(Serialize, Deserialize)]
struct CampaignCreatedV1 {
    campaign: [u8; 16],
    sender: String,
    workflow: String,
    template: String,
    rows: Vec<CampaignRowV1>,
    on_limit: String,
    at_ns: i64,
}

/// `Listed`, `Started`, `Paused` and `Completed`: the campaign and the time.
#[derive(Serialize, Deserialize)]
struct CampaignMarkV1 {
    campaign: [u8; 16],
    at_ns: i64,
}

#[derive(Serialize, Deserialize)]
struct CampaignCancelledV1 {
    campaign: [u8; 16],
    withdrawn: u32,
    at_ns: i64,
}

#[derive(Serialize, Deserialize)]
struct CampaignRowSentV1 {
    campaign: [u8; 16],
    row: u32,
    message: [u8; 16],
    at_ns: i64,
}

#[derive(Serialize, Deserialize)]
struct CampaignRowRefusedV1 {
    campaign: [u8; 16],
    row: u32,
    message: [u8; 16],
    rule: String,
    at_ns: i64,
}

fn campaign_bytes(campaign: &CampaignId) -> [u8; 16] {
    campaign.as_uuid().into_bytes()
}

pub(super) fn encode(event: &CampaignEvent) -> Vec<u8> {
    match event {
        CampaignEvent::Created {
            campaign,
            sender,
            workflow,
            template,
            rows,
            on_limit,
            at,
        } => bytes(&CampaignCreatedV1 {
            campaign: campaign_bytes(campaign),
            sender: sender.to_string(),
            workflow: workflow.to_string(),
            template: template.to_string(),
            rows: rows
                .iter()
                .map(|row| CampaignRowV1 {
                    to: row.to.to_string(),
                    variables: row.variables.clone(),
                })
                .collect(),
            on_limit: on_limit.as_str().to_owned(),
            at_ns: ns(*at),
        }),
        CampaignEvent::Listed { campaign, at }
        | CampaignEvent::Started { campaign, at }
        | CampaignEvent::Paused { campaign, at }
        | CampaignEvent::Completed { campaign, at } => bytes(&CampaignMarkV1 {
            campaign: campaign_bytes(campaign),
            at_ns: ns(*at),
        }),
        CampaignEvent::Cancelled {
            campaign,
            withdrawn,
            at,
        } => bytes(&CampaignCancelledV1 {
            campaign: campaign_bytes(campaign),
            withdrawn: *withdrawn,
            at_ns: ns(*at),
        }),
        CampaignEvent::RowSent {
            campaign,
            row,
            message,
            at,
        } => bytes(&CampaignRowSentV1 {
            campaign: campaign_bytes(campaign),
            row: *row,
            message: id(message),
            at_ns: ns(*at),
        }),
        CampaignEvent::RowRefused {
            campaign,
            row,
            message,
            rule,
            at,
        } => bytes(&CampaignRowRefusedV1 {
            campaign: campaign_bytes(campaign),
            row: *row,
            message: id(message),
            rule: rule.as_str().to_owned(),
            at_ns: ns(*at),
        }),
    }
}

impl Reader<'_> {
    fn campaign(&self, raw: [u8; 16]) -> Result<CampaignId, DecodeError> {
        CampaignId::from_uuid(Uuid::from_bytes(raw))
            .map_err(|error| self.malformed(error.to_string()))
    }

    /// The campaign event of this record's type, `None` when it is not one.
    pub(super) fn decode_campaign(&mut self) -> Option<Result<Event, DecodeError>> {
        let decoded = match self.event_type {
            "CampaignCreated" => self.created(),
            "CampaignListed" | "CampaignStarted" | "CampaignPaused" | "CampaignCompleted" => {
                self.mark()
            }
            "CampaignCancelled" => self.mirror::<CampaignCancelledV1>().and_then(|m| {
                Ok(CampaignEvent::Cancelled {
                    campaign: self.campaign(m.campaign)?,
                    withdrawn: m.withdrawn,
                    at: self.at(m.at_ns),
                })
            }),
            "CampaignRowSent" => self.mirror::<CampaignRowSentV1>().and_then(|m| {
                Ok(CampaignEvent::RowSent {
                    campaign: self.campaign(m.campaign)?,
                    row: m.row,
                    message: self.message_id(m.message)?,
                    at: self.at(m.at_ns),
                })
            }),
            "CampaignRowRefused" => self.mirror::<CampaignRowRefusedV1>().and_then(|m| {
                Ok(CampaignEvent::RowRefused {
                    campaign: self.campaign(m.campaign)?,
                    row: m.row,
                    message: self.message_id(m.message)?,
                    rule: self.rule(&m.rule)?,
                    at: self.at(m.at_ns),
                })
            }),
            _ => return None,
        };
        Some(decoded.map(Event::from))
    }

    fn created(&mut self) -> Result<CampaignEvent, DecodeError> {
        let m: CampaignCreatedV1 = self.mirror()?;
        let rows = m
            .rows
            .into_iter()
            .map(|row| {
                Ok(CampaignRow {
                    to: PhoneNumber::parse(&row.to)
                        .map_err(|error| self.malformed(error.to_string()))?,
                    variables: row.variables,
                })
            })
            .collect::<Result<Vec<_>, DecodeError>>()?;
        Ok(CampaignEvent::Created {
            campaign: self.campaign(m.campaign)?,
            sender: self.address(&m.sender)?,
            workflow: self.workflow(&m.workflow)?,
            template: self.template(&m.template)?,
            rows,
            on_limit: self.known("on_limit", &m.on_limit, OnLimit::parse)?,
            at: self.at(m.at_ns),
        })
    }

    fn mark(&mut self) -> Result<CampaignEvent, DecodeError> {
        let m: CampaignMarkV1 = self.mirror()?;
        let campaign = self.campaign(m.campaign)?;
        let at = self.at(m.at_ns);
        Ok(match self.event_type {
            "CampaignListed" => CampaignEvent::Listed { campaign, at },
            "CampaignStarted" => CampaignEvent::Started { campaign, at },
            "CampaignPaused" => CampaignEvent::Paused { campaign, at },
            _ => CampaignEvent::Completed { campaign, at },
        })
    }
}
