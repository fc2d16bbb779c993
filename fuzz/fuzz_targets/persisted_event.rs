//! The persisted-event decoder: the store's envelope and the typed payloads with their schema
//! versions and upcasters, and the stored send results. The first byte picks the mode:
//! even — the rest is a stored envelope (decoded, then its payload);
//! odd — byte 2 picks the event type, byte 3 the schema version, the rest is the payload.
//! A payload that decodes must survive encode → decode unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wagate_store::persisted::{self, EVENT_TYPES};
use wagate_store::{decode_envelope, encode_envelope, send_result};

fn round_trip(event_type: &str, version: u16, payload: &[u8]) {
    let Ok(event) = persisted::decode_payload(event_type, version, payload) else {
        return;
    };
    let stored = persisted::encode(&event, uuid::Uuid::nil());
    let again =
        persisted::decode_payload(&stored.event_type, stored.schema_version, &stored.payload)
            .expect("a re-encoded event decodes");
    assert_eq!(
        again, event,
        "{event_type} v{version} changed through encode/decode"
    );
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode % 2 == 0 {
        if let Ok(record) = decode_envelope(rest) {
            assert_eq!(
                decode_envelope(&encode_envelope(&record)).as_ref(),
                Ok(&record)
            );
            round_trip(&record.event_type, record.schema_version, &record.payload);
        }
        let _ = send_result::decode(rest);
    } else if let [kind, version, payload @ ..] = rest {
        let event_type = EVENT_TYPES[usize::from(*kind) % EVENT_TYPES.len()];
        round_trip(event_type, u16::from(*version), payload);
    }
});
