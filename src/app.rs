//! `Application`: connects the database, applies migrations, binds the listener and
//! serves until SIGTERM or Ctrl-C. `main` and the tests build the very same thing.

use crate::auth::{PasswordHasher, TokenKeys};
use crate::config::{Config, ConfigError};
use crate::domain::PasswordPolicy;
use crate::email::{run_outbox_worker, OutboxSignal, ResetMail, Transport};
use crate::state::{AppState, Services};
use crate::store::{self, Store, StoreError};
use axum::Router;
use secrecy::SecretString;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tower::Layer;
use tower_http::normalize_path::NormalizePathLayer;

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot use the database in DATABASE_URL: {0}")]
    Database(#[from] StoreError),
    #[error("cannot listen on {addr} (GATEHOUSE_BIND / --bind): {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

pub struct Application {
    listener: TcpListener,
    router: Router,
    state: AppState,
    mail: Arc<Transport>,
    from: lettre::message::Mailbox,
}

/// Opens the database, brings its schema up to date and builds the shared state: what
/// `serve` and every command-line command start from.
pub async fn prepare(config: Config) -> Result<AppState, StartupError> {
    let store = store::connect(&config.database_url, config.database_pool_size).await?;
    store.migrate().await?;
    let secret = match &config.secret_key {
        Some(secret) => secret.clone(),
        None => generated_secret_key(store.as_ref()).await?,
    };
    let tokens = TokenKeys::new(
        &secret,
        config.access_token_lifetime,
        config.refresh_token_lifetime,
    );
    Ok(AppState::from(Services {
        store,
        tokens: Arc::new(tokens),
        hasher: PasswordHasher::with_priority(config.hash_concurrency, config.hash_priority)
            .with_wait(config.limits.hash_wait),
        policy: Arc::new(PasswordPolicy::new(config.password_min_length)),
        config: Arc::new(config),
        outbox: OutboxSignal::default(),
    }))
}

/// API.md §1: with no SECRET_KEY, one is generated once and kept in the database, so
/// tokens survive restarts and every instance on the database shares it.
async fn generated_secret_key(store: &dyn Store) -> Result<SecretString, StoreError> {
    let candidate = format!(
        "{}{}",
        crate::auth::random_hex_id(),
        crate::auth::random_hex_id()
    );
    let secret = store.setting_or_insert("secret_key", &candidate).await?;
    tracing::warn!("SECRET_KEY is not set: using a key generated and kept in the database; set SECRET_KEY to share tokens with Django");
    Ok(SecretString::from(secret))
}

impl Application {
    /// Binds `config.bind` (port 0 picks a free port) and prepares everything to serve.
    pub async fn build(config: Config) -> Result<Self, StartupError> {
        Self::build_with_routes(config, Router::new()).await
    }

    /// As `build`, with extra routes mounted under the same middleware (tests use it to
    /// reach failure paths no real route has, such as a panicking handler).
    pub async fn build_with_routes(
        config: Config,
        extra: Router<AppState>,
    ) -> Result<Self, StartupError> {
        let addr = config.bind;
        let mail = Arc::new(Transport::from_config(&config.email_backend)?);
        let from = config.default_from_email.parse().map_err(|_| {
            ConfigError::invalid(
                "DEFAULT_FROM_EMAIL",
                &config.default_from_email,
                "expected an email address",
            )
        })?;
        let state = prepare(config).await?;
        // Before the first request (and not in `prepare`, which the commands share): an
        // unknown user's login costs what most users' does.
        fit_unknown_user_cost(state.store.as_ref(), &state.hasher).await;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| StartupError::Bind { addr, source })?;
        let router = crate::http::router(state.clone(), extra);
        Ok(Self {
            listener,
            router,
            state,
            mail,
            from,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until SIGTERM or Ctrl-C, then stops accepting, lets in-flight requests
    /// finish and returns (API.md §8).
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.run_until(shutdown_signal()).await
    }

    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        tokio::spawn(purge_expired_periodically(self.state.clone()));
        tokio::spawn(fit_unknown_user_cost_periodically(self.state.clone()));
        tokio::spawn(run_outbox_worker(
            self.state.store.clone(),
            self.mail.clone(),
            self.from.clone(),
            self.state.outbox.clone(),
            ResetMail::from_config(&self.state.config),
            self.state.config.password_reset_timeout,
        ));
        tracing::info!(address = %self.local_addr(), "gatehouse listening");
        // Normalisation wraps the whole router: a `Router::layer` would run after routing.
        let app = NormalizePathLayer::trim_trailing_slash().layer(self.router);
        crate::server::serve(self.listener, app, self.state.config.limits, shutdown).await
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
    tracing::info!("shutting down: finishing in-flight requests");
}

/// How many stored hashes are sampled for the cost unknown users are verified at.
const COST_SAMPLE: usize = 64;

/// Samples the stored hashes and lets the hasher verify unknown users at the cost most of
/// them have (`PasswordHasher::fit_unknown_user_cost`). A failure keeps the cost it had.
async fn fit_unknown_user_cost(store: &dyn Store, hasher: &PasswordHasher) {
    match store.sample_password_hashes(COST_SAMPLE).await {
        Ok(sample) => {
            if hasher.fit_unknown_user_cost(&sample) {
                tracing::info!(
                    "unknown users are now verified at the cost most stored hashes have"
                );
            }
        }
        Err(error) => tracing::warn!(error = %error, "sampling the stored password hashes failed"),
    }
}

/// Follows the stored hashes as users' Django hashes are replaced by gatehouse's.
async fn fit_unknown_user_cost_periodically(state: AppState) {
    let mut every = tokio::time::interval(Duration::from_secs(600));
    every.tick().await; // the first tick is now: `build` has just fitted it
    loop {
        every.tick().await;
        fit_unknown_user_cost(state.store.as_ref(), &state.hasher).await;
    }
}

/// Sessions idle past the refresh lifetime can never be used again; drop them hourly.
async fn purge_expired_periodically(state: AppState) {
    let mut every = tokio::time::interval(Duration::from_secs(3600));
    loop {
        every.tick().await;
        let lifetime = state.config.refresh_token_lifetime.as_secs() as i64;
        match state
            .store
            .purge_expired(chrono::Utc::now(), lifetime)
            .await
        {
            Ok(n) if n > 0 => tracing::info!(rows = n, "purged expired sessions and spent tokens"),
            Ok(_) => {}
            Err(error) => tracing::warn!(error = %error, "purging expired sessions failed"),
        }
    }
}
