//! Attacks and awkward inputs found in review: each test fails on the code before its fix.

use crate::helpers::*;
use reqwest::{Method, StatusCode};
use serde_json::json;
use std::time::Duration;

#[tokio::test]
async fn null_characters_in_text_are_a_400_not_a_server_error() {
    let app = spawn_app().await;
    let reply = app
        .post_json(
            "/api/login/",
            json!({"username": "a\u{0}b", "password": "x"}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        reply.body,
        json!({"username": ["Null characters are not allowed."]})
    );

    let (_, access, _) = app.signed_in("nully").await;
    let reply = app
        .send_auth(
            Method::PATCH,
            "/api/users/me/",
            &access,
            Some(json!({"first_name": "x\u{0}y"})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        reply.body,
        json!({"first_name": ["Null characters are not allowed."]})
    );
}

#[tokio::test]
async fn a_host_header_of_the_wrong_shape_is_refused_even_when_it_ends_in_an_allowed_domain() {
    let app = spawn_app_with(&[("ALLOWED_HOSTS", ".example.com")]).await;
    for host in [
        "evil.test/.example.com",
        "evil.test?.example.com",
        "a b.example.com",
        "x.example.com:8o",
    ] {
        let response = app
            .client
            .post(app.url("/api/reset_password/"))
            .header("Host", host)
            .json(&json!({"email": "a@example.com"}))
            .send()
            .await
            .unwrap();
        let reply = Reply::read(response).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{host}");
        assert_eq!(
            reply.body,
            json!({"detail": "Invalid Host header."}),
            "{host}"
        );
    }
    let ok = app
        .client
        .get(app.url("/api/health/"))
        .header("Host", "auth.example.com:8000")
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
}

/// Makes `username` staff (and superuser when `superuser`), arranging what only the
/// command line or another superuser could.
async fn promote(app: &TestApp, username: &str, superuser: bool) {
    let flag = if superuser { "TRUE" } else { "FALSE" };
    app.execute_sql(&format!(
        "UPDATE auth_user SET is_staff = TRUE, is_superuser = {flag} WHERE username = '{username}'"
    ))
    .await;
}

#[tokio::test]
async fn plain_staff_cannot_change_or_delete_a_superuser_or_another_staff_member() {
    let app = spawn_app().await;
    let (root_id, _, _) = app.signed_in("root").await;
    let (other_staff_id, _, _) = app.signed_in("otherstaff").await;
    let (plain_id, _, _) = app.signed_in("plain").await;
    let (_, staff, _) = app.signed_in("staff").await;
    promote(&app, "root", true).await;
    promote(&app, "otherstaff", false).await;
    promote(&app, "staff", false).await;

    for id in [root_id, other_staff_id] {
        let path = format!("/api/users/{id}/");
        let takeover = json!({"email": "attacker@evil.example"});
        let reply = app
            .send_auth(Method::PATCH, &path, &staff, Some(takeover))
            .await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN, "{}", reply.body);
        assert_eq!(
            reply.body,
            json!({"detail": "You do not have permission to perform this action."})
        );
        let reply = app.send_auth(Method::DELETE, &path, &staff, None).await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN);
        // Still readable: staff see everyone.
        assert_eq!(app.get_auth(&path, &staff).await.status, StatusCode::OK);
    }
    let reply = app
        .send_auth(
            Method::PATCH,
            &format!("/api/users/{plain_id}/"),
            &staff,
            Some(json!({"first_name": "P"})),
        )
        .await;
    assert_eq!(
        reply.status,
        StatusCode::OK,
        "staff still administer plain users"
    );
}

/// The newest `.eml` message's `token:` value, waiting for the worker to write it.
async fn reset_token_from_mail(app: &TestApp, count: usize) -> (String, String) {
    let dir = app.dir.path().join("mail");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        if files.len() >= count {
            files.sort();
            let text = std::fs::read_to_string(files.last().unwrap()).unwrap();
            let line = |prefix: &str| {
                text.lines()
                    .find_map(|l| l.strip_prefix(prefix))
                    .map(|v| v.trim().to_owned())
                    .expect("line in mail")
            };
            return (line("uid: "), line("token: "));
        }
        assert!(std::time::Instant::now() < deadline, "no mail arrived");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn changing_the_email_kills_reset_links_sent_to_the_old_address() {
    let app = spawn_app().await;
    let (_, access, _) = app.signed_in("mover").await;
    app.post_json(
        "/api/reset_password/",
        json!({"email": "mover@example.com"}),
    )
    .await;
    let (uid, token) = reset_token_from_mail(&app, 1).await;

    let change = json!({"email": "new-home@example.com", "current_password": STRONG_PASSWORD});
    assert_eq!(
        app.send_auth(Method::PATCH, "/api/users/me/", &access, Some(change))
            .await
            .status,
        StatusCode::OK
    );

    let confirm = json!({"uid": uid, "token": token, "new_password": "another-Strong-pass-9"});
    let reply = app.post_json("/api/reset_password/confirm/", confirm).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.body, json!({"token": ["Invalid or expired token."]}));
}

#[tokio::test]
async fn a_spent_simplejwt_refresh_token_presented_again_ends_the_session_it_started() {
    let app = spawn_app().await;
    let (id, _, _) = app.signed_in("djangouser").await;
    let minted = simplejwt_token("refresh", id, now() - 5, now() + 3600);
    let first = app.refresh(&minted).await;
    assert_eq!(first.status, StatusCode::OK);
    let session_access = first.str("access");
    assert_eq!(app.me(&session_access).await.status, StatusCode::OK);

    let again = app.refresh(&minted).await;
    assert_eq!(again.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        again.body,
        json!({"detail": "Token is blacklisted", "code": "token_not_valid"})
    );
    assert_eq!(
        app.me(&session_access).await.status,
        StatusCode::UNAUTHORIZED,
        "the exchanged session ended"
    );
    assert_eq!(
        app.verify(&minted).await.status,
        StatusCode::UNAUTHORIZED,
        "verify knows it is spent"
    );
}

#[tokio::test]
async fn deleting_a_user_clears_the_rows_djangos_own_tables_hold_for_it() {
    let app = spawn_app().await;
    let (id, access, _) = app.signed_in("grouped").await;
    // Django's auth tables, as its migrations create them (constraints deferred, no
    // cascade: Django cascades in Python).
    let fk = "DEFERRABLE INITIALLY DEFERRED";
    let serial = if is_postgres() {
        "integer GENERATED BY DEFAULT AS IDENTITY"
    } else {
        "integer"
    };
    app.execute_sql(&format!("CREATE TABLE auth_group (id {serial} NOT NULL PRIMARY KEY, name varchar(150) NOT NULL UNIQUE)")).await;
    app.execute_sql(&format!(
        "CREATE TABLE auth_user_groups (id {serial} NOT NULL PRIMARY KEY, \
         user_id integer NOT NULL REFERENCES auth_user (id) {fk}, group_id integer NOT NULL REFERENCES auth_group (id) {fk})"
    ))
    .await;
    app.execute_sql("INSERT INTO auth_group (id, name) VALUES (1, 'editors')")
        .await;
    app.execute_sql(&format!(
        "INSERT INTO auth_user_groups (id, user_id, group_id) VALUES (1, {id}, 1)"
    ))
    .await;

    let reply = app
        .send_auth(Method::DELETE, "/api/delete_account/", &access, None)
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(
        reply.body,
        json!({"message": "Account deleted successfully"})
    );
    assert_eq!(
        app.login("grouped", STRONG_PASSWORD).await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn a_search_with_very_many_terms_is_a_400_and_repeats_do_not_count() {
    let app = spawn_app().await;
    let (_, staff, _) = app.signed_in("boss").await;
    promote(&app, "boss", false).await;
    let many: Vec<String> = (0..1100).map(|i| format!("t{i}")).collect();
    let reply = app
        .get_auth(&format!("/api/users/?search={}", many.join(",")), &staff)
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        reply.body,
        json!({"search": ["Use at most 32 search terms."]})
    );
    // The same term a thousand times is one term.
    let repeated = vec!["boss"; 1000].join(",");
    let reply = app
        .get_auth(&format!("/api/users/?search={repeated}"), &staff)
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["count"], 1);
}
