//! `facade serve`: the HTTP API and the review page.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use facade_detect::Judge;
use facade_face::DetectorConfig;
use facade_server::ServiceConfig;
use facade_store::{Location, Store};

use crate::model_args::{ModelArgs, ProvenanceArgs};

#[derive(clap::Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: SocketAddr,
    /// The store: a SQLite file, or a postgres:// URL that several servers (and the queue's
    /// workers) share [default: $XDG_DATA_HOME/facade/facade.db or
    /// ~/.local/share/facade/facade.db].
    #[arg(long, value_name = "PATH|URL")]
    db: Option<Location>,
    /// Bearer token every /v1 call must carry [default: $FACADE_API_TOKEN; none: open API].
    #[arg(long, env = "FACADE_API_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Largest accepted request body, in MiB.
    #[arg(long, default_value_t = 20)]
    max_body_mib: usize,
    /// Deadline of one request, in seconds.
    #[arg(long, default_value_t = 30)]
    timeout_s: u64,
    /// Scans judged at once [default: one per core].
    #[arg(long)]
    workers: Option<usize>,
    /// Scans admitted at once (running or waiting); more get 503.
    #[arg(long, default_value_t = 64)]
    queue: usize,
    /// Judge every upload, even bytes the store has a record of (for benchmarks).
    #[arg(long)]
    no_reuse: bool,
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    provenance: ProvenanceArgs,
}

pub fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let db = args.db.unwrap_or_else(Location::default_file);
    let store = Store::open(&db)?;
    let judge = Judge::new(
        DetectorConfig::default(),
        Some((args.model.load()?, args.model.fpr)),
    )
    .context("loading the face model")?
    .with_provenance(args.provenance.reader()?);
    let defaults = ServiceConfig::default();
    let max_body_bytes = args.max_body_mib.max(1) << 20;
    let config = ServiceConfig {
        token: args.token.filter(|t| !t.is_empty()),
        max_body_bytes,
        request_timeout: Duration::from_secs(args.timeout_s.max(1)),
        scan_workers: args.workers.unwrap_or(defaults.scan_workers).max(1),
        max_queued_scans: args.queue.max(1),
        decode_limits: facade_image::DecodeLimits {
            max_file_bytes: max_body_bytes as u64,
            ..defaults.decode_limits
        },
        reuse_scans: !args.no_reuse,
    };
    let open = if config.token.is_some() {
        "token required"
    } else {
        "no token: the API is open to anyone who can reach it"
    };
    let pool = facade_detect::JudgingPool::new(config.scan_workers)?;
    let router = facade_server::router(judge, pool, store, config);
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(args.addr)
            .await
            .with_context(|| format!("listening on {}", args.addr))?;
        let local = listener.local_addr().context("reading the bound address")?;
        // The first line says where to go; tests read the port from it when given port 0.
        eprintln!("facade: serving on http://{local}/ (store {db}; {open})");
        facade_server::serve_on(listener, router)
            .await
            .context("serving")
    })?;
    eprintln!("facade: stopped");
    Ok(ExitCode::SUCCESS)
}
