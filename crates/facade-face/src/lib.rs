//! # facade-face: faces and their five landmarks
//!
//! This crate owns the step from an upright RGB image (see `facade-image`) to the faces in it:
//! for each, a box, a confidence and five landmarks (left eye, right eye, nose, left and right
//! mouth corner) in pixels of the original image. It knows nothing about AI-made faces; the
//! detectors downstream judge the faces it finds.
//!
//! The detector is MTCNN (Zhang et al. 2016) with the weights published in facenet-pytorch
//! 2.6.0, converted by `scripts/convert_mtcnn_weights.py` and embedded in the binary, running on
//! candle's CPU backend ([`mtcnn`] holds the networks as plain modules, [`cascade`] the
//! three-stage search, [`boxes`] its box arithmetic). Compared with facenet-pytorch it fixes the
//! landmarks of faces that run past the frame and searches profile-picture-sized faces on a
//! downscaled copy; [`DetectorConfig::reference`] turns the latter off for comparisons.
//!
//! ```no_run
//! use facade_face::{DetectorConfig, FaceDetector};
//! let detector = FaceDetector::new(DetectorConfig::default())?;
//! let image = facade_image::RgbImage::new(200, 200);
//! for face in detector.detect(&image)? {
//!     println!("{:?} {:.3} eyes {:?} {:?}", face.bbox, face.confidence,
//!              face.landmarks[0], face.landmarks[1]);
//! }
//! # Ok::<(), facade_face::DetectError>(())
//! ```

pub mod boxes;
pub mod cascade;
pub mod mtcnn;

pub use cascade::{DetectError, DetectorConfig, Face, FaceDetector, MinFace, DEFAULT_MAX_FACES};
