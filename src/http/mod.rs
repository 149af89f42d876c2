//! The HTTP surface: the router, its fallbacks and the middleware around it.
//!
//! Order, outside in: trailing-slash normalisation (it must see the request before
//! routing), the one-line request log, panic → 500 in DRF's shape, the `ALLOWED_HOSTS`
//! check, then the routes.

pub mod account;
pub mod auth;
pub mod docs;
pub mod error;
pub mod extract;
pub mod health;
pub mod openapi;
pub mod reset;
pub mod users;

use crate::domain::messages;
use crate::state::AppState;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::Router;
use error::ApiError;
use std::net::SocketAddr;
use std::time::Instant;
use tower_http::catch_panic::CatchPanicLayer;
use tracing::Instrument;

/// The API's routes, declared without their trailing slash: `app::Application` wraps the
/// finished router in `NormalizePathLayer`, so `/api/login/` and `/api/login` are one.
/// `extra` lets tests mount routes of their own under the same middleware.
pub fn router(state: AppState, extra: Router<AppState>) -> Router {
    Router::new()
        .route("/api/register", post(account::register))
        .route("/api/login", post(auth::login))
        .route("/api/logout", post(auth::logout))
        .route("/api/token/refresh", post(auth::token_refresh))
        .route("/api/token/verify", post(auth::token_verify))
        .route("/api/delete_account", delete(account::delete_account))
        .route("/api/reset_password", post(reset::request_reset))
        .route(
            "/api/reset_password/confirm",
            get(reset::confirm_page).post(reset::confirm_reset),
        )
        .route("/api/change_password", post(account::change_password))
        .route(
            "/api/users/me",
            get(account::me_get)
                .patch(account::me_patch)
                .put(account::me_put)
                .delete(account::me_delete),
        )
        .route("/api/users", get(users::list).post(users::create))
        .route(
            "/api/users/{id}",
            get(users::retrieve)
                .patch(users::patch)
                .put(users::put)
                .delete(users::destroy),
        )
        .route("/api/health", get(health::health))
        .route("/api/schema", get(openapi::schema))
        .merge(docs::router())
        .merge(extra)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(state.clone(), check_host))
        .layer(CatchPanicLayer::custom(
            |_panic: Box<dyn std::any::Any + Send>| {
                ApiError::internal(anyhow::anyhow!("a handler panicked")).into_response()
            },
        ))
        .layer(middleware::from_fn(log_request))
        .with_state(state)
}

/// The site's base URL for links gatehouse writes (emails, pagination): `PUBLIC_URL`,
/// else `http://` + the request's Host, which `check_host` has already allowed.
pub(crate) fn base_url(state: &AppState, headers: &axum::http::HeaderMap) -> String {
    match &state.config.public_url {
        Some(public) => public.clone(),
        None => {
            let host = headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .unwrap_or("localhost");
            format!("http://{host}")
        }
    }
}

async fn not_found() -> ApiError {
    ApiError::not_found()
}

async fn method_not_allowed(request: Request) -> ApiError {
    ApiError::MethodNotAllowed {
        method: request.method().to_string(),
        allow: None,
    }
}

/// Django's `ALLOWED_HOSTS`: a request for a host not listed gets 400 (API.md §1).
async fn check_host(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .or_else(|| request.uri().authority().map(|a| a.as_str()))
        .unwrap_or("");
    if !state.config.allowed_hosts.allows(host) {
        return ApiError::detail(StatusCode::BAD_REQUEST, messages::INVALID_HOST).into_response();
    }
    next.run(request).await
}

/// One line per request: method, path without its query (a query may carry a token),
/// status, latency, client address, and the user id once a handler knows it.
async fn log_request(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let client = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip().to_string());
    let span = tracing::info_span!(
        "request",
        method = %request.method(),
        path = request.uri().path(),
        client = client.as_deref().unwrap_or("-"),
        user_id = tracing::field::Empty,
    );
    let response = next.run(request).instrument(span.clone()).await;
    let status = response.status().as_u16();
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    span.in_scope(|| tracing::info!(status, latency_ms = format!("{latency_ms:.2}"), "request"));
    response
}
