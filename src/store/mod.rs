//! Persistence behind one trait, `Store`, with a SQLite and a PostgreSQL implementation
//! (API.md §1: both are first-class). Handlers hold no SQL; they call these verbs.
//!
//! Users live in Django's `auth_user`; everything else in `gatehouse_*` tables
//! (API.md §3). Each backend keeps its migrations in `migrations/<backend>/`, one file
//! per change with the same number and intent in both folders.

mod common;
mod django;
mod migrate;
mod postgres;
mod sql;
mod sqlite;
mod wal_index;

pub use crate::auth::lockout::{LockoutPolicy, LoginRecord};
pub use crate::auth::SessionId;
use crate::domain::{EmailAddress, User, UserId, Username};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::sync::Arc;

pub use django::{CaseConflicts, ConflictGroup};
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
    /// API.md §9: a Django database's users break the case-insensitive uniqueness rule;
    /// found before the first migration, which was therefore not run.
    #[error("{0}")]
    CaseConflicts(CaseConflicts),
    /// A deletion was refused: rows of these other tables (a Django app's) refer to the
    /// user through a foreign key the database does not cascade.
    #[error("rows of {} refer to the user", .0.join(", "))]
    Referenced(Vec<String>),
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

/// A sessionless (SimpleJWT) refresh token being spent.
#[derive(Debug, Clone, Copy)]
pub struct SpentToken<'a> {
    pub jti: &'a str,
    pub user_id: UserId,
    pub issued_at: i64,
    pub expires_at: i64,
}

/// The outcome of exchanging a sessionless refresh token for a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exchange {
    /// Spent, and the new session started.
    Exchanged,
    /// It was spent already (reuse): nothing changed.
    AlreadySpent,
    /// The user is inactive or gone, or a cut-off came at or after the token was issued:
    /// nothing changed.
    Refused,
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
    /// When set, the change applies only while the stored hash is still this one: the
    /// hash the caller's re-entered password matched (`Guarded::PasswordChanged` if not).
    pub password_unchanged: Option<String>,
    /// The change applies only while the user is neither staff nor superuser: the caller
    /// may change it only as a plain user (`Guarded::Privileged` if it is no longer one).
    pub only_while_plain: bool,
}

/// The outcome of a change that must leave at least one active superuser (API.md §7).
#[derive(Debug, Clone, PartialEq)]
pub enum Guarded<T> {
    Done(T),
    NotFound,
    /// Refused: the user is the last active superuser, and the change would end that.
    LastSuperuser,
    /// Refused: the password the caller re-entered stopped being the user's meanwhile (a
    /// reset or change landed while it was checked).
    PasswordChanged,
    /// Refused: the change was allowed on a plain user only, and the user was made staff
    /// or superuser meanwhile.
    Privileged,
}

/// A reset token about to be stored (API.md §4); the secret itself is never stored.
#[derive(Debug, Clone)]
pub struct NewResetToken {
    pub digest: crate::auth::reset::TokenDigest,
    pub user_id: UserId,
    pub password_fingerprint: String,
    pub expires_at: i64,
}

/// Builds the token and message for a reset request from the user and the request's base
/// URL, or declines (`None`). An alias with explicit lifetimes: `async_trait` would
/// otherwise tie the closure's argument lifetimes to the call.
pub type MakeResetMail<'m> = dyn for<'a, 'b> Fn(&'a Credentials, &'b str) -> Option<(NewResetToken, NewEmail)>
    + Send
    + Sync
    + 'm;

/// A message for the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEmail {
    pub recipient: String,
    pub subject: String,
    pub body: String,
}

/// A message claimed from the outbox for one delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxEmail {
    pub id: i64,
    pub email: NewEmail,
    pub attempts: i32,
    pub created_at: i64,
}

/// Keys of the locks that serialise changes across instances (PostgreSQL advisory locks;
/// on SQLite every write transaction already excludes the others).
const MIGRATIONS_LOCK: i64 = 0x6761_7465_686f_7573; // "gatehous"
const SUPERUSERS_LOCK: i64 = MIGRATIONS_LOCK + 1;

/// The lock that serialises login attempts on one account: 63 bits of a digest of its
/// key, so accounts do not wait for each other (and cannot meet the two keys above but by
/// a 1-in-2^62 chance).
fn login_lock_key(account: &str) -> i64 {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!("login:{account}").as_bytes());
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&digest[..8]);
    i64::from_be_bytes(bytes) & i64::MAX
}

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

    /// Usernames and ids are unique: ordering by them needs no tie-break.
    fn is_unique(self) -> bool {
        matches!(self, SortKey::Id | SortKey::Username)
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

fn direction(descending: bool) -> &'static str {
    if descending {
        "DESC"
    } else {
        "ASC"
    }
}

/// The backend's SQL for one `?search=` term, whose values it binds from `$first` on.
type SearchCondition = fn(first: usize, term: &str) -> (String, Vec<String>);

/// `%term%` for LIKE, its wildcards escaped with `\`: in a search they are literal
/// characters, as in Django's icontains.
fn like_pattern(term: &str) -> String {
    format!(
        "%{}%",
        term.replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_")
    )
}

/// The WHERE clause, ORDER BY clause and arguments of a `UserQuery`.
fn user_query_clauses(
    query: &UserQuery,
    search_condition: SearchCondition,
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
        let (condition, values) = search_condition(args.len() + 1, term);
        args.extend(values.into_iter().map(Arg::Text));
        conditions.push(condition);
    }
    let where_clause = if conditions.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", conditions.join(" AND "))
    };
    let mut order: Vec<String> = query
        .ordering
        .iter()
        .map(|(key, desc)| format!("u.{} {}", key.column(), direction(*desc)))
        .collect();
    // A stable order needs a unique key somewhere; one after a unique key would only stop
    // the database from walking that key's index. The tie-break runs the same way as the
    // last key, so one index read forwards or backwards serves the whole order.
    if !query.ordering.iter().any(|(key, _)| key.is_unique()) {
        let descending = query.ordering.last().is_some_and(|(_, desc)| *desc);
        order.push(format!("u.id {}", direction(descending)));
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
    /// last active superuser. Rows of Django's own apps that refer to the user are removed
    /// (or unlinked) as Django would; rows of any other table that still refer to it
    /// through a foreign key refuse the deletion with `StoreError::Referenced`, and
    /// nothing is changed. With `only_while_plain`, a user who is staff or superuser by
    /// then is not deleted (`Guarded::Privileged`).
    async fn delete_user(
        &self,
        id: UserId,
        only_while_plain: bool,
    ) -> Result<Guarded<()>, StoreError>;
    /// The number of users the query matches, and its page of them.
    async fn list_users(&self, query: &UserQuery) -> Result<(i64, Vec<User>), StoreError>;

    /// Records a reset request for the worker (`fulfil_reset_request`).
    async fn queue_reset_request(
        &self,
        email: &str,
        base_url: &str,
        now: i64,
    ) -> Result<(), StoreError>;
    async fn pending_reset_requests(&self, limit: i64) -> Result<Vec<i64>, StoreError>;
    /// Takes request `id` and, in the same transaction, counts it against its address's
    /// throttle (`per_address`: window and limit) and, if the address is a user's, the
    /// limit allows and the request is younger than `max_age` seconds, stores the reset
    /// token and queues the message `make` builds from the user and the request's base
    /// URL. True when a message was queued.
    async fn fulfil_reset_request(
        &self,
        id: i64,
        now: i64,
        max_age: i64,
        per_address: Option<(i64, i64)>,
        make: &MakeResetMail<'_>,
    ) -> Result<bool, StoreError>;
    /// The user of an unexpired reset token with this digest and user id, with the
    /// password fingerprint the token was made for.
    async fn reset_token_owner(
        &self,
        digest: &str,
        id: UserId,
        now: i64,
    ) -> Result<Option<(Credentials, String)>, StoreError>;
    /// Spends the token and sets the new password, if the token is still unexpired and
    /// the password is still the one it was made for: every reset token and session of
    /// the user ends, and the token cut-off moves to `now`. False if the token was not
    /// good any more (spent concurrently, expired, or the password changed).
    async fn consume_reset_token(
        &self,
        digest: &str,
        id: UserId,
        new_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError>;

    /// Counts a hit on a throttle key in a fixed window of `window_secs`; returns the
    /// hits in the current window (this one included) and when the window started.
    async fn throttle_hit(
        &self,
        key: &str,
        window_secs: i64,
        now: i64,
    ) -> Result<(i64, i64), StoreError>;

    /// A login attempt to `account` from `client` (issue #5, `auth::lockout`): in one
    /// transaction, serialised per account, decides by `policy` whether it is held back
    /// (`Some(seconds to wait)`) and, if not, counts it as a failure up front. So a burst
    /// of parallel guesses cannot all read the same old count.
    async fn begin_login_attempt(
        &self,
        account: &str,
        client: &str,
        policy: &LockoutPolicy,
        now: i64,
    ) -> Result<Option<u64>, StoreError>;
    /// Takes back the count of an attempt that was no guess: its password was never
    /// checked (the hash pool was busy, the database failed), or was right but nothing
    /// came of it (a server error, or the request dropped, before its write). Only real
    /// guesses count.
    async fn undo_login_attempt(&self, account: &str, client: &str) -> Result<(), StoreError>;
    /// A successful login: clears this client's count and remembers it as known to the
    /// account. The account-wide count stays: the owner logging in must not hand an
    /// attacker elsewhere a fresh start. Only while user `proven.0`'s stored hash is still
    /// `proven.1`, the one the password matched: false, and nothing changed, once it is
    /// not. Decided under the account's guard lock, which `forget_login_history` takes
    /// after a password change commits, so a client proved by the old password is never
    /// made known after that change forgot the account's clients.
    async fn login_succeeded(
        &self,
        account: &str,
        client: &str,
        now: i64,
        proven: (UserId, &str),
    ) -> Result<bool, StoreError>;
    /// A password reset or change: every count of `account` and every client known to
    /// it are forgotten (a client that knew the old password is not trusted any more).
    async fn forget_login_history(&self, account: &str) -> Result<(), StoreError>;

    /// Claims up to `limit` due messages for `lease_secs` (no other worker takes them
    /// meanwhile).
    async fn claim_due_emails(
        &self,
        now: i64,
        lease_secs: i64,
        limit: i64,
    ) -> Result<Vec<OutboxEmail>, StoreError>;
    async fn mark_email_sent(&self, id: i64, now: i64) -> Result<(), StoreError>;
    /// Records a failed attempt; `next_attempt_at: None` gives the message up.
    async fn mark_email_failed(
        &self,
        id: i64,
        next_attempt_at: Option<i64>,
        error: &str,
    ) -> Result<(), StoreError>;
    /// Replaces an outdated hash (upgraded at login), if it is still `old_hash`; false if
    /// it no longer was.
    async fn upgrade_password_hash(
        &self,
        id: UserId,
        old_hash: &str,
        new_hash: &str,
    ) -> Result<bool, StoreError>;
    /// Sets a new password: stores the hash, moves the token cut-off to `now`, and ends
    /// every session of the user except `keep`. With `replacing`, only while the stored
    /// hash is still that one; false, and nothing changed, if it is not (or no user).
    async fn set_password(
        &self,
        id: UserId,
        hash: &str,
        replacing: Option<&str>,
        keep: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError>;

    /// The user and the liveness of session `sid`, in one round trip.
    async fn access_check(
        &self,
        id: UserId,
        sid: Option<&str>,
    ) -> Result<Option<AccessCheck>, StoreError>;
    /// Records a new session (a login) whose current refresh token is `refresh_jti`, and
    /// the user's `last_login`, if the user is still active and `password_hash` is still
    /// their hash (the one the login verified); false, and nothing recorded, if not.
    async fn start_session(
        &self,
        id: UserId,
        sid: &str,
        refresh_jti: &str,
        password_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError>;
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
    /// Marks a sessionless refresh token (minted by SimpleJWT) spent, at logout; false if
    /// it already was.
    async fn spend_token(&self, jti: &str, id: UserId, expires_at: i64)
        -> Result<bool, StoreError>;
    async fn token_spent(&self, jti: &str) -> Result<bool, StoreError>;
    /// The stored password hashes of up to `count` users picked at random (by id), for
    /// the cost unknown users are verified at (`PasswordHasher::fit_unknown_user_cost`).
    async fn sample_password_hashes(&self, count: usize) -> Result<Vec<String>, StoreError>;
    /// Whether SimpleJWT's blacklist, if the database has one, holds the refresh token
    /// `jti` (API.md §9: a token Django logged out or rotated stays refused).
    async fn blacklisted_by_simplejwt(&self, jti: &str) -> Result<bool, StoreError>;
    /// Exchanges a sessionless refresh token, issued at `issued_at`, for session `sid` in
    /// one transaction: marks it spent with that session and starts the session, so a
    /// concurrent second use always finds the session to end. Only while the user is
    /// active and no cut-off came at or after `issued_at`, checked under the user's row
    /// lock (`sql::HOLD_ACTIVE_USER`).
    async fn exchange_spent_token(
        &self,
        token: SpentToken<'_>,
        sid: &str,
        refresh_jti: &str,
        now: DateTime<Utc>,
    ) -> Result<Exchange, StoreError>;
    /// Ends the session a spent token started (its reuse was detected).
    async fn end_session_started_by(&self, jti: &str) -> Result<(), StoreError>;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn query(ordering: Vec<(SortKey, bool)>, search: &[&str]) -> UserQuery {
        UserQuery {
            search: search.iter().map(|s| s.to_string()).collect(),
            is_active: None,
            is_staff: Some(true),
            ordering,
            limit: 20,
            offset: 0,
        }
    }

    fn condition(first: usize, term: &str) -> (String, Vec<String>) {
        (
            format!("match(${first}, ${})", first + 1),
            vec![term.to_owned(), like_pattern(term)],
        )
    }

    #[test]
    fn non_unique_orderings_get_an_id_tie_break_and_unique_ones_do_not() {
        let order = |ordering| user_query_clauses(&query(ordering, &[]), condition).1;
        assert_eq!(order(vec![]), "ORDER BY u.id ASC");
        assert_eq!(
            order(vec![(SortKey::Email, true)]),
            "ORDER BY u.email DESC, u.id DESC"
        );
        assert_eq!(
            order(vec![(SortKey::Email, false)]),
            "ORDER BY u.email ASC, u.id ASC"
        );
        assert_eq!(
            order(vec![(SortKey::Username, false)]),
            "ORDER BY u.username ASC"
        );
        assert_eq!(
            order(vec![(SortKey::DateJoined, false), (SortKey::Id, true)]),
            "ORDER BY u.date_joined ASC, u.id DESC"
        );
    }

    #[test]
    fn filters_and_terms_are_bound_in_order_with_like_wildcards_escaped() {
        let (where_clause, _, args) =
            user_query_clauses(&query(vec![], &["Ann", "50%_off\\"]), condition);
        assert_eq!(
            where_clause,
            "WHERE is_staff = $1 AND match($2, $3) AND match($4, $5)"
        );
        let texts: Vec<String> = args
            .iter()
            .filter_map(|a| match a {
                Arg::Text(t) => Some(t.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(
            texts,
            vec!["Ann", "%Ann%", "50%_off\\", "%50\\%\\_off\\\\%"]
        );
    }
}
