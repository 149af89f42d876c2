//! Turning queued password-reset requests into reset tokens and messages (API.md §4).
//!
//! The request handler only queues the address (so every valid address is answered with
//! the same work); the outbox worker calls `fulfil_pending`, which looks the address up,
//! applies the per-address limit, and stores the token and its message in one transaction.

use crate::auth::reset::{encode_uid, new_secret, password_fingerprint};
use crate::config::Config;
use crate::store::{Credentials, NewEmail, NewResetToken, Store};
use std::time::Duration;

/// Reset emails per address per hour; past it, requests still get 200 but send nothing.
pub const RESET_EMAILS_PER_ADDRESS_PER_HOUR: i64 = 3;
const HOUR: i64 = 3600;
const BATCH: i64 = 20;

/// What a reset message needs from the configuration.
#[derive(Clone)]
pub struct ResetMail {
    link_template: String,
    timeout: Duration,
    throttled: bool,
}

impl ResetMail {
    pub fn from_config(config: &Config) -> Self {
        Self {
            link_template: config.password_reset_url.clone(),
            timeout: config.password_reset_timeout,
            throttled: config.rate_limit,
        }
    }

    /// Fulfils up to one batch of queued requests; true when the batch was full (more
    /// may be waiting, so the worker goes on without pausing).
    pub async fn fulfil_pending(&self, store: &dyn Store) -> bool {
        let ids = match store.pending_reset_requests(BATCH).await {
            Ok(ids) => ids,
            Err(error) => {
                tracing::warn!(error = %error, "reset requests: cannot read the queue");
                return false;
            }
        };
        let full = ids.len() as i64 == BATCH;
        let per_address = self
            .throttled
            .then_some((HOUR, RESET_EMAILS_PER_ADDRESS_PER_HOUR));
        let max_age = self.timeout.as_secs() as i64;
        for id in ids {
            let now = chrono::Utc::now().timestamp();
            let make =
                |credentials: &Credentials, base_url: &str| self.make(credentials, base_url, now);
            if let Err(error) = store
                .fulfil_reset_request(id, now, max_age, per_address, &make)
                .await
            {
                tracing::warn!(request_id = id, error = %error, "reset requests: cannot fulfil");
            }
        }
        full
    }

    /// The token and the message for `credentials`, or `None` for users Django's
    /// PasswordResetForm would not email (inactive, or without a usable password).
    fn make(
        &self,
        credentials: &Credentials,
        base_url: &str,
        now: i64,
    ) -> Option<(NewResetToken, NewEmail)> {
        let user = &credentials.user;
        if !user.is_active || credentials.password_hash.starts_with('!') {
            return None;
        }
        let (secret, digest) = new_secret();
        let token = NewResetToken {
            digest,
            user_id: user.id,
            password_fingerprint: password_fingerprint(&credentials.password_hash),
            expires_at: now + self.timeout.as_secs() as i64,
        };
        let site = base_url.split("://").nth(1).unwrap_or(base_url);
        let uid = encode_uid(user.id);
        let link = self
            .link_template
            .replace("{base}", base_url)
            .replace("{uid}", &uid)
            .replace("{token}", &secret);
        // Django's password_reset_email.html, plus the `uid:` and `token:` lines of API.md §4.
        let body = format!(
            "You're receiving this email because you requested a password reset for your user account at {site}.\n\n\
             Please go to the following page and choose a new password:\n\n{link}\n\n\
             Or use these values with POST /api/reset_password/confirm/:\n\
             uid: {uid}\n\
             token: {secret}\n\n\
             Your username, in case you've forgotten: {username}\n\n\
             Thanks for using our site!\n\nThe {site} team\n",
            username = user.username,
        );
        let message = NewEmail {
            recipient: user.email.clone(),
            subject: format!("Password reset on {site}"),
            body,
        };
        Some((token, message))
    }
}
