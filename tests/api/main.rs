//! Black-box API tests: each test starts the real server on a random port with a fresh
//! database (SQLite, or PostgreSQL when TEST_DATABASE_URL is set) and talks HTTP to it.

mod helpers;

mod abuse;
mod account;
mod admin;
mod browser;
mod cli;
mod django;
mod docs;
mod errors;
mod headers;
mod health;
mod limits;
mod lockout;
mod login;
mod logs;
mod register;
mod reset;
mod smtp;
mod storage;
mod throttle;
mod tokens;
