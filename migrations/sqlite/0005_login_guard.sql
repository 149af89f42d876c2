-- Brute-force protection (issue #5): failed logins counted per (account, client) and per
-- account, in the database so every instance sharing it shares the counts.
--
-- `account` is the username as typed at login, lower-cased, whether or not such a user
-- exists (so the answers do not tell which usernames exist); `client` is the client's
-- address (an IPv6 client by its /64), or '*' for the row that counts the account's
-- failures from every client.
CREATE TABLE gatehouse_login_failure (
    account text NOT NULL,
    client text NOT NULL,
    failures integer NOT NULL,
    last_failure integer NOT NULL,
    PRIMARY KEY (account, client)
);

-- Clients that have logged in to an account: while the account is under attack they are
-- not held back by its account-wide count, so the owner can still log in from home.
CREATE TABLE gatehouse_known_client (
    account text NOT NULL,
    client text NOT NULL,
    last_login integer NOT NULL,
    PRIMARY KEY (account, client)
);
CREATE INDEX gatehouse_known_client_last_login ON gatehouse_known_client (last_login);
CREATE INDEX gatehouse_login_failure_last_failure ON gatehouse_login_failure (last_failure);
CREATE INDEX gatehouse_throttle_window_start ON gatehouse_throttle (window_start);
