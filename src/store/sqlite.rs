//! The SQLite backend: one file, WAL journal, `synchronous=NORMAL`, foreign keys on.
//!
//! Writes that span several statements run in `BEGIN IMMEDIATE` transactions: SQLite has
//! one writer at a time, and taking the write lock up front makes a second writer wait
//! (`busy_timeout`) instead of failing with SQLITE_BUSY when it upgrades a read lock.
//! `auth_user` timestamps are written as Django writes them on SQLite (naive UTC text).
//! The `Store` verbs themselves are shared with PostgreSQL: see `common.rs`.

use super::common::impl_store;
use super::{
    conflicts, is_unique_violation, like_pattern, migrate, sql, user_query_clauses, AccessCheck,
    Arg, Credentials, Guarded, MakeResetMail, NewEmail, NewUser, OutboxEmail, Rotation, SessionId,
    Store, StoreError, UniqueField, UserQuery, UserUpdate, MIGRATIONS_LOCK, SUPERUSERS_LOCK,
};
use super::{login_lock_key, LockoutPolicy, LoginRecord};
use crate::auth::lockout::Failures;
use crate::domain::{User, UserId};
use chrono::{DateTime, NaiveDateTime, Utc};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{ConnectOptions, Executor, Row, Sqlite, SqliteConnection, Transaction};
use std::str::FromStr;
use std::time::Duration;

pub struct SqliteStore {
    pool: SqlitePool,
    /// Connections kept out of the pool for the access check (`fetch_hot`).
    hot: HotConnections,
}

/// sqlx runs each SQLite connection on a thread of its own, so every query is a round
/// trip between threads, and its pool adds one more on every release (it pings the
/// connection) and, by default, on every acquire. For the one query every authenticated
/// request makes, those round trips cost more than the query: profiled under `GET
/// /api/users/me/`, most of the CPU went to waking threads (bench/RESULTS.md). These
/// connections are lent by a mutex instead, one round trip per query; a connection that
/// fails is replaced.
struct HotConnections {
    options: SqliteConnectOptions,
    slots: Vec<tokio::sync::Mutex<SqliteConnection>>,
    next: std::sync::atomic::AtomicUsize,
}

impl HotConnections {
    async fn open(options: SqliteConnectOptions, count: usize) -> Result<Self, sqlx::Error> {
        let mut slots = Vec::with_capacity(count);
        for _ in 0..count.max(1) {
            slots.push(tokio::sync::Mutex::new(options.connect().await?));
        }
        Ok(Self {
            options,
            slots,
            next: Default::default(),
        })
    }

    async fn fetch_optional<'q>(
        &self,
        query: sqlx::query::Query<'q, Sqlite, sqlx::sqlite::SqliteArguments<'q>>,
    ) -> Result<Option<SqliteRow>, sqlx::Error> {
        // A free connection if there is one, else wait for the next in turn.
        let start = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let n = self.slots.len();
        let free = (0..n).find_map(|i| self.slots[(start + i) % n].try_lock().ok());
        let mut conn = match free {
            Some(conn) => conn,
            None => self.slots[start % n].lock().await,
        };
        let result = query.fetch_optional(&mut *conn).await;
        if matches!(
            result,
            Err(sqlx::Error::WorkerCrashed | sqlx::Error::Io(_) | sqlx::Error::Protocol(_))
        ) {
            if let Ok(fresh) = self.options.connect().await {
                *conn = fresh;
            }
        }
        result
    }
}

type Db = Sqlite;

/// `auth_user.id`: SQLite integers are 64-bit.
type DbId = i64;

/// Django's SQLite datetime text: `2025-01-31 12:00:00.123456`, naive UTC.
fn db_time(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%S%.6f").to_string()
}

fn parse_db_time(text: &str) -> Result<DateTime<Utc>, sqlx::Error> {
    let text = text.trim();
    match parse_django_time(text) {
        Some(at) => Ok(at),
        None => parse_any_db_time(text),
    }
}

fn parse_any_db_time(text: &str) -> Result<DateTime<Utc>, sqlx::Error> {
    // Django writes naive UTC, without the fraction when it is zero; tolerate an ISO `T`
    // and an offset too.
    DateTime::parse_from_rfc3339(text)
        .map(|at| at.with_timezone(&Utc))
        .or_else(|_| {
            NaiveDateTime::parse_from_str(&text.replace('T', " "), "%Y-%m-%d %H:%M:%S%.f")
                .map(|n| n.and_utc())
        })
        .map_err(|e| sqlx::Error::Decode(format!("bad datetime in auth_user: {e}").into()))
}

/// Exactly Django's form, `YYYY-MM-DD HH:MM:SS` with an optional fraction of 1–9 digits,
/// read by hand; anything else is `None`, for `parse_db_time`'s general way. Every
/// authenticated request reads two of these, and the general way (an RFC 3339 attempt
/// that fails, a copy, then chrono's pattern) cost about 7 % of a `me` request's CPU
/// (bench/RESULTS.md).
fn parse_django_time(text: &str) -> Option<DateTime<Utc>> {
    let bytes = text.as_bytes();
    let number = |from: usize, to: usize| -> Option<u32> {
        bytes.get(from..to)?.iter().try_fold(0u32, |n, &c| {
            c.is_ascii_digit().then(|| n * 10 + u32::from(c - b'0'))
        })
    };
    let separators = [(4, b'-'), (7, b'-'), (10, b' '), (13, b':'), (16, b':')];
    if !separators.iter().all(|&(at, c)| bytes.get(at) == Some(&c)) {
        return None;
    }
    let nanos = match bytes.get(19..)? {
        [] => 0,
        [b'.', fraction @ ..] if (1..=9).contains(&fraction.len()) => {
            number(20, bytes.len())? * 10u32.pow(9 - fraction.len() as u32)
        }
        _ => return None,
    };
    chrono::NaiveDate::from_ymd_opt(number(0, 4)? as i32, number(5, 7)?, number(8, 10)?)?
        .and_hms_nano_opt(number(11, 13)?, number(14, 16)?, number(17, 19)?, nanos)
        .map(|at| at.and_utc())
}

fn row_to_user(row: &SqliteRow) -> Result<User, sqlx::Error> {
    Ok(User {
        id: UserId(row.try_get("id")?),
        username: row.try_get("username")?,
        email: row.try_get("email")?,
        first_name: row.try_get("first_name")?,
        last_name: row.try_get("last_name")?,
        is_active: row.try_get("is_active")?,
        is_staff: row.try_get("is_staff")?,
        is_superuser: row.try_get("is_superuser")?,
        date_joined: parse_db_time(row.try_get("date_joined")?)?,
        last_login: row
            .try_get::<Option<&str>, _>("last_login")?
            .map(parse_db_time)
            .transpose()?,
    })
}

fn row_to_credentials(row: &SqliteRow) -> Result<Credentials, sqlx::Error> {
    Ok(Credentials {
        user: row_to_user(row)?,
        password_hash: row.try_get("password")?,
    })
}

impl SqliteStore {
    pub async fn open(url: &str, pool_size: u32) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5));
        let hot = HotConnections::open(options.clone(), hot_connections(pool_size)).await?;
        let pool = SqlitePoolOptions::new()
            .max_connections(pool_size)
            // sqlx pings an idle connection before lending it by default: one more round
            // trip to the connection's worker thread per query, which costs as much as
            // the query. A connection to a local file cannot go stale; a broken one
            // still fails its query and is dropped when it comes back to the pool.
            .test_before_acquire(false)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options)
            .await?;
        Ok(Self { pool, hot })
    }

    async fn fetch_hot<'q>(
        &self,
        query: sqlx::query::Query<'q, Sqlite, sqlx::sqlite::SqliteArguments<'q>>,
    ) -> Result<Option<SqliteRow>, sqlx::Error> {
        self.hot.fetch_optional(query).await
    }

    async fn begin_write(&self) -> Result<Transaction<'_, Sqlite>, sqlx::Error> {
        self.pool.begin_with("BEGIN IMMEDIATE").await
    }

    /// `begin_write` already holds SQLite's one write lock, which serialises what a lock
    /// would: migrations of instances starting together, changes to superusers.
    async fn lock(&self, _tx: &mut Transaction<'_, Sqlite>, _key: i64) -> Result<(), sqlx::Error> {
        Ok(())
    }
}

/// How many connections serve the access check: one per core (each is a thread that
/// sleeps between queries), at least two, but no more than the pool has.
fn hot_connections(pool_size: u32) -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    cores.max(2).min(pool_size as usize)
}

/// One `?search=` term. Three characters or more: a phrase query on the trigram index
/// (`gatehouse_user_search`), which matches substrings of either column with Unicode
/// case folding, and takes `%` and `_` literally. Shorter terms have no trigram: a scan
/// with LIKE, which folds ASCII letters only, so the term is tried as typed and in lower
/// case.
fn search_condition(first: usize, term: &str) -> (String, Vec<String>) {
    if term.chars().count() >= 3 {
        let phrase = format!("\"{}\"", term.replace('"', "\"\""));
        let sql = format!("u.id IN (SELECT rowid FROM gatehouse_user_search WHERE gatehouse_user_search MATCH ${first})");
        (sql, vec![phrase])
    } else {
        let (typed, lowered) = (first, first + 1);
        let like = |column: &str| {
            format!(
                "u.{column} LIKE ${typed} ESCAPE '\\' OR u.{column} LIKE ${lowered} ESCAPE '\\'"
            )
        };
        let sql = format!("({} OR {})", like("username"), like("email"));
        (
            sql,
            vec![like_pattern(term), like_pattern(&term.to_lowercase())],
        )
    }
}

/// Case folding one character at a time, as PostgreSQL's `lower()` does (no special
/// final sigma), so both databases agree on which usernames collide.
pub(super) fn fold(text: &str) -> String {
    text.chars().flat_map(char::to_lowercase).collect()
}

/// Another user whose username equals `username` but for case beyond ASCII. The unique
/// index on `lower(username)` covers ASCII letters only, because SQLite's `lower()` folds
/// no others, and an index on a function of ours would break Django writing to the same
/// file. The trigram index folds case too (by SQLite's Unicode tables, older than Rust's:
/// a few scripts cased since, such as Georgian Mtavruli, are not seen), so it finds the
/// candidates, and `fold` decides. Callers hold the write lock (or only read), so this
/// is race-free.
async fn case_variant_of(
    conn: &mut SqliteConnection,
    username: &str,
    except: i64,
) -> Result<Option<i64>, sqlx::Error> {
    // U+212A KELVIN SIGN is the one non-ASCII character that folds to ASCII ('k'):
    // an all-ASCII name without a k has no variant the unique index misses.
    if username.is_ascii() && !username.contains(['k', 'K']) {
        return Ok(None);
    }
    let key = fold(username);
    let length = username.chars().count();
    let candidates: Vec<(i64, String)> = if length >= 3 {
        let phrase = format!("\"{}\"", username.replace('"', "\"\""));
        sqlx::query_as(
            "SELECT id, username FROM auth_user WHERE id <> $2 AND id IN \
             (SELECT rowid FROM gatehouse_user_search WHERE username MATCH $1)",
        )
        .bind(phrase)
        .bind(except)
        .fetch_all(&mut *conn)
        .await?
    } else {
        sqlx::query_as(
            "SELECT id, username FROM auth_user WHERE id <> $2 AND length(username) = $1",
        )
        .bind(length as i64)
        .bind(except)
        .fetch_all(&mut *conn)
        .await?
    };
    Ok(candidates
        .into_iter()
        .find(|(_, name)| fold(name) == key)
        .map(|(id, _)| id))
}

use super::django::sqlite_case_conflicts as case_conflicts;
const REFERENCING_COLUMNS: &str = super::django::SQLITE_REFERENCING_COLUMNS;
const MIGRATIONS: &[migrate::Migration] = migrate::SQLITE;
const DEFERRED_JOIN: bool = false;
const TABLE_EXISTS: &str = "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = $1";

impl_store!(SqliteStore);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn djangos_datetimes_read_by_hand_as_chrono_reads_them() {
        let mut texts: Vec<String> = [
            "2025-01-31 12:00:00",
            "2025-01-31 12:00:00.123456",
            "2025-01-31 12:00:00.1",
            "2025-01-31 12:00:00.123456789",
            "2024-02-29 23:59:59.999999",
            "0001-01-01 00:00:00",
            "9999-12-31 23:59:59.000001",
        ]
        .map(str::to_owned)
        .to_vec();
        for i in 0..500u64 {
            let n = i.wrapping_mul(2_654_435_761);
            texts.push(format!(
                "{:04}-{:02}-{:02} {:02}:{:02}:{:02}.{:06}",
                1900 + n % 300,
                1 + n % 12,
                1 + n % 28,
                n % 24,
                n % 60,
                (n / 7) % 60,
                n % 1_000_000
            ));
        }
        for text in &texts {
            let by_hand = parse_django_time(text).expect(text);
            assert_eq!(by_hand, parse_any_db_time(text).unwrap(), "{text}");
            if text.len() == "2025-01-31 12:00:00.123456".len() {
                assert_eq!(db_time(by_hand), *text, "what gatehouse writes reads back");
            }
        }
        // Other shapes are left to chrono, which reads or refuses them as before.
        for text in [
            "2025-01-31T12:00:00.5",
            "2025-01-31T12:00:00+02:00",
            "2025-01-31 12:00:00.",
            "2025-01-31 12:00:00.1234567890",
            "2025-02-30 12:00:00",
            "2025-01-31 24:00:00",
            "2016-12-31 23:59:60",
            "25-01-31 12:00:00",
            "2025-1-31 12:00:00",
            "+2025-01-31 12:00:00",
            "2025-01-31 12:00:00Z",
        ] {
            assert_eq!(parse_django_time(text), None, "{text}");
        }
        assert!(parse_db_time("2025-01-31T12:00:00.5").is_ok());
        assert!(parse_db_time("2025-02-30 12:00:00").is_err());
    }
}
