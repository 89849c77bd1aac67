//! `facade scan`: a streaming, parallel pass over images.
//!
//! One walker thread lists inputs into a bounded queue, one worker per core decodes and detects,
//! and the main thread writes records in input order. Memory is bounded by the queues (a few
//! images per worker), not by the number of images.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use crossbeam_channel::{bounded, Receiver, Sender};
use facade_detect::{Judge, JudgingPool};
use facade_face::{DetectorConfig, MinFace, DEFAULT_MAX_FACES};
use facade_image::DecodeLimits;
use indicatif::{ProgressBar, ProgressStyle};

use crate::inputs::{self, Input};
use crate::model_args::{ModelArgs, ProvenanceArgs};
use crate::output::{Format, Record, RecordWriter, Status};

#[derive(clap::Args)]
pub struct ScanArgs {
    /// Image files, directories (walked recursively), or `-` to read paths from stdin.
    #[arg(required = true, value_name = "PATH")]
    paths: Vec<String>,
    /// Output format [default: jsonl, or table when writing to a terminal].
    #[arg(long, value_enum)]
    format: Option<Format>,
    /// Write records to FILE instead of stdout.
    #[arg(long, short, value_name = "FILE")]
    output: Option<PathBuf>,
    /// Worker threads [default: all cores].
    #[arg(long, short = 'j')]
    threads: Option<usize>,
    /// Never show a progress bar.
    #[arg(long)]
    no_progress: bool,
    /// Only find faces and landmarks: skip the AI-face detectors (no score, no verdict). O-Net
    /// then stops at each place's first accepted look, so a box or landmarks may differ slightly
    /// from a full scan's.
    #[arg(long)]
    faces_only: bool,
    #[command(flatten)]
    judge: JudgeArgs,
}

/// How images are judged: the options `facade scan` and `facade worker` share, so that a
/// queued image gets the record a scan would give it.
#[derive(clap::Args)]
pub struct JudgeArgs {
    /// Smallest face to look for, as a fraction of the image's shorter side (never below 20 px).
    #[arg(long, default_value_t = 0.15, value_parser = parse_fraction)]
    min_face: f32,
    /// Most faces reported per image (the most face-like first). Each one costs a full O-Net
    /// pass; raise it for group photographs.
    #[arg(long, default_value_t = DEFAULT_MAX_FACES, value_parser = parse_max_faces)]
    max_faces: usize,
    /// Largest accepted image, in megapixels (larger ones are reported, not decoded).
    #[arg(long, default_value_t = 64.0)]
    max_megapixels: f64,
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    provenance: ProvenanceArgs,
}

impl JudgeArgs {
    /// The judge (without the AI-face detectors when `faces_only`).
    pub fn judge(&self, faces_only: bool) -> anyhow::Result<Judge> {
        let config = DetectorConfig {
            min_face: MinFace::Fraction(self.min_face),
            ..DetectorConfig::default()
        }
        .with_max_faces(self.max_faces);
        let detectors = match faces_only {
            true => None,
            false => Some((self.model.load()?, self.model.fpr)),
        };
        Ok(Judge::new(config, detectors)
            .context("loading the face model")?
            .with_provenance(self.provenance.reader()?))
    }

    pub fn limits(&self) -> DecodeLimits {
        DecodeLimits {
            max_pixels: (self.max_megapixels * 1e6) as u64,
            ..DecodeLimits::default()
        }
    }
}

fn parse_max_faces(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if (1..=1000).contains(&n) => Ok(n),
        _ => Err(format!(
            "expected a number of faces from 1 to 1000, got {s:?}"
        )),
    }
}

fn parse_fraction(s: &str) -> Result<f32, String> {
    match s.parse::<f32>() {
        Ok(v) if v > 0.0 && v <= 1.0 => Ok(v),
        _ => Err(format!("expected a fraction in (0, 1], got {s:?}")),
    }
}

/// Counts for the closing summary line.
#[derive(Default)]
struct Tally {
    ok: u64,
    no_face: u64,
    errors: u64,
    /// Records carrying a warning (a truncated file), whatever their status.
    warned: u64,
    /// Records whose file declares itself AI-generated (verdict from provenance).
    declared_ai: u64,
}

pub fn run(args: ScanArgs) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    let judge = args.judge.judge(args.faces_only)?;
    let limits = args.judge.limits();
    let pool = JudgingPool::new(threads)?;
    let mut writer = RecordWriter::to(args.format, args.output.as_deref())?;
    let progress = progress_bar(!args.no_progress && std::io::stderr().is_terminal());

    let (input_tx, input_rx) = bounded::<Input>(4 * threads);
    let (record_tx, record_rx) = bounded::<(u64, Record)>(4 * threads);
    let (tally, skipped) = std::thread::scope(|scope| -> anyhow::Result<(Tally, u64)> {
        let paths = &args.paths;
        let progress_for_walker = progress.clone();
        let walker = scope.spawn(move || {
            let skipped = inputs::walk(paths, &input_tx, &|| progress_for_walker.inc_length(1));
            drop(input_tx);
            skipped
        });
        let (judge, limits) = (&judge, &limits);
        let judging = scope.spawn(move || {
            pool.each(|| worker(input_rx.clone(), record_tx.clone(), judge, limits))
        });
        let tally = write_in_order(record_rx, &mut writer, &progress)?;
        writer.finish().context("writing output")?;
        let skipped = walker.join().unwrap_or(0);
        if judging.join().is_err() {
            anyhow::bail!("a judging thread panicked");
        }
        Ok((tally, skipped))
    })?;
    progress.finish_and_clear();
    print_summary(&tally, skipped, started.elapsed().as_secs_f64());
    Ok(if tally.errors > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn progress_bar(visible: bool) -> ProgressBar {
    if !visible {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} images {per_sec} eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}

fn worker(rx: Receiver<Input>, tx: Sender<(u64, Record)>, judge: &Judge, limits: &DecodeLimits) {
    for input in rx {
        let index = input.index();
        let record = match input {
            Input::Unreadable { path, error, .. } => {
                Record::failed(path.to_string_lossy().into_owned(), error)
            }
            Input::File { path, .. } => judge.record_file(&path, limits),
        };
        if tx.send((index, record)).is_err() {
            return;
        }
    }
}

/// Writes records in input order, holding back only those that finished early.
fn write_in_order<W: Write>(
    rx: Receiver<(u64, Record)>,
    writer: &mut RecordWriter<W>,
    progress: &ProgressBar,
) -> anyhow::Result<Tally> {
    let mut pending = BTreeMap::new();
    let mut next = 0u64;
    let mut tally = Tally::default();
    for (index, record) in rx {
        pending.insert(index, record);
        while let Some(record) = pending.remove(&next) {
            match record.status {
                Status::Ok => tally.ok += 1,
                Status::NoFace => tally.no_face += 1,
                Status::Error => tally.errors += 1,
            }
            tally.warned += u64::from(!record.warnings.is_empty());
            tally.declared_ai += u64::from(record.declares_generated());
            writer.write(&record).context("writing output")?;
            progress.inc(1);
            next += 1;
        }
    }
    Ok(tally)
}

fn print_summary(tally: &Tally, skipped: u64, seconds: f64) {
    let total = tally.ok + tally.no_face + tally.errors;
    let mut line = format!(
        "facade: scanned {total} images: {} with faces, {} no face, {} errors",
        tally.ok, tally.no_face, tally.errors
    );
    if tally.warned > 0 {
        line.push_str(&format!(
            ", {} with warnings (truncated files, unreadable metadata)",
            tally.warned
        ));
    }
    if tally.declared_ai > 0 {
        line.push_str(&format!(
            ", {} declared AI-generated by the file itself",
            tally.declared_ai
        ));
    }
    if skipped > 0 {
        line.push_str(&format!(" ({skipped} non-image files skipped)"));
    }
    line.push_str(&format!(
        " in {seconds:.2} s ({:.1} images/s)",
        total as f64 / seconds.max(1e-9)
    ));
    eprintln!("{line}");
}
