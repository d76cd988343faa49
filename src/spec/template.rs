//! The template sandbox: what a minijinja expression in a desired-state string may read and do.
//!
//! A desired-state file may come from a pull request, so its templates are untrusted code run
//! next to CI's secrets. They see `environment` (the environment's name) and `env`, which is not
//! the process environment but an object that answers only for the variables the file declares
//! under `template:` (`variables`, `prefix`, `secret`). `env` cannot be printed whole or
//! iterated; reading an undeclared name is an error naming it. A value built from a secret
//! variable (one listed under `template.secret`, or whose name looks like a secret's) is
//! sensitive from then on: the loader marks it and compile masks it like a secret.
//!
//! Execution is bounded: only expressions and `if`/`elif`/`else` (no `set`, `for`, macros or
//! `*`, which could grow a value without bound in a few bytes of template), a small set of
//! filters that cannot grow text, fuel, and an output size per value ([`crate::limits`]).
//! No I/O here: the variables' values are passed in.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::{Arc, Mutex};

use minijinja::value::{Enumerator, Object, ObjectRepr, Value};
use minijinja::{Environment, ErrorKind, UndefinedBehavior};

use super::diagnostic::{Diagnostic, closest};
use super::node::{Node, NodeValue};
use crate::limits::{
    MAX_TEMPLATE_OUTPUT_BYTES, MAX_TEMPLATE_SOURCE_BYTES, MAX_TEMPLATE_TOTAL_OUTPUT_BYTES,
    MAX_TEMPLATE_VALUES, TEMPLATE_FUEL, show_bytes,
};

/// The top-level key that declares what templates read.
pub const SECTION: &str = "template";

/// What templates may read from the process environment, from the `template:` section (after
/// layering: maps merge, lists replace).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scope {
    pub variables: BTreeSet<String>,
    pub prefix: Option<String>,
    pub secret: BTreeSet<String>,
}

impl Scope {
    /// Whether the file declares that templates read `name`.
    pub fn declares(&self, name: &str) -> bool {
        self.variables.contains(name)
            || self.secret.contains(name)
            || self
                .prefix
                .as_deref()
                .is_some_and(|prefix| name.starts_with(prefix))
    }

    /// Whether a value built from `name` is sensitive: declared secret, or named like a secret
    /// (`TLDW_ADMIN_TOKEN`), so a file cannot print a token by forgetting to say it is one.
    pub fn is_secret(&self, name: &str) -> bool {
        self.secret.contains(name) || crate::spec::secret_rules::looks_like_secret_name(name)
    }

    /// Reads the `template:` section of `root`, reporting what is malformed.
    pub fn from_root(root: &Node, diagnostics: &mut Vec<Diagnostic>) -> Scope {
        let mut scope = Scope::default();
        let Some(section) = root.get(SECTION) else {
            return scope;
        };
        let Some(entries) = section.as_mapping() else {
            if section.value != NodeValue::Null {
                diagnostics.push(
                    Diagnostic::error(
                        "schema.type",
                        format!(
                            "`template` must be a mapping, found a {}",
                            section.kind_name()
                        ),
                    )
                    .at(Some(section.location.clone()))
                    .path("/template"),
                );
            }
            return scope;
        };
        for (key, value) in entries {
            let pointer = format!("/template/{}", super::load::escape_pointer(&key.name));
            match key.name.as_str() {
                "variables" | "secret" => {
                    let names = names(value, &pointer, diagnostics);
                    if key.name == "variables" {
                        scope.variables = names;
                    } else {
                        scope.secret = names;
                    }
                }
                "prefix" => match &value.value {
                    NodeValue::String(prefix) if is_name(prefix) => {
                        scope.prefix = Some(prefix.clone());
                    }
                    NodeValue::Null => {}
                    _ => diagnostics.push(
                        Diagnostic::error(
                            "schema.type",
                            "`template.prefix` must be the non-empty start of a variable name \
                             (letters, digits and `_`)",
                        )
                        .at(Some(value.location.clone()))
                        .path(pointer),
                    ),
                },
                other => {
                    let mut diagnostic = Diagnostic::error(
                        "schema.unknown_key",
                        format!("unknown key `{other}` in `template`"),
                    )
                    .at(Some(key.location.clone()))
                    .path(pointer);
                    if let Some(suggestion) = closest(other, ["variables", "prefix", "secret"]) {
                        diagnostic
                            .message
                            .push_str(&format!("; did you mean `{suggestion}`?"));
                    } else {
                        diagnostic = diagnostic.hint("expected one of: variables, prefix, secret");
                    }
                    diagnostics.push(diagnostic);
                }
            }
        }
        scope
    }
}

fn is_name(text: &str) -> bool {
    let mut characters = text.chars();
    characters
        .next()
        .is_some_and(|first| first.is_ascii_alphabetic() || first == '_')
        && characters.all(|character| character.is_ascii_alphanumeric() || character == '_')
}

fn names(node: &Node, pointer: &str, diagnostics: &mut Vec<Diagnostic>) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let items: &[Node] = match &node.value {
        NodeValue::Sequence(items) => items,
        NodeValue::Null => return out,
        _ => {
            diagnostics.push(
                Diagnostic::error(
                    "schema.type",
                    format!(
                        "`{}` must be a list of variable names, found a {}",
                        pointer.trim_start_matches('/').replace('/', "."),
                        node.kind_name()
                    ),
                )
                .at(Some(node.location.clone()))
                .path(pointer),
            );
            return out;
        }
    };
    for (index, item) in items.iter().enumerate() {
        match item.as_str() {
            Some(name) if is_name(name) => {
                out.insert(name.to_string());
            }
            _ => diagnostics.push(
                Diagnostic::error(
                    "schema.type",
                    "a template variable is a name of letters, digits and `_`, not starting \
                     with a digit",
                )
                .at(Some(item.location.clone()))
                .path(format!("{pointer}/{index}")),
            ),
        }
    }
    out
}

/// What one template did with `env`, recorded by the object as the template runs.
#[derive(Debug, Default)]
struct Access {
    undeclared: BTreeSet<String>,
    secret_used: bool,
    whole: bool,
}

/// `env` as templates see it: only declared names answer.
struct SandboxedEnv {
    values: Arc<BTreeMap<String, String>>,
    scope: Arc<Scope>,
    access: Mutex<Access>,
}

impl fmt::Debug for SandboxedEnv {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the values: this is what a debug print of the context would show.
        formatter.write_str("env(declared variables only)")
    }
}

impl SandboxedEnv {
    fn record(&self, change: impl FnOnce(&mut Access)) {
        if let Ok(mut access) = self.access.lock() {
            change(&mut access);
        }
    }
}

impl Object for SandboxedEnv {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Plain
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let name = key.as_str()?;
        if !self.scope.declares(name) {
            self.record(|access| {
                access.undeclared.insert(name.to_string());
            });
            return None;
        }
        if self.scope.is_secret(name) {
            self.record(|access| access.secret_used = true);
        }
        self.values
            .get(name)
            .map(|value| Value::from(value.as_str()))
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        self.record(|access| access.whole = true);
        Enumerator::NonEnumerable
    }

    fn enumerator_len(self: &Arc<Self>) -> Option<usize> {
        self.record(|access| access.whole = true);
        None
    }

    fn is_true(self: &Arc<Self>) -> bool {
        true
    }

    fn render(self: &Arc<Self>, _: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Printing nothing, not an error: minijinja's `string` and `~` turn a formatting error
        // into a panic. The recorded access makes the render fail afterwards.
        self.record(|access| access.whole = true);
        Ok(())
    }
}

/// A rendered value, and whether it was built from a secret variable.
#[derive(Debug, Clone)]
pub struct Rendered {
    pub text: String,
    pub sensitive: bool,
}

/// A refusal: a stable diagnostic code, the message, and a hint.
#[derive(Debug, Clone)]
pub struct Refusal {
    pub code: &'static str,
    pub message: String,
    pub hint: String,
}

impl Refusal {
    fn new(code: &'static str, message: impl Into<String>, hint: impl Into<String>) -> Refusal {
        Refusal {
            code,
            message: message.into(),
            hint: hint.into(),
        }
    }
}

const DECLARE_HINT: &str = "templates read only the variables the file declares: \
    `template: { variables: [NAME] }`, `prefix: TLDW_OPS_VAR_`, or `secret: [NAME]` for a \
    value that must be masked; `environment` is the environment's name";

/// Renders the templates of one desired state. Identical template text renders once: the
/// context is the same for every value, so aliases of a templated value cost nothing more.
pub struct Renderer<'a> {
    jinja: Environment<'static>,
    environment_name: &'a str,
    scope: Arc<Scope>,
    values: Arc<BTreeMap<String, String>>,
    memo: std::collections::HashMap<String, Result<Rendered, Refusal>>,
    total_output: usize,
    /// The values of every secret variable a template read, for scrubbing messages.
    pub secret_values: BTreeSet<String>,
}

impl<'a> Renderer<'a> {
    pub fn new(
        environment_name: &'a str,
        scope: Scope,
        process_env: &BTreeMap<String, String>,
    ) -> Renderer<'a> {
        let values: BTreeMap<String, String> = process_env
            .iter()
            .filter(|(name, _)| scope.declares(name))
            .map(|(name, value)| (name.clone(), value.clone()))
            .collect();
        Renderer {
            jinja: environment(),
            environment_name,
            scope: Arc::new(scope),
            values: Arc::new(values),
            memo: std::collections::HashMap::new(),
            total_output: 0,
            secret_values: BTreeSet::new(),
        }
    }

    /// Renders one string value.
    pub fn render(&mut self, text: &str) -> Result<Rendered, Refusal> {
        let result = match self.memo.get(text) {
            Some(result) => result.clone(),
            None => {
                if self.memo.len() >= MAX_TEMPLATE_VALUES {
                    return Err(Refusal::new(
                        "template.limit",
                        format!(
                            "the desired state holds more than {MAX_TEMPLATE_VALUES} different \
                             templates (limit MAX_TEMPLATE_VALUES)"
                        ),
                        "move repeated values into one anchored value and alias it",
                    ));
                }
                let result = self.render_new(text);
                self.memo.insert(text.to_string(), result.clone());
                result
            }
        };
        let rendered = result?;
        self.total_output += rendered.text.len();
        if self.total_output > MAX_TEMPLATE_TOTAL_OUTPUT_BYTES {
            return Err(Refusal::new(
                "template.limit",
                format!(
                    "templates render more than {} in all (limit MAX_TEMPLATE_TOTAL_OUTPUT_BYTES)",
                    show_bytes(MAX_TEMPLATE_TOTAL_OUTPUT_BYTES as u64)
                ),
                "templates are for short values: a domain, a commit, a name",
            ));
        }
        Ok(rendered)
    }

    fn render_new(&mut self, text: &str) -> Result<Rendered, Refusal> {
        if text.len() > MAX_TEMPLATE_SOURCE_BYTES {
            return Err(Refusal::new(
                "template.limit",
                format!(
                    "template is longer than {} (limit MAX_TEMPLATE_SOURCE_BYTES)",
                    show_bytes(MAX_TEMPLATE_SOURCE_BYTES as u64)
                ),
                "templates are for short values: a domain, a commit, a name",
            ));
        }
        if let Some(refusal) = unsupported_syntax(text) {
            return Err(refusal);
        }
        let template = self.jinja.template_from_str(text).map_err(|error| {
            Refusal::new(
                "template.syntax",
                format!("template does not parse: {}", error_text(&error)),
                DECLARE_HINT,
            )
        })?;
        let env = Arc::new(SandboxedEnv {
            values: Arc::clone(&self.values),
            scope: Arc::clone(&self.scope),
            access: Mutex::new(Access::default()),
        });
        let context = minijinja::context! {
            env => Value::from_dyn_object(Arc::clone(&env)),
            environment => self.environment_name,
        };
        let mut output = BoundedOutput::default();
        let result = template
            .render_captured_to(context, &mut output)
            .map(|_| ());
        let access = env
            .access
            .lock()
            .map(|access| Access {
                undeclared: access.undeclared.clone(),
                secret_used: access.secret_used,
                whole: access.whole,
            })
            .unwrap_or_default();
        if access.secret_used {
            // Collected before any refusal: an error message may quote a value it read.
            for (name, value) in self.values.iter() {
                if self.scope.is_secret(name) && !value.is_empty() {
                    self.secret_values.insert(value.clone());
                }
            }
        }
        if access.whole {
            return Err(Refusal::new(
                "template.env_whole",
                "templates cannot print or iterate `env` whole; read one declared variable, \
                 `env.NAME`",
                DECLARE_HINT,
            ));
        }
        if let Some(name) = access.undeclared.iter().next() {
            return Err(Refusal::new(
                "template.undeclared",
                format!(
                    "template reads `env.{name}`, which the file does not declare under \
                     `template:`"
                ),
                format!(
                    "declare it: `template: {{ variables: [{name}] }}` (or `secret: [{name}]` \
                     when its value must be masked)"
                ),
            ));
        }
        if output.overflowed {
            return Err(Refusal::new(
                "template.limit",
                format!(
                    "template renders more than {} (limit MAX_TEMPLATE_OUTPUT_BYTES)",
                    show_bytes(MAX_TEMPLATE_OUTPUT_BYTES as u64)
                ),
                "templates are for short values: a domain, a commit, a name",
            ));
        }
        if let Err(error) = result {
            return Err(match error.kind() {
                ErrorKind::OutOfFuel => Refusal::new(
                    "template.limit",
                    format!("template runs more than {TEMPLATE_FUEL} steps (limit TEMPLATE_FUEL)"),
                    "templates are for short values: a domain, a commit, a name",
                ),
                ErrorKind::UndefinedError => {
                    let mut missing: Vec<String> = template
                        .undeclared_variables(true)
                        .into_iter()
                        .filter(|name| !self.is_defined(name))
                        .collect();
                    missing.sort();
                    let names = if missing.is_empty() {
                        "a variable".to_string()
                    } else {
                        missing
                            .iter()
                            .map(|name| format!("`{name}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    };
                    Refusal::new(
                        "template.undefined",
                        format!("template uses {names}, which is not defined"),
                        "a declared variable that may be unset needs a default: \
                         `{{ env.NAME | default('value') }}`",
                    )
                }
                _ => Refusal::new(
                    "template.render",
                    format!("template failed: {}", error_text(&error)),
                    DECLARE_HINT,
                ),
            });
        }
        let text = String::from_utf8(output.bytes).map_err(|_| {
            Refusal::new(
                "template.render",
                "template rendered text that is not UTF-8",
                DECLARE_HINT,
            )
        })?;
        if access.secret_used && !text.is_empty() {
            self.secret_values.insert(text.clone());
        }
        Ok(Rendered {
            text,
            sensitive: access.secret_used,
        })
    }

    fn is_defined(&self, name: &str) -> bool {
        match name.split_once('.') {
            Some(("env", variable)) => self.values.contains_key(variable),
            None if name == "environment" => !self.environment_name.is_empty(),
            None if name == "env" => true,
            _ => false,
        }
    }
}

/// The message of a minijinja error without its debug context (which can quote values).
fn error_text(error: &minijinja::Error) -> String {
    let mut text = error.kind().to_string();
    if let Some(detail) = error.detail() {
        text.push_str(": ");
        text.push_str(detail);
    }
    text
}

/// The template environment: no globals (`range`, `namespace`, `debug`, ...), only filters
/// and tests that cannot grow a value, strict undefined values, fuel, and no debug context in
/// errors (it would quote variable values).
fn environment() -> Environment<'static> {
    use minijinja::{filters, tests};
    let mut jinja = Environment::empty();
    jinja.set_undefined_behavior(UndefinedBehavior::Strict);
    jinja.set_fuel(Some(TEMPLATE_FUEL));
    jinja.set_debug(false);
    jinja.set_recursion_limit(32);
    jinja.add_filter("default", filters::default);
    jinja.add_filter("d", filters::default);
    jinja.add_filter("lower", filters::lower);
    jinja.add_filter("upper", filters::upper);
    jinja.add_filter("title", filters::title);
    jinja.add_filter("capitalize", filters::capitalize);
    jinja.add_filter("trim", filters::trim);
    jinja.add_filter("length", filters::length);
    jinja.add_filter("int", filters::int);
    jinja.add_filter("float", filters::float);
    jinja.add_filter("string", filters::string);
    jinja.add_filter("bool", filters::bool);
    jinja.add_test("defined", tests::is_defined);
    jinja.add_test("undefined", tests::is_undefined);
    jinja.add_test("none", tests::is_none);
    jinja.add_test("string", tests::is_string);
    jinja.add_test("number", tests::is_number);
    jinja.add_test("true", tests::is_true);
    jinja.add_test("false", tests::is_false);
    jinja
}

/// Collects output up to the per-value limit, then refuses more.
#[derive(Default)]
struct BoundedOutput {
    bytes: Vec<u8>,
    overflowed: bool,
}

impl std::io::Write for &mut BoundedOutput {
    fn write(&mut self, buffer: &[u8]) -> std::io::Result<usize> {
        if self.bytes.len() + buffer.len() > MAX_TEMPLATE_OUTPUT_BYTES {
            self.overflowed = true;
            return Err(std::io::Error::other("template output limit"));
        }
        self.bytes.extend_from_slice(buffer);
        Ok(buffer.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Statements a template may use. Anything that binds a name (`set`, `for`, `with`, macros)
/// could double a value per statement; the rest need a loader this sandbox does not have.
const ALLOWED_STATEMENTS: &[&str] = &["if", "elif", "else", "endif", "raw", "endraw"];

/// Finds syntax the sandbox refuses, before minijinja compiles the template: a statement other
/// than [`ALLOWED_STATEMENTS`], or the `*` operator (string repetition) outside a string.
fn unsupported_syntax(text: &str) -> Option<Refusal> {
    let bytes = text.as_bytes();
    let mut index = 0;
    while index + 1 < bytes.len() {
        let (open, next) = (bytes[index], bytes[index + 1]);
        if open != b'{' || !matches!(next, b'{' | b'%' | b'#') {
            index += 1;
            continue;
        }
        index += 2;
        if next == b'#' {
            match text[index..].find("#}") {
                Some(end) => index += end + 2,
                None => return None,
            }
            continue;
        }
        let statement = next == b'%';
        let close = if statement { b'%' } else { b'}' };
        if matches!(bytes.get(index), Some(b'-' | b'+')) {
            index += 1;
        }
        let mut raw = false;
        if statement {
            while bytes.get(index).is_some_and(u8::is_ascii_whitespace) {
                index += 1;
            }
            let start = index;
            while bytes
                .get(index)
                .is_some_and(|byte| byte.is_ascii_alphanumeric() || *byte == b'_')
            {
                index += 1;
            }
            let word = &text[start..index];
            if !ALLOWED_STATEMENTS.contains(&word) {
                return Some(Refusal::new(
                    "template.unsupported",
                    format!(
                        "`{{% {word} %}}` is not available in templates: only `if`, `elif`, \
                         `else` and `raw` (a loop or an assignment could print `env` or grow a \
                         value without bound)"
                    ),
                    "compute the value outside tldw-ops and declare it as a variable",
                ));
            }
            raw = word == "raw";
        }
        let mut quote: Option<u8> = None;
        while index < bytes.len() {
            let byte = bytes[index];
            match quote {
                Some(_) if byte == b'\\' => index += 1,
                Some(open_quote) if byte == open_quote => quote = None,
                Some(_) => {}
                None if byte == b'\'' || byte == b'"' => quote = Some(byte),
                None if byte == b'*' => {
                    return Some(Refusal::new(
                        "template.unsupported",
                        "the `*` operator is not available in templates (it repeats text)",
                        "write the value out",
                    ));
                }
                None if byte == close && bytes.get(index + 1) == Some(&b'}') => {
                    index += 2;
                    break;
                }
                None => {}
            }
            index += 1;
        }
        if raw {
            // Everything up to `{% endraw %}` is text, not template.
            let rest = &text[index.min(text.len())..];
            match find_endraw(rest) {
                Some(offset) => index += offset,
                None => return None,
            }
        }
    }
    None
}

/// Where the `{%` of the first `{% endraw %}` in `text` starts.
fn find_endraw(text: &str) -> Option<usize> {
    let mut from = 0;
    while let Some(found) = text[from..].find("{%") {
        let start = from + found;
        let after = text[start + 2..]
            .trim_start_matches(['-', '+'])
            .trim_start();
        if after.starts_with("endraw") {
            return Some(start);
        }
        from = start + 2;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope(variables: &[&str], prefix: Option<&str>, secret: &[&str]) -> Scope {
        Scope {
            variables: variables.iter().map(ToString::to_string).collect(),
            prefix: prefix.map(ToString::to_string),
            secret: secret.iter().map(ToString::to_string).collect(),
        }
    }

    fn process_env() -> BTreeMap<String, String> {
        [
            ("TLDW_ADMIN_TOKEN", "admin-token-s3cr3t-value"),
            ("TLDW_OPS_VAR_DOMAIN", "tldw.example.org"),
            ("TLDW_OPS_VAR_DB_PASSWORD", "db-password-s3cr3t"),
            ("CI_COMMIT_SHA", "0123abcd"),
            ("HOME", "/root"),
        ]
        .into_iter()
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect()
    }

    fn render(scope: Scope, text: &str) -> Result<Rendered, Refusal> {
        let env = process_env();
        Renderer::new("staging", scope, &env).render(text)
    }

    #[test]
    fn declared_variables_render_and_undeclared_ones_are_refused_by_name() {
        let declared = scope(&["CI_COMMIT_SHA"], Some("TLDW_OPS_VAR_"), &[]);
        let rendered = render(
            declared.clone(),
            "https://{{ env.TLDW_OPS_VAR_DOMAIN }}/{{ env.CI_COMMIT_SHA }}/{{ environment }}",
        )
        .unwrap();
        assert_eq!(rendered.text, "https://tldw.example.org/0123abcd/staging");
        assert!(!rendered.sensitive);
        for text in [
            "{{ env.HOME }}",
            "{{ env.HOME | default('x') }}",
            "{{ env['HOME'] }}",
            "{% if env.HOME is defined %}y{% endif %}",
        ] {
            let refusal = render(declared.clone(), text).unwrap_err();
            assert_eq!(refusal.code, "template.undeclared", "{text}");
            assert!(refusal.message.contains("env.HOME"), "{}", refusal.message);
            assert!(
                refusal.hint.contains("variables: [HOME]"),
                "{}",
                refusal.hint
            );
        }
    }

    #[test]
    fn a_declared_but_unset_variable_takes_its_default() {
        let declared = scope(&["TLDW_OPS_UNSET"], None, &[]);
        assert_eq!(
            render(
                declared.clone(),
                "{{ env.TLDW_OPS_UNSET | default('fine') }}"
            )
            .unwrap()
            .text,
            "fine"
        );
        let refusal = render(declared, "{{ env.TLDW_OPS_UNSET }}").unwrap_err();
        assert_eq!(refusal.code, "template.undefined");
        assert!(refusal.message.contains("env.TLDW_OPS_UNSET"));
    }

    #[test]
    fn env_cannot_be_printed_or_iterated_whole() {
        let declared = scope(&["CI_COMMIT_SHA"], Some("TLDW_"), &[]);
        for text in [
            "{{ env }}",
            "{{ env | string }}",
            "{{ env ~ '' }}",
            "{{ env | length }}",
        ] {
            let refusal = render(declared.clone(), text).unwrap_err();
            assert_eq!(refusal.code, "template.env_whole", "{text}: {refusal:?}");
            assert!(!refusal.message.contains("s3cr3t"));
        }
        for text in [
            "{% for k, v in env|items %}{{ k }}={{ v }}{% endfor %}",
            "{% for k in env %}{{ k }}{% endfor %}",
            "{{ env | first }}",
            "{{ env | items }}",
            "{% set x = env %}",
            "{% macro m() %}{% endmacro %}",
            "{{ 'x' * 1000000 }}",
            "{{ debug() }}",
            "{{ range(10) }}",
            "{{ env.CI_COMMIT_SHA | replace('0', '00000000') }}",
        ] {
            let refusal = render(declared.clone(), text).unwrap_err();
            assert!(
                ["template.unsupported", "template.render", "template.syntax"]
                    .contains(&refusal.code),
                "{text}: {refusal:?}"
            );
            assert!(!refusal.message.contains("s3cr3t"), "{}", refusal.message);
        }
    }

    #[test]
    fn a_value_built_from_a_secret_variable_is_sensitive() {
        let declared = scope(&["TLDW_ADMIN_TOKEN"], None, &["TLDW_OPS_VAR_DB_PASSWORD"]);
        let env = process_env();
        let mut renderer = Renderer::new("dev", declared, &env);
        let by_name = renderer
            .render("https://x/{{ env.TLDW_ADMIN_TOKEN }}")
            .unwrap();
        assert!(
            by_name.sensitive,
            "a TOKEN name is secret without saying so"
        );
        let declared_secret = renderer
            .render("postgres://u:{{ env.TLDW_OPS_VAR_DB_PASSWORD }}@db/x")
            .unwrap();
        assert!(declared_secret.sensitive);
        assert!(renderer.secret_values.contains("db-password-s3cr3t"));
        assert!(renderer.secret_values.contains("admin-token-s3cr3t-value"));
        assert!(!renderer.render("{{ environment }}").unwrap().sensitive);
    }

    #[test]
    fn fuel_output_size_and_source_size_are_bounded() {
        let declared = scope(&["TLDW_OPS_BIG"], None, &[]);
        let mut env = process_env();
        env.insert("TLDW_OPS_BIG".to_string(), "x".repeat(40 * 1024));
        let mut renderer = Renderer::new("dev", declared.clone(), &env);
        assert!(renderer.render("{{ env.TLDW_OPS_BIG }}").is_ok());
        let refusal = renderer
            .render("{{ env.TLDW_OPS_BIG }}{{ env.TLDW_OPS_BIG }}")
            .unwrap_err();
        assert_eq!(refusal.code, "template.limit");
        assert!(refusal.message.contains("64 KiB"), "{}", refusal.message);
        let refusal = render(declared.clone(), &"{{ 1 }}".repeat(1000)).unwrap_err();
        assert!(refusal.message.contains("MAX_TEMPLATE_SOURCE_BYTES"));
        let mut starved = Renderer::new("dev", declared, &env);
        starved.jinja.set_fuel(Some(20));
        let refusal = starved.render(&"{{ 1 + 1 }}".repeat(50)).unwrap_err();
        assert_eq!(refusal.code, "template.limit");
        assert!(
            refusal.message.contains("TEMPLATE_FUEL"),
            "{}",
            refusal.message
        );
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(300))]

        #[test]
        fn any_template_text_renders_or_is_refused_without_panicking(
            text in "([{}%#*'\"\\~|() ]|env|\\.|raw|endraw|if|for|set|[a-zA-Z_]{1,8}|é|\\PC){0,40}"
        ) {
            let declared = scope(&["CI_COMMIT_SHA"], Some("TLDW_OPS_VAR_"), &["TLDW_OPS_VAR_DB_PASSWORD"]);
            if let Err(refusal) = render(declared, &text) {
                proptest::prop_assert!(!refusal.message.contains("s3cr3t"));
            }
        }
    }

    #[test]
    fn raw_blocks_and_comments_are_not_mistaken_for_code() {
        let declared = scope(&[], None, &[]);
        assert_eq!(
            render(declared.clone(), "{% raw %}{% for x %}*{% endraw %}")
                .unwrap()
                .text,
            "{% for x %}*"
        );
        assert_eq!(
            render(declared.clone(), "a{# {% set x %} * #}b")
                .unwrap()
                .text,
            "ab"
        );
        assert_eq!(
            render(declared, "{{ '*' ~ \"{% set %}\" }}").unwrap().text,
            "*{% set %}"
        );
    }

    #[test]
    fn the_scope_reads_its_section_and_reports_what_is_malformed() {
        let root = super::super::node::parse_document(
            "template:\n  variables: [A, 1B]\n  prefix: ''\n  secret: S\n  variabls: []\n",
            &Arc::from("t.yaml"),
        )
        .unwrap();
        let mut diagnostics = Vec::new();
        let scope = Scope::from_root(&root, &mut diagnostics);
        assert_eq!(scope.variables, BTreeSet::from(["A".to_string()]));
        let codes: Vec<(&str, usize)> = diagnostics
            .iter()
            .map(|d| (d.code.as_str(), d.location.as_ref().unwrap().line))
            .collect();
        assert_eq!(
            codes,
            vec![
                ("schema.type", 2),
                ("schema.type", 3),
                ("schema.type", 4),
                ("schema.unknown_key", 5)
            ]
        );
        assert!(diagnostics[3].message.contains("did you mean `variables`"));
    }
}
