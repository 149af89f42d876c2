//! `POST /api/login/` (API.md §2, §4, §5, §9): SimpleJWT's `TokenObtainPairView`.

use crate::helpers::*;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// API.md §4: one answer for every kind of login failure.
fn login_failed() -> Value {
    json!({"detail": "No active account found with the given credentials"})
}

/// Asserts the one login-failure answer: 401, the body, and the scheme header (§2).
fn assert_login_failed(reply: &Reply) {
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{}", reply.body);
    assert_eq!(reply.body, login_failed());
    assert_eq!(
        reply.header("www-authenticate"),
        Some("Bearer realm=\"api\"")
    );
}

/// The keys of a JSON object, sorted.
fn keys(value: &Value) -> Vec<String> {
    let mut keys: Vec<String> = value
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {value}"))
        .keys()
        .cloned()
        .collect();
    keys.sort();
    keys
}

fn is_lower_hex_32(value: &Value) -> bool {
    value.as_str().is_some_and(|s| {
        s.len() == 32
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// The JOSE header of a token, read without checking it.
fn header_of(token: &str) -> Value {
    use base64::Engine;
    let header = token.split('.').next().expect("a JWT has three parts");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header)
        .expect("base64url");
    serde_json::from_slice(&bytes).expect("JSON header")
}

fn timestamp(value: &Value) -> chrono::DateTime<chrono::Utc> {
    let text = value
        .as_str()
        .unwrap_or_else(|| panic!("not a timestamp: {value}"));
    chrono::DateTime::parse_from_rfc3339(text)
        .unwrap_or_else(|e| panic!("{text:?} is not RFC 3339: {e}"))
        .with_timezone(&chrono::Utc)
}

#[tokio::test]
async fn logging_in_answers_exactly_an_access_and_a_refresh_token() {
    let app = spawn_app().await;
    app.register_ok("chandler").await;

    let reply = app.login("chandler", STRONG_PASSWORD).await;

    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(keys(&reply.body), ["access", "refresh"]);
    assert!(reply.body["access"].is_string() && reply.body["refresh"].is_string());
    assert_ne!(reply.body["access"], reply.body["refresh"]);
    assert_eq!(reply.header("content-type"), Some("application/json"));
}

#[tokio::test]
async fn the_tokens_carry_simplejwts_claims_a_string_user_id_and_one_session_id() {
    let app = spawn_app().await;
    app.register_ok("chandler").await;
    let before = now();
    let (access, refresh) = app.login_ok("chandler").await;
    let after = now();
    let id = app.me(&access).await.body["id"].as_i64().expect("id");

    let (a, r) = (claims_of(&access), claims_of(&refresh));
    for (token, claims, token_type, lifetime) in [
        (&access, &a, "access", 300),
        (&refresh, &r, "refresh", 86_400),
    ] {
        assert_eq!(header_of(token), json!({"alg": "HS256", "typ": "JWT"}));
        assert_eq!(
            keys(claims),
            ["exp", "iat", "jti", "sid", "token_type", "user_id"],
            "{claims}"
        );
        assert_eq!(claims["token_type"], token_type);
        assert_eq!(
            claims["user_id"],
            json!(id.to_string()),
            "user_id is a string"
        );
        assert!(is_lower_hex_32(&claims["jti"]), "jti: {}", claims["jti"]);
        let iat = claims["iat"].as_i64().expect("iat is an integer");
        let exp = claims["exp"].as_i64().expect("exp is an integer");
        assert!(
            (before..=after).contains(&iat),
            "iat {iat} not in {before}..={after}"
        );
        assert_eq!(exp - iat, lifetime, "{token_type} lifetime");
    }
    assert!(a["sid"].as_str().is_some_and(|s| !s.is_empty()));
    assert_eq!(a["sid"], r["sid"], "both tokens belong to one session");
    assert_ne!(a["jti"], r["jti"]);
}

#[tokio::test]
async fn the_tokens_are_hs256_signed_with_the_secret_key_so_simplejwt_accepts_them() {
    let app = spawn_app().await;
    app.register_ok("chandler").await;
    let (access, refresh) = app.login_ok("chandler").await;

    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    validation.leeway = 0;
    let key = jsonwebtoken::DecodingKey::from_secret(SECRET_KEY.as_bytes());
    for token in [&access, &refresh] {
        let decoded = jsonwebtoken::decode::<Value>(token, &key, &validation)
            .expect("verifies with SECRET_KEY as PyJWT would");
        assert_eq!(decoded.claims, claims_of(token));
    }
}

#[tokio::test]
async fn the_token_lifetimes_follow_configuration() {
    let app = spawn_app_with(&[
        ("ACCESS_TOKEN_LIFETIME", "90s"),
        ("REFRESH_TOKEN_LIFETIME", "2h"),
    ])
    .await;
    app.register_ok("chandler").await;
    let (access, refresh) = app.login_ok("chandler").await;

    let lifetime = |token: &str| {
        let claims = claims_of(token);
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap()
    };
    assert_eq!(lifetime(&access), 90);
    assert_eq!(lifetime(&refresh), 7_200);
}

#[tokio::test]
async fn each_login_starts_a_session_of_its_own() {
    let app = spawn_app().await;
    app.register_ok("chandler").await;
    let (first, _) = app.login_ok("chandler").await;
    let (second, _) = app.login_ok("chandler").await;

    assert_ne!(claims_of(&first)["sid"], claims_of(&second)["sid"]);
    assert_eq!(app.me(&first).await.status, StatusCode::OK);
    assert_eq!(app.me(&second).await.status, StatusCode::OK);
}

#[tokio::test]
async fn an_unknown_user_a_wrong_password_and_an_inactive_user_get_one_identical_401() {
    let app = spawn_app().await;
    app.register_ok("chandler").await;
    app.register_ok("janice").await;
    app.execute_sql("UPDATE auth_user SET is_active = FALSE WHERE username = 'janice'")
        .await;

    let unknown = app.login("nobody", STRONG_PASSWORD).await;
    let wrong_password = app.login("chandler", "correct-Horse-battery-8").await;
    let inactive = app.login("janice", STRONG_PASSWORD).await;

    for reply in [&unknown, &wrong_password, &inactive] {
        assert_login_failed(reply);
    }
    assert_eq!(unknown.body, wrong_password.body);
    assert_eq!(wrong_password.body, inactive.body);
}

#[tokio::test]
async fn the_password_is_compared_exactly_including_case() {
    let app = spawn_app().await;
    app.register_ok("chandler").await;

    assert_login_failed(&app.login("chandler", &STRONG_PASSWORD.to_uppercase()).await);
    assert_login_failed(&app.login("chandler", &format!("{STRONG_PASSWORD} ")).await);
    assert_login_failed(&app.login("chandler", &STRONG_PASSWORD[1..]).await);
}

#[tokio::test]
async fn an_unknown_user_takes_as_long_to_refuse_as_a_wrong_password() {
    // API.md §4: the same time whether or not the user exists (no user enumeration by
    // timing). A loose bound, so that a busy machine cannot make it flaky: without a
    // dummy hash an unknown user answers in well under a tenth of an Argon2 run. The
    // brute-force guard would hold the repeated failures back (fast 429s): raised here.
    let app = spawn_app_with(&[
        ("GATEHOUSE_LOCKOUT_CLIENT_FAILURES", "100"),
        ("GATEHOUSE_LOCKOUT_ACCOUNT_FAILURES", "100"),
    ])
    .await;
    app.register_ok("chandler").await;

    let mut unknown = Vec::new();
    let mut wrong = Vec::new();
    for _ in 0..7 {
        let started = Instant::now();
        assert_login_failed(&app.login("nobody", STRONG_PASSWORD).await);
        unknown.push(started.elapsed());
        let started = Instant::now();
        assert_login_failed(&app.login("chandler", "correct-Horse-battery-8").await);
        wrong.push(started.elapsed());
    }
    unknown.sort();
    wrong.sort();
    let (unknown, wrong) = (unknown[3], wrong[3]);
    assert!(
        unknown * 4 >= wrong,
        "median unknown-user login {unknown:?} vs wrong-password login {wrong:?}"
    );
}

#[tokio::test]
async fn on_a_database_of_djangos_hashes_an_unknown_user_takes_as_long_as_a_known_one() {
    // Users of a database taken over from Django keep Django's hash until they log in:
    // PBKDF2 at 1,000,000 iterations by default (300,000 here: the test build runs
    // PBKDF2 unoptimised, which makes that several times Argon2's cost already). An
    // instance started on such a database verifies an unknown name at their cost, not at
    // Argon2's. A loose bound, as above: without it an unknown name answers in a
    // fraction of a known one's time.
    let made = spawn_app().await;
    made.register_ok("chandler").await;
    made.register_ok("monica").await;
    let djangos = format!("pbkdf2_sha256$300000$djangoSalt${}=", "A".repeat(43));
    made.execute_sql(&format!("UPDATE auth_user SET password = '{djangos}'"))
        .await;
    let app = spawn_app_on(&made.database_url, tempfile::tempdir().unwrap()).await;

    let mut unknown = Vec::new();
    let mut wrong = Vec::new();
    for _ in 0..3 {
        let started = Instant::now();
        assert_login_failed(&app.login("chandler", "correct-Horse-battery-8").await);
        wrong.push(started.elapsed());
        let started = Instant::now();
        assert_login_failed(&app.login("nobody", STRONG_PASSWORD).await);
        unknown.push(started.elapsed());
    }
    unknown.sort();
    wrong.sort();
    let (unknown, wrong) = (unknown[1], wrong[1]);
    assert!(
        unknown * 2 >= wrong,
        "median unknown-user login {unknown:?} vs wrong-password login {wrong:?}"
    );
}

#[tokio::test]
async fn missing_fields_are_both_named_with_drfs_message() {
    let app = spawn_app().await;

    let reply = app.post_json("/api/login/", json!({})).await;

    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        reply.body,
        json!({"username": ["This field is required."], "password": ["This field is required."]})
    );

    let reply = app
        .post_json("/api/login/", json!({"username": "chandler"}))
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.body, json!({"password": ["This field is required."]}));
}

#[tokio::test]
async fn blank_fields_are_refused_with_drfs_message() {
    let app = spawn_app().await;

    let reply = app
        .post_json("/api/login/", json!({"username": "", "password": ""}))
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        reply.body,
        json!({"username": ["This field may not be blank."], "password": ["This field may not be blank."]})
    );

    // DRF trims a CharField before the blank check, so a username of spaces is blank too.
    let reply = app
        .post_json(
            "/api/login/",
            json!({"username": "   ", "password": STRONG_PASSWORD}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        reply.body,
        json!({"username": ["This field may not be blank."]})
    );
}

#[tokio::test]
async fn null_fields_are_refused_with_drfs_message() {
    let app = spawn_app().await;

    let reply = app
        .post_json("/api/login/", json!({"username": null, "password": null}))
        .await;

    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        reply.body,
        json!({"username": ["This field may not be null."], "password": ["This field may not be null."]})
    );
}

#[tokio::test]
async fn logging_in_sets_last_login_and_every_login_moves_it_forward() {
    let app = spawn_app().await;
    app.register_ok("chandler").await;
    let before = chrono::Utc::now() - chrono::Duration::seconds(1);

    let (access, _) = app.login_ok("chandler").await;
    let first = app.me(&access).await;
    assert_eq!(first.status, StatusCode::OK);
    let first_login = timestamp(&first.body["last_login"]);
    let after = chrono::Utc::now() + chrono::Duration::seconds(1);
    assert!(
        before <= first_login && first_login <= after,
        "last_login {first_login} not between {before} and {after}"
    );

    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (access, _) = app.login_ok("chandler").await;
    let second_login = timestamp(&app.me(&access).await.body["last_login"]);
    assert!(
        second_login > first_login,
        "{second_login} is not after {first_login}"
    );
}

#[tokio::test]
async fn a_failed_login_leaves_last_login_alone() {
    let app = spawn_app().await;
    app.register_ok("chandler").await;
    let (access, _) = app.login_ok("chandler").await;
    let last_login = app.me(&access).await.body["last_login"].clone();

    assert_login_failed(&app.login("chandler", "correct-Horse-battery-8").await);

    assert_eq!(app.me(&access).await.body["last_login"], last_login);
}

#[tokio::test]
async fn the_username_is_looked_up_case_insensitively_as_uniqueness_is_case_insensitive() {
    // A departure from Django's default `ModelBackend` (an exact match), chosen because
    // API.md §3 makes usernames unique case-insensitively: "CHANDLER" can only mean one user.
    let app = spawn_app().await;
    app.register_ok("Chandler").await;

    for spelling in ["Chandler", "chandler", "CHANDLER", "cHaNdLeR"] {
        let reply = app.login(spelling, STRONG_PASSWORD).await;
        assert_eq!(reply.status, StatusCode::OK, "{spelling}: {}", reply.body);
        let me = app.me(&reply.str("access")).await;
        assert_eq!(
            me.body["username"], "Chandler",
            "the stored spelling is kept"
        );
    }
}

#[tokio::test]
async fn a_form_encoded_body_signs_in_as_json_does() {
    let app = spawn_app().await;
    app.register_ok("chandler").await;

    let response = app
        .client
        .post(app.url("/api/login/"))
        .form(&[("username", "chandler"), ("password", STRONG_PASSWORD)])
        .send()
        .await
        .expect("request");
    let reply = Reply::read(response).await;

    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(keys(&reply.body), ["access", "refresh"]);
    assert_eq!(app.me(&reply.str("access")).await.status, StatusCode::OK);
}

#[tokio::test]
async fn a_form_encoded_body_with_a_wrong_password_gets_the_same_401() {
    let app = spawn_app().await;
    app.register_ok("chandler").await;

    let response = app
        .client
        .post(app.url("/api/login/"))
        .form(&[("username", "chandler"), ("password", "nope-Nope-nope-1")])
        .send()
        .await
        .expect("request");

    assert_login_failed(&Reply::read(response).await);
}

#[tokio::test]
async fn a_multipart_body_signs_in_as_json_does() {
    let app = spawn_app().await;
    app.register_ok("chandler").await;

    let form = reqwest::multipart::Form::new()
        .text("username", "chandler")
        .text("password", STRONG_PASSWORD);
    let response = app
        .client
        .post(app.url("/api/login/"))
        .multipart(form)
        .send()
        .await
        .expect("request");
    let reply = Reply::read(response).await;

    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(keys(&reply.body), ["access", "refresh"]);
}

#[tokio::test]
async fn the_path_without_its_trailing_slash_signs_in_too() {
    let app = spawn_app().await;
    app.register_ok("chandler").await;

    let reply = app
        .post_json(
            "/api/login",
            json!({"username": "chandler", "password": STRONG_PASSWORD}),
        )
        .await;

    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(keys(&reply.body), ["access", "refresh"]);
}

#[tokio::test]
async fn every_password_hash_django_writes_signs_in_and_keeps_signing_in_after_the_rehash() {
    // API.md §9: users of an existing Django database keep their passwords; after the
    // first login the hash is upgraded to gatehouse's Argon2id, which must verify too.
    let app = spawn_app().await;
    let mut failures = Vec::new();
    for (algorithm, hash) in DJANGO_HASHES {
        let username = format!("user_{algorithm}");
        app.register_ok(&username).await;
        app.execute_sql(&format!(
            "UPDATE auth_user SET password = '{hash}' WHERE username = '{username}'"
        ))
        .await;

        let wrong = app.login(&username, "correct-Horse-battery-8").await;
        let first = app.login(&username, STRONG_PASSWORD).await;
        let second = app.login(&username, STRONG_PASSWORD).await;
        if wrong.status != StatusCode::UNAUTHORIZED
            || first.status != StatusCode::OK
            || second.status != StatusCode::OK
        {
            failures.push(format!(
                "{algorithm}: wrong password {}, first login {} {}, second login {} {}",
                wrong.status, first.status, first.body, second.status, second.body
            ));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[tokio::test]
async fn a_password_changed_while_a_login_checks_the_old_one_starts_no_session() {
    // Two instances on one database, as behind a load balancer. On the first, the one
    // hash slot is held, so a login with the old password reads the stored hash and then
    // waits for the slot; meanwhile the owner changes the password on the second. The
    // login's verification of the old hash then succeeds, but it must not open a session
    // the change was meant to close.
    let first = spawn_app_with_one_hash_slot(&[]).await;
    first.register_ok("monica").await;
    let second = spawn_app_on(&first.database_url, tempfile::tempdir().unwrap()).await;
    let (owner_access, _) = second.login_ok("monica").await;

    let held = hold_hash_slot(&first, 3.0).await;
    let racing_login = {
        let (client, url) = (first.client.clone(), first.url("/api/login/"));
        tokio::spawn(async move {
            let body = json!({"username": "monica", "password": STRONG_PASSWORD});
            Reply::read(client.post(url).json(&body).send().await.unwrap()).await
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let changed = second
        .send_auth(
            reqwest::Method::POST,
            "/api/change_password/",
            &owner_access,
            Some(json!({"old_password": STRONG_PASSWORD, "new_password": "a-Brand-new-passw0rd"})),
        )
        .await;
    assert!(changed.status.is_success(), "{}", changed.body);
    assert!(
        !held.iter().all(|hold| hold.is_finished()),
        "the hash slot was free before the password changed: the race was not set up"
    );

    assert_login_failed(&racing_login.await.unwrap());
    for hold in held {
        assert_eq!(hold.await.unwrap().unwrap().status(), StatusCode::OK);
    }
    assert_eq!(
        first.login("monica", "a-Brand-new-passw0rd").await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn two_logins_at_once_with_a_djangos_hash_both_sign_in() {
    // Both verify the old hash; the first to finish replaces it with Argon2id, so the
    // second's own replacement finds it changed. That is not a password change: the
    // password still matches what is stored, and the second login must not fail.
    let app = spawn_app_with_one_hash_slot(&[]).await;
    app.register_ok("phoebe").await;
    let (_, django_hash) = DJANGO_HASHES[0];
    app.execute_sql(&format!(
        "UPDATE auth_user SET password = '{django_hash}' WHERE username = 'phoebe'"
    ))
    .await;

    // Both logins queue behind a held hash slot, so both verify the old hash before
    // either replaces it (the slot is first come, first served).
    let held = hold_hash_slot(&app, 1.0).await;
    let logins: Vec<_> = (0..2)
        .map(|_| {
            let (client, url) = (app.client.clone(), app.url("/api/login/"));
            tokio::spawn(async move {
                let body = json!({"username": "phoebe", "password": STRONG_PASSWORD});
                Reply::read(client.post(url).json(&body).send().await.unwrap()).await
            })
        })
        .collect();
    for login in logins {
        let reply = login.await.unwrap();
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    }
    for hold in held {
        assert_eq!(hold.await.unwrap().unwrap().status(), StatusCode::OK);
    }
}

#[tokio::test]
async fn a_bcrypt_hash_of_unbounded_cost_is_a_failed_login_not_hours_of_work() {
    // A stored bcrypt at the highest cost bcrypt takes (2³¹ rounds) would keep a hash
    // thread busy for hours per attempt. It is a hash gatehouse does not read: a prompt
    // 401, well inside the request deadline (a 503 without the bound).
    let app = spawn_app_with(&[("GATEHOUSE_REQUEST_TIMEOUT", "10s")]).await;
    app.register_ok("janice").await;
    app.execute_sql(
        "UPDATE auth_user SET password = \
         'bcrypt_sha256$$2b$31$8vWNi1Me1qTROmlO7NiWje0BvKkw6ZDum13.jvpsgWlARS04A8l6.' \
         WHERE username = 'janice'",
    )
    .await;

    assert_login_failed(&app.login("janice", STRONG_PASSWORD).await);
}

#[tokio::test]
async fn a_stored_hash_its_crate_refuses_to_compute_is_the_one_401_never_an_error() {
    // Django's layouts with costs in bounds that the hashing crates refuse (a short salt,
    // an unknown version, a bcrypt string of the wrong length or version, an scrypt n too
    // large for its r): such a row fails as an unknown name does, with the one 401. (That
    // it is verified against the unknown name's dummy, at its cost, is checked where
    // stored hashes are read: the unit tests of `auth::django_hashers`, which refuse to
    // read these.) An scrypt n·r past 2⁶⁴ once overflowed while the hash was read: a 500.
    let app = spawn_app_with(&[
        ("GATEHOUSE_LOCKOUT_CLIENT_FAILURES", "100"),
        ("GATEHOUSE_LOCKOUT_ACCOUNT_FAILURES", "100"),
    ])
    .await;
    app.register_ok("janice").await;
    let digest = "A".repeat(43);
    let bcrypt = "8vWNi1Me1qTROmlO7NiWje0BvKkw6ZDum13.jvpsgWlARS04A8l6.";
    let scrypt_digest = "A".repeat(86) + "==";
    let stored = [
        format!("scrypt$9223372036854775808$salt$4$1${scrypt_digest}"),
        format!("scrypt$131072$salt$1$1${scrypt_digest}"),
        format!("argon2$argon2id$v=19$m=19456,t=2,p=1$c2FsdA${digest}"),
        format!("argon2$argon2id$v=18$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0c2FsdA${digest}"),
        "argon2$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0c2FsdA".to_owned(),
        format!("bcrypt_sha256$$2b$12${}", &bcrypt[..52]),
        format!("bcrypt$$2c$12${bcrypt}"),
    ];
    let mut failures = Vec::new();
    for hash in &stored {
        app.execute_sql(&format!(
            "UPDATE auth_user SET password = '{hash}' WHERE username = 'janice'"
        ))
        .await;
        let reply = app.login("janice", STRONG_PASSWORD).await;
        if reply.status != StatusCode::UNAUTHORIZED || reply.body != login_failed() {
            failures.push(format!("{hash}: {} {}", reply.status, reply.body));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
    assert_eq!(app.get("/api/health/").await.status, StatusCode::OK);
}

#[tokio::test]
async fn a_django_digest_cut_short_matches_no_password_as_on_django() {
    // PBKDF2 and scrypt compute digests of any length, each the start of a longer one, so
    // a stored digest cut short is the start of the right password's: were it read, it
    // would take the right password, and a one-byte one one wrong password in 256 too.
    // Django compares whole encodings, so such a row matches nothing; here too.
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine;
    let app = spawn_app_with(&[
        ("GATEHOUSE_LOCKOUT_CLIENT_FAILURES", "100"),
        ("GATEHOUSE_LOCKOUT_ACCOUNT_FAILURES", "100"),
    ])
    .await;
    app.register_ok("janice").await;
    let mut failures = Vec::new();
    for (algorithm, hash) in DJANGO_HASHES {
        if !matches!(*algorithm, "pbkdf2_sha256" | "pbkdf2_sha1" | "scrypt") {
            continue;
        }
        let (layout, digest) = hash.rsplit_once('$').unwrap();
        let digest = STANDARD.decode(digest).unwrap();
        for kept in [digest.len() / 2, digest.len() - 1] {
            let short = format!("{layout}${}", STANDARD.encode(&digest[..kept]));
            app.execute_sql(&format!(
                "UPDATE auth_user SET password = '{short}' WHERE username = 'janice'"
            ))
            .await;
            let reply = app.login("janice", STRONG_PASSWORD).await;
            if reply.status != StatusCode::UNAUTHORIZED || reply.body != login_failed() {
                failures.push(format!("{short}: {} {}", reply.status, reply.body));
            }
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

/// `janice`, registered on `app` (one hash slot), whose stored hash is a Django
/// PBKDF2-SHA256 hash of `STRONG_PASSWORD` that takes about half a second to verify (so
/// it is upgraded at her next login). Returns the slot's holds, timed.
async fn janice_with_a_slow_django_hash(app: &TestApp) -> HashSlotHolds {
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine;
    let holds = HashSlotHolds::timed(app).await;
    let iterations = holds.iterations_for(0.5);
    let mut digest = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<sha2::Sha256>(
        STRONG_PASSWORD.as_bytes(),
        b"slowSalt",
        iterations,
        &mut digest,
    );
    app.register_ok("janice").await;
    let hash = format!(
        "pbkdf2_sha256${iterations}$slowSalt${}",
        STANDARD.encode(digest)
    );
    app.execute_sql(&format!(
        "UPDATE auth_user SET password = '{hash}' WHERE username = 'janice'"
    ))
    .await;
    holds
}

/// Logs `janice` in with her password; once her verification has the one hash slot, a
/// hold of it for `seconds` queues behind it, so the upgrade of her hash waits for it.
/// Returns the login's answer once the slot is free again.
async fn login_with_the_upgrade_held_back(
    app: &TestApp,
    holds: &HashSlotHolds,
    seconds: f64,
) -> Reply {
    let login = {
        let (client, url) = (app.client.clone(), app.url("/api/login/"));
        tokio::spawn(async move {
            let body = json!({"username": "janice", "password": STRONG_PASSWORD});
            Reply::read(client.post(url).json(&body).send().await.unwrap()).await
        })
    };
    // The attempt is counted just before its verification takes the free slot.
    wait_until_an_attempt_is_counted(app).await;
    let held = holds.hold_once(app, seconds);
    let reply = login.await.unwrap();
    // (Under a short request deadline the hold is answered 503 while it still hashes.)
    held.await.unwrap().unwrap();
    HashSlotHolds::wait_until_free(app).await;
    reply
}

/// With one failure allowed per client and `cause` configured, `janice`'s login with her
/// right password is answered 503 while the upgrade of her hash waits behind `seconds`
/// of holds. That was no failed guess: her next attempt is checked, not held back.
async fn assert_a_login_cut_short_is_not_counted(cause: (&str, &str), seconds: f64) {
    let app =
        spawn_app_with_one_hash_slot(&[cause, ("GATEHOUSE_LOCKOUT_CLIENT_FAILURES", "1")]).await;
    let holds = janice_with_a_slow_django_hash(&app).await;

    let reply = login_with_the_upgrade_held_back(&app, &holds, seconds).await;
    assert_eq!(
        reply.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        reply.body
    );

    assert_login_failed(&app.login("janice", "a-Wrong-guess-1").await);
}

#[tokio::test]
async fn a_right_password_whose_login_the_server_fails_afterwards_is_not_counted() {
    // The password verified, then the upgrade of its Django hash found the hash pool
    // busy past GATEHOUSE_HASH_WAIT.
    assert_a_login_cut_short_is_not_counted(("GATEHOUSE_HASH_WAIT", "4s"), 10.0).await;
}

#[tokio::test]
async fn a_right_password_whose_login_the_deadline_cuts_short_is_not_counted() {
    // The request deadline ends the login while its upgrade waits: the handler is
    // dropped mid-way, and the attempt is taken back all the same (by a task of its own,
    // long done once the holds are).
    assert_a_login_cut_short_is_not_counted(("GATEHOUSE_REQUEST_TIMEOUT", "5s"), 10.0).await;
}
