//! Provenance: what the file itself says about where its picture came from.
//!
//! Read from the original bytes before decoding, and cheap enough for every scan: the
//! container's metadata is walked without touching the pixels ([`containers`]), and the C2PA
//! SDK runs only when the file carries a C2PA manifest store.
//!
//! Four witnesses, in the order in which they are believed when they disagree:
//! 1. **C2PA** manifests (`c2pa` crate, no network): the claim generator, the `c2pa.actions`
//!    with their `digitalSourceType`, the signer, and whether the signature and the hard
//!    binding validate. The trust list starts empty: a real file reads as `untrusted` unless
//!    the caller gives trust anchors ([`ProvenanceReader::with_trust_anchors`]).
//! 2. **XMP** `Iptc4xmpExt:DigitalSourceType` and `xmp:CreatorTool`.
//! 3. **PNG text** written by Stable Diffusion front ends (`parameters`, `prompt`, `workflow`,
//!    `invokeai_metadata`) and Midjourney's `Description`.
//! 4. **EXIF** `Software` and `UserComment`.
//!
//! Metadata is easy to write: a claim is shown as evidence, never as proof. A claim that the
//! picture is a camera capture never clears a face; a claim that it was generated is reported
//! beside the pixel detectors' score, which it does not change.

mod c2pa_claims;
mod claims;
mod containers;

use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// Where a claim was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum ClaimSource {
    #[serde(rename = "c2pa")]
    C2pa,
    #[serde(rename = "xmp")]
    Xmp,
    #[serde(rename = "png-text")]
    PngText,
    #[serde(rename = "exif")]
    Exif,
}

impl ClaimSource {
    pub fn as_str(self) -> &'static str {
        match self {
            ClaimSource::C2pa => "c2pa",
            ClaimSource::Xmp => "xmp",
            ClaimSource::PngText => "png-text",
            ClaimSource::Exif => "exif",
        }
    }
}

/// A C2PA signature: `valid` (chains to a trust anchor the caller gave), `untrusted` (the
/// signature checks out but nothing vouches for the signer), `invalid` (it does not check out).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Signature {
    Valid,
    Invalid,
    Untrusted,
}

impl Signature {
    pub fn as_str(self) -> &'static str {
        match self {
            Signature::Valid => "valid",
            Signature::Invalid => "invalid",
            Signature::Untrusted => "untrusted",
        }
    }
}

/// A C2PA hard binding: whether the manifest's hash of the file still matches its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Binding {
    Valid,
    Invalid,
}

impl Binding {
    pub fn as_str(self) -> &'static str {
        match self {
            Binding::Valid => "valid",
            Binding::Invalid => "invalid",
        }
    }
}

/// One statement a file makes about its origin.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Claim {
    pub source: ClaimSource,
    /// Where in the file: `c2pa.actions: c2pa.created`, `PNG text "parameters"`, ...
    pub field: String,
    /// true: made by a trained algorithm; false: a capture; null: the claim does not say.
    pub ai_generated: Option<bool>,
    /// The generator (model, checkpoint or service) it names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generator: Option<String>,
    /// A tool it names that is not known to generate (an editor, a camera's firmware).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digital_source_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signer: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<Signature>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub binding: Option<Binding>,
}

impl Claim {
    fn new(source: ClaimSource, field: impl Into<String>) -> Claim {
        Claim {
            source,
            field: field.into(),
            ai_generated: None,
            generator: None,
            tool: None,
            digital_source_type: None,
            signer: None,
            signature: None,
            binding: None,
        }
    }
}

/// What a file declares about its origin, every claim kept; the top-level fields follow C2PA,
/// then XMP, then PNG text, then EXIF where the claims disagree.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Provenance {
    /// true when any claim says the content was made by a trained algorithm (or generator text
    /// records a generation); false when the claims only declare a capture; null otherwise.
    pub ai_generated: Option<bool>,
    pub source: ClaimSource,
    pub generator: Option<String>,
    pub digital_source_type: Option<String>,
    /// The C2PA signature (null: no C2PA manifest, so nothing is signed).
    pub signature: Option<Signature>,
    pub binding: Option<Binding>,
    pub claims: Vec<Claim>,
}

impl Provenance {
    /// Whether the file declares itself made by an algorithm (what sets a verdict).
    pub fn declares_generated(&self) -> bool {
        self.ai_generated == Some(true)
    }

    /// One line for people: `AI-generated (c2pa: DALL·E, signature untrusted, binding valid)`.
    pub fn summary(&self) -> String {
        let what = match self.ai_generated {
            Some(true) => "AI-generated",
            Some(false) => "a capture",
            None => "no source type",
        };
        let mut details = vec![match &self.generator {
            Some(generator) => format!("{}: {generator}", self.source.as_str()),
            None => self.source.as_str().to_owned(),
        }];
        if let Some(signature) = self.signature {
            details.push(format!("signature {}", signature.as_str()));
        }
        if let Some(binding) = self.binding {
            details.push(format!("binding {}", binding.as_str()));
        }
        format!("{what} ({})", details.join(", "))
    }

    /// The claims combined, or `None` when there are none (the file says nothing).
    pub fn from_claims(mut claims: Vec<Claim>) -> Option<Provenance> {
        claims.sort_by_key(|c| c.source);
        let first = claims.first()?;
        let said = |get: fn(&Claim) -> Option<String>| claims.iter().find_map(get);
        let ai_generated = if claims.iter().any(|c| c.ai_generated == Some(true)) {
            Some(true)
        } else if claims.iter().any(|c| c.ai_generated == Some(false)) {
            Some(false)
        } else {
            None
        };
        let c2pa = claims.iter().find(|c| c.source == ClaimSource::C2pa);
        Some(Provenance {
            ai_generated,
            source: first.source,
            generator: said(|c| c.generator.clone()),
            digital_source_type: said(|c| c.digital_source_type.clone()),
            signature: c2pa.and_then(|c| c.signature),
            binding: c2pa.and_then(|c| c.binding),
            claims,
        })
    }
}

/// What reading one file gave: its provenance (absent when it says nothing) and the problems
/// met on the way (malformed or oversized metadata), each a `provenance: …` warning.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Reading {
    pub provenance: Option<Provenance>,
    pub problems: Vec<String>,
}

/// Reads provenance; holds the C2PA verification settings (trust anchors), shared by threads.
#[derive(Clone)]
pub struct ProvenanceReader {
    c2pa: Arc<c2pa::Context>,
    /// SHA-256 of the trust anchors given, for the judge's fingerprint.
    anchors: Option<String>,
}

impl std::fmt::Debug for ProvenanceReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProvenanceReader")
            .field("anchors", &self.anchors)
            .finish()
    }
}

impl Default for ProvenanceReader {
    fn default() -> Self {
        ProvenanceReader::with_trust_anchors(None).expect("default C2PA settings are valid")
        // no input-derived data here
    }
}

/// Trust anchors that could not be used.
#[derive(Debug, thiserror::Error)]
#[error("C2PA trust anchors: {0}")]
pub struct TrustError(String);

impl ProvenanceReader {
    /// A reader whose C2PA signatures are `valid` only when they chain to one of the PEM
    /// certificates in `anchors` (none: every signer is `untrusted`). Nothing is fetched.
    pub fn with_trust_anchors(anchors: Option<&str>) -> Result<ProvenanceReader, TrustError> {
        let mut settings = c2pa::Settings::new();
        settings.verify.remote_manifest_fetch = false;
        settings.verify.ocsp_fetch = false;
        if let Some(pem) = anchors {
            if !pem.contains("-----BEGIN CERTIFICATE-----") {
                return Err(TrustError("no PEM certificate in the file".into()));
            }
            settings.trust.trust_anchors = Some(pem.to_owned());
        }
        let context = c2pa::Context::new()
            .with_settings(settings)
            .map_err(|e| TrustError(e.to_string()))?;
        Ok(ProvenanceReader {
            c2pa: Arc::new(context),
            anchors: anchors.map(|pem| crate::sha256_hex(pem.as_bytes())),
        })
    }

    /// The SHA-256 of the trust anchors in use, if any were given.
    pub fn anchors_sha256(&self) -> Option<&str> {
        self.anchors.as_deref()
    }

    /// Everything `bytes` declares about its origin.
    pub fn read(&self, bytes: &[u8]) -> Reading {
        let mut problems = Vec::new();
        let metadata = containers::collect(bytes, &mut problems);
        let mut claims = Vec::new();
        if let Some(format) = metadata.c2pa_format {
            claims.extend(c2pa_claims::read(&self.c2pa, format, bytes, &mut problems));
        }
        for xmp in &metadata.xmp {
            claims.extend(claims::from_xmp(xmp));
        }
        for (key, text) in &metadata.texts {
            claims.extend(claims::from_png_text(key, text, &mut problems));
        }
        for exif in &metadata.exif {
            claims.extend(claims::from_exif(exif));
        }
        Reading {
            provenance: Provenance::from_claims(claims),
            problems: problems
                .into_iter()
                .map(|p| format!("provenance: {p}"))
                .collect(),
        }
    }
}

/// IPTC digital source types (the last segment of the code's URI) that say a trained or other
/// algorithm made the content.
const GENERATED_TYPES: [&str; 3] = [
    "trainedAlgorithmicMedia",
    "compositeWithTrainedAlgorithmicMedia",
    "algorithmicMedia",
];

/// Types that say the content was captured from the world.
const CAPTURED_TYPES: [&str; 5] = [
    "digitalCapture",
    "computationalCapture",
    "negativeFilm",
    "positiveFilm",
    "print",
];

/// What a digital source type (full IPTC URI or bare code) says about generation.
pub fn source_type_says_generated(source_type: &str) -> Option<bool> {
    let code = source_type
        .trim()
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or_default();
    if GENERATED_TYPES.contains(&code) {
        Some(true)
    } else if CAPTURED_TYPES.contains(&code) {
        Some(false)
    } else {
        None
    }
}

#[cfg(test)]
mod tests;
