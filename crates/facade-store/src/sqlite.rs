//! The embedded backend: one SQLite file (WAL journal, `synchronous = FULL`), one connection.

use std::path::Path;
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension};

use crate::{
    account_network, now_s, review_from_columns, run_network_ids, sqlite_migrations, Account,
    NetworkSummary, NewNetwork, NewReview, NewScan, Result, Review, ScanRow, StoreError,
    StoredNetwork, StoredScan, Subject,
};

pub(crate) struct SqliteStore {
    pub(crate) conn: Connection,
}

impl SqliteStore {
    /// Opens (creating it and its folder if needed) the store at `path` and brings its schema
    /// up to date.
    pub(crate) fn open(path: &Path) -> Result<SqliteStore> {
        let open_error = |source: rusqlite::Error| StoreError::Open {
            location: path.display().to_string(),
            source: Box::new(source.into()),
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            // A missing folder shows up as SQLite's "unable to open", which says less.
            let _ = std::fs::create_dir_all(dir);
        }
        let conn = Connection::open(path).map_err(open_error)?;
        conn.busy_timeout(Duration::from_secs(10))
            .map_err(open_error)?;
        // WAL: readers never block the writer; FULL: a commit is on disk when it returns.
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(open_error)?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(open_error)?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(open_error)?;
        let mut store = SqliteStore { conn };
        sqlite_migrations::apply(&mut store.conn, path)?;
        Ok(store)
    }

    pub(crate) fn schema_version(&mut self) -> Result<u32> {
        Ok(self
            .conn
            .pragma_query_value(None, "user_version", |r| r.get(0))?)
    }

    /// SQLite's own consistency check: `"ok"` when the file is sound.
    pub(crate) fn integrity_check(&mut self) -> Result<String> {
        Ok(self
            .conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))?)
    }

    pub(crate) fn cached_scan(&mut self, sha256: &str, judge: &str) -> Result<Option<StoredScan>> {
        let row = self
            .conn
            .query_row(
                "SELECT record, scanned_at FROM scans WHERE sha256 = ?1 AND judge = ?2",
                params![sha256, judge],
                |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)),
            )
            .optional()?;
        match row {
            Some((record, scanned_at)) => Ok(Some(StoredScan {
                sha256: sha256.to_owned(),
                record: serde_json::from_str(&record)?,
                scanned_at,
            })),
            None => Ok(None),
        }
    }

    /// Keeps a scan (replacing an older one of the same bytes by the same judge).
    pub(crate) fn put_scan(&mut self, scan: &NewScan) -> Result<()> {
        let row = ScanRow::of(scan);
        self.conn.execute(
            "INSERT OR REPLACE INTO scans (sha256, judge, record, score, verdict, thumbnail, scanned_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                scan.sha256,
                scan.judge,
                row.record,
                row.score,
                row.verdict,
                scan.thumbnail,
                row.scanned_at
            ],
        )?;
        Ok(())
    }

    /// The thumbnail (JPEG) of the image with this hash, from whichever judge kept one.
    pub(crate) fn thumbnail(&mut self, sha256: &str) -> Result<Option<Vec<u8>>> {
        Ok(self
            .conn
            .query_row(
                "SELECT thumbnail FROM scans WHERE sha256 = ?1 AND thumbnail IS NOT NULL LIMIT 1",
                [sha256],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// Keeps one run of `facade networks`: its networks and accounts, in one transaction.
    /// Returns the stored ids of the networks, in the order given.
    pub(crate) fn put_run(
        &mut self,
        run: &str,
        networks: &[NewNetwork],
        accounts: &[Account],
    ) -> Result<Vec<String>> {
        let at = now_s();
        let tx = self.conn.transaction()?;
        let (ids, by_label) = run_network_ids(networks);
        for (network, id) in networks.iter().zip(&ids) {
            tx.execute(
                "INSERT OR REPLACE INTO networks (id, label, run, score, flagged, members, record, stored_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    id,
                    network.label,
                    run,
                    network.score,
                    network.flagged,
                    network.members.len() as i64,
                    network.record.to_string(),
                    at
                ],
            )?;
        }
        for account in accounts {
            let network = account_network(account, &by_label);
            tx.execute(
                "INSERT OR REPLACE INTO accounts (id, handle, network, image_sha256, ai_score, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    account.id,
                    account.handle,
                    network,
                    account.image_sha256,
                    account.ai_score,
                    at
                ],
            )?;
        }
        tx.commit()?;
        Ok(ids)
    }

    /// Networks by score, highest first; only flagged ones unless `all`.
    pub(crate) fn networks(&mut self, all: bool) -> Result<Vec<NetworkSummary>> {
        let mut statement = self.conn.prepare(
            "SELECT id, label, run, score, flagged, members, stored_at FROM networks
             WHERE flagged OR ?1 ORDER BY score DESC, members DESC, id",
        )?;
        let rows = statement.query_map([all], network_summary)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    pub(crate) fn network(&mut self, id: &str) -> Result<Option<StoredNetwork>> {
        let row = self
            .conn
            .query_row(
                "SELECT id, label, run, score, flagged, members, stored_at, record FROM networks WHERE id = ?1",
                [id],
                |r| Ok((network_summary(r)?, r.get::<_, String>(7)?)),
            )
            .optional()?;
        match row {
            Some((summary, record)) => Ok(Some(StoredNetwork {
                summary,
                record: serde_json::from_str(&record)?,
            })),
            None => Ok(None),
        }
    }

    /// Accounts, the most AI-looking first; only those in a flagged network or with an
    /// AI-made picture (score at least `min_ai_score`) unless `all`.
    pub(crate) fn accounts(&mut self, all: bool, min_ai_score: f64) -> Result<Vec<Account>> {
        let mut statement = self.conn.prepare(
            "SELECT id, handle, network, image_sha256, ai_score FROM accounts
             WHERE ?1 OR ai_score >= ?2 OR network IN (SELECT id FROM networks WHERE flagged)
             ORDER BY ai_score DESC NULLS LAST, id",
        )?;
        let rows = statement.query_map(params![all, min_ai_score], account_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// The accounts of one stored network.
    pub(crate) fn accounts_of_network(&mut self, id: &str) -> Result<Vec<Account>> {
        let mut statement = self.conn.prepare(
            "SELECT id, handle, network, image_sha256, ai_score FROM accounts
             WHERE network = ?1 ORDER BY ai_score DESC NULLS LAST, id",
        )?;
        let rows = statement.query_map([id], account_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Records a decision; it is on disk when this returns.
    pub(crate) fn add_review(&mut self, review: &NewReview) -> Result<Review> {
        let created_at = now_s();
        self.conn.execute(
            "INSERT INTO reviews (subject, decision, note, reviewer, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                review.subject.to_string(),
                review.decision.as_str(),
                review.note,
                review.reviewer,
                created_at
            ],
        )?;
        Ok(review.recorded(self.conn.last_insert_rowid(), created_at))
    }

    /// Every review in the order made, or those of one subject.
    pub(crate) fn reviews(&mut self, subject: Option<&Subject>) -> Result<Vec<Review>> {
        let mut statement = self.conn.prepare(
            "SELECT id, subject, decision, note, reviewer, created_at FROM reviews
             WHERE ?1 IS NULL OR subject = ?1 ORDER BY id",
        )?;
        let subject = subject.map(Subject::to_string);
        let rows = statement.query_map([subject], |r| {
            Ok(review_from_columns(
                r.get(0)?,
                &r.get::<_, String>(1)?,
                &r.get::<_, String>(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
            ))
        })?;
        let mut reviews = Vec::new();
        for row in rows {
            reviews.extend(row?);
        }
        Ok(reviews)
    }
}

fn account_row(r: &rusqlite::Row) -> rusqlite::Result<Account> {
    Ok(Account {
        id: r.get(0)?,
        handle: r.get(1)?,
        network: r.get(2)?,
        image_sha256: r.get(3)?,
        ai_score: r.get(4)?,
    })
}

fn network_summary(r: &rusqlite::Row) -> rusqlite::Result<NetworkSummary> {
    Ok(NetworkSummary {
        id: r.get(0)?,
        label: r.get(1)?,
        run: r.get(2)?,
        score: r.get(3)?,
        flagged: r.get(4)?,
        members: r.get(5)?,
        stored_at: r.get(6)?,
    })
}
