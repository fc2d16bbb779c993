//! Meta's account and template notices through the router: acted on once, recorded through the
//! single notice path, and followed by the gates.

use super::*;

/// Posts `body` to Meta's webhook, signed as Meta would.
async fn meta_post(app: &TestApp, body: &Value) -> Answer {
    let bytes = serde_json::to_vec(body).expect("json");
    let signature =
        wagate_providers::meta::compute_signature(&Secret::new(META_APP_SECRET), &bytes);
    call(
        app,
        Request::post("/webhooks/meta")
            .header("X-Hub-Signature-256", signature)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(bytes))
            .expect("request"),
    )
    .await
}

fn fixture_json(name: &str) -> Value {
    serde_json::from_slice(&fixture(name)).expect("fixture json")
}

/// `SENDER` as an authorized Cloud API number.
async fn meta_sender(app: &TestApp) {
    let registered = call(
        app,
        api(
            Method::POST,
            "/v1/senders",
            Some(json!({"address": SENDER, "provider": "meta", "meta_phone_number_id": "1099"})),
        ),
    )
    .await;
    assert_eq!(
        registered.status,
        StatusCode::CREATED,
        "{}",
        registered.text()
    );
    authorize(app).await;
}

async fn authorize(app: &TestApp) {
    let authorized = call(
        app,
        api(
            Method::POST,
            &format!("/v1/senders/{SENDER}/authorize"),
            Some(json!({"by": "ops@example.com"})),
        ),
    )
    .await;
    assert_eq!(authorized.status, StatusCode::OK, "{}", authorized.text());
}

async fn may_send(app: &TestApp) -> bool {
    let senders = call(app, api(Method::GET, "/v1/senders", None))
        .await
        .json();
    senders
        .as_array()
        .expect("list")
        .iter()
        .find(|s| s["address"] == SENDER)
        .expect("sender")["may_send"]
        .as_bool()
        .expect("bool")
}

/// A restriction suspends the sender once: after an operator authorized it again, Meta's
/// redelivery of the same notice is a duplicate, not a second suspension.
#[tokio::test]
async fn a_redelivered_account_notice_is_not_acted_on_twice() {
    let app = app();
    meta_sender(&app).await;
    let notice = fixture_json("meta_webhook_account_update_restriction.json");
    let first = meta_post(&app, &notice).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text());
    assert!(!may_send(&app).await, "the restriction suspends the sender");

    authorize(&app).await;
    let before = head(&app);
    let again = meta_post(&app, &notice).await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.text());
    assert_eq!(again.json()["appended"], 0, "{}", again.text());
    assert_eq!(head(&app), before, "a redelivery appends nothing");
    assert!(may_send(&app).await, "a redelivery suspends nothing again");
}

/// Meta's `template_category_update` for `spring_offer` (en_US).
fn category_update(previous: &str, new: &str) -> Value {
    json!({
        "object": "whatsapp_business_account",
        "entry": [{"id": "102938475610293", "time": 1795598801, "changes": [{
            "field": "template_category_update",
            "value": {
                "message_template_id": 4455667788_u64,
                "message_template_name": "spring_offer",
                "message_template_language": "en_US",
                "previous_category": previous,
                "new_category": new
            }
        }]}]
    })
}

fn quality_update(event: &str) -> Value {
    let mut body = fixture_json("meta_webhook_phone_number_quality_update.json");
    body["entry"][0]["changes"][0]["value"]["event"] = json!(event);
    body
}

async fn send_offer(app: &TestApp) -> Answer {
    call(
        app,
        api(
            Method::POST,
            "/v1/messages",
            Some(
                json!({"from": SENDER, "to": CONTACT, "workflow": "status_update",
                        "template": {"content_sid": "spring_offer", "variables": {"1": "Lea"}}}),
            ),
        ),
    )
    .await
}

/// A quality drop is recorded on the sender by the provider; a category Meta moves the
/// template to is what the gates use; marketing from the flagged number is then refused
/// naming `sender_quality_dropped`, explained citing the drop, until Meta reports a recovery.
/// Quality and category webhooks are provider notices too, and a redelivery changes nothing.
#[tokio::test]
async fn a_quality_drop_pauses_marketing_and_meta_decides_the_category() {
    let app = app();
    meta_sender(&app).await;
    let wording = published_wording(&app).await;
    for (path, body) in [
        (
            "/v1/templates",
            json!({"content_sid": "spring_offer", "name": "spring_offer", "language": "en_US",
                   "category": "UTILITY", "placeholders": ["1"]}),
        ),
        (
            "/v1/templates/spring_offer/status",
            json!({"status": "approved", "reason": "Meta approved"}),
        ),
        (
            "/v1/contacts/+41790000001/opt-in",
            json!({"source": "web_form", "evidence": "https://example.com/f/1", "recorded_by": "agent",
                   "wording_version": wording}),
        ),
    ] {
        let answer = call(&app, api(Method::POST, path, Some(body))).await;
        assert!(answer.status.is_success(), "{path}: {}", answer.text());
    }

    let flagged = meta_post(&app, &quality_update("FLAGGED")).await;
    assert_eq!(flagged.status, StatusCode::OK, "{}", flagged.text());
    let (drop_position, drop) = logged(&app, "SenderQualityReported").remove(0);
    assert!(
        matches!(&drop, wagate_domain::Event::Sender(wagate_domain::SenderEvent::QualityReported { dropped: true, event, .. }) if event == "FLAGGED"),
        "{drop:?}"
    );
    let utility = send_offer(&app).await;
    assert_eq!(
        utility.status,
        StatusCode::ACCEPTED,
        "utility is not paused: {}",
        utility.text()
    );

    let moved = meta_post(&app, &category_update("UTILITY", "MARKETING")).await;
    assert_eq!(moved.status, StatusCode::OK, "{}", moved.text());
    assert_eq!(logged(&app, "TemplateCategoryReported").len(), 1);
    let notices: Vec<String> = logged(&app, "ProviderNoticeReceived")
        .into_iter()
        .filter_map(|(_, event)| match event {
            wagate_domain::Event::Provider(wagate_domain::ProviderEvent::NoticeReceived {
                kind,
                ..
            }) => Some(kind),
            _ => None,
        })
        .collect();
    assert!(
        notices.iter().any(|k| k == "template_category_update")
            && notices.iter().any(|k| k == "phone_number_quality_update"),
        "{notices:?}"
    );
    let before = head(&app);
    let again = meta_post(&app, &category_update("UTILITY", "MARKETING")).await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.text());
    assert_eq!(
        head(&app),
        before,
        "a redelivered category update changes nothing"
    );

    let refused = send_offer(&app).await;
    assert_eq!(
        refused.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        refused.text()
    );
    assert_eq!(refused.json()["error"]["rule"], "sender_quality_dropped");
    let (_, refusal) = logged(&app, "SendRefused").remove(0);
    let refused_id = match refusal {
        wagate_domain::Event::Message(event) => event.message_id().expect("id"),
        other => panic!("{other:?}"),
    };
    let explained = call(
        &app,
        api(
            Method::GET,
            &format!("/v1/messages/{refused_id}/explain"),
            None,
        ),
    )
    .await
    .json();
    assert_eq!(explained["rule"], "sender_quality_dropped");
    assert!(
        explained["facts"]
            .as_array()
            .expect("facts")
            .iter()
            .any(|fact| {
                fact["position"] == drop_position
                    && fact["text"].as_str().is_some_and(|t| t.contains("FLAGGED"))
            }),
        "the drop at {drop_position} is cited: {explained}"
    );

    let recovered = meta_post(&app, &quality_update("UNFLAGGED")).await;
    assert_eq!(recovered.status, StatusCode::OK, "{}", recovered.text());
    let sent = send_offer(&app).await;
    assert_eq!(
        sent.status,
        StatusCode::ACCEPTED,
        "recovered: {}",
        sent.text()
    );
}

/// A send of a created template is checked against its definition before anything is recorded:
/// a media header needs its media, a template without one takes none, a carousel one header
/// per card; each is a 400 naming the field, and the log does not move.
#[tokio::test]
async fn a_created_templates_send_carries_exactly_the_media_it_defines() {
    use wagate_domain::template::{HeaderFormat, TemplateCard, TemplateContent, TemplateHeader};
    let app = app();
    ready(&app).await;
    let image = |value: &str| TemplateHeader {
        format: HeaderFormat::Image,
        value: value.into(),
    };
    let create = |id: &str, content: TemplateContent| wagate_domain::decide::CreateTemplate {
        template: wagate_domain::TemplateId::parse(id).expect("id"),
        provider: if id == "twilio_photo" {
            wagate_domain::ProviderKind::Twilio
        } else {
            wagate_domain::ProviderKind::Meta
        },
        provider_ref: format!("{}", 1000 + id.len()),
        name: id.into(),
        language: "en".into(),
        category: wagate_domain::TemplateCategory::Utility,
        content,
        status: wagate_domain::ApprovalStatus::Approved,
        reason: String::new(),
    };
    let card = TemplateCard {
        header: image("https://example.com/flat.jpg"),
        body: "A flat".into(),
        buttons: vec![wagate_domain::template::TemplateButton {
            kind: wagate_domain::template::ButtonKind::QuickReply,
            text: "Visit".into(),
            value: String::new(),
        }],
    };
    for command in [
        create(
            "photo_offer",
            TemplateContent {
                body: "Hi {{1}}, new listings.".into(),
                header: Some(image("https://example.com/h.jpg")),
                buttons: Vec::new(),
                cards: Vec::new(),
            },
        ),
        create(
            "twilio_photo",
            TemplateContent {
                body: "Hi {{1}}, new listings.".into(),
                header: Some(image("https://example.com/h.jpg")),
                buttons: Vec::new(),
                cards: Vec::new(),
            },
        ),
        create(
            "plain_offer",
            TemplateContent {
                body: "Hi {{1}}, new listings.".into(),
                header: None,
                buttons: Vec::new(),
                cards: Vec::new(),
            },
        ),
        create(
            "listings",
            TemplateContent {
                body: "Hi {{1}}, new listings.".into(),
                header: None,
                buttons: Vec::new(),
                cards: vec![card.clone(), card],
            },
        ),
    ] {
        app.hub.create_template(command).await.expect("created");
    }
    let send = |id: &str, media: Value| {
        json!({"to": CONTACT, "workflow": "status_update",
               "template": {"id": id, "variables": {"1": "Lea"}, "media": media}})
    };
    let image_at =
        |card: Value| json!({"card": card, "type": "image", "url": "https://example.com/p.jpg"});
    let before = head(&app);
    for (body, field) in [
        (send("photo_offer", json!([])), "template.media"),
        (
            send(
                "photo_offer",
                json!([{"type": "video", "url": "https://example.com/p.mp4"}]),
            ),
            "template.media.type",
        ),
        (
            send("plain_offer", json!([image_at(Value::Null)])),
            "template.media",
        ),
        // A Twilio Content template names its media in its definition.
        (
            send("twilio_photo", json!([image_at(Value::Null)])),
            "template.media",
        ),
        (
            send("listings", json!([image_at(json!(0))])),
            "template.media.card",
        ),
        (
            send(
                "listings",
                json!([image_at(json!(0)), image_at(json!(1)), image_at(json!(2))]),
            ),
            "template.media.card",
        ),
    ] {
        let answer = call(&app, api(Method::POST, "/v1/messages", Some(body.clone()))).await;
        assert_eq!(
            answer.status,
            StatusCode::BAD_REQUEST,
            "{body}: {}",
            answer.text()
        );
        assert_eq!(
            answer.json()["error"]["field"],
            field,
            "{body}: {}",
            answer.text()
        );
    }
    assert_eq!(head(&app), before, "nothing recorded");

    for body in [
        send("photo_offer", json!([image_at(Value::Null)])),
        send("plain_offer", json!([])),
        send("twilio_photo", json!([])),
        send("listings", json!([image_at(json!(0)), image_at(json!(1))])),
    ] {
        let answer = call(&app, api(Method::POST, "/v1/messages", Some(body.clone()))).await;
        assert_eq!(
            answer.status,
            StatusCode::ACCEPTED,
            "{body}: {}",
            answer.text()
        );
    }
}
