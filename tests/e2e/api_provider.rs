//! Tests of the tldw admin API provider (`providers::tldw_api`) against the fake tldw_server over
//! loopback HTTP: both ways of sending the token, error messages that name the URL and never the
//! token, user resolution by search and by pagination, quotas with bounded concurrency, the retry
//! policy, the retention preview-then-signed-PUT flow and the registration read-back.

use std::collections::{BTreeMap, BTreeSet};
use std::error::Error as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tldw_ops::providers::tldw_api::{ApiConfig, ApiError, RegistrationSettings, TldwApi};
use tldw_ops::spec::types::ApiAuth;

use crate::support::fake_tldw::{AuthKind, FakeTldw, FakeTldwConfig};

const USERS: &str = "/api/v1/admin/users";
const QUOTAS: &str = "/api/v1/admin/storage-quotas";
const RETENTION: &str = "/api/v1/admin/retention-policies";
const REGISTRATION: &str = "/api/v1/admin/registration-settings";

fn config(url: &str, token: &str, auth: ApiAuth) -> ApiConfig {
    ApiConfig {
        backoff: Duration::from_millis(5),
        ..ApiConfig::new(url, token, auth)
    }
}

fn api(fake: &FakeTldw) -> TldwApi {
    TldwApi::new(config(&fake.url(), fake.admin_token(), ApiAuth::Bearer)).expect("client")
}

fn with_users(users: usize) -> FakeTldwConfig {
    FakeTldwConfig {
        users,
        ..FakeTldwConfig::default()
    }
}

/// Display, Debug and every source of an error, as one text to scan.
fn everything_said_about(error: &ApiError) -> String {
    let mut text = format!("{error}\n{error:?}");
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(&format!("\n{cause}\n{cause:?}"));
        source = cause.source();
    }
    text
}

fn names(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|name| name.to_string()).collect()
}

// ---------------------------------------------------------------------------------------------
// authentication and secrecy
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn bearer_and_api_key_tokens_both_authenticate() {
    let fake = FakeTldw::start(FakeTldwConfig::default());
    for (auth, kind) in [
        (ApiAuth::Bearer, AuthKind::Bearer),
        (ApiAuth::ApiKey, AuthKind::ApiKey),
    ] {
        fake.clear_requests();
        let api = TldwApi::new(config(&fake.url(), fake.admin_token(), auth)).unwrap();
        api.registration().await.unwrap();
        let requests = fake.requests();
        assert_eq!(requests.len(), 1);
        assert_eq!(requests[0].auth, kind);
    }
}

#[tokio::test]
async fn a_refused_token_and_a_non_admin_token_name_the_url_and_never_the_token() {
    let fake = FakeTldw::start(FakeTldwConfig::default());
    let wrong = "wrong-token-7f3a9c2e5b";
    for auth in [ApiAuth::Bearer, ApiAuth::ApiKey] {
        let refused = TldwApi::new(config(&fake.url(), wrong, auth)).unwrap();
        let error = refused.retention_policies().await.unwrap_err();
        assert!(matches!(error, ApiError::Unauthorized { .. }), "{error:?}");
        let message = error.to_string();
        assert!(message.contains("the token was refused"), "{message}");
        assert!(
            message.contains(&format!("{}{RETENTION}", fake.url())),
            "{message}"
        );
        let said = everything_said_about(&error);
        assert!(!said.contains(wrong), "{said}");
        assert!(!format!("{refused:?}").contains(wrong));

        let user = TldwApi::new(config(&fake.url(), fake.user_token(), auth)).unwrap();
        let error = user.quota(1).await.unwrap_err();
        assert!(matches!(error, ApiError::Forbidden { .. }), "{error:?}");
        let message = error.to_string();
        assert!(
            message.contains("the principal lacks the admin role"),
            "{message}"
        );
        assert!(
            message.contains(&format!("{}{QUOTAS}/users/1", fake.url())),
            "{message}"
        );
        assert!(!everything_said_about(&error).contains(fake.user_token()));
    }
    // Authentication failures are answers, not transient faults: one request each.
    assert_eq!(fake.request_count("*", "/"), 4);
}

#[tokio::test]
async fn debug_output_of_the_config_and_the_client_never_shows_the_token() {
    let token = "tldw_abcdefghijkl.Zm9vYmFyYmF6cXV4cXV1eA";
    let config = config("http://127.0.0.1:9", token, ApiAuth::ApiKey);
    let shown = format!("{config:?}");
    assert!(!shown.contains(token), "{shown}");
    assert!(shown.contains("(redacted)"), "{shown}");
    let api = TldwApi::new(config).unwrap();
    let shown = format!("{api:?}");
    assert!(!shown.contains(token), "{shown}");
    assert!(shown.contains("127.0.0.1:9"), "{shown}");
}

/// Collects what a tracing subscriber writes.
#[derive(Clone, Default)]
struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn debug_logs_show_method_path_and_status_but_never_the_token_or_bodies() {
    let fake = FakeTldw::start(FakeTldwConfig::default());
    let captured = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer({
            let captured = captured.clone();
            move || captured.clone()
        })
        .finish();
    // The test runtime has one thread, so the tasks the provider spawns log here too.
    let _guard = tracing::subscriber::set_default(subscriber);
    // Another test's thread may have registered a callsite (the success line, say) while no
    // subscriber wanted it, and its cached interest would hide it from this one: recompute.
    tracing::callsite::rebuild_interest_cache();
    let api = api(&fake);
    // The rebuild above can still lose a race: a thread that began registering a callsite
    // before this subscriber existed stores its stale "never" after the rebuild (a loaded
    // 2-core machine preempts it there). Registration happens once, so after a pause and
    // another rebuild a second round sees every line.
    let mut log = String::new();
    for _ in 0..3 {
        captured.0.lock().unwrap().clear();
        fake.fail_next("PUT", QUOTAS, 503, 1);
        api.set_quota(1, Some(777)).await.unwrap();
        api.set_retention("sessions", 90, 30).await.unwrap();
        let users: BTreeMap<String, i64> = [("user0002".to_string(), 2)].into_iter().collect();
        api.quotas(&users).await.unwrap();
        log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        if log.contains("status=503") && log.contains("status=200") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        tracing::callsite::rebuild_interest_cache();
    }

    assert!(log.contains("method=PUT"), "{log}");
    assert!(log.contains(&format!("path={QUOTAS}/users/1")), "{log}");
    assert!(
        log.contains("status=503") && log.contains("status=200"),
        "{log}"
    );
    assert!(log.contains("duration_ms="), "{log}");
    assert!(!log.contains(fake.admin_token()), "{log}");
    // Body text only: digits like the quota value can appear in timings, so look for keys.
    for body_text in [
        "quota_mb",
        "preview_signature\"",
        "v1.",
        "injected_fault",
        "used_mb",
    ] {
        assert!(!log.contains(body_text), "{body_text:?} in {log}");
    }
}

#[tokio::test]
async fn a_token_that_cannot_be_a_header_or_a_url_with_credentials_is_refused_up_front() {
    let error =
        TldwApi::new(config("http://127.0.0.1:9", "abc\ndef", ApiAuth::Bearer)).unwrap_err();
    assert!(matches!(error, ApiError::InvalidToken { .. }), "{error:?}");
    assert!(!everything_said_about(&error).contains("abc\ndef"));
    let error = TldwApi::new(config("http://127.0.0.1:9", "", ApiAuth::Bearer)).unwrap_err();
    assert!(matches!(error, ApiError::InvalidToken { .. }), "{error:?}");
    let error = TldwApi::new(config(
        "http://admin:hunter2@127.0.0.1:9",
        "t",
        ApiAuth::Bearer,
    ))
    .unwrap_err();
    assert!(matches!(error, ApiError::InvalidUrl { .. }), "{error:?}");
    assert!(!everything_said_about(&error).contains("hunter2"));
    let error = TldwApi::new(config("ftp://example.org", "t", ApiAuth::Bearer)).unwrap_err();
    assert!(matches!(error, ApiError::InvalidUrl { .. }), "{error:?}");
}

// ---------------------------------------------------------------------------------------------
// users
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn ten_thousand_users_resolve_through_pagination_reading_each_page_once() {
    let fake = FakeTldw::start(with_users(10_000));
    let api = api(&fake);
    let mut wanted: BTreeSet<String> = (1..=10_000).map(|i| format!("user{i:04}")).collect();
    wanted.insert("nobody".to_string());
    wanted.insert("ghost".to_string());

    let ids = api.resolve_users(&wanted).await.unwrap();

    assert_eq!(ids.len(), 10_000);
    for i in 1..=10_000_i64 {
        assert_eq!(ids[&format!("user{i:04}")], i);
    }
    assert!(!ids.contains_key("nobody") && !ids.contains_key("ghost"));
    let requests = fake.requests();
    assert_eq!(requests.len(), 100);
    let mut pages: Vec<u64> = requests
        .iter()
        .map(|request| {
            assert_eq!(
                (request.method.as_str(), request.path.as_str()),
                ("GET", USERS)
            );
            let query = request.query.as_deref().unwrap();
            assert!(
                query.contains("limit=100") && !query.contains("search"),
                "{query}"
            );
            let page = query.split('&').find_map(|pair| pair.strip_prefix("page="));
            page.unwrap().parse().unwrap()
        })
        .collect();
    pages.sort_unstable();
    assert_eq!(pages, (1..=100).collect::<Vec<u64>>());
}

#[tokio::test]
async fn a_few_names_resolve_by_search_case_insensitively_and_unknown_names_are_absent() {
    let fake = FakeTldw::start(FakeTldwConfig {
        users: 500,
        extra_users: vec![("alice".to_string(), None)],
        ..FakeTldwConfig::default()
    });
    let api = api(&fake);

    let ids = api
        .resolve_users(&names(&["user0042", "ALICE", "nobody"]))
        .await
        .unwrap();

    let expected: BTreeMap<String, i64> =
        [("ALICE".to_string(), 501), ("user0042".to_string(), 42)]
            .into_iter()
            .collect();
    assert_eq!(ids, expected);
    let requests = fake.requests();
    assert_eq!(requests.len(), 3);
    assert!(
        requests
            .iter()
            .all(|r| r.query.as_deref().is_some_and(|q| q.contains("search=")))
    );
}

#[tokio::test]
async fn a_search_pages_on_until_the_exact_username_appears() {
    // `user` is a substring of all 300 generated names, listed before it.
    let fake = FakeTldw::start(FakeTldwConfig {
        users: 300,
        extra_users: vec![("user".to_string(), Some(100))],
        ..FakeTldwConfig::default()
    });
    let ids = api(&fake).resolve_users(&names(&["user"])).await.unwrap();
    assert_eq!(ids.get("user"), Some(&301));
    assert_eq!(fake.request_count("GET", USERS), 4);
}

// ---------------------------------------------------------------------------------------------
// quotas
// ---------------------------------------------------------------------------------------------

fn seeded_quota(index: usize) -> Option<i64> {
    (!index.is_multiple_of(7)).then_some(index as i64 * 10)
}

#[tokio::test]
async fn quotas_of_ten_thousand_users_are_read_once_each() {
    let fake = FakeTldw::start(FakeTldwConfig {
        users: 10_000,
        seed_quotas: seeded_quota,
        ..FakeTldwConfig::default()
    });
    let api = api(&fake);
    let users: BTreeMap<String, i64> = (1..=10_000_usize)
        .map(|i| (format!("user{i:04}"), i as i64))
        .collect();

    let quotas = api.quotas(&users).await.unwrap();

    assert_eq!(quotas.len(), 10_000);
    for i in 1..=10_000_usize {
        let expected = seeded_quota(i).map(|q| q as u64);
        assert_eq!(quotas[&format!("user{i:04}")], expected, "user{i:04}");
    }
    assert_eq!(fake.request_count("GET", QUOTAS), 10_000);
}

#[tokio::test]
async fn no_more_than_the_configured_number_of_requests_are_in_flight() {
    let fake = Arc::new(FakeTldw::start(with_users(160)));
    fake.set_delay("GET", QUOTAS, Duration::from_millis(40));
    let api = api(&fake);
    let users: BTreeMap<String, i64> = (1..=160).map(|i| (format!("user{i:04}"), i)).collect();

    // The fake records a request on arrival and its status when handled: requests without a
    // status are in flight.
    let done = Arc::new(AtomicBool::new(false));
    let peak = Arc::new(AtomicUsize::new(0));
    let sampler = std::thread::spawn({
        let (fake, done, peak) = (fake.clone(), done.clone(), peak.clone());
        move || {
            while !done.load(Ordering::SeqCst) {
                let in_flight = fake
                    .requests()
                    .iter()
                    .filter(|r| r.status.is_none())
                    .count();
                peak.fetch_max(in_flight, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(2));
            }
        }
    });
    let started = Instant::now();
    let quotas = api.quotas(&users).await.unwrap();
    let elapsed = started.elapsed();
    done.store(true, Ordering::SeqCst);
    sampler.join().unwrap();

    assert_eq!(quotas.len(), 160);
    let peak = peak.load(Ordering::SeqCst);
    assert!(peak <= 16, "{peak} requests were in flight at once");
    assert!(peak >= 4, "only {peak} requests were in flight at once");
    // 160 requests of 40 ms each, 16 at a time, take at least 10 rounds.
    assert!(elapsed >= Duration::from_millis(400), "{elapsed:?}");
    assert!(elapsed < Duration::from_millis(160 * 40 / 2), "{elapsed:?}");
}

#[tokio::test]
async fn set_quota_writes_a_number_and_null_and_surfaces_the_validation_detail() {
    let fake = FakeTldw::start(with_users(3));
    let api = api(&fake);

    api.set_quota(2, Some(2048)).await.unwrap();
    assert_eq!(fake.quota("user0002"), Some(Some(2048)));
    assert_eq!(api.quota(2).await.unwrap(), Some(2048));
    api.set_quota(2, None).await.unwrap();
    assert_eq!(fake.quota("user0002"), Some(None));
    assert_eq!(api.quota(2).await.unwrap(), None);
    api.set_quota(3, Some(0)).await.unwrap();
    assert_eq!(fake.quota("user0003"), Some(Some(0)));

    // Larger than the server's integers: FastAPI refuses it with 422.
    fake.clear_requests();
    let error = api.set_quota(2, Some(u64::MAX)).await.unwrap_err();
    let ApiError::Validation { detail, .. } = &error else {
        panic!("{error:?}");
    };
    assert!(
        detail.contains("quota_mb") && detail.contains("exceeded maximum size"),
        "{detail}"
    );
    assert!(
        error
            .to_string()
            .contains(&format!("{}{QUOTAS}/users/2", fake.url()))
    );
    assert_eq!(fake.request_count("PUT", QUOTAS), 1);
}

#[tokio::test]
async fn an_unknown_user_id_is_its_own_error_and_a_missing_route_says_the_server_is_too_old() {
    let fake = FakeTldw::start(with_users(3));
    let api = api(&fake);
    let error = api.quota(99).await.unwrap_err();
    assert!(
        matches!(error, ApiError::UnknownUser { user_id: 99, .. }),
        "{error:?}"
    );
    let error = api.set_quota(99, Some(1)).await.unwrap_err();
    assert!(
        matches!(error, ApiError::UnknownUser { user_id: 99, .. }),
        "{error:?}"
    );

    // A server mounted under a prefix it does not have: every admin route is FastAPI's 404.
    let old = TldwApi::new(config(
        &format!("{}/old", fake.url()),
        fake.admin_token(),
        ApiAuth::Bearer,
    ))
    .unwrap();
    let error = old.quota(1).await.unwrap_err();
    assert!(matches!(error, ApiError::RouteNotFound { .. }), "{error:?}");
    let message = error.to_string();
    assert!(
        message.contains("the server is too old or the route is disabled"),
        "{message}"
    );
    assert!(
        message.contains(&format!("{}/old{QUOTAS}/users/1", fake.url())),
        "{message}"
    );
}

#[tokio::test]
async fn set_quotas_reports_exactly_which_changes_succeeded() {
    let fake = FakeTldw::start(with_users(20));
    fake.fail_after("PUT", QUOTAS, 5, 500);
    let api = TldwApi::new(ApiConfig {
        retries: 1,
        ..config(&fake.url(), fake.admin_token(), ApiAuth::Bearer)
    })
    .unwrap();
    let changes: Vec<(String, i64, Option<u64>)> = (1..=12)
        .map(|i| (format!("user{i:04}"), i, Some(1000 + i as u64)))
        .collect();

    let results = api.set_quotas(&changes).await;

    let order: Vec<&str> = results.iter().map(|(name, _)| name.as_str()).collect();
    let given: Vec<&str> = changes.iter().map(|(name, _, _)| name.as_str()).collect();
    assert_eq!(order, given);
    let succeeded: BTreeSet<&str> = results
        .iter()
        .filter(|(_, result)| result.is_ok())
        .map(|(name, _)| name.as_str())
        .collect();
    assert_eq!(succeeded.len(), 5);
    for (name, id, quota) in &changes {
        let applied = fake.quota(name) == Some(quota.map(|q| q as i64));
        assert_eq!(
            applied,
            succeeded.contains(name.as_str()),
            "{name} (id {id})"
        );
    }
    for (name, result) in &results {
        if let Err(error) = result {
            assert!(
                matches!(
                    error,
                    ApiError::Server {
                        status: 500,
                        attempts: 2,
                        ..
                    }
                ),
                "{name}: {error:?}"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// retries
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn transient_503s_are_retried_until_the_request_succeeds() {
    let fake = FakeTldw::start(FakeTldwConfig::default());
    fake.fail_next("GET", REGISTRATION, 503, 2);
    api(&fake).registration().await.unwrap();
    assert_eq!(fake.request_count("GET", REGISTRATION), 3);
}

#[tokio::test]
async fn client_errors_are_never_retried() {
    let fake = FakeTldw::start(FakeTldwConfig::default());
    let api = api(&fake);
    for status in [400, 404, 409, 422] {
        fake.clear_requests();
        fake.fail_next("GET", REGISTRATION, status, 1);
        let error = api.registration().await.unwrap_err();
        match status {
            404 => assert!(matches!(error, ApiError::RouteNotFound { .. }), "{error:?}"),
            422 => assert!(
                matches!(&error, ApiError::Validation { detail, .. } if detail == "injected_fault"),
                "{error:?}"
            ),
            _ => assert!(
                matches!(&error, ApiError::Status { status: s, detail, .. }
                    if *s == status && detail == "injected_fault"),
                "{error:?}"
            ),
        }
        assert_eq!(fake.request_count("GET", REGISTRATION), 1, "HTTP {status}");
    }
}

#[tokio::test]
async fn a_dropped_connection_is_retried() {
    let fake = FakeTldw::start(FakeTldwConfig::default());
    let api = api(&fake);
    fake.drop_next_requests("GET", RETENTION, 1);
    assert_eq!(api.retention_policies().await.unwrap().len(), 8);
    assert_eq!(fake.request_count("GET", RETENTION), 2);

    // A new connection closed before anything is read.
    let fresh = TldwApi::new(config(&fake.url(), fake.admin_token(), ApiAuth::Bearer)).unwrap();
    fake.drop_next_connections(1);
    fresh.registration().await.unwrap();
    assert_eq!(fake.dropped_connections(), 1);
}

#[tokio::test]
async fn retries_are_bounded_and_a_permanent_503_fails_after_retries_plus_one_attempts() {
    let fake = FakeTldw::start(FakeTldwConfig::default());
    fake.fail_after("GET", REGISTRATION, 0, 503);
    // Default backoff: 100 + 200 + 400 ms.
    let api = TldwApi::new(ApiConfig::new(
        fake.url(),
        fake.admin_token(),
        ApiAuth::Bearer,
    ))
    .unwrap();
    let started = Instant::now();
    let error = api.registration().await.unwrap_err();
    assert!(started.elapsed() >= Duration::from_millis(700));
    assert!(
        matches!(
            error,
            ApiError::Server {
                status: 503,
                attempts: 4,
                ..
            }
        ),
        "{error:?}"
    );
    assert!(
        error
            .to_string()
            .contains(&format!("{}{REGISTRATION}", fake.url()))
    );
    assert_eq!(fake.request_count("GET", REGISTRATION), 4);
}

#[tokio::test]
async fn a_refused_connection_is_reported_with_the_url() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let url = format!("http://127.0.0.1:{port}");
    let api = TldwApi::new(ApiConfig {
        retries: 1,
        ..config(&url, "some-admin-token", ApiAuth::Bearer)
    })
    .unwrap();
    let error = api.registration().await.unwrap_err();
    assert!(
        matches!(error, ApiError::Unreachable { attempts: 2, .. }),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(
        message.contains(&format!("{url}{REGISTRATION}")),
        "{message}"
    );
    assert!(message.contains("connection refused"), "{message}");
    assert!(!everything_said_about(&error).contains("some-admin-token"));
}

#[tokio::test]
async fn a_slow_server_times_out_with_the_url_after_the_retries() {
    let fake = FakeTldw::start(FakeTldwConfig::default());
    fake.set_delay("GET", REGISTRATION, Duration::from_millis(400));
    let api = TldwApi::new(ApiConfig {
        timeout: Duration::from_millis(100),
        retries: 1,
        ..config(&fake.url(), fake.admin_token(), ApiAuth::Bearer)
    })
    .unwrap();
    let error = api.registration().await.unwrap_err();
    assert!(
        matches!(error, ApiError::Timeout { attempts: 2, .. }),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(message.contains("timed out after 100ms"), "{message}");
    assert!(
        message.contains(&format!("{}{REGISTRATION}", fake.url())),
        "{message}"
    );
    assert_eq!(fake.request_count("GET", REGISTRATION), 2);
}

#[tokio::test]
async fn a_body_that_is_not_the_documented_json_names_the_url_and_what_was_expected() {
    let fake = FakeTldw::start(FakeTldwConfig::default());
    // A 2xx status the fake answers with its own `{"detail": ...}` body, not registration settings.
    fake.fail_next("GET", REGISTRATION, 200, 1);
    let error = api(&fake).registration().await.unwrap_err();
    assert!(
        matches!(error, ApiError::UnexpectedBody { .. }),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(
        message.contains(&format!("{}{REGISTRATION}", fake.url())),
        "{message}"
    );
    assert!(message.contains("enable_registration"), "{message}");
}

// ---------------------------------------------------------------------------------------------
// retention
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_retention_change_is_previewed_then_put_with_the_signature() {
    let fake = FakeTldw::start(FakeTldwConfig::default());
    let api = api(&fake);
    let before = api.retention_policies().await.unwrap();
    assert_eq!(before.len(), 8);
    assert_eq!(before["audit_logs"], Some(180));

    api.set_retention("audit_logs", 180, 365).await.unwrap();

    assert_eq!(fake.retention_days("audit_logs"), Some(365));
    assert_eq!(
        api.retention_policies().await.unwrap()["audit_logs"],
        Some(365)
    );
    assert_eq!(fake.request_count("POST", RETENTION), 1);
    assert_eq!(fake.request_count("PUT", RETENTION), 1);
}

/// Removes the delay of the retention PUT once the first PUT has arrived (its own delay was
/// decided on arrival), so only that one outlives the signature.
fn undelay_after_first_put(fake: &Arc<FakeTldw>) -> std::thread::JoinHandle<()> {
    let fake = fake.clone();
    std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(5);
        while fake.request_count("PUT", RETENTION) == 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        fake.set_delay("PUT", RETENTION, Duration::ZERO);
    })
}

#[tokio::test]
async fn a_signature_that_expires_before_the_put_is_previewed_again_and_succeeds() {
    let fake = Arc::new(FakeTldw::start(FakeTldwConfig {
        signature_ttl: Duration::from_millis(50),
        ..FakeTldwConfig::default()
    }));
    fake.set_delay("PUT", RETENTION, Duration::from_millis(150));
    let undelay = undelay_after_first_put(&fake);

    api(&fake).set_retention("sessions", 90, 30).await.unwrap();
    undelay.join().unwrap();

    assert_eq!(fake.retention_days("sessions"), Some(30));
    assert_eq!(fake.request_count("POST", RETENTION), 2);
    let puts: Vec<Option<u16>> = fake
        .requests()
        .iter()
        .filter(|r| r.method == "PUT")
        .map(|r| r.status)
        .collect();
    assert_eq!(puts, [Some(400), Some(200)]);
}

#[tokio::test]
async fn a_signature_refused_after_a_fresh_preview_too_is_an_error() {
    let fake = FakeTldw::start(FakeTldwConfig {
        signature_ttl: Duration::from_millis(30),
        ..FakeTldwConfig::default()
    });
    fake.set_delay("PUT", RETENTION, Duration::from_millis(100));
    let error = api(&fake)
        .set_retention("sessions", 90, 30)
        .await
        .unwrap_err();
    let ApiError::SignatureRejected { detail, .. } = &error else {
        panic!("{error:?}");
    };
    assert_eq!(detail, "expired_preview_signature");
    assert_eq!(fake.retention_days("sessions"), Some(90));
    assert_eq!(fake.request_count("POST", RETENTION), 2);
    assert_eq!(fake.request_count("PUT", RETENTION), 2);
}

#[tokio::test]
async fn a_stale_current_days_is_reported_with_the_days_the_server_has() {
    let fake = Arc::new(FakeTldw::start(FakeTldwConfig::default()));
    let api = api(&fake);

    // Stale at the preview.
    fake.set_retention_days("sessions", 30);
    let error = api.set_retention("sessions", 90, 60).await.unwrap_err();
    assert!(
        matches!(
            &error,
            ApiError::StaleRetention { key, expected: 90, actual: 30 } if key == "sessions"
        ),
        "{error:?}"
    );
    assert!(error.to_string().contains("`sessions`"), "{error}");
    assert_eq!(fake.retention_days("sessions"), Some(30));

    // Stale at the PUT: someone changes it between preview and PUT.
    fake.set_delay("PUT", RETENTION, Duration::from_millis(100));
    let meddler = {
        let fake = fake.clone();
        std::thread::spawn(move || {
            while fake.request_count("PUT", RETENTION) == 0 {
                std::thread::sleep(Duration::from_millis(1));
            }
            fake.set_retention_days("privilege_snapshots", 45);
        })
    };
    let error = api
        .set_retention("privilege_snapshots", 90, 120)
        .await
        .unwrap_err();
    meddler.join().unwrap();
    assert!(
        matches!(
            &error,
            ApiError::StaleRetention { key, expected: 90, actual: 45 } if key == "privilege_snapshots"
        ),
        "{error:?}"
    );
    assert_eq!(fake.retention_days("privilege_snapshots"), Some(45));
    // The server never answers the PUT with 409: the moved value fails the signature, and the
    // one fresh preview from the planned value is what finds it stale.
    let statuses: Vec<(String, Option<u16>)> = fake
        .requests()
        .iter()
        .filter(|r| r.path.contains("privilege_snapshots"))
        .map(|r| (r.method.clone(), r.status))
        .collect();
    assert_eq!(
        statuses,
        [
            ("POST".to_string(), Some(200)),
            ("PUT".to_string(), Some(400)),
            ("POST".to_string(), Some(409)),
        ]
    );
}

#[tokio::test]
async fn a_policy_the_server_reports_as_null_reads_as_none_and_cannot_be_changed() {
    let fake = FakeTldw::start(FakeTldwConfig {
        retention_null: vec!["sessions".to_string()],
        ..FakeTldwConfig::default()
    });
    let api = api(&fake);
    assert_eq!(api.retention_policies().await.unwrap()["sessions"], None);
    let error = api.set_retention("sessions", 90, 30).await.unwrap_err();
    assert!(
        matches!(&error, ApiError::RetentionUnset { key, .. } if key == "sessions"),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(message.contains("(null)"), "{message}");
    assert!(message.contains("set it in the .env"), "{message}");
    assert_eq!(fake.request_count("PUT", RETENTION), 0);
    assert_eq!(fake.retention_value("sessions"), Some(None));
}

#[tokio::test]
async fn a_weekly_window_the_server_would_raise_is_not_applied() {
    let fake = FakeTldw::start(FakeTldwConfig {
        retention_days: vec![("privilege_snapshots".to_string(), 400)],
        ..FakeTldwConfig::default()
    });
    let error = api(&fake)
        .set_retention("privilege_snapshots_weekly", 365, 100)
        .await
        .unwrap_err();
    assert!(
        matches!(
            &error,
            ApiError::RetentionRaised { key, days: 100, new_days: 400, .. }
                if key == "privilege_snapshots_weekly"
        ),
        "{error:?}"
    );
    assert!(error.to_string().contains("would keep 400 days"), "{error}");
    assert_eq!(fake.request_count("PUT", RETENTION), 0);
    assert_eq!(fake.retention_days("privilege_snapshots_weekly"), Some(365));
}

#[tokio::test]
async fn a_response_larger_than_the_limit_is_refused_with_the_url_and_not_retried() {
    let fake = FakeTldw::start(FakeTldwConfig::default());
    fake.oversize_next("GET", RETENTION, 9 << 20, 1);
    let api = api(&fake);
    let error = api.retention_policies().await.unwrap_err();
    assert!(
        matches!(&error, ApiError::ResponseTooLarge { limit, .. } if *limit == 8 << 20),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(
        message.contains(&format!("GET {}{RETENTION}", fake.url())),
        "{message}"
    );
    assert!(message.contains("larger than 8 MiB"), "{message}");
    assert!(!error.is_transient());
    assert_eq!(fake.request_count("GET", RETENTION), 1);
    // A body at the limit is read.
    let small = TldwApi::new(ApiConfig {
        max_response_bytes: 64,
        ..config(&fake.url(), fake.admin_token(), ApiAuth::Bearer)
    })
    .unwrap();
    fake.oversize_next("GET", RETENTION, 64, 1);
    let at_limit = small.retention_policies().await.unwrap_err();
    assert!(
        matches!(at_limit, ApiError::UnexpectedBody { .. }),
        "64 bytes are read (and are not the documented JSON): {at_limit:?}"
    );
    fake.oversize_next("GET", RETENTION, 65, 1);
    assert!(matches!(
        small.retention_policies().await.unwrap_err(),
        ApiError::ResponseTooLarge { .. }
    ));
}

#[tokio::test]
async fn a_retention_put_whose_response_was_lost_is_retried_and_counts_as_done() {
    let fake = FakeTldw::start(FakeTldwConfig::default());
    fake.drop_next_responses("PUT", RETENTION, 1);
    let api = api(&fake);
    api.set_retention("usage_logs", 180, 90).await.unwrap();
    assert_eq!(fake.retention_days("usage_logs"), Some(90));
    // Running the same change again is safe too.
    api.set_retention("usage_logs", 180, 90).await.unwrap();
    assert_eq!(fake.retention_days("usage_logs"), Some(90));
}

#[tokio::test]
async fn an_unknown_retention_key_and_out_of_range_days_are_clear_errors() {
    let fake = FakeTldw::start(FakeTldwConfig::default());
    let api = api(&fake);

    let error = api
        .set_retention("no_such_policy", 10, 20)
        .await
        .unwrap_err();
    assert!(
        matches!(&error, ApiError::UnknownRetentionKey { key, .. } if key == "no_such_policy"),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(
        message.contains("no retention policy `no_such_policy`"),
        "{message}"
    );
    assert!(
        message.contains(&format!("{}{RETENTION}/no_such_policy/preview", fake.url())),
        "{message}"
    );

    // audit_logs allows 30..=3650 days.
    let error = api.set_retention("audit_logs", 180, 5).await.unwrap_err();
    assert!(
        matches!(&error, ApiError::RetentionOutOfRange { key, days: 5, .. } if key == "audit_logs"),
        "{error:?}"
    );
    assert!(
        error.to_string().contains("5 days is outside the range"),
        "{error}"
    );
    assert_eq!(fake.retention_days("audit_logs"), Some(180));
    assert_eq!(fake.request_count("POST", RETENTION), 2);
    assert_eq!(fake.request_count("PUT", RETENTION), 0);
}

#[tokio::test]
async fn a_retention_key_with_reserved_characters_stays_one_path_segment() {
    let fake = FakeTldw::start(FakeTldwConfig::default());
    let error = api(&fake)
        .set_retention("../users?x=1", 10, 20)
        .await
        .unwrap_err();
    assert!(
        matches!(error, ApiError::UnknownRetentionKey { .. }),
        "{error:?}"
    );
    let request = &fake.requests()[0];
    assert_eq!(
        request.path,
        format!("{RETENTION}/..%2Fusers%3Fx=1/preview")
    );
}

// ---------------------------------------------------------------------------------------------
// registration
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn the_registration_settings_are_read_as_the_server_reports_them() {
    let fake = FakeTldw::start(FakeTldwConfig {
        profile: Some("production".to_string()),
        ..FakeTldwConfig::default()
    });
    fake.set_registration(true, true);
    let settings = api(&fake).registration().await.unwrap();
    assert_eq!(
        settings,
        RegistrationSettings {
            enable_registration: true,
            require_registration_code: true,
            auth_mode: Some("multi_user".to_string()),
            profile: Some("production".to_string()),
            self_registration_allowed: Some(true),
        }
    );
}
