//! The PostgreSQL schema: the same tables, in the same numbered migrations, as
//! `sqlite_migrations`, in PostgreSQL's types. The number applied is the one row of
//! `facade_schema`; a migration is never edited once released, only followed by a new one.

use postgres::Client;

use crate::StoreError;

const MIGRATIONS: &[&str] = &[
    // 1: the first schema.
    "CREATE TABLE scans (
        sha256     TEXT NOT NULL,
        judge      TEXT NOT NULL,
        record     TEXT NOT NULL,
        score      DOUBLE PRECISION,
        verdict    TEXT,
        thumbnail  BYTEA,
        scanned_at BIGINT NOT NULL,
        PRIMARY KEY (sha256, judge)
    );
    CREATE TABLE networks (
        id        TEXT PRIMARY KEY,
        label     TEXT NOT NULL,
        run       TEXT NOT NULL,
        score     DOUBLE PRECISION NOT NULL,
        flagged   BOOLEAN NOT NULL,
        members   BIGINT NOT NULL,
        record    TEXT NOT NULL,
        stored_at BIGINT NOT NULL
    );
    CREATE TABLE accounts (
        id           TEXT PRIMARY KEY,
        handle       TEXT NOT NULL,
        network      TEXT,
        image_sha256 TEXT,
        ai_score     DOUBLE PRECISION,
        updated_at   BIGINT NOT NULL
    );
    CREATE INDEX accounts_by_network ON accounts (network);
    CREATE TABLE reviews (
        id         BIGSERIAL PRIMARY KEY,
        subject    TEXT NOT NULL,
        decision   TEXT NOT NULL CHECK (decision IN ('confirm', 'dismiss')),
        note       TEXT NOT NULL,
        reviewer   TEXT NOT NULL,
        created_at BIGINT NOT NULL
    );
    CREATE INDEX reviews_by_subject ON reviews (subject);",
    // 2: the scan queue. Times are milliseconds since the epoch by the database's clock, so
    // that leases mean the same on every machine.
    "CREATE TABLE jobs (
        id          BIGSERIAL PRIMARY KEY,
        path        TEXT NOT NULL UNIQUE,
        sha256      TEXT NOT NULL,
        state       TEXT NOT NULL CHECK (state IN ('pending', 'leased', 'done', 'failed')),
        lease_token BIGINT,
        leased_by   TEXT,
        lease_until BIGINT,
        attempts    INTEGER NOT NULL DEFAULT 0,
        record      TEXT,
        error       TEXT,
        queued_at   BIGINT NOT NULL,
        finished_at BIGINT
    );
    CREATE INDEX jobs_unfinished ON jobs (id) WHERE state IN ('pending', 'leased');
    CREATE INDEX jobs_by_finish ON jobs (finished_at) WHERE finished_at IS NOT NULL;",
];

/// The schema version this facade writes (the same number as SQLite's).
pub const LATEST: u32 = MIGRATIONS.len() as u32;

/// Any number, the same in every facade: the advisory lock that makes processes starting at
/// once on one database apply the migrations one after the other, not together.
const MIGRATION_LOCK: i64 = 0x000f_acad_e5c4;

/// Applies every migration past the database's version in one transaction, so that a crash
/// leaves it at the old version or the new one.
pub fn apply(client: &mut Client, location: &str) -> Result<(), StoreError> {
    let mut tx = client.transaction()?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])?;
    tx.batch_execute("CREATE TABLE IF NOT EXISTS facade_schema (version INTEGER NOT NULL)")?;
    let found = tx
        .query_opt("SELECT version FROM facade_schema", &[])?
        .map_or(0, |row| row.get::<_, i32>(0) as u32);
    if found > LATEST {
        return Err(StoreError::TooNew {
            location: location.to_owned(),
            found,
            known: LATEST,
        });
    }
    if found == LATEST {
        return Ok(());
    }
    for sql in &MIGRATIONS[found as usize..] {
        tx.batch_execute(sql)?;
    }
    tx.execute("DELETE FROM facade_schema", &[])?;
    tx.execute(
        "INSERT INTO facade_schema (version) VALUES ($1)",
        &[&(LATEST as i32)],
    )?;
    tx.commit()?;
    Ok(())
}

/// The version recorded in the database.
pub fn version(client: &mut Client) -> Result<u32, StoreError> {
    let row = client.query_one("SELECT version FROM facade_schema", &[])?;
    Ok(row.get::<_, i32>(0) as u32)
}
