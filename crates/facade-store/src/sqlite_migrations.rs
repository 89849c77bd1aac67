//! The SQLite schema, as an ordered list of migrations (the same tables, in the same order, as
//! `postgres_migrations`). `PRAGMA user_version` is the number applied;
//! a migration is never edited once released, only followed by a new one.

use std::path::Path;

use rusqlite::Connection;

use crate::StoreError;

const MIGRATIONS: &[&str] = &[
    // 1: the first schema.
    "CREATE TABLE scans (
        sha256     TEXT NOT NULL,
        judge      TEXT NOT NULL,
        record     TEXT NOT NULL,
        score      REAL,
        verdict    TEXT,
        thumbnail  BLOB,
        scanned_at INTEGER NOT NULL,
        PRIMARY KEY (sha256, judge)
    );
    CREATE TABLE networks (
        id        TEXT PRIMARY KEY,
        label     TEXT NOT NULL,
        run       TEXT NOT NULL,
        score     REAL NOT NULL,
        flagged   INTEGER NOT NULL,
        members   INTEGER NOT NULL,
        record    TEXT NOT NULL,
        stored_at INTEGER NOT NULL
    );
    CREATE TABLE accounts (
        id           TEXT PRIMARY KEY,
        handle       TEXT NOT NULL,
        network      TEXT,
        image_sha256 TEXT,
        ai_score     REAL,
        updated_at   INTEGER NOT NULL
    );
    CREATE INDEX accounts_by_network ON accounts (network);
    CREATE TABLE reviews (
        id         INTEGER PRIMARY KEY AUTOINCREMENT,
        subject    TEXT NOT NULL,
        decision   TEXT NOT NULL CHECK (decision IN ('confirm', 'dismiss')),
        note       TEXT NOT NULL,
        reviewer   TEXT NOT NULL,
        created_at INTEGER NOT NULL
    );
    CREATE INDEX reviews_by_subject ON reviews (subject);",
    // 2: the scan queue (used on PostgreSQL; kept here so both backends have one schema).
    "CREATE TABLE jobs (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        path        TEXT NOT NULL UNIQUE,
        sha256      TEXT NOT NULL,
        state       TEXT NOT NULL CHECK (state IN ('pending', 'leased', 'done', 'failed')),
        lease_token INTEGER,
        leased_by   TEXT,
        lease_until INTEGER,
        attempts    INTEGER NOT NULL DEFAULT 0,
        record      TEXT,
        error       TEXT,
        queued_at   INTEGER NOT NULL,
        finished_at INTEGER
    );
    CREATE INDEX jobs_unfinished ON jobs (id) WHERE state IN ('pending', 'leased');
    CREATE INDEX jobs_by_finish ON jobs (finished_at) WHERE finished_at IS NOT NULL;",
];

/// The schema version this facade writes.
pub const LATEST: u32 = MIGRATIONS.len() as u32;

/// Applies every migration past the file's version, each in its own transaction with the
/// version bump, so that a crash leaves the file at one version or the next.
pub fn apply(conn: &mut Connection, path: &Path) -> Result<(), StoreError> {
    let found: u32 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if found > LATEST {
        return Err(StoreError::TooNew {
            location: path.display().to_string(),
            found,
            known: LATEST,
        });
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", index as u32 + 1)?;
        tx.commit()?;
    }
    Ok(())
}
