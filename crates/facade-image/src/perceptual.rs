//! A perceptual hash (pHash): the same picture re-encoded, resized or lightly edited keeps
//! (nearly) the same 64 bits, so a face reused on several accounts is found by Hamming
//! distance. Grey 32×32 area thumbnail → 2-D DCT-II → the 8×8 lowest frequencies → one bit
//! each: above or below their median (the DC term excluded from the median).

use crate::{Planes, RgbImage};

const SIDE: usize = 32;
const KEPT: usize = 8;

pub fn perceptual_hash(image: &RgbImage) -> u64 {
    let thumb = Planes::from_rgb_normalized(image).resized(SIDE, SIDE);
    let grey: Vec<f64> = (0..SIDE * SIDE)
        .map(|i| {
            let (r, g, b) = (thumb.plane(0)[i], thumb.plane(1)[i], thumb.plane(2)[i]);
            f64::from(0.299 * r + 0.587 * g + 0.114 * b)
        })
        .collect();
    let cosines: Vec<f64> = (0..KEPT * SIDE)
        .map(|i| {
            let (k, n) = (i / SIDE, i % SIDE);
            (std::f64::consts::PI / SIDE as f64 * (n as f64 + 0.5) * k as f64).cos()
        })
        .collect();
    // Rows first (only the kept frequencies), then columns.
    let mut rows = vec![0.0; SIDE * KEPT];
    for y in 0..SIDE {
        for k in 0..KEPT {
            rows[y * KEPT + k] = (0..SIDE)
                .map(|x| grey[y * SIDE + x] * cosines[k * SIDE + x])
                .sum();
        }
    }
    let mut coefficients = [0.0f64; KEPT * KEPT];
    for ky in 0..KEPT {
        for kx in 0..KEPT {
            coefficients[ky * KEPT + kx] = (0..SIDE)
                .map(|y| rows[y * KEPT + kx] * cosines[ky * SIDE + y])
                .sum();
        }
    }
    let mut ac: Vec<f64> = coefficients[1..].to_vec();
    ac.sort_by(f64::total_cmp);
    let median = (ac[ac.len() / 2 - 1] + ac[ac.len() / 2]) / 2.0;
    coefficients.iter().enumerate().fold(
        0u64,
        |hash, (i, &c)| if c > median { hash | (1 << i) } else { hash },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::imageops::FilterType;

    /// Soft blobs of different sizes, like the broad shapes of a portrait.
    fn picture() -> RgbImage {
        let blobs = [
            (60.0, 80.0, 40.0, 1.0),
            (180.0, 70.0, 30.0, -0.8),
            (120.0, 190.0, 55.0, 0.9),
            (30.0, 220.0, 20.0, -1.0),
        ];
        RgbImage::from_fn(256, 256, |x, y| {
            let v: f32 = blobs
                .iter()
                .map(|&(cx, cy, r, a)| {
                    a * (-((x as f32 - cx).powi(2) + (y as f32 - cy).powi(2)) / (2.0 * r * r)).exp()
                })
                .sum();
            let g = (128.0 + 100.0 * v).clamp(0.0, 255.0) as u8;
            image::Rgb([g, g, g])
        })
    }

    #[test]
    fn survives_resizing_and_differs_between_pictures() {
        let original = picture();
        let small = image::imageops::resize(&original, 100, 100, FilterType::Triangle);
        let h1 = perceptual_hash(&original);
        let h2 = perceptual_hash(&small);
        assert!((h1 ^ h2).count_ones() <= 3, "{:064b}\n{:064b}", h1, h2);
        let other = image::imageops::rotate90(&original);
        assert!((h1 ^ perceptual_hash(&other)).count_ones() > 10);
    }
}
