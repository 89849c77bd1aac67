//! # facade-image: untrusted bytes in, an upright RGB image out
//!
//! This crate owns the first step of every scan: turning the bytes of a file that came from
//! anywhere (a platform's CDN, an account export, an attacker) into an 8-bit RGB image that the
//! face stage can trust. It knows nothing about faces.
//!
//! What it guarantees:
//! - **Content decides the format**, not the file name: [`sniff_format`] reads magic bytes, so a
//!   PNG named `.jpg` decodes as a PNG and a text file named `.jpg` is rejected as not an image.
//! - **Limits before allocation**: the header's dimensions are checked against [`DecodeLimits`]
//!   before any pixel buffer exists, so a 50,000 × 50,000 "decompression bomb" costs nothing.
//! - **One pixel model**: greyscale, 16-bit, CMYK and alpha images all become 8-bit RGB
//!   (transparent pixels composited over white, as a browser shows them), and the EXIF
//!   orientation of JPEG/WebP/TIFF files is applied, so landmarks match what a person sees.
//! - **Partial files are named**: a file cut short that still decodes (the codec fills the
//!   missing rows) carries a `truncated: …` warning from [`completeness::truncation`].
//! - **Errors say what was wrong** ([`DecodeError`]) and a panic inside a codec is caught and
//!   reported as an error for that one image, never propagated.
//!
//! It also reads what a file declares about its own origin ([`provenance`]: C2PA manifests,
//! XMP source types, generator text, EXIF) from the original bytes, before decoding, so that a
//! scan can report it beside the pixel detectors.
//!
//! It also holds the resampling the face stage needs ([`resample`]): the "area" filter
//! (PyTorch's `interpolate(mode="area")`), on planar float images.
//!
//! ```
//! use facade_image::{decode, DecodeLimits};
//! let mut png = Vec::new();
//! image::RgbImage::new(4, 3)
//!     .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
//!     .unwrap();
//! let decoded = decode(&png, &DecodeLimits::default()).unwrap();
//! assert_eq!((decoded.image.width(), decoded.image.height()), (4, 3));
//! ```

pub mod completeness;
pub mod fixtures;
pub mod perceptual;
pub mod provenance;
pub mod resample;
pub mod thumbnail;

use std::io::Cursor;
use std::panic::{catch_unwind, AssertUnwindSafe};

use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits};

pub use image::RgbImage;
pub use resample::Planes;

/// The SHA-256 of an image's bytes as 64 lowercase hex digits: its identity in records, in
/// the store and in reviews.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Bounds on what one image may cost to decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeLimits {
    /// Largest accepted file, in bytes.
    pub max_file_bytes: u64,
    /// Largest accepted width or height, in pixels.
    pub max_side: u32,
    /// Largest accepted width × height.
    pub max_pixels: u64,
}

impl Default for DecodeLimits {
    /// 64 MiB files, 20,000 px sides, 64 megapixels: far above any profile picture, far below
    /// what would exhaust memory when every core decodes at once.
    fn default() -> Self {
        DecodeLimits {
            max_file_bytes: 64 << 20,
            max_side: 20_000,
            max_pixels: 64_000_000,
        }
    }
}

/// The container formats facade decodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Jpeg,
    Png,
    WebP,
    Gif,
    Bmp,
    Tiff,
}

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Format::Jpeg => "jpeg",
            Format::Png => "png",
            Format::WebP => "webp",
            Format::Gif => "gif",
            Format::Bmp => "bmp",
            Format::Tiff => "tiff",
        }
    }

    fn image_format(self) -> ImageFormat {
        match self {
            Format::Jpeg => ImageFormat::Jpeg,
            Format::Png => ImageFormat::Png,
            Format::WebP => ImageFormat::WebP,
            Format::Gif => ImageFormat::Gif,
            Format::Bmp => ImageFormat::Bmp,
            Format::Tiff => ImageFormat::Tiff,
        }
    }
}

/// Why an image could not be decoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("empty file")]
    Empty,
    #[error("not an image: content matches no supported format (JPEG, PNG, WebP, GIF, BMP, TIFF)")]
    NotAnImage,
    #[error("file too large: {bytes} bytes exceeds the limit of {limit} bytes")]
    FileTooLarge { bytes: u64, limit: u64 },
    #[error("image too large: {width}x{height} pixels exceeds the limit ({limit})")]
    TooLarge {
        width: u32,
        height: u32,
        limit: String,
    },
    /// A limit the codec itself hit after the header check passed (e.g. its memory budget).
    #[error("image too large to decode: {0}")]
    CodecLimit(String),
    #[error("image has no pixels ({width}x{height})")]
    NoPixels { width: u32, height: u32 },
    #[error("corrupt or truncated {format} data: {detail}")]
    Corrupt {
        format: &'static str,
        detail: String,
    },
    #[error("unsupported {format} variant: {detail}")]
    Unsupported {
        format: &'static str,
        detail: String,
    },
    #[error("decoder crashed on this {format} file (caught): {detail}")]
    DecoderPanic {
        format: &'static str,
        detail: String,
    },
}

/// A decoded, upright RGB image and what it was.
#[derive(Debug, Clone)]
pub struct Decoded {
    pub image: RgbImage,
    pub format: Format,
    /// What an analyst must know before trusting the pixels, e.g. `truncated: …` when the
    /// file ends before its image does (the decoder filled the rest). Empty for whole files.
    pub warnings: Vec<String>,
}

/// Recognises an image container by its first bytes.
pub fn sniff_format(bytes: &[u8]) -> Option<Format> {
    let starts = |magic: &[u8]| bytes.starts_with(magic);
    if starts(&[0xFF, 0xD8, 0xFF]) {
        Some(Format::Jpeg)
    } else if starts(b"\x89PNG\r\n\x1a\n") {
        Some(Format::Png)
    } else if bytes.len() >= 12 && &bytes[0..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
        Some(Format::WebP)
    } else if starts(b"GIF87a") || starts(b"GIF89a") {
        Some(Format::Gif)
    } else if starts(b"BM") && bytes.len() >= 26 {
        Some(Format::Bmp)
    } else if starts(b"II*\0") || starts(b"MM\0*") {
        Some(Format::Tiff)
    } else {
        None
    }
}

/// Decodes `bytes` into an upright 8-bit RGB image within `limits`.
pub fn decode(bytes: &[u8], limits: &DecodeLimits) -> Result<Decoded, DecodeError> {
    if bytes.is_empty() {
        return Err(DecodeError::Empty);
    }
    if bytes.len() as u64 > limits.max_file_bytes {
        return Err(DecodeError::FileTooLarge {
            bytes: bytes.len() as u64,
            limit: limits.max_file_bytes,
        });
    }
    let format = sniff_format(bytes).ok_or(DecodeError::NotAnImage)?;
    // Codecs are large C-like state machines fed hostile input; a panic in one must cost only
    // this image.
    match catch_unwind(AssertUnwindSafe(|| decode_as(bytes, format, limits))) {
        Ok(result) => result,
        Err(panic) => Err(DecodeError::DecoderPanic {
            format: format.name(),
            detail: panic_message(&panic),
        }),
    }
}

fn decode_as(bytes: &[u8], format: Format, limits: &DecodeLimits) -> Result<Decoded, DecodeError> {
    let corrupt = |e: image::ImageError| classify(format, e);
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format.image_format());
    reader.limits(codec_limits(limits));
    let mut decoder = reader.into_decoder().map_err(corrupt)?;
    let (width, height) = decoder.dimensions();
    check_dimensions(width, height, limits)?;
    let orientation = decoder.orientation().map_err(corrupt)?;
    let mut image = DynamicImage::from_decoder(decoder).map_err(corrupt)?;
    image.apply_orientation(orientation);
    Ok(Decoded {
        image: to_rgb_over_white(image),
        format,
        warnings: completeness::truncation(bytes, format)
            .into_iter()
            .collect(),
    })
}

fn codec_limits(limits: &DecodeLimits) -> Limits {
    // Width and height are left to `check_dimensions`, which reports the real size; the codec
    // keeps only a memory budget, as a second line of defence.
    let mut codec = Limits::default();
    codec.max_image_width = None;
    codec.max_image_height = None;
    // Room for the decoded pixels at up to 16 bytes each (RGBA f32) plus codec scratch space.
    codec.max_alloc = Some(limits.max_pixels.saturating_mul(16).max(64 << 20));
    codec
}

fn check_dimensions(width: u32, height: u32, limits: &DecodeLimits) -> Result<(), DecodeError> {
    if width == 0 || height == 0 {
        return Err(DecodeError::NoPixels { width, height });
    }
    let too_large = |limit: String| DecodeError::TooLarge {
        width,
        height,
        limit,
    };
    if width > limits.max_side || height > limits.max_side {
        return Err(too_large(format!("{} px per side", limits.max_side)));
    }
    if u64::from(width) * u64::from(height) > limits.max_pixels {
        return Err(too_large(format!("{} pixels", limits.max_pixels)));
    }
    Ok(())
}

fn classify(format: Format, error: image::ImageError) -> DecodeError {
    use image::error::UnsupportedErrorKind;
    match error {
        image::ImageError::Limits(limit) => DecodeError::CodecLimit(limit.to_string()),
        image::ImageError::Unsupported(unsupported) => match unsupported.kind() {
            UnsupportedErrorKind::Format(_) => DecodeError::NotAnImage,
            _ => DecodeError::Unsupported {
                format: format.name(),
                detail: unsupported.to_string(),
            },
        },
        other => DecodeError::Corrupt {
            format: format.name(),
            detail: other.to_string(),
        },
    }
}

/// Converts any pixel layout to 8-bit RGB; transparent pixels become white, as a browser would
/// show them on a white page, rather than whatever colour the encoder left under alpha 0.
fn to_rgb_over_white(image: DynamicImage) -> RgbImage {
    if !image.color().has_alpha() {
        return image.to_rgb8();
    }
    let rgba = image.to_rgba8();
    let (width, height) = rgba.dimensions();
    let mut rgb = RgbImage::new(width, height);
    for (out, px) in rgb.pixels_mut().zip(rgba.pixels()) {
        let alpha = u16::from(px[3]);
        for c in 0..3 {
            let over_white = (u16::from(px[c]) * alpha + 255 * (255 - alpha) + 127) / 255;
            out[c] = over_white as u8;
        }
    }
    rgb
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".to_string()
    }
}

#[cfg(test)]
mod tests;
