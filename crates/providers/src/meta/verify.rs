//! The GET handshake Meta sends when a webhook URL or verify token is configured:
//! `?hub.mode=subscribe&hub.challenge=<random>&hub.verify_token=<ours>`. The answer is
//! 200 with the raw challenge when the token matches, anything else otherwise.

use subtle::ConstantTimeEq;

use crate::Secret;

/// Why a verification request is refused (answer 403).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubscriptionRefusal {
    /// A `hub.*` parameter is absent or empty.
    #[error("missing query parameter {0}")]
    MissingParameter(&'static str),
    /// `hub.mode` is not `subscribe`.
    #[error("hub.mode is {0:?}, expected \"subscribe\"")]
    UnexpectedMode(String),
    /// `hub.verify_token` differs from the configured token.
    #[error("hub.verify_token does not match the configured verify token")]
    TokenMismatch,
}

/// Checks a verification request's query string and returns the challenge to echo.
pub fn verify_subscription(
    query: &str,
    verify_token: &Secret,
) -> Result<String, SubscriptionRefusal> {
    let (mut mode, mut token, mut challenge) = (None, None, None);
    for (name, value) in url::form_urlencoded::parse(query.as_bytes()) {
        let slot = match name.as_ref() {
            "hub.mode" => &mut mode,
            "hub.verify_token" => &mut token,
            "hub.challenge" => &mut challenge,
            _ => continue,
        };
        // First occurrence wins, so a second appended parameter cannot override it.
        if slot.is_none() {
            *slot = Some(value.into_owned());
        }
    }
    let present = |value: Option<String>, name| {
        value
            .filter(|v| !v.is_empty())
            .ok_or(SubscriptionRefusal::MissingParameter(name))
    };
    let mode = present(mode, "hub.mode")?;
    if mode != "subscribe" {
        return Err(SubscriptionRefusal::UnexpectedMode(mode));
    }
    let token = present(token, "hub.verify_token")?;
    if !bool::from(token.as_bytes().ct_eq(verify_token.expose().as_bytes())) {
        return Err(SubscriptionRefusal::TokenMismatch);
    }
    present(challenge, "hub.challenge")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals() {
        let token = Secret::new("t");
        assert_eq!(
            verify_subscription(
                "hub.mode=subscribe&hub.challenge=42&hub.verify_token=t",
                &token
            ),
            Ok("42".into())
        );
        assert_eq!(
            verify_subscription(
                "hub.mode=unsubscribe&hub.challenge=42&hub.verify_token=t",
                &token
            ),
            Err(SubscriptionRefusal::UnexpectedMode("unsubscribe".into()))
        );
        assert_eq!(
            verify_subscription(
                "hub.mode=subscribe&hub.challenge=42&hub.verify_token=x",
                &token
            ),
            Err(SubscriptionRefusal::TokenMismatch)
        );
        assert_eq!(
            verify_subscription("hub.mode=subscribe&hub.verify_token=t", &token),
            Err(SubscriptionRefusal::MissingParameter("hub.challenge"))
        );
        assert_eq!(
            verify_subscription("hub.mode=subscribe&hub.challenge=42", &token),
            Err(SubscriptionRefusal::MissingParameter("hub.verify_token"))
        );
        assert_eq!(
            verify_subscription("", &token),
            Err(SubscriptionRefusal::MissingParameter("hub.mode"))
        );
        assert_eq!(
            verify_subscription(
                "hub.mode=subscribe&hub.challenge=42&hub.verify_token=t&hub.verify_token=x",
                &token
            ),
            Ok("42".into()),
            "first occurrence wins"
        );
    }
}
