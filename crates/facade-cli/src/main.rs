//! The `facade` command: argument parsing and wiring of the library crates, nothing else.

mod eval;
mod inputs;
mod model_args;
mod networks;
mod output;
mod queue;
mod report;
mod scan;
mod serve;
mod simulate;
mod train;
mod worker;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "facade",
    version,
    about = "Finds AI-generated profile faces and the networks of accounts that wear them"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Find faces and their landmarks in images (files, directories, or `-` for paths on stdin).
    Scan(scan::ScanArgs),
    /// Rebuild the AI-face detectors from a labelled manifest (deterministic, CPU).
    Train(train::TrainArgs),
    /// Add a second model's classifier to a model as its coarse branch, and refit the fusion
    /// over the four detectors on the calibration fold.
    Fuse(train::FuseArgs),
    /// Measure on the calibration fold how far a model's mirror view moves its scores, so that
    /// scans read it only near an operating point (`facade train` does this itself).
    Cascade(train::CascadeArgs),
    /// Measure the detectors on a labelled manifest (held-out images only), per source.
    Eval(eval::EvalArgs),
    /// Find networks of coordinated accounts in an account export. Large exports spill to
    /// temporary files in TMPDIR (about 70 bytes a post for co-tweet, co-retweet and co-link).
    Networks(Box<networks::NetworksArgs>),
    /// Write an HTML report (and its JSON) for a networks.json or for images.
    Report(Box<report::ReportArgs>),
    /// Serve the HTTP API and the review page.
    Serve(Box<serve::ServeArgs>),
    /// Write a synthetic account export with planted networks and its ground truth.
    Simulate(simulate::SimulateArgs),
    /// The scan queue that several machines share (PostgreSQL): add images, see progress.
    Queue(queue::QueueArgs),
    /// Take images from the shared queue and scan them, until stopped (or the queue is empty).
    Worker(Box<worker::WorkerArgs>),
    /// One scan record per queued image, in queue order (as `facade scan` writes them).
    Results(queue::ResultsArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // A scan runs one image per worker thread on every core; candle's matrix products would
    // otherwise also fan out onto rayon's pool and fight the workers (measured: 134 → 185
    // images/s on 2 cores). Set before any thread exists; the user's own setting wins.
    // Training is the opposite: one batch at a time, so its matrix products use every core.
    if matches!(
        cli.command,
        Command::Scan(_) | Command::Serve(_) | Command::Worker(_)
    ) && std::env::var_os("RAYON_NUM_THREADS").is_none()
    {
        std::env::set_var("RAYON_NUM_THREADS", "1");
    }
    let result = match cli.command {
        Command::Scan(args) => scan::run(args),
        Command::Train(args) => train::run(args),
        Command::Fuse(args) => train::fuse(args),
        Command::Cascade(args) => train::cascade(args),
        Command::Eval(args) => eval::run(args),
        Command::Networks(args) => networks::run(*args),
        Command::Simulate(args) => simulate::run(args),
        Command::Serve(args) => serve::run(*args),
        Command::Report(args) => report::run(*args),
        Command::Queue(args) => queue::run(args),
        Command::Worker(args) => worker::run(*args),
        Command::Results(args) => queue::results(args),
    };
    match result {
        Ok(code) => code,
        // A closed pipe (`facade scan … | head`) is the reader's choice, not a failure.
        Err(err) if is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("facade: {err:#}");
            ExitCode::from(2)
        }
    }
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
