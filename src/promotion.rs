//! The promotion gate: whether an environment may take a set of shared layers, judged from the
//! journal of the environment it is promoted from (`promotion: { from: staging, soak: 1h }`).
//! Pure: the history and the clock are inputs, so the rule is a table of cases. Reading the
//! journal is `ops::gate`'s and `ops::promote`'s, printing the CLI's.
//!
//! The rule. Walk the `from` environment's applies newest first, skipping those that changed
//! nothing (rolled back, abandoned). The run of successful applies (or resumes) that carried the
//! same shared-layer hash is how long `from` has held these layers. The gate passes when that run
//! is not empty, at least one apply in it ran health gates that passed, and the soak time has
//! passed since the first such healthy apply finished. Anything else that ends the run first
//! (other layers, a rollback or restore, an apply still running or one that failed and needs
//! attention) refuses. See docs/decisions.md for why no health gates means no promotion.

use jiff::Timestamp;
use serde::Serialize;

use crate::state::{ApplyRecord, EnvironmentKey, Outcome};

/// How promotion is configured for the environment being applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gate {
    /// The environment that must have held the layers first (same deployment).
    pub from: EnvironmentKey,
    pub soak_seconds: u64,
}

/// An apply of the `from` environment, as the verdict cites it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Cited {
    pub apply_id: String,
    pub kind: String,
    pub outcome: String,
    pub shared_hash: Option<String>,
    pub finished_at: Option<Timestamp>,
}

impl Cited {
    fn of(record: &ApplyRecord) -> Cited {
        Cited {
            apply_id: record.id.clone(),
            kind: record.kind.clone(),
            outcome: record.outcome.as_str().to_string(),
            shared_hash: record.shared_hash.clone(),
            finished_at: record.finished_at,
        }
    }

    fn when(&self) -> String {
        self.finished_at
            .map(|time| format!("finished {}", time.strftime("%Y-%m-%d %H:%M:%S UTC")))
            .unwrap_or_else(|| "not finished".to_string())
    }
}

/// Why the gate passes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Evidence {
    /// The first apply of these layers whose health gates passed; the soak counts from it.
    pub healthy: Cited,
    pub healthy_since: Timestamp,
    pub soaked_seconds: u64,
}

/// Why the gate refuses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum Refusal {
    /// The environment extends no shared layers: there is nothing to compare.
    NoSharedLayers,
    /// `from` has no successful apply.
    NeverApplied,
    /// `from` last applied other shared layers. `earlier` is when it held these, if ever.
    DifferentLayers { last: Cited, earlier: Option<Cited> },
    /// `from` was last changed by a rollback or a restore, so which layers it holds is unknown.
    Reverted { apply: Cited },
    /// `from` has an apply still running, interrupted, or failed and needing attention.
    Unsettled { apply: Cited },
    /// `from` holds these layers, but no health gate ever ran on them there.
    NoHealthGates { applied: Cited },
    /// `from` holds them healthy, but not yet for the soak time.
    Soaking {
        healthy: Cited,
        healthy_since: Timestamp,
        soaked_seconds: u64,
        ready_at: Timestamp,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Verdict {
    Passes(Evidence),
    Refused(Refusal),
}

impl Verdict {
    pub fn passes(&self) -> bool {
        matches!(self, Verdict::Passes(_))
    }
}

/// Judges whether layers with `shared_hash` may be applied, from `history`: the `from`
/// environment's applies, newest first (as `StateStore::applies` returns them).
pub fn evaluate(
    shared_hash: Option<&str>,
    gate: &Gate,
    history: &[ApplyRecord],
    now: Timestamp,
) -> Verdict {
    let Some(hash) = shared_hash else {
        return Verdict::Refused(Refusal::NoSharedLayers);
    };
    let mut run: Vec<&ApplyRecord> = Vec::new();
    let mut ended_by: Option<&ApplyRecord> = None;
    for record in history {
        // A backup-only apply (a scheduled `apply --only backup`) and a restore drill change no
        // setting: they neither bring layers nor end the run that did.
        if matches!(record.kind.as_str(), "backup" | "drill") {
            continue;
        }
        match record.outcome {
            // Undone completely: the environment is as it was before.
            Outcome::RolledBack | Outcome::Abandoned => continue,
            Outcome::Succeeded
                if brings_layers(record) && record.shared_hash.as_deref() == Some(hash) =>
            {
                run.push(record);
            }
            Outcome::Succeeded | Outcome::Running | Outcome::Failed => {
                ended_by = Some(record);
                break;
            }
        }
    }
    if run.is_empty() {
        let Some(last) = ended_by else {
            return Verdict::Refused(Refusal::NeverApplied);
        };
        let refusal = match last.outcome {
            Outcome::Running | Outcome::Failed => Refusal::Unsettled {
                apply: Cited::of(last),
            },
            _ if !brings_layers(last) => Refusal::Reverted {
                apply: Cited::of(last),
            },
            _ => Refusal::DifferentLayers {
                last: Cited::of(last),
                earlier: history
                    .iter()
                    .find(|record| {
                        record.outcome == Outcome::Succeeded
                            && brings_layers(record)
                            && record.shared_hash.as_deref() == Some(hash)
                    })
                    .map(Cited::of),
            },
        };
        return Verdict::Refused(refusal);
    }
    // Oldest first within the run: the soak counts from the first proof of health.
    let Some(healthy) = run
        .iter()
        .rev()
        .find(|record| record.health_passed == Some(true))
    else {
        let oldest = run.last().expect("the run is not empty");
        return Verdict::Refused(Refusal::NoHealthGates {
            applied: Cited::of(oldest),
        });
    };
    let healthy_since = healthy.finished_at.unwrap_or(healthy.started_at);
    let soaked_seconds = u64::try_from(now.duration_since(healthy_since).as_secs()).unwrap_or(0);
    if soaked_seconds < gate.soak_seconds {
        let soak =
            jiff::SignedDuration::from_secs(i64::try_from(gate.soak_seconds).unwrap_or(i64::MAX));
        return Verdict::Refused(Refusal::Soaking {
            healthy: Cited::of(healthy),
            healthy_since,
            soaked_seconds,
            ready_at: healthy_since.checked_add(soak).unwrap_or(Timestamp::MAX),
        });
    }
    Verdict::Passes(Evidence {
        healthy: Cited::of(healthy),
        healthy_since,
        soaked_seconds,
    })
}

/// Applies and resumes put the planned layers in place; rollbacks and restores put back
/// something older, whatever hash they recorded.
fn brings_layers(record: &ApplyRecord) -> bool {
    matches!(record.kind.as_str(), "apply" | "resume")
}

/// The first 12 characters of a shared-layer hash, as people see it.
pub fn short(hash: &str) -> &str {
    &hash[..hash.len().min(12)]
}

/// A duration for people: `2d 3h`, `1h 30m`, `45m`, `20s`.
pub fn human(seconds: u64) -> String {
    let (days, hours, minutes) = (seconds / 86_400, seconds / 3_600 % 24, seconds / 60 % 60);
    match (days, hours, minutes) {
        (0, 0, 0) => format!("{seconds}s"),
        (0, 0, minutes) => format!("{minutes}m"),
        (0, hours, 0) => format!("{hours}h"),
        (0, hours, minutes) => format!("{hours}h {minutes}m"),
        (days, 0, _) => format!("{days}d"),
        (days, hours, _) => format!("{days}d {hours}h"),
    }
}

fn at(time: Timestamp) -> String {
    time.strftime("%Y-%m-%d %H:%M:%S UTC").to_string()
}

impl Refusal {
    /// One paragraph saying why, naming the applies it rests on. `to` is the environment
    /// being applied, `hash` the shared-layer hash it carries.
    pub fn explain(&self, to: &str, gate: &Gate, hash: Option<&str>) -> String {
        let from = &gate.from.environment;
        let hash = hash.map(short).unwrap_or("-");
        match self {
            Refusal::NoSharedLayers => format!(
                "{to} extends no shared layers, so there is nothing {from} could have proven \
                 first; promotion compares the layers a file `extends`"
            ),
            Refusal::NeverApplied => format!(
                "{from} has no successful apply; apply these shared layers ({hash}) to {from} first"
            ),
            Refusal::DifferentLayers { last, earlier } => {
                let mut text = format!(
                    "{from} last applied other shared layers ({} in apply {}, {}); this apply \
                     carries {hash}",
                    last.shared_hash.as_deref().map(short).unwrap_or("none"),
                    last.apply_id,
                    last.when()
                );
                if let Some(earlier) = earlier {
                    text.push_str(&format!(
                        "; {from} held them in apply {} ({}) but has moved on since",
                        earlier.apply_id,
                        earlier.when()
                    ));
                } else {
                    text.push_str(&format!(", which {from} never applied"));
                }
                text
            }
            Refusal::Reverted { apply } => format!(
                "{from} was last changed by a {} (apply {}, {}), so the shared layers it holds \
                 are not known; apply these layers ({hash}) to {from} again",
                apply.kind,
                apply.apply_id,
                apply.when()
            ),
            Refusal::Unsettled { apply } => format!(
                "{from}'s latest apply {} is {}; settle it (`tldw-ops apply --resume` or \
                 `tldw-ops rollback --unfinished` on {from}) before promoting",
                apply.apply_id,
                if apply.outcome == "running" {
                    "still running or was interrupted"
                } else {
                    "failed and needs attention"
                }
            ),
            Refusal::NoHealthGates { applied } => format!(
                "{from} applied these shared layers (apply {}, {}) but no health gate ran, so \
                 nothing proved them healthy there; configure `target.service.health` for \
                 {from} (gates run after a change to .env or config.txt) and apply again",
                applied.apply_id,
                applied.when()
            ),
            Refusal::Soaking {
                healthy,
                healthy_since,
                soaked_seconds,
                ready_at,
            } => format!(
                "{from} has run these shared layers healthy since {} (apply {}), {} of the {} \
                 soak; {to} may take them from {} (in {})",
                at(*healthy_since),
                healthy.apply_id,
                human(*soaked_seconds),
                human(gate.soak_seconds),
                at(*ready_at),
                human(gate.soak_seconds.saturating_sub(*soaked_seconds))
            ),
        }
    }
}

impl Evidence {
    pub fn explain(&self, gate: &Gate) -> String {
        format!(
            "{} has run these shared layers healthy since {} (apply {}), {} ago; the soak is {}",
            gate.from.environment,
            at(self.healthy_since),
            self.healthy.apply_id,
            human(self.soaked_seconds),
            human(gate.soak_seconds)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LAYERS: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const OTHER: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbb";

    fn time(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    fn gate() -> Gate {
        Gate {
            from: EnvironmentKey {
                deployment: "default".into(),
                environment: "staging".into(),
            },
            soak_seconds: 3_600,
        }
    }

    /// An apply of staging that finished at `finished`.
    fn apply(
        id: &str,
        kind: &str,
        outcome: Outcome,
        hash: &str,
        health: Option<bool>,
        finished: &str,
    ) -> ApplyRecord {
        ApplyRecord {
            id: id.into(),
            environment: gate().from,
            kind: kind.into(),
            plan_hash: "p".into(),
            desired_hash: "d".into(),
            shared_hash: Some(hash.into()),
            git_commit: None,
            actor_user: "ci".into(),
            actor_host: "runner".into(),
            pid: 1,
            started_at: time(finished),
            finished_at: (outcome != Outcome::Running).then(|| time(finished)),
            outcome,
            changes: 1,
            health_passed: health,
            override_reason: None,
            message: None,
            plan_json: "{}".into(),
        }
    }

    fn judge(history: &[ApplyRecord], now: &str) -> Verdict {
        evaluate(Some(LAYERS), &gate(), history, time(now))
    }

    fn reason(verdict: &Verdict) -> String {
        match verdict {
            Verdict::Passes(_) => "passes".into(),
            Verdict::Refused(refusal) => serde_json::to_value(refusal).unwrap()["reason"]
                .as_str()
                .unwrap()
                .to_string(),
        }
    }

    #[test]
    fn the_gate_follows_the_table() {
        use Outcome::*;
        let healthy = |id, finished| apply(id, "apply", Succeeded, LAYERS, Some(true), finished);
        let cases: Vec<(&str, Vec<ApplyRecord>, &str, &str)> = vec![
            (
                "no history",
                vec![],
                "2026-01-01T05:00:00Z",
                "never_applied",
            ),
            (
                "only rolled-back applies",
                vec![apply(
                    "a",
                    "apply",
                    RolledBack,
                    LAYERS,
                    Some(false),
                    "2026-01-01T00:00:00Z",
                )],
                "2026-01-01T05:00:00Z",
                "never_applied",
            ),
            (
                "healthy and soaked",
                vec![healthy("a", "2026-01-01T00:00:00Z")],
                "2026-01-01T01:00:00Z",
                "passes",
            ),
            (
                "healthy, soak not over",
                vec![healthy("a", "2026-01-01T00:00:00Z")],
                "2026-01-01T00:59:59Z",
                "soaking",
            ),
            (
                "other layers applied later",
                vec![
                    apply(
                        "b",
                        "apply",
                        Succeeded,
                        OTHER,
                        Some(true),
                        "2026-01-01T02:00:00Z",
                    ),
                    healthy("a", "2026-01-01T00:00:00Z"),
                ],
                "2026-01-01T05:00:00Z",
                "different_layers",
            ),
            (
                "a later rolled-back attempt changes nothing",
                vec![
                    apply(
                        "b",
                        "apply",
                        RolledBack,
                        OTHER,
                        Some(false),
                        "2026-01-01T02:00:00Z",
                    ),
                    healthy("a", "2026-01-01T00:00:00Z"),
                ],
                "2026-01-01T05:00:00Z",
                "passes",
            ),
            (
                "a later apply of the same layers keeps the soak from the first",
                vec![
                    apply(
                        "b",
                        "apply",
                        Succeeded,
                        LAYERS,
                        None,
                        "2026-01-01T02:00:00Z",
                    ),
                    healthy("a", "2026-01-01T00:00:00Z"),
                ],
                "2026-01-01T01:30:00Z",
                "passes",
            ),
            (
                "no health gate ever ran",
                vec![apply(
                    "a",
                    "apply",
                    Succeeded,
                    LAYERS,
                    None,
                    "2026-01-01T00:00:00Z",
                )],
                "2026-01-01T05:00:00Z",
                "no_health_gates",
            ),
            (
                "the soak counts from the first healthy apply",
                vec![
                    healthy("b", "2026-01-01T02:00:00Z"),
                    apply(
                        "a",
                        "apply",
                        Succeeded,
                        LAYERS,
                        None,
                        "2026-01-01T00:00:00Z",
                    ),
                ],
                "2026-01-01T02:30:00Z",
                "soaking",
            ),
            (
                "a resume brings layers like an apply",
                vec![apply(
                    "a",
                    "resume",
                    Succeeded,
                    LAYERS,
                    Some(true),
                    "2026-01-01T00:00:00Z",
                )],
                "2026-01-01T05:00:00Z",
                "passes",
            ),
            (
                "a rollback since leaves the layers unknown",
                vec![
                    apply(
                        "b",
                        "rollback",
                        Succeeded,
                        LAYERS,
                        Some(true),
                        "2026-01-01T02:00:00Z",
                    ),
                    healthy("a", "2026-01-01T00:00:00Z"),
                ],
                "2026-01-01T05:00:00Z",
                "reverted",
            ),
            (
                "re-applied after a rollback, the soak restarts",
                vec![
                    healthy("c", "2026-01-01T03:00:00Z"),
                    apply(
                        "b",
                        "rollback",
                        Succeeded,
                        LAYERS,
                        Some(true),
                        "2026-01-01T02:00:00Z",
                    ),
                    healthy("a", "2026-01-01T00:00:00Z"),
                ],
                "2026-01-01T03:30:00Z",
                "soaking",
            ),
            (
                "an apply still running",
                vec![
                    apply("b", "apply", Running, LAYERS, None, "2026-01-01T02:00:00Z"),
                    healthy("a", "2026-01-01T00:00:00Z"),
                ],
                "2026-01-01T05:00:00Z",
                "unsettled",
            ),
            (
                "an apply that failed and needs attention",
                vec![
                    apply(
                        "b",
                        "apply",
                        Failed,
                        OTHER,
                        Some(false),
                        "2026-01-01T02:00:00Z",
                    ),
                    healthy("a", "2026-01-01T00:00:00Z"),
                ],
                "2026-01-01T05:00:00Z",
                "unsettled",
            ),
        ];
        for (name, history, now, expected) in cases {
            assert_eq!(reason(&judge(&history, now)), expected, "{name}");
        }
    }

    #[test]
    fn a_scheduled_backup_or_a_restore_drill_in_staging_does_not_end_the_soak() {
        use Outcome::*;
        for kind in ["backup", "drill"] {
            let history = vec![
                apply("b2", kind, Succeeded, "other", None, "2026-01-02T03:00:00Z"),
                apply("b1", kind, Failed, "other", None, "2026-01-01T15:00:00Z"),
                apply(
                    "a1",
                    "apply",
                    Succeeded,
                    LAYERS,
                    Some(true),
                    "2026-01-01T10:00:00Z",
                ),
            ];
            assert_eq!(
                reason(&judge(&history, "2026-01-02T12:00:00Z")),
                "passes",
                "{kind}"
            );
        }
    }

    #[test]
    fn without_shared_layers_there_is_nothing_to_promote() {
        let verdict = evaluate(None, &gate(), &[], time("2026-01-01T00:00:00Z"));
        assert_eq!(verdict, Verdict::Refused(Refusal::NoSharedLayers));
    }

    #[test]
    fn refusals_name_the_applies_and_times_they_rest_on() {
        use Outcome::Succeeded;
        let history = vec![
            apply(
                "b",
                "apply",
                Succeeded,
                OTHER,
                Some(true),
                "2026-01-01T02:00:00Z",
            ),
            apply(
                "a",
                "apply",
                Succeeded,
                LAYERS,
                Some(true),
                "2026-01-01T00:00:00Z",
            ),
        ];
        let Verdict::Refused(refusal) = judge(&history, "2026-01-01T05:00:00Z") else {
            panic!("refused");
        };
        assert_eq!(
            refusal.explain("prod", &gate(), Some(LAYERS)),
            "staging last applied other shared layers (bbbbbbbbbbbb in apply b, finished \
             2026-01-01 02:00:00 UTC); this apply carries aaaaaaaaaaaa; staging held them in \
             apply a (finished 2026-01-01 00:00:00 UTC) but has moved on since"
        );
        let history = vec![apply(
            "a",
            "apply",
            Succeeded,
            LAYERS,
            Some(true),
            "2026-01-01T00:00:00Z",
        )];
        let Verdict::Refused(refusal) = judge(&history, "2026-01-01T00:20:00Z") else {
            panic!("refused");
        };
        assert_eq!(
            refusal.explain("prod", &gate(), Some(LAYERS)),
            "staging has run these shared layers healthy since 2026-01-01 00:00:00 UTC (apply \
             a), 20m of the 1h soak; prod may take them from 2026-01-01 01:00:00 UTC (in 40m)"
        );
    }

    #[test]
    fn durations_read_like_people_write_them() {
        assert_eq!(human(20), "20s");
        assert_eq!(human(2_700), "45m");
        assert_eq!(human(3_600), "1h");
        assert_eq!(human(5_400), "1h 30m");
        assert_eq!(human(86_400 * 2 + 3_600 * 3 + 60), "2d 3h");
        assert_eq!(human(86_400), "1d");
    }
}
