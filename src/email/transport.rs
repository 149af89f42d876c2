//! The three ways a message leaves: printed to stdout (`console`), written as one `.eml`
//! file per message (`file`), or sent over SMTP with lettre (`smtp`).

use crate::config::{redact_url as redact, ConfigError, EmailBackend};
use crate::store::NewEmail;
use lettre::message::header::{ContentTransferEncoding, ContentType};
use lettre::message::{Body, Mailbox, Message};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub enum Transport {
    Console,
    File(PathBuf),
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
}

impl Transport {
    pub fn from_config(backend: &EmailBackend) -> Result<Self, ConfigError> {
        Ok(match backend {
            EmailBackend::Console => Transport::Console,
            EmailBackend::File(dir) => Transport::File(dir.clone()),
            EmailBackend::Smtp { url, ca_file } => {
                Transport::Smtp(smtp_from_url(url, ca_file.as_deref())?)
            }
        })
    }

    /// One delivery attempt; the error is a message fit for the log (no secrets).
    pub async fn deliver(&self, from: &Mailbox, email: &NewEmail) -> Result<(), String> {
        match self {
            Transport::Console => {
                // 8bit: the console shows the body as written (quoted-printable would
                // break the long reset link).
                let message = build(from, email, true)?;
                // A terminal wants LF: a `token:` line copied from it must not end in CR.
                let text = String::from_utf8_lossy(&message.formatted()).replace("\r\n", "\n");
                println!("{text}\n{}", "-".repeat(79));
                Ok(())
            }
            Transport::File(dir) => {
                use tokio::io::AsyncWriteExt;
                let message = build(from, email, true)?;
                // A reset link is a live credential: the directory gatehouse makes and
                // each message are for its own user only (a umask can narrow these modes,
                // never widen them). A directory that already exists keeps its mode.
                tokio::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(dir)
                    .await
                    .map_err(|e| format!("cannot create EMAIL_FILE_PATH: {e}"))?;
                let name = format!(
                    "{}-{}.eml",
                    chrono::Utc::now().format("%Y%m%d-%H%M%S%.6f"),
                    &crate::auth::random_hex_id()[..8]
                );
                let write = async {
                    // A new file only: never one already there, nor a symlink's target.
                    let mut file = tokio::fs::OpenOptions::new()
                        .write(true)
                        .create_new(true)
                        .mode(0o600)
                        .open(dir.join(name))
                        .await?;
                    file.write_all(&message.formatted()).await?;
                    // tokio's File writes in the background: done only once flushed.
                    file.flush().await
                };
                write
                    .await
                    .map_err(|e| format!("cannot write to EMAIL_FILE_PATH: {e}"))
            }
            Transport::Smtp(smtp) => {
                let message = build(from, email, false)?;
                smtp.send(message)
                    .await
                    .map(|_| ())
                    .map_err(|e| format!("SMTP: {e}"))
            }
        }
    }
}

fn build(from: &Mailbox, email: &NewEmail, eight_bit: bool) -> Result<Message, String> {
    let to: Mailbox = email
        .recipient
        .parse()
        .map_err(|e| format!("bad recipient: {e}"))?;
    let body = if eight_bit {
        // lettre would quoted-printable-encode any line of 76+ characters, which breaks the
        // reset link for a reader of the console or the .eml file. Our lines are far below
        // SMTP's 998-character limit, so the body goes as 8bit text with CRLF line ends.
        let crlf = email.body.replace("\r\n", "\n").replace('\n', "\r\n");
        Body::dangerous_pre_encoded(crlf.into_bytes(), ContentTransferEncoding::EightBit)
    } else {
        Body::new(email.body.clone())
    };
    Message::builder()
        .from(from.clone())
        .to(to)
        .subject(&email.subject)
        .header(ContentType::TEXT_PLAIN)
        .body(body)
        .map_err(|e| format!("cannot build message: {e}"))
}

/// `SMTP_URL`: `smtp://[user:pass@]host[:port][?tls=starttls|tls]`. `tls=starttls`
/// upgrades a plain connection (port 587 by default) and refuses to go on without TLS,
/// `tls=tls` is implicit TLS (465), and no `tls` is a plain connection for a local relay
/// (25). `smtps://` is implicit TLS (465) too, as that scheme means everywhere else.
/// The server's certificate must chain to a public root, or to one in `ca_file`.
fn smtp_from_url(
    raw: &str,
    ca_file: Option<&Path>,
) -> Result<AsyncSmtpTransport<Tokio1Executor>, ConfigError> {
    let invalid = |why: &str| ConfigError::invalid("SMTP_URL", &redact(raw), why);
    let expected = "expected smtp[s]://[user:pass@]host[:port][?tls=starttls|tls]";
    let url = url::Url::parse(raw).map_err(|_| invalid(expected))?;
    let implicit = match url.scheme() {
        "smtp" => false,
        "smtps" => true,
        _ => return Err(invalid(expected)),
    };
    let host = url.host_str().ok_or_else(|| invalid("no host"))?;
    let tls = url
        .query_pairs()
        .find(|(k, _)| k == "tls")
        .map(|(_, v)| v.into_owned());
    let parameters = || tls_parameters(host, ca_file);
    let plain = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host);
    let builder = match (tls.as_deref(), implicit) {
        (None | Some("none"), false) => plain.port(url.port().unwrap_or(25)),
        (Some("starttls"), false) => plain
            .tls(Tls::Required(parameters()?))
            .port(url.port().unwrap_or(587)),
        (Some("tls"), _) | (None, true) => plain
            .tls(Tls::Wrapper(parameters()?))
            .port(url.port().unwrap_or(465)),
        // Which one was meant is anyone's guess, and a wrong guess either sends reset
        // links in the clear or never delivers: refused at start-up instead.
        (Some("none" | "starttls"), true) => {
            return Err(invalid(
                "smtps:// is implicit TLS; for STARTTLS or plain text use smtp://",
            ))
        }
        (Some(_), _) => return Err(invalid("tls must be starttls or tls")),
    };
    let builder = builder.timeout(Some(Duration::from_secs(10)));
    let builder = if url.username().is_empty() {
        builder
    } else {
        let decode = |s: &str| percent_decode(s);
        builder.credentials(Credentials::new(
            decode(url.username()),
            decode(url.password().unwrap_or("")),
        ))
    };
    Ok(builder.build())
}

/// What the TLS connection checks: the server's name (or address) against a certificate
/// chaining to the public roots lettre carries, plus any in `ca_file`.
fn tls_parameters(host: &str, ca_file: Option<&Path>) -> Result<TlsParameters, ConfigError> {
    let mut builder = TlsParameters::builder(host.to_owned());
    if let Some(path) = ca_file {
        let shown = path.display().to_string();
        let invalid = |why: String| ConfigError::invalid("SMTP_CA_FILE", &shown, why);
        let pem = std::fs::read(path).map_err(|e| invalid(format!("cannot read it: {e}")))?;
        let certificate = Certificate::from_pem(&pem)
            .map_err(|_| invalid("expected PEM certificates".to_owned()))?;
        builder = builder.add_root_certificate(certificate);
    }
    builder
        .build_rustls()
        .map_err(|e| ConfigError::invalid("SMTP_URL", host, format!("cannot set up TLS: {e}")))
}

fn percent_decode(text: &str) -> String {
    url::form_urlencoded::parse(format!("x={}", text.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}
