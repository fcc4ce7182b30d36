//! UTC timestamps with one canonical text form.
//!
//! The text form is part of each event's hashed bytes, so it must never vary: RFC 3339,
//! UTC, always six fractional digits (`2026-11-28T22:38:26.123456Z`).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{OffsetDateTime, UtcOffset};

/// A point in time, microsecond precision, always UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(OffsetDateTime);

impl Timestamp {
    /// Wraps a time, converting it to UTC and cutting it to whole microseconds.
    pub fn new(t: OffsetDateTime) -> Self {
        let t = t.to_offset(UtcOffset::UTC);
        let micros = t.microsecond();
        Timestamp(t.replace_microsecond(micros).unwrap_or(t))
    }

    /// From microseconds since the Unix epoch; `None` when out of range.
    pub fn from_unix_micros(micros: i64) -> Option<Self> {
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1000)
            .ok()
            .map(Timestamp)
    }

    /// Microseconds since the Unix epoch.
    pub fn unix_micros(&self) -> i64 {
        (self.0.unix_timestamp_nanos() / 1000) as i64
    }

    /// The wrapped time.
    pub fn inner(&self) -> OffsetDateTime {
        self.0
    }

    /// This time plus a number of seconds (negative goes back).
    pub fn plus_seconds(&self, secs: i64) -> Self {
        Timestamp(self.0 + time::Duration::seconds(secs))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let fd = format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z"
        );
        match self.0.format(fd) {
            Ok(s) => f.write_str(&s),
            Err(_) => Err(fmt::Error),
        }
    }
}

/// The text was not an RFC 3339 time.
#[derive(Debug, thiserror::Error)]
#[error("not an RFC 3339 timestamp: {0:?}")]
pub struct BadTimestamp(pub String);

impl FromStr for Timestamp {
    type Err = BadTimestamp;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        OffsetDateTime::parse(s, &Rfc3339)
            .map(Timestamp::new)
            .map_err(|_| BadTimestamp(s.to_string()))
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
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_form_is_canonical_and_round_trips() {
        let t: Timestamp = "2026-11-28T23:38:26.5+01:00".parse().unwrap();
        assert_eq!(t.to_string(), "2026-11-28T22:38:26.500000Z");
        let back: Timestamp = t.to_string().parse().unwrap();
        assert_eq!(back, t);
        assert_eq!(Timestamp::from_unix_micros(t.unix_micros()), Some(t));
    }

    #[test]
    fn rejects_garbage() {
        assert!("yesterday".parse::<Timestamp>().is_err());
    }
}
