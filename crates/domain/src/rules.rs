//! The compliance rules, in the order they are checked, and the refusal that names one.

use std::fmt;

/// One row of the rule table in `docs/compliance.md`. The declaration order is the check order:
/// a refusal names the first rule broken, so the same request always gets the same answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RuleId {
    ChannelNotAuthorized,
    InvalidNumber,
    OptedOut,
    NoOptIn,
    WindowClosed,
    TemplateUnknown,
    TemplateNotApproved,
    TemplateVariables,
    WorkflowNotAllowed,
    TierLimit,
    NotOnWhatsapp,
    MarketingPaused,
    SenderQualityDropped,
}

impl RuleId {
    /// Every rule, in check order.
    pub const ALL: [Self; 13] = [
        Self::ChannelNotAuthorized,
        Self::InvalidNumber,
        Self::OptedOut,
        Self::NoOptIn,
        Self::WindowClosed,
        Self::TemplateUnknown,
        Self::TemplateNotApproved,
        Self::TemplateVariables,
        Self::WorkflowNotAllowed,
        Self::TierLimit,
        Self::NotOnWhatsapp,
        Self::MarketingPaused,
        Self::SenderQualityDropped,
    ];

    /// The stable id used in the API, the log export and the docs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ChannelNotAuthorized => "channel_not_authorized",
            Self::InvalidNumber => "invalid_number",
            Self::OptedOut => "opted_out",
            Self::NoOptIn => "no_opt_in",
            Self::WindowClosed => "window_closed",
            Self::TemplateUnknown => "template_unknown",
            Self::TemplateNotApproved => "template_not_approved",
            Self::TemplateVariables => "template_variables",
            Self::WorkflowNotAllowed => "workflow_not_allowed",
            Self::TierLimit => "tier_limit",
            Self::NotOnWhatsapp => "not_on_whatsapp",
            Self::MarketingPaused => "marketing_paused",
            Self::SenderQualityDropped => "sender_quality_dropped",
        }
    }

    pub fn parse(input: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|rule| rule.as_str() == input)
    }
}

impl fmt::Display for RuleId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A send (or dispatch claim) that wagate will not make: the first rule broken, a sentence for a
/// person, and every other rule the request also breaks (in check order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub rule: RuleId,
    pub message: String,
    pub also_broken: Vec<RuleId>,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.rule, self.message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule_ids_round_trip_and_are_unique() {
        for rule in RuleId::ALL {
            assert_eq!(RuleId::parse(rule.as_str()), Some(rule));
        }
        let mut sorted = RuleId::ALL.to_vec();
        sorted.sort();
        assert_eq!(
            sorted,
            RuleId::ALL.to_vec(),
            "ALL is in declaration (check) order"
        );
        assert_eq!(RuleId::parse("nope"), None);
    }
}
