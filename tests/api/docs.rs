//! The OpenAPI description (`GET /api/schema/`) and the docs page (`GET /api/docs/`).
//!
//! That the description matches every response is schemathesis's job (`scripts/fuzz-api`,
//! run by CI); these tests hold it to the contract's list of endpoints and conventions,
//! hold the router to it, and load the docs page in a real browser with nothing from
//! outside.

use crate::browser::{console_messages, in_browser, outside_urls, run, screenshot, WAIT};
use crate::helpers::*;
use fantoccini::Locator;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::collections::BTreeSet;

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

/// Every operation of API.md §4–§8, as (method, path).
const CONTRACT: [(&str, &str); 21] = [
    ("post", "/api/register/"),
    ("post", "/api/login/"),
    ("delete", "/api/delete_account/"),
    ("post", "/api/reset_password/"),
    ("post", "/api/reset_password/confirm/"),
    ("get", "/api/reset_password/confirm/"),
    ("post", "/api/token/refresh/"),
    ("post", "/api/token/verify/"),
    ("post", "/api/logout/"),
    ("get", "/api/users/me/"),
    ("patch", "/api/users/me/"),
    ("put", "/api/users/me/"),
    ("delete", "/api/users/me/"),
    ("post", "/api/change_password/"),
    ("get", "/api/users/"),
    ("post", "/api/users/"),
    ("get", "/api/users/{id}/"),
    ("put", "/api/users/{id}/"),
    ("patch", "/api/users/{id}/"),
    ("delete", "/api/users/{id}/"),
    ("get", "/api/health/"),
];

/// The operations that take `Authorization: Bearer` (API.md §6–§7, and delete_account).
fn is_protected(method: &str, path: &str) -> bool {
    path.starts_with("/api/users/")
        || path == "/api/change_password/"
        || (method, path) == ("delete", "/api/delete_account/")
}

async fn schema(app: &TestApp) -> Value {
    let response = app
        .client
        .get(app.url("/api/schema/"))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::OK);
    let content_type = response.headers()["content-type"].to_str().unwrap_or("");
    assert_eq!(content_type, "application/json");
    response.json().await.expect("JSON")
}

fn operations(schema: &Value) -> BTreeSet<(String, String)> {
    let paths = schema["paths"].as_object().expect("paths");
    paths
        .iter()
        .flat_map(|(path, item)| {
            METHODS
                .iter()
                .filter(|method| item.get(**method).is_some())
                .map(move |method| (method.to_string(), path.clone()))
        })
        .collect()
}

/// Follows a local `$ref` (`#/components/…`) to what it names.
fn resolve<'a>(schema: &'a Value, value: &'a Value) -> &'a Value {
    match value.get("$ref").and_then(Value::as_str) {
        Some(reference) => {
            let pointer = reference.strip_prefix('#').expect("a local reference");
            resolve(
                schema,
                schema
                    .pointer(pointer)
                    .unwrap_or_else(|| panic!("{reference} resolves")),
            )
        }
        None => value,
    }
}

fn response<'a>(schema: &'a Value, method: &str, path: &str, status: &str) -> &'a Value {
    let declared = &schema["paths"][path][method]["responses"][status];
    assert!(!declared.is_null(), "{method} {path}: no {status} declared");
    resolve(schema, declared)
}

#[tokio::test]
async fn the_schema_is_openapi_3_1_and_lists_exactly_the_contracts_operations() {
    let app = spawn_app().await;
    let schema = schema(&app).await;

    assert!(
        schema["openapi"].as_str().unwrap_or("").starts_with("3.1."),
        "{}",
        schema["openapi"]
    );
    let expected: BTreeSet<(String, String)> = CONTRACT
        .iter()
        .map(|(method, path)| (method.to_string(), path.to_string()))
        .collect();
    assert_eq!(operations(&schema), expected);
    // The same document without the trailing slash, as every path.
    let again: Value = app
        .client
        .get(app.url("/api/schema"))
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("JSON");
    assert_eq!(again, schema);
}

#[tokio::test]
async fn the_schema_declares_the_bearer_scheme_and_the_errors_of_every_operation() {
    let app = spawn_app().await;
    let schema = schema(&app).await;
    assert_eq!(
        schema["components"]["securitySchemes"]["bearer"],
        json!({
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": "An access token from `POST /api/login/` or `POST /api/token/refresh/`"
        })
    );

    for (method, path) in CONTRACT {
        let operation = &schema["paths"][path][method];
        let security = operation["security"].clone();
        if is_protected(method, path) {
            assert_eq!(security, json!([{"bearer": []}]), "{method} {path}");
            let unauthorized = response(&schema, method, path, "401");
            assert_eq!(
                unauthorized["headers"]["WWW-Authenticate"]["required"],
                json!(true),
                "{method} {path}"
            );
        } else {
            assert!(security.is_null(), "{method} {path}: {security}");
        }
        // The Host check, a server error and an outage can meet any request.
        for status in ["400", "500"] {
            response(&schema, method, path, status);
        }
        if path != "/api/health/" {
            let unavailable = response(&schema, method, path, "503");
            assert_eq!(
                unavailable["headers"]["Retry-After"]["required"],
                json!(true),
                "{method} {path}"
            );
        }
        if let Some(body) = operation.get("requestBody") {
            let types: BTreeSet<&str> = body["content"]
                .as_object()
                .expect("content")
                .keys()
                .map(String::as_str)
                .collect();
            assert_eq!(
                types,
                BTreeSet::from([
                    "application/json",
                    "application/x-www-form-urlencoded",
                    "multipart/form-data"
                ]),
                "{method} {path}"
            );
            response(&schema, method, path, "413");
            response(&schema, method, path, "415");
        }
    }

    // The throttled endpoints (API.md §4, and the login and registration throttles), and
    // those that take a password again under the login's brute-force guard.
    for (method, path) in [
        ("post", "/api/login/"),
        ("post", "/api/register/"),
        ("post", "/api/reset_password/"),
        ("post", "/api/token/refresh/"),
        ("post", "/api/change_password/"),
        ("patch", "/api/users/me/"),
        ("put", "/api/users/me/"),
        ("patch", "/api/users/{id}/"),
        ("put", "/api/users/{id}/"),
    ] {
        let throttled = response(&schema, method, path, "429");
        assert_eq!(throttled["headers"]["Retry-After"]["required"], json!(true));
    }

    // DRF's shapes.
    let bad_request = response(&schema, "post", "/api/register/", "400");
    let body = resolve(
        &schema,
        &bad_request["content"]["application/json"]["schema"],
    );
    let shapes: Vec<&Value> = body["oneOf"]
        .as_array()
        .expect("oneOf")
        .iter()
        .map(|s| resolve(&schema, s))
        .collect();
    assert_eq!(
        shapes[0]["additionalProperties"],
        json!({"type": "array", "items": {"type": "string"}})
    );
    assert_eq!(shapes[1]["required"], json!(["detail"]));
    let token_error = resolve(
        &schema,
        &response(&schema, "post", "/api/token/refresh/", "401")["content"]["application/json"]
            ["schema"],
    );
    assert_eq!(
        token_error["properties"]["code"]["enum"],
        json!([
            "token_not_valid",
            "user_not_found",
            "user_inactive",
            "no_active_account",
            "bad_authorization_header"
        ])
    );
    assert!(!schema["components"]["responses"]["MethodNotAllowed"].is_null());
}

#[tokio::test]
async fn the_schema_describes_the_user_list_its_parameters_and_page() {
    let app = spawn_app().await;
    let schema = schema(&app).await;
    let list = &schema["paths"]["/api/users/"]["get"];
    let parameters: Vec<&str> = list["parameters"]
        .as_array()
        .expect("parameters")
        .iter()
        .inspect(|p| assert_eq!(p["in"], "query"))
        .map(|p| p["name"].as_str().expect("name"))
        .collect();
    assert_eq!(
        parameters,
        [
            "page",
            "page_size",
            "search",
            "ordering",
            "is_active",
            "is_staff"
        ]
    );
    let page = resolve(
        &schema,
        &response(&schema, "get", "/api/users/", "200")["content"]["application/json"]["schema"],
    );
    assert_eq!(
        page["required"],
        json!(["count", "next", "previous", "results"])
    );
    assert_eq!(
        page["properties"]["next"]["type"],
        json!(["string", "null"])
    );
    let user = resolve(&schema, &page["properties"]["results"]["items"]);
    let mut fields: Vec<&str> = user["required"]
        .as_array()
        .expect("required")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    fields.sort_unstable();
    assert_eq!(
        fields,
        [
            "date_joined",
            "email",
            "first_name",
            "id",
            "is_active",
            "is_staff",
            "is_superuser",
            "last_login",
            "last_name",
            "username"
        ]
    );
    assert!(user["properties"].get("password").is_none());
    for method in ["get", "put", "patch", "delete"] {
        let id = &schema["paths"]["/api/users/{id}/"][method]["parameters"][0];
        assert_eq!(id["name"], "id");
        assert_eq!(id["in"], "path");
        assert_eq!(id["schema"]["type"], "integer");
    }
}

#[tokio::test]
async fn the_schemas_links_name_operations_that_exist() {
    let app = spawn_app().await;
    let schema = schema(&app).await;
    let ids: BTreeSet<&str> = operations(&schema)
        .iter()
        .map(|(method, path)| {
            schema["paths"][path.as_str()][method.as_str()]["operationId"]
                .as_str()
                .expect("every operation has an id")
        })
        .collect();
    let mut links = 0;
    for (method, path) in operations(&schema) {
        let responses = schema["paths"][&path][&method]["responses"]
            .as_object()
            .expect("responses");
        for response in responses.values() {
            for (name, link) in response["links"].as_object().into_iter().flatten() {
                links += 1;
                // OpenAPI's camel case: utoipa 5 writes `operation_id`, which tools ignore.
                let target = link["operationId"].as_str().unwrap_or_else(|| {
                    panic!("{method} {path} link {name} has no operationId: {link}")
                });
                assert!(ids.contains(target), "{name} → {target}");
                assert!(link.get("operation_id").is_none(), "{link}");
                assert!(link.get("request_body").is_none(), "{link}");
            }
        }
    }
    assert!(links >= 10, "{links} links");
    let login = &schema["paths"]["/api/register/"]["post"]["responses"]["201"]["links"]["Login"];
    assert_eq!(
        login["requestBody"],
        json!({"username": "$response.body#/username", "password": "$request.body#/password"})
    );
}

/// The router and the description agree: every method the description declares for a
/// path is served there, and every other method gets 405 with the `Allow` header.
#[tokio::test]
async fn the_server_serves_exactly_the_methods_the_schema_declares() {
    let app = spawn_app().await;
    let schema = schema(&app).await;
    for (path, item) in schema["paths"].as_object().expect("paths") {
        let url = app.url(&path.replace("{id}", "1"));
        let declared: BTreeSet<String> = METHODS
            .iter()
            .filter(|m| item.get(**m).is_some())
            .map(|m| m.to_uppercase())
            .collect();
        for method in METHODS {
            let method =
                reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).expect("a method");
            let response = app
                .client
                .request(method.clone(), &url)
                .send()
                .await
                .expect("request");
            let status = response.status();
            if declared.contains(method.as_str()) {
                assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
                assert_ne!(status, StatusCode::NOT_FOUND, "{method} {path}");
            } else {
                assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
                let allow = response.headers()["allow"].to_str().expect("ASCII");
                let allowed: BTreeSet<String> = allow
                    .split(',')
                    .map(|m| m.trim().to_owned())
                    .filter(|m| m != "HEAD")
                    .collect();
                assert_eq!(allowed, declared, "{method} {path}");
                let body: Value = response.json().await.expect("JSON");
                assert_eq!(
                    body,
                    json!({"detail": format!("Method \"{method}\" not allowed.")})
                );
            }
        }
    }
}

#[tokio::test]
async fn the_docs_page_and_its_assets_are_served_with_a_strict_policy() {
    let app = spawn_app().await;
    for path in ["/api/docs/", "/api/docs"] {
        let response = app.client.get(app.url(path)).send().await.expect("request");
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        let header = |name: &str| response.headers()[name].to_str().unwrap_or("").to_owned();
        assert_eq!(header("content-type"), "text/html; charset=utf-8");
        let policy = header("content-security-policy");
        assert!(policy.starts_with("default-src 'none'"), "{policy}");
        assert!(policy.contains("script-src 'self';"), "{policy}");
        assert!(policy.contains("style-src 'self';"), "{policy}");
        assert!(policy.contains("connect-src 'self';"), "{policy}");
        assert!(!policy.contains("unsafe"), "{policy}");
        assert!(!policy.contains("http"), "{policy}");
        assert_eq!(header("x-content-type-options"), "nosniff");
        let html = response.text().await.expect("body");
        assert!(
            !html.contains("http://") && !html.contains("https://"),
            "{html}"
        );
        assert!(!html.contains("<script>"), "an inline script: {html}");
        assert!(!html.contains("<style"), "an inline style: {html}");
    }
    for (file, content_type) in [
        ("swagger-ui-bundle.js", "text/javascript; charset=utf-8"),
        ("init.js", "text/javascript; charset=utf-8"),
        ("swagger-ui.css", "text/css; charset=utf-8"),
    ] {
        let response = app
            .client
            .get(app.url(&format!("/api/docs/{file}")))
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), StatusCode::OK, "{file}");
        assert_eq!(response.headers()["content-type"], content_type, "{file}");
        assert!(!response.bytes().await.expect("body").is_empty());
    }
    let reply = Reply::read(
        app.client
            .get(app.url("/api/docs/swagger-ui.js.map"))
            .send()
            .await
            .expect("request"),
    )
    .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(reply.body, json!({"detail": "Not found."}));
}

#[tokio::test]
async fn an_asset_name_that_does_not_decode_is_the_same_404() {
    let app = spawn_app().await;
    for path in ["/api/docs/%FF", "/api/docs/init.js%FF", "/api/docs/%C3%28"] {
        let reply = app.get(path).await;
        assert_eq!(
            reply.status,
            StatusCode::NOT_FOUND,
            "{path}: {}",
            reply.body
        );
        assert_eq!(reply.body, json!({"detail": "Not found."}), "{path}");
        assert_eq!(reply.header("content-type"), Some("application/json"));
    }
}

#[tokio::test]
async fn the_docs_page_lists_every_operation_with_nothing_from_outside() {
    in_browser(|client| async move {
        let app = spawn_app().await;
        let schema = schema(&app).await;
        let expected = operations(&schema);

        client
            .goto(&app.url("/api/docs/"))
            .await
            .expect("open the docs");
        client
            .wait()
            .at_most(WAIT)
            .for_element(Locator::Css(".opblock .opblock-summary-path"))
            .await
            .expect("Swagger UI shows the operations");
        assert_eq!(client.title().await.expect("title"), "gatehouse API");
        let listed = run(
            &client,
            "return [...document.querySelectorAll('.opblock')].map((block) => [
                 block.querySelector('.opblock-summary-method').textContent.toLowerCase(),
                 block.querySelector('.opblock-summary-path').getAttribute('data-path'),
             ]);",
        )
        .await;
        let listed: BTreeSet<(String, String)> =
            serde_json::from_value(listed).expect("pairs of strings");
        assert_eq!(listed, expected);
        // Swagger UI's stylesheet applied (a GET block's border is its blue).
        let border = run(
            &client,
            "return getComputedStyle(document.querySelector('.opblock-get')).borderTopColor",
        )
        .await;
        assert_eq!(border, json!("rgb(97, 175, 254)"), "style not applied");

        // Open one operation, as a reader would, for the screenshot.
        client
            .find(Locator::Css(
                "#operations-auth-login .opblock-summary-control",
            ))
            .await
            .expect("the login operation")
            .click()
            .await
            .expect("open it");
        client
            .wait()
            .at_most(WAIT)
            .for_element(Locator::Css("#operations-auth-login .responses-table"))
            .await
            .expect("the operation's responses");
        run(
            &client,
            "document.getElementById('operations-auth-login').scrollIntoView()",
        )
        .await;
        screenshot(&client, "docs-page").await;

        let refused: Vec<String> = console_messages(&client)
            .await
            .into_iter()
            .filter(|m| m.contains("Content Security Policy") || m.contains("Refused"))
            .collect();
        assert!(refused.is_empty(), "the page's CSP refused: {refused:#?}");
        assert_eq!(outside_urls(&client).await, json!([]));
    })
    .await;
}
