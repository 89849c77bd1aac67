//! Rebuilding every learned part of the detectors from a labelled manifest.
//!
//! 1. Every image is hashed; its content hash decides its fold ([`dataset::fold_of`]):
//!    train (50%), calibration (15%), test (35%, never opened here). Whole sources can be
//!    held out as well, to measure generalisation to an unseen generator or kind of photo.
//! 2. Each train and calibration image goes through the same pipeline as `facade scan`
//!    (decode, detect, most confident face), once as it is and a few more times degraded
//!    (resized, blurred, JPEG-recompressed, then detected again): the detectors learn from
//!    what they will see, landmark noise included.
//! 3. The geometry Gaussian is fitted to the StyleGAN fakes of the train fold, the embedding to
//!    all its fakes, and each classifier of the ensemble, from its own seed, to all its faces
//!    (aligned crops with small shifts, rotations, scalings and mirroring). Classes weigh the
//!    same; within a class a source weighs as the square root of its size, so 3,000 tight
//!    crops of one collection do not drown 31 web photographs.
//! 4. The fusion and the operating point are fitted on the calibration fold, whose images none
//!    of the detectors saw.
//!
//! Everything random comes from ChaCha generators seeded from the configured seed and each
//! image's hash, so a run does not depend on thread scheduling.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{AdamW, Optimizer, ParamsAdamW, VarBuilder, VarMap};
use facade_face::{DetectorConfig, FaceDetector};
use facade_image::{decode, DecodeLimits, RgbImage};
use rand::distr::weighted::WeightedIndex;
use rand::distr::Distribution;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde_json::json;

use crate::align::{aligned_crop, CropFrame, Jitter, ZOOMS};
use crate::cascade::{MirrorCascade, ViewPair, PROTECTED_FPRS};
use crate::classifier::{member_prefix, Architecture, ClassifierEnsemble, CropLogits, Network};
use crate::dataset::{fold_of, read_manifest, sha256_hex, DatasetError, Degradation, Entry, Fold};
use crate::embedding::{frame_thumbnail, FrameEmbedding};
use crate::fusion::{threshold_for_fpr, Fusion, Raw};
use crate::geometry::{normalized_landmarks, GeometryModel};
use crate::lite::{
    default_pretrained_path, how_to_get_pretrained, load_pretrained, InputFilter, Regularisation,
    Variant, MAX_DROP_RATE, MEAN_BYTES,
};
use crate::metrics::roc_auc;
use crate::model::{Detectors, ModelError, Parameters, COARSE_PREFIX, WEIGHTS_FILE};

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error(transparent)]
    Dataset(#[from] DatasetError),
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error("training the classifier: {0}")]
    Candle(#[from] candle_core::Error),
    #[error("not enough data: {0}")]
    NotEnoughData(String),
    #[error("training configuration: {0}")]
    Config(String),
    #[error("face detector: {0}")]
    Detector(String),
}

/// Passes of each classifier over the training faces (about 30 s each for Lite0 at 64 px on 2
/// cores; 46 s for the small network at width 2).
pub const DEFAULT_EPOCHS: usize = 30;

/// Classifiers trained from different seeds and averaged (each adds a full training run and a
/// forward pass per scanned face). One fine-tuned Lite0 separates the calibration fold better
/// (classifier AUC 0.950) than the two averaged small networks it replaced (0.888).
pub const DEFAULT_CLASSIFIERS: usize = 1;

/// The side Lite0 reads the crop at: the crop itself ([`DEFAULT_CROP_SIDE`]). Against 64 px,
/// 96 px costs 2.9x per training step and 2.2x per scanned face, 128 px 5.3x and 3.7x
/// (`cargo bench -p facade-detect --bench classifier_step` with `FACADE_LITE0_SIDE`).
pub const DEFAULT_LITE_INPUT_SIDE: usize = 128;

/// The focal-loss exponent of the classifier's training (see [`focal_loss`]).
pub const DEFAULT_FOCAL_GAMMA: f64 = 0.0;

/// The side of the aligned crops Lite0 is fine-tuned on. Against 64 px (same recipe, same
/// held-out images) 96 px raised TPR at FPR 1% from 56.9% to 67.1% and 128 px to 73.3%
/// (README, "Measured"): the inner face of a 256 px picture is about 120 px wide, so 64 px
/// threw half its detail away.
pub const DEFAULT_CROP_SIDE: usize = 128;

/// The small network's width when it is chosen (see [`crate::classifier::channels`]). On the
/// 14,432-face set the width-1 network underfits (its training loss levels off at 0.33, width
/// 2 at 0.28).
pub const DEFAULT_CLASSIFIER_WIDTH: usize = 2;

/// What to train on and how.
#[derive(Debug, Clone)]
pub struct TrainConfig {
    pub manifest: PathBuf,
    pub seed: u64,
    pub epochs: usize,
    /// Classifiers to train and average; the first uses `seed` itself.
    pub classifiers: usize,
    /// Width of each classifier (1 to [`crate::classifier::MAX_WIDTH`]) when the small
    /// network is trained.
    pub classifier_width: usize,
    /// Fine-tune an EfficientNet-Lite on crops resized to this side instead of training the
    /// small network (`None`).
    pub lite_input_side: Option<usize>,
    /// Which EfficientNet-Lite (Lite0 by default).
    pub lite_variant: Variant,
    /// What the Lite is shown of each crop (the crop itself by default).
    pub lite_input_filter: InputFilter,
    /// Side of the aligned face crops (the small network reads [`crate::align::CROP_SIDE`]
    /// only; a Lite any side in [`crate::align::CROP_SIDES`], resized to its input side).
    pub crop_side: usize,
    /// How close the crops are taken ([`CropFrame::zoom`]; default the inner face).
    pub crop_zoom: f32,
    /// The ImageNet weights the Lite starts from (`scripts/convert_lite_weights.py`; `None`:
    /// where that script writes them, [`default_pretrained_path`]).
    pub pretrained: Option<PathBuf>,
    pub samples_per_epoch: usize,
    /// Degraded copies of each training image (calibration images get one).
    pub variants: usize,
    /// Focal-loss exponent of the classifier's training (0: plain cross-entropy).
    pub focal_gamma: f64,
    /// The Lite's stochastic depth and dropout while it trains (none by default).
    pub regularisation: Regularisation,
    /// Chance that a training crop has a random rectangle erased (0 by default).
    pub erase: f64,
    /// A source's share of its class in the classifier's sampling, relative to the others
    /// (1 for every source not named).
    pub source_weights: BTreeMap<String, f64>,
    /// Sources left out of training entirely.
    pub holdout_sources: Vec<String>,
    /// Use at most this many images of each source (quick runs and tests).
    pub max_per_source: Option<usize>,
    pub threads: usize,
}

impl TrainConfig {
    /// The classifiers' network this configuration trains.
    pub fn architecture(&self) -> Architecture {
        match self.lite_input_side {
            Some(input_side) => Architecture::Lite {
                variant: self.lite_variant,
                input_side,
                filter: self.lite_input_filter,
            },
            None => Architecture::Small {
                width: self.classifier_width,
            },
        }
    }

    /// The ImageNet weights file the Lite starts from.
    pub fn pretrained_path(&self) -> PathBuf {
        self.pretrained
            .clone()
            .unwrap_or_else(|| default_pretrained_path(self.lite_variant))
    }

    /// The aligned crop the classifiers are trained on.
    pub fn crop(&self) -> CropFrame {
        CropFrame {
            side: self.crop_side,
            zoom: self.crop_zoom,
        }
    }

    pub fn new(manifest: PathBuf) -> TrainConfig {
        TrainConfig {
            manifest,
            seed: 2026,
            epochs: DEFAULT_EPOCHS,
            classifiers: DEFAULT_CLASSIFIERS,
            classifier_width: DEFAULT_CLASSIFIER_WIDTH,
            lite_input_side: Some(DEFAULT_LITE_INPUT_SIDE),
            lite_variant: Variant::Lite0,
            lite_input_filter: InputFilter::Plain,
            crop_side: DEFAULT_CROP_SIDE,
            crop_zoom: crate::align::ZOOM,
            pretrained: None,
            samples_per_epoch: 4096,
            variants: 3,
            focal_gamma: DEFAULT_FOCAL_GAMMA,
            regularisation: Regularisation::default(),
            erase: 0.0,
            source_weights: BTreeMap::new(),
            holdout_sources: Vec::new(),
            max_per_source: None,
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
        }
    }
}

/// A trained model, its classifier weights by name, and a summary of the run.
pub struct Trained {
    pub detectors: Detectors,
    pub classifier_weights: HashMap<String, Tensor>,
}

/// One face seen by training: one image, as it is or degraded.
struct Observation {
    fake: bool,
    stylegan: bool,
    source: String,
    degraded: bool,
    landmarks: [f32; 10],
    thumbnail: Vec<f32>,
    crop: Vec<u8>,
    /// The coarse branch's crop, when a coarse branch is being fitted (else empty).
    coarse_crop: Vec<u8>,
}

/// The crops each observation keeps: the main classifier's and, when a coarse branch is being
/// fitted, the coarse one's.
#[derive(Debug, Clone, Copy)]
struct CropSides {
    main: CropFrame,
    coarse: Option<CropFrame>,
}

/// Which images to extract faces from.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Folds {
    /// Train and calibration (training).
    TrainAndCalibration,
    /// Calibration only (refitting the fusion).
    Calibration,
}

/// What happened to one manifest entry.
struct Seen {
    sha256: String,
    fold: Fold,
    observations: Vec<Observation>,
    problem: Option<String>,
}

const BATCH: usize = 64;

pub fn train(config: &TrainConfig, log: &(dyn Fn(&str) + Sync)) -> Result<Trained, TrainError> {
    let started = Instant::now();
    check_config(config)?;
    let entries = select_entries(read_manifest(&config.manifest)?, config);
    check_weighted_sources(&entries, config)?;
    log(&format!(
        "{} images selected from {}",
        entries.len(),
        config.manifest.display()
    ));
    let pool = thread_pool(config)?;
    let sides = CropSides {
        main: config.crop(),
        coarse: None,
    };
    let seen = extract(
        &entries,
        config,
        &pool,
        sides,
        Folds::TrainAndCalibration,
        log,
    )?;
    let counts = fold_counts(&entries, &seen);
    log(&format!(
        "faces extracted in {:.0} s",
        started.elapsed().as_secs_f64()
    ));

    let in_fold = |fold: Fold| {
        seen.iter()
            .filter(move |s| s.fold == fold)
            .flat_map(|s| &s.observations)
    };
    let train: Vec<&Observation> = in_fold(Fold::Train).collect();
    let calibration: Vec<&Observation> = in_fold(Fold::Calibration).collect();

    let stylegan: Vec<[f32; 10]> = train
        .iter()
        .filter(|o| o.stylegan)
        .map(|o| o.landmarks)
        .collect();
    let geometry = GeometryModel::fit(&stylegan).ok_or_else(|| {
        TrainError::NotEnoughData(format!(
            "{} StyleGAN faces in the train fold",
            stylegan.len()
        ))
    })?;
    let fake_thumbnails: Vec<Vec<f32>> = train
        .iter()
        .filter(|o| o.fake && !o.degraded)
        .map(|o| o.thumbnail.clone())
        .collect();
    let embedding = FrameEmbedding::fit(&fake_thumbnails).ok_or_else(|| {
        TrainError::NotEnoughData(format!("{} fakes in the train fold", fake_thumbnails.len()))
    })?;
    log(&format!(
        "geometry fitted on {} StyleGAN faces, embedding on {} fakes",
        stylegan.len(),
        fake_thumbnails.len()
    ));

    let seeds: Vec<u64> = (0..config.classifiers.max(1))
        .map(|member| member_seed(config.seed, member))
        .collect();
    let mut members = Vec::new();
    let mut classifier_weights = HashMap::new();
    let mut final_losses = Vec::new();
    for (member, seed) in seeds.iter().enumerate() {
        log(&format!(
            "classifier {} of {} (seed {seed})",
            member + 1,
            seeds.len()
        ));
        let (network, weights, loss) =
            pool.install(|| train_classifier(&train, config, member, log))?;
        members.push(network);
        classifier_weights.extend(weights);
        final_losses.push(loss);
    }
    let classifier = ClassifierEnsemble::new(members);
    let logits = pool.install(|| calibration_logits(&calibration, &classifier, |o| &o.crop))?;
    let member_aucs: Vec<Option<f64>> = logits
        .each
        .iter()
        .map(|logits| {
            let scored: Vec<(f64, bool)> = logits
                .iter()
                .zip(&calibration)
                .map(|(l, o)| (f64::from(*l), o.fake))
                .collect();
            rounded_auc(&scored)
        })
        .collect();

    let calibration_raw = raw_outputs(&calibration, &geometry, &embedding, &logits.mean, None);
    if calibration_raw.iter().filter(|(_, fake)| *fake).count() < 5
        || calibration_raw.iter().filter(|(_, fake)| !*fake).count() < 5
    {
        return Err(TrainError::NotEnoughData(
            "fewer than 5 fakes or reals in the calibration fold".into(),
        ));
    }
    let (fusion, calibration_real_scores, calibration_auc) =
        fit_fusion(&calibration_raw, &calibration);
    log(&format!(
        "calibration-fold AUC (not a test figure): {calibration_auc}"
    ));
    let one_view_raw = raw_outputs(
        &calibration,
        &geometry,
        &embedding,
        &logits.crop_alone,
        None,
    );
    let mirror_cascade = fit_mirror_cascade(
        &calibration_raw,
        &one_view_raw,
        &fusion,
        &calibration_real_scores,
        log,
    );

    let training_set: Vec<String> = seen
        .iter()
        .filter(|s| matches!(s.fold, Fold::Train | Fold::Calibration))
        .map(|s| s.sha256.clone())
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    let parameters = Parameters {
        geometry,
        fusion,
        calibration_real_scores,
        mirror_cascade,
        training: json!({
            "manifest": config.manifest.display().to_string(),
            "seed": config.seed,
            "crop_side": config.crop_side,
            "crop_zoom": config.crop_zoom,
            "epochs": config.epochs,
            "classifier_members": seeds.len(),
            "classifier_backbone": config.architecture().describe().0,
            "classifier_width": config.classifier_width,
            "lite_input_side": config.lite_input_side,
            "lite_input_filter": config.lite_input_side.map(|_| config.lite_input_filter.name()),
            "pretrained": config.lite_input_side.map(|_| pretrained_record(&config.pretrained_path())),
            "classifier_seeds": seeds,
            "classifier_calibration_auc_per_member": member_aucs,
            "samples_per_epoch": config.samples_per_epoch,
            "variants": config.variants,
            "focal_gamma": config.focal_gamma,
            "drop_path": config.regularisation.drop_path,
            "dropout": config.regularisation.dropout,
            "erase": config.erase,
            "source_weights": config.source_weights,
            "holdout_sources": config.holdout_sources,
            "max_per_source": config.max_per_source,
            "split": "sha256 of the file: first 8 hex digits mod 20: 0-9 train, 10-12 calibration, 13-19 test",
            "images_per_fold_and_source": counts,
            "observations": {"train": train.len(), "calibration": calibration.len()},
            "classifier_final_loss": final_losses,
            "calibration_auc": calibration_auc,
            "seconds": started.elapsed().as_secs_f64().round(),
        }),
    };
    Ok(Trained {
        detectors: Detectors::from_fitted(
            parameters,
            embedding,
            classifier,
            config.crop(),
            None,
            training_set,
        ),
        classifier_weights,
    })
}

/// The training-record fields that decide which images each fold holds and how they are
/// degraded: two models fused into one must agree on them, or one model's calibration images
/// could be the other's training images.
const FOLD_FIELDS: [&str; 5] = [
    "seed",
    "split",
    "holdout_sources",
    "max_per_source",
    "variants",
];

/// Adds a coarse branch to a trained model (`facade fuse`): the classifier of `coarse` (a model
/// trained by `facade train` on the same manifest with the same folds, on another crop side)
/// becomes a fourth detector, and the fusion is refitted over the four on the calibration fold,
/// which neither classifier saw. Geometry and embedding come from `base`. The faces of the
/// calibration images are extracted afresh, as training extracts them.
pub fn add_coarse_branch(
    base_dir: &Path,
    coarse_dir: &Path,
    manifest: Option<PathBuf>,
    threads: usize,
    log: &(dyn Fn(&str) + Sync),
) -> Result<Trained, TrainError> {
    let started = Instant::now();
    let base = Detectors::load(base_dir)?;
    let coarse = Detectors::load(coarse_dir)?;
    if base.coarse_branch().is_some() || coarse.coarse_branch().is_some() {
        return Err(TrainError::Config(
            "both models must be plain `facade train` output (one already has a coarse branch)"
                .into(),
        ));
    }
    let base_record = &base.parameters().training;
    let coarse_record = &coarse.parameters().training;
    for field in FOLD_FIELDS {
        if base_record.get(field) != coarse_record.get(field) {
            return Err(TrainError::Config(format!(
                "the models were trained with different {field} ({} and {}), so their folds differ",
                base_record.get(field).unwrap_or(&serde_json::Value::Null),
                coarse_record.get(field).unwrap_or(&serde_json::Value::Null)
            )));
        }
    }
    let (main, branch) = (base.main_branch(), coarse.main_branch());
    let sides = CropSides {
        main: main.crop,
        coarse: Some(branch.crop),
    };
    let (pool, seen) = calibration_faces(base_record, manifest, threads, sides, log)?;
    let calibration = calibration_observations(&seen);
    let main_logits =
        pool.install(|| calibration_logits(&calibration, &main.classifier, |o| &o.crop))?;
    let coarse_logits =
        pool.install(|| calibration_logits(&calibration, &branch.classifier, |o| &o.coarse_crop))?;
    let raw = |main: &[f32], coarse: &[f32]| {
        raw_outputs(
            &calibration,
            &base.parameters().geometry,
            base.embedding(),
            main,
            Some(coarse),
        )
    };
    let calibration_raw = raw(&main_logits.mean, &coarse_logits.mean);
    let (fusion, calibration_real_scores, calibration_auc) =
        fit_fusion(&calibration_raw, &calibration);
    log(&format!(
        "calibration-fold AUC (not a test figure): {calibration_auc}; fusion weights {:?}",
        fusion.weights
    ));
    let mirror_cascade = fit_mirror_cascade(
        &calibration_raw,
        &raw(&main_logits.crop_alone, &coarse_logits.crop_alone),
        &fusion,
        &calibration_real_scores,
        log,
    );

    let mut training = base_record.clone();
    training["calibration_auc_without_coarse"] = base_record["calibration_auc"].clone();
    training["calibration_auc"] = calibration_auc;
    training[COARSE_PREFIX] = coarse_record.clone();
    training["coarse_fused_by"] = json!({
        "command": "facade fuse",
        "base_model": base.fingerprint(),
        "coarse_model": coarse.fingerprint(),
        "calibration_observations": calibration.len(),
        "seconds": started.elapsed().as_secs_f64().round(),
    });
    let training_set: Vec<String> = base
        .training_set()
        .iter()
        .chain(coarse.training_set())
        .cloned()
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    let mut classifier_weights = classifier_tensors(base_dir, "")?;
    classifier_weights.extend(classifier_tensors(
        coarse_dir,
        &format!("{COARSE_PREFIX}."),
    )?);
    let parameters = Parameters {
        geometry: base.parameters().geometry.clone(),
        fusion,
        calibration_real_scores,
        mirror_cascade,
        training,
    };
    Ok(Trained {
        detectors: Detectors::from_fitted(
            parameters,
            base.embedding().clone(),
            main.classifier.clone(),
            main.crop,
            Some(branch.clone()),
            training_set,
        ),
        classifier_weights,
    })
}

/// Adds the mirror cascade to a trained model (`facade cascade`): measures on the calibration
/// fold how far reading the mirror view moves the model's fused scores ([`crate::cascade`]).
/// Every other part of the model stays as it is; the calibration faces are extracted afresh, as
/// training extracts them, and the log says how far their two-view scores drifted from the
/// ones the model recorded (the matrix products sum in another order on another CPU).
pub fn add_mirror_cascade(
    model_dir: &Path,
    manifest: Option<PathBuf>,
    threads: usize,
    log: &(dyn Fn(&str) + Sync),
) -> Result<Trained, TrainError> {
    let started = Instant::now();
    let model = Detectors::load(model_dir)?;
    let parameters = model.parameters();
    let (main, coarse) = (model.main_branch(), model.coarse_branch());
    let sides = CropSides {
        main: main.crop,
        coarse: coarse.map(|b| b.crop),
    };
    let (pool, seen) = calibration_faces(&parameters.training, manifest, threads, sides, log)?;
    let calibration = calibration_observations(&seen);
    let main_logits =
        pool.install(|| calibration_logits(&calibration, &main.classifier, |o| &o.crop))?;
    let coarse_logits = match coarse {
        Some(branch) => Some(pool.install(|| {
            calibration_logits(&calibration, &branch.classifier, |o| &o.coarse_crop)
        })?),
        None => None,
    };
    let raw = |pick: fn(&CropLogits) -> &[f32]| {
        raw_outputs(
            &calibration,
            &parameters.geometry,
            model.embedding(),
            pick(&main_logits),
            coarse_logits.as_ref().map(pick),
        )
    };
    let both_views = raw(|l| &l.mean);
    let drift = calibration_drift(&both_views, parameters)?;
    log(&format!(
        "the calibration reals' fused scores, recomputed, differ from the recorded ones by {drift:.2e} at most"
    ));
    let mirror_cascade = fit_mirror_cascade(
        &both_views,
        &raw(|l| &l.crop_alone),
        &parameters.fusion,
        &parameters.calibration_real_scores,
        log,
    );
    let mut parameters = parameters.clone();
    parameters.mirror_cascade = mirror_cascade;
    parameters.training["mirror_cascade_added_by"] = json!({
        "command": "facade cascade",
        "model": model.fingerprint(),
        "calibration_observations": calibration.len(),
        "largest_calibration_score_drift": drift,
        "seconds": started.elapsed().as_secs_f64().round(),
    });
    let classifier_weights =
        candle_core::safetensors::load(model_dir.join(WEIGHTS_FILE), &Device::Cpu)?
            .into_iter()
            .filter(|(name, _)| !name.starts_with("embedding."))
            .collect();
    Ok(Trained {
        detectors: Detectors::from_fitted(
            parameters,
            model.embedding().clone(),
            main.classifier.clone(),
            main.crop,
            coarse.cloned(),
            model.training_set().to_vec(),
        ),
        classifier_weights,
    })
}

/// The largest difference between the calibration reals' fused scores recomputed from
/// `both_views` and those the model recorded; an error when their number differs (then the
/// fold is not the one the model was fitted on).
fn calibration_drift(
    both_views: &[(Raw, bool)],
    parameters: &Parameters,
) -> Result<f64, TrainError> {
    let mut reals: Vec<f64> = both_views
        .iter()
        .filter(|(_, fake)| !*fake)
        .map(|(raw, _)| parameters.fusion.probability(raw))
        .collect();
    reals.sort_by(|a, b| b.total_cmp(a));
    let recorded = &parameters.calibration_real_scores;
    if reals.len() != recorded.len() {
        return Err(TrainError::Config(format!(
            "the calibration fold holds {} real faces here and {} in the model's record: not the fold the model was fitted on (another manifest or shared data?)",
            reals.len(),
            recorded.len()
        )));
    }
    Ok(reals
        .iter()
        .zip(recorded)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max))
}

/// The faces of a model's calibration fold, extracted afresh with the folds and degraded
/// copies its training record names, and the thread pool that extracted them.
fn calibration_faces(
    record: &serde_json::Value,
    manifest: Option<PathBuf>,
    threads: usize,
    sides: CropSides,
    log: &(dyn Fn(&str) + Sync),
) -> Result<(rayon::ThreadPool, Vec<Seen>), TrainError> {
    let started = Instant::now();
    let config = fold_config(record, manifest, threads)?;
    let entries = select_entries(read_manifest(&config.manifest)?, &config);
    log(&format!(
        "{} images selected from {}; extracting the calibration fold's faces",
        entries.len(),
        config.manifest.display()
    ));
    let pool = thread_pool(&config)?;
    let seen = extract(&entries, &config, &pool, sides, Folds::Calibration, log)?;
    log(&format!(
        "{} calibration faces extracted in {:.0} s",
        calibration_observations(&seen).len(),
        started.elapsed().as_secs_f64()
    ));
    Ok((pool, seen))
}

fn calibration_observations(seen: &[Seen]) -> Vec<&Observation> {
    seen.iter()
        .filter(|s| s.fold == Fold::Calibration)
        .flat_map(|s| &s.observations)
        .collect()
}

fn thread_pool(config: &TrainConfig) -> Result<rayon::ThreadPool, TrainError> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(config.threads.max(1))
        .build()
        .map_err(|e| TrainError::Detector(e.to_string()))
}

/// Every entry's hash, fold and (for the folds asked for) faces, in parallel; the entries
/// that yield no face are logged one by one.
fn extract(
    entries: &[Entry],
    config: &TrainConfig,
    pool: &rayon::ThreadPool,
    sides: CropSides,
    folds: Folds,
    log: &(dyn Fn(&str) + Sync),
) -> Result<Vec<Seen>, TrainError> {
    let detector = FaceDetector::new(DetectorConfig::default())
        .map_err(|e| TrainError::Detector(e.to_string()))?;
    let seen: Vec<Seen> = pool.install(|| {
        entries
            .par_iter()
            .map(|entry| observe(entry, &detector, config, sides, folds))
            .collect()
    });
    for (entry, s) in entries.iter().zip(&seen) {
        if let Some(problem) = &s.problem {
            log(&format!("skipped {}: {problem}", entry.name));
        }
    }
    Ok(seen)
}

/// The training configuration whose folds and degraded copies match a model's record (the
/// manifest it names unless another is given).
fn fold_config(
    record: &serde_json::Value,
    manifest: Option<PathBuf>,
    threads: usize,
) -> Result<TrainConfig, TrainError> {
    let missing = |field: &str| TrainError::Config(format!("the model records no {field}"));
    let manifest = match manifest {
        Some(path) => path,
        None => record["manifest"]
            .as_str()
            .map(PathBuf::from)
            .ok_or_else(|| missing("manifest"))?,
    };
    let mut config = TrainConfig::new(manifest);
    config.seed = record["seed"].as_u64().ok_or_else(|| missing("seed"))?;
    config.variants = record["variants"]
        .as_u64()
        .and_then(|n| usize::try_from(n).ok())
        .ok_or_else(|| missing("variants"))?;
    config.holdout_sources = serde_json::from_value(record["holdout_sources"].clone())
        .map_err(|_| missing("holdout_sources"))?;
    config.max_per_source = serde_json::from_value(record["max_per_source"].clone())
        .map_err(|_| missing("max_per_source"))?;
    config.threads = threads.max(1);
    Ok(config)
}

/// A model folder's classifier tensors (every ensemble member's), renamed with `prefix`.
fn classifier_tensors(dir: &Path, prefix: &str) -> Result<HashMap<String, Tensor>, TrainError> {
    let path = dir.join(WEIGHTS_FILE);
    let tensors = candle_core::safetensors::load(&path, &Device::Cpu)?;
    Ok(tensors
        .into_iter()
        .filter(|(name, _)| name.starts_with("classifier"))
        .map(|(name, tensor)| (format!("{prefix}{name}"), tensor))
        .collect())
}

/// What the record says of the ImageNet weights: the file's name (not this machine's path)
/// and the SHA-256 of its bytes, which the converter writes the same on every machine.
fn pretrained_record(path: &std::path::Path) -> serde_json::Value {
    json!({
        "file": path.file_name().map(|n| n.to_string_lossy().into_owned()),
        "sha256": std::fs::read(path).ok().map(|bytes| sha256_hex(&bytes)),
        "made_by": "scripts/convert_lite_weights.py",
    })
}

/// The crop side must be one the configured network reads ([`Architecture::reads_crop_side`]),
/// the zoom one a model may record ([`ZOOMS`]), and drop rates (a Lite only) within
/// [`MAX_DROP_RATE`].
fn check_config(config: &TrainConfig) -> Result<(), TrainError> {
    let architecture = config.architecture();
    if !ZOOMS.contains(&config.crop_zoom) {
        return Err(TrainError::Config(format!(
            "crop zoom {} is not from {} to {}",
            config.crop_zoom,
            ZOOMS.start(),
            ZOOMS.end()
        )));
    }
    if let Some((name, w)) = config
        .source_weights
        .iter()
        .find(|(_, w)| !(0.01..=100.0).contains(*w))
    {
        return Err(TrainError::Config(format!(
            "source weight {w} for {name} is not from 0.01 to 100"
        )));
    }
    if !(0.0..=1.0).contains(&config.erase) {
        return Err(TrainError::Config(format!(
            "erase chance {} is not from 0 to 1",
            config.erase
        )));
    }
    let Regularisation { drop_path, dropout } = config.regularisation;
    if !(0.0..=MAX_DROP_RATE).contains(&drop_path) || !(0.0..=MAX_DROP_RATE).contains(&dropout) {
        return Err(TrainError::Config(format!(
            "drop-path {drop_path} and dropout {dropout} must each be 0 to {MAX_DROP_RATE}"
        )));
    }
    if config.regularisation != Regularisation::default()
        && !matches!(architecture, Architecture::Lite { .. })
    {
        return Err(TrainError::Config(
            "drop-path and dropout regularise a Lite only, not the small network".into(),
        ));
    }
    if config.lite_input_filter != InputFilter::Plain
        && !matches!(architecture, Architecture::Lite { .. })
    {
        return Err(TrainError::Config(
            "an input filter is for a Lite only, not the small network".into(),
        ));
    }
    if architecture.reads_crop_side(config.crop_side) {
        Ok(())
    } else {
        Err(TrainError::Config(format!(
            "crop side {} does not fit {}, which reads {}",
            config.crop_side,
            architecture.describe().0,
            architecture.crop_sides_read()
        )))
    }
}

/// Every source `--source-weight` names must be among the selected entries (a misspelt or
/// held-out name would otherwise weigh nothing, silently).
fn check_weighted_sources(entries: &[Entry], config: &TrainConfig) -> Result<(), TrainError> {
    match config
        .source_weights
        .keys()
        .find(|name| !entries.iter().any(|e| &e.source == *name))
    {
        Some(missing) => Err(TrainError::Config(format!(
            "--source-weight names {missing}, which no training image of the manifest comes from"
        ))),
        None => Ok(()),
    }
}

fn select_entries(entries: Vec<Entry>, config: &TrainConfig) -> Vec<Entry> {
    let mut per_source: HashMap<String, usize> = HashMap::new();
    entries
        .into_iter()
        .filter(|e| !config.holdout_sources.contains(&e.source))
        .filter(|e| {
            let n = per_source.entry(e.source.clone()).or_default();
            *n += 1;
            config.max_per_source.is_none_or(|max| *n <= max)
        })
        .collect()
}

fn fold_counts(entries: &[Entry], seen: &[Seen]) -> BTreeMap<String, BTreeMap<String, usize>> {
    let mut counts: BTreeMap<String, BTreeMap<String, usize>> = BTreeMap::new();
    for (entry, s) in entries.iter().zip(seen) {
        let fold = match (s.fold, &s.problem) {
            (_, Some(_)) => "skipped",
            (Fold::Train, _) => "train",
            (Fold::Calibration, _) => "calibration",
            (Fold::Test, _) => "test",
        };
        *counts
            .entry(entry.source.clone())
            .or_default()
            .entry(fold.into())
            .or_default() += 1;
    }
    counts
}

/// Hashes one entry and, unless it is a test image, extracts its observations.
fn observe(
    entry: &Entry,
    detector: &FaceDetector,
    config: &TrainConfig,
    sides: CropSides,
    folds: Folds,
) -> Seen {
    let bytes = match std::fs::read(&entry.path) {
        Ok(bytes) => bytes,
        Err(e) => {
            return Seen {
                sha256: String::new(),
                fold: Fold::Test,
                observations: Vec::new(),
                problem: Some(format!("cannot read: {e}")),
            }
        }
    };
    let sha256 = sha256_hex(&bytes);
    let fold = fold_of(&sha256);
    let mut seen = Seen {
        sha256,
        fold,
        observations: Vec::new(),
        problem: None,
    };
    if fold == Fold::Test || (folds == Folds::Calibration && fold != Fold::Calibration) {
        return seen;
    }
    let image = match decode(&bytes, &DecodeLimits::default()) {
        Ok(decoded) => decoded.image,
        Err(e) => {
            seen.problem = Some(e.to_string());
            return seen;
        }
    };
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed ^ seed_of(&seen.sha256));
    match observation(entry, &image, detector, Jitter::default(), false, sides) {
        Some(o) => seen.observations.push(o),
        None => {
            seen.problem = Some("no face found".into());
            return seen;
        }
    }
    let copies = if fold == Fold::Train {
        config.variants
    } else {
        1
    };
    for _ in 0..copies {
        let degradation = random_degradation(&mut rng);
        let jitter = if fold == Fold::Train {
            random_jitter(&mut rng, sides.main.side)
        } else {
            Jitter::default()
        };
        if let Ok(degraded) = degradation.apply(&image) {
            seen.observations
                .extend(observation(entry, &degraded, detector, jitter, true, sides));
        }
    }
    seen
}

fn seed_of(sha256: &str) -> u64 {
    u64::from_str_radix(sha256.get(..16).unwrap_or("0"), 16).unwrap_or(0)
}

/// Detects the most confident face and records what every detector needs from it.
fn observation(
    entry: &Entry,
    image: &RgbImage,
    detector: &FaceDetector,
    jitter: Jitter,
    degraded: bool,
    sides: CropSides,
) -> Option<Observation> {
    let faces = detector.detect(image).ok()?;
    let face = faces.first()?;
    Some(Observation {
        fake: entry.fake,
        stylegan: entry.fake && entry.generator.starts_with("stylegan"),
        source: entry.source.clone(),
        degraded,
        landmarks: normalized_landmarks(&face.landmarks, image.width(), image.height()),
        thumbnail: frame_thumbnail(image),
        crop: aligned_crop(image, &face.landmarks, jitter, sides.main).pixels,
        coarse_crop: sides
            .coarse
            .map(|frame| aligned_crop(image, &face.landmarks, jitter, frame).pixels)
            .unwrap_or_default(),
    })
}

/// Resizing to anything from a thumbnail to a large profile picture, JPEG quality 30–100,
/// sometimes a slight blur.
fn random_degradation(rng: &mut ChaCha8Rng) -> Degradation {
    let max_side = if rng.random_bool(0.5) {
        rng.random_range(100..300)
    } else {
        rng.random_range(300..800)
    };
    Degradation {
        max_side,
        quality: rng.random_range(30..=100),
        blur_sigma: if rng.random_bool(0.25) {
            rng.random_range(0.3..1.2)
        } else {
            0.0
        },
    }
}

/// Alignment noise of the size a degraded image's landmarks show: a few percent of the crop
/// (shifts of up to 2 px of a 64 px crop, in proportion at other sides).
fn random_jitter(rng: &mut ChaCha8Rng, crop_side: usize) -> Jitter {
    let pixels = crop_side as f32 / crate::align::CROP_SIDE as f32;
    Jitter {
        dx: rng.random_range(-2.0..2.0) * pixels,
        dy: rng.random_range(-2.0..2.0) * pixels,
        scale: rng.random_range(-0.05..0.05),
        angle: rng.random_range(-0.08..0.08),
        mirror: false,
    }
}

/// Half the time, makes one side band of the crop look as if it lay beyond the frame (the
/// edge pixel repeated, as [`aligned_crop`] fills out-of-frame pixels). Tight crops of real
/// photographs run past the frame far more often than StyleGAN output does; showing the
/// pattern on every class keeps the classifier from reading "past the frame" as "real". The
/// band is up to a quarter of an inner-face crop, more of a wider one (whose tight real crops
/// run further past the frame), at most half.
fn with_random_frame_edge(crop: &[u8], frame: CropFrame, rng: &mut ChaCha8Rng) -> Vec<u8> {
    let mut out = crop.to_vec();
    if !rng.random_bool(0.5) {
        return out;
    }
    let side = frame.side;
    let widest = (side as f32 / 4.0 * (crate::align::ZOOM / frame.zoom).max(1.0)) as usize;
    let band = rng.random_range(2..widest.min(side / 2));
    let which = rng.random_range(0..4);
    for plane in out.chunks_exact_mut(side * side) {
        for y in 0..side {
            for x in 0..side {
                let (sx, sy) = match which {
                    0 if y < band => (x, band),
                    1 if y >= side - band => (x, side - 1 - band),
                    2 if x < band => (band, y),
                    3 if x >= side - band => (side - 1 - band, y),
                    _ => continue,
                };
                plane[y * side + x] = plane[sy * side + sx];
            }
        }
    }
    out
}

/// Random erasing (Zhong et al. 2017; the DFDC's winning entry cut out face parts the same
/// way): with probability `p`, one rectangle of 2% to 25% of the crop, of aspect 1:3 to 3:1,
/// is painted ImageNet's mean colour (zero at Lite0's input). The classifier then cannot rest
/// on one region (the eyes, the teeth, one artefact) and must find its evidence across the
/// face. Draws nothing when `p` is 0, so runs without it draw the numbers they drew before.
fn erase_random_rectangle(crop: &mut [u8], side: usize, p: f64, rng: &mut ChaCha8Rng) {
    if p <= 0.0 || !rng.random_bool(p.min(1.0)) {
        return;
    }
    let area = rng.random_range(0.02f32..0.25) * (side * side) as f32;
    let aspect = rng.random_range((1.0f32 / 3.0).ln()..3.0f32.ln()).exp();
    let height = ((area * aspect).sqrt().round() as usize).clamp(1, side);
    let width = ((area / aspect).sqrt().round() as usize).clamp(1, side);
    let top = rng.random_range(0..=side - height);
    let left = rng.random_range(0..=side - width);
    for (plane, fill) in crop.chunks_exact_mut(side * side).zip(MEAN_BYTES) {
        for row in plane.chunks_exact_mut(side).skip(top).take(height) {
            row[left..left + width].fill(fill);
        }
    }
}

/// The classifier's sampling weights: classes equal; within a class, every source equal. The
/// classifier is to learn what each kind of real photograph looks like, so the 25 aligned FFHQ
/// photographs must count as much as the 1,500 UTKFace crops; weighing sources by size let it
/// learn "not a tight 200 px crop" instead of "a real face".
///
/// `extra` multiplies a named source's share of its class (hard negatives: the FFHQ
/// photographs StyleGAN2 learned to imitate, say), the class keeping its half.
fn sample_weights(observations: &[&Observation], extra: &BTreeMap<String, f64>) -> Vec<f64> {
    source_weights(observations, |source, _| {
        extra.get(source).copied().unwrap_or(1.0)
    })
}

/// The fusion's weights: classes equal; within a class, a source weighs as √(its size). The
/// fusion sets how far the geometry detector is believed; weighing the seven calibration
/// FFHQ photographs like a whole source pulls that trust down so far that StyleGAN output
/// (the faces of the takedowns) is missed a third more often (see README, "Measured").
fn fusion_weights(observations: &[&Observation]) -> Vec<f64> {
    source_weights(observations, |_, n| n.sqrt())
}

/// Weights that give the classes equal mass and a source `weight(its name, its size)` of its
/// class.
fn source_weights(observations: &[&Observation], weight: impl Fn(&str, f64) -> f64) -> Vec<f64> {
    // Ordered, so that the sums below add up in the same order on every run.
    let mut per_source: BTreeMap<(&str, bool), f64> = BTreeMap::new();
    for o in observations {
        *per_source.entry((o.source.as_str(), o.fake)).or_default() += 1.0;
    }
    let class_norm = |fake: bool| -> f64 {
        per_source
            .iter()
            .filter(|((_, f), _)| *f == fake)
            .map(|(&(source, _), &n)| weight(source, n))
            .sum()
    };
    let (norm_fake, norm_real) = (class_norm(true), class_norm(false));
    observations
        .iter()
        .map(|o| {
            let n = per_source[&(o.source.as_str(), o.fake)];
            let norm = if o.fake { norm_fake } else { norm_real };
            // Each of the source's n observations gets weight/n of its class's share.
            0.5 * weight(&o.source, n) / (n * norm)
        })
        .collect()
}

type ClassifierFit = (Network, HashMap<String, Tensor>, f32);

/// The seed of ensemble member `index`: the configured seed for the first, so that a
/// one-classifier run is the run from before ensembles; well-mixed offsets for the others.
fn member_seed(seed: u64, index: usize) -> u64 {
    seed.wrapping_add((index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

/// Trains ensemble member `member` from its own seed (initialisation, sampling, mirroring and
/// frame edges; the degraded training images are shared by all members).
fn train_classifier(
    train: &[&Observation],
    config: &TrainConfig,
    member: usize,
    log: &(dyn Fn(&str) + Sync),
) -> Result<ClassifierFit, TrainError> {
    if train.iter().filter(|o| o.fake).count() < 10 || train.iter().filter(|o| !o.fake).count() < 10
    {
        return Err(TrainError::NotEnoughData(
            "fewer than 10 fakes or reals to train the classifier".into(),
        ));
    }
    let device = Device::Cpu;
    let varmap = VarMap::new();
    let prefix = member_prefix(member);
    let classifier = Network::new(
        VarBuilder::from_varmap(&varmap, DType::F32, &device).pp(&prefix),
        config.architecture(),
    )?;
    let mut rng = ChaCha8Rng::seed_from_u64(member_seed(config.seed, member));
    seeded_init(&varmap, &mut rng)?;
    let schedule = match classifier {
        Network::Small(_) => Schedule::SMALL,
        Network::Lite(ref net) => {
            let variant = net.variant();
            let path = config.pretrained_path();
            let set = load_pretrained(&varmap, &prefix, variant, &path).map_err(|e| {
                TrainError::Detector(format!(
                    "EfficientNet-{}'s ImageNet weights ({}): {e}; {}",
                    variant.name(),
                    path.display(),
                    how_to_get_pretrained(variant)
                ))
            })?;
            log(&format!("{set} tensors from {}", path.display()));
            Schedule::FINE_TUNE
        }
    };
    let mut optimizer = AdamW::new(
        varmap.all_vars(),
        ParamsAdamW {
            lr: schedule.peak,
            weight_decay: 1e-4,
            ..Default::default()
        },
    )?;
    let sampler = WeightedIndex::new(sample_weights(train, &config.source_weights))
        .map_err(|e| TrainError::NotEnoughData(e.to_string()))?;
    let batches = (config.samples_per_epoch / BATCH).max(1);
    let mut last_loss = f32::NAN;
    let steps = batches * config.epochs;
    for epoch in 0..config.epochs {
        let t = Instant::now();
        let mut total = 0.0f32;
        for batch in 0..batches {
            optimizer.set_learning_rate(schedule.rate(
                epoch,
                epoch * batches + batch,
                steps,
                config.epochs,
            ));
            let picks: Vec<&Observation> = (0..BATCH)
                .map(|_| train[sampler.sample(&mut rng)])
                .collect();
            let mirror: Vec<bool> = (0..BATCH).map(|_| rng.random_bool(0.5)).collect();
            let owned: Vec<Vec<u8>> = picks
                .iter()
                .map(|o| {
                    let mut crop = with_random_frame_edge(&o.crop, config.crop(), &mut rng);
                    erase_random_rectangle(&mut crop, config.crop_side, config.erase, &mut rng);
                    crop
                })
                .collect();
            let crops: Vec<&[u8]> = owned.iter().map(Vec::as_slice).collect();
            let x = classifier.input(&crops, &mirror, &device)?;
            let labels: Vec<f32> = picks
                .iter()
                .map(|o| if o.fake { 1.0 } else { 0.0 })
                .collect();
            let y = Tensor::from_vec(labels, BATCH, &device)?;
            let logits = classifier.forward_training(&x, config.regularisation, &mut rng)?;
            let loss = focal_loss(&logits, &y, config.focal_gamma)?;
            optimizer.backward_step(&loss)?;
            total += loss.to_scalar::<f32>()?;
        }
        last_loss = total / batches as f32;
        log(&format!(
            "classifier epoch {}/{}: loss {last_loss:.4} ({:.0} s)",
            epoch + 1,
            config.epochs,
            t.elapsed().as_secs_f64()
        ));
    }
    let weights = varmap
        .data()
        .lock()
        .map_err(|_| TrainError::Detector("weights lock poisoned".into()))?
        .iter()
        .map(|(name, var)| (name.clone(), var.as_tensor().clone()))
        .collect();
    Ok((classifier, weights, last_loss))
}

/// The learning rate over a classifier's training run.
struct Schedule {
    peak: f64,
    /// Share of the steps spent rising linearly to `peak`; none for the small network.
    warmup: f64,
}

impl Schedule {
    /// The small network from scratch: cosine decay from 2e-3, stepped once per epoch (the
    /// schedule of every small model so far, kept so they stay reproducible).
    const SMALL: Schedule = Schedule {
        peak: 2e-3,
        warmup: 0.0,
    };
    /// Fine-tuning Lite0: a lower peak, since the pretrained features are what is worth
    /// keeping, reached after a short warm-up (the new output layer starts random and its
    /// first gradients would otherwise shake the pretrained layers), then cosine decay per step.
    const FINE_TUNE: Schedule = Schedule {
        peak: 5e-4,
        warmup: 0.05,
    };

    fn rate(&self, epoch: usize, step: usize, steps: usize, epochs: usize) -> f64 {
        let cosine =
            |progress: f64| self.peak * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos());
        if self.warmup == 0.0 {
            return cosine(epoch as f64 / epochs as f64);
        }
        let progress = step as f64 / steps.max(1) as f64;
        if progress < self.warmup {
            self.peak * (progress / self.warmup).max(0.01)
        } else {
            cosine((progress - self.warmup) / (1.0 - self.warmup))
        }
    }
}

/// Mean binary cross-entropy on logits, in the overflow-free form
/// `max(x, 0) - x·y + ln(1 + e^{-|x|})`.
fn logistic_loss(logits: &Tensor, labels: &Tensor) -> candle_core::Result<Tensor> {
    per_face_cross_entropy(logits, labels)?.mean_all()
}

fn per_face_cross_entropy(logits: &Tensor, labels: &Tensor) -> candle_core::Result<Tensor> {
    let softplus_tail = (logits.abs()?.neg()?.exp()? + 1.0)?.log()?;
    logits.relu()? - (logits * labels)? + softplus_tail
}

/// The focal loss (Lin et al. 2017): each face's cross-entropy `b` weighed by `(1 - p)^γ`,
/// `p = e^{-b}` the probability given to its true class. Faces the network already gets right
/// with confidence (most web and studio photographs, most large StyleGAN faces) weigh almost
/// nothing, so the steps go to the faces it confuses, whichever source they come from; at
/// `γ = 0` it is [`logistic_loss`].
fn focal_loss(logits: &Tensor, labels: &Tensor, gamma: f64) -> candle_core::Result<Tensor> {
    if gamma == 0.0 {
        return logistic_loss(logits, labels);
    }
    let entropy = per_face_cross_entropy(logits, labels)?;
    let miss = (entropy.neg()?.exp()?.neg()? + 1.0)?.clamp(0.0, 1.0)?;
    (miss.powf(gamma)? * entropy)?.mean_all()
}

/// He-uniform weights and zero biases from the seeded generator, in name order, so that
/// training starts from the same point every run.
fn seeded_init(varmap: &VarMap, rng: &mut ChaCha8Rng) -> Result<(), TrainError> {
    let data = varmap
        .data()
        .lock()
        .map_err(|_| TrainError::Detector("weights lock poisoned".into()))?;
    let vars: BTreeMap<&String, &Var> = data.iter().collect();
    for (name, var) in vars {
        let dims = var.dims().to_vec();
        let count: usize = dims.iter().product();
        let values: Vec<f32> = if name.ends_with("bias") {
            vec![0.0; count]
        } else {
            let fan_in = (count / dims.first().copied().unwrap_or(1).max(1)).max(1);
            let bound = (6.0 / fan_in as f32).sqrt();
            (0..count)
                .map(|_| rng.random_range(-bound..bound))
                .collect()
        };
        var.set(&Tensor::from_vec(values, dims, &Device::Cpu)?)?;
    }
    Ok(())
}

/// The classifier's logits for observations, run in batches: each member's (for the record),
/// the ensemble's (for the fusion) and the ensemble's on the crop alone (for the mirror
/// cascade), from one forward pass of each member over both views.
fn calibration_logits(
    observations: &[&Observation],
    classifier: &ClassifierEnsemble,
    crop: fn(&Observation) -> &Vec<u8>,
) -> Result<CropLogits, TrainError> {
    let mut all = CropLogits {
        each: vec![Vec::with_capacity(observations.len()); classifier.members().len()],
        mean: Vec::with_capacity(observations.len()),
        crop_alone: Vec::with_capacity(observations.len()),
    };
    for chunk in observations.chunks(BATCH) {
        let crops: Vec<&[u8]> = chunk.iter().map(|o| crop(o).as_slice()).collect();
        let part = classifier.member_and_mean_logits(&crops)?;
        for (member, logits) in all.each.iter_mut().zip(part.each) {
            member.extend(logits);
        }
        all.mean.extend(part.mean);
        all.crop_alone.extend(part.crop_alone);
    }
    Ok(all)
}

/// How far the mirror view moved the calibration faces' fused scores, the band scanning reads
/// it in ([`crate::cascade`]); `None` (read it for every face) when it cannot be measured.
fn fit_mirror_cascade(
    both_views: &[(Raw, bool)],
    one_view: &[(Raw, bool)],
    fusion: &Fusion,
    calibration_real_scores: &[f64],
    log: &(dyn Fn(&str) + Sync),
) -> Option<MirrorCascade> {
    let pairs: Vec<ViewPair> = both_views
        .iter()
        .zip(one_view)
        .map(|((both, _), (one, _))| ViewPair {
            one_view: fusion.log_odds(one),
            both_views: fusion.log_odds(both),
        })
        .collect();
    let thresholds = PROTECTED_FPRS.map(|fpr| threshold_for_fpr(calibration_real_scores, fpr));
    let cascade = MirrorCascade::fit(&pairs, &thresholds);
    match &cascade {
        Some(c) => log(&format!(
            "mirror view: moves calibration faces' log-odds by {:.3} at most (median {:.3}, 99% {:.3}); read for {:.1}% of them",
            c.margin,
            c.median_shift,
            c.p99_shift,
            100.0 * c.share_read
        )),
        None => log("mirror view: not measurable on the calibration fold; read for every face"),
    }
    cascade
}

/// Raw detector outputs for observations, given the classifier's logit for each (and the
/// coarse branch's, when there is one).
fn raw_outputs(
    observations: &[&Observation],
    geometry: &GeometryModel,
    embedding: &FrameEmbedding,
    classifier_logits: &[f32],
    coarse_logits: Option<&[f32]>,
) -> Vec<(Raw, bool)> {
    observations
        .iter()
        .zip(classifier_logits)
        .enumerate()
        .map(|(i, (o, &classifier))| {
            let raw = Raw {
                geometry: geometry.distance(&o.landmarks),
                embedding: embedding.reconstruction_error(&o.thumbnail),
                classifier,
                coarse: coarse_logits.and_then(|l| l.get(i).copied()),
            };
            (raw, o.fake)
        })
        .collect()
}

/// The fusion fitted on the calibration fold's detector outputs, the fold's real faces' fused
/// scores (descending: the operating points are read from them) and the fold's AUCs.
fn fit_fusion(
    calibration_raw: &[(Raw, bool)],
    calibration: &[&Observation],
) -> (Fusion, Vec<f64>, serde_json::Value) {
    let fusion = Fusion::fit(calibration_raw, &fusion_weights(calibration));
    let mut real_scores: Vec<f64> = calibration_raw
        .iter()
        .filter(|(_, fake)| !*fake)
        .map(|(raw, _)| fusion.probability(raw))
        .collect();
    real_scores.sort_by(|a, b| b.total_cmp(a));
    let aucs = calibration_aucs(calibration_raw, &fusion);
    (fusion, real_scores, aucs)
}

fn calibration_aucs(samples: &[(Raw, bool)], fusion: &Fusion) -> serde_json::Value {
    let auc = |score: &dyn Fn(&Raw) -> f64| {
        let scored: Vec<(f64, bool)> = samples.iter().map(|(r, f)| (score(r), *f)).collect();
        rounded_auc(&scored)
    };
    let mut aucs = json!({
        "geometry": auc(&|r| -f64::from(r.geometry)),
        "embedding": auc(&|r| -f64::from(r.embedding)),
        "classifier": auc(&|r| f64::from(r.classifier)),
        "fused": auc(&|r| fusion.probability(r)),
    });
    if samples.iter().all(|(r, _)| r.coarse.is_some()) && !samples.is_empty() {
        aucs["coarse"] = json!(auc(&|r| r.coarse.map_or(0.0, f64::from)));
    }
    aucs
}

/// ROC AUC of (score, is fake) pairs to four decimals, for the training record.
fn rounded_auc(scored: &[(f64, bool)]) -> Option<f64> {
    let of_class = |fake: bool| -> Vec<f64> {
        scored
            .iter()
            .filter(|(_, f)| *f == fake)
            .map(|(s, _)| *s)
            .collect()
    };
    roc_auc(&of_class(true), &of_class(false)).map(|a| (a * 1e4).round() / 1e4)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn observations(sizes: &[(&str, bool, usize)]) -> Vec<Observation> {
        sizes
            .iter()
            .flat_map(|&(source, fake, n)| {
                (0..n).map(move |_| Observation {
                    fake,
                    stylegan: false,
                    source: source.into(),
                    degraded: false,
                    landmarks: [0.0; 10],
                    thumbnail: Vec::new(),
                    crop: Vec::new(),
                    coarse_crop: Vec::new(),
                })
            })
            .collect()
    }

    fn mass_per_source(obs: &[Observation], weights: &[f64]) -> BTreeMap<String, f64> {
        let mut mass = BTreeMap::new();
        for (o, w) in obs.iter().zip(weights) {
            *mass.entry(o.source.clone()).or_default() += w;
        }
        mass
    }

    #[test]
    fn erasing_paints_one_mean_coloured_rectangle_or_nothing() {
        let side = 64;
        let crop: Vec<u8> = (0..3 * side * side).map(|i| (i % 7) as u8).collect();
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let untouched = rng.clone();
        let mut same = crop.clone();
        erase_random_rectangle(&mut same, side, 0.0, &mut rng);
        assert_eq!(same, crop);
        assert_eq!(rng, untouched, "no erasing must draw no numbers");
        for _ in 0..50 {
            let mut erased = crop.clone();
            erase_random_rectangle(&mut erased, side, 1.0, &mut rng);
            for (ch, fill) in MEAN_BYTES.into_iter().enumerate() {
                let plane = &erased[ch * side * side..][..side * side];
                let painted: Vec<(usize, usize)> = (0..side * side)
                    .filter(|&i| plane[i] == fill)
                    .map(|i| (i / side, i % side))
                    .collect();
                let rows = painted.iter().map(|p| p.0);
                let cols = painted.iter().map(|p| p.1);
                let (top, bottom) = (rows.clone().min().unwrap_or(0), rows.max().unwrap_or(0));
                let (left, right) = (cols.clone().min().unwrap_or(0), cols.max().unwrap_or(0));
                let box_area = (bottom - top + 1) * (right - left + 1);
                assert_eq!(painted.len(), box_area, "one solid rectangle");
                let share = box_area as f64 / (side * side) as f64;
                assert!((0.015..0.27).contains(&share), "{share} of the crop");
                let aspect = (bottom - top + 1) as f64 / (right - left + 1) as f64;
                assert!((0.3..3.4).contains(&aspect), "aspect {aspect}");
            }
            let outside = erased.iter().zip(&crop).filter(|(e, c)| e != c).count();
            assert!(outside > 0);
        }
    }

    #[test]
    fn drop_rates_are_checked_before_any_image_is_read() {
        let mut config = TrainConfig::new(PathBuf::from("/nonexistent/manifest.csv"));
        assert!(check_config(&config).is_ok());
        config.regularisation = Regularisation {
            drop_path: 0.2,
            dropout: 0.2,
        };
        assert!(check_config(&config).is_ok());
        for (drop_path, dropout) in [(0.6, 0.0), (0.0, -0.1), (0.0, f32::NAN)] {
            config.regularisation = Regularisation { drop_path, dropout };
            let refused = check_config(&config).expect_err("out of range");
            assert!(
                refused.to_string().contains("must each be 0 to 0.5"),
                "{refused}"
            );
        }
        config.regularisation = Regularisation {
            drop_path: 0.0,
            dropout: 0.2,
        };
        config.lite_input_side = None;
        config.crop_side = crate::align::CROP_SIDE;
        let refused = check_config(&config).expect_err("small network");
        assert!(refused.to_string().contains("a Lite only"), "{refused}");
        config.regularisation = Regularisation::default();
        assert!(check_config(&config).is_ok());
        config.lite_input_filter = InputFilter::Residual;
        let refused = check_config(&config).expect_err("filter for the small network");
        assert!(refused.to_string().contains("input filter"), "{refused}");
        config.lite_input_filter = InputFilter::Plain;
        config.erase = 1.5;
        let refused = check_config(&config).expect_err("erase chance");
        assert!(
            refused.to_string().contains("erase chance 1.5"),
            "{refused}"
        );
        config.erase = 0.0;
        config.source_weights.insert("ffhq".into(), 0.0);
        let refused = check_config(&config).expect_err("source weight");
        assert!(refused.to_string().contains("for ffhq"), "{refused}");
    }

    #[test]
    fn classifier_weighs_sources_equally_and_fusion_by_square_root() {
        let obs = observations(&[
            ("utk", false, 400),
            ("ffhq", false, 4),
            ("sg", true, 100),
            ("sd", true, 25),
        ]);
        let refs: Vec<&Observation> = obs.iter().collect();
        let close = |a: f64, b: f64| (a - b).abs() < 1e-9;

        let equal = mass_per_source(&obs, &sample_weights(&refs, &BTreeMap::new()));
        assert!(
            close(equal["utk"], 0.25) && close(equal["ffhq"], 0.25),
            "{equal:?}"
        );
        assert!(
            close(equal["sg"], 0.25) && close(equal["sd"], 0.25),
            "{equal:?}"
        );

        let harder = BTreeMap::from([("ffhq".to_owned(), 3.0)]);
        let weighted = mass_per_source(&obs, &sample_weights(&refs, &harder));
        assert!(
            close(weighted["ffhq"], 0.375) && close(weighted["utk"], 0.125),
            "{weighted:?}"
        );
        assert!(
            close(weighted["sg"], 0.25) && close(weighted["sd"], 0.25),
            "{weighted:?}"
        );

        let root = mass_per_source(&obs, &fusion_weights(&refs));
        assert!(close(root["utk"] + root["ffhq"], 0.5), "{root:?}");
        assert!(close(root["utk"] / root["ffhq"], 10.0), "{root:?}");
        assert!(close(root["sg"] / root["sd"], 2.0), "{root:?}");
    }

    #[test]
    fn focal_loss_is_cross_entropy_at_zero_and_weighs_confident_faces_down() {
        let logits = Tensor::new(&[4.0f32, -4.0, 0.5, -0.5], &Device::Cpu).expect("t");
        let labels = Tensor::new(&[1.0f32, 1.0, 1.0, 0.0], &Device::Cpu).expect("t");
        let scalar = |t: Tensor| t.to_scalar::<f32>().expect("scalar");
        let plain = scalar(logistic_loss(&logits, &labels).expect("plain"));
        let zero = scalar(focal_loss(&logits, &labels, 0.0).expect("zero"));
        assert!((plain - zero).abs() < 1e-6, "{plain} vs {zero}");
        // Per face: the confident right answer (logit 4 for a fake) keeps (1 - p)^2 of its
        // loss, about 3e-4; the confident wrong one (logit -4) about 96%.
        let per_face = |logit: f32, label: f32| {
            let x = Tensor::new(&[logit], &Device::Cpu).expect("t");
            let y = Tensor::new(&[label], &Device::Cpu).expect("t");
            let full = scalar(logistic_loss(&x, &y).expect("plain"));
            scalar(focal_loss(&x, &y, 2.0).expect("focal")) / full
        };
        let right = per_face(4.0, 1.0);
        let wrong = per_face(-4.0, 1.0);
        assert!(
            right < 1e-3 && (0.9..1.0).contains(&wrong),
            "{right} {wrong}"
        );
        // Its gradient exists and points the right way.
        let x = Var::from_tensor(&logits).expect("var");
        let grads = focal_loss(x.as_tensor(), &labels, 2.0)
            .and_then(|l| l.backward())
            .expect("backward");
        let g: Vec<f32> = grads.get(&x).expect("grad").to_vec1().expect("v");
        assert!(g[1] < 0.0 && g[3] > 0.0 && g[0].abs() < g[1].abs(), "{g:?}");
    }
}
