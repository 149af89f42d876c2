//! `Username`: what Django's `UnicodeUsernameValidator` and the `auth_user.username`
//! column accept (API.md §3).

use super::messages;
use std::fmt;

/// `auth_user.username` is `varchar(150)`.
pub const MAX_USERNAME_CHARS: usize = 150;

/// A username Django accepts: 1–150 letters, digits and `@ . + - _` (letters and digits
/// in the Unicode sense, as Django's `\w` is).
#[derive(Clone, PartialEq, Eq)]
pub struct Username(String);

impl Username {
    /// Parses a username as DRF's `CharField` would receive it: surrounding whitespace
    /// is trimmed first (DRF's `trim_whitespace`), then Django's rules apply.
    pub fn parse(raw: &str) -> Result<Self, Vec<String>> {
        let trimmed = raw.trim();
        let allowed = |c: char| c.is_alphanumeric() || "@.+-_".contains(c);
        match trimmed.chars().count() {
            0 => Err(vec![messages::BLANK.to_owned()]),
            1..=MAX_USERNAME_CHARS if trimmed.chars().all(allowed) => Ok(Self(trimmed.to_owned())),
            1..=MAX_USERNAME_CHARS => Err(vec![messages::USERNAME_INVALID.to_owned()]),
            _ => Err(vec![messages::USERNAME_TOO_LONG.to_owned()]),
        }
    }

    /// Wraps a value read back from the database, which was valid when stored.
    pub fn from_stored(stored: String) -> Self {
        Self(stored)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The comparison key for case-insensitive uniqueness.
    pub fn key(&self) -> String {
        self.0.to_lowercase()
    }
}

impl fmt::Debug for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Username({:?})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn django_usernames_parse() {
        for ok in [
            "chandler",
            "a",
            "user.name+tag@x-y_z",
            "Ñandú",
            "ユーザー",
            &"x".repeat(150),
        ] {
            assert_eq!(Username::parse(ok).unwrap().as_str(), ok);
        }
    }

    #[test]
    fn whitespace_around_is_trimmed_as_drf_does() {
        assert_eq!(
            Username::parse("  chandler\n").unwrap().as_str(),
            "chandler"
        );
    }

    #[test]
    fn bad_usernames_name_the_rule() {
        assert_eq!(Username::parse(" ").unwrap_err(), vec![messages::BLANK]);
        assert_eq!(
            Username::parse("a b").unwrap_err(),
            vec![messages::USERNAME_INVALID]
        );
        assert_eq!(
            Username::parse("a/b").unwrap_err(),
            vec![messages::USERNAME_INVALID]
        );
        assert_eq!(
            Username::parse(&"x".repeat(151)).unwrap_err(),
            vec![messages::USERNAME_TOO_LONG]
        );
    }
}
