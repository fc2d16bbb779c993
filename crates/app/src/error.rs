//! The app's one error type: what a caller (the HTTP API, the CLI, the dispatcher) can act on.

use wagate_domain::{CommandError, IdError, MessageId, Refusal};
use wagate_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// A compliance rule forbids the send; recorded in the log unless it was a dry run.
    #[error("refused: {0}")]
    Refused(Refusal),
    /// The refusal stored under the request's `Idempotency-Key` by an earlier identical request,
    /// answered again: nothing was recorded now.
    #[error("refused (replayed): {0}")]
    ReplayedRefusal(Refusal),
    /// The `Idempotency-Key` was already used with a different request (within
    /// `COMMAND_KEY_TTL`): nothing was recorded, and the first answer is not this request's.
    #[error("Idempotency-Key {key:?} was already used with a different request")]
    IdempotencyKeyReused { key: String },
    /// Bad input, naming the field.
    #[error("invalid {field}: {reason}")]
    Invalid { field: String, reason: String },
    #[error("{what} not found")]
    NotFound { what: String },
    /// The command contradicts what is recorded (a review item resolved twice, an operator
    /// approving a template the provider rejected, paused or disabled): nothing was appended.
    #[error("{reason}")]
    Conflict { reason: String },
    /// The dispatcher asked for something the message's state does not allow.
    #[error("message {message_id} cannot be dispatched now: {reason}")]
    NotClaimable {
        message_id: MessageId,
        reason: String,
    },
    /// Optimistic concurrency kept failing: the streams changed under every attempt.
    #[error("gave up after {attempts} attempts: the contact's state kept changing concurrently")]
    Contended { attempts: u32 },
    /// The log holds an event this version of wagate cannot read.
    #[error("unreadable event at position {position}: {reason}")]
    Corrupt { position: u64, reason: String },
    /// The log cannot do it now: an I/O failure, a full disk, a log that refuses writes after
    /// an earlier failure or is closed, or a version conflict that outlived the retries.
    /// Everything acknowledged before is durable; retrying later may succeed.
    #[error("the event log cannot be written now: {0}")]
    Unavailable(#[source] StoreError),
    /// The log refused a value of the request (an id too long for a stream name, an oversized
    /// event): retrying cannot help. `field` names what to fix.
    #[error("invalid {field}: {message}")]
    Rejected {
        field: &'static str,
        message: String,
    },
    /// The log failed in a way no retry fixes (a damaged or foreign database, a retry that
    /// mixes written and new events): stop and look.
    #[error(transparent)]
    Log(StoreError),
    /// A campaign row the campaign may not process now (it is not running, or the row was
    /// already processed): nothing was appended. Not a compliance refusal: a withdrawal.
    #[error("campaign row withdrawn: {reason}")]
    CampaignRowWithdrawn { reason: String },
    /// A campaign row (with `on_limit: wait`) the messaging limit alone refuses now: nothing was
    /// appended; headroom frees at `until` (when the earliest reach in the rolling 24 h expires).
    #[error("campaign row held by the messaging limit")]
    CampaignRowHeld {
        until: Option<wagate_domain::Timestamp>,
    },
    /// The log's write queue is full (the disk is behind): nothing was written; retry shortly.
    #[error("the log's write queue is full ({capacity} requests); retry")]
    Busy { capacity: usize },
}

/// Sorts the log's failures by what a caller can do about them.
impl From<StoreError> for AppError {
    fn from(error: StoreError) -> Self {
        match error {
            // The one store error every caller answers the same way (back off, retry), whatever
            // the command.
            StoreError::Busy { capacity } => Self::Busy { capacity },
            StoreError::Conflict { .. }
            | StoreError::DiskFull { .. }
            | StoreError::Io { .. }
            | StoreError::Failed { .. }
            | StoreError::Closed => Self::Unavailable(error),
            StoreError::InvalidRequest(message) => Self::Rejected {
                field: "body",
                message,
            },
            StoreError::InvalidStreamId { id, reason } => Self::Rejected {
                field: "id",
                message: format!("{id:?}: {reason}"),
            },
            // EventIdsMismatch, Corrupt, Foreign, AlreadyOpen, and variants added later.
            other => Self::Log(other),
        }
    }
}

impl AppError {
    /// True when the log refused the append because a stream it read has changed since: decide
    /// again.
    pub(crate) fn is_conflict(&self) -> bool {
        matches!(self, Self::Unavailable(StoreError::Conflict { .. }))
    }

    pub fn invalid(field: &str, reason: impl Into<String>) -> Self {
        Self::Invalid {
            field: field.to_owned(),
            reason: reason.into(),
        }
    }

    pub fn from_id(field: &str, error: IdError) -> Self {
        Self::invalid(field, error.to_string())
    }
}

impl From<CommandError> for AppError {
    fn from(error: CommandError) -> Self {
        match error {
            CommandError::InvalidField { field, reason } => Self::Invalid {
                field: field.to_owned(),
                reason,
            },
            CommandError::NotFound { what } => Self::NotFound { what },
            CommandError::Conflict { reason } => Self::Conflict { reason },
            CommandError::NotClaimable { message_id, reason } => {
                Self::NotClaimable { message_id, reason }
            }
        }
    }
}

pub type Result<T, E = AppError> = std::result::Result<T, E>;
