//! Issue #5: the log. One line per request with method, path (no query), status,
//! latency, user id and client address — and never a password, token, reset token, hash
//! or `Authorization` header. This runs the real binary, drives every endpoint through
//! it, then reads everything it printed.

use crate::helpers::*;
use crate::reset::mails_in;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

struct Server {
    child: Child,
    address: String,
    log: std::path::PathBuf,
    client: reqwest::Client,
}

impl Server {
    async fn call(
        &self,
        method: Method,
        path: &str,
        access: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.address));
        if let Some(access) = access {
            request = request.bearer_auth(access);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        Reply::read(request.send().await.expect("request")).await
    }

    async fn post(&self, path: &str, body: Value) -> Reply {
        self.call(Method::POST, path, None, Some(body)).await
    }

    /// Stops the server as a supervisor would (SIGTERM), checks it exited cleanly, and
    /// returns everything it printed.
    fn stop(&mut self) -> String {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        assert!(
            self.child.wait().unwrap().success(),
            "gatehouse failed on SIGTERM"
        );
        std::fs::read_to_string(&self.log).unwrap()
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn gatehouse(dir: &std::path::Path, database_url: &str, format: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_gatehouse"));
    command
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", database_url)
        .env("SECRET_KEY", SECRET_KEY)
        .env("EMAIL_BACKEND", "file")
        .env("EMAIL_FILE_PATH", dir.join("mail"))
        // As talkative as it gets short of trace: every library's debug lines too.
        .env("RUST_LOG", "debug")
        .env("GATEHOUSE_LOG_FORMAT", format);
    command
}

async fn start(dir: &std::path::Path, database_url: &str, format: &str) -> Server {
    start_with(dir, database_url, format, &[]).await
}

async fn start_with(
    dir: &std::path::Path,
    database_url: &str,
    format: &str,
    env: &[(&str, &str)],
) -> Server {
    let port = free_port();
    let log = dir.join("server.log");
    let out = std::fs::File::create(&log).unwrap();
    let child = gatehouse(dir, database_url, format)
        .envs(env.iter().copied())
        .args(["serve", "--bind", &format!("127.0.0.1:{port}")])
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .expect("start gatehouse");
    let server = Server {
        child,
        address: format!("http://127.0.0.1:{port}"),
        log,
        client: reqwest::Client::new(),
    };
    for _ in 0..200 {
        if server
            .client
            .get(format!("{}/api/health/", server.address))
            .send()
            .await
            .is_ok()
        {
            return server;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "gatehouse did not start:\n{}",
        std::fs::read_to_string(&server.log).unwrap()
    );
}

async fn stored_hashes(database_url: &str) -> Vec<String> {
    let query = "SELECT password FROM auth_user";
    with_test_database!(database_url, |conn| sqlx::query_scalar(query)
        .fetch_all(&mut conn)
        .await
        .unwrap())
}

#[tokio::test]
async fn the_text_log_has_a_line_per_request_and_no_secret_of_any_endpoint() {
    let log = drive_every_endpoint("text").await;
    let request_lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains(" request ") || l.ends_with(" request"))
        .collect();
    let login_line = request_lines
        .iter()
        .find(|l| l.contains(r#"path="/api/login""#) && l.contains("status=200"))
        .unwrap_or_else(|| panic!("no login line in:\n{log}"));
    for part in [
        "method=POST",
        r#"client="127.0.0.1""#,
        "latency_ms=",
        "user_id=",
    ] {
        assert!(
            login_line.contains(part),
            "{part} missing from {login_line}"
        );
    }
    assert!(
        request_lines
            .iter()
            .any(|l| l.contains(r#"path="/api/nowhere""#) && l.contains("status=404")),
        "the path is logged without its query:\n{log}"
    );
}

#[tokio::test]
async fn the_json_log_has_a_line_per_request_and_no_secret_of_any_endpoint() {
    let log = drive_every_endpoint("json").await;
    let lines: Vec<Value> = log
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}")))
        .collect();
    let requests: Vec<&Value> = lines.iter().filter(|l| l["message"] == "request").collect();
    let login = requests
        .iter()
        .find(|l| l["span"]["path"] == "/api/login" && l["status"] == 200)
        .unwrap_or_else(|| panic!("no login line in:\n{log}"));
    assert_eq!(login["span"]["method"], "POST");
    assert_eq!(login["span"]["client"], "127.0.0.1");
    assert!(login["span"]["user_id"].is_i64(), "{login}");
    assert!(login["latency_ms"].is_string(), "{login}");
    assert!(requests
        .iter()
        .any(|l| l["span"]["path"] == "/api/nowhere" && l["status"] == 404));
}

/// Lines below warning level are gathered before they are written (`telemetry.rs`): they
/// still reach the log within moments while the server runs, and every one of them, the
/// last included, by the time it has exited.
#[tokio::test]
async fn info_lines_reach_the_log_while_running_and_all_of_them_by_exit() {
    let dir = tempfile::tempdir().unwrap();
    let database_url = fresh_database_url(&dir).await;
    let mut server = start(dir.path(), &database_url, "text").await;
    let reply = server.call(Method::GET, "/api/nowhere/", None, None).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    let logged = || {
        std::fs::read_to_string(&server.log)
            .unwrap()
            .lines()
            .any(|l| l.contains(r#"path="/api/nowhere""#) && l.contains("status=404"))
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    while !logged() {
        assert!(
            std::time::Instant::now() < deadline,
            "the request line was not written while the server ran:\n{}",
            std::fs::read_to_string(&server.log).unwrap()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let log = server.stop();
    // The last info line the server logs. Not necessarily the log's last line: a task in
    // the background (the purge, at start-up) may still log a debug line after it.
    assert!(
        log.lines()
            .any(|l| l.ends_with("INFO every request finished; stopping")),
        "the last lines are missing:\n{log}"
    );
}

/// A line logged while a request is handled names the request: here the warning of a
/// request that ran past its deadline (a login, which always takes a password hash's
/// time, against a deadline of a millisecond).
#[tokio::test]
async fn a_warning_while_handling_a_request_carries_the_requests_context() {
    let dir = tempfile::tempdir().unwrap();
    let database_url = fresh_database_url(&dir).await;
    let mut server = start_with(
        dir.path(),
        &database_url,
        "text",
        &[("GATEHOUSE_REQUEST_TIMEOUT", "1ms")],
    )
    .await;
    let reply = server
        .post(
            "/api/login/",
            json!({"username": "nobody", "password": "not a secret here"}),
        )
        .await;
    assert_eq!(
        reply.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        reply.body
    );
    let log = server.stop();
    assert!(
        log.lines().any(|l| l.contains(r#"WARN request{method=POST path="/api/login" client="127.0.0.1"}: request deadline passed"#)),
        "no warning in the request's context:\n{log}"
    );
}

/// Runs the binary with `GATEHOUSE_LOG_FORMAT=format`, drives every endpoint with secrets
/// in play, checks none of them is in the log, and returns the log.
async fn drive_every_endpoint(format: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let database_url = fresh_database_url(&dir).await;
    let admin_password = "Admin-password-for-the-log-9";
    let mut create = gatehouse(dir.path(), &database_url, format)
        .args([
            "createsuperuser",
            "--username",
            "boss",
            "--email",
            "boss@example.com",
            "--password-stdin",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(create.stdin.take().unwrap(), "{admin_password}").unwrap();
    let created = create.wait_with_output().unwrap();
    assert!(created.status.success(), "{created:?}");
    let mut secrets: Vec<String> = vec![admin_password.into(), SECRET_KEY.into()];
    let mut server = start(dir.path(), &database_url, format).await;

    // Sign up, sign in, use and rotate tokens.
    let password = "First-secret-password-1";
    let reply = server
        .post(
            "/api/register/",
            json!({"username": "logged", "email": "logged@example.com", "password": password}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    let wrong = "Wrong-guess-password-2";
    let reply = server
        .post(
            "/api/login/",
            json!({"username": "logged", "password": wrong}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    let login = server
        .post(
            "/api/login/",
            json!({"username": "logged", "password": password}),
        )
        .await;
    let (access, refresh) = (login.str("access"), login.str("refresh"));
    let me = server
        .call(Method::GET, "/api/users/me/", Some(&access), None)
        .await;
    assert_eq!(me.status, StatusCode::OK);
    let user_id = me.body["id"].as_i64().unwrap();
    server
        .call(
            Method::PATCH,
            "/api/users/me/",
            Some(&access),
            Some(json!({"first_name": "Log"})),
        )
        .await;
    server
        .post("/api/token/verify/", json!({"token": access}))
        .await;
    let rotated = server
        .post("/api/token/refresh/", json!({"refresh": refresh}))
        .await;
    let (access2, refresh2) = (rotated.str("access"), rotated.str("refresh"));
    // The spent token again: reuse detection, a warning in the log.
    let reuse = server
        .post("/api/token/refresh/", json!({"refresh": refresh}))
        .await;
    assert_eq!(reuse.status, StatusCode::UNAUTHORIZED);
    let login = server
        .post(
            "/api/login/",
            json!({"username": "logged", "password": password}),
        )
        .await;
    let (access3, refresh3) = (login.str("access"), login.str("refresh"));
    let password2 = "Second-secret-password-3";
    let changed = server
        .call(
            Method::POST,
            "/api/change_password/",
            Some(&access3),
            Some(json!({"old_password": password, "new_password": password2})),
        )
        .await;
    assert_eq!(changed.status, StatusCode::OK, "{}", changed.body);

    // Reset by email: the token travels in the mail, the link's query and the body.
    let reply = server
        .post(
            "/api/reset_password/",
            json!({"email": "logged@example.com"}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    let mut mail = Vec::new();
    for _ in 0..200 {
        mail = mails_in(&dir.path().join("mail"));
        if !mail.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mail = mail.pop().expect("the reset mail");
    let (uid, reset_token) = (mail.uid(), mail.token());
    let page = server
        .client
        .get(format!(
            "{}/api/reset_password/confirm/?uid={uid}&token={reset_token}",
            server.address
        ))
        .header("Accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let password3 = "Third-secret-password-4";
    let confirmed = server
        .post(
            "/api/reset_password/confirm/",
            json!({"uid": uid, "token": reset_token, "new_password": password3}),
        )
        .await;
    assert_eq!(confirmed.status, StatusCode::OK, "{}", confirmed.body);

    // Administration, with passwords in bodies.
    let admin = server
        .post(
            "/api/login/",
            json!({"username": "boss", "password": admin_password}),
        )
        .await;
    let (admin_access, admin_refresh) = (admin.str("access"), admin.str("refresh"));
    let staff_password = "Staff-secret-password-5";
    let created = server
        .call(
            Method::POST,
            "/api/users/",
            Some(&admin_access),
            Some(json!({"username": "made", "email": "made@example.com", "password": staff_password})),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let made = created.body["id"].as_i64().unwrap();
    let staff_password2 = "Staff-secret-password-6";
    server
        .call(
            Method::PATCH,
            &format!("/api/users/{made}/"),
            Some(&admin_access),
            Some(json!({"password": staff_password2})),
        )
        .await;
    server
        .call(
            Method::GET,
            "/api/users/?search=made",
            Some(&admin_access),
            None,
        )
        .await;
    server
        .call(
            Method::GET,
            &format!("/api/users/{user_id}/"),
            Some(&admin_access),
            None,
        )
        .await;
    server
        .call(
            Method::DELETE,
            &format!("/api/users/{made}/"),
            Some(&admin_access),
            None,
        )
        .await;

    // Errors too: a bad token, a missing route, a wrong method, a wrong delete password.
    server
        .call(Method::GET, "/api/users/me/", Some("not.a.token"), None)
        .await;
    server
        .call(
            Method::GET,
            "/api/nowhere/?token=query-secret-7",
            None,
            None,
        )
        .await;
    server.call(Method::PUT, "/api/login/", None, None).await;
    let login = server
        .post(
            "/api/login/",
            json!({"username": "logged", "password": password3}),
        )
        .await;
    let (access4, refresh4) = (login.str("access"), login.str("refresh"));
    server
        .call(
            Method::DELETE,
            "/api/delete_account/",
            Some(&access4),
            Some(json!({"password": wrong})),
        )
        .await;
    server
        .post("/api/logout/", json!({"refresh": refresh4}))
        .await;
    server
        .post("/api/logout/", json!({"refresh": admin_refresh}))
        .await;
    let hashes = stored_hashes(&database_url).await;
    let deleted = server
        .call(
            Method::DELETE,
            "/api/users/me/",
            Some(&access4),
            Some(json!({"password": password3})),
        )
        .await;
    let _ = deleted;

    let log = server.stop();

    secrets.extend(
        [
            password,
            wrong,
            password2,
            password3,
            staff_password,
            staff_password2,
            "query-secret-7",
        ]
        .map(String::from),
    );
    secrets.extend([
        access,
        refresh,
        access2,
        refresh2,
        access3,
        refresh3,
        admin_access,
        access4,
    ]);
    secrets.push(reset_token);
    secrets.extend(hashes.iter().cloned());
    // A token's signature or a hash's digest alone would be as bad as the whole.
    for whole in secrets.clone() {
        if let Some(last) = whole.rsplit(['.', '$']).next().filter(|p| p.len() >= 16) {
            secrets.push(last.to_owned());
        }
    }
    for secret in &secrets {
        assert!(
            !log.contains(secret.as_str()),
            "the log holds a secret ({secret}):\n{log}"
        );
    }
    assert!(
        !log.contains("Bearer"),
        "the log holds an Authorization header:\n{log}"
    );

    log
}
