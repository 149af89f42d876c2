//! Reset secrets (API.md §4): made from 256 random bits, stored only as a SHA-256
//! digest (the secret has far more entropy than a password, so no salt or Argon2 is
//! needed), and Django's `uid` encoding of a user id.

use crate::domain::UserId;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};
use std::fmt;

/// The hex SHA-256 of a reset secret: what the database keeps.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenDigest(String);

impl TokenDigest {
    pub fn of(secret: &str) -> Self {
        Self(hex::encode(Sha256::digest(secret.as_bytes())))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for TokenDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenDigest(…)")
    }
}

/// A new reset secret (43 URL-safe characters) and its digest.
pub fn new_secret() -> (String, TokenDigest) {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let secret = URL_SAFE_NO_PAD.encode(bytes);
    let digest = TokenDigest::of(&secret);
    (secret, digest)
}

/// Django's `urlsafe_base64_encode(force_bytes(user.pk))`: the decimal id, base64url,
/// no padding (6 → "Ng").
pub fn encode_uid(id: UserId) -> String {
    URL_SAFE_NO_PAD.encode(id.0.to_string())
}

/// The inverse of `encode_uid`; `None` for anything that is not one (padding is
/// tolerated, as Django's decoder tolerates it).
pub fn decode_uid(uid: &str) -> Option<UserId> {
    let bytes = URL_SAFE_NO_PAD
        .decode(uid.trim().trim_end_matches('='))
        .ok()?;
    let text = std::str::from_utf8(&bytes).ok()?;
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse::<i64>().ok().filter(|id| *id > 0).map(UserId)
}

/// A digest of the stored password hash: a reset token records it when made and is
/// refused once it no longer matches, so any password change kills outstanding tokens.
pub fn password_fingerprint(password_hash: &str) -> String {
    hex::encode(Sha256::digest(password_hash.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uids_are_djangos() {
        assert_eq!(encode_uid(UserId(6)), "Ng");
        assert_eq!(encode_uid(UserId(1234)), "MTIzNA");
        assert_eq!(decode_uid("MTIzNA"), Some(UserId(1234)));
        assert_eq!(decode_uid("MTIzNA=="), Some(UserId(1234)));
        for bad in ["", "!!", "YWJj", "LTE", "MA"] {
            assert_eq!(decode_uid(bad), None, "{bad}");
        }
    }

    #[test]
    fn secrets_are_long_random_and_stored_as_digests() {
        let (a, digest_a) = new_secret();
        let (b, _) = new_secret();
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert_eq!(digest_a, TokenDigest::of(&a));
        assert_eq!(digest_a.as_str().len(), 64);
        assert!(!digest_a.as_str().contains(&a));
    }
}
