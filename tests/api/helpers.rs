//! `TestApp`: the real application on 127.0.0.1:0, its own database, and a client.
//!
//! SQLite by default (a file in a temp dir); PostgreSQL when `TEST_DATABASE_URL` is set,
//! each test on a database of its own created for it, so tests run in parallel.

use gatehouse::app::Application;
use gatehouse::config::Config;
use gatehouse::state::AppState;
use reqwest::{Response, StatusCode};
use serde_json::{json, Value};
use std::collections::HashMap;
use tempfile::TempDir;

/// Runs `body` with `conn`, a fresh connection to the SQLite or PostgreSQL test database
/// at `url`: one body for both backends, type-checked against each.
macro_rules! with_test_database {
    ($url:expr, |$conn:ident| $body:expr) => {{
        use sqlx::Connection;
        let url: &str = $url;
        if url.starts_with("sqlite:") {
            let mut $conn = sqlx::SqliteConnection::connect(url)
                .await
                .expect("open sqlite");
            $body
        } else {
            let mut $conn = sqlx::PgConnection::connect(url)
                .await
                .expect("open postgres");
            $body
        }
    }};
}
pub(crate) use with_test_database;

/// The SECRET_KEY every test app signs with, so tests can mint tokens as SimpleJWT would.
pub const SECRET_KEY: &str = "test-secret-key-0123456789abcdef0123456789abcdef";
/// Passes every password rule.
pub const STRONG_PASSWORD: &str = "correct-Horse-battery-7";

pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub database_url: String,
    pub dir: TempDir,
}

/// A response read whole: status, headers and the JSON body (`Value::Null` when empty).
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Reply {
    pub async fn read(response: Response) -> Reply {
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.expect("body");
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or_else(|_| {
                panic!(
                    "{status}: body is not JSON: {}",
                    String::from_utf8_lossy(&bytes)
                )
            })
        };
        Reply {
            status,
            headers,
            body,
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn str(&self, field: &str) -> String {
        self.body[field]
            .as_str()
            .unwrap_or_else(|| panic!("no string {field:?} in {}", self.body))
            .to_owned()
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(&[]).await
}

/// Spawns an app whose configuration has `overrides` on top of the test defaults.
pub async fn spawn_app_with(overrides: &[(&str, &str)]) -> TestApp {
    spawn_app_full(overrides, axum::Router::new()).await
}

/// Spawns an app with extra routes mounted under the real middleware.
pub async fn spawn_app_full(overrides: &[(&str, &str)], extra: axum::Router<AppState>) -> TestApp {
    spawn_app_until(overrides, extra, std::future::pending())
        .await
        .0
}

/// An extra route for `spawn_app_full`: `GET /test/slow` answers only after a minute,
/// for tests of the request deadline.
pub fn slow_route() -> axum::Router<AppState> {
    axum::Router::new().route(
        "/test/slow",
        axum::routing::get(|| async {
            tokio::time::sleep(std::time::Duration::from_secs(60)).await;
            "too late"
        }),
    )
}

/// Hashes of `STRONG_PASSWORD` in the encodings Django writes (made with Python's
/// hashlib, bcrypt and argon2-cffi exactly as Django's hashers call them).
pub const DJANGO_HASHES: &[(&str, &str)] = &[
    (
        "pbkdf2_sha256",
        "pbkdf2_sha256$260000$gatehouseSalt256$/I8uealmfV1znTwyFo0bEO71aCBXxxzmnhWZRiXitZc=",
    ),
    (
        "pbkdf2_sha1",
        "pbkdf2_sha1$260000$gatehouseSalt001$+7I0v3Cs53wTPMfADCVJatoUedQ=",
    ),
    (
        "argon2",
        "argon2$argon2id$v=19$m=102400,t=2,p=8$5gzGuamZZfe8YcKaYhWhDw$o7nx6LaYcx9AVQ9wPss0WDaA7gsjWk1xGxilTjUXNwE",
    ),
    (
        "bcrypt_sha256",
        "bcrypt_sha256$$2b$12$8vWNi1Me1qTROmlO7NiWje0BvKkw6ZDum13.jvpsgWlARS04A8l6.",
    ),
    (
        "scrypt",
        "scrypt$16384$gatehouseScrypt1$8$1$yRhPwA0hK66drScBM23ardMeY9t4jrY+Iy4SaenMX16iPP7xTICY1LXPpvxEjBOXbqpmbv2v3AjcYic5AVeumg==",
    ),
];

/// The extra route of `spawn_app_with_one_hash_slot`: `GET /test/hold-hash/{n}` keeps a
/// hash slot busy, verifying a password against a PBKDF2 hash of `n` iterations.
fn hold_hash_slot_route() -> axum::Router<gatehouse::state::AppState> {
    use axum::extract::{Path, State};
    use gatehouse::state::AppState;
    axum::Router::new().route(
        "/test/hold-hash/{iterations}",
        axum::routing::get(
            |State(state): State<AppState>, Path(iterations): Path<u32>| async move {
                let slow = format!("pbkdf2_sha256${iterations}$salt${}=", "A".repeat(43));
                let guess = secrecy::SecretString::from("not-it".to_owned());
                match state.hasher.verify(guess, Some(slow)).await {
                    Ok(_) => (axum::http::StatusCode::OK, "held"),
                    // It never had the slot (GATEHOUSE_HASH_WAIT ran out).
                    Err(_) => (axum::http::StatusCode::SERVICE_UNAVAILABLE, "busy"),
                }
            },
        ),
    )
}

/// An app with one hash slot, which `hold_hash_slot` can keep busy, and waits long
/// enough for a request queued behind it; `more` on top of that configuration.
pub async fn spawn_app_with_one_hash_slot(more: &[(&str, &str)]) -> TestApp {
    let mut overrides = vec![
        ("GATEHOUSE_HASH_CONCURRENCY", "1"),
        ("GATEHOUSE_HASH_WAIT", "120s"),
        ("GATEHOUSE_REQUEST_TIMEOUT", "120s"),
    ];
    overrides.extend_from_slice(more);
    spawn_app_full(&overrides, hold_hash_slot_route()).await
}

/// Keeps the one hash slot of `app` (`spawn_app_with_one_hash_slot`) busy for about
/// `seconds` from now; await the holds to end. A request that needs a hash from now on
/// waits behind all of them: the slot is handed out first come, first served.
pub async fn hold_hash_slot(
    app: &TestApp,
    seconds: f64,
) -> Vec<tokio::task::JoinHandle<reqwest::Result<reqwest::Response>>> {
    let held = HashSlotHolds::timed(app).await.hold(app, seconds);
    // Let the first of them take the slot before anything else asks for it.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    held
}

/// Returns once some login attempt on `app` is counted and not yet settled: a request
/// re-entering a password is then past the guard's check, and its verification has the
/// hash slot or waits for it.
pub async fn wait_until_an_attempt_is_counted(app: &TestApp) {
    let counted =
        "SELECT count(*) FROM gatehouse_login_failure WHERE client = '*' AND failures > 0";
    let started = std::time::Instant::now();
    while app.query_count(counted).await == 0 {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "no attempt was counted"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Holds of the one hash slot of an app (`spawn_app_with_one_hash_slot`), timed there.
pub struct HashSlotHolds {
    /// Seconds one PBKDF2-SHA256 iteration takes.
    per_iteration: f64,
}

impl HashSlotHolds {
    /// PBKDF2's speed differs a hundredfold between machines and builds: timed once, on
    /// `app` (a hold of 100,000 iterations).
    pub async fn timed(app: &TestApp) -> Self {
        let started = std::time::Instant::now();
        Self::send(app, 100_000).await.unwrap();
        let per_iteration = (started.elapsed().as_secs_f64() / 1e5).max(1e-9);
        Self { per_iteration }
    }

    /// How many PBKDF2-SHA256 iterations take about `seconds`.
    pub fn iterations_for(&self, seconds: f64) -> u32 {
        (seconds / self.per_iteration).clamp(1.0, 1e9) as u32
    }

    /// Holds the slot for about `seconds` once it has it, in one hold. A hold answered
    /// early by its request deadline keeps the slot until its hash is done, as any
    /// request's hash does (unlike one still waiting for the slot, which is dropped).
    pub fn hold_once(
        &self,
        app: &TestApp,
        seconds: f64,
    ) -> tokio::task::JoinHandle<reqwest::Result<reqwest::Response>> {
        tokio::spawn(Self::send(app, self.iterations_for(seconds)))
    }

    /// Holds the slot for about `seconds` from now, in holds of at most 10⁷ iterations
    /// queued in a row (each must get the slot within `GATEHOUSE_HASH_WAIT`).
    pub fn hold(
        &self,
        app: &TestApp,
        seconds: f64,
    ) -> Vec<tokio::task::JoinHandle<reqwest::Result<reqwest::Response>>> {
        let holds = (seconds / (self.per_iteration * 1e7)).ceil().max(1.0) as usize;
        let iterations = (seconds / self.per_iteration / holds as f64).clamp(1e5, 1e7) as u32;
        (0..holds)
            .map(|_| tokio::spawn(Self::send(app, iterations)))
            .collect()
    }

    /// Returns once the slot is free (a hold of one iteration gets it in time): a hold
    /// answered early by its deadline keeps the slot while its hash runs on.
    pub async fn wait_until_free(app: &TestApp) {
        for _ in 0..120 {
            if Self::send(app, 1).await.unwrap().status() == StatusCode::OK {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        }
        panic!("the hash slot stayed busy");
    }

    fn send(
        app: &TestApp,
        iterations: u32,
    ) -> impl std::future::Future<Output = reqwest::Result<reqwest::Response>> {
        let path = format!("/test/hold-hash/{iterations}");
        app.client.get(app.url(&path)).send()
    }
}

/// Spawns an app that drains and stops as SIGTERM would make it when `shutdown`
/// completes; the handle resolves once it has stopped.
pub async fn spawn_app_until(
    overrides: &[(&str, &str)],
    extra: axum::Router<AppState>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> (TestApp, tokio::task::JoinHandle<std::io::Result<()>>) {
    gatehouse::telemetry::init_for_tests();
    let dir = tempfile::tempdir().expect("temp dir");
    let database_url = fresh_database_url(&dir).await;
    let mut vars: HashMap<String, String> = HashMap::from([
        ("DATABASE_URL".into(), database_url.clone()),
        ("SECRET_KEY".into(), SECRET_KEY.into()),
        ("GATEHOUSE_BIND".into(), "127.0.0.1:0".into()),
        ("EMAIL_BACKEND".into(), "file".into()),
        (
            "EMAIL_FILE_PATH".into(),
            dir.path().join("mail").display().to_string(),
        ),
        ("DATABASE_POOL_SIZE".into(), "5".into()),
    ]);
    for (name, value) in overrides {
        vars.insert(name.to_string(), value.to_string());
    }
    let config = Config::from_lookup(|name| vars.get(name).cloned()).expect("test config is valid");
    let app = Application::build_with_routes(config, extra)
        .await
        .expect("app starts");
    let address = format!("http://{}", app.local_addr());
    let running = tokio::spawn(app.run_until(shutdown));
    let app = TestApp {
        address,
        client: reqwest::Client::new(),
        database_url,
        dir,
    };
    (app, running)
}

/// A new SQLite file, or a new PostgreSQL database on the `TEST_DATABASE_URL` server.
pub async fn fresh_database_url(dir: &TempDir) -> String {
    match std::env::var("TEST_DATABASE_URL") {
        Ok(server) if !server.is_empty() => fresh_postgres_database(&server).await,
        _ => format!("sqlite://{}", dir.path().join("db.sqlite3").display()),
    }
}

async fn fresh_postgres_database(server: &str) -> String {
    use sqlx::Connection;
    let name = format!("gh_test_{}", gatehouse::auth::random_hex_id());
    let mut admin = sqlx::PgConnection::connect(server)
        .await
        .expect("TEST_DATABASE_URL reachable");
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await
        .expect("create test database");
    let mut url = reqwest::Url::parse(server).expect("TEST_DATABASE_URL is a URL");
    url.set_path(&format!("/{name}"));
    url.to_string()
}

pub fn is_postgres() -> bool {
    std::env::var("TEST_DATABASE_URL").is_ok_and(|v| !v.is_empty())
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    pub async fn post_json(&self, path: &str, body: Value) -> Reply {
        Reply::read(
            self.client
                .post(self.url(path))
                .json(&body)
                .send()
                .await
                .expect("request"),
        )
        .await
    }

    pub async fn get(&self, path: &str) -> Reply {
        Reply::read(
            self.client
                .get(self.url(path))
                .send()
                .await
                .expect("request"),
        )
        .await
    }

    pub async fn get_auth(&self, path: &str, access: &str) -> Reply {
        Reply::read(
            self.client
                .get(self.url(path))
                .bearer_auth(access)
                .send()
                .await
                .expect("request"),
        )
        .await
    }

    pub async fn send_auth(
        &self,
        method: reqwest::Method,
        path: &str,
        access: &str,
        body: Option<Value>,
    ) -> Reply {
        let mut request = self
            .client
            .request(method, self.url(path))
            .bearer_auth(access);
        if let Some(body) = body {
            request = request.json(&body);
        }
        Reply::read(request.send().await.expect("request")).await
    }

    pub async fn register(&self, username: &str, email: &str, password: &str) -> Reply {
        self.post_json(
            "/api/register/",
            json!({"username": username, "email": email, "password": password}),
        )
        .await
    }

    /// Registers `username` with `<username>@example.com` and the strong password.
    pub async fn register_ok(&self, username: &str) {
        let reply = self
            .register(
                username,
                &format!("{username}@example.com"),
                STRONG_PASSWORD,
            )
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    }

    pub async fn login(&self, username: &str, password: &str) -> Reply {
        self.post_json(
            "/api/login/",
            json!({"username": username, "password": password}),
        )
        .await
    }

    /// Logs in with the strong password and returns (access, refresh).
    pub async fn login_ok(&self, username: &str) -> (String, String) {
        let reply = self.login(username, STRONG_PASSWORD).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        (reply.str("access"), reply.str("refresh"))
    }

    /// Registers and logs in; returns (user id, access, refresh).
    pub async fn signed_in(&self, username: &str) -> (i64, String, String) {
        self.register_ok(username).await;
        let (access, refresh) = self.login_ok(username).await;
        let me = self.get_auth("/api/users/me/", &access).await;
        (me.body["id"].as_i64().expect("id"), access, refresh)
    }

    pub async fn refresh(&self, refresh: &str) -> Reply {
        self.post_json("/api/token/refresh/", json!({"refresh": refresh}))
            .await
    }

    pub async fn verify(&self, token: &str) -> Reply {
        self.post_json("/api/token/verify/", json!({"token": token}))
            .await
    }

    pub async fn me(&self, access: &str) -> Reply {
        self.get_auth("/api/users/me/", access).await
    }

    /// Runs the `gatehouse` binary against this app's database.
    pub fn command(&self, args: &[&str]) -> std::process::Command {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_gatehouse"));
        command
            .args(args)
            .current_dir(self.dir.path())
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("DATABASE_URL", &self.database_url)
            .env("SECRET_KEY", SECRET_KEY)
            .env("RUST_LOG", "warn");
        command
    }
}

/// A token signed with the test key in SimpleJWT's exact layout (no `sid`), as a Django
/// deployment sharing the SECRET_KEY would mint it.
pub fn simplejwt_token(token_type: &str, user_id: i64, iat: i64, exp: i64) -> String {
    let claims = json!({
        "token_type": token_type,
        "exp": exp,
        "iat": iat,
        "jti": gatehouse::auth::random_hex_id(),
        "user_id": user_id.to_string(),
    });
    sign(&claims, SECRET_KEY)
}

pub fn sign(claims: &Value, key: &str) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        claims,
        &jsonwebtoken::EncodingKey::from_secret(key.as_bytes()),
    )
    .expect("sign")
}

/// The claims of a token, read without checking it.
pub fn claims_of(token: &str) -> Value {
    use base64::Engine;
    let payload = token.split('.').nth(1).expect("a JWT has three parts");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("base64url");
    serde_json::from_slice(&bytes).expect("JSON claims")
}

pub fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// SimpleJWT's 401 for a bad access token on a protected route.
pub fn access_token_not_valid() -> Value {
    json!({
        "detail": "Given token not valid for any token type",
        "code": "token_not_valid",
        "messages": [{"token_class": "AccessToken", "token_type": "access", "message": "Token is invalid or expired"}],
    })
}

impl TestApp {
    /// Runs one SQL statement on this app's database, for arranging states the API has no
    /// route for yet (e.g. an inactive user). Never used to check an outcome.
    pub async fn execute_sql(&self, statement: &str) {
        with_test_database!(&self.database_url, |conn| {
            sqlx::query(statement)
                .execute(&mut conn)
                .await
                .expect("sql");
        })
    }

    /// Reads one number from this app's database: only for housekeeping that no route
    /// shows (what the purge removed).
    pub async fn query_count(&self, statement: &str) -> i64 {
        with_test_database!(&self.database_url, |conn| sqlx::query_scalar(statement)
            .fetch_one(&mut conn)
            .await
            .expect("sql"))
    }
}

// ---- An app on a database made elsewhere (tests/api/django.rs) ----

/// Spawns an app with the test defaults on an existing database, e.g. one a Django
/// project migrated. `dir` (which may hold that database's file) lives as long as the
/// app's `TestApp`; the app's mail goes to `dir/mail`. Panics if the app does not start:
/// tests of refused start-ups run the binary instead.
pub async fn spawn_app_on(database_url: &str, dir: TempDir) -> TestApp {
    gatehouse::telemetry::init_for_tests();
    let vars: HashMap<&str, String> = HashMap::from([
        ("DATABASE_URL", database_url.to_owned()),
        ("SECRET_KEY", SECRET_KEY.to_owned()),
        ("GATEHOUSE_BIND", "127.0.0.1:0".to_owned()),
        ("EMAIL_BACKEND", "file".to_owned()),
        (
            "EMAIL_FILE_PATH",
            dir.path().join("mail").display().to_string(),
        ),
        ("DATABASE_POOL_SIZE", "5".to_owned()),
        // The Django tests log in dozens of users from one address within a minute.
        ("GATEHOUSE_THROTTLE_LOGIN", "1000/min".to_owned()),
    ]);
    let config = Config::from_lookup(|name| vars.get(name).cloned()).expect("test config is valid");
    let app = Application::build(config).await.expect("app starts");
    let address = format!("http://{}", app.local_addr());
    tokio::spawn(app.run_until(std::future::pending()));
    TestApp {
        address,
        client: reqwest::Client::new(),
        database_url: database_url.to_owned(),
        dir,
    }
}

/// Runs `command` to completion within `limit`, with `stdin` written to its standard
/// input (closed right after), and returns its exit status and output.
pub async fn run_command(
    command: impl Into<tokio::process::Command>,
    stdin: Option<&str>,
    limit: std::time::Duration,
) -> std::process::Output {
    use std::process::Stdio;
    use tokio::io::AsyncWriteExt;
    let mut command = command.into();
    command
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = command.spawn().expect("spawn the command");
    if let Some(text) = stdin {
        let mut pipe = child.stdin.take().expect("stdin pipe");
        pipe.write_all(text.as_bytes()).await.expect("write stdin");
        drop(pipe);
    }
    tokio::time::timeout(limit, child.wait_with_output())
        .await
        .expect("the command finishes in time")
        .expect("wait for the command")
}
