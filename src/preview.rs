//! Unified diffs of the files a plan edits (`plan --diff`), with every sensitive value masked
//! on both sides: values of managed secrets, of keys that look like secrets, and of URLs that
//! carry passwords, whether tldw-ops manages them or not. The diff is made from the observed
//! files; nothing is written. Each file kind masks its own document
//! (`kinds::env_file::preview`, `kinds::config_file::preview`).

use std::collections::BTreeSet;

use similar::TextDiff;

use crate::deployment::ObservedFiles;
use crate::kinds::{self, PreviewContext};
use crate::model::{Address, DesiredState};
use crate::plan::Plan;

/// The diff of every file the plan edits, masked. Generated secrets show as a placeholder.
pub fn file_diffs(
    plan: &Plan,
    desired: &DesiredState,
    files: &ObservedFiles,
    salt: &[u8],
) -> String {
    let sensitive: BTreeSet<&Address> = desired
        .resources
        .values()
        .filter(|resource| resource.sensitive)
        .map(|resource| &resource.address)
        .collect();
    let cx = PreviewContext {
        files,
        salt,
        sensitive: &sensitive,
    };
    let mut out = String::new();
    for step in &plan.steps {
        if let Some((before, after)) = kinds::provider(step.kind).preview(step, &cx) {
            push_diff(&mut out, &step.target, &before, &after);
        }
    }
    out
}

fn push_diff(out: &mut String, path: &str, before: &str, after: &str) {
    let diff = TextDiff::from_lines(before, after);
    let text = diff
        .unified_diff()
        .context_radius(3)
        .header(&format!("a/{path}"), &format!("b/{path}"))
        .to_string();
    out.push_str(&text);
}
