//! How many faces one image reports: the cascade keeps the most face-like candidates, so a
//! group photograph reports up to `max_faces` faces, each where it is.

use std::path::Path;

use facade_face::{DetectorConfig, FaceDetector, MinFace, DEFAULT_MAX_FACES};
use image::RgbImage;

const COLUMNS: u32 = 3;
const ROWS: u32 = 2;

/// The bundled NASA portrait tiled COLUMNS × ROWS: a "group photograph" of six faces.
fn group_photo() -> (RgbImage, u32) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/astronaut-400.jpg");
    let tile = image::open(path).expect("bundled example").to_rgb8();
    let side = tile.width();
    let mut group = RgbImage::new(side * COLUMNS, side * ROWS);
    for row in 0..ROWS {
        for column in 0..COLUMNS {
            image::imageops::replace(
                &mut group,
                &tile,
                i64::from(column * side),
                i64::from(row * side),
            );
        }
    }
    (group, side)
}

fn detect(config: DetectorConfig, image: &RgbImage) -> Vec<facade_face::Face> {
    let config = DetectorConfig {
        min_face: MinFace::Pixels(40.0),
        ..config
    };
    FaceDetector::new(config)
        .expect("embedded weights")
        .detect(image)
        .expect("detection runs")
}

#[test]
fn a_group_photo_reports_every_face_up_to_the_limit() {
    let (group, side) = group_photo();
    let faces = detect(DetectorConfig::default().with_max_faces(6), &group);
    assert_eq!(faces.len(), 6, "{faces:?}");
    let mut tiles: Vec<(u32, u32)> = faces
        .iter()
        .map(|f| {
            let [x, y] = f.landmarks[2]; // the nose
            (x as u32 / side, y as u32 / side)
        })
        .collect();
    tiles.sort();
    tiles.dedup();
    assert_eq!(tiles.len(), 6, "one face per tile: {faces:?}");

    let capped = detect(DetectorConfig::default(), &group);
    assert_eq!(capped.len(), DEFAULT_MAX_FACES, "{capped:?}");
}

/// Stopping at each place's first accepted look (a `--faces-only` scan) finds the same faces,
/// one per tile, with landmarks within 5% of the inter-ocular distance of reading every look.
#[test]
fn the_first_accepted_look_finds_the_same_faces() {
    let (group, side) = group_photo();
    let config = DetectorConfig::default().with_max_faces(6);
    let every = detect(config, &group);
    let first = detect(
        DetectorConfig {
            first_accepted_look: true,
            ..config
        },
        &group,
    );
    assert_eq!(first.len(), every.len(), "{first:?}");
    let tile = |f: &facade_face::Face| {
        let [x, y] = f.landmarks[2];
        (x as u32 / side, y as u32 / side)
    };
    for face in &first {
        let twin = every
            .iter()
            .find(|e| tile(e) == tile(face))
            .expect("a face in the same tile");
        let [left, right] = [twin.landmarks[0], twin.landmarks[1]];
        let iod = ((left[0] - right[0]).powi(2) + (left[1] - right[1]).powi(2)).sqrt();
        let moved: f32 = face
            .landmarks
            .iter()
            .zip(&twin.landmarks)
            .map(|(a, b)| ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2)).sqrt())
            .sum::<f32>()
            / 5.0;
        assert!(moved <= 0.05 * iod, "moved {moved} px, iod {iod}");
    }
}
