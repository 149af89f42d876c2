//! Password reset by email (API.md §1 `EMAIL_BACKEND`, `PUBLIC_URL`, `PASSWORD_RESET_URL`,
//! `PASSWORD_RESET_TIMEOUT`, `GATEHOUSE_RATE_LIMIT`; §4): `POST /api/reset_password/`,
//! `POST /api/reset_password/confirm/` and the page the emailed link opens. Mail goes
//! through the file backend (one `.eml` per message in `<tempdir>/mail`).
//!
//! "No mail was sent" is checked with a barrier instead of a sleep: the outbox delivers in
//! the order messages were queued, so once a message queued later has arrived, anything
//! queued before it would have arrived too.

use crate::helpers::*;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::path::Path;
use std::time::{Duration, Instant};

/// How long a queued message may take to arrive.
pub const MAIL_DEADLINE: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(100);

// ---- reading mail ----

/// One email as received: its headers (unfolded) and its body (decoded when it was sent
/// quoted-printable), with LF line ends.
#[derive(Debug, Clone)]
pub struct Mail {
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Mail {
    pub fn parse(raw: &str) -> Mail {
        let raw = raw.replace("\r\n", "\n");
        let (head, body) = raw.split_once("\n\n").unwrap_or((raw.as_str(), ""));
        let mut headers: Vec<(String, String)> = Vec::new();
        for line in head.lines() {
            if line.starts_with([' ', '\t']) {
                if let Some((_, value)) = headers.last_mut() {
                    value.push_str(line);
                }
            } else if let Some((name, value)) = line.split_once(':') {
                headers.push((name.trim().to_owned(), value.to_owned()));
            }
        }
        for (_, value) in headers.iter_mut() {
            *value = value.trim().to_owned();
        }
        let mut mail = Mail {
            headers,
            body: body.to_owned(),
        };
        if mail
            .header("Content-Transfer-Encoding")
            .is_some_and(|e| e.eq_ignore_ascii_case("quoted-printable"))
        {
            mail.body = decode_quoted_printable(&mail.body);
        }
        mail
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The rest of the body line that starts with `prefix`.
    pub fn line(&self, prefix: &str) -> String {
        self.body
            .lines()
            .find_map(|line| line.strip_prefix(prefix))
            .unwrap_or_else(|| panic!("no line {prefix:?} in\n{}", self.body))
            .trim()
            .to_owned()
    }

    pub fn uid(&self) -> String {
        self.line("uid: ")
    }

    pub fn token(&self) -> String {
        self.line("token: ")
    }

    /// The link: the body's only line that is a URL.
    pub fn link(&self) -> String {
        let links: Vec<&str> = self
            .body
            .lines()
            .map(str::trim)
            .filter(|l| l.starts_with("http://") || l.starts_with("https://"))
            .collect();
        assert_eq!(links.len(), 1, "one link in\n{}", self.body);
        links[0].to_owned()
    }
}

fn decode_quoted_printable(text: &str) -> String {
    let joined = text.replace("=\n", "");
    let bytes = joined.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'=' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
            if let Ok(byte) = u8::from_str_radix(hex, 16) {
                out.push(byte);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Every message the file backend has written so far, oldest first.
pub fn mails_in(dir: &Path) -> Vec<Mail> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut paths: Vec<_> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "eml"))
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|p| Mail::parse(&std::fs::read_to_string(p).expect("read .eml")))
        .collect()
}

pub fn all_mail(app: &TestApp) -> Vec<Mail> {
    mails_in(&app.dir.path().join("mail"))
}

/// Waits until `count` messages to `to` have arrived, and returns them, oldest first.
async fn wait_for_mail(app: &TestApp, to: &str, count: usize) -> Vec<Mail> {
    let deadline = Instant::now() + MAIL_DEADLINE;
    loop {
        let mails: Vec<Mail> = all_mail(app)
            .into_iter()
            .filter(|m| m.header("To") == Some(to))
            .collect();
        if mails.len() >= count {
            return mails;
        }
        assert!(
            Instant::now() < deadline,
            "{count} message(s) to {to} never arrived; got {}",
            mails.len()
        );
        tokio::time::sleep(POLL).await;
    }
}

/// Queues a message for a user of its own and waits for it: everything queued before it
/// has been delivered by then. Returns every other message.
async fn mail_after_barrier(app: &TestApp) -> Vec<Mail> {
    app.register_ok("gunther").await;
    let reply = request_reset(app, "gunther@example.com").await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    wait_for_mail(app, "gunther@example.com", 1).await;
    all_mail(app)
        .into_iter()
        .filter(|m| m.header("To") != Some("gunther@example.com"))
        .collect()
}

// ---- requests ----

pub async fn request_reset(app: &TestApp, email: &str) -> Reply {
    app.post_json("/api/reset_password/", json!({"email": email}))
        .await
}

pub async fn confirm(app: &TestApp, uid: &str, token: &str, new_password: &str) -> Reply {
    app.post_json(
        "/api/reset_password/confirm/",
        json!({"uid": uid, "token": token, "new_password": new_password}),
    )
    .await
}

/// Requests a reset for `<username>@example.com` and returns the newest message it got.
pub async fn reset_mail(app: &TestApp, username: &str) -> Mail {
    let to = format!("{username}@example.com");
    let before = all_mail(app)
        .iter()
        .filter(|m| m.header("To") == Some(to.as_str()))
        .count();
    let reply = request_reset(app, &to).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body, status_ok());
    wait_for_mail(app, &to, before + 1)
        .await
        .pop()
        .expect("a message")
}

pub fn status_ok() -> Value {
    json!({"status": "ok"})
}

pub fn reset_done() -> Value {
    json!({"message": "Password reset successful"})
}

pub fn invalid_token() -> Value {
    json!({"token": ["Invalid or expired token."]})
}

/// Django's `urlsafe_base64_encode(force_bytes(pk))`.
pub fn django_uid(id: i64) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(id.to_string())
}

fn host_of(app: &TestApp) -> String {
    app.address.trim_start_matches("http://").to_owned()
}

const NEW_PASSWORD: &str = "a-Brand-new-password-9";

// ---- POST /api/reset_password/ ----

#[tokio::test]
async fn known_and_unknown_emails_get_the_same_200() {
    let app = spawn_app().await;
    app.register_ok("chandler").await;

    let known = request_reset(&app, "chandler@example.com").await;
    let unknown = request_reset(&app, "nobody@example.com").await;

    assert_eq!(known.status, StatusCode::OK);
    assert_eq!(known.body, status_ok());
    assert_eq!(unknown.status, StatusCode::OK);
    assert_eq!(unknown.body, status_ok());
    assert_eq!(known.header("content-type"), unknown.header("content-type"));
    // Only the known address gets mail.
    let mail = mail_after_barrier(&app).await;
    assert_eq!(mail.len(), 1, "{mail:?}");
    assert_eq!(mail[0].header("To"), Some("chandler@example.com"));
}

#[tokio::test]
async fn a_missing_or_invalid_email_is_400_on_email() {
    let app = spawn_app().await;
    for (body, message) in [
        (json!({}), "This field is required."),
        (json!({"email": ""}), "This field may not be blank."),
        (
            json!({"email": "not-an-email"}),
            "Enter a valid email address.",
        ),
        (
            json!({"email": "chandler@"}),
            "Enter a valid email address.",
        ),
    ] {
        let reply = app.post_json("/api/reset_password/", body.clone()).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(reply.body, json!({"email": [message]}), "{body}");
    }
}

#[tokio::test]
async fn the_email_holds_the_link_and_the_uid_and_token_lines() {
    let app = spawn_app().await;
    let (id, _, _) = app.signed_in("chandler").await;

    let mail = reset_mail(&app, "chandler").await;

    let host = host_of(&app);
    assert_eq!(mail.header("To"), Some("chandler@example.com"));
    assert_eq!(mail.header("From"), Some("webmaster@localhost"));
    assert_eq!(
        mail.header("Subject"),
        Some(format!("Password reset on {host}").as_str())
    );
    let (uid, token) = (mail.uid(), mail.token());
    assert_eq!(uid, django_uid(id));
    assert_eq!(
        mail.link(),
        format!("http://{host}/api/reset_password/confirm/?uid={uid}&token={token}")
    );
    // 128 bits at the very least, in URL-safe characters.
    assert!(token.len() >= 22, "{token}");
    assert!(
        token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
        "{token}"
    );
    assert!(!mail.body.contains(STRONG_PASSWORD));
}

#[tokio::test]
async fn the_file_backend_keeps_the_live_link_from_other_users_of_the_machine() {
    // Each .eml holds a token that resets the password: 0600, in the directory gatehouse
    // made (`<tempdir>/mail` did not exist) 0700, not the umask's world-readable 0644/0755.
    use std::os::unix::fs::PermissionsExt;
    let app = spawn_app().await;
    app.register_ok("chandler").await;
    reset_mail(&app, "chandler").await;

    let mode = |path: &Path| {
        std::fs::metadata(path)
            .expect("metadata")
            .permissions()
            .mode()
            & 0o777
    };
    let dir = app.dir.path().join("mail");
    assert_eq!(mode(&dir), 0o700, "{}", dir.display());
    let files: Vec<_> = std::fs::read_dir(&dir)
        .expect("read the mail directory")
        .map(|entry| entry.expect("entry").path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    assert_eq!(mode(&files[0]), 0o600, "{}", files[0].display());
}

#[tokio::test]
async fn the_link_is_built_from_the_requests_host() {
    let app = spawn_app().await;
    app.register_ok("chandler").await;
    let reply = Reply::read(
        app.client
            .post(app.url("/api/reset_password/"))
            .header("host", "localhost:8000")
            .json(&json!({"email": "chandler@example.com"}))
            .send()
            .await
            .expect("request"),
    )
    .await;
    assert_eq!((reply.status, reply.body), (StatusCode::OK, status_ok()));

    let mail = wait_for_mail(&app, "chandler@example.com", 1)
        .await
        .remove(0);
    assert_eq!(
        mail.link(),
        format!(
            "http://localhost:8000/api/reset_password/confirm/?uid={}&token={}",
            mail.uid(),
            mail.token()
        )
    );
    assert_eq!(
        mail.header("Subject"),
        Some("Password reset on localhost:8000")
    );
}

#[tokio::test]
async fn with_public_url_the_link_never_comes_from_the_request() {
    let app = spawn_app_with(&[("PUBLIC_URL", "https://auth.example.com")]).await;
    app.register_ok("chandler").await;
    let reply = Reply::read(
        app.client
            .post(app.url("/api/reset_password/"))
            .header("host", "localhost:8000")
            .json(&json!({"email": "chandler@example.com"}))
            .send()
            .await
            .expect("request"),
    )
    .await;
    assert_eq!((reply.status, reply.body), (StatusCode::OK, status_ok()));

    let mail = wait_for_mail(&app, "chandler@example.com", 1)
        .await
        .remove(0);
    assert_eq!(
        mail.link(),
        format!(
            "https://auth.example.com/api/reset_password/confirm/?uid={}&token={}",
            mail.uid(),
            mail.token()
        )
    );
    assert!(!mail.body.contains("localhost"), "{}", mail.body);
    assert!(!mail.header("Subject").unwrap_or("").contains("localhost"));
}

#[tokio::test]
async fn password_reset_url_shapes_the_link() {
    let app = spawn_app_with(&[
        ("PUBLIC_URL", "https://app.example.com"),
        ("PASSWORD_RESET_URL", "{base}/reset/{uid}/{token}/"),
    ])
    .await;
    let (id, _, _) = app.signed_in("chandler").await;
    let mail = reset_mail(&app, "chandler").await;
    assert_eq!(
        mail.link(),
        format!(
            "https://app.example.com/reset/{}/{}/",
            django_uid(id),
            mail.token()
        )
    );
}

#[tokio::test]
async fn the_email_is_matched_case_insensitively_and_sent_to_the_stored_address() {
    let app = spawn_app().await;
    app.register_ok("chandler").await;
    let reply = request_reset(&app, "CHANDLER@Example.COM").await;
    assert_eq!((reply.status, reply.body), (StatusCode::OK, status_ok()));
    let mail = wait_for_mail(&app, "chandler@example.com", 1).await;
    assert_eq!(mail.len(), 1);
}

#[tokio::test]
async fn inactive_users_get_no_mail() {
    let app = spawn_app().await;
    app.register_ok("janice").await;
    app.execute_sql("UPDATE auth_user SET is_active = FALSE WHERE username = 'janice'")
        .await;

    let reply = request_reset(&app, "janice@example.com").await;

    assert_eq!((reply.status, reply.body), (StatusCode::OK, status_ok()));
    let mail = mail_after_barrier(&app).await;
    assert!(mail.is_empty(), "{mail:?}");
}

// ---- POST /api/reset_password/confirm/ ----

#[tokio::test]
async fn confirming_sets_the_new_password() {
    let app = spawn_app().await;
    app.register_ok("chandler").await;
    let mail = reset_mail(&app, "chandler").await;

    let reply = confirm(&app, &mail.uid(), &mail.token(), NEW_PASSWORD).await;

    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body, reset_done());
    assert_eq!(reply.header("content-type"), Some("application/json"));
    assert_eq!(
        app.login("chandler", NEW_PASSWORD).await.status,
        StatusCode::OK
    );
    let old = app.login("chandler", STRONG_PASSWORD).await;
    assert_eq!(old.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        old.body,
        json!({"detail": "No active account found with the given credentials"})
    );
}

#[tokio::test]
async fn confirming_also_takes_a_form_encoded_body() {
    let app = spawn_app().await;
    app.register_ok("chandler").await;
    let mail = reset_mail(&app, "chandler").await;
    let reply = Reply::read(
        app.client
            .post(app.url("/api/reset_password/confirm/"))
            .form(&[
                ("uid", mail.uid().as_str()),
                ("token", mail.token().as_str()),
                ("new_password", NEW_PASSWORD),
            ])
            .send()
            .await
            .expect("request"),
    )
    .await;
    assert_eq!((reply.status, reply.body), (StatusCode::OK, reset_done()));
}

#[tokio::test]
async fn a_successful_reset_ends_every_session_of_the_user() {
    let app = spawn_app().await;
    let (id, access, refresh) = app.signed_in("chandler").await;
    let (other_access, other_refresh) = app.login_ok("chandler").await;
    let simplejwt_access = simplejwt_token("access", id, now() - 5, now() + 300);
    let mail = reset_mail(&app, "chandler").await;

    let reply = confirm(&app, &mail.uid(), &mail.token(), NEW_PASSWORD).await;
    assert_eq!((reply.status, reply.body), (StatusCode::OK, reset_done()));

    for access in [&access, &other_access, &simplejwt_access] {
        let me = app.me(access).await;
        assert_eq!(me.status, StatusCode::UNAUTHORIZED);
        assert_eq!(me.body, access_token_not_valid());
        assert_eq!(app.verify(access).await.status, StatusCode::UNAUTHORIZED);
    }
    for refresh in [&refresh, &other_refresh] {
        let reply = app.refresh(refresh).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{}", reply.body);
        assert_eq!(reply.body["code"], "token_not_valid");
    }
    // A new sign-in works.
    let login = app.login("chandler", NEW_PASSWORD).await;
    assert_eq!(login.status, StatusCode::OK);
    assert_eq!(app.me(&login.str("access")).await.status, StatusCode::OK);
}

#[tokio::test]
async fn a_token_works_once() {
    let app = spawn_app().await;
    app.register_ok("chandler").await;
    let mail = reset_mail(&app, "chandler").await;
    let first = confirm(&app, &mail.uid(), &mail.token(), NEW_PASSWORD).await;
    assert_eq!((first.status, first.body), (StatusCode::OK, reset_done()));

    let second = confirm(&app, &mail.uid(), &mail.token(), "another-Fresh-secret-8").await;

    assert_eq!(second.status, StatusCode::BAD_REQUEST);
    assert_eq!(second.body, invalid_token());
    assert_eq!(
        app.login("chandler", NEW_PASSWORD).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_wrong_token_or_a_uid_that_does_not_match_is_the_same_400() {
    let app = spawn_app().await;
    app.register_ok("chandler").await;
    let (monica, _, _) = app.signed_in("monica").await;
    let mail = reset_mail(&app, "chandler").await;
    let (uid, token) = (mail.uid(), mail.token());
    let mut other = token.clone();
    other.replace_range(0..1, if token.starts_with('A') { "B" } else { "A" });

    for (uid, token, case) in [
        (uid.clone(), other.clone(), "a token off by one character"),
        (uid.clone(), "not-a-token".to_owned(), "a made-up token"),
        (django_uid(monica), token.clone(), "another user's uid"),
        (django_uid(999_999), token.clone(), "the uid of nobody"),
        (
            "!!garbage!!".to_owned(),
            token.clone(),
            "a uid that is not base64",
        ),
        (django_uid(0), token.clone(), "uid 0"),
        (
            "YWJj".to_owned(),
            token.clone(),
            "a uid that is not a number",
        ),
    ] {
        let reply = confirm(&app, &uid, &token, NEW_PASSWORD).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{case}");
        assert_eq!(reply.body, invalid_token(), "{case}");
    }
    // Nothing changed, and the real token still works.
    assert_eq!(
        app.login("monica", STRONG_PASSWORD).await.status,
        StatusCode::OK
    );
    let reply = confirm(&app, &uid, &token, NEW_PASSWORD).await;
    assert_eq!((reply.status, reply.body), (StatusCode::OK, reset_done()));
}

#[tokio::test]
async fn missing_fields_are_all_named_at_once() {
    let app = spawn_app().await;
    let reply = app
        .post_json("/api/reset_password/confirm/", json!({}))
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        reply.body,
        json!({
            "uid": ["This field is required."],
            "token": ["This field is required."],
            "new_password": ["This field is required."],
        })
    );
}

#[tokio::test]
async fn a_weak_new_password_is_400_and_the_token_stays_usable() {
    let app = spawn_app().await;
    app.register_ok("chandler").await;
    let mail = reset_mail(&app, "chandler").await;

    let weak = confirm(&app, &mail.uid(), &mail.token(), "12345").await;

    assert_eq!(weak.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        weak.body,
        json!({"new_password": [
            "This password is too short. It must contain at least 8 characters.",
            "This password is too common.",
            "This password is entirely numeric.",
        ]})
    );
    let similar = confirm(&app, &mail.uid(), &mail.token(), "chandler12").await;
    assert_eq!(similar.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        similar.body,
        json!({"new_password": ["The password is too similar to the username."]})
    );
    assert_eq!(
        app.login("chandler", STRONG_PASSWORD).await.status,
        StatusCode::OK
    );

    let reply = confirm(&app, &mail.uid(), &mail.token(), NEW_PASSWORD).await;
    assert_eq!((reply.status, reply.body), (StatusCode::OK, reset_done()));
}

#[tokio::test]
async fn a_token_expires_after_password_reset_timeout() {
    let app = spawn_app_with(&[("PASSWORD_RESET_TIMEOUT", "1s")]).await;
    app.register_ok("chandler").await;
    let mail = reset_mail(&app, "chandler").await;

    tokio::time::sleep(Duration::from_millis(2100)).await;
    let reply = confirm(&app, &mail.uid(), &mail.token(), NEW_PASSWORD).await;

    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.body, invalid_token());
    assert_eq!(
        app.login("chandler", STRONG_PASSWORD).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_second_request_gives_a_second_token_and_does_not_extend_the_first() {
    let app = spawn_app_with(&[("PASSWORD_RESET_TIMEOUT", "4s")]).await;
    app.register_ok("chandler").await;
    let start = Instant::now();
    let first = reset_mail(&app, "chandler").await;
    tokio::time::sleep(Duration::from_millis(2500).saturating_sub(start.elapsed())).await;
    let second = reset_mail(&app, "chandler").await;
    assert_ne!(first.token(), second.token());
    assert_eq!(first.uid(), second.uid());

    // Past the first token's lifetime, within the second's.
    tokio::time::sleep(Duration::from_millis(4500).saturating_sub(start.elapsed())).await;
    let late = confirm(&app, &first.uid(), &first.token(), NEW_PASSWORD).await;
    assert_eq!(late.status, StatusCode::BAD_REQUEST);
    assert_eq!(late.body, invalid_token());
    let reply = confirm(&app, &second.uid(), &second.token(), NEW_PASSWORD).await;
    assert_eq!((reply.status, reply.body), (StatusCode::OK, reset_done()));
}

#[tokio::test]
async fn both_tokens_work_until_one_is_used_and_then_neither_does() {
    let app = spawn_app().await;
    app.register_ok("chandler").await;
    let first = reset_mail(&app, "chandler").await;
    let second = reset_mail(&app, "chandler").await;

    // A weak password through the first does not touch the second.
    let weak = confirm(&app, &first.uid(), &first.token(), "12345").await;
    assert_eq!(weak.status, StatusCode::BAD_REQUEST);
    let reply = confirm(&app, &second.uid(), &second.token(), NEW_PASSWORD).await;
    assert_eq!((reply.status, reply.body), (StatusCode::OK, reset_done()));

    // The password changed: the first token is dead too.
    let reply = confirm(&app, &first.uid(), &first.token(), "another-Fresh-secret-8").await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.body, invalid_token());
}

#[tokio::test]
async fn a_token_dies_when_the_password_is_changed_through_the_api() {
    let app = spawn_app().await;
    let (_, access, _) = app.signed_in("chandler").await;
    let mail = reset_mail(&app, "chandler").await;
    let changed = app
        .send_auth(
            Method::POST,
            "/api/change_password/",
            &access,
            Some(json!({"old_password": STRONG_PASSWORD, "new_password": NEW_PASSWORD})),
        )
        .await;
    assert_eq!(changed.status, StatusCode::OK, "{}", changed.body);

    let reply = confirm(&app, &mail.uid(), &mail.token(), "another-Fresh-secret-8").await;

    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.body, invalid_token());
    assert_eq!(
        app.login("chandler", NEW_PASSWORD).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_token_dies_when_the_password_is_changed_on_the_command_line() {
    use tokio::io::AsyncWriteExt;
    let app = spawn_app().await;
    app.register_ok("chandler").await;
    let mail = reset_mail(&app, "chandler").await;
    let mut command = tokio::process::Command::from(app.command(&[
        "changepassword",
        "chandler",
        "--password-stdin",
    ]));
    command
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    let mut child = command.spawn().expect("spawn gatehouse changepassword");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin
        .write_all(format!("{NEW_PASSWORD}\n").as_bytes())
        .await
        .expect("write stdin");
    drop(stdin);
    let output = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("changepassword finishes")
        .expect("wait");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    let reply = confirm(&app, &mail.uid(), &mail.token(), "another-Fresh-secret-8").await;

    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.body, invalid_token());
    assert_eq!(
        app.login("chandler", NEW_PASSWORD).await.status,
        StatusCode::OK
    );
}

// ---- storage ----

/// Every value of every column of every table, as text.
async fn every_stored_value(app: &TestApp) -> Vec<String> {
    use sqlx::Connection;
    let mut values = Vec::new();
    if app.database_url.starts_with("sqlite:") {
        let mut conn = sqlx::SqliteConnection::connect(&app.database_url)
            .await
            .unwrap();
        let columns: Vec<(String, String)> = sqlx::query_as(
            "SELECT m.name, p.name FROM sqlite_master m, pragma_table_info(m.name) p WHERE m.type = 'table'",
        )
        .fetch_all(&mut conn)
        .await
        .unwrap();
        for (table, column) in columns {
            // As bytes: some columns may hold blobs.
            let query = format!("SELECT CAST(\"{column}\" AS BLOB) FROM \"{table}\"");
            let found: Vec<Option<Vec<u8>>> = sqlx::query_scalar(&query)
                .fetch_all(&mut conn)
                .await
                .unwrap();
            values.extend(
                found
                    .into_iter()
                    .flatten()
                    .map(|b| String::from_utf8_lossy(&b).into_owned()),
            );
        }
    } else {
        let mut conn = sqlx::PgConnection::connect(&app.database_url)
            .await
            .unwrap();
        let columns: Vec<(String, String)> = sqlx::query_as(
            "SELECT table_name::text, column_name::text FROM information_schema.columns WHERE table_schema = 'public'",
        )
        .fetch_all(&mut conn)
        .await
        .unwrap();
        for (table, column) in columns {
            let query = format!("SELECT CAST(\"{column}\" AS TEXT) FROM \"{table}\"");
            let found: Vec<Option<String>> = sqlx::query_scalar(&query)
                .fetch_all(&mut conn)
                .await
                .unwrap();
            values.extend(found.into_iter().flatten());
        }
    }
    values
}

#[tokio::test]
async fn once_delivered_the_reset_secret_is_nowhere_in_the_database() {
    let app = spawn_app().await;
    app.register_ok("chandler").await;
    let mail = reset_mail(&app, "chandler").await;
    let token = mail.token();

    // The outbox may hold the message until it is delivered; after that, only the hash.
    let deadline = Instant::now() + MAIL_DEADLINE;
    loop {
        let holding: Vec<String> = every_stored_value(&app)
            .await
            .into_iter()
            .filter(|v| v.contains(&token))
            .collect();
        if holding.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the reset secret is still stored in plain text after delivery: {} value(s), e.g. {:?}",
            holding.len(),
            holding[0].chars().take(80).collect::<String>()
        );
        tokio::time::sleep(POLL).await;
    }
    // And the token still works: what is kept is enough to check it.
    let reply = confirm(&app, &mail.uid(), &token, NEW_PASSWORD).await;
    assert_eq!((reply.status, reply.body), (StatusCode::OK, reset_done()));
}

// ---- throttling ----

#[tokio::test]
async fn past_three_requests_an_hour_an_address_gets_the_same_200_and_no_more_mail() {
    let app = spawn_app().await;
    app.register_ok("chandler").await;
    for attempt in 1..=4 {
        let reply = request_reset(&app, "chandler@example.com").await;
        assert_eq!(reply.status, StatusCode::OK, "request {attempt}");
        assert_eq!(reply.body, status_ok(), "request {attempt}");
        assert_eq!(reply.header("retry-after"), None, "request {attempt}");
    }
    let mail = mail_after_barrier(&app).await;
    assert_eq!(mail.len(), 3, "{mail:?}");
    assert!(mail
        .iter()
        .all(|m| m.header("To") == Some("chandler@example.com")));
}

#[tokio::test]
async fn past_twenty_requests_an_hour_a_client_gets_429_with_retry_after() {
    let app = spawn_app().await;
    for n in 1..=20 {
        let reply = request_reset(&app, &format!("nobody{n}@example.com")).await;
        assert_eq!(
            (reply.status, &reply.body),
            (StatusCode::OK, &status_ok()),
            "request {n}"
        );
    }

    let reply = request_reset(&app, "nobody21@example.com").await;
    crate::throttle::assert_throttled(&reply, 3600);
}

#[tokio::test]
async fn with_the_rate_limit_off_neither_throttle_applies() {
    let app = spawn_app_with(&[("GATEHOUSE_RATE_LIMIT", "off")]).await;
    app.register_ok("chandler").await;
    for n in 1..=22 {
        let reply = request_reset(&app, "chandler@example.com").await;
        assert_eq!(
            (reply.status, &reply.body),
            (StatusCode::OK, &status_ok()),
            "request {n}"
        );
    }
    let mail = wait_for_mail(&app, "chandler@example.com", 22).await;
    assert_eq!(mail.len(), 22);
}

// ---- the page the link opens ----

struct Page {
    status: StatusCode,
    headers: reqwest::header::HeaderMap,
    html: String,
}

impl Page {
    async fn read(response: reqwest::Response) -> Page {
        let status = response.status();
        let headers = response.headers().clone();
        let html = response.text().await.expect("body");
        Page {
            status,
            headers,
            html,
        }
    }

    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_else(|| panic!("no {name} header"))
    }

    /// HTML, locked down: nothing loaded from elsewhere, no framing, no Referer.
    fn assert_safe_html(&self) {
        assert!(
            self.header("content-type").starts_with("text/html"),
            "{}",
            self.header("content-type")
        );
        let csp = self.header("content-security-policy");
        assert!(csp.contains("default-src 'none'"), "{csp}");
        assert_eq!(self.header("x-frame-options"), "DENY");
        assert_eq!(self.header("referrer-policy"), "no-referrer");
        let lower = self.html.to_lowercase();
        assert!(!lower.contains("<script"), "{}", self.html);
        assert!(!lower.contains("src="), "{}", self.html);
        assert!(!lower.contains("<link"), "{}", self.html);
    }

    fn has_form_for(&self, uid: &str, token: &str) -> bool {
        self.html.contains("<form")
            && self.html.contains(&format!("value=\"{uid}\""))
            && self.html.contains(&format!("value=\"{token}\""))
            && self.html.contains("name=\"new_password\"")
    }

    fn says_invalid(&self) -> bool {
        self.html.to_lowercase().contains("invalid")
    }
}

async fn open_link(app: &TestApp, uid: &str, token: &str) -> Page {
    Page::read(
        app.client
            .get(app.url("/api/reset_password/confirm/"))
            .query(&[("uid", uid), ("token", token)])
            .header("accept", "text/html")
            .send()
            .await
            .expect("request"),
    )
    .await
}

const BROWSER_ACCEPT: &str = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";

async fn submit_form(app: &TestApp, uid: &str, token: &str, new_password: &str) -> Page {
    Page::read(
        app.client
            .post(app.url("/api/reset_password/confirm/"))
            .header("accept", BROWSER_ACCEPT)
            .form(&[
                ("uid", uid),
                ("token", token),
                ("new_password", new_password),
            ])
            .send()
            .await
            .expect("request"),
    )
    .await
}

#[tokio::test]
async fn the_link_opens_a_form_holding_the_uid_and_token() {
    let app = spawn_app().await;
    app.register_ok("chandler").await;
    let mail = reset_mail(&app, "chandler").await;
    let link = mail.link();
    let path = link.split_once("/api/").map(|(_, p)| p).expect("a path");

    let page = Page::read(
        app.client
            .get(app.url(&format!("/api/{path}")))
            .send()
            .await
            .expect("request"),
    )
    .await;

    assert_eq!(page.status, StatusCode::OK, "{}", page.html);
    page.assert_safe_html();
    assert!(
        page.has_form_for(&mail.uid(), &mail.token()),
        "{}",
        page.html
    );
    // Opening the page does not spend the token.
    let reply = confirm(&app, &mail.uid(), &mail.token(), NEW_PASSWORD).await;
    assert_eq!((reply.status, reply.body), (StatusCode::OK, reset_done()));
}

#[tokio::test]
async fn a_bad_link_opens_a_page_saying_it_is_invalid() {
    let app = spawn_app().await;
    let (id, _, _) = app.signed_in("chandler").await;
    let mail = reset_mail(&app, "chandler").await;
    for (uid, token) in [
        (django_uid(id), "not-the-token".to_owned()),
        ("garbage".to_owned(), mail.token()),
        (String::new(), String::new()),
    ] {
        let page = open_link(&app, &uid, &token).await;
        assert_eq!(page.status, StatusCode::OK, "{uid} {token}");
        page.assert_safe_html();
        assert!(page.says_invalid(), "{}", page.html);
        assert!(!page.html.contains("<form"), "{}", page.html);
    }
    let used = confirm(&app, &mail.uid(), &mail.token(), NEW_PASSWORD).await;
    assert_eq!(used.status, StatusCode::OK);
    let page = open_link(&app, &mail.uid(), &mail.token()).await;
    assert!(page.says_invalid(), "a used link: {}", page.html);
    assert!(!page.html.contains("<form"), "{}", page.html);
}

#[tokio::test]
async fn a_parameter_repeated_in_the_link_counts_by_its_last_value() {
    // Django's `QueryDict.get()`: the last value, never a refusal.
    let app = spawn_app().await;
    app.register_ok("chandler").await;
    let mail = reset_mail(&app, "chandler").await;
    let (uid, token) = (mail.uid(), mail.token());
    let open = |pairs: Vec<(&'static str, String)>| {
        let request = app
            .client
            .get(app.url("/api/reset_password/confirm/"))
            .query(&pairs)
            .header("accept", "text/html");
        async move { Page::read(request.send().await.expect("request")).await }
    };

    let page = open(vec![
        ("uid", "garbage".to_owned()),
        ("token", "not-the-token".to_owned()),
        ("uid", uid.clone()),
        ("token", token.clone()),
    ])
    .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.html);
    page.assert_safe_html();
    assert!(page.has_form_for(&uid, &token), "{}", page.html);

    for pairs in [
        vec![
            ("uid", uid.clone()),
            ("token", token.clone()),
            ("token", "not-the-token".to_owned()),
        ],
        vec![
            ("uid", "MQ".to_owned()),
            ("uid", "MQ".to_owned()),
            ("token", "x".to_owned()),
        ],
    ] {
        let page = open(pairs.clone()).await;
        assert_eq!(page.status, StatusCode::OK, "{pairs:?}: {}", page.html);
        page.assert_safe_html();
        assert!(page.says_invalid(), "{pairs:?}: {}", page.html);
        assert!(!page.html.contains("<form"), "{}", page.html);
    }
}

#[tokio::test]
async fn the_form_posted_by_a_browser_resets_and_answers_html() {
    let app = spawn_app().await;
    app.register_ok("chandler").await;
    let mail = reset_mail(&app, "chandler").await;

    let page = submit_form(&app, &mail.uid(), &mail.token(), NEW_PASSWORD).await;

    assert_eq!(page.status, StatusCode::OK, "{}", page.html);
    page.assert_safe_html();
    assert!(!page.html.contains("<form"), "{}", page.html);
    assert!(!page.says_invalid(), "{}", page.html);
    assert!(!page.html.contains(&mail.token()), "{}", page.html);
    assert_eq!(
        app.login("chandler", NEW_PASSWORD).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_weak_password_from_the_form_shows_the_form_again_with_the_errors() {
    let app = spawn_app().await;
    app.register_ok("chandler").await;
    let mail = reset_mail(&app, "chandler").await;

    let page = submit_form(&app, &mail.uid(), &mail.token(), "12345").await;

    assert_eq!(page.status, StatusCode::BAD_REQUEST, "{}", page.html);
    page.assert_safe_html();
    assert!(
        page.has_form_for(&mail.uid(), &mail.token()),
        "{}",
        page.html
    );
    for error in [
        "This password is too short. It must contain at least 8 characters.",
        "This password is too common.",
        "This password is entirely numeric.",
    ] {
        assert!(page.html.contains(error), "{error}: {}", page.html);
    }
    // The token is still good.
    let page = submit_form(&app, &mail.uid(), &mail.token(), NEW_PASSWORD).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.html);
    assert_eq!(
        app.login("chandler", NEW_PASSWORD).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_bad_token_from_the_form_answers_the_invalid_link_page() {
    let app = spawn_app().await;
    let (id, _, _) = app.signed_in("chandler").await;
    let page = submit_form(&app, &django_uid(id), "not-the-token", NEW_PASSWORD).await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST, "{}", page.html);
    page.assert_safe_html();
    assert!(page.says_invalid(), "{}", page.html);
    assert!(!page.html.contains("<form"), "{}", page.html);
}

#[tokio::test]
async fn mail_sent_over_a_month_ago_is_purged_and_pending_mail_is_kept() {
    let app = spawn_app().await;
    app.register_ok("phoebe").await;
    reset_mail(&app, "phoebe").await;
    let sent = "SELECT count(*) FROM gatehouse_outbox WHERE sent_at IS NOT NULL";
    let deadline = Instant::now() + MAIL_DEADLINE;
    while app.query_count(sent).await == 0 {
        assert!(
            Instant::now() < deadline,
            "the message was never marked sent"
        );
        tokio::time::sleep(POLL).await;
    }
    // Arrange: the sent message is 31 days old, and an old message is still pending (its
    // next attempt far ahead, so no worker takes it meanwhile).
    app.execute_sql("UPDATE gatehouse_outbox SET created_at = created_at - 31 * 86400")
        .await;
    app.execute_sql(
        "INSERT INTO gatehouse_outbox (recipient, subject, body, created_at, attempts, \
         next_attempt_at) VALUES ('pending@example.com', 'Pending', 'body', 0, 3, 4102444800)",
    )
    .await;

    // The purge runs as an instance starts, then hourly.
    let second = spawn_app_on(&app.database_url, tempfile::tempdir().expect("temp dir")).await;
    while second.query_count(sent).await > 0 {
        assert!(
            Instant::now() < deadline,
            "the old sent message was not purged"
        );
        tokio::time::sleep(POLL).await;
    }
    let pending = "SELECT count(*) FROM gatehouse_outbox WHERE recipient = 'pending@example.com'";
    assert_eq!(second.query_count(pending).await, 1);
}
