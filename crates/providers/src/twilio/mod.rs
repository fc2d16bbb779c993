//! Twilio (as WhatsApp BSP): webhook signatures, webhook forms, the Messages API client, the
//! price of a sent message.

pub mod client;
pub mod price;
pub mod signature;
pub mod webhook;

pub use client::{TwilioClient, TwilioConfig};
pub use price::{parse_message_price, MessagePrice, PriceError, TwilioPriceClient};
pub use signature::{
    compute_signature, verify_signature, SignatureSettings, SigningAlgorithm, SortedParams,
    TwilioSigningKeys, TwilioWebhookRequest,
};
pub use webhook::{callback_message_id, parse_inbound, parse_status};
