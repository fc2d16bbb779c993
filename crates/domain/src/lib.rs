//! wagate's compliance core: identifiers, events, aggregates, the compliance gates, the message
//! status machine and provider error classification.
//!
//! Architecture invariant: this crate does no I/O, has no async, and never reads the clock (time
//! is an argument; `clippy.toml` forbids the clock functions). Its types are not serializable:
//! the persisted forms live in `wagate-store`. So every decision here can be property-tested
//! exhaustively and replayed by auditors.
//!
//! The shape is the Decider: `decide::*(state, command, now) -> events | refusal` and
//! `State::apply(state, &event) -> state`.

pub mod actor;
pub mod campaign;
pub mod classify;
pub mod consent;
pub mod consent_confirmation;
pub mod contact;
pub mod decide;
pub mod endpoints;
pub mod events;
pub mod explain;
pub mod gates;
pub mod ids;
pub mod keywords;
pub mod message;
pub mod open_intent;
pub mod policy;
pub mod portfolio;
pub mod review;
pub mod rich;
pub mod rules;
pub mod sender;
pub mod status;
pub mod template;

/// All times in the domain: UTC instants supplied by the caller.
pub type Timestamp = chrono::DateTime<chrono::Utc>;

pub use actor::{Actor, Role};
pub use campaign::{CampaignEvent, CampaignState};
pub use classify::{ErrorClass, FollowUp, ProviderKind, Retry};
pub use consent::{CampaignMedium, ConsentEvent, ConsentState};
pub use contact::{Consent, ConsentReceipt, ContactState};
pub use decide::CommandError;
pub use endpoints::{failed_long_enough, EndpointEvent, EndpointId, OutgoingEventKind};
pub use events::{
    ApprovalStatus, ContactEvent, ContactFlag, Event, EventType, IdentitySource, MessageEvent,
    MessagingLimit, OptInSource, OptOutSource, PortfolioEvent, ProviderDetails, ProviderError,
    ProviderEvent, ReviewEvent, SenderEvent, StatusPricing, StreamKey, TemplateCategory,
    TemplateEvent,
};
pub use gates::{Recipient, SendContent};
pub use ids::{
    BusinessScopedUserId, CampaignId, ContactId, IdError, MessageId, PhoneNumber, PortfolioId,
    ProviderMessageRef, TemplateId, TwilioSid, TwilioSidKind, Wamid, WhatsAppAddress, Workflow,
};
pub use message::{DispatchPhase, Intent, MessageContent, MessageState, StatusObservation};
pub use open_intent::OpenIntent;
pub use policy::Policy;
pub use portfolio::PortfolioState;
pub use review::{Raise, ReviewDecision, ReviewError, ReviewReason, ReviewState, ReviewSubject};
pub use rich::{MediaKind, MediaMessage, MediaUrl, ReplyButton, RichReply, TemplateMedia};
pub use rules::{Refusal, RuleId};
pub use sender::{SenderRate, SenderState};
pub use status::MessageStatus;
pub use template::TemplateState;

/// An aggregate rebuilt by folding its events.
pub trait Aggregate: Default + Clone {
    type Event;

    fn apply(self, event: &Self::Event) -> Self;

    /// Folds a history; equal to applying the events one by one, in any chunking.
    fn replay<'a>(self, events: impl IntoIterator<Item = &'a Self::Event>) -> Self
    where
        Self::Event: 'a,
    {
        events.into_iter().fold(self, Self::apply)
    }
}

macro_rules! aggregate {
    ($state:ty, $event:ty) => {
        impl Aggregate for $state {
            type Event = $event;

            fn apply(self, event: &$event) -> Self {
                <$state>::apply(self, event)
            }
        }
    };
}

aggregate!(ContactState, ContactEvent);
aggregate!(MessageState, MessageEvent);
aggregate!(SenderState, SenderEvent);
aggregate!(TemplateState, TemplateEvent);
aggregate!(PortfolioState, PortfolioEvent);
aggregate!(CampaignState, CampaignEvent);
