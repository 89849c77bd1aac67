//! The shared scan queue, on PostgreSQL: `facade queue add` puts image paths in, any number of
//! `facade worker`s on any machines take them out, and `facade results` reads one record per
//! path back, in the order queued.
//!
//! A worker **claims** a few jobs at a time (`SELECT … FOR UPDATE SKIP LOCKED`, so two workers
//! never take the same job) under a **lease**: a random token and a deadline by the database's
//! clock. It **completes** them in one transaction that also keeps their scans, and only if
//! its token is still on the job. A worker that dies simply stops: when its leases run out the
//! jobs are claimable again, and if it wakes up later its completion finds another token (or
//! none) and changes nothing. So every job ends with exactly one record, whoever crashed. A
//! job whose lease ran out [`MAX_ATTEMPTS`] times (an image that kills or hangs every worker)
//! ends `failed` with that said, instead of going round forever.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

use postgres::Client;

use crate::postgres_store::{put_scan, Connection, PUT_SCAN};
use crate::{Location, NewScan, Result, StoreError};

/// The database's clock in milliseconds since the epoch: leases mean the same on every
/// machine whatever their own clocks say. A macro, so that the statements below are constants
/// (prepared once per connection).
macro_rules! now_ms {
    () => {
        "(extract(epoch FROM clock_timestamp()) * 1000)::BIGINT"
    };
}

const ADD: &str = concat!(
    "INSERT INTO jobs (path, sha256, state, queued_at) VALUES ($1, $2, 'pending', ",
    now_ms!(),
    ") ON CONFLICT (path) DO UPDATE SET sha256 = EXCLUDED.sha256, state = 'pending',
       record = NULL, error = NULL, attempts = 0, lease_token = NULL,
       leased_by = NULL, lease_until = NULL, finished_at = NULL
     WHERE jobs.sha256 <> EXCLUDED.sha256
     RETURNING (xmax = 0)"
);

const ADD_UNREADABLE: &str = concat!(
    "INSERT INTO jobs (path, sha256, state, error, queued_at, finished_at)
     VALUES ($1, '', 'failed', $2, ",
    now_ms!(),
    ", ",
    now_ms!(),
    ") ON CONFLICT (path) DO NOTHING"
);

const CLAIM: &str = concat!(
    "WITH claimable AS (
       SELECT id FROM jobs
       WHERE state IN ('pending', 'leased')
         AND (state = 'pending' OR lease_until < ",
    now_ms!(),
    ") ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED)
     UPDATE jobs SET state = 'leased', lease_token = $2, leased_by = $3,
       lease_until = ",
    now_ms!(),
    " + $4, attempts = jobs.attempts + 1
     FROM claimable WHERE jobs.id = claimable.id
     RETURNING jobs.id, jobs.path, jobs.sha256"
);

const GIVE_UP_ABANDONED: &str = concat!(
    "UPDATE jobs SET state = 'failed', lease_token = NULL, lease_until = NULL,
       finished_at = ",
    now_ms!(),
    ", error = 'abandoned: ' || attempts || ' workers took this image and none finished it \
                (their leases ran out); it may crash or hang the scanner'
     WHERE state = 'leased' AND lease_until < ",
    now_ms!(),
    " AND attempts >= $1"
);

const COMPLETE: &str = concat!(
    "UPDATE jobs SET state = $1, record = $2, error = NULL, finished_at = ",
    now_ms!(),
    ", lease_token = NULL, lease_until = NULL
     WHERE id = $3 AND state = 'leased' AND lease_token = $4"
);

const CACHED_SCANS: &str = "SELECT sha256, record FROM scans WHERE judge = $1 AND sha256 = ANY($2)";

const UNFINISHED: &str = "SELECT count(*) FROM jobs WHERE state IN ('pending', 'leased')";

/// Leases a job may run out before it is given up as `failed`.
pub const MAX_ATTEMPTS: i32 = 3;

/// Jobs added per transaction by [`Queue::add`].
const ADD_BATCH: usize = 1000;

/// The queue on one PostgreSQL database: one connection, opened again when the server has
/// closed it (a restart).
pub struct Queue {
    connection: Connection,
}

/// A job a worker holds: scan `path`, then [`Queue::complete`] it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    pub id: i64,
    /// Absolute, as `facade queue add` resolved it.
    pub path: String,
    /// The SHA-256 of the file when it was queued.
    pub sha256: String,
    token: i64,
}

/// What became of a job: its record as `facade scan` writes it (with the path), whether that
/// record is an error, and the scan to keep in the store (none when it came from there).
pub struct Completion<'a> {
    pub job: &'a Job,
    pub record: &'a serde_json::Value,
    pub failed: bool,
    pub scan: Option<NewScan<'a>>,
}

/// What [`Queue::add`] did with the paths it was given.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Added {
    /// Paths not queued before.
    pub new: u64,
    /// Paths queued before with other content: back to pending, their old record dropped.
    pub changed: u64,
    /// Paths already queued with the same content: left as they were.
    pub unchanged: u64,
}

impl std::ops::AddAssign for Added {
    fn add_assign(&mut self, other: Added) {
        self.new += other.new;
        self.changed += other.changed;
        self.unchanged += other.unchanged;
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    Pending,
    Leased,
    Done,
    Failed,
}

impl JobState {
    fn parse(text: &str) -> Option<JobState> {
        match text {
            "pending" => Some(JobState::Pending),
            "leased" => Some(JobState::Leased),
            "done" => Some(JobState::Done),
            "failed" => Some(JobState::Failed),
            _ => None,
        }
    }
}

/// Counts of jobs by state, and how fast they are finishing.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct QueueStatus {
    pub pending: u64,
    pub leased: u64,
    pub done: u64,
    pub failed: u64,
    pub total: u64,
    /// Workers holding a lease that has not run out.
    pub active_workers: u64,
    /// Jobs workers finished in the last minute, per second.
    pub rate_per_s: f64,
    /// Seconds until pending and leased jobs are done at that rate (none while nothing
    /// finishes).
    pub eta_s: Option<f64>,
}

/// One queued path as [`Queue::results`] gives it.
#[derive(Debug, Clone, PartialEq)]
pub struct JobResult {
    pub path: String,
    pub state: JobState,
    /// The record JSON a worker wrote (done, or failed while scanning).
    pub record: Option<String>,
    /// Why a job failed without a record (unreadable when queued, or abandoned).
    pub error: Option<String>,
}

impl Queue {
    /// Connects to the queue's database (bringing its schema up to date). A SQLite location is
    /// refused with a clear error: the queue is shared between machines, which needs a server.
    pub fn open(location: &Location) -> Result<Queue> {
        let url = match location {
            Location::Postgres(url) => url,
            Location::Sqlite(path) => {
                return Err(StoreError::NeedsPostgres {
                    what: "the scan queue".to_owned(),
                    location: path.display().to_string(),
                })
            }
        };
        Ok(Queue {
            connection: Connection::open(url)?,
        })
    }

    fn client(&mut self) -> Result<&mut Client> {
        self.connection.client()
    }

    /// Queues `(path, sha256)` pairs. A path queued before with the same content is left
    /// alone; with other content it goes back to pending (the file changed).
    pub fn add(&mut self, items: &[(String, String)]) -> Result<Added> {
        let mut added = Added::default();
        for batch in items.chunks(ADD_BATCH) {
            let (client, statements) = self.connection.prepared(&[ADD])?;
            let mut tx = client.transaction()?;
            let mut batch_added = Added::default();
            for (path, sha256) in batch {
                match tx.query_opt(&statements[0], &[path, sha256])? {
                    Some(row) if row.get::<_, bool>(0) => batch_added.new += 1,
                    Some(_) => batch_added.changed += 1,
                    None => batch_added.unchanged += 1,
                }
            }
            tx.commit()?;
            added += batch_added;
        }
        Ok(added)
    }

    /// Queues a path that could not be read, as failed at once with `error`, so that its
    /// result says so; a path already queued is left alone. Returns whether it was new.
    pub fn add_unreadable(&mut self, path: &str, error: &str) -> Result<bool> {
        let (client, statements) = self.connection.prepared(&[ADD_UNREADABLE])?;
        Ok(client.execute(&statements[0], &[&path, &error])? == 1)
    }

    /// Takes up to `limit` jobs for `worker` for `lease`, oldest first: pending ones and
    /// those whose lease ran out. Jobs another worker is claiming at this instant are skipped,
    /// not waited for. Jobs whose lease ran out [`MAX_ATTEMPTS`] times end as `failed` first.
    pub fn claim(&mut self, worker: &str, limit: usize, lease: Duration) -> Result<Vec<Job>> {
        let token = new_token();
        let lease_ms = i64::try_from(lease.as_millis()).unwrap_or(i64::MAX / 2);
        let (client, statements) = self.connection.prepared(&[GIVE_UP_ABANDONED, CLAIM])?;
        client.execute(&statements[0], &[&MAX_ATTEMPTS])?;
        let rows = client.query(
            &statements[1],
            &[&(limit.max(1) as i64), &token, &worker, &lease_ms],
        )?;
        let mut jobs: Vec<Job> = rows
            .iter()
            .map(|r| Job {
                id: r.get(0),
                path: r.get(1),
                sha256: r.get(2),
                token,
            })
            .collect();
        jobs.sort_by_key(|j| j.id);
        Ok(jobs)
    }

    /// Records what became of jobs, in one transaction with the scans to keep. A job whose
    /// lease this worker no longer holds (it ran out and another worker took the job, or the
    /// path was queued again with new content) is left as it is. Returns how many were kept.
    pub fn complete(&mut self, completions: &[Completion]) -> Result<usize> {
        let (client, statements) = self.connection.prepared(&[COMPLETE, PUT_SCAN])?;
        let (update, put) = (&statements[0], &statements[1]);
        let mut tx = client.transaction()?;
        let mut kept = 0;
        for done in completions {
            let state = if done.failed { "failed" } else { "done" };
            let record = done.record.to_string();
            let updated = tx.execute(update, &[&state, &record, &done.job.id, &done.job.token])?;
            if updated == 1 {
                kept += 1;
                if let Some(scan) = &done.scan {
                    put_scan(&mut tx, put, scan)?;
                }
            }
        }
        tx.commit()?;
        Ok(kept)
    }

    /// Hands jobs back unscanned (a worker stopping): pending again at once, without
    /// waiting for their lease to run out, and without counting the attempt.
    pub fn release(&mut self, jobs: &[Job]) -> Result<()> {
        let mut tx = self.client()?.transaction()?;
        for job in jobs {
            tx.execute(
                "UPDATE jobs SET state = 'pending', lease_token = NULL, leased_by = NULL,
                   lease_until = NULL, attempts = GREATEST(attempts - 1, 0)
                 WHERE id = $1 AND state = 'leased' AND lease_token = $2",
                &[&job.id, &job.token],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Stored scans of these bytes by this judge, by SHA-256 (one query for a claimed batch).
    pub fn cached_scans(
        &mut self,
        sha256s: &[&str],
        judge: &str,
    ) -> Result<HashMap<String, serde_json::Value>> {
        let (client, statements) = self.connection.prepared(&[CACHED_SCANS])?;
        let rows = client.query(&statements[0], &[&judge, &sha256s])?;
        let mut found = HashMap::with_capacity(rows.len());
        for row in rows {
            found.insert(row.get(0), serde_json::from_str(row.get(1))?);
        }
        Ok(found)
    }

    /// How many jobs are pending or leased (a worker with `--until-empty` waits for none).
    pub fn unfinished(&mut self) -> Result<u64> {
        let (client, statements) = self.connection.prepared(&[UNFINISHED])?;
        let row = client.query_one(&statements[0], &[])?;
        Ok(row.get::<_, i64>(0) as u64)
    }

    pub fn status(&mut self) -> Result<QueueStatus> {
        let client = self.client()?;
        let mut by_state: HashMap<String, u64> = HashMap::new();
        for row in client.query("SELECT state, count(*) FROM jobs GROUP BY state", &[])? {
            by_state.insert(row.get(0), row.get::<_, i64>(1) as u64);
        }
        let recent = client.query_one(
            concat!(
                "SELECT count(*) FROM jobs WHERE finished_at IS NOT NULL AND attempts > 0
                   AND finished_at >= ",
                now_ms!(),
                " - 60000"
            ),
            &[],
        )?;
        let workers = client.query_one(
            concat!(
                "SELECT count(DISTINCT leased_by) FROM jobs
                 WHERE state = 'leased' AND lease_until >= ",
                now_ms!()
            ),
            &[],
        )?;
        let count = |state: &str| by_state.get(state).copied().unwrap_or(0);
        let (pending, leased) = (count("pending"), count("leased"));
        let rate_per_s = recent.get::<_, i64>(0) as f64 / 60.0;
        let unfinished = (pending + leased) as f64;
        Ok(QueueStatus {
            pending,
            leased,
            done: count("done"),
            failed: count("failed"),
            total: by_state.values().sum(),
            active_workers: workers.get::<_, i64>(0) as u64,
            rate_per_s,
            eta_s: if pending + leased == 0 {
                Some(0.0)
            } else if rate_per_s > 0.0 {
                Some(unfinished / rate_per_s)
            } else {
                None
            },
        })
    }

    /// Every queued path in the order queued, with its result so far, streamed to `each`.
    pub fn results(&mut self, mut each: impl FnMut(JobResult) -> Result<()>) -> Result<()> {
        let params: [&str; 0] = [];
        let rows = self.client()?.query_raw(
            "SELECT path, state, record, error FROM jobs ORDER BY id",
            params,
        )?;
        let mut rows = rows;
        while let Some(row) = postgres::fallible_iterator::FallibleIterator::next(&mut rows)? {
            let state: &str = row.get(1);
            each(JobResult {
                path: row.get(0),
                state: JobState::parse(state).unwrap_or(JobState::Failed),
                record: row.get(2),
                error: row.get(3),
            })?;
        }
        Ok(())
    }
}

/// A lease token: random enough that two claims never share one.
fn new_token() -> i64 {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    hasher.write_u32(std::process::id());
    hasher.finish() as i64
}
