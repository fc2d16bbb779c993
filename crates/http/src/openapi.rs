//! The OpenAPI document of the hub's HTTP API, generated: the schemas come from the wire types in
//! [`wagate_api`] (`ToSchema`), the paths from the route table ([`ROUTES`]) and the operations
//! below. docs/openapi.yaml is [`yaml`]'s output; a test fails when the file is stale
//! (`WAGATE_WRITE_OPENAPI=1 cargo test -p wagate-http openapi` rewrites it), and the handler
//! tests fail when a handler answers a status its operation does not list.

use std::collections::BTreeMap;

use axum::http::Method;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::{
    HttpMethod, Operation, OperationBuilder, Parameter, ParameterBuilder, ParameterIn, Paths,
};
use utoipa::openapi::request_body::{RequestBody, RequestBodyBuilder};
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::schema::{
    AdditionalProperties, ArrayBuilder, ComponentsBuilder, KnownFormat, ObjectBuilder, Schema,
    SchemaFormat, Type,
};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::server::ServerBuilder;
use utoipa::openapi::tag::TagBuilder;
use utoipa::openapi::{
    Content, ContentBuilder, InfoBuilder, OpenApi, OpenApiBuilder, Ref, RefOr, Required,
};
use utoipa::ToSchema;
use wagate_api as api;

use crate::routes::{Access, ROUTES};

/// The bearer scheme's name in the document.
const BEARER: &str = "bearer";

const TAGS: &[(&str, &str)] = &[
    (
        "webhooks",
        "Provider webhooks, each checked by its provider's signature.",
    ),
    ("contacts", "Consent and the 24 h window."),
    ("messages", "Sends and their state."),
    ("templates", "Message templates and their approval."),
    (
        "senders",
        "Business numbers and portfolio messaging limits.",
    ),
    (
        "dispatch",
        "For a dispatcher running as its own process (`wagate dispatch --hub URL`).",
    ),
    ("feed", "The log as NDJSON."),
    ("review", "The review queue: what needs a person."),
    (
        "webhook-endpoints",
        "Outgoing event webhooks: signed deliveries of the log's events to registered endpoints (docs/webhooks.md).",
    ),
    (
        "costs",
        "What delivered messages cost, by the configured price table (docs/costs.md).",
    ),
    (
        "crm",
        "The HubSpot timeline mirror run by `wagate serve` (docs/operations.md).",
    ),
    (
        "campaigns",
        "One template to a list, each row an ordinary send through every gate (docs/campaigns.md).",
    ),
    ("ops", "Health and metrics."),
];

/// A non-2xx answer an operation can give: every one has the [`api::ErrorBody`] shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    Invalid,
    Unauthorized,
    Forbidden,
    NotFound,
    NotClaimable,
    IdempotencyKeyReused,
    Conflict,
    Timeout,
    TooLarge,
    Refused,
    ProviderError,
    Unavailable,
    Internal,
}

impl Failure {
    const ALL: [Failure; 13] = [
        Self::Invalid,
        Self::Unauthorized,
        Self::Forbidden,
        Self::NotFound,
        Self::NotClaimable,
        Self::IdempotencyKeyReused,
        Self::Conflict,
        Self::Timeout,
        Self::TooLarge,
        Self::Refused,
        Self::ProviderError,
        Self::Unavailable,
        Self::Internal,
    ];

    fn status(self) -> &'static str {
        match self {
            Self::Invalid => "400",
            Self::Unauthorized => "401",
            Self::Forbidden => "403",
            Self::NotFound => "404",
            Self::NotClaimable | Self::IdempotencyKeyReused | Self::Conflict => "409",
            Self::ProviderError => "502",
            Self::Timeout => "408",
            Self::TooLarge => "413",
            Self::Refused => "422",
            Self::Unavailable => "503",
            Self::Internal => "500",
        }
    }

    /// The response's name among the document's components.
    fn name(self) -> &'static str {
        match self {
            Self::Invalid => "Invalid",
            Self::Unauthorized => "Unauthorized",
            Self::Forbidden => "Forbidden",
            Self::NotFound => "NotFound",
            Self::NotClaimable => "NotClaimable",
            Self::IdempotencyKeyReused => "IdempotencyKeyReused",
            Self::Conflict => "Conflict",
            Self::ProviderError => "ProviderError",
            Self::Timeout => "Timeout",
            Self::TooLarge => "TooLarge",
            Self::Refused => "Refused",
            Self::Unavailable => "Unavailable",
            Self::Internal => "Internal",
        }
    }

    fn description(self) -> &'static str {
        match self {
            Self::Invalid => "Bad input; `error.field` names the field (`body` when the JSON itself is broken).",
            Self::Unauthorized => "Missing or unknown bearer token (`WWW-Authenticate: Bearer`).",
            Self::Forbidden => "On the command API: a known token whose role may not use the route; `error.required_role` names the least privileged role that may, and nothing was recorded. On a webhook: a missing or wrong signature, or the provider is not configured (recorded in the webhook rejection log).",
            Self::NotFound => "Unknown id.",
            Self::NotClaimable => "Nothing to claim or record now; on claim, `error.phase` says where the message stands.",
            Self::IdempotencyKeyReused => "The `Idempotency-Key` was already used (within 24 h) with a different request: another body, recipient, sender or `dry_run` (`error.code` `idempotency_key_reused`, `error.field` `Idempotency-Key`). Nothing was recorded; a new request needs a new key.",
            Self::Conflict => "The request contradicts what is recorded (`error.code` `conflict`): a review item already resolved, an operator approving a template the provider reports rejected, paused or disabled, or creating a template that exists, a CRM backfill while one runs or on a hub with no CRM mirror. Nothing was recorded.",
            Self::ProviderError => "The provider's API refused or failed the call this request needed (`error.code` `provider_error`, the provider's message in `error.message`); nothing was recorded.",
            Self::Timeout => "The request (its body included) was not complete within the hub's request timeout (WAGATE_REQUEST_TIMEOUT_SECONDS, default 30); it may or may not have been recorded, so retry it (webhooks are de-duplicated; a send retried with the same `Idempotency-Key` is not sent twice).",
            Self::TooLarge => "Body over the limit (webhooks: 1 MiB).",
            Self::Refused => "A compliance rule forbids it; `error.rule` names the rule, `error.also_broken` the others.",
            Self::Unavailable => "The log cannot be written now; retry after `Retry-After` seconds.",
            Self::Internal => "The hub failed (an unreadable event in the log); nothing was recorded by this request.",
        }
    }
}

/// Failures of every route that reads or writes the log.
const HUB: [Failure; 2] = [Failure::Unavailable, Failure::Internal];

/// The schemas the operations refer to, collected while they are built.
#[derive(Default)]
struct Schemas(BTreeMap<String, RefOr<Schema>>);

impl Schemas {
    /// A reference to `T`'s schema, which (with the schemas it refers to) joins the document.
    fn of<T: ToSchema>(&mut self) -> RefOr<Schema> {
        let mut referred = Vec::new();
        T::schemas(&mut referred);
        self.0.extend(referred);
        self.0.insert(T::name().into_owned(), T::schema());
        Ref::from_schema_name(T::name()).into()
    }

    fn json<T: ToSchema>(&mut self) -> Content {
        ContentBuilder::new().schema(Some(self.of::<T>())).build()
    }

    fn json_list<T: ToSchema>(&mut self) -> Content {
        let list = ArrayBuilder::new().items(self.of::<T>());
        ContentBuilder::new().schema(Some(list)).build()
    }
}

fn string() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(Type::String)
}

fn text(media_type: &str, description: &str) -> Response {
    ResponseBuilder::new()
        .description(description)
        .content(
            media_type,
            ContentBuilder::new().schema(Some(string())).build(),
        )
        .build()
}

/// The header a replayed send answer carries (`crate::error::IDEMPOTENT_REPLAYED`), spelled as
/// documented.
const IDEMPOTENT_REPLAYED_HEADER: &str = "Idempotent-Replayed";

fn idempotent_replayed() -> utoipa::openapi::header::Header {
    HeaderBuilder::new()
        .schema(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .enum_values(Some(["true"])),
        )
        .description(Some(
            "`true` when this is the stored answer of an earlier identical request with the same \
             `Idempotency-Key` (POST /v1/messages): nothing was recorded now. Absent otherwise.",
        ))
        .build()
}

fn json(description: &str, content: Content) -> Response {
    ResponseBuilder::new()
        .description(description)
        .content("application/json", content)
        .build()
}

fn body(required: bool, media_type: &str, content: Content) -> Option<RequestBody> {
    let required = if required {
        Required::True
    } else {
        Required::False
    };
    Some(
        RequestBodyBuilder::new()
            .required(Some(required))
            .content(media_type, content)
            .build(),
    )
}

fn parameter(
    name: &str,
    place: ParameterIn,
    required: bool,
    description: &str,
    schema: ObjectBuilder,
) -> Parameter {
    ParameterBuilder::new()
        .name(name)
        .parameter_in(place)
        .required(if required {
            Required::True
        } else {
            Required::False
        })
        .description(Some(description))
        .schema(Some(schema))
        .build()
}

fn campaign_parameter() -> Parameter {
    parameter(
        "id",
        ParameterIn::Path,
        true,
        "The campaign's id (UUID v7).",
        string(),
    )
}

/// A campaign's run command: the campaign as it is after it.
fn campaign_command(schemas: &mut Schemas, id: &'static str, summary: &'static str) -> Spec {
    Spec::new(id, "campaigns", summary)
        .parameters([campaign_parameter()])
        .answers(
            "200",
            json(
                "The campaign now (nothing appended when it already was so).",
                schemas.json::<api::CampaignView>(),
            ),
        )
        .fails([Failure::Invalid, Failure::NotFound, Failure::Conflict])
        .fails(HUB)
}

fn consent_parameter(name: &str, description: &str) -> Parameter {
    parameter(name, ParameterIn::Path, true, description, string())
}

fn contact() -> Parameter {
    parameter(
        "contact",
        ParameterIn::Path,
        true,
        "E.164 number (`+41790000001`), or `bsuid:<id>`.",
        string(),
    )
}

fn message_id() -> Parameter {
    parameter(
        "message_id",
        ParameterIn::Path,
        true,
        "The message id (UUID v7).",
        string().format(Some(SchemaFormat::Custom("uuid".into()))),
    )
}

fn address() -> Parameter {
    parameter(
        "address",
        ParameterIn::Path,
        true,
        "The sender, `whatsapp:+E164`.",
        string(),
    )
}

fn twilio_signature() -> Parameter {
    parameter(
        "X-Twilio-Signature",
        ParameterIn::Header,
        true,
        "Twilio's signature of the public URL and the form fields.",
        string(),
    )
}

fn form() -> Content {
    let fields = ObjectBuilder::new()
        .schema_type(Type::Object)
        .additional_properties(Some(AdditionalProperties::RefOr(string().into())));
    ContentBuilder::new().schema(Some(fields)).build()
}

fn flag() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::Boolean)
        .default(Some(false.into()))
}

fn count() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::Integer)
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
        .minimum(Some(0))
}

/// One operation: its identity, what it takes, its success and its failures.
struct Spec {
    id: &'static str,
    tag: &'static str,
    summary: &'static str,
    parameters: Vec<Parameter>,
    body: Option<RequestBody>,
    success: (&'static str, Response),
    /// Further successes of one operation (201 created, 200 already there).
    also: Vec<(&'static str, Response)>,
    failures: Vec<Failure>,
}

impl Spec {
    fn new(id: &'static str, tag: &'static str, summary: &'static str) -> Self {
        Self {
            id,
            tag,
            summary,
            parameters: Vec::new(),
            body: None,
            success: ("200", ResponseBuilder::new().description("OK").build()),
            also: Vec::new(),
            failures: Vec::new(),
        }
    }

    fn parameters(mut self, parameters: impl IntoIterator<Item = Parameter>) -> Self {
        self.parameters.extend(parameters);
        self
    }

    fn body(mut self, body: Option<RequestBody>) -> Self {
        self.body = body;
        self
    }

    fn answers(mut self, status: &'static str, response: Response) -> Self {
        self.success = (status, response);
        self
    }

    fn also_answers(mut self, status: &'static str, response: Response) -> Self {
        self.also.push((status, response));
        self
    }

    fn fails(mut self, failures: impl IntoIterator<Item = Failure>) -> Self {
        self.failures.extend(failures);
        self
    }

    fn build(mut self, access: Access) -> Operation {
        let mut operation = OperationBuilder::new()
            .operation_id(Some(self.id))
            .tag(self.tag)
            .summary(Some(self.summary))
            .parameters(Some(self.parameters))
            .request_body(self.body)
            .response(self.success.0, self.success.1);
        for (status, response) in std::mem::take(&mut self.also) {
            operation = operation.response(status, response);
        }
        match access {
            // An open route overrides the document's bearer requirement with none.
            Access::Open => {
                operation = operation.securities(Some(Vec::<SecurityRequirement>::new()));
            }
            Access::Roles(roles) => {
                let names: Vec<&str> = roles.iter().map(|role| role.as_str()).collect();
                operation = operation.description(Some(format!(
                    "Roles: {} (a token of another role is 403 `forbidden`, `error.required_role` \
                     naming `{}`).",
                    names.join(", "),
                    access.required_role().map_or("", |role| role.as_str()),
                )));
                self.failures
                    .extend([Failure::Unauthorized, Failure::Forbidden]);
            }
        }
        // Every request runs under the request timeout.
        self.failures.push(Failure::Timeout);
        self.failures.sort_by_key(|failure| failure.status());
        self.failures.dedup();
        for failure in self.failures {
            operation =
                operation.response(failure.status(), Ref::from_response_name(failure.name()));
        }
        operation.build()
    }
}

/// The operation of one route (`None` for a route this table does not know: a unit test checks
/// there is none).
fn spec(method: &Method, path: &str, schemas: &mut Schemas) -> Option<Spec> {
    use Failure::*;
    let recorded = |schemas: &mut Schemas| {
        json(
            "Appended (`positions` empty when nothing changed).",
            schemas.json::<api::Recorded>(),
        )
    };
    let dispatch_recorded = |schemas: &mut Schemas| {
        json(
            "What was appended, and the phase now.",
            schemas.json::<api::DispatchRecorded>(),
        )
    };
    let spec = match (method.as_str(), path) {
        ("POST", "/webhooks/twilio/inbound") => Spec::new(
            "twilio_inbound",
            "webhooks",
            "Twilio inbound message (signed with X-Twilio-Signature)",
        )
        .parameters([twilio_signature()])
        .body(body(true, "application/x-www-form-urlencoded", form()))
        .answers(
            "200",
            text(
                "text/xml",
                "Recorded (or a duplicate); an empty TwiML answer.",
            ),
        )
        .fails([Invalid, Forbidden, TooLarge])
        .fails(HUB),
        ("POST", "/webhooks/twilio/status") => Spec::new(
            "twilio_status",
            "webhooks",
            "Twilio status callback (signed; `?message_id=` names the wagate message)",
        )
        .parameters([
            twilio_signature(),
            parameter(
                "message_id",
                ParameterIn::Query,
                false,
                "The wagate message the callback is for (part of the signed URL).",
                string().format(Some(SchemaFormat::Custom("uuid".into()))),
            ),
        ])
        .body(body(true, "application/x-www-form-urlencoded", form()))
        .answers(
            "204",
            ResponseBuilder::new()
                .description("Recorded (or a duplicate).")
                .build(),
        )
        .fails([Invalid, Forbidden, TooLarge])
        .fails(HUB),
        ("GET", "/webhooks/meta") => {
            Spec::new("meta_verify", "webhooks", "Meta subscription handshake")
                .parameters([
                    parameter(
                        "hub.mode",
                        ParameterIn::Query,
                        true,
                        "Always `subscribe`.",
                        string().enum_values(Some(["subscribe"])),
                    ),
                    parameter(
                        "hub.verify_token",
                        ParameterIn::Query,
                        true,
                        "WAGATE_META_VERIFY_TOKEN.",
                        string(),
                    ),
                    parameter(
                        "hub.challenge",
                        ParameterIn::Query,
                        true,
                        "Echoed on success.",
                        string(),
                    ),
                ])
                .answers("200", text("text/plain", "The challenge, echoed."))
                .fails([Invalid, Forbidden, TooLarge])
        }
        ("POST", "/webhooks/meta") => Spec::new(
            "meta_events",
            "webhooks",
            "Meta Cloud API webhook (signed with X-Hub-Signature-256)",
        )
        .parameters([parameter(
            "X-Hub-Signature-256",
            ParameterIn::Header,
            true,
            "`sha256=` and the HMAC of the body with the app secret.",
            string(),
        )])
        .body(body(
            true,
            "application/json",
            ContentBuilder::new()
                .schema(Some(ObjectBuilder::new().schema_type(Type::Object)))
                .build(),
        ))
        .answers(
            "200",
            json(
                "The batch was taken (items that could not be used are in the rejection log).",
                schemas.json::<api::MetaWebhookSummary>(),
            ),
        )
        .fails([Invalid, Forbidden, TooLarge])
        .fails(HUB),
        ("GET", "/healthz") => Spec::new("healthz", "ops", "Liveness and the durable log head")
            .answers("200", json("OK", schemas.json::<api::Health>())),
        ("GET", "/readyz") => Spec::new(
            "readyz",
            "ops",
            "Readiness: whether the hub can make writes durable",
        )
        .answers("200", json("Ready", schemas.json::<api::Readiness>()))
        .answers(
            "503",
            json(
                "Not ready: the store failed or the server is draining (see reason)",
                schemas.json::<api::Readiness>(),
            ),
        ),
        ("GET", "/metrics") => {
            Spec::new("metrics", "ops", "Prometheus metrics (text format 0.0.4)")
                .answers("200", text("text/plain", "OK"))
        }
        ("GET", "/v1/contacts/{contact}") => Spec::new(
            "get_contact",
            "contacts",
            "Consent, window, flags and recent messages of a contact",
        )
        .parameters([contact()])
        .answers("200", json("OK", schemas.json::<api::ContactResponse>()))
        .fails([Invalid])
        .fails(HUB),
        ("POST", "/v1/contacts/{contact}/opt-in") => Spec::new(
            "opt_in",
            "contacts",
            "Record an explicit opt-in with its provenance",
        )
        .parameters([contact()])
        .body(body(
            true,
            "application/json",
            schemas.json::<api::OptInRequest>(),
        ))
        .answers("200", recorded(schemas))
        .fails([Invalid, TooLarge])
        .fails(HUB),
        ("POST", "/v1/contacts/{contact}/opt-out") => Spec::new(
            "opt_out",
            "contacts",
            "Record an opt-out (the body is optional)",
        )
        .parameters([contact()])
        .body(body(
            false,
            "application/json",
            schemas.json::<api::OptOutRequest>(),
        ))
        .answers("200", recorded(schemas))
        .fails([Invalid, TooLarge])
        .fails(HUB),
        ("POST", "/v1/messages") => Spec::new(
            "send_message",
            "messages",
            "Ask to send a template or freeform message",
        )
        .parameters([
            parameter(
                "Idempotency-Key",
                ParameterIn::Header,
                false,
                "The same key with the same request (recipient, sender, workflow, content, dry_run; not the JSON's spelling) answers the first request's result again, with `Idempotent-Replayed: true`, and records nothing; with a different request it is 409 `idempotency_key_reused`. Remembered for 24 h.",
                string().min_length(Some(1)).max_length(Some(255)),
            ),
            parameter(
                "dry_run",
                ParameterIn::Query,
                false,
                "Check every rule, record nothing.",
                flag(),
            ),
        ])
        .body(body(
            true,
            "application/json",
            schemas.json::<api::SendMessageRequest>(),
        ))
        .answers(
            "202",
            ResponseBuilder::new()
                .description(
                    "Allowed (and recorded as an intent unless a dry run or a replay).",
                )
                .content("application/json", schemas.json::<api::SendMessageResponse>())
                .header(IDEMPOTENT_REPLAYED_HEADER, idempotent_replayed())
                .build(),
        )
        .fails([Invalid, TooLarge, Refused, IdempotencyKeyReused])
        .fails(HUB),
        ("GET", "/v1/messages/{message_id}") => Spec::new(
            "get_message",
            "messages",
            "A message's status, intent, dispatch phase and history",
        )
        .parameters([message_id()])
        .answers("200", json("OK", schemas.json::<api::MessageResponse>()))
        .fails([Invalid, NotFound])
        .fails(HUB),
        ("GET", "/v1/messages/{message_id}/explain") => Spec::new(
            "explain_message",
            "messages",
            "Why a message was allowed or refused, citing the log positions of the events the decision relied on",
        )
        .parameters([message_id()])
        .answers("200", json("OK", schemas.json::<api::ExplainResponse>()))
        .fails([Invalid, NotFound])
        .fails(HUB),
        ("POST", "/v1/messages/{message_id}/claim") => Spec::new(
            "claim_message",
            "dispatch",
            "Claim a message for one provider call (every gate re-checked; a refusal cancels it)",
        )
        .parameters([message_id()])
        .answers(
            "200",
            json(
                "Claimed: the provider call's inputs.",
                schemas.json::<api::ClaimResponse>(),
            ),
        )
        .fails([Invalid, NotFound, NotClaimable, Refused])
        .fails(HUB),
        ("POST", "/v1/messages/{message_id}/outcome") => Spec::new(
            "record_outcome",
            "dispatch",
            "Record a provider call's outcome",
        )
        .parameters([message_id()])
        .body(body(
            true,
            "application/json",
            schemas.json::<api::OutcomeRequest>(),
        ))
        .answers("200", dispatch_recorded(schemas))
        .fails([Invalid, NotFound, NotClaimable, TooLarge])
        .fails(HUB),
        ("POST", "/v1/messages/{message_id}/expire-in-doubt") => Spec::new(
            "expire_in_doubt",
            "dispatch",
            "Fail a claim that has been in doubt past the timeout",
        )
        .parameters([message_id()])
        .answers("200", dispatch_recorded(schemas))
        .fails([Invalid, NotFound])
        .fails(HUB),
        ("GET", "/v1/dispatch/pending") => Spec::new(
            "pending_messages",
            "dispatch",
            "Messages with dispatch work",
        )
        .answers("200", json("OK", schemas.json::<api::PendingResponse>()))
        .fails(HUB),
        ("GET", "/v1/templates") => {
            Spec::new("list_templates", "templates", "Registered templates")
                .answers("200", json("OK", schemas.json_list::<api::TemplateView>()))
                .fails(HUB)
        }
        ("POST", "/v1/templates") => Spec::new(
            "register_template",
            "templates",
            "Register a template that exists at the provider (give `content_sid`; approval starts pending), or create one and submit it for approval (give `provider` and `body`, no `content_sid`)",
        )
        .body(body(
            true,
            "application/json",
            schemas.json::<api::RegisterTemplateRequest>(),
        ))
        .answers(
            "201",
            json(
                "Registered, or created and submitted: `id` and `status` (the provider's answer).",
                schemas.json::<api::TemplateView>(),
            ),
        )
        .fails([Invalid, Conflict, TooLarge, ProviderError])
        .fails(HUB),
        ("POST", "/v1/templates/sync") => Spec::new(
            "sync_templates",
            "templates",
            "Read every template's status from the providers now; import the ones wagate does not know",
        )
        .answers("200", json("OK", schemas.json::<api::TemplateSyncResponse>()))
        .fails([ProviderError])
        .fails(HUB),
        ("POST", "/v1/templates/{content_sid}/status") => Spec::new(
            "set_template_status",
            "templates",
            "Set a template's approval status",
        )
        .parameters([parameter(
            "content_sid",
            ParameterIn::Path,
            true,
            "The template id: a Twilio Content SID (`HX…`) or a Meta template name.",
            string(),
        )])
        .body(body(
            true,
            "application/json",
            schemas.json::<api::TemplateStatusRequest>(),
        ))
        .answers("200", json("OK", schemas.json::<api::TemplateView>()))
        .fails([Invalid, NotFound, Conflict, TooLarge])
        .fails(HUB),
        ("GET", "/v1/senders") => Spec::new("list_senders", "senders", "Registered senders")
            .answers("200", json("OK", schemas.json_list::<api::SenderView>()))
            .fails(HUB),
        ("POST", "/v1/senders") => Spec::new(
            "register_sender",
            "senders",
            "Register a business number (not yet authorized)",
        )
        .body(body(
            true,
            "application/json",
            schemas.json::<api::RegisterSenderRequest>(),
        ))
        .answers(
            "201",
            json("Registered.", schemas.json::<api::SenderView>()),
        )
        .fails([Invalid, TooLarge])
        .fails(HUB),
        ("POST", "/v1/senders/{address}/authorize") => Spec::new(
            "authorize_sender",
            "senders",
            "Authorize a sender (also lifts a suspension; the body is optional)",
        )
        .parameters([address()])
        .body(body(
            false,
            "application/json",
            schemas.json::<api::AuthorizeSenderRequest>(),
        ))
        .answers("200", json("OK", schemas.json::<api::SenderView>()))
        .fails([Invalid, NotFound, TooLarge])
        .fails(HUB),
        ("POST", "/v1/senders/{address}/suspend") => {
            Spec::new("suspend_sender", "senders", "Suspend a sender")
                .parameters([address()])
                .body(body(
                    true,
                    "application/json",
                    schemas.json::<api::SuspendSenderRequest>(),
                ))
                .answers("200", json("OK", schemas.json::<api::SenderView>()))
                .fails([Invalid, NotFound, TooLarge])
                .fails(HUB)
        }
        ("POST", "/v1/portfolios/{portfolio}/messaging-limit") => Spec::new(
            "set_messaging_limit",
            "senders",
            "Set a business portfolio's messaging limit",
        )
        .parameters([parameter(
            "portfolio",
            ParameterIn::Path,
            true,
            "The Meta business portfolio.",
            string().pattern(Some("^[a-z0-9_]{1,64}$")),
        )])
        .body(body(
            true,
            "application/json",
            schemas.json::<api::MessagingLimitRequest>(),
        ))
        .answers("200", recorded(schemas))
        .fails([Invalid, TooLarge])
        .fails(HUB),
        ("POST", "/v1/webhooks/retry-rejected") => Spec::new(
            "retry_rejected_webhooks",
            "webhooks",
            "Verify again and ingest the refused webhooks of the rejection log",
        )
        .answers(
            "200",
            json(
                "The refused requests not yet resolved were run through their webhook handler again.",
                schemas.json::<api::RetryRejectedSummary>(),
            ),
        )
        .fails([Failure::Internal]),
        ("GET", "/v1/review") => Spec::new(
            "review_items",
            "review",
            "The review queue, oldest first",
        )
        .parameters([
            parameter(
                "state",
                ParameterIn::Query,
                false,
                "Only items in this state.",
                string().enum_values(Some(["open", "resolved"])),
            ),
            parameter(
                "reason",
                ParameterIn::Query,
                false,
                "Only items raised for this reason.",
                string().enum_values(Some(
                    wagate_domain::ReviewReason::ALL.map(|reason| reason.as_str()),
                )),
            ),
        ])
        .answers("200", json("OK", schemas.json::<api::ReviewList>()))
        .fails([Invalid])
        .fails(HUB),
        ("POST", "/v1/review/{id}/resolve") => Spec::new(
            "resolve_review_item",
            "review",
            "Resolve a review item (recorded with who and when)",
        )
        .parameters([parameter(
            "id",
            ParameterIn::Path,
            true,
            "The item's id.",
            count(),
        )])
        .body(body(
            true,
            "application/json",
            schemas.json::<api::ResolveReviewRequest>(),
        ))
        .answers("200", json("The resolved item.", schemas.json::<api::ReviewItemView>()))
        .fails([Invalid, NotFound, Conflict, TooLarge])
        .fails(HUB),
        ("POST", "/v1/webhook-endpoints") => Spec::new(
            "register_webhook_endpoint",
            "webhook-endpoints",
            "Register an endpoint for outgoing event webhooks; the answer holds its signing secret (shown once)",
        )
        .body(body(
            true,
            "application/json",
            schemas.json::<api::RegisterEndpointRequest>(),
        ))
        .answers(
            "201",
            json(
                "Registered (recorded with who): `id` and `secret`. Events after its registration are delivered.",
                schemas.json::<api::EndpointView>(),
            ),
        )
        .fails([Invalid, TooLarge])
        .fails(HUB),
        ("GET", "/v1/webhook-endpoints") => Spec::new(
            "webhook_endpoints",
            "webhook-endpoints",
            "The endpoints, deleted ones included (without secrets)",
        )
        .answers("200", json("OK", schemas.json::<api::EndpointList>()))
        .fails(HUB),
        ("DELETE", "/v1/webhook-endpoints/{id}") => Spec::new(
            "delete_webhook_endpoint",
            "webhook-endpoints",
            "Delete an endpoint: nothing more is delivered to it",
        )
        .parameters([parameter(
            "id",
            ParameterIn::Path,
            true,
            "The endpoint's id.",
            string().pattern(Some("^ep_[0-9a-f]{32}$")),
        )])
        .answers("200", json("The deleted endpoint.", schemas.json::<api::EndpointView>()))
        .fails([Invalid, NotFound])
        .fails(HUB),
        ("POST", "/v1/crm/backfill") => Spec::new(
            "crm_backfill",
            "crm",
            "Mirror the log into HubSpot again from a position, beside the running mirror (one backfill at a time)",
        )
        .body(body(
            true,
            "application/json",
            schemas.json::<api::CrmBackfillRequest>(),
        ))
        .answers(
            "202",
            json(
                "Scheduled: positions `from` to `to` (the head now) are mirrored again; what HubSpot already has is patched, never created twice.",
                schemas.json::<api::CrmBackfillScheduled>(),
            ),
        )
        .fails([Invalid, Conflict])
        .fails(HUB),
        ("GET", "/v1/webhook-endpoints/{id}/deliveries") => Spec::new(
            "webhook_endpoint_deliveries",
            "webhook-endpoints",
            "An endpoint's delivery log: its newest attempts (status or transport error, attempt number), newest first",
        )
        .parameters([
            parameter(
                "id",
                ParameterIn::Path,
                true,
                "The endpoint's id.",
                string().pattern(Some("^ep_[0-9a-f]{32}$")),
            ),
            parameter(
                "limit",
                ParameterIn::Query,
                false,
                "At most this many attempts (default 50; capped at the 1000 kept).",
                count().minimum(Some(1)).default(Some(50.into())),
            ),
        ])
        .answers(
            "200",
            json(
                "The endpoint (with its state and health) and its attempts.",
                schemas.json::<api::DeliveryList>(),
            ),
        )
        .fails([Invalid, NotFound])
        .fails(HUB),
        ("POST", "/v1/webhook-endpoints/{id}/retry") => Spec::new(
            "retry_webhook_endpoint",
            "webhook-endpoints",
            "Retry an endpoint now: a disabled one is re-enabled (recorded with who) and resumes from where its deliveries stopped; a live one's backoff is cut short",
        )
        .parameters([parameter(
            "id",
            ParameterIn::Path,
            true,
            "The endpoint's id.",
            string().pattern(Some("^ep_[0-9a-f]{32}$")),
        )])
        .answers("200", json("The endpoint.", schemas.json::<api::EndpointView>()))
        .fails([Invalid, NotFound])
        .fails(HUB),
        ("POST", "/v1/consent/wordings") => Spec::new(
            "publish_consent_wording",
            "consent",
            "Publish a consent wording (immutable; the same text again is the same version)",
        )
        .body(body(
            true,
            "application/json",
            schemas.json::<api::PublishWordingRequest>(),
        ))
        .answers(
            "201",
            json("Published.", schemas.json::<api::ConsentWordingView>()),
        )
        .also_answers(
            "200",
            json(
                "Already published: the same version, nothing appended.",
                schemas.json::<api::ConsentWordingView>(),
            ),
        )
        .fails([Invalid, TooLarge])
        .fails(HUB),
        ("GET", "/v1/consent/wordings/{version}") => Spec::new(
            "consent_wording",
            "consent",
            "A published consent wording",
        )
        .parameters([consent_parameter("version", "The wording's version.")])
        .answers("200", json("OK", schemas.json::<api::ConsentWordingView>()))
        .fails([NotFound])
        .fails(HUB),
        ("POST", "/v1/consent/campaigns") => Spec::new(
            "create_consent_campaign",
            "consent",
            "Create a consent campaign: hosted page, click-to-chat link, QR codes",
        )
        .body(body(
            true,
            "application/json",
            schemas.json::<api::CreateCampaignRequest>(),
        ))
        .answers(
            "201",
            json("Created.", schemas.json::<api::ConsentCampaignView>()),
        )
        .fails([Invalid, Conflict, TooLarge])
        .fails(HUB),
        ("POST", "/v1/campaigns") => Spec::new(
            "create_campaign",
            "campaigns",
            "Create a campaign (nothing is sent until it is started). A CSV body (`Content-Type: text/csv`, header `to,<placeholder>,…`) gives the rows instead, with `sender`, `workflow`, `template_sid` or `template_id`, `on_limit` and `id` as query parameters",
        )
        .body(body(
            true,
            "application/json",
            schemas.json::<api::NewCampaignRequest>(),
        ))
        .answers("201", json("Created.", schemas.json::<api::CampaignView>()))
        .also_answers(
            "200",
            json(
                "Already created with this id and these contents: nothing appended.",
                schemas.json::<api::CampaignView>(),
            ),
        )
        .fails([Invalid, NotFound, Conflict, TooLarge])
        .fails(HUB),
        ("GET", "/v1/campaigns") => Spec::new("campaigns", "campaigns", "Every campaign, oldest first")
            .answers("200", json("OK", schemas.json::<api::CampaignList>()))
            .fails(HUB),
        ("GET", "/v1/campaigns/{id}") => Spec::new(
            "campaign",
            "campaigns",
            "A campaign's state and counts",
        )
        .parameters([campaign_parameter()])
        .answers("200", json("OK", schemas.json::<api::CampaignView>()))
        .fails([Invalid, NotFound])
        .fails(HUB),
        ("GET", "/v1/campaigns/{id}/preview") => Spec::new(
            "campaign_preview",
            "campaigns",
            "The dry run: every row through the gates now, the messaging limit counted cumulatively, the time and the estimated cost; nothing is recorded",
        )
        .parameters([campaign_parameter()])
        .answers("200", json("OK", schemas.json::<api::CampaignPreviewView>()))
        .fails([Invalid, NotFound])
        .fails(HUB),
        ("POST", "/v1/campaigns/{id}/start") => campaign_command(schemas, "start_campaign", "Start the campaign (its rows are sent, paced)"),
        ("POST", "/v1/campaigns/{id}/pause") => campaign_command(schemas, "pause_campaign", "Pause the campaign (no further row is processed)"),
        ("POST", "/v1/campaigns/{id}/resume") => campaign_command(schemas, "resume_campaign", "Resume a paused campaign"),
        ("POST", "/v1/campaigns/{id}/cancel") => campaign_command(schemas, "cancel_campaign", "Cancel the campaign: its unprocessed rows are withdrawn; messages already requested go on"),
        ("GET", "/v1/consent/campaigns/{id}") => Spec::new(
            "consent_campaign",
            "consent",
            "A consent campaign with its links",
        )
        .parameters([consent_parameter("id", "The campaign code (`WG-…`).")])
        .answers("200", json("OK", schemas.json::<api::ConsentCampaignView>()))
        .fails([NotFound])
        .fails(HUB),
        ("POST", "/v1/consent/campaigns/{id}/close") => Spec::new(
            "close_consent_campaign",
            "consent",
            "Close a consent campaign: its page and its code record nothing from then on",
        )
        .parameters([consent_parameter("id", "The campaign code (`WG-…`).")])
        .answers(
            "200",
            json(
                "Closed (closing again appends nothing).",
                schemas.json::<api::ConsentCampaignView>(),
            ),
        )
        .fails([NotFound])
        .fails(HUB),
        ("GET", "/v1/consent/campaigns/{id}/qr.svg") => Spec::new(
            "consent_campaign_qr_svg",
            "consent",
            "The campaign's click-to-chat link as a QR code (SVG)",
        )
        .parameters([consent_parameter("id", "The campaign code (`WG-…`).")])
        .answers("200", text("image/svg+xml", "The QR code."))
        .fails([NotFound])
        .fails(HUB),
        ("GET", "/v1/consent/campaigns/{id}/qr.png") => Spec::new(
            "consent_campaign_qr_png",
            "consent",
            "The campaign's click-to-chat link as a QR code (PNG)",
        )
        .parameters([consent_parameter("id", "The campaign code (`WG-…`).")])
        .answers("200", text("image/png", "The QR code."))
        .fails([NotFound, Internal])
        .fails(HUB),
        ("GET", "/v1/contacts/{contact}/consent") => Spec::new(
            "consent_receipts",
            "contacts",
            "Every consent receipt of a contact: what they agreed to, when, how, withdrawal",
        )
        .parameters([contact()])
        .answers(
            "200",
            json("OK", schemas.json::<api::ConsentReceiptsResponse>()),
        )
        .fails([Invalid])
        .fails(HUB),
        ("GET", "/v1/events") => {
            schemas.0.insert(
                api::EXPORTED_EVENT.into(),
                api::exported_event_schema().into(),
            );
            let line = ContentBuilder::new()
                .schema(Some(Ref::from_schema_name(api::EXPORTED_EVENT)))
                .build();
            Spec::new(
                "events",
                "feed",
                "The log as NDJSON after a position, optionally followed",
            )
            .parameters([
                parameter(
                    "after",
                    ParameterIn::Query,
                    false,
                    "Events after this position (default 0: from the start).",
                    count().default(Some(0.into())),
                ),
                parameter(
                    "limit",
                    ParameterIn::Query,
                    false,
                    "At most this many events.",
                    count(),
                ),
                parameter(
                    "follow",
                    ParameterIn::Query,
                    false,
                    "Keep the response open and stream new events as they become durable.",
                    flag(),
                ),
            ])
            .answers(
                "200",
                ResponseBuilder::new()
                    .description("One event per line, in the export format.")
                    .content("application/x-ndjson", line)
                    .build(),
            )
            .fails([Invalid])
            .fails(HUB)
        }
        ("GET", "/v1/costs") => Spec::new(
            "costs",
            "costs",
            "What delivered messages cost, grouped by campaign, workflow, template, sender or month",
        )
        .parameters([parameter(
            "by",
            ParameterIn::Query,
            false,
            "How to group (default `template`); another value is 400 naming the allowed ones.",
            string().enum_values(Some(wagate_app::CostDimension::ALL.map(|d| d.as_str()))),
        )])
        .answers("200", json("OK", schemas.json::<api::CostReport>()))
        .fails([Invalid]),
        _ => return None,
    };
    Some(spec)
}

fn http_method(method: &Method) -> Option<HttpMethod> {
    match *method {
        Method::GET => Some(HttpMethod::Get),
        Method::POST => Some(HttpMethod::Post),
        Method::PUT => Some(HttpMethod::Put),
        Method::DELETE => Some(HttpMethod::Delete),
        Method::PATCH => Some(HttpMethod::Patch),
        _ => None,
    }
}

/// The whole document: every route of [`ROUTES`], in its order.
pub fn document() -> OpenApi {
    let mut schemas = Schemas::default();
    let mut paths = Paths::new();
    for (method, path, access) in ROUTES {
        // Every ROUTES entry has an operation and an OpenAPI method (a unit test checks it too):
        // a route missing from the document is a programming error, never silently left out.
        let spec = spec(method, path, &mut schemas)
            .unwrap_or_else(|| panic!("ROUTES lists {method} {path} without an operation"));
        let http_method = http_method(method)
            .unwrap_or_else(|| panic!("{method} ({path}) has no OpenAPI method"));
        paths.add_path_operation(path, vec![http_method], spec.build(*access));
    }
    // Every failure answers the same error shape.
    let error = schemas.json::<api::ErrorBody>();
    let responses = Failure::ALL.map(|failure| {
        let mut response = ResponseBuilder::new()
            .description(failure.description())
            .content("application/json", error.clone());
        if failure == Failure::Refused {
            response = response.header(IDEMPOTENT_REPLAYED_HEADER, idempotent_replayed());
        }
        if failure == Failure::Unavailable {
            response = response.header(
                "Retry-After",
                HeaderBuilder::new()
                    .schema(ObjectBuilder::new().schema_type(Type::Integer))
                    .description(Some("Seconds to wait before retrying."))
                    .build(),
            );
        }
        (failure.name(), response.build())
    });
    let components = ComponentsBuilder::new()
        .schemas_from_iter(schemas.0)
        .responses_from_iter(responses)
        .security_scheme(
            BEARER,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "A token of a role: agent (WAGATE_AGENT_TOKEN), operator \
                         (WAGATE_OPERATOR_TOKEN, WAGATE_API_TOKEN), dispatcher \
                         (WAGATE_DISPATCHER_TOKEN), auditor (WAGATE_AUDITOR_TOKEN).",
                    ))
                    .build(),
            ),
        )
        .build();
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("wagate hub API")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(
                    "The command API of wagate, a compliance-gated WhatsApp Business messaging \
                     hub, plus its provider webhooks, health and metrics. docs/api.md has an \
                     example for every route. Generated from the wire types of the `wagate-api` \
                     crate by `wagate_http::openapi`; do not edit by hand \
                     (`WAGATE_WRITE_OPENAPI=1 cargo test -p wagate-http openapi` rewrites it).",
                ))
                .build(),
        )
        .servers(Some([ServerBuilder::new()
            .url("http://127.0.0.1:8080")
            .build()]))
        .security(Some([SecurityRequirement::new(
            BEARER,
            Vec::<String>::new(),
        )]))
        .tags(Some(TAGS.iter().map(|(name, description)| {
            TagBuilder::new()
                .name(*name)
                .description(Some(*description))
                .build()
        })))
        .paths(paths)
        .components(Some(components))
        .build()
}

/// docs/openapi.yaml's content.
pub fn yaml() -> String {
    // Serializing plain maps and strings to YAML cannot fail; an error here is a bug in the
    // document's construction.
    document()
        .to_yaml()
        .expect("the OpenAPI document serializes to YAML")
}

/// The statuses the document lists for an operation (`None`: no such operation). The handler
/// tests check every answer against it.
pub fn documented_statuses(document: &OpenApi, method: &Method, path: &str) -> Option<Vec<String>> {
    let item = document.paths.paths.get(path)?;
    let operation = match *method {
        Method::GET => item.get.as_ref(),
        Method::POST => item.post.as_ref(),
        Method::PUT => item.put.as_ref(),
        Method::DELETE => item.delete.as_ref(),
        Method::PATCH => item.patch.as_ref(),
        _ => None,
    }?;
    Some(operation.responses.responses.keys().cloned().collect())
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn openapi_yaml() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi.yaml")
    }

    #[test]
    fn every_route_has_an_operation() {
        let mut schemas = Schemas::default();
        for (method, path, _) in ROUTES {
            assert!(
                spec(method, path, &mut schemas).is_some(),
                "{method} {path}"
            );
            assert!(http_method(method).is_some(), "{method} {path}");
        }
    }

    #[test]
    fn every_operation_has_a_unique_operation_id() {
        let document = document();
        let mut ids = Vec::new();
        for (method, path, _) in ROUTES {
            let item = &document.paths.paths[*path];
            let operation = match *method {
                Method::GET => item.get.as_ref(),
                Method::DELETE => item.delete.as_ref(),
                _ => item.post.as_ref(),
            }
            .unwrap_or_else(|| panic!("{method} {path} is not in the document"));
            let id = operation
                .operation_id
                .clone()
                .unwrap_or_else(|| panic!("{method} {path} has no operationId"));
            assert!(!ids.contains(&id), "operationId {id} twice");
            ids.push(id);
        }
    }

    /// Every `$ref` in the document points at a schema or response it defines.
    #[test]
    fn every_reference_resolves() {
        let value = serde_json::to_value(document()).expect("json");
        let components = &value["components"];
        let mut stack = vec![&value];
        while let Some(node) = stack.pop() {
            match node {
                serde_json::Value::Object(map) => {
                    if let Some(serde_json::Value::String(target)) = map.get("$ref") {
                        let mut parts = target.trim_start_matches("#/components/").split('/');
                        let (kind, name) = (parts.next(), parts.next());
                        let defined = kind
                            .zip(name)
                            .is_some_and(|(kind, name)| components[kind].get(name).is_some());
                        assert!(defined, "{target} is not defined");
                    }
                    stack.extend(map.values());
                }
                serde_json::Value::Array(items) => stack.extend(items),
                _ => {}
            }
        }
    }

    /// docs/openapi.yaml is the generated document, byte for byte.
    #[test]
    fn openapi_yaml_is_up_to_date() {
        let path = openapi_yaml();
        let generated = yaml();
        if std::env::var_os("WAGATE_WRITE_OPENAPI").is_some() {
            std::fs::write(&path, &generated).expect("write docs/openapi.yaml");
            return;
        }
        let written = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            written == generated,
            "docs/openapi.yaml is stale: regenerate it with \
             `WAGATE_WRITE_OPENAPI=1 cargo test -p wagate-http openapi` and commit it"
        );
    }

    /// What wave 1's hand-written document got wrong, now derived from the handlers' types.
    #[test]
    fn claim_and_expiry_list_400_and_opt_out_detail_is_nullable() {
        let document = document();
        for path in [
            "/v1/messages/{message_id}/claim",
            "/v1/messages/{message_id}/expire-in-doubt",
        ] {
            let statuses = documented_statuses(&document, &Method::POST, path).expect(path);
            assert!(statuses.iter().any(|s| s == "400"), "{path}: {statuses:?}");
        }
        let value = serde_json::to_value(&document).expect("json");
        let detail = &value["components"]["schemas"]["OptOutRequest"]["properties"]["detail"];
        assert_eq!(
            detail["type"],
            serde_json::json!(["string", "null"]),
            "{detail}"
        );
    }

    /// The hand-written ExportedEvent schema has exactly the properties of a real exported event.
    #[test]
    fn the_exported_event_schema_matches_the_export_format() {
        let schema = serde_json::to_value(api::exported_event_schema()).expect("json");
        let mut documented: Vec<&String> = schema["properties"]
            .as_object()
            .expect("properties")
            .keys()
            .collect();
        documented.sort();
        let event = wagate_export::ExportedEvent {
            position: 1,
            stream: "contact:+41790000001".into(),
            version: 1,
            event_type: "OptedIn".into(),
            timestamp: "2026-11-25T09:00:00.000Z".into(),
            event_id: "01934b8e-0000-7000-8000-000000000000".into(),
            payload: serde_json::Map::new(),
            actor: None,
        };
        let exported = serde_json::to_value(&event).expect("json");
        let mut keys: Vec<&String> = exported.as_object().expect("object").keys().collect();
        keys.sort();
        assert_eq!(documented, keys);
    }
}
