//! Campaigns: creating validates every row, the run commands, the row outcome (at most once,
//! only while running) and the preview's cumulative fold through the gates.

use wagate_domain::campaign::preview::{preview, PreviewState};
use wagate_domain::campaign::{
    self, CampaignEvent, CampaignState, CreateCampaign, CreateError, OnLimit, RowInput,
    RowWithdrawn, RunCommand, RunState,
};
use wagate_domain::{CampaignId, ContactState, Event, MessagingLimit, Refusal, RuleId, Workflow};

use crate::support::*;

fn campaign_id() -> CampaignId {
    CampaignId::parse("01900000-0000-7000-8000-00000000c0de").expect("v7")
}

fn row(to: &str, name: &str) -> RowInput {
    RowInput {
        to: to.into(),
        variables: vec![("1".into(), name.into())],
    }
}

fn command(rows: Vec<RowInput>, on_limit: OnLimit) -> CreateCampaign {
    CreateCampaign {
        campaign: campaign_id(),
        sender: address(SENDER),
        workflow: Workflow::parse(WORKFLOW).expect("valid"),
        template: template_id(TEMPLATE),
        placeholders: Some(vec!["1".into()]),
        rows,
        on_limit,
    }
}

fn fold(state: CampaignState, events: &[Event]) -> CampaignState {
    events.iter().fold(state, |state, event| match event {
        Event::Campaign(event) => state.apply(event),
        _ => state,
    })
}

fn created(rows: Vec<RowInput>, on_limit: OnLimit) -> CampaignState {
    let events = campaign::create(&CampaignState::default(), &command(rows, on_limit), t0())
        .expect("valid campaign");
    fold(CampaignState::default(), &events)
}

fn started(rows: Vec<RowInput>) -> CampaignState {
    let state = created(rows, OnLimit::Wait);
    let events = campaign::run_command(&state, RunCommand::Start, t0()).expect("starts");
    fold(state, &events)
}

#[test]
fn create_lists_the_campaign_and_refuses_bad_rows_by_number() {
    let events = campaign::create(
        &CampaignState::default(),
        &command(vec![row("+41790000001", "Lea")], OnLimit::Wait),
        t0(),
    )
    .expect("valid");
    assert!(matches!(
        events.as_slice(),
        [
            Event::Campaign(CampaignEvent::Created { .. }),
            Event::Campaign(CampaignEvent::Listed { .. })
        ]
    ));
    assert_eq!(events[1].stream().to_string(), "campaigns:index");
    assert_eq!(
        events[0].stream().to_string(),
        format!("campaign:{}", campaign_id())
    );

    let bad = vec![
        row("+41790000001", "Lea"),
        row("not a number", "Max"),
        RowInput {
            to: "+41790000003".into(),
            variables: Vec::new(),
        },
        row("+41790000001", "Lea again"),
    ];
    let error = campaign::create(
        &CampaignState::default(),
        &command(bad, OnLimit::Wait),
        t0(),
    )
    .expect_err("bad rows");
    let CreateError::InvalidRows { count, errors } = error else {
        panic!("expected invalid rows, got {error:?}");
    };
    assert_eq!(count, 3);
    let rows: Vec<(u32, &str)> = errors.iter().map(|e| (e.row, e.field.as_str())).collect();
    assert_eq!(rows, vec![(2, "to"), (3, "variables.1"), (4, "to")]);
}

#[test]
fn create_refuses_more_rows_than_the_limit_and_an_existing_campaign() {
    let many = (0..=campaign::ROWS_MAX)
        .map(|i| row(&format!("+4179{i:07}"), "x"))
        .collect();
    assert!(matches!(
        campaign::create(
            &CampaignState::default(),
            &command(many, OnLimit::Wait),
            t0()
        ),
        Err(CreateError::TooManyRows { given: 10_001, .. })
    ));
    let state = created(vec![row("+41790000001", "Lea")], OnLimit::Wait);
    assert!(matches!(
        campaign::create(
            &state,
            &command(vec![row("+41790000001", "Lea")], OnLimit::Wait),
            t0()
        ),
        Err(CreateError::Exists(_))
    ));
}

#[test]
fn a_row_is_processed_once_and_only_while_running() {
    let draft = created(
        vec![row("+41790000001", "Lea"), row("+41790000002", "Max")],
        OnLimit::Wait,
    );
    assert!(matches!(
        campaign::row_outcome(&draft, 1, message_id(1), None, t0()),
        Err(RowWithdrawn::NotRunning { .. })
    ));
    let running = fold(
        draft.clone(),
        &campaign::run_command(&draft, RunCommand::Start, t0()).expect("starts"),
    );
    assert_eq!(running.next_row(), Some(1));
    let sent = campaign::row_outcome(&running, 1, message_id(1), None, t0()).expect("row 1");
    let running = fold(running, &[sent]);
    assert_eq!(running.next_row(), Some(2));
    assert!(matches!(
        campaign::row_outcome(&running, 1, message_id(2), None, t0()),
        Err(RowWithdrawn::AlreadyProcessed { row: 1, .. })
    ));
    let refusal = Refusal {
        rule: RuleId::OptedOut,
        message: "opted out".into(),
        also_broken: Vec::new(),
    };
    let refused =
        campaign::row_outcome(&running, 2, message_id(3), Some(&refusal), t0()).expect("row 2");
    assert!(matches!(
        &refused,
        Event::Campaign(CampaignEvent::RowRefused {
            rule: RuleId::OptedOut,
            ..
        })
    ));
    let done = fold(running, &[refused]);
    assert_eq!(done.next_row(), None);
    let counts = done.row_counts();
    assert_eq!((counts.allowed, counts.refused, counts.queued), (1, 1, 0));
    assert!(campaign::complete(&done, t0()).is_some());
}

#[test]
fn cancel_withdraws_the_unprocessed_rows_and_stops_every_row_after_it() {
    let running = started(vec![
        row("+41790000001", "Lea"),
        row("+41790000002", "Max"),
        row("+41790000003", "Ana"),
    ]);
    let sent = campaign::row_outcome(&running, 1, message_id(1), None, t0()).expect("row 1");
    let running = fold(running, &[sent]);
    let paused = fold(
        running.clone(),
        &campaign::run_command(&running, RunCommand::Pause, t0()).expect("pauses"),
    );
    assert_eq!(paused.run, RunState::Paused);
    assert!(campaign::row_outcome(&paused, 2, message_id(2), None, t0()).is_err());
    let cancel = campaign::run_command(&paused, RunCommand::Cancel, t0()).expect("cancels");
    assert!(matches!(
        cancel.as_slice(),
        [Event::Campaign(CampaignEvent::Cancelled {
            withdrawn: 2,
            ..
        })]
    ));
    let cancelled = fold(paused, &cancel);
    assert!(matches!(
        campaign::row_outcome(&cancelled, 2, message_id(2), None, t0()),
        Err(RowWithdrawn::NotRunning {
            state: "cancelled",
            ..
        })
    ));
    let counts = cancelled.row_counts();
    assert_eq!((counts.allowed, counts.withdrawn, counts.queued), (1, 2, 0));
    // Cancelling again changes nothing; starting a cancelled campaign is a conflict.
    assert!(campaign::run_command(&cancelled, RunCommand::Cancel, t0())
        .expect("no-op")
        .is_empty());
    assert!(campaign::run_command(&cancelled, RunCommand::Start, t0()).is_err());
    assert!(campaign::complete(&cancelled, t0()).is_none());
}

#[test]
fn preview_counts_the_messaging_limit_cumulatively_and_refuses_by_rule() {
    let mut fx = Fx::ready();
    fx.set_limit(MessagingLimit::Limited(2), t0() - hours(1));
    let opted_in = fx.contact.clone();
    let mut opted_out = fx.clone();
    opted_out.opt_out(t0() - hours(2));
    let never = ContactState::default();
    let mut windowed = fx.clone();
    windowed.inbound("text", "hello", t0() - hours(1));

    let rows: Vec<RowInput> = (1..=6)
        .map(|i| row(&format!("+4179000000{i}"), "Lea"))
        .collect();
    // Rows 1, 2, 4, 5 opted in; 3 opted out; 6 never opted in but wrote an hour ago.
    let contacts = vec![
        opted_in.clone(),
        opted_in.clone(),
        opted_out.contact.clone(),
        opted_in.clone(),
        windowed.contact.clone(),
        never,
    ];
    for (on_limit, waiting, tier_refused) in [(OnLimit::Wait, 1, 0), (OnLimit::Refuse, 0, 1)] {
        let state = created(rows.clone(), on_limit);
        let definition = state.definition.clone().expect("created");
        let result = preview(
            &definition,
            &PreviewState {
                sender: &fx.sender,
                template: &fx.template,
                portfolio: &fx.portfolio,
                contacts: &contacts,
            },
            &fx.policy,
            t0(),
        );
        // Rows 1 and 2 use the limit of 2, so row 4 waits (or is refused); row 5 has an open
        // window (free of the limit).
        let allowed: Vec<u32> = result.allowed.iter().map(|a| a.row).collect();
        assert_eq!(allowed, vec![1, 2, 5], "{on_limit:?}");
        assert_eq!(result.limit_headroom, Some(2));
        assert_eq!(result.outside_window, 2);
        assert!(result.allowed[2].window_open);
        assert!(!result.allowed[0].window_open);
        // Row 6 (no opt-in) breaks the limit too, but its own refusal is what counts.
        assert_eq!(result.refused.get(&RuleId::OptedOut), Some(&1));
        assert_eq!(result.refused.get(&RuleId::NoOptIn), Some(&1));
        assert_eq!(result.waiting, waiting, "{on_limit:?}");
        assert_eq!(
            result.refused.get(&RuleId::TierLimit).copied().unwrap_or(0),
            tier_refused
        );
        assert_eq!(result.estimated_seconds, Some(1));
        let refused_rows: Vec<u32> = result.refused_rows.iter().map(|r| r.row).collect();
        assert!(refused_rows.contains(&3));
    }
}
