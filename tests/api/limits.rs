//! Issue #5: what one request may cost. Header size, slow clients (headers and body), the
//! request deadline, the password cap and the bounded wait for a hashing slot.

use crate::helpers::*;
use reqwest::StatusCode;
use serde_json::json;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn host_port(app: &TestApp) -> String {
    app.address.trim_start_matches("http://").to_owned()
}

/// Reads until the server closes the connection or `limit` passes; returns what came.
async fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> Option<String> {
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    let outcome = tokio::time::timeout(limit, async {
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(n) => received.extend_from_slice(&buffer[..n]),
            }
        }
    })
    .await;
    outcome
        .ok()
        .map(|_| String::from_utf8_lossy(&received).into_owned())
}

#[tokio::test]
async fn headers_over_the_limit_get_431_in_drfs_shape() {
    let app = spawn_app_with(&[("GATEHOUSE_MAX_HEADER_BYTES", "4096")]).await;
    let reply = Reply::read(
        app.client
            .get(app.url("/api/health/"))
            .header("X-Padding", "a".repeat(5000))
            .send()
            .await
            .expect("request"),
    )
    .await;
    assert_eq!(reply.status, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    assert_eq!(
        reply.body,
        json!({"detail": "Request header fields too large."})
    );

    // Far past the limit hyper stops reading altogether: still a 4xx, never a 5xx.
    let huge = app
        .client
        .get(app.url("/api/health/"))
        .header("X-Padding", "a".repeat(200_000))
        .send()
        .await;
    if let Ok(response) = huge {
        assert!(response.status().is_client_error(), "{}", response.status());
    }

    let ok = app
        .client
        .get(app.url("/api/health/"))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_client_trickling_its_headers_is_cut_off() {
    let app = spawn_app_with(&[("GATEHOUSE_CLIENT_TIMEOUT", "1s")]).await;
    let mut stream = TcpStream::connect(host_port(&app)).await.unwrap();
    stream
        .write_all(b"GET /api/health/ HTTP/1.1\r\nHost: localhost\r\n")
        .await
        .unwrap();
    // A slowloris client: one more header line every 200 ms, never the blank line.
    let started = Instant::now();
    let mut closed = false;
    while started.elapsed() < Duration::from_secs(20) {
        if stream.write_all(b"X-Slow: 1\r\n").await.is_err() {
            closed = true;
            break;
        }
        if let Some(_answer) = read_until_closed(&mut stream, Duration::from_millis(200)).await {
            closed = true;
            break;
        }
    }
    assert!(closed, "the connection was still open after 20 s");
}

#[tokio::test]
async fn an_idle_connection_is_closed() {
    let app = spawn_app_with(&[("GATEHOUSE_CLIENT_TIMEOUT", "1s")]).await;
    let mut stream = TcpStream::connect(host_port(&app)).await.unwrap();
    // Nothing is sent: the server must not keep the connection forever.
    let answer = read_until_closed(&mut stream, Duration::from_secs(20)).await;
    assert!(answer.is_some(), "the connection was still open after 20 s");
}

#[tokio::test]
async fn a_connection_that_sends_one_byte_is_closed() {
    let app = spawn_app_with(&[("GATEHOUSE_CLIENT_TIMEOUT", "1s")]).await;
    let mut stream = TcpStream::connect(host_port(&app)).await.unwrap();
    // The first byte of an HTTP/2 preface, or of "POST": then nothing.
    stream.write_all(b"P").await.unwrap();
    let answer = read_until_closed(&mut stream, Duration::from_secs(20)).await;
    assert!(answer.is_some(), "the connection was still open after 20 s");
}

#[tokio::test]
async fn past_the_connection_cap_a_new_client_waits_for_a_free_slot() {
    let app = spawn_app_with(&[
        ("GATEHOUSE_MAX_CONNECTIONS", "1"),
        ("GATEHOUSE_CLIENT_TIMEOUT", "2s"),
    ])
    .await;
    // A slow client takes the only slot...
    let mut slow = TcpStream::connect(host_port(&app)).await.unwrap();
    slow.write_all(b"GET /api/health/ HTTP/1.1\r\nHost: localhost\r\n")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    // ...so this request is answered only once the slow one has been cut off.
    let reply = app
        .client
        .get(app.url("/api/health/"))
        .timeout(Duration::from_secs(20))
        .send()
        .await
        .expect("served once a slot is free");
    assert_eq!(reply.status(), StatusCode::OK);
    let mut probe = [0u8; 1];
    let slow_closed = tokio::time::timeout(Duration::from_millis(100), slow.read(&mut probe))
        .await
        .is_ok_and(|read| matches!(read, Ok(0) | Err(_)));
    assert!(
        slow_closed,
        "the second client was served while the first held the only slot"
    );
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed() {
    let app = spawn_app_with(&[("GATEHOUSE_CLIENT_TIMEOUT", "1s")]).await;
    let mut stream = TcpStream::connect(host_port(&app)).await.unwrap();
    stream
        .write_all(b"GET /api/health/ HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    // The answer comes, then the connection stays idle: it must be closed by the server.
    let answer = read_until_closed(&mut stream, Duration::from_secs(20))
        .await
        .expect("the idle connection was still open after 20 s");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

#[tokio::test]
async fn a_client_trickling_its_body_gets_408() {
    let app = spawn_app_with(&[("GATEHOUSE_CLIENT_TIMEOUT", "1s")]).await;
    let mut stream = TcpStream::connect(host_port(&app)).await.unwrap();
    stream
        .write_all(
            b"POST /api/login/ HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
              Content-Length: 100\r\n\r\n{\"username\": ",
        )
        .await
        .unwrap();
    let answer = read_until_closed(&mut stream, Duration::from_secs(20))
        .await
        .expect("an answer within 20 s");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(
        answer.contains(r#"{"detail":"The request body took too long to arrive."}"#),
        "{answer}"
    );
}

#[tokio::test]
async fn a_request_past_its_deadline_gets_503_in_the_contracts_shape() {
    let app = spawn_app_full(&[("GATEHOUSE_REQUEST_TIMEOUT", "1s")], slow_route()).await;
    let reply = Reply::read(
        app.client
            .get(app.url("/test/slow"))
            .timeout(Duration::from_secs(20))
            .send()
            .await
            .expect("an answer before the client gives up"),
    )
    .await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        reply.body,
        json!({"detail": "Service temporarily unavailable, try again later."})
    );
    assert!(reply.header("retry-after").is_some());
}

#[tokio::test]
async fn a_password_over_the_cap_is_a_failed_login_and_a_refused_new_password() {
    let app = spawn_app().await;
    app.register_ok("ursula").await;
    let huge = format!("{STRONG_PASSWORD}{}", "x".repeat(5000));

    let login = app.login("ursula", &huge).await;
    assert_eq!(login.status, StatusCode::UNAUTHORIZED, "{}", login.body);
    assert_eq!(
        login.body,
        json!({"detail": "No active account found with the given credentials"})
    );

    let register = app.register("frank", "frank@example.com", &huge).await;
    assert_eq!(register.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        register.body,
        json!({"password": ["Ensure this field has no more than 4096 bytes."]})
    );
}

#[tokio::test]
async fn past_its_wait_for_a_hashing_slot_a_request_gets_503_with_retry_after() {
    let app = spawn_app_with(&[
        ("GATEHOUSE_HASH_CONCURRENCY", "1"),
        ("GATEHOUSE_HASH_WAIT", "1ms"),
        ("GATEHOUSE_RATE_LIMIT", "off"),
    ])
    .await;
    app.register_ok("mike").await;
    let logins = (0..16).map(|_| app.login("mike", STRONG_PASSWORD));
    let replies = futures::future::join_all(logins).await;

    let ok = replies
        .iter()
        .filter(|r| r.status == StatusCode::OK)
        .count();
    let busy: Vec<&Reply> = replies
        .iter()
        .filter(|r| r.status == StatusCode::SERVICE_UNAVAILABLE)
        .collect();
    assert_eq!(ok + busy.len(), replies.len(), "{replies:?}");
    assert!(ok >= 1, "{replies:?}");
    assert!(!busy.is_empty(), "16 logins never found the one slot taken");
    for reply in busy {
        assert_eq!(
            reply.body,
            json!({"detail": "Service temporarily unavailable, try again later."})
        );
        assert_eq!(reply.header("retry-after"), Some("1"));
    }
}

// ---- the SIGTERM drain (API.md §8, issue #9) ----

#[tokio::test]
async fn at_shutdown_requests_already_queued_are_answered() {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (app, running) = spawn_app_until(
        &[("GATEHOUSE_MAX_CONNECTIONS", "1")],
        axum::Router::new(),
        async {
            let _ = stopped.await;
        },
    )
    .await;
    let address = host_port(&app);
    // An idle client holds the only slot, so the next five wait in the kernel's queue,
    // their requests written, not yet accepted.
    let mut idle = TcpStream::connect(&address).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let request = format!("GET /api/health/ HTTP/1.1\r\nHost: {address}\r\n\r\n");
    let mut queued = Vec::new();
    for _ in 0..5 {
        let mut stream = TcpStream::connect(&address).await.unwrap();
        stream.write_all(request.as_bytes()).await.unwrap();
        queued.push(stream);
    }
    tokio::time::sleep(Duration::from_millis(100)).await;

    stop.send(()).unwrap();
    for (i, stream) in queued.iter_mut().enumerate() {
        let answer = read_until_closed(stream, Duration::from_secs(10)).await;
        let answer = answer.unwrap_or_default();
        assert!(
            answer.starts_with("HTTP/1.1 200"),
            "queued request {i}: {answer:?}"
        );
    }
    // The idle client, which never sent a request, is let go; then the server stops.
    assert!(read_until_closed(&mut idle, Duration::from_secs(10))
        .await
        .is_some());
    tokio::time::timeout(Duration::from_secs(10), running)
        .await
        .expect("the server stopped")
        .unwrap()
        .unwrap();
    assert!(
        TcpStream::connect(&address).await.is_err(),
        "still listening"
    );
}

// ---- the password-hashing threads' priority (GATEHOUSE_HASH_PRIORITY) ----

/// The scheduling policy (`/proc/…/stat` field 41) of each of this process's threads
/// named `gatehouse-hash`, by thread id.
#[cfg(target_os = "linux")]
fn hash_thread_policies() -> std::collections::HashMap<String, u32> {
    let mut policies = std::collections::HashMap::new();
    for task in std::fs::read_dir("/proc/self/task")
        .expect("/proc/self/task")
        .flatten()
    {
        let path = task.path();
        let comm = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
        if comm.trim() != "gatehouse-hash" {
            continue;
        }
        let stat = std::fs::read_to_string(path.join("stat")).unwrap_or_default();
        // Fields after the command name, which is in brackets, start at field 3.
        let after = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
        let policy = after
            .split_whitespace()
            .nth(41 - 3)
            .and_then(|f| f.parse().ok());
        if let Some(policy) = policy {
            policies.insert(task.file_name().to_string_lossy().into_owned(), policy);
        }
    }
    policies
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn hashing_runs_at_the_lowest_priority_unless_told_otherwise() {
    const SCHED_OTHER: u32 = 0;
    const SCHED_IDLE: u32 = 5;
    for (setting, expected) in [(None, SCHED_IDLE), (Some("normal"), SCHED_OTHER)] {
        let before = hash_thread_policies();
        let overrides: Vec<(&str, &str)> = setting
            .map(|value| {
                vec![
                    ("GATEHOUSE_HASH_PRIORITY", value),
                    ("GATEHOUSE_HASH_CONCURRENCY", "2"),
                ]
            })
            .unwrap_or_else(|| vec![("GATEHOUSE_HASH_CONCURRENCY", "2")]);
        let app = spawn_app_with(&overrides).await;
        app.register_ok("hasher").await;
        app.login_ok("hasher").await;
        // Each thread sets its priority as it starts: give a slow start a moment.
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let new: Vec<u32> = hash_thread_policies()
                .into_iter()
                .filter(|(tid, _)| !before.contains_key(tid))
                .map(|(_, policy)| policy)
                .collect();
            if new == vec![expected; 2] {
                break;
            }
            assert!(Instant::now() < deadline, "{setting:?}: {new:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
