//! The sender aggregate: a business number wagate may send from once an operator authorizes it.

use crate::classify::ProviderKind;
use crate::events::SenderEvent;
use crate::ids::{PortfolioId, WhatsAppAddress};
use crate::Timestamp;

/// A sender's throughput as registered: the provider's tier, optionally overridden.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SenderRate {
    /// Meta upgraded the Cloud API number (1,000 msg/s instead of 80). Twilio has no tiers.
    pub upgraded: bool,
    /// An operator's own figure, in messages per second, over the tier's (e.g. a lower one
    /// agreed with the provider). `None`: the tier's.
    pub per_second: Option<u32>,
}

/// Twilio's default WhatsApp sender throughput (messages per second).
pub const TWILIO_SENDER_PER_SECOND: u32 = 80;
/// A Cloud API number's default throughput (Meta's throughput page).
pub const CLOUD_API_SENDER_PER_SECOND: u32 = 80;
/// A Cloud API number Meta upgraded.
pub const CLOUD_API_UPGRADED_PER_SECOND: u32 = 1000;

impl SenderRate {
    /// Messages per second for a sender of `provider`: the override, else the tier's default.
    pub fn per_second_for(&self, provider: ProviderKind) -> u32 {
        self.per_second.unwrap_or(match (provider, self.upgraded) {
            (ProviderKind::Meta, true) => CLOUD_API_UPGRADED_PER_SECOND,
            (ProviderKind::Meta, false) => CLOUD_API_SENDER_PER_SECOND,
            (ProviderKind::Twilio | ProviderKind::Sandbox, _) => TWILIO_SENDER_PER_SECOND,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SenderRegistration {
    pub provider: ProviderKind,
    pub portfolio: PortfolioId,
    pub meta_phone_number_id: Option<String>,
    pub rate: SenderRate,
    pub at: Timestamp,
}

impl SenderRegistration {
    /// The rate the dispatcher holds this sender to, in messages per second.
    pub fn rate_per_second(&self) -> u32 {
        self.rate.per_second_for(self.provider)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SenderState {
    pub address: Option<WhatsAppAddress>,
    pub registration: Option<SenderRegistration>,
    pub authorized_by: Option<String>,
    /// Why the sender is suspended; cleared by a new authorization.
    pub suspended: Option<String>,
    /// The registration changed (portfolio, provider or Meta phone-number id) since the last
    /// authorization, which it withdrew; cleared by a new authorization.
    pub authorization_withdrawn: bool,
    /// The provider's last quality report was a drop (its `event`, e.g. `FLAGGED`): marketing
    /// templates from this number are paused while the policy says so. Cleared by a report
    /// that is not a drop.
    pub quality_dropped: Option<String>,
}

impl SenderState {
    pub fn apply(mut self, event: &SenderEvent) -> Self {
        self.address.get_or_insert_with(|| event.sender().clone());
        match event {
            SenderEvent::Registered {
                provider,
                portfolio,
                meta_phone_number_id,
                rate,
                at,
                ..
            } => {
                // An authorization was given for one registration: another portfolio (another
                // messaging limit), provider or phone-number id is another channel, and an
                // operator must authorize it again.
                let changed = self.registration.as_ref().is_some_and(|old| {
                    old.provider != *provider
                        || old.portfolio != *portfolio
                        || old.meta_phone_number_id != *meta_phone_number_id
                });
                if changed && self.authorized_by.take().is_some() {
                    self.authorization_withdrawn = true;
                }
                self.registration = Some(SenderRegistration {
                    provider: *provider,
                    portfolio: portfolio.clone(),
                    meta_phone_number_id: meta_phone_number_id.clone(),
                    rate: *rate,
                    at: *at,
                });
            }
            SenderEvent::Authorized { by, .. } => {
                self.authorized_by = Some(by.clone());
                self.suspended = None;
                self.authorization_withdrawn = false;
            }
            SenderEvent::QualityReported { event, dropped, .. } => {
                self.quality_dropped = dropped.then(|| event.clone());
            }
            SenderEvent::Suspended { reason, .. } => {
                self.suspended = Some(reason.clone());
            }
        }
        self
    }

    /// Registered, authorized and not suspended.
    pub fn may_send(&self) -> bool {
        self.registration.is_some() && self.authorized_by.is_some() && self.suspended.is_none()
    }
}
