//! Identifiers, each validated once at construction so the rest of the domain can trust them.
//!
//! Every constructor names what was wrong with its input: these errors reach people through the
//! HTTP API and the CLI.

use std::fmt;

use uuid::Uuid;

/// Why an identifier was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("invalid phone number {input:?}: {reason}")]
    PhoneNumber { input: String, reason: String },
    #[error("invalid WhatsApp address {input:?}: {reason}")]
    WhatsAppAddress { input: String, reason: String },
    #[error("invalid message id {input:?}: {reason}")]
    MessageId { input: String, reason: String },
    #[error("invalid Twilio SID {input:?}: {reason}")]
    TwilioSid { input: String, reason: String },
    #[error("invalid WhatsApp message id (wamid) {input:?}: {reason}")]
    Wamid { input: String, reason: String },
    #[error("invalid business-scoped user id {input:?}: {reason}")]
    BusinessScopedUserId { input: String, reason: String },
    #[error("invalid template id {input:?}: {reason}")]
    TemplateId { input: String, reason: String },
    #[error("invalid {what} {input:?}: {reason}")]
    Name {
        what: &'static str,
        input: String,
        reason: String,
    },
}

/// E.164 limits: a country code never starts with 0, and the whole number has at most 15 digits.
/// The shortest numbers in service have 7 digits including the country code.
const E164_DIGITS_MIN: usize = 7;
const E164_DIGITS_MAX: usize = 15;

/// A phone number in E.164 form: `+` then 7 to 15 digits, the first not 0.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PhoneNumber(String);

impl PhoneNumber {
    pub fn parse(input: &str) -> Result<Self, IdError> {
        let fail = |reason: String| IdError::PhoneNumber {
            input: input.to_owned(),
            reason,
        };
        let Some(digits) = input.strip_prefix('+') else {
            return Err(fail(
                "E.164 numbers start with '+' and the country code".into(),
            ));
        };
        if let Some((index, bad)) = digits.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
            return Err(fail(format!(
                "character {bad:?} at position {} is not a digit",
                index + 1
            )));
        }
        if digits.len() < E164_DIGITS_MIN {
            return Err(fail(format!(
                "{} digits is too short (at least {E164_DIGITS_MIN})",
                digits.len()
            )));
        }
        if digits.len() > E164_DIGITS_MAX {
            return Err(fail(format!(
                "{} digits is too long (at most {E164_DIGITS_MAX})",
                digits.len()
            )));
        }
        if digits.starts_with('0') {
            return Err(fail("a country code never starts with 0".into()));
        }
        Ok(Self(input.to_owned()))
    }

    /// `+41790000001`
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The digits without `+` (what Meta calls `wa_id` and sends in `from`).
    pub fn digits(&self) -> &str {
        &self.0[1..]
    }
}

impl fmt::Display for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A WhatsApp address as Twilio writes it: `whatsapp:+E164`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct WhatsAppAddress(PhoneNumber);

impl WhatsAppAddress {
    pub const PREFIX: &'static str = "whatsapp:";

    pub fn parse(input: &str) -> Result<Self, IdError> {
        let Some(number) = input.strip_prefix(Self::PREFIX) else {
            return Err(IdError::WhatsAppAddress {
                input: input.to_owned(),
                reason: "a WhatsApp address starts with 'whatsapp:' followed by an E.164 number"
                    .into(),
            });
        };
        PhoneNumber::parse(number)
            .map(Self)
            .map_err(|error| IdError::WhatsAppAddress {
                input: input.to_owned(),
                reason: error.to_string(),
            })
    }

    pub fn from_number(number: PhoneNumber) -> Self {
        Self(number)
    }

    pub fn number(&self) -> &PhoneNumber {
        &self.0
    }
}

impl fmt::Display for WhatsAppAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", Self::PREFIX, self.0)
    }
}

/// wagate's own message id: a UUID v7, so ids sort by creation time. Generated at the edge
/// (the domain never reads the clock) and validated here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MessageId(Uuid);

impl MessageId {
    pub fn from_uuid(uuid: Uuid) -> Result<Self, IdError> {
        if uuid.get_version_num() != 7 {
            return Err(IdError::MessageId {
                input: uuid.to_string(),
                reason: format!(
                    "version {} UUID, wagate ids are UUID v7",
                    uuid.get_version_num()
                ),
            });
        }
        Ok(Self(uuid))
    }

    pub fn parse(input: &str) -> Result<Self, IdError> {
        let uuid = Uuid::parse_str(input).map_err(|error| IdError::MessageId {
            input: input.to_owned(),
            reason: error.to_string(),
        })?;
        Self::from_uuid(uuid)
    }

    pub fn as_uuid(&self) -> Uuid {
        self.0
    }
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A campaign's id: a UUID v7 like a message's, chosen by whoever creates the campaign (the API
/// generates one), so a retried create names the same campaign.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CampaignId(Uuid);

impl CampaignId {
    pub fn from_uuid(uuid: Uuid) -> Result<Self, IdError> {
        if uuid.get_version_num() != 7 {
            return Err(IdError::Name {
                what: "campaign id",
                input: uuid.to_string(),
                reason: format!(
                    "version {} UUID, wagate ids are UUID v7",
                    uuid.get_version_num()
                ),
            });
        }
        Ok(Self(uuid))
    }

    pub fn parse(input: &str) -> Result<Self, IdError> {
        let uuid = Uuid::parse_str(input).map_err(|error| IdError::Name {
            what: "campaign id",
            input: input.to_owned(),
            reason: error.to_string(),
        })?;
        Self::from_uuid(uuid)
    }

    pub fn as_uuid(&self) -> Uuid {
        self.0
    }
}

impl fmt::Display for CampaignId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// What a Twilio SID names, from its two-letter prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TwilioSidKind {
    /// `SM`: a message.
    Message,
    /// `MM`: a message with media.
    MediaMessage,
    /// `HX`: a Content API template.
    Content,
    /// `AC`: an account.
    Account,
    /// `MG`: a messaging service.
    MessagingService,
}

impl TwilioSidKind {
    pub fn prefix(self) -> &'static str {
        match self {
            Self::Message => "SM",
            Self::MediaMessage => "MM",
            Self::Content => "HX",
            Self::Account => "AC",
            Self::MessagingService => "MG",
        }
    }

    const ALL: [Self; 5] = [
        Self::Message,
        Self::MediaMessage,
        Self::Content,
        Self::Account,
        Self::MessagingService,
    ];
}

/// A Twilio SID: a known two-letter prefix and 32 hexadecimal digits.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TwilioSid {
    kind: TwilioSidKind,
    raw: String,
}

impl TwilioSid {
    pub fn parse(input: &str) -> Result<Self, IdError> {
        let fail = |reason: String| IdError::TwilioSid {
            input: input.to_owned(),
            reason,
        };
        let (prefix, hex) = input
            .split_at_checked(2)
            .ok_or_else(|| fail("a SID is two letters and 32 hex digits".into()))?;
        let kind = TwilioSidKind::ALL
            .into_iter()
            .find(|kind| kind.prefix() == prefix)
            .ok_or_else(|| fail(format!("unknown prefix {prefix:?} (SM, MM, HX, AC or MG)")))?;
        if hex.len() != 32 {
            return Err(fail(format!(
                "{} characters after the prefix, expected 32",
                hex.len()
            )));
        }
        if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(fail(
                "the 32 characters after the prefix must be hex digits".into(),
            ));
        }
        Ok(Self {
            kind,
            raw: input.to_owned(),
        })
    }

    /// Parses and requires one of `kinds`.
    pub fn parse_kind(input: &str, kinds: &[TwilioSidKind]) -> Result<Self, IdError> {
        let sid = Self::parse(input)?;
        if kinds.contains(&sid.kind) {
            return Ok(sid);
        }
        let wanted: Vec<&str> = kinds.iter().map(|kind| kind.prefix()).collect();
        Err(IdError::TwilioSid {
            input: input.to_owned(),
            reason: format!("expected a SID starting with {}", wanted.join(" or ")),
        })
    }

    pub fn kind(&self) -> TwilioSidKind {
        self.kind
    }

    pub fn as_str(&self) -> &str {
        &self.raw
    }
}

impl fmt::Display for TwilioSid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

/// Meta's message id, `wamid.` followed by an opaque base64-ish token.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Wamid(String);

/// Meta does not document a maximum; real ids are ~60 characters. The bound keeps junk out.
const WAMID_LEN_MAX: usize = 512;

impl Wamid {
    pub fn parse(input: &str) -> Result<Self, IdError> {
        let fail = |reason: &str| IdError::Wamid {
            input: input.to_owned(),
            reason: reason.into(),
        };
        let Some(token) = input.strip_prefix("wamid.") else {
            return Err(fail("a wamid starts with 'wamid.'"));
        };
        if token.is_empty() {
            return Err(fail("nothing after 'wamid.'"));
        }
        if input.len() > WAMID_LEN_MAX {
            return Err(fail("longer than 512 characters"));
        }
        if !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(fail("only printable ASCII without spaces is allowed"));
        }
        Ok(Self(input.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Wamid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The provider's own id for a message we sent or received.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ProviderMessageRef {
    Twilio(TwilioSid),
    Meta(Wamid),
}

impl ProviderMessageRef {
    /// Parses either form: a wamid or a Twilio message SID (`SM`/`MM`).
    pub fn parse(input: &str) -> Result<Self, IdError> {
        if input.starts_with("wamid.") {
            return Wamid::parse(input).map(Self::Meta);
        }
        TwilioSid::parse_kind(
            input,
            &[TwilioSidKind::Message, TwilioSidKind::MediaMessage],
        )
        .map(Self::Twilio)
    }

    pub fn as_str(&self) -> &str {
        match self {
            Self::Twilio(sid) => sid.as_str(),
            Self::Meta(wamid) => wamid.as_str(),
        }
    }

    /// The provider whose id format this is, for classifying a callback's error code (the
    /// sandbox issues Twilio-format ids and Twilio's codes, so its ids read as Twilio's).
    pub fn provider(&self) -> crate::classify::ProviderKind {
        match self {
            Self::Twilio(_) => crate::classify::ProviderKind::Twilio,
            Self::Meta(_) => crate::classify::ProviderKind::Meta,
        }
    }
}

impl fmt::Display for ProviderMessageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Meta's 2026 business-scoped user id (BSUID): a contact known by username, with no number.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BusinessScopedUserId(String);

/// Meta documents BSUIDs as at most 256 characters.
const BSUID_LEN_MAX: usize = 256;

impl BusinessScopedUserId {
    pub fn parse(input: &str) -> Result<Self, IdError> {
        let fail = |reason: &str| IdError::BusinessScopedUserId {
            input: input.to_owned(),
            reason: reason.into(),
        };
        if input.is_empty() {
            return Err(fail("empty"));
        }
        if input.len() > BSUID_LEN_MAX {
            return Err(fail("longer than 256 characters"));
        }
        if !input.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(fail("only printable ASCII without spaces is allowed"));
        }
        Ok(Self(input.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Who a contact is. Today almost always a phone number; Meta's usernames mean a webhook can
/// carry only a business-scoped user id, and such a contact must still be recorded (and can
/// still opt out).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ContactId {
    Phone(PhoneNumber),
    BusinessScoped(BusinessScopedUserId),
}

impl ContactId {
    /// The inverse of `Display`: `+E164` or `bsuid:<id>`.
    pub fn parse(input: &str) -> Result<Self, IdError> {
        match input.strip_prefix("bsuid:") {
            Some(id) => BusinessScopedUserId::parse(id).map(Self::BusinessScoped),
            None => PhoneNumber::parse(input).map(Self::Phone),
        }
    }

    pub fn phone(&self) -> Option<&PhoneNumber> {
        match self {
            Self::Phone(number) => Some(number),
            Self::BusinessScoped(_) => None,
        }
    }
}

impl fmt::Display for ContactId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Phone(number) => number.fmt(f),
            Self::BusinessScoped(id) => write!(f, "bsuid:{}", id.as_str()),
        }
    }
}

impl From<PhoneNumber> for ContactId {
    fn from(number: PhoneNumber) -> Self {
        Self::Phone(number)
    }
}

/// A template's id: a Twilio Content SID (`HX…`) or a Meta template name (`[a-z0-9_]+`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TemplateId(String);

impl TemplateId {
    pub fn parse(input: &str) -> Result<Self, IdError> {
        if input.starts_with("HX") {
            return TwilioSid::parse_kind(input, &[TwilioSidKind::Content])
                .map(|sid| Self(sid.raw))
                .map_err(|error| IdError::TemplateId {
                    input: input.to_owned(),
                    reason: error.to_string(),
                });
        }
        if let Some((name, language)) = input.split_once('@') {
            return Self::meta(name, language);
        }
        validate_name(input, "template id", 512).map_err(|_| IdError::TemplateId {
            input: input.to_owned(),
            reason: "a Twilio Content SID (HX + 32 hex) or a Meta template name (a-z, 0-9, _)"
                .into(),
        })?;
        Ok(Self(input.to_owned()))
    }

    /// A Meta template created or imported by wagate: Meta identifies a template by its name
    /// and language, so the same name in `en` and `de` is two templates, `name@en` and
    /// `name@de`. Meta's `en-US` (in webhooks) is normalised to `en_US`.
    pub fn meta(name: &str, language: &str) -> Result<Self, IdError> {
        let input = format!("{name}@{language}");
        let fail = |reason: &str| IdError::TemplateId {
            input: input.clone(),
            reason: reason.to_owned(),
        };
        validate_name(name, "template id", 512)
            .map_err(|_| fail("a Meta template name is a-z, 0-9 and _"))?;
        let language = language.replace('-', "_");
        let valid_language = !language.is_empty()
            && language.len() <= 16
            && language
                .chars()
                .all(|c| c.is_ascii_alphabetic() || c == '_')
            && !language.starts_with('_');
        if !valid_language {
            return Err(fail("a language code is letters and _ (en, en_US, pt_BR)"));
        }
        Ok(Self(format!("{name}@{language}")))
    }

    /// The name Meta knows this template by: the id, or its part before `@`.
    pub fn meta_name(&self) -> &str {
        self.0.split_once('@').map_or(&self.0, |(name, _)| name)
    }

    /// The language a `name@language` id carries.
    pub fn meta_language(&self) -> Option<&str> {
        self.0.split_once('@').map(|(_, language)| language)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TemplateId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Lower-case names with digits and underscores: workflows, portfolios, template names.
fn validate_name(input: &str, what: &'static str, len_max: usize) -> Result<(), IdError> {
    let fail = |reason: String| IdError::Name {
        what,
        input: input.to_owned(),
        reason,
    };
    if input.is_empty() {
        return Err(fail("empty".into()));
    }
    if input.len() > len_max {
        return Err(fail(format!("longer than {len_max} characters")));
    }
    if let Some(bad) = input
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_'))
    {
        return Err(fail(format!("{bad:?} is not allowed (use a-z, 0-9 and _)")));
    }
    Ok(())
}

macro_rules! name_type {
    ($(#[$doc:meta])* $name:ident, $what:literal, $len_max:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(String);

        impl $name {
            pub fn parse(input: &str) -> Result<Self, IdError> {
                validate_name(input, $what, $len_max)?;
                Ok(Self(input.to_owned()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

name_type!(
    /// A task-specific workflow an outreach message belongs to (`lead_qualification`, …).
    Workflow,
    "workflow",
    64
);
name_type!(
    /// A Meta business portfolio: messaging limits are shared by all of its numbers.
    PortfolioId,
    "portfolio id",
    64
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phone_numbers_accept_e164_and_name_what_is_wrong() {
        assert_eq!(
            PhoneNumber::parse("+41790000001").map(|n| n.digits().to_owned()),
            Ok("41790000001".into())
        );
        let cases = [
            ("41790000001", "start with '+'"),
            ("+4179 0000001", "' ' at position 5 is not a digit"),
            ("+12345", "too short"),
            ("+1234567890123456", "too long"),
            ("+0790000001", "never starts with 0"),
            ("", "start with '+'"),
        ];
        for (input, reason) in cases {
            let error = PhoneNumber::parse(input).expect_err(input).to_string();
            assert!(error.contains(reason), "{input}: {error}");
        }
    }

    #[test]
    fn whatsapp_addresses_round_trip() {
        let address = WhatsAppAddress::parse("whatsapp:+15550001111").expect("valid");
        assert_eq!(address.to_string(), "whatsapp:+15550001111");
        assert!(WhatsAppAddress::parse("+15550001111").is_err());
        assert!(WhatsAppAddress::parse("whatsapp:15550001111")
            .expect_err("no plus")
            .to_string()
            .contains("start with '+'"));
    }

    #[test]
    fn message_ids_must_be_v7() {
        assert!(MessageId::parse("0192f0c1-7a3b-7c4d-8e5f-0123456789ab").is_ok());
        let v4 = MessageId::parse("3f2b8c1e-4a5d-4b6c-9d7e-0123456789ab").expect_err("v4");
        assert!(v4.to_string().contains("version 4"));
        assert!(MessageId::parse("not-a-uuid").is_err());
    }

    #[test]
    fn twilio_sids_check_prefix_and_hex() {
        let sid = TwilioSid::parse("SM0123456789abcdef0123456789abcdef").expect("valid");
        assert_eq!(sid.kind(), TwilioSidKind::Message);
        assert!(TwilioSid::parse("XX0123456789abcdef0123456789abcdef").is_err());
        assert!(TwilioSid::parse("SM0123").is_err());
        assert!(TwilioSid::parse("SM0123456789abcdef0123456789abcdeg").is_err());
        assert!(TwilioSid::parse("S").is_err());
        assert!(TwilioSid::parse_kind(
            "HX0123456789abcdef0123456789abcdef",
            &[TwilioSidKind::Message]
        )
        .is_err());
    }

    #[test]
    fn provider_refs_parse_both_providers() {
        assert!(matches!(
            ProviderMessageRef::parse("wamid.HBgLMTU1NTAwMDExMTEVAgARGBI="),
            Ok(ProviderMessageRef::Meta(_))
        ));
        assert!(matches!(
            ProviderMessageRef::parse("MM0123456789abcdef0123456789abcdef"),
            Ok(ProviderMessageRef::Twilio(_))
        ));
        assert!(ProviderMessageRef::parse("wamid.").is_err());
        assert!(ProviderMessageRef::parse("HX0123456789abcdef0123456789abcdef").is_err());
    }

    #[test]
    fn contact_ids_round_trip_through_display() {
        for text in ["+41790000001", "bsuid:CO.1234567890"] {
            let id = ContactId::parse(text).expect(text);
            assert_eq!(id.to_string(), text);
        }
        assert!(ContactId::parse("bsuid:").is_err());
    }

    #[test]
    fn template_ids_and_names() {
        assert!(TemplateId::parse("HX0123456789abcdef0123456789abcdef").is_ok());
        assert!(TemplateId::parse("viewing_reminder_v2").is_ok());
        assert!(TemplateId::parse("HX12").is_err());
        assert!(TemplateId::parse("Viewing Reminder").is_err());
        assert!(Workflow::parse("lead_qualification").is_ok());
        assert!(Workflow::parse("")
            .expect_err("empty")
            .to_string()
            .contains("empty"));
        assert!(PortfolioId::parse("Default").is_err());
    }
}
