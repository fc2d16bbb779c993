//! A send of a created template checked against its definition: the media a send carries must
//! be exactly what the template's header and carousel cards take, or the provider refuses the
//! message after it was recorded as allowed (Meta 132012, Twilio 63028) or sends a template
//! without its picture.

use crate::decide::CommandError;
use crate::rich::{MediaKind, TemplateMedia};
use crate::template::{HeaderFormat, TemplateContent};

fn media_kind(format: HeaderFormat) -> Option<MediaKind> {
    match format {
        HeaderFormat::Text => None,
        HeaderFormat::Image => Some(MediaKind::Image),
        HeaderFormat::Video => Some(MediaKind::Video),
        HeaderFormat::Document => Some(MediaKind::Document),
    }
}

fn invalid(field: &'static str, reason: String) -> CommandError {
    CommandError::InvalidField { field, reason }
}

/// `Ok` when `media` (normalized: at most one per slot) fills exactly the template's media
/// header and one header per carousel card, each of the kind the template declares; otherwise
/// the field that is wrong and why.
pub fn check_send_media(
    content: &TemplateContent,
    media: &[TemplateMedia],
) -> Result<(), CommandError> {
    let header = content
        .header
        .as_ref()
        .and_then(|header| media_kind(header.format));
    let given = media.iter().find(|m| m.card.is_none());
    match (header, given) {
        (Some(kind), None) => {
            return Err(invalid(
                "template.media",
                format!(
                    "the template has a {} header: give its media (no card)",
                    kind.as_str()
                ),
            ))
        }
        (None, Some(_)) => {
            return Err(invalid(
                "template.media",
                "the template has no media header: give no media without a card".into(),
            ))
        }
        (Some(kind), Some(m)) if m.kind != kind => {
            return Err(invalid(
                "template.media.type",
                format!(
                    "the template's header is {}, not {}",
                    kind.as_str(),
                    m.kind.as_str()
                ),
            ))
        }
        _ => {}
    }
    let cards = content.cards.len();
    let card_media: Vec<&TemplateMedia> = media.iter().filter(|m| m.card.is_some()).collect();
    if let Some(extra) = card_media
        .iter()
        .find(|m| m.card.is_some_and(|card| usize::from(card) >= cards))
    {
        return Err(invalid(
            "template.media.card",
            format!(
                "card {} does not exist: the template has {cards} cards",
                extra.card.unwrap_or_default()
            ),
        ));
    }
    for (index, card) in content.cards.iter().enumerate() {
        let Some(kind) = media_kind(card.header.format) else {
            continue;
        };
        match card_media
            .iter()
            .find(|m| m.card.map(usize::from) == Some(index))
        {
            None => {
                return Err(invalid(
                    "template.media.card",
                    format!(
                        "the template has {cards} cards: give the {} of card {index}",
                        kind.as_str()
                    ),
                ))
            }
            Some(m) if m.kind != kind => {
                return Err(invalid(
                    "template.media.type",
                    format!(
                        "card {index}'s header is {}, not {}",
                        kind.as_str(),
                        m.kind.as_str()
                    ),
                ))
            }
            Some(_) => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::template::{TemplateCard, TemplateHeader};

    fn header(format: HeaderFormat) -> TemplateHeader {
        TemplateHeader {
            format,
            value: "https://example.com/h.jpg".into(),
        }
    }

    fn media(card: Option<u8>, kind: MediaKind) -> TemplateMedia {
        let url = match kind {
            MediaKind::Image => "https://example.com/a.jpg",
            MediaKind::Video => "https://example.com/a.mp4",
            MediaKind::Document => "https://example.com/a.pdf",
        };
        TemplateMedia::new(card, kind, url).expect("valid")
    }

    fn field(result: Result<(), CommandError>) -> &'static str {
        match result {
            Err(CommandError::InvalidField { field, .. }) => field,
            other => panic!("expected an invalid field, got {other:?}"),
        }
    }

    #[test]
    fn a_media_header_needs_its_media_of_its_kind_and_only_it() {
        let content = TemplateContent {
            body: "Hi {{1}}".into(),
            header: Some(header(HeaderFormat::Image)),
            buttons: Vec::new(),
            cards: Vec::new(),
        };
        assert!(check_send_media(&content, &[media(None, MediaKind::Image)]).is_ok());
        assert_eq!(field(check_send_media(&content, &[])), "template.media");
        assert_eq!(
            field(check_send_media(&content, &[media(None, MediaKind::Video)])),
            "template.media.type"
        );
        assert_eq!(
            field(check_send_media(
                &content,
                &[
                    media(None, MediaKind::Image),
                    media(Some(0), MediaKind::Image)
                ]
            )),
            "template.media.card"
        );
        let plain = TemplateContent {
            header: None,
            ..content
        };
        assert!(check_send_media(&plain, &[]).is_ok());
        assert_eq!(
            field(check_send_media(&plain, &[media(None, MediaKind::Image)])),
            "template.media"
        );
    }

    #[test]
    fn a_carousel_needs_one_header_per_card() {
        let card = TemplateCard {
            header: header(HeaderFormat::Image),
            body: "Flat".into(),
            buttons: Vec::new(),
        };
        let content = TemplateContent {
            body: "Listings".into(),
            header: None,
            buttons: Vec::new(),
            cards: vec![card.clone(), card],
        };
        let both = [
            media(Some(0), MediaKind::Image),
            media(Some(1), MediaKind::Image),
        ];
        assert!(check_send_media(&content, &both).is_ok());
        assert_eq!(
            field(check_send_media(&content, &both[..1])),
            "template.media.card"
        );
        let three = [
            media(Some(0), MediaKind::Image),
            media(Some(1), MediaKind::Image),
            media(Some(2), MediaKind::Image),
        ];
        assert_eq!(
            field(check_send_media(&content, &three)),
            "template.media.card"
        );
        let wrong = [
            media(Some(0), MediaKind::Image),
            media(Some(1), MediaKind::Video),
        ];
        assert_eq!(
            field(check_send_media(&content, &wrong)),
            "template.media.type"
        );
    }
}
