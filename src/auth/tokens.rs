//! SimpleJWT-compatible tokens (API.md §5): HS256 JWTs whose claims are SimpleJWT's
//! (`token_type`, `exp`, `iat`, `jti`, `user_id` as a string) plus gatehouse's `sid`,
//! the session the token belongs to.
//!
//! Only signature, algorithm, expiry and type are checked here; whether the session and
//! the user are still live is a database question answered by `store/`.

use crate::domain::UserId;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer, Serialize};
use std::time::Duration;

/// A session's id as it travels in the `sid` claim: 32 hex characters.
pub type SessionId = String;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenType {
    Access,
    Refresh,
}

/// Why a token was refused. All of them answer 401 `token_not_valid`; the difference
/// only picks SimpleJWT's message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("Token is invalid or expired")]
    Invalid,
    #[error("Token has wrong type")]
    WrongType,
}

impl TokenError {
    /// SimpleJWT's words for it, as they go on the wire.
    pub fn message(self) -> &'static str {
        match self {
            TokenError::Invalid => "Token is invalid or expired",
            TokenError::WrongType => "Token has wrong type",
        }
    }
}

/// The claims of a token that passed signature, algorithm and expiry checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    pub token_type: TokenType,
    pub user_id: UserId,
    pub jti: String,
    pub iat: i64,
    pub exp: i64,
    /// Absent on tokens minted by SimpleJWT.
    pub sid: Option<SessionId>,
}

/// A freshly issued access + refresh pair, as login and refresh answer it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TokenPair {
    /// Goes in `Authorization: Bearer …`; lives `ACCESS_TOKEN_LIFETIME`.
    pub access: String,
    /// Exchanged at `/api/token/refresh/` (once) or ended at `/api/logout/`.
    pub refresh: String,
}

/// The claims as they are on the wire.
#[derive(Serialize, Deserialize)]
struct WireClaims {
    token_type: TokenType,
    exp: i64,
    #[serde(default)]
    iat: i64,
    jti: String,
    #[serde(deserialize_with = "user_id_from_string_or_number")]
    user_id: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sid: Option<String>,
    /// Never written; read only to refuse a token that names an audience, as
    /// jsonwebtoken and PyJWT do when none is expected.
    #[serde(default, skip_serializing)]
    aud: Option<serde::de::IgnoredAny>,
}

/// The one header field a check needs.
#[derive(Deserialize)]
struct WireHeader {
    alg: String,
}

/// SimpleJWT ≥ 5.4 writes `user_id` as a string ("6"); older versions as a number.
fn user_id_from_string_or_number<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either {
        Text(String),
        Number(i64),
    }
    match Either::deserialize(d)? {
        Either::Number(n) => Ok(n),
        Either::Text(s) => s.parse().map_err(serde::de::Error::custom),
    }
}

/// The signing key and lifetimes; built once at start-up and shared.
pub struct TokenKeys {
    encoding: EncodingKey,
    /// HMAC-SHA-256 keyed with the secret, cloned for each check (`verify`).
    verifier: Hmac<sha2::Sha256>,
    access_lifetime: Duration,
    refresh_lifetime: Duration,
}

impl TokenKeys {
    pub fn new(
        secret: &SecretString,
        access_lifetime: Duration,
        refresh_lifetime: Duration,
    ) -> Self {
        let key = secret.expose_secret().as_bytes();
        Self {
            encoding: EncodingKey::from_secret(key),
            verifier: Hmac::new_from_slice(key).expect("HMAC takes a key of any length"),
            access_lifetime,
            refresh_lifetime,
        }
    }

    pub fn refresh_lifetime(&self) -> Duration {
        self.refresh_lifetime
    }

    /// Issues an access and a refresh token for `sid`; returns the pair and the refresh
    /// token's `jti`, which the session records as the one that may be spent next.
    pub fn issue_pair(&self, user_id: UserId, sid: &str) -> (TokenPair, String) {
        let now = chrono::Utc::now().timestamp();
        let refresh_jti = super::random_hex_id();
        let access = self.sign(
            TokenType::Access,
            user_id,
            sid,
            super::random_hex_id(),
            now,
            self.access_lifetime,
        );
        let refresh = self.sign(
            TokenType::Refresh,
            user_id,
            sid,
            refresh_jti.clone(),
            now,
            self.refresh_lifetime,
        );
        (TokenPair { access, refresh }, refresh_jti)
    }

    fn sign(
        &self,
        token_type: TokenType,
        user_id: UserId,
        sid: &str,
        jti: String,
        now: i64,
        lifetime: Duration,
    ) -> String {
        let claims = WireClaims {
            token_type,
            exp: now + lifetime.as_secs() as i64,
            iat: now,
            jti,
            user_id: user_id.0,
            sid: Some(sid.to_owned()),
            aud: None,
        };
        // `user_id` goes out as a string, as SimpleJWT writes it.
        let mut value = serde_json::to_value(&claims).expect("claims serialise");
        value["user_id"] = serde_json::Value::String(user_id.to_string());
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &value, &self.encoding)
            .expect("HS256 signing cannot fail")
    }

    /// Checks signature (HS256 only: `none` and every other `alg` are refused), expiry and,
    /// when `expected` is given, the token type.
    pub fn decode(&self, token: &str, expected: Option<TokenType>) -> Result<Claims, TokenError> {
        let now = chrono::Utc::now().timestamp();
        let wire = self.verify(token, now).ok_or(TokenError::Invalid)?;
        if expected.is_some_and(|t| t != wire.token_type) {
            return Err(TokenError::WrongType);
        }
        if wire.user_id <= 0 || wire.jti.is_empty() {
            return Err(TokenError::Invalid);
        }
        Ok(Claims {
            token_type: wire.token_type,
            user_id: UserId(wire.user_id),
            jti: wire.jti,
            iat: wire.iat,
            exp: wire.exp,
            sid: wire.sid,
        })
    }

    /// The claims of an HS256 token signed with our key and not expired, checked as
    /// `jsonwebtoken::decode` checks them with HS256 as the only algorithm, `exp`
    /// required, no leeway (SimpleJWT's default: a token is dead the second its `exp`
    /// passes) and no audience expected; header fields other than `alg` are not read
    /// (they are signed, and nothing here uses them). Written out because jsonwebtoken keys a new
    /// HMAC for every token and parses the claims twice, which under `GET
    /// /api/users/me/` was the costliest part of a request after the log
    /// (bench/RESULTS.md); signing still goes through jsonwebtoken. A test holds the two
    /// to the same answers.
    fn verify(&self, token: &str, now: i64) -> Option<WireClaims> {
        let (signed, signature) = token.rsplit_once('.')?;
        let (header, payload) = signed.split_once('.')?;
        if payload.contains('.') {
            return None;
        }
        let header: WireHeader = json_object(&URL_SAFE_NO_PAD.decode(header).ok()?)?;
        // `alg` is signed, but a token must not choose its own algorithm (`none`, or an
        // asymmetric one whose public key would pass for an HMAC secret).
        if header.alg != "HS256" {
            return None;
        }
        let mut mac = self.verifier.clone();
        mac.update(signed.as_bytes());
        // Constant-time comparison.
        mac.verify_slice(&URL_SAFE_NO_PAD.decode(signature).ok()?)
            .ok()?;
        let claims: WireClaims = json_object(&URL_SAFE_NO_PAD.decode(payload).ok()?)?;
        if claims.exp < now || claims.aud.is_some() {
            return None;
        }
        Some(claims)
    }
}

/// A JWT's header and claims are JSON objects; serde would also fill a struct from an
/// array, which neither jsonwebtoken nor PyJWT accepts.
fn json_object<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Option<T> {
    if bytes.trim_ascii_start().first() != Some(&b'{') {
        return None;
    }
    serde_json::from_slice(bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys_for(secret: &str) -> TokenKeys {
        TokenKeys::new(
            &SecretString::from(secret),
            Duration::from_secs(300),
            Duration::from_secs(86400),
        )
    }

    #[test]
    fn a_pair_decodes_with_its_types() {
        let keys = keys_for("k");
        let (pair, refresh_jti) = keys.issue_pair(UserId(6), "ab");
        let access = keys.decode(&pair.access, Some(TokenType::Access)).unwrap();
        assert_eq!(
            (access.user_id, access.sid.as_deref()),
            (UserId(6), Some("ab"))
        );
        assert_eq!(
            keys.decode(&pair.refresh, Some(TokenType::Refresh))
                .unwrap()
                .jti,
            refresh_jti
        );
        assert_eq!(
            keys.decode(&pair.refresh, Some(TokenType::Access)),
            Err(TokenError::WrongType)
        );
        assert_eq!(
            keys_for("other").decode(&pair.access, None),
            Err(TokenError::Invalid)
        );
    }

    #[test]
    fn a_token_minted_by_pyjwt_in_simplejwts_layout_is_read() {
        // PyJWT 2 (what SimpleJWT signs with), key "django-insecure-test", exp in 2100:
        // {"token_type":"access","exp":4102444800,"iat":1764767044,
        //  "jti":"5568cc03db5c49f88c4623f9d8f25677","user_id":"6"}
        let token = include_str!("../../tests/vectors/simplejwt_access.jwt").trim();
        let claims = keys_for("django-insecure-test")
            .decode(token, Some(TokenType::Access))
            .unwrap();
        assert_eq!(claims.user_id, UserId(6));
        assert_eq!(claims.sid, None);
        assert_eq!(claims.jti, "5568cc03db5c49f88c4623f9d8f25677");
    }

    /// The hand-written check answers as `jsonwebtoken::decode` did, on good tokens and
    /// on every way of spoiling one.
    #[test]
    fn verify_agrees_with_jsonwebtoken() {
        use jsonwebtoken::{DecodingKey, Validation};
        let secret = "k-for-the-oracle";
        let keys = keys_for(secret);
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp"]);
        let oracle = |token: &str| {
            jsonwebtoken::decode::<WireClaims>(
                token,
                &DecodingKey::from_secret(secret.as_bytes()),
                &validation,
            )
            .ok()
            .map(|data| data.claims.jti)
        };
        let now = chrono::Utc::now().timestamp();
        let sign_with = |alg: Algorithm, key: &str, claims: serde_json::Value| {
            jsonwebtoken::encode(
                &Header::new(alg),
                &claims,
                &EncodingKey::from_secret(key.as_bytes()),
            )
            .unwrap()
        };
        let claims = |extra: serde_json::Value| {
            let mut base = serde_json::json!({
                "token_type": "access", "exp": now + 60, "iat": now,
                "jti": "j1", "user_id": "6",
            });
            for (k, v) in extra.as_object().unwrap() {
                if v.is_null() && k != "aud" {
                    base.as_object_mut().unwrap().remove(k);
                } else {
                    base[k] = v.clone();
                }
            }
            base
        };
        let good = sign_with(Algorithm::HS256, secret, claims(serde_json::json!({})));
        let (header, rest) = good.split_once('.').unwrap();
        let (payload, signature) = rest.split_once('.').unwrap();
        let none_header = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#);
        let mut tokens = vec![
            good.clone(),
            keys.issue_pair(UserId(6), "s").0.access,
            sign_with(
                Algorithm::HS256,
                "another key",
                claims(serde_json::json!({})),
            ),
            sign_with(Algorithm::HS512, secret, claims(serde_json::json!({}))),
            sign_with(Algorithm::HS384, secret, claims(serde_json::json!({}))),
            sign_with(
                Algorithm::HS256,
                secret,
                claims(serde_json::json!({"exp": now - 1})),
            ),
            sign_with(
                Algorithm::HS256,
                secret,
                claims(serde_json::json!({"exp": now + 30})),
            ),
            sign_with(
                Algorithm::HS256,
                secret,
                claims(serde_json::json!({"exp": null})),
            ),
            sign_with(
                Algorithm::HS256,
                secret,
                claims(serde_json::json!({"exp": "soon"})),
            ),
            sign_with(
                Algorithm::HS256,
                secret,
                claims(serde_json::json!({"aud": "api"})),
            ),
            sign_with(
                Algorithm::HS256,
                secret,
                claims(serde_json::json!({"aud": null})),
            ),
            sign_with(
                Algorithm::HS256,
                secret,
                claims(serde_json::json!({"user_id": 6})),
            ),
            sign_with(
                Algorithm::HS256,
                secret,
                claims(serde_json::json!({"nbf": now + 600})),
            ),
            sign_with(
                Algorithm::HS256,
                secret,
                claims(serde_json::json!({"jti": null})),
            ),
            format!("{none_header}.{payload}."),
            format!("{none_header}.{payload}.{signature}"),
            format!("{header}.{payload}"),
            format!("{header}.{payload}.{signature}.x"),
            format!("{header}.{payload}.{signature}="),
            format!("{header}.{payload}x.{signature}"),
            format!("{header}.{}.{signature}", URL_SAFE_NO_PAD.encode(b"{}")),
            format!("{header}..{signature}"),
            format!(".{payload}.{signature}"),
            good.replace('.', ""),
            String::new(),
            "...".into(),
        ];
        // Header and claims as given, with a valid HS256 signature over them.
        let hs256 = |header: &str, claims: &str| {
            let signed = format!(
                "{}.{}",
                URL_SAFE_NO_PAD.encode(header),
                URL_SAFE_NO_PAD.encode(claims)
            );
            let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
            mac.update(signed.as_bytes());
            format!(
                "{signed}.{}",
                URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
            )
        };
        let object_claims = claims(serde_json::json!({})).to_string();
        // Other algorithms named in the header: only the `alg` check refuses these.
        for alg in ["none", "HS512", "RS256", "hs256"] {
            tokens.push(hs256(
                &format!(r#"{{"alg":"{alg}","typ":"JWT"}}"#),
                &object_claims,
            ));
        }
        // Header or claims as JSON arrays: serde alone would read them.
        tokens.push(hs256(r#"{"alg":"HS256"}"#, &object_claims));
        tokens.push(hs256(r#"["HS256"]"#, &object_claims));
        tokens.push(hs256(
            r#"{"alg":"HS256"}"#,
            &format!(r#"["access",{},{now},"j1","6"]"#, now + 60),
        ));
        // Every single-character change of the good token.
        for at in (0..good.len()).step_by(7) {
            let mut bytes = good.clone().into_bytes();
            bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
            tokens.push(String::from_utf8(bytes).unwrap());
        }
        let mut accepted = 0;
        for token in &tokens {
            let ours = keys.verify(token, now).map(|claims| claims.jti);
            assert_eq!(ours, oracle(token), "{token}");
            accepted += usize::from(ours.is_some());
        }
        assert!(accepted >= 5, "the good tokens pass: {accepted}");
    }

    #[test]
    fn the_claims_are_simplejwts() {
        let keys = keys_for("k");
        let (pair, _) = keys.issue_pair(UserId(42), "s1");
        let payload = pair.access.split('.').nth(1).unwrap();
        use base64::Engine;
        let json: serde_json::Value = serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(payload)
                .unwrap(),
        )
        .unwrap();
        assert_eq!(json["token_type"], "access");
        assert_eq!(json["user_id"], "42");
        assert_eq!(json["sid"], "s1");
        assert_eq!(json["jti"].as_str().unwrap().len(), 32);
        assert_eq!(
            json["exp"].as_i64().unwrap() - json["iat"].as_i64().unwrap(),
            300
        );
    }
}
