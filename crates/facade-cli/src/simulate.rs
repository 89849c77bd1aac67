//! `facade simulate`: a synthetic archive-format export with planted networks and the truth.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use facade_network::simulate::{simulate, SimulateParams};

#[derive(clap::Args)]
pub struct SimulateArgs {
    /// Folder to write users.csv, tweets.csv and truth.json into.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Ordinary accounts.
    #[arg(long, default_value_t = 3000)]
    organic: usize,
    /// Mean posts per ordinary account (heavy-tailed).
    #[arg(long, default_value_t = 25.0)]
    mean_posts: f64,
    /// Days the posts span.
    #[arg(long, default_value_t = 30)]
    days: i64,
    /// Multiplies the planted networks' sizes.
    #[arg(long, default_value_t = 1.0)]
    network_scale: f64,
    /// Also write posts-qut.csv, the same posts in the QUT toolkit's CSV layout.
    #[arg(long)]
    qut: bool,
}

pub fn run(args: SimulateArgs) -> anyhow::Result<ExitCode> {
    let params = SimulateParams {
        seed: args.seed,
        organic_accounts: args.organic,
        mean_posts: args.mean_posts,
        days: args.days.max(1),
        network_scale: args.network_scale,
    };
    let truth = simulate(&args.out, &params, args.qut)
        .with_context(|| format!("writing to {}", args.out.display()))?;
    eprintln!(
        "facade: wrote {} accounts and {} posts to {} with {} planted networks ({})",
        truth.accounts,
        truth.posts,
        args.out.display(),
        truth.networks.len(),
        truth
            .networks
            .iter()
            .map(|n| format!("{} of {}", n.style, n.accounts.len()))
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(ExitCode::SUCCESS)
}
