//! # facade-detect: is this face made by a generator?
//!
//! This crate owns the step from a face (an image and the five landmarks `facade-face` found)
//! to a calibrated probability that the face is AI-generated, with the evidence behind it. It
//! knows nothing about accounts or networks.
//!
//! Three detectors, each a module with its own raw value:
//! - [`geometry`]: the landmarks' positions in the frame against the StyleGAN alignment,
//!   learned as a Gaussian over all five landmarks (Mahalanobis distance);
//! - [`embedding`]: how badly a linear embedding learned from synthetic images only
//!   reconstructs the frame (after Mundra et al. 2023);
//! - [`classifier`]: convolutional networks on the landmark-aligned face crop ([`align`]),
//!   which cannot see image size or framing: EfficientNet-Lite (0, 1 or 2) fine-tuned from ImageNet
//!   weights ([`lite`]), or the small network trained from scratch of earlier models, averaged
//!   over an ensemble when a model holds several. A model may hold a second, coarse branch:
//!   the same kind of network on a smaller crop of the same face, whose logit is a detector
//!   of its own (`facade fuse`, [`training::add_coarse_branch`]).
//!
//! [`fusion`] combines them by logistic regression fitted on a calibration set none of them
//! was trained on, and [`cascade`] reads the classifier's second view (the crop's mirror image)
//! only where it could change a verdict; [`model::Detectors`] bundles the trained parts (the committed model is
//! embedded in the binary). [`training`] rebuilds every learned part from a labelled manifest,
//! deterministically; [`dataset`] holds the manifest, the content-hash split and the
//! degradations (resizing, JPEG re-encoding) shared by training and evaluation, and
//! [`metrics`] the ROC figures; [`vectors`] runs the networks' hand-written loops on the CPU's
//! widest vector unit, and [`narrow`] their products with few columns when scoring.
//! [`judge::Judge`] runs the whole look at one image (decode, faces, scores, verdict) and
//! [`record::Record`] is what it says, as every front end writes it.

pub mod align;
pub mod cascade;
pub mod classifier;
pub mod dataset;
pub mod embedding;
pub mod evaluation;
mod fingerprint;
pub mod fusion;
pub mod geometry;
pub mod judge;
pub mod lite;
pub mod metrics;
pub mod model;
pub mod narrow;
pub mod record;
pub mod training;
pub mod vectors;

pub use fusion::Contribution;
pub use judge::{Judge, Judgement, JudgingPool, Scanned};
pub use model::{most_suspicious, Detectors, FaceScore, ModelError};
pub use record::{Record, Verdict};
