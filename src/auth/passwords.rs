//! Password hashing: Argon2id at OWASP's parameters, written in Django's encoding
//! (`argon2$argon2id$v=19$m=…,t=…,p=…$salt$hash`), computed on a bounded blocking pool.
//! Verification also reads every other format Django's hashers write (`django_hashers`);
//! those verify as `outdated`, so a login replaces them.
//!
//! Argon2 is slow and memory-hungry by design; running it on the async executor would
//! stall every other request, and running unboundedly many at once would let a login
//! flood exhaust memory. So every hash or verification takes a slot of a semaphore and
//! runs on threads of its own, one per slot, at the lowest CPU priority (STYLE.md P4,
//! departing from its `spawn_blocking`: see `HashPool`).

use super::django_hashers::{DjangoHash, ARGON2_PREFIX};
use crate::config::HashPriority;
use crate::domain::password::MAX_PASSWORD_BYTES;
use argon2::password_hash::rand_core::{OsRng, RngCore};
use argon2::password_hash::{Output, ParamsString, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use secrecy::{ExposeSecret, SecretString};
use std::panic::AssertUnwindSafe;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{oneshot, Semaphore};

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
    pool: HashPool,
    /// How long a request waits for a slot before giving up with `Busy`.
    wait: Duration,
    /// Argon2's working memory (19 MiB at our parameters), kept between computations:
    /// at most one per slot exists, so a login flood holds `concurrency` × 19 MiB. Left
    /// to the allocator, each computation's fresh 19 MiB stayed behind in whichever of
    /// glibc's per-thread arenas served it, and a flood grew the process by hundreds of
    /// MiB (bench/RESULTS.md).
    memory: Arc<Mutex<Vec<Vec<Block>>>>,
    params: Params,
    /// What unknown users are verified against, so a login for a user who does not exist
    /// costs the same as a wrong password (API.md §4): at first a real hash of a random
    /// password at our parameters; then, from `fit_unknown_user_cost`, a dummy at the cost
    /// most of the stored hashes have. On a database taken over from Django most users
    /// keep Django's hash (PBKDF2 at 1,000,000 iterations by default) until they log in,
    /// which costs several times our Argon2.
    dummy_hash: Arc<std::sync::RwLock<Arc<str>>>,
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
    /// `concurrency` hash threads at the lowest priority (`HashPriority::Idle`).
    pub fn new(concurrency: usize) -> Self {
        Self::with_priority(concurrency, HashPriority::Idle)
    }

    pub fn with_priority(concurrency: usize, priority: HashPriority) -> Self {
        let params = Params::new(
            OWASP_MEMORY_KIB,
            OWASP_ITERATIONS,
            OWASP_PARALLELISM,
            Some(32),
        )
        .expect("OWASP's Argon2 parameters are valid");
        let dummy = SecretString::from(crate::auth::random_hex_id());
        let mut memory = vec![Block::default(); params.block_count()];
        let dummy_hash = hash_blocking(&params, &dummy, &mut memory)
            .expect("hashing a random password succeeds");
        let concurrency = concurrency.max(1);
        Self {
            slots: Arc::new(Semaphore::new(concurrency)),
            pool: HashPool::start(concurrency, priority),
            wait: Duration::from_secs(5),
            memory: Arc::new(Mutex::new(vec![memory])),
            params,
            dummy_hash: Arc::new(std::sync::RwLock::new(dummy_hash.into())),
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
        let memory = self.memory.clone();
        self.run(move || with_memory(&memory, &params, |m| hash_blocking(&params, &password, m)))
            .await?
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
        let dummy = self
            .dummy_hash
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone();
        let ours = self.params.clone();
        let memory = self.memory.clone();
        self.run(move || {
            let password = password.expose_secret().as_bytes();
            // A hash at our parameters (every one gatehouse wrote, and the dummy) is
            // checked in the kept memory; any other goes the allocating way, once.
            let verify = |hash: &DjangoHash<'_>| match hash {
                DjangoHash::Argon2(h) if same_params(h, &ours) => {
                    with_memory(&memory, &ours, |m| verify_ours(h, &ours, password, m))
                        .unwrap_or_else(|| hash.verify(password))
                }
                other => other.verify(password),
            };
            match stored.as_deref().and_then(DjangoHash::parse) {
                Some(hash) if verify(&hash) => {
                    let current = matches!(&hash, DjangoHash::Argon2(h) if same_params(h, &ours));
                    Verified::Yes { outdated: !current }
                }
                Some(_) => Verified::No,
                None => {
                    if let Some(dummy) = DjangoHash::parse(&dummy) {
                        verify(&dummy);
                    }
                    Verified::No
                }
            }
        })
        .await
    }

    /// Verifies unknown users from now on against a dummy at the cost most of `stored`
    /// (a sample of the stored hashes) have; unchanged if none of them can be read. Hashes
    /// that cannot be read (unusable passwords, strings no crate computes) are not counted:
    /// logins to them are verified against the dummy too. Returns whether the dummy's cost
    /// changed.
    pub fn fit_unknown_user_cost(&self, stored: &[String]) -> bool {
        let mut counts: Vec<(String, usize)> = Vec::new();
        for dummy in stored
            .iter()
            .filter_map(|hash| DjangoHash::parse(hash))
            .map(|hash| hash.same_cost_dummy())
        {
            match counts.iter_mut().find(|(seen, _)| *seen == dummy) {
                Some((_, count)) => *count += 1,
                None => counts.push((dummy, 1)),
            }
        }
        let Some((most, _)) = counts.into_iter().max_by_key(|(_, count)| *count) else {
            return false;
        };
        let mut current = self
            .dummy_hash
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let same_cost = DjangoHash::parse(&current).map(|h| h.same_cost_dummy());
        if same_cost.as_deref() == Some(most.as_str()) {
            return false;
        }
        *current = most.into();
        true
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
        let (done, result) = oneshot::channel();
        self.pool.submit(Box::new(move || {
            let outcome = span.in_scope(work);
            // The slot is free before the answer leaves: this thread runs at the lowest
            // priority, and on a busy machine it may not run again for a while after
            // the send, so a client's next request would find its own slot still taken.
            drop(permit);
            // The request may be gone by now; its answer then has nowhere to go.
            let _ = done.send(outcome);
        }))?;
        // A computation that panicked drops `done` unsent.
        result.await.map_err(|_| HashError::PoolClosed)
    }
}

type Job = Box<dyn FnOnce() + Send>;

/// Threads that do nothing but hash, one per slot, each at the lowest CPU priority
/// (`lower_priority`).
///
/// Not tokio's blocking pool: its threads are shared with everything else that blocks,
/// and a thread's priority is its own, so only threads we own can be lowered. Lowered,
/// the hashes may take every core the moment requests leave it idle (a login flood
/// alone reaches cores ÷ CPU per hash), yet the scheduler runs request handling first
/// whenever both want a core, so `me` keeps its latency during the flood (bench/RESULTS.md).
/// The cost falls on the hashes: under a load that keeps every core busy they wait,
/// up to `GATEHOUSE_HASH_WAIT` for a slot and then 503.
///
/// The threads end when the last `PasswordHasher` clone is dropped (the channel closes).
#[derive(Clone)]
struct HashPool {
    jobs: mpsc::Sender<Job>,
}

impl HashPool {
    fn start(threads: usize, priority: HashPriority) -> Self {
        let (jobs, queue) = mpsc::channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        for _ in 0..threads {
            let queue = queue.clone();
            std::thread::Builder::new()
                .name("gatehouse-hash".to_owned())
                .spawn(move || {
                    if priority == HashPriority::Idle {
                        lower_priority();
                    }
                    loop {
                        // The guard is dropped before the job runs, so idle threads
                        // take the next jobs meanwhile.
                        let job = queue.lock().unwrap_or_else(|e| e.into_inner()).recv();
                        let Ok(job) = job else { break };
                        // A panicking computation fails its own request (its `done` is
                        // dropped), not the thread: the pool keeps its size.
                        let _ = std::panic::catch_unwind(AssertUnwindSafe(job));
                    }
                })
                .expect("spawning a password-hashing thread");
        }
        Self { jobs }
    }

    fn submit(&self, job: Job) -> Result<(), HashError> {
        self.jobs.send(job).map_err(|_| HashError::PoolClosed)
    }
}

/// Puts the calling thread, and only it, in Linux's `SCHED_IDLE` class: it runs only on
/// a core nothing else wants, and any other thread that wakes takes the core from it at
/// once. Any thread may do this to itself without privilege (so may a process without
/// capabilities, checked as `nobody`). Should it be refused (a seccomp filter, say), the
/// thread falls back to nice 19, which needs no privilege either: still the lowest
/// share, but preempted less promptly. Elsewhere than Linux hashing competes with requests
/// as an equal.
///
/// `SCHED_IDLE` over nice 19: measured side by side under a login flood, `me`'s p99 was
/// 16–18 ms with `SCHED_IDLE` and 18–31 ms at nice 19 (bench/RESULTS.md).
fn lower_priority() {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: system calls on the calling thread alone (pid 0 and a thread id name
        // the calling thread on Linux); `param` outlives the call.
        let lowered = unsafe {
            let param = libc::sched_param { sched_priority: 0 };
            libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) == 0
                || libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t, 19) == 0
        };
        if !lowered {
            tracing::warn!(
                error = %std::io::Error::last_os_error(),
                "could not lower the password-hashing threads' priority"
            );
        }
    }
}

/// Runs `work` with a kept block of Argon2 memory, made on first use. Callers hold a
/// slot of the semaphore, so no more blocks exist than slots (a computation that panics
/// loses its block, and the next one makes another).
fn with_memory<T>(
    kept: &Mutex<Vec<Vec<Block>>>,
    params: &Params,
    work: impl FnOnce(&mut [Block]) -> T,
) -> T {
    let taken = kept.lock().unwrap_or_else(|e| e.into_inner()).pop();
    let mut memory = taken.unwrap_or_else(|| vec![Block::default(); params.block_count()]);
    let result = work(&mut memory);
    kept.lock().unwrap_or_else(|e| e.into_inner()).push(memory);
    result
}

/// What `argon2::PasswordHasher::hash_password` does, in memory the caller keeps.
fn hash_blocking(
    params: &Params,
    password: &SecretString,
    memory: &mut [Block],
) -> Result<String, HashError> {
    let failed = |e: &dyn std::fmt::Display| HashError::Hashing(e.to_string());
    // 22 random bytes rather than the crate's 16: Django judges a stored salt by its
    // length at 5.95 bits a character (`must_update_salt`) and re-hashes anything under
    // 128 bits by that count, so a 16-byte salt would be replaced on every Django login.
    let mut random = [0u8; DJANGO_SALT_BYTES];
    OsRng.fill_bytes(&mut random);
    let salt = SaltString::encode_b64(&random).map_err(|e| failed(&e))?;
    let mut salt_bytes = [0u8; 64];
    let salt_bytes = salt.decode_b64(&mut salt_bytes).map_err(|e| failed(&e))?;
    let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
    let output = Output::init_with(params.output_len().unwrap_or(32), |out| {
        Ok(argon2.hash_password_into_with_memory(
            password.expose_secret().as_bytes(),
            salt_bytes,
            out,
            &mut *memory,
        )?)
    })
    .map_err(|e| failed(&e))?;
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(params).map_err(|e| failed(&e))?,
        salt: Some(salt.as_salt()),
        hash: Some(output),
    };
    Ok(format!("{ARGON2_PREFIX}{phc}"))
}

/// What `PasswordVerifier::verify_password` does for a hash at our parameters, in memory
/// the caller keeps. `None` when the hash has a shape this does not cover (another
/// version or output length), for the general way to decide.
fn verify_ours(
    hash: &PasswordHash<'_>,
    ours: &Params,
    password: &[u8],
    memory: &mut [Block],
) -> Option<bool> {
    let (salt, expected) = (hash.salt?, hash.hash?);
    if hash.version.is_some_and(|v| v != u32::from(Version::V0x13))
        || Some(expected.len()) != ours.output_len()
    {
        return None;
    }
    let mut salt_bytes = [0u8; 64];
    let salt_bytes = salt.decode_b64(&mut salt_bytes).ok()?;
    let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, ours.clone());
    let computed = Output::init_with(expected.len(), |out| {
        Ok(argon2.hash_password_into_with_memory(password, salt_bytes, out, &mut *memory)?)
    })
    .ok()?;
    // `Output`'s equality is constant-time.
    Some(computed == expected)
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

    #[test]
    fn unknown_users_are_fitted_to_the_cost_most_stored_hashes_have() {
        let hasher = PasswordHasher::new(1);
        let django = "pbkdf2_sha256$1000000$salt$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
        let ours = "argon2$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0c2FsdA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
        let sample = |django_count: usize, ours_count: usize| -> Vec<String> {
            let mut hashes = vec![django.to_owned(); django_count];
            hashes.extend(vec![ours.to_owned(); ours_count]);
            hashes.push("!unusable".to_owned());
            hashes
        };
        let dummy = || hasher.dummy_hash.read().unwrap().to_string();

        assert!(
            !hasher.fit_unknown_user_cost(&sample(1, 3)),
            "already at our cost"
        );
        assert!(
            !hasher.fit_unknown_user_cost(&[]),
            "nothing read: unchanged"
        );
        assert!(hasher.fit_unknown_user_cost(&sample(3, 1)));
        assert!(dummy().starts_with("pbkdf2_sha256$1000000$"), "{}", dummy());
        assert!(!hasher.fit_unknown_user_cost(&sample(3, 2)));
        assert!(hasher.fit_unknown_user_cost(&sample(1, 2)));
        assert!(
            dummy().starts_with("argon2$argon2id$v=19$m=19456,t=2,p=1$"),
            "{}",
            dummy()
        );
    }

    #[test]
    fn stored_hashes_no_crate_computes_do_not_set_the_unknown_users_cost() {
        // Counted, these would make the dummy a hash of a version the crate does not know
        // either: unknown names would fail at once, as logins to these rows did.
        let hasher = PasswordHasher::new(1);
        let ours = "argon2$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0c2FsdA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
        let unknown_version = ours.replace("$v=19$", "$v=18$");
        let mut sample = vec![ours.to_owned(); 2];
        sample.extend(vec![unknown_version; 3]);
        let before = hasher.dummy_hash.read().unwrap().to_string();

        assert!(!hasher.fit_unknown_user_cost(&sample));
        assert_eq!(hasher.dummy_hash.read().unwrap().to_string(), before);
    }

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
    async fn kept_memory_hashes_agree_with_the_argon2_crate() {
        use argon2::{PasswordHasher as _, PasswordVerifier as _};
        let hasher = PasswordHasher::new(1);
        let ours = hasher
            .hash(SecretString::from("s3cret-Passw0rd"))
            .await
            .unwrap();
        let phc = PasswordHash::new(&ours[ARGON2_PREFIX.len()..]).unwrap();
        let reference = Argon2::new(Algorithm::Argon2id, Version::V0x13, hasher.params.clone());
        assert!(reference.verify_password(b"s3cret-Passw0rd", &phc).is_ok());
        assert!(reference
            .verify_password(b"s3cret-Passw0rd!", &phc)
            .is_err());

        let salt = SaltString::generate(&mut OsRng);
        let theirs = reference
            .hash_password(b"s3cret-Passw0rd", &salt)
            .unwrap()
            .to_string();
        for (password, verdict) in [
            ("s3cret-Passw0rd", Verified::Yes { outdated: false }),
            ("s3cret-Passw0rD", Verified::No),
        ] {
            let got = hasher
                .verify(
                    SecretString::from(password),
                    Some(format!("{ARGON2_PREFIX}{theirs}")),
                )
                .await
                .unwrap();
            assert_eq!(got, verdict, "{password}");
        }
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
