//! Issue #5: per-client throttles of login, register, token refresh and reset request;
//! the client address behind `TRUSTED_PROXIES`.

use crate::helpers::*;
use reqwest::StatusCode;
use serde_json::{json, Value};

/// POSTs `body` to `path` as if it came through a proxy that wrote `forwarded_for`.
pub async fn post_from(app: &TestApp, path: &str, body: Value, forwarded_for: &str) -> Reply {
    Reply::read(
        app.client
            .post(app.url(path))
            .header("X-Forwarded-For", forwarded_for)
            .json(&body)
            .send()
            .await
            .expect("request"),
    )
    .await
}

/// Asserts DRF's throttled answer: 429, `Retry-After` within `max_wait` seconds, and the
/// detail naming the same wait.
pub fn assert_throttled(reply: &Reply, max_wait: u64) {
    assert_eq!(
        reply.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        reply.body
    );
    let wait: u64 = reply
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .expect("Retry-After in whole seconds");
    assert!((1..=max_wait).contains(&wait), "Retry-After {wait}");
    let unit = if wait == 1 { "second" } else { "seconds" };
    assert_eq!(
        reply.body,
        json!({"detail": format!("Request was throttled. Expected available in {wait} {unit}.")})
    );
}

fn login_body() -> Value {
    json!({"username": "nobody", "password": "wrong-password"})
}

#[tokio::test]
async fn each_unauthenticated_endpoint_has_its_own_budget_per_client() {
    let app = spawn_app_with(&[
        ("GATEHOUSE_THROTTLE_LOGIN", "2/min"),
        ("GATEHOUSE_THROTTLE_REGISTER", "2/hour"),
        ("GATEHOUSE_THROTTLE_REFRESH", "2/min"),
        ("GATEHOUSE_THROTTLE_RESET", "2/day"),
    ])
    .await;
    let endpoints: [(&str, Value, u64); 4] = [
        ("/api/login/", login_body(), 60),
        (
            "/api/register/",
            json!({"username": "", "email": "", "password": ""}),
            3600,
        ),
        ("/api/token/refresh/", json!({"refresh": "not-a-token"}), 60),
        (
            "/api/reset_password/",
            json!({"email": "someone@example.com"}),
            86_400,
        ),
    ];
    for (path, body, max_wait) in endpoints {
        for attempt in 1..=2 {
            let reply = app.post_json(path, body.clone()).await;
            assert_ne!(
                reply.status,
                StatusCode::TOO_MANY_REQUESTS,
                "{path} attempt {attempt}"
            );
        }
        let reply = app.post_json(path, body.clone()).await;
        assert_throttled(&reply, max_wait);
    }
}

#[tokio::test]
async fn a_throttled_login_is_refused_even_with_the_right_password() {
    let app = spawn_app_with(&[("GATEHOUSE_THROTTLE_LOGIN", "3/min")]).await;
    app.register_ok("ross").await;
    for _ in 0..3 {
        assert_eq!(
            app.login("ross", STRONG_PASSWORD).await.status,
            StatusCode::OK
        );
    }
    assert_throttled(&app.login("ross", STRONG_PASSWORD).await, 60);
    // Protected and other endpoints are not throttled by it.
    assert_eq!(
        app.post_json("/api/token/verify/", json!({"token": "x"}))
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn a_forwarded_for_header_from_an_untrusted_client_is_ignored() {
    // No TRUSTED_PROXIES: the socket's address is the client, whatever the header says.
    let app = spawn_app_with(&[("GATEHOUSE_THROTTLE_LOGIN", "2/min")]).await;
    for (n, spoofed) in ["198.51.100.1", "198.51.100.2"].iter().enumerate() {
        let reply = post_from(&app, "/api/login/", login_body(), spoofed).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "request {n}");
    }
    let reply = post_from(&app, "/api/login/", login_body(), "198.51.100.3").await;
    assert_throttled(&reply, 60);
}

#[tokio::test]
async fn behind_a_trusted_proxy_the_forwarded_client_is_throttled() {
    let app = spawn_app_with(&[
        ("GATEHOUSE_THROTTLE_LOGIN", "2/min"),
        ("TRUSTED_PROXIES", "127.0.0.1/32, 10.0.0.0/8"),
    ])
    .await;
    for _ in 0..2 {
        let reply = post_from(&app, "/api/login/", login_body(), "198.51.100.1").await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    }
    assert_throttled(
        &post_from(&app, "/api/login/", login_body(), "198.51.100.1").await,
        60,
    );
    // The client cannot escape by writing its own entry in front: the proxy's entry, the
    // rightmost untrusted one, is the client.
    assert_throttled(
        &post_from(&app, "/api/login/", login_body(), "6.6.6.6, 198.51.100.1").await,
        60,
    );
    // Nor behind a second trusted hop.
    assert_throttled(
        &post_from(
            &app,
            "/api/login/",
            login_body(),
            "7.7.7.7, 198.51.100.1, 10.1.1.1",
        )
        .await,
        60,
    );
    // Another client behind the same proxy has its own budget.
    let reply = post_from(&app, "/api/login/", login_body(), "198.51.100.2").await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{}", reply.body);
}

#[tokio::test]
async fn an_ipv6_client_is_throttled_by_its_slash_64() {
    let app = spawn_app_with(&[
        ("GATEHOUSE_THROTTLE_LOGIN", "2/min"),
        ("TRUSTED_PROXIES", "127.0.0.1"),
    ])
    .await;
    for address in ["2001:db8:1:2::1", "2001:db8:1:2:ffff::9"] {
        let reply = post_from(&app, "/api/login/", login_body(), address).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    }
    assert_throttled(
        &post_from(&app, "/api/login/", login_body(), "2001:db8:1:2::abcd").await,
        60,
    );
    let other_network = post_from(&app, "/api/login/", login_body(), "2001:db8:1:3::1").await;
    assert_eq!(other_network.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn instances_on_one_database_share_the_counts() {
    let first = spawn_app_with(&[("GATEHOUSE_THROTTLE_LOGIN", "3/min")]).await;
    let second = spawn_app_with(&[
        ("GATEHOUSE_THROTTLE_LOGIN", "3/min"),
        ("DATABASE_URL", &first.database_url),
    ])
    .await;
    for app in [&first, &second, &first] {
        assert_eq!(
            app.post_json("/api/login/", login_body()).await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_throttled(&second.post_json("/api/login/", login_body()).await, 60);
}

#[tokio::test]
async fn rate_limit_off_turns_every_throttle_and_the_lockout_off() {
    let app = spawn_app_with(&[
        ("GATEHOUSE_RATE_LIMIT", "off"),
        ("GATEHOUSE_THROTTLE_LOGIN", "1/min"),
        ("GATEHOUSE_THROTTLE_RESET", "1/hour"),
    ])
    .await;
    app.register_ok("joey").await;
    for _ in 0..8 {
        let reply = app.login("joey", "wrong-password").await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{}", reply.body);
    }
    assert_eq!(
        app.login("joey", STRONG_PASSWORD).await.status,
        StatusCode::OK
    );
    for _ in 0..3 {
        let reply = app
            .post_json("/api/reset_password/", json!({"email": "x@example.com"}))
            .await;
        assert_eq!(reply.status, StatusCode::OK);
    }
}
