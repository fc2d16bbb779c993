//! Meta Cloud API: `POST {base}/{version}/{phone_number_id}/messages` with a Bearer token and
//! a JSON body; 200 with the wamid on success, a Graph error object otherwise.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use wagate_domain::{
    ContactId, MediaKind, MessageStatus, PhoneNumber, ProviderKind, ProviderMessageRef, RichReply,
    TemplateMedia, Wamid,
};

use crate::http::{base_url, build_client, excerpt, exchange, instrumented_send};
use crate::send::{
    ConfigError, OutboundContent, OutboundRequest, Provider, SendAccepted, SendError, SendFuture,
    Sender, TemplateContent,
};
use crate::Secret;

const PROVIDER: ProviderKind = ProviderKind::Meta;

/// Meta client settings.
#[derive(Debug, Clone)]
pub struct MetaConfig {
    /// Graph API base URL; `https://graph.facebook.com` in production, a local fake in tests.
    pub api_base: String,
    /// Graph API version path segment.
    pub api_version: String,
    /// System-user or business access token (Bearer).
    pub access_token: Secret,
    /// Sender number → phone-number id, for requests that name the sender by number.
    pub phone_number_ids: BTreeMap<PhoneNumber, String>,
    /// Per-request timeout (connect and whole request).
    pub timeout: Duration,
}

impl MetaConfig {
    /// Production base URL, `v21.0`, 10 s timeout, no number mapping.
    pub fn new(access_token: Secret) -> Self {
        Self {
            api_base: "https://graph.facebook.com".to_owned(),
            api_version: "v21.0".to_owned(),
            access_token,
            phone_number_ids: BTreeMap::new(),
            timeout: Duration::from_secs(10),
        }
    }
}

/// Sends WhatsApp messages through the Cloud API.
#[derive(Debug, Clone)]
pub struct MetaClient {
    http: reqwest::Client,
    api_root: String,
    access_token: Secret,
    phone_number_ids: BTreeMap<PhoneNumber, String>,
    timeout: Duration,
}

impl MetaClient {
    /// Validates the configuration and builds the HTTP client.
    pub fn new(config: MetaConfig) -> Result<Self, ConfigError> {
        let api_base = base_url(&config.api_base, "api_base")?;
        let version = config.api_version.trim_matches('/');
        if version.is_empty() || version.contains(['/', '?', '#']) {
            return Err(ConfigError::Invalid {
                name: "api_version",
                reason: "must be one path segment such as v21.0",
            });
        }
        Ok(Self {
            http: build_client(config.timeout)?,
            api_root: format!("{api_base}/{version}"),
            access_token: config.access_token,
            phone_number_ids: config.phone_number_ids,
            timeout: config.timeout,
        })
    }

    fn phone_number_id<'a>(&'a self, sender: &'a Sender) -> Result<&'a str, SendError> {
        let id = match sender {
            Sender::MetaPhoneNumberId(id) => id.as_str(),
            Sender::Number(number) => self
                .phone_number_ids
                .get(number)
                .map(String::as_str)
                .ok_or_else(|| invalid(&format!("no phone-number id configured for {number}")))?,
            Sender::TwilioMessagingService(_) => {
                return Err(invalid(
                    "a Twilio Messaging Service cannot send through Meta",
                ))
            }
        };
        // It becomes a path segment: digits only, as Meta issues them.
        if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid("a phone-number id consists of digits"));
        }
        Ok(id)
    }

    /// The JSON body for `request`.
    pub fn json_body(&self, request: &OutboundRequest) -> Result<String, SendError> {
        let to = request.to.as_str();
        let callback = request.message_id.to_string();
        let body = match &request.content {
            OutboundContent::Text { body } => MessageBody {
                messaging_product: "whatsapp",
                recipient_type: "individual",
                to,
                kind: "text",
                text: Some(TextBody {
                    preview_url: false,
                    body,
                }),
                ..MessageBody::new(to, "text", &callback)
            },
            OutboundContent::Rich(RichReply::Media(media)) => {
                let link = MediaBody {
                    link: media.url.as_str(),
                    caption: Some(media.caption.as_str()).filter(|c| !c.is_empty()),
                };
                let mut body = MessageBody::new(to, media.kind.as_str(), &callback);
                match media.kind {
                    MediaKind::Image => body.image = Some(link),
                    MediaKind::Video => body.video = Some(link),
                    MediaKind::Document => body.document = Some(link),
                }
                body
            }
            OutboundContent::Rich(RichReply::Buttons { body, buttons }) => MessageBody {
                interactive: Some(Interactive {
                    kind: "button",
                    body: InteractiveText { text: body },
                    action: InteractiveAction {
                        buttons: buttons
                            .iter()
                            .map(|button| InteractiveButton {
                                kind: "reply",
                                reply: InteractiveReply {
                                    id: &button.id,
                                    title: &button.title,
                                },
                            })
                            .collect(),
                    },
                }),
                ..MessageBody::new(to, "interactive", &callback)
            },
            OutboundContent::Template(template) => MessageBody {
                messaging_product: "whatsapp",
                recipient_type: "individual",
                to,
                template: Some(template_body(template)?),
                ..MessageBody::new(to, "template", &callback)
            },
        };
        serde_json::to_string(&body).map_err(|e| invalid(&format!("JSON body: {e}")))
    }

    async fn send_inner(&self, request: &OutboundRequest) -> Result<SendAccepted, SendError> {
        let url = format!(
            "{}/{}/messages",
            self.api_root,
            self.phone_number_id(&request.from)?
        );
        let body = self.json_body(request)?;
        let request = self
            .http
            .post(url)
            .bearer_auth(self.access_token.expose())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body);
        let (http_status, body) = exchange(PROVIDER, self.timeout, request).await?;
        if (200..300).contains(&http_status) {
            parse_accepted(http_status, &body)
        } else {
            Err(parse_error(http_status, &body))
        }
    }
}

impl Provider for MetaClient {
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

#[derive(Serialize)]
struct MessageBody<'a> {
    messaging_product: &'static str,
    recipient_type: &'static str,
    to: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    text: Option<TextBody<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    template: Option<TemplateBody<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    image: Option<MediaBody<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    video: Option<MediaBody<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    document: Option<MediaBody<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    interactive: Option<Interactive<'a>>,
    biz_opaque_callback_data: &'a str,
}

impl<'a> MessageBody<'a> {
    /// The envelope every message shares; the caller fills the one member `kind` names.
    fn new(to: &'a str, kind: &'static str, callback: &'a str) -> Self {
        Self {
            messaging_product: "whatsapp",
            recipient_type: "individual",
            to,
            kind,
            text: None,
            template: None,
            image: None,
            video: None,
            document: None,
            interactive: None,
            biz_opaque_callback_data: callback,
        }
    }
}

/// `image` / `video` / `document` by link (Meta downloads it), with an optional caption.
#[derive(Serialize)]
struct MediaBody<'a> {
    link: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    caption: Option<&'a str>,
}

/// `interactive` of type `button`: a body and up to three reply buttons.
#[derive(Serialize)]
struct Interactive<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    body: InteractiveText<'a>,
    action: InteractiveAction<'a>,
}

#[derive(Serialize)]
struct InteractiveText<'a> {
    text: &'a str,
}

#[derive(Serialize)]
struct InteractiveAction<'a> {
    buttons: Vec<InteractiveButton<'a>>,
}

#[derive(Serialize)]
struct InteractiveButton<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    reply: InteractiveReply<'a>,
}

#[derive(Serialize)]
struct InteractiveReply<'a> {
    id: &'a str,
    title: &'a str,
}

#[derive(Serialize)]
struct TextBody<'a> {
    preview_url: bool,
    body: &'a str,
}

#[derive(Serialize)]
struct TemplateBody<'a> {
    name: &'a str,
    language: Language<'a>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    components: Vec<Component<'a>>,
}

#[derive(Serialize)]
struct Language<'a> {
    code: &'a str,
}

#[derive(Serialize)]
#[serde(untagged)]
enum Component<'a> {
    Body {
        #[serde(rename = "type")]
        kind: &'static str,
        parameters: Vec<TextParameter<'a>>,
    },
    Button {
        #[serde(rename = "type")]
        kind: &'static str,
        sub_type: &'static str,
        index: String,
        parameters: [PayloadParameter<'a>; 1],
    },
    /// `header` with one media parameter (also a carousel card's component).
    Header {
        #[serde(rename = "type")]
        kind: &'static str,
        parameters: [MediaParameter<'a>; 1],
    },
    Carousel {
        #[serde(rename = "type")]
        kind: &'static str,
        cards: Vec<Card<'a>>,
    },
}

/// `{"type": "image", "image": {"link": …}}` (or video, document).
#[derive(Serialize)]
struct MediaParameter<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    image: Option<Link<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    video: Option<Link<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    document: Option<Link<'a>>,
}

#[derive(Serialize)]
struct Link<'a> {
    link: &'a str,
}

/// One carousel card: its index and its components (here its media header).
#[derive(Serialize)]
struct Card<'a> {
    card_index: u8,
    components: Vec<Component<'a>>,
}

fn header(media: &TemplateMedia) -> Component<'_> {
    let link = Some(Link {
        link: media.url.as_str(),
    });
    let mut parameter = MediaParameter {
        kind: media.kind.as_str(),
        image: None,
        video: None,
        document: None,
    };
    match media.kind {
        MediaKind::Image => parameter.image = link,
        MediaKind::Video => parameter.video = link,
        MediaKind::Document => parameter.document = link,
    }
    Component::Header {
        kind: "header",
        parameters: [parameter],
    }
}

#[derive(Serialize)]
struct TextParameter<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    parameter_name: Option<&'a str>,
    text: &'a str,
}

#[derive(Serialize)]
struct PayloadParameter<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    payload: &'a str,
}

fn template_body(template: &TemplateContent) -> Result<TemplateBody<'_>, SendError> {
    // A template wagate created or imported is `name@language`: Meta is sent both parts.
    let language = template
        .template
        .meta_language()
        .or(template.language.as_deref())
        .filter(|l| !l.is_empty())
        .ok_or_else(|| invalid("Meta templates need a language code (e.g. en_US)"))?;
    // Positional parameters are matched by position, so order numeric keys numerically
    // ("10" after "9"); named ones keep the caller's order after them.
    let mut variables: Vec<(Option<u64>, &(String, String))> = template
        .variables
        .iter()
        .map(|pair| (pair.0.parse::<u64>().ok(), pair))
        .collect();
    variables.sort_by_key(|(position, _)| position.unwrap_or(u64::MAX));
    let parameters: Vec<TextParameter<'_>> = variables
        .into_iter()
        .map(|(position, (key, value))| TextParameter {
            kind: "text",
            parameter_name: position.is_none().then_some(key.as_str()),
            text: value,
        })
        .collect();
    let mut components = Vec::new();
    // Meta's order: header, body, buttons, then the carousel's cards.
    components.extend(
        template
            .media
            .iter()
            .filter(|media| media.card.is_none())
            .map(header),
    );
    if !parameters.is_empty() {
        components.push(Component::Body {
            kind: "body",
            parameters,
        });
    }
    for (index, payload) in template.button_payloads.iter().enumerate() {
        components.push(Component::Button {
            kind: "button",
            sub_type: "quick_reply",
            index: index.to_string(),
            parameters: [PayloadParameter {
                kind: "payload",
                payload,
            }],
        });
    }
    let cards: Vec<Card<'_>> = template
        .media
        .iter()
        .filter_map(|media| {
            media.card.map(|card_index| Card {
                card_index,
                components: vec![header(media)],
            })
        })
        .collect();
    if !cards.is_empty() {
        components.push(Component::Carousel {
            kind: "carousel",
            cards,
        });
    }
    Ok(TemplateBody {
        name: template.template.meta_name(),
        language: Language { code: language },
        components,
    })
}

#[derive(Deserialize)]
struct Accepted {
    #[serde(default)]
    contacts: Vec<AcceptedContact>,
    #[serde(default)]
    messages: Vec<AcceptedMessage>,
}

/// `contacts[]` of a send response: `input` is the number as sent, `wa_id` the WhatsApp id
/// Meta delivered to (it can differ: Brazil's ninth digit, Mexico's `521`).
#[derive(Deserialize)]
struct AcceptedContact {
    wa_id: Option<String>,
}

#[derive(Deserialize)]
struct AcceptedMessage {
    id: String,
    message_status: Option<String>,
}

fn parse_accepted(http_status: u16, body: &[u8]) -> Result<SendAccepted, SendError> {
    let unexpected = |reason: String| SendError::UnexpectedResponse {
        provider: PROVIDER,
        http_status,
        reason,
    };
    let accepted: Accepted = serde_json::from_slice(body)
        .map_err(|e| unexpected(format!("not a send response: {e}")))?;
    let message = accepted
        .messages
        .into_iter()
        .next()
        .ok_or_else(|| unexpected("no messages[0].id".to_owned()))?;
    let wamid = Wamid::parse(&message.id).map_err(|e| unexpected(e.to_string()))?;
    // The message was accepted: a `wa_id` that is not a number is reported, not fatal (the
    // send happened and must be recorded as such).
    let recipient = match accepted.contacts.first().and_then(|c| c.wa_id.as_deref()) {
        Some(wa_id) if !wa_id.is_empty() => match PhoneNumber::parse(&format!("+{wa_id}")) {
            Ok(number) => Some(ContactId::Phone(number)),
            Err(error) => {
                tracing::warn!(%error, "Meta's send response names a wa_id that is not a number");
                None
            }
        },
        _ => None,
    };
    Ok(SendAccepted {
        provider_message_id: ProviderMessageRef::Meta(wamid),
        status: message.message_status.as_deref().map(MessageStatus::parse),
        http_status,
        recipient,
    })
}

#[derive(Deserialize)]
struct GraphErrorBody {
    error: GraphError,
}

#[derive(Deserialize)]
struct GraphError {
    message: Option<String>,
    code: Option<u32>,
    error_data: Option<GraphErrorData>,
    fbtrace_id: Option<String>,
}

#[derive(Deserialize)]
struct GraphErrorData {
    details: Option<String>,
}

fn parse_error(http_status: u16, body: &[u8]) -> SendError {
    match serde_json::from_slice::<GraphErrorBody>(body) {
        Ok(GraphErrorBody { error }) => SendError::Rejected {
            provider: PROVIDER,
            http_status,
            code: error.code,
            message: error.message.unwrap_or_default(),
            details: error.error_data.and_then(|d| d.details),
            reference: error.fbtrace_id,
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
