//! tracing-subscriber's text format for the fields of spans and events, with the common
//! cases written directly.
//!
//! Why by hand: every request opens a `request` span (`http::access_log`), and the
//! formatting layer formats its fields the moment it is created, and again when the
//! user id is recorded, in case a line is logged inside the request. Through
//! `DefaultFields` that was 6.5k of the 86.5k instructions of `GET /api/users/me/`
//! (bench/RESULTS.md): a `write!` per field, through styling wrappers that write nothing
//! on an uncoloured log, and `str`'s `Debug` escaping a character at a time.
//!
//! The text is exactly `DefaultFields`' (the tests below compare the two). Whatever is
//! not written here goes to `DefaultVisitor` itself: a colour terminal, `message`,
//! errors, raw identifiers (`r#type`) and `log.` fields.

use std::fmt;
use tracing::field::{Field, Visit};
use tracing_subscriber::field::{RecordFields, VisitOutput};
use tracing_subscriber::fmt::format::{DefaultFields, DefaultVisitor, Writer};
use tracing_subscriber::fmt::FormatFields;

/// The field formatter of the text log (`telemetry::format_layer`).
#[derive(Debug, Default)]
pub(crate) struct TextFields;

impl<'writer> FormatFields<'writer> for TextFields {
    fn format_fields<R: RecordFields>(&self, writer: Writer<'writer>, fields: R) -> fmt::Result {
        if writer.has_ansi_escapes() {
            return DefaultFields::new().format_fields(writer, fields);
        }
        let mut visitor = TextVisitor {
            writer,
            is_empty: true,
            result: Ok(()),
        };
        fields.record(&mut visitor);
        visitor.result
    }
}

/// `DefaultVisitor` on an uncoloured writer: `name=value`, separated by spaces.
struct TextVisitor<'a> {
    writer: Writer<'a>,
    is_empty: bool,
    result: fmt::Result,
}

impl TextVisitor<'_> {
    /// Whether `DefaultVisitor` writes `name` its own way: the message without its name,
    /// a raw identifier without its `r#`, `log.` fields (the `log` crate's metadata) not
    /// at all.
    fn is_special(name: &str) -> bool {
        name == "message" || name.starts_with("r#") || name.starts_with("log.")
    }

    /// Writes the separating space and `name=`.
    fn begin(&mut self, name: &str) -> fmt::Result {
        if self.is_empty {
            self.is_empty = false;
        } else {
            self.writer.write_char(' ')?;
        }
        self.writer.write_str(name)?;
        self.writer.write_char('=')
    }

    /// Writes one field with `record`, unless an earlier field failed.
    fn field(&mut self, name: &str, record: impl FnOnce(&mut Writer<'_>) -> fmt::Result) {
        if self.result.is_ok() {
            self.result = self.begin(name).and_then(|()| record(&mut self.writer));
        }
    }

    /// Hands one field to `DefaultVisitor`, continuing this visitor's spacing.
    fn by_default(&mut self, field: &Field, record: impl FnOnce(&mut DefaultVisitor<'_>)) {
        if self.result.is_err() {
            return;
        }
        let mut visitor = DefaultVisitor::new(self.writer.by_ref(), self.is_empty);
        record(&mut visitor);
        self.result = visitor.finish();
        // It writes every field but `log.` ones, and pads all but the first it writes.
        if !field.name().starts_with("log.") {
            self.is_empty = false;
        }
    }
}

impl Visit for TextVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if Self::is_special(field.name()) {
            return self.by_default(field, |v| v.record_str(field, value));
        }
        self.field(field.name(), |writer| write_debug_str(writer, value));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        if Self::is_special(field.name()) {
            return self.by_default(field, |v| v.record_i64(field, value));
        }
        self.field(field.name(), |writer| {
            writer.write_str(itoa::Buffer::new().format(value))
        });
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        if Self::is_special(field.name()) {
            return self.by_default(field, |v| v.record_u64(field, value));
        }
        self.field(field.name(), |writer| {
            writer.write_str(itoa::Buffer::new().format(value))
        });
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.by_default(field, |v| v.record_error(field, value));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if Self::is_special(field.name()) {
            return self.by_default(field, |v| v.record_debug(field, value));
        }
        self.field(field.name(), |writer| write!(writer, "{value:?}"));
    }
}

/// A `&str` as `{:?}` writes it, quoted and escaped: the form tracing's text log gives a
/// recorded `&str`, here and in the hand-written request line (`http::access_log`).
/// Text of printable ASCII without quotes or backslashes (a path, an address) is the
/// same quoted, and skips the escaping machinery.
pub(crate) fn write_debug_str(out: &mut impl fmt::Write, text: &str) -> fmt::Result {
    let plain = text
        .bytes()
        .all(|b| (b.is_ascii_graphic() || b == b' ') && b != b'"' && b != b'\\' && b != b'\'');
    if plain {
        out.write_char('"')?;
        out.write_str(text)?;
        out.write_char('"')
    } else {
        write!(out, "{text:?}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use tracing_subscriber::layer::SubscriberExt;

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[derive(Debug)]
    struct Failure(&'static str, Option<Box<Failure>>);

    impl fmt::Display for Failure {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.0)
        }
    }

    impl std::error::Error for Failure {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            self.1
                .as_deref()
                .map(|e| e as &(dyn std::error::Error + 'static))
        }
    }

    /// Spans and events with every kind of field, as gatehouse and its libraries log them.
    fn log_everything() {
        // One oddity each: every rule of `str`'s escaping is checked on its own.
        let paths = [
            "/api/users/me/",
            "/api/users/?search=a b&ordering=-id",
            "/it's",
            "/\"quoted\"",
            "/back\\slash",
            "/caf\u{e9}",
            "/\u{1f600}",
            "/combining\u{301}",
            "/tab\there",
            "/new\nline",
            "/del\u{7f}",
            "/\u{1b}[31mred",
            "/nul\0",
            "",
        ];
        for path in paths {
            let span = tracing::info_span!(
                parent: None,
                "request",
                method = %axum::http::Method::POST,
                path,
                client = "127.0.0.1",
                user_id = tracing::field::Empty,
            );
            span.record("user_id", -42_i64);
            span.in_scope(|| {
                tracing::warn!(error = %"it broke", attempt = 3_u64, "could not {}", "send");
                tracing::info!(message = path, r#type = "raw", ok = true);
                tracing::info!(
                    ratio = 0.5_f64,
                    big = u128::MAX,
                    small = i128::MIN,
                    "{path}"
                );
                let error = Failure("outer", Some(Box::new(Failure("inner", None))));
                tracing::error!(
                    error = &error as &(dyn std::error::Error + 'static),
                    path,
                    "failed"
                );
                tracing::info!(log.target = "sqlx", log.line = 7_u64, rows = 1_u64, "query");
                tracing::info!(log.module_path = "m", "a message, then a log. field");
                // No message: a `log.` field first, which must not start the spacing.
                tracing::info!(log.target = "x", rows = 1_u64);
            });
            let empty = tracing::info_span!(parent: None, "empty", later = tracing::field::Empty);
            empty.record("later", "recorded afterwards");
            empty.in_scope(|| tracing::info!(n = -1_i64));
        }
    }

    /// What the text layer writes for `log_everything`, with `fields` formatting the fields.
    fn written<F>(ansi: bool, fields: F) -> String
    where
        F: for<'w> FormatFields<'w> + Send + Sync + 'static,
    {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::registry().with(
            tracing_subscriber::fmt::layer()
                .with_target(false)
                .with_ansi(ansi)
                .without_time()
                .fmt_fields(fields)
                .with_writer(move || writer.clone()),
        );
        tracing::subscriber::with_default(subscriber, log_everything);
        let bytes = captured.0.lock().unwrap().clone();
        String::from_utf8(bytes).unwrap()
    }

    #[test]
    fn fields_are_written_as_tracing_subscribers_default_writes_them() {
        for ansi in [false, true] {
            let expected = written(ansi, DefaultFields::new());
            assert!(expected.lines().count() >= 30, "{expected}");
            assert!(ansi || expected.contains("user_id=-42"), "{expected}");
            assert_eq!(written(ansi, TextFields), expected, "ansi: {ansi}");
        }
    }

    #[test]
    fn a_plain_path_is_written_without_escaping_and_an_odd_one_escaped() {
        let mut out = String::new();
        write_debug_str(&mut Writer::new(&mut out), "/api/users/?a=b c").unwrap();
        assert_eq!(out, "\"/api/users/?a=b c\"");
        let odd = "it's \"é\"\t\\\u{1b}";
        let mut out = String::new();
        write_debug_str(&mut Writer::new(&mut out), odd).unwrap();
        assert_eq!(out, format!("{odd:?}"));
    }
}
