//! The transport policy of the admin API client: how to reach the server ([`ApiConfig`]), the
//! reqwest client [`TldwApi::new`] builds, requests with timeouts, bounded retries and
//! exponential backoff, bounded concurrency, response size limits, and the mapping of every HTTP
//! outcome to an [`ApiError`] that names the request and never the token.

use std::fmt;
use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderName, HeaderValue, LOCATION};
use reqwest::{Method, StatusCode, Url};
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::task::JoinSet;

use super::{Inner, TldwApi};
use crate::spec::types::ApiAuth;

/// Backoff between attempts doubles from `ApiConfig::backoff` up to this.
pub(super) const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// The largest response body read from the admin API, by default: no documented reply comes
/// near it (a page of 100 users is a few tens of KiB), and a bigger one is a misrouted request
/// or a misbehaving proxy that would otherwise be held in memory whole.
pub const DEFAULT_MAX_RESPONSE_BYTES: u64 = 8 << 20;
/// Server-provided text quoted in an error is cut to this many characters.
pub(super) const DETAIL_MAX_CHARS: usize = 500;
pub(super) const REDACTED: &str = "(redacted)";

/// How to reach the admin API. `Debug` never shows the token.
#[derive(Clone)]
pub struct ApiConfig {
    /// Base URL, such as `https://tldw.example.org` (a trailing slash is tolerated).
    pub url: String,
    /// The admin token (JWT access token or API key).
    pub token: String,
    /// Which header carries the token.
    pub auth: ApiAuth,
    /// Requests in flight at once when many users are read or written. Default 16.
    pub concurrency: usize,
    /// Timeout of one request, response body included. Default 10 s.
    pub timeout: Duration,
    /// Timeout of establishing a connection. Default 3 s.
    pub connect_timeout: Duration,
    /// Attempts after the first one for transient failures. Default 3.
    pub retries: u32,
    /// Wait before the first retry; doubles for each later one (capped at 5 s). Default 100 ms.
    pub backoff: Duration,
    /// A response body larger than this is refused unread. Default
    /// [`DEFAULT_MAX_RESPONSE_BYTES`] (8 MiB).
    pub max_response_bytes: u64,
}

impl ApiConfig {
    /// A configuration with the defaults above.
    pub fn new(url: impl Into<String>, token: impl Into<String>, auth: ApiAuth) -> ApiConfig {
        ApiConfig {
            url: url.into(),
            token: token.into(),
            auth,
            concurrency: 16,
            timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(3),
            retries: 3,
            backoff: Duration::from_millis(100),
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
        }
    }
}

impl fmt::Debug for ApiConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiConfig")
            .field("url", &self.url)
            .field("token", &REDACTED)
            .field("auth", &self.auth)
            .field("concurrency", &self.concurrency)
            .field("timeout", &self.timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("retries", &self.retries)
            .field("backoff", &self.backoff)
            .field("max_response_bytes", &self.max_response_bytes)
            .finish()
    }
}

/// One request, as errors name it: method and full URL (never headers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub method: String,
    pub url: String,
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.method, self.url)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("invalid tldw API URL `{url}`: {reason}")]
    InvalidUrl { url: String, reason: &'static str },
    #[error("the tldw API token {reason}")]
    InvalidToken { reason: &'static str },
    #[error("cannot set up the HTTP client for {url}")]
    Client {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("{target}: the token was refused (HTTP 401)")]
    Unauthorized { target: Target },
    #[error("{target}: the principal lacks the admin role (HTTP 403)")]
    Forbidden { target: Target },
    #[error("{target}: the server is too old or the route is disabled (HTTP 404)")]
    RouteNotFound { target: Target },
    #[error("{target}: the server has no user with id {user_id} (HTTP 404)")]
    UnknownUser { target: Target, user_id: i64 },
    #[error("{target}: the server has no retention policy `{key}` (HTTP 404)")]
    UnknownRetentionKey { target: Target, key: String },
    #[error("`{key}` cannot be a retention policy key")]
    InvalidRetentionKey { key: String },
    #[error(
        "{target}: {days} days is outside the range the server allows for retention policy `{key}` (HTTP 400)"
    )]
    RetentionOutOfRange {
        target: Target,
        key: String,
        days: u64,
    },
    #[error(
        "retention policy `{key}` moved on the server: the change was planned from {expected} days, the server now has {actual}"
    )]
    StaleRetention {
        key: String,
        expected: u64,
        actual: u64,
    },
    #[error("{target}: the server refused a fresh retention preview signature too: {detail}")]
    SignatureRejected { target: Target, detail: String },
    #[error(
        "{target}: the server would keep {new_days} days for retention policy `{key}`, not the {days} asked for (tldw keeps weekly privilege snapshots at least as long as `privilege_snapshots`); nothing was changed"
    )]
    RetentionRaised {
        target: Target,
        key: String,
        days: u64,
        new_days: u64,
    },
    #[error(
        "{target}: the server reports no days for retention policy `{key}` (null); tldw_server then compares a preview against 0 while requiring current_days >= 1, so the admin API cannot change this policy: set it in the .env and restart the server"
    )]
    RetentionUnset { target: Target, key: String },
    #[error(
        "{target}: the response is larger than {}, the most this client reads from the admin API; refused unread",
        show_bytes(*limit)
    )]
    ResponseTooLarge { target: Target, limit: u64 },
    #[error("{target}: the server rejected the request (HTTP 422): {detail}")]
    Validation { target: Target, detail: String },
    #[error(
        "{target}: the server redirects (HTTP {status}) to {location}; set the API URL to the final address"
    )]
    Redirected {
        target: Target,
        status: u16,
        location: String,
    },
    #[error("{target}: unexpected HTTP {status}: {detail}")]
    Status {
        target: Target,
        status: u16,
        detail: String,
    },
    #[error("{target}: the server failed with HTTP {status} on all {attempts} attempts: {detail}")]
    Server {
        target: Target,
        status: u16,
        attempts: u32,
        detail: String,
    },
    #[error(
        "{target}: cannot connect: connection refused, host unreachable or name not resolved ({attempts} attempts)"
    )]
    Unreachable {
        target: Target,
        attempts: u32,
        #[source]
        source: reqwest::Error,
    },
    #[error("{target}: timed out after {timeout:?} waiting for {phase} ({attempts} attempts)")]
    Timeout {
        target: Target,
        phase: &'static str,
        timeout: Duration,
        attempts: u32,
        #[source]
        source: reqwest::Error,
    },
    #[error(
        "{target}: the connection closed before a complete response arrived ({attempts} attempts)"
    )]
    ConnectionClosed {
        target: Target,
        attempts: u32,
        #[source]
        source: reqwest::Error,
    },
    #[error("{target}: the response is not the documented JSON: expected {expected} ({reason})")]
    UnexpectedBody {
        target: Target,
        expected: &'static str,
        reason: String,
    },
}

impl ApiError {
    /// The failure may go away on its own (the transport or the server failed, after retries):
    /// worth trying the whole operation again later, unlike a refused token or a bad request.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            ApiError::Server { .. }
                | ApiError::Unreachable { .. }
                | ApiError::Timeout { .. }
                | ApiError::ConnectionClosed { .. }
        )
    }
}

/// A response that was not a transient failure: any 1xx–4xx status, or a 2xx.
pub(super) struct Reply {
    pub(super) target: Target,
    pub(super) status: StatusCode,
    pub(super) location: Option<String>,
    pub(super) body: Vec<u8>,
}

/// Why one attempt produced no reply.
enum AttemptError {
    Transport(reqwest::Error),
    /// The body is larger than `max_response_bytes`.
    TooLarge,
}

impl From<reqwest::Error> for AttemptError {
    fn from(error: reqwest::Error) -> AttemptError {
        AttemptError::Transport(error)
    }
}

/// Why one attempt failed in a way worth retrying.
enum Transient {
    Status {
        status: StatusCode,
        body: Vec<u8>,
    },
    Transport {
        kind: TransportKind,
        source: reqwest::Error,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TransportKind {
    Unreachable,
    ConnectTimeout,
    Timeout,
    Closed,
}

impl TransportKind {
    fn of(error: &reqwest::Error) -> TransportKind {
        match (error.is_timeout(), error.is_connect()) {
            (true, true) => TransportKind::ConnectTimeout,
            (true, false) => TransportKind::Timeout,
            (false, true) => TransportKind::Unreachable,
            (false, false) => TransportKind::Closed,
        }
    }

    fn name(self) -> &'static str {
        match self {
            TransportKind::Unreachable => "unreachable",
            TransportKind::ConnectTimeout => "connect timeout",
            TransportKind::Timeout => "timeout",
            TransportKind::Closed => "connection closed",
        }
    }
}

impl TldwApi {
    /// A GET of `url` with the admin credential and `timeout`, for a smoke gate. Only a URL on
    /// the API's own origin (scheme, host and port) gets one: a desired-state file cannot send
    /// the token anywhere else. Redirects are not followed.
    pub fn authorized_get(
        &self,
        url: &str,
        timeout: Duration,
    ) -> Result<reqwest::RequestBuilder, String> {
        let parsed = Url::parse(url).map_err(|_| format!("`{url}` is not a URL"))?;
        if parsed.origin() != self.inner.base.origin() {
            return Err(format!(
                "{url} is not on the admin API's origin, so the API token is not sent there"
            ));
        }
        Ok(self.inner.client.get(parsed).timeout(timeout))
    }

    /// Builds the client. Fails for a URL that is not `http(s)://host[:port][/prefix]` or that
    /// carries credentials, and for an empty token or one that cannot be a header value.
    /// Proxies come from the environment as reqwest reads them, except for a loopback URL,
    /// which never goes through a proxy.
    pub fn new(config: ApiConfig) -> Result<TldwApi, ApiError> {
        let base = parse_base_url(&config.url)?;
        if config.token.is_empty() {
            return Err(ApiError::InvalidToken { reason: "is empty" });
        }
        let (name, value) = match config.auth {
            ApiAuth::Bearer => (AUTHORIZATION, format!("Bearer {}", config.token)),
            ApiAuth::ApiKey => (HeaderName::from_static("x-api-key"), config.token.clone()),
        };
        let mut value = HeaderValue::from_str(&value).map_err(|_| ApiError::InvalidToken {
            reason: "contains characters an HTTP header cannot carry (a newline?)",
        })?;
        value.set_sensitive(true);
        let mut headers = HeaderMap::new();
        headers.insert(name, value);

        let mut builder = reqwest::Client::builder()
            .default_headers(headers)
            .user_agent(concat!("tldw-ops/", env!("CARGO_PKG_VERSION")))
            .timeout(config.timeout)
            .connect_timeout(config.connect_timeout)
            // A redirect could carry X-API-KEY to another host; refuse to follow any.
            .redirect(reqwest::redirect::Policy::none());
        if is_loopback(&base) {
            builder = builder.no_proxy();
        }
        let client = builder.build().map_err(|source| ApiError::Client {
            url: base.to_string(),
            source: source.without_url(),
        })?;
        Ok(TldwApi {
            inner: Arc::new(Inner {
                client,
                base,
                token: config.token,
                auth: config.auth,
                concurrency: config.concurrency.max(1),
                timeout: config.timeout,
                connect_timeout: config.connect_timeout,
                retries: config.retries,
                backoff: config.backoff,
                max_response_bytes: config.max_response_bytes,
            }),
        })
    }

    /// `route` with its `{name}` segments replaced by `params` (percent-encoded), under the base.
    pub(super) fn url(&self, route: &str, params: &[(&str, &str)]) -> Url {
        let mut url = self.inner.base.clone();
        {
            // The base was checked to be a hierarchical http(s) URL, which has segments.
            let Ok(mut segments) = url.path_segments_mut() else {
                unreachable!("the base URL was checked to have a path");
            };
            segments.pop_if_empty();
            for segment in route.split('/').filter(|s| !s.is_empty()) {
                let value = segment
                    .strip_prefix('{')
                    .and_then(|s| s.strip_suffix('}'))
                    .and_then(|name| params.iter().find(|(n, _)| *n == name))
                    .map_or(segment, |(_, value)| value);
                segments.push(value);
            }
        }
        url
    }

    /// Sends a request, retrying connect errors, timeouts, dropped connections and 5xx with
    /// exponential backoff (`retries` more attempts at most). Any other status is returned as is;
    /// 4xx is never retried.
    pub(super) async fn send(
        &self,
        method: Method,
        url: Url,
        body: Option<&Value>,
    ) -> Result<Reply, ApiError> {
        let inner = &self.inner;
        let target = Target {
            method: method.to_string(),
            url: url.to_string(),
        };
        let attempts = inner.retries.saturating_add(1);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let started = Instant::now();
            let failure = match self.attempt(&method, &url, body).await {
                Err(AttemptError::TooLarge) => {
                    tracing::debug!(
                        method = %method,
                        path = %url.path(),
                        limit = inner.max_response_bytes,
                        "tldw admin API: response too large"
                    );
                    return Err(ApiError::ResponseTooLarge {
                        target,
                        limit: inner.max_response_bytes,
                    });
                }
                Ok((status, location, body)) if !status.is_server_error() => {
                    tracing::debug!(
                        method = %method,
                        path = %url.path(),
                        status = status.as_u16(),
                        duration_ms = started.elapsed().as_millis() as u64,
                        attempt,
                        "tldw admin API"
                    );
                    return Ok(Reply {
                        target,
                        status,
                        location,
                        body,
                    });
                }
                Ok((status, _, body)) => {
                    tracing::debug!(
                        method = %method,
                        path = %url.path(),
                        status = status.as_u16(),
                        duration_ms = started.elapsed().as_millis() as u64,
                        attempt,
                        "tldw admin API: server error"
                    );
                    Transient::Status { status, body }
                }
                Err(AttemptError::Transport(source)) if source.is_builder() => {
                    return Err(ApiError::Client {
                        url: target.url,
                        source: source.without_url(),
                    });
                }
                Err(AttemptError::Transport(source)) => {
                    let kind = TransportKind::of(&source);
                    tracing::debug!(
                        method = %method,
                        path = %url.path(),
                        error = kind.name(),
                        duration_ms = started.elapsed().as_millis() as u64,
                        attempt,
                        "tldw admin API: transport error"
                    );
                    Transient::Transport { kind, source }
                }
            };
            if attempt >= attempts {
                return Err(self.exhausted(target, attempts, failure));
            }
            tokio::time::sleep(self.backoff_before(attempt)).await;
        }
    }

    /// One attempt: status, `Location` header and the whole body, read up to
    /// `max_response_bytes` (a larger declared or received body stops the read).
    async fn attempt(
        &self,
        method: &Method,
        url: &Url,
        body: Option<&Value>,
    ) -> Result<(StatusCode, Option<String>, Vec<u8>), AttemptError> {
        let mut request = self.inner.client.request(method.clone(), url.clone());
        if let Some(body) = body {
            request = request.json(body);
        }
        let mut response = request.send().await?;
        let status = response.status();
        let location = response
            .headers()
            .get(LOCATION)
            .and_then(|value| value.to_str().ok())
            .map(str::to_string);
        let limit = self.inner.max_response_bytes;
        if response
            .content_length()
            .is_some_and(|length| length > limit)
        {
            return Err(AttemptError::TooLarge);
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await? {
            if (body.len() + chunk.len()) as u64 > limit {
                return Err(AttemptError::TooLarge);
            }
            body.extend_from_slice(&chunk);
        }
        Ok((status, location, body))
    }

    /// Wait after failed attempt number `attempt` (1-based): backoff, doubled each time, capped.
    pub(super) fn backoff_before(&self, attempt: u32) -> Duration {
        let factor = 1u32.checked_shl(attempt - 1).unwrap_or(u32::MAX);
        self.inner
            .backoff
            .checked_mul(factor)
            .unwrap_or(MAX_BACKOFF)
            .min(MAX_BACKOFF)
    }

    fn exhausted(&self, target: Target, attempts: u32, failure: Transient) -> ApiError {
        match failure {
            Transient::Status { status, body } => ApiError::Server {
                target,
                status: status.as_u16(),
                attempts,
                detail: self.detail(&body),
            },
            Transient::Transport { kind, source } => {
                let source = source.without_url();
                match kind {
                    TransportKind::Unreachable => ApiError::Unreachable {
                        target,
                        attempts,
                        source,
                    },
                    TransportKind::ConnectTimeout => ApiError::Timeout {
                        target,
                        phase: "a connection",
                        timeout: self.inner.connect_timeout,
                        attempts,
                        source,
                    },
                    TransportKind::Timeout => ApiError::Timeout {
                        target,
                        phase: "the response",
                        timeout: self.inner.timeout,
                        attempts,
                        source,
                    },
                    TransportKind::Closed => ApiError::ConnectionClosed {
                        target,
                        attempts,
                        source,
                    },
                }
            }
        }
    }

    /// The reply when it is a success, else the error its status means on any admin route.
    pub(super) fn expect_success(&self, reply: Reply) -> Result<Reply, ApiError> {
        if reply.status.is_success() {
            return Ok(reply);
        }
        let Reply {
            target,
            status,
            location,
            body,
        } = reply;
        Err(match status {
            StatusCode::UNAUTHORIZED => ApiError::Unauthorized { target },
            StatusCode::FORBIDDEN => ApiError::Forbidden { target },
            StatusCode::NOT_FOUND => ApiError::RouteNotFound { target },
            StatusCode::UNPROCESSABLE_ENTITY => ApiError::Validation {
                target,
                detail: self.detail(&body),
            },
            status if status.is_redirection() => ApiError::Redirected {
                target,
                status: status.as_u16(),
                location: location.map_or_else(|| "(no location)".to_string(), |l| self.scrub(&l)),
            },
            status => ApiError::Status {
                target,
                status: status.as_u16(),
                detail: self.detail(&body),
            },
        })
    }

    /// The reply's JSON as `T`, after [`TldwApi::expect_success`].
    pub(super) fn expect_json<T: DeserializeOwned>(
        &self,
        reply: Reply,
        expected: &'static str,
    ) -> Result<T, ApiError> {
        let reply = self.expect_success(reply)?;
        serde_json::from_slice(&reply.body).map_err(|error| ApiError::UnexpectedBody {
            target: reply.target,
            expected,
            reason: self.scrub(&error.to_string()),
        })
    }

    /// What the server said, for an error message: FastAPI's `detail` (a string, or the
    /// validation errors as `field: message; …`), else the start of the body. Scrubbed of the
    /// token in case a proxy or a misbehaving server echoes headers.
    pub(super) fn detail(&self, body: &[u8]) -> String {
        let text = match serde_json::from_slice::<Value>(body) {
            Ok(Value::Object(map)) => match map.get("detail") {
                Some(Value::String(detail)) => detail.clone(),
                Some(Value::Array(errors)) => errors
                    .iter()
                    .map(validation_error_text)
                    .collect::<Vec<_>>()
                    .join("; "),
                Some(other) => other.to_string(),
                None => Value::Object(map).to_string(),
            },
            Ok(other) => other.to_string(),
            Err(_) if body.is_empty() => "(empty body)".to_string(),
            Err(_) => String::from_utf8_lossy(body).trim().to_string(),
        };
        truncate(self.scrub(&text))
    }

    fn scrub(&self, text: &str) -> String {
        let token = &self.inner.token;
        if token.is_empty() {
            text.to_string()
        } else {
            text.replace(token.as_str(), REDACTED)
        }
    }

    /// Runs `make(item)` for every item with at most `concurrency` futures in flight, returning
    /// the outputs in item order. When `stop` is true of an output, the rest are cancelled and
    /// the outputs finished so far (that one included) are returned.
    pub(super) async fn bounded<I, T, F, Fut>(
        &self,
        items: impl IntoIterator<Item = I>,
        mut make: F,
        stop: impl Fn(&T) -> bool,
    ) -> Vec<T>
    where
        F: FnMut(I) -> Fut,
        Fut: Future<Output = T> + Send + 'static,
        T: Send + 'static,
    {
        let mut items = items.into_iter().enumerate();
        let mut running = JoinSet::new();
        let mut spawn_next = |running: &mut JoinSet<(usize, T)>| match items.next() {
            Some((index, item)) => {
                let future = make(item);
                running.spawn(async move { (index, future.await) });
                true
            }
            None => false,
        };
        for _ in 0..self.inner.concurrency {
            if !spawn_next(&mut running) {
                break;
            }
        }
        let mut outputs = Vec::new();
        while let Some(joined) = running.join_next().await {
            let (index, output) = match joined {
                Ok(done) => done,
                Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
                Err(_) => continue,
            };
            let stopping = stop(&output);
            outputs.push((index, output));
            if stopping {
                running.abort_all();
                break;
            }
            spawn_next(&mut running);
        }
        outputs.sort_by_key(|(index, _)| *index);
        outputs.into_iter().map(|(_, output)| output).collect()
    }
}

pub(super) fn parse_base_url(raw: &str) -> Result<Url, ApiError> {
    let invalid = |reason| ApiError::InvalidUrl {
        url: raw.to_string(),
        reason,
    };
    let url = Url::parse(raw.trim_end_matches('/'))
        .map_err(|_| invalid("not an absolute URL such as `http://127.0.0.1:8000`"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid("the scheme must be http or https"));
    }
    if url.host().is_none() || url.cannot_be_a_base() {
        return Err(invalid("the URL has no host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        // Errors name the URL; credentials in it would end up in messages and logs.
        return Err(ApiError::InvalidUrl {
            url: "(URL with credentials, not shown)".to_string(),
            reason: "the URL must not contain credentials; the token is configured separately",
        });
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid("the URL must not have a query or fragment"));
    }
    Ok(url)
}

/// `localhost`, `127.0.0.0/8` and `::1` never go through a proxy: a proxy cannot reach the
/// operator's own loopback.
pub(super) fn is_loopback(url: &Url) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    match host.parse::<IpAddr>() {
        Ok(ip) => ip.is_loopback(),
        Err(_) => {
            let host = host.to_ascii_lowercase();
            host == "localhost" || host.ends_with(".localhost")
        }
    }
}

/// FastAPI's plain `detail` string, lower-cased, when the body has one.
pub(super) fn detail_code(body: &[u8]) -> Option<String> {
    match serde_json::from_slice::<Value>(body).ok()?.get("detail")? {
        Value::String(detail) => Some(detail.trim().to_lowercase()),
        _ => None,
    }
}

/// A 404 from the router itself (FastAPI's `Not Found`, or a proxy's non-JSON page) rather than
/// from a handler that looked something up.
pub(super) fn route_missing(reply: &Reply) -> bool {
    detail_code(&reply.body).is_none_or(|code| code == "not found")
}

/// `days: Input should be greater than or equal to 0` from one FastAPI validation error.
fn validation_error_text(error: &Value) -> String {
    let message = error
        .get("msg")
        .and_then(Value::as_str)
        .map_or_else(|| error.to_string(), str::to_string);
    let location: Vec<String> = error
        .get("loc")
        .and_then(Value::as_array)
        .map(|parts| {
            parts
                .iter()
                .filter(|part| part.as_str() != Some("body"))
                .map(|part| match part {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect()
        })
        .unwrap_or_default();
    if location.is_empty() {
        message
    } else {
        format!("{}: {message}", location.join("."))
    }
}

/// `8 MiB`, `512 KiB` or `1000 bytes`.
pub(super) fn show_bytes(bytes: u64) -> String {
    if bytes >= 1 << 20 && bytes.is_multiple_of(1 << 20) {
        format!("{} MiB", bytes >> 20)
    } else if bytes >= 1 << 10 && bytes.is_multiple_of(1 << 10) {
        format!("{} KiB", bytes >> 10)
    } else {
        format!("{bytes} bytes")
    }
}

fn truncate(mut text: String) -> String {
    if let Some((cut, _)) = text.char_indices().nth(DETAIL_MAX_CHARS) {
        text.truncate(cut);
        text.push('…');
    }
    text
}
