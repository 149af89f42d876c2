-- API.md §7: listing users at scale. Indexes for each ordering with the id tie-break
-- and trigram indexes for `?search=` (substring match on
-- username or email), so a search among a million users reads a handful of rows.
-- pg_trgm ships with PostgreSQL and is a trusted extension: the database owner may
-- create it without superuser rights.
CREATE INDEX IF NOT EXISTS "gatehouse_auth_user_email_id" ON "auth_user" ("email", "id");
CREATE INDEX IF NOT EXISTS "gatehouse_auth_user_date_joined_id" ON "auth_user" ("date_joined", "id");
-- Covering (username, id): paging by username reads the index alone.
CREATE INDEX IF NOT EXISTS "gatehouse_auth_user_username_id" ON "auth_user" ("username", "id");

CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE INDEX IF NOT EXISTS "gatehouse_auth_user_username_trgm" ON "auth_user" USING gin (lower("username") gin_trgm_ops);
CREATE INDEX IF NOT EXISTS "gatehouse_auth_user_email_trgm" ON "auth_user" USING gin (lower("email") gin_trgm_ops);
