//! The `gatehouse` binary (API.md §1, §8): `migrate`, `createsuperuser`, `changepassword`,
//! configuration errors, and `serve` stopping cleanly on SIGTERM. Each test runs the real
//! binary against the database of a test app, and checks the outcome over HTTP.

use crate::helpers::*;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::process::{Output, Stdio};
use std::time::Duration;

/// How long any one command may take before the test calls it hung.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

async fn run(command: std::process::Command, stdin: Option<&str>) -> Output {
    run_command(command, stdin, COMMAND_TIMEOUT).await
}

fn describe(output: &Output) -> String {
    format!(
        "{}\nstdout: {}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn assert_success(output: &Output) {
    assert_eq!(output.status.code(), Some(0), "{}", describe(output));
}

fn assert_failure(output: &Output) {
    assert!(
        output.status.code().is_some_and(|code| code != 0),
        "expected a non-zero exit: {}",
        describe(output)
    );
}

/// `createsuperuser --username U --email E --password-stdin` with `password` on stdin.
async fn create_superuser(app: &TestApp, username: &str, email: &str, password: &str) -> Output {
    run(
        app.command(&[
            "createsuperuser",
            "--username",
            username,
            "--email",
            email,
            "--password-stdin",
        ]),
        Some(&format!("{password}\n")),
    )
    .await
}

fn login_failed() -> Value {
    json!({"detail": "No active account found with the given credentials"})
}

/// Asserts `username` can sign in with `password` and is a staff superuser.
async fn assert_superuser_signs_in(app: &TestApp, username: &str, email: &str, password: &str) {
    let login = app.login(username, password).await;
    assert_eq!(login.status, StatusCode::OK, "{}", login.body);
    let me = app.me(&login.str("access")).await;
    assert_eq!(me.status, StatusCode::OK, "{}", me.body);
    assert_eq!(
        me.body,
        json!({
            "id": me.body["id"],
            "username": username,
            "email": email,
            "first_name": "",
            "last_name": "",
            "is_active": true,
            "is_staff": true,
            "is_superuser": true,
            "date_joined": me.body["date_joined"],
            "last_login": me.body["last_login"],
        })
    );
    assert!(me.body["id"].is_i64(), "{}", me.body);
    assert!(me.body["date_joined"].is_string(), "{}", me.body);
}

// ---- migrate ----

#[tokio::test]
async fn migrate_exits_0_and_can_run_again() {
    let app = spawn_app().await;
    for _ in 0..2 {
        assert_success(&run(app.command(&["migrate"]), None).await);
    }
    // The database still serves.
    app.register_ok("chandler").await;
    app.login_ok("chandler").await;
}

#[tokio::test]
async fn migrate_creates_a_database_from_nothing() {
    let app = spawn_app().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let database_url = fresh_database_url(&dir).await;
    let mut command = app.command(&["migrate"]);
    command.env("DATABASE_URL", &database_url);
    assert_success(&run(command, None).await);
    let mut command = app.command(&["migrate"]);
    command.env("DATABASE_URL", &database_url);
    assert_success(&run(command, None).await);
}

// ---- createsuperuser ----

#[tokio::test]
async fn createsuperuser_reads_the_password_from_stdin() {
    let app = spawn_app().await;
    let output = create_superuser(&app, "admin", "admin@example.com", STRONG_PASSWORD).await;
    assert_success(&output);
    assert_superuser_signs_in(&app, "admin", "admin@example.com", STRONG_PASSWORD).await;
}

#[tokio::test]
async fn createsuperuser_reads_the_password_from_the_environment() {
    let app = spawn_app().await;
    let mut command = app.command(&[
        "createsuperuser",
        "--username",
        "admin",
        "--email",
        "admin@example.com",
    ]);
    command.env("GATEHOUSE_SUPERUSER_PASSWORD", STRONG_PASSWORD);
    assert_success(&run(command, None).await);
    assert_superuser_signs_in(&app, "admin", "admin@example.com", STRONG_PASSWORD).await;
}

#[tokio::test]
async fn createsuperuser_never_trims_the_password_from_stdin() {
    let app = spawn_app().await;
    let padded = "  spaced-Out-password  ";
    assert_success(&create_superuser(&app, "admin", "admin@example.com", padded).await);
    assert_superuser_signs_in(&app, "admin", "admin@example.com", padded).await;
    let trimmed = app.login("admin", padded.trim()).await;
    assert_eq!(trimmed.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn createsuperuser_with_a_weak_password_fails_and_creates_nothing() {
    let app = spawn_app().await;
    let output = create_superuser(&app, "admin", "admin@example.com", "12345").await;
    assert_failure(&output);
    let login = app.login("admin", "12345").await;
    assert_eq!(login.status, StatusCode::UNAUTHORIZED);
    assert_eq!(login.body, login_failed());
    // Neither the name nor the email was taken.
    let reply = app
        .register("admin", "admin@example.com", STRONG_PASSWORD)
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
}

#[tokio::test]
async fn createsuperuser_with_a_taken_username_fails_in_any_case() {
    let app = spawn_app().await;
    assert_success(&create_superuser(&app, "admin", "admin@example.com", STRONG_PASSWORD).await);
    for (username, email) in [
        ("admin", "other@example.com"),
        ("ADMIN", "another@example.com"),
    ] {
        let output = create_superuser(&app, username, email, "different-Secret-88").await;
        assert_failure(&output);
        let login = app.login(username, "different-Secret-88").await;
        assert_eq!(login.status, StatusCode::UNAUTHORIZED, "{username}");
    }
    // The first superuser is untouched.
    assert_superuser_signs_in(&app, "admin", "admin@example.com", STRONG_PASSWORD).await;
}

#[tokio::test]
async fn createsuperuser_with_a_taken_email_fails() {
    let app = spawn_app().await;
    app.register_ok("chandler").await;
    let output =
        create_superuser(&app, "admin", "CHANDLER@example.com", "different-Secret-88").await;
    assert_failure(&output);
    let login = app.login("admin", "different-Secret-88").await;
    assert_eq!(login.status, StatusCode::UNAUTHORIZED);
}

// ---- changepassword ----

#[tokio::test]
async fn changepassword_swaps_the_password_and_ends_every_session() {
    let app = spawn_app().await;
    let (_, access, refresh) = app.signed_in("chandler").await;
    // Used first, many times over (the server keeps answers per connection, one per
    // core): a change another process commits must reach answers it already gave.
    for _ in 0..64 {
        assert_eq!(app.me(&access).await.status, StatusCode::OK);
    }
    let new = "brand-New-secret-42";
    let output = run(
        app.command(&["changepassword", "chandler", "--password-stdin"]),
        Some(&format!("{new}\n")),
    )
    .await;
    assert_success(&output);

    // Before anything else commits: only the other process has written.
    for _ in 0..64 {
        let me = app.me(&access).await;
        assert_eq!(me.status, StatusCode::UNAUTHORIZED);
        assert_eq!(me.body, access_token_not_valid());
    }
    let old = app.login("chandler", STRONG_PASSWORD).await;
    assert_eq!(old.status, StatusCode::UNAUTHORIZED);
    assert_eq!(old.body, login_failed());
    let fresh = app.login("chandler", new).await;
    assert_eq!(fresh.status, StatusCode::OK, "{}", fresh.body);
    assert_eq!(app.refresh(&refresh).await.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn changepassword_reads_the_password_from_the_environment() {
    let app = spawn_app().await;
    app.register_ok("chandler").await;
    let mut command = app.command(&["changepassword", "chandler"]);
    command.env("GATEHOUSE_SUPERUSER_PASSWORD", "brand-New-secret-42");
    assert_success(&run(command, None).await);
    assert_eq!(
        app.login("chandler", "brand-New-secret-42").await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn changepassword_with_a_weak_password_fails_and_changes_nothing() {
    let app = spawn_app().await;
    let (_, access, _) = app.signed_in("chandler").await;
    let output = run(
        app.command(&["changepassword", "chandler", "--password-stdin"]),
        Some("12345\n"),
    )
    .await;
    assert_failure(&output);
    assert_eq!(
        app.login("chandler", STRONG_PASSWORD).await.status,
        StatusCode::OK
    );
    assert_eq!(app.me(&access).await.status, StatusCode::OK);
}

#[tokio::test]
async fn changepassword_for_an_unknown_user_fails() {
    let app = spawn_app().await;
    let output = run(
        app.command(&["changepassword", "nobody", "--password-stdin"]),
        Some("brand-New-secret-42\n"),
    )
    .await;
    assert_failure(&output);
}

// ---- bad configuration ----

/// Asserts `command` fails with exactly one line on stderr, naming `variable`.
async fn assert_one_line_naming(command: std::process::Command, variable: &str) {
    let output = run(command, None).await;
    assert_failure(&output);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{}", describe(&output));
    assert!(lines[0].contains(variable), "{}", describe(&output));
}

#[tokio::test]
async fn an_unparseable_duration_stops_start_up_naming_the_variable() {
    let app = spawn_app().await;
    for args in [&["migrate"][..], &["serve", "--bind", "127.0.0.1:0"]] {
        let mut command = app.command(args);
        command.env("ACCESS_TOKEN_LIFETIME", "5x");
        assert_one_line_naming(command, "ACCESS_TOKEN_LIFETIME").await;
    }
}

#[tokio::test]
async fn an_unknown_email_backend_stops_start_up_naming_the_variable() {
    let app = spawn_app().await;
    let mut command = app.command(&["serve", "--bind", "127.0.0.1:0"]);
    command.env("EMAIL_BACKEND", "pigeon");
    assert_one_line_naming(command, "EMAIL_BACKEND").await;
}

#[tokio::test]
async fn a_missing_or_malformed_smtp_ca_file_stops_start_up_naming_the_variable() {
    let app = spawn_app().await;
    let not_pem = app.dir.path().join("not.pem");
    std::fs::write(&not_pem, "-----BEGIN CERTIFICATE-----\nnot base64 at all\n").unwrap();
    let missing = app.dir.path().join("missing.pem");
    for path in [&not_pem, &missing] {
        let mut command = app.command(&["serve", "--bind", "127.0.0.1:0"]);
        command
            .env("EMAIL_BACKEND", "smtp")
            .env("SMTP_URL", "smtp://127.0.0.1:1?tls=starttls")
            .env("SMTP_CA_FILE", path);
        assert_one_line_naming(command, "SMTP_CA_FILE").await;
    }
}

#[tokio::test]
async fn an_unsupported_database_url_stops_start_up_naming_the_variable() {
    let app = spawn_app().await;
    let mut command = app.command(&["serve", "--bind", "127.0.0.1:0"]);
    command.env("DATABASE_URL", "mysql://x");
    assert_one_line_naming(command, "DATABASE_URL").await;
}

#[tokio::test]
async fn an_unreachable_database_stops_start_up_naming_the_variable() {
    let app = spawn_app().await;
    let mut command = app.command(&["serve", "--bind", "127.0.0.1:0"]);
    command.env("DATABASE_URL", "postgres://postgres@127.0.0.1:1/nothing");
    assert_one_line_naming(command, "DATABASE_URL").await;
}

#[tokio::test]
async fn a_bad_configuration_also_stops_the_commands() {
    let app = spawn_app().await;
    let mut command = app.command(&[
        "createsuperuser",
        "--username",
        "admin",
        "--email",
        "admin@example.com",
    ]);
    command.env("REFRESH_TOKEN_LIFETIME", "one day");
    command.env("GATEHOUSE_SUPERUSER_PASSWORD", STRONG_PASSWORD);
    assert_one_line_naming(command, "REFRESH_TOKEN_LIFETIME").await;
    let login = app.login("admin", STRONG_PASSWORD).await;
    assert_eq!(login.status, StatusCode::UNAUTHORIZED);
}

// ---- serve ----

/// A port nobody listens on right now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("address")
        .port()
}

#[tokio::test]
async fn serve_listens_on_bind_and_exits_0_on_sigterm() {
    let app = spawn_app().await;
    let port = free_port();
    let address = format!("127.0.0.1:{port}");
    let mut command = tokio::process::Command::from(app.command(&["serve", "--bind", &address]));
    command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = command.spawn().expect("spawn gatehouse serve");
    let health = format!("http://{address}/api/health/");

    let deadline = tokio::time::Instant::now() + COMMAND_TIMEOUT;
    let reply = loop {
        if let Ok(response) = app.client.get(&health).send().await {
            break Reply::read(response).await;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("gatehouse serve exited early: {status}");
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "gatehouse serve never answered on {address}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body, json!({"status": "ok", "database": "ok"}));

    // It serves the same users as the test app: the database is shared.
    app.register_ok("chandler").await;
    let login = app
        .client
        .post(format!("http://{address}/api/login/"))
        .json(&json!({"username": "chandler", "password": STRONG_PASSWORD}))
        .send()
        .await
        .expect("request");
    assert_eq!(login.status(), StatusCode::OK);

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

    // It stopped accepting.
    assert!(app.client.get(&health).send().await.is_err());
}
