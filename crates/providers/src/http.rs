//! What both HTTP clients share: building reqwest clients, validating base URLs and turning
//! reqwest failures into [`SendError`]s without leaking URLs or credentials.

use std::error::Error as _;
use std::time::Duration;

use wagate_domain::ProviderKind;

use crate::send::{ConfigError, SendAccepted, SendError};

/// Provider answers are small JSON documents; anything larger is not one of them.
pub(crate) const MAX_RESPONSE_BYTES: usize = 64 * 1024;

pub(crate) fn build_client(timeout: Duration) -> Result<reqwest::Client, ConfigError> {
    if timeout.is_zero() {
        return Err(ConfigError::Invalid {
            name: "timeout",
            reason: "must be greater than zero",
        });
    }
    reqwest::Client::builder()
        .use_rustls_tls()
        .connect_timeout(timeout)
        // Redirects from an API endpoint would resend credentials elsewhere.
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(ConfigError::Http)
}

/// A base URL without its trailing slash, so paths can be appended with `format!`.
pub(crate) fn base_url(raw: &str, name: &'static str) -> Result<String, ConfigError> {
    let parsed = url::Url::parse(raw).map_err(|_| ConfigError::InvalidUrl { name })?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return Err(ConfigError::InvalidUrl { name });
    }
    Ok(raw.trim_end_matches('/').to_owned())
}

pub(crate) fn transport_error(
    provider: ProviderKind,
    timeout: Duration,
    error: reqwest::Error,
) -> SendError {
    // Connect first: a connect timeout also counts as a timeout, but it proves nothing left.
    if error.is_connect() {
        return SendError::Connect {
            provider,
            reason: describe(error),
        };
    }
    if error.is_timeout() {
        return SendError::Timeout { provider, timeout };
    }
    SendError::Transport {
        provider,
        reason: describe(error),
    }
}

/// The error and its causes, without the URL (the account SID is in Twilio's path).
pub(crate) fn describe(error: reqwest::Error) -> String {
    let error = error.without_url();
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Sends a prepared provider request and reads the answer: its HTTP status (also recorded on the
/// current span) and body, or the transport failure.
pub(crate) async fn exchange(
    provider: ProviderKind,
    timeout: Duration,
    request: reqwest::RequestBuilder,
) -> Result<(u16, Vec<u8>), SendError> {
    let response = request
        .timeout(timeout)
        .send()
        .await
        .map_err(|e| transport_error(provider, timeout, e))?;
    let http_status = response.status().as_u16();
    tracing::Span::current().record("http_status", http_status);
    let body = read_body(provider, timeout, response).await?;
    Ok((http_status, body))
}

/// Runs one provider call in its `provider.send` span (ids and outcome only: never the
/// recipient's text, never credentials) and records the outcome on it.
pub(crate) fn instrumented_send<'a>(
    provider: ProviderKind,
    message_id: wagate_domain::MessageId,
    call: impl std::future::Future<Output = Result<SendAccepted, SendError>> + Send + 'a,
) -> crate::send::SendFuture<'a> {
    let span = tracing::info_span!(
        "provider.send",
        provider = provider.as_str(),
        message_id = %message_id,
        http_status = tracing::field::Empty,
        provider_message_id = tracing::field::Empty,
        error_code = tracing::field::Empty,
    );
    Box::pin(tracing::Instrument::instrument(
        async move {
            let result = call.await;
            record_outcome(&result);
            result
        },
        span,
    ))
}

/// Reads the response body up to [`MAX_RESPONSE_BYTES`].
async fn read_body(
    provider: ProviderKind,
    timeout: Duration,
    mut response: reqwest::Response,
) -> Result<Vec<u8>, SendError> {
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| transport_error(provider, timeout, e))?
    {
        if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
            return Err(SendError::UnexpectedResponse {
                provider,
                http_status: response.status().as_u16(),
                reason: format!("body larger than {MAX_RESPONSE_BYTES} bytes"),
            });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// A short, printable excerpt of a non-JSON error body (proxies answer with HTML).
pub(crate) fn excerpt(body: &[u8]) -> String {
    const MAX: usize = 200;
    let text = String::from_utf8_lossy(body);
    let mut out: String = text.chars().filter(|c| !c.is_control()).take(MAX).collect();
    if text.chars().count() > MAX {
        out.push('…');
    }
    out
}

/// Records a send's outcome on the current span and as one event. A provider's rejection text
/// can quote the recipient's number, so rejections are logged by code and status only.
pub(crate) fn record_outcome(result: &Result<SendAccepted, SendError>) {
    let span = tracing::Span::current();
    match result {
        Ok(accepted) => {
            span.record("provider_message_id", accepted.provider_message_id.as_str());
            tracing::info!("provider accepted the message");
        }
        Err(error @ SendError::Rejected { .. }) => {
            if let Some(code) = error.code() {
                span.record("error_code", code);
            }
            tracing::warn!(code = ?error.code(), http_status = ?error.http_status(), "provider rejected the message");
        }
        Err(error) => {
            tracing::warn!(
                %error,
                transport = error.is_transport(),
                in_doubt = error.may_have_been_sent(),
                "send failed"
            );
        }
    }
}
