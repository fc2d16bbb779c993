use chrono::TimeZone;

use super::*;
use crate::consent::{CampaignMedium, OptInRequest};
use crate::contact::Consent;
use crate::events::{ContactEvent, OptOutSource};
use crate::ids::{ContactId, Workflow};

fn t(s: i64) -> Timestamp {
    chrono::Utc
        .timestamp_opt(1_780_000_000 + s, 0)
        .single()
        .expect("time")
}

fn sender(n: &str) -> WhatsAppAddress {
    WhatsAppAddress::parse(&format!("whatsapp:{n}")).expect("sender")
}

fn id(n: u128) -> MessageId {
    MessageId::from_uuid(uuid::Uuid::from_u128(
        0x0000_0000_0000_7000_8000_0000_0000_0000 | n,
    ))
    .expect("v7")
}

fn campaign() -> Campaign {
    Campaign {
        code: "WG-OPEN1".into(),
        sender: sender("+41445550000"),
        wording_version: "w-1".into(),
        workflows: vec![Workflow::parse("lead_qualification").expect("workflow")],
        medium: CampaignMedium::WebForm,
        confirmation_template: Some(template()),
        at: t(0),
        closed_at: None,
    }
}

fn template() -> TemplateId {
    TemplateId::parse("optin_confirm@en").expect("template")
}

const HOUR: i64 = 3600;

struct World {
    campaign: Campaign,
    template: TemplateId,
    contact: ContactState,
    sent: Option<MessageId>,
}

impl World {
    fn new() -> Self {
        Self {
            campaign: campaign(),
            template: template(),
            contact: ContactState::default(),
            sent: None,
        }
    }

    fn judge(
        &self,
        message: MessageId,
        from: &WhatsAppAddress,
        template: &TemplateId,
        workflow: Option<&str>,
        at: i64,
    ) -> Result<(), NotPermitted> {
        permits_confirmation(
            &PendingConfirmation {
                campaign: &self.campaign,
                confirmation_template: Some(&self.template),
                requested_at: t(10),
                sent: self.sent,
            },
            &ConfirmationSend {
                message_id: message,
                sender: from,
                template,
                workflow,
                contact: &self.contact,
            },
            t(at),
        )
    }

    fn proper(&self, message: MessageId, at: i64) -> Result<(), NotPermitted> {
        self.judge(
            message,
            &self.campaign.sender.clone(),
            &self.template.clone(),
            Some(CONFIRMATION_WORKFLOW),
            at,
        )
    }
}

#[test]
fn the_campaigns_template_from_its_sender_within_the_bound_is_permitted_once() {
    let mut world = World::new();
    assert_eq!(world.proper(id(1), 20), Ok(()));
    assert_eq!(world.proper(id(1), 10 + 24 * HOUR), Ok(()));
    world.sent = Some(id(1));
    // The claim of the same message re-runs the gates and still passes.
    assert_eq!(world.proper(id(1), 30), Ok(()));
    // A second confirmation does not.
    assert_eq!(world.proper(id(2), 30), Err(NotPermitted::AlreadySent));
}

#[test]
fn anything_else_is_not_the_confirmation() {
    let world = World::new();
    let c = world.campaign.clone();
    let other = TemplateId::parse("spring_offer@en").expect("template");
    assert!(matches!(
        world.judge(id(1), &c.sender, &other, Some(CONFIRMATION_WORKFLOW), 20),
        Err(NotPermitted::OtherTemplate { .. })
    ));
    assert!(matches!(
        world.judge(
            id(1),
            &sender("+41445559999"),
            &world.template,
            Some(CONFIRMATION_WORKFLOW),
            20
        ),
        Err(NotPermitted::OtherSender { .. })
    ));
    assert_eq!(
        world.judge(
            id(1),
            &c.sender,
            &world.template,
            Some("lead_qualification"),
            20
        ),
        Err(NotPermitted::NotConfirmationWorkflow)
    );
    assert_eq!(
        world.judge(id(1), &c.sender, &world.template, None, 20),
        Err(NotPermitted::NotConfirmationWorkflow)
    );
}

#[test]
fn late_early_closed_or_templateless_is_refused() {
    let mut world = World::new();
    assert_eq!(world.proper(id(1), 11 + 24 * HOUR), Err(NotPermitted::Late));
    assert_eq!(world.proper(id(1), 9), Err(NotPermitted::Late));
    world.campaign.closed_at = Some(t(15));
    assert!(matches!(
        world.proper(id(1), 20),
        Err(NotPermitted::Closed(_))
    ));
    let world = World::new();
    let c = world.campaign.clone();
    let none = permits_confirmation(
        &PendingConfirmation {
            campaign: &c,
            confirmation_template: None,
            requested_at: t(10),
            sent: None,
        },
        &ConfirmationSend {
            message_id: id(1),
            sender: &c.sender,
            template: &world.template,
            workflow: Some(CONFIRMATION_WORKFLOW),
            contact: &world.contact,
        },
        t(20),
    );
    assert!(matches!(none, Err(NotPermitted::NoTemplate(_))));
}

#[test]
fn an_opt_out_after_the_request_ends_the_exception() {
    let mut world = World::new();
    let contact = ContactId::parse("+41790000001").expect("contact");
    world.contact = ContactState::default().apply(&ContactEvent::OptedOut {
        contact,
        source: OptOutSource::Keyword,
        detail: "STOP".into(),
        evidence_at: t(12),
        at: t(12),
    });
    assert!(matches!(world.contact.consent, Consent::OptedOut { .. }));
    assert_eq!(world.proper(id(1), 20), Err(NotPermitted::OptedOutSince));
}

#[test]
fn the_answer_words_and_the_payload_are_recognised() {
    for yes in ["YES", "yes", " Ja ", "Ja!", "oui.", "Sí", "CONFIRM"] {
        assert!(is_confirmation_answer(Some(yes), None, "WG-OPEN1"), "{yes}");
    }
    for no in ["no", "yes but later", "STOP", "", "WG-OPEN1:CONFIRM"] {
        assert!(!is_confirmation_answer(Some(no), None, "WG-OPEN1"), "{no}");
    }
    assert!(is_confirmation_answer(
        Some("Confirm my subscription"),
        Some("WG-OPEN1:CONFIRM"),
        "WG-OPEN1"
    ));
    assert!(!is_confirmation_answer(
        None,
        Some("WG-OTHER:CONFIRM"),
        "WG-OPEN1"
    ));
}

fn wording() -> Wording {
    Wording {
        version: "w-1".into(),
        business: "Acme Homes".into(),
        language: "en".into(),
        text: "I agree.".into(),
        text_hash: "abc".into(),
        at: t(0),
    }
}

fn requests(at: i64) -> ConsentState {
    ConsentState {
        requests: vec![OptInRequest {
            campaign: "WG-OPEN1".into(),
            wording_version: "w-1".into(),
            text_hash: "abc".into(),
            evidence: "ip 192.0.2.1".into(),
            at: t(at),
            confirmation_sent: None,
        }],
        ..ConsentState::default()
    }
}

fn answer(to: &WhatsAppAddress, at: i64) -> CodeMessage {
    CodeMessage {
        contact: ContactId::parse("+41790000001").expect("contact"),
        to: Some(to.clone()),
        message_ref: "wamid.ANSWER".into(),
        written_at: t(at),
    }
}

#[test]
fn a_yes_within_the_bound_confirms_like_the_campaign_code() {
    let c = campaign();
    let events = confirm_by_answer(
        &c,
        &wording(),
        &requests(10),
        &ContactState::default(),
        &answer(&c.sender, 50),
        Some("YES"),
        None,
        t(51),
    )
    .expect("confirmed");
    let [Event::Contact(ContactEvent::OptedIn {
        source,
        evidence,
        wording_version,
        ..
    })] = events.as_slice()
    else {
        panic!("{events:?}");
    };
    assert_eq!(*source, crate::events::OptInSource::WebForm);
    assert_eq!(wording_version, "w-1");
    assert!(evidence.contains("wamid.ANSWER"), "{evidence}");
    assert!(evidence.contains("ip 192.0.2.1"), "{evidence}");
}

#[test]
fn an_answer_dated_in_the_requests_own_second_counts() {
    let c = campaign();
    let mut requests = requests(10);
    requests.requests[0].at = t(10) + chrono::TimeDelta::milliseconds(700);
    assert!(confirm_by_answer(
        &c,
        &wording(),
        &requests,
        &ContactState::default(),
        &answer(&c.sender, 10),
        Some("ja"),
        None,
        t(11),
    )
    .is_ok());
}

#[test]
fn a_late_wrong_or_unasked_answer_confirms_nothing() {
    let c = campaign();
    let run = |requests: &ConsentState, to: &WhatsAppAddress, at: i64, text: &str| {
        confirm_by_answer(
            &c,
            &wording(),
            requests,
            &ContactState::default(),
            &answer(to, at),
            Some(text),
            None,
            t(at),
        )
    };
    assert_eq!(
        run(&requests(10), &c.sender, 50, "maybe"),
        Err(AnswerRefused::NotAnAnswer)
    );
    assert_eq!(
        run(&ConsentState::default(), &c.sender, 50, "YES"),
        Err(AnswerRefused::NoPendingRequest)
    );
    assert_eq!(
        run(&requests(10), &c.sender, 11 + 24 * HOUR, "YES"),
        Err(AnswerRefused::Late)
    );
    assert_eq!(
        run(&requests(10), &c.sender, 9, "YES"),
        Err(AnswerRefused::Late)
    );
    assert_eq!(
        run(&requests(10), &sender("+41445559999"), 50, "YES"),
        Err(AnswerRefused::Confirmation(NotConfirmed::WrongSender))
    );
    let closed = Campaign {
        closed_at: Some(t(20)),
        ..campaign()
    };
    assert_eq!(
        confirm_by_answer(
            &closed,
            &wording(),
            &requests(10),
            &ContactState::default(),
            &answer(&c.sender, 50),
            Some("YES"),
            None,
            t(50),
        ),
        Err(AnswerRefused::Confirmation(NotConfirmed::Closed))
    );
}

#[test]
fn a_campaigns_confirmation_template_must_be_an_approved_utility_template() {
    use crate::consent::{create_campaign, CreateCampaign};
    use crate::decide::CommandError;
    use crate::events::{ApprovalStatus, TemplateCategory};
    use crate::template::{TemplateDefinition, TemplateState};
    let wording = ConsentState {
        wording: Some(wording()),
        ..ConsentState::default()
    };
    let command = CreateCampaign {
        code: "WG-OPEN1".into(),
        sender: sender("+41445550000"),
        wording_version: "w-1".into(),
        workflows: vec![Workflow::parse("lead_qualification").expect("workflow")],
        medium: CampaignMedium::WebForm,
        confirmation_template: Some(template()),
    };
    let state = |category, approval| TemplateState {
        id: Some(template()),
        definition: Some(TemplateDefinition {
            name: "optin_confirm".into(),
            language: "en".into(),
            category,
            placeholders: Vec::new(),
        }),
        approval,
        ..TemplateState::default()
    };
    let refusal = |template: Option<&TemplateState>| match create_campaign(
        &wording,
        true,
        template,
        &command,
        t(0),
    ) {
        Err(CommandError::InvalidField { field, reason }) => {
            assert_eq!(field, "confirmation_template");
            reason
        }
        other => panic!("{other:?}"),
    };
    assert!(refusal(None).contains("not a registered template"));
    assert!(refusal(Some(&state(
        TemplateCategory::Utility,
        Some(ApprovalStatus::Pending)
    )))
    .contains("not approved"));
    assert!(refusal(Some(&state(
        TemplateCategory::Marketing,
        Some(ApprovalStatus::Approved)
    )))
    .contains("must be utility"));
    let ok = state(TemplateCategory::Utility, Some(ApprovalStatus::Approved));
    let events = create_campaign(&wording, true, Some(&ok), &command, t(0)).expect("created");
    assert!(matches!(
        &events[0],
        Event::Consent(crate::consent::ConsentEvent::CampaignCreated {
            confirmation_template: Some(_),
            ..
        })
    ));
}
