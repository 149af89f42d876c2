//! `AppState`: what every handler may use. Cheap to clone: one `Arc`.

use crate::auth::{PasswordHasher, TokenKeys};
use crate::config::Config;
use crate::domain::PasswordPolicy;
use crate::email::OutboxSignal;
use crate::store::Store;
use std::ops::Deref;
use std::sync::Arc;

/// `Services` behind one `Arc`. axum clones the state for every middleware that takes
/// it, several times per request; with each field cloned one by one (a dozen reference
/// counts, the hasher's parameters) those clones and their drops were about 4 % of a
/// `me` request's instructions (bench/RESULTS.md).
#[derive(Clone)]
pub struct AppState(Arc<Services>);

pub struct Services {
    pub store: Arc<dyn Store>,
    pub tokens: Arc<TokenKeys>,
    pub hasher: PasswordHasher,
    pub policy: Arc<PasswordPolicy>,
    pub config: Arc<Config>,
    /// Wakes the mail worker when a handler queues a message.
    pub outbox: OutboxSignal,
}

impl From<Services> for AppState {
    fn from(services: Services) -> Self {
        Self(Arc::new(services))
    }
}

impl Deref for AppState {
    type Target = Services;

    fn deref(&self) -> &Services {
        &self.0
    }
}
