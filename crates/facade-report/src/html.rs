//! The HTML of the report: one page, styles inline, pictures as data URIs, no script.

use std::fmt::Write;

use base64::Engine;
use facade_image::thumbnail::{jpeg_thumbnail, square_crop};
use serde_json::Value;

use crate::composite::{most_suspicious_face, Composite, SIDE};
use crate::svg;
use crate::{date_of_day, Histogram, NetworkInput, Picture};

/// Evidence links shown per network (all are in networks.json and edges.csv).
pub const EVIDENCE_SHOWN: usize = 20;

/// Text made safe for HTML content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

fn jpeg_uri(jpeg: &[u8]) -> String {
    format!(
        "data:image/jpeg;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(jpeg)
    )
}

const STYLE: &str = "body{font:15px/1.45 system-ui,sans-serif;color:#1d2330;max-width:1100px;margin:0 auto;padding:1rem 1.5rem 3rem}\
h1{font-size:1.4rem}h2{font-size:1.15rem;margin-top:2.5rem;border-top:2px solid #1d2330;padding-top:.8rem}h3{font-size:1rem;margin:1.2rem 0 .4rem}\
table{border-collapse:collapse;font-size:.85rem}th,td{text-align:left;padding:.2rem .5rem;border-bottom:1px solid #dde}\
th{color:#5f6b7a;font-weight:500}.muted{color:#5f6b7a}.ai{color:#b3261e;font-weight:600}.real{color:#1b6e3a;font-weight:600}\
.row{display:flex;flex-wrap:wrap;gap:1.5rem;align-items:flex-start}.composite{width:256px;height:256px}\
.faces-over{max-width:420px;max-height:420px}.chart{width:100%;max-width:640px}.thumb{width:48px;height:48px;object-fit:cover;border-radius:3px;vertical-align:middle}\
.bar{display:inline-block;height:.7em;background:#3d5a80;vertical-align:middle}.bar.neg{background:#2a9d8f}.warn{color:#8a5300;font-weight:600}.declared{color:#6a1b9a;font-weight:600}";

pub fn page(title: &str, intro: &str, body: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{t}</title>\
         <style>{STYLE}</style></head><body><h1>{t}</h1><p class=\"muted\">{intro}</p>{body}\
         <p class=\"muted\">Made by facade {v}. Self-contained: nothing is fetched when it is opened.</p></body></html>\n",
        t = escape(title),
        intro = escape(intro),
        v = env!("CARGO_PKG_VERSION"),
    )
}

fn score_span(score: Option<f64>) -> String {
    match score {
        Some(s) => format!(
            "<span class=\"{}\">{s:.3}</span>",
            if s >= 0.5 { "ai" } else { "real" }
        ),
        None => "<span class=\"muted\">–</span>".into(),
    }
}

fn text(value: &Value) -> String {
    match value {
        Value::String(s) => escape(s),
        Value::Null => String::new(),
        other => escape(&other.to_string()),
    }
}

pub fn network_section(
    input: &NetworkInput,
    composite: Option<&Composite>,
    creation: &Histogram,
) -> String {
    let network = &input.network;
    let mut html = String::new();
    let _ = write!(
        html,
        "<section><h2>Network {id} — score {score}{flag}</h2>",
        id = text(&network["id"]),
        score = score_span(network["score"].as_f64()),
        flag = if network["flagged"].as_bool() == Some(true) {
            " (flagged)"
        } else {
            ""
        },
    );
    html.push_str(&signals_table(&network["signals"]));
    html.push_str(&pictures_line(&network["signals"]));
    html.push_str("<div class=\"row\">");
    match composite {
        Some(c) => {
            let uri = jpeg_uri(&jpeg_thumbnail(&c.image, SIDE));
            let spread = c
                .eye_spread_px
                .map(|s| format!("eye positions spread {s:.1} px (RMS, {SIDE}-px frame) over {} faces", c.faces))
                .unwrap_or_else(|| "no face placed".into());
            let _ = write!(
                html,
                "<figure><h3>Composite of {} profile pictures</h3>{}<figcaption class=\"muted\">Average image; red dots: each face's eyes. {spread}.</figcaption></figure>",
                c.pictures,
                svg::composite_over(&uri, SIDE, &c.eyes)
            );
        }
        None => html.push_str(
            "<p class=\"muted\">No profile pictures were given (facade networks --images), so there is no composite.</p>",
        ),
    }
    html.push_str("<div>");
    html.push_str(&creation_chart(creation));
    html.push_str(&activity_chart(&network["activity"]));
    html.push_str("</div></div>");
    html.push_str(&members_table(input));
    html.push_str(&evidence_table(&network["evidence"]));
    html.push_str("</section>");
    html
}

/// How many members' pictures the detectors call AI-made, and how many files say so themselves.
fn pictures_line(signals: &Value) -> String {
    let scanned = signals["faces_scanned"].as_u64().unwrap_or(0);
    if scanned == 0 {
        return String::new();
    }
    let ai = signals["ai_faces"].as_f64().unwrap_or(0.0);
    let declared = signals["declared_ai_pictures"].as_u64().unwrap_or(0);
    format!(
        "<p>Profile pictures: {scanned} scanned; AI-made by the detectors: {:.0}% of members; <span class=\"declared\">declared AI-generated by the file itself: {declared}</span></p>",
        ai * 100.0
    )
}

fn signals_table(signals: &Value) -> String {
    let mut rows = String::new();
    if let Some(map) = signals["coordination"].as_object() {
        for (name, s) in map {
            let _ = write!(
                rows,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(name),
                text(&s["pairs"]),
                text(&s["coordinated_posts"]),
                text(&s["accounts"])
            );
        }
    }
    if rows.is_empty() {
        return String::new();
    }
    format!("<table><thead><tr><th>signal</th><th>account pairs</th><th>coordinated posts</th><th>accounts</th></tr></thead><tbody>{rows}</tbody></table>")
}

fn creation_chart(h: &Histogram) -> String {
    let Some(start) = h.start_day else {
        return "<p class=\"muted\">No creation dates.</p>".into();
    };
    let last = start + (h.counts.len() as i64 - 1) * h.bucket_days;
    let title = format!(
        "Accounts created per {} day(s){}",
        h.bucket_days,
        if h.unknown > 0 {
            format!(" ({} without a date)", h.unknown)
        } else {
            String::new()
        }
    );
    format!(
        "<h3>{}</h3>{}",
        escape(&title),
        svg::bar_chart(&title, &h.counts, &date_of_day(start), &date_of_day(last))
    )
}

fn activity_chart(activity: &Value) -> String {
    let counts: Vec<u32> = activity["counts"]
        .as_array()
        .map(|c| {
            c.iter()
                .filter_map(|v| v.as_u64())
                .map(|v| v as u32)
                .collect()
        })
        .unwrap_or_default();
    let (Some(start), false) = (activity["start"].as_str(), counts.is_empty()) else {
        return "<p class=\"muted\">No posting timeline in this networks.json.</p>".into();
    };
    let bucket = activity["bucket"].as_str().unwrap_or("day");
    let title = format!("Posts per {bucket}");
    let last = format!("{} {bucket}s later", counts.len());
    format!(
        "<h3>{}</h3>{}",
        escape(&title),
        svg::bar_chart(&title, &counts, start, &last)
    )
}

fn members_table(input: &NetworkInput) -> String {
    let members = crate::members(&input.network);
    let mut rows = String::new();
    for m in members {
        let id = m["id"].as_str().unwrap_or_default();
        let thumb = input
            .pictures
            .iter()
            .find(|p| p.label == id)
            .map(|p| {
                let face = most_suspicious_face(p)
                    .map(|f| square_crop(&p.image, f.bbox.map(|v| v as f32), 0.3))
                    .unwrap_or_else(|| p.image.clone());
                format!(
                    "<img class=\"thumb\" alt=\"\" src=\"{}\">",
                    jpeg_uri(&jpeg_thumbnail(&face, 96))
                )
            })
            .unwrap_or_default();
        let _ = write!(
            rows,
            "<tr><td>{thumb}</td><td>@{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            text(&m["handle"]),
            text(&m["id"]),
            text(&m["created"]),
            text(&m["posts"]),
            score_span(m["face"]["ai_score"].as_f64())
                + if m["face"]["declared_ai"] == true {
                    " <span class=\"declared\">declared AI by the file</span>"
                } else {
                    ""
                },
        );
    }
    format!(
        "<h3>Members ({})</h3><table><thead><tr><th>face</th><th>handle</th><th>id</th><th>created</th><th>posts</th><th>AI score</th></tr></thead><tbody>{rows}</tbody></table>",
        members.len()
    )
}

/// A signal of a link: the posts matched each way and what it adds to the strength (older
/// networks.json files have the toolkit's weights only).
fn signal_cell(name: &str, s: &Value) -> String {
    let counts = if s["matched"].is_array() {
        &s["matched"]
    } else {
        &s["weights"]
    };
    let mut cell = format!("{} {}/{}", escape(name), text(&counts[0]), text(&counts[1]));
    if let Some(strength) = s["strength"].as_f64() {
        let _ = write!(cell, " (+{strength:.1})");
    }
    cell
}

/// Evidence posts of a signal, `post @ time ↔ post @ time`: every kept pair for a hashtag
/// sequence or a near-duplicate template (the posts that make up the campaign), the first
/// for the others.
fn example_lines(name: &str, s: &Value) -> Vec<String> {
    let shown = match name {
        "co-hashtag-sequence" | "co-similar-tweet" => 10,
        _ => 1,
    };
    let examples = s["examples"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    examples
        .iter()
        .take(shown)
        .map(|pair| {
            format!(
                "{}: {} @ {} ↔ {} @ {}",
                escape(name),
                text(&pair["posts"][0]),
                text(&pair["times"][0]),
                text(&pair["posts"][1]),
                text(&pair["times"][1])
            )
        })
        .collect()
}

fn evidence_table(evidence: &Value) -> String {
    let links = evidence.as_array().map(Vec::as_slice).unwrap_or_default();
    if links.is_empty() {
        return String::new();
    }
    let mut rows = String::new();
    for link in links.iter().take(EVIDENCE_SHOWN) {
        let mut signals = Vec::new();
        let mut posts = Vec::new();
        if let Some(map) = link["signals"].as_object() {
            for (name, s) in map {
                signals.push(signal_cell(name, s));
                posts.extend(example_lines(name, s));
            }
        }
        let example = posts.join("<br>");
        let _ = write!(
            rows,
            "<tr><td>{} ↔ {}</td><td>{:.1}</td><td>{}</td><td class=\"muted\">{example}</td></tr>",
            text(&link["accounts"][0]),
            text(&link["accounts"][1]),
            link["strength"].as_f64().unwrap_or(0.0),
            signals.join("<br>"),
        );
    }
    format!(
        "<h3>Strongest links ({} of {} shown)</h3><table><thead><tr><th>accounts</th><th>strength</th><th>signals (posts matched each way; what each adds)</th><th>evidence posts</th></tr></thead><tbody>{rows}</tbody></table>",
        links.len().min(EVIDENCE_SHOWN),
        links.len()
    )
}

pub fn image_section(picture: &Picture) -> String {
    let record = &picture.record;
    let (w, h) = picture.image.dimensions();
    // Drawn at most 512 px wide; the overlay keeps the original pixel frame.
    let uri = jpeg_uri(&jpeg_thumbnail(&picture.image, 512));
    let mut html = format!(
        "<section><h2>{name}</h2><div class=\"row\">{svg}<div><p>Score {score} — verdict <strong>{verdict}</strong> — {faces} face(s), {w}×{h}</p><p class=\"muted\">sha256 {sha}</p>",
        name = escape(&picture.label),
        svg = svg::faces_over(&uri, w, h, &record.faces),
        score = score_span(record.score),
        verdict = record.verdict.map_or("no face", |v| v.as_str()),
        faces = record.faces.len(),
        sha = escape(record.sha256.as_deref().unwrap_or("")),
    );
    for warning in &record.warnings {
        let _ = write!(html, "<p class=\"warn\">Warning: {}</p>", escape(warning));
    }
    if let Some(provenance) = &record.provenance {
        // Beside the detectors, never mixed into them: the file's word, with its signature.
        let _ = write!(
            html,
            "<p class=\"declared\">Declared by the file: {}{}</p>",
            escape(&provenance.summary()),
            match record.verdict_source {
                Some(facade_detect::record::VerdictSource::Provenance) => {
                    " — the verdict follows this declaration; the score is the detectors' alone"
                }
                _ => "",
            }
        );
    }
    for (i, face) in record.faces.iter().enumerate() {
        let Some(evidence) = &face.evidence else {
            continue;
        };
        let mut rows = String::new();
        for (name, e) in evidence {
            let width = (e.contribution.abs() * 20.0).min(160.0);
            let class = if e.contribution >= 0.0 {
                "bar"
            } else {
                "bar neg"
            };
            let _ = write!(
                rows,
                "<tr><td>{}</td><td>{:.3}</td><td>{:+.3}</td><td><span class=\"{class}\" style=\"width:{width:.0}px\"></span></td></tr>",
                escape(name),
                e.value,
                e.contribution
            );
        }
        let _ = write!(
            html,
            "<h3>Face {} — score {}</h3><table><thead><tr><th>detector</th><th>raw value</th><th>log-odds</th><th></th></tr></thead><tbody>{rows}</tbody></table>",
            i + 1,
            score_span(face.score)
        );
    }
    html.push_str("</div></div></section>");
    html
}

pub fn failed_section(failed: &[facade_detect::Record]) -> String {
    if failed.is_empty() {
        return String::new();
    }
    let mut rows = String::new();
    for record in failed {
        let _ = write!(
            rows,
            "<tr><td>{}</td><td>{}</td></tr>",
            escape(&record.path),
            escape(record.error.as_deref().unwrap_or(""))
        );
    }
    format!(
        "<section><h2>Not scanned ({})</h2><table><tbody>{rows}</tbody></table></section>",
        failed.len()
    )
}
