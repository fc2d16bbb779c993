//! Strategies: random worlds (a setup and a sequence of steps) and the case count.

use proptest::prelude::*;
use proptest::test_runner::Config as ProptestConfig;

use crate::world::{Jump, Setup, Step, EVIDENCE_AT, IDENTITIES, INBOUND_AGES, TEXTS};

/// 256 cases per property by default; `PROPTEST_CASES` (read by proptest itself) raises them.
pub fn config() -> ProptestConfig {
    let mut config = ProptestConfig::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = 256;
    }
    config
}

pub fn setup() -> impl Strategy<Value = Setup> {
    (
        any::<bool>(),
        prop_oneof![3 => Just(10_i64), 1 => Just(0_i64), 1 => Just(60_i64)],
        prop_oneof![Just(1_u32), Just(2_u32), Just(250_u32)],
        prop::array::uniform2(prop::bool::weighted(0.8)),
    )
        .prop_map(
            |(second_sender, margin_minutes, default_limit, approved)| Setup {
                second_sender,
                margin_minutes,
                default_limit,
                approved,
            },
        )
}

/// Clock jumps, biased toward the boundaries that matter: the window's edges (24 h and 24 h
/// less the margin, ± 1 ms), retry due times ± 1 ms, the in-doubt timeout and the tier period.
pub fn jump() -> impl Strategy<Value = Jump> {
    prop_oneof![
        3 => (0_u32..5_000).prop_map(Jump::Millis),
        2 => (1_u32..600).prop_map(Jump::Minutes),
        1 => (600_u32..2_000).prop_map(Jump::Minutes),
        5 => (0_usize..4, 0_usize..6).prop_map(|(contact, edge)| Jump::WindowEdge { contact, edge }),
        5 => (any::<usize>(), -1_i64..=1).prop_map(|(message, offset)| Jump::RetryEdge { message, offset }),
        1 => (any::<usize>(), -1_i64..=1).prop_map(|(message, offset)| Jump::InDoubtEdge { message, offset }),
        1 => (-1_i64..=1).prop_map(|offset| Jump::TierEdge { offset }),
    ]
}

/// Mostly the authorized sender, a valid recipient and an allowed workflow, so that sends get
/// far enough down the table to meet the later rules.
fn sender() -> impl Strategy<Value = usize> {
    prop_oneof![4 => Just(0_usize), 1 => Just(1_usize)]
}

fn recipient() -> impl Strategy<Value = usize> {
    prop_oneof![8 => 0_usize..3, 1 => Just(3_usize), 2 => Just(4_usize)]
}

/// Mostly the three people's main numbers, sometimes the second number and the user id.
fn identity() -> impl Strategy<Value = usize> {
    prop_oneof![6 => 0_usize..3, 2 => 3_usize..IDENTITIES.len()]
}

/// Mostly no provider time or a recent one, sometimes late, a replay or ahead of our clock
/// (within the skew: index 9).
fn inbound_age() -> impl Strategy<Value = usize> {
    prop_oneof![6 => 0_usize..3, 3 => 0..INBOUND_AGES.len(), 1 => Just(9_usize)]
}

fn workflow() -> impl Strategy<Value = usize> {
    prop_oneof![8 => 0_usize..3, 1 => 3_usize..5]
}

pub fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (identity(), 0_usize..6, prop_oneof![2 => 0_usize..2, 1 => 0..EVIDENCE_AT.len()])
            .prop_map(|(contact, source, evidence_at)| Step::OptIn { contact, source, evidence_at }),
        7 => (identity(), 0_usize..3, prop_oneof![4 => Just(0_usize), 1 => 0_usize..4],
              0..TEXTS.len(), inbound_age(), prop::bool::weighted(0.2))
            .prop_map(|(contact, sender, kind, text, age, before_report)| Step::Inbound {
                contact,
                sender,
                kind,
                text,
                age,
                before_report,
            }),
        1 => (identity(), 0_usize..4, 0..TEXTS.len())
            .prop_map(|(contact, kind, text)| Step::Group { contact, kind, text }),
        // Mostly a main number with its second number or its user id.
        2 => (prop_oneof![3 => 0_usize..3, 1 => 0..IDENTITIES.len()], 3..IDENTITIES.len(), 0_usize..4)
            .prop_map(|(contact, other, source)| Step::Link { contact, other, source }),
        1 => (0_usize..2, 0_usize..2)
            .prop_map(|(sender, portfolio)| Step::Reregister { sender, portfolio }),
        1 => identity().prop_map(|contact| Step::OperatorOptOut { contact }),
        // Consent capture: campaigns, their page, their prefilled message (mostly to the
        // campaign's number), and closing them.
        1 => (0_usize..2, any::<bool>())
            .prop_map(|(sender, code_alone)| Step::Campaign { sender, code_alone }),
        2 => (0_usize..3, identity())
            .prop_map(|(campaign, contact)| Step::PageOptIn { campaign, contact }),
        3 => (0_usize..3, identity(), prop_oneof![3 => Just(0_usize), 1 => Just(1_usize)],
              prop::bool::weighted(0.2))
            .prop_map(|(campaign, contact, sender, late)| Step::CodeMessage {
                campaign,
                contact,
                sender,
                late,
            }),
        1 => (0_usize..3).prop_map(|campaign| Step::CloseCampaign { campaign }),
        3 => (identity(), 0_usize..2, prop::bool::weighted(0.75))
            .prop_map(|(contact, flag, raised)| Step::Flag { contact, flag, raised }),
        2 => (0_usize..3, prop_oneof![1 => Just(2_usize), 1 => 0_usize..6])
            .prop_map(|(template, status)| Step::TemplateApproval { template, status }),
        1 => (0_usize..2, prop::bool::weighted(0.7))
            .prop_map(|(sender, authorize)| Step::Sender { sender, authorize }),
        1 => (0_usize..2, prop::bool::weighted(0.5))
            .prop_map(|(sender, dropped)| Step::Quality { sender, dropped }),
        1 => (0_usize..3, prop::bool::weighted(0.3))
            .prop_map(|(template, marketing)| Step::Category { template, marketing }),
        1 => (0_usize..4).prop_map(|limit| Step::SetLimit { limit }),
        6 => (sender(), recipient(), prop_oneof![3 => 0_usize..2, 1 => Just(2_usize)],
              prop_oneof![4 => Just(None), 1 => (0_usize..5).prop_map(Some)], workflow())
            .prop_map(|(sender, to, template, variables, workflow)| Step::SendTemplate {
                sender,
                to,
                template,
                // Mostly the variables that fit the template.
                variables: variables.unwrap_or(template % 2),
                workflow,
            }),
        6 => (sender(), recipient(), workflow())
            .prop_map(|(sender, to, workflow)| Step::SendFreeform { sender, to, workflow }),
        4 => (prop::bool::weighted(0.3), workflow(), prop::bool::weighted(0.3))
            .prop_map(|(other_sender, workflow, provider_says_closed)| Step::Reply {
                other_sender,
                workflow,
                provider_says_closed,
            }),
        6 => prop_oneof![3 => 0_usize..3, 1 => any::<usize>()].prop_map(|back| Step::Claim { back }),
        3 => any::<usize>().prop_map(|index| Step::ClaimPending { index }),
        4 => (prop_oneof![3 => 0_usize..2, 1 => any::<usize>()],
              prop_oneof![4 => 0_usize..40, 1 => Just(5_usize)],
              prop_oneof![Just(0_i64), Just(1), Just(250), Just(999)])
            .prop_map(|(back, outcome, jitter_ms)| Step::Outcome { back, outcome, jitter_ms }),
        4 => (any::<usize>(), 0_usize..10, 0_usize..9)
            .prop_map(|(message, status, code)| Step::Callback { message, status, code }),
        2 => (0_usize..8).prop_map(|back| Step::RepeatCallback { back }),
        1 => any::<usize>().prop_map(|message| Step::ExpireInDoubt { message }),
        9 => jump().prop_map(Step::Advance),
    ]
}

pub fn world() -> impl Strategy<Value = (Setup, Vec<Step>)> {
    (setup(), prop::collection::vec(step(), 1..80))
}
