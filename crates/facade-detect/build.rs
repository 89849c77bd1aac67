//! Fingerprints the embedded model at build time.
//!
//! Why: hashing the embedded 27 MB at every start took about an eighth of a one-picture scan.
//! The embedded files cannot change after the build, so their fingerprint is computed here,
//! once, by the function `Detectors::load` uses for a model folder at run time (a unit test
//! holds the two equal).

#[path = "src/fingerprint.rs"]
mod fingerprint;

use std::path::Path;

fn main() {
    let model = Path::new("model");
    let read = |name: &str| {
        let path = model.join(name);
        println!("cargo:rerun-if-changed={}", path.display());
        std::fs::read(&path)
            .unwrap_or_else(|e| panic!("cannot read the embedded model's {}: {e}", path.display()))
    };
    let fingerprint =
        fingerprint::fingerprint(&read("detectors.safetensors"), &read("detectors.json"));
    let out = std::env::var("OUT_DIR").expect("cargo sets OUT_DIR");
    let target = Path::new(&out).join("embedded-fingerprint");
    std::fs::write(&target, fingerprint)
        .unwrap_or_else(|e| panic!("cannot write {}: {e}", target.display()));
}
