//! Exports the classifier's exact input (the 64×64 aligned face crop of each image's most
//! confident face, as `facade train` sees an undegraded image) for experiments in other tools,
//! e.g. `scripts/experiments/backbone_probe.py` on a GPU.
//!
//! `cargo run --release -p facade-detect --example export_crops -- MANIFEST OUT_DIR TRAIN_PER_SOURCE TEST_PER_SOURCE`
//!
//! Writes `OUT_DIR/crops.u8` (crops back to back, `3 × 64 × 64` bytes each, plane by plane)
//! and `OUT_DIR/crops.csv` (`index,source,label,fold`). The folds are the training split's own
//! (by content hash): train-fold images to fit, test-fold images to measure; calibration-fold
//! images are not exported. Images where no face is found are left out and counted.

use std::io::Write;
use std::path::PathBuf;

use facade_detect::align::{aligned_crop, CropFrame, Jitter, CROP_SIDE};
use facade_detect::dataset::{fold_of, read_manifest, sha256_hex, Fold};
use facade_face::{DetectorConfig, FaceDetector};
use facade_image::{decode, DecodeLimits};
use rayon::prelude::*;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [manifest, out, train_cap, test_cap] = args.as_slice() else {
        return Err("usage: export_crops MANIFEST OUT_DIR TRAIN_PER_SOURCE TEST_PER_SOURCE".into());
    };
    let (train_cap, test_cap): (usize, usize) = (train_cap.parse()?, test_cap.parse()?);
    let out = PathBuf::from(out);
    std::fs::create_dir_all(&out)?;
    let entries = read_manifest(&PathBuf::from(manifest))?;
    let detector = FaceDetector::new(DetectorConfig::default())?;

    // Pick by fold and source (manifest order), hashing every image once.
    let folds: Vec<Option<Fold>> = entries
        .par_iter()
        .map(|e| {
            std::fs::read(&e.path)
                .ok()
                .map(|b| fold_of(&sha256_hex(&b)))
        })
        .collect();
    let mut taken = std::collections::HashMap::<(String, Fold), usize>::new();
    let mut picked = Vec::new();
    for (entry, fold) in entries.iter().zip(folds) {
        let Some(fold) = fold.filter(|f| *f != Fold::Calibration) else {
            continue;
        };
        let cap = if fold == Fold::Train {
            train_cap
        } else {
            test_cap
        };
        let n = taken.entry((entry.source.clone(), fold)).or_default();
        if *n < cap {
            *n += 1;
            picked.push((entry, fold));
        }
    }
    let crops: Vec<Option<Vec<u8>>> = picked
        .par_iter()
        .map(|(entry, _)| {
            let bytes = std::fs::read(&entry.path).ok()?;
            let image = decode(&bytes, &DecodeLimits::default()).ok()?.image;
            let faces = detector.detect(&image).ok()?;
            let face = faces.first()?;
            Some(
                aligned_crop(
                    &image,
                    &face.landmarks,
                    Jitter::default(),
                    CropFrame::inner(CROP_SIDE),
                )
                .pixels,
            )
        })
        .collect();
    let mut pixels = std::io::BufWriter::new(std::fs::File::create(out.join("crops.u8"))?);
    let mut index = csv::Writer::from_path(out.join("crops.csv"))?;
    index.write_record(["index", "source", "label", "fold"])?;
    let (mut written, mut no_face) = (0usize, 0usize);
    for ((entry, fold), crop) in picked.iter().zip(crops) {
        let Some(crop) = crop else {
            no_face += 1;
            continue;
        };
        pixels.write_all(&crop)?;
        let label = if entry.fake { "fake" } else { "real" };
        let fold = if *fold == Fold::Train {
            "train"
        } else {
            "test"
        };
        index.write_record([&written.to_string(), &entry.source, label, fold])?;
        written += 1;
    }
    pixels.flush()?;
    index.flush()?;
    eprintln!(
        "{written} crops written to {}, {no_face} without a face",
        out.display()
    );
    Ok(())
}
