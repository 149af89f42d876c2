-- gatehouse's own state (API.md §3: every table of ours starts with gatehouse_).
-- Times are Unix seconds: they are compared with the JWT `iat`/`exp` claims, which are too.

-- Settings kept in the database, e.g. the generated SECRET_KEY (API.md §1).
CREATE TABLE gatehouse_setting (
    name text NOT NULL PRIMARY KEY,
    value text NOT NULL
);

-- A session is one login and its chain of rotated refresh tokens (API.md §5). Access
-- tokens name it in their `sid` claim and die with it; ending a session deletes its row.
CREATE TABLE gatehouse_session (
    id text NOT NULL PRIMARY KEY,
    user_id integer NOT NULL REFERENCES auth_user (id) ON DELETE CASCADE,
    -- the jti of the one refresh token of this session that may still be spent
    refresh_jti text NOT NULL,
    created_at integer NOT NULL,
    refreshed_at integer NOT NULL
);
CREATE INDEX gatehouse_session_user_id ON gatehouse_session (user_id);
CREATE INDEX gatehouse_session_refreshed_at ON gatehouse_session (refreshed_at);

-- Per-user token cut-off: tokens without a session (minted by SimpleJWT) issued at or
-- before it are refused. Set by a password change or reset and by deactivation.
CREATE TABLE gatehouse_user_state (
    user_id integer NOT NULL PRIMARY KEY REFERENCES auth_user (id) ON DELETE CASCADE,
    tokens_valid_after integer NOT NULL
);

-- Refresh tokens minted by SimpleJWT have no session; once exchanged they are spent here,
-- with the session they started, so a second use is refused and ends that session (reuse
-- detection, as for gatehouse's own tokens). Rows are dropped after the token's expiry.
CREATE TABLE gatehouse_spent_token (
    jti text NOT NULL PRIMARY KEY,
    session_id text NULL,
    user_id integer NOT NULL REFERENCES auth_user (id) ON DELETE CASCADE,
    expires_at integer NOT NULL
);
CREATE INDEX gatehouse_spent_token_expires_at ON gatehouse_spent_token (expires_at);
