//! Logging: `RUST_LOG` filters (default `info`); one line per request comes from
//! `http::log_request`.

use std::io::IsTerminal;
use tracing_appender::non_blocking::{NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::EnvFilter;

/// Starts logging to stderr (stdout is where the console email backend prints
/// messages, reset links included: kept apart from the log): `RUST_LOG` filters (default `info`), and
/// `GATEHOUSE_LOG_FORMAT` picks `text` (default, `key=value` lines) or `json` (one JSON
/// object per line, for log collectors).
///
/// Lines are written by a thread of their own, not by the thread that logs: a request's
/// line costs it a copy into a queue instead of a `write` to stderr, which was the
/// largest single cost of logging under load (bench/RESULTS.md). That thread writes
/// whatever has queued in one go and flushes whenever the queue is empty, so a line
/// still reaches stderr at once when gatehouse is not busy. Nothing is dropped: a full
/// queue makes the logger wait, as a slow stderr did before. Keep the returned guard
/// until the process ends: dropping it writes out what is still queued.
pub fn init() -> Result<WorkerGuard, String> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let format = std::env::var("GATEHOUSE_LOG_FORMAT").unwrap_or_default();
    let (writer, guard) = NonBlockingBuilder::default()
        .lossy(false)
        // The queue's slots are allocated up front: the default 128,000 lines cost 4 MiB
        // of resident memory at rest; 8,192 hold half a second of `me` at full load.
        .buffered_lines_limit(8_192)
        .thread_name("gatehouse-log")
        .finish(std::io::BufWriter::new(std::io::stderr()));
    // try_init: tests start many applications in one process; the first wins.
    match format.trim() {
        "" | "text" => {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_target(false)
                .with_ansi(std::io::stderr().is_terminal())
                .with_writer(writer)
                .try_init();
        }
        "json" => {
            let _ = tracing_subscriber::fmt()
                .json()
                .flatten_event(true)
                .with_current_span(true)
                .with_span_list(false)
                .with_env_filter(filter)
                .with_target(false)
                .with_writer(writer)
                .try_init();
        }
        other => {
            return Err(format!(
                "invalid GATEHOUSE_LOG_FORMAT {other:?}: expected text or json"
            ))
        }
    }
    Ok(guard)
}

/// For tests: the same filter, written through the test harness's capture, so the log of
/// a failing test is shown with it and a passing test's log is not.
pub fn init_for_tests() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(false)
        .with_test_writer()
        .try_init();
}
