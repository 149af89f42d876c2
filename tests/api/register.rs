//! `POST /api/register/` (API.md §3, §4).

use crate::helpers::*;
use futures::future::join_all;
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test]
async fn registering_answers_the_seeds_body_with_201() {
    let app = spawn_app().await;
    let reply = app
        .register("chandler", "chandler@gmail.com", STRONG_PASSWORD)
        .await;
    assert_eq!(reply.status, StatusCode::CREATED);
    assert_eq!(
        reply.body,
        json!({"message": "User registered successfully", "username": "chandler", "email": "chandler@gmail.com"})
    );
    assert_eq!(reply.header("content-type"), Some("application/json"));
}

#[tokio::test]
async fn the_email_domain_is_lower_cased_and_the_local_part_kept() {
    let app = spawn_app().await;
    let reply = app
        .register("monica", "Monica.Geller@GMAIL.com", STRONG_PASSWORD)
        .await;
    assert_eq!(reply.status, StatusCode::CREATED);
    assert_eq!(reply.body["email"], "Monica.Geller@gmail.com");
}

#[tokio::test]
async fn missing_fields_are_all_named_at_once() {
    let app = spawn_app().await;
    let reply = app.post_json("/api/register/", json!({})).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        reply.body,
        json!({
            "username": ["This field is required."],
            "email": ["This field is required."],
            "password": ["This field is required."],
        })
    );
}

#[tokio::test]
async fn every_bad_field_and_every_failed_password_rule_is_reported() {
    let app = spawn_app().await;
    let reply = app.register("bad name", "not-an-email", "12345").await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        reply.body,
        json!({
            "username": ["Enter a valid username. This value may contain only letters, numbers, and @/./+/-/_ characters."],
            "email": ["Enter a valid email address."],
            "password": [
                "This password is too short. It must contain at least 8 characters.",
                "This password is too common.",
                "This password is entirely numeric.",
            ],
        })
    );
}

#[tokio::test]
async fn the_seeds_own_password_is_refused_as_django_would() {
    let app = spawn_app().await;
    let reply = app
        .register("chandler", "chandler@gmail.com", "bing123")
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        reply.body,
        json!({"password": ["This password is too short. It must contain at least 8 characters."]})
    );
}

#[tokio::test]
async fn a_password_like_the_username_or_email_is_refused() {
    let app = spawn_app().await;
    let reply = app
        .register("rachelgreen", "rachel@example.com", "rachelgreen1")
        .await;
    assert_eq!(
        reply.body,
        json!({"password": ["The password is too similar to the username."]})
    );
    // Django 5.2 refuses this one (checked against its validators); "buffayphoebe" it accepts.
    let reply = app
        .register("rg", "phoebe.buffay@example.com", "buffay12345")
        .await;
    assert_eq!(
        reply.body,
        json!({"password": ["The password is too similar to the email address."]})
    );
}

#[tokio::test]
async fn the_minimum_length_follows_configuration() {
    let app = spawn_app_with(&[("PASSWORD_MIN_LENGTH", "12")]).await;
    let reply = app.register("joey", "joey@example.com", "Xq7#pLm2wZ").await;
    assert_eq!(
        reply.body,
        json!({"password": ["This password is too short. It must contain at least 12 characters."]})
    );
}

#[tokio::test]
async fn passwords_are_never_trimmed() {
    let app = spawn_app().await;
    let padded = "  spaced-Out-password  ";
    assert_eq!(
        app.register("ross", "ross@example.com", padded)
            .await
            .status,
        StatusCode::CREATED
    );
    assert_eq!(app.login("ross", padded).await.status, StatusCode::OK);
    assert_eq!(
        app.login("ross", padded.trim()).await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn a_password_over_4096_bytes_is_refused() {
    let app = spawn_app().await;
    let reply = app
        .register("gunther", "gunther@example.com", &"Ab1!".repeat(1025))
        .await;
    assert_eq!(
        reply.body,
        json!({"password": ["Ensure this field has no more than 4096 bytes."]})
    );
}

#[tokio::test]
async fn usernames_and_emails_are_unique_case_insensitively() {
    let app = spawn_app().await;
    app.register_ok("janice").await;
    let reply = app
        .register("JANICE", "JANICE@EXAMPLE.COM", STRONG_PASSWORD)
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        reply.body,
        json!({"username": ["A user with that username already exists."], "email": ["A user with that email already exists."]})
    );
    let reply = app
        .register("janice2", "Janice@example.com", STRONG_PASSWORD)
        .await;
    assert_eq!(
        reply.body,
        json!({"email": ["A user with that email already exists."]})
    );
}

#[tokio::test]
async fn unicode_usernames_are_accepted_and_150_is_the_limit() {
    let app = spawn_app().await;
    assert_eq!(
        app.register("Zoë.ñandú", "zoe@example.com", STRONG_PASSWORD)
            .await
            .status,
        StatusCode::CREATED
    );
    let long = "x".repeat(151);
    let reply = app
        .register(&long, "long@example.com", STRONG_PASSWORD)
        .await;
    assert_eq!(
        reply.body,
        json!({"username": ["Ensure this field has no more than 150 characters."]})
    );
}

#[tokio::test]
async fn wrong_types_are_field_errors_not_crashes() {
    let app = spawn_app().await;
    let reply = app
        .post_json(
            "/api/register/",
            json!({"username": ["a"], "email": null, "password": true}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        reply.body,
        json!({"username": ["Not a valid string."], "email": ["This field may not be null."], "password": ["Not a valid string."]})
    );
}

#[tokio::test]
async fn form_encoded_and_multipart_bodies_are_accepted_as_drf_does() {
    let app = spawn_app().await;
    let form = [
        ("username", "phoebe"),
        ("email", "phoebe@example.com"),
        ("password", STRONG_PASSWORD),
    ];
    let reply = Reply::read(
        app.client
            .post(app.url("/api/register/"))
            .form(&form)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);

    let multipart = reqwest::multipart::Form::new()
        .text("username", "mike")
        .text("email", "mike@example.com")
        .text("password", STRONG_PASSWORD);
    let reply = Reply::read(
        app.client
            .post(app.url("/api/register"))
            .multipart(multipart)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
}

#[tokio::test]
async fn thirty_simultaneous_registrations_of_one_name_give_exactly_one_201() {
    // Past the default 20 registrations an hour per client; the race is the point here.
    let app = spawn_app_with(&[("GATEHOUSE_THROTTLE_REGISTER", "100/hour")]).await;
    let emails: Vec<String> = (0..30).map(|i| format!("racer{i}@example.com")).collect();
    let replies = join_all(
        emails
            .iter()
            .map(|email| app.register("racer", email, STRONG_PASSWORD)),
    )
    .await;
    let created = replies
        .iter()
        .filter(|r| r.status == StatusCode::CREATED)
        .count();
    assert_eq!(created, 1);
    for reply in replies.iter().filter(|r| r.status != StatusCode::CREATED) {
        assert_eq!(reply.status, StatusCode::BAD_REQUEST);
        assert_eq!(
            reply.body,
            json!({"username": ["A user with that username already exists."]})
        );
    }
}

#[tokio::test]
async fn usernames_are_unique_case_insensitively_beyond_ascii_too() {
    let app = spawn_app().await;
    for name in ["Ñandú", "Øy"] {
        let reply = app
            .register(
                name,
                &format!("{}@example.com", name.len()),
                STRONG_PASSWORD,
            )
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    }
    for variant in ["ñandú", "ÑANDÚ", "øY", "ØY"] {
        let reply = app
            .register(
                variant,
                &format!("v{}@example.com", variant.len()),
                STRONG_PASSWORD,
            )
            .await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{variant}");
        assert_eq!(
            reply.body,
            json!({"username": ["A user with that username already exists."]}),
            "{variant}"
        );
    }
    // Login finds the account whatever the case, as it does for ASCII letters.
    assert_eq!(
        app.login("ñANDÚ", STRONG_PASSWORD).await.status,
        StatusCode::OK
    );
    // Renaming another account to a variant is refused as well.
    let (_, access, _) = app.signed_in("plainname").await;
    let rename = json!({"username": "ñANdú", "current_password": STRONG_PASSWORD});
    let reply = app
        .send_auth(
            reqwest::Method::PATCH,
            "/api/users/me/",
            &access,
            Some(rename),
        )
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        reply.body,
        json!({"username": ["A user with that username already exists."]})
    );
}

#[tokio::test]
async fn case_folding_agrees_between_databases_for_the_awkward_letters() {
    let app = spawn_app().await;
    // U+212A KELVIN SIGN folds to an ASCII k, whichever is registered first.
    for (n, (first, second)) in [
        ("\u{212A}xyz", "kxyz"),
        ("kabc", "\u{212A}abc"),
        ("\u{212A}1", "k1"),
    ]
    .into_iter()
    .enumerate()
    {
        let reply = app
            .register(first, &format!("first{n}@example.com"), STRONG_PASSWORD)
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{first}: {}", reply.body);
        let reply = app
            .register(second, &format!("second{n}@example.org"), STRONG_PASSWORD)
            .await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{second} after {first}"
        );
    }
    // Greek sigma folds one letter at a time, as PostgreSQL's lower() does: "ΣΑΣ" and
    // "σασ" collide; "ΣΑΣ2" folds to "σασ2", which is not "σας2".
    assert_eq!(
        app.register("ΣΑΣ", "s1@example.com", STRONG_PASSWORD)
            .await
            .status,
        StatusCode::CREATED
    );
    assert_eq!(
        app.register("σασ", "s2@example.com", STRONG_PASSWORD)
            .await
            .status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        app.register("ΣΑΣ2", "s3@example.com", STRONG_PASSWORD)
            .await
            .status,
        StatusCode::CREATED
    );
    assert_eq!(
        app.register("σας2", "s4@example.com", STRONG_PASSWORD)
            .await
            .status,
        StatusCode::CREATED
    );
}

// Django's `normalize_username` (NFKC), applied when a user is created: a compatibility
// variant of a name is that name.
const TAKEN: &str = "A user with that username already exists.";

#[tokio::test]
async fn a_compatibility_variant_of_a_taken_username_is_taken() {
    let app = spawn_app().await;
    app.register_ok("admin").await;
    // U+FF41 FULLWIDTH LATIN SMALL LETTER A.
    let reply = app
        .register("\u{FF41}dmin", "fullwidth@example.com", STRONG_PASSWORD)
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.body);
    assert_eq!(reply.body, json!({"username": [TAKEN]}));
    // Renaming to it is refused the same way.
    let (_, access, _) = app.signed_in("plainname").await;
    let rename = json!({"username": "\u{FF41}dmin", "current_password": STRONG_PASSWORD});
    let reply = app
        .send_auth(
            reqwest::Method::PATCH,
            "/api/users/me/",
            &access,
            Some(rename),
        )
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.body);
    assert_eq!(reply.body, json!({"username": [TAKEN]}));
}

#[tokio::test]
async fn a_username_is_stored_in_its_nfkc_form() {
    let app = spawn_app().await;
    // U+212A KELVIN SIGN is an ASCII K once normalised.
    let reply = app
        .register("\u{212A}xyz", "kelvin@example.com", STRONG_PASSWORD)
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    assert_eq!(reply.body["username"], "Kxyz");
    let (access, _) = app.login_ok("Kxyz").await;
    assert_eq!(app.me(&access).await.body["username"], "Kxyz");
    // A rename is normalised too (U+FB01 LATIN SMALL LIGATURE FI).
    let rename = json!({"username": "\u{FB01}ne", "current_password": STRONG_PASSWORD});
    let reply = app
        .send_auth(
            reqwest::Method::PATCH,
            "/api/users/me/",
            &access,
            Some(rename),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["username"], "fine");
    assert_eq!(app.me(&access).await.body["username"], "fine");
}

#[tokio::test]
async fn login_matches_a_compatibility_variant_as_it_matches_a_case_variant() {
    let app = spawn_app().await;
    app.register_ok("admin").await;
    for typed in ["\u{FF41}dmin", "\u{FF21}DMIN"] {
        let reply = app.login(typed, STRONG_PASSWORD).await;
        assert_eq!(reply.status, StatusCode::OK, "{typed}: {}", reply.body);
    }
    // A name stored unnormalised (Django's own updates can leave one) is still found by
    // its own spelling first, as Django's login finds it, not taken for `admin`.
    let (id, _, _) = app.signed_in("legacy").await;
    app.execute_sql(&format!(
        "UPDATE auth_user SET username = '\u{FF41}dmin' WHERE id = {id}"
    ))
    .await;
    let (access, _) = app.login_ok("\u{FF41}dmin").await;
    assert_eq!(app.me(&access).await.body["id"], id);
    let (access, _) = app.login_ok("admin").await;
    assert_eq!(app.me(&access).await.body["username"], "admin");
}
