//! The HTTP client the operator commands use to reach a running hub.
//!
//! Every failure names the hub's URL; a hub that cannot be reached, a refused token (401) and a
//! refusal by a compliance rule (422) each get their own clear message.

use std::time::Duration;

use anyhow::{anyhow, Context as _};
use reqwest::{Method, StatusCode};
use serde::{Deserialize as _, Serialize};
use serde_json::Value;
use wagate_api::{ErrorBody, ErrorDetail};

/// Where the hub is and how to authenticate (shared by every command that talks to a hub).
#[derive(Debug, Clone, clap::Args)]
pub struct HubArgs {
    /// Base URL of the running hub.
    #[arg(
        long,
        env = "WAGATE_HUB",
        value_name = "URL",
        default_value = "http://127.0.0.1:8080"
    )]
    pub hub: String,

    /// Bearer token of the hub's command API: an operator token for consent, templates and
    /// senders (`wagate serve` in sandbox mode prints one per role at start, the operator's as
    /// `api token`).
    #[arg(
        long,
        env = "WAGATE_API_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    pub token: Option<String>,
}

/// A refusal by a compliance rule (HTTP 422): the rule id and its sentence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub rule: String,
    pub message: String,
    /// Other rules the same request also breaks, in check order.
    pub also_broken: Vec<String>,
    /// The whole response body, for `--json`.
    pub body: Value,
}

/// What a call answered, once transport, authentication and server errors are ruled out.
#[derive(Debug)]
pub enum Answer {
    /// 2xx, with the body parsed as JSON (`null` when empty).
    Ok(Value),
    /// 422: a compliance rule refused.
    Refused(Refused),
}

#[derive(Debug, Clone)]
pub struct HubClient {
    base: reqwest::Url,
    token: Option<String>,
    http: reqwest::Client,
}

impl HubClient {
    pub fn new(base: &str, token: Option<String>) -> anyhow::Result<Self> {
        let mut base = reqwest::Url::parse(base)
            .with_context(|| format!("--hub {base:?} is not a URL (e.g. http://127.0.0.1:8080)"))?;
        if !matches!(base.scheme(), "http" | "https") {
            anyhow::bail!("--hub {base} must be an http:// or https:// URL");
        }
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .build()
            .context("cannot build the HTTP client")?;
        Ok(Self {
            base,
            token: token.filter(|token| !token.is_empty()),
            http,
        })
    }

    pub fn from_args(args: &HubArgs) -> anyhow::Result<Self> {
        Self::new(&args.hub, args.token.clone())
    }

    /// The hub's base URL as given (for messages).
    pub fn base(&self) -> &str {
        self.base.as_str().trim_end_matches('/')
    }

    /// The URL of `segments` below the base (each percent-encoded), with its query pairs.
    pub fn url(&self, segments: &[&str], query: &[(&str, String)]) -> anyhow::Result<reqwest::Url> {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .map_err(|()| anyhow!("--hub {} cannot be a base URL", self.base()))?
            .pop_if_empty()
            .extend(segments);
        if !query.is_empty() {
            let mut pairs = url.query_pairs_mut();
            for (key, value) in query {
                pairs.append_pair(key, value);
            }
        }
        Ok(url)
    }

    fn request(&self, method: Method, url: reqwest::Url) -> reqwest::RequestBuilder {
        let builder = self.http.request(method, url);
        match &self.token {
            Some(token) => builder.bearer_auth(token),
            None => builder,
        }
    }

    /// Sends a request and maps transport errors to a sentence naming the hub.
    pub async fn send(
        &self,
        builder: reqwest::RequestBuilder,
        what: &str,
    ) -> anyhow::Result<reqwest::Response> {
        builder.send().await.map_err(|error| {
            let cause = root_cause(&error);
            if error.is_connect() {
                anyhow!(
                    "cannot reach the hub at {} ({what}): {cause}. Is `wagate serve` running there? (--hub, WAGATE_HUB)",
                    self.base()
                )
            } else if error.is_timeout() {
                anyhow!("the hub at {} did not answer in time ({what})", self.base())
            } else {
                anyhow!("request to the hub at {} failed ({what}): {cause}", self.base())
            }
        })
    }

    /// Fails with a clear sentence on 401/403 and on any status that is neither 2xx nor 422.
    pub async fn check(&self, response: reqwest::Response, what: &str) -> anyhow::Result<Answer> {
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .with_context(|| format!("reading the hub's answer to {what}"))?;
        let body: Value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        if status.is_success() {
            return Ok(Answer::Ok(body));
        }
        if status == StatusCode::UNPROCESSABLE_ENTITY {
            if let Some(refused) = refusal(&body) {
                return Ok(Answer::Refused(refused));
            }
        }
        Err(self.status_error(status, &body, what))
    }

    /// The error for a non-2xx answer.
    pub fn status_error(&self, status: StatusCode, body: &Value, what: &str) -> anyhow::Error {
        let detail = error_sentence(body);
        match status {
            StatusCode::UNAUTHORIZED => anyhow!(
                "the hub at {} refused the API token (401) for {what}: {}. Set WAGATE_API_TOKEN or pass --token (`wagate serve` prints the token at start)",
                self.base(),
                if self.token.is_some() { "the token is wrong" } else { "no token was given" }
            ),
            StatusCode::FORBIDDEN => match body["error"]["required_role"].as_str() {
                Some(role) => anyhow!(
                    "the hub at {} forbids {what} to this token's role (403 forbidden): it needs \
                     a {role} token{}",
                    self.base(),
                    detail.map(|d| format!(" ({d})")).unwrap_or_default()
                ),
                None => anyhow!(
                    "the hub at {} forbids {what} (403){}",
                    self.base(),
                    detail.map(|d| format!(": {d}")).unwrap_or_default()
                ),
            },
            StatusCode::NOT_FOUND => anyhow!(
                "not found (404) at {}: {}",
                self.base(),
                detail.unwrap_or_else(|| format!("{what}: no such resource (is this a wagate hub?)"))
            ),
            StatusCode::BAD_REQUEST => anyhow!(
                "the hub rejected {what} as invalid (400): {}",
                detail.unwrap_or_else(|| "no reason given".into())
            ),
            _ => anyhow!(
                "the hub at {} answered {status} to {what}{}",
                self.base(),
                detail.map(|d| format!(": {d}")).unwrap_or_default()
            ),
        }
    }

    pub async fn get(&self, segments: &[&str], what: &str) -> anyhow::Result<Answer> {
        let url = self.url(segments, &[])?;
        let response = self.send(self.request(Method::GET, url), what).await?;
        self.check(response, what).await
    }

    /// A GET with a query string.
    pub async fn get_query(
        &self,
        segments: &[&str],
        query: &[(&str, String)],
        what: &str,
    ) -> anyhow::Result<Answer> {
        let url = self.url(segments, query)?;
        let response = self.send(self.request(Method::GET, url), what).await?;
        self.check(response, what).await
    }

    pub async fn post<B: Serialize + ?Sized>(
        &self,
        segments: &[&str],
        query: &[(&str, String)],
        headers: &[(&str, String)],
        body: &B,
        what: &str,
    ) -> anyhow::Result<Answer> {
        let url = self.url(segments, query)?;
        let mut builder = self.request(Method::POST, url).json(body);
        for (name, value) in headers {
            builder = builder.header(*name, value);
        }
        let response = self.send(builder, what).await?;
        self.check(response, what).await
    }

    /// A POST of raw bytes with their content type (a CSV upload).
    pub async fn post_bytes(
        &self,
        segments: &[&str],
        query: &[(&str, String)],
        content_type: &str,
        body: Vec<u8>,
        what: &str,
    ) -> anyhow::Result<Answer> {
        let url = self.url(segments, query)?;
        let builder = self
            .request(Method::POST, url)
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .body(body);
        let response = self.send(builder, what).await?;
        self.check(response, what).await
    }

    pub async fn delete(&self, segments: &[&str], what: &str) -> anyhow::Result<Answer> {
        let url = self.url(segments, &[])?;
        let response = self.send(self.request(Method::DELETE, url), what).await?;
        self.check(response, what).await
    }

    /// A streaming GET (the event feed): the response once its status is 2xx.
    pub async fn get_stream(
        &self,
        segments: &[&str],
        query: &[(&str, String)],
        what: &str,
    ) -> anyhow::Result<reqwest::Response> {
        let url = self.url(segments, query)?;
        let response = self.send(self.request(Method::GET, url), what).await?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let body = response
            .bytes()
            .await
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or(Value::Null);
        Err(self.status_error(status, &body, what))
    }
}

/// The hub's error shape ([`ErrorBody`]), when the body is one.
fn error_detail(body: &Value) -> Option<ErrorDetail> {
    ErrorBody::deserialize(body).ok().map(|body| body.error)
}

/// A refusal: an [`ErrorBody`] that names the rule.
fn refusal(body: &Value) -> Option<Refused> {
    let error = error_detail(body)?;
    Some(Refused {
        rule: error.rule?,
        message: error.message,
        also_broken: error.also_broken.unwrap_or_default(),
        body: body.clone(),
    })
}

/// The sentence of an error body: the hub's [`ErrorBody`] (`field: message`), or what a proxy
/// in front of it answered (`{"error": "…"}`, `{"message": "…"}`, or text).
fn error_sentence(body: &Value) -> Option<String> {
    if let Some(error) = error_detail(body) {
        return Some(match error.field {
            Some(field) => format!("{field}: {}", error.message),
            None => error.message,
        });
    }
    match body {
        Value::Null => None,
        Value::String(text) if text.trim().is_empty() => None,
        Value::String(text) => Some(text.trim().to_owned()),
        _ => {
            let error = body.get("error").unwrap_or(body);
            if let Some(text) = error.as_str() {
                return Some(text.to_owned());
            }
            match error.get("message").and_then(Value::as_str) {
                Some(message) => Some(message.to_owned()),
                None => Some(body.to_string()),
            }
        }
    }
}

fn root_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut cause: &(dyn std::error::Error + 'static) = error;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}
