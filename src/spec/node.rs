//! A YAML document as a tree in which every value and every mapping key remembers its location.
//!
//! Built from saphyr's event stream rather than a ready-made loader because the desired-state
//! format needs three things no serde loader gives together: file:line:col for every value,
//! duplicate keys reported at both lines, and aliases that point back at their anchor. Scalars are
//! resolved with the YAML 1.2 core schema (so `yes` is a string, `true` a boolean). No I/O here.

use std::collections::HashMap;
use std::sync::Arc;

use saphyr_parser::{Event, Parser, ScalarStyle, Span};
use serde_json::Value as JsonValue;

use super::source::Location;

/// One value of the tree.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub value: NodeValue,
    pub location: Location,
}

#[derive(Debug, Clone, PartialEq)]
pub enum NodeValue {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    String(String),
    Sequence(Vec<Node>),
    Mapping(Vec<(Key, Node)>),
}

/// A mapping key. Keys are always strings in this format; other scalar keys are read as their text.
#[derive(Debug, Clone, PartialEq)]
pub struct Key {
    pub name: String,
    pub location: Location,
}

/// A problem found while reading one YAML file.
#[derive(Debug, Clone, PartialEq)]
pub struct YamlError {
    pub kind: YamlErrorKind,
    pub message: String,
    pub location: Location,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum YamlErrorKind {
    Syntax,
    DuplicateKey,
    MultipleDocuments,
    UnsupportedKey,
    /// A tag (`!secret`, `!!binary`): the format gives tags no meaning, so none is accepted.
    Tag,
    /// A bound of [`crate::limits`] was reached (nesting depth, expanded nodes or text).
    Limit,
}

/// What the documents of one load may still hold, aliases expanded: shared by every layer so
/// that many files cannot add up to more than one file may hold.
#[derive(Debug, Clone)]
pub struct Budget {
    pub nodes: usize,
    pub scalar_bytes: usize,
}

impl Default for Budget {
    fn default() -> Budget {
        Budget {
            nodes: crate::limits::MAX_YAML_NODES,
            scalar_bytes: crate::limits::MAX_YAML_SCALAR_BYTES,
        }
    }
}

/// How much of a [`Budget`] a subtree uses: what an alias of it costs.
#[derive(Debug, Clone, Copy, Default)]
struct Weight {
    nodes: usize,
    scalar_bytes: usize,
}

impl Node {
    pub fn kind_name(&self) -> &'static str {
        match self.value {
            NodeValue::Null => "null",
            NodeValue::Bool(_) => "boolean",
            NodeValue::Int(_) => "integer",
            NodeValue::Float(_) => "number",
            NodeValue::String(_) => "string",
            NodeValue::Sequence(_) => "list",
            NodeValue::Mapping(_) => "mapping",
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            NodeValue::String(text) => Some(text),
            _ => None,
        }
    }

    pub fn as_mapping(&self) -> Option<&[(Key, Node)]> {
        match &self.value {
            NodeValue::Mapping(entries) => Some(entries),
            _ => None,
        }
    }

    /// The value of `name` when this is a mapping that has it.
    pub fn get(&self, name: &str) -> Option<&Node> {
        self.get_entry(name).map(|(_, node)| node)
    }

    pub fn get_entry(&self, name: &str) -> Option<(&Key, &Node)> {
        self.as_mapping()?
            .iter()
            .find(|(key, _)| key.name == name)
            .map(|(key, node)| (key, node))
    }

    /// Follows a JSON pointer (`/secrets/values/JWT_SECRET_KEY`) as far as it goes and returns
    /// the deepest node reached and whether the whole pointer resolved. When the last token names
    /// a mapping key, the key's own location is returned too.
    pub fn resolve_pointer(&self, pointer: &str) -> PointerTarget<'_> {
        let mut node = self;
        let mut key_location = None;
        if pointer.is_empty() {
            return PointerTarget {
                node,
                key_location,
                complete: true,
            };
        }
        for raw_token in pointer.trim_start_matches('/').split('/') {
            let token = raw_token.replace("~1", "/").replace("~0", "~");
            let next = match &node.value {
                NodeValue::Mapping(entries) => entries
                    .iter()
                    .find(|(key, _)| key.name == token)
                    .map(|(key, child)| (Some(key.location.clone()), child)),
                NodeValue::Sequence(items) => token
                    .parse::<usize>()
                    .ok()
                    .and_then(|index| items.get(index))
                    .map(|child| (None, child)),
                _ => None,
            };
            match next {
                Some((location, child)) => {
                    key_location = location;
                    node = child;
                }
                None => {
                    return PointerTarget {
                        node,
                        key_location: None,
                        complete: false,
                    };
                }
            }
        }
        PointerTarget {
            node,
            key_location,
            complete: true,
        }
    }

    /// The plain JSON value, for schema validation and typed deserialisation.
    pub fn to_json(&self) -> JsonValue {
        match &self.value {
            NodeValue::Null => JsonValue::Null,
            NodeValue::Bool(value) => JsonValue::Bool(*value),
            NodeValue::Int(value) => JsonValue::from(*value),
            NodeValue::Float(value) => serde_json::Number::from_f64(*value)
                .map(JsonValue::Number)
                .unwrap_or_else(|| JsonValue::String(value.to_string())),
            NodeValue::String(text) => JsonValue::String(text.clone()),
            NodeValue::Sequence(items) => {
                JsonValue::Array(items.iter().map(Node::to_json).collect())
            }
            NodeValue::Mapping(entries) => JsonValue::Object(
                entries
                    .iter()
                    .map(|(key, node)| (key.name.clone(), node.to_json()))
                    .collect(),
            ),
        }
    }
}

pub struct PointerTarget<'a> {
    pub node: &'a Node,
    pub key_location: Option<Location>,
    pub complete: bool,
}

/// Parses one YAML document. An empty document is `null`. Errors are returned all at once where
/// the parser could go on (duplicate keys); a syntax error or a reached limit stops the file.
pub fn parse_document(text: &str, file: &Arc<str>) -> Result<Node, Vec<YamlError>> {
    parse_document_within(text, file, &mut Budget::default())
}

/// [`parse_document`], drawing expanded nodes and text from `budget`.
pub fn parse_document_within(
    text: &str,
    file: &Arc<str>,
    budget: &mut Budget,
) -> Result<Node, Vec<YamlError>> {
    let mut builder = Builder {
        file: Arc::clone(file),
        stack: Vec::new(),
        anchors: HashMap::new(),
        documents: 0,
        root: None,
        errors: Vec::new(),
        budget,
        stopped: false,
    };
    for event in Parser::new_from_str(text) {
        match event {
            Ok((event, span)) => {
                builder.on_event(event, span);
                if builder.stopped {
                    return Err(builder.errors);
                }
            }
            Err(error) => {
                let marker = error.marker();
                let location = builder.location_at(marker.line(), marker.col());
                builder.errors.push(YamlError {
                    kind: YamlErrorKind::Syntax,
                    message: format!("YAML syntax error: {}", error.info()),
                    location,
                });
                return Err(builder.errors);
            }
        }
    }
    if !builder.errors.is_empty() {
        return Err(builder.errors);
    }
    Ok(builder.root.unwrap_or(Node {
        value: NodeValue::Null,
        location: Location::new(file, 1, 1),
    }))
}

enum Frame {
    Sequence {
        anchor: usize,
        location: Location,
        items: Vec<Node>,
        weight: Weight,
    },
    Mapping {
        anchor: usize,
        location: Location,
        entries: Vec<(Key, Node)>,
        pending_key: Option<Key>,
        seen: HashMap<String, Location>,
        weight: Weight,
    },
}

struct Builder<'a> {
    file: Arc<str>,
    stack: Vec<Frame>,
    anchors: HashMap<usize, (Node, Weight)>,
    documents: usize,
    root: Option<Node>,
    errors: Vec<YamlError>,
    budget: &'a mut Budget,
    /// Set when a tag or a limit stopped the file: no further event is looked at.
    stopped: bool,
}

/// How a tag is written in the file: `!secret`, `!!binary`, `!<tag:example.com:x>`.
fn show_tag(tag: &saphyr_parser::Tag) -> String {
    if tag.is_yaml_core_schema() {
        format!("!!{}", tag.suffix)
    } else if tag.handle == "!" || tag.handle.is_empty() {
        format!("!{}", tag.suffix)
    } else {
        format!("{}{}", tag.handle, tag.suffix)
    }
}

impl Builder<'_> {
    fn stop(&mut self, kind: YamlErrorKind, message: String, location: Location) {
        self.errors.push(YamlError {
            kind,
            message,
            location,
        });
        self.stopped = true;
    }

    /// Refuses any tag: the desired-state format gives tags no meaning, and accepting one
    /// silently (`!secret`) would let a reader believe it did something.
    fn refuse_tag(&mut self, tag: Option<&saphyr_parser::Tag>, span: &Span) -> bool {
        let Some(tag) = tag else {
            return false;
        };
        let location = self.location(span);
        self.stop(
            YamlErrorKind::Tag,
            format!(
                "YAML tags are not supported: `{}` has no meaning in a desired-state file \
                 (quote the value to make it a string; secrets go under `secrets:` with a \
                 source)",
                show_tag(tag)
            ),
            location,
        );
        true
    }

    /// Takes `weight` from the budget, or stops the file naming the limit that was reached.
    /// Whether a sequence or mapping may start here: no tag, within the depth limit, and one
    /// node of budget left.
    fn open_collection(&mut self, tag: Option<&saphyr_parser::Tag>, span: &Span) -> bool {
        !self.refuse_tag(tag, span)
            && self.check_depth(span)
            && self.spend(
                Weight {
                    nodes: 1,
                    scalar_bytes: 0,
                },
                span,
            )
    }

    fn spend(&mut self, weight: Weight, span: &Span) -> bool {
        if weight.nodes > self.budget.nodes {
            let location = self.location(span);
            self.stop(
                YamlErrorKind::Limit,
                format!(
                    "the desired state holds more than {} values once aliases are expanded \
                     (limit MAX_YAML_NODES); an alias copies everything under its anchor",
                    crate::limits::MAX_YAML_NODES
                ),
                location,
            );
            return false;
        }
        if weight.scalar_bytes > self.budget.scalar_bytes {
            let location = self.location(span);
            self.stop(
                YamlErrorKind::Limit,
                format!(
                    "the desired state holds more than {} of text once aliases are expanded \
                     (limit MAX_YAML_SCALAR_BYTES); an alias copies everything under its anchor",
                    crate::limits::show_bytes(crate::limits::MAX_YAML_SCALAR_BYTES as u64)
                ),
                location,
            );
            return false;
        }
        self.budget.nodes -= weight.nodes;
        self.budget.scalar_bytes -= weight.scalar_bytes;
        true
    }

    /// Refuses a collection nested deeper than the limit.
    fn check_depth(&mut self, span: &Span) -> bool {
        if self.stack.len() >= crate::limits::MAX_YAML_DEPTH {
            let location = self.location(span);
            self.stop(
                YamlErrorKind::Limit,
                format!(
                    "mappings and lists are nested more than {} deep (limit MAX_YAML_DEPTH)",
                    crate::limits::MAX_YAML_DEPTH
                ),
                location,
            );
            return false;
        }
        true
    }

    fn location_at(&self, line: usize, column_zero_based: usize) -> Location {
        Location::new(&self.file, line.max(1), column_zero_based + 1)
    }

    fn location(&self, span: &Span) -> Location {
        self.location_at(span.start.line(), span.start.col())
    }

    fn on_event(&mut self, event: Event<'_>, span: Span) {
        match event {
            Event::StreamStart | Event::StreamEnd | Event::DocumentEnd | Event::Nothing => {}
            Event::DocumentStart(_) => {
                self.documents += 1;
                if self.documents > 1 {
                    let location = self.location(&span);
                    self.errors.push(YamlError {
                        kind: YamlErrorKind::MultipleDocuments,
                        message: "a desired-state file holds one YAML document; found a second one"
                            .to_string(),
                        location,
                    });
                }
            }
            Event::Alias(anchor) => {
                let location = self.location(&span);
                match self.anchors.get(&anchor) {
                    Some((_, weight)) => {
                        let weight = *weight;
                        // Counted before the copy is made: a billion laughs stops here.
                        if !self.spend(weight, &span) {
                            return;
                        }
                        let node = self.anchors[&anchor].0.clone();
                        self.push_value(node, weight);
                    }
                    None => self.errors.push(YamlError {
                        kind: YamlErrorKind::Syntax,
                        message: "alias refers to an unknown anchor".to_string(),
                        location,
                    }),
                }
            }
            Event::Scalar(text, style, anchor, tag) => {
                if self.refuse_tag(tag.as_deref(), &span) {
                    return;
                }
                let weight = Weight {
                    nodes: 1,
                    scalar_bytes: text.len(),
                };
                if !self.spend(weight, &span) {
                    return;
                }
                let location = self.location(&span);
                let value = resolve_scalar(&text, style, None);
                let node = Node { value, location };
                if anchor > 0 {
                    self.anchors.insert(anchor, (node.clone(), weight));
                }
                self.push_value(node, weight);
            }
            Event::SequenceStart(anchor, tag) => {
                if !self.open_collection(tag.as_deref(), &span) {
                    return;
                }
                let location = self.location(&span);
                self.stack.push(Frame::Sequence {
                    anchor,
                    location,
                    items: Vec::new(),
                    weight: Weight {
                        nodes: 1,
                        scalar_bytes: 0,
                    },
                });
            }
            Event::MappingStart(anchor, tag) => {
                if !self.open_collection(tag.as_deref(), &span) {
                    return;
                }
                let location = self.location(&span);
                self.stack.push(Frame::Mapping {
                    anchor,
                    location,
                    entries: Vec::new(),
                    pending_key: None,
                    seen: HashMap::new(),
                    weight: Weight {
                        nodes: 1,
                        scalar_bytes: 0,
                    },
                });
            }
            Event::SequenceEnd => {
                if let Some(Frame::Sequence {
                    anchor,
                    location,
                    items,
                    weight,
                }) = self.stack.pop()
                {
                    let node = Node {
                        value: NodeValue::Sequence(items),
                        location,
                    };
                    if anchor > 0 {
                        self.anchors.insert(anchor, (node.clone(), weight));
                    }
                    self.push_value(node, weight);
                }
            }
            Event::MappingEnd => {
                if let Some(Frame::Mapping {
                    anchor,
                    location,
                    entries,
                    weight,
                    ..
                }) = self.stack.pop()
                {
                    let node = Node {
                        value: NodeValue::Mapping(entries),
                        location,
                    };
                    if anchor > 0 {
                        self.anchors.insert(anchor, (node.clone(), weight));
                    }
                    self.push_value(node, weight);
                }
            }
        }
    }

    /// Adds a finished value to the collection being built; `weight` is what it cost, added
    /// to the collection's own so an alias of the collection costs all of it.
    fn push_value(&mut self, node: Node, weight: Weight) {
        let Some(frame) = self.stack.last_mut() else {
            if self.root.is_none() {
                self.root = Some(node);
            }
            return;
        };
        match frame {
            Frame::Sequence {
                weight: total,
                items,
                ..
            } => {
                total.nodes += weight.nodes;
                total.scalar_bytes += weight.scalar_bytes;
                items.push(node);
            }
            Frame::Mapping {
                entries,
                pending_key,
                seen,
                weight: total,
                ..
            } => {
                total.nodes += weight.nodes;
                total.scalar_bytes += weight.scalar_bytes;
                match pending_key.take() {
                    None => {
                        let name = match &node.value {
                            NodeValue::String(text) => Some(text.clone()),
                            NodeValue::Int(value) => Some(value.to_string()),
                            NodeValue::Bool(value) => Some(value.to_string()),
                            NodeValue::Float(value) => Some(value.to_string()),
                            NodeValue::Null => Some("null".to_string()),
                            NodeValue::Sequence(_) | NodeValue::Mapping(_) => None,
                        };
                        match name {
                            Some(name) => {
                                if let Some(first) = seen.get(&name) {
                                    self.errors.push(YamlError {
                                    kind: YamlErrorKind::DuplicateKey,
                                    message: format!(
                                        "duplicate key `{name}`: first defined at line {}, again here",
                                        first.line
                                    ),
                                    location: node.location.clone(),
                                });
                                } else {
                                    seen.insert(name.clone(), node.location.clone());
                                }
                                *pending_key = Some(Key {
                                    name,
                                    location: node.location,
                                });
                            }
                            None => {
                                self.errors.push(YamlError {
                                    kind: YamlErrorKind::UnsupportedKey,
                                    message:
                                        "mapping keys must be plain text, not a list or mapping"
                                            .to_string(),
                                    location: node.location.clone(),
                                });
                                *pending_key = Some(Key {
                                    name: String::new(),
                                    location: node.location,
                                });
                            }
                        }
                    }
                    // A duplicate key was reported when its key arrived, and any error makes
                    // `parse_document` return no tree at all, so no lookup ever sees both values.
                    Some(key) => entries.push((key, node)),
                }
            }
        }
    }
}

/// YAML 1.2 core schema resolution for one scalar.
pub(crate) fn resolve_scalar(text: &str, style: ScalarStyle, tag: Option<&str>) -> NodeValue {
    match tag {
        Some("str") => return NodeValue::String(text.to_string()),
        Some("null") => return NodeValue::Null,
        _ => {}
    }
    if style != ScalarStyle::Plain {
        return NodeValue::String(text.to_string());
    }
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return NodeValue::Null,
        "true" | "True" | "TRUE" => return NodeValue::Bool(true),
        "false" | "False" | "FALSE" => return NodeValue::Bool(false),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => {
            return NodeValue::Float(f64::INFINITY);
        }
        "-.inf" | "-.Inf" | "-.INF" => return NodeValue::Float(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => return NodeValue::Float(f64::NAN),
        _ => {}
    }
    if let Some(integer) = parse_core_int(text) {
        return NodeValue::Int(integer);
    }
    if is_core_float(text)
        && let Ok(value) = text.parse::<f64>()
    {
        return NodeValue::Float(value);
    }
    NodeValue::String(text.to_string())
}

fn parse_core_int(text: &str) -> Option<i64> {
    if let Some(octal) = text.strip_prefix("0o") {
        return i64::from_str_radix(octal, 8).ok();
    }
    if let Some(hex) = text.strip_prefix("0x") {
        return i64::from_str_radix(hex, 16).ok();
    }
    let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    text.parse::<i64>().ok()
}

fn is_core_float(text: &str) -> bool {
    // [-+]? ( \. [0-9]+ | [0-9]+ ( \. [0-9]* )? ) ( [eE] [-+]? [0-9]+ )?
    let bytes = text.as_bytes();
    let mut index = 0;
    if matches!(bytes.first(), Some(b'-' | b'+')) {
        index += 1;
    }
    let integer_start = index;
    while index < bytes.len() && bytes[index].is_ascii_digit() {
        index += 1;
    }
    let integer_digits = index - integer_start;
    let mut fraction_digits = 0;
    if index < bytes.len() && bytes[index] == b'.' {
        index += 1;
        let fraction_start = index;
        while index < bytes.len() && bytes[index].is_ascii_digit() {
            index += 1;
        }
        fraction_digits = index - fraction_start;
    } else if integer_digits == 0 {
        return false;
    }
    if integer_digits == 0 && fraction_digits == 0 {
        return false;
    }
    if index < bytes.len() && matches!(bytes[index], b'e' | b'E') {
        index += 1;
        if matches!(bytes.get(index), Some(b'-' | b'+')) {
            index += 1;
        }
        let exponent_start = index;
        while index < bytes.len() && bytes[index].is_ascii_digit() {
            index += 1;
        }
        if index == exponent_start {
            return false;
        }
    }
    index == bytes.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Node, Vec<YamlError>> {
        parse_document(text, &Arc::from("test.yaml"))
    }

    #[test]
    fn every_value_knows_its_line_and_column() {
        let node = parse("a: 1\nb:\n  c: hello\n  d: [x, y]\n").unwrap();
        let c = node.resolve_pointer("/b/c");
        assert!(c.complete);
        assert_eq!((c.node.location.line, c.node.location.column), (3, 6));
        assert_eq!(c.key_location.map(|l| (l.line, l.column)), Some((3, 3)));
        let y = node.resolve_pointer("/b/d/1");
        assert_eq!((y.node.location.line, y.node.location.column), (4, 10));
    }

    #[test]
    fn duplicate_keys_are_reported_with_both_lines() {
        let errors = parse("a: 1\nb: 2\na: 3\n").unwrap_err();
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].kind, YamlErrorKind::DuplicateKey);
        assert_eq!(errors[0].location.line, 3);
        assert!(
            errors[0].message.contains("line 1"),
            "{}",
            errors[0].message
        );
    }

    #[test]
    fn scalars_follow_the_yaml_1_2_core_schema() {
        let node =
            parse("a: yes\nb: true\nc: 012\nd: 1.5\ne: ~\nf: '1'\ng: 0x1F\nh: 1e3\n").unwrap();
        let json = node.to_json();
        assert_eq!(json["a"], "yes");
        assert_eq!(json["b"], true);
        assert_eq!(json["c"], 12);
        assert_eq!(json["d"], 1.5);
        assert!(json["e"].is_null());
        assert_eq!(json["f"], "1");
        assert_eq!(json["g"], 31);
        assert_eq!(json["h"], 1000.0);
    }

    #[test]
    fn aliases_copy_the_anchored_value_with_its_definition_site() {
        let node = parse("base: &b\n  x: 1\nother: *b\n").unwrap();
        let x = node.resolve_pointer("/other/x");
        assert!(x.complete);
        assert_eq!(x.node.location.line, 2);
    }

    #[test]
    fn a_syntax_error_points_at_its_line() {
        let errors = parse("a: [1, 2\nb: 3\n").unwrap_err();
        assert_eq!(errors[0].kind, YamlErrorKind::Syntax);
        assert!(errors[0].location.line >= 1);
    }

    #[test]
    fn an_empty_document_is_null() {
        assert_eq!(parse("").unwrap().value, NodeValue::Null);
        assert_eq!(parse("# only a comment\n").unwrap().value, NodeValue::Null);
    }

    #[test]
    fn any_tag_is_refused_at_its_location() {
        for (text, shown, line) in [
            ("a: !secret hunter2\n", "!secret", 1),
            ("a: 1\nb: !!binary aGVsbG8=\n", "!!binary", 2),
            ("a: !!str 012\n", "!!str", 1),
            ("a: !!map {b: 1}\n", "!!map", 1),
            ("a: !<tag:example.com:x> [1]\n", "tag:example.com:x", 1),
            ("? !k key\n: v\n", "!k", 1),
        ] {
            let errors = parse(text).unwrap_err();
            assert_eq!(errors.len(), 1, "{text}");
            assert_eq!(errors[0].kind, YamlErrorKind::Tag, "{text}");
            assert!(errors[0].message.contains(shown), "{}", errors[0].message);
            assert!(!errors[0].message.contains("hunter2"));
            assert_eq!(errors[0].location.line, line, "{text}");
        }
    }

    fn billion_laughs(levels: usize) -> String {
        let mut text = String::from("a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
        for level in 1..=levels {
            let previous = format!("*a{}", level - 1);
            let items = vec![previous; 9].join(", ");
            text.push_str(&format!("a{level}: &a{level} [{items}]\n"));
        }
        text
    }

    #[test]
    fn a_billion_laughs_is_refused_before_it_is_expanded() {
        let started = std::time::Instant::now();
        let errors = parse(&billion_laughs(9)).unwrap_err();
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].kind, YamlErrorKind::Limit);
        assert!(
            errors[0].message.contains("MAX_YAML_NODES"),
            "{}",
            errors[0].message
        );
        // The alias that crosses the limit, on the line of the level that does.
        assert!(errors[0].location.line >= 5, "{:?}", errors[0].location);
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
        // A few levels of aliases are ordinary YAML and still fine.
        assert!(parse(&billion_laughs(3)).is_ok());
    }

    #[test]
    fn aliases_of_long_text_count_their_text() {
        let long = "x".repeat(1024 * 1024);
        let aliases = ["*big"; 9].join(", ");
        let text = format!("big: &big {long}\ncopies: [{aliases}]\n");
        let errors = parse(&text).unwrap_err();
        assert_eq!(errors[0].kind, YamlErrorKind::Limit);
        assert!(errors[0].message.contains("MAX_YAML_SCALAR_BYTES"));
    }

    #[test]
    fn nesting_deeper_than_the_limit_is_refused() {
        let depth = crate::limits::MAX_YAML_DEPTH;
        let deep = format!("a: {}1{}\n", "[".repeat(depth), "]".repeat(depth));
        let errors = parse(&deep).unwrap_err();
        assert_eq!(errors[0].kind, YamlErrorKind::Limit);
        assert!(errors[0].message.contains("MAX_YAML_DEPTH"));
        let fine = format!("a: {}1{}\n", "[".repeat(depth - 2), "]".repeat(depth - 2));
        assert!(parse(&fine).is_ok());
        // Far deeper input is refused as quickly, without recursion.
        let very_deep = format!("a: {}\n", "[".repeat(200_000));
        assert!(parse(&very_deep).is_err());
    }

    #[test]
    fn the_budget_is_shared_by_every_document_parsed_with_it() {
        let mut budget = Budget {
            nodes: 10,
            scalar_bytes: 1000,
        };
        let file: Arc<str> = Arc::from("t.yaml");
        assert!(parse_document_within("a: [1, 2, 3]\n", &file, &mut budget).is_ok());
        assert_eq!(budget.nodes, 4);
        let errors = parse_document_within("b: [1, 2, 3, 4]\n", &file, &mut budget).unwrap_err();
        assert_eq!(errors[0].kind, YamlErrorKind::Limit);
    }

    #[test]
    fn a_second_document_is_an_error() {
        let errors = parse("a: 1\n---\nb: 2\n").unwrap_err();
        assert_eq!(errors[0].kind, YamlErrorKind::MultipleDocuments);
    }
}
