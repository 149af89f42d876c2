//! User administration (API.md §7): `GET/POST /api/users/`, and `GET/PUT/PATCH/DELETE
//! /api/users/{id}/` for staff or the user itself. Also the rules for changing a user,
//! which `/api/users/me/` shares.
//!
//! Who may do what: anonymous → 401; a non-staff user sees only itself (404 for anyone
//! else, 403 for the list); staff see and change everyone; only a superuser changes
//! `is_staff` or `is_superuser`; staff may change `is_active`. Read-only fields and flags
//! sent back unchanged are ignored, as a DRF client's PUT sends them.

use super::account::{prove_password, validated_new_user};
use super::auth::ProvenPassword;
use super::error::ApiError;
use super::extract::{AuthUser, Fields, QueryParams, UnreadBody};
use super::openapi;
use crate::domain::{messages, EmailAddress, FieldErrors, User, UserId, Username};
use crate::state::AppState;
use crate::store::{Guarded, SortKey, UserQuery, UserUpdate};
use axum::extract::{FromRequestParts, Path, RawQuery, State};
use axum::http::{request::Parts, HeaderMap, StatusCode};
use axum::Json;
use serde_json::{json, Value};

/// DRF's PageNumberPagination as API.md §7 configures it.
const DEFAULT_PAGE_SIZE: i64 = 20;
const MAX_PAGE_SIZE: i64 = 100;
const MAX_SEARCH_TERMS: usize = 32;

fn permission_denied() -> ApiError {
    ApiError::detail(StatusCode::FORBIDDEN, messages::PERMISSION_DENIED)
}

/// Whether `caller` may change or delete `target`. Staff administer plain users; only a
/// superuser changes or deletes another staff member or superuser. API.md says only a
/// superuser sets the flags; without this rule a staff member could still take a
/// superuser's account over by changing its email and asking for a reset.
fn may_administer(caller: &User, target: &User) -> bool {
    caller.id == target.id || caller.is_superuser || !(target.is_staff || target.is_superuser)
}

/// Whether `caller` may change or delete `target` only as long as `target` is a plain
/// user (`may_administer`'s last reason): the write must then apply only while it still
/// is, so that a promotion landing meanwhile wins (`UserUpdate::only_while_plain`).
fn only_while_plain(caller: &User, target: &User) -> bool {
    caller.id != target.id && !caller.is_superuser
}

/// The `{id}` of `/api/users/{id}/` as sent. A segment that does not percent-decode to
/// UTF-8 (`%FF`) is 404, as Django would not route it; axum's `Path` would answer a
/// plain-text 400.
pub struct IdSegment(String);

impl FromRequestParts<AppState> for IdSegment {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        Path::<String>::from_request_parts(parts, state)
            .await
            .map(|Path(id)| Self(id))
            .map_err(|_| ApiError::not_found())
    }
}

/// The user `/api/users/{id}/` names, if the caller may see it; 404 otherwise (also for
/// ids that are not numbers, as Django's `<int:pk>` would not route them). `<int:pk>` is
/// `[0-9]+`: Rust's `parse` alone would also take a sign (`+5`).
async fn visible_user(state: &AppState, caller: &AuthUser, raw_id: &str) -> Result<User, ApiError> {
    let id = Some(raw_id)
        .filter(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|id| id.parse::<i64>().ok())
        .map(UserId)
        .ok_or_else(ApiError::not_found)?;
    if !caller.user.is_staff && caller.user.id != id {
        return Err(ApiError::not_found());
    }
    state
        .store
        .user_by_id(id)
        .await?
        .ok_or_else(ApiError::not_found)
}

/// `GET /api/users/`: staff only; DRF's `{"count", "next", "previous", "results"}`.
#[utoipa::path(
    get,
    path = "/api/users/",
    operation_id = "users_list",
    tag = "users",
    summary = "List users (staff)",
    description = "A repeated parameter counts by its last value.",
    security(("bearer" = [])),
    params(
        ("page" = Option<String>, Query, pattern = r"^([1-9][0-9]*|last)$",
            description = "Page number from 1, or `last`; a page past the end is 404"),
        ("page_size" = Option<i64>, Query, minimum = 1,
            description = "Users per page, default 20; more than 100 means 100"),
        ("search" = Option<String>, Query,
            description = "Terms separated by spaces or commas; each must be in the username \
                           or email, ignoring case; at most 32 terms"),
        ("ordering" = Option<String>, Query,
            pattern = r"^(-?(id|username|email|date_joined))?(,-?(id|username|email|date_joined))*$",
            description = "Comma-separated `id`, `username`, `email`, `date_joined`, each with \
                           an optional `-` for descending; an unknown field is 400"),
        ("is_active" = Option<String>, Query, pattern = r"^(true|True|1|false|False|0)?$",
            description = "Only active (`true`) or inactive (`false`) users"),
        ("is_staff" = Option<String>, Query, pattern = r"^(true|True|1|false|False|0)?$",
            description = "Only staff (`true`) or non-staff (`false`) users"),
    ),
    responses(
        (status = 200, description = "One page of users", body = openapi::UserPage),
        (status = 401, response = openapi::Unauthorized),
        (status = 403, response = openapi::Forbidden),
        (status = 404, description = "No such page", body = openapi::Detail,
            example = json!({"detail": "Invalid page."})),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    caller: AuthUser,
    RawQuery(raw_query): RawQuery,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    if !caller.user.is_staff {
        return Err(permission_denied());
    }
    let params = QueryParams::parse(raw_query.as_deref());
    let param = |name: &str| params.get(name);

    let page_size = page_size(param("page_size"));
    let mut errors = FieldErrors::new();
    let ordering = errors.check("ordering", ordering(param("ordering").unwrap_or("")));
    let is_active = errors.check("is_active", boolean_filter(param("is_active")));
    let is_staff = errors.check("is_staff", boolean_filter(param("is_staff")));
    errors.clone().into_result()?;
    let (Some(ordering), Some(is_active), Some(is_staff)) = (ordering, is_active, is_staff) else {
        return Err(errors.into());
    };
    // DRF's SearchFilter: terms split on whitespace and commas; every term must match.
    // Repeats add nothing; past MAX_SEARCH_TERMS a query only grows (SQLite refuses an
    // expression tree past a depth of 1,000), so more is a 400, not a 500.
    let mut search: Vec<String> = Vec::new();
    for term in param("search")
        .unwrap_or("")
        .replace(['\0', ','], " ")
        .split_whitespace()
    {
        if !search.iter().any(|t| t == term) {
            search.push(term.to_owned());
        }
    }
    if search.len() > MAX_SEARCH_TERMS {
        return Err(ApiError::field(
            "search",
            messages::too_many_search_terms(MAX_SEARCH_TERMS),
        ));
    }
    // DRF: `query_params.get("page") or 1`, and "last" names the last page.
    let requested = match param("page").map(str::trim) {
        None | Some("") => Some(1),
        Some("last") => None,
        Some(raw) => Some(
            raw.parse::<i64>()
                .ok()
                .filter(|p| *p >= 1)
                .ok_or_else(invalid_page)?,
        ),
    };
    let mut query = UserQuery {
        search,
        is_active,
        is_staff,
        ordering,
        limit: page_size,
        offset: i64::MAX,
    };
    let page = match requested {
        Some(page) => page,
        None => {
            // Counting alone: the store reads no rows for an offset past the end.
            let (count, _) = state.store.list_users(&query).await?;
            ((count + page_size - 1) / page_size).max(1)
        }
    };
    query.offset = (page - 1).saturating_mul(page_size);
    let (count, results) = state.store.list_users(&query).await?;
    // Django's Paginator: an empty first page is still a page; any other page past the
    // end is not.
    let last_page = ((count + page_size - 1) / page_size).max(1);
    if page > last_page {
        return Err(invalid_page());
    }
    let link = |target: i64| page_link(&state, &headers, params.pairs(), target);
    Ok(Json(json!({
        "count": count,
        "next": (page < last_page).then(|| link(page + 1)),
        "previous": (page > 1).then(|| link(page - 1)),
        "results": results,
    })))
}

fn invalid_page() -> ApiError {
    ApiError::detail(StatusCode::NOT_FOUND, messages::INVALID_PAGE)
}

/// DRF's `_positive_int(strict=True, cutoff=max_page_size)`: zero, negatives and
/// non-numbers fall back to the default; larger values are clamped.
fn page_size(raw: Option<&str>) -> i64 {
    let digits = raw
        .map(str::trim)
        .filter(|r| !r.is_empty() && r.bytes().all(|b| b.is_ascii_digit()));
    match digits {
        // Python's int() has no upper bound: a number too long for i64 is just large.
        Some(size) => match size.parse::<i64>() {
            Ok(0) => DEFAULT_PAGE_SIZE,
            Ok(size) => size.min(MAX_PAGE_SIZE),
            Err(_) => MAX_PAGE_SIZE,
        },
        None => DEFAULT_PAGE_SIZE,
    }
}

/// `?ordering=username,-date_joined`; unknown fields are a 400 (API.md §7).
fn ordering(raw: &str) -> Result<Vec<(SortKey, bool)>, Vec<String>> {
    let mut keys = Vec::new();
    let mut unknown = Vec::new();
    for term in raw.split(',').map(str::trim).filter(|t| !t.is_empty()) {
        let (name, descending) = match term.strip_prefix('-') {
            Some(name) => (name, true),
            None => (term, false),
        };
        match SortKey::parse(name) {
            Some(key) => keys.push((key, descending)),
            None => unknown.push(term.to_owned()),
        }
    }
    if unknown.is_empty() {
        Ok(keys)
    } else {
        Err(vec![messages::invalid_ordering(&unknown)])
    }
}

/// `?is_active=` / `?is_staff=`: django-filter's boolean values; empty means no filter.
fn boolean_filter(raw: Option<&str>) -> Result<Option<bool>, Vec<String>> {
    match raw.map(str::trim) {
        None | Some("") => Ok(None),
        Some("true" | "True" | "1") => Ok(Some(true)),
        Some("false" | "False" | "0") => Ok(Some(false)),
        Some(_) => Err(vec![messages::NOT_A_BOOLEAN.to_owned()]),
    }
}

/// The absolute URL of another page of the same listing, as DRF builds it: the request's
/// parameters, sorted, with `page` replaced (and left out for page 1). The base is
/// `PUBLIC_URL` when set, else the request's (already allowed) Host.
fn page_link(
    state: &AppState,
    headers: &HeaderMap,
    params: &[(String, String)],
    page: i64,
) -> String {
    let base = super::base_url(state, headers);
    let mut kept: Vec<(String, String)> = params
        .iter()
        .filter(|(key, _)| key != "page")
        .cloned()
        .collect();
    if page > 1 {
        kept.push(("page".to_owned(), page.to_string()));
    }
    kept.sort();
    let query = serde_urlencoded::to_string(&kept).unwrap_or_default();
    if query.is_empty() {
        format!("{base}/api/users/")
    } else {
        format!("{base}/api/users/?{query}")
    }
}

/// `POST /api/users/`: staff create a user with register's validation → 201 with it.
#[utoipa::path(
    post,
    path = "/api/users/",
    operation_id = "users_create",
    tag = "users",
    summary = "Create a user (staff)",
    description = "Registration's validation. Only a superuser may set `is_staff` or \
                   `is_superuser`.",
    security(("bearer" = [])),
    request_body = openapi::UserCreate,
    responses(
        (status = 201, description = "The new user", body = User, links(
            ("Retrieve" = (operation_id = "users_retrieve", parameters(("id" = "$response.body#/id")))),
            ("PartialUpdate" = (operation_id = "users_partial_update", parameters(("id" = "$response.body#/id")))),
            ("Update" = (operation_id = "users_update", parameters(("id" = "$response.body#/id")))),
            ("Destroy" = (operation_id = "users_destroy", parameters(("id" = "$response.body#/id")))),
        )),
        (status = 401, response = openapi::Unauthorized),
        (status = 403, response = openapi::Forbidden),
    )
)]
pub async fn create(
    State(state): State<AppState>,
    caller: AuthUser,
    body: UnreadBody,
) -> Result<(StatusCode, Json<User>), ApiError> {
    if !caller.user.is_staff {
        return Err(permission_denied());
    }
    let fields = body.fields(&state).await?;
    let mut errors = FieldErrors::new();
    let is_active = errors
        .check("is_active", boolean_field(&fields, "is_active"))
        .flatten();
    let is_staff = errors
        .check("is_staff", boolean_field(&fields, "is_staff"))
        .flatten();
    let is_superuser = errors
        .check("is_superuser", boolean_field(&fields, "is_superuser"))
        .flatten();
    let mut new_user = match validated_new_user(&state, &fields, errors).await {
        Ok(user) => user,
        Err(error) => return Err(error),
    };
    if (is_staff == Some(true) || is_superuser == Some(true)) && !caller.user.is_superuser {
        return Err(permission_denied());
    }
    new_user.is_active = is_active.unwrap_or(true);
    new_user.is_staff = is_staff.unwrap_or(false);
    new_user.is_superuser = is_superuser.unwrap_or(false);
    let user = state
        .store
        .insert_user(&new_user, chrono::Utc::now())
        .await?;
    Ok((StatusCode::CREATED, Json(user)))
}

/// `GET /api/users/{id}/`.
#[utoipa::path(
    get,
    path = "/api/users/{id}/",
    operation_id = "users_retrieve",
    tag = "users",
    summary = "A user (staff, or the user itself)",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "The user's id")),
    responses(
        (status = 200, description = "The user", body = User),
        (status = 401, response = openapi::Unauthorized),
        (status = 404, response = openapi::NotFound),
    )
)]
pub async fn retrieve(
    State(state): State<AppState>,
    caller: AuthUser,
    IdSegment(id): IdSegment,
) -> Result<Json<User>, ApiError> {
    Ok(Json(visible_user(&state, &caller, &id).await?))
}

/// `PATCH /api/users/{id}/`.
#[utoipa::path(
    patch,
    path = "/api/users/{id}/",
    operation_id = "users_partial_update",
    tag = "users",
    summary = "Change a user (staff, or the user itself)",
    description = "Read-only fields sent back unchanged are ignored. Only a superuser changes \
                   another staff member or superuser. The last active superuser cannot be \
                   demoted or deactivated (400).",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "The user's id")),
    request_body = Option<openapi::UserPatch>,
    responses(
        (status = 200, description = "The changed user", body = User),
        (status = 401, response = openapi::Unauthorized),
        (status = 429, response = openapi::Throttled),
        (status = 403, response = openapi::Forbidden),
        (status = 404, response = openapi::NotFound),
    )
)]
pub async fn patch(
    state: State<AppState>,
    caller: AuthUser,
    id: IdSegment,
    body: UnreadBody,
) -> Result<Json<User>, ApiError> {
    change_by_id(state, caller, id, body, Change::Partial).await
}

/// `PUT /api/users/{id}/`: as PATCH, but `username` and `email` must be present.
#[utoipa::path(
    put,
    path = "/api/users/{id}/",
    operation_id = "users_update",
    tag = "users",
    summary = "Replace a user (staff, or the user itself)",
    description = "As PATCH, but `username` and `email` are required.",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "The user's id")),
    request_body = openapi::UserPut,
    responses(
        (status = 200, description = "The changed user", body = User),
        (status = 401, response = openapi::Unauthorized),
        (status = 429, response = openapi::Throttled),
        (status = 403, response = openapi::Forbidden),
        (status = 404, response = openapi::NotFound),
    )
)]
pub async fn put(
    state: State<AppState>,
    caller: AuthUser,
    id: IdSegment,
    body: UnreadBody,
) -> Result<Json<User>, ApiError> {
    change_by_id(state, caller, id, body, Change::Full).await
}

async fn change_by_id(
    State(state): State<AppState>,
    caller: AuthUser,
    IdSegment(id): IdSegment,
    body: UnreadBody,
    change: Change,
) -> Result<Json<User>, ApiError> {
    // DRF's order: the object (404), its permission (403), then the body (400, 415).
    let target = visible_user(&state, &caller, &id).await?;
    if !may_administer(&caller.user, &target) {
        return Err(permission_denied());
    }
    let fields = body.fields(&state).await?;
    Ok(Json(
        change_user(&state, &caller, &target, &fields, change, Flags::Writable).await?,
    ))
}

/// `DELETE /api/users/{id}/` → 204.
#[utoipa::path(
    delete,
    path = "/api/users/{id}/",
    operation_id = "users_destroy",
    tag = "users",
    summary = "Delete a user (staff, or the user itself)",
    description = "The last active superuser cannot be deleted (400).",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "The user's id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, response = openapi::Unauthorized),
        (status = 409, response = openapi::Referenced),
        (status = 403, response = openapi::Forbidden),
        (status = 404, response = openapi::NotFound),
    )
)]
pub async fn destroy(
    State(state): State<AppState>,
    caller: AuthUser,
    IdSegment(id): IdSegment,
) -> Result<StatusCode, ApiError> {
    let target = visible_user(&state, &caller, &id).await?;
    if !may_administer(&caller.user, &target) {
        return Err(permission_denied());
    }
    let plain_only = only_while_plain(&caller.user, &target);
    delete_user(&state, target.id, plain_only).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Deletes a user unless it is the last active superuser (API.md §7); with
/// `only_while_plain`, unless it is staff or superuser by then.
pub(crate) async fn delete_user(
    state: &AppState,
    id: UserId,
    only_while_plain: bool,
) -> Result<(), ApiError> {
    match state.store.delete_user(id, only_while_plain).await? {
        Guarded::Done(()) => Ok(()),
        // A deletion re-enters no password: `PasswordChanged` here is a refusal by
        // `only_while_plain` of a user promoted, and demoted again by the time the
        // refusal was read (PostgreSQL), as in `change_user`.
        Guarded::Privileged | Guarded::PasswordChanged => Err(permission_denied()),
        Guarded::NotFound => Err(ApiError::not_found()),
        Guarded::LastSuperuser => Err(ApiError::detail(
            StatusCode::BAD_REQUEST,
            messages::LAST_SUPERUSER_DELETED,
        )),
    }
}

/// PUT (every required field present) or PATCH (any subset).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Change {
    Full,
    Partial,
}

/// Whether `is_active`, `is_staff` and `is_superuser` may be written on this route
/// (`/api/users/{id}/`) or are read-only (`/api/users/me/`, API.md §6).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flags {
    Writable,
    ReadOnly,
}

/// Applies `fields` to `target` on behalf of `caller`, with every rule of API.md §6–§7
/// but who may change `target` at all (`may_administer`), which the caller has checked.
pub(crate) async fn change_user(
    state: &AppState,
    caller: &AuthUser,
    target: &User,
    fields: &Fields,
    change: Change,
    flags: Flags,
) -> Result<User, ApiError> {
    let mut errors = FieldErrors::new();
    let mut update = UserUpdate::default();
    if change == Change::Full || fields.contains("username") {
        let parsed = fields.required_text("username", true).and_then(|s| {
            // A name sent back exactly as stored is no change, even one stored before
            // NFKC applied (a row Django wrote): it stays as it is, as DRF would save it.
            if s.trim() == target.username {
                Ok(None)
            } else {
                Username::parse(&s).map(Some)
            }
        });
        update.username = errors.check("username", parsed).flatten();
    }
    if change == Change::Full || fields.contains("email") {
        let parsed = fields
            .required_text("email", true)
            .and_then(|s| EmailAddress::parse(&s));
        update.email = errors.check("email", parsed);
    }
    update.first_name = errors
        .check("first_name", name_field(fields, "first_name"))
        .flatten();
    update.last_name = errors
        .check("last_name", name_field(fields, "last_name"))
        .flatten();
    if flags == Flags::Writable {
        update.is_active = errors
            .check("is_active", boolean_field(fields, "is_active"))
            .flatten();
        update.is_staff = errors
            .check("is_staff", boolean_field(fields, "is_staff"))
            .flatten();
        update.is_superuser = errors
            .check("is_superuser", boolean_field(fields, "is_superuser"))
            .flatten();
    }
    errors.into_result()?;
    update.only_while_plain = only_while_plain(&caller.user, target);

    // A flag sent back as it is changes nothing and needs no permission.
    let changed = |new: Option<bool>, old: bool| new.filter(|value| *value != old);
    update.is_active = changed(update.is_active, target.is_active);
    update.is_staff = changed(update.is_staff, target.is_staff);
    update.is_superuser = changed(update.is_superuser, target.is_superuser);
    if (update.is_staff.is_some() || update.is_superuser.is_some()) && !caller.user.is_superuser {
        return Err(permission_denied());
    }
    if update.is_active.is_some() && !caller.user.is_staff {
        return Err(permission_denied());
    }

    // API.md §6–§7: users changing their own username or email, the keys of the account,
    // prove it with their current password; staff changing another user's do not.
    let changes_identity = update
        .username
        .as_ref()
        .is_some_and(|u| u.as_str() != target.username)
        || update
            .email
            .as_ref()
            .is_some_and(|e| e.as_str() != target.email);
    let write = |password_unchanged: Option<String>| {
        let update = UserUpdate {
            password_unchanged,
            ..update.clone()
        };
        async move {
            let now = chrono::Utc::now();
            Ok::<_, ApiError>(state.store.update_user(target.id, &update, now).await?)
        }
    };
    let written = if changes_identity && caller.user.id == target.id {
        let mut proven = prove_current_password(state, caller, fields).await?;
        let written = proven
            .write_while_stored(|verified| {
                let written = write(Some(verified));
                async move {
                    match written.await? {
                        // A reset landed while the password was checked.
                        Guarded::PasswordChanged => Ok(None),
                        other => Ok(Some(other)),
                    }
                }
            })
            .await;
        proven.finish(written).await?
    } else {
        Some(match write(None).await? {
            // No password was asked: the write was refused by `only_while_plain`, for a
            // user promoted meanwhile (and, on PostgreSQL, demoted again by the time the
            // refusal was read).
            Guarded::PasswordChanged => Guarded::Privileged,
            other => other,
        })
    };
    match written {
        Some(Guarded::Done(user)) => Ok(user),
        Some(Guarded::NotFound) => Err(ApiError::not_found()),
        Some(Guarded::Privileged) => Err(permission_denied()),
        Some(Guarded::LastSuperuser) if update.is_active == Some(false) => Err(ApiError::field(
            "is_active",
            messages::LAST_SUPERUSER_DEACTIVATED,
        )),
        Some(Guarded::LastSuperuser) => Err(ApiError::field(
            "is_superuser",
            messages::LAST_SUPERUSER_DEMOTED,
        )),
        // The password re-entered is not the user's any more: a reset landed while it
        // was checked.
        None | Some(Guarded::PasswordChanged) => Err(ApiError::field(
            "current_password",
            messages::INVALID_PASSWORD,
        )),
    }
}

/// `first_name` / `last_name`: optional, may be blank, at most 150 characters; trimmed
/// as DRF trims.
pub(crate) fn name_field(fields: &Fields, name: &str) -> Result<Option<String>, Vec<String>> {
    match fields.text(name)? {
        None => Ok(None),
        Some(s) if s.trim().chars().count() > 150 => Err(vec![messages::NAME_TOO_LONG.to_owned()]),
        Some(s) => Ok(Some(s.trim().to_owned())),
    }
}

/// DRF's `BooleanField`: JSON booleans, and the strings and numbers forms send.
fn boolean_field(fields: &Fields, name: &str) -> Result<Option<bool>, Vec<String>> {
    match fields.get(name) {
        None => Ok(None),
        Some(Value::Bool(value)) => Ok(Some(*value)),
        Some(Value::Number(n)) if n.as_i64() == Some(1) => Ok(Some(true)),
        Some(Value::Number(n)) if n.as_i64() == Some(0) => Ok(Some(false)),
        Some(Value::String(s)) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "t" | "yes" | "y" | "on" | "1" => Ok(Some(true)),
            "false" | "f" | "no" | "n" | "off" | "0" => Ok(Some(false)),
            _ => Err(vec![messages::NOT_A_BOOLEAN.to_owned()]),
        },
        Some(Value::Null) => Err(vec![messages::NULL.to_owned()]),
        Some(_) => Err(vec![messages::NOT_A_BOOLEAN.to_owned()]),
    }
}

/// `current_password` must be present and the caller's: 400 on that field otherwise.
async fn prove_current_password(
    state: &AppState,
    caller: &AuthUser,
    fields: &Fields,
) -> Result<ProvenPassword, ApiError> {
    const FIELD: &str = "current_password";
    let given = fields
        .required_text(FIELD, false)
        .map_err(|messages| ApiError::field_messages(FIELD, messages))?;
    prove_password(state, caller, given)
        .await?
        .ok_or_else(|| ApiError::field(FIELD, messages::INVALID_PASSWORD))
}
