//! The whole look at one image: decode within limits, find faces, score them, decide.
//!
//! `facade scan`, `facade networks --images` and the HTTP service all judge images through
//! [`Judge`], so that one image gets the same record whichever way it arrives.

use std::fs::File;
use std::io::Read;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

use facade_face::{DetectError, DetectorConfig, Face, FaceDetector};
use facade_image::provenance::{ProvenanceReader, Reading};
use facade_image::thumbnail::{jpeg_thumbnail, square_crop};
use facade_image::{decode, sha256_hex, DecodeLimits, RgbImage};

use crate::record::{round_score, FaceRecord, Record, Status, Verdict, VerdictSource};
use crate::{most_suspicious, Detectors, FaceScore};

/// Bumped when what the provenance reader puts in records changes, so that stored records
/// from before are not reused as if they were current.
const PROVENANCE_VERSION: u32 = 1;

/// The face stage, the detectors, and the operating point.
pub struct Judge {
    faces: FaceDetector,
    fingerprint: String,
    /// The detectors and the score threshold of the operating point (none: faces only).
    scoring: Option<(Detectors, f64)>,
    /// Reads what each file declares about its origin (C2PA trust anchors inside).
    provenance: ProvenanceReader,
}

/// One image judged: its record (with the bytes' SHA-256), the decoded picture and the
/// judgement behind the record.
pub struct Scanned {
    pub record: Record,
    pub image: RgbImage,
    pub judgement: Judgement,
}

impl Scanned {
    /// A JPEG fitting `side`: the largest face with a margin, or the whole picture when there
    /// is no face. What the store keeps and the review page shows.
    pub fn thumbnail(&self, side: u32) -> Vec<u8> {
        let width = |b: &[f32; 4]| b[2] - b[0];
        let boxes = self.judgement.faces.iter().map(|f| f.bbox);
        match boxes.max_by(|a, b| width(a).total_cmp(&width(b))) {
            Some(bbox) => jpeg_thumbnail(&square_crop(&self.image, bbox, 0.35), side),
            None => jpeg_thumbnail(&self.image, side),
        }
    }
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
    /// false-positive rate on real faces is `fpr`. Without them (faces only), O-Net stops at
    /// each place's first accepted look ([`DetectorConfig::first_accepted_look`]): two fifths
    /// of its work, within the face stage's parity figures. With them, it reads every look, as
    /// the detectors' training crops were found: on the held-out images the first accepted
    /// look's landmarks cost the detectors 0.2 points of AUC and 0.9 of TPR at FPR 0.1%.
    pub fn new(
        config: DetectorConfig,
        detectors: Option<(Detectors, f64)>,
    ) -> Result<Judge, DetectError> {
        let config = DetectorConfig {
            first_accepted_look: detectors.is_none(),
            ..config
        };
        let fingerprint = match &detectors {
            Some((detectors, fpr)) if detectors.skips_its_cascade() => {
                format!("{}@fpr={fpr};every-view", detectors.fingerprint())
            }
            Some((detectors, fpr)) => format!("{}@fpr={fpr}", detectors.fingerprint()),
            None => "faces-only;looks=first-accepted".to_owned(),
        };
        let fingerprint = format!(
            "{fingerprint};min_face={:?};provenance={PROVENANCE_VERSION}",
            config.min_face
        );
        let scoring = detectors.map(|(detectors, fpr)| {
            let threshold = detectors.threshold(fpr);
            (detectors.protect_operating_point(fpr), threshold)
        });
        Ok(Judge {
            faces: FaceDetector::new(config)?,
            fingerprint,
            scoring,
            provenance: ProvenanceReader::default(),
        })
    }

    /// This judge reading provenance with `reader` (its C2PA trust anchors become part of the
    /// fingerprint: they change the `signature` of records).
    pub fn with_provenance(mut self, reader: ProvenanceReader) -> Judge {
        if let Some(anchors) = reader.anchors_sha256() {
            self.fingerprint = format!("{};c2pa-trust={}", self.fingerprint, &anchors[..16]);
        }
        self.provenance = reader;
        self
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

    /// Judges one encoded image named `name`. A failure (not an image, too large, corrupt, a
    /// panic in the detectors) comes back as the error record; the record carries the bytes'
    /// SHA-256 either way.
    pub fn scan_bytes(
        &self,
        name: &str,
        bytes: &[u8],
        limits: &DecodeLimits,
    ) -> Result<Scanned, Box<Record>> {
        self.scan_hashed(name, bytes, sha256_hex(bytes), limits)
    }

    /// [`Judge::scan_bytes`] for bytes whose SHA-256 the caller already has (the service
    /// looks it up in the store first).
    pub fn scan_hashed(
        &self,
        name: &str,
        bytes: &[u8],
        sha256: String,
        limits: &DecodeLimits,
    ) -> Result<Scanned, Box<Record>> {
        // The original bytes' own declaration, read before decoding (a file whose pixels fail
        // to decode may still say what made it).
        let reading = catch_unwind(AssertUnwindSafe(|| self.provenance.read(bytes)))
            .unwrap_or_else(|_| Reading {
                provenance: None,
                problems: vec!["provenance: metadata unreadable (caught)".into()],
            });
        let outcome = catch_unwind(AssertUnwindSafe(|| -> Result<Scanned, String> {
            let decoded = decode(bytes, limits).map_err(|e| e.to_string())?;
            let image = decoded.image;
            let (mut record, judgement) = self.record_image(name, &image)?;
            record.warnings = decoded.warnings;
            Ok(Scanned {
                record,
                image,
                judgement,
            })
        }));
        let error = match outcome {
            Ok(Ok(mut scanned)) => {
                scanned.record.sha256 = Some(sha256);
                scanned.record.warnings.extend(reading.problems);
                scanned.record.declare(reading.provenance);
                return Ok(scanned);
            }
            Ok(Err(error)) => error,
            Err(_) => "internal error while scanning this file (caught)".into(),
        };
        let mut failed = Record::failed(name.to_owned(), error);
        failed.sha256 = Some(sha256);
        failed.warnings = reading.problems;
        failed.declare(reading.provenance);
        Err(Box::new(failed))
    }

    /// Judges one image file, read no further than the size limit.
    pub fn scan_file(&self, path: &Path, limits: &DecodeLimits) -> Result<Scanned, Box<Record>> {
        let name = path.to_string_lossy();
        let bytes = read_limited(path, limits.max_file_bytes)
            .map_err(|error| Box::new(Record::failed(name.to_string(), error)))?;
        self.scan_bytes(&name, &bytes, limits)
    }

    /// The record of one image file, whatever happened to it.
    pub fn record_file(&self, path: &Path, limits: &DecodeLimits) -> Record {
        self.scan_file(path, limits)
            .map_or_else(|failed| *failed, |scanned| scanned.record)
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
            verdict_source: judged.verdict.map(|_| VerdictSource::Detectors),
            provenance: None,
            warnings: Vec::new(),
            faces,
            error: None,
        };
        Ok((record, judged))
    }
}

/// The threads images are judged on: a rayon pool of its own, one thread per judging worker.
///
/// Why not plain threads: the detectors' layers parallelise with rayon (the depthwise
/// convolutions, candle's matrix products). Called from a plain thread, each such layer is
/// handed to rayon's global pool while the caller sleeps, so with one judging thread per core
/// there were twice as many busy threads as cores and a hand-over between threads for every
/// layer of every view. Called from the pool's own threads, a layer runs where it is called and
/// an idle thread helps a busy one.
pub struct JudgingPool {
    pool: rayon::ThreadPool,
}

impl JudgingPool {
    /// A pool of `threads` threads (at least one).
    pub fn new(threads: usize) -> Result<JudgingPool, rayon::ThreadPoolBuildError> {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads.max(1))
            .thread_name(|i| format!("facade-judge-{i}"))
            .build()?;
        Ok(JudgingPool { pool })
    }

    /// How many threads judge.
    pub fn threads(&self) -> usize {
        self.pool.current_num_threads()
    }

    /// Runs `work` once on every thread of the pool (a worker loop each) and returns when all
    /// of them have.
    pub fn each(&self, work: impl Fn() + Sync) {
        self.pool.broadcast(|_| work());
    }

    /// Runs `work` on one of the pool's threads, the caller waiting for its result (one
    /// hand-over per image, not per layer).
    pub fn run<T: Send>(&self, work: impl FnOnce() -> T + Send) -> T {
        self.pool.install(work)
    }
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
