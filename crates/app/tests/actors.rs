//! Who asked: every event a command appends records the actor of the hub handle it went through.

use wagate_app::Hub;
use wagate_domain::{Actor, Role};

use crate::support::*;

fn actors(hub: &Hub) -> Vec<(String, Option<Actor>)> {
    hub.events_after(0, usize::MAX)
        .expect("read log")
        .into_iter()
        .map(|logged| (logged.event.type_name().to_owned(), logged.actor))
        .collect()
}

#[tokio::test]
async fn each_event_records_the_actor_of_the_handle_that_appended_it() {
    let t = hub();
    let operator = Actor::token(Role::Operator, "ops-alice");
    let agent = Actor::token(Role::Agent, "outreach-bot");
    ready(&t.hub.acting(operator.clone())).await;
    opt_in(&t.hub.acting(operator.clone()), &contact()).await;
    let accepted = t
        .hub
        .acting(agent.clone())
        .send(template_request(CONTACT), no_options())
        .await
        .expect("send");
    t.hub
        .acting(Actor::InProcessDispatcher)
        .claim(accepted.message_id)
        .await
        .expect("claim");

    let recorded = actors(&t.hub);
    let of = |kind: &str| {
        recorded
            .iter()
            .filter(|(name, _)| name == kind)
            .map(|(_, actor)| actor.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(of("OptedIn"), vec![Some(operator.clone())]);
    assert_eq!(of("TemplateSent"), vec![Some(agent)]);
    assert_eq!(
        of("DispatchClaimed"),
        vec![Some(Actor::InProcessDispatcher)]
    );
    // The setup (sender, template, approval) was all the operator's.
    assert!(recorded
        .iter()
        .filter(|(name, _)| name.starts_with("Sender") || name.starts_with("Template"))
        .filter(|(name, _)| name != "TemplateSent")
        .all(|(_, actor)| actor.as_ref() == Some(&operator)));
    // A handle with no actor records none; `acting` leaves the original handle unchanged.
    assert_eq!(t.hub.actor(), None);
}
