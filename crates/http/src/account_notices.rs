//! What wagate does about Meta's account notices before recording them
//! ([`wagate_providers::meta::account_signals`]): the portfolio's messaging limit follows what
//! Meta reports, and a restricted or banned account suspends its senders. Every change is
//! appended by the webhook's actor (`webhook:meta`), which is how the log tells a limit Meta
//! reported from one an operator set by hand.
//!
//! wagate does not know which WhatsApp Business Account a sender belongs to (a sender is
//! registered with its portfolio and phone-number id), so a notice about an account applies to
//! every registered Meta sender and their portfolios, unless it names a number
//! (`display_phone_number`), which narrows it to that sender. One account per deployment is
//! the usual case; with several, a ban suspends more senders than it must, which sends less.

use std::collections::BTreeSet;

use wagate_app::Hub;
use wagate_domain::{PortfolioId, ProviderKind, WhatsAppAddress};
use wagate_providers::{meta, ProviderNotice};

use crate::error::ApiError;
use crate::metrics::Source;
use crate::state::AppState;

/// A registered Meta sender and its portfolio.
struct MetaSender {
    address: WhatsAppAddress,
    portfolio: PortfolioId,
}

fn meta_senders(hub: &Hub) -> Result<Vec<MetaSender>, ApiError> {
    let mut found = Vec::new();
    for address in hub.senders() {
        let loaded = hub.sender(&address)?;
        if let Some(registration) = loaded.state.registration {
            if registration.provider == ProviderKind::Meta {
                found.push(MetaSender {
                    address,
                    portfolio: registration.portfolio,
                });
            }
        }
    }
    Ok(found)
}

/// Acts on `notice`'s signals through `hub` (the webhook's handle).
pub(crate) async fn act(
    state: &AppState,
    hub: &Hub,
    notice: &ProviderNotice,
) -> Result<(), ApiError> {
    let signals = meta::account_signals(notice);
    if signals.is_empty() {
        return Ok(());
    }
    let mut senders = meta_senders(hub)?;
    // A quality update names its number: only that sender's portfolio is meant.
    let named = notice.get("value.display_phone_number").map(|display| {
        display
            .chars()
            .filter(char::is_ascii_digit)
            .collect::<String>()
    });
    if let Some(digits) = named {
        senders.retain(|s| s.address.number().digits() == digits);
    }
    for signal in signals {
        match signal {
            meta::AccountSignal::MessagingLimit(limit) => {
                let portfolios: BTreeSet<&PortfolioId> =
                    senders.iter().map(|s| &s.portfolio).collect();
                for portfolio in portfolios {
                    let positions = hub.set_messaging_limit(portfolio, limit).await?;
                    state.metrics().appended(Source::Webhook, positions.len());
                }
            }
            meta::AccountSignal::QualityDrop { event, .. } => {
                // The recorded notice also raises a `quality_drop` review item
                // (`wagate_domain::review::raised_by`).
                tracing::warn!(%event, "Meta reported a phone number quality drop");
                for sender in &senders {
                    let positions = hub
                        .report_sender_quality(&sender.address, &event, true)
                        .await?;
                    state.metrics().appended(Source::Webhook, positions.len());
                }
            }
            meta::AccountSignal::QualityRecovered { event, .. } => {
                for sender in &senders {
                    let positions = hub
                        .report_sender_quality(&sender.address, &event, false)
                        .await?;
                    state.metrics().appended(Source::Webhook, positions.len());
                }
            }
            meta::AccountSignal::Restricted { reason } => {
                for sender in &senders {
                    let positions = hub.suspend_sender(&sender.address, &reason).await?;
                    state.metrics().appended(Source::Webhook, positions.len());
                }
            }
        }
    }
    Ok(())
}
