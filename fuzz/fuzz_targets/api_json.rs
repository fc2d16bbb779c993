//! The command API's JSON bodies, through the handlers' own parser (`wagate_http::
//! parse_json_body`), then the domain parsers the handlers apply to the strings. The first byte
//! picks the request type, the rest is the body. A refusal must name a field.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wagate_api as api;
use wagate_domain::{
    ContactId, MessageId, OptInSource, OptOutSource, ProviderMessageRef, TemplateId,
    WhatsAppAddress,
};
use wagate_http::{parse_json_body, parse_optional_json_body};

fn named<T>(result: Result<T, (String, String)>) -> Option<T> {
    match result {
        Ok(value) => Some(value),
        Err((field, message)) => {
            assert!(
                !field.is_empty() && field != "<not a 400>",
                "{field}: {message}"
            );
            None
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&kind, body)) = data.split_first() else {
        return;
    };
    match kind % 10 {
        0 => {
            if let Some(r) = named(parse_json_body::<api::OptInRequest>(body)) {
                let _ = OptInSource::parse(&r.source);
            }
        }
        1 => {
            if let Some(r) = named(parse_optional_json_body::<api::OptOutRequest>(body)) {
                let _ = r.source.as_deref().map(OptOutSource::parse);
            }
        }
        2 => {
            if let Some(r) = named(parse_json_body::<api::SendMessageRequest>(body)) {
                let _ = ContactId::parse(&r.to);
                let _ = r.from.as_deref().map(WhatsAppAddress::parse);
                let _ = r.template.map(|t| TemplateId::parse(&t.content_sid));
            }
        }
        3 => {
            let _ = named(parse_json_body::<api::RegisterTemplateRequest>(body));
        }
        4 => {
            let _ = named(parse_json_body::<api::TemplateStatusRequest>(body));
        }
        5 => {
            let _ = named(parse_json_body::<api::RegisterSenderRequest>(body));
        }
        6 => {
            let _ = named(parse_optional_json_body::<api::AuthorizeSenderRequest>(
                body,
            ));
        }
        7 => {
            let _ = named(parse_json_body::<api::SuspendSenderRequest>(body));
        }
        8 => {
            let _ = named(parse_json_body::<api::MessagingLimitRequest>(body));
        }
        _ => {
            if let Some(r) = named(parse_json_body::<api::OutcomeRequest>(body)) {
                if let Some(accepted) = r.accepted {
                    let _ = ProviderMessageRef::parse(&accepted.provider_ref);
                    let _ = accepted.recipient.as_deref().map(ContactId::parse);
                }
            }
            // Path segments are untrusted too.
            let text = String::from_utf8_lossy(body);
            let _ = ContactId::parse(&text);
            let _ = MessageId::parse(&text);
        }
    }
});
