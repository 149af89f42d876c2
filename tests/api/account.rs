//! The signed-in user's own account: `/api/users/me/`, `/api/change_password/` and
//! `/api/delete_account/` (API.md §3, §4, §6).

use crate::helpers::*;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

/// Django's answer to a failed login (API.md §4).
fn login_failed() -> Value {
    json!({"detail": "No active account found with the given credentials"})
}

/// SimpleJWT's 401 for the token of a user that no longer exists (API.md §5).
fn user_not_found() -> Value {
    json!({"detail": "User not found", "code": "user_not_found"})
}

/// Asserts `value` is an RFC 3339 timestamp in UTC written with `Z`, within a minute of now.
fn assert_recent_utc_timestamp(value: &Value) {
    let text = value
        .as_str()
        .unwrap_or_else(|| panic!("not a timestamp string: {value}"));
    assert!(text.ends_with('Z'), "not UTC with Z: {text}");
    let at = chrono::DateTime::parse_from_rfc3339(text)
        .unwrap_or_else(|e| panic!("not RFC 3339: {text}: {e}"));
    assert_eq!(at.offset().local_minus_utc(), 0, "{text}");
    let age = chrono::Utc::now().signed_duration_since(at).num_seconds();
    assert!((-60..=60).contains(&age), "not recent: {text}");
}

/// The whole user body `register_ok` + `login_ok` leave for `username`, with the
/// timestamps taken from `body` once they are checked.
fn fresh_user(id: i64, username: &str, body: &Value) -> Value {
    assert_recent_utc_timestamp(&body["date_joined"]);
    assert_recent_utc_timestamp(&body["last_login"]);
    json!({
        "id": id,
        "username": username,
        "email": format!("{username}@example.com"),
        "first_name": "",
        "last_name": "",
        "is_active": true,
        "is_staff": false,
        "is_superuser": false,
        "date_joined": body["date_joined"],
        "last_login": body["last_login"],
    })
}

async fn patch_me(app: &TestApp, access: &str, body: Value) -> Reply {
    app.send_auth(Method::PATCH, "/api/users/me/", access, Some(body))
        .await
}

async fn change_password(app: &TestApp, access: &str, old: &str, new: &str) -> Reply {
    app.send_auth(
        Method::POST,
        "/api/change_password/",
        access,
        Some(json!({"old_password": old, "new_password": new})),
    )
    .await
}

// ---- GET /api/users/me/ ----

#[tokio::test]
async fn me_answers_exactly_the_users_fields_with_utc_timestamps() {
    let app = spawn_app().await;
    let (id, access, _) = app.signed_in("chandler").await;
    let reply = app.me(&access).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.header("content-type"), Some("application/json"));
    assert_eq!(reply.body, fresh_user(id, "chandler", &reply.body));
    assert!(id > 0);
}

#[tokio::test]
async fn me_never_shows_a_password_or_its_hash() {
    let app = spawn_app().await;
    let (_, access, _) = app.signed_in("chandler").await;
    let reply = app.me(&access).await;
    assert_eq!(reply.status, StatusCode::OK);
    let text = reply.body.to_string();
    assert!(!text.contains("password"), "{text}");
    assert!(!text.contains("argon2"), "{text}");
    assert!(!text.contains(STRONG_PASSWORD), "{text}");
}

// ---- PATCH / PUT /api/users/me/ ----

#[tokio::test]
async fn first_and_last_name_change_without_a_password() {
    let app = spawn_app().await;
    let (id, access, _) = app.signed_in("monica").await;
    let reply = patch_me(
        &app,
        &access,
        json!({"first_name": "Monica", "last_name": "Geller"}),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let mut expected = fresh_user(id, "monica", &reply.body);
    expected["first_name"] = json!("Monica");
    expected["last_name"] = json!("Geller");
    assert_eq!(reply.body, expected);

    let me = app.me(&access).await;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(me.body, expected);
}

#[tokio::test]
async fn changing_the_username_without_current_password_is_refused() {
    let app = spawn_app().await;
    let (id, access, _) = app.signed_in("ross").await;
    let reply = patch_me(&app, &access, json!({"username": "drross"})).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        reply.body,
        json!({"current_password": ["This field is required."]})
    );
    let me = app.me(&access).await;
    assert_eq!(me.body, fresh_user(id, "ross", &me.body));
}

#[tokio::test]
async fn changing_the_email_without_current_password_is_refused() {
    let app = spawn_app().await;
    let (id, access, _) = app.signed_in("ross").await;
    let reply = patch_me(&app, &access, json!({"email": "ross@nyu.edu"})).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        reply.body,
        json!({"current_password": ["This field is required."]})
    );
    let me = app.me(&access).await;
    assert_eq!(me.body, fresh_user(id, "ross", &me.body));
}

#[tokio::test]
async fn changing_the_username_or_email_with_a_wrong_current_password_is_refused() {
    let app = spawn_app().await;
    let (id, access, _) = app.signed_in("ross").await;
    for body in [
        json!({"username": "drross", "current_password": "not-the-Password-9"}),
        json!({"email": "ross@nyu.edu", "current_password": "not-the-Password-9"}),
    ] {
        let reply = patch_me(&app, &access, body).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST);
        assert_eq!(
            reply.body,
            json!({"current_password": ["Invalid password."]})
        );
    }
    let me = app.me(&access).await;
    assert_eq!(me.body, fresh_user(id, "ross", &me.body));
}

#[tokio::test]
async fn the_username_changes_with_the_right_current_password_and_login_follows_it() {
    let app = spawn_app().await;
    let (id, access, _) = app.signed_in("ross").await;
    let reply = patch_me(
        &app,
        &access,
        json!({"username": "drgeller", "current_password": STRONG_PASSWORD}),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let mut expected = fresh_user(id, "ross", &reply.body);
    expected["username"] = json!("drgeller");
    assert_eq!(reply.body, expected);
    assert_eq!(app.me(&access).await.body, expected);

    let login = app.login("drgeller", STRONG_PASSWORD).await;
    assert_eq!(login.status, StatusCode::OK, "{}", login.body);
    let login = app.login("ross", STRONG_PASSWORD).await;
    assert_eq!(login.status, StatusCode::UNAUTHORIZED);
    assert_eq!(login.body, login_failed());
}

#[tokio::test]
async fn the_email_changes_with_the_right_current_password() {
    let app = spawn_app().await;
    let (id, access, _) = app.signed_in("ross").await;
    let reply = patch_me(
        &app,
        &access,
        json!({"email": "Ross.Geller@NYU.edu", "current_password": STRONG_PASSWORD}),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let mut expected = fresh_user(id, "ross", &reply.body);
    expected["email"] = json!("Ross.Geller@nyu.edu");
    assert_eq!(reply.body, expected);
    assert_eq!(app.me(&access).await.body, expected);
}

#[tokio::test]
async fn sending_the_same_username_and_email_back_needs_no_password() {
    let app = spawn_app().await;
    let (id, access, _) = app.signed_in("rachel").await;
    let reply = patch_me(
        &app,
        &access,
        json!({"username": "rachel", "email": "rachel@example.com", "first_name": "Rachel"}),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let mut expected = fresh_user(id, "rachel", &reply.body);
    expected["first_name"] = json!("Rachel");
    assert_eq!(reply.body, expected);
}

#[tokio::test]
async fn another_users_username_is_taken_in_any_case() {
    let app = spawn_app().await;
    app.register_ok("phoebe").await;
    let (id, access, _) = app.signed_in("joey").await;
    for taken in ["phoebe", "PHOEBE", "Phoebe"] {
        let reply = patch_me(
            &app,
            &access,
            json!({"username": taken, "current_password": STRONG_PASSWORD}),
        )
        .await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{taken}");
        assert_eq!(
            reply.body,
            json!({"username": ["A user with that username already exists."]}),
            "{taken}"
        );
    }
    let me = app.me(&access).await;
    assert_eq!(me.body, fresh_user(id, "joey", &me.body));
}

#[tokio::test]
async fn another_users_email_is_taken_in_any_case() {
    let app = spawn_app().await;
    app.register_ok("phoebe").await;
    let (_, access, _) = app.signed_in("joey").await;
    let reply = patch_me(
        &app,
        &access,
        json!({"email": "PHOEBE@Example.com", "current_password": STRONG_PASSWORD}),
    )
    .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        reply.body,
        json!({"email": ["A user with that email already exists."]})
    );
}

#[tokio::test]
async fn an_invalid_new_username_is_refused_with_djangos_message() {
    let app = spawn_app().await;
    let (_, access, _) = app.signed_in("joey").await;
    let reply = patch_me(
        &app,
        &access,
        json!({"username": "joey tribbiani", "current_password": STRONG_PASSWORD}),
    )
    .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        reply.body,
        json!({"username": ["Enter a valid username. This value may contain only letters, numbers, and @/./+/-/_ characters."]})
    );
}

#[tokio::test]
async fn read_only_fields_in_the_body_are_ignored() {
    let app = spawn_app().await;
    let (id, access, _) = app.signed_in("gunther").await;
    let reply = patch_me(
        &app,
        &access,
        json!({
            "id": id + 1000,
            "is_staff": true,
            "is_superuser": true,
            "date_joined": "2000-01-01T00:00:00Z",
            "last_login": "2000-01-01T00:00:00Z",
            "last_name": "Centralperk",
        }),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let mut expected = fresh_user(id, "gunther", &reply.body);
    expected["last_name"] = json!("Centralperk");
    assert_eq!(reply.body, expected);
    assert_eq!(app.me(&access).await.body, expected);
}

#[tokio::test]
async fn put_without_username_and_email_names_both_as_required() {
    let app = spawn_app().await;
    let (id, access, _) = app.signed_in("janice").await;
    let reply = app
        .send_auth(
            Method::PUT,
            "/api/users/me/",
            &access,
            Some(json!({"first_name": "Janice"})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        reply.body,
        json!({"username": ["This field is required."], "email": ["This field is required."]})
    );
    let me = app.me(&access).await;
    assert_eq!(me.body, fresh_user(id, "janice", &me.body));
}

#[tokio::test]
async fn put_with_the_same_username_and_email_changes_the_names() {
    let app = spawn_app().await;
    let (id, access, _) = app.signed_in("janice").await;
    let reply = app
        .send_auth(
            Method::PUT,
            "/api/users/me/",
            &access,
            Some(json!({
                "username": "janice",
                "email": "janice@example.com",
                "first_name": "Janice",
                "last_name": "Hosenstein",
            })),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let mut expected = fresh_user(id, "janice", &reply.body);
    expected["first_name"] = json!("Janice");
    expected["last_name"] = json!("Hosenstein");
    assert_eq!(reply.body, expected);
}

// ---- DELETE /api/users/me/ and /api/delete_account/ ----

#[tokio::test]
async fn deleting_me_answers_204_with_an_empty_body_and_the_user_is_gone() {
    let app = spawn_app().await;
    let (_, access, _) = app.signed_in("richard").await;
    let response = app
        .client
        .delete(app.url("/api/users/me/"))
        .bearer_auth(&access)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let bytes = response.bytes().await.expect("body");
    assert!(bytes.is_empty(), "{:?}", String::from_utf8_lossy(&bytes));

    let login = app.login("richard", STRONG_PASSWORD).await;
    assert_eq!(login.status, StatusCode::UNAUTHORIZED);
    assert_eq!(login.body, login_failed());
    let me = app.me(&access).await;
    assert_eq!(me.status, StatusCode::UNAUTHORIZED);
    assert_eq!(me.body, user_not_found());
}

#[tokio::test]
async fn delete_account_answers_the_seeds_message_and_the_login_stops_working() {
    let app = spawn_app().await;
    let (_, access, refresh) = app.signed_in("chandler").await;
    let reply = app
        .send_auth(Method::DELETE, "/api/delete_account/", &access, None)
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        reply.body,
        json!({"message": "Account deleted successfully"})
    );

    let login = app.login("chandler", STRONG_PASSWORD).await;
    assert_eq!(login.status, StatusCode::UNAUTHORIZED);
    assert_eq!(login.body, login_failed());
    let me = app.me(&access).await;
    assert_eq!(me.status, StatusCode::UNAUTHORIZED);
    assert_eq!(me.body, user_not_found());
    assert_eq!(app.refresh(&refresh).await.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_deleted_username_and_email_can_be_registered_again_by_a_new_user() {
    let app = spawn_app().await;
    let (old_id, access, _) = app.signed_in("chandler").await;
    let reply = app
        .send_auth(Method::DELETE, "/api/delete_account/", &access, None)
        .await;
    assert_eq!(reply.status, StatusCode::OK);

    let (new_id, new_access, _) = app.signed_in("chandler").await;
    assert_ne!(new_id, old_id, "a deleted user's id is never reused");
    let me = app.me(&new_access).await;
    assert_eq!(me.body, fresh_user(new_id, "chandler", &me.body));
    // The old token names the deleted user, not the new one.
    let me = app.me(&access).await;
    assert_eq!(me.status, StatusCode::UNAUTHORIZED);
}

// ---- POST /api/change_password/ ----

#[tokio::test]
async fn change_password_without_fields_names_both() {
    let app = spawn_app().await;
    let (_, access, _) = app.signed_in("mike").await;
    let reply = app
        .send_auth(
            Method::POST,
            "/api/change_password/",
            &access,
            Some(json!({})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        reply.body,
        json!({"old_password": ["This field is required."], "new_password": ["This field is required."]})
    );
}

#[tokio::test]
async fn a_wrong_old_password_is_refused_and_nothing_changes() {
    let app = spawn_app().await;
    let (_, access, _) = app.signed_in("mike").await;
    let reply = change_password(&app, &access, "wrong-Old-password-1", "brand-New-secret-42").await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.body, json!({"old_password": ["Invalid password."]}));
    assert_eq!(
        app.login("mike", STRONG_PASSWORD).await.status,
        StatusCode::OK
    );
    assert_eq!(
        app.login("mike", "brand-New-secret-42").await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn a_weak_new_password_is_refused_with_djangos_messages() {
    let app = spawn_app().await;
    let (_, access, _) = app.signed_in("mike").await;
    let reply = change_password(&app, &access, STRONG_PASSWORD, "12345").await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        reply.body,
        json!({"new_password": [
            "This password is too short. It must contain at least 8 characters.",
            "This password is too common.",
            "This password is entirely numeric.",
        ]})
    );
    assert_eq!(
        app.login("mike", STRONG_PASSWORD).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_new_password_like_the_username_is_refused() {
    let app = spawn_app().await;
    let (_, access, _) = app.signed_in("rachelgreen").await;
    let reply = change_password(&app, &access, STRONG_PASSWORD, "rachelgreen1").await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        reply.body,
        json!({"new_password": ["The password is too similar to the username."]})
    );
}

#[tokio::test]
async fn changing_the_password_swaps_which_password_logs_in() {
    let app = spawn_app().await;
    let (_, access, _) = app.signed_in("mike").await;
    let new = "brand-New-secret-42";
    let reply = change_password(&app, &access, STRONG_PASSWORD, new).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(
        reply.body,
        json!({"message": "Password changed successfully"})
    );

    let old = app.login("mike", STRONG_PASSWORD).await;
    assert_eq!(old.status, StatusCode::UNAUTHORIZED);
    assert_eq!(old.body, login_failed());
    let fresh = app.login("mike", new).await;
    assert_eq!(fresh.status, StatusCode::OK, "{}", fresh.body);
}

#[tokio::test]
async fn changing_the_password_ends_every_other_session_but_not_this_one() {
    let app = spawn_app().await;
    let (_, access, refresh) = app.signed_in("mike").await;
    let (other_access, other_refresh) = app.login_ok("mike").await;
    let reply = change_password(&app, &access, STRONG_PASSWORD, "brand-New-secret-42").await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);

    assert_eq!(app.me(&access).await.status, StatusCode::OK);
    assert_eq!(app.refresh(&refresh).await.status, StatusCode::OK);

    let me = app.me(&other_access).await;
    assert_eq!(me.status, StatusCode::UNAUTHORIZED);
    assert_eq!(me.body, access_token_not_valid());
    assert_eq!(
        app.refresh(&other_refresh).await.status,
        StatusCode::UNAUTHORIZED
    );
}

/// What the owner does on the second instance while the first request waits.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Meanwhile {
    /// Changes the password: the one the first request re-entered is not it any more.
    ChangesPassword,
    /// Signs in, which replaces the Django hash the first request read with gatehouse's
    /// own: the password is the same.
    SignsInUpgradingADjangoHash,
}

/// Two instances on one database. On `first`, whose one hash slot is held, a request
/// re-entering the password (with a token of its own, as a thief's) reads the stored
/// hash and waits; meanwhile the owner does what `meanwhile` says on the second.
/// Returns both instances and the first request's answer.
async fn race_the_owner(
    first: TestApp,
    method: Method,
    path: &str,
    body: Value,
    meanwhile: Meanwhile,
) -> (TestApp, TestApp, Reply) {
    first.register_ok("ross").await;
    let (stolen, _) = first.login_ok("ross").await;
    let second = spawn_app_on(&first.database_url, tempfile::tempdir().unwrap()).await;
    let (owner, _) = second.login_ok("ross").await;
    if meanwhile == Meanwhile::SignsInUpgradingADjangoHash {
        let (_, django_hash) = DJANGO_HASHES[0];
        first
            .execute_sql(&format!(
                "UPDATE auth_user SET password = '{django_hash}' WHERE username = 'ross'"
            ))
            .await;
    }

    let held = hold_hash_slot(&first, 3.0).await;
    let racing = {
        let request = first
            .client
            .request(method, first.url(path))
            .bearer_auth(stolen)
            .json(&body);
        tokio::spawn(async move { Reply::read(request.send().await.unwrap()).await })
    };
    // Its attempt counted: it has read the stored hash and waits for the slot.
    wait_until_an_attempt_is_counted(&first).await;
    match meanwhile {
        Meanwhile::ChangesPassword => {
            let changed =
                change_password(&second, &owner, STRONG_PASSWORD, "owner-Chosen-passw0rd").await;
            assert_eq!(changed.status, StatusCode::OK, "{}", changed.body);
        }
        Meanwhile::SignsInUpgradingADjangoHash => {
            let signed_in = second.login("ross", STRONG_PASSWORD).await;
            assert_eq!(signed_in.status, StatusCode::OK, "{}", signed_in.body);
            let upgraded = "SELECT count(*) FROM auth_user \
                            WHERE username = 'ross' AND password LIKE 'argon2$%'";
            assert_eq!(second.query_count(upgraded).await, 1, "not upgraded");
        }
    }
    assert!(
        !held.iter().all(|hold| hold.is_finished()),
        "the hash slot was free before the owner was done: the race was not set up"
    );
    let raced = racing.await.unwrap();
    for hold in held {
        assert_eq!(hold.await.unwrap().unwrap().status(), StatusCode::OK);
    }
    (first, second, raced)
}

/// `race_the_owner` where the owner changes the password meanwhile.
async fn race_the_owners_password_change(
    method: Method,
    path: &str,
    body: Value,
) -> (TestApp, TestApp, Reply) {
    let first = spawn_app_with_one_hash_slot(&[]).await;
    race_the_owner(first, method, path, body, Meanwhile::ChangesPassword).await
}

#[tokio::test]
async fn a_password_change_does_not_overwrite_one_that_landed_while_it_was_checked() {
    let body = json!({"old_password": STRONG_PASSWORD, "new_password": "thief-Chosen-passw0rd"});
    let (first, second, raced) =
        race_the_owners_password_change(Method::POST, "/api/change_password/", body).await;

    assert_eq!(raced.status, StatusCode::BAD_REQUEST, "{}", raced.body);
    assert_eq!(raced.body, json!({"old_password": ["Invalid password."]}));
    let owner_login = second.login("ross", "owner-Chosen-passw0rd").await;
    assert_eq!(owner_login.status, StatusCode::OK, "{}", owner_login.body);
    assert_eq!(
        first.login("ross", "thief-Chosen-passw0rd").await.body,
        login_failed()
    );
}

#[tokio::test]
async fn an_email_change_proved_by_a_password_changed_meanwhile_is_refused() {
    // The account's email is where reset links go: a thief's change, proved with the old
    // password, must not land after the owner changed the password.
    let body = json!({"email": "thief@example.com", "current_password": STRONG_PASSWORD});
    let (_, second, raced) =
        race_the_owners_password_change(Method::PATCH, "/api/users/me/", body).await;

    assert_eq!(raced.status, StatusCode::BAD_REQUEST, "{}", raced.body);
    assert_eq!(
        raced.body,
        json!({"current_password": ["Invalid password."]})
    );
    let (access, _) = {
        let reply = second.login("ross", "owner-Chosen-passw0rd").await;
        (reply.str("access"), reply.str("refresh"))
    };
    assert_eq!(second.me(&access).await.body["email"], "ross@example.com");
}

#[tokio::test]
async fn a_password_change_proved_against_a_hash_upgraded_meanwhile_still_lands() {
    // The owner's sign-in elsewhere replaced the Django hash the change was proved
    // against by gatehouse's own hash of the same password: not a change, so the
    // password still opens the change.
    let body = json!({"old_password": STRONG_PASSWORD, "new_password": "a-Brand-new-passw0rd"});
    let first = spawn_app_with_one_hash_slot(&[]).await;
    let (first, _, raced) = race_the_owner(
        first,
        Method::POST,
        "/api/change_password/",
        body,
        Meanwhile::SignsInUpgradingADjangoHash,
    )
    .await;

    assert_eq!(raced.status, StatusCode::OK, "{}", raced.body);
    assert_eq!(
        first.login("ross", "a-Brand-new-passw0rd").await.status,
        StatusCode::OK
    );
    assert_eq!(
        first.login("ross", STRONG_PASSWORD).await.body,
        login_failed()
    );
}

#[tokio::test]
async fn an_email_change_proved_against_a_hash_upgraded_meanwhile_still_lands() {
    let body = json!({"email": "ross@new.example.com", "current_password": STRONG_PASSWORD});
    let first = spawn_app_with_one_hash_slot(&[]).await;
    let (_, second, raced) = race_the_owner(
        first,
        Method::PATCH,
        "/api/users/me/",
        body,
        Meanwhile::SignsInUpgradingADjangoHash,
    )
    .await;

    assert_eq!(raced.status, StatusCode::OK, "{}", raced.body);
    assert_eq!(raced.body["email"], "ross@new.example.com");
    let (access, _) = second.login_ok("ross").await;
    assert_eq!(
        second.me(&access).await.body["email"],
        "ross@new.example.com"
    );
}

/// A client whose requests all carry `X-Forwarded-For: address`: with the app trusting
/// loopback as its proxy, the client the guard sees.
fn client_at(address: &str) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert("x-forwarded-for", address.parse().unwrap());
    reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .unwrap()
}

/// `race_the_owner` by a thief's client (203.0.113.9) whose request is refused with
/// `answer`, under a guard that holds new clients back after one failure on the account.
/// Then the owner signs in again, a stranger fails once, and the thief guesses: let
/// through (401) if the race left the thief's client known to the account, held back
/// (429) if not. A password the owner changed meanwhile must not make the thief's address
/// known again (a change forgets every client known to the account), or the account-wide
/// count would not hold the thief back while guessing the new password; a password only
/// re-hashed meanwhile is still the user's, and proves its client as a login would.
async fn assert_after_the_race_the_thief_is(
    known: bool,
    meanwhile: Meanwhile,
    (method, path, body): (Method, &str, Value),
    answer: Value,
) {
    let mut first = spawn_app_with_one_hash_slot(&[
        ("TRUSTED_PROXIES", "127.0.0.1"),
        ("GATEHOUSE_LOCKOUT_ACCOUNT_FAILURES", "1"),
    ])
    .await;
    first.client = client_at("203.0.113.9");
    let owners_password = match meanwhile {
        Meanwhile::ChangesPassword => "owner-Chosen-passw0rd",
        Meanwhile::SignsInUpgradingADjangoHash => STRONG_PASSWORD,
    };
    let (first, second, raced) = race_the_owner(first, method, path, body, meanwhile).await;
    assert_eq!(raced.status, StatusCode::BAD_REQUEST, "{}", raced.body);
    assert_eq!(raced.body, answer);
    // The owner signs in again (and so is known), then a stranger fails once: clients
    // new to the account are held back from now on (on `first`), known ones are not.
    let owner_login = second.login("ross", owners_password).await;
    assert_eq!(owner_login.status, StatusCode::OK, "{}", owner_login.body);
    let stranger = client_at("192.0.2.7")
        .post(first.url("/api/login/"))
        .json(&json!({"username": "ross", "password": "a-Wrong-guess-1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(stranger.status(), StatusCode::UNAUTHORIZED);

    // The owner's address (loopback: no X-Forwarded-For) is known, and let through.
    let owner_guess = reqwest::Client::new()
        .post(first.url("/api/login/"))
        .json(&json!({"username": "ross", "password": "a-Wrong-guess-2"}))
        .send()
        .await
        .unwrap();
    assert_eq!(owner_guess.status(), StatusCode::UNAUTHORIZED);
    let thief_guess = first.login("ross", "a-Wrong-guess-3").await;
    let expected = match known {
        true => StatusCode::UNAUTHORIZED,
        false => StatusCode::TOO_MANY_REQUESTS,
    };
    assert_eq!(thief_guess.status, expected, "{}", thief_guess.body);
}

#[tokio::test]
async fn a_client_whose_password_a_change_overtook_is_not_made_known_to_the_account() {
    // Refused by the write, which finds the password changed.
    let body = json!({"email": "thief@example.com", "current_password": STRONG_PASSWORD});
    let answer = json!({"current_password": ["Invalid password."]});
    let request = (Method::PATCH, "/api/users/me/", body);
    assert_after_the_race_the_thief_is(false, Meanwhile::ChangesPassword, request, answer).await;
}

#[tokio::test]
async fn a_client_overtaken_while_its_request_is_refused_for_the_rest_is_not_made_known() {
    // Refused for a weak new password before any write looks at the stored hash: the old
    // password is right for the answer, but is no longer the user's when it is settled.
    let body = json!({"old_password": STRONG_PASSWORD, "new_password": "password"});
    let answer = json!({"new_password": ["This password is too common."]});
    let request = (Method::POST, "/api/change_password/", body);
    assert_after_the_race_the_thief_is(false, Meanwhile::ChangesPassword, request, answer).await;
}

#[tokio::test]
async fn a_request_refused_for_the_rest_while_its_hash_was_only_upgraded_settles_as_proved() {
    // As above, but the owner's login meanwhile only re-hashed the same password (a
    // Django hash upgraded): the password is still the user's, so the client is known.
    let body = json!({"old_password": STRONG_PASSWORD, "new_password": "password"});
    let answer = json!({"new_password": ["This password is too common."]});
    let request = (Method::POST, "/api/change_password/", body);
    let meanwhile = Meanwhile::SignsInUpgradingADjangoHash;
    assert_after_the_race_the_thief_is(true, meanwhile, request, answer).await;
}

#[tokio::test]
async fn the_right_password_in_a_request_refused_for_the_rest_clears_the_clients_count() {
    // A right old or current password proves the client knows it, as a login does, even
    // when the request is refused for something else (a new password too weak, a name
    // already taken): the client's earlier failures are cleared. With two failures
    // allowed, wrong + right + wrong + wrong is never held back; had the right one been
    // only taken back from the count, the fourth would be; had it counted, the third.
    let app = spawn_app_with(&[("GATEHOUSE_LOCKOUT_CLIENT_FAILURES", "2")]).await;
    app.register_ok("chandler").await;
    let wrong_then = |user: &'static str, right: Value, refused_field: &'static str| {
        let app = &app;
        async move {
            let (_, access, _) = app.signed_in(user).await;
            let old_wrong =
                json!({"old_password": "a-Wrong-guess-1", "new_password": "a-Brand-new-passw0rd"});
            let (method, path) = if right.get("old_password").is_some() {
                (Method::POST, "/api/change_password/")
            } else {
                (Method::PATCH, "/api/users/me/")
            };
            let replies = [
                change_password_raw(app, &access, old_wrong.clone()).await,
                app.send_auth(method, path, &access, Some(right)).await,
                change_password_raw(app, &access, old_wrong.clone()).await,
                change_password_raw(app, &access, old_wrong).await,
            ];
            let statuses: Vec<_> = replies.iter().map(|reply| reply.status).collect();
            assert_eq!(
                statuses,
                [StatusCode::BAD_REQUEST; 4],
                "{user}: {replies:#?}"
            );
            assert!(
                replies[1].body.get(refused_field).is_some(),
                "{}",
                replies[1].body
            );
        }
    };
    let weak = json!({"old_password": STRONG_PASSWORD, "new_password": "password"});
    wrong_then("ross", weak, "new_password").await;
    let taken = json!({"username": "chandler", "current_password": STRONG_PASSWORD});
    wrong_then("monica", taken, "username").await;
}

/// `POST /api/change_password/` with `body` as it is.
async fn change_password_raw(app: &TestApp, access: &str, body: Value) -> Reply {
    app.send_auth(Method::POST, "/api/change_password/", access, Some(body))
        .await
}

#[tokio::test]
async fn a_username_stored_before_normalisation_sent_back_as_it_is_is_no_change() {
    // A row Django wrote may hold a name NFKC would change (`ｒoss`, fullwidth r). A
    // client that PUTs the profile back with that name unchanged changes nothing: no
    // password asked, no rename.
    let app = spawn_app().await;
    let (id, access, _) = app.signed_in("ross").await;
    app.execute_sql(&format!(
        "UPDATE auth_user SET username = 'ｒoss' WHERE id = {id}"
    ))
    .await;

    let body = json!({"username": "ｒoss", "email": "ross@example.com", "first_name": "Ross", "last_name": ""});
    let reply = app
        .send_auth(Method::PUT, "/api/users/me/", &access, Some(body))
        .await;

    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["username"], "ｒoss");
    assert_eq!(reply.body["first_name"], "Ross");
}

#[tokio::test]
async fn a_password_change_waiting_on_another_change_does_not_overwrite_it() {
    // The conditional write itself, under a lock wait: another change (held open here by
    // hand, as another instance's would be) has locked the user's row when this change
    // writes. Once that one commits, this one must see it and change nothing.
    let app = spawn_app().await;
    let (id, access, _) = app.signed_in("ross").await;
    with_test_database!(&app.database_url, |conn| {
        let mut other = conn.begin().await.expect("begin");
        sqlx::query("UPDATE auth_user SET password = '!changed' WHERE id = $1")
            .bind(id)
            .execute(&mut *other)
            .await
            .expect("password");

        let waiting = {
            let request = app
                .client
                .post(app.url("/api/change_password/"))
                .bearer_auth(&access)
                .json(&json!({"old_password": STRONG_PASSWORD, "new_password": "mine-Chosen-passw0rd"}));
            tokio::spawn(async move { Reply::read(request.send().await.unwrap()).await })
        };
        tokio::time::sleep(std::time::Duration::from_secs(3)).await;
        assert!(
            !waiting.is_finished(),
            "the change did not wait for the other"
        );
        other.commit().await.expect("commit");

        let reply = waiting.await.unwrap();
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.body);
        assert_eq!(reply.body, json!({"old_password": ["Invalid password."]}));
    });
    let mine = app.login("ross", "mine-Chosen-passw0rd").await;
    assert_eq!(mine.status, StatusCode::UNAUTHORIZED, "{}", mine.body);
}
