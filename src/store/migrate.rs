//! The migration list, embedded in the binary.
//!
//! Hand-written rather than `sqlx::migrate!` because sqlx's runner keeps its ledger in a
//! table named `_sqlx_migrations`, and API.md §3 wants every table of ours to start with
//! `gatehouse_` (so a shared Django database shows plainly what is whose). The runner
//! itself is a few lines per backend: one transaction, one ledger table.

pub struct Migration {
    pub version: i64,
    pub name: &'static str,
    pub sql: &'static str,
}

macro_rules! migrations {
    ($dir:literal: $($version:literal $name:literal),* $(,)?) => {
        &[$(Migration {
            version: $version,
            name: $name,
            sql: include_str!(concat!("../../migrations/", $dir, "/", $name, ".sql")),
        }),*]
    };
}

pub const SQLITE: &[Migration] = migrations!("sqlite": 1 "0001_auth_user", 2 "0002_sessions", 3 "0003_user_admin", 4 "0004_password_reset", 5 "0005_login_guard");
pub const POSTGRES: &[Migration] = migrations!("postgres": 1 "0001_auth_user", 2 "0002_sessions", 3 "0003_user_admin", 4 "0004_password_reset", 5 "0005_login_guard");

pub const RECORD: &str =
    "INSERT INTO gatehouse_migration (version, name, applied_at) VALUES ($1, $2, $3)";

pub const LEDGER_DDL: &str = "CREATE TABLE IF NOT EXISTS gatehouse_migration (\
    version bigint NOT NULL PRIMARY KEY, name text NOT NULL, applied_at bigint NOT NULL)";

#[cfg(test)]
mod tests {
    #[test]
    fn both_backends_have_the_same_migrations() {
        let names = |list: &[super::Migration]| {
            list.iter().map(|m| (m.version, m.name)).collect::<Vec<_>>()
        };
        assert_eq!(names(super::SQLITE), names(super::POSTGRES));
    }
}
