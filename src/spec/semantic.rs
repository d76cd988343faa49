//! Checks the schema cannot express: durations in whole days within tldw's ranges, origins,
//! exclusive sources, keep counts, names declared twice, URLs. Runs on a document that passed
//! the schema, so the typed spec is available.

use std::collections::BTreeMap;

use super::ResolvedSecret;
use super::diagnostic::{Diagnostic, closest};
use super::mapping::{EnvEntry, env_entries, retention_values};
use super::node::Node;
use super::source::Location;
use super::types::{SecretSpec, Spec};
use super::view::option_key;
use super::writable;

/// The location of the value at `pointer`, or of the deepest mapping on the way to it.
pub fn locate(root: &Node, pointer: &str) -> Option<Location> {
    Some(root.resolve_pointer(pointer).node.location.clone())
}

/// The location of the key at the end of `pointer` (for "this entry" rather than "this value").
pub fn locate_key(root: &Node, pointer: &str) -> Option<Location> {
    let target = root.resolve_pointer(pointer);
    target
        .key_location
        .or_else(|| Some(target.node.location.clone()))
}

pub fn check(spec: &Spec, root: &Node, rule_ids: &[&str]) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    check_retention(spec, root, &mut out);
    check_origins(spec, root, &mut out);
    check_secrets(spec, root, &mut out);
    let entries = env_entries(spec);
    check_conflicts(spec, &entries, root, &mut out);
    check_target(spec, root, &mut out);
    check_backup(spec, root, &mut out);
    check_release(spec, root, &mut out);
    check_config_names(spec, root, &mut out);
    check_config_merges(spec, root, &mut out);
    check_writable(spec, &entries, root, &mut out);
    check_waivers(spec, root, rule_ids, &mut out);
    out
}

fn check_retention(spec: &Spec, root: &Node, out: &mut Vec<Diagnostic>) {
    let Some(retention) = &spec.retention else {
        return;
    };
    for (key, duration) in retention_values(retention) {
        let location = locate(root, key.yaml_path);
        let name = key.yaml_path.trim_start_matches('/').replace('/', ".");
        match duration.whole_days() {
            None => out.push(
                Diagnostic::error(
                    "value.retention",
                    format!(
                        "`{name}` is {duration}; retention is counted in whole days (such as 90d)"
                    ),
                )
                .at(location)
                .path(key.yaml_path),
            ),
            Some(days) if days < key.min_days || days > key.max_days => out.push(
                Diagnostic::error(
                    "value.retention",
                    format!(
                        "`{name}` is {days}d; tldw accepts {}d to {}d for {}",
                        key.min_days, key.max_days, key.env_name
                    ),
                )
                .at(location)
                .path(key.yaml_path),
            ),
            Some(_) => {}
        }
    }
}

/// Why an origin is not `scheme://host[:port]`, if it is not.
pub fn origin_problem(origin: &str) -> Option<String> {
    if origin == "*" {
        return None;
    }
    let Some((scheme, rest)) = origin.split_once("://") else {
        return Some("expected `https://host` or `http://host:port`, with a scheme".to_string());
    };
    if scheme != "http" && scheme != "https" {
        return Some(format!("scheme `{scheme}` is not http or https"));
    }
    if rest.is_empty() {
        return Some("the host is missing".to_string());
    }
    if rest.contains('@') {
        return Some("an origin cannot carry a user name or password".to_string());
    }
    if let Some(position) = rest.find(['/', '?', '#']) {
        let tail = &rest[position..];
        return Some(if tail == "/" {
            "remove the trailing `/`: browsers send origins without it, so it would never match"
                .to_string()
        } else {
            format!("an origin has no path, query or fragment (found `{tail}`)")
        });
    }
    let host = if rest.starts_with('[') {
        rest.split_once(']').map(|(host, _)| host).unwrap_or(rest)
    } else {
        rest.rsplit_once(':').map(|(host, _)| host).unwrap_or(rest)
    };
    if host.is_empty() || host.contains(char::is_whitespace) {
        return Some("the host is missing or has spaces".to_string());
    }
    if let Some((_, port)) = rest.rsplit_once(':')
        && !rest.ends_with(']')
        && (port.is_empty() || port.parse::<u16>().is_err())
    {
        return Some(format!("port `{port}` is not a number from 1 to 65535"));
    }
    None
}

fn check_origins(spec: &Spec, root: &Node, out: &mut Vec<Diagnostic>) {
    let Some(cors) = &spec.cors else {
        return;
    };
    for (index, origin) in cors.allowed_origins.iter().enumerate() {
        let pointer = format!("/cors/allowed_origins/{index}");
        if let Some(problem) = origin_problem(origin) {
            out.push(
                Diagnostic::error("value.origin", format!("origin `{origin}`: {problem}"))
                    .at(locate(root, &pointer))
                    .path(pointer),
            );
        }
    }
}

fn source_count(secret: &SecretSpec) -> usize {
    usize::from(secret.generate.is_some())
        + usize::from(secret.from_env.is_some())
        + usize::from(secret.from_file.is_some())
}

fn check_secrets(spec: &Spec, root: &Node, out: &mut Vec<Diagnostic>) {
    let Some(secrets) = &spec.secrets else {
        return;
    };
    for (name, secret) in &secrets.values {
        let pointer = format!("/secrets/values/{}", super::load::escape_pointer(name));
        match source_count(secret) {
            1 => {}
            0 => out.push(
                Diagnostic::error(
                    "value.secret_source",
                    format!("secret `{name}` has no source: give one of `generate`, `from_env` or `from_file`"),
                )
                .at(locate(root, &pointer))
                .path(pointer.clone()),
            ),
            _ => out.push(
                Diagnostic::error(
                    "value.secret_source",
                    format!("secret `{name}` has more than one source: keep exactly one of `generate`, `from_env` or `from_file`"),
                )
                .at(locate(root, &pointer))
                .path(pointer.clone()),
            ),
        }
        if secret.rotate_after.is_some() && secret.generate.is_none() {
            let rotate_pointer = format!("{pointer}/rotate_after");
            out.push(
                Diagnostic::error(
                    "value.rotation",
                    format!("secret `{name}` has `rotate_after` but is not generated; tldw-ops can only rotate secrets it generates"),
                )
                .at(locate(root, &rotate_pointer))
                .path(rotate_pointer)
                .hint("rotate the source (the environment variable or file) instead, or use `generate`"),
            );
        }
        if let Some(previous) = &secret.keep_previous_as {
            let previous_pointer = format!("{pointer}/keep_previous_as");
            if previous == name {
                out.push(
                    Diagnostic::error(
                        "value.keep_previous_as",
                        format!(
                            "secret `{name}` cannot keep its previous value under its own name"
                        ),
                    )
                    .at(locate(root, &previous_pointer))
                    .path(previous_pointer),
                );
            } else if secrets.values.contains_key(previous) || spec.env.contains_key(previous) {
                out.push(
                    Diagnostic::error(
                        "value.keep_previous_as",
                        format!("`{previous}` is declared elsewhere in this file; `keep_previous_as` needs a name that only rotation writes"),
                    )
                    .at(locate(root, &previous_pointer))
                    .path(previous_pointer),
                );
            }
        }
    }
}

/// A `.env` name declared by two sections.
fn check_conflicts(spec: &Spec, entries: &[EnvEntry], root: &Node, out: &mut Vec<Diagnostic>) {
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    let mut names: Vec<(String, String)> = entries
        .iter()
        .map(|entry| (entry.name.clone(), entry.pointer.clone()))
        .collect();
    if let Some(secrets) = &spec.secrets {
        names.extend(secrets.values.keys().map(|name| {
            (
                name.clone(),
                format!("/secrets/values/{}", super::load::escape_pointer(name)),
            )
        }));
    }
    for (name, pointer) in names {
        if let Some(first) = seen.get(&name) {
            let first_location = locate(root, first);
            out.push(
                Diagnostic::error(
                    "value.conflict",
                    format!(
                        "`{name}` is set twice: here and at {}",
                        first_location
                            .map(|location| location.to_string())
                            .unwrap_or_else(|| first.clone())
                    ),
                )
                .at(locate_key(root, &pointer))
                .path(pointer),
            );
        } else {
            seen.insert(name, pointer);
        }
    }
}

/// An upgrade needs what makes it reversible: a backup policy (its set is step 1), a restart
/// command (the new image runs only after one), and `TLDW_ROLLBACK_IMAGE` left to tldw-ops,
/// which keeps the replaced image there.
fn check_release(spec: &Spec, root: &Node, out: &mut Vec<Diagnostic>) {
    let Some(release) = &spec.release else {
        return;
    };
    let at = |code: &str, text: &str| {
        Diagnostic::error(code, text)
            .at(locate_key(root, "/release"))
            .path("/release")
    };
    if release.image.is_some() == release.git.is_some() {
        out.push(at(
            "value.release_source",
            "`release` takes exactly one of `image` (a Compose deployment) and `git` (a \
             bare-metal checkout)",
        ));
    }
    if release.install.is_some() && release.git.is_none() {
        out.push(
            Diagnostic::error(
                "value.release_install",
                "`release.install` runs after a git checkout, so it needs `release.git`",
            )
            .at(locate_key(root, "/release/install"))
            .path("/release/install"),
        );
    }
    if let Some(reference) = &release.git
        && (reference.contains("..") || reference.ends_with('/') || reference.ends_with(".lock"))
    {
        out.push(
            Diagnostic::error(
                "value.release_git",
                format!("`{reference}` is not a git tag or commit name"),
            )
            .at(locate_key(root, "/release/git"))
            .path("/release/git"),
        );
    }
    if spec.backup.is_none() {
        out.push(at(
            "value.release_backup",
            "`release` needs a `backup:` policy: an upgrade takes a backup set first, so that \
             a failed one can be undone",
        ));
    }
    let restart = spec
        .target
        .service
        .as_ref()
        .and_then(|service| service.restart.as_ref());
    if restart.is_none() {
        out.push(at(
            "value.release_restart",
            "`release` needs `target.service.restart`: the new release runs only after a restart",
        ));
    }
    let rollback = super::mapping::ROLLBACK_IMAGE;
    if release.image.is_some() && spec.env.contains_key(rollback) {
        let pointer = format!("/env/{rollback}");
        out.push(
            Diagnostic::error(
                "value.conflict",
                format!(
                    "`{rollback}` is kept by `release`: an upgrade writes the image it replaces there"
                ),
            )
            .at(locate_key(root, &pointer))
            .path(pointer),
        );
    }
}

fn url_problem(url: &str) -> Option<String> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return Some("expected an http or https URL such as http://127.0.0.1:8000".to_string());
    };
    if scheme != "http" && scheme != "https" {
        return Some("only http and https URLs are supported".to_string());
    }
    if rest.is_empty() || rest.starts_with('/') {
        return Some("the host is missing".to_string());
    }
    // The same parser the HTTP client uses: what passes here, the client can connect to. Its
    // messages ("invalid IPv6 address", "invalid port number") never quote the input.
    match reqwest::Url::parse(url) {
        Ok(parsed) if parsed.host().is_some() => None,
        Ok(_) => Some("the host is missing".to_string()),
        Err(error) => Some(format!("not a valid URL: {error}")),
    }
}

fn check_target(spec: &Spec, root: &Node, out: &mut Vec<Diagnostic>) {
    let target = &spec.target;
    if let Some(api) = &target.api {
        if let Some(problem) = url_problem(&api.url) {
            out.push(
                Diagnostic::error("value.url", format!("`target.api.url`: {problem}"))
                    .at(locate(root, "/target/api/url"))
                    .path("/target/api/url"),
            );
        }
        let sources =
            usize::from(api.token.from_env.is_some()) + usize::from(api.token.from_file.is_some());
        if sources != 1 {
            out.push(
                Diagnostic::error(
                    "value.token_source",
                    "`target.api.token` needs exactly one of `from_env` or `from_file`",
                )
                .at(locate(root, "/target/api/token"))
                .path("/target/api/token"),
            );
        }
    }
    if let Some(service) = &target.service {
        if let Some(url) = &service.url
            && let Some(problem) = url_problem(url)
        {
            out.push(
                Diagnostic::error("value.url", format!("`target.service.url`: {problem}"))
                    .at(locate(root, "/target/service/url"))
                    .path("/target/service/url"),
            );
        }
        if !service.smoke.is_empty() && service.url.is_none() && target.api.is_none() {
            out.push(
                Diagnostic::error(
                    "value.smoke_url",
                    "smoke gates need a base URL: set `target.service.url` or `target.api.url`",
                )
                .at(locate(root, "/target/service/smoke"))
                .path("/target/service/smoke"),
            );
        }
        let origin = |url: &str| reqwest::Url::parse(url).ok().map(|url| url.origin());
        let other_origin = match (&service.url, &target.api) {
            (Some(service_url), Some(api)) => origin(service_url) != origin(&api.url),
            _ => false,
        };
        for (index, gate) in service.smoke.iter().enumerate() {
            if gate.auth == Some(super::types::SmokeAuth::Api) && other_origin {
                let pointer = format!("/target/service/smoke/{index}/auth");
                out.push(
                    Diagnostic::error(
                        "value.smoke_auth",
                        "`auth: api` would send `target.api`'s token to `target.service.url`, \
                         which is another origin than `target.api.url`; the token is only sent to \
                         the API's own origin",
                    )
                    .at(locate(root, &pointer))
                    .path(&pointer),
                );
            }
            if gate.auth == Some(super::types::SmokeAuth::Api) && target.api.is_none() {
                let pointer = format!("/target/service/smoke/{index}/auth");
                out.push(
                    Diagnostic::error(
                        "value.smoke_auth",
                        "`auth: api` sends `target.api`'s token, but there is no `target.api`",
                    )
                    .at(locate(root, &pointer))
                    .path(&pointer),
                );
            }
        }
        if !service.health.is_empty() && service.url.is_none() && target.api.is_none() {
            out.push(
                Diagnostic::error(
                    "value.health_url",
                    "health gates need a base URL: set `target.service.url` or `target.api.url`",
                )
                .at(locate(root, "/target/service/health"))
                .path("/target/service/health"),
            );
        }
        for (field, argv) in [
            ("restart", &service.restart),
            ("stop", &service.stop),
            ("start", &service.start),
        ] {
            if let Some(argv) = argv
                && argv
                    .first()
                    .is_some_and(|program| program.trim().is_empty())
            {
                let pointer = format!("/target/service/{field}/0");
                out.push(
                    Diagnostic::error(
                        "value.command",
                        format!("`target.service.{field}` starts with an empty program name"),
                    )
                    .at(locate(root, &pointer))
                    .path(pointer),
                );
            }
        }
    }
    if let Some(database) = &target.database
        && !(database.starts_with("sqlite:///")
            || database.starts_with("postgres://")
            || database.starts_with("postgresql://"))
    {
        out.push(
            Diagnostic::error(
                "value.database",
                "`target.database` must be `sqlite:///path` or `postgresql://user@host:port/db`",
            )
            .at(locate(root, "/target/database"))
            .path("/target/database"),
        );
    }
    if let Some(quotas) = &spec.quotas
        && !quotas.users.is_empty()
        && target.api.is_none()
    {
        out.push(
            Diagnostic::error(
                "value.requires_api",
                "per-user quotas live in the running server: `quotas.users` needs `target.api`",
            )
            .at(locate_key(root, "/quotas/users"))
            .path("/quotas/users"),
        );
    }
    if let Some(promotion) = &spec.promotion
        && promotion.from == spec.environment
    {
        out.push(
            Diagnostic::error(
                "value.promotion",
                format!(
                    "environment `{}` cannot be promoted from itself",
                    spec.environment
                ),
            )
            .at(locate(root, "/promotion/from"))
            .path("/promotion/from"),
        );
    }
}

fn check_backup(spec: &Spec, root: &Node, out: &mut Vec<Diagnostic>) {
    let Some(backup) = &spec.backup else {
        return;
    };
    let keep = backup.keep;
    let counts = [
        ("last", keep.last),
        ("daily", keep.daily),
        ("weekly", keep.weekly),
        ("monthly", keep.monthly),
    ];
    for (name, count) in counts {
        if count == Some(0) {
            let pointer = format!("/backup/keep/{name}");
            out.push(
                Diagnostic::error(
                    "value.keep",
                    format!("`backup.keep.{name}` must be at least 1; leave it out to keep none by that rule"),
                )
                .at(locate(root, &pointer))
                .path(pointer),
            );
        }
    }
    if counts.iter().all(|(_, count)| count.is_none()) {
        out.push(
            Diagnostic::error(
                "value.keep",
                "`backup.keep` must keep at least one set: give `last`, `daily`, `weekly` or `monthly`",
            )
            .at(locate(root, "/backup/keep"))
            .path("/backup/keep"),
        );
    }
    if backup.every.as_seconds() < 60 {
        out.push(
            Diagnostic::error("value.duration", "`backup.every` must be at least 1m")
                .at(locate(root, "/backup/every"))
                .path("/backup/every"),
        );
    }
    if backup.include.is_empty() {
        out.push(
            Diagnostic::error(
                "value.backup_include",
                "`backup.include` is empty: a set would hold nothing",
            )
            .at(locate(root, "/backup/include"))
            .path("/backup/include"),
        );
    }
}

fn check_config_names(spec: &Spec, root: &Node, out: &mut Vec<Diagnostic>) {
    for (section, keys) in &spec.config {
        let section_pointer = format!("/config/{}", super::load::escape_pointer(section));
        if section.is_empty()
            || section.contains(['[', ']', '\n', '\r'])
            || section.trim() != section
        {
            out.push(
                Diagnostic::error(
                    "value.config_name",
                    format!("`{section}` is not a config.txt section name"),
                )
                .at(locate_key(root, &section_pointer))
                .path(section_pointer.clone()),
            );
        }
        for key in keys.keys() {
            let pointer = format!("{section_pointer}/{}", super::load::escape_pointer(key));
            if key.is_empty()
                || key.contains(['=', ':', '\n', '\r', '['])
                || key.starts_with(['#', ';'])
                || key.trim() != key
            {
                out.push(
                    Diagnostic::error(
                        "value.config_name",
                        format!("`{key}` is not a config.txt key name"),
                    )
                    .at(locate_key(root, &pointer))
                    .path(pointer),
                );
            }
        }
    }
}

/// The sections of tldw_server's stock `Config_Files/config.txt` (the copy in
/// `fixtures/tldw_server/config.txt`). configparser compares section names exactly, so a section
/// that differs from one of these only by case is one tldw never reads.
pub const STOCK_SECTIONS: &[&str] = &[
    "Setup",
    "UI",
    "Server",
    "Files",
    "Image-Generation",
    "ACP",
    "WORKSPACES",
    "ACP-WORKSPACE",
    "ACP-SANDBOX",
    "Audit",
    "Processing",
    "Media-Processing",
    "Chat-Dictionaries",
    "Chat-Module",
    "Chat-Commands",
    "Chat-Templating",
    "Character-Chat",
    "Settings",
    "Auto-Save",
    "Prompts",
    "Database",
    "Chunking",
    "Visual-RAG",
    "AuthNZ",
    "Streaming",
    "HTTP",
    "Egress",
    "Embeddings",
    "Claims",
    "ClaimsMonitoring",
    "RAG",
    "Search-Agent",
    "ResourceGovernor",
    "Jobs",
    "Diarization",
    "API",
    "MLX",
    "Local-API",
    "LlamaCpp",
    "STT-Settings",
    "external_providers",
    "TTS-Settings",
    "VibeVoice",
    "Audio-Quota",
    "API-Routes",
    "Search-Engines",
    "Web-Scraper",
    "Logging",
    "Moderation",
    "Redis",
    "Web-Scraping",
    "personalization",
    "persona",
    "persona.rbac",
];

/// A diagnostic for a `config:` section that is not one tldw reads under that exact name:
/// an error when it differs from a known section only by letter case (configparser would
/// keep them apart, and tldw would never see the value), a warning for another near miss.
pub fn config_section_problem<'a>(
    section: &str,
    known: impl IntoIterator<Item = &'a str> + Clone,
    location: Option<Location>,
    pointer: &str,
) -> Option<Diagnostic> {
    if known.clone().into_iter().any(|name| name == section) {
        return None;
    }
    if let Some(name) = known
        .clone()
        .into_iter()
        .find(|name| name.to_lowercase() == section.to_lowercase())
    {
        return Some(
            Diagnostic::error(
                "value.config_section",
                format!(
                    "config section `{section}` is not `{name}`: configparser compares section \
                     names exactly, so tldw_server would never read these values"
                ),
            )
            .at(location)
            .path(pointer)
            .hint(format!("did you mean `{name}`?")),
        );
    }
    let name = closest(section, known)?;
    Some(
        Diagnostic::warning(
            "value.config_section",
            format!("config section `{section}` is not one tldw_server's config.txt has"),
        )
        .at(location)
        .path(pointer)
        .hint(format!("did you mean `{name}`?")),
    )
}

/// Two keys of one section that configparser would read as one option (it lower-cases option
/// names): the file would keep only one of them, silently.
fn check_config_merges(spec: &Spec, root: &Node, out: &mut Vec<Diagnostic>) {
    for (section, keys) in &spec.config {
        let section_pointer = format!("/config/{}", super::load::escape_pointer(section));
        if let Some(diagnostic) = config_section_problem(
            section,
            STOCK_SECTIONS.iter().copied(),
            locate_key(root, &section_pointer),
            &section_pointer,
        ) {
            out.push(diagnostic);
        }
        let mut seen: BTreeMap<String, &str> = BTreeMap::new();
        for key in keys.keys() {
            let Some(first) = seen.insert(option_key(key), key) else {
                continue;
            };
            let first_pointer = format!("{section_pointer}/{}", super::load::escape_pointer(first));
            let pointer = format!("{section_pointer}/{}", super::load::escape_pointer(key));
            let first_at = locate_key(root, &first_pointer)
                .map(|location| location.to_string())
                .unwrap_or(first_pointer);
            out.push(
                Diagnostic::error(
                    "value.config_duplicate",
                    format!(
                        "`{key}` and `{first}` (at {first_at}) are one option to configparser, \
                         which lower-cases option names: only one value would be kept"
                    ),
                )
                .at(locate_key(root, &pointer))
                .path(pointer)
                .hint("keep one of the two keys"),
            );
        }
    }
}

/// What the writers would refuse, refused here first: a value no `.env` quoting or config.txt
/// option can carry back unchanged. Values produced by templates are checked too, since the
/// document has been rendered by now. Messages never show the value.
fn check_writable(spec: &Spec, entries: &[EnvEntry], root: &Node, out: &mut Vec<Diagnostic>) {
    for entry in entries {
        if let Err(reason) = writable::env_value(&entry.value) {
            out.push(unwritable_env(
                &entry.name,
                reason,
                locate(root, &entry.pointer),
                &entry.pointer,
            ));
        }
    }
    for (section, keys) in &spec.config {
        for (key, value) in keys {
            if let Err(reason) = writable::config_value(&value.render()) {
                let pointer = format!(
                    "/config/{}/{}",
                    super::load::escape_pointer(section),
                    super::load::escape_pointer(key)
                );
                out.push(
                    Diagnostic::error(
                        "value.unwritable",
                        format!(
                            "config `[{section}] {key}` cannot be written to config.txt: {reason}"
                        ),
                    )
                    .at(locate(root, &pointer))
                    .path(pointer)
                    .hint("remove the surrounding whitespace or the line break"),
                );
            }
        }
    }
}

/// Secret values read from their sources that the `.env` writer would refuse. Run after the
/// sources are resolved (at `validate` where they are available, always at `plan`).
pub fn check_secret_values(
    root: &Node,
    resolved: &BTreeMap<String, ResolvedSecret>,
    out: &mut Vec<Diagnostic>,
) {
    for (name, secret) in resolved {
        let ResolvedSecret::Value(value) = secret else {
            continue;
        };
        if let Err(reason) = writable::env_value(value) {
            let pointer = format!("/secrets/values/{}", super::load::escape_pointer(name));
            out.push(unwritable_env(
                name,
                reason,
                locate_key(root, &pointer),
                &pointer,
            ));
        }
    }
}

fn unwritable_env(
    name: &str,
    reason: writable::UnwritableReason,
    location: Option<Location>,
    pointer: &str,
) -> Diagnostic {
    Diagnostic::error(
        "value.unwritable",
        format!("`{name}` cannot be written to the .env: {reason}"),
    )
    .at(location)
    .path(pointer)
    .hint(match reason {
        writable::UnwritableReason::NoCommonQuoting => {
            "drop the backslash, or use only one kind of quote"
        }
        _ => "the .env holds one line per value, read literally: change the value",
    })
}

fn check_waivers(spec: &Spec, root: &Node, rule_ids: &[&str], out: &mut Vec<Diagnostic>) {
    for (index, waiver) in spec.waivers.iter().enumerate() {
        if !rule_ids.contains(&waiver.rule.as_str()) {
            let pointer = format!("/waivers/{index}/rule");
            let mut diagnostic = Diagnostic::error(
                "waiver.unknown_rule",
                format!("no policy rule is called `{}`", waiver.rule),
            )
            .at(locate(root, &pointer))
            .path(pointer);
            if let Some(suggestion) = closest(&waiver.rule, rule_ids.iter().copied()) {
                diagnostic
                    .message
                    .push_str(&format!("; did you mean `{suggestion}`?"));
            }
            out.push(diagnostic);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{origin_problem, url_problem};

    #[test]
    fn urls_are_checked_by_the_client_s_own_parser() {
        assert_eq!(url_problem("http://127.0.0.1:8000"), None);
        assert_eq!(url_problem("https://[::1]:8443/api"), None);
        for bad in [
            "http://[::1",
            "http://host:99999",
            "http://ex ample.org",
            "ftp://host",
            "http://",
            "localhost:8000",
        ] {
            assert!(url_problem(bad).is_some(), "{bad} should be refused");
        }
        let problem = url_problem("http://[::1").unwrap();
        assert!(problem.contains("IPv6"), "{problem}");
    }

    #[test]
    fn origins_need_a_scheme_and_host_and_no_path() {
        assert_eq!(origin_problem("https://tldw.example.org"), None);
        assert_eq!(origin_problem("http://localhost:8080"), None);
        assert_eq!(origin_problem("https://[::1]:8080"), None);
        assert_eq!(origin_problem("*"), None);
        assert!(origin_problem("tldw.example.org").is_some());
        assert!(origin_problem("ftp://x.org").is_some());
        assert!(
            origin_problem("https://x.org/")
                .unwrap()
                .contains("trailing")
        );
        assert!(origin_problem("https://x.org/app").is_some());
        assert!(origin_problem("https://user:pw@x.org").is_some());
        assert!(origin_problem("https://x.org:99999").is_some());
    }
}
