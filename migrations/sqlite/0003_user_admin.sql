-- API.md §7: listing users at scale. Indexes for each ordering with the id tie-break
-- (username is unique already), and a trigram index for `?search=` (substring match on
-- username or email), so a search among a million users reads a handful of rows.
CREATE INDEX IF NOT EXISTS "gatehouse_auth_user_email_id" ON "auth_user" ("email", "id");
CREATE INDEX IF NOT EXISTS "gatehouse_auth_user_date_joined_id" ON "auth_user" ("date_joined", "id");

-- An FTS5 index whose content is auth_user itself (no copy of the data), kept current by
-- triggers, so rows Django writes are found as well as gatehouse's.
CREATE VIRTUAL TABLE "gatehouse_user_search" USING fts5(
    "username", "email", content = 'auth_user', content_rowid = 'id', tokenize = 'trigram'
);
INSERT INTO "gatehouse_user_search" ("gatehouse_user_search") VALUES ('rebuild');

CREATE TRIGGER "gatehouse_user_search_insert" AFTER INSERT ON "auth_user" BEGIN
    INSERT INTO "gatehouse_user_search" ("rowid", "username", "email") VALUES (new."id", new."username", new."email");
END;
CREATE TRIGGER "gatehouse_user_search_delete" AFTER DELETE ON "auth_user" BEGIN
    INSERT INTO "gatehouse_user_search" ("gatehouse_user_search", "rowid", "username", "email")
    VALUES ('delete', old."id", old."username", old."email");
END;
CREATE TRIGGER "gatehouse_user_search_update" AFTER UPDATE OF "username", "email" ON "auth_user" BEGIN
    INSERT INTO "gatehouse_user_search" ("gatehouse_user_search", "rowid", "username", "email")
    VALUES ('delete', old."id", old."username", old."email");
    INSERT INTO "gatehouse_user_search" ("rowid", "username", "email") VALUES (new."id", new."username", new."email");
END;
