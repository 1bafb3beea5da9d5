//! RFC 3339 times, always held and written in UTC.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime, UtcOffset};

use crate::ParseError;

/// A point in time, parsed from RFC 3339 and normalised to UTC so that records compare and
/// hash the same whichever time zone the CI runner used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Timestamp(OffsetDateTime);

impl Timestamp {
    pub fn parse(input: &str) -> Result<Timestamp, ParseError> {
        let hint = "write an RFC 3339 time with a zone, e.g. `2026-11-17T09:30:00Z` or `2026-11-17T10:30:00+01:00`";
        if input.len() > 64 {
            return Err(ParseError::new("time", input, "is too long", hint));
        }
        match OffsetDateTime::parse(input, &Rfc3339) {
            Ok(t) => Ok(Timestamp(t.to_offset(UtcOffset::UTC))),
            Err(e) => {
                let problem = if !input.contains('T') && !input.contains('t') {
                    "has no time of day (`T`); a date alone is ambiguous".to_string()
                } else if !input.ends_with(['Z', 'z'])
                    && !input.get(10..).unwrap_or("").contains(['+', '-'])
                {
                    "has no time zone".to_string()
                } else {
                    format!("is not an RFC 3339 time ({e})")
                };
                Err(ParseError::new("time", input, problem, hint))
            }
        }
    }

    pub fn from_unix(seconds: i64) -> Timestamp {
        Timestamp(OffsetDateTime::from_unix_timestamp(seconds).expect("seconds in range"))
    }

    pub fn from_offset(t: OffsetDateTime) -> Timestamp {
        Timestamp(t.to_offset(UtcOffset::UTC))
    }

    pub fn unix(&self) -> i64 {
        self.0.unix_timestamp()
    }

    pub fn inner(&self) -> OffsetDateTime {
        self.0
    }

    pub fn plus(&self, d: Duration) -> Timestamp {
        Timestamp(self.0 + d)
    }

    /// Whole days from `self` to `later`, rounded down.
    pub fn days_until(&self, later: Timestamp) -> i64 {
        (later.0 - self.0).whole_days()
    }

    /// The date part, `YYYY-MM-DD`.
    pub fn date(&self) -> String {
        let d = self.0.date();
        format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Rfc3339 formatting of a UTC time ends in `Z`; it cannot fail for years 0..=9999.
        let s = self.0.format(&Rfc3339).map_err(|_| fmt::Error)?;
        f.write_str(&s)
    }
}

impl std::str::FromStr for Timestamp {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Timestamp::parse(s)
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Timestamp::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_normalises_to_utc() {
        let t = Timestamp::parse("2026-11-17T10:30:00+01:00").unwrap();
        assert_eq!(t.to_string(), "2026-11-17T09:30:00Z");
        assert_eq!(t, Timestamp::parse("2026-11-17T09:30:00Z").unwrap());
        let t = Timestamp::parse("2026-11-17T09:30:00.250Z").unwrap();
        assert_eq!(t.to_string(), "2026-11-17T09:30:00.25Z");
    }

    #[test]
    fn says_what_is_missing() {
        assert_eq!(
            Timestamp::parse("2026-11-17").unwrap_err().problem,
            "has no time of day (`T`); a date alone is ambiguous"
        );
        assert_eq!(
            Timestamp::parse("2026-11-17T09:30:00").unwrap_err().problem,
            "has no time zone"
        );
        assert!(Timestamp::parse("2026-13-17T09:30:00Z")
            .unwrap_err()
            .problem
            .starts_with("is not an RFC 3339 time"));
    }

    #[test]
    fn day_arithmetic() {
        let a = Timestamp::parse("2026-11-01T12:00:00Z").unwrap();
        let b = Timestamp::parse("2026-11-04T11:59:59Z").unwrap();
        assert_eq!(a.days_until(b), 2);
        assert_eq!(a.date(), "2026-11-01");
    }
}
