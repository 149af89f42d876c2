//! Per-client throttles of the unauthenticated endpoints (issue #5): login, register,
//! token refresh and reset request each allow a client address so many requests per
//! period (`GATEHOUSE_THROTTLE_*`, DRF's `30/min` notation); past it, 429 in DRF's shape
//! with `Retry-After`.
//!
//! Counts are fixed windows kept in the database (`gatehouse_throttle`), so instances
//! sharing a database share them. A request is counted before its body is read: a flood
//! of malformed requests costs its sender as much as well-formed ones.

use super::client::ClientIp;
use super::error::ApiError;
use crate::config::Rate;
use crate::state::AppState;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// Which endpoint's budget a request spends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Login,
    Register,
    Refresh,
    Reset,
}

impl Scope {
    fn name(self) -> &'static str {
        match self {
            Scope::Login => "login",
            Scope::Register => "register",
            Scope::Refresh => "refresh",
            Scope::Reset => "reset",
        }
    }

    fn rate(self, state: &AppState) -> Rate {
        let throttles = &state.config.throttles;
        match self {
            Scope::Login => throttles.login,
            Scope::Register => throttles.register,
            Scope::Refresh => throttles.refresh,
            Scope::Reset => throttles.reset,
        }
    }
}

/// Middleware: counts the request against its client's budget for `scope`.
pub async fn throttle(
    State((state, scope)): State<(AppState, Scope)>,
    request: Request,
    next: Next,
) -> Response {
    if state.config.rate_limit {
        let client = request.extensions().get::<ClientIp>().copied();
        if let Some(client) = client {
            if let Err(error) = spend(&state, scope, &client).await {
                return error.into_response();
            }
        }
    }
    next.run(request).await
}

async fn spend(state: &AppState, scope: Scope, client: &ClientIp) -> Result<(), ApiError> {
    let rate = scope.rate(state);
    let window = i64::from(rate.per_secs);
    let now = chrono::Utc::now().timestamp();
    let key = format!("{}:{}", scope.name(), client.throttle_key());
    let (hits, window_start) = state.store.throttle_hit(&key, window, now).await?;
    if hits > i64::from(rate.requests) {
        return Err(ApiError::Throttled {
            retry_after_secs: (window_start + window - now).max(1) as u64,
        });
    }
    Ok(())
}
