//! The PostgreSQL backend. Several instances may share one database: migrations run
//! under an advisory lock, and every multi-statement write is one transaction.
//! The `Store` verbs themselves are shared with SQLite: see `common.rs`.

use super::common::impl_store;
use super::{
    conflicts, is_unique_violation, like_pattern, migrate, sql, user_query_clauses, AccessCheck,
    Arg, Credentials, Exchange, Guarded, MakeResetMail, NewEmail, NewUser, OutboxEmail, Rotation,
    SessionId, SpentToken, Store, StoreError, UniqueField, UserQuery, UserUpdate, MIGRATIONS_LOCK,
    SUPERUSERS_LOCK,
};
use super::{login_lock_key, LockoutPolicy, LoginRecord};
use crate::auth::lockout::Failures;
use crate::domain::{User, UserId};
use chrono::{DateTime, Utc};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use sqlx::{Executor, PgConnection, Postgres, Row, Transaction};
use std::str::FromStr;
use std::time::Duration;

pub struct PgStore {
    pool: PgPool,
}

type Db = Postgres;

/// `auth_user.id` is Django's `integer`: read as `i32` and widened.
type DbId = i32;

/// `timestamp with time zone` binds directly.
fn db_time(at: DateTime<Utc>) -> DateTime<Utc> {
    at
}

fn row_to_user(row: &PgRow) -> Result<User, sqlx::Error> {
    Ok(User {
        id: UserId(row.try_get::<DbId, _>("id")?.into()),
        username: row.try_get("username")?,
        email: row.try_get("email")?,
        first_name: row.try_get("first_name")?,
        last_name: row.try_get("last_name")?,
        is_active: row.try_get("is_active")?,
        is_staff: row.try_get("is_staff")?,
        is_superuser: row.try_get("is_superuser")?,
        date_joined: row.try_get("date_joined")?,
        last_login: row.try_get("last_login")?,
    })
}

fn row_to_credentials(row: &PgRow) -> Result<Credentials, sqlx::Error> {
    Ok(Credentials {
        user: row_to_user(row)?,
        password_hash: row.try_get("password")?,
    })
}

impl PgStore {
    pub async fn connect(url: &str, pool_size: u32) -> Result<Self, StoreError> {
        let options = PgConnectOptions::from_str(url)?;
        let pool = PgPoolOptions::new()
            .max_connections(pool_size)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options)
            .await?;
        Ok(Self { pool })
    }

    async fn begin_write(&self) -> Result<Transaction<'_, Postgres>, sqlx::Error> {
        self.pool.begin().await
    }

    /// Every query crosses the network: there is no answering in place, and the access
    /// check goes to the pool like every other query.
    fn access_check_in_place(
        &self,
        _id: UserId,
        _sid: Option<&str>,
    ) -> Option<Option<AccessCheck>> {
        None
    }

    /// A transaction-scoped advisory lock: instances that start together migrate one
    /// after the other, and changes to superusers see each other.
    async fn lock(&self, tx: &mut Transaction<'_, Postgres>, key: i64) -> Result<(), sqlx::Error> {
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(key)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }
}

/// One `?search=` term, lower-cased, served by the pg_trgm indexes on lower(username)
/// and lower(email) (PostgreSQL folds case by its locale).
fn search_condition(first: usize, term: &str) -> (String, Vec<String>) {
    let sql = format!("(lower(u.username) LIKE ${first} OR lower(u.email) LIKE ${first})");
    (sql, vec![like_pattern(&term.to_lowercase())])
}

/// Another user whose username equals `username` but for case: nothing to add here, as
/// the unique index on `lower(username)` folds case by the database's locale.
async fn case_variant_of(
    _conn: &mut PgConnection,
    _username: &str,
    _except: i64,
) -> Result<Option<i64>, sqlx::Error> {
    Ok(None)
}

use super::django::postgres_case_conflicts as case_conflicts;
const REFERENCING_COLUMNS: &str = super::django::POSTGRES_REFERENCING_COLUMNS;
const MIGRATIONS: &[migrate::Migration] = migrate::POSTGRES;
const DEFERRED_JOIN: bool = true;
const TABLE_EXISTS: &str =
    "SELECT count(*) FROM pg_catalog.pg_tables WHERE tablename = $1 AND schemaname = current_schema()";

impl_store!(PgStore);
