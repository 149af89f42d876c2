-- API.md §4: password reset by email. Times are Unix seconds.

-- A reset secret is stored only as its SHA-256 (a copy of the database replays nothing).
-- `password_fingerprint` is the SHA-256 of the user's password hash when the token was
-- made: once the password changes, by any route (Django's too), the token is dead.
CREATE TABLE gatehouse_reset_token (
    digest text NOT NULL PRIMARY KEY,
    user_id integer NOT NULL REFERENCES auth_user (id) ON DELETE CASCADE,
    password_fingerprint text NOT NULL,
    created_at integer NOT NULL,
    expires_at integer NOT NULL
);
CREATE INDEX gatehouse_reset_token_user_id ON gatehouse_reset_token (user_id);
CREATE INDEX gatehouse_reset_token_expires_at ON gatehouse_reset_token (expires_at);

-- Mail waiting to be delivered, so that a message accepted while the mail server is down
-- is delivered when it is back, and a restart loses none. A worker claims a message by
-- moving `next_attempt_at` forward (a lease), so two instances never send one twice.
CREATE TABLE gatehouse_outbox (
    id integer NOT NULL PRIMARY KEY AUTOINCREMENT,
    recipient text NOT NULL,
    subject text NOT NULL,
    body text NOT NULL,
    created_at integer NOT NULL,
    attempts integer NOT NULL DEFAULT 0,
    next_attempt_at integer NOT NULL,
    sent_at integer NULL,
    last_error text NULL
);
CREATE INDEX gatehouse_outbox_due ON gatehouse_outbox (next_attempt_at) WHERE sent_at IS NULL;

-- Throttle counters (fixed windows), in the database so every instance shares them.
CREATE TABLE gatehouse_throttle (
    key text NOT NULL PRIMARY KEY,
    window_start integer NOT NULL,
    hits integer NOT NULL
);

-- A reset request waiting for the worker. Answering a request only writes this row, the
-- same for every valid address, so the answer reveals nothing, in its body or its time;
-- the worker looks the address up and makes the token and the message.
CREATE TABLE gatehouse_reset_request (
    id integer NOT NULL PRIMARY KEY AUTOINCREMENT,
    email text NOT NULL,
    base_url text NOT NULL,
    requested_at integer NOT NULL
);
