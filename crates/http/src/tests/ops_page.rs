//! The ops page through the router: no data without a session, sign-in by token for operators
//! and auditors only, CSRF on every form, numbers from the counts projection (the same as
//! `/metrics`), everything escaped.

use super::*;

/// `name=value` of the `Set-Cookie` header that sets `name`, with its attributes.
fn set_cookie(answer: &Answer, name: &str) -> String {
    answer
        .headers
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .unwrap_or_else(|| panic!("no {name} cookie set"))
        .to_owned()
}

fn cookie_value(set_cookie: &str) -> String {
    let pair = set_cookie.split(';').next().expect("pair");
    pair.split_once('=').expect("name=value").1.to_owned()
}

/// The value of the first hidden `csrf` field of a page.
fn csrf_field(page: &str) -> String {
    let start = page
        .find("name=\"csrf\" value=\"")
        .unwrap_or_else(|| panic!("no csrf field in {page}"))
        + "name=\"csrf\" value=\"".len();
    page[start..].split('"').next().expect("value").to_owned()
}

fn form(path: &str, cookie: &str, body: &str) -> Request<Body> {
    Request::post(path)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::COOKIE, cookie)
        .body(Body::from(body.to_owned()))
        .expect("request")
}

fn page(path: &str, cookie: Option<&str>) -> Request<Body> {
    let mut builder = Request::get(path);
    if let Some(cookie) = cookie {
        builder = builder.header(header::COOKIE, cookie);
    }
    builder.body(Body::empty()).expect("request")
}

/// Signs in with `token`; answers the sign-in POST's answer.
async fn sign_in(app: &TestApp, token: &str) -> Answer {
    let form_page = call(app, page("/ops/sign-in", None)).await;
    assert_eq!(form_page.status, StatusCode::OK);
    let cookie = cookie_value(&set_cookie(&form_page, "wagate_ops_signin"));
    let csrf = csrf_field(&form_page.text());
    assert_eq!(
        cookie, csrf,
        "double submit: the cookie and the field agree"
    );
    call(
        app,
        form(
            "/ops/sign-in",
            &format!("wagate_ops_signin={cookie}"),
            &format!("csrf={csrf}&token={token}"),
        ),
    )
    .await
}

/// A session cookie for `token`'s holder.
async fn session(app: &TestApp, token: &str) -> String {
    let answer = sign_in(app, token).await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.text());
    let set = set_cookie(&answer, "wagate_ops_session");
    assert!(set.contains("HttpOnly"), "{set}");
    assert!(set.contains("SameSite=Strict"), "{set}");
    format!("wagate_ops_session={}", cookie_value(&set))
}

#[tokio::test]
async fn without_a_session_the_page_redirects_to_sign_in_and_shows_nothing() {
    let app = app();
    ready(&app).await;
    for cookie in [None, Some("wagate_ops_session=forged")] {
        let answer = call(&app, page("/ops", cookie)).await;
        assert_eq!(answer.status, StatusCode::SEE_OTHER);
        assert_eq!(answer.headers[header::LOCATION], "/ops/sign-in");
        assert!(!answer.text().contains("viewing_reminder"));
    }
    let resolve = call(
        &app,
        form("/ops/review/x/resolve", "", "csrf=x&decision=handled"),
    )
    .await;
    assert_eq!(resolve.status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn only_operator_and_auditor_tokens_sign_in_and_the_form_needs_its_csrf_value() {
    let app = app();
    for (token, status) in [
        (AGENT_TOKEN, StatusCode::FORBIDDEN),
        (DISPATCHER_TOKEN, StatusCode::FORBIDDEN),
        ("not-a-token", StatusCode::UNAUTHORIZED),
    ] {
        let answer = sign_in(&app, token).await;
        assert_eq!(answer.status, status, "{token}");
        assert!(answer.headers.get_all(header::SET_COOKIE).iter().all(|v| !v
            .to_str()
            .unwrap_or_default()
            .starts_with("wagate_ops_session=")));
    }
    let forged = call(
        &app,
        form(
            "/ops/sign-in",
            "wagate_ops_signin=aaaa",
            &format!("csrf=bbbb&token={TOKEN}"),
        ),
    )
    .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    session(&app, AUDITOR_TOKEN).await;
    session(&app, TOKEN).await;
}

#[tokio::test]
async fn the_page_counts_a_refusal_under_its_rule_like_metrics_and_escapes_names() {
    let app = app();
    ready(&app).await;
    let hostile = call(
        &app,
        api(
            Method::POST,
            "/v1/templates",
            Some(json!({"content_sid": "HX0123456789abcdef0123456789abcdee",
                        "name": "<script>alert(1)</script>", "language": "en",
                        "category": "UTILITY", "placeholders": []})),
        ),
    )
    .await;
    assert!(hostile.status.is_success(), "{}", hostile.text());
    let allowed = call(
        &app,
        api(Method::POST, "/v1/messages", Some(template_send())),
    )
    .await;
    assert_eq!(allowed.status, StatusCode::ACCEPTED, "{}", allowed.text());
    let stop = call(
        &app,
        twilio(
            "/webhooks/twilio/inbound",
            fixture("twilio_inbound_stop.form"),
            Some(&signature("twilio_inbound_stop.form")),
        ),
    )
    .await;
    assert_eq!(stop.status, StatusCode::OK);
    let refused = call(
        &app,
        api(Method::POST, "/v1/messages", Some(template_send())),
    )
    .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);

    let cookie = session(&app, AUDITOR_TOKEN).await;
    let answer = call(&app, page("/ops", Some(&cookie))).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.headers[header::CACHE_CONTROL], "no-store");
    let text = answer.text();
    assert!(text.contains("name=\"viewport\""), "readable on a phone");
    let row = text
        .split("<tr data-rule=\"opted_out\">")
        .nth(1)
        .expect("a row for opted_out");
    assert!(
        row.starts_with("<td><code>opted_out</code></td><td class=\"n last-24h\">1</td><td class=\"n last-7d\">1</td>"),
        "{row}"
    );
    assert!(text.contains("<svg"), "the hourly chart");
    assert!(text.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(!text.contains("<script>"));
    assert!(text.contains("the review queue is empty"));

    let metrics = call(&app, page("/metrics", None)).await.text();
    for line in [
        "wagate_refusals_recorded{rule=\"opted_out\",window=\"24h\"} 1",
        "wagate_refusals_recorded{rule=\"opted_out\",window=\"7d\"} 1",
        "wagate_send_funnel_total{workflow=\"appointment_scheduling\",template=\"HX0123456789abcdef0123456789abcdef\",stage=\"allowed\"} 1",
        "wagate_send_funnel_total{workflow=\"(refused before intent)\",template=\"HX0123456789abcdef0123456789abcdef\",stage=\"refused\"} 1",
        "wagate_refusals_total{rule=\"opted_out\"} 1",
    ] {
        assert!(metrics.lines().any(|l| l == line), "missing {line}\n{metrics}");
    }
    assert!(metrics.contains("wagate_alerts_sent_total"), "{metrics}");
}

#[tokio::test]
async fn resolving_needs_an_operator_session_and_its_csrf_token() {
    let app = app();
    let auditor = session(&app, AUDITOR_TOKEN).await;
    let auditor_page = call(&app, page("/ops", Some(&auditor))).await.text();
    let auditor_csrf = csrf_field(&auditor_page);
    let refused = call(
        &app,
        form(
            "/ops/review/r1/resolve",
            &auditor,
            &format!("csrf={auditor_csrf}&decision=handled&note=x"),
        ),
    )
    .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert!(refused.text().contains("Only an operator"));

    let operator = session(&app, TOKEN).await;
    let operator_csrf = csrf_field(&call(&app, page("/ops", Some(&operator))).await.text());
    let forged = call(
        &app,
        form(
            "/ops/review/r1/resolve",
            &operator,
            &format!("csrf={auditor_csrf}&decision=handled&note=x"),
        ),
    )
    .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    let missing = call(
        &app,
        form(
            "/ops/review/r1/resolve",
            &operator,
            &format!("csrf={operator_csrf}&decision=handled&note=x"),
        ),
    )
    .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert!(missing.text().contains("no review item r1"));

    let signed_out = call(
        &app,
        form("/ops/sign-out", &operator, &format!("csrf={operator_csrf}")),
    )
    .await;
    assert_eq!(signed_out.status, StatusCode::SEE_OTHER);
    let after = call(&app, page("/ops", Some(&operator))).await;
    assert_eq!(after.status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn an_operator_resolves_a_real_item_from_the_page_and_it_shows_resolved() {
    let app = app();
    ready(&app).await;
    app.hub
        .request_review(
            wagate_domain::decide::RequestReview {
                contact: wagate_domain::ContactId::parse("+41790000001").expect("contact"),
                text: "please stop messaging me".into(),
                reason: "free_text_opt_out".into(),
            },
            "ops-page-review",
        )
        .await
        .expect("review requested");
    let id = app
        .hub
        .review_items(wagate_app::ReviewFilter::default())
        .await
        .expect("items")[0]
        .id;

    let auditor = session(&app, AUDITOR_TOKEN).await;
    let auditor_page = call(&app, page("/ops", Some(&auditor))).await.text();
    assert!(
        auditor_page.contains(&format!("id=\"review-{id}\"")),
        "the item, at the anchor alerts link to"
    );
    assert!(auditor_page.contains("please stop messaging me"));
    assert!(!auditor_page.contains("/resolve"), "auditors get no form");

    let operator = session(&app, TOKEN).await;
    let operator_page = call(&app, page("/ops", Some(&operator))).await.text();
    let csrf = csrf_field(&operator_page);
    assert!(operator_page.contains(&format!("action=\"/ops/review/{id}/resolve\"")));
    for decision in ["confirm_opt_out", "dismiss"] {
        assert!(operator_page.contains(&format!("name=\"decision\" value=\"{decision}\"")));
    }
    let path = format!("/ops/review/{id}/resolve");
    let foreign = call(
        &app,
        form(
            &path,
            &operator,
            &format!("csrf={csrf}&decision=handled&note=x"),
        ),
    )
    .await;
    assert_eq!(foreign.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(foreign.text().contains("confirm_opt_out, dismiss"));

    let resolved = call(
        &app,
        form(
            &path,
            &operator,
            &format!("csrf={csrf}&decision=confirm_opt_out&note=called+back"),
        ),
    )
    .await;
    assert_eq!(
        resolved.status,
        StatusCode::SEE_OTHER,
        "{}",
        resolved.text()
    );
    assert_eq!(
        resolved.headers[header::LOCATION],
        format!("/ops#review-{id}").as_str()
    );
    let item = app.hub.review_item(id).await.expect("item");
    let resolution = item.resolution.expect("resolved");
    assert_eq!(resolution.decision.as_str(), "confirm_opt_out");
    assert_eq!(resolution.note, "called back");
    assert_eq!(resolution.by.expect("actor").name(), "test-operator");
    let after = call(&app, page("/ops", Some(&operator))).await.text();
    let row = after
        .split(&format!("id=\"review-{id}\""))
        .nth(1)
        .expect("the row");
    assert!(row.contains("data-state=\"resolved\""), "{row}");

    let again = call(
        &app,
        form(
            &path,
            &operator,
            &format!("csrf={csrf}&decision=dismiss&note="),
        ),
    )
    .await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    let metrics = call(&app, page("/metrics", None)).await.text();
    assert!(
        metrics
            .lines()
            .any(|l| l == "wagate_review_items{reason=\"opt_out_request\",state=\"resolved\"} 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn the_page_lists_the_newest_campaigns_first_and_counts_the_older_ones() {
    let app = app();
    ready(&app).await;
    let shown = crate::ops::campaigns::SHOWN;
    let mut ids = Vec::new();
    for n in 0..=shown {
        let created = call(
            &app,
            api(
                Method::POST,
                "/v1/campaigns",
                Some(json!({"sender": SENDER, "workflow": "appointment_scheduling",
                            "template": {"content_sid": TEMPLATE},
                            "rows": [{"to": CONTACT, "variables": {"1": format!("Lea {n}"), "2": "Thu"}}]})),
            ),
        )
        .await;
        assert_eq!(created.status, StatusCode::CREATED, "{}", created.text());
        let body: Value = serde_json::from_str(&created.text()).expect("json");
        ids.push(body["id"].as_str().expect("an id").to_owned());
    }
    let cookie = session(&app, AUDITOR_TOKEN).await;
    let text = call(&app, page("/ops", Some(&cookie))).await.text();
    let section = text
        .split("<section id=\"campaigns\">")
        .nth(1)
        .expect("the campaigns section");
    let listed: Vec<&str> = section
        .split("data-campaign=\"")
        .skip(1)
        .map(|rest| &rest[..rest.find('"').expect("a closing quote")])
        .collect();
    let newest: Vec<&str> = ids.iter().rev().take(shown).map(String::as_str).collect();
    assert_eq!(listed, newest, "the {shown} newest, newest first");
    assert!(section.contains("data-state=\"draft\""));
    assert!(section.contains("1 older campaigns"));
}
