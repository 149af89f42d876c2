//! Issue #5: the headers every response carries, and CORS.

use crate::helpers::*;
use reqwest::{Method, StatusCode};
use serde_json::json;

fn assert_safe_headers(reply: &Reply, what: &str) {
    assert_eq!(reply.header("cache-control"), Some("no-store"), "{what}");
    assert_eq!(
        reply.header("x-content-type-options"),
        Some("nosniff"),
        "{what}"
    );
    assert_eq!(reply.header("x-frame-options"), Some("DENY"), "{what}");
    assert_eq!(
        reply.header("referrer-policy"),
        Some("no-referrer"),
        "{what}"
    );
    assert!(
        reply
            .header("content-security-policy")
            .is_some_and(|csp| csp.contains("frame-ancestors 'none'")),
        "{what}"
    );
}

#[tokio::test]
async fn no_response_may_be_cached_sniffed_or_framed() {
    let app = spawn_app().await;
    let (_, access, refresh) = app.signed_in("ross").await;

    let login = app.login("ross", STRONG_PASSWORD).await;
    assert_safe_headers(&login, "login (tokens)");
    assert_safe_headers(&app.refresh(&refresh).await, "refresh (tokens)");
    assert_safe_headers(&app.me(&access).await, "me (user data)");
    assert_safe_headers(&app.me("garbage").await, "401");
    assert_safe_headers(&app.get_auth("/api/nowhere/", &access).await, "404");
    assert_safe_headers(
        &app.post_json("/api/register/", json!({})).await,
        "400 (validation)",
    );
    let health = app.get("/api/health/").await;
    assert_safe_headers(&health, "health");
    let method = Reply::read(app.client.put(app.url("/api/login/")).send().await.unwrap()).await;
    assert_eq!(method.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_safe_headers(&method, "405");
}

/// Answers given before any route runs (admission) or instead of its answer (the
/// request deadline) go through the same headers.
#[tokio::test]
async fn refusals_and_the_deadlines_503_carry_them_too() {
    let app = spawn_app_full(
        &[
            ("GATEHOUSE_MAX_HEADER_BYTES", "4096"),
            ("GATEHOUSE_REQUEST_TIMEOUT", "1s"),
        ],
        slow_route(),
    )
    .await;
    let send = |request: reqwest::RequestBuilder| async move {
        Reply::read(request.send().await.expect("request")).await
    };

    let big = send(
        app.client
            .get(app.url("/api/health/"))
            .header("X-Padding", "a".repeat(5000)),
    )
    .await;
    assert_eq!(big.status, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    assert_safe_headers(&big, "431");

    let host = send(
        app.client
            .get(app.url("/api/health/"))
            .header("host", "evil.com"),
    )
    .await;
    assert_eq!(host.status, StatusCode::BAD_REQUEST);
    assert_safe_headers(&host, "400 (host)");

    let late = send(app.client.get(app.url("/test/slow"))).await;
    assert_eq!(late.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_safe_headers(&late, "503 (deadline)");
}

#[tokio::test]
async fn the_reset_page_keeps_its_own_strict_policy() {
    let app = spawn_app().await;
    let response = app
        .client
        .get(app.url("/api/reset_password/confirm/?uid=MQ&token=nope"))
        .send()
        .await
        .unwrap();
    let headers = response.headers();
    let csp = headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("default-src 'none'"), "{csp}");
    assert!(csp.contains("style-src 'sha256-"), "{csp}");
    assert!(csp.contains("form-action 'self'"), "{csp}");
    assert_eq!(headers["x-frame-options"], "DENY");
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert_eq!(headers["cache-control"], "no-store");
}

async fn preflight(app: &TestApp, origin: &str) -> reqwest::Response {
    app.client
        .request(Method::OPTIONS, app.url("/api/users/me/"))
        .header("Origin", origin)
        .header("Access-Control-Request-Method", "GET")
        .header("Access-Control-Request-Headers", "authorization")
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn cors_is_off_unless_origins_are_listed() {
    let app = spawn_app().await;
    let response = preflight(&app, "https://app.example.com").await;
    // Without CORS an OPTIONS request is just an unsupported method.
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert!(response
        .headers()
        .get("access-control-allow-origin")
        .is_none());
    let response = app
        .client
        .get(app.url("/api/health/"))
        .header("Origin", "https://app.example.com")
        .send()
        .await
        .unwrap();
    assert!(response
        .headers()
        .get("access-control-allow-origin")
        .is_none());
}

#[tokio::test]
async fn a_listed_origin_may_call_the_api_and_others_may_not() {
    let app = spawn_app_with(&[(
        "CORS_ALLOWED_ORIGINS",
        "https://app.example.com,http://localhost:3000",
    )])
    .await;
    let allowed = preflight(&app, "https://app.example.com").await;
    assert!(allowed.status().is_success(), "{}", allowed.status());
    let headers = allowed.headers();
    assert_eq!(
        headers["access-control-allow-origin"],
        "https://app.example.com"
    );
    let allow_headers = headers["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    assert!(allow_headers.contains("authorization"), "{allow_headers}");
    assert!(headers["access-control-allow-methods"]
        .to_str()
        .unwrap()
        .contains("PATCH"));
    assert!(headers.get("access-control-allow-credentials").is_none());

    let refused = preflight(&app, "https://evil.example.net").await;
    assert!(refused
        .headers()
        .get("access-control-allow-origin")
        .is_none());

    // The real request: even an error answer is readable by the listed origin.
    let response = app
        .client
        .get(app.url("/api/users/me/"))
        .header("Origin", "http://localhost:3000")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        response.headers()["access-control-allow-origin"],
        "http://localhost:3000"
    );
}
