//! Exports the classifier's exact input (the aligned face crop of each image's most confident
//! face, as `facade train` sees an undegraded image) for experiments in other tools, e.g.
//! `scripts/experiments/backbone_probe.py` and `crop_probe.py` on a GPU.
//!
//! `cargo run --release -p facade-detect --example export_crops -- MANIFEST OUT_DIR TRAIN_PER_SOURCE TEST_PER_SOURCE [FRAMES]`
//!
//! FRAMES lists the crops to write, `SIDExZOOM` separated by commas (default `64x1.3`, the
//! 64 px inner-face crop). Writes `OUT_DIR/crops.u8` for the first (crops back to back,
//! `3 × side × side` bytes each, plane by plane), `OUT_DIR/crops-SIDExZOOM.u8` for each
//! further one, and `OUT_DIR/crops.csv` (`index,source,label,fold`). The folds are the training split's own
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
    let (manifest, out, train_cap, test_cap, frames) =
        match args.as_slice() {
            [m, o, a, b] => (m, o, a, b, format!("{CROP_SIDE}x1.3")),
            [m, o, a, b, f] => (m, o, a, b, f.clone()),
            _ => return Err(
                "usage: export_crops MANIFEST OUT_DIR TRAIN_PER_SOURCE TEST_PER_SOURCE [FRAMES]"
                    .into(),
            ),
        };
    let frames = parse_frames(&frames)?;
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
    let crops: Vec<Option<Vec<Vec<u8>>>> = picked
        .par_iter()
        .map(|(entry, _)| {
            let bytes = std::fs::read(&entry.path).ok()?;
            let image = decode(&bytes, &DecodeLimits::default()).ok()?.image;
            let faces = detector.detect(&image).ok()?;
            let face = faces.first()?;
            Some(
                frames
                    .iter()
                    .map(|&frame| {
                        aligned_crop(&image, &face.landmarks, Jitter::default(), frame).pixels
                    })
                    .collect(),
            )
        })
        .collect();
    let mut files = frames
        .iter()
        .enumerate()
        .map(|(i, frame)| {
            let name = if i == 0 {
                "crops.u8".to_owned()
            } else {
                format!("crops-{}x{}.u8", frame.side, frame.zoom)
            };
            std::fs::File::create(out.join(name)).map(std::io::BufWriter::new)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut index = csv::Writer::from_path(out.join("crops.csv"))?;
    index.write_record(["index", "source", "label", "fold"])?;
    let (mut written, mut no_face) = (0usize, 0usize);
    for ((entry, fold), crop) in picked.iter().zip(crops) {
        let Some(crop) = crop else {
            no_face += 1;
            continue;
        };
        for (file, pixels) in files.iter_mut().zip(&crop) {
            file.write_all(pixels)?;
        }
        let label = if entry.fake { "fake" } else { "real" };
        let fold = if *fold == Fold::Train {
            "train"
        } else {
            "test"
        };
        index.write_record([&written.to_string(), &entry.source, label, fold])?;
        written += 1;
    }
    for file in &mut files {
        file.flush()?;
    }
    index.flush()?;
    eprintln!(
        "{written} crops written to {}, {no_face} without a face",
        out.display()
    );
    Ok(())
}

/// `SIDExZOOM[,SIDExZOOM…]` as crop frames.
fn parse_frames(text: &str) -> Result<Vec<CropFrame>, Box<dyn std::error::Error>> {
    text.split(',')
        .map(|item| {
            let (side, zoom) = item
                .split_once('x')
                .ok_or_else(|| format!("frame {item:?} is not SIDExZOOM"))?;
            Ok(CropFrame {
                side: side.parse()?,
                zoom: zoom.parse()?,
            })
        })
        .collect()
}
