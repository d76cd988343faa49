//! Tests of the fake tldw_server over real loopback HTTP (reqwest) and of the
//! PostgreSQL harness.

#![allow(clippy::disallowed_methods)] // test code reads TLDW_OPS_REQUIRE_PG and its own markers directly

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::fake_tldw::{AuthKind, FakeTldw, FakeTldwConfig, Principal};
use crate::support::pg::{self, PgCluster};

const ADMIN: &str = "/api/v1/admin";

#[derive(Clone, Copy)]
enum Auth<'a> {
    None,
    Bearer(&'a str),
    ApiKey(&'a str),
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client")
}

/// Sends a request and returns the status and the JSON body (`Null` when the
/// body is empty or not JSON).
async fn call(
    c: &reqwest::Client,
    fake: &FakeTldw,
    method: &str,
    path: &str,
    auth: Auth<'_>,
    body: Option<&str>,
) -> (u16, Value) {
    let resp = send(c, fake, method, path, auth, body)
        .await
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
    let status = resp.status().as_u16();
    let text = resp.text().await.expect("body");
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

async fn send(
    c: &reqwest::Client,
    fake: &FakeTldw,
    method: &str,
    path: &str,
    auth: Auth<'_>,
    body: Option<&str>,
) -> reqwest::Result<reqwest::Response> {
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    let mut req = c.request(method, format!("{}{path}", fake.url()));
    req = match auth {
        Auth::None => req,
        Auth::Bearer(t) => req.bearer_auth(t),
        Auth::ApiKey(t) => req.header("X-API-KEY", t),
    };
    if let Some(body) = body {
        req = req
            .header("content-type", "application/json")
            .body(body.to_owned());
    }
    req.send().await
}

async fn admin(
    c: &reqwest::Client,
    fake: &FakeTldw,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let body = body.map(|b| b.to_string());
    call(
        c,
        fake,
        method,
        &format!("{ADMIN}{path}"),
        Auth::Bearer(fake.admin_token()),
        body.as_deref(),
    )
    .await
}

fn second_admin_config() -> FakeTldwConfig {
    FakeTldwConfig {
        extra_tokens: vec![(
            "ops-token".to_owned(),
            Principal {
                name: "ops".to_owned(),
                admin: true,
            },
        )],
        ..FakeTldwConfig::default()
    }
}

fn loc(v: &Value) -> Value {
    v["detail"][0]["loc"].clone()
}

// ---------------------------------------------------------------------------
// health and routing
// ---------------------------------------------------------------------------

#[tokio::test]
async fn health_is_public_exact_and_not_cacheable_and_head_works() {
    let fake = FakeTldw::start(FakeTldwConfig::default());
    let c = client();
    let resp = send(&c, &fake, "GET", "/health", Auth::None, None)
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["cache-control"], "no-store");
    assert_eq!(resp.headers()["content-type"], "application/json");
    assert_eq!(resp.text().await.unwrap(), r#"{"status":"ok"}"#);

    let resp = send(&c, &fake, "HEAD", "/health", Auth::None, None)
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["cache-control"], "no-store");
    assert_eq!(resp.text().await.unwrap(), "");

    let (status, body) = call(&c, &fake, "GET", "/internal/ready", Auth::None, None).await;
    assert_eq!((status, body), (200, json!({"status": "ready"})));
}

#[tokio::test]
async fn readiness_and_health_flags_flip_and_clear_faults_restores_them() {
    let fake = FakeTldw::start(FakeTldwConfig::default());
    let c = client();
    fake.set_ready(false);
    assert_eq!(
        call(&c, &fake, "GET", "/internal/ready", Auth::None, None).await,
        (503, json!({"status": "not_ready"}))
    );
    assert_eq!(
        call(&c, &fake, "GET", "/health", Auth::None, None).await.0,
        200
    );
    fake.set_ready(true);
    fake.set_healthy(false);
    assert_eq!(
        call(&c, &fake, "GET", "/health", Auth::None, None).await,
        (503, json!({"status": "unhealthy"}))
    );
    assert_eq!(
        call(&c, &fake, "GET", "/internal/ready", Auth::None, None).await,
        (503, json!({"status": "not_ready"}))
    );
    fake.clear_faults();
    assert_eq!(
        call(&c, &fake, "GET", "/health", Auth::None, None).await.0,
        200
    );
    assert_eq!(
        call(&c, &fake, "GET", "/internal/ready", Auth::None, None)
            .await
            .0,
        200
    );
}

#[tokio::test]
async fn unknown_routes_are_404_and_wrong_methods_are_405_in_fastapi_style() {
    let fake = FakeTldw::start(FakeTldwConfig::default());
    let c = client();
    assert_eq!(
        admin(&c, &fake, "GET", "/nope", None).await,
        (404, json!({"detail": "Not Found"}))
    );
    assert_eq!(
        admin(&c, &fake, "DELETE", "/users", None).await,
        (405, json!({"detail": "Method Not Allowed"}))
    );
}

// ---------------------------------------------------------------------------
// auth
// ---------------------------------------------------------------------------

#[tokio::test]
async fn every_admin_route_rejects_missing_unknown_and_non_admin_tokens_with_both_header_kinds() {
    let fake = FakeTldw::start(FakeTldwConfig::default());
    let c = client();
    let routes: [(&str, &str, Option<&str>); 8] = [
        ("GET", "/users", None),
        ("GET", "/storage-quotas/users/1", None),
        ("PUT", "/storage-quotas/users/1", Some(r#"{"quota_mb": 1}"#)),
        ("GET", "/retention-policies", None),
        (
            "POST",
            "/retention-policies/audit_logs/preview",
            Some(r#"{"current_days": 180, "days": 90}"#),
        ),
        (
            "PUT",
            "/retention-policies/audit_logs",
            Some(r#"{"days": 90, "preview_signature": "x"}"#),
        ),
        ("GET", "/registration-settings", None),
        (
            "POST",
            "/registration-settings",
            Some(r#"{"enable_registration": true}"#),
        ),
    ];
    for (method, path, body) in routes {
        let path = format!("{ADMIN}{path}");
        let resp = send(&c, &fake, method, &path, Auth::None, body)
            .await
            .unwrap();
        assert_eq!(resp.status(), 401, "{method} {path}");
        assert_eq!(resp.headers()["www-authenticate"], "Bearer");
        assert_eq!(
            resp.json::<Value>().await.unwrap(),
            json!({"detail": "Not authenticated"})
        );
        for auth in [Auth::Bearer("wrong"), Auth::ApiKey("wrong")] {
            assert_eq!(
                call(&c, &fake, method, &path, auth, body).await,
                (401, json!({"detail": "Invalid token"})),
                "{method} {path}"
            );
        }
        for auth in [
            Auth::Bearer(fake.user_token()),
            Auth::ApiKey(fake.user_token()),
        ] {
            assert_eq!(
                call(&c, &fake, method, &path, auth, body).await,
                (403, json!({"detail": "Admin role required"})),
                "{method} {path}"
            );
        }
    }
    // Nothing was changed by the rejected writes.
    assert_eq!(fake.quota("user0001"), Some(Some(5120)));
    assert_eq!(fake.retention_days("audit_logs"), Some(180));
    assert_eq!(fake.registration(), (false, false));
}

#[tokio::test]
async fn the_admin_token_works_in_either_header_and_the_log_records_the_kind_but_never_the_token() {
    let fake = FakeTldw::start(FakeTldwConfig::default());
    let c = client();
    let path = format!("{ADMIN}/users");
    for auth in [
        Auth::Bearer(fake.admin_token()),
        Auth::ApiKey(fake.admin_token()),
    ] {
        assert_eq!(call(&c, &fake, "GET", &path, auth, None).await.0, 200);
    }
    let resp = c
        .get(format!("{}{path}", fake.url()))
        .bearer_auth("wrong")
        .header("X-API-KEY", fake.admin_token())
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status(),
        200,
        "a valid key beside a bad bearer is accepted"
    );
    call(&c, &fake, "GET", &path, Auth::None, None).await;

    let kinds: Vec<AuthKind> = fake.requests().iter().map(|r| r.auth).collect();
    assert_eq!(
        kinds,
        [
            AuthKind::Bearer,
            AuthKind::ApiKey,
            AuthKind::Both,
            AuthKind::None
        ]
    );
    let dump = format!("{:?}", fake.requests());
    assert!(!dump.contains(fake.admin_token()), "{dump}");
    assert_eq!(fake.request_count("GET", "/api/v1/admin/users"), 4);
    assert_eq!(fake.request_count("*", "/api"), 4);
    assert_eq!(fake.request_count("PUT", "/"), 0);
}

// ---------------------------------------------------------------------------
// users
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_users_page_without_gaps_or_duplicates_and_their_quotas_serve_fast() {
    let fake = FakeTldw::start(FakeTldwConfig {
        users: 10_000,
        seed_quotas: |i| if i % 4 == 0 { None } else { Some(i as i64) },
        ..FakeTldwConfig::default()
    });
    let c = client();
    let started = Instant::now();
    let mut ids = Vec::new();
    let mut page = 1;
    let mut page_sizes = 0;
    loop {
        let (status, body) = admin(
            &c,
            &fake,
            "GET",
            &format!("/users?limit=100&page={page}"),
            None,
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(body["total"], 10_000);
        assert_eq!(body["pages"], 100);
        assert_eq!(body["pagination"]["has_prev"], page > 1);
        let users = body["users"].as_array().unwrap();
        page_sizes += users.len();
        ids.extend(users.iter().map(|u| u["id"].as_i64().unwrap()));
        if !body["pagination"]["has_next"].as_bool().unwrap() {
            break;
        }
        page += 1;
    }
    assert_eq!(page, 100);
    assert_eq!(page_sizes, 10_000);
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ordered by id");
    assert_eq!(ids.iter().copied().collect::<HashSet<_>>().len(), 10_000);
    let (_, beyond) = admin(&c, &fake, "GET", "/users?limit=100&page=101", None).await;
    assert_eq!(beyond["users"], json!([]));
    assert_eq!(beyond["total"], 10_000);
    let listed = started.elapsed();

    let started = Instant::now();
    let next = Arc::new(AtomicUsize::new(0));
    let ids = Arc::new(ids);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..16 {
        let (c, next, ids, url, token) = (
            c.clone(),
            next.clone(),
            ids.clone(),
            fake.url(),
            fake.admin_token().to_owned(),
        );
        tasks.spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(id) = ids.get(i) else { break };
                let resp = c
                    .get(format!("{url}{ADMIN}/storage-quotas/users/{id}"))
                    .bearer_auth(&token)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(resp.status(), 200);
                let body: Value = resp.json().await.unwrap();
                let expected = if id % 4 == 0 { json!(null) } else { json!(id) };
                assert_eq!(body["quota_mb"], expected, "user {id}");
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.unwrap();
    }
    let quotas = started.elapsed();
    eprintln!("100 pages in {listed:?}; 10,000 quota GETs (16 in flight) in {quotas:?}");
    assert_eq!(
        fake.request_count("GET", "/api/v1/admin/storage-quotas/"),
        10_000
    );
    assert!(quotas < Duration::from_secs(60), "too slow: {quotas:?}");
}

#[tokio::test]
async fn user_summaries_have_the_documented_fields_and_defaults() {
    let fake = FakeTldw::start(FakeTldwConfig {
        users: 2,
        extra_users: vec![("Zed".to_owned(), None)],
        ..FakeTldwConfig::default()
    });
    let c = client();
    let (status, body) = admin(&c, &fake, "GET", "/users", None).await;
    assert_eq!(status, 200);
    assert_eq!(
        (
            &body["page"],
            &body["limit"],
            &body["total"],
            &body["pages"]
        ),
        (&json!(1), &json!(20), &json!(3), &json!(1))
    );
    assert_eq!(
        body["pagination"],
        json!({"page": 1, "limit": 20, "total": 3, "pages": 1, "has_next": false, "has_prev": false})
    );
    let first = &body["users"][0];
    let mut keys: Vec<&str> = first
        .as_object()
        .unwrap()
        .keys()
        .map(|k| k.as_str())
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "created_at",
            "email",
            "id",
            "is_active",
            "is_verified",
            "last_login",
            "mfa_enabled",
            "role",
            "storage_quota_mb",
            "storage_used_mb",
            "username",
            "uuid"
        ]
    );
    assert_eq!(first["id"], 1);
    assert_eq!(first["username"], "user0001");
    assert_eq!(first["email"], "user0001@example.com");
    assert_eq!(first["last_login"], Value::Null);
    assert_eq!(first["storage_quota_mb"], 5120);
    assert!(first["storage_used_mb"].is_f64());
    assert_eq!(first["uuid"].as_str().unwrap().len(), 36);
    assert_eq!(body["users"][2]["username"], "Zed");
    assert_eq!(body["users"][2]["id"], 3);
    assert_eq!(body["users"][2]["storage_quota_mb"], Value::Null);
    assert_eq!(fake.user_id("Zed"), Some(3));
    assert_eq!(fake.user_count(), 3);
}

#[tokio::test]
async fn search_is_a_case_insensitive_substring_of_username_or_email_and_filters_combine() {
    let fake = FakeTldw::start(FakeTldwConfig {
        users: 250,
        extra_users: vec![("Carol.Admin".to_owned(), Some(10))],
        ..FakeTldwConfig::default()
    });
    let c = client();
    let names = |body: &Value| -> Vec<String> {
        body["users"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u["username"].as_str().unwrap().to_owned())
            .collect()
    };
    let (_, body) = admin(&c, &fake, "GET", "/users?search=USER012&limit=100", None).await;
    assert_eq!(body["total"], 10);
    assert_eq!(names(&body)[0], "user0120");
    let (_, body) = admin(
        &c,
        &fake,
        "GET",
        "/users?search=carol.ADMIN%40EXAMPLE",
        None,
    )
    .await;
    assert_eq!(names(&body), ["Carol.Admin"]);
    let (_, body) = admin(&c, &fake, "GET", "/users?search=nobody", None).await;
    assert_eq!(
        (body["total"].clone(), body["pages"].clone()),
        (json!(0), json!(0))
    );
    let (_, body) = admin(&c, &fake, "GET", "/users?role=admin", None).await;
    assert_eq!(names(&body), ["user0100", "user0200"]);
    let (_, body) = admin(
        &c,
        &fake,
        "GET",
        "/users?is_active=false&limit=5&page=2",
        None,
    )
    .await;
    assert_eq!(body["total"], 25);
    assert_eq!(
        names(&body),
        ["user0060", "user0070", "user0080", "user0090", "user0100"]
    );
    let (_, body) = admin(&c, &fake, "GET", "/users?is_active=false&role=admin", None).await;
    assert_eq!(names(&body), ["user0100", "user0200"]);
    let (_, body) = admin(&c, &fake, "GET", "/users?search=&limit=1", None).await;
    assert_eq!(body["total"], 251, "an empty search does not filter");
}

#[tokio::test]
async fn out_of_range_or_malformed_paging_parameters_are_422_with_their_location() {
    let fake = FakeTldw::start(FakeTldwConfig::default());
    let c = client();
    for (query, param, typ) in [
        ("limit=0", "limit", "greater_than_equal"),
        ("limit=101", "limit", "less_than_equal"),
        ("limit=abc", "limit", "int_parsing"),
        ("page=0", "page", "greater_than_equal"),
        ("page=-3", "page", "greater_than_equal"),
        ("is_active=maybe", "is_active", "bool_parsing"),
    ] {
        let (status, body) = admin(&c, &fake, "GET", &format!("/users?{query}"), None).await;
        assert_eq!(status, 422, "{query}");
        assert_eq!(loc(&body), json!(["query", param]), "{query}");
        assert_eq!(body["detail"][0]["type"], typ, "{query}");
    }
    let (status, body) = admin(&c, &fake, "GET", "/users?limit=100&page=7", None).await;
    assert_eq!(status, 200);
    assert_eq!(body["users"], json!([]));
    assert_eq!(body["pagination"]["has_next"], false);
}

// ---------------------------------------------------------------------------
// storage quotas
// ---------------------------------------------------------------------------

#[tokio::test]
async fn quota_reads_report_usage_limits_and_unknown_or_malformed_ids() {
    let fake = FakeTldw::start(FakeTldwConfig::default());
    let c = client();
    fake.set_used_mb("user0001", 100.0);
    assert_eq!(
        admin(&c, &fake, "GET", "/storage-quotas/users/1", None).await,
        (
            200,
            json!({"quota_mb": 5120, "used_mb": 100.0, "remaining_mb": 5020.0, "usage_pct": 1.95,
                   "at_soft_limit": false, "at_hard_limit": false, "has_quota": true})
        )
    );
    fake.set_quota("user0001", Some(1000));
    fake.set_used_mb("user0001", 800.0);
    let (_, body) = admin(&c, &fake, "GET", "/storage-quotas/users/1", None).await;
    assert_eq!(
        (
            &body["at_soft_limit"],
            &body["at_hard_limit"],
            &body["usage_pct"]
        ),
        (&json!(true), &json!(false), &json!(80.0))
    );
    fake.set_used_mb("user0001", 1200.0);
    let (_, body) = admin(&c, &fake, "GET", "/storage-quotas/users/1", None).await;
    assert_eq!(
        (&body["at_hard_limit"], &body["remaining_mb"]),
        (&json!(true), &json!(0.0))
    );
    assert_eq!(
        admin(&c, &fake, "GET", "/storage-quotas/users/999", None).await,
        (404, json!({"detail": "User not found"}))
    );
    let (status, body) = admin(&c, &fake, "GET", "/storage-quotas/users/abc", None).await;
    assert_eq!(status, 422);
    assert_eq!(loc(&body), json!(["path", "user_id"]));
    assert_eq!(body["detail"][0]["type"], "int_parsing");
}

#[tokio::test]
async fn quota_writes_set_remove_and_block_and_show_up_everywhere() {
    let fake = FakeTldw::start(FakeTldwConfig::default());
    let c = client();
    fake.set_used_mb("user0002", 10.0);
    let (status, body) = admin(
        &c,
        &fake,
        "PUT",
        "/storage-quotas/users/2",
        Some(json!({"quota_mb": 2048})),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["quota_mb"], 2048);
    assert_eq!(fake.quota("user0002"), Some(Some(2048)));

    assert_eq!(
        admin(
            &c,
            &fake,
            "PUT",
            "/storage-quotas/users/2",
            Some(json!({"quota_mb": null}))
        )
        .await,
        (
            200,
            json!({"quota_mb": null, "used_mb": 10.0, "remaining_mb": null, "usage_pct": null,
                   "at_soft_limit": false, "at_hard_limit": false, "has_quota": false})
        )
    );
    assert_eq!(fake.quota("user0002"), Some(None));
    let (_, listing) = admin(&c, &fake, "GET", "/users", None).await;
    assert_eq!(listing["users"][1]["storage_quota_mb"], Value::Null);

    let (_, body) = admin(
        &c,
        &fake,
        "PUT",
        "/storage-quotas/users/2",
        Some(json!({"quota_mb": 0})),
    )
    .await;
    assert_eq!(
        (
            &body["quota_mb"],
            &body["at_soft_limit"],
            &body["at_hard_limit"],
            &body["remaining_mb"]
        ),
        (&json!(0), &json!(true), &json!(true), &json!(0.0))
    );

    fake.set_quota("user0003", Some(7));
    let (_, body) = admin(&c, &fake, "GET", "/storage-quotas/users/3", None).await;
    assert_eq!(body["quota_mb"], 7, "out-of-band change is visible");
    assert_eq!(fake.quota("nobody"), None);
    assert_eq!(
        admin(
            &c,
            &fake,
            "PUT",
            "/storage-quotas/users/42",
            Some(json!({"quota_mb": 1}))
        )
        .await,
        (404, json!({"detail": "User not found"}))
    );
}

#[tokio::test]
async fn invalid_quota_bodies_are_422_with_fastapi_validation_details_and_change_nothing() {
    let fake = FakeTldw::start(FakeTldwConfig::default());
    let c = client();
    let path = format!("{ADMIN}/storage-quotas/users/1");
    let token = Auth::Bearer(fake.admin_token());
    for (body, typ, field_loc) in [
        (
            r#"{"quota_mb": -1}"#,
            "greater_than_equal",
            json!(["body", "quota_mb"]),
        ),
        (
            r#"{"quota_mb": 1.5}"#,
            "int_from_float",
            json!(["body", "quota_mb"]),
        ),
        (
            r#"{"quota_mb": "100"}"#,
            "int_type",
            json!(["body", "quota_mb"]),
        ),
        (
            r#"{"quota_mb": true}"#,
            "int_type",
            json!(["body", "quota_mb"]),
        ),
        (r#"{"quota": 5}"#, "missing", json!(["body", "quota_mb"])),
        (r#"[1]"#, "model_attributes_type", json!(["body"])),
        ("", "missing", json!(["body"])),
    ] {
        let (status, resp) = call(&c, &fake, "PUT", &path, token, Some(body)).await;
        assert_eq!(status, 422, "{body}");
        assert_eq!(resp["detail"][0]["type"], typ, "{body}");
        assert_eq!(loc(&resp), field_loc, "{body}");
        assert!(resp["detail"][0]["msg"].is_string());
    }
    let (status, resp) = call(&c, &fake, "PUT", &path, token, Some("{not json")).await;
    assert_eq!(status, 422);
    assert_eq!(resp["detail"][0]["type"], "json_invalid");
    let (status, resp) = call(
        &c,
        &fake,
        "PUT",
        &format!("{ADMIN}/storage-quotas/users/x"),
        token,
        Some(r#"{"quota_mb": -5}"#),
    )
    .await;
    assert_eq!(status, 422);
    assert_eq!(
        resp["detail"].as_array().unwrap().len(),
        2,
        "path and body errors together"
    );
    assert_eq!(fake.quota("user0001"), Some(Some(5120)));
}

// ---------------------------------------------------------------------------
// retention policies (tldw_server's admin_data_ops.py and admin_data_ops_service.py; see
// docs/admin-api.md)
// ---------------------------------------------------------------------------

#[tokio::test]
async fn retention_policies_list_the_eight_keys_with_their_defaults_as_key_days_description() {
    let fake = FakeTldw::start(FakeTldwConfig::default());
    let c = client();
    let (status, body) = admin(&c, &fake, "GET", "/retention-policies", None).await;
    assert_eq!(status, 200);
    let got: Vec<(String, i64)> = body["policies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let fields: Vec<&String> = p.as_object().unwrap().keys().collect();
            assert_eq!(fields, ["key", "days", "description"], "{p}");
            assert!(p["description"].is_string());
            (
                p["key"].as_str().unwrap().to_owned(),
                p["days"].as_i64().unwrap(),
            )
        })
        .collect();
    let expected = [
        ("audit_logs", 180),
        ("usage_logs", 180),
        ("llm_usage_logs", 180),
        ("usage_daily", 365),
        ("llm_usage_daily", 365),
        ("sessions", 90),
        ("privilege_snapshots", 90),
        ("privilege_snapshots_weekly", 365),
    ];
    assert_eq!(
        got,
        expected
            .iter()
            .map(|(k, d)| (k.to_string(), *d))
            .collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn a_policy_with_unset_days_is_listed_as_null_and_cannot_be_changed() {
    let fake = FakeTldw::start(FakeTldwConfig {
        retention_null: vec!["sessions".to_owned()],
        ..FakeTldwConfig::default()
    });
    let c = client();
    let (_, list) = admin(&c, &fake, "GET", "/retention-policies", None).await;
    assert_eq!(
        list["policies"][5],
        json!({"key": "sessions", "days": null, "description": "Session log retention"})
    );
    // The live value counts as 0, which no preview request (current_days >= 1) can match.
    assert_eq!(
        admin(
            &c,
            &fake,
            "POST",
            "/retention-policies/sessions/preview",
            Some(json!({"current_days": 90, "days": 30}))
        )
        .await,
        (409, json!({"detail": "stale_current_days"}))
    );
    let (status, body) = admin(
        &c,
        &fake,
        "POST",
        "/retention-policies/sessions/preview",
        Some(json!({"current_days": 0, "days": 30})),
    )
    .await;
    assert_eq!(status, 422);
    assert_eq!(loc(&body), json!(["body", "current_days"]));
    assert_eq!(fake.retention_value("sessions"), Some(None));
}

#[tokio::test]
async fn a_preview_then_a_signed_put_changes_the_policy_and_only_the_put_does() {
    let fake = FakeTldw::start(FakeTldwConfig::default());
    let c = client();
    let (status, preview) = admin(
        &c,
        &fake,
        "POST",
        "/retention-policies/audit_logs/preview",
        Some(json!({"current_days": 180, "days": 90})),
    )
    .await;
    assert_eq!(status, 200);
    let fields: Vec<&String> = preview.as_object().unwrap().keys().collect();
    assert_eq!(
        fields,
        [
            "key",
            "current_days",
            "new_days",
            "counts",
            "preview_signature",
            "notes"
        ]
    );
    assert_eq!(
        (
            &preview["key"],
            &preview["current_days"],
            &preview["new_days"]
        ),
        (&json!("audit_logs"), &json!(180), &json!(90))
    );
    assert!(preview["counts"]["audit_log_entries"].as_i64().unwrap() > 0);
    assert_eq!(preview["counts"]["job_records"], 0);
    assert_eq!(preview["counts"]["backup_files"], 0);
    assert_eq!(
        fake.retention_days("audit_logs"),
        Some(180),
        "preview changes nothing"
    );

    let sig = preview["preview_signature"].as_str().unwrap();
    assert_eq!(
        admin(
            &c,
            &fake,
            "PUT",
            "/retention-policies/audit_logs",
            Some(json!({"days": 90, "preview_signature": sig}))
        )
        .await,
        (
            200,
            json!({"key": "audit_logs", "days": 90, "description": "AuthNZ audit log retention"})
        )
    );
    assert_eq!(fake.retention_days("audit_logs"), Some(90));
    let (_, list) = admin(&c, &fake, "GET", "/retention-policies", None).await;
    assert_eq!(list["policies"][0]["days"], 90);

    // Replaying the signature after the change: it binds the current days, which moved.
    assert_eq!(
        admin(
            &c,
            &fake,
            "PUT",
            "/retention-policies/audit_logs",
            Some(json!({"days": 90, "preview_signature": sig}))
        )
        .await,
        (400, json!({"detail": "invalid_preview_signature"}))
    );
    // Extending is previewed with nothing to delete.
    let (_, preview) = admin(
        &c,
        &fake,
        "POST",
        "/retention-policies/audit_logs/preview",
        Some(json!({"current_days": 90, "days": 400})),
    )
    .await;
    assert_eq!(preview["counts"]["audit_log_entries"], 0);
}

#[tokio::test]
async fn the_weekly_snapshot_window_is_raised_to_the_daily_one_in_the_preview_and_the_put() {
    let fake = FakeTldw::start(FakeTldwConfig {
        retention_days: vec![("privilege_snapshots".to_owned(), 400)],
        ..FakeTldwConfig::default()
    });
    let c = client();
    let (status, preview) = admin(
        &c,
        &fake,
        "POST",
        "/retention-policies/privilege_snapshots_weekly/preview",
        Some(json!({"current_days": 365, "days": 100})),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(preview["new_days"], 400, "{preview}");
    let sig = &preview["preview_signature"];
    assert_eq!(
        admin(
            &c,
            &fake,
            "PUT",
            "/retention-policies/privilege_snapshots_weekly",
            Some(json!({"days": 100, "preview_signature": sig}))
        )
        .await,
        (
            200,
            json!({"key": "privilege_snapshots_weekly", "days": 400, "description": "Weekly privilege snapshot retention"})
        )
    );
    assert_eq!(fake.retention_days("privilege_snapshots_weekly"), Some(400));
}

#[tokio::test]
async fn a_signature_is_bound_to_key_principal_and_days_and_is_required() {
    let fake = FakeTldw::start(second_admin_config());
    let c = client();
    let (_, preview) = admin(
        &c,
        &fake,
        "POST",
        "/retention-policies/usage_logs/preview",
        Some(json!({"current_days": 180, "days": 30})),
    )
    .await;
    let sig = preview["preview_signature"].as_str().unwrap().to_owned();
    let put = |key: &str, days: i64, sig: Value| {
        (
            format!("{ADMIN}/retention-policies/{key}"),
            json!({"days": days, "preview_signature": sig}).to_string(),
        )
    };
    let invalid = (400, json!({"detail": "invalid_preview_signature"}));
    let (body_part, digest) = sig.split_once('.').unwrap();
    let mut tampered_digest = digest.to_owned();
    let last = if digest.ends_with('0') { "1" } else { "0" };
    tampered_digest.replace_range(digest.len() - 1.., last);
    let cases = [
        (
            "usage_logs",
            31,
            json!(sig),
            Auth::Bearer(fake.admin_token()),
            "other days",
        ),
        (
            "llm_usage_logs",
            30,
            json!(sig),
            Auth::Bearer(fake.admin_token()),
            "other key",
        ),
        (
            "usage_logs",
            30,
            json!(sig),
            Auth::ApiKey("ops-token"),
            "other principal",
        ),
        (
            "usage_logs",
            30,
            json!(format!("{body_part}.{tampered_digest}")),
            Auth::Bearer(fake.admin_token()),
            "tampered",
        ),
        (
            "usage_logs",
            30,
            json!("garbage"),
            Auth::Bearer(fake.admin_token()),
            "garbage",
        ),
    ];
    for (key, days, signature, auth, why) in cases {
        let (path, body) = put(key, days, signature);
        assert_eq!(
            call(&c, &fake, "PUT", &path, auth, Some(&body)).await,
            invalid,
            "{why}"
        );
    }

    let required = (400, json!({"detail": "preview_signature_required"}));
    for body in [
        json!({"days": 30}),
        json!({"days": 30, "preview_signature": null}),
    ] {
        assert_eq!(
            admin(
                &c,
                &fake,
                "PUT",
                "/retention-policies/usage_logs",
                Some(body)
            )
            .await,
            required
        );
    }
    // An empty string is not "absent": the request model wants at least one character.
    let (path, body) = put("usage_logs", 30, json!(""));
    let (status, error) = call(
        &c,
        &fake,
        "PUT",
        &path,
        Auth::Bearer(fake.admin_token()),
        Some(&body),
    )
    .await;
    assert_eq!(status, 422);
    assert_eq!(loc(&error), json!(["body", "preview_signature"]));
    assert_eq!(fake.retention_days("usage_logs"), Some(180));

    // The same principal via the other header kind is the same principal.
    let (path, body) = put("usage_logs", 30, json!(sig));
    assert_eq!(
        call(
            &c,
            &fake,
            "PUT",
            &path,
            Auth::ApiKey(fake.admin_token()),
            Some(&body)
        )
        .await
        .0,
        200
    );
    assert_eq!(fake.retention_days("usage_logs"), Some(30));
}

#[tokio::test]
async fn a_signature_expires_after_the_configured_ttl() {
    let fake = FakeTldw::start(FakeTldwConfig {
        signature_ttl: Duration::from_millis(100),
        ..FakeTldwConfig::default()
    });
    let c = client();
    let (_, preview) = admin(
        &c,
        &fake,
        "POST",
        "/retention-policies/sessions/preview",
        Some(json!({"current_days": 90, "days": 30})),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(250)).await;
    let sig = &preview["preview_signature"];
    assert_eq!(
        admin(
            &c,
            &fake,
            "PUT",
            "/retention-policies/sessions",
            Some(json!({"days": 30, "preview_signature": sig}))
        )
        .await,
        (400, json!({"detail": "expired_preview_signature"}))
    );
    assert_eq!(fake.retention_days("sessions"), Some(90));
}

#[tokio::test]
async fn stale_current_days_are_409_on_the_preview_and_an_invalid_signature_on_the_put() {
    let fake = FakeTldw::start(FakeTldwConfig {
        retention_days: vec![("usage_daily".to_owned(), 400)],
        ..FakeTldwConfig::default()
    });
    let c = client();
    assert_eq!(
        admin(
            &c,
            &fake,
            "POST",
            "/retention-policies/usage_daily/preview",
            Some(json!({"current_days": 365, "days": 100}))
        )
        .await,
        (409, json!({"detail": "stale_current_days"}))
    );
    let (status, preview) = admin(
        &c,
        &fake,
        "POST",
        "/retention-policies/usage_daily/preview",
        Some(json!({"current_days": 400, "days": 100})),
    )
    .await;
    assert_eq!(status, 200);
    fake.set_retention_days("usage_daily", 500);
    let sig = &preview["preview_signature"];
    // The PUT never answers 409: the moved current value fails the signature's binding.
    assert_eq!(
        admin(
            &c,
            &fake,
            "PUT",
            "/retention-policies/usage_daily",
            Some(json!({"days": 100, "preview_signature": sig}))
        )
        .await,
        (400, json!({"detail": "invalid_preview_signature"}))
    );
    assert_eq!(fake.retention_days("usage_daily"), Some(500));
}

#[tokio::test]
async fn unknown_policies_are_404_and_out_of_range_days_are_400_or_422() {
    let fake = FakeTldw::start(FakeTldwConfig::default());
    let c = client();
    let unknown = (404, json!({"detail": "unknown_policy"}));
    let range = (400, json!({"detail": "invalid_range"}));
    assert_eq!(
        admin(
            &c,
            &fake,
            "POST",
            "/retention-policies/nope/preview",
            Some(json!({"current_days": 1, "days": 2}))
        )
        .await,
        unknown
    );
    // The PUT checks the signature first: an unknown key with no signature is "required", and
    // one with a signature that decodes is "unknown".
    assert_eq!(
        admin(
            &c,
            &fake,
            "PUT",
            "/retention-policies/nope",
            Some(json!({"days": 2}))
        )
        .await,
        (400, json!({"detail": "preview_signature_required"}))
    );
    let (_, preview) = admin(
        &c,
        &fake,
        "POST",
        "/retention-policies/usage_logs/preview",
        Some(json!({"current_days": 180, "days": 2})),
    )
    .await;
    assert_eq!(
        admin(
            &c,
            &fake,
            "PUT",
            "/retention-policies/nope",
            Some(json!({"days": 2, "preview_signature": preview["preview_signature"]}))
        )
        .await,
        unknown
    );
    // Below the policy's own minimum is `invalid_range`; outside 1..=3650 the request model
    // refuses it first.
    assert_eq!(
        admin(
            &c,
            &fake,
            "POST",
            "/retention-policies/audit_logs/preview",
            Some(json!({"current_days": 180, "days": 29}))
        )
        .await,
        range
    );
    for days in [0, 3651] {
        for (method, path, body) in [
            (
                "POST",
                "/retention-policies/audit_logs/preview",
                json!({"current_days": 180, "days": days}),
            ),
            (
                "PUT",
                "/retention-policies/audit_logs",
                json!({"days": days, "preview_signature": "x"}),
            ),
        ] {
            let (status, body) = admin(&c, &fake, method, path, Some(body)).await;
            assert_eq!(status, 422, "{method} {days}: {body}");
            assert_eq!(loc(&body), json!(["body", "days"]));
        }
    }
    let (status, body) = admin(
        &c,
        &fake,
        "POST",
        "/retention-policies/audit_logs/preview",
        Some(json!({"days": "90"})),
    )
    .await;
    assert_eq!(status, 422);
    let locs: Vec<Value> = body["detail"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["loc"].clone())
        .collect();
    assert_eq!(
        locs,
        [json!(["body", "current_days"]), json!(["body", "days"])]
    );
    assert_eq!(fake.retention_days("audit_logs"), Some(180));
}

// ---------------------------------------------------------------------------
// persistent faults and oversized bodies
// ---------------------------------------------------------------------------

#[tokio::test]
async fn a_persistent_fault_fails_one_exact_route_until_it_is_cleared() {
    let fake = FakeTldw::start(with_quota_users(40));
    let c = client();
    let four = crate::support::fake_tldw::quota_path(4);
    fake.fail_persistently("PUT", &four, 503);
    for _ in 0..10 {
        assert_eq!(
            call(
                &c,
                &fake,
                "PUT",
                &four,
                Auth::Bearer(fake.admin_token()),
                Some(r#"{"quota_mb": 7}"#)
            )
            .await,
            (503, json!({"detail": "injected_fault"}))
        );
    }
    // Neither another method on the route nor a route it is a prefix of is affected.
    let (status, _) = admin(&c, &fake, "GET", "/storage-quotas/users/4", None).await;
    assert_eq!(status, 200);
    let (status, _) = admin(
        &c,
        &fake,
        "PUT",
        "/storage-quotas/users/40",
        Some(json!({"quota_mb": 7})),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(fake.quota("user0004"), Some(Some(5120)));
    fake.clear_persistent_fault("PUT", &four);
    let (status, _) = admin(
        &c,
        &fake,
        "PUT",
        "/storage-quotas/users/4",
        Some(json!({"quota_mb": 7})),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(fake.quota("user0004"), Some(Some(7)));
}

#[tokio::test]
async fn an_oversized_body_has_exactly_the_asked_size_and_its_length() {
    let fake = FakeTldw::start(FakeTldwConfig::default());
    let c = client();
    fake.oversize_next("GET", &format!("{ADMIN}/users"), 100_000, 1);
    let resp = send(
        &c,
        &fake,
        "GET",
        &format!("{ADMIN}/users"),
        Auth::Bearer(fake.admin_token()),
        None,
    )
    .await
    .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.content_length(), Some(100_000));
    let body: Value = serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap();
    assert_eq!(body["padding"].as_str().unwrap().len(), 100_000 - 14);
    // One shot: the next request is answered normally.
    let (status, body) = admin(&c, &fake, "GET", "/users", None).await;
    assert_eq!(status, 200);
    assert!(body["users"].is_array());
}

fn with_quota_users(users: usize) -> FakeTldwConfig {
    FakeTldwConfig {
        users,
        ..FakeTldwConfig::default()
    }
}

// ---------------------------------------------------------------------------
// registration settings
// ---------------------------------------------------------------------------

#[tokio::test]
async fn registration_settings_read_update_and_reject_empty_or_mistyped_updates() {
    let fake = FakeTldw::start(FakeTldwConfig {
        profile: Some("prod".to_owned()),
        ..FakeTldwConfig::default()
    });
    let c = client();
    assert_eq!(
        admin(&c, &fake, "GET", "/registration-settings", None).await,
        (
            200,
            json!({"enable_registration": false, "require_registration_code": false,
                   "auth_mode": "multi_user", "profile": "prod", "self_registration_allowed": false})
        )
    );
    let (status, body) = admin(
        &c,
        &fake,
        "POST",
        "/registration-settings",
        Some(json!({"enable_registration": true})),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["self_registration_allowed"], true);
    assert_eq!(fake.registration(), (true, false));
    let (_, body) = admin(
        &c,
        &fake,
        "POST",
        "/registration-settings",
        Some(json!({"require_registration_code": true})),
    )
    .await;
    assert_eq!(body["enable_registration"], true, "the other field is kept");
    assert_eq!(fake.registration(), (true, true));

    assert_eq!(
        admin(&c, &fake, "POST", "/registration-settings", Some(json!({})))
            .await
            .0,
        400
    );
    assert_eq!(
        admin(
            &c,
            &fake,
            "POST",
            "/registration-settings",
            Some(json!({"enable_registration": null, "other": 1}))
        )
        .await
        .0,
        400
    );
    let (status, body) = admin(
        &c,
        &fake,
        "POST",
        "/registration-settings",
        Some(json!({"enable_registration": "yes"})),
    )
    .await;
    assert_eq!(status, 422);
    assert_eq!(loc(&body), json!(["body", "enable_registration"]));
    assert_eq!(fake.registration(), (true, true));
    fake.set_registration(false, true);
    let (_, body) = admin(&c, &fake, "GET", "/registration-settings", None).await;
    assert_eq!(body["enable_registration"], false);
}

#[tokio::test]
async fn single_user_mode_never_allows_self_registration() {
    let fake = FakeTldw::start(FakeTldwConfig {
        auth_mode: "single_user".to_owned(),
        enable_registration: true,
        ..FakeTldwConfig::default()
    });
    let c = client();
    let (_, body) = admin(&c, &fake, "GET", "/registration-settings", None).await;
    assert_eq!(
        (
            &body["auth_mode"],
            &body["self_registration_allowed"],
            &body["profile"]
        ),
        (&json!("single_user"), &json!(false), &Value::Null)
    );
}

// ---------------------------------------------------------------------------
// faults
// ---------------------------------------------------------------------------

#[tokio::test]
async fn fail_next_answers_the_given_status_count_times_then_recovers() {
    let fake = FakeTldw::start(FakeTldwConfig::default());
    let c = client();
    fake.fail_next("GET", "/api/v1/admin/users", 503, 2);
    let injected = (503, json!({"detail": "injected_fault"}));
    assert_eq!(admin(&c, &fake, "GET", "/users", None).await, injected);
    assert_eq!(
        admin(&c, &fake, "GET", "/retention-policies", None).await.0,
        200,
        "other paths unaffected"
    );
    assert_eq!(
        admin(&c, &fake, "POST", "/users", None).await.0,
        405,
        "other methods unaffected"
    );
    assert_eq!(
        admin(&c, &fake, "GET", "/users?page=2", None).await,
        injected
    );
    assert_eq!(admin(&c, &fake, "GET", "/users", None).await.0, 200);

    fake.fail_next("*", "/api/v1/admin/storage-quotas", 429, 1);
    assert_eq!(
        admin(
            &c,
            &fake,
            "PUT",
            "/storage-quotas/users/1",
            Some(json!({"quota_mb": 1}))
        )
        .await
        .0,
        429
    );
    assert_eq!(
        fake.quota("user0001"),
        Some(Some(5120)),
        "the handler did not run"
    );

    let statuses: Vec<(Option<u16>, bool)> = fake
        .requests()
        .iter()
        .map(|r| (r.status, r.injected))
        .collect();
    assert_eq!(
        statuses,
        [
            (Some(503), true),
            (Some(200), false),
            (Some(405), false),
            (Some(503), true),
            (Some(200), false),
            (Some(429), true)
        ]
    );
    assert_eq!(fake.requests()[3].query.as_deref(), Some("page=2"));
    assert_eq!(fake.requests()[5].body, r#"{"quota_mb":1}"#);
}

#[tokio::test]
async fn fail_after_lets_some_requests_through_then_fails_until_cleared() {
    let fake = FakeTldw::start(FakeTldwConfig::default());
    let c = client();
    fake.fail_after("PUT", "/api/v1/admin/storage-quotas/users/", 2, 500);
    let mut statuses = Vec::new();
    for id in 1..=3 {
        statuses.push(
            admin(
                &c,
                &fake,
                "PUT",
                &format!("/storage-quotas/users/{id}"),
                Some(json!({"quota_mb": 9})),
            )
            .await
            .0,
        );
    }
    assert_eq!(
        admin(&c, &fake, "GET", "/storage-quotas/users/3", None)
            .await
            .0,
        200
    );
    statuses.push(
        admin(
            &c,
            &fake,
            "PUT",
            "/storage-quotas/users/3",
            Some(json!({"quota_mb": 9})),
        )
        .await
        .0,
    );
    assert_eq!(statuses, [200, 200, 500, 500]);
    assert_eq!(
        [
            fake.quota("user0001"),
            fake.quota("user0002"),
            fake.quota("user0003")
        ],
        [Some(Some(9)), Some(Some(9)), Some(Some(5120))]
    );
    fake.clear_faults();
    assert_eq!(
        admin(
            &c,
            &fake,
            "PUT",
            "/storage-quotas/users/3",
            Some(json!({"quota_mb": 9}))
        )
        .await
        .0,
        200
    );
}

#[tokio::test]
async fn a_dropped_connection_is_a_client_io_error_and_the_next_connection_works() {
    let fake = FakeTldw::start(FakeTldwConfig::default());
    fake.drop_next_connections(1);
    let c = client();
    let err = send(&c, &fake, "GET", "/health", Auth::None, None)
        .await
        .expect_err("dropped connection");
    assert!(err.is_connect() || err.is_request(), "{err:?}");
    assert!(err.status().is_none());
    assert_eq!(fake.dropped_connections(), 1);
    assert_eq!(fake.request_count("*", "/"), 0, "no request was read");
    assert_eq!(
        call(&c, &fake, "GET", "/health", Auth::None, None).await.0,
        200
    );

    // clear_faults cancels pending drops.
    fake.drop_next_connections(5);
    fake.clear_faults();
    assert_eq!(
        call(&client(), &fake, "GET", "/health", Auth::None, None)
            .await
            .0,
        200
    );
}

#[tokio::test]
async fn dropped_requests_change_nothing_but_dropped_responses_apply_the_change() {
    let fake = FakeTldw::start(FakeTldwConfig::default());
    let c = client();
    // Warm a pooled keep-alive connection: the drop must hit it too.
    assert_eq!(
        call(&c, &fake, "GET", "/health", Auth::None, None).await.0,
        200
    );
    let path = format!("{ADMIN}/storage-quotas/users/1");
    let token = Auth::Bearer(fake.admin_token());

    fake.drop_next_requests("PUT", "/api/v1/admin/storage-quotas", 1);
    let err = send(&c, &fake, "PUT", &path, token, Some(r#"{"quota_mb": 11}"#))
        .await
        .expect_err("dropped request");
    assert!(err.is_request() || err.is_connect(), "{err:?}");
    assert_eq!(fake.quota("user0001"), Some(Some(5120)));

    fake.drop_next_responses("PUT", "/api/v1/admin/storage-quotas", 1);
    let err = send(&c, &fake, "PUT", &path, token, Some(r#"{"quota_mb": 12}"#))
        .await
        .expect_err("dropped response");
    assert!(err.is_request() || err.is_connect(), "{err:?}");
    assert_eq!(fake.quota("user0001"), Some(Some(12)));

    assert_eq!(
        call(&c, &fake, "PUT", &path, token, Some(r#"{"quota_mb": 13}"#))
            .await
            .0,
        200
    );
    let statuses: Vec<Option<u16>> = fake.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [Some(200), None, None, Some(200)]);
}

#[tokio::test]
async fn a_delay_slows_matching_requests_and_can_trip_client_timeouts() {
    let fake = FakeTldw::start(FakeTldwConfig::default());
    let c = client();
    fake.set_delay("GET", "/health", Duration::from_millis(300));
    let started = Instant::now();
    assert_eq!(
        call(&c, &fake, "GET", "/health", Auth::None, None).await.0,
        200
    );
    assert!(started.elapsed() >= Duration::from_millis(300));
    let started = Instant::now();
    assert_eq!(
        call(&c, &fake, "GET", "/internal/ready", Auth::None, None)
            .await
            .0,
        200
    );
    assert!(
        started.elapsed() < Duration::from_millis(300),
        "other paths are not delayed"
    );

    let impatient = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_millis(100))
        .build()
        .unwrap();
    let err = send(&impatient, &fake, "GET", "/health", Auth::None, None)
        .await
        .expect_err("timeout");
    assert!(err.is_timeout(), "{err:?}");

    fake.set_delay("GET", "/health", Duration::ZERO);
    let started = Instant::now();
    assert_eq!(
        call(&c, &fake, "GET", "/health", Auth::None, None).await.0,
        200
    );
    assert!(started.elapsed() < Duration::from_millis(300));
}

#[tokio::test]
async fn health_flips_with_the_restart_marker_and_recovers_on_the_rollback_restart() {
    let marker_dir = tempfile::tempdir().unwrap();
    let marker = marker_dir.path().join("restarts.log");
    let fake = FakeTldw::start(FakeTldwConfig {
        restart_marker: Some(marker.clone()),
        ..FakeTldwConfig::default()
    });
    let argv = fake.restart_command();
    assert_eq!(argv[..2], ["sh", "-c"]);
    assert!(argv[2].contains(&marker.display().to_string()));
    let restart = || {
        let status = std::process::Command::new(&argv[0])
            .args(&argv[1..])
            .status()
            .unwrap();
        assert!(status.success());
    };
    let c = client();
    let probe = || async {
        (
            call(&c, &fake, "GET", "/health", Auth::None, None).await,
            call(&c, &fake, "GET", "/internal/ready", Auth::None, None)
                .await
                .0,
        )
    };
    fake.unhealthy_after_restarts(1);
    fake.healthy_again_after_restarts(2);
    assert_eq!(probe().await, ((200, json!({"status": "ok"})), 200));
    restart();
    assert_eq!(fake.restart_count(), 1);
    assert_eq!(probe().await, ((503, json!({"status": "unhealthy"})), 503));
    restart();
    assert_eq!(fake.restart_count(), 2);
    assert_eq!(probe().await, ((200, json!({"status": "ok"})), 200));
}

#[tokio::test]
async fn without_a_configured_marker_the_restart_command_writes_a_private_file() {
    let fake = FakeTldw::start(FakeTldwConfig::default());
    fake.unhealthy_after_restarts(1);
    let argv = fake.restart_command();
    let c = client();
    assert_eq!(
        call(&c, &fake, "GET", "/health", Auth::None, None).await.0,
        200
    );
    for _ in 0..2 {
        std::process::Command::new(&argv[0])
            .args(&argv[1..])
            .status()
            .unwrap();
    }
    assert_eq!(fake.restart_count(), 2);
    assert_eq!(
        call(&c, &fake, "GET", "/health", Auth::None, None).await.0,
        503,
        "stays unhealthy"
    );
    let marker = fake.restart_marker();
    assert!(marker.exists());
    drop(fake);
    assert!(!marker.exists(), "the private marker dir is removed");
}

#[test]
fn dropping_the_handle_stops_the_server_even_with_a_request_in_flight() {
    let fake = FakeTldw::start(FakeTldwConfig::default());
    fake.set_delay("GET", "/health", Duration::from_secs(30));
    let addr = fake.addr();
    let stream = std::net::TcpStream::connect(addr).unwrap();
    use std::io::Write;
    (&stream)
        .write_all(b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n")
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while fake.request_count("GET", "/health") == 0 {
        assert!(Instant::now() < deadline, "the request never arrived");
        std::thread::sleep(Duration::from_millis(10));
    }
    let started = Instant::now();
    drop(fake);
    assert!(started.elapsed() < Duration::from_secs(5));
    // The in-flight connection is closed without an answer. (The port itself may already be
    // reused by another test's server, so it is not probed.)
    use std::io::Read;
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut buffer = [0_u8; 64];
    let read = (&stream).read(&mut buffer);
    let closed = match &read {
        Ok(0) => true,
        Ok(_) => false,
        Err(error) => !matches!(
            error.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
    };
    assert!(
        closed,
        "the in-flight connection was neither closed nor reset: {read:?}"
    );
    let _ = addr;
}

#[test]
fn the_handle_can_be_shared_across_threads() {
    fn check<T: Send + Sync>() {}
    check::<FakeTldw>();
    check::<PgCluster>();
}

// ---------------------------------------------------------------------------
// PostgreSQL
// ---------------------------------------------------------------------------

fn port_is_free(port: u16) -> bool {
    std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
}

#[test]
fn a_pg_cluster_serves_a_new_database_and_frees_its_port_and_files_when_dropped() {
    let Some(cluster) = PgCluster::start() else {
        return;
    };
    let port = cluster.port();
    assert!(!port_is_free(port));
    assert!(cluster.bin_dir().join("pg_ctl").is_file());
    let url = cluster.create_database("fake_tldw_check");
    assert_eq!(
        url,
        format!("postgres://postgres@127.0.0.1:{port}/fake_tldw_check")
    );
    assert_eq!(
        cluster.url("x"),
        format!("postgres://postgres@127.0.0.1:{port}/x")
    );

    // A client connecting exactly as a person would.
    let out = std::process::Command::new("psql")
        .args([url.as_str(), "-X", "-A", "-t", "-c", "select 1"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "1");
    assert_eq!(
        cluster
            .psql("fake_tldw_check", "show fsync; select current_user")
            .trim(),
        "off\npostgres"
    );
    assert!(cluster.try_psql("missing_db", "select 1").is_err());
    cluster.drop_database("fake_tldw_check");
    assert!(cluster.try_psql("fake_tldw_check", "select 1").is_err());

    let data_dir = cluster.data_dir();
    assert!(data_dir.is_dir());
    drop(cluster);
    assert!(port_is_free(port), "port {port} still taken");
    assert!(!data_dir.exists(), "data dir left behind");
}

#[test]
fn the_shared_cluster_is_started_once_and_hands_out_distinct_databases() {
    let Some(first) = pg::shared() else {
        return;
    };
    let second = pg::shared().unwrap();
    assert!(std::ptr::eq(first, second));
    let a = first.fresh_database("shared");
    let b = second.fresh_database("shared");
    assert_ne!(a, b);
    let name = a.rsplit('/').next().unwrap();
    assert_eq!(first.psql(name, "select current_database()").trim(), name);
}

#[test]
fn a_pg_watchdog_stops_the_cluster_when_its_test_process_is_gone() {
    // A child copy of this test binary starts the shared cluster, prints its
    // port and data dir, and exits without dropping it.
    if std::env::var_os("FAKE_TLDW_PG_CHILD").is_some() {
        if let Some(cluster) = pg::shared() {
            println!(
                "PGCHILD {} {}",
                cluster.port(),
                cluster.data_dir().display()
            );
        }
        return;
    }
    if PgCluster::start().is_none() {
        return;
    }
    let exe = std::env::current_exe().unwrap();
    let out = std::process::Command::new(exe)
        .args([
            "--exact",
            "support_contract::a_pg_watchdog_stops_the_cluster_when_its_test_process_is_gone",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("FAKE_TLDW_PG_CHILD", "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .find_map(|l| l.split_once("PGCHILD ").map(|(_, rest)| rest))
        .unwrap_or_else(|| panic!("child output: {out:?}"));
    let (port, data_dir) = line.split_once(' ').unwrap();
    let port: u16 = port.parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    while !port_is_free(port) || std::path::Path::new(data_dir).exists() {
        assert!(
            Instant::now() < deadline,
            "watchdog did not clean up port {port} / {data_dir}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
