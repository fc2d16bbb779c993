//! Twilio's Content API: `POST /v1/Content` creates the content, `POST
//! /v1/Content/{sid}/ApprovalRequests/whatsapp` submits it, `GET /v1/ContentAndApprovals` lists
//! every content with its WhatsApp approval (docs/providers.md, "Twilio Content API").
//! JSON bodies, HTTP Basic with the account SID and auth token.

use std::time::Duration;

use serde::Deserialize;
use serde_json::{json, Map, Value};
use wagate_domain::template::{ButtonKind, HeaderFormat, TemplateButton};
use wagate_domain::{ApprovalStatus, ProviderKind, TemplateCategory, TemplateId, TwilioSid};

use super::{
    exchange, http_error, same_origin, twilio_status, NewTemplate, RemoteTemplate, Submitted,
    TemplateApi, TemplateApiError, TemplateFuture,
};
use crate::http::{base_url, build_client};
use crate::send::ConfigError;
use crate::Secret;

const PROVIDER: &str = "twilio";
/// Small pages: each content carries its whole definition.
const PAGE_SIZE: u32 = 50;

#[derive(Debug, Clone)]
pub struct TwilioContentConfig {
    /// `https://content.twilio.com` in production (`WAGATE_TWILIO_CONTENT_API_BASE`).
    pub api_base: String,
    pub account_sid: TwilioSid,
    pub auth_token: Secret,
    pub timeout: Duration,
}

impl TwilioContentConfig {
    pub fn new(account_sid: TwilioSid, auth_token: Secret) -> Self {
        Self {
            api_base: "https://content.twilio.com".to_owned(),
            account_sid,
            auth_token,
            timeout: Duration::from_secs(10),
        }
    }
}

#[derive(Debug)]
pub struct TwilioTemplates {
    http: reqwest::Client,
    base: String,
    account_sid: TwilioSid,
    auth_token: Secret,
    timeout: Duration,
}

impl TwilioTemplates {
    pub fn new(config: TwilioContentConfig) -> Result<Self, ConfigError> {
        Ok(Self {
            http: build_client(config.timeout)?,
            base: base_url(&config.api_base, "content_api_base")?,
            account_sid: config.account_sid,
            auth_token: config.auth_token,
            timeout: config.timeout,
        })
    }

    fn post(&self, url: String, body: &Value) -> reqwest::RequestBuilder {
        self.http
            .post(url)
            .basic_auth(self.account_sid.to_string(), Some(self.auth_token.expose()))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(serde_json::to_vec(body).unwrap_or_default())
    }

    async fn create_inner(&self, template: &NewTemplate) -> Result<Submitted, TemplateApiError> {
        let body = content_body(template)?;
        let (status, wait, answer) = exchange(
            PROVIDER,
            self.timeout,
            self.post(format!("{}/v1/Content", self.base), &body),
        )
        .await?;
        if !(200..300).contains(&status) {
            return Err(http_error(PROVIDER, status, wait, &answer));
        }
        let created: Created = parse(&answer)?;
        let template_id =
            TemplateId::parse(&created.sid).map_err(|e| TemplateApiError::Unexpected {
                provider: PROVIDER,
                reason: format!("sid: {e}"),
            })?;
        // The content exists now: a failed submission is recorded as unsubmitted with its
        // reason rather than lost.
        let submission = json!({
            "name": template.name,
            "category": template.category.as_str().to_ascii_uppercase(),
        });
        let url = format!(
            "{}/v1/Content/{}/ApprovalRequests/whatsapp",
            self.base, created.sid
        );
        let outcome = match exchange(PROVIDER, self.timeout, self.post(url, &submission)).await {
            Ok((status, _, answer)) if (200..300).contains(&status) => {
                let approval: Approval = parse(&answer)?;
                (
                    twilio_status(&approval.status).unwrap_or(ApprovalStatus::Pending),
                    approval.rejection_reason.unwrap_or_default(),
                )
            }
            Ok((status, wait, answer)) => (
                ApprovalStatus::Unsubmitted,
                format!(
                    "submission failed: {}",
                    http_error(PROVIDER, status, wait, &answer)
                ),
            ),
            Err(error) => (
                ApprovalStatus::Unsubmitted,
                format!("submission failed: {error}"),
            ),
        };
        Ok(Submitted {
            template: template_id,
            provider_ref: created.sid,
            status: outcome.0,
            reason: outcome.1,
        })
    }

    async fn list_inner(&self) -> Result<Vec<RemoteTemplate>, TemplateApiError> {
        let mut url = format!("{}/v1/ContentAndApprovals?PageSize={PAGE_SIZE}", self.base);
        let mut out = Vec::new();
        loop {
            let request = self
                .http
                .get(&url)
                .basic_auth(self.account_sid.to_string(), Some(self.auth_token.expose()));
            let (status, wait, body) = exchange(PROVIDER, self.timeout, request).await?;
            if !(200..300).contains(&status) {
                return Err(http_error(PROVIDER, status, wait, &body));
            }
            let page: Page = parse(&body)?;
            for content in page.contents {
                // A content that is not a Content SID (never seen) is skipped, not fatal.
                let Ok(template) = TemplateId::parse(&content.sid) else {
                    continue;
                };
                let approval = content.approval_requests.unwrap_or_default();
                let raw_status = approval.status.unwrap_or_else(|| "unsubmitted".to_owned());
                out.push(RemoteTemplate {
                    template,
                    provider_ref: content.sid,
                    name: approval.name.or(content.friendly_name).unwrap_or_default(),
                    language: content.language.unwrap_or_default(),
                    category: approval
                        .category
                        .as_deref()
                        .and_then(TemplateCategory::parse),
                    status: twilio_status(&raw_status),
                    raw_status,
                    reason: approval.rejection_reason.unwrap_or_default(),
                    body: content.types.as_ref().and_then(first_body),
                });
            }
            match page.meta.and_then(|m| m.next_page_url) {
                Some(next) if same_origin(&next, &self.base) => url = next,
                Some(_) => {
                    return Err(TemplateApiError::Unexpected {
                        provider: PROVIDER,
                        reason: "next_page_url points away from the configured Content API base"
                            .into(),
                    })
                }
                None => return Ok(out),
            }
        }
    }
}

impl TemplateApi for TwilioTemplates {
    fn provider(&self) -> ProviderKind {
        ProviderKind::Twilio
    }

    fn create<'a>(&'a self, template: &'a NewTemplate) -> TemplateFuture<'a, Submitted> {
        Box::pin(self.create_inner(template))
    }

    fn list(&self) -> TemplateFuture<'_, Vec<RemoteTemplate>> {
        Box::pin(self.list_inner())
    }
}

fn parse<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, TemplateApiError> {
    serde_json::from_slice(body).map_err(|e| TemplateApiError::Unexpected {
        provider: PROVIDER,
        reason: e.to_string(),
    })
}

#[derive(Deserialize)]
struct Created {
    sid: String,
}

#[derive(Deserialize)]
struct Approval {
    status: String,
    rejection_reason: Option<String>,
}

#[derive(Deserialize)]
struct Page {
    #[serde(default)]
    contents: Vec<Content>,
    meta: Option<PageMeta>,
}

#[derive(Deserialize)]
struct PageMeta {
    next_page_url: Option<String>,
}

#[derive(Deserialize)]
struct Content {
    sid: String,
    friendly_name: Option<String>,
    language: Option<String>,
    types: Option<Map<String, Value>>,
    approval_requests: Option<ListedApproval>,
}

#[derive(Deserialize, Default)]
struct ListedApproval {
    name: Option<String>,
    category: Option<String>,
    status: Option<String>,
    rejection_reason: Option<String>,
}

fn first_body(types: &Map<String, Value>) -> Option<String> {
    types
        .values()
        .find_map(|t| t.get("body").and_then(Value::as_str))
        .map(str::to_owned)
}

fn actions(buttons: &[TemplateButton]) -> Vec<Value> {
    buttons
        .iter()
        .map(|button| match button.kind {
            ButtonKind::QuickReply => {
                json!({"type": "QUICK_REPLY", "title": button.text, "id": button.text})
            }
            ButtonKind::Url => json!({"type": "URL", "title": button.text, "url": button.value}),
            ButtonKind::PhoneNumber => {
                json!({"type": "PHONE_NUMBER", "title": button.text, "phone": button.value})
            }
        })
        .collect()
}

/// The `POST /v1/Content` body: one content type chosen by what the template has.
pub(crate) fn content_body(template: &NewTemplate) -> Result<Value, TemplateApiError> {
    let content = &template.content;
    let body = &content.body;
    let media = match &content.header {
        None => None,
        Some(header) if header.format == HeaderFormat::Text => {
            return Err(TemplateApiError::Unsupported {
                provider: PROVIDER,
                reason: "Twilio's content types have no text header: put it in the body".into(),
            })
        }
        Some(header) => Some(header.value.clone()),
    };
    let quick_replies_only = content
        .buttons
        .iter()
        .all(|b| b.kind == ButtonKind::QuickReply);
    let (kind, definition) = if !content.cards.is_empty() {
        let cards: Vec<Value> = content
            .cards
            .iter()
            .map(|card| {
                json!({"body": card.body, "media": card.header.value, "actions": actions(&card.buttons)})
            })
            .collect();
        ("twilio/carousel", json!({"body": body, "cards": cards}))
    } else if let (Some(media), false) = (&media, content.buttons.is_empty()) {
        (
            "twilio/card",
            json!({"title": body, "media": [media], "actions": actions(&content.buttons)}),
        )
    } else if let Some(media) = media {
        ("twilio/media", json!({"body": body, "media": [media]}))
    } else if content.buttons.is_empty() {
        ("twilio/text", json!({"body": body}))
    } else if quick_replies_only {
        (
            "twilio/quick-reply",
            json!({"body": body, "actions": actions(&content.buttons)}),
        )
    } else {
        (
            "twilio/call-to-action",
            json!({"body": body, "actions": actions(&content.buttons)}),
        )
    };
    let variables: Map<String, Value> = template
        .samples()
        .into_iter()
        .map(|(key, value)| (key, Value::String(value)))
        .collect();
    let mut types = Map::new();
    types.insert(kind.to_owned(), definition);
    Ok(json!({
        "friendly_name": template.name,
        "language": template.language,
        "variables": variables,
        "types": types,
    }))
}

#[cfg(test)]
mod tests;
