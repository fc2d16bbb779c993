//! What a HubSpot answer means for the caller.

use std::time::Duration;

/// Why a HubSpot call did not do what was asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HubSpotError {
    /// 429: try again after this long.
    #[error("HubSpot rate limit reached; retry after {0:?}")]
    RateLimited(Duration),
    /// A 5xx, a timeout, a refused connection: may work later.
    #[error("HubSpot is unavailable: {0}")]
    Transient(String),
    /// Another 4xx: will not work without a person (a bad token, an unknown property, a
    /// contact that cannot be created). `category` and `message` are HubSpot's error body's.
    #[error("HubSpot refused the request ({status}{}): {message}", category.as_deref().map(|c| format!(", {c}")).unwrap_or_default())]
    Refused {
        status: u16,
        category: Option<String>,
        message: String,
    },
    /// A 2xx whose body is not what HubSpot documents (no `id`, not JSON).
    #[error("HubSpot answered something unexpected: {0}")]
    Unexpected(String),
}

impl HubSpotError {
    /// Whether retrying the same request later may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            HubSpotError::RateLimited(_) | HubSpotError::Transient(_)
        )
    }
}
