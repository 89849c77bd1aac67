//! `facade worker`: takes jobs from the shared queue, judges them as `facade scan` does, and
//! writes each record in the transaction that completes its job.
//!
//! `-j` threads judge; the main thread talks to the database: it claims jobs under a lease
//! (topping up when half of what it holds is judged), looks their bytes up in the store, and
//! completes jobs as their outcomes arrive (all that are ready in one transaction, with their
//! scans), so that judging waits neither for a batch's slowest image nor for the database. The
//! database being down (a restart, a failover) is waited out and the same step tried again; a
//! completion tried twice changes nothing the second time (its lease token is gone). SIGTERM
//! or SIGINT stops the claiming; the jobs in hand are judged and completed, then the worker
//! exits 0.

use std::collections::HashMap;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use crossbeam_channel::{Receiver, Sender};
use facade_detect::judge::read_limited;
use facade_detect::{Judge, JudgingPool};
use facade_image::{sha256_hex, DecodeLimits};
use facade_store::queue::{Completion, Job, Queue};
use facade_store::{NewScan, StoreError, THUMBNAIL_SIDE};

use crate::output::{Record, Status};
use crate::queue::QueueDb;
use crate::scan::JudgeArgs;

#[derive(clap::Args)]
pub struct WorkerArgs {
    #[command(flatten)]
    db: QueueDb,
    /// Scanning threads [default: all cores].
    #[arg(long, short = 'j')]
    threads: Option<usize>,
    /// How long a claimed job stays this worker's: if the worker dies, its jobs go back to the
    /// queue when their lease runs out (e.g. 90s, 5m, 1h).
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    lease: Duration,
    /// Exit once no job is pending or leased (waiting out the leases of workers that died),
    /// instead of waiting for more.
    #[arg(long)]
    until_empty: bool,
    /// Jobs held per thread (claimed ahead so that no thread waits; more means fewer claims
    /// and more work redone by others if this worker dies).
    #[arg(long, default_value_t = 4)]
    batch: usize,
    /// How long the database may stay unreachable before the worker gives up.
    #[arg(long, default_value = "10m", value_parser = parse_duration)]
    retry_for: Duration,
    /// Judge every image, even bytes the store has a record of (for benchmarks).
    #[arg(long)]
    no_reuse: bool,
    #[command(flatten)]
    judge: JudgeArgs,
}

/// `90s`, `5m`, `1h`, `250ms`, or plain seconds.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit() && c != '.');
    let (number, unit) = text.split_at(split.unwrap_or(text.len()));
    let value: f64 = number
        .parse()
        .map_err(|_| format!("expected a duration like 90s, 5m or 1h, got {text:?}"))?;
    let seconds = match unit {
        "" | "s" => value,
        "ms" => value / 1000.0,
        "m" | "min" => value * 60.0,
        "h" => value * 3600.0,
        _ => {
            return Err(format!(
                "unknown unit {unit:?} in {text:?}: use ms, s, m or h"
            ))
        }
    };
    if !(seconds > 0.0 && seconds < 1e7) {
        return Err(format!("expected a positive duration, got {text:?}"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// How long an idle worker waits before asking for jobs again.
const IDLE_POLL: Duration = Duration::from_millis(500);

/// What a worker did, for its closing line.
#[derive(Default)]
struct Tally {
    done: u64,
    failed: u64,
    reused: u64,
    lost_leases: u64,
}

pub fn run(args: WorkerArgs) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(signal, stop.clone()).context("handling signals")?;
    }
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    let judge = args.judge.judge(false)?;
    let limits = args.judge.limits();
    let pool = JudgingPool::new(threads)?;
    let retry = Retry::new(args.retry_for);
    // A worker started while the database is down (a fleet coming up before it) waits too.
    let Some(mut queue) = retry.run(&stop, || Queue::open(args.db.location()))? else {
        return Ok(ExitCode::SUCCESS);
    };
    let name = worker_name();
    eprintln!(
        "facade: worker {name} on {} ({threads} threads, lease {:?})",
        args.db, args.lease
    );
    let settings = Settings {
        name: &name,
        lease: args.lease,
        until_empty: args.until_empty,
        reuse: !args.no_reuse,
        // Jobs held at once: enough that a thread never waits for the next claim.
        capacity: threads * args.batch.max(1),
    };
    let tally = std::thread::scope(|scope| -> anyhow::Result<Tally> {
        let (job_tx, job_rx) = crossbeam_channel::unbounded::<(Job, Option<serde_json::Value>)>();
        let (outcome_tx, outcome_rx) = crossbeam_channel::unbounded::<(Job, Outcome)>();
        let (judge_ref, limits) = (&judge, &limits);
        let pool = &pool;
        scope.spawn(move || {
            pool.each(|| {
                for (job, stored) in job_rx.clone() {
                    let outcome = judge_job(&job, judge_ref, limits, stored);
                    if outcome_tx.send((job, outcome)).is_err() {
                        return;
                    }
                }
            })
        });
        let tally = feed_and_complete(
            &mut queue,
            &judge,
            &settings,
            &retry,
            &stop,
            &job_tx,
            &outcome_rx,
        );
        drop(job_tx); // the threads end when the jobs channel closes
        tally
    })?;
    let seconds = started.elapsed().as_secs_f64();
    let judged = tally.done + tally.failed;
    eprintln!(
        "facade: worker {name} stopped: {judged} images judged ({} errors, {} from the store), {} completions dropped (lease lost) in {seconds:.1} s ({:.1} images/s); database: {} calls, {:.2} s ({:.1}% of the run)",
        tally.failed,
        tally.reused,
        tally.lost_leases,
        judged as f64 / seconds.max(1e-9),
        retry.calls.get(),
        retry.time.get().as_secs_f64(),
        100.0 * retry.time.get().as_secs_f64() / seconds.max(1e-9),
    );
    Ok(ExitCode::SUCCESS)
}

/// Host and process: who holds a lease, as `facade queue status` counts workers.
fn worker_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_owned());
    format!("{host}:{}", std::process::id())
}

fn sleep_unless_stopped(duration: Duration, stop: &AtomicBool) {
    let until = Instant::now() + duration;
    while !stop.load(Ordering::Relaxed) && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(50).min(until - Instant::now()));
    }
}

/// One job judged: its record (with the path as queued) and, when the judge made it now,
/// the scan to keep in the store.
struct Outcome {
    record: Record,
    record_json: serde_json::Value,
    /// The bytes' SHA-256 and thumbnail, for the store (none: an error, or a record reused).
    keep: Option<(String, Vec<u8>)>,
    reused: bool,
}

impl Outcome {
    fn completion<'a>(&'a self, job: &'a Job, judge: &'a str) -> Completion<'a> {
        Completion {
            job,
            record: &self.record_json,
            failed: self.record.status == Status::Error,
            scan: self.keep.as_ref().map(|(sha256, thumbnail)| NewScan {
                sha256,
                judge,
                record: &self.record_json,
                thumbnail: Some(thumbnail),
            }),
        }
    }
}

/// What the worker loop needs besides the queue and the judge.
struct Settings<'a> {
    name: &'a str,
    lease: Duration,
    until_empty: bool,
    reuse: bool,
    capacity: usize,
}

/// The worker's loop, on the thread that talks to the database: keeps the judging threads
/// supplied with claimed jobs (topping up when half are done), and completes jobs as their
/// outcomes arrive, all that are ready in one transaction, so that judging never waits for a
/// batch's slowest image or for the database.
fn feed_and_complete(
    queue: &mut Queue,
    judge: &Judge,
    settings: &Settings,
    retry: &Retry,
    stop: &AtomicBool,
    jobs: &Sender<(Job, Option<serde_json::Value>)>,
    outcomes: &Receiver<(Job, Outcome)>,
) -> anyhow::Result<Tally> {
    let mut tally = Tally::default();
    let mut in_flight = 0usize;
    loop {
        let stopping = stop.load(Ordering::Relaxed);
        if !stopping && in_flight <= settings.capacity / 2 {
            let wanted = settings.capacity - in_flight;
            let claimed = retry.run(stop, || queue.claim(settings.name, wanted, settings.lease))?;
            let claimed = claimed.unwrap_or_default();
            if claimed.is_empty() && in_flight == 0 {
                if settings.until_empty && retry.run(stop, || queue.unfinished())? == Some(0) {
                    break;
                }
                sleep_unless_stopped(IDLE_POLL, stop);
                continue;
            }
            in_flight += claimed.len();
            let mut stored = match settings.reuse && !claimed.is_empty() {
                true => {
                    let hashes: Vec<&str> = claimed.iter().map(|j| j.sha256.as_str()).collect();
                    let found =
                        retry.run(stop, || queue.cached_scans(&hashes, judge.fingerprint()));
                    found?.unwrap_or_default()
                }
                false => HashMap::new(),
            };
            for job in claimed {
                let record = stored.remove(&job.sha256);
                // The threads outlive this loop, so the channel is open.
                let _ = jobs.send((job, record));
            }
        }
        if in_flight == 0 {
            if stopping {
                break;
            }
            continue;
        }
        // One outcome, and whatever else is ready by then.
        let Ok(first) = outcomes.recv() else { break };
        let ready: Vec<(Job, Outcome)> =
            std::iter::once(first).chain(outcomes.try_iter()).collect();
        in_flight -= ready.len();
        let completions: Vec<Completion> = ready
            .iter()
            .map(|(job, outcome)| outcome.completion(job, judge.fingerprint()))
            .collect();
        // Completed even after a stop signal: the work is done, and lost work is waste.
        let kept = retry.run(&AtomicBool::new(false), || queue.complete(&completions))?;
        tally.lost_leases += (ready.len() - kept.unwrap_or(0)) as u64;
        for (_, outcome) in &ready {
            match outcome.record.status {
                Status::Error => tally.failed += 1,
                _ => tally.done += 1,
            }
            tally.reused += u64::from(outcome.reused);
        }
    }
    Ok(tally)
}

/// The record `facade scan` would write for the job's file as it is now (its content may
/// have changed since it was queued: what is judged is what is read).
fn judge_job(
    job: &Job,
    judge: &Judge,
    limits: &DecodeLimits,
    stored: Option<serde_json::Value>,
) -> Outcome {
    let bytes = match read_limited(std::path::Path::new(&job.path), limits.max_file_bytes) {
        Ok(bytes) => bytes,
        Err(error) => return Outcome::of(Record::failed(job.path.clone(), error), None, false),
    };
    let sha256 = sha256_hex(&bytes);
    // The store's record is for the bytes queued; reused only if the file still has them.
    if let Some(stored) = stored.filter(|_| sha256 == job.sha256) {
        if let Ok(mut record) = serde_json::from_value::<Record>(stored) {
            record.path = job.path.clone();
            record.sha256 = Some(sha256);
            return Outcome::of(record, None, true);
        }
    }
    match judge.scan_hashed(&job.path, &bytes, sha256.clone(), limits) {
        Ok(scanned) => {
            let thumbnail = scanned.thumbnail(THUMBNAIL_SIDE);
            Outcome::of(scanned.record, Some((sha256, thumbnail)), false)
        }
        Err(failed) => Outcome::of(*failed, None, false),
    }
}

impl Outcome {
    fn of(record: Record, keep: Option<(String, Vec<u8>)>, reused: bool) -> Outcome {
        // A record always serialises; `Null` would only hide a bug, and is stored as such.
        let record_json = serde_json::to_value(&record).unwrap_or(serde_json::Value::Null);
        Outcome {
            record,
            record_json,
            keep,
            reused,
        }
    }
}

/// Waits out a database that is restarting or unreachable: a transient error is retried
/// with growing pauses until `patience` has passed without one success. Also counts the
/// calls and the time spent in them, for the closing line (the database's share of a run).
struct Retry {
    patience: Duration,
    calls: std::cell::Cell<u64>,
    time: std::cell::Cell<Duration>,
}

impl Retry {
    fn new(patience: Duration) -> Retry {
        Retry {
            patience,
            calls: Default::default(),
            time: Default::default(),
        }
    }

    fn timed<T>(&self, step: impl FnOnce() -> T) -> T {
        let started = Instant::now();
        let value = step();
        self.calls.set(self.calls.get() + 1);
        self.time.set(self.time.get() + started.elapsed());
        value
    }

    /// `step`'s value, or `None` if `stop` was raised while waiting.
    fn run<T>(
        &self,
        stop: &AtomicBool,
        mut step: impl FnMut() -> Result<T, StoreError>,
    ) -> anyhow::Result<Option<T>> {
        let first_failure = Instant::now();
        let mut pause = Duration::from_millis(100);
        loop {
            match self.timed(&mut step) {
                Ok(value) => return Ok(Some(value)),
                Err(error) if error.is_transient() && first_failure.elapsed() < self.patience => {
                    eprintln!("facade: the database is unavailable ({error}); trying again");
                    sleep_unless_stopped(pause, stop);
                    if stop.load(Ordering::Relaxed) {
                        return Ok(None);
                    }
                    pause = (pause * 2).min(Duration::from_secs(5));
                }
                Err(error) => return Err(error.into()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_people_write_them() {
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("1.5h"), Ok(Duration::from_secs(5400)));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("").is_err());
    }
}
