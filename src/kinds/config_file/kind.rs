//! The pure half of the `config.txt` kind: `config.<Section>.<key>` settings and how their
//! changes become edits of one `config.txt` step.

use crate::model::{Address, Desired, Resource};
use crate::plan::adopt::{AdoptInput, Edit, Refusal};
use crate::plan::kind::{
    CompileError, CompileInput, Kind, LikelyCause, Resources, StepTarget, Steps, child_locations,
    setting_operation,
};
use crate::plan::{Change, Operation, PlanInput, StepKind};
use crate::secrets::is_sensitive;
use crate::spec::edit;
use crate::spec::load::escape_pointer;

/// `config.<Section>.<key>` addresses.
pub struct Config;

impl Kind for Config {
    fn section(&self, address: &Address) -> (u8, String) {
        let section = address.config_parts().map(|(section, _)| section);
        (2, format!("config [{}]", section.unwrap_or("")))
    }

    fn key_name<'a>(&self, address: &'a Address) -> Option<&'a str> {
        address.config_parts().map(|(_, key)| key)
    }

    /// tldw itself rewrites two parts of config.txt: the admin UI's registration settings and
    /// the first-run setup wizard.
    fn likely_cause(&self, address: &Address) -> LikelyCause {
        match address.config_parts() {
            Some((section, "enable_registration" | "require_registration_code"))
                if section.eq_ignore_ascii_case("AuthNZ") =>
            {
                LikelyCause::RegistrationSettings
            }
            Some((section, _)) if section.eq_ignore_ascii_case("Setup") => LikelyCause::SetupWizard,
            _ => LikelyCause::ByHand,
        }
    }

    fn compile(
        &self,
        input: &CompileInput<'_>,
        resources: &mut Resources,
    ) -> Result<(), CompileError> {
        let checked = input.checked;
        let sections = checked.loaded.root.get("config");
        for (section, keys) in &checked.spec.config {
            let key_locations = child_locations(sections.and_then(|node| node.get(section)));
            for (key, value) in keys {
                let text = value.render();
                let pointer = format!(
                    "/config/{}/{}",
                    escape_pointer(section),
                    escape_pointer(key)
                );
                let address = Address::config(section, key);
                resources.add(Resource {
                    sensitive: is_sensitive(key, &text) || checked.loaded.is_sensitive(&pointer),
                    address,
                    desired: Desired::Text(text),
                    source: key_locations.get(key.as_str()).cloned(),
                });
            }
        }
        Ok(())
    }

    fn operation(&self, input: &PlanInput<'_>, change: &Change) -> Option<Operation> {
        Some(setting_operation(input, change))
    }

    /// One edit of the file; tldw_server reads it at start.
    fn steps(&self) -> Option<Steps> {
        Some(Steps {
            kind: StepKind::EnsureConfigFile,
            target: StepTarget::ConfigFile,
            per_step: None,
            restarts: true,
        })
    }

    fn adopts(&self) -> bool {
        true
    }

    fn adopt(&self, input: &AdoptInput<'_>) -> Result<(String, Edit), Refusal> {
        let address = input.address;
        let pointer = input
            .checked
            .spec
            .config
            .iter()
            .flat_map(|(section, keys)| keys.keys().map(move |key| (section, key)))
            .find(|(section, key)| Address::config(section, key) == *address)
            .map(|(section, key)| {
                format!(
                    "/config/{}/{}",
                    escape_pointer(section),
                    escape_pointer(key)
                )
            })
            .ok_or_else(|| Refusal::NotDeclared(address.clone()))?;
        let text = edit::template_safe(input.now).ok_or_else(|| {
            (input.does_not_map)(
                "config",
                "the value holds template syntax that cannot be escaped".to_string(),
            )
        })?;
        Ok((pointer, Edit::Scalar(edit::scalar(&text))))
    }
}
