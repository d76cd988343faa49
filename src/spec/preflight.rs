//! The value checks of tldw_server's production preflight
//! (`Helper_Scripts/Deployment/production_preflight.py`, `validate_environment`), restated as
//! pure functions for the policy rules. Each mirrors the Python it names, so that a value the
//! preflight refuses is refused here too; where they differ, this side is the stricter.

use std::net::Ipv4Addr;

/// Names the preflight requires in the reference deployment's env file (`REQUIRED_ENV_NAMES`).
pub const REQUIRED_NAMES: &[&str] = &[
    "TLDW_PUBLIC_DOMAIN",
    "TLDW_ACME_EMAIL",
    "ALLOWED_ORIGINS",
    "JWT_SECRET_KEY",
    "SESSION_ENCRYPTION_KEY",
    "POSTGRES_USER",
    "POSTGRES_DB",
    "POSTGRES_PASSWORD",
    "DATABASE_URL",
    "REDIS_PASSWORD",
    "REDIS_URL",
    "ADMIN_USERNAME",
    "ADMIN_PASSWORD",
    "ADMIN_EMAIL",
    "TLDW_EXISTING_INSTALLATION",
    "TLDW_SETUP_COMPLETED",
    "TLDW_EDGE_SUBNET",
    "TLDW_BACKEND_SUBNET",
    "TLDW_APP_IMAGE",
    "TLDW_ROLLBACK_IMAGE",
    "CADDY_IMAGE",
    "POSTGRES_IMAGE",
    "REDIS_IMAGE",
    "TLDW_BACKUP_DIR",
];

/// The first-admin bootstrap names: required for a new installation, empty for an existing one.
pub const BOOTSTRAP_NAMES: &[&str] = &["ADMIN_USERNAME", "ADMIN_PASSWORD", "ADMIN_EMAIL"];

/// Secrets the preflight holds to 32 characters, no placeholder and no reuse (`SECRET_NAMES`).
pub const SECRET_NAMES: &[&str] = &[
    "JWT_SECRET_KEY",
    "SESSION_ENCRYPTION_KEY",
    "POSTGRES_PASSWORD",
    "REDIS_PASSWORD",
    "ADMIN_PASSWORD",
];

/// `_is_true`: the preflight's explicit true.
pub fn is_true(value: &str) -> bool {
    matches!(
        value.trim().to_lowercase().as_str(),
        "1" | "true" | "yes" | "on"
    )
}

/// `_is_false`: the preflight's explicit false.
pub fn is_false(value: &str) -> bool {
    matches!(
        value.trim().to_lowercase().as_str(),
        "0" | "false" | "no" | "off"
    )
}

/// `_is_placeholder_secret`.
pub fn is_placeholder_secret(value: &str) -> bool {
    let normalized = value.trim().to_lowercase();
    let compact: String = normalized
        .chars()
        .filter(|character| character.is_ascii_lowercase() || character.is_ascii_digit())
        .collect();
    matches!(
        normalized.as_str(),
        "password"
            | "postgres"
            | "redis"
            | "secret"
            | "changeme"
            | "change-me"
            | "admin"
            | "default"
    ) || matches!(
        compact.as_str(),
        "changeme" | "testpassword" | "password123" | "defaultsecret"
    ) || normalized.contains("example")
        || normalized.contains("placeholder")
}

/// The parts of a URL as Python's `urlsplit` reads them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlParts {
    pub scheme: String,
    pub username: String,
    pub password: String,
    /// Lower-cased, without IPv6 brackets; `None` when empty.
    pub hostname: Option<String>,
    pub port: Option<u16>,
    /// The path without its leading slashes, percent-decoded.
    pub database: String,
    pub path: String,
    pub has_query: bool,
    pub has_fragment: bool,
}

/// `urlsplit` plus the `.username`, `.password`, `.hostname` and `.port` properties, with the
/// preflight's extra refusal of an empty port (`host:`). `None` where Python raises.
pub fn split_url(raw: &str) -> Option<UrlParts> {
    let (scheme, rest) = match raw.split_once(':') {
        Some((scheme, rest))
            if !scheme.is_empty()
                && scheme.starts_with(|c: char| c.is_ascii_alphabetic())
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')) =>
        {
            (scheme.to_ascii_lowercase(), rest)
        }
        _ => (String::new(), raw),
    };
    let (netloc, after) = match rest.strip_prefix("//") {
        Some(rest) => {
            let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
            (&rest[..end], &rest[end..])
        }
        None => ("", rest),
    };
    let (before_fragment, fragment) = match after.split_once('#') {
        Some((before, fragment)) => (before, Some(fragment)),
        None => (after, None),
    };
    let (path, query) = match before_fragment.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (before_fragment, None),
    };
    let (userinfo, hostport) = match netloc.rsplit_once('@') {
        Some((userinfo, hostport)) => (Some(userinfo), hostport),
        None => (None, netloc),
    };
    let (username, password) = match userinfo {
        Some(userinfo) => match userinfo.split_once(':') {
            Some((user, password)) => (user, password),
            None => (userinfo, ""),
        },
        None => ("", ""),
    };
    // Python: an IPv6 literal in brackets, else the host ends at the last colon.
    let (host, port_text) = if let Some(inner) = hostport.strip_prefix('[') {
        let close = inner.find(']')?;
        let host = &inner[..close];
        let tail = &inner[close + 1..];
        match tail.strip_prefix(':') {
            Some(port) => (host, Some(port)),
            None if tail.is_empty() => (host, None),
            None => return None,
        }
    } else if hostport.contains(']') {
        return None;
    } else {
        match hostport.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (hostport, None),
        }
    };
    let port = match port_text {
        // The preflight refuses `host:` itself.
        Some("") => return None,
        Some(text) => {
            if !text.chars().all(|c| c.is_ascii_digit()) {
                return None;
            }
            Some(text.parse::<u16>().ok()?)
        }
        None => None,
    };
    let hostname = (!host.is_empty()).then(|| host.to_lowercase());
    Some(UrlParts {
        scheme,
        username: percent_decode(username),
        password: percent_decode(password),
        hostname,
        port,
        database: percent_decode(path.trim_start_matches('/')),
        path: path.to_string(),
        has_query: query.is_some_and(|query| !query.is_empty()),
        has_fragment: fragment.is_some_and(|fragment| !fragment.is_empty()),
    })
}

/// `urllib.parse.unquote`: `%XX` sequences decoded as UTF-8, others kept.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'%'
            && index + 2 < bytes.len()
            && let (Some(high), Some(low)) = (
                (bytes[index + 1] as char).to_digit(16),
                (bytes[index + 2] as char).to_digit(16),
            )
        {
            out.push((high * 16 + low) as u8);
            index += 3;
            continue;
        }
        out.push(bytes[index]);
        index += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Why a `DATABASE_URL` is not the reference deployment's, or `None` when it is.
pub fn database_url_problem(
    raw: &str,
    user: Option<&str>,
    password: Option<&str>,
    database: Option<&str>,
) -> Option<&'static str> {
    let Some(url) = split_url(raw) else {
        return Some("it is not a valid PostgreSQL URL");
    };
    if !matches!(url.scheme.as_str(), "postgres" | "postgresql") {
        return Some("its scheme is not postgresql://");
    }
    if url.hostname.as_deref() != Some("postgres") || !matches!(url.port, None | Some(5432)) {
        return Some("it does not point at the reference deployment's `postgres:5432`");
    }
    if Some(url.username.as_str()) != user {
        return Some("its user is not `POSTGRES_USER`");
    }
    if Some(url.password.as_str()) != password {
        return Some("its password is not `POSTGRES_PASSWORD`");
    }
    if Some(url.database.as_str()) != database {
        return Some("its database is not `POSTGRES_DB`");
    }
    None
}

/// Why a `REDIS_URL` is not the reference deployment's, or `None` when it is.
pub fn redis_url_problem(raw: &str, password: Option<&str>) -> Option<&'static str> {
    let Some(url) = split_url(raw) else {
        return Some("it is not a valid Redis URL");
    };
    if !matches!(url.scheme.as_str(), "redis" | "rediss") {
        return Some("its scheme is not redis:// or rediss://");
    }
    if url.hostname.as_deref() != Some("redis") || !matches!(url.port, None | Some(6379)) {
        return Some("it does not point at the reference deployment's `redis:6379`");
    }
    if !matches!(url.username.as_str(), "" | "default") {
        return Some("its user is neither empty nor `default`");
    }
    if Some(url.password.as_str()) != password {
        return Some("its password is not `REDIS_PASSWORD`");
    }
    None
}

/// `_is_valid_dns_name`: ASCII, not an IP address, 2 or more labels, a non-numeric last label.
pub fn is_dns_name(value: &str) -> bool {
    if !value.is_ascii() || value.parse::<std::net::IpAddr>().is_ok() {
        return false;
    }
    let labels: Vec<&str> = value.split('.').collect();
    (1..=253).contains(&value.len())
        && labels.len() >= 2
        && !labels
            .last()
            .is_some_and(|label| !label.is_empty() && label.chars().all(|c| c.is_ascii_digit()))
        && labels.iter().all(|label| is_dns_label(label))
}

fn is_dns_label(label: &str) -> bool {
    let bytes = label.as_bytes();
    (1..=63).contains(&bytes.len())
        && bytes[0].is_ascii_alphanumeric()
        && bytes[bytes.len() - 1].is_ascii_alphanumeric()
        && bytes
            .iter()
            .all(|byte| byte.is_ascii_alphanumeric() || *byte == b'-')
}

const SAMPLE_MARKERS: &[&str] = &["example.com", "example.invalid", "localhost", "change-me"];

/// The preflight's check of `TLDW_PUBLIC_DOMAIN`.
pub fn is_real_domain(value: &str) -> bool {
    let domain = value.trim().to_lowercase();
    !SAMPLE_MARKERS.iter().any(|marker| domain.contains(marker)) && is_dns_name(&domain)
}

/// The preflight's check of `TLDW_ACME_EMAIL` (`_is_valid_email` and the sample markers).
pub fn is_real_email(value: &str) -> bool {
    let contact = value.trim().to_lowercase();
    if SAMPLE_MARKERS.iter().any(|marker| contact.contains(marker)) || !contact.is_ascii() {
        return false;
    }
    let Some((local, domain)) = contact.rsplit_once('@') else {
        return false;
    };
    contact.matches('@').count() == 1
        && (1..=254).contains(&contact.len())
        && (1..=64).contains(&local.len())
        && local
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ".!#$%&'*+/=?^_`{|}~-".contains(c))
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..")
        && is_dns_name(domain)
}

/// The origins of an `ALLOWED_ORIGINS` value: a JSON list when it starts with `[`, else
/// comma-separated. `None` when the JSON does not parse as a list of strings.
pub fn parse_origins(raw: &str) -> Option<Vec<String>> {
    if raw.trim_start().starts_with('[') {
        let list: Vec<String> = serde_json::from_str(raw).ok()?;
        return Some(
            list.into_iter()
                .map(|item| item.trim().to_string())
                .collect(),
        );
    }
    Some(
        raw.split(',')
            .map(str::trim)
            .filter(|item| !item.is_empty())
            .map(str::to_string)
            .collect(),
    )
}

/// Why an origin is not an explicit `https://host` origin, or `None` when it is.
pub fn origin_problem(origin: &str) -> Option<&'static str> {
    if origin.contains('*') {
        return Some("is a wildcard");
    }
    let Some(url) = split_url(origin) else {
        return Some("is not a valid origin");
    };
    if url.scheme != "https" {
        return Some("is not https");
    }
    if url.hostname.is_none() {
        return Some("has no host");
    }
    if !url.username.is_empty() || !url.password.is_empty() {
        return Some("carries credentials");
    }
    if !matches!(url.path.as_str(), "" | "/") || url.has_query || url.has_fragment {
        return Some("has a path, query or fragment");
    }
    None
}

/// The host of an origin that passed [`origin_problem`].
pub fn origin_host(origin: &str) -> Option<String> {
    split_url(origin).and_then(|url| url.hostname)
}

/// A strict IPv4 network (`ipaddress.ip_network(value, strict=True)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    pub address: u32,
    pub prefix: u8,
}

impl Network {
    fn mask(self) -> u32 {
        if self.prefix == 0 {
            0
        } else {
            u32::MAX << (32 - u32::from(self.prefix))
        }
    }

    fn broadcast(self) -> u32 {
        self.address | !self.mask()
    }

    pub fn overlaps(self, other: Network) -> bool {
        self.address <= other.broadcast() && other.address <= self.broadcast()
    }
}

/// Parses `a.b.c.d/n` (or a bare address, `/32`) strictly: no host bits set.
pub fn parse_network(value: &str) -> Option<Network> {
    let (address, prefix) = match value.split_once('/') {
        Some((address, prefix)) => (address, prefix),
        None => (value, "32"),
    };
    let address: Ipv4Addr = address.parse().ok()?;
    if !prefix.chars().all(|c| c.is_ascii_digit()) || prefix.is_empty() {
        return None;
    }
    let prefix: u8 = prefix.parse().ok().filter(|prefix| *prefix <= 32)?;
    let network = Network {
        address: u32::from(address),
        prefix,
    };
    (network.address & !network.mask() == 0).then_some(network)
}

/// Python's `IPv4Address.is_private` ranges (3.11+).
const PRIVATE_V4: &[(u32, u8)] = &[
    (0x0000_0000, 8),
    (0x0a00_0000, 8),
    (0x7f00_0000, 8),
    (0xa9fe_0000, 16),
    (0xac10_0000, 12),
    (0xc000_0000, 29),
    (0xc000_00aa, 31),
    (0xc000_0200, 24),
    (0xc0a8_0000, 16),
    (0xc612_0000, 15),
    (0xc633_6400, 24),
    (0xcb00_7100, 24),
    (0xf000_0000, 4),
    (0xffff_ffff, 32),
];

fn is_private_address(address: u32) -> bool {
    PRIVATE_V4.iter().any(|&(network, prefix)| {
        let mask = if prefix == 0 {
            0
        } else {
            u32::MAX << (32 - u32::from(prefix))
        };
        address & mask == network
    })
}

/// `_network`: a strict, private IPv4 CIDR with a non-zero prefix.
pub fn private_network(value: &str) -> Option<Network> {
    let network = parse_network(value.trim())?;
    (network.prefix != 0
        && is_private_address(network.address)
        && is_private_address(network.broadcast()))
    .then_some(network)
}

/// `_is_immutable_app_image`: `…@sha256:<64 hex>` or `…:sha-<7..64 hex>`.
pub fn is_immutable_app_image(value: &str) -> bool {
    if let Some((name, digest)) = value.rsplit_once("@sha256:")
        && !name.is_empty()
        && digest.len() == 64
        && digest
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    {
        return true;
    }
    if let Some((name, commit)) = value.rsplit_once(":sha-")
        && !name.is_empty()
        && (7..=64).contains(&commit.len())
        && commit
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    {
        return true;
    }
    false
}

/// `_is_exact_third_party_image`: a digest, or a tag holding a full numeric version, never
/// `latest`.
pub fn is_exact_image(value: &str) -> bool {
    if let Some((name, digest)) = value.rsplit_once("@sha256:")
        && !name.is_empty()
        && digest.len() == 64
        && digest
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    {
        return true;
    }
    let last = value.rsplit('/').next().unwrap_or(value);
    let Some((_, tag)) = last.rsplit_once(':') else {
        return false;
    };
    let tag = tag.to_lowercase();
    tag != "latest" && has_numeric_version(&tag)
}

/// `(?:^|[^0-9])\d+\.\d+(?:\.\d+)?(?:[^0-9]|$)`: digits, a dot, digits, not glued to more
/// digits on either side.
fn has_numeric_version(tag: &str) -> bool {
    let bytes = tag.as_bytes();
    for start in 0..bytes.len() {
        if !bytes[start].is_ascii_digit() || (start > 0 && bytes[start - 1].is_ascii_digit()) {
            continue;
        }
        let mut index = start;
        while index < bytes.len() && bytes[index].is_ascii_digit() {
            index += 1;
        }
        if index >= bytes.len() || bytes[index] != b'.' {
            continue;
        }
        let minor = index + 1;
        let mut end = minor;
        while end < bytes.len() && bytes[end].is_ascii_digit() {
            end += 1;
        }
        if end == minor {
            continue;
        }
        // An optional `.patch`; the regex backtracks to without it when the patch is glued.
        let mut candidates = vec![end];
        if end < bytes.len() && bytes[end] == b'.' {
            let mut patch = end + 1;
            while patch < bytes.len() && bytes[patch].is_ascii_digit() {
                patch += 1;
            }
            if patch > end + 1 {
                candidates.insert(0, patch);
            }
        }
        if candidates
            .into_iter()
            .any(|stop| stop >= bytes.len() || !bytes[stop].is_ascii_digit())
        {
            return true;
        }
    }
    false
}

/// Why a `TLDW_BACKUP_DIR` is unsafe, or `None`. Paths are judged as written; the preflight
/// also resolves symbolic links on the host it runs on.
pub fn backup_dir_problem(value: &str) -> Option<&'static str> {
    let path = std::path::Path::new(value);
    if !path.is_absolute() {
        return Some("is not an absolute path");
    }
    let normalized = normalize(path);
    for socket in ["/var/run/docker.sock", "/run/docker.sock"] {
        let socket = std::path::Path::new(socket);
        if normalized == socket || socket.starts_with(&normalized) {
            return Some("equals or contains a Docker socket location");
        }
    }
    for live in ["/app/Databases", "/var/lib/postgresql", "/data"] {
        let live = std::path::Path::new(live);
        if normalized.starts_with(live) || live.starts_with(&normalized) {
            return Some(
                "is not separate from live data (`/app/Databases`, `/var/lib/postgresql`, `/data`)",
            );
        }
    }
    None
}

/// `.` and `..` removed lexically, as `Path.resolve(strict=False)` does for paths without links.
fn normalize(path: &std::path::Path) -> std::path::PathBuf {
    let mut out = std::path::PathBuf::from("/");
    for component in path.components() {
        match component {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::Normal(part) => out.push(part),
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_as_python_splits_them() {
        let url = split_url("postgresql://tldw:s%40cret@postgres:5432/tldw_users").unwrap();
        assert_eq!(url.scheme, "postgresql");
        assert_eq!(url.username, "tldw");
        assert_eq!(url.password, "s@cret");
        assert_eq!(url.hostname.as_deref(), Some("postgres"));
        assert_eq!(url.port, Some(5432));
        assert_eq!(url.database, "tldw_users");
        assert!(split_url("postgresql://u:p@postgres:/db").is_none());
        assert!(split_url("postgresql://u:p@postgres:99999/db").is_none());
        assert!(split_url("postgresql://u:p@postgres:54x/db").is_none());
        assert_eq!(
            split_url("redis://:pw@[::1]:6379/0")
                .unwrap()
                .hostname
                .as_deref(),
            Some("::1")
        );
    }

    #[test]
    fn the_database_url_must_carry_the_separate_credentials() {
        let ok = "postgresql://tldw:pw@postgres:5432/users";
        assert_eq!(
            database_url_problem(ok, Some("tldw"), Some("pw"), Some("users")),
            None
        );
        assert!(database_url_problem(ok, Some("tldw"), Some("other"), Some("users")).is_some());
        assert!(
            database_url_problem(
                "postgresql://tldw:pw@db.internal:5432/users",
                Some("tldw"),
                Some("pw"),
                Some("users")
            )
            .is_some()
        );
        assert!(
            database_url_problem(
                "sqlite:///./Databases/users.db",
                Some("tldw"),
                Some("pw"),
                Some("users")
            )
            .is_some()
        );
        assert_eq!(
            redis_url_problem("redis://:pw@redis:6379/0", Some("pw")),
            None
        );
        assert_eq!(
            redis_url_problem("rediss://default:pw@redis/0", Some("pw")),
            None
        );
        assert!(redis_url_problem("redis://:pw@cache:6379", Some("pw")).is_some());
        assert!(redis_url_problem("redis://redis:6379", Some("pw")).is_some());
    }

    #[test]
    fn images_are_pinned_as_the_preflight_demands() {
        let digest = format!("ghcr.io/x/tldw@sha256:{}", "a".repeat(64));
        assert!(is_immutable_app_image(&digest));
        assert!(is_immutable_app_image("ghcr.io/x/tldw:sha-0123abc"));
        assert!(!is_immutable_app_image("ghcr.io/x/tldw:latest"));
        assert!(!is_immutable_app_image("ghcr.io/x/tldw:sha-01"));
        assert!(!is_immutable_app_image("ghcr.io/x/tldw"));
        assert!(is_exact_image("postgres:18.1-alpine"));
        assert!(is_exact_image("caddy:2.10"));
        assert!(is_exact_image(&digest));
        assert!(!is_exact_image("redis:latest"));
        assert!(!is_exact_image("redis:8"));
        assert!(!is_exact_image("redis"));
        assert!(!is_exact_image("localhost:5000/redis"));
    }

    #[test]
    fn networks_must_be_strict_private_ipv4() {
        assert!(private_network("172.28.0.0/24").is_some());
        assert!(private_network("10.0.0.0/8").is_some());
        assert!(private_network("172.28.0.1/24").is_none(), "host bits set");
        assert!(private_network("8.8.8.0/24").is_none(), "public");
        assert!(private_network("0.0.0.0/0").is_none());
        assert!(private_network("fd00::/8").is_none());
        let edge = private_network("172.28.0.0/24").unwrap();
        let backend = private_network("172.28.0.128/25").unwrap();
        assert!(edge.overlaps(backend));
        assert!(!edge.overlaps(private_network("172.29.0.0/24").unwrap()));
    }

    #[test]
    fn domains_emails_and_origins_follow_the_preflight() {
        assert!(is_real_domain("tldw.research.org"));
        assert!(!is_real_domain("tldw.example.com"));
        assert!(!is_real_domain("localhost"));
        assert!(!is_real_domain("10.0.0.1"));
        assert!(!is_real_domain("tldw"));
        assert!(is_real_email("ops@research.org"));
        assert!(!is_real_email("ops@example.com"));
        assert!(!is_real_email("a..b@research.org"));
        assert_eq!(origin_problem("https://tldw.research.org"), None);
        assert_eq!(origin_problem("https://tldw.research.org/"), None);
        assert!(origin_problem("https://tldw.research.org/app").is_some());
        assert!(origin_problem("https://u:p@tldw.research.org").is_some());
        assert!(origin_problem("http://tldw.research.org").is_some());
        assert!(origin_problem("*").is_some());
        assert_eq!(
            parse_origins(r#"["https://a.org", " https://b.org "]"#).unwrap(),
            vec!["https://a.org", "https://b.org"]
        );
        assert!(parse_origins("[1]").is_none());
    }

    #[test]
    fn backup_directories_stay_away_from_live_data() {
        assert_eq!(backup_dir_problem("/srv/backups/tldw"), None);
        assert!(backup_dir_problem("backups").is_some());
        assert!(backup_dir_problem("/data/backups").is_some());
        assert!(backup_dir_problem("/var/lib").is_some());
        assert!(backup_dir_problem("/srv/../app/Databases/x").is_some());
        assert!(backup_dir_problem("/var/run").is_some());
    }

    #[test]
    fn placeholders_follow_the_preflight() {
        for value in [
            "password",
            "Change-Me",
            "test_password",
            "my-example-secret",
        ] {
            assert!(is_placeholder_secret(value), "{value}");
        }
        assert!(!is_placeholder_secret(&"k".repeat(40)));
    }
}
