//! The MTCNN cascade: image pyramid → P-Net proposals → R-Net refinement → O-Net boxes,
//! confidences and five landmarks, mapped back to the pixels of the original image.
//!
//! Two departures from facenet-pytorch, both deliberate:
//! - **Faces that run past the frame.** facenet-pytorch clamps each crop to the image and
//!   stretches what is left to 24×24 / 48×48, so on a tight crop the network sees a distorted
//!   face and the landmarks come out spread ~1.3× too wide. Here the crop keeps its true
//!   window and what lies outside the image reads as neutral grey (0 after normalisation), and
//!   every pyramid level gets a grey border of half a P-Net window so that a face larger than
//!   the frame can be proposed at all.
//! - **Profile pictures hold one large face.** The smallest face searched for is a fraction of
//!   the image ([`MinFace::Fraction`]), and detection runs on a copy downscaled until that
//!   smallest face is 48 px (O-Net's input size, so no stage loses resolution), with results
//!   mapped back to full resolution.

use candle_core::{Device, Tensor};
use facade_image::{Planes, RgbImage};
use serde::{Deserialize, Serialize};

use crate::boxes::{self, Candidate, Overlap};
use crate::mtcnn::{rows, values, Mtcnn};

/// Value of out-of-frame pixels after normalisation: mid-grey.
const OUTSIDE: f32 = 0.0;
/// O-Net's input side: the resolution the smallest searched face keeps in the working copy.
const ONET_SIDE: usize = 48;
/// R-Net's input side.
const RNET_SIDE: usize = 24;
/// Grey border around each pyramid level, in level pixels: half of P-Net's 12-pixel window,
/// enough to propose a face up to twice the size of the frame.
const LEVEL_BORDER: usize = 6;

/// A face: its box `[x1, y1, x2, y2]`, the detector's confidence, and five landmarks (left eye,
/// right eye, nose, left and right mouth corner, as seen by the viewer), all in pixels of the
/// original image. Boxes of faces that run past the frame extend past it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Face {
    #[serde(rename = "box")]
    pub bbox: [f32; 4],
    pub confidence: f32,
    pub landmarks: [[f32; 2]; 5],
}

impl Face {
    pub fn width(&self) -> f32 {
        self.bbox[2] - self.bbox[0]
    }

    pub fn height(&self) -> f32 {
        self.bbox[3] - self.bbox[1]
    }
}

/// The smallest face to search for.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MinFace {
    /// An absolute size in pixels of the original image.
    Pixels(f32),
    /// A fraction of the image's shorter side (never below 20 px).
    Fraction(f32),
}

impl MinFace {
    pub fn pixels(self, width: u32, height: u32) -> f32 {
        match self {
            MinFace::Pixels(px) => px.max(1.0),
            MinFace::Fraction(f) => (f * width.min(height) as f32).max(20.0),
        }
    }
}

/// Faces one profile picture reports by default (separate places O-Net looks at).
pub const DEFAULT_MAX_FACES: usize = 3;

/// P-Net proposals R-Net sees: at least this many ...
const PROPOSALS_AT_LEAST: usize = 16;
/// ... or this many per face reported, whichever is more.
const PROPOSALS_PER_FACE: usize = 5;

/// Settings of the cascade.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DetectorConfig {
    pub min_face: MinFace,
    /// Score thresholds of P-Net, R-Net and O-Net.
    pub thresholds: [f32; 3],
    /// Scale step of the image pyramid.
    pub factor: f32,
    /// Propose faces that run past the frame (grey border around each pyramid level).
    pub past_frame: bool,
    /// Detect on a copy where the smallest searched face is 48 px.
    pub downscale: bool,
    /// Extra O-Net passes on each final face's own squared box, whose landmarks replace the
    /// first ones. The first pass sees whatever box R-Net proposed, so its landmarks wobble
    /// with the proposal path (pyramid scales, framing); a crop centred on the found face
    /// makes them depend on the face, not on how it was found.
    pub landmark_passes: usize,
    /// P-Net proposals sent to R-Net, most confident first. P-Net's proposals on a portrait
    /// are mostly scattered background windows; the face is among the first few.
    pub proposals_at_most: usize,
    /// The most faces one image reports: R-Net boxes reach O-Net from at most this many
    /// separate places (see [`boxes::places_and_looks`]). O-Net is the most expensive stage
    /// per box (about 13 M multiply-adds).
    pub max_faces: usize,
    /// R-Net boxes of one place that O-Net sees. O-Net sometimes rejects a face's best box
    /// and accepts a neighbour: on 3,251 shared UTKFace and Stable Diffusion images, the
    /// uncapped cascade found no face in 14; with 3 places and 1 look, 37; 2 looks, 24;
    /// 4 looks, 15; 5 looks, 14.
    pub looks_per_face: usize,
    /// O-Net reads a place's looks one at a time, most confident first, and stops at the first
    /// it accepts (one O-Net pass over every place's first look, then over the next looks of
    /// the places still without a face, and so on). A place gets a face exactly when it does
    /// reading all its looks, for two fifths of O-Net's work on a profile picture (one look
    /// and the landmark pass instead of four and the pass); its box is the first accepted
    /// look's rather than that of the look O-Net was most sure of, which moves landmarks by
    /// 1.3% of the inter-ocular distance (median; 300 profile pictures). Off (the default):
    /// every look is read and the boxes are merged by their O-Net confidence, as
    /// facenet-pytorch does and as the built-in detectors' training crops were found.
    pub first_accepted_look: bool,
}

impl Default for DetectorConfig {
    /// Profile-picture settings: faces of at least 15% of the shorter side (min 20 px; the
    /// smallest face in the shared portraits is 16%), the published thresholds, faces past
    /// the frame, detection on a downscaled copy.
    fn default() -> Self {
        DetectorConfig {
            min_face: MinFace::Fraction(0.15),
            thresholds: [0.6, 0.7, 0.7],
            factor: 0.709,
            past_frame: true,
            downscale: true,
            landmark_passes: 1,
            proposals_at_most: PROPOSALS_AT_LEAST,
            max_faces: DEFAULT_MAX_FACES,
            looks_per_face: 4,
            first_accepted_look: false,
        }
    }
}

impl DetectorConfig {
    /// These settings, reporting up to `faces` faces per image; R-Net then sees
    /// [`PROPOSALS_AT_LEAST`] P-Net proposals or [`PROPOSALS_PER_FACE`] per face, whichever
    /// is more.
    pub fn with_max_faces(self, faces: usize) -> Self {
        let faces = faces.max(1);
        DetectorConfig {
            max_faces: faces,
            proposals_at_most: faces
                .saturating_mul(PROPOSALS_PER_FACE)
                .max(PROPOSALS_AT_LEAST),
            ..self
        }
    }

    /// facenet-pytorch's defaults (min face 20 px, full resolution, no frame), keeping only the
    /// crop fix. For comparisons with the reference.
    pub fn reference() -> Self {
        DetectorConfig {
            min_face: MinFace::Pixels(20.0),
            past_frame: false,
            downscale: false,
            landmark_passes: 0,
            proposals_at_most: usize::MAX,
            max_faces: usize::MAX,
            looks_per_face: usize::MAX,
            ..Default::default()
        }
    }
}

/// Why detection failed (never for lack of faces: that is an empty result).
#[derive(Debug, thiserror::Error)]
pub enum DetectError {
    #[error("face model failed: {0}")]
    Model(#[from] candle_core::Error),
}

/// A loaded detector; cheap to share between threads (`Clone` shares the weights).
#[derive(Debug, Clone)]
pub struct FaceDetector {
    nets: Mtcnn,
    config: DetectorConfig,
}

/// The working copy detection runs on, and how to map its pixels back to the original.
struct Working {
    planes: Planes,
    /// `planes` halved again and again (area filter), for cheap crops of large boxes.
    halves: Vec<Planes>,
    scale_x: f32,
    scale_y: f32,
    /// Smallest searched face in working pixels.
    min_face: f32,
}

impl FaceDetector {
    /// The embedded MTCNN weights with `config`.
    pub fn new(config: DetectorConfig) -> Result<Self, DetectError> {
        Ok(FaceDetector {
            nets: Mtcnn::embedded()?,
            config,
        })
    }

    /// All faces in `image`, most confident first.
    pub fn detect(&self, image: &RgbImage) -> Result<Vec<Face>, DetectError> {
        if image.width() == 0 || image.height() == 0 {
            return Ok(Vec::new());
        }
        let working = self.working_copy(image);
        let proposals = self.propose(&working)?;
        let refined = self.refine(&working, proposals)?;
        let mut faces = self.output(&working.planes, refined)?;
        for _ in 0..self.config.landmark_passes {
            faces = self.relocate_landmarks(&working.planes, faces)?;
        }
        for face in &mut faces {
            map_back(face, &working);
        }
        faces.sort_by(|a, b| {
            b.confidence
                .total_cmp(&a.confidence)
                .then((b.width() * b.height()).total_cmp(&(a.width() * a.height())))
        });
        Ok(faces)
    }

    fn working_copy(&self, image: &RgbImage) -> Working {
        let (w, h) = (image.width(), image.height());
        let min_face = self.config.min_face.pixels(w, h);
        let scale = if self.config.downscale {
            (ONET_SIDE as f32 / min_face).min(1.0)
        } else {
            1.0
        };
        let full = Planes::from_rgb_normalized(image);
        let (ww, wh) = (
            ((w as f32 * scale).round() as usize).max(1),
            ((h as f32 * scale).round() as usize).max(1),
        );
        let resized = if (ww, wh) == (w as usize, h as usize) {
            full
        } else {
            full.resized(ww, wh)
        };
        let (scale_x, scale_y) = (ww as f32 / w as f32, wh as f32 / h as f32);
        let mut halves: Vec<Planes> = Vec::new();
        loop {
            let last = halves.last().unwrap_or(&resized);
            if last.width.min(last.height) < 2 * RNET_SIDE {
                break;
            }
            let half = last.resized(last.width / 2, last.height / 2);
            halves.push(half);
        }
        Working {
            planes: resized,
            halves,
            scale_x,
            scale_y,
            min_face: min_face * scale_x.min(scale_y),
        }
    }

    /// Stage 1: P-Net over the pyramid; per-scale NMS, then across scales, then regression.
    ///
    /// Levels after the first are resampled from the first, not from the working copy: the
    /// area filter of an area-filtered image differs by a fraction of a grey level, and it
    /// saves most of the pyramid's cost on large images.
    fn propose(&self, working: &Working) -> Result<Vec<Candidate>, DetectError> {
        let planes = &working.planes;
        let (h, w) = (planes.height as f32, planes.width as f32);
        let border = if self.config.past_frame {
            LEVEL_BORDER
        } else {
            0
        };
        let mut scale = 12.0 / working.min_face;
        let mut min_side = h.min(w) * scale;
        let mut all = Vec::new();
        let mut first: Option<Planes> = None;
        while min_side + 2.0 * border as f32 >= 12.0 && min_side >= 1.0 {
            let (sh, sw) = ((h * scale + 1.0) as usize, (w * scale + 1.0) as usize);
            let level = match &first {
                Some(first) => first.resized(sw, sh),
                None => planes.resized(sw, sh),
            };
            let padded = level.padded(border, OUTSIDE);
            let (ph, pw) = (padded.height, padded.width);
            let input = Tensor::from_vec(padded.data, (1, 3, ph, pw), &Device::Cpu)?;
            first.get_or_insert(level);
            let (reg, prob) = self.nets.pnet.forward(&input)?;
            let mut found = windows_above(&reg, &prob, scale, self.config.thresholds[0])?;
            let shift = border as f32 / scale;
            for c in &mut found {
                (c.x1, c.y1, c.x2, c.y2) = (c.x1 - shift, c.y1 - shift, c.x2 - shift, c.y2 - shift);
            }
            all.extend(boxes::nms(found, 0.5, Overlap::Union));
            scale *= self.config.factor;
            min_side *= self.config.factor;
        }
        // NMS returns the boxes most confident first.
        Ok(boxes::nms(all, 0.7, Overlap::Union)
            .iter()
            .take(self.config.proposals_at_most)
            .map(|b| boxes::square(&boxes::regress_first_stage(b)))
            .collect())
    }

    /// Stage 2: R-Net on 24×24 crops, taken from the halved copies where a box is large.
    fn refine(
        &self,
        working: &Working,
        proposals: Vec<Candidate>,
    ) -> Result<Vec<Vec<Candidate>>, DetectError> {
        let (kept, input) = crops(&working.planes, &working.halves, &proposals, RNET_SIDE)?;
        let Some(input) = input else {
            return Ok(Vec::new());
        };
        let (reg, prob) = self.nets.rnet.forward(&input)?;
        let (reg, prob) = (rows(&reg)?, values(&prob)?);
        let passed: Vec<Candidate> = kept
            .into_iter()
            .zip(reg.into_iter().zip(prob))
            .filter(|(_, (_, p))| *p > self.config.thresholds[1])
            .map(|(b, (r, p))| Candidate {
                score: p,
                reg: [r[0], r[1], r[2], r[3]],
                ..b
            })
            .collect();
        let refined: Vec<Candidate> = boxes::nms(passed, 0.7, Overlap::Union)
            .iter()
            .map(|b| boxes::square(&boxes::regress(b)))
            .collect();
        Ok(boxes::places_and_looks(
            refined,
            self.config.max_faces,
            self.config.looks_per_face,
        ))
    }

    /// Stage 3: O-Net on 48×48 crops of the places' looks gives the final boxes, confidences
    /// and landmarks: every look, or each place's looks until one is accepted
    /// ([`DetectorConfig::first_accepted_look`]).
    fn output(
        &self,
        planes: &Planes,
        places: Vec<Vec<Candidate>>,
    ) -> Result<Vec<Face>, DetectError> {
        let places: Vec<Vec<Candidate>> = places
            .into_iter()
            .map(|looks| {
                let framed = |b: &Candidate| boxes::crop_window(b).is_some();
                looks.into_iter().filter(framed).collect()
            })
            .collect();
        let accepted = if self.config.first_accepted_look {
            self.first_accepted_looks(planes, &places)?
        } else {
            self.read_onet(planes, &boxes::every_look(places))?
                .into_iter()
                .flatten()
                .collect()
        };
        // Carry each face's index in `reg[0]` through NMS to find it again.
        let finals: Vec<Candidate> = accepted
            .iter()
            .enumerate()
            .map(|(i, (regressed, _))| Candidate {
                reg: [i as f32, 0.0, 0.0, 0.0],
                ..*regressed
            })
            .collect();
        Ok(boxes::nms(finals, 0.7, Overlap::Min)
            .iter()
            .map(|c| accepted[c.reg[0] as usize].1)
            .collect())
    }

    /// Each place's first look O-Net accepts, reading the looks in rounds: the first look of
    /// every place in one pass, then the second look of the places still without a face, ...
    fn first_accepted_looks(
        &self,
        planes: &Planes,
        places: &[Vec<Candidate>],
    ) -> Result<Vec<(Candidate, Face)>, DetectError> {
        let mut accepted = Vec::new();
        // Each open place's looks not yet read, its next look first (never empty).
        let mut open: Vec<(&Candidate, &[Candidate])> = places
            .iter()
            .filter_map(|looks| looks.split_first())
            .collect();
        while !open.is_empty() {
            let next: Vec<Candidate> = open.iter().map(|(look, _)| **look).collect();
            let read = self.read_onet(planes, &next)?;
            let mut still_open = Vec::new();
            for ((_, rest), verdict) in open.into_iter().zip(read) {
                match verdict {
                    Some(face) => accepted.push(face),
                    None => still_open.extend(rest.split_first()),
                }
            }
            open = still_open;
        }
        Ok(accepted)
    }

    /// O-Net on `looks` (each with a crop window): per look, its regressed box and face where
    /// O-Net accepts it.
    fn read_onet(
        &self,
        planes: &Planes,
        looks: &[Candidate],
    ) -> Result<Vec<Option<(Candidate, Face)>>, DetectError> {
        let (kept, input) = crops(planes, &[], looks, ONET_SIDE)?;
        let Some(input) = input else {
            return Ok(Vec::new());
        };
        let out = self.nets.onet.forward(&input)?;
        let (reg, marks, prob) = (
            rows(&out.regression)?,
            rows(&out.landmarks)?,
            values(&out.probability)?,
        );
        Ok(kept
            .iter()
            .enumerate()
            .map(|(i, b)| {
                if prob[i] <= self.config.thresholds[2] {
                    return None;
                }
                let regressed = boxes::regress(&Candidate {
                    score: prob[i],
                    reg: [reg[i][0], reg[i][1], reg[i][2], reg[i][3]],
                    ..*b
                });
                let face = Face {
                    bbox: [regressed.x1, regressed.y1, regressed.x2, regressed.y2],
                    confidence: prob[i],
                    // Landmarks are relative to the (unregressed) crop.
                    landmarks: landmarks_in_box(b, &marks[i]),
                };
                Some((regressed, face))
            })
            .collect())
    }
}

impl FaceDetector {
    /// Runs O-Net on each face's squared box and takes its landmarks (box and confidence stay).
    fn relocate_landmarks(
        &self,
        planes: &Planes,
        faces: Vec<Face>,
    ) -> Result<Vec<Face>, DetectError> {
        let boxes: Vec<Candidate> = faces
            .iter()
            .map(|f| {
                boxes::square(&Candidate {
                    x1: f.bbox[0],
                    y1: f.bbox[1],
                    x2: f.bbox[2],
                    y2: f.bbox[3],
                    score: f.confidence,
                    reg: [0.0; 4],
                })
            })
            .collect();
        if boxes.iter().any(|b| boxes::crop_window(b).is_none()) {
            return Ok(faces);
        }
        let (kept, input) = crops(planes, &[], &boxes, ONET_SIDE)?;
        let Some(input) = input else {
            return Ok(faces);
        };
        let marks = rows(&self.nets.onet.forward(&input)?.landmarks)?;
        Ok(faces
            .into_iter()
            .zip(kept.iter().zip(marks))
            .map(|(face, (b, m))| Face {
                landmarks: landmarks_in_box(b, &m),
                ..face
            })
            .collect())
    }
}

/// O-Net's landmark outputs (five x, then five y, relative to the crop) in image pixels.
/// Sizes are +1-inclusive, as the crop window is.
fn landmarks_in_box(b: &Candidate, marks: &[f32]) -> [[f32; 2]; 5] {
    let (bw, bh) = (b.x2 - b.x1 + 1.0, b.y2 - b.y1 + 1.0);
    let mut out = [[0.0f32; 2]; 5];
    for (k, mark) in out.iter_mut().enumerate() {
        *mark = [bw * marks[k] + b.x1 - 1.0, bh * marks[k + 5] + b.y1 - 1.0];
    }
    out
}

/// P-Net cells whose face probability reaches `threshold`, as boxes in the scaled-from image.
fn windows_above(
    reg: &Tensor,
    prob: &Tensor,
    scale: f32,
    threshold: f32,
) -> Result<Vec<Candidate>, DetectError> {
    let (_, _, rows_n, cols_n) = reg.dims4()?;
    let prob = values(prob)?;
    let reg = values(reg)?;
    let plane = rows_n * cols_n;
    let mut found = Vec::new();
    for (i, &p) in prob.iter().enumerate() {
        if p < threshold {
            continue;
        }
        let (y, x) = ((i / cols_n) as f32, (i % cols_n) as f32);
        found.push(Candidate {
            x1: ((2.0 * x + 1.0) / scale).floor(),
            y1: ((2.0 * y + 1.0) / scale).floor(),
            x2: ((2.0 * x + 12.0) / scale).floor(),
            y2: ((2.0 * y + 12.0) / scale).floor(),
            score: p,
            reg: [
                reg[i],
                reg[plane + i],
                reg[2 * plane + i],
                reg[3 * plane + i],
            ],
        });
    }
    Ok(found)
}

/// The candidates that have a non-empty window, and their crops as one `(N, 3, side, side)`
/// batch (None when there are none). A box at least four times `side` is cropped from the
/// coarsest of `halves` where it still spans `2 * side` pixels: the rounding of its window
/// there moves it by at most 1/4 of an output pixel, and the cost no longer grows with its area.
fn crops(
    planes: &Planes,
    halves: &[Planes],
    candidates: &[Candidate],
    side: usize,
) -> Result<(Vec<Candidate>, Option<Tensor>), DetectError> {
    let mut kept = Vec::with_capacity(candidates.len());
    let mut data = Vec::with_capacity(candidates.len() * 3 * side * side);
    for c in candidates {
        if let Some((x0, y0, w, h)) = boxes::crop_window(c) {
            let mut level = 0;
            while level < halves.len() && w.min(h) >> (level + 1) >= 2 * side {
                level += 1;
            }
            let crop = if level == 0 {
                planes.crop_resized(x0, y0, w, h, side, side, OUTSIDE)
            } else {
                let div = (1i64 << level) as f32;
                let at = |v: i64| (v as f32 / div).round() as i64;
                let (lx, ly) = (at(x0), at(y0));
                let (lw, lh) = (
                    (at(x0 + w as i64) - lx) as usize,
                    (at(y0 + h as i64) - ly) as usize,
                );
                halves[level - 1].crop_resized(lx, ly, lw, lh, side, side, OUTSIDE)
            };
            data.extend(crop.data);
            kept.push(*c);
        }
    }
    if kept.is_empty() {
        return Ok((kept, None));
    }
    let n = kept.len();
    Ok((
        kept,
        Some(Tensor::from_vec(data, (n, 3, side, side), &Device::Cpu)?),
    ))
}

/// From working-copy pixels to original pixels.
fn map_back(face: &mut Face, working: &Working) {
    let x = |v: f32| v / working.scale_x;
    let y = |v: f32| v / working.scale_y;
    face.bbox = [
        x(face.bbox[0]),
        y(face.bbox[1]),
        x(face.bbox[2]),
        y(face.bbox[3]),
    ];
    for mark in &mut face.landmarks {
        *mark = [x(mark[0]), y(mark[1])];
    }
}
