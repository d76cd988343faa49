//! Loading: read a desired-state file and the files it `extends`, merge the layers (maps merge
//! deeply, the including file wins, lists and scalars replace), then render minijinja templates
//! in string values. Every value keeps the location it was written at, through both steps.
//!
//! The only I/O is reading the YAML files themselves; the process environment used by templates
//! is passed in, so loading is deterministic for a given input.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use minijinja::{Environment, ErrorKind, UndefinedBehavior};

use super::diagnostic::Diagnostic;
use super::node::{Key, Node, NodeValue, YamlErrorKind, parse_document};
use super::source::{Location, SourceMap, display_name};

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
    #[error("{path} is not UTF-8 text")]
    NotUtf8 { path: PathBuf },
    #[error("the desired state has errors")]
    Invalid {
        diagnostics: Vec<Diagnostic>,
        sources: SourceMap,
    },
}

/// Loads `path` with its layers, rendering templates against `process_env`.
pub fn load(path: &Path, process_env: &BTreeMap<String, String>) -> Result<Loaded, LoadError> {
    let mut loader = Loader {
        sources: SourceMap::default(),
        files: Vec::new(),
        diagnostics: Vec::new(),
        cache: HashMap::new(),
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
    if has_template(&root) {
        render_templates(&mut root, "", &environment, process_env, &mut diagnostics);
    }
    if !diagnostics.is_empty() {
        return Err(LoadError::Invalid {
            diagnostics,
            sources: loader.sources,
        });
    }
    Ok(Loaded {
        root,
        shared: layered.shared,
        files: loader.files,
        main_file,
        sources: loader.sources,
    })
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
}

impl Loader {
    /// Reads and parses one file (once, even when several layers extend it).
    fn read(
        &mut self,
        path: &Path,
        included_from: Option<&Location>,
    ) -> Result<Option<Node>, LoadError> {
        if let Some(node) = self.cache.get(path) {
            return Ok(Some(node.clone()));
        }
        let bytes = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(source) => {
                if let Some(location) = included_from {
                    self.diagnostics.push(
                        Diagnostic::error(
                            "load.extends_unreadable",
                            format!("cannot read extended file {}: {source}", path.display()),
                        )
                        .at(Some(location.clone()))
                        .path("/extends"),
                    );
                    return Ok(None);
                }
                return Err(LoadError::Read {
                    path: path.to_path_buf(),
                    source,
                });
            }
        };
        let Ok(text) = String::from_utf8(bytes) else {
            if let Some(location) = included_from {
                self.diagnostics.push(
                    Diagnostic::error(
                        "load.extends_unreadable",
                        format!("extended file {} is not UTF-8 text", path.display()),
                    )
                    .at(Some(location.clone()))
                    .path("/extends"),
                );
                return Ok(None);
            }
            return Err(LoadError::NotUtf8 {
                path: path.to_path_buf(),
            });
        };
        let name = display_name(path);
        let text: Arc<str> = Arc::from(text);
        self.sources.add(Arc::clone(&name), path, Arc::clone(&text));
        self.files.push(path.to_path_buf());
        match parse_document(&text, &name) {
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

fn template_environment() -> Environment<'static> {
    let mut environment = Environment::new();
    environment.set_undefined_behavior(UndefinedBehavior::Strict);
    environment
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

fn render_templates(
    node: &mut Node,
    pointer: &str,
    environment_name: &str,
    process_env: &BTreeMap<String, String>,
    diagnostics: &mut Vec<Diagnostic>,
) {
    match &mut node.value {
        NodeValue::Mapping(entries) => {
            for (key, child) in entries.iter_mut() {
                if !has_template(child) {
                    continue;
                }
                let child_pointer = format!("{pointer}/{}", escape_pointer(&key.name));
                render_templates(
                    child,
                    &child_pointer,
                    environment_name,
                    process_env,
                    diagnostics,
                );
            }
        }
        NodeValue::Sequence(items) => {
            for (position, child) in items.iter_mut().enumerate() {
                if !has_template(child) {
                    continue;
                }
                let child_pointer = format!("{pointer}/{position}");
                render_templates(
                    child,
                    &child_pointer,
                    environment_name,
                    process_env,
                    diagnostics,
                );
            }
        }
        NodeValue::String(text) => match render_one(text, environment_name, process_env) {
            Ok(rendered) => *text = rendered,
            Err(message) => diagnostics.push(
                Diagnostic::error(message.0, message.1)
                    .at(Some(node.location.clone()))
                    .path(pointer)
                    .hint(
                        "templates see `env.NAME` (the process environment) and `environment`; \
                             use `{{ env.NAME | default('value') }}` for optional variables",
                    ),
            ),
        },
        NodeValue::Null | NodeValue::Bool(_) | NodeValue::Int(_) | NodeValue::Float(_) => {}
    }
}

pub fn escape_pointer(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

fn render_one(
    text: &str,
    environment_name: &str,
    process_env: &BTreeMap<String, String>,
) -> Result<String, (&'static str, String)> {
    let jinja = template_environment();
    let template = jinja.template_from_str(text).map_err(|error| {
        (
            "template.syntax",
            format!("template does not parse: {error}"),
        )
    })?;
    let context = minijinja::context! { env => process_env, environment => environment_name };
    template.render(context).map_err(|error| {
        if error.kind() == ErrorKind::UndefinedError {
            let mut missing: Vec<String> = template
                .undeclared_variables(true)
                .into_iter()
                .filter(|name| !is_defined(name, environment_name, process_env))
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
            (
                "template.undefined",
                format!("template uses {names}, which is not defined"),
            )
        } else {
            ("template.render", format!("template failed: {error}"))
        }
    })
}

fn is_defined(name: &str, environment_name: &str, process_env: &BTreeMap<String, String>) -> bool {
    match name.split_once('.') {
        Some(("env", variable)) => process_env.contains_key(variable),
        None if name == "environment" => !environment_name.is_empty(),
        None if name == "env" => true,
        _ => false,
    }
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
            "env:\n  PUBLIC: \"https://{{ env.DOMAIN }}\"\n  NAME: \"tldw-{{ environment }}\"\n  OPTIONAL: \"{{ env.NOPE | default('fallback') }}\"\n",
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
        assert_eq!(public.node.location.line, 2);
    }

    #[test]
    fn an_undefined_template_variable_is_named_with_its_location() {
        let directory = tempfile::tempdir().unwrap();
        let main = write(
            directory.path(),
            "dev.yaml",
            "environment: dev\nenv:\n  URL: \"https://{{ env.MISSING_DOMAIN }}/\"\n",
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
        assert_eq!((location.line, location.column), (3, 8));
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
