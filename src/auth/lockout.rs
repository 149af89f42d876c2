//! Brute-force protection for login (issue #5): when to hold a login attempt back.
//!
//! Failed logins are counted twice: per (account, client) and per account. Past a
//! threshold each count imposes a growing delay (1 s, 2 s, 4 s, … up to the window)
//! after its latest failure; an attempt inside the delay gets 429 with `Retry-After`
//! and its password is not even checked. Counts fade after a quiet window, and a
//! successful login or a password reset clears them.
//!
//! The account-wide count does not hold back a client that has logged in to the account
//! before (a "known client"): an attacker guessing from many addresses slows down
//! everyone new to the account, but cannot keep its owner out from where they usually
//! log in. Nothing is ever locked for good: the worst case is a wait, and a reset ends it.
//!
//! This is policy only; the counts live in the database (`Store::login_record`), so
//! every instance sharing it applies the same limits.

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

    /// The wait a count imposes: none below `threshold` or once the window has passed
    /// since the latest failure; else 2^(count − threshold) seconds from it, capped at
    /// the window.
    fn wait(&self, failures: Failures, threshold: u32, now: i64) -> Option<u64> {
        let window = self.window.as_secs() as i64;
        if failures.count < threshold || now - failures.last >= window {
            return None;
        }
        let excess = (failures.count - threshold).min(30);
        let delay = (1_i64 << excess).min(window);
        let until = failures.last + delay;
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
        assert_eq!(wait(5), Some(1));
        assert_eq!(wait(6), Some(2));
        assert_eq!(wait(10), Some(32));
        assert_eq!(wait(40), Some(900), "capped at the window");
    }

    #[test]
    fn a_delay_ends_and_a_count_fades_after_the_window() {
        let policy = LockoutPolicy::default();
        let record = |ago| LoginRecord {
            client: failures(8, ago),
            ..Default::default()
        };
        assert_eq!(policy.hold_back(&record(3), NOW), Some(5));
        assert_eq!(policy.hold_back(&record(8), NOW), None);
        let heavy = LoginRecord {
            client: failures(100, 900),
            ..Default::default()
        };
        assert_eq!(policy.hold_back(&heavy, NOW), None);
    }

    #[test]
    fn the_account_count_holds_back_new_clients_but_not_known_ones() {
        let policy = LockoutPolicy::default();
        let mut record = LoginRecord {
            client: None,
            account: failures(25, 1),
            known_client: false,
        };
        assert_eq!(policy.hold_back(&record, NOW), Some(31));
        record.known_client = true;
        assert_eq!(policy.hold_back(&record, NOW), None);
        record.client = failures(6, 0);
        assert_eq!(
            policy.hold_back(&record, NOW),
            Some(2),
            "a known client's own failures still count"
        );
    }
}
