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
//!
//! Then the same operations with every core hashing at once (`*_all_cores`), as under a
//! flood of logins: on the 2-core VM of bench/RESULTS.md each verification then took 3–7 %
//! more CPU time than alone in calm minutes, so the limit that follows is lower.

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
    let all_cores = PasswordHasher::new(cores);
    let hash_all = cpu_per_operation_on_all_cores(cores, rounds, || {
        let hasher = all_cores.clone();
        async move {
            hasher.hash(password()).await.expect("hash");
        }
    })
    .await;
    let verify_all = cpu_per_operation_on_all_cores(cores, rounds, || {
        let (hasher, stored) = (all_cores.clone(), stored.clone());
        async move {
            let verdict = hasher
                .verify(password(), Some(stored))
                .await
                .expect("verify");
            assert_eq!(verdict, Verified::Yes { outdated: false });
        }
    })
    .await;
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
    println!("hash_cpu_ms_all_cores {hash_all:.1}");
    println!("verify_cpu_ms_all_cores {verify_all:.1}");
    println!(
        "login_limit_all_cores_per_s {:.1}",
        cores as f64 * 1000.0 / verify_all
    );
    println!(
        "register_limit_all_cores_per_s {:.1}",
        cores as f64 * 1000.0 / hash_all
    );
}

/// CPU milliseconds per operation while `cores` of them run at once, each on its own
/// thread of a pool of `cores`: the median over rounds of `cores × 5` operations.
async fn cpu_per_operation_on_all_cores<F, Fut>(cores: usize, rounds: usize, operation: F) -> f64
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let per_core = 5;
    let mut samples = vec![];
    // One round more than counted: the first also sets up each slot's working memory.
    for round in 0..=rounds.div_ceil(cores * per_core).max(3) {
        let cpu = process_cpu();
        let runs: Vec<_> = (0..cores)
            .map(|_| {
                let batch: Vec<Fut> = (0..per_core).map(|_| operation()).collect();
                tokio::spawn(async move {
                    for one in batch {
                        one.await;
                    }
                })
            })
            .collect();
        for run in runs {
            run.await.expect("hashing task");
        }
        if round > 0 {
            samples.push((process_cpu() - cpu).as_secs_f64() * 1000.0 / (cores * per_core) as f64);
        }
    }
    median(samples)
}
