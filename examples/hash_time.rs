//! The CPU time of one Argon2id hash and one verification at gatehouse's own parameters,
//! through gatehouse's own `PasswordHasher` (bench/run.sh). From it follows the most
//! logins (or registrations) per second this machine can do: cores ÷ CPU time per hash.
//!
//!   cargo run --release --example hash_time -- [ROUNDS]
//!
//! Prints `key value` lines: the parameters, the per-operation CPU and wall times in
//! milliseconds (median over batches of 10, ROUNDS operations of each kind, default 50, one
//! at a time), the cores,
//! and the limit in operations per second.

use gatehouse::auth::passwords::{Verified, OWASP_ITERATIONS, OWASP_MEMORY_KIB, OWASP_PARALLELISM};
use gatehouse::auth::PasswordHasher;
use secrecy::SecretString;
use std::time::{Duration, Instant};

/// CPU time (user + system) of the whole process so far: the hash runs on a thread of
/// gatehouse's hash pool, not this one. `CLOCK_PROCESS_CPUTIME_ID` counts in
/// nanoseconds; `/proc/self/stat`, used before, counts in ticks of 10 ms, which over a
/// batch of 10 hashes made each figure a whole millisecond (13, 14 or 15 ms), and the
/// limit derived from it jumped by 15 % between runs.
fn process_cpu() -> Duration {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid, writable timespec for the call's duration.
    let status = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut now) };
    assert_eq!(status, 0, "clock_gettime(CLOCK_PROCESS_CPUTIME_ID)");
    Duration::new(now.tv_sec as u64, now.tv_nsec as u32)
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(|a, b| a.partial_cmp(b).unwrap());
    values[values.len() / 2]
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let rounds: usize = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(50);
    let hasher = PasswordHasher::new(1);
    let password = || SecretString::from("correct-Horse-battery-42");
    let stored = hasher.hash(password()).await.expect("hash");

    // Batches of 10 operations, one at a time: CPU and wall time per operation.
    let batch = 10;
    let (mut hash_cpu, mut hash_wall, mut verify_cpu, mut verify_wall) =
        (vec![], vec![], vec![], vec![]);
    for _ in 0..rounds.div_ceil(batch) {
        let (cpu, wall) = (process_cpu(), Instant::now());
        for _ in 0..batch {
            hasher.hash(password()).await.expect("hash");
        }
        hash_cpu.push((process_cpu() - cpu).as_secs_f64() * 1000.0 / batch as f64);
        hash_wall.push(wall.elapsed().as_secs_f64() * 1000.0 / batch as f64);

        let (cpu, wall) = (process_cpu(), Instant::now());
        for _ in 0..batch {
            let verdict = hasher
                .verify(password(), Some(stored.clone()))
                .await
                .expect("verify");
            assert_eq!(verdict, Verified::Yes { outdated: false });
        }
        verify_cpu.push((process_cpu() - cpu).as_secs_f64() * 1000.0 / batch as f64);
        verify_wall.push(wall.elapsed().as_secs_f64() * 1000.0 / batch as f64);
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    // The pool size gatehouse itself would use with this environment.
    let pool = gatehouse::config::Config::from_env()
        .map(|c| c.hash_concurrency)
        .unwrap_or(0);
    let (hash_cpu, verify_cpu) = (median(hash_cpu), median(verify_cpu));
    println!("params argon2id m={OWASP_MEMORY_KIB} t={OWASP_ITERATIONS} p={OWASP_PARALLELISM}");
    println!("rounds {}", rounds.div_ceil(batch) * batch);
    println!("hash_cpu_ms {hash_cpu:.1}");
    println!("hash_wall_ms {:.1}", median(hash_wall));
    println!("verify_cpu_ms {verify_cpu:.1}");
    println!("verify_wall_ms {:.1}", median(verify_wall));
    println!("cores {cores}");
    println!("hash_pool {pool}");
    println!("hash_memory_mib {}", OWASP_MEMORY_KIB / 1024);
    // Login verifies, register hashes: each is limited by its own operation.
    println!(
        "login_limit_per_s {:.1}",
        cores as f64 * 1000.0 / verify_cpu
    );
    println!(
        "register_limit_per_s {:.1}",
        cores as f64 * 1000.0 / hash_cpu
    );
}
