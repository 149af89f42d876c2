//! Real SMTP delivery (API.md §1 `EMAIL_BACKEND=smtp`, `SMTP_URL`; §4): gatehouse talks
//! to a minimal SMTP server started by the test on 127.0.0.1, over a plain connection,
//! STARTTLS or implicit TLS (with a certificate from a private CA the test makes).
//! Reset mail goes through an outbox with retries, so a message accepted while the
//! server is down arrives once it is back, even across a restart of gatehouse.

use crate::helpers::*;
use crate::reset::{confirm, django_uid, request_reset, reset_done, status_ok, Mail};
use reqwest::StatusCode;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

/// Longer than the first few back-off steps (1 s, 2 s, 4 s) together.
const DELIVERY_DEADLINE: Duration = Duration::from_secs(20);
/// A bound on hanging, far below the SMTP client's 10 s timeout: not a performance target.
const ANSWER_BOUND: Duration = Duration::from_secs(2);
const NEW_PASSWORD: &str = "a-Brand-new-password-9";

// ---- the SMTP sink ----

/// One message as the sink took it: the envelope and the raw DATA (dot-unstuffed).
#[derive(Debug, Clone, Default)]
struct Received {
    /// The message came over TLS (STARTTLS or implicit).
    tls: bool,
    from: String,
    to: Vec<String>,
    data: String,
}

impl Received {
    fn mail(&self) -> Mail {
        Mail::parse(&self.data)
    }
}

/// A minimal SMTP server: greets, says 250 to EHLO/HELO/MAIL/RCPT/RSET/NOOP, takes DATA
/// up to the lone ".", says 221 to QUIT, and keeps every message.
struct Sink {
    port: u16,
    received: Arc<Mutex<Vec<Received>>>,
    /// What happened to each connection, in order: "greeted", "failed handshake", and
    /// each command's verb.
    events: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

/// How the sink offers TLS.
#[derive(Clone)]
enum SinkTls {
    None,
    /// Plain first; `STARTTLS` advertised and honoured.
    StartTls(tokio_rustls::TlsAcceptor),
    /// TLS from the first byte (port 465's way).
    Implicit(tokio_rustls::TlsAcceptor),
}

/// Shared by every session of one sink.
#[derive(Clone)]
struct SinkState {
    received: Arc<Mutex<Vec<Received>>>,
    events: Arc<Mutex<Vec<String>>>,
}

impl SinkState {
    fn event(&self, what: &str) {
        self.events.lock().expect("sink lock").push(what.to_owned());
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Sink {
    /// Listens on 127.0.0.1:`port` (0: any free port), plain SMTP.
    async fn start(port: u16) -> Sink {
        Sink::start_with(port, SinkTls::None).await
    }

    async fn start_with(port: u16, tls: SinkTls) -> Sink {
        let listener = TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("bind the SMTP sink");
        let port = listener.local_addr().expect("address").port();
        let state = SinkState {
            received: Arc::default(),
            events: Arc::default(),
        };
        let shared = state.clone();
        let task = tokio::spawn(async move {
            loop {
                if let Ok((stream, _)) = listener.accept().await {
                    let state = shared.clone();
                    let tls = tls.clone();
                    tokio::spawn(async move {
                        match tls {
                            SinkTls::Implicit(acceptor) => match acceptor.accept(stream).await {
                                Ok(stream) => {
                                    smtp_session(Box::new(stream), state, None, true, true).await
                                }
                                Err(_) => state.event("failed handshake"),
                            },
                            SinkTls::StartTls(acceptor) => {
                                smtp_session(Box::new(stream), state, Some(acceptor), false, true)
                                    .await
                            }
                            SinkTls::None => {
                                smtp_session(Box::new(stream), state, None, false, true).await
                            }
                        }
                    });
                }
            }
        });
        Sink {
            port,
            received: state.received,
            events: state.events,
            task,
        }
    }

    fn events(&self) -> Vec<String> {
        self.events.lock().expect("sink lock").clone()
    }

    fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    fn messages(&self) -> Vec<Received> {
        self.received.lock().expect("sink lock").clone()
    }

    /// Waits until `count` messages for `to` have arrived, and returns them.
    async fn wait_for(&self, to: &str, count: usize) -> Vec<Received> {
        let deadline = Instant::now() + DELIVERY_DEADLINE;
        loop {
            let found: Vec<Received> = self
                .messages()
                .into_iter()
                .filter(|m| m.to.iter().any(|r| r == to))
                .collect();
            if found.len() >= count {
                return found;
            }
            assert!(
                Instant::now() < deadline,
                "{count} message(s) to {to} never reached the SMTP server; it has {:?}",
                self.messages()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// The address inside `<…>` of a `MAIL FROM:` or `RCPT TO:` command.
fn angle_address(command: &str) -> String {
    command
        .split_once('<')
        .and_then(|(_, rest)| rest.split_once('>'))
        .map(|(address, _)| address.to_owned())
        .unwrap_or_default()
}

async fn read_line<R: AsyncRead + Unpin>(reader: &mut BufReader<R>) -> Option<String> {
    let mut line = Vec::new();
    match reader.read_until(b'\n', &mut line).await {
        Ok(0) | Err(_) => None,
        Ok(_) => Some(String::from_utf8_lossy(&line).into_owned()),
    }
}

/// A connection, plain or TLS: one type, so that a session can go on over TLS.
trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// One SMTP session. With `starttls`, the sink advertises STARTTLS and, when asked,
/// goes on in a new session over TLS on the same connection.
fn smtp_session(
    stream: Box<dyn Io>,
    state: SinkState,
    starttls: Option<tokio_rustls::TlsAcceptor>,
    over_tls: bool,
    greet: bool,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
    Box::pin(async move {
        let (reader, mut writer) = tokio::io::split(stream);
        let mut reader = BufReader::new(reader);
        // After STARTTLS the client speaks first (EHLO again); otherwise the server greets.
        if greet && writer.write_all(b"220 sink ESMTP ready\r\n").await.is_err() {
            return;
        }
        state.event("greeted");
        let mut envelope = Received {
            tls: over_tls,
            ..Received::default()
        };
        while let Some(line) = read_line(&mut reader).await {
            let command = line.trim_end();
            let verb = command
                .split_whitespace()
                .next()
                .unwrap_or("")
                .to_ascii_uppercase();
            state.event(&verb);
            let reply: &[u8] = match verb.as_str() {
                "EHLO" | "HELO" if starttls.is_some() && !over_tls => {
                    b"250-sink\r\n250 STARTTLS\r\n"
                }
                "EHLO" | "HELO" => b"250 sink\r\n",
                "STARTTLS" if starttls.is_some() && !over_tls => {
                    if writer.write_all(b"220 Go ahead\r\n").await.is_err() {
                        return;
                    }
                    let stream = reader.into_inner().unsplit(writer);
                    let acceptor = starttls.expect("checked above");
                    match acceptor.accept(stream).await {
                        Ok(stream) => {
                            return smtp_session(Box::new(stream), state, None, true, false).await
                        }
                        Err(_) => return state.event("failed handshake"),
                    }
                }
                "MAIL" => {
                    envelope = Received {
                        tls: over_tls,
                        from: angle_address(command),
                        ..Received::default()
                    };
                    b"250 OK\r\n"
                }
                "RCPT" => {
                    envelope.to.push(angle_address(command));
                    b"250 OK\r\n"
                }
                "RSET" => {
                    envelope = Received {
                        tls: over_tls,
                        ..Received::default()
                    };
                    b"250 OK\r\n"
                }
                "NOOP" => b"250 OK\r\n",
                "DATA" => {
                    if writer
                        .write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                        .await
                        .is_err()
                    {
                        return;
                    }
                    let mut data = String::new();
                    loop {
                        let Some(line) = read_line(&mut reader).await else {
                            return;
                        };
                        if line.trim_end_matches(['\r', '\n']) == "." {
                            break;
                        }
                        data.push_str(line.strip_prefix('.').unwrap_or(&line));
                    }
                    envelope.data = data;
                    state
                        .received
                        .lock()
                        .expect("sink lock")
                        .push(std::mem::take(&mut envelope));
                    envelope.tls = over_tls;
                    b"250 OK queued\r\n"
                }
                "QUIT" => {
                    let _ = writer.write_all(b"221 Bye\r\n").await;
                    return;
                }
                _ => b"502 Command not implemented\r\n",
            };
            if writer.write_all(reply).await.is_err() {
                return;
            }
        }
    })
}

/// A server that accepts connections and never says a word: an SMTP client waits on it
/// until its own timeout.
async fn start_silent_server() -> (u16, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("address").port();
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    (port, task)
}

/// A port nobody listens on right now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("address")
        .port()
}

async fn smtp_app(url: &str) -> TestApp {
    spawn_app_with(&[("EMAIL_BACKEND", "smtp"), ("SMTP_URL", url)]).await
}

/// Requests a reset and checks the answer came back at once with the usual 200.
async fn request_quickly(app: &TestApp, email: &str) {
    let started = Instant::now();
    let reply = request_reset(app, email).await;
    let took = started.elapsed();
    assert_eq!((reply.status, reply.body), (StatusCode::OK, status_ok()));
    assert!(
        took < ANSWER_BOUND,
        "POST /api/reset_password/ took {took:?}: the mail must be queued, not sent inline"
    );
}

// ---- delivery ----

#[tokio::test]
async fn a_reset_email_is_delivered_over_smtp() {
    let sink = Sink::start(0).await;
    let app = smtp_app(&sink.url()).await;
    let (id, _, _) = app.signed_in("chandler").await;

    request_quickly(&app, "chandler@example.com").await;

    let received = sink.wait_for("chandler@example.com", 1).await.remove(0);
    assert_eq!(received.from, "webmaster@localhost");
    assert_eq!(received.to, vec!["chandler@example.com".to_owned()]);
    let mail = received.mail();
    let host = app.address.trim_start_matches("http://");
    assert_eq!(mail.header("To"), Some("chandler@example.com"));
    assert_eq!(mail.header("From"), Some("webmaster@localhost"));
    assert_eq!(
        mail.header("Subject"),
        Some(format!("Password reset on {host}").as_str())
    );
    let (uid, token) = (mail.uid(), mail.token());
    assert_eq!(uid, django_uid(id));
    // Short ASCII lines: literal in the raw message, whatever the body's encoding.
    assert!(
        received.data.contains(&format!("\r\nuid: {uid}\r\n")),
        "{}",
        received.data
    );
    assert!(
        received.data.contains(&format!("\r\ntoken: {token}\r\n")),
        "{}",
        received.data
    );
    assert_eq!(
        mail.link(),
        format!("http://{host}/api/reset_password/confirm/?uid={uid}&token={token}")
    );

    let reply = confirm(&app, &uid, &token, NEW_PASSWORD).await;
    assert_eq!((reply.status, reply.body), (StatusCode::OK, reset_done()));
}

#[tokio::test]
async fn every_message_is_delivered_exactly_once() {
    let sink = Sink::start(0).await;
    let app = smtp_app(&sink.url()).await;
    let users = ["chandler", "monica", "ross"];
    for user in users {
        app.register_ok(user).await;
        request_quickly(&app, &format!("{user}@example.com")).await;
    }
    // Queued last, delivered last: once it is in, the others are too.
    app.register_ok("gunther").await;
    request_quickly(&app, "gunther@example.com").await;
    sink.wait_for("gunther@example.com", 1).await;

    let messages = sink.messages();
    assert_eq!(messages.len(), 4, "{messages:?}");
    for user in users {
        let to = format!("{user}@example.com");
        let mine: Vec<&Received> = messages.iter().filter(|m| m.to == [to.clone()]).collect();
        assert_eq!(mine.len(), 1, "{to}: {messages:?}");
        assert_eq!(mine[0].mail().header("To"), Some(to.as_str()));
    }
}

// ---- the server down ----

#[tokio::test]
async fn the_reset_endpoint_does_not_wait_for_a_server_that_never_answers() {
    let (port, _server) = start_silent_server().await;
    let app = smtp_app(&format!("smtp://127.0.0.1:{port}")).await;
    app.register_ok("chandler").await;

    request_quickly(&app, "chandler@example.com").await;
    // And again, while the worker is stuck on the first message.
    request_quickly(&app, "chandler@example.com").await;
    request_quickly(&app, "nobody@example.com").await;
}

#[tokio::test]
async fn a_message_accepted_while_the_server_is_down_is_delivered_when_it_comes_back() {
    let port = free_port();
    let app = smtp_app(&format!("smtp://127.0.0.1:{port}")).await;
    let (id, _, _) = app.signed_in("chandler").await;

    request_quickly(&app, "chandler@example.com").await;
    // Let delivery fail at least once.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let sink = Sink::start(port).await;

    let received = sink.wait_for("chandler@example.com", 1).await.remove(0);
    let mail = received.mail();
    assert_eq!(mail.header("To"), Some("chandler@example.com"));
    assert_eq!(mail.uid(), django_uid(id));
    // One copy only.
    app.register_ok("gunther").await;
    request_quickly(&app, "gunther@example.com").await;
    sink.wait_for("gunther@example.com", 1).await;
    assert_eq!(sink.messages().len(), 2, "{:?}", sink.messages());

    let reply = confirm(&app, &mail.uid(), &mail.token(), NEW_PASSWORD).await;
    assert_eq!((reply.status, reply.body), (StatusCode::OK, reset_done()));
}

/// `gatehouse serve` on a free port of its own, against `app`'s database, sending mail
/// to `smtp_url`; returns once it answers.
async fn start_serve(app: &TestApp, smtp_url: &str) -> (tokio::process::Child, String) {
    let bind = format!("127.0.0.1:{}", free_port());
    let mut command = tokio::process::Command::from(app.command(&["serve", "--bind", &bind]));
    command
        .env("EMAIL_BACKEND", "smtp")
        .env("SMTP_URL", smtp_url)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    let mut child = command.spawn().expect("spawn gatehouse serve");
    let address = format!("http://{bind}");
    let health = format!("{address}/api/health/");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(response) = app.client.get(&health).send().await {
            if response.status() == StatusCode::OK {
                return (child, address);
            }
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("gatehouse serve exited early: {status}");
        }
        assert!(Instant::now() < deadline, "gatehouse serve never answered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn stop_serve(mut child: tokio::process::Child) {
    let pid = child.id().expect("a running child has a pid").to_string();
    let kill = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("run kill");
    assert!(kill.success());
    let status = tokio::time::timeout(Duration::from_secs(20), child.wait())
        .await
        .expect("gatehouse serve stops after SIGTERM")
        .expect("wait");
    assert_eq!(status.code(), Some(0), "{status}");
}

#[tokio::test]
async fn a_restart_of_gatehouse_loses_no_queued_message() {
    // No in-process server here: its outbox worker would take the message.
    let dir = tempfile::tempdir().expect("temp dir");
    let database_url = fresh_database_url(&dir).await;
    let mut app = TestApp {
        address: String::new(),
        client: reqwest::Client::new(),
        database_url,
        dir,
    };
    let port = free_port();
    let smtp_url = format!("smtp://127.0.0.1:{port}");

    let (first, address) = start_serve(&app, &smtp_url).await;
    app.address = address;
    app.register_ok("chandler").await;
    request_quickly(&app, "chandler@example.com").await;
    // Delivery fails at least once, then gatehouse stops with the message undelivered.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop_serve(first).await;

    let sink = Sink::start(port).await;
    let (second, address) = start_serve(&app, &smtp_url).await;
    app.address = address;

    let received = sink.wait_for("chandler@example.com", 1).await.remove(0);
    let mail = received.mail();
    assert_eq!(mail.header("To"), Some("chandler@example.com"));
    let reply = confirm(&app, &mail.uid(), &mail.token(), NEW_PASSWORD).await;
    assert_eq!((reply.status, reply.body), (StatusCode::OK, reset_done()));
    assert_eq!(sink.messages().len(), 1, "{:?}", sink.messages());
    stop_serve(second).await;
}

// ---- TLS (SMTP_URL `?tls=starttls`, `?tls=tls` and `smtps://`, SMTP_CA_FILE) ----

/// A private CA and a certificate it signed for 127.0.0.1, made with the openssl command
/// (Debian's `openssl`) in `dir`. Returns the CA's PEM path and the sink's acceptor.
fn private_ca_and_acceptor(
    dir: &std::path::Path,
) -> (std::path::PathBuf, tokio_rustls::TlsAcceptor) {
    use tokio_rustls::rustls;
    use tokio_rustls::rustls::pki_types::pem::PemObject;
    use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let openssl = |args: &[&str]| {
        let output = std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("run openssl (Debian: apt-get install openssl)");
        assert!(
            output.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    openssl(
        &[
            &["req", "-x509"],
            &ec[..],
            &[
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "2",
                "-subj",
                "/CN=gatehouse test CA",
            ],
        ]
        .concat(),
    );
    openssl(
        &[
            &["req"],
            &ec[..],
            &[
                "-keyout",
                "sink.key",
                "-out",
                "sink.csr",
                "-subj",
                "/CN=127.0.0.1",
            ],
        ]
        .concat(),
    );
    std::fs::write(
        dir.join("sink.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .expect("write sink.ext");
    openssl(&[
        "x509",
        "-req",
        "-in",
        "sink.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "sink.pem",
        "-days",
        "2",
        "-extfile",
        "sink.ext",
    ]);
    let chain = CertificateDer::pem_file_iter(dir.join("sink.pem"))
        .expect("sink.pem")
        .collect::<Result<Vec<_>, _>>()
        .expect("sink.pem certificates");
    let key = PrivateKeyDer::from_pem_file(dir.join("sink.key")).expect("sink.key");
    let config = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("protocol versions")
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .expect("server certificate");
    (
        dir.join("ca.pem"),
        tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config)),
    )
}

async fn tls_app(url: &str, ca_file: Option<&std::path::Path>) -> TestApp {
    let mut settings = vec![
        ("EMAIL_BACKEND", "smtp".to_owned()),
        ("SMTP_URL", url.to_owned()),
    ];
    if let Some(path) = ca_file {
        settings.push(("SMTP_CA_FILE", path.display().to_string()));
    }
    let settings: Vec<(&str, &str)> = settings.iter().map(|(k, v)| (*k, v.as_str())).collect();
    spawn_app_with(&settings).await
}

/// Waits until the sink has recorded `event`.
async fn wait_for_event(sink: &Sink, event: &str) {
    let deadline = Instant::now() + DELIVERY_DEADLINE;
    while !sink.events().iter().any(|e| e == event) {
        assert!(
            Instant::now() < deadline,
            "no {event:?} at the sink: {:?}",
            sink.events()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn starttls_and_implicit_tls_deliver_to_a_server_of_a_private_ca() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (ca, acceptor) = private_ca_and_acceptor(dir.path());
    for (scheme, query, tls) in [
        ("smtp", "?tls=starttls", SinkTls::StartTls(acceptor.clone())),
        ("smtp", "?tls=tls", SinkTls::Implicit(acceptor.clone())),
        // `smtps://` is implicit TLS by itself, as the scheme means everywhere.
        ("smtps", "", SinkTls::Implicit(acceptor.clone())),
        ("smtps", "?tls=tls", SinkTls::Implicit(acceptor.clone())),
    ] {
        let sink = Sink::start_with(0, tls).await;
        let url = format!("{scheme}://127.0.0.1:{}{query}", sink.port);
        let app = tls_app(&url, Some(&ca)).await;
        app.register_ok("monica").await;
        request_quickly(&app, "monica@example.com").await;
        let received = sink.wait_for("monica@example.com", 1).await.remove(0);
        assert!(received.tls, "{url}: the message came in the clear");
        let mail = received.mail();
        let reply = confirm(&app, &mail.uid(), &mail.token(), NEW_PASSWORD).await;
        assert_eq!(
            (reply.status, reply.body),
            (StatusCode::OK, reset_done()),
            "{url}"
        );
    }
}

#[tokio::test]
async fn a_certificate_gatehouse_does_not_trust_gets_no_mail() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (_, acceptor) = private_ca_and_acceptor(dir.path());
    // Without SMTP_CA_FILE the private CA is unknown: the handshake fails, nothing is sent.
    let sink = Sink::start_with(0, SinkTls::Implicit(acceptor)).await;
    let app = tls_app(&format!("smtp://127.0.0.1:{}?tls=tls", sink.port), None).await;
    app.register_ok("ross").await;
    request_quickly(&app, "ross@example.com").await;
    wait_for_event(&sink, "failed handshake").await;
    assert!(sink.messages().is_empty(), "{:?}", sink.messages());
}

#[tokio::test]
async fn starttls_never_falls_back_to_plain_text() {
    // A server that does not offer STARTTLS (or had it stripped on the way): gatehouse
    // hangs up after EHLO instead of sending the token in the clear.
    let sink = Sink::start(0).await;
    let app = tls_app(
        &format!("smtp://127.0.0.1:{}?tls=starttls", sink.port),
        None,
    )
    .await;
    app.register_ok("rachel").await;
    request_quickly(&app, "rachel@example.com").await;
    wait_for_event(&sink, "EHLO").await;
    // The client has read the EHLO answer and gone by the time it opens another
    // connection (the outbox retries after 1 s) or says QUIT.
    let deadline = Instant::now() + DELIVERY_DEADLINE;
    while sink.events().iter().filter(|e| *e == "greeted").count() < 2
        && !sink.events().iter().any(|e| e == "QUIT")
    {
        assert!(Instant::now() < deadline, "{:?}", sink.events());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let events = sink.events();
    assert!(
        !events.iter().any(|e| e == "MAIL" || e == "DATA"),
        "{events:?}"
    );
    assert!(sink.messages().is_empty());
}

#[tokio::test]
async fn smtps_never_speaks_plain_text() {
    // `smtps://` to a server that speaks plain SMTP: gatehouse opens with a TLS hello,
    // gets no TLS answer and hangs up, never saying EHLO, let alone sending the token.
    let sink = Sink::start(0).await;
    let app = tls_app(&format!("smtps://127.0.0.1:{}", sink.port), None).await;
    app.register_ok("phoebe").await;
    request_quickly(&app, "phoebe@example.com").await;
    // Done with the first connection once it opens another (the outbox retries after
    // 1 s), or it has spoken SMTP in plain text.
    let plain_text = |events: &[String]| {
        events
            .iter()
            .any(|e| ["EHLO", "HELO", "MAIL", "DATA"].contains(&e.as_str()))
    };
    let deadline = Instant::now() + DELIVERY_DEADLINE;
    while sink.events().iter().filter(|e| *e == "greeted").count() < 2
        && !plain_text(&sink.events())
    {
        assert!(Instant::now() < deadline, "{:?}", sink.events());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let events = sink.events();
    assert!(!plain_text(&events), "{events:?}");
    assert!(sink.messages().is_empty());
}

#[tokio::test]
async fn an_smtp_url_at_odds_with_itself_or_of_another_scheme_stops_start_up() {
    // `smtps://` with a `tls=` that says plain text or STARTTLS is refused rather than
    // guessed at; so is any scheme but smtp and smtps.
    let app = spawn_app().await;
    for url in [
        "smtps://127.0.0.1:1?tls=none",
        "smtps://127.0.0.1:1?tls=starttls",
        "smtpx://127.0.0.1:1",
        "http://127.0.0.1:1",
    ] {
        let mut command = app.command(&["serve", "--bind", "127.0.0.1:0"]);
        command.env("EMAIL_BACKEND", "smtp").env("SMTP_URL", url);
        let output = run_command(command, None, Duration::from_secs(30)).await;
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            output.status.code().is_some_and(|code| code != 0) && stderr.contains("SMTP_URL"),
            "{url}: {}\nstderr: {stderr}",
            output.status
        );
    }
}
