//! Password hashing: Argon2id at OWASP's parameters, written in Django's encoding
//! (`argon2$argon2id$v=19$m=…,t=…,p=…$salt$hash`), computed on a bounded blocking pool.
//! Verification also reads every other format Django's hashers write (`django_hashers`);
//! those verify as `outdated`, so a login replaces them.
//!
//! Argon2 is slow and memory-hungry by design; running it on the async executor would
//! stall every other request, and running unboundedly many at once would let a login
//! flood exhaust memory. So every hash or verification takes a slot of a semaphore and
//! runs on tokio's blocking threads (STYLE.md P4).

use super::django_hashers::{DjangoHash, ARGON2_PREFIX};
use crate::domain::password::MAX_PASSWORD_BYTES;
use argon2::password_hash::rand_core::{OsRng, RngCore};
use argon2::password_hash::{PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use secrecy::{ExposeSecret, SecretString};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

/// OWASP Password Storage Cheat Sheet (2025): Argon2id, m=19 MiB, t=2, p=1.
pub const OWASP_MEMORY_KIB: u32 = 19 * 1024;
pub const OWASP_ITERATIONS: u32 = 2;
pub const OWASP_PARALLELISM: u32 = 1;
/// Django's salts are 22 characters; see `hash_blocking`.
const DJANGO_SALT_BYTES: usize = 22;

#[derive(Debug, thiserror::Error)]
pub enum HashError {
    #[error("password hashing failed: {0}")]
    Hashing(String),
    #[error("the hashing pool is gone")]
    PoolClosed,
    /// Every slot stayed taken for the whole wait: the caller should answer 503.
    #[error("every password-hashing slot is busy")]
    Busy,
}

/// Hashes and verifies passwords; cheap to clone (one shared pool).
#[derive(Clone)]
pub struct PasswordHasher {
    slots: Arc<Semaphore>,
    /// How long a request waits for a slot before giving up with `Busy`.
    wait: Duration,
    params: Params,
    /// A real hash of a random password: unknown users are verified against it, so a
    /// login for a user who does not exist costs the same as a wrong password (API.md §4).
    dummy_hash: Arc<str>,
}

/// What verification found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verified {
    /// The password matches; `outdated` when the stored hash is not at our parameters
    /// and should be replaced.
    Yes {
        outdated: bool,
    },
    No,
}

impl PasswordHasher {
    /// `concurrency` is how many hashes may run at once; more wait for a slot.
    pub fn new(concurrency: usize) -> Self {
        let params = Params::new(
            OWASP_MEMORY_KIB,
            OWASP_ITERATIONS,
            OWASP_PARALLELISM,
            Some(32),
        )
        .expect("OWASP's Argon2 parameters are valid");
        let dummy = SecretString::from(crate::auth::random_hex_id());
        let dummy_hash =
            hash_blocking(&params, &dummy).expect("hashing a random password succeeds");
        Self {
            slots: Arc::new(Semaphore::new(concurrency.max(1))),
            wait: Duration::from_secs(5),
            params,
            dummy_hash: dummy_hash.into(),
        }
    }

    /// Bounds how long a hash waits for a free slot (`GATEHOUSE_HASH_WAIT`): under a
    /// flood the excess is refused quickly instead of queueing without end.
    pub fn with_wait(mut self, wait: Duration) -> Self {
        self.wait = wait;
        self
    }

    /// Hashes `password` into Django's Argon2 encoding.
    pub async fn hash(&self, password: SecretString) -> Result<String, HashError> {
        let params = self.params.clone();
        self.run(move || hash_blocking(&params, &password)).await?
    }

    /// Verifies `password` against a stored encoding. `None` (no such user), an unusable
    /// password (`!…`) or an encoding we cannot read all verify against the dummy hash
    /// and answer `No`, so every failure costs one full Argon2 run.
    pub async fn verify(
        &self,
        password: SecretString,
        stored: Option<String>,
    ) -> Result<Verified, HashError> {
        if password.expose_secret().len() > MAX_PASSWORD_BYTES {
            // Longer than any password gatehouse sets, so it matches nothing: refused
            // before any hashing, so a 64 KiB "password" costs no more than a short one.
            return Ok(Verified::No);
        }
        let dummy = self.dummy_hash.clone();
        let ours = self.params.clone();
        self.run(move || {
            let password = password.expose_secret().as_bytes();
            match stored.as_deref().and_then(DjangoHash::parse) {
                Some(hash) if hash.verify(password) => {
                    let current = matches!(&hash, DjangoHash::Argon2(h) if same_params(h, &ours));
                    Verified::Yes { outdated: !current }
                }
                Some(_) => Verified::No,
                None => {
                    if let Some(dummy) = DjangoHash::parse(&dummy) {
                        dummy.verify(password);
                    }
                    Verified::No
                }
            }
        })
        .await
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, HashError> {
        // The permit moves into the closure: work that outlives a dropped request keeps its
        // slot until it really finishes, so the bound holds.
        let permit = tokio::time::timeout(self.wait, self.slots.clone().acquire_owned())
            .await
            .map_err(|_| HashError::Busy)?
            .map_err(|_| HashError::PoolClosed)?;
        let span = tracing::Span::current();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            span.in_scope(work)
        })
        .await
        .map_err(|_| HashError::PoolClosed)
    }
}

fn hash_blocking(params: &Params, password: &SecretString) -> Result<String, HashError> {
    use argon2::PasswordHasher as _;
    // 22 random bytes rather than the crate's 16: Django judges a stored salt by its
    // length at 5.95 bits a character (`must_update_salt`) and re-hashes anything under
    // 128 bits by that count, so a 16-byte salt would be replaced on every Django login.
    let mut bytes = [0u8; DJANGO_SALT_BYTES];
    OsRng.fill_bytes(&mut bytes);
    let salt = SaltString::encode_b64(&bytes).map_err(|e| HashError::Hashing(e.to_string()))?;
    let phc = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
        .hash_password(password.expose_secret().as_bytes(), &salt)
        .map_err(|e| HashError::Hashing(e.to_string()))?;
    Ok(format!("{ARGON2_PREFIX}{phc}"))
}

fn same_params(hash: &PasswordHash<'_>, ours: &Params) -> bool {
    let get = |name: &str| hash.params.get_decimal(name);
    hash.algorithm.as_str() == "argon2id"
        && get("m") == Some(ours.m_cost())
        && get("t") == Some(ours.t_cost())
        && get("p") == Some(ours.p_cost())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_in_djangos_encoding_and_verifies() {
        let hasher = PasswordHasher::new(1);
        let encoded = hasher
            .hash(SecretString::from("s3cret-Passw0rd"))
            .await
            .unwrap();
        assert!(
            encoded.starts_with("argon2$argon2id$v=19$m=19456,t=2,p=1$"),
            "{encoded}"
        );
        assert!(encoded.len() <= 128, "fits auth_user.password varchar(128)");
        let verdict = hasher
            .verify(SecretString::from("s3cret-Passw0rd"), Some(encoded.clone()))
            .await
            .unwrap();
        assert_eq!(verdict, Verified::Yes { outdated: false });
        let verdict = hasher
            .verify(SecretString::from("wrong"), Some(encoded))
            .await
            .unwrap();
        assert_eq!(verdict, Verified::No);
    }

    #[tokio::test]
    async fn a_django_default_argon2_hash_verifies_and_is_outdated() {
        // Made by argon2-cffi exactly as Django's Argon2PasswordHasher does (m=102400,
        // t=2, p=8, 32-byte hash) for the password "bing@1234x".
        let hasher = PasswordHasher::new(1);
        let django = "argon2$argon2id$v=19$m=102400,t=2,p=8$RGphbmdvU2FsdFN0cmluZzIyY2hhcnM$9cA9U+jdB58qjeJWgxd/cSsIrMmKniukGBQAliFT94w";
        let verdict = hasher
            .verify(SecretString::from("bing@1234x"), Some(django.to_owned()))
            .await
            .unwrap();
        assert_eq!(verdict, Verified::Yes { outdated: true });
        let verdict = hasher
            .verify(SecretString::from("bing@1234y"), Some(django.to_owned()))
            .await
            .unwrap();
        assert_eq!(verdict, Verified::No);
    }

    #[tokio::test]
    async fn unreadable_or_missing_hashes_fail_without_error() {
        let hasher = PasswordHasher::new(1);
        for stored in [
            None,
            Some("!unusable".to_owned()),
            Some("pbkdf2_sha256$x".to_owned()),
            Some("argon2$garbage".to_owned()),
        ] {
            assert_eq!(
                hasher
                    .verify(SecretString::from("x"), stored)
                    .await
                    .unwrap(),
                Verified::No
            );
        }
    }
}
