//! What Meta's account-level notices ask of wagate: `business_capability_update` and
//! `phone_number_quality_update` carry the portfolio's messaging limit, a quality update may be
//! a drop (flagged, downgraded), and `account_update` may restrict or ban the account. Read
//! from a [`ProviderNotice`]'s flattened values, so the notice itself is recorded unchanged
//! whatever this finds.
//!
//! The field names and values are those of Meta's webhook reference (docs/providers.md,
//! "Meta account notices"). Where the reference and its example disagree
//! (`max_daily_conversations_per_business` as a `TIER_…` string or as a number) both are read.

use wagate_domain::{MessagingLimit, PhoneNumber};

use crate::event::ProviderNotice;

/// One thing an account notice asks wagate to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccountSignal {
    /// The portfolio's messaging limit is now this (Meta's word is final).
    MessagingLimit(MessagingLimit),
    /// A number's quality dropped (`FLAGGED`, `DOWNGRADE`): recorded, and marketing paused
    /// on it when the policy says so.
    QualityDrop {
        /// `display_phone_number`, when it parses.
        number: Option<PhoneNumber>,
        /// Meta's `event`.
        event: String,
    },
    /// A number's quality recovered (`UNFLAGGED`, `UPGRADE`, or a GREEN rating): the pause a
    /// drop caused is lifted.
    QualityRecovered {
        number: Option<PhoneNumber>,
        event: String,
    },
    /// The account is restricted or banned: its senders must stop.
    Restricted {
        /// Meta's `event` (and ban state, when given).
        reason: String,
    },
}

/// `TIER_2K` → 2000, `TIER_UNLIMITED` → unlimited, a number (−1 is unlimited) as is;
/// `TIER_NOT_SET` and anything else → none.
fn limit(raw: &str) -> Option<MessagingLimit> {
    let raw = raw.trim();
    if let Ok(n) = raw.parse::<i64>() {
        return match n {
            -1 => Some(MessagingLimit::Unlimited),
            n if n > 0 => u32::try_from(n).ok().map(MessagingLimit::Limited),
            _ => None,
        };
    }
    let tier = raw.to_ascii_uppercase();
    let tier = tier.strip_prefix("TIER_")?;
    if tier == "UNLIMITED" {
        return Some(MessagingLimit::Unlimited);
    }
    let (digits, factor) = match tier.strip_suffix('K') {
        Some(digits) => (digits, 1000),
        None => (tier, 1),
    };
    digits
        .parse::<u32>()
        .ok()
        .and_then(|n| n.checked_mul(factor))
        .filter(|n| *n > 0)
        .map(MessagingLimit::Limited)
}

/// The signals in a Meta notice; none for other kinds (the notice is still recorded).
pub fn signals(notice: &ProviderNotice) -> Vec<AccountSignal> {
    let get = |key: &str| notice.get(&format!("value.{key}"));
    let event = get("event").unwrap_or_default().to_ascii_uppercase();
    let mut out = Vec::new();
    match notice.kind.as_str() {
        "business_capability_update" | "phone_number_quality_update" => {
            // The portfolio-level field wins over the deprecated per-number ones.
            let reported = [
                "max_daily_conversations_per_business",
                "max_daily_conversation_per_phone",
                "current_limit",
            ]
            .iter()
            .find_map(|field| get(field).and_then(limit));
            if let Some(reported) = reported {
                out.push(AccountSignal::MessagingLimit(reported));
            }
            if notice.kind == "phone_number_quality_update" {
                let number = get("display_phone_number").and_then(|display| {
                    let digits: String = display.chars().filter(char::is_ascii_digit).collect();
                    PhoneNumber::parse(&format!("+{digits}")).ok()
                });
                // A rating, where a payload carries one (UNVERIFIED field names: both read).
                let rating = ["quality_rating", "current_quality_rating"]
                    .iter()
                    .find_map(|field| get(field))
                    .unwrap_or_default()
                    .to_ascii_uppercase();
                if matches!(event.as_str(), "FLAGGED" | "DOWNGRADE") || rating == "RED" {
                    let event = if event.is_empty() { rating } else { event };
                    out.push(AccountSignal::QualityDrop { number, event });
                } else if matches!(event.as_str(), "UNFLAGGED" | "UPGRADE") || rating == "GREEN" {
                    let event = if event.is_empty() { rating } else { event };
                    out.push(AccountSignal::QualityRecovered { number, event });
                }
            }
        }
        "account_update" => {
            let ban_state = get("ban_info.waba_ban_state").unwrap_or_default();
            let restricted = match event.as_str() {
                "ACCOUNT_RESTRICTION" => true,
                // A ban (or one scheduled); `REINSTATE` lifts it, which an operator confirms.
                "DISABLED_UPDATE" => !ban_state.eq_ignore_ascii_case("REINSTATE"),
                _ => false,
            };
            if restricted {
                let reason = if ban_state.is_empty() {
                    format!("meta account_update {event}")
                } else {
                    format!("meta account_update {event} {ban_state}")
                };
                out.push(AccountSignal::Restricted { reason });
            }
        }
        _ => {}
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use wagate_domain::ProviderKind;

    fn notice(kind: &str, pairs: &[(&str, &str)]) -> ProviderNotice {
        ProviderNotice {
            provider: ProviderKind::Meta,
            account: Some("102290129340398".into()),
            kind: kind.into(),
            details: pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        }
    }

    #[test]
    fn tiers_and_numbers() {
        assert_eq!(limit("TIER_250"), Some(MessagingLimit::Limited(250)));
        assert_eq!(limit("TIER_2K"), Some(MessagingLimit::Limited(2000)));
        assert_eq!(limit("TIER_100K"), Some(MessagingLimit::Limited(100_000)));
        assert_eq!(limit("TIER_UNLIMITED"), Some(MessagingLimit::Unlimited));
        assert_eq!(limit("2000"), Some(MessagingLimit::Limited(2000)));
        assert_eq!(limit("-1"), Some(MessagingLimit::Unlimited));
        assert_eq!(limit("TIER_NOT_SET"), None);
        assert_eq!(limit("0"), None);
        assert_eq!(limit("soon"), None);
    }

    #[test]
    fn capability_quality_and_account() {
        let capability = notice(
            "business_capability_update",
            &[
                ("value.max_daily_conversation_per_phone", "250"),
                ("value.max_daily_conversations_per_business", "TIER_10K"),
            ],
        );
        assert_eq!(
            signals(&capability),
            vec![AccountSignal::MessagingLimit(MessagingLimit::Limited(
                10_000
            ))]
        );
        let drop = notice(
            "phone_number_quality_update",
            &[
                ("value.display_phone_number", "15550783881"),
                ("value.event", "FLAGGED"),
                ("value.current_limit", "TIER_2K"),
            ],
        );
        let found = signals(&drop);
        assert_eq!(
            found[0],
            AccountSignal::MessagingLimit(MessagingLimit::Limited(2000))
        );
        assert!(matches!(
            &found[1],
            AccountSignal::QualityDrop { number: Some(n), event } if n.digits() == "15550783881" && event == "FLAGGED"
        ));
        let upgrade = notice(
            "phone_number_quality_update",
            &[("value.event", "THROUGHPUT_UPGRADE")],
        );
        assert!(signals(&upgrade).is_empty());
        let restricted = notice("account_update", &[("value.event", "ACCOUNT_RESTRICTION")]);
        assert!(matches!(
            &signals(&restricted)[..],
            [AccountSignal::Restricted { .. }]
        ));
        let banned = notice(
            "account_update",
            &[
                ("value.event", "DISABLED_UPDATE"),
                ("value.ban_info.waba_ban_state", "DISABLE"),
            ],
        );
        assert!(matches!(
            &signals(&banned)[..],
            [AccountSignal::Restricted { reason }] if reason.contains("DISABLE")
        ));
        let reinstated = notice(
            "account_update",
            &[
                ("value.event", "DISABLED_UPDATE"),
                ("value.ban_info.waba_ban_state", "REINSTATE"),
            ],
        );
        assert!(signals(&reinstated).is_empty());
        assert!(signals(&notice("message_template_status_update", &[])).is_empty());
    }
}
