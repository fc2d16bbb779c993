//! The compliance gates: every rule of the table in docs/compliance.md, checked in its order.
//! The same function decides a send and re-checks a dispatch claim, so the two cannot drift.

use std::collections::BTreeMap;
use std::fmt;

use crate::consent_confirmation::{
    permits_confirmation, ConfirmationCheck, ConfirmationSend, NotPermitted, CONFIRMATION_WORKFLOW,
};
use crate::contact::ContactState;
use crate::events::{ContactFlag, MessagingLimit, TemplateCategory};
use crate::ids::{ContactId, IdError, PhoneNumber, TemplateId, WhatsAppAddress, Workflow};
use crate::policy::Policy;
use crate::portfolio::PortfolioState;
use crate::rules::{Refusal, RuleId};
use crate::sender::SenderState;
use crate::template::TemplateState;
use crate::Timestamp;

/// What the agent asks to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendContent {
    /// A business-initiated message: an approved template with its variables.
    Template {
        template: TemplateId,
        variables: BTreeMap<String, String>,
        /// Header media for this send (the template's header, carousel cards' headers),
        /// validated and sorted by `TemplateMedia::normalize`.
        media: Vec<crate::rich::TemplateMedia>,
    },
    /// Freeform text: only inside the 24 h window.
    Freeform { text: String },
    /// Freeform media or quick-reply buttons: gated exactly like freeform text.
    Rich(crate::rich::RichReply),
}

impl SendContent {
    pub fn is_template(&self) -> bool {
        matches!(self, Self::Template { .. })
    }
}

/// The recipient of a send as the agent gave it, parsed once at the edge and carried typed.
/// An invalid number is not an input error: it is a recorded `invalid_number` refusal, so the
/// text as given and the reason travel with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recipient {
    Phone(PhoneNumber),
    Invalid { given: String, error: IdError },
}

impl Recipient {
    pub fn parse(input: &str) -> Self {
        match PhoneNumber::parse(input) {
            Ok(number) => Self::Phone(number),
            Err(error) => Self::Invalid {
                given: input.to_owned(),
                error,
            },
        }
    }

    /// An intent's contact as a recipient: a phone number as it is; any other contact id (a
    /// business-scoped user id cannot be messaged by number) is invalid exactly as its text is.
    pub fn of_contact(contact: &ContactId) -> Self {
        match contact {
            ContactId::Phone(number) => Self::Phone(number.clone()),
            ContactId::BusinessScoped(_) => Self::parse(&contact.to_string()),
        }
    }

    pub fn number(&self) -> Option<&PhoneNumber> {
        match self {
            Self::Phone(number) => Some(number),
            Self::Invalid { .. } => None,
        }
    }
}

impl From<PhoneNumber> for Recipient {
    fn from(number: PhoneNumber) -> Self {
        Self::Phone(number)
    }
}

/// The recipient as given: `PhoneNumber` keeps its input unchanged, so a valid number displays
/// exactly as the agent wrote it.
impl fmt::Display for Recipient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Phone(number) => number.fmt(f),
            Self::Invalid { given, .. } => f.write_str(given),
        }
    }
}

/// Everything the gates look at, loaded from the newest state.
#[derive(Debug, Clone, Copy)]
pub struct SendFacts<'a> {
    pub sender_address: &'a WhatsAppAddress,
    pub sender: &'a SenderState,
    /// The recipient: an invalid one is a recorded refusal, checked here in rule order.
    pub to: &'a Recipient,
    /// The contact's state (empty for a contact wagate has never seen).
    pub contact: &'a ContactState,
    pub content: &'a SendContent,
    /// The template's state when the content is a template (empty if unknown).
    pub template: &'a TemplateState,
    pub workflow: Option<&'a str>,
    /// The sender's portfolio (empty when the sender is unknown).
    pub portfolio: &'a PortfolioState,
    /// For a send naming the workflow `consent_confirmation`: the contact's pending opt-in and
    /// this send's id, the only facts under which a template may reach a contact without an
    /// opt-in ([`crate::consent_confirmation`]). `None` for every other send.
    pub confirmation: Option<ConfirmationCheck<'a>>,
}

/// The outcome of a gate check that passed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allowed {
    pub contact: ContactId,
    pub workflow: Workflow,
    pub category: Option<TemplateCategory>,
    /// A business-initiated message outside an open window: counts toward the portfolio limit.
    pub counts_toward_limit: bool,
    /// The campaign whose confirmation template this send is, when it passed only as the one
    /// message a pending opt-in permits (the decision records `OptInConfirmationSent`).
    pub confirmation_of: Option<String>,
}

/// Checks every rule; `Err` names the first one broken and lists the others.
pub fn check(facts: &SendFacts<'_>, policy: &Policy, now: Timestamp) -> Result<Allowed, Refusal> {
    let broken = broken_rules(facts, policy, now);
    let mut broken = broken.into_iter();
    if let Some((rule, message)) = broken.next() {
        return Err(Refusal {
            rule,
            message,
            also_broken: broken.map(|(rule, _)| rule).collect(),
        });
    }
    // Every rule passed, so the number, the workflow and (for templates) the template are valid.
    let workflow = facts.workflow.map(Workflow::parse);
    match (facts.to, workflow) {
        (Recipient::Phone(number), Some(Ok(workflow))) => {
            let is_template = facts.content.is_template();
            let window_open = facts.contact.is_window_open(
                facts.sender_address,
                now,
                policy.window_safety_margin,
            );
            Ok(Allowed {
                contact: ContactId::Phone(number.clone()),
                workflow,
                category: facts
                    .template
                    .definition
                    .as_ref()
                    .filter(|_| is_template)
                    .map(|d| d.category),
                counts_toward_limit: is_template && !window_open,
                confirmation_of: (is_template && !facts.contact.is_opted_in())
                    .then(|| facts.confirmation.map(|c| c.pending.campaign.code.clone()))
                    .flatten(),
            })
        }
        // Unreachable while broken_rules checks both; kept as a refusal rather than a panic.
        (Recipient::Invalid { error, .. }, _) => {
            Err(single(RuleId::InvalidNumber, error.to_string()))
        }
        (_, _) => Err(single(
            RuleId::WorkflowNotAllowed,
            "the workflow is missing or invalid".into(),
        )),
    }
}

fn single(rule: RuleId, message: String) -> Refusal {
    Refusal {
        rule,
        message,
        also_broken: Vec::new(),
    }
}

/// For a template send that carries a pending opt-in: whether it is the one confirmation that
/// opt-in permits. `None` when the send carries none (the ordinary `no_opt_in`).
fn confirmation_permitted(
    facts: &SendFacts<'_>,
    now: Timestamp,
) -> Option<Result<(), NotPermitted>> {
    let check = facts.confirmation?;
    let SendContent::Template { template, .. } = facts.content else {
        return None;
    };
    Some(permits_confirmation(
        &check.pending,
        &ConfirmationSend {
            message_id: check.message_id,
            sender: facts.sender_address,
            template,
            workflow: facts.workflow,
            contact: facts.contact,
        },
        now,
    ))
}

/// Every broken rule, in check order, with a sentence for each.
pub fn broken_rules(
    facts: &SendFacts<'_>,
    policy: &Policy,
    now: Timestamp,
) -> Vec<(RuleId, String)> {
    let mut broken = Vec::new();
    let sender = facts.sender_address;

    if facts.sender.registration.is_none() {
        broken.push((
            RuleId::ChannelNotAuthorized,
            format!("sender {sender} is not registered"),
        ));
    } else if facts.sender.authorization_withdrawn {
        broken.push((
            RuleId::ChannelNotAuthorized,
            format!("sender {sender}'s registration changed since it was authorized: an operator must authorize it again"),
        ));
    } else if facts.sender.authorized_by.is_none() {
        broken.push((
            RuleId::ChannelNotAuthorized,
            format!("sender {sender} has not been authorized by an operator"),
        ));
    } else if let Some(reason) = &facts.sender.suspended {
        broken.push((
            RuleId::ChannelNotAuthorized,
            format!("sender {sender} is suspended: {reason}"),
        ));
    }

    let number_valid = match facts.to {
        Recipient::Phone(_) => true,
        Recipient::Invalid { error, .. } => {
            broken.push((RuleId::InvalidNumber, error.to_string()));
            false
        }
    };
    let contact = facts.contact;
    let to = facts.to;
    let is_template = facts.content.is_template();
    // The window belongs to the business number the person wrote to: only `sender`'s counts.
    let window_open = contact.is_window_open(sender, now, policy.window_safety_margin);

    if number_valid && contact.is_opted_out() {
        broken.push((
            RuleId::OptedOut,
            format!("{to} opted out and has not opted in again"),
        ));
    }
    if number_valid && is_template && !contact.is_opted_in() {
        match confirmation_permitted(facts, now) {
            Some(Ok(())) => {}
            Some(Err(why)) => broken.push((
                RuleId::NoOptIn,
                format!(
                    "{to} has no explicit opt-in on record, and this is not the one \
                     confirmation template their pending opt-in permits: {why}"
                ),
            )),
            None => broken.push((
                RuleId::NoOptIn,
                format!(
                    "{to} has no explicit opt-in on record: business-initiated messages need one"
                ),
            )),
        }
    }
    if number_valid && !is_template && !window_open {
        let last_to_sender = contact
            .windows
            .get(sender)
            .and_then(|window| window.last_inbound_at);
        let message = match (last_to_sender, contact.last_inbound_at) {
            (None, None) => format!("{to} has never written to us: freeform text needs an open 24 h window; send a template"),
            (None, Some(_)) => format!(
                "{to} has never written to {sender}: the 24 h window belongs to the number the person wrote to; send a template"
            ),
            (Some(last), _) => format!(
                "the 24 h window after {to}'s last message to {sender} ({}) is closed; send a template",
                last.to_rfc3339()
            ),
        };
        broken.push((RuleId::WindowClosed, message));
    }

    let mut category = None;
    if let SendContent::Template {
        template,
        variables,
        ..
    } = facts.content
    {
        match (&facts.template.definition, facts.template.approval) {
            (None, _) => {
                broken.push((
                    RuleId::TemplateUnknown,
                    format!("template {template} is not registered"),
                ));
            }
            (Some(definition), approval) => {
                category = Some(definition.category);
                if !facts.template.is_approved() {
                    let status = approval.map_or("unknown", |status| status.as_str());
                    broken.push((
                        RuleId::TemplateNotApproved,
                        format!(
                            "template {template} is {status}, not approved ({}{}): only an approved template may be sent",
                            facts
                                .template
                                .source
                                .map_or("set", |source| if source == crate::template::StatusSource::Provider { "reported by the provider" } else { "set by an operator" }),
                            if facts.template.reason.is_empty() {
                                String::new()
                            } else {
                                format!(": {}", facts.template.reason)
                            }
                        ),
                    ));
                }
                if let Some(problem) = variables_problem(&definition.placeholders, variables) {
                    broken.push((RuleId::TemplateVariables, problem));
                }
            }
        }
    }

    match facts.workflow {
        None => broken.push((
            RuleId::WorkflowNotAllowed,
            "the send names no workflow: every message belongs to a task-specific workflow".into(),
        )),
        Some(name) => {
            // The confirmation workflow needs no place in the policy: it is allowed exactly
            // when the send is the one confirmation a pending opt-in permits.
            let allowed = Workflow::parse(name)
                .is_ok_and(|w| policy.workflows_allowed.contains(&w))
                || (name == CONFIRMATION_WORKFLOW
                    && matches!(confirmation_permitted(facts, now), Some(Ok(()))));
            if !allowed {
                let list: Vec<&str> = policy
                    .workflows_allowed
                    .iter()
                    .map(Workflow::as_str)
                    .collect();
                broken.push((
                    RuleId::WorkflowNotAllowed,
                    format!(
                        "workflow {name:?} is not allowed (allowed: {})",
                        list.join(", ")
                    ),
                ));
            }
        }
    }

    if number_valid && is_template && !window_open {
        if let Some(number) = to.number() {
            let contact_id = ContactId::Phone(number.clone());
            let limit = facts
                .portfolio
                .limit
                .unwrap_or(policy.default_messaging_limit);
            if let MessagingLimit::Limited(limit) = limit {
                // A recipient already counted in the period costs nothing more; only count the
                // portfolio's recipients (a sort over the day's reaches) when it is new.
                let already = facts.portfolio.reached_within_period(&contact_id, now);
                let reached = if already {
                    0
                } else {
                    facts.portfolio.recipients_within_period(now)
                };
                if !already && reached >= limit as usize {
                    broken.push((
                        RuleId::TierLimit,
                        format!(
                            "the portfolio reached {reached} of its {limit} unique recipients in the last 24 h"
                        ),
                    ));
                }
            }
        }
    }

    if number_valid && contact.flag(ContactFlag::NotOnWhatsapp).is_some() {
        broken.push((
            RuleId::NotOnWhatsapp,
            format!("{to} was reported not to be a WhatsApp user"),
        ));
    }
    if number_valid
        && category == Some(TemplateCategory::Marketing)
        && contact.flag(ContactFlag::MarketingPaused).is_some()
    {
        broken.push((
            RuleId::MarketingPaused,
            format!("{to} stopped marketing messages from this business"),
        ));
    }
    if policy.pause_marketing_on_quality_drop && category == Some(TemplateCategory::Marketing) {
        if let Some(event) = &facts.sender.quality_dropped {
            broken.push((
                RuleId::SenderQualityDropped,
                format!(
                    "the provider reported sender {sender}'s quality dropped ({event}): marketing templates from it are paused until its quality recovers"
                ),
            ));
        }
    }
    broken
}

/// The variables must name exactly the template's placeholders, none empty: Twilio silently fills
/// a missing one with the template's sample value, so this gate is the only guard.
fn variables_problem(
    placeholders: &[String],
    variables: &BTreeMap<String, String>,
) -> Option<String> {
    let missing: Vec<&str> = placeholders
        .iter()
        .filter(|key| !variables.contains_key(*key))
        .map(String::as_str)
        .collect();
    if !missing.is_empty() {
        return Some(format!("missing variables: {}", missing.join(", ")));
    }
    let unknown: Vec<&str> = variables
        .keys()
        .filter(|key| !placeholders.contains(key))
        .map(String::as_str)
        .collect();
    if !unknown.is_empty() {
        return Some(format!(
            "the template has no placeholders named {}",
            unknown.join(", ")
        ));
    }
    let empty: Vec<&str> = variables
        .iter()
        .filter(|(_, value)| value.trim().is_empty())
        .map(|(key, _)| key.as_str())
        .collect();
    if !empty.is_empty() {
        return Some(format!("empty variables: {}", empty.join(", ")));
    }
    None
}
