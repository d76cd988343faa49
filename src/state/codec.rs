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
pub(super) struct Columns<'r, R> {
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
