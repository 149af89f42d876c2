//! Real SMTP delivery (API.md §1 `EMAIL_BACKEND=smtp`, `SMTP_URL`; §4): gatehouse talks
//! to a minimal SMTP server started by the test on 127.0.0.1, over a plain connection.
//! Reset mail goes through an outbox with retries, so a message accepted while the
//! server is down arrives once it is back, even across a restart of gatehouse.

use crate::helpers::*;
use crate::reset::{confirm, django_uid, request_reset, reset_done, status_ok, Mail};
use reqwest::StatusCode;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// Longer than the first few back-off steps (1 s, 2 s, 4 s) together.
const DELIVERY_DEADLINE: Duration = Duration::from_secs(20);
/// A bound on hanging, far below the SMTP client's 10 s timeout: not a performance target.
const ANSWER_BOUND: Duration = Duration::from_secs(2);
const NEW_PASSWORD: &str = "a-Brand-new-password-9";

// ---- the SMTP sink ----

/// One message as the sink took it: the envelope and the raw DATA (dot-unstuffed).
#[derive(Debug, Clone, Default)]
struct Received {
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
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Sink {
    /// Listens on 127.0.0.1:`port` (0: any free port).
    async fn start(port: u16) -> Sink {
        let listener = TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("bind the SMTP sink");
        let port = listener.local_addr().expect("address").port();
        let received: Arc<Mutex<Vec<Received>>> = Arc::default();
        let store = Arc::clone(&received);
        let task = tokio::spawn(async move {
            loop {
                if let Ok((stream, _)) = listener.accept().await {
                    tokio::spawn(smtp_session(stream, Arc::clone(&store)));
                }
            }
        });
        Sink {
            port,
            received,
            task,
        }
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

async fn read_line(reader: &mut BufReader<tokio::net::tcp::OwnedReadHalf>) -> Option<String> {
    let mut line = Vec::new();
    match reader.read_until(b'\n', &mut line).await {
        Ok(0) | Err(_) => None,
        Ok(_) => Some(String::from_utf8_lossy(&line).into_owned()),
    }
}

async fn smtp_session(stream: TcpStream, store: Arc<Mutex<Vec<Received>>>) -> std::io::Result<()> {
    let (reader, mut writer) = stream.into_split();
    let mut reader = BufReader::new(reader);
    writer.write_all(b"220 sink ESMTP ready\r\n").await?;
    let mut envelope = Received::default();
    while let Some(line) = read_line(&mut reader).await {
        let command = line.trim_end();
        let verb = command
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_ascii_uppercase();
        let reply: &[u8] = match verb.as_str() {
            "EHLO" | "HELO" => b"250 sink\r\n",
            "MAIL" => {
                envelope = Received {
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
                envelope = Received::default();
                b"250 OK\r\n"
            }
            "NOOP" => b"250 OK\r\n",
            "DATA" => {
                writer
                    .write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                    .await?;
                let mut data = String::new();
                loop {
                    let Some(line) = read_line(&mut reader).await else {
                        return Ok(());
                    };
                    if line.trim_end_matches(['\r', '\n']) == "." {
                        break;
                    }
                    data.push_str(line.strip_prefix('.').unwrap_or(&line));
                }
                envelope.data = data;
                store
                    .lock()
                    .expect("sink lock")
                    .push(std::mem::take(&mut envelope));
                b"250 OK queued\r\n"
            }
            "QUIT" => {
                writer.write_all(b"221 Bye\r\n").await?;
                return Ok(());
            }
            _ => b"502 Command not implemented\r\n",
        };
        writer.write_all(reply).await?;
    }
    Ok(())
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
