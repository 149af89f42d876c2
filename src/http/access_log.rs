//! The access log: one line per request with method, path without its query (a query may
//! carry a token), status, latency, client address, and the user id once a handler knows
//! it. Headers and bodies are never logged: they carry passwords and tokens.
//!
//! Each request runs inside a tracing span named `request` with those fields, so a line
//! logged while handling it (a warning, a library's debug line) says which request it
//! belongs to. The request's own line, at its end, is the span's fields plus `status` and
//! `latency_ms`.
//!
//! That line is written here, by hand, in the very text or JSON tracing-subscriber would
//! write for it (`tests` below compare the two), whenever the log goes to gatehouse's own
//! batched stderr (`telemetry::request_line_format`). Why: formatting that event took
//! 11.6k of the 100.7k instructions of `GET /api/users/me/`, most of it in the general
//! formatter's field visitors and padding; the hand-written line takes 1.6k
//! (bench/RESULTS.md). Under the tests' capture and on a colour terminal the line goes
//! through tracing as before.

use super::client::ClientIp;
use crate::domain::user::{fill_digits, format_timestamp, UserId};
use crate::state::AppState;
use crate::telemetry::{self, LogFormat};
use axum::extract::{ConnectInfo, Request};
use axum::http::{Method, Uri};
use axum::response::Response;
use futures_util::future::Map;
use futures_util::FutureExt;
use std::cell::Cell;
use std::fmt::Write as _;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::task::futures::TaskLocalFuture;
use tracing::instrument::Instrumented;
use tracing::{Instrument, Span};

tokio::task_local! {
    /// The user a handler has identified, for the request's line (`record_user_id`).
    static USER_ID: Cell<Option<i64>>;
}

/// Names the request's user in its line and in the span every line logged while
/// handling it carries. Two copies because the hand-written line cannot read a span's
/// fields back; both are set here, in the request's own task, inside its span (every
/// caller is a handler or an extractor).
pub(crate) fn record_user_id(id: UserId) {
    Span::current().record("user_id", id.0);
    // Outside a request (a test calling a handler directly) there is no line to tell.
    let _ = USER_ID.try_with(|user| user.set(Some(id.0)));
}

/// A request being logged: `begin` before anything else looks at it, `around` the rest
/// of its handling (`around::AroundRoutes::call`).
pub(super) struct RequestLog {
    started: Instant,
    method: Method,
    uri: Uri,
    client: Option<ClientIp>,
    span: Span,
}

impl RequestLog {
    /// Starts the clock and resolves the client's address (`client.rs`), once, handing it
    /// to the rest of the stack in the request's extensions.
    pub(super) fn begin(state: &AppState, request: &mut Request) -> RequestLog {
        let started = Instant::now();
        let client =
            request
                .extensions()
                .get::<ConnectInfo<SocketAddr>>()
                .map(|ConnectInfo(peer)| {
                    ClientIp::resolve(peer.ip(), request.headers(), &state.config.trusted_proxies)
                });
        if let Some(client) = client {
            request.extensions_mut().insert(client);
        }
        let method = request.method().clone();
        // A `Uri`'s clone shares its bytes: no copy of the path.
        let uri = request.uri().clone();
        let span = request_span(&method, uri.path(), client);
        RequestLog {
            started,
            method,
            uri,
            client,
            span,
        }
    }

    /// Runs `handling` inside the request's span, then writes the request's line.
    pub(super) fn around<F: Future<Output = Response>>(self, handling: F) -> Logged<F> {
        let finished = handling.map(finished_in_span as FinishedInSpan);
        Logged {
            handling: USER_ID.scope(Cell::new(None), finished.instrument(self.span.clone())),
            log: self,
        }
    }

    /// Writes the line for `response` unless `RUST_LOG` turned it off.
    fn write_line(&self, response: &Response, finished: Finished) {
        if self.span.is_disabled() || !finished.line_enabled {
            return;
        }
        let line = RequestLine {
            method: &self.method,
            path: self.uri.path(),
            client: self.client,
            user_id: finished.user_id,
            status: response.status().as_u16(),
            latency: self.started.elapsed(),
        };
        match telemetry::request_line_format() {
            Some(format) => telemetry::write_info_line(&line.format(format)),
            None => log_through_tracing(&self.span, &line),
        }
    }
}

/// What the line needs to know that only the request's span and user-id slot can tell.
struct Finished {
    line_enabled: bool,
    user_id: Option<i64>,
}

type FinishedInSpan = fn(Response) -> (Response, Finished);

/// Asked inside the request's span and its user-id slot, as the handling finishes.
/// Whether the line is enabled is asked inside the span, as for the event
/// `log_through_tracing` would log: a `RUST_LOG` directive on the span's fields
/// (`[request{client="10.0.0.5"}]=info`) enables every request's span but only the
/// matching requests' lines.
fn finished_in_span(response: Response) -> (Response, Finished) {
    let finished = Finished {
        line_enabled: tracing::enabled!(tracing::Level::INFO, status, latency_ms),
        user_id: USER_ID.with(Cell::get),
    };
    (response, finished)
}

pin_project_lite::pin_project! {
    /// `RequestLog::around`'s future, written out rather than as an `async fn`: an
    /// `async` block keeps a future it is handed and the future it awaits in separate
    /// places, so each layer of `async` around the request's handling held another copy
    /// of it, and the middleware's future had grown to 5 KiB, allocated and copied per
    /// request (bench/RESULTS.md). Combinators hold one copy.
    pub(super) struct Logged<F> {
        #[pin]
        handling: TaskLocalFuture<Cell<Option<i64>>, Instrumented<Map<F, FinishedInSpan>>>,
        log: RequestLog,
    }
}

impl<F: Future<Output = Response>> Future for Logged<F> {
    type Output = Response;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Response> {
        let this = self.project();
        // Polled again after this, `TaskLocalFuture` panics: the line is written once.
        let (response, finished) = std::task::ready!(this.handling.poll(cx));
        this.log.write_line(&response, finished);
        Poll::Ready(response)
    }
}

/// Without a parent, whatever span might be current: the hand-written line has no room
/// for one.
fn request_span(method: &Method, path: &str, client: Option<ClientIp>) -> Span {
    tracing::info_span!(
        parent: None,
        "request",
        method = %method,
        path,
        client = client.map(|c| c.0.to_string()).as_deref().unwrap_or("-"),
        user_id = tracing::field::Empty,
    )
}

/// The line as an event of the request's span, for whatever subscriber is installed.
fn log_through_tracing(span: &Span, line: &RequestLine) {
    span.in_scope(|| {
        tracing::info!(
            status = line.status,
            latency_ms = line.latency_ms(),
            "request"
        )
    });
}

struct RequestLine<'a> {
    method: &'a Method,
    path: &'a str,
    client: Option<ClientIp>,
    user_id: Option<i64>,
    status: u16,
    latency: Duration,
}

impl RequestLine<'_> {
    /// Milliseconds with two decimals, as text (the log's field has always been a string).
    fn latency_ms(&self) -> String {
        let mut text = String::new();
        push_milliseconds(&mut text, self.latency);
        text
    }

    /// The whole line, newline included, as tracing-subscriber would write it for the
    /// span and event of `log_through_tracing`, at this moment. Written with `push_str`
    /// and `push_decimal` rather than `write!`: the formatting machinery was most of what
    /// this replaced.
    fn format(&self, format: LogFormat) -> Vec<u8> {
        let mut out = String::with_capacity(224);
        let push_client = |out: &mut String| match self.client {
            Some(client) => push_ip(out, client.0),
            None => out.push('-'),
        };
        match format {
            // 2026-11-25T06:03:44.271085Z  INFO request{method=GET path="/api/users/me"
            // client="127.0.0.1" user_id=1}: request status=200 latency_ms="0.72"
            // (the path and the client are Debug-quoted, as tracing records a `&str`).
            LogFormat::Text => {
                push_timestamp(&mut out);
                out.push_str("  INFO request{method=");
                out.push_str(self.method.as_str());
                out.push_str(" path=");
                // (A `String` cannot fail to be written to.)
                let _ = telemetry::write_debug_str(&mut out, self.path);
                out.push_str(" client=\"");
                push_client(&mut out);
                out.push('"');
                if let Some(id) = self.user_id {
                    out.push_str(" user_id=");
                    push_signed(&mut out, id);
                }
                out.push_str("}: request status=");
                push_decimal(&mut out, self.status.into());
                out.push_str(" latency_ms=\"");
                push_milliseconds(&mut out, self.latency);
                out.push_str("\"\n");
            }
            // {"timestamp":"…","level":"INFO","message":"request","status":200,
            // "latency_ms":"0.72","span":{"client":"127.0.0.1","method":"GET",
            // "path":"/api/users/me","user_id":1,"name":"request"}}
            // (span fields sorted by name, then the span's name, as tracing-subscriber
            // keeps them).
            LogFormat::Json => {
                out.push_str("{\"timestamp\":\"");
                push_timestamp(&mut out);
                out.push_str("\",\"level\":\"INFO\",\"message\":\"request\",\"status\":");
                push_decimal(&mut out, self.status.into());
                out.push_str(",\"latency_ms\":\"");
                push_milliseconds(&mut out, self.latency);
                out.push_str("\",\"span\":{\"client\":\"");
                push_client(&mut out);
                out.push_str("\",\"method\":");
                push_json_string(&mut out, self.method.as_str());
                out.push_str(",\"path\":");
                push_json_string(&mut out, self.path);
                if let Some(id) = self.user_id {
                    out.push_str(",\"user_id\":");
                    push_signed(&mut out, id);
                }
                out.push_str(",\"name\":\"request\"}}\n");
            }
        }
        out.into_bytes()
    }
}

/// Now, as tracing-subscriber's default timer writes it: `2026-11-25T06:03:44.271085Z`.
/// The part up to the seconds changes once a second, so each thread keeps it.
fn push_timestamp(out: &mut String) {
    thread_local! {
        static SECOND: std::cell::RefCell<(u64, String)> = const {
            std::cell::RefCell::new((u64::MAX, String::new()))
        };
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    SECOND.with_borrow_mut(|(second, prefix)| {
        if *second != now.as_secs() {
            // `2026-11-25T06:03:44.` from the whole timestamp's first 20 characters.
            let whole = chrono::DateTime::from_timestamp(now.as_secs() as i64, 0)
                .map(|at| format_timestamp(&at))
                .unwrap_or_default();
            *prefix = whole.get(..20).unwrap_or("1970-01-01T00:00:00.").to_owned();
            *second = now.as_secs();
        }
        out.push_str(prefix);
    });
    let mut digits = *b"000000Z";
    fill_digits(&mut digits[..6], now.subsec_micros());
    out.push_str(std::str::from_utf8(&digits).unwrap_or("000000Z"));
}

/// `0.72`: milliseconds, rounded to two decimals.
fn push_milliseconds(out: &mut String, latency: Duration) {
    // Whole hundredths of a millisecond fit a u64 for 5,000 centuries.
    let hundredths = ((latency.as_nanos() + 5_000) / 10_000) as u64;
    push_decimal(out, hundredths / 100);
    out.push('.');
    out.push(char::from(b'0' + (hundredths % 100 / 10) as u8));
    out.push(char::from(b'0' + (hundredths % 10) as u8));
}

fn push_decimal(out: &mut String, value: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    let mut rest = value;
    loop {
        at -= 1;
        digits[at] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    // Only ASCII digits were written.
    out.push_str(std::str::from_utf8(&digits[at..]).unwrap_or_default());
}

fn push_signed(out: &mut String, value: i64) {
    if value < 0 {
        out.push('-');
    }
    push_decimal(out, value.unsigned_abs());
}

fn push_ip(out: &mut String, ip: std::net::IpAddr) {
    match ip {
        std::net::IpAddr::V4(v4) => {
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push('.');
                }
                push_decimal(out, octet.into());
            }
        }
        // Rarer, and its `::` shortening is better left to the standard library.
        std::net::IpAddr::V6(_) => {
            let _ = write!(out, "{ip}");
        }
    }
}

fn push_json_string(out: &mut String, text: &str) {
    // serde_json's escaping, the formatter's own; a `String` cannot fail to serialise.
    out.push_str(&serde_json::to_string(text).unwrap_or_default());
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::sync::{Arc, Mutex};
    use tracing_subscriber::layer::SubscriberExt;

    /// What a subscriber wrote, shared with the test.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
        type Writer = Captured;
        fn make_writer(&'a self) -> Captured {
            self.clone()
        }
    }

    /// The line tracing-subscriber writes for `line` in `format`, with gatehouse's
    /// configuration of it.
    fn through_tracing(line: &RequestLine, format: LogFormat) -> String {
        let captured = Captured::default();
        let subscriber = tracing_subscriber::registry().with(telemetry::format_layer(
            format,
            false,
            captured.clone(),
        ));
        tracing::subscriber::with_default(subscriber, || {
            let span = request_span(line.method, line.path, line.client);
            if let Some(id) = line.user_id {
                span.record("user_id", id);
            }
            log_through_tracing(&span, line);
        });
        let written = captured.0.lock().unwrap().clone();
        String::from_utf8(written).unwrap()
    }

    /// Both lines with their timestamps (the first 27 characters of the text line, the
    /// `timestamp` value of the JSON one) checked for shape and then blanked.
    fn without_timestamp(line: &str, format: LogFormat) -> String {
        let (before, stamp, after) = match format {
            LogFormat::Text => ("", &line[..27], &line[27..]),
            LogFormat::Json => {
                let start = "{\"timestamp\":\"".len();
                (
                    &line[..start],
                    &line[start..start + 27],
                    &line[start + 27..],
                )
            }
        };
        assert!(
            chrono::DateTime::parse_from_rfc3339(stamp).is_ok() && stamp.ends_with('Z'),
            "no timestamp where expected: {line}"
        );
        format!("{before}<timestamp>{after}")
    }

    fn lines() -> Vec<RequestLine<'static>> {
        let client = |ip: &str| Some(ClientIp(ip.parse().unwrap()));
        static POST: Method = Method::POST;
        static GET: Method = Method::GET;
        vec![
            RequestLine {
                method: &GET,
                path: "/api/users/me",
                client: client("127.0.0.1"),
                user_id: Some(1),
                status: 200,
                latency: Duration::from_micros(723),
            },
            RequestLine {
                method: &POST,
                path: "/api/login",
                client: client("2001:db8::7"),
                user_id: None,
                status: 401,
                latency: Duration::from_nanos(12_345_678),
            },
            // What hyper lets through in a path: percent escapes, a backslash, a quote
            // already escaped by the client.
            RequestLine {
                method: &GET,
                path: "/api/x%22y\\z/%c3%a9",
                client: None,
                user_id: Some(9_007_199_254_740_993),
                status: 404,
                latency: Duration::from_secs(31),
            },
        ]
    }

    #[test]
    fn the_hand_written_line_is_the_one_tracing_subscriber_writes() {
        for format in [LogFormat::Text, LogFormat::Json] {
            for line in lines() {
                let expected = through_tracing(&line, format);
                let written = String::from_utf8(line.format(format)).unwrap();
                assert_eq!(
                    without_timestamp(&written, format),
                    without_timestamp(&expected, format),
                    "{format:?}"
                );
            }
        }
    }

    #[test]
    fn latency_is_rounded_to_hundredths_of_a_millisecond() {
        let at = |latency| {
            RequestLine {
                latency,
                ..lines().remove(0)
            }
            .latency_ms()
        };
        assert_eq!(at(Duration::from_nanos(0)), "0.00");
        assert_eq!(at(Duration::from_nanos(4_999)), "0.00");
        assert_eq!(at(Duration::from_nanos(5_000)), "0.01");
        assert_eq!(at(Duration::from_micros(723)), "0.72");
        assert_eq!(at(Duration::from_millis(1_234)), "1234.00");
    }
}
