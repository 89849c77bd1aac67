//! What reading provenance costs per image, beside decoding the same bytes: the reader runs
//! on every scanned file, so it must stay small next to the decoder.
//!
//! `cargo bench -p facade-image --bench provenance` reads up to 300 pictures of
//! `../shared/faces` (JPEG and PNG, most with no metadata, as platforms serve them) and the six
//! originals of `../shared/provenance` (C2PA manifests and XMP), each from memory, one thread.

use std::path::{Path, PathBuf};
use std::time::Instant;

use facade_image::provenance::ProvenanceReader;
use facade_image::{decode, fixtures::shared_data_dir, DecodeLimits};

fn files_under(dir: &Path, limit: usize) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = walk(dir);
    files.sort();
    let step = (files.len() / limit.max(1)).max(1);
    files.into_iter().step_by(step).take(limit).collect()
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for path in entries.filter_map(|e| e.ok().map(|e| e.path())) {
        if path.is_dir() {
            out.extend(walk(&path));
        } else if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("jpg" | "jpeg" | "png" | "webp")
        ) {
            out.push(path);
        }
    }
    out
}

fn time(label: &str, files: &[Vec<u8>], reader: &ProvenanceReader) {
    if files.is_empty() {
        println!("{label}: no files (put the research data at ../shared)");
        return;
    }
    let limits = DecodeLimits::default();
    let started = Instant::now();
    let mut declared = 0;
    for bytes in files {
        declared += usize::from(reader.read(bytes).provenance.is_some());
    }
    let read = started.elapsed().as_secs_f64() / files.len() as f64;
    let started = Instant::now();
    for bytes in files {
        let _ = decode(bytes, &limits);
    }
    let decoded = started.elapsed().as_secs_f64() / files.len() as f64;
    println!(
        "{label}: {} files, {declared} with provenance; provenance {:.1} µs/image, decode {:.1} µs/image ({:.2}% of decoding)",
        files.len(),
        read * 1e6,
        decoded * 1e6,
        100.0 * read / decoded
    );
}

fn main() {
    let reader = ProvenanceReader::default();
    let shared = shared_data_dir();
    let load = |paths: Vec<PathBuf>| -> Vec<Vec<u8>> {
        paths.iter().filter_map(|p| std::fs::read(p).ok()).collect()
    };
    time(
        "shared faces",
        &load(files_under(&shared.join("faces"), 300)),
        &reader,
    );
    time(
        "provenance originals",
        &load(files_under(&shared.join("provenance"), 6)),
        &reader,
    );
}
