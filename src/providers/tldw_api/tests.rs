use super::transport::{DETAIL_MAX_CHARS, MAX_BACKOFF, is_loopback, parse_base_url, show_bytes};
use super::*;

fn api(url: &str, token: &str) -> TldwApi {
    TldwApi::new(ApiConfig::new(url, token, ApiAuth::Bearer)).unwrap()
}

#[test]
fn routes_are_filled_under_the_base_path_with_parameters_encoded_as_one_segment() {
    let api = api("https://tldw.example.org/prefix/", "t0ken");
    assert_eq!(
        api.url(routes::RETENTION_PREVIEW, &[("key", "a/b c")])
            .as_str(),
        "https://tldw.example.org/prefix/api/v1/admin/retention-policies/a%2Fb%20c/preview"
    );
    assert_eq!(
        api.url(routes::USER_STORAGE_QUOTA, &[("user_id", "42")])
            .as_str(),
        "https://tldw.example.org/prefix/api/v1/admin/storage-quotas/users/42"
    );
}

#[test]
fn byte_limits_read_in_the_largest_whole_unit() {
    assert_eq!(show_bytes(8 << 20), "8 MiB");
    assert_eq!(show_bytes(512 << 10), "512 KiB");
    assert_eq!(show_bytes(1000), "1000 bytes");
    assert_eq!(show_bytes((1 << 20) + 1), "1048577 bytes");
}

/// A chunked body declares no length: the limit stops the read once the body outgrows it.
#[tokio::test]
async fn a_streamed_body_that_outgrows_the_limit_is_refused() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut request = [0u8; 4096];
        let _ = socket.read(&mut request).await.unwrap();
        let head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\
                    transfer-encoding: chunked\r\n\r\n";
        socket.write_all(head.as_bytes()).await.unwrap();
        let chunk = format!("{:x}\r\n{}\r\n", 512, "x".repeat(512));
        for _ in 0..8 {
            if socket.write_all(chunk.as_bytes()).await.is_err() {
                return;
            }
        }
        let _ = socket.write_all(b"0\r\n\r\n").await;
    });
    let api = TldwApi::new(ApiConfig {
        max_response_bytes: 1024,
        retries: 0,
        ..ApiConfig::new(format!("http://{address}"), "t0ken", ApiAuth::Bearer)
    })
    .unwrap();
    let error = api.registration().await.unwrap_err();
    assert!(
        matches!(error, ApiError::ResponseTooLarge { limit: 1024, .. }),
        "{error:?}"
    );
    assert!(error.to_string().contains("larger than 1 KiB"), "{error}");
    server.abort();
}

#[test]
fn backoff_doubles_from_the_configured_start_and_is_capped() {
    let api = api("http://127.0.0.1:8000", "t0ken");
    let waits: Vec<Duration> = (1..=8).map(|attempt| api.backoff_before(attempt)).collect();
    let millis: Vec<u128> = waits.iter().map(Duration::as_millis).collect();
    assert_eq!(millis, [100, 200, 400, 800, 1600, 3200, 5000, 5000]);
    assert_eq!(api.backoff_before(40), MAX_BACKOFF);
}

#[test]
fn fastapi_validation_errors_read_as_field_and_message() {
    let api = api("http://127.0.0.1:8000", "t0ken");
    let body = br#"{"detail":[{"type":"missing","loc":["body","days"],"msg":"Field required","input":{}},{"type":"int_type","loc":["body","quota_mb"],"msg":"Input should be a valid integer","input":"x"}]}"#;
    assert_eq!(
        api.detail(body),
        "days: Field required; quota_mb: Input should be a valid integer"
    );
    assert_eq!(
        api.detail(br#"{"detail":"user_not_found"}"#),
        "user_not_found"
    );
    assert_eq!(api.detail(b""), "(empty body)");
    assert_eq!(
        api.detail(b"<html>Bad Gateway</html>"),
        "<html>Bad Gateway</html>"
    );
}

#[test]
fn server_text_that_echoes_the_token_is_scrubbed_and_long_text_is_cut() {
    let api = api("http://127.0.0.1:8000", "s3cret-admin-token");
    let echoed = br#"{"detail":"bad header Authorization: Bearer s3cret-admin-token"}"#;
    let detail = api.detail(echoed);
    assert!(!detail.contains("s3cret-admin-token"), "{detail}");
    assert!(detail.ends_with("Bearer (redacted)"), "{detail}");
    let long = "x".repeat(2000);
    assert_eq!(
        api.detail(long.as_bytes()).chars().count(),
        DETAIL_MAX_CHARS + 1
    );
}

#[test]
fn only_loopback_hosts_bypass_proxies() {
    let loopback = |url: &str| is_loopback(&Url::parse(url).unwrap());
    assert!(loopback("http://127.0.0.1:8000"));
    assert!(loopback("http://127.1.2.3"));
    assert!(loopback("http://[::1]:8000"));
    assert!(loopback("http://LocalHost:8000"));
    assert!(!loopback("https://tldw.example.org"));
    assert!(!loopback("http://10.0.0.1"));
}

#[test]
fn base_urls_must_be_plain_http_or_https() {
    assert!(parse_base_url("http://127.0.0.1:8000/").is_ok());
    assert!(parse_base_url("https://tldw.example.org/base").is_ok());
    for bad in [
        "127.0.0.1:8000",
        "ftp://example.org",
        "http://example.org/?x=1",
        "http://example.org/#top",
        "not a url",
    ] {
        assert!(
            matches!(parse_base_url(bad), Err(ApiError::InvalidUrl { .. })),
            "{bad}"
        );
    }
    let Err(error) = parse_base_url("https://ops:pa55word@example.org") else {
        panic!("credentials accepted");
    };
    assert!(!error.to_string().contains("pa55word"), "{error}");
}

#[test]
fn the_token_goes_only_to_the_api_origin() {
    let api = api("http://127.0.0.1:8000/prefix", "t0ken");
    let timeout = Duration::from_secs(1);
    assert!(
        api.authorized_get("http://127.0.0.1:8000/api/v1/llm/providers", timeout)
            .is_ok()
    );
    for elsewhere in [
        "http://127.0.0.1:8001/api/v1/llm/providers",
        "https://127.0.0.1:8000/api/v1/llm/providers",
        "http://localhost:8000/api/v1/llm/providers",
        "http://evil.example/api",
        "not a url",
    ] {
        let refused = api.authorized_get(elsewhere, timeout).unwrap_err();
        assert!(!refused.contains("t0ken"), "{refused}");
    }
}
