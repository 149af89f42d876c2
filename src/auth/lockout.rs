//! Brute-force protection for login (issue #5): when to hold a login attempt back.
//!
//! Failed logins are counted twice: per (account, client) and per account. Past a
//! threshold each count imposes a growing delay (15 s, 30 s, 1 min, … up to the window)
//! after its latest failure; an attempt inside the delay gets 429 with `Retry-After`
//! and its password is not even checked. Counts fade after a quiet window. A successful
//! login clears its client's count and makes the client known to the account; a
//! password reset or change forgets everything about the account.
//!
//! The account-wide count does not hold back a client that has logged in to the account
//! before (a "known client"): an attacker guessing from many addresses slows down
//! everyone new to the account, but cannot keep its owner out from where they usually
//! log in. Nothing is ever locked for good: the worst case is a wait, and a reset ends it.
//!
//! This is policy only; the counts live in the database (`Store::begin_login_attempt`
//! checks and counts in one transaction), so every instance sharing it applies the
//! same limits and parallel guesses cannot slip past a count.

use crate::domain::UserId;
use std::time::Duration;

/// The thresholds (`GATEHOUSE_LOCKOUT_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockoutPolicy {
    /// Failures from one client against one account before its delays start.
    pub per_client: u32,
    /// Failures against one account, from all clients, before new clients are delayed.
    pub per_account: u32,
    /// A count fades after this long without a new failure; also the longest delay.
    pub window: Duration,
}

impl Default for LockoutPolicy {
    fn default() -> Self {
        Self {
            per_client: 5,
            per_account: 20,
            window: Duration::from_secs(15 * 60),
        }
    }
}

/// A stored count of failures and when the latest happened (Unix seconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Failures {
    pub count: u32,
    pub last: i64,
}

/// What the database holds about one login attempt's account and client.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoginRecord {
    pub client: Option<Failures>,
    pub account: Option<Failures>,
    /// The client has logged in to this account before.
    pub known_client: bool,
}

/// The first delay past a threshold; each further failure doubles it, up to the window.
pub const FIRST_DELAY_SECS: i64 = 15;

/// The guard's key for an account: the user's id when the username names one (so every
/// spelling of it counts together), else the username as typed, lower-cased. Both kinds
/// are counted and held back alike, so the guard's answers do not reveal which exist.
pub fn account_key(user: Option<UserId>, typed_username: &str) -> String {
    match user {
        Some(id) => user_key(id),
        None => format!("name:{}", typed_username.to_lowercase()),
    }
}

/// The guard's key for an existing user's account.
pub fn user_key(id: UserId) -> String {
    format!("user:{}", id.0)
}

impl LockoutPolicy {
    /// `Some(seconds)` to wait when the attempt must be held back, else `None`.
    pub fn hold_back(&self, record: &LoginRecord, now: i64) -> Option<u64> {
        let client_wait = record
            .client
            .and_then(|f| self.wait(f, self.per_client, now));
        let account_wait = if record.known_client {
            None
        } else {
            record
                .account
                .and_then(|f| self.wait(f, self.per_account, now))
        };
        client_wait.max(account_wait)
    }

    /// The count after one more failure: one more than now, or one if it had faded.
    pub fn counted(&self, failures: Option<Failures>, threshold: u32, now: i64) -> u32 {
        match failures {
            Some(f) if !self.faded(f, threshold, now) => f.count.saturating_add(1),
            _ => 1,
        }
    }

    /// The delay a count imposes after its latest failure: none below `threshold`, then
    /// `FIRST_DELAY_SECS` doubling with each further failure, capped at the window.
    fn delay(&self, count: u32, threshold: u32) -> i64 {
        if count < threshold {
            return 0;
        }
        let excess = (count - threshold).min(30);
        (FIRST_DELAY_SECS << excess).min(self.window.as_secs() as i64)
    }

    /// A count fades once its delay is over and a whole window has passed on top without
    /// a failure (so reaching the longest delay does not start the count again).
    fn faded(&self, failures: Failures, threshold: u32, now: i64) -> bool {
        let quiet = self.delay(failures.count, threshold) + self.window.as_secs() as i64;
        now >= failures.last.saturating_add(quiet)
    }

    fn wait(&self, failures: Failures, threshold: u32, now: i64) -> Option<u64> {
        let until = failures.last + self.delay(failures.count, threshold);
        (until > now).then(|| (until - now) as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_000_000;

    fn failures(count: u32, ago: i64) -> Option<Failures> {
        Some(Failures {
            count,
            last: NOW - ago,
        })
    }

    #[test]
    fn below_the_thresholds_nothing_waits() {
        let policy = LockoutPolicy::default();
        let record = LoginRecord {
            client: failures(4, 0),
            account: failures(19, 0),
            known_client: false,
        };
        assert_eq!(policy.hold_back(&record, NOW), None);
    }

    #[test]
    fn delays_double_with_each_failure_past_the_threshold() {
        let policy = LockoutPolicy::default();
        let wait = |count| {
            policy.hold_back(
                &LoginRecord {
                    client: failures(count, 0),
                    ..Default::default()
                },
                NOW,
            )
        };
        assert_eq!(wait(5), Some(15));
        assert_eq!(wait(6), Some(30));
        assert_eq!(wait(8), Some(120));
        assert_eq!(wait(40), Some(900), "capped at the window");
    }

    #[test]
    fn a_delay_ends_and_a_count_fades_a_window_after_it() {
        let policy = LockoutPolicy::default();
        let record = |count, ago| LoginRecord {
            client: failures(count, ago),
            ..Default::default()
        };
        assert_eq!(policy.hold_back(&record(6, 10), NOW), Some(20));
        assert_eq!(policy.hold_back(&record(6, 30), NOW), None);
        let per_client = policy.per_client;
        // At the longest delay the count does not start over when the delay ends...
        assert_eq!(policy.counted(failures(40, 900), per_client, NOW), 41);
        // ...only a window after it.
        assert_eq!(policy.counted(failures(40, 1800), per_client, NOW), 1);
        assert_eq!(policy.counted(failures(3, 899), per_client, NOW), 4);
        assert_eq!(policy.counted(failures(3, 900), per_client, NOW), 1);
        assert_eq!(policy.counted(None, per_client, NOW), 1);
    }

    #[test]
    fn the_account_count_holds_back_new_clients_but_not_known_ones() {
        let policy = LockoutPolicy::default();
        let mut record = LoginRecord {
            client: None,
            account: failures(22, 1),
            known_client: false,
        };
        assert_eq!(policy.hold_back(&record, NOW), Some(59));
        record.known_client = true;
        assert_eq!(policy.hold_back(&record, NOW), None);
        record.client = failures(6, 0);
        assert_eq!(
            policy.hold_back(&record, NOW),
            Some(30),
            "a known client's own failures still count"
        );
    }

    #[test]
    fn an_existing_user_is_counted_by_id_and_any_other_name_by_its_spelling() {
        assert_eq!(account_key(Some(UserId(7)), "Ross"), "user:7");
        assert_eq!(account_key(None, "No-Such-User"), "name:no-such-user");
    }
}
