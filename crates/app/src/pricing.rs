//! The price table: what one message costs, by Meta's pricing category and the recipient's
//! country, from the date each rate applies. Pure (no I/O, no clock): the binary reads the file
//! and hands the text to [`PriceTable::from_toml`]; the cost ledger asks [`PriceTable::quote`].
//!
//! Money is integer micro-units (millionths of the currency unit) so sums are exact; the one
//! way to show it is [`format_micros`]. Meta's rules on what is free live in `quote` and nowhere
//! else, so a change of Meta's terms is one edit (see docs/costs.md).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use serde::Deserialize;
use wagate_domain::{PhoneNumber, TemplateCategory};

/// Micro-units in one unit of a currency.
const MICROS_PER_UNIT: i64 = 1_000_000;

/// The country key that prices every country without an entry of its own.
pub const ANY_COUNTRY: &str = "*";

/// The day Meta began charging utility templates inside an open customer-service window and
/// service messages beyond a free tier (protocol facts §1j; the free tier's size is unverified,
/// so it is not modelled: from this day a service message is charged at the table's rate).
const CHARGED_IN_WINDOW_FROM: (i32, u32, u32) = (2026, 10, 1);

/// Meta's pricing categories wagate prices (a freeform message is `Service`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PriceCategory {
    Marketing,
    Utility,
    Authentication,
    Service,
}

impl PriceCategory {
    pub const ALL: [Self; 4] = [
        Self::Marketing,
        Self::Utility,
        Self::Authentication,
        Self::Service,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Marketing => "marketing",
            Self::Utility => "utility",
            Self::Authentication => "authentication",
            Self::Service => "service",
        }
    }

    /// Reads a category as the table and Meta's `pricing.category` spell it. Meta's variants of
    /// a category (`authentication-international`, `marketing_lite`) are priced as the category
    /// they vary; a category wagate does not price (`referral_conversion`, the group and AI
    /// categories) is `None`, so its messages are reported unpriced rather than mispriced.
    pub fn parse(input: &str) -> Option<Self> {
        match input.trim().to_ascii_lowercase().as_str() {
            "marketing" | "marketing_lite" => Some(Self::Marketing),
            "utility" => Some(Self::Utility),
            "authentication" | "authentication-international" | "authentication_international" => {
                Some(Self::Authentication)
            }
            "service" => Some(Self::Service),
            _ => None,
        }
    }

    /// The category a template of `category` is billed under.
    pub fn of_template(category: TemplateCategory) -> Self {
        match category {
            TemplateCategory::Marketing => Self::Marketing,
            TemplateCategory::Utility => Self::Utility,
            TemplateCategory::Authentication => Self::Authentication,
        }
    }
}

impl fmt::Display for PriceCategory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One rate: from `from` (00:00 UTC) on, a `category` message to `country` costs `provider`
/// (Meta's price) plus `fee` (the BSP's, e.g. Twilio's per-message fee), in `currency`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PriceEntry {
    pub category: PriceCategory,
    /// ISO 3166 alpha-2 (upper case) or [`ANY_COUNTRY`].
    pub country: String,
    pub provider_micros: i64,
    pub fee_micros: i64,
    /// ISO 4217 (upper case).
    pub currency: String,
    pub from: NaiveDate,
}

/// What a message is priced by.
#[derive(Debug, Clone, Copy)]
pub struct PriceQuery<'a> {
    pub category: PriceCategory,
    pub to: &'a PhoneNumber,
    pub at: DateTime<Utc>,
    /// Whether the recipient's customer-service window was open when the message was sent.
    pub window_open: bool,
}

/// The price of one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quote {
    pub currency: String,
    pub provider_micros: i64,
    pub fee_micros: i64,
}

impl Quote {
    pub fn total_micros(&self) -> i64 {
        self.provider_micros.saturating_add(self.fee_micros)
    }
}

/// Why a price table was refused: which entry (1-based, in file order) and which field.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PriceTableError {
    #[error("the price table is not valid TOML: {0}")]
    Syntax(String),
    #[error("price entry {entry}: field `{field}`: {reason}")]
    Field {
        entry: usize,
        field: &'static str,
        reason: String,
    },
    #[error(
        "price entries {first} and {second} both price {category} to {country} from {from}: \
         keep one"
    )]
    Duplicate {
        first: usize,
        second: usize,
        category: PriceCategory,
        country: String,
        from: NaiveDate,
    },
}

/// The rates, indexed by (category, country), each list sorted by `from`. Cloning is cheap.
#[derive(Debug, Clone, Default)]
pub struct PriceTable {
    rates: Arc<BTreeMap<(PriceCategory, String), Vec<PriceEntry>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTable {
    #[serde(default)]
    prices: Vec<toml::Table>,
}

impl PriceTable {
    /// The empty table: every message is unpriced.
    pub fn empty() -> Self {
        Self::default()
    }

    pub fn is_empty(&self) -> bool {
        self.rates.is_empty()
    }

    /// Every entry, by category, country and date.
    pub fn entries(&self) -> impl Iterator<Item = &PriceEntry> {
        self.rates.values().flatten()
    }

    /// Parses and validates a table written as `[[prices]]` entries (docs/costs.md).
    pub fn from_toml(text: &str) -> Result<Self, PriceTableError> {
        let raw: RawTable =
            toml::from_str(text).map_err(|e| PriceTableError::Syntax(e.message().to_owned()))?;
        let mut entries = Vec::with_capacity(raw.prices.len());
        for (index, table) in raw.prices.iter().enumerate() {
            entries.push(parse_entry(index + 1, table)?);
        }
        Self::from_entries(entries)
    }

    /// A table of `entries` (numbered from 1 in errors), refusing two rates for the same
    /// category, country and day.
    pub fn from_entries(entries: Vec<PriceEntry>) -> Result<Self, PriceTableError> {
        let mut rates: BTreeMap<(PriceCategory, String), Vec<(usize, PriceEntry)>> =
            BTreeMap::new();
        for (index, entry) in entries.into_iter().enumerate() {
            let list = rates
                .entry((entry.category, entry.country.clone()))
                .or_default();
            if let Some((first, _)) = list.iter().find(|(_, e)| e.from == entry.from) {
                return Err(PriceTableError::Duplicate {
                    first: *first,
                    second: index + 1,
                    category: entry.category,
                    country: entry.country,
                    from: entry.from,
                });
            }
            list.push((index + 1, entry));
        }
        let rates = rates
            .into_iter()
            .map(|(key, mut list)| {
                list.sort_by_key(|(_, e)| e.from);
                (key, list.into_iter().map(|(_, e)| e).collect())
            })
            .collect();
        Ok(Self {
            rates: Arc::new(rates),
        })
    }

    /// The price of one message, or `None` when the table has no rate for it (unpriced: never
    /// guessed). The newest entry not after `at` wins, the recipient's country before `*`.
    ///
    /// Meta's free cases (protocol facts §1j) are decided here and only here: until 2026-09-30
    /// a utility template or a service message inside an open customer-service window costs
    /// nothing from Meta; from 2026-10-01 both are charged at the table's rate (the free tier
    /// of service messages is not modelled). The BSP's fee is kept on free messages (Twilio's
    /// per-message fee applies to every message: UNVERIFIED, see docs/costs.md).
    pub fn quote(&self, query: &PriceQuery<'_>) -> Option<Quote> {
        let entry = country_of(query.to)
            .and_then(|country| self.rate(query.category, &country, query.at))
            .or_else(|| self.rate(query.category, ANY_COUNTRY, query.at))?;
        let free = query.window_open
            && matches!(
                query.category,
                PriceCategory::Utility | PriceCategory::Service
            )
            && query.at < charged_in_window_from();
        Some(Quote {
            currency: entry.currency.clone(),
            provider_micros: if free { 0 } else { entry.provider_micros },
            fee_micros: entry.fee_micros,
        })
    }

    fn rate(
        &self,
        category: PriceCategory,
        country: &str,
        at: DateTime<Utc>,
    ) -> Option<&PriceEntry> {
        let day = at.date_naive();
        self.rates
            .get(&(category, country.to_owned()))?
            .iter()
            .rev()
            .find(|entry| entry.from <= day)
    }
}

fn charged_in_window_from() -> DateTime<Utc> {
    let (y, m, d) = CHARGED_IN_WINDOW_FROM;
    Utc.with_ymd_and_hms(y, m, d, 0, 0, 0)
        .single()
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// The ISO 3166 alpha-2 country of `number` (`None` for a number the numbering plan does not
/// place in one country, e.g. a non-geographic +800 number).
pub fn country_of(number: &PhoneNumber) -> Option<String> {
    let parsed = phonenumber::parse(None, number.as_str()).ok()?;
    let id = parsed.country().id()?;
    Some(id.as_ref().to_owned())
}

fn parse_entry(entry: usize, table: &toml::Table) -> Result<PriceEntry, PriceTableError> {
    let field_error = |field: &'static str, reason: String| PriceTableError::Field {
        entry,
        field,
        reason,
    };
    const FIELDS: [&str; 6] = ["category", "country", "provider", "fee", "currency", "from"];
    if let Some(unknown) = table.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return Err(PriceTableError::Field {
            entry,
            field: "(unknown)",
            reason: format!(
                "unknown field `{unknown}`; the fields are {}",
                FIELDS.join(", ")
            ),
        });
    }
    let text = |field: &'static str| -> Result<&str, PriceTableError> {
        match table.get(field) {
            Some(toml::Value::String(s)) => Ok(s.as_str()),
            Some(other) => Err(field_error(
                field,
                format!("expected a string, found {}", other.type_str()),
            )),
            None => Err(field_error(field, "missing".into())),
        }
    };
    let category = text("category")?;
    let category = match category {
        "marketing" | "utility" | "authentication" | "service" => PriceCategory::parse(category),
        _ => None,
    }
    .ok_or_else(|| {
        field_error(
            "category",
            format!("{category:?} is not one of marketing, utility, authentication, service"),
        )
    })?;
    let country = text("country")?;
    let country_ok = country == ANY_COUNTRY
        || (country.len() == 2
            && country.chars().all(|c| c.is_ascii_uppercase())
            && country.parse::<phonenumber::country::Id>().is_ok());
    if !country_ok {
        return Err(field_error(
            "country",
            format!(
                "{country:?} is not an ISO 3166 alpha-2 code (upper case, e.g. \"DE\") or \"*\""
            ),
        ));
    }
    let provider = parse_micros(text("provider")?).map_err(|r| field_error("provider", r))?;
    let fee = parse_micros(text("fee")?).map_err(|r| field_error("fee", r))?;
    let currency = text("currency")?;
    if currency.len() != 3 || !currency.chars().all(|c| c.is_ascii_uppercase()) {
        return Err(field_error(
            "currency",
            format!(
                "{currency:?} is not an ISO 4217 code (three upper-case letters, e.g. \"USD\")"
            ),
        ));
    }
    let from = match table.get("from") {
        Some(toml::Value::Datetime(dt)) => dt.to_string(),
        Some(toml::Value::String(s)) => s.clone(),
        Some(other) => {
            return Err(field_error(
                "from",
                format!("expected a date, found {}", other.type_str()),
            ))
        }
        None => return Err(field_error("from", "missing".into())),
    };
    let from = NaiveDate::parse_from_str(&from, "%Y-%m-%d")
        .map_err(|_| field_error("from", format!("{from:?} is not a date written YYYY-MM-DD")))?;
    Ok(PriceEntry {
        category,
        country: country.to_owned(),
        provider_micros: provider,
        fee_micros: fee,
        currency: currency.to_owned(),
        from,
    })
}

/// Reads a non-negative decimal amount ("0.1365") as micro-units, refusing more than six
/// decimals rather than rounding a rate.
pub fn parse_micros(input: &str) -> Result<i64, String> {
    let bad = || format!("{input:?} is not an amount like \"0.0125\" (digits, at most 6 decimals)");
    let (whole, fraction) = input.split_once('.').unwrap_or((input, ""));
    if whole.is_empty()
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || !fraction.bytes().all(|b| b.is_ascii_digit())
        || (input.contains('.') && fraction.is_empty())
    {
        return Err(bad());
    }
    if fraction.len() > 6 {
        return Err(format!(
            "{input:?} has more than 6 decimals (amounts are kept in millionths)"
        ));
    }
    let whole: i64 = whole.parse().map_err(|_| bad())?;
    let padded = format!("{fraction:0<6}");
    let fraction: i64 = padded.parse().map_err(|_| bad())?;
    whole
        .checked_mul(MICROS_PER_UNIT)
        .and_then(|w| w.checked_add(fraction))
        .ok_or_else(|| format!("{input:?} is too large"))
}

/// The one way money is shown: micro-units as a decimal string with six decimals
/// (`1_234_500` → `"1.234500"`), so sums line up and nothing is rounded away.
pub fn format_micros(micros: i64) -> String {
    let sign = if micros < 0 { "-" } else { "" };
    let abs = micros.unsigned_abs();
    let unit = MICROS_PER_UNIT.unsigned_abs();
    format!("{sign}{}.{:06}", abs / unit, abs % unit)
}

#[cfg(test)]
#[path = "pricing_tests.rs"]
mod tests;
