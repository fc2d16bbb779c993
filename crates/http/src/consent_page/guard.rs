//! The consent page's protection, in memory and bounded: single-use form tokens (CSRF) and
//! rate limits per client IP and per number. A restart forgets them, which only lets a person
//! submit again; nothing here decides consent.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::ops::sessions::{random_token, same_secret};

/// How long a rendered form may be submitted.
pub const FORM_TTL: Duration = Duration::from_secs(3600);
/// The most outstanding form tokens; at the cap expired ones go, then the oldest.
pub const FORMS_MAX: usize = 10_000;
/// Submissions one client IP may make per [`IP_WINDOW`].
pub const IP_LIMIT: u32 = 20;
pub const IP_WINDOW: Duration = Duration::from_secs(600);
/// Submissions for one number per [`NUMBER_WINDOW`].
pub const NUMBER_LIMIT: u32 = 3;
pub const NUMBER_WINDOW: Duration = Duration::from_secs(3600);
/// The most addresses or numbers tracked at once; at the cap expired windows go, then the
/// oldest (a flood of distinct keys cannot grow memory).
pub const TRACKED_MAX: usize = 10_000;

/// Over a rate limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limited;

#[derive(Debug, Default)]
pub struct Guard {
    forms: Mutex<HashMap<String, (String, Instant)>>,
    by_ip: Mutex<HashMap<String, (Instant, u32)>>,
    by_number: Mutex<HashMap<String, (Instant, u32)>>,
}

impl Guard {
    /// A fresh single-use token for a form of `campaign`.
    pub fn issue(&self, campaign: &str) -> String {
        let token = random_token();
        let now = Instant::now();
        let mut forms = self.forms.lock();
        if forms.len() >= FORMS_MAX {
            forms.retain(|_, (_, issued)| now.duration_since(*issued) < FORM_TTL);
        }
        if forms.len() >= FORMS_MAX {
            if let Some(oldest) = forms
                .iter()
                .min_by_key(|(_, (_, issued))| *issued)
                .map(|(k, _)| k.clone())
            {
                forms.remove(&oldest);
            }
        }
        forms.insert(token.clone(), (campaign.to_owned(), now));
        token
    }

    /// Whether `token` was issued for `campaign`, unexpired and unused; it is used up either way.
    pub fn redeem(&self, campaign: &str, token: &str) -> bool {
        if token.is_empty() {
            return false;
        }
        match self.forms.lock().remove(token) {
            Some((issued_for, issued)) => {
                same_secret(&issued_for, campaign) && issued.elapsed() < FORM_TTL
            }
            None => false,
        }
    }

    pub fn allow_ip(&self, ip: &str) -> Result<(), Limited> {
        count(&self.by_ip, ip, IP_LIMIT, IP_WINDOW)
    }

    pub fn allow_number(&self, number: &str) -> Result<(), Limited> {
        count(&self.by_number, number, NUMBER_LIMIT, NUMBER_WINDOW)
    }
}

/// A fixed window per key: `limit` hits per `window`.
fn count(
    map: &Mutex<HashMap<String, (Instant, u32)>>,
    key: &str,
    limit: u32,
    window: Duration,
) -> Result<(), Limited> {
    let now = Instant::now();
    let mut map = map.lock();
    if map.len() >= TRACKED_MAX && !map.contains_key(key) {
        map.retain(|_, (start, _)| now.duration_since(*start) < window);
        if map.len() >= TRACKED_MAX {
            if let Some(oldest) = map
                .iter()
                .min_by_key(|(_, (start, _))| *start)
                .map(|(k, _)| k.clone())
            {
                map.remove(&oldest);
            }
        }
    }
    let entry = map.entry(key.to_owned()).or_insert((now, 0));
    if now.duration_since(entry.0) >= window {
        *entry = (now, 0);
    }
    if entry.1 >= limit {
        return Err(Limited);
    }
    entry.1 += 1;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_good_once_and_only_for_its_campaign() {
        let guard = Guard::default();
        let token = guard.issue("WG-AAAA");
        assert!(!guard.redeem("WG-AAAA", ""));
        assert!(guard.redeem("WG-AAAA", &token));
        assert!(!guard.redeem("WG-AAAA", &token), "a replay is refused");
        let other = guard.issue("WG-BBBB");
        assert!(!guard.redeem("WG-AAAA", &other));
    }

    #[test]
    fn limits_count_per_key_and_the_maps_stay_bounded() {
        let guard = Guard::default();
        for _ in 0..NUMBER_LIMIT {
            assert_eq!(guard.allow_number("+41790000001"), Ok(()));
        }
        assert_eq!(guard.allow_number("+41790000001"), Err(Limited));
        assert_eq!(guard.allow_number("+41790000002"), Ok(()));
        for n in 0..(TRACKED_MAX + 50) {
            let _ = guard.allow_ip(&format!("10.0.{}.{}", n / 256, n % 256));
        }
        assert!(guard.by_ip.lock().len() <= TRACKED_MAX);
    }
}
