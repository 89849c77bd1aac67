//! The composite of a network's profile pictures: their average, and where their eyes are.

use facade_image::RgbImage;
use image::imageops::{self, FilterType};
use serde::Serialize;

use crate::Picture;

/// Side of the composite, in pixels; landmark positions are given in this frame.
pub const SIDE: u32 = 256;

/// The average picture and the eye positions behind it.
#[derive(Debug, Clone, Serialize)]
pub struct Composite {
    #[serde(skip)]
    pub image: RgbImage,
    pub pictures: usize,
    /// Pictures with a face whose eyes were placed.
    pub faces: usize,
    /// Every placed face's eyes (left, right) in the composite's frame.
    pub eyes: Vec<[[f32; 2]; 2]>,
    /// Mean left and right eye.
    pub mean_eyes: Option<[[f32; 2]; 2]>,
    /// Root-mean-square distance of the eyes from their mean, in composite pixels: a few
    /// pixels for StyleGAN faces, tens for ordinary photos.
    pub eye_spread_px: Option<f32>,
}

/// Every picture scaled to `SIDE`×`SIDE` (the whole frame: StyleGAN's alignment is a
/// property of the frame) and averaged; `None` without pictures.
pub fn composite(pictures: &[Picture]) -> Option<Composite> {
    if pictures.is_empty() {
        return None;
    }
    let n = (SIDE * SIDE * 3) as usize;
    let mut sum = vec![0f32; n];
    let mut eyes = Vec::new();
    for picture in pictures {
        let scaled = imageops::resize(&picture.image, SIDE, SIDE, FilterType::Triangle);
        for (s, &v) in sum.iter_mut().zip(scaled.as_raw()) {
            *s += f32::from(v);
        }
        if let Some(face) = most_suspicious_face(picture) {
            let (w, h) = picture.image.dimensions();
            let to_frame = |[x, y]: [f64; 2]| {
                [
                    (x / f64::from(w.max(1)) * f64::from(SIDE)) as f32,
                    (y / f64::from(h.max(1)) * f64::from(SIDE)) as f32,
                ]
            };
            eyes.push([to_frame(face.landmarks[0]), to_frame(face.landmarks[1])]);
        }
    }
    let count = pictures.len() as f32;
    let raw: Vec<u8> = sum.iter().map(|s| (s / count).round() as u8).collect();
    let image = RgbImage::from_raw(SIDE, SIDE, raw)?;
    let (mean_eyes, eye_spread_px) = eye_statistics(&eyes);
    Some(Composite {
        image,
        pictures: pictures.len(),
        faces: eyes.len(),
        eyes,
        mean_eyes,
        eye_spread_px,
    })
}

/// The face the verdict rests on: the highest score, else the most confident.
pub(crate) fn most_suspicious_face(
    picture: &Picture,
) -> Option<&facade_detect::record::FaceRecord> {
    picture.record.faces.iter().max_by(|a, b| {
        let key = |f: &facade_detect::record::FaceRecord| (f.score.unwrap_or(0.0), f.confidence);
        key(a)
            .partial_cmp(&key(b))
            .unwrap_or(std::cmp::Ordering::Equal)
    })
}

fn eye_statistics(eyes: &[[[f32; 2]; 2]]) -> (Option<[[f32; 2]; 2]>, Option<f32>) {
    if eyes.is_empty() {
        return (None, None);
    }
    let n = eyes.len() as f32;
    let mut mean = [[0f32; 2]; 2];
    for pair in eyes {
        for (m, e) in mean.iter_mut().zip(pair) {
            m[0] += e[0] / n;
            m[1] += e[1] / n;
        }
    }
    let mut squared = 0f32;
    for pair in eyes {
        for (m, e) in mean.iter().zip(pair) {
            squared += (e[0] - m[0]).powi(2) + (e[1] - m[1]).powi(2);
        }
    }
    (Some(mean), Some((squared / (2.0 * n)).sqrt()))
}
