//! Meta Cloud API webhook JSON: `{"object":"whatsapp_business_account","entry":[{"id",
//! "changes":[{"field","value"}]}]}`. Every entry, change, message, status and error is read;
//! what the events do not structure is kept in their `details` ([`crate::details`]), and a
//! change of any other `field` (value-level `errors` too) becomes a [`ProviderNotice`]: nothing
//! a genuine webhook says is dropped.
//!
//! A batch can hold up to 1000 updates. One malformed item must not hold the others hostage
//! (Meta would redeliver the whole batch for 7 days), so item-level problems are collected in
//! [`MetaWebhook::rejected`] next to the events that did parse; only an envelope that is not
//! a WhatsApp webhook at all is an `Err`.

use serde_json::Value;
use wagate_domain::{
    BusinessScopedUserId, ContactId, MessageId, MessageStatus, PhoneNumber, ProviderMessageRef,
    StatusPricing, Wamid,
};

use super::json::{Node, Owned};
use crate::details::Details;
use crate::event::{
    BusinessEndpoint, ContactRef, InboundContent, InboundMessage, MediaRef, PreferenceValue,
    ProviderErrorDetail, ProviderNotice, StatusUpdate, SystemNotice, SystemNoticeKind,
    UserPreferenceChange, WebhookEvent,
};
use crate::ParseError;
use wagate_domain::ProviderKind;

const OBJECT: &str = "whatsapp_business_account";
const MEDIA_TYPES: [&str; 5] = ["image", "audio", "video", "document", "sticker"];

/// The result of parsing one webhook POST.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetaWebhook {
    /// Events in payload order.
    pub events: Vec<WebhookEvent>,
    /// Items that could not be parsed, each naming its field; the caller records them.
    pub rejected: Vec<ParseError>,
    /// Template status, quality and category changes
    /// (`message_template_status_update`, `message_template_quality_update`,
    /// `template_category_update`), in payload order.
    pub templates: Vec<super::template_notice::TemplateNotice>,
}

/// Parses a webhook body. Verify the signature on the same bytes first.
pub fn parse_webhook(body: &[u8]) -> Result<MetaWebhook, ParseError> {
    let root: Value = serde_json::from_slice(body).map_err(|e| ParseError::Malformed {
        format: "JSON",
        reason: e.to_string(),
    })?;
    let root = Node::root(&root);
    let object = root.req_str("object")?;
    if object != OBJECT {
        return Err(ParseError::invalid(
            "object",
            format!("expected {OBJECT:?}"),
        ));
    }
    let entries = root.array("entry")?;
    if entries.is_empty() {
        return Err(ParseError::missing("entry"));
    }
    let mut out = MetaWebhook::default();
    for entry in &entries {
        if let Err(e) = parse_entry(entry.node(), &mut out) {
            out.rejected.push(e);
        }
    }
    Ok(out)
}

/// The entry's account id and time, which every item of it shares.
struct EntryInfo<'a> {
    account: Option<String>,
    time: Option<&'a Value>,
}

fn parse_entry(entry: Node<'_>, out: &mut MetaWebhook) -> Result<(), ParseError> {
    // Meta sends the account id as a string; tolerate a number.
    let account = match entry.value().get("id") {
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => entry.opt_str("id")?,
    };
    let info = EntryInfo {
        account,
        time: entry.value().get("time"),
    };
    for change in entry.array("changes")? {
        if let Err(e) = parse_change(change.node(), &info, out) {
            out.rejected.push(e);
        }
    }
    Ok(())
}

/// A change wagate does not take apart: recorded whole as a provider notice.
fn notice(kind: &str, value: Option<&Value>, info: &EntryInfo<'_>) -> ProviderNotice {
    let mut details = Details::new();
    if let Some(time) = info.time {
        details.json("entry.time", time, &[]);
    }
    if let Some(value) = value {
        details.json("value", value, &[]);
    }
    ProviderNotice {
        provider: ProviderKind::Meta,
        account: info.account.clone(),
        kind: kind.to_owned(),
        details: details.finish(),
    }
}

fn parse_change(
    change: Node<'_>,
    info: &EntryInfo<'_>,
    out: &mut MetaWebhook,
) -> Result<(), ParseError> {
    let field = change.req_str("field")?;
    if let Some(result) = super::template_notice::parse(field, change) {
        out.templates.push(result?);
        // Recorded whole as a provider notice too, through the single notice path (its
        // de-duplication and the auditors' record), beside what the change does to the template.
        let value = change.value().get("value");
        out.events
            .push(WebhookEvent::Notice(notice(field, value, info)));
        return Ok(());
    }
    if !matches!(field, "messages" | "user_preferences") {
        let value = change.value().get("value");
        out.events
            .push(WebhookEvent::Notice(notice(field, value, info)));
        return Ok(());
    }
    let account = info.account.as_deref();
    let value = change.req_obj("value")?;
    let value = value.node();
    let business = business(value, account)?;
    let contacts = value.array("contacts")?;
    let mut push = |result: Result<WebhookEvent, ParseError>| match result {
        Ok(event) => out.events.push(event),
        Err(e) => out.rejected.push(e),
    };

    if field == "user_preferences" {
        for item in value.array("user_preferences")? {
            push(
                user_preference(item.node(), &business, &contacts)
                    .map(WebhookEvent::UserPreference),
            );
        }
        return Ok(());
    }
    for item in value.array("messages")? {
        let item = item.node();
        push(if item.str("type")? == Some("system") {
            system_notice(item, &business).map(WebhookEvent::SystemNotice)
        } else {
            inbound(item, &business, &contacts).map(WebhookEvent::Inbound)
        });
    }
    for item in value.array("statuses")? {
        push(status(item.node(), &business).map(WebhookEvent::Status));
    }
    // Value-level errors (130429 rate limit, 131000 …) are about the number, not one item:
    // a provider notice with the number's metadata, beside whatever else the change held.
    if let Some(errors) = value.value().get("errors").filter(|e| !e.is_null()) {
        let mut about = serde_json::Map::new();
        about.insert("errors".into(), errors.clone());
        if let Some(metadata) = value.value().get("metadata") {
            about.insert("metadata".into(), metadata.clone());
        }
        out.events.push(WebhookEvent::Notice(notice(
            "errors",
            Some(&Value::Object(about)),
            info,
        )));
    }
    Ok(())
}

/// The item's values the event does not structure, with the change's `metadata` and account.
fn item_details(
    item: Node<'_>,
    skip: &[&str],
    business: &BusinessEndpoint,
    extra: Option<(&str, &Value)>,
) -> wagate_domain::ProviderDetails {
    let mut details = Details::new();
    details.json("", item.value(), skip);
    if let Some((prefix, value)) = extra {
        details.json(prefix, value, &[]);
    }
    if let Some(id) = &business.phone_number_id {
        details.push("metadata.phone_number_id", id.clone());
    }
    if let Some(account) = &business.account {
        details.push("entry.id", account.clone());
    }
    details.finish()
}

fn business(value: Node<'_>, account: Option<&str>) -> Result<BusinessEndpoint, ParseError> {
    let (number, phone_number_id) = match value.obj("metadata")? {
        None => (None, None),
        Some(metadata) => {
            let metadata = metadata.node();
            // Display numbers are informational (phone_number_id is the key) and their format
            // is not guaranteed: keep the digits, or nothing.
            let number = metadata.str("display_phone_number")?.and_then(|display| {
                let digits: String = display.chars().filter(char::is_ascii_digit).collect();
                PhoneNumber::parse(&format!("+{digits}")).ok()
            });
            (number, metadata.opt_str("phone_number_id")?)
        }
    };
    Ok(BusinessEndpoint {
        number,
        phone_number_id,
        account: account.map(str::to_owned),
    })
}

/// A contact from a phone-number field (digits without `+`, possibly empty) and a BSUID field.
/// A phone field that is not a number (a username-only contact) is no error when a valid
/// BSUID is there: the contact is recorded under the BSUID.
fn contact(
    node: Node<'_>,
    phone_field: &str,
    bsuid_field: &str,
) -> Result<Option<ContactRef>, ParseError> {
    let bsuid = node
        .str(bsuid_field)?
        .filter(|s| !s.is_empty())
        .map(|id| {
            BusinessScopedUserId::parse(id)
                .map_err(|e| ParseError::invalid(node.child_path(bsuid_field), e.to_string()))
        })
        .transpose()?;
    let phone = match node.str(phone_field)?.filter(|s| !s.is_empty()) {
        None => None,
        Some(digits) => match PhoneNumber::parse(&format!("+{digits}")) {
            Ok(number) => Some(number),
            Err(_) if bsuid.is_some() => None,
            Err(e) => {
                return Err(ParseError::invalid(
                    node.child_path(phone_field),
                    e.to_string(),
                ))
            }
        },
    };
    let id = match (phone, &bsuid) {
        (Some(phone), _) => ContactId::Phone(phone),
        (None, Some(bsuid)) => ContactId::BusinessScoped(bsuid.clone()),
        (None, None) => return Ok(None),
    };
    Ok(Some(ContactRef { id, bsuid }))
}

fn wamid(node: Node<'_>, field: &str) -> Result<Wamid, ParseError> {
    Wamid::parse(node.req_str(field)?)
        .map_err(|e| ParseError::invalid(node.child_path(field), e.to_string()))
}

fn inbound(
    msg: Node<'_>,
    business: &BusinessEndpoint,
    contacts: &[Owned<'_>],
) -> Result<InboundMessage, ParseError> {
    let id = wamid(msg, "id")?;
    let from = contact(msg, "from", "from_user_id")?
        .ok_or_else(|| ParseError::missing(msg.child_path("from")))?;
    let reply_to =
        match msg.obj("context")? {
            None => None,
            Some(context) => {
                let context = context.node();
                match context.opt_str("id")? {
                    None => None,
                    Some(raw) => Some(ProviderMessageRef::parse(&raw).map_err(|e| {
                        ParseError::invalid(context.child_path("id"), e.to_string())
                    })?),
                }
            }
        };
    let mut errors = Vec::new();
    for item in msg.array("errors")? {
        errors.push(error_detail(item.node())?);
    }
    let contact_entry = matching_contact(contacts, &from)?;
    // The text's body is the event's text; everything else is kept as details.
    let mut skip = vec!["id", "from", "type"];
    if msg.str("type")? == Some("text") {
        skip.push("text");
    }
    let details = item_details(
        msg,
        &skip,
        business,
        contact_entry.map(|entry| ("contact", entry.node().value())),
    );
    Ok(InboundMessage {
        id: ProviderMessageRef::Meta(id),
        profile_name: match contact_entry {
            Some(entry) => match entry.node().obj("profile")? {
                Some(profile) => profile.node().opt_str("name")?,
                None => None,
            },
            None => None,
        },
        from,
        to: business.clone(),
        timestamp: msg.timestamp("timestamp")?,
        reply_to,
        content: inbound_content(msg)?,
        errors,
        // Meta's group messages carry the group's id (the shape is unverified: see
        // docs/providers.md, "Meta system notices and groups").
        group: msg.opt_str("group_id")?.filter(|g| !g.is_empty()),
        details,
    })
}

/// A `type: system` message. The documented shape is `{"system": {"body", "type",
/// "new_wa_id" | "wa_id", "identity", "customer"}}`; `user_changed_user_id`'s field names are
/// unverified, so both `new_user_id` and `user_id` are read.
fn system_notice(msg: Node<'_>, business: &BusinessEndpoint) -> Result<SystemNotice, ParseError> {
    let id = wamid(msg, "id")?;
    let from = contact(msg, "from", "from_user_id")?
        .ok_or_else(|| ParseError::missing(msg.child_path("from")))?;
    let system = msg.req_obj("system")?;
    let system = system.node();
    let kind_name = system.req_str("type")?;
    let first_of = |fields: &[&'static str]| -> Result<Option<(&'static str, String)>, ParseError> {
        for field in fields {
            if let Some(value) = system.str(field)?.filter(|s| !s.is_empty()) {
                return Ok(Some((*field, value.to_owned())));
            }
        }
        Ok(None)
    };
    let kind = match kind_name {
        "user_changed_number" | "customer_changed_number" => {
            let (field, digits) = first_of(&["new_wa_id", "wa_id"])?
                .ok_or_else(|| ParseError::missing(system.child_path("new_wa_id")))?;
            let new_number = PhoneNumber::parse(&format!("+{digits}"))
                .map_err(|e| ParseError::invalid(system.child_path(field), e.to_string()))?;
            SystemNoticeKind::ChangedNumber { new_number }
        }
        "user_changed_user_id" => {
            let (field, id) = first_of(&["new_user_id", "user_id"])?
                .ok_or_else(|| ParseError::missing(system.child_path("new_user_id")))?;
            let new_user_id = BusinessScopedUserId::parse(&id)
                .map_err(|e| ParseError::invalid(system.child_path(field), e.to_string()))?;
            SystemNoticeKind::ChangedUserId { new_user_id }
        }
        "customer_identity_changed" | "user_identity_changed" => {
            SystemNoticeKind::IdentityChanged {
                identity: system.opt_str("identity")?,
            }
        }
        other => SystemNoticeKind::Other(other.to_owned()),
    };
    Ok(SystemNotice {
        id: ProviderMessageRef::Meta(id),
        from,
        to: business.clone(),
        kind,
        body: system.opt_str("body")?,
        timestamp: msg.timestamp("timestamp")?,
        details: item_details(msg, &["id", "from", "type"], business, None),
    })
}

/// The contact entry that matches the sender (by number or BSUID); with a single contact
/// entry, that one.
fn matching_contact<'c, 'a>(
    contacts: &'c [Owned<'a>],
    from: &ContactRef,
) -> Result<Option<&'c Owned<'a>>, ParseError> {
    let phone_digits = from.id.phone().map(PhoneNumber::digits);
    let bsuid = from.bsuid.as_ref().map(BusinessScopedUserId::as_str);
    for owned in contacts {
        let entry = owned.node();
        let matches = (phone_digits.is_some() && entry.str("wa_id")? == phone_digits)
            || (bsuid.is_some() && entry.str("user_id")? == bsuid)
            || contacts.len() == 1;
        if matches {
            return Ok(Some(owned));
        }
    }
    Ok(None)
}

fn inbound_content(msg: Node<'_>) -> Result<InboundContent, ParseError> {
    let kind = msg.req_str("type")?;
    match kind {
        "text" => {
            let text = msg.req_obj("text")?;
            Ok(InboundContent::Text {
                body: text.node().str("body")?.unwrap_or_default().to_owned(),
            })
        }
        "button" => {
            let button = msg.req_obj("button")?;
            let button = button.node();
            Ok(InboundContent::Button {
                text: button.req_str("text")?.to_owned(),
                payload: button.opt_str("payload")?,
            })
        }
        "interactive" => {
            let interactive = msg.req_obj("interactive")?;
            let interactive = interactive.node();
            match interactive.req_str("type")? {
                "button_reply" => {
                    let reply = interactive.req_obj("button_reply")?;
                    let reply = reply.node();
                    Ok(InboundContent::ButtonReply {
                        id: reply.req_str("id")?.to_owned(),
                        title: reply.str("title")?.unwrap_or_default().to_owned(),
                    })
                }
                "list_reply" => {
                    let reply = interactive.req_obj("list_reply")?;
                    let reply = reply.node();
                    Ok(InboundContent::ListReply {
                        id: reply.req_str("id")?.to_owned(),
                        title: reply.str("title")?.unwrap_or_default().to_owned(),
                        description: reply.opt_str("description")?,
                    })
                }
                // nfm_reply (Flows) and future interactive types: kept by name.
                other => Ok(InboundContent::Other {
                    kind: format!("interactive.{other}"),
                    body: None,
                }),
            }
        }
        media if MEDIA_TYPES.contains(&media) => {
            let item = msg.req_obj(media)?;
            let item = item.node();
            Ok(InboundContent::Media {
                kind: media.to_owned(),
                media: vec![MediaRef::MetaId {
                    id: item.req_str("id")?.to_owned(),
                    mime_type: item.opt_str("mime_type")?,
                }],
                caption: item.opt_str("caption")?,
            })
        }
        other => Ok(InboundContent::Other {
            kind: other.to_owned(),
            body: None,
        }),
    }
}

fn status(item: Node<'_>, business: &BusinessEndpoint) -> Result<StatusUpdate, ParseError> {
    let id = wamid(item, "id")?;
    let status = MessageStatus::parse(item.req_str("status")?);
    let mut errors = Vec::new();
    for error in item.array("errors")? {
        errors.push(error_detail(error.node())?);
    }
    // In group chats recipient_id is the group's id, which is not a contact.
    let recipient = if item.str("recipient_type")? == Some("group") {
        None
    } else {
        contact(item, "recipient_id", "recipient_user_id")?
    };
    let (message_id, callback_data) = match item.opt_str("biz_opaque_callback_data")? {
        None => (None, None),
        Some(raw) => match MessageId::parse(&raw) {
            Ok(id) => (Some(id), None),
            Err(_) => (None, Some(raw)),
        },
    };
    Ok(StatusUpdate {
        id: ProviderMessageRef::Meta(id),
        status,
        errors,
        message_id,
        callback_data,
        recipient,
        business: business.clone(),
        timestamp: item.timestamp("timestamp")?,
        event_type: None,
        // Statuses are the high-volume path: only what the event does not already hold.
        // `pricing` stays in the details too: an early (unmatched) status keeps it only there.
        details: item_details(item, &["id", "status"], business, None),
        pricing: pricing(item),
    })
}

/// The status's `pricing` object. Informational: a field of an unexpected JSON type is read as
/// absent (it is still in the details) rather than refusing the status.
fn pricing(item: Node<'_>) -> Option<StatusPricing> {
    let object = item.value().get("pricing")?.as_object()?;
    let text = |key: &str| object.get(key).and_then(Value::as_str).map(str::to_owned);
    let pricing = StatusPricing {
        billable: object.get("billable").and_then(Value::as_bool),
        pricing_model: text("pricing_model"),
        category: text("category"),
        kind: text("type"),
    };
    (pricing != StatusPricing::default()).then_some(pricing)
}

fn error_detail(item: Node<'_>) -> Result<ProviderErrorDetail, ParseError> {
    let details = match item.obj("error_data")? {
        Some(data) => data.node().opt_str("details")?,
        None => None,
    };
    Ok(ProviderErrorDetail {
        code: item.req_code("code")?,
        title: item.opt_str("title")?,
        message: item.opt_str("message")?,
        details,
    })
}

fn user_preference(
    item: Node<'_>,
    business: &BusinessEndpoint,
    contacts: &[Owned<'_>],
) -> Result<UserPreferenceChange, ParseError> {
    let contact = contact(item, "wa_id", "user_id")?
        .ok_or_else(|| ParseError::missing(item.child_path("wa_id")))?;
    let entry = matching_contact(contacts, &contact)?;
    let details = item_details(
        item,
        &[],
        business,
        entry.map(|entry| ("contact", entry.node().value())),
    );
    Ok(UserPreferenceChange {
        contact,
        business: business.clone(),
        category: item.req_str("category")?.to_owned(),
        preference: PreferenceValue::parse(item.req_str("value")?),
        detail: item.opt_str("detail")?,
        timestamp: item.timestamp("timestamp")?,
        details,
    })
}
