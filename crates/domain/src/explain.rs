//! Why a message was allowed or refused, citing the log positions of the events the decision
//! relied on.
//!
//! Reconstructed, not recorded: every send and claim is appended with the expected version of
//! each stream it read, in one atomic append, so the state a decision saw is exactly the events
//! of those streams whose positions are below the decision event's position. This module folds
//! those events again (with the same aggregates the decision used) and names, for each rule, the
//! event that satisfied or broke it. Pure: the caller reads the streams and passes them in.

use chrono::TimeDelta;

use crate::contact::ContactState;
use crate::events::{
    ApprovalStatus, ContactEvent, ContactFlag, MessageEvent, MessagingLimit, PortfolioEvent,
    SenderEvent, TemplateEvent,
};
use crate::gates::{self, Recipient, SendContent, SendFacts};
use crate::ids::{ContactId, MessageId, PortfolioId, TemplateId, WhatsAppAddress};
use crate::policy::{Policy, TIER_PERIOD, WINDOW};
use crate::portfolio::PortfolioState;
use crate::rules::RuleId;
use crate::sender::SenderState;
use crate::template::TemplateState;
use crate::Timestamp;

/// What was decided about a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The send was allowed (and recorded as an intent).
    Allowed,
    /// The send was refused, or allowed and then canceled by a refused dispatch claim.
    Refused,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Allowed => "allowed",
            Self::Refused => "refused",
        }
    }
}

/// One thing a decision relied on: the log position of the event that records it, and a
/// sentence for a person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fact {
    pub position: u64,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Explanation {
    pub message_id: MessageId,
    pub verdict: Verdict,
    /// The rule that refused it (`None` when allowed).
    pub rule: Option<RuleId>,
    /// In the order a person reads them: the decision, then each rule it relied on.
    pub facts: Vec<Fact>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExplainError {
    #[error("message {0}'s stream holds no send decision")]
    NoDecision(MessageId),
    #[error("the message stream is empty")]
    Empty,
}

/// The streams an explanation reads: which contact, sender and template the decision read, and
/// the position up to which (exclusive) their events are needed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject {
    pub message_id: MessageId,
    pub sender: WhatsAppAddress,
    /// `None` when the recipient was not a valid number (the decision read no contact).
    pub contact: Option<ContactId>,
    pub template: Option<TemplateId>,
    /// One past the last decision's position: the streams' events below it are the ones any
    /// decision about this message saw.
    pub until: u64,
}

/// Which streams to read for the message whose stream is `message` (in log order).
pub fn subject(message: &[(u64, MessageEvent)]) -> Result<Subject, ExplainError> {
    let (message_id, decision) = decision(message)?;
    let last = claim_refusal(message).map_or(decision.0, |(position, _)| position);
    let (sender, contact, template) = match decision.1 {
        MessageEvent::TemplateSent {
            sender,
            contact,
            template,
            ..
        } => (sender, Some(contact.clone()), Some(template.clone())),
        MessageEvent::ReplySent {
            sender, contact, ..
        } => (sender, Some(contact.clone()), None),
        MessageEvent::SendRefused {
            sender,
            to,
            template,
            ..
        } => (
            sender,
            Recipient::parse(to)
                .number()
                .map(|number| ContactId::Phone(number.clone())),
            template.clone(),
        ),
        // `decision` returns only the three decision events.
        _ => return Err(ExplainError::NoDecision(message_id)),
    };
    Ok(Subject {
        message_id,
        sender: sender.clone(),
        contact,
        template,
        until: last + 1,
    })
}

/// The portfolio the decision read: the sender's registration before position `before`.
pub fn portfolio_read(sender: &[(u64, SenderEvent)], before: u64) -> Option<PortfolioId> {
    let state = fold(sender, before, SenderState::default(), SenderState::apply);
    state
        .registration
        .map(|registration| registration.portfolio)
}

/// The streams a decision read, each with its events' log positions, in log order. Events at
/// or after the decision are ignored, so a stream may be passed whole.
#[derive(Debug, Clone, Copy)]
pub struct Streams<'a> {
    pub message: &'a [(u64, MessageEvent)],
    pub sender: &'a [(u64, SenderEvent)],
    pub contact: &'a [(u64, ContactEvent)],
    pub template: &'a [(u64, TemplateEvent)],
    pub portfolio: &'a [(u64, PortfolioEvent)],
    /// The identities linked to the contact before the decision (`IdentityLinked`, followed
    /// through), each with its own stream: consent was judged over all of them.
    pub linked: &'a [LinkedStream],
}

/// A linked identity and its events, with their log positions.
pub type LinkedStream = (ContactId, Vec<(u64, ContactEvent)>);

/// Explains the message's recorded decision. The verdict and rule are the recorded ones; the
/// facts are the events that decision relied on. For an allowed send the gates are run again on
/// the reconstructed state, and a disagreement (possible only when the policy changed since) is
/// said, never hidden.
pub fn explain(streams: &Streams<'_>, policy: &Policy) -> Result<Explanation, ExplainError> {
    let (message_id, (position, event)) = decision(streams.message)?;
    let before = View::new(streams, position, policy);
    let mut facts = Vec::new();
    let (verdict, rule) = match event {
        MessageEvent::TemplateSent {
            contact,
            sender,
            template,
            category,
            variables,
            workflow,
            at,
            ..
        } => {
            facts.push(Fact {
                position,
                text: format!(
                    "{at}: the {} template {template} from {sender} to {contact} (workflow {workflow}) was allowed and recorded as an intent.",
                    category.as_str(),
                    at = stamp(*at),
                ),
            });
            before.sender_facts(sender, &mut facts);
            before.consent_facts(contact, true, &mut facts);
            before.template_facts(template, &mut facts);
            facts.push(Fact {
                position,
                text: format!("Workflow {workflow} is on the hub's allowlist (policy)."),
            });
            before.window_facts(contact, sender, *at, false, &mut facts);
            before.limit_facts(contact, sender, *at, &mut facts);
            let content = SendContent::Template {
                media: Vec::new(),
                template: template.clone(),
                variables: variables.iter().cloned().collect(),
            };
            before.recheck(
                position,
                sender,
                contact,
                &content,
                workflow.as_str(),
                *at,
                &mut facts,
            );
            (Verdict::Allowed, None)
        }
        MessageEvent::ReplySent {
            contact,
            sender,
            text,
            workflow,
            at,
            ..
        } => {
            facts.push(Fact {
                position,
                text: format!(
                    "{at}: a freeform reply from {sender} to {contact} (workflow {workflow}) was allowed and recorded as an intent.",
                    at = stamp(*at),
                ),
            });
            before.sender_facts(sender, &mut facts);
            before.consent_facts(contact, false, &mut facts);
            before.window_facts(contact, sender, *at, true, &mut facts);
            facts.push(Fact {
                position,
                text: format!("Workflow {workflow} is on the hub's allowlist (policy)."),
            });
            let content = SendContent::Freeform { text: text.clone() };
            before.recheck(
                position,
                sender,
                contact,
                &content,
                workflow.as_str(),
                *at,
                &mut facts,
            );
            (Verdict::Allowed, None)
        }
        MessageEvent::SendRefused {
            to,
            sender,
            template,
            rule,
            message,
            also_broken,
            at,
            ..
        } => {
            facts.push(Fact {
                position,
                text: format!(
                    "{at}: the send from {sender} to {to} was refused by rule {rule}: {message}",
                    at = stamp(*at),
                ),
            });
            let refused = Refused {
                position,
                sender,
                to,
                template: template.as_ref(),
                message,
                at: *at,
            };
            before.rule_facts(*rule, &refused, &mut facts);
            for other in also_broken {
                before.rule_facts(*other, &refused, &mut facts);
            }
            (Verdict::Refused, Some(*rule))
        }
        // `decision` returns only the three decision events.
        _ => return Err(ExplainError::NoDecision(message_id)),
    };
    let (verdict, rule) = match claim_refusal(streams.message) {
        // An allowed send whose dispatch claim a gate refused: canceled, by the claim's rule,
        // decided on the state just before the claim.
        Some((
            claim_position,
            MessageEvent::ClaimRefused {
                attempt,
                rule: claim_rule,
                message,
                at,
                ..
            },
        )) if verdict == Verdict::Allowed => {
            facts.push(Fact {
                position: claim_position,
                text: format!(
                    "{at}: the dispatcher's claim (attempt {attempt}) was refused by rule {claim_rule}: {message}. The message is canceled and was never sent.",
                    at = stamp(*at),
                ),
            });
            let at_claim = View::new(streams, claim_position, policy);
            let (sender, to, template) = intent_parts(event);
            let refused = Refused {
                position: claim_position,
                sender,
                to: &to,
                template,
                message,
                at: *at,
            };
            let mut changed = Vec::new();
            at_claim.rule_facts(*claim_rule, &refused, &mut changed);
            for fact in &mut changed {
                if fact.position > position && fact.position < claim_position {
                    fact.text
                        .push_str(" (This changed after the send was allowed.)");
                }
            }
            facts.extend(changed);
            (Verdict::Refused, Some(*claim_rule))
        }
        _ => (verdict, rule),
    };
    Ok(Explanation {
        message_id,
        verdict,
        rule,
        facts,
    })
}

/// The message's decision: its first `TemplateSent`, `ReplySent` or `SendRefused`.
fn decision(
    message: &[(u64, MessageEvent)],
) -> Result<(MessageId, (u64, &MessageEvent)), ExplainError> {
    let message_id = message
        .iter()
        .find_map(|(_, event)| event.message_id())
        .ok_or(ExplainError::Empty)?;
    message
        .iter()
        .find(|(_, event)| {
            matches!(
                event,
                MessageEvent::TemplateSent { .. }
                    | MessageEvent::ReplySent { .. }
                    | MessageEvent::SendRefused { .. }
            )
        })
        .map(|(position, event)| (message_id, (*position, event)))
        .ok_or(ExplainError::NoDecision(message_id))
}

/// The refused claim that canceled the message, if any (a refused claim ends the message).
fn claim_refusal(message: &[(u64, MessageEvent)]) -> Option<(u64, &MessageEvent)> {
    message
        .iter()
        .find(|(_, event)| matches!(event, MessageEvent::ClaimRefused { .. }))
        .map(|(position, event)| (*position, event))
}

fn intent_parts(event: &MessageEvent) -> (&WhatsAppAddress, String, Option<&TemplateId>) {
    match event {
        MessageEvent::TemplateSent {
            sender,
            contact,
            template,
            ..
        } => (sender, contact.to_string(), Some(template)),
        MessageEvent::ReplySent {
            sender, contact, ..
        } => (sender, contact.to_string(), None),
        MessageEvent::SendRefused {
            sender,
            to,
            template,
            ..
        } => (sender, to.clone(), template.as_ref()),
        // Invariant: only called with the decision event.
        _ => unreachable!("intent_parts of a non-decision event"),
    }
}

fn stamp(at: Timestamp) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn fold<E, S>(events: &[(u64, E)], before: u64, init: S, apply: fn(S, &E) -> S) -> S {
    events
        .iter()
        .take_while(|(position, _)| *position < before)
        .fold(init, |state, (_, event)| apply(state, event))
}

/// The last event below `before` that `pick` accepts.
fn last_before<E>(
    events: &[(u64, E)],
    before: u64,
    pick: impl Fn(&E) -> bool,
) -> Option<(u64, &E)> {
    events
        .iter()
        .take_while(|(position, _)| *position < before)
        .filter(|(_, event)| pick(event))
        .last()
        .map(|(position, event)| (*position, event))
}

/// What a refusal (of a send or of a claim) says about itself.
struct Refused<'a> {
    position: u64,
    sender: &'a WhatsAppAddress,
    to: &'a str,
    template: Option<&'a TemplateId>,
    message: &'a str,
    at: Timestamp,
}

/// The streams as a decision at `before` saw them.
struct View<'a> {
    streams: &'a Streams<'a>,
    before: u64,
    policy: &'a Policy,
    sender: SenderState,
    contact: ContactState,
    template: TemplateState,
    portfolio: PortfolioState,
}

impl<'a> View<'a> {
    fn new(streams: &'a Streams<'a>, before: u64, policy: &'a Policy) -> Self {
        Self {
            streams,
            before,
            policy,
            sender: fold(
                streams.sender,
                before,
                SenderState::default(),
                SenderState::apply,
            ),
            contact: fold(
                streams.contact,
                before,
                ContactState::default(),
                ContactState::apply,
            ),
            template: fold(
                streams.template,
                before,
                TemplateState::default(),
                TemplateState::apply,
            ),
            portfolio: fold(
                streams.portfolio,
                before,
                PortfolioState::default(),
                PortfolioState::apply,
            ),
        }
    }

    fn sender_event(&self, pick: impl Fn(&SenderEvent) -> bool) -> Option<(u64, &'a SenderEvent)> {
        last_before(self.streams.sender, self.before, pick)
    }

    fn contact_event(
        &self,
        pick: impl Fn(&ContactEvent) -> bool,
    ) -> Option<(u64, &'a ContactEvent)> {
        last_before(self.streams.contact, self.before, pick)
    }

    /// A linked identity that stood opted out at the decision, with its opt-out: an opt-out
    /// under any linked identity refuses sends to all of them.
    fn linked_opt_out(&self) -> Option<(&'a ContactId, u64, &'a ContactEvent)> {
        self.streams.linked.iter().find_map(|(identity, events)| {
            let state = fold(
                events,
                self.before,
                ContactState::default(),
                ContactState::apply,
            );
            if !state.is_opted_out() {
                return None;
            }
            let (position, event) = last_before(events, self.before, |e| {
                matches!(e, ContactEvent::OptedOut { .. })
            })?;
            Some((identity, position, event))
        })
    }

    fn template_event(
        &self,
        pick: impl Fn(&TemplateEvent) -> bool,
    ) -> Option<(u64, &'a TemplateEvent)> {
        last_before(self.streams.template, self.before, pick)
    }

    /// The sender's registration and authorization (an allowed send relied on both).
    fn sender_facts(&self, sender: &WhatsAppAddress, facts: &mut Vec<Fact>) {
        if let Some((
            position,
            SenderEvent::Registered {
                provider,
                portfolio,
                at,
                ..
            },
        )) = self.sender_event(|e| matches!(e, SenderEvent::Registered { .. }))
        {
            facts.push(Fact {
                position,
                text: format!(
                    "{}: sender {sender} was registered with {} in portfolio {portfolio}.",
                    stamp(*at),
                    provider.as_str()
                ),
            });
        }
        if let Some((position, SenderEvent::Authorized { by, at, .. })) =
            self.sender_event(|e| matches!(e, SenderEvent::Authorized { .. }))
        {
            facts.push(Fact {
                position,
                text: format!(
                    "{}: sender {sender} was authorized by {by}, and not suspended since.",
                    stamp(*at)
                ),
            });
        }
    }

    /// The consent the send relied on: the opt-in receipt for a template (business-initiated),
    /// or, for a freeform reply, the newest consent change when there is one (no STOP stands).
    fn consent_facts(&self, contact: &ContactId, template: bool, facts: &mut Vec<Fact>) {
        self.linked_facts(contact, facts);
        let latest = self.contact_event(|e| {
            matches!(
                e,
                ContactEvent::OptedIn { .. } | ContactEvent::OptedOut { .. }
            )
        });
        match latest {
            Some((position, ContactEvent::OptedIn {
                source,
                evidence,
                recorded_by,
                wording_version,
                at,
                ..
            })) => facts.push(Fact {
                position,
                text: format!(
                    "{}: {contact} opted in (the consent receipt): source {}, recorded by {recorded_by}, consent wording {wording_version}, evidence: {evidence}. No STOP since.",
                    stamp(*at),
                    source.as_str()
                ),
            }),
            Some((position, ContactEvent::OptedOut { at, .. })) if !template => {
                // Unreachable for an allowed send (opted_out refuses it); said if the log and
                // the decision ever disagree.
                facts.push(Fact {
                    position,
                    text: format!("{}: {contact} opted out.", stamp(*at)),
                })
            }
            _ => {}
        }
    }

    /// The identities consent was judged over, cited at the contact's latest link.
    fn linked_facts(&self, contact: &ContactId, facts: &mut Vec<Fact>) {
        if self.streams.linked.is_empty() {
            return;
        }
        let Some((position, _)) =
            self.contact_event(|e| matches!(e, ContactEvent::IdentityLinked { .. }))
        else {
            return;
        };
        let identities = self
            .streams
            .linked
            .iter()
            .map(|(identity, _)| identity.to_string())
            .collect::<Vec<_>>()
            .join(", ");
        facts.push(Fact {
            position,
            text: format!(
                "{contact} is linked to {identities}: consent was judged over all of them, and none stood opted out."
            ),
        });
    }

    /// The template's registration and the approval that let it be sent.
    fn template_facts(&self, template: &TemplateId, facts: &mut Vec<Fact>) {
        if let Some((
            position,
            TemplateEvent::Registered {
                name,
                language,
                category,
                at,
                ..
            },
        )) = self.template_event(|e| matches!(e, TemplateEvent::Registered { .. }))
        {
            facts.push(Fact {
                position,
                text: format!(
                    "{}: template {template} ({name}, {language}, {}) was registered.",
                    stamp(*at),
                    category.as_str()
                ),
            });
        }
        if let Some((
            position,
            TemplateEvent::Created {
                provider,
                name,
                language,
                category,
                at,
                ..
            },
        )) = self.template_event(|e| matches!(e, TemplateEvent::Created { .. }))
        {
            facts.push(Fact {
                position,
                text: format!(
                    "{}: template {template} ({name}, {language}, {}) was created at {}.",
                    stamp(*at),
                    category.as_str(),
                    provider.as_str()
                ),
            });
        }
        let approval = self.template_event(|e| {
            matches!(
                e,
                TemplateEvent::ApprovalChanged { .. } | TemplateEvent::StatusReported { .. }
            )
        });
        if let Some((
            position,
            TemplateEvent::ApprovalChanged {
                status, reason, at, ..
            }
            | TemplateEvent::StatusReported {
                status, reason, at, ..
            },
        )) = approval
        {
            let by = if matches!(approval, Some((_, TemplateEvent::StatusReported { .. }))) {
                "reported by the provider as"
            } else {
                "set to"
            };
            facts.push(Fact {
                position,
                text: format!(
                    "{}: template {template} was {by} {} ({}).",
                    stamp(*at),
                    status.as_str(),
                    if reason.trim().is_empty() {
                        "no reason given"
                    } else {
                        reason
                    }
                ),
            });
        }
    }

    /// The contact's last inbound and the window's end. `needed`: a freeform reply needs the
    /// window; a template send is only told whether it was sent inside it.
    fn window_facts(
        &self,
        contact: &ContactId,
        sender: &WhatsAppAddress,
        at: Timestamp,
        needed: bool,
        facts: &mut Vec<Fact>,
    ) {
        let margin = self.policy.window_safety_margin;
        let Some((last, position)) = self.last_inbound_to(sender) else {
            return;
        };
        match self.contact.window_open_until_for(sender, margin) {
            Some(until) if at < until => facts.push(Fact {
                position,
                text: format!(
                    "{}: {contact} wrote to us, which opened the 24 h window; it was open until {} ({} before 24 h, the safety margin){}.",
                    stamp(last),
                    stamp(until),
                    minutes(margin),
                    if needed { "" } else { ", so this template did not count toward the messaging limit" }
                ),
            }),
            _ if needed => facts.push(Fact {
                position,
                text: format!(
                    "{}: {contact} last wrote to us; the window was no longer open when the reply was decided.",
                    stamp(last)
                ),
            }),
            _ => {}
        }
    }

    /// The portfolio's limit and headroom for a business-initiated template.
    fn limit_facts(
        &self,
        contact: &ContactId,
        sender: &WhatsAppAddress,
        at: Timestamp,
        facts: &mut Vec<Fact>,
    ) {
        if self
            .contact
            .is_window_open(sender, at, self.policy.window_safety_margin)
        {
            return;
        }
        let Some(portfolio) = self.sender.registration.as_ref().map(|r| &r.portfolio) else {
            return;
        };
        let (limit, position, source) = self.limit(portfolio);
        let reached = self.portfolio.recipients_within_period(at);
        let already = self.portfolio.reached_within_period(contact, at);
        let headroom = match limit {
            MessagingLimit::Unlimited => "the limit is unlimited".to_owned(),
            MessagingLimit::Limited(limit) if already => format!(
                "{reached} of {limit} unique recipients were reached in the 24 h before, {contact} among them, so this send cost nothing more"
            ),
            MessagingLimit::Limited(limit) => format!(
                "{reached} of {limit} unique recipients were reached in the 24 h before; this send was recipient {} (headroom {} left)",
                reached + 1,
                (limit as usize).saturating_sub(reached + 1)
            ),
        };
        facts.push(Fact {
            position,
            text: format!("{source}; {headroom}."),
        });
    }

    /// The portfolio's messaging limit, the position that set it (or the decision's own, for the
    /// policy's default) and a sentence.
    fn limit(&self, portfolio: &PortfolioId) -> (MessagingLimit, u64, String) {
        let set = last_before(self.streams.portfolio, self.before, |e| {
            matches!(e, PortfolioEvent::MessagingLimitChanged { .. })
        });
        match set {
            Some((position, PortfolioEvent::MessagingLimitChanged { limit, at, .. })) => (
                *limit,
                position,
                format!(
                    "{}: portfolio {portfolio}'s messaging limit was set to {}",
                    stamp(*at),
                    limit_text(*limit)
                ),
            ),
            _ => (
                self.policy.default_messaging_limit,
                self.before,
                format!(
                    "Portfolio {portfolio} has the hub's default messaging limit, {} (policy: no limit was recorded for it)",
                    limit_text(self.policy.default_messaging_limit)
                ),
            ),
        }
    }

    /// Runs the gates again on the reconstructed state: they agree with the recorded decision
    /// unless the policy changed since, and a disagreement is said.
    #[allow(clippy::too_many_arguments)]
    fn recheck(
        &self,
        position: u64,
        sender: &WhatsAppAddress,
        contact: &ContactId,
        content: &SendContent,
        workflow: &str,
        at: Timestamp,
        facts: &mut Vec<Fact>,
    ) {
        let to = Recipient::of_contact(contact);
        let checked = gates::check(
            &SendFacts {
                sender_address: sender,
                sender: &self.sender,
                to: &to,
                contact: &self.contact,
                content,
                template: &self.template,
                workflow: Some(workflow),
                portfolio: &self.portfolio,
                // Explanations do not fold consent requests; a confirmation send is not
                // re-checked below.
                confirmation: None,
            },
            self.policy,
            at,
        );
        let is_confirmation = workflow == crate::consent_confirmation::CONFIRMATION_WORKFLOW;
        if let (Err(refusal), false) = (checked, is_confirmation) {
            facts.push(Fact {
                position,
                text: format!(
                    "Checked again against the log before position {position} with the hub's current policy, this send would now be refused ({refusal}): the policy has changed since it was decided."
                ),
            });
        }
    }

    /// The events that broke `rule` (or, where the rule is about something absent, the refusal
    /// itself).
    fn rule_facts(&self, rule: RuleId, refused: &Refused<'_>, facts: &mut Vec<Fact>) {
        let own = |text: String| Fact {
            position: refused.position,
            text,
        };
        let sender = refused.sender;
        let to = refused.to;
        let contact = Recipient::parse(to)
            .number()
            .map(|number| ContactId::Phone(number.clone()));
        let contact_text = contact
            .as_ref()
            .map_or_else(|| to.to_owned(), ToString::to_string);
        match rule {
            RuleId::ChannelNotAuthorized => {
                let suspended = self.sender_event(|e| matches!(e, SenderEvent::Suspended { .. }));
                let authorized = self.sender_event(|e| matches!(e, SenderEvent::Authorized { .. }));
                let registered = self.sender_event(|e| matches!(e, SenderEvent::Registered { .. }));
                match (registered, authorized, suspended) {
                    (None, _, _) => facts.push(own(format!(
                        "Rule {rule}: sender {sender} was not registered before position {}.",
                        refused.position
                    ))),
                    (Some(_), _, Some((position, SenderEvent::Suspended { reason, at, .. })))
                        if self.sender.suspended.is_some() =>
                    {
                        facts.push(Fact {
                            position,
                            text: format!(
                                "Rule {rule}: {}: sender {sender} was suspended ({reason}) and not authorized again since.",
                                stamp(*at)
                            ),
                        })
                    }
                    (Some((position, SenderEvent::Registered { at, .. })), None, _) => {
                        facts.push(Fact {
                            position,
                            text: format!(
                                "Rule {rule}: {}: sender {sender} was registered, but no operator has authorized it.",
                                stamp(*at)
                            ),
                        })
                    }
                    _ => facts.push(own(format!("Rule {rule}: {}", refused.message))),
                }
            }
            RuleId::InvalidNumber => facts.push(own(format!(
                "Rule {rule}: the recipient {to:?} is not a valid E.164 number."
            ))),
            RuleId::OptedOut if !self.contact.is_opted_out() && self.linked_opt_out().is_some() => {
                if let Some((identity, position, ContactEvent::OptedOut { source, at, .. })) =
                    self.linked_opt_out()
                {
                    facts.push(Fact {
                        position,
                        text: format!(
                            "Rule {rule}: {}: {identity}, an identity linked to {contact_text}, opted out (source {}); an opt-out under any linked identity refuses sends to all of them.",
                            stamp(*at),
                            source.as_str()
                        ),
                    });
                }
            }
            RuleId::OptedOut => {
                match self.contact_event(|e| matches!(e, ContactEvent::OptedOut { .. })) {
                    Some((position, ContactEvent::OptedOut {
                        source, detail, at, ..
                    })) => facts.push(Fact {
                        position,
                        text: format!(
                            "Rule {rule}: {}: {contact_text} opted out (source {}{}), and has not opted in again since.",
                            stamp(*at),
                            source.as_str(),
                            if detail.is_empty() { String::new() } else { format!(": {detail}") }
                        ),
                    }),
                    _ => facts.push(own(format!("Rule {rule}: {}", refused.message))),
                }
            }
            RuleId::NoOptIn => match self.contact_event(|e| {
                matches!(e, ContactEvent::OptedIn { .. } | ContactEvent::OptedOut { .. })
            }) {
                // An opt-in withdrawn by an opt-out no longer stands: the opt-out broke it.
                Some((position, ContactEvent::OptedOut { at, .. })) => facts.push(Fact {
                    position,
                    text: format!(
                        "Rule {rule}: {}: {contact_text}'s opt-out withdrew any earlier opt-in; a business-initiated template needs one standing.",
                        stamp(*at)
                    ),
                }),
                _ => facts.push(own(format!(
                    "Rule {rule}: {contact_text} had no opt-in on record before position {}; a business-initiated template needs one.",
                    refused.position
                ))),
            },
            RuleId::WindowClosed => self.window_closed_facts(rule, &contact_text, refused, facts),
            RuleId::TemplateUnknown => facts.push(own(match refused.template {
                Some(template) => format!(
                    "Rule {rule}: template {template} was not registered before position {}.",
                    refused.position
                ),
                None => format!("Rule {rule}: {}", refused.message),
            })),
            RuleId::TemplateNotApproved => {
                let status = self.template_event(|e| {
                    matches!(
                        e,
                        TemplateEvent::ApprovalChanged { .. }
                            | TemplateEvent::StatusReported { .. }
                            | TemplateEvent::Registered { .. }
                            | TemplateEvent::Created { .. }
                    )
                });
                let template = refused.template.map_or_else(
                    || "the template".to_owned(),
                    |template| format!("template {template}"),
                );
                match status {
                    Some((position, TemplateEvent::StatusReported {
                        status, reason, at, ..
                    })) => facts.push(Fact {
                        position,
                        text: format!(
                            "Rule {rule}: {}: the provider reported {template} {} ({}), not approved.",
                            stamp(*at),
                            status.as_str(),
                            if reason.trim().is_empty() { "no reason given" } else { reason }
                        ),
                    }),
                    Some((position, TemplateEvent::Created { at, .. })) => facts.push(Fact {
                        position,
                        text: format!(
                            "Rule {rule}: {}: {template} was created and has not been approved since ({}).",
                            stamp(*at),
                            self.template.approval.unwrap_or(ApprovalStatus::Unsubmitted).as_str()
                        ),
                    }),
                    Some((position, TemplateEvent::ApprovalChanged {
                        status, reason, at, ..
                    })) => facts.push(Fact {
                        position,
                        text: format!(
                            "Rule {rule}: {}: {template} was set to {} ({reason}), not approved.",
                            stamp(*at),
                            status.as_str()
                        ),
                    }),
                    Some((position, TemplateEvent::Registered { at, .. })) => facts.push(Fact {
                        position,
                        text: format!(
                            "Rule {rule}: {}: {template} was registered and has waited for approval since ({}).",
                            stamp(*at),
                            self.template.approval.unwrap_or(ApprovalStatus::Pending).as_str()
                        ),
                    }),
                    _ => facts.push(own(format!("Rule {rule}: {}", refused.message))),
                }
            }
            RuleId::TemplateVariables => {
                facts.push(own(format!("Rule {rule}: {}", refused.message)));
                if let Some((position, TemplateEvent::Registered { placeholders, at, .. })) =
                    self.template_event(|e| matches!(e, TemplateEvent::Registered { .. }))
                {
                    facts.push(Fact {
                        position,
                        text: format!(
                            "{}: the template was registered with the placeholders [{}].",
                            stamp(*at),
                            placeholders.join(", ")
                        ),
                    });
                }
            }
            RuleId::WorkflowNotAllowed => facts.push(own(format!(
                "Rule {rule} (policy): {}",
                refused.message
            ))),
            RuleId::TierLimit => {
                let Some(portfolio) = self.sender.registration.as_ref().map(|r| r.portfolio.clone())
                else {
                    facts.push(own(format!("Rule {rule}: {}", refused.message)));
                    return;
                };
                let (_, position, source) = self.limit(&portfolio);
                facts.push(Fact {
                    position,
                    text: format!("Rule {rule}: {source}."),
                });
                let reached = self.portfolio.recipients_within_period(refused.at);
                let horizon = refused.at - TIER_PERIOD;
                let newest = last_before(self.streams.portfolio, self.before, |e| {
                    matches!(e, PortfolioEvent::RecipientReached { at, .. } if *at > horizon && *at <= refused.at)
                });
                if let Some((position, PortfolioEvent::RecipientReached { contact, at, .. })) =
                    newest
                {
                    facts.push(Fact {
                        position,
                        text: format!(
                            "Rule {rule}: {}: {contact} was the newest of the {reached} unique recipients the portfolio reached in the 24 h before; no headroom was left.",
                            stamp(*at)
                        ),
                    });
                }
            }
            RuleId::NotOnWhatsapp => self.flag_fact(rule, ContactFlag::NotOnWhatsapp, &contact_text, refused, facts),
            RuleId::MarketingPaused => {
                self.flag_fact(rule, ContactFlag::MarketingPaused, &contact_text, refused, facts);
                let category = self.template_event(|e| matches!(e, TemplateEvent::Registered { .. }));
                if let Some((position, TemplateEvent::Registered { category, at, .. })) = category {
                    facts.push(Fact {
                        position,
                        text: format!(
                            "{}: the template was registered as {}.",
                            stamp(*at),
                            category.as_str()
                        ),
                    });
                }
                self.category_reported_fact(facts);
            }
            RuleId::SenderQualityDropped => {
                match self.sender_event(|e| matches!(e, SenderEvent::QualityReported { dropped: true, .. })) {
                    Some((position, SenderEvent::QualityReported { event, at, .. })) => facts.push(Fact {
                        position,
                        text: format!(
                            "Rule {rule}: {}: the provider reported sender {sender}'s quality dropped ({event}), and no recovery was reported since; the policy pauses its marketing templates.",
                            stamp(*at)
                        ),
                    }),
                    _ => facts.push(own(format!("Rule {rule}: {}", refused.message))),
                }
                self.category_reported_fact(facts);
            }
        }
    }

    /// The provider's last category change of the template, when it made the send marketing.
    fn category_reported_fact(&self, facts: &mut Vec<Fact>) {
        if let Some((
            position,
            TemplateEvent::CategoryReported {
                category,
                previous,
                at,
                ..
            },
        )) = self.template_event(|e| matches!(e, TemplateEvent::CategoryReported { .. }))
        {
            facts.push(Fact {
                position,
                text: format!(
                    "{}: the provider moved the template from {previous} to {}.",
                    stamp(*at),
                    category.as_str()
                ),
            });
        }
    }

    /// When the person last wrote to `sender` (their time) and the position of that inbound:
    /// the window belongs to the business number written to.
    fn last_inbound_to(&self, sender: &WhatsAppAddress) -> Option<(Timestamp, u64)> {
        let last = self.contact.windows.get(sender)?.last_inbound_at?;
        let (position, _) = self.contact_event(|e| {
            matches!(e, ContactEvent::InboundReceived { sender: Some(to), provider_at, at, .. }
                if to == sender && crate::contact::written_at(*provider_at, *at) == last)
        })?;
        Some((last, position))
    }

    fn window_closed_facts(
        &self,
        rule: RuleId,
        contact: &str,
        refused: &Refused<'_>,
        facts: &mut Vec<Fact>,
    ) {
        let margin = self.policy.window_safety_margin;
        let sender = refused.sender;
        // A v1 report names no sender and closed every window.
        let reported = self.contact_event(|e| {
            matches!(e, ContactEvent::WindowReportedClosed { sender: reported, .. }
                if reported.as_ref().is_none_or(|reported| reported == sender))
        });
        let Some((last, inbound_position)) = self.last_inbound_to(sender) else {
            facts.push(Fact {
                position: refused.position,
                text: format!(
                    "Rule {rule}: {contact} had never written to us before position {}: freeform text needs an open 24 h window.",
                    refused.position
                ),
            });
            return;
        };
        match (self.contact.window_open_until_for(sender, margin), reported) {
            (None, Some((position, ContactEvent::WindowReportedClosed { code, at, .. }))) => {
                facts.push(Fact {
                    position,
                    text: format!(
                        "Rule {rule}: {}: the provider reported the window closed (error {code}) after {contact}'s last message ({}), and {contact} has not written since.",
                        stamp(*at),
                        stamp(last)
                    ),
                })
            }
            _ => {
                facts.push(Fact {
                    position: inbound_position,
                    text: format!(
                        "Rule {rule}: {}: {contact} last wrote to us; the window closed at {} (24 h less the {} safety margin), before {}.",
                        stamp(last),
                        stamp(last + WINDOW - margin),
                        minutes(margin),
                        stamp(refused.at)
                    ),
                });
            }
        }
    }

    fn flag_fact(
        &self,
        rule: RuleId,
        flag: ContactFlag,
        contact: &str,
        refused: &Refused<'_>,
        facts: &mut Vec<Fact>,
    ) {
        match self.contact_event(|e| matches!(e, ContactEvent::FlagRaised { flag: f, .. } if *f == flag)) {
            Some((position, ContactEvent::FlagRaised { reason, at, .. })) => facts.push(Fact {
                position,
                text: format!(
                    "Rule {rule}: {}: {contact} was flagged {} ({reason}), and the flag was not cleared since.",
                    stamp(*at),
                    flag.as_str()
                ),
            }),
            _ => facts.push(Fact {
                position: refused.position,
                text: format!("Rule {rule}: {}", refused.message),
            }),
        }
    }
}

fn limit_text(limit: MessagingLimit) -> String {
    match limit {
        MessagingLimit::Limited(limit) => format!("{limit} unique recipients per 24 h"),
        MessagingLimit::Unlimited => "unlimited".into(),
    }
}

fn minutes(delta: TimeDelta) -> String {
    format!("{} min", delta.num_minutes())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use chrono::TimeZone;

    use super::*;
    use crate::classify::ProviderKind;
    use crate::decide::{self, ClaimDecision, ClaimDispatch, SendMessage, SendState};
    use crate::events::{Event, OptInSource, OptOutSource, TemplateCategory};
    use crate::ids::{PhoneNumber, Workflow};
    use crate::message::MessageState;

    const CONTACT: &str = "+41790000001";
    const OTHER: &str = "+41790000002";
    const SENDER: &str = "whatsapp:+41445550000";
    const TEMPLATE: &str = "HX00000000000000000000000000000001";

    fn t(minutes: i64) -> Timestamp {
        chrono::Utc
            .with_ymd_and_hms(2026, 11, 25, 9, 0, 0)
            .single()
            .expect("valid")
            + TimeDelta::minutes(minutes)
    }

    fn contact(raw: &str) -> ContactId {
        ContactId::Phone(PhoneNumber::parse(raw).expect("valid"))
    }

    fn sender() -> WhatsAppAddress {
        WhatsAppAddress::parse(SENDER).expect("valid")
    }

    fn template() -> TemplateId {
        TemplateId::parse(TEMPLATE).expect("valid")
    }

    fn portfolio() -> PortfolioId {
        PortfolioId::parse("acme").expect("valid")
    }

    /// A log: events with gap-free positions from 1.
    #[derive(Default)]
    struct Log {
        events: Vec<(u64, Event)>,
        ids: u128,
    }

    impl Log {
        fn push(&mut self, event: impl Into<Event>) -> u64 {
            let position = self.events.len() as u64 + 1;
            self.events.push((position, event.into()));
            position
        }

        fn stream<E: Clone>(&self, pick: impl Fn(&Event) -> Option<E>) -> Vec<(u64, E)> {
            self.events
                .iter()
                .filter_map(|(position, event)| pick(event).map(|e| (*position, e)))
                .collect()
        }

        fn contact_stream(&self, id: &ContactId) -> Vec<(u64, ContactEvent)> {
            self.stream(|e| match e {
                Event::Contact(c) if c.contact() == id => Some(c.clone()),
                _ => None,
            })
        }

        fn sender_stream(&self) -> Vec<(u64, SenderEvent)> {
            self.stream(|e| match e {
                Event::Sender(s) => Some(s.clone()),
                _ => None,
            })
        }

        fn template_stream(&self, id: &TemplateId) -> Vec<(u64, TemplateEvent)> {
            self.stream(|e| match e {
                Event::Template(s) if s.template() == id => Some(s.clone()),
                _ => None,
            })
        }

        fn portfolio_stream(&self) -> Vec<(u64, PortfolioEvent)> {
            self.stream(|e| match e {
                Event::Portfolio(s) => Some(s.clone()),
                _ => None,
            })
        }

        fn message_stream(&self, id: MessageId) -> Vec<(u64, MessageEvent)> {
            self.stream(|e| match e {
                Event::Message(m) if m.message_id() == Some(id) => Some(m.clone()),
                _ => None,
            })
        }

        fn states(
            &self,
            to: &str,
            template: &TemplateId,
        ) -> (SenderState, ContactState, TemplateState, PortfolioState) {
            let all = u64::MAX;
            let contact = Recipient::parse(to)
                .number()
                .map(|n| {
                    fold(
                        &self.contact_stream(&ContactId::Phone(n.clone())),
                        all,
                        ContactState::default(),
                        ContactState::apply,
                    )
                })
                .unwrap_or_default();
            (
                fold(
                    &self.sender_stream(),
                    all,
                    SenderState::default(),
                    SenderState::apply,
                ),
                contact,
                fold(
                    &self.template_stream(template),
                    all,
                    TemplateState::default(),
                    TemplateState::apply,
                ),
                fold(
                    &self.portfolio_stream(),
                    all,
                    PortfolioState::default(),
                    PortfolioState::apply,
                ),
            )
        }

        /// Decides a send with the domain's `decide::send` on the log's state, and appends it.
        fn send(
            &mut self,
            to: &str,
            workflow: &str,
            content: SendContent,
            now: Timestamp,
        ) -> (MessageId, u64) {
            self.ids += 1;
            let message_id = MessageId::from_uuid(uuid_v7(self.ids)).expect("a v7 uuid");
            let template_id = match &content {
                SendContent::Template { template, .. } => template.clone(),
                SendContent::Freeform { .. } | SendContent::Rich(_) => template(),
            };
            let (sender_state, contact, template, portfolio) = self.states(to, &template_id);
            let decision = decide::send(
                &SendState {
                    sender: &sender_state,
                    contact: &contact,
                    template: &template,
                    portfolio: &portfolio,
                    linked: &[],
                    confirmation: None,
                },
                &SendMessage {
                    message_id,
                    sender: sender(),
                    to: Recipient::parse(to),
                    workflow: Some(workflow.into()),
                    content,
                },
                &Policy::default(),
                now,
            );
            let mut first = 0;
            for event in decision.events() {
                let position = self.push(event.clone());
                if first == 0 {
                    first = position;
                }
            }
            (message_id, first)
        }

        fn explain(&self, message_id: MessageId) -> Explanation {
            let message = self.message_stream(message_id);
            let subject = subject(&message).expect("a decision");
            let contact = subject
                .contact
                .as_ref()
                .map(|c| self.contact_stream(c))
                .unwrap_or_default();
            let template = subject
                .template
                .as_ref()
                .map(|id| self.template_stream(id))
                .unwrap_or_default();
            let sender = self.sender_stream();
            let portfolio = match portfolio_read(&sender, subject.until) {
                Some(_) => self.portfolio_stream(),
                None => Vec::new(),
            };
            explain(
                &Streams {
                    message: &message,
                    sender: &sender,
                    contact: &contact,
                    template: &template,
                    portfolio: &portfolio,
                    linked: &[],
                },
                &Policy::default(),
            )
            .expect("explained")
        }
    }

    fn uuid_v7(n: u128) -> uuid::Uuid {
        // Version 7, variant RFC 4122, the counter in the random bits.
        uuid::Uuid::from_u128(0x0193_4b8e_0000_7000_8000_0000_0000_0000 | n)
    }

    fn template_send() -> SendContent {
        SendContent::Template {
            media: Vec::new(),
            template: template(),
            variables: BTreeMap::from([("1".to_owned(), "Ada".to_owned())]),
        }
    }

    fn freeform() -> SendContent {
        SendContent::Freeform {
            text: "hello".into(),
        }
    }

    /// The positions each step wrote, for the assertions.
    struct Setup {
        log: Log,
        registered: u64,
        authorized: u64,
        template_registered: u64,
        approved: u64,
        opted_in: u64,
    }

    fn ready(category: TemplateCategory) -> Setup {
        let mut log = Log::default();
        let registered = log.push(SenderEvent::Registered {
            sender: sender(),
            provider: ProviderKind::Sandbox,
            portfolio: portfolio(),
            rate: Default::default(),
            meta_phone_number_id: None,
            at: t(0),
        });
        let authorized = log.push(SenderEvent::Authorized {
            sender: sender(),
            by: "ops@example.com".into(),
            at: t(1),
        });
        let template_registered = log.push(TemplateEvent::Registered {
            template: template(),
            name: "welcome".into(),
            language: "en".into(),
            category,
            placeholders: vec!["1".into()],
            at: t(2),
        });
        let approved = log.push(TemplateEvent::ApprovalChanged {
            template: template(),
            status: ApprovalStatus::Approved,
            reason: "approved by Meta".into(),
            at: t(3),
        });
        let opted_in = log.push(ContactEvent::OptedIn {
            contact: contact(CONTACT),
            source: OptInSource::WebForm,
            evidence: "form 42".into(),
            recorded_by: "ops@example.com".into(),
            wording_version: "v3".into(),
            evidence_at: t(4),
            at: t(4),
        });
        Setup {
            log,
            registered,
            authorized,
            template_registered,
            approved,
            opted_in,
        }
    }

    fn cites(explanation: &Explanation, position: u64) -> bool {
        explanation
            .facts
            .iter()
            .any(|fact| fact.position == position)
    }

    #[test]
    fn an_allowed_template_send_cites_consent_approval_authorization_and_limit() {
        let mut setup = ready(TemplateCategory::Utility);
        let limit = setup.log.push(PortfolioEvent::MessagingLimitChanged {
            portfolio: portfolio(),
            limit: MessagingLimit::Limited(1000),
            at: t(5),
        });
        let (id, intent) = setup
            .log
            .send(CONTACT, "status_update", template_send(), t(10));
        let explanation = setup.log.explain(id);
        assert_eq!(explanation.verdict, Verdict::Allowed);
        assert_eq!(explanation.rule, None);
        for position in [
            intent,
            setup.registered,
            setup.authorized,
            setup.template_registered,
            setup.approved,
            setup.opted_in,
            limit,
        ] {
            assert!(
                cites(&explanation, position),
                "{position} not cited: {explanation:#?}"
            );
        }
        let receipt = explanation
            .facts
            .iter()
            .find(|f| f.position == setup.opted_in)
            .expect("valid");
        assert!(
            receipt.text.contains("web_form") && receipt.text.contains("form 42"),
            "{receipt:?}"
        );
        let headroom = explanation
            .facts
            .iter()
            .find(|f| f.position == limit)
            .expect("valid");
        assert!(headroom.text.contains("recipient 1"), "{headroom:?}");
        assert!(
            explanation.facts.iter().all(|f| f.position <= intent),
            "an allowed send relied only on what came before it"
        );
        assert!(!explanation
            .facts
            .iter()
            .any(|f| f.text.contains("would now be refused")));
    }

    #[test]
    fn an_allowed_reply_cites_the_inbound_that_opened_the_window_and_its_end() {
        let mut setup = ready(TemplateCategory::Utility);
        let inbound = setup.log.push(ContactEvent::InboundReceived {
            details: Vec::new(),
            contact: contact(CONTACT),
            sender: Some(sender()),
            provider_ref: None,
            kind: "text".into(),
            text: "hi".into(),
            provider_at: None,
            at: t(20),
        });
        let (id, _) = setup.log.send(CONTACT, "status_update", freeform(), t(30));
        let explanation = setup.log.explain(id);
        assert_eq!(explanation.verdict, Verdict::Allowed);
        let window = explanation
            .facts
            .iter()
            .find(|f| f.position == inbound)
            .expect("the inbound is cited");
        // 24 h after 09:20 less the 10 min margin.
        assert!(
            window.text.contains("2026-11-26T09:10:00.000Z"),
            "{window:?}"
        );
    }

    #[test]
    fn a_policy_change_since_the_decision_is_said() {
        let mut setup = ready(TemplateCategory::Utility);
        let (id, intent) = setup
            .log
            .send(CONTACT, "status_update", template_send(), t(10));
        let message = setup.log.message_stream(id);
        let (sender, contact, template, portfolio) = (
            setup.log.sender_stream(),
            setup.log.contact_stream(&contact(CONTACT)),
            setup.log.template_stream(&template()),
            setup.log.portfolio_stream(),
        );
        let policy = Policy {
            workflows_allowed: [Workflow::parse("lead_qualification").expect("valid")].into(),
            ..Policy::default()
        };
        let explanation = explain(
            &Streams {
                message: &message,
                sender: &sender,
                contact: &contact,
                template: &template,
                portfolio: &portfolio,
                linked: &[],
            },
            &policy,
        )
        .expect("valid");
        assert_eq!(
            explanation.verdict,
            Verdict::Allowed,
            "the recorded decision stands"
        );
        let said = explanation
            .facts
            .iter()
            .find(|f| f.text.contains("would now be refused"))
            .expect("said");
        assert_eq!(said.position, intent);
        assert!(said.text.contains("workflow_not_allowed"), "{said:?}");
    }

    /// Each rule's refusal names the rule and cites the event that broke it (the refusal itself
    /// where the rule is about something absent from the log).
    #[test]
    fn every_rule_refusal_names_its_rule_and_cites_the_event_that_broke_it() {
        for rule in RuleId::ALL {
            let mut setup = ready(TemplateCategory::Utility);
            let log = &mut setup.log;
            let (to, workflow, content, broke): (&str, &str, SendContent, Option<u64>) = match rule
            {
                RuleId::ChannelNotAuthorized => {
                    let p = log.push(SenderEvent::Suspended {
                        sender: sender(),
                        reason: "quality rating".into(),
                        at: t(5),
                    });
                    (CONTACT, "status_update", template_send(), Some(p))
                }
                RuleId::InvalidNumber => ("not a number", "status_update", template_send(), None),
                RuleId::OptedOut => {
                    let p = log.push(ContactEvent::OptedOut {
                        contact: contact(CONTACT),
                        source: OptOutSource::Keyword,
                        detail: "STOP".into(),
                        evidence_at: t(5),
                        at: t(5),
                    });
                    (CONTACT, "status_update", template_send(), Some(p))
                }
                RuleId::NoOptIn => (OTHER, "status_update", template_send(), None),
                RuleId::WindowClosed => {
                    let p = log.push(ContactEvent::InboundReceived {
                        details: Vec::new(),
                        contact: contact(CONTACT),
                        sender: Some(sender()),
                        provider_ref: None,
                        kind: "text".into(),
                        text: "hi".into(),
                        provider_at: None,
                        at: t(5),
                    });
                    (
                        CONTACT,
                        "status_update",
                        SendContent::Freeform {
                            text: "late".into(),
                        },
                        Some(p),
                    )
                }
                RuleId::TemplateUnknown => (
                    CONTACT,
                    "status_update",
                    SendContent::Template {
                        media: Vec::new(),
                        template: TemplateId::parse("HX00000000000000000000000000000009")
                            .expect("valid"),
                        variables: BTreeMap::new(),
                    },
                    None,
                ),
                RuleId::TemplateNotApproved => {
                    let p = log.push(TemplateEvent::ApprovalChanged {
                        template: template(),
                        status: ApprovalStatus::Paused,
                        reason: "low quality".into(),
                        at: t(5),
                    });
                    (CONTACT, "status_update", template_send(), Some(p))
                }
                RuleId::TemplateVariables => (
                    CONTACT,
                    "status_update",
                    SendContent::Template {
                        media: Vec::new(),
                        template: template(),
                        variables: BTreeMap::new(),
                    },
                    None,
                ),
                RuleId::WorkflowNotAllowed => (CONTACT, "cold_outreach", template_send(), None),
                RuleId::TierLimit => {
                    log.push(PortfolioEvent::MessagingLimitChanged {
                        portfolio: portfolio(),
                        limit: MessagingLimit::Limited(1),
                        at: t(5),
                    });
                    log.push(ContactEvent::OptedIn {
                        contact: contact(OTHER),
                        source: OptInSource::WebForm,
                        evidence: "form 43".into(),
                        recorded_by: "ops".into(),
                        wording_version: "v3".into(),
                        evidence_at: t(6),
                        at: t(6),
                    });
                    let (_, first) = log.send(OTHER, "status_update", template_send(), t(7));
                    // The reach is appended right after the intent.
                    (CONTACT, "status_update", template_send(), Some(first + 1))
                }
                RuleId::NotOnWhatsapp => {
                    let p = log.push(ContactEvent::FlagRaised {
                        contact: contact(CONTACT),
                        flag: ContactFlag::NotOnWhatsapp,
                        reason: "63003".into(),
                        at: t(5),
                    });
                    (CONTACT, "status_update", template_send(), Some(p))
                }
                RuleId::MarketingPaused => {
                    setup = ready(TemplateCategory::Marketing);
                    let p = setup.log.push(ContactEvent::FlagRaised {
                        contact: contact(CONTACT),
                        flag: ContactFlag::MarketingPaused,
                        reason: "131050".into(),
                        at: t(5),
                    });
                    (CONTACT, "status_update", template_send(), Some(p))
                }
                RuleId::SenderQualityDropped => {
                    // Registered as utility; Meta made it marketing, then flagged the number.
                    log.push(TemplateEvent::CategoryReported {
                        template: template(),
                        category: TemplateCategory::Marketing,
                        previous: "UTILITY".into(),
                        at: t(4),
                    });
                    let p = log.push(SenderEvent::QualityReported {
                        sender: sender(),
                        event: "FLAGGED".into(),
                        dropped: true,
                        at: t(5),
                    });
                    (CONTACT, "status_update", template_send(), Some(p))
                }
            };
            let log = &mut setup.log;
            let now = if rule == RuleId::WindowClosed {
                t(5) + TimeDelta::hours(25)
            } else {
                t(10)
            };
            let (id, refusal) = log.send(to, workflow, content, now);
            let explanation = log.explain(id);
            assert_eq!(explanation.verdict, Verdict::Refused, "{rule}");
            assert_eq!(explanation.rule, Some(rule), "{rule}: {explanation:#?}");
            let broke = broke.unwrap_or(refusal);
            let fact = explanation
                .facts
                .iter()
                .find(|f| f.position == broke && f.text.contains(rule.as_str()))
                .unwrap_or_else(|| {
                    panic!("{rule}: position {broke} not cited for the rule: {explanation:#?}")
                });
            assert!(!fact.text.is_empty());
        }
    }

    #[test]
    fn a_claim_refused_after_a_stop_cites_the_stop_as_what_changed() {
        let mut setup = ready(TemplateCategory::Utility);
        let (id, intent) = setup
            .log
            .send(CONTACT, "status_update", template_send(), t(10));
        let stop = setup.log.push(ContactEvent::OptedOut {
            contact: contact(CONTACT),
            source: OptOutSource::Keyword,
            detail: "STOP".into(),
            evidence_at: t(11),
            at: t(11),
        });
        let message = fold(
            &setup.log.message_stream(id),
            u64::MAX,
            MessageState::default(),
            MessageState::apply,
        );
        let (sender_state, contact_state, template_state, portfolio_state) =
            setup.log.states(CONTACT, &template());
        let decision = decide::claim(
            &message,
            &SendState {
                sender: &sender_state,
                contact: &contact_state,
                template: &template_state,
                portfolio: &portfolio_state,
                linked: &[],
                confirmation: None,
            },
            &ClaimDispatch { message_id: id },
            &Policy::default(),
            t(12),
        )
        .expect("valid");
        let ClaimDecision::Refused { events, .. } = decision else {
            panic!("claimed")
        };
        let claim = setup.log.push(events[0].clone());
        let explanation = setup.log.explain(id);
        assert_eq!(explanation.verdict, Verdict::Refused);
        assert_eq!(explanation.rule, Some(RuleId::OptedOut));
        assert!(cites(&explanation, intent) && cites(&explanation, claim));
        let changed = explanation
            .facts
            .iter()
            .find(|f| f.position == stop)
            .expect("the STOP is cited");
        assert!(
            changed.text.contains("changed after the send was allowed"),
            "{changed:?}"
        );
    }

    #[test]
    fn a_stream_without_a_decision_is_an_error() {
        assert_eq!(subject(&[]), Err(ExplainError::Empty));
        let id = MessageId::from_uuid(uuid_v7(1)).expect("valid");
        let only_claim = [(
            3,
            MessageEvent::DispatchClaimed {
                message_id: id,
                attempt: 1,
                at: t(0),
            },
        )];
        assert_eq!(subject(&only_claim), Err(ExplainError::NoDecision(id)));
    }
}
