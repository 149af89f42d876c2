//! The token endpoints: login, refresh (with rotation and reuse detection), verify and
//! logout (API.md §4, §5). Sessions are rows in `gatehouse_session`; see `store/`.

use super::client::ClientIp;
use super::error::ApiError;
use super::extract::Fields;
use super::openapi;
use crate::auth::lockout;
use crate::auth::passwords::Verified;
use crate::auth::{random_hex_id, Claims, TokenPair, TokenType};
use crate::domain::username::MAX_USERNAME_CHARS;
use crate::domain::{messages, FieldErrors, UserId};
use crate::state::AppState;
use crate::store::{Exchange, Rotation, SpentToken};
use axum::extract::State;
use axum::http::StatusCode;
use axum::Extension;
use axum::Json;
use secrecy::SecretString;
use serde_json::{json, Value};

/// `POST /api/login/` — SimpleJWT's `TokenObtainPairView`, behind the brute-force
/// guard of `auth::lockout`: an attempt the guard holds back gets 429 with `Retry-After`
/// before its password is looked at.
#[utoipa::path(
    post,
    path = "/api/login/",
    operation_id = "login",
    tag = "auth",
    summary = "Log in: a new session's access and refresh tokens",
    description = "An unknown user, a wrong password and an inactive user get the same 401, \
                   in the same time. The username is matched ignoring case.",
    request_body = openapi::LoginBody,
    responses(
        (status = 200, description = "Signed in", body = TokenPair, links(
            ("TokenRefresh" = (operation_id = "token_refresh", request_body = json!({"refresh": "$response.body#/refresh"}))),
            ("TokenVerify" = (operation_id = "token_verify", request_body = json!({"token": "$response.body#/access"}))),
            ("Logout" = (operation_id = "logout", request_body = json!({"refresh": "$response.body#/refresh"}))),
        )),
        (status = 401, response = openapi::Unauthorized),
        (status = 429, response = openapi::Throttled),
    )
)]
pub async fn login(
    State(state): State<AppState>,
    client: Option<Extension<ClientIp>>,
    fields: Fields,
) -> Result<Json<TokenPair>, ApiError> {
    let mut errors = FieldErrors::new();
    let username = errors.check("username", fields.required_text("username", true));
    let password = errors.check("password", fields.required_text("password", false));
    let (Some(username), Some(password)) = (username, password) else {
        return Err(errors.into());
    };
    let username = username.trim();
    let normalized = crate::domain::username::normalize(username);
    if username.chars().count() > MAX_USERNAME_CHARS
        && normalized.chars().count() > MAX_USERNAME_CHARS
    {
        // No account has such a name; nothing to count or to hash.
        return Err(ApiError::login_failed());
    }

    // The name as typed first, as Django's `authenticate` looks it up, so a row Django
    // stored unnormalised is found by its own spelling; then its NFKC form, the form
    // gatehouse stores and compares names in (`Username::parse`), so `ａdmin` finds
    // `admin` as `ADMIN` does: login matches names as uniqueness does. An unknown name
    // is counted by that form too, so its variants add up as an account's do.
    let mut found = state.store.credentials_by_username(username).await?;
    if found.is_none() && normalized != username {
        found = state.store.credentials_by_username(&normalized).await?;
    }
    let account = lockout::account_key(found.as_ref().map(|c| c.user.id), &normalized);
    let guard = LoginGuard::new(&state, account, client.as_ref().map(|Extension(c)| c));

    // API.md §4: an unknown user is verified against a dummy hash, so both answers cost
    // the same; an inactive user's password is checked too, for the same reason.
    let stored_hash = found.as_ref().map(|c| c.password_hash.clone());
    let verdict = verify_guarded(&state, guard.as_ref(), password.clone(), stored_hash).await?;
    let (credentials, outdated) = match (found, verdict) {
        (Some(credentials), Verified::Yes { outdated }) if credentials.user.is_active => {
            (credentials, outdated)
        }
        _ => return Err(ApiError::login_failed()),
    };
    let id = credentials.user.id;
    let password = SecretString::from(password);
    let mut proven = ProvenPassword::new(&state, id, password, credentials.password_hash, guard);
    let signed_in = async {
        if outdated {
            let hash = state.hasher.hash(proven.password()).await?;
            if state
                .store
                .upgrade_password_hash(id, &proven.hash, &hash)
                .await?
            {
                proven.hash = hash;
            } else if !proven.matches_again().await? {
                // The hash changed meanwhile, and not by another login's upgrade (a
                // double-clicked button) or Django's re-hash, after which the password
                // would still match: by a real change.
                return Ok(None);
            }
        }
        // The session starts only if the password verified above is still the user's,
        // and the user still active: a reset or deactivation that landed while the hash
        // was computed wins, and the old password opens nothing.
        let sid = random_hex_id();
        let (pair, refresh_jti) = state.tokens.issue_pair(id, &sid);
        proven
            .write_while_stored(|verified| {
                let (state, sid, refresh_jti) = (&state, &sid, &refresh_jti);
                async move {
                    let now = chrono::Utc::now();
                    let started = state
                        .store
                        .start_session(id, sid, refresh_jti, &verified, now)
                        .await?;
                    Ok(started.then_some(()))
                }
            })
            .await
            .map(|started| started.map(|()| pair))
    }
    .await;
    let Some(pair) = proven.finish(signed_in).await? else {
        return Err(ApiError::login_failed());
    };
    crate::http::access_log::record_user_id(id);
    Ok(Json(pair))
}

/// The brute-force guard (README, "Throttles and brute-force protection") around one
/// check of a password: a login's, or a signed-in user's re-entry of their own (so that
/// a stolen token cannot guess the password without limit, nor keep the hash pool busy).
/// Whose failures the check counts toward: the account (`lockout::account_key`) and the
/// client's address.
pub(crate) struct LoginGuard {
    account: String,
    client: String,
    now: i64,
}

impl LoginGuard {
    /// `None` when every throttle is off (`GATEHOUSE_RATE_LIMIT=off`).
    pub(crate) fn new(
        state: &AppState,
        account: String,
        client: Option<&ClientIp>,
    ) -> Option<Self> {
        state.config.rate_limit.then(|| LoginGuard {
            account,
            client: client.map_or_else(|| "-".to_owned(), ClientIp::throttle_key),
            now: chrono::Utc::now().timestamp(),
        })
    }

    /// The attempt checked no password, or the right one to no effect: it is taken back
    /// from the counts (`Store::undo_login_attempt`). Logged, not answered, if that fails:
    /// the request's own answer matters more.
    async fn take_back(&self, state: &AppState) {
        let undone = (state.store)
            .undo_login_attempt(&self.account, &self.client)
            .await;
        if let Err(error) = undone {
            tracing::warn!(error = %error, "could not take a login attempt back");
        }
    }

    /// The password was right: clears this client's count and makes it known
    /// (`Store::login_succeeded`), unless the user's stored hash is no longer `hash`
    /// (false). Logged, not answered, if that fails: what the password opened may have
    /// been written already, and must not turn into an error.
    async fn succeeded(&self, state: &AppState, user_id: UserId, hash: &str) -> bool {
        let settled = (state.store)
            .login_succeeded(&self.account, &self.client, self.now, (user_id, hash))
            .await;
        settled.unwrap_or_else(|error| {
            tracing::warn!(error = %error, "could not clear the client's login count");
            true
        })
    }
}

/// A password that matched its user's stored hash under the brute-force guard, and is
/// about to open something: a session, a new password, a new email. What it opens is
/// written only while the hash it matched is still stored, and the guard is settled
/// only once that is decided (`finish`): a write refused because the password stopped
/// being the user's (a reset or change landed meanwhile) leaves the attempt counted as
/// the failed guess it then is, and does not make the client known to the account.
#[must_use = "finish it: else the attempt is taken back, neither a failure nor a success"]
pub(crate) struct ProvenPassword {
    state: AppState,
    user_id: UserId,
    password: SecretString,
    /// The stored hash the password matched.
    pub(crate) hash: String,
    /// `None` once settled (or with every throttle off).
    guard: Option<LoginGuard>,
}

impl ProvenPassword {
    pub(crate) fn new(
        state: &AppState,
        user_id: UserId,
        password: SecretString,
        hash: String,
        guard: Option<LoginGuard>,
    ) -> Self {
        Self {
            state: state.clone(),
            user_id,
            password,
            hash,
            guard,
        }
    }

    /// The password, to hash it anew.
    pub(crate) fn password(&self) -> SecretString {
        self.password.clone()
    }

    /// After a write conditional on `self.hash` was refused: whether the password matches
    /// the hash stored now. It does when the stored hash was only computed again (another
    /// login's upgrade of a Django hash, or Django's re-hash while both serve the
    /// database), and then `self.hash` becomes that one; it does not after a real change.
    pub(crate) async fn matches_again(&mut self) -> Result<bool, ApiError> {
        let current = self.state.store.credentials_by_id(self.user_id).await?;
        let Some(current) = current
            .map(|c| c.password_hash)
            .filter(|current| *current != self.hash)
        else {
            // Gone, or the same hash: the write was refused for another reason.
            return Ok(false);
        };
        let verdict = (self.state.hasher)
            .verify(self.password.clone(), Some(current.clone()))
            .await?;
        match verdict {
            Verified::Yes { .. } => {
                self.hash = current;
                Ok(true)
            }
            Verified::No => Ok(false),
        }
    }

    /// Runs `write` with the stored hash the password matched: the write must apply only
    /// while that hash is stored, and answer `None` when it is not. Refused after a mere
    /// re-hash (`matches_again`), it is tried once more with the new hash.
    pub(crate) async fn write_while_stored<T, F, Fut>(
        &mut self,
        mut write: F,
    ) -> Result<Option<T>, ApiError>
    where
        F: FnMut(String) -> Fut,
        Fut: std::future::Future<Output = Result<Option<T>, ApiError>>,
    {
        if let Some(written) = write(self.hash.clone()).await? {
            return Ok(Some(written));
        }
        if self.matches_again().await? {
            return write(self.hash.clone()).await;
        }
        Ok(None)
    }

    /// Settles the guard by what the password led to, and passes `outcome` on.
    /// - `Some`, or a refusal of the request's other content (a 4xx, such as a name
    ///   already taken or a new password too weak): the password was the user's, so the
    ///   client's count clears and the client is known to the account, provided the
    ///   stored hash is still `self.hash` (`Store::login_succeeded`; a write that
    ///   replaced the password sets `self.hash` to the new one first): a 4xx can be
    ///   decided before any write checks the hash, and a password a change made stale
    ///   meanwhile must not make its client known again. A mere re-hash meanwhile
    ///   (`matches_again`) is no change: the password is checked against the new hash,
    ///   and settles as proved if it matches.
    /// - `None`: the password was not the user's any more; the attempt stays counted.
    /// - A server error (a busy hash pool, the database): the password was right but
    ///   nothing came of it, so the attempt is taken back, neither counted nor a
    ///   success. So is an attempt whose request is dropped before it is finished (the
    ///   request deadline, or a client that hung up).
    ///
    /// The settling runs in a task of its own: a request dropped while it runs does not
    /// leave it half done.
    pub(crate) async fn finish<T>(
        mut self,
        outcome: Result<Option<T>, ApiError>,
    ) -> Result<Option<T>, ApiError> {
        let Some(guard) = self.guard.take() else {
            return outcome;
        };
        let proved = match &outcome {
            Ok(None) => return outcome,
            Err(error) if error.is_server_error() => false,
            Ok(Some(_)) | Err(_) => true,
        };
        // (With its guard taken, `Drop` leaves the moved proof alone.)
        let mut proven = self;
        let settling = tokio::spawn(async move {
            let state = proven.state.clone();
            if !proved {
                return guard.take_back(&state).await;
            }
            if !guard.succeeded(&state, proven.user_id, &proven.hash).await
                && matches!(proven.matches_again().await, Ok(true))
            {
                guard.succeeded(&state, proven.user_id, &proven.hash).await;
            }
        });
        // The request's answer stands whatever became of the settling (it logs its errors).
        let _ = settling.await;
        outcome
    }
}

impl Drop for ProvenPassword {
    fn drop(&mut self) {
        // Not finished: the request was dropped while the password was being used.
        if let Some(guard) = self.guard.take() {
            let state = self.state.clone();
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(async move { guard.take_back(&state).await });
            }
        }
    }
}

/// Verifies `password` against `stored` under `guard`: held back with 429 before any
/// hashing if the guard says so, else counted as a failure until the proof is finished
/// (`ProvenPassword::finish`).
pub(crate) async fn verify_guarded(
    state: &AppState,
    guard: Option<&LoginGuard>,
    password: String,
    stored: Option<String>,
) -> Result<Verified, ApiError> {
    if let Some(guard) = guard {
        // Checked and counted as a failure in one go, before the password is looked at
        // (see `Store::begin_login_attempt`).
        let held = state
            .store
            .begin_login_attempt(
                &guard.account,
                &guard.client,
                &state.config.lockout,
                guard.now,
            )
            .await?;
        if let Some(retry_after_secs) = held {
            tracing::info!("password check held back by the brute-force guard");
            return Err(ApiError::Throttled { retry_after_secs });
        }
    }
    match state
        .hasher
        .verify(SecretString::from(password), stored)
        .await
    {
        Ok(verdict) => Ok(verdict),
        Err(error) => {
            // Not a guess: the password was never checked (the hash pool was busy). An
            // attacker flooding the pool must not run up the owner's count this way.
            if let Some(guard) = guard {
                guard.take_back(state).await;
            }
            Err(error.into())
        }
    }
}

/// Reads a required token field (`refresh` or `token`) as a 400 when missing.
fn token_field(fields: &Fields, name: &str) -> Result<String, ApiError> {
    fields
        .required_text(name, true)
        .map_err(|m| ApiError::field_messages(name, m))
}

/// `POST /api/token/refresh/` — rotation: the presented refresh token is spent and a new
/// pair issued. A spent token presented again ends its whole session (reuse detection).
#[utoipa::path(
    post,
    path = "/api/token/refresh/",
    operation_id = "token_refresh",
    tag = "auth",
    summary = "Exchange a refresh token for a new pair (rotation)",
    description = "The refresh token presented is spent. Presenting a spent one again ends \
                   the whole session (reuse detection) and answers 401.",
    request_body = openapi::RefreshBody,
    responses(
        (status = 200, description = "A new pair; the old refresh token is spent", body = TokenPair, links(
            ("TokenRefresh" = (operation_id = "token_refresh", request_body = json!({"refresh": "$response.body#/refresh"}))),
            ("TokenVerify" = (operation_id = "token_verify", request_body = json!({"token": "$response.body#/access"}))),
            ("Logout" = (operation_id = "logout", request_body = json!({"refresh": "$response.body#/refresh"}))),
        )),
        (status = 401, response = openapi::Unauthorized),
        (status = 429, response = openapi::Throttled),
    )
)]
pub async fn token_refresh(
    State(state): State<AppState>,
    fields: Fields,
) -> Result<Json<TokenPair>, ApiError> {
    let refresh = token_field(&fields, "refresh")?;
    let claims = state
        .tokens
        .decode(refresh.trim(), Some(TokenType::Refresh))?;
    let check = state
        .store
        .access_check(claims.user_id, claims.sid.as_deref())
        .await?;
    let Some(check) = check else {
        return Err(ApiError::token_invalid(messages::TOKEN_INVALID_OR_EXPIRED));
    };
    if !check.user.is_active {
        return Err(ApiError::with_code(
            StatusCode::UNAUTHORIZED,
            messages::NO_ACTIVE_ACCOUNT_FOR_TOKEN,
            "no_active_account",
        ));
    }
    crate::http::access_log::record_user_id(claims.user_id);
    match &claims.sid {
        Some(sid) => {
            let (pair, new_jti) = state.tokens.issue_pair(claims.user_id, sid);
            match state
                .store
                .rotate_refresh(
                    sid,
                    claims.user_id,
                    &claims.jti,
                    &new_jti,
                    chrono::Utc::now(),
                )
                .await?
            {
                Rotation::Rotated => Ok(Json(pair)),
                Rotation::Reused => {
                    tracing::warn!(
                        user_id = claims.user_id.0,
                        "spent refresh token presented again: session ended"
                    );
                    Err(ApiError::token_invalid(messages::TOKEN_BLACKLISTED))
                }
                Rotation::Gone => Err(ApiError::token_invalid(messages::TOKEN_INVALID_OR_EXPIRED)),
            }
        }
        None => {
            // A refresh token minted by SimpleJWT (API.md §5): valid until the user's
            // cut-off, spendable once, and exchanged for a gatehouse session.
            if check
                .tokens_valid_after
                .is_some_and(|cutoff| claims.iat <= cutoff)
            {
                return Err(ApiError::token_invalid(messages::TOKEN_INVALID_OR_EXPIRED));
            }
            // What SimpleJWT answers for a token its blacklist holds.
            if state.store.blacklisted_by_simplejwt(&claims.jti).await? {
                return Err(ApiError::token_invalid(messages::TOKEN_BLACKLISTED));
            }
            let sid = random_hex_id();
            let (pair, refresh_jti) = state.tokens.issue_pair(claims.user_id, &sid);
            let token = SpentToken {
                jti: &claims.jti,
                user_id: claims.user_id,
                issued_at: claims.iat,
                expires_at: claims.exp,
            };
            let exchanged =
                state
                    .store
                    .exchange_spent_token(token, &sid, &refresh_jti, chrono::Utc::now());
            match exchanged.await? {
                Exchange::Exchanged => Ok(Json(pair)),
                Exchange::AlreadySpent => {
                    // Reuse: the session this token was exchanged for ends too.
                    state.store.end_session_started_by(&claims.jti).await?;
                    tracing::warn!(
                        user_id = claims.user_id.0,
                        "spent SimpleJWT refresh token presented again: session ended"
                    );
                    Err(ApiError::token_invalid(messages::TOKEN_BLACKLISTED))
                }
                // A password change or deactivation landed after the checks above.
                Exchange::Refused => {
                    Err(ApiError::token_invalid(messages::TOKEN_INVALID_OR_EXPIRED))
                }
            }
        }
    }
}

/// Whether a token that passed its signature and expiry is still good: its session is
/// live (and, for a refresh token, it is the session's current one), or, for a token
/// without a session, its user exists and it predates no cut-off.
async fn still_good(state: &AppState, claims: &Claims) -> Result<bool, ApiError> {
    match &claims.sid {
        Some(sid) => Ok(match state.store.session(sid).await? {
            Some((owner, current_jti)) => {
                owner == claims.user_id
                    && (claims.token_type == TokenType::Access || current_jti == claims.jti)
            }
            None => false,
        }),
        None => {
            let before_cutoff = match state.store.access_check(claims.user_id, None).await? {
                Some(check) => check
                    .tokens_valid_after
                    .is_some_and(|cutoff| claims.iat <= cutoff),
                None => return Ok(false),
            };
            let spent = claims.token_type == TokenType::Refresh
                && (state.store.token_spent(&claims.jti).await?
                    || state.store.blacklisted_by_simplejwt(&claims.jti).await?);
            Ok(!before_cutoff && !spent)
        }
    }
}

/// `POST /api/token/verify/` → 200 `{}` for a live token of either type, else 401.
#[utoipa::path(
    post,
    path = "/api/token/verify/",
    operation_id = "token_verify",
    tag = "auth",
    summary = "Check a token: 200 while it is good",
    request_body = openapi::VerifyBody,
    responses(
        (status = 200, description = "The token is live", body = openapi::Empty),
        (status = 401, response = openapi::Unauthorized),
    )
)]
pub async fn token_verify(
    State(state): State<AppState>,
    fields: Fields,
) -> Result<Json<Value>, ApiError> {
    let token = token_field(&fields, "token")?;
    let claims = state.tokens.decode(token.trim(), None)?;
    if !still_good(&state, &claims).await? {
        return Err(ApiError::token_invalid(messages::TOKEN_INVALID_OR_EXPIRED));
    }
    Ok(Json(json!({})))
}

/// `POST /api/logout/` — the refresh token is the credential; its session ends, and with
/// it every access token of the session.
#[utoipa::path(
    post,
    path = "/api/logout/",
    operation_id = "logout",
    tag = "auth",
    summary = "End the session a refresh token belongs to",
    description = "No Bearer token is needed: the refresh token is the credential. The \
                   session's access tokens stop working at once.",
    request_body = openapi::RefreshBody,
    responses(
        (status = 200, description = "Logged out", body = openapi::Message,
            example = json!({"message": "Logged out"})),
        (status = 401, response = openapi::Unauthorized),
    )
)]
pub async fn logout(
    State(state): State<AppState>,
    fields: Fields,
) -> Result<Json<Value>, ApiError> {
    let refresh = token_field(&fields, "refresh")?;
    let claims = state
        .tokens
        .decode(refresh.trim(), Some(TokenType::Refresh))?;
    crate::http::access_log::record_user_id(claims.user_id);
    let logged_out = match &claims.sid {
        Some(sid) => match state.store.session(sid).await? {
            Some((owner, current_jti)) if owner == claims.user_id => {
                state.store.end_session(sid).await?;
                if current_jti != claims.jti {
                    // A spent token: the session is ended all the same (reuse detection).
                    return Err(ApiError::token_invalid(messages::TOKEN_BLACKLISTED));
                }
                true
            }
            _ => false,
        },
        None => {
            still_good(&state, &claims).await?
                && state
                    .store
                    .spend_token(&claims.jti, claims.user_id, claims.exp)
                    .await?
        }
    };
    if !logged_out {
        return Err(ApiError::token_invalid(messages::TOKEN_INVALID_OR_EXPIRED));
    }
    Ok(Json(json!({"message": messages::LOGGED_OUT})))
}
