//! The nouns of gatehouse and the rules that make a value valid (API.md §3).
//!
//! Parse, don't validate: the only way to hold a `Username` or an `EmailAddress` is to
//! have parsed one. Nothing here touches the database, the network or the clock.

pub mod email;
pub mod errors;
pub mod messages;
pub mod password;
pub mod user;
pub mod username;

pub use email::EmailAddress;
pub use errors::FieldErrors;
pub use password::PasswordPolicy;
pub use user::{User, UserId};
pub use username::Username;
