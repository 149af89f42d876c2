//! `EmailAddress`: an address Django's `EmailValidator` accepts, normalised as Django's
//! `BaseUserManager.normalize_email` does (domain lower-cased), API.md §3.
//!
//! Written by hand rather than with an RFC 5322 crate on purpose: the contract is
//! "what the Django API accepted", and Django's validator is narrower than the RFC
//! (dot-atom local parts, a dotted domain with a real TLD, or `localhost`).

use super::messages;
use std::fmt;

/// Django's `EmailField` max_length on `auth_user.email`.
const MAX_LENGTH: usize = 254;

#[derive(Clone, PartialEq, Eq)]
pub struct EmailAddress(String);

impl EmailAddress {
    /// Trims surrounding whitespace (DRF's `trim_whitespace`), validates, and lower-cases
    /// the domain.
    pub fn parse(raw: &str) -> Result<Self, Vec<String>> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err(vec![messages::BLANK.to_owned()]);
        }
        if trimmed.chars().count() > MAX_LENGTH {
            return Err(vec![messages::EMAIL_TOO_LONG.to_owned()]);
        }
        let invalid = || vec![messages::EMAIL_INVALID.to_owned()];
        let (local, domain) = trimmed.rsplit_once('@').ok_or_else(invalid)?;
        if !is_dot_atom(local) || !is_domain(domain) {
            return Err(invalid());
        }
        Ok(Self(format!("{local}@{}", domain.to_lowercase())))
    }

    /// Wraps a value read back from the database.
    pub fn from_stored(stored: String) -> Self {
        Self(stored)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EmailAddress({:?})", self.0)
    }
}

/// Django's `user_regex` (the dot-atom half; quoted local parts are vanishingly rare in
/// sign-up forms and are refused).
fn is_dot_atom(local: &str) -> bool {
    const SPECIALS: &str = "!#$%&'*+/=?^_`{}|~-";
    !local.is_empty()
        && local.split('.').all(|atom| {
            !atom.is_empty()
                && atom
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || SPECIALS.contains(c))
        })
}

/// Django's `domain_regex` after IDNA: dot-separated labels of letters, digits and inner
/// hyphens (at most 63 characters each), ending in a TLD of two or more characters; or
/// Django's allow-listed `localhost`.
fn is_domain(domain: &str) -> bool {
    if domain.eq_ignore_ascii_case("localhost") {
        return true;
    }
    let labels: Vec<&str> = domain.split('.').collect();
    let label_ok = |label: &&str| {
        let count = label.chars().count();
        (1..=63).contains(&count)
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label.chars().all(|c| c.is_alphanumeric() || c == '-')
    };
    match labels.split_last() {
        Some((tld, rest)) => {
            !rest.is_empty()
                && rest.iter().all(label_ok)
                && label_ok(tld)
                && tld.chars().count() >= 2
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_domain_is_lower_cased_and_the_local_part_kept() {
        assert_eq!(
            EmailAddress::parse(" Chandler.Bing@Gmail.COM ")
                .unwrap()
                .as_str(),
            "Chandler.Bing@gmail.com"
        );
    }

    #[test]
    fn django_accepts_these() {
        for ok in [
            "a@b.co",
            "first.last+tag@sub.example.org",
            "x@localhost",
            "o'neil@xn--bcher-kva.de",
            "u@bücher.de",
        ] {
            assert!(EmailAddress::parse(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn django_refuses_these() {
        for bad in [
            "plain",
            "@b.co",
            "a@",
            "a@b",
            "a..b@c.com",
            ".a@c.com",
            "a@-b.com",
            "a@b.c",
            "a b@c.com",
            "a@b_c.com",
        ] {
            assert_eq!(
                EmailAddress::parse(bad).unwrap_err(),
                vec![messages::EMAIL_INVALID],
                "{bad}"
            );
        }
        assert_eq!(EmailAddress::parse("").unwrap_err(), vec![messages::BLANK]);
        let long = format!("{}@example.com", "a".repeat(250));
        assert_eq!(
            EmailAddress::parse(&long).unwrap_err(),
            vec![messages::EMAIL_TOO_LONG]
        );
    }
}
