//! `GET /api/health/` and recovery from a database outage (API.md §8).
//!
//! The outage is real: on PostgreSQL the app reaches the server through a TCP relay run by
//! the test, and the test cuts the relay (dropping every connection) and restores it.

use crate::helpers::*;
use reqwest::StatusCode;
use serde_json::json;
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

#[tokio::test]
async fn health_reports_a_reachable_database() {
    let app = spawn_app().await;
    let reply = app.get("/api/health/").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body, json!({"status": "ok", "database": "ok"}));
}

/// A TCP relay from a local port to PostgreSQL that can be cut and restored.
struct Relay {
    port: u16,
    target: String,
    tasks: JoinSet<()>,
}

impl Relay {
    async fn start(target: String) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut relay = Relay {
            port,
            target,
            tasks: JoinSet::new(),
        };
        relay.serve(listener);
        relay
    }

    fn serve(&mut self, listener: TcpListener) {
        let target = self.target.clone();
        self.tasks.spawn(async move {
            let mut connections = JoinSet::new();
            while let Ok((mut client, _)) = listener.accept().await {
                let target = target.clone();
                connections.spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(&target).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
            }
        });
    }

    /// Closes the listener and every relayed connection (aborting the task drops them).
    fn cut(&mut self) {
        self.tasks.abort_all();
    }

    async fn restore(&mut self) {
        while self.tasks.join_next().await.is_some() {}
        let listener = TcpListener::bind(("127.0.0.1", self.port))
            .await
            .expect("rebind the relay port");
        self.serve(listener);
    }
}

#[tokio::test]
async fn while_postgres_is_unreachable_requests_get_503_and_service_recovers_by_itself() {
    if !is_postgres() {
        eprintln!(
            "skipped: needs TEST_DATABASE_URL (an outage of an SQLite file cannot be staged)"
        );
        return;
    }
    // A fresh database, reached through the relay.
    let dir = tempfile::tempdir().unwrap();
    let direct = fresh_database_url(&dir).await;
    let mut url = reqwest::Url::parse(&direct).unwrap();
    let target = format!("{}:{}", url.host_str().unwrap(), url.port().unwrap_or(5432));
    let mut relay = Relay::start(target).await;
    url.set_port(Some(relay.port)).unwrap();
    let app = spawn_app_with(&[("DATABASE_URL", url.as_str())]).await;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .build()
        .unwrap();
    let health = || async {
        Reply::read(
            client
                .get(app.url("/api/health/"))
                .send()
                .await
                .expect("no hang"),
        )
        .await
    };

    let (_, access, _) = app.signed_in("survivor").await;
    assert_eq!(health().await.status, StatusCode::OK);

    relay.cut();
    let down = health().await;
    assert_eq!(down.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        down.body,
        json!({"status": "unavailable", "database": "unavailable"})
    );
    let me = Reply::read(
        client
            .get(app.url("/api/users/me/"))
            .bearer_auth(&access)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(me.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        me.body,
        json!({"detail": "Service temporarily unavailable, try again later."})
    );

    relay.restore().await;
    let started = Instant::now();
    while health().await.status != StatusCode::OK {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "did not recover within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(app.me(&access).await.status, StatusCode::OK);
}
