//! `GET /api/docs/`: interactive API documentation (Swagger UI) for the description at
//! `/api/schema/`.
//!
//! Everything the page uses is built into the binary and served from here (Swagger UI's
//! two files, from npm's `swagger-ui-dist`; see `assets/swagger-ui/README.md`), so it works
//! with no internet access, and its Content-Security-Policy allows nothing but this origin.

use crate::state::AppState;
use axum::extract::rejection::PathRejection;
use axum::extract::Path;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use super::error::ApiError;

const PAGE: &str = include_str!("../../assets/docs/index.html");
const INIT_JS: &str = include_str!("../../assets/docs/init.js");
const BUNDLE_JS: &str = include_str!("../../assets/swagger-ui/swagger-ui-bundle.js");
const CSS: &str = include_str!("../../assets/swagger-ui/swagger-ui.css");

/// Only this origin: no inline script or style, nothing fetched from elsewhere. `data:`
/// images are Swagger UI's icons, written into its stylesheet.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; font-src 'self'; \
     form-action 'none'; frame-ancestors 'none'; base-uri 'none'";

/// The page and its assets. Declared without trailing slashes, as every route is
/// (`NormalizePathLayer` in `app.rs`).
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/docs", get(page))
        .route("/api/docs/{file}", get(asset))
}

async fn page() -> Response {
    serve(PAGE, "text/html; charset=utf-8", "no-cache")
}

async fn asset(file: Result<Path<String>, PathRejection>) -> Response {
    // The assets change only with the binary; an hour's caching spares the 1.7 MB bundle.
    let cache = "public, max-age=3600";
    // A name that does not percent-decode to UTF-8 (`%FF`) names no file either: the
    // same 404, where axum's own rejection would be a plain-text 400.
    match file.as_ref().map(|Path(file)| file.as_str()) {
        Ok("swagger-ui-bundle.js") => serve(BUNDLE_JS, "text/javascript; charset=utf-8", cache),
        Ok("init.js") => serve(INIT_JS, "text/javascript; charset=utf-8", cache),
        Ok("swagger-ui.css") => serve(CSS, "text/css; charset=utf-8", cache),
        _ => ApiError::not_found().into_response(),
    }
}

fn serve(body: &'static str, content_type: &'static str, cache: &'static str) -> Response {
    let headers = [
        (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
        (header::CACHE_CONTROL, HeaderValue::from_static(cache)),
        (
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        ),
    ];
    // nosniff, DENY and no-referrer come from the router's security headers (`http::mod`).
    (StatusCode::OK, headers, body).into_response()
}
