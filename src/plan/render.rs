//! Renderers: text for terminals, Markdown for pull-request comments, JSON for tools and for
//! saved plan files. All of them print only what the plan holds, and the plan holds no secret.

use std::fmt::Write as _;

use super::{Action, Change, Plan, Step, StepKind};

/// Colour hooks for the text renderer; plain text when all are identity.
pub trait Paint {
    fn add(&self, text: &str) -> String {
        text.to_string()
    }
    fn change(&self, text: &str) -> String {
        text.to_string()
    }
    fn remove(&self, text: &str) -> String {
        text.to_string()
    }
    fn dim(&self, text: &str) -> String {
        text.to_string()
    }
    fn bold(&self, text: &str) -> String {
        text.to_string()
    }
}

/// No colour.
pub struct Plain;
impl Paint for Plain {}

fn quote(value: &str, sensitive: bool) -> String {
    if sensitive || value.starts_with("fp:") || value.starts_with('(') {
        if value.starts_with("fp:") {
            format!("(sensitive) {value}")
        } else {
            value.to_string()
        }
    } else {
        format!("{value:?}")
    }
}

fn source_text(change: &Change) -> String {
    change
        .source
        .as_ref()
        .map(|source| format!("{}:{}", source.file, source.line))
        .unwrap_or_default()
}

fn change_line(change: &Change, paint: &dyn Paint) -> String {
    let symbol = change.action.symbol().to_string();
    let symbol = match change.action {
        Action::Create => paint.add(&symbol),
        Action::Update | Action::Rotate => paint.change(&symbol),
        Action::Delete => paint.remove(&symbol),
    };
    let before = change
        .before
        .as_deref()
        .map(|value| quote(value, change.sensitive));
    let after = change
        .after
        .as_deref()
        .map(|value| quote(value, change.sensitive));
    let body = match (change.action, before, after) {
        (Action::Create, _, Some(after)) => format!("{} = {after}", change.address),
        (Action::Delete, Some(before), _) => format!("{} (was {before})", change.address),
        (_, Some(before), Some(after)) => format!("{}: {before} -> {after}", change.address),
        // A change with no value to show (a backup set): the address says it all.
        (Action::Create, _, None) | (Action::Delete, None, _) => change.address.to_string(),
        (_, before, after) => format!(
            "{}: {} -> {}",
            change.address,
            before.unwrap_or_default(),
            after.unwrap_or_default()
        ),
    };
    let mut line = format!("  {symbol} {body}");
    let source = source_text(change);
    let detail = if source.is_empty() {
        change.reason.clone()
    } else {
        format!("{source}  {}", change.reason)
    };
    line.push_str(&format!("\n      {}", paint.dim(&detail)));
    line
}

/// The one-line summary: `Plan: 2 to create, 1 to update, 0 to rotate, 1 to delete.`
pub fn summary(plan: &Plan) -> String {
    if plan.is_empty() {
        return "No changes. The deployment matches the desired state.".to_string();
    }
    let drift = plan.changes.iter().filter(|change| change.drift).count();
    let mut text = format!(
        "Plan: {} to create, {} to update, {} to rotate, {} to delete.",
        plan.count(Action::Create),
        plan.count(Action::Update),
        plan.count(Action::Rotate),
        plan.count(Action::Delete)
    );
    if drift > 0 {
        text.push_str(&format!(
            " {drift} change{} revert{} drift.",
            if drift == 1 { "" } else { "s" },
            if drift == 1 { "s" } else { "" }
        ));
    }
    text
}

fn step_line(step: &Step) -> String {
    let what = match step.kind {
        StepKind::EnsureEnvFile | StepKind::EnsureConfigFile | StepKind::EnsureQuotas => {
            format!(
                "{} ({} change{})",
                step.target,
                step.addresses.len(),
                if step.addresses.len() == 1 { "" } else { "s" }
            )
        }
        _ => step.target.clone(),
    };
    format!("  {}. {} {what}", step.index + 1, step.kind.as_str())
}

/// The text form, Terraform style: configuration changes, then drift, then steps and a summary.
pub fn text(plan: &Plan, paint: &dyn Paint) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} {}",
        paint.bold("tldw-ops plan for environment"),
        paint.bold(&plan.environment)
    );
    if plan.is_empty() {
        let _ = writeln!(out, "\n{}", summary(plan));
        return out;
    }
    let (drift, configuration): (Vec<&Change>, Vec<&Change>) =
        plan.changes.iter().partition(|change| change.drift);
    if !configuration.is_empty() {
        let _ = writeln!(out, "\nConfiguration changes:");
        for change in configuration {
            let _ = writeln!(out, "{}", change_line(change, paint));
        }
    }
    if !drift.is_empty() {
        let _ = writeln!(
            out,
            "\nDrift (changed outside tldw-ops since the last apply; this plan restores it):"
        );
        for change in drift {
            let _ = writeln!(out, "{}", change_line(change, paint));
        }
    }
    let _ = writeln!(out, "\nSteps:");
    for step in &plan.steps {
        let _ = writeln!(out, "{}", step_line(step));
    }
    let _ = writeln!(out, "\n{}", summary(plan));
    out
}

/// The JSON form: the plan file itself.
pub fn json(plan: &Plan) -> String {
    let mut text = serde_json::to_string_pretty(plan).expect("plans serialise");
    text.push('\n');
    text
}

/// The first line of every Markdown plan: CI finds its earlier comment by it and updates that
/// one instead of adding another.
pub fn markdown_marker(environment: &str) -> String {
    format!("<!-- tldw-ops plan: {environment} -->")
}

/// What a pull-request comment carries besides the plan itself.
#[derive(Debug, Clone, Default)]
pub struct MarkdownExtras {
    /// Warnings of validation and planning (messages only: they never hold a value).
    pub warnings: Vec<String>,
    /// The masked unified diffs of `plan --diff`.
    pub diff: Option<String>,
}

/// How a step reads in a comment; the ones a reviewer must not miss are called out.
fn markdown_step(step: &Step) -> String {
    let line = step_line(step);
    let note = match step.kind {
        StepKind::Restart => " — **restarts tldw_server**",
        StepKind::StopService => " — **stops tldw_server**",
        StepKind::HealthGate => " — **health gate**: a failure rolls the apply back",
        StepKind::SmokeGate => " — **smoke gate**: a failure rolls the apply back",
        StepKind::CreateBackup => " — backup set",
        StepKind::PruneBackups => " — **deletes backup sets** the keep policy releases",
        StepKind::RestoreBackup => " — **puts data back** from a backup set",
        StepKind::SwitchRelease => {
            " — **switches the release** (checkout, then the install command)"
        }
        _ => "",
    };
    format!("{}{note}\n", line.trim_start())
}

/// Markdown for a pull-request comment, kept under `limit` characters: the summary, the steps
/// (restart, gates, backups and prunes called out), the warnings, the changes and, when asked,
/// the masked diffs. What does not fit is counted, never cut mid-line.
pub fn markdown(plan: &Plan, extras: &MarkdownExtras, limit: usize) -> String {
    let mut head = String::new();
    let _ = writeln!(head, "{}", markdown_marker(&plan.environment));
    let _ = writeln!(head, "### tldw-ops plan: `{}`\n", plan.environment);
    let _ = writeln!(head, "{}\n", summary(plan));
    if !extras.warnings.is_empty() {
        let _ = writeln!(head, "**Warnings**\n");
        for warning in extras.warnings.iter().take(MARKDOWN_WARNINGS) {
            let _ = writeln!(head, "- ⚠️ {}", warning.replace('\n', " "));
        }
        if extras.warnings.len() > MARKDOWN_WARNINGS {
            let _ = writeln!(
                head,
                "- … and {} more",
                extras.warnings.len() - MARKDOWN_WARNINGS
            );
        }
        head.push('\n');
    }
    if plan.is_empty() {
        return head;
    }
    if !plan.steps.is_empty() {
        let _ = writeln!(head, "**Steps**\n");
        for step in &plan.steps {
            head.push_str(&markdown_step(step));
        }
        head.push('\n');
    }
    let _ = writeln!(head, "| | create | update | rotate | delete | drift |");
    let _ = writeln!(head, "|---|---:|---:|---:|---:|---:|");
    let _ = writeln!(
        head,
        "| changes | {} | {} | {} | {} | {} |\n",
        plan.count(Action::Create),
        plan.count(Action::Update),
        plan.count(Action::Rotate),
        plan.count(Action::Delete),
        plan.changes.iter().filter(|change| change.drift).count()
    );
    let mut tail = String::new();
    let _ = write!(
        tail,
        "\n<sub>desired hash `{}`",
        &plan.desired_hash[..plan.desired_hash.len().min(16)]
    );
    if let Some(commit) = &plan.git_commit {
        let _ = write!(tail, " · commit `{}`", &commit[..commit.len().min(12)]);
    }
    let _ = writeln!(tail, " · tldw-ops {}</sub>", plan.tool_version);
    let mut body = String::new();
    let mut groups: Vec<(String, Vec<&Change>)> = Vec::new();
    for change in &plan.changes {
        let group = change
            .address
            .as_str()
            .split('.')
            .next()
            .unwrap_or("other")
            .to_string();
        match groups.last_mut() {
            Some((name, items)) if *name == group => items.push(change),
            _ => groups.push((group, vec![change])),
        }
    }
    let mut truncated = 0usize;
    let budget = limit.saturating_sub(head.len() + tail.len() + 200);
    for (group, items) in groups {
        let mut section = String::new();
        let _ = writeln!(
            section,
            "<details><summary><b>{group}</b> ({} change{})</summary>\n",
            items.len(),
            if items.len() == 1 { "" } else { "s" }
        );
        let _ = writeln!(section, "| | address | before | after | source | reason |");
        let _ = writeln!(section, "|---|---|---|---|---|---|");
        for change in items {
            let row = format!(
                "| `{}` | `{}` | {} | {} | {} | {}{} |\n",
                change.action.symbol(),
                change.address,
                cell(change.before.as_deref(), change.sensitive),
                cell(change.after.as_deref(), change.sensitive),
                source_text(change),
                if change.drift { "**drift** · " } else { "" },
                change.reason.replace('|', "\\|")
            );
            if body.len() + section.len() + row.len() > budget {
                truncated += 1;
                continue;
            }
            section.push_str(&row);
        }
        section.push_str("\n</details>\n\n");
        if body.len() + section.len() <= budget {
            body.push_str(&section);
        }
    }
    let mut out = head;
    out.push_str(&body);
    if let Some(diff) = extras
        .diff
        .as_deref()
        .filter(|diff| !diff.trim().is_empty())
    {
        push_diff(
            &mut out,
            diff,
            limit.saturating_sub(tail.len() + 400),
            limit,
        );
    }
    if truncated > 0 {
        let _ = writeln!(
            out,
            "> **Note:** {truncated} change{} not shown to keep this comment under {limit} characters. The full plan is in the plan file.",
            if truncated == 1 { " is" } else { "s are" }
        );
    }
    out.push_str(&tail);
    out
}

/// Warnings listed in a comment before the rest are counted.
const MARKDOWN_WARNINGS: usize = 50;

/// The masked diff in a collapsed block, whole lines only, so `out` stays under `room`.
fn push_diff(out: &mut String, diff: &str, room: usize, limit: usize) {
    const OPENING: &str = "<details><summary><b>diff</b> (secrets masked)</summary>\n\n```diff\n";
    const CLOSING: &str = "\n```\n\n</details>\n\n";
    let room = room.saturating_sub(out.len() + OPENING.len() + CLOSING.len());
    let mut shown = String::new();
    let mut hidden = 0usize;
    for line in diff.lines() {
        // A fence inside the diff would end the block early.
        let line = line.replace("```", "` ` `");
        if hidden == 0 && shown.len() + line.len() < room {
            shown.push_str(&line);
            shown.push('\n');
        } else {
            hidden += 1;
        }
    }
    out.push_str(OPENING);
    out.push_str(shown.trim_end_matches('\n'));
    out.push_str(CLOSING);
    if hidden > 0 {
        let _ = writeln!(
            out,
            "> **Note:** {hidden} diff line{} not shown to keep this comment under {limit} characters.\n",
            if hidden == 1 { " is" } else { "s are" }
        );
    }
}

fn cell(value: Option<&str>, sensitive: bool) -> String {
    match value {
        None => "".to_string(),
        Some(value) if sensitive || value.starts_with("fp:") => format!("_(sensitive)_ `{value}`"),
        Some(value) => format!("`{}`", value.replace('`', "'").replace('|', "\\|")),
    }
}
