//! HubSpot's CRM API, as much of it as the WhatsApp timeline needs (docs/providers.md,
//! "HubSpot"): find a contact by phone, create one, create and update Communications (channel
//! `WHATS_APP`) and notes, associate them to the contact, set a contact property, and search an
//! object by the idempotency property wagate stamps on what it creates.
//!
//! Every call is `Authorization: Bearer <private app token>` against the configured base
//! (`https://api.hubapi.com` in production, a local fake in tests). Answers are sorted by what
//! retrying can do ([`HubSpotError`]): a 429 waits (its `Retry-After`, else the rate-limit
//! window's length, else ten seconds, HubSpot's burst window); 5xx and transport failures may
//! work later; other 4xx will not work without a person. When an answer says no request is
//! left in the current window (`X-HubSpot-RateLimit-*-Remaining: 0`), the next call waits for
//! the window first instead of earning a 429.

mod client;
mod error;

pub use client::{CommunicationInput, HubSpotClient, NoteInput, ObjectType};
pub use error::HubSpotError;

#[cfg(test)]
mod tests;
