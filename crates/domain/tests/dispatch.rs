//! Claims, outcomes, retries, status callbacks and in-doubt expiry.

use chrono::TimeDelta;
use wagate_domain::decide::{
    self, ClaimDecision, ClaimDispatch, CommandError, DispatchOutcome, EarlyStatus, RecordOutcome,
    RecordStatus, StatusCallback, StatusDecision,
};
use wagate_domain::{
    ContactEvent, ContactFlag, DispatchPhase, Event, MessageEvent, MessageState, MessageStatus,
    OptOutSource, ProviderError, ProviderKind, ProviderMessageRef, Retry, RuleId, SenderEvent,
};

use crate::support::*;

const SID: &str = "SM0123456789abcdef0123456789abcdef";

fn sid() -> ProviderMessageRef {
    ProviderMessageRef::parse(SID).expect("valid sid")
}

/// A template message allowed at `t0()` and claimed at `t0()`.
fn claimed() -> (Fx, MessageState) {
    let mut fx = Fx::ready();
    let command = fx.default_template_send();
    let message = fx.allowed(&command, t0());
    let message = claim_ok(&mut fx, message, t0());
    (fx, message)
}

fn claim_ok(fx: &mut Fx, message: MessageState, now: wagate_domain::Timestamp) -> MessageState {
    match fx.claim(&message, now) {
        ClaimDecision::Claimed { events, .. } => fold_message(message, &events),
        other => panic!("expected a claim, got {other:?}"),
    }
}

fn try_claim(
    fx: &Fx,
    message: &MessageState,
    now: wagate_domain::Timestamp,
) -> Result<ClaimDecision, CommandError> {
    decide::claim(
        message,
        &fx.state(),
        &ClaimDispatch {
            message_id: message.id.expect("id"),
        },
        &fx.policy,
        now,
    )
}

#[track_caller]
fn not_claimable(result: Result<ClaimDecision, CommandError>, fragment: &str) {
    match result {
        Err(CommandError::NotClaimable { reason, .. }) => {
            assert!(reason.contains(fragment), "{reason:?} lacks {fragment:?}")
        }
        other => panic!("expected NotClaimable({fragment}), got {other:?}"),
    }
}

fn rejected(provider: ProviderKind, code: u32) -> DispatchOutcome {
    DispatchOutcome::Rejected {
        error: ProviderError {
            provider,
            code: Some(code),
            http_status: Some(400),
            message: format!("error {code}"),
        },
    }
}

fn outcome(
    fx: &mut Fx,
    message: &MessageState,
    outcome: DispatchOutcome,
    jitter: TimeDelta,
    now: wagate_domain::Timestamp,
) -> (Vec<Event>, MessageState) {
    let command = RecordOutcome {
        message_id: message.id.expect("id"),
        attempt: message.attempts,
        outcome,
        jitter,
    };
    let events =
        decide::record_outcome(message, &command, &[], &fx.policy, now).expect("outcome recorded");
    fx.apply(&events);
    let after = fold_message(message.clone(), &events);
    (events, after)
}

fn status(
    message: &MessageState,
    status: &str,
    error_code: Option<u32>,
    now: wagate_domain::Timestamp,
) -> (Vec<Event>, MessageState) {
    let command = RecordStatus {
        details: Vec::new(),
        message_id: message.id.expect("id"),
        provider: ProviderKind::Twilio,
        provider_ref: Some(sid()),
        status: MessageStatus::parse(status),
        error_code,
        pricing: None,
    };
    let events = decide::record_status(message, &command, now);
    let after = fold_message(message.clone(), &events);
    (events, after)
}

#[test]
fn a_claim_records_the_attempt_and_moves_to_sending() {
    let (_, message) = claimed();
    assert_eq!(message.attempts, 1);
    assert_eq!(message.status, MessageStatus::Sending);
    assert_eq!(
        message.phase(),
        DispatchPhase::Claimed {
            attempt: 1,
            since: t0()
        }
    );
}

#[test]
fn a_double_claim_is_refused() {
    let (fx, message) = claimed();
    not_claimable(
        try_claim(&fx, &message, t0()),
        "attempt 1 has no outcome yet",
    );
    not_claimable(
        try_claim(&fx, &message, t0() + hours(1)),
        "attempt 1 has no outcome yet",
    );
}

#[test]
fn a_refused_or_unknown_message_cannot_be_claimed() {
    let mut fx = Fx::ready();
    fx.sender = Default::default();
    let command = fx.default_template_send();
    let decision = decide::send(&fx.state(), &command, &fx.policy, t0());
    let refusal = decision.refusal().expect("refused").clone();
    let message = message_state(decision.events());
    assert_eq!(message.refused.as_ref().map(|r| r.0), Some(refusal.rule));
    not_claimable(try_claim(&fx, &message, t0()), "never allowed");
}

#[test]
fn retries_back_off_one_two_four_seconds_plus_jitter_then_fail() {
    let (mut fx, mut message) = claimed();
    let jitter = ms(250);
    let mut now = t0();
    for (attempt, delay) in [(1, secs(1)), (2, secs(2)), (3, secs(4))] {
        let (events, after) = outcome(
            &mut fx,
            &message,
            rejected(ProviderKind::Twilio, 63012),
            jitter,
            now,
        );
        let due = now + delay + jitter;
        match &events[..] {
            [Event::Message(MessageEvent::DispatchFailed {
                attempt: a,
                retry,
                retry_at,
                ..
            })] => {
                assert_eq!(
                    (*a, *retry, *retry_at),
                    (attempt, Retry::Retryable, Some(due))
                );
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            after.phase(),
            DispatchPhase::Pending {
                next_attempt: attempt + 1,
                not_before: Some(due)
            }
        );
        // Not due yet, 1 ms early.
        not_claimable(try_claim(&fx, &after, due - ms(1)), "its retry is due at");
        now = due;
        message = claim_ok(&mut fx, after, now);
        assert_eq!(message.attempts, attempt + 1);
    }
    // Attempt 4 of 4 fails: no more retries, even for a retryable error.
    let (events, after) = outcome(
        &mut fx,
        &message,
        rejected(ProviderKind::Twilio, 63018),
        jitter,
        now,
    );
    match &events[..] {
        [Event::Message(MessageEvent::DispatchFailed {
            attempt: 4,
            retry: Retry::Retryable,
            retry_at: None,
            ..
        })] => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(after.status, MessageStatus::Failed);
    assert_eq!(after.phase(), DispatchPhase::Done);
    not_claimable(try_claim(&fx, &after, now + hours(1)), "it is failed");
}

#[test]
fn attempts_are_capped_by_the_policy_at_claim_time() {
    let (mut fx, message) = claimed();
    let (_, message) = outcome(
        &mut fx,
        &message,
        DispatchOutcome::Transport {
            provider: ProviderKind::Twilio,
            message: "timeout".into(),
        },
        TimeDelta::zero(),
        t0(),
    );
    let message = claim_ok(&mut fx, message, t0() + secs(1));
    let (_, message) = outcome(
        &mut fx,
        &message,
        rejected(ProviderKind::Meta, 130429),
        TimeDelta::zero(),
        t0() + secs(1),
    );
    assert_eq!(message.retry_at, Some(t0() + secs(3)));
    // The operator lowered the cap to 2 attempts while the retry waited.
    fx.policy.dispatch_attempts_max = 2;
    not_claimable(
        try_claim(&fx, &message, t0() + secs(3)),
        "all 2 attempts are used",
    );
}

#[test]
fn http_and_transport_failures_without_codes() {
    for (outcome_kind, retryable) in [
        (
            DispatchOutcome::Rejected {
                error: ProviderError {
                    provider: ProviderKind::Twilio,
                    code: None,
                    http_status: Some(503),
                    message: "unavailable".into(),
                },
            },
            true,
        ),
        (
            DispatchOutcome::Rejected {
                error: ProviderError {
                    provider: ProviderKind::Twilio,
                    code: None,
                    http_status: Some(401),
                    message: "unauthorized".into(),
                },
            },
            false,
        ),
        (
            DispatchOutcome::Transport {
                provider: ProviderKind::Meta,
                message: "connection reset".into(),
            },
            true,
        ),
    ] {
        let (mut fx, message) = claimed();
        let (events, after) = outcome(&mut fx, &message, outcome_kind, TimeDelta::zero(), t0());
        assert_eq!(type_names(&events), ["DispatchFailed"]);
        assert_eq!(after.retry_at.is_some(), retryable, "{events:?}");
        assert_eq!(after.status == MessageStatus::Failed, !retryable);
    }
}

#[test]
fn permanent_errors_are_never_retried_and_carry_their_follow_ups() {
    let to = contact_id(TO);
    let cases: Vec<(ProviderKind, u32, Option<&str>)> = vec![
        (ProviderKind::Twilio, 63016, Some("WindowReportedClosed")),
        (ProviderKind::Meta, 131047, Some("WindowReportedClosed")),
        (ProviderKind::Twilio, 63003, Some("FlagRaised")),
        (ProviderKind::Twilio, 63024, Some("FlagRaised")),
        (ProviderKind::Meta, 131026, Some("FlagRaised")),
        (ProviderKind::Meta, 131050, Some("FlagRaised")),
        (ProviderKind::Twilio, 63007, Some("SenderSuspended")),
        (ProviderKind::Twilio, 63001, Some("SenderSuspended")),
        (ProviderKind::Twilio, 63014, Some("OptedOut")),
        (ProviderKind::Twilio, 63041, Some("TemplateApprovalChanged")),
        (ProviderKind::Twilio, 21656, None),
        (ProviderKind::Twilio, 21211, None),
        (ProviderKind::Twilio, 63032, None),
        (ProviderKind::Twilio, 63005, None),
    ];
    for (provider, code, follow_up) in cases {
        let (mut fx, message) = claimed();
        let (events, after) = outcome(
            &mut fx,
            &message,
            rejected(provider, code),
            secs(5),
            t0() + secs(1),
        );
        let mut expected = vec!["DispatchFailed"];
        expected.extend(follow_up);
        assert_eq!(type_names(&events), expected, "{code}");
        match &events[0] {
            Event::Message(MessageEvent::DispatchFailed {
                retry, retry_at, ..
            }) => assert_eq!((*retry, *retry_at), (Retry::Permanent, None), "{code}"),
            other => panic!("{other:?}"),
        }
        assert_eq!(after.status, MessageStatus::Failed, "{code}");
        assert_eq!(after.phase(), DispatchPhase::Done, "{code}");
        not_claimable(try_claim(&fx, &after, t0() + hours(1)), "it is failed");

        // What each follow-up means for the contact and the sender.
        match code {
            63003 | 63024 | 131026 => {
                assert!(matches!(
                    &contact_events(&events)[..],
                    [ContactEvent::FlagRaised { flag: ContactFlag::NotOnWhatsapp, contact, .. }] if *contact == to
                ));
                let command = fx.default_template_send();
                check_refusal(
                    &fx.send(&command, t0() + hours(1)),
                    RuleId::NotOnWhatsapp,
                    "not to be a WhatsApp user",
                    &[],
                );
            }
            131050 => assert!(matches!(
                &contact_events(&events)[..],
                [ContactEvent::FlagRaised {
                    flag: ContactFlag::MarketingPaused,
                    ..
                }]
            )),
            63007 | 63001 => {
                assert!(matches!(
                    &events[1],
                    Event::Sender(SenderEvent::Suspended { sender, reason, .. })
                        if *sender == fx.sender_address && reason.contains(&code.to_string())
                ));
                assert!(fx.contact.is_opted_in(), "the contact is not blamed");
                let command = fx.default_template_send();
                check_refusal(
                    &fx.send(&command, t0() + hours(1)),
                    RuleId::ChannelNotAuthorized,
                    "is suspended: twilio error",
                    &[],
                );
            }
            63014 => {
                assert!(matches!(
                    &contact_events(&events)[..],
                    [ContactEvent::OptedOut {
                        source: OptOutSource::ProviderReport,
                        ..
                    }]
                ));
                assert!(fx.contact.is_opted_out());
            }
            63016 | 131047 => assert!(matches!(
                &contact_events(&events)[..],
                [ContactEvent::WindowReportedClosed { code: c, .. }] if *c == code
            )),
            63041 => assert_eq!(
                fx.template.approval,
                Some(wagate_domain::ApprovalStatus::Paused)
            ),
            _ => {}
        }
    }
}

#[test]
fn an_outcome_must_match_the_open_claim() {
    let (mut fx, message) = claimed();
    let command = RecordOutcome {
        message_id: message.id.expect("id"),
        attempt: 2,
        outcome: rejected(ProviderKind::Twilio, 63012),
        jitter: TimeDelta::zero(),
    };
    assert!(decide::record_outcome(&message, &command, &[], &fx.policy, t0()).is_err());
    let (events, after) = outcome(
        &mut fx,
        &message,
        DispatchOutcome::Accepted {
            provider_ref: sid(),
            provider_status: MessageStatus::Queued,
            recipient: None,
        },
        TimeDelta::zero(),
        t0(),
    );
    assert_eq!(type_names(&events), ["DispatchSucceeded"]);
    assert_eq!(after.provider_ref, Some(sid()));
    assert_eq!(
        after.status,
        MessageStatus::Sending,
        "queued is behind sending"
    );
    assert_eq!(after.phase(), DispatchPhase::Done);
    // No outcome for an attempt that was never claimed.
    let again = RecordOutcome {
        message_id: message.id.expect("id"),
        attempt: 2,
        outcome: rejected(ProviderKind::Twilio, 63012),
        jitter: TimeDelta::zero(),
    };
    assert!(decide::record_outcome(&after, &again, &[], &fx.policy, t0()).is_err());
    // A second report of the recorded attempt (the dispatcher retrying its own report) appends
    // nothing: it must not turn a success into a failure or suspend the sender.
    let duplicate = RecordOutcome {
        message_id: message.id.expect("id"),
        attempt: 1,
        outcome: rejected(ProviderKind::Twilio, 63007),
        jitter: TimeDelta::zero(),
    };
    let error =
        decide::record_outcome(&after, &duplicate, &[], &fx.policy, t0()).expect_err("duplicate");
    assert!(error.to_string().contains("already recorded"), "{error}");
}

#[test]
fn a_stop_between_decision_and_claim_cancels_the_send() {
    let mut fx = Fx::ready();
    let command = fx.default_template_send();
    let message = fx.allowed(&command, t0());
    fx.inbound("text", "STOP", t0() + secs(1));
    match fx.claim(&message, t0() + secs(2)) {
        ClaimDecision::Refused { refusal, events } => {
            assert_eq!(refusal.rule, RuleId::OptedOut);
            assert!(matches!(
                &events[..],
                [Event::Message(MessageEvent::ClaimRefused {
                    rule: RuleId::OptedOut,
                    attempt: 1,
                    ..
                })]
            ));
        }
        other => panic!("{other:?}"),
    }
    // And so does a STOP between a failed attempt and its retry.
    let mut fx = Fx::ready();
    let command = fx.default_template_send();
    let message = fx.allowed(&command, t0());
    let message = claim_ok(&mut fx, message, t0());
    let (_, message) = outcome(
        &mut fx,
        &message,
        rejected(ProviderKind::Twilio, 20500),
        TimeDelta::zero(),
        t0(),
    );
    fx.inbound("text", "stop", t0() + ms(500));
    match fx.claim(&message, t0() + secs(1)) {
        ClaimDecision::Refused { refusal, events } => {
            assert_eq!(refusal.rule, RuleId::OptedOut);
            assert_eq!(
                fold_message(message, &events).canceled_by,
                Some(RuleId::OptedOut)
            );
        }
        other => panic!("{other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Status callbacks

#[test]
fn a_duplicate_callback_appends_nothing() {
    let (_, message) = claimed();
    let (events, message) = status(&message, "sent", None, t0() + secs(1));
    assert_eq!(type_names(&events), ["StatusChanged"]);
    let (events, again) = status(&message, "sent", None, t0() + secs(2));
    assert!(events.is_empty());
    assert_eq!(again, message);
    // The same status with another error code is a different observation.
    let (events, _) = status(&message, "failed", Some(63016), t0() + secs(3));
    assert_eq!(
        type_names(&events),
        ["StatusChanged", "WindowReportedClosed"]
    );
}

#[test]
fn out_of_order_callbacks_are_recorded_but_never_move_the_status_back() {
    let (_, message) = claimed();
    let (_, message) = status(&message, "delivered", None, t0() + secs(2));
    let (events, message) = status(&message, "sent", None, t0() + secs(3));
    assert_eq!(type_names(&events), ["StatusChanged"], "recorded");
    assert_eq!(message.status, MessageStatus::Delivered);
    let seen: Vec<(&str, bool)> = message
        .history
        .iter()
        .map(|o| (o.status.as_str(), o.applied))
        .collect();
    assert_eq!(seen, [("delivered", true), ("sent", false)]);
    // read implies delivered; a late failure after delivery changes nothing.
    let (_, message) = status(&message, "failed", Some(63012), t0() + secs(4));
    assert_eq!(message.status, MessageStatus::Delivered);
    let (_, message) = status(&message, "read", None, t0() + secs(5));
    assert_eq!(message.status, MessageStatus::Read);
    // Unknown statuses are stored, never applied.
    let (events, message) = status(&message, "played", None, t0() + secs(6));
    assert_eq!(type_names(&events), ["StatusChanged"]);
    assert_eq!(message.status, MessageStatus::Read);
    assert_eq!(
        message.history.last().map(|o| o.status.clone()),
        Some(MessageStatus::Other("played".into()))
    );
}

#[test]
fn read_after_failed_changes_nothing() {
    let (_, message) = claimed();
    let (events, message) = status(&message, "failed", Some(63003), t0() + secs(1));
    assert_eq!(type_names(&events), ["StatusChanged", "FlagRaised"]);
    assert_eq!(message.status, MessageStatus::Failed);
    for late in ["read", "delivered", "sent", "queued"] {
        let (events, after) = status(&message, late, None, t0() + secs(2));
        assert_eq!(type_names(&events), ["StatusChanged"], "{late}");
        assert_eq!(after.status, MessageStatus::Failed, "{late}");
    }
}

#[test]
fn a_callback_settles_an_open_claim_and_forbids_a_retry() {
    let (mut fx, message) = claimed();
    // The provider's `sent` arrives before our HTTP response was recorded.
    let (_, message) = status(&message, "sent", None, t0() + ms(10));
    assert_eq!(message.phase(), DispatchPhase::Done);
    // The response then times out: recorded, never retried (the provider has the message).
    let (events, after) = outcome(
        &mut fx,
        &message,
        DispatchOutcome::Transport {
            provider: ProviderKind::Twilio,
            message: "read timeout".into(),
        },
        TimeDelta::zero(),
        t0() + secs(15),
    );
    assert_eq!(type_names(&events), ["DispatchFailed"]);
    assert_eq!(after.status, MessageStatus::Sent);
    assert_eq!(after.retry_at, None);
    assert_eq!(after.phase(), DispatchPhase::Done);
}

#[test]
fn an_unanswered_claim_expires_in_doubt_and_is_not_resent() {
    let (fx, message) = claimed();
    let timeout = fx.policy.in_doubt_timeout;
    assert_eq!(timeout, mins(15));
    assert!(decide::expire_in_doubt(&message, &fx.policy, t0() + timeout - ms(1)).is_empty());
    let events = decide::expire_in_doubt(&message, &fx.policy, t0() + timeout);
    assert!(matches!(
        &events[..],
        [Event::Message(MessageEvent::InDoubtExpired {
            attempt: 1,
            ..
        })]
    ));
    let after = fold_message(message, &events);
    assert_eq!(after.status, MessageStatus::Failed);
    assert_eq!(after.phase(), DispatchPhase::Done);
    not_claimable(try_claim(&fx, &after, t0() + hours(1)), "it is failed");
    assert!(decide::expire_in_doubt(&after, &fx.policy, t0() + hours(1)).is_empty());

    // A message that is pending, not claimed, never expires.
    let mut fx = Fx::ready();
    let command = fx.default_template_send();
    let pending = fx.allowed(&command, t0());
    assert!(decide::expire_in_doubt(&pending, &fx.policy, t0() + hours(5)).is_empty());
}

// ---------------------------------------------------------------------------------------------
// Status callbacks that match nothing yet, and their joining.

fn callback(status: &str, error_code: Option<u32>) -> StatusCallback {
    StatusCallback {
        details: Vec::new(),
        provider: ProviderKind::Twilio,
        provider_ref: Some(sid()),
        status: MessageStatus::parse(status),
        error_code,
        pricing: None,
    }
}

#[test]
fn a_callback_for_a_known_message_is_its_status() {
    let (_, message) = claimed();
    let id = message.id.expect("id");
    let decision =
        decide::status_callback(Some((id, &message)), &callback("sent", None), t0()).expect("ok");
    let StatusDecision::Matched { message_id, events } = decision else {
        panic!("expected a match, got {decision:?}");
    };
    assert_eq!(message_id, id);
    assert!(matches!(
        events.as_slice(),
        [Event::Message(MessageEvent::StatusChanged {
            status: MessageStatus::Sent,
            ..
        })]
    ));
}

#[test]
fn a_callback_that_matches_nothing_is_kept_on_the_provider_id_stream() {
    let decision = decide::status_callback(None, &callback("queued", Some(0)), t0()).expect("ok");
    let StatusDecision::Unmatched {
        provider_ref,
        events,
    } = &decision
    else {
        panic!("expected no match, got {decision:?}");
    };
    assert_eq!(provider_ref, &sid());
    assert_eq!(
        events,
        &[Event::Message(MessageEvent::UnmatchedStatusReceived {
            details: Vec::new(),
            provider_ref: sid(),
            status: MessageStatus::Queued,
            error_code: Some(0),
            at: t0(),
        })]
    );
    assert_eq!(
        events[0].stream(),
        wagate_domain::StreamKey::ProviderMessage(sid())
    );
    let early: Vec<EarlyStatus> = events.iter().filter_map(EarlyStatus::of).collect();
    assert_eq!(
        early,
        [EarlyStatus {
            details: Vec::new(),
            status: MessageStatus::Queued,
            error_code: Some(0)
        }]
    );
}

#[test]
fn a_callback_with_no_id_at_all_is_an_error() {
    let mut nameless = callback("sent", None);
    nameless.provider_ref = None;
    assert!(matches!(
        decide::status_callback(None, &nameless, t0()),
        Err(CommandError::InvalidField {
            field: "callback",
            ..
        })
    ));
}

#[test]
fn an_accepted_outcome_joins_the_callbacks_that_came_before_it() {
    let (fx, message) = claimed();
    let early = [
        EarlyStatus {
            details: Vec::new(),
            status: MessageStatus::Sent,
            error_code: None,
        },
        EarlyStatus {
            details: Vec::new(),
            status: MessageStatus::Delivered,
            error_code: None,
        },
        // A provider retry of the same callback is joined once.
        EarlyStatus {
            details: Vec::new(),
            status: MessageStatus::Delivered,
            error_code: None,
        },
    ];
    let command = RecordOutcome {
        message_id: message.id.expect("id"),
        attempt: 1,
        outcome: DispatchOutcome::Accepted {
            provider_ref: sid(),
            provider_status: MessageStatus::Queued,
            recipient: None,
        },
        jitter: TimeDelta::zero(),
    };
    assert_eq!(command.joins(), Some(&sid()));
    let events = decide::record_outcome(&message, &command, &early, &fx.policy, t0())
        .expect("outcome recorded");
    let kinds: Vec<(&str, Option<&MessageStatus>)> = events
        .iter()
        .map(|event| match event {
            Event::Message(MessageEvent::StatusChanged { status, .. }) => {
                (event.type_name(), Some(status))
            }
            _ => (event.type_name(), None),
        })
        .collect();
    assert_eq!(
        kinds,
        [
            ("DispatchSucceeded", None),
            ("StatusChanged", Some(&MessageStatus::Sent)),
            ("StatusChanged", Some(&MessageStatus::Delivered)),
        ]
    );
    assert_eq!(
        fold_message(message, &events).status,
        MessageStatus::Delivered
    );
}

#[test]
fn a_failed_outcome_joins_nothing() {
    let (fx, message) = claimed();
    let early = [EarlyStatus {
        details: Vec::new(),
        status: MessageStatus::Delivered,
        error_code: None,
    }];
    let command = RecordOutcome {
        message_id: message.id.expect("id"),
        attempt: 1,
        outcome: rejected(ProviderKind::Twilio, 21211),
        jitter: TimeDelta::zero(),
    };
    assert_eq!(command.joins(), None);
    let events = decide::record_outcome(&message, &command, &early, &fx.policy, t0())
        .expect("outcome recorded");
    assert!(events
        .iter()
        .all(|event| !matches!(event, Event::Message(MessageEvent::StatusChanged { .. }))));
}
