//! API.md §9, living beside Django: a real Django project (`tests/django/`) migrates a
//! fresh database and makes users and tokens with Django's own code; gatehouse then
//! serves that database, and Django checks what gatehouse wrote. On SQLite, and on
//! PostgreSQL when TEST_DATABASE_URL is set.
//!
//! The Django side runs in the virtual environment `.ci/run` makes (`target/django-venv`,
//! from `tests/django/requirements.txt`), or the Python that `GATEHOUSE_DJANGO_PYTHON`
//! names. Without either the tests print "skipped: …" and pass, unless
//! `GATEHOUSE_DJANGO_TESTS=required` (as CI sets it), when they fail.

use crate::helpers::*;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;
use tempfile::TempDir;

/// What every Django-made user's password is, unless a test says otherwise.
const PASSWORD: &str = "django-Made-passw0rd";
/// How gatehouse writes a hash (README: Argon2id at OWASP's parameters, Django's encoding).
const GATEHOUSE_HASH_PREFIX: &str = "argon2$argon2id$v=19$m=19456,t=2,p=1$";
/// A command that runs longer than this is hung: the test fails instead of waiting forever.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(120);

/// The test Django project, pointed at a database of its own.
struct Django {
    python: PathBuf,
    database_url: String,
}

impl Django {
    /// A fresh database (in `dir` on SQLite) that Django has migrated; `None`, having said
    /// "skipped", when there is no Django environment and none is required.
    async fn migrated() -> Option<(Django, TempDir)> {
        let python = django_python()?;
        let dir = tempfile::tempdir().expect("temp dir");
        let django = Django {
            python,
            database_url: fresh_database_url(&dir).await,
        };
        let output = django.command(&["migrate", "--noinput", "-v0"], None).await;
        assert_success("manage.py migrate", &output);
        Some((django, dir))
    }

    async fn command(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let project = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/django");
        let mut command = tokio::process::Command::new(&self.python);
        command
            .arg("manage.py")
            .args(args)
            .current_dir(project)
            .env("DATABASE_URL", &self.database_url)
            .env("SECRET_KEY", SECRET_KEY)
            .env("DJANGO_SETTINGS_MODULE", "ghproject.settings")
            // Keep the source tree free of __pycache__ folders.
            .env("PYTHONDONTWRITEBYTECODE", "1");
        run(command, stdin).await
    }

    /// Runs the fixture's operations (see `gatehouse_fixture.py`) and returns their results.
    async fn run(&self, operations: Value) -> Vec<Value> {
        let output = self
            .command(&["gatehouse_fixture"], Some(&operations.to_string()))
            .await;
        assert_success("manage.py gatehouse_fixture", &output);
        serde_json::from_slice(&output.stdout).expect("the fixture prints JSON")
    }

    async fn run_one(&self, operation: Value) -> Value {
        self.run(json!([operation])).await.remove(0)
    }

    /// Creates a user whose hash Django makes cheaply (PBKDF2-SHA256, 1000 iterations);
    /// returns its id.
    async fn create_user(&self, username: &str, email: &str) -> i64 {
        let created = self
            .run_one(
                json!({"op": "create_user", "username": username, "email": email,
                            "password": PASSWORD, "hasher": "pbkdf2_sha256", "iterations": 1000}),
            )
            .await;
        created["id"].as_i64().expect("id")
    }
}

/// The test environment's Python with Django, or `None` after saying why the Django
/// tests are skipped; panics instead when they are required.
fn django_python() -> Option<PathBuf> {
    let named = std::env::var("GATEHOUSE_DJANGO_PYTHON")
        .ok()
        .filter(|p| !p.is_empty());
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/django-venv");
    let python = match named {
        Some(path) => Some(PathBuf::from(path)),
        // `.ci/run` writes `.ready` once every requirement is installed.
        None => venv
            .join(".ready")
            .exists()
            .then(|| venv.join("bin/python")),
    };
    if python.is_none() {
        let required = std::env::var("GATEHOUSE_DJANGO_TESTS").is_ok_and(|v| v == "required");
        assert!(
            !required,
            "GATEHOUSE_DJANGO_TESTS=required but there is no Django environment: \
             set GATEHOUSE_DJANGO_PYTHON or run .ci/run (it makes target/django-venv)"
        );
        eprintln!("skipped: no Django environment (see tests/api/django.rs)");
    }
    python
}

async fn run(command: tokio::process::Command, stdin: Option<&str>) -> Output {
    run_command(command, stdin, COMMAND_TIMEOUT).await
}

fn assert_success(what: &str, output: &Output) {
    assert!(
        output.status.success(),
        "{what}: {}\nstdout: {}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn login_failed() -> Value {
    json!({"detail": "No active account found with the given credentials"})
}

/// The database's schema as text lines. `everything`: every object and extension;
/// otherwise only what is not gatehouse's (not named `gatehouse…`), i.e. Django's tables,
/// columns, indexes, constraints and triggers.
async fn schema(database_url: &str, everything: bool) -> Vec<String> {
    use sqlx::Connection;
    let pattern = if everything { "%" } else { "gatehouse%" };
    if database_url.starts_with("sqlite:") {
        let mut conn = sqlx::SqliteConnection::connect(database_url)
            .await
            .expect("open sqlite");
        sqlx::query_scalar(
            "SELECT type || ' ' || name || ' ' || coalesce(sql, '') FROM sqlite_master \
             WHERE $1 = '%' OR (name NOT LIKE $1 AND tbl_name NOT LIKE $1) ORDER BY 1",
        )
        .bind(pattern)
        .fetch_all(&mut conn)
        .await
        .expect("read sqlite_master")
    } else {
        let mut conn = sqlx::PgConnection::connect(database_url)
            .await
            .expect("open postgres");
        sqlx::query_scalar(
            "SELECT line FROM ( \
               SELECT 'column ' || table_name || '.' || column_name || ' ' || data_type || ' ' \
                 || is_nullable || ' ' || coalesce(column_default, '') AS line, table_name AS name \
                 FROM information_schema.columns WHERE table_schema = current_schema() \
               UNION ALL SELECT 'index ' || indexdef, indexname FROM pg_indexes \
                 WHERE schemaname = current_schema() \
               UNION ALL SELECT 'constraint ' || conname || ' ' || pg_get_constraintdef(oid), conname::text \
                 FROM pg_constraint WHERE connamespace = current_schema()::regnamespace \
               UNION ALL SELECT 'trigger ' || tgname, tgname::text FROM pg_trigger WHERE NOT tgisinternal \
               UNION ALL SELECT 'relation ' || relname, relname::text FROM pg_class \
                 WHERE relnamespace = current_schema()::regnamespace \
               UNION ALL SELECT 'extension ' || extname, 'gatehouse' FROM pg_extension \
             ) AS objects WHERE $1 = '%' OR name NOT LIKE $1 ORDER BY 1",
        )
        .bind(pattern)
        .fetch_all(&mut conn)
        .await
        .expect("read the catalog")
    }
}

/// Every row of `auth_user`, as text.
async fn auth_user_rows(database_url: &str) -> Vec<String> {
    let query = "SELECT CAST(id AS text) || ' ' || username || ' ' || email || ' ' || password \
                 || ' ' || coalesce(CAST(last_login AS text), '-') FROM auth_user ORDER BY id";
    with_test_database!(database_url, |conn| sqlx::query_scalar(query)
        .fetch_all(&mut conn)
        .await
        .expect("read auth_user"))
}

#[tokio::test]
async fn users_django_made_log_in_and_django_accepts_the_argon2id_gatehouse_writes() {
    let Some((django, dir)) = Django::migrated().await else {
        return;
    };
    // Every hasher Django ships a default for, at Django's own cost settings, and
    // PBKDF2 also at another iteration count (older Django versions wrote fewer).
    let users = [
        ("u_pbkdf2_sha256", "pbkdf2_sha256", None),
        ("u_pbkdf2_sha256_old", "pbkdf2_sha256", Some(1000)),
        ("u_pbkdf2_sha1", "pbkdf2_sha1", None),
        ("u_argon2", "argon2", None),
        ("u_bcrypt_sha256", "bcrypt_sha256", None),
        ("u_scrypt", "scrypt", None),
    ];
    let created = django
        .run(Value::Array(
            users
                .iter()
                .map(|(name, hasher, iterations)| {
                    json!({"op": "create_user", "username": name, "email": format!("{name}@Example.COM"),
                           "password": PASSWORD, "hasher": hasher, "iterations": iterations})
                })
                .collect(),
        ))
        .await;
    for ((name, hasher, _), made) in users.iter().zip(&created) {
        let hash = made["hash"].as_str().expect("hash");
        assert!(hash.starts_with(&format!("{hasher}$")), "{name}: {hash}");
    }
    let django_schema = schema(&django.database_url, false).await;
    let app = spawn_app_on(&django.database_url, dir).await;

    // A wrong password is refused and leaves Django's hash (and the whole row) as it was.
    let rows_before = auth_user_rows(&django.database_url).await;
    for (name, _, _) in &users {
        let reply = app.login(name, "django-Made-passw0rd!").await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{name}");
        assert_eq!(reply.body, login_failed(), "{name}");
    }
    assert_eq!(auth_user_rows(&django.database_url).await, rows_before);

    for ((name, _, _), made) in users.iter().zip(&created) {
        let reply = app.login(name, PASSWORD).await;
        assert_eq!(reply.status, StatusCode::OK, "{name}: {}", reply.body);
        let me = app.me(&reply.str("access")).await;
        assert_eq!(me.status, StatusCode::OK, "{name}");
        assert_eq!(me.body["id"], made["id"], "{name}");
        assert_eq!(me.body["username"], *name);
        assert_eq!(me.body["email"], format!("{name}@Example.COM"));
    }

    // Django verifies what gatehouse wrote, and refuses a wrong password against it; the
    // README's GatehouseArgon2PasswordHasher would keep it as it is.
    let checks = django
        .run(Value::Array(
            users
                .iter()
                .flat_map(|(name, _, _)| {
                    [
                        json!({"op": "check_password", "username": name, "password": PASSWORD}),
                        json!({"op": "check_password", "username": name, "password": "Django-made-passw0rd"}),
                    ]
                })
                .collect(),
        ))
        .await;
    for ((name, _, _), pair) in users.iter().zip(checks.chunks(2)) {
        let hash = pair[0]["hash"].as_str().expect("hash");
        assert!(hash.starts_with(GATEHOUSE_HASH_PREFIX), "{name}: {hash}");
        assert_eq!(pair[0]["ok"], true, "{name}: Django rejects {hash}");
        assert_eq!(pair[0]["recipe_must_update"], false, "{name}");
        assert_eq!(pair[1]["ok"], false, "{name}");
        // And gatehouse reads its own hash back.
        assert_eq!(app.login(name, PASSWORD).await.status, StatusCode::OK);
    }

    // API.md §9: gatehouse added its own tables and indexes and left Django's as they were.
    assert_eq!(schema(&django.database_url, false).await, django_schema);
    let everything = schema(&django.database_url, true).await;
    assert!(
        everything.iter().any(|l| l.contains("gatehouse_session")),
        "gatehouse migrated: {everything:?}"
    );
}

#[tokio::test]
async fn hashes_gatehouse_cannot_read_are_a_failed_login_never_an_error() {
    let Some((django, dir)) = Django::migrated().await else {
        return;
    };
    // Hashers Django ships but does not enable, unusable passwords, and strings no hasher
    // wrote: broken fields, bad base64, costs out of bounds.
    let stored = [
        "",
        "md5$salt$0123456789abcdef0123456789abcdef",
        "unsalted_sha1$$0123456789abcdef0123456789abcdef01234567",
        "pbkdf2_sha256$lots$salt$aGFzaA==",
        "pbkdf2_sha256$1000$salt$not*base64",
        "pbkdf2_sha256$4294967295$salt$aGFzaA==",
        "pbkdf2_sha1$1000$salt",
        "argon2$argon2id$v=19$m=bad,t=2,p=1$c2FsdHNhbHQ$aGFzaA",
        "argon2$argon2id$v=19$m=4294967295,t=4294967295,p=255$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo",
        "bcrypt_sha256$$2b$12$short",
        "bcrypt_sha256$$2b$99$8vWNi1Me1qTROmlO7NiWje0BvKkw6ZDum13.jvpsgWlARS04A8l6.",
        "bcrypt_sha256$$2b$31$8vWNi1Me1qTROmlO7NiWje0BvKkw6ZDum13.jvpsgWlARS04A8l6.",
        "scrypt$16384$salt$8$1$%%%",
        "scrypt$3$salt$8$1$aGFzaA==",
        "scrypt$1048576$salt$64$5$aGFzaA==",
        "ünïcødé$ß$✓",
    ];
    let mut operations = Vec::new();
    for (n, hash) in stored.iter().enumerate() {
        let name = format!("broken{n}");
        operations.push(json!({"op": "create_user", "username": name, "email": "",
                               "password": PASSWORD, "hasher": "pbkdf2_sha256", "iterations": 1000}));
        operations.push(json!({"op": "set_hash", "username": name, "hash": hash}));
    }
    operations.push(
        json!({"op": "create_user", "username": "unusable", "email": "",
                           "password": PASSWORD, "hasher": "pbkdf2_sha256", "iterations": 1000}),
    );
    operations.push(json!({"op": "set_unusable_password", "username": "unusable"}));
    django.run(Value::Array(operations)).await;
    let before = auth_user_rows(&django.database_url).await;
    let app = spawn_app_on(&django.database_url, dir).await;

    let names = (0..stored.len())
        .map(|n| format!("broken{n}"))
        .chain(["unusable".to_owned()]);
    for name in names {
        for password in [PASSWORD, ""] {
            let reply = app.login(&name, password).await;
            let expected = if password.is_empty() {
                StatusCode::BAD_REQUEST // DRF: "This field may not be blank."
            } else {
                StatusCode::UNAUTHORIZED
            };
            assert_eq!(reply.status, expected, "{name}: {}", reply.body);
            if expected == StatusCode::UNAUTHORIZED {
                assert_eq!(reply.body, login_failed(), "{name}");
            }
        }
    }
    // Nothing was "upgraded" or otherwise written.
    assert_eq!(auth_user_rows(&django.database_url).await, before);
    let health = app.get("/api/health/").await;
    assert_eq!(health.status, StatusCode::OK);
}

#[tokio::test]
async fn tokens_pass_both_ways_between_simplejwt_and_gatehouse() {
    let Some((django, dir)) = Django::migrated().await else {
        return;
    };
    let id = django.create_user("ross", "ross@example.com").await;
    let minted = django
        .run_one(json!({"op": "tokens", "username": "ross"}))
        .await;
    let app = spawn_app_on(&django.database_url, dir).await;

    // SimpleJWT's access token is good on gatehouse's protected routes…
    let me = app.me(minted["access"].as_str().unwrap()).await;
    assert_eq!(me.status, StatusCode::OK, "{}", me.body);
    assert_eq!(me.body["id"], id);
    // …and its refresh token is exchanged once for a gatehouse pair.
    let django_refresh = minted["refresh"].as_str().unwrap();
    let pair = app.refresh(django_refresh).await;
    assert_eq!(pair.status, StatusCode::OK, "{}", pair.body);
    assert_eq!(
        app.refresh(django_refresh).await.status,
        StatusCode::UNAUTHORIZED
    );

    // gatehouse's access tokens, from a refresh and from a login, authenticate in
    // SimpleJWT's JWTAuthentication as the same user; its refresh token does not.
    let (login_access, login_refresh) = {
        let reply = app.login("ross", PASSWORD).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        (reply.str("access"), reply.str("refresh"))
    };
    let verdicts = django
        .run(json!([
            {"op": "authenticate", "access": pair.str("access")},
            {"op": "authenticate", "access": login_access},
            {"op": "authenticate", "access": login_refresh},
        ]))
        .await;
    assert_eq!(verdicts[0], json!({"user_id": id}));
    assert_eq!(verdicts[1], json!({"user_id": id}));
    assert!(
        verdicts[2]["error"].is_string(),
        "Django took a refresh token as an access token: {}",
        verdicts[2]
    );
}

#[tokio::test]
async fn refresh_tokens_simplejwt_blacklisted_stay_refused() {
    // A token Django logged out (or rotated away, with BLACKLIST_AFTER_ROTATION) before
    // gatehouse took over, or while both serve the database, is refused as SimpleJWT
    // refuses it, however it is presented.
    let Some((django, dir)) = Django::migrated().await else {
        return;
    };
    django.create_user("rachel", "rachel@example.com").await;
    let logged_out = django
        .run_one(json!({"op": "tokens", "username": "rachel"}))
        .await;
    let still_good = django
        .run_one(json!({"op": "tokens", "username": "rachel"}))
        .await;
    let refresh = logged_out["refresh"].as_str().unwrap();
    django
        .run_one(json!({"op": "blacklist", "refresh": refresh}))
        .await;
    let app = spawn_app_on(&django.database_url, dir).await;

    let blacklisted = json!({"detail": "Token is blacklisted", "code": "token_not_valid"});
    let reply = app.refresh(refresh).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(reply.body, blacklisted);
    assert_eq!(app.verify(refresh).await.status, StatusCode::UNAUTHORIZED);
    let reply = app
        .post_json("/api/logout/", json!({"refresh": refresh}))
        .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{}", reply.body);

    // The other token of the same user, which Django did not blacklist, still works.
    let other = still_good["refresh"].as_str().unwrap();
    assert_eq!(app.verify(other).await.status, StatusCode::OK);
    let reply = app.refresh(other).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
}

#[tokio::test]
async fn users_equal_but_for_case_stop_start_up_with_their_list_and_nothing_changes() {
    let Some((django, _dir)) = Django::migrated().await else {
        return;
    };
    let alice = django.create_user("Alice", "alice@example.com").await;
    let alice_too = django.create_user("alice", "alice2@example.com").await;
    let nandu = django.create_user("Ñandú", "nandu@example.com").await;
    let nandu_too = django.create_user("ñandú", "nandu2@example.com").await;
    let bob = django.create_user("bob", "Bob@example.com").await;
    let robert = django.create_user("robert", "bob@example.com").await;
    // Django allows any number of users without an email: not a conflict.
    django.create_user("carol", "").await;
    django.create_user("dave", "").await;
    let schema_before = schema(&django.database_url, true).await;
    let rows_before = auth_user_rows(&django.database_url).await;

    let output = gatehouse(&django.database_url, &["serve", "--bind", "127.0.0.1:0"]).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "started anyway: {stderr}");
    let expected = [
        format!("  username: id {alice} \"Alice\", id {alice_too} \"alice\"\n"),
        format!("  username: id {nandu} \"Ñandú\", id {nandu_too} \"ñandú\"\n"),
        format!("  email: id {bob} \"Bob@example.com\", id {robert} \"bob@example.com\"\n"),
    ];
    for line in &expected {
        assert!(
            stderr.contains(line.as_str()),
            "missing {line:?} in:\n{stderr}"
        );
    }
    assert_eq!(
        stderr.matches("\n  ").count(),
        expected.len(),
        "exactly those rows are listed:\n{stderr}"
    );
    assert!(stderr.contains("nothing was changed"), "{stderr}");
    // Not a table, an index or a row more or less.
    assert_eq!(schema(&django.database_url, true).await, schema_before);
    assert_eq!(auth_user_rows(&django.database_url).await, rows_before);

    // Fixed as the message says, gatehouse starts on it.
    django
        .run(json!([
            {"op": "rename", "id": alice_too, "username": "alice2"},
            {"op": "rename", "id": nandu_too, "username": "nandu2"},
            {"op": "rename", "id": robert, "email": ""},
        ]))
        .await;
    let output = gatehouse(&django.database_url, &["migrate"]).await;
    assert_success("gatehouse migrate", &output);
}

/// Runs the gatehouse binary on `database_url` with the test SECRET_KEY.
async fn gatehouse(database_url: &str, args: &[&str]) -> Output {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_gatehouse"));
    command
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", database_url)
        .env("SECRET_KEY", SECRET_KEY)
        .env("RUST_LOG", "warn");
    run(command, None).await
}

#[tokio::test]
async fn a_user_other_apps_refer_to_is_not_deleted_and_djangos_own_links_are_cleared() {
    let Some((django, dir)) = Django::migrated().await else {
        return;
    };
    let keeper = django.create_user("keeper", "keeper@example.com").await;
    let leaver = django.create_user("leaver", "leaver@example.com").await;
    django
        .run(json!([
            // An app's ForeignKey(User, on_delete=CASCADE): Django cascades in Python only.
            {"op": "add_note", "username": "keeper"},
            // Rows of Django's own apps, which gatehouse clears as Django would.
            {"op": "add_to_group", "username": "leaver", "group": "editors"},
            {"op": "log_admin_action", "username": "leaver"},
            {"op": "tokens", "username": "leaver"},
        ]))
        .await;
    let app = spawn_app_on(&django.database_url, dir).await;

    let access = app.login("keeper", PASSWORD).await.str("access");
    let reply = app
        .send_auth(
            reqwest::Method::DELETE,
            "/api/delete_account/",
            &access,
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::CONFLICT);
    assert_eq!(
        reply.body,
        json!({"detail": "This user cannot be deleted because other records refer to it. Deactivate the user instead."})
    );
    let reply = app
        .send_auth(reqwest::Method::DELETE, "/api/users/me/", &access, None)
        .await;
    assert_eq!(reply.status, StatusCode::CONFLICT);
    // Refused whole: the user, its note and its session are all still there.
    assert_eq!(app.me(&access).await.status, StatusCode::OK);
    let left = django
        .run_one(json!({"op": "references", "user_id": keeper}))
        .await;
    assert_eq!(left["user_exists"], true);
    assert_eq!(left["notes"], 1);

    let access = app.login("leaver", PASSWORD).await.str("access");
    let reply = app
        .send_auth(
            reqwest::Method::DELETE,
            "/api/delete_account/",
            &access,
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let left = django
        .run_one(json!({"op": "references", "user_id": leaver}))
        .await;
    assert_eq!(
        left,
        json!({"user_exists": false, "notes": 0, "groups": 0, "admin_log": 0,
               // SimpleJWT's OutstandingToken keeps its row with the user unset
               // (on_delete=SET_NULL).
               "outstanding_user_ids": [null]})
    );
}
