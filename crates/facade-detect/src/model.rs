//! The trained detectors as one bundle: loading, saving, and scoring a face.
//!
//! A model directory holds three files, all written by `facade train`:
//! - `detectors.safetensors`: the classifiers' weights (the coarse branch's under `coarse.`) and
//!   the embedding's mean and components, by name;
//! - `detectors.json`: the geometry Gaussian, the fusion weights, the calibration reals' fused
//!   scores (from which the operating point for any false-positive rate is read) and a record
//!   of how the model was trained;
//! - `training-set.sha256`: the SHA-256 of every image used to fit any part of the model, so
//!   that `facade eval` can refuse to report on them.
//!
//! The model committed in `crates/facade-detect/model/` is embedded in the binary.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use facade_face::Face;
use facade_image::RgbImage;
use serde::{Deserialize, Serialize};

use crate::align::{aligned_crop, CropFrame, Jitter, ZOOM, ZOOMS};
use crate::cascade::{MirrorBand, MirrorCascade, PROTECTED_FPRS};
use crate::classifier::{Architecture, ClassifierEnsemble, ViewSums, MAX_MEMBERS, MAX_WIDTH};
use crate::embedding::{frame_thumbnail, FrameEmbedding, COMPONENTS, FRAME_SIDE};
use crate::fingerprint::fingerprint;
use crate::fusion::{threshold_for_fpr, Contribution, Fusion, Raw};
use crate::geometry::{normalized_landmarks, GeometryModel};
use crate::lite;

pub const WEIGHTS_FILE: &str = "detectors.safetensors";
pub const PARAMETERS_FILE: &str = "detectors.json";
pub const TRAINING_SET_FILE: &str = "training-set.sha256";
/// Where a coarse branch keeps its weights in `detectors.safetensors`, and its training record
/// in `detectors.json`'s `training`.
pub const COARSE_PREFIX: &str = "coarse";

const EMBEDDED_WEIGHTS: &[u8] = include_bytes!("../model/detectors.safetensors");
const EMBEDDED_PARAMETERS: &str = include_str!("../model/detectors.json");
const EMBEDDED_TRAINING_SET: &str = include_str!("../model/training-set.sha256");
/// The embedded model's [`fingerprint`] of its weights and parameters, computed by `build.rs`.
const EMBEDDED_FINGERPRINT: &str = include_str!(concat!(env!("OUT_DIR"), "/embedded-fingerprint"));

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("reading model file {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("model parameters are not valid JSON: {0}")]
    Parameters(#[from] serde_json::Error),
    #[error("model weights: {0}")]
    Weights(#[from] candle_core::Error),
    #[error("model is inconsistent: {0}")]
    Inconsistent(String),
}

/// Everything in `detectors.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Parameters {
    pub geometry: GeometryModel,
    pub fusion: Fusion,
    /// Fused scores of the calibration set's real faces, descending.
    pub calibration_real_scores: Vec<f64>,
    /// How far the mirror view moved calibration faces' fused scores, so that scanning can
    /// skip it far from every operating point (models without it read both views of every
    /// face).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mirror_cascade: Option<MirrorCascade>,
    /// How the model was made (data, seed, sizes), for the record.
    pub training: serde_json::Value,
}

/// The trained detectors.
#[derive(Debug, Clone)]
pub struct Detectors {
    parameters: Parameters,
    embedding: FrameEmbedding,
    /// The classifier and the side of the aligned crops it was trained on, and so reads.
    main: Branch,
    /// A second classifier on another crop (smaller, or wider), whose logit is a fourth
    /// feature of the fusion.
    coarse: Option<Branch>,
    training_set: Vec<String>,
    /// 16 hex digits of the SHA-256 of the weights and parameters: which model this is.
    fingerprint: String,
    /// Where the mirror view is read ([`crate::cascade`]); `None`: for every face.
    mirror_band: Option<MirrorBand>,
}

/// A classifier and the aligned face crop it reads.
#[derive(Debug, Clone)]
pub struct Branch {
    pub classifier: ClassifierEnsemble,
    pub crop: CropFrame,
}

impl Branch {
    /// Loads the classifier a training record describes, from weights under `vb`.
    fn load(vb: &VarBuilder, record: &serde_json::Value) -> Result<Branch, ModelError> {
        let architecture = classifier_architecture(record)?;
        let classifier = ClassifierEnsemble::load(vb, classifier_members(record)?, architecture)?;
        let crop = CropFrame {
            side: recorded_crop_side(record, architecture)?,
            zoom: recorded_crop_zoom(record)?,
        };
        Ok(Branch { classifier, crop })
    }

    /// The aligned crop of each face of the image, and the branch's logits on them (the crops
    /// as they are, not mirrored).
    fn first_view(&self, image: &RgbImage, faces: &[Face]) -> Result<FirstView, ModelError> {
        let crops: Vec<Vec<u8>> = faces
            .iter()
            .map(|face| aligned_crop(image, &face.landmarks, Jitter::default(), self.crop).pixels)
            .collect();
        let plain = self
            .classifier
            .view_sums(&crops.iter().map(Vec::as_slice).collect::<Vec<_>>(), false)?;
        Ok(FirstView { crops, plain })
    }

    /// The branch's logit over both views for faces `which` (indices into the first view's
    /// crops), after reading their mirror images.
    fn both_views(&self, first: &FirstView, which: &[usize]) -> Result<Vec<f32>, ModelError> {
        let crops: Vec<&[u8]> = which.iter().map(|&i| first.crops[i].as_slice()).collect();
        let mirror = self.classifier.view_sums(&crops, true)?;
        Ok(which
            .iter()
            .zip(&mirror.sums)
            .map(|(&i, &sum)| first.plain.both_views(i, sum))
            .collect())
    }
}

/// A branch's aligned crops of an image's faces and its logits on them, not mirrored.
struct FirstView {
    crops: Vec<Vec<u8>>,
    plain: ViewSums,
}

/// An image is as suspicious as its most suspicious face; `None` when it has no face.
pub fn most_suspicious(scores: &[FaceScore]) -> Option<f64> {
    scores.iter().map(|s| s.score).reduce(f64::max)
}

/// One face's verdict material: the fused score and each detector's evidence.
#[derive(Debug, Clone, PartialEq)]
pub struct FaceScore {
    pub score: f64,
    pub evidence: Vec<Contribution>,
    /// Whether the classifiers read the crop's mirror image as well as the crop (always, in
    /// models without a cascade; near an operating point, in models with one).
    pub mirror_read: bool,
}

impl Detectors {
    /// The model committed with the source, embedded in the binary.
    pub fn embedded() -> Result<Detectors, ModelError> {
        Detectors::from_parts(
            EMBEDDED_WEIGHTS,
            EMBEDDED_PARAMETERS,
            EMBEDDED_TRAINING_SET,
            EMBEDDED_FINGERPRINT.to_owned(),
        )
    }

    /// A model directory written by `facade train`.
    pub fn load(dir: &Path) -> Result<Detectors, ModelError> {
        let read = |name: &str| {
            let path = dir.join(name);
            std::fs::read(&path).map_err(|source| ModelError::Io {
                path: path.display().to_string(),
                source,
            })
        };
        let parameters = String::from_utf8_lossy(&read(PARAMETERS_FILE)?).into_owned();
        let training_set = String::from_utf8_lossy(&read(TRAINING_SET_FILE)?).into_owned();
        let weights = read(WEIGHTS_FILE)?;
        let fingerprint = fingerprint(&weights, parameters.as_bytes());
        Detectors::from_parts(&weights, &parameters, &training_set, fingerprint)
    }

    fn from_parts(
        weights: &[u8],
        parameters: &str,
        training_set: &str,
        fingerprint: String,
    ) -> Result<Detectors, ModelError> {
        let parameters: Parameters = serde_json::from_str(parameters)?;
        let vb = VarBuilder::from_slice_safetensors(weights, DType::F32, &Device::Cpu)?;
        let main = Branch::load(&vb, &parameters.training)?;
        let coarse = match parameters.training.get(COARSE_PREFIX) {
            Some(record) => Some(Branch::load(&vb.pp(COARSE_PREFIX), record)?),
            None => None,
        };
        let fusion = &parameters.fusion;
        if !fusion.is_consistent() || fusion.detectors() != 3 + usize::from(coarse.is_some()) {
            return Err(ModelError::Inconsistent(format!(
                "the fusion reads {} detectors; the model has {}",
                fusion.detectors(),
                3 + usize::from(coarse.is_some())
            )));
        }
        let dim = FRAME_SIDE * FRAME_SIDE;
        let embedding = FrameEmbedding {
            mean: vb.get(dim, "embedding.mean")?.to_vec1()?,
            components: vb
                .get((COMPONENTS, dim), "embedding.components")?
                .flatten_all()?
                .to_vec1()?,
        };
        if parameters.geometry.mean.len() != 10 || parameters.geometry.precision.len() != 100 {
            return Err(ModelError::Inconsistent(
                "geometry must have 10 dimensions".into(),
            ));
        }
        let training_set = training_set
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect();
        Ok(Detectors {
            parameters,
            embedding,
            main,
            coarse,
            training_set,
            fingerprint,
            mirror_band: None,
        }
        .with_protected_operating_points(&PROTECTED_FPRS))
    }

    /// The mirror band around the thresholds of `fprs` (no band without a cascade).
    fn with_protected_operating_points(mut self, fprs: &[f64]) -> Detectors {
        let thresholds: Vec<f64> = fprs.iter().map(|&fpr| self.threshold(fpr)).collect();
        self.mirror_band = self
            .parameters
            .mirror_cascade
            .as_ref()
            .map(|cascade| cascade.band(&thresholds));
        self
    }

    /// Reads the mirror view near the operating point at `fpr` too, beside
    /// [`PROTECTED_FPRS`]' (the judge calls this with the verdict's rate). A model reading
    /// every view goes on doing so.
    pub fn protect_operating_point(self, fpr: f64) -> Detectors {
        if self.mirror_band.is_none() {
            return self;
        }
        let mut fprs = PROTECTED_FPRS.to_vec();
        fprs.push(fpr);
        self.with_protected_operating_points(&fprs)
    }

    /// Reads the mirror view of every face, whatever the model's cascade (`--every-view`).
    pub fn reading_every_view(mut self) -> Detectors {
        self.mirror_band = None;
        self
    }

    /// Whether a model with a mirror cascade was told to read every view anyway (its scores
    /// differ from the cascade's, so stored records must not be shared between the two).
    pub fn skips_its_cascade(&self) -> bool {
        self.parameters.mirror_cascade.is_some() && self.mirror_band.is_none()
    }

    /// Assembles a model from freshly fitted parts (training).
    pub fn from_fitted(
        parameters: Parameters,
        embedding: FrameEmbedding,
        classifier: ClassifierEnsemble,
        crop: CropFrame,
        coarse: Option<Branch>,
        training_set: Vec<String>,
    ) -> Detectors {
        Detectors {
            parameters,
            embedding,
            main: Branch { classifier, crop },
            coarse,
            training_set,
            // Not saved yet: a fingerprint comes with the files (`load`).
            fingerprint: "unsaved".into(),
            mirror_band: None,
        }
        .with_protected_operating_points(&PROTECTED_FPRS)
    }

    /// Writes the three model files into `dir` (created if needed).
    pub fn save(
        &self,
        dir: &Path,
        classifier_weights: &HashMap<String, Tensor>,
    ) -> Result<(), ModelError> {
        let io = |path: &Path| {
            let path = path.display().to_string();
            move |source| ModelError::Io { path, source }
        };
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        // Names as the training VarMaps have them: `classifier.conv0.weight`, ...
        let mut tensors: HashMap<String, Tensor> = classifier_weights.clone();
        let dim = FRAME_SIDE * FRAME_SIDE;
        tensors.insert(
            "embedding.mean".into(),
            Tensor::from_vec(self.embedding.mean.clone(), dim, &Device::Cpu)?,
        );
        tensors.insert(
            "embedding.components".into(),
            Tensor::from_vec(
                self.embedding.components.clone(),
                (COMPONENTS, dim),
                &Device::Cpu,
            )?,
        );
        candle_core::safetensors::save(&tensors, dir.join(WEIGHTS_FILE))?;
        let json = serde_json::to_string_pretty(&self.parameters)?;
        let path = dir.join(PARAMETERS_FILE);
        std::fs::write(&path, json + "\n").map_err(io(&path))?;
        let path = dir.join(TRAINING_SET_FILE);
        let mut hashes = self.training_set.clone();
        hashes.sort();
        std::fs::write(&path, hashes.join("\n") + "\n").map_err(io(&path))?;
        Ok(())
    }

    /// SHA-256 (hex) of every image used to fit this model.
    /// Which model this is: 16 hex digits of the hash of its weights and parameters.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    pub fn training_set(&self) -> &[String] {
        &self.training_set
    }

    pub fn parameters(&self) -> &Parameters {
        &self.parameters
    }

    /// The fused-score threshold at which a fraction `fpr` of the calibration reals is flagged.
    pub fn threshold(&self, fpr: f64) -> f64 {
        threshold_for_fpr(&self.parameters.calibration_real_scores, fpr)
    }

    /// The fused score and evidence for each face of an image. The whole-frame thumbnail is
    /// made once per image and the classifiers run on all the faces' crops in one batch, then
    /// on the mirror images of those whose score is near an operating point
    /// ([`crate::cascade`]).
    pub fn score_faces(
        &self,
        image: &RgbImage,
        faces: &[Face],
    ) -> Result<Vec<FaceScore>, ModelError> {
        if faces.is_empty() {
            return Ok(Vec::new());
        }
        let embedding = self.embedding.reconstruction_error(&frame_thumbnail(image));
        let main = self.main.first_view(image, faces)?;
        let coarse = match &self.coarse {
            Some(branch) => Some(branch.first_view(image, faces)?),
            None => None,
        };
        let main_logits = main.plain.one_view();
        let coarse_logits = coarse.as_ref().map(|c| c.plain.one_view());
        let mut raws: Vec<Raw> = faces
            .iter()
            .enumerate()
            .map(|(i, face)| {
                let landmarks =
                    normalized_landmarks(&face.landmarks, image.width(), image.height());
                Raw {
                    geometry: self.parameters.geometry.distance(&landmarks),
                    embedding,
                    classifier: main_logits[i],
                    coarse: coarse_logits.as_ref().map(|l| l[i]),
                }
            })
            .collect();
        let near: Vec<usize> = (0..faces.len())
            .filter(|&i| {
                self.mirror_band
                    .is_none_or(|band| band.reads(self.parameters.fusion.log_odds(&raws[i])))
            })
            .collect();
        if !near.is_empty() {
            let both = self.main.both_views(&main, &near)?;
            for (&i, logit) in near.iter().zip(both) {
                raws[i].classifier = logit;
            }
            if let (Some(branch), Some(first)) = (&self.coarse, &coarse) {
                for (&i, logit) in near.iter().zip(branch.both_views(first, &near)?) {
                    raws[i].coarse = Some(logit);
                }
            }
        }
        Ok(raws
            .iter()
            .enumerate()
            .map(|(i, raw)| FaceScore {
                mirror_read: near.contains(&i),
                ..self.fuse(raw)
            })
            .collect())
    }

    /// The main classifier and its crop.
    pub fn main_branch(&self) -> &Branch {
        &self.main
    }

    /// The coarse branch, in models that have one.
    pub fn coarse_branch(&self) -> Option<&Branch> {
        self.coarse.as_ref()
    }

    /// The frame embedding (the fusion's second detector).
    pub fn embedding(&self) -> &FrameEmbedding {
        &self.embedding
    }

    /// How many classifiers the model averages.
    pub fn classifier_members(&self) -> usize {
        self.main.classifier.members().len()
    }

    /// The fused score and evidence for a face's detector outputs (`mirror_read`: true, as if
    /// the classifier's value were the mean over both views).
    pub fn fuse(&self, raw: &Raw) -> FaceScore {
        FaceScore {
            score: self.parameters.fusion.probability(raw),
            evidence: self.parameters.fusion.contributions(raw),
            mirror_read: true,
        }
    }
}

/// The classifiers' network as the model's record names it: `classifier_backbone` "lite0",
/// "lite1" or "lite2" with its input side (`lite_input_side`; models before Lite1 wrote
/// `lite0_input_side`), or (absent or "small") the small network at `classifier_width`; models
/// from before widths were chosen have width 1 and do not record it.
fn classifier_architecture(record: &serde_json::Value) -> Result<Architecture, ModelError> {
    let name = record.get("classifier_backbone").and_then(|v| v.as_str());
    let Some(variant) = name.and_then(lite::Variant::named) else {
        return match name {
            None | Some("small") => Ok(Architecture::Small {
                width: recorded_size(record, "classifier_width", MAX_WIDTH)?,
            }),
            Some(other) => Err(ModelError::Inconsistent(format!(
                "unknown classifier_backbone {other:?} (this build knows \"small\", \"lite0\", \
                 \"lite1\" and \"lite2\")"
            ))),
        };
    };
    let filter = recorded_input_filter(record)?;
    ["lite_input_side", "lite0_input_side"]
        .iter()
        .find_map(|key| record.get(*key).and_then(|v| v.as_u64()))
        .and_then(|n| usize::try_from(n).ok())
        .filter(|n| (lite::MIN_INPUT_SIDE..=lite::MAX_INPUT_SIDE).contains(n))
        .map(|input_side| Architecture::Lite {
            variant,
            input_side,
            filter,
        })
        .ok_or_else(|| {
            ModelError::Inconsistent(format!(
                "lite_input_side must be {} to {}",
                lite::MIN_INPUT_SIDE,
                lite::MAX_INPUT_SIDE
            ))
        })
}

/// What a Lite is shown of its crops (`lite_input_filter`); models from before stop 38 see the
/// crop itself and do not record it. A filter this build does not know is refused: the model
/// would load and judge crops it was never shown.
fn recorded_input_filter(record: &serde_json::Value) -> Result<lite::InputFilter, ModelError> {
    match record.get("lite_input_filter") {
        None | Some(serde_json::Value::Null) => Ok(lite::InputFilter::Plain),
        Some(recorded) => recorded
            .as_str()
            .and_then(lite::InputFilter::named)
            .ok_or_else(|| {
                ModelError::Inconsistent(format!(
                    "unknown lite_input_filter {recorded} (this build knows \"plain\" and \"residual\")"
                ))
            }),
    }
}

/// The side of the crops the classifier was trained on. A model read at another side would
/// load and silently judge wrongly, so the record must name one its network reads
/// ([`Architecture::reads_crop_side`]).
fn recorded_crop_side(
    record: &serde_json::Value,
    architecture: Architecture,
) -> Result<usize, ModelError> {
    let recorded = record
        .get("crop_side")
        .and_then(|v| v.as_u64())
        .and_then(|n| usize::try_from(n).ok());
    recorded
        .filter(|&side| architecture.reads_crop_side(side))
        .ok_or_else(|| {
            ModelError::Inconsistent(format!(
                "the classifier was trained on {} px face crops; its network ({}) reads {}",
                recorded.map_or("unrecorded".to_owned(), |s| s.to_string()),
                architecture.describe().0,
                architecture.crop_sides_read()
            ))
        })
}

/// How close the classifier's crops are taken ([`CropFrame::zoom`]); models from before stop 33
/// read the inner face at [`ZOOM`] and do not record it.
fn recorded_crop_zoom(record: &serde_json::Value) -> Result<f32, ModelError> {
    let Some(recorded) = record.get("crop_zoom") else {
        return Ok(ZOOM);
    };
    recorded
        .as_f64()
        .map(|zoom| zoom as f32)
        .filter(|zoom| ZOOMS.contains(zoom))
        .ok_or_else(|| {
            ModelError::Inconsistent(format!(
                "crop_zoom {recorded} is not a zoom from {} to {}",
                ZOOMS.start(),
                ZOOMS.end()
            ))
        })
}

/// The number of classifiers the model's record names; models from before ensembles had one
/// and do not record it.
fn classifier_members(record: &serde_json::Value) -> Result<usize, ModelError> {
    recorded_size(record, "classifier_members", MAX_MEMBERS)
}

/// A size the training record names, 1 to `max`; 1 when the record predates the field.
fn recorded_size(record: &serde_json::Value, field: &str, max: usize) -> Result<usize, ModelError> {
    let recorded = record.get(field);
    let size = match recorded {
        None => Some(1),
        Some(v) => v.as_u64().and_then(|n| usize::try_from(n).ok()),
    };
    match size {
        Some(n) if (1..=max).contains(&n) => Ok(n),
        _ => Err(ModelError::Inconsistent(format!(
            "{field} must be 1 to {max}, the model records {}",
            recorded.map_or_else(String::new, |v| v.to_string())
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use facade_face::{DetectorConfig, FaceDetector};

    /// The astronaut photograph bundled with the examples, and its faces.
    fn astronaut() -> (RgbImage, Vec<Face>) {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/astronaut-400.jpg");
        let bytes = std::fs::read(&path).expect("bundled example");
        let image = facade_image::decode(&bytes, &facade_image::DecodeLimits::default())
            .expect("decodes")
            .image;
        let faces = FaceDetector::new(DetectorConfig::default())
            .expect("face detector")
            .detect(&image)
            .expect("faces");
        assert!(!faces.is_empty(), "the astronaut has a face");
        (image, faces)
    }

    fn cascade(margin: f64) -> MirrorCascade {
        MirrorCascade {
            margin,
            faces: 1,
            median_shift: 0.0,
            p99_shift: 0.0,
            share_read: 1.0,
        }
    }

    /// An image of more faces than one forward pass reads is scored in passes of a few crops,
    /// and each face gets the score it gets alone: the same face seven times over (two passes
    /// of four and three) scores as the face does by itself, to the last digit a record shows.
    #[test]
    fn many_faces_are_scored_in_passes_and_each_as_alone() {
        let (image, faces) = astronaut();
        let detectors = Detectors::embedded()
            .expect("built-in model")
            .reading_every_view();
        let alone = detectors.score_faces(&image, &faces[..1]).expect("scores")[0].score;
        let many = vec![faces[0]; 2 * crate::classifier::CROPS_PER_PASS - 1];
        let scores = detectors.score_faces(&image, &many).expect("scores");
        assert_eq!(scores.len(), many.len());
        for score in scores {
            assert!(
                (score.score - alone).abs() < 5e-6,
                "{} against {alone}",
                score.score
            );
        }
    }

    /// A face inside the mirror band gets exactly the score of reading both views everywhere;
    /// a face outside it is scored on its crop alone, which is a different number.
    #[test]
    fn the_mirror_is_read_inside_the_band_and_skipped_outside_it() {
        let (image, faces) = astronaut();
        let every = Detectors::embedded()
            .expect("built-in model")
            .reading_every_view();
        let both = every.score_faces(&image, &faces).expect("scores");
        assert!(both.iter().all(|s| s.mirror_read));

        let mut everywhere = every.clone();
        everywhere.mirror_band = Some(cascade(f64::INFINITY).band(&[0.5]));
        assert_eq!(
            everywhere.score_faces(&image, &faces).expect("scores"),
            both
        );

        // A band of width zero at log-odds 0: no face's one-view score sits exactly there.
        let mut nowhere = every.clone();
        nowhere.mirror_band = Some(cascade(0.0).band(&[0.5]));
        let alone = nowhere.score_faces(&image, &faces).expect("scores");
        for (one, two) in alone.iter().zip(&both) {
            assert!(!one.mirror_read);
            assert_ne!(
                one.score, two.score,
                "the mirror view moves every score a little"
            );
        }
    }

    /// The built-in model carries a cascade measured on its calibration fold, and the judge's
    /// own operating point widens the band: at a threshold on the face's own score the mirror
    /// must be read.
    #[test]
    fn the_built_in_model_reads_the_mirror_near_its_operating_points() {
        let model = Detectors::embedded().expect("built-in model");
        let cascade = model
            .parameters()
            .mirror_cascade
            .clone()
            .expect("the built-in model has a mirror cascade");
        assert!(cascade.margin > 0.0 && cascade.margin < 5.0, "{cascade:?}");
        assert!(model.mirror_band.is_some());
        let (image, faces) = astronaut();
        let both = model
            .clone()
            .reading_every_view()
            .score_faces(&image, &faces)
            .expect("scores");
        for (scored, reference) in model
            .score_faces(&image, &faces)
            .expect("scores")
            .iter()
            .zip(&both)
        {
            if scored.mirror_read {
                assert_eq!(scored, reference);
            }
        }
        // The operating point whose threshold is the face's own score.
        let mut at_the_face = model.clone();
        at_the_face.mirror_band = Some(cascade.band(&[both[0].score]));
        assert!(at_the_face.score_faces(&image, &faces).expect("scores")[0].mirror_read);
        // `protect_operating_point` keeps a model that reads every view doing so.
        assert!(!model.skips_its_cascade());
        let every = model.reading_every_view().protect_operating_point(0.05);
        assert!(every.mirror_band.is_none() && every.skips_its_cascade());
    }

    /// The embedded model's fingerprint, computed at build time, is the one `Detectors::load`
    /// computes for the same files at run time.
    #[test]
    fn the_embedded_fingerprint_is_the_files_own() {
        assert_eq!(
            EMBEDDED_FINGERPRINT,
            fingerprint(EMBEDDED_WEIGHTS, EMBEDDED_PARAMETERS.as_bytes())
        );
        assert_eq!(EMBEDDED_FINGERPRINT.len(), 16);
    }

    /// Scoring's narrow half-precision products ([`crate::narrow`]) give the logits candle's
    /// f32 products give, up to the weights' rounding: each branch of the built-in model, loaded
    /// once as plain tensors (as a scan loads it) and once as variables (as training holds it),
    /// scores the astronaut's face, crop and mirror, within 0.01 in log-odds.
    #[test]
    fn scoring_and_training_products_give_the_same_logits() {
        let tensors = candle_core::safetensors::load_buffer(EMBEDDED_WEIGHTS, &Device::Cpu)
            .expect("built-in weights");
        let variables = candle_nn::VarMap::new();
        {
            let mut data = variables.data().lock().expect("variables");
            for (name, tensor) in &tensors {
                let variable = candle_core::Var::from_tensor(tensor).expect("variable");
                data.insert(name.clone(), variable);
            }
        }
        let plain = VarBuilder::from_tensors(tensors, DType::F32, &Device::Cpu);
        let tracked = VarBuilder::from_varmap(&variables, DType::F32, &Device::Cpu);
        let parameters: Parameters =
            serde_json::from_str(EMBEDDED_PARAMETERS).expect("built-in parameters");
        let coarse = parameters
            .training
            .get(COARSE_PREFIX)
            .expect("a coarse branch");
        let (image, faces) = astronaut();
        for (prefix, record) in [(None, &parameters.training), (Some(COARSE_PREFIX), coarse)] {
            let (plain, tracked) = match prefix {
                Some(p) => (plain.pp(p), tracked.pp(p)),
                None => (plain.clone(), tracked.clone()),
            };
            let scoring = Branch::load(&plain, record).expect("plain branch");
            let training = Branch::load(&tracked, record).expect("variable branch");
            let (first, reference) = (
                scoring.first_view(&image, &faces).expect("scored"),
                training.first_view(&image, &faces).expect("scored"),
            );
            let all: Vec<usize> = (0..faces.len()).collect();
            let pairs = [
                (first.plain.sums.clone(), reference.plain.sums.clone()),
                (
                    scoring.both_views(&first, &all).expect("both"),
                    training.both_views(&reference, &all).expect("both"),
                ),
            ];
            for (narrow, candle) in pairs {
                for (n, c) in narrow.iter().zip(&candle) {
                    eprintln!("{prefix:?}: {n} against {c}");
                    assert!((n - c).abs() < 0.01, "{prefix:?}: {n} against {c}");
                }
            }
        }
    }

    /// FFHQ photographs are aligned exactly as StyleGAN output is, so perfect StyleGAN
    /// alignment must not flag a face by itself: with the landmarks at the StyleGAN mean and
    /// the classifiers and the embedding at their calibration means (where they contribute
    /// nothing to the log-odds), the built-in model's score stays below the 1% operating point.
    #[test]
    fn alignment_alone_does_not_flag_a_face() {
        let model = Detectors::embedded().expect("built-in model");
        let fusion = &model.parameters().fusion;
        let aligned_undecided = Raw {
            geometry: 0.0,
            embedding: fusion.feature_mean[1].exp() as f32,
            classifier: fusion.feature_mean[2] as f32,
            coarse: fusion.feature_mean.get(3).map(|&m| m as f32),
        };
        let scored = model.fuse(&aligned_undecided);
        for c in &scored.evidence[1..] {
            assert!(c.log_odds.abs() < 1e-4, "{c:?}");
        }
        let threshold = model.threshold(0.01);
        eprintln!(
            "alignment alone: {:.4}; 1% operating point {threshold:.4}",
            scored.score
        );
        assert!(
            scored.score <= threshold,
            "alignment alone scores {:.4}, above the 1% operating point {threshold:.4}",
            scored.score
        );
    }

    /// A record names its network: Lite variants by name with their input side (the key
    /// models before Lite1 wrote still read), the small network by default; an unknown name or
    /// a side out of range is refused.
    #[test]
    fn the_record_names_the_classifiers_network() {
        let read = |record: serde_json::Value| classifier_architecture(&record);
        let lite = |variant, input_side| Architecture::Lite {
            variant,
            input_side,
            filter: lite::InputFilter::Plain,
        };
        let got = read(serde_json::json!({"classifier_backbone": "lite1", "lite_input_side": 64}));
        assert_eq!(got.expect("lite1"), lite(lite::Variant::Lite1, 64));
        let got =
            read(serde_json::json!({"classifier_backbone": "lite0", "lite0_input_side": 128}));
        assert_eq!(got.expect("older record"), lite(lite::Variant::Lite0, 128));
        let got = read(serde_json::json!({"classifier_backbone": "lite2", "lite_input_side": 96}));
        assert_eq!(got.expect("lite2"), lite(lite::Variant::Lite2, 96));
        let got = read(serde_json::json!({}));
        assert_eq!(got.expect("small"), Architecture::Small { width: 1 });
        let got = read(
            serde_json::json!({"classifier_backbone": "lite0", "lite_input_side": 64,
                                          "lite_input_filter": "residual"}),
        );
        let residual = Architecture::Lite {
            variant: lite::Variant::Lite0,
            input_side: 64,
            filter: lite::InputFilter::Residual,
        };
        assert_eq!(got.expect("residual"), residual);
        let got = read(
            serde_json::json!({"classifier_backbone": "lite0", "lite_input_side": 64,
                                          "lite_input_filter": null}),
        );
        assert_eq!(got.expect("plain"), lite(lite::Variant::Lite0, 64));
        let refused = read(serde_json::json!({"classifier_backbone": "lite0",
                                              "lite_input_side": 64, "lite_input_filter": "fft"}))
        .expect_err("unknown filter");
        assert!(refused.to_string().contains("fft"), "{refused}");
        let refused =
            read(serde_json::json!({"classifier_backbone": "lite3", "lite_input_side": 64}))
                .expect_err("unknown");
        assert!(refused.to_string().contains("lite3"), "{refused}");
        let refused =
            read(serde_json::json!({"classifier_backbone": "lite1", "lite_input_side": 1000}))
                .expect_err("side");
        assert!(refused.to_string().contains("lite_input_side"), "{refused}");
    }
}
