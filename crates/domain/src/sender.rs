//! The sender aggregate: a business number wagate may send from once an operator authorizes it.

use crate::classify::ProviderKind;
use crate::events::SenderEvent;
use crate::ids::{PortfolioId, WhatsAppAddress};
use crate::Timestamp;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SenderRegistration {
    pub provider: ProviderKind,
    pub portfolio: PortfolioId,
    pub meta_phone_number_id: Option<String>,
    pub at: Timestamp,
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
}

impl SenderState {
    pub fn apply(mut self, event: &SenderEvent) -> Self {
        self.address.get_or_insert_with(|| event.sender().clone());
        match event {
            SenderEvent::Registered {
                provider,
                portfolio,
                meta_phone_number_id,
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
                    at: *at,
                });
            }
            SenderEvent::Authorized { by, .. } => {
                self.authorized_by = Some(by.clone());
                self.suspended = None;
                self.authorization_withdrawn = false;
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
