//! The provider, faked: it records every call it receives (with the message id and attempt, the
//! time and the log head at that moment) and answers from a script: accept, fail with a real
//! Twilio code, time out, or accept and lose the response. Accepted messages produce status
//! callbacks for the webhook queue.

use wagate_domain::decide::DispatchOutcome;
use wagate_domain::{
    MessageId, MessageStatus, ProviderError, ProviderKind, ProviderMessageRef, Timestamp, TwilioSid,
};

use crate::hub::SimRequest;

/// How far the status callbacks of an accepted message go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LastStatus {
    Sent,
    Delivered,
    Read,
    /// Undelivered with Twilio 63024 (not a WhatsApp user).
    Undelivered,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderBehaviour {
    /// Accepts (HTTP 201, `queued`); callbacks walk up to `last`.
    Accept { last: LastStatus },
    /// Accepts, but the response never reaches the dispatcher: it sees a timeout.
    AcceptLoseResponse { last: LastStatus },
    /// Answers with a Twilio error code.
    Reject { code: u32 },
    /// Never answers and never accepted.
    Timeout,
}

impl ProviderBehaviour {
    /// Twilio codes the simulation uses: retryable ones, and permanent ones with and without
    /// follow-ups (63016 window closed, 63003 not on WhatsApp, 63014 blocked = opt-out, 63041
    /// template paused, 63007 sender misconfigured, 63032, 21211).
    pub const RETRYABLE_CODES: [u32; 3] = [20429, 63018, 20500];
    pub const PERMANENT_CODES: [u32; 7] = [63016, 63003, 63014, 63041, 63007, 63032, 21211];
}

/// One request the provider received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderCall {
    pub message_id: MessageId,
    pub attempt: u32,
    pub at: Timestamp,
    /// The hub's log head when the call was made: the claim must be below it.
    pub log_head: u64,
    /// The provider took the message (whether or not the dispatcher heard so).
    pub accepted: bool,
    pub request: SimRequest,
}

/// A status callback on its way to the hub.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Callback {
    /// The provider's delivery id: a redelivery carries the same one.
    pub webhook_id: u64,
    pub message_id: MessageId,
    pub provider_ref: ProviderMessageRef,
    pub status: MessageStatus,
    pub error_code: Option<u32>,
}

#[derive(Debug, Clone)]
pub struct SimProvider {
    script: Vec<ProviderBehaviour>,
    next: usize,
    pub calls: Vec<ProviderCall>,
    sids: u64,
    webhooks: u64,
}

impl SimProvider {
    /// Answers calls from `script` in turn, cycling (an empty script accepts everything).
    pub fn new(script: Vec<ProviderBehaviour>) -> Self {
        Self {
            script,
            next: 0,
            calls: Vec::new(),
            sids: 0,
            webhooks: 0,
        }
    }

    pub fn set_script(&mut self, script: Vec<ProviderBehaviour>) {
        self.script = script;
        self.next = 0;
    }

    /// Receives one request: what the dispatcher hears back, and the callbacks it causes.
    pub fn call(
        &mut self,
        request: &SimRequest,
        now: Timestamp,
        log_head: u64,
    ) -> (DispatchOutcome, Vec<Callback>) {
        let behaviour = match self.script.get(self.next % self.script.len().max(1)) {
            Some(behaviour) => *behaviour,
            None => ProviderBehaviour::Accept {
                last: LastStatus::Delivered,
            },
        };
        self.next += 1;
        let accepted = matches!(
            behaviour,
            ProviderBehaviour::Accept { .. } | ProviderBehaviour::AcceptLoseResponse { .. }
        );
        self.calls.push(ProviderCall {
            message_id: request.message_id,
            attempt: request.attempt,
            at: now,
            log_head,
            accepted,
            request: request.clone(),
        });
        match behaviour {
            ProviderBehaviour::Accept { last } => {
                let (provider_ref, callbacks) = self.accept(request.message_id, last);
                let outcome = DispatchOutcome::Accepted {
                    provider_ref,
                    provider_status: MessageStatus::Queued,
                    recipient: None,
                };
                (outcome, callbacks)
            }
            ProviderBehaviour::AcceptLoseResponse { last } => {
                let (_, callbacks) = self.accept(request.message_id, last);
                (timeout(), callbacks)
            }
            ProviderBehaviour::Reject { code } => {
                let http_status = match code {
                    20429 | 63018 => 429,
                    20500 => 500,
                    _ => 400,
                };
                let outcome = DispatchOutcome::Rejected {
                    error: ProviderError {
                        provider: ProviderKind::Twilio,
                        code: Some(code),
                        http_status: Some(http_status),
                        message: format!("twilio error {code}"),
                    },
                };
                (outcome, Vec::new())
            }
            ProviderBehaviour::Timeout => (timeout(), Vec::new()),
        }
    }

    fn accept(
        &mut self,
        message_id: MessageId,
        last: LastStatus,
    ) -> (ProviderMessageRef, Vec<Callback>) {
        self.sids += 1;
        let provider_ref = match TwilioSid::parse(&format!("SM{:032x}", self.sids)) {
            Ok(sid) => ProviderMessageRef::Twilio(sid),
            // Invariant: "SM" and 32 hex digits is a valid message SID.
            Err(error) => unreachable!("generated SID rejected: {error}"),
        };
        let mut statuses = vec![(MessageStatus::Queued, None), (MessageStatus::Sent, None)];
        match last {
            LastStatus::Sent => {}
            LastStatus::Delivered => statuses.push((MessageStatus::Delivered, None)),
            LastStatus::Read => {
                statuses.push((MessageStatus::Delivered, None));
                statuses.push((MessageStatus::Read, None));
            }
            LastStatus::Undelivered => statuses.push((MessageStatus::Undelivered, Some(63024))),
        }
        let callbacks = statuses
            .into_iter()
            .map(|(status, error_code)| {
                self.webhooks += 1;
                Callback {
                    webhook_id: self.webhooks,
                    message_id,
                    provider_ref: provider_ref.clone(),
                    status,
                    error_code,
                }
            })
            .collect();
        (provider_ref, callbacks)
    }
}

fn timeout() -> DispatchOutcome {
    DispatchOutcome::Transport {
        provider: ProviderKind::Twilio,
        message: "no answer within 10 s".into(),
    }
}
