//! Password reset by email (API.md §4): the request, the confirmation, and the small
//! HTML page the emailed link opens.
//!
//! The confirmation answers JSON to API clients and HTML to a browser (one whose
//! `Accept` names `text/html`, as a form submission's does), so the page's form posts to
//! the same endpoint and needs no script.

use super::error::ApiError;
use super::extract::{Fields, QueryParams};
use super::openapi;
use crate::auth::lockout;
use crate::auth::reset::{decode_uid, password_fingerprint, TokenDigest};
use crate::domain::password::UserAttributes;
use crate::domain::{messages, EmailAddress, FieldErrors};
use crate::state::AppState;
use askama::Template;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use secrecy::SecretString;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::sync::LazyLock;

/// `POST /api/reset_password/` `{"email"}` → 200 `{"status": "ok"}` for every valid
/// address, known or not.
#[utoipa::path(
    post,
    path = "/api/reset_password/",
    operation_id = "reset_password",
    tag = "password reset",
    summary = "Email a password-reset link",
    description = "The same answer, in the same time, for every valid address, known or not; \
                   per address, at most 3 emails an hour (silently).",
    request_body = openapi::ResetRequestBody,
    responses(
        (status = 200, description = "Queued, if the address belongs to an active user", body = openapi::ResetRequested),
        (status = 429, response = openapi::Throttled),
    )
)]
pub async fn request_reset(
    State(state): State<AppState>,
    headers: HeaderMap,
    fields: Fields,
) -> Result<Json<Value>, ApiError> {
    let email = fields
        .required_text("email", true)
        .and_then(|raw| EmailAddress::parse(&raw))
        .map_err(|m| ApiError::field_messages("email", m))?;
    let now = chrono::Utc::now().timestamp();
    // The same single write for every valid address, known or not: the worker looks it
    // up and mails it (`email::reset`), so the answer reveals nothing, even in its timing.
    let base = super::base_url(&state, &headers);
    state
        .store
        .queue_reset_request(email.as_str(), &base, now)
        .await?;
    state.outbox.queued();
    Ok(Json(json!({"status": "ok"})))
}

fn invalid_token() -> ApiError {
    ApiError::field("token", messages::RESET_TOKEN_INVALID)
}

/// Checks uid, token and new password, and resets. The token stays usable when only the
/// new password is refused.
async fn confirm(state: &AppState, fields: &Fields) -> Result<(), ApiError> {
    let mut errors = FieldErrors::new();
    let uid = errors.check("uid", fields.required_text("uid", true));
    let token = errors.check("token", fields.required_text("token", true));
    let new_password = errors.check("new_password", fields.required_text("new_password", false));
    errors.clone().into_result()?;
    let (Some(uid), Some(token), Some(new_password)) = (uid, token, new_password) else {
        return Err(errors.into());
    };
    let id = decode_uid(&uid).ok_or_else(invalid_token)?;
    let digest = TokenDigest::of(token.trim());
    let now = chrono::Utc::now();
    let (credentials, fingerprint) = state
        .store
        .reset_token_owner(digest.as_str(), id, now.timestamp())
        .await?
        .ok_or_else(invalid_token)?;
    if password_fingerprint(&credentials.password_hash) != fingerprint
        || !credentials.user.is_active
    {
        return Err(invalid_token());
    }
    let user = &credentials.user;
    let attributes = UserAttributes {
        username: Some(&user.username),
        email: Some(&user.email),
        first_name: Some(&user.first_name),
        last_name: Some(&user.last_name),
    };
    state
        .policy
        .validate(&new_password, attributes)
        .map_err(|m| ApiError::field_messages("new_password", m))?;
    let hash = state.hasher.hash(SecretString::from(new_password)).await?;
    if !state
        .store
        .consume_reset_token(digest.as_str(), id, &hash, now)
        .await?
    {
        return Err(invalid_token());
    }
    // A reset proves the owner: whatever an attacker's guessing built up is cleared, and
    // no client that knew the old password stays trusted.
    state
        .store
        .forget_login_history(&lockout::user_key(id))
        .await?;
    crate::http::access_log::record_user_id(id);
    Ok(())
}

/// `POST /api/reset_password/confirm/` `{"uid", "token", "new_password"}`.
#[utoipa::path(
    post,
    path = "/api/reset_password/confirm/",
    operation_id = "reset_password_confirm",
    tag = "password reset",
    summary = "Set a new password with the emailed uid and token",
    description = "A bad, used or expired token, or a uid that does not match it: 400 on \
                   `token`. A weak new password: 400 on `new_password`, and the token stays \
                   usable. Success ends every session of the user. A client whose `Accept` \
                   names `text/html` (the reset page's form) gets the page instead of JSON.",
    request_body = openapi::ResetConfirmBody,
    responses(
        (status = 200, description = "The password is reset", content(
            (openapi::Message = "application/json", example = json!({"message": "Password reset successful"})),
            (String = "text/html"),
        )),
        (status = 400, description = "Invalid token or password, or a body that could not be parsed", content(
            (openapi::BadRequestBody = "application/json"),
            (String = "text/html"),
        )),
    )
)]
pub async fn confirm_reset(
    State(state): State<AppState>,
    headers: HeaderMap,
    fields: Fields,
) -> Response {
    let result = confirm(&state, &fields).await;
    if !wants_html(&headers) {
        return match result {
            Ok(()) => Json(json!({"message": messages::PASSWORD_RESET})).into_response(),
            Err(error) => error.into_response(),
        };
    }
    let text = |name: &str| fields.text(name).ok().flatten().unwrap_or_default();
    match result {
        Ok(()) => page(StatusCode::OK, Outcome::Done, "", ""),
        Err(ApiError::Invalid(errors))
            if errors.fields().any(|f| f == "new_password") && errors.fields().count() == 1 =>
        {
            let messages = serde_json::to_value(&errors)
                .ok()
                .and_then(|v| v["new_password"].as_array().cloned());
            let messages = messages
                .unwrap_or_default()
                .iter()
                .filter_map(|m| m.as_str().map(str::to_owned))
                .collect();
            page(
                StatusCode::BAD_REQUEST,
                Outcome::Form(messages),
                &text("uid"),
                &text("token"),
            )
        }
        Err(ApiError::Invalid(_)) => page(StatusCode::BAD_REQUEST, Outcome::InvalidLink, "", ""),
        Err(error) => error.into_response(),
    }
}

/// The link's `uid` and `token`, read as Django's `QueryDict.get()` reads them
/// (`QueryParams`): a repeated parameter counts by its last value.
pub struct LinkQuery {
    uid: Option<String>,
    token: Option<String>,
}

impl LinkQuery {
    fn parse(raw_query: Option<&str>) -> Self {
        let params = QueryParams::parse(raw_query);
        Self {
            uid: params.get("uid").map(str::to_owned),
            token: params.get("token").map(str::to_owned),
        }
    }
}

/// `GET /api/reset_password/confirm/?uid=…&token=…`: the emailed link's page.
#[utoipa::path(
    get,
    path = "/api/reset_password/confirm/",
    operation_id = "reset_password_page",
    tag = "password reset",
    summary = "The emailed link's page: a form for the new password",
    description = "An HTML page; for a bad or spent link it says so. A repeated parameter \
                   counts by its last value.",
    params(
        ("uid" = Option<String>, Query, description = "From the email"),
        ("token" = Option<String>, Query, description = "From the email"),
    ),
    responses(
        (status = 200, description = "The page", content_type = "text/html", body = String),
    )
)]
pub async fn confirm_page(
    State(state): State<AppState>,
    RawQuery(raw_query): RawQuery,
) -> Result<Response, ApiError> {
    let link = LinkQuery::parse(raw_query.as_deref());
    let (uid, token) = (link.uid.unwrap_or_default(), link.token.unwrap_or_default());
    let now = chrono::Utc::now().timestamp();
    let owner = match decode_uid(&uid) {
        Some(id) => {
            state
                .store
                .reset_token_owner(TokenDigest::of(token.trim()).as_str(), id, now)
                .await?
        }
        None => None,
    };
    let live = owner.is_some_and(|(c, fingerprint)| {
        c.user.is_active && password_fingerprint(&c.password_hash) == fingerprint
    });
    Ok(if live {
        page(StatusCode::OK, Outcome::Form(Vec::new()), &uid, &token)
    } else {
        page(StatusCode::OK, Outcome::InvalidLink, "", "")
    })
}

/// Whether the client asked for HTML (a browser's navigation or form post).
fn wants_html(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| {
            accept
                .split(',')
                .any(|part| part.trim().starts_with("text/html"))
        })
}

pub enum Outcome {
    Form(Vec<String>),
    Done,
    InvalidLink,
}

#[derive(Template)]
#[template(path = "reset_confirm.html")]
struct ResetPage<'a> {
    title: &'a str,
    style: &'a str,
    outcome: Outcome,
    uid: &'a str,
    token: &'a str,
}

/// The page's only stylesheet, inline; the CSP allows exactly it, by hash.
const STYLE: &str = "body{font-family:system-ui,-apple-system,sans-serif;margin:0;background:#f4f5f7;color:#1d2330}\
main{max-width:26rem;margin:2rem auto;padding:1.5rem;background:#fff;border-radius:.5rem;box-shadow:0 1px 4px rgba(0,0,0,.12)}\
h1{font-size:1.4rem;margin-top:0}label{display:block;font-weight:600;margin:1rem 0 .3rem}\
input[type=password]{box-sizing:border-box;width:100%;padding:.7rem;font-size:1rem;border:1px solid #a9b0bd;border-radius:.3rem}\
button{margin-top:1rem;width:100%;padding:.8rem;font-size:1rem;border:0;border-radius:.3rem;background:#2456c7;color:#fff}\
.error{color:#a4161a}.ok{color:#1b6e2d}@media (max-width:30rem){main{margin:0;border-radius:0;min-height:100vh}}";

static CONTENT_SECURITY_POLICY: LazyLock<HeaderValue> = LazyLock::new(|| {
    use base64::Engine;
    let hash = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(STYLE.as_bytes()));
    let policy = format!(
        "default-src 'none'; style-src 'sha256-{hash}'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    );
    HeaderValue::from_str(&policy).expect("an ASCII policy")
});

fn page(status: StatusCode, outcome: Outcome, uid: &str, token: &str) -> Response {
    let title = match outcome {
        Outcome::Done => "Password reset complete",
        Outcome::InvalidLink => "Password reset unsuccessful",
        Outcome::Form(_) => "Enter new password",
    };
    let html = ResetPage {
        title,
        style: STYLE,
        outcome,
        uid,
        token,
    }
    .render();
    let Ok(html) = html else {
        return ApiError::internal(anyhow::anyhow!("reset page template failed")).into_response();
    };
    // Its own CSP (it has a stylesheet); no-store, nosniff, DENY and no-referrer (the URL
    // carries the reset secret) come from the router's security headers (`http::mod`).
    let mut response = (status, axum::response::Html(html)).into_response();
    response.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        CONTENT_SECURITY_POLICY.clone(),
    );
    response
}
