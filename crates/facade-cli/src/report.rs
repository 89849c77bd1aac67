//! `facade report`: the analyst's HTML report, for a `facade networks` run or for images.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};
use facade_detect::{Judge, Record};
use facade_face::DetectorConfig;
use facade_image::DecodeLimits;
use facade_report::{NetworkInput, Picture};
use rayon::prelude::*;
use serde_json::Value;

use crate::inputs::{self, Input};
use crate::model_args::ModelArgs;

#[derive(clap::Args)]
pub struct ReportArgs {
    /// Images (files or directories) to report on, when not reporting networks.
    #[arg(value_name = "IMAGE")]
    images: Vec<String>,
    /// A networks.json written by `facade networks`: report its flagged networks, with the
    /// members' profile pictures when the run had --images.
    #[arg(long, value_name = "JSON", conflicts_with = "images")]
    networks: Option<PathBuf>,
    /// Report every network, not only the flagged ones.
    #[arg(long, requires = "networks")]
    all: bool,
    /// Folder to write index.html and report.json into.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    #[command(flatten)]
    model: ModelArgs,
}

pub fn run(args: ReportArgs) -> anyhow::Result<ExitCode> {
    let judge = Judge::new(
        DetectorConfig::default(),
        Some((args.model.load()?, args.model.fpr)),
    )
    .context("loading the face model")?;
    let written = match &args.networks {
        Some(networks) => networks_report(networks, args.all, &judge, &args.out)?,
        None if args.images.is_empty() => {
            bail!("nothing to report: give IMAGE paths or --networks")
        }
        None => images_report(&args.images, &judge, &args.out)?,
    };
    eprintln!(
        "facade: wrote {} ({} sections, {} pictures) and report.json",
        args.out.join("index.html").display(),
        written.sections,
        written.pictures
    );
    Ok(ExitCode::SUCCESS)
}

/// Reads and scans one picture; the error record says why not.
fn picture(path: &Path, label: String, judge: &Judge) -> Result<Picture, Box<Record>> {
    let scanned = judge.scan_file(path, &DecodeLimits::default())?;
    Ok(Picture {
        label,
        image: scanned.image,
        record: scanned.record,
    })
}

fn networks_report(
    path: &Path,
    all: bool,
    judge: &Judge,
    out: &Path,
) -> anyhow::Result<facade_report::Written> {
    let text = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let networks: Vec<Value> = serde_json::from_slice(&text)
        .with_context(|| format!("{} is not a networks.json array", path.display()))?;
    let chosen: Vec<Value> = networks
        .into_iter()
        .filter(|n| all || n["flagged"].as_bool() == Some(true))
        .collect();
    let inputs: Vec<NetworkInput> = chosen
        .into_iter()
        .map(|network| {
            let members = network["members"].as_array().cloned().unwrap_or_default();
            let pictures = members
                .par_iter()
                .filter_map(|m| {
                    let (id, file) = (m["id"].as_str()?, m["profile_image"].as_str()?);
                    match picture(Path::new(file), id.to_owned(), judge) {
                        Ok(p) => Some(p),
                        Err(failed) => {
                            let error = failed.error.unwrap_or_default();
                            eprintln!("facade: {file}: {error} (left out of the report)");
                            None
                        }
                    }
                })
                .collect();
            NetworkInput { network, pictures }
        })
        .collect();
    facade_report::write_network_report(&inputs, out)
        .with_context(|| format!("writing the report into {}", out.display()))
}

fn images_report(
    args: &[String],
    judge: &Judge,
    out: &Path,
) -> anyhow::Result<facade_report::Written> {
    let (tx, rx) = crossbeam_channel::unbounded();
    inputs::walk(args, &tx, &|| {});
    drop(tx);
    let found: Vec<Input> = rx.into_iter().collect();
    let outcomes: Vec<Result<Picture, Box<Record>>> = found
        .into_par_iter()
        .map(|input| match input {
            Input::File { path, .. } => picture(&path, path.to_string_lossy().into_owned(), judge),
            Input::Unreadable { path, error, .. } => Err(Box::new(Record::failed(
                path.to_string_lossy().into_owned(),
                error,
            ))),
        })
        .collect();
    let (mut pictures, mut failed) = (Vec::new(), Vec::new());
    for outcome in outcomes {
        match outcome {
            Ok(p) => pictures.push(p),
            Err(r) => failed.push(*r),
        }
    }
    facade_report::write_image_report(&pictures, &failed, out)
        .with_context(|| format!("writing the report into {}", out.display()))
}
