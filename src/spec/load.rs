//! Loading: read a desired-state file and the files it `extends`, merge the layers (maps merge
//! deeply, the including file wins, lists and scalars replace), then render minijinja templates
//! in string values. Every value keeps the location it was written at, through both steps.
//!
//! The only I/O is reading the YAML files themselves, each a regular file within
//! [`crate::limits`]; the process environment used by templates is passed in, so loading is
//! deterministic for a given input. Templates run in the sandbox of [`super::template`].

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::diagnostic::Diagnostic;
use super::node::{Budget, Key, Node, NodeValue, YamlErrorKind, parse_document_within};
use super::source::{Location, SourceMap, display_name};
use super::template::{Renderer, Scope};
use crate::limits::{self, MAX_DOCUMENT_BYTES, MAX_LAYER_FILES, ReadError};

/// A loaded, layered and rendered desired state, still untyped.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The merged, templated document.
    pub root: Node,
    /// The merged layers this file extends, before templating; `None` without `extends`.
    pub shared: Option<Node>,
    /// Every file read, the file given first and then its layers in merge order.
    pub files: Vec<PathBuf>,
    pub main_file: PathBuf,
    pub sources: SourceMap,
    /// Pointers of the values a template built from a secret variable: compile marks the
    /// resources they declare sensitive.
    pub sensitive: BTreeSet<String>,
    /// The secret variables' values and the values built from them, to scrub from messages.
    pub redactions: Redactions,
}

impl Loaded {
    /// Whether the value at `pointer`, or anything under it, was built from a secret variable.
    pub fn is_sensitive(&self, pointer: &str) -> bool {
        is_sensitive_pointer(&self.sensitive, pointer)
    }
}

fn is_sensitive_pointer(sensitive: &BTreeSet<String>, pointer: &str) -> bool {
    let below = |upper: &str, lower: &str| {
        lower.starts_with(upper) && lower.as_bytes().get(upper.len()) == Some(&b'/')
    };
    sensitive
        .iter()
        .any(|marked| marked == pointer || below(pointer, marked) || below(marked, pointer))
}

/// Text that must not appear in any message, longest first. `Debug` shows only the count.
#[derive(Clone, Default)]
pub struct Redactions(Vec<String>);

impl std::fmt::Debug for Redactions {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "Redactions({} values)", self.0.len())
    }
}

impl Redactions {
    fn new(values: BTreeSet<String>) -> Redactions {
        let mut values: Vec<String> = values
            .into_iter()
            .filter(|value| value.len() >= 4)
            .collect();
        values.sort_by_key(|value| std::cmp::Reverse(value.len()));
        Redactions(values)
    }

    /// `text` with every redacted value replaced by `(sensitive)`.
    pub fn scrub(&self, text: &str) -> String {
        let mut out = text.to_string();
        for value in &self.0 {
            if out.contains(value.as_str()) {
                out = out.replace(value.as_str(), "(sensitive)");
            }
        }
        out
    }

    /// Scrubs the message and hint of every diagnostic.
    pub fn scrub_all(&self, diagnostics: &mut [Diagnostic]) {
        if self.0.is_empty() {
            return;
        }
        for diagnostic in diagnostics {
            diagnostic.message = self.scrub(&diagnostic.message);
            if let Some(hint) = &diagnostic.hint {
                diagnostic.hint = Some(self.scrub(hint));
            }
        }
    }
}

/// Why loading stopped.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the desired state has errors")]
    Invalid {
        diagnostics: Vec<Diagnostic>,
        sources: SourceMap,
    },
}

/// Loads `path` with its layers, rendering templates against `process_env`. Any error,
/// template errors included, stops here; [`load_tolerant`] keeps going past template errors.
pub fn load(path: &Path, process_env: &BTreeMap<String, String>) -> Result<Loaded, LoadError> {
    let tolerant = load_tolerant(path, process_env)?;
    if !tolerant.diagnostics.is_empty() {
        return Err(LoadError::Invalid {
            diagnostics: tolerant.diagnostics,
            sources: tolerant.loaded.sources,
        });
    }
    Ok(tolerant.loaded)
}

/// A loaded document whose templates may have failed: the later checks still run on it, and
/// skip the values in [`Tolerant::skipped`].
#[derive(Debug)]
pub struct Tolerant {
    pub loaded: Loaded,
    /// The template errors, scrubbed of secret values.
    pub diagnostics: Vec<Diagnostic>,
    /// Pointers of the values that hold no usable result: a template that failed (the value
    /// keeps its unrendered text), or a secret-built value where none may go.
    pub skipped: BTreeSet<String>,
}

/// As [`load`], but a template error does not stop loading: the errors are returned with the
/// document, so that schema and value checks can still report everything else in one run.
/// YAML and layering errors still stop here, since there is no document to check without them.
pub fn load_tolerant(
    path: &Path,
    process_env: &BTreeMap<String, String>,
) -> Result<Tolerant, LoadError> {
    let mut loader = Loader {
        sources: SourceMap::default(),
        files: Vec::new(),
        diagnostics: Vec::new(),
        cache: HashMap::new(),
        budget: Budget::default(),
        layers: 0,
    };
    let main_file = absolute(path);
    let layered = loader.load_layers(&main_file, &mut Vec::new(), None)?;
    let Some(layered) = layered else {
        return Err(LoadError::Invalid {
            diagnostics: loader.diagnostics,
            sources: loader.sources,
        });
    };
    if !loader.diagnostics.is_empty() {
        return Err(LoadError::Invalid {
            diagnostics: loader.diagnostics,
            sources: loader.sources,
        });
    }
    let mut root = layered.merged;
    let environment = root
        .get("environment")
        .and_then(Node::as_str)
        .unwrap_or_default()
        .to_string();
    let mut diagnostics = Vec::new();
    let scope = Scope::from_root(&root, &mut diagnostics);
    let mut sensitive = BTreeSet::new();
    let mut skipped = BTreeSet::new();
    let mut renderer = Renderer::new(&environment, scope, process_env);
    if has_template(&root) {
        if diagnostics.is_empty() {
            let mut seen = BTreeSet::new();
            let mut context = RenderContext {
                renderer: &mut renderer,
                diagnostics: &mut diagnostics,
                sensitive: &mut sensitive,
                seen: &mut seen,
                failed: &mut skipped,
            };
            render_templates(&mut root, "", &mut context);
        } else {
            // The `template:` section itself is wrong: no template can be rendered.
            template_pointers(&root, "", &mut skipped);
        }
    }
    refuse_secrets_outside_resources(&root, &sensitive, &mut diagnostics);
    skipped.extend(
        sensitive
            .iter()
            .filter(|pointer| {
                !SENSITIVE_SECTIONS
                    .iter()
                    .any(|section| pointer.starts_with(section))
            })
            .cloned(),
    );
    let redactions = Redactions::new(std::mem::take(&mut renderer.secret_values));
    redactions.scrub_all(&mut diagnostics);
    Ok(Tolerant {
        loaded: Loaded {
            root,
            shared: layered.shared,
            files: loader.files,
            main_file,
            sources: loader.sources,
            sensitive,
            redactions,
        },
        diagnostics,
        skipped,
    })
}

/// The pointers of every templated string below `node`, the `template:` section excepted.
fn template_pointers(node: &Node, pointer: &str, out: &mut BTreeSet<String>) {
    match &node.value {
        NodeValue::String(text) if is_template(text) => {
            out.insert(pointer.to_string());
        }
        NodeValue::Mapping(entries) => {
            for (key, child) in entries {
                if pointer.is_empty() && key.name == super::template::SECTION {
                    continue;
                }
                template_pointers(
                    child,
                    &format!("{pointer}/{}", escape_pointer(&key.name)),
                    out,
                );
            }
        }
        NodeValue::Sequence(items) => {
            for (position, child) in items.iter().enumerate() {
                template_pointers(child, &format!("{pointer}/{position}"), out);
            }
        }
        _ => {}
    }
}

fn absolute(path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .map(|cwd| cwd.join(path))
            .unwrap_or_else(|_| path.to_path_buf())
    }
}

/// Normalises `a/./b/../c` without touching the file system, so cycles are found even through
/// different spellings of one path.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                out.pop();
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

struct Layered {
    merged: Node,
    shared: Option<Node>,
}

struct Loader {
    sources: SourceMap,
    files: Vec<PathBuf>,
    diagnostics: Vec<Diagnostic>,
    cache: HashMap<PathBuf, Node>,
    /// What all layers together may still hold, aliases expanded.
    budget: Budget,
    /// Layers loaded so far, a file extended twice counting twice.
    layers: usize,
}

impl Loader {
    /// Reports a file that could not be read. A layer is reported at its `extends` entry;
    /// the file given on the command line is an operator error when it is unreadable, and a
    /// diagnostic (bad input, exit 3) when it is refused by a limit.
    fn refuse(
        &mut self,
        path: &Path,
        error: ReadError,
        included_from: Option<&Location>,
    ) -> Result<Option<Node>, LoadError> {
        if let Some(location) = included_from {
            let (code, message) = if error.is_refusal() {
                ("load.limit", format!("extended file refused: {error}"))
            } else {
                (
                    "load.extends_unreadable",
                    match &error {
                        ReadError::Io { source, .. } => {
                            format!("cannot read extended file {}: {source}", path.display())
                        }
                        other => other.to_string(),
                    },
                )
            };
            self.diagnostics.push(
                Diagnostic::error(code, message)
                    .at(Some(location.clone()))
                    .path("/extends"),
            );
            return Ok(None);
        }
        match error {
            ReadError::Io { source, .. } => Err(LoadError::Read {
                path: path.to_path_buf(),
                source,
            }),
            refused => {
                self.diagnostics
                    .push(
                        Diagnostic::error("load.limit", refused.to_string()).hint(format!(
                            "a desired-state file is a regular file of at most {}",
                            limits::show_bytes(MAX_DOCUMENT_BYTES)
                        )),
                    );
                Ok(None)
            }
        }
    }

    /// Reads and parses one file (once, even when several layers extend it).
    fn read(
        &mut self,
        path: &Path,
        included_from: Option<&Location>,
    ) -> Result<Option<Node>, LoadError> {
        // Every layer counts, read or cached: a list repeating one large file is as costly to
        // merge as that many files.
        self.layers += 1;
        if self.layers > MAX_LAYER_FILES {
            let message = format!(
                "the desired state is layered from more than {MAX_LAYER_FILES} files, a file \
                 extended twice counting twice (limit MAX_LAYER_FILES); {} is one too many",
                path.display()
            );
            let diagnostic = Diagnostic::error("load.limit", message).path("/extends");
            self.diagnostics.push(diagnostic.at(included_from.cloned()));
            return Ok(None);
        }
        if let Some(node) = self.cache.get(path) {
            return Ok(Some(node.clone()));
        }
        let bytes = match limits::read_regular_file(path, MAX_DOCUMENT_BYTES) {
            Ok(bytes) => bytes,
            Err(error) => return self.refuse(path, error, included_from),
        };
        let name = display_name(path);
        let text = match String::from_utf8(bytes) {
            Ok(text) => text,
            Err(error) => {
                let offset = error.utf8_error().valid_up_to();
                let bytes = error.into_bytes();
                let (line, column) = limits::line_column_at(&bytes, offset);
                let location = Location::new(&name, line, column);
                // The snippet shows the line with the bad byte replaced, masked like any other.
                let lossy: Arc<str> = Arc::from(String::from_utf8_lossy(&bytes).as_ref());
                self.sources.add(Arc::clone(&name), path, lossy);
                self.files.push(path.to_path_buf());
                let mut diagnostic = Diagnostic::error(
                    "load.not_utf8",
                    format!(
                        "{} is not UTF-8 text: byte {offset} (line {line}, column {column}) \
                         is not valid UTF-8",
                        path.display()
                    ),
                )
                .at(Some(location))
                .hint("save the file as UTF-8");
                if included_from.is_some() {
                    diagnostic = diagnostic.path("/extends");
                }
                self.diagnostics.push(diagnostic);
                return Ok(None);
            }
        };
        let text: Arc<str> = Arc::from(text);
        self.sources.add(Arc::clone(&name), path, Arc::clone(&text));
        self.files.push(path.to_path_buf());
        match parse_document_within(&text, &name, &mut self.budget) {
            Ok(node) => {
                let node = match node.value {
                    NodeValue::Mapping(_) => node,
                    NodeValue::Null => Node {
                        value: NodeValue::Mapping(Vec::new()),
                        location: node.location,
                    },
                    _ => {
                        self.diagnostics.push(
                            Diagnostic::error(
                                "schema.type",
                                format!(
                                    "a desired-state file must be a mapping of sections, found a {}",
                                    node.kind_name()
                                ),
                            )
                            .at(Some(node.location.clone()))
                            .path(""),
                        );
                        return Ok(None);
                    }
                };
                self.cache.insert(path.to_path_buf(), node.clone());
                Ok(Some(node))
            }
            Err(errors) => {
                for error in errors {
                    let code = match error.kind {
                        YamlErrorKind::Syntax => "yaml.syntax",
                        YamlErrorKind::DuplicateKey => "yaml.duplicate_key",
                        YamlErrorKind::MultipleDocuments => "yaml.multiple_documents",
                        YamlErrorKind::UnsupportedKey => "yaml.key_type",
                        YamlErrorKind::Tag => "yaml.tag",
                        YamlErrorKind::Limit => "load.limit",
                    };
                    self.diagnostics
                        .push(Diagnostic::error(code, error.message).at(Some(error.location)));
                }
                Ok(None)
            }
        }
    }

    /// Loads `path` and everything it extends, merged. `chain` holds the files above this one,
    /// to report cycles.
    fn load_layers(
        &mut self,
        path: &Path,
        chain: &mut Vec<PathBuf>,
        included_from: Option<&Location>,
    ) -> Result<Option<Layered>, LoadError> {
        let path = normalize(path);
        let Some(mut node) = self.read(&path, included_from)? else {
            return Ok(None);
        };
        chain.push(path.clone());
        let extends = take_key(&mut node, "extends");
        let mut base: Option<Node> = None;
        let mut failed = false;
        if let Some((_, extends)) = extends {
            let entries: Vec<&Node> = match &extends.value {
                NodeValue::String(_) => vec![&extends],
                NodeValue::Sequence(items) => items.iter().collect(),
                _ => {
                    self.diagnostics.push(
                        Diagnostic::error(
                            "schema.type",
                            format!(
                                "`extends` must be a path or a list of paths, found a {}",
                                extends.kind_name()
                            ),
                        )
                        .at(Some(extends.location.clone()))
                        .path("/extends"),
                    );
                    Vec::new()
                }
            };
            let directory = path.parent().map(Path::to_path_buf).unwrap_or_default();
            for entry in entries {
                let Some(relative) = entry.as_str() else {
                    self.diagnostics.push(
                        Diagnostic::error(
                            "schema.type",
                            format!(
                                "each `extends` entry must be a path, found a {}",
                                entry.kind_name()
                            ),
                        )
                        .at(Some(entry.location.clone()))
                        .path("/extends"),
                    );
                    continue;
                };
                let target = normalize(&directory.join(relative));
                if let Some(position) = chain.iter().position(|earlier| *earlier == target) {
                    let mut names: Vec<String> = chain[position..]
                        .iter()
                        .map(|file| display_name(file).to_string())
                        .collect();
                    names.push(display_name(&target).to_string());
                    self.diagnostics.push(
                        Diagnostic::error(
                            "load.extends_cycle",
                            format!("`extends` forms a cycle: {}", names.join(" -> ")),
                        )
                        .at(Some(entry.location.clone()))
                        .path("/extends")
                        .hint("remove one of the `extends` entries in the chain"),
                    );
                    failed = true;
                    continue;
                }
                match self.load_layers(&target, chain, Some(&entry.location))? {
                    Some(layer) => {
                        base = Some(match base {
                            None => layer.merged,
                            Some(lower) => merge(lower, layer.merged),
                        });
                    }
                    None => failed = true,
                }
            }
        }
        chain.pop();
        if failed {
            return Ok(None);
        }
        Ok(Some(match base {
            None => Layered {
                merged: node,
                shared: None,
            },
            Some(base) => Layered {
                merged: merge(base.clone(), node),
                shared: Some(base),
            },
        }))
    }
}

fn take_key(node: &mut Node, name: &str) -> Option<(Key, Node)> {
    let NodeValue::Mapping(entries) = &mut node.value else {
        return None;
    };
    let index = entries.iter().position(|(key, _)| key.name == name)?;
    Some(entries.remove(index))
}

/// Overlays `upper` on `lower`: mappings merge key by key, anything else is replaced.
pub fn merge(lower: Node, upper: Node) -> Node {
    match (lower.value, upper.value) {
        (NodeValue::Mapping(mut lower_entries), NodeValue::Mapping(upper_entries)) => {
            let mut index: HashMap<String, usize> = lower_entries
                .iter()
                .enumerate()
                .map(|(position, (key, _))| (key.name.clone(), position))
                .collect();
            for (key, value) in upper_entries {
                match index.get(&key.name) {
                    Some(&position) => {
                        let placeholder = Node {
                            value: NodeValue::Null,
                            location: value.location.clone(),
                        };
                        let existing =
                            std::mem::replace(&mut lower_entries[position].1, placeholder);
                        lower_entries[position] = (key, merge(existing, value));
                    }
                    None => {
                        index.insert(key.name.clone(), lower_entries.len());
                        lower_entries.push((key, value));
                    }
                }
            }
            Node {
                value: NodeValue::Mapping(lower_entries),
                location: upper.location,
            }
        }
        (_, upper_value) => Node {
            value: upper_value,
            location: upper.location,
        },
    }
}

/// Whether any string below `node` holds template syntax (a cheap scan that lets rendering
/// skip template-free subtrees without building their pointers).
fn has_template(node: &Node) -> bool {
    match &node.value {
        NodeValue::String(text) => is_template(text),
        NodeValue::Mapping(entries) => entries.iter().any(|(_, child)| has_template(child)),
        NodeValue::Sequence(items) => items.iter().any(has_template),
        NodeValue::Null | NodeValue::Bool(_) | NodeValue::Int(_) | NodeValue::Float(_) => false,
    }
}

fn is_template(text: &str) -> bool {
    text.contains("{{") || text.contains("{%") || text.contains("{#")
}

/// Where a value built from a secret variable may go: the sections that compile to `.env` and
/// `config.txt` entries, which plans, plan files and the state store mask. Elsewhere (a URL in
/// `target`, a backup path) the value would reach error messages, logs and the HTTP client
/// unmasked, so it is refused.
const SENSITIVE_SECTIONS: &[&str] = &["/env/", "/config/", "/cors/"];

fn refuse_secrets_outside_resources(
    root: &Node,
    sensitive: &BTreeSet<String>,
    diagnostics: &mut Vec<Diagnostic>,
) {
    for pointer in sensitive {
        if SENSITIVE_SECTIONS
            .iter()
            .any(|section| pointer.starts_with(section))
        {
            continue;
        }
        let location = root.resolve_pointer(pointer).node.location.clone();
        diagnostics.push(
            Diagnostic::error(
                "template.secret_outside_resource",
                format!(
                    "`{pointer}` is built from a secret variable; only values under `env`, \
                     `config` and `cors` are masked, so a secret cannot be used here"
                ),
            )
            .at(Some(location))
            .path(pointer.clone())
            .hint(
                "read a credential with a source (`{ from_env: NAME }`, `{ from_file: PATH }`) \
                 where the format offers one, or declare the variable under \
                 `template.variables` if it is not secret",
            ),
        );
    }
}

struct RenderContext<'r, 'a> {
    renderer: &'r mut Renderer<'a>,
    diagnostics: &'r mut Vec<Diagnostic>,
    sensitive: &'r mut BTreeSet<String>,
    /// Locations already reported: an alias of a bad template is reported once.
    seen: &'r mut BTreeSet<(Location, &'static str)>,
    /// Pointers of the values whose template failed.
    failed: &'r mut BTreeSet<String>,
}

fn render_templates(node: &mut Node, pointer: &str, context: &mut RenderContext<'_, '_>) {
    match &mut node.value {
        NodeValue::Mapping(entries) => {
            for (key, child) in entries.iter_mut() {
                // The section that declares what templates read is not itself templated.
                if pointer.is_empty() && key.name == super::template::SECTION {
                    continue;
                }
                if !has_template(child) {
                    continue;
                }
                let child_pointer = format!("{pointer}/{}", escape_pointer(&key.name));
                render_templates(child, &child_pointer, context);
            }
        }
        NodeValue::Sequence(items) => {
            for (position, child) in items.iter_mut().enumerate() {
                if !has_template(child) {
                    continue;
                }
                let child_pointer = format!("{pointer}/{position}");
                render_templates(child, &child_pointer, context);
            }
        }
        NodeValue::String(text) => match context.renderer.render(text) {
            Ok(rendered) => {
                *text = rendered.text;
                if rendered.sensitive {
                    context.sensitive.insert(pointer.to_string());
                }
            }
            Err(refusal) => {
                context.failed.insert(pointer.to_string());
                if context.seen.insert((node.location.clone(), refusal.code)) {
                    context.diagnostics.push(
                        Diagnostic::error(refusal.code, refusal.message)
                            .at(Some(node.location.clone()))
                            .path(pointer)
                            .hint(refusal.hint),
                    );
                }
            }
        },
        NodeValue::Null | NodeValue::Bool(_) | NodeValue::Int(_) | NodeValue::Float(_) => {}
    }
}

pub fn escape_pointer(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(directory: &Path, name: &str, text: &str) -> PathBuf {
        let path = directory.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(key, value)| (key.to_string(), value.to_string()))
            .collect()
    }

    fn diagnostics(result: Result<Loaded, LoadError>) -> Vec<Diagnostic> {
        match result {
            Err(LoadError::Invalid { diagnostics, .. }) => diagnostics,
            other => panic!("expected diagnostics, got {other:?}"),
        }
    }

    #[test]
    fn the_including_file_wins_and_maps_merge_deeply() {
        let directory = tempfile::tempdir().unwrap();
        write(
            directory.path(),
            "base.yaml",
            "env:\n  LOG_LEVEL: info\n  AUTH_MODE: multi_user\ncors:\n  allowed_origins: [https://a.example.org, https://b.example.org]\n",
        );
        let main = write(
            directory.path(),
            "prod.yaml",
            "extends: base.yaml\nenvironment: prod\nenv:\n  LOG_LEVEL: warning\ncors:\n  allowed_origins: [https://c.example.org]\n",
        );
        let loaded = load(&main, &BTreeMap::new()).unwrap();
        let json = loaded.root.to_json();
        assert_eq!(json["env"]["LOG_LEVEL"], "warning");
        assert_eq!(json["env"]["AUTH_MODE"], "multi_user");
        assert_eq!(
            json["cors"]["allowed_origins"],
            serde_json::json!(["https://c.example.org"])
        );
        assert!(json.get("extends").is_none());
        let auth_mode = loaded.root.resolve_pointer("/env/AUTH_MODE");
        assert!(auth_mode.node.location.file.ends_with("base.yaml"));
        assert_eq!(auth_mode.node.location.line, 3);
        let log_level = loaded.root.resolve_pointer("/env/LOG_LEVEL");
        assert!(log_level.node.location.file.ends_with("prod.yaml"));
        assert_eq!(loaded.shared.unwrap().to_json()["env"]["LOG_LEVEL"], "info");
    }

    #[test]
    fn later_layers_in_a_list_win_over_earlier_ones() {
        let directory = tempfile::tempdir().unwrap();
        write(directory.path(), "a.yaml", "env: { X: a, Y: a }\n");
        write(directory.path(), "b.yaml", "env: { X: b }\n");
        let main = write(directory.path(), "main.yaml", "extends: [a.yaml, b.yaml]\n");
        let json = load(&main, &BTreeMap::new()).unwrap().root.to_json();
        assert_eq!(json["env"]["X"], "b");
        assert_eq!(json["env"]["Y"], "a");
    }

    #[test]
    fn an_extends_cycle_prints_the_chain() {
        let directory = tempfile::tempdir().unwrap();
        write(directory.path(), "a.yaml", "extends: b.yaml\n");
        write(directory.path(), "b.yaml", "env: {}\nextends: ./a.yaml\n");
        let found = diagnostics(load(&directory.path().join("a.yaml"), &BTreeMap::new()));
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].code, "load.extends_cycle");
        assert!(
            found[0].message.contains("a.yaml -> "),
            "{}",
            found[0].message
        );
        assert!(
            found[0].message.contains("b.yaml -> "),
            "{}",
            found[0].message
        );
        let location = found[0].location.as_ref().unwrap();
        assert!(location.file.ends_with("b.yaml"));
        assert_eq!((location.line, location.column), (2, 10));
    }

    #[test]
    fn templates_see_the_process_environment_and_the_environment_name() {
        let directory = tempfile::tempdir().unwrap();
        write(
            directory.path(),
            "base.yaml",
            "template: { variables: [DOMAIN, NOPE] }\nenv:\n  PUBLIC: \"https://{{ env.DOMAIN }}\"\n  NAME: \"tldw-{{ environment }}\"\n  OPTIONAL: \"{{ env.NOPE | default('fallback') }}\"\n",
        );
        let main = write(
            directory.path(),
            "staging.yaml",
            "extends: base.yaml\nenvironment: staging\n",
        );
        let loaded = load(&main, &env(&[("DOMAIN", "tldw.example.org")])).unwrap();
        let json = loaded.root.to_json();
        assert_eq!(json["env"]["PUBLIC"], "https://tldw.example.org");
        assert_eq!(json["env"]["NAME"], "tldw-staging");
        assert_eq!(json["env"]["OPTIONAL"], "fallback");
        let public = loaded.root.resolve_pointer("/env/PUBLIC");
        assert!(public.node.location.file.ends_with("base.yaml"));
        assert_eq!(public.node.location.line, 3);
    }

    #[test]
    fn an_undefined_template_variable_is_named_with_its_location() {
        let directory = tempfile::tempdir().unwrap();
        let main = write(
            directory.path(),
            "dev.yaml",
            "environment: dev\ntemplate: { variables: [MISSING_DOMAIN] }\nenv:\n  URL: \"https://{{ env.MISSING_DOMAIN }}/\"\n",
        );
        let found = diagnostics(load(&main, &BTreeMap::new()));
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].code, "template.undefined");
        assert!(
            found[0].message.contains("env.MISSING_DOMAIN"),
            "{}",
            found[0].message
        );
        assert_eq!(found[0].path, "/env/URL");
        let location = found[0].location.as_ref().unwrap();
        assert_eq!((location.line, location.column), (4, 8));
    }

    #[test]
    fn templates_read_only_declared_variables_named_at_their_location() {
        let directory = tempfile::tempdir().unwrap();
        let main = write(
            directory.path(),
            "dev.yaml",
            "environment: dev\nenv:\n  A: ok\n  URL: \"https://x/{{ env.TLDW_ADMIN_TOKEN }}\"\n",
        );
        let process_env = env(&[("TLDW_ADMIN_TOKEN", "admin-token-s3cr3t")]);
        let found = diagnostics(load(&main, &process_env));
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].code, "template.undeclared");
        assert!(found[0].message.contains("env.TLDW_ADMIN_TOKEN"));
        assert!(found[0].hint.as_deref().unwrap().contains("template:"));
        let location = found[0].location.as_ref().unwrap();
        assert_eq!((location.line, location.column), (4, 8));
        assert!(!format!("{found:?}").contains("s3cr3t"));
    }

    #[test]
    fn a_value_built_from_a_secret_variable_is_marked_and_scrubbed() {
        let directory = tempfile::tempdir().unwrap();
        write(
            directory.path(),
            "base.yaml",
            "template: { prefix: TLDW_OPS_VAR_, secret: [TLDW_OPS_VAR_DB_PASSWORD] }\n",
        );
        let main = write(
            directory.path(),
            "dev.yaml",
            "extends: base.yaml\nenvironment: dev\nenv:\n  DATABASE_URL: \"postgres://u:{{ env.TLDW_OPS_VAR_DB_PASSWORD }}@db/x\"\n  DOMAIN: \"{{ env.TLDW_OPS_VAR_DOMAIN }}\"\ncors:\n  allowed_origins: [\"https://{{ env.TLDW_OPS_VAR_DB_PASSWORD }}\"]\n",
        );
        let process_env = env(&[
            ("TLDW_OPS_VAR_DB_PASSWORD", "db-password-s3cr3t"),
            ("TLDW_OPS_VAR_DOMAIN", "tldw.example.org"),
        ]);
        let loaded = load(&main, &process_env).unwrap();
        assert!(loaded.is_sensitive("/env/DATABASE_URL"));
        assert!(!loaded.is_sensitive("/env/DOMAIN"));
        assert!(loaded.is_sensitive("/cors/allowed_origins"));
        assert!(loaded.is_sensitive("/cors/allowed_origins/0"));
        assert!(loaded.is_sensitive("/cors"), "a value under it is");
        assert!(!loaded.is_sensitive("/cors/allow_credentials"));
        assert_eq!(
            loaded
                .redactions
                .scrub("was postgres://u:db-password-s3cr3t@db/x"),
            "was (sensitive)"
        );
        assert!(!format!("{:?}", loaded.redactions).contains("s3cr3t"));
    }

    #[test]
    fn a_failing_template_never_quotes_the_secret_it_read() {
        let directory = tempfile::tempdir().unwrap();
        let main = write(
            directory.path(),
            "dev.yaml",
            "environment: dev\ntemplate: { secret: [DB_PASSWORD] }\nenv:\n  A: \"{{ env.DB_PASSWORD | int }}\"\n  B: \"{{ env.DB_PASSWORD + 1 }}\"\n  C: \"{{ env.DB_PASSWORD.nope }}\"\n",
        );
        let found = diagnostics(load(&main, &env(&[("DB_PASSWORD", "hunter2-s3cr3t")])));
        assert!(!found.is_empty());
        for diagnostic in &found {
            let text = format!("{} {:?}", diagnostic.message, diagnostic.hint);
            assert!(!text.contains("s3cr3t"), "{text}");
        }
    }

    #[test]
    fn a_secret_variable_outside_env_config_and_cors_is_refused() {
        let directory = tempfile::tempdir().unwrap();
        let main = write(
            directory.path(),
            "dev.yaml",
            "environment: dev\ntemplate: { secret: [DB_PASSWORD] }\ntarget:\n  root: /opt/tldw\n  database: \"postgresql://tldw:{{ env.DB_PASSWORD }}@db/tldw\"\nenv:\n  OK: \"{{ env.DB_PASSWORD }}\"\n",
        );
        let found = diagnostics(load(&main, &env(&[("DB_PASSWORD", "hunter2-s3cr3t")])));
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].code, "template.secret_outside_resource");
        assert_eq!(found[0].path, "/target/database");
        let location = found[0].location.as_ref().unwrap();
        assert_eq!((location.line, location.column), (5, 13));
        assert!(!format!("{found:?}").contains("s3cr3t"));
    }

    #[test]
    fn a_template_section_that_is_not_a_mapping_is_reported() {
        let directory = tempfile::tempdir().unwrap();
        let main = write(
            directory.path(),
            "dev.yaml",
            "environment: dev\ntemplate: [A]\nenv:\n  X: \"{{ env.A }}\"\n",
        );
        let found = diagnostics(load(&main, &env(&[("A", "1")])));
        assert_eq!(found[0].code, "schema.type");
        assert_eq!(found[0].location.as_ref().unwrap().line, 2);
    }

    #[test]
    fn extends_of_a_device_a_directory_or_a_fifo_is_refused_naming_the_file() {
        let directory = tempfile::tempdir().unwrap();
        std::fs::create_dir(directory.path().join("dir.yaml")).unwrap();
        for (target, kind) in [
            ("/dev/zero", "a character device"),
            ("dir.yaml", "a directory"),
        ] {
            let main = write(
                directory.path(),
                "dev.yaml",
                &format!("extends: {target}\n"),
            );
            let found = diagnostics(load(&main, &BTreeMap::new()));
            assert_eq!(found[0].code, "load.limit", "{target}");
            assert!(found[0].message.contains(target), "{}", found[0].message);
            assert!(found[0].message.contains(kind), "{}", found[0].message);
            assert_eq!(found[0].location.as_ref().unwrap().line, 1);
        }
    }

    #[test]
    fn an_oversized_layer_is_refused_naming_the_limit() {
        let directory = tempfile::tempdir().unwrap();
        let big = directory.path().join("big.yaml");
        let file = std::fs::File::create(&big).unwrap();
        file.set_len(crate::limits::MAX_DOCUMENT_BYTES + 1).unwrap();
        let main = write(directory.path(), "dev.yaml", "extends: big.yaml\n");
        let found = diagnostics(load(&main, &BTreeMap::new()));
        assert_eq!(found[0].code, "load.limit");
        assert!(found[0].message.contains("4 MiB"), "{}", found[0].message);
        let found = diagnostics(load(&big, &BTreeMap::new()));
        assert_eq!(found[0].code, "load.limit");
        assert!(
            found[0].message.contains("big.yaml"),
            "{}",
            found[0].message
        );
    }

    #[test]
    fn non_utf8_text_is_reported_at_the_line_and_column_of_the_first_bad_byte() {
        let directory = tempfile::tempdir().unwrap();
        let main = directory.path().join("dev.yaml");
        std::fs::write(&main, b"environment: dev\nenv:\n  A: caf\xe9\n").unwrap();
        let found = diagnostics(load(&main, &BTreeMap::new()));
        assert_eq!(found[0].code, "load.not_utf8");
        assert!(
            found[0].message.contains("dev.yaml"),
            "{}",
            found[0].message
        );
        let location = found[0].location.as_ref().unwrap();
        assert_eq!((location.line, location.column), (3, 9));
    }

    #[test]
    fn too_many_layers_are_refused() {
        let directory = tempfile::tempdir().unwrap();
        let count = crate::limits::MAX_LAYER_FILES + 1;
        for index in 0..count {
            write(directory.path(), &format!("l{index}.yaml"), "env: {}\n");
        }
        let list: Vec<String> = (0..count).map(|index| format!("l{index}.yaml")).collect();
        let main = write(
            directory.path(),
            "main.yaml",
            &format!("extends: [{}]\n", list.join(", ")),
        );
        let found = diagnostics(load(&main, &BTreeMap::new()));
        assert_eq!(found[0].code, "load.limit");
        assert!(found[0].message.contains("MAX_LAYER_FILES"));
        let repeated = vec!["l0.yaml"; count].join(", ");
        let main = write(
            directory.path(),
            "main.yaml",
            &format!("extends: [{repeated}]\n"),
        );
        let found = diagnostics(load(&main, &BTreeMap::new()));
        assert_eq!(found[0].code, "load.limit");
    }

    #[test]
    fn a_missing_extended_file_points_at_the_extends_entry() {
        let directory = tempfile::tempdir().unwrap();
        let main = write(directory.path(), "dev.yaml", "extends: nowhere.yaml\n");
        let found = diagnostics(load(&main, &BTreeMap::new()));
        assert_eq!(found[0].code, "load.extends_unreadable");
        assert_eq!(found[0].location.as_ref().unwrap().line, 1);
    }

    #[test]
    fn a_missing_main_file_is_a_read_error() {
        let directory = tempfile::tempdir().unwrap();
        let result = load(&directory.path().join("absent.yaml"), &BTreeMap::new());
        assert!(matches!(result, Err(LoadError::Read { .. })));
    }
}
