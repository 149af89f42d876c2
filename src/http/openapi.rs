//! The API's OpenAPI 3.1 description, served at `GET /api/schema/`.
//!
//! It is generated from the code: each handler carries a `#[utoipa::path]` attribute (its
//! method, path, parameters, body and responses), and the wire types derive `ToSchema`.
//! What holds for every operation alike is added here once, by `Conventions`, so that it
//! cannot be forgotten on one of them: the Host check's 400, the 500 and 503 any request
//! may meet, and for every operation that reads a body, the form encodings DRF accepts
//! besides JSON, 413 and 415.
//!
//! Handlers read bodies through `extract::Fields`, not typed structs (DRF names every bad
//! field, serde stops at the first), so the request bodies are described by the types
//! below, which only the description uses. `scripts/fuzz-api` runs schemathesis against
//! this description in CI: a response it does not describe fails the build.

use super::{account, auth, health, reset, users};
use crate::domain::messages;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use std::sync::LazyLock;
use utoipa::openapi::content::ContentBuilder;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{Ref, RefOr};
use utoipa::{Modify, OpenApi, ToResponse, ToSchema};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "gatehouse",
        // A name only: with an SPDX identifier, Swagger UI links to spdx.org, and the docs
        // page links nowhere outside.
        license(name = "MIT"),
        description = "User authentication and management, wire-compatible with a Django REST \
framework + SimpleJWT API.\n\n\
Every path ends in `/`; the same path without it is served identically. Bodies may be JSON, \
URL-encoded forms or multipart forms (fields as strings). Errors have DRF's shapes: \
validation errors `{\"field\": [\"message\", …]}` (400), anything else `{\"detail\": \"…\"}`, \
with SimpleJWT's `code` on token errors. A method a path does not serve gets 405 \
`{\"detail\": \"Method \\\"X\\\" not allowed.\"}`, an unknown path 404 `{\"detail\": \"Not found.\"}`.\n\n\
Protected operations take `Authorization: Bearer <access token>` from `POST /api/login/`."
    ),
    paths(
        account::register,
        auth::login,
        auth::token_refresh,
        auth::token_verify,
        auth::logout,
        account::delete_account,
        reset::request_reset,
        reset::confirm_reset,
        reset::confirm_page,
        account::change_password,
        account::me_get,
        account::me_put,
        account::me_patch,
        account::me_delete,
        users::list,
        users::create,
        users::retrieve,
        users::put,
        users::patch,
        users::destroy,
        health::health,
    ),
    components(
        schemas(BadRequestBody, ValidationErrors, Detail, AuthError, TokenMessage),
        responses(
            BadRequest,
            Unauthorized,
            Forbidden,
            NotFound,
            MethodNotAllowed,
            PayloadTooLarge,
            UnsupportedMediaType,
            Throttled,
            ServerError,
            Unavailable,
            Referenced,
            HeadersTooLarge,
            RequestTimeout
        )
    ),
    modifiers(&Conventions),
    tags(
        (name = "auth", description = "Register, log in, and the SimpleJWT token endpoints"),
        (name = "account", description = "The signed-in user's own account"),
        (name = "password reset", description = "Password reset by email"),
        (name = "users", description = "User administration (staff), or a user's own record"),
        (name = "operations", description = "Health"),
    )
)]
pub struct ApiDoc;

/// The document as served: built and serialised once.
static DOCUMENT: LazyLock<String> = LazyLock::new(|| document().to_string());

/// The description as JSON, with two things utoipa 5 cannot say put right (utoipa 6, which
/// fixes them, needs a newer Rust than gatehouse's 1.82):
/// - response headers are marked `required`: its `Header` has no such field, and "every
///   401 carries `WWW-Authenticate`" (API.md §2) is a promise the fuzzer should hold us
///   to, not an option;
/// - its `Link` serialises its fields in snake case (`operation_id`, `request_body`), which
///   no OpenAPI tool reads: they are renamed to the specification's camel case.
pub fn document() -> Value {
    let mut document = serde_json::to_value(ApiDoc::openapi()).unwrap_or(Value::Null);
    if let Some(responses) = document
        .pointer_mut("/components/responses")
        .and_then(Value::as_object_mut)
    {
        for response in responses.values_mut() {
            if let Some(headers) = response.get_mut("headers").and_then(Value::as_object_mut) {
                for header in headers.values_mut() {
                    header["required"] = Value::Bool(true);
                }
            }
        }
    }
    let operations = document
        .get_mut("paths")
        .and_then(Value::as_object_mut)
        .into_iter()
        .flat_map(|paths| paths.values_mut())
        .filter_map(Value::as_object_mut)
        .flat_map(|item| item.values_mut());
    for operation in operations {
        let responses = operation
            .get_mut("responses")
            .and_then(Value::as_object_mut)
            .into_iter()
            .flat_map(|responses| responses.values_mut());
        for response in responses {
            let links = response
                .get_mut("links")
                .and_then(Value::as_object_mut)
                .into_iter()
                .flat_map(|links| links.values_mut())
                .filter_map(Value::as_object_mut);
            for link in links {
                for (snake, camel) in [
                    ("operation_id", "operationId"),
                    ("operation_ref", "operationRef"),
                    ("request_body", "requestBody"),
                ] {
                    if let Some(value) = link.remove(snake) {
                        link.insert(camel.to_owned(), value);
                    }
                }
            }
        }
    }
    document
}

/// `GET /api/schema/`.
pub async fn schema() -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        DOCUMENT.as_str(),
    )
        .into_response()
}

/// The media types `extract::Fields` parses (DRF's default parsers), all into the same fields.
const BODY_MEDIA_TYPES: [&str; 3] = [
    "application/json",
    "application/x-www-form-urlencoded",
    "multipart/form-data",
];

/// What every operation has in common; see the module's comment.
struct Conventions;

impl Modify for Conventions {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "An access token from `POST /api/login/` or `POST /api/token/refresh/`",
                    ))
                    .build(),
            ),
        );
        let reference = |name: &str| RefOr::Ref(Ref::from_response_name(name));
        for item in openapi.paths.paths.values_mut() {
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ];
            for operation in operations.into_iter().flatten() {
                let responses = &mut operation.responses.responses;
                if let Some(body) = &mut operation.request_body {
                    if let Some(json) = body.content.get("application/json").cloned() {
                        for media_type in BODY_MEDIA_TYPES {
                            body.content
                                .entry(media_type.to_owned())
                                .or_insert_with(|| json.clone());
                        }
                    }
                    responses
                        .entry("413".into())
                        .or_insert_with(|| reference("PayloadTooLarge"));
                    responses
                        .entry("415".into())
                        .or_insert_with(|| reference("UnsupportedMediaType"));
                    responses
                        .entry("408".into())
                        .or_insert_with(|| reference("RequestTimeout"));
                }
                responses
                    .entry("431".into())
                    .or_insert_with(|| reference("HeadersTooLarge"));
                // ALLOWED_HOSTS is checked before routing: any operation may answer 400.
                responses
                    .entry("400".into())
                    .or_insert_with(|| reference("BadRequest"));
                responses
                    .entry("500".into())
                    .or_insert_with(|| reference("ServerError"));
                responses
                    .entry("503".into())
                    .or_insert_with(|| reference("Unavailable"));
            }
        }
    }
}

// ---- Error bodies -----------------------------------------------------------------------

/// DRF's validation error: each field names its messages; `non_field_errors` holds those
/// of the body as a whole.
#[derive(ToSchema)]
#[schema(
    example = json!({"username": ["A user with that username already exists."], "password": ["This password is too common."]})
)]
#[allow(dead_code)] // described, never built
pub struct ValidationErrors(std::collections::BTreeMap<String, Vec<String>>);

/// A 400: a validation error, or a `detail` (a body that could not be parsed, a Host not
/// in `ALLOWED_HOSTS`, the last superuser).
#[derive(ToSchema)]
#[serde(untagged)]
#[allow(dead_code)] // described, never built
pub enum BadRequestBody {
    Validation(ValidationErrors),
    Detail(Detail),
}

/// `{"detail": "…"}`: every error that is not about a field.
#[derive(ToSchema)]
#[schema(example = json!({"detail": "Not found."}))]
#[allow(dead_code)] // described, never built: `ApiError` writes the wire
pub struct Detail {
    detail: String,
}

/// A 401: `{"detail"}` alone when no credentials were given or a login failed; with
/// SimpleJWT's `code` when a token was refused, and, on a protected route, SimpleJWT's
/// `messages` naming the token class tried.
#[derive(ToSchema)]
#[schema(example = json!({
    "detail": "Given token not valid for any token type",
    "code": "token_not_valid",
    "messages": [{"token_class": "AccessToken", "token_type": "access", "message": "Token is invalid or expired"}]
}))]
#[allow(dead_code)] // described, never built
pub struct AuthError {
    detail: String,
    #[schema(required = false, inline)]
    code: AuthErrorCode,
    #[schema(required = false)]
    messages: Vec<TokenMessage>,
}

#[derive(ToSchema)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)] // described, never built
pub enum AuthErrorCode {
    TokenNotValid,
    UserNotFound,
    UserInactive,
    NoActiveAccount,
    BadAuthorizationHeader,
}

#[derive(ToSchema)]
#[allow(dead_code)] // described, never built
pub struct TokenMessage {
    token_class: String,
    token_type: String,
    message: String,
}

// ---- Reusable responses ------------------------------------------------------------------

fn json_content(schema: impl Into<RefOr<Schema>>) -> utoipa::openapi::content::Content {
    ContentBuilder::new().schema(Some(schema)).build()
}

fn detail_ref() -> RefOr<Schema> {
    RefOr::Ref(Ref::from_schema_name("Detail"))
}

fn detail_response(description: &str, example: Value) -> utoipa::openapi::response::Response {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(detail_ref()))
                .example(Some(example))
                .build(),
        )
        .build()
}

fn retry_after() -> utoipa::openapi::header::Header {
    HeaderBuilder::new()
        .schema(
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .minimum(Some(0)),
        )
        .description(Some("Seconds to wait before trying again"))
        .build()
}

macro_rules! reusable_response {
    ($name:ident, $build:expr) => {
        pub struct $name;
        impl<'r> ToResponse<'r> for $name {
            fn response() -> (&'r str, RefOr<utoipa::openapi::response::Response>) {
                (stringify!($name), RefOr::T($build))
            }
        }
    };
}

reusable_response!(
    BadRequest,
    ResponseBuilder::new()
        .description(
            "Validation failed (`{\"field\": [\"message\", …]}`), the body could not be parsed, \
             or the Host header is not in ALLOWED_HOSTS (`{\"detail\": \"…\"}`)"
        )
        .content(
            "application/json",
            json_content(Ref::from_schema_name("BadRequestBody"))
        )
        .build()
);

reusable_response!(
    Unauthorized,
    ResponseBuilder::new()
        .description("Not signed in, or the credentials or token were refused")
        .header(
            "WWW-Authenticate",
            HeaderBuilder::new()
                .schema(
                    ObjectBuilder::new()
                        .schema_type(Type::String)
                        .enum_values(Some(["Bearer realm=\"api\""]))
                )
                .build()
        )
        .content(
            "application/json",
            json_content(Ref::from_schema_name("AuthError"))
        )
        .build()
);

reusable_response!(
    Forbidden,
    detail_response(
        "Signed in, but not allowed to do this",
        json!({"detail": messages::PERMISSION_DENIED})
    )
);

reusable_response!(
    NotFound,
    detail_response(
        "No such resource, or not one the caller may see",
        json!({"detail": messages::NOT_FOUND})
    )
);

reusable_response!(
    MethodNotAllowed,
    ResponseBuilder::new()
        .description("The path does not serve this method (any path, any undeclared method)")
        .header("Allow", HeaderBuilder::new().build())
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(detail_ref()))
                .example(Some(
                    json!({"detail": messages::method_not_allowed("TRACE")})
                ))
                .build()
        )
        .build()
);

reusable_response!(
    PayloadTooLarge,
    detail_response(
        "The body is larger than 64 KiB",
        json!({"detail": messages::PAYLOAD_TOO_LARGE})
    )
);

reusable_response!(
    UnsupportedMediaType,
    detail_response(
        "The body is not JSON, a URL-encoded form or a multipart form",
        json!({"detail": messages::unsupported_media_type("text/plain")})
    )
);

reusable_response!(
    RequestTimeout,
    detail_response(
        "The body arrived slower than GATEHOUSE_CLIENT_TIMEOUT allows",
        json!({"detail": messages::REQUEST_BODY_TIMEOUT})
    )
);

reusable_response!(
    HeadersTooLarge,
    detail_response(
        "The request headers together are larger than GATEHOUSE_MAX_HEADER_BYTES",
        json!({"detail": messages::HEADERS_TOO_LARGE})
    )
);

reusable_response!(
    Referenced,
    detail_response(
        "Rows of other applications sharing the database refer to this user; deactivate it instead",
        json!({"detail": messages::USER_REFERENCED})
    )
);

reusable_response!(
    Throttled,
    ResponseBuilder::new()
        .description(
            "Too many requests from this client address, or (login) the brute-force guard \
             holds this attempt back"
        )
        .header("Retry-After", retry_after())
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(detail_ref()))
                .example(Some(json!({"detail": messages::throttled(60)})))
                .build()
        )
        .build()
);

reusable_response!(
    ServerError,
    detail_response(
        "An unexpected failure; the body never says more",
        json!({"detail": messages::SERVER_ERROR})
    )
);

reusable_response!(
    Unavailable,
    ResponseBuilder::new()
        .description(
            "The database is unreachable, every password-hashing slot is busy, or the request \
             took longer than GATEHOUSE_REQUEST_TIMEOUT; try again later"
        )
        .header("Retry-After", retry_after())
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(detail_ref()))
                .example(Some(json!({"detail": messages::SERVICE_UNAVAILABLE})))
                .build()
        )
        .build()
);

// ---- Request bodies (described only: handlers read `extract::Fields`) ---------------------

/// `POST /api/register/`.
#[derive(ToSchema)]
#[schema(example = json!({"username": "chandler", "email": "chandler@example.com", "password": "could-I-BE-any-more-secure"}))]
#[allow(dead_code)] // described, never built
pub struct RegisterBody {
    /// 1–150 letters, digits and `@ . + - _`; unique, ignoring case.
    #[schema(min_length = 1, max_length = 150, pattern = r"^[\w.@+-]+$")]
    username: String,
    /// Unique, ignoring case; the domain is stored lower-cased.
    #[schema(format = Email, max_length = 254)]
    email: String,
    /// At least 8 characters (`PASSWORD_MIN_LENGTH`), at most 4096 bytes, not entirely
    /// numeric, not common, not too similar to the username or email. Never trimmed.
    password: String,
    #[schema(required = false, max_length = 150)]
    first_name: String,
    #[schema(required = false, max_length = 150)]
    last_name: String,
}

/// `POST /api/login/`.
#[derive(ToSchema)]
#[schema(example = json!({"username": "chandler", "password": "could-I-BE-any-more-secure"}))]
#[allow(dead_code)] // described, never built
pub struct LoginBody {
    /// Matched ignoring case.
    username: String,
    password: String,
}

/// `POST /api/token/refresh/` and `POST /api/logout/`.
#[derive(ToSchema)]
#[allow(dead_code)] // described, never built
pub struct RefreshBody {
    /// A refresh token; it is spent by a refresh or a logout.
    refresh: String,
}

/// `POST /api/token/verify/`.
#[derive(ToSchema)]
#[allow(dead_code)] // described, never built
pub struct VerifyBody {
    /// An access or refresh token.
    token: String,
}

/// `POST /api/reset_password/`.
#[derive(ToSchema)]
#[schema(example = json!({"email": "chandler@example.com"}))]
#[allow(dead_code)] // described, never built
pub struct ResetRequestBody {
    #[schema(format = Email, max_length = 254)]
    email: String,
}

/// `POST /api/reset_password/confirm/`: `uid` and `token` come from the email.
#[derive(ToSchema)]
#[allow(dead_code)] // described, never built
pub struct ResetConfirmBody {
    /// The user's id in URL-safe base64 without padding, as Django encodes it.
    uid: String,
    token: String,
    /// Checked as on registration.
    new_password: String,
}

/// `POST /api/change_password/`.
#[derive(ToSchema)]
#[allow(dead_code)] // described, never built
pub struct ChangePasswordBody {
    old_password: String,
    /// Checked as on registration.
    new_password: String,
}

/// `PATCH /api/users/me/`: any subset. Changing `username` or `email` needs
/// `current_password`. Other fields (`id`, the flags, the dates) are read-only and ignored.
#[derive(ToSchema)]
#[allow(dead_code)] // described, never built
pub struct ProfilePatch {
    #[schema(
        required = false,
        min_length = 1,
        max_length = 150,
        pattern = r"^[\w.@+-]+$"
    )]
    username: String,
    #[schema(required = false, format = Email, max_length = 254)]
    email: String,
    #[schema(required = false, max_length = 150)]
    first_name: String,
    #[schema(required = false, max_length = 150)]
    last_name: String,
    /// Required when `username` or `email` changes.
    #[schema(required = false)]
    current_password: String,
}

/// `PUT /api/users/me/`: as PATCH, but `username` and `email` are required.
#[derive(ToSchema)]
#[allow(dead_code)] // described, never built
pub struct ProfilePut {
    #[schema(min_length = 1, max_length = 150, pattern = r"^[\w.@+-]+$")]
    username: String,
    #[schema(format = Email, max_length = 254)]
    email: String,
    #[schema(required = false, max_length = 150)]
    first_name: String,
    #[schema(required = false, max_length = 150)]
    last_name: String,
    /// Required when `username` or `email` changes.
    #[schema(required = false)]
    current_password: String,
}

/// `POST /api/users/`: registration's fields, and the flags. Only a superuser may set
/// `is_staff` or `is_superuser` (403 otherwise).
#[derive(ToSchema)]
#[allow(dead_code)] // described, never built
pub struct UserCreate {
    #[schema(min_length = 1, max_length = 150, pattern = r"^[\w.@+-]+$")]
    username: String,
    #[schema(format = Email, max_length = 254)]
    email: String,
    password: String,
    #[schema(required = false, max_length = 150)]
    first_name: String,
    #[schema(required = false, max_length = 150)]
    last_name: String,
    /// Default `true`.
    #[schema(required = false)]
    is_active: bool,
    #[schema(required = false)]
    is_staff: bool,
    #[schema(required = false)]
    is_superuser: bool,
}

/// `PATCH /api/users/{id}/`: any subset. Staff may set `is_active`; only a superuser
/// changes `is_staff` or `is_superuser` (403 otherwise; a flag sent back unchanged is
/// fine). Users changing their own `username` or `email` need `current_password`.
#[derive(ToSchema)]
#[allow(dead_code)] // described, never built
pub struct UserPatch {
    #[schema(
        required = false,
        min_length = 1,
        max_length = 150,
        pattern = r"^[\w.@+-]+$"
    )]
    username: String,
    #[schema(required = false, format = Email, max_length = 254)]
    email: String,
    #[schema(required = false, max_length = 150)]
    first_name: String,
    #[schema(required = false, max_length = 150)]
    last_name: String,
    #[schema(required = false)]
    is_active: bool,
    #[schema(required = false)]
    is_staff: bool,
    #[schema(required = false)]
    is_superuser: bool,
    /// Required when users change their own `username` or `email`.
    #[schema(required = false)]
    current_password: String,
}

/// `PUT /api/users/{id}/`: as PATCH, but `username` and `email` are required.
#[derive(ToSchema)]
#[allow(dead_code)] // described, never built
pub struct UserPut {
    #[schema(min_length = 1, max_length = 150, pattern = r"^[\w.@+-]+$")]
    username: String,
    #[schema(format = Email, max_length = 254)]
    email: String,
    #[schema(required = false, max_length = 150)]
    first_name: String,
    #[schema(required = false, max_length = 150)]
    last_name: String,
    #[schema(required = false)]
    is_active: bool,
    #[schema(required = false)]
    is_staff: bool,
    #[schema(required = false)]
    is_superuser: bool,
    /// Required when users change their own `username` or `email`.
    #[schema(required = false)]
    current_password: String,
}

// ---- Response bodies -----------------------------------------------------------------------

/// `201` from `POST /api/register/`.
#[derive(ToSchema)]
#[schema(example = json!({"message": messages::REGISTERED, "username": "chandler", "email": "chandler@example.com"}))]
#[allow(dead_code)] // described, never built
pub struct Registered {
    message: String,
    username: String,
    email: String,
}

/// `{"message": "…"}`.
#[derive(ToSchema)]
#[allow(dead_code)] // described, never built
pub struct Message {
    message: String,
}

/// `200` from `POST /api/reset_password/`, for every valid address, known or not.
#[derive(ToSchema)]
#[schema(example = json!({"status": "ok"}))]
#[allow(dead_code)] // described, never built
pub struct ResetRequested {
    #[schema(inline)]
    status: ResetStatus,
}

#[derive(ToSchema)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)] // described, never built
pub enum ResetStatus {
    Ok,
}

/// `200` from `POST /api/token/verify/`: an empty object.
#[derive(ToSchema)]
#[schema(example = json!({}))]
pub struct Empty {}

/// DRF's `PageNumberPagination`.
#[derive(ToSchema)]
#[allow(dead_code)] // described, never built
pub struct UserPage {
    /// Users matching the filters, on every page.
    #[schema(minimum = 0)]
    count: i64,
    /// The next page's absolute URL.
    #[schema(format = "uri", required = true)]
    next: Option<String>,
    /// The previous page's absolute URL.
    #[schema(format = "uri", required = true)]
    previous: Option<String>,
    results: Vec<crate::domain::User>,
}

/// `GET /api/health/`.
#[derive(ToSchema)]
#[schema(example = json!({"status": "ok", "database": "ok"}))]
#[allow(dead_code)] // described, never built
pub struct Health {
    #[schema(inline)]
    status: HealthState,
    #[schema(inline)]
    database: HealthState,
}

#[derive(ToSchema)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)] // described, never built
pub enum HealthState {
    Ok,
    Unavailable,
}
