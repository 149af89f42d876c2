//! A steady mixed load through nginx, and the ledger of what it was told: every answer
//! (or transport error) with its time, every acknowledged registration, every
//! acknowledged password change. After a fault, `Report::check_nothing_lost` proves that
//! each acknowledged write is still there.

use crate::harness::{Api, Cluster, PASSWORD};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;

const READERS: usize = 4;
const REGISTRARS: usize = 2;
const CHANGERS: usize = 2;
/// At most this many requests are in flight at any moment: one per worker.
pub const WORKERS: usize = READERS + REGISTRARS + CHANGERS;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Me,
    Register,
    ChangePassword,
}

impl Kind {
    fn success(self) -> StatusCode {
        match self {
            Kind::Me | Kind::ChangePassword => StatusCode::OK,
            Kind::Register => StatusCode::CREATED,
        }
    }
}

/// One request of the load, as the client saw it.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub kind: Kind,
    /// When the request was sent, from the start of the load.
    pub sent: Duration,
    pub took: Duration,
    /// `None`: no HTTP answer at all (the connection failed).
    pub status: Option<StatusCode>,
    pub body: Value,
}

impl Outcome {
    pub fn succeeded(&self) -> bool {
        self.status == Some(self.kind.success())
    }

    pub fn answered_by(&self) -> Duration {
        self.sent + self.took
    }
}

/// A user whose password a changer worker keeps changing.
#[derive(Debug)]
struct Account {
    username: String,
    /// The password in effect as far as the worker knows: the last acknowledged change,
    /// or a later one that a login proved took effect although its answer was lost.
    current: String,
    /// The password in effect before `current`.
    previous: Option<String>,
    /// Passwords acknowledged by a 200, in order.
    acknowledged: Vec<String>,
}

#[derive(Default)]
struct Ledger {
    outcomes: Vec<Outcome>,
    registered: Vec<String>,
    accounts: Vec<Account>,
}

pub struct Load {
    started: Instant,
    stop: Arc<AtomicBool>,
    workers: Vec<JoinHandle<Ledger>>,
}

pub struct Report {
    pub outcomes: Vec<Outcome>,
    registered: Vec<String>,
    accounts: Vec<Account>,
}

impl Load {
    /// Prepares the users it needs, then starts the workers.
    pub async fn start(cluster: &Cluster, tag: &str) -> Load {
        let api = Api::new();
        let base = cluster.url("");
        let reader = format!("{tag}_reader");
        assert_eq!(
            api.register(&base, &reader).await.status,
            StatusCode::CREATED
        );
        let (reader_access, _) = api.login_ok(&base, &reader, PASSWORD).await;

        let started = Instant::now();
        let stop = Arc::new(AtomicBool::new(false));
        let mut workers = Vec::new();
        for _ in 0..READERS {
            let worker = Worker::new(&base, started, &stop);
            let access = reader_access.clone();
            workers.push(tokio::spawn(async move { worker.read_me(access).await }));
        }
        for n in 0..REGISTRARS {
            let worker = Worker::new(&base, started, &stop);
            let prefix = format!("{tag}_r{n}_");
            workers.push(tokio::spawn(async move { worker.register(prefix).await }));
        }
        for n in 0..CHANGERS {
            let username = format!("{tag}_c{n}");
            assert_eq!(
                api.register(&base, &username).await.status,
                StatusCode::CREATED
            );
            let worker = Worker::new(&base, started, &stop);
            workers.push(tokio::spawn(async move {
                worker.change_password(username).await
            }));
        }
        Load {
            started,
            stop,
            workers,
        }
    }

    /// Time since the workers started, on the clock of `Outcome::sent`.
    pub fn now(&self) -> Duration {
        self.started.elapsed()
    }

    pub async fn stop(self) -> Report {
        self.stop.store(true, Ordering::Relaxed);
        let mut report = Report {
            outcomes: Vec::new(),
            registered: Vec::new(),
            accounts: Vec::new(),
        };
        for worker in self.workers {
            let ledger = worker.await.expect("load worker panicked");
            report.outcomes.extend(ledger.outcomes);
            report.registered.extend(ledger.registered);
            report.accounts.extend(ledger.accounts);
        }
        report.outcomes.sort_by_key(|o| o.sent);
        report
    }
}

struct Worker {
    api: Api,
    base: String,
    started: Instant,
    stop: Arc<AtomicBool>,
    ledger: Ledger,
}

impl Worker {
    fn new(base: &str, started: Instant, stop: &Arc<AtomicBool>) -> Worker {
        Worker {
            api: Api::new(),
            base: base.to_owned(),
            started,
            stop: stop.clone(),
            ledger: Ledger::default(),
        }
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Sends one request of the load and writes its outcome in the ledger.
    async fn request(
        &mut self,
        kind: Kind,
        method: Method,
        path: &str,
        access: Option<&str>,
        body: Option<Value>,
    ) -> Outcome {
        let sent = self.started.elapsed();
        let url = format!("{}{path}", self.base);
        let answer = self.api.send(method, &url, access, body).await;
        let outcome = Outcome {
            kind,
            sent,
            took: self.started.elapsed() - sent,
            status: answer.as_ref().ok().map(|r| r.status),
            body: answer.map(|r| r.body).unwrap_or(Value::Null),
        };
        self.ledger.outcomes.push(outcome.clone());
        outcome
    }

    async fn pause(&self, millis: u64) {
        tokio::time::sleep(Duration::from_millis(millis)).await;
    }

    async fn read_me(mut self, access: String) -> Ledger {
        while !self.stopped() {
            self.request(Kind::Me, Method::GET, "/api/users/me/", Some(&access), None)
                .await;
            self.pause(5).await;
        }
        self.ledger
    }

    async fn register(mut self, prefix: String) -> Ledger {
        let mut n = 0;
        while !self.stopped() {
            n += 1;
            let username = format!("{prefix}{n}");
            let body = json!({"username": username, "email": format!("{username}@example.com"), "password": PASSWORD});
            let outcome = self
                .request(
                    Kind::Register,
                    Method::POST,
                    "/api/register/",
                    None,
                    Some(body),
                )
                .await;
            if outcome.succeeded() {
                self.ledger.registered.push(username);
            }
            self.pause(20).await;
        }
        self.ledger
    }

    /// Changes one user's password over and over. An answer that is not a 200 leaves it
    /// unknown whether the change took effect (the instance may have been killed after
    /// its commit): logins with the new and the old password settle it before going on.
    async fn change_password(mut self, username: String) -> Ledger {
        let mut account = Account {
            username,
            current: PASSWORD.to_owned(),
            previous: None,
            acknowledged: Vec::new(),
        };
        let (_, mut access) = self.settle(&account.username, &[PASSWORD.to_owned()]).await;
        let mut n = 0;
        while !self.stopped() {
            n += 1;
            let next = format!("{PASSWORD}-{n}");
            let body = json!({"old_password": account.current, "new_password": next});
            let outcome = self
                .request(
                    Kind::ChangePassword,
                    Method::POST,
                    "/api/change_password/",
                    Some(&access),
                    Some(body),
                )
                .await;
            if outcome.succeeded() {
                account.previous = Some(std::mem::replace(&mut account.current, next.clone()));
                account.acknowledged.push(next);
            } else {
                // Which one is in effect? Try the new one first, then the old.
                let candidates = [next, account.current.clone()];
                let (in_effect, token) = self.settle(&account.username, &candidates).await;
                access = token;
                if in_effect != account.current {
                    account.previous = Some(std::mem::replace(&mut account.current, in_effect));
                }
            }
            self.pause(20).await;
        }
        self.ledger.accounts.push(account);
        self.ledger
    }

    /// Logs in with each candidate password until one works, trying again while the
    /// cluster answers anything but 200 or 401. Returns that password and an access token.
    /// Fails the test if every candidate is refused: an acknowledged change was lost.
    async fn settle(&self, username: &str, candidates: &[String]) -> (String, String) {
        let deadline = Instant::now() + Duration::from_secs(60);
        let url = format!("{}/api/login/", self.base);
        loop {
            let mut refused = 0;
            for password in candidates {
                let body = json!({"username": username, "password": password});
                match self.api.send(Method::POST, &url, None, Some(body)).await {
                    Ok(reply) if reply.status == StatusCode::OK => {
                        return (password.clone(), reply.str("access"));
                    }
                    Ok(reply) if reply.status == StatusCode::UNAUTHORIZED => refused += 1,
                    _ => break,
                }
            }
            assert!(
                refused < candidates.len(),
                "{username}: none of {candidates:?} logs in: an acknowledged password change was lost"
            );
            assert!(
                Instant::now() < deadline,
                "{username}: the cluster did not answer a login for 60 s"
            );
            self.pause(200).await;
        }
    }
}

impl Report {
    pub fn of(&self, kind: Kind) -> impl Iterator<Item = &Outcome> {
        self.outcomes.iter().filter(move |o| o.kind == kind)
    }

    pub fn failures(&self) -> Vec<&Outcome> {
        self.outcomes.iter().filter(|o| !o.succeeded()).collect()
    }

    /// A line per kind: how many requests, how many succeeded.
    pub fn summary(&self) -> String {
        [Kind::Me, Kind::Register, Kind::ChangePassword]
            .iter()
            .map(|&kind| {
                let all = self.of(kind).count();
                let ok = self.of(kind).filter(|o| o.succeeded()).count();
                format!("{kind:?}: {ok} of {all} succeeded")
            })
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// Every kind of request succeeded at least once after `from`.
    pub fn assert_served_after(&self, from: Duration) {
        for kind in [Kind::Me, Kind::Register, Kind::ChangePassword] {
            assert!(
                self.of(kind).any(|o| o.sent >= from && o.succeeded()),
                "no {kind:?} succeeded after {from:?}: {}",
                self.summary()
            );
        }
    }

    /// Each acknowledged registration is in the database, and each account logs in with
    /// the password of its last acknowledged change (or a later one that took effect)
    /// and no longer with the one before it.
    pub async fn check_nothing_lost(&self, cluster: &Cluster) {
        use sqlx::Connection;
        assert!(
            !self.registered.is_empty(),
            "no registration was acknowledged"
        );
        let mut db = sqlx::PgConnection::connect(&cluster.database_url())
            .await
            .expect("connect to the cluster's database");
        let found: i64 =
            sqlx::query_scalar("SELECT count(*) FROM auth_user WHERE username = ANY($1)")
                .bind(&self.registered)
                .fetch_one(&mut db)
                .await
                .expect("count registered users");
        assert_eq!(
            found,
            self.registered.len() as i64,
            "acknowledged registrations are missing"
        );

        let api = Api::new();
        let base = cluster.url("");
        for account in &self.accounts {
            assert!(
                !account.acknowledged.is_empty(),
                "{}: no password change was acknowledged",
                account.username
            );
            api.login_ok(&base, &account.username, &account.current)
                .await;
            let previous = account.previous.as_deref().expect("changed at least once");
            let reply = api.login(&base, &account.username, previous).await;
            assert_eq!(
                reply.status,
                StatusCode::UNAUTHORIZED,
                "{}: an old password still works",
                account.username
            );
        }
    }
}
