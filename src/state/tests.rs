//! Tests of the state store. Each behaviour is one test body run against both backends: a
//! SQLite file in a temporary directory, then a database in a throwaway PostgreSQL cluster
//! (see `test_pg`). Backend-specific behaviour (how a dead holder's lock goes away, SQLite's
//! file handling) has its own tests.

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;

use super::sqlite::SqliteStore;
use super::*;

/// Runs `body` with the location of a fresh SQLite store, then with that of a fresh PostgreSQL
/// database when PostgreSQL is available.
async fn on_each_backend(test: &str, body: impl AsyncFn(String)) {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("state").join("state.db");
    eprintln!("{test}: SQLite");
    body(path.display().to_string()).await;
    if let Some(database) = test_pg::database(test).await {
        eprintln!("{test}: PostgreSQL");
        body(database.url.clone()).await;
    }
}

async fn must_open(location: &str) -> Store {
    open(location)
        .await
        .unwrap_or_else(|error| panic!("opening {location}: {error}"))
}

fn key(environment: &str) -> EnvironmentKey {
    key_of("default", environment)
}

fn key_of(deployment: &str, environment: &str) -> EnvironmentKey {
    EnvironmentKey {
        deployment: deployment.to_string(),
        environment: environment.to_string(),
    }
}

/// A fixed instant plus `seconds`, with nanoseconds so precision loss would show.
fn at(seconds: i64) -> Timestamp {
    Timestamp::new(1_750_000_000 + seconds, 123_456_789).unwrap()
}

fn holder(apply_id: &str) -> LockHolder {
    LockHolder {
        apply_id: apply_id.to_string(),
        host: "build-host-a".to_string(),
        pid: 4242,
        started_at: at(0),
    }
}

fn apply(id: &str, environment: &EnvironmentKey, started_at: Timestamp) -> ApplyRecord {
    ApplyRecord {
        id: id.to_string(),
        environment: environment.clone(),
        kind: "apply".to_string(),
        plan_hash: format!("plan-{id}"),
        desired_hash: format!("desired-{id}"),
        shared_hash: Some("shared".to_string()),
        git_commit: None,
        actor_user: "ops".to_string(),
        actor_host: "build-host-a".to_string(),
        pid: 4242,
        started_at,
        finished_at: None,
        outcome: Outcome::Running,
        changes: 3,
        health_passed: None,
        override_reason: None,
        message: None,
        plan_json: format!(r#"{{"id":"{id}"}}"#),
    }
}

fn step(apply_id: &str, index: u32, status: StepStatus) -> StepRecord {
    StepRecord {
        apply_id: apply_id.to_string(),
        index,
        kind: "ensure_env_file".to_string(),
        target: "/srv/tldw/.env".to_string(),
        addresses: vec![format!("env.KEY_{index}"), "env.OTHER".to_string()],
        status,
        before_hash: Some("before".to_string()),
        after_hash: None,
        checkpoint_path: Some("/srv/tldw/.tldw-ops/checkpoint".to_string()),
        checkpoint_hash: None,
        before_values: None,
        started_at: at(10 + i64::from(index)),
        finished_at: None,
        error: None,
    }
}

fn secret(fingerprint: &str) -> SecretMeta {
    SecretMeta {
        fingerprint: fingerprint.to_string(),
        set_at: at(5),
        rotated_at: Some(at(6)),
        adopted: false,
        source: "generate".to_string(),
    }
}

fn record(managed: &[(&str, &str, bool)], secrets: &[(&str, &str)]) -> Record {
    Record {
        managed: managed
            .iter()
            .map(|(address, hash, sensitive)| (address.to_string(), (hash.to_string(), *sensitive)))
            .collect(),
        secrets: secrets
            .iter()
            .map(|(name, fingerprint)| (name.to_string(), secret(fingerprint)))
            .collect(),
    }
}

/// Runs a whole apply that succeeds with `record`.
async fn succeed(
    store: &Store,
    id: &str,
    environment: &EnvironmentKey,
    when: i64,
    record: &Record,
) {
    store
        .begin_apply(&apply(id, environment, at(when)))
        .await
        .unwrap();
    store
        .finish_apply(
            id,
            Outcome::Succeeded,
            at(when + 1),
            Some(true),
            None,
            Some(record),
        )
        .await
        .unwrap();
}

fn ids(applies: &[ApplyRecord]) -> Vec<&str> {
    applies.iter().map(|apply| apply.id.as_str()).collect()
}

fn locked_by(result: Result<(), StateError>) -> LockHolder {
    match result {
        Err(StateError::Locked { holder, .. }) => holder,
        other => panic!("expected the lock to be refused, got {other:?}"),
    }
}

#[tokio::test]
async fn a_new_environment_gets_the_store_salt_and_keeps_it_across_reopen() {
    on_each_backend("salt", async |location: String| {
        let store = must_open(&location).await;
        let prod = store.environment(&key("prod")).await.unwrap();
        assert_eq!(prod.salt.len(), 32);
        assert!(prod.managed.is_empty() && prod.secrets.is_empty());
        let stage = store.environment(&key("stage")).await.unwrap();
        assert_eq!(stage.salt, prod.salt, "one salt per store");
        let listed: Vec<_> = store
            .environments()
            .await
            .unwrap()
            .into_iter()
            .map(|summary| summary.environment)
            .collect();
        assert_eq!(listed, vec![key("prod"), key("stage")]);
        drop(store);

        let reopened = must_open(&location).await;
        assert_eq!(
            reopened.environment(&key("prod")).await.unwrap().salt,
            prod.salt
        );
        assert_eq!(
            reopened.environment(&key("new")).await.unwrap().salt,
            prod.salt
        );
    })
    .await;
}

#[tokio::test]
async fn a_second_lock_is_refused_and_names_the_holder() {
    on_each_backend("lock refused", async |location: String| {
        let store = must_open(&location).await;
        let other_process = must_open(&location).await;
        store.lock(&key("prod"), &holder("a1")).await.unwrap();

        assert_eq!(
            locked_by(store.lock(&key("prod"), &holder("a2")).await),
            holder("a1")
        );
        assert_eq!(
            locked_by(store.lock(&key("prod"), &holder("a1")).await),
            holder("a1"),
            "not reentrant"
        );
        let refused = other_process
            .lock(&key("prod"), &holder("a2"))
            .await
            .unwrap_err();
        let message = refused.to_string();
        assert!(
            message.contains("prod")
                && message.contains("a1")
                && message.contains("build-host-a")
                && message.contains("4242")
                && message.contains(&at(0).to_string()),
            "{message}"
        );
        assert_eq!(
            other_process.lock_holder(&key("prod")).await.unwrap(),
            Some(holder("a1"))
        );
    })
    .await;
}

#[tokio::test]
async fn unlock_releases_the_lock_only_for_its_own_apply() {
    on_each_backend("unlock", async |location: String| {
        let store = must_open(&location).await;
        store.lock(&key("prod"), &holder("a1")).await.unwrap();

        store.unlock(&key("prod"), "someone-else").await.unwrap();
        assert_eq!(
            store.lock_holder(&key("prod")).await.unwrap(),
            Some(holder("a1"))
        );

        store.unlock(&key("prod"), "a1").await.unwrap();
        assert_eq!(store.lock_holder(&key("prod")).await.unwrap(), None);
        let other_process = must_open(&location).await;
        other_process
            .lock(&key("prod"), &holder("a2"))
            .await
            .unwrap();
        assert_eq!(
            store.lock_holder(&key("prod")).await.unwrap(),
            Some(holder("a2"))
        );
    })
    .await;
}

#[tokio::test]
async fn force_unlock_clears_a_lock_held_elsewhere_and_returns_its_holder() {
    on_each_backend("force unlock", async |location: String| {
        let stuck = must_open(&location).await;
        let operator = must_open(&location).await;
        stuck.lock(&key("prod"), &holder("a1")).await.unwrap();

        assert_eq!(
            operator.force_unlock(&key("prod")).await.unwrap(),
            Some(holder("a1"))
        );
        assert_eq!(operator.lock_holder(&key("prod")).await.unwrap(), None);
        operator.lock(&key("prod"), &holder("a2")).await.unwrap();

        // The stuck process letting go later does not release the new holder's lock.
        stuck.unlock(&key("prod"), "a1").await.unwrap();
        assert_eq!(
            operator.lock_holder(&key("prod")).await.unwrap(),
            Some(holder("a2"))
        );
        assert_eq!(operator.force_unlock(&key("stage")).await.unwrap(), None);
    })
    .await;
}

#[tokio::test]
async fn two_environments_lock_at_the_same_time() {
    on_each_backend("two environments", async |location: String| {
        let first = must_open(&location).await;
        let second = must_open(&location).await;
        let (prod, stage) = (key("prod"), key("stage"));
        let (a1, b1) = (holder("a1"), holder("b1"));
        let (prod, stage) = tokio::join!(first.lock(&prod, &a1), second.lock(&stage, &b1));
        prod.unwrap();
        stage.unwrap();
        first
            .lock(&key_of("other", "prod"), &holder("c1"))
            .await
            .unwrap();
        assert_eq!(
            second.lock_holder(&key("prod")).await.unwrap(),
            Some(holder("a1"))
        );
        assert_eq!(
            first.lock_holder(&key("stage")).await.unwrap(),
            Some(holder("b1"))
        );
        assert_eq!(
            first.lock_holder(&key_of("other", "prod")).await.unwrap(),
            Some(holder("c1"))
        );
    })
    .await;
}

#[tokio::test]
async fn postgres_releases_the_lock_of_a_session_that_died() {
    let Some(database) = test_pg::database("dead session").await else {
        return;
    };
    let crashed = must_open(&database.url).await;
    crashed.lock(&key("prod"), &holder("a1")).await.unwrap();
    let survivor = must_open(&database.url).await;
    assert_eq!(
        survivor.lock_holder(&key("prod")).await.unwrap(),
        Some(holder("a1"))
    );

    // The process dies without unlocking: its sessions end, and PostgreSQL drops the lock.
    drop(crashed);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while survivor.lock_holder(&key("prod")).await.unwrap().is_some() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the dead session's lock stayed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    survivor.lock(&key("prod"), &holder("a2")).await.unwrap();
    assert_eq!(
        survivor.lock_holder(&key("prod")).await.unwrap(),
        Some(holder("a2"))
    );
}

#[tokio::test]
async fn sqlite_takes_over_the_lock_of_a_dead_process_on_this_host_only() {
    let directory = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&directory.path().join("state.db"))
        .await
        .unwrap();
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let dead_pid = child.id();
    child.wait().unwrap();

    let dead_here = LockHolder {
        host: crate::settings::hostname(),
        pid: dead_pid,
        ..holder("crashed")
    };
    store.lock(&key("prod"), &dead_here).await.unwrap();
    assert_eq!(store.lock_holder(&key("prod")).await.unwrap(), None);
    store.lock(&key("prod"), &holder("a2")).await.unwrap();

    // Elsewhere, a process cannot be checked: its lock stands until force_unlock.
    let dead_elsewhere = LockHolder {
        pid: dead_pid,
        ..holder("remote")
    };
    store.lock(&key("stage"), &dead_elsewhere).await.unwrap();
    assert_eq!(
        locked_by(store.lock(&key("stage"), &holder("a3")).await),
        dead_elsewhere
    );
    let alive_here = LockHolder {
        host: crate::settings::hostname(),
        pid: std::process::id(),
        ..holder("running")
    };
    store.lock(&key("test"), &alive_here).await.unwrap();
    assert_eq!(
        locked_by(store.lock(&key("test"), &holder("a4")).await),
        alive_here
    );
}

#[tokio::test]
async fn the_journal_updates_steps_by_index_and_success_replaces_the_managed_set() {
    on_each_backend("journal", async |location: String| {
        let store = must_open(&location).await;
        let prod = key("prod");
        let first = record(
            &[("env.A", "hash-a", false), ("env.B", "hash-b", true)],
            &[("jwt", "fp-jwt")],
        );
        succeed(&store, "a1", &prod, 0, &first).await;

        // Whatever the record says, a new apply starts running.
        let claimed = ApplyRecord {
            outcome: Outcome::Succeeded,
            finished_at: Some(at(99)),
            ..apply("a2", &prod, at(20))
        };
        store.begin_apply(&claimed).await.unwrap();
        assert_eq!(
            store.apply_record("a2").await.unwrap(),
            Some(apply("a2", &prod, at(20)))
        );
        store
            .write_step(&step("a2", 0, StepStatus::Started))
            .await
            .unwrap();
        store
            .write_step(&step("a2", 1, StepStatus::Started))
            .await
            .unwrap();
        let done = StepRecord {
            after_hash: Some("after".to_string()),
            checkpoint_hash: Some("checkpoint".to_string()),
            before_values: Some(r#"{"quota":1}"#.to_string()),
            finished_at: Some(at(30)),
            ..step("a2", 0, StepStatus::Done)
        };
        store.write_step(&done).await.unwrap();
        assert_eq!(
            store.steps("a2").await.unwrap(),
            vec![done.clone(), step("a2", 1, StepStatus::Started)]
        );

        // A failed apply leaves what the environment manages alone, record or not.
        let ignored = record(&[("env.Z", "hash-z", false)], &[]);
        store
            .finish_apply(
                "a2",
                Outcome::Failed,
                at(40),
                Some(false),
                Some("step 1 failed"),
                Some(&ignored),
            )
            .await
            .unwrap();
        let failed = store.apply_record("a2").await.unwrap().unwrap();
        assert_eq!(
            (
                failed.outcome,
                failed.finished_at,
                failed.health_passed,
                failed.message.as_deref()
            ),
            (
                Outcome::Failed,
                Some(at(40)),
                Some(false),
                Some("step 1 failed")
            )
        );
        let after_failure = store.environment(&prod).await.unwrap();
        assert_eq!(
            after_failure.managed.keys().collect::<Vec<_>>(),
            ["env.A", "env.B"]
        );

        // Success replaces the set: B goes, C comes, A is unchanged and keeps its origin.
        let second = record(
            &[("env.A", "hash-a", false), ("env.C", "hash-c", false)],
            &[("api_key", "fp-api")],
        );
        succeed(&store, "a3", &prod, 50, &second).await;
        let state = store.environment(&prod).await.unwrap();
        assert_eq!(
            state.managed,
            BTreeMap::from([
                (
                    "env.A".to_string(),
                    ManagedRecord {
                        value_hash: "hash-a".to_string(),
                        sensitive: false,
                        apply_id: "a1".to_string(),
                        updated_at: at(1),
                    }
                ),
                (
                    "env.C".to_string(),
                    ManagedRecord {
                        value_hash: "hash-c".to_string(),
                        sensitive: false,
                        apply_id: "a3".to_string(),
                        updated_at: at(51),
                    }
                ),
            ])
        );
        assert_eq!(
            state.secrets,
            BTreeMap::from([("api_key".to_string(), secret("fp-api"))])
        );
        let succeeded = store.apply_record("a3").await.unwrap().unwrap();
        assert_eq!(
            (
                succeeded.outcome,
                succeeded.finished_at,
                succeeded.health_passed
            ),
            (Outcome::Succeeded, Some(at(51)), Some(true))
        );
        // Another environment of the same store is untouched.
        assert!(
            store
                .environment(&key("stage"))
                .await
                .unwrap()
                .managed
                .is_empty()
        );
    })
    .await;
}

#[tokio::test]
async fn unknown_applies_are_reported_and_change_nothing() {
    on_each_backend("unknown apply", async |location: String| {
        let store = must_open(&location).await;
        let prod = key("prod");
        succeed(
            &store,
            "a1",
            &prod,
            0,
            &record(&[("env.A", "hash-a", false)], &[]),
        )
        .await;
        let before = store.environment(&prod).await.unwrap();

        let step_error = store
            .write_step(&step("nope", 0, StepStatus::Started))
            .await;
        assert!(matches!(step_error, Err(StateError::UnknownApply(id)) if id == "nope"));
        let finish_error = store
            .finish_apply(
                "nope",
                Outcome::Succeeded,
                at(9),
                None,
                None,
                Some(&Record::default()),
            )
            .await;
        assert!(matches!(finish_error, Err(StateError::UnknownApply(id)) if id == "nope"));
        assert!(matches!(
            store.steps("nope").await,
            Err(StateError::UnknownApply(_))
        ));
        assert_eq!(store.apply_record("nope").await.unwrap(), None);
        assert_eq!(store.environment(&prod).await.unwrap(), before);
        assert!(
            store.begin_apply(&apply("a1", &prod, at(3))).await.is_err(),
            "ids are unique"
        );
    })
    .await;
}

#[tokio::test]
async fn unfinished_apply_is_the_newest_running_apply_of_its_environment() {
    on_each_backend("unfinished apply", async |location: String| {
        let store = must_open(&location).await;
        let (prod, stage) = (key("prod"), key("stage"));
        assert_eq!(store.unfinished_apply(&prod).await.unwrap(), None);
        store.begin_apply(&apply("a1", &prod, at(1))).await.unwrap();
        store.begin_apply(&apply("a2", &prod, at(2))).await.unwrap();
        store
            .begin_apply(&apply("b1", &stage, at(3)))
            .await
            .unwrap();

        assert_eq!(
            store.unfinished_apply(&prod).await.unwrap(),
            Some(apply("a2", &prod, at(2)))
        );
        store
            .finish_apply("a2", Outcome::Abandoned, at(4), None, None, None)
            .await
            .unwrap();
        assert_eq!(
            store.unfinished_apply(&prod).await.unwrap().unwrap().id,
            "a1"
        );
        store
            .finish_apply("a1", Outcome::RolledBack, at(5), None, None, None)
            .await
            .unwrap();
        assert_eq!(store.unfinished_apply(&prod).await.unwrap(), None);
        assert_eq!(
            store.unfinished_apply(&stage).await.unwrap().unwrap().id,
            "b1"
        );
    })
    .await;
}

#[tokio::test]
async fn applies_are_listed_newest_first_and_filtered_by_environment() {
    on_each_backend("applies", async |location: String| {
        let store = must_open(&location).await;
        let (prod, stage) = (key("prod"), key("stage"));
        store.begin_apply(&apply("a1", &prod, at(1))).await.unwrap();
        store
            .begin_apply(&apply("b1", &stage, at(2)))
            .await
            .unwrap();
        // Journaled out of order, and two in the same instant (the later insert is newer).
        store.begin_apply(&apply("a3", &prod, at(4))).await.unwrap();
        store.begin_apply(&apply("a2", &prod, at(3))).await.unwrap();
        store.begin_apply(&apply("a4", &prod, at(4))).await.unwrap();
        // One nanosecond apart still sorts.
        let nudged = Timestamp::new(1_750_000_000 + 1, 123_456_790).unwrap();
        store
            .begin_apply(&apply("a1b", &prod, nudged))
            .await
            .unwrap();

        let all = store.applies(None, 100).await.unwrap();
        assert_eq!(ids(&all), ["a4", "a3", "a2", "b1", "a1b", "a1"]);
        assert_eq!(
            all[5],
            apply("a1", &prod, at(1)),
            "records round-trip exactly"
        );
        assert_eq!(
            ids(&store.applies(Some(&prod), 100).await.unwrap()),
            ["a4", "a3", "a2", "a1b", "a1"]
        );
        assert_eq!(
            ids(&store.applies(Some(&prod), 2).await.unwrap()),
            ["a4", "a3"]
        );
        assert_eq!(
            ids(&store.applies(Some(&stage), 100).await.unwrap()),
            ["b1"]
        );
        assert!(
            store
                .applies(Some(&key("none")), 100)
                .await
                .unwrap()
                .is_empty()
        );
    })
    .await;
}

#[tokio::test]
async fn environments_summarise_managed_count_last_apply_and_lock() {
    on_each_backend("environments", async |location: String| {
        let store = must_open(&location).await;
        let prod = key("prod");
        let managed = record(&[("env.A", "a", false), ("env.B", "b", false)], &[]);
        succeed(&store, "a1", &prod, 0, &managed).await;
        store
            .begin_apply(&apply("a2", &prod, at(10)))
            .await
            .unwrap();
        store.lock(&prod, &holder("a2")).await.unwrap();
        store.environment(&key("stage")).await.unwrap();
        let other = key_of("other", "prod");
        succeed(
            &store,
            "o1",
            &other,
            5,
            &record(&[("env.X", "x", true)], &[]),
        )
        .await;

        let summaries = store.environments().await.unwrap();
        assert_eq!(
            summaries,
            vec![
                EnvironmentSummary {
                    environment: prod.clone(),
                    managed: 2,
                    last_apply: Some(apply("a2", &prod, at(10))),
                    lock: Some(holder("a2")),
                },
                EnvironmentSummary {
                    environment: key("stage"),
                    managed: 0,
                    last_apply: None,
                    lock: None,
                },
                EnvironmentSummary {
                    environment: other.clone(),
                    managed: 1,
                    last_apply: store.apply_record("o1").await.unwrap(),
                    lock: None,
                },
            ]
        );
    })
    .await;
}

#[tokio::test]
async fn deployments_sharing_a_store_keep_their_state_apart() {
    on_each_backend("namespaces", async |location: String| {
        let store = must_open(&location).await;
        let (alpha, beta) = (key_of("alpha", "prod"), key_of("beta", "prod"));
        succeed(
            &store,
            "a1",
            &alpha,
            0,
            &record(&[("env.A", "a", false)], &[("jwt", "fp-a")]),
        )
        .await;
        succeed(
            &store,
            "b1",
            &beta,
            1,
            &record(&[("env.B", "b", false)], &[]),
        )
        .await;
        store.lock(&alpha, &holder("a2")).await.unwrap();

        let alpha_state = store.environment(&alpha).await.unwrap();
        let beta_state = store.environment(&beta).await.unwrap();
        assert_eq!(alpha_state.managed.keys().collect::<Vec<_>>(), ["env.A"]);
        assert_eq!(beta_state.managed.keys().collect::<Vec<_>>(), ["env.B"]);
        assert!(beta_state.secrets.is_empty());
        assert_eq!(store.lock_holder(&beta).await.unwrap(), None);
        store.lock(&beta, &holder("b2")).await.unwrap();
        assert_eq!(ids(&store.applies(Some(&beta), 10).await.unwrap()), ["b1"]);
    })
    .await;
}

/// A SQLite store with two environments, managed rows, secrets, applies and steps.
async fn populated_source(directory: &std::path::Path) -> Store {
    let source = must_open(&directory.join("source.db").display().to_string()).await;
    let (prod, stage) = (key("prod"), key("stage"));
    succeed(
        &source,
        "a1",
        &prod,
        0,
        &record(
            &[("env.A", "a", false), ("env.S", "s", true)],
            &[("jwt", "fp-jwt")],
        ),
    )
    .await;
    source
        .write_step(&step("a1", 0, StepStatus::Done))
        .await
        .unwrap();
    source
        .write_step(&step("a1", 1, StepStatus::Skipped))
        .await
        .unwrap();
    source
        .begin_apply(&apply("b1", &stage, at(5)))
        .await
        .unwrap();
    source
        .write_step(&step("b1", 0, StepStatus::Started))
        .await
        .unwrap();
    // Same instant as b1: the copy must keep the order.
    source
        .begin_apply(&apply("a2", &prod, at(5)))
        .await
        .unwrap();
    source
        .finish_apply("a2", Outcome::RolledBack, at(6), None, Some("undone"), None)
        .await
        .unwrap();
    source
}

#[tokio::test]
async fn migrate_history_copies_everything_and_running_it_again_copies_nothing() {
    let directory = tempfile::tempdir().unwrap();
    let source = populated_source(directory.path()).await;
    on_each_backend("migrate history", async |location: String| {
        let target = must_open(&location).await;
        let report = migrate_history(&source, &target).await.unwrap();
        assert_eq!(
            report,
            MigrationReport {
                salt_copied: true,
                environments: 2,
                managed: 2,
                secrets: 1,
                applies: 3,
                steps: 3,
                applies_already_present: 0,
            }
        );
        for environment in [key("prod"), key("stage")] {
            assert_eq!(
                target.environment(&environment).await.unwrap(),
                source.environment(&environment).await.unwrap()
            );
        }
        let applies = source.applies(None, 100).await.unwrap();
        assert_eq!(target.applies(None, 100).await.unwrap(), applies);
        for apply in &applies {
            assert_eq!(
                target.steps(&apply.id).await.unwrap(),
                source.steps(&apply.id).await.unwrap()
            );
        }

        let again = migrate_history(&source, &target).await.unwrap();
        assert_eq!(
            again,
            MigrationReport {
                applies_already_present: 3,
                ..MigrationReport::default()
            }
        );
        assert_eq!(target.applies(None, 100).await.unwrap(), applies);
        assert_eq!(
            target.environments().await.unwrap(),
            source.environments().await.unwrap()
        );
    })
    .await;
}

#[tokio::test]
async fn migrate_history_refuses_a_target_whose_environments_use_another_salt() {
    let directory = tempfile::tempdir().unwrap();
    let source = populated_source(directory.path()).await;
    on_each_backend("migrate salt conflict", async |location: String| {
        let target = must_open(&location).await;
        target.environment(&key("elsewhere")).await.unwrap();
        let refused = migrate_history(&source, &target).await;
        assert!(
            matches!(&refused, Err(StateError::SaltConflict { from, to })
                if *from == source.location() && *to == target.location()),
            "{refused:?}"
        );
        assert!(
            target.applies(None, 100).await.unwrap().is_empty(),
            "nothing was copied"
        );
    })
    .await;
}

#[tokio::test]
async fn reopening_a_sqlite_store_runs_no_migration_twice() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("state.db");
    for _ in 0..3 {
        let store = SqliteStore::open(&path).await.unwrap();
        store.environment(&key("prod")).await.unwrap();
    }
    let store = SqliteStore::open(&path).await.unwrap();
    let applied: Vec<(i64, i64)> = sqlx::query_as(
        "SELECT version, count(*) FROM _sqlx_migrations WHERE success GROUP BY version",
    )
    .fetch_all(store.pool())
    .await
    .unwrap();
    let files = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/sqlite"))
        .unwrap()
        .count();
    assert_eq!(applied.len(), files);
    assert!(applied.iter().all(|(_, count)| *count == 1), "{applied:?}");

    // And the durability settings the journal relies on are in force.
    let journal_mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(store.pool())
        .await
        .unwrap();
    let synchronous: i64 = sqlx::query_scalar("PRAGMA synchronous")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(
        (journal_mode.as_str(), synchronous),
        ("wal", 2),
        "WAL with synchronous=FULL"
    );
}

#[tokio::test]
async fn a_state_file_that_is_not_a_database_is_reported_as_such() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("state.db");
    std::fs::write(&path, "apiVersion: tldw-ops/v1\n".repeat(200)).unwrap();
    let error = open(&path.display().to_string()).await.unwrap_err();
    assert!(
        matches!(&error, StateError::NotADatabase { location, .. } if *location == path.display().to_string()),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        format!("state store {} is not a SQLite database", path.display())
    );
}

#[tokio::test]
async fn the_sqlite_state_directory_and_file_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let directory = tempfile::tempdir().unwrap();
    let path = directory
        .path()
        .join("deploy")
        .join(".tldw-ops")
        .join("state.db");
    SqliteStore::open(&path).await.unwrap();
    let mode =
        |path: &std::path::Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(path.parent().unwrap()), 0o700);
    assert_eq!(mode(path.parent().unwrap().parent().unwrap()), 0o700);
    assert_eq!(mode(&path), 0o600);
}

#[tokio::test]
async fn open_picks_the_backend_from_the_location() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("state.db");
    let by_url = must_open(&format!("sqlite://{}", path.display())).await;
    assert!(matches!(by_url, Store::Sqlite(_)));
    assert_eq!(by_url.location(), path.display().to_string());

    let refused = open("mysql://ops:hunter2@db/state").await.unwrap_err();
    assert!(
        matches!(refused, StateError::Location { .. }),
        "{refused:?}"
    );
    assert!(!refused.to_string().contains("hunter2"), "{refused}");
    assert!(matches!(
        open("sqlite://").await,
        Err(StateError::Location { .. })
    ));

    assert_eq!(
        default_location(std::path::Path::new("deploy/tldw.yaml")),
        std::path::Path::new("deploy/.tldw-ops/state.db")
    );
    assert_eq!(
        default_location(std::path::Path::new("tldw.yaml")),
        std::path::Path::new(".tldw-ops/state.db")
    );
}

#[tokio::test]
async fn postgres_locations_and_errors_never_show_the_password() {
    // Nothing listens on port 1: the error must still hide the password.
    let unreachable = open("postgres://ops:hunter2@127.0.0.1:1/state")
        .await
        .unwrap_err();
    assert!(
        unreachable
            .to_string()
            .contains("postgres://ops@127.0.0.1:1/state"),
        "{unreachable}"
    );
    assert!(
        !format!("{unreachable} {unreachable:?}").contains("hunter2"),
        "{unreachable:?}"
    );

    let Some(database) = test_pg::database("password").await else {
        return;
    };
    let store = must_open(&database.url_with_password).await;
    assert!(matches!(store, Store::Postgres(_)));
    assert_eq!(store.location(), database.url);
    assert!(!format!("{store:?}").contains("hunter2"));
}

#[tokio::test]
async fn a_read_only_store_opens_once_and_registers_nothing() {
    on_each_backend("read_only", async |location| {
        // A store that does not exist yet is created as `open` creates it, salt and all.
        let first = open_read_only(&location).await.unwrap();
        let salt = first.environment(&key("prod")).await.unwrap().salt;
        first.close().await;
        if let Some(path) = location::sqlite_path(&location) {
            assert!(path.is_file());
        }
        {
            let writer = must_open(&location).await;
            succeed(&writer, "a1", &key("prod"), 0, &Record::default()).await;
            writer.close().await;
        }

        let store = open_read_only(&location).await.unwrap();
        let unknown = store.environment(&key("staging")).await.unwrap();
        assert_eq!(unknown.salt, salt);
        assert!(unknown.managed.is_empty() && unknown.secrets.is_empty());
        assert!(
            store
                .unfinished_apply(&key("prod"))
                .await
                .unwrap()
                .is_none()
        );
        let listed: Vec<EnvironmentKey> = store
            .environments()
            .await
            .unwrap()
            .into_iter()
            .map(|summary| summary.environment)
            .collect();
        assert_eq!(listed, vec![key("prod")], "staging was not registered");
        if let Store::Sqlite(sqlite) = &store {
            assert_eq!(
                sqlite.pool().size(),
                1,
                "one connection: the file is opened once"
            );
        }
        store.close().await;
    })
    .await;
}

#[tokio::test]
async fn a_read_only_open_of_an_unreachable_postgres_fails_at_once_without_the_password() {
    let started = std::time::Instant::now();
    let error = open_read_only("postgres://ops:hunter2@127.0.0.1:1/state")
        .await
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(10), "{error}");
    assert!(
        error
            .to_string()
            .contains("postgres://ops@127.0.0.1:1/state"),
        "{error}"
    );
    assert!(!format!("{error} {error:?}").contains("hunter2"));
}

#[tokio::test]
async fn a_finished_record_is_journaled_as_it_ended_and_is_never_unfinished() {
    on_each_backend("record finished", async |location: String| {
        let store = must_open(&location).await;
        let mut drill = apply("d1", &key("prod"), at(10));
        drill.kind = "drill".to_string();
        drill.outcome = Outcome::Failed;
        drill.finished_at = Some(at(12));
        drill.message = Some("restore drill of backup set s1 FAILED: x".to_string());
        store.record_finished(&drill).await.unwrap();
        assert_eq!(store.unfinished_apply(&key("prod")).await.unwrap(), None);
        let read = store.apply_record("d1").await.unwrap().unwrap();
        assert_eq!(read.outcome, Outcome::Failed);
        assert_eq!(read.finished_at, Some(at(12)));
        assert_eq!(read.kind, "drill");
        assert_eq!(read.message, drill.message);
        // What the environment manages is untouched.
        assert!(
            store
                .environment(&key("prod"))
                .await
                .unwrap()
                .managed
                .is_empty()
        );
    })
    .await;
}
