//! Claims from XMP packets, PNG text chunks and EXIF blocks.

use super::{source_type_says_generated, Claim, ClaimSource};

/// The `DigitalSourceType` and `CreatorTool` an XMP packet states (either property alone makes
/// a claim).
pub fn from_xmp(xmp: &str) -> Option<Claim> {
    let source_type = xmp_property(xmp, "DigitalSourceType");
    let tool = xmp_property(xmp, "CreatorTool");
    if source_type.is_none() && tool.is_none() {
        return None;
    }
    let field = if source_type.is_some() {
        "Iptc4xmpExt:DigitalSourceType"
    } else {
        "xmp:CreatorTool"
    };
    let mut claim = Claim::new(ClaimSource::Xmp, field);
    claim.ai_generated = source_type.as_deref().and_then(source_type_says_generated);
    claim.digital_source_type = source_type;
    claim.tool = tool;
    Some(claim)
}

/// The value of property `name` in an XMP packet, whatever its namespace prefix, written as an
/// attribute (`p:Name="v"`), an element (`<p:Name>v</p:Name>`), a resource
/// (`<p:Name rdf:resource="v"/>`) or a one-item list (`<rdf:li>v</rdf:li>`).
fn xmp_property(xmp: &str, name: &str) -> Option<String> {
    let mut rest = xmp;
    while let Some(at) = rest.find(name) {
        let before = rest[..at].chars().next_back();
        let after = &rest[at + name.len()..];
        rest = after;
        if before != Some(':') {
            continue; // part of another name, or without a namespace prefix
        }
        let value = if let Some(quoted) = after.trim_start().strip_prefix('=') {
            quoted_value(quoted.trim_start())
        } else if let Some(element) = after.strip_prefix('>') {
            element_text(element)
        } else if after.starts_with(char::is_whitespace) {
            let tag_end = after.find('>').unwrap_or(after.len());
            let inside = &after[..tag_end];
            match inside.find("resource=") {
                Some(r) => quoted_value(&inside[r + "resource=".len()..]),
                None => None,
            }
        } else {
            None
        };
        if let Some(value) = value
            .map(|v| xml_unescape(v.trim()))
            .filter(|v| !v.is_empty())
        {
            return Some(value);
        }
    }
    None
}

fn quoted_value(text: &str) -> Option<String> {
    let quote = text.chars().next().filter(|c| *c == '"' || *c == '\'')?;
    let body = &text[1..];
    body.find(quote).map(|end| body[..end].to_owned())
}

/// The text of an element, or of the first `rdf:li` inside it.
fn element_text(text: &str) -> Option<String> {
    let end = text.find("</")?;
    let direct = text[..end].trim();
    if !direct.is_empty() && !direct.contains('<') {
        return Some(direct.to_owned());
    }
    let li = text.find("<rdf:li")?;
    let open_end = text[li..].find('>')? + li + 1;
    let close = text[open_end..].find("</")? + open_end;
    Some(text[open_end..close].to_owned())
}

fn xml_unescape(text: &str) -> String {
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

/// Longest generator name kept (a hostile file can put anything in a text field).
const MAX_NAME: usize = 200;

fn short(text: &str) -> String {
    let text = text.trim();
    match text.char_indices().nth(MAX_NAME) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

/// A claim from a PNG text chunk that a generator writes; other keywords say nothing.
pub fn from_png_text(key: &str, text: &str, problems: &mut Vec<String>) -> Option<Claim> {
    let field = format!("PNG text \"{key}\"");
    let made = |generator: String| {
        let mut claim = Claim::new(ClaimSource::PngText, field.clone());
        claim.ai_generated = Some(true);
        claim.generator = Some(short(&generator));
        Some(claim)
    };
    match key {
        "parameters" if text.trim_start().starts_with('{') => {
            // Fooocus writes its own JSON scheme under the A1111 keyword.
            let json = parse_json(key, text, problems)?;
            let model = json["base_model"].as_str().map(str::to_owned);
            made(named("Fooocus", model))
        }
        "parameters" if !text.trim().is_empty() => made(named("AUTOMATIC1111", a1111_model(text))),
        "prompt" | "workflow" => {
            let json = parse_json(key, text, problems)?;
            made(named("ComfyUI", comfy_model(&json)))
        }
        "invokeai_metadata" => {
            let json = parse_json(key, text, problems)?;
            let model = json["model"]["name"]
                .as_str()
                .or_else(|| json["model"]["model_name"].as_str())
                .map(str::to_owned);
            made(named("InvokeAI", model))
        }
        // Midjourney writes the prompt, its parameters and the job: "… --v 6.1 Job ID: …".
        "Description" if text.contains("Job ID:") && text.contains(" --") => {
            let version = text
                .split(" --v ")
                .nth(1)
                .and_then(|v| v.split_whitespace().next());
            made(match version {
                Some(v) => format!("Midjourney {v}"),
                None => "Midjourney".to_owned(),
            })
        }
        "Software" if !text.trim().is_empty() => {
            let mut claim = Claim::new(ClaimSource::PngText, field);
            claim.tool = Some(short(text));
            Some(claim)
        }
        _ => None,
    }
}

fn named(front_end: &str, model: Option<String>) -> String {
    match model {
        Some(model) if !model.trim().is_empty() => format!("{front_end} ({})", model.trim()),
        _ => front_end.to_owned(),
    }
}

/// JSON text, or a problem saying it is malformed (the chunk then makes no claim).
fn parse_json(key: &str, text: &str, problems: &mut Vec<String>) -> Option<serde_json::Value> {
    match serde_json::from_str(text) {
        Ok(value) => Some(value),
        Err(e) => {
            problems.push(format!("PNG text \"{key}\" is not valid JSON ({e})"));
            None
        }
    }
}

/// The checkpoint an A1111 parameters block names: `…, Model: name, …`.
fn a1111_model(text: &str) -> Option<String> {
    text.lines().rev().find_map(|line| {
        line.split(", ").find_map(|part| {
            part.strip_prefix("Model: ")
                .map(|m| m.trim().trim_matches('"').to_owned())
        })
    })
}

/// The checkpoint a ComfyUI prompt or workflow loads (the first loader node that names one).
fn comfy_model(json: &serde_json::Value) -> Option<String> {
    let nodes: Vec<&serde_json::Value> = match json {
        serde_json::Value::Object(map) if map.contains_key("nodes") => json["nodes"]
            .as_array()
            .map(|a| a.iter().collect())
            .unwrap_or_default(),
        serde_json::Value::Object(map) => map.values().collect(),
        _ => Vec::new(),
    };
    nodes.iter().find_map(|node| {
        let inputs = &node["inputs"];
        ["ckpt_name", "unet_name", "model_name"]
            .iter()
            .find_map(|k| inputs[*k].as_str())
            .or_else(|| {
                // workflow form: loader nodes keep the name in widgets_values.
                let kind = node["type"].as_str().unwrap_or_default();
                kind.contains("Loader")
                    .then(|| node["widgets_values"][0].as_str())
                    .flatten()
            })
            .map(str::to_owned)
    })
}

/// Claims from an EXIF block: `Software` (a tool) and a `UserComment` holding an A1111
/// parameters block (Stable Diffusion front ends write it there in JPEG and WebP).
pub fn from_exif(tiff: &[u8]) -> Vec<Claim> {
    let mut claims = Vec::new();
    let Some(exif) = Tiff::new(tiff) else {
        return claims;
    };
    let ifd0 = exif.u32_at(4).unwrap_or(0) as usize;
    if let Some(software) = exif.ascii(ifd0, 0x0131).filter(|s| !s.is_empty()) {
        let mut claim = Claim::new(ClaimSource::Exif, "EXIF Software");
        claim.tool = Some(short(&software));
        claims.push(claim);
    }
    let comment = exif
        .value(ifd0, 0x8769)
        .and_then(|sub| exif.comment(sub as usize, 0x9286));
    if let Some(comment) = comment.filter(|c| c.contains("Steps: ") && c.contains("Sampler: ")) {
        let mut claim = Claim::new(ClaimSource::Exif, "EXIF UserComment");
        claim.ai_generated = Some(true);
        claim.generator = Some(short(&named("AUTOMATIC1111", a1111_model(&comment))));
        claims.push(claim);
    }
    claims
}

/// Just enough of a TIFF reader for two tags: every offset is checked against the block.
struct Tiff<'a> {
    bytes: &'a [u8],
    little: bool,
}

impl<'a> Tiff<'a> {
    fn new(bytes: &'a [u8]) -> Option<Tiff<'a>> {
        let little = match bytes.get(..4)? {
            b"II*\0" => true,
            b"MM\0*" => false,
            _ => return None,
        };
        Some(Tiff { bytes, little })
    }

    fn u16_at(&self, at: usize) -> Option<u16> {
        let b: [u8; 2] = self.bytes.get(at..at + 2)?.try_into().ok()?;
        Some(if self.little {
            u16::from_le_bytes(b)
        } else {
            u16::from_be_bytes(b)
        })
    }

    fn u32_at(&self, at: usize) -> Option<u32> {
        let b: [u8; 4] = self.bytes.get(at..at + 4)?.try_into().ok()?;
        Some(if self.little {
            u32::from_le_bytes(b)
        } else {
            u32::from_be_bytes(b)
        })
    }

    /// The directory entry of `tag` in the IFD at `ifd`: (type, count, value-or-offset field).
    fn entry(&self, ifd: usize, tag: u16) -> Option<(u16, usize, usize)> {
        let count = usize::from(self.u16_at(ifd)?).min(1000);
        (0..count).find_map(|i| {
            let at = ifd + 2 + 12 * i;
            (self.u16_at(at)? == tag)
                .then(|| Some((self.u16_at(at + 2)?, self.u32_at(at + 4)? as usize, at + 8)))
                .flatten()
        })
    }

    fn value(&self, ifd: usize, tag: u16) -> Option<u32> {
        let (_, _, field) = self.entry(ifd, tag)?;
        self.u32_at(field)
    }

    /// The bytes of an entry (inline when four or fewer).
    fn data(&self, ifd: usize, tag: u16) -> Option<&'a [u8]> {
        let (_, count, field) = self.entry(ifd, tag)?;
        let count = count.min(super::containers::MAX_BLOCK);
        let start = if count <= 4 {
            field
        } else {
            self.u32_at(field)? as usize
        };
        self.bytes.get(start..start.checked_add(count)?)
    }

    fn ascii(&self, ifd: usize, tag: u16) -> Option<String> {
        let data = self.data(ifd, tag)?;
        let text = data.split(|&b| b == 0).next().unwrap_or_default();
        Some(String::from_utf8_lossy(text).trim().to_owned())
    }

    /// A UserComment: an 8-byte character code, then the text (UTF-16 for `UNICODE`).
    fn comment(&self, ifd: usize, tag: u16) -> Option<String> {
        let data = self.data(ifd, tag)?;
        let (code, text) = (data.get(..8)?, data.get(8..)?);
        if code.starts_with(b"UNICODE") {
            // Writers disagree on the byte order (piexif, used by A1111, always writes
            // big-endian): take the reading that is plain text.
            let decode = |big: bool| -> String {
                let units: Vec<u16> = text
                    .chunks_exact(2)
                    .map(|p| {
                        let pair = [p[0], p[1]];
                        if big {
                            u16::from_be_bytes(pair)
                        } else {
                            u16::from_le_bytes(pair)
                        }
                    })
                    .collect();
                String::from_utf16_lossy(&units)
            };
            let ascii = |s: &String| s.chars().filter(char::is_ascii).count();
            let (big, small) = (decode(true), decode(false));
            Some(if ascii(&big) >= ascii(&small) {
                big
            } else {
                small
            })
        } else {
            Some(String::from_utf8_lossy(text).into_owned())
        }
    }
}
