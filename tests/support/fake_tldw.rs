//! A fake tldw_server admin API on loopback, for tests and benchmarks.
//!
//! This file owns [`FakeTldw`]: an in-memory implementation of the documented
//! tldw_server admin contract (users listing, per-user storage quotas,
//! retention policies with signed previews, registration settings, health and
//! readiness) served over HTTP/1.1 on `127.0.0.1:<free port>` by a background
//! thread that runs its own tokio runtime. Synchronous tests drive it through
//! the handle: they read and mutate the server state out of band, inspect the
//! requests it received, and inject faults (error statuses, one-shot or
//! persistent for one exact route, delays, dropped connections, oversized
//! bodies, unhealthy restarts). Dropping the handle stops the server.
//!
//! The retention routes follow tldw_server's `admin_data_ops.py` and
//! `admin_data_ops_service.py` status for status and string for string
//! (`docs/admin-api.md`): PUT refusals are 400 `preview_signature_required`,
//! `invalid_preview_signature`, `expired_preview_signature`, `invalid_range`
//! and 404 `unknown_policy`; only the preview answers 409
//! `stale_current_days`; `days` may be `null`.
//!
//! Error bodies follow FastAPI: `{"detail": "..."}` for handler errors and
//! `{"detail": [{"type", "loc", "msg", "input", ...}]}` with status 422 for
//! request validation errors. Authentication is checked before validation.
//!
//! Dropped connections are implemented below the HTTP layer: the server runs
//! on a custom [`axum::serve::Listener`] whose accept loop closes sockets while
//! a counter is positive, and whose per-connection IO wrapper can be "killed"
//! from a request middleware so that a request (or its already-computed
//! response) is answered by a closed connection instead of an HTTP response.
//!
//! The file is standalone (std, axum, tokio, serde_json, sha2, tempfile) so it
//! can be included with `mod support;` or `#[path = ...]`.

#![allow(dead_code)]

use std::collections::HashMap;
use std::future::IntoFuture;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::connect_info::Connected;
use axum::extract::{ConnectInfo, Path as UrlPath, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::serve::{IncomingStream, Listener};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

// ---------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------

/// Who a token authenticates as.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    /// Principal name; retention preview signatures are bound to it.
    pub name: String,
    /// `true` for role `admin`, `false` for role `user`.
    pub admin: bool,
}

/// Initial state and behaviour of a [`FakeTldw`].
#[derive(Clone, Debug)]
pub struct FakeTldwConfig {
    /// Token of the admin principal (`admin`, role admin).
    pub admin_token: String,
    /// Token of the non-admin principal (`user`, role user): gets 403.
    pub user_token: String,
    /// More tokens, e.g. a second admin to test signature binding.
    pub extra_tokens: Vec<(String, Principal)>,
    /// Number of generated users `user0001`, `user0002`, ... (ids 1..=users),
    /// email `<username>@example.com`. Every 100th has role `admin`, every
    /// 10th is inactive, every 3rd has MFA enabled; all are verified.
    pub users: usize,
    /// Extra users appended after the generated ones (ids continue), with
    /// their quota (`None` = unlimited) and 0 MB used.
    pub extra_users: Vec<(String, Option<i64>)>,
    /// Quota of generated user number `i` (1-based). Default: `Some(5120)`.
    pub seed_quotas: fn(usize) -> Option<i64>,
    /// Storage used by generated user number `i` (1-based), in MB.
    pub seed_used_mb: fn(usize) -> f64,
    /// Lifetime of retention preview signatures. tldw_server:
    /// `ADMIN_RETENTION_PREVIEW_TTL_SECONDS`, default 900 s, at least 60 s
    /// (`admin_data_ops_service._retention_preview_ttl_seconds`); the fake
    /// takes any duration, to millisecond precision, so tests can outlive it.
    pub signature_ttl: Duration,
    /// File whose line count is the number of restarts (see
    /// [`FakeTldw::restart_command`]). `None`: a file in a temp dir owned by
    /// the handle.
    pub restart_marker: Option<PathBuf>,
    /// Initial retention days overriding the defaults, by policy key.
    pub retention_days: Vec<(String, i64)>,
    /// Policies whose days the server reports as `null` (tldw's
    /// `RetentionPolicy.days` is `int | None`: the settings attribute is
    /// unset). Such a policy cannot be changed through the API, as in tldw.
    pub retention_null: Vec<String>,
    /// Initial `enable_registration`.
    pub enable_registration: bool,
    /// Initial `require_registration_code`.
    pub require_registration_code: bool,
    /// `"multi_user"` or `"single_user"`.
    pub auth_mode: String,
    /// Reported `profile` of the registration settings.
    pub profile: Option<String>,
}

fn default_seed_quota(_index: usize) -> Option<i64> {
    Some(5120)
}

fn default_seed_used_mb(index: usize) -> f64 {
    // Deterministic, varied, well below the default 5120 MB quota.
    ((index * 37) % 1000) as f64 + 0.25
}

impl Default for FakeTldwConfig {
    fn default() -> Self {
        FakeTldwConfig {
            admin_token: "admin-token".to_owned(),
            user_token: "user-token".to_owned(),
            extra_tokens: Vec::new(),
            users: 3,
            extra_users: Vec::new(),
            seed_quotas: default_seed_quota,
            seed_used_mb: default_seed_used_mb,
            signature_ttl: Duration::from_secs(900),
            restart_marker: None,
            retention_days: Vec::new(),
            retention_null: Vec::new(),
            enable_registration: false,
            require_registration_code: false,
            auth_mode: "multi_user".to_owned(),
            profile: None,
        }
    }
}

/// The retention policies of the contract: (key, default days, min, max,
/// description), as `tldw_Server_API/app/core/AuthNZ/retention_policies.py`
/// (`RETENTION_POLICIES`) and the defaults of `AuthNZ/settings.py` have them,
/// in the same order.
pub const RETENTION_POLICIES: [(&str, i64, i64, i64, &str); 8] = [
    ("audit_logs", 180, 30, 3650, "AuthNZ audit log retention"),
    ("usage_logs", 180, 1, 3650, "Usage log retention"),
    ("llm_usage_logs", 180, 1, 3650, "LLM usage log retention"),
    (
        "usage_daily",
        365,
        1,
        3650,
        "Daily usage aggregates retention",
    ),
    (
        "llm_usage_daily",
        365,
        1,
        3650,
        "Daily LLM usage aggregates retention",
    ),
    ("sessions", 90, 7, 3650, "Session log retention"),
    (
        "privilege_snapshots",
        90,
        7,
        3650,
        "Privilege snapshot retention",
    ),
    (
        "privilege_snapshots_weekly",
        365,
        30,
        3650,
        "Weekly privilege snapshot retention",
    ),
];

/// The route of one user's storage quota.
pub fn quota_path(user_id: i64) -> String {
    format!("/api/v1/admin/storage-quotas/users/{user_id}")
}

/// The route of one retention policy's signed PUT.
pub fn retention_path(key: &str) -> String {
    format!("/api/v1/admin/retention-policies/{key}")
}

/// The route of one retention policy's preview.
pub fn retention_preview_path(key: &str) -> String {
    format!("/api/v1/admin/retention-policies/{key}/preview")
}

// ---------------------------------------------------------------------------
// Recorded requests
// ---------------------------------------------------------------------------

/// Which credential header a request carried (never the token itself).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthKind {
    /// Neither `Authorization` nor `X-API-KEY`.
    None,
    /// `Authorization: Bearer ...`.
    Bearer,
    /// `X-API-KEY: ...`.
    ApiKey,
    /// Both of the above.
    Both,
    /// An `Authorization` header with another scheme (and no `X-API-KEY`).
    Other,
}

/// One request as the server saw it.
#[derive(Clone, Debug, PartialEq)]
pub struct RecordedRequest {
    /// `GET`, `PUT`, ...
    pub method: String,
    /// Path without the query string.
    pub path: String,
    /// Raw query string, if any.
    pub query: Option<String>,
    /// Body as (lossy) UTF-8 text.
    pub body: String,
    /// Credential header kind used.
    pub auth: AuthKind,
    /// Status sent; `None` while in flight or when the connection was dropped.
    pub status: Option<u16>,
    /// `true` when a fault rule produced the outcome (status or drop).
    pub injected: bool,
}

// ---------------------------------------------------------------------------
// Shared state
// ---------------------------------------------------------------------------

struct UserRec {
    id: i64,
    uuid: String,
    username: String,
    email: String,
    username_lc: String,
    email_lc: String,
    role: &'static str,
    is_active: bool,
    is_verified: bool,
    mfa_enabled: bool,
    created_at: String,
    quota_mb: Option<i64>,
    used_mb: f64,
}

struct Policy {
    key: &'static str,
    /// `None`: reported as `null`.
    days: Option<i64>,
    min_days: i64,
    max_days: i64,
    description: &'static str,
}

struct Data {
    users: Vec<UserRec>,
    by_id: HashMap<i64, usize>,
    by_name: HashMap<String, usize>,
    policies: Vec<Policy>,
    enable_registration: bool,
    require_registration_code: bool,
}

#[derive(Clone, Debug)]
enum RuleKind {
    FailNext {
        status: u16,
        remaining: usize,
    },
    FailAfter {
        successes_left: usize,
        status: u16,
    },
    DropRequests {
        remaining: usize,
    },
    DropResponses {
        remaining: usize,
    },
    Delay(Duration),
    /// Fails every matching request until cleared.
    FailPersistently {
        status: u16,
    },
    /// Answers the next `remaining` matching requests with 200 and a JSON
    /// body of `bytes` bytes.
    Oversize {
        bytes: usize,
        remaining: usize,
    },
}

#[derive(Clone, Debug)]
struct Rule {
    method: String,
    prefix: String,
    /// The path must equal `prefix` (a rule for user 4 must not hit user 40).
    exact: bool,
    kind: RuleKind,
}

impl Rule {
    fn matches(&self, method: &str, path: &str) -> bool {
        if self.exact {
            (self.method == "*" || self.method.eq_ignore_ascii_case(method)) && path == self.prefix
        } else {
            route_matches(&self.method, &self.prefix, method, path)
        }
    }
}

fn route_matches(rule_method: &str, rule_prefix: &str, method: &str, path: &str) -> bool {
    (rule_method == "*" || rule_method.eq_ignore_ascii_case(method))
        && path.starts_with(rule_prefix)
}

struct Faults {
    rules: Vec<Rule>,
    healthy: bool,
    ready: bool,
    unhealthy_after: Option<usize>,
    healthy_again_after: Option<usize>,
}

impl Faults {
    fn new() -> Self {
        Faults {
            rules: Vec::new(),
            healthy: true,
            ready: true,
            unhealthy_after: None,
            healthy_again_after: None,
        }
    }
}

enum Action {
    Pass,
    Fail(u16),
    DropRequest,
    DropResponse,
    Oversize(usize),
}

struct Shared {
    data: Mutex<Data>,
    faults: Mutex<Faults>,
    log: Mutex<Vec<RecordedRequest>>,
    drop_connections: AtomicUsize,
    dropped_connections: AtomicUsize,
    tokens: HashMap<String, Principal>,
    secret: [u8; 32],
    ttl: Duration,
    marker: PathBuf,
    auth_mode: String,
    profile: Option<String>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Shared {
    fn record(&self, rec: RecordedRequest) -> usize {
        let mut log = lock(&self.log);
        log.push(rec);
        log.len() - 1
    }

    fn finish(&self, idx: usize, status: Option<u16>, injected: bool) {
        if let Some(rec) = lock(&self.log).get_mut(idx) {
            rec.status = status;
            rec.injected = injected;
        }
    }

    /// Consumes fault rules for one request: returns the total delay and the
    /// action. One-shot rules (fail/drop) are consumed first-registered first;
    /// `fail_after` counters only count requests that no one-shot rule took.
    fn decide(&self, method: &str, path: &str) -> (Duration, Action) {
        let mut faults = lock(&self.faults);
        let mut delay = Duration::ZERO;
        let mut action = Action::Pass;
        for rule in faults.rules.iter_mut() {
            if !rule.matches(method, path) {
                continue;
            }
            match &mut rule.kind {
                RuleKind::Delay(d) => delay += *d,
                RuleKind::FailPersistently { status } => {
                    if matches!(action, Action::Pass) {
                        action = Action::Fail(*status);
                    }
                }
                RuleKind::Oversize { bytes, remaining } if *remaining > 0 => {
                    if matches!(action, Action::Pass) {
                        *remaining -= 1;
                        action = Action::Oversize(*bytes);
                    }
                }
                RuleKind::FailNext { status, remaining } if *remaining > 0 => {
                    if matches!(action, Action::Pass) {
                        *remaining -= 1;
                        action = Action::Fail(*status);
                    }
                }
                RuleKind::DropRequests { remaining } if *remaining > 0 => {
                    if matches!(action, Action::Pass) {
                        *remaining -= 1;
                        action = Action::DropRequest;
                    }
                }
                RuleKind::DropResponses { remaining } if *remaining > 0 => {
                    if matches!(action, Action::Pass) {
                        *remaining -= 1;
                        action = Action::DropResponse;
                    }
                }
                _ => {}
            }
        }
        if matches!(action, Action::Pass) {
            for rule in faults.rules.iter_mut() {
                if !rule.matches(method, path) {
                    continue;
                }
                if let RuleKind::FailAfter {
                    successes_left,
                    status,
                } = &mut rule.kind
                {
                    if *successes_left > 0 {
                        *successes_left -= 1;
                    } else if matches!(action, Action::Pass) {
                        action = Action::Fail(*status);
                    }
                }
            }
        }
        faults.rules.retain(|r| match r.kind {
            RuleKind::FailNext { remaining, .. }
            | RuleKind::DropRequests { remaining }
            | RuleKind::DropResponses { remaining }
            | RuleKind::Oversize { remaining, .. } => remaining > 0,
            _ => true,
        });
        (delay, action)
    }

    fn restart_count(&self) -> usize {
        count_lines(&self.marker)
    }

    /// (healthy, ready) as the health endpoints report them right now.
    fn health(&self) -> (bool, bool) {
        let faults = lock(&self.faults);
        let mut healthy = faults.healthy;
        if let Some(n) = faults.unhealthy_after {
            let restarts = self.restart_count();
            let recovered = faults.healthy_again_after.is_some_and(|m| restarts >= m);
            if restarts >= n && !recovered {
                healthy = false;
            }
        }
        (healthy, healthy && faults.ready)
    }

    /// A keyed digest of a signature body (tldw uses an HMAC-SHA256 keyed
    /// from `JWT_SECRET_KEY`; a keyed SHA-256 is enough for a fake).
    fn mac(&self, body: &str) -> String {
        let mut h = Sha256::new();
        h.update(self.secret);
        h.update(b"\nretention-preview-v1\n");
        h.update(body.as_bytes());
        h.update(self.secret);
        hex(h.finalize().as_slice())
    }

    /// `<body>.<digest>` as `build_retention_preview_signature` makes it: the
    /// body encodes `{"a": principal, "c": current days, "e": expiry, "n": new
    /// days, "p": key, "v": "v1"}` (tldw: base64url JSON, expiry in seconds;
    /// the fake: hex JSON, expiry in milliseconds).
    fn sign(&self, key: &str, principal: &str, current_days: i64, new_days: i64) -> String {
        let exp_ms = now_ms() + self.ttl.as_millis() as u64;
        let payload = json!({
            "a": principal,
            "c": current_days,
            "e": exp_ms,
            "n": new_days,
            "p": key,
            "v": "v1",
        });
        let body = hex(payload.to_string().as_bytes());
        let digest = self.mac(&body);
        format!("{body}.{digest}")
    }

    /// The payload of a signature this server made, or `None` when it is not
    /// one (`_decode_retention_preview_signature`: `invalid_preview_signature`).
    fn decode_signature(&self, signature: &str) -> Option<serde_json::Map<String, Value>> {
        let (body, digest) = signature.split_once('.')?;
        if self.mac(body) != digest {
            return None;
        }
        let bytes = unhex(body)?;
        match serde_json::from_slice::<Value>(&bytes).ok()? {
            Value::Object(map) => Some(map),
            _ => None,
        }
    }

    fn principal(&self, headers: &HeaderMap) -> Result<Principal, AuthError> {
        let bearer = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                let (scheme, token) = v.trim().split_once(' ')?;
                scheme
                    .eq_ignore_ascii_case("bearer")
                    .then(|| token.trim().to_owned())
            });
        let api_key = headers
            .get("x-api-key")
            .and_then(|v| v.to_str().ok())
            .map(|v| v.trim().to_owned());
        let presented: Vec<String> = bearer
            .into_iter()
            .chain(api_key)
            .filter(|t| !t.is_empty())
            .collect();
        if presented.is_empty() {
            return Err(AuthError::NotAuthenticated);
        }
        let Some(principal) = presented.iter().find_map(|t| self.tokens.get(t)) else {
            return Err(AuthError::InvalidToken);
        };
        if !principal.admin {
            return Err(AuthError::NotAdmin);
        }
        Ok(principal.clone())
    }
}

/// Why a request is not allowed on an admin route.
enum AuthError {
    NotAuthenticated,
    InvalidToken,
    NotAdmin,
}

impl IntoResponse for AuthError {
    fn into_response(self) -> Response {
        match self {
            AuthError::NotAuthenticated => unauthorized("Not authenticated"),
            AuthError::InvalidToken => unauthorized("Invalid token"),
            AuthError::NotAdmin => detail(StatusCode::FORBIDDEN, "Admin role required"),
        }
    }
}

fn count_lines(path: &Path) -> usize {
    match std::fs::read(path) {
        Ok(bytes) => {
            let newlines = bytes.iter().filter(|b| **b == b'\n').count();
            newlines + usize::from(bytes.last().is_some_and(|b| *b != b'\n'))
        }
        Err(_) => 0,
    }
}

// ---------------------------------------------------------------------------
// The handle
// ---------------------------------------------------------------------------

/// A running fake tldw_server. Dropping it stops the server and frees the port.
pub struct FakeTldw {
    shared: Arc<Shared>,
    addr: SocketAddr,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
    admin_token: String,
    user_token: String,
    _marker_dir: Option<tempfile::TempDir>,
}

impl FakeTldw {
    /// Starts the server on `127.0.0.1:0`. Panics if it cannot.
    pub fn start(config: FakeTldwConfig) -> FakeTldw {
        let (marker, marker_dir) = match &config.restart_marker {
            Some(path) => (path.clone(), None),
            None => {
                let dir = tempfile::Builder::new()
                    .prefix("fake-tldw-")
                    .tempdir()
                    .expect("fake_tldw: create restart marker dir");
                (dir.path().join("restarts"), Some(dir))
            }
        };
        let shared = Arc::new(build_shared(&config, marker));

        let std_listener =
            std::net::TcpListener::bind("127.0.0.1:0").expect("fake_tldw: bind 127.0.0.1:0");
        std_listener
            .set_nonblocking(true)
            .expect("fake_tldw: set_nonblocking");
        let addr = std_listener.local_addr().expect("fake_tldw: local_addr");

        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<(), String>>();
        let app = router(shared.clone());
        let listener_shared = shared.clone();
        let thread = std::thread::Builder::new()
            .name(format!("fake-tldw-{}", addr.port()))
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .thread_name("fake-tldw-worker")
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(format!("runtime: {e}")));
                        return;
                    }
                };
                rt.block_on(async move {
                    let listener = match TcpListener::from_std(std_listener) {
                        Ok(l) => l,
                        Err(e) => {
                            let _ = ready_tx.send(Err(format!("listener: {e}")));
                            return;
                        }
                    };
                    let listener = FaultListener {
                        inner: listener,
                        shared: listener_shared,
                    };
                    let _ = ready_tx.send(Ok(()));
                    let server = axum::serve(
                        listener,
                        app.into_make_service_with_connect_info::<ConnCtl>(),
                    )
                    .into_future();
                    tokio::select! {
                        _ = server => {}
                        _ = rx => {}
                    }
                });
                // Cancels in-flight connections (e.g. delayed requests).
                rt.shutdown_timeout(Duration::from_secs(2));
            })
            .expect("fake_tldw: spawn server thread");
        match ready_rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => panic!("fake_tldw: server failed to start: {e}"),
            Err(_) => panic!("fake_tldw: server thread died during start"),
        }
        FakeTldw {
            shared,
            addr,
            shutdown: Some(tx),
            thread: Some(thread),
            admin_token: config.admin_token,
            user_token: config.user_token,
            _marker_dir: marker_dir,
        }
    }

    /// `http://127.0.0.1:PORT` (no trailing slash).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The bound socket address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The configured admin token.
    pub fn admin_token(&self) -> &str {
        &self.admin_token
    }

    /// The configured non-admin token.
    pub fn user_token(&self) -> &str {
        &self.user_token
    }

    // -- state inspection and mutation ------------------------------------

    /// `None`: no such user; `Some(None)`: unlimited; `Some(Some(mb))`.
    pub fn quota(&self, username: &str) -> Option<Option<i64>> {
        let data = lock(&self.shared.data);
        data.by_name.get(username).map(|&i| data.users[i].quota_mb)
    }

    /// Sets a user's quota out of band. Panics for an unknown user.
    pub fn set_quota(&self, username: &str, quota: Option<i64>) {
        let mut data = lock(&self.shared.data);
        let i = *data
            .by_name
            .get(username)
            .unwrap_or_else(|| panic!("fake_tldw: no user {username:?}"));
        data.users[i].quota_mb = quota;
    }

    /// Storage used by a user, in MB.
    pub fn used_mb(&self, username: &str) -> Option<f64> {
        let data = lock(&self.shared.data);
        data.by_name.get(username).map(|&i| data.users[i].used_mb)
    }

    /// Sets a user's used storage out of band. Panics for an unknown user.
    pub fn set_used_mb(&self, username: &str, used_mb: f64) {
        let mut data = lock(&self.shared.data);
        let i = *data
            .by_name
            .get(username)
            .unwrap_or_else(|| panic!("fake_tldw: no user {username:?}"));
        data.users[i].used_mb = used_mb;
    }

    /// The numeric id of a user.
    pub fn user_id(&self, username: &str) -> Option<i64> {
        let data = lock(&self.shared.data);
        data.by_name.get(username).map(|&i| data.users[i].id)
    }

    /// Number of users (generated plus extra).
    pub fn user_count(&self) -> usize {
        lock(&self.shared.data).users.len()
    }

    /// Current days of a retention policy; `None` for an unknown key or a
    /// policy reported as `null`.
    pub fn retention_days(&self, key: &str) -> Option<i64> {
        self.retention_value(key).flatten()
    }

    /// Current days of a retention policy as the listing reports them:
    /// `None` for an unknown key, `Some(None)` for `null`.
    pub fn retention_value(&self, key: &str) -> Option<Option<i64>> {
        let data = lock(&self.shared.data);
        data.policies.iter().find(|p| p.key == key).map(|p| p.days)
    }

    /// Sets a policy's days out of band (no range check). Panics for an
    /// unknown key.
    pub fn set_retention_days(&self, key: &str, days: i64) {
        self.set_retention_value(key, Some(days));
    }

    /// Sets a policy's days out of band, `None` for `null`. Panics for an
    /// unknown key.
    pub fn set_retention_value(&self, key: &str, days: Option<i64>) {
        let mut data = lock(&self.shared.data);
        let policy = data
            .policies
            .iter_mut()
            .find(|p| p.key == key)
            .unwrap_or_else(|| panic!("fake_tldw: no retention policy {key:?}"));
        policy.days = days;
    }

    /// `(enable_registration, require_registration_code)`.
    pub fn registration(&self) -> (bool, bool) {
        let data = lock(&self.shared.data);
        (data.enable_registration, data.require_registration_code)
    }

    /// Sets the registration settings out of band.
    pub fn set_registration(&self, enable_registration: bool, require_registration_code: bool) {
        let mut data = lock(&self.shared.data);
        data.enable_registration = enable_registration;
        data.require_registration_code = require_registration_code;
    }

    // -- request log -------------------------------------------------------

    /// Every request received so far, in arrival order (health checks too).
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.shared.log).clone()
    }

    /// Requests whose method matches (`"*"` = any, case-insensitive) and
    /// whose path starts with `path_prefix`.
    pub fn request_count(&self, method: &str, path_prefix: &str) -> usize {
        lock(&self.shared.log)
            .iter()
            .filter(|r| route_matches(method, path_prefix, &r.method, &r.path))
            .count()
    }

    /// Forgets the recorded requests.
    pub fn clear_requests(&self) {
        lock(&self.shared.log).clear();
    }

    // -- fault injection ---------------------------------------------------

    fn add_rule(&self, method: &str, path_prefix: &str, kind: RuleKind) {
        lock(&self.shared.faults).rules.push(Rule {
            method: method.to_owned(),
            prefix: path_prefix.to_owned(),
            exact: false,
            kind,
        });
    }

    /// Answers every request whose method matches and whose path is exactly
    /// `path` with `status` and `{"detail":"injected_fault"}`, without running
    /// the handler, until [`FakeTldw::clear_persistent_fault`] or
    /// [`FakeTldw::clear_faults`]. Unlike the one-shot faults it never runs
    /// out, however often the client retries or an undo comes back.
    pub fn fail_persistently(&self, method: &str, path: &str, status: u16) {
        check_status(status);
        lock(&self.shared.faults).rules.push(Rule {
            method: method.to_owned(),
            prefix: path.to_owned(),
            exact: true,
            kind: RuleKind::FailPersistently { status },
        });
    }

    /// Removes the persistent faults of `method` and exactly `path`.
    pub fn clear_persistent_fault(&self, method: &str, path: &str) {
        lock(&self.shared.faults).rules.retain(|r| {
            !(matches!(r.kind, RuleKind::FailPersistently { .. })
                && r.method == method
                && r.prefix == path)
        });
    }

    /// Answers the next `count` matching requests with 200 and a JSON body of
    /// `bytes` bytes (`{"padding":"xxx…"}`, with its `Content-Length`),
    /// without running the handler.
    pub fn oversize_next(&self, method: &str, path_prefix: &str, bytes: usize, count: usize) {
        if count > 0 {
            self.add_rule(
                method,
                path_prefix,
                RuleKind::Oversize {
                    bytes,
                    remaining: count,
                },
            );
        }
    }

    /// Answers the next `count` matching requests with `status` and
    /// `{"detail":"injected_fault"}`, without running the handler.
    /// `method` `"*"` matches any method.
    pub fn fail_next(&self, method: &str, path_prefix: &str, status: u16, count: usize) {
        check_status(status);
        if count > 0 {
            self.add_rule(
                method,
                path_prefix,
                RuleKind::FailNext {
                    status,
                    remaining: count,
                },
            );
        }
    }

    /// Lets `successes` matching requests through, then answers every later
    /// matching request with `status` until [`FakeTldw::clear_faults`].
    pub fn fail_after(&self, method: &str, path_prefix: &str, successes: usize, status: u16) {
        check_status(status);
        self.add_rule(
            method,
            path_prefix,
            RuleKind::FailAfter {
                successes_left: successes,
                status,
            },
        );
    }

    /// Accepts the next `count` TCP connections and closes them at once,
    /// before reading anything. Affects new connections only: a client's
    /// pooled keep-alive connection is not touched (see
    /// [`FakeTldw::drop_next_requests`] for that).
    pub fn drop_next_connections(&self, count: usize) {
        self.shared
            .drop_connections
            .fetch_add(count, Ordering::SeqCst);
    }

    /// Closes the connection instead of answering the next `count` matching
    /// requests; the handler does not run (no state change).
    pub fn drop_next_requests(&self, method: &str, path_prefix: &str, count: usize) {
        if count > 0 {
            self.add_rule(
                method,
                path_prefix,
                RuleKind::DropRequests { remaining: count },
            );
        }
    }

    /// Runs the handler for the next `count` matching requests (the state
    /// changes) but closes the connection instead of sending the response.
    pub fn drop_next_responses(&self, method: &str, path_prefix: &str, count: usize) {
        if count > 0 {
            self.add_rule(
                method,
                path_prefix,
                RuleKind::DropResponses { remaining: count },
            );
        }
    }

    /// Number of connections closed by [`FakeTldw::drop_next_connections`].
    pub fn dropped_connections(&self) -> usize {
        self.shared.dropped_connections.load(Ordering::SeqCst)
    }

    /// Delays every matching request by `delay` before handling it (replaces
    /// an earlier delay for the same method and prefix; zero removes it).
    pub fn set_delay(&self, method: &str, path_prefix: &str, delay: Duration) {
        let mut faults = lock(&self.shared.faults);
        faults.rules.retain(|r| {
            !(matches!(r.kind, RuleKind::Delay(_)) && r.method == method && r.prefix == path_prefix)
        });
        if !delay.is_zero() {
            faults.rules.push(Rule {
                method: method.to_owned(),
                prefix: path_prefix.to_owned(),
                exact: false,
                kind: RuleKind::Delay(delay),
            });
        }
    }

    /// `false`: `/health` answers 503 `{"status":"unhealthy"}` and
    /// `/internal/ready` 503 `{"status":"not_ready"}`.
    pub fn set_healthy(&self, healthy: bool) {
        lock(&self.shared.faults).healthy = healthy;
    }

    /// `false`: `/internal/ready` answers 503 `{"status":"not_ready"}`.
    pub fn set_ready(&self, ready: bool) {
        lock(&self.shared.faults).ready = ready;
    }

    /// Unhealthy (health 503, ready 503) once the restart marker has at
    /// least `restarts` lines, until [`FakeTldw::healthy_again_after_restarts`]
    /// is reached if set.
    pub fn unhealthy_after_restarts(&self, restarts: usize) {
        lock(&self.shared.faults).unhealthy_after = Some(restarts);
    }

    /// Healthy again once the marker has at least `restarts` lines (use
    /// `n + 1` so that a rollback's restart restores health).
    pub fn healthy_again_after_restarts(&self, restarts: usize) {
        lock(&self.shared.faults).healthy_again_after = Some(restarts);
    }

    /// Removes every fault: fail/drop/delay rules, pending connection drops,
    /// restart-based health rules; healthy and ready again. Keeps the state
    /// and the request log.
    pub fn clear_faults(&self) {
        *lock(&self.shared.faults) = Faults::new();
        self.shared.drop_connections.store(0, Ordering::SeqCst);
    }

    // -- restarts ----------------------------------------------------------

    /// The restart marker file.
    pub fn restart_marker(&self) -> PathBuf {
        self.shared.marker.clone()
    }

    /// Lines in the restart marker (0 when it does not exist).
    pub fn restart_count(&self) -> usize {
        self.shared.restart_count()
    }

    /// `["sh", "-c", "echo restart >> '<marker>'"]`.
    pub fn restart_command(&self) -> Vec<String> {
        let quoted = self
            .shared
            .marker
            .display()
            .to_string()
            .replace('\'', r"'\''");
        vec![
            "sh".to_owned(),
            "-c".to_owned(),
            format!("echo restart >> '{quoted}'"),
        ]
    }
}

impl Drop for FakeTldw {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn check_status(status: u16) {
    assert!(
        (100..=999).contains(&status),
        "fake_tldw: invalid status {status}"
    );
}

fn build_shared(config: &FakeTldwConfig, marker: PathBuf) -> Shared {
    let mut users = Vec::with_capacity(config.users + config.extra_users.len());
    for i in 1..=config.users {
        let username = format!("user{i:04}");
        users.push(new_user(
            i as i64,
            username,
            if i % 100 == 0 { "admin" } else { "user" },
            i % 10 != 0,
            i % 3 == 0,
            (config.seed_quotas)(i),
            round2((config.seed_used_mb)(i)),
        ));
    }
    for (name, quota) in &config.extra_users {
        let id = users.len() as i64 + 1;
        users.push(new_user(id, name.clone(), "user", true, false, *quota, 0.0));
    }
    let mut by_id = HashMap::with_capacity(users.len());
    let mut by_name = HashMap::with_capacity(users.len());
    for (i, u) in users.iter().enumerate() {
        by_id.insert(u.id, i);
        let previous = by_name.insert(u.username.clone(), i);
        assert!(
            previous.is_none(),
            "fake_tldw: duplicate user {:?}",
            u.username
        );
    }
    let mut policies: Vec<Policy> = RETENTION_POLICIES
        .iter()
        .map(|&(key, days, min_days, max_days, description)| Policy {
            key,
            days: Some(days),
            min_days,
            max_days,
            description,
        })
        .collect();
    for (key, days) in &config.retention_days {
        let policy = policies
            .iter_mut()
            .find(|p| p.key == key)
            .unwrap_or_else(|| panic!("fake_tldw: no retention policy {key:?}"));
        policy.days = Some(*days);
    }
    for key in &config.retention_null {
        let policy = policies
            .iter_mut()
            .find(|p| p.key == key)
            .unwrap_or_else(|| panic!("fake_tldw: no retention policy {key:?}"));
        policy.days = None;
    }

    let mut tokens = HashMap::new();
    tokens.insert(
        config.admin_token.clone(),
        Principal {
            name: "admin".to_owned(),
            admin: true,
        },
    );
    tokens.insert(
        config.user_token.clone(),
        Principal {
            name: "user".to_owned(),
            admin: false,
        },
    );
    for (token, principal) in &config.extra_tokens {
        tokens.insert(token.clone(), principal.clone());
    }

    Shared {
        data: Mutex::new(Data {
            users,
            by_id,
            by_name,
            policies,
            enable_registration: config.enable_registration,
            require_registration_code: config.require_registration_code,
        }),
        faults: Mutex::new(Faults::new()),
        log: Mutex::new(Vec::new()),
        drop_connections: AtomicUsize::new(0),
        dropped_connections: AtomicUsize::new(0),
        tokens,
        secret: random_secret(),
        ttl: config.signature_ttl,
        marker,
        auth_mode: config.auth_mode.clone(),
        profile: config.profile.clone(),
    }
}

fn new_user(
    id: i64,
    username: String,
    role: &'static str,
    is_active: bool,
    mfa_enabled: bool,
    quota_mb: Option<i64>,
    used_mb: f64,
) -> UserRec {
    let email = if username.contains('@') {
        username.clone()
    } else {
        format!("{username}@example.com")
    };
    // 2026-01-01T00:00:00Z plus one hour per id.
    let created = 1_767_225_600 + id as u64 * 3600;
    UserRec {
        id,
        uuid: fake_uuid(&username),
        username_lc: username.to_lowercase(),
        email_lc: email.to_lowercase(),
        username,
        email,
        role,
        is_active,
        is_verified: true,
        mfa_enabled,
        created_at: iso8601(created * 1000, false),
        quota_mb,
        used_mb,
    }
}

fn random_secret() -> [u8; 32] {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let mut h = Sha256::new();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    h.update(now.as_nanos().to_le_bytes());
    h.update(std::process::id().to_le_bytes());
    h.update(COUNTER.fetch_add(1, Ordering::Relaxed).to_le_bytes());
    let stack_probe = 0u8;
    h.update((&stack_probe as *const u8 as usize).to_le_bytes());
    h.update(format!("{:?}", std::thread::current().id()).as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(h.finalize().as_slice());
    out
}

fn fake_uuid(username: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"fake-tldw-user:");
    h.update(username.as_bytes());
    let digest = h.finalize();
    let mut b = [0u8; 16];
    b.copy_from_slice(&digest.as_slice()[..16]);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let x = hex(&b);
    format!(
        "{}-{}-{}-{}-{}",
        &x[0..8],
        &x[8..12],
        &x[12..16],
        &x[16..20],
        &x[20..32]
    )
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 0xf) as usize] as char);
    }
    s
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as u64
}

/// UTC ISO 8601 (`2026-01-01T00:00:00Z`, or with `.mmm` when `millis`).
fn iso8601(unix_ms: u64, millis: bool) -> String {
    let secs = (unix_ms / 1000) as i64;
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let (h, m, s) = (sod / 3600, sod % 3600 / 60, sod % 60);
    if millis {
        format!(
            "{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}.{:03}Z",
            unix_ms % 1000
        )
    } else {
        format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}Z")
    }
}

// ---------------------------------------------------------------------------
// Listener with dropped connections and killable connections
// ---------------------------------------------------------------------------

struct FaultListener {
    inner: TcpListener,
    shared: Arc<Shared>,
}

impl Listener for FaultListener {
    type Io = FaultIo;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (FaultIo, SocketAddr) {
        loop {
            match self.inner.accept().await {
                Ok((stream, addr)) => {
                    let take = self.shared.drop_connections.fetch_update(
                        Ordering::SeqCst,
                        Ordering::SeqCst,
                        |n| n.checked_sub(1),
                    );
                    if take.is_ok() {
                        self.shared
                            .dropped_connections
                            .fetch_add(1, Ordering::SeqCst);
                        drop(stream);
                        continue;
                    }
                    let _ = stream.set_nodelay(true);
                    let io = FaultIo {
                        inner: stream,
                        killed: Arc::new(AtomicBool::new(false)),
                    };
                    return (io, addr);
                }
                Err(e) => {
                    if !matches!(
                        e.kind(),
                        io::ErrorKind::ConnectionRefused
                            | io::ErrorKind::ConnectionAborted
                            | io::ErrorKind::ConnectionReset
                    ) {
                        // e.g. EMFILE: back off briefly, as axum does.
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}

/// A TCP stream that reads EOF and fails writes once killed, so hyper closes
/// the connection without sending the pending response.
struct FaultIo {
    inner: TcpStream,
    killed: Arc<AtomicBool>,
}

fn killed_error() -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, "fake_tldw: connection dropped")
}

impl AsyncRead for FaultIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.killed.load(Ordering::SeqCst) {
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for FaultIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.killed.load(Ordering::SeqCst) {
            return Poll::Ready(Err(killed_error()));
        }
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.killed.load(Ordering::SeqCst) {
            return Poll::Ready(Err(killed_error()));
        }
        Pin::new(&mut this.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.killed.load(Ordering::SeqCst) {
            return Poll::Ready(Err(killed_error()));
        }
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// Per-connection kill switch, handed to requests as `ConnectInfo<ConnCtl>`.
#[derive(Clone)]
struct ConnCtl(Arc<AtomicBool>);

impl Connected<IncomingStream<'_, FaultListener>> for ConnCtl {
    fn connect_info(stream: IncomingStream<'_, FaultListener>) -> Self {
        ConnCtl(stream.io().killed.clone())
    }
}

// ---------------------------------------------------------------------------
// HTTP layer
// ---------------------------------------------------------------------------

type Shr = State<Arc<Shared>>;

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/internal/ready", get(ready))
        .route("/api/v1/admin/users", get(list_users))
        .route(
            "/api/v1/admin/storage-quotas/users/{user_id}",
            get(get_quota).put(put_quota),
        )
        .route("/api/v1/admin/retention-policies", get(list_policies))
        .route(
            "/api/v1/admin/retention-policies/{key}/preview",
            post(preview_policy),
        )
        .route(
            "/api/v1/admin/retention-policies/{key}",
            axum::routing::put(put_policy),
        )
        .route(
            "/api/v1/admin/registration-settings",
            get(get_registration).post(post_registration),
        )
        .fallback(|| async { detail(StatusCode::NOT_FOUND, "Not Found") })
        .method_not_allowed_fallback(|| async {
            detail(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed")
        })
        .layer(middleware::from_fn_with_state(shared.clone(), fault_layer))
        .with_state(shared)
}

async fn fault_layer(State(shared): Shr, req: Request, next: Next) -> Response {
    let (parts, body) = req.into_parts();
    let bytes = match axum::body::to_bytes(body, 64 << 20).await {
        Ok(b) => b,
        Err(_) => {
            return detail(
                StatusCode::BAD_REQUEST,
                "There was an error parsing the body",
            );
        }
    };
    let method = parts.method.as_str().to_owned();
    let path = parts.uri.path().to_owned();
    let conn = parts
        .extensions
        .get::<ConnectInfo<ConnCtl>>()
        .map(|c| c.0.0.clone());
    let idx = shared.record(RecordedRequest {
        method: method.clone(),
        path: path.clone(),
        query: parts.uri.query().map(str::to_owned),
        body: String::from_utf8_lossy(&bytes).into_owned(),
        auth: auth_kind(&parts.headers),
        status: None,
        injected: false,
    });
    let (delay, action) = shared.decide(&method, &path);
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let req = Request::from_parts(parts, Body::from(bytes));
    let kill = |conn: Option<Arc<AtomicBool>>| {
        if let Some(flag) = conn {
            flag.store(true, Ordering::SeqCst);
        }
    };
    match action {
        Action::Pass => {
            let resp = next.run(req).await;
            shared.finish(idx, Some(resp.status().as_u16()), false);
            resp
        }
        Action::Fail(status) => {
            shared.finish(idx, Some(status), true);
            let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            detail(code, "injected_fault")
        }
        Action::DropRequest => {
            kill(conn);
            shared.finish(idx, None, true);
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
        Action::DropResponse => {
            let _ = next.run(req).await;
            kill(conn);
            shared.finish(idx, None, true);
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
        Action::Oversize(bytes) => {
            shared.finish(idx, Some(200), true);
            oversized(bytes)
        }
    }
}

/// `{"padding":"xxx…"}` of exactly `bytes` bytes (at least the braces).
fn oversized(bytes: usize) -> Response {
    let overhead = r#"{"padding":""}"#.len();
    let mut text = String::with_capacity(bytes.max(overhead));
    text.push_str(r#"{"padding":""#);
    text.extend(std::iter::repeat_n('x', bytes.saturating_sub(overhead)));
    text.push_str(r#""}"#);
    let mut resp = (StatusCode::OK, text).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

fn auth_kind(headers: &HeaderMap) -> AuthKind {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.trim()
                .get(..7)
                .is_some_and(|s| s.eq_ignore_ascii_case("bearer "))
        });
    let api_key = headers.contains_key("x-api-key");
    match (bearer, api_key) {
        (Some(true), true) => AuthKind::Both,
        (Some(true), false) => AuthKind::Bearer,
        (_, true) => AuthKind::ApiKey,
        (Some(false), false) => AuthKind::Other,
        (None, false) => AuthKind::None,
    }
}

fn json_response(status: StatusCode, body: &Value) -> Response {
    let mut resp = (status, body.to_string()).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

fn detail(status: StatusCode, msg: &str) -> Response {
    json_response(status, &json!({ "detail": msg }))
}

fn unauthorized(msg: &str) -> Response {
    let mut resp = detail(StatusCode::UNAUTHORIZED, msg);
    resp.headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    resp
}

fn no_store(mut resp: Response) -> Response {
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

// -- FastAPI-style validation ----------------------------------------------

fn verr(typ: &str, loc: Value, msg: &str, input: Value) -> Value {
    json!({ "type": typ, "loc": loc, "msg": msg, "input": input })
}

fn verr_ctx(typ: &str, loc: Value, msg: &str, input: Value, ctx: Value) -> Value {
    json!({ "type": typ, "loc": loc, "msg": msg, "input": input, "ctx": ctx })
}

fn unprocessable(errors: Vec<Value>) -> Response {
    json_response(
        StatusCode::UNPROCESSABLE_ENTITY,
        &json!({ "detail": errors }),
    )
}

/// Parses a JSON object body; pushes the FastAPI error and returns `None`
/// when it is absent, malformed or not an object.
fn parse_body(bytes: &Bytes, errors: &mut Vec<Value>) -> Option<serde_json::Map<String, Value>> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        errors.push(verr(
            "missing",
            json!(["body"]),
            "Field required",
            Value::Null,
        ));
        return None;
    }
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(map)) => Some(map),
        Ok(other) => {
            errors.push(verr(
                "model_attributes_type",
                json!(["body"]),
                "Input should be a valid dictionary or object to extract fields from",
                other,
            ));
            None
        }
        Err(e) => {
            errors.push(verr_ctx(
                "json_invalid",
                json!(["body", e.column().saturating_sub(1)]),
                "JSON decode error",
                json!({}),
                json!({ "error": e.to_string() }),
            ));
            None
        }
    }
}

/// A strict integer field (JSON integers only). `nullable` accepts `null`
/// (returned as `Some(None)`); `min` is a `ge` constraint.
fn int_field(
    body: &serde_json::Map<String, Value>,
    name: &str,
    nullable: bool,
    min: Option<i64>,
    errors: &mut Vec<Value>,
) -> Option<Option<i64>> {
    let loc = json!(["body", name]);
    let Some(v) = body.get(name) else {
        errors.push(verr(
            "missing",
            loc,
            "Field required",
            Value::Object(body.clone()),
        ));
        return None;
    };
    match v {
        Value::Null if nullable => Some(None),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                if let Some(min) = min.filter(|m| i < *m) {
                    errors.push(verr_ctx(
                        "greater_than_equal",
                        loc,
                        &format!("Input should be greater than or equal to {min}"),
                        v.clone(),
                        json!({ "ge": min }),
                    ));
                    return None;
                }
                Some(Some(i))
            } else if n.is_f64() {
                errors.push(verr(
                    "int_from_float",
                    loc,
                    "Input should be a valid integer, got a number with a fractional part",
                    v.clone(),
                ));
                None
            } else {
                errors.push(verr(
                    "int_parsing_size",
                    loc,
                    "Unable to parse input string as an integer, exceeded maximum size",
                    v.clone(),
                ));
                None
            }
        }
        _ => {
            errors.push(verr(
                "int_type",
                loc,
                "Input should be a valid integer",
                v.clone(),
            ));
            None
        }
    }
}

fn parse_path_int(raw: &str, name: &str, errors: &mut Vec<Value>) -> Option<i64> {
    match raw.trim().parse::<i64>() {
        Ok(i) => Some(i),
        Err(_) => {
            errors.push(verr(
                "int_parsing",
                json!(["path", name]),
                "Input should be a valid integer, unable to parse string as an integer",
                json!(raw),
            ));
            None
        }
    }
}

// -- health ------------------------------------------------------------------

async fn health(State(shared): Shr) -> Response {
    let (healthy, _) = shared.health();
    no_store(if healthy {
        json_response(StatusCode::OK, &json!({ "status": "ok" }))
    } else {
        json_response(
            StatusCode::SERVICE_UNAVAILABLE,
            &json!({ "status": "unhealthy" }),
        )
    })
}

async fn ready(State(shared): Shr) -> Response {
    let (_, ready) = shared.health();
    no_store(if ready {
        json_response(StatusCode::OK, &json!({ "status": "ready" }))
    } else {
        json_response(
            StatusCode::SERVICE_UNAVAILABLE,
            &json!({ "status": "not_ready" }),
        )
    })
}

// -- users -------------------------------------------------------------------

fn user_json(u: &UserRec) -> Value {
    json!({
        "id": u.id,
        "uuid": u.uuid,
        "username": u.username,
        "email": u.email,
        "role": u.role,
        "is_active": u.is_active,
        "is_verified": u.is_verified,
        "mfa_enabled": u.mfa_enabled,
        "created_at": u.created_at,
        "last_login": Value::Null,
        "storage_quota_mb": u.quota_mb,
        "storage_used_mb": u.used_mb,
    })
}

fn query_int(
    q: &HashMap<String, String>,
    name: &str,
    default: i64,
    min: i64,
    max: Option<i64>,
    errors: &mut Vec<Value>,
) -> i64 {
    let Some(raw) = q.get(name) else {
        return default;
    };
    let loc = json!(["query", name]);
    let Ok(v) = raw.trim().parse::<i64>() else {
        errors.push(verr(
            "int_parsing",
            loc,
            "Input should be a valid integer, unable to parse string as an integer",
            json!(raw),
        ));
        return default;
    };
    if v < min {
        errors.push(verr_ctx(
            "greater_than_equal",
            loc,
            &format!("Input should be greater than or equal to {min}"),
            json!(raw),
            json!({ "ge": min }),
        ));
    } else if let Some(max) = max.filter(|m| v > *m) {
        errors.push(verr_ctx(
            "less_than_equal",
            loc,
            &format!("Input should be less than or equal to {max}"),
            json!(raw),
            json!({ "le": max }),
        ));
    }
    v
}

fn parse_bool(raw: &str) -> Option<bool> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" | "t" | "y" => Some(true),
        "false" | "0" | "no" | "off" | "f" | "n" => Some(false),
        _ => None,
    }
}

async fn list_users(
    State(shared): Shr,
    headers: HeaderMap,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Response {
    if let Err(e) = shared.principal(&headers) {
        return e.into_response();
    }
    // Like Starlette, the last occurrence of a repeated parameter wins.
    let q: HashMap<String, String> = pairs.into_iter().collect();
    let mut errors = Vec::new();
    let page = query_int(&q, "page", 1, 1, None, &mut errors);
    let limit = query_int(&q, "limit", 20, 1, Some(100), &mut errors);
    let is_active = match q.get("is_active") {
        None => None,
        Some(raw) => match parse_bool(raw) {
            Some(b) => Some(b),
            None => {
                errors.push(verr(
                    "bool_parsing",
                    json!(["query", "is_active"]),
                    "Input should be a valid boolean, unable to interpret input",
                    json!(raw),
                ));
                None
            }
        },
    };
    if !errors.is_empty() {
        return unprocessable(errors);
    }
    let search = q
        .get("search")
        .filter(|s| !s.is_empty())
        .map(|s| s.to_lowercase());
    let role = q.get("role").filter(|s| !s.is_empty());

    let data = lock(&shared.data);
    let offset = usize::try_from((page - 1).saturating_mul(limit)).unwrap_or(usize::MAX);
    let limit_us = limit as usize;
    let (total, users): (usize, Vec<Value>) =
        if search.is_none() && role.is_none() && is_active.is_none() {
            let total = data.users.len();
            let start = offset.min(total);
            let end = start.saturating_add(limit_us).min(total);
            (
                total,
                data.users[start..end].iter().map(user_json).collect(),
            )
        } else {
            let matching: Vec<&UserRec> = data
                .users
                .iter()
                .filter(|u| {
                    search
                        .as_ref()
                        .is_none_or(|s| u.username_lc.contains(s) || u.email_lc.contains(s))
                        && role.is_none_or(|r| u.role == r)
                        && is_active.is_none_or(|a| u.is_active == a)
                })
                .collect();
            let users = matching
                .iter()
                .skip(offset)
                .take(limit_us)
                .map(|u| user_json(u))
                .collect();
            (matching.len(), users)
        };
    drop(data);
    let pages = (total as i64 + limit - 1) / limit;
    json_response(
        StatusCode::OK,
        &json!({
            "users": users,
            "total": total,
            "page": page,
            "limit": limit,
            "pages": pages,
            "pagination": {
                "page": page,
                "limit": limit,
                "total": total,
                "pages": pages,
                "has_next": page < pages,
                "has_prev": page > 1,
            },
        }),
    )
}

// -- storage quotas ------------------------------------------------------------

fn quota_json(quota_mb: Option<i64>, used_mb: f64) -> Value {
    match quota_mb {
        None => json!({
            "quota_mb": Value::Null,
            "used_mb": used_mb,
            "remaining_mb": Value::Null,
            "usage_pct": Value::Null,
            "at_soft_limit": false,
            "at_hard_limit": false,
            "has_quota": false,
        }),
        Some(q) => {
            let qf = q as f64;
            let pct = if q == 0 { 100.0 } else { used_mb / qf * 100.0 };
            json!({
                "quota_mb": q,
                "used_mb": used_mb,
                "remaining_mb": round2((qf - used_mb).max(0.0)),
                "usage_pct": round2(pct),
                "at_soft_limit": q == 0 || used_mb >= 0.8 * qf,
                "at_hard_limit": q == 0 || used_mb >= qf,
                "has_quota": true,
            })
        }
    }
}

async fn get_quota(
    State(shared): Shr,
    headers: HeaderMap,
    UrlPath(raw_id): UrlPath<String>,
) -> Response {
    if let Err(e) = shared.principal(&headers) {
        return e.into_response();
    }
    let mut errors = Vec::new();
    let Some(id) = parse_path_int(&raw_id, "user_id", &mut errors) else {
        return unprocessable(errors);
    };
    let data = lock(&shared.data);
    match data.by_id.get(&id) {
        Some(&i) => {
            let u = &data.users[i];
            json_response(StatusCode::OK, &quota_json(u.quota_mb, u.used_mb))
        }
        None => detail(StatusCode::NOT_FOUND, "User not found"),
    }
}

async fn put_quota(
    State(shared): Shr,
    headers: HeaderMap,
    UrlPath(raw_id): UrlPath<String>,
    body: Bytes,
) -> Response {
    if let Err(e) = shared.principal(&headers) {
        return e.into_response();
    }
    let mut errors = Vec::new();
    let id = parse_path_int(&raw_id, "user_id", &mut errors);
    let quota = parse_body(&body, &mut errors)
        .and_then(|b| int_field(&b, "quota_mb", true, Some(0), &mut errors));
    let (Some(id), Some(quota), true) = (id, quota, errors.is_empty()) else {
        return unprocessable(errors);
    };
    let mut data = lock(&shared.data);
    match data.by_id.get(&id).copied() {
        Some(i) => {
            let u = &mut data.users[i];
            u.quota_mb = quota;
            json_response(StatusCode::OK, &quota_json(u.quota_mb, u.used_mb))
        }
        None => detail(StatusCode::NOT_FOUND, "User not found"),
    }
}

// -- retention policies ----------------------------------------------------------

/// `RetentionPolicy` of `admin_schemas.py`: `key`, `days` (`int | None`),
/// `description`.
fn policy_json(p: &Policy) -> Value {
    json!({
        "key": p.key,
        "days": p.days,
        "description": p.description,
    })
}

/// Deterministic row volume per retained day, for the preview's counts.
fn rows_per_day(key: &str) -> i64 {
    match key {
        "audit_logs" => 1_200,
        "usage_logs" => 5_000,
        "llm_usage_logs" => 2_500,
        "usage_daily" | "llm_usage_daily" => 40,
        "sessions" => 300,
        "privilege_snapshots" => 60,
        _ => 10,
    }
}

/// `_current_retention_days`: the live value, `0` when it is unset (`null`).
fn current_days(p: &Policy) -> i64 {
    p.days.unwrap_or(0)
}

/// `_effective_retention_days`: the weekly privilege-snapshot window is never
/// below the daily one (when that is set), so a lower request is raised.
fn effective_days(policies: &[Policy], key: &str, requested: i64) -> i64 {
    if key != "privilege_snapshots_weekly" {
        return requested;
    }
    match policies
        .iter()
        .find(|p| p.key == "privilege_snapshots")
        .and_then(|p| p.days)
    {
        Some(primary) if requested < primary => primary,
        _ => requested,
    }
}

/// An integer body field with pydantic's `Field(..., ge=1, le=3650)`.
fn days_field(
    body: &serde_json::Map<String, Value>,
    name: &str,
    errors: &mut Vec<Value>,
) -> Option<i64> {
    let value = int_field(body, name, false, Some(1), errors).flatten()?;
    if value > 3650 {
        errors.push(verr_ctx(
            "less_than_equal",
            json!(["body", name]),
            "Input should be less than or equal to 3650",
            json!(value),
            json!({ "le": 3650 }),
        ));
        return None;
    }
    Some(value)
}

async fn list_policies(State(shared): Shr, headers: HeaderMap) -> Response {
    if let Err(e) = shared.principal(&headers) {
        return e.into_response();
    }
    let data = lock(&shared.data);
    let policies: Vec<Value> = data.policies.iter().map(policy_json).collect();
    json_response(StatusCode::OK, &json!({ "policies": policies }))
}

/// `POST /retention-policies/{key}/preview`, as `admin_data_ops.py`
/// (`preview_retention_policy`) and the service of the same name answer it:
/// 422 for a body outside `RetentionPolicyPreviewRequest` (both fields
/// `1..=3650`), 404 `unknown_policy`, 400 `invalid_range` (the policy's own
/// range), 409 `stale_current_days` when `current_days` is not the live value
/// (`0` for `null`, which no request can match), else the counts and a
/// signature over the live current days and the effective new days.
async fn preview_policy(
    State(shared): Shr,
    headers: HeaderMap,
    UrlPath(key): UrlPath<String>,
    body: Bytes,
) -> Response {
    let principal = match shared.principal(&headers) {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let mut errors = Vec::new();
    let fields = parse_body(&body, &mut errors).map(|b| {
        (
            days_field(&b, "current_days", &mut errors),
            days_field(&b, "days", &mut errors),
        )
    });
    let (Some((Some(requested_current), Some(days))), true) = (fields, errors.is_empty()) else {
        return unprocessable(errors);
    };
    let data = lock(&shared.data);
    let Some(policy) = data.policies.iter().find(|p| p.key == key) else {
        return detail(StatusCode::NOT_FOUND, "unknown_policy");
    };
    if days < policy.min_days || days > policy.max_days {
        return detail(StatusCode::BAD_REQUEST, "invalid_range");
    }
    let current = current_days(policy);
    if requested_current != current {
        return detail(StatusCode::CONFLICT, "stale_current_days");
    }
    let new_days = effective_days(&data.policies, policy.key, days);
    let per_day = rows_per_day(policy.key);
    let removed = if new_days < current {
        (current - new_days) * per_day
    } else {
        0
    };
    let (audit_log_entries, job_records) = match policy.key {
        "audit_logs" => (removed, 0),
        "sessions" => (0, 0),
        _ => (0, removed),
    };
    let notes: Vec<&str> = if new_days < current && policy.key == "sessions" {
        vec!["No additional backend preview counts are modeled for this policy."]
    } else {
        Vec::new()
    };
    let signature = shared.sign(policy.key, &principal.name, current, new_days);
    json_response(
        StatusCode::OK,
        &json!({
            "key": policy.key,
            "current_days": current,
            "new_days": new_days,
            "counts": {
                "audit_log_entries": audit_log_entries,
                "job_records": job_records,
                "backup_files": 0,
            },
            "preview_signature": signature,
            "notes": notes,
        }),
    )
}

/// `PUT /retention-policies/{key}`, as `admin_data_ops.py`
/// (`update_retention_policy`) answers it: 422 for a body outside
/// `RetentionPolicyUpdateRequest` (`days` `1..=3650`, `preview_signature` a
/// string of 1..=2048 characters or absent/null); then
/// `verify_retention_preview_signature`: 400 `preview_signature_required`,
/// 400 `invalid_preview_signature` (not ours, or not bound to this key, the
/// live current days, the effective new days and this principal), 400
/// `expired_preview_signature`, 404 `unknown_policy`; then
/// `update_retention_policy`: 400 `invalid_range`. Never 409: a current value
/// that moved since the preview fails the binding.
async fn put_policy(
    State(shared): Shr,
    headers: HeaderMap,
    UrlPath(key): UrlPath<String>,
    body: Bytes,
) -> Response {
    let principal = match shared.principal(&headers) {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let mut errors = Vec::new();
    let fields = parse_body(&body, &mut errors).map(|b| {
        let days = days_field(&b, "days", &mut errors);
        let signature = match b.get("preview_signature") {
            None | Some(Value::Null) => Some(None),
            Some(Value::String(s)) if s.is_empty() => {
                errors.push(verr_ctx(
                    "string_too_short",
                    json!(["body", "preview_signature"]),
                    "String should have at least 1 character",
                    json!(s),
                    json!({ "min_length": 1 }),
                ));
                None
            }
            Some(Value::String(s)) if s.chars().count() > 2048 => {
                errors.push(verr_ctx(
                    "string_too_long",
                    json!(["body", "preview_signature"]),
                    "String should have at most 2048 characters",
                    json!(s),
                    json!({ "max_length": 2048 }),
                ));
                None
            }
            Some(Value::String(s)) => Some(Some(s.clone())),
            Some(other) => {
                errors.push(verr(
                    "string_type",
                    json!(["body", "preview_signature"]),
                    "Input should be a valid string",
                    other.clone(),
                ));
                None
            }
        };
        (days, signature)
    });
    let (Some((Some(days), Some(signature))), true) = (fields, errors.is_empty()) else {
        return unprocessable(errors);
    };
    let Some(signature) = signature else {
        return detail(StatusCode::BAD_REQUEST, "preview_signature_required");
    };
    let invalid = || detail(StatusCode::BAD_REQUEST, "invalid_preview_signature");
    let Some(payload) = shared.decode_signature(&signature) else {
        return invalid();
    };
    if payload.get("v").and_then(Value::as_str) != Some("v1") {
        return invalid();
    }
    let expires = payload.get("e").and_then(Value::as_u64).unwrap_or(0);
    if expires < now_ms() {
        return detail(StatusCode::BAD_REQUEST, "expired_preview_signature");
    }
    let mut data = lock(&shared.data);
    let Some(index) = data.policies.iter().position(|p| p.key == key) else {
        return detail(StatusCode::NOT_FOUND, "unknown_policy");
    };
    let current = current_days(&data.policies[index]);
    let new_days = effective_days(&data.policies, &key, days);
    // `int(payload.get("c") or -1)`: a zero (unset) current day count never
    // matches, so a policy reported as `null` cannot be changed.
    let bound = |name: &str| {
        payload
            .get(name)
            .and_then(Value::as_i64)
            .filter(|v| *v != 0)
            .unwrap_or(-1)
    };
    if payload.get("p").and_then(Value::as_str) != Some(key.as_str())
        || bound("c") != current
        || bound("n") != new_days
        || payload.get("a").and_then(Value::as_str) != Some(principal.name.as_str())
    {
        return invalid();
    }
    let policy = &mut data.policies[index];
    if days < policy.min_days || days > policy.max_days {
        return detail(StatusCode::BAD_REQUEST, "invalid_range");
    }
    policy.days = Some(new_days);
    json_response(StatusCode::OK, &policy_json(policy))
}

// -- registration settings -----------------------------------------------------

fn registration_json(shared: &Shared, data: &Data) -> Value {
    json!({
        "enable_registration": data.enable_registration,
        "require_registration_code": data.require_registration_code,
        "auth_mode": shared.auth_mode,
        "profile": shared.profile,
        "self_registration_allowed": data.enable_registration && shared.auth_mode == "multi_user",
    })
}

async fn get_registration(State(shared): Shr, headers: HeaderMap) -> Response {
    if let Err(e) = shared.principal(&headers) {
        return e.into_response();
    }
    let data = lock(&shared.data);
    json_response(StatusCode::OK, &registration_json(&shared, &data))
}

async fn post_registration(State(shared): Shr, headers: HeaderMap, body: Bytes) -> Response {
    if let Err(e) = shared.principal(&headers) {
        return e.into_response();
    }
    let mut errors = Vec::new();
    let Some(map) = parse_body(&body, &mut errors) else {
        return unprocessable(errors);
    };
    let mut field = |name: &str| match map.get(name) {
        None | Some(Value::Null) => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(other) => {
            errors.push(verr(
                "bool_type",
                json!(["body", name]),
                "Input should be a valid boolean",
                other.clone(),
            ));
            None
        }
    };
    let enable = field("enable_registration");
    let require = field("require_registration_code");
    if !errors.is_empty() {
        return unprocessable(errors);
    }
    if enable.is_none() && require.is_none() {
        return detail(
            StatusCode::BAD_REQUEST,
            "At least one of enable_registration or require_registration_code must be provided",
        );
    }
    let mut data = lock(&shared.data);
    if let Some(b) = enable {
        data.enable_registration = b;
    }
    if let Some(b) = require {
        data.require_registration_code = b;
    }
    json_response(StatusCode::OK, &registration_json(&shared, &data))
}
