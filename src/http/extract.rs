//! Extractors: `Fields` (a request body as DRF parses it; `UnreadBody` for one parsed
//! later) and `AuthUser` (the signed-in user behind a Bearer access token).
//!
//! Bodies are not deserialised straight into typed structs: serde stops at the first
//! problem and words it its own way, while DRF names every bad field in its own words
//! (STYLE.md P2). So a body becomes a JSON object first, and handlers read fields from it.

use super::client::ClientIp;
use super::error::ApiError;
use crate::auth::{Claims, TokenType};
use crate::domain::{messages, User};
use crate::state::AppState;
use axum::body::Body;
use axum::extract::{FromRequest, FromRequestParts, Multipart, Request};
use axum::http::{header, request::Parts, StatusCode};
use serde_json::{Map, Value};

/// API.md §2: bodies over 64 KiB get 413.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// A request body's fields, from JSON, a URL-encoded form or a multipart form
/// (DRF's default parsers). An empty body has no fields.
#[derive(Debug, Default)]
pub struct Fields(Map<String, Value>);

impl FromRequest<AppState> for Fields {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, ApiError> {
        let content_type = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let media_type = content_type
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        let declared_length = request
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        if declared_length.is_some_and(|n| n > MAX_BODY_BYTES) {
            return Err(ApiError::payload_too_large());
        }
        let (parts, body) = request.into_parts();
        // A client trickling its body byte by byte would hold a connection and a task
        // for as long as it liked (slowloris); it gets `GATEHOUSE_CLIENT_TIMEOUT`.
        let bytes = tokio::time::timeout(
            state.config.limits.client_timeout,
            axum::body::to_bytes(body, MAX_BODY_BYTES),
        )
        .await
        .map_err(|_| ApiError::detail(StatusCode::REQUEST_TIMEOUT, messages::REQUEST_BODY_TIMEOUT))?
        .map_err(|_| ApiError::payload_too_large())?;
        if bytes.is_empty() {
            return Ok(Fields::default());
        }
        match media_type.as_str() {
            "application/json" => parse_json(&bytes),
            "application/x-www-form-urlencoded" => {
                let pairs: Vec<(String, String)> =
                    serde_urlencoded::from_bytes(&bytes).map_err(|_| {
                        ApiError::detail(StatusCode::BAD_REQUEST, "Malformed form data.")
                    })?;
                // DRF reads a QueryDict with `.get()`, which keeps the last of repeated keys.
                Ok(Fields(
                    pairs
                        .into_iter()
                        .map(|(k, v)| (k, Value::String(v)))
                        .collect(),
                ))
            }
            "multipart/form-data" => {
                let request = Request::from_parts(parts, Body::from(bytes));
                let mut multipart =
                    Multipart::from_request(request, state).await.map_err(|_| {
                        ApiError::detail(StatusCode::BAD_REQUEST, "Multipart form parse error.")
                    })?;
                let mut fields = Map::new();
                while let Some(field) = multipart.next_field().await.map_err(|_| {
                    ApiError::detail(StatusCode::BAD_REQUEST, "Multipart form parse error.")
                })? {
                    let Some(name) = field.name().map(str::to_owned) else {
                        continue;
                    };
                    let text = field.text().await.map_err(|_| {
                        ApiError::detail(StatusCode::BAD_REQUEST, "Multipart form parse error.")
                    })?;
                    fields.insert(name, Value::String(text));
                }
                Ok(Fields(fields))
            }
            _ => Err(ApiError::detail(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                messages::unsupported_media_type(&content_type),
            )),
        }
    }
}

/// A request body not read yet, for handlers that may refuse a request before its body
/// matters. DRF parses `request.data` only when a view first touches it: a request its
/// permissions refuse (403), or whose object does not exist (404), gets that answer
/// whatever its body, not a 400 or 415 for it.
pub struct UnreadBody(Request);

impl FromRequest<AppState> for UnreadBody {
    type Rejection = std::convert::Infallible;

    async fn from_request(request: Request, _: &AppState) -> Result<Self, Self::Rejection> {
        Ok(Self(request))
    }
}

impl UnreadBody {
    /// Reads and parses the body now, as `Fields` does.
    pub async fn fields(self, state: &AppState) -> Result<Fields, ApiError> {
        Fields::from_request(self.0, state).await
    }
}

fn parse_json(bytes: &[u8]) -> Result<Fields, ApiError> {
    let value: Value = serde_json::from_slice(bytes).map_err(|e| {
        ApiError::detail(
            StatusCode::BAD_REQUEST,
            messages::json_parse_error(&e.to_string()),
        )
    })?;
    match value {
        Value::Object(map) => Ok(Fields(map)),
        other => {
            // Python's type names, as DRF words this error.
            let got = match other {
                Value::Array(_) => "list",
                Value::String(_) => "str",
                Value::Number(n) if n.is_f64() => "float",
                Value::Number(_) => "int",
                Value::Bool(_) => "bool",
                _ => "NoneType",
            };
            Err(ApiError::field(
                "non_field_errors",
                messages::expected_object(got),
            ))
        }
    }
}

impl Fields {
    /// A text field as DRF's `CharField` reads it: absent → `Ok(None)`; `null`, lists,
    /// objects and booleans are refused; numbers become their text. Never trimmed here.
    pub fn text(&self, name: &str) -> Result<Option<String>, Vec<String>> {
        match self.0.get(name) {
            None => Ok(None),
            // DRF's ProhibitNullCharactersValidator; PostgreSQL cannot store NUL in text.
            Some(Value::String(s)) if s.contains('\0') => {
                Err(vec![messages::NULL_CHARACTERS.to_owned()])
            }
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            Some(Value::Null) => Err(vec![messages::NULL.to_owned()]),
            Some(_) => Err(vec![messages::NOT_A_STRING.to_owned()]),
        }
    }

    /// A required text field: absent → "This field is required.", and the empty string
    /// → "This field may not be blank." (after trimming, when `trim` is set, as DRF does
    /// for every field but passwords).
    pub fn required_text(&self, name: &str, trim: bool) -> Result<String, Vec<String>> {
        match self.text(name)? {
            None => Err(vec![messages::REQUIRED.to_owned()]),
            Some(s)
                if (if trim {
                    s.trim().is_empty()
                } else {
                    s.is_empty()
                }) =>
            {
                Err(vec![messages::BLANK.to_owned()])
            }
            Some(s) => Ok(s),
        }
    }

    /// The raw value of a field, for fields that are not text.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.0.get(name)
    }

    pub fn contains(&self, name: &str) -> bool {
        self.0.contains_key(name)
    }
}

/// The user behind a valid `Authorization: Bearer <access token>`, checked against the
/// database in one round trip (STYLE.md P5).
#[derive(Debug, Clone)]
pub struct AuthUser {
    pub user: User,
    pub claims: Claims,
    /// Who sent the request, for the brute-force guard on a re-entered password.
    pub client: Option<ClientIp>,
}

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = bearer_token(parts)?;
        let claims = state
            .tokens
            .decode(token, Some(TokenType::Access))
            .map_err(|e| ApiError::AccessTokenNotValid(e.message()))?;
        let check = state
            .store
            .access_check(claims.user_id, claims.sid.as_deref())
            .await?
            .ok_or_else(|| {
                ApiError::with_code(
                    StatusCode::UNAUTHORIZED,
                    messages::USER_NOT_FOUND,
                    "user_not_found",
                )
            })?;
        if !check.user.is_active {
            return Err(ApiError::with_code(
                StatusCode::UNAUTHORIZED,
                messages::USER_INACTIVE,
                "user_inactive",
            ));
        }
        let live = match &claims.sid {
            Some(_) => check.session_live,
            // A SimpleJWT token has no session: it lives until the user's cut-off.
            None => check
                .tokens_valid_after
                .is_none_or(|cutoff| claims.iat > cutoff),
        };
        if !live {
            return Err(ApiError::AccessTokenNotValid(
                messages::TOKEN_INVALID_OR_EXPIRED,
            ));
        }
        crate::http::access_log::record_user_id(check.user.id);
        Ok(AuthUser {
            user: check.user,
            claims,
            client: parts.extensions.get::<ClientIp>().copied(),
        })
    }
}

/// A query string read as Django's `QueryDict`: `get` gives the last value of a
/// repeated parameter (where axum's `Query` would refuse it with a plain-text 400), and a
/// query that does not parse reads as an empty one.
pub struct QueryParams(Vec<(String, String)>);

impl QueryParams {
    pub fn parse(raw_query: Option<&str>) -> Self {
        Self(serde_urlencoded::from_str(raw_query.unwrap_or("")).unwrap_or_default())
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        let mut named = self.0.iter().rev().filter(|(key, _)| key == name);
        named.next().map(|(_, value)| value.as_str())
    }

    /// Every parameter, repeated ones included, in the order sent.
    pub fn pairs(&self) -> &[(String, String)] {
        &self.0
    }
}

/// DRF's `JWTAuthentication.get_raw_token`: no header, or another scheme, means "not
/// signed in"; `Bearer` with anything but exactly one token is a malformed header. Read
/// as bytes, as SimpleJWT reads it: a token with bytes beyond ASCII is a token that is
/// not valid, not a missing one.
fn bearer_token(parts: &Parts) -> Result<&str, ApiError> {
    let header = parts
        .headers
        .get(header::AUTHORIZATION)
        .ok_or_else(ApiError::not_authenticated)?;
    // The header every signed-in request sends, `Bearer ` and one word of visible ASCII,
    // is taken in one pass over its bytes without a branch per byte (so the compiler can
    // vectorise it): the general path below splits a byte at a time, 2.1k of the 83k
    // instructions of `GET /api/users/me/` (bench/RESULTS.md). Same answer.
    if let Some(token) = header.as_bytes().strip_prefix(b"Bearer ") {
        let one_word = token
            .iter()
            .fold(!token.is_empty(), |all, &b| all & matches!(b, 0x21..=0x7e));
        if one_word {
            // Visible ASCII is UTF-8.
            return std::str::from_utf8(token).map_err(|_| not_a_token());
        }
    }
    // Python's `bytes.split()`: runs of ASCII whitespace, vertical tab included (which
    // `u8::is_ascii_whitespace` leaves out), separate.
    let mut words = header
        .as_bytes()
        .split(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c))
        .filter(|word| !word.is_empty());
    match (words.next(), words.next(), words.next()) {
        // Bytes that are not UTF-8 cannot be a JWT, which PyJWT tells SimpleJWT likewise.
        (Some(b"Bearer"), Some(token), None) => {
            std::str::from_utf8(token).map_err(|_| not_a_token())
        }
        (Some(b"Bearer"), _, _) => Err(ApiError::with_code(
            StatusCode::UNAUTHORIZED,
            "Authorization header must contain two space-delimited values",
            "bad_authorization_header",
        )),
        _ => Err(ApiError::not_authenticated()),
    }
}

/// The answer to a token that could not even be read: what decoding garbage answers.
fn not_a_token() -> ApiError {
    ApiError::AccessTokenNotValid(crate::auth::tokens::TokenError::Invalid.message())
}
