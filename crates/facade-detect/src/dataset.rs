//! Labelled images: the manifest, the split by content hash, and the degradations that
//! training (as augmentation) and evaluation (as a robustness condition) apply.

use std::io::Cursor;
use std::path::{Path, PathBuf};

use facade_image::{decode, DecodeLimits, RgbImage};
use image::imageops::FilterType;

#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    #[error("reading manifest {path}: {source}")]
    Manifest { path: String, source: csv::Error },
    #[error("manifest {path} has no `{column}` column")]
    MissingColumn { path: String, column: &'static str },
    #[error("manifest {path}, line {line}: {reason}")]
    Row {
        path: String,
        line: u64,
        reason: String,
    },
    #[error("re-encoding an image: {0}")]
    Encode(String),
}

/// One labelled image of a manifest (`path,label,source,generator,...`).
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// Path as the manifest writes it (relative to the manifest's folder).
    pub name: String,
    /// Path on disk.
    pub path: PathBuf,
    pub fake: bool,
    pub source: String,
    pub generator: String,
}

/// Reads a manifest; rows with an unknown label or no path are errors with their line number.
pub fn read_manifest(path: &Path) -> Result<Vec<Entry>, DatasetError> {
    let shown = path.display().to_string();
    let csv_error = |source| DatasetError::Manifest {
        path: shown.clone(),
        source,
    };
    let mut reader = csv::Reader::from_path(path).map_err(csv_error)?;
    let headers = reader.headers().map_err(csv_error)?.clone();
    let column = |name: &'static str| {
        headers
            .iter()
            .position(|h| h.trim() == name)
            .ok_or(DatasetError::MissingColumn {
                path: shown.clone(),
                column: name,
            })
    };
    let (c_path, c_label, c_source) = (column("path")?, column("label")?, column("source")?);
    let c_generator = column("generator").ok();
    let base = path.parent().unwrap_or(Path::new("."));
    let mut entries = Vec::new();
    for record in reader.records() {
        let record = record.map_err(csv_error)?;
        let line = record.position().map_or(0, |p| p.line());
        let row_error = |reason: String| DatasetError::Row {
            path: shown.clone(),
            line,
            reason,
        };
        let field = |i: usize| record.get(i).unwrap_or("").trim().to_owned();
        let name = field(c_path);
        if name.is_empty() {
            return Err(row_error("empty path".into()));
        }
        let fake = match field(c_label).as_str() {
            "fake" => true,
            "real" => false,
            other => {
                return Err(row_error(format!(
                    "label must be fake or real, not {other:?}"
                )))
            }
        };
        entries.push(Entry {
            path: base.join(&name),
            name,
            fake,
            source: field(c_source),
            generator: c_generator.map(field).unwrap_or_default(),
        });
    }
    Ok(entries)
}

/// The shared labelled face set that tests and benchmarks read: `$FACADE_SHARED_DIR/faces`,
/// or `shared/faces` beside the workspace. Panics, with the reason, when it is missing; tests
/// first ask [`facade_image::fixtures::shared_faces_or_skip`], which skips them outside CI.
pub fn shared_faces_dir() -> PathBuf {
    let dir = facade_image::fixtures::shared_data_dir().join("faces");
    assert!(
        dir.join("manifest.csv").is_file(),
        "shared face data not found at {} (set FACADE_SHARED_DIR)",
        dir.display()
    );
    dir
}

/// The content hash the split is made from (the same identity records and the store use).
pub use facade_image::sha256_hex;

/// Which part of the data an image belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Fold {
    /// Fits the detectors (50%).
    Train,
    /// Fits the fusion and the operating point (15%).
    Calibration,
    /// Never used by training (35%).
    Test,
}

/// The fold of an image, from its content hash: stable across renames and copies, and an
/// image that appears twice in a data set lands in one fold only.
pub fn fold_of(sha256_hex: &str) -> Fold {
    let bucket = u32::from_str_radix(sha256_hex.get(..8).unwrap_or("0"), 16).unwrap_or(0) % 20;
    match bucket {
        0..=9 => Fold::Train,
        10..=12 => Fold::Calibration,
        _ => Fold::Test,
    }
}

/// A degradation of the kind a served profile picture goes through.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Degradation {
    /// Longest side after resizing (images already smaller are left at their size).
    pub max_side: u32,
    /// JPEG quality of the re-encoding.
    pub quality: u8,
    /// Gaussian blur before encoding (0 = none).
    pub blur_sigma: f32,
}

impl Degradation {
    /// The evaluation's robustness condition: at most 200 px, JPEG quality 80.
    pub const SMALL_JPEG: Degradation = Degradation {
        max_side: 200,
        quality: 80,
        blur_sigma: 0.0,
    };

    /// Applies it: resize (antialiased), blur, JPEG encode and decode.
    pub fn apply(&self, image: &RgbImage) -> Result<RgbImage, DatasetError> {
        let (w, h) = image.dimensions();
        let longest = w.max(h).max(1);
        let mut out = if longest > self.max_side {
            let k = self.max_side as f64 / longest as f64;
            let nw = ((w as f64 * k).round() as u32).max(1);
            let nh = ((h as f64 * k).round() as u32).max(1);
            image::imageops::resize(image, nw, nh, FilterType::Triangle)
        } else {
            image.clone()
        };
        if self.blur_sigma > 0.0 {
            out = image::imageops::blur(&out, self.blur_sigma);
        }
        let mut jpeg = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(Cursor::new(&mut jpeg), self.quality)
            .encode_image(&out)
            .map_err(|e| DatasetError::Encode(e.to_string()))?;
        decode(&jpeg, &DecodeLimits::default())
            .map(|d| d.image)
            .map_err(|e| DatasetError::Encode(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folds_follow_the_hash_and_cover_the_split() {
        let mut counts = [0usize; 3];
        for i in 0..2000u32 {
            let hash = sha256_hex(&i.to_le_bytes());
            let k = match fold_of(&hash) {
                Fold::Train => 0,
                Fold::Calibration => 1,
                Fold::Test => 2,
            };
            counts[k] += 1;
            assert_eq!(fold_of(&hash), fold_of(&sha256_hex(&i.to_le_bytes())));
        }
        assert!((900..1100).contains(&counts[0]), "{counts:?}");
        assert!((230..370).contains(&counts[1]), "{counts:?}");
        assert!((600..800).contains(&counts[2]), "{counts:?}");
    }

    #[test]
    fn small_jpeg_condition_caps_the_size() {
        let img = RgbImage::from_fn(640, 480, |x, y| {
            image::Rgb([(x % 256) as u8, (y % 256) as u8, 9])
        });
        let out = Degradation::SMALL_JPEG.apply(&img).expect("degrade");
        assert_eq!(out.dimensions(), (200, 150));
        let small = RgbImage::new(120, 90);
        assert_eq!(
            Degradation::SMALL_JPEG
                .apply(&small)
                .expect("degrade")
                .dimensions(),
            (120, 90)
        );
    }

    #[test]
    fn manifest_rows_with_bad_labels_name_their_line() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("m.csv");
        std::fs::write(&path, "path,label,source\na.jpg,fake,x\nb.jpg,maybe,y\n").expect("write");
        let err = read_manifest(&path).expect_err("bad label");
        assert!(err.to_string().contains("line 3"), "{err}");
        std::fs::write(&path, "path,label,source\na.jpg,fake,x\n").expect("write");
        let entries = read_manifest(&path).expect("read");
        assert_eq!(entries[0].path, dir.path().join("a.jpg"));
        assert!(entries[0].fake);
    }
}
