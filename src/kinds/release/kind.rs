//! The pure half of the bare-metal release kind: `release.git`, the tag or commit the checkout
//! at `target.root` runs, and the install command that follows a checkout.

use crate::model::{Address, Desired, Resource};
use crate::plan::kind::{
    CompileError, CompileInput, Diff, Kind, Resources, StepTarget, Steps, value_change,
};
use crate::plan::{Action, Change, Operation, PlanInput, StepKind};
use crate::spec::semantic::locate;

/// `release.git`.
pub struct Release;

impl Kind for Release {
    fn section(&self, _address: &Address) -> (u8, String) {
        (6, "release".to_string())
    }

    fn compile(
        &self,
        input: &CompileInput<'_>,
        resources: &mut Resources,
    ) -> Result<(), CompileError> {
        let Some(release) = &input.checked.spec.release else {
            return Ok(());
        };
        let Some(reference) = &release.git else {
            return Ok(());
        };
        resources.add(Resource {
            address: Address::release(),
            desired: Desired::Release {
                reference: reference.clone(),
                install: release.install.clone(),
            },
            sensitive: false,
            source: locate(&input.checked.loaded.root, "/release/git"),
        });
        Ok(())
    }

    /// An upgrade (or a downgrade) names both releases; a checkout the tool cannot read is
    /// not guessed at.
    fn change(&self, _input: &PlanInput<'_>, diff: &Diff<'_>) -> Option<Change> {
        let mut change = value_change(diff)?;
        change.reason = match (&change.before, &change.after) {
            (Some(before), Some(after)) => format!("runs {before}; switch to {after}"),
            _ => "the checkout's commit could not be read; check the release out".to_string(),
        };
        Some(change)
    }

    fn operation(&self, input: &PlanInput<'_>, change: &Change) -> Option<Operation> {
        if change.action == Action::Delete {
            // Dropping `release:` stops managing the release; the checkout stays as it is.
            return None;
        }
        let Some(Desired::Release { reference, install }) = input
            .desired
            .get(&change.address)
            .map(|resource| &resource.desired)
        else {
            return None;
        };
        Some(Operation::Checkout {
            address: change.address.clone(),
            reference: reference.clone(),
            install: install.clone(),
        })
    }

    /// One step in the checkout; tldw_server runs the new code only after a restart.
    fn steps(&self) -> Option<Steps> {
        Some(Steps {
            kind: StepKind::SwitchRelease,
            target: StepTarget::Root,
            per_step: None,
            restarts: true,
        })
    }
}
