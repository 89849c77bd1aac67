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
