//! facade's face pipeline against facenet-pytorch's own output on every shared face image
//! (`../shared/faces/reference-mtcnn.jsonl`), and against itself on faces that fill the frame.
//!
//! Each test runs twice, with O-Net reading every look (a scan with the detectors) and stopping
//! at each place's first accepted look (a `--faces-only` scan).
//!
//! The tests need the shared data set beside the project (or `FACADE_SHARED_DIR`); without it
//! they say so and return, except under `CI`, where they fail rather than pass vacuously. They print their figures; run with
//! `cargo test --release -p facade-face --test reference_parity -- --nocapture` to see them.
//!
//! By default each test checks an even sample of every source (at most [`SAME_FACE_PER_SOURCE`]
//! and [`CANVAS_PER_SOURCE`] images), which keeps CI inside its time on the 14,000-image set;
//! `FACADE_PARITY_ALL=1` runs every eligible image (the README's figures).

use std::path::Path;

use facade_face::{DetectorConfig, Face, FaceDetector};
use facade_image::{decode, DecodeLimits, RgbImage};
use rayon::prelude::*;
use serde_json::Value;

struct Reference {
    path: String,
    source: String,
    width: f32,
    height: f32,
    /// The most confident reference face: box, probability, landmarks.
    top: Option<([f32; 4], f32, [[f32; 2]; 5])>,
}

impl Reference {
    fn box_inside_frame(&self) -> bool {
        self.top.is_some_and(|(b, _, _)| {
            b[0] >= 0.0 && b[1] >= 0.0 && b[2] <= self.width && b[3] <= self.height
        })
    }

    fn confident(&self) -> bool {
        self.top.is_some_and(|(_, p, _)| p >= 0.9)
    }
}

fn f32s<const N: usize>(v: &Value) -> [f32; N] {
    let mut out = [0.0; N];
    for (o, x) in out.iter_mut().zip(v.as_array().expect("array")) {
        *o = x.as_f64().expect("number") as f32;
    }
    out
}

fn load_references(dir: &Path) -> Vec<Reference> {
    let text = std::fs::read_to_string(dir.join("reference-mtcnn.jsonl")).expect("reference");
    text.lines()
        .map(|line| {
            let v: Value = serde_json::from_str(line).expect("reference json");
            let top = v["faces"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|f| {
                    let lm = f["landmarks"].as_array().expect("landmarks");
                    let mut marks = [[0.0f32; 2]; 5];
                    for (m, l) in marks.iter_mut().zip(lm) {
                        *m = f32s::<2>(l);
                    }
                    (
                        f32s::<4>(&f["box"]),
                        f["prob"].as_f64().unwrap_or(0.0) as f32,
                        marks,
                    )
                })
                .max_by(|a, b| a.1.total_cmp(&b.1));
            Reference {
                path: v["path"].as_str().expect("path").to_string(),
                source: v["source"].as_str().unwrap_or("?").to_string(),
                width: v["width"].as_f64().expect("width") as f32,
                height: v["height"].as_f64().expect("height") as f32,
                top,
            }
        })
        .collect()
}

fn load_image(dir: &Path, path: &str) -> RgbImage {
    let bytes = std::fs::read(dir.join(path)).expect("shared image");
    decode(&bytes, &DecodeLimits::default())
        .expect("shared image decodes")
        .image
}

fn iou(a: &[f32; 4], b: &[f32; 4]) -> f32 {
    let w = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let h = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let inter = w * h;
    let area = |r: &[f32; 4]| (r[2] - r[0]) * (r[3] - r[1]);
    inter / (area(a) + area(b) - inter)
}

/// Mean landmark distance as a fraction of the inter-ocular distance of `truth`.
fn landmark_error(found: &[[f32; 2]; 5], truth: &[[f32; 2]; 5]) -> f32 {
    let iod = ((truth[0][0] - truth[1][0]).powi(2) + (truth[0][1] - truth[1][1]).powi(2)).sqrt();
    let total: f32 = found
        .iter()
        .zip(truth)
        .map(|(a, b)| ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2)).sqrt())
        .sum();
    total / 5.0 / iod
}

/// Eligible images per source for the same-face test, unless `FACADE_PARITY_ALL` is set.
const SAME_FACE_PER_SOURCE: usize = 150;
/// Eligible images per source for the canvas test (few sources have frame-filling faces).
const CANVAS_PER_SOURCE: usize = 450;

/// At most `max` references of each source, at even steps through the source's references,
/// or all of them when `FACADE_PARITY_ALL` is set.
fn sample_per_source(references: Vec<Reference>, max: usize) -> Vec<Reference> {
    if std::env::var_os("FACADE_PARITY_ALL").is_some() {
        return references;
    }
    let mut totals = std::collections::HashMap::<String, usize>::new();
    for r in &references {
        *totals.entry(r.source.clone()).or_default() += 1;
    }
    let mut seen = std::collections::HashMap::<String, (usize, usize)>::new();
    references
        .into_iter()
        .filter(|r| {
            let total = totals[&r.source];
            let (index, taken) = seen.entry(r.source.clone()).or_default();
            let take = *taken < max && *index * max >= *taken * total;
            *index += 1;
            *taken += usize::from(take);
            take
        })
        .collect()
}

/// The face stage as a scan with the detectors runs it (every look read), or as a
/// `--faces-only` scan does (each place's first accepted look).
fn detector(first_accepted_look: bool) -> FaceDetector {
    let config = DetectorConfig {
        first_accepted_look,
        ..DetectorConfig::default()
    };
    FaceDetector::new(config).expect("embedded weights")
}

#[test]
fn finds_the_reference_face_with_its_landmarks() {
    same_face_as_the_reference("finds_the_reference_face_with_its_landmarks", false);
}

#[test]
fn finds_the_reference_face_with_its_landmarks_at_the_first_accepted_look() {
    same_face_as_the_reference(
        "finds_the_reference_face_with_its_landmarks_at_the_first_accepted_look",
        true,
    );
}

fn same_face_as_the_reference(test: &str, first_accepted_look: bool) {
    let Some(dir) = facade_image::fixtures::shared_faces_or_skip(test) else {
        return;
    };
    let detector = detector(first_accepted_look);
    let eligible: Vec<Reference> = sample_per_source(
        load_references(&dir)
            .into_iter()
            .filter(|r| r.confident() && r.box_inside_frame())
            .collect(),
        SAME_FACE_PER_SOURCE,
    );
    // (source, matched, landmark error when matched)
    let results: Vec<(String, bool, f32)> = eligible
        .par_iter()
        .map(|r| {
            let (ref_box, _, ref_marks) = r.top.expect("eligible has a face");
            let faces = detector.detect(&load_image(&dir, &r.path)).expect("detect");
            match faces.first() {
                Some(f) if iou(&f.bbox, &ref_box) >= 0.5 => (
                    r.source.clone(),
                    true,
                    landmark_error(&f.landmarks, &ref_marks),
                ),
                _ => (r.source.clone(), false, f32::NAN),
            }
        })
        .collect();
    let matched: Vec<f32> = results.iter().filter(|r| r.1).map(|r| r.2).collect();
    let rate = matched.len() as f32 / results.len() as f32;
    let mean_error = matched.iter().sum::<f32>() / matched.len() as f32;
    let mut sources: Vec<&str> = results.iter().map(|r| r.0.as_str()).collect();
    sources.sort();
    sources.dedup();
    for s in sources {
        let of: Vec<_> = results.iter().filter(|r| r.0 == s).collect();
        let hit: Vec<f32> = of.iter().filter(|r| r.1).map(|r| r.2).collect();
        eprintln!(
            "parity {s:>18}: {}/{} same face, mean landmark error {:.2}% IOD",
            hit.len(),
            of.len(),
            100.0 * hit.iter().sum::<f32>() / hit.len().max(1) as f32
        );
    }
    eprintln!(
        "parity overall ({test}): {} of {} images ({:.2}%) same most-confident face, mean landmark error {:.2}% of the inter-ocular distance",
        matched.len(),
        results.len(),
        100.0 * rate,
        100.0 * mean_error
    );
    assert!(results.len() > 1000, "too few eligible reference images");
    assert!(rate >= 0.98, "same-face rate {rate:.4} below 0.98");
    assert!(
        mean_error <= 0.05,
        "mean landmark error {mean_error:.4} above 0.05"
    );
}

/// `image` in the middle of a grey canvas twice its size, and the offset of its corner.
fn on_canvas(image: &RgbImage) -> (RgbImage, f32, f32) {
    let (w, h) = image.dimensions();
    let mut canvas = RgbImage::from_pixel(2 * w, 2 * h, image::Rgb([128, 128, 128]));
    let (dx, dy) = (w / 2, h / 2);
    image::imageops::replace(&mut canvas, image, i64::from(dx), i64::from(dy));
    (canvas, dx as f32, dy as f32)
}

/// The face on the canvas that is the same as `face` (found on the bare image), if any.
fn same_face_on_canvas(face: &Face, canvas_faces: &[Face], dx: f32, dy: f32) -> Option<Face> {
    let shifted = [
        face.bbox[0] + dx,
        face.bbox[1] + dy,
        face.bbox[2] + dx,
        face.bbox[3] + dy,
    ];
    canvas_faces
        .iter()
        .filter(|c| iou(&c.bbox, &shifted) >= 0.3)
        .max_by(|a, b| a.confidence.total_cmp(&b.confidence))
        .copied()
}

#[test]
fn faces_filling_the_frame_keep_their_landmarks_on_a_larger_canvas() {
    landmarks_kept_on_a_larger_canvas(
        "faces_filling_the_frame_keep_their_landmarks_on_a_larger_canvas",
        false,
    );
}

#[test]
fn faces_filling_the_frame_keep_their_landmarks_on_a_larger_canvas_at_the_first_accepted_look() {
    landmarks_kept_on_a_larger_canvas(
        "faces_filling_the_frame_keep_their_landmarks_on_a_larger_canvas_at_the_first_accepted_look",
        true,
    );
}

fn landmarks_kept_on_a_larger_canvas(test: &str, first_accepted_look: bool) {
    let Some(dir) = facade_image::fixtures::shared_faces_or_skip(test) else {
        return;
    };
    let detector = detector(first_accepted_look);
    let eligible: Vec<Reference> = sample_per_source(
        load_references(&dir)
            .into_iter()
            .filter(|r| r.confident() && !r.box_inside_frame())
            .collect(),
        CANVAS_PER_SOURCE,
    );
    let errors: Vec<(String, f32)> = eligible
        .par_iter()
        .map(|r| {
            let image = load_image(&dir, &r.path);
            let (canvas, dx, dy) = on_canvas(&image);
            let bare = detector.detect(&image).expect("detect");
            let framed = detector.detect(&canvas).expect("detect");
            let error = bare
                .first()
                .and_then(|f| same_face_on_canvas(f, &framed, dx, dy).map(|c| (f, c)))
                .map(|(f, c)| {
                    let mut moved = f.landmarks;
                    for m in &mut moved {
                        *m = [m[0] + dx, m[1] + dy];
                    }
                    landmark_error(&moved, &c.landmarks)
                })
                .unwrap_or(f32::INFINITY);
            (r.source.clone(), error)
        })
        .collect();
    let within =
        |limit: f32| errors.iter().filter(|e| e.1 <= limit).count() as f32 / errors.len() as f32;
    let mut sources: Vec<&str> = errors.iter().map(|e| e.0.as_str()).collect();
    sources.sort();
    sources.dedup();
    for s in sources {
        let of: Vec<f32> = errors.iter().filter(|e| e.0 == s).map(|e| e.1).collect();
        let w5 = of.iter().filter(|&&e| e <= 0.05).count();
        eprintln!("canvas {s:>18}: {w5}/{} within 5% IOD", of.len());
    }
    let (w5, w10) = (within(0.05), within(0.10));
    eprintln!(
        "canvas overall ({test}): {} frame-filling faces; landmarks agree within 5% IOD on {:.2}%, within 10% on {:.2}%",
        errors.len(),
        100.0 * w5,
        100.0 * w10
    );
    assert!(
        errors.len() > 1000,
        "too few frame-filling reference images"
    );
    assert!(w5 >= 0.95, "within-5% share {w5:.4} below 0.95");
    assert!(w10 >= 0.99, "within-10% share {w10:.4} below 0.99");
}
