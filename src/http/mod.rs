//! The HTTP surface: the router, its fallbacks and the middleware around it.
//!
//! Order, outside in: trailing-slash normalisation (it must see the request before
//! routing; `app.rs`); then, in one middleware (`around.rs`), the one-line request
//! log (which also resolves the client's address, `client.rs`; `access_log.rs`), the
//! security headers every response carries, panic → 500 in DRF's shape, and admission
//! (the header-size limit, the `ALLOWED_HOSTS` check and the request deadline); CORS;
//! then the routes, some with a per-client throttle (`throttle.rs`).

pub mod access_log;
pub mod account;
mod around;
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

use crate::state::AppState;
use axum::extract::Request;
use axum::http::{header, HeaderName, HeaderValue, Method};
use axum::middleware;
use axum::routing::{delete, get, post, MethodRouter};
use axum::Router;
use error::ApiError;
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
        .layer(around::AroundRoutesLayer::new(state.clone()))
        .with_state(state)
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
