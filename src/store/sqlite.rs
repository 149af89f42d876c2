//! The SQLite backend: one file, WAL journal, `synchronous=NORMAL`, foreign keys on.
//!
//! Writes that span several statements run in `BEGIN IMMEDIATE` transactions: SQLite has
//! one writer at a time, and taking the write lock up front makes a second writer wait
//! (`busy_timeout`) instead of failing with SQLITE_BUSY when it upgrades a read lock.
//! `auth_user` timestamps are written as Django writes them on SQLite (naive UTC text).
//! The `Store` verbs themselves are shared with PostgreSQL: see `common.rs`.

use super::common::impl_store;
use super::wal_index::{self, WalIndex};
use super::{
    conflicts, is_unique_violation, like_pattern, migrate, sql, user_query_clauses, AccessCheck,
    Arg, Credentials, Exchange, Guarded, MakeResetMail, NewEmail, NewUser, OutboxEmail, Rotation,
    SessionId, SpentToken, Store, StoreError, UniqueField, UserQuery, UserUpdate, MIGRATIONS_LOCK,
    SUPERUSERS_LOCK,
};
use super::{login_lock_key, LockoutPolicy, LoginRecord};
use crate::auth::lockout::Failures;
use crate::domain::{User, UserId};
use chrono::{DateTime, NaiveDateTime, Utc};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{Executor, Row, Sqlite, SqliteConnection, Transaction};
use std::collections::HashMap;
use std::str::FromStr;
use std::time::Duration;

pub struct SqliteStore {
    pool: SqlitePool,
    /// Connections for the access check, used on the calling thread (`access_check_in_place`).
    readers: Option<AccessReaders>,
}

/// The access check, the one query every authenticated request makes, answered on the
/// request's own thread.
///
/// sqlx runs each SQLite connection on a thread of its own, so every query is a round
/// trip between threads: under `GET /api/users/me/` on 2 cores, waking those threads and
/// waiting for them took more CPU than everything else the request does, and the query
/// itself a small fraction of it (bench/RESULTS.md). The query is a primary-key lookup
/// of a few cached pages, microseconds, and in WAL mode a reader never waits for a
/// writer; so it runs here, through rusqlite on connections of our own, without
/// yielding. sqlx has no way to run a query on the caller's thread.
///
/// The connections never wait for a lock (`busy_timeout` 0): should SQLite ever answer
/// BUSY, or fail in any way, the check falls back to the pool, whose error handling is
/// the rest of the store's. What can still hold the thread, rarely: SQLite's own short
/// retry sleeps while another process restarts the WAL or runs a RESTART/TRUNCATE
/// checkpoint, recovering the WAL after another process crashed mid-write, and reading
/// pages from the OS after a commit emptied the connection's cache. The request deadline
/// cannot interrupt these, as it can a query on the pool.
///
/// Each connection also keeps the answers it gave since the last commit to the database
/// (`RecentAnswers`): while nothing has been committed, by this process or another, a
/// repeated check is answered from memory, without a read transaction. Whether anything
/// was committed is read from SQLite's WAL-index header (`wal_index.rs`).
struct AccessReaders {
    slots: Vec<std::sync::Mutex<Reader>>,
    next: std::sync::atomic::AtomicUsize,
    /// `None` when the header cannot be read: every check then reads the database.
    wal_index: Option<WalIndex>,
    /// Runs after a check has read the database, before its answer is kept (for the
    /// tests: a commit in between).
    #[cfg(test)]
    after_read: std::sync::Mutex<Option<Box<dyn FnMut() + Send>>>,
}

struct Reader {
    conn: rusqlite::Connection,
    answers: RecentAnswers,
    /// Checks this connection answered by reading the database (for the tests).
    #[cfg(test)]
    reads: u64,
}

/// The access checks one connection answered, each read at one version of the database or
/// a later one.
///
/// Bounded: past `RecentAnswers::MOST` they are forgotten together, at a cost of one read
/// each when asked again. An answer is the user's row, a few hundred bytes.
#[derive(Default)]
struct RecentAnswers {
    version: Option<wal_index::Version>,
    /// By user id, then by session id: a user has few sessions, and looking up by id
    /// needs no owned key.
    by_user: HashMap<i64, Vec<SessionAnswer>>,
    count: usize,
}

/// A session id (`None`: a token without one) and the check's answer for it.
type SessionAnswer = (Option<Box<str>>, Option<AccessCheck>);

impl RecentAnswers {
    const MOST: usize = 1024;

    /// The answer for `id` and `sid` if it was kept under `version` (read at it or later).
    fn get(
        &self,
        version: &wal_index::Version,
        id: UserId,
        sid: Option<&str>,
    ) -> Option<&Option<AccessCheck>> {
        if self.version.as_ref() != Some(version) {
            return None;
        }
        let sessions = self.by_user.get(&id.0)?;
        sessions
            .iter()
            .find(|(session, _)| session.as_deref() == sid)
            .map(|(_, answer)| answer)
    }

    /// Keeps `answer`, read from the database after the header stood at `version`.
    fn keep(
        &mut self,
        version: wal_index::Version,
        id: UserId,
        sid: Option<&str>,
        answer: &Option<AccessCheck>,
    ) {
        if self.version != Some(version) || self.count >= Self::MOST {
            self.by_user.clear();
            self.count = 0;
            self.version = Some(version);
        }
        self.by_user
            .entry(id.0)
            .or_default()
            .push((sid.map(Box::from), answer.clone()));
        self.count += 1;
    }
}

impl AccessReaders {
    /// One connection per tokio worker thread (one per core unless
    /// `TOKIO_WORKER_THREADS` says otherwise). `None` unless `url` names a plain database
    /// file: an in-memory database is the pool's alone, and URL parameters such as
    /// `vfs=` or `immutable=` change how SQLite opens and locks the file in ways these
    /// connections would not follow. Without readers, the pool answers every check.
    fn open(url: &str, options: &SqliteConnectOptions) -> Option<Self> {
        let query = url.split_once('?').map_or("", |(_, query)| query);
        let plain_parameters = query
            .split('&')
            .filter(|parameter| !parameter.is_empty())
            .all(|parameter| matches!(parameter, "mode=rw" | "mode=rwc"));
        let path = options.get_filename();
        let name = path.to_string_lossy();
        if !plain_parameters
            || url.contains(":memory:")
            || name.is_empty()
            || name.starts_with(':')
            || name.starts_with("file:")
        {
            return None;
        }
        let workers = std::env::var("TOKIO_WORKER_THREADS")
            .ok()
            .and_then(|n| n.trim().parse::<usize>().ok())
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
        let open = || -> rusqlite::Result<rusqlite::Connection> {
            let conn = rusqlite::Connection::open_with_flags(
                path,
                rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE
                    | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX
                    | rusqlite::OpenFlags::SQLITE_OPEN_URI,
            )?;
            conn.busy_timeout(Duration::ZERO)?;
            conn.pragma_update(None, "query_only", true)?;
            Ok(conn)
        };
        let slots = (0..workers.max(2))
            .map(|_| open())
            .collect::<rusqlite::Result<Vec<_>>>();
        match slots {
            Ok(connections) => {
                let wal_index = open().ok().and_then(WalIndex::open);
                if wal_index.is_none() {
                    tracing::info!("SQLite's WAL-index header is not readable: every access check reads the database");
                }
                let reader = |conn| Reader {
                    conn,
                    answers: RecentAnswers::default(),
                    #[cfg(test)]
                    reads: 0,
                };
                Some(Self {
                    slots: connections
                        .into_iter()
                        .map(|conn| std::sync::Mutex::new(reader(conn)))
                        .collect(),
                    next: Default::default(),
                    wal_index,
                    #[cfg(test)]
                    after_read: Default::default(),
                })
            }
            Err(e) => {
                tracing::warn!(error = %e, "SQLite access-check connections not opened; using the pool");
                None
            }
        }
    }

    fn access_check(&self, id: UserId, sid: Option<&str>) -> rusqlite::Result<Option<AccessCheck>> {
        // A free connection if there is one, else wait (microseconds) for the next in turn.
        let start = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let n = self.slots.len();
        let free = (0..n).find_map(|i| self.slots[(start + i) % n].try_lock().ok());
        let mut reader = match free {
            Some(reader) => reader,
            None => self.slots[start % n]
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        };
        // Read before the database: the answer read next is at least as new as this
        // version, so it may stand for it. (`None` while a commit is being written.)
        let version = self.wal_index.as_ref().and_then(WalIndex::version);
        if let Some(version) = &version {
            if let Some(answer) = reader.answers.get(version, id, sid) {
                return Ok(answer.clone());
            }
        }
        let answer = read_access_check(&reader.conn, id, sid)?;
        #[cfg(test)]
        {
            reader.reads += 1;
            if let Some(hook) = self.after_read.lock().unwrap().as_mut() {
                hook();
            }
        }
        if let Some(version) = version {
            reader.answers.keep(version, id, sid, &answer);
        }
        Ok(answer)
    }
}

/// The access check's query, on one of `AccessReaders`' connections.
fn read_access_check(
    conn: &rusqlite::Connection,
    id: UserId,
    sid: Option<&str>,
) -> rusqlite::Result<Option<AccessCheck>> {
    let mut statement = conn.prepare_cached(sql::access_check())?;
    let mut rows = statement.query(rusqlite::named_params! { "$1": id.0, "$2": sid })?;
    let Some(row) = rows.next()? else {
        return Ok(None);
    };
    // By position, in `sql::access_check`'s order: looking columns up by name
    // compares every column's name for each.
    let text_time = |column: usize| -> rusqlite::Result<Option<DateTime<Utc>>> {
        let text: Option<String> = row.get(column)?;
        text.map(|t| parse_db_time(&t))
            .transpose()
            .map_err(|e| rusqlite::Error::InvalidColumnName(e.to_string()))
    };
    let user = User {
        id: UserId(row.get(0)?),
        username: row.get(1)?,
        email: row.get(2)?,
        first_name: row.get(3)?,
        last_name: row.get(4)?,
        is_active: row.get(5)?,
        is_staff: row.get(6)?,
        is_superuser: row.get(7)?,
        date_joined: text_time(8)?.ok_or(rusqlite::Error::InvalidColumnType(
            8,
            "date_joined".into(),
            rusqlite::types::Type::Null,
        ))?,
        last_login: text_time(9)?,
    };
    Ok(Some(AccessCheck {
        user,
        session_live: row.get(10)?,
        tokens_valid_after: row.get(11)?,
    }))
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
        let pool = SqlitePoolOptions::new()
            .max_connections(pool_size)
            // sqlx pings an idle connection before lending it by default: one more round
            // trip to the connection's worker thread per query, which costs as much as
            // the query. A connection to a local file cannot go stale; a broken one
            // still fails its query and is dropped when it comes back to the pool.
            .test_before_acquire(false)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options.clone())
            .await?;
        // After the pool: its first connection creates the file if it is missing.
        let readers = AccessReaders::open(url, &options);
        Ok(Self { pool, readers })
    }

    /// The access check without leaving this thread (`AccessReaders`); `None` when it
    /// must go through the pool instead.
    fn access_check_in_place(&self, id: UserId, sid: Option<&str>) -> Option<Option<AccessCheck>> {
        let readers = self.readers.as_ref()?;
        match readers.access_check(id, sid) {
            Ok(answer) => Some(answer),
            Err(e) => {
                // The first at warning level: a lasting cause (a type rusqlite reads more
                // strictly than sqlx, say) would otherwise slow every request unseen.
                static WARNED: std::sync::atomic::AtomicBool =
                    std::sync::atomic::AtomicBool::new(false);
                if WARNED.swap(true, std::sync::atomic::Ordering::Relaxed) {
                    tracing::debug!(error = %e, "in-place access check failed; asking the pool");
                } else {
                    tracing::warn!(error = %e, "in-place access check failed; asking the pool (later failures at debug level)");
                }
                None
            }
        }
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
    use crate::domain::{EmailAddress, Username};

    async fn store_with_user(dir: &tempfile::TempDir) -> (SqliteStore, User) {
        let url = format!("sqlite://{}", dir.path().join("db.sqlite3").display());
        let store = SqliteStore::open(&url, 4).await.unwrap();
        store.migrate().await.unwrap();
        let user = NewUser {
            username: Username::parse("rachel").unwrap(),
            email: EmailAddress::parse("rachel@example.com").unwrap(),
            password_hash: "!".into(),
            first_name: "Rachel".into(),
            last_name: String::new(),
            is_active: true,
            is_staff: false,
            is_superuser: false,
        };
        let user = store.insert_user(&user, Utc::now()).await.unwrap();
        (store, user)
    }

    #[tokio::test]
    async fn the_access_check_is_answered_in_place_and_sees_every_commit_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let (store, user) = store_with_user(&dir).await;
        assert!(
            store.readers.is_some(),
            "a database file gets in-place readers"
        );
        let sid = "0123456789abcdef0123456789abcdef".to_owned();
        let started = store.start_session(user.id, &sid, "jti", "!", Utc::now());
        assert!(started.await.unwrap(), "the hash is still \"!\"");

        let check = store
            .access_check_in_place(user.id, Some(&sid))
            .expect("answered in place")
            .expect("the user exists");
        assert_eq!(
            check.user,
            store.user_by_id(user.id).await.unwrap().unwrap()
        );
        assert!(check.session_live);
        assert_eq!(check.tokens_valid_after, None);

        // What the pool's connections commit, the next check sees.
        store.end_session(&sid).await.unwrap();
        store
            .set_password(user.id, "!new", None, None, Utc::now())
            .await
            .unwrap();
        let check = store
            .access_check_in_place(user.id, Some(&sid))
            .unwrap()
            .unwrap();
        assert!(!check.session_live);
        assert!(check.tokens_valid_after.is_some());
        assert!(store
            .access_check_in_place(UserId(user.id.0 + 1), None)
            .expect("answered in place")
            .is_none());
    }

    /// Checks of every connection, and how many of them read the database.
    fn check_on_every_reader(
        store: &SqliteStore,
        id: UserId,
        sid: Option<&str>,
    ) -> (Vec<Option<AccessCheck>>, u64) {
        let readers = store.readers.as_ref().unwrap();
        let reads = || -> u64 {
            readers
                .slots
                .iter()
                .map(|slot| slot.lock().unwrap().reads)
                .sum()
        };
        let before = reads();
        let answers = (0..readers.slots.len() * 2)
            .map(|_| readers.access_check(id, sid).unwrap())
            .collect();
        (answers, reads() - before)
    }

    #[tokio::test]
    async fn a_repeated_access_check_reads_the_database_again_only_after_a_commit() {
        let dir = tempfile::tempdir().unwrap();
        let (store, user) = store_with_user(&dir).await;
        assert!(store.readers.as_ref().unwrap().wal_index.is_some());
        let sid = "0123456789abcdef0123456789abcdef";
        let started = store.start_session(user.id, sid, "jti", "!", Utc::now());
        assert!(started.await.unwrap());
        let slots = store.readers.as_ref().unwrap().slots.len() as u64;

        let (answers, reads) = check_on_every_reader(&store, user.id, Some(sid));
        assert!(reads <= slots, "once per connection at most: {reads}");
        assert!(answers.iter().all(|a| a.as_ref().unwrap().session_live));
        let (_, reads) = check_on_every_reader(&store, user.id, Some(sid));
        assert_eq!(reads, 0, "nothing committed: every check from memory");
        let (answers, _) = check_on_every_reader(&store, UserId(user.id.0 + 1), None);
        assert!(answers.iter().all(Option::is_none), "no such user");

        // A commit through the pool: the next check on each connection reads again.
        store.end_session(&sid.to_owned()).await.unwrap();
        let (answers, reads) = check_on_every_reader(&store, user.id, Some(sid));
        assert!(reads >= 1);
        assert!(answers.iter().all(|a| !a.as_ref().unwrap().session_live));

        // A commit by another connection, as Django or another gatehouse would make, and
        // one into a WAL a checkpoint has just emptied.
        let other = rusqlite::Connection::open(dir.path().join("db.sqlite3")).unwrap();
        for (n, before) in [(1, ""), (2, "PRAGMA wal_checkpoint(TRUNCATE);")] {
            check_on_every_reader(&store, user.id, None);
            other
                .execute_batch(&format!(
                    "{before} UPDATE auth_user SET first_name = 'R{n}'"
                ))
                .unwrap();
            let (answers, _) = check_on_every_reader(&store, user.id, None);
            for answer in answers {
                assert_eq!(answer.unwrap().user.first_name, format!("R{n}"));
            }
        }
        let deleted = "DELETE FROM gatehouse_user_state; DELETE FROM gatehouse_session; DELETE FROM auth_user";
        other.execute_batch(deleted).unwrap();
        let (answers, _) = check_on_every_reader(&store, user.id, None);
        assert!(answers.iter().all(Option::is_none), "the user is gone");
    }

    #[tokio::test]
    async fn a_commit_while_a_check_reads_is_seen_by_the_next_check() {
        // The answer is kept under the version read before the database: a commit after
        // the read must leave it behind, never file it under the newer version.
        let dir = tempfile::tempdir().unwrap();
        let (mut store, user) = store_with_user(&dir).await;
        assert!(store.readers.as_ref().unwrap().wal_index.is_some());
        let other = rusqlite::Connection::open(dir.path().join("db.sqlite3")).unwrap();
        let mut commit_once = Some(move || {
            other
                .execute("UPDATE auth_user SET first_name = 'Later'", [])
                .unwrap();
        });
        let readers = store.readers.as_mut().unwrap();
        *readers.after_read.get_mut().unwrap() = Some(Box::new(move || {
            if let Some(commit) = commit_once.take() {
                commit();
            }
        }));

        let read = readers.access_check(user.id, None).unwrap().unwrap();
        assert_eq!(read.user.first_name, "Rachel", "read before the commit");
        let slots = readers.slots.len() as u64;
        let (answers, reads) = check_on_every_reader(&store, user.id, None);
        assert_eq!(reads, slots, "each connection reads the commit once");
        for answer in answers {
            assert_eq!(answer.unwrap().user.first_name, "Later");
        }
    }

    #[tokio::test]
    async fn a_session_or_an_exchange_after_a_password_change_is_refused() {
        // The conditions the store checks under the user's row lock, for the races the
        // handlers cannot see (tests/api/login.rs races a real login).
        let dir = tempfile::tempdir().unwrap();
        let (store, user) = store_with_user(&dir).await;
        let issued_at = Utc::now().timestamp() - 10;
        store
            .set_password(user.id, "!new", None, None, Utc::now())
            .await
            .unwrap();

        let sid = "0123456789abcdef0123456789abcdef";
        let stale = store.start_session(user.id, sid, "jti", "!", Utc::now());
        assert!(
            !stale.await.unwrap(),
            "the verified hash is no longer the user's"
        );
        let token = SpentToken {
            jti: "simplejwt-jti",
            user_id: user.id,
            issued_at,
            expires_at: issued_at + 3600,
        };
        let exchanged = store.exchange_spent_token(token, sid, "jti", Utc::now());
        assert_eq!(exchanged.await.unwrap(), Exchange::Refused);
        assert_eq!(store.session(sid).await.unwrap(), None);
        assert!(!store.token_spent("simplejwt-jti").await.unwrap());

        let later = SpentToken {
            issued_at: Utc::now().timestamp() + 1,
            ..token
        };
        let exchanged = store.exchange_spent_token(later, sid, "jti", Utc::now());
        assert_eq!(exchanged.await.unwrap(), Exchange::Exchanged);
        let current = store.start_session(user.id, "another-session", "jti2", "!new", Utc::now());
        assert!(current.await.unwrap());

        // A change that verified the old password does not overwrite a newer one.
        let stale = store.set_password(user.id, "!mine", Some("!"), None, Utc::now());
        assert!(
            !stale.await.unwrap(),
            "the hash it replaces is no longer \"!\""
        );
        assert!(store.session("another-session").await.unwrap().is_some());
        let current = store.set_password(user.id, "!mine", Some("!new"), None, Utc::now());
        assert!(current.await.unwrap());
    }

    #[tokio::test]
    async fn only_a_plain_database_file_gets_in_place_readers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite3");
        rusqlite::Connection::open(&path).unwrap();
        let path = path.display();
        for (url, expected) in [
            (format!("sqlite://{path}"), true),
            (format!("sqlite://{path}?mode=rwc"), true),
            (format!("sqlite:{path}?mode=rw"), true),
            ("sqlite::memory:".to_owned(), false),
            (format!("sqlite://{path}?mode=memory"), false),
            (format!("sqlite://{path}?vfs=unix-none"), false),
            (format!("sqlite://{path}?immutable=true"), false),
        ] {
            let options = SqliteConnectOptions::from_str(&url).unwrap();
            assert_eq!(
                AccessReaders::open(&url, &options).is_some(),
                expected,
                "{url}"
            );
        }
    }

    #[tokio::test]
    async fn when_the_in_place_reader_fails_the_pool_answers() {
        let dir = tempfile::tempdir().unwrap();
        let (mut store, user) = store_with_user(&dir).await;
        // Readers on a file without gatehouse's tables: every in-place check fails, as
        // one would on SQLITE_BUSY or any other error.
        let elsewhere = dir.path().join("empty.sqlite3");
        rusqlite::Connection::open(&elsewhere).unwrap();
        let options =
            SqliteConnectOptions::from_str(&format!("sqlite://{}", elsewhere.display())).unwrap();
        store.readers = AccessReaders::open(&format!("sqlite://{}", elsewhere.display()), &options);
        assert!(store.readers.is_some());
        assert!(store.access_check_in_place(user.id, None).is_none());

        let check = store.access_check(user.id, None).await.unwrap().unwrap();
        assert_eq!(check.user, user);
        assert!(!check.session_live);
    }

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
