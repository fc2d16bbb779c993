//! A Meta template's media header needs a sample that Meta's reviewers can see, given as a
//! handle from the Graph API's Resumable Upload API (`example.header_handle`), not as a URL:
//! `POST /{version}/{app-id}/uploads?file_name=…&file_length=…&file_type=…` (Bearer token)
//! opens an upload session (`{"id": "upload:…"}`), and `POST /{version}/{session-id}` with
//! `Authorization: OAuth <token>`, `file_offset: 0` and the bytes as the body answers the
//! handle (`{"h": "…"}`). The sample's bytes come from the header's URL ([`fetch_sample`]) or
//! from the operator (`wagate templates create --header-file`). docs/providers.md, "Meta
//! template media headers".

use std::time::Duration;

use serde::Deserialize;
use wagate_domain::template::HeaderFormat;

use super::{exchange, http_error, MediaSample, TemplateApiError};
use crate::Secret;

const PROVIDER: &str = "meta";

/// How long fetching a sample or uploading it may take: media is larger than an API call.
pub(crate) const MEDIA_TIMEOUT: Duration = Duration::from_secs(60);

/// The MIME types the Resumable Upload API takes (pdf, jpeg, jpg, png, mp4), by header kind.
pub fn sample_types(format: HeaderFormat) -> &'static [&'static str] {
    match format {
        HeaderFormat::Image => &["image/jpeg", "image/jpg", "image/png"],
        HeaderFormat::Video => &["video/mp4"],
        HeaderFormat::Document => &["application/pdf"],
        HeaderFormat::Text => &[],
    }
}

/// The largest sample wagate fetches or uploads, by header kind: WhatsApp's media limits for
/// images (5 MB) and videos (16 MB); documents are held to 16 MiB too (WhatsApp allows 100 MB,
/// but a review sample is read into memory and needs no more).
pub fn sample_max_bytes(format: HeaderFormat) -> usize {
    match format {
        HeaderFormat::Image => 5 * 1024 * 1024,
        HeaderFormat::Video | HeaderFormat::Document | HeaderFormat::Text => 16 * 1024 * 1024,
    }
}

/// The MIME type without parameters, lower-case.
fn essence(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

fn media_error(reason: String) -> TemplateApiError {
    TemplateApiError::Media { reason }
}

/// Checks a sample against its header's kind: a type the upload takes and a size within bounds.
pub fn check_sample(format: HeaderFormat, sample: &MediaSample) -> Result<(), TemplateApiError> {
    let allowed = sample_types(format);
    let kind = essence(&sample.content_type);
    if !allowed.contains(&kind.as_str()) {
        return Err(media_error(format!(
            "the {} header's sample is {kind:?}; Meta takes {} for it",
            format.as_str(),
            allowed.join(", ")
        )));
    }
    if sample.bytes.is_empty() {
        return Err(media_error(format!(
            "the {} header's sample is empty",
            format.as_str()
        )));
    }
    let max = sample_max_bytes(format);
    if sample.bytes.len() > max {
        return Err(media_error(format!(
            "the {} header's sample has {} bytes, more than the {max} wagate uploads",
            format.as_str(),
            sample.bytes.len()
        )));
    }
    Ok(())
}

/// The last path segment of `url`, as the upload's `file_name` (`header` when there is none).
fn file_name(url: &reqwest::Url) -> String {
    url.path_segments()
        .and_then(|mut segments| segments.next_back().map(str::to_owned))
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "header".to_owned())
}

/// Downloads the header's media as its sample: no credentials, no redirects (the client's),
/// at most [`sample_max_bytes`], within [`MEDIA_TIMEOUT`], and only of a type Meta takes for
/// the header's kind. The URL's scheme was checked when the template was validated (https).
pub(crate) async fn fetch_sample(
    http: &reqwest::Client,
    format: HeaderFormat,
    url: &str,
) -> Result<MediaSample, TemplateApiError> {
    let parsed = reqwest::Url::parse(url)
        .map_err(|e| media_error(format!("the header URL {url:?} does not parse: {e}")))?;
    let host = parsed.host_str().unwrap_or_default().to_owned();
    let failed = |e: reqwest::Error| {
        media_error(format!(
            "fetching the header's media from {host} failed: {}",
            crate::http::describe(e)
        ))
    };
    let mut response = http
        .get(parsed.clone())
        .timeout(MEDIA_TIMEOUT)
        .send()
        .await
        .map_err(failed)?;
    let status = response.status();
    if !status.is_success() {
        return Err(media_error(format!(
            "fetching the header's media from {host} answered HTTP {} (give the media's final https URL, or --header-file)",
            status.as_u16()
        )));
    }
    let content_type = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(essence)
        .unwrap_or_default();
    let allowed = sample_types(format);
    if !allowed.contains(&content_type.as_str()) {
        return Err(media_error(format!(
            "the {} header's media at {host} is {content_type:?}; Meta takes {} for it",
            format.as_str(),
            allowed.join(", ")
        )));
    }
    let max = sample_max_bytes(format);
    let too_large = || {
        media_error(format!(
            "the {} header's media at {host} is larger than the {max} bytes wagate uploads",
            format.as_str()
        ))
    };
    if response
        .content_length()
        .is_some_and(|length| length > max as u64)
    {
        return Err(too_large());
    }
    let mut bytes = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(failed)? {
        if bytes.len() + chunk.len() > max {
            return Err(too_large());
        }
        bytes.extend_from_slice(&chunk);
    }
    let sample = MediaSample {
        file_name: file_name(&parsed),
        content_type,
        bytes,
    };
    check_sample(format, &sample)?;
    Ok(sample)
}

/// The Resumable Upload API of one app.
#[derive(Debug)]
pub(crate) struct Uploader {
    /// `{base}/{version}`.
    pub(crate) versioned_base: String,
    pub(crate) app_id: String,
}

#[derive(Deserialize)]
struct Session {
    id: String,
}

#[derive(Deserialize)]
struct Uploaded {
    h: String,
}

impl Uploader {
    /// Uploads `sample` and answers its handle.
    pub(crate) async fn upload(
        &self,
        http: &reqwest::Client,
        token: &Secret,
        sample: &MediaSample,
    ) -> Result<String, TemplateApiError> {
        let start = http
            .post(format!("{}/{}/uploads", self.versioned_base, self.app_id))
            .query(&[
                ("file_name", sample.file_name.as_str()),
                ("file_length", &sample.bytes.len().to_string()),
                ("file_type", &essence(&sample.content_type)),
            ])
            .bearer_auth(token.expose());
        let (status, wait, body) = exchange(PROVIDER, MEDIA_TIMEOUT, start).await?;
        if !(200..300).contains(&status) {
            return Err(http_error(PROVIDER, status, wait, &body));
        }
        let session: Session = parse(&body, "upload session")?;
        let session_id = session_path(&session.id)?;
        let transfer = http
            .post(format!("{}/{session_id}", self.versioned_base))
            // The upload step takes the token as `OAuth`, not `Bearer` (Meta's upload guide).
            .header(
                reqwest::header::AUTHORIZATION,
                format!("OAuth {}", token.expose()),
            )
            .header("file_offset", "0")
            .header(reqwest::header::CONTENT_TYPE, essence(&sample.content_type))
            .body(sample.bytes.clone());
        let (status, wait, body) = exchange(PROVIDER, MEDIA_TIMEOUT, transfer).await?;
        if !(200..300).contains(&status) {
            return Err(http_error(PROVIDER, status, wait, &body));
        }
        let uploaded: Uploaded = parse(&body, "upload")?;
        if uploaded.h.trim().is_empty() {
            return Err(TemplateApiError::Unexpected {
                provider: PROVIDER,
                reason: "the upload answered an empty handle".into(),
            });
        }
        Ok(uploaded.h)
    }
}

fn parse<T: serde::de::DeserializeOwned>(body: &[u8], what: &str) -> Result<T, TemplateApiError> {
    serde_json::from_slice(body).map_err(|e| TemplateApiError::Unexpected {
        provider: PROVIDER,
        reason: format!("the {what} answer: {e}"),
    })
}

/// The session id as a path on the configured base: it is appended as Meta answered it (it
/// may carry its own query string), so it must start with `upload:` and hold nothing that
/// would leave the path (`/`, `#`, `\`, whitespace, control characters).
fn session_path(id: &str) -> Result<&str, TemplateApiError> {
    let well_formed = id.starts_with("upload:")
        && id.len() > "upload:".len()
        && !id
            .chars()
            .any(|c| matches!(c, '/' | '#' | '\\') || c.is_whitespace() || c.is_control());
    if well_formed {
        Ok(id)
    } else {
        Err(TemplateApiError::Unexpected {
            provider: PROVIDER,
            reason: format!("the upload session id {id:?} is not `upload:…`"),
        })
    }
}
