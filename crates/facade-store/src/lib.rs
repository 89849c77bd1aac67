//! # facade-store: what facade has seen and what analysts decided, kept safely
//!
//! The store holds four things:
//! - **scans** by the SHA-256 of the image bytes (`facade_image::sha256_hex`) and the judge
//!   that made them (model and operating point), with a small JPEG thumbnail, so that a rescan
//!   of the same bytes is a lookup;
//! - **networks** found by `facade networks` (their `networks.json` object, under an id derived
//!   from the members, so that the same network found again keeps its id and its reviews);
//! - **accounts**: the latest known handle, network and picture of each account;
//! - **reviews**: an analyst's confirm/dismiss decision on an account, a network or an image,
//!   with who, when and why. Reviews are only ever added, never rewritten.
//!
//! and, on PostgreSQL, the **scan queue** ([`queue`]) that several machines' workers share.
//!
//! Two backends behind one [`Store`], chosen by [`Location`]: a SQLite file (the default,
//! embedded; WAL journal, `synchronous = FULL`) or a PostgreSQL server (`postgres://…`), which
//! several processes on several machines can share. Both have the same tables and the same
//! numbered migrations ([`Store::open`] applies the missing ones in order and refuses a store
//! written by a newer facade). Every write is one transaction that is durable when the call
//! returns: a process killed at any moment loses no write whose call had returned (tested by
//! killing a writer with SIGKILL).
//!
//! The crate knows nothing about images or detectors: records and networks arrive as JSON.
//!
//! ```
//! let dir = tempfile::tempdir().unwrap();
//! let mut store = facade_store::Store::open_file(&dir.path().join("facade.db")).unwrap();
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

mod location;
mod postgres_migrations;
mod postgres_store;
pub mod queue;
mod sqlite;
mod sqlite_migrations;
mod subject;
pub mod testing;

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use location::Location;
pub use subject::{Subject, SubjectError};

use postgres_store::PostgresStore;
use sqlite::SqliteStore;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("opening the store {location}: {source}")]
    Open {
        location: String,
        source: Box<StoreError>,
    },
    #[error(
        "the store {location} has schema version {found}, newer than this facade's {known}: upgrade facade"
    )]
    TooNew {
        location: String,
        found: u32,
        known: u32,
    },
    #[error("store: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("store: {}", postgres_message(.0))]
    Postgres(#[from] postgres::Error),
    #[error("store: a stored record is not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error(
        "{what} needs a PostgreSQL store (--db postgres://user@host/database), not {location}"
    )]
    NeedsPostgres { what: String, location: String },
}

impl StoreError {
    /// Whether trying again later may succeed: the server is unreachable, restarting, shutting
    /// down, out of connections, or chose this transaction as a deadlock or serialization
    /// victim. Long-running workers wait these out; anything else is a real failure.
    pub fn is_transient(&self) -> bool {
        match self {
            StoreError::Open { source, .. } => source.is_transient(),
            StoreError::Postgres(error) => match error.as_db_error() {
                // No answer from the server at all: connection refused, reset, closed or
                // timed out (as opposed to a bad URL or a value of the wrong type).
                None => {
                    let io = std::error::Error::source(error)
                        .is_some_and(|cause| cause.is::<std::io::Error>());
                    let message = error.to_string();
                    io || error.is_closed()
                        || message.starts_with("error connecting")
                        || message.starts_with("timeout")
                }
                Some(db) => {
                    let code = db.code().code();
                    // 08: connection exception; 57: operator intervention (shutdown,
                    // starting up); 53: insufficient resources (too many connections);
                    // 40001 / 40P01: serialization failure / deadlock.
                    ["08", "57", "53"]
                        .iter()
                        .any(|class| code.starts_with(class))
                        || code == "40001"
                        || code == "40P01"
                }
            },
            _ => false,
        }
    }
}

/// A PostgreSQL error with the server's own message and detail, which `Display` of
/// `postgres::Error` leaves out ("db error").
fn postgres_message(error: &postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => match db.detail() {
            Some(detail) => format!("PostgreSQL: {} ({detail})", db.message()),
            None => format!("PostgreSQL: {}", db.message()),
        },
        None => format!("PostgreSQL: {error}"),
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// The store, on either backend. One connection; wrap it in a mutex to share it between
/// threads (the service does).
pub struct Store {
    backend: Backend,
}

enum Backend {
    Sqlite(SqliteStore),
    // Boxed: a PostgreSQL client is three times a SQLite connection.
    Postgres(Box<PostgresStore>),
}

/// Calls the same method on whichever backend the store is.
macro_rules! dispatch {
    ($self:ident.$method:ident($($arg:expr),*)) => {
        match &mut $self.backend {
            Backend::Sqlite(store) => store.$method($($arg),*),
            Backend::Postgres(store) => store.$method($($arg),*),
        }
    };
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
    /// Opens the store at `location` (creating a SQLite file and its folder if needed) and
    /// brings its schema up to date.
    pub fn open(location: &Location) -> Result<Store> {
        let backend = match location {
            Location::Sqlite(path) => Backend::Sqlite(SqliteStore::open(path)?),
            Location::Postgres(url) => Backend::Postgres(Box::new(PostgresStore::open(url)?)),
        };
        Ok(Store { backend })
    }

    /// [`Store::open`] for a SQLite file.
    pub fn open_file(path: &Path) -> Result<Store> {
        Store::open(&Location::Sqlite(path.to_owned()))
    }

    /// The number of migrations applied.
    pub fn schema_version(&mut self) -> Result<u32> {
        dispatch!(self.schema_version())
    }

    /// The database's own consistency check (SQLite's `integrity_check`; PostgreSQL checks
    /// its pages itself and answers `"ok"` when it answers at all).
    pub fn integrity_check(&mut self) -> Result<String> {
        dispatch!(self.integrity_check())
    }

    pub fn cached_scan(&mut self, sha256: &str, judge: &str) -> Result<Option<StoredScan>> {
        dispatch!(self.cached_scan(sha256, judge))
    }

    /// Keeps a scan (replacing an older one of the same bytes by the same judge).
    pub fn put_scan(&mut self, scan: &NewScan) -> Result<()> {
        dispatch!(self.put_scan(scan))
    }

    /// The thumbnail (JPEG) of the image with this hash, from whichever judge kept one.
    pub fn thumbnail(&mut self, sha256: &str) -> Result<Option<Vec<u8>>> {
        dispatch!(self.thumbnail(sha256))
    }

    /// Keeps one run of `facade networks`: its networks and accounts, in one transaction.
    /// Returns the stored ids of the networks, in the order given.
    pub fn put_run(
        &mut self,
        run: &str,
        networks: &[NewNetwork],
        accounts: &[Account],
    ) -> Result<Vec<String>> {
        dispatch!(self.put_run(run, networks, accounts))
    }

    /// Networks by score, highest first; only flagged ones unless `all`.
    pub fn networks(&mut self, all: bool) -> Result<Vec<NetworkSummary>> {
        dispatch!(self.networks(all))
    }

    pub fn network(&mut self, id: &str) -> Result<Option<StoredNetwork>> {
        dispatch!(self.network(id))
    }

    /// Accounts, the most AI-looking first; only those in a flagged network or with an
    /// AI-made picture (score at least `min_ai_score`) unless `all`.
    pub fn accounts(&mut self, all: bool, min_ai_score: f64) -> Result<Vec<Account>> {
        dispatch!(self.accounts(all, min_ai_score))
    }

    /// The accounts of one stored network.
    pub fn accounts_of_network(&mut self, id: &str) -> Result<Vec<Account>> {
        dispatch!(self.accounts_of_network(id))
    }

    /// Records a decision; it is durable when this returns.
    pub fn add_review(&mut self, review: &NewReview) -> Result<Review> {
        dispatch!(self.add_review(review))
    }

    /// Every review in the order made, or those of one subject.
    pub fn reviews(&mut self, subject: Option<&Subject>) -> Result<Vec<Review>> {
        dispatch!(self.reviews(subject))
    }
}

/// The stored id of each network of a run, in order, and by its label in the run (accounts
/// name their network by label).
fn run_network_ids(
    networks: &[NewNetwork],
) -> (Vec<String>, std::collections::HashMap<String, String>) {
    let ids: Vec<String> = networks.iter().map(|n| network_id(n.members)).collect();
    let by_label = networks
        .iter()
        .zip(&ids)
        .map(|(n, id)| (n.label.to_owned(), id.clone()))
        .collect();
    (ids, by_label)
}

/// The stored id of the network an account names by label (the label itself when the run has
/// no network of that label).
fn account_network(
    account: &Account,
    by_label: &std::collections::HashMap<String, String>,
) -> Option<String> {
    let label = account.network.as_ref()?;
    Some(by_label.get(label).cloned().unwrap_or(label.clone()))
}

impl NewReview {
    /// The review as stored under `id` at `created_at`.
    fn recorded(&self, id: i64, created_at: i64) -> Review {
        Review {
            id,
            subject: self.subject.clone(),
            decision: self.decision,
            note: self.note.clone(),
            reviewer: self.reviewer.clone(),
            created_at,
        }
    }
}

/// A scan's columns besides its keys: the record without its `path` (the same bytes may have
/// many names) as JSON text, its score and verdict as columns of their own, and when.
struct ScanRow {
    record: String,
    score: Option<f64>,
    verdict: Option<String>,
    scanned_at: i64,
}

impl ScanRow {
    fn of(scan: &NewScan) -> ScanRow {
        let mut record = scan.record.clone();
        if let Some(fields) = record.as_object_mut() {
            fields.remove("path");
        }
        ScanRow {
            score: record["score"].as_f64(),
            verdict: record["verdict"].as_str().map(str::to_owned),
            record: record.to_string(),
            scanned_at: now_s(),
        }
    }
}

/// A review from its stored columns. The CHECK constraints admit only valid values; a row
/// that still fails to parse was written by something else and is skipped (`None`) rather
/// than failing the listing.
fn review_from_columns(
    id: i64,
    subject: &str,
    decision: &str,
    note: String,
    reviewer: String,
    created_at: i64,
) -> Option<Review> {
    Some(Review {
        id,
        subject: subject.parse().ok()?,
        decision: Decision::parse(decision)?,
        note,
        reviewer,
        created_at,
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
