//! `facade queue add`, `facade queue status` and `facade results`: the shared scan queue on
//! PostgreSQL, filled here and emptied by `facade worker`s on any number of machines.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use crossbeam_channel::bounded;
use facade_detect::judge::read_limited;
use facade_image::{sha256_hex, DecodeLimits};
use facade_store::queue::{JobResult, JobState, Queue};
use facade_store::Location;

use crate::inputs::{self, Input};
use crate::output::{Format, Record, RecordWriter};

#[derive(clap::Args)]
pub struct QueueArgs {
    #[command(subcommand)]
    command: QueueCommand,
}

#[derive(clap::Subcommand)]
enum QueueCommand {
    /// Queue images (files, directories walked as `facade scan` walks them, or `-` for paths on
    /// stdin). Paths are stored absolute; a path already queued with the same content is not
    /// queued again, one whose content changed is queued again.
    Add(AddArgs),
    /// Pending, leased, done and failed jobs, with the rate over the last minute and an ETA.
    Status(StatusArgs),
}

/// The queue's database: PostgreSQL only.
#[derive(clap::Args)]
pub struct QueueDb {
    /// The PostgreSQL database every machine shares, e.g. postgres://facade@db.internal/facade.
    #[arg(long, value_name = "URL")]
    db: Location,
}

impl QueueDb {
    pub fn open(&self) -> anyhow::Result<Queue> {
        Ok(Queue::open(&self.db)?)
    }

    pub fn location(&self) -> &Location {
        &self.db
    }
}

impl std::fmt::Display for QueueDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.db.fmt(f)
    }
}

#[derive(clap::Args)]
struct AddArgs {
    #[command(flatten)]
    db: QueueDb,
    #[arg(required = true, value_name = "PATH")]
    paths: Vec<String>,
}

#[derive(clap::Args)]
struct StatusArgs {
    #[command(flatten)]
    db: QueueDb,
    /// One JSON object instead of a sentence.
    #[arg(long)]
    json: bool,
}

pub fn run(args: QueueArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        QueueCommand::Add(args) => add(args),
        QueueCommand::Status(args) => status(args),
    }
}

/// Paths hashed and queued per transaction.
const ADD_BATCH: usize = 1000;

fn add(args: AddArgs) -> anyhow::Result<ExitCode> {
    let mut queue = args.db.open()?;
    let limits = DecodeLimits::default();
    let (tx, rx) = bounded::<Input>(256);
    let mut totals = facade_store::queue::Added::default();
    let mut unreadable = 0u64;
    let mut batch: Vec<(String, String)> = Vec::with_capacity(ADD_BATCH);
    let skipped = std::thread::scope(|scope| -> anyhow::Result<u64> {
        let paths = &args.paths;
        let walker = scope.spawn(move || inputs::walk(paths, &tx, &|| ()));
        for input in rx {
            let (path, content) = match input {
                Input::File { path, .. } => {
                    let absolute = absolute(&path)?;
                    let content = read_limited(&path, limits.max_file_bytes);
                    (absolute, content)
                }
                Input::Unreadable { path, error, .. } => (absolute(&path)?, Err(error)),
            };
            let path = path.to_string_lossy().into_owned();
            match content {
                Ok(bytes) => batch.push((path, sha256_hex(&bytes))),
                Err(error) => {
                    // The readable paths before it first, so that the queue keeps walk order.
                    totals += queue.add(&batch)?;
                    batch.clear();
                    eprintln!("facade: {path}: {error}");
                    unreadable += u64::from(queue.add_unreadable(&path, &error)?);
                }
            }
            if batch.len() == ADD_BATCH {
                totals += queue.add(&batch)?;
                batch.clear();
            }
        }
        totals += queue.add(&batch)?;
        Ok(walker.join().unwrap_or(0))
    })?;
    let mut line = format!(
        "facade: queued {} new images, {} again (content changed); {} already queued",
        totals.new, totals.changed, totals.unchanged
    );
    if unreadable > 0 {
        line.push_str(&format!("; {unreadable} unreadable (queued as failed)"));
    }
    if skipped > 0 {
        line.push_str(&format!(" ({skipped} non-image files skipped)"));
    }
    eprintln!("{line} in {}", args.db);
    Ok(ExitCode::SUCCESS)
}

/// The path as every worker must see it: absolute, from this directory (links kept as
/// written, as `facade scan` keeps them).
fn absolute(path: &Path) -> anyhow::Result<PathBuf> {
    std::path::absolute(path).with_context(|| format!("resolving {}", path.display()))
}

fn status(args: StatusArgs) -> anyhow::Result<ExitCode> {
    let status = args.db.open()?.status()?;
    if args.json {
        println!("{}", serde_json::to_string(&status)?);
        return Ok(ExitCode::SUCCESS);
    }
    let eta = match status.eta_s {
        _ if status.pending + status.leased == 0 => "nothing left to scan".to_owned(),
        Some(s) => format!("about {} left", human_duration(s)),
        None => "no ETA (nothing finished in the last minute)".to_owned(),
    };
    println!(
        "{} jobs: {} pending, {} leased ({} workers), {} done, {} failed; {:.1} images/s over the last minute; {eta}",
        status.total,
        status.pending,
        status.leased,
        status.active_workers,
        status.done,
        status.failed,
        status.rate_per_s,
    );
    Ok(ExitCode::SUCCESS)
}

fn human_duration(seconds: f64) -> String {
    match seconds {
        s if s < 120.0 => format!("{s:.0} s"),
        s if s < 7200.0 => format!("{:.0} min", s / 60.0),
        s => format!("{:.1} h", s / 3600.0),
    }
}

#[derive(clap::Args)]
pub struct ResultsArgs {
    #[command(flatten)]
    db: QueueDb,
    /// Output format [default: jsonl, or table when writing to a terminal].
    #[arg(long, value_enum)]
    format: Option<Format>,
    /// Write records to FILE instead of stdout.
    #[arg(long, short, value_name = "FILE")]
    output: Option<PathBuf>,
}

/// Exit status of `facade results` when some queued images have no record yet.
const UNFINISHED: u8 = 3;

/// One record per queued path, in queue order: the record a worker wrote (the one `facade
/// scan` writes), or the error record of a path that could not be read or was abandoned.
/// Paths not finished yet get no record; their number is said and the exit status is 3.
pub fn results(args: ResultsArgs) -> anyhow::Result<ExitCode> {
    let mut queue = args.db.open()?;
    let mut writer = RecordWriter::to(args.format, args.output.as_deref())?;
    let (mut written, mut unfinished) = (0u64, 0u64);
    let mut write_error = None;
    queue.results(|job| {
        match record_of(job) {
            Ok(Some(record)) => {
                if let Err(error) = writer.write(&record) {
                    write_error.get_or_insert(anyhow::Error::from(error));
                }
                written += 1;
            }
            Ok(None) => unfinished += 1,
            Err(error) => {
                write_error.get_or_insert(error);
            }
        }
        Ok(())
    })?;
    if let Some(error) = write_error {
        return Err(error.context("writing results"));
    }
    writer.finish().context("writing results")?;
    if unfinished > 0 {
        eprintln!(
            "facade: {written} records; {unfinished} queued images not finished yet (see `facade queue status`)"
        );
        return Ok(ExitCode::from(UNFINISHED));
    }
    eprintln!("facade: {written} records");
    Ok(ExitCode::SUCCESS)
}

/// The record of a finished job; none for one still pending or leased.
fn record_of(job: JobResult) -> anyhow::Result<Option<Record>> {
    match (job.state, job.record) {
        (JobState::Pending | JobState::Leased, _) => Ok(None),
        (_, Some(json)) => serde_json::from_str(&json)
            .map(Some)
            .with_context(|| format!("the stored record of {}", job.path)),
        (_, None) => Ok(Some(Record::failed(
            job.path,
            job.error.unwrap_or_else(|| "failed".to_owned()),
        ))),
    }
}
