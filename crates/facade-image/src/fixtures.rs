//! Hostile and unusual files for tests, built in code so no such file ships in the repository.
//! Used by this crate's tests and by the end-to-end tests of the `facade` binary.

use std::io::Cursor;

/// A minimal little-endian EXIF block (APP1 payload) holding only the Orientation tag.
pub fn exif_orientation(value: u16) -> Vec<u8> {
    let mut exif = b"Exif\0\0II*\0".to_vec();
    exif.extend_from_slice(&8u32.to_le_bytes()); // IFD0 offset
    exif.extend_from_slice(&1u16.to_le_bytes()); // one entry
    exif.extend_from_slice(&0x0112u16.to_le_bytes()); // Orientation
    exif.extend_from_slice(&3u16.to_le_bytes()); // SHORT
    exif.extend_from_slice(&1u32.to_le_bytes()); // count
    exif.extend_from_slice(&value.to_le_bytes());
    exif.extend_from_slice(&[0, 0]);
    exif.extend_from_slice(&0u32.to_le_bytes()); // no next IFD
    exif
}

/// A valid 2×2 PNG whose header (with a correct CRC) claims `width × height` pixels: a
/// decompression bomb as a decoder first sees it.
pub fn png_claiming(width: u32, height: u32) -> Vec<u8> {
    let mut png = Vec::new();
    image::RgbImage::new(2, 2)
        .write_to(&mut Cursor::new(&mut png), image::ImageFormat::Png)
        .expect("encoding a 2x2 PNG in memory");
    // IHDR starts at byte 8: length(4) "IHDR"(4) width(4) height(4) ... crc after 13 bytes.
    png[16..20].copy_from_slice(&width.to_be_bytes());
    png[20..24].copy_from_slice(&height.to_be_bytes());
    let crc = crc32(&png[12..29]);
    png[29..33].copy_from_slice(&crc.to_be_bytes());
    png
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// What a test that needs something outside the repository (the shared research data, a
/// server, a tool from a package registry) does when it is missing: under CI (`CI` set, where
/// everything is installed) it fails, so CI never passes it vacuously; elsewhere it says on
/// stderr that it did not run, and how to make it run, and the test returns.
pub fn skip_unless_ci(test: &str, missing: &str, how_to_run: &str) {
    assert!(
        std::env::var_os("CI").is_none(),
        "CI must run {test}: {missing}"
    );
    // Straight to stderr, past the test harness's capture, so a skip is seen in a normal run.
    use std::io::Write;
    let line = format!("SKIPPED {test}: {missing}; to run it, {how_to_run}\n");
    let _ = std::io::stderr().write_all(line.as_bytes());
}

/// The research data beside the project: `$FACADE_SHARED_DIR`, or `shared/` next to the
/// workspace (as `../shared` from its root).
pub fn shared_data_dir() -> std::path::PathBuf {
    std::env::var_os("FACADE_SHARED_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared"))
}

/// The shared labelled faces (`faces/` of [`shared_data_dir`], with its manifest) for `test`,
/// or `None` after [`skip_unless_ci`] when they are not there.
pub fn shared_faces_or_skip(test: &str) -> Option<std::path::PathBuf> {
    let dir = shared_data_dir().join("faces");
    if dir.join("manifest.csv").is_file() && dir.join("reference-mtcnn.jsonl").is_file() {
        return Some(dir);
    }
    skip_unless_ci(
        test,
        &format!("the shared face data is not at {}", dir.display()),
        "put the research data set at ../shared or set FACADE_SHARED_DIR",
    );
    None
}

/// A PNG chunk (`kind`, `data`) with its length and CRC.
pub fn png_chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let mut chunk = (data.len() as u32).to_be_bytes().to_vec();
    chunk.extend_from_slice(kind);
    chunk.extend_from_slice(data);
    let crc = crc32(&chunk[4..]);
    chunk.extend_from_slice(&crc.to_be_bytes());
    chunk
}

/// `png` with `chunks` (made by [`png_chunk`]) inserted just before its IEND chunk.
pub fn png_with_chunks(png: &[u8], chunks: &[Vec<u8>]) -> Vec<u8> {
    let end = png.len().saturating_sub(12);
    let mut out = png[..end].to_vec();
    for chunk in chunks {
        out.extend_from_slice(chunk);
    }
    out.extend_from_slice(&png[end..]);
    out
}

/// A PNG tEXt chunk.
pub fn png_text(key: &str, text: &str) -> Vec<u8> {
    png_chunk(b"tEXt", format!("{key}\0{text}").as_bytes())
}

/// `jpeg` with an APP1 XMP packet right after its start-of-image marker.
pub fn jpeg_with_xmp(jpeg: &[u8], xmp: &str) -> Vec<u8> {
    let mut payload = b"http://ns.adobe.com/xap/1.0/\0".to_vec();
    payload.extend_from_slice(xmp.as_bytes());
    let mut out = jpeg[..2].to_vec();
    out.extend_from_slice(&[0xFF, 0xE1]);
    out.extend_from_slice(&((payload.len() + 2) as u16).to_be_bytes());
    out.extend_from_slice(&payload);
    out.extend_from_slice(&jpeg[2..]);
    out
}

/// An XMP packet declaring IPTC `DigitalSourceType` `code` (e.g. `trainedAlgorithmicMedia`).
pub fn xmp_digital_source_type(code: &str) -> String {
    format!(
        r#"<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description rdf:about="" xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/" Iptc4xmpExt:DigitalSourceType="http://cv.iptc.org/newscodes/digitalsourcetype/{code}"/></rdf:RDF></x:xmpmeta>"#
    )
}
