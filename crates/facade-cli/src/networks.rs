//! `facade networks`: an account export in, coordinated networks out (JSON, CSV, GEXF).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Context};
use facade_detect::{Judge, Record, Verdict};
use facade_face::DetectorConfig;
use facade_image::{perceptual::perceptual_hash, DecodeLimits};
use facade_network::dataset::{Dataset, FaceEvidence, IngestOptions};
use facade_network::diagnostics::Diagnostics;
use facade_network::networks::{analyse, AnalysisParams};
use facade_network::signals::{CoActionParams, Signal};
use facade_network::simulate::{recovery, GroundTruth};
use facade_network::text::LinkMatch;
use facade_network::{export, ingest};
use facade_store::{
    Account as StoredAccount, Location, NewNetwork, NewScan, Store, THUMBNAIL_SIDE,
};
use rayon::prelude::*;

use crate::model_args::{ModelArgs, ProvenanceArgs};

#[derive(clap::Args)]
pub struct NetworksArgs {
    /// Twitter IO archive users CSV.
    #[arg(long, value_name = "CSV")]
    users: Option<PathBuf>,
    /// Twitter IO archive tweets CSV (repeatable).
    #[arg(long, value_name = "CSV")]
    tweets: Vec<PathBuf>,
    /// facade JSON Lines accounts (see README).
    #[arg(long, value_name = "JSONL")]
    accounts: Option<PathBuf>,
    /// facade JSON Lines posts (repeatable).
    #[arg(long, value_name = "JSONL")]
    posts: Vec<PathBuf>,
    /// QUT coordination-network-toolkit CSV (repeatable).
    #[arg(long, value_name = "CSV")]
    qut: Vec<PathBuf>,
    /// Profile pictures: a folder of `<account id or handle>.<jpg|png|webp>` files, or a CSV
    /// with columns `account,path`. Each is scanned for an AI-made face and hashed.
    #[arg(long, value_name = "DIR|CSV")]
    images: Option<PathBuf>,
    /// Folder to write networks.json, edges.csv, nodes.csv, networks.gexf and diagnostics.json
    /// into.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Two posts coordinate when at most this far apart (`60s`, `5m`, `1h`, or seconds).
    #[arg(long, default_value = "60s", value_parser = parse_duration_ms)]
    window: i64,
    /// The window for items few accounts share: an item shared by n accounts is matched
    /// within rare-window × (rare-accounts / n)², between --window and this. `0` (or
    /// anything ≤ --window) matches every item within --window only.
    #[arg(long, default_value = "1h", value_parser = parse_duration_ms)]
    rare_window: i64,
    /// Items shared by at most this many accounts get the whole --rare-window.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(2..))]
    rare_accounts: u32,
    /// Signals to compute, comma-separated [default: all]: co-tweet, co-similar-tweet,
    /// co-retweet, co-link, co-reply, co-hashtags, co-hashtag-sequence, shared-face.
    #[arg(long, value_delimiter = ',', value_parser = parse_signal)]
    signals: Vec<Signal>,
    /// How links are compared: `normalised` (ignores scheme, www., tracking parameters…) or
    /// `exact` (byte for byte, as the QUT toolkit does).
    #[arg(long, default_value = "normalised", value_parser = parse_link_match)]
    link_match: LinkMatch,
    /// Jaccard similarity of word sets from which two posts are near-duplicates (0.6: two
    /// variants of a ten-word template, each with a word swapped, share 8 of 12 words).
    #[arg(long, default_value_t = 0.6)]
    similarity: f64,
    /// Links weaker than this (coordinated posts weighed against chance, + bonuses) are
    /// ignored.
    #[arg(long, default_value_t = 2.0)]
    min_strength: f64,
    /// Span within which account creations form a burst.
    #[arg(long, default_value = "24h", value_parser = parse_duration_ms)]
    creation_window: i64,
    /// Smallest network reported.
    #[arg(long, default_value_t = 3)]
    min_members: usize,
    /// Score at or above which a community is flagged as a network.
    #[arg(long, default_value_t = 0.5)]
    flag_score: f64,
    /// Also write signal-edges.csv: every pair each signal links, before any filtering, in the
    /// QUT toolkit's directed form (large: coincidences included).
    #[arg(long)]
    signal_edges: bool,
    /// Also keep the networks, their accounts and the scanned pictures in this store (a
    /// SQLite file, or a postgres:// URL), for `facade serve`'s review page.
    #[arg(long, value_name = "PATH|URL")]
    db: Option<Location>,
    /// A simulator's truth.json: print how well the planted networks were recovered.
    #[arg(long, value_name = "JSON")]
    truth: Option<PathBuf>,
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    provenance: ProvenanceArgs,
}

pub fn parse_duration_ms(s: &str) -> Result<i64, String> {
    let s = s.trim();
    let (number, unit) = match s.find(|c: char| c.is_ascii_alphabetic()) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let scale = match unit {
        "ms" => 1.0,
        "s" => 1e3,
        "m" | "min" => 60e3,
        "h" => 3600e3,
        "d" => 86_400e3,
        _ => return Err(format!("unknown unit in {s:?}: use ms, s, m, h or d")),
    };
    match number.trim().parse::<f64>() {
        Ok(v) if v >= 0.0 && v.is_finite() => Ok((v * scale).round() as i64),
        _ => Err(format!("expected a duration like 60s or 5m, got {s:?}")),
    }
}

fn parse_signal(s: &str) -> Result<Signal, String> {
    Signal::parse(s.trim()).ok_or_else(|| format!("unknown signal {s:?}"))
}

fn parse_link_match(s: &str) -> Result<LinkMatch, String> {
    match s {
        "exact" => Ok(LinkMatch::Exact),
        "normalised" | "normalized" => Ok(LinkMatch::Normalised),
        _ => Err(format!("expected exact or normalised, got {s:?}")),
    }
}

pub fn run(args: NetworksArgs) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    if args.tweets.is_empty() && args.posts.is_empty() && args.qut.is_empty() {
        bail!("no posts to read: give --tweets, --posts or --qut");
    }
    let signals = if args.signals.is_empty() {
        AnalysisParams::default().signals
    } else {
        args.signals.clone()
    };
    let options = IngestOptions {
        link_match: args.link_match,
        signals: signals.clone(),
        ..IngestOptions::default()
    };
    let (mut data, mut diag) = read_inputs(&args, options)?;
    data.finish_reading_into(&mut diag)
        .context("reading the posts (temporary storage, TMPDIR)")?;
    eprintln!("facade: {}", diag.summary());
    let mut pictures = Vec::new();
    let judge = match &args.images {
        Some(images) => {
            let detectors = (args.model.load()?, args.model.fpr);
            let judge = Judge::new(DetectorConfig::default(), Some(detectors))
                .context("loading the face model")?
                .with_provenance(args.provenance.reader()?);
            pictures = scan_profile_images(&mut data, images, &judge)?;
            eprintln!("facade: scanned {} profile pictures", pictures.len());
            Some(judge)
        }
        None => None,
    };
    let params = AnalysisParams {
        co_action: CoActionParams {
            window_ms: args.window,
            rare_window_ms: args.rare_window,
            rare_accounts: args.rare_accounts,
            similarity: args.similarity,
        },
        signals,
        min_strength: args.min_strength,
        creation_window_ms: args.creation_window,
        min_members: args.min_members,
        flag_score: args.flag_score,
        ..AnalysisParams::default()
    };
    let read_s = started.elapsed().as_secs_f64();
    let analysis =
        analyse(&data, &params).context("analysing the posts (temporary storage, TMPDIR)")?;
    let analysed_s = started.elapsed().as_secs_f64();
    let written = export::write_all(&args.out, &data, &analysis, &diag, args.signal_edges)
        .with_context(|| format!("writing to {}", args.out.display()))?;
    let flagged: Vec<_> = analysis.networks.iter().filter(|n| n.flagged).collect();
    eprintln!(
        "facade: {} links, {} communities of {}+ accounts, {} flagged as networks \
         (read {read_s:.1} s, analysed {:.1} s, written {:.1} s); wrote {}",
        analysis.links.len(),
        analysis.networks.len(),
        params.min_members,
        flagged.len(),
        analysed_s - read_s,
        started.elapsed().as_secs_f64() - analysed_s,
        args.out.join("networks.json").display()
    );
    for network in flagged.iter().take(20) {
        let signals: Vec<String> = network
            .signals
            .coordination
            .iter()
            .map(|(s, summary)| format!("{} {}", s.name(), summary.coordinated_posts))
            .collect();
        eprintln!(
            "  {:>4}  score {:.3}  {:>4} accounts  {}",
            network.id,
            network.score,
            network.accounts.len(),
            signals.join(", ")
        );
    }
    if let Some(truth) = &args.truth {
        report_recovery(truth, &data, &analysis)?;
    }
    if let Some(db) = &args.db {
        let run = args.out.display().to_string();
        let stored = store_run(db, &run, &written, &data, &pictures, judge.as_ref())?;
        eprintln!("facade: kept {stored} networks in {db}");
    }
    Ok(ExitCode::SUCCESS)
}

fn read_inputs(
    args: &NetworksArgs,
    options: IngestOptions,
) -> anyhow::Result<(Dataset, Diagnostics)> {
    let mut data = Dataset::new(options);
    let mut diag = Diagnostics::default();
    if let Some(users) = &args.users {
        ingest::read_twitter_users(users, &mut data, &mut diag)?;
    }
    for tweets in &args.tweets {
        ingest::read_twitter_tweets(tweets, &mut data, &mut diag)?;
    }
    if let Some(accounts) = &args.accounts {
        ingest::read_jsonl_accounts(accounts, &mut data, &mut diag)?;
    }
    for posts in &args.posts {
        ingest::read_jsonl_posts(posts, &mut data, &mut diag)?;
    }
    for qut in &args.qut {
        ingest::read_qut_csv(qut, &mut data, &mut diag)?;
    }
    Ok((data, diag))
}

/// Which picture belongs to which account: a CSV `account,path` or a folder of files named
/// by account id or handle.
fn image_map(data: &Dataset, images: &Path) -> anyhow::Result<HashMap<u32, PathBuf>> {
    let mut map = HashMap::new();
    if images.is_dir() {
        let by_handle: HashMap<String, u32> = data
            .accounts
            .iter()
            .enumerate()
            .filter(|(_, a)| !a.handle.is_empty())
            .map(|(i, a)| (a.handle.to_lowercase(), i as u32))
            .collect();
        for entry in
            std::fs::read_dir(images).with_context(|| format!("reading {}", images.display()))?
        {
            let path = entry?.path();
            let Some(stem) = path.file_stem().and_then(|s| s.to_str()) else {
                continue;
            };
            let account = data
                .account_ix(stem)
                .or_else(|| by_handle.get(&stem.to_lowercase()).copied());
            if let Some(account) = account {
                map.insert(account, path);
            }
        }
    } else {
        let mut reader = csv::Reader::from_path(images)
            .with_context(|| format!("reading {}", images.display()))?;
        let base = images.parent().unwrap_or(Path::new("."));
        for (line, row) in reader.records().enumerate() {
            let row = row.with_context(|| format!("{} line {}", images.display(), line + 2))?;
            let (Some(account), Some(path)) = (row.get(0), row.get(1)) else {
                continue;
            };
            if let Some(ix) = data.account_ix(account.trim()) {
                map.insert(ix, base.join(path.trim()));
            }
        }
    }
    for (i, account) in data.accounts.iter().enumerate() {
        if let Some(path) = &account.profile_image {
            map.entry(i as u32).or_insert_with(|| path.clone());
        }
    }
    Ok(map)
}

/// A profile picture as scanned: kept in the store with `--db`.
struct Picture {
    account: u32,
    /// Carries the bytes' SHA-256.
    record: facade_detect::Record,
    thumbnail: Vec<u8>,
}

/// Scans every account's picture: the most suspicious face's score, the verdict at the
/// model's operating point, and a perceptual hash. Unreadable pictures are reported and left
/// out; the accounts stay.
fn scan_profile_images(
    data: &mut Dataset,
    images: &Path,
    judge: &Judge,
) -> anyhow::Result<Vec<Picture>> {
    let mut jobs: Vec<(u32, PathBuf)> = image_map(data, images)?.into_iter().collect();
    jobs.sort();
    let limits = DecodeLimits::default();
    let results: Vec<Result<(FaceEvidence, Picture), Box<Record>>> = jobs
        .par_iter()
        .map(|(account, path)| {
            let scanned = judge.scan_file(path, &limits)?;
            let evidence = FaceEvidence {
                ai_score: scanned.judgement.score.unwrap_or(0.0) as f32,
                ai_made: scanned.judgement.verdict == Some(Verdict::Ai),
                declared_ai: scanned.record.declares_generated(),
                phash: perceptual_hash(&scanned.image),
            };
            let thumbnail = scanned.thumbnail(THUMBNAIL_SIDE);
            let picture = Picture {
                account: *account,
                record: scanned.record,
                thumbnail,
            };
            Ok((evidence, picture))
        })
        .collect();
    let mut pictures = Vec::new();
    for ((account, path), outcome) in jobs.into_iter().zip(results) {
        match outcome {
            Ok((face, picture)) => {
                let account = &mut data.accounts[account as usize];
                account.face = Some(face);
                account.profile_image = Some(path);
                pictures.push(picture);
            }
            Err(failed) => eprintln!(
                "facade: {}: {}",
                path.display(),
                failed.error.unwrap_or_default()
            ),
        }
    }
    Ok(pictures)
}

/// Keeps this run in the store: the scanned pictures, every network written to
/// `networks.json` and the accounts that are in a network or have a picture.
fn store_run(
    db: &Location,
    run: &str,
    written: &[serde_json::Value],
    data: &Dataset,
    pictures: &[Picture],
    judge: Option<&Judge>,
) -> anyhow::Result<usize> {
    let mut store = Store::open(db)?;
    if let Some(judge) = judge {
        for picture in pictures {
            store.put_scan(&NewScan {
                sha256: picture.record.sha256.as_deref().unwrap_or_default(),
                judge: judge.fingerprint(),
                record: &serde_json::to_value(&picture.record)?,
                thumbnail: Some(&picture.thumbnail),
            })?;
        }
    }
    let picture_of: HashMap<u32, &Picture> = pictures.iter().map(|p| (p.account, p)).collect();
    let index_of: HashMap<&str, u32> = data
        .accounts
        .iter()
        .enumerate()
        .map(|(i, a)| (a.id.as_str(), i as u32))
        .collect();
    let members: Vec<Vec<String>> = written
        .iter()
        .map(|n| serde_json::from_value(n["accounts"].clone()).unwrap_or_default())
        .collect();
    let mut accounts: HashMap<u32, StoredAccount> = HashMap::new();
    let mut networks = Vec::new();
    for (network, members) in written.iter().zip(&members) {
        let label = network["id"].as_str().unwrap_or_default();
        for ix in members.iter().filter_map(|id| index_of.get(id.as_str())) {
            let mut account = stored_account(data, *ix, &picture_of);
            account.network = Some(label.to_owned());
            accounts.insert(*ix, account);
        }
        networks.push(NewNetwork {
            label,
            score: network["score"].as_f64().unwrap_or(0.0),
            flagged: network["flagged"].as_bool().unwrap_or(false),
            members,
            record: network,
        });
    }
    for picture in pictures {
        accounts
            .entry(picture.account)
            .or_insert_with(|| stored_account(data, picture.account, &picture_of));
    }
    let mut accounts: Vec<StoredAccount> = accounts.into_values().collect();
    accounts.sort_by(|a, b| a.id.cmp(&b.id));
    store.put_run(run, &networks, &accounts)?;
    Ok(networks.len())
}

fn stored_account(data: &Dataset, ix: u32, pictures: &HashMap<u32, &Picture>) -> StoredAccount {
    let account = &data.accounts[ix as usize];
    StoredAccount {
        id: account.id.clone(),
        handle: account.handle.clone(),
        network: None,
        image_sha256: pictures.get(&ix).and_then(|p| p.record.sha256.clone()),
        ai_score: account.face.map(|f| f64::from(f.ai_score)),
    }
}

fn report_recovery(
    truth: &Path,
    data: &Dataset,
    analysis: &facade_network::networks::Analysis,
) -> anyhow::Result<()> {
    let truth: GroundTruth = serde_json::from_slice(
        &std::fs::read(truth).with_context(|| format!("reading {}", truth.display()))?,
    )
    .context("parsing the truth file")?;
    let flagged = analysis.flagged_accounts(data);
    let result = recovery(&truth, &flagged);
    for (name, found, f1) in &result.per_network {
        eprintln!(
            "  planted {name:<20} best match {:<5} F1 {f1:.3}",
            found.as_deref().unwrap_or("-")
        );
    }
    eprintln!(
        "  flagged networks matching nothing planted: {}",
        result.false_networks.len()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse_duration_ms;

    #[test]
    fn durations() {
        assert_eq!(parse_duration_ms("60s"), Ok(60_000));
        assert_eq!(parse_duration_ms("5m"), Ok(300_000));
        assert_eq!(parse_duration_ms("1.5h"), Ok(5_400_000));
        assert_eq!(parse_duration_ms("90"), Ok(90_000));
        assert!(parse_duration_ms("soon").is_err());
        assert!(parse_duration_ms("5 parsecs").is_err());
    }
}
