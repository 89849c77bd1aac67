//! A model's fingerprint: the first 8 bytes of the SHA-256 of its weights and then its
//! parameters, in hex. One definition for `Detectors::load` (a model folder, at run time) and
//! `build.rs` (the embedded model, at build time), which includes this file.

use sha2::Digest;

pub fn fingerprint(weights: &[u8], parameters: &[u8]) -> String {
    let mut hasher = sha2::Sha256::new();
    hasher.update(weights);
    hasher.update(parameters);
    hasher.finalize()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
