//! What gatehouse leaves in the database (API.md §3): Django's `auth_user`, its own
//! `gatehouse_` tables and nothing else, and passwords in Django's Argon2 encoding.
//! These tests read the database directly, because the storage layout is the point.

use crate::helpers::*;
use reqwest::StatusCode;

/// Every value of the first column of `query`, as text.
async fn strings(app: &TestApp, query: &str) -> Vec<String> {
    with_test_database!(&app.database_url, |conn| sqlx::query_scalar(query)
        .fetch_all(&mut conn)
        .await
        .unwrap())
}

async fn tables(app: &TestApp) -> Vec<String> {
    let query = if is_postgres() {
        "SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1"
    } else {
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY 1"
    };
    strings(app, query).await
}

#[tokio::test]
async fn users_live_in_djangos_auth_user_and_everything_else_in_gatehouse_tables() {
    let app = spawn_app().await;
    for table in tables(&app).await {
        assert!(
            table == "auth_user" || table.starts_with("gatehouse_"),
            "unexpected table {table}"
        );
    }
    let columns = if is_postgres() {
        strings(&app, "SELECT column_name::text FROM information_schema.columns WHERE table_name = 'auth_user' ORDER BY 1").await
    } else {
        strings(
            &app,
            "SELECT name FROM pragma_table_info('auth_user') ORDER BY 1",
        )
        .await
    };
    let mut django = vec![
        "date_joined",
        "email",
        "first_name",
        "id",
        "is_active",
        "is_staff",
        "is_superuser",
        "last_login",
        "last_name",
        "password",
        "username",
    ];
    django.sort();
    assert_eq!(columns, django);
}

#[tokio::test]
async fn passwords_are_stored_as_argon2id_in_djangos_encoding() {
    let app = spawn_app().await;
    app.register_ok("ross").await;
    let hashes = strings(
        &app,
        "SELECT password FROM auth_user WHERE username = 'ross'",
    )
    .await;
    assert!(
        hashes[0].starts_with("argon2$argon2id$v=19$m=19456,t=2,p=1$"),
        "{}",
        hashes[0]
    );
    assert!(!hashes[0].contains(STRONG_PASSWORD));
}

#[tokio::test]
async fn a_hash_djangos_argon2_hasher_wrote_logs_in_and_is_upgraded() {
    let app = spawn_app().await;
    app.register_ok("legacy").await;
    // Written by argon2-cffi exactly as Django's Argon2PasswordHasher does (m=102400, t=2,
    // p=8) for the password "bing@1234x".
    let django = "argon2$argon2id$v=19$m=102400,t=2,p=8$RGphbmdvU2FsdFN0cmluZzIyY2hhcnM$9cA9U+jdB58qjeJWgxd/cSsIrMmKniukGBQAliFT94w";
    app.execute_sql(&format!(
        "UPDATE auth_user SET password = '{django}' WHERE username = 'legacy'"
    ))
    .await;

    assert_eq!(
        app.login("legacy", "bing@1234y").await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        strings(
            &app,
            "SELECT password FROM auth_user WHERE username = 'legacy'"
        )
        .await,
        vec![django]
    );

    assert_eq!(
        app.login("legacy", "bing@1234x").await.status,
        StatusCode::OK
    );
    let upgraded = strings(
        &app,
        "SELECT password FROM auth_user WHERE username = 'legacy'",
    )
    .await;
    assert!(
        upgraded[0].starts_with("argon2$argon2id$v=19$m=19456,t=2,p=1$"),
        "{}",
        upgraded[0]
    );
    assert_eq!(
        app.login("legacy", "bing@1234x").await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn sqlite_timestamps_are_written_as_django_writes_them() {
    let app = spawn_app().await;
    if is_postgres() {
        // PostgreSQL stores `timestamp with time zone`; the text format is SQLite's concern.
        let kinds = strings(&app, "SELECT data_type::text FROM information_schema.columns WHERE table_name = 'auth_user' AND column_name = 'date_joined'").await;
        assert_eq!(kinds, vec!["timestamp with time zone"]);
        return;
    }
    app.register_ok("gunther").await;
    let joined = strings(
        &app,
        "SELECT date_joined FROM auth_user WHERE username = 'gunther'",
    )
    .await;
    // Django's SQLite backend: naive UTC, a space, microseconds.
    let parsed = chrono::NaiveDateTime::parse_from_str(&joined[0], "%Y-%m-%d %H:%M:%S%.6f");
    assert!(parsed.is_ok() && joined[0].len() == 26, "{}", joined[0]);
}

#[tokio::test]
async fn migrating_twice_changes_nothing_and_the_ledger_is_ours() {
    let app = spawn_app().await;
    let before = tables(&app).await;
    let status = app.command(&["migrate"]).status().unwrap();
    assert!(status.success());
    assert_eq!(tables(&app).await, before);
    let applied = strings(
        &app,
        "SELECT name FROM gatehouse_migration ORDER BY version",
    )
    .await;
    assert_eq!(
        applied,
        vec![
            "0001_auth_user",
            "0002_sessions",
            "0003_user_admin",
            "0004_password_reset",
            "0005_login_guard"
        ]
    );
}
