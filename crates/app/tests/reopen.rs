//! Helpers for the tests that close and reopen a hub on the same sled folder (the snapshot
//! tests of the projection, the aggregates and the ops counts).

use std::sync::Arc;

use chrono::{TimeZone, Utc};
use futures::future::join_all;
use wagate_app::{FixedClock, Hub};
use wagate_domain::{
    ContactId, MessagingLimit, PhoneNumber, Policy, PortfolioId, ProviderMessageRef,
};
use wagate_store::{Options, Store};

use crate::support::*;

pub fn hub_on(store: &Store) -> TestHub {
    let clock = FixedClock::new(
        Utc.with_ymd_and_hms(2026, 11, 25, 9, 0, 0)
            .single()
            .expect("time"),
    );
    let hub = Hub::open(
        Arc::new(store.clone()),
        Arc::new(clock.clone()),
        Policy::default(),
    )
    .expect("hub");
    TestHub {
        hub,
        clock,
        store: store.clone(),
    }
}

pub fn open(dir: &std::path::Path) -> Store {
    Store::open(dir, Options::default()).expect("open store")
}

pub fn close(t: TestHub) {
    drop(t.hub);
    t.store.close().expect("close");
}

pub fn phone(n: usize) -> String {
    format!("+4179{n:07}")
}

/// A campaign of `rows` rows to `phone(0..rows)`, waiting at the messaging limit.
pub fn campaign(rows: usize) -> wagate_app::NewCampaign {
    use wagate_domain::campaign::{OnLimit, RowInput};
    wagate_app::NewCampaign {
        id: wagate_domain::CampaignId::from_uuid(uuid::Uuid::now_v7()).expect("v7"),
        sender: sender(),
        workflow: "appointment_scheduling".into(),
        template: template(),
        rows: (0..rows)
            .map(|n| RowInput {
                to: phone(n),
                variables: vec![("1".into(), "Lea".into()), ("2".into(), "Thu".into())],
            })
            .collect(),
        on_limit: OnLimit::Wait,
    }
}

/// A ready hub, contacts opted in, and no tier limit (many recipients in a day).
pub async fn ready_for(t: &TestHub, contacts: usize) {
    ready(&t.hub).await;
    t.hub
        .set_messaging_limit(
            &PortfolioId::parse("default").expect("portfolio"),
            MessagingLimit::Unlimited,
        )
        .await
        .expect("limit");
    let contacts: Vec<ContactId> = (0..contacts)
        .map(|n| ContactId::Phone(PhoneNumber::parse(&phone(n)).expect("phone")))
        .collect();
    for chunk in contacts.chunks(250) {
        join_all(chunk.iter().map(|contact| opt_in(&t.hub, contact))).await;
    }
}

pub fn reference(n: usize) -> ProviderMessageRef {
    ProviderMessageRef::parse(&format!("SM{n:032x}")).expect("sid")
}
