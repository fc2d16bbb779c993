use super::*;
use crate::decide::{self, CreateTemplate};
use crate::events::Event;
use crate::Timestamp;

fn now() -> Timestamp {
    "2026-05-01T10:00:00Z".parse().expect("timestamp")
}

fn text(body: &str) -> TemplateContent {
    TemplateContent {
        body: body.to_owned(),
        header: None,
        buttons: Vec::new(),
        cards: Vec::new(),
    }
}

fn reason(result: Result<(), CommandError>) -> String {
    match result {
        Err(CommandError::InvalidField { field, reason }) => format!("{field}: {reason}"),
        other => panic!("expected an invalid field, got {other:?}"),
    }
}

fn card(format: HeaderFormat, buttons: &[ButtonKind]) -> TemplateCard {
    TemplateCard {
        header: TemplateHeader {
            format,
            value: "https://cdn.example.com/p/1.jpg".into(),
        },
        body: "Flat in {{1}}, three rooms.".into(),
        buttons: buttons
            .iter()
            .map(|kind| TemplateButton {
                kind: *kind,
                text: "Details".into(),
                value: match kind {
                    ButtonKind::Url => "https://example.com/p/1".into(),
                    ButtonKind::PhoneNumber => "+4930123456".into(),
                    ButtonKind::QuickReply => String::new(),
                },
            })
            .collect(),
    }
}

#[test]
fn a_plain_body_with_numbered_placeholders_passes() {
    validate(&text("Hello {{1}}, your viewing is on {{2}}.")).expect("valid");
    assert_eq!(
        placeholders(&text("Hello {{1}}, your viewing is on {{2}}.")),
        ["1", "2"]
    );
}

#[test]
fn a_placeholder_at_the_very_start_or_end_is_refused() {
    assert!(reason(validate(&text("{{1}}, your viewing is today."))).contains("begin"));
    assert!(reason(validate(&text("Your viewing is on {{1}}"))).contains("end with"));
    assert!(reason(validate(&text("  {{1}} is ready. "))).contains("begin"));
}

#[test]
fn text_limits_are_whatsapps() {
    let long = format!("Hello {}.", "a".repeat(BODY_MAX));
    assert!(reason(validate(&text(&long))).contains("1024"));
    assert!(reason(validate(&text("   "))).contains("empty"));
    let mut header = text("Hello {{1}}.");
    header.header = Some(TemplateHeader {
        format: HeaderFormat::Text,
        value: "x".repeat(HEADER_TEXT_MAX + 1),
    });
    assert!(reason(validate(&header)).starts_with("header"));
}

#[test]
fn placeholders_run_without_a_gap_and_are_well_formed() {
    assert!(reason(validate(&text("Hello {{1}} and {{3}}."))).contains("without a gap"));
    assert!(reason(validate(&text("Hello {{1 and more."))).contains("closing"));
    assert!(reason(validate(&text("Hello {{First}}."))).contains("lower-case"));
    assert!(reason(validate(&text("Hello {{1}} {{name}}."))).contains("mixes"));
}

#[test]
fn media_headers_need_https_and_buttons_follow_the_limits() {
    let mut content = text("Hello {{1}}.");
    content.header = Some(TemplateHeader {
        format: HeaderFormat::Image,
        value: "http://cdn.example.com/a.jpg".into(),
    });
    assert!(reason(validate(&content)).contains("https"));
    content.header = Some(TemplateHeader {
        format: HeaderFormat::Image,
        value: "https://cdn.example.com/a.jpg".into(),
    });
    validate(&content).expect("https image header");
    content.buttons = card(
        HeaderFormat::Image,
        &[ButtonKind::PhoneNumber, ButtonKind::PhoneNumber],
    )
    .buttons;
    assert!(reason(validate(&content)).contains("phone-number"));
    content.buttons = vec![TemplateButton {
        kind: ButtonKind::QuickReply,
        text: "x".repeat(BUTTON_TEXT_MAX + 1),
        value: String::new(),
    }];
    assert!(reason(validate(&content)).contains("button"));
}

#[test]
fn a_carousel_has_two_to_ten_consistent_cards() {
    let mut content = text("New listings for you, {{1}}.");
    content.cards = vec![card(HeaderFormat::Image, &[ButtonKind::Url])];
    assert!(reason(validate(&content)).contains("2 to 10"));
    content.cards = vec![card(HeaderFormat::Image, &[ButtonKind::Url]); 11];
    assert!(reason(validate(&content)).contains("2 to 10"));
    content.cards = vec![card(HeaderFormat::Image, &[ButtonKind::Url]); 3];
    validate(&content).expect("three alike cards");
    content.cards[2] = card(HeaderFormat::Video, &[ButtonKind::Url]);
    assert!(reason(validate(&content)).contains("card 3 differs"));
    content.cards[2] = card(HeaderFormat::Image, &[ButtonKind::QuickReply]);
    assert!(reason(validate(&content)).contains("card 3 differs"));
    content.cards[2] = card(HeaderFormat::Document, &[ButtonKind::Url]);
    assert!(reason(validate(&content)).contains("image or a video"));
    content.cards = vec![card(HeaderFormat::Image, &[ButtonKind::Url]); 2];
    content.buttons = card(HeaderFormat::Image, &[ButtonKind::QuickReply]).buttons;
    assert!(reason(validate(&content)).contains("belong to the cards"));
}

fn created(status: ApprovalStatus) -> TemplateState {
    let command = CreateTemplate {
        template: TemplateId::meta("listing_update", "de").expect("id"),
        provider: ProviderKind::Meta,
        provider_ref: "572279198452421".into(),
        name: "listing_update".into(),
        language: "de".into(),
        category: crate::events::TemplateCategory::Marketing,
        content: text("Hallo {{1}}, neues Objekt."),
        status,
        reason: String::new(),
    };
    let events = decide::create_template(&TemplateState::default(), &command, now()).expect("ok");
    apply_all(TemplateState::default(), &events)
}

fn apply_all(mut state: TemplateState, events: &[Event]) -> TemplateState {
    for event in events {
        let Event::Template(event) = event else {
            panic!("not a template event: {event:?}");
        };
        state = state.apply(event);
    }
    state
}

#[test]
fn creation_records_the_definition_and_the_providers_answer() {
    let state = created(ApprovalStatus::Pending);
    assert_eq!(state.approval, Some(ApprovalStatus::Pending));
    assert_eq!(state.source, Some(StatusSource::Provider));
    assert_eq!(
        state.definition.as_ref().expect("definition").placeholders,
        ["1"]
    );
    assert!(!state.is_approved());
    let again = CreateTemplate {
        template: state.id.clone().expect("id"),
        provider: ProviderKind::Meta,
        provider_ref: "1".into(),
        name: "listing_update".into(),
        language: "de".into(),
        category: crate::events::TemplateCategory::Marketing,
        content: text("Hallo {{1}}, neues Objekt."),
        status: ApprovalStatus::Pending,
        reason: String::new(),
    };
    assert!(matches!(
        decide::create_template(&state, &again, now()),
        Err(CommandError::Conflict { .. })
    ));
}

#[test]
fn a_template_the_sync_imported_meanwhile_gets_its_definition() {
    let id = TemplateId::meta("listing_update", "de").expect("id");
    let imported = decide::register_template(
        &TemplateState::default(),
        &decide::RegisterTemplate {
            template: id.clone(),
            name: "listing_update".into(),
            language: "de".into(),
            category: crate::events::TemplateCategory::Marketing,
            placeholders: Vec::new(),
        },
        now(),
    )
    .expect("registered");
    let state = apply_all(TemplateState::default(), &imported);
    let command = CreateTemplate {
        template: id,
        provider: ProviderKind::Meta,
        provider_ref: "1".into(),
        name: "listing_update".into(),
        language: "de".into(),
        category: crate::events::TemplateCategory::Marketing,
        content: text("Hallo {{1}}, neues Objekt."),
        status: ApprovalStatus::Pending,
        reason: String::new(),
    };
    let events = decide::create_template(&state, &command, now()).expect("created");
    let state = apply_all(state, &events);
    assert!(state.created.is_some());
    assert_eq!(state.definition.expect("definition").placeholders, ["1"]);
}

#[test]
fn a_provider_status_is_appended_only_when_it_changed() {
    let state = created(ApprovalStatus::Pending);
    let id = state.id.clone().expect("id");
    assert!(
        decide::report_template_status(&state, &id, ApprovalStatus::Pending, "", now()).is_empty()
    );
    let events =
        decide::report_template_status(&state, &id, ApprovalStatus::Approved, "NONE", now());
    let state = apply_all(state, &events);
    assert!(state.is_approved());
    let events =
        decide::report_template_status(&state, &id, ApprovalStatus::Paused, "FIRST_PAUSE", now());
    let state = apply_all(state, &events);
    assert_eq!(state.approval, Some(ApprovalStatus::Paused));
    assert_eq!(state.reason, "FIRST_PAUSE");
}

#[test]
fn an_operator_cannot_approve_what_the_provider_refused() {
    for refused in [
        ApprovalStatus::Rejected,
        ApprovalStatus::Paused,
        ApprovalStatus::Disabled,
    ] {
        let state = created(refused);
        let id = state.id.clone().expect("id");
        match decide::set_template_status(&state, &id, ApprovalStatus::Approved, "", now()) {
            Err(CommandError::Conflict { reason }) => {
                assert!(reason.contains(refused.as_str()), "{reason}");
            }
            other => panic!("expected a conflict, got {other:?}"),
        }
        // Anything but approved is still the operator's to record (e.g. disabling it here).
        decide::set_template_status(&state, &id, ApprovalStatus::Disabled, "", now())
            .expect("operator may pause or disable");
    }
    let state = created(ApprovalStatus::Pending);
    let id = state.id.clone().expect("id");
    let events = decide::set_template_status(&state, &id, ApprovalStatus::Approved, "", now())
        .expect("pending may be approved by an operator");
    let state = apply_all(state, &events);
    assert_eq!(state.source, Some(StatusSource::Operator));
}

#[test]
fn a_meta_template_is_its_name_and_language() {
    let en = TemplateId::meta("listing_update", "en-US").expect("id");
    let de = TemplateId::parse("listing_update@de").expect("id");
    assert_eq!(en.as_str(), "listing_update@en_US");
    assert_ne!(en, de);
    assert_eq!(de.meta_name(), "listing_update");
    assert_eq!(de.meta_language(), Some("de"));
    assert!(TemplateId::parse("Listing@de").is_err());
    assert!(TemplateId::parse("listing@d e").is_err());
}
