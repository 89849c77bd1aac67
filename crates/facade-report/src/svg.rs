//! Inline SVG: bar charts, and faces drawn over their picture.

use std::fmt::Write;

use crate::html::escape;

const CHART_W: f32 = 640.0;
const CHART_H: f32 = 150.0;
const PAD: f32 = 28.0;

/// Bars for `counts`, labelled at both ends, with the largest count on the axis.
pub fn bar_chart(title: &str, counts: &[u32], first_label: &str, last_label: &str) -> String {
    let max = counts.iter().copied().max().unwrap_or(0).max(1) as f32;
    let plot_w = CHART_W - 2.0 * PAD;
    let plot_h = CHART_H - 2.0 * PAD;
    let bar_w = plot_w / counts.len().max(1) as f32;
    let mut svg = format!(
        r##"<svg class="chart" viewBox="0 0 {CHART_W} {CHART_H}" role="img" aria-label="{title}"><title>{title}</title>"##,
        title = escape(title)
    );
    let _ = write!(
        svg,
        r##"<line x1="{PAD}" y1="{y}" x2="{x2}" y2="{y}" stroke="#889"/>"##,
        y = CHART_H - PAD,
        x2 = CHART_W - PAD
    );
    for (i, &count) in counts.iter().enumerate() {
        if count == 0 {
            continue;
        }
        let h = count as f32 / max * plot_h;
        let _ = write!(
            svg,
            r##"<rect x="{x:.1}" y="{y:.1}" width="{w:.1}" height="{h:.1}" fill="#3d5a80"><title>{count}</title></rect>"##,
            x = PAD + i as f32 * bar_w,
            y = CHART_H - PAD - h,
            w = (bar_w - 1.0).max(0.5),
        );
    }
    let _ = write!(
        svg,
        r##"<text x="{PAD}" y="{yl}" font-size="11">{first}</text><text x="{xr}" y="{yl}" font-size="11" text-anchor="end">{last}</text><text x="{PAD}" y="{yt}" font-size="11">max {max}</text></svg>"##,
        yl = CHART_H - 8.0,
        xr = CHART_W - PAD,
        yt = PAD - 10.0,
        first = escape(first_label),
        last = escape(last_label),
        max = max as u32,
    );
    svg
}

/// A picture (as a data URI) with boxes and landmarks drawn over it in its own pixel frame.
pub fn faces_over(
    data_uri: &str,
    width: u32,
    height: u32,
    faces: &[facade_detect::record::FaceRecord],
) -> String {
    let stroke = (width.max(height) as f32 / 200.0).max(1.0);
    let mut svg = format!(
        r##"<svg class="faces-over" viewBox="0 0 {width} {height}"><image href="{data_uri}" width="{width}" height="{height}"/>"##
    );
    for face in faces {
        let [x1, y1, x2, y2] = face.bbox;
        let colour = if face.score.unwrap_or(0.0) >= 0.5 {
            "#d62828"
        } else {
            "#2a9d8f"
        };
        let _ = write!(
            svg,
            r##"<rect x="{x1}" y="{y1}" width="{w}" height="{h}" fill="none" stroke="{colour}" stroke-width="{stroke}"/>"##,
            w = x2 - x1,
            h = y2 - y1
        );
        for [x, y] in face.landmarks {
            let _ = write!(
                svg,
                r##"<circle cx="{x}" cy="{y}" r="{r}" fill="{colour}"/>"##,
                r = stroke * 1.6
            );
        }
    }
    svg.push_str("</svg>");
    svg
}

/// The composite with every face's eyes as translucent dots: aligned faces pile up.
pub fn composite_over(data_uri: &str, side: u32, eyes: &[[[f32; 2]; 2]]) -> String {
    let mut svg = format!(
        r##"<svg class="composite" viewBox="0 0 {side} {side}"><image href="{data_uri}" width="{side}" height="{side}"/>"##
    );
    for pair in eyes {
        for [x, y] in pair {
            let _ = write!(
                svg,
                r##"<circle cx="{x:.1}" cy="{y:.1}" r="2.2" fill="#ff3b30" fill-opacity="0.45"/>"##
            );
        }
    }
    svg.push_str("</svg>");
    svg
}
