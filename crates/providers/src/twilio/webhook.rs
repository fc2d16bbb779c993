//! Twilio inbound-message and status-callback forms (`application/x-www-form-urlencoded`).
//! Twilio adds parameters without notice: the fields the events do not structure (known or
//! not: `ErrorMessage`, `ButtonPayload`, the `Referral*` click-to-WhatsApp fields, locations,
//! `ChannelStatusMessage`, …) are kept in their `details`.

use wagate_domain::{
    BusinessScopedUserId, ContactId, MessageId, MessageStatus, ProviderMessageRef, TwilioSid,
    TwilioSidKind, WhatsAppAddress,
};

use crate::details::Details;
use crate::event::{
    BusinessEndpoint, ContactRef, InboundContent, InboundMessage, MediaRef, ProviderErrorDetail,
    StatusUpdate,
};
use crate::ParseError;

/// Twilio sends at most 10 media per message; a larger count is not a Twilio form.
const MAX_MEDIA: usize = 10;

/// The query parameter of our `StatusCallback` URL that carries the wagate message id.
pub const CALLBACK_MESSAGE_ID_PARAM: &str = "message_id";

/// Decoded form fields, first value per name.
struct Form(Vec<(String, String)>);

impl Form {
    fn parse(body: &[u8]) -> Self {
        Self(url::form_urlencoded::parse(body).into_owned().collect())
    }

    /// The first value, `None` when absent or empty (Twilio sends empty fields for unset values).
    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
            .filter(|value| !value.is_empty())
    }

    fn required(&self, name: &str) -> Result<&str, ParseError> {
        self.get(name).ok_or_else(|| ParseError::missing(name))
    }

    fn owned(&self, name: &str) -> Option<String> {
        self.get(name).map(str::to_owned)
    }

    /// Every non-empty field except those named in `skip` (kept structurally by the event).
    fn details(&self, skip: &[&str]) -> wagate_domain::ProviderDetails {
        let mut details = Details::new();
        for (key, value) in &self.0 {
            if !skip.contains(&key.as_str()) {
                details.push(key.clone(), value.clone());
            }
        }
        details.finish()
    }
}

/// Twilio repeats the message SID under these names.
const SID_FIELDS: [&str; 3] = ["MessageSid", "SmsSid", "SmsMessageSid"];

fn message_sid(form: &Form) -> Result<ProviderMessageRef, ParseError> {
    let raw = form.required("MessageSid")?;
    TwilioSid::parse_kind(raw, &[TwilioSidKind::Message, TwilioSidKind::MediaMessage])
        .map(ProviderMessageRef::Twilio)
        .map_err(|e| ParseError::invalid("MessageSid", e.to_string()))
}

fn address(form: &Form, name: &str) -> Result<Option<WhatsAppAddress>, ParseError> {
    form.get(name)
        .map(|raw| {
            WhatsAppAddress::parse(raw).map_err(|e| ParseError::invalid(name, e.to_string()))
        })
        .transpose()
}

/// `ExternalUserId` has been seen as `whatsapp:CO.<digits>`; the BSUID is after the prefix.
fn external_user_id(form: &Form) -> Result<Option<BusinessScopedUserId>, ParseError> {
    form.get("ExternalUserId")
        .map(|raw| {
            let id = raw.strip_prefix(WhatsAppAddress::PREFIX).unwrap_or(raw);
            BusinessScopedUserId::parse(id)
                .map_err(|e| ParseError::invalid("ExternalUserId", e.to_string()))
        })
        .transpose()
}

fn business(form: &Form, number_field: &str) -> Result<BusinessEndpoint, ParseError> {
    Ok(BusinessEndpoint {
        number: address(form, number_field)?.map(|a| a.number().clone()),
        phone_number_id: None,
        account: form.owned("AccountSid"),
    })
}

/// Parses an inbound-message webhook body.
pub fn parse_inbound(body: &[u8]) -> Result<InboundMessage, ParseError> {
    let form = Form::parse(body);
    let id = message_sid(&form)?;
    let bsuid = external_user_id(&form)?;
    // A contact known only by username may come without a usable number; the BSUID then
    // identifies them.
    let from = match (address(&form, "From"), &bsuid) {
        (Ok(Some(address)), _) => ContactId::Phone(address.number().clone()),
        (Ok(None) | Err(_), Some(bsuid)) => ContactId::BusinessScoped(bsuid.clone()),
        (Err(e), None) => return Err(e),
        (Ok(None), None) => return Err(ParseError::missing("From")),
    };
    let to = business(&form, "To")?;
    if to.number.is_none() {
        return Err(ParseError::missing("To"));
    }
    let reply_to = form
        .get("OriginalRepliedMessageSid")
        .map(|raw| {
            ProviderMessageRef::parse(raw)
                .map_err(|e| ParseError::invalid("OriginalRepliedMessageSid", e.to_string()))
        })
        .transpose()?;
    let content = content(&form)?;
    let mut skip = SID_FIELDS.to_vec();
    // A text's body is the event's text.
    if matches!(content, InboundContent::Text { .. }) {
        skip.push("Body");
    }
    Ok(InboundMessage {
        id,
        from: ContactRef { id: from, bsuid },
        to,
        profile_name: form.owned("ProfileName"),
        timestamp: None,
        reply_to,
        content,
        errors: Vec::new(),
        // Twilio's WhatsApp webhooks carry no group messages.
        group: None,
        details: form.details(&skip),
    })
}

fn content(form: &Form) -> Result<InboundContent, ParseError> {
    let body = form.get("Body").unwrap_or_default().to_owned();
    let num_media = match form.get("NumMedia") {
        None => 0,
        Some(raw) => raw
            .parse::<usize>()
            .ok()
            .filter(|n| *n <= MAX_MEDIA)
            .ok_or_else(|| {
                ParseError::invalid("NumMedia", format!("not a count from 0 to {MAX_MEDIA}"))
            })?,
    };
    let button_payload = form.owned("ButtonPayload");
    let button_text = form.owned("ButtonText");
    // `MessageType` is undocumented but always sent for WhatsApp; older forms lack it, so
    // infer from the other fields then.
    let kind = match form.get("MessageType") {
        Some(kind) => kind.to_ascii_lowercase(),
        None if num_media > 0 => "media".to_owned(),
        None if button_payload.is_some() || button_text.is_some() => "button".to_owned(),
        None => "text".to_owned(),
    };
    if kind == "button" || button_payload.is_some() {
        return Ok(InboundContent::Button {
            text: button_text.unwrap_or(body),
            payload: button_payload,
        });
    }
    if num_media > 0 {
        let media = (0..num_media)
            .map(|n| {
                let url_field = format!("MediaUrl{n}");
                Ok(MediaRef::Url {
                    url: form.required(&url_field)?.to_owned(),
                    content_type: form.owned(&format!("MediaContentType{n}")),
                })
            })
            .collect::<Result<Vec<_>, ParseError>>()?;
        return Ok(InboundContent::Media {
            kind,
            media,
            caption: (!body.is_empty()).then_some(body),
        });
    }
    if kind == "text" {
        return Ok(InboundContent::Text { body });
    }
    Ok(InboundContent::Other {
        kind,
        body: (!body.is_empty()).then_some(body),
    })
}

/// Parses a status-callback body. `callback_query` is the query string of the URL Twilio
/// called (our `StatusCallback` carries `message_id=<wagate id>` there); pass `""` if none.
pub fn parse_status(body: &[u8], callback_query: &str) -> Result<StatusUpdate, ParseError> {
    let form = Form::parse(body);
    let id = message_sid(&form)?;
    // `SmsStatus` duplicates `MessageStatus`; accept it when the newer name is missing.
    let status = form
        .get("MessageStatus")
        .or_else(|| form.get("SmsStatus"))
        .map(MessageStatus::parse)
        .ok_or_else(|| ParseError::missing("MessageStatus"))?;
    let errors = match form.get("ErrorCode") {
        None => Vec::new(),
        Some(raw) => vec![ProviderErrorDetail {
            code: raw
                .parse()
                .map_err(|_| ParseError::invalid("ErrorCode", "not a number"))?,
            title: None,
            message: form.owned("ErrorMessage"),
            details: form.owned("ChannelStatusMessage"),
        }],
    };
    // `To` is informational here (the message is matched by its SID): a `To` that does not
    // parse must not lose the status (a failure above all); it stays in the details.
    let recipient = address(&form, "To").ok().flatten().map(|a| ContactRef {
        id: ContactId::Phone(a.number().clone()),
        bsuid: None,
    });
    Ok(StatusUpdate {
        id,
        status,
        errors,
        message_id: callback_message_id(callback_query),
        callback_data: None,
        recipient,
        // Informational too, like `To`.
        business: BusinessEndpoint {
            number: address(&form, "From")
                .ok()
                .flatten()
                .map(|a| a.number().clone()),
            phone_number_id: None,
            account: form.owned("AccountSid"),
        },
        timestamp: None,
        event_type: form.owned("EventType"),
        details: form.details(&[&SID_FIELDS[..], &["MessageStatus", "SmsStatus"]].concat()),
        pricing: None,
    })
}

/// The wagate message id in a `StatusCallback` query, if it is a valid one. An invalid or
/// absent id is not an error: the callback is still matched by `MessageSid`.
pub fn callback_message_id(query: &str) -> Option<MessageId> {
    url::form_urlencoded::parse(query.trim_start_matches('?').as_bytes())
        .find(|(name, _)| name == CALLBACK_MESSAGE_ID_PARAM)
        .and_then(|(_, value)| MessageId::parse(&value).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimal_forms_and_missing_fields() {
        let sid = "SM0123456789abcdef0123456789abcdef";
        let ok = format!(
            "MessageSid={sid}&From=whatsapp%3A%2B41790000001&To=whatsapp%3A%2B15555550100&Body=hi"
        );
        let msg = parse_inbound(ok.as_bytes()).expect("minimal inbound");
        assert_eq!(msg.content, InboundContent::Text { body: "hi".into() });

        let cases = [
            ("From=whatsapp%3A%2B41790000001&To=whatsapp%3A%2B15555550100", "MessageSid"),
            (&*format!("MessageSid={sid}&To=whatsapp%3A%2B15555550100"), "From"),
            (&*format!("MessageSid={sid}&From=whatsapp%3A%2B41790000001"), "To"),
            (&*format!("MessageSid={sid}&From=whatsapp%3A%2B41790000001&To=whatsapp%3A%2B15555550100&NumMedia=1"), "MediaUrl0"),
        ];
        for (body, field) in cases {
            assert_eq!(
                parse_inbound(body.as_bytes()),
                Err(ParseError::missing(field)),
                "{body}"
            );
        }
        let bad = format!("MessageSid={sid}&From=%2B41790000001&To=whatsapp%3A%2B15555550100");
        assert_eq!(
            parse_inbound(bad.as_bytes())
                .expect_err("no prefix")
                .field(),
            Some("From")
        );
        let bad = "MessageSid=XX1&From=whatsapp%3A%2B41790000001&To=whatsapp%3A%2B15555550100";
        assert_eq!(
            parse_inbound(bad.as_bytes()).expect_err("bad sid").field(),
            Some("MessageSid")
        );
        let bad = format!("MessageSid={sid}&From=whatsapp%3A%2B41790000001&To=whatsapp%3A%2B15555550100&NumMedia=11");
        assert_eq!(
            parse_inbound(bad.as_bytes()).expect_err("too many").field(),
            Some("NumMedia")
        );

        assert_eq!(
            parse_status(format!("MessageSid={sid}").as_bytes(), ""),
            Err(ParseError::missing("MessageStatus"))
        );
        let bad = format!("MessageSid={sid}&MessageStatus=failed&ErrorCode=abc");
        assert_eq!(
            parse_status(bad.as_bytes(), "").expect_err("code").field(),
            Some("ErrorCode")
        );
    }

    #[test]
    fn bsuid_only_contact() {
        let body = "MessageSid=SM0123456789abcdef0123456789abcdef&From=&ExternalUserId=whatsapp%3ACO.123456&To=whatsapp%3A%2B15555550100&Body=hi";
        let msg = parse_inbound(body.as_bytes()).expect("bsuid inbound");
        assert_eq!(msg.from.id.to_string(), "bsuid:CO.123456");
        assert_eq!(
            msg.from.bsuid.map(|b| b.as_str().to_owned()),
            Some("CO.123456".into())
        );
    }

    #[test]
    fn callback_query() {
        let id = "0192f0c1-7a3b-7c4d-8e5f-0123456789ab";
        assert_eq!(
            callback_message_id(&format!("message_id={id}")).map(|m| m.to_string()),
            Some(id.into())
        );
        assert_eq!(
            callback_message_id(&format!("?x=1&message_id={id}")).map(|m| m.to_string()),
            Some(id.into())
        );
        assert_eq!(callback_message_id("message_id=nope"), None);
        assert_eq!(callback_message_id(""), None);
    }
}
