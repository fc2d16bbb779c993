//! The campaign checks on hand-built logs: a clean run, then one log per check that breaks it
//! (each fails without its check).

use super::*;

const CAMPAIGN: &str = "0192f0c1-7a3b-7c4d-8e5f-0000000000c1";

fn stream() -> String {
    format!("campaign:{CAMPAIGN}")
}

/// A message id per row, so rows name distinct messages.
fn message_of(n: u64) -> String {
    format!("0192f0c1-7a3b-7c4d-8e5f-00000000{n:04x}")
}

impl Log {
    /// A ready sender and template, an opted-in contact, and a created, started campaign of
    /// `rows` rows.
    fn campaign(rows: usize) -> Self {
        let mut log = Log::default();
        log.ready();
        log.contact("OptedIn");
        let row = json!({"to": LEA, "variables": {"1": "Lea", "2": "Thu"}});
        log.push(
            &stream(),
            "CampaignCreated",
            json!({"campaign": CAMPAIGN, "sender": SENDER, "workflow": WORKFLOW,
                   "template": TEMPLATE, "rows": vec![row; rows], "on_limit": "wait"}),
        );
        log.push(
            "campaigns:index",
            "CampaignListed",
            json!({"campaign": CAMPAIGN}),
        );
        log.push(&stream(), "CampaignStarted", json!({"campaign": CAMPAIGN}));
        log
    }

    /// The row's send (`TemplateSent` of message `n`) and its `CampaignRowSent`; the outcome's
    /// position.
    fn row_sent(&mut self, row: u64, n: u64) -> u64 {
        self.intent(n);
        self.outcome_sent(row, n)
    }

    fn intent(&mut self, n: u64) -> u64 {
        let id = message_of(n);
        self.push(
            &format!("message:{id}"),
            "TemplateSent",
            json!({"message_id": id, "contact": LEA, "sender": SENDER, "template": TEMPLATE,
                   "variables": {"1": "Lea", "2": "Thu"}, "workflow": WORKFLOW}),
        )
    }

    fn outcome_sent(&mut self, row: u64, n: u64) -> u64 {
        self.push(
            &stream(),
            "CampaignRowSent",
            json!({"campaign": CAMPAIGN, "row": row, "message_id": message_of(n)}),
        )
    }

    fn row_refused(&mut self, row: u64, n: u64) -> u64 {
        let id = message_of(n);
        self.push(
            &format!("message:{id}"),
            "SendRefused",
            json!({"message_id": id, "to": LEA, "sender": SENDER, "template": TEMPLATE,
                   "rule": "opted_out", "message": "opted out", "also_broken": []}),
        );
        self.push(
            &stream(),
            "CampaignRowRefused",
            json!({"campaign": CAMPAIGN, "row": row, "message_id": id, "rule": "opted_out"}),
        )
    }

    fn campaign_event(&mut self, event_type: &str) -> u64 {
        self.push(
            &stream(),
            event_type,
            json!({"campaign": CAMPAIGN, "withdrawn": 0}),
        )
    }
}

#[test]
fn a_campaign_run_to_completion_is_clean_and_its_events_are_known() {
    let mut log = Log::campaign(3);
    log.row_sent(1, 1);
    log.row_refused(2, 2);
    log.campaign_event("CampaignPaused");
    log.campaign_event("CampaignStarted");
    log.row_sent(3, 3);
    log.campaign_event("CampaignCompleted");
    let summary = log.audit();
    assert_eq!(checks(&summary), []);
    assert!(summary.unknown_event_types.is_empty());
}

#[test]
fn a_row_processed_twice_is_found() {
    let mut log = Log::campaign(2);
    log.row_sent(1, 1);
    let again = log.row_sent(1, 2);
    assert_eq!(
        checks(&log.audit()),
        [(Some(again), Check::CampaignRowTwice)]
    );
    let mut log = Log::campaign(2);
    log.row_refused(1, 1);
    let again = log.row_sent(1, 2);
    assert_eq!(
        checks(&log.audit()),
        [(Some(again), Check::CampaignRowTwice)]
    );
}

#[test]
fn a_row_after_the_cancel_or_the_completion_is_found() {
    for end in ["CampaignCancelled", "CampaignCompleted"] {
        let mut log = Log::campaign(3);
        log.row_sent(1, 1);
        log.campaign_event(end);
        let late = log.row_sent(2, 2);
        let refused = log.row_refused(3, 3);
        assert_eq!(
            checks(&log.audit()),
            [
                (Some(late), Check::CampaignRowAfterEnd),
                (Some(refused), Check::CampaignRowAfterEnd)
            ],
            "{end}"
        );
    }
}

#[test]
fn a_row_sent_needs_its_template_sent_before_it() {
    let mut log = Log::campaign(3);
    let missing = log.outcome_sent(1, 1);
    // The intent after its outcome: not the order the hub appends.
    let early = log.outcome_sent(2, 2);
    log.intent(2);
    // A refusal's message id for a sent row.
    let id = message_of(3);
    log.push(
        &format!("message:{id}"),
        "SendRefused",
        json!({"message_id": id, "to": LEA, "sender": SENDER, "template": TEMPLATE,
               "rule": "opted_out", "message": "opted out", "also_broken": []}),
    );
    let refused = log.outcome_sent(3, 3);
    assert_eq!(
        checks(&log.audit()),
        [
            (Some(missing), Check::CampaignRowWithoutSend),
            (Some(early), Check::CampaignRowWithoutSend),
            (Some(refused), Check::CampaignRowWithoutSend)
        ]
    );
}

#[test]
fn a_row_beyond_the_campaigns_rows_is_found() {
    let mut log = Log::campaign(2);
    log.row_sent(2, 1);
    let beyond = log.row_sent(3, 2);
    let zero = log.row_sent(0, 3);
    assert_eq!(
        checks(&log.audit()),
        [
            (Some(beyond), Check::CampaignRowOutOfRange),
            (Some(zero), Check::CampaignRowOutOfRange)
        ]
    );
}
