//! The tldw admin API provider: a reqwest client for `/api/v1/admin/*` that resolves usernames to
//! user ids, reads and writes per-user storage quotas, changes retention policies through the
//! server's own preview-then-signed-PUT, and reads the effective registration settings back. It
//! owns the transport policy (timeouts, bounded retries with exponential backoff, bounded
//! concurrency) and turns every HTTP outcome into an [`ApiError`] that names the request's URL.
//!
//! It must never reveal the admin token: the header value is marked sensitive, `Debug` of every
//! type here is written by hand, logs carry only method, path, status and duration, and text the
//! server sends back is scrubbed of the token before it lands in an error. It knows nothing about
//! plans, addresses or the command line; callers map its results onto resources.
//!
//! The client is split by what it talks to: `transport` holds the configuration, the HTTP
//! client with its retries and limits, and the mapping of every outcome to an [`ApiError`];
//! `users`, `quotas`, `retention` and `registration` hold the calls of one area of the admin API
//! each.

mod quotas;
mod registration;
mod retention;
mod transport;
mod users;

#[cfg(test)]
mod tests;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use reqwest::Url;

use crate::spec::types::ApiAuth;

pub use registration::RegistrationSettings;
pub use transport::{ApiConfig, ApiError, DEFAULT_MAX_RESPONSE_BYTES, Target};

use transport::REDACTED;

/// The admin routes this provider calls. Kept together because the upstream contract moves
/// weekly; `{name}` segments are filled in (percent-encoded) by [`TldwApi`].
pub mod routes {
    /// `GET ?page=&limit=&search=` → `{"users":[{"id","username",…}],"total","pages",…}`.
    pub const USERS: &str = "/api/v1/admin/users";
    /// `GET` → `{"quota_mb": int|null, …}`; `PUT {"quota_mb": int|null}`.
    pub const USER_STORAGE_QUOTA: &str = "/api/v1/admin/storage-quotas/users/{user_id}";
    /// `GET` → `{"policies":[{"key","days": int|null,"description"}]}`.
    pub const RETENTION_POLICIES: &str = "/api/v1/admin/retention-policies";
    /// `PUT {"days","preview_signature"}` → `{"key","days","description"}`; refusals are 400
    /// `preview_signature_required` / `invalid_preview_signature` /
    /// `expired_preview_signature` / `invalid_range` and 404 `unknown_policy`, never 409
    /// (`docs/admin-api.md`).
    pub const RETENTION_POLICY: &str = "/api/v1/admin/retention-policies/{key}";
    /// `POST {"current_days","days"}` → `{"key","current_days","new_days","counts",
    /// "preview_signature","notes"}`; 409 `stale_current_days`, 400 `invalid_range`, 404
    /// `unknown_policy`.
    pub const RETENTION_PREVIEW: &str = "/api/v1/admin/retention-policies/{key}/preview";
    /// `GET` → [`super::RegistrationSettings`].
    pub const REGISTRATION_SETTINGS: &str = "/api/v1/admin/registration-settings";
}

/// The admin API client. Cheap to clone (shares one connection pool). `Debug` never shows the
/// token.
#[derive(Clone)]
pub struct TldwApi {
    inner: Arc<Inner>,
}

struct Inner {
    client: reqwest::Client,
    base: Url,
    /// Kept only to scrub it out of text the server sends back.
    token: String,
    auth: ApiAuth,
    concurrency: usize,
    timeout: Duration,
    connect_timeout: Duration,
    retries: u32,
    backoff: Duration,
    max_response_bytes: u64,
}

impl fmt::Debug for TldwApi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = &self.inner;
        f.debug_struct("TldwApi")
            .field("url", &inner.base.as_str())
            .field("token", &REDACTED)
            .field("auth", &inner.auth)
            .field("concurrency", &inner.concurrency)
            .field("timeout", &inner.timeout)
            .field("connect_timeout", &inner.connect_timeout)
            .field("retries", &inner.retries)
            .field("max_response_bytes", &inner.max_response_bytes)
            .finish()
    }
}
