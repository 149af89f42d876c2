//! Email: the outbox worker and the transports (API.md §1 `EMAIL_BACKEND`).
//!
//! Handlers never send mail themselves: they put a message in the outbox table, in the
//! same transaction as whatever the message is about, and wake the worker. The worker
//! delivers it through the configured transport, retrying with back-off while the mail
//! server is unreachable, so a message accepted then is delivered when it comes back, and
//! a restart of gatehouse loses none. Requests therefore take the same time whether or
//! not a message was queued (no user enumeration through timing, API.md §4).

mod reset;
mod transport;

pub use reset::{ResetMail, RESET_EMAILS_PER_ADDRESS_PER_HOUR};
pub use transport::Transport;

use crate::store::{OutboxEmail, Store};
use lettre::message::Mailbox;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// How long a worker holds a claimed message before another may retry it (a worker that
/// died mid-delivery).
const LEASE_SECS: i64 = 60;
const BATCH: i64 = 10;
/// Back-off between attempts: 1 s, 2 s, 4 s, … at most 5 minutes.
const MAX_BACKOFF_SECS: i64 = 300;

/// Wakes the worker when a message is queued, so delivery does not wait for the poll.
#[derive(Clone, Default)]
pub struct OutboxSignal(Arc<Notify>);

impl OutboxSignal {
    pub fn queued(&self) {
        self.0.notify_one();
    }
}

/// The delay before attempt `attempts + 1`.
fn backoff_secs(attempts: i32) -> i64 {
    let exponent = attempts.clamp(1, 20) as u32 - 1;
    (1i64 << exponent).min(MAX_BACKOFF_SECS)
}

/// Turns queued reset requests into messages and delivers queued mail until the process
/// ends. `give_up_after` bounds how long a message is retried: a reset email older than
/// the reset timeout carries a dead token anyway.
pub async fn run_outbox_worker(
    store: Arc<dyn Store>,
    transport: Arc<Transport>,
    from: Mailbox,
    signal: OutboxSignal,
    resets: ResetMail,
    give_up_after: Duration,
) {
    loop {
        let more_requests = resets.fulfil_pending(store.as_ref()).await;
        let now = chrono::Utc::now().timestamp();
        let batch = match store.claim_due_emails(now, LEASE_SECS, BATCH).await {
            Ok(batch) => batch,
            Err(error) => {
                tracing::warn!(error = %error, "outbox: cannot read queued mail");
                Vec::new()
            }
        };
        let full = batch.len() as i64 == BATCH || more_requests;
        for message in batch {
            deliver(store.as_ref(), &transport, &from, message, give_up_after).await;
        }
        if !full {
            tokio::select! {
                _ = signal.0.notified() => {}
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    }
}

async fn deliver(
    store: &dyn Store,
    transport: &Transport,
    from: &Mailbox,
    message: OutboxEmail,
    give_up_after: Duration,
) {
    let now = chrono::Utc::now().timestamp();
    // Logged by id only: the body holds a reset secret.
    match transport.deliver(from, &message.email).await {
        Ok(()) => {
            tracing::info!(
                message_id = message.id,
                attempt = message.attempts,
                "outbox: delivered"
            );
            if let Err(error) = store.mark_email_sent(message.id, now).await {
                tracing::warn!(message_id = message.id, error = %error, "outbox: delivered but not marked sent");
            }
        }
        Err(error) => {
            let expired = now - message.created_at > give_up_after.as_secs() as i64;
            let next = (!expired).then(|| now + backoff_secs(message.attempts));
            tracing::warn!(message_id = message.id, attempt = message.attempts, error = %error, given_up = expired, "outbox: delivery failed");
            if let Err(error) = store.mark_email_failed(message.id, next, &error).await {
                tracing::warn!(message_id = message.id, error = %error, "outbox: cannot record the failure");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn backoff_doubles_up_to_five_minutes() {
        let delays: Vec<i64> = (1..=11).map(super::backoff_secs).collect();
        assert_eq!(delays, vec![1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300]);
    }
}
