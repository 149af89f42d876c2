//! Reading the password hashes Django's default hashers write (API.md §9), so users
//! of an existing Django database log in without a reset:
//! `argon2$argon2id$…`, `pbkdf2_sha256$iterations$salt$hash`, `pbkdf2_sha1$…`,
//! `bcrypt_sha256$$2b$…`, `bcrypt$$2b$…` and `scrypt$n$salt$r$p$hash`.
//!
//! The primitives come from RustCrypto (`pbkdf2`, `sha1`, `sha2`, `scrypt`, `argon2`)
//! and the `bcrypt` crate; only Django's string layouts are parsed here. Comparisons are
//! constant-time. Cost parameters read from the database are bounded, so a hostile row
//! cannot make one login take unbounded time or memory.

use argon2::password_hash::PasswordHash;
use argon2::{Argon2, PasswordVerifier};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use sha2::Digest;
use subtle::ConstantTimeEq;

/// The prefix Django's `Argon2PasswordHasher` puts before the PHC string.
pub const ARGON2_PREFIX: &str = "argon2";

/// Django 5.2 writes 1,000,000 PBKDF2 iterations; allow generous headroom, no more.
const MAX_PBKDF2_ITERATIONS: u32 = 10_000_000;
/// scrypt memory is 128·n·r bytes; 256 MiB is 16× Django's default (n=2¹⁴, r=8).
const MAX_SCRYPT_N_TIMES_R: u64 = 1 << 21;
const MAX_SCRYPT_P: u32 = 16;

/// Argon2 memory in KiB: 256 MiB, 2.5× Django's default (m=102400), as for scrypt.
const MAX_ARGON2_MEMORY_KIB: u32 = 256 * 1024;
/// Argon2 passes and lanes: Django's defaults are t=2, p=8.
const MAX_ARGON2_ITERATIONS: u32 = 16;
const MAX_ARGON2_PARALLELISM: u32 = 16;

/// bcrypt's cost is log₂ of its rounds: Django writes 12, so 16 is 16× its work (a few
/// seconds a login). The `bcrypt` crate takes up to 31: hours for one attempt.
const MAX_BCRYPT_COST: u32 = 16;
/// The least cost the `bcrypt` crate takes; below it `verify` fails at once, so such a
/// hash goes the unreadable way (the dummy) instead of answering faster.
const MIN_BCRYPT_COST: u32 = 4;

/// Whether an Argon2 hash's costs are within the bounds above. Unbounded, a row with
/// m=4294967295 would make one login ask for 4 TiB, and the allocation failure aborts
/// the whole process.
fn argon2_bounded(hash: &PasswordHash<'_>) -> bool {
    let within = |name: &str, max: u32| {
        hash.params
            .get_decimal(name)
            .is_some_and(|value| (1..=max).contains(&value))
    };
    within("m", MAX_ARGON2_MEMORY_KIB)
        && within("t", MAX_ARGON2_ITERATIONS)
        && within("p", MAX_ARGON2_PARALLELISM)
}

/// A stored hash gatehouse can verify.
pub enum DjangoHash<'a> {
    Argon2(PasswordHash<'a>),
    Pbkdf2Sha256 {
        iterations: u32,
        salt: &'a str,
        hash: Vec<u8>,
    },
    Pbkdf2Sha1 {
        iterations: u32,
        salt: &'a str,
        hash: Vec<u8>,
    },
    /// The `$2b$…` bcrypt string; `prehash` for `bcrypt_sha256`.
    Bcrypt {
        bcrypt: &'a str,
        prehash: bool,
    },
    Scrypt {
        log_n: u8,
        r: u32,
        p: u32,
        salt: &'a str,
        hash: Vec<u8>,
    },
}

impl<'a> DjangoHash<'a> {
    /// Parses Django's encoding; `None` for unknown algorithms, unusable passwords
    /// (`!…`) and malformed or out-of-bounds strings.
    pub fn parse(encoded: &'a str) -> Option<Self> {
        let (algorithm, rest) = encoded.split_once('$')?;
        match algorithm {
            ARGON2_PREFIX => PasswordHash::new(&encoded[ARGON2_PREFIX.len()..])
                .ok()
                .filter(|h| h.algorithm.as_str().starts_with("argon2") && argon2_bounded(h))
                .map(DjangoHash::Argon2),
            "pbkdf2_sha256" | "pbkdf2_sha1" => {
                let mut parts = rest.splitn(3, '$');
                let iterations: u32 = parts
                    .next()?
                    .parse()
                    .ok()
                    .filter(|n| (1..=MAX_PBKDF2_ITERATIONS).contains(n))?;
                let salt = parts.next()?;
                let hash = STANDARD.decode(parts.next()?).ok()?;
                Some(if algorithm == "pbkdf2_sha256" {
                    DjangoHash::Pbkdf2Sha256 {
                        iterations,
                        salt,
                        hash,
                    }
                } else {
                    DjangoHash::Pbkdf2Sha1 {
                        iterations,
                        salt,
                        hash,
                    }
                })
            }
            "bcrypt_sha256" | "bcrypt" => {
                // `bcrypt_sha256$` + bcrypt's own `$2b$12$…`, 12 being the cost. It is
                // read as the `bcrypt` crate reads it (empty fields skipped), so the cost
                // bounded here is the one `verify` runs.
                let bcrypt = rest;
                let cost: u32 = bcrypt
                    .split('$')
                    .filter(|field| !field.is_empty())
                    .nth(1)?
                    .parse()
                    .ok()?;
                let bounded = (MIN_BCRYPT_COST..=MAX_BCRYPT_COST).contains(&cost);
                (bcrypt.starts_with("$2") && bounded).then_some(DjangoHash::Bcrypt {
                    bcrypt,
                    prehash: algorithm == "bcrypt_sha256",
                })
            }
            "scrypt" => {
                let mut parts = rest.splitn(5, '$');
                let n: u64 = parts.next()?.parse().ok()?;
                let salt = parts.next()?;
                let r: u32 = parts.next()?.parse().ok()?;
                let p: u32 = parts.next()?.parse().ok()?;
                let hash = STANDARD.decode(parts.next()?).ok()?;
                let bounded = n.is_power_of_two()
                    && n > 1
                    && r > 0
                    && n * u64::from(r) <= MAX_SCRYPT_N_TIMES_R
                    && (1..=MAX_SCRYPT_P).contains(&p);
                bounded.then_some(DjangoHash::Scrypt {
                    log_n: n.trailing_zeros() as u8,
                    r,
                    p,
                    salt,
                    hash,
                })
            }
            _ => None,
        }
    }

    /// A hash of the same algorithm and costs as this one, made of no password (a fixed
    /// salt, a digest of zeros): verifying any password against it fails, and costs what
    /// verifying against this one costs. Equal costs give equal strings, so it also names
    /// the cost (`PasswordHasher` tallies them to pick the dummy for unknown users).
    pub fn same_cost_dummy(&self) -> String {
        const SALT: &str = "gatehouseDummySalt0000";
        let zeros = |len: usize| STANDARD.encode(vec![0u8; len]);
        match self {
            DjangoHash::Argon2(hash) => {
                // PHC strings carry unpadded base64: 16 bytes of salt, a 32-byte digest.
                let version = hash.version.unwrap_or(0x13);
                format!(
                    "{ARGON2_PREFIX}${}$v={version}${}$Z2F0ZWhvdXNlZHVtbXkwMA${}",
                    hash.algorithm,
                    hash.params,
                    "A".repeat(43)
                )
            }
            // PBKDF2 runs all its iterations once per block of output: the same length.
            DjangoHash::Pbkdf2Sha256 {
                iterations, hash, ..
            } => {
                format!("pbkdf2_sha256${iterations}${SALT}${}", zeros(hash.len()))
            }
            DjangoHash::Pbkdf2Sha1 {
                iterations, hash, ..
            } => {
                format!("pbkdf2_sha1${iterations}${SALT}${}", zeros(hash.len()))
            }
            DjangoHash::Bcrypt { bcrypt, prehash } => {
                // `$2b$12$` then 22 characters of salt and 31 of digest in bcrypt's own
                // alphabet, where `.` is zero.
                let mut fields = bcrypt.split('$').filter(|field| !field.is_empty());
                let (version, cost) =
                    (fields.next().unwrap_or("2b"), fields.next().unwrap_or("12"));
                let algorithm = if *prehash { "bcrypt_sha256" } else { "bcrypt" };
                format!("{algorithm}$${version}${cost}${}", ".".repeat(53))
            }
            DjangoHash::Scrypt { log_n, r, p, .. } => {
                format!("scrypt${}${SALT}${r}${p}${}", 1u64 << log_n, zeros(64))
            }
        }
    }

    /// Whether `password` is the one this hash was made from. Blocking and slow by design.
    pub fn verify(&self, password: &[u8]) -> bool {
        match self {
            DjangoHash::Argon2(hash) => Argon2::default().verify_password(password, hash).is_ok(),
            DjangoHash::Pbkdf2Sha256 {
                iterations,
                salt,
                hash,
            } => {
                let mut out = vec![0u8; hash.len().max(1)];
                pbkdf2::pbkdf2_hmac::<sha2::Sha256>(
                    password,
                    salt.as_bytes(),
                    *iterations,
                    &mut out,
                );
                bool::from(out.ct_eq(hash))
            }
            DjangoHash::Pbkdf2Sha1 {
                iterations,
                salt,
                hash,
            } => {
                let mut out = vec![0u8; hash.len().max(1)];
                pbkdf2::pbkdf2_hmac::<sha1::Sha1>(password, salt.as_bytes(), *iterations, &mut out);
                bool::from(out.ct_eq(hash))
            }
            DjangoHash::Bcrypt { bcrypt, prehash } => {
                // Django's bcrypt_sha256 feeds bcrypt the hex SHA-256 of the password, so
                // long passwords are not truncated at bcrypt's 72 bytes.
                let input = if *prehash {
                    hex::encode(sha2::Sha256::digest(password)).into_bytes()
                } else {
                    password.to_vec()
                };
                bcrypt::verify(input, bcrypt).unwrap_or(false)
            }
            DjangoHash::Scrypt {
                log_n,
                r,
                p,
                salt,
                hash,
            } => {
                let Ok(params) = scrypt::Params::new(*log_n, *r, *p, hash.len().max(10)) else {
                    return false;
                };
                let mut out = vec![0u8; hash.len().max(10)];
                scrypt::scrypt(password, salt.as_bytes(), &params, &mut out).is_ok()
                    && bool::from(out.ct_eq(hash))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Made with Python's hashlib and bcrypt exactly as Django's hashers call them, for
    // the password "correct-Horse-battery-7".
    const PASSWORD: &[u8] = b"correct-Horse-battery-7";
    const VECTORS: &[&str] = &[
        "pbkdf2_sha256$260000$gatehouseSalt256$/I8uealmfV1znTwyFo0bEO71aCBXxxzmnhWZRiXitZc=",
        "pbkdf2_sha1$260000$gatehouseSalt001$+7I0v3Cs53wTPMfADCVJatoUedQ=",
        "bcrypt_sha256$$2b$12$8vWNi1Me1qTROmlO7NiWje0BvKkw6ZDum13.jvpsgWlARS04A8l6.",
        "scrypt$16384$gatehouseScrypt1$8$1$yRhPwA0hK66drScBM23ardMeY9t4jrY+Iy4SaenMX16iPP7xTICY1LXPpvxEjBOXbqpmbv2v3AjcYic5AVeumg==",
    ];

    #[test]
    fn a_same_cost_dummy_reads_back_at_the_same_cost_and_matches_no_password() {
        let ours = "argon2$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0c2FsdA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
        for encoded in VECTORS.iter().copied().chain([ours]) {
            let hash = DjangoHash::parse(encoded).expect("parses");
            let dummy = hash.same_cost_dummy();
            let read = DjangoHash::parse(&dummy).unwrap_or_else(|| panic!("{dummy}"));
            assert_eq!(read.same_cost_dummy(), dummy, "the same costs: {encoded}");
            assert!(!read.verify(PASSWORD), "{dummy}");
            // The costs are the ones read: the fields before the salt survive (and
            // scrypt's r and p after it, below).
            let before_salt = if encoded.starts_with("argon2") || encoded.starts_with("bcrypt") {
                4
            } else {
                2
            };
            let costs = |s: &str| s.split('$').take(before_salt).collect::<Vec<_>>().join("$");
            assert_eq!(costs(&dummy), costs(encoded), "{dummy}");
        }
        let scrypt = DjangoHash::parse(VECTORS[3]).unwrap().same_cost_dummy();
        assert!(
            scrypt.starts_with("scrypt$16384$") && scrypt.contains("$8$1$"),
            "{scrypt}"
        );
    }

    #[test]
    fn djangos_hashes_verify_the_right_password_only() {
        for encoded in VECTORS {
            let hash = DjangoHash::parse(encoded).unwrap_or_else(|| panic!("parses: {encoded}"));
            assert!(hash.verify(PASSWORD), "{encoded}");
            assert!(!hash.verify(b"correct-Horse-battery-8"), "{encoded}");
        }
    }

    #[test]
    fn unknown_malformed_and_unbounded_hashes_are_not_read() {
        for encoded in [
            "",
            "!unusable",
            "md5$salt$abc",
            "pbkdf2_sha256$abc$salt$hash",
            "pbkdf2_sha256$99999999999$salt$aGFzaA==",
            "scrypt$1048576$salt$64$5$aGFzaA==",
            "scrypt$1000$salt$8$1$aGFzaA==",
            "bcrypt_sha256$nope",
            "bcrypt_sha256$$2b$31$8vWNi1Me1qTROmlO7NiWje0BvKkw6ZDum13.jvpsgWlARS04A8l6.",
            "bcrypt$$2b$17$8vWNi1Me1qTROmlO7NiWje0BvKkw6ZDum13.jvpsgWlARS04A8l6.",
            "bcrypt_sha256$$2b$$$31$8vWNi1Me1qTROmlO7NiWje0BvKkw6ZDum13.jvpsgWlARS04A8l6.",
            "bcrypt_sha256$$2b$03$8vWNi1Me1qTROmlO7NiWje0BvKkw6ZDum13.jvpsgWlARS04A8l6.",
            "argon2$garbage",
            "argon2$argon2id$v=19$m=4294967295,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo",
            "argon2$argon2id$v=19$m=19456,t=4294967295,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo",
            "argon2$argon2id$v=19$m=19456,t=2,p=255$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo",
            "argon2$argon2id$v=19$t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo",
        ] {
            assert!(DjangoHash::parse(encoded).is_none(), "{encoded}");
        }
    }
}
