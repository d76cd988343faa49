//! Diagnostics: what is wrong with a desired-state file, where, and how bad. Rendered as text
//! with the YAML line and a caret, or as JSON for tools.

use std::fmt::Write as _;

use serde::Serialize;

use super::source::{Location, SourceMap};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
    Info,
}

impl Severity {
    pub fn label(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Info => "info",
        }
    }
}

/// One finding. `code` is stable (documented in README); `path` is a JSON pointer into the
/// resolved document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    pub severity: Severity,
    pub code: String,
    pub message: String,
    pub path: String,
    #[serde(skip)]
    pub location: Option<Location>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

impl Diagnostic {
    pub fn error(code: impl Into<String>, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            severity: Severity::Error,
            code: code.into(),
            message: message.into(),
            path: String::new(),
            location: None,
            hint: None,
        }
    }

    pub fn warning(code: impl Into<String>, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            severity: Severity::Warning,
            ..Diagnostic::error(code, message)
        }
    }

    pub fn info(code: impl Into<String>, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            severity: Severity::Info,
            ..Diagnostic::error(code, message)
        }
    }

    pub fn at(mut self, location: Option<Location>) -> Diagnostic {
        self.location = location;
        self
    }

    pub fn path(mut self, path: impl Into<String>) -> Diagnostic {
        self.path = path.into();
        self
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Diagnostic {
        self.hint = Some(hint.into());
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

/// Sorts by file, line, column, then code, so output is stable and reads top to bottom.
pub fn sort(diagnostics: &mut [Diagnostic]) {
    diagnostics.sort_by(|left, right| {
        let key = |diagnostic: &Diagnostic| {
            diagnostic
                .location
                .as_ref()
                .map(|location| (location.file.clone(), location.line, location.column))
        };
        key(left)
            .cmp(&key(right))
            .then_with(|| left.code.cmp(&right.code))
            .then_with(|| left.message.cmp(&right.message))
    });
}

/// The text form: a headline, the location, the source line with a caret, and any hint.
pub fn render_text(diagnostics: &[Diagnostic], sources: &SourceMap) -> String {
    let mut out = String::new();
    for diagnostic in diagnostics {
        let _ = writeln!(
            out,
            "{}[{}]: {}",
            diagnostic.severity.label(),
            diagnostic.code,
            diagnostic.message
        );
        if let Some(location) = &diagnostic.location {
            let _ = writeln!(out, "  --> {location}");
            if let Some(line) = sources.line(location) {
                let number = location.line.to_string();
                let gutter = " ".repeat(number.len());
                let yaml = is_yaml_file(&location.file);
                let (line, masked_from) = masked_line(line, yaml);
                let column = match masked_from {
                    Some(start) => location.column.saturating_sub(1).min(start),
                    None => location.column.saturating_sub(1),
                };
                let caret_pad: String = line
                    .chars()
                    .take(column)
                    .map(|character| if character == '\t' { '\t' } else { ' ' })
                    .collect();
                let _ = writeln!(out, "{gutter} |");
                let _ = writeln!(out, "{number} | {line}");
                let _ = writeln!(out, "{gutter} | {caret_pad}^");
            }
        }
        if !diagnostic.path.is_empty() {
            let _ = writeln!(out, "  = path: {}", diagnostic.path);
        }
        if let Some(hint) = &diagnostic.hint {
            let _ = writeln!(out, "  = hint: {hint}");
        }
        out.push('\n');
    }
    out
}

/// What a masked value reads as in a source snippet.
pub const MASK: &str = "<value>";

fn is_yaml_file(file: &str) -> bool {
    let lower = file.to_ascii_lowercase();
    lower.ends_with(".yaml") || lower.ends_with(".yml") || lower.ends_with(".json")
}

/// A source line as a snippet may show it: its shape (indentation, list dashes, the key, the
/// separator) with any value replaced by [`MASK`], since a line that holds a value may hold a
/// secret whatever the diagnostic is about. Returns the line and the character index where the
/// mask starts, if anything was masked. Comments, keys with no value, section headers and blank
/// lines are shown as they are.
pub fn masked_line(line: &str, yaml: bool) -> (String, Option<usize>) {
    let start = if yaml {
        yaml_value_start(line)
    } else {
        assignment_value_start(line)
    };
    match start {
        Some(byte) => {
            let shown = &line[..byte];
            (format!("{shown}{MASK}"), Some(shown.chars().count()))
        }
        None => (line.to_string(), None),
    }
}

/// Where the value of a YAML line starts (a byte index), or `None` when it holds none.
fn yaml_value_start(line: &str) -> Option<usize> {
    let mut index = line.len() - line.trim_start().len();
    loop {
        let rest = &line[index..];
        if rest == "-" || rest.starts_with("- ") || rest.starts_with("-\t") {
            index += 1;
            index += line[index..].len() - line[index..].trim_start().len();
        } else {
            break;
        }
    }
    let rest = &line[index..];
    if rest.is_empty() || rest.starts_with('#') || rest == "---" || rest == "..." {
        return None;
    }
    let key_end = match rest.chars().next() {
        Some(quote @ ('"' | '\'')) => rest[1..]
            .find(quote)
            .map(|close| close + 2)
            .filter(|after| rest[*after..].trim_start().starts_with(':')),
        Some('{' | '[' | '|' | '>' | '&' | '*' | '!') => None,
        _ => Some(0),
    };
    let Some(key_start) = key_end else {
        return Some(index);
    };
    let bytes = rest.as_bytes();
    let colon = (key_start..bytes.len()).find(|&at| {
        bytes[at] == b':'
            && bytes
                .get(at + 1)
                .is_none_or(|next| *next == b' ' || *next == b'\t')
    });
    let Some(colon) = colon else {
        // A plain scalar with no key: a list item or a continuation line, all value.
        return Some(index);
    };
    let after = index + colon + 1;
    let value = line[after..].trim_start();
    if value.is_empty() || value.starts_with('#') {
        return None;
    }
    Some(line.len() - value.len())
}

/// Where the value of a `.env` or `config.txt` line starts, or `None` when it holds none.
fn assignment_value_start(line: &str) -> Option<usize> {
    let trimmed = line.trim_start();
    if trimmed.is_empty()
        || trimmed.starts_with('#')
        || trimmed.starts_with(';')
        || trimmed.starts_with('[')
    {
        return None;
    }
    let Some(separator) = line.find(['=', ':']) else {
        // A continuation of a multi-line value.
        return Some(line.len() - trimmed.len());
    };
    let value = line[separator + 1..].trim_start();
    if value.is_empty() {
        return None;
    }
    Some(line.len() - value.len())
}

#[derive(Serialize)]
struct JsonDiagnostic<'a> {
    severity: Severity,
    code: &'a str,
    message: &'a str,
    path: &'a str,
    file: Option<&'a str>,
    line: Option<usize>,
    column: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    hint: Option<&'a str>,
}

/// `{"diagnostics":[{"severity","code","message","path","file","line","column"}]}`
pub fn render_json(diagnostics: &[Diagnostic]) -> serde_json::Value {
    let items: Vec<JsonDiagnostic<'_>> = diagnostics
        .iter()
        .map(|diagnostic| JsonDiagnostic {
            severity: diagnostic.severity,
            code: &diagnostic.code,
            message: &diagnostic.message,
            path: &diagnostic.path,
            file: diagnostic.location.as_ref().map(|location| &*location.file),
            line: diagnostic.location.as_ref().map(|location| location.line),
            column: diagnostic.location.as_ref().map(|location| location.column),
            hint: diagnostic.hint.as_deref(),
        })
        .collect();
    serde_json::json!({ "diagnostics": items })
}

/// "did you mean" for a misspelt name, when one candidate is close enough.
pub fn closest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let lowered = word.to_ascii_lowercase();
    candidates
        .into_iter()
        .map(|candidate| {
            (
                edit_distance(&lowered, &candidate.to_ascii_lowercase()),
                candidate,
            )
        })
        .filter(|(distance, candidate)| *distance <= (candidate.len().max(word.len()) / 3).max(1))
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| candidate)
}

fn edit_distance(left: &str, right: &str) -> usize {
    let right: Vec<char> = right.chars().collect();
    let mut previous: Vec<usize> = (0..=right.len()).collect();
    let mut current = vec![0; right.len() + 1];
    for (i, left_char) in left.chars().enumerate() {
        current[0] = i + 1;
        for (j, right_char) in right.iter().enumerate() {
            let substitution = previous[j] + usize::from(left_char != *right_char);
            current[j + 1] = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        std::mem::swap(&mut previous, &mut current);
    }
    previous[right.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snippets_show_the_shape_of_a_line_never_its_value() {
        let yaml = |line| masked_line(line, true).0;
        assert_eq!(
            yaml("  JWT_SECRET_KEY: s3cr3t-value"),
            "  JWT_SECRET_KEY: <value>"
        );
        assert_eq!(yaml("  - TOKEN: abc # note"), "  - TOKEN: <value>");
        assert_eq!(yaml("  - s3cr3t-item"), "  - <value>");
        assert_eq!(yaml("  \"a: b\": s3cr3t"), "  \"a: b\": <value>");
        assert_eq!(yaml("  X: {value: s3cr3t}"), "  X: <value>");
        assert_eq!(yaml("  url: http://h:1/x"), "  url: <value>");
        assert_eq!(yaml("    continued s3cr3t text"), "    <value>");
        assert_eq!(yaml("secrets:"), "secrets:");
        assert_eq!(yaml("  values:   # comment"), "  values:   # comment");
        assert_eq!(yaml("# a comment: with colon"), "# a comment: with colon");
        let assignment = |line| masked_line(line, false).0;
        assert_eq!(
            assignment("JWT_SECRET_KEY=s3cr3t"),
            "JWT_SECRET_KEY=<value>"
        );
        assert_eq!(assignment("export A = s3cr3t"), "export A = <value>");
        assert_eq!(assignment("api_key: s3cr3t"), "api_key: <value>");
        assert_eq!(assignment("[Setup]"), "[Setup]");
        assert_eq!(assignment("EMPTY="), "EMPTY=");
        assert_eq!(assignment("  more s3cr3t"), "  <value>");
    }

    #[test]
    fn the_caret_stays_on_the_mask_when_it_pointed_into_the_value() {
        let mut sources = SourceMap::default();
        let name: std::sync::Arc<str> = "f.yaml".into();
        sources.add(
            name.clone(),
            std::path::Path::new("f.yaml"),
            "a:\n  KEY: s3cr3t-and-long\n".into(),
        );
        let diagnostic = Diagnostic::error("x", "bad").at(Some(Location::new(&name, 2, 14)));
        let text = render_text(&[diagnostic], &sources);
        assert!(!text.contains("s3cr3t"), "{text}");
        assert!(text.contains("2 |   KEY: <value>\n  |        ^"), "{text}");
    }

    #[test]
    fn a_close_misspelling_gets_a_suggestion() {
        let keys = ["environment", "extends", "target"];
        assert_eq!(closest("enviroment", keys), Some("environment"));
        assert_eq!(closest("tagret", keys), Some("target"));
        assert_eq!(closest("zzzzzz", keys), None);
    }
}
