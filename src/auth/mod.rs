//! Credentials: password hashes in Django's encodings, and SimpleJWT-compatible tokens.
//! No HTTP and no SQL here; `http/` and `store/` call into these.

pub mod django_hashers;
pub mod lockout;
pub mod passwords;
pub mod reset;
pub mod tokens;

pub use passwords::PasswordHasher;
pub use tokens::{Claims, SessionId, TokenError, TokenKeys, TokenPair, TokenType};

/// 32 lowercase hex characters from 128 random bits: the shape of SimpleJWT's `jti`
/// (a uuid4's hex) and of gatehouse's session ids.
pub fn random_hex_id() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}
