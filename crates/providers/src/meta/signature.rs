//! `X-Hub-Signature-256` verification: `sha256=` + lowercase hex HMAC-SHA256 of the raw body,
//! keyed with the app secret. Checked on the exact bytes before any JSON parsing: Meta escapes
//! non-ASCII as `\uXXXX`, so a re-serialised body would not match.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::{Secret, SignatureError};

/// Header carrying the signature.
pub const SIGNATURE_HEADER: &str = "X-Hub-Signature-256";

const PREFIX: &str = "sha256=";

/// Verifies a Meta webhook body against its `X-Hub-Signature-256` header value.
pub fn verify_signature(
    app_secret: &Secret,
    body: &[u8],
    header: Option<&str>,
) -> Result<(), SignatureError> {
    let header =
        header
            .map(str::trim)
            .filter(|h| !h.is_empty())
            .ok_or(SignatureError::MissingHeader {
                header: SIGNATURE_HEADER,
            })?;
    let hex_mac = header
        .strip_prefix(PREFIX)
        .ok_or(SignatureError::MalformedHeader {
            header: SIGNATURE_HEADER,
            reason: "does not start with sha256=",
        })?;
    let claimed = hex::decode(hex_mac).map_err(|_| SignatureError::MalformedHeader {
        header: SIGNATURE_HEADER,
        reason: "the MAC after sha256= is not hexadecimal",
    })?;
    let mut mac = Hmac::<Sha256>::new_from_slice(app_secret.expose().as_bytes())
        .map_err(|_| SignatureError::Mismatch)?;
    mac.update(body);
    // verify_slice compares in constant time (and rejects a wrong length).
    mac.verify_slice(&claimed)
        .map_err(|_| SignatureError::Mismatch)
}

/// The header value Meta would send for `body`; for tests and local fakes.
pub fn compute_signature(app_secret: &Secret, body: &[u8]) -> String {
    // HMAC takes keys of any length; an error here is impossible, and an empty MAC would
    // simply never verify.
    let digest = Hmac::<Sha256>::new_from_slice(app_secret.expose().as_bytes())
        .map(|mut mac| {
            mac.update(body);
            mac.finalize().into_bytes().to_vec()
        })
        .unwrap_or_default();
    format!("{PREFIX}{}", hex::encode(digest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_malformed_headers() {
        let secret = Secret::new("s3cret");
        let body = br#"{"object":"whatsapp_business_account","entry":[]}"#;
        let header = compute_signature(&secret, body);
        assert_eq!(verify_signature(&secret, body, Some(&header)), Ok(()));
        assert_eq!(
            verify_signature(
                &secret,
                body,
                Some(&header.to_uppercase().replace("SHA256=", "sha256="))
            ),
            Ok(()),
            "hex case does not matter"
        );
        assert_eq!(
            verify_signature(&secret, body, None),
            Err(SignatureError::MissingHeader {
                header: SIGNATURE_HEADER
            })
        );
        assert!(matches!(
            verify_signature(&secret, body, Some(&header[7..])),
            Err(SignatureError::MalformedHeader { .. })
        ));
        assert!(matches!(
            verify_signature(&secret, body, Some("sha256=zz")),
            Err(SignatureError::MalformedHeader { .. })
        ));
        assert_eq!(
            verify_signature(&secret, body, Some("sha256=00")),
            Err(SignatureError::Mismatch),
            "a truncated MAC never matches"
        );
        assert_eq!(
            verify_signature(&Secret::new("other"), body, Some(&header)),
            Err(SignatureError::Mismatch)
        );
    }
}
