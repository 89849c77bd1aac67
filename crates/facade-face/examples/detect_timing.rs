//! Times face detection on the given images: `cargo run --release -p facade-face --example
//! detect_timing -- IMAGE...` (profiling aid; the benchmark proper is `bench/scan.sh`).
use std::time::Instant;

use facade_face::{DetectorConfig, FaceDetector};
use facade_image::{decode, DecodeLimits};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let detector = FaceDetector::new(DetectorConfig::default())?;
    for path in std::env::args().skip(1) {
        let image = decode(&std::fs::read(&path)?, &DecodeLimits::default())?.image;
        let runs = 20;
        let start = Instant::now();
        let mut faces = Vec::new();
        for _ in 0..runs {
            faces = detector.detect(&image)?;
        }
        let ms = start.elapsed().as_secs_f64() * 1000.0 / runs as f64;
        println!(
            "{path}: {}x{} {ms:.2} ms/detect, {} faces",
            image.width(),
            image.height(),
            faces.len()
        );
    }
    Ok(())
}
