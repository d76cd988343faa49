//! Drift: what changed in the deployment outside tldw-ops since it last applied. For every
//! address the state store says is managed, the observed value's salted hash is compared with
//! the hash recorded at the last apply; addresses that were never applied are not drift (`plan`
//! shows those). Each finding names who or what most likely made the change, from what tldw
//! itself is known to rewrite (`../shared/TLDW_TARGET.md` §8 items 10 and 19).
//!
//! Pure: the caller loads, observes and prints. No value of a sensitive address ever leaves
//! this module; they are shown as fingerprints. [`adopt`] writes observed values back into the
//! YAML.

pub mod policy;

use std::fmt::Write as _;

use serde_json::json;

use crate::model::{Address, DesiredState, Observed};
use crate::plan::render::Paint;
use crate::secrets::{is_sensitive, show_hash, value_hash};
use crate::spec::Location;
use crate::state::EnvironmentState;

pub use crate::kinds::LikelyCause;
pub use crate::kinds::env_file::ENTRYPOINT_KEYS;

/// One address that changed outside tldw-ops.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Drifted {
    pub address: Address,
    pub sensitive: bool,
    /// The value last applied when it is known and not sensitive, else its fingerprint.
    pub last_applied: String,
    /// What is there now, masked when sensitive; `None` when the value is gone.
    pub observed: Option<String>,
    pub cause: LikelyCause,
    /// Whether the desired state still declares it (else plan removes it).
    pub declared: bool,
    /// Where the YAML declares it.
    pub source: Option<Location>,
}

/// What `detect` found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DriftReport {
    pub environment: String,
    pub drift: Vec<Drifted>,
    /// Changed since the last apply, but to exactly the value the desired state declares now
    /// (adopted, or set to it by someone else): nothing to restore; the next apply records it.
    pub matches_desired: Vec<Address>,
    /// Managed addresses this run could not observe (their provider did not read them).
    pub unobserved: Vec<Address>,
    /// How many managed addresses were compared.
    pub compared: usize,
    /// Production rules the running deployment breaks (see [`policy`]).
    pub policy: Vec<policy::Finding>,
}

impl DriftReport {
    pub fn has_drift(&self) -> bool {
        !self.drift.is_empty()
    }

    /// Whether monitoring should be told: drift, or a broken production rule.
    pub fn needs_attention(&self) -> bool {
        self.has_drift()
            || self
                .policy
                .iter()
                .any(|finding| finding.severity == crate::spec::Severity::Error)
    }
}

/// Compares every managed address's observed value with what was last applied there.
pub fn detect(
    desired: &DesiredState,
    observed: &Observed,
    state: &EnvironmentState,
) -> DriftReport {
    let salt = state.salt.as_slice();
    let mut report = DriftReport {
        environment: desired.environment.clone(),
        ..DriftReport::default()
    };
    for (name, record) in &state.managed {
        let Ok(address) = Address::parse(name) else {
            continue;
        };
        let Some(value) = observed.values.get(&address) else {
            report.unobserved.push(address);
            continue;
        };
        report.compared += 1;
        let now = value.canonical();
        let now_hash = now.as_deref().map(|value| value_hash(salt, value));
        if now_hash.as_deref() == Some(record.value_hash.as_str()) {
            continue;
        }
        let resource = desired.get(&address);
        let wanted = resource.and_then(|resource| resource.desired.canonical());
        if now.is_some() && wanted == now {
            report.matches_desired.push(address);
            continue;
        }
        // A value can turn sensitive after the apply (a URL that gained a password).
        let name = crate::kinds::kind(address.kind()).key_name(&address);
        let sensitive = record.sensitive
            || resource.is_some_and(|resource| resource.sensitive)
            || matches!((name, &now), (Some(name), Some(value)) if is_sensitive(name, value));
        // The declared value is what was applied when its hash matches the record.
        let last_applied = match &wanted {
            Some(value) if !sensitive && value_hash(salt, value) == record.value_hash => {
                value.clone()
            }
            _ => show_hash(&record.value_hash),
        };
        let shown_now = now.map(|value| {
            if sensitive {
                show_hash(&value_hash(salt, &value))
            } else {
                value
            }
        });
        report.drift.push(Drifted {
            cause: crate::kinds::likely_cause(&address),
            declared: resource.is_some(),
            source: resource.and_then(|resource| resource.source.clone()),
            address,
            sensitive,
            last_applied,
            observed: shown_now,
        });
    }
    report
}

/// The report as JSON: `{"environment", "drift": [{"address", "sensitive", "last_applied",
/// "observed", "likely_cause", "source": {"file", "line", "column"}}], "matches_desired": [..]}`.
pub fn render_json(report: &DriftReport) -> String {
    let drift: Vec<serde_json::Value> = report
        .drift
        .iter()
        .map(|item| {
            json!({
                "address": item.address.as_str(),
                "sensitive": item.sensitive,
                "last_applied": item.last_applied,
                "observed": item.observed,
                "likely_cause": item.cause.describe(&item.address),
                "source": item.source.as_ref().map(|location| json!({
                    "file": location.file.as_ref(),
                    "line": location.line,
                    "column": location.column,
                })),
            })
        })
        .collect();
    let value = json!({
        "environment": report.environment,
        "drift": drift,
        "matches_desired": report.matches_desired.iter().map(Address::as_str).collect::<Vec<_>>(),
        "policy": report.policy,
    });
    let mut text = serde_json::to_string_pretty(&value).expect("JSON values serialise");
    text.push('\n');
    text
}

/// The report for a terminal.
pub fn render_text(report: &DriftReport, paint: &dyn Paint) -> String {
    let mut out = String::new();
    if report.drift.is_empty() {
        let unchanged = report.compared.saturating_sub(report.matches_desired.len());
        if report.compared == 0 {
            let _ = writeln!(
                out,
                "No drift in {}: tldw-ops has applied nothing here yet (`tldw-ops plan` shows what it would change).",
                report.environment
            );
        } else {
            let _ = writeln!(
                out,
                "No drift in {}: {unchanged} managed address{} match{} what tldw-ops last applied.",
                report.environment,
                if unchanged == 1 { "" } else { "es" },
                if unchanged == 1 { "es" } else { "" },
            );
        }
    } else {
        let count = report.drift.len();
        let _ = writeln!(
            out,
            "{} in {}: {count} address{} changed outside tldw-ops since the last apply.\n",
            paint.bold("Drift"),
            report.environment,
            if count == 1 { "" } else { "es" }
        );
        for item in &report.drift {
            let mut head = format!(
                "  {} {}",
                paint.change("~"),
                paint.bold(item.address.as_str())
            );
            if item.sensitive {
                head.push_str(" (sensitive)");
            }
            let _ = writeln!(out, "{head}");
            let shown = |value: &str| {
                if value.starts_with("fp:") {
                    value.to_string()
                } else {
                    format!("{value:?}")
                }
            };
            let _ = writeln!(out, "      last applied: {}", shown(&item.last_applied));
            let _ = writeln!(
                out,
                "      now:          {}",
                item.observed
                    .as_deref()
                    .map(shown)
                    .unwrap_or_else(|| paint.remove("(removed)"))
            );
            let _ = writeln!(
                out,
                "      likely:       {}",
                item.cause.describe(&item.address)
            );
            let declared = match (&item.source, item.declared) {
                (Some(location), _) => Some(location.to_string()),
                (None, false) => Some("no longer declared (plan removes it)".to_string()),
                (None, true) => None,
            };
            if let Some(declared) = declared {
                let _ = writeln!(
                    out,
                    "      {}",
                    paint.dim(&format!("declared at:  {declared}"))
                );
            }
        }
        let _ = writeln!(
            out,
            "\n`tldw-ops plan` shows how apply restores the declared values; \
             `tldw-ops drift --adopt ADDRESS` writes an observed value into the YAML instead."
        );
    }
    if !report.matches_desired.is_empty() {
        let count = report.matches_desired.len();
        let (noun, verb, pronoun) = if count == 1 {
            ("address", "holds", "it")
        } else {
            ("addresses", "hold", "them")
        };
        let _ = writeln!(
            out,
            "{}",
            paint.dim(&format!(
                "{count} {noun} changed since the last apply but now {verb} the declared value; the next apply records {pronoun}: {}",
                report
                    .matches_desired
                    .iter()
                    .map(Address::as_str)
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        );
    }
    if !report.unobserved.is_empty() {
        let _ = writeln!(
            out,
            "{}",
            paint.dim(&format!(
                "not checked (not observed by this run): {}",
                report
                    .unobserved
                    .iter()
                    .map(Address::as_str)
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        );
    }
    if !report.policy.is_empty() {
        let _ = writeln!(
            out,
            "\n{} (the running deployment breaks these production rules):",
            paint.bold("Policy")
        );
        for finding in &report.policy {
            let _ = writeln!(
                out,
                "  {}[policy.{}] {}\n      {}",
                finding.severity.label(),
                finding.rule,
                finding.message,
                paint.dim(&finding.location)
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::model::{Desired, ObservedValue, Resource};
    use crate::state::ManagedRecord;

    const SALT: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn record(value: &str, sensitive: bool) -> ManagedRecord {
        ManagedRecord {
            value_hash: value_hash(SALT, value),
            sensitive,
            apply_id: "a1".to_string(),
            updated_at: jiff::Timestamp::UNIX_EPOCH,
        }
    }

    fn text(address: &str, value: &str) -> (Address, Resource) {
        let address = Address::parse(address).unwrap();
        let sensitive = is_sensitive(address.name(), value);
        (
            address.clone(),
            Resource {
                address,
                desired: Desired::Text(value.to_string()),
                sensitive,
                source: None,
            },
        )
    }

    #[test]
    fn likely_causes_follow_what_tldw_rewrites() {
        let cause = |text: &str| crate::kinds::likely_cause(&Address::parse(text).unwrap());
        assert_eq!(cause("env.AUTH_MODE"), LikelyCause::DockerEntrypoint);
        assert_eq!(
            cause("secret.MCP_JWT_SECRET"),
            LikelyCause::DockerEntrypoint
        );
        assert_eq!(cause("env.LOG_LEVEL"), LikelyCause::ByHand);
        assert_eq!(
            cause("config.AuthNZ.require_registration_code"),
            LikelyCause::RegistrationSettings
        );
        assert_eq!(
            cause("config.AuthNZ.rate_limit_per_minute"),
            LikelyCause::ByHand
        );
        assert_eq!(
            cause("config.Setup.setup_completed"),
            LikelyCause::SetupWizard
        );
        assert_eq!(cause("quota.user.alice"), LikelyCause::AdminQuota);
    }

    #[test]
    fn only_managed_values_that_moved_are_drift_and_sensitive_ones_stay_masked() {
        let desired = DesiredState {
            keep_previous: BTreeMap::new(),
            environment: "dev".to_string(),
            deployment: "default".to_string(),
            resources: [
                {
                    let (address, mut resource) = text("env.LOG_LEVEL", "info");
                    resource.source = Some(Location::new(&std::sync::Arc::from("dev.yaml"), 7, 14));
                    (address, resource)
                },
                text("env.UVICORN_WORKERS", "2"),
                text("env.WORKERS_NEW", "1"),
                text("env.DATABASE_URL", "postgresql://u:old-password@db/x"),
            ]
            .into_iter()
            .collect(),
        };
        let state = EnvironmentState {
            salt: SALT.to_vec(),
            managed: BTreeMap::from([
                ("env.LOG_LEVEL".to_string(), record("info", false)),
                ("env.UVICORN_WORKERS".to_string(), record("4", false)),
                (
                    "env.DATABASE_URL".to_string(),
                    record("postgresql://u:old-password@db/x", true),
                ),
                ("env.GONE".to_string(), record("x", false)),
            ]),
            secrets: BTreeMap::new(),
        };
        let observed = Observed {
            values: BTreeMap::from([
                (
                    Address::env("LOG_LEVEL"),
                    ObservedValue::Text("debug".into()),
                ),
                (
                    Address::env("UVICORN_WORKERS"),
                    ObservedValue::Text("2".into()),
                ),
                (Address::env("WORKERS_NEW"), ObservedValue::Text("7".into())),
                (
                    Address::env("DATABASE_URL"),
                    ObservedValue::Text("postgresql://u:new-password@db/x".into()),
                ),
                (Address::env("GONE"), ObservedValue::Absent),
            ]),
            warnings: Vec::new(),
        };
        let report = detect(&desired, &observed, &state);
        let drifted: Vec<&str> = report
            .drift
            .iter()
            .map(|item| item.address.as_str())
            .collect();
        assert_eq!(
            drifted,
            vec!["env.DATABASE_URL", "env.GONE", "env.LOG_LEVEL"]
        );
        assert_eq!(
            report.matches_desired,
            vec![Address::env("UVICORN_WORKERS")]
        );
        let database = &report.drift[0];
        assert!(database.sensitive);
        assert!(database.last_applied.starts_with("fp:"));
        assert!(database.observed.as_deref().unwrap().starts_with("fp:"));
        assert_eq!(report.drift[1].observed, None);
        assert_eq!(report.drift[2].last_applied, "info");
        let json = render_json(&report);
        let text = render_text(&report, &crate::plan::render::Plain);
        insta::assert_snapshot!("drift_text", text);
        for output in [json, text] {
            assert!(!output.contains("password"), "{output}");
        }
    }
}
