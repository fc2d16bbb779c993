use std::sync::Arc;

use wagate_domain::decide::{RegisterTemplate, RequestReview};
use wagate_domain::{ApprovalStatus, ContactId, Policy, Role, TemplateCategory, TemplateId};

use super::*;
use crate::clock::FixedClock;

fn clock() -> Arc<FixedClock> {
    Arc::new(FixedClock::new(
        chrono::DateTime::from_timestamp(1_764_000_000, 0).expect("time"),
    ))
}

fn contact() -> ContactId {
    ContactId::parse("+41790000001").expect("contact")
}

async fn opt_out_request(hub: &Hub, key: &str) {
    hub.request_review(
        RequestReview {
            contact: contact(),
            text: "please stop messaging me".into(),
            reason: "free_text_opt_out".into(),
        },
        key,
    )
    .await
    .expect("review requested");
}

async fn pause_template(hub: &Hub) -> TemplateId {
    let template = TemplateId::parse("reminder").expect("template");
    hub.register_template(RegisterTemplate {
        template: template.clone(),
        name: "reminder".into(),
        language: "en".into(),
        category: TemplateCategory::Utility,
        placeholders: Vec::new(),
    })
    .await
    .expect("registered");
    hub.set_template_status(&template, ApprovalStatus::Approved, "")
        .await
        .expect("approved");
    hub.set_template_status(&template, ApprovalStatus::Paused, "low quality")
        .await
        .expect("paused");
    template
}

#[tokio::test]
async fn items_are_raised_by_the_events_that_need_a_person_and_filtered() {
    let hub = Hub::open_temporary(clock(), Policy::default()).expect("hub");
    opt_out_request(&hub, "k1").await;
    let template = pause_template(&hub).await;
    let all = hub
        .review_items(ReviewFilter::default())
        .await
        .expect("items");
    let reasons: Vec<_> = all.iter().map(|item| item.reason).collect();
    assert_eq!(
        reasons,
        [
            ReviewReason::OptOutRequest,
            ReviewReason::TemplateNotSendable
        ]
    );
    assert_eq!(all[0].subject.contact, Some(contact()));
    assert_eq!(all[1].subject.template, Some(template));
    assert!(all[1].detail.contains("low quality"), "{}", all[1].detail);
    let only = hub
        .review_items(ReviewFilter {
            reason: Some(ReviewReason::TemplateNotSendable),
            state: Some(ReviewItemState::Open),
        })
        .await
        .expect("items");
    assert_eq!(only, all[1..]);
}

#[tokio::test]
async fn confirming_an_opt_out_request_resolves_it_as_the_actor_and_opts_the_contact_out() {
    let hub = Hub::open_temporary(clock(), Policy::default()).expect("hub");
    opt_out_request(&hub, "k1").await;
    let id = hub
        .review_items(ReviewFilter::default())
        .await
        .expect("items")[0]
        .id;
    let operator = hub.acting(Actor::Token {
        role: Role::Operator,
        name: "ops-anna".into(),
    });
    let item = operator
        .resolve_review(id, ReviewDecision::ConfirmOptOut, "called back")
        .await
        .expect("resolved");
    assert_eq!(item.state(), ReviewItemState::Resolved);
    let resolution = item.resolution.expect("resolution");
    assert_eq!(resolution.note, "called back");
    assert_eq!(
        resolution
            .by
            .map(|actor| actor.name().to_owned())
            .as_deref(),
        Some("ops-anna")
    );
    assert!(hub
        .contact(&contact())
        .expect("contact")
        .state
        .is_opted_out());
    let again = operator
        .resolve_review(id, ReviewDecision::Dismiss, "")
        .await
        .expect_err("resolved twice");
    assert!(matches!(again, AppError::Conflict { .. }), "{again:?}");
    let open = hub
        .review_items(ReviewFilter {
            state: Some(ReviewItemState::Open),
            reason: None,
        })
        .await
        .expect("items");
    assert!(open.is_empty());
}

#[tokio::test]
async fn unknown_items_and_foreign_decisions_are_refused_by_name() {
    let hub = Hub::open_temporary(clock(), Policy::default()).expect("hub");
    opt_out_request(&hub, "k1").await;
    let id = hub
        .review_items(ReviewFilter::default())
        .await
        .expect("items")[0]
        .id;
    assert!(matches!(
        hub.resolve_review(id + 100, ReviewDecision::Dismiss, "")
            .await,
        Err(AppError::NotFound { .. })
    ));
    let error = hub
        .resolve_review(id, ReviewDecision::Handled, "")
        .await
        .expect_err("not a decision for an opt-out request");
    assert!(
        matches!(&error, AppError::Invalid { field, .. } if field == "decision"),
        "{error:?}"
    );
}

#[tokio::test]
async fn ids_are_stable_across_a_rebuild() {
    let dir = tempfile::tempdir().expect("tempdir");
    let open = || {
        let store =
            wagate_store::Store::open(dir.path(), wagate_store::Options::default()).expect("open");
        let hub = Hub::open(Arc::new(store.clone()), clock(), Policy::default()).expect("hub");
        (hub, store)
    };
    let before = {
        let (hub, store) = open();
        opt_out_request(&hub, "k1").await;
        pause_template(&hub).await;
        let items = hub
            .review_items(ReviewFilter::default())
            .await
            .expect("items");
        hub.resolve_review(items[1].id, ReviewDecision::Handled, "replaced")
            .await
            .expect("resolved");
        let items = hub
            .review_items(ReviewFilter::default())
            .await
            .expect("items");
        drop(hub);
        store.close().expect("close");
        items
    };
    let (hub, _store) = open();
    assert_eq!(
        hub.review_items(ReviewFilter::default())
            .await
            .expect("items"),
        before
    );
}

#[tokio::test]
async fn a_watcher_raises_its_own_items() {
    let hub = Hub::open_temporary(clock(), Policy::default()).expect("hub");
    let id = hub
        .raise_review(
            ReviewReason::AlertDeliveryFailed,
            ReviewSubject::default(),
            "discord answered 404",
        )
        .await
        .expect("raised");
    let item = hub.review_item(id).await.expect("item");
    assert_eq!(item.reason, ReviewReason::AlertDeliveryFailed);
    assert_eq!(item.detail, "discord answered 404");
}

#[tokio::test]
async fn provider_reports_raise_items_a_rejected_template_and_a_quality_drop() {
    let hub = Hub::open_temporary(clock(), Policy::default()).expect("hub");
    let template = TemplateId::parse("welcome@en").expect("template");
    hub.report_template_status(&template, ApprovalStatus::Pending, "")
        .await
        .expect("pending");
    hub.report_template_status(&template, ApprovalStatus::Rejected, "INVALID_FORMAT")
        .await
        .expect("rejected");
    // The same report again appends nothing, so raises nothing.
    hub.report_template_status(&template, ApprovalStatus::Rejected, "INVALID_FORMAT")
        .await
        .expect("unchanged");
    hub.record_provider_notice(
        wagate_domain::decide::RecordProviderNotice {
            provider: wagate_domain::ProviderKind::Meta,
            account: Some("102938475610293".into()),
            kind: "phone_number_quality_update".into(),
            details: vec![
                ("value.display_phone_number".into(), "15555550100".into()),
                ("value.event".into(), "FLAGGED".into()),
            ],
        },
        "quality-1",
    )
    .await
    .expect("notice");
    let items = hub
        .review_items(ReviewFilter::default())
        .await
        .expect("items");
    let reasons: Vec<_> = items.iter().map(|item| item.reason).collect();
    assert_eq!(
        reasons,
        [ReviewReason::TemplateNotSendable, ReviewReason::QualityDrop]
    );
    assert_eq!(items[0].subject.template, Some(template));
    assert!(items[0].detail.contains("INVALID_FORMAT"));
    assert_eq!(
        items[1].subject.sender.as_ref().map(ToString::to_string),
        Some("whatsapp:+15555550100".to_owned())
    );
}
