//! The metadata blocks of a JPEG, PNG or WebP file, found by walking its segments or chunks
//! (never the pixels). Every length is checked against what is left of the file; a block that
//! runs past the end ends the walk (the decoder's truncation warning says the rest).

/// Largest metadata block taken in (XMP packet, text chunk, inflated text): real ones are a
/// few kilobytes; a ComfyUI workflow can reach a few hundred.
pub const MAX_BLOCK: usize = 4 << 20;

/// What the container holds for the claim readers.
#[derive(Debug, Default)]
pub struct Metadata {
    pub xmp: Vec<String>,
    /// EXIF as TIFF bytes (after JPEG's `Exif\0\0`).
    pub exif: Vec<Vec<u8>>,
    /// PNG text chunks (tEXt, zTXt, iTXt): keyword and text.
    pub texts: Vec<(String, String)>,
    /// The MIME type to hand the C2PA SDK, when a manifest store is present.
    pub c2pa_format: Option<&'static str>,
}

/// The metadata of `bytes`, by its container (other formats: none).
pub fn collect(bytes: &[u8], problems: &mut Vec<String>) -> Metadata {
    let mut metadata = Metadata::default();
    if bytes.starts_with(&[0xFF, 0xD8]) {
        jpeg(bytes, &mut metadata);
    } else if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        png(bytes, &mut metadata, problems);
    } else if bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
        webp(bytes, &mut metadata);
    }
    metadata
}

const XMP_JPEG: &[u8] = b"http://ns.adobe.com/xap/1.0/\0";

/// JPEG: APP1 `Exif` and XMP, APP11 JUMBF (C2PA), up to the first scan.
fn jpeg(bytes: &[u8], metadata: &mut Metadata) {
    let mut at = 2;
    while at + 4 <= bytes.len() {
        if bytes[at] != 0xFF {
            return;
        }
        let marker = bytes[at + 1];
        if marker == 0xFF {
            at += 1; // fill byte
            continue;
        }
        if marker == 0xDA || marker == 0xD9 {
            return; // start of scan or end of image: no metadata after this point
        }
        let length = usize::from(u16::from_be_bytes([bytes[at + 2], bytes[at + 3]]));
        let Some(payload) = bytes.get(at + 4..at + 2 + length.max(2)) else {
            return;
        };
        match marker {
            0xE1 if payload.starts_with(b"Exif\0\0") => metadata.exif.push(payload[6..].to_vec()),
            0xE1 if payload.starts_with(XMP_JPEG) => metadata
                .xmp
                .push(String::from_utf8_lossy(&payload[XMP_JPEG.len()..]).into_owned()),
            // APP11 JPEG-XT box carrying JUMBF ("JP", box instance, sequence, then `jumb`).
            0xEB if payload.starts_with(b"JP") && payload.windows(4).any(|w| w == b"jumb") => {
                metadata.c2pa_format = Some("image/jpeg")
            }
            _ => {}
        }
        at += 2 + length;
    }
}

/// PNG: tEXt, zTXt, iTXt (XMP travels as iTXt `XML:com.adobe.xmp`), eXIf, and caBX (C2PA).
fn png(bytes: &[u8], metadata: &mut Metadata, problems: &mut Vec<String>) {
    let mut at = 8;
    while at + 8 <= bytes.len() {
        let length = u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
        let kind = &bytes[at + 4..at + 8];
        let Some(data) = bytes.get(at + 8..(at + 8).saturating_add(length as usize)) else {
            return;
        };
        match kind {
            b"tEXt" | b"zTXt" | b"iTXt" => match png_text(kind, data) {
                Ok((key, text)) if key == "XML:com.adobe.xmp" => metadata.xmp.push(text),
                Ok(pair) => metadata.texts.push(pair),
                Err(problem) => problems.push(problem),
            },
            b"eXIf" => metadata.exif.push(data.to_vec()),
            b"caBX" => metadata.c2pa_format = Some("image/png"),
            b"IEND" => return,
            _ => {}
        }
        at += 12 + length as usize;
    }
}

/// One PNG text chunk's keyword and text (Latin-1 for tEXt/zTXt, UTF-8 for iTXt).
fn png_text(kind: &[u8], data: &[u8]) -> Result<(String, String), String> {
    let name = String::from_utf8_lossy(kind).into_owned();
    let Some(split) = data.iter().position(|&b| b == 0) else {
        return Err(format!("{name} chunk without a keyword"));
    };
    let key = latin1(&data[..split]);
    let rest = &data[split + 1..];
    let text = match kind {
        b"tEXt" => latin1(rest),
        b"zTXt" => latin1(&inflate(rest.get(1..).unwrap_or_default(), &key)?),
        _ => {
            // iTXt: compression flag, method, language\0, translated keyword\0, text.
            let (&compressed, rest) = rest.split_first().ok_or("iTXt chunk cut short")?;
            let rest = rest.get(1..).unwrap_or_default();
            let rest = skip_past_nul(skip_past_nul(rest));
            if compressed == 1 {
                String::from_utf8_lossy(&inflate(rest, &key)?).into_owned()
            } else {
                String::from_utf8_lossy(&rest[..rest.len().min(MAX_BLOCK)]).into_owned()
            }
        }
    };
    Ok((key, text))
}

fn skip_past_nul(bytes: &[u8]) -> &[u8] {
    match bytes.iter().position(|&b| b == 0) {
        Some(i) => &bytes[i + 1..],
        None => &[],
    }
}

fn latin1(bytes: &[u8]) -> String {
    bytes[..bytes.len().min(MAX_BLOCK)]
        .iter()
        .map(|&b| char::from(b))
        .collect()
}

/// A zlib stream inflated to at most [`MAX_BLOCK`] bytes (a text "bomb" is refused, reported).
fn inflate(compressed: &[u8], key: &str) -> Result<Vec<u8>, String> {
    use miniz_oxide::inflate::{decompress_to_vec_zlib_with_limit, TINFLStatus};
    decompress_to_vec_zlib_with_limit(compressed, MAX_BLOCK).map_err(|e| match e.status {
        TINFLStatus::HasMoreOutput => {
            format!("compressed text \"{key}\" inflates past {MAX_BLOCK} bytes; not read")
        }
        status => format!("compressed text \"{key}\" does not inflate ({status:?})"),
    })
}

/// WebP: RIFF chunks `XMP `, `EXIF` and `C2PA`.
fn webp(bytes: &[u8], metadata: &mut Metadata) {
    let mut at = 12;
    while at + 8 <= bytes.len() {
        let kind = &bytes[at..at + 4];
        let length =
            u32::from_le_bytes([bytes[at + 4], bytes[at + 5], bytes[at + 6], bytes[at + 7]]);
        let Some(data) = bytes.get(at + 8..(at + 8).saturating_add(length as usize)) else {
            return;
        };
        match kind {
            b"XMP " => metadata
                .xmp
                .push(String::from_utf8_lossy(&data[..data.len().min(MAX_BLOCK)]).into_owned()),
            b"EXIF" => {
                let tiff = data.strip_prefix(b"Exif\0\0").unwrap_or(data);
                metadata.exif.push(tiff.to_vec());
            }
            b"C2PA" => metadata.c2pa_format = Some("image/webp"),
            _ => {}
        }
        at += 8 + length as usize + (length as usize & 1);
    }
}
