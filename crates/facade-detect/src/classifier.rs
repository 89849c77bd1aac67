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

    /// [`FaceClassifier::forward`] for inference, without candle's general convolution: each
    /// convolution is one matrix product over columns gathered by contiguous row copies (as
    /// the face stage's networks do), with bias and ReLU in one pass over its output. Candle's
    /// conv2d cost as much per face as the whole face stage; training keeps it for its
    /// backward pass, and a test holds the two paths equal.
    pub fn infer(&self, x: &Tensor) -> Result<Vec<f32>> {
        let (n, c, h, w) = x.dims4()?;
        let mut maps = Maps {
            data: x.flatten_all()?.to_vec1()?,
            n,
            c,
            h,
            w,
        };
        for (i, conv) in self.convs.iter().enumerate() {
            maps = conv_same_relu(&maps, conv)?;
            if i < 3 {
                maps = max_pool_2x2(&maps);
            }
        }
        let plane = maps.h * maps.w;
        let pooled: Vec<f32> = maps
            .data
            .chunks_exact(plane)
            .map(|p| p.iter().sum::<f32>() / plane as f32)
            .collect();
        let pooled = Tensor::from_vec(pooled, (maps.n, maps.c), &Device::Cpu)?;
        self.head.forward(&pooled)?.squeeze(1)?.to_vec1()
    }

    /// The logit of each crop as scanning and calibration use it: the mean over the crop and
    /// its mirror image. Training shows both (mirroring is an augmentation), so the mean is
    /// the network's answer for the face rather than for one of its two orientations.
    pub fn logits(&self, crops: &[&[u8]]) -> Result<Vec<f32>> {
        let mut twice = crops.to_vec();
        twice.extend_from_slice(crops);
        let mirror: Vec<bool> = (0..twice.len()).map(|i| i >= crops.len()).collect();
        let both = self.infer(&crops_to_tensor(&twice, &mirror, &Device::Cpu)?)?;
        let (plain, mirrored) = both.split_at(crops.len());
        Ok(plain
            .iter()
            .zip(mirrored)
            .map(|(a, b)| 0.5 * (a + b))
            .collect())
    }
}

/// A batch of feature maps, `data[((b * c + ch) * h + y) * w + x]`.
struct Maps {
    data: Vec<f32>,
    n: usize,
    c: usize,
    h: usize,
    w: usize,
}

/// A 3×3 convolution with zero padding 1 and stride 1, then ReLU, as
/// `weight (C_out, C_in·9) × columns (N, C_in·9, H·W)`.
fn conv_same_relu(x: &Maps, conv: &Conv2d) -> Result<Maps> {
    let (c_out, c_in, k, _) = conv.weight().dims4()?;
    if c_in != x.c || k != 3 {
        candle_core::bail!("convolution {c_in}x{k}x{k} does not fit input {}x3x3", x.c);
    }
    let (h, w) = (x.h, x.w);
    let rows = c_in * 9;
    let mut columns = vec![0.0f32; x.n * rows * h * w];
    for b in 0..x.n {
        for ch in 0..c_in {
            let plane = &x.data[(b * c_in + ch) * h * w..][..h * w];
            for ky in 0..3 {
                for kx in 0..3 {
                    let row = &mut columns[(b * rows + ch * 9 + ky * 3 + kx) * h * w..][..h * w];
                    // Output x reads input x + kx − 1: columns off the edge stay zero.
                    let (x0, x1) = (1usize.saturating_sub(kx), (w + 1 - kx).min(w));
                    for oy in 0..h {
                        let Some(iy) = (oy + ky).checked_sub(1).filter(|&iy| iy < h) else {
                            continue;
                        };
                        let src = &plane[iy * w + x0 + kx - 1..][..x1 - x0];
                        row[oy * w + x0..][..x1 - x0].copy_from_slice(src);
                    }
                }
            }
        }
    }
    let columns = Tensor::from_vec(columns, (x.n, rows, h * w), &Device::Cpu)?;
    let weight = conv.weight().reshape((c_out, rows))?;
    let mut data: Vec<f32> = weight
        .broadcast_matmul(&columns)?
        .flatten_all()?
        .to_vec1()?;
    let bias: Vec<f32> = match conv.bias() {
        Some(b) => b.to_vec1()?,
        None => vec![0.0; c_out],
    };
    for (i, plane) in data.chunks_exact_mut(h * w).enumerate() {
        let b = bias[i % c_out];
        plane.iter_mut().for_each(|v| *v = (*v + b).max(0.0));
    }
    Ok(Maps {
        data,
        n: x.n,
        c: c_out,
        h,
        w,
    })
}

/// 2×2 max pooling with stride 2 (a last odd row or column is dropped, as candle does).
fn max_pool_2x2(x: &Maps) -> Maps {
    let (oh, ow) = (x.h / 2, x.w / 2);
    let mut data = Vec::with_capacity(x.n * x.c * oh * ow);
    for plane in x.data.chunks_exact(x.h * x.w) {
        for oy in 0..oh {
            let top = &plane[2 * oy * x.w..][..x.w];
            let bottom = &plane[(2 * oy + 1) * x.w..][..x.w];
            data.extend((0..ow).map(|ox| {
                let i = 2 * ox;
                top[i].max(top[i + 1]).max(bottom[i].max(bottom[i + 1]))
            }));
        }
    }
    Maps {
        data,
        n: x.n,
        c: x.c,
        h: oh,
        w: ow,
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
    fn inference_path_matches_candle_forward() {
        let map = VarMap::new();
        let vb = VarBuilder::from_varmap(&map, DType::F32, &Device::Cpu);
        let net = FaceClassifier::new(vb.pp("classifier")).expect("build");
        let side = CROP_SIDE;
        let a: Vec<u8> = (0..3 * side * side).map(|i| (i * 7 % 251) as u8).collect();
        let b: Vec<u8> = (0..3 * side * side).map(|i| (i * 13 % 241) as u8).collect();
        let x = crops_to_tensor(&[&a, &b], &[false, true], &Device::Cpu).expect("batch");
        let reference: Vec<f32> = net.forward(&x).and_then(|t| t.to_vec1()).expect("forward");
        let fast = net.infer(&x).expect("infer");
        assert_eq!(reference.len(), fast.len());
        for (r, f) in reference.iter().zip(&fast) {
            assert!(
                (r - f).abs() < 1e-4 * (1.0 + r.abs()),
                "{reference:?} {fast:?}"
            );
        }
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
