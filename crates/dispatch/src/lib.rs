//! wagate-dispatch: turns allowed messages into provider calls.
//!
//! The logic is a pure step machine, [`Dispatcher::step`]`(input, now) -> effects` (module
//! `machine`): it never reads a clock, never does I/O and owns its randomness (a seeded
//! generator for backoff jitter), so a simulation can crash it between any two effects and
//! replay a run exactly from its seed (`wagate-sim`). A thin driver performs the effects
//! against the hub and a provider and feeds the answers back.
//!
//! # What the machine does
//! - Claims every message through the hub, which re-checks every compliance gate against the
//!   newest state and appends the claim atomically: a STOP, a closed window or a paused
//!   template that landed first turns the claim into a refusal that cancels the message.
//! - Calls the provider only with a `Claimed` answer for that attempt in hand, and never has
//!   two calls in flight for one message.
//! - Limits the rate per sender (token bucket: `RateLimit::for_tier`, 80 msg/s for Twilio and
//!   for Cloud API numbers, 1,000 msg/s for an upgraded Cloud API number) and per (sender, recipient) pair (default one message per 6 s). Tokens are
//!   taken when the claim is asked for, so the call follows the claim without waiting.
//! - Records every outcome through the hub (`decide::record_outcome`), which schedules retries
//!   of retryable failures (backoff 1 s, 2 s, 4 s plus jitter, 3 retries) and the follow-ups of
//!   permanent ones; a retry is claimed again once due, so a STOP during the backoff cancels it.
//! - Never calls the provider for a claim it did not make itself in this incarnation: after a
//!   restart, a claim with no outcome is *in doubt*. It is left to the status callback (which
//!   carries the message id and settles it) or, past the in-doubt timeout, the hub is asked to
//!   expire it (`decide::expire_in_doubt`: failed, for a person to look at).
//! - On shutdown it stops claiming, lets outstanding claims, calls and records finish, saves
//!   its checkpoint, and says `Stopped`.
//!
//! # Delivery guarantee
//! - **At most one provider call per claim.** A call needs a `Claimed` answer for that attempt;
//!   the answer is used once, and the machine that received it is the only one that can use
//!   it (a restarted machine treats every open claim as in doubt).
//! - **At most once per message, unless the log records an explicit retryable failure.** A
//!   second call for a message needs a second claim, and the hub grants a second claim only
//!   after a `DispatchFailed` with a `retry_at` for the previous attempt. The driver records a
//!   failure only when it proves nothing was accepted: an error answer (HTTP 429/5xx, a
//!   retryable provider code) or no connection at all (`SendError::Connect`).
//! - **An attempt the provider may have is in doubt and never re-sent**: a timeout, a connection
//!   lost after the request left, a 2xx answer that cannot be read
//!   (`SendError::may_have_been_sent`, [`ProviderAnswer::InDoubt`]), and a crash between the
//!   call and recording its answer. Nothing is recorded, so the claim stays open; the status
//!   callback (which carries the message id) resolves it, or it expires to `failed`
//!   (`InDoubtExpired`) after the policy's timeout.
//! - Nothing is sent after a STOP that the hub recorded before the claim. A STOP recorded
//!   after the claim cannot un-send a message already on the wire.
//!
//! Messages are not lost either: the machine tracks each message until the hub reports it
//! done, and `SaveCheckpoint(p)` never passes the intent position of a message it tracks.
//!
//! # Driver
//! [`run`] drives the machine with tokio: one task per effect, answers back through a channel,
//! a timer for `SleepUntil`, a full list of the hub's open messages at start and on an interval
//! (callbacks, expiries and other dispatchers change messages without new intents), the intents
//! appended after the first list (in-process: a `wagate_app::Follower`, the mechanism every
//! reader of the log shares, through [`HubPort::follow_intents`]; otherwise the driver's own
//! reads whenever the hub's durable head moves, at most one per `poll_gap_min`), and a
//! `dispatch` tracing span per provider call. The hub is a
//! [`HubPort`]: `wagate_app::Hub` itself in `wagate serve` (checkpoint saved in the store as
//! [`CHECKPOINT_NAME`]), or [`RemoteHub`] over the command API for `wagate dispatch --hub URL`
//! (the process that holds the provider credentials). [`Providers`] routes each claim to the
//! provider its sender is registered with.

pub mod driver;
mod in_process;
mod machine;
mod rate;
mod remote;
mod rng;

pub use driver::{
    provider_answer, run, ClaimedIntent, DriverError, DriverOptions, HubError, HubPort,
    ProviderAnswer, Providers, RunReport, Snapshot,
};
pub use in_process::CHECKPOINT_NAME;
pub use remote::RemoteHub;

pub use machine::{ClaimAnswer, Config, Dispatcher, Effect, HubAnswer, Input, PendingIntent};
pub use rate::RateLimit;

#[cfg(test)]
mod tests;
