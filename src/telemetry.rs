//! Logging: `RUST_LOG` filters (default `info`); one line per request comes from
//! `http::access_log`.

mod text_fields;

pub(crate) use text_fields::write_debug_str;

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex, OnceLock, PoisonError};
use std::time::Duration;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// How long an info line may wait in the batch before it is written.
const FLUSH_EVERY: Duration = Duration::from_millis(20);
/// A batch this large is written at once.
const BATCH_BYTES: usize = 8 * 1024;

/// The log's way to stderr. Lines below warning level are gathered and written together,
/// at most `FLUSH_EVERY` after the first of them, instead of with a `write` each: under
/// `GET /api/users/me/` that one `write` per request line cost about 4 µs of the
/// request's 33 (bench/RESULTS.md). A warning or an error is written at once, after the
/// lines gathered before it, so the order holds. What it costs: if the process is
/// killed (SIGKILL, an abort), up to `FLUSH_EVERY` of info lines are lost; a normal exit
/// writes them (`finish`).
///
/// tracing-appender's non-blocking writer hands every line to a thread of its own, and
/// waking it per line cost as much as the `write` it saved (tried; bench/RESULTS.md):
/// here the flushing thread is woken once per batch.
struct Batch {
    lines: Mutex<Vec<u8>>,
    waiting: Condvar,
}

static BATCH: Batch = Batch {
    lines: Mutex::new(Vec::new()),
    waiting: Condvar::new(),
};

/// Set once nothing may wait any more: the process is exiting (`finish`), or the
/// flushing thread could not be started. Every line is then written at once.
static UNBATCHED: AtomicBool = AtomicBool::new(false);

impl Batch {
    fn add(&self, line: &[u8], at_once: bool) {
        let mut lines = self.lines.lock().unwrap_or_else(PoisonError::into_inner);
        let was_empty = lines.is_empty();
        lines.extend_from_slice(line);
        if at_once || lines.len() >= BATCH_BYTES || UNBATCHED.load(Ordering::Relaxed) {
            write_out(&mut lines);
        } else if was_empty {
            self.waiting.notify_one();
        }
    }

    /// The flushing thread: sleeps until a line waits, lets more gather, writes them.
    fn flush_forever(&self) {
        loop {
            let mut lines = self.lines.lock().unwrap_or_else(PoisonError::into_inner);
            while lines.is_empty() {
                lines = self
                    .waiting
                    .wait(lines)
                    .unwrap_or_else(PoisonError::into_inner);
            }
            drop(lines);
            std::thread::sleep(FLUSH_EVERY);
            flush();
        }
    }
}

/// Called with the batch locked, so lines reach stderr in the order they were logged.
/// An empty batch writes nothing (`write_all` of nothing makes no call).
fn write_out(lines: &mut Vec<u8>) {
    // A log that cannot be written is not worth failing a request for, as with stderr.
    let _ = std::io::stderr().lock().write_all(lines);
    lines.clear();
}

fn flush() {
    write_out(&mut BATCH.lines.lock().unwrap_or_else(PoisonError::into_inner));
}

/// Writes the lines still waiting, and every later one at once: `main` calls it on its
/// way out, while tasks in the background (the outbox, the purge) may still log.
pub fn finish() {
    UNBATCHED.store(true, Ordering::Relaxed);
    flush();
}

/// `MakeWriter` for the batch: one writer per log line, told the line's level.
struct BatchedStderr;

struct LineWriter {
    at_once: bool,
}

impl Write for LineWriter {
    fn write(&mut self, line: &[u8]) -> std::io::Result<usize> {
        BATCH.add(line, self.at_once);
        Ok(line.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for BatchedStderr {
    type Writer = LineWriter;

    fn make_writer(&'a self) -> LineWriter {
        LineWriter { at_once: true }
    }

    fn make_writer_for(&'a self, meta: &tracing::Metadata<'_>) -> LineWriter {
        LineWriter {
            at_once: *meta.level() <= tracing::Level::WARN,
        }
    }
}

fn start_flushing() {
    static STARTED: std::sync::Once = std::sync::Once::new();
    STARTED.call_once(|| {
        let flusher = std::thread::Builder::new()
            .name("log-flush".into())
            .spawn(|| BATCH.flush_forever());
        if flusher.is_err() {
            UNBATCHED.store(true, Ordering::Relaxed);
        }
        // A panic's message comes after the lines logged before it, and a panic that
        // ends the process does not take them with it.
        let report = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            // try_lock: a panic while the batch is being written must not wait for itself.
            if let Ok(mut lines) = BATCH.lines.try_lock() {
                write_out(&mut lines);
            }
            report(info);
        }));
    });
}

/// How the log is written: tracing-subscriber's `key=value` text or one JSON object per
/// line (`GATEHOUSE_LOG_FORMAT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// The formatting layer for `format`, writing to `writer`: `init` passes the batch,
/// `init_for_tests` the test harness's capture and `http::access_log`'s tests a buffer, so
/// the tests compare against the configuration the binary runs with. `ansi` (colours)
/// applies to text only.
pub(crate) fn format_layer<S, W>(
    format: LogFormat,
    ansi: bool,
    writer: W,
) -> Box<dyn Layer<S> + Send + Sync>
where
    S: tracing::Subscriber + for<'span> LookupSpan<'span>,
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    match format {
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .fmt_fields(text_fields::TextFields)
            .with_target(false)
            .with_ansi(ansi)
            .with_writer(writer)
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .with_target(false)
            .with_writer(writer)
            .boxed(),
    }
}

/// Set by `init` when the per-request line may be written without tracing-subscriber's
/// formatter: the log goes to the batch, uncoloured, in this format
/// (`http::access_log`, which writes the same line the formatter would).
static REQUEST_LINE_FORMAT: OnceLock<LogFormat> = OnceLock::new();

/// The format in which `http::access_log` may write its line itself, if it may: not
/// before `init`, not under the tests' capture, not on a colour terminal.
pub(crate) fn request_line_format() -> Option<LogFormat> {
    REQUEST_LINE_FORMAT.get().copied()
}

/// Adds one finished info line (ending in a newline) to the batch.
pub(crate) fn write_info_line(line: &[u8]) {
    BATCH.add(line, false);
}

/// Starts logging to stderr (stdout is where the console email backend prints
/// messages, reset links included: kept apart from the log): `RUST_LOG` filters (default `info`), and
/// `GATEHOUSE_LOG_FORMAT` picks `text` (default, `key=value` lines) or `json` (one JSON
/// object per line, for log collectors).
pub fn init() -> Result<(), String> {
    let format = match std::env::var("GATEHOUSE_LOG_FORMAT")
        .unwrap_or_default()
        .trim()
    {
        "" | "text" => LogFormat::Text,
        "json" => LogFormat::Json,
        other => {
            return Err(format!(
                "invalid GATEHOUSE_LOG_FORMAT {other:?}: expected text or json"
            ))
        }
    };
    start_flushing();
    // Colour only for text on a terminal: JSON is for machines.
    let ansi = format == LogFormat::Text && std::io::stderr().is_terminal();
    // try_init: tests start many applications in one process; the first wins.
    let installed = tracing_subscriber::registry()
        .with(env_filter())
        .with(format_layer(format, ansi, BatchedStderr))
        .try_init();
    if installed.is_ok() && !ansi {
        let _ = REQUEST_LINE_FORMAT.set(format);
    }
    Ok(())
}

/// For tests: the same filter, written through the test harness's capture, so the log of
/// a failing test is shown with it and a passing test's log is not.
pub fn init_for_tests() {
    let _ = tracing_subscriber::registry()
        .with(env_filter())
        .with(format_layer(
            LogFormat::Text,
            false,
            tracing_subscriber::fmt::TestWriter::new(),
        ))
        .try_init();
}

/// `RUST_LOG`, or `info` when it is unset or not understood.
fn env_filter() -> EnvFilter {
    EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"))
}
