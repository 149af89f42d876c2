//! Reading the password hashes Django's default hashers write (API.md §9), so users
//! of an existing Django database log in without a reset:
//! `argon2$argon2id$…`, `pbkdf2_sha256$iterations$salt$hash`, `pbkdf2_sha1$…`,
//! `bcrypt_sha256$$2b$…`, `bcrypt$$2b$…` and `scrypt$n$salt$r$p$hash`.
//!
//! The primitives come from RustCrypto (`pbkdf2`, `sha1`, `sha2`, `scrypt`, `argon2`)
//! and the `bcrypt` crate; only Django's string layouts are parsed here. Comparisons are
//! constant-time. Cost parameters read from the database are bounded, so a hostile row
//! cannot make one login take unbounded time or memory.
//!
//! A string is read only if its crate would compute it. One the crate refuses (a salt too
//! short, a bcrypt string of the wrong length, …) fails at once, having hashed nothing:
//! read, such a row would answer a login faster than an unknown name does and tell that
//! the account exists. Unread, it is verified against the dummy as an unknown name is.

use argon2::password_hash::PasswordHash;
use argon2::{Algorithm, Argon2, Params, PasswordVerifier, Version};
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
/// The digest lengths Django writes: PBKDF2's is its hash's output (`dklen=None`), and
/// scrypt's is `dklen=64`. Django verifies by encoding the password again and comparing
/// whole strings, so a stored digest of another length never matches there. Here it is
/// not read: PBKDF2 and scrypt compute any length, and a shorter output is a prefix of
/// the longer one, so a truncated digest would match passwords that are not the one.
const PBKDF2_SHA256_DIGEST_BYTES: usize = 32;
const PBKDF2_SHA1_DIGEST_BYTES: usize = 20;
const SCRYPT_DIGEST_BYTES: usize = 64;

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

/// Whether `Argon2::verify_password` would compute `hash` rather than refuse it having
/// done no work. It refuses a hash without salt or digest, a variant or version it does
/// not know, parameters its `Params` does not take (any besides m, t, p, keyid and data;
/// m under 8 KiB a lane), and a salt that is not base64 or under 8 bytes once decoded.
fn argon2_computable(hash: &PasswordHash<'_>) -> bool {
    // The buffer `Argon2::hash_password` decodes the salt into.
    let mut salt = [0u8; 64];
    hash.hash.is_some()
        && Algorithm::try_from(hash.algorithm).is_ok()
        && hash
            .version
            .is_none_or(|version| Version::try_from(version).is_ok())
        && Params::try_from(hash).is_ok()
        && hash.salt.is_some_and(|encoded| {
            encoded
                .decode_b64(&mut salt)
                .is_ok_and(|salt| salt.len() >= argon2::MIN_SALT_LEN)
        })
}

/// The cost of a bcrypt string `bcrypt::verify` would compute and compare; `None` for one
/// it refuses: before hashing, in its own reading (`HashParts`: three fields, empty ones
/// skipped, the version 2a, 2b, 2x or 2y, a numeric cost, 53 characters of salt and
/// digest) or a salt that is not 16 bytes of bcrypt's base64; after hashing, a digest that
/// is not bcrypt's base64. So the cost bounded is the one `verify` runs.
fn bcrypt_cost(bcrypt: &str) -> Option<u32> {
    let parts: bcrypt::HashParts = bcrypt.parse().ok()?;
    let salt_and_digest = bcrypt.split('$').filter(|field| !field.is_empty()).nth(2)?;
    let salt = bcrypt::BASE_64.decode(parts.get_salt()).ok()?;
    bcrypt::BASE_64.decode(salt_and_digest.get(22..)?).ok()?;
    (salt.len() == 16).then(|| parts.get_cost())
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
    /// The `$2b$…` bcrypt string and the cost it names; `prehash` for `bcrypt_sha256`.
    Bcrypt {
        bcrypt: &'a str,
        cost: u32,
        prehash: bool,
    },
    Scrypt {
        params: scrypt::Params,
        salt: &'a str,
        hash: Vec<u8>,
    },
}

impl<'a> DjangoHash<'a> {
    /// Parses Django's encoding; `None` for unknown algorithms, unusable passwords
    /// (`!…`), malformed or out-of-bounds strings, and strings the hashing crates would
    /// refuse to compute.
    pub fn parse(encoded: &'a str) -> Option<Self> {
        let (algorithm, rest) = encoded.split_once('$')?;
        match algorithm {
            ARGON2_PREFIX => PasswordHash::new(&encoded[ARGON2_PREFIX.len()..])
                .ok()
                .filter(|h| argon2_computable(h) && argon2_bounded(h))
                .map(DjangoHash::Argon2),
            "pbkdf2_sha256" | "pbkdf2_sha1" => {
                let mut parts = rest.splitn(3, '$');
                let iterations: u32 = parts
                    .next()?
                    .parse()
                    .ok()
                    .filter(|n| (1..=MAX_PBKDF2_ITERATIONS).contains(n))?;
                let salt = parts.next().filter(|salt| !salt.is_empty())?;
                let hash = STANDARD.decode(parts.next()?).ok()?;
                let digest_bytes = if algorithm == "pbkdf2_sha256" {
                    PBKDF2_SHA256_DIGEST_BYTES
                } else {
                    PBKDF2_SHA1_DIGEST_BYTES
                };
                if hash.len() != digest_bytes {
                    return None;
                }
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
                // `bcrypt_sha256$` + bcrypt's own `$2b$12$…`, 12 being the cost.
                let bcrypt = rest;
                let cost = bcrypt_cost(bcrypt)?;
                let bounded = (MIN_BCRYPT_COST..=MAX_BCRYPT_COST).contains(&cost);
                (bcrypt.starts_with("$2") && bounded).then_some(DjangoHash::Bcrypt {
                    bcrypt,
                    cost,
                    prehash: algorithm == "bcrypt_sha256",
                })
            }
            "scrypt" => {
                let mut parts = rest.splitn(5, '$');
                let n: u64 = parts.next()?.parse().ok()?;
                let salt = parts.next().filter(|salt| !salt.is_empty())?;
                let r: u32 = parts.next()?.parse().ok()?;
                let p: u32 = parts.next()?.parse().ok()?;
                let hash = STANDARD.decode(parts.next()?).ok()?;
                if hash.len() != SCRYPT_DIGEST_BYTES {
                    return None;
                }
                // n is any number a row holds: n·r must not overflow (a panic in a debug
                // build, a wrap to 0 in a release one).
                let bounded = n.is_power_of_two()
                    && n > 1
                    && r > 0
                    && n.checked_mul(u64::from(r))
                        .is_some_and(|n_times_r| n_times_r <= MAX_SCRYPT_N_TIMES_R)
                    && (1..=MAX_SCRYPT_P).contains(&p);
                if !bounded {
                    return None;
                }
                // The crate's own check, as `verify` meets it: n under 2^(16r).
                let params =
                    scrypt::Params::new(n.trailing_zeros() as u8, r, p, hash.len()).ok()?;
                Some(DjangoHash::Scrypt { params, salt, hash })
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
            DjangoHash::Bcrypt { cost, prehash, .. } => {
                // `$2b$12$` then 22 characters of salt and 31 of digest in bcrypt's own
                // alphabet, where `.` is zero. Every version costs the same: one name
                // for them all (and for a cost written `012`).
                let algorithm = if *prehash { "bcrypt_sha256" } else { "bcrypt" };
                format!("{algorithm}$$2b${cost:02}${}", ".".repeat(53))
            }
            DjangoHash::Scrypt { params, .. } => {
                let (n, r, p) = (1u64 << params.log_n(), params.r(), params.p());
                format!("scrypt${n}${SALT}${r}${p}${}", zeros(64))
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
                let mut out = vec![0u8; hash.len()];
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
                let mut out = vec![0u8; hash.len()];
                pbkdf2::pbkdf2_hmac::<sha1::Sha1>(password, salt.as_bytes(), *iterations, &mut out);
                bool::from(out.ct_eq(hash))
            }
            DjangoHash::Bcrypt {
                bcrypt, prehash, ..
            } => {
                // Django's bcrypt_sha256 feeds bcrypt the hex SHA-256 of the password, so
                // long passwords are not truncated at bcrypt's 72 bytes.
                let input = if *prehash {
                    hex::encode(sha2::Sha256::digest(password)).into_bytes()
                } else {
                    password.to_vec()
                };
                bcrypt::verify(input, bcrypt).unwrap_or(false)
            }
            DjangoHash::Scrypt { params, salt, hash } => {
                let mut out = vec![0u8; hash.len()];
                scrypt::scrypt(password, salt.as_bytes(), params, &mut out).is_ok()
                    && bool::from(out.ct_eq(hash))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Made with Python's hashlib, bcrypt and argon2-cffi exactly as Django's hashers call
    // them, for the password "correct-Horse-battery-7".
    const PASSWORD: &[u8] = b"correct-Horse-battery-7";
    const VECTORS: &[&str] = &[
        "pbkdf2_sha256$260000$gatehouseSalt256$/I8uealmfV1znTwyFo0bEO71aCBXxxzmnhWZRiXitZc=",
        "pbkdf2_sha1$260000$gatehouseSalt001$+7I0v3Cs53wTPMfADCVJatoUedQ=",
        "bcrypt_sha256$$2b$12$8vWNi1Me1qTROmlO7NiWje0BvKkw6ZDum13.jvpsgWlARS04A8l6.",
        "scrypt$16384$gatehouseScrypt1$8$1$yRhPwA0hK66drScBM23ardMeY9t4jrY+Iy4SaenMX16iPP7xTICY1LXPpvxEjBOXbqpmbv2v3AjcYic5AVeumg==",
        "argon2$argon2id$v=19$m=102400,t=2,p=8$5gzGuamZZfe8YcKaYhWhDw$o7nx6LaYcx9AVQ9wPss0WDaA7gsjWk1xGxilTjUXNwE",
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

    /// Whether the crate that computes `encoded`'s algorithm refuses it: answers neither
    /// "matches" nor "does not match" (argon2's "does not match" is also its answer for a
    /// hash without salt or digest, found without hashing).
    fn its_crate_refuses(encoded: &str) -> bool {
        let (algorithm, rest) = encoded.split_once('$').unwrap();
        match algorithm {
            ARGON2_PREFIX => match PasswordHash::new(&encoded[ARGON2_PREFIX.len()..]) {
                Err(_) => true,
                Ok(hash) => {
                    hash.salt.is_none()
                        || hash.hash.is_none()
                        || !matches!(
                            Argon2::default().verify_password(PASSWORD, &hash),
                            Err(argon2::password_hash::Error::Password)
                        )
                }
            },
            "bcrypt" | "bcrypt_sha256" => bcrypt::verify(PASSWORD, rest).is_err(),
            "scrypt" => {
                let fields: Vec<&str> = rest.split('$').collect();
                let n: u64 = fields[0].parse().unwrap();
                let (r, p) = (fields[2].parse().unwrap(), fields[3].parse().unwrap());
                let output_len = STANDARD.decode(fields[4]).unwrap().len();
                scrypt::Params::new(n.trailing_zeros() as u8, r, p, output_len).is_err()
            }
            _ => unreachable!("{encoded}"),
        }
    }

    #[test]
    fn hashes_their_crate_refuses_to_compute_are_not_read() {
        // Each has Django's layout and costs within the bounds; read, it would fail a
        // login at once instead of costing what an unknown name costs. PBKDF2 has no
        // such string: it computes any salt and any count of iterations.
        let salt = "c2FsdHNhbHRzYWx0c2FsdA";
        let digest = "A".repeat(43);
        let bcrypt = "8vWNi1Me1qTROmlO7NiWje0BvKkw6ZDum13.jvpsgWlARS04A8l6.";
        let scrypt_digest = STANDARD.encode([0u8; 64]);
        let refused = [
            // Argon2: a salt under 8 bytes, or not base64; no digest, or no salt either;
            // a variant or a version the crate does not know; m under 8 KiB a lane; a
            // parameter it does not know; a keyid over 8 bytes, data over 32.
            format!("argon2$argon2id$v=19$m=19456,t=2,p=1$c2FsdA${digest}"),
            format!("argon2$argon2id$v=19$m=19456,t=2,p=1$salt.salt-salt${digest}"),
            format!("argon2$argon2id$v=19$m=19456,t=2,p=1${salt}"),
            "argon2$argon2id$v=19$m=19456,t=2,p=1".to_owned(),
            format!("argon2$argon2x$v=19$m=19456,t=2,p=1${salt}${digest}"),
            format!("argon2$argon2id$v=18$m=19456,t=2,p=1${salt}${digest}"),
            format!("argon2$argon2id$v=19$m=7,t=2,p=1${salt}${digest}"),
            format!("argon2$argon2id$v=19$m=15,t=2,p=2${salt}${digest}"),
            format!("argon2$argon2id$v=19$m=19456,t=2,p=1,x=1${salt}${digest}"),
            format!("argon2$argon2id$v=19$m=19456,t=2,p=1,keyid=AAAAAAAAAAAA${salt}${digest}"),
            format!(
                "argon2$argon2id$v=19$m=19456,t=2,p=1,data={}${salt}${digest}",
                "A".repeat(44)
            ),
            // bcrypt: a version but 2a, 2b, 2x and 2y; salt and digest not 53 characters,
            // or split by one field too many, or not 53 bytes of ASCII; a salt or digest
            // not in bcrypt's base64 (its last character leaves bits over).
            format!("bcrypt_sha256$$2c$12${bcrypt}"),
            format!("bcrypt$$2$12${bcrypt}"),
            format!("bcrypt_sha256$$2b$12${}", &bcrypt[..52]),
            format!("bcrypt_sha256$$2b$12${bcrypt}."),
            format!("bcrypt_sha256$$2b$12${}${}", &bcrypt[..22], &bcrypt[22..]),
            format!(
                "bcrypt_sha256$$2b$12${}\u{e9}{}",
                &bcrypt[..21],
                &bcrypt[23..]
            ),
            format!("bcrypt_sha256$$2b$12${}*{}", &bcrypt[..21], &bcrypt[22..]),
            format!("bcrypt_sha256$$2b$12${}f{}", &bcrypt[..21], &bcrypt[22..]),
            format!("bcrypt$$2b$12${}/", &bcrypt[..52]),
            // scrypt: n at least 2^(16r); a digest over 64 bytes; n·r past 2⁶⁴.
            format!("scrypt$131072$salt$1$1${scrypt_digest}"),
            format!("scrypt$16384$salt$8$1${}", STANDARD.encode([0u8; 65])),
            format!("scrypt$9223372036854775808$salt$4$1${scrypt_digest}"),
        ];
        for encoded in &refused {
            assert!(its_crate_refuses(encoded), "the crate computes {encoded}");
            assert!(DjangoHash::parse(encoded).is_none(), "{encoded}");
        }
    }

    #[test]
    fn every_hash_the_crates_make_within_the_bounds_is_read_and_verifies() {
        use argon2::password_hash::SaltString;
        use argon2::{AssociatedData, KeyId, ParamsBuilder, PasswordHasher};
        let mut made: Vec<String> = VECTORS.iter().map(|v| v.to_string()).collect();

        // Argon2: every variant and version, the shortest and longest salts and digests
        // the crate takes, keyid and data, and no version at all (read as 0x13).
        let params = |output_len| Params::new(64, 1, 2, Some(output_len)).unwrap();
        for algorithm in [Algorithm::Argon2d, Algorithm::Argon2i, Algorithm::Argon2id] {
            for version in [Version::V0x10, Version::V0x13] {
                for (salt_len, output_len) in [(argon2::MIN_SALT_LEN, 10), (16, 32), (48, 64)] {
                    let salt = SaltString::encode_b64(&vec![7; salt_len]).unwrap();
                    let argon2 = Argon2::new(algorithm, version, params(output_len));
                    let phc = argon2.hash_password(PASSWORD, &salt).unwrap();
                    made.push(format!("{ARGON2_PREFIX}{phc}"));
                }
            }
        }
        let with_keyid_and_data = ParamsBuilder::new()
            .m_cost(64)
            .t_cost(1)
            .p_cost(1)
            .keyid(KeyId::new(&[1; 8]).unwrap())
            .data(AssociatedData::new(&[2; 32]).unwrap())
            .build()
            .unwrap();
        let salt = SaltString::encode_b64(&[7; 16]).unwrap();
        let phc = Argon2::new(Algorithm::Argon2id, Version::V0x13, with_keyid_and_data)
            .hash_password(PASSWORD, &salt)
            .unwrap();
        made.push(format!("{ARGON2_PREFIX}{phc}"));
        let unversioned = made.last().unwrap().replace("$v=19$", "$");
        made.push(unversioned);

        // bcrypt: every version the crate reads, plain and as Django's bcrypt_sha256,
        // at the least cost (the greatest, 16, is read below without its seconds of work).
        let prehashed = hex::encode(sha2::Sha256::digest(PASSWORD));
        for version in [
            bcrypt::Version::TwoA,
            bcrypt::Version::TwoB,
            bcrypt::Version::TwoX,
            bcrypt::Version::TwoY,
        ] {
            let plain = bcrypt::hash_with_salt(PASSWORD, MIN_BCRYPT_COST, [7; 16]).unwrap();
            made.push(format!(
                "bcrypt${}",
                plain.format_for_version(version.clone())
            ));
            let sha256 = bcrypt::hash_with_salt(&prehashed, MIN_BCRYPT_COST, [7; 16]).unwrap();
            made.push(format!(
                "bcrypt_sha256${}",
                sha256.format_for_version(version)
            ));
        }

        // scrypt: the least n and r, and others, with Django's 64-byte digest.
        for (log_n, r, p) in [(1, 1, 1), (4, 2, 3), (10, 8, 1)] {
            let params = scrypt::Params::new(log_n, r, p, SCRYPT_DIGEST_BYTES).unwrap();
            let mut digest = vec![0; SCRYPT_DIGEST_BYTES];
            scrypt::scrypt(PASSWORD, b"salt", &params, &mut digest).unwrap();
            let n = 1u32 << log_n;
            made.push(format!(
                "scrypt${n}$salt${r}${p}${}",
                STANDARD.encode(digest)
            ));
        }

        // PBKDF2: a single iteration, a one-character salt.
        let mut sha256 = [0; 32];
        pbkdf2::pbkdf2_hmac::<sha2::Sha256>(PASSWORD, b"s", 1, &mut sha256);
        made.push(format!("pbkdf2_sha256$1$s${}", STANDARD.encode(sha256)));
        let mut sha1 = [0; 20];
        pbkdf2::pbkdf2_hmac::<sha1::Sha1>(PASSWORD, b"s", 1, &mut sha1);
        made.push(format!("pbkdf2_sha1$1$s${}", STANDARD.encode(sha1)));

        for encoded in &made {
            let hash = DjangoHash::parse(encoded).unwrap_or_else(|| panic!("read: {encoded}"));
            assert!(hash.verify(PASSWORD), "{encoded}");
        }
        let least = bcrypt::hash_with_salt(PASSWORD, MIN_BCRYPT_COST, [7; 16]).unwrap();
        let costliest = format!("bcrypt${least}").replace("$04$", &format!("${MAX_BCRYPT_COST}$"));
        assert!(DjangoHash::parse(&costliest).is_some(), "{costliest}");
    }

    /// The digests of the password `wrong` with `salt` that Django's pbkdf2_sha256,
    /// pbkdf2_sha1 and scrypt (n=16, r=1, p=1) hashers store: one iteration, whole length.
    fn digests_of_wrong(salt: &[u8]) -> ([u8; 32], [u8; 20], [u8; 64]) {
        let mut sha256 = [0; 32];
        pbkdf2::pbkdf2_hmac::<sha2::Sha256>(b"wrong", salt, 1, &mut sha256);
        let mut sha1 = [0; 20];
        pbkdf2::pbkdf2_hmac::<sha1::Sha1>(b"wrong", salt, 1, &mut sha1);
        let params = scrypt::Params::new(4, 1, 1, SCRYPT_DIGEST_BYTES).unwrap();
        let mut scrypt = [0; 64];
        scrypt::scrypt(b"wrong", salt, &params, &mut scrypt).unwrap();
        (sha256, sha1, scrypt)
    }

    #[test]
    fn digests_of_a_length_django_never_writes_are_not_read() {
        // PBKDF2 and scrypt compute any length, and a shorter output is the longer one's
        // start: read, a truncated digest would let in every password whose digest
        // begins the same way (one in 256 for a byte). Django compares whole encodings,
        // so for it such a row matches no password; here it is not read.
        let (sha256, sha1, scrypt) = digests_of_wrong(b"salt");
        let too_short_or_long = [
            format!("pbkdf2_sha256$1$salt${}", STANDARD.encode(&sha256[..1])),
            format!("pbkdf2_sha256$1$salt${}", STANDARD.encode(&sha256[..31])),
            format!("pbkdf2_sha256$1$salt${}", STANDARD.encode([0u8; 33])),
            format!("pbkdf2_sha256$1$salt${}", STANDARD.encode(sha1)),
            format!("pbkdf2_sha1$1$salt${}", STANDARD.encode(&sha1[..4])),
            format!("pbkdf2_sha1$1$salt${}", STANDARD.encode(sha256)),
            format!("scrypt$16$salt$1$1${}", STANDARD.encode(&scrypt[..10])),
            format!("scrypt$16$salt$1$1${}", STANDARD.encode(&scrypt[..63])),
        ];
        for encoded in &too_short_or_long {
            assert!(DjangoHash::parse(encoded).is_none(), "{encoded}");
        }
        // The full-length digests of the same computations are read, and match "wrong".
        for encoded in [
            format!("pbkdf2_sha256$1$salt${}", STANDARD.encode(sha256)),
            format!("pbkdf2_sha1$1$salt${}", STANDARD.encode(sha1)),
            format!("scrypt$16$salt$1$1${}", STANDARD.encode(scrypt)),
        ] {
            let hash = DjangoHash::parse(&encoded).expect(&encoded);
            assert!(hash.verify(b"wrong"), "{encoded}");
        }
    }

    #[test]
    fn an_empty_salt_django_never_writes_is_not_read() {
        // Django refuses to encode with an empty salt (`_check_encode_args` raises), so no
        // password matches such a row there; it is not read here either.
        let (sha256, sha1, scrypt) = digests_of_wrong(b"");
        for encoded in [
            format!("pbkdf2_sha256$1$${}", STANDARD.encode(sha256)),
            format!("pbkdf2_sha1$1$${}", STANDARD.encode(sha1)),
            format!("scrypt$16$$1$1${}", STANDARD.encode(scrypt)),
        ] {
            assert!(DjangoHash::parse(&encoded).is_none(), "{encoded}");
        }
    }
}
