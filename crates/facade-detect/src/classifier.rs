//! The learned detector: a small convolutional network on the aligned face crop.
//!
//! It looks only at the [`crate::align`] crop (`3 × 64 × 64`), so it can learn what a face
//! made by a generator looks like (skin and hair texture, teeth, eyes, the blending of the
//! face into its background) but not the size or framing of the picture. It is the detector
//! that can catch generators that do not follow the StyleGAN alignment.
//!
//! Four 3×3 convolutions (16, 32, 64, 64 channels) with ReLU, 2×2 max-pooling after the first
//! three, global average pooling and one linear output: about 75 thousand weights, 14 million
//! multiply-adds per face. The module is plain candle; weights are loaded by name through a
//! [`VarBuilder`] (`classifier.conv{0..3}.{weight,bias}`, `classifier.head.{weight,bias}`).

use candle_core::{Device, Module, Result, Tensor, D};
use candle_nn::{conv2d, linear, Conv2d, Conv2dConfig, Linear, VarBuilder};

use crate::align::CROP_SIDE;

/// Channels of the four convolutions.
pub const CHANNELS: [usize; 5] = [3, 16, 32, 64, 64];

/// The classifier network.
#[derive(Debug, Clone)]
pub struct FaceClassifier {
    convs: Vec<Conv2d>,
    head: Linear,
}

impl FaceClassifier {
    pub fn new(vb: VarBuilder) -> Result<FaceClassifier> {
        let config = Conv2dConfig {
            padding: 1,
            ..Default::default()
        };
        let convs = (0..4)
            .map(|i| {
                conv2d(
                    CHANNELS[i],
                    CHANNELS[i + 1],
                    3,
                    config,
                    vb.pp(format!("conv{i}")),
                )
            })
            .collect::<Result<Vec<_>>>()?;
        let head = linear(CHANNELS[4], 1, vb.pp("head"))?;
        Ok(FaceClassifier { convs, head })
    }

    /// Logits (positive = generated) for a batch `(n, 3, 64, 64)` made by [`crops_to_tensor`].
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut h = x.clone();
        for (i, conv) in self.convs.iter().enumerate() {
            h = conv.forward(&h)?.relu()?;
            if i < 3 {
                h = h.max_pool2d(2)?;
            }
        }
        let pooled = h.mean(D::Minus1)?.mean(D::Minus1)?;
        self.head.forward(&pooled)?.squeeze(1)
    }

    /// The logit of each crop as scanning and calibration use it: the mean over the crop and
    /// its mirror image. Training shows both (mirroring is an augmentation), so the mean is
    /// the network's answer for the face rather than for one of its two orientations.
    pub fn logits(&self, crops: &[&[u8]]) -> Result<Vec<f32>> {
        let mut twice = crops.to_vec();
        twice.extend_from_slice(crops);
        let mirror: Vec<bool> = (0..twice.len()).map(|i| i >= crops.len()).collect();
        let both: Vec<f32> = self
            .forward(&crops_to_tensor(&twice, &mirror, &Device::Cpu)?)?
            .to_vec1()?;
        let (plain, mirrored) = both.split_at(crops.len());
        Ok(plain
            .iter()
            .zip(mirrored)
            .map(|(a, b)| 0.5 * (a + b))
            .collect())
    }
}

/// Stacks aligned crops (`3 × 64 × 64` bytes each, plane by plane) into a normalised batch;
/// `mirror[i]` flips crop `i` left-right (training augmentation).
pub fn crops_to_tensor(crops: &[&[u8]], mirror: &[bool], device: &Device) -> Result<Tensor> {
    let side = CROP_SIDE;
    let per = 3 * side * side;
    let mut data = Vec::with_capacity(crops.len() * per);
    for (i, crop) in crops.iter().enumerate() {
        let flip = mirror.get(i).copied().unwrap_or(false);
        for row in crop.chunks_exact(side) {
            if flip {
                data.extend(row.iter().rev().map(|&v| normalize(v)));
            } else {
                data.extend(row.iter().map(|&v| normalize(v)));
            }
        }
    }
    Tensor::from_vec(data, (crops.len(), 3, side, side), device)
}

fn normalize(v: u8) -> f32 {
    (f32::from(v) - 127.5) / 128.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::DType;
    use candle_nn::VarMap;

    #[test]
    fn forward_gives_one_logit_per_crop() {
        let map = VarMap::new();
        let vb = VarBuilder::from_varmap(&map, DType::F32, &Device::Cpu);
        let net = FaceClassifier::new(vb.pp("classifier")).expect("build");
        let crop = vec![128u8; 3 * CROP_SIDE * CROP_SIDE];
        let x = crops_to_tensor(&[&crop, &crop], &[false, true], &Device::Cpu).expect("batch");
        let logits = net.forward(&x).expect("forward");
        assert_eq!(logits.dims(), &[2]);
        let names: Vec<String> = map
            .data()
            .lock()
            .map(|d| d.keys().cloned().collect())
            .unwrap_or_default();
        assert!(
            names.iter().any(|n| n == "classifier.conv3.weight"),
            "{names:?}"
        );
    }

    #[test]
    fn a_face_and_its_mirror_image_get_the_same_logit() {
        let map = VarMap::new();
        let vb = VarBuilder::from_varmap(&map, DType::F32, &Device::Cpu);
        let net = FaceClassifier::new(vb.pp("classifier")).expect("build");
        let side = CROP_SIDE;
        let crop: Vec<u8> = (0..3 * side * side).map(|i| (i * 7 % 251) as u8).collect();
        let mut mirrored = crop.clone();
        for row in mirrored.chunks_exact_mut(side) {
            row.reverse();
        }
        let logits = net.logits(&[&crop, &mirrored]).expect("logits");
        assert!((logits[0] - logits[1]).abs() < 1e-5, "{logits:?}");
        let plain: Vec<f32> = net
            .forward(&crops_to_tensor(&[&crop], &[], &Device::Cpu).expect("batch"))
            .and_then(|t| t.to_vec1())
            .expect("forward");
        assert_ne!(plain[0], logits[0], "the mirror must take part");
    }

    #[test]
    fn mirroring_reverses_rows() {
        let mut crop = vec![0u8; 3 * CROP_SIDE * CROP_SIDE];
        crop[0] = 255;
        let x = crops_to_tensor(&[&crop], &[true], &Device::Cpu).expect("batch");
        let v: Vec<f32> = x.flatten_all().and_then(|t| t.to_vec1()).expect("values");
        assert!(v[CROP_SIDE - 1] > 0.9 && v[0] < -0.9);
    }
}
