//! wagate-app: the command service, and the only door to the event log: it writes every event
//! and, through its read side (`reads.rs`: [`Hub::events_after`], [`Hub::open_intents`], …),
//! answers every read. It holds the log as an `Arc<dyn wagate_store::EventLog>`, so it does not
//! depend on the backend.
//!
//! For each command it loads the aggregates the decision reads (through a cache that is never
//! trusted for correctness), calls the domain's pure `decide`, and appends the events with the
//! expected version of every stream it read, so a concurrent change (a STOP landing between a
//! send's decision and its claim) forces a fresh decision. Conflicts are retried a bounded number
//! of times. Time comes from a [`Clock`].

mod aggregates;
mod alerts;
mod campaign_runner;
mod campaigns;
mod clock;
mod codec;
mod consent;
mod consent_follower;
mod costs;
mod costs_reader;
mod counts;
mod counts_reader;
mod deliveries;
mod delivery_log;
mod endpoints;
mod error;
mod explain;
mod follower;
mod hub;
mod locks;
mod pricing;
mod projection;
mod projection_reader;
mod reads;
mod review;
mod send_digest;
mod snapshots;
mod views;

pub use aggregates::{Loaded, AGGREGATE_SNAPSHOT_EVERY, CACHE_ENTRIES_GAUGE, CACHE_ENTRIES_MAX};
pub use alerts::{run_outbox, Alert, AlertSink, OutboxError, OutboxSettings, SinkError};
pub use campaign_runner::{run_campaigns, RunnerSettings};
pub use campaigns::{
    CampaignCounts, CampaignPreview, CampaignView, EstimatedCost, NewCampaign, PreviewRefusedRow,
    RowRef, RowStep, CAMPAIGNS_LISTED_MAX,
};
pub use clock::{Clock, FixedClock, SystemClock};
pub use consent::ConsentReceiptEntry;
pub use consent_follower::{
    confirmation_key, run_consent_confirmations, ConfirmationsError, ConsentConfirmations,
    CONFIRMATIONS_CHECKPOINT,
};
pub use costs::{
    CostDimension, CostGroup, CostReport, CostSums, ProviderPricing, COSTS_SLOT,
    COST_ENTRY_MAX_AGE, NO_CAMPAIGN,
};
pub use counts::{
    FunnelRow, OpsCounts, PortfolioUsage, Stage, COUNTS_SLOT, FREEFORM, FUNNEL_ENTRY_MAX_AGE,
    NO_WORKFLOW, REFUSAL_HOURS_KEPT,
};
pub use deliveries::{
    checkpoint_name, kind_of, run_deliveries, run_endpoint, Delivery, DeliveryError,
    DeliverySettings, EndpointTransport, Reply,
};
pub use delivery_log::{Answer, DeliveryAttempt, DeliveryHealth, DELIVERY_LOG_KEEP};
pub use endpoints::{check_url, derive_secret, parse_kinds, Endpoint};
pub use error::{AppError, Result};
pub use follower::{
    Follower, FollowerError, FollowerSettings, Handler, HandlerFailure, Step, StepError,
};
pub use hub::{Hub, SendOptions, SendRequest, StatusCallback, COMMAND_KEY_TTL, WEBHOOK_DEDUP_TTL};
pub use pricing::{
    country_of, format_micros, parse_micros, PriceCategory, PriceEntry, PriceQuery, PriceTable,
    PriceTableError, Quote, ANY_COUNTRY,
};
pub use projection::{ProjectionSizes, PROVIDER_REF_HORIZON};
pub use projection_reader::COUNTS_BATCH;
pub use reads::{FilteredEvents, LoggedEvent, NewIntents, OpenIntents, StoreStats};
pub use review::{Resolution, ReviewChange, ReviewFilter, ReviewItem, ReviewItemState};
pub use snapshots::{OpenStats, SNAPSHOT_EVERY, SNAPSHOT_EVERY_EVENTS};
pub use views::{
    ClaimedMessage, ContactView, DispatchUpdate, HistoryEntry, Ingested, MessageView, SendAccepted,
    SenderWindowView,
};
pub use wagate_domain::explain::{Explanation, Fact, Verdict};
pub use wagate_domain::OpenIntent;
/// The log interface [`Hub::open`] takes (re-exported for the composition root).
pub use wagate_store::EventLog;
/// The log's injected commit failure, for tests of a failed log ([`Hub::open_temporary_with_fault`]).
pub use wagate_store::SyncFault;
