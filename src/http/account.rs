//! The signed-in user's own account: register, read and change the profile, change the
//! password, delete the account (API.md §4, §6). The rules for changing a user live in
//! `users.rs`, shared with staff administration.

use super::auth::{verify_guarded, LoginGuard, ProvenPassword};
use super::error::ApiError;
use super::extract::{AuthUser, Fields};
use super::openapi;
use super::users::{change_user, delete_user, name_field, Change, Flags};
use crate::auth::lockout;
use crate::auth::passwords::Verified;
use crate::domain::password::UserAttributes;
use crate::domain::{messages, EmailAddress, FieldErrors, User, Username};
use crate::state::AppState;
use crate::store::NewUser;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use secrecy::SecretString;
use serde_json::{json, Value};

/// Reads and checks `username`, `email`, `password` (and optional `first_name`,
/// `last_name`) as registration does, adding to `errors` found earlier; hashes the
/// password. The flags of the result are those of a plain user.
pub(crate) async fn validated_new_user(
    state: &AppState,
    fields: &Fields,
    mut errors: FieldErrors,
) -> Result<NewUser, ApiError> {
    let username = errors.check(
        "username",
        fields
            .required_text("username", true)
            .and_then(|s| Username::parse(&s)),
    );
    let email = errors.check(
        "email",
        fields
            .required_text("email", true)
            .and_then(|s| EmailAddress::parse(&s)),
    );
    let first_name = errors
        .check("first_name", name_field(fields, "first_name"))
        .flatten();
    let last_name = errors
        .check("last_name", name_field(fields, "last_name"))
        .flatten();
    let password = errors.check("password", fields.required_text("password", false));
    if let Some(password) = &password {
        let attributes = UserAttributes {
            username: username.as_ref().map(Username::as_str),
            email: email.as_ref().map(EmailAddress::as_str),
            first_name: first_name.as_deref(),
            last_name: last_name.as_deref(),
        };
        errors.check("password", state.policy.validate(password, attributes));
    }
    errors.clone().into_result()?;
    let (Some(username), Some(email), Some(password)) = (username, email, password) else {
        return Err(errors.into());
    };
    Ok(NewUser {
        username,
        email,
        password_hash: state.hasher.hash(SecretString::from(password)).await?,
        first_name: first_name.unwrap_or_default(),
        last_name: last_name.unwrap_or_default(),
        is_active: true,
        is_staff: false,
        is_superuser: false,
    })
}

/// `POST /api/register/` → 201 `{"message", "username", "email"}`.
#[utoipa::path(
    post,
    path = "/api/register/",
    operation_id = "register",
    tag = "auth",
    summary = "Create an account",
    description = "Every field that fails is named, with every rule it failed.",
    request_body = openapi::RegisterBody,
    responses(
        (status = 201, description = "Registered", body = openapi::Registered, links(
            ("Login" = (operation_id = "login", request_body = json!({
                "username": "$response.body#/username",
                "password": "$request.body#/password"
            }))),
        )),
        (status = 429, response = openapi::Throttled),
    )
)]
pub async fn register(
    State(state): State<AppState>,
    fields: Fields,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let new_user = validated_new_user(&state, &fields, FieldErrors::new()).await?;
    let user = state
        .store
        .insert_user(&new_user, chrono::Utc::now())
        .await?;
    crate::http::access_log::record_user_id(user.id);
    let body =
        json!({"message": messages::REGISTERED, "username": user.username, "email": user.email});
    Ok((StatusCode::CREATED, Json(body)))
}

/// `DELETE /api/delete_account/` → 200 with the seed's message.
#[utoipa::path(
    delete,
    path = "/api/delete_account/",
    operation_id = "delete_account",
    tag = "account",
    summary = "Delete the signed-in user's account",
    description = "Removes the user and everything that belongs to it; every token the user \
                   held stops working at once. The last active superuser cannot be deleted (400).",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Deleted", body = openapi::Message,
            example = json!({"message": "Account deleted successfully"})),
        (status = 401, response = openapi::Unauthorized),
        (status = 409, response = openapi::Referenced),
    )
)]
pub async fn delete_account(
    State(state): State<AppState>,
    auth: AuthUser,
) -> Result<Json<Value>, ApiError> {
    delete_user(&state, auth.user.id, false).await?;
    Ok(Json(json!({"message": messages::ACCOUNT_DELETED})))
}

/// `DELETE /api/users/me/` → 204, as DRF's `destroy` answers.
#[utoipa::path(
    delete,
    path = "/api/users/me/",
    operation_id = "me_destroy",
    tag = "account",
    summary = "Delete the signed-in user's account (as `/api/delete_account/`)",
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, response = openapi::Unauthorized),
        (status = 409, response = openapi::Referenced),
    )
)]
pub async fn me_delete(
    State(state): State<AppState>,
    auth: AuthUser,
) -> Result<StatusCode, ApiError> {
    delete_user(&state, auth.user.id, false).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/users/me/`.
#[utoipa::path(
    get,
    path = "/api/users/me/",
    operation_id = "me_retrieve",
    tag = "account",
    summary = "The signed-in user",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The signed-in user", body = User, links(
            ("User" = (operation_id = "users_retrieve", parameters(("id" = "$response.body#/id")))),
        )),
        (status = 401, response = openapi::Unauthorized),
    )
)]
pub async fn me_get(auth: AuthUser) -> Json<User> {
    Json(auth.user)
}

/// `PATCH /api/users/me/`: change any of `username`, `email`, `first_name`, `last_name`;
/// the flags are read-only here (API.md §6).
#[utoipa::path(
    patch,
    path = "/api/users/me/",
    operation_id = "me_partial_update",
    tag = "account",
    summary = "Change the signed-in user's profile",
    description = "Changing `username` or `email` needs `current_password` (400 on that field \
                   if missing or wrong). The flags and dates are read-only here.",
    security(("bearer" = [])),
    request_body = Option<openapi::ProfilePatch>,
    responses(
        (status = 200, description = "The changed user", body = User),
        (status = 401, response = openapi::Unauthorized),
        (status = 429, response = openapi::Throttled),
    )
)]
pub async fn me_patch(
    State(state): State<AppState>,
    auth: AuthUser,
    fields: Fields,
) -> Result<Json<User>, ApiError> {
    let user = change_user(
        &state,
        &auth,
        &auth.user,
        &fields,
        Change::Partial,
        Flags::ReadOnly,
    )
    .await?;
    Ok(Json(user))
}

/// `PUT /api/users/me/`: as PATCH, but `username` and `email` must be present (DRF's
/// full update of a serializer whose required fields they are).
#[utoipa::path(
    put,
    path = "/api/users/me/",
    operation_id = "me_update",
    tag = "account",
    summary = "Replace the signed-in user's profile",
    description = "As PATCH, but `username` and `email` are required.",
    security(("bearer" = [])),
    request_body = openapi::ProfilePut,
    responses(
        (status = 200, description = "The changed user", body = User),
        (status = 401, response = openapi::Unauthorized),
        (status = 429, response = openapi::Throttled),
    )
)]
pub async fn me_put(
    State(state): State<AppState>,
    auth: AuthUser,
    fields: Fields,
) -> Result<Json<User>, ApiError> {
    let user = change_user(
        &state,
        &auth,
        &auth.user,
        &fields,
        Change::Full,
        Flags::ReadOnly,
    )
    .await?;
    Ok(Json(user))
}

/// `given`, proved to be the signed-in user's password (one Argon2 verification) under
/// the login's brute-force guard: a wrong guess counts as a failed login to the account
/// from this client, and a client held back gets 429 before anything is checked.
/// `None` for a wrong password. What the password unlocks is then written through the
/// proof (`ProvenPassword::write_while_stored`), so a reset landing meanwhile wins, and
/// the proof finished (`ProvenPassword::finish`) by what came of it.
pub(crate) async fn prove_password(
    state: &AppState,
    auth: &AuthUser,
    given: String,
) -> Result<Option<ProvenPassword>, ApiError> {
    let stored = state
        .store
        .credentials_by_id(auth.user.id)
        .await?
        .map(|c| c.password_hash);
    let account = lockout::user_key(auth.user.id);
    let guard = LoginGuard::new(state, account, auth.client.as_ref());
    let verdict = verify_guarded(state, guard.as_ref(), given.clone(), stored.clone()).await?;
    Ok(match (verdict, stored) {
        (Verified::Yes { .. }, Some(stored)) => {
            let given = SecretString::from(given);
            Some(ProvenPassword::new(
                state,
                auth.user.id,
                given,
                stored,
                guard,
            ))
        }
        _ => None,
    })
}

/// `POST /api/change_password/` `{"old_password", "new_password"}`: every other session
/// of the user ends; the one making the change stays signed in.
#[utoipa::path(
    post,
    path = "/api/change_password/",
    operation_id = "change_password",
    tag = "account",
    summary = "Change the signed-in user's password",
    description = "Every other session of the user ends; this one stays signed in.",
    security(("bearer" = [])),
    request_body = openapi::ChangePasswordBody,
    responses(
        (status = 200, description = "Changed", body = openapi::Message,
            example = json!({"message": "Password changed successfully"})),
        (status = 401, response = openapi::Unauthorized),
        (status = 429, response = openapi::Throttled),
    )
)]
pub async fn change_password(
    State(state): State<AppState>,
    auth: AuthUser,
    fields: Fields,
) -> Result<Json<Value>, ApiError> {
    let mut errors = FieldErrors::new();
    let old = errors.check("old_password", fields.required_text("old_password", false));
    let new = errors.check("new_password", fields.required_text("new_password", false));
    if let Some(new) = &new {
        let user = &auth.user;
        let attributes = UserAttributes {
            username: Some(&user.username),
            email: Some(&user.email),
            first_name: Some(&user.first_name),
            last_name: Some(&user.last_name),
        };
        errors.check("new_password", state.policy.validate(new, attributes));
    }
    let mut proven = None;
    if let Some(old) = old {
        proven = prove_password(&state, &auth, old).await?;
        if proven.is_none() {
            errors.add("old_password", messages::INVALID_PASSWORD);
        }
    }
    let Some(mut proven) = proven else {
        return Err(errors.into());
    };

    let changed = async {
        // The old password was right: a refused new one settles the guard too (`finish`).
        let Some(new) = new.filter(|_| errors.is_empty()) else {
            return Err(errors.into());
        };
        let hash = state.hasher.hash(SecretString::from(new)).await?;
        let keep = auth.claims.sid.as_deref();
        let set = proven
            .write_while_stored(|replacing| {
                let (state, hash) = (&state, &hash);
                async move {
                    let now = chrono::Utc::now();
                    let set = (state.store)
                        .set_password(auth.user.id, hash, Some(&replacing), keep, now)
                        .await?;
                    Ok(set.then_some(()))
                }
            })
            .await?;
        if set.is_some() {
            // The client proved the password it has just replaced.
            proven.hash = hash;
        }
        Ok(set)
    }
    .await;
    if proven.finish(changed).await?.is_none() {
        // A reset or another change landed while the new password was hashed: the old
        // password is not the password any more.
        return Err(ApiError::field("old_password", messages::INVALID_PASSWORD));
    }
    // Clients that knew the old password are not known to the account any more.
    state
        .store
        .forget_login_history(&crate::auth::lockout::user_key(auth.user.id))
        .await?;
    Ok(Json(json!({"message": messages::PASSWORD_CHANGED})))
}
