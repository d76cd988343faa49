//! Durations as operators write them: `30s`, `15m`, `24h`, `90d`.

use std::fmt;
use std::str::FromStr;

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

pub const DURATION_PATTERN: &str = "^[0-9]{1,9}(s|m|h|d)$";

/// A whole number of seconds, written with one unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Duration {
    seconds: u64,
    unit: Unit,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Unit {
    Seconds,
    Minutes,
    Hours,
    Days,
}

impl Unit {
    fn seconds(self) -> u64 {
        match self {
            Unit::Seconds => 1,
            Unit::Minutes => 60,
            Unit::Hours => 3_600,
            Unit::Days => 86_400,
        }
    }

    fn suffix(self) -> char {
        match self {
            Unit::Seconds => 's',
            Unit::Minutes => 'm',
            Unit::Hours => 'h',
            Unit::Days => 'd',
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{text}` is not a duration: expected a whole number followed by s, m, h or d (30s, 15m, 24h, 90d)"
)]
pub struct DurationError {
    pub text: String,
}

impl Duration {
    pub const fn from_seconds(seconds: u64) -> Duration {
        Duration {
            seconds,
            unit: Unit::Seconds,
        }
    }

    pub const fn from_days(days: u64) -> Duration {
        Duration {
            seconds: days * 86_400,
            unit: Unit::Days,
        }
    }

    pub fn as_seconds(self) -> u64 {
        self.seconds
    }

    pub fn as_std(self) -> std::time::Duration {
        std::time::Duration::from_secs(self.seconds)
    }

    /// Whole days, when the duration is a multiple of a day.
    pub fn whole_days(self) -> Option<u64> {
        self.seconds
            .is_multiple_of(86_400)
            .then_some(self.seconds / 86_400)
    }
}

impl FromStr for Duration {
    type Err = DurationError;

    fn from_str(text: &str) -> Result<Duration, DurationError> {
        let error = || DurationError {
            text: text.to_string(),
        };
        let unit = match text.chars().last() {
            Some('s') => Unit::Seconds,
            Some('m') => Unit::Minutes,
            Some('h') => Unit::Hours,
            Some('d') => Unit::Days,
            _ => return Err(error()),
        };
        let digits = &text[..text.len() - 1];
        if digits.is_empty() || !digits.bytes().all(|byte| byte.is_ascii_digit()) {
            return Err(error());
        }
        let count: u64 = digits.parse().map_err(|_| error())?;
        let seconds = count.checked_mul(unit.seconds()).ok_or_else(error)?;
        Ok(Duration { seconds, unit })
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            formatter,
            "{}{}",
            self.seconds / self.unit.seconds(),
            self.unit.suffix()
        )
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for Duration {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Duration".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "pattern": DURATION_PATTERN,
            "description": "A whole number followed by one unit: s, m, h or d (30s, 15m, 24h, 90d).",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_unit_parses_to_seconds() {
        assert_eq!("30s".parse::<Duration>().unwrap().as_seconds(), 30);
        assert_eq!("15m".parse::<Duration>().unwrap().as_seconds(), 900);
        assert_eq!("24h".parse::<Duration>().unwrap().as_seconds(), 86_400);
        assert_eq!("90d".parse::<Duration>().unwrap().whole_days(), Some(90));
        assert_eq!("36h".parse::<Duration>().unwrap().whole_days(), None);
    }

    #[test]
    fn malformed_durations_are_refused() {
        for text in [
            "",
            "d",
            "10",
            "1.5h",
            "-3d",
            "10 d",
            "10w",
            "99999999999999999999d",
        ] {
            assert!(text.parse::<Duration>().is_err(), "{text}");
        }
    }

    proptest::proptest! {
        #[test]
        fn parsing_any_text_never_panics_and_round_trips_what_it_accepts(text in "\\PC{0,12}") {
            if let Ok(duration) = text.parse::<Duration>() {
                proptest::prop_assert_eq!(duration.to_string().parse::<Duration>().unwrap(), duration);
            }
        }
    }

    #[test]
    fn display_keeps_the_unit_written() {
        assert_eq!("90d".parse::<Duration>().unwrap().to_string(), "90d");
        assert_eq!("15m".parse::<Duration>().unwrap().to_string(), "15m");
    }
}
