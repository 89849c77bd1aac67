//! The options that choose a detector model and its operating point, shared by scan and eval.

use std::path::PathBuf;

use anyhow::Context;
use facade_detect::Detectors;

#[derive(clap::Args, Clone)]
pub struct ModelArgs {
    /// Model folder written by `facade train` [default: the model built into facade].
    #[arg(long, value_name = "DIR")]
    pub model: Option<PathBuf>,
    /// Target false-positive rate of the operating point that sets the verdict.
    #[arg(long, default_value_t = 0.01, value_parser = parse_rate)]
    pub fpr: f64,
    /// Read the classifiers' second view (the face crop's mirror image) for every face, not
    /// only where it could change a verdict at FPR 1%, 0.1% or --fpr (the model's mirror
    /// cascade): every score as if the model had no cascade (the built-in model's cascade reads
    /// the mirror for a third of the held-out faces, and changes none of their verdicts).
    #[arg(long)]
    pub every_view: bool,
}

fn parse_rate(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v > 0.0 && v < 1.0 => Ok(v),
        _ => Err(format!("expected a rate in (0, 1), got {s:?}")),
    }
}

impl ModelArgs {
    /// The model, reading the mirror view for every face with `--every-view` (the judge and
    /// `evaluate` protect the operating point at `--fpr`).
    pub fn load(&self) -> anyhow::Result<Detectors> {
        let detectors = match &self.model {
            Some(dir) => Detectors::load(dir)
                .with_context(|| format!("loading the model in {}", dir.display()))?,
            None => Detectors::embedded().context("loading the built-in model")?,
        };
        Ok(match self.every_view {
            true => detectors.reading_every_view(),
            false => detectors,
        })
    }
}

/// How provenance (what a file declares about its origin) is read.
#[derive(clap::Args, Clone, Default)]
pub struct ProvenanceArgs {
    /// PEM file of C2PA trust anchors: a manifest signed under one of them reads `"signature":
    /// "valid"`. Without it every signer is `untrusted` (facade ships no trust list).
    #[arg(long, value_name = "FILE")]
    pub c2pa_trust: Option<PathBuf>,
}

impl ProvenanceArgs {
    pub fn reader(&self) -> anyhow::Result<facade_image::provenance::ProvenanceReader> {
        let anchors = match &self.c2pa_trust {
            Some(path) => Some(
                std::fs::read_to_string(path)
                    .with_context(|| format!("reading C2PA trust anchors {}", path.display()))?,
            ),
            None => None,
        };
        facade_image::provenance::ProvenanceReader::with_trust_anchors(anchors.as_deref())
            .with_context(|| match &self.c2pa_trust {
                Some(path) => format!("using {}", path.display()),
                None => "C2PA settings".to_owned(),
            })
    }
}
