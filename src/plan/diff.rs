//! The planner: compares desired with observed and last applied, and orders the steps.

use std::collections::{BTreeMap, BTreeSet};

use jiff::Timestamp;

use super::kind::Diff;
use super::service::{HealthCheck, SmokeCheck};
use super::{ABSENT, Action, Change, FORMAT_VERSION, Operation, Plan, SourceRef, Step, StepKind};
use crate::model::state::EnvironmentState;
use crate::model::{Address, DesiredState, Observed};
use crate::secrets::{shown, value_hash};

/// Everything the planner needs. The clock is an input.
pub struct PlanInput<'a> {
    pub desired: &'a DesiredState,
    pub observed: &'a Observed,
    pub state: &'a EnvironmentState,
    pub now: Timestamp,
    pub tool_version: &'a str,
    pub file: &'a str,
    pub desired_hash: &'a str,
    pub shared_hash: Option<&'a str>,
    pub git_commit: Option<&'a str>,
    /// `target.root`, the `.env` and `config.txt` paths, for step targets.
    pub root: &'a str,
    pub env_file: &'a str,
    pub config_file: &'a str,
    pub api_url: Option<&'a str>,
    pub restart: Option<&'a [String]>,
    pub health: &'a [HealthCheck],
    pub smoke: &'a [SmokeCheck],
    /// The backup policy and the sets observed, when the desired state has a `backup:` policy.
    pub backups: Option<super::backups::BackupInput<'a>>,
    /// The kinds, which make the operations and steps of their changes.
    pub kinds: super::kind::Registry,
}

/// Plans the changes that take `observed` to `desired`.
pub fn plan(input: &PlanInput<'_>) -> Plan {
    let salt = input.state.salt.as_slice();
    let mut addresses: BTreeSet<Address> = input.desired.resources.keys().cloned().collect();
    for managed in input.state.managed.keys() {
        if let Ok(address) = Address::parse(managed) {
            addresses.insert(address);
        }
    }
    let mut changes = Vec::new();
    let mut fingerprints = BTreeMap::new();
    for address in &addresses {
        let observed = input.observed.get(address);
        let observed_hash = observed.canonical().map(|value| value_hash(salt, &value));
        let managed = input.state.managed.get(address.as_str());
        let drift = match (managed, &observed_hash) {
            (Some(record), Some(hash)) => record.value_hash != *hash,
            (Some(_), None) => true,
            (None, _) => false,
        };
        let change = match input.desired.get(address) {
            Some(resource) => (input.kinds)(address.kind())
                .change(
                    input,
                    &Diff {
                        address,
                        desired: &resource.desired,
                        sensitive: resource.sensitive,
                        observed,
                        drift,
                        salt,
                    },
                )
                .map(|mut change| {
                    change.source = resource.source.as_ref().map(|location| SourceRef {
                        file: location.file.to_string(),
                        line: location.line,
                        column: location.column,
                    });
                    change
                }),
            None => observed.canonical().map(|before| {
                let sensitive = managed.is_some_and(|record| record.sensitive);
                Change {
                    address: address.clone(),
                    action: Action::Delete,
                    reason: "no longer declared in the desired state".to_string(),
                    sensitive,
                    drift,
                    before: Some(shown(salt, &before, sensitive)),
                    after: None,
                    source: None,
                }
            }),
        };
        if let Some(change) = change {
            fingerprints.insert(
                address.to_string(),
                observed_hash.unwrap_or_else(|| ABSENT.to_string()),
            );
            changes.push(change);
        }
    }
    let mut steps = order_steps(input, &changes);
    let mut warnings = input.observed.warnings.clone();
    if let Some(backups) = &input.backups {
        super::backups::extend(
            backups,
            input.now,
            salt,
            &mut changes,
            &mut steps,
            &mut fingerprints,
            &mut warnings,
        );
    }
    let state_id = crate::secrets::sha256_hex(salt)[..16].to_string();
    Plan {
        format_version: FORMAT_VERSION,
        tool_version: input.tool_version.to_string(),
        environment: input.desired.environment.clone(),
        deployment: input.desired.deployment.clone(),
        file: input.file.to_string(),
        desired_hash: input.desired_hash.to_string(),
        shared_hash: input.shared_hash.map(str::to_string),
        git_commit: input.git_commit.map(str::to_string),
        state_id,
        created_at: input.now.to_string(),
        changes,
        steps,
        fingerprints,
        warnings,
    }
}

/// Groups changes into steps: files first (the `.env`, then `config.txt`), then the admin API,
/// then a restart and the health gates when a file tldw_server reads at start changed. Each
/// kind makes its own operations and says how they group (`Kind::operation`, `Kind::steps`).
fn order_steps(input: &PlanInput<'_>, changes: &[Change]) -> Vec<Step> {
    let (groups, restarts) = super::kind::change_steps(input, changes);
    let mut steps = Vec::new();
    let mut push = |kind: StepKind, target: String, operations: Vec<Operation>| {
        let addresses = operations
            .iter()
            .filter_map(Operation::address)
            .map(ToString::to_string)
            .collect();
        steps.push(Step {
            index: 0,
            kind,
            target,
            addresses,
            operations,
        });
    };
    for (kind, target, operations) in groups {
        push(kind, target, operations);
    }
    if restarts && let Some(restart) = input.restart {
        push(
            StepKind::Restart,
            super::service::shell_words(restart),
            vec![Operation::Run {
                argv: restart.to_vec(),
            }],
        );
    }
    if restarts {
        steps.extend(super::service::gate_steps(input.health, input.smoke));
    }
    for (index, step) in steps.iter_mut().enumerate() {
        step.index = index as u32;
    }
    steps
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;
    use crate::model::state::{ManagedRecord, SecretMeta};
    use crate::model::{Desired, ObservedValue, Resource, SecretDesired, SecretSource};
    use crate::plan::SecretFrom;

    fn desired_of(values: &BTreeMap<String, String>) -> DesiredState {
        DesiredState {
            keep_previous: BTreeMap::new(),
            environment: "test".to_string(),
            deployment: "default".to_string(),
            resources: values
                .iter()
                .map(|(name, value)| {
                    let address = Address::env(name);
                    (
                        address.clone(),
                        Resource {
                            address,
                            desired: Desired::Text(value.clone()),
                            sensitive: false,
                            source: None,
                        },
                    )
                })
                .collect(),
        }
    }

    fn observed_of(values: &BTreeMap<String, String>) -> Observed {
        Observed {
            values: values
                .iter()
                .map(|(name, value)| (Address::env(name), ObservedValue::Text(value.clone())))
                .collect(),
            warnings: Vec::new(),
        }
    }

    fn run(
        desired: &DesiredState,
        observed: &Observed,
        state: &EnvironmentState,
        now: Timestamp,
    ) -> Plan {
        plan(&PlanInput {
            desired,
            observed,
            state,
            now,
            tool_version: "test",
            file: "test.yaml",
            desired_hash: "hash",
            shared_hash: None,
            git_commit: None,
            root: ".",
            env_file: ".env",
            config_file: "config.txt",
            api_url: None,
            restart: None,
            health: &[],
            smoke: &[],
            backups: None,
            kinds: crate::kinds::kind,
        })
    }

    fn state() -> EnvironmentState {
        EnvironmentState {
            salt: vec![7; 32],
            ..EnvironmentState::default()
        }
    }

    /// Applies a plan's env operations to a model of the observed values.
    fn apply_model(
        plan: &Plan,
        observed: &BTreeMap<String, String>,
        desired: &BTreeMap<String, String>,
    ) -> BTreeMap<String, String> {
        let mut model = observed.clone();
        for step in &plan.steps {
            for operation in &step.operations {
                match operation {
                    Operation::Set { address, value, .. } => {
                        let name = address.as_str().strip_prefix("env.").unwrap().to_string();
                        model.insert(
                            name.clone(),
                            value.clone().unwrap_or_else(|| desired[&name].clone()),
                        );
                    }
                    Operation::Remove { address } => {
                        model.remove(address.as_str().strip_prefix("env.").unwrap());
                    }
                    _ => {}
                }
            }
        }
        model
    }

    /// Each kind groups its operations as its `Steps` say, in `StepKind` order: one `.env` step
    /// for `env.*` and `secret.*`, one config.txt step, one step per retention policy, quotas
    /// in chunks of `QUOTA_CHUNK`, the release checkout; then, because a file or the release
    /// changed, the restart.
    #[test]
    fn each_kind_groups_its_changes_into_steps_in_step_kind_order_and_the_restart_comes_last() {
        let mut resources = BTreeMap::new();
        let mut add = |address: Address, desired: Desired| {
            resources.insert(
                address.clone(),
                Resource {
                    address,
                    desired,
                    sensitive: false,
                    source: None,
                },
            );
        };
        add(Address::env("LOG_LEVEL"), Desired::Text("info".to_string()));
        add(
            Address::config("Server", "port"),
            Desired::Text("8000".to_string()),
        );
        add(Address::retention("audit_logs"), Desired::Days(30));
        add(Address::retention("sessions"), Desired::Days(7));
        for user in 0..250 {
            add(
                Address::quota_user(&format!("user{user:03}")),
                Desired::Quota(Some(100)),
            );
        }
        add(
            Address::release(),
            Desired::Release {
                reference: "v2".to_string(),
                install: Some(vec!["true".to_string()]),
            },
        );
        add(
            Address::secret("JWT_SECRET_KEY"),
            Desired::Secret(SecretDesired {
                source: SecretSource::FromEnv("JWT".to_string()),
                rotate_after: None,
                keep_previous_as: None,
                resolved: Some("a-long-enough-secret-value".to_string()),
            }),
        );
        let desired = DesiredState {
            keep_previous: BTreeMap::new(),
            environment: "test".to_string(),
            deployment: "default".to_string(),
            resources,
        };
        let restart = [
            "systemctl".to_string(),
            "restart".to_string(),
            "tldw".to_string(),
        ];
        let plan = plan(&PlanInput {
            desired: &desired,
            observed: &Observed::default(),
            state: &state(),
            now: Timestamp::UNIX_EPOCH,
            tool_version: "test",
            file: "test.yaml",
            desired_hash: "hash",
            shared_hash: None,
            git_commit: None,
            root: "/srv/tldw",
            env_file: ".env",
            config_file: "config.txt",
            api_url: Some("http://127.0.0.1:8000"),
            restart: Some(&restart),
            health: &[],
            smoke: &[],
            backups: None,
            kinds: crate::kinds::kind,
        });
        let steps: Vec<(StepKind, &str, usize)> = plan
            .steps
            .iter()
            .map(|step| (step.kind, step.target.as_str(), step.operations.len()))
            .collect();
        assert_eq!(
            steps,
            [
                (StepKind::EnsureEnvFile, ".env", 2),
                (StepKind::EnsureConfigFile, "config.txt", 1),
                (StepKind::EnsureRetention, "http://127.0.0.1:8000", 1),
                (StepKind::EnsureRetention, "http://127.0.0.1:8000", 1),
                (StepKind::EnsureQuotas, "http://127.0.0.1:8000", 100),
                (StepKind::EnsureQuotas, "http://127.0.0.1:8000", 100),
                (StepKind::EnsureQuotas, "http://127.0.0.1:8000", 50),
                (StepKind::SwitchRelease, "/srv/tldw", 1),
                (StepKind::Restart, "systemctl restart tldw", 1),
            ]
        );
        assert!(
            plan.steps
                .iter()
                .enumerate()
                .all(|(index, step)| step.index == index as u32)
        );
        // The secret's value never enters the plan; the setting's does.
        let env = &plan.steps[0].operations;
        assert!(matches!(&env[0], Operation::Set { value: Some(value), .. } if value == "info"));
        assert!(matches!(
            &env[1],
            Operation::Set {
                value: None,
                secret: Some(_),
                ..
            }
        ));
    }

    #[test]
    fn admin_api_changes_alone_do_not_restart_the_server() {
        let mut resources = BTreeMap::new();
        let address = Address::quota_user("alice");
        resources.insert(
            address.clone(),
            Resource {
                address,
                desired: Desired::Quota(None),
                sensitive: false,
                source: None,
            },
        );
        let desired = DesiredState {
            keep_previous: BTreeMap::new(),
            environment: "test".to_string(),
            deployment: "default".to_string(),
            resources,
        };
        let plan = run(
            &desired,
            &Observed::default(),
            &state(),
            Timestamp::UNIX_EPOCH,
        );
        let kinds: Vec<StepKind> = plan.steps.iter().map(|step| step.kind).collect();
        assert_eq!(kinds, [StepKind::EnsureQuotas]);
    }

    fn values() -> impl Strategy<Value = BTreeMap<String, String>> {
        proptest::collection::btree_map("[A-Z][A-Z_]{0,6}", "[a-z0-9:/.]{0,8}", 0..12)
    }

    proptest! {
        #[test]
        fn planning_a_state_against_itself_is_empty(values in values()) {
            let plan = run(&desired_of(&values), &observed_of(&values), &state(), Timestamp::UNIX_EPOCH);
            prop_assert!(plan.is_empty());
            prop_assert!(plan.steps.is_empty());
        }

        #[test]
        fn applying_the_plan_to_a_model_of_the_observed_state_gives_the_desired_one(
            desired in values(),
            observed in values(),
        ) {
            let plan = run(&desired_of(&desired), &observed_of(&observed), &state(), Timestamp::UNIX_EPOCH);
            let mut expected = observed.clone();
            expected.extend(desired.clone());
            prop_assert_eq!(apply_model(&plan, &observed, &desired), expected);
        }

        #[test]
        fn only_addresses_managed_before_are_deleted(
            desired in values(),
            observed in values(),
            managed_names in proptest::collection::btree_set("[A-Z][A-Z_]{0,6}", 0..8),
        ) {
            let mut state = state();
            for name in &managed_names {
                state.managed.insert(Address::env(name).to_string(), ManagedRecord {
                    value_hash: "0".repeat(16),
                    sensitive: false,
                    apply_id: "a".to_string(),
                    updated_at: Timestamp::UNIX_EPOCH,
                });
            }
            let plan = run(&desired_of(&desired), &observed_of(&observed), &state, Timestamp::UNIX_EPOCH);
            for change in plan.changes.iter().filter(|change| change.action == Action::Delete) {
                let name = change.address.as_str().strip_prefix("env.").unwrap();
                prop_assert!(managed_names.contains(name));
                prop_assert!(!desired.contains_key(name));
            }
        }
    }

    fn secret_desired(rotate_after: Option<u64>) -> DesiredState {
        let address = Address::secret("JWT_SECRET_KEY");
        DesiredState {
            keep_previous: BTreeMap::new(),
            environment: "test".to_string(),
            deployment: "default".to_string(),
            resources: BTreeMap::from([(
                address.clone(),
                Resource {
                    address,
                    desired: Desired::Secret(SecretDesired {
                        source: SecretSource::Generate(crate::spec::types::Generate {
                            length: Some(40),
                            ..Default::default()
                        }),
                        rotate_after,
                        keep_previous_as: Some("JWT_SECONDARY_SECRET".to_string()),
                        resolved: None,
                    }),
                    sensitive: true,
                    source: None,
                },
            )]),
        }
    }

    #[test]
    fn a_generated_secret_is_rotated_once_older_than_rotate_after_and_never_shown() {
        let current = "k".repeat(40);
        let observed = Observed {
            values: BTreeMap::from([(
                Address::secret("JWT_SECRET_KEY"),
                ObservedValue::Text(current.clone()),
            )]),
            warnings: Vec::new(),
        };
        let mut state = state();
        let set_at: Timestamp = "2026-08-01T00:00:00Z".parse().unwrap();
        state.secrets.insert(
            "JWT_SECRET_KEY".to_string(),
            SecretMeta {
                fingerprint: value_hash(&state.salt, &current),
                set_at,
                rotated_at: None,
                adopted: false,
                source: "generate".to_string(),
            },
        );
        let desired = secret_desired(Some(90 * 86_400));
        let young = run(
            &desired,
            &observed,
            &state,
            "2026-10-01T00:00:00Z".parse().unwrap(),
        );
        assert!(young.is_empty());
        let old = run(
            &desired,
            &observed,
            &state,
            "2026-11-26T00:00:00Z".parse().unwrap(),
        );
        assert_eq!(old.changes.len(), 1);
        assert_eq!(old.changes[0].action, Action::Rotate);
        assert_eq!(old.changes[0].reason, "age 117d > 90d (rotate_after)");
        assert!(!serde_json::to_string(&old).unwrap().contains(&current));
        let Operation::Set {
            secret: Some(secret),
            ..
        } = &old.steps[0].operations[0]
        else {
            panic!()
        };
        assert_eq!(secret.from, SecretFrom::Generate);
        assert_eq!(
            secret.keep_previous_as.as_deref(),
            Some("JWT_SECONDARY_SECRET")
        );
    }

    #[test]
    fn a_secret_changed_outside_tldw_ops_is_not_rotated_on_a_guess() {
        let observed = Observed {
            values: BTreeMap::from([(
                Address::secret("JWT_SECRET_KEY"),
                ObservedValue::Text("q7".repeat(20)),
            )]),
            warnings: Vec::new(),
        };
        let mut state = state();
        state.secrets.insert(
            "JWT_SECRET_KEY".to_string(),
            SecretMeta {
                fingerprint: "0000000000000000".to_string(),
                set_at: Timestamp::UNIX_EPOCH,
                rotated_at: None,
                adopted: false,
                source: "generate".to_string(),
            },
        );
        let plan = run(
            &secret_desired(Some(86_400)),
            &observed,
            &state,
            "2026-11-26T00:00:00Z".parse().unwrap(),
        );
        assert!(plan.is_empty());
    }
}
