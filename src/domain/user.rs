//! `User`: one row of Django's `auth_user`, without its password hash, and the JSON
//! shape in which endpoints return it (API.md §3).

use chrono::{DateTime, Utc};
use serde::{Serialize, Serializer};
use std::fmt;

/// `auth_user.id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct UserId(pub i64);

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A user as every endpoint shows it. The password hash is deliberately not a field: it
/// cannot be serialised by mistake.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct User {
    #[schema(value_type = i64)]
    pub id: UserId,
    pub username: String,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    pub is_active: bool,
    pub is_staff: bool,
    pub is_superuser: bool,
    #[serde(serialize_with = "rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub date_joined: DateTime<Utc>,
    /// `null` until the first login.
    #[serde(serialize_with = "rfc3339_opt")]
    #[schema(value_type = Option<String>, format = DateTime, required = true)]
    pub last_login: Option<DateTime<Utc>>,
}

/// DRF's `DateTimeField` output in UTC: ISO 8601 with microseconds and `Z`.
///
/// Written digit by digit rather than with chrono's `format`, which interprets its
/// pattern anew on every call, or `format!`, whose padding machinery cost nearly as
/// much: every `me` answer writes two of these, and chrono's way cost about 4 % of that
/// request's instructions (bench/RESULTS.md). The same text as
/// `%Y-%m-%dT%H:%M:%S%.6fZ`; years outside 0–9999 and leap seconds, which `%Y` and `%S`
/// write differently, still go through chrono.
pub fn format_timestamp(at: &DateTime<Utc>) -> String {
    use chrono::{Datelike, Timelike};
    let (year, nanos) = (at.year(), at.nanosecond());
    if !(0..=9999).contains(&year) || nanos >= 1_000_000_000 {
        return at.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string();
    }
    let mut text = [0u8; "2025-01-31T12:00:00.123456Z".len()];
    let mut end = 0;
    for (value, width, after) in [
        (year as u32, 4, b'-'),
        (at.month(), 2, b'-'),
        (at.day(), 2, b'T'),
        (at.hour(), 2, b':'),
        (at.minute(), 2, b':'),
        (at.second(), 2, b'.'),
        (nanos / 1000, 6, b'Z'),
    ] {
        fill_digits(&mut text[end..end + width], value);
        text[end + width] = after;
        end += width + 1;
    }
    // Only ASCII digits and separators were written.
    String::from_utf8_lossy(&text).into_owned()
}

/// `value`'s last `places.len()` decimal digits, zero-padded, as ASCII into `places`.
/// Last digit first: a division by the constant 10 is a multiplication, where a division by
/// a power of ten computed per digit is a real division each time.
pub(crate) fn fill_digits(places: &mut [u8], value: u32) {
    let mut rest = value;
    for place in places.iter_mut().rev() {
        *place = b'0' + (rest % 10) as u8;
        rest /= 10;
    }
}

fn rfc3339<S: Serializer>(at: &DateTime<Utc>, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&format_timestamp(at))
}

fn rfc3339_opt<S: Serializer>(
    at: &Option<DateTime<Utc>>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match at {
        Some(at) => rfc3339(at, serializer),
        None => serializer.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn timestamps_read_as_chronos_pattern_writes_them() {
        let pattern = |at: &DateTime<Utc>| at.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string();
        let mut seconds: i64 = 0;
        for step in 0..2000u32 {
            // Dates from 1970 to about 2190, with every kind of fraction.
            seconds += 3_456_789 + i64::from(step) * 17;
            let nanos = step.wrapping_mul(2_654_435_761) % 1_000_000_000;
            let at = Utc.timestamp_opt(seconds, nanos).unwrap();
            assert_eq!(format_timestamp(&at), pattern(&at));
        }
        for at in [
            Utc.with_ymd_and_hms(1, 1, 1, 0, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(9999, 12, 31, 23, 59, 59).unwrap(),
            Utc.with_ymd_and_hms(10000, 1, 1, 0, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(-1, 1, 1, 0, 0, 0).unwrap(),
            // A leap second: chrono holds it as 59 s and a nanosecond count past 10⁹.
            Utc.timestamp_opt(1_483_228_799, 1_500_000_000).unwrap(),
        ] {
            assert_eq!(format_timestamp(&at), pattern(&at));
        }
        assert_eq!(
            format_timestamp(&Utc.timestamp_opt(1_700_000_000, 120_000).unwrap()),
            "2023-11-14T22:13:20.000120Z"
        );
    }
}
