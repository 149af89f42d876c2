//! Issue #5: brute-force protection per account. Failed logins are counted per
//! (account, client) and per account, in the database; past a threshold the account's
//! logins are held back (429) with growing delays from 15 s; a success clears its
//! client's count, a reset clears everything; the owner's own client is never kept out
//! by an attack from elsewhere.
//!
//! Every app here trusts 127.0.0.1 as a proxy, so each request can come "from" the client
//! named in its X-Forwarded-For.

use crate::helpers::*;
use crate::reset::{confirm, reset_done, reset_mail};
use crate::throttle::{assert_throttled, post_from};
use reqwest::StatusCode;
use serde_json::json;

const ATTACKER: &str = "203.0.113.66";
const HOME: &str = "198.51.100.10";

async fn guarded_app(extra: &[(&str, &str)]) -> TestApp {
    let mut overrides = vec![
        ("TRUSTED_PROXIES", "127.0.0.1"),
        // The per-address throttle is not what these tests are about.
        ("GATEHOUSE_THROTTLE_LOGIN", "10000/min"),
    ];
    overrides.extend_from_slice(extra);
    spawn_app_with(&overrides).await
}

async fn login_from(app: &TestApp, username: &str, password: &str, client: &str) -> Reply {
    post_from(
        app,
        "/api/login/",
        json!({"username": username, "password": password}),
        client,
    )
    .await
}

#[tokio::test]
async fn past_five_failures_a_client_is_held_back_from_that_account_even_with_the_right_password() {
    let app = guarded_app(&[]).await;
    app.register_ok("monica").await;
    for attempt in 1..=5 {
        let reply = login_from(&app, "monica", "wrong-guess", ATTACKER).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "attempt {attempt}");
    }

    let held = login_from(&app, "monica", STRONG_PASSWORD, ATTACKER).await;
    assert_throttled(&held, 900);

    // The same client may still log in to other accounts, and the owner from another
    // client is not affected.
    app.register_ok("rachel").await;
    let other_account = login_from(&app, "rachel", STRONG_PASSWORD, ATTACKER).await;
    assert_eq!(other_account.status, StatusCode::OK);
    let owner = login_from(&app, "monica", STRONG_PASSWORD, HOME).await;
    assert_eq!(owner.status, StatusCode::OK, "{}", owner.body);
}

#[tokio::test]
async fn usernames_that_do_not_exist_are_held_back_alike() {
    // Otherwise the 429 itself would tell an attacker which usernames exist.
    let app = guarded_app(&[]).await;
    for _ in 1..=5 {
        let reply = login_from(&app, "no-such-user", "guess", ATTACKER).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    }
    assert_throttled(
        &login_from(&app, "no-such-user", "guess", ATTACKER).await,
        900,
    );
    // Counted case-insensitively, as usernames are matched.
    assert_throttled(
        &login_from(&app, "No-Such-User", "guess", ATTACKER).await,
        900,
    );
}

#[tokio::test]
async fn a_successful_login_clears_the_count() {
    let app = guarded_app(&[]).await;
    app.register_ok("phoebe").await;
    for _ in 1..=4 {
        login_from(&app, "phoebe", "typo", HOME).await;
    }
    let ok = login_from(&app, "phoebe", STRONG_PASSWORD, HOME).await;
    assert_eq!(ok.status, StatusCode::OK);
    // Four more mistakes are four more 401s, not a hold: the count started again.
    for attempt in 1..=4 {
        let reply = login_from(&app, "phoebe", "typo", HOME).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "attempt {attempt}");
    }
    let ok = login_from(&app, "phoebe", STRONG_PASSWORD, HOME).await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.body);
}

#[tokio::test]
async fn a_password_reset_clears_the_hold() {
    let app = guarded_app(&[]).await;
    app.register_ok("gunther").await;
    for _ in 1..=5 {
        login_from(&app, "gunther", "wrong", HOME).await;
    }
    assert_throttled(
        &login_from(&app, "gunther", STRONG_PASSWORD, HOME).await,
        900,
    );

    let mail = reset_mail(&app, "gunther").await;
    let new_password = "a-fresh-Start-42";
    let reply = confirm(&app, &mail.uid(), &mail.token(), new_password).await;
    assert_eq!(reply.body, reset_done());

    let reply = login_from(&app, "gunther", new_password, HOME).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
}

#[tokio::test]
async fn the_counts_are_shared_by_instances_on_one_database() {
    let first = guarded_app(&[]).await;
    let second = guarded_app(&[("DATABASE_URL", &first.database_url)]).await;
    first.register_ok("janice").await;
    for n in 1..=5 {
        let app = if n % 2 == 0 { &first } else { &second };
        let reply = login_from(app, "janice", "oh-my-god", ATTACKER).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    }
    assert_throttled(
        &login_from(&first, "janice", STRONG_PASSWORD, ATTACKER).await,
        900,
    );
    assert_throttled(
        &login_from(&second, "janice", STRONG_PASSWORD, ATTACKER).await,
        900,
    );
}

/// The scenario: a sustained guessing run against one account from several
/// addresses. The attacker's guesses that are actually checked dry up, while the owner,
/// from the address they always log in from, still gets in.
#[tokio::test]
async fn a_sustained_guessing_run_from_many_addresses_slows_the_attacker_but_not_the_owner() {
    let app = guarded_app(&[]).await;
    app.register_ok("chandler").await;
    // The owner has logged in from home before: that client is known to the account.
    assert_eq!(
        login_from(&app, "chandler", STRONG_PASSWORD, HOME)
            .await
            .status,
        StatusCode::OK
    );

    let attackers: Vec<String> = (1..=12).map(|n| format!("203.0.113.{n}")).collect();
    let mut outcomes = Vec::new();
    for attempt in 0..300 {
        let client = &attackers[attempt % attackers.len()];
        let reply = login_from(&app, "chandler", &format!("guess-{attempt}"), client).await;
        match reply.status {
            StatusCode::UNAUTHORIZED => outcomes.push(true),
            StatusCode::TOO_MANY_REQUESTS => {
                assert_throttled(&reply, 900);
                outcomes.push(false)
            }
            other => panic!("attempt {attempt}: {other} {}", reply.body),
        }
    }
    let checked = |range: std::ops::Range<usize>| outcomes[range].iter().filter(|c| **c).count();
    // The first twenty guesses (the account-wide threshold) are all checked...
    assert_eq!(checked(0..20), 20, "{outcomes:?}");
    // ...then each further check costs the attacker a doubling wait: of the last 200
    // guesses hardly any are even looked at.
    let late = checked(100..300);
    assert!(late <= 3, "{late} late guesses were checked: {outcomes:?}");

    // From an address new to the account, even the owner waits like everyone else (the
    // README says so; a password reset lifts it)...
    assert_throttled(
        &login_from(&app, "chandler", STRONG_PASSWORD, "192.0.2.200").await,
        900,
    );
    // ...but from home, the owner logs in at once.
    let owner = login_from(&app, "chandler", STRONG_PASSWORD, HOME).await;
    assert_eq!(owner.status, StatusCode::OK, "{}", owner.body);
}

#[tokio::test]
async fn a_burst_of_parallel_guesses_cannot_slip_past_the_count() {
    let app = guarded_app(&[]).await;
    app.register_ok("paolo").await;
    let guesses = (0..30).map(|n| login_from(&app, "paolo", format!("guess-{n}").leak(), ATTACKER));
    let replies = futures::future::join_all(guesses).await;
    let checked = replies
        .iter()
        .filter(|r| r.status == StatusCode::UNAUTHORIZED)
        .count();
    let held = replies
        .iter()
        .filter(|r| r.status == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert_eq!(checked + held, 30, "{replies:?}");
    assert_eq!(checked, 5, "exactly the threshold is checked: {replies:?}");
}

#[tokio::test]
async fn attempts_refused_for_a_busy_hash_pool_do_not_count() {
    // One hashing slot and no waiting: of parallel attempts, most get 503. Those never
    // had their password checked, so they must not count, or an attacker flooding the
    // pool would run up the owner's count.
    let app = guarded_app(&[
        ("GATEHOUSE_HASH_CONCURRENCY", "1"),
        ("GATEHOUSE_HASH_WAIT", "1ms"),
    ])
    .await;
    app.register_ok("estelle").await;
    let (mut checked, mut busy) = (0, 0);
    // Wrong passwords in parallel bursts until exactly four have been checked.
    while checked < 4 {
        // Never more than are still to be checked, so the count cannot overshoot four.
        let burst = (checked..4).map(|_| login_from(&app, "estelle", "typo", HOME));
        for reply in futures::future::join_all(burst).await {
            match reply.status {
                StatusCode::UNAUTHORIZED => checked += 1,
                StatusCode::SERVICE_UNAVAILABLE => busy += 1,
                other => panic!("{other}: {}", reply.body),
            }
        }
    }
    assert!(busy > 0, "no attempt ever found the one slot taken");
    // Four failures counted, not 4 + {busy}: the right password still gets in.
    let reply = login_from(&app, "estelle", STRONG_PASSWORD, HOME).await;
    assert_eq!(
        reply.status,
        StatusCode::OK,
        "{busy} busy attempts counted: {}",
        reply.body
    );
}

/// Fails `count` guesses against `username`, each from a different address.
async fn spread_guesses(app: &TestApp, username: &str, count: usize) {
    for n in 0..count {
        let client = format!("203.0.113.{}", 100 + n);
        let reply = login_from(app, username, "spread-guess", &client).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "guess {n}");
    }
}

#[tokio::test]
async fn the_owner_logging_in_does_not_give_the_attacker_a_fresh_start() {
    let app = guarded_app(&[]).await;
    app.register_ok("richard").await;
    login_from(&app, "richard", STRONG_PASSWORD, HOME).await;
    spread_guesses(&app, "richard", 20).await;
    let owner = login_from(&app, "richard", STRONG_PASSWORD, HOME).await;
    assert_eq!(owner.status, StatusCode::OK);
    // The account-wide count stands: a new address is still held back.
    assert_throttled(
        &login_from(&app, "richard", "next-guess", "203.0.113.250").await,
        900,
    );
}

#[tokio::test]
async fn after_a_reset_no_client_is_known_any_more() {
    // Someone who once logged in with a stolen password must not stay exempt.
    let app = guarded_app(&[]).await;
    app.register_ok("carol").await;
    login_from(&app, "carol", STRONG_PASSWORD, ATTACKER).await;
    let mail = reset_mail(&app, "carol").await;
    let new_password = "only-Carol-knows-77";
    let reply = confirm(&app, &mail.uid(), &mail.token(), new_password).await;
    assert_eq!(reply.body, reset_done());

    spread_guesses(&app, "carol", 20).await;
    assert_throttled(
        &login_from(&app, "carol", "old-password-guess", ATTACKER).await,
        900,
    );
}

/// A signed-in request from `client` that re-enters a password.
async fn send_from(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    access: &str,
    body: serde_json::Value,
    client: &str,
) -> Reply {
    let request = app
        .client
        .request(method, app.url(path))
        .bearer_auth(access)
        .header("X-Forwarded-For", client)
        .json(&body);
    Reply::read(request.send().await.expect("request")).await
}

#[tokio::test]
async fn a_password_re_entered_by_a_signed_in_client_is_guarded_like_a_login() {
    // Someone holding a stolen access token guesses the password through the routes that
    // ask for it again: each wrong guess counts as a failed login to the account from that
    // client, so the sixth is held back before it is checked, whichever route it comes by,
    // and the owner elsewhere is not affected.
    let app = guarded_app(&[]).await;
    app.register_ok("monica").await;
    let (stolen, _) = app.login_ok("monica").await;
    let change = |old: &str| json!({"old_password": old, "new_password": "a-Brand-new-passw0rd"});
    for attempt in 1..=3 {
        let reply = send_from(
            &app,
            reqwest::Method::POST,
            "/api/change_password/",
            &stolen,
            change("wrong-guess"),
            ATTACKER,
        )
        .await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "attempt {attempt}");
    }
    for attempt in 4..=5 {
        let rename = json!({"username": "mon", "current_password": "wrong-guess"});
        let reply = send_from(
            &app,
            reqwest::Method::PATCH,
            "/api/users/me/",
            &stolen,
            rename,
            ATTACKER,
        )
        .await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "attempt {attempt}");
    }

    let held = send_from(
        &app,
        reqwest::Method::POST,
        "/api/change_password/",
        &stolen,
        change(STRONG_PASSWORD),
        ATTACKER,
    )
    .await;
    assert_throttled(&held, 900);
    assert_throttled(
        &login_from(&app, "monica", STRONG_PASSWORD, ATTACKER).await,
        900,
    );

    let (access, _) = {
        let reply = login_from(&app, "monica", STRONG_PASSWORD, HOME).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        (reply.str("access"), reply.str("refresh"))
    };
    let changed = send_from(
        &app,
        reqwest::Method::POST,
        "/api/change_password/",
        &access,
        change(STRONG_PASSWORD),
        HOME,
    )
    .await;
    assert_eq!(changed.status, StatusCode::OK, "{}", changed.body);
}
