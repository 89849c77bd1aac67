//! The compact-embedding detector (after Mundra, Verbus, Farid et al., CVPR-W 2023).
//!
//! Generated faces share a structure that real photographs lack: the same alignment, lighting
//! and composition, repeated with small variations. A low-dimensional linear embedding (PCA)
//! learned from synthetic images alone captures that structure, so a synthetic image is
//! reconstructed from its embedding with a small error and a real photograph, which the
//! embedding never saw the like of, with a large one.
//!
//! The image is the whole frame, reduced to a [`FRAME_SIDE`]² grey thumbnail (area filter) and
//! standardised to zero mean and unit norm, so brightness, contrast and resolution do not
//! enter; the error is the fraction of the thumbnail's energy that the top components miss.

use facade_image::{Planes, RgbImage};
use serde::{Deserialize, Serialize};

/// Side of the grey thumbnail the embedding works on.
pub const FRAME_SIDE: usize = 32;
/// Number of principal components kept. A few hundred training fakes support a few dozen
/// components; more would start to memorise individual training images.
pub const COMPONENTS: usize = 32;

const DIM: usize = FRAME_SIDE * FRAME_SIDE;

/// The whole frame as a standardised grey thumbnail of `FRAME_SIDE²` values.
pub fn frame_thumbnail(image: &RgbImage) -> Vec<f32> {
    let small = Planes::from_rgb_normalized(image).resized(FRAME_SIDE, FRAME_SIDE);
    let mut grey: Vec<f32> = (0..DIM)
        .map(|i| (small.plane(0)[i] + small.plane(1)[i] + small.plane(2)[i]) / 3.0)
        .collect();
    standardize(&mut grey);
    grey
}

fn standardize(v: &mut [f32]) {
    let mean = v.iter().sum::<f32>() / v.len() as f32;
    v.iter_mut().for_each(|x| *x -= mean);
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 1e-6 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
}

/// Mean thumbnail and orthonormal principal components, learned from synthetic images.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FrameEmbedding {
    pub mean: Vec<f32>,
    /// `components × FRAME_SIDE²`, row-major, rows orthonormal.
    pub components: Vec<f32>,
}

impl FrameEmbedding {
    /// Principal components of the thumbnails, through the eigenvectors of their Gram matrix
    /// (there are fewer samples than dimensions).
    pub fn fit(thumbnails: &[Vec<f32>]) -> Option<FrameEmbedding> {
        let n = thumbnails.len();
        if n <= COMPONENTS {
            return None;
        }
        let mut mean = vec![0.0f64; DIM];
        for t in thumbnails {
            for (m, &v) in mean.iter_mut().zip(t) {
                *m += f64::from(v) / n as f64;
            }
        }
        let centred =
            nalgebra::DMatrix::<f64>::from_fn(n, DIM, |i, j| f64::from(thumbnails[i][j]) - mean[j]);
        let gram = &centred * centred.transpose();
        let eigen = gram.symmetric_eigen();
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by(|&a, &b| eigen.eigenvalues[b].total_cmp(&eigen.eigenvalues[a]));
        let mut components = Vec::with_capacity(COMPONENTS * DIM);
        for &k in order.iter().take(COMPONENTS) {
            // Data of lower rank than COMPONENTS leaves null directions: they stay zero and
            // reconstruct nothing.
            if eigen.eigenvalues[k] <= 1e-12 {
                components.extend(std::iter::repeat_n(0.0f32, DIM));
                continue;
            }
            let direction = centred.transpose() * eigen.eigenvectors.column(k);
            let norm = direction.norm();
            components.extend(direction.iter().map(|&v| (v / norm) as f32));
        }
        Some(FrameEmbedding {
            mean: mean.iter().map(|&v| v as f32).collect(),
            components,
        })
    }

    /// Fraction of the thumbnail's variation (about the learned mean) that the embedding
    /// cannot reconstruct, in `[0, 1]`.
    pub fn reconstruction_error(&self, thumbnail: &[f32]) -> f32 {
        let residual: Vec<f32> = thumbnail
            .iter()
            .zip(&self.mean)
            .map(|(x, m)| x - m)
            .collect();
        let energy: f32 = residual.iter().map(|v| v * v).sum();
        if energy <= 1e-12 {
            return 0.0;
        }
        let explained: f32 = self
            .components
            .chunks_exact(DIM)
            .map(|c| {
                let p: f32 = c.iter().zip(&residual).map(|(a, b)| a * b).sum();
                p * p
            })
            .sum();
        ((energy - explained) / energy).clamp(0.0, 1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Thumbnails built from two fixed patterns with varying weights: a two-dimensional family.
    fn family(k: usize) -> Vec<f32> {
        let a = (k as f32 * 0.37).sin();
        let b = (k as f32 * 0.91).cos();
        let mut v: Vec<f32> = (0..DIM)
            .map(|i| a * ((i % 32) as f32 / 31.0) + b * ((i / 32) as f32 / 31.0).powi(2))
            .collect();
        standardize(&mut v);
        v
    }

    #[test]
    fn members_of_the_learned_family_reconstruct_and_strangers_do_not() {
        let train: Vec<Vec<f32>> = (0..80).map(family).collect();
        let model = FrameEmbedding::fit(&train).expect("fit");
        let member = model.reconstruction_error(&family(1000));
        let mut stranger: Vec<f32> = (0..DIM).map(|i| ((i * 7919) % 101) as f32).collect();
        standardize(&mut stranger);
        let stranger = model.reconstruction_error(&stranger);
        assert!(member < 0.01, "member {member}");
        assert!(stranger > 0.5, "stranger {stranger}");
    }

    #[test]
    fn thumbnail_ignores_brightness_and_size() {
        let img = RgbImage::from_fn(64, 64, |x, y| {
            image::Rgb([(x * 3) as u8, (y * 2) as u8, 50])
        });
        let brighter = RgbImage::from_fn(64, 64, |x, y| {
            image::Rgb([(x * 3 + 20) as u8, (y * 2 + 20) as u8, 70])
        });
        let a = frame_thumbnail(&img);
        let b = frame_thumbnail(&brighter);
        let diff: f32 = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).sum();
        assert!(diff < 1e-3, "{diff}");
    }
}
