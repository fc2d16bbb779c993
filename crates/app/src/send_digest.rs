//! The digest of a send request kept with its `Idempotency-Key`, so a key reused with a
//! different request is answered 409 instead of with the first request's answer.
//!
//! It hashes the request as the hub understood it, not the bytes that carried it: JSON
//! whitespace, field order and an omitted `from` that resolves to the only sender do not change
//! it. The digest is persisted (format 2 of `wagate_store::send_result`) and compared for up to
//! `COMMAND_KEY_TTL` after it was written, possibly by a newer wagate, so this encoding must not
//! change; a new one needs a new domain tag, and the old digests would then mismatch for a day.

use sha2::{Digest, Sha256};
use wagate_domain::{Recipient, RichReply, SendContent, WhatsAppAddress};
use wagate_store::send_result::RequestDigest;

use crate::hub::SendRequest;

/// Names this encoding, so a digest of something else can never collide with it.
const DOMAIN: &[u8] = b"wagate send request v1";

/// SHA-256 of the canonical form of a send: recipient, resolved sender, workflow, content and
/// whether it is a dry run. Every variable-length field is length-prefixed and every choice is
/// tagged, so two different requests never share an encoding.
pub(crate) fn of(
    request: &SendRequest,
    recipient: &Recipient,
    sender: &WhatsAppAddress,
    dry_run: bool,
) -> RequestDigest {
    let mut hash = Canonical(Sha256::new());
    hash.bytes(DOMAIN);
    match recipient {
        // The number in E.164, however the agent spelled it.
        Recipient::Phone(number) => hash.tagged(1, &number.to_string()),
        Recipient::Invalid { given, .. } => hash.tagged(2, given),
    }
    hash.text(&sender.to_string());
    match &request.workflow {
        None => hash.tag(0),
        Some(workflow) => hash.tagged(1, workflow),
    }
    match &request.content {
        SendContent::Template {
            template,
            variables,
            media,
        } => {
            hash.tagged(1, template.as_str());
            hash.len(variables.len());
            // A BTreeMap iterates in key order: the order the agent wrote them does not matter.
            for (name, value) in variables {
                hash.text(name);
                hash.text(value);
            }
            // Only when given, so the digest of a send without media is what it always was
            // (the media are normalized: sorted by header).
            if !media.is_empty() {
                hash.tag(5);
                hash.len(media.len());
                for medium in media {
                    match medium.card {
                        None => hash.tag(0),
                        Some(card) => hash.tagged(1, &card.to_string()),
                    }
                    hash.text(medium.kind.as_str());
                    hash.text(medium.url.as_str());
                }
            }
        }
        SendContent::Freeform { text } => hash.tagged(2, text),
        // New tags after the existing ones: digests of earlier sends stay what they were.
        SendContent::Rich(RichReply::Media(media)) => {
            hash.tagged(3, media.kind.as_str());
            hash.text(media.url.as_str());
            hash.text(&media.caption);
        }
        SendContent::Rich(RichReply::Buttons { body, buttons }) => {
            hash.tagged(4, body);
            hash.len(buttons.len());
            for button in buttons {
                hash.text(&button.id);
                hash.text(&button.title);
            }
        }
    }
    hash.tag(u8::from(dry_run));
    hash.0.finalize().into()
}

struct Canonical(Sha256);

impl Canonical {
    fn tag(&mut self, tag: u8) {
        self.0.update([tag]);
    }

    fn len(&mut self, len: usize) {
        self.0.update((len as u64).to_le_bytes());
    }

    fn bytes(&mut self, bytes: &[u8]) {
        self.len(bytes.len());
        self.0.update(bytes);
    }

    fn text(&mut self, text: &str) {
        self.bytes(text.as_bytes());
    }

    fn tagged(&mut self, tag: u8, text: &str) {
        self.tag(tag);
        self.text(text);
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use wagate_domain::TemplateId;

    use super::*;

    fn sender() -> WhatsAppAddress {
        WhatsAppAddress::parse("whatsapp:+15550001111").expect("sender")
    }

    fn request(to: &str, variables: &[(&str, &str)], workflow: Option<&str>) -> SendRequest {
        SendRequest {
            to: to.into(),
            sender: None,
            workflow: workflow.map(Into::into),
            content: SendContent::Template {
                media: Vec::new(),
                template: TemplateId::parse("HXb5b62575e6e4ff6129ad7c8efe1f983e").expect("id"),
                variables: variables
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect::<BTreeMap<_, _>>(),
            },
        }
    }

    fn digest(request: &SendRequest, dry_run: bool) -> RequestDigest {
        of(request, &Recipient::parse(&request.to), &sender(), dry_run)
    }

    #[test]
    fn the_same_request_has_the_same_digest_and_any_change_another() {
        let base = request("+41790000001", &[("1", "Tuesday"), ("2", "3pm")], None);
        let reordered = request("+41790000001", &[("2", "3pm"), ("1", "Tuesday")], None);
        assert_eq!(digest(&base, false), digest(&reordered, false));
        let others = [
            digest(
                &request("+41790000002", &[("1", "Tuesday"), ("2", "3pm")], None),
                false,
            ),
            digest(
                &request("+41790000001", &[("1", "Tuesday"), ("2", "4pm")], None),
                false,
            ),
            // Moving text between a name and its value is a different request.
            digest(
                &request("+41790000001", &[("1", "Tuesday2"), ("", "3pm")], None),
                false,
            ),
            digest(
                &request("+41790000001", &[("1", "Tuesday"), ("2", "3pm")], Some("x")),
                false,
            ),
            digest(&base, true),
            digest(
                &SendRequest {
                    content: SendContent::Freeform {
                        text: "Tuesday".into(),
                    },
                    ..base.clone()
                },
                false,
            ),
        ];
        for (i, other) in others.iter().enumerate() {
            assert_ne!(&digest(&base, false), other, "change {i} kept the digest");
        }
    }

    /// The digest is persisted and compared by later versions: this pins the encoding (the
    /// expected value was computed separately, from the layout in the comments above).
    #[test]
    fn the_encoding_is_stable() {
        let base = request("+41790000001", &[("1", "Tuesday")], Some("reminders"));
        let hex: String = digest(&base, false)
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect();
        assert_eq!(
            hex,
            "6a2d4552c4aff8ed27a97d5327f88d02acdb7d338fa5e4d1dbbda4b09f67ac2d"
        );
    }
}
