//! Query text shared by both backends. SQLite and PostgreSQL both read `$N` parameters,
//! `RETURNING` and `ON CONFLICT`, so one statement serves both; only the binding of
//! timestamps and the width of `auth_user.id` differ, and those live in each backend.

/// The columns `User` is read from, in `row_to_user` order.
pub const USER_COLUMNS: &str =
    "u.id, u.username, u.email, u.first_name, u.last_name, u.is_active, u.is_staff, u.is_superuser, u.date_joined, u.last_login";

pub const INSERT_USER: &str = "INSERT INTO auth_user \
    (password, last_login, is_superuser, username, last_name, email, is_staff, is_active, date_joined, first_name) \
    VALUES ($1, NULL, $2, $3, $4, $5, $6, $9, $7, $8) RETURNING id";

/// `$1` username, `$2` email, `$3` the id to ignore (the user being updated, or 0).
pub const WHICH_UNIQUE_TAKEN: &str = "SELECT \
    EXISTS (SELECT 1 FROM auth_user WHERE lower(username) = lower($1) AND id <> $3), \
    EXISTS (SELECT 1 FROM auth_user WHERE email <> '' AND lower(email) = lower($2) AND id <> $3)";

pub fn user_by_id() -> String {
    format!("SELECT {USER_COLUMNS} FROM auth_user u WHERE u.id = $1")
}

pub fn credentials_by_username() -> String {
    format!(
        "SELECT {USER_COLUMNS}, u.password FROM auth_user u WHERE lower(u.username) = lower($1)"
    )
}

pub fn credentials_by_id() -> String {
    format!("SELECT {USER_COLUMNS}, u.password FROM auth_user u WHERE u.id = $1")
}

/// STYLE.md P5: the user, whether the named session is live, and the token cut-off, in
/// one round trip. `$2` may be NULL (a token without a session). SQLite's in-place
/// reader (`sqlite.rs`) reads the columns by position: keep their order.
/// Built once: it runs on every authenticated request.
pub fn access_check() -> &'static str {
    static SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        format!(
            "SELECT {USER_COLUMNS}, \
             EXISTS (SELECT 1 FROM gatehouse_session s WHERE s.id = $2 AND s.user_id = u.id) AS session_live, \
             (SELECT c.tokens_valid_after FROM gatehouse_user_state c WHERE c.user_id = u.id) AS tokens_valid_after \
             FROM auth_user u WHERE u.id = $1"
        )
    });
    &SQL
}

/// `$1` id, then optional `$2` username, `$3` email, `$4` first name, `$5` last name,
/// `$6` is_active, `$7` is_staff, `$8` is_superuser, and `$9`: when set, the change
/// applies only while the stored hash is still this one (`UserUpdate::password_unchanged`),
/// and `$10`: when true, only while the user is neither staff nor superuser
/// (`UserUpdate::only_while_plain`). Both in the UPDATE's own condition, so PostgreSQL
/// checks them again after a row lock wait.
/// (SQLite's RETURNING cannot name a table alias, so the columns stand unqualified.)
pub fn update_user() -> String {
    let columns = USER_COLUMNS.replace("u.", "");
    format!(
        "UPDATE auth_user SET \
         username = COALESCE($2, username), email = COALESCE($3, email), \
         first_name = COALESCE($4, first_name), last_name = COALESCE($5, last_name), \
         is_active = COALESCE($6, is_active), is_staff = COALESCE($7, is_staff), \
         is_superuser = COALESCE($8, is_superuser) \
         WHERE id = $1 AND ($9 IS NULL OR password = $9) \
         AND NOT ($10 AND (is_staff OR is_superuser)) RETURNING {columns}"
    )
}

pub const OTHER_ACTIVE_SUPERUSERS: &str =
    "SELECT count(*) FROM auth_user WHERE is_superuser AND is_active AND id <> $1";
pub const USER_FLAGS: &str = "SELECT is_active, is_superuser FROM auth_user WHERE id = $1";

pub fn count_users(where_clause: &str) -> String {
    format!("SELECT count(*) FROM auth_user u {where_clause}")
}

/// A page of users. With `deferred_join` the inner query pages through ids alone, which
/// an index answers without reading the table (PostgreSQL: an OFFSET of 500,000 rows stays
/// cheap), and only the page's rows are then read whole. SQLite's indexes all carry the
/// rowid, so a plain OFFSET is already index-only there, and its planner scans the table
/// for the join form.
pub fn page_of_users(
    where_clause: &str,
    order_clause: &str,
    limit_param: usize,
    deferred_join: bool,
) -> String {
    let offset_param = limit_param + 1;
    if deferred_join {
        format!(
            "SELECT {USER_COLUMNS} FROM auth_user u JOIN (\
             SELECT u.id FROM auth_user u {where_clause} {order_clause} LIMIT ${limit_param} OFFSET ${offset_param}\
             ) AS page ON page.id = u.id {order_clause}"
        )
    } else {
        format!(
            "SELECT {USER_COLUMNS} FROM auth_user u {where_clause} {order_clause} LIMIT ${limit_param} OFFSET ${offset_param}"
        )
    }
}

/// A login's last step, only if the user is still active with the hash that was verified
/// (`$3`): the verification ran without a transaction, and a password change or a
/// deactivation that committed meanwhile must win. As an UPDATE it takes the user's row
/// lock, which a password change takes first too (`SET_PASSWORD`), so the two serialise:
/// the change either ends the session this login starts, or makes this match nothing.
pub const RECORD_LOGIN: &str =
    "UPDATE auth_user SET last_login = $2 WHERE id = $1 AND password = $3 AND is_active";
/// The same row lock for exchanging a SimpleJWT refresh token: matches only while the
/// user is active. The cut-off is read by the next statement (`CUTOFF_SINCE`), not in a
/// subquery here: after waiting for the lock, PostgreSQL re-reads the locked row but not
/// other tables, so a subquery would miss the cut-off the password change just set.
pub const HOLD_ACTIVE_USER: &str =
    "UPDATE auth_user SET is_active = is_active WHERE id = $1 AND is_active";
/// Whether a cut-off (a password change) came at or after `$2`; run after
/// `HOLD_ACTIVE_USER`, so it sees what a change that held the lock committed.
pub const CUTOFF_SINCE: &str =
    "SELECT count(*) FROM gatehouse_user_state WHERE user_id = $1 AND tokens_valid_after >= $2";
/// `$3`, when set: only while the stored hash is still this one (the hash the old
/// password was verified against), so a reset or change that landed meanwhile is not
/// overwritten, neither by a change proved with the old password nor by a login's
/// upgrade of the old hash.
pub const SET_PASSWORD: &str =
    "UPDATE auth_user SET password = $2 WHERE id = $1 AND ($3 IS NULL OR password = $3)";
pub const SET_TOKEN_CUTOFF: &str =
    "INSERT INTO gatehouse_user_state (user_id, tokens_valid_after) VALUES ($1, $2) \
    ON CONFLICT (user_id) DO UPDATE SET tokens_valid_after = excluded.tokens_valid_after";
pub const END_SESSIONS_EXCEPT: &str =
    "DELETE FROM gatehouse_session WHERE user_id = $1 AND ($2 IS NULL OR id <> $2)";
pub const DELETE_USER_STATE: &[&str] = &[
    "DELETE FROM gatehouse_session WHERE user_id = $1",
    "DELETE FROM gatehouse_user_state WHERE user_id = $1",
    "DELETE FROM gatehouse_spent_token WHERE user_id = $1",
];
/// `$2`: when true, only while the user is neither staff nor superuser, checked in the
/// DELETE's own condition (again after a row lock wait on PostgreSQL).
pub const DELETE_USER: &str =
    "DELETE FROM auth_user WHERE id = $1 AND NOT ($2 AND (is_staff OR is_superuser))";
pub const USER_PRIVILEGES: &str = "SELECT is_staff, is_superuser FROM auth_user WHERE id = $1";
/// Rows of Django's own apps that point at a user without a database-level cascade
/// (Django cascades in Python): what its collector would do, for the tables that exist.
pub const DJANGO_DEPENDENTS: &[(&str, &str)] = &[
    (
        "auth_user_groups",
        "DELETE FROM auth_user_groups WHERE user_id = $1",
    ),
    (
        "auth_user_user_permissions",
        "DELETE FROM auth_user_user_permissions WHERE user_id = $1",
    ),
    (
        "django_admin_log",
        "DELETE FROM django_admin_log WHERE user_id = $1",
    ),
    (
        "token_blacklist_outstandingtoken",
        "UPDATE token_blacklist_outstandingtoken SET user_id = NULL WHERE user_id = $1",
    ),
];

pub const INSERT_SESSION: &str =
    "INSERT INTO gatehouse_session (id, user_id, refresh_jti, created_at, refreshed_at) VALUES ($1, $2, $3, $4, $4)";
pub const ROTATE_REFRESH: &str =
    "UPDATE gatehouse_session SET refresh_jti = $4, refreshed_at = $5 \
    WHERE id = $1 AND user_id = $2 AND refresh_jti = $3";
pub const END_SESSION_OF: &str = "DELETE FROM gatehouse_session WHERE id = $1 AND user_id = $2";
pub const END_SESSION: &str = "DELETE FROM gatehouse_session WHERE id = $1";
pub const SESSION: &str = "SELECT user_id, refresh_jti FROM gatehouse_session WHERE id = $1";
pub const SPEND_TOKEN: &str =
    "INSERT INTO gatehouse_spent_token (jti, user_id, expires_at, session_id) \
    VALUES ($1, $2, $3, $4) ON CONFLICT (jti) DO NOTHING";
pub const USER_ID_RANGE: &str =
    "SELECT CAST(min(id) AS BIGINT), CAST(max(id) AS BIGINT) FROM auth_user";
/// The first user at or after id `$1`: a user picked at random from a random id.
pub const PASSWORD_FROM_ID: &str =
    "SELECT password FROM auth_user WHERE id >= $1 ORDER BY id LIMIT 1";
pub const TOKEN_SPENT: &str = "SELECT count(*) FROM gatehouse_spent_token WHERE jti = $1";
/// The table of SimpleJWT's blacklist app (`rest_framework_simplejwt.token_blacklist`),
/// on a database Django shares or left behind.
pub const SIMPLEJWT_BLACKLIST_TABLE: &str = "token_blacklist_blacklistedtoken";
/// Whether SimpleJWT blacklisted the refresh token `$1` (its logout, or its rotation
/// with `BLACKLIST_AFTER_ROTATION`): a blacklisted token points at its outstanding one.
pub const SIMPLEJWT_BLACKLISTED: &str = "SELECT count(*) FROM token_blacklist_blacklistedtoken b \
    JOIN token_blacklist_outstandingtoken o ON o.id = b.token_id WHERE o.jti = $1";
pub const END_SESSION_STARTED_BY: &str =
    "DELETE FROM gatehouse_session WHERE id = (SELECT session_id FROM gatehouse_spent_token WHERE jti = $1)";
pub const PURGE_SESSIONS: &str = "DELETE FROM gatehouse_session WHERE refreshed_at < $1";
pub const PURGE_SPENT: &str = "DELETE FROM gatehouse_spent_token WHERE expires_at < $1";

pub const INSERT_SETTING: &str =
    "INSERT INTO gatehouse_setting (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING";
pub const SETTING: &str = "SELECT value FROM gatehouse_setting WHERE name = $1";

pub fn credentials_by_email() -> String {
    format!("SELECT {USER_COLUMNS}, u.password FROM auth_user u WHERE u.email <> '' AND lower(u.email) = lower($1) ORDER BY u.id LIMIT 1")
}

pub const INSERT_RESET_TOKEN: &str = "INSERT INTO gatehouse_reset_token \
    (digest, user_id, password_fingerprint, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)";
pub const RESET_TOKEN_FINGERPRINT: &str = "SELECT password_fingerprint FROM gatehouse_reset_token \
    WHERE digest = $1 AND user_id = $2 AND expires_at > $3";
pub const SPEND_RESET_TOKEN: &str = "DELETE FROM gatehouse_reset_token \
    WHERE digest = $1 AND user_id = $2 AND expires_at > $3 RETURNING password_fingerprint";
pub const DELETE_RESET_TOKENS_OF: &str = "DELETE FROM gatehouse_reset_token WHERE user_id = $1";
pub const PURGE_RESET_TOKENS: &str = "DELETE FROM gatehouse_reset_token WHERE expires_at < $1";
pub const QUEUE_RESET_REQUEST: &str =
    "INSERT INTO gatehouse_reset_request (email, base_url, requested_at) VALUES ($1, $2, $3)";
pub const PENDING_RESET_REQUESTS: &str =
    "SELECT id FROM gatehouse_reset_request ORDER BY id LIMIT $1";
/// Taking a request is deleting it: of two workers, one gets the row.
pub const TAKE_RESET_REQUEST: &str =
    "DELETE FROM gatehouse_reset_request WHERE id = $1 RETURNING email, base_url, requested_at";

pub const ENQUEUE_EMAIL: &str = "INSERT INTO gatehouse_outbox \
    (recipient, subject, body, created_at, attempts, next_attempt_at) VALUES ($1, $2, $3, $4, 0, $4)";
pub const DUE_EMAILS: &str = "SELECT id, next_attempt_at FROM gatehouse_outbox \
    WHERE sent_at IS NULL AND next_attempt_at <= $1 ORDER BY next_attempt_at, id LIMIT $2";
/// The claim is a compare-and-swap on `next_attempt_at`: of two workers, one wins.
pub const CLAIM_EMAIL: &str =
    "UPDATE gatehouse_outbox SET next_attempt_at = $3, attempts = attempts + 1 \
    WHERE id = $1 AND next_attempt_at = $2 AND sent_at IS NULL \
    RETURNING recipient, subject, body, attempts, created_at";
/// A delivered message keeps its envelope for the record but not its body, which holds a
/// reset secret.
pub const EMAIL_SENT: &str =
    "UPDATE gatehouse_outbox SET sent_at = $2, last_error = NULL, body = '' WHERE id = $1";
/// `$2` NULL gives the message up: it stays, with its error but without its body, and is
/// never due again.
pub const EMAIL_FAILED: &str =
    "UPDATE gatehouse_outbox SET next_attempt_at = COALESCE($2, 9223372036854775807), \
    last_error = $3, body = CASE WHEN $2 IS NULL THEN '' ELSE body END WHERE id = $1";

/// `$2` now, `$3` the start of the oldest window still open (now − window).
pub const THROTTLE_HIT: &str = "INSERT INTO gatehouse_throttle (key, window_start, hits) VALUES ($1, $2, 1) \
    ON CONFLICT (key) DO UPDATE SET \
    hits = CASE WHEN gatehouse_throttle.window_start <= $3 THEN 1 ELSE gatehouse_throttle.hits + 1 END, \
    window_start = CASE WHEN gatehouse_throttle.window_start <= $3 THEN $2 ELSE gatehouse_throttle.window_start END \
    RETURNING CAST(hits AS BIGINT), window_start";

/// Login failures of `$1` (account) from `$2` (client) and from every client (`'*'`).
pub const LOGIN_FAILURES: &str = "SELECT client, CAST(failures AS BIGINT), last_failure \
    FROM gatehouse_login_failure WHERE account = $1 AND client IN ($2, '*')";
pub const KNOWN_CLIENT: &str =
    "SELECT count(*) FROM gatehouse_known_client WHERE account = $1 AND client = $2";
/// Stores the counts `$3` (for client `$2`) and `$4` (account-wide) of account `$1`, with
/// their latest failure at `$5`.
pub const LOGIN_COUNT: &str = "INSERT INTO gatehouse_login_failure (account, client, failures, last_failure) \
    VALUES ($1, $2, $3, $5), ($1, '*', $4, $5) \
    ON CONFLICT (account, client) DO UPDATE SET failures = excluded.failures, last_failure = excluded.last_failure";
pub const LOGIN_UNCOUNT: &str = "UPDATE gatehouse_login_failure SET failures = failures - 1 \
    WHERE account = $1 AND client IN ($2, '*') AND failures > 0";
pub const LOGIN_CLEAR_CLIENT: &str =
    "DELETE FROM gatehouse_login_failure WHERE account = $1 AND client = $2";
pub const LOGIN_CLEAR_ACCOUNT: &str = "DELETE FROM gatehouse_login_failure WHERE account = $1";
pub const LOGIN_FORGET_CLIENTS: &str = "DELETE FROM gatehouse_known_client WHERE account = $1";
/// Whether user `$1`'s stored hash is still `$2`.
pub const PASSWORD_STILL: &str = "SELECT count(*) FROM auth_user WHERE id = $1 AND password = $2";
pub const LOGIN_KNOWN_CLIENT: &str =
    "INSERT INTO gatehouse_known_client (account, client, last_login) VALUES ($1, $2, $3) \
    ON CONFLICT (account, client) DO UPDATE SET last_login = $3";
pub const PURGE_LOGIN_FAILURES: &str =
    "DELETE FROM gatehouse_login_failure WHERE last_failure < $1";
pub const PURGE_KNOWN_CLIENTS: &str = "DELETE FROM gatehouse_known_client WHERE last_login < $1";
pub const PURGE_THROTTLE: &str = "DELETE FROM gatehouse_throttle WHERE window_start < $1";
/// Messages sent, or given up, before `$1`. Pending ones stay however old they are.
pub const PURGE_OUTBOX: &str = "DELETE FROM gatehouse_outbox WHERE created_at < $1 \
    AND (sent_at IS NOT NULL OR next_attempt_at = 9223372036854775807)";
