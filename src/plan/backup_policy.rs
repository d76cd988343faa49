//! The backup policy as pure functions: when a new set is due, which sets the keep policy keeps
//! and why, and how a set is named. No I/O, no clock: `now` is always an argument, so the same
//! history and the same clock give the same answer, in tests and in a plan.
//!
//! Keeping follows the restic/borg reading of "keep the newest set of each of the last N days":
//! the N most recent UTC days (ISO weeks, months) *that have a set*, not the last N calendar days
//! before `now`. So time passing without new backups (a server down for a fortnight) never
//! releases a set; only newer sets can push an older one out.

use std::cmp::Reverse;
use std::collections::BTreeSet;

use jiff::Timestamp;
use jiff::civil::DateTime;
use jiff::tz::TimeZone;

use crate::spec::types::Keep;

const DAY_SECONDS: i64 = 86_400;

/// The bucket (day, ISO week, month) a creation time falls in, as shown in a keep reason.
type Bucket = fn(Timestamp) -> String;

/// What the policy needs to know about one set, as listed from the destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetInfo {
    /// The set id, which is also its directory name (see [`set_id`]).
    pub id: String,
    pub created_at: Timestamp,
    /// Whether the set has a readable manifest. An incomplete set is never a backup.
    pub complete: bool,
    /// The result of the last verification: `None` when never verified.
    pub verified: Option<bool>,
    /// Bytes on disk (the items of a complete set, the files of an incomplete one).
    pub size: u64,
}

impl SetInfo {
    /// A set the keep rules may count: complete and not known to be broken.
    fn countable(&self) -> bool {
        self.complete && self.verified != Some(false)
    }

    fn age_seconds(&self, now: Timestamp) -> i64 {
        now.as_second() - self.created_at.as_second()
    }
}

/// What prune decided for one set: kept (with every rule that keeps it) or released (with why).
/// Exactly one of `keep` (non-empty) and `release` is set.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct Decision {
    pub id: String,
    /// Why the set is kept, e.g. `daily 2026-11-25`, `weekly 2026-W47`, `monthly 2026-11`,
    /// `newest verified`.
    pub keep: Vec<String>,
    /// Why the set may be deleted.
    pub release: Option<String>,
}

impl Decision {
    pub fn is_kept(&self) -> bool {
        self.release.is_none()
    }
}

/// The id (and directory name) of a set created at `now`: UTC, to the second, sortable as text
/// and safe on every filesystem, e.g. `2026-11-25T030000Z`.
pub fn set_id(now: Timestamp) -> String {
    let time = TimeZone::UTC.to_datetime(now);
    format!(
        "{:04}-{:02}-{:02}T{:02}{:02}{:02}Z",
        time.year(),
        time.month(),
        time.day(),
        time.hour(),
        time.minute(),
        time.second()
    )
}

/// The creation time a set id stands for; `None` when `id` is not a set id.
pub fn parse_set_id(id: &str) -> Option<Timestamp> {
    let bytes = id.as_bytes();
    let shape_ok = bytes.len() == 18
        && bytes[4] == b'-'
        && bytes[7] == b'-'
        && bytes[10] == b'T'
        && bytes[17] == b'Z'
        && [0..4, 5..7, 8..10, 11..17]
            .into_iter()
            .all(|range| bytes[range].iter().all(u8::is_ascii_digit));
    if !shape_ok {
        return None;
    }
    let number = |range: std::ops::Range<usize>| id[range].parse::<i16>().ok();
    let time = DateTime::new(
        number(0..4)?,
        number(5..7)? as i8,
        number(8..10)? as i8,
        number(11..13)? as i8,
        number(13..15)? as i8,
        number(15..17)? as i8,
        0,
    )
    .ok()?;
    TimeZone::UTC.to_timestamp(time).ok()
}

/// Whether a new set is due, and why: `None` when the newest good set is younger than `every`.
/// A good set is complete and verified; with `verify` off, complete and not failed.
pub fn due(
    sets: &[SetInfo],
    every: std::time::Duration,
    verify: bool,
    now: Timestamp,
) -> Option<String> {
    let good = |set: &&SetInfo| {
        set.complete
            && if verify {
                set.verified == Some(true)
            } else {
                set.verified != Some(false)
            }
    };
    let adjective = if verify { "verified" } else { "complete" };
    let Some(newest) = sets.iter().filter(good).max_by_key(|set| set.created_at) else {
        let failed = sets
            .iter()
            .filter(|set| set.complete && set.verified == Some(false))
            .count();
        return Some(match failed {
            0 => format!("there is no {adjective} set"),
            1 => format!("there is no {adjective} set (1 set failed verification)"),
            _ => format!("there is no {adjective} set ({failed} sets failed verification)"),
        });
    };
    let age = newest.age_seconds(now).max(0).unsigned_abs();
    (age >= every.as_secs()).then(|| {
        format!(
            "the newest {adjective} set is {} old and policy says every {}",
            human_duration(age),
            human_duration(every.as_secs())
        )
    })
}

/// Decides for every set (in input order) whether the keep policy keeps it.
///
/// - The `last` newest countable sets are kept, whatever their day.
/// - The newest set of each of the `daily` most recent UTC days that have a countable set is
///   kept, likewise for `weekly` ISO weeks and `monthly` months. Countable: complete and not
///   failed verification.
/// - The newest verified set is always kept; when no set is verified, the newest countable one.
/// - A set that failed verification is released and says so.
/// - An incomplete set younger than a day is kept (a backup may still be writing it); an older
///   one is released as left by an interrupted backup.
pub fn prune(sets: &[SetInfo], keep: &Keep, now: Timestamp) -> Vec<Decision> {
    let mut reasons: Vec<Vec<String>> = vec![Vec::new(); sets.len()];
    let mut countable: Vec<usize> = (0..sets.len())
        .filter(|&index| sets[index].countable())
        .collect();
    countable.sort_by_key(|&index| Reverse((sets[index].created_at, sets[index].id.as_str())));

    for (position, &index) in countable
        .iter()
        .take(keep.last.unwrap_or(0) as usize)
        .enumerate()
    {
        reasons[index].push(format!("last {}", position + 1));
    }
    let rules: [(&str, Option<u32>, Bucket); 3] = [
        ("daily", keep.daily, day_bucket),
        ("weekly", keep.weekly, week_bucket),
        ("monthly", keep.monthly, month_bucket),
    ];
    for (rule, count, bucket) in rules {
        let limit = count.unwrap_or(0) as usize;
        let mut seen = BTreeSet::new();
        for &index in &countable {
            if seen.len() >= limit {
                break;
            }
            let key = bucket(sets[index].created_at);
            if seen.insert(key.clone()) {
                reasons[index].push(format!("{rule} {key}"));
            }
        }
    }

    let newest_verified = countable
        .iter()
        .copied()
        .find(|&index| sets[index].verified == Some(true));
    match newest_verified {
        Some(index) => reasons[index].push("newest verified".to_string()),
        None => {
            if let Some(&index) = countable.first() {
                reasons[index].push("newest complete (no set is verified)".to_string());
            }
        }
    }

    sets.iter()
        .zip(reasons)
        .map(|(set, keep)| {
            let (keep, release) = if !set.complete {
                if set.age_seconds(now) < DAY_SECONDS {
                    (
                        vec![
                            "incomplete but younger than a day: it may still be in progress"
                                .to_string(),
                        ],
                        None,
                    )
                } else {
                    (
                        Vec::new(),
                        Some("incomplete, left by an interrupted backup".to_string()),
                    )
                }
            } else if set.verified == Some(false) {
                (
                    Vec::new(),
                    Some("failed verification, so it does not count as a backup".to_string()),
                )
            } else if keep.is_empty() {
                (
                    Vec::new(),
                    Some(
                        "not the newest set of any day, week or month the policy keeps".to_string(),
                    ),
                )
            } else {
                (keep, None)
            };
            Decision {
                id: set.id.clone(),
                keep,
                release,
            }
        })
        .collect()
}

fn day_bucket(time: Timestamp) -> String {
    let date = TimeZone::UTC.to_datetime(time).date();
    format!("{:04}-{:02}-{:02}", date.year(), date.month(), date.day())
}

fn week_bucket(time: Timestamp) -> String {
    let week = TimeZone::UTC.to_datetime(time).date().iso_week_date();
    format!("{:04}-W{:02}", week.year(), week.week())
}

fn month_bucket(time: Timestamp) -> String {
    let date = TimeZone::UTC.to_datetime(time).date();
    format!("{:04}-{:02}", date.year(), date.month())
}

/// A duration as an operator reads it: `45s`, `90m`, `30h`, `24h30m`, `3d`, `9d12h`.
pub fn human_duration(seconds: u64) -> String {
    const MINUTE: u64 = 60;
    const HOUR: u64 = 3_600;
    const DAY: u64 = 86_400;
    let pair = |big: u64, big_unit: &str, small: u64, small_unit: &str| {
        if small == 0 {
            format!("{big}{big_unit}")
        } else {
            format!("{big}{big_unit}{small}{small_unit}")
        }
    };
    if seconds < 2 * MINUTE {
        format!("{seconds}s")
    } else if seconds < 2 * HOUR {
        format!("{}m", seconds / MINUTE)
    } else if seconds < 3 * DAY {
        pair(seconds / HOUR, "h", seconds % HOUR / MINUTE, "m")
    } else {
        pair(seconds / DAY, "d", seconds % DAY / HOUR, "h")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::time::Duration;

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    fn set(created: &str, complete: bool, verified: Option<bool>) -> SetInfo {
        let created_at = at(created);
        SetInfo {
            id: set_id(created_at),
            created_at,
            complete,
            verified,
            size: 1,
        }
    }

    fn keep(daily: u32, weekly: u32, monthly: u32) -> Keep {
        Keep {
            last: None,
            daily: Some(daily),
            weekly: Some(weekly),
            monthly: Some(monthly),
        }
    }

    fn decision<'a>(decisions: &'a [Decision], id: &str) -> &'a Decision {
        decisions.iter().find(|d| d.id == id).unwrap()
    }

    #[test]
    fn a_set_id_is_utc_to_the_second_and_parses_back() {
        let now = at("2026-11-25T03:00:00Z");
        assert_eq!(set_id(now), "2026-11-25T030000Z");
        assert_eq!(parse_set_id("2026-11-25T030000Z"), Some(now));
        assert_eq!(set_id(at("2026-01-02T13:04:05.9Z")), "2026-01-02T130405Z");
    }

    #[test]
    fn names_that_are_not_set_ids_do_not_parse() {
        for name in [
            "",
            "latest",
            "2026-11-25T03:00:00Z",
            "2026-13-25T030000Z",
            "2026-02-30T030000Z",
            "2026-11-25T250000Z",
            "2026-11-25T030000Z.tmp",
            "+026-11-25T030000Z",
        ] {
            assert_eq!(parse_set_id(name), None, "{name}");
        }
    }

    #[test]
    fn a_set_is_due_when_there_is_none() {
        let now = at("2026-11-25T03:00:00Z");
        assert_eq!(
            due(&[], Duration::from_secs(86_400), true, now).as_deref(),
            Some("there is no verified set")
        );
        assert_eq!(
            due(&[], Duration::from_secs(86_400), false, now).as_deref(),
            Some("there is no complete set")
        );
    }

    #[test]
    fn a_set_is_due_when_the_newest_verified_one_is_older_than_every() {
        let sets = [set("2026-11-23T21:00:00Z", true, Some(true))];
        assert_eq!(
            due(
                &sets,
                Duration::from_secs(86_400),
                true,
                at("2026-11-25T03:00:00Z")
            )
            .as_deref(),
            Some("the newest verified set is 30h old and policy says every 24h")
        );
        assert_eq!(
            due(
                &sets,
                Duration::from_secs(86_400),
                true,
                at("2026-11-24T20:59:59Z")
            ),
            None
        );
    }

    #[test]
    fn unverified_failed_and_incomplete_sets_do_not_satisfy_the_policy() {
        let now = at("2026-11-25T03:00:00Z");
        let sets = [
            set("2026-11-25T02:00:00Z", true, None),
            set("2026-11-25T02:10:00Z", true, Some(false)),
            set("2026-11-25T02:20:00Z", false, None),
        ];
        assert_eq!(
            due(&sets, Duration::from_secs(86_400), true, now).as_deref(),
            Some("there is no verified set (1 set failed verification)")
        );
        // With verify off an unverified complete set counts, a failed one still does not.
        assert_eq!(due(&sets, Duration::from_secs(86_400), false, now), None);
        assert!(due(&sets[1..], Duration::from_secs(86_400), false, now).is_some());
    }

    #[test]
    fn a_set_from_the_future_is_not_due_again() {
        let sets = [set("2026-11-26T00:00:00Z", true, Some(true))];
        assert_eq!(
            due(
                &sets,
                Duration::from_secs(3_600),
                true,
                at("2026-11-25T00:00:00Z")
            ),
            None
        );
    }

    #[test]
    fn durations_read_the_way_an_operator_writes_them() {
        assert_eq!(human_duration(45), "45s");
        assert_eq!(human_duration(90 * 60), "90m");
        assert_eq!(human_duration(24 * 3_600), "24h");
        assert_eq!(human_duration(24 * 3_600 + 30 * 60), "24h30m");
        assert_eq!(human_duration(3 * 86_400), "3d");
        assert_eq!(human_duration(9 * 86_400 + 12 * 3_600), "9d12h");
    }

    #[test]
    fn prune_keeps_the_newest_set_of_each_day_week_and_month_and_says_why() {
        let sets = [
            set("2026-11-25T03:00:00Z", true, Some(true)),
            set("2026-11-25T01:00:00Z", true, Some(true)),
            set("2026-11-24T03:00:00Z", true, Some(true)),
            set("2026-11-10T03:00:00Z", true, Some(true)),
            set("2026-10-31T03:00:00Z", true, Some(true)),
            set("2026-10-01T03:00:00Z", true, Some(true)),
        ];
        let decisions = prune(&sets, &keep(2, 2, 2), at("2026-11-25T04:00:00Z"));
        assert_eq!(
            decision(&decisions, "2026-11-25T030000Z").keep,
            [
                "daily 2026-11-25",
                "weekly 2026-W48",
                "monthly 2026-11",
                "newest verified"
            ]
        );
        assert_eq!(
            decision(&decisions, "2026-11-25T010000Z")
                .release
                .as_deref(),
            Some("not the newest set of any day, week or month the policy keeps")
        );
        assert_eq!(
            decision(&decisions, "2026-11-24T030000Z").keep,
            ["daily 2026-11-24"]
        );
        assert_eq!(
            decision(&decisions, "2026-11-10T030000Z").keep,
            ["weekly 2026-W46"]
        );
        assert_eq!(
            decision(&decisions, "2026-10-31T030000Z").keep,
            ["monthly 2026-10"]
        );
        assert!(!decision(&decisions, "2026-10-01T030000Z").is_kept());
    }

    #[test]
    fn prune_releases_failed_sets_and_old_incomplete_ones_but_not_fresh_incomplete_ones() {
        let now = at("2026-11-25T04:00:00Z");
        let sets = [
            set("2026-11-25T03:00:00Z", false, None),
            set("2026-11-24T03:00:00Z", false, None),
            set("2026-11-23T03:00:00Z", true, Some(false)),
            set("2026-11-22T03:00:00Z", true, Some(true)),
        ];
        let decisions = prune(&sets, &keep(7, 4, 12), now);
        assert!(decisions[0].is_kept(), "{decisions:?}");
        assert_eq!(
            decisions[1].release.as_deref(),
            Some("incomplete, left by an interrupted backup")
        );
        assert_eq!(
            decisions[2].release.as_deref(),
            Some("failed verification, so it does not count as a backup")
        );
        assert!(decisions[3].keep.contains(&"newest verified".to_string()));
    }

    #[test]
    fn prune_keeps_the_newest_verified_set_even_when_the_policy_keeps_nothing() {
        let sets = [
            set("2026-11-25T03:00:00Z", true, None),
            set("2026-11-24T03:00:00Z", true, Some(true)),
        ];
        let none = Keep {
            last: None,
            daily: None,
            weekly: None,
            monthly: None,
        };
        let decisions = prune(&sets, &none, at("2026-11-26T00:00:00Z"));
        assert!(!decisions[0].is_kept());
        assert_eq!(decisions[1].keep, ["newest verified"]);
    }

    #[test]
    fn without_any_verified_set_prune_keeps_the_newest_complete_one() {
        let sets = [
            set("2026-11-25T03:00:00Z", true, None),
            set("2026-11-24T03:00:00Z", true, None),
        ];
        let decisions = prune(&sets, &keep(0, 0, 0), at("2026-11-26T00:00:00Z"));
        assert_eq!(decisions[0].keep, ["newest complete (no set is verified)"]);
        assert!(!decisions[1].is_kept());
    }

    #[test]
    fn iso_weeks_at_the_turn_of_the_year_belong_to_the_right_week_year() {
        assert_eq!(week_bucket(at("2026-12-31T12:00:00Z")), "2026-W53");
        assert_eq!(week_bucket(at("2027-01-03T12:00:00Z")), "2026-W53");
        assert_eq!(week_bucket(at("2027-01-04T00:00:00Z")), "2027-W01");
        assert_eq!(week_bucket(at("2025-12-29T00:00:00Z")), "2026-W01");
    }

    #[test]
    fn time_passing_without_new_sets_releases_nothing() {
        let sets = [
            set("2026-11-25T03:00:00Z", true, Some(true)),
            set("2026-11-24T03:00:00Z", true, Some(true)),
            set("2026-11-23T03:00:00Z", true, Some(true)),
        ];
        let later = prune(&sets, &keep(3, 0, 0), at("2027-06-01T00:00:00Z"));
        assert!(later.iter().all(Decision::is_kept), "{later:?}");
    }

    // Property tests over random histories: ~2 years of timestamps, random completeness and
    // verification, random keep counts and a random clock.

    const START: i64 = 1_767_225_600; // 2026-01-01T00:00:00Z
    const SPAN: i64 = 2 * 365 * DAY_SECONDS;

    fn history() -> impl Strategy<Value = Vec<SetInfo>> {
        prop::collection::vec(
            (
                0..SPAN,
                any::<bool>(),
                prop::option::of(any::<bool>()),
                0..5u8,
            ),
            0..60,
        )
        .prop_map(|raw| {
            let mut seen = BTreeSet::new();
            raw.into_iter()
                .filter_map(|(offset, complete, verified, bias)| {
                    // Bias towards complete sets, as real histories are.
                    let complete = complete || bias > 1;
                    let created_at = Timestamp::from_second(START + offset).unwrap();
                    let id = set_id(created_at);
                    seen.insert(id.clone()).then_some(SetInfo {
                        id,
                        created_at,
                        complete,
                        verified: if complete { verified } else { None },
                        size: 1,
                    })
                })
                .collect()
        })
    }

    fn keep_counts() -> impl Strategy<Value = Keep> {
        (
            prop::option::of(0..10u32),
            prop::option::of(0..6u32),
            prop::option::of(0..14u32),
        )
            .prop_map(|(daily, weekly, monthly)| Keep {
                last: None,
                daily,
                weekly,
                monthly,
            })
    }

    fn clock() -> impl Strategy<Value = Timestamp> {
        (0..SPAN + 60 * DAY_SECONDS)
            .prop_map(|offset| Timestamp::from_second(START + offset).unwrap())
    }

    fn survivors(sets: &[SetInfo], decisions: &[Decision]) -> Vec<SetInfo> {
        sets.iter()
            .zip(decisions)
            .filter(|(_, decision)| decision.is_kept())
            .map(|(set, _)| set.clone())
            .collect()
    }

    proptest! {
        #[test]
        fn prune_never_releases_the_newest_verified_set(
            sets in history(), keep in keep_counts(), now in clock()
        ) {
            let decisions = prune(&sets, &keep, now);
            let newest = sets
                .iter()
                .zip(&decisions)
                .filter(|(set, _)| set.complete && set.verified == Some(true))
                .max_by_key(|(set, _)| set.created_at);
            if let Some((_, decision)) = newest {
                prop_assert!(decision.is_kept(), "{decision:?}");
            }
        }

        #[test]
        fn prune_never_releases_an_incomplete_set_younger_than_a_day(
            sets in history(), keep in keep_counts(), now in clock()
        ) {
            for (set, decision) in sets.iter().zip(prune(&sets, &keep, now)) {
                if !set.complete && set.age_seconds(now) < DAY_SECONDS {
                    prop_assert!(decision.is_kept(), "{set:?} {decision:?}");
                }
            }
        }

        #[test]
        fn every_decision_has_exactly_one_outcome_and_every_kept_set_a_reason(
            sets in history(), keep in keep_counts(), now in clock()
        ) {
            let decisions = prune(&sets, &keep, now);
            prop_assert_eq!(decisions.len(), sets.len());
            for (set, decision) in sets.iter().zip(&decisions) {
                prop_assert_eq!(&set.id, &decision.id);
                prop_assert!(decision.keep.is_empty() != decision.release.is_none(), "{decision:?}");
            }
        }

        #[test]
        fn no_rule_keeps_more_sets_than_its_count(
            sets in history(), keep in keep_counts(), now in clock()
        ) {
            let decisions = prune(&sets, &keep, now);
            for (rule, count) in [("daily ", keep.daily), ("weekly ", keep.weekly), ("monthly ", keep.monthly)] {
                let kept = decisions
                    .iter()
                    .filter(|d| d.keep.iter().any(|reason| reason.starts_with(rule)))
                    .count();
                prop_assert!(kept <= count.unwrap_or(0) as usize, "{rule}: {kept} > {count:?}");
            }
        }

        #[test]
        fn pruning_the_survivors_again_releases_nothing(
            sets in history(), keep in keep_counts(), now in clock()
        ) {
            let first = prune(&sets, &keep, now);
            let kept = survivors(&sets, &first);
            let second = prune(&kept, &keep, now);
            prop_assert!(second.iter().all(Decision::is_kept), "{second:?}");
            // And for the same reasons: pruning does not change why a set is kept.
            let first_kept: Vec<&Decision> = first.iter().filter(|d| d.is_kept()).collect();
            for (before, after) in first_kept.iter().zip(&second) {
                prop_assert_eq!(&before.keep, &after.keep);
            }
        }

        #[test]
        fn moving_the_clock_forward_never_resurrects_a_released_set(
            sets in history(), keep in keep_counts(), now in clock(), step in 0..400 * DAY_SECONDS
        ) {
            let later = Timestamp::from_second(now.as_second() + step).unwrap();
            let before = prune(&sets, &keep, now);
            let after = prune(&sets, &keep, later);
            for (early, late) in before.iter().zip(&after) {
                if !early.is_kept() {
                    prop_assert!(!late.is_kept(), "{early:?} came back as {late:?}");
                }
            }
        }

        #[test]
        fn a_set_id_round_trips_for_any_second(offset in 0..SPAN) {
            let time = Timestamp::from_second(START + offset).unwrap();
            let id = set_id(time);
            prop_assert_eq!(parse_set_id(&id), Some(time));
        }
    }
}
