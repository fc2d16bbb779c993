//! The ops page's sign-in sessions: an API token (operator or auditor) is exchanged once for a
//! random session id carried in an HttpOnly, SameSite=Strict cookie, so the token itself never
//! sits in the browser. Sessions live in memory only (a restart signs everyone out), expire
//! [`SESSION_TTL`] after sign-in, and are bounded ([`SESSIONS_MAX`]: at the cap, expired sessions
//! are dropped and then the oldest). Each session has its own CSRF token, which every form of
//! the page carries and every POST must echo.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use rand::RngCore;
use subtle::ConstantTimeEq;
use wagate_domain::Role;

/// How long a session lasts after sign-in.
pub const SESSION_TTL: Duration = Duration::from_secs(8 * 3600);
/// The most sessions held at once.
pub const SESSIONS_MAX: usize = 1024;
/// The session cookie's name.
pub const SESSION_COOKIE: &str = "wagate_ops_session";
/// The sign-in form's CSRF cookie (double submit: no session exists yet to hold it).
pub const SIGN_IN_COOKIE: &str = "wagate_ops_signin";

/// One signed-in person.
#[derive(Debug, Clone)]
pub struct Session {
    /// The token's name (who, in the event log's actor).
    pub name: String,
    pub role: Role,
    pub csrf: String,
    expires: Instant,
}

impl Session {
    pub fn is_operator(&self) -> bool {
        self.role == Role::Operator
    }
}

#[derive(Debug, Default)]
pub struct Sessions {
    by_id: Mutex<HashMap<String, Session>>,
}

/// 32 random bytes as hex: unguessable, and safe in a cookie and a form field as is.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Equality of two secrets without an early exit.
pub fn same_secret(a: &str, b: &str) -> bool {
    bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

impl Sessions {
    /// Starts a session; answers its id.
    pub fn start(&self, name: String, role: Role) -> String {
        let now = Instant::now();
        let mut sessions = self.by_id.lock();
        if sessions.len() >= SESSIONS_MAX {
            sessions.retain(|_, session| session.expires > now);
        }
        if sessions.len() >= SESSIONS_MAX {
            // Every session is live: the one that expires first (the oldest sign-in) goes.
            if let Some(oldest) = sessions
                .iter()
                .min_by_key(|(_, session)| session.expires)
                .map(|(id, _)| id.clone())
            {
                sessions.remove(&oldest);
            }
        }
        let id = random_token();
        sessions.insert(
            id.clone(),
            Session {
                name,
                role,
                csrf: random_token(),
                expires: now + SESSION_TTL,
            },
        );
        id
    }

    /// The live session with this id (an expired one is removed).
    pub fn get(&self, id: &str) -> Option<Session> {
        let mut sessions = self.by_id.lock();
        let session = sessions.get(id)?;
        if session.expires <= Instant::now() {
            sessions.remove(id);
            return None;
        }
        Some(session.clone())
    }

    pub fn end(&self, id: &str) {
        self.by_id.lock().remove(id);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.by_id.lock().len()
    }
}

/// The value of cookie `name` in a `Cookie` header.
pub fn cookie<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header.split(';').find_map(|pair| {
        let (key, value) = pair.trim().split_once('=')?;
        (key == name).then_some(value)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_are_bounded_and_ended() {
        let sessions = Sessions::default();
        let first = sessions.start("ops".into(), Role::Operator);
        for _ in 0..SESSIONS_MAX {
            sessions.start("audit".into(), Role::Auditor);
        }
        assert_eq!(sessions.len(), SESSIONS_MAX);
        assert!(sessions.get(&first).is_none(), "the oldest went at the cap");
        let id = sessions.start("ops".into(), Role::Operator);
        let session = sessions.get(&id).expect("live");
        assert!(session.is_operator());
        assert_ne!(session.csrf, id);
        sessions.end(&id);
        assert!(sessions.get(&id).is_none());
    }

    #[test]
    fn cookies_are_found_by_exact_name() {
        let header = "a=1; wagate_ops_session=abc; wagate_ops_session_x=no";
        assert_eq!(cookie(header, SESSION_COOKIE), Some("abc"));
        assert_eq!(cookie(header, "missing"), None);
    }
}
