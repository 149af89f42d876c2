//! Faults under a steady mixed load through nginx (issue #9): each test counts the load's
//! outcomes around the fault, then checks that every acknowledged registration and
//! password change is still there.

use crate::harness::Cluster;
use crate::load::{Load, Outcome, WORKERS};
use reqwest::StatusCode;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Throttles and the login guard would count the whole load as one client.
const LOAD_SETTINGS: &[(&str, &str)] = &[("GATEHOUSE_RATE_LIMIT", "off")];

async fn settle(seconds: u64) {
    tokio::time::sleep(Duration::from_secs(seconds)).await;
}

/// A 503 in the contract's shape, gatehouse's own, or nginx's when the instance it chose
/// died (scripts/cluster writes it to match gatehouse's).
fn is_unavailable(outcome: &Outcome) -> bool {
    outcome.status == Some(StatusCode::SERVICE_UNAVAILABLE)
        && outcome.body
            == serde_json::json!({"detail": "Service temporarily unavailable, try again later."})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_instance_killed_fails_only_its_in_flight_requests() {
    let Some(cluster) = Cluster::start(3, LOAD_SETTINGS) else {
        return;
    };
    let load = Load::start(&cluster, "kill").await;
    settle(3).await;
    cluster.run(&["kill", "2"]);
    // Whatever instance 2 held was sent before this.
    let killed_at = load.now();
    settle(4).await;
    let report = load.stop().await;
    eprintln!(
        "kill: {}; {} failed",
        report.summary(),
        report.failures().len()
    );

    // Only requests that instance 2 held when it died may fail: at most one per worker,
    // all sent before the kill, each answered by nginx's 503.
    let failures = report.failures();
    assert!(
        failures.len() <= WORKERS,
        "{} requests failed, more than were in flight ({WORKERS}): {}",
        failures.len(),
        report.summary()
    );
    for failure in &failures {
        assert!(
            failure.sent <= killed_at && is_unavailable(failure),
            "a request failed that was not in flight at the kill ({killed_at:?}): {failure:?}"
        );
    }
    // nginx routes the rest to the two others.
    report.assert_served_after(killed_at + Duration::from_millis(500));
    report.check_nothing_lost(&cluster).await;

    assert_eq!(cluster.exit_status(2).as_deref(), Some("137"));
    // Started again, the instance serves at once.
    cluster.run(&["start-instance", "2"]);
    cluster
        .wait_health(2, StatusCode::OK, Duration::from_secs(5))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_instance_stopped_with_sigterm_drains_and_no_request_fails() {
    let Some(cluster) = Cluster::start(3, LOAD_SETTINGS) else {
        return;
    };
    let load = Load::start(&cluster, "term").await;
    settle(3).await;
    // A request instance 2 is in the middle of reading when the signal comes: half its
    // body is sent before, half after.
    let body = r#"{"username": "midway", "email": "midway@example.com", "password": "correct-horse-battery-9"}"#;
    let mut midway = TcpStream::connect(cluster.instance_url(2, "").trim_start_matches("http://"))
        .await
        .expect("connect to instance 2");
    let head = format!(
        "POST /api/register/ HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let (first, second) = body.split_at(body.len() / 2);
    midway
        .write_all(format!("{head}{first}").as_bytes())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;

    let stopped_at = load.now();
    // `term` returns once the instance has exited.
    let term = cluster
        .script(&["term", "2"])
        .spawn()
        .expect("scripts/cluster term");
    // The rest of the body only once the instance has begun to shut down.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !cluster.log(2).contains("shutting down") {
        assert!(
            std::time::Instant::now() < deadline,
            "instance 2 never began to shut down"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    midway.write_all(second.as_bytes()).await.unwrap();
    let mut answer = String::new();
    midway.read_to_string(&mut answer).await.unwrap();
    assert!(
        answer.starts_with("HTTP/1.1 201"),
        "the request in flight got: {answer}"
    );
    let status = tokio::task::spawn_blocking(move || term.wait_with_output())
        .await
        .unwrap()
        .expect("scripts/cluster term");
    assert!(status.status.success());
    let exited_at = load.now();
    settle(3).await;
    let report = load.stop().await;
    eprintln!(
        "term: {}; drained in {:?}",
        report.summary(),
        exited_at - stopped_at
    );

    assert!(
        report.failures().is_empty(),
        "requests failed while instance 2 drained: {:?}\n{}",
        report.failures(),
        report.summary()
    );
    // The instance did take requests until the signal, and drained rather than dying.
    assert!(
        exited_at - stopped_at < Duration::from_secs(10),
        "the drain took {:?}",
        exited_at - stopped_at
    );
    let log = cluster.log(2);
    assert!(log.contains("shutting down"), "instance 2's log:\n{log}");
    assert_eq!(
        cluster.exit_status(2).as_deref(),
        Some("0"),
        "instance 2's log:\n{log}"
    );
    report.assert_served_after(exited_at);
    report.check_nothing_lost(&cluster).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_postgres_restart_gets_prompt_503s_and_the_instances_recover_by_themselves() {
    let request_timeout = Duration::from_secs(10);
    let settings = [LOAD_SETTINGS, &[("GATEHOUSE_REQUEST_TIMEOUT", "10s")]].concat();
    let Some(cluster) = Cluster::start(3, &settings) else {
        return;
    };
    let load = Load::start(&cluster, "pg").await;
    settle(3).await;

    let down_at = load.now();
    cluster.run(&["stop-postgres"]);
    // Every instance notices, and says so on /api/health/.
    for n in 1..=cluster.instances {
        cluster
            .wait_health(n, StatusCode::SERVICE_UNAVAILABLE, Duration::from_secs(10))
            .await;
    }
    settle(3).await;
    cluster.run(&["start-postgres"]);
    // PostgreSQL answers again from here: the instances find out by themselves.
    let up_at = load.now();
    for n in 1..=cluster.instances {
        cluster
            .wait_health(n, StatusCode::OK, Duration::from_secs(15))
            .await;
    }
    let recovered_after = load.now() - up_at;
    assert!(
        recovered_after < Duration::from_secs(10),
        "the instances took {recovered_after:?} to recover"
    );
    let recovered_at = load.now();
    settle(3).await;
    let report = load.stop().await;
    eprintln!(
        "postgres restart: {}; {} failed; recovered {recovered_after:?} after PostgreSQL was back",
        report.summary(),
        report.failures().len()
    );

    // Nothing hung: every request was answered, within the request timeout (plus the
    // time a request may wait to be read), and every failure is a 503 in the contract's
    // shape, sent while the database was away.
    for outcome in &report.outcomes {
        assert!(
            outcome.status.is_some(),
            "a request got no answer: {outcome:?}"
        );
        assert!(
            outcome.took < request_timeout + Duration::from_secs(2),
            "a request took {:?}: {outcome:?}",
            outcome.took
        );
    }
    let failures = report.failures();
    assert!(
        !failures.is_empty(),
        "the load saw nothing of the outage: {}",
        report.summary()
    );
    for failure in &failures {
        assert!(is_unavailable(failure), "{failure:?}");
        assert!(
            failure.answered_by() >= down_at && failure.sent <= recovered_at,
            "a request failed outside the outage ({down_at:?}..{recovered_at:?}): {failure:?}"
        );
    }
    report.assert_served_after(recovered_at);
    report.check_nothing_lost(&cluster).await;
}
