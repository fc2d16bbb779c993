//! The inverse of `crate::campaign::payload`.

use wagate_domain::campaign::{CampaignEvent, CampaignRow, OnLimit};
use wagate_domain::{CampaignId, Event, PhoneNumber, TemplateId, Workflow};

use super::{bad, DecodeError, Payload};

/// The campaign event a line holds; `None` when its type is not a campaign event.
pub(super) fn event(event_type: &str, p: &Payload<'_>) -> Option<Result<Event, DecodeError>> {
    let campaign = || p.parsed("campaign", CampaignId::parse);
    let at = || p.time("at");
    let decoded = (|| -> Result<CampaignEvent, DecodeError> {
        Ok(match event_type {
            "CampaignCreated" => CampaignEvent::Created {
                campaign: campaign()?,
                sender: p.address("sender")?,
                workflow: p.parsed("workflow", Workflow::parse)?,
                template: p.parsed("template", TemplateId::parse)?,
                rows: p
                    .objects("rows")?
                    .iter()
                    .map(|row| {
                        let variables = row.object("variables")?;
                        let mut pairs = variables
                            .0
                            .iter()
                            .map(|(key, value)| {
                                value
                                    .as_str()
                                    .map(|value| (key.clone(), value.to_owned()))
                                    .ok_or_else(|| {
                                        bad("rows.variables", format!("{key:?} is not text"))
                                    })
                            })
                            .collect::<Result<Vec<_>, _>>()?;
                        pairs.sort();
                        Ok(CampaignRow {
                            to: row.parsed("to", PhoneNumber::parse)?,
                            variables: pairs,
                        })
                    })
                    .collect::<Result<_, DecodeError>>()?,
                on_limit: p.id("on_limit", OnLimit::parse)?,
                at: at()?,
            },
            "CampaignListed" => CampaignEvent::Listed {
                campaign: campaign()?,
                at: at()?,
            },
            "CampaignStarted" => CampaignEvent::Started {
                campaign: campaign()?,
                at: at()?,
            },
            "CampaignPaused" => CampaignEvent::Paused {
                campaign: campaign()?,
                at: at()?,
            },
            "CampaignCompleted" => CampaignEvent::Completed {
                campaign: campaign()?,
                at: at()?,
            },
            "CampaignCancelled" => CampaignEvent::Cancelled {
                campaign: campaign()?,
                withdrawn: p.number("withdrawn")?,
                at: at()?,
            },
            "CampaignRowSent" => CampaignEvent::RowSent {
                campaign: campaign()?,
                row: p.number("row")?,
                message: p.message_id()?,
                at: at()?,
            },
            "CampaignRowRefused" => CampaignEvent::RowRefused {
                campaign: campaign()?,
                row: p.number("row")?,
                message: p.message_id()?,
                rule: p.rule("rule")?,
                at: at()?,
            },
            other => return Err(DecodeError::UnknownType(other.to_owned())),
        })
    })();
    match decoded {
        Err(DecodeError::UnknownType(_)) => None,
        other => Some(other.map(Event::from)),
    }
}
