//! The HTTP calls, one method each; the request shapes are docs/providers.md's ("HubSpot").

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use reqwest::header::{HeaderMap, AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use super::HubSpotError;
use crate::http::{base_url, build_client, MAX_RESPONSE_BYTES};
use crate::{ConfigError, Secret};

/// HubSpot's burst window: a 429 with no hint waits this long (docs/providers.md).
const BURST_WINDOW: Duration = Duration::from_secs(10);
/// A 429 of the daily policy: the day's quota is gone; the caller's own cap bounds this.
const DAILY_WAIT: Duration = Duration::from_secs(600);

/// The CRM objects wagate writes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectType {
    Contacts,
    Communications,
    Notes,
}

impl ObjectType {
    pub fn as_str(self) -> &'static str {
        match self {
            ObjectType::Contacts => "contacts",
            ObjectType::Communications => "communications",
            ObjectType::Notes => "notes",
        }
    }
}

/// A WhatsApp Communication for the timeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommunicationInput {
    /// `hs_communication_body` (HTML allowed; wagate sends escaped text).
    pub body: String,
    /// `hs_timestamp`: where the record sits on the timeline (ISO-8601 UTC).
    pub timestamp: String,
    /// Further properties (the idempotency property, an owner).
    pub extra: BTreeMap<String, String>,
}

/// A note on a contact (consent changes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteInput {
    pub body: String,
    pub timestamp: String,
    pub extra: BTreeMap<String, String>,
}

/// A HubSpot API client for one private app token.
#[derive(Debug)]
pub struct HubSpotClient {
    http: reqwest::Client,
    base: String,
    token: Secret,
    timeout: Duration,
    /// Set when an answer said the window has no request left: the next call waits until then.
    pause_until: Mutex<Option<tokio::time::Instant>>,
}

impl HubSpotClient {
    /// `base` is `https://api.hubapi.com` or a test's fake; `timeout` bounds each connection.
    pub fn new(base: &str, token: Secret, timeout: Duration) -> Result<Self, ConfigError> {
        let http = build_client(timeout)?;
        Ok(HubSpotClient {
            http,
            base: base_url(base, "HubSpot API base")?,
            token,
            timeout,
            pause_until: Mutex::new(None),
        })
    }

    /// The oldest contact whose `phone` or `mobilephone` is `phone` (E.164), if any.
    pub async fn find_contact_by_phone(&self, phone: &str) -> Result<Option<String>, HubSpotError> {
        let body = json!({
            "filterGroups": [
                {"filters": [{"propertyName": "phone", "operator": "EQ", "value": phone}]},
                {"filters": [{"propertyName": "mobilephone", "operator": "EQ", "value": phone}]},
            ],
            "properties": ["phone", "mobilephone"],
            "sorts": [{"propertyName": "createdate", "direction": "ASCENDING"}],
            "limit": 1,
        });
        let answer = self
            .call(Method::POST, "/crm/v3/objects/contacts/search", Some(body))
            .await?;
        Ok(first_result_id(&answer))
    }

    /// Creates a contact with `phone` (E.164) as its phone number; answers its id.
    pub async fn create_contact(&self, phone: &str) -> Result<String, HubSpotError> {
        let body = json!({"properties": {"phone": phone}});
        let answer = self
            .call(Method::POST, "/crm/v3/objects/contacts", Some(body))
            .await?;
        object_id(&answer)
    }

    /// Sets contact properties (the WhatsApp consent state).
    pub async fn update_contact(
        &self,
        id: &str,
        properties: &BTreeMap<String, String>,
    ) -> Result<(), HubSpotError> {
        let path = format!("/crm/v3/objects/contacts/{}", segment(id));
        self.call(
            Method::PATCH,
            &path,
            Some(json!({"properties": properties})),
        )
        .await?;
        Ok(())
    }

    /// The id of the `object` whose `property` equals `value`, if any: how a record whose
    /// create answer was lost (a crash) is found instead of created twice.
    pub async fn find_by_property(
        &self,
        object: ObjectType,
        property: &str,
        value: &str,
    ) -> Result<Option<String>, HubSpotError> {
        let body = json!({
            "filterGroups": [{"filters": [{"propertyName": property, "operator": "EQ", "value": value}]}],
            "properties": [property],
            "limit": 1,
        });
        let path = format!("/crm/v3/objects/{}/search", object.as_str());
        let answer = self.call(Method::POST, &path, Some(body)).await?;
        Ok(first_result_id(&answer))
    }

    /// Creates a WhatsApp Communication; answers its id. Associate it with
    /// [`HubSpotClient::associate_to_contact`].
    pub async fn create_communication(
        &self,
        input: &CommunicationInput,
    ) -> Result<String, HubSpotError> {
        let mut properties = input.extra.clone();
        properties.insert("hs_communication_channel_type".into(), "WHATS_APP".into());
        properties.insert("hs_communication_logged_from".into(), "CRM".into());
        properties.insert("hs_communication_body".into(), input.body.clone());
        properties.insert("hs_timestamp".into(), input.timestamp.clone());
        let answer = self
            .call(
                Method::POST,
                "/crm/v3/objects/communications",
                Some(json!({"properties": properties})),
            )
            .await?;
        object_id(&answer)
    }

    /// Replaces a Communication's body (its status line changed).
    pub async fn update_communication(&self, id: &str, body: &str) -> Result<(), HubSpotError> {
        let path = format!("/crm/v3/objects/communications/{}", segment(id));
        self.call(
            Method::PATCH,
            &path,
            Some(json!({"properties": {"hs_communication_body": body}})),
        )
        .await?;
        Ok(())
    }

    /// Creates a note; answers its id.
    pub async fn create_note(&self, input: &NoteInput) -> Result<String, HubSpotError> {
        let mut properties = input.extra.clone();
        properties.insert("hs_note_body".into(), input.body.clone());
        properties.insert("hs_timestamp".into(), input.timestamp.clone());
        let answer = self
            .call(
                Method::POST,
                "/crm/v3/objects/notes",
                Some(json!({"properties": properties})),
            )
            .await?;
        object_id(&answer)
    }

    /// Associates a communication or note with a contact, with HubSpot's default association
    /// type (the v4 "default" route needs no type id, whose published values are unverified).
    /// A `PUT`: repeating it changes nothing.
    pub async fn associate_to_contact(
        &self,
        object: ObjectType,
        id: &str,
        contact: &str,
    ) -> Result<(), HubSpotError> {
        let path = format!(
            "/crm/v4/objects/{}/{}/associations/default/contacts/{}",
            object.as_str(),
            segment(id),
            segment(contact)
        );
        self.call(Method::PUT, &path, None).await?;
        Ok(())
    }

    /// One request: waits out a pause the last answer asked for, sends, sorts the answer.
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, HubSpotError> {
        let pause = *self.pause_until.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(until) = pause {
            tokio::time::sleep_until(until).await;
        }
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .timeout(self.timeout)
            .header(AUTHORIZATION, format!("Bearer {}", self.token.expose()));
        if let Some(body) = body {
            request = request
                .header(CONTENT_TYPE, "application/json")
                .body(body.to_string());
        }
        let response = request
            .send()
            .await
            .map_err(|error| HubSpotError::Transient(crate::http::describe(error)))?;
        let status = response.status();
        let headers = response.headers().clone();
        // A 429's wait is the caller's to honour (it is in the error); pausing here too would
        // wait twice.
        if status != StatusCode::TOO_MANY_REQUESTS {
            self.note_window(&headers);
        }
        let bytes = response
            .bytes()
            .await
            .map_err(|error| HubSpotError::Transient(crate::http::describe(error)))?;
        let text = String::from_utf8_lossy(&bytes[..bytes.len().min(MAX_RESPONSE_BYTES)]);
        classify(status, &headers, &text)
    }

    /// Remembers to wait for the next window when this one has no request left.
    fn note_window(&self, headers: &HeaderMap) {
        let exhausted = [
            "x-hubspot-ratelimit-secondly-remaining",
            "x-hubspot-ratelimit-remaining",
        ]
        .iter()
        .any(|name| header_number(headers, name) == Some(0.0));
        let mut pause = self.pause_until.lock().unwrap_or_else(|e| e.into_inner());
        *pause = exhausted.then(|| tokio::time::Instant::now() + window(headers));
    }
}

/// The length of the rate-limit window the answer names (the interval header), else the
/// one-second window of the `Secondly` headers' policy.
fn window(headers: &HeaderMap) -> Duration {
    header_number(headers, "x-hubspot-ratelimit-interval-milliseconds")
        .filter(|ms| ms.is_finite() && *ms > 0.0)
        .map_or(Duration::from_secs(1), |ms| {
            Duration::from_millis(ms.min(86_400_000.0) as u64)
        })
}

fn header_number(headers: &HeaderMap, name: &str) -> Option<f64> {
    headers
        .get(name)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().parse::<f64>().ok())
}

/// What an answer means (docs/providers.md, "HubSpot": errors and rate limits).
pub(crate) fn classify(
    status: StatusCode,
    headers: &HeaderMap,
    body: &str,
) -> Result<Value, HubSpotError> {
    if status.is_success() {
        if body.trim().is_empty() {
            return Ok(Value::Null);
        }
        return serde_json::from_str(body)
            .map_err(|_| HubSpotError::Unexpected(format!("answered {status} with no JSON body")));
    }
    let error: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    if status == StatusCode::TOO_MANY_REQUESTS {
        let daily = error.get("policyName").and_then(Value::as_str) == Some("DAILY");
        let asked = header_number(headers, RETRY_AFTER.as_str())
            .filter(|seconds| seconds.is_finite() && *seconds > 0.0)
            .map(|seconds| Duration::from_secs_f64(seconds.min(86_400.0)));
        let wait = match (asked, daily) {
            (Some(asked), _) => asked,
            (None, true) => DAILY_WAIT,
            (None, false) if headers.contains_key("x-hubspot-ratelimit-interval-milliseconds") => {
                window(headers)
            }
            (None, false) => BURST_WINDOW,
        };
        return Err(HubSpotError::RateLimited(wait));
    }
    if status.is_server_error() || status == StatusCode::REQUEST_TIMEOUT {
        return Err(HubSpotError::Transient(format!("answered {status}")));
    }
    Err(HubSpotError::Refused {
        status: status.as_u16(),
        category: error
            .get("category")
            .and_then(Value::as_str)
            .map(ToOwned::to_owned),
        // HubSpot's message names the property or value at fault, not the token.
        message: error
            .get("message")
            .and_then(Value::as_str)
            .map_or_else(|| format!("answered {status}"), ToOwned::to_owned),
    })
}

fn object_id(answer: &Value) -> Result<String, HubSpotError> {
    match answer.get("id") {
        Some(Value::String(id)) if !id.is_empty() => Ok(id.clone()),
        Some(Value::Number(id)) => Ok(id.to_string()),
        _ => Err(HubSpotError::Unexpected(
            "no object id in the answer".into(),
        )),
    }
}

fn first_result_id(answer: &Value) -> Option<String> {
    answer
        .get("results")
        .and_then(Value::as_array)
        .and_then(|results| results.first())
        .and_then(|first| object_id(first).ok())
}

/// An id as one path segment: HubSpot's ids are digits; anything else is escaped, never a
/// path of its own.
fn segment(id: &str) -> String {
    url::form_urlencoded::byte_serialize(id.as_bytes()).collect()
}
