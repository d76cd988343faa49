//! Writing YAML by hand, losslessly: encoding a string as a YAML scalar that the loader reads
//! back as exactly that text, and replacing one value of a file in place while every other byte
//! (comments, quoting, order, blank lines) stays as it was.
//!
//! `drift --adopt` and `import` write desired-state files through this module. It works on
//! text and saphyr's event spans only: no I/O, no knowledge of what the values mean. It refuses
//! what it cannot edit exactly (aliases, anchors, tags, block scalars, templates) rather than
//! guess, and the caller re-reads the result to check it.

use saphyr_parser::{Event, Parser, ScalarStyle};

use super::load::escape_pointer;
use super::node::{NodeValue, resolve_scalar};
use super::types::ScalarValue;

/// Why a value cannot be edited in place.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EditError {
    #[error("the file is not valid YAML: {0}")]
    Syntax(String),
    #[error("`{pointer}` is not in the file")]
    NotFound { pointer: String },
    #[error(
        "`{pointer}` holds a template (`{{{{ ... }}}}`): its value is computed, edit the template or its inputs instead"
    )]
    Template { pointer: String },
    #[error("`{pointer}` is {what}; edit it by hand")]
    Unsupported { pointer: String, what: &'static str },
}

/// The shape of a value as written, with its extent in characters.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Shape {
    Scalar {
        style: ScalarStyle,
        /// An anchor (`&name`) or a tag (`!!str`) is written before the value.
        decorated: bool,
    },
    Alias,
    Sequence {
        flow: bool,
        decorated: bool,
        /// Each item's extent and shape.
        items: Vec<(usize, usize, Shape)>,
        /// For a flow sequence, the index of its closing `]`.
        close: Option<usize>,
    },
    Mapping,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Found {
    start: usize,
    end: usize,
    shape: Shape,
}

enum Frame {
    Mapping {
        pointer: String,
        key: Option<String>,
    },
    Sequence {
        pointer: String,
        index: usize,
        found: Option<Found>,
    },
}

/// Finds the value at `pointer` (a JSON pointer over mapping keys and list indexes).
fn find(text: &str, pointer: &str) -> Result<Option<Found>, EditError> {
    let mut stack: Vec<Frame> = Vec::new();
    let mut result: Option<Found> = None;
    // Items of the sequence being recorded, when the target is a sequence.
    let mut recording: Option<usize> = None;
    for event in Parser::new_from_str(text) {
        let (event, span) = event.map_err(|error| EditError::Syntax(error.info().to_string()))?;
        let (start, end) = (span.start.index(), span.end.index());
        // The pointer of a value that starts here, and whether this event is a mapping key.
        let is_value_event = matches!(
            event,
            Event::Scalar(..)
                | Event::Alias(_)
                | Event::SequenceStart(..)
                | Event::MappingStart(..)
        );
        let mut here: Option<String> = None;
        if is_value_event {
            match stack.last_mut() {
                None => here = Some(String::new()),
                Some(Frame::Mapping { pointer, key }) => match key.take() {
                    Some(name) => here = Some(format!("{pointer}/{}", escape_pointer(&name))),
                    None => {
                        // A key. Only scalar keys name anything; a complex key's contents
                        // get a pointer no caller asks for.
                        if let Event::Scalar(name, ..) = &event {
                            *key = Some(name.to_string());
                            continue;
                        }
                        *key = Some(String::new());
                        here = Some("\u{0}".to_string());
                    }
                },
                Some(Frame::Sequence { pointer, index, .. }) => {
                    here = Some(format!("{pointer}/{index}"));
                    *index += 1;
                }
            }
        }
        match event {
            Event::Scalar(_, style, anchor, tag) => {
                let shape = Shape::Scalar {
                    style,
                    decorated: anchor > 0 || tag.is_some(),
                };
                if here.as_deref() == Some(pointer) {
                    result = Some(Found { start, end, shape });
                } else if recording.is_some() && stack.len() == recording.unwrap_or(0) {
                    record_item(&mut stack, start, end, shape);
                }
            }
            Event::Alias(_) => {
                if here.as_deref() == Some(pointer) {
                    result = Some(Found {
                        start,
                        end,
                        shape: Shape::Alias,
                    });
                } else if recording.is_some() && stack.len() == recording.unwrap_or(0) {
                    record_item(&mut stack, start, end, Shape::Alias);
                }
            }
            Event::SequenceStart(anchor, tag) => {
                let target = here.as_deref() == Some(pointer);
                let flow = text.chars().nth(start) == Some('[');
                if recording.is_some() && stack.len() == recording.unwrap_or(0) {
                    // A nested list inside the recorded one: record it as an opaque item.
                    record_item(&mut stack, start, start, Shape::Mapping);
                }
                stack.push(Frame::Sequence {
                    pointer: here.unwrap_or_default(),
                    index: 0,
                    found: target.then_some(Found {
                        start,
                        end: start,
                        shape: Shape::Sequence {
                            flow,
                            decorated: anchor > 0 || tag.is_some(),
                            items: Vec::new(),
                            close: None,
                        },
                    }),
                });
                if target {
                    recording = Some(stack.len());
                }
            }
            Event::SequenceEnd => {
                if let Some(Frame::Sequence {
                    found: Some(mut found),
                    ..
                }) = stack.pop()
                {
                    if let Shape::Sequence { flow, close, .. } = &mut found.shape
                        && *flow
                    {
                        *close = Some(start);
                        found.end = start + 1;
                    }
                    result = Some(found);
                    recording = None;
                }
            }
            Event::MappingStart(..) => {
                if here.as_deref() == Some(pointer) {
                    result = Some(Found {
                        start,
                        end: start,
                        shape: Shape::Mapping,
                    });
                }
                if recording.is_some() && stack.len() == recording.unwrap_or(0) {
                    record_item(&mut stack, start, start, Shape::Mapping);
                }
                stack.push(Frame::Mapping {
                    pointer: here.unwrap_or_default(),
                    key: None,
                });
            }
            Event::MappingEnd => {
                stack.pop();
            }
            Event::StreamStart
            | Event::StreamEnd
            | Event::DocumentStart(_)
            | Event::DocumentEnd
            | Event::Nothing => {}
        }
    }
    Ok(result)
}

fn record_item(stack: &mut [Frame], start: usize, end: usize, shape: Shape) {
    if let Some(Frame::Sequence {
        found:
            Some(Found {
                shape: Shape::Sequence { items, .. },
                ..
            }),
        ..
    }) = stack.last_mut()
    {
        items.push((start, end, shape));
    }
}

/// Whether a text would be rendered as a template by the loader.
pub fn is_template(text: &str) -> bool {
    text.contains("{{") || text.contains("{%") || text.contains("{#")
}

/// Character index -> byte offset.
fn byte_offset(text: &str, index: usize) -> usize {
    text.char_indices()
        .nth(index)
        .map(|(offset, _)| offset)
        .unwrap_or(text.len())
}

fn slice(text: &str, start: usize, end: usize) -> &str {
    &text[byte_offset(text, start)..byte_offset(text, end)]
}

fn splice(text: &str, start: usize, end: usize, with: &str) -> String {
    let (from, to) = (byte_offset(text, start), byte_offset(text, end));
    let mut out = String::with_capacity(text.len() + with.len());
    out.push_str(&text[..from]);
    out.push_str(with);
    out.push_str(&text[to..]);
    out
}

fn check_scalar(text: &str, pointer: &str, found: &Found) -> Result<(), EditError> {
    let unsupported = |what| {
        Err(EditError::Unsupported {
            pointer: pointer.to_string(),
            what,
        })
    };
    match &found.shape {
        Shape::Scalar {
            decorated: true, ..
        } => unsupported("written with an anchor or a tag, so other values may share it"),
        Shape::Scalar {
            style: ScalarStyle::Literal | ScalarStyle::Folded,
            ..
        } => unsupported("a block scalar (`|` or `>`)"),
        Shape::Scalar { .. } if found.start == found.end => unsupported("empty"),
        Shape::Scalar { .. } => {
            let raw = slice(text, found.start, found.end);
            if is_template(raw) {
                return Err(EditError::Template {
                    pointer: pointer.to_string(),
                });
            }
            if raw.contains('\n') {
                return unsupported("a scalar written over several lines");
            }
            Ok(())
        }
        Shape::Alias => unsupported("an alias (`*name`) of a value defined elsewhere"),
        Shape::Sequence { .. } => unsupported("a list, not a single value"),
        Shape::Mapping => unsupported("a mapping, not a single value"),
    }
}

/// Replaces the scalar at `pointer` with `replacement` (already YAML-encoded, see [`scalar`]).
pub fn replace_scalar(text: &str, pointer: &str, replacement: &str) -> Result<String, EditError> {
    let found = find(text, pointer)?.ok_or_else(|| EditError::NotFound {
        pointer: pointer.to_string(),
    })?;
    check_scalar(text, pointer, &found)?;
    Ok(splice(text, found.start, found.end, replacement))
}

/// Whether the value at `pointer` is written with a template.
pub fn holds_template(text: &str, pointer: &str) -> Result<bool, EditError> {
    let found = find(text, pointer)?.ok_or_else(|| EditError::NotFound {
        pointer: pointer.to_string(),
    })?;
    let end = match &found.shape {
        Shape::Sequence {
            flow: false, items, ..
        } => items.last().map(|(_, end, _)| *end).unwrap_or(found.end),
        _ => found.end,
    };
    Ok(is_template(slice(text, found.start, end)))
}

/// Replaces the list at `pointer` with `items` (each already YAML-encoded). A flow list
/// (`[a, b]`) is rewritten as one; a block list (`- a` lines) keeps its lines and comments:
/// items are replaced in place, new ones are added after the last, surplus lines are removed.
pub fn replace_sequence(text: &str, pointer: &str, items: &[String]) -> Result<String, EditError> {
    let unsupported = |what| EditError::Unsupported {
        pointer: pointer.to_string(),
        what,
    };
    let found = find(text, pointer)?.ok_or_else(|| EditError::NotFound {
        pointer: pointer.to_string(),
    })?;
    let Shape::Sequence {
        flow,
        decorated,
        items: existing,
        close,
    } = &found.shape
    else {
        return Err(unsupported("not a list"));
    };
    if *decorated {
        return Err(unsupported(
            "a list written with an anchor or a tag, so other values may share it",
        ));
    }
    for (index, (start, end, shape)) in existing.iter().enumerate() {
        let item = Found {
            start: *start,
            end: *end,
            shape: shape.clone(),
        };
        check_scalar(text, &format!("{pointer}/{index}"), &item)?;
    }
    if *flow {
        let close = close.ok_or_else(|| unsupported("a list without its closing `]`"))?;
        // Comments between the items would be lost by rewriting the list on one line.
        let mut inside = slice(text, found.start, close + 1).to_string();
        for (start, end, _) in existing.iter().rev() {
            let relative_start = start - found.start;
            let relative_end = end - found.start;
            inside = splice(&inside, relative_start, relative_end, "");
        }
        if inside.contains('#') {
            return Err(unsupported("a list with comments between its items"));
        }
        let written = format!("[{}]", items.join(", "));
        return Ok(splice(text, found.start, close + 1, &written));
    }
    if items.is_empty() {
        return Err(unsupported(
            "a block list (`- item` lines) that would become empty; write `[]` there",
        ));
    }
    // A block list: every item must sit alone on its line after `- `.
    let chars: Vec<char> = text.chars().collect();
    let line_start = |index: usize| {
        let mut at = index;
        while at > 0 && chars[at - 1] != '\n' {
            at -= 1;
        }
        at
    };
    let line_end = |index: usize| {
        let mut at = index;
        while at < chars.len() && chars[at] != '\n' {
            at += 1;
        }
        at
    };
    let mut lines = Vec::new();
    for (start, end, _) in existing {
        let first = line_start(*start);
        let prefix: String = chars[first..*start].iter().collect();
        let rest: String = chars[*end..line_end(*end)].iter().collect();
        let rest_ok = rest.trim().is_empty() || rest.trim_start().starts_with('#');
        if prefix.trim() != "-" || !rest_ok {
            return Err(unsupported(
                "a list whose items do not each stand on their own `- item` line",
            ));
        }
        lines.push((first, *start, *end, prefix));
    }
    // Edit from the end so earlier positions stay valid.
    let mut out = text.to_string();
    if items.len() > existing.len() {
        let (_, _, end, prefix) = lines.last().expect("a non-empty block list");
        let after = line_end(*end);
        let mut added = String::new();
        for item in &items[existing.len()..] {
            added.push('\n');
            added.push_str(prefix);
            added.push_str(item);
        }
        out = splice(&out, after, after, &added);
    }
    for (index, (first, start, end, _)) in lines.iter().enumerate().rev() {
        match items.get(index) {
            Some(item) => out = splice(&out, *start, *end, item),
            None => {
                // Remove the whole line, its line break included.
                let last = line_end(*end);
                let through = if last < chars.len() { last + 1 } else { last };
                out = splice(&out, *first, through, "");
            }
        }
    }
    Ok(out)
}

/// How `text` is written as a YAML scalar so that the loader reads it back as a value whose
/// rendering ([`ScalarValue::render`]) is exactly `text`: plain when that is safe (`info`,
/// `120`, `true`), else single-quoted, else double-quoted with escapes. Template syntax is not
/// handled here; see [`template_safe`].
pub fn scalar(text: &str) -> String {
    if plain_is_exact(text) {
        return text.to_string();
    }
    if text.chars().all(|c| !needs_escape(c)) {
        return format!("'{}'", text.replace('\'', "''"));
    }
    double_quoted(text)
}

/// A mapping key: the loader keeps keys as text, so the same rule as values applies.
pub fn key(text: &str) -> String {
    scalar(text)
}

/// `text`, protected from the template renderer when it holds template syntax, or `None` when
/// it cannot be (it contains the end of a raw block itself).
pub fn template_safe(text: &str) -> Option<String> {
    if !is_template(text) {
        return Some(text.to_string());
    }
    if text.contains("endraw") {
        return None;
    }
    Some(format!("{{% raw %}}{text}{{% endraw %}}"))
}

fn needs_escape(c: char) -> bool {
    c.is_control() || matches!(c, '\u{2028}' | '\u{2029}' | '\u{feff}')
}

fn double_quoted(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\0' => out.push_str("\\0"),
            c if needs_escape(c) => {
                let code = c as u32;
                if code <= 0xff {
                    out.push_str(&format!("\\x{code:02x}"));
                } else {
                    out.push_str(&format!("\\u{code:04x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Whether `text` written plain reads back as itself, in block and in flow context alike.
fn plain_is_exact(text: &str) -> bool {
    let Some(first) = text.chars().next() else {
        return false;
    };
    if text.trim() != text
        || text.chars().any(|c| needs_escape(c) || c == '\t')
        || text.contains(": ")
        || text.ends_with(':')
        || text.contains(" #")
        || text.contains([',', '[', ']', '{', '}'])
        || is_template(text)
    {
        return false;
    }
    let resolved = resolve_scalar(text, ScalarStyle::Plain, None);
    let reads_back = match resolved {
        NodeValue::String(ref read) => read == text,
        NodeValue::Bool(value) => ScalarValue::Bool(value).render() == text,
        NodeValue::Int(value) => ScalarValue::Integer(value).render() == text,
        NodeValue::Float(value) => value.is_finite() && ScalarValue::Float(value).render() == text,
        NodeValue::Null | NodeValue::Sequence(_) | NodeValue::Mapping(_) => false,
    };
    if !reads_back {
        return false;
    }
    // Indicators may not start a plain scalar; `-` is fine before a digit (`-5`).
    let numeric = !matches!(resolved, NodeValue::String(_));
    !"-?:,[]{}#&*!|>'\"%@`".contains(first) || (first == '-' && numeric)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use crate::spec::node::parse_document;
    use proptest::prelude::*;

    /// What the loader reads for `key: <written>`, rendered as the spec renders values.
    fn read_back(written: &str) -> String {
        let node = parse_document(&format!("k: {written}\n"), &Arc::from("t.yaml")).unwrap();
        let value: ScalarValue = serde_json::from_value(node.to_json()["k"].clone()).unwrap();
        value.render()
    }

    fn read_back_in_flow(written: &str) -> String {
        let node = parse_document(&format!("k: [{written}, x]\n"), &Arc::from("t.yaml")).unwrap();
        let value: ScalarValue = serde_json::from_value(node.to_json()["k"][0].clone()).unwrap();
        value.render()
    }

    #[test]
    fn scalars_are_plain_only_when_they_read_back_exactly() {
        for (text, written) in [
            ("info", "info"),
            ("120", "120"),
            ("true", "true"),
            ("yes", "yes"),
            (
                "sqlite:///./Databases/users.db",
                "sqlite:///./Databases/users.db",
            ),
            ("http://localhost:3000", "http://localhost:3000"),
            ("-5", "-5"),
            ("True", "'True'"),
            ("012", "'012'"),
            ("1.0", "'1.0'"),
            ("", "''"),
            ("null", "'null'"),
            ("~", "'~'"),
            ("a: b", "'a: b'"),
            ("a #b", "'a #b'"),
            ("-x", "'-x'"),
            ("it's", "it's"),
            ("'quoted'", "'''quoted'''"),
            ("[\"a\",\"b\"]", "'[\"a\",\"b\"]'"),
            (" padded ", "' padded '"),
            ("two\nlines", "\"two\\nlines\""),
            ("tab\there", "\"tab\\there\""),
        ] {
            assert_eq!(scalar(text), written, "{text:?}");
            assert_eq!(read_back(&scalar(text)), text, "{text:?}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn any_text_reads_back_exactly(text in "\\PC{0,12}|[ -~\\n\\t]{0,12}") {
            prop_assume!(!is_template(&text));
            prop_assert_eq!(read_back(&scalar(&text)), text.clone());
            prop_assert_eq!(read_back_in_flow(&scalar(&text)), text);
        }
    }

    const FILE: &str = "# head comment\nenv:\n  LOG_LEVEL: info   # keep me\n  NAME: 'x'\n  T: \"{{ env.X }}\"\ncors:\n  allowed_origins: [http://a.example, 'http://b.example']  # c\n  block:\n    - one\n    # between\n    - two  # two's\n    - three\nq: &a v\nr: *a\n";

    #[test]
    fn a_scalar_is_replaced_and_nothing_else_moves() {
        let out = replace_scalar(FILE, "/env/LOG_LEVEL", "debug").unwrap();
        assert_eq!(
            out,
            FILE.replace(
                "LOG_LEVEL: info   # keep me",
                "LOG_LEVEL: debug   # keep me"
            )
        );
        let out = replace_scalar(FILE, "/env/NAME", "'it''s'").unwrap();
        assert_eq!(out, FILE.replace("NAME: 'x'", "NAME: 'it''s'"));
    }

    #[test]
    fn templates_aliases_and_anchors_are_refused() {
        assert!(matches!(
            replace_scalar(FILE, "/env/T", "x"),
            Err(EditError::Template { .. })
        ));
        assert!(holds_template(FILE, "/env/T").unwrap());
        assert!(!holds_template(FILE, "/env/NAME").unwrap());
        assert!(matches!(
            replace_scalar(FILE, "/r", "x"),
            Err(EditError::Unsupported { .. })
        ));
        assert!(matches!(
            replace_scalar(FILE, "/q", "x"),
            Err(EditError::Unsupported { .. })
        ));
        assert!(matches!(
            replace_scalar(FILE, "/env/NOPE", "x"),
            Err(EditError::NotFound { .. })
        ));
    }

    #[test]
    fn a_flow_list_is_rewritten_in_place() {
        let out = replace_sequence(
            FILE,
            "/cors/allowed_origins",
            &["https://c.example".to_string()],
        )
        .unwrap();
        assert_eq!(
            out,
            FILE.replace(
                "[http://a.example, 'http://b.example']  # c",
                "[https://c.example]  # c"
            )
        );
    }

    #[test]
    fn a_block_list_keeps_its_lines_and_comments() {
        let items = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let out = replace_sequence(FILE, "/cors/block", &items(&["1", "2", "3", "4"])).unwrap();
        assert_eq!(
            out,
            FILE.replace(
                "    - one\n    # between\n    - two  # two's\n    - three\n",
                "    - 1\n    # between\n    - 2  # two's\n    - 3\n    - 4\n"
            )
        );
        let out = replace_sequence(FILE, "/cors/block", &items(&["1"])).unwrap();
        assert_eq!(
            out,
            FILE.replace(
                "    - one\n    # between\n    - two  # two's\n    - three\n",
                "    - 1\n    # between\n"
            )
        );
        assert!(replace_sequence(FILE, "/cors/block", &[]).is_err());
    }

    #[test]
    fn multi_byte_characters_do_not_shift_the_edit() {
        let text = "a: é😀ü # ünïcode\nb: x\n";
        let out = replace_scalar(text, "/b", "y").unwrap();
        assert_eq!(out, "a: é😀ü # ünïcode\nb: y\n");
        let out = replace_scalar(text, "/a", "z").unwrap();
        assert_eq!(out, "a: z # ünïcode\nb: x\n");
    }

    #[test]
    fn template_safe_wraps_template_syntax_in_a_raw_block() {
        assert_eq!(template_safe("plain").as_deref(), Some("plain"));
        let wrapped = template_safe("a {{ b }}").unwrap();
        assert_eq!(wrapped, "{% raw %}a {{ b }}{% endraw %}");
        assert_eq!(template_safe("{% endraw %}"), None);
    }
}
