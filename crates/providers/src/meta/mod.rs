//! Meta WhatsApp Cloud API: webhook signature, subscription handshake, webhook JSON, the
//! messages endpoint client.

pub mod account;
pub mod client;
mod json;
pub mod signature;
pub mod template_notice;
pub mod verify;
pub mod webhook;

pub use account::{signals as account_signals, AccountSignal};
pub use client::{MetaClient, MetaConfig};
pub use signature::{compute_signature, verify_signature};
pub use verify::{verify_subscription, SubscriptionRefusal};
pub use webhook::{parse_webhook, MetaWebhook};
