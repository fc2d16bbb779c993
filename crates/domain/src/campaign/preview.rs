//! A campaign's dry run: every row folded through the same gate function as a send
//! (`gates::check`), against the current states, counting the messaging limit cumulatively
//! (each allowed row to a new recipient outside the window uses headroom, exactly as its send
//! would). Nothing is recorded.

use std::collections::BTreeMap;

use crate::contact::ContactState;
use crate::events::{MessagingLimit, PortfolioEvent, TemplateCategory};
use crate::gates::{self, Recipient, SendContent, SendFacts};
use crate::ids::{ContactId, MessageId, PhoneNumber};
use crate::policy::Policy;
use crate::portfolio::PortfolioState;
use crate::rules::RuleId;
use crate::sender::SenderState;
use crate::template::TemplateState;
use crate::Timestamp;

use super::{CampaignDefinition, OnLimit};

/// The states a preview reads.
#[derive(Debug, Clone, Copy)]
pub struct PreviewState<'a> {
    pub sender: &'a SenderState,
    pub template: &'a TemplateState,
    pub portfolio: &'a PortfolioState,
    /// Each row's contact (every linked identity already folded in), in row order.
    pub contacts: &'a [ContactState],
}

/// A row the gates would refuse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefusedRow {
    pub row: u32,
    pub to: PhoneNumber,
    pub rule: RuleId,
    pub message: String,
}

/// A row the gates would allow now, with what its price depends on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedRow {
    pub row: u32,
    pub to: PhoneNumber,
    pub category: Option<TemplateCategory>,
    /// The recipient's 24 h window is open (the message is free of the limit, maybe of charge).
    pub window_open: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Preview {
    /// Rows every gate allows now (within the limit's headroom).
    pub allowed: Vec<AllowedRow>,
    /// Refused rows by rule (with `on_limit: refuse`, the rows over the limit are `tier_limit`).
    pub refused: BTreeMap<RuleId, u32>,
    pub refused_rows: Vec<RefusedRow>,
    /// Unique recipients the portfolio may still reach in the rolling 24 h, now; `None` when
    /// unlimited.
    pub limit_headroom: Option<u32>,
    /// Allowed rows that count against the limit (outside the window, new in the period).
    pub outside_window: u32,
    /// With `on_limit: wait`, rows held until the rolling window frees headroom (they are then
    /// decided again); with `refuse` these are in `refused` as `tier_limit`.
    pub waiting: u32,
    /// Seconds the sender's rate needs for the allowed rows (one message per recipient, so the
    /// per-recipient pacing adds nothing); `None` for a sender with no registration. Rows that
    /// wait for the limit add up to 24 h more (`next_headroom_at`).
    pub estimated_seconds: Option<u64>,
    /// When the earliest reach in the rolling 24 h expires (frees one recipient), if any.
    pub next_headroom_at: Option<Timestamp>,
}

/// A throwaway id for the simulated reaches (the preview records nothing).
fn preview_message_id() -> MessageId {
    MessageId::from_uuid(uuid::Uuid::from_u128(
        0x0000_0000_0000_7000_8000_0000_0000_0000,
    ))
    .expect("a constant v7 uuid")
}

/// Folds every row through the gates (see the module's doc).
pub fn preview(
    definition: &CampaignDefinition,
    state: &PreviewState<'_>,
    policy: &Policy,
    now: Timestamp,
) -> Preview {
    let mut portfolio = state.portfolio.clone();
    let limit = portfolio.limit.unwrap_or(policy.default_messaging_limit);
    let limit_headroom = match limit {
        MessagingLimit::Limited(limit) => {
            Some(limit.saturating_sub(portfolio.recipients_within_period(now) as u32))
        }
        MessagingLimit::Unlimited => None,
    };
    let next_headroom_at = state.portfolio.next_headroom_at(now);
    let portfolio_id = state
        .sender
        .registration
        .as_ref()
        .map(|registration| registration.portfolio.clone());
    let mut result = Preview {
        allowed: Vec::new(),
        refused: BTreeMap::new(),
        refused_rows: Vec::new(),
        limit_headroom,
        outside_window: 0,
        waiting: 0,
        estimated_seconds: None,
        next_headroom_at,
    };
    let empty = ContactState::default();
    for (index, row) in definition.rows.iter().enumerate() {
        let number = index as u32 + 1;
        let contact = state.contacts.get(index).unwrap_or(&empty);
        let to = Recipient::Phone(row.to.clone());
        let content = SendContent::Template {
            template: definition.template.clone(),
            variables: row.variables.iter().cloned().collect(),
            media: Vec::new(),
        };
        let facts = SendFacts {
            sender_address: &definition.sender,
            sender: state.sender,
            to: &to,
            contact,
            content: &content,
            template: state.template,
            workflow: Some(definition.workflow.as_str()),
            portfolio: &portfolio,
            confirmation: None,
        };
        match gates::check(&facts, policy, now) {
            Ok(allowed) => {
                if allowed.counts_toward_limit {
                    result.outside_window += 1;
                    if let Some(id) = &portfolio_id {
                        portfolio = portfolio.apply(&PortfolioEvent::RecipientReached {
                            portfolio: id.clone(),
                            contact: ContactId::Phone(row.to.clone()),
                            message_id: preview_message_id(),
                            at: now,
                        });
                    }
                }
                result.allowed.push(AllowedRow {
                    row: number,
                    to: row.to.clone(),
                    category: allowed.category,
                    window_open: contact.is_window_open(
                        &definition.sender,
                        now,
                        policy.window_safety_margin,
                    ),
                });
            }
            Err(refusal) => {
                // A row held by the limit alone waits; one the limit holds and another rule
                // refuses is refused by that rule when it is decided again.
                let rule = match (definition.on_limit, refusal.rule) {
                    (OnLimit::Wait, RuleId::TierLimit) => match refusal.also_broken.first() {
                        None => {
                            result.waiting += 1;
                            continue;
                        }
                        Some(other) => *other,
                    },
                    (_, rule) => rule,
                };
                *result.refused.entry(rule).or_default() += 1;
                result.refused_rows.push(RefusedRow {
                    row: number,
                    to: row.to.clone(),
                    rule,
                    message: if rule == refusal.rule {
                        refusal.message
                    } else {
                        format!("refused by {}", rule.as_str())
                    },
                });
            }
        }
    }
    result.estimated_seconds = state.sender.registration.as_ref().map(|registration| {
        let rate = u64::from(registration.rate_per_second().max(1));
        (result.allowed.len() as u64).div_ceil(rate)
    });
    result
}
