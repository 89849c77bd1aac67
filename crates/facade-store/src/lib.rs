//! # facade-store: what facade has seen and what analysts decided, kept safely
//!
//! One SQLite file (WAL journal, `synchronous = FULL`) holds four things:
//! - **scans** by the SHA-256 of the image bytes (`facade_image::sha256_hex`) and the judge
//!   that made them (model and operating point), with a small JPEG thumbnail, so that a rescan
//!   of the same bytes is a lookup;
//! - **networks** found by `facade networks` (their `networks.json` object, under an id derived
//!   from the members, so that the same network found again keeps its id and its reviews);
//! - **accounts**: the latest known handle, network and picture of each account;
//! - **reviews**: an analyst's confirm/dismiss decision on an account, a network or an image,
//!   with who, when and why. Reviews are only ever added, never rewritten.
//!
//! Every write is one transaction that is on disk when the call returns: a process killed at
//! any moment loses no write whose call had returned (tested by killing a writer with SIGKILL).
//! The schema is versioned by `PRAGMA user_version`; [`Store::open`] applies the missing
//! migrations in order and refuses a file written by a newer facade.
//!
//! The crate knows nothing about images or detectors: records and networks arrive as JSON.
//!
//! ```
//! let dir = tempfile::tempdir().unwrap();
//! let store = facade_store::Store::open(&dir.path().join("facade.db")).unwrap();
//! let review = store
//!     .add_review(&facade_store::NewReview {
//!         subject: "account:42".parse().unwrap(),
//!         decision: facade_store::Decision::Confirm,
//!         note: "same face as account 17".into(),
//!         reviewer: "analyst".into(),
//!     })
//!     .unwrap();
//! assert_eq!(store.reviews(None).unwrap(), vec![review]);
//! ```

mod migrations;
mod subject;

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use subject::{Subject, SubjectError};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("opening the store {path}: {source}")]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error(
        "the store {path} has schema version {found}, newer than this facade's {known}: upgrade facade"
    )]
    TooNew {
        path: PathBuf,
        found: u32,
        known: u32,
    },
    #[error("store: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("store: a stored record is not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// The embedded store. One connection; wrap it in a mutex to share it between threads.
pub struct Store {
    conn: Connection,
}

/// Where the store lives unless told otherwise: `$XDG_DATA_HOME/facade/facade.db`, else
/// `~/.local/share/facade/facade.db`, else `facade.db` in the working directory.
pub fn default_path() -> PathBuf {
    let data_home = std::env::var_os("XDG_DATA_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|v| !v.is_empty())
                .map(|home| PathBuf::from(home).join(".local/share"))
        });
    match data_home {
        Some(dir) => dir.join("facade").join("facade.db"),
        None => PathBuf::from("facade.db"),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Seconds since the epoch, as written in every `*_at` column.
fn now_s() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs() as i64
}

/// Side of the thumbnails the store is given, in pixels.
pub const THUMBNAIL_SIDE: u32 = 160;

/// A scan to keep: the record as `facade scan` writes it. Its `path` is not kept (the same
/// bytes may have many names); its `score` and `verdict` are also kept as columns.
pub struct NewScan<'a> {
    pub sha256: &'a str,
    pub judge: &'a str,
    pub record: &'a serde_json::Value,
    pub thumbnail: Option<&'a [u8]>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StoredScan {
    pub sha256: String,
    pub record: serde_json::Value,
    pub scanned_at: i64,
}

/// A network as `facade networks` wrote it, and the accounts it names.
pub struct NewNetwork<'a> {
    /// The id in its `networks.json` (N1, N2, … by score within one run).
    pub label: &'a str,
    pub score: f64,
    pub flagged: bool,
    pub members: &'a [String],
    pub record: &'a serde_json::Value,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NetworkSummary {
    pub id: String,
    pub label: String,
    pub run: String,
    pub score: f64,
    pub flagged: bool,
    pub members: u32,
    pub stored_at: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StoredNetwork {
    #[serde(flatten)]
    pub summary: NetworkSummary,
    pub record: serde_json::Value,
}

/// What the store knows of one account.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Account {
    pub id: String,
    pub handle: String,
    pub network: Option<String>,
    /// The SHA-256 of its profile picture, when one was scanned.
    pub image_sha256: Option<String>,
    pub ai_score: Option<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    Confirm,
    Dismiss,
}

impl Decision {
    fn as_str(self) -> &'static str {
        match self {
            Decision::Confirm => "confirm",
            Decision::Dismiss => "dismiss",
        }
    }

    fn parse(s: &str) -> Option<Decision> {
        match s {
            "confirm" => Some(Decision::Confirm),
            "dismiss" => Some(Decision::Dismiss),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewReview {
    pub subject: Subject,
    pub decision: Decision,
    pub note: String,
    pub reviewer: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Review {
    pub id: i64,
    pub subject: Subject,
    pub decision: Decision,
    pub note: String,
    pub reviewer: String,
    /// Seconds since the epoch.
    pub created_at: i64,
}

impl Store {
    /// Opens (creating it and its folder if needed) the store at `path` and brings its schema
    /// up to date.
    pub fn open(path: &Path) -> Result<Store> {
        let open_error = |source| StoreError::Open {
            path: path.to_owned(),
            source,
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
        let mut store = Store { conn };
        migrations::apply(&mut store.conn, path)?;
        Ok(store)
    }

    pub fn schema_version(&self) -> Result<u32> {
        Ok(self
            .conn
            .pragma_query_value(None, "user_version", |r| r.get(0))?)
    }

    /// SQLite's own consistency check: `"ok"` when the file is sound.
    pub fn integrity_check(&self) -> Result<String> {
        Ok(self
            .conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))?)
    }

    pub fn cached_scan(&self, sha256: &str, judge: &str) -> Result<Option<StoredScan>> {
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
    pub fn put_scan(&self, scan: &NewScan) -> Result<()> {
        let mut record = scan.record.clone();
        if let Some(fields) = record.as_object_mut() {
            fields.remove("path");
        }
        self.conn.execute(
            "INSERT OR REPLACE INTO scans (sha256, judge, record, score, verdict, thumbnail, scanned_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                scan.sha256,
                scan.judge,
                record.to_string(),
                record["score"].as_f64(),
                record["verdict"].as_str(),
                scan.thumbnail,
                now_s()
            ],
        )?;
        Ok(())
    }

    /// The thumbnail (JPEG) of the image with this hash, from whichever judge kept one.
    pub fn thumbnail(&self, sha256: &str) -> Result<Option<Vec<u8>>> {
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
    pub fn put_run(
        &mut self,
        run: &str,
        networks: &[NewNetwork],
        accounts: &[Account],
    ) -> Result<Vec<String>> {
        let at = now_s();
        let tx = self.conn.transaction()?;
        let mut ids = Vec::with_capacity(networks.len());
        let mut label_to_id = std::collections::HashMap::new();
        for network in networks {
            let id = network_id(network.members);
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
            label_to_id.insert(network.label.to_owned(), id.clone());
            ids.push(id);
        }
        for account in accounts {
            // Accounts name their network by its label in this run; stored by id.
            let network = account
                .network
                .as_ref()
                .map(|label| label_to_id.get(label).cloned().unwrap_or(label.clone()));
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
    pub fn networks(&self, all: bool) -> Result<Vec<NetworkSummary>> {
        let mut statement = self.conn.prepare(
            "SELECT id, label, run, score, flagged, members, stored_at FROM networks
             WHERE flagged OR ?1 ORDER BY score DESC, members DESC, id",
        )?;
        let rows = statement.query_map([all], network_summary)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    pub fn network(&self, id: &str) -> Result<Option<StoredNetwork>> {
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
    pub fn accounts(&self, all: bool, min_ai_score: f64) -> Result<Vec<Account>> {
        let mut statement = self.conn.prepare(
            "SELECT id, handle, network, image_sha256, ai_score FROM accounts
             WHERE ?1 OR ai_score >= ?2 OR network IN (SELECT id FROM networks WHERE flagged)
             ORDER BY ai_score DESC NULLS LAST, id",
        )?;
        let rows = statement.query_map(params![all, min_ai_score], account_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// The accounts of one stored network.
    pub fn accounts_of_network(&self, id: &str) -> Result<Vec<Account>> {
        let mut statement = self.conn.prepare(
            "SELECT id, handle, network, image_sha256, ai_score FROM accounts
             WHERE network = ?1 ORDER BY ai_score DESC NULLS LAST, id",
        )?;
        let rows = statement.query_map([id], account_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Records a decision; it is on disk when this returns.
    pub fn add_review(&self, review: &NewReview) -> Result<Review> {
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
        Ok(Review {
            id: self.conn.last_insert_rowid(),
            subject: review.subject.clone(),
            decision: review.decision,
            note: review.note.clone(),
            reviewer: review.reviewer.clone(),
            created_at,
        })
    }

    /// Every review in the order made, or those of one subject.
    pub fn reviews(&self, subject: Option<&Subject>) -> Result<Vec<Review>> {
        let mut statement = self.conn.prepare(
            "SELECT id, subject, decision, note, reviewer, created_at FROM reviews
             WHERE ?1 IS NULL OR subject = ?1 ORDER BY id",
        )?;
        let subject = subject.map(Subject::to_string);
        let rows = statement.query_map([subject], |r| {
            let subject: String = r.get(1)?;
            let decision: String = r.get(2)?;
            Ok((
                r.get::<_, i64>(0)?,
                subject,
                decision,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, i64>(5)?,
            ))
        })?;
        let mut reviews = Vec::new();
        for row in rows {
            let (id, subject, decision, note, reviewer, created_at) = row?;
            // The CHECK constraints admit only valid values; a row that still fails to parse
            // was written by something else and is skipped rather than failing the listing.
            let (Ok(subject), Some(decision)) = (subject.parse(), Decision::parse(&decision))
            else {
                continue;
            };
            reviews.push(Review {
                id,
                subject,
                decision,
                note,
                reviewer,
                created_at,
            });
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

/// A network's stored id: `n` and 12 hex digits of the hash of its sorted members, so that
/// the same accounts found again (in another run) are the same network with the same reviews.
pub fn network_id(members: &[String]) -> String {
    let mut sorted: Vec<&str> = members.iter().map(String::as_str).collect();
    sorted.sort_unstable();
    let mut hasher = Sha256::new();
    for member in sorted {
        hasher.update(member.as_bytes());
        hasher.update([0]);
    }
    format!("n{}", &hex(&hasher.finalize())[..12])
}

#[cfg(test)]
mod tests;
