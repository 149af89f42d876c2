//! The HTTP surface: the router, its fallbacks and the middleware around it.
//!
//! Order, outside in: trailing-slash normalisation (it must see the request before
//! routing; `app.rs`); then, in one middleware (`around_routes`), the one-line request
//! log (which also resolves the client's address, `client.rs`; `access_log.rs`), the
//! security headers every response carries, panic → 500 in DRF's shape, and admission
//! (the header-size limit, the `ALLOWED_HOSTS` check and the request deadline); CORS;
//! then the routes, some with a per-client throttle (`throttle.rs`).

pub mod access_log;
pub mod account;
pub mod auth;
pub mod client;
pub mod docs;
pub mod error;
pub mod extract;
pub mod health;
pub mod openapi;
pub mod reset;
pub mod throttle;
pub mod users;

use crate::domain::messages;
use crate::state::AppState;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, MethodRouter};
use axum::Router;
use error::ApiError;
use futures_util::FutureExt;
use std::panic::AssertUnwindSafe;
use throttle::Scope;
use tower_http::cors::{AllowOrigin, CorsLayer};

/// The API's routes, declared without their trailing slash: `app::Application` wraps the
/// finished router in `NormalizePathLayer`, so `/api/login/` and `/api/login` are one.
/// `extra` lets tests mount routes of their own under the same middleware.
pub fn router(state: AppState, extra: Router<AppState>) -> Router {
    let throttled = |route: MethodRouter<AppState>, scope: Scope| {
        route.route_layer(middleware::from_fn_with_state(
            (state.clone(), scope),
            throttle::throttle,
        ))
    };
    let routes = Router::new()
        .route(
            "/api/register",
            throttled(post(account::register), Scope::Register),
        )
        .route("/api/login", throttled(post(auth::login), Scope::Login))
        .route("/api/logout", post(auth::logout))
        .route(
            "/api/token/refresh",
            throttled(post(auth::token_refresh), Scope::Refresh),
        )
        .route("/api/token/verify", post(auth::token_verify))
        .route("/api/delete_account", delete(account::delete_account))
        .route(
            "/api/reset_password",
            throttled(post(reset::request_reset), Scope::Reset),
        )
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
        .method_not_allowed_fallback(method_not_allowed);
    let routes = match cors(&state.config.cors_allowed_origins) {
        Some(cors) => routes.layer(cors),
        None => routes,
    };
    routes
        .layer(middleware::from_fn_with_state(state.clone(), around_routes))
        .with_state(state)
}

/// What every request goes through before and after its route, outside in: the request
/// log (`access_log.rs`), the security headers, a panic turned into a bare 500 in DRF's
/// shape (the server keeps serving), admission (`admit`).
///
/// One middleware rather than a layer each (tower-http's `CatchPanicLayer`,
/// `SetResponseHeaderLayer`s, a `from_fn` per concern): `Router::layer` boxes every layer
/// around every route, and axum clones each box and boxes each middleware's future per
/// request: eight boxed layers were 15 % of the instructions of `GET /api/users/me/`, and
/// merging the last three middlewares and the panic layer saved another 5 % (93.3k →
/// 89.0k; bench/RESULTS.md).
async fn around_routes(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let log = access_log::RequestLog::begin(&state, &mut request);
    log.around(async {
        let admitted = AssertUnwindSafe(admit(&state, request, next)).catch_unwind();
        let mut response = match admitted.await {
            Ok(response) => response,
            // The panic's message stays out of the answer and the log: it may hold anything.
            Err(_panic) => {
                ApiError::internal(anyhow::anyhow!("a handler panicked")).into_response()
            }
        };
        add_security_headers(response.headers_mut());
        response
    })
    .await
}

/// Headers on every response. Responses carry tokens and user data, so nothing may
/// cache them (Django's `never_cache`); browsers must not guess content types, frame
/// the API, or send its URLs (which may hold a reset token) as a referrer. A page that
/// needs a looser policy (the reset form) sets its own CSP, which is left alone.
fn add_security_headers(headers: &mut HeaderMap) {
    let defaults = [
        (header::CACHE_CONTROL, "no-store"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; frame-ancestors 'none'",
        ),
    ];
    for (name, value) in defaults {
        headers
            .entry(name)
            .or_insert(HeaderValue::from_static(value));
    }
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
}

/// CORS (django-cors-headers' `CORS_ALLOWED_ORIGINS`): off unless origins are listed;
/// then those origins may call every endpoint with a Bearer token. No cookies are
/// involved, so credentials are not allowed.
fn cors(origins: &[String]) -> Option<CorsLayer> {
    if origins.is_empty() {
        // No layer at all: an OPTIONS request then gets the contract's 405 or 404.
        return None;
    }
    let origins: Vec<HeaderValue> = origins
        .iter()
        .filter_map(|origin| HeaderValue::from_str(origin).ok())
        .collect();
    let layer = CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins))
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
            Method::OPTIONS,
        ])
        .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE, header::ACCEPT])
        .expose_headers([
            header::RETRY_AFTER,
            HeaderName::from_static("www-authenticate"),
        ])
        .max_age(std::time::Duration::from_secs(86_400));
    Some(layer)
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

/// What every request must pass before it reaches a route:
/// - all headers together may be `GATEHOUSE_MAX_HEADER_BYTES` at most; past it, 431 in
///   DRF's shape (hyper's own, larger buffer limit in `server.rs` bounds what is read at
///   all);
/// - Django's `ALLOWED_HOSTS`: a request for a host not listed gets 400 (API.md §1);
/// - the request deadline (`GATEHOUSE_REQUEST_TIMEOUT`): a request that has not been
///   answered in time (a database that stopped answering, say) gets 503 rather than
///   hanging its client; whatever it was doing is dropped, and with it any open
///   transaction, which rolls back.
async fn admit(state: &AppState, request: Request, next: Next) -> Response {
    let header_bytes: usize = request
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum();
    if header_bytes > state.config.limits.max_header_bytes {
        return ApiError::detail(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            messages::HEADERS_TOO_LARGE,
        )
        .into_response();
    }
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .or_else(|| request.uri().authority().map(|a| a.as_str()))
        .unwrap_or("");
    if !state.config.allowed_hosts.allows(host) {
        return ApiError::detail(StatusCode::BAD_REQUEST, messages::INVALID_HOST).into_response();
    }
    match tokio::time::timeout(state.config.limits.request_timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            tracing::warn!("request deadline passed: answering 503");
            ApiError::Unavailable.into_response()
        }
    }
}
