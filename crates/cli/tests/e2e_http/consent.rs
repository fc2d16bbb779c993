//! Issue 15's consent capture through the real binary: a published wording, a campaign with
//! its click-to-chat link and QR codes (decoded back to the link), the hosted page submitted
//! over HTTP with each kind of bad input refused, the double opt-in confirmed only by a signed
//! inbound carrying the campaign code to the campaign's own sender, the receipt, and STOP
//! withdrawing it. Helpers here are shared with `consent_browser`.

use serde_json::{json, Value};
use wagate_providers::{meta, Secret};

use crate::support::*;

pub const BUSINESS: &str = "Acme Homes";
pub const WORDING: &str =
    "I agree to receive WhatsApp messages about property viewings from Acme Homes.";
/// A number no other step opts in.
pub const NEW_CONTACT: &str = "+41791234567";

/// A signed Meta webhook: one text message from `from` (digits) to `to` (digits).
pub async fn meta_text(hub: &Hub, from: &str, to: &str, id: &str, text: &str) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs();
    let body = json!({
        "object": "whatsapp_business_account",
        "entry": [{"id": "102938475610293", "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": to, "phone_number_id": "109876543210987"},
            "contacts": [{"profile": {"name": "Ana"}, "wa_id": from}],
            "messages": [{"from": from, "id": format!("wamid.CONSENT{id}"),
                          "timestamp": now.to_string(), "type": "text", "text": {"body": text}}]
        }}]}]
    })
    .to_string();
    let signature = meta::compute_signature(&Secret::new(META_APP_SECRET), body.as_bytes());
    let response = hub
        .http
        .post(hub.url("/webhooks/meta"))
        .header("Content-Type", "application/json")
        .header("X-Hub-Signature-256", signature)
        .body(body)
        .send()
        .await
        .expect("meta webhook");
    assert_eq!(response.status(), 200);
}

/// Publishes the wording and creates a web-form campaign for the hub's sender.
pub async fn campaign(hub: &Hub) -> Value {
    let wording = hub
        .post(
            "/v1/consent/wordings",
            json!({"business": BUSINESS, "language": "en", "text": WORDING}),
        )
        .await;
    assert_eq!(wording.status(), 201);
    let wording: Value = wording.json().await.expect("json");
    let version = wording["version"].as_str().expect("version");
    let created = hub
        .post(
            "/v1/consent/campaigns",
            json!({"sender": SENDER, "wording_version": version,
                   "workflows": ["appointment_scheduling"], "medium": "web_form"}),
        )
        .await;
    assert_eq!(created.status(), 201);
    created.json().await.expect("json")
}

/// `page_url` on this hub (the campaign answers it under the public URL).
pub fn local(hub: &Hub, page_url: &str) -> String {
    hub.url(
        page_url
            .strip_prefix(PUBLIC_URL)
            .expect("under the public URL"),
    )
}

/// The hidden CSRF value of the page's opt-in form.
pub fn csrf_of(page: &str) -> String {
    let start = page.find("name=\"csrf\" value=\"").expect("a csrf field") + 19;
    page[start..start + 64].to_owned()
}

pub async fn open_form(hub: &Hub, page: &str) -> String {
    let response = hub.http.get(page).send().await.expect("page");
    assert_eq!(response.status(), 200);
    let html = response.text().await.expect("html");
    csrf_of(&html)
}

pub async fn submit(hub: &Hub, page: &str, fields: &[(&str, &str)]) -> (u16, String) {
    let response = hub
        .http
        .post(page)
        .form(fields)
        .send()
        .await
        .expect("submit");
    (
        response.status().as_u16(),
        response.text().await.expect("html"),
    )
}

pub async fn receipts(hub: &Hub, contact: &str) -> Vec<Value> {
    let response = hub.get(&format!("/v1/contacts/{contact}/consent")).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("json");
    body["receipts"].as_array().expect("receipts").clone()
}

pub fn send_to(contact: &str) -> Value {
    json!({"to": contact, "workflow": "appointment_scheduling",
           "template": {"content_sid": TEMPLATE, "variables": {"1": "Ana", "2": "Thu 10:00"}}})
}

#[tokio::test]
async fn wordings_are_versioned_and_api_opt_ins_must_cite_one() {
    let data = tempfile::tempdir().expect("dir");
    let hub = start(data.path());
    let first = hub
        .post(
            "/v1/consent/wordings",
            json!({"business": BUSINESS, "language": "en", "text": WORDING}),
        )
        .await;
    assert_eq!(first.status(), 201);
    let first: Value = first.json().await.expect("json");
    assert!(first["version"]
        .as_str()
        .expect("version")
        .starts_with("w-"));
    assert_eq!(first["text_hash"].as_str().expect("hash").len(), 64);
    // The same text is the same version (nothing new); new text is a new version.
    let again = hub
        .post(
            "/v1/consent/wordings",
            json!({"business": BUSINESS, "language": "en", "text": WORDING}),
        )
        .await;
    assert_eq!(again.status(), 200);
    assert_eq!(
        again.json::<Value>().await.expect("json")["version"],
        first["version"]
    );
    let other = hub
        .post(
            "/v1/consent/wordings",
            json!({"business": BUSINESS, "language": "en", "text": "Other text."}),
        )
        .await;
    assert_eq!(other.status(), 201);
    assert_ne!(
        other.json::<Value>().await.expect("json")["version"],
        first["version"]
    );
    // An agent may not publish.
    let agent = hub
        .post_as(
            AGENT_TOKEN,
            "/v1/consent/wordings",
            json!({"business": "x", "language": "en", "text": "y"}),
        )
        .await;
    assert_eq!(agent.status(), 403);
    // An API opt-in without a wording version: 400 naming the field, nothing appended.
    let before = hub.events().await.len();
    let missing = hub
        .post(
            &format!("/v1/contacts/{CONTACT}/opt-in"),
            json!({"source": "web_form", "evidence": "form 1", "recorded_by": "ops"}),
        )
        .await;
    assert_eq!(missing.status(), 400);
    let error: Value = missing.json().await.expect("json");
    assert_eq!(error["error"]["field"], "wording_version", "{error}");
    assert_eq!(hub.events().await.len(), before);
}

#[tokio::test]
async fn a_campaign_answers_its_link_and_qr_codes_that_decode_to_it() {
    let data = tempfile::tempdir().expect("dir");
    let hub = start(data.path());
    hub.ready().await;
    let campaign = campaign(&hub).await;
    let id = campaign["id"].as_str().expect("id");
    assert!(id.starts_with("WG-"), "{campaign}");
    assert_eq!(
        campaign["page_url"],
        format!("{PUBLIC_URL}/consent/{id}").as_str()
    );
    let link = campaign["wa_me_link"].as_str().expect("link");
    assert!(
        link.starts_with("https://wa.me/15555550100?text="),
        "{link}"
    );
    let prefilled = campaign["prefilled_message"].as_str().expect("prefilled");
    assert!(prefilled.contains(id) && prefilled.contains(BUSINESS));
    let text = url::Url::parse(link)
        .expect("url")
        .query_pairs()
        .find(|(k, _)| k == "text")
        .map(|(_, v)| v.into_owned())
        .expect("text");
    assert_eq!(text, prefilled);

    let png = hub.get(&format!("/v1/consent/campaigns/{id}/qr.png")).await;
    assert_eq!(png.status(), 200);
    assert_eq!(png.headers()["content-type"], "image/png");
    let bytes = png.bytes().await.expect("png");
    let decoder = png::Decoder::new(std::io::Cursor::new(bytes.to_vec()));
    let mut reader = decoder.read_info().expect("png header");
    let mut pixels = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut pixels).expect("png frame");
    let (width, height) = (info.width as usize, info.height as usize);
    let mut image =
        rqrr::PreparedImage::prepare_from_greyscale(width, height, |x, y| pixels[y * width + x]);
    let grids = image.detect_grids();
    assert_eq!(grids.len(), 1, "one QR code");
    let (_, content) = grids[0].decode().expect("decodes");
    assert_eq!(content, link, "the QR code is the click-to-chat link");

    let svg = hub.get(&format!("/v1/consent/campaigns/{id}/qr.svg")).await;
    assert_eq!(svg.status(), 200);
    assert!(svg.text().await.expect("svg").contains("<svg"));
    // Unknown campaigns and unpublished wordings.
    assert_eq!(
        hub.get("/v1/consent/campaigns/WG-NOPE0000/qr.png")
            .await
            .status(),
        404
    );
    let unpublished = hub
        .post(
            "/v1/consent/campaigns",
            json!({"sender": SENDER, "wording_version": "w-0000000000000000",
                   "workflows": ["appointment_scheduling"], "medium": "qr_code"}),
        )
        .await;
    assert_eq!(unpublished.status(), 400);
    let error: Value = unpublished.json().await.expect("json");
    assert_eq!(error["error"]["field"], "wording_version");
}

#[tokio::test]
async fn the_page_refuses_bad_input_and_only_the_campaigns_sender_confirms() {
    let data = tempfile::tempdir().expect("dir");
    let hub = start(data.path());
    hub.ready().await;
    let campaign = campaign(&hub).await;
    let code = campaign["id"].as_str().expect("id").to_owned();
    let page = local(&hub, campaign["page_url"].as_str().expect("page"));
    let digits = NEW_CONTACT.trim_start_matches('+');

    let before = hub.events().await.len();
    // Unticked: refused, said on the page.
    let csrf = open_form(&hub, &page).await;
    let (status, html) = submit(&hub, &page, &[("csrf", &csrf), ("number", NEW_CONTACT)]).await;
    assert_eq!(status, 400);
    assert!(html.contains("tick the box"), "{html}");
    // A number without a country code, and one that is not a number.
    let csrf = csrf_of(&html);
    let (status, html) = submit(
        &hub,
        &page,
        &[
            ("csrf", &csrf),
            ("number", "079 123 45 67"),
            ("agree", "yes"),
        ],
    )
    .await;
    assert_eq!(status, 400);
    assert!(html.contains("no country code"), "{html}");
    let csrf = csrf_of(&html);
    let (status, html) = submit(
        &hub,
        &page,
        &[("csrf", &csrf), ("number", "+41 12"), ("agree", "yes")],
    )
    .await;
    assert_eq!(status, 400);
    assert!(html.contains("+41 12"), "{html}");
    // Missing and replayed CSRF tokens.
    let (status, _) = submit(&hub, &page, &[("number", NEW_CONTACT), ("agree", "yes")]).await;
    assert_eq!(status, 403);
    let (status, html) = submit(
        &hub,
        &page,
        &[("csrf", &csrf), ("number", NEW_CONTACT), ("agree", "yes")],
    )
    .await;
    assert_eq!(status, 403, "a used token is refused");
    assert!(html.contains("expired or was already sent"));
    // The honeypot.
    let csrf = csrf_of(&html);
    let (status, html) = submit(
        &hub,
        &page,
        &[
            ("csrf", &csrf),
            ("number", NEW_CONTACT),
            ("agree", "yes"),
            ("website", "http://spam.example"),
        ],
    )
    .await;
    assert_eq!(status, 400);
    // An unknown campaign.
    let unknown = hub
        .http
        .get(hub.url("/consent/WG-NOPE0000"))
        .send()
        .await
        .expect("page");
    assert_eq!(unknown.status(), 404);
    assert_eq!(hub.events().await.len(), before, "nothing recorded so far");

    // Properly: a pending request, and the confirmation page with the click-to-chat link.
    let csrf = csrf_of(&html);
    let (status, html) = submit(
        &hub,
        &page,
        &[
            ("csrf", &csrf),
            ("number", "+41 79 123 45 67"),
            ("agree", "yes"),
        ],
    )
    .await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("https://wa.me/15555550100?text="), "{html}");
    let pending = receipts(&hub, NEW_CONTACT).await;
    assert_eq!(pending.len(), 1, "{pending:?}");
    assert_eq!(pending[0]["state"], "pending");
    assert!(pending[0]["confirmed_at"].is_null());
    // Pending lets no template through.
    assert_eq!(
        hub.post("/v1/messages", send_to(NEW_CONTACT))
            .await
            .status(),
        422
    );

    // The code sent to another business number confirms nothing.
    let prefilled = campaign["prefilled_message"].as_str().expect("prefilled");
    meta_text(&hub, digits, "15555550199", "1", prefilled).await;
    assert!(receipts(&hub, NEW_CONTACT).await[0]["confirmed_at"].is_null());
    assert_eq!(
        hub.post("/v1/messages", send_to(NEW_CONTACT))
            .await
            .status(),
        422
    );
    // To the campaign's sender it confirms: templates go through.
    meta_text(&hub, digits, "15555550100", "2", prefilled).await;
    let confirmed = receipts(&hub, NEW_CONTACT).await;
    assert_eq!(confirmed.len(), 1, "{confirmed:?}");
    let receipt = &confirmed[0];
    assert_eq!(receipt["state"], "confirmed");
    assert_eq!(receipt["source"], "web_form");
    assert_eq!(receipt["campaign"], code.as_str());
    assert_eq!(receipt["wording_version"], campaign["wording_version"]);
    assert_eq!(receipt["wording_text"], WORDING);
    assert!(!receipt["confirmed_at"].is_null() && !receipt["requested_at"].is_null());
    assert!(receipt["evidence"]
        .as_str()
        .expect("evidence")
        .contains("wamid.CONSENT2"));
    assert_eq!(
        hub.post("/v1/messages", send_to(NEW_CONTACT))
            .await
            .status(),
        202
    );
    // The IP and user agent are the form's evidence, kept in the log.
    assert!(receipt["evidence"]
        .as_str()
        .expect("evidence")
        .contains("from IP 127.0.0.1"));

    // STOP withdraws it.
    meta_text(&hub, digits, "15555550100", "3", "STOP").await;
    let withdrawn = receipts(&hub, NEW_CONTACT).await;
    assert!(!withdrawn[0]["withdrawn_at"].is_null(), "{withdrawn:?}");
    assert_eq!(
        hub.post("/v1/messages", send_to(NEW_CONTACT))
            .await
            .status(),
        422
    );
}

#[tokio::test]
async fn a_flood_from_one_address_is_refused() {
    let data = tempfile::tempdir().expect("dir");
    let hub = start(data.path());
    hub.ready().await;
    let campaign = campaign(&hub).await;
    let page = local(&hub, campaign["page_url"].as_str().expect("page"));
    let mut last = 0;
    for _ in 0..25 {
        let csrf = open_form(&hub, &page).await;
        // Unticked, so nothing could be recorded either way: only the limit is tested.
        let (status, _) = submit(&hub, &page, &[("csrf", &csrf), ("number", NEW_CONTACT)]).await;
        last = status;
    }
    assert_eq!(last, 429);
    assert!(receipts(&hub, NEW_CONTACT).await.is_empty());
}

#[tokio::test]
async fn a_printed_qr_codes_message_is_the_opt_in_and_opts_in_again_after_stop() {
    let data = tempfile::tempdir().expect("dir");
    let hub = start(data.path());
    hub.ready().await;
    let web = campaign(&hub).await;
    let qr = hub
        .post(
            "/v1/consent/campaigns",
            json!({"sender": SENDER, "wording_version": web["wording_version"],
                   "workflows": ["appointment_scheduling"], "medium": "qr_code"}),
        )
        .await;
    assert_eq!(qr.status(), 201);
    let qr: Value = qr.json().await.expect("json");
    let digits = NEW_CONTACT.trim_start_matches('+');
    // A web form's code without the form records nothing; the QR campaign's code to another
    // number neither.
    let web_message = web["prefilled_message"].as_str().expect("prefilled");
    meta_text(&hub, digits, "15555550100", "Q1", web_message).await;
    let qr_message = qr["prefilled_message"].as_str().expect("prefilled");
    meta_text(&hub, digits, "15555550199", "Q2", qr_message).await;
    assert!(receipts(&hub, NEW_CONTACT).await.is_empty());
    // Scanned and sent to the campaign's number: opted in, the message is the evidence.
    meta_text(&hub, digits, "15555550100", "Q3", qr_message).await;
    let first = receipts(&hub, NEW_CONTACT).await;
    assert_eq!(first.len(), 1, "{first:?}");
    assert_eq!(first[0]["source"], "qr_code");
    assert_eq!(first[0]["campaign"], qr["id"]);
    assert_eq!(first[0]["wording_version"], qr["wording_version"]);
    assert!(first[0]["evidence"]
        .as_str()
        .expect("evidence")
        .contains("wamid.CONSENTQ3"));
    // STOP, then the person scans again: opted in again by their own act.
    meta_text(&hub, digits, "15555550100", "Q4", "STOP").await;
    assert_eq!(
        hub.post("/v1/messages", send_to(NEW_CONTACT))
            .await
            .status(),
        422
    );
    meta_text(&hub, digits, "15555550100", "Q5", qr_message).await;
    let again = receipts(&hub, NEW_CONTACT).await;
    assert_eq!(again.len(), 2, "{again:?}");
    assert!(!again[0]["withdrawn_at"].is_null());
    assert!(again[1]["withdrawn_at"].is_null());
    assert_eq!(
        hub.post("/v1/messages", send_to(NEW_CONTACT))
            .await
            .status(),
        202
    );
}
