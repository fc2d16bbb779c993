//! Outgoing webhook endpoints: registered, listed and deleted through the log (stream
//! `webhook:endpoints`), and the secret each one's deliveries are signed with.
//!
//! The secret is never written to the log, which is exported for auditors: it is
//! HMAC-SHA256(signing key, endpoint id), and the signing key is 32 random bytes kept in the
//! database folder (a store slot beside the log, created on first use; not part of any
//! export). So deliveries survive restarts, a backup of the folder keeps the secrets, and a
//! database rebuilt from an export (`wagate import`) has a new key: its endpoints must be
//! registered again (docs/webhooks.md).

use hmac::{Hmac, Mac};
use sha2::Sha256;
use wagate_domain::{
    Actor, EndpointEvent, EndpointId, Event, OutgoingEventKind, StreamKey, Timestamp,
};
use wagate_store::SnapshotSave;

use crate::codec;
use crate::error::{AppError, Result};
use crate::hub::Hub;
use crate::reads::LoggedEvent;

/// The store slot holding the signing key.
const KEY_SLOT: &str = "webhook-signing-key";
/// The most endpoints the stream is read for (the list is small; this bounds a read).
const ENDPOINTS_MAX_EVENTS: usize = 100_000;

/// A registered endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub id: EndpointId,
    pub url: String,
    pub events: Vec<OutgoingEventKind>,
    pub registered_at: Timestamp,
    /// The position of its registration: events after it are delivered.
    pub registered_position: u64,
    /// Who registered it.
    pub registered_by: Option<Actor>,
    /// Deleted (nothing more is delivered): when.
    pub deleted_at: Option<Timestamp>,
    /// Disabled after failing too long (nothing is delivered until it is re-enabled): when,
    /// and why.
    pub disabled_at: Option<Timestamp>,
    pub disabled_reason: Option<String>,
    /// Who last re-enabled it after a disable (a manual retry).
    pub enabled_by: Option<Actor>,
}

impl Endpoint {
    /// Whether deliveries run: neither deleted nor disabled.
    pub fn is_live(&self) -> bool {
        self.deleted_at.is_none() && self.disabled_at.is_none()
    }

    /// `active`, `disabled` or `deleted`.
    pub fn state(&self) -> &'static str {
        if self.deleted_at.is_some() {
            "deleted"
        } else if self.disabled_at.is_some() {
            "disabled"
        } else {
            "active"
        }
    }
}

/// Checks an endpoint URL: `https://`, or `http://` to a loopback host (127.0.0.0/8,
/// `localhost`, `[::1]`) for local receivers and tests.
pub fn check_url(input: &str) -> Result<String> {
    let invalid = |reason: &str| AppError::Invalid {
        field: "url".into(),
        reason: reason.into(),
    };
    let url = url::Url::parse(input).map_err(|error| invalid(&format!("{input:?}: {error}")))?;
    let loopback = match url.host() {
        Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => return Err(invalid("has no host")),
    };
    match url.scheme() {
        "https" => {}
        "http" if loopback => {}
        "http" => {
            return Err(invalid(
                "must be https:// (http:// only to a loopback host: 127.0.0.0/8, localhost, [::1])",
            ))
        }
        other => return Err(invalid(&format!("scheme {other:?} is not https"))),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid("must not carry a user name or password"));
    }
    Ok(url.to_string())
}

/// Parses event kind names, refusing an unknown or empty list.
pub fn parse_kinds(names: &[String]) -> Result<Vec<OutgoingEventKind>> {
    if names.is_empty() {
        return Err(AppError::Invalid {
            field: "events".into(),
            reason: "name at least one event type".into(),
        });
    }
    let mut kinds = Vec::new();
    for name in names {
        let kind = OutgoingEventKind::parse(name).ok_or_else(|| AppError::Invalid {
            field: "events".into(),
            reason: format!(
                "unknown event type {name:?} (known: {})",
                OutgoingEventKind::ALL
                    .map(OutgoingEventKind::as_str)
                    .join(", ")
            ),
        })?;
        if !kinds.contains(&kind) {
            kinds.push(kind);
        }
    }
    Ok(kinds)
}

/// The secret of endpoint `id` under `key`: `whsec_` and 64 hex digits.
pub fn derive_secret(key: &[u8], id: &EndpointId) -> String {
    // Invariant: HMAC takes a key of any length.
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC accepts any key length");
    mac.update(b"wagate webhook endpoint secret:");
    mac.update(id.as_str().as_bytes());
    format!("whsec_{}", hex::encode(mac.finalize().into_bytes()))
}

/// Folds the endpoint stream into the list, in registration order.
fn fold(events: &[LoggedEvent]) -> Vec<Endpoint> {
    let mut list: Vec<Endpoint> = Vec::new();
    for logged in events {
        match &logged.event {
            Event::Endpoint(EndpointEvent::Registered {
                endpoint,
                url,
                events,
                at,
            }) => list.push(Endpoint {
                id: endpoint.clone(),
                url: url.clone(),
                events: events.clone(),
                registered_at: *at,
                registered_position: logged.position,
                registered_by: logged.actor.clone(),
                deleted_at: None,
                disabled_at: None,
                disabled_reason: None,
                enabled_by: None,
            }),
            Event::Endpoint(EndpointEvent::Deleted { endpoint, at }) => {
                if let Some(found) = list.iter_mut().find(|e| &e.id == endpoint) {
                    found.deleted_at = Some(*at);
                }
            }
            Event::Endpoint(EndpointEvent::Disabled {
                endpoint,
                reason,
                at,
                ..
            }) => {
                if let Some(found) = list.iter_mut().find(|e| &e.id == endpoint) {
                    found.disabled_at = Some(*at);
                    found.disabled_reason = Some(reason.clone());
                }
            }
            Event::Endpoint(EndpointEvent::Enabled { endpoint, .. }) => {
                if let Some(found) = list.iter_mut().find(|e| &e.id == endpoint) {
                    found.disabled_at = None;
                    found.disabled_reason = None;
                    found.enabled_by = logged.actor.clone();
                }
            }
            _ => {}
        }
    }
    list
}

fn find<'a>(list: &'a [Endpoint], id: &EndpointId) -> Result<&'a Endpoint> {
    list.iter()
        .find(|endpoint| &endpoint.id == id)
        .ok_or_else(|| AppError::NotFound {
            what: format!("webhook endpoint {id}"),
        })
}

impl Hub {
    /// Every endpoint ever registered (deleted ones carry `deleted_at`), and the stream's
    /// version.
    fn endpoint_stream(&self) -> Result<(Vec<Endpoint>, u64)> {
        let stream = codec::stream_id(&StreamKey::Endpoints)?;
        let records = self
            .inner
            .log
            .read_stream(&stream, 0, ENDPOINTS_MAX_EVENTS)?;
        let version = records.last().map_or(0, |record| record.version);
        let events = records
            .iter()
            .map(LoggedEvent::decode)
            .collect::<Result<Vec<_>>>()?;
        Ok((fold(&events), version))
    }

    /// The endpoints, deleted ones included (they say when).
    pub fn endpoints(&self) -> Result<Vec<Endpoint>> {
        Ok(self.endpoint_stream()?.0)
    }

    /// One endpoint, deleted or not.
    pub fn endpoint(&self, id: &EndpointId) -> Result<Endpoint> {
        self.endpoints()?
            .into_iter()
            .find(|endpoint| &endpoint.id == id)
            .ok_or_else(|| AppError::NotFound {
                what: format!("webhook endpoint {id}"),
            })
    }

    /// Registers an endpoint (the acting operator is recorded) and answers it with its secret.
    pub async fn register_endpoint(
        &self,
        url: &str,
        events: &[String],
    ) -> Result<(Endpoint, String)> {
        let url = check_url(url)?;
        let events = parse_kinds(events)?;
        let id = EndpointId::from_bytes(rand::random());
        let secret = self.endpoint_secret(&id).await?;
        let key = StreamKey::Endpoints;
        let _guards = self.inner.locks.lock(&[&key]).await;
        let event = Event::Endpoint(EndpointEvent::Registered {
            endpoint: id.clone(),
            url,
            events,
            at: self.now(),
        });
        self.retrying(|| async {
            let (_, version) = self.endpoint_stream()?;
            self.commit_simple(key.clone(), version, vec![event.clone()])
                .await
        })
        .await?;
        Ok((self.endpoint(&id)?, secret))
    }

    /// Deletes an endpoint: its deliveries stop. Deleting a deleted one changes nothing.
    pub async fn delete_endpoint(&self, id: &EndpointId) -> Result<Endpoint> {
        let key = StreamKey::Endpoints;
        let _guards = self.inner.locks.lock(&[&key]).await;
        self.retrying(|| async {
            let (list, version) = self.endpoint_stream()?;
            let found = find(&list, id)?;
            if found.deleted_at.is_some() {
                return Ok(Vec::new());
            }
            let event = Event::Endpoint(EndpointEvent::Deleted {
                endpoint: id.clone(),
                at: self.now(),
            });
            self.commit_simple(key.clone(), version, vec![event]).await
        })
        .await?;
        self.endpoint(id)
    }

    /// Disables a live endpoint that failed continuously since `failing_since` (the
    /// deliveries' decision): its follower stops, and the event raises a review item. A
    /// deleted or already disabled one is left as it is.
    pub async fn disable_endpoint(
        &self,
        id: &EndpointId,
        reason: &str,
        failing_since: Timestamp,
    ) -> Result<Endpoint> {
        let key = StreamKey::Endpoints;
        let _guards = self.inner.locks.lock(&[&key]).await;
        self.retrying(|| async {
            let (list, version) = self.endpoint_stream()?;
            let found = find(&list, id)?;
            if !found.is_live() {
                return Ok(Vec::new());
            }
            let event = Event::Endpoint(EndpointEvent::Disabled {
                endpoint: id.clone(),
                reason: reason.to_owned(),
                failing_since,
                at: self.now(),
            });
            self.commit_simple(key.clone(), version, vec![event]).await
        })
        .await?;
        self.endpoint(id)
    }

    /// Retries endpoint `id` now: a disabled one is re-enabled (the acting operator is
    /// recorded) and resumes from its checkpoint; a live one's current backoff is cut short.
    /// A deleted one cannot be retried.
    pub async fn retry_endpoint(&self, id: &EndpointId) -> Result<Endpoint> {
        let key = StreamKey::Endpoints;
        {
            let _guards = self.inner.locks.lock(&[&key]).await;
            self.retrying(|| async {
                let (list, version) = self.endpoint_stream()?;
                let found = find(&list, id)?;
                if found.deleted_at.is_some() {
                    return Err(AppError::Invalid {
                        field: "id".into(),
                        reason: format!("webhook endpoint {id} is deleted: register it again"),
                    });
                }
                if found.disabled_at.is_none() {
                    return Ok(Vec::new());
                }
                let event = Event::Endpoint(EndpointEvent::Enabled {
                    endpoint: id.clone(),
                    at: self.now(),
                });
                self.commit_simple(key.clone(), version, vec![event]).await
            })
            .await?;
        }
        // The failure threshold counts anew from the re-enable.
        self.reset_failing(id).await?;
        // No follower listening (a disabled endpoint's starts with the next watch) is fine.
        let _ = self.inner.endpoint_retries.send(id.clone());
        self.endpoint(id)
    }

    /// The secret endpoint `id`'s deliveries are signed with (module docs).
    pub async fn endpoint_secret(&self, id: &EndpointId) -> Result<String> {
        let key = self.signing_key().await?;
        Ok(derive_secret(&key, id))
    }

    /// The signing key, created and saved on first use (once: concurrent first uses wait).
    async fn signing_key(&self) -> Result<Vec<u8>> {
        self.inner
            .endpoint_key
            .get_or_try_init(|| async {
                if let Some(saved) = self.inner.log.snapshot(KEY_SLOT)? {
                    if saved.bytes.len() == 32 {
                        return Ok(saved.bytes);
                    }
                    return Err(AppError::Corrupt {
                        position: 0,
                        reason: format!(
                            "the webhook signing key has {} bytes, not 32",
                            saved.bytes.len()
                        ),
                    });
                }
                let key: [u8; 32] = rand::random();
                self.inner
                    .log
                    .save_snapshot(
                        KEY_SLOT,
                        SnapshotSave {
                            position: 0,
                            bytes: key.to_vec(),
                            entries: Vec::new(),
                            replace_entries: false,
                        },
                    )
                    .await?;
                Ok(key.to_vec())
            })
            .await
            .cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn https_anywhere_and_http_only_to_loopback() {
        for ok in [
            "https://agent.example.com/hook",
            "http://127.0.0.1:8080/x",
            "http://127.3.4.5/x",
            "http://localhost:9/x",
            "http://[::1]:9/x",
        ] {
            assert!(check_url(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://agent.example.com/hook",
            "http://10.0.0.1/x",
            "ftp://127.0.0.1/x",
            "https://user:pw@example.com/",
            "not a url",
        ] {
            assert!(
                matches!(check_url(bad), Err(AppError::Invalid { ref field, .. }) if field == "url"),
                "{bad}"
            );
        }
    }

    #[test]
    fn event_names_are_checked() {
        assert_eq!(
            parse_kinds(&["opted_out".into(), "inbound_message".into()]).ok(),
            Some(vec![
                OutgoingEventKind::OptedOut,
                OutgoingEventKind::InboundMessage
            ])
        );
        assert!(parse_kinds(&[]).is_err());
        assert!(parse_kinds(&["delivered".into()]).is_err());
    }

    #[test]
    fn secrets_differ_per_endpoint_and_per_key() {
        let a = EndpointId::from_bytes([1; 16]);
        let b = EndpointId::from_bytes([2; 16]);
        assert_eq!(derive_secret(b"k", &a), derive_secret(b"k", &a));
        assert_ne!(derive_secret(b"k", &a), derive_secret(b"k", &b));
        assert_ne!(derive_secret(b"k", &a), derive_secret(b"j", &a));
        assert_eq!(derive_secret(b"k", &a).len(), 6 + 64);
    }
}
