use super::*;

const TABLE: &str = r#"
[[prices]]
category = "marketing"
country = "DE"
provider = "0.1365"
fee = "0.005"
currency = "USD"
from = "2026-07-01"

[[prices]]
category = "marketing"
country = "DE"
provider = "0.14"
fee = "0.005"
currency = "USD"
from = 2027-01-01

[[prices]]
category = "marketing"
country = "*"
provider = "0.0625"
fee = "0.005"
currency = "USD"
from = "2026-01-01"

[[prices]]
category = "utility"
country = "*"
provider = "0.02"
fee = "0.005"
currency = "USD"
from = "2026-01-01"

[[prices]]
category = "service"
country = "*"
provider = "0.01"
fee = "0"
currency = "USD"
from = "2026-01-01"
"#;

fn table() -> PriceTable {
    PriceTable::from_toml(TABLE).expect("the example table parses")
}

fn phone(e164: &str) -> PhoneNumber {
    PhoneNumber::parse(e164).expect("a valid number")
}

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .expect("an RFC 3339 time")
        .with_timezone(&Utc)
}

fn quote(category: PriceCategory, to: &str, when: &str, window_open: bool) -> Option<Quote> {
    let to = phone(to);
    table().quote(&PriceQuery {
        category,
        to: &to,
        at: at(when),
        window_open,
    })
}

#[test]
fn the_recipients_country_wins_over_the_fallback() {
    let german = quote(
        PriceCategory::Marketing,
        "+4915123456789",
        "2026-08-01T10:00:00Z",
        false,
    )
    .expect("priced");
    assert_eq!(german.provider_micros, 136_500);
    assert_eq!(german.fee_micros, 5_000);
    assert_eq!(german.total_micros(), 141_500);
    assert_eq!(german.currency, "USD");
    let british = quote(
        PriceCategory::Marketing,
        "+447700900123",
        "2026-08-01T10:00:00Z",
        false,
    )
    .expect("priced by the fallback");
    assert_eq!(british.provider_micros, 62_500);
}

#[test]
fn the_newest_entry_not_after_the_message_wins() {
    let before = quote(
        PriceCategory::Marketing,
        "+4915123456789",
        "2026-12-31T23:59:59Z",
        false,
    )
    .expect("priced");
    assert_eq!(before.provider_micros, 136_500);
    let after = quote(
        PriceCategory::Marketing,
        "+4915123456789",
        "2027-01-01T00:00:00Z",
        false,
    )
    .expect("priced");
    assert_eq!(after.provider_micros, 140_000);
    // Before the first German entry, the country has no rate yet: the fallback prices it.
    let early = quote(
        PriceCategory::Marketing,
        "+4915123456789",
        "2026-03-01T00:00:00Z",
        false,
    )
    .expect("priced by the fallback");
    assert_eq!(early.provider_micros, 62_500);
    assert_eq!(
        quote(
            PriceCategory::Marketing,
            "+4915123456789",
            "2025-12-31T00:00:00Z",
            false
        ),
        None,
        "before every entry a message is unpriced"
    );
}

#[test]
fn a_category_without_a_rate_is_unpriced() {
    assert_eq!(
        quote(
            PriceCategory::Authentication,
            "+4915123456789",
            "2026-08-01T00:00:00Z",
            false
        ),
        None
    );
    assert_eq!(
        PriceTable::empty().quote(&PriceQuery {
            category: PriceCategory::Marketing,
            to: &phone("+4915123456789"),
            at: at("2026-08-01T00:00:00Z"),
            window_open: false,
        }),
        None
    );
}

#[test]
fn utility_and_service_inside_an_open_window_are_free_until_october_2026() {
    for category in [PriceCategory::Utility, PriceCategory::Service] {
        let free = quote(category, "+4915123456789", "2026-09-30T23:00:00Z", true).expect("priced");
        assert_eq!(free.provider_micros, 0, "{category} in the window");
        assert_eq!(
            free.fee_micros,
            if category == PriceCategory::Service {
                0
            } else {
                5_000
            }
        );
        let closed =
            quote(category, "+4915123456789", "2026-09-30T23:00:00Z", false).expect("priced");
        assert_ne!(closed.provider_micros, 0, "{category} outside the window");
        let later =
            quote(category, "+4915123456789", "2026-10-01T00:00:00Z", true).expect("priced");
        assert_ne!(
            later.provider_micros, 0,
            "{category} in the window from October"
        );
    }
    let marketing = quote(
        PriceCategory::Marketing,
        "+4915123456789",
        "2026-08-01T00:00:00Z",
        true,
    )
    .expect("priced");
    assert_eq!(
        marketing.provider_micros, 136_500,
        "marketing is never free"
    );
}

#[test]
fn errors_name_the_entry_and_the_field() {
    let cases = [
        (
            "[[prices]]\ncategory = \"promo\"\ncountry = \"DE\"\nprovider = \"1\"\nfee = \"0\"\ncurrency = \"USD\"\nfrom = \"2026-01-01\"",
            "price entry 1: field `category`",
        ),
        (
            "[[prices]]\ncategory = \"utility\"\ncountry = \"de\"\nprovider = \"1\"\nfee = \"0\"\ncurrency = \"USD\"\nfrom = \"2026-01-01\"",
            "price entry 1: field `country`",
        ),
        (
            "[[prices]]\ncategory = \"utility\"\ncountry = \"DE\"\nprovider = 0.5\nfee = \"0\"\ncurrency = \"USD\"\nfrom = \"2026-01-01\"",
            "price entry 1: field `provider`: expected a string",
        ),
        (
            "[[prices]]\ncategory = \"utility\"\ncountry = \"DE\"\nprovider = \"0.1234567\"\nfee = \"0\"\ncurrency = \"USD\"\nfrom = \"2026-01-01\"",
            "more than 6 decimals",
        ),
        (
            "[[prices]]\ncategory = \"utility\"\ncountry = \"DE\"\nprovider = \"1\"\nfee = \"-1\"\ncurrency = \"USD\"\nfrom = \"2026-01-01\"",
            "price entry 1: field `fee`",
        ),
        (
            "[[prices]]\ncategory = \"utility\"\ncountry = \"DE\"\nprovider = \"1\"\nfee = \"0\"\ncurrency = \"usd\"\nfrom = \"2026-01-01\"",
            "price entry 1: field `currency`",
        ),
        (
            "[[prices]]\ncategory = \"utility\"\ncountry = \"DE\"\nprovider = \"1\"\nfee = \"0\"\ncurrency = \"USD\"\nfrom = \"July\"",
            "price entry 1: field `from`",
        ),
        (
            "[[prices]]\ncategory = \"utility\"\ncountry = \"DE\"\nprovider = \"1\"\nfee = \"0\"\ncurrency = \"USD\"",
            "price entry 1: field `from`: missing",
        ),
        (
            "[[prices]]\ncategory = \"utility\"\ncountry = \"DE\"\nprovider = \"1\"\nfee = \"0\"\ncurrency = \"USD\"\nfrom = \"2026-01-01\"\nprice = \"2\"",
            "unknown field `price`",
        ),
        (
            "[[prices]]\ncategory = \"utility\"\ncountry = \"DE\"\nprovider = \"1\"\nfee = \"0\"\ncurrency = \"USD\"\nfrom = \"2026-01-01\"\n[[prices]]\ncategory = \"utility\"\ncountry = \"DE\"\nprovider = \"2\"\nfee = \"0\"\ncurrency = \"USD\"\nfrom = \"2026-01-01\"",
            "price entries 1 and 2 both price utility to DE from 2026-01-01",
        ),
        ("[[prices]\n", "not valid TOML"),
    ];
    for (text, expected) in cases {
        let error = PriceTable::from_toml(text).expect_err(expected).to_string();
        assert!(
            error.contains(expected),
            "{error:?} should contain {expected:?}"
        );
    }
}

#[test]
fn amounts_are_exact_micro_units() {
    assert_eq!(parse_micros("0.1365"), Ok(136_500));
    assert_eq!(parse_micros("12"), Ok(12_000_000));
    assert_eq!(parse_micros("0.000001"), Ok(1));
    for bad in ["", ".5", "5.", "1,5", "-0.1", "0.1e3", " 1"] {
        assert!(parse_micros(bad).is_err(), "{bad:?}");
    }
    assert_eq!(format_micros(1_234_500), "1.234500");
    assert_eq!(format_micros(0), "0.000000");
    assert_eq!(format_micros(-5), "-0.000005");
    assert_eq!(
        format_micros(parse_micros("3.75").expect("an amount")),
        "3.750000"
    );
}

#[test]
fn meta_category_spellings_map_to_what_is_priced() {
    assert_eq!(
        PriceCategory::parse("authentication-international"),
        Some(PriceCategory::Authentication)
    );
    assert_eq!(
        PriceCategory::parse("marketing_lite"),
        Some(PriceCategory::Marketing)
    );
    assert_eq!(PriceCategory::parse("referral_conversion"), None);
    assert_eq!(
        PriceCategory::of_template(TemplateCategory::Utility),
        PriceCategory::Utility
    );
    assert_eq!(country_of(&phone("+4915123456789")).as_deref(), Some("DE"));
    assert_eq!(country_of(&phone("+14155550123")).as_deref(), Some("US"));
}

#[test]
fn the_hub_carries_its_price_table() {
    let clock = Arc::new(crate::FixedClock::new(at("2026-08-01T00:00:00Z")));
    let hub = crate::Hub::open_temporary(clock, wagate_domain::Policy::default()).expect("a hub");
    assert!(hub.price_table().is_empty());
    let hub = hub.with_price_table(table());
    assert_eq!(hub.price_table().entries().count(), 5);
}
