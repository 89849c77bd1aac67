//! The scan record: what facade says about one image, as `facade scan` writes it and the
//! service returns it. Coordinates are rounded to 1/100 px, scores to 5 digits, so that the
//! same image gives byte-identical JSON everywhere.

use std::collections::BTreeMap;

use facade_face::Face;
pub use facade_image::provenance::Provenance;
use serde::{Deserialize, Serialize};

use crate::FaceScore;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Ok,
    NoFace,
    Error,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::NoFace => "no_face",
            Status::Error => "error",
        }
    }
}

/// A face as written out: coordinates rounded to 1/100 px, confidence to 5 digits.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FaceRecord {
    #[serde(rename = "box")]
    pub bbox: [f64; 4],
    pub confidence: f64,
    pub landmarks: [[f64; 2]; 5],
    /// Fused probability that the face is generated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub score: Option<f64>,
    /// Each detector's raw value and its contribution to the log-odds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub evidence: Option<BTreeMap<String, Evidence>>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Evidence {
    pub value: f64,
    pub contribution: f64,
}

fn round(v: f64, digits: i32) -> f64 {
    let k = 10f64.powi(digits);
    (v * k).round() / k
}

/// Scores as written out: 5 digits, the same for a face and for its image.
pub fn round_score(score: f64) -> f64 {
    round(score, 5)
}

impl From<&Face> for FaceRecord {
    fn from(face: &Face) -> Self {
        let px = |v: f32| round(f64::from(v), 2);
        FaceRecord {
            bbox: face.bbox.map(px),
            confidence: round(f64::from(face.confidence), 5),
            landmarks: face.landmarks.map(|[x, y]| [px(x), px(y)]),
            score: None,
            evidence: None,
        }
    }
}

impl FaceRecord {
    pub fn scored(face: &Face, score: &FaceScore) -> Self {
        let evidence = score
            .evidence
            .iter()
            .map(|c| {
                let e = Evidence {
                    value: round(f64::from(c.value), 5),
                    contribution: round(c.log_odds, 4),
                };
                (c.detector.to_owned(), e)
            })
            .collect();
        FaceRecord {
            score: Some(round_score(score.score)),
            evidence: Some(evidence),
            ..FaceRecord::from(face)
        }
    }
}

/// The decision at the operating point.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Ai,
    Real,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Ai => "ai",
            Verdict::Real => "real",
        }
    }
}

/// One line of `facade scan` output: one per input, whatever happened to it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    /// The name the image came by (absent in the store, which keys records by content).
    #[serde(default)]
    pub path: String,
    pub status: Status,
    /// SHA-256 of the file's bytes (absent when it could not be read).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub width: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub height: Option<u32>,
    /// The most suspicious face's score; absent when there is no face.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub score: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verdict: Option<Verdict>,
    /// What decided the verdict: the pixel detectors, or the file's own declaration of being
    /// generated ([`Record::provenance`]); absent with the verdict.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verdict_source: Option<VerdictSource>,
    /// What the file declares about its origin (C2PA, XMP, generator text, EXIF); absent when
    /// it says nothing. Shown beside the detectors; it never changes `score`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provenance: Option<Provenance>,
    /// What makes the result less than whole (`truncated: …`: the file ends before its image
    /// does, so part of the picture the detectors saw is the decoder's filler). Absent when
    /// empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    pub faces: Vec<FaceRecord>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Record {
    pub fn failed(path: String, error: String) -> Record {
        Record {
            path,
            status: Status::Error,
            sha256: None,
            width: None,
            height: None,
            score: None,
            verdict: None,
            verdict_source: None,
            provenance: None,
            warnings: Vec::new(),
            faces: Vec::new(),
            error: Some(error),
        }
    }

    /// Sets what the file declares. A declaration of generation makes the verdict `ai` (also
    /// for a picture without a face), said by `verdict_source: provenance`; a declaration of
    /// capture changes nothing, because metadata is easy to write. Error records keep no
    /// verdict.
    pub fn declare(&mut self, provenance: Option<Provenance>) {
        self.provenance = provenance;
        self.verdict_source = self.verdict.map(|_| VerdictSource::Detectors);
        if self.declares_generated() && self.status != Status::Error {
            self.verdict = Some(Verdict::Ai);
            self.verdict_source = Some(VerdictSource::Provenance);
        }
    }

    /// Whether the file declares itself AI-generated.
    pub fn declares_generated(&self) -> bool {
        self.provenance
            .as_ref()
            .is_some_and(Provenance::declares_generated)
    }
}

/// What decided a verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VerdictSource {
    Detectors,
    Provenance,
}

impl VerdictSource {
    pub fn as_str(self) -> &'static str {
        match self {
            VerdictSource::Detectors => "detectors",
            VerdictSource::Provenance => "provenance",
        }
    }
}
