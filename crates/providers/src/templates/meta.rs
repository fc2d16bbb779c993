//! Meta's WhatsApp Business Management API: `POST /{waba-id}/message_templates` creates and
//! submits a template in one call; `GET /{waba-id}/message_templates` lists them (the backstop
//! to the `message_template_status_update` webhook). Bearer token; docs/providers.md, "Meta
//! templates".

use std::time::Duration;

use serde::Deserialize;
use serde_json::{json, Value};
use wagate_domain::template::{ButtonKind, HeaderFormat, TemplateButton, TemplateHeader};
use wagate_domain::{ApprovalStatus, ProviderKind, TemplateCategory, TemplateId};

use super::{
    exchange, http_error, meta_status, same_origin, NewTemplate, RemoteTemplate, Submitted,
    TemplateApi, TemplateApiError, TemplateFuture,
};
use crate::http::{base_url, build_client};
use crate::send::ConfigError;
use crate::Secret;

const PROVIDER: &str = "meta";
const LIST_FIELDS: &str = "name,status,category,language,id,rejected_reason";

#[derive(Debug, Clone)]
pub struct MetaTemplateConfig {
    /// `https://graph.facebook.com` in production (`WAGATE_META_API_BASE`).
    pub api_base: String,
    pub api_version: String,
    /// The WhatsApp Business Account (`WAGATE_META_WABA_ID`).
    pub waba_id: String,
    pub access_token: Secret,
    pub timeout: Duration,
}

#[derive(Debug)]
pub struct MetaTemplates {
    http: reqwest::Client,
    base: String,
    templates_url: String,
    access_token: Secret,
    timeout: Duration,
}

impl MetaTemplates {
    pub fn new(config: MetaTemplateConfig) -> Result<Self, ConfigError> {
        if config.waba_id.is_empty() || !config.waba_id.chars().all(|c| c.is_ascii_digit()) {
            return Err(ConfigError::Invalid {
                name: "waba_id",
                reason: "must be the WhatsApp Business Account's numeric id",
            });
        }
        let base = base_url(&config.api_base, "api_base")?;
        Ok(Self {
            http: build_client(config.timeout)?,
            templates_url: format!(
                "{base}/{}/{}/message_templates",
                config.api_version, config.waba_id
            ),
            base,
            access_token: config.access_token,
            timeout: config.timeout,
        })
    }

    async fn create_inner(&self, template: &NewTemplate) -> Result<Submitted, TemplateApiError> {
        let id = TemplateId::meta(&template.name, &template.language).map_err(|e| {
            TemplateApiError::Unsupported {
                provider: PROVIDER,
                reason: e.to_string(),
            }
        })?;
        let body = create_body(template);
        let request = self
            .http
            .post(&self.templates_url)
            .bearer_auth(self.access_token.expose())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(serde_json::to_vec(&body).unwrap_or_default());
        let (status, wait, answer) = exchange(PROVIDER, self.timeout, request).await?;
        if !(200..300).contains(&status) {
            return Err(http_error(PROVIDER, status, wait, &answer));
        }
        let created: Created =
            serde_json::from_slice(&answer).map_err(|e| TemplateApiError::Unexpected {
                provider: PROVIDER,
                reason: e.to_string(),
            })?;
        Ok(Submitted {
            template: id,
            provider_ref: created.id,
            // Meta answers PENDING (or APPROVED for some utility templates); a missing status
            // means it was accepted for review.
            status: created
                .status
                .as_deref()
                .and_then(meta_status)
                .unwrap_or(ApprovalStatus::Pending),
            reason: String::new(),
        })
    }

    async fn list_inner(&self) -> Result<Vec<RemoteTemplate>, TemplateApiError> {
        let mut url = format!("{}?fields={LIST_FIELDS}&limit=100", self.templates_url);
        let mut out = Vec::new();
        loop {
            let request = self.http.get(&url).bearer_auth(self.access_token.expose());
            let (status, wait, body) = exchange(PROVIDER, self.timeout, request).await?;
            if !(200..300).contains(&status) {
                return Err(http_error(PROVIDER, status, wait, &body));
            }
            let page: Page =
                serde_json::from_slice(&body).map_err(|e| TemplateApiError::Unexpected {
                    provider: PROVIDER,
                    reason: e.to_string(),
                })?;
            for listed in page.data {
                let Ok(template) = TemplateId::meta(&listed.name, &listed.language) else {
                    continue;
                };
                let raw_status = listed.status.unwrap_or_default();
                out.push(RemoteTemplate {
                    language: template.meta_language().unwrap_or_default().to_owned(),
                    template,
                    provider_ref: listed.id.unwrap_or_default(),
                    name: listed.name,
                    category: listed.category.as_deref().and_then(TemplateCategory::parse),
                    status: meta_status(&raw_status),
                    raw_status,
                    reason: listed
                        .rejected_reason
                        .filter(|r| r != "NONE")
                        .unwrap_or_default(),
                    body: None,
                });
            }
            match page.paging.and_then(|p| p.next) {
                Some(next) if same_origin(&next, &self.base) => url = next,
                Some(_) => {
                    return Err(TemplateApiError::Unexpected {
                        provider: PROVIDER,
                        reason: "paging.next points away from the configured Graph API base".into(),
                    })
                }
                None => return Ok(out),
            }
        }
    }
}

impl TemplateApi for MetaTemplates {
    fn provider(&self) -> ProviderKind {
        ProviderKind::Meta
    }

    fn create<'a>(&'a self, template: &'a NewTemplate) -> TemplateFuture<'a, Submitted> {
        Box::pin(self.create_inner(template))
    }

    fn list(&self) -> TemplateFuture<'_, Vec<RemoteTemplate>> {
        Box::pin(self.list_inner())
    }
}

#[derive(Deserialize)]
struct Created {
    id: String,
    status: Option<String>,
}

#[derive(Deserialize)]
struct Page {
    #[serde(default)]
    data: Vec<Listed>,
    paging: Option<Paging>,
}

#[derive(Deserialize)]
struct Paging {
    next: Option<String>,
}

#[derive(Deserialize)]
struct Listed {
    name: String,
    language: String,
    id: Option<String>,
    status: Option<String>,
    category: Option<String>,
    rejected_reason: Option<String>,
}

fn header_component(header: &TemplateHeader, samples: &[(String, String)]) -> Value {
    match header.format {
        HeaderFormat::Text => {
            let keys =
                wagate_domain::template::placeholders(&wagate_domain::template::TemplateContent {
                    body: header.value.clone(),
                    header: None,
                    buttons: Vec::new(),
                    cards: Vec::new(),
                });
            let mut component = json!({"type": "HEADER", "format": "TEXT", "text": header.value});
            if let Some(key) = keys.first() {
                let sample = samples
                    .iter()
                    .find(|(k, _)| k == key)
                    .map_or(String::new(), |(_, v)| v.clone());
                component["example"] = json!({"header_text": [sample]});
            }
            component
        }
        // Meta documents `header_handle` as a Resumable-Upload handle; wagate passes the
        // header's value (a URL, or a handle the operator uploaded) as that example.
        media => json!({
            "type": "HEADER",
            "format": media.as_str().to_ascii_uppercase(),
            "example": {"header_handle": [header.value]},
        }),
    }
}

fn buttons_component(buttons: &[TemplateButton]) -> Value {
    let buttons: Vec<Value> = buttons
        .iter()
        .map(|button| match button.kind {
            ButtonKind::QuickReply => json!({"type": "QUICK_REPLY", "text": button.text}),
            ButtonKind::Url => json!({"type": "URL", "text": button.text, "url": button.value}),
            ButtonKind::PhoneNumber => {
                json!({"type": "PHONE_NUMBER", "text": button.text, "phone_number": button.value})
            }
        })
        .collect();
    json!({"type": "BUTTONS", "buttons": buttons})
}

/// A BODY component with its examples: positional (`body_text`, one row) when the placeholders
/// are numbers, named (`body_text_named_params`) otherwise.
fn body_component(text: &str, samples: &[(String, String)], named: bool) -> Value {
    let keys = wagate_domain::template::placeholders(&wagate_domain::template::TemplateContent {
        body: text.to_owned(),
        header: None,
        buttons: Vec::new(),
        cards: Vec::new(),
    });
    let mut component = json!({"type": "BODY", "text": text});
    if keys.is_empty() {
        return component;
    }
    let sample = |key: &String| {
        samples
            .iter()
            .find(|(k, _)| k == key)
            .map_or(String::new(), |(_, v)| v.clone())
    };
    component["example"] = if named {
        json!({"body_text_named_params": keys.iter().map(|k| json!({"param_name": k, "example": sample(k)})).collect::<Vec<_>>()})
    } else {
        let mut numbered: Vec<&String> = keys.iter().collect();
        numbered.sort_by_key(|k| k.parse::<u32>().unwrap_or(u32::MAX));
        json!({"body_text": [numbered.into_iter().map(sample).collect::<Vec<_>>()]})
    };
    component
}

/// The `POST /{waba-id}/message_templates` body.
pub(crate) fn create_body(template: &NewTemplate) -> Value {
    let content = &template.content;
    let samples = template.samples();
    let named = samples.iter().any(|(key, _)| key.parse::<u32>().is_err());
    let mut components = Vec::new();
    if let Some(header) = &content.header {
        components.push(header_component(header, &samples));
    }
    components.push(body_component(&content.body, &samples, named));
    if !content.buttons.is_empty() {
        components.push(buttons_component(&content.buttons));
    }
    if !content.cards.is_empty() {
        let cards: Vec<Value> = content
            .cards
            .iter()
            .map(|card| {
                json!({"components": [
                    header_component(&card.header, &samples),
                    body_component(&card.body, &samples, named),
                    buttons_component(&card.buttons),
                ]})
            })
            .collect();
        components.push(json!({"type": "CAROUSEL", "cards": cards}));
    }
    json!({
        "name": template.name,
        "language": template.language,
        "category": template.category.as_str().to_ascii_uppercase(),
        "parameter_format": if named { "named" } else { "positional" },
        "components": components,
    })
}

#[cfg(test)]
mod tests;
