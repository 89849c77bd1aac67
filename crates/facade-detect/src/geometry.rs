//! The StyleGAN alignment detector: where the five landmarks fall in the frame.
//!
//! StyleGAN (and the FFHQ photographs it learned from) was trained on faces aligned to fixed
//! positions, so its outputs put the eyes, nose and mouth at nearly the same fractions of the
//! width and height in every image. GANEyeDistance (Yang, Singh & Menczer 2024) tests the two
//! eyes against published centres; this detector learns the joint distribution of all five
//! landmarks from training fakes (a Gaussian with a shrunk covariance, so ten numbers and their
//! correlations) and reports the Mahalanobis distance to it. Coordinates are fractions of the
//! frame, so a uniformly rescaled image gives the same value.
//!
//! It cannot tell an FFHQ photograph from a StyleGAN face (both are aligned the same way), and
//! it says nothing about generators that do not align their output (Stable Diffusion); the
//! fusion weighs it against the other detectors.

use serde::{Deserialize, Serialize};

/// Published StyleGAN eye centres as fractions of width and height (Yang et al. 2024).
pub const STYLEGAN_EYES: [[f32; 2]; 2] = [[0.3808, 0.4771], [0.6152, 0.4771]];

/// Landmarks as fractions of the frame: `[x0/w, y0/h, x1/w, ...]`.
pub fn normalized_landmarks(landmarks: &[[f32; 2]; 5], width: u32, height: u32) -> [f32; 10] {
    let (w, h) = (width.max(1) as f32, height.max(1) as f32);
    let mut out = [0.0f32; 10];
    for (i, [x, y]) in landmarks.iter().enumerate() {
        out[2 * i] = x / w;
        out[2 * i + 1] = y / h;
    }
    out
}

/// The GANEyeDistance statistic: root mean square offset of the two eye coordinates from the
/// published StyleGAN centres, in fractions of the frame.
pub fn gan_eye_distance(landmarks: &[[f32; 2]; 5], width: u32, height: u32) -> f32 {
    let n = normalized_landmarks(landmarks, width, height);
    let sq: f32 = (0..2)
        .map(|e| {
            (n[2 * e] - STYLEGAN_EYES[e][0]).powi(2) + (n[2 * e + 1] - STYLEGAN_EYES[e][1]).powi(2)
        })
        .sum();
    (sq / 4.0).sqrt()
}

/// A Gaussian over normalised landmark positions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GeometryModel {
    pub mean: Vec<f32>,
    /// Inverse of the (shrunk) covariance, row-major 10×10.
    pub precision: Vec<f32>,
}

/// Fraction of the covariance replaced by its diagonal: with a few hundred samples in ten
/// dimensions the smallest eigenvalues are underestimated, which would make the distance
/// explode on harmless deviations.
const SHRINKAGE: f64 = 0.1;
/// Floor on each variance (fractions of the frame squared): landmark noise of about 0.5% of
/// the frame is always expected.
const MIN_VARIANCE: f64 = 0.005 * 0.005;

impl GeometryModel {
    /// Fits the Gaussian to samples of [`normalized_landmarks`].
    pub fn fit(samples: &[[f32; 10]]) -> Option<GeometryModel> {
        if samples.len() < 12 {
            return None;
        }
        let n = samples.len() as f64;
        let mut mean = [0.0f64; 10];
        for s in samples {
            for i in 0..10 {
                mean[i] += f64::from(s[i]) / n;
            }
        }
        let mut cov = nalgebra::DMatrix::<f64>::zeros(10, 10);
        for s in samples {
            let d: Vec<f64> = (0..10).map(|i| f64::from(s[i]) - mean[i]).collect();
            for i in 0..10 {
                for j in 0..10 {
                    cov[(i, j)] += d[i] * d[j] / (n - 1.0);
                }
            }
        }
        for i in 0..10 {
            for j in 0..10 {
                if i != j {
                    cov[(i, j)] *= 1.0 - SHRINKAGE;
                }
            }
            cov[(i, i)] = cov[(i, i)].max(MIN_VARIANCE);
        }
        let precision = cov.try_inverse()?;
        Some(GeometryModel {
            mean: mean.iter().map(|&v| v as f32).collect(),
            precision: precision.iter().map(|&v| v as f32).collect(),
        })
    }

    /// Mahalanobis distance of these normalised landmarks from the learned alignment.
    pub fn distance(&self, sample: &[f32; 10]) -> f32 {
        let d: Vec<f32> = (0..10).map(|i| sample[i] - self.mean[i]).collect();
        let mut sum = 0.0f32;
        for i in 0..10 {
            for j in 0..10 {
                // nalgebra stores column-major; the matrix is symmetric, so the order is moot.
                sum += d[i] * self.precision[i * 10 + j] * d[j];
            }
        }
        sum.max(0.0).sqrt()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn aligned(jitter: f32, k: usize) -> [f32; 10] {
        let base = [0.38, 0.48, 0.62, 0.48, 0.5, 0.6, 0.41, 0.72, 0.59, 0.72];
        let mut s = base;
        for (i, v) in s.iter_mut().enumerate() {
            // A deterministic spread: small offsets that differ per sample and coordinate.
            *v += jitter * (((k * 7 + i * 13) % 11) as f32 / 10.0 - 0.5);
        }
        s
    }

    #[test]
    fn distance_is_small_on_the_alignment_and_large_off_it() {
        let samples: Vec<[f32; 10]> = (0..200).map(|k| aligned(0.01, k)).collect();
        let model = GeometryModel::fit(&samples).expect("fit");
        let on = model.distance(&aligned(0.01, 5));
        let mut off = aligned(0.0, 0);
        for v in off.iter_mut() {
            *v += 0.08;
        }
        assert!(on < 5.0, "on {on}");
        assert!(model.distance(&off) > 5.0 * on.max(1.0));
    }

    #[test]
    fn rescaling_the_image_keeps_the_features() {
        let lm = [
            [100.0, 120.0],
            [160.0, 121.0],
            [130.0, 150.0],
            [108.0, 180.0],
            [152.0, 181.0],
        ];
        let twice = lm.map(|[x, y]| [2.0 * x, 2.0 * y]);
        let a = normalized_landmarks(&lm, 256, 256);
        let b = normalized_landmarks(&twice, 512, 512);
        for i in 0..10 {
            assert!((a[i] - b[i]).abs() < 1e-6);
        }
        assert!(
            (gan_eye_distance(&lm, 256, 256) - gan_eye_distance(&twice, 512, 512)).abs() < 1e-6
        );
    }
}
