//! Several instances are one service (issue #9): a token from any instance works on every
//! other, an account change on one takes effect on all at once, throttle and login-guard
//! counts are shared, and instances starting together migrate the database once.

use crate::harness::{Api, Cluster, Reply, PASSWORD};
use reqwest::{Method, StatusCode};
use serde_json::json;
use std::time::{Duration, Instant};

/// The access token works on every instance (200), or on none (401 with `code`).
async fn assert_access_everywhere(cluster: &Cluster, api: &Api, access: &str, code: Option<&str>) {
    for n in 1..=cluster.instances {
        let reply = api
            .get_auth(&cluster.instance_url(n, "/api/users/me/"), access)
            .await;
        match code {
            None => assert_eq!(reply.status, StatusCode::OK, "instance {n}: {}", reply.body),
            Some(code) => {
                assert_eq!(
                    reply.status,
                    StatusCode::UNAUTHORIZED,
                    "instance {n}: {}",
                    reply.body
                );
                assert_eq!(reply.body["code"], code, "instance {n}: {}", reply.body);
            }
        }
    }
}

/// Neither the access nor the refresh token works on any instance.
async fn assert_tokens_dead_everywhere(cluster: &Cluster, api: &Api, access: &str, refresh: &str) {
    for n in 1..=cluster.instances {
        let me = api
            .get_auth(&cluster.instance_url(n, "/api/users/me/"), access)
            .await;
        assert_eq!(
            me.status,
            StatusCode::UNAUTHORIZED,
            "instance {n}: {}",
            me.body
        );
        let refreshed = api
            .post(
                &cluster.instance_url(n, "/api/token/refresh/"),
                json!({"refresh": refresh}),
            )
            .await;
        assert_eq!(
            refreshed.status,
            StatusCode::UNAUTHORIZED,
            "instance {n}: {}",
            refreshed.body
        );
    }
}

/// The `uid:` and `token:` lines of the newest reset mail to `address`.
async fn reset_mail(cluster: &Cluster, address: &str) -> (String, String) {
    let started = Instant::now();
    loop {
        let mut mails: Vec<String> = std::fs::read_dir(cluster.mail_dir())
            .into_iter()
            .flatten()
            .filter_map(|entry| entry.ok())
            .filter(|entry| entry.path().extension().is_some_and(|x| x == "eml"))
            .filter_map(|entry| std::fs::read_to_string(entry.path()).ok())
            // Undo quoted-printable's soft line breaks.
            .map(|mail| mail.replace("=\r\n", "").replace("=\n", ""))
            .filter(|mail| mail.contains(&format!("To: {address}")))
            .collect();
        mails.sort();
        if let Some(mail) = mails.last() {
            let line = |prefix: &str| {
                mail.lines()
                    .find_map(|l| l.trim().strip_prefix(prefix).map(str::to_owned))
                    .unwrap_or_else(|| panic!("no {prefix:?} line in:\n{mail}"))
            };
            return (line("uid: "), line("token: "));
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no reset mail to {address}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_and_account_changes_take_effect_on_every_instance_at_once() {
    let Some(cluster) = Cluster::start(3, &[]) else {
        return;
    };
    let api = Api::new();
    let [a, b, c] = [1, 2, 3].map(|n| cluster.instance_url(n, ""));
    let not_valid = Some("token_not_valid");

    // Registered on A, signed in on B: the tokens work on all three.
    assert_eq!(api.register(&a, "alice").await.status, StatusCode::CREATED);
    let (access, refresh) = api.login_ok(&b, "alice", PASSWORD).await;
    assert_access_everywhere(&cluster, &api, &access, None).await;

    // Refreshed on C; the spent refresh token presented on A ends the session everywhere.
    let rotated = api
        .post(
            &format!("{c}/api/token/refresh/"),
            json!({"refresh": refresh}),
        )
        .await;
    assert_eq!(rotated.status, StatusCode::OK, "{}", rotated.body);
    assert_access_everywhere(&cluster, &api, &rotated.str("access"), None).await;
    let reused = api
        .post(
            &format!("{a}/api/token/refresh/"),
            json!({"refresh": refresh}),
        )
        .await;
    assert_eq!(reused.status, StatusCode::UNAUTHORIZED);
    assert_access_everywhere(&cluster, &api, &rotated.str("access"), not_valid).await;

    // Logout on B ends the session on A and C at once.
    let (access, refresh) = api.login_ok(&a, "alice", PASSWORD).await;
    let logout = api
        .post(&format!("{b}/api/logout/"), json!({"refresh": refresh}))
        .await;
    assert_eq!(logout.status, StatusCode::OK, "{}", logout.body);
    assert_access_everywhere(&cluster, &api, &access, not_valid).await;

    // A password change on C ends every other session, wherever it began.
    let (kept, _) = api.login_ok(&a, "alice", PASSWORD).await;
    let (other, _) = api.login_ok(&b, "alice", PASSWORD).await;
    let new_password = "a-new-horse-staple-7";
    let changed = api
        .post_auth(
            &format!("{c}/api/change_password/"),
            &kept,
            json!({"old_password": PASSWORD, "new_password": new_password}),
        )
        .await;
    assert_eq!(changed.status, StatusCode::OK, "{}", changed.body);
    assert_access_everywhere(&cluster, &api, &kept, None).await;
    assert_access_everywhere(&cluster, &api, &other, not_valid).await;
    assert_eq!(
        api.login(&a, "alice", PASSWORD).await.status,
        StatusCode::UNAUTHORIZED
    );
    let (access, _) = api.login_ok(&b, "alice", new_password).await;

    // A reset asked on A, confirmed on B: the new password works on C, the old sessions
    // end everywhere, and the token is spent for all.
    let asked = api
        .post(
            &format!("{a}/api/reset_password/"),
            json!({"email": "alice@example.com"}),
        )
        .await;
    assert_eq!(asked.status, StatusCode::OK);
    let (uid, token) = reset_mail(&cluster, "alice@example.com").await;
    let reset_password = "a-reset-horse-staple-8";
    let confirm = json!({"uid": uid, "token": token, "new_password": reset_password});
    let confirmed = api
        .post(&format!("{b}/api/reset_password/confirm/"), confirm.clone())
        .await;
    assert_eq!(confirmed.status, StatusCode::OK, "{}", confirmed.body);
    assert_access_everywhere(&cluster, &api, &access, not_valid).await;
    api.login_ok(&c, "alice", reset_password).await;
    let again = api
        .post(&format!("{c}/api/reset_password/confirm/"), confirm)
        .await;
    assert_eq!(again.status, StatusCode::BAD_REQUEST);
    assert_eq!(again.body, json!({"token": ["Invalid or expired token."]}));

    // Deactivated by an administrator on A: refused everywhere at once.
    cluster.create_superuser("root");
    let (admin, _) = api.login_ok(&a, "root", PASSWORD).await;
    let (access, refresh) = api.login_ok(&c, "alice", reset_password).await;
    let id = api
        .get_auth(&format!("{c}/api/users/me/"), &access)
        .await
        .body["id"]
        .clone();
    let deactivated = api
        .send(
            Method::PATCH,
            &format!("{a}/api/users/{id}/"),
            Some(&admin),
            Some(json!({"is_active": false})),
        )
        .await
        .expect("PATCH");
    assert_eq!(deactivated.status, StatusCode::OK, "{}", deactivated.body);
    assert_tokens_dead_everywhere(&cluster, &api, &access, &refresh).await;
    assert_eq!(
        api.login(&b, "alice", reset_password).await.status,
        StatusCode::UNAUTHORIZED
    );

    // An account deleted on C: its tokens die everywhere at once.
    assert_eq!(api.register(&a, "bob").await.status, StatusCode::CREATED);
    let (access, refresh) = api.login_ok(&b, "bob", PASSWORD).await;
    let deleted = api
        .send(
            Method::DELETE,
            &format!("{c}/api/delete_account/"),
            Some(&access),
            None,
        )
        .await
        .expect("DELETE");
    assert_eq!(deleted.status, StatusCode::OK, "{}", deleted.body);
    assert_tokens_dead_everywhere(&cluster, &api, &access, &refresh).await;
}

fn assert_throttled(reply: &Reply, what: &str) {
    assert_eq!(
        reply.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{what}: {}",
        reply.body
    );
    assert!(
        reply.body["detail"]
            .as_str()
            .is_some_and(|d| d.starts_with("Request was throttled")),
        "{what}: {}",
        reply.body
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttle_and_login_guard_counts_are_shared_by_the_instances() {
    let Some(cluster) = Cluster::start(3, &[("GATEHOUSE_THROTTLE_REGISTER", "6/hour")]) else {
        return;
    };
    let urls: Vec<String> = (1..=3).map(|n| cluster.instance_url(n, "")).collect();

    // Six registrations from one client, two on each instance; the seventh is refused on
    // every instance. nginx's X-Forwarded-For names the client: the instances trust it.
    let client = Api::from_client("198.51.100.7");
    for (i, base) in urls.iter().cycle().take(6).enumerate() {
        let reply = client.register(base, &format!("user{i}")).await;
        assert_eq!(
            reply.status,
            StatusCode::CREATED,
            "registration {i}: {}",
            reply.body
        );
    }
    for base in &urls {
        assert_throttled(&client.register(base, "one_too_many").await, base);
    }
    // Another client is not counted with it.
    let other = Api::from_client("198.51.100.8");
    assert_eq!(
        other.register(&urls[0], "user6").await.status,
        StatusCode::CREATED
    );

    // Five wrong passwords from one client, spread over the instances: the login guard
    // holds the sixth attempt back on any instance, even with the right password.
    let guessing = Api::from_client("203.0.113.9");
    for (i, base) in urls.iter().cycle().take(5).enumerate() {
        let reply = guessing
            .login(base, "user0", &format!("wrong-guess-{i}"))
            .await;
        assert_eq!(
            reply.status,
            StatusCode::UNAUTHORIZED,
            "guess {i}: {}",
            reply.body
        );
    }
    for base in &urls {
        assert_throttled(&guessing.login(base, "user0", PASSWORD).await, base);
    }
    // The owner, from elsewhere, still gets in.
    let owner = Api::from_client("192.0.2.1");
    owner.login_ok(&urls[2], "user0", PASSWORD).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_starting_together_migrate_a_new_database_once() {
    // scripts/cluster starts all five at once against a new database.
    let Some(cluster) = Cluster::start(5, &[]) else {
        return;
    };
    let logs: Vec<String> = (1..=5).map(|n| cluster.log(n)).collect();
    let applied: usize = logs
        .iter()
        .map(|log| log.matches("applied migration").count())
        .sum();
    let migrating: Vec<usize> = (0..5)
        .filter(|&i| logs[i].contains("applied migration"))
        .collect();
    assert_eq!(
        migrating.len(),
        1,
        "more than one instance migrated: {migrating:?}"
    );

    use sqlx::Connection;
    let mut db = sqlx::PgConnection::connect(&cluster.database_url())
        .await
        .expect("connect");
    let versions: Vec<i64> =
        sqlx::query_scalar("SELECT version FROM gatehouse_migration ORDER BY version")
            .fetch_all(&mut db)
            .await
            .expect("read the migration ledger");
    assert_eq!(
        versions.len(),
        applied,
        "ledger {versions:?}, applied {applied}"
    );
    assert_eq!(versions, (1..=applied as i64).collect::<Vec<_>>());
    for (n, log) in logs.iter().enumerate() {
        assert!(!log.contains("ERROR"), "instance {}:\n{log}", n + 1);
    }

    // They also agreed on one generated SECRET_KEY: a token from the first works on the
    // last.
    let api = Api::new();
    assert_eq!(
        api.register(&cluster.instance_url(1, ""), "carol")
            .await
            .status,
        StatusCode::CREATED
    );
    let (access, _) = api
        .login_ok(&cluster.instance_url(1, ""), "carol", PASSWORD)
        .await;
    assert_access_everywhere(&cluster, &api, &access, None).await;
}
