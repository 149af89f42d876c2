//! gatehouse: a user-authentication and user-management service, wire-compatible with a
//! Django REST framework + SimpleJWT API. See README.md and API.md for the contract.
//!
//! Everything lives in the library so that the tests build the very same application
//! as `main`.

pub mod app;
pub mod auth;
pub mod cli;
pub mod config;
pub mod domain;
pub mod email;
pub mod http;
pub mod server;
pub mod state;
pub mod store;
pub mod telemetry;
