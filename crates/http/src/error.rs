//! How failures become HTTP answers: one JSON shape ([`crate::api::ErrorBody`]) for all of them.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use wagate_app::AppError;
use wagate_domain::Refusal;

use crate::api::{ErrorBody, ErrorDetail, Phase};

/// Seconds a client should wait after a 503 (a full write queue drains within a few group
/// commits; a contended stream settles as fast).
const RETRY_AFTER_SECONDS: &str = "1";

/// The response header that marks the stored answer of an earlier request with the same
/// `Idempotency-Key` (value `true`): nothing was recorded by this request.
pub const IDEMPOTENT_REPLAYED: &str = "idempotent-replayed";

tokio::task_local! {
    /// The id of the request being answered (set by the router's middleware around every
    /// handler), so that every error body names it without each handler passing it along.
    pub static REQUEST_ID: String;
}

/// The id of the request this task is answering, if any.
pub fn current_request_id() -> Option<String> {
    REQUEST_ID.try_with(Clone::clone).ok()
}

/// The verdict a response carries to the metrics and tracing middleware.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict(pub &'static str);

/// The rule of a refusal, for the refusals-by-rule counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefusedRule(pub &'static str);

#[derive(Debug)]
pub enum ApiError {
    Refused(Refusal),
    /// The refusal stored under the `Idempotency-Key`, answered again (422 with
    /// `Idempotent-Replayed: true`).
    ReplayedRefusal(Refusal),
    /// 409: the `Idempotency-Key` was already used with a different request.
    IdempotencyKeyReused {
        key: String,
    },
    Invalid {
        field: String,
        message: String,
    },
    NotFound(String),
    /// 409: the command contradicts what the provider reported; nothing was appended.
    Conflict(String),
    /// 502: the provider's API refused or failed a call made for this request (creating a
    /// template); nothing was appended.
    Provider(String),
    NotClaimable {
        message: String,
        phase: Option<Phase>,
    },
    /// 401: no usable bearer token; the message says what was wrong with what came.
    Unauthorized(String),
    Forbidden(String),
    /// 403 `forbidden` with `required_role`: a known token whose role may not use the route.
    WrongRole {
        required_role: wagate_domain::Role,
        message: String,
    },
    TooLarge(String),
    /// 408: the request (its body included) was not complete within the request timeout.
    Timeout(String),
    Unavailable(String),
    Internal(String),
}

impl ApiError {
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }

    fn status(&self) -> StatusCode {
        match self {
            Self::Refused(_) | Self::ReplayedRefusal(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::IdempotencyKeyReused { .. } => StatusCode::CONFLICT,
            Self::Invalid { .. } => StatusCode::BAD_REQUEST,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::NotClaimable { .. } | Self::Conflict(_) => StatusCode::CONFLICT,
            Self::Provider(_) => StatusCode::BAD_GATEWAY,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) | Self::WrongRole { .. } => StatusCode::FORBIDDEN,
            Self::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Timeout(_) => StatusCode::REQUEST_TIMEOUT,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }

    fn detail(self) -> ErrorDetail {
        let plain = |code: &str, message: String| ErrorDetail {
            code: code.to_owned(),
            message,
            rule: None,
            also_broken: None,
            field: None,
            phase: None,
            required_role: None,
            request_id: current_request_id(),
        };
        match self {
            Self::Refused(refusal) | Self::ReplayedRefusal(refusal) => ErrorDetail {
                rule: Some(refusal.rule.as_str().to_owned()),
                also_broken: Some(
                    refusal
                        .also_broken
                        .iter()
                        .map(|rule| rule.as_str().to_owned())
                        .collect(),
                ),
                ..plain("refused", refusal.message)
            },
            Self::Invalid { field, message } => ErrorDetail {
                field: Some(field),
                ..plain("invalid", message)
            },
            Self::IdempotencyKeyReused { key } => ErrorDetail {
                field: Some("Idempotency-Key".into()),
                ..plain(
                    "idempotency_key_reused",
                    format!(
                        "Idempotency-Key {key:?} was already used with a different request \
                         (another body, recipient, sender or dry_run); nothing was recorded: \
                         use a new key for a new request"
                    ),
                )
            },
            Self::NotFound(message) => plain("not_found", message),
            Self::Conflict(message) => plain("conflict", message),
            Self::Provider(message) => plain("provider_error", message),
            Self::NotClaimable { message, phase } => ErrorDetail {
                phase,
                ..plain("not_claimable", message)
            },
            Self::Unauthorized(reason) => plain("unauthorized", reason),
            Self::Forbidden(message) => plain("forbidden", message),
            Self::WrongRole {
                required_role,
                message,
            } => ErrorDetail {
                required_role: Some(required_role.as_str().to_owned()),
                ..plain("forbidden", message)
            },
            Self::TooLarge(message) => plain("payload_too_large", message),
            Self::Timeout(message) => plain("request_timeout", message),
            Self::Unavailable(message) => plain("unavailable", message),
            Self::Internal(message) => plain("internal", message),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        // A replayed refusal is not counted again: the refusals counter counts decisions.
        let rule = match &self {
            Self::Refused(refusal) => Some(RefusedRule(refusal.rule.as_str())),
            _ => None,
        };
        let replayed = matches!(self, Self::ReplayedRefusal(_));
        let unavailable = self.is_unavailable();
        let mut response = (
            status,
            Json(ErrorBody {
                error: self.detail(),
            }),
        )
            .into_response();
        if unavailable {
            response.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from_static(RETRY_AFTER_SECONDS),
            );
        }
        if let Some(rule) = rule {
            response.extensions_mut().insert(rule);
        }
        if replayed {
            response
                .headers_mut()
                .insert(IDEMPOTENT_REPLAYED, HeaderValue::from_static("true"));
        }
        response
    }
}

impl From<AppError> for ApiError {
    fn from(error: AppError) -> Self {
        match error {
            AppError::Refused(refusal) => Self::Refused(refusal),
            AppError::ReplayedRefusal(refusal) => Self::ReplayedRefusal(refusal),
            AppError::IdempotencyKeyReused { key } => Self::IdempotencyKeyReused { key },
            AppError::Invalid { field, reason } => Self::Invalid {
                message: format!("invalid {field}: {reason}"),
                field,
            },
            AppError::NotFound { what } => Self::NotFound(format!("{what} not found")),
            AppError::Conflict { reason } => Self::Conflict(reason),
            error @ (AppError::CampaignRowWithdrawn { .. } | AppError::CampaignRowHeld { .. }) => {
                Self::Conflict(error.to_string())
            }
            error @ AppError::NotClaimable { .. } => Self::NotClaimable {
                message: error.to_string(),
                phase: None,
            },
            error @ (AppError::Contended { .. } | AppError::Busy { .. }) => {
                Self::Unavailable(error.to_string())
            }
            error @ AppError::Corrupt { .. } => Self::Internal(error.to_string()),
            // "the event log cannot be written now: …"
            error @ AppError::Unavailable(_) => Self::Unavailable(error.to_string()),
            AppError::Rejected { field, message } => Self::invalid(field, message),
            error @ AppError::Log(_) => Self::Internal(error.to_string()),
        }
    }
}

/// Adds a verdict for the metrics to a response.
pub fn with_verdict(mut response: Response, verdict: &'static str) -> Response {
    response.extensions_mut().insert(Verdict(verdict));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn answer(error: ApiError) -> (StatusCode, Option<String>, serde_json::Value) {
        let response = error.into_response();
        let status = response.status();
        let retry_after = response
            .headers()
            .get(header::RETRY_AFTER)
            .map(|value| value.to_str().expect("ascii").to_owned());
        let body = axum::body::to_bytes(response.into_body(), 64 * 1024)
            .await
            .expect("body");
        (
            status,
            retry_after,
            serde_json::from_slice(&body).expect("json"),
        )
    }

    #[tokio::test]
    async fn a_full_write_queue_is_503_with_retry_after_naming_the_cause() {
        {
            let (status, retry_after, body) =
                answer(ApiError::from(AppError::Busy { capacity: 2048 })).await;
            assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
            assert_eq!(retry_after.as_deref(), Some(RETRY_AFTER_SECONDS));
            assert_eq!(body["error"]["code"], "unavailable");
            assert_eq!(
                body["error"]["message"],
                "the log's write queue is full (2048 requests); retry"
            );
        }
    }

    #[tokio::test]
    async fn an_error_body_names_the_request_it_answers() {
        let (_, _, body) = REQUEST_ID
            .scope(
                "req-42".to_owned(),
                answer(ApiError::NotFound("no such route".into())),
            )
            .await;
        assert_eq!(body["error"]["request_id"], "req-42");
        // Outside a request (no id known) the field is left out, not null.
        let (_, _, body) = answer(ApiError::NotFound("no such route".into())).await;
        assert!(body["error"].get("request_id").is_none(), "{body}");
    }
}
