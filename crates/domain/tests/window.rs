//! The 24 h window and its safety margin.

use chrono::TimeDelta;
use wagate_domain::decide::{self, RecordOutcome};
use wagate_domain::decide::{DispatchOutcome, ReceiveInbound};
use wagate_domain::{ContactEvent, ProviderError, ProviderKind, RuleId};

use crate::support::*;

#[test]
fn the_window_closes_ten_minutes_early_by_default() {
    let mut fx = Fx::ready();
    assert_eq!(fx.policy.window_safety_margin, mins(10));
    fx.inbound("text", "Hi", t0());
    let edge = t0() + hours(24) - mins(10);

    let command = fx.freeform_send();
    assert!(
        fx.send(&command, edge - ms(1)).is_ok(),
        "1 ms before the edge"
    );
    let command = fx.freeform_send();
    check_refusal(
        &fx.send(&command, edge),
        RuleId::WindowClosed,
        "is closed",
        &[],
    );
    let command = fx.freeform_send();
    check_refusal(
        &fx.send(&command, t0() + hours(24) - ms(1)),
        RuleId::WindowClosed,
        "is closed",
        &[],
    );
}

#[test]
fn the_margin_is_configurable() {
    let mut fx = Fx::ready();
    fx.policy.window_safety_margin = TimeDelta::zero();
    fx.inbound("text", "Hi", t0());
    let command = fx.freeform_send();
    assert!(fx.send(&command, t0() + hours(24) - ms(1)).is_ok());
    let command = fx.freeform_send();
    check_refusal(
        &fx.send(&command, t0() + hours(24)),
        RuleId::WindowClosed,
        "is closed",
        &[],
    );

    let mut fx = Fx::ready();
    fx.policy.window_safety_margin = hours(1);
    fx.inbound("text", "Hi", t0());
    let command = fx.freeform_send();
    check_refusal(
        &fx.send(&command, t0() + hours(23)),
        RuleId::WindowClosed,
        "is closed",
        &[],
    );
}

#[test]
fn every_inbound_renews_the_window_and_late_events_do_not_shorten_it() {
    let mut fx = Fx::ready();
    fx.inbound("text", "Hi", t0());
    fx.inbound("text", "Still there?", t0() + hours(20));
    let command = fx.freeform_send();
    assert!(fx.send(&command, t0() + hours(30)).is_ok());
    // An inbound recorded late with an older timestamp does not move the window back.
    fx.inbound("text", "(delayed)", t0() + hours(1));
    assert_eq!(fx.contact.last_inbound_at, Some(t0() + hours(20)));
    let command = fx.freeform_send();
    assert!(fx.send(&command, t0() + hours(30)).is_ok());
}

#[test]
fn window_reported_closed_closes_it_until_the_next_inbound() {
    let mut fx = Fx::ready();
    fx.inbound("text", "Hi", t0());
    let command = fx.freeform_send();
    let message = fx.allowed(&command, t0() + hours(1));
    let claimed = fx.claim(&message, t0() + hours(1));
    let message = match claimed {
        decide::ClaimDecision::Claimed { events, .. } => fold_message(message, &events),
        other => panic!("{other:?}"),
    };
    // The provider's clock disagrees: 63016.
    let outcome = RecordOutcome {
        message_id: command.message_id,
        attempt: 1,
        outcome: DispatchOutcome::Rejected {
            error: ProviderError {
                provider: ProviderKind::Twilio,
                code: Some(63016),
                http_status: Some(400),
                message: "outside the allowed window".into(),
            },
        },
        jitter: TimeDelta::zero(),
    };
    let events = decide::record_outcome(&message, &outcome, &[], &fx.policy, t0() + hours(2))
        .expect("open claim");
    assert_eq!(
        type_names(&events),
        ["DispatchFailed", "WindowReportedClosed"]
    );
    fx.apply(&events);
    assert!(matches!(
        contact_events(&events)[..],
        [ContactEvent::WindowReportedClosed { code: 63016, .. }]
    ));
    assert_eq!(fx.contact.window_open_until(mins(10)), None);

    // Hours before our own 24 h would end, freeform is refused.
    let command = fx.freeform_send();
    check_refusal(
        &fx.send(&command, t0() + hours(3)),
        RuleId::WindowClosed,
        "is closed",
        &[],
    );
    // The next inbound opens it again, for a full 24 h from then.
    let next = ReceiveInbound {
        details: Vec::new(),
        contact: fx.contact_id.clone(),
        sender: Some(fx.sender_address.clone()),
        provider_ref: None,
        kind: "text".into(),
        text: "hello?".into(),
        provider_at: None,
    };
    let events =
        decide::inbound(&fx.contact, &next, &fx.policy, t0() + hours(4)).expect("valid inbound");
    fx.apply(&events);
    let command = fx.freeform_send();
    assert!(fx
        .send(&command, t0() + hours(4) + hours(24) - mins(10) - ms(1))
        .is_ok());
}

#[test]
fn an_inbound_in_the_same_millisecond_as_the_report_reopens_the_window() {
    // Log order decides: report then inbound (same instant) → open; inbound then report → closed.
    let report = |fx: &mut Fx| {
        fx.apply(&[ContactEvent::WindowReportedClosed {
            contact: fx.contact_id.clone(),
            sender: Some(fx.sender_address.clone()),
            code: 63016,
            at: t0() + hours(1),
        }
        .into()])
    };
    let mut fx = Fx::ready();
    fx.inbound("text", "Hi", t0());
    report(&mut fx);
    fx.inbound("text", "Still there?", t0() + hours(1));
    let command = fx.freeform_send();
    assert!(fx.send(&command, t0() + hours(1)).is_ok());

    let mut fx = Fx::ready();
    fx.inbound("text", "Hi", t0() + hours(1));
    report(&mut fx);
    let command = fx.freeform_send();
    check_refusal(
        &fx.send(&command, t0() + hours(1)),
        RuleId::WindowClosed,
        "is closed",
        &[],
    );
}

/// Media and quick-reply buttons are freeform: refused with the window closed, allowed while it
/// is open, and the intent keeps the content.
#[test]
fn rich_content_is_gated_like_freeform_text() {
    use wagate_domain::{
        Event, MediaKind, MessageContent, MessageEvent, ReplyButton, RichReply, SendContent,
    };
    let media = RichReply::media(
        MediaKind::Image,
        "https://cdn.example.com/listings/42/living.jpg",
        "Living room".into(),
    )
    .expect("valid");
    let buttons = RichReply::buttons(
        "Visit on Thursday?".into(),
        vec![ReplyButton {
            id: "yes".into(),
            title: "Yes".into(),
        }],
    )
    .expect("valid");
    for rich in [media, buttons] {
        let mut fx = Fx::ready();
        let mut command = fx.freeform_send();
        command.content = SendContent::Rich(rich.clone());
        check_refusal(&fx.send(&command, t0()), RuleId::WindowClosed, "", &[]);

        fx.inbound("text", "Hi", t0());
        let mut command = fx.freeform_send();
        command.content = SendContent::Rich(rich.clone());
        let events = fx.send(&command, t0() + mins(1)).expect("allowed");
        let Event::Message(MessageEvent::ReplySent {
            rich: Some(sent),
            text,
            ..
        }) = &events[0]
        else {
            panic!("{events:?}");
        };
        assert_eq!(sent, &rich);
        assert_eq!(text, rich.text());
        let state = message_state(&events);
        assert_eq!(
            state.intent.expect("intent").content,
            MessageContent::Rich(rich)
        );
    }
}
