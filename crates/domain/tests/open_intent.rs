//! The dispatcher's work list entry (`OpenIntent`): the entry an intent event announces is the
//! one its message's state gives; a claim keeps it open; no intent, no entry.

use wagate_domain::open_intent::{OpenIntent, INTENT_EVENT_TYPES};
use wagate_domain::{DispatchPhase, Event, MessageState};

use crate::support::*;

#[test]
fn an_intent_announces_the_entry_its_state_gives_and_a_claim_keeps_it_open() {
    let mut fx = Fx::ready();
    let template = fx.default_template_send();
    // A freeform reply needs the customer-service window: open it with an inbound message.
    fx.inbound("text", "hello", t0());
    let freeform = fx.freeform_send();
    for command in [template, freeform] {
        let events = fx.send(&command, t0()).expect("allowed");
        let state = message_state(&events);
        let intents: Vec<(&Event, OpenIntent)> = events
            .iter()
            .filter_map(|event| match event {
                Event::Message(message_event) => {
                    OpenIntent::announced(message_event, 42).map(|intent| (event, intent))
                }
                _ => None,
            })
            .collect();
        let [(event, announced)] = intents.as_slice() else {
            panic!("one intent event expected in {events:?}");
        };
        assert!(INTENT_EVENT_TYPES.contains(&event.type_name()));
        assert_eq!(
            Some(announced.clone()),
            OpenIntent::of(command.message_id, &state, 42)
        );
        assert_eq!(announced.recipient, contact_id(TO));

        let claimed = fold_message(
            state.clone(),
            &match fx.claim(&state, t0()) {
                wagate_domain::decide::ClaimDecision::Claimed { events, .. } => events,
                other => panic!("expected a claim, got {other:?}"),
            },
        );
        let entry = OpenIntent::of(command.message_id, &claimed, 42).expect("still open");
        assert!(matches!(
            entry.phase,
            DispatchPhase::Claimed { attempt: 1, .. }
        ));
    }
    assert_eq!(
        OpenIntent::of(message_id(99), &MessageState::default(), 1),
        None,
        "no intent, nothing to dispatch"
    );
}
