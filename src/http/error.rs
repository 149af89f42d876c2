//! `ApiError`: every failure of every handler, and the one place that turns it into
//! DRF's wire shapes (API.md §2). Handlers return `Result<_, ApiError>` and use `?`.

use crate::auth::TokenError;
use crate::domain::{messages, FieldErrors};
use crate::store::{StoreError, UniqueField};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use std::borrow::Cow;

#[derive(Debug)]
pub enum ApiError {
    /// 400 `{"field": ["message", …]}`.
    Invalid(FieldErrors),
    /// `{"detail": …}` with an optional SimpleJWT `code`.
    Detail {
        status: StatusCode,
        detail: Cow<'static, str>,
        code: Option<&'static str>,
    },
    /// 401 on a protected route whose access token failed: SimpleJWT's
    /// `{"detail": "Given token not valid for any token type", "code": "token_not_valid", "messages": […]}`.
    AccessTokenNotValid(&'static str),
    /// 405 with the `Allow` header.
    MethodNotAllowed {
        method: String,
        allow: Option<HeaderValue>,
    },
    /// 429 with `Retry-After`: a throttle's limit was reached.
    Throttled { retry_after_secs: u64 },
    /// 503: the database is unreachable right now.
    Unavailable,
    /// 500 `{"detail": "A server error occurred."}`; the cause is logged, never sent.
    Internal(anyhow::Error),
}

impl ApiError {
    pub fn detail(status: StatusCode, detail: impl Into<Cow<'static, str>>) -> Self {
        Self::Detail {
            status,
            detail: detail.into(),
            code: None,
        }
    }

    pub fn with_code(status: StatusCode, detail: &'static str, code: &'static str) -> Self {
        Self::Detail {
            status,
            detail: detail.into(),
            code: Some(code),
        }
    }

    pub fn field(field: &str, message: impl Into<String>) -> Self {
        Self::Invalid(FieldErrors::single(field, message))
    }

    /// 400 naming one field with every message a check returned for it.
    pub fn field_messages(field: &str, messages: Vec<String>) -> Self {
        let mut errors = FieldErrors::new();
        errors.add_all(field, messages);
        Self::Invalid(errors)
    }

    pub fn not_found() -> Self {
        Self::detail(StatusCode::NOT_FOUND, messages::NOT_FOUND)
    }

    pub fn not_authenticated() -> Self {
        Self::detail(StatusCode::UNAUTHORIZED, messages::NOT_AUTHENTICATED)
    }

    pub fn login_failed() -> Self {
        Self::detail(StatusCode::UNAUTHORIZED, messages::LOGIN_FAILED)
    }

    /// 401 from the token endpoints (refresh, verify, logout): SimpleJWT's `InvalidToken`.
    pub fn token_invalid(reason: &'static str) -> Self {
        Self::with_code(StatusCode::UNAUTHORIZED, reason, "token_not_valid")
    }

    pub fn payload_too_large() -> Self {
        Self::detail(StatusCode::PAYLOAD_TOO_LARGE, messages::PAYLOAD_TOO_LARGE)
    }

    /// A 5xx: the server failed the request, rather than refusing what it asked.
    pub fn is_server_error(&self) -> bool {
        match self {
            Self::Unavailable | Self::Internal(_) => true,
            Self::Detail { status, .. } => status.is_server_error(),
            _ => false,
        }
    }

    pub fn internal(error: impl Into<anyhow::Error>) -> Self {
        Self::Internal(error.into())
    }
}

impl From<FieldErrors> for ApiError {
    fn from(errors: FieldErrors) -> Self {
        Self::Invalid(errors)
    }
}

impl From<TokenError> for ApiError {
    fn from(error: TokenError) -> Self {
        match error {
            TokenError::Invalid | TokenError::WrongType => Self::token_invalid(error.message()),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Conflict(fields) => {
                let mut errors = FieldErrors::new();
                for field in fields {
                    match field {
                        UniqueField::Username => errors.add("username", messages::USERNAME_TAKEN),
                        UniqueField::Email => errors.add("email", messages::EMAIL_TAKEN),
                    }
                }
                Self::Invalid(errors)
            }
            StoreError::Unavailable(cause) => {
                tracing::warn!(error = %cause, "database unavailable");
                Self::Unavailable
            }
            StoreError::Other(cause) => Self::Internal(cause.into()),
            // API.md §9: another app's rows refer to the user (the store logged which).
            StoreError::Referenced(_) => {
                Self::detail(StatusCode::CONFLICT, messages::USER_REFERENCED)
            }
            // Raised only by migrations, at start-up: never on a request.
            error @ StoreError::CaseConflicts(_) => Self::Internal(error.into()),
        }
    }
}

impl From<crate::auth::passwords::HashError> for ApiError {
    fn from(error: crate::auth::passwords::HashError) -> Self {
        match error {
            crate::auth::passwords::HashError::Busy => {
                tracing::warn!("password hashing is saturated: answering 503");
                Self::Unavailable
            }
            other => Self::Internal(other.into()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, body) = match self {
            ApiError::Invalid(errors) => (
                StatusCode::BAD_REQUEST,
                serde_json::to_value(errors).unwrap_or(Value::Null),
            ),
            ApiError::Detail {
                status,
                detail,
                code: Some(code),
            } => (status, json!({"detail": detail, "code": code})),
            ApiError::Detail {
                status,
                detail,
                code: None,
            } => (status, json!({"detail": detail})),
            ApiError::AccessTokenNotValid(message) => (
                StatusCode::UNAUTHORIZED,
                json!({
                    "detail": messages::TOKEN_NOT_VALID_FOR_ANY_TYPE,
                    "code": "token_not_valid",
                    "messages": [{"token_class": "AccessToken", "token_type": "access", "message": message}],
                }),
            ),
            ApiError::MethodNotAllowed { method, allow } => {
                let mut response = (
                    StatusCode::METHOD_NOT_ALLOWED,
                    axum::Json(json!({"detail": messages::method_not_allowed(&method)})),
                )
                    .into_response();
                if let Some(allow) = allow {
                    response.headers_mut().insert(header::ALLOW, allow);
                }
                return response;
            }
            ApiError::Throttled { retry_after_secs } => {
                let body = json!({"detail": messages::throttled(retry_after_secs)});
                let mut response =
                    (StatusCode::TOO_MANY_REQUESTS, axum::Json(body)).into_response();
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
                return response;
            }
            ApiError::Unavailable => {
                let mut response = (
                    StatusCode::SERVICE_UNAVAILABLE,
                    axum::Json(json!({"detail": messages::SERVICE_UNAVAILABLE})),
                )
                    .into_response();
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
                return response;
            }
            ApiError::Internal(cause) => {
                // Logged here, inside the request's span; the body never carries the cause
                // (API.md §2: no SQL, no paths, no driver messages).
                tracing::error!(error = format!("{cause:#}"), "internal error");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    json!({"detail": messages::SERVER_ERROR}),
                )
            }
        };
        let mut response = (status, axum::Json(body)).into_response();
        if status == StatusCode::UNAUTHORIZED {
            // API.md §2: every 401 names the scheme, as DRF's JWTAuthentication does.
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"api\""),
            );
        }
        response
    }
}
