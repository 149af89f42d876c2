//! Living on a Django project's database (API.md §9): what gatehouse checks of rows it
//! did not write, before it changes anything.
//!
//! - Before the first migration on a database where `auth_user` already exists (Django
//!   made it), `*_case_conflicts` looks for users that break gatehouse's rule that
//!   usernames and emails are unique regardless of case. Django allows `Alice` beside
//!   `alice`; gatehouse's unique `lower()` indexes would fail to build on them, and its
//!   case-insensitive login could not tell them apart. The check runs inside the
//!   migration transaction, before its first statement, so a refusal leaves the database
//!   exactly as it was (not even gatehouse's ledger table is made).
//! - `*_REFERENCING_COLUMNS` list the columns of other tables whose foreign keys to
//!   `auth_user` would stop a user's deletion: Django cascades (or protects, or sets
//!   null) in Python, and its constraints say only "no action", so gatehouse cannot know
//!   what the app wanted and refuses the deletion rather than guess (README, "Moving
//!   from Django").
//!
//! Nothing here runs on a database gatehouse made itself: there its own unique indexes
//! have held from the first row.

use super::UniqueField;
use sqlx::{PgConnection, SqliteConnection};
use std::collections::BTreeMap;
use std::fmt;

/// Users of `auth_user` whose usernames or emails are equal but for case, grouped by
/// the value they share. Shown to the operator whole: every row to fix, by id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CaseConflicts {
    pub groups: Vec<ConflictGroup>,
}

/// Two or more rows whose `field` is equal but for case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConflictGroup {
    pub field: UniqueField,
    /// `(id, value)` in id order.
    pub rows: Vec<(i64, String)>,
}

impl CaseConflicts {
    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    /// Groups `(key, id, value)` rows by key, keeping groups of two or more.
    fn add(&mut self, field: UniqueField, rows: impl IntoIterator<Item = (String, i64, String)>) {
        let mut by_key: BTreeMap<String, BTreeMap<i64, String>> = BTreeMap::new();
        for (key, id, value) in rows {
            by_key.entry(key).or_default().insert(id, value);
        }
        self.groups.extend(
            by_key
                .into_values()
                .filter(|rows| rows.len() > 1)
                .map(|rows| ConflictGroup {
                    field,
                    rows: rows.into_iter().collect(),
                }),
        );
    }
}

impl fmt::Display for CaseConflicts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "users in auth_user differ only in case, and gatehouse needs usernames and emails \
             unique regardless of case; nothing was changed. The conflicting rows (id and value):"
        )?;
        for group in &self.groups {
            let field = match group.field {
                UniqueField::Username => "username",
                UniqueField::Email => "email",
            };
            // `{:?}` quotes and escapes each value, so a row cannot forge lines of this list.
            let rows: Vec<String> = group
                .rows
                .iter()
                .map(|(id, value)| format!("id {id} {value:?}"))
                .collect();
            writeln!(f, "  {field}: {}", rows.join(", "))?;
        }
        write!(
            f,
            "Rename the users, or change or blank the emails (Django allows any number of blank \
             emails), with Django's admin, its shell or SQL, until no two differ only in case; \
             then start gatehouse again."
        )
    }
}

/// Rows whose `lower(username)` another row shares: what the unique index
/// `gatehouse_auth_user_username_ci` would refuse. The key is the database's `lower()`.
const USERNAME_DUPLICATES: &str = "SELECT lower(username), CAST(id AS bigint), username \
    FROM auth_user WHERE lower(username) IN \
    (SELECT lower(username) FROM auth_user GROUP BY lower(username) HAVING count(*) > 1)";

/// The same for emails; blank emails are exempt, as in the index (Django leaves any
/// number of users without one).
const EMAIL_DUPLICATES: &str = "SELECT lower(email), CAST(id AS bigint), email \
    FROM auth_user WHERE email <> '' AND lower(email) IN \
    (SELECT lower(email) FROM auth_user WHERE email <> '' \
     GROUP BY lower(email) HAVING count(*) > 1)";

/// PostgreSQL: its `lower()` (by the database's locale) is what the unique indexes use,
/// and what gatehouse's case-insensitive look-ups use, so it alone decides.
pub async fn postgres_case_conflicts(
    conn: &mut PgConnection,
) -> Result<CaseConflicts, sqlx::Error> {
    let mut found = CaseConflicts::default();
    let usernames: Vec<(String, i64, String)> = sqlx::query_as(USERNAME_DUPLICATES)
        .fetch_all(&mut *conn)
        .await?;
    found.add(UniqueField::Username, usernames);
    let emails: Vec<(String, i64, String)> = sqlx::query_as(EMAIL_DUPLICATES)
        .fetch_all(&mut *conn)
        .await?;
    found.add(UniqueField::Email, emails);
    Ok(found)
}

/// SQLite: its `lower()` folds ASCII letters only, and gatehouse also refuses usernames
/// equal but for non-ASCII case there (`sqlite::fold`, README "Behaviour worth
/// knowing"). So usernames are grouped by that fold, over every row that could be in a
/// group: the ASCII duplicates, every username with a non-ASCII character, and the ASCII
/// names those fold to (U+212A KELVIN SIGN folds to `k`).
pub async fn sqlite_case_conflicts(
    conn: &mut SqliteConnection,
) -> Result<CaseConflicts, sqlx::Error> {
    use super::sqlite::fold;
    let mut candidates: BTreeMap<i64, String> = BTreeMap::new();
    let ascii: Vec<(String, i64, String)> = sqlx::query_as(USERNAME_DUPLICATES)
        .fetch_all(&mut *conn)
        .await?;
    candidates.extend(ascii.into_iter().map(|(_, id, name)| (id, name)));
    // Usernames are letters, digits and `@.+-_`: anything outside printable ASCII is a
    // non-ASCII letter or digit.
    let wide: Vec<(i64, String)> =
        sqlx::query_as("SELECT id, username FROM auth_user WHERE username GLOB '*[^ -~]*'")
            .fetch_all(&mut *conn)
            .await?;
    let mut ascii_keys: Vec<String> = wide
        .iter()
        .map(|(_, name)| fold(name))
        .filter(|key| key.is_ascii())
        .collect();
    ascii_keys.sort();
    ascii_keys.dedup();
    candidates.extend(wide);
    for key in ascii_keys {
        let same: Vec<(i64, String)> =
            sqlx::query_as("SELECT id, username FROM auth_user WHERE lower(username) = $1")
                .bind(key)
                .fetch_all(&mut *conn)
                .await?;
        candidates.extend(same);
    }
    let mut found = CaseConflicts::default();
    found.add(
        UniqueField::Username,
        candidates
            .into_iter()
            .map(|(id, name)| (fold(&name), id, name)),
    );
    let emails: Vec<(String, i64, String)> = sqlx::query_as(EMAIL_DUPLICATES)
        .fetch_all(&mut *conn)
        .await?;
    found.add(UniqueField::Email, emails);
    Ok(found)
}

/// Columns of other tables holding a foreign key to `auth_user` that neither cascades
/// nor sets null in the database (Django's are all of that kind), as
/// `(table as shown, table as quoted SQL, column as quoted SQL)`. gatehouse's own tables
/// cascade and so are not listed.
pub const SQLITE_REFERENCING_COLUMNS: &str = "SELECT m.name, \
    '\"' || replace(m.name, '\"', '\"\"') || '\"', '\"' || replace(f.\"from\", '\"', '\"\"') || '\"' \
    FROM sqlite_master AS m, pragma_foreign_key_list(m.name) AS f \
    WHERE m.type = 'table' AND lower(f.\"table\") = 'auth_user' \
    AND upper(f.on_delete) IN ('NO ACTION', 'RESTRICT') ORDER BY 1, 3";

/// As `SQLITE_REFERENCING_COLUMNS`, from PostgreSQL's catalog (`confdeltype` `a` is NO
/// ACTION, `r` RESTRICT); `regclass` text comes quoted, and schema-qualified when the
/// table is not on the search path.
pub const POSTGRES_REFERENCING_COLUMNS: &str = "SELECT c.conrelid::regclass::text, \
    c.conrelid::regclass::text, quote_ident(a.attname) \
    FROM pg_catalog.pg_constraint AS c \
    JOIN pg_catalog.pg_attribute AS a ON a.attrelid = c.conrelid AND a.attnum = ANY (c.conkey) \
    WHERE c.contype = 'f' AND c.confrelid = to_regclass('auth_user') \
    AND c.confdeltype IN ('a', 'r') ORDER BY 1, 3";

/// Whether a row of `table` has `column` = the user id (`$1`); both come quoted from the
/// catalog queries above, never from a request.
pub fn references_user(table: &str, column: &str) -> String {
    format!("SELECT count(*) FROM (SELECT 1 FROM {table} WHERE {column} = $1 LIMIT 1) AS r")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_of_one_are_not_conflicts_and_each_value_is_shown_escaped() {
        let mut found = CaseConflicts::default();
        found.add(
            UniqueField::Username,
            [
                ("alice".to_owned(), 7, "alice".to_owned()),
                ("alice".to_owned(), 3, "Alice".to_owned()),
                ("bob".to_owned(), 4, "bob".to_owned()),
            ],
        );
        found.add(
            UniqueField::Email,
            [
                ("c@x.io".to_owned(), 5, "C@x.io".to_owned()),
                ("c@x.io".to_owned(), 6, "c@x.io\nforged".to_owned()),
            ],
        );
        assert_eq!(found.groups.len(), 2);
        assert_eq!(
            found.groups[0].rows,
            vec![(3, "Alice".into()), (7, "alice".into())]
        );
        let text = found.to_string();
        assert!(
            text.contains("\n  username: id 3 \"Alice\", id 7 \"alice\"\n"),
            "{text}"
        );
        assert!(
            text.contains("\n  email: id 5 \"C@x.io\", id 6 \"c@x.io\\nforged\"\n"),
            "{text}"
        );
    }
}
