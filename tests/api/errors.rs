//! The conventions every route shares (API.md §1 `ALLOWED_HOSTS`, §2, §8 health): error
//! shapes, trailing slashes, bodies that do not parse, panics and hosts.

use crate::helpers::*;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

/// A client that never follows a redirect, so a redirect shows as what it is.
fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

/// Sends `body` as it is, with `content_type`, to `path`.
async fn post_raw(app: &TestApp, path: &str, content_type: &str, body: Vec<u8>) -> Reply {
    Reply::read(
        app.client
            .post(app.url(path))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .expect("request"),
    )
    .await
}

/// GET `path` with the `Host` header set to `host`.
async fn get_with_host(app: &TestApp, path: &str, host: &str) -> Reply {
    Reply::read(
        app.client
            .get(app.url(path))
            .header("host", host)
            .send()
            .await
            .expect("request"),
    )
    .await
}

fn invalid_host() -> Value {
    json!({"detail": "Invalid Host header."})
}

fn health_ok() -> Value {
    json!({"status": "ok", "database": "ok"})
}

// ---- 404 and 405 ----

#[tokio::test]
async fn an_unknown_path_is_404_not_found() {
    let app = spawn_app().await;
    for path in ["/api/nope/", "/api/nope", "/", "/api/users/me/extra/"] {
        let reply = app.get(path).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(reply.body, json!({"detail": "Not found."}), "{path}");
    }
    let reply = app.post_json("/api/nope/", json!({})).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(reply.body, json!({"detail": "Not found."}));
}

#[tokio::test]
async fn a_wrong_method_is_405_naming_it_with_an_allow_header() {
    let app = spawn_app().await;
    let reply = Reply::read(
        app.client
            .get(app.url("/api/login/"))
            .send()
            .await
            .expect("request"),
    )
    .await;
    assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(reply.body, json!({"detail": "Method \"GET\" not allowed."}));
    let allow = reply
        .header("allow")
        .unwrap_or_else(|| panic!("405 without an Allow header: {:?}", reply.headers));
    let methods: Vec<&str> = allow.split(',').map(str::trim).collect();
    assert!(methods.contains(&"POST"), "Allow: {allow}");
    assert!(!methods.contains(&"GET"), "Allow: {allow}");
}

#[tokio::test]
async fn a_wrong_method_on_a_route_with_several_methods_names_them_all() {
    let app = spawn_app().await;
    let reply = app.post_json("/api/users/me/", json!({})).await;
    assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(
        reply.body,
        json!({"detail": "Method \"POST\" not allowed."})
    );
    let allow = reply
        .header("allow")
        .unwrap_or_else(|| panic!("405 without an Allow header: {:?}", reply.headers));
    let methods: Vec<&str> = allow.split(',').map(str::trim).collect();
    for method in ["GET", "PUT", "PATCH", "DELETE"] {
        assert!(methods.contains(&method), "Allow: {allow}");
    }
    assert!(!methods.contains(&"POST"), "Allow: {allow}");
}

#[tokio::test]
async fn a_delete_on_register_names_delete() {
    let app = spawn_app().await;
    let reply = Reply::read(
        app.client
            .delete(app.url("/api/register/"))
            .send()
            .await
            .expect("request"),
    )
    .await;
    assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(
        reply.body,
        json!({"detail": "Method \"DELETE\" not allowed."})
    );
}

// ---- trailing slashes ----

#[tokio::test]
async fn every_path_is_served_without_its_trailing_slash_and_a_post_is_never_redirected() {
    let app = spawn_app().await;
    let client = no_redirects();
    let send = |method: Method, path: &str, token: Option<&str>, body: Option<Value>| {
        let mut request = client.request(method, app.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        async move { Reply::read(request.send().await.expect("request")).await }
    };

    let reply = send(
        Method::POST,
        "/api/register",
        None,
        Some(json!({"username": "chandler", "email": "chandler@example.com", "password": STRONG_PASSWORD})),
    )
    .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    assert_eq!(
        reply.body,
        json!({"message": "User registered successfully", "username": "chandler", "email": "chandler@example.com"})
    );

    let reply = send(
        Method::POST,
        "/api/login",
        None,
        Some(json!({"username": "chandler", "password": STRONG_PASSWORD})),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let (access, refresh) = (reply.str("access"), reply.str("refresh"));

    let reply = send(
        Method::POST,
        "/api/token/verify",
        None,
        Some(json!({"token": access})),
    )
    .await;
    assert_eq!((reply.status, reply.body), (StatusCode::OK, json!({})));

    let reply = send(
        Method::POST,
        "/api/token/refresh",
        None,
        Some(json!({"refresh": refresh})),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let (access, refresh) = (reply.str("access"), reply.str("refresh"));

    let reply = send(Method::GET, "/api/users/me", Some(&access), None).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["username"], "chandler");

    let reply = send(
        Method::PATCH,
        "/api/users/me",
        Some(&access),
        Some(json!({"first_name": "Chandler"})),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["first_name"], "Chandler");

    let reply = send(
        Method::PUT,
        "/api/users/me",
        Some(&access),
        Some(json!({"username": "chandler", "email": "chandler@example.com", "last_name": "Bing"})),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["last_name"], "Bing");

    let reply = send(
        Method::POST,
        "/api/change_password",
        Some(&access),
        Some(json!({"old_password": STRONG_PASSWORD, "new_password": "brand-New-secret-42"})),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(
        reply.body,
        json!({"message": "Password changed successfully"})
    );

    let reply = send(
        Method::POST,
        "/api/logout",
        None,
        Some(json!({"refresh": refresh})),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body, json!({"message": "Logged out"}));

    let reply = send(
        Method::POST,
        "/api/login",
        None,
        Some(json!({"username": "chandler", "password": "brand-New-secret-42"})),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let access = reply.str("access");
    let reply = send(Method::DELETE, "/api/delete_account", Some(&access), None).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(
        reply.body,
        json!({"message": "Account deleted successfully"})
    );

    app.register_ok("monica").await;
    let (access, _) = app.login_ok("monica").await;
    let response = client
        .delete(app.url("/api/users/me"))
        .bearer_auth(&access)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::NO_CONTENT);

    let reply = send(Method::GET, "/api/health", None, None).await;
    assert_eq!((reply.status, reply.body), (StatusCode::OK, health_ok()));
}

#[tokio::test]
async fn a_post_with_the_trailing_slash_is_not_redirected_either() {
    let app = spawn_app().await;
    let response = no_redirects()
        .post(app.url("/api/login/"))
        .json(&json!({"username": "nobody", "password": STRONG_PASSWORD}))
        .send()
        .await
        .expect("request");
    let reply = Reply::read(response).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        reply.body,
        json!({"detail": "No active account found with the given credentials"})
    );
}

// ---- bodies ----

#[tokio::test]
async fn a_body_that_is_not_json_is_a_400_parse_error() {
    let app = spawn_app().await;
    for body in [&b"{not json"[..], b"{\"username\": \"a\",", b"\xff\xfe"] {
        let reply = post_raw(&app, "/api/login/", "application/json", body.to_vec()).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{body:?}");
        let object = reply.body.as_object().expect("an object");
        assert_eq!(object.len(), 1, "{}", reply.body);
        let detail = reply.body["detail"].as_str().expect("a detail string");
        assert!(detail.starts_with("JSON parse error"), "{detail}");
    }
}

#[tokio::test]
async fn a_json_array_is_refused_as_drf_refuses_it() {
    let app = spawn_app().await;
    let reply = app
        .post_json("/api/login/", json!(["chandler", "secret"]))
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        reply.body,
        json!({"non_field_errors": ["Invalid data. Expected a dictionary, but got list."]})
    );
}

#[tokio::test]
async fn a_json_scalar_is_refused_with_pythons_type_name() {
    let app = spawn_app().await;
    for (body, got) in [
        (json!("text"), "str"),
        (json!(3), "int"),
        (json!(true), "bool"),
    ] {
        let reply = app.post_json("/api/register/", body).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST);
        assert_eq!(
            reply.body,
            json!({"non_field_errors": [format!("Invalid data. Expected a dictionary, but got {got}.")]})
        );
    }
}

#[tokio::test]
async fn a_text_plain_body_is_415() {
    let app = spawn_app().await;
    let reply = post_raw(
        &app,
        "/api/login/",
        "text/plain",
        b"username=chandler".to_vec(),
    )
    .await;
    assert_eq!(reply.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(
        reply.body,
        json!({"detail": "Unsupported media type \"text/plain\" in request."})
    );
}

#[tokio::test]
async fn a_body_over_64_kib_is_413_with_a_detail() {
    let app = spawn_app().await;
    let mut body = br#"{"username": "chandler", "password": ""#.to_vec();
    let tail = br#""}"#;
    body.resize(64 * 1024 + 1 - tail.len(), b'a');
    body.extend_from_slice(tail);
    assert_eq!(body.len(), 64 * 1024 + 1);
    let reply = post_raw(&app, "/api/login/", "application/json", body).await;
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
    let object = reply.body.as_object().expect("an object");
    assert_eq!(object.len(), 1, "{}", reply.body);
    assert!(
        !reply.body["detail"].as_str().expect("detail").is_empty(),
        "{}",
        reply.body
    );
}

#[tokio::test]
async fn a_body_of_exactly_64_kib_is_read() {
    let app = spawn_app().await;
    let mut body = br#"{"username": "chandler", "password": ""#.to_vec();
    let tail = br#""}"#;
    body.resize(64 * 1024 - tail.len(), b'a');
    body.extend_from_slice(tail);
    assert_eq!(body.len(), 64 * 1024);
    let reply = post_raw(&app, "/api/login/", "application/json", body).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        reply.body,
        json!({"detail": "No active account found with the given credentials"})
    );
}

// ---- 500 ----

#[tokio::test]
async fn a_panicking_handler_is_a_bare_500_and_the_server_keeps_serving() {
    let extra: axum::Router<gatehouse::state::AppState> = axum::Router::new().route(
        "/test/panic",
        axum::routing::get(|| async {
            if true {
                panic!("boom at /secret/path.rs with SELECT * FROM auth_user");
            }
            "unreachable"
        }),
    );
    let app = spawn_app_full(&[], extra).await;
    for _ in 0..2 {
        let response = app
            .client
            .get(app.url("/test/panic/"))
            .send()
            .await
            .expect("request");
        let status = response.status();
        // The security headers every answer carries, a panic's 500 included.
        let headers = response.headers().clone();
        for (name, value) in [
            ("x-content-type-options", "nosniff"),
            ("cache-control", "no-store"),
            ("x-frame-options", "DENY"),
        ] {
            assert_eq!(
                headers.get(name).map(|v| v.to_str().unwrap()),
                Some(value),
                "{name}"
            );
        }
        let text = response.text().await.expect("body");
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(
            serde_json::from_str::<Value>(&text).expect("JSON"),
            json!({"detail": "A server error occurred."})
        );
        for secret in ["boom", "secret", "SELECT", ".rs", "panicked"] {
            assert!(!text.contains(secret), "{text}");
        }
    }
    let reply = app
        .client
        .get(app.url("/api/health/"))
        .send()
        .await
        .expect("the server still answers");
    let reply = Reply::read(reply).await;
    assert_eq!((reply.status, reply.body), (StatusCode::OK, health_ok()));
}

// ---- ALLOWED_HOSTS ----

#[tokio::test]
async fn a_host_not_in_allowed_hosts_is_400() {
    let app = spawn_app().await;
    for host in ["evil.com", "localhost.evil.com", "127.0.0.2"] {
        let reply = get_with_host(&app, "/api/health/", host).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{host}");
        assert_eq!(reply.body, invalid_host(), "{host}");
    }
    let reply = Reply::read(
        app.client
            .post(app.url("/api/login/"))
            .header("host", "evil.com")
            .json(&json!({"username": "a", "password": "b"}))
            .send()
            .await
            .expect("request"),
    )
    .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.body, invalid_host());
}

#[tokio::test]
async fn the_default_allowed_hosts_are_localhost_and_loopback() {
    let app = spawn_app().await;
    for host in ["localhost", "localhost:8000", "127.0.0.1", "[::1]:8000"] {
        let reply = get_with_host(&app, "/api/health/", host).await;
        assert_eq!(
            (reply.status, reply.body),
            (StatusCode::OK, health_ok()),
            "{host}"
        );
    }
}

#[tokio::test]
async fn a_leading_dot_in_allowed_hosts_matches_the_domain_and_its_subdomains() {
    let app = spawn_app_with(&[("ALLOWED_HOSTS", ".example.com")]).await;
    for host in ["sub.example.com", "a.b.example.com:8443", "example.com"] {
        let reply = get_with_host(&app, "/api/health/", host).await;
        assert_eq!(
            (reply.status, reply.body),
            (StatusCode::OK, health_ok()),
            "{host}"
        );
    }
    for host in ["notexample.com", "example.com.evil.com", "localhost"] {
        let reply = get_with_host(&app, "/api/health/", host).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{host}");
        assert_eq!(reply.body, invalid_host(), "{host}");
    }
}

#[tokio::test]
async fn a_star_in_allowed_hosts_matches_every_host() {
    let app = spawn_app_with(&[("ALLOWED_HOSTS", "*")]).await;
    let reply = get_with_host(&app, "/api/health/", "anything.test:1234").await;
    assert_eq!((reply.status, reply.body), (StatusCode::OK, health_ok()));
}

// ---- 401 ----

#[tokio::test]
async fn every_401_carries_www_authenticate_bearer() {
    let app = spawn_app().await;
    let (_, access, refresh) = app.signed_in("chandler").await;
    let bad = sign(
        &json!({"token_type": "access", "user_id": "1", "exp": now() + 300, "iat": now(), "jti": "0"}),
        "another-key",
    );

    let mut replies = vec![
        (
            "me without credentials",
            Reply::read(
                app.client
                    .get(app.url("/api/users/me/"))
                    .send()
                    .await
                    .expect("request"),
            )
            .await,
        ),
        ("me with a bad token", app.me(&bad).await),
        ("me with a refresh token", app.me(&refresh).await),
        (
            "login with a wrong password",
            app.login("chandler", "wrong-Password-1").await,
        ),
        ("refresh with a bad token", app.refresh(&bad).await),
        ("verify with a bad token", app.verify(&bad).await),
        (
            "logout with a bad token",
            app.post_json("/api/logout/", json!({"refresh": bad})).await,
        ),
        (
            "delete_account without credentials",
            Reply::read(
                app.client
                    .delete(app.url("/api/delete_account/"))
                    .send()
                    .await
                    .expect("request"),
            )
            .await,
        ),
        (
            "change_password without credentials",
            app.post_json(
                "/api/change_password/",
                json!({"old_password": STRONG_PASSWORD, "new_password": "brand-New-secret-42"}),
            )
            .await,
        ),
    ];
    let reply = app
        .send_auth(Method::DELETE, "/api/users/me/", &access, None)
        .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    replies.push(("me of a deleted user", app.me(&access).await));

    for (what, reply) in replies {
        assert_eq!(
            reply.status,
            StatusCode::UNAUTHORIZED,
            "{what}: {}",
            reply.body
        );
        assert_eq!(
            reply.header("www-authenticate"),
            Some("Bearer realm=\"api\""),
            "{what}"
        );
    }
}

#[tokio::test]
async fn no_credentials_is_drfs_not_authenticated() {
    let app = spawn_app().await;
    let reply = Reply::read(
        app.client
            .get(app.url("/api/users/me/"))
            .send()
            .await
            .expect("request"),
    )
    .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        reply.body,
        json!({"detail": "Authentication credentials were not provided."})
    );
}

// ---- health ----

#[tokio::test]
async fn health_answers_ok_for_the_service_and_the_database() {
    let app = spawn_app().await;
    let reply = Reply::read(
        app.client
            .get(app.url("/api/health/"))
            .send()
            .await
            .expect("request"),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body, health_ok());
    assert_eq!(reply.header("content-type"), Some("application/json"));
}
