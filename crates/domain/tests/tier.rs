//! The portfolio messaging limit: unique recipients of business-initiated messages outside an
//! open window, over a rolling 24 h, shared by every number of the portfolio.

use wagate_domain::decide::{self, SendDecision, SendMessage};
use wagate_domain::Recipient;
use wagate_domain::{
    ContactState, Event, MessagingLimit, PortfolioEvent, RuleId, SendContent, Timestamp,
};

use crate::support::*;

/// A fixture per contact sharing one portfolio: the tier is a portfolio-wide count.
struct Hub {
    fx: Fx,
    contacts: Vec<(String, ContactState)>,
}

impl Hub {
    fn new(limit: u32, numbers: &[&str]) -> Self {
        let mut fx = Fx::ready();
        fx.set_limit(MessagingLimit::Limited(limit), t0() - hours(48));
        let receipt = fx.contact.clone();
        let contacts = numbers
            .iter()
            .map(|n| ((*n).to_owned(), receipt.clone()))
            .collect();
        Self { fx, contacts }
    }

    /// Sends the template to contact `i`; returns the decision's events or the refused rule.
    fn send(&mut self, i: usize, now: Timestamp) -> Result<Vec<Event>, RuleId> {
        let (to, contact) = self.contacts[i].clone();
        self.fx.contact = contact;
        let message_id = self.fx.next_message_id();
        let command = SendMessage {
            message_id,
            sender: self.fx.sender_address.clone(),
            to: Recipient::parse(&to),
            workflow: Some(WORKFLOW.into()),
            content: SendContent::Template {
                media: Vec::new(),
                template: self.fx.template_id.clone(),
                variables: vars(&[("1", "Lea")]),
            },
        };
        match decide::send(&self.fx.state(), &command, &self.fx.policy, now) {
            SendDecision::Allowed { events } => {
                self.fx.apply(&events);
                Ok(events)
            }
            SendDecision::Refused { refusal, .. } => Err(refusal.rule),
        }
    }

    fn reaches(events: &[Event]) -> usize {
        events
            .iter()
            .filter(|e| matches!(e, Event::Portfolio(PortfolioEvent::RecipientReached { .. })))
            .count()
    }
}

#[test]
fn unique_recipients_are_counted_over_a_rolling_24_h() {
    let mut hub = Hub::new(2, &["+41790000001", "+41790000002", "+41790000003"]);
    let first = hub.send(0, t0()).expect("first recipient");
    assert_eq!(type_names(&first), ["TemplateSent", "RecipientReached"]);
    hub.send(1, t0() + hours(1)).expect("second recipient");
    assert_eq!(hub.send(2, t0() + hours(2)), Err(RuleId::TierLimit));
    // A recipient already reached is not a new one.
    let again = hub.send(0, t0() + hours(3)).expect("same recipient");
    assert_eq!(Hub::reaches(&again), 1);
    assert_eq!(
        hub.fx.portfolio.recipients_within_period(t0() + hours(3)),
        2
    );
    // 1 ms before the first reach leaves the period, still full; at exactly 24 h it has left.
    // (Contact 0 was reached again at +3 h, so contact 1's reach at +1 h is the one to expire.)
    assert_eq!(
        hub.send(2, t0() + hours(25) - ms(1)),
        Err(RuleId::TierLimit)
    );
    hub.send(2, t0() + hours(25))
        .expect("contact 1 left the period");
}

#[test]
fn sends_inside_an_open_window_do_not_count() {
    let mut hub = Hub::new(1, &["+41790000001", "+41790000002", "+41790000003"]);
    // Contact 0 wrote to us: a template inside the window is allowed and not counted.
    let command_contact = hub.contacts[0].1.clone();
    hub.fx.contact = command_contact;
    hub.fx.inbound("text", "hi", t0());
    hub.contacts[0].1 = hub.fx.contact.clone();
    let events = hub.send(0, t0() + hours(1)).expect("inside the window");
    assert_eq!(Hub::reaches(&events), 0);
    hub.send(1, t0() + hours(1))
        .expect("first counted recipient");
    assert_eq!(hub.send(2, t0() + hours(1)), Err(RuleId::TierLimit));
    // Even with the portfolio full, the open window still lets contact 0 through.
    let events = hub.send(0, t0() + hours(2)).expect("window still open");
    assert_eq!(Hub::reaches(&events), 0);
    // Once contact 0's window closes (less the margin), it counts and the limit applies.
    assert_eq!(
        hub.send(0, t0() + hours(24) - mins(10)),
        Err(RuleId::TierLimit)
    );
}

#[test]
fn freeform_replies_never_count() {
    let mut fx = Fx::ready();
    fx.set_limit(MessagingLimit::Limited(0), t0() - hours(1));
    fx.inbound("text", "hi", t0());
    let command = fx.freeform_send();
    let events = fx.send(&command, t0() + hours(1)).expect("reply");
    assert_eq!(type_names(&events), ["ReplySent"]);
}

#[test]
fn the_limit_is_configuration_and_can_be_unlimited() {
    let mut hub = Hub::new(1, &["+41790000001", "+41790000002"]);
    hub.send(0, t0()).expect("first");
    assert_eq!(hub.send(1, t0()), Err(RuleId::TierLimit));
    hub.fx.set_limit(MessagingLimit::Unlimited, t0());
    let events = hub.send(1, t0()).expect("unlimited");
    assert_eq!(Hub::reaches(&events), 1, "still counted");

    // Without a limit event, the policy default applies (250 for a new portfolio).
    let fx = Fx::ready();
    assert_eq!(fx.portfolio.limit, None);
    assert_eq!(
        fx.policy.default_messaging_limit,
        MessagingLimit::Limited(250)
    );
}

#[test]
fn a_claim_more_than_24_h_after_the_decision_counts_again() {
    let mut fx = Fx::ready();
    let command = fx.default_template_send();
    let message = fx.allowed(&command, t0());
    match fx.claim(&message, t0() + hours(1)) {
        decide::ClaimDecision::Claimed { events, .. } => {
            assert_eq!(type_names(&events), ["DispatchClaimed"], "already counted")
        }
        other => panic!("{other:?}"),
    }
    let mut fx = Fx::ready();
    let command = fx.default_template_send();
    let message = fx.allowed(&command, t0());
    match fx.claim(&message, t0() + hours(24)) {
        decide::ClaimDecision::Claimed { events, .. } => {
            assert_eq!(type_names(&events), ["DispatchClaimed", "RecipientReached"])
        }
        other => panic!("{other:?}"),
    }
}
