//! `Username`: what Django's `UnicodeUsernameValidator` and the `auth_user.username`
//! column accept (API.md §3), in the form Django stores.

use super::messages;
use std::fmt;
use unicode_normalization::UnicodeNormalization;

/// `auth_user.username` is `varchar(150)`.
pub const MAX_USERNAME_CHARS: usize = 150;

/// A username Django accepts: 1–150 letters, digits and `@ . + - _` (letters and digits
/// in the Unicode sense, as Django's `\w` is).
#[derive(Clone, PartialEq, Eq)]
pub struct Username(String);

impl Username {
    /// Parses a username as DRF's `CharField` would receive it: surrounding whitespace
    /// is trimmed first (DRF's `trim_whitespace`), then NFKC-normalised (Django's
    /// `normalize_username`, applied by `create_user` and `clean()`), then Django's rules
    /// apply. Normalising before the checks makes `ａdmin` (fullwidth a) the taken name
    /// `admin` rather than a look-alike, and the length is that of the stored form.
    pub fn parse(raw: &str) -> Result<Self, Vec<String>> {
        let normalized = normalize(raw.trim());
        let allowed = |c: char| c.is_alphanumeric() || "@.+-_".contains(c);
        match normalized.chars().count() {
            0 => Err(vec![messages::BLANK.to_owned()]),
            1..=MAX_USERNAME_CHARS if normalized.chars().all(allowed) => Ok(Self(normalized)),
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

/// Django's `AbstractBaseUser.normalize_username`: `unicodedata.normalize("NFKC", …)`.
/// Login uses it too, to find an account by a compatibility variant of its name.
pub fn normalize(username: &str) -> String {
    username.nfkc().collect()
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
    fn usernames_are_nfkc_normalised_as_django_stores_them() {
        for (raw, stored) in [
            ("\u{FF41}dmin", "admin"),   // fullwidth a
            ("\u{212A}xyz", "Kxyz"),     // Kelvin sign
            ("\u{FB01}ne", "fine"),      // the fi ligature
            ("e\u{301}clair", "éclair"), // composed
            ("x\u{2460}", "x1"),         // circled digit one
        ] {
            assert_eq!(Username::parse(raw).unwrap().as_str(), stored, "{raw:?}");
        }
        // The stored form is what is measured: U+3300 (SQUARE APAATO) is one character,
        // four katakana once normalised.
        let fits = format!("{}\u{3300}", "x".repeat(146));
        assert_eq!(
            Username::parse(&fits).unwrap().as_str().chars().count(),
            150
        );
        let expands = format!("{}\u{3300}", "x".repeat(147));
        assert_eq!(
            Username::parse(&expands).unwrap_err(),
            vec![messages::USERNAME_TOO_LONG]
        );
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
