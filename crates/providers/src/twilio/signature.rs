//! `X-Twilio-Signature` verification, as twilio-python 9.13.0 and twilio-node 6.2.0 do it.
//!
//! String to sign: the full public URL (query included, exactly as configured at Twilio)
//! followed by every decoded form field as `name + value`, names sorted by code point and
//! each name's values de-duplicated and sorted. The HMAC key is the account Auth Token
//! (HMAC-SHA1, the legacy default) or, when the request announces one through
//! `X-Twilio-Webhooks-Signature-Settings`, a SharedKey secret (HMAC-SHA1 or HMAC-SHA256).
//! The header value is the base64 of the MAC.
//!
//! Twilio's back end is inconsistent about default ports, so both SDKs accept a signature
//! over the URL as given and over the URL with its port toggled (`:443`/`:80` added when
//! absent, any port removed when present); so do we.
//!
//! JSON-body webhooks put `bodySHA256=<hex>` in the query: the signature covers the URL
//! alone, and the lowercase hex SHA-256 of the raw body must equal that parameter.

use std::collections::{BTreeMap, BTreeSet};

use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::{Secret, SignatureError};

/// Header carrying the signature.
pub const SIGNATURE_HEADER: &str = "X-Twilio-Signature";
/// Header announcing a SharedKey signature: `key=<sharedKeyId>,algorithm=<algorithm>`.
pub const SIGNATURE_SETTINGS_HEADER: &str = "X-Twilio-Webhooks-Signature-Settings";

/// The MAC Twilio used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SigningAlgorithm {
    /// `HMAC_SHA1`, the legacy default.
    HmacSha1,
    /// `HMAC_SHA256`, SharedKey signing.
    HmacSha256,
}

impl SigningAlgorithm {
    /// Parses an algorithm name case-insensitively (twilio-python upper-cases it).
    pub fn parse(name: &str) -> Result<Self, SignatureError> {
        match name.trim().to_ascii_uppercase().as_str() {
            "HMAC_SHA1" => Ok(Self::HmacSha1),
            "HMAC_SHA256" => Ok(Self::HmacSha256),
            _ => Err(SignatureError::UnsupportedAlgorithm(name.trim().to_owned())),
        }
    }
}

/// What `X-Twilio-Webhooks-Signature-Settings` says: which key and which algorithm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureSettings {
    /// The SharedKey id (`key=`), if named.
    pub key_id: Option<String>,
    /// The algorithm (`algorithm=`); HMAC-SHA1 when absent, as in twilio-python.
    pub algorithm: SigningAlgorithm,
}

impl SignatureSettings {
    /// Parses the header value. An absent or empty header means the legacy Auth Token
    /// signature; an unknown algorithm is an error, never a silent fallback.
    pub fn parse(header: Option<&str>) -> Result<Self, SignatureError> {
        let mut settings = Self {
            key_id: None,
            algorithm: SigningAlgorithm::HmacSha1,
        };
        for part in header.unwrap_or_default().split(',') {
            let Some((name, value)) = part.split_once('=') else {
                continue;
            };
            let value = value.trim();
            match name.trim() {
                "algorithm" if !value.is_empty() => {
                    settings.algorithm = SigningAlgorithm::parse(value)?;
                }
                "key" if !value.is_empty() => settings.key_id = Some(value.to_owned()),
                _ => {}
            }
        }
        Ok(settings)
    }
}

/// The secrets a Twilio webhook may be signed with.
#[derive(Debug, Clone)]
pub struct TwilioSigningKeys {
    auth_token: Secret,
    shared_keys: BTreeMap<String, Secret>,
}

impl TwilioSigningKeys {
    /// Keys for an account that signs with its Auth Token only.
    pub fn new(auth_token: Secret) -> Self {
        Self {
            auth_token,
            shared_keys: BTreeMap::new(),
        }
    }

    /// Adds a SharedKey secret, selected when a request names `key=<id>`.
    pub fn with_shared_key(mut self, key_id: impl Into<String>, secret: Secret) -> Self {
        self.shared_keys.insert(key_id.into(), secret);
        self
    }

    fn secret_for(&self, settings: &SignatureSettings) -> Result<&Secret, SignatureError> {
        match &settings.key_id {
            None => Ok(&self.auth_token),
            Some(id) => self
                .shared_keys
                .get(id)
                .ok_or_else(|| SignatureError::UnknownSharedKey(id.clone())),
        }
    }
}

/// A webhook request as it reached the hub.
#[derive(Debug, Clone, Copy)]
pub struct TwilioWebhookRequest<'a> {
    /// The public URL Twilio called: the configured public base URL + path + query as
    /// received (behind proxies the local URL differs from what Twilio signed).
    pub url: &'a str,
    /// The raw body.
    pub body: &'a [u8],
    /// `X-Twilio-Signature`.
    pub signature: Option<&'a str>,
    /// `X-Twilio-Webhooks-Signature-Settings`.
    pub signature_settings: Option<&'a str>,
}

/// Verifies a Twilio webhook. `Ok(())` means the request is genuine.
pub fn verify_signature(
    keys: &TwilioSigningKeys,
    request: &TwilioWebhookRequest<'_>,
) -> Result<(), SignatureError> {
    let signature = request
        .signature
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .ok_or(SignatureError::MissingHeader {
            header: SIGNATURE_HEADER,
        })?;
    let settings = SignatureSettings::parse(request.signature_settings)?;
    let secret = keys.secret_for(&settings)?;
    let url = SplitUrl::parse(request.url)?;

    let params = match url.query_value("bodySHA256") {
        Some(expected_hash) => {
            let actual = hex::encode(Sha256::digest(request.body));
            if !bool::from(actual.as_bytes().ct_eq(expected_hash.as_bytes())) {
                return Err(SignatureError::BodyHashMismatch);
            }
            // The JSON body is covered by its hash; the signature covers the URL alone.
            SortedParams::default()
        }
        None => SortedParams::from_form(request.body),
    };

    let mut matched = false;
    for candidate in [request.url.to_owned(), url.with_port_toggled()] {
        let expected = compute_signature(secret, settings.algorithm, &candidate, &params);
        // Evaluate both candidates regardless of the first result: constant work per request.
        matched |= bool::from(expected.as_bytes().ct_eq(signature.as_bytes()));
    }
    if matched {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

/// Form parameters in signing order: names sorted, each name's values de-duplicated and sorted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SortedParams(BTreeMap<String, BTreeSet<String>>);

impl SortedParams {
    /// Decodes an `application/x-www-form-urlencoded` body (Twilio signs decoded values).
    pub fn from_form(body: &[u8]) -> Self {
        Self::from_pairs(url::form_urlencoded::parse(body).into_owned())
    }

    /// Builds the parameter set from decoded pairs.
    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        let mut map: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (name, value) in pairs {
            map.entry(name.into()).or_default().insert(value.into());
        }
        Self(map)
    }
}

/// The `X-Twilio-Signature` value for `url` and `params`. Public so that the sandbox provider
/// and tests can sign the callbacks they send.
pub fn compute_signature(
    secret: &Secret,
    algorithm: SigningAlgorithm,
    url: &str,
    params: &SortedParams,
) -> String {
    let key = secret.expose().as_bytes();
    let mac = match algorithm {
        SigningAlgorithm::HmacSha1 => feed(Hmac::<Sha1>::new_from_slice(key), url, params)
            .map(|m| m.finalize().into_bytes().to_vec()),
        SigningAlgorithm::HmacSha256 => feed(Hmac::<Sha256>::new_from_slice(key), url, params)
            .map(|m| m.finalize().into_bytes().to_vec()),
    };
    base64::engine::general_purpose::STANDARD.encode(mac.unwrap_or_default())
}

/// HMAC accepts keys of any length, so `new_from_slice` cannot fail; the `Option` only avoids
/// an unwrap on an invariant the type system does not show.
fn feed<M: Mac>(
    mac: Result<M, hmac::digest::InvalidLength>,
    url: &str,
    params: &SortedParams,
) -> Option<M> {
    let mut mac = mac.ok()?;
    mac.update(url.as_bytes());
    for (name, values) in &params.0 {
        for value in values {
            mac.update(name.as_bytes());
            mac.update(value.as_bytes());
        }
    }
    Some(mac)
}

/// A URL cut at its authority, enough to toggle the port without re-encoding anything
/// (a URL library would normalise percent-encoding and break the signature).
#[derive(Debug)]
struct SplitUrl<'a> {
    scheme: &'a str,
    /// `user:pass@` or empty.
    userinfo: &'a str,
    host: &'a str,
    port: Option<&'a str>,
    /// Path, query and fragment, unchanged.
    rest: &'a str,
}

impl<'a> SplitUrl<'a> {
    fn parse(url: &'a str) -> Result<Self, SignatureError> {
        let (scheme, after) = url
            .split_once("://")
            .ok_or(SignatureError::InvalidUrl("no scheme"))?;
        let authority_end = after.find(['/', '?', '#']).unwrap_or(after.len());
        let (authority, rest) = after.split_at(authority_end);
        let (userinfo, hostport) = match authority.rfind('@') {
            Some(at) => authority.split_at(at + 1),
            None => ("", authority),
        };
        if hostport.is_empty() {
            return Err(SignatureError::InvalidUrl("no host"));
        }
        // The port follows the last ':' unless that ':' is inside an IPv6 literal.
        let (host, port) = match hostport.rfind(':') {
            Some(colon) if !hostport[colon..].contains(']') => {
                let port = &hostport[colon + 1..];
                if !port.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(SignatureError::InvalidUrl("port is not a number"));
                }
                (&hostport[..colon], (!port.is_empty()).then_some(port))
            }
            _ => (hostport, None),
        };
        Ok(Self {
            scheme,
            userinfo,
            host,
            port,
            rest,
        })
    }

    /// With a port: the same URL without it. Without one: the scheme's default port added.
    fn with_port_toggled(&self) -> String {
        let port = match self.port {
            Some(_) => String::new(),
            None if self.scheme.eq_ignore_ascii_case("https") => ":443".to_owned(),
            None => ":80".to_owned(),
        };
        format!(
            "{}://{}{}{}{}",
            self.scheme, self.userinfo, self.host, port, self.rest
        )
    }

    /// First value of a query parameter (decoded), ignoring any fragment.
    fn query_value(&self, name: &str) -> Option<String> {
        let query = self.rest.split('#').next()?.split_once('?')?.1;
        url::form_urlencoded::parse(query.as_bytes())
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.into_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sign(url: &str, body: &[u8]) -> String {
        compute_signature(
            &Secret::new("12345"),
            SigningAlgorithm::HmacSha1,
            url,
            &SortedParams::from_form(body),
        )
    }

    fn check(
        url: &str,
        body: &[u8],
        signature: &str,
        settings: Option<&str>,
    ) -> Result<(), SignatureError> {
        let keys = TwilioSigningKeys::new(Secret::new("12345"))
            .with_shared_key("webhooks_sharedkey_1", Secret::new("shared-secret"));
        verify_signature(
            &keys,
            &TwilioWebhookRequest {
                url,
                body,
                signature: Some(signature),
                signature_settings: settings,
            },
        )
    }

    #[test]
    fn string_to_sign_sorts_names_and_dedups_values() {
        // Same multiset in a different order, with a duplicated value: identical signatures.
        let a = sign("https://h/x", b"b=2&a=1&b=1&b=2");
        let b = sign("https://h/x", b"a=1&b=1&b=2");
        assert_eq!(a, b);
        // The explicit string: url + a1 + b1 + b2.
        let mut mac = Hmac::<Sha1>::new_from_slice(b"12345").expect("any key length");
        mac.update(b"https://h/xa1b1b2");
        let expected =
            base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
        assert_eq!(a, expected);
    }

    #[test]
    fn port_toggling() {
        let url = SplitUrl::parse("https://hub.example.com/a?b=c").expect("valid");
        assert_eq!(url.with_port_toggled(), "https://hub.example.com:443/a?b=c");
        let url = SplitUrl::parse("http://hub.example.com:8080/a").expect("valid");
        assert_eq!(url.with_port_toggled(), "http://hub.example.com/a");
        let url = SplitUrl::parse("http://[::1]/a").expect("valid");
        assert_eq!(url.with_port_toggled(), "http://[::1]:80/a");
        let url = SplitUrl::parse("http://[::1]:81/a").expect("valid");
        assert_eq!(url.with_port_toggled(), "http://[::1]/a");
        assert!(SplitUrl::parse("/webhooks/twilio/status").is_err());
        assert!(SplitUrl::parse("https://h:x/").is_err());
    }

    #[test]
    fn non_default_port_is_accepted_with_or_without_it() {
        // twilio-python strips whatever port is present; a signature made without it passes.
        let body = b"MessageSid=SM1&MessageStatus=sent";
        let sig = sign("https://hub.example.com/s", body);
        assert_eq!(
            check("https://hub.example.com:8443/s", body, &sig, None),
            Ok(())
        );
        let sig = sign("https://hub.example.com:8443/s", body);
        assert_eq!(
            check("https://hub.example.com:8443/s", body, &sig, None),
            Ok(())
        );
    }

    #[test]
    fn shared_key_sha256() {
        let url = "https://hub.example.com/s";
        let body = b"MessageSid=SM1&MessageStatus=sent";
        let params = SortedParams::from_form(body);
        let sig = compute_signature(
            &Secret::new("shared-secret"),
            SigningAlgorithm::HmacSha256,
            url,
            &params,
        );
        let header = Some("key=webhooks_sharedkey_1,algorithm=HMAC_SHA256");
        assert_eq!(check(url, body, &sig, header), Ok(()));
        // Lower-case algorithm names are accepted, as in twilio-python.
        assert_eq!(
            check(
                url,
                body,
                &sig,
                Some("key=webhooks_sharedkey_1, algorithm=hmac_sha256")
            ),
            Ok(())
        );
        // The same signature checked as SHA-1, or with the Auth Token, fails.
        assert_eq!(
            check(url, body, &sig, Some("key=webhooks_sharedkey_1")),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            check(url, body, &sig, Some("algorithm=HMAC_SHA256")),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            check(url, body, &sig, Some("key=other,algorithm=HMAC_SHA256")),
            Err(SignatureError::UnknownSharedKey("other".into()))
        );
        assert_eq!(
            check(
                url,
                body,
                &sig,
                Some("key=webhooks_sharedkey_1,algorithm=HMAC_SHA512")
            ),
            Err(SignatureError::UnsupportedAlgorithm("HMAC_SHA512".into()))
        );
    }

    #[test]
    fn missing_or_empty_signature() {
        for sig in ["", "  "] {
            assert_eq!(
                check("https://h/s", b"", sig, None),
                Err(SignatureError::MissingHeader {
                    header: SIGNATURE_HEADER
                })
            );
        }
    }

    #[test]
    fn settings_header_parsing() {
        assert_eq!(
            SignatureSettings::parse(None),
            Ok(SignatureSettings {
                key_id: None,
                algorithm: SigningAlgorithm::HmacSha1
            })
        );
        assert_eq!(
            SignatureSettings::parse(Some("algorithm=,key=")),
            Ok(SignatureSettings {
                key_id: None,
                algorithm: SigningAlgorithm::HmacSha1
            })
        );
        assert_eq!(
            SignatureSettings::parse(Some("key=k1,algorithm=HMAC_SHA256,extra")),
            Ok(SignatureSettings {
                key_id: Some("k1".into()),
                algorithm: SigningAlgorithm::HmacSha256
            })
        );
    }
}
