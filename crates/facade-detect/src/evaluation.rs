//! Measuring the detectors on a labelled manifest, honestly.
//!
//! - Images used to fit any part of the model (by content hash) are left out unless the caller
//!   explicitly allows them: a figure measured on training images is not a result.
//! - Every image goes through the scan's own path (decode, detect, score the faces; the image
//!   scores as its most suspicious face). An image where no face is found scores 0, so a fake
//!   the face detector misses counts as a miss, never silently disappears.
//! - Figures come per source, beside the pooled ones, and beside the GANEyeDistance peer
//!   (lower eye distance = more suspicious) on the same images.
//! - Conditions: the images as they are, and each resized to at most 200 px and re-encoded
//!   at JPEG quality 80 (what a platform serves).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use facade_face::{DetectorConfig, FaceDetector};
use facade_image::{decode, DecodeLimits};
use rayon::prelude::*;
use serde::Serialize;

use crate::dataset::{read_manifest, sha256_hex, DatasetError, Degradation, Entry};
use crate::geometry::gan_eye_distance;
use crate::metrics::{rate_above, roc_auc, tpr_at_fpr};
use crate::model::{most_suspicious, Detectors};

/// How the images are presented to the detectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Condition {
    /// As stored.
    Original,
    /// Longest side at most 200 px, JPEG quality 80.
    Small200Jpeg80,
}

impl Condition {
    pub fn describe(self) -> &'static str {
        match self {
            Condition::Original => "images as they are",
            Condition::Small200Jpeg80 => "resized to at most 200 px, JPEG quality 80",
        }
    }
}

#[derive(Debug, Clone)]
pub struct EvalConfig {
    pub manifest: PathBuf,
    pub conditions: Vec<Condition>,
    pub allow_train_overlap: bool,
    /// The operating point's target false-positive rate.
    pub fpr: f64,
    /// facenet-pytorch's faces with GANEyeDistance per image (`reference-mtcnn.jsonl`), used
    /// as the peer on original images; without it the peer's formula runs on facade's own
    /// landmarks.
    pub peer_reference: Option<PathBuf>,
    /// Score at most this many of each source's eligible images, spread evenly over the
    /// manifest's order (a quick run; the figures of a sample move more than the whole set's).
    pub max_per_source: Option<usize>,
    pub threads: usize,
}

/// Figures for one source (or a pooled group) under one detector.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Figures {
    pub images: usize,
    pub no_face: usize,
    /// Fakes: AUC against all reals. Reals: absent.
    pub auc: Option<f64>,
    /// Fakes: TPR at the all-reals FPR-1% / 0.1% thresholds. Reals: the FPR there.
    pub rate_at_fpr_1pct: Option<f64>,
    pub rate_at_fpr_01pct: Option<f64>,
    /// How many of them are flagged at the all-reals FPR-1% threshold.
    pub flagged_at_fpr_1pct: usize,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SourceReport {
    pub source: String,
    pub label: &'static str,
    pub facade: Figures,
    pub peer: Figures,
    /// Fraction flagged at facade's own operating point (the model's threshold).
    pub operating_point_rate: Option<f64>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Pooled {
    pub auc: Option<f64>,
    pub tpr_at_fpr_1pct: Option<f64>,
    pub tpr_at_fpr_01pct: Option<f64>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ConditionReport {
    pub condition: Condition,
    pub description: &'static str,
    pub images: usize,
    pub failed: usize,
    pub facade: Pooled,
    pub peer: Pooled,
    /// Pooled figures against the reals without their largest source (the tight crops of a
    /// single collection would otherwise dominate the false-positive budget).
    pub without_largest_real_source: Option<(String, Pooled, Pooled)>,
    pub operating_point: OperatingPoint,
    pub sources: Vec<SourceReport>,
    /// Faces scored, and how many of them the classifiers read in both views (the crop and its
    /// mirror); the others were far enough from every protected operating point for the crop
    /// alone ([`crate::cascade`]).
    pub faces_scored: usize,
    pub faces_mirror_read: usize,
    /// Every scored image, in manifest order (for `facade eval --scores`; not in the JSON).
    #[serde(skip)]
    pub images_scored: Vec<ImageScore>,
}

/// One image's scores under one condition.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageScore {
    pub name: String,
    pub source: String,
    pub generator: String,
    pub fake: bool,
    /// facade's score of the most suspicious face; `None` when no face was found or it failed.
    pub facade: Option<f64>,
    /// GANEyeDistance of the most confident face (lower = more suspicious).
    pub peer_eye_distance: Option<f64>,
    pub failed: bool,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct OperatingPoint {
    pub target_fpr: f64,
    pub threshold: f64,
    pub fpr: Option<f64>,
    pub tpr: Option<f64>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct EvalReport {
    pub manifest: String,
    pub images_in_manifest: usize,
    pub excluded_as_training: usize,
    /// Set when only a sample of each source was scored (`max_per_source`).
    pub sampled_per_source: Option<usize>,
    pub unreadable: Vec<(String, String)>,
    pub peer: &'static str,
    pub conditions: Vec<ConditionReport>,
}

/// One image's outcome under one condition.
#[derive(Debug, Clone, Copy)]
struct Scored {
    /// Most suspicious face's fused score; `None` when no face was found.
    facade: Option<f64>,
    /// GANEyeDistance of the most confident face; `None` when no face.
    eye_distance: Option<f64>,
    failed: bool,
    /// Faces scored, and those among them whose mirror view was read.
    faces: usize,
    mirror_read: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error(transparent)]
    Dataset(#[from] DatasetError),
    #[error("face detector: {0}")]
    Detector(String),
    #[error("reading the peer reference {path}: {reason}")]
    Peer { path: String, reason: String },
}

pub fn evaluate(detectors: &Detectors, config: &EvalConfig) -> Result<EvalReport, EvalError> {
    // The mirror view is read near the operating point the report is asked for, too.
    let detectors = &detectors.clone().protect_operating_point(config.fpr);
    let entries = read_manifest(&config.manifest)?;
    let training: HashSet<&str> = detectors
        .training_set()
        .iter()
        .map(String::as_str)
        .collect();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(config.threads.max(1))
        .build()
        .map_err(|e| EvalError::Detector(e.to_string()))?;
    let detector = FaceDetector::new(DetectorConfig::default())
        .map_err(|e| EvalError::Detector(e.to_string()))?;
    let peer_reference = match &config.peer_reference {
        Some(path) => Some(read_peer_reference(path)?),
        None => None,
    };

    // Read and hash every image; keep those not used in training (unless allowed).
    let loaded: Vec<Result<(String, Vec<u8>), String>> = pool.install(|| {
        entries
            .par_iter()
            .map(|e| {
                std::fs::read(&e.path)
                    .map(|bytes| (sha256_hex(&bytes), bytes))
                    .map_err(|err| format!("cannot read: {err}"))
            })
            .collect()
    });
    let mut kept: Vec<(&Entry, &[u8])> = Vec::new();
    let mut unreadable = Vec::new();
    let mut excluded = 0;
    for (entry, loaded) in entries.iter().zip(&loaded) {
        match loaded {
            Err(reason) => unreadable.push((entry.name.clone(), reason.clone())),
            Ok((hash, _)) if training.contains(hash.as_str()) && !config.allow_train_overlap => {
                excluded += 1
            }
            Ok((_, bytes)) => kept.push((entry, bytes)),
        }
    }
    if let Some(max) = config.max_per_source {
        kept = spread_sample_per_source(kept, max, |(entry, _)| entry.source.as_str());
    }

    let threshold = detectors.threshold(config.fpr);
    let mut conditions = Vec::new();
    for &condition in &config.conditions {
        let scored: Vec<Scored> = pool.install(|| {
            kept.par_iter()
                .map(|(entry, bytes)| {
                    let mut s = score_image(bytes, condition, &detector, detectors);
                    if let (Condition::Original, Some(reference)) = (condition, &peer_reference) {
                        s.eye_distance = reference.get(&entry.name).copied().flatten();
                    }
                    s
                })
                .collect()
        });
        let sources: Vec<&str> = kept.iter().map(|(e, _)| e.source.as_str()).collect();
        let labels: Vec<bool> = kept.iter().map(|(e, _)| e.fake).collect();
        let mut report =
            condition_report(condition, &scored, &sources, &labels, threshold, config.fpr);
        report.images_scored = kept
            .iter()
            .zip(&scored)
            .map(|((entry, _), s)| ImageScore {
                name: entry.name.clone(),
                source: entry.source.clone(),
                generator: entry.generator.clone(),
                fake: entry.fake,
                facade: s.facade,
                peer_eye_distance: s.eye_distance,
                failed: s.failed,
            })
            .collect();
        conditions.push(report);
    }
    Ok(EvalReport {
        manifest: config.manifest.display().to_string(),
        images_in_manifest: entries.len(),
        excluded_as_training: excluded,
        sampled_per_source: config.max_per_source,
        unreadable,
        peer: if peer_reference.is_some() {
            "GANEyeDistance: facenet-pytorch reference values on original images; the same formula on facade's landmarks on degraded images"
        } else {
            "GANEyeDistance formula on facade's landmarks"
        },
        conditions,
    })
}

/// At most `max` items of each source, taken at even steps through the source's items (so a
/// sample covers a source's whole manifest, not its first folder), in their original order.
fn spread_sample_per_source<T>(items: Vec<T>, max: usize, source: impl Fn(&T) -> &str) -> Vec<T> {
    let mut totals: HashMap<String, usize> = HashMap::new();
    for item in &items {
        *totals.entry(source(item).to_owned()).or_default() += 1;
    }
    // Per source: how many items were seen and how many taken so far.
    let mut progress: HashMap<String, (usize, usize)> = HashMap::new();
    items
        .into_iter()
        .filter(|item| {
            let name = source(item);
            let total = totals[name];
            let (index, taken) = progress.entry(name.to_owned()).or_default();
            // Take the item when it is the first at or past the next even step.
            let take = *taken < max && *index * max >= *taken * total;
            *index += 1;
            *taken += usize::from(take);
            take
        })
        .collect()
}

/// The scan's path for one image: decode, (degrade), detect, score every face.
fn score_image(
    bytes: &[u8],
    condition: Condition,
    detector: &FaceDetector,
    detectors: &Detectors,
) -> Scored {
    let failed = Scored {
        facade: None,
        eye_distance: None,
        failed: true,
        faces: 0,
        mirror_read: 0,
    };
    let Ok(decoded) = decode(bytes, &DecodeLimits::default()) else {
        return failed;
    };
    let image = match condition {
        Condition::Original => decoded.image,
        Condition::Small200Jpeg80 => match Degradation::SMALL_JPEG.apply(&decoded.image) {
            Ok(image) => image,
            Err(_) => return failed,
        },
    };
    let Ok(faces) = detector.detect(&image) else {
        return failed;
    };
    let Ok(scores) = detectors.score_faces(&image, &faces) else {
        return failed;
    };
    let facade = most_suspicious(&scores);
    let eye_distance = faces.first().map(|f| {
        f64::from(gan_eye_distance(
            &f.landmarks,
            image.width(),
            image.height(),
        ))
    });
    Scored {
        facade,
        eye_distance,
        failed: false,
        faces: scores.len(),
        mirror_read: scores.iter().filter(|s| s.mirror_read).count(),
    }
}

/// `path → GANEyeDistance` (None where the reference found no face).
fn read_peer_reference(path: &Path) -> Result<HashMap<String, Option<f64>>, EvalError> {
    let peer_error = |reason: String| EvalError::Peer {
        path: path.display().to_string(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| peer_error(e.to_string()))?;
    let mut out = HashMap::new();
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let value: serde_json::Value =
            serde_json::from_str(line).map_err(|e| peer_error(format!("line {}: {e}", i + 1)))?;
        let Some(name) = value.get("path").and_then(|p| p.as_str()) else {
            return Err(peer_error(format!("line {}: no path", i + 1)));
        };
        out.insert(
            name.to_owned(),
            value.get("gan_eye_distance").and_then(|d| d.as_f64()),
        );
    }
    Ok(out)
}

fn condition_report(
    condition: Condition,
    scored: &[Scored],
    sources: &[&str],
    labels: &[bool],
    threshold: f64,
    fpr: f64,
) -> ConditionReport {
    // Detector scores with "higher = more suspicious"; no face = never flagged.
    let facade: Vec<f64> = scored.iter().map(|s| s.facade.unwrap_or(0.0)).collect();
    let peer: Vec<f64> = scored
        .iter()
        .map(|s| s.eye_distance.map_or(f64::NEG_INFINITY, |d| -d))
        .collect();
    let pick = |scores: &[f64], keep: &dyn Fn(usize) -> bool| -> Vec<f64> {
        (0..scores.len())
            .filter(|&i| keep(i))
            .map(|i| scores[i])
            .collect()
    };
    let pooled = |scores: &[f64], real_ok: &dyn Fn(usize) -> bool| {
        let fakes = pick(scores, &|i| labels[i]);
        let reals = pick(scores, &|i| !labels[i] && real_ok(i));
        Pooled {
            auc: roc_auc(&fakes, &reals),
            tpr_at_fpr_1pct: tpr_at_fpr(&fakes, &reals, 0.01).map(|t| t.0),
            tpr_at_fpr_01pct: tpr_at_fpr(&fakes, &reals, 0.001).map(|t| t.0),
        }
    };
    let mut real_counts: BTreeMap<&str, usize> = BTreeMap::new();
    for i in (0..labels.len()).filter(|&i| !labels[i]) {
        *real_counts.entry(sources[i]).or_default() += 1;
    }
    let largest = real_counts.iter().max_by_key(|(_, n)| **n).map(|(s, _)| *s);
    let without_largest = largest.filter(|_| real_counts.len() > 1).map(|name| {
        let keep = |i: usize| sources[i] != name;
        (
            name.to_owned(),
            pooled(&facade, &keep),
            pooled(&peer, &keep),
        )
    });

    let figures = |scores: &[f64], source: &str, fake: bool| {
        let all_reals = pick(scores, &|i| !labels[i]);
        let members = pick(scores, &|i| sources[i] == source && labels[i] == fake);
        let t1 = crate::fusion::threshold_for_fpr(&all_reals, 0.01);
        let t01 = crate::fusion::threshold_for_fpr(&all_reals, 0.001);
        Figures {
            images: members.len(),
            no_face: 0,
            auc: if fake {
                roc_auc(&members, &all_reals)
            } else {
                None
            },
            rate_at_fpr_1pct: rate_above(&members, t1),
            rate_at_fpr_01pct: rate_above(&members, t01),
            flagged_at_fpr_1pct: members.iter().filter(|&&s| s > t1).count(),
        }
    };
    let mut groups: Vec<(&str, bool)> = sources
        .iter()
        .copied()
        .zip(labels.iter().copied())
        .collect();
    groups.sort();
    groups.dedup();
    groups.sort_by_key(|&(source, fake)| (!fake, source));
    let source_reports = groups
        .into_iter()
        .map(|(source, fake)| {
            let in_group = |i: usize| sources[i] == source && labels[i] == fake;
            let no_face = |f: &dyn Fn(&Scored) -> bool| {
                (0..scored.len())
                    .filter(|&i| in_group(i) && f(&scored[i]))
                    .count()
            };
            let mut facade_figures = figures(&facade, source, fake);
            facade_figures.no_face = no_face(&|s| s.facade.is_none());
            let mut peer_figures = figures(&peer, source, fake);
            peer_figures.no_face = no_face(&|s| s.eye_distance.is_none());
            SourceReport {
                source: source.to_owned(),
                label: if fake { "fake" } else { "real" },
                facade: facade_figures,
                peer: peer_figures,
                operating_point_rate: rate_above(&pick(&facade, &in_group), threshold),
            }
        })
        .collect();
    let all_fakes = pick(&facade, &|i| labels[i]);
    let all_reals = pick(&facade, &|i| !labels[i]);
    ConditionReport {
        condition,
        description: condition.describe(),
        images: scored.len(),
        failed: scored.iter().filter(|s| s.failed).count(),
        facade: pooled(&facade, &|_| true),
        peer: pooled(&peer, &|_| true),
        without_largest_real_source: without_largest,
        operating_point: OperatingPoint {
            target_fpr: fpr,
            threshold,
            fpr: rate_above(&all_reals, threshold),
            tpr: rate_above(&all_fakes, threshold),
        },
        sources: source_reports,
        faces_scored: scored.iter().map(|s| s.faces).sum(),
        faces_mirror_read: scored.iter().map(|s| s.mirror_read).sum(),
        images_scored: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_source_sample_spreads_over_each_source_and_keeps_order() {
        let items: Vec<(usize, &str)> = (0..100)
            .map(|i| (i, "a"))
            .chain((100..103).map(|i| (i, "b")))
            .collect();
        let sample = spread_sample_per_source(items, 10, |(_, s)| s);
        let a: Vec<usize> = sample.iter().filter(|x| x.1 == "a").map(|x| x.0).collect();
        assert_eq!(a, (0..100).step_by(10).collect::<Vec<_>>());
        let b: Vec<usize> = sample.iter().filter(|x| x.1 == "b").map(|x| x.0).collect();
        assert_eq!(b, vec![100, 101, 102], "a small source is kept whole");
    }
}
