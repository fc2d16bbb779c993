//! The contact aggregate: consent, the 24 h window and flags.

use std::collections::BTreeSet;

use crate::events::{ContactEvent, ContactFlag, OptInSource, OptOutSource};
use crate::ids::ContactId;
use crate::policy::WINDOW;
use crate::Timestamp;
use chrono::TimeDelta;

/// A consent receipt: what an `OptedIn` event recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentReceipt {
    pub source: OptInSource,
    pub evidence: String,
    pub recorded_by: String,
    pub wording_version: String,
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
        at: Timestamp,
        /// The opt-in this opt-out withdrew, kept for the record.
        withdrawn: Option<ConsentReceipt>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ContactState {
    pub id: Option<ContactId>,
    pub consent: Consent,
    pub last_inbound_at: Option<Timestamp>,
    /// The provider said the window was closed at this time (cleared by the next inbound).
    pub window_reported_closed_at: Option<Timestamp>,
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
                at,
                ..
            } => {
                self.consent = Consent::OptedIn(ConsentReceipt {
                    source: *source,
                    evidence: evidence.clone(),
                    recorded_by: recorded_by.clone(),
                    wording_version: wording_version.clone(),
                    at: *at,
                });
            }
            ContactEvent::InboundReceived { at, .. } => {
                self.last_inbound_at = Some(self.last_inbound_at.map_or(*at, |last| last.max(*at)));
                // The next inbound reopens a window the provider reported closed, even one
                // recorded in the same millisecond as the report.
                if self
                    .window_reported_closed_at
                    .is_some_and(|closed| closed <= *at)
                {
                    self.window_reported_closed_at = None;
                }
                // A message from the number proves it is on WhatsApp.
                self.not_on_whatsapp_since = None;
            }
            ContactEvent::OptedOut {
                source, detail, at, ..
            } => {
                let withdrawn = match std::mem::take(&mut self.consent) {
                    Consent::OptedIn(receipt) => Some(receipt),
                    Consent::OptedOut { withdrawn, .. } => withdrawn,
                    Consent::Unknown => None,
                };
                self.consent = Consent::OptedOut {
                    source: *source,
                    detail: detail.clone(),
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
            ContactEvent::WindowReportedClosed { at, .. } => {
                self.window_reported_closed_at = Some(*at);
            }
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

    /// Until when freeform messages may be sent: 24 h after the last inbound, less the safety
    /// margin. `None` when there was no inbound, or the provider reported the window closed
    /// after it.
    pub fn window_open_until(&self, safety_margin: TimeDelta) -> Option<Timestamp> {
        let last = self.last_inbound_at?;
        if self
            .window_reported_closed_at
            .is_some_and(|closed| closed >= last)
        {
            return None;
        }
        Some(last + WINDOW - safety_margin)
    }

    pub fn is_window_open(&self, now: Timestamp, safety_margin: TimeDelta) -> bool {
        self.window_open_until(safety_margin)
            .is_some_and(|until| now < until)
    }
}
