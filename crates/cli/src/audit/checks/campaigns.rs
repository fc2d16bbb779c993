//! The campaign checks: each row processed at most once, within the campaign's rows, before the
//! campaign ended, and recorded with the send it stands for (issue 18: "a campaign can never do
//! what a single send cannot", and its sends are audited like any other). The sends themselves
//! are checked by the message rules; these checks hold the campaign's own bookkeeping to them.

use std::collections::HashMap;

use serde_json::Value;

use super::{At, Auditor, Check, Content};

/// What the audit knows of one campaign.
#[derive(Debug, Default)]
pub(super) struct CampaignFacts {
    /// Its row count (`CampaignCreated`'s `rows`); `None` before its creation is seen.
    rows: Option<u64>,
    /// Each processed row and the position that processed it.
    processed: HashMap<u64, u64>,
    /// The first `CampaignCancelled` or `CampaignCompleted`, and its position.
    ended: Option<(&'static str, u64)>,
}

impl Auditor {
    pub(super) fn campaign_event(&mut self, event: &At<'_>) {
        let record = event.record;
        let Some(id) = self.field(record, "campaign") else {
            return;
        };
        // The index entry only says the campaign exists; its stream is the index's own.
        if record.event_type == "CampaignListed" {
            return;
        }
        if !self.on_stream(record, "campaign", id) {
            return;
        }
        match record.event_type.as_str() {
            "CampaignCreated" => {
                let rows = record
                    .payload
                    .get("rows")
                    .and_then(Value::as_array)
                    .map_or(0, |rows| rows.len() as u64);
                self.campaigns.entry(id.into()).or_default().rows = Some(rows);
            }
            "CampaignCancelled" | "CampaignCompleted" => {
                let kind = if record.event_type == "CampaignCancelled" {
                    "CampaignCancelled"
                } else {
                    "CampaignCompleted"
                };
                self.campaigns
                    .entry(id.into())
                    .or_default()
                    .ended
                    .get_or_insert((kind, record.position));
            }
            "CampaignRowSent" | "CampaignRowRefused" => self.campaign_row(event, id),
            // Started and Paused: no rule reads them (a row appended while paused conflicts
            // with the pause in the hub and is withdrawn; the log cannot show the race).
            _ => {}
        }
    }

    fn campaign_row(&mut self, event: &At<'_>, id: &str) {
        let record = event.record;
        let Some(row) = record.number("row") else {
            self.violation(
                record,
                Check::Malformed,
                format!("{} has no numeric \"row\" field", record.event_type),
            );
            return;
        };
        let Some(text_id) = self.field(record, "message_id") else {
            return;
        };
        let Ok(uuid) = uuid::Uuid::parse_str(text_id) else {
            self.violation(
                record,
                Check::Malformed,
                format!("message id {text_id:?} is not a UUID"),
            );
            return;
        };
        let sent = record.event_type == "CampaignRowSent";
        let message = self.messages.get(&uuid.as_u128());
        let recorded = if sent {
            message
                .and_then(|m| m.intent.as_ref())
                .is_some_and(|intent| matches!(intent.content, Content::Template { .. }))
        } else {
            message.is_some_and(|m| m.refused)
        };
        let mut problems = Vec::new();
        if !recorded {
            let intent = if sent { "TemplateSent" } else { "SendRefused" };
            problems.push((
                Check::CampaignRowWithoutSend,
                format!(
                    "{} for row {row} of campaign {id} names message {text_id}, which has no {intent} before it",
                    record.event_type
                ),
            ));
        }
        let campaign = self.campaigns.entry(id.into()).or_default();
        match campaign.rows {
            None => problems.push((
                Check::CampaignRowOutOfRange,
                format!("row {row} of campaign {id}, which has no CampaignCreated before it"),
            )),
            Some(rows) if row == 0 || row > rows => problems.push((
                Check::CampaignRowOutOfRange,
                format!("row {row} of campaign {id}, which has rows 1 to {rows}"),
            )),
            Some(_) => {}
        }
        if let Some((kind, position)) = campaign.ended {
            problems.push((
                Check::CampaignRowAfterEnd,
                format!(
                    "row {row} of campaign {id} processed after its {kind} at position {position}"
                ),
            ));
        }
        if let Some(first) = campaign.processed.get(&row) {
            problems.push((
                Check::CampaignRowTwice,
                format!("row {row} of campaign {id} processed again (first at position {first})"),
            ));
        } else {
            campaign.processed.insert(row, record.position);
        }
        for (check, sentence) in problems {
            self.violation(record, check, sentence);
        }
    }
}
