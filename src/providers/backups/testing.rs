//! Test fixtures for the backups provider: real SQLite databases in WAL mode laid out like a
//! tldw_server deployment, and helpers that read a database's rows for comparison. Test-only.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sqlx::{ConnectOptions, Connection, SqliteConnection};

use super::create::{AuthnzSource, BackupSource};

/// Opens (creating) a database in WAL mode, as tldw_server runs them.
pub async fn open_wal(path: &Path) -> SqliteConnection {
    SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .connect()
        .await
        .unwrap()
}

/// Creates `path` with a table `items(id, label, payload)` holding `rows` rows, and returns the
/// still-open connection (so `-wal` and `-shm` exist beside the file).
pub async fn wal_database(path: &Path, rows: i64, payload_bytes: i64) -> SqliteConnection {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).unwrap();
    }
    let mut connection = open_wal(path).await;
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS items (id INTEGER PRIMARY KEY, label TEXT NOT NULL, \
         payload BLOB NOT NULL)",
    )
    .execute(&mut connection)
    .await
    .unwrap();
    sqlx::query(
        "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < ?1) \
         INSERT INTO items (id, label, payload) SELECT x, 'row ' || x, randomblob(?2) FROM n",
    )
    .bind(rows)
    .bind(payload_bytes)
    .execute(&mut connection)
    .await
    .unwrap();
    connection
}

/// Every row of `items`, in id order, with the payload hashed so comparisons stay cheap.
pub async fn rows(path: &Path) -> Vec<(i64, String, String)> {
    let mut connection = SqliteConnectOptions::new()
        .filename(path)
        .read_only(true)
        .connect()
        .await
        .unwrap();
    let rows = sqlx::query_as("SELECT id, label, hex(payload) FROM items ORDER BY id")
        .fetch_all(&mut connection)
        .await
        .unwrap();
    connection.close().await.unwrap();
    rows
}

/// A deployment on disk: an AuthNZ `users.db`, two users' databases (with a nested one and a
/// non-database file), `.env` (mode 0640) and config.txt. The returned connections keep the
/// databases open, as a running server would.
pub struct Deployment {
    pub root: PathBuf,
    pub source: BackupSource,
    pub connections: Vec<SqliteConnection>,
}

impl Deployment {
    pub async fn new(root: &Path) -> Deployment {
        let databases = root.join("Databases");
        let users = databases.join("user_databases");
        let mut connections = Vec::new();
        connections.push(wal_database(&databases.join("users.db"), 50, 64).await);
        for (user, rows) in [("1", 200), ("2", 30)] {
            connections
                .push(wal_database(&users.join(user).join("Media_DB_v2.db"), rows, 512).await);
            connections.push(wal_database(&users.join(user).join("ChaChaNotes.db"), 20, 32).await);
        }
        connections.push(
            wal_database(
                &users.join("1/prompts_user_dbs/user_prompts_v2.sqlite"),
                10,
                16,
            )
            .await,
        );
        fs::write(users.join("1/rag_personalization.json"), b"{\"k\": 1}\n").unwrap();
        // A file that merely ends like a sidecar but has no database beside it is data.
        fs::write(users.join("2/notes-journal"), b"not a sidecar\n").unwrap();
        let env_file = root.join(".env");
        fs::write(
            &env_file,
            b"# tldw\nJWT_SECRET_KEY=abc123\nAUTH_MODE=multi_user\n",
        )
        .unwrap();
        fs::set_permissions(&env_file, fs::Permissions::from_mode(0o640)).unwrap();
        let config_file = root.join("config.txt");
        fs::write(&config_file, b"[Server]\nport = 8000 ; %% literal\n").unwrap();
        Deployment {
            root: root.to_path_buf(),
            source: BackupSource {
                environment: "prod".to_string(),
                authnz: Some(AuthnzSource::Sqlite(databases.join("users.db"))),
                user_db_base_dir: Some(users),
                env_file: Some(env_file),
                config_file: Some(config_file),
                pg_bin_dir: None,
            },
            connections,
        }
    }

    /// Closes every connection, as stopping the server would.
    pub async fn stop(&mut self) {
        for connection in self.connections.drain(..) {
            connection.close().await.unwrap();
        }
    }
}

/// Flips the bytes at `offset..offset + 4` of `path`.
pub fn flip_bytes(path: &Path, offset: usize) {
    let mut bytes = fs::read(path).unwrap();
    for byte in &mut bytes[offset..offset + 4] {
        *byte ^= 0xff;
    }
    fs::write(path, bytes).unwrap();
}
