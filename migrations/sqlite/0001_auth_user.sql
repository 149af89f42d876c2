-- Django's `auth_user`, exactly as `django.contrib.auth`'s migrations leave it on SQLite,
-- so that gatehouse and Django can share the table (API.md §3, §9). On a Django database
-- the table already exists and is left alone.
CREATE TABLE IF NOT EXISTS "auth_user" (
    "id" integer NOT NULL PRIMARY KEY AUTOINCREMENT,
    "password" varchar(128) NOT NULL,
    "last_login" datetime NULL,
    "is_superuser" bool NOT NULL,
    "username" varchar(150) NOT NULL UNIQUE,
    "last_name" varchar(150) NOT NULL,
    "email" varchar(254) NOT NULL,
    "is_staff" bool NOT NULL,
    "is_active" bool NOT NULL,
    "date_joined" datetime NOT NULL,
    "first_name" varchar(150) NOT NULL
);

-- API.md §3: usernames and emails are unique case-insensitively. These are indexes of
-- our own (allowed on Django's table by §9); Django may leave emails blank, so blank
-- emails are exempt.
CREATE UNIQUE INDEX IF NOT EXISTS "gatehouse_auth_user_username_ci" ON "auth_user" (lower("username"));
CREATE UNIQUE INDEX IF NOT EXISTS "gatehouse_auth_user_email_ci" ON "auth_user" (lower("email")) WHERE "email" <> '';
