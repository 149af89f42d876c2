//! Logging: `RUST_LOG` filters (default `info`); one line per request comes from
//! `http::log_request`.

use std::io::IsTerminal;
use tracing_subscriber::EnvFilter;

/// Starts logging to stderr (stdout is where the console email backend prints
/// messages, reset links included: kept apart from the log): `RUST_LOG` filters (default `info`), and
/// `GATEHOUSE_LOG_FORMAT` picks `text` (default, `key=value` lines) or `json` (one JSON
/// object per line, for log collectors).
pub fn init() -> Result<(), String> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let format = std::env::var("GATEHOUSE_LOG_FORMAT").unwrap_or_default();
    // try_init: tests start many applications in one process; the first wins.
    match format.trim() {
        "" | "text" => {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_target(false)
                .with_ansi(std::io::stderr().is_terminal())
                .with_writer(std::io::stderr)
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
                .with_writer(std::io::stderr)
                .try_init();
        }
        other => {
            return Err(format!(
                "invalid GATEHOUSE_LOG_FORMAT {other:?}: expected text or json"
            ))
        }
    }
    Ok(())
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
