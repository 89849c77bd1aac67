//! The whole look at one image: decode within limits, find faces, score them, decide.
//!
//! `facade scan`, `facade networks --images` and the HTTP service all judge images through
//! [`Judge`], so that one image gets the same record whichever way it arrives.

use std::fs::File;
use std::io::Read;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

use facade_face::{DetectError, DetectorConfig, Face, FaceDetector};
use facade_image::{decode, DecodeLimits, RgbImage};

use crate::record::{round_score, FaceRecord, Record, Status, Verdict};
use crate::{most_suspicious, Detectors, FaceScore};

/// The face stage, the detectors, and the operating point.
pub struct Judge {
    faces: FaceDetector,
    fingerprint: String,
    /// The detectors and the score threshold of the operating point (none: faces only).
    scoring: Option<(Detectors, f64)>,
}

/// What the judge saw in one image.
pub struct Judgement {
    pub faces: Vec<Face>,
    /// Per face, in the order of `faces` (empty without the detectors).
    pub scores: Vec<FaceScore>,
    /// The most suspicious face's score and the verdict at the operating point.
    pub score: Option<f64>,
    pub verdict: Option<Verdict>,
}

impl Judge {
    /// The face stage with `config`; with `detectors`, scoring at the operating point whose
    /// false-positive rate on real faces is `fpr`.
    pub fn new(
        config: DetectorConfig,
        detectors: Option<(Detectors, f64)>,
    ) -> Result<Judge, DetectError> {
        let fingerprint = match &detectors {
            Some((detectors, fpr)) => format!("{}@fpr={fpr}", detectors.fingerprint()),
            None => "faces-only".to_owned(),
        };
        let fingerprint = format!("{fingerprint};min_face={:?}", config.min_face);
        let scoring = detectors.map(|(detectors, fpr)| {
            let threshold = detectors.threshold(fpr);
            (detectors, threshold)
        });
        Ok(Judge {
            faces: FaceDetector::new(config)?,
            fingerprint,
            scoring,
        })
    }

    /// What decides this judge's records (model, operating point, face size): two judges with
    /// the same fingerprint give the same record for the same bytes.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// Whether the detectors run (false: faces and landmarks only).
    pub fn scores_faces(&self) -> bool {
        self.scoring.is_some()
    }

    pub fn look(&self, image: &RgbImage) -> Result<Judgement, String> {
        let faces = self.faces.detect(image).map_err(|e| e.to_string())?;
        let Some((detectors, threshold)) = &self.scoring else {
            return Ok(Judgement {
                faces,
                scores: Vec::new(),
                score: None,
                verdict: None,
            });
        };
        let scores = detectors
            .score_faces(image, &faces)
            .map_err(|e| e.to_string())?;
        let score = most_suspicious(&scores).map(round_score);
        let verdict = score.map(|s| {
            if s > *threshold {
                Verdict::Ai
            } else {
                Verdict::Real
            }
        });
        Ok(Judgement {
            faces,
            scores,
            score,
            verdict,
        })
    }

    /// The record of one encoded image named `name`; every failure becomes an error record,
    /// a panic included.
    pub fn record_bytes(&self, name: &str, bytes: &[u8], limits: &DecodeLimits) -> Record {
        let mut record = self.guarded(name, || {
            let image = decode(bytes, limits).map_err(|e| e.to_string())?.image;
            Ok(self.record_image(name, &image)?.0)
        });
        record.sha256 = Some(sha256_hex(bytes));
        record
    }

    /// The record of one image file, read no further than the size limit.
    pub fn record_file(&self, path: &Path, limits: &DecodeLimits) -> Record {
        let name = path.to_string_lossy();
        match read_limited(path, limits.max_file_bytes) {
            Ok(bytes) => self.record_bytes(&name, &bytes, limits),
            Err(error) => Record::failed(name.into_owned(), error),
        }
    }

    /// The record of a decoded image, with the judgement behind it.
    pub fn record_image(
        &self,
        name: &str,
        image: &RgbImage,
    ) -> Result<(Record, Judgement), String> {
        let judged = self.look(image)?;
        let faces: Vec<FaceRecord> = if judged.scores.is_empty() {
            judged.faces.iter().map(FaceRecord::from).collect()
        } else {
            let pairs = judged.faces.iter().zip(&judged.scores);
            pairs.map(|(f, s)| FaceRecord::scored(f, s)).collect()
        };
        let record = Record {
            path: name.to_owned(),
            sha256: None,
            status: if faces.is_empty() {
                Status::NoFace
            } else {
                Status::Ok
            },
            width: Some(image.width()),
            height: Some(image.height()),
            score: judged.score,
            verdict: judged.verdict,
            faces,
            error: None,
        };
        Ok((record, judged))
    }

    fn guarded(&self, name: &str, scan: impl FnOnce() -> Result<Record, String>) -> Record {
        match catch_unwind(AssertUnwindSafe(scan)) {
            Ok(Ok(record)) => record,
            Ok(Err(error)) => Record::failed(name.to_owned(), error),
            Err(_) => Record::failed(
                name.to_owned(),
                "internal error while scanning this file (caught)".into(),
            ),
        }
    }
}

/// The SHA-256 of `bytes` as 64 lowercase hex digits: the image's identity in the store and
/// in reviews.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Reads (at most the size limit) and decodes one image file.
pub fn read_image(path: &Path, limits: &DecodeLimits) -> Result<RgbImage, String> {
    let bytes = read_limited(path, limits.max_file_bytes)?;
    Ok(decode(&bytes, limits).map_err(|e| e.to_string())?.image)
}

/// The bytes of a file, refusing one larger than `max_bytes` without reading it all.
pub fn read_limited(path: &Path, max_bytes: u64) -> Result<Vec<u8>, String> {
    let file = File::open(path).map_err(|e| format!("cannot open: {e}"))?;
    let mut bytes = Vec::new();
    file.take(max_bytes + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read: {e}"))?;
    if bytes.len() as u64 > max_bytes {
        return Err(format!("file too large: more than {max_bytes} bytes"));
    }
    Ok(bytes)
}
