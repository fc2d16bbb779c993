//! Templates from creation to approval: `POST /v1/templates` without `content_sid` validates a
//! template against WhatsApp's rules, creates and submits it at the provider, and records it;
//! [`sync`] reads every template's status back from the providers (the binary's poller, `POST
//! /v1/templates/sync`); [`report_notice`] records what Meta's template webhooks say.

use base64::Engine as _;
use wagate_api as api;
use wagate_app::Hub;
use wagate_domain::decide::{CreateTemplate, RegisterTemplate};
use wagate_domain::template::{
    self, ButtonKind, HeaderFormat, TemplateButton, TemplateCard, TemplateContent, TemplateHeader,
};
use wagate_domain::{Actor, ProviderKind, TemplateCategory, TemplateId};
use wagate_providers::meta::template_notice::{TemplateChange, TemplateNotice};
use wagate_providers::templates::{MediaSample, NewTemplate, TemplateApiError, TemplateClients};

use crate::error::ApiError;
use crate::metrics::Source;
use crate::state::AppState;

fn header(field: &str, body: &api::TemplateHeaderBody) -> Result<TemplateHeader, ApiError> {
    Ok(TemplateHeader {
        format: HeaderFormat::parse(&body.format).ok_or_else(|| {
            ApiError::invalid(
                field,
                format!(
                    "format {:?} is not one of text, image, video, document",
                    body.format
                ),
            )
        })?,
        value: body.value.clone(),
    })
}

fn buttons(field: &str, list: &[api::TemplateButtonBody]) -> Result<Vec<TemplateButton>, ApiError> {
    list.iter()
        .map(|button| {
            Ok(TemplateButton {
                kind: ButtonKind::parse(&button.kind).ok_or_else(|| {
                    ApiError::invalid(
                        field,
                        format!(
                            "type {:?} is not one of quick_reply, url, phone_number",
                            button.kind
                        ),
                    )
                })?,
                text: button.text.clone(),
                value: button.value.clone(),
            })
        })
        .collect()
}

fn content(request: &api::RegisterTemplateRequest) -> Result<TemplateContent, ApiError> {
    let body = request.body.clone().ok_or_else(|| {
        ApiError::invalid(
            "body",
            "creating a template needs its body text (or give content_sid to register one that exists)",
        )
    })?;
    let cards = request
        .cards
        .iter()
        .map(|card| {
            Ok(TemplateCard {
                header: header("cards", &card.header)?,
                body: card.body.clone(),
                buttons: buttons("cards", &card.buttons)?,
            })
        })
        .collect::<Result<_, ApiError>>()?;
    Ok(TemplateContent {
        body,
        header: request
            .header
            .as_ref()
            .map(|h| header("header", h))
            .transpose()?,
        buttons: buttons("buttons", &request.buttons)?,
        cards,
    })
}

/// The media header's sample the request carries: Meta only (Twilio takes the media by URL),
/// and only beside a media header; its type and size are checked by the Meta client.
fn header_sample(
    provider: ProviderKind,
    content: &TemplateContent,
    body: Option<&api::TemplateHeaderSample>,
) -> Result<Option<MediaSample>, ApiError> {
    let Some(body) = body else {
        return Ok(None);
    };
    if provider != ProviderKind::Meta {
        return Err(ApiError::invalid(
            "header_sample",
            "only a Meta template takes a header sample (Twilio reads the media from the header's URL)",
        ));
    }
    if content
        .header
        .as_ref()
        .is_none_or(|h| h.format == HeaderFormat::Text)
    {
        return Err(ApiError::invalid(
            "header_sample",
            "a header sample needs an image, video or document header",
        ));
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(body.data_base64.trim())
        .map_err(|e| {
            ApiError::invalid("header_sample", format!("data_base64 is not base64: {e}"))
        })?;
    Ok(Some(MediaSample {
        file_name: body.file_name.clone(),
        content_type: body.content_type.clone(),
        bytes,
    }))
}

/// Validates, creates and submits the template, and records it with the provider's answer.
pub(crate) async fn create(
    state: &AppState,
    hub: &Hub,
    request: api::RegisterTemplateRequest,
) -> Result<TemplateId, ApiError> {
    let provider = match request.provider.as_deref() {
        Some("twilio") => ProviderKind::Twilio,
        Some("meta") => ProviderKind::Meta,
        Some(other) => {
            return Err(ApiError::invalid(
                "provider",
                format!("{other:?} is not one of twilio, meta"),
            ))
        }
        None => {
            return Err(ApiError::invalid(
                "provider",
                "creating a template needs provider twilio or meta (or give content_sid to register one that exists)",
            ))
        }
    };
    if !request.placeholders.is_empty() {
        return Err(ApiError::invalid(
            "placeholders",
            "a created template takes its placeholders from its text; leave placeholders out",
        ));
    }
    let category = TemplateCategory::parse(&request.category).ok_or_else(|| {
        ApiError::invalid(
            "category",
            format!(
                "{:?} is not one of marketing, utility, authentication",
                request.category
            ),
        )
    })?;
    let content = content(&request)?;
    template::validate(&content).map_err(wagate_app::AppError::from)?;
    let sample = header_sample(provider, &content, request.header_sample.as_ref())?;
    if provider == ProviderKind::Meta {
        // Meta knows a template by name and language: refuse a duplicate before asking Meta.
        let id = TemplateId::meta(&request.name, &request.language)
            .map_err(|e| ApiError::invalid("name", e.to_string()))?;
        if hub.template(&id)?.state.created.is_some() {
            return Err(ApiError::Conflict(format!("template {id} already exists")));
        }
    }
    let client = state.templates().get(provider).ok_or_else(|| {
        ApiError::invalid(
            "provider",
            match provider {
                ProviderKind::Meta => "no Meta template API configured: set WAGATE_META_ACCESS_TOKEN and WAGATE_META_WABA_ID",
                _ => "no Twilio Content API configured: set WAGATE_TWILIO_ACCOUNT_SID and WAGATE_TWILIO_AUTH_TOKEN",
            },
        )
    })?;
    let new = NewTemplate {
        name: request.name.clone(),
        language: request.language.clone(),
        category,
        content: content.clone(),
        examples: request.examples.clone(),
        header_sample: sample,
    };
    let submitted = client.create(&new).await.map_err(|error| match error {
        TemplateApiError::Unsupported { reason, .. } => ApiError::invalid("provider", reason),
        // A setting wagate lacks, or a sample it cannot use: nothing went to the provider's
        // template API, and the answer says which setting or what was wrong with the media.
        error @ TemplateApiError::NotConfigured { .. } => {
            ApiError::invalid("header", error.to_string())
        }
        TemplateApiError::Media { reason } => ApiError::invalid("header", reason),
        other => ApiError::Provider(other.to_string()),
    })?;
    tracing::info!(
        provider = provider.as_str(),
        template = %submitted.template,
        status = submitted.status.as_str(),
        "template created at the provider"
    );
    let positions = hub
        .create_template(CreateTemplate {
            template: submitted.template.clone(),
            provider,
            provider_ref: submitted.provider_ref,
            name: request.name,
            language: request.language,
            category,
            content,
            status: submitted.status,
            reason: submitted.reason,
        })
        .await?;
    state.metrics().appended(Source::Command, positions.len());
    Ok(submitted.template)
}

/// The stream a provider's template lives on: `name@language` for Meta, unless only an older
/// registration by bare name with the same language exists, which is then the one meant.
fn resolve(hub: &Hub, id: &TemplateId) -> Result<TemplateId, ApiError> {
    if let Some(language) = id.meta_language() {
        if hub.template(id)?.state.definition.is_none() {
            if let Ok(bare) = TemplateId::parse(id.meta_name()) {
                let same_language = hub
                    .template(&bare)?
                    .state
                    .definition
                    .is_some_and(|d| d.language.replace('-', "_") == language);
                if same_language {
                    return Ok(bare);
                }
            }
        }
    }
    Ok(id.clone())
}

/// What one sync found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncSummary {
    /// Templates the providers listed.
    pub listed: usize,
    /// Of those, templates wagate did not know and registered.
    pub imported: usize,
    /// Status changes appended.
    pub changed: usize,
}

/// Reads every template of every configured provider and records what is new: a template
/// wagate does not know is registered (imported), and a status that changed is appended (one
/// that did not change appends nothing). Stops at the first provider error, which the caller
/// backs off on when it [`TemplateApiError::is_throttled`].
pub async fn sync(hub: &Hub, clients: &TemplateClients) -> Result<SyncSummary, SyncError> {
    let mut summary = SyncSummary::default();
    for client in clients.all() {
        let provider = client.provider();
        let hub = hub.acting(Actor::webhook(format!(
            "{}-template-sync",
            provider.as_str()
        )));
        let listed = client.list().await?;
        summary.listed += listed.len();
        for remote in listed {
            let id = resolve(&hub, &remote.template)?;
            let known = hub.template(&id)?.state.definition.is_some();
            if !known {
                let placeholders = remote
                    .body
                    .as_deref()
                    .map(|body| {
                        template::placeholders(&TemplateContent {
                            body: body.to_owned(),
                            header: None,
                            buttons: Vec::new(),
                            cards: Vec::new(),
                        })
                    })
                    .unwrap_or_default();
                let imported = hub
                    .register_template(RegisterTemplate {
                        template: id.clone(),
                        name: remote.name.clone(),
                        language: remote.language.clone(),
                        category: remote.category.unwrap_or(TemplateCategory::Utility),
                        placeholders,
                    })
                    .await;
                match imported {
                    Ok(_) => summary.imported += 1,
                    // A listing wagate cannot register (no name or language) still gets its
                    // status recorded below.
                    Err(wagate_app::AppError::Invalid { field, reason }) => {
                        tracing::warn!(template = %id, %field, %reason, "template not imported");
                    }
                    Err(other) => return Err(other.into()),
                }
            }
            let Some(status) = remote.status else {
                tracing::warn!(template = %id, status = %remote.raw_status, "unknown template status");
                continue;
            };
            let positions = hub
                .report_template_status(&id, status, &remote.reason)
                .await?;
            summary.changed += positions.len();
        }
    }
    Ok(summary)
}

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Provider(#[from] TemplateApiError),
    #[error("recording a template status: {0:?}")]
    Hub(ApiError),
}

impl From<ApiError> for SyncError {
    fn from(error: ApiError) -> Self {
        Self::Hub(error)
    }
}

impl From<wagate_app::AppError> for SyncError {
    fn from(error: wagate_app::AppError) -> Self {
        Self::Hub(error.into())
    }
}

/// Acts on one of Meta's template webhooks. `Ok(None)`: nothing beyond the provider notice the
/// webhook's events already record (a quality score; a category move that changes nothing);
/// `Ok(Some(Err(note)))`: nothing to act on, described for the rejection log's notes (a status
/// word that does not change whether it may be sent); `Ok(Some(Ok(n)))`: `n` events appended.
pub(crate) async fn report_notice(
    state: &AppState,
    hub: &Hub,
    notice: &TemplateNotice,
) -> Result<Option<Result<usize, String>>, ApiError> {
    if let TemplateChange::Quality { .. } = notice.change {
        return Ok(None);
    }
    let id = resolve(hub, &notice.template)?;
    match &notice.change {
        TemplateChange::Status {
            status: Some(status),
            reason,
            ..
        } => {
            let positions = hub.report_template_status(&id, *status, reason).await?;
            state.metrics().appended(Source::Webhook, positions.len());
            Ok(Some(Ok(positions.len())))
        }
        TemplateChange::Status { event, reason, .. } => Ok(Some(Err(format!(
            "template {id}: status {event} ({reason}) does not change whether it may be sent"
        )))),
        TemplateChange::Quality { .. } => Ok(None),
        TemplateChange::Category {
            previous,
            category: Some(category),
            ..
        } => {
            // The send gates follow the category Meta gives it (a marketing template is gated
            // as marketing whatever it was registered as).
            let positions = hub
                .report_template_category(&id, *category, previous)
                .await?;
            state.metrics().appended(Source::Webhook, positions.len());
            Ok((!positions.is_empty()).then_some(Ok(positions.len())))
        }
        TemplateChange::Category { previous, new, .. } => Ok(Some(Err(format!(
            "template {id}: category {previous} -> {new}, a category wagate does not know"
        )))),
    }
}
