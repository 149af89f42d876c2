//! A cluster started by `scripts/cluster` in a temporary folder, and an HTTP client for
//! it. Dropping the `Cluster` stops everything the script started.

use reqwest::StatusCode;
use serde_json::{json, Value};
use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use tempfile::TempDir;

pub const PASSWORD: &str = "correct-horse-battery-9";
const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/cluster");

/// One cluster at a time in this process: under `cargo test`, whose threads would
/// otherwise run them side by side (nextest runs them one at a time anyway).
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

pub struct Cluster {
    // Dropped after `Drop::drop` has stopped the cluster.
    _turn: std::sync::MutexGuard<'static, ()>,
    dir: TempDir,
    port: u16,
    pub instances: u16,
    env: Vec<(String, String)>,
}

/// nginx and PostgreSQL's server binaries are here (or the tests are required anyway).
fn available() -> bool {
    let nginx = ["/usr/sbin/nginx", "/usr/bin/nginx"]
        .iter()
        .any(|p| Path::new(p).exists());
    let postgres = std::fs::read_dir("/usr/lib/postgresql")
        .map(|mut versions| versions.any(|v| v.is_ok_and(|v| v.path().join("bin/initdb").exists())))
        .unwrap_or(false);
    if nginx && postgres {
        return true;
    }
    let required = std::env::var("GATEHOUSE_CLUSTER_TESTS").is_ok_and(|v| v == "required");
    assert!(
        !required,
        "GATEHOUSE_CLUSTER_TESTS=required but nginx or PostgreSQL's server is missing \
         (Debian: apt-get install nginx-light postgresql)"
    );
    let _ = writeln!(
        std::io::stderr(),
        "skipped: nginx or PostgreSQL's server binaries not found (install Debian's \
         nginx-light and postgresql, or set GATEHOUSE_CLUSTER_TESTS=required to fail instead)"
    );
    false
}

/// `count` consecutive free ports on loopback: nginx, the instances, PostgreSQL.
fn free_port_block(count: u16) -> u16 {
    let seed = std::process::id() as u64
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos() as u64;
    for attempt in 0..200u64 {
        // Below Linux's ephemeral range (32768 up), where outgoing connections take
        // their ports: an instance started again must find its port free.
        let base = 10_000 + ((seed.wrapping_mul(2_654_435_761) + attempt * 7_919) % 22_000) as u16;
        if (0..count).all(|i| TcpListener::bind(("127.0.0.1", base + i)).is_ok()) {
            return base;
        }
    }
    panic!("no block of {count} free ports on 127.0.0.1");
}

impl Cluster {
    /// Starts `instances` instances behind nginx, with `env` passed to each. `None` when
    /// the cluster tests are skipped on this machine.
    pub fn start(instances: u16, env: &[(&str, &str)]) -> Option<Cluster> {
        if !available() {
            return None;
        }
        let cluster = Cluster {
            _turn: ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner()),
            dir: tempfile::tempdir().expect("temp dir"),
            port: free_port_block(instances + 2),
            instances,
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        let output = cluster
            .script(&["start"])
            .output()
            .expect("run scripts/cluster");
        assert!(
            output.status.success(),
            "scripts/cluster start failed:\n{}\n{}",
            String::from_utf8_lossy(&output.stderr),
            cluster.logs()
        );
        Some(cluster)
    }

    pub fn script(&self, args: &[&str]) -> Command {
        let mut command = Command::new(SCRIPT);
        command
            .args(args)
            .env_remove("DATABASE_URL")
            .env_remove("SECRET_KEY")
            .env("CLUSTER_DIR", self.dir.path())
            .env("CLUSTER_PORT", self.port.to_string())
            .env("CLUSTER_INSTANCES", self.instances.to_string())
            .env("GATEHOUSE_BIN", env!("CARGO_BIN_EXE_gatehouse"))
            .env("EMAIL_BACKEND", "file")
            .env("EMAIL_FILE_PATH", self.mail_dir())
            .env("RUST_LOG", "info")
            .env("GATEHOUSE_LOG_FORMAT", "text");
        for (name, value) in &self.env {
            command.env(name, value);
        }
        command
    }

    /// Runs a `scripts/cluster` command and checks that it succeeded.
    pub fn run(&self, args: &[&str]) {
        let output = self.script(args).output().expect("run scripts/cluster");
        assert!(
            output.status.success(),
            "scripts/cluster {args:?} failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// Through nginx.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Straight to instance `n` (1-based).
    pub fn instance_url(&self, n: u16, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port + n)
    }

    pub fn database_url(&self) -> String {
        format!(
            "postgres://postgres@127.0.0.1:{}/postgres",
            self.port + self.instances + 1
        )
    }

    pub fn mail_dir(&self) -> PathBuf {
        self.dir.path().join("mail")
    }

    /// What instance `n` wrote to stderr.
    pub fn log(&self, n: u16) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("instance-{n}.log")))
            .unwrap_or_default()
    }

    /// Instance `n`'s exit status, once it has exited.
    pub fn exit_status(&self, n: u16) -> Option<String> {
        std::fs::read_to_string(self.dir.path().join(format!("instance-{n}.exit")))
            .ok()
            .map(|status| status.trim().to_owned())
    }

    fn logs(&self) -> String {
        (1..=self.instances)
            .map(|n| format!("--- instance {n}\n{}", self.log(n)))
            .collect()
    }

    /// Waits until instance `n`'s `/api/health/` answers `status`, and says how long it took.
    pub async fn wait_health(&self, n: u16, status: StatusCode, within: Duration) -> Duration {
        let started = Instant::now();
        let client = reqwest::Client::new();
        loop {
            let answer = client
                .get(self.instance_url(n, "/api/health/"))
                .timeout(Duration::from_secs(10))
                .send()
                .await;
            if let Ok(response) = answer {
                if response.status() == status {
                    let body: Value = response.json().await.expect("health is JSON");
                    let expected = if status == StatusCode::OK {
                        "ok"
                    } else {
                        "unavailable"
                    };
                    assert_eq!(body, json!({"status": expected, "database": expected}));
                    return started.elapsed();
                }
            }
            assert!(
                started.elapsed() < within,
                "instance {n}: /api/health/ did not answer {status} within {within:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Runs gatehouse's `createsuperuser` against the cluster's database.
    pub fn create_superuser(&self, username: &str) {
        let output = Command::new(env!("CARGO_BIN_EXE_gatehouse"))
            .args(["createsuperuser", "--username", username, "--email"])
            .arg(format!("{username}@example.com"))
            .env("DATABASE_URL", self.database_url())
            .env("GATEHOUSE_SUPERUSER_PASSWORD", PASSWORD)
            .env_remove("SECRET_KEY")
            .output()
            .expect("run gatehouse createsuperuser");
        assert!(
            output.status.success(),
            "createsuperuser failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self.script(&["stop"]).output();
    }
}

/// One HTTP answer: status and JSON body (`Null` when the body is not JSON).
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub body: Value,
}

impl Reply {
    pub fn str(&self, field: &str) -> String {
        self.body[field]
            .as_str()
            .unwrap_or_else(|| panic!("no string {field:?} in {} ({})", self.body, self.status))
            .to_owned()
    }
}

/// A thin JSON client; `forwarded_for` plays a client behind the proxy.
#[derive(Clone)]
pub struct Api {
    client: reqwest::Client,
    forwarded_for: Option<String>,
}

impl Default for Api {
    fn default() -> Self {
        Self::new()
    }
}

impl Api {
    pub fn new() -> Api {
        Api {
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .expect("client"),
            forwarded_for: None,
        }
    }

    pub fn from_client(address: &str) -> Api {
        Api {
            forwarded_for: Some(address.to_owned()),
            ..Api::new()
        }
    }

    pub async fn send(
        &self,
        method: reqwest::Method,
        url: &str,
        access: Option<&str>,
        body: Option<Value>,
    ) -> Result<Reply, reqwest::Error> {
        let mut request = self.client.request(method, url);
        if let Some(access) = access {
            request = request.bearer_auth(access);
        }
        if let Some(address) = &self.forwarded_for {
            request = request.header("X-Forwarded-For", address);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await?;
        let status = response.status();
        let bytes = response.bytes().await?;
        Ok(Reply {
            status,
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        })
    }

    pub async fn post(&self, url: &str, body: Value) -> Reply {
        self.send(reqwest::Method::POST, url, None, Some(body))
            .await
            .unwrap_or_else(|e| panic!("POST {url}: {e}"))
    }

    pub async fn post_auth(&self, url: &str, access: &str, body: Value) -> Reply {
        self.send(reqwest::Method::POST, url, Some(access), Some(body))
            .await
            .unwrap_or_else(|e| panic!("POST {url}: {e}"))
    }

    pub async fn get_auth(&self, url: &str, access: &str) -> Reply {
        self.send(reqwest::Method::GET, url, Some(access), None)
            .await
            .unwrap_or_else(|e| panic!("GET {url}: {e}"))
    }

    pub async fn register(&self, base: &str, username: &str) -> Reply {
        self.post(
            &format!("{base}/api/register/"),
            json!({"username": username, "email": format!("{username}@example.com"), "password": PASSWORD}),
        )
        .await
    }

    pub async fn login(&self, base: &str, username: &str, password: &str) -> Reply {
        self.post(
            &format!("{base}/api/login/"),
            json!({"username": username, "password": password}),
        )
        .await
    }

    /// Logs in and returns (access, refresh).
    pub async fn login_ok(&self, base: &str, username: &str, password: &str) -> (String, String) {
        let reply = self.login(base, username, password).await;
        assert_eq!(
            reply.status,
            StatusCode::OK,
            "login {username}: {}",
            reply.body
        );
        (reply.str("access"), reply.str("refresh"))
    }
}
