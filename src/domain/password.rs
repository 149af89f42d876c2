//! Password rules: Django's four default validators, ported so that gatehouse accepts
//! and refuses exactly what the Django API did (API.md §3), plus a byte cap.
//!
//! The common-password list is Django's own (`django/contrib/auth/common-passwords.txt.gz`,
//! 20,000 entries, BSD licence in `assets/DJANGO-LICENSE`), shipped inside the binary.
//! The similarity rule is written by hand because no crate computes Python's
//! `SequenceMatcher.quick_ratio`, and matching Django's verdicts is the point.

use super::messages;
use flate2::read::GzDecoder;
use std::collections::HashSet;
use std::io::Read;
use std::sync::LazyLock;

/// API.md §3: longer passwords are refused before any hashing work is done.
pub const MAX_PASSWORD_BYTES: usize = 4096;

/// Django's `UserAttributeSimilarityValidator` default.
const MAX_SIMILARITY: f64 = 0.7;

static COMMON_PASSWORDS: LazyLock<HashSet<String>> = LazyLock::new(|| {
    let gz: &[u8] = include_bytes!("../../assets/common-passwords.txt.gz");
    let mut text = String::new();
    GzDecoder::new(gz)
        .read_to_string(&mut text)
        .expect("the shipped common-password list is valid gzip");
    text.lines().map(|line| line.trim().to_owned()).collect()
});

/// What a password is compared with by the similarity rule: the user's attributes with
/// Django's verbose names.
#[derive(Debug, Default, Clone, Copy)]
pub struct UserAttributes<'a> {
    pub username: Option<&'a str>,
    pub first_name: Option<&'a str>,
    pub last_name: Option<&'a str>,
    pub email: Option<&'a str>,
}

/// The configured password rules (`PASSWORD_MIN_LENGTH`).
#[derive(Debug, Clone)]
pub struct PasswordPolicy {
    min_length: usize,
}

impl PasswordPolicy {
    pub fn new(min_length: usize) -> Self {
        // Build the list now rather than on the first registration's request path.
        LazyLock::force(&COMMON_PASSWORDS);
        Self { min_length }
    }

    /// Checks every rule and returns every message that applies, in Django's order.
    /// The password is never trimmed or altered.
    pub fn validate(&self, password: &str, user: UserAttributes<'_>) -> Result<(), Vec<String>> {
        if password.len() > MAX_PASSWORD_BYTES {
            return Err(vec![messages::PASSWORD_TOO_LONG.to_owned()]);
        }
        let mut failures = Vec::new();
        if let Some(attribute) = too_similar(password, user) {
            failures.push(messages::password_too_similar(attribute));
        }
        if password.chars().count() < self.min_length {
            failures.push(messages::password_too_short(self.min_length));
        }
        if COMMON_PASSWORDS.contains(password.to_lowercase().trim()) {
            failures.push(messages::PASSWORD_TOO_COMMON.to_owned());
        }
        // Python's str.isdigit(): non-empty and every character a digit.
        if !password.is_empty() && password.chars().all(char::is_numeric) {
            failures.push(messages::PASSWORD_ENTIRELY_NUMERIC.to_owned());
        }
        if failures.is_empty() {
            Ok(())
        } else {
            Err(failures)
        }
    }
}

/// Django's `UserAttributeSimilarityValidator.validate`: returns the verbose name of the
/// first attribute the password is too similar to.
fn too_similar(password: &str, user: UserAttributes<'_>) -> Option<&'static str> {
    let password: Vec<char> = password.to_lowercase().chars().collect();
    let attributes = [
        ("username", user.username),
        ("first name", user.first_name),
        ("last name", user.last_name),
        ("email address", user.email),
    ];
    for (verbose_name, value) in attributes {
        let Some(value) = value.filter(|v| !v.is_empty()) else {
            continue;
        };
        let value = value.to_lowercase();
        // re.split(r"\W+", value) + [value]
        let parts = value
            .split(|c: char| !(c.is_alphanumeric() || c == '_'))
            .chain(std::iter::once(value.as_str()));
        for part in parts {
            let part: Vec<char> = part.chars().collect();
            if exceeds_maximum_length_ratio(password.len(), part.len()) {
                continue;
            }
            if quick_ratio(&password, &part) >= MAX_SIMILARITY {
                return Some(verbose_name);
            }
        }
    }
    None
}

/// Django's `exceeds_maximum_length_ratio`: a part much shorter than the password cannot
/// reach the similarity bound, so it is skipped.
fn exceeds_maximum_length_ratio(password_len: usize, value_len: usize) -> bool {
    let length_bound_similarity = MAX_SIMILARITY / 2.0 * password_len as f64;
    password_len >= 10 * value_len && (value_len as f64) < length_bound_similarity
}

/// Python's `difflib.SequenceMatcher(a, b).quick_ratio()`: 2·M / (|a| + |b|), where M
/// counts the characters the two have in common as multisets.
fn quick_ratio(a: &[char], b: &[char]) -> f64 {
    let total = a.len() + b.len();
    if total == 0 {
        return 1.0;
    }
    let mut available = std::collections::HashMap::<char, usize>::new();
    for &c in b {
        *available.entry(c).or_default() += 1;
    }
    let mut matches = 0usize;
    for c in a {
        if let Some(n) = available.get_mut(c).filter(|n| **n > 0) {
            *n -= 1;
            matches += 1;
        }
    }
    2.0 * matches as f64 / total as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> PasswordPolicy {
        PasswordPolicy::new(8)
    }

    fn user<'a>(username: &'a str, email: &'a str) -> UserAttributes<'a> {
        UserAttributes {
            username: Some(username),
            email: Some(email),
            ..Default::default()
        }
    }

    #[test]
    fn a_strong_password_passes() {
        assert!(policy()
            .validate("correct horse battery staple", user("chandler", "c@x.com"))
            .is_ok());
    }

    #[test]
    fn the_seed_password_is_too_short() {
        // "bing123" from the seed: Django refuses it for its length alone.
        assert_eq!(
            policy()
                .validate("bing123", user("chandler", "chandler@gmail.com"))
                .unwrap_err(),
            vec![messages::password_too_short(8)]
        );
    }

    #[test]
    fn every_failed_rule_is_listed() {
        assert_eq!(
            policy()
                .validate("iloveyou", user("iloveyou", "x@y.com"))
                .unwrap_err(),
            vec![
                messages::password_too_similar("username"),
                messages::PASSWORD_TOO_COMMON.to_owned()
            ]
        );
    }

    #[test]
    fn numeric_and_common_are_both_reported() {
        assert_eq!(
            policy()
                .validate("12345678", UserAttributes::default())
                .unwrap_err(),
            vec![
                messages::PASSWORD_TOO_COMMON.to_owned(),
                messages::PASSWORD_ENTIRELY_NUMERIC.to_owned()
            ]
        );
        assert_eq!(
            policy()
                .validate("93846152738", UserAttributes::default())
                .unwrap_err(),
            vec![messages::PASSWORD_ENTIRELY_NUMERIC.to_owned()]
        );
    }

    #[test]
    fn similarity_follows_django() {
        assert_eq!(
            policy()
                .validate("chandler99", user("chandler", "c@x.com"))
                .unwrap_err(),
            vec![messages::password_too_similar("username")]
        );
        assert_eq!(
            policy()
                .validate("bingchandlerx", user("zz", "chandler.bing@x.com"))
                .unwrap_err(),
            vec![messages::password_too_similar("email address")]
        );
    }

    #[test]
    fn the_common_list_is_djangos_and_case_insensitive() {
        assert_eq!(COMMON_PASSWORDS.len(), 19640);
        assert!(policy()
            .validate("PassWord1", UserAttributes::default())
            .is_err());
    }

    #[test]
    fn quick_ratio_matches_python() {
        // SequenceMatcher(a='A', b='A'*10).quick_ratio() == 0.1818…
        let a: Vec<char> = "A".chars().collect();
        let b: Vec<char> = "AAAAAAAAAA".chars().collect();
        assert!((quick_ratio(&a, &b) - 2.0 / 11.0).abs() < 1e-12);
    }

    #[test]
    fn passwords_over_the_byte_cap_are_refused_without_other_checks() {
        let long = "é".repeat(MAX_PASSWORD_BYTES / 2 + 1);
        assert_eq!(
            policy()
                .validate(&long, UserAttributes::default())
                .unwrap_err(),
            vec![messages::PASSWORD_TOO_LONG]
        );
    }
}
