//! The template aggregate: its definition (registered by id, or created in wagate and submitted
//! to the provider), and its approval status with where that status came from.

use crate::classify::ProviderKind;
use crate::decide::CommandError;
use crate::events::{ApprovalStatus, TemplateCategory, TemplateEvent};
use crate::ids::TemplateId;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateDefinition {
    pub name: String,
    pub language: String,
    pub category: TemplateCategory,
    pub placeholders: Vec<String>,
}

/// What a header shows: text, or media fetched from a URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HeaderFormat {
    Text,
    Image,
    Video,
    Document,
}

impl HeaderFormat {
    pub const ALL: [Self; 4] = [Self::Text, Self::Image, Self::Video, Self::Document];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Text => "text",
            Self::Image => "image",
            Self::Video => "video",
            Self::Document => "document",
        }
    }

    pub fn parse(input: &str) -> Option<Self> {
        let lower = input.to_ascii_lowercase();
        Self::ALL
            .into_iter()
            .find(|format| format.as_str() == lower)
    }
}

/// A header: its text, or its media's https URL (which may end in a placeholder, `{{1}}`,
/// filled at send time).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateHeader {
    pub format: HeaderFormat,
    pub value: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ButtonKind {
    QuickReply,
    Url,
    PhoneNumber,
}

impl ButtonKind {
    pub const ALL: [Self; 3] = [Self::QuickReply, Self::Url, Self::PhoneNumber];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::QuickReply => "quick_reply",
            Self::Url => "url",
            Self::PhoneNumber => "phone_number",
        }
    }

    pub fn parse(input: &str) -> Option<Self> {
        let lower = input.to_ascii_lowercase();
        Self::ALL.into_iter().find(|kind| kind.as_str() == lower)
    }
}

/// A button: its label, and for a call to action its URL or phone number (empty for a quick
/// reply).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateButton {
    pub kind: ButtonKind,
    pub text: String,
    pub value: String,
}

/// One card of a carousel: a media header, a short body, its buttons.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateCard {
    pub header: TemplateHeader,
    pub body: String,
    pub buttons: Vec<TemplateButton>,
}

/// What a created template says: what wagate submits to the provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateContent {
    pub body: String,
    pub header: Option<TemplateHeader>,
    pub buttons: Vec<TemplateButton>,
    pub cards: Vec<TemplateCard>,
}

/// Who set the current status: the provider (its API or webhook) or an operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StatusSource {
    Provider,
    Operator,
}

impl StatusSource {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Provider => "provider",
            Self::Operator => "operator",
        }
    }
}

/// A template created in wagate: at which provider, under which provider id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Created {
    pub provider: ProviderKind,
    /// Twilio's Content SID, Meta's numeric template id.
    pub provider_ref: String,
    pub content: TemplateContent,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TemplateState {
    pub id: Option<TemplateId>,
    pub definition: Option<TemplateDefinition>,
    /// `None` until registered; registration starts at `Pending`, creation at `Unsubmitted`.
    pub approval: Option<ApprovalStatus>,
    /// Who set `approval`.
    pub source: Option<StatusSource>,
    /// Why (the provider's rejection reason or pause cause, or the operator's note).
    pub reason: String,
    /// The status the provider last reported, which an operator cannot override to approved.
    pub provider_status: Option<ApprovalStatus>,
    /// Set when the template was created in wagate.
    pub created: Option<Created>,
}

impl TemplateState {
    pub fn apply(mut self, event: &TemplateEvent) -> Self {
        self.id.get_or_insert_with(|| event.template().clone());
        match event {
            TemplateEvent::Registered {
                name,
                language,
                category,
                placeholders,
                ..
            } => {
                self.definition = Some(TemplateDefinition {
                    name: name.clone(),
                    language: language.clone(),
                    category: *category,
                    placeholders: placeholders.clone(),
                });
                // A re-registration keeps the approval it had; a new one waits for approval.
                if self.approval.is_none() {
                    self.approval = Some(ApprovalStatus::Pending);
                    self.source = Some(StatusSource::Operator);
                }
            }
            TemplateEvent::ApprovalChanged { status, reason, .. } => {
                self.approval = Some(*status);
                self.source = Some(StatusSource::Operator);
                self.reason.clone_from(reason);
            }
            TemplateEvent::Created {
                provider,
                provider_ref,
                name,
                language,
                category,
                content,
                ..
            } => {
                self.definition = Some(TemplateDefinition {
                    name: name.clone(),
                    language: language.clone(),
                    category: *category,
                    placeholders: placeholders(content),
                });
                self.created = Some(Created {
                    provider: *provider,
                    provider_ref: provider_ref.clone(),
                    content: content.clone(),
                });
                if self.approval.is_none() {
                    self.approval = Some(ApprovalStatus::Unsubmitted);
                    self.source = Some(StatusSource::Provider);
                }
            }
            TemplateEvent::CategoryReported { category, .. } => {
                if let Some(definition) = &mut self.definition {
                    definition.category = *category;
                }
            }
            TemplateEvent::StatusReported { status, reason, .. } => {
                self.approval = Some(*status);
                self.provider_status = Some(*status);
                self.source = Some(StatusSource::Provider);
                self.reason.clone_from(reason);
            }
        }
        self
    }

    pub fn is_approved(&self) -> bool {
        self.definition.is_some() && self.approval == Some(ApprovalStatus::Approved)
    }
}

// ---------------------------------------------------------------------------------------------
// WhatsApp's rules for a template's text and layout (docs/compliance.md, "Templates").

/// Body text of a template without a carousel.
pub const BODY_MAX: usize = 1024;
/// Body text of one carousel card.
pub const CARD_BODY_MAX: usize = 160;
pub const HEADER_TEXT_MAX: usize = 60;
pub const BUTTON_TEXT_MAX: usize = 25;
pub const BUTTONS_MAX: usize = 10;
pub const URL_BUTTONS_MAX: usize = 2;
pub const PHONE_BUTTONS_MAX: usize = 1;
pub const CARD_BUTTONS_MAX: usize = 2;
pub const CARDS_MIN: usize = 2;
pub const CARDS_MAX: usize = 10;

fn invalid(field: &'static str, reason: impl Into<String>) -> CommandError {
    CommandError::InvalidField {
        field,
        reason: reason.into(),
    }
}

/// The `{{…}}` placeholders of `text`, in order of appearance, and whether any is malformed.
fn scan(text: &str) -> Result<Vec<String>, String> {
    let mut keys = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let end = after
            .find("}}")
            .ok_or_else(|| "a \"{{\" without its closing \"}}\"".to_owned())?;
        let key = &after[..end];
        if key.is_empty()
            || !key
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        {
            return Err(format!(
                "placeholder {{{{{key}}}}} is neither a number ({{{{1}}}}) nor a lower-case name"
            ));
        }
        keys.push(key.to_owned());
        rest = &after[end + 2..];
    }
    Ok(keys)
}

/// Placeholder keys of a created template, in order, each once (body, then header, then cards).
pub fn placeholders(content: &TemplateContent) -> Vec<String> {
    let mut texts: Vec<&str> = vec![&content.body];
    if let Some(header) = &content.header {
        texts.push(&header.value);
    }
    for card in &content.cards {
        texts.push(&card.header.value);
        texts.push(&card.body);
    }
    let mut keys: Vec<String> = Vec::new();
    for text in texts {
        for key in scan(text).unwrap_or_default() {
            if !keys.contains(&key) {
                keys.push(key);
            }
        }
    }
    keys
}

/// Numbered placeholders must run 1, 2, 3… without a gap; a text must not begin or end with
/// one (WhatsApp rejects both as INVALID_FORMAT).
fn check_text(
    field: &'static str,
    text: &str,
    len_max: usize,
) -> Result<Vec<String>, CommandError> {
    if text.trim().is_empty() {
        return Err(invalid(field, "must not be empty"));
    }
    let len = text.chars().count();
    if len > len_max {
        return Err(invalid(
            field,
            format!("{len} characters, more than WhatsApp's {len_max}"),
        ));
    }
    let keys = scan(text).map_err(|reason| invalid(field, reason))?;
    let trimmed = text.trim();
    if trimmed.starts_with("{{") {
        return Err(invalid(
            field,
            "must not begin with a placeholder (WhatsApp rejects it)",
        ));
    }
    if trimmed.ends_with("}}") {
        return Err(invalid(
            field,
            "must not end with a placeholder (WhatsApp rejects it); end with text, e.g. a full stop",
        ));
    }
    Ok(keys)
}

fn check_sequence(keys: &[String]) -> Result<(), CommandError> {
    let numbered: Vec<u32> = keys.iter().filter_map(|k| k.parse().ok()).collect();
    if !numbered.is_empty() && numbered.len() != keys.len() {
        return Err(invalid(
            "body",
            "mixes numbered ({{1}}) and named placeholders",
        ));
    }
    let mut sorted = numbered.clone();
    sorted.sort_unstable();
    sorted.dedup();
    for (index, n) in sorted.iter().enumerate() {
        if *n as usize != index + 1 {
            return Err(invalid(
                "body",
                format!("placeholders must be numbered 1, 2, 3… without a gap; {{{{{n}}}}} comes without {{{{{}}}}}", index + 1),
            ));
        }
    }
    Ok(())
}

fn check_header(field: &'static str, header: &TemplateHeader) -> Result<(), CommandError> {
    match header.format {
        HeaderFormat::Text => {
            let keys = scan(&header.value).map_err(|reason| invalid(field, reason))?;
            if header.value.trim().is_empty() {
                return Err(invalid(field, "a text header must not be empty"));
            }
            if header.value.chars().count() > HEADER_TEXT_MAX {
                return Err(invalid(
                    field,
                    format!("a text header is at most {HEADER_TEXT_MAX} characters"),
                ));
            }
            if keys.len() > 1 {
                return Err(invalid(field, "a text header has at most one placeholder"));
            }
        }
        HeaderFormat::Image | HeaderFormat::Video | HeaderFormat::Document => {
            if !header.value.starts_with("https://") || header.value.len() <= "https://".len() {
                return Err(invalid(
                    field,
                    format!(
                        "a {} header needs its media's https URL",
                        header.format.as_str()
                    ),
                ));
            }
        }
    }
    Ok(())
}

fn check_buttons(
    field: &'static str,
    buttons: &[TemplateButton],
    max: usize,
) -> Result<(), CommandError> {
    if buttons.len() > max {
        return Err(invalid(field, format!("at most {max} buttons")));
    }
    let count = |kind| buttons.iter().filter(|b| b.kind == kind).count();
    if count(ButtonKind::Url) > URL_BUTTONS_MAX {
        return Err(invalid(
            field,
            format!("at most {URL_BUTTONS_MAX} URL buttons"),
        ));
    }
    if count(ButtonKind::PhoneNumber) > PHONE_BUTTONS_MAX {
        return Err(invalid(field, "at most one phone-number button"));
    }
    for button in buttons {
        if button.text.trim().is_empty() || button.text.chars().count() > BUTTON_TEXT_MAX {
            return Err(invalid(
                field,
                format!("a button's text is 1 to {BUTTON_TEXT_MAX} characters"),
            ));
        }
        match button.kind {
            ButtonKind::QuickReply => {}
            ButtonKind::Url if !button.value.starts_with("https://") => {
                return Err(invalid(
                    field,
                    "a URL button needs an https URL as its value",
                ));
            }
            ButtonKind::PhoneNumber
                if !button.value.starts_with('+')
                    || !button.value[1..].chars().all(|c| c.is_ascii_digit())
                    || button.value.len() < 8 =>
            {
                return Err(invalid(
                    field,
                    "a phone-number button needs an E.164 number (+4930…) as its value",
                ));
            }
            ButtonKind::Url | ButtonKind::PhoneNumber => {}
        }
    }
    Ok(())
}

/// Checks a template to be created against WhatsApp's rules, before anything is sent to the
/// provider: the provider would reject it anyway, after a round of review.
pub fn validate(content: &TemplateContent) -> Result<(), CommandError> {
    let mut keys = check_text("body", &content.body, BODY_MAX)?;
    if let Some(header) = &content.header {
        check_header("header", header)?;
        keys.extend(scan(&header.value).unwrap_or_default());
    }
    check_buttons("buttons", &content.buttons, BUTTONS_MAX)?;
    if !content.cards.is_empty() {
        check_cards(content)?;
        for card in &content.cards {
            keys.extend(scan(&card.body).unwrap_or_default());
        }
    }
    check_sequence(&keys)
}

/// A carousel: 2 to 10 cards, no header or buttons of its own, and every card laid out alike
/// (the same media type, the same buttons in the same order), as WhatsApp requires.
fn check_cards(content: &TemplateContent) -> Result<(), CommandError> {
    let cards = &content.cards;
    if !(CARDS_MIN..=CARDS_MAX).contains(&cards.len()) {
        return Err(invalid(
            "cards",
            format!(
                "a carousel has {CARDS_MIN} to {CARDS_MAX} cards, not {}",
                cards.len()
            ),
        ));
    }
    if content.header.is_some() || !content.buttons.is_empty() {
        return Err(invalid(
            "cards",
            "a carousel template has no header or buttons of its own: they belong to the cards",
        ));
    }
    let first = &cards[0];
    for (index, card) in cards.iter().enumerate() {
        if !matches!(
            card.header.format,
            HeaderFormat::Image | HeaderFormat::Video
        ) {
            return Err(invalid(
                "cards",
                format!("card {}: a card's header is an image or a video", index + 1),
            ));
        }
        check_header("cards", &card.header)?;
        check_text("cards", &card.body, CARD_BODY_MAX).map_err(|error| match error {
            CommandError::InvalidField { reason, .. } => {
                invalid("cards", format!("card {}: body {reason}", index + 1))
            }
            other => other,
        })?;
        if card.buttons.is_empty() {
            return Err(invalid(
                "cards",
                format!("card {}: a card needs at least one button", index + 1),
            ));
        }
        check_buttons("cards", &card.buttons, CARD_BUTTONS_MAX)?;
        let layout = |c: &TemplateCard| {
            (
                c.header.format,
                c.buttons.iter().map(|b| b.kind).collect::<Vec<_>>(),
            )
        };
        if layout(card) != layout(first) {
            return Err(invalid(
                "cards",
                format!(
                    "card {} differs from card 1: every card needs the same header type and the same buttons in the same order",
                    index + 1
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;

mod send_media;
pub use send_media::check_send_media;
