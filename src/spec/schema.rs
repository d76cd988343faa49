//! The JSON Schema of the desired-state format: generated from the Rust types (schemars), checked
//! with the jsonschema crate, and its errors turned into diagnostics that point at the YAML
//! file:line:col of the offending key or value.

use std::sync::OnceLock;

use jsonschema::error::{TypeKind, ValidationErrorKind};
use serde_json::Value as JsonValue;

use super::diagnostic::{Diagnostic, closest};
use super::node::{Node, NodeValue};
use super::types::Spec;

/// Marks a schema where `null` is a meaningful value; elsewhere `null` is refused.
pub const NULL_ALLOWED: &str = "x-null-allowed";

/// The schema, as committed in `schemas/tldw-ops.schema.json`.
pub fn schema() -> &'static JsonValue {
    static SCHEMA: OnceLock<JsonValue> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        let mut value = serde_json::to_value(schemars::schema_for!(Spec))
            .expect("a generated schema is always JSON");
        refuse_null(&mut value);
        if let Some(object) = value.as_object_mut() {
            object.insert(
                "$id".to_string(),
                JsonValue::String("https://tldw-ops.dev/schemas/tldw-ops.schema.json".to_string()),
            );
        }
        value
    })
}

/// The schema as pretty JSON with a final newline: what `tldw-ops schema` prints and
/// `schemas/tldw-ops.schema.json` holds. It is [`schema`] plus the checks [`editor_checks`]
/// adds for editors.
pub fn schema_text() -> String {
    pretty(&editor_schema())
}

/// The layer schema as pretty JSON: what `tldw-ops schema layer` prints and
/// `schemas/tldw-ops.layer.schema.json` holds.
pub fn layer_schema_text() -> String {
    pretty(&layer_schema())
}

fn pretty(value: &JsonValue) -> String {
    let mut text = serde_json::to_string_pretty(value).expect("schema serialises");
    text.push('\n');
    text
}

/// The schema editors and CI read: [`schema`] with checks that `validate` makes in its value
/// stage (with better messages, so its own validator does not repeat them), where JSON Schema
/// can say them: each retention value within tldw's range of days, and at most one source per
/// secret.
pub fn editor_schema() -> JsonValue {
    let mut value = schema().clone();
    editor_checks(&mut value);
    value
}

/// The schema of a layer: a file that `extends` another, or one that others extend. Keys a
/// layer leaves to another layer are not missing, so nothing is required; everything else (key
/// names, types, values) is checked as in [`editor_schema`]. `validate` checks the merged
/// result against the full schema.
pub fn layer_schema() -> JsonValue {
    let mut value = editor_schema();
    drop_required(&mut value);
    if let Some(object) = value.as_object_mut() {
        object.insert(
            "$id".to_string(),
            JsonValue::String(
                "https://tldw-ops.dev/schemas/tldw-ops.layer.schema.json".to_string(),
            ),
        );
        object.insert(
            "title".to_string(),
            JsonValue::String("tldw-ops desired-state layer".to_string()),
        );
    }
    value
}

fn editor_checks(schema: &mut JsonValue) {
    use super::mapping::RETENTION_KEYS;
    for key in RETENTION_KEYS {
        let Some(pointer) = key.yaml_path.strip_prefix("/retention/") else {
            continue;
        };
        let (definition, property) = match pointer.split_once('/') {
            Some((_, property)) => ("PrivilegeSnapshots", property),
            None => ("Retention", pointer),
        };
        let Some(property) =
            schema.pointer_mut(&format!("/$defs/{definition}/properties/{property}"))
        else {
            continue;
        };
        let description = property.get("description").cloned();
        let mut ranged = serde_json::json!({
            "allOf": [
                { "$ref": "#/$defs/Duration" },
                {
                    "anyOf": [
                        { "pattern": format!("^0*({})d$", range_pattern(key.min_days, key.max_days)) },
                        { "pattern": "^[0-9]{1,9}(s|m|h)$" }
                    ]
                }
            ]
        });
        if let (Some(description), Some(object)) = (description, ranged.as_object_mut()) {
            object.insert("description".to_string(), description);
        }
        *property = ranged;
    }
    if let Some(secret) = schema
        .pointer_mut("/$defs/SecretSpec")
        .and_then(JsonValue::as_object_mut)
    {
        secret.insert(
            "not".to_string(),
            serde_json::json!({
                "anyOf": [
                    { "required": ["generate", "from_env"] },
                    { "required": ["generate", "from_file"] },
                    { "required": ["from_env", "from_file"] }
                ]
            }),
        );
    }
}

/// Removes every `required` list, except under `not` (where it says what may not be combined).
fn drop_required(schema: &mut JsonValue) {
    match schema {
        JsonValue::Object(object) => {
            object.remove("required");
            for (key, value) in object.iter_mut() {
                if key != "not" {
                    drop_required(value);
                }
            }
        }
        JsonValue::Array(items) => items.iter_mut().for_each(drop_required),
        _ => {}
    }
}

/// A regular expression alternation matching the decimal numbers `min..=max` (no leading
/// zeros), built from aligned blocks: 30..=3650 is `[3-9][0-9]|[1-9][0-9]{2}|...|3650`.
pub fn range_pattern(min: u64, max: u64) -> String {
    // Each block: the digits before the varying position, the first and last digit there, and
    // how many free digits follow.
    let mut blocks: Vec<(String, u8, u8, u32)> = Vec::new();
    let mut start = min;
    while start <= max {
        let mut free = 0u32;
        while start.is_multiple_of(10u64.pow(free + 1))
            && start + 10u64.pow(free + 1) - 1 <= max
            && start != 0
        {
            free += 1;
        }
        let digits = (start / 10u64.pow(free)).to_string();
        let (prefix, last) = digits.split_at(digits.len() - 1);
        let last = last.as_bytes()[0] - b'0';
        match blocks.last_mut() {
            Some((previous, _, high, previous_free))
                if *previous == prefix && *previous_free == free && *high + 1 == last =>
            {
                *high = last;
            }
            _ => blocks.push((prefix.to_string(), last, last, free)),
        }
        start += 10u64.pow(free);
    }
    blocks
        .into_iter()
        .map(|(prefix, low, high, free)| {
            let varying = if low == high {
                low.to_string()
            } else {
                format!("[{low}-{high}]")
            };
            let tail = match free {
                0 => String::new(),
                1 => "[0-9]".to_string(),
                more => format!("[0-9]{{{more}}}"),
            };
            format!("{prefix}{varying}{tail}")
        })
        .collect::<Vec<_>>()
        .join("|")
}

/// schemars lets every `Option` field be `null`. In this format an absent key already means
/// "not set", so a `null` is almost always a mistake; refusing it also keeps schema errors
/// precise (a plain type error instead of an `anyOf` that hides which branch was meant).
fn refuse_null(schema: &mut JsonValue) {
    match schema {
        JsonValue::Object(object) => {
            if object.remove(NULL_ALLOWED).is_some() {
                return;
            }
            if let Some(JsonValue::Array(types)) = object.get_mut("type") {
                types.retain(|kind| kind != "null");
                if types.len() == 1 {
                    let single = types.remove(0);
                    object.insert("type".to_string(), single);
                }
            }
            if let Some(JsonValue::Array(branches)) = object.get("anyOf")
                && branches.len() == 2
                && let Some(null_index) = branches.iter().position(|branch| {
                    branch.get("type").and_then(JsonValue::as_str) == Some("null")
                })
            {
                let kept = branches[1 - null_index].clone();
                object.remove("anyOf");
                if let JsonValue::Object(kept) = kept {
                    for (key, value) in kept {
                        object.entry(key).or_insert(value);
                    }
                }
            }
            for value in object.values_mut() {
                refuse_null(value);
            }
        }
        JsonValue::Array(items) => items.iter_mut().for_each(refuse_null),
        _ => {}
    }
}

/// Compiles the validator now, so a caller can do it on another thread while it reads files.
pub fn warm() {
    let _ = validator();
}

fn validator() -> &'static jsonschema::Validator {
    static VALIDATOR: OnceLock<jsonschema::Validator> = OnceLock::new();
    VALIDATOR.get_or_init(|| {
        jsonschema::validator_for(schema()).expect("the generated schema is a valid JSON Schema")
    })
}

/// Every schema violation in the document, each pointing at its YAML location.
pub fn validate(root: &Node) -> Vec<Diagnostic> {
    validate_json(root, &root.to_json())
}

/// As [`validate`], for a caller that already holds the document as JSON.
pub fn validate_json(root: &Node, instance: &JsonValue) -> Vec<Diagnostic> {
    validate_json_masking(root, instance, &|_| false)
}

/// As [`validate_json`], never quoting a value at a pointer `sensitive` names (a value a
/// template built from a secret variable).
pub fn validate_json_masking(
    root: &Node,
    instance: &JsonValue,
    sensitive: &dyn Fn(&str) -> bool,
) -> Vec<Diagnostic> {
    let mut diagnostics = Vec::new();
    for error in validator().iter_errors(instance) {
        let pointer = error.instance_path().as_str().to_string();
        let schema_path = error.schema_path().as_str().to_string();
        let masked = sensitive(&pointer);
        translate(
            root,
            &pointer,
            &schema_path,
            error.kind(),
            masked,
            &mut diagnostics,
        );
    }
    diagnostics
}

fn translate(
    root: &Node,
    pointer: &str,
    schema_path: &str,
    kind: &ValidationErrorKind,
    masked: bool,
    out: &mut Vec<Diagnostic>,
) {
    let target = root.resolve_pointer(pointer);
    let node = target.node;
    let value_location = Some(node.location.clone());
    let shown = display_pointer(pointer);
    match kind {
        ValidationErrorKind::AdditionalProperties { unexpected } => {
            let allowed = allowed_properties(schema_path);
            for name in unexpected {
                let key_location = node
                    .get_entry(name)
                    .map(|(key, _)| key.location.clone())
                    .or_else(|| value_location.clone());
                let mut diagnostic = Diagnostic::error(
                    "schema.unknown_key",
                    format!("unknown key `{name}` in {}", describe_parent(&shown)),
                )
                .at(key_location)
                .path(format!("{pointer}/{}", super::load::escape_pointer(name)));
                if let Some(suggestion) = closest(name, allowed.iter().map(String::as_str)) {
                    diagnostic.message.push_str(&format!("; did you mean `{suggestion}`?"));
                } else if !allowed.is_empty() {
                    diagnostic = diagnostic.hint(format!("expected one of: {}", allowed.join(", ")));
                }
                out.push(diagnostic);
            }
        }
        ValidationErrorKind::Required { property } => {
            let name = property.as_str().unwrap_or_default();
            out.push(
                Diagnostic::error(
                    "schema.missing_key",
                    format!("missing required key `{name}` in {}", describe_parent(&shown)),
                )
                .at(value_location)
                .path(pointer),
            );
        }
        ValidationErrorKind::Type { .. } if schema_path.contains("/Duration/") => out.push(
            Diagnostic::error(
                "value.duration",
                format!(
                    "`{}` is not a duration: expected a whole number followed by s, m, h or d (30s, 15m, 24h, 90d), found {}",
                    last_token(pointer),
                    describe_found(node, pointer, masked)
                ),
            )
            .at(value_location)
            .path(pointer),
        ),
        ValidationErrorKind::Type { .. } if schema_path.contains("/QuotaLimit/") => out.push(
            Diagnostic::error(
                "schema.type",
                format!(
                    "`{}` must be a whole number of MB (0 blocks writes) or null for unlimited, found {}",
                    last_token(pointer),
                    describe_found(node, pointer, masked)
                ),
            )
            .at(value_location)
            .path(pointer),
        ),
        ValidationErrorKind::Type { kind } => {
            let expected = match kind {
                TypeKind::Single(single) => type_name(&single.to_string()).to_string(),
                TypeKind::Multiple(set) => {
                    let names: Vec<&str> =
                        set.iter().map(|t| type_name(&t.to_string())).collect();
                    names.join(" or ")
                }
            };
            out.push(
                Diagnostic::error(
                    "schema.type",
                    format!(
                        "`{}` must be {}, found {}",
                        last_token(pointer),
                        with_article(&expected),
                        describe_found(node, pointer, masked)
                    ),
                )
                .at(value_location)
                .path(pointer),
            );
        }
        ValidationErrorKind::Enum { options } => {
            let options: Vec<String> = options
                .as_array()
                .map(|items| items.iter().map(plain).collect())
                .unwrap_or_default();
            let mut diagnostic = Diagnostic::error(
                "schema.enum",
                format!(
                    "`{}` must be one of {}, found {}",
                    last_token(pointer),
                    options
                        .iter()
                        .map(|option| format!("`{option}`"))
                        .collect::<Vec<_>>()
                        .join(", "),
                    describe_found(node, pointer, masked)
                ),
            )
            .at(value_location)
            .path(pointer);
            if let Some(text) = node.as_str()
                && let Some(suggestion) = closest(text, options.iter().map(String::as_str))
            {
                diagnostic.message.push_str(&format!("; did you mean `{suggestion}`?"));
            }
            out.push(diagnostic);
        }
        ValidationErrorKind::Constant { expected_value } => out.push(
            Diagnostic::error(
                "schema.enum",
                format!(
                    "`{}` must be `{}`, found {}",
                    last_token(pointer),
                    plain(expected_value),
                    describe_found(node, pointer, masked)
                ),
            )
            .at(value_location)
            .path(pointer),
        ),
        ValidationErrorKind::Pattern { pattern } => {
            let (code, message) = if schema_path.contains("/Duration/") {
                (
                    "value.duration",
                    format!(
                        "`{}` is not a duration: expected a whole number followed by s, m, h or d (30s, 15m, 24h, 90d), found {}",
                        last_token(pointer),
                        describe_found(node, pointer, masked)
                    ),
                )
            } else {
                (
                    "schema.pattern",
                    format!(
                        "`{}` does not have the expected form `{pattern}`: found {}",
                        last_token(pointer),
                        describe_found(node, pointer, masked)
                    ),
                )
            };
            out.push(Diagnostic::error(code, message).at(value_location).path(pointer));
        }
        ValidationErrorKind::PropertyNames { error } => {
            let name = error.instance().as_str().unwrap_or_default().to_string();
            let key_location = node
                .get_entry(&name)
                .map(|(key, _)| key.location.clone())
                .or(value_location);
            let expected = match error.kind() {
                ValidationErrorKind::Pattern { pattern } => pattern_meaning(pattern),
                _ => "a valid name".to_string(),
            };
            out.push(
                Diagnostic::error(
                    "schema.key_name",
                    format!(
                        "`{name}` is not a valid name in {}: expected {expected}",
                        describe_parent(&shown)
                    ),
                )
                .at(key_location)
                .path(format!("{pointer}/{}", super::load::escape_pointer(&name))),
            );
        }
        ValidationErrorKind::Minimum { limit } | ValidationErrorKind::ExclusiveMinimum { limit } => {
            out.push(
                Diagnostic::error(
                    "schema.range",
                    format!(
                        "`{}` must be at least {limit}, found {}",
                        last_token(pointer),
                        describe_found(node, pointer, masked)
                    ),
                )
                .at(value_location)
                .path(pointer),
            )
        }
        ValidationErrorKind::Maximum { limit } | ValidationErrorKind::ExclusiveMaximum { limit } => {
            out.push(
                Diagnostic::error(
                    "schema.range",
                    format!(
                        "`{}` must be at most {limit}, found {}",
                        last_token(pointer),
                        describe_found(node, pointer, masked)
                    ),
                )
                .at(value_location)
                .path(pointer),
            )
        }
        ValidationErrorKind::MinLength { limit } => out.push(
            Diagnostic::error(
                "schema.length",
                format!(
                    "`{}` must have at least {limit} character{}",
                    last_token(pointer),
                    if *limit == 1 { "" } else { "s" }
                ),
            )
            .at(value_location)
            .path(pointer),
        ),
        ValidationErrorKind::MinItems { limit } => out.push(
            Diagnostic::error(
                "schema.length",
                format!(
                    "`{}` must have at least {limit} item{}",
                    last_token(pointer),
                    if *limit == 1 { "" } else { "s" }
                ),
            )
            .at(value_location)
            .path(pointer),
        ),
        ValidationErrorKind::AnyOf { .. } | ValidationErrorKind::OneOfNotValid { .. } => {
            let expected = if schema_path.contains("/Extends/") || pointer == "/extends" {
                "a path or a list of paths".to_string()
            } else {
                "a value of another form".to_string()
            };
            out.push(
                Diagnostic::error(
                    "schema.type",
                    format!(
                        "`{}` must be {expected}, found {}",
                        last_token(pointer),
                        describe_found(node, pointer, masked)
                    ),
                )
                .at(value_location)
                .path(pointer),
            );
        }
        other => out.push(
            Diagnostic::error("schema.invalid", format!("`{}`: {other:?}", last_token(pointer)))
                .at(value_location)
                .path(pointer),
        ),
    }
}

/// The property names the schema object at `schema_path` (an `additionalProperties` keyword)
/// allows, for "did you mean".
fn allowed_properties(schema_path: &str) -> Vec<String> {
    let object_path = schema_path
        .strip_suffix("/additionalProperties")
        .unwrap_or(schema_path);
    schema()
        .pointer(&format!("{object_path}/properties"))
        .and_then(JsonValue::as_object)
        .map(|properties| properties.keys().cloned().collect())
        .unwrap_or_default()
}

fn pattern_meaning(pattern: &str) -> String {
    match pattern {
        "^[A-Za-z_][A-Za-z0-9_]*$" => {
            "a variable name: letters, digits and `_`, not starting with a digit".to_string()
        }
        "^[A-Za-z0-9_-]{3,50}$" => {
            "a tldw username: 3 to 50 characters of A-Z, a-z, 0-9, `_` and `-`".to_string()
        }
        other => format!("the form `{other}`"),
    }
}

fn display_pointer(pointer: &str) -> String {
    if pointer.is_empty() {
        "the document".to_string()
    } else {
        pointer
            .trim_start_matches('/')
            .split('/')
            .map(|token| token.replace("~1", "/").replace("~0", "~"))
            .collect::<Vec<_>>()
            .join(".")
    }
}

fn describe_parent(shown: &str) -> String {
    if shown == "the document" {
        "the top level".to_string()
    } else {
        format!("`{shown}`")
    }
}

fn last_token(pointer: &str) -> String {
    let shown = display_pointer(pointer);
    if shown == "the document" {
        "document".to_string()
    } else {
        shown
    }
}

fn type_name(json_type: &str) -> &'static str {
    match json_type {
        "string" => "string",
        "boolean" => "boolean",
        "integer" => "integer",
        "number" => "number",
        "array" => "list",
        "object" => "mapping",
        "null" => "null",
        _ => "value",
    }
}

fn with_article(expected: &str) -> String {
    let first = expected.split(" or ").next().unwrap_or_default();
    let article = if first.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    };
    if first == "null" {
        expected.to_string()
    } else {
        format!("{article} {expected}")
    }
}

/// What was found, quoted, except where the value may be a secret pasted in the wrong place.
fn describe_found(node: &Node, pointer: &str, masked: bool) -> String {
    let depth = pointer.matches('/').count();
    let sensitive = masked
        || (pointer.starts_with("/secrets/values/") && depth == 3)
        || pointer == "/target/api/token";
    if sensitive && matches!(node.value, NodeValue::String(_)) {
        return "a string (not shown: it may be a secret)".to_string();
    }
    match &node.value {
        NodeValue::String(text) => format!("`{}`", truncate(text)),
        NodeValue::Int(value) => format!("`{value}`"),
        NodeValue::Float(value) => format!("`{value}`"),
        NodeValue::Bool(value) => format!("`{value}`"),
        NodeValue::Null => "nothing (null)".to_string(),
        NodeValue::Sequence(_) => "a list".to_string(),
        NodeValue::Mapping(_) => "a mapping".to_string(),
    }
}

fn truncate(text: &str) -> String {
    if text.chars().count() > 60 {
        let head: String = text.chars().take(57).collect();
        format!("{head}...")
    } else {
        text.to_string()
    }
}

fn plain(value: &JsonValue) -> String {
    match value {
        JsonValue::String(text) => text.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod editor_tests {
    use super::*;

    fn accepts(schema: &JsonValue, yaml: &str) -> bool {
        let instance: JsonValue = serde_yaml::from_str(yaml).unwrap();
        jsonschema::validator_for(schema)
            .unwrap()
            .is_valid(&instance)
    }

    const HEAD: &str = "apiVersion: tldw-ops/v1\nenvironment: dev\ntarget: { root: /opt/tldw }\n";

    #[test]
    fn the_editor_schema_knows_tldw_s_retention_ranges() {
        let schema = editor_schema();
        for (days, ok) in [
            ("29d", false),
            ("30d", true),
            ("099d", true),
            ("365d", true),
            ("3650d", true),
            ("3651d", false),
            ("9000d", false),
            ("2160h", true),
        ] {
            assert_eq!(
                accepts(
                    &schema,
                    &format!("{HEAD}retention: {{ audit_logs: {days} }}\n")
                ),
                ok,
                "audit_logs: {days}"
            );
        }
        assert!(!accepts(
            &schema,
            &format!("{HEAD}retention: {{ privilege_snapshots: {{ keep_all: 6d }} }}\n")
        ));
        assert!(accepts(
            &schema,
            &format!("{HEAD}retention: {{ usage_logs: 1d }}\n")
        ));
    }

    #[test]
    fn every_range_pattern_matches_exactly_its_numbers() {
        for (min, max) in [(1, 3650), (7, 3650), (30, 3650), (30, 99), (5, 5), (9, 10)] {
            let pattern = format!("^({})$", range_pattern(min, max));
            let schema = serde_json::json!({ "type": "string", "pattern": pattern });
            let validator = jsonschema::validator_for(&schema).unwrap();
            for number in 0..4_000u64 {
                assert_eq!(
                    validator.is_valid(&JsonValue::String(number.to_string())),
                    (min..=max).contains(&number),
                    "{number} against {min}..={max}: {pattern}"
                );
            }
        }
    }

    #[test]
    fn the_editor_schema_refuses_two_sources_for_one_secret() {
        let schema = editor_schema();
        let secret =
            |spec: &str| format!("{HEAD}secrets: {{ values: {{ JWT_SECRET_KEY: {spec} }} }}\n");
        assert!(accepts(&schema, &secret("{ generate: { length: 64 } }")));
        assert!(!accepts(
            &schema,
            &secret("{ generate: { length: 64 }, from_env: JWT }")
        ));
        assert!(!accepts(
            &schema,
            &secret("{ from_file: /k, from_env: JWT }")
        ));
    }

    #[test]
    fn a_layer_needs_no_top_level_keys_but_keeps_every_other_check() {
        let layer = layer_schema();
        assert!(accepts(
            &layer,
            "extends: base.yaml\nenv: { LOG_LEVEL: info }\n"
        ));
        assert!(accepts(
            &layer,
            "apiVersion: tldw-ops/v1\ntarget: { api: { url: http://x } }\n"
        ));
        assert!(
            !accepts(&layer, "registation: { enabled: true }\n"),
            "unknown keys"
        );
        assert!(
            !accepts(&layer, "retention: { audit_logs: 7d }\n"),
            "ranges"
        );
        assert!(!accepts(
            &layer,
            "secrets: { values: { A: { generate: {}, from_env: A } } }\n"
        ));
        assert!(
            !accepts(&editor_schema(), "env: { LOG_LEVEL: info }\n"),
            "a whole file needs them"
        );
    }
}
