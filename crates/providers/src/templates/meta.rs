//! Meta's WhatsApp Business Management API: `POST /{waba-id}/message_templates` creates and
//! submits a template in one call; `GET /{waba-id}/message_templates` lists them (the backstop
//! to the `message_template_status_update` webhook). Bearer token; docs/providers.md, "Meta
//! templates". A media header's sample is uploaded first (`meta_upload.rs`) and its handle
//! sent as `example.header_handle`.

use std::time::Duration;

use serde::Deserialize;
use serde_json::{json, Value};
use wagate_domain::template::{ButtonKind, HeaderFormat, TemplateButton, TemplateHeader};
use wagate_domain::{ApprovalStatus, ProviderKind, TemplateCategory, TemplateId};

use super::meta_upload::{check_sample, fetch_sample, Uploader};
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
    /// The Meta app whose Resumable Upload API takes media header samples
    /// (`WAGATE_META_APP_ID`); without it a media-header template is refused.
    pub app_id: Option<String>,
}

#[derive(Debug)]
pub struct MetaTemplates {
    http: reqwest::Client,
    /// Fetches media header samples and uploads them (longer timeout, no credentials kept).
    media: reqwest::Client,
    base: String,
    templates_url: String,
    access_token: Secret,
    timeout: Duration,
    uploader: Option<Uploader>,
}

/// The upload handles of a template's media headers, in the order the body uses them.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Handles {
    pub(crate) header: Option<String>,
    pub(crate) cards: Vec<Option<String>>,
}

impl MetaTemplates {
    pub fn new(config: MetaTemplateConfig) -> Result<Self, ConfigError> {
        if config.waba_id.is_empty() || !config.waba_id.chars().all(|c| c.is_ascii_digit()) {
            return Err(ConfigError::Invalid {
                name: "waba_id",
                reason: "must be the WhatsApp Business Account's numeric id",
            });
        }
        if let Some(app_id) = &config.app_id {
            if app_id.is_empty() || !app_id.chars().all(|c| c.is_ascii_digit()) {
                return Err(ConfigError::Invalid {
                    name: "app_id",
                    reason: "must be the Meta app's numeric id",
                });
            }
        }
        let base = base_url(&config.api_base, "api_base")?;
        let versioned_base = format!("{base}/{}", config.api_version);
        Ok(Self {
            http: build_client(config.timeout)?,
            media: build_client(super::meta_upload::MEDIA_TIMEOUT)?,
            templates_url: format!("{versioned_base}/{}/message_templates", config.waba_id),
            uploader: config.app_id.map(|app_id| Uploader {
                versioned_base,
                app_id,
            }),
            base,
            access_token: config.access_token,
            timeout: config.timeout,
        })
    }

    /// Uploads a sample for every media header (the template's, each card's) and answers the
    /// handles. Everything is checked before anything is created: without an app id, or when a
    /// sample cannot be had, the template is refused and Meta's template API is not called.
    async fn upload_samples(&self, template: &NewTemplate) -> Result<Handles, TemplateApiError> {
        let content = &template.content;
        let header = content
            .header
            .as_ref()
            .filter(|h| h.format != HeaderFormat::Text);
        let media_cards = content
            .cards
            .iter()
            .filter(|card| card.header.format != HeaderFormat::Text)
            .count();
        if header.is_none() && media_cards == 0 {
            return Ok(Handles::default());
        }
        let Some(uploader) = &self.uploader else {
            return Err(TemplateApiError::NotConfigured {
                provider: PROVIDER,
                setting: "WAGATE_META_APP_ID",
                reason: "a media header's sample goes to Meta through the app's Resumable \
                         Upload API; set the Meta app id (--meta-app-id, WAGATE_META_APP_ID or \
                         meta_app_id in the config file)"
                    .into(),
            });
        };
        let mut handles = Handles::default();
        if let Some(header) = header {
            let sample = match &template.header_sample {
                Some(sample) => {
                    check_sample(header.format, sample)?;
                    sample.clone()
                }
                None => fetch_sample(&self.media, header.format, &header.value).await?,
            };
            handles.header = Some(
                uploader
                    .upload(&self.media, &self.access_token, &sample)
                    .await?,
            );
        }
        for card in &content.cards {
            let handle = if card.header.format == HeaderFormat::Text {
                None
            } else {
                let sample =
                    fetch_sample(&self.media, card.header.format, &card.header.value).await?;
                Some(
                    uploader
                        .upload(&self.media, &self.access_token, &sample)
                        .await?,
                )
            };
            handles.cards.push(handle);
        }
        Ok(handles)
    }

    async fn create_inner(&self, template: &NewTemplate) -> Result<Submitted, TemplateApiError> {
        let id = TemplateId::meta(&template.name, &template.language).map_err(|e| {
            TemplateApiError::Unsupported {
                provider: PROVIDER,
                reason: e.to_string(),
            }
        })?;
        if template.header_sample.is_some()
            && template
                .content
                .header
                .as_ref()
                .is_none_or(|h| h.format == HeaderFormat::Text)
        {
            return Err(TemplateApiError::Media {
                reason: "a header sample was given but the template has no media header".into(),
            });
        }
        let handles = self.upload_samples(template).await?;
        let body = create_body(template, &handles);
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

fn header_component(
    header: &TemplateHeader,
    samples: &[(String, String)],
    handle: Option<&str>,
) -> Value {
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
        // Meta takes a Resumable-Upload handle as the example, not a URL; the create path
        // uploads every media header's sample before it builds the body.
        media => json!({
            "type": "HEADER",
            "format": media.as_str().to_ascii_uppercase(),
            "example": {"header_handle": [handle.unwrap_or_default()]},
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

/// The `POST /{waba-id}/message_templates` body, with the upload `handles` of its media headers.
pub(crate) fn create_body(template: &NewTemplate, handles: &Handles) -> Value {
    let content = &template.content;
    let samples = template.samples();
    let named = samples.iter().any(|(key, _)| key.parse::<u32>().is_err());
    let mut components = Vec::new();
    if let Some(header) = &content.header {
        components.push(header_component(
            header,
            &samples,
            handles.header.as_deref(),
        ));
    }
    components.push(body_component(&content.body, &samples, named));
    if !content.buttons.is_empty() {
        components.push(buttons_component(&content.buttons));
    }
    if !content.cards.is_empty() {
        let cards: Vec<Value> = content
            .cards
            .iter()
            .enumerate()
            .map(|(index, card)| {
                let handle = handles.cards.get(index).and_then(Option::as_deref);
                json!({"components": [
                    header_component(&card.header, &samples, handle),
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
