//! What every request goes through before and after its route, outside in: the request
//! log (`access_log.rs`), the security headers, a panic turned into a bare 500 in DRF's
//! shape (the server keeps serving), admission (the header-size limit, `ALLOWED_HOSTS`
//! and the request deadline). Admission's two checks run as the request arrives, before
//! its span is entered (they log nothing); the route, and with it everything a handler
//! does or logs, runs inside the span and the panic guard, under the deadline.
//!
//! One tower service written out rather than a layer each, or axum's `from_fn`:
//! - `Router::layer` boxes every layer around every route, and axum clones each box per
//!   request: eight boxed layers were 15 % of the instructions of `GET /api/users/me/`,
//!   and merging the last three and the panic layer into one `from_fn` saved another 5 %;
//! - `from_fn` boxes the middleware's `async` future per request, and a `Next` around the
//!   route; that future held the request's handling several times over (one copy per
//!   layer of `async` around it, 5 KiB in all). Here the checks run in `call` and the
//!   rest nests as combinators, which hold one copy (bench/RESULTS.md).

use super::access_log::{Logged, RequestLog};
use super::error::ApiError;
use crate::domain::messages;
use crate::state::AppState;
use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::future::{self, CatchUnwind, Either, Map, Ready};
use futures_util::FutureExt;
use std::any::Any;
use std::convert::Infallible;
use std::panic::AssertUnwindSafe;
use std::task::{Context, Poll};
use tokio::time::error::Elapsed;
use tokio::time::Timeout;
use tower::{Layer, Service};

/// Wraps every route (`http::router`).
#[derive(Clone)]
pub(super) struct AroundRoutesLayer {
    state: AppState,
}

impl AroundRoutesLayer {
    pub(super) fn new(state: AppState) -> Self {
        Self { state }
    }
}

impl<S> Layer<S> for AroundRoutesLayer {
    type Service = AroundRoutes<S>;

    fn layer(&self, route: S) -> AroundRoutes<S> {
        AroundRoutes {
            state: self.state.clone(),
            route,
        }
    }
}

#[derive(Clone)]
pub(super) struct AroundRoutes<S> {
    state: AppState,
    route: S,
}

// The future's layers, inside out: the route's own future; under the deadline
// (`Timeout`); under the panic guard (`CatchUnwind`); turned into a response (`Routed`);
// or instead an answer admission gave at once (`Either`); with the security headers
// (`Answered`); logged (`Logged`, access_log.rs); as tower wants it (`Self::Future`).
// Each step is a named type, and each function a `fn` pointer (the `as fn(..)` casts),
// so that the whole can be written down as `Service::Future` without a box.

/// What comes out of the panic guard: a panic's payload, or what comes out of the
/// deadline: `Elapsed`, or the route's own answer (which cannot fail).
type Handled = Result<Result<Result<Response, Infallible>, Elapsed>, Box<dyn Any + Send>>;
type Routed<F> = Map<CatchUnwind<AssertUnwindSafe<Timeout<F>>>, fn(Handled) -> Response>;
type Answered<F> = Map<Either<Ready<Response>, Routed<F>>, fn(Response) -> Response>;

impl<S> Service<Request> for AroundRoutes<S>
where
    S: Service<Request, Response = Response, Error = Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Map<Logged<Answered<S::Future>>, fn(Response) -> Result<Response, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.route.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request) -> Self::Future {
        let log = RequestLog::begin(&self.state, &mut request);
        let deadline = self.state.config.limits.request_timeout;
        let answer = match refusal(&self.state, &request) {
            Some(refused) => Either::Left(future::ready(refused)),
            // `Router::layer` puts this service after the routing, and a route's `call`
            // only readies its boxed service: the handler, its extractors and its
            // throttle run when the future is polled, inside the guards.
            None => Either::Right(
                AssertUnwindSafe(tokio::time::timeout(deadline, self.route.call(request)))
                    .catch_unwind()
                    .map(handled as fn(Handled) -> Response),
            ),
        };
        let answer = answer.map(with_security_headers as fn(Response) -> Response);
        log.around(answer)
            .map(Ok as fn(Response) -> Result<Response, Infallible>)
    }
}

/// The route's outcome as a response. Runs inside the request's span (`Logged` polls
/// it there), so the warning says which request it was.
fn handled(outcome: Handled) -> Response {
    match outcome {
        Ok(Ok(Ok(response))) => response,
        Ok(Ok(Err(never))) => match never {},
        Ok(Err(_elapsed)) => {
            tracing::warn!("request deadline passed: answering 503");
            ApiError::Unavailable.into_response()
        }
        Err(_panic) => panicked(),
    }
}

/// The panic's message stays out of the answer and the log: it may hold anything.
fn panicked() -> Response {
    ApiError::internal(anyhow::anyhow!("a handler panicked")).into_response()
}

/// The answer for a request that may not reach a route, if it may not. What every
/// request must pass:
/// - all headers together may be `GATEHOUSE_MAX_HEADER_BYTES` at most; past it, 431 in
///   DRF's shape (hyper's own, larger buffer limit in `server.rs` bounds what is read at
///   all);
/// - Django's `ALLOWED_HOSTS`: a request for a host not listed gets 400 (API.md §1).
///
/// The third, the request deadline (`GATEHOUSE_REQUEST_TIMEOUT`), is the `Timeout` in
/// `call`: a request that has not been answered in time (a database that stopped
/// answering, say) gets 503 rather than hanging its client; whatever it was doing is
/// dropped, and with it any open transaction, which rolls back.
fn refusal(state: &AppState, request: &Request) -> Option<Response> {
    let header_bytes: usize = request
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum();
    if header_bytes > state.config.limits.max_header_bytes {
        return Some(
            ApiError::detail(
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                messages::HEADERS_TOO_LARGE,
            )
            .into_response(),
        );
    }
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .or_else(|| request.uri().authority().map(|a| a.as_str()))
        .unwrap_or("");
    if !state.config.allowed_hosts.allows(host) {
        return Some(
            ApiError::detail(StatusCode::BAD_REQUEST, messages::INVALID_HOST).into_response(),
        );
    }
    None
}

/// Headers on every response. Responses carry tokens and user data, so nothing may
/// cache them (Django's `never_cache`); browsers must not guess content types, frame
/// the API, or send its URLs (which may hold a reset token) as a referrer. A page that
/// needs a looser policy (the reset form) sets its own CSP, which is left alone.
fn with_security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
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
    response
}
