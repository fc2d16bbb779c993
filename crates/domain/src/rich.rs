//! Rich freeform content sent inside an open window: media by link with a caption, and
//! interactive quick-reply buttons. Validated once at construction, so every later layer
//! (the log, the dispatcher, the provider clients) carries only content a provider can take.
//!
//! What is checkable without fetching the link is checked here: the scheme (https only), that
//! there is a host, the file extension when the path has one, and the text limits. What is not
//! (the real content type and the size, which only the provider sees when it downloads the
//! file) is left to the provider's answer; docs/providers.md lists the limits and sources.

use crate::decide::CommandError;

/// The kinds of media a freeform message (or a template header) carries by link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum MediaKind {
    Image,
    Video,
    Document,
}

impl MediaKind {
    pub const ALL: [MediaKind; 3] = [Self::Image, Self::Video, Self::Document];

    /// The name on the wire (Meta's message `type`, wagate's API).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Image => "image",
            Self::Video => "video",
            Self::Document => "document",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == value)
    }

    /// File extensions of the types WhatsApp accepts for this kind (Meta's supported media
    /// types: image/jpeg, image/png; video/mp4, video/3gpp; text, PDF and Office documents).
    fn extensions(self) -> &'static [&'static str] {
        match self {
            Self::Image => &["jpg", "jpeg", "png"],
            Self::Video => &["mp4", "3gp", "3gpp"],
            Self::Document => &["pdf", "txt", "doc", "docx", "xls", "xlsx", "ppt", "pptx"],
        }
    }
}

/// Limits of the WhatsApp channel (docs/providers.md, "Rich content", names the sources).
pub const MEDIA_URL_MAX: usize = 2_000;
pub const CAPTION_MAX: usize = 1_024;
pub const INTERACTIVE_BODY_MAX: usize = 1_024;
pub const BUTTONS_MAX: usize = 3;
pub const BUTTON_TITLE_MAX: usize = 20;
pub const BUTTON_ID_MAX: usize = 256;

/// An https link to a media file, checked as far as it can be without fetching it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MediaUrl(String);

impl MediaUrl {
    /// `field` names the request field in the error.
    pub fn parse(field: &'static str, kind: MediaKind, url: &str) -> Result<Self, CommandError> {
        let invalid = |reason: String| CommandError::InvalidField { field, reason };
        if url.len() > MEDIA_URL_MAX {
            return Err(invalid(format!("longer than {MEDIA_URL_MAX} characters")));
        }
        if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(invalid("contains whitespace or control characters".into()));
        }
        let Some(rest) = url
            .get(..8)
            .filter(|scheme| scheme.eq_ignore_ascii_case("https://"))
            .map(|_| &url[8..])
        else {
            return Err(invalid(format!(
                "{url:?} is not an https URL (the provider downloads it; only https is accepted)"
            )));
        };
        let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let authority = &rest[..authority_end];
        let host = authority.rsplit('@').next().unwrap_or(authority);
        if host.is_empty() || host.starts_with(':') || authority.contains('@') {
            return Err(invalid(format!(
                "{url:?} names no host (or carries credentials)"
            )));
        }
        let path = rest[authority_end..]
            .split(['?', '#'])
            .next()
            .unwrap_or_default();
        let file = path.rsplit('/').next().unwrap_or_default();
        if let Some((_, extension)) = file.rsplit_once('.') {
            let extension = extension.to_ascii_lowercase();
            if !kind.extensions().contains(&extension.as_str()) {
                return Err(invalid(format!(
                    "a .{extension} file is not a WhatsApp {} (accepted: {})",
                    kind.as_str(),
                    kind.extensions().join(", ")
                )));
            }
        }
        Ok(Self(url.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for MediaUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A media message: the file by link and an optional caption.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaMessage {
    pub kind: MediaKind,
    pub url: MediaUrl,
    /// Shown under the media; empty for none.
    pub caption: String,
}

/// One quick-reply button: what the contact taps (`title`) and what comes back (`id`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplyButton {
    pub id: String,
    pub title: String,
}

/// Rich freeform content: allowed exactly where freeform text is (inside the window).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RichReply {
    Media(MediaMessage),
    /// Body text with 1 to 3 quick-reply buttons.
    Buttons {
        body: String,
        buttons: Vec<ReplyButton>,
    },
}

impl RichReply {
    pub fn media(kind: MediaKind, url: &str, caption: String) -> Result<Self, CommandError> {
        let url = MediaUrl::parse("media.url", kind, url)?;
        if caption.chars().count() > CAPTION_MAX {
            return Err(CommandError::InvalidField {
                field: "media.caption",
                reason: format!("longer than {CAPTION_MAX} characters"),
            });
        }
        Ok(Self::Media(MediaMessage { kind, url, caption }))
    }

    pub fn buttons(body: String, buttons: Vec<ReplyButton>) -> Result<Self, CommandError> {
        let invalid = |field, reason: String| CommandError::InvalidField { field, reason };
        let body_chars = body.chars().count();
        if body.trim().is_empty() || body_chars > INTERACTIVE_BODY_MAX {
            return Err(invalid(
                "interactive.body",
                format!("must be 1 to {INTERACTIVE_BODY_MAX} characters"),
            ));
        }
        if buttons.is_empty() || buttons.len() > BUTTONS_MAX {
            return Err(invalid(
                "interactive.buttons",
                format!("give 1 to {BUTTONS_MAX} buttons, not {}", buttons.len()),
            ));
        }
        for (index, button) in buttons.iter().enumerate() {
            let title = button.title.chars().count();
            if button.title.trim().is_empty() || title > BUTTON_TITLE_MAX {
                return Err(invalid(
                    "interactive.buttons.title",
                    format!("button {index}: the title must be 1 to {BUTTON_TITLE_MAX} characters"),
                ));
            }
            if button.id.is_empty() || button.id.chars().count() > BUTTON_ID_MAX {
                return Err(invalid(
                    "interactive.buttons.id",
                    format!("button {index}: the id must be 1 to {BUTTON_ID_MAX} characters"),
                ));
            }
            if buttons[..index].iter().any(|other| other.id == button.id) {
                return Err(invalid(
                    "interactive.buttons.id",
                    format!("button {index}: the id {:?} is used twice", button.id),
                ));
            }
            if buttons[..index]
                .iter()
                .any(|other| other.title == button.title)
            {
                return Err(invalid(
                    "interactive.buttons.title",
                    format!("button {index}: the title {:?} is used twice", button.title),
                ));
            }
        }
        Ok(Self::Buttons { body, buttons })
    }

    /// The text a reader of the log sees: the caption or the body.
    pub fn text(&self) -> &str {
        match self {
            Self::Media(media) => &media.caption,
            Self::Buttons { body, .. } => body,
        }
    }
}

/// Carousel templates hold 2 to 10 cards (Meta's media-card carousel).
pub const CAROUSEL_CARDS_MAX: u8 = 10;

/// The media a template send carries for a media header: the template's own header
/// (`card: None`) or the header of carousel card `card` (0-based, Meta's `card_index`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateMedia {
    pub card: Option<u8>,
    pub kind: MediaKind,
    pub url: MediaUrl,
}

impl TemplateMedia {
    pub fn new(card: Option<u8>, kind: MediaKind, url: &str) -> Result<Self, CommandError> {
        if card.is_some_and(|card| card >= CAROUSEL_CARDS_MAX) {
            return Err(CommandError::InvalidField {
                field: "template.media.card",
                reason: format!("a carousel has at most {CAROUSEL_CARDS_MAX} cards (0 to 9)"),
            });
        }
        if card.is_some() && kind == MediaKind::Document {
            return Err(CommandError::InvalidField {
                field: "template.media.type",
                reason: "a carousel card's header is an image or a video".into(),
            });
        }
        let url = MediaUrl::parse("template.media.url", kind, url)?;
        Ok(Self { card, kind, url })
    }

    /// At most one medium per header; sorted: the template's header first, then by card.
    pub fn normalize(mut media: Vec<Self>) -> Result<Vec<Self>, CommandError> {
        media.sort_by_key(|m| m.card.map_or(0, |card| u16::from(card) + 1));
        if let Some(pair) = media.windows(2).find(|pair| pair[0].card == pair[1].card) {
            return Err(CommandError::InvalidField {
                field: "template.media",
                reason: match pair[0].card {
                    None => "two media for the template's header".into(),
                    Some(card) => format!("two media for card {card}"),
                },
            });
        }
        Ok(media)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_urls() {
        let ok = |url| MediaUrl::parse("u", MediaKind::Image, url);
        assert!(ok("https://cdn.example.com/p/1.jpg").is_ok());
        assert!(ok("https://cdn.example.com/p/1.JPEG?v=2").is_ok());
        assert!(ok("https://cdn.example.com/render?id=7").is_ok());
        assert!(ok("http://cdn.example.com/p/1.jpg").is_err());
        assert!(ok("https:///p/1.jpg").is_err());
        assert!(ok("https://user:pw@cdn.example.com/1.jpg").is_err());
        assert!(ok("https://cdn.example.com/p/1.gif").is_err());
        assert!(ok("https://cdn.example.com/p 1.jpg").is_err());
        assert!(MediaUrl::parse("u", MediaKind::Document, "https://x.example/a.pdf").is_ok());
        assert!(MediaUrl::parse("u", MediaKind::Video, "https://x.example/a.pdf").is_err());
    }

    #[test]
    fn buttons() {
        let button = |id: &str, title: &str| ReplyButton {
            id: id.into(),
            title: title.into(),
        };
        assert!(
            RichReply::buttons("Visit?".into(), vec![button("y", "Yes"), button("n", "No")])
                .is_ok()
        );
        assert!(RichReply::buttons("Visit?".into(), vec![]).is_err());
        let four = (0..4)
            .map(|i| button(&i.to_string(), &i.to_string()))
            .collect();
        assert!(RichReply::buttons("Visit?".into(), four).is_err());
        assert!(
            RichReply::buttons("Visit?".into(), vec![button("a", "x"), button("a", "y")]).is_err()
        );
        assert!(
            RichReply::buttons("Visit?".into(), vec![button("a", "twenty-one characters")])
                .is_err()
        );
    }

    #[test]
    fn template_media() {
        let image = |card| {
            TemplateMedia::new(card, MediaKind::Image, "https://x.example/a.png").expect("valid")
        };
        assert!(TemplateMedia::new(Some(9), MediaKind::Image, "https://x.example/a.png").is_ok());
        assert!(TemplateMedia::new(Some(10), MediaKind::Image, "https://x.example/a.png").is_err());
        assert!(
            TemplateMedia::new(Some(0), MediaKind::Document, "https://x.example/a.pdf").is_err()
        );
        assert!(TemplateMedia::new(None, MediaKind::Document, "https://x.example/a.pdf").is_ok());
        let sorted = TemplateMedia::normalize(vec![image(Some(1)), image(None), image(Some(0))])
            .expect("distinct");
        let cards: Vec<_> = sorted.iter().map(|m| m.card).collect();
        assert_eq!(cards, [None, Some(0), Some(1)]);
        assert!(TemplateMedia::normalize(vec![image(Some(1)), image(Some(1))]).is_err());
    }
}
