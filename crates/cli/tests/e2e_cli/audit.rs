//! `wagate audit`: a clean log passes, a forged dispatch after an opt-out is found with its
//! position (exit 3), and an export file is audited like the database.

use serde_json::Value;
use wagate_domain::{Event, MessageEvent};
use wagate_store::{AppendRequest, ExpectedVersion, Store, StreamId};

use crate::support::*;

fn json(output: &std::process::Output) -> Value {
    serde_json::from_str(&stdout(output)).unwrap_or_else(|error| {
        panic!(
            "audit --json printed no JSON ({error}):\n{}\n{}",
            stdout(output),
            stderr(output)
        )
    })
}

/// A template allowed for Lea, then her STOP, then a dispatch claim forged straight into the
/// store (what a buggy or bypassed dispatcher would leave behind). Returns its position.
async fn forged_log(dir: &std::path::Path) -> u64 {
    let log = LogBuilder::open(dir);
    log.ready().await;
    log.opt_in(LEA).await;
    let message = log.send_template(LEA).await.expect("template to Lea");
    log.inbound(LEA, "STOP", "in-stop").await;
    let at = log.hub.now();
    log.close();

    let forged: Event = MessageEvent::DispatchClaimed {
        message_id: message,
        attempt: 1,
        at,
    }
    .into();
    forge(
        dir,
        format!("message:{message}"),
        ExpectedVersion::Any,
        forged,
    )
    .await
}

/// Appends `event` straight through the store, bypassing the hub; returns its position.
async fn forge(
    dir: &std::path::Path,
    stream: String,
    expected: ExpectedVersion,
    event: Event,
) -> u64 {
    let dir = dir.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let store = Store::open(&dir, wagate_store::Options::default()).expect("reopen");
        let record = wagate_store::persisted::encode(&event, uuid::Uuid::now_v7());
        let stream = StreamId::new(stream).expect("stream");
        let outcome = store
            .append_blocking(AppendRequest::single(stream, expected, vec![record]))
            .expect("append the forged event");
        let position = outcome
            .committed()
            .and_then(|committed| committed.first_position())
            .expect("position of the forged event");
        store.close().expect("close");
        position
    })
    .await
    .expect("forge thread")
}

#[tokio::test]
async fn a_clean_log_from_the_app_passes() {
    let dir = tempfile::tempdir().expect("tempdir");
    clean_log(dir.path()).await;
    let data = dir.path().to_str().expect("utf-8 path");

    let output = wagate(&["audit", "--data", data]);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}{}",
        stdout(&output),
        stderr(&output)
    );
    let text = stdout(&output);
    assert!(text.contains("violations: none"), "{text}");
    assert!(
        text.contains("contacts            2 (1 opted in, 0 opted out)"),
        "{text}"
    );

    let output = wagate(&["audit", "--data", data, "--json"]);
    assert_eq!(output.status.code(), Some(0));
    let summary = json(&output);
    assert_eq!(summary["ok"], true);
    assert_eq!(summary["violations_total"], 0);
    assert_eq!(summary["messages_by_status"]["read"], 1);
    assert_eq!(summary["messages_by_status"]["delivered"], 2);
    assert_eq!(summary["messages_by_status"]["refused"], 3);
    assert_eq!(summary["refusals_by_rule"]["window_closed"], 2);
    assert_eq!(summary["refusals_by_rule"]["opted_out"], 1);
    assert_eq!(summary["dispatch_claims"], 3);
}

#[tokio::test]
async fn a_forged_dispatch_after_an_opt_out_is_found_with_its_position() {
    let dir = tempfile::tempdir().expect("tempdir");
    let position = forged_log(dir.path()).await;
    let data = dir.path().to_str().expect("utf-8 path");

    let output = wagate(&["audit", "--data", data]);
    assert_eq!(
        output.status.code(),
        Some(3),
        "{}{}",
        stdout(&output),
        stderr(&output)
    );
    let text = stdout(&output);
    assert!(text.contains("VIOLATIONS: 1"), "{text}");
    assert!(
        text.contains(&format!("position {position} [dispatch_after_opt_out]")),
        "{text}"
    );

    let output = wagate(&["audit", "--data", data, "--json"]);
    assert_eq!(output.status.code(), Some(3));
    let summary = json(&output);
    assert_eq!(summary["ok"], false);
    assert_eq!(summary["violations_total"], 1);
    let violation = &summary["violations"][0];
    assert_eq!(violation["position"], position);
    assert_eq!(violation["check"], "dispatch_after_opt_out");
    assert!(violation["message"]
        .as_str()
        .is_some_and(|m| m.contains(LEA) && m.contains("opted out")));
}

#[tokio::test]
async fn an_export_file_is_audited_like_the_database() {
    let dir = tempfile::tempdir().expect("tempdir");
    let position = forged_log(dir.path()).await;
    let data = dir.path().to_str().expect("utf-8 path");
    let out = tempfile::tempdir().expect("tempdir");
    let file = out.path().join("log.jsonl");
    let file = file.to_str().expect("utf-8 path");

    let output = wagate(&["export", "--data", data, "--output", file]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let output = wagate(&["audit", "--file", file, "--json"]);
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
    let summary = json(&output);
    assert_eq!(summary["violations"][0]["position"], position);
    assert_eq!(summary["violations"][0]["check"], "dispatch_after_opt_out");

    // The same file without the forged line (it is the last one) is clean...
    let text = std::fs::read_to_string(file).expect("read export");
    let lines: Vec<&str> = text.lines().collect();
    let clean = out.path().join("clean.jsonl");
    std::fs::write(&clean, lines[..lines.len() - 1].join("\n") + "\n").expect("write");
    let clean = clean.to_str().expect("utf-8 path");
    let output = wagate(&["audit", "--file", clean]);
    assert_eq!(output.status.code(), Some(0), "{}", stdout(&output));

    // ...and a file with a line missing has a gap, reported where it is.
    let mut gapped: Vec<&str> = lines[..lines.len() - 1].to_vec();
    gapped.remove(3);
    let gap = out.path().join("gap.jsonl");
    std::fs::write(&gap, gapped.join("\n") + "\n").expect("write");
    let output = wagate(&["audit", "--file", gap.to_str().expect("utf-8 path")]);
    assert_eq!(output.status.code(), Some(3));
    assert!(
        stdout(&output).contains("position 5 [position_gap]"),
        "{}",
        stdout(&output)
    );
}

#[tokio::test]
async fn a_freeform_reply_outside_the_window_is_a_violation() {
    // Forged: a ReplySent to a contact who never wrote.
    let dir = tempfile::tempdir().expect("tempdir");
    let log = LogBuilder::open(dir.path());
    log.ready().await;
    let at = log.hub.now();
    log.close();
    let message = wagate_domain::MessageId::from_uuid(uuid::Uuid::now_v7()).expect("id");
    let reply: Event = MessageEvent::ReplySent {
        message_id: message,
        contact: contact(MAX),
        sender: sender(),
        text: "Hi".into(),
        rich: None,
        workflow: wagate_domain::Workflow::parse("lead_qualification").expect("workflow"),
        at,
    }
    .into();
    forge(
        dir.path(),
        format!("message:{message}"),
        ExpectedVersion::NoStream,
        reply,
    )
    .await;

    let output = wagate(&["audit", "--data", dir.path().to_str().expect("utf-8")]);
    assert_eq!(output.status.code(), Some(3));
    let text = stdout(&output);
    assert!(text.contains("[window_closed]"), "{text}");
    assert!(text.contains("never written"), "{text}");
}

// ---------------------------------------------------------------------------------------------
// The rules checked since issue 11: each with a log the real hub wrote (which must audit clean,
// refusals included), then one forged event (which must be found, by rule and position).

/// A TemplateSent forged straight into the store, as a bypassed gate would leave it.
fn forged_template(
    contact: wagate_domain::ContactId,
    template: wagate_domain::TemplateId,
    category: wagate_domain::TemplateCategory,
    workflow: &str,
    at: wagate_domain::Timestamp,
) -> (wagate_domain::MessageId, Event) {
    let message = wagate_domain::MessageId::from_uuid(uuid::Uuid::now_v7()).expect("id");
    let event = MessageEvent::TemplateSent {
        media: Vec::new(),
        message_id: message,
        contact,
        sender: sender(),
        template,
        category,
        variables: vec![("1".into(), "Lea".into()), ("2".into(), "Thu".into())],
        workflow: wagate_domain::Workflow::parse(workflow).expect("workflow"),
        at,
    }
    .into();
    (message, event)
}

/// Plants `event` on its message stream; returns its position.
async fn plant(dir: &std::path::Path, message: wagate_domain::MessageId, event: Event) -> u64 {
    forge(
        dir,
        format!("message:{message}"),
        ExpectedVersion::NoStream,
        event,
    )
    .await
}

/// `wagate audit --data DIR --json` plus `extra`: the exit code and the summary.
fn audit_json(dir: &std::path::Path, extra: &[&str]) -> (Option<i32>, Value) {
    let mut args = vec!["audit", "--data", dir.to_str().expect("utf-8"), "--json"];
    args.extend_from_slice(extra);
    let output = wagate(&args);
    (output.status.code(), json(&output))
}

/// The audit finds exactly one violation: `check` at `position`, with `words` in its sentence.
fn assert_one_violation(dir: &std::path::Path, check: &str, position: u64, words: &str) {
    let (code, summary) = audit_json(dir, &[]);
    assert_eq!(code, Some(3), "{summary:#}");
    assert_eq!(summary["violations_total"], 1, "{summary:#}");
    let violation = &summary["violations"][0];
    assert_eq!(violation["check"], check, "{summary:#}");
    assert_eq!(violation["position"], position, "{summary:#}");
    assert!(
        violation["message"]
            .as_str()
            .is_some_and(|message| message.contains(words)),
        "{summary:#}"
    );
    // The text form names the rule at its position too.
    let output = wagate(&["audit", "--data", dir.to_str().expect("utf-8")]);
    assert_eq!(output.status.code(), Some(3));
    assert!(
        stdout(&output).contains(&format!("position {position} [{check}]")),
        "{}",
        stdout(&output)
    );
}

fn assert_clean(dir: &std::path::Path) -> Value {
    let (code, summary) = audit_json(dir, &[]);
    assert_eq!(code, Some(0), "{summary:#}");
    summary
}

#[tokio::test]
async fn a_template_to_a_new_recipient_over_the_portfolio_limit_is_tier_limit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = LogBuilder::open(dir.path());
    log.ready().await;
    let portfolio = wagate_domain::PortfolioId::parse("default").expect("portfolio");
    log.hub
        .set_messaging_limit(&portfolio, wagate_domain::MessagingLimit::Limited(1))
        .await
        .expect("limit");
    log.opt_in(LEA).await;
    log.opt_in(MAX).await;
    log.send_template(LEA)
        .await
        .expect("Lea is the first recipient");
    log.send_template(LEA).await.expect("Lea again is not new");
    let refused = log.send_template(MAX).await;
    assert!(
        matches!(&refused, Err(wagate_app::AppError::Refused(r)) if r.rule.as_str() == "tier_limit"),
        "{refused:?}"
    );
    // Max writes: inside his window a template does not count toward the limit.
    log.inbound(MAX, "Hello", "in-max").await;
    log.send_template(MAX).await.expect("inside Max's window");
    let at = log.hub.now();
    log.close();
    let summary = assert_clean(dir.path());
    assert_eq!(summary["refusals_by_rule"]["tier_limit"], 1);

    // The refused send, forged as allowed for Zoe, who never wrote.
    let zoe = "+41790000003";
    let (message, event) = forged_template(
        contact(zoe),
        template(),
        wagate_domain::TemplateCategory::Utility,
        "appointment_scheduling",
        at,
    );
    // Zoe has no opt-in either: plant one first, so tier_limit is the only rule broken.
    forge(
        dir.path(),
        format!("contact:{zoe}"),
        ExpectedVersion::NoStream,
        wagate_domain::ContactEvent::OptedIn {
            contact: contact(zoe),
            source: wagate_domain::OptInSource::WebForm,
            evidence: "https://example.com/forms/9".into(),
            recorded_by: "ops".into(),
            wording_version: "v1".into(),
            evidence_at: at,
            at,
        }
        .into(),
    )
    .await;
    let position = plant(dir.path(), message, event).await;
    assert_one_violation(
        dir.path(),
        "tier_limit",
        position,
        "portfolio default had already reached its limit of 1 unique recipients",
    );
    // A hub whose default is higher does not change a portfolio's limit set in the log.
    let (code, _) = audit_json(dir.path(), &["--messaging-limit", "unlimited"]);
    assert_eq!(code, Some(3));
}

#[tokio::test]
async fn a_workflow_outside_the_allowlist_is_found_and_the_allowlist_is_a_flag() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = LogBuilder::open(dir.path());
    log.ready().await;
    log.opt_in(LEA).await;
    log.send_template(LEA).await.expect("template to Lea");
    let refused = log
        .hub
        .send(
            wagate_app::SendRequest {
                to: LEA.into(),
                sender: None,
                workflow: Some("open_chat".into()),
                content: wagate_domain::SendContent::Freeform { text: "Hi".into() },
            },
            wagate_app::SendOptions::default(),
        )
        .await;
    assert!(refused.is_err(), "{refused:?}");
    let at = log.hub.now();
    log.close();
    assert_clean(dir.path());

    let (message, event) = forged_template(
        contact(LEA),
        template(),
        wagate_domain::TemplateCategory::Utility,
        "open_chat",
        at,
    );
    let position = plant(dir.path(), message, event).await;
    assert_one_violation(
        dir.path(),
        "workflow_not_allowed",
        position,
        "\"open_chat\", which is not in the allowlist",
    );
    // The allowlist is the hub's setting: a hub that allows open_chat makes the log clean...
    let (code, summary) = audit_json(
        dir.path(),
        &["--workflows", "appointment_scheduling, open_chat"],
    );
    assert_eq!(code, Some(0), "{summary:#}");
    // ...one that does not allow what the hub sent finds every send.
    let (code, summary) = audit_json(dir.path(), &["--workflows", "status_update"]);
    assert_eq!(code, Some(3));
    assert_eq!(summary["violations_total"], 2, "{summary:#}");
    let output = wagate(&[
        "audit",
        "--data",
        dir.path().to_str().expect("utf-8"),
        "--workflows",
        " , ",
    ]);
    assert_eq!(output.status.code(), Some(1), "{}", stdout(&output));
    assert!(
        stderr(&output).contains("--workflows (WAGATE_WORKFLOWS) names no workflow"),
        "{}",
        stderr(&output)
    );
}

#[tokio::test]
async fn a_send_to_a_contact_flagged_not_on_whatsapp_is_found_until_they_write() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = LogBuilder::open(dir.path());
    log.ready().await;
    log.opt_in(LEA).await;
    let flag = |raised| wagate_domain::decide::SetContactFlag {
        contact: contact(LEA),
        flag: wagate_domain::ContactFlag::NotOnWhatsapp,
        raised,
        reason: "Twilio 63003".into(),
    };
    log.hub.set_contact_flag(flag(true)).await.expect("flag");
    let refused = log.send_template(LEA).await;
    assert!(
        matches!(&refused, Err(wagate_app::AppError::Refused(r)) if r.rule.as_str() == "not_on_whatsapp"),
        "{refused:?}"
    );
    // An inbound proves she is on WhatsApp: allowed again.
    log.inbound(LEA, "Hi, it's me", "in-lea").await;
    log.send_template(LEA).await.expect("after her message");
    log.hub.set_contact_flag(flag(true)).await.expect("flag");
    let at = log.hub.now();
    log.close();
    let summary = assert_clean(dir.path());
    assert_eq!(summary["refusals_by_rule"]["not_on_whatsapp"], 1);

    let (message, event) = forged_template(
        contact(LEA),
        template(),
        wagate_domain::TemplateCategory::Utility,
        "appointment_scheduling",
        at,
    );
    let position = plant(dir.path(), message, event).await;
    assert_one_violation(
        dir.path(),
        "not_on_whatsapp",
        position,
        "reported not to be on WhatsApp",
    );
}

#[tokio::test]
async fn a_marketing_template_to_a_contact_who_paused_marketing_is_found() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = LogBuilder::open(dir.path());
    log.ready().await;
    let promo =
        wagate_domain::TemplateId::parse("HXffffffffffffffffffffffffffffffff").expect("template");
    log.hub
        .register_template(wagate_domain::decide::RegisterTemplate {
            template: promo.clone(),
            name: "open_house".into(),
            language: "en".into(),
            category: wagate_domain::TemplateCategory::Marketing,
            placeholders: vec!["1".into(), "2".into()],
        })
        .await
        .expect("register");
    log.hub
        .set_template_status(
            &promo,
            wagate_domain::ApprovalStatus::Approved,
            "approved by Meta",
        )
        .await
        .expect("approve");
    log.opt_in(LEA).await;
    log.hub
        .set_contact_flag(wagate_domain::decide::SetContactFlag {
            contact: contact(LEA),
            flag: wagate_domain::ContactFlag::MarketingPaused,
            raised: true,
            reason: "Meta 131050".into(),
        })
        .await
        .expect("flag");
    let promo_send = |log: &LogBuilder| {
        let request = wagate_app::SendRequest {
            to: LEA.into(),
            sender: None,
            workflow: Some("appointment_scheduling".into()),
            content: wagate_domain::SendContent::Template {
                media: Vec::new(),
                template: promo.clone(),
                variables: [("1".into(), "Lea".into()), ("2".into(), "Sat".into())].into(),
            },
        };
        let hub = log.hub.clone();
        async move { hub.send(request, wagate_app::SendOptions::default()).await }
    };
    let refused = promo_send(&log).await;
    assert!(
        matches!(&refused, Err(wagate_app::AppError::Refused(r)) if r.rule.as_str() == "marketing_paused"),
        "{refused:?}"
    );
    // A utility template is unaffected.
    log.send_template(LEA).await.expect("utility template");
    let at = log.hub.now();
    log.close();
    let summary = assert_clean(dir.path());
    assert_eq!(summary["refusals_by_rule"]["marketing_paused"], 1);

    let (message, event) = forged_template(
        contact(LEA),
        promo,
        wagate_domain::TemplateCategory::Marketing,
        "appointment_scheduling",
        at,
    );
    let position = plant(dir.path(), message, event).await;
    assert_one_violation(
        dir.path(),
        "marketing_paused",
        position,
        "paused marketing messages",
    );
}

#[tokio::test]
async fn a_send_to_a_recipient_that_is_not_a_number_is_invalid_number() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = LogBuilder::open(dir.path());
    log.ready().await;
    log.opt_in(LEA).await;
    let refused = log.send_template("0041790000001").await;
    assert!(
        matches!(&refused, Err(wagate_app::AppError::Refused(r)) if r.rule.as_str() == "invalid_number"),
        "{refused:?}"
    );
    log.send_template(LEA).await.expect("a valid number");
    let at = log.hub.now();
    log.close();
    let summary = assert_clean(dir.path());
    assert_eq!(summary["refusals_by_rule"]["invalid_number"], 1);

    // A business-scoped user id is a contact, never a number to send to.
    let bsuid = wagate_domain::ContactId::parse("bsuid:US.1234567890").expect("bsuid");
    let (message, event) = forged_template(
        bsuid,
        template(),
        wagate_domain::TemplateCategory::Utility,
        "appointment_scheduling",
        at,
    );
    let position = plant(dir.path(), message, event).await;
    assert_one_violation(
        dir.path(),
        "invalid_number",
        position,
        "not an E.164 number",
    );
}

// ---------------------------------------------------------------------------------------------
// The rules issue 11 added: the window per sender, consent only from its sources, linked
// identities, re-authorization. Each again with a log the real hub wrote (clean), then one
// planted event (found, by rule and position).

/// Appends `event` straight through the store as recorded by `actor` (`kind`, `name`); returns
/// its position.
async fn forge_as(
    dir: &std::path::Path,
    stream: String,
    event: Event,
    actor: Option<(&str, &str)>,
) -> u64 {
    let dir = dir.to_path_buf();
    let origin = actor.map(|(kind, name)| wagate_store::Origin {
        kind: kind.into(),
        name: name.into(),
    });
    tokio::task::spawn_blocking(move || {
        let store = Store::open(&dir, wagate_store::Options::default()).expect("reopen");
        let mut record = wagate_store::persisted::encode(&event, uuid::Uuid::now_v7());
        record.origin = origin;
        let stream = StreamId::new(stream).expect("stream");
        let outcome = store
            .append_blocking(AppendRequest::single(
                stream,
                ExpectedVersion::Any,
                vec![record],
            ))
            .expect("append the forged event");
        let position = outcome
            .committed()
            .and_then(|committed| committed.first_position())
            .expect("position of the forged event");
        store.close().expect("close");
        position
    })
    .await
    .expect("forge thread")
}

/// An opt-in for `number` with `source`, its evidence dated `evidence_at`.
fn opted_in(
    number: &str,
    source: wagate_domain::OptInSource,
    evidence_at: wagate_domain::Timestamp,
    at: wagate_domain::Timestamp,
) -> Event {
    wagate_domain::ContactEvent::OptedIn {
        contact: contact(number),
        source,
        evidence: "https://example.com/forms/9".into(),
        recorded_by: "ops".into(),
        wording_version: "v1".into(),
        evidence_at,
        at,
    }
    .into()
}

fn operator(log: &LogBuilder) -> wagate_app::Hub {
    log.hub.acting(wagate_domain::Actor::token(
        wagate_domain::Role::Operator,
        "ops-alice",
    ))
}

#[tokio::test]
async fn a_reply_from_a_number_the_contact_did_not_write_to_is_window_closed() {
    let other = "whatsapp:+15550002222";
    let other_sender = wagate_domain::WhatsAppAddress::parse(other).expect("sender");
    let dir = tempfile::tempdir().expect("tempdir");
    let log = LogBuilder::open(dir.path());
    log.ready().await;
    log.hub
        .register_sender(wagate_domain::decide::RegisterSender {
            sender: other_sender.clone(),
            provider: wagate_domain::ProviderKind::Sandbox,
            portfolio: wagate_domain::PortfolioId::parse("default").expect("portfolio"),
            rate: Default::default(),
            meta_phone_number_id: None,
        })
        .await
        .expect("register");
    log.hub
        .authorize_sender(&other_sender, "ops@example.com")
        .await
        .expect("authorize");
    // Lea writes to the first number: it may reply, the other may not.
    log.inbound(LEA, "Is the flat available?", "in-lea").await;
    let reply = |from: &wagate_domain::WhatsAppAddress| wagate_app::SendRequest {
        to: LEA.into(),
        sender: Some(from.clone()),
        workflow: Some("appointment_scheduling".into()),
        content: wagate_domain::SendContent::Freeform { text: "Yes".into() },
    };
    log.hub
        .send(reply(&sender()), wagate_app::SendOptions::default())
        .await
        .expect("the number she wrote to");
    let refused = log
        .hub
        .send(reply(&other_sender), wagate_app::SendOptions::default())
        .await;
    assert!(
        matches!(&refused, Err(wagate_app::AppError::Refused(r)) if r.rule.as_str() == "window_closed"),
        "{refused:?}"
    );
    let at = log.hub.now();
    log.close();
    let summary = assert_clean(dir.path());
    assert_eq!(summary["refusals_by_rule"]["window_closed"], 1);

    let message = wagate_domain::MessageId::from_uuid(uuid::Uuid::now_v7()).expect("id");
    let forged: Event = MessageEvent::ReplySent {
        message_id: message,
        contact: contact(LEA),
        sender: other_sender,
        text: "Yes".into(),
        rich: None,
        workflow: wagate_domain::Workflow::parse("appointment_scheduling").expect("workflow"),
        at,
    }
    .into();
    let position = plant(dir.path(), message, forged).await;
    assert_one_violation(
        dir.path(),
        "window_closed",
        position,
        &format!("never written to {other} (they last wrote to {SENDER}"),
    );
}

#[tokio::test]
async fn a_keyword_opt_in_recorded_through_the_api_is_found() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = LogBuilder::open(dir.path());
    log.ready().await;
    // The hub refuses keyword consent from the API...
    let refused = operator(&log)
        .opt_in(wagate_domain::decide::RecordOptIn {
            contact: contact(LEA),
            source: wagate_domain::OptInSource::Keyword,
            evidence: "she said START on the phone".into(),
            recorded_by: "ops".into(),
            wording_version: "v1".into(),
            evidence_at: None,
        })
        .await;
    assert!(refused.is_err(), "{refused:?}");
    // ...and records the contact's own START from her message.
    log.inbound(MAX, "START", "in-max").await;
    let at = log.hub.now();
    log.close();
    let summary = assert_clean(dir.path());
    assert_eq!(summary["contacts_opted_in"], 1);

    let position = forge_as(
        dir.path(),
        format!("contact:{LEA}"),
        opted_in(LEA, wagate_domain::OptInSource::Keyword, at, at),
        Some(("operator", "ops-alice")),
    )
    .await;
    assert_one_violation(
        dir.path(),
        "keyword_opt_in_not_from_contact",
        position,
        "by operator \"ops-alice\", not by a signed inbound webhook",
    );
}

#[tokio::test]
async fn an_opt_in_with_evidence_older_than_the_stop_is_found() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = LogBuilder::open(dir.path());
    log.ready().await;
    let before = log.hub.now();
    operator(&log)
        .opt_in(wagate_domain::decide::RecordOptIn {
            contact: contact(LEA),
            source: wagate_domain::OptInSource::WebForm,
            evidence: "https://example.com/forms/1".into(),
            recorded_by: "ops".into(),
            wording_version: log.published_wording().await,
            evidence_at: None,
        })
        .await
        .expect("opt in");
    log.advance(chrono::TimeDelta::minutes(10));
    log.inbound(LEA, "STOP", "in-stop").await;
    log.advance(chrono::TimeDelta::minutes(10));
    // The hub refuses the old form as new consent; a newer one opts her in again.
    let wording = log.published_wording().await;
    let again = |evidence_at| wagate_domain::decide::RecordOptIn {
        contact: contact(LEA),
        source: wagate_domain::OptInSource::WebForm,
        evidence: "https://example.com/forms/2".into(),
        recorded_by: "ops".into(),
        wording_version: wording.clone(),
        evidence_at: Some(evidence_at),
    };
    assert!(operator(&log).opt_in(again(before)).await.is_err());
    operator(&log)
        .opt_in(again(log.hub.now()))
        .await
        .expect("new evidence");
    log.advance(chrono::TimeDelta::minutes(10));
    log.inbound(LEA, "STOP", "in-stop-2").await;
    let at = log.hub.now();
    log.close();
    assert_clean(dir.path());

    let position = forge_as(
        dir.path(),
        format!("contact:{LEA}"),
        opted_in(LEA, wagate_domain::OptInSource::WebForm, before, at),
        Some(("operator", "ops-alice")),
    )
    .await;
    assert_one_violation(
        dir.path(),
        "opt_in_over_newer_stop",
        position,
        "not after the contact's newest opt-out",
    );
}

#[tokio::test]
async fn an_opt_in_recorded_by_the_agent_is_found() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = LogBuilder::open(dir.path());
    log.ready().await;
    operator(&log)
        .opt_in(wagate_domain::decide::RecordOptIn {
            contact: contact(LEA),
            source: wagate_domain::OptInSource::WebForm,
            evidence: "https://example.com/forms/1".into(),
            recorded_by: "ops".into(),
            wording_version: log.published_wording().await,
            evidence_at: None,
        })
        .await
        .expect("an operator records consent");
    let at = log.hub.now();
    log.close();
    assert_clean(dir.path());

    let position = forge_as(
        dir.path(),
        format!("contact:{MAX}"),
        opted_in(MAX, wagate_domain::OptInSource::WebForm, at, at),
        Some(("agent", "outreach-bot")),
    )
    .await;
    assert_one_violation(
        dir.path(),
        "opt_in_role_not_allowed",
        position,
        "by agent \"outreach-bot\": only an operator or a signed webhook may record consent",
    );
}

#[tokio::test]
async fn a_template_to_a_contact_whose_linked_identity_opted_out_is_found() {
    let bsuid = "bsuid:US.1234567890";
    let other = wagate_domain::ContactId::parse(bsuid).expect("bsuid");
    let dir = tempfile::tempdir().expect("tempdir");
    let log = LogBuilder::open(dir.path());
    log.ready().await;
    log.opt_in(LEA).await;
    log.hub
        .link_identities(
            wagate_domain::decide::LinkIdentities {
                contact: contact(LEA),
                other: other.clone(),
                source: wagate_domain::IdentitySource::Webhook,
            },
            Some("link-1"),
        )
        .await
        .expect("link");
    log.send_template(LEA).await.expect("before the STOP");
    // STOP under her business-scoped id: the hub refuses her number too.
    log.hub
        .receive_inbound(
            wagate_domain::decide::ReceiveInbound {
                details: Vec::new(),
                contact: other,
                sender: Some(sender()),
                provider_ref: None,
                kind: "text".into(),
                text: "STOP".into(),
                provider_at: None,
            },
            "in-bsuid-stop",
        )
        .await
        .expect("inbound");
    let refused = log.send_template(LEA).await;
    assert!(
        matches!(&refused, Err(wagate_app::AppError::Refused(r)) if r.rule.as_str() == "opted_out"),
        "{refused:?}"
    );
    let at = log.hub.now();
    log.close();
    assert_clean(dir.path());

    let (message, event) = forged_template(
        contact(LEA),
        template(),
        wagate_domain::TemplateCategory::Utility,
        "appointment_scheduling",
        at,
    );
    let position = plant(dir.path(), message, event).await;
    assert_one_violation(
        dir.path(),
        "linked_identity_opted_out",
        position,
        &format!("while {bsuid}, linked to the contact as the same person, had opted out"),
    );
}

#[tokio::test]
async fn a_template_from_a_sender_moved_to_another_portfolio_is_found() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = LogBuilder::open(dir.path());
    log.ready().await;
    log.opt_in(LEA).await;
    log.send_template(LEA).await.expect("authorized");
    log.hub
        .register_sender(wagate_domain::decide::RegisterSender {
            sender: sender(),
            provider: wagate_domain::ProviderKind::Sandbox,
            portfolio: wagate_domain::PortfolioId::parse("other").expect("portfolio"),
            rate: Default::default(),
            meta_phone_number_id: None,
        })
        .await
        .expect("re-register");
    let refused = log.send_template(LEA).await;
    assert!(
        matches!(&refused, Err(wagate_app::AppError::Refused(r)) if r.rule.as_str() == "channel_not_authorized"),
        "{refused:?}"
    );
    let at = log.hub.now();
    log.close();
    assert_clean(dir.path());

    let (message, event) = forged_template(
        contact(LEA),
        template(),
        wagate_domain::TemplateCategory::Utility,
        "appointment_scheduling",
        at,
    );
    let position = plant(dir.path(), message, event).await;
    assert_one_violation(
        dir.path(),
        "sender_not_reauthorized",
        position,
        "registration changed (portfolio default to other at",
    );
}

/// What the hub writes for late and replayed deliveries, group messages and several numbers
/// (the cases the audit's window and consent model used to misjudge) audits clean.
#[tokio::test]
async fn late_deliveries_replays_groups_and_second_numbers_audit_clean() {
    let other = wagate_domain::WhatsAppAddress::parse("whatsapp:+15550002222").expect("sender");
    let dir = tempfile::tempdir().expect("tempdir");
    let log = LogBuilder::open(dir.path());
    log.ready().await;
    log.hub
        .register_sender(wagate_domain::decide::RegisterSender {
            sender: other.clone(),
            provider: wagate_domain::ProviderKind::Meta,
            portfolio: wagate_domain::PortfolioId::parse("default").expect("portfolio"),
            rate: Default::default(),
            meta_phone_number_id: Some("1234".into()),
        })
        .await
        .expect("register");
    log.hub
        .authorize_sender(&other, "ops@example.com")
        .await
        .expect("authorize");
    let webhook = log.hub.acting(wagate_domain::Actor::webhook("meta"));
    let inbound = |number: &str, to: &wagate_domain::WhatsAppAddress, text: &str, ago: i64| {
        wagate_domain::decide::ReceiveInbound {
            details: Vec::new(),
            contact: contact(number),
            sender: Some(to.clone()),
            provider_ref: None,
            kind: "text".into(),
            text: text.into(),
            provider_at: Some(log.hub.now() - chrono::TimeDelta::minutes(ago)),
        }
    };
    let reply = |number: &str, from: &wagate_domain::WhatsAppAddress| wagate_app::SendRequest {
        to: number.into(),
        sender: Some(from.clone()),
        workflow: Some("appointment_scheduling".into()),
        content: wagate_domain::SendContent::Freeform { text: "Yes".into() },
    };
    let options = wagate_app::SendOptions::default;
    // Lea's STOP arrives; her START, written before it, arrives later: she stays out.
    webhook
        .receive_inbound(inbound(LEA, &other, "STOP", 5), "w-1")
        .await
        .expect("stop");
    webhook
        .receive_inbound(inbound(LEA, &other, "START", 10), "w-2")
        .await
        .expect("late start");
    assert!(log.send_template(LEA).await.is_err());
    // Written 20 h before it arrived: 4 h of window, with that number only.
    webhook
        .receive_inbound(inbound(MAX, &other, "Hello?", 20 * 60), "w-3")
        .await
        .expect("late hello");
    webhook
        .send(reply(MAX, &other), options())
        .await
        .expect("inside the window");
    assert!(webhook
        .send(reply(MAX, &sender()), options())
        .await
        .is_err());
    // He writes to the first number too; then Meta refuses a reply from the other one as
    // outside its window (131047): that closes the other number's window only.
    webhook
        .receive_inbound(inbound(MAX, &sender(), "Still there?", 0), "w-3b")
        .await
        .expect("hello to the first number");
    let refused_by_meta = webhook
        .send(reply(MAX, &other), options())
        .await
        .expect("inside the window")
        .message_id;
    let claimed = log.hub.claim(refused_by_meta).await.expect("claim");
    log.hub
        .record_outcome(wagate_domain::decide::RecordOutcome {
            message_id: refused_by_meta,
            attempt: claimed.attempt,
            outcome: wagate_domain::decide::DispatchOutcome::Rejected {
                error: wagate_domain::ProviderError {
                    provider: wagate_domain::ProviderKind::Meta,
                    code: Some(131047),
                    http_status: Some(400),
                    message: "Re-engagement message".into(),
                },
            },
            jitter: chrono::TimeDelta::zero(),
        })
        .await
        .expect("outcome");
    assert!(webhook.send(reply(MAX, &other), options()).await.is_err());
    webhook
        .send(reply(MAX, &sender()), options())
        .await
        .expect("the first number's window is open");
    log.advance(chrono::TimeDelta::hours(5));
    assert!(webhook.send(reply(MAX, &other), options()).await.is_err());
    // A replay of an 8-day-old message opens nothing; a group message neither.
    let zoe = "+41790000003";
    webhook
        .receive_inbound(inbound(zoe, &other, "START", 8 * 24 * 60), "w-4")
        .await
        .expect("replay");
    log.hub
        .receive_group_message(
            wagate_domain::decide::ReceiveGroupMessage {
                contact: contact(zoe),
                group: "group-1".into(),
                sender: Some(other.clone()),
                provider_ref: None,
                kind: "text".into(),
                text: "hi all".into(),
            },
            "w-5",
        )
        .await
        .expect("group message");
    assert!(webhook.send(reply(zoe, &other), options()).await.is_err());
    assert!(log.send_template(zoe).await.is_err());
    // Her own START, now, opts her in (from the webhook).
    webhook
        .receive_inbound(inbound(zoe, &other, "START", 0), "w-6")
        .await
        .expect("start");
    webhook
        .send(reply(zoe, &other), options())
        .await
        .expect("her window");
    drop(webhook);
    log.close();
    let summary = assert_clean(dir.path());
    assert_eq!(
        summary["refusals_by_rule"]["window_closed"], 4,
        "{summary:#}"
    );
    assert_eq!(summary["contacts_opted_in"], 1, "{summary:#}");
    assert_eq!(summary["contacts_opted_out"], 1, "{summary:#}");
}
