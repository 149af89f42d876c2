//! `AppState`: what every handler may use. Cheap to clone (everything behind `Arc`).

use crate::auth::{PasswordHasher, TokenKeys};
use crate::config::Config;
use crate::domain::PasswordPolicy;
use crate::email::OutboxSignal;
use crate::store::Store;
use std::sync::Arc;

#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub tokens: Arc<TokenKeys>,
    pub hasher: PasswordHasher,
    pub policy: Arc<PasswordPolicy>,
    pub config: Arc<Config>,
    /// Wakes the mail worker when a handler queues a message.
    pub outbox: OutboxSignal,
}
