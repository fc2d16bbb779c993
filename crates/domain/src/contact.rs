//! The contact aggregate: consent, the 24 h window per business number, and flags.

use std::collections::BTreeMap;

use std::collections::BTreeSet;

use crate::events::{ContactEvent, ContactFlag, OptInSource, OptOutSource};
use crate::ids::{ContactId, WhatsAppAddress};
use crate::keywords::{self, KeywordMatch};
use crate::policy::{PROVIDER_RETRY_HORIZON, WINDOW};
use crate::Timestamp;
use chrono::TimeDelta;

/// A consent receipt: what an `OptedIn` event recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentReceipt {
    pub source: OptInSource,
    pub evidence: String,
    pub recorded_by: String,
    pub wording_version: String,
    /// When the evidence is dated (the person's own time for a keyword).
    pub evidence_at: Timestamp,
    pub at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Consent {
    /// No opt-in and no opt-out on record.
    #[default]
    Unknown,
    OptedIn(ConsentReceipt),
    OptedOut {
        source: OptOutSource,
        detail: String,
        /// When the person opted out (their own time for a keyword).
        evidence_at: Timestamp,
        at: Timestamp,
        /// The opt-in this opt-out withdrew, kept for the record.
        withdrawn: Option<ConsentReceipt>,
    },
}

/// The time a person wrote a message: the provider's time when it gives one, but never later
/// than wagate received it (a provider clock slightly ahead must not stretch the window).
pub fn written_at(provider_at: Option<Timestamp>, received_at: Timestamp) -> Timestamp {
    provider_at.map_or(received_at, |provider| provider.min(received_at))
}

/// One business number's 24 h window with a contact: Meta's window belongs to the number the
/// person wrote to (error 131047: "since the recipient last replied to the sender number").
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SenderWindow {
    /// When the person last wrote to this number (their time, never later than receipt).
    pub last_inbound_at: Option<Timestamp>,
    /// The provider said this number's window was closed at this time (cleared by a message
    /// written at or after it).
    pub reported_closed_at: Option<Timestamp>,
}

impl SenderWindow {
    /// Until when this number may send freeform messages, less the safety margin.
    pub fn open_until(&self, safety_margin: TimeDelta) -> Option<Timestamp> {
        let last = self.last_inbound_at?;
        if self.reported_closed_at.is_some_and(|closed| closed >= last) {
            return None;
        }
        Some(last + WINDOW - safety_margin)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ContactState {
    pub id: Option<ContactId>,
    pub consent: Consent,
    /// When the person last wrote to any of our numbers (their time, never later than receipt).
    pub last_inbound_at: Option<Timestamp>,
    /// The 24 h window of each business number the person wrote to.
    pub windows: BTreeMap<WhatsAppAddress, SenderWindow>,
    /// When the newest opt-out was made (the evidence time of the newest `OptedOut`, or of a
    /// STOP the person wrote while already opted out): an opt-in must be dated after it.
    pub last_opt_out_at: Option<Timestamp>,
    pub not_on_whatsapp_since: Option<Timestamp>,
    pub marketing_paused_since: Option<Timestamp>,
    /// Free-text opt-out mentions waiting for a person.
    pub reviews_requested: u32,
    /// Other identities of the same person (`IdentityLinked`), directly linked to this one.
    pub linked: BTreeSet<ContactId>,
}

impl ContactState {
    pub fn apply(mut self, event: &ContactEvent) -> Self {
        self.id.get_or_insert_with(|| event.contact().clone());
        match event {
            ContactEvent::OptedIn {
                source,
                evidence,
                recorded_by,
                wording_version,
                evidence_at,
                at,
                ..
            } => {
                self.consent = Consent::OptedIn(ConsentReceipt {
                    source: *source,
                    evidence: evidence.clone(),
                    recorded_by: recorded_by.clone(),
                    wording_version: wording_version.clone(),
                    evidence_at: *evidence_at,
                    at: *at,
                });
            }
            ContactEvent::InboundReceived {
                sender,
                kind,
                text,
                provider_at,
                at,
                ..
            } => {
                let written = written_at(*provider_at, *at);
                // Every STOP the person wrote dates their newest opt-out, including one from an
                // already opted-out person (which appends no `OptedOut`): a START written before
                // it, delivered late, must not opt them in again.
                if crate::decide::KEYWORD_KINDS.contains(&kind.as_str())
                    && matches!(keywords::classify(text), KeywordMatch::OptOut(_))
                {
                    self.last_opt_out_at = Some(later(self.last_opt_out_at, written));
                }
                // Written longer ago than any provider retries: a replay, not a late delivery.
                // It is on record, but it opens no window and proves nothing about today.
                if *at - written > PROVIDER_RETRY_HORIZON {
                    return self;
                }
                self.last_inbound_at = Some(later(self.last_inbound_at, written));
                // A message to an unknown number opens no window: none can be attributed.
                if let Some(sender) = sender {
                    let window = self.windows.entry(sender.clone()).or_default();
                    window.last_inbound_at = Some(later(window.last_inbound_at, written));
                    // A message written at or after the provider's report reopens the window,
                    // even one in the same millisecond; a late one written before it does not.
                    if window
                        .reported_closed_at
                        .is_some_and(|closed| closed <= written)
                    {
                        window.reported_closed_at = None;
                    }
                }
                // A message from the number proves it is on WhatsApp.
                self.not_on_whatsapp_since = None;
            }
            ContactEvent::OptedOut {
                source,
                detail,
                evidence_at,
                at,
                ..
            } => {
                self.last_opt_out_at = Some(later(self.last_opt_out_at, *evidence_at));
                let withdrawn = match std::mem::take(&mut self.consent) {
                    Consent::OptedIn(receipt) => Some(receipt),
                    Consent::OptedOut { withdrawn, .. } => withdrawn,
                    Consent::Unknown => None,
                };
                self.consent = Consent::OptedOut {
                    source: *source,
                    detail: detail.clone(),
                    evidence_at: *evidence_at,
                    at: *at,
                    withdrawn,
                };
            }
            ContactEvent::OptOutReviewRequested { .. } => {
                self.reviews_requested = self.reviews_requested.saturating_add(1);
            }
            ContactEvent::FlagRaised { flag, at, .. } => {
                *self.flag_mut(*flag) = Some(*at);
            }
            ContactEvent::FlagCleared { flag, .. } => {
                *self.flag_mut(*flag) = None;
            }
            ContactEvent::WindowReportedClosed { sender, at, .. } => match sender {
                Some(sender) => {
                    self.windows
                        .entry(sender.clone())
                        .or_default()
                        .reported_closed_at = Some(*at);
                }
                // A v1 report did not say which number: close them all (it sends less).
                None => {
                    for window in self.windows.values_mut() {
                        window.reported_closed_at = Some(*at);
                    }
                }
            },
            ContactEvent::IdentityLinked { contact, other, .. } => {
                // A link to itself says nothing; the domain never decides one.
                if other != contact {
                    self.linked.insert(other.clone());
                }
            }
            // Recorded for the audit trail: a group message opens no one-to-one window.
            ContactEvent::GroupMessageReceived { .. } => {}
        }
        self
    }

    /// Whether `other` is already directly linked to this identity (or is this identity).
    pub fn is_linked_to(&self, other: &ContactId) -> bool {
        self.id.as_ref() == Some(other) || self.linked.contains(other)
    }

    /// This identity as the gates judge it, given the states of the person's other identities
    /// (`linked`, every identity reachable through `IdentityLinked`): consent is the most
    /// restrictive one on record (an opt-out on any identity is an opt-out of all; an identity
    /// with no consent recorded says nothing and does not hide another's opt-in), a marketing
    /// pause on any identity pauses all, and review requests add up. The window and
    /// `not_on_whatsapp` stay this identity's own: they are facts about one address.
    pub fn with_linked(&self, linked: &[ContactState]) -> ContactState {
        let mut effective = self.clone();
        if !effective.is_opted_out() {
            if let Some(opted_out) = linked.iter().find(|other| other.is_opted_out()) {
                effective.consent = opted_out.consent.clone();
            } else if !effective.is_opted_in() {
                if let Some(opted_in) = linked.iter().find(|other| other.is_opted_in()) {
                    effective.consent = opted_in.consent.clone();
                }
            }
        }
        if effective.marketing_paused_since.is_none() {
            effective.marketing_paused_since =
                linked.iter().find_map(|other| other.marketing_paused_since);
        }
        effective.reviews_requested = linked
            .iter()
            .fold(effective.reviews_requested, |sum, other| {
                sum.saturating_add(other.reviews_requested)
            });
        effective
    }

    fn flag_mut(&mut self, flag: ContactFlag) -> &mut Option<Timestamp> {
        match flag {
            ContactFlag::NotOnWhatsapp => &mut self.not_on_whatsapp_since,
            ContactFlag::MarketingPaused => &mut self.marketing_paused_since,
        }
    }

    pub fn flag(&self, flag: ContactFlag) -> Option<Timestamp> {
        match flag {
            ContactFlag::NotOnWhatsapp => self.not_on_whatsapp_since,
            ContactFlag::MarketingPaused => self.marketing_paused_since,
        }
    }

    pub fn is_opted_out(&self) -> bool {
        matches!(self.consent, Consent::OptedOut { .. })
    }

    pub fn is_opted_in(&self) -> bool {
        matches!(self.consent, Consent::OptedIn(_))
    }

    /// Until when `sender` may send freeform messages: 24 h after the person last wrote to that
    /// number, less the safety margin. `None` when they never wrote to it, or the provider
    /// reported its window closed after that.
    pub fn window_open_until_for(
        &self,
        sender: &WhatsAppAddress,
        safety_margin: TimeDelta,
    ) -> Option<Timestamp> {
        self.windows.get(sender)?.open_until(safety_margin)
    }

    /// The latest end of any number's window (the contact view's "any sender" summary).
    pub fn window_open_until(&self, safety_margin: TimeDelta) -> Option<Timestamp> {
        self.windows
            .values()
            .filter_map(|window| window.open_until(safety_margin))
            .max()
    }

    pub fn is_window_open(
        &self,
        sender: &WhatsAppAddress,
        now: Timestamp,
        safety_margin: TimeDelta,
    ) -> bool {
        self.window_open_until_for(sender, safety_margin)
            .is_some_and(|until| now < until)
    }
}

fn later(current: Option<Timestamp>, candidate: Timestamp) -> Timestamp {
    current.map_or(candidate, |current| current.max(candidate))
}
