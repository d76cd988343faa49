//! The pure half of the admin API kinds: `quota.user.*` (per-user storage quotas) and
//! `retention.*` (retention policy overrides), what the spec declares of them and how their
//! changes become API steps.

use crate::model::{Address, Desired, ObservedValue, Resource};
use crate::plan::adopt::{AdoptInput, Edit, Refusal};
use crate::plan::kind::{
    CompileError, CompileInput, Kind, LikelyCause, Resources, StepTarget, Steps, child_locations,
};
use crate::plan::{Action, Change, Operation, PlanInput, StepKind};
use crate::spec::load::escape_pointer;
use crate::spec::mapping::{retention_key, retention_values};
use crate::spec::semantic::locate;
use crate::spec::unmap;

/// `quota.user.*`: per-user storage quotas.
pub struct Quotas;
/// `retention.*`: retention policy overrides.
pub struct Retention;

/// Quota changes per journaled step: small enough that a crash redoes little, large enough that
/// journaling does not dominate.
pub const QUOTA_CHUNK: usize = 100;

/// tldw's built-in default for a retention policy, restored when the YAML drops an override.
pub fn default_retention_days(policy_key: &str) -> u64 {
    retention_key(policy_key).map_or(180, |key| key.default_days)
}

impl Kind for Quotas {
    fn section(&self, _address: &Address) -> (u8, String) {
        (3, "quotas".to_string())
    }

    fn likely_cause(&self, _address: &Address) -> LikelyCause {
        LikelyCause::AdminQuota
    }

    fn compile(
        &self,
        input: &CompileInput<'_>,
        resources: &mut Resources,
    ) -> Result<(), CompileError> {
        let Some(quotas) = &input.checked.spec.quotas else {
            return Ok(());
        };
        let root = &input.checked.loaded.root;
        let locations = child_locations(root.get("quotas").and_then(|quotas| quotas.get("users")));
        for (username, limit) in &quotas.users {
            resources.add(Resource {
                address: Address::quota_user(username),
                desired: Desired::Quota(limit.0),
                sensitive: false,
                source: locations.get(username.as_str()).cloned(),
            });
        }
        Ok(())
    }

    fn operation(&self, input: &PlanInput<'_>, change: &Change) -> Option<Operation> {
        let desired = input
            .desired
            .get(&change.address)
            .map(|resource| &resource.desired);
        Some(Operation::SetQuota {
            address: change.address.clone(),
            username: change.address.name().to_string(),
            quota_mb: match (change.action, desired) {
                (Action::Delete, _) => None,
                (_, Some(Desired::Quota(limit))) => *limit,
                _ => None,
            },
        })
    }

    fn steps(&self) -> Option<Steps> {
        Some(Steps {
            kind: StepKind::EnsureQuotas,
            target: StepTarget::Api,
            per_step: Some(QUOTA_CHUNK),
            restarts: false,
        })
    }

    fn adopts(&self) -> bool {
        true
    }

    fn adopt(&self, input: &AdoptInput<'_>) -> Result<(String, Edit), Refusal> {
        let pointer = format!("/quotas/users/{}", escape_pointer(input.address.name()));
        let written = match input.observed {
            ObservedValue::Quota(Some(megabytes)) => megabytes.to_string(),
            ObservedValue::Quota(None) => "null".to_string(),
            _ => {
                return Err((input.does_not_map)(
                    "quotas.users",
                    "the observed value is not a quota".to_string(),
                ));
            }
        };
        Ok((pointer, Edit::Scalar(written)))
    }
}

impl Kind for Retention {
    fn section(&self, _address: &Address) -> (u8, String) {
        (4, "retention".to_string())
    }

    fn likely_cause(&self, _address: &Address) -> LikelyCause {
        LikelyCause::AdminRetention
    }

    /// Retention overrides are managed through the admin API, so only with `target.api`.
    fn compile(
        &self,
        input: &CompileInput<'_>,
        resources: &mut Resources,
    ) -> Result<(), CompileError> {
        let spec = &input.checked.spec;
        let (Some(_), Some(retention)) = (&spec.target.api, &spec.retention) else {
            return Ok(());
        };
        for (key, duration) in retention_values(retention) {
            resources.add(Resource {
                address: Address::retention(key.policy_key),
                desired: Desired::Days(duration.as_seconds() / 86_400),
                sensitive: false,
                source: locate(&input.checked.loaded.root, key.yaml_path),
            });
        }
        Ok(())
    }

    fn operation(&self, input: &PlanInput<'_>, change: &Change) -> Option<Operation> {
        let policy_key = change.address.name().to_string();
        let desired = input
            .desired
            .get(&change.address)
            .map(|resource| &resource.desired);
        let days = match (change.action, desired) {
            (Action::Delete, _) | (_, None) => default_retention_days(&policy_key),
            (_, Some(Desired::Days(days))) => *days,
            (_, Some(_)) => return None,
        };
        Some(Operation::SetRetention {
            address: change.address.clone(),
            current_days: match input.observed.get(&change.address) {
                ObservedValue::Days(days) => Some(*days),
                _ => None,
            },
            policy_key,
            days,
        })
    }

    /// One step per policy: each is its own request and its own undo.
    fn steps(&self) -> Option<Steps> {
        Some(Steps {
            kind: StepKind::EnsureRetention,
            target: StepTarget::Api,
            per_step: Some(1),
            restarts: false,
        })
    }

    fn adopts(&self) -> bool {
        true
    }

    fn adopt(&self, input: &AdoptInput<'_>) -> Result<(String, Edit), Refusal> {
        let key = retention_key(input.address.name()).ok_or_else(|| {
            (input.does_not_map)(
                "retention",
                "not a retention policy tldw-ops knows".to_string(),
            )
        })?;
        let days = unmap::retention_days(key, input.now)
            .map_err(|reason| (input.does_not_map)("retention", reason))?;
        Ok((key.yaml_path.to_string(), Edit::Scalar(format!("{days}d"))))
    }
}
