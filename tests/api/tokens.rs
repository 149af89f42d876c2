//! Bearer tokens on protected routes, and the token endpoints: refresh (rotation, reuse
//! detection), verify and logout; tokens minted by SimpleJWT; the events that end
//! sessions (API.md §2, §5, §6).

use crate::helpers::*;
use futures::future::join_all;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::time::Duration;

const WWW_AUTHENTICATE: &str = "Bearer realm=\"api\"";

/// Asserts a 401 with exactly `body` and the scheme header (API.md §2).
#[track_caller]
fn assert_401(reply: &Reply, body: Value) {
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{}", reply.body);
    assert_eq!(reply.body, body);
    assert_eq!(reply.header("www-authenticate"), Some(WWW_AUTHENTICATE));
}

/// Asserts a refusal from a token endpoint where the contract fixes the status and code
/// but not SimpleJWT's wording of the reason: 401 `{"detail": "…", "code": "token_not_valid"}`.
#[track_caller]
fn assert_token_refused(reply: &Reply) {
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{}", reply.body);
    assert_eq!(reply.body["code"], "token_not_valid", "{}", reply.body);
    assert!(reply.body["detail"].is_string(), "{}", reply.body);
    assert_eq!(reply.header("www-authenticate"), Some(WWW_AUTHENTICATE));
}

/// Asserts any 401 with the scheme header.
#[track_caller]
fn assert_unauthorized(reply: &Reply) {
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{}", reply.body);
    assert_eq!(reply.header("www-authenticate"), Some(WWW_AUTHENTICATE));
}

/// SimpleJWT's 401 on a protected route, with `message` as the reason.
fn access_refused_because(message: &str) -> Value {
    json!({
        "detail": "Given token not valid for any token type",
        "code": "token_not_valid",
        "messages": [{"token_class": "AccessToken", "token_type": "access", "message": message}],
    })
}

/// SimpleJWT's answer from the token endpoints for a token that does not decode.
fn invalid_or_expired() -> Value {
    json!({"detail": "Token is invalid or expired", "code": "token_not_valid"})
}

fn b64url(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A token with `{"alg": "none"}` and an empty signature, crafted by hand.
fn unsigned_token(claims: &Value) -> String {
    let header = b64url(br#"{"alg":"none","typ":"JWT"}"#);
    let payload = b64url(claims.to_string().as_bytes());
    format!("{header}.{payload}.")
}

fn sign_with(algorithm: jsonwebtoken::Algorithm, claims: &Value, key: &str) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(algorithm),
        claims,
        &jsonwebtoken::EncodingKey::from_secret(key.as_bytes()),
    )
    .expect("sign")
}

/// `GET /api/users/me/` with a raw `Authorization` header, or none.
async fn me_with_header(app: &TestApp, authorization: Option<&str>) -> Reply {
    let mut request = app.client.get(app.url("/api/users/me/"));
    if let Some(value) = authorization {
        request = request.header("Authorization", value);
    }
    Reply::read(request.send().await.expect("request")).await
}

async fn logout(app: &TestApp, refresh: &str) -> Reply {
    app.post_json("/api/logout/", json!({"refresh": refresh}))
        .await
}

async fn change_password(app: &TestApp, access: &str, new_password: &str) -> Reply {
    app.send_auth(
        Method::POST,
        "/api/change_password/",
        access,
        Some(json!({"old_password": STRONG_PASSWORD, "new_password": new_password})),
    )
    .await
}

async fn delete_account(app: &TestApp, access: &str) -> Reply {
    app.send_auth(Method::DELETE, "/api/delete_account/", access, None)
        .await
}

/// SimpleJWT's answer to `Bearer` followed by anything but exactly one word.
fn bad_authorization_header() -> Value {
    json!({
        "detail": "Authorization header must contain two space-delimited values",
        "code": "bad_authorization_header",
    })
}

fn user_not_found() -> Value {
    json!({"detail": "User not found", "code": "user_not_found"})
}

// ---------------------------------------------------------------------------------------
// The Authorization header on a protected route
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn a_live_access_token_signs_the_request_in() {
    let app = spawn_app().await;
    let (id, access, _) = app.signed_in("chandler").await;

    let reply = app.me(&access).await;

    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["id"], id);
    assert_eq!(reply.body["username"], "chandler");
}

#[tokio::test]
async fn no_authorization_header_means_credentials_were_not_provided() {
    let app = spawn_app().await;

    let reply = me_with_header(&app, None).await;

    assert_401(
        &reply,
        json!({"detail": "Authentication credentials were not provided."}),
    );
}

#[tokio::test]
async fn another_scheme_means_credentials_were_not_provided() {
    // SimpleJWT ignores a header whose first word is not one of AUTH_HEADER_TYPES.
    let app = spawn_app().await;
    let (_, access, _) = app.signed_in("chandler").await;

    for header in [
        "Basic Y2hhbmRsZXI6cGFzc3dvcmQ=".to_owned(),
        format!("JWT {access}"),
        format!("bearer {access}"),
    ] {
        let reply = me_with_header(&app, Some(&header)).await;
        assert_401(
            &reply,
            json!({"detail": "Authentication credentials were not provided."}),
        );
    }
}

#[tokio::test]
async fn bearer_without_exactly_one_token_is_a_bad_authorization_header() {
    let app = spawn_app().await;
    let (_, access, _) = app.signed_in("chandler").await;

    for header in ["Bearer".to_owned(), format!("Bearer {access} extra")] {
        let reply = me_with_header(&app, Some(&header)).await;
        assert_401(&reply, bad_authorization_header());
    }
}

#[tokio::test]
async fn the_bearer_header_is_split_on_whitespace_as_drf_splits_it() {
    // DRF reads the header with `bytes.split()`: any run of ASCII whitespace separates,
    // and what matters is that exactly two words come out.
    let app = spawn_app().await;
    let (id, access, _) = app.signed_in("chandler").await;

    for header in [
        format!("Bearer {access}"),
        format!("Bearer  {access}"),
        format!("Bearer\t{access}"),
        format!("Bearer \t {access}"),
    ] {
        let reply = me_with_header(&app, Some(&header)).await;
        assert_eq!(reply.status, StatusCode::OK, "{header:?}: {}", reply.body);
        assert_eq!(reply.body["id"], id);
    }
    // (Whitespace at either end of a header value never reaches the server: HTTP's
    // parser trims it.)
    for header in [
        format!("Bearer {access}\textra"),
        format!("Bearer {access}  extra"),
    ] {
        let reply = me_with_header(&app, Some(&header)).await;
        assert_401(&reply, bad_authorization_header());
    }
}

#[tokio::test]
async fn bytes_beyond_ascii_in_the_bearer_header_are_read_as_simplejwt_reads_them() {
    // SimpleJWT splits the header's bytes: a token with a byte beyond ASCII (Latin-1 é,
    // or é in UTF-8) is a token that is not valid; such a byte in the first word makes
    // it another scheme.
    let app = spawn_app().await;
    let (_, access, _) = app.signed_in("chandler").await;
    let me_with_bytes = |value: Vec<u8>| {
        let request = app.client.get(app.url("/api/users/me/")).header(
            "Authorization",
            reqwest::header::HeaderValue::from_bytes(&value).unwrap(),
        );
        async move { Reply::read(request.send().await.unwrap()).await }
    };

    for tail in [&[0xe9_u8][..], "é".as_bytes()] {
        let mut value = format!("Bearer {access}").into_bytes();
        value.extend_from_slice(tail);
        assert_401(&me_with_bytes(value).await, access_token_not_valid());
    }
    let mut value = b"Bearer\xe9 ".to_vec();
    value.extend_from_slice(access.as_bytes());
    assert_401(
        &me_with_bytes(value).await,
        json!({"detail": "Authentication credentials were not provided."}),
    );
}

#[tokio::test]
async fn a_refresh_token_used_as_an_access_token_has_the_wrong_type() {
    let app = spawn_app().await;
    let (_, _, refresh) = app.signed_in("chandler").await;

    let reply = app.me(&refresh).await;

    assert_401(&reply, access_refused_because("Token has wrong type"));
}

#[tokio::test]
async fn garbage_in_the_bearer_header_is_not_a_valid_token() {
    let app = spawn_app().await;
    app.signed_in("chandler").await;

    for garbage in ["garbage", "a.b.c", "eyJhbGciOiJIUzI1NiJ9.e30.xx"] {
        let reply = app.me(garbage).await;
        assert_401(&reply, access_token_not_valid());
    }
}

#[tokio::test]
async fn an_unsigned_alg_none_token_is_refused() {
    let app = spawn_app().await;
    let (_, access, _) = app.signed_in("chandler").await;
    // The very claims of a live token, with the signature taken off.
    let forged = unsigned_token(&claims_of(&access));

    let reply = app.me(&forged).await;

    assert_401(&reply, access_token_not_valid());
    assert_eq!(app.verify(&forged).await.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn an_alg_none_token_in_simplejwts_layout_is_refused() {
    let app = spawn_app().await;
    let (id, _, _) = app.signed_in("chandler").await;
    let forged = unsigned_token(&json!({
        "token_type": "access",
        "exp": now() + 300,
        "iat": now(),
        "jti": gatehouse::auth::random_hex_id(),
        "user_id": id.to_string(),
    }));

    assert_401(&app.me(&forged).await, access_token_not_valid());
}

#[tokio::test]
async fn an_hs256_token_signed_with_another_key_is_refused() {
    let app = spawn_app().await;
    let (_, access, _) = app.signed_in("chandler").await;
    let forged = sign(&claims_of(&access), "another-secret-key-0123456789abcdef");

    assert_401(&app.me(&forged).await, access_token_not_valid());
    assert_401(&app.verify(&forged).await, invalid_or_expired());
}

#[tokio::test]
async fn a_token_signed_with_the_right_key_but_another_algorithm_is_refused() {
    let app = spawn_app().await;
    let (_, access, refresh) = app.signed_in("chandler").await;

    for algorithm in [
        jsonwebtoken::Algorithm::HS512,
        jsonwebtoken::Algorithm::HS384,
    ] {
        let forged = sign_with(algorithm, &claims_of(&access), SECRET_KEY);
        assert_401(&app.me(&forged).await, access_token_not_valid());
        assert_401(&app.verify(&forged).await, invalid_or_expired());
        let forged_refresh = sign_with(algorithm, &claims_of(&refresh), SECRET_KEY);
        assert_401(&app.refresh(&forged_refresh).await, invalid_or_expired());
    }
}

#[tokio::test]
async fn a_token_whose_claims_were_edited_after_signing_is_refused() {
    let app = spawn_app().await;
    let (id, access, _) = app.signed_in("chandler").await;
    app.register_ok("janice").await;
    // Swap the payload for one naming another user, keeping the original signature.
    let mut claims = claims_of(&access);
    claims["user_id"] = json!((id + 1).to_string());
    let parts: Vec<&str> = access.split('.').collect();
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        b64url(claims.to_string().as_bytes()),
        parts[2]
    );

    assert_401(&app.me(&forged).await, access_token_not_valid());
}

#[tokio::test]
async fn an_expired_access_token_is_refused() {
    let app = spawn_app().await;
    let (_, access, _) = app.signed_in("chandler").await;
    // The claims of a live token of a live session, re-signed with the right key, with
    // only the expiry moved into the past.
    let mut claims = claims_of(&access);
    claims["iat"] = json!(now() - 310);
    claims["exp"] = json!(now() - 10);
    let expired = sign(&claims, SECRET_KEY);

    assert_401(&app.me(&expired).await, access_token_not_valid());
    assert_401(&app.verify(&expired).await, invalid_or_expired());
    // The live token of the same session still works: only expiry was at stake.
    assert_eq!(app.me(&access).await.status, StatusCode::OK);
}

#[tokio::test]
async fn an_access_token_dies_when_its_configured_lifetime_runs_out() {
    let app = spawn_app_with(&[("ACCESS_TOKEN_LIFETIME", "1s")]).await;
    let (_, access, refresh) = app.signed_in("chandler").await;
    assert_eq!(app.me(&access).await.status, StatusCode::OK);

    tokio::time::sleep(Duration::from_millis(2100)).await;

    assert_401(&app.me(&access).await, access_token_not_valid());
    assert_401(&app.verify(&access).await, invalid_or_expired());
    // The refresh token lives on (1 day) and gets a fresh access token.
    let renewed = app.refresh(&refresh).await;
    assert_eq!(renewed.status, StatusCode::OK, "{}", renewed.body);
    assert_eq!(app.me(&renewed.str("access")).await.status, StatusCode::OK);
}

#[tokio::test]
async fn an_expired_refresh_token_cannot_be_exchanged() {
    let app = spawn_app().await;
    let (_, _, refresh) = app.signed_in("chandler").await;
    let mut claims = claims_of(&refresh);
    claims["iat"] = json!(now() - 86_410);
    claims["exp"] = json!(now() - 10);
    let expired = sign(&claims, SECRET_KEY);

    assert_401(&app.refresh(&expired).await, invalid_or_expired());
}

#[tokio::test]
async fn the_token_of_a_deleted_user_is_refused_as_user_not_found() {
    let app = spawn_app().await;
    let (_, access, _) = app.signed_in("chandler").await;

    let deleted = delete_account(&app, &access).await;
    assert_eq!(deleted.status, StatusCode::OK, "{}", deleted.body);
    assert_eq!(
        deleted.body,
        json!({"message": "Account deleted successfully"})
    );

    assert_401(&app.me(&access).await, user_not_found());
}

#[tokio::test]
async fn the_token_of_an_inactive_user_is_refused_as_user_inactive() {
    let app = spawn_app().await;
    let (_, access, refresh) = app.signed_in("chandler").await;

    app.execute_sql("UPDATE auth_user SET is_active = FALSE WHERE username = 'chandler'")
        .await;

    assert_401(
        &app.me(&access).await,
        json!({"detail": "User is inactive", "code": "user_inactive"}),
    );
    assert_unauthorized(&app.refresh(&refresh).await);
}

#[tokio::test]
async fn a_change_written_to_the_database_directly_reaches_the_next_request() {
    // On SQLite a repeated access check is answered from memory until something is
    // committed (store/wal_index.rs): a commit on a connection outside gatehouse's store,
    // as Django's would be, must end that too, on every connection of the server's (one per
    // core) that answered before. (The CLI's changepassword test does it from another
    // process.)
    let app = spawn_app().await;
    let (_, access, _) = app.signed_in("chandler").await;
    for _ in 0..64 {
        assert_eq!(app.me(&access).await.body["first_name"], "");
    }

    app.execute_sql("UPDATE auth_user SET first_name = 'Chandler' WHERE username = 'chandler'")
        .await;
    for _ in 0..64 {
        assert_eq!(app.me(&access).await.body["first_name"], "Chandler");
    }

    app.execute_sql("UPDATE auth_user SET is_active = FALSE WHERE username = 'chandler'")
        .await;
    for _ in 0..64 {
        assert_401(
            &app.me(&access).await,
            json!({"detail": "User is inactive", "code": "user_inactive"}),
        );
    }
}

#[tokio::test]
async fn after_logout_the_sessions_access_token_is_refused_at_once() {
    let app = spawn_app().await;
    let (_, access, refresh) = app.signed_in("chandler").await;
    assert_eq!(app.me(&access).await.status, StatusCode::OK);

    assert_eq!(logout(&app, &refresh).await.status, StatusCode::OK);

    assert_401(&app.me(&access).await, access_token_not_valid());
}

// ---------------------------------------------------------------------------------------
// POST /api/token/refresh/
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn refreshing_rotates_the_pair_within_the_same_session() {
    let app = spawn_app().await;
    let (id, access, refresh) = app.signed_in("chandler").await;

    let reply = app.refresh(&refresh).await;

    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let object = reply.body.as_object().expect("object");
    let mut keys: Vec<&String> = object.keys().collect();
    keys.sort();
    assert_eq!(keys, ["access", "refresh"]);
    let (new_access, new_refresh) = (reply.str("access"), reply.str("refresh"));
    assert_ne!(new_access, access);
    assert_ne!(new_refresh, refresh);
    let (a, r) = (claims_of(&new_access), claims_of(&new_refresh));
    assert_eq!(a["token_type"], "access");
    assert_eq!(r["token_type"], "refresh");
    for claims in [&a, &r] {
        assert_eq!(claims["user_id"], json!(id.to_string()));
        assert_eq!(claims["sid"], claims_of(&refresh)["sid"], "same session");
    }
    assert_ne!(r["jti"], claims_of(&refresh)["jti"]);
    assert_eq!(a["exp"].as_i64().unwrap() - a["iat"].as_i64().unwrap(), 300);
    assert_eq!(
        r["exp"].as_i64().unwrap() - r["iat"].as_i64().unwrap(),
        86_400
    );
    assert_eq!(app.me(&new_access).await.status, StatusCode::OK);
    // The new refresh token is the one that may be spent next.
    assert_eq!(app.refresh(&new_refresh).await.status, StatusCode::OK);
}

#[tokio::test]
async fn a_spent_refresh_token_presented_again_ends_the_whole_session_only() {
    let app = spawn_app().await;
    let (_, _, first_refresh) = app.signed_in("chandler").await;
    let (other_access, other_refresh) = app.login_ok("chandler").await;
    let rotated = app.refresh(&first_refresh).await;
    assert_eq!(rotated.status, StatusCode::OK, "{}", rotated.body);
    let (newest_access, newest_refresh) = (rotated.str("access"), rotated.str("refresh"));
    assert_eq!(app.me(&newest_access).await.status, StatusCode::OK);

    // Reuse: someone replays the spent token (a thief, or the client after the thief).
    let reuse = app.refresh(&first_refresh).await;

    assert_token_refused(&reuse);
    // The whole session is over: its newest access and refresh tokens are dead too.
    assert_401(&app.me(&newest_access).await, access_token_not_valid());
    assert_token_refused(&app.refresh(&newest_refresh).await);
    assert_token_refused(&app.verify(&newest_access).await);
    assert_token_refused(&app.verify(&newest_refresh).await);
    // Another session of the same user is untouched.
    assert_eq!(app.me(&other_access).await.status, StatusCode::OK);
    let other = app.refresh(&other_refresh).await;
    assert_eq!(other.status, StatusCode::OK, "{}", other.body);
    assert_eq!(app.me(&other.str("access")).await.status, StatusCode::OK);
}

#[tokio::test]
async fn twenty_simultaneous_refreshes_of_one_token_give_at_most_one_pair_and_no_5xx() {
    let app = spawn_app().await;
    let (_, _, refresh) = app.signed_in("chandler").await;

    let replies = join_all((0..20).map(|_| app.refresh(&refresh))).await;

    let ok = replies
        .iter()
        .filter(|r| r.status == StatusCode::OK)
        .count();
    let server_errors: Vec<_> = replies
        .iter()
        .filter(|r| r.status.is_server_error())
        .map(|r| (r.status, r.body.clone()))
        .collect();
    assert!(server_errors.is_empty(), "{server_errors:?}");
    assert!(ok <= 1, "{ok} refreshes of one token succeeded");
    for reply in replies.iter().filter(|r| r.status != StatusCode::OK) {
        assert_token_refused(reply);
    }
}

#[tokio::test]
async fn refreshing_with_garbage_is_invalid_or_expired() {
    let app = spawn_app().await;

    for garbage in ["garbage", "a.b.c", ""] {
        let reply = app.refresh(garbage).await;
        if garbage.is_empty() {
            assert_eq!(reply.status, StatusCode::BAD_REQUEST);
            assert_eq!(
                reply.body,
                json!({"refresh": ["This field may not be blank."]})
            );
        } else {
            assert_401(&reply, invalid_or_expired());
        }
    }
}

#[tokio::test]
async fn refreshing_without_the_field_is_a_400_naming_it() {
    let app = spawn_app().await;

    let reply = app.post_json("/api/token/refresh/", json!({})).await;

    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.body, json!({"refresh": ["This field is required."]}));
}

#[tokio::test]
async fn refreshing_with_an_access_token_is_refused_as_the_wrong_type() {
    let app = spawn_app().await;
    let (_, access, refresh) = app.signed_in("chandler").await;

    let reply = app.refresh(&access).await;

    assert_401(
        &reply,
        json!({"detail": "Token has wrong type", "code": "token_not_valid"}),
    );
    // Nothing was spent: the session's refresh token still works.
    assert_eq!(app.refresh(&refresh).await.status, StatusCode::OK);
}

#[tokio::test]
async fn refresh_accepts_a_form_encoded_body() {
    let app = spawn_app().await;
    let (_, _, refresh) = app.signed_in("chandler").await;

    let response = app
        .client
        .post(app.url("/api/token/refresh/"))
        .form(&[("refresh", refresh.as_str())])
        .send()
        .await
        .expect("request");
    let reply = Reply::read(response).await;

    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(app.me(&reply.str("access")).await.status, StatusCode::OK);
}

// ---------------------------------------------------------------------------------------
// POST /api/token/verify/
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn verify_answers_an_empty_object_for_live_access_and_refresh_tokens() {
    let app = spawn_app().await;
    let (_, access, refresh) = app.signed_in("chandler").await;

    for token in [&access, &refresh] {
        let reply = app.verify(token).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        assert_eq!(reply.body, json!({}));
    }
}

#[tokio::test]
async fn verifying_does_not_spend_a_refresh_token() {
    let app = spawn_app().await;
    let (_, _, refresh) = app.signed_in("chandler").await;

    assert_eq!(app.verify(&refresh).await.status, StatusCode::OK);
    assert_eq!(app.verify(&refresh).await.status, StatusCode::OK);

    assert_eq!(app.refresh(&refresh).await.status, StatusCode::OK);
}

#[tokio::test]
async fn verify_refuses_a_spent_refresh_token() {
    let app = spawn_app().await;
    let (_, _, refresh) = app.signed_in("chandler").await;
    assert_eq!(app.refresh(&refresh).await.status, StatusCode::OK);

    assert_token_refused(&app.verify(&refresh).await);
}

#[tokio::test]
async fn verify_refuses_both_tokens_of_an_ended_session() {
    let app = spawn_app().await;
    let (_, access, refresh) = app.signed_in("chandler").await;
    assert_eq!(logout(&app, &refresh).await.status, StatusCode::OK);

    assert_token_refused(&app.verify(&access).await);
    assert_token_refused(&app.verify(&refresh).await);
}

#[tokio::test]
async fn verify_refuses_garbage_as_invalid_or_expired() {
    let app = spawn_app().await;

    let reply = app.verify("garbage").await;

    assert_401(&reply, invalid_or_expired());
}

#[tokio::test]
async fn verify_without_the_field_is_a_400_naming_it() {
    let app = spawn_app().await;

    let reply = app.post_json("/api/token/verify/", json!({})).await;

    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.body, json!({"token": ["This field is required."]}));
}

// ---------------------------------------------------------------------------------------
// POST /api/logout/
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn logout_needs_only_the_refresh_token_and_ends_the_session() {
    let app = spawn_app().await;
    let (_, access, refresh) = app.signed_in("chandler").await;

    // No Authorization header at all: the refresh token is the credential.
    let reply = logout(&app, &refresh).await;

    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body, json!({"message": "Logged out"}));
    assert_401(&app.me(&access).await, access_token_not_valid());
    assert_token_refused(&app.refresh(&refresh).await);
}

#[tokio::test]
async fn logging_out_twice_is_refused_the_second_time() {
    let app = spawn_app().await;
    let (_, _, refresh) = app.signed_in("chandler").await;
    assert_eq!(logout(&app, &refresh).await.status, StatusCode::OK);

    let again = logout(&app, &refresh).await;

    assert_token_refused(&again);
}

#[tokio::test]
async fn logout_ends_only_its_own_session() {
    let app = spawn_app().await;
    let (_, _, refresh) = app.signed_in("chandler").await;
    let (other_access, other_refresh) = app.login_ok("chandler").await;

    assert_eq!(logout(&app, &refresh).await.status, StatusCode::OK);

    assert_eq!(app.me(&other_access).await.status, StatusCode::OK);
    assert_eq!(app.refresh(&other_refresh).await.status, StatusCode::OK);
}

#[tokio::test]
async fn logout_without_the_field_is_a_400_naming_it() {
    let app = spawn_app().await;

    let reply = app.post_json("/api/logout/", json!({})).await;

    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.body, json!({"refresh": ["This field is required."]}));
}

#[tokio::test]
async fn logout_with_garbage_or_an_access_token_is_refused() {
    let app = spawn_app().await;
    let (_, access, refresh) = app.signed_in("chandler").await;

    assert_401(&logout(&app, "garbage").await, invalid_or_expired());
    assert_401(
        &logout(&app, &access).await,
        json!({"detail": "Token has wrong type", "code": "token_not_valid"}),
    );
    // Neither attempt touched the session.
    assert_eq!(app.me(&access).await.status, StatusCode::OK);
    assert_eq!(logout(&app, &refresh).await.status, StatusCode::OK);
}

// ---------------------------------------------------------------------------------------
// Tokens minted by SimpleJWT (no `sid`)
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn a_simplejwt_access_token_for_an_existing_user_is_accepted() {
    let app = spawn_app().await;
    let (id, _, _) = app.signed_in("chandler").await;
    let token = simplejwt_token("access", id, now(), now() + 300);

    let reply = app.me(&token).await;

    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["username"], "chandler");
    assert_eq!(app.verify(&token).await.body, json!({}));
}

#[tokio::test]
async fn a_simplejwt_access_token_with_a_numeric_user_id_is_accepted_as_older_versions_write_it() {
    let app = spawn_app().await;
    let (id, _, _) = app.signed_in("chandler").await;
    let token = sign(
        &json!({
            "token_type": "access",
            "exp": now() + 300,
            "iat": now(),
            "jti": gatehouse::auth::random_hex_id(),
            "user_id": id,
        }),
        SECRET_KEY,
    );

    let reply = app.me(&token).await;

    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["id"], id);
}

#[tokio::test]
async fn the_token_in_the_seeds_layout_signed_with_another_key_is_refused() {
    // tests/vectors: a token minted by PyJWT for SimpleJWT with key "django-insecure-test".
    let app = spawn_app().await;
    app.signed_in("chandler").await;
    let token = include_str!("../vectors/simplejwt_access.jwt").trim();

    assert_401(&app.me(token).await, access_token_not_valid());
}

#[tokio::test]
async fn a_simplejwt_token_for_a_user_that_does_not_exist_is_user_not_found() {
    let app = spawn_app().await;
    let (id, _, _) = app.signed_in("chandler").await;
    let token = simplejwt_token("access", id + 1000, now(), now() + 300);

    assert_401(&app.me(&token).await, user_not_found());
    assert_token_refused(&app.verify(&token).await);
}

#[tokio::test]
async fn an_expired_simplejwt_access_token_is_refused() {
    let app = spawn_app().await;
    let (id, _, _) = app.signed_in("chandler").await;
    let token = simplejwt_token("access", id, now() - 400, now() - 100);

    assert_401(&app.me(&token).await, access_token_not_valid());
}

#[tokio::test]
async fn a_simplejwt_refresh_token_is_refused_as_an_access_token() {
    let app = spawn_app().await;
    let (id, _, _) = app.signed_in("chandler").await;
    let token = simplejwt_token("refresh", id, now(), now() + 86_400);

    assert_401(
        &app.me(&token).await,
        access_refused_because("Token has wrong type"),
    );
}

#[tokio::test]
async fn a_simplejwt_refresh_token_is_exchanged_once_for_a_gatehouse_session() {
    let app = spawn_app().await;
    let (id, _, _) = app.signed_in("chandler").await;
    let token = simplejwt_token("refresh", id, now(), now() + 86_400);

    let reply = app.refresh(&token).await;

    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let (access, refresh) = (reply.str("access"), reply.str("refresh"));
    let (a, r) = (claims_of(&access), claims_of(&refresh));
    assert!(a["sid"].as_str().is_some_and(|s| !s.is_empty()), "{a}");
    assert_eq!(a["sid"], r["sid"]);
    assert_eq!(a["user_id"], json!(id.to_string()));
    assert_eq!(app.me(&access).await.status, StatusCode::OK);
    assert_eq!(app.refresh(&refresh).await.status, StatusCode::OK);

    // The same SimpleJWT refresh token cannot be exchanged a second time.
    assert_token_refused(&app.refresh(&token).await);
}

#[tokio::test]
async fn a_password_change_committing_while_a_simplejwt_token_is_exchanged_wins() {
    // The exchange checks the cut-off, then waits for the user's row, which a password
    // change has locked (one held open here by hand, as another instance's would be).
    // Once the change commits, the exchange must see its cut-off and start no session.
    let app = spawn_app().await;
    let (id, _, _) = app.signed_in("chandler").await;
    let token = simplejwt_token("refresh", id, now() - 5, now() + 86_400);
    with_test_database!(&app.database_url, |conn| {
        let mut change = conn.begin().await.expect("begin");
        sqlx::query("UPDATE auth_user SET password = '!changed' WHERE id = $1")
            .bind(id)
            .execute(&mut *change)
            .await
            .expect("password");
        sqlx::query(
            "INSERT INTO gatehouse_user_state (user_id, tokens_valid_after) VALUES ($1, $2) \
             ON CONFLICT (user_id) DO UPDATE SET tokens_valid_after = excluded.tokens_valid_after",
        )
        .bind(id)
        .bind(now())
        .execute(&mut *change)
        .await
        .expect("cut-off");

        let exchange = {
            let (client, url) = (app.client.clone(), app.url("/api/token/refresh/"));
            tokio::spawn(async move {
                let body = json!({"refresh": token});
                Reply::read(client.post(url).json(&body).send().await.unwrap()).await
            })
        };
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(
            !exchange.is_finished(),
            "the exchange did not wait for the change"
        );
        change.commit().await.expect("commit");
        assert_token_refused(&exchange.await.unwrap());
    });
}

#[tokio::test]
async fn simultaneous_exchanges_of_one_simplejwt_refresh_token_give_at_most_one_pair() {
    let app = spawn_app().await;
    let (id, _, _) = app.signed_in("chandler").await;
    let token = simplejwt_token("refresh", id, now(), now() + 86_400);

    let replies = join_all((0..20).map(|_| app.refresh(&token))).await;

    let ok = replies
        .iter()
        .filter(|r| r.status == StatusCode::OK)
        .count();
    assert!(
        replies.iter().all(|r| !r.status.is_server_error()),
        "{:?}",
        replies
            .iter()
            .map(|r| (r.status, r.body.clone()))
            .collect::<Vec<_>>()
    );
    assert_eq!(
        ok, 1,
        "{ok} exchanges of one SimpleJWT refresh token succeeded"
    );
}

#[tokio::test]
async fn logging_out_with_a_simplejwt_refresh_token_spends_it() {
    let app = spawn_app().await;
    let (id, _, _) = app.signed_in("chandler").await;
    let token = simplejwt_token("refresh", id, now(), now() + 86_400);

    let reply = logout(&app, &token).await;

    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body, json!({"message": "Logged out"}));
    assert_token_refused(&app.refresh(&token).await);
}

// ---------------------------------------------------------------------------------------
// Events that end sessions: change of password, deletion of the account
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn changing_the_password_ends_every_other_session_and_older_simplejwt_tokens() {
    let app = spawn_app().await;
    let (id, access, refresh) = app.signed_in("chandler").await;
    let (other_access, other_refresh) = app.login_ok("chandler").await;
    let simplejwt_access = simplejwt_token("access", id, now() - 5, now() + 300);
    let simplejwt_refresh = simplejwt_token("refresh", id, now() - 5, now() + 86_400);
    assert_eq!(app.me(&simplejwt_access).await.status, StatusCode::OK);

    let reply = change_password(&app, &access, "a-Brand-new-password-9").await;

    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(
        reply.body,
        json!({"message": "Password changed successfully"})
    );
    // Issued before the change: refused.
    assert_401(&app.me(&simplejwt_access).await, access_token_not_valid());
    assert_token_refused(&app.verify(&simplejwt_access).await);
    assert_token_refused(&app.refresh(&simplejwt_refresh).await);
    // Every other gatehouse session is over.
    assert_401(&app.me(&other_access).await, access_token_not_valid());
    assert_token_refused(&app.refresh(&other_refresh).await);
    // The session that made the change carries on.
    assert_eq!(app.me(&access).await.status, StatusCode::OK);
    let renewed = app.refresh(&refresh).await;
    assert_eq!(renewed.status, StatusCode::OK, "{}", renewed.body);
    assert_eq!(app.me(&renewed.str("access")).await.status, StatusCode::OK);
    // And the new password signs in.
    assert_eq!(
        app.login("chandler", "a-Brand-new-password-9").await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_simplejwt_token_issued_after_a_password_change_is_accepted() {
    let app = spawn_app().await;
    let (id, access, _) = app.signed_in("chandler").await;
    let reply = change_password(&app, &access, "a-Brand-new-password-9").await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);

    // SimpleJWT's `iat` has whole seconds: a token of the next second is after the cut-off.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let token = simplejwt_token("access", id, now(), now() + 300);

    assert_eq!(app.me(&token).await.status, StatusCode::OK);
}

#[tokio::test]
async fn deleting_the_account_ends_every_token_of_the_user() {
    let app = spawn_app().await;
    let (id, access, refresh) = app.signed_in("chandler").await;
    let (other_access, other_refresh) = app.login_ok("chandler").await;
    let simplejwt_access = simplejwt_token("access", id, now(), now() + 300);
    let simplejwt_refresh = simplejwt_token("refresh", id, now(), now() + 86_400);

    let reply = delete_account(&app, &access).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(
        reply.body,
        json!({"message": "Account deleted successfully"})
    );

    for token in [&access, &other_access, &simplejwt_access] {
        assert_401(&app.me(token).await, user_not_found());
        assert_unauthorized(&app.verify(token).await);
    }
    for token in [&refresh, &other_refresh, &simplejwt_refresh] {
        assert_unauthorized(&app.refresh(token).await);
        assert_unauthorized(&app.verify(token).await);
    }
}

#[tokio::test]
async fn a_deleted_users_tokens_do_not_pass_to_a_user_registered_afterwards() {
    // Ids are never reused (AUTOINCREMENT / identity), so a SimpleJWT token naming the
    // deleted user's id cannot sign in as the next user to register.
    let app = spawn_app().await;
    let (id, access, _) = app.signed_in("chandler").await;
    let simplejwt_access = simplejwt_token("access", id, now(), now() + 300);
    assert_eq!(delete_account(&app, &access).await.status, StatusCode::OK);

    let (new_id, _, _) = app.signed_in("janice").await;

    assert_ne!(new_id, id);
    assert_401(&app.me(&simplejwt_access).await, user_not_found());
}

#[tokio::test]
async fn deleting_through_users_me_ends_the_tokens_too() {
    let app = spawn_app().await;
    let (_, access, refresh) = app.signed_in("chandler").await;

    let reply = app
        .send_auth(Method::DELETE, "/api/users/me/", &access, None)
        .await;

    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    assert_401(&app.me(&access).await, user_not_found());
    assert_unauthorized(&app.refresh(&refresh).await);
}
