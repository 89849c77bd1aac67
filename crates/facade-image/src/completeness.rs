//! Whether a file holds all of its image, read from the container's own structure.
//!
//! Decoders are forgiving: a JPEG cut to a third of its bytes still decodes, the missing rows
//! filled with grey, and a detector would score that as if it were the picture. CDNs and
//! exports serve such files every day, so facade checks the container before trusting the
//! pixels: a JPEG must reach its end-of-image marker, a PNG its `IEND` chunk with every chunk
//! whole, a WebP the length its RIFF header announces, a BMP the file size in its header, a
//! GIF its trailer byte. The check reads bytes only; it never decodes.

use crate::Format;

/// Why the file is incomplete, or `None` when its container is whole (or is a format this
/// check does not read: TIFF).
pub fn truncation(bytes: &[u8], format: Format) -> Option<String> {
    let reason = match format {
        Format::Jpeg => jpeg_truncation(bytes),
        Format::Png => png_truncation(bytes),
        Format::WebP => riff_truncation(bytes),
        Format::Bmp => bmp_truncation(bytes),
        Format::Gif => (bytes.last() != Some(&0x3B))
            .then(|| "the GIF ends without its trailer byte".to_owned()),
        Format::Tiff => None,
    }?;
    Some(format!("truncated: {reason} ({} bytes read)", bytes.len()))
}

/// Walks the marker segments up to the first scan, then looks for the end-of-image marker
/// after it. Inside entropy-coded data a 0xFF byte is always followed by 0x00 or a restart
/// marker, so `FF D9` there can only be the real end (an EXIF thumbnail's own markers sit in
/// an APP1 segment before the first scan and are skipped with it).
fn jpeg_truncation(bytes: &[u8]) -> Option<String> {
    let mut at = 2; // after SOI
    loop {
        // Markers may be preceded by any number of 0xFF fill bytes.
        while bytes.get(at) == Some(&0xFF) && bytes.get(at + 1) == Some(&0xFF) {
            at += 1;
        }
        let (Some(&0xFF), Some(&marker)) = (bytes.get(at), bytes.get(at + 1)) else {
            return Some("the JPEG ends inside its headers".into());
        };
        match marker {
            0xD9 => return Some("the JPEG ends before its first scan".into()),
            // Standalone markers carry no length.
            0x01 | 0xD0..=0xD7 => at += 2,
            _ => {
                let Some(length) = bytes
                    .get(at + 2..at + 4)
                    .map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])))
                else {
                    return Some("the JPEG ends inside a segment header".into());
                };
                let end = at + 2 + length;
                if end > bytes.len() {
                    return Some("the JPEG ends inside a segment".into());
                }
                if marker == 0xDA {
                    let tail = &bytes[end..];
                    return (!tail.windows(2).any(|w| w == [0xFF, 0xD9])).then(|| {
                        "the JPEG's image data ends before its end-of-image marker".into()
                    });
                }
                at = end;
            }
        }
    }
}

/// Walks the chunks: each must fit in the file, and the last must be `IEND`.
fn png_truncation(bytes: &[u8]) -> Option<String> {
    let mut at = 8; // after the signature
    while at < bytes.len() {
        let Some(header) = bytes.get(at..at + 8) else {
            return Some("the PNG ends inside a chunk header".into());
        };
        let length = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
        let kind = &header[4..8];
        let end = at.saturating_add(12).saturating_add(length);
        if end > bytes.len() {
            let name = String::from_utf8_lossy(kind).into_owned();
            return Some(format!("the PNG ends inside its {name} chunk"));
        }
        if kind == b"IEND" {
            return None;
        }
        at = end;
    }
    Some("the PNG ends without its IEND chunk".into())
}

/// A RIFF file (WebP) announces its length after the `RIFF` tag.
fn riff_truncation(bytes: &[u8]) -> Option<String> {
    let announced = bytes
        .get(4..8)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize + 8)?;
    (bytes.len() < announced)
        .then(|| format!("the WebP is shorter than the {announced} bytes its header announces"))
}

/// A BMP announces its file size at offset 2 (some writers leave it 0).
fn bmp_truncation(bytes: &[u8]) -> Option<String> {
    let announced = bytes
        .get(2..6)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)?;
    (announced != 0 && bytes.len() < announced)
        .then(|| format!("the BMP is shorter than the {announced} bytes its header announces"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn progressive_jpeg() -> Vec<u8> {
        let (w, h) = (96u16, 64u16);
        let pixels: Vec<u8> = (0..usize::from(w) * usize::from(h) * 3)
            .map(|i| (i * 7 % 251) as u8)
            .collect();
        let mut out = Vec::new();
        let mut encoder = jpeg_encoder::Encoder::new(&mut out, 90);
        encoder.set_progressive(true);
        encoder
            .encode(&pixels, w, h, jpeg_encoder::ColorType::Rgb)
            .expect("progressive encoding");
        out
    }

    /// The containers the `image` crate can write, with facade's name for each.
    const ENCODABLE: [(image::ImageFormat, Format); 5] = [
        (image::ImageFormat::Jpeg, Format::Jpeg),
        (image::ImageFormat::Png, Format::Png),
        (image::ImageFormat::WebP, Format::WebP),
        (image::ImageFormat::Bmp, Format::Bmp),
        (image::ImageFormat::Gif, Format::Gif),
    ];

    fn encoded(format: image::ImageFormat) -> Vec<u8> {
        let img = image::RgbImage::from_fn(64, 48, |x, y| {
            image::Rgb([(x * 4) as u8, (y * 5) as u8, ((x + y) * 2) as u8])
        });
        let mut out = Vec::new();
        image::DynamicImage::ImageRgb8(img)
            .write_to(&mut std::io::Cursor::new(&mut out), format)
            .expect("encode");
        out
    }

    #[test]
    fn whole_files_carry_no_warning() {
        for (format, kind) in ENCODABLE {
            let bytes = encoded(format);
            assert_eq!(truncation(&bytes, kind), None, "{kind:?}");
        }
        let progressive = progressive_jpeg();
        assert_eq!(truncation(&progressive, Format::Jpeg), None);
    }

    #[test]
    fn files_cut_short_are_named_truncated() {
        for (format, kind) in ENCODABLE {
            let bytes = encoded(format);
            for keep in [bytes.len() / 3, bytes.len() - 1] {
                let reason = truncation(&bytes[..keep], kind)
                    .unwrap_or_else(|| panic!("{kind:?} cut to {keep} not caught"));
                assert!(reason.starts_with("truncated: "), "{reason}");
            }
        }
        let progressive = progressive_jpeg();
        let cut = &progressive[..progressive.len() / 10];
        assert!(truncation(cut, Format::Jpeg).is_some());
    }

    #[test]
    fn a_thumbnail_in_the_exif_block_does_not_count_as_the_end() {
        // SOI, an APP1 segment holding a whole embedded JPEG (with its own FF D9), then the
        // main image cut inside its scan.
        let main = encoded(image::ImageFormat::Jpeg);
        let thumb = encoded(image::ImageFormat::Jpeg);
        let mut prefix = vec![0xFF, 0xD8, 0xFF, 0xE1];
        prefix.extend(((thumb.len() + 2) as u16).to_be_bytes());
        prefix.extend(&thumb);
        let cut = [prefix.as_slice(), &main[2..main.len() - 200]].concat();
        assert!(truncation(&cut, Format::Jpeg).is_some());
        let whole = [prefix.as_slice(), &main[2..]].concat();
        assert_eq!(truncation(&whole, Format::Jpeg), None);
    }
}
