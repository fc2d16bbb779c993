//! Creating templates at the provider, submitting them for WhatsApp's approval, and reading
//! their approval status back: Twilio's Content API (`twilio.rs`) and Meta's WhatsApp Business
//! Management API (`meta.rs`). Neither retries: the caller (the hub's poller, an HTTP request)
//! decides, and backs off on [`TemplateApiError::is_throttled`].

mod meta;
mod meta_upload;
mod twilio;

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use wagate_domain::template::TemplateContent;
use wagate_domain::{ApprovalStatus, ProviderKind, TemplateCategory, TemplateId};

pub use meta::{MetaTemplateConfig, MetaTemplates};
pub use meta_upload::{check_sample, sample_max_bytes, sample_types};
pub use twilio::{TwilioContentConfig, TwilioTemplates};

/// A template to create: what the operator wrote, already checked against WhatsApp's rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTemplate {
    pub name: String,
    pub language: String,
    pub category: TemplateCategory,
    pub content: TemplateContent,
    /// Sample values per placeholder key, which both providers require for review; a key
    /// without one gets `example_<key>`.
    pub examples: BTreeMap<String, String>,
    /// The media header's sample for Meta's review, given by the operator
    /// (`--header-file`); without one, Meta's client fetches it from the header's URL.
    pub header_sample: Option<MediaSample>,
}

/// A media header's sample file, as Meta's Resumable Upload API takes it.
#[derive(Clone, PartialEq, Eq)]
pub struct MediaSample {
    pub file_name: String,
    /// The MIME type (`image/jpeg`, `image/png`, `video/mp4`, `application/pdf`).
    pub content_type: String,
    pub bytes: Vec<u8>,
}

impl fmt::Debug for MediaSample {
    // The bytes are media, not something a log should hold.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MediaSample")
            .field("file_name", &self.file_name)
            .field("content_type", &self.content_type)
            .field("len", &self.bytes.len())
            .finish()
    }
}

impl NewTemplate {
    /// The sample value of each placeholder, in the order the content uses them.
    pub(crate) fn samples(&self) -> Vec<(String, String)> {
        wagate_domain::template::placeholders(&self.content)
            .into_iter()
            .map(|key| {
                let value = self
                    .examples
                    .get(&key)
                    .cloned()
                    .unwrap_or_else(|| format!("example_{key}"));
                (key, value)
            })
            .collect()
    }
}

/// The provider accepted the template (and, for Twilio, its submission).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Submitted {
    /// wagate's id: Twilio's Content SID, or `name@language` for Meta.
    pub template: TemplateId,
    /// Twilio's Content SID, Meta's numeric template id.
    pub provider_ref: String,
    pub status: ApprovalStatus,
    /// The provider's reason, or why the submission did not happen.
    pub reason: String,
}

/// One template as the provider lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteTemplate {
    pub template: TemplateId,
    pub provider_ref: String,
    pub name: String,
    pub language: String,
    pub category: Option<TemplateCategory>,
    /// `None`: a status wagate does not map (kept in `raw_status`).
    pub status: Option<ApprovalStatus>,
    pub raw_status: String,
    pub reason: String,
    /// The body text, when the listing carries it.
    pub body: Option<String>,
}

/// A template API call that failed. Never carries credentials or URLs with account ids.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateApiError {
    /// 429 or 5xx: try again later, after `retry_after` if the provider said.
    #[error("{provider} answered HTTP {http_status}: {message}")]
    Throttled {
        provider: &'static str,
        http_status: u16,
        retry_after: Option<Duration>,
        message: String,
    },
    /// The provider refused the request (4xx): it will refuse it again.
    #[error("{provider} refused the request (HTTP {http_status}{}): {message}", code.map(|c| format!(", code {c}")).unwrap_or_default())]
    Refused {
        provider: &'static str,
        http_status: u16,
        code: Option<u64>,
        message: String,
    },
    /// No answer (connect failure, timeout, reset).
    #[error("{provider} could not be reached: {reason}")]
    Transport {
        provider: &'static str,
        reason: String,
    },
    /// A 2xx answer that is not what the API documents.
    #[error("{provider} answered something unexpected: {reason}")]
    Unexpected {
        provider: &'static str,
        reason: String,
    },
    /// A setting the call needs is missing (e.g. `WAGATE_META_APP_ID` for a media header);
    /// nothing was sent.
    #[error("{provider} needs {setting}: {reason}")]
    NotConfigured {
        provider: &'static str,
        setting: &'static str,
        reason: String,
    },
    /// A media header's sample could not be had (fetch failed, wrong type, too large);
    /// nothing was created.
    #[error("header media: {reason}")]
    Media { reason: String },
    /// The template cannot be expressed at this provider (e.g. a text header on Twilio).
    #[error("{provider} cannot take this template: {reason}")]
    Unsupported {
        provider: &'static str,
        reason: String,
    },
}

impl TemplateApiError {
    /// Whether waiting may help (429, 5xx, no answer).
    pub fn is_throttled(&self) -> bool {
        matches!(self, Self::Throttled { .. } | Self::Transport { .. })
    }

    /// How long the provider asked us to wait, if it said.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Throttled { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

pub type TemplateFuture<'a, T> =
    Pin<Box<dyn Future<Output = Result<T, TemplateApiError>> + Send + 'a>>;

/// A provider's template API.
pub trait TemplateApi: Send + Sync + fmt::Debug {
    fn provider(&self) -> ProviderKind;

    /// Creates the template and submits it for WhatsApp's approval.
    fn create<'a>(&'a self, template: &'a NewTemplate) -> TemplateFuture<'a, Submitted>;

    /// Every template the account has, with its approval status (all pages).
    fn list(&self) -> TemplateFuture<'_, Vec<RemoteTemplate>>;
}

/// The template APIs that are configured, by provider.
#[derive(Debug, Clone, Default)]
pub struct TemplateClients {
    pub twilio: Option<Arc<dyn TemplateApi>>,
    pub meta: Option<Arc<dyn TemplateApi>>,
}

impl TemplateClients {
    pub fn get(&self, provider: ProviderKind) -> Option<&Arc<dyn TemplateApi>> {
        match provider {
            ProviderKind::Twilio => self.twilio.as_ref(),
            ProviderKind::Meta => self.meta.as_ref(),
            ProviderKind::Sandbox => None,
        }
    }

    pub fn all(&self) -> impl Iterator<Item = &Arc<dyn TemplateApi>> {
        self.twilio.iter().chain(self.meta.iter())
    }

    pub fn is_empty(&self) -> bool {
        self.twilio.is_none() && self.meta.is_none()
    }
}

/// Meta's template status words (webhook `event`, list `status`) as wagate's statuses. `None`
/// for the ones that say nothing about whether the template may be sent (FLAGGED is a quality
/// warning, LIMIT_EXCEEDED concerns creation, UNARCHIVED/UNLOCKED restore the previous status).
pub fn meta_status(word: &str) -> Option<ApprovalStatus> {
    Some(match word.to_ascii_uppercase().as_str() {
        "APPROVED" | "REINSTATED" | "ACTIVE" => ApprovalStatus::Approved,
        "PENDING" | "IN_APPEAL" => ApprovalStatus::Pending,
        "REJECTED" => ApprovalStatus::Rejected,
        "PAUSED" => ApprovalStatus::Paused,
        "DISABLED" | "DELETED" | "PENDING_DELETION" | "ARCHIVED" | "LOCKED" => {
            ApprovalStatus::Disabled
        }
        _ => return None,
    })
}

/// Twilio's approval words (`received`, `pending`, `approved`, …; case as sent).
pub fn twilio_status(word: &str) -> Option<ApprovalStatus> {
    ApprovalStatus::parse(word)
}

/// `Retry-After` in seconds, as both providers send it.
pub(crate) fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

/// Sends `request` and reads the answer (status, `Retry-After`, body up to 256 KiB).
pub(crate) async fn exchange(
    provider: &'static str,
    timeout: Duration,
    request: reqwest::RequestBuilder,
) -> Result<(u16, Option<Duration>, Vec<u8>), TemplateApiError> {
    const MAX_BYTES: usize = 256 * 1024;
    let transport = |error: reqwest::Error| TemplateApiError::Transport {
        provider,
        reason: error.without_url().to_string(),
    };
    let mut response = request.timeout(timeout).send().await.map_err(transport)?;
    let status = response.status().as_u16();
    let wait = retry_after(response.headers());
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(transport)? {
        if body.len() + chunk.len() > MAX_BYTES {
            return Err(TemplateApiError::Unexpected {
                provider,
                reason: format!("body larger than {MAX_BYTES} bytes"),
            });
        }
        body.extend_from_slice(&chunk);
    }
    Ok((status, wait, body))
}

/// A non-2xx answer as an error: 429 and 5xx are throttling, the rest refusals. `message` and
/// `code` come from the provider's JSON error body when it has one.
pub(crate) fn http_error(
    provider: &'static str,
    http_status: u16,
    retry_after: Option<Duration>,
    body: &[u8],
) -> TemplateApiError {
    let json: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    // Twilio: {"code", "message"}; Meta: {"error": {"code", "message", "error_user_msg"}}.
    let detail = json.get("error").unwrap_or(&json);
    let message = detail
        .get("error_user_msg")
        .or_else(|| detail.get("message"))
        .and_then(|m| m.as_str())
        .map_or_else(
            || String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned(),
            str::to_owned,
        );
    let code = detail.get("code").and_then(serde_json::Value::as_u64);
    if http_status == 429 || http_status >= 500 {
        TemplateApiError::Throttled {
            provider,
            http_status,
            retry_after,
            message,
        }
    } else {
        TemplateApiError::Refused {
            provider,
            http_status,
            code,
            message,
        }
    }
}

/// A next-page URL is followed only on the configured base, so credentials never go elsewhere.
pub(crate) fn same_origin(next: &str, base: &str) -> bool {
    next.starts_with(base)
        && next[base.len()..]
            .chars()
            .next()
            .is_none_or(|c| c == '/' || c == '?')
}
