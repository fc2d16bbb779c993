//! Twilio Messages API: `POST {base}/2010-04-01/Accounts/{AccountSid}/Messages.json`, Basic
//! auth, form body; 201 with the Message resource on success.

use std::time::Duration;

use serde::{Deserialize, Serialize, Serializer};
use wagate_domain::{
    MessageStatus, ProviderKind, ProviderMessageRef, RichReply, TwilioSid, TwilioSidKind,
};

use crate::http::{base_url, build_client, excerpt, exchange, instrumented_send};
use crate::send::{
    ConfigError, OutboundContent, OutboundRequest, Provider, SendAccepted, SendError, SendFuture,
    Sender,
};
use crate::Secret;

use super::webhook::CALLBACK_MESSAGE_ID_PARAM;

const PROVIDER: ProviderKind = ProviderKind::Twilio;

/// Twilio client settings.
#[derive(Debug, Clone)]
pub struct TwilioConfig {
    /// API base URL; `https://api.twilio.com` in production, a local fake in tests.
    pub api_base: String,
    /// The account (`AC…`): Basic-auth user and part of the path.
    pub account_sid: TwilioSid,
    /// The Auth Token: Basic-auth password.
    pub auth_token: Secret,
    /// The hub's public base URL; status callbacks go to `{public_url}/webhooks/twilio/status`.
    pub public_url: String,
    /// Per-request timeout (connect and whole request).
    pub timeout: Duration,
}

impl TwilioConfig {
    /// Production API base, 10 s timeout.
    pub fn new(account_sid: TwilioSid, auth_token: Secret, public_url: impl Into<String>) -> Self {
        Self {
            api_base: "https://api.twilio.com".to_owned(),
            account_sid,
            auth_token,
            public_url: public_url.into(),
            timeout: Duration::from_secs(10),
        }
    }
}

/// Sends WhatsApp messages through Twilio.
#[derive(Debug, Clone)]
pub struct TwilioClient {
    http: reqwest::Client,
    messages_url: String,
    status_callback: String,
    account_sid: TwilioSid,
    auth_token: Secret,
    timeout: Duration,
}

impl TwilioClient {
    /// Validates the configuration and builds the HTTP client.
    pub fn new(config: TwilioConfig) -> Result<Self, ConfigError> {
        if config.account_sid.kind() != TwilioSidKind::Account {
            return Err(ConfigError::Invalid {
                name: "account_sid",
                reason: "must be an account SID (AC…)",
            });
        }
        let api_base = base_url(&config.api_base, "api_base")?;
        let public_url = base_url(&config.public_url, "public_url")?;
        Ok(Self {
            http: build_client(config.timeout)?,
            messages_url: format!(
                "{api_base}/2010-04-01/Accounts/{}/Messages.json",
                config.account_sid
            ),
            status_callback: format!("{public_url}/webhooks/twilio/status"),
            account_sid: config.account_sid,
            auth_token: config.auth_token,
            timeout: config.timeout,
        })
    }

    /// The form body for `request`, in the field order Twilio's own examples use.
    pub fn form_body(&self, request: &OutboundRequest) -> Result<String, SendError> {
        let mut form = url::form_urlencoded::Serializer::new(String::new());
        form.append_pair("To", &format!("whatsapp:{}", request.to));
        match &request.from {
            Sender::Number(number) => {
                form.append_pair("From", &format!("whatsapp:{number}"));
            }
            Sender::TwilioMessagingService(sid)
                if sid.kind() == TwilioSidKind::MessagingService =>
            {
                form.append_pair("MessagingServiceSid", sid.as_str());
            }
            Sender::TwilioMessagingService(_) | Sender::MetaPhoneNumberId(_) => {
                return Err(invalid(
                    "the sender must be a number or a Messaging Service SID (MG…)",
                ))
            }
        }
        match &request.content {
            OutboundContent::Text { body } => {
                form.append_pair("Body", body);
            }
            // The caption is the message body; Twilio downloads the link itself.
            OutboundContent::Rich(RichReply::Media(media)) => {
                if !media.caption.is_empty() {
                    form.append_pair("Body", &media.caption);
                }
                form.append_pair("MediaUrl", media.url.as_str());
            }
            OutboundContent::Rich(RichReply::Buttons { .. }) => {
                return Err(invalid(
                    "Twilio sends quick-reply buttons only from a Content resource \
                     (twilio/quick-reply): create it as a template and send it by its ContentSid",
                ))
            }
            OutboundContent::Template(template) => {
                if !template.template.as_str().starts_with("HX") {
                    return Err(invalid(
                        "Twilio templates are named by their Content SID (HX…)",
                    ));
                }
                if !template.media.is_empty() {
                    return Err(invalid(
                        "Twilio takes a template's media from its Content definition: give the \
                         media URL as the variable the template defines, not as media",
                    ));
                }
                form.append_pair("ContentSid", template.template.as_str());
                if !template.variables.is_empty() {
                    let json = serde_json::to_string(&OrderedMap(&template.variables))
                        .map_err(|e| invalid(&format!("ContentVariables: {e}")))?;
                    form.append_pair("ContentVariables", &json);
                }
            }
        }
        let callback = url::form_urlencoded::Serializer::new(String::new())
            .append_pair(CALLBACK_MESSAGE_ID_PARAM, &request.message_id.to_string())
            .finish();
        form.append_pair(
            "StatusCallback",
            &format!("{}?{callback}", self.status_callback),
        );
        Ok(form.finish())
    }

    async fn send_inner(&self, request: &OutboundRequest) -> Result<SendAccepted, SendError> {
        let body = self.form_body(request)?;
        let request = self
            .http
            .post(&self.messages_url)
            .basic_auth(self.account_sid.as_str(), Some(self.auth_token.expose()))
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .header(reqwest::header::ACCEPT, "application/json")
            .body(body);
        let (http_status, body) = exchange(PROVIDER, self.timeout, request).await?;
        if (200..300).contains(&http_status) {
            parse_created(http_status, &body)
        } else {
            Err(parse_error(http_status, &body))
        }
    }
}

impl Provider for TwilioClient {
    fn kind(&self) -> ProviderKind {
        PROVIDER
    }

    fn send<'a>(&'a self, request: &'a OutboundRequest) -> SendFuture<'a> {
        instrumented_send(PROVIDER, request.message_id, self.send_inner(request))
    }
}

fn invalid(reason: &str) -> SendError {
    SendError::InvalidRequest {
        provider: PROVIDER,
        reason: reason.to_owned(),
    }
}

/// Serialises key/value pairs as a JSON object in the caller's order (serde_json's own map
/// would sort the keys).
struct OrderedMap<'a>(&'a [(String, String)]);

impl Serialize for OrderedMap<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.0.iter().map(|(k, v)| (k, v)))
    }
}

#[derive(Deserialize)]
struct Created {
    sid: Option<String>,
    status: Option<String>,
}

fn parse_created(http_status: u16, body: &[u8]) -> Result<SendAccepted, SendError> {
    let unexpected = |reason: String| SendError::UnexpectedResponse {
        provider: PROVIDER,
        http_status,
        reason,
    };
    let created: Created = serde_json::from_slice(body)
        .map_err(|e| unexpected(format!("not a Message resource: {e}")))?;
    let sid = created.sid.ok_or_else(|| unexpected("no sid".to_owned()))?;
    let sid = ProviderMessageRef::parse(&sid).map_err(|e| unexpected(e.to_string()))?;
    Ok(SendAccepted {
        provider_message_id: sid,
        status: created.status.as_deref().map(MessageStatus::parse),
        http_status,
        // Twilio's answer names no other identity of the recipient.
        recipient: None,
    })
}

/// Both error shapes twilio-python understands: the 2010 API's `{code, message, more_info,
/// status}` and RFC 9457 `{type, title, status, code, detail, instance}`.
#[derive(Deserialize)]
struct ErrorBody {
    code: Option<u32>,
    message: Option<String>,
    more_info: Option<String>,
    title: Option<String>,
    detail: Option<String>,
    #[serde(rename = "type")]
    problem_type: Option<String>,
}

fn parse_error(http_status: u16, body: &[u8]) -> SendError {
    match serde_json::from_slice::<ErrorBody>(body) {
        Ok(error) => SendError::Rejected {
            provider: PROVIDER,
            http_status,
            code: error.code,
            message: error
                .message
                .or(error.detail.clone())
                .or(error.title)
                .unwrap_or_default(),
            details: error.detail,
            reference: error.more_info.or(error.problem_type),
        },
        Err(_) => SendError::Rejected {
            provider: PROVIDER,
            http_status,
            code: None,
            message: excerpt(body),
            details: None,
            reference: None,
        },
    }
}
