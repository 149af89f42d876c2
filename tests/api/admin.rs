//! User administration (API.md §7): `GET/POST /api/users/` and `GET/PUT/PATCH/DELETE
//! /api/users/{id}/`. Listing (DRF's page shape, absolute `next`/`previous` links,
//! `page`, `page_size`, `search`, `ordering`, `is_active`, `is_staff` and their bad
//! values), creating, changing, deactivating and deleting users, every permission rule
//! from each side (anonymous, the user itself, another user, staff, superuser), and the
//! guard that keeps one active superuser, also under concurrent requests.

use crate::helpers::*;
use futures::future::join_all;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::process::Stdio;
use tokio::io::AsyncWriteExt;

const WWW_AUTHENTICATE: &str = "Bearer realm=\"api\"";
/// The `date_joined` of users seeded with SQL (earlier than any user made by the API).
const JAN: &str = "2024-01-01T00:00:00Z";
const FEB: &str = "2024-02-01T00:00:00Z";
const MAR: &str = "2024-03-01T00:00:00Z";

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

fn forbidden() -> Value {
    json!({"detail": "You do not have permission to perform this action."})
}

fn not_found() -> Value {
    json!({"detail": "Not found."})
}

fn invalid_page() -> Value {
    json!({"detail": "Invalid page."})
}

fn not_authenticated() -> Value {
    json!({"detail": "Authentication credentials were not provided."})
}

fn login_failed() -> Value {
    json!({"detail": "No active account found with the given credentials"})
}

fn user_not_found() -> Value {
    json!({"detail": "User not found", "code": "user_not_found"})
}

fn user_inactive() -> Value {
    json!({"detail": "User is inactive", "code": "user_inactive"})
}

fn not_a_boolean(field: &str) -> Value {
    json!({ field: ["Must be a valid boolean."] })
}

fn invalid_ordering(fields: &str) -> Value {
    json!({"ordering": [format!(
        "Invalid ordering field(s): {fields}. Choose from id, username, email, date_joined, each with an optional leading '-'."
    )]})
}

fn last_superuser_demoted() -> Value {
    json!({"is_superuser": ["The last active superuser cannot be demoted."]})
}

fn last_superuser_deactivated() -> Value {
    json!({"is_active": ["The last active superuser cannot be deactivated."]})
}

fn last_superuser_deleted() -> Value {
    json!({"detail": "The last active superuser cannot be deleted."})
}

/// Asserts a 401 with exactly `body` and the scheme header (API.md §2).
#[track_caller]
fn assert_401(reply: &Reply, body: Value) {
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{}", reply.body);
    assert_eq!(reply.body, body);
    assert_eq!(reply.header("www-authenticate"), Some(WWW_AUTHENTICATE));
}

/// Asserts `status` and exactly `body`.
#[track_caller]
fn assert_reply(reply: &Reply, status: StatusCode, body: Value) {
    assert_eq!(reply.status, status, "{}", reply.body);
    assert_eq!(reply.body, body);
}

/// Asserts a 204 with an empty body.
#[track_caller]
fn assert_no_content(reply: &Reply) {
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.body);
    assert_eq!(reply.body, Value::Null, "a 204 has no body");
}

/// Asserts `value` is null or an RFC 3339 UTC timestamp (`…Z`) within a minute of now.
#[track_caller]
fn assert_null_or_recent(value: &Value) {
    if value.is_null() {
        return;
    }
    assert_recent(value);
}

#[track_caller]
fn assert_recent(value: &Value) {
    let text = value
        .as_str()
        .unwrap_or_else(|| panic!("not a timestamp string: {value}"));
    assert!(text.ends_with('Z'), "not UTC with Z: {text}");
    let at = chrono::DateTime::parse_from_rfc3339(text)
        .unwrap_or_else(|e| panic!("not RFC 3339: {text}: {e}"));
    let age = chrono::Utc::now().signed_duration_since(at).num_seconds();
    assert!((-60..=60).contains(&age), "not recent: {text}");
}

/// The whole user object of a user made with `register_ok`/`signed_in` (email
/// `<username>@example.com`, no flags), with the timestamps taken from `body` once checked.
#[track_caller]
fn plain_user(id: i64, username: &str, body: &Value) -> Value {
    assert_recent(&body["date_joined"]);
    assert_null_or_recent(&body["last_login"]);
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

/// Registers and signs in `username`, then makes it staff (not superuser).
async fn staff_user(app: &TestApp, username: &str) -> (i64, String) {
    let (id, access, _) = app.signed_in(username).await;
    app.execute_sql(&format!(
        "UPDATE auth_user SET is_staff = TRUE WHERE id = {id}"
    ))
    .await;
    (id, access)
}

/// Registers and signs in `username`, then makes it staff and superuser.
async fn superuser(app: &TestApp, username: &str) -> (i64, String) {
    let (id, access, _) = app.signed_in(username).await;
    app.execute_sql(&format!(
        "UPDATE auth_user SET is_staff = TRUE, is_superuser = TRUE WHERE id = {id}"
    ))
    .await;
    (id, access)
}

/// Inserts users directly (for speed) as `(username, email, date_joined)`: active, not
/// staff, with a password hash that matches nothing (they cannot log in).
async fn seed_users(app: &TestApp, rows: &[(&str, &str, &str)]) {
    let values: Vec<String> = rows
        .iter()
        .map(|(username, email, joined)| {
            format!("('x', NULL, FALSE, '{username}', '', '{email}', FALSE, TRUE, '{joined}', '')")
        })
        .collect();
    app.execute_sql(&format!(
        "INSERT INTO auth_user (password, last_login, is_superuser, username, last_name, email, \
         is_staff, is_active, date_joined, first_name) VALUES {}",
        values.join(", ")
    ))
    .await;
}

/// Seeds `<name>@example.org` users joined in January 2024, in the order given.
async fn seed_named(app: &TestApp, names: &[&str]) {
    let emails: Vec<String> = names.iter().map(|n| format!("{n}@example.org")).collect();
    let rows: Vec<(&str, &str, &str)> = names
        .iter()
        .zip(&emails)
        .map(|(name, email)| (*name, email.as_str(), JAN))
        .collect();
    seed_users(app, &rows).await;
}

/// `user01` … `userNN`.
fn numbered(count: usize) -> Vec<String> {
    (1..=count).map(|i| format!("user{i:02}")).collect()
}

/// Inserts `count` users `bulk1` … `bulkN` in one statement.
async fn seed_bulk(app: &TestApp, count: usize) {
    app.execute_sql(&format!(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {count}) \
         INSERT INTO auth_user (password, last_login, is_superuser, username, last_name, email, \
         is_staff, is_active, date_joined, first_name) \
         SELECT 'x', NULL, FALSE, 'bulk' || i, '', 'bulk' || i || '@example.org', FALSE, TRUE, \
         CURRENT_TIMESTAMP, '' FROM n"
    ))
    .await;
}

/// `GET /api/users/?{query}`.
async fn list(app: &TestApp, access: &str, query: &str) -> Reply {
    let path = if query.is_empty() {
        "/api/users/".to_owned()
    } else {
        format!("/api/users/?{query}")
    };
    app.get_auth(&path, access).await
}

/// GET an absolute URL (a `next`/`previous` link) with the token.
async fn follow(app: &TestApp, url: &str, access: &str) -> Reply {
    Reply::read(
        app.client
            .get(url)
            .bearer_auth(access)
            .send()
            .await
            .expect("request"),
    )
    .await
}

/// The absolute link the server must write for `query` (empty: no query string).
fn link(app: &TestApp, query: &str) -> Value {
    if query.is_empty() {
        json!(format!("{}/api/users/", app.address))
    } else {
        json!(format!("{}/api/users/?{query}", app.address))
    }
}

#[track_caller]
fn usernames(reply: &Reply) -> Vec<String> {
    reply.body["results"]
        .as_array()
        .unwrap_or_else(|| panic!("no results in {}", reply.body))
        .iter()
        .map(|u| u["username"].as_str().expect("username").to_owned())
        .collect()
}

#[track_caller]
fn ids(reply: &Reply) -> Vec<i64> {
    reply.body["results"]
        .as_array()
        .unwrap_or_else(|| panic!("no results in {}", reply.body))
        .iter()
        .map(|u| u["id"].as_i64().expect("id"))
        .collect()
}

fn strings(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| s.to_string()).collect()
}

/// Asserts a 200 listing of exactly `expected` usernames, in order, all on one page.
#[track_caller]
fn assert_listed(reply: &Reply, expected: &[&str]) {
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(usernames(reply), strings(expected), "{}", reply.body);
    assert_eq!(reply.body["count"], json!(expected.len()), "{}", reply.body);
    assert_eq!(reply.body["next"], Value::Null);
    assert_eq!(reply.body["previous"], Value::Null);
}

/// Walks every page of `query` two users at a time through the `next` links and returns
/// the usernames in the order seen, checking each page's `count` and `previous` link.
async fn walk_pages(app: &TestApp, access: &str, query: &str) -> Vec<String> {
    let first = list(app, access, &format!("{query}&page_size=2")).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);
    assert_eq!(first.body["previous"], Value::Null);
    let count = first.body["count"].clone();
    let mut seen = usernames(&first);
    let mut next = first.body["next"].clone();
    let mut pages = 1;
    while let Some(url) = next.as_str().map(str::to_owned) {
        let page = follow(app, &url, access).await;
        assert_eq!(page.status, StatusCode::OK, "{url}: {}", page.body);
        assert_eq!(page.body["count"], count, "{url}");
        assert!(page.body["previous"].is_string(), "{url}: {}", page.body);
        seen.extend(usernames(&page));
        next = page.body["next"].clone();
        pages += 1;
        assert!(pages < 50, "the next links never end");
    }
    assert_eq!(json!(seen.len()), count);
    seen
}

async fn get_user(app: &TestApp, access: &str, id: impl std::fmt::Display) -> Reply {
    app.get_auth(&format!("/api/users/{id}/"), access).await
}

async fn patch_user(app: &TestApp, access: &str, id: impl std::fmt::Display, body: Value) -> Reply {
    app.send_auth(
        Method::PATCH,
        &format!("/api/users/{id}/"),
        access,
        Some(body),
    )
    .await
}

async fn put_user(app: &TestApp, access: &str, id: impl std::fmt::Display, body: Value) -> Reply {
    app.send_auth(
        Method::PUT,
        &format!("/api/users/{id}/"),
        access,
        Some(body),
    )
    .await
}

async fn delete_user(app: &TestApp, access: &str, id: impl std::fmt::Display) -> Reply {
    app.send_auth(Method::DELETE, &format!("/api/users/{id}/"), access, None)
        .await
}

async fn create_user(app: &TestApp, access: &str, body: Value) -> Reply {
    app.send_auth(Method::POST, "/api/users/", access, Some(body))
        .await
}

/// The body of `POST /api/users/` for `username` with `<username>@example.org`.
fn new_user(username: &str) -> Value {
    json!({
        "username": username,
        "email": format!("{username}@example.org"),
        "password": STRONG_PASSWORD,
    })
}

/// The user `id` as staff (`access`) sees it; panics unless 200.
async fn fetch(app: &TestApp, access: &str, id: i64) -> Value {
    let reply = get_user(app, access, id).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    reply.body
}

/// Runs `gatehouse createsuperuser` with the strong password on stdin.
async fn create_superuser_with_cli(app: &TestApp, username: &str) {
    let mut command = tokio::process::Command::from(app.command(&[
        "createsuperuser",
        "--username",
        username,
        "--email",
        &format!("{username}@example.com"),
        "--password-stdin",
    ]));
    command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = command.spawn().expect("spawn gatehouse");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin
        .write_all(format!("{STRONG_PASSWORD}\n").as_bytes())
        .await
        .expect("write stdin");
    drop(stdin);
    let output = tokio::time::timeout(std::time::Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("createsuperuser finishes")
        .expect("wait");
    assert!(
        output.status.success(),
        "createsuperuser failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

// ---------------------------------------------------------------------------------------
// Anonymous requests
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn every_user_administration_route_refuses_anonymous_requests_with_401() {
    let app = spawn_app().await;
    let (id, _, _) = app.signed_in("chandler").await;
    let user_path = format!("/api/users/{id}/");
    let requests = [
        (Method::GET, "/api/users/".to_owned(), None),
        (
            Method::GET,
            "/api/users/?page=0&ordering=foo".to_owned(),
            None,
        ),
        (
            Method::POST,
            "/api/users/".to_owned(),
            Some(new_user("mallory")),
        ),
        (Method::GET, user_path.clone(), None),
        (
            Method::PATCH,
            user_path.clone(),
            Some(json!({"is_staff": true})),
        ),
        (
            Method::PUT,
            user_path.clone(),
            Some(json!({"username": "x", "email": "x@example.com"})),
        ),
        (Method::DELETE, user_path.clone(), None),
    ];
    for (method, path, body) in requests {
        let mut request = app.client.request(method.clone(), app.url(&path));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let reply = Reply::read(request.send().await.expect("request")).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{method} {path}");
        assert_eq!(reply.body, not_authenticated(), "{method} {path}");
        assert_eq!(
            reply.header("www-authenticate"),
            Some(WWW_AUTHENTICATE),
            "{method} {path}"
        );
    }
    // Nothing changed: the user is still there, unchanged, and nobody was created.
    let login = app.login("mallory", STRONG_PASSWORD).await;
    assert_reply(&login, StatusCode::UNAUTHORIZED, login_failed());
    let (access, _) = app.login_ok("chandler").await;
    let me = app.me(&access).await;
    assert_eq!(me.body, plain_user(id, "chandler", &me.body));
}

// ---------------------------------------------------------------------------------------
// GET /api/users/: who may list
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn a_non_staff_user_may_not_list_users() {
    let app = spawn_app().await;
    let (_, access, _) = app.signed_in("joey").await;
    for query in ["", "page=2", "ordering=foo", "is_active=maybe"] {
        let reply = list(&app, &access, query).await;
        assert_reply(&reply, StatusCode::FORBIDDEN, forbidden());
    }
}

#[tokio::test]
async fn staff_list_every_user_in_drfs_page_shape() {
    let app = spawn_app().await;
    let (admin_id, access) = staff_user(&app, "admin").await;
    let (ross_id, _, _) = app.signed_in("ross").await;
    let (rachel_id, _, _) = app.signed_in("rachel").await;

    let mut admin = plain_user(admin_id, "admin", &fetch(&app, &access, admin_id).await);
    admin["is_staff"] = json!(true);
    let ross = fetch(&app, &access, ross_id).await;
    let rachel = fetch(&app, &access, rachel_id).await;
    assert_eq!(admin, fetch(&app, &access, admin_id).await);
    assert_eq!(ross, plain_user(ross_id, "ross", &ross));
    assert_eq!(rachel, plain_user(rachel_id, "rachel", &rachel));

    let reply = list(&app, &access, "").await;
    assert_reply(
        &reply,
        StatusCode::OK,
        json!({"count": 3, "next": null, "previous": null, "results": [admin, ross, rachel]}),
    );
    assert_eq!(reply.header("content-type"), Some("application/json"));
    let text = reply.body.to_string();
    assert!(!text.contains("password"), "{text}");
    assert!(!text.contains("argon2"), "{text}");
}

#[tokio::test]
async fn a_superuser_lists_users_too() {
    let app = spawn_app().await;
    superuser(&app, "root").await;
    let (_, access) = superuser(&app, "boss").await;
    app.register_ok("gunther").await;
    assert_listed(&list(&app, &access, "").await, &["root", "boss", "gunther"]);
}

#[tokio::test]
async fn the_list_path_without_a_trailing_slash_answers_the_same() {
    let app = spawn_app().await;
    let (_, access) = staff_user(&app, "admin").await;
    let with = list(&app, &access, "").await;
    let without = app.get_auth("/api/users", &access).await;
    assert_eq!(without.status, StatusCode::OK, "{}", without.body);
    assert_eq!(without.body, with.body);
}

// ---------------------------------------------------------------------------------------
// Pagination: page, page_size, next / previous
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn the_default_page_holds_20_users_and_links_to_the_next_as_an_absolute_url() {
    let app = spawn_app().await;
    let (_, access) = staff_user(&app, "admin").await;
    let names = numbered(24);
    seed_named(&app, &names.iter().map(String::as_str).collect::<Vec<_>>()).await;

    let first = list(&app, &access, "").await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);
    assert_eq!(first.body["count"], 25);
    assert_eq!(first.body["next"], link(&app, "page=2"));
    assert_eq!(first.body["previous"], Value::Null);
    let mut expected = vec!["admin".to_owned()];
    expected.extend(names[..19].iter().cloned());
    assert_eq!(usernames(&first), expected);

    let second = list(&app, &access, "page=2").await;
    assert_eq!(second.status, StatusCode::OK, "{}", second.body);
    assert_eq!(second.body["count"], 25);
    assert_eq!(second.body["next"], Value::Null);
    // DRF drops `page` from the link to page 1.
    assert_eq!(second.body["previous"], link(&app, ""));
    assert_eq!(usernames(&second), names[19..].to_vec());

    // `page=1` is the same page as no `page` at all.
    let explicit = list(&app, &access, "page=1").await;
    assert_eq!(explicit.body, first.body);
}

#[tokio::test]
async fn page_size_sets_the_page_length_and_is_carried_in_both_links() {
    let app = spawn_app().await;
    let (_, access) = staff_user(&app, "admin").await;
    let names = numbered(24);
    seed_named(&app, &names.iter().map(String::as_str).collect::<Vec<_>>()).await;

    let first = list(&app, &access, "page_size=5").await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);
    assert_eq!(first.body["count"], 25);
    assert_eq!(ids(&first).len(), 5);
    assert_eq!(first.body["next"], link(&app, "page=2&page_size=5"));
    assert_eq!(first.body["previous"], Value::Null);

    let second = list(&app, &access, "page=2&page_size=5").await;
    assert_eq!(second.body["next"], link(&app, "page=3&page_size=5"));
    assert_eq!(second.body["previous"], link(&app, "page_size=5"));
    assert_eq!(usernames(&second), names[4..9].to_vec());

    let third = list(&app, &access, "page_size=5&page=3").await;
    assert_eq!(third.body["next"], link(&app, "page=4&page_size=5"));
    assert_eq!(third.body["previous"], link(&app, "page=2&page_size=5"));

    let last = list(&app, &access, "page=5&page_size=5").await;
    assert_eq!(last.status, StatusCode::OK, "{}", last.body);
    assert_eq!(last.body["next"], Value::Null);
    assert_eq!(last.body["previous"], link(&app, "page=4&page_size=5"));
    assert_eq!(usernames(&last), names[19..].to_vec());

    let past = list(&app, &access, "page=6&page_size=5").await;
    assert_reply(&past, StatusCode::NOT_FOUND, invalid_page());
}

#[tokio::test]
async fn following_next_links_visits_every_user_exactly_once() {
    let app = spawn_app().await;
    let (_, access) = staff_user(&app, "admin").await;
    let names = numbered(10);
    seed_named(&app, &names.iter().map(String::as_str).collect::<Vec<_>>()).await;
    let mut expected = vec!["admin".to_owned()];
    expected.extend(names);
    assert_eq!(walk_pages(&app, &access, "ordering=id").await, expected);
}

#[tokio::test]
async fn links_keep_every_other_parameter_sorted_by_name_and_replace_only_page() {
    let app = spawn_app().await;
    let (_, access) = staff_user(&app, "admin").await;
    let names = numbered(24);
    seed_named(&app, &names.iter().map(String::as_str).collect::<Vec<_>>()).await;

    let first = list(
        &app,
        &access,
        "search=user&page_size=5&ordering=-id&is_active=true",
    )
    .await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);
    assert_eq!(first.body["count"], 24);
    assert_eq!(
        first.body["next"],
        link(
            &app,
            "is_active=true&ordering=-id&page=2&page_size=5&search=user"
        )
    );
    assert_eq!(
        usernames(&first),
        strings(&["user24", "user23", "user22", "user21", "user20"])
    );

    let second = list(
        &app,
        &access,
        "page=2&search=user&page_size=5&ordering=-id&is_active=true",
    )
    .await;
    assert_eq!(
        second.body["previous"],
        link(&app, "is_active=true&ordering=-id&page_size=5&search=user")
    );
    assert_eq!(
        second.body["next"],
        link(
            &app,
            "is_active=true&ordering=-id&page=3&page_size=5&search=user"
        )
    );
}

#[tokio::test]
async fn a_repeated_page_parameter_counts_once_with_its_last_value() {
    // A QueryDict's `.get()` is the last value; DRF's links replace every `page`.
    let app = spawn_app().await;
    let (_, access) = staff_user(&app, "admin").await;
    let names = numbered(24);
    seed_named(&app, &names.iter().map(String::as_str).collect::<Vec<_>>()).await;
    let reply = list(&app, &access, "page=1&page_size=5&page=2").await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(usernames(&reply), names[4..9].to_vec());
    assert_eq!(reply.body["next"], link(&app, "page=3&page_size=5"));
    assert_eq!(reply.body["previous"], link(&app, "page_size=5"));
}

#[tokio::test]
async fn a_search_with_a_space_is_written_into_the_links_form_encoded() {
    let app = spawn_app().await;
    let (_, access) = staff_user(&app, "admin").await;
    let names = numbered(24);
    seed_named(&app, &names.iter().map(String::as_str).collect::<Vec<_>>()).await;

    // "user 1": every term must match, so user01, user10–user19 and user21.
    let first = list(&app, &access, "search=user%201&page_size=5").await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);
    assert_eq!(first.body["count"], 12);
    assert_eq!(
        first.body["next"],
        link(&app, "page=2&page_size=5&search=user+1")
    );
    let next = follow(&app, first.body["next"].as_str().unwrap(), &access).await;
    assert_eq!(
        usernames(&next),
        strings(&["user14", "user15", "user16", "user17", "user18"])
    );
    assert_eq!(
        next.body["previous"],
        link(&app, "page_size=5&search=user+1")
    );
}

#[tokio::test]
async fn links_are_built_from_the_requests_host() {
    let app = spawn_app().await;
    let (_, access) = staff_user(&app, "admin").await;
    seed_named(&app, &["a1", "a2", "a3"]).await;
    let port = app.address.rsplit(':').next().expect("port");
    let host = format!("localhost:{port}");
    let reply = Reply::read(
        app.client
            .get(app.url("/api/users/?page_size=2&page=2"))
            .header("host", &host)
            .bearer_auth(&access)
            .send()
            .await
            .expect("request"),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(
        reply.body["previous"],
        json!(format!("http://{host}/api/users/?page_size=2"))
    );
    assert_eq!(
        reply.body["next"],
        Value::Null,
        "4 users, 2 a page: page 2 is the last"
    );
    let first = Reply::read(
        app.client
            .get(app.url("/api/users/?page_size=2"))
            .header("host", &host)
            .bearer_auth(&access)
            .send()
            .await
            .expect("request"),
    )
    .await;
    assert_eq!(
        first.body["next"],
        json!(format!("http://{host}/api/users/?page=2&page_size=2"))
    );
}

#[tokio::test]
async fn an_empty_listing_has_a_valid_first_page_and_no_second() {
    let app = spawn_app().await;
    let (_, access) = staff_user(&app, "admin").await;
    for query in ["search=nobody", "search=nobody&page=1", "is_staff=false"] {
        let reply = list(&app, &access, query).await;
        assert_reply(
            &reply,
            StatusCode::OK,
            json!({"count": 0, "next": null, "previous": null, "results": []}),
        );
    }
    let reply = list(&app, &access, "search=nobody&page=2").await;
    assert_reply(&reply, StatusCode::NOT_FOUND, invalid_page());
}

#[tokio::test]
async fn a_page_that_is_not_a_page_number_or_is_out_of_range_is_404_invalid_page() {
    let app = spawn_app().await;
    let (_, access) = staff_user(&app, "admin").await;
    let names = numbered(24);
    seed_named(&app, &names.iter().map(String::as_str).collect::<Vec<_>>()).await;
    for page in [
        "0",
        "-1",
        "abc",
        "1.5",
        "2.0",
        "1e3",
        "3",
        "1000",
        "9223372036854775807",
        "99999999999999999999",
        "%00",
        "%E2%82%AC",
    ] {
        let reply = list(&app, &access, &format!("page={page}")).await;
        assert_eq!(
            reply.status,
            StatusCode::NOT_FOUND,
            "page={page}: {}",
            reply.body
        );
        assert_eq!(reply.body, invalid_page(), "page={page}");
    }
    // Out of range for this page size, in range for another.
    let reply = list(&app, &access, "page=6&page_size=5").await;
    assert_reply(&reply, StatusCode::NOT_FOUND, invalid_page());
    assert_eq!(
        list(&app, &access, "page=5&page_size=5").await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn an_empty_page_parameter_is_the_first_page_as_in_drf() {
    // DRF: `request.query_params.get("page") or 1`.
    let app = spawn_app().await;
    let (_, access) = staff_user(&app, "admin").await;
    let reply = list(&app, &access, "page=").await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(usernames(&reply), strings(&["admin"]));
}

#[tokio::test]
async fn page_last_is_the_last_page_as_in_drf() {
    // DRF's PageNumberPagination.last_page_strings = ("last",).
    let app = spawn_app().await;
    let (_, access) = staff_user(&app, "admin").await;
    let names = numbered(24);
    seed_named(&app, &names.iter().map(String::as_str).collect::<Vec<_>>()).await;
    let reply = list(&app, &access, "page=last&page_size=10").await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(usernames(&reply), names[19..].to_vec());
    assert_eq!(reply.body["next"], Value::Null);
    assert_eq!(reply.body["previous"], link(&app, "page=2&page_size=10"));
}

#[tokio::test]
async fn a_page_size_that_is_not_a_positive_number_falls_back_to_20() {
    let app = spawn_app().await;
    let (_, access) = staff_user(&app, "admin").await;
    let names = numbered(24);
    seed_named(&app, &names.iter().map(String::as_str).collect::<Vec<_>>()).await;
    for size in ["0", "-1", "-50", "abc", "", "2.5", "1e2", "%00"] {
        let reply = list(&app, &access, &format!("page_size={size}")).await;
        assert_eq!(
            reply.status,
            StatusCode::OK,
            "page_size={size}: {}",
            reply.body
        );
        assert_eq!(ids(&reply).len(), 20, "page_size={size}");
        assert_eq!(reply.body["count"], 25, "page_size={size}");
        assert!(
            reply.body["next"]
                .as_str()
                .is_some_and(|next| next.contains("page=2")),
            "page_size={size}: {}",
            reply.body
        );
    }
    // The bad value is carried in the link as it was sent, as DRF does.
    let reply = list(&app, &access, "page_size=abc").await;
    assert_eq!(reply.body["next"], link(&app, "page=2&page_size=abc"));
}

#[tokio::test]
async fn a_page_size_over_100_is_clamped_to_100() {
    let app = spawn_app().await;
    let (_, access) = staff_user(&app, "admin").await;
    seed_bulk(&app, 101).await;
    for size in ["100", "101", "100000"] {
        let reply = list(&app, &access, &format!("page_size={size}")).await;
        assert_eq!(
            reply.status,
            StatusCode::OK,
            "page_size={size}: {}",
            reply.body
        );
        assert_eq!(reply.body["count"], 102, "page_size={size}");
        assert_eq!(ids(&reply).len(), 100, "page_size={size}");
        assert_eq!(
            reply.body["next"],
            link(&app, &format!("page=2&page_size={size}"))
        );
    }
    let second = list(&app, &access, "page=2&page_size=100000").await;
    assert_eq!(second.status, StatusCode::OK, "{}", second.body);
    assert_eq!(usernames(&second), strings(&["bulk100", "bulk101"]));
    assert_eq!(second.body["next"], Value::Null);
    assert_eq!(second.body["previous"], link(&app, "page_size=100000"));
}

#[tokio::test]
async fn a_page_size_too_large_for_a_64_bit_integer_is_clamped_to_100_as_in_drf() {
    // DRF's `_positive_int` is Python's `int()`, which has no upper bound, then the cutoff.
    let app = spawn_app().await;
    let (_, access) = staff_user(&app, "admin").await;
    seed_bulk(&app, 101).await;
    let reply = list(&app, &access, "page_size=99999999999999999999").await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(ids(&reply).len(), 100);
}

// ---------------------------------------------------------------------------------------
// search
// ---------------------------------------------------------------------------------------

/// admin (API, admin@example.com), then alice, joanna, bob, carl, dora seeded in order.
async fn search_fixture() -> (TestApp, String) {
    let app = spawn_app().await;
    let (_, access) = staff_user(&app, "admin").await;
    seed_users(
        &app,
        &[
            ("alice", "alice@example.org", JAN),
            ("joanna", "jo@example.com", JAN),
            ("bob", "bob.Annex@example.net", JAN),
            ("carl", "carl@example.org", JAN),
            ("dora", "dora@mail.test", JAN),
        ],
    )
    .await;
    (app, access)
}

#[tokio::test]
async fn search_matches_a_username_or_an_email_substring_in_any_case() {
    let (app, access) = search_fixture().await;
    // "ann" is in joanna's username and in bob's email (as "Ann").
    for term in ["ann", "ANN", "aNn"] {
        let reply = list(&app, &access, &format!("search={term}")).await;
        assert_listed(&reply, &["joanna", "bob"]);
    }
    // An email domain, in another case than it is stored in.
    for term in ["EXAMPLE.org", "example.ORG", "@example.org"] {
        let reply = list(&app, &access, &format!("search={term}")).await;
        assert_listed(&reply, &["alice", "carl"]);
    }
    // The whole of a username, and one middle character run.
    assert_listed(&list(&app, &access, "search=DORA").await, &["dora"]);
    assert_listed(&list(&app, &access, "search=mail.t").await, &["dora"]);
}

#[tokio::test]
async fn short_search_terms_match_too() {
    let (app, access) = search_fixture().await;
    assert_listed(&list(&app, &access, "search=jo").await, &["joanna"]);
    assert_listed(&list(&app, &access, "search=JO").await, &["joanna"]);
    assert_listed(&list(&app, &access, "search=Q").await, &[]);
    assert_listed(
        &list(&app, &access, "search=x").await,
        &["admin", "alice", "joanna", "bob", "carl"],
    );
}

#[tokio::test]
async fn every_search_term_must_match_whether_split_by_spaces_or_commas() {
    let (app, access) = search_fixture().await;
    for query in [
        "search=ann%20EXAMPLE.COM",
        "search=ann+example.com",
        "search=ann,example.com",
        "search=%20ann%20%20example.com%20",
    ] {
        assert_listed(&list(&app, &access, query).await, &["joanna"]);
    }
    // Each term matches someone, but nobody matches both.
    assert_listed(&list(&app, &access, "search=alice%20dora").await, &[]);
    // Terms may match different fields of the same user.
    assert_listed(&list(&app, &access, "search=bob%20annex").await, &["bob"]);
}

#[tokio::test]
async fn a_blank_search_filters_nothing_and_an_unmatched_one_finds_nobody() {
    let (app, access) = search_fixture().await;
    let everyone = ["admin", "alice", "joanna", "bob", "carl", "dora"];
    for query in ["search=", "search=%20%20", "search=,", "search=%20,%20"] {
        assert_listed(&list(&app, &access, query).await, &everyone);
    }
    assert_listed(&list(&app, &access, "search=zebra").await, &[]);
    assert_listed(&list(&app, &access, "search=alice@example.com").await, &[]);
}

#[tokio::test]
async fn percent_underscore_and_backslash_in_a_search_are_literal_characters() {
    let app = spawn_app().await;
    let (_, access) = staff_user(&app, "admin").await;
    seed_users(
        &app,
        &[
            ("under_score", "us@example.org", JAN),
            ("underxscore", "ux@example.org", JAN),
            ("pct", "50%off@example.org", JAN),
            ("pctx", "50xoff@example.org", JAN),
        ],
    )
    .await;
    assert_listed(
        &list(&app, &access, "search=under_score").await,
        &["under_score"],
    );
    assert_listed(&list(&app, &access, "search=_").await, &["under_score"]);
    assert_listed(&list(&app, &access, "search=r_s").await, &["under_score"]);
    assert_listed(&list(&app, &access, "search=50%25off").await, &["pct"]);
    assert_listed(&list(&app, &access, "search=%25").await, &["pct"]);
    assert_listed(&list(&app, &access, "search=%25%25").await, &[]);
    assert_listed(&list(&app, &access, "search=%5C").await, &[]);
    assert_listed(&list(&app, &access, "search=%5C%25").await, &[]);
    assert_listed(&list(&app, &access, "search=x%5C_").await, &[]);
    for query in ["search=%27", "search=%22", "search=%27%20OR%201=1--"] {
        assert_listed(&list(&app, &access, query).await, &[]);
    }
}

#[tokio::test]
async fn a_non_ascii_username_is_found_by_its_exact_spelling() {
    let app = spawn_app().await;
    let (_, access) = staff_user(&app, "admin").await;
    let reply = app
        .register("Øystein", "oy@example.com", STRONG_PASSWORD)
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    // The ASCII part finds the user, so it is there to be found.
    assert_listed(&list(&app, &access, "search=ystein").await, &["Øystein"]);
    // "Øystein" and "Øy" (percent-encoded UTF-8), spelled exactly as registered.
    for term in ["%C3%98ystein", "%C3%98y"] {
        let reply = list(&app, &access, &format!("search={term}")).await;
        assert_eq!(reply.status, StatusCode::OK, "{term}: {}", reply.body);
        assert_eq!(usernames(&reply), strings(&["Øystein"]), "search={term}");
    }
}

#[tokio::test]
async fn search_is_case_insensitive_beyond_ascii() {
    let app = spawn_app().await;
    let (_, access) = staff_user(&app, "admin").await;
    seed_users(
        &app,
        &[
            ("Øystein", "oy@example.org", JAN),
            ("émile", "em@example.org", JAN),
        ],
    )
    .await;
    // "ØYSTEIN", "øystein", "øY", "ø" for Øystein; "ÉMILE", "Ém" for émile
    // (percent-encoded UTF-8): other cases than stored, long terms and short.
    let mut missed = Vec::new();
    for (term, expected) in [
        ("%C3%98YSTEIN", "Øystein"),
        ("%C3%B8ystein", "Øystein"),
        ("%C3%B8Y", "Øystein"),
        ("%C3%B8", "Øystein"),
        ("%C3%89MILE", "émile"),
        ("%C3%89m", "émile"),
    ] {
        let reply = list(&app, &access, &format!("search={term}")).await;
        assert_eq!(reply.status, StatusCode::OK, "{term}: {}", reply.body);
        if usernames(&reply) != strings(&[expected]) {
            missed.push(term);
        }
    }
    if is_postgres() {
        assert!(missed.is_empty(), "these searches missed: {missed:?}");
    } else {
        // On SQLite, terms of three characters or more go through the trigram index,
        // which folds Unicode case; shorter ones are a LIKE scan, which folds ASCII only
        // (README, "Search"): a stored upper-case non-ASCII letter searched in lower case
        // with a one- or two-letter term is out of reach.
        assert_eq!(missed, vec!["%C3%B8Y", "%C3%B8"]);
    }
}

// ---------------------------------------------------------------------------------------
// ordering
// ---------------------------------------------------------------------------------------

/// Six non-staff users seeded in id order t1…t6, with ties on email (blank) and on
/// date_joined:
///
/// | user | email        | date_joined |
/// |------|--------------|-------------|
/// | t1   | ""           | FEB         |
/// | t2   | b@example.org| JAN         |
/// | t3   | ""           | FEB         |
/// | t4   | a@example.org| JAN         |
/// | t5   | ""           | JAN         |
/// | t6   | c@example.org| MAR         |
async fn ordering_fixture() -> (TestApp, String) {
    let app = spawn_app().await;
    let (_, access) = staff_user(&app, "admin").await;
    seed_users(
        &app,
        &[
            ("t1", "", FEB),
            ("t2", "b@example.org", JAN),
            ("t3", "", FEB),
            ("t4", "a@example.org", JAN),
            ("t5", "", JAN),
            ("t6", "c@example.org", MAR),
        ],
    )
    .await;
    (app, access)
}

#[tokio::test]
async fn the_default_order_is_by_id() {
    let app = spawn_app().await;
    let (_, access) = staff_user(&app, "zed").await;
    seed_named(&app, &["mike", "alpha", "yolanda", "bravo"]).await;
    let reply = list(&app, &access, "").await;
    assert_listed(&reply, &["zed", "mike", "alpha", "yolanda", "bravo"]);
    let ids = ids(&reply);
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    // An empty ordering is the default one.
    assert_eq!(list(&app, &access, "ordering=").await.body, reply.body);
}

#[tokio::test]
async fn ordering_by_id_and_username_both_ways() {
    let app = spawn_app().await;
    let (_, access) = staff_user(&app, "zed").await;
    seed_named(&app, &["mike", "alpha", "yolanda", "bravo"]).await;
    assert_listed(
        &list(&app, &access, "ordering=id").await,
        &["zed", "mike", "alpha", "yolanda", "bravo"],
    );
    assert_listed(
        &list(&app, &access, "ordering=-id").await,
        &["bravo", "yolanda", "alpha", "mike", "zed"],
    );
    assert_listed(
        &list(&app, &access, "ordering=username").await,
        &["alpha", "bravo", "mike", "yolanda", "zed"],
    );
    assert_listed(
        &list(&app, &access, "ordering=-username").await,
        &["zed", "yolanda", "mike", "bravo", "alpha"],
    );
}

#[tokio::test]
async fn ordering_by_email_breaks_ties_by_id() {
    let (app, access) = ordering_fixture().await;
    assert_listed(
        &list(&app, &access, "is_staff=false&ordering=email").await,
        &["t1", "t3", "t5", "t4", "t2", "t6"],
    );
    let descending = list(&app, &access, "is_staff=false&ordering=-email").await;
    assert_eq!(descending.status, StatusCode::OK, "{}", descending.body);
    let names = usernames(&descending);
    assert_eq!(names[..3], strings(&["t6", "t2", "t4"]));
    // The three blank emails come last, in id order one way or the other.
    let ties = &names[3..];
    assert!(
        ties == strings(&["t1", "t3", "t5"]) || ties == strings(&["t5", "t3", "t1"]),
        "{names:?}"
    );
}

#[tokio::test]
async fn ordering_by_date_joined_breaks_ties_by_id() {
    let (app, access) = ordering_fixture().await;
    assert_listed(
        &list(&app, &access, "is_staff=false&ordering=date_joined").await,
        &["t2", "t4", "t5", "t1", "t3", "t6"],
    );
    let descending = list(&app, &access, "is_staff=false&ordering=-date_joined").await;
    assert_eq!(descending.status, StatusCode::OK, "{}", descending.body);
    let names = usernames(&descending);
    assert_eq!(names[0], "t6");
    let feb = &names[1..3];
    let jan = &names[3..];
    assert!(
        feb == strings(&["t1", "t3"]) || feb == strings(&["t3", "t1"]),
        "{names:?}"
    );
    assert!(
        jan == strings(&["t2", "t4", "t5"]) || jan == strings(&["t5", "t4", "t2"]),
        "{names:?}"
    );
    // The staff caller joined today, after everyone seeded.
    let everyone = list(&app, &access, "ordering=-date_joined").await;
    assert_eq!(usernames(&everyone)[0], "admin");
}

#[tokio::test]
async fn a_tie_broken_order_is_the_same_on_every_page() {
    let (app, access) = ordering_fixture().await;
    for ordering in [
        "email",
        "-email",
        "date_joined",
        "-date_joined",
        "id",
        "-id",
        "username",
        "-username",
        "-date_joined,email",
    ] {
        let query = format!("is_staff=false&ordering={ordering}");
        let whole = usernames(&list(&app, &access, &query).await);
        assert_eq!(whole.len(), 6, "{ordering}");
        assert_eq!(walk_pages(&app, &access, &query).await, whole, "{ordering}");
        // And the same again.
        assert_eq!(
            usernames(&list(&app, &access, &query).await),
            whole,
            "{ordering}"
        );
    }
}

#[tokio::test]
async fn several_ordering_fields_apply_in_turn() {
    let (app, access) = ordering_fixture().await;
    assert_listed(
        &list(&app, &access, "is_staff=false&ordering=-date_joined,email").await,
        &["t6", "t1", "t3", "t5", "t4", "t2"],
    );
    assert_listed(
        &list(&app, &access, "is_staff=false&ordering=date_joined,-id").await,
        &["t5", "t4", "t2", "t3", "t1", "t6"],
    );
    assert_listed(
        &list(&app, &access, "is_staff=false&ordering=email,-username").await,
        &["t5", "t3", "t1", "t4", "t2", "t6"],
    );
    // Spaces around the commas are ignored, as DRF strips each term.
    assert_listed(
        &list(
            &app,
            &access,
            "is_staff=false&ordering=email%2C%20-username",
        )
        .await,
        &["t5", "t3", "t1", "t4", "t2", "t6"],
    );
}

#[tokio::test]
async fn an_unknown_ordering_field_is_a_400_naming_it() {
    let app = spawn_app().await;
    let (_, access) = staff_user(&app, "admin").await;
    for field in [
        "foo",
        "password",
        "is_superuser",
        "last_login",
        "first_name",
        "Username",
        "id;DROP%20TABLE%20auth_user",
    ] {
        let reply = list(&app, &access, &format!("ordering={field}")).await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{field}: {}",
            reply.body
        );
        let shown = field.replace("%20", " ");
        assert_eq!(reply.body, invalid_ordering(&shown), "{field}");
    }
    let reply = list(&app, &access, "ordering=username,foo,bar").await;
    assert_reply(
        &reply,
        StatusCode::BAD_REQUEST,
        invalid_ordering("foo, bar"),
    );
    // The table is still there.
    assert_listed(&list(&app, &access, "").await, &["admin"]);
}

#[tokio::test]
async fn an_ordering_with_a_bad_dash_is_a_400_too() {
    let app = spawn_app().await;
    let (_, access) = staff_user(&app, "admin").await;
    for ordering in ["--id", "-", "%2Bid", "id-"] {
        let reply = list(&app, &access, &format!("ordering={ordering}")).await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "ordering={ordering}: {}",
            reply.body
        );
        let messages = reply.body["ordering"]
            .as_array()
            .unwrap_or_else(|| panic!("{}", reply.body));
        assert_eq!(messages.len(), 1, "{}", reply.body);
        assert!(
            messages[0]
                .as_str()
                .unwrap()
                .starts_with("Invalid ordering field(s): "),
            "{}",
            reply.body
        );
    }
}

// ---------------------------------------------------------------------------------------
// is_active / is_staff filters
// ---------------------------------------------------------------------------------------

/// admin (active staff), then a (active), b (inactive), c (staff), d (inactive staff).
async fn filter_fixture() -> (TestApp, String) {
    let app = spawn_app().await;
    let (_, access) = staff_user(&app, "admin").await;
    seed_named(&app, &["a", "b", "c", "d"]).await;
    app.execute_sql("UPDATE auth_user SET is_active = FALSE WHERE username IN ('b', 'd')")
        .await;
    app.execute_sql("UPDATE auth_user SET is_staff = TRUE WHERE username IN ('c', 'd')")
        .await;
    (app, access)
}

#[tokio::test]
async fn is_active_filters_active_or_inactive_users() {
    let (app, access) = filter_fixture().await;
    for value in ["true", "True", "1"] {
        let reply = list(&app, &access, &format!("is_active={value}")).await;
        assert_listed(&reply, &["admin", "a", "c"]);
    }
    for value in ["false", "False", "0"] {
        let reply = list(&app, &access, &format!("is_active={value}")).await;
        assert_listed(&reply, &["b", "d"]);
        for user in reply.body["results"].as_array().unwrap() {
            assert_eq!(user["is_active"], false, "{user}");
        }
    }
}

#[tokio::test]
async fn is_staff_filters_staff_or_other_users() {
    let (app, access) = filter_fixture().await;
    for value in ["true", "True", "1"] {
        let reply = list(&app, &access, &format!("is_staff={value}")).await;
        assert_listed(&reply, &["admin", "c", "d"]);
    }
    for value in ["false", "False", "0"] {
        let reply = list(&app, &access, &format!("is_staff={value}")).await;
        assert_listed(&reply, &["a", "b"]);
    }
}

#[tokio::test]
async fn both_filters_together_must_both_hold() {
    let (app, access) = filter_fixture().await;
    let cases = [
        ("is_active=true&is_staff=true", vec!["admin", "c"]),
        ("is_active=true&is_staff=false", vec!["a"]),
        ("is_active=false&is_staff=true", vec!["d"]),
        ("is_active=false&is_staff=false", vec!["b"]),
    ];
    for (query, expected) in cases {
        assert_listed(&list(&app, &access, query).await, &expected);
    }
}

#[tokio::test]
async fn an_empty_filter_value_filters_nothing() {
    let (app, access) = filter_fixture().await;
    let everyone = ["admin", "a", "b", "c", "d"];
    assert_listed(&list(&app, &access, "is_active=").await, &everyone);
    assert_listed(&list(&app, &access, "is_staff=").await, &everyone);
    assert_listed(
        &list(&app, &access, "is_active=&is_staff=").await,
        &everyone,
    );
}

#[tokio::test]
async fn a_filter_value_that_is_not_a_boolean_is_a_400_naming_the_filter() {
    let (app, access) = filter_fixture().await;
    for value in ["maybe", "2", "-1", "tru", "null", "%00"] {
        let reply = list(&app, &access, &format!("is_active={value}")).await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "is_active={value}: {}",
            reply.body
        );
        assert_eq!(reply.body, not_a_boolean("is_active"), "is_active={value}");
        let reply = list(&app, &access, &format!("is_staff={value}")).await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "is_staff={value}: {}",
            reply.body
        );
        assert_eq!(reply.body, not_a_boolean("is_staff"), "is_staff={value}");
    }
}

#[tokio::test]
async fn unknown_query_parameters_are_ignored() {
    let (app, access) = filter_fixture().await;
    assert_listed(
        &list(
            &app,
            &access,
            "is_superuser=true&password=x&limit=1&offset=3",
        )
        .await,
        &["admin", "a", "b", "c", "d"],
    );
}

// ---------------------------------------------------------------------------------------
// GET /api/users/{id}/
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn a_user_sees_itself_at_its_own_id() {
    let app = spawn_app().await;
    let (id, access, _) = app.signed_in("monica").await;
    let reply = get_user(&app, &access, id).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body, plain_user(id, "monica", &reply.body));
    assert_eq!(reply.body, app.me(&access).await.body);
}

#[tokio::test]
async fn a_non_staff_user_gets_404_for_any_other_user() {
    let app = spawn_app().await;
    let (admin_id, _) = staff_user(&app, "admin").await;
    let (other_id, _, _) = app.signed_in("phoebe").await;
    let (id, access, _) = app.signed_in("monica").await;
    for target in [
        admin_id.to_string(),
        other_id.to_string(),
        (id + 1000).to_string(),
        "0".to_owned(),
        "abc".to_owned(),
    ] {
        let reply = get_user(&app, &access, &target).await;
        assert_eq!(
            reply.status,
            StatusCode::NOT_FOUND,
            "{target}: {}",
            reply.body
        );
        assert_eq!(reply.body, not_found(), "{target}");
    }
}

#[tokio::test]
async fn staff_see_any_user_by_id() {
    let app = spawn_app().await;
    let (_, access) = staff_user(&app, "admin").await;
    let (id, user_access, _) = app.signed_in("phoebe").await;
    let reply = get_user(&app, &access, id).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body, app.me(&user_access).await.body);
    // Without the trailing slash too.
    let reply = app.get_auth(&format!("/api/users/{id}"), &access).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
}

#[tokio::test]
async fn staff_get_404_for_an_id_that_does_not_exist_or_is_not_a_number() {
    let app = spawn_app().await;
    let (id, access) = staff_user(&app, "admin").await;
    for target in [
        (id + 1).to_string(),
        "0".to_owned(),
        "-1".to_owned(),
        "abc".to_owned(),
        "1.0".to_owned(),
        "1e1".to_owned(),
        " 1".replace(' ', "%20"),
        "99999999999999999999".to_owned(),
        "9223372036854775807".to_owned(),
    ] {
        let reply = get_user(&app, &access, &target).await;
        assert_eq!(
            reply.status,
            StatusCode::NOT_FOUND,
            "{target}: {}",
            reply.body
        );
        assert_eq!(reply.body, not_found(), "{target}");
        let reply = patch_user(&app, &access, &target, json!({"first_name": "X"})).await;
        assert_eq!(
            reply.status,
            StatusCode::NOT_FOUND,
            "PATCH {target}: {}",
            reply.body
        );
        assert_eq!(reply.body, not_found(), "PATCH {target}");
        let reply = delete_user(&app, &access, &target).await;
        assert_eq!(
            reply.status,
            StatusCode::NOT_FOUND,
            "DELETE {target}: {}",
            reply.body
        );
        assert_eq!(reply.body, not_found(), "DELETE {target}");
    }
}

#[tokio::test]
async fn an_id_with_a_sign_or_that_does_not_decode_is_404_in_drfs_shape() {
    // Django's `<int:pk>` is `[0-9]+`: `+5` (or `%2B5`) is not routed, and neither is a
    // segment that is not UTF-8 once decoded.
    let app = spawn_app().await;
    let (_, access) = superuser(&app, "admin").await;
    let (id, _, _) = app.signed_in("phoebe").await;
    for target in [
        format!("+{id}"),
        format!("%2B{id}"),
        "%FF".to_owned(),
        format!("{id}%FF"),
        "%C3%28".to_owned(),
    ] {
        let body = json!({"username": "phoebe", "email": "phoebe@example.com"});
        for (method, reply) in [
            ("GET", get_user(&app, &access, &target).await),
            ("PUT", put_user(&app, &access, &target, body.clone()).await),
            ("PATCH", patch_user(&app, &access, &target, body).await),
            ("DELETE", delete_user(&app, &access, &target).await),
        ] {
            assert_eq!(
                reply.status,
                StatusCode::NOT_FOUND,
                "{method} {target}: {}",
                reply.body
            );
            assert_eq!(reply.body, not_found(), "{method} {target}");
            assert_eq!(
                reply.header("content-type"),
                Some("application/json"),
                "{method} {target}"
            );
        }
    }
    // The user is untouched.
    assert_eq!(get_user(&app, &access, id).await.status, StatusCode::OK);
}

// ---------------------------------------------------------------------------------------
// POST /api/users/
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn staff_create_a_user_and_get_201_with_the_whole_user() {
    let app = spawn_app().await;
    let (_, access) = staff_user(&app, "admin").await;
    let reply = create_user(
        &app,
        &access,
        json!({
            "username": "newbie",
            "email": "New.Bie@EXAMPLE.org",
            "password": STRONG_PASSWORD,
            "first_name": "New",
            "last_name": "Bie",
        }),
    )
    .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    let id = reply.body["id"].as_i64().expect("an integer id");
    assert_recent(&reply.body["date_joined"]);
    let expected = json!({
        "id": id,
        "username": "newbie",
        "email": "New.Bie@example.org",
        "first_name": "New",
        "last_name": "Bie",
        "is_active": true,
        "is_staff": false,
        "is_superuser": false,
        "date_joined": reply.body["date_joined"],
        "last_login": null,
    });
    assert_eq!(reply.body, expected);
    assert_eq!(reply.header("content-type"), Some("application/json"));
    assert_eq!(fetch(&app, &access, id).await, expected);

    // The new user signs in with the password given.
    let (new_access, _) = app.login_ok("newbie").await;
    let me = app.me(&new_access).await;
    assert_eq!(me.body["id"], id);
    assert_eq!(me.body["is_staff"], false);
}

#[tokio::test]
async fn creating_a_user_applies_registrations_validation() {
    let app = spawn_app().await;
    let (_, access) = staff_user(&app, "admin").await;
    let reply = create_user(&app, &access, json!({})).await;
    assert_reply(
        &reply,
        StatusCode::BAD_REQUEST,
        json!({
            "username": ["This field is required."],
            "email": ["This field is required."],
            "password": ["This field is required."],
        }),
    );
    let reply = create_user(
        &app,
        &access,
        json!({"username": "bad name", "email": "not-an-email", "password": "12345"}),
    )
    .await;
    assert_reply(
        &reply,
        StatusCode::BAD_REQUEST,
        json!({
            "username": ["Enter a valid username. This value may contain only letters, numbers, and @/./+/-/_ characters."],
            "email": ["Enter a valid email address."],
            "password": [
                "This password is too short. It must contain at least 8 characters.",
                "This password is too common.",
                "This password is entirely numeric.",
            ],
        }),
    );
    let reply = create_user(
        &app,
        &access,
        json!({"username": "rachelgreen", "email": "rg@example.com", "password": "rachelgreen1"}),
    )
    .await;
    assert_reply(
        &reply,
        StatusCode::BAD_REQUEST,
        json!({"password": ["The password is too similar to the username."]}),
    );
    assert_listed(&list(&app, &access, "").await, &["admin"]);
}

#[tokio::test]
async fn creating_a_user_with_a_taken_username_or_email_in_any_case_is_refused() {
    let app = spawn_app().await;
    let (_, access) = staff_user(&app, "admin").await;
    app.register_ok("phoebe").await;
    let reply = create_user(
        &app,
        &access,
        json!({"username": "PHOEBE", "email": "other@example.com", "password": STRONG_PASSWORD}),
    )
    .await;
    assert_reply(
        &reply,
        StatusCode::BAD_REQUEST,
        json!({"username": ["A user with that username already exists."]}),
    );
    let reply = create_user(
        &app,
        &access,
        json!({"username": "buffay", "email": "Phoebe@Example.COM", "password": STRONG_PASSWORD}),
    )
    .await;
    assert_reply(
        &reply,
        StatusCode::BAD_REQUEST,
        json!({"email": ["A user with that email already exists."]}),
    );
    assert_listed(&list(&app, &access, "").await, &["admin", "phoebe"]);
}

#[tokio::test]
async fn a_user_created_inactive_cannot_sign_in() {
    let app = spawn_app().await;
    let (_, access) = staff_user(&app, "admin").await;
    let mut body = new_user("sleeper");
    body["is_active"] = json!(false);
    let reply = create_user(&app, &access, body).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    assert_eq!(reply.body["is_active"], false);
    let login = app.login("sleeper", STRONG_PASSWORD).await;
    assert_reply(&login, StatusCode::UNAUTHORIZED, login_failed());
    assert_listed(&list(&app, &access, "is_active=false").await, &["sleeper"]);
}

#[tokio::test]
async fn usernames_staff_set_are_nfkc_normalised_as_django_does() {
    let app = spawn_app().await;
    let (_, access) = staff_user(&app, "admin").await;
    let taken = json!({"username": ["A user with that username already exists."]});
    // U+212A KELVIN SIGN is stored as an ASCII K.
    let mut body = new_user("kelvin");
    body["username"] = json!("\u{212A}elvin");
    let reply = create_user(&app, &access, body).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    assert_eq!(reply.body["username"], "Kelvin");
    let id = reply.body["id"].as_i64().expect("id");
    // U+FF41 FULLWIDTH LATIN SMALL LETTER A: `ａdmin` is `admin`, which is taken.
    let mut body = new_user("fullwidth");
    body["username"] = json!("\u{FF41}dmin");
    assert_reply(
        &create_user(&app, &access, body).await,
        StatusCode::BAD_REQUEST,
        taken.clone(),
    );
    let rename = json!({"username": "\u{FF41}dmin", "email": "kelvin@example.org"});
    assert_reply(
        &put_user(&app, &access, id, rename).await,
        StatusCode::BAD_REQUEST,
        taken.clone(),
    );
    let reply = patch_user(&app, &access, id, json!({"username": "\u{FB01}ne"})).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["username"], "fine");
    assert_reply(
        &patch_user(&app, &access, id, json!({"username": "\u{FF21}DMIN"})).await,
        StatusCode::BAD_REQUEST,
        taken,
    );
}

#[tokio::test]
async fn a_non_staff_user_may_not_create_users() {
    let app = spawn_app().await;
    let (_, access) = staff_user(&app, "admin").await;
    let (_, user_access, _) = app.signed_in("joey").await;
    for body in [new_user("mallory"), json!({}), {
        let mut b = new_user("mallory");
        b["is_superuser"] = json!(true);
        b
    }] {
        let reply = create_user(&app, &user_access, body).await;
        assert_reply(&reply, StatusCode::FORBIDDEN, forbidden());
    }
    assert_listed(&list(&app, &access, "").await, &["admin", "joey"]);
}

#[tokio::test]
async fn staff_who_are_not_superusers_may_not_create_staff_or_superusers() {
    let app = spawn_app().await;
    let (_, access) = staff_user(&app, "admin").await;
    for (flag, value) in [
        ("is_staff", json!(true)),
        ("is_superuser", json!(true)),
        ("is_staff", json!("true")),
        ("is_superuser", json!(1)),
    ] {
        let mut body = new_user("mallory");
        body[flag] = value.clone();
        let reply = create_user(&app, &access, body).await;
        assert_eq!(
            reply.status,
            StatusCode::FORBIDDEN,
            "{flag}={value}: {}",
            reply.body
        );
        assert_eq!(reply.body, forbidden(), "{flag}={value}");
    }
    let login = app.login("mallory", STRONG_PASSWORD).await;
    assert_reply(&login, StatusCode::UNAUTHORIZED, login_failed());
    assert_listed(&list(&app, &access, "").await, &["admin"]);

    // Asking for the flags that need nobody's permission is fine.
    let mut body = new_user("helper");
    body["is_staff"] = json!(false);
    body["is_superuser"] = json!(false);
    let reply = create_user(&app, &access, body).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    assert_eq!(reply.body["is_staff"], false);
    assert_eq!(reply.body["is_superuser"], false);
}

#[tokio::test]
async fn users_are_created_and_changed_with_form_encoded_bodies_as_drf_accepts() {
    let app = spawn_app().await;
    let (_, access) = staff_user(&app, "admin").await;
    let reply = Reply::read(
        app.client
            .post(app.url("/api/users/"))
            .bearer_auth(&access)
            .form(&[
                ("username", "formy"),
                ("email", "formy@example.org"),
                ("password", STRONG_PASSWORD),
                ("is_active", "true"),
                ("is_staff", "false"),
            ])
            .send()
            .await
            .expect("request"),
    )
    .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    let id = reply.body["id"].as_i64().expect("id");
    assert_eq!(reply.body["is_active"], true);
    let reply = Reply::read(
        app.client
            .patch(app.url(&format!("/api/users/{id}/")))
            .bearer_auth(&access)
            .form(&[("is_active", "false"), ("last_name", "Form")])
            .send()
            .await
            .expect("request"),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["is_active"], false);
    assert_eq!(reply.body["last_name"], "Form");
}

#[tokio::test]
async fn a_superuser_creates_staff_and_superusers() {
    let app = spawn_app().await;
    let (_, access) = superuser(&app, "root").await;
    let mut body = new_user("deputy");
    body["is_staff"] = json!(true);
    let reply = create_user(&app, &access, body).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    assert_eq!(reply.body["is_staff"], true);
    assert_eq!(reply.body["is_superuser"], false);

    let mut body = new_user("heir");
    body["is_staff"] = json!(true);
    body["is_superuser"] = json!(true);
    let reply = create_user(&app, &access, body).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    assert_eq!(reply.body["is_staff"], true);
    assert_eq!(reply.body["is_superuser"], true);

    // The new staff member can list users at once.
    let (deputy_access, _) = app.login_ok("deputy").await;
    assert_listed(
        &list(&app, &deputy_access, "").await,
        &["root", "deputy", "heir"],
    );
}

#[tokio::test]
async fn creating_a_user_with_a_flag_that_is_not_a_boolean_is_a_400() {
    let app = spawn_app().await;
    let (_, access) = superuser(&app, "root").await;
    for flag in ["is_active", "is_staff", "is_superuser"] {
        let mut body = new_user("flaggy");
        body[flag] = json!("maybe");
        let reply = create_user(&app, &access, body).await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{flag}: {}",
            reply.body
        );
        assert_eq!(reply.body, not_a_boolean(flag), "{flag}");
    }
    assert_listed(&list(&app, &access, "").await, &["root"]);
}

// ---------------------------------------------------------------------------------------
// PATCH / PUT /api/users/{id}/: the user itself
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn a_user_changes_its_own_names_at_its_own_id() {
    let app = spawn_app().await;
    let (id, access, _) = app.signed_in("monica").await;
    let reply = patch_user(
        &app,
        &access,
        id,
        json!({"first_name": "Monica", "last_name": "Geller"}),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let mut expected = plain_user(id, "monica", &reply.body);
    expected["first_name"] = json!("Monica");
    expected["last_name"] = json!("Geller");
    assert_eq!(reply.body, expected);
    assert_eq!(app.me(&access).await.body, expected);
}

#[tokio::test]
async fn a_user_changing_its_own_username_or_email_at_its_id_needs_current_password() {
    let app = spawn_app().await;
    let (id, access, _) = app.signed_in("ross").await;
    for body in [
        json!({"username": "drross"}),
        json!({"email": "ross@nyu.edu"}),
    ] {
        let reply = patch_user(&app, &access, id, body).await;
        assert_reply(
            &reply,
            StatusCode::BAD_REQUEST,
            json!({"current_password": ["This field is required."]}),
        );
    }
    for body in [
        json!({"username": "drross", "current_password": "not-the-Password-9"}),
        json!({"email": "ross@nyu.edu", "current_password": "not-the-Password-9"}),
    ] {
        let reply = patch_user(&app, &access, id, body).await;
        assert_reply(
            &reply,
            StatusCode::BAD_REQUEST,
            json!({"current_password": ["Invalid password."]}),
        );
    }
    let me = app.me(&access).await;
    assert_eq!(me.body, plain_user(id, "ross", &me.body));

    let reply = patch_user(
        &app,
        &access,
        id,
        json!({"username": "drgeller", "email": "ross@NYU.edu", "current_password": STRONG_PASSWORD}),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let mut expected = plain_user(id, "ross", &reply.body);
    expected["username"] = json!("drgeller");
    expected["email"] = json!("ross@nyu.edu");
    assert_eq!(reply.body, expected);
    assert_eq!(
        app.login("drgeller", STRONG_PASSWORD).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_user_putting_its_own_username_or_email_needs_current_password_too() {
    let app = spawn_app().await;
    let (id, access, _) = app.signed_in("ross").await;
    let reply = put_user(
        &app,
        &access,
        id,
        json!({"username": "drross", "email": "ross@example.com"}),
    )
    .await;
    assert_reply(
        &reply,
        StatusCode::BAD_REQUEST,
        json!({"current_password": ["This field is required."]}),
    );
    // The same username and email back need no password.
    let reply = put_user(
        &app,
        &access,
        id,
        json!({"username": "ross", "email": "ross@example.com", "last_name": "Geller"}),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["last_name"], "Geller");
}

#[tokio::test]
async fn staff_changing_their_own_username_at_their_id_need_current_password_too() {
    let app = spawn_app().await;
    let (id, access) = staff_user(&app, "admin").await;
    let reply = patch_user(&app, &access, id, json!({"username": "boss"})).await;
    assert_reply(
        &reply,
        StatusCode::BAD_REQUEST,
        json!({"current_password": ["This field is required."]}),
    );
    let reply = patch_user(
        &app,
        &access,
        id,
        json!({"username": "boss", "current_password": STRONG_PASSWORD}),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["username"], "boss");
}

#[tokio::test]
async fn a_non_staff_user_may_not_change_its_own_flags() {
    let app = spawn_app().await;
    let (id, access, _) = app.signed_in("gunther").await;
    for body in [
        json!({"is_staff": true}),
        json!({"is_superuser": true}),
        json!({"is_active": false}),
        json!({"is_staff": true, "first_name": "Gunther"}),
    ] {
        let reply = patch_user(&app, &access, id, body.clone()).await;
        assert_eq!(
            reply.status,
            StatusCode::FORBIDDEN,
            "{body}: {}",
            reply.body
        );
        assert_eq!(reply.body, forbidden(), "{body}");
    }
    let reply = put_user(
        &app,
        &access,
        id,
        json!({"username": "gunther", "email": "gunther@example.com", "is_superuser": true}),
    )
    .await;
    assert_reply(&reply, StatusCode::FORBIDDEN, forbidden());
    let me = app.me(&access).await;
    assert_eq!(me.body, plain_user(id, "gunther", &me.body));
}

#[tokio::test]
async fn read_only_fields_and_unchanged_flags_sent_back_are_ignored() {
    let app = spawn_app().await;
    let (id, access, _) = app.signed_in("gunther").await;
    let before = app.me(&access).await.body;
    // A DRF client's PUT: the object as it was read, with one field changed.
    let mut body = before.clone();
    body["id"] = json!(id + 1000);
    body["date_joined"] = json!("2000-01-01T00:00:00Z");
    body["last_login"] = json!("2000-01-01T00:00:00Z");
    body["last_name"] = json!("Centralperk");
    let reply = put_user(&app, &access, id, body.clone()).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let mut expected = before.clone();
    expected["last_name"] = json!("Centralperk");
    assert_eq!(reply.body, expected);

    let reply = patch_user(&app, &access, id, body).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body, expected);
    assert_eq!(app.me(&access).await.body, expected);
}

// ---------------------------------------------------------------------------------------
// PATCH / PUT / DELETE /api/users/{id}/: another user
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn a_non_staff_user_gets_404_changing_or_deleting_another_user() {
    let app = spawn_app().await;
    let (other_id, other_access, _) = app.signed_in("phoebe").await;
    let (_, access, _) = app.signed_in("joey").await;
    let before = app.me(&other_access).await.body;
    let reply = patch_user(&app, &access, other_id, json!({"first_name": "Princess"})).await;
    assert_reply(&reply, StatusCode::NOT_FOUND, not_found());
    let reply = patch_user(&app, &access, other_id, json!({"is_active": false})).await;
    assert_reply(&reply, StatusCode::NOT_FOUND, not_found());
    let reply = put_user(
        &app,
        &access,
        other_id,
        json!({"username": "phoebe", "email": "phoebe@example.com", "last_name": "X"}),
    )
    .await;
    assert_reply(&reply, StatusCode::NOT_FOUND, not_found());
    let reply = delete_user(&app, &access, other_id).await;
    assert_reply(&reply, StatusCode::NOT_FOUND, not_found());
    assert_eq!(app.me(&other_access).await.body, before);
}

#[tokio::test]
async fn staff_change_another_users_username_and_email_without_a_password() {
    let app = spawn_app().await;
    let (_, access) = staff_user(&app, "admin").await;
    let (id, user_access, _) = app.signed_in("ross").await;
    let reply = patch_user(
        &app,
        &access,
        id,
        json!({"username": "drgeller", "email": "Ross@NYU.edu", "first_name": "Ross"}),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let mut expected = plain_user(id, "ross", &reply.body);
    expected["username"] = json!("drgeller");
    expected["email"] = json!("Ross@nyu.edu");
    expected["first_name"] = json!("Ross");
    assert_eq!(reply.body, expected);
    assert_eq!(app.me(&user_access).await.body, expected);
    assert_eq!(
        app.login("drgeller", STRONG_PASSWORD).await.status,
        StatusCode::OK
    );
    let old = app.login("ross", STRONG_PASSWORD).await;
    assert_reply(&old, StatusCode::UNAUTHORIZED, login_failed());
}

#[tokio::test]
async fn staff_put_another_user_with_a_drf_clients_whole_object() {
    let app = spawn_app().await;
    let (_, access) = staff_user(&app, "admin").await;
    let (id, _, _) = app.signed_in("rachel").await;
    let before = fetch(&app, &access, id).await;
    let mut body = before.clone();
    body["last_name"] = json!("Green");
    body["email"] = json!("rachel@ralphlauren.com");
    body["date_joined"] = json!("1999-01-01T00:00:00Z");
    let reply = put_user(&app, &access, id, body).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let mut expected = before;
    expected["last_name"] = json!("Green");
    expected["email"] = json!("rachel@ralphlauren.com");
    assert_eq!(reply.body, expected);
    assert_eq!(fetch(&app, &access, id).await, expected);
}

#[tokio::test]
async fn put_without_username_and_email_names_both_as_required() {
    let app = spawn_app().await;
    let (_, access) = staff_user(&app, "admin").await;
    let (id, _, _) = app.signed_in("janice").await;
    let reply = put_user(&app, &access, id, json!({"first_name": "Janice"})).await;
    assert_reply(
        &reply,
        StatusCode::BAD_REQUEST,
        json!({"username": ["This field is required."], "email": ["This field is required."]}),
    );
    assert_eq!(fetch(&app, &access, id).await["first_name"], "");
}

#[tokio::test]
async fn staff_cannot_give_a_user_a_username_or_email_another_user_has() {
    let app = spawn_app().await;
    let (_, access) = staff_user(&app, "admin").await;
    app.register_ok("phoebe").await;
    let (id, _, _) = app.signed_in("joey").await;
    let reply = patch_user(&app, &access, id, json!({"username": "Phoebe"})).await;
    assert_reply(
        &reply,
        StatusCode::BAD_REQUEST,
        json!({"username": ["A user with that username already exists."]}),
    );
    let reply = patch_user(&app, &access, id, json!({"email": "PHOEBE@example.com"})).await;
    assert_reply(
        &reply,
        StatusCode::BAD_REQUEST,
        json!({"email": ["A user with that email already exists."]}),
    );
    let reply = patch_user(&app, &access, id, json!({"username": "joey tribbiani"})).await;
    assert_reply(
        &reply,
        StatusCode::BAD_REQUEST,
        json!({"username": ["Enter a valid username. This value may contain only letters, numbers, and @/./+/-/_ characters."]}),
    );
}

#[tokio::test]
async fn a_flag_that_is_not_a_boolean_is_a_400_naming_it() {
    let app = spawn_app().await;
    let (_, access) = superuser(&app, "root").await;
    let (id, _, _) = app.signed_in("joey").await;
    for flag in ["is_active", "is_staff", "is_superuser"] {
        let reply = patch_user(&app, &access, id, json!({ flag: "maybe" })).await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{flag}: {}",
            reply.body
        );
        assert_eq!(reply.body, not_a_boolean(flag), "{flag}");
    }
}

#[tokio::test]
async fn staff_who_are_not_superusers_may_not_change_anyones_staff_or_superuser_flag() {
    let app = spawn_app().await;
    let (admin_id, access) = staff_user(&app, "admin").await;
    let (root_id, _) = superuser(&app, "root").await;
    let (id, user_access, _) = app.signed_in("joey").await;
    let cases = [
        (id, json!({"is_staff": true})),
        (id, json!({"is_superuser": true})),
        (id, json!({"is_staff": "true", "first_name": "Joey"})),
        (admin_id, json!({"is_superuser": true})),
        (admin_id, json!({"is_staff": false})),
        (root_id, json!({"is_superuser": false})),
        (root_id, json!({"is_staff": false})),
    ];
    for (target, body) in cases {
        let reply = patch_user(&app, &access, target, body.clone()).await;
        assert_eq!(
            reply.status,
            StatusCode::FORBIDDEN,
            "{target} {body}: {}",
            reply.body
        );
        assert_eq!(reply.body, forbidden(), "{target} {body}");
    }
    let me = app.me(&user_access).await;
    assert_eq!(me.body, plain_user(id, "joey", &me.body));
    assert_eq!(fetch(&app, &access, admin_id).await["is_staff"], true);
    assert_eq!(fetch(&app, &access, root_id).await["is_superuser"], true);
    assert_reply(
        &list(&app, &user_access, "").await,
        StatusCode::FORBIDDEN,
        forbidden(),
    );
}

#[tokio::test]
async fn a_superuser_may_send_another_superusers_flags_back_unchanged_but_plain_staff_may_not_touch_one(
) {
    let app = spawn_app().await;
    let (_, staff_access) = staff_user(&app, "admin").await;
    let (_, boss_access) = superuser(&app, "boss").await;
    let (root_id, _) = superuser(&app, "root").await;
    let mut body = fetch(&app, &boss_access, root_id).await;
    body["first_name"] = json!("Groot");
    // Changing a superuser at all is a superuser's business: a staff member who could
    // change its email could take the account over through a password reset.
    let reply = put_user(&app, &staff_access, root_id, body.clone()).await;
    assert_reply(&reply, StatusCode::FORBIDDEN, forbidden());
    let reply = put_user(&app, &boss_access, root_id, body.clone()).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body, body);
}

#[tokio::test]
async fn a_superuser_makes_and_unmakes_staff_and_superusers() {
    let app = spawn_app().await;
    let (_, root_access) = superuser(&app, "root").await;
    let (id, access, _) = app.signed_in("joey").await;
    assert_reply(
        &list(&app, &access, "").await,
        StatusCode::FORBIDDEN,
        forbidden(),
    );

    let reply = patch_user(&app, &root_access, id, json!({"is_staff": true})).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let mut expected = plain_user(id, "joey", &reply.body);
    expected["is_staff"] = json!(true);
    assert_eq!(reply.body, expected);
    // The same token now lists users: permissions are read per request.
    assert_listed(&list(&app, &access, "").await, &["root", "joey"]);

    let reply = patch_user(&app, &root_access, id, json!({"is_superuser": true})).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["is_superuser"], true);

    let reply = patch_user(
        &app,
        &root_access,
        id,
        json!({"is_staff": false, "is_superuser": false}),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body, plain_user(id, "joey", &reply.body));
    assert_reply(
        &list(&app, &access, "").await,
        StatusCode::FORBIDDEN,
        forbidden(),
    );
}

// ---------------------------------------------------------------------------------------
// Deactivating and reactivating
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn deactivating_a_user_ends_its_sessions_at_once_and_stops_its_logins() {
    let app = spawn_app().await;
    let (_, access) = staff_user(&app, "admin").await;
    let (id, user_access, user_refresh) = app.signed_in("chandler").await;
    let (second_access, second_refresh) = app.login_ok("chandler").await;
    // A token as SimpleJWT would mint it (no session), issued before the deactivation.
    let simplejwt = simplejwt_token("access", id, now() - 10, now() + 300);
    assert_eq!(app.me(&simplejwt).await.status, StatusCode::OK);

    let reply = patch_user(&app, &access, id, json!({"is_active": false})).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let mut expected = plain_user(id, "chandler", &reply.body);
    expected["is_active"] = json!(false);
    assert_eq!(reply.body, expected);

    for token in [&user_access, &second_access, &simplejwt] {
        assert_401(&app.me(token).await, user_inactive());
        assert_401(&get_user(&app, token, id).await, user_inactive());
    }
    for refresh in [&user_refresh, &second_refresh] {
        let reply = app.refresh(refresh).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{}", reply.body);
    }
    let login = app.login("chandler", STRONG_PASSWORD).await;
    assert_reply(&login, StatusCode::UNAUTHORIZED, login_failed());
    assert_eq!(fetch(&app, &access, id).await, expected);
}

#[tokio::test]
async fn a_reactivated_user_logs_in_again_but_its_old_sessions_stay_ended() {
    let app = spawn_app().await;
    let (_, access) = staff_user(&app, "admin").await;
    let (id, old_access, old_refresh) = app.signed_in("chandler").await;
    let simplejwt = simplejwt_token("access", id, now() - 10, now() + 300);

    let reply = patch_user(&app, &access, id, json!({"is_active": false})).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let reply = patch_user(&app, &access, id, json!({"is_active": true})).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["is_active"], true);

    let (new_access, _) = app.login_ok("chandler").await;
    assert_eq!(app.me(&new_access).await.status, StatusCode::OK);

    assert_401(&app.me(&old_access).await, access_token_not_valid());
    assert_401(&app.me(&simplejwt).await, access_token_not_valid());
    let reply = app.refresh(&old_refresh).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{}", reply.body);
}

#[tokio::test]
async fn a_deactivated_staff_member_loses_the_list_at_once() {
    let app = spawn_app().await;
    let (_, root_access) = superuser(&app, "root").await;
    let (id, access) = staff_user(&app, "admin").await;
    assert_eq!(list(&app, &access, "").await.status, StatusCode::OK);
    let reply = patch_user(&app, &root_access, id, json!({"is_active": false})).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_401(&list(&app, &access, "").await, user_inactive());
}

// ---------------------------------------------------------------------------------------
// DELETE /api/users/{id}/
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn staff_delete_a_user_with_204_and_its_tokens_stop_at_once() {
    let app = spawn_app().await;
    let (_, access) = staff_user(&app, "admin").await;
    let (id, user_access, user_refresh) = app.signed_in("richard").await;

    let reply = delete_user(&app, &access, id).await;
    assert_no_content(&reply);

    assert_401(&app.me(&user_access).await, user_not_found());
    let reply = app.refresh(&user_refresh).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{}", reply.body);
    let login = app.login("richard", STRONG_PASSWORD).await;
    assert_reply(&login, StatusCode::UNAUTHORIZED, login_failed());
    assert_reply(
        &get_user(&app, &access, id).await,
        StatusCode::NOT_FOUND,
        not_found(),
    );
    assert_listed(&list(&app, &access, "").await, &["admin"]);
    // A second delete finds nothing.
    assert_reply(
        &delete_user(&app, &access, id).await,
        StatusCode::NOT_FOUND,
        not_found(),
    );
}

#[tokio::test]
async fn a_user_deletes_itself_at_its_own_id() {
    let app = spawn_app().await;
    let (id, access, _) = app.signed_in("richard").await;
    assert_no_content(&delete_user(&app, &access, id).await);
    assert_401(&app.me(&access).await, user_not_found());
    let login = app.login("richard", STRONG_PASSWORD).await;
    assert_reply(&login, StatusCode::UNAUTHORIZED, login_failed());
}

#[tokio::test]
async fn only_a_superuser_deletes_another_staff_member() {
    let app = spawn_app().await;
    let (_, access) = staff_user(&app, "admin").await;
    let (_, root_access) = superuser(&app, "root").await;
    let (other, other_access) = staff_user(&app, "deputy").await;
    assert_reply(
        &delete_user(&app, &access, other).await,
        StatusCode::FORBIDDEN,
        forbidden(),
    );
    assert_eq!(list(&app, &other_access, "").await.status, StatusCode::OK);
    assert_no_content(&delete_user(&app, &root_access, other).await);
    assert_401(&list(&app, &other_access, "").await, user_not_found());
}

// ---------------------------------------------------------------------------------------
// The last active superuser
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn the_only_superuser_cannot_demote_deactivate_or_delete_itself() {
    let app = spawn_app().await;
    create_superuser_with_cli(&app, "root").await;
    let (access, refresh) = app.login_ok("root").await;
    let id = app.me(&access).await.body["id"].as_i64().expect("id");

    let reply = patch_user(&app, &access, id, json!({"is_superuser": false})).await;
    assert_reply(&reply, StatusCode::BAD_REQUEST, last_superuser_demoted());
    let reply = patch_user(&app, &access, id, json!({"is_active": false})).await;
    assert_reply(
        &reply,
        StatusCode::BAD_REQUEST,
        last_superuser_deactivated(),
    );
    let mut body = app.me(&access).await.body;
    body["is_superuser"] = json!(false);
    let reply = put_user(&app, &access, id, body).await;
    assert_reply(&reply, StatusCode::BAD_REQUEST, last_superuser_demoted());
    let reply = delete_user(&app, &access, id).await;
    assert_reply(&reply, StatusCode::BAD_REQUEST, last_superuser_deleted());
    let reply = app
        .send_auth(Method::DELETE, "/api/users/me/", &access, None)
        .await;
    assert_reply(&reply, StatusCode::BAD_REQUEST, last_superuser_deleted());
    let reply = app
        .send_auth(Method::DELETE, "/api/delete_account/", &access, None)
        .await;
    assert_reply(&reply, StatusCode::BAD_REQUEST, last_superuser_deleted());

    // Nothing happened: still an active superuser, still signed in.
    let me = app.me(&access).await;
    assert_eq!(me.status, StatusCode::OK, "{}", me.body);
    assert_eq!(me.body["is_superuser"], true);
    assert_eq!(me.body["is_active"], true);
    assert_eq!(app.refresh(&refresh).await.status, StatusCode::OK);
    assert_eq!(
        app.login("root", STRONG_PASSWORD).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn plain_staff_cannot_deactivate_or_delete_a_superuser_at_all() {
    let app = spawn_app().await;
    let (root_id, root_access) = superuser(&app, "root").await;
    let (_, access) = staff_user(&app, "admin").await;
    let reply = patch_user(&app, &access, root_id, json!({"is_active": false})).await;
    assert_reply(&reply, StatusCode::FORBIDDEN, forbidden());
    let reply = delete_user(&app, &access, root_id).await;
    assert_reply(&reply, StatusCode::FORBIDDEN, forbidden());
    let me = app.me(&root_access).await;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(me.body["is_superuser"], true);
}

#[tokio::test]
async fn an_inactive_superuser_does_not_count_as_another_superuser() {
    let app = spawn_app().await;
    let (id, access) = superuser(&app, "root").await;
    let (sleeper, _) = superuser(&app, "sleeper").await;
    app.execute_sql(&format!(
        "UPDATE auth_user SET is_active = FALSE WHERE id = {sleeper}"
    ))
    .await;
    let reply = patch_user(&app, &access, id, json!({"is_superuser": false})).await;
    assert_reply(&reply, StatusCode::BAD_REQUEST, last_superuser_demoted());
    let reply = delete_user(&app, &access, id).await;
    assert_reply(&reply, StatusCode::BAD_REQUEST, last_superuser_deleted());
    // Reactivating the other one lets the first step down.
    let reply = patch_user(&app, &access, sleeper, json!({"is_active": true})).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let reply = patch_user(&app, &access, id, json!({"is_superuser": false})).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["is_superuser"], false);
}

#[tokio::test]
async fn of_two_superusers_one_may_demote_the_other_but_not_then_itself() {
    let app = spawn_app().await;
    let (a, a_access) = superuser(&app, "alpha").await;
    let (b, b_access) = superuser(&app, "bravo").await;

    let reply = patch_user(&app, &a_access, b, json!({"is_superuser": false})).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["is_superuser"], false);

    // Bravo is no longer a superuser, so it may not touch the flag at all.
    let reply = patch_user(&app, &b_access, a, json!({"is_superuser": false})).await;
    assert_reply(&reply, StatusCode::FORBIDDEN, forbidden());
    // And alpha, now the last one, may not step down.
    let reply = patch_user(&app, &a_access, a, json!({"is_superuser": false})).await;
    assert_reply(&reply, StatusCode::BAD_REQUEST, last_superuser_demoted());
    assert_eq!(fetch(&app, &a_access, a).await["is_superuser"], true);
}

#[tokio::test]
async fn of_two_superusers_each_stepping_down_in_turn_the_second_is_refused() {
    let app = spawn_app().await;
    let (a, a_access) = superuser(&app, "alpha").await;
    let (b, b_access) = superuser(&app, "bravo").await;
    let reply = patch_user(&app, &a_access, a, json!({"is_superuser": false})).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let reply = patch_user(&app, &b_access, b, json!({"is_superuser": false})).await;
    assert_reply(&reply, StatusCode::BAD_REQUEST, last_superuser_demoted());
    let reply = patch_user(&app, &b_access, b, json!({"is_active": false})).await;
    assert_reply(
        &reply,
        StatusCode::BAD_REQUEST,
        last_superuser_deactivated(),
    );
    assert_eq!(fetch(&app, &b_access, b).await["is_superuser"], true);
}

#[tokio::test]
async fn of_two_superusers_one_may_delete_the_other_but_not_then_itself() {
    let app = spawn_app().await;
    let (a, a_access) = superuser(&app, "alpha").await;
    let (b, b_access) = superuser(&app, "bravo").await;
    assert_no_content(&delete_user(&app, &a_access, b).await);
    assert_401(&app.me(&b_access).await, user_not_found());
    let reply = delete_user(&app, &a_access, a).await;
    assert_reply(&reply, StatusCode::BAD_REQUEST, last_superuser_deleted());
    let reply = app
        .send_auth(Method::DELETE, "/api/users/me/", &a_access, None)
        .await;
    assert_reply(&reply, StatusCode::BAD_REQUEST, last_superuser_deleted());
    assert_eq!(app.me(&a_access).await.status, StatusCode::OK);
}

#[tokio::test]
async fn of_two_superusers_one_may_deactivate_the_other_but_not_then_itself() {
    let app = spawn_app().await;
    let (a, a_access) = superuser(&app, "alpha").await;
    let (b, b_access) = superuser(&app, "bravo").await;
    let reply = patch_user(&app, &a_access, b, json!({"is_active": false})).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_401(&app.me(&b_access).await, user_inactive());
    let reply = patch_user(&app, &a_access, a, json!({"is_active": false})).await;
    assert_reply(
        &reply,
        StatusCode::BAD_REQUEST,
        last_superuser_deactivated(),
    );
}

// ---------------------------------------------------------------------------------------
// Concurrency: the guard holds when two requests race
// ---------------------------------------------------------------------------------------

/// Whether `id` is an active superuser, as the observer (staff) sees it.
async fn is_active_superuser(app: &TestApp, observer: &str, id: i64) -> bool {
    let reply = get_user(app, observer, id).await;
    reply.status == StatusCode::OK
        && reply.body["is_active"] == true
        && reply.body["is_superuser"] == true
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_superusers_demoting_each_other_at_once_leave_exactly_one() {
    let app = spawn_app().await;
    let (_, observer) = staff_user(&app, "observer").await;
    let (a, a_access) = superuser(&app, "alpha").await;
    let (b, b_access) = superuser(&app, "bravo").await;
    for round in 0..5 {
        app.execute_sql(&format!(
            "UPDATE auth_user SET is_staff = TRUE, is_superuser = TRUE WHERE id IN ({a}, {b})"
        ))
        .await;
        let replies = join_all([
            patch_user(&app, &a_access, b, json!({"is_superuser": false})),
            patch_user(&app, &b_access, a, json!({"is_superuser": false})),
        ])
        .await;
        let ok = replies
            .iter()
            .filter(|r| r.status == StatusCode::OK)
            .count();
        assert_eq!(ok, 1, "round {round}: {replies:?}");
        for reply in replies.iter().filter(|r| r.status != StatusCode::OK) {
            // Refused by the guard, or by the permission check if the winner's change
            // was already visible when the loser's request was authenticated.
            assert!(
                (reply.status == StatusCode::BAD_REQUEST && reply.body == last_superuser_demoted())
                    || (reply.status == StatusCode::FORBIDDEN && reply.body == forbidden()),
                "round {round}: {reply:?}"
            );
        }
        let left = [a, b]
            .into_iter()
            .map(|id| is_active_superuser(&app, &observer, id));
        let left: Vec<bool> = join_all(left).await;
        assert_eq!(
            left.iter().filter(|s| **s).count(),
            1,
            "round {round}: {left:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_superusers_deactivating_each_other_at_once_leave_exactly_one_active() {
    let app = spawn_app().await;
    let (_, observer) = staff_user(&app, "observer").await;
    for round in 0..3 {
        let (a, a_access) = superuser(&app, &format!("alpha{round}")).await;
        let (b, b_access) = superuser(&app, &format!("bravo{round}")).await;
        // Only these two are superusers this round.
        app.execute_sql(&format!(
            "UPDATE auth_user SET is_superuser = FALSE WHERE id NOT IN ({a}, {b})"
        ))
        .await;
        let replies = join_all([
            patch_user(&app, &a_access, b, json!({"is_active": false})),
            patch_user(&app, &b_access, a, json!({"is_active": false})),
        ])
        .await;
        let ok = replies
            .iter()
            .filter(|r| r.status == StatusCode::OK)
            .count();
        assert_eq!(ok, 1, "round {round}: {replies:?}");
        for reply in replies.iter().filter(|r| r.status != StatusCode::OK) {
            assert!(
                (reply.status == StatusCode::BAD_REQUEST
                    && reply.body == last_superuser_deactivated())
                    || reply.status == StatusCode::UNAUTHORIZED,
                "round {round}: {reply:?}"
            );
        }
        let left: Vec<bool> = join_all(
            [a, b]
                .into_iter()
                .map(|id| is_active_superuser(&app, &observer, id)),
        )
        .await;
        assert_eq!(
            left.iter().filter(|s| **s).count(),
            1,
            "round {round}: {left:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_superusers_deleting_each_other_at_once_leave_exactly_one() {
    let app = spawn_app().await;
    let (_, observer) = staff_user(&app, "observer").await;
    for round in 0..3 {
        let (a, a_access) = superuser(&app, &format!("alpha{round}")).await;
        let (b, b_access) = superuser(&app, &format!("bravo{round}")).await;
        app.execute_sql(&format!(
            "UPDATE auth_user SET is_superuser = FALSE WHERE id NOT IN ({a}, {b})"
        ))
        .await;
        let replies = join_all([
            delete_user(&app, &a_access, b),
            delete_user(&app, &b_access, a),
        ])
        .await;
        let deleted = replies
            .iter()
            .filter(|r| r.status == StatusCode::NO_CONTENT)
            .count();
        assert_eq!(deleted, 1, "round {round}: {replies:?}");
        for reply in replies
            .iter()
            .filter(|r| r.status != StatusCode::NO_CONTENT)
        {
            assert!(
                (reply.status == StatusCode::BAD_REQUEST && reply.body == last_superuser_deleted())
                    || (reply.status == StatusCode::UNAUTHORIZED && reply.body == user_not_found()),
                "round {round}: {reply:?}"
            );
        }
        let left: Vec<bool> = join_all(
            [a, b]
                .into_iter()
                .map(|id| is_active_superuser(&app, &observer, id)),
        )
        .await;
        assert_eq!(
            left.iter().filter(|s| **s).count(),
            1,
            "round {round}: {left:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// What is answered first: DRF checks permissions and looks the user up before it reads
// the body
// ---------------------------------------------------------------------------------------

/// Sends `method path` with a raw body of `content_type` as `access`.
async fn send_raw(
    app: &TestApp,
    method: Method,
    path: &str,
    access: &str,
    content_type: &str,
    body: &'static str,
) -> Reply {
    let request = app
        .client
        .request(method, app.url(path))
        .bearer_auth(access)
        .header("content-type", content_type)
        .body(body);
    Reply::read(request.send().await.unwrap()).await
}

#[tokio::test]
async fn a_refused_or_unknown_user_route_answers_403_or_404_whatever_the_body() {
    // DRF's `request.data` is parsed when the view first reads it: after the permission
    // check (403) and the lookup of the user (404). A malformed or unsupported body
    // must not turn those answers into a 400 or a 415.
    let app = spawn_app().await;
    let (_, staff) = staff_user(&app, "admin").await;
    let (root_id, _) = superuser(&app, "root").await;
    let (_, plain, _) = app.signed_in("joey").await;
    let bodies = [("application/json", "{not json"), ("text/plain", "hello")];
    for (content_type, body) in bodies {
        let cases = [
            (
                Method::POST,
                "/api/users/".to_owned(),
                &plain,
                StatusCode::FORBIDDEN,
            ),
            (
                Method::PATCH,
                "/api/users/999999/".to_owned(),
                &staff,
                StatusCode::NOT_FOUND,
            ),
            (
                Method::PUT,
                "/api/users/999999/".to_owned(),
                &staff,
                StatusCode::NOT_FOUND,
            ),
            (
                Method::PATCH,
                format!("/api/users/{root_id}/"),
                &plain,
                StatusCode::NOT_FOUND,
            ),
            (
                Method::PATCH,
                format!("/api/users/{root_id}/"),
                &staff,
                StatusCode::FORBIDDEN,
            ),
            (
                Method::PUT,
                format!("/api/users/{root_id}/"),
                &staff,
                StatusCode::FORBIDDEN,
            ),
        ];
        for (method, path, access, status) in cases {
            let reply = send_raw(&app, method.clone(), &path, access, content_type, body).await;
            let expected = if status == StatusCode::FORBIDDEN {
                forbidden()
            } else {
                not_found()
            };
            assert_eq!(
                reply.status, status,
                "{method} {path} {content_type}: {}",
                reply.body
            );
            assert_eq!(reply.body, expected, "{method} {path} {content_type}");
        }
    }
    // Allowed, the same bodies get DRF's 400 and 415.
    let own = send_raw(
        &app,
        Method::POST,
        "/api/users/",
        &staff,
        "application/json",
        "{not json",
    )
    .await;
    assert_eq!(own.status, StatusCode::BAD_REQUEST, "{}", own.body);
    let own = send_raw(
        &app,
        Method::POST,
        "/api/users/",
        &staff,
        "text/plain",
        "hello",
    )
    .await;
    assert_eq!(
        own.status,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "{}",
        own.body
    );
}

// ---------------------------------------------------------------------------------------
// A staff member's change of a plain user, racing that user's promotion
// ---------------------------------------------------------------------------------------

/// Staff (not superuser) `method` user `rachel` (a plain user when the request is
/// sent) with `body`, while a superuser's promotion of `rachel` to staff, held open here
/// by hand as another instance's would be, has locked her row; the promotion then
/// commits. Returns the answer, the app, `rachel`'s id and access token, and a
/// superuser's token.
async fn race_a_promotion(
    method: Method,
    body: Option<Value>,
) -> (Reply, TestApp, i64, String, String) {
    let app = spawn_app().await;
    let (_, staff) = staff_user(&app, "janitor").await;
    let (_, root) = superuser(&app, "root").await;
    let (id, rachel, _) = app.signed_in("rachel").await;
    let reply = with_test_database!(&app.database_url, |conn| {
        let mut promotion = conn.begin().await.expect("begin");
        sqlx::query("UPDATE auth_user SET is_staff = TRUE WHERE id = $1")
            .bind(id)
            .execute(&mut *promotion)
            .await
            .expect("promote");
        let waiting = {
            let mut request = app
                .client
                .request(method, app.url(&format!("/api/users/{id}/")))
                .bearer_auth(&staff);
            if let Some(body) = &body {
                request = request.json(body);
            }
            tokio::spawn(async move { Reply::read(request.send().await.unwrap()).await })
        };
        // (Well within SQLite's busy timeout of 5 s, which the change waits on there.)
        tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
        assert!(
            !waiting.is_finished(),
            "the change did not wait for the promotion"
        );
        promotion.commit().await.expect("commit");
        waiting.await.unwrap()
    });
    (reply, app, id, rachel, root)
}

#[tokio::test]
async fn a_staff_change_of_a_user_promoted_meanwhile_is_refused() {
    // Only a superuser changes another staff member: else a staff member could point a
    // new colleague's reset links at an address of their own.
    let body = json!({"email": "janitor@evil.example"});
    let (reply, app, id, _, root) = race_a_promotion(Method::PATCH, Some(body)).await;

    assert_reply(&reply, StatusCode::FORBIDDEN, forbidden());
    let rachel = fetch(&app, &root, id).await;
    assert_eq!(rachel["email"], "rachel@example.com");
    assert_eq!(rachel["is_staff"], true);
}

#[tokio::test]
async fn a_staff_deletion_of_a_user_promoted_meanwhile_is_refused() {
    let (reply, app, id, rachel, root) = race_a_promotion(Method::DELETE, None).await;

    assert_reply(&reply, StatusCode::FORBIDDEN, forbidden());
    assert_eq!(fetch(&app, &root, id).await["is_staff"], true);
    // Her session, deleted in the same transaction before the refusal, is still there.
    assert_eq!(app.me(&rachel).await.status, StatusCode::OK);
}
