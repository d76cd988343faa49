//! How state values are written into columns and read back, shared by both backends so they
//! agree byte for byte (which is what lets `state migrate` copy rows without conversion):
//! timestamps as fixed-width RFC 3339 UTC text, enums by their snake_case names, `u32` counts
//! as 64-bit integers. Also the pure rule for merging a successful apply's record into the
//! managed set. No I/O and no SQL here beyond reading columns of a fetched row.

use std::collections::BTreeMap;

use jiff::Timestamp;
use jiff::fmt::temporal::DateTimePrinter;
use sqlx::{ColumnIndex, Decode, Row, Type};

use super::{ApplyRecord, EnvironmentKey, ManagedRecord, Outcome, Record, StateError, StepRecord};
use super::{LockHolder, SecretMeta, StepStatus};

/// A timestamp as stored: `2025-01-01T00:00:00.000000000Z`. Always nine fractional digits and
/// UTC, so every value has the same width and text order is time order (for the years
/// 0000–9999 that jiff can represent on this side of year zero).
pub(super) fn timestamp_text(timestamp: Timestamp) -> String {
    DateTimePrinter::new()
        .precision(Some(9))
        .timestamp_to_string(&timestamp)
}

pub(super) fn optional_timestamp_text(timestamp: Option<Timestamp>) -> Option<String> {
    timestamp.map(timestamp_text)
}

/// A `u32` as the 64-bit integer both databases store it in.
pub(super) fn wide(value: u32) -> i64 {
    i64::from(value)
}

/// Reads typed columns from a fetched row, turning every failure into a [`StateError`] that
/// names the store.
pub struct Columns<'r, R> {
    row: &'r R,
    location: &'r str,
}

impl<'r, R> Columns<'r, R>
where
    R: Row,
    &'static str: ColumnIndex<R>,
{
    pub(super) fn new(row: &'r R, location: &'r str) -> Columns<'r, R> {
        Columns { row, location }
    }

    pub(super) fn get<T>(&self, column: &'static str) -> Result<T, StateError>
    where
        T: Decode<'r, R::Database> + Type<R::Database>,
    {
        self.row
            .try_get(column)
            .map_err(|source| StateError::Database {
                location: self.location.to_string(),
                source,
            })
    }

    /// The store the row came from, for messages.
    pub(super) fn location(&self) -> &str {
        self.location
    }

    fn corrupt(&self, detail: String) -> StateError {
        StateError::Corrupt {
            location: self.location.to_string(),
            detail,
        }
    }

    pub(super) fn timestamp(&self, column: &'static str) -> Result<Timestamp, StateError>
    where
        String: Decode<'r, R::Database> + Type<R::Database>,
    {
        let text: String = self.get(column)?;
        self.parse_timestamp(column, &text)
    }

    pub(super) fn optional_timestamp(
        &self,
        column: &'static str,
    ) -> Result<Option<Timestamp>, StateError>
    where
        String: Decode<'r, R::Database> + Type<R::Database>,
    {
        let text: Option<String> = self.get(column)?;
        text.map(|text| self.parse_timestamp(column, &text))
            .transpose()
    }

    fn parse_timestamp(&self, column: &str, text: &str) -> Result<Timestamp, StateError> {
        text.parse()
            .map_err(|error| self.corrupt(format!("{column} `{text}` is not a timestamp: {error}")))
    }

    /// A `u32` stored as a 64-bit integer.
    pub(super) fn narrow(&self, column: &'static str) -> Result<u32, StateError>
    where
        i64: Decode<'r, R::Database> + Type<R::Database>,
    {
        let value: i64 = self.get(column)?;
        u32::try_from(value).map_err(|_| self.corrupt(format!("{column} {value} is out of range")))
    }

    pub(super) fn key(&self) -> Result<EnvironmentKey, StateError>
    where
        String: Decode<'r, R::Database> + Type<R::Database>,
    {
        Ok(EnvironmentKey {
            deployment: self.get("deployment")?,
            environment: self.get("environment")?,
        })
    }

    pub(super) fn outcome(&self) -> Result<Outcome, StateError>
    where
        String: Decode<'r, R::Database> + Type<R::Database>,
    {
        let text: String = self.get("outcome")?;
        Outcome::parse(&text).ok_or_else(|| self.corrupt(format!("unknown outcome `{text}`")))
    }

    pub(super) fn step_status(&self) -> Result<StepStatus, StateError>
    where
        String: Decode<'r, R::Database> + Type<R::Database>,
    {
        let text: String = self.get("status")?;
        StepStatus::parse(&text)
            .ok_or_else(|| self.corrupt(format!("unknown step status `{text}`")))
    }

    /// An `applies` row.
    pub(super) fn apply(&self) -> Result<ApplyRecord, StateError>
    where
        String: Decode<'r, R::Database> + Type<R::Database>,
        i64: Decode<'r, R::Database> + Type<R::Database>,
        bool: Decode<'r, R::Database> + Type<R::Database>,
    {
        Ok(ApplyRecord {
            id: self.get("id")?,
            environment: self.key()?,
            kind: self.get("kind")?,
            plan_hash: self.get("plan_hash")?,
            desired_hash: self.get("desired_hash")?,
            shared_hash: self.get("shared_hash")?,
            git_commit: self.get("git_commit")?,
            actor_user: self.get("actor_user")?,
            actor_host: self.get("actor_host")?,
            pid: self.narrow("pid")?,
            started_at: self.timestamp("started_at")?,
            finished_at: self.optional_timestamp("finished_at")?,
            outcome: self.outcome()?,
            changes: self.narrow("changes")?,
            health_passed: self.get("health_passed")?,
            override_reason: self.get("override_reason")?,
            message: self.get("message")?,
            plan_json: self.get("plan_json")?,
        })
    }

    /// A `steps` row; `addresses` is decoded by the backend (JSON text or a text array).
    pub(super) fn step(&self, addresses: Vec<String>) -> Result<StepRecord, StateError>
    where
        String: Decode<'r, R::Database> + Type<R::Database>,
        i64: Decode<'r, R::Database> + Type<R::Database>,
    {
        Ok(StepRecord {
            apply_id: self.get("apply_id")?,
            index: self.narrow("step_index")?,
            kind: self.get("kind")?,
            target: self.get("target")?,
            addresses,
            status: self.step_status()?,
            before_hash: self.get("before_hash")?,
            after_hash: self.get("after_hash")?,
            checkpoint_path: self.get("checkpoint_path")?,
            checkpoint_hash: self.get("checkpoint_hash")?,
            before_values: self.get("before_values")?,
            started_at: self.timestamp("started_at")?,
            finished_at: self.optional_timestamp("finished_at")?,
            error: self.get("error")?,
        })
    }

    /// A `managed` row, as (address, record).
    pub(super) fn managed(&self) -> Result<(String, ManagedRecord), StateError>
    where
        String: Decode<'r, R::Database> + Type<R::Database>,
        bool: Decode<'r, R::Database> + Type<R::Database>,
    {
        Ok((
            self.get("address")?,
            ManagedRecord {
                value_hash: self.get("value_hash")?,
                sensitive: self.get("sensitive")?,
                apply_id: self.get("apply_id")?,
                updated_at: self.timestamp("updated_at")?,
            },
        ))
    }

    /// A `secrets` row, as (name, metadata).
    pub(super) fn secret(&self) -> Result<(String, SecretMeta), StateError>
    where
        String: Decode<'r, R::Database> + Type<R::Database>,
        bool: Decode<'r, R::Database> + Type<R::Database>,
    {
        Ok((
            self.get("name")?,
            SecretMeta {
                fingerprint: self.get("fingerprint")?,
                set_at: self.timestamp("set_at")?,
                rotated_at: self.optional_timestamp("rotated_at")?,
                adopted: self.get("adopted")?,
                source: self.get("source")?,
            },
        ))
    }

    /// A `locks` row.
    pub(super) fn holder(&self) -> Result<LockHolder, StateError>
    where
        String: Decode<'r, R::Database> + Type<R::Database>,
        i64: Decode<'r, R::Database> + Type<R::Database>,
    {
        Ok(LockHolder {
            apply_id: self.get("apply_id")?,
            host: self.get("host")?,
            pid: self.narrow("pid")?,
            started_at: self.timestamp("started_at")?,
        })
    }
}

/// Unit and record separators for reading a whole managed set as one packed string. Planning
/// reads every managed address on every run; one aggregated row avoids the per-row cost of the
/// drivers, which dominates at thousands of addresses. Addresses, hashes, apply ids and
/// timestamps never contain these control characters.
pub(super) const UNIT: char = '\u{1f}';
pub(super) const RECORD: char = '\u{1e}';

/// Parses `address␟value_hash␟sensitive␟apply_id␟updated_at␞…` into the managed set.
pub(super) fn unpack_managed(
    packed: Option<&str>,
    location: &str,
) -> Result<BTreeMap<String, ManagedRecord>, StateError> {
    let mut managed = BTreeMap::new();
    let Some(packed) = packed.filter(|text| !text.is_empty()) else {
        return Ok(managed);
    };
    let corrupt = |detail: String| StateError::Corrupt {
        location: location.to_string(),
        detail,
    };
    for record in packed.split(RECORD) {
        let fields: Vec<&str> = record.split(UNIT).collect();
        let [address, value_hash, sensitive, apply_id, updated_at] = fields[..] else {
            return Err(corrupt(format!(
                "a managed row has {} fields, expected 5",
                fields.len()
            )));
        };
        let updated_at = parse_stored_timestamp(updated_at).map_err(|error| {
            corrupt(format!("managed `{address}` has a bad timestamp: {error}"))
        })?;
        managed.insert(
            address.to_string(),
            ManagedRecord {
                value_hash: value_hash.to_string(),
                sensitive: matches!(sensitive, "1" | "t" | "true"),
                apply_id: apply_id.to_string(),
                updated_at,
            },
        );
    }
    Ok(managed)
}

/// Reads a timestamp as this module writes it (`2026-11-26T03:00:00.000000000Z`) without the
/// general parser, which dominated reading a large managed set; anything else falls back to it.
pub(super) fn parse_stored_timestamp(text: &str) -> Result<Timestamp, jiff::Error> {
    fn number(bytes: &[u8]) -> Option<i64> {
        bytes.iter().try_fold(0_i64, |total, byte| {
            byte.is_ascii_digit()
                .then(|| total * 10 + i64::from(byte - b'0'))
        })
    }
    let bytes = text.as_bytes();
    let fast = (|| {
        if bytes.len() != 30
            || bytes[4] != b'-'
            || bytes[7] != b'-'
            || bytes[10] != b'T'
            || bytes[19] != b'.'
            || bytes[29] != b'Z'
        {
            return None;
        }
        let (year, month, day) = (
            number(&bytes[0..4])?,
            number(&bytes[5..7])?,
            number(&bytes[8..10])?,
        );
        let (hour, minute, second) = (
            number(&bytes[11..13])?,
            number(&bytes[14..16])?,
            number(&bytes[17..19])?,
        );
        let nanos = number(&bytes[20..29])?;
        if !(1..=12).contains(&month)
            || !(1..=31).contains(&day)
            || hour > 23
            || minute > 59
            || second > 59
        {
            return None;
        }
        // Days from the civil date (Howard Hinnant's algorithm).
        let shifted_year = if month <= 2 { year - 1 } else { year };
        let era = shifted_year.div_euclid(400);
        let year_of_era = shifted_year - era * 400;
        let day_of_year = (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + day - 1;
        let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
        let days = era * 146_097 + day_of_era - 719_468;
        let seconds = days * 86_400 + hour * 3_600 + minute * 60 + second;
        Timestamp::new(seconds, nanos as i32).ok()
    })();
    match fast {
        Some(timestamp) => Ok(timestamp),
        None => text.parse(),
    }
}

/// The managed set after a successful apply: exactly the addresses of `record`. An address
/// whose value hash and sensitivity did not change keeps the apply and time that last set it,
/// so the store answers "when did this last change" rather than "when was it last looked at".
pub(super) fn merge_managed(
    existing: &BTreeMap<String, ManagedRecord>,
    record: &Record,
    apply_id: &str,
    finished_at: Timestamp,
) -> BTreeMap<String, ManagedRecord> {
    record
        .managed
        .iter()
        .map(|(address, (value_hash, sensitive))| {
            let unchanged = existing.get(address).filter(|previous| {
                previous.value_hash == *value_hash && previous.sensitive == *sensitive
            });
            let merged = match unchanged {
                Some(previous) => previous.clone(),
                None => ManagedRecord {
                    value_hash: value_hash.clone(),
                    sensitive: *sensitive,
                    apply_id: apply_id.to_string(),
                    updated_at: finished_at,
                },
            };
            (address.clone(), merged)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_fixed_width_and_sort_as_text() {
        let early: Timestamp = "2025-01-02T03:04:05Z".parse().unwrap();
        let late: Timestamp = "2025-01-02T03:04:05.000000001Z".parse().unwrap();
        let early_text = timestamp_text(early);
        let late_text = timestamp_text(late);
        assert_eq!(early_text, "2025-01-02T03:04:05.000000000Z");
        assert_eq!(early_text.len(), late_text.len());
        assert!(early_text < late_text);
        assert_eq!(late_text.parse::<Timestamp>().unwrap(), late);
    }

    #[test]
    fn merging_keeps_the_origin_of_unchanged_addresses_and_drops_missing_ones() {
        let then: Timestamp = "2025-01-01T00:00:00Z".parse().unwrap();
        let now: Timestamp = "2025-02-01T00:00:00Z".parse().unwrap();
        let old = |hash: &str| ManagedRecord {
            value_hash: hash.to_string(),
            sensitive: false,
            apply_id: "a1".to_string(),
            updated_at: then,
        };
        let existing = BTreeMap::from([
            ("kept".to_string(), old("h1")),
            ("changed".to_string(), old("h2")),
            ("dropped".to_string(), old("h3")),
        ]);
        let record = Record {
            managed: BTreeMap::from([
                ("kept".to_string(), ("h1".to_string(), false)),
                ("changed".to_string(), ("h2-new".to_string(), false)),
                ("added".to_string(), ("h4".to_string(), true)),
            ]),
            secrets: BTreeMap::new(),
        };
        let merged = merge_managed(&existing, &record, "a2", now);
        assert_eq!(merged["kept"], old("h1"));
        assert_eq!(merged["changed"].apply_id, "a2");
        assert_eq!(merged["changed"].updated_at, now);
        assert!(merged["added"].sensitive);
        assert!(!merged.contains_key("dropped"));
    }
}

#[cfg(test)]
mod fast_timestamp_tests {
    use super::*;

    #[test]
    fn the_fast_timestamp_reader_agrees_with_jiff() {
        for text in [
            "1970-01-01T00:00:00.000000000Z",
            "2000-02-29T23:59:59.999999999Z",
            "2026-11-26T03:00:00.123456789Z",
            "1969-12-31T23:59:59.500000000Z",
            "2100-03-01T12:34:56.000000001Z",
        ] {
            assert_eq!(
                parse_stored_timestamp(text).unwrap(),
                text.parse::<Timestamp>().unwrap(),
                "{text}"
            );
        }
        let now = Timestamp::now();
        assert_eq!(parse_stored_timestamp(&timestamp_text(now)).unwrap(), now);
        assert!(parse_stored_timestamp("2026-13-01T00:00:00.000000000Z").is_err());
    }
}
