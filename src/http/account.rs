//! The signed-in user's own account: register, read and change the profile, change the
//! password, delete the account (API.md §4, §6).

use super::error::ApiError;
use super::extract::{AuthUser, Fields};
use crate::auth::passwords::Verified;
use crate::domain::password::UserAttributes;
use crate::domain::{messages, EmailAddress, FieldErrors, User, Username};
use crate::state::AppState;
use crate::store::{NewUser, ProfileUpdate};
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use secrecy::SecretString;
use serde_json::{json, Value};

/// `POST /api/register/` → 201 `{"message", "username", "email"}`.
pub async fn register(
    State(state): State<AppState>,
    fields: Fields,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let mut errors = FieldErrors::new();
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
    let password = errors.check("password", fields.required_text("password", false));
    if let Some(password) = &password {
        let attributes = UserAttributes {
            username: username.as_ref().map(Username::as_str),
            email: email.as_ref().map(EmailAddress::as_str),
            ..Default::default()
        };
        errors.check("password", state.policy.validate(password, attributes));
    }
    errors.clone().into_result()?;
    let (Some(username), Some(email), Some(password)) = (username, email, password) else {
        return Err(errors.into());
    };

    let password_hash = state.hasher.hash(SecretString::from(password)).await?;
    let new_user = NewUser {
        username,
        email,
        password_hash,
        first_name: String::new(),
        last_name: String::new(),
        is_staff: false,
        is_superuser: false,
    };
    let user = state
        .store
        .insert_user(&new_user, chrono::Utc::now())
        .await?;
    tracing::Span::current().record("user_id", user.id.0);
    Ok((
        StatusCode::CREATED,
        Json(
            json!({"message": messages::REGISTERED, "username": user.username, "email": user.email}),
        ),
    ))
}

/// `DELETE /api/delete_account/` → 200 with the seed's message.
pub async fn delete_account(
    State(state): State<AppState>,
    auth: AuthUser,
) -> Result<Json<Value>, ApiError> {
    state.store.delete_user(auth.user.id).await?;
    Ok(Json(json!({"message": messages::ACCOUNT_DELETED})))
}

/// `DELETE /api/users/me/` → 204, as DRF's `destroy` answers.
pub async fn me_delete(
    State(state): State<AppState>,
    auth: AuthUser,
) -> Result<StatusCode, ApiError> {
    state.store.delete_user(auth.user.id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/users/me/`.
pub async fn me_get(auth: AuthUser) -> Json<User> {
    Json(auth.user)
}

/// `PATCH /api/users/me/`: change any of `username`, `email`, `first_name`, `last_name`.
pub async fn me_patch(
    state: State<AppState>,
    auth: AuthUser,
    fields: Fields,
) -> Result<Json<User>, ApiError> {
    update_own_profile(state, auth, fields, false).await
}

/// `PUT /api/users/me/`: as PATCH, but `username` and `email` must be present (DRF's
/// full update of a serializer whose required fields they are).
pub async fn me_put(
    state: State<AppState>,
    auth: AuthUser,
    fields: Fields,
) -> Result<Json<User>, ApiError> {
    update_own_profile(state, auth, fields, true).await
}

async fn update_own_profile(
    State(state): State<AppState>,
    auth: AuthUser,
    fields: Fields,
    full: bool,
) -> Result<Json<User>, ApiError> {
    let mut errors = FieldErrors::new();
    let mut update = ProfileUpdate::default();
    let current = &auth.user;

    if full || fields.contains("username") {
        update.username = errors.check(
            "username",
            fields
                .required_text("username", true)
                .and_then(|s| Username::parse(&s)),
        );
    }
    if full || fields.contains("email") {
        update.email = errors.check(
            "email",
            fields
                .required_text("email", true)
                .and_then(|s| EmailAddress::parse(&s)),
        );
    }
    for (name, slot) in [
        ("first_name", &mut update.first_name),
        ("last_name", &mut update.last_name),
    ] {
        *slot = errors.check(name, name_field(&fields, name)).flatten();
    }
    errors.clone().into_result()?;

    // API.md §6: changing the username or email, the keys of the account, needs the
    // current password; sending the same values back does not.
    let changes_identity = update
        .username
        .as_ref()
        .is_some_and(|u| u.as_str() != current.username)
        || update
            .email
            .as_ref()
            .is_some_and(|e| e.as_str() != current.email);
    if changes_identity {
        verify_current_password(&state, &auth, &fields, "current_password").await?;
    }
    let user = state
        .store
        .update_profile(current.id, &update)
        .await?
        .ok_or_else(ApiError::not_found)?;
    Ok(Json(user))
}

/// `first_name` / `last_name`: optional, may be blank, at most 150 characters; trimmed
/// as DRF trims.
fn name_field(fields: &Fields, name: &str) -> Result<Option<String>, Vec<String>> {
    match fields.text(name)? {
        None => Ok(None),
        Some(s) if s.trim().chars().count() > 150 => Err(vec![messages::NAME_TOO_LONG.to_owned()]),
        Some(s) => Ok(Some(s.trim().to_owned())),
    }
}

/// Checks the password in `field` against the signed-in user's: 400 on that field when it
/// is missing or wrong.
async fn verify_current_password(
    state: &AppState,
    auth: &AuthUser,
    fields: &Fields,
    field: &str,
) -> Result<(), ApiError> {
    let given = fields.required_text(field, false).map_err(|m| {
        let mut errors = FieldErrors::new();
        errors.add_all(field, m);
        ApiError::Invalid(errors)
    })?;
    if password_matches(state, auth, given).await? {
        Ok(())
    } else {
        Err(ApiError::field(field, messages::INVALID_PASSWORD))
    }
}

async fn password_matches(
    state: &AppState,
    auth: &AuthUser,
    given: String,
) -> Result<bool, ApiError> {
    let stored = state
        .store
        .credentials_by_id(auth.user.id)
        .await?
        .map(|c| c.password_hash);
    Ok(matches!(
        state
            .hasher
            .verify(SecretString::from(given), stored)
            .await?,
        Verified::Yes { .. }
    ))
}

/// `POST /api/change_password/` `{"old_password", "new_password"}`: every other session
/// of the user ends; the one making the change stays signed in.
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
    if let Some(old) = old {
        if !password_matches(&state, &auth, old).await? {
            errors.add("old_password", messages::INVALID_PASSWORD);
        }
    }
    errors.clone().into_result()?;
    let Some(new) = new else {
        return Err(errors.into());
    };

    let hash = state.hasher.hash(SecretString::from(new)).await?;
    state
        .store
        .set_password(
            auth.user.id,
            &hash,
            auth.claims.sid.as_deref(),
            chrono::Utc::now(),
        )
        .await?;
    Ok(Json(json!({"message": messages::PASSWORD_CHANGED})))
}
