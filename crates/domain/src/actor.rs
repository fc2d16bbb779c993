//! Who asks: the roles of the command API's tokens, and the actor an appended event records.
//!
//! The actor is metadata of an append, never an input of a decision: the gates decide the same
//! whoever asks. Which role may call which route is the HTTP face's table; this module only names
//! the roles and orders them by privilege.

use std::fmt;

/// A token's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// Read-only: the event feed, contacts, messages, templates, senders.
    Auditor,
    /// Sends (and dry runs); reads contacts and messages. Nothing else.
    Agent,
    /// The remote dispatcher: pending intents, claim, outcome, expire-in-doubt, and reads.
    Dispatcher,
    /// Everything the agent and the auditor may, plus consent, templates, senders and limits.
    Operator,
}

impl Role {
    /// Every role, least privileged first (the order `Ord` follows).
    pub const ALL: [Role; 4] = [Role::Auditor, Role::Agent, Role::Dispatcher, Role::Operator];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Auditor => "auditor",
            Role::Agent => "agent",
            Role::Dispatcher => "dispatcher",
            Role::Operator => "operator",
        }
    }

    /// `"agent"` → `Agent`; `None` for anything else (case-sensitive: the settings and the log
    /// spell roles in lower case only).
    pub fn parse(raw: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|role| role.as_str() == raw)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The name the in-process dispatcher is recorded under (it holds no token).
pub const IN_PROCESS_DISPATCHER: &str = "in-process";

/// Who asked for an event.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Actor {
    /// A caller of the command API, by its token's role and name.
    Token { role: Role, name: String },
    /// A provider webhook whose signature was checked (`twilio`, `meta`, `sandbox`).
    Webhook { provider: String },
    /// The dispatcher running inside the hub (no token).
    InProcessDispatcher,
}

impl Actor {
    pub fn token(role: Role, name: impl Into<String>) -> Self {
        Actor::Token {
            role,
            name: name.into(),
        }
    }

    pub fn webhook(provider: impl Into<String>) -> Self {
        Actor::Webhook {
            provider: provider.into(),
        }
    }

    /// The kind recorded in the log and the export: the role's name, or `webhook`.
    pub fn kind(&self) -> &str {
        match self {
            Actor::Token { role, .. } => role.as_str(),
            Actor::Webhook { .. } => "webhook",
            Actor::InProcessDispatcher => Role::Dispatcher.as_str(),
        }
    }

    /// The name recorded: the token's name, the provider, or `in-process`.
    pub fn name(&self) -> &str {
        match self {
            Actor::Token { name, .. } => name,
            Actor::Webhook { provider } => provider,
            Actor::InProcessDispatcher => IN_PROCESS_DISPATCHER,
        }
    }

    /// The token role this actor acted with (`None` for webhooks; the in-process dispatcher acts
    /// as a dispatcher).
    pub fn role(&self) -> Option<Role> {
        match self {
            Actor::Token { role, .. } => Some(*role),
            Actor::Webhook { .. } => None,
            Actor::InProcessDispatcher => Some(Role::Dispatcher),
        }
    }

    /// The actor recorded as (`kind`, `name`); `None` when `kind` is neither a role nor
    /// `webhook`.
    pub fn from_parts(kind: &str, name: &str) -> Option<Self> {
        if kind == "webhook" {
            return Some(Actor::webhook(name));
        }
        let role = Role::parse(kind)?;
        if role == Role::Dispatcher && name == IN_PROCESS_DISPATCHER {
            return Some(Actor::InProcessDispatcher);
        }
        Some(Actor::token(role, name))
    }
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.kind(), self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_parse_and_order_least_privileged_first() {
        for role in Role::ALL {
            assert_eq!(Role::parse(role.as_str()), Some(role));
        }
        assert_eq!(Role::parse("admin"), None);
        assert_eq!(Role::parse("Operator"), None);
        assert!(Role::Auditor < Role::Agent && Role::Agent < Role::Operator);
    }

    #[test]
    fn actors_round_trip_through_their_parts() {
        for actor in [
            Actor::token(Role::Agent, "outreach-bot"),
            Actor::token(Role::Dispatcher, "remote-1"),
            Actor::webhook("twilio"),
            Actor::InProcessDispatcher,
        ] {
            assert_eq!(
                Actor::from_parts(actor.kind(), actor.name()),
                Some(actor.clone())
            );
        }
        assert_eq!(Actor::from_parts("root", "x"), None);
        assert_eq!(Actor::InProcessDispatcher.kind(), "dispatcher");
        assert_eq!(Actor::webhook("meta").role(), None);
    }
}
