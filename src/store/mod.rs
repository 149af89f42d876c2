//! Persistence behind one trait, `Store`, with a SQLite and a PostgreSQL implementation
//! (API.md §1: both are first-class). Handlers hold no SQL; they call these verbs.
//!
//! Users live in Django's `auth_user`; everything else in `gatehouse_*` tables
//! (API.md §3). Each backend keeps its migrations in `migrations/<backend>/`, one file
//! per change with the same number and intent in both folders.

mod common;
mod migrate;
mod postgres;
mod sql;
mod sqlite;

pub use crate::auth::SessionId;
use crate::domain::{EmailAddress, User, UserId, Username};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::sync::Arc;

pub use postgres::PgStore;
pub use sqlite::SqliteStore;

/// A field whose uniqueness a write collided with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UniqueField {
    Username,
    Email,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A username or email (case-insensitively) belongs to another user.
    #[error("unique value taken: {0:?}")]
    Conflict(Vec<UniqueField>),
    /// The database could not be reached (down, restarting, pool exhausted).
    #[error("database unavailable: {0}")]
    Unavailable(#[source] sqlx::Error),
    #[error("database error: {0}")]
    Other(#[source] sqlx::Error),
}

impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> Self {
        if is_unavailable(&error) {
            StoreError::Unavailable(error)
        } else {
            StoreError::Other(error)
        }
    }
}

/// Errors that mean "the database is not there right now" rather than "this query is
/// wrong": they answer 503 and heal by themselves (API.md §8).
fn is_unavailable(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Tls(_) => true,
        sqlx::Error::Database(db) => match db.code() {
            // PostgreSQL: class 08 connection exception, class 57 operator intervention
            // (shutdown, restart), 53300 too many connections.
            Some(code) if code.starts_with("08") || code.starts_with("57") || code == "53300" => {
                true
            }
            // SQLite: SQLITE_BUSY / SQLITE_LOCKED (and their extended codes) after
            // busy_timeout ran out.
            Some(code) => matches!(code.as_ref(), "5" | "6" | "261" | "262" | "517"),
            None => false,
        },
        _ => false,
    }
}

/// A user about to be inserted; every field already parsed.
#[derive(Debug, Clone)]
pub struct NewUser {
    pub username: Username,
    pub email: EmailAddress,
    pub password_hash: String,
    pub first_name: String,
    pub last_name: String,
    pub is_active: bool,
    pub is_staff: bool,
    pub is_superuser: bool,
}

/// A user and its stored password hash: only the login and password paths read this.
#[derive(Clone)]
pub struct Credentials {
    pub user: User,
    pub password_hash: String,
}

/// The answer to "is this access token still good?", read in one round trip.
#[derive(Debug, Clone)]
pub struct AccessCheck {
    pub user: User,
    /// Whether the session the token names exists (always false when none was named).
    pub session_live: bool,
    /// Tokens without a session issued at or before this Unix time are refused.
    pub tokens_valid_after: Option<i64>,
}

/// The outcome of spending a session's refresh token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rotation {
    /// The token was the session's current one; the new one now is.
    Rotated,
    /// The token was already spent: the session has been ended (reuse detection).
    Reused,
    /// No such session (logged out, reused, or the user is gone).
    Gone,
}

/// Changes to a user; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct UserUpdate {
    pub username: Option<Username>,
    pub email: Option<EmailAddress>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub is_active: Option<bool>,
    pub is_staff: Option<bool>,
    pub is_superuser: Option<bool>,
}

/// The outcome of a change that must leave at least one active superuser (API.md §7).
#[derive(Debug, Clone, PartialEq)]
pub enum Guarded<T> {
    Done(T),
    NotFound,
    /// Refused: the user is the last active superuser, and the change would end that.
    LastSuperuser,
}

/// Keys of the locks that serialise changes across instances (PostgreSQL advisory locks;
/// on SQLite every write transaction already excludes the others).
const MIGRATIONS_LOCK: i64 = 0x6761_7465_686f_7573; // "gatehous"
const SUPERUSERS_LOCK: i64 = MIGRATIONS_LOCK + 1;

/// A column `GET /api/users/` may be ordered by (API.md §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortKey {
    Id,
    Username,
    Email,
    DateJoined,
}

impl SortKey {
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "id" => Some(SortKey::Id),
            "username" => Some(SortKey::Username),
            "email" => Some(SortKey::Email),
            "date_joined" => Some(SortKey::DateJoined),
            _ => None,
        }
    }

    fn column(self) -> &'static str {
        match self {
            SortKey::Id => "id",
            SortKey::Username => "username",
            SortKey::Email => "email",
            SortKey::DateJoined => "date_joined",
        }
    }
}

/// One page of `GET /api/users/`: filters, search terms (each must match the username or
/// the email, case-insensitively), ordering and the page's window.
#[derive(Debug, Clone)]
pub struct UserQuery {
    pub search: Vec<String>,
    pub is_active: Option<bool>,
    pub is_staff: Option<bool>,
    /// Keys with `true` for descending; an `id` tie-break is added for a stable order.
    pub ordering: Vec<(SortKey, bool)>,
    pub limit: i64,
    pub offset: i64,
}

/// A value bound into a query built at run time.
#[derive(Debug, Clone)]
enum Arg {
    Text(String),
    Bool(bool),
    Int(i64),
}

/// The WHERE clause, ORDER BY clause and arguments of a `UserQuery`; the search condition
/// is the backend's (`search_condition(n, term)`, with the term bound as `$n`).
fn user_query_clauses(
    query: &UserQuery,
    search_condition: fn(usize, &str) -> String,
) -> (String, String, Vec<Arg>) {
    let mut conditions = Vec::new();
    let mut args = Vec::new();
    for (column, value) in [("is_active", query.is_active), ("is_staff", query.is_staff)] {
        if let Some(value) = value {
            args.push(Arg::Bool(value));
            conditions.push(format!("{column} = ${}", args.len()));
        }
    }
    for term in &query.search {
        let term = term.to_lowercase();
        // LIKE's wildcards in a term are literal characters, as in Django's icontains.
        let escaped = term
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_");
        args.push(Arg::Text(format!("%{escaped}%")));
        conditions.push(search_condition(args.len(), &term));
    }
    let where_clause = if conditions.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", conditions.join(" AND "))
    };
    let mut order: Vec<String> = query
        .ordering
        .iter()
        .map(|(key, desc)| format!("{} {}", key.column(), if *desc { "DESC" } else { "ASC" }))
        .collect();
    if !query.ordering.iter().any(|(key, _)| *key == SortKey::Id) {
        order.push("id ASC".to_owned());
    }
    (where_clause, format!("ORDER BY {}", order.join(", ")), args)
}

#[async_trait]
pub trait Store: Send + Sync {
    /// Applies pending migrations; safe to call from several instances at once.
    async fn migrate(&self) -> Result<(), StoreError>;
    /// One cheap query, for `/api/health/`.
    async fn ping(&self) -> Result<(), StoreError>;

    /// Returns the stored value of a setting, storing `value` first if there is none.
    /// Race-free across instances: every caller gets the same answer.
    async fn setting_or_insert(&self, name: &str, value: &str) -> Result<String, StoreError>;

    /// Inserts a user; `Conflict` names the fields already taken.
    async fn insert_user(&self, user: &NewUser, now: DateTime<Utc>) -> Result<User, StoreError>;
    async fn user_by_id(&self, id: UserId) -> Result<Option<User>, StoreError>;
    /// Looks a user up by username, case-insensitively.
    async fn credentials_by_username(
        &self,
        username: &str,
    ) -> Result<Option<Credentials>, StoreError>;
    async fn credentials_by_id(&self, id: UserId) -> Result<Option<Credentials>, StoreError>;
    /// Changes a user; `Conflict` names the fields already taken. Deactivating a user
    /// ends its sessions and moves its token cut-off; the last active superuser cannot be
    /// demoted or deactivated. Atomic against concurrent changes of superusers.
    async fn update_user(
        &self,
        id: UserId,
        update: &UserUpdate,
        now: DateTime<Utc>,
    ) -> Result<Guarded<User>, StoreError>;
    /// Deletes the user and everything of gatehouse's that belongs to it, unless it is the
    /// last active superuser.
    async fn delete_user(&self, id: UserId) -> Result<Guarded<()>, StoreError>;
    /// The number of users the query matches, and its page of them.
    async fn list_users(&self, query: &UserQuery) -> Result<(i64, Vec<User>), StoreError>;
    /// Replaces the password hash only (an outdated hash upgraded at login).
    async fn upgrade_password_hash(&self, id: UserId, hash: &str) -> Result<(), StoreError>;
    /// Sets a new password: stores the hash, moves the token cut-off to `now`, and ends
    /// every session of the user except `keep`.
    async fn set_password(
        &self,
        id: UserId,
        hash: &str,
        keep: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// The user and the liveness of session `sid`, in one round trip.
    async fn access_check(
        &self,
        id: UserId,
        sid: Option<&str>,
    ) -> Result<Option<AccessCheck>, StoreError>;
    /// Records a new session whose current refresh token is `refresh_jti`; on a login
    /// (not a SimpleJWT token exchange) also the user's `last_login`.
    async fn start_session(
        &self,
        id: UserId,
        sid: &str,
        refresh_jti: &str,
        now: DateTime<Utc>,
        is_login: bool,
    ) -> Result<(), StoreError>;
    /// Atomically replaces the session's refresh `jti` if `old_jti` is the current one;
    /// otherwise, if the session exists, ends it (a spent token came back).
    async fn rotate_refresh(
        &self,
        sid: &str,
        id: UserId,
        old_jti: &str,
        new_jti: &str,
        now: DateTime<Utc>,
    ) -> Result<Rotation, StoreError>;
    /// The session's user and current refresh `jti`.
    async fn session(&self, sid: &str) -> Result<Option<(UserId, String)>, StoreError>;
    async fn end_session(&self, sid: &SessionId) -> Result<bool, StoreError>;
    /// Marks a sessionless refresh token (minted by SimpleJWT) spent; false if it already was.
    async fn spend_token(&self, jti: &str, id: UserId, expires_at: i64)
        -> Result<bool, StoreError>;
    /// Drops sessions idle longer than the refresh lifetime and spent tokens past expiry.
    async fn purge_expired(
        &self,
        now: DateTime<Utc>,
        refresh_lifetime_secs: i64,
    ) -> Result<u64, StoreError>;
}

/// Opens the database `url` names (STYLE.md P7: the backend is chosen once, here).
pub async fn connect(url: &str, pool_size: u32) -> Result<Arc<dyn Store>, StoreError> {
    if url.starts_with("sqlite:") {
        Ok(Arc::new(SqliteStore::open(url, pool_size).await?))
    } else {
        Ok(Arc::new(PgStore::connect(url, pool_size).await?))
    }
}

/// Which of the two unique fields another user already holds, for a `Conflict` answer.
/// Databases report a unique violation without a portable way to say which index, so
/// the store asks (STYLE.md P7) instead of parsing driver messages.
fn conflicts(username_taken: bool, email_taken: bool) -> StoreError {
    let mut fields = Vec::new();
    if username_taken {
        fields.push(UniqueField::Username);
    }
    if email_taken {
        fields.push(UniqueField::Email);
    }
    if fields.is_empty() {
        // The colliding row vanished between the insert and the look-up; the username
        // index is the one a race on the same request hits.
        fields.push(UniqueField::Username);
    }
    StoreError::Conflict(fields)
}

fn is_unique_violation(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(db) if db.is_unique_violation())
}
