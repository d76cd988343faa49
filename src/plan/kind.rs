//! The pure half of a kind of managed thing: what it declares in the spec, how its changes
//! become operations and steps, and the facts drift, envdiff and the secret heuristics need.
//!
//! The trait lives here, in the core, and each kind implements it in its folder
//! (`src/kinds/<kind>/kind.rs`). The core never names a kind: whoever runs the pipeline passes
//! the registry (`crate::kinds::kind`, an exhaustive match) as a [`Registry`]. The kinds import
//! the core and the core does not import them, so the top-level modules keep no cycle (see
//! docs/decisions.md).

use std::collections::{BTreeMap, HashMap};

use super::adopt::{AdoptInput, Edit, Refusal};
use super::{Action, Change, Operation, PlanInput, SecretFrom, SecretOperation, StepKind};
use crate::model::{Address, AddressKind, Desired, DesiredState, ObservedValue, Resource};
use crate::secrets::shown;
use crate::spec::node::Node;
use crate::spec::{Checked, Location};

/// The kind that owns each address kind. The caller passes `crate::kinds::kind`.
pub type Registry = fn(AddressKind) -> &'static dyn Kind;

/// What compiling a kind's part of the spec reads.
pub struct CompileInput<'a> {
    pub checked: &'a Checked,
    /// Each `from_env`/`from_file` secret name and its value, or the reason it could not be
    /// read. Reading is I/O, so the caller does it.
    pub resolved: &'a BTreeMap<String, Result<String, String>>,
}

/// The resources compiled so far, by address.
#[derive(Debug, Default)]
pub struct Resources(BTreeMap<Address, Resource>);

impl Resources {
    pub fn add(&mut self, resource: Resource) {
        self.0.insert(resource.address.clone(), resource);
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CompileError {
    #[error("secret `{name}` (declared at {location}): {reason}")]
    SecretUnavailable {
        name: String,
        location: String,
        reason: String,
    },
}

/// Where the steps of a kind act, resolved against the plan's input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepTarget {
    /// `target.root`.
    Root,
    EnvFile,
    ConfigFile,
    Api,
}

impl StepTarget {
    fn resolve(self, input: &PlanInput<'_>) -> String {
        match self {
            StepTarget::Root => input.root.to_string(),
            StepTarget::EnvFile => input.env_file.to_string(),
            StepTarget::ConfigFile => input.config_file.to_string(),
            StepTarget::Api => input.api_url.unwrap_or_default().to_string(),
        }
    }
}

/// How a kind's operations are grouped into steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Steps {
    /// The step kind; kinds that name the same one share its steps (`env.*` and `secret.*` are
    /// one `.env` edit). Steps come in the order of [`StepKind`].
    pub kind: StepKind,
    pub target: StepTarget,
    /// Operations per step; `None`: all of them in one.
    pub per_step: Option<usize>,
    /// Whether tldw_server must restart (and the gates run) after a change of this kind: it
    /// reads the file at start.
    pub restarts: bool,
}

/// The pure half of a kind. Every method but `section` has a default that fits a kind with
/// nothing to compile or step.
pub trait Kind: Sync {
    /// The heading `envdiff` groups an address under, and the rank that orders the groups.
    fn section(&self, address: &Address) -> (u8, String);

    /// The key whose name the secret heuristics read (`None`: not a key=value setting).
    fn key_name<'a>(&self, address: &'a Address) -> Option<&'a str> {
        let _ = address;
        None
    }

    /// Who or what most likely changed the address when drift finds it changed.
    fn likely_cause(&self, _address: &Address) -> LikelyCause {
        LikelyCause::ByHand
    }

    /// Adds the resources of this kind that the checked spec declares.
    fn compile(
        &self,
        _input: &CompileInput<'_>,
        _resources: &mut Resources,
    ) -> Result<(), CompileError> {
        Ok(())
    }

    /// The change that takes a declared address from what is observed to what is desired, or
    /// `None` when it already holds it. By default a plain value comparison.
    fn change(&self, _input: &PlanInput<'_>, diff: &Diff<'_>) -> Option<Change> {
        value_change(diff)
    }

    /// The operation that carries out `change`, or `None` where this kind's changes are
    /// planned elsewhere (backup sets, by the backup planner).
    fn operation(&self, _input: &PlanInput<'_>, _change: &Change) -> Option<Operation> {
        None
    }

    /// How the operations become steps; `None` with `operation`'s `None`.
    fn steps(&self) -> Option<Steps> {
        None
    }

    /// Whether `drift --adopt` takes addresses of this kind at all (`false`: refused as not an
    /// address it adopts).
    fn adopts(&self) -> bool {
        false
    }

    /// Where in the YAML `drift --adopt` writes the observed value (a JSON pointer into the
    /// declaring file) and the YAML it writes, or why the value does not map back.
    fn adopt(&self, input: &AdoptInput<'_>) -> Result<(String, Edit), Refusal> {
        Err(Refusal::NotAnAddress(input.address.to_string()))
    }
}

/// The value location of each entry of a mapping, by key: one pass over a big mapping instead
/// of a pointer walk per resource, which is quadratic in the number of settings.
pub fn child_locations(node: Option<&Node>) -> HashMap<&str, Location> {
    node.and_then(Node::as_mapping)
        .map(|entries| {
            entries
                .iter()
                .map(|(key, value)| (key.name.as_str(), value.location.clone()))
                .collect()
        })
        .unwrap_or_default()
}

/// The edit of a plain setting of a file kind (`env.*`, `config.*`): remove it, or set the
/// declared value (a sensitive value is resolved at apply and never written into the plan).
pub fn setting_operation(input: &PlanInput<'_>, change: &Change) -> Operation {
    if change.action == Action::Delete {
        return Operation::Remove {
            address: change.address.clone(),
        };
    }
    Operation::Set {
        address: change.address.clone(),
        value: (!change.sensitive).then(|| {
            input
                .desired
                .get(&change.address)
                .and_then(|resource| resource.desired.canonical())
                .unwrap_or_default()
        }),
        // A kept previous value (the release image) rides on the secret operation, which is
        // what carries `keep_previous_as` to the executor.
        secret: match (
            change.sensitive,
            input.desired.keep_previous.get(&change.address),
        ) {
            (false, None) => None,
            (sensitive, keep) => Some(SecretOperation {
                from: SecretFrom::Desired,
                keep_previous_as: keep.cloned(),
                expect: sensitive.then(|| change.after.clone()).flatten(),
            }),
        },
    }
}

/// One declared address to compare: what the desired state asks, what is observed.
pub struct Diff<'a> {
    pub address: &'a Address,
    pub desired: &'a Desired,
    pub sensitive: bool,
    pub observed: &'a ObservedValue,
    /// Whether the value changed since tldw-ops last applied it.
    pub drift: bool,
    pub salt: &'a [u8],
}

impl Diff<'_> {
    /// A change of this address; its source location is added by the planner.
    pub fn change(
        &self,
        action: Action,
        reason: String,
        before: Option<String>,
        after: Option<String>,
    ) -> Change {
        Change {
            address: self.address.clone(),
            action,
            reason,
            sensitive: self.sensitive,
            drift: self.drift,
            before,
            after,
            source: None,
        }
    }

    /// The observed value as the plan shows it: masked when sensitive.
    pub fn before_shown(&self) -> Option<String> {
        self.observed
            .canonical()
            .map(|value| shown(self.salt, &value, self.sensitive))
    }
}

/// The change of a plain value (a setting, a quota, a retention period).
pub fn value_change(diff: &Diff<'_>) -> Option<Change> {
    let wanted = diff.desired.canonical()?;
    let after = Some(shown(diff.salt, &wanted, diff.sensitive));
    match diff.observed.canonical() {
        None => Some(diff.change(Action::Create, "not present".to_string(), None, after)),
        Some(current) if current == wanted => None,
        Some(_) => Some(diff.change(
            Action::Update,
            if diff.drift {
                "changed outside tldw-ops; restoring the declared value".to_string()
            } else {
                "value differs".to_string()
            },
            diff.before_shown(),
            after,
        )),
    }
}

/// Turns a checked spec into the desired state: each kind adds its resources. `resolved` maps
/// each `from_env`/`from_file` secret name to its value, or the reason it could not be read.
pub fn compile(
    checked: &Checked,
    resolved: &BTreeMap<String, Result<String, String>>,
    kinds: Registry,
) -> Result<DesiredState, CompileError> {
    let spec = &checked.spec;
    let input = CompileInput { checked, resolved };
    let mut resources = Resources::default();
    for address_kind in AddressKind::ALL {
        kinds(address_kind).compile(&input, &mut resources)?;
    }
    let keep_previous = spec
        .release
        .iter()
        .filter(|release| release.image.is_some())
        .map(|_| {
            (
                Address::env(crate::spec::mapping::APP_IMAGE),
                crate::spec::mapping::ROLLBACK_IMAGE.to_string(),
            )
        })
        .collect();
    Ok(DesiredState {
        keep_previous,
        environment: spec.environment.clone(),
        deployment: spec
            .deployment
            .clone()
            .unwrap_or_else(|| "default".to_string()),
        resources: resources.0,
    })
}

/// Who or what most likely changed a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LikelyCause {
    /// The Docker entrypoint upserts its keys into `.env` when the container starts.
    DockerEntrypoint,
    /// The admin UI's registration settings rewrite `[AuthNZ]` in config.txt.
    RegistrationSettings,
    /// The first-run setup wizard writes `[Setup]` in config.txt.
    SetupWizard,
    /// A per-user quota changed through the admin API or web UI.
    AdminQuota,
    /// A retention policy changed through the admin API.
    AdminRetention,
    ByHand,
}

impl LikelyCause {
    /// One sentence for people and for the JSON report.
    pub fn describe(self, address: &Address) -> String {
        match self {
            LikelyCause::DockerEntrypoint => format!(
                "the tldw Docker entrypoint, which rewrites {} in .env when the container starts",
                address.name()
            ),
            LikelyCause::RegistrationSettings => "the admin UI's registration settings, which rewrite [AuthNZ] in config.txt (POST /api/v1/admin/registration-settings)".to_string(),
            LikelyCause::SetupWizard => {
                "the first-run setup wizard, which writes [Setup] in config.txt".to_string()
            }
            LikelyCause::AdminQuota => {
                "changed through the admin API or web UI (storage quotas)".to_string()
            }
            LikelyCause::AdminRetention => {
                "changed through the admin API (retention policies)".to_string()
            }
            LikelyCause::ByHand => "edited by hand or by another tool".to_string(),
        }
    }
}

/// Groups the changes' operations into steps in [`StepKind`] order, each kind as its
/// [`Steps`] says, and reports whether any of them makes tldw_server restart.
pub(super) fn change_steps(
    input: &PlanInput<'_>,
    changes: &[Change],
) -> (Vec<(StepKind, String, Vec<Operation>)>, bool) {
    let mut groups: BTreeMap<StepKind, (Steps, Vec<Operation>)> = BTreeMap::new();
    for change in changes {
        let kind = (input.kinds)(change.address.kind());
        let (Some(shape), Some(operation)) = (kind.steps(), kind.operation(input, change)) else {
            continue;
        };
        groups
            .entry(shape.kind)
            .or_insert_with(|| (shape, Vec::new()))
            .1
            .push(operation);
    }
    let restarts = groups.values().any(|(shape, _)| shape.restarts);
    let mut steps = Vec::new();
    for (step_kind, (shape, operations)) in groups {
        let target = shape.target.resolve(input);
        match shape.per_step {
            None => steps.push((step_kind, target, operations)),
            Some(size) => {
                for chunk in operations.chunks(size.max(1)) {
                    steps.push((step_kind, target.clone(), chunk.to_vec()));
                }
            }
        }
    }
    (steps, restarts)
}
