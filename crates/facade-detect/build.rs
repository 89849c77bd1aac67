//! Fingerprints the embedded model at build time.
//!
//! Why: a model's fingerprint is the SHA-256 of its weights and parameters, and hashing the
//! embedded 27 MB at every start took about an eighth of a one-picture scan. The embedded
//! files cannot change after the build, so their fingerprint is computed here, once, the same
//! way `Detectors::load` computes a model folder's at run time (a unit test holds the two
//! equal).

use sha2::Digest;
use std::path::Path;

fn main() {
    let model = Path::new("model");
    let weights = model.join("detectors.safetensors");
    let parameters = model.join("detectors.json");
    for path in [&weights, &parameters] {
        println!("cargo:rerun-if-changed={}", path.display());
    }
    let mut hasher = sha2::Sha256::new();
    for path in [&weights, &parameters] {
        let bytes = std::fs::read(path)
            .unwrap_or_else(|e| panic!("cannot read the embedded model's {}: {e}", path.display()));
        hasher.update(&bytes);
    }
    let fingerprint: String = hasher.finalize()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let out = std::env::var("OUT_DIR").expect("cargo sets OUT_DIR");
    let target = Path::new(&out).join("embedded-fingerprint");
    std::fs::write(&target, fingerprint)
        .unwrap_or_else(|e| panic!("cannot write {}: {e}", target.display()));
}
