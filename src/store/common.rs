//! The `Store` implementation both backends share, written once as a macro.
//!
//! The logic of every verb is the same on SQLite and PostgreSQL, and so is its SQL
//! (`sql.rs`); what differs is spelled by each backend module, which must define:
//! - `type Db`: the sqlx database type;
//! - `type DbId`: how `auth_user.id` decodes (`i64` on SQLite, Django's `integer` → `i32`
//!   on PostgreSQL);
//! - `fn db_time(DateTime<Utc>)`: how an `auth_user` timestamp is bound (Django's naive
//!   UTC text on SQLite, `timestamptz` on PostgreSQL);
//! - `fn row_to_user` and `fn row_to_credentials`;
//! - `const MIGRATIONS`: its list from `migrate.rs`;
//! - `const TABLE_EXISTS`: a count of tables named `$1` (Django's, on a shared database);
//! - `const DEFERRED_JOIN`: whether listing pages page ids first (`sql::page_of_users`);
//! - `fn search_condition(first, term)`: the SQL and values matching a `?search=` term;
//! - `async fn case_variant_of(conn, username, except)`: another user whose username
//!   differs only in case the unique index cannot see;
//! - `async fn case_conflicts(conn)` and `const REFERENCING_COLUMNS`: its half of
//!   `django.rs` (users of a Django database breaking the case rule; foreign keys of other
//!   tables to `auth_user`);
//! - on the store type: `pool`, `async fn begin_write()` (a transaction that holds the
//!   write lock from its start on SQLite), `async fn lock(tx, key)` (serialises
//!   migrations and superuser changes across instances) and `fn access_check_in_place(id,
//!   sid)` (answers the access check, the one query of every authenticated request,
//!   without a round trip where the backend can: `Some(answer)`; else the pool does).
//!
//! A macro rather than generics over `sqlx::Database`: the bounds sqlx needs for a
//! generic executor are longer than the code they would save, and a macro keeps the
//! queries readable as plain sqlx calls.

macro_rules! impl_store {
    ($store:ty) => {
        impl $store {
            /// A write transaction holding account `account`'s login-guard lock. Every
            /// change to an account's counts runs under it: a count changed between
            /// another attempt's read and write would be lost.
            async fn begin_login_change(
                &self,
                account: &str,
            ) -> Result<Transaction<'_, Db>, sqlx::Error> {
                let mut tx = self.begin_write().await?;
                self.lock(&mut tx, login_lock_key(account)).await?;
                Ok(tx)
            }

            /// Why a conditional write of user `id` (`UserUpdate`'s conditions, or
            /// `DELETE_USER`'s) changed no row, read as the row is now: gone, made staff
            /// or superuser (when the write was allowed on a plain user only), else the
            /// password it was proved with changed (for an UPDATE; a DELETE has no such
            /// condition, and finds this only if the user was promoted and demoted again
            /// while it waited).
            async fn refusal<T>(
                &self,
                tx: &mut Transaction<'_, Db>,
                id: UserId,
                only_while_plain: bool,
            ) -> Result<Guarded<T>, sqlx::Error> {
                let privileges: Option<(bool, bool)> = sqlx::query_as(sql::USER_PRIVILEGES)
                    .bind(id.0)
                    .fetch_optional(&mut **tx)
                    .await?;
                Ok(match privileges {
                    None => Guarded::NotFound,
                    Some((is_staff, is_superuser)) if only_while_plain && (is_staff || is_superuser) => {
                        Guarded::Privileged
                    }
                    Some(_) => Guarded::PasswordChanged,
                })
            }

            /// A new password: stores the hash, moves the token cut-off to `now` and ends
            /// every session of the user but `keep` (API.md §5: a password change ends
            /// sessions, whatever route it came by).
            async fn replace_password(
                tx: &mut Transaction<'_, Db>,
                id: UserId,
                hash: &str,
                replacing: Option<&str>,
                keep: Option<&str>,
                now: DateTime<Utc>,
            ) -> Result<bool, sqlx::Error> {
                let set = sqlx::query(sql::SET_PASSWORD)
                    .bind(id.0)
                    .bind(hash)
                    .bind(replacing)
                    .execute(&mut **tx)
                    .await?;
                if set.rows_affected() == 0 {
                    return Ok(false);
                }
                sqlx::query(sql::SET_TOKEN_CUTOFF)
                    .bind(id.0)
                    .bind(now.timestamp())
                    .execute(&mut **tx)
                    .await?;
                sqlx::query(sql::END_SESSIONS_EXCEPT)
                    .bind(id.0)
                    .bind(keep)
                    .execute(&mut **tx)
                    .await?;
                Ok(true)
            }

            async fn which_taken(&self, username: &str, email: &str, except: i64) -> StoreError {
                let taken = sqlx::query_as::<_, (bool, bool)>(sql::WHICH_UNIQUE_TAKEN)
                    .bind(username)
                    .bind(email)
                    .bind(except)
                    .fetch_one(&self.pool)
                    .await;
                match taken {
                    Ok((username_taken, email_taken)) => conflicts(username_taken, email_taken),
                    Err(error) => error.into(),
                }
            }
        }

        #[async_trait::async_trait]
        impl Store for $store {
            async fn migrate(&self) -> Result<(), StoreError> {
                let mut tx = self.begin_write().await?;
                self.lock(&mut tx, MIGRATIONS_LOCK).await?;
                // API.md §9: on a Django database (auth_user there, our ledger not yet),
                // users that break the case rule stop everything before the first
                // statement, so the refusal changes nothing at all.
                let table_exists = |name: &'static str| {
                    sqlx::query_scalar::<_, i64>(TABLE_EXISTS).bind(name)
                };
                let first_run = table_exists("gatehouse_migration")
                    .fetch_one(&mut *tx)
                    .await?
                    == 0;
                if first_run && table_exists("auth_user").fetch_one(&mut *tx).await? > 0 {
                    let found = case_conflicts(&mut tx).await?;
                    if !found.is_empty() {
                        return Err(StoreError::CaseConflicts(found));
                    }
                }
                tx.execute(migrate::LEDGER_DDL).await?;
                let applied: Vec<i64> =
                    sqlx::query_scalar("SELECT version FROM gatehouse_migration")
                        .fetch_all(&mut *tx)
                        .await?;
                for migration in MIGRATIONS.iter().filter(|m| !applied.contains(&m.version)) {
                    tx.execute(migration.sql).await?;
                    sqlx::query(migrate::RECORD)
                        .bind(migration.version)
                        .bind(migration.name)
                        .bind(Utc::now().timestamp())
                        .execute(&mut *tx)
                        .await?;
                    tracing::info!(migration = migration.name, "applied migration");
                }
                tx.commit().await?;
                Ok(())
            }

            async fn ping(&self) -> Result<(), StoreError> {
                sqlx::query("SELECT 1").execute(&self.pool).await?;
                Ok(())
            }

            async fn setting_or_insert(
                &self,
                name: &str,
                value: &str,
            ) -> Result<String, StoreError> {
                sqlx::query(sql::INSERT_SETTING)
                    .bind(name)
                    .bind(value)
                    .execute(&self.pool)
                    .await?;
                Ok(sqlx::query_scalar(sql::SETTING)
                    .bind(name)
                    .fetch_one(&self.pool)
                    .await?)
            }

            async fn insert_user(
                &self,
                user: &NewUser,
                now: DateTime<Utc>,
            ) -> Result<User, StoreError> {
                let mut tx = self.begin_write().await?;
                if case_variant_of(&mut tx, user.username.as_str(), 0)
                    .await?
                    .is_some()
                {
                    return Err(StoreError::Conflict(vec![UniqueField::Username]));
                }
                let inserted = sqlx::query_scalar::<_, DbId>(sql::INSERT_USER)
                    .bind(&user.password_hash)
                    .bind(user.is_superuser)
                    .bind(user.username.as_str())
                    .bind(&user.last_name)
                    .bind(user.email.as_str())
                    .bind(user.is_staff)
                    .bind(db_time(now))
                    .bind(&user.first_name)
                    .bind(user.is_active)
                    .fetch_one(&mut *tx)
                    .await;
                match inserted {
                    Ok(id) => {
                        tx.commit().await?;
                        Ok(User {
                            id: UserId(id.into()),
                            username: user.username.as_str().to_owned(),
                            email: user.email.as_str().to_owned(),
                            first_name: user.first_name.clone(),
                            last_name: user.last_name.clone(),
                            is_active: user.is_active,
                            is_staff: user.is_staff,
                            is_superuser: user.is_superuser,
                            // Both databases keep microseconds.
                            date_joined: chrono::DurationRound::duration_trunc(
                                now,
                                chrono::TimeDelta::microseconds(1),
                            )
                            .unwrap_or(now),
                            last_login: None,
                        })
                    }
                    Err(error) if is_unique_violation(&error) => {
                        // Release the write lock first: the look-up takes another
                        // connection, and on SQLite every writer waits on this one.
                        drop(tx);
                        Err(self
                            .which_taken(user.username.as_str(), user.email.as_str(), 0)
                            .await)
                    }
                    Err(error) => Err(error.into()),
                }
            }

            async fn user_by_id(&self, id: UserId) -> Result<Option<User>, StoreError> {
                let row = sqlx::query(&sql::user_by_id())
                    .bind(id.0)
                    .fetch_optional(&self.pool)
                    .await?;
                Ok(row.as_ref().map(row_to_user).transpose()?)
            }

            async fn credentials_by_username(
                &self,
                username: &str,
            ) -> Result<Option<Credentials>, StoreError> {
                let row = sqlx::query(&sql::credentials_by_username())
                    .bind(username)
                    .fetch_optional(&self.pool)
                    .await?;
                if row.is_none() {
                    let mut conn = self.pool.acquire().await?;
                    if let Some(id) = case_variant_of(&mut conn, username, 0).await? {
                        drop(conn);
                        return self.credentials_by_id(UserId(id)).await;
                    }
                }
                Ok(row.as_ref().map(row_to_credentials).transpose()?)
            }

            async fn credentials_by_id(
                &self,
                id: UserId,
            ) -> Result<Option<Credentials>, StoreError> {
                let row = sqlx::query(&sql::credentials_by_id())
                    .bind(id.0)
                    .fetch_optional(&self.pool)
                    .await?;
                Ok(row.as_ref().map(row_to_credentials).transpose()?)
            }

            async fn update_user(
                &self,
                id: UserId,
                update: &UserUpdate,
                now: DateTime<Utc>,
            ) -> Result<Guarded<User>, StoreError> {
                let mut tx = self.begin_write().await?;
                let demotes = update.is_active == Some(false) || update.is_superuser == Some(false);
                if demotes {
                    self.lock(&mut tx, SUPERUSERS_LOCK).await?;
                }
                let Some(row) = sqlx::query(&sql::user_by_id())
                    .bind(id.0)
                    .fetch_optional(&mut *tx)
                    .await?
                else {
                    return Ok(Guarded::NotFound);
                };
                let before = row_to_user(&row)?;
                if let Some(username) = update
                    .username
                    .as_ref()
                    .filter(|u| u.as_str() != before.username)
                {
                    if case_variant_of(&mut tx, username.as_str(), id.0)
                        .await?
                        .is_some()
                    {
                        return Err(StoreError::Conflict(vec![UniqueField::Username]));
                    }
                }
                if update
                    .email
                    .as_ref()
                    .is_some_and(|e| e.as_str() != before.email)
                {
                    // A reset link sent to the old address must not outlive the change.
                    // Deleted before the user row is written: the same lock order as
                    // consume_reset_token, so the two cannot deadlock.
                    sqlx::query(sql::DELETE_RESET_TOKENS_OF)
                        .bind(id.0)
                        .execute(&mut *tx)
                        .await?;
                }
                let stays_superuser = update.is_active.unwrap_or(before.is_active)
                    && update.is_superuser.unwrap_or(before.is_superuser);
                if before.is_active && before.is_superuser && !stays_superuser {
                    let others: i64 = sqlx::query_scalar(sql::OTHER_ACTIVE_SUPERUSERS)
                        .bind(id.0)
                        .fetch_one(&mut *tx)
                        .await?;
                    if others == 0 {
                        return Ok(Guarded::LastSuperuser);
                    }
                }
                let updated = sqlx::query(&sql::update_user())
                    .bind(id.0)
                    .bind(update.username.as_ref().map(|u| u.as_str()))
                    .bind(update.email.as_ref().map(|e| e.as_str()))
                    .bind(update.first_name.as_deref())
                    .bind(update.last_name.as_deref())
                    .bind(update.is_active)
                    .bind(update.is_staff)
                    .bind(update.is_superuser)
                    .bind(update.password_unchanged.as_deref())
                    .bind(update.only_while_plain)
                    .fetch_optional(&mut *tx)
                    .await;
                let after = match updated {
                    Ok(Some(row)) => row_to_user(&row)?,
                    // One of the UPDATE's conditions failed: which one, as the row is now.
                    Ok(None) => return Ok(self.refusal(&mut tx, id, update.only_while_plain).await?),
                    Err(error) if is_unique_violation(&error) => {
                        drop(tx);
                        let username = update.username.as_ref().map_or("", |u| u.as_str());
                        let email = update.email.as_ref().map_or("", |e| e.as_str());
                        return Err(self.which_taken(username, email, id.0).await);
                    }
                    Err(error) => return Err(error.into()),
                };
                if before.is_active && !after.is_active {
                    // API.md §7: deactivating a user ends its sessions at once.
                    sqlx::query(sql::SET_TOKEN_CUTOFF)
                        .bind(id.0)
                        .bind(now.timestamp())
                        .execute(&mut *tx)
                        .await?;
                    sqlx::query(sql::END_SESSIONS_EXCEPT)
                        .bind(id.0)
                        .bind(None::<&str>)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                Ok(Guarded::Done(after))
            }

            async fn delete_user(
                &self,
                id: UserId,
                only_while_plain: bool,
            ) -> Result<Guarded<()>, StoreError> {
                let mut tx = self.begin_write().await?;
                self.lock(&mut tx, SUPERUSERS_LOCK).await?;
                let flags: Option<(bool, bool)> = sqlx::query_as(sql::USER_FLAGS)
                    .bind(id.0)
                    .fetch_optional(&mut *tx)
                    .await?;
                let Some((is_active, is_superuser)) = flags else {
                    return Ok(Guarded::NotFound);
                };
                if is_active && is_superuser {
                    let others: i64 = sqlx::query_scalar(sql::OTHER_ACTIVE_SUPERUSERS)
                        .bind(id.0)
                        .fetch_one(&mut *tx)
                        .await?;
                    if others == 0 {
                        return Ok(Guarded::LastSuperuser);
                    }
                }
                for statement in sql::DELETE_USER_STATE {
                    sqlx::query(statement).bind(id.0).execute(&mut *tx).await?;
                }
                for (table, statement) in sql::DJANGO_DEPENDENTS {
                    let exists: i64 = sqlx::query_scalar(TABLE_EXISTS)
                        .bind(*table)
                        .fetch_one(&mut *tx)
                        .await?;
                    if exists > 0 {
                        sqlx::query(statement).bind(id.0).execute(&mut *tx).await?;
                    }
                }
                // Rows of other apps that still point at the user: Django would apply each
                // model's on_delete in Python, which the database cannot tell us, so
                // refuse rather than guess (README, "Moving from Django").
                let columns: Vec<(String, String, String)> =
                    sqlx::query_as(REFERENCING_COLUMNS).fetch_all(&mut *tx).await?;
                let mut referring = Vec::new();
                for (shown, table, column) in columns {
                    let found: i64 = sqlx::query_scalar(&super::django::references_user(&table, &column))
                        .bind(id.0)
                        .fetch_one(&mut *tx)
                        .await?;
                    if found > 0 && !referring.contains(&shown) {
                        referring.push(shown);
                    }
                }
                if !referring.is_empty() {
                    tracing::warn!(
                        user_id = id.0,
                        tables = %referring.join(", "),
                        "refused to delete a user other tables refer to; deactivate it instead"
                    );
                    return Err(StoreError::Referenced(referring));
                }
                let deleted = sqlx::query(sql::DELETE_USER)
                    .bind(id.0)
                    .bind(only_while_plain)
                    .execute(&mut *tx)
                    .await?;
                if deleted.rows_affected() == 0 {
                    // Dropped, the transaction takes back what was deleted above.
                    return Ok(self.refusal(&mut tx, id, only_while_plain).await?);
                }
                tx.commit().await?;
                Ok(Guarded::Done(()))
            }

            async fn list_users(&self, query: &UserQuery) -> Result<(i64, Vec<User>), StoreError> {
                let (where_clause, order_clause, args) =
                    user_query_clauses(query, search_condition);
                let count_sql = sql::count_users(&where_clause);
                let mut count = sqlx::query_scalar::<_, i64>(&count_sql);
                for arg in &args {
                    count = match arg {
                        Arg::Text(text) => count.bind(text.clone()),
                        Arg::Bool(flag) => count.bind(*flag),
                        Arg::Int(number) => count.bind(*number),
                    };
                }
                let total = count.fetch_one(&self.pool).await?;
                if total <= query.offset {
                    return Ok((total, Vec::new()));
                }
                let page_sql =
                    sql::page_of_users(&where_clause, &order_clause, args.len() + 1, DEFERRED_JOIN);
                let mut page = sqlx::query(&page_sql);
                for arg in args
                    .iter()
                    .chain([Arg::Int(query.limit), Arg::Int(query.offset)].iter())
                {
                    page = match arg {
                        Arg::Text(text) => page.bind(text.clone()),
                        Arg::Bool(flag) => page.bind(*flag),
                        Arg::Int(number) => page.bind(*number),
                    };
                }
                let rows = page.fetch_all(&self.pool).await?;
                let users = rows
                    .iter()
                    .map(row_to_user)
                    .collect::<Result<Vec<_>, _>>()?;
                Ok((total, users))
            }

            async fn queue_reset_request(
                &self,
                email: &str,
                base_url: &str,
                now: i64,
            ) -> Result<(), StoreError> {
                sqlx::query(sql::QUEUE_RESET_REQUEST)
                    .bind(email)
                    .bind(base_url)
                    .bind(now)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn pending_reset_requests(&self, limit: i64) -> Result<Vec<i64>, StoreError> {
                Ok(sqlx::query_scalar(sql::PENDING_RESET_REQUESTS)
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await?)
            }

            async fn fulfil_reset_request(
                &self,
                id: i64,
                now: i64,
                max_age: i64,
                per_address: Option<(i64, i64)>,
                make: &MakeResetMail<'_>,
            ) -> Result<bool, StoreError> {
                let mut tx = self.begin_write().await?;
                let taken: Option<(String, String, i64)> = sqlx::query_as(sql::TAKE_RESET_REQUEST)
                    .bind(id)
                    .fetch_optional(&mut *tx)
                    .await?;
                let Some((email, base_url, requested_at)) = taken else {
                    return Ok(false);
                };
                if now - requested_at > max_age {
                    // Waited past the reset timeout in a backlog: dropped, not mailed late.
                    tx.commit().await?;
                    return Ok(false);
                }
                if let Some((window, limit)) = per_address {
                    let key = format!("reset-email:{}", email.to_lowercase());
                    let (hits, _): (i64, i64) = sqlx::query_as(sql::THROTTLE_HIT)
                        .bind(key)
                        .bind(now)
                        .bind(now - window)
                        .fetch_one(&mut *tx)
                        .await?;
                    if hits > limit {
                        tx.commit().await?;
                        return Ok(false);
                    }
                }
                let row = sqlx::query(&sql::credentials_by_email())
                    .bind(&email)
                    .fetch_optional(&mut *tx)
                    .await?;
                let made = row
                    .as_ref()
                    .map(row_to_credentials)
                    .transpose()?
                    .and_then(|c| make(&c, &base_url));
                let Some((token, message)) = made else {
                    tx.commit().await?;
                    return Ok(false);
                };
                sqlx::query(sql::INSERT_RESET_TOKEN)
                    .bind(token.digest.as_str())
                    .bind(token.user_id.0)
                    .bind(&token.password_fingerprint)
                    .bind(now)
                    .bind(token.expires_at)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(sql::ENQUEUE_EMAIL)
                    .bind(&message.recipient)
                    .bind(&message.subject)
                    .bind(&message.body)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(true)
            }

            async fn reset_token_owner(
                &self,
                digest: &str,
                id: UserId,
                now: i64,
            ) -> Result<Option<(Credentials, String)>, StoreError> {
                let fingerprint: Option<String> = sqlx::query_scalar(sql::RESET_TOKEN_FINGERPRINT)
                    .bind(digest)
                    .bind(id.0)
                    .bind(now)
                    .fetch_optional(&self.pool)
                    .await?;
                let Some(fingerprint) = fingerprint else {
                    return Ok(None);
                };
                let row = sqlx::query(&sql::credentials_by_id())
                    .bind(id.0)
                    .fetch_optional(&self.pool)
                    .await?;
                Ok(row
                    .as_ref()
                    .map(row_to_credentials)
                    .transpose()?
                    .map(|c| (c, fingerprint)))
            }

            async fn consume_reset_token(
                &self,
                digest: &str,
                id: UserId,
                new_hash: &str,
                now: DateTime<Utc>,
            ) -> Result<bool, StoreError> {
                let mut tx = self.begin_write().await?;
                let spent: Option<String> = sqlx::query_scalar(sql::SPEND_RESET_TOKEN)
                    .bind(digest)
                    .bind(id.0)
                    .bind(now.timestamp())
                    .fetch_optional(&mut *tx)
                    .await?;
                let Some(fingerprint) = spent else {
                    return Ok(false);
                };
                let current: Option<String> =
                    sqlx::query_scalar("SELECT password FROM auth_user WHERE id = $1")
                        .bind(id.0)
                        .fetch_optional(&mut *tx)
                        .await?;
                if current
                    .as_deref()
                    .map(crate::auth::reset::password_fingerprint)
                    != Some(fingerprint)
                {
                    // The password changed since the token was made: the token dies unused.
                    tx.commit().await?;
                    return Ok(false);
                }
                Self::replace_password(&mut tx, id, new_hash, None, None, now).await?;
                sqlx::query(sql::DELETE_RESET_TOKENS_OF)
                    .bind(id.0)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(true)
            }

            async fn throttle_hit(
                &self,
                key: &str,
                window_secs: i64,
                now: i64,
            ) -> Result<(i64, i64), StoreError> {
                Ok(sqlx::query_as(sql::THROTTLE_HIT)
                    .bind(key)
                    .bind(now)
                    .bind(now - window_secs)
                    .fetch_one(&self.pool)
                    .await?)
            }

            async fn begin_login_attempt(
                &self,
                account: &str,
                client: &str,
                policy: &LockoutPolicy,
                now: i64,
            ) -> Result<Option<u64>, StoreError> {
                let mut tx = self.begin_login_change(account).await?;
                let rows: Vec<(String, i64, i64)> = sqlx::query_as(sql::LOGIN_FAILURES)
                    .bind(account)
                    .bind(client)
                    .fetch_all(&mut *tx)
                    .await?;
                let known: i64 = sqlx::query_scalar(sql::KNOWN_CLIENT)
                    .bind(account)
                    .bind(client)
                    .fetch_one(&mut *tx)
                    .await?;
                let mut record = LoginRecord {
                    known_client: known > 0,
                    ..LoginRecord::default()
                };
                for (row_client, count, last) in rows {
                    let failures = Some(Failures {
                        count: u32::try_from(count).unwrap_or(u32::MAX),
                        last,
                    });
                    if row_client == "*" {
                        record.account = failures;
                    } else {
                        record.client = failures;
                    }
                }
                if let Some(wait) = policy.hold_back(&record, now) {
                    tx.rollback().await?;
                    return Ok(Some(wait));
                }
                sqlx::query(sql::LOGIN_COUNT)
                    .bind(account)
                    .bind(client)
                    .bind(i64::from(policy.counted(record.client, policy.per_client, now)))
                    .bind(i64::from(policy.counted(record.account, policy.per_account, now)))
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(None)
            }

            async fn undo_login_attempt(
                &self,
                account: &str,
                client: &str,
            ) -> Result<(), StoreError> {
                let mut tx = self.begin_login_change(account).await?;
                sqlx::query(sql::LOGIN_UNCOUNT)
                    .bind(account)
                    .bind(client)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(())
            }

            async fn login_succeeded(
                &self,
                account: &str,
                client: &str,
                now: i64,
                proven: (UserId, &str),
            ) -> Result<bool, StoreError> {
                let mut tx = self.begin_login_change(account).await?;
                let still: i64 = sqlx::query_scalar(sql::PASSWORD_STILL)
                    .bind(proven.0 .0)
                    .bind(proven.1)
                    .fetch_one(&mut *tx)
                    .await?;
                if still == 0 {
                    return Ok(false);
                }
                // The attempt was counted up front: clear this client's count, then take
                // the attempt back from the account-wide one (the only row left for
                // LOGIN_UNCOUNT to change).
                for statement in [sql::LOGIN_CLEAR_CLIENT, sql::LOGIN_UNCOUNT] {
                    sqlx::query(statement)
                        .bind(account)
                        .bind(client)
                        .execute(&mut *tx)
                        .await?;
                }
                sqlx::query(sql::LOGIN_KNOWN_CLIENT)
                    .bind(account)
                    .bind(client)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(true)
            }

            async fn forget_login_history(&self, account: &str) -> Result<(), StoreError> {
                let mut tx = self.begin_login_change(account).await?;
                for statement in [sql::LOGIN_CLEAR_ACCOUNT, sql::LOGIN_FORGET_CLIENTS] {
                    sqlx::query(statement)
                        .bind(account)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn claim_due_emails(
                &self,
                now: i64,
                lease_secs: i64,
                limit: i64,
            ) -> Result<Vec<OutboxEmail>, StoreError> {
                let due: Vec<(i64, i64)> = sqlx::query_as(sql::DUE_EMAILS)
                    .bind(now)
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await?;
                let mut claimed = Vec::new();
                for (id, next_attempt_at) in due {
                    let row: Option<(String, String, String, i32, i64)> =
                        sqlx::query_as(sql::CLAIM_EMAIL)
                            .bind(id)
                            .bind(next_attempt_at)
                            .bind(now + lease_secs)
                            .fetch_optional(&self.pool)
                            .await?;
                    if let Some((recipient, subject, body, attempts, created_at)) = row {
                        claimed.push(OutboxEmail {
                            id,
                            email: NewEmail {
                                recipient,
                                subject,
                                body,
                            },
                            attempts,
                            created_at,
                        });
                    }
                }
                Ok(claimed)
            }

            async fn mark_email_sent(&self, id: i64, now: i64) -> Result<(), StoreError> {
                sqlx::query(sql::EMAIL_SENT)
                    .bind(id)
                    .bind(now)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn mark_email_failed(
                &self,
                id: i64,
                next_attempt_at: Option<i64>,
                error: &str,
            ) -> Result<(), StoreError> {
                sqlx::query(sql::EMAIL_FAILED)
                    .bind(id)
                    .bind(next_attempt_at)
                    .bind(error)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn upgrade_password_hash(
                &self,
                id: UserId,
                old_hash: &str,
                new_hash: &str,
            ) -> Result<bool, StoreError> {
                let upgraded = sqlx::query(sql::SET_PASSWORD)
                    .bind(id.0)
                    .bind(new_hash)
                    .bind(old_hash)
                    .execute(&self.pool)
                    .await?;
                Ok(upgraded.rows_affected() == 1)
            }

            async fn set_password(
                &self,
                id: UserId,
                hash: &str,
                replacing: Option<&str>,
                keep: Option<&str>,
                now: DateTime<Utc>,
            ) -> Result<bool, StoreError> {
                let mut tx = self.begin_write().await?;
                if !Self::replace_password(&mut tx, id, hash, replacing, keep, now).await? {
                    return Ok(false);
                }
                tx.commit().await?;
                Ok(true)
            }

            async fn access_check(
                &self,
                id: UserId,
                sid: Option<&str>,
            ) -> Result<Option<AccessCheck>, StoreError> {
                if let Some(answer) = self.access_check_in_place(id, sid) {
                    return Ok(answer);
                }
                let query = sqlx::query(sql::access_check()).bind(id.0).bind(sid);
                let row = query.fetch_optional(&self.pool).await?;
                let Some(row) = row else { return Ok(None) };
                Ok(Some(AccessCheck {
                    user: row_to_user(&row)?,
                    session_live: row.try_get("session_live")?,
                    tokens_valid_after: row.try_get("tokens_valid_after")?,
                }))
            }

            async fn start_session(
                &self,
                id: UserId,
                sid: &str,
                refresh_jti: &str,
                password_hash: &str,
                now: DateTime<Utc>,
            ) -> Result<bool, StoreError> {
                let mut tx = self.begin_write().await?;
                // First: it takes the user's row lock before the session exists.
                let recorded = sqlx::query(sql::RECORD_LOGIN)
                    .bind(id.0)
                    .bind(db_time(now))
                    .bind(password_hash)
                    .execute(&mut *tx)
                    .await?;
                if recorded.rows_affected() == 0 {
                    return Ok(false);
                }
                sqlx::query(sql::INSERT_SESSION)
                    .bind(sid)
                    .bind(id.0)
                    .bind(refresh_jti)
                    .bind(now.timestamp())
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(true)
            }

            async fn rotate_refresh(
                &self,
                sid: &str,
                id: UserId,
                old_jti: &str,
                new_jti: &str,
                now: DateTime<Utc>,
            ) -> Result<Rotation, StoreError> {
                // One conditional UPDATE is the compare-and-swap: of many concurrent uses of
                // one refresh token, exactly one can match `refresh_jti = old`.
                let rotated = sqlx::query(sql::ROTATE_REFRESH)
                    .bind(sid)
                    .bind(id.0)
                    .bind(old_jti)
                    .bind(new_jti)
                    .bind(now.timestamp())
                    .execute(&self.pool)
                    .await?
                    .rows_affected();
                if rotated == 1 {
                    return Ok(Rotation::Rotated);
                }
                let ended = sqlx::query(sql::END_SESSION_OF)
                    .bind(sid)
                    .bind(id.0)
                    .execute(&self.pool)
                    .await?;
                Ok(if ended.rows_affected() == 1 {
                    Rotation::Reused
                } else {
                    Rotation::Gone
                })
            }

            async fn session(&self, sid: &str) -> Result<Option<(UserId, String)>, StoreError> {
                let row: Option<(DbId, String)> = sqlx::query_as(sql::SESSION)
                    .bind(sid)
                    .fetch_optional(&self.pool)
                    .await?;
                Ok(row.map(|(id, jti)| (UserId(id.into()), jti)))
            }

            async fn end_session(&self, sid: &SessionId) -> Result<bool, StoreError> {
                let ended = sqlx::query(sql::END_SESSION)
                    .bind(sid)
                    .execute(&self.pool)
                    .await?;
                Ok(ended.rows_affected() == 1)
            }

            async fn spend_token(
                &self,
                jti: &str,
                id: UserId,
                expires_at: i64,
            ) -> Result<bool, StoreError> {
                let inserted = sqlx::query(sql::SPEND_TOKEN)
                    .bind(jti)
                    .bind(id.0)
                    .bind(expires_at)
                    .bind(None::<&str>)
                    .execute(&self.pool)
                    .await?;
                Ok(inserted.rows_affected() == 1)
            }

            async fn exchange_spent_token(
                &self,
                token: SpentToken<'_>,
                sid: &str,
                refresh_jti: &str,
                now: DateTime<Utc>,
            ) -> Result<Exchange, StoreError> {
                let mut tx = self.begin_write().await?;
                // First: the user's row lock, as for a login (`sql::RECORD_LOGIN`).
                let active = sqlx::query(sql::HOLD_ACTIVE_USER)
                    .bind(token.user_id.0)
                    .execute(&mut *tx)
                    .await?;
                if active.rows_affected() == 0 {
                    return Ok(Exchange::Refused);
                }
                let cut_off: i64 = sqlx::query_scalar(sql::CUTOFF_SINCE)
                    .bind(token.user_id.0)
                    .bind(token.issued_at)
                    .fetch_one(&mut *tx)
                    .await?;
                if cut_off > 0 {
                    return Ok(Exchange::Refused);
                }
                let spent = sqlx::query(sql::SPEND_TOKEN)
                    .bind(token.jti)
                    .bind(token.user_id.0)
                    .bind(token.expires_at)
                    .bind(sid)
                    .execute(&mut *tx)
                    .await?;
                if spent.rows_affected() == 0 {
                    return Ok(Exchange::AlreadySpent);
                }
                sqlx::query(sql::INSERT_SESSION)
                    .bind(sid)
                    .bind(token.user_id.0)
                    .bind(refresh_jti)
                    .bind(now.timestamp())
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(Exchange::Exchanged)
            }

            async fn token_spent(&self, jti: &str) -> Result<bool, StoreError> {
                let count: i64 = sqlx::query_scalar(sql::TOKEN_SPENT)
                    .bind(jti)
                    .fetch_one(&self.pool)
                    .await?;
                Ok(count > 0)
            }

            async fn sample_password_hashes(
                &self,
                count: usize,
            ) -> Result<Vec<String>, StoreError> {
                use rand::Rng;
                let range: (Option<i64>, Option<i64>) = sqlx::query_as(sql::USER_ID_RANGE)
                    .fetch_one(&self.pool)
                    .await?;
                let (Some(first), Some(last)) = range else {
                    return Ok(Vec::new());
                };
                // Ids picked before any query: the thread's generator is not `Send`.
                let ids: Vec<i64> = {
                    let mut rng = rand::thread_rng();
                    (0..count).map(|_| rng.gen_range(first..=last)).collect()
                };
                let mut hashes = Vec::with_capacity(count);
                for id in ids {
                    let found: Option<String> = sqlx::query_scalar(sql::PASSWORD_FROM_ID)
                        .bind(id)
                        .fetch_optional(&self.pool)
                        .await?;
                    hashes.extend(found);
                }
                Ok(hashes)
            }

            async fn blacklisted_by_simplejwt(&self, jti: &str) -> Result<bool, StoreError> {
                // Asked only of SimpleJWT's own tokens, which are rare once their users
                // sign in to gatehouse: the table's presence is looked up each time rather
                // than remembered, so a blacklist Django creates later counts too.
                let exists: i64 = sqlx::query_scalar(TABLE_EXISTS)
                    .bind(sql::SIMPLEJWT_BLACKLIST_TABLE)
                    .fetch_one(&self.pool)
                    .await?;
                if exists == 0 {
                    return Ok(false);
                }
                let count: i64 = sqlx::query_scalar(sql::SIMPLEJWT_BLACKLISTED)
                    .bind(jti)
                    .fetch_one(&self.pool)
                    .await?;
                Ok(count > 0)
            }

            async fn end_session_started_by(&self, jti: &str) -> Result<(), StoreError> {
                sqlx::query(sql::END_SESSION_STARTED_BY)
                    .bind(jti)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn purge_expired(
                &self,
                now: DateTime<Utc>,
                refresh_lifetime_secs: i64,
            ) -> Result<u64, StoreError> {
                let idle_since = now.timestamp() - refresh_lifetime_secs;
                let sessions = sqlx::query(sql::PURGE_SESSIONS)
                    .bind(idle_since)
                    .execute(&self.pool)
                    .await?;
                let spent = sqlx::query(sql::PURGE_SPENT)
                    .bind(now.timestamp())
                    .execute(&self.pool)
                    .await?;
                let resets = sqlx::query(sql::PURGE_RESET_TOKENS)
                    .bind(now.timestamp())
                    .execute(&self.pool)
                    .await?;
                // Throttle windows and login counts last a day at most; a client not seen
                // on an account for 90 days is new to it again; the outbox keeps a month
                // of what was sent (without bodies) for whoever looks into a complaint.
                let mut others = 0;
                for (statement, before) in [
                    (sql::PURGE_THROTTLE, now.timestamp() - 86_400),
                    (sql::PURGE_LOGIN_FAILURES, now.timestamp() - 86_400),
                    (sql::PURGE_KNOWN_CLIENTS, now.timestamp() - 90 * 86_400),
                    (sql::PURGE_OUTBOX, now.timestamp() - 30 * 86_400),
                ] {
                    others += sqlx::query(statement)
                        .bind(before)
                        .execute(&self.pool)
                        .await?
                        .rows_affected();
                }
                Ok(sessions.rows_affected()
                    + spent.rows_affected()
                    + resets.rows_affected()
                    + others)
            }
        }
    };
}

pub(crate) use impl_store;
