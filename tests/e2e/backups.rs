//! The backups provider against a real PostgreSQL (the shared throwaway cluster): an AuthNZ
//! database is dumped with `pg_dump -Fc`, verified with `pg_restore` (no server), and restored with
//! `pg_restore -c --if-exists`, with the password kept out of everything written.

use std::path::Path;

use jiff::Timestamp;
use tldw_ops::providers::backups::{
    AuthnzSource, BackupSource, ItemKind, RestoreTargets, VerifyOptions, create_set, read_manifest,
    restore_set, verify_set_with, write_manifest,
};
use tldw_ops::spec::types::BackupItem;

use crate::support::pg::{self, PgCluster};

/// Never sent anywhere that checks it (the cluster trusts 127.0.0.1), but it must not appear in
/// anything the provider writes or reports.
const PASSWORD: &str = "pw-7f3e-never-shown";

fn at(text: &str) -> Timestamp {
    text.parse().unwrap()
}

fn database_name(url: &str) -> &str {
    url.rsplit('/').next().unwrap()
}

/// An AuthNZ-like database: users and their API keys, with a foreign key between them.
fn authnz_database(cluster: &PgCluster) -> String {
    let url = cluster.fresh_database("backups_authnz");
    cluster.psql(
        database_name(&url),
        "CREATE TABLE users (id BIGSERIAL PRIMARY KEY, username TEXT UNIQUE NOT NULL, \
             storage_quota_mb INTEGER NOT NULL DEFAULT 5120); \
         CREATE TABLE api_keys (id BIGSERIAL PRIMARY KEY, \
             user_id BIGINT NOT NULL REFERENCES users(id), key_hash TEXT NOT NULL); \
         INSERT INTO users (username) SELECT 'user' || n FROM generate_series(1, 500) n; \
         INSERT INTO api_keys (user_id, key_hash) \
             SELECT 1 + n % 500, md5(n::text) FROM generate_series(1, 1200) n;",
    );
    url
}

/// Row counts and a digest of every row, table by table.
fn content(cluster: &PgCluster, url: &str) -> String {
    cluster.psql(
        database_name(url),
        "SELECT (SELECT count(*) FROM users) || ' ' || \
                (SELECT md5(string_agg(u::text, ',' ORDER BY id)) FROM users u) || ' ' || \
                (SELECT count(*) FROM api_keys) || ' ' || \
                (SELECT md5(string_agg(k::text, ',' ORDER BY id)) FROM api_keys k)",
    )
}

fn postgres(url: &str) -> Option<AuthnzSource> {
    Some(AuthnzSource::Postgres {
        url: url.to_string(),
        password: Some(PASSWORD.to_string()),
    })
}

async fn dump(cluster: &PgCluster, url: &str, destination: &Path) -> std::path::PathBuf {
    let source = BackupSource {
        environment: "prod".to_string(),
        authnz: postgres(url),
        user_db_base_dir: None,
        env_file: None,
        config_file: None,
        pg_bin_dir: Some(cluster.bin_dir()),
    };
    let manifest = create_set(
        destination,
        &source,
        &[BackupItem::Authnz],
        "2026-11-25T030000Z",
        at("2026-11-25T03:00:00Z"),
    )
    .await
    .unwrap();
    assert_eq!(manifest.items.len(), 1);
    assert_eq!(manifest.items[0].kind, ItemKind::AuthnzPgDump);
    assert_eq!(manifest.items[0].source, url);
    destination.join("prod/2026-11-25T030000Z")
}

fn verify_options(cluster: &PgCluster) -> VerifyOptions {
    VerifyOptions {
        pg_bin_dir: Some(cluster.bin_dir()),
        ..VerifyOptions::default()
    }
}

#[tokio::test]
async fn a_postgres_authnz_database_is_dumped_verified_and_restored_into_a_fresh_database() {
    let Some(cluster) = pg::shared() else {
        return;
    };
    let source_url = authnz_database(cluster);
    let original = content(cluster, &source_url);
    let destination = tempfile::tempdir().unwrap();
    let set_dir = dump(cluster, &source_url, destination.path()).await;

    let verification = verify_set_with(
        &set_dir,
        at("2026-11-25T03:01:00Z"),
        &verify_options(cluster),
    )
    .await
    .unwrap();
    assert!(verification.ok, "{:?}", verification.problems);

    let target_url = cluster.fresh_database("backups_restored");
    let targets = RestoreTargets {
        authnz: postgres(&target_url),
        pg_bin_dir: Some(cluster.bin_dir()),
        ..RestoreTargets::default()
    };
    let report = restore_set(&set_dir, &targets, Some(BackupItem::Authnz))
        .await
        .unwrap();
    assert_eq!(report.restored.len(), 1);
    assert_eq!(report.restored[0].target, target_url);
    assert_eq!(content(cluster, &target_url), original);

    let manifest = std::fs::read_to_string(set_dir.join("manifest.json")).unwrap();
    assert!(!manifest.contains(PASSWORD));
    assert!(!format!("{report:?} {targets:?}").contains(PASSWORD));
}

#[tokio::test]
async fn restoring_over_a_changed_database_brings_back_the_dumped_rows() {
    let Some(cluster) = pg::shared() else {
        return;
    };
    let url = authnz_database(cluster);
    let original = content(cluster, &url);
    let destination = tempfile::tempdir().unwrap();
    let set_dir = dump(cluster, &url, destination.path()).await;

    cluster.psql(
        database_name(&url),
        "DELETE FROM api_keys WHERE id % 2 = 0; UPDATE users SET storage_quota_mb = 1; \
         CREATE TABLE added_later (id INT);",
    );
    assert_ne!(content(cluster, &url), original);
    let targets = RestoreTargets {
        authnz: postgres(&url),
        pg_bin_dir: Some(cluster.bin_dir()),
        ..RestoreTargets::default()
    };
    let _report = restore_set(&set_dir, &targets, None).await.unwrap();
    assert_eq!(content(cluster, &url), original);
}

#[tokio::test]
async fn a_truncated_dump_fails_verification_even_with_a_matching_checksum() {
    let Some(cluster) = pg::shared() else {
        return;
    };
    let url = authnz_database(cluster);
    let destination = tempfile::tempdir().unwrap();
    let set_dir = dump(cluster, &url, destination.path()).await;

    let mut manifest = read_manifest(&set_dir).unwrap();
    let dump_path = set_dir.join(&manifest.items[0].path);
    let bytes = std::fs::read(&dump_path).unwrap();
    let truncated = &bytes[..bytes.len() / 3];
    std::fs::write(&dump_path, truncated).unwrap();
    // The manifest agrees with the damage: only pg_restore can notice. The table of contents
    // is at the start, so `pg_restore --list` alone would pass this dump.
    manifest.items[0].size = truncated.len() as u64;
    manifest.items[0].sha256 = tldw_ops::secrets::sha256_hex(truncated);
    write_manifest(&set_dir, &manifest).unwrap();

    let verification = verify_set_with(
        &set_dir,
        at("2026-11-25T03:01:00Z"),
        &verify_options(cluster),
    )
    .await
    .unwrap();
    assert!(!verification.ok);
    assert!(
        verification.problems[0]
            .problem
            .starts_with("pg_restore failed"),
        "{:?}",
        verification.problems
    );
}

#[tokio::test]
async fn a_failed_dump_names_the_database_but_never_the_password() {
    let Some(cluster) = pg::shared() else {
        return;
    };
    let missing = cluster.url("no_such_database");
    let destination = tempfile::tempdir().unwrap();
    let source = BackupSource {
        environment: "prod".to_string(),
        authnz: postgres(&format!(
            "postgres://postgres:{PASSWORD}@127.0.0.1:{}/no_such_database",
            cluster.port()
        )),
        user_db_base_dir: None,
        env_file: None,
        config_file: None,
        pg_bin_dir: Some(cluster.bin_dir()),
    };
    let error = create_set(
        destination.path(),
        &source,
        &[BackupItem::Authnz],
        "2026-11-25T030000Z",
        at("2026-11-25T03:00:00Z"),
    )
    .await
    .unwrap_err();
    let shown = format!("{error} {error:?} {source:?}");
    assert!(shown.contains(&missing), "{shown}");
    assert!(!shown.contains(PASSWORD), "{shown}");
    assert!(!destination.path().join("prod/2026-11-25T030000Z").exists());
}
