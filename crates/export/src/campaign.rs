//! The export payloads of the campaign events (`wagate_domain::campaign`); the inverse is in
//! `decode/campaign.rs`.

use serde_json::{json, Value};
use wagate_domain::campaign::CampaignEvent;

use crate::time;

pub(crate) fn payload(event: &CampaignEvent) -> Value {
    match event {
        CampaignEvent::Created {
            campaign,
            sender,
            workflow,
            template,
            rows,
            on_limit,
            at,
        } => json!({
            "campaign": campaign.to_string(), "sender": sender.to_string(),
            "workflow": workflow.as_str(), "template": template.as_str(),
            "rows": rows.iter().map(|row| json!({
                "to": row.to.to_string(), "variables": crate::variables(&row.variables),
            })).collect::<Vec<_>>(),
            "on_limit": on_limit.as_str(), "at": time(*at),
        }),
        CampaignEvent::Listed { campaign, at }
        | CampaignEvent::Started { campaign, at }
        | CampaignEvent::Paused { campaign, at }
        | CampaignEvent::Completed { campaign, at } => json!({
            "campaign": campaign.to_string(), "at": time(*at),
        }),
        CampaignEvent::Cancelled {
            campaign,
            withdrawn,
            at,
        } => json!({
            "campaign": campaign.to_string(), "withdrawn": withdrawn, "at": time(*at),
        }),
        CampaignEvent::RowSent {
            campaign,
            row,
            message,
            at,
        } => json!({
            "campaign": campaign.to_string(), "row": row, "message_id": message.to_string(),
            "at": time(*at),
        }),
        CampaignEvent::RowRefused {
            campaign,
            row,
            message,
            rule,
            at,
        } => json!({
            "campaign": campaign.to_string(), "row": row, "message_id": message.to_string(),
            "rule": rule.as_str(), "at": time(*at),
        }),
    }
}
