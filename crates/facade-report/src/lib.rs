//! # facade-report: evidence an analyst can publish
//!
//! This crate turns results into a report a person would rather look at than read: one
//! self-contained `index.html` (every picture inlined, no script, nothing fetched when it is
//! opened) and `report.json` with the same figures for tools.
//!
//! - [`write_network_report`]: per network its score and signals, the members with their
//!   face thumbnails and AI scores, the **composite** of their profile pictures (the average
//!   image; StyleGAN faces put the eyes at the same pixels, so the composite's eyes stay sharp
//!   and the landmark dots pile up — the overlay researchers published) with the measured
//!   spread of the eye positions, an account-creation histogram and a posting timeline as SVG
//!   plots, and the strongest evidence links;
//! - [`write_image_report`]: per image the face boxes and five landmarks drawn over it, the
//!   fused score and verdict, and each detector's raw value and contribution.
//!
//! It reads nothing itself: networks arrive as their `networks.json` objects, pictures as
//! decoded images with their scan records (the CLI does the reading and scanning).

mod composite;
mod html;
mod svg;

use std::io;
use std::path::Path;

use facade_detect::Record;
use facade_image::RgbImage;
use facade_network::time::{format_time_ms, parse_time_ms};
use serde_json::{json, Value};

pub use composite::{composite, Composite};

/// One picture with what the scan said of it.
pub struct Picture {
    /// The account it belongs to (network reports) or its file name (image reports).
    pub label: String,
    pub image: RgbImage,
    pub record: Record,
}

/// A network as `facade networks` wrote it, with its members' pictures (possibly none).
pub struct NetworkInput {
    pub network: Value,
    pub pictures: Vec<Picture>,
}

/// What a report contains, for the caller's summary line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    pub sections: usize,
    pub pictures: usize,
}

/// Writes `index.html` and `report.json` for `networks` into `out` (created if needed).
pub fn write_network_report(networks: &[NetworkInput], out: &Path) -> io::Result<Written> {
    std::fs::create_dir_all(out)?;
    let mut body = String::new();
    let mut summaries = Vec::new();
    let mut pictures = 0;
    for input in networks {
        let composite = composite(&input.pictures);
        let creation = creation_histogram(&input.network);
        body.push_str(&html::network_section(input, composite.as_ref(), &creation));
        summaries.push(network_summary(input, composite.as_ref(), &creation));
        pictures += input.pictures.len();
    }
    let title = "facade — coordinated networks";
    let intro = format!(
        "{} network(s), {pictures} profile picture(s). Scores are facade's; every figure below is \
         computed from the export and the pictures given.",
        networks.len()
    );
    std::fs::write(out.join("index.html"), html::page(title, &intro, &body))?;
    write_json(&out.join("report.json"), &json!({ "networks": summaries }))?;
    Ok(Written {
        sections: networks.len(),
        pictures,
    })
}

/// Writes `index.html` and `report.json` for scanned images into `out`. Records without a
/// picture (unreadable files) are listed with their error.
pub fn write_image_report(
    pictures: &[Picture],
    failed: &[Record],
    out: &Path,
) -> io::Result<Written> {
    std::fs::create_dir_all(out)?;
    let mut body = String::new();
    for picture in pictures {
        body.push_str(&html::image_section(picture));
    }
    body.push_str(&html::failed_section(failed));
    let intro = format!(
        "{} image(s) scanned, {} could not be read.",
        pictures.len(),
        failed.len()
    );
    std::fs::write(
        out.join("index.html"),
        html::page("facade — scanned images", &intro, &body),
    )?;
    let records: Vec<&Record> = pictures.iter().map(|p| &p.record).chain(failed).collect();
    write_json(&out.join("report.json"), &json!({ "images": records }))?;
    Ok(Written {
        sections: pictures.len() + failed.len(),
        pictures: pictures.len(),
    })
}

fn write_json(path: &Path, value: &Value) -> io::Result<()> {
    let text = serde_json::to_string_pretty(value).map_err(io::Error::other)?;
    std::fs::write(path, text + "\n")
}

/// Account creations per bucket of whole days.
#[derive(Debug, Clone, PartialEq)]
pub struct Histogram {
    pub start_day: Option<i64>,
    pub bucket_days: i64,
    pub counts: Vec<u32>,
    /// Members without a usable creation date.
    pub unknown: u32,
}

/// At most this many bars in a histogram: buckets widen to fit.
const MAX_BARS: i64 = 60;

fn creation_histogram(network: &Value) -> Histogram {
    let members = network["members"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    let days: Vec<i64> = members
        .iter()
        .filter_map(|m| m["created"].as_str().and_then(day_number))
        .collect();
    let unknown = (members.len() - days.len()) as u32;
    let (Some(&first), Some(&last)) = (days.iter().min(), days.iter().max()) else {
        return Histogram {
            start_day: None,
            bucket_days: 1,
            counts: Vec::new(),
            unknown,
        };
    };
    let bucket_days = ((last - first) / MAX_BARS + 1).max(1);
    let mut counts = vec![0u32; ((last - first) / bucket_days + 1) as usize];
    for day in days {
        counts[((day - first) / bucket_days) as usize] += 1;
    }
    Histogram {
        start_day: Some(first),
        bucket_days,
        counts,
        unknown,
    }
}

const DAY_MS: i64 = 86_400_000;

/// Days since 1970-01-01 of a date or time as the exports write them (`2019-03-04…`).
pub fn day_number(text: &str) -> Option<i64> {
    parse_time_ms(text).map(|ms| ms.div_euclid(DAY_MS))
}

/// The ISO date of a day number.
pub fn date_of_day(day: i64) -> String {
    let time = format_time_ms(day * DAY_MS);
    time.split('T').next().unwrap_or_default().to_owned()
}

/// The `members` of a `networks.json` object (none when it has no such list).
fn members(network: &Value) -> &[Value] {
    network["members"].as_array().map_or(&[], Vec::as_slice)
}

fn network_summary(
    input: &NetworkInput,
    composite: Option<&Composite>,
    creation: &Histogram,
) -> Value {
    let network = &input.network;
    let members: Vec<Value> = members(network)
        .iter()
        .map(|m| {
            json!({
                "id": m["id"], "handle": m["handle"], "created": m["created"],
                "posts": m["posts"], "ai_score": m["face"]["ai_score"],
            })
        })
        .collect();
    let evidence: Vec<&Value> = network["evidence"]
        .as_array()
        .map(|e| e.iter().take(html::EVIDENCE_SHOWN).collect())
        .unwrap_or_default();
    json!({
        "id": network["id"],
        "score": network["score"],
        "flagged": network["flagged"],
        "members": members,
        "signals": network["signals"],
        "composite": composite.map(|c| json!({
            "pictures": c.pictures,
            "faces": c.faces,
            "mean_eyes": c.mean_eyes,
            "eye_spread_px": c.eye_spread_px,
            "side_px": composite::SIDE,
        })),
        "creation_histogram": {
            "start": creation.start_day.map(date_of_day),
            "bucket_days": creation.bucket_days,
            "counts": creation.counts,
            "unknown": creation.unknown,
        },
        "activity": network["activity"],
        "evidence": evidence,
    })
}

#[cfg(test)]
mod tests;
