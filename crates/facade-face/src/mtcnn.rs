//! The three MTCNN networks (Zhang et al. 2016) as plain modules.
//!
//! Layer names and shapes follow facenet-pytorch's `PNet`, `RNet` and `ONet`, so the published
//! weights load by name (`pnet.conv1.weight`, …) through a candle `VarBuilder` from the
//! safetensors file that `scripts/convert_mtcnn_weights.py` writes. Inputs are `(N, 3, H, W)`
//! tensors of `(pixel - 127.5) / 128`.
//!
//! Between layers the feature maps live in plain memory ([`Maps`]): every convolution is one
//! `gemm` matrix product (the kernels candle's own products use) over columns gathered by
//! contiguous row copies, with bias and PReLU fused into a single pass over its output, and
//! pooling is two whole-row passes per output row. Candle's general
//! conv2d (element-wise im2col with bounds checks, NHWC transposes) and one allocating tensor op
//! per PReLU step made these small networks 3–4× slower.

use candle_core::{DType, Device, Result, Tensor};
use candle_nn::{Linear, Module, VarBuilder};

/// The converted facenet-pytorch 2.6.0 weights (MIT licence), embedded so that nothing is
/// downloaded or looked up at run time.
pub const EMBEDDED_WEIGHTS: &[u8] = include_bytes!("../weights/mtcnn.safetensors");

/// A batch of feature maps, `data[((b * c + ch) * h + y) * w + x]`.
#[derive(Debug, Clone)]
struct Maps {
    data: Vec<f32>,
    n: usize,
    c: usize,
    h: usize,
    w: usize,
}

impl Maps {
    fn from_tensor(xs: &Tensor) -> Result<Maps> {
        let (n, c, h, w) = xs.dims4()?;
        Ok(Maps {
            data: xs.flatten_all()?.to_vec1::<f32>()?,
            n,
            c,
            h,
            w,
        })
    }

    fn into_tensor(self, device: &Device) -> Result<Tensor> {
        Tensor::from_vec(self.data, (self.n, self.c, self.h, self.w), device)
    }

    /// Flattened per item as `(W, H, C)`: the networks' Caffe-era `permute(0, 3, 2, 1)`.
    fn flatten_whc(&self, device: &Device) -> Result<Tensor> {
        let mut out = Vec::with_capacity(self.data.len());
        for b in 0..self.n {
            for x in 0..self.w {
                for y in 0..self.h {
                    for ch in 0..self.c {
                        out.push(self.data[((b * self.c + ch) * self.h + y) * self.w + x]);
                    }
                }
            }
        }
        Tensor::from_vec(out, (self.n, self.w * self.h * self.c), device)
    }
}

/// A per-channel PReLU slope vector.
fn prelu_weights(channels: usize, vb: VarBuilder) -> Result<Vec<f32>> {
    vb.get(channels, "weight")?.to_vec1()
}

/// A stride-1, unpadded convolution (the only kind MTCNN has), optionally followed by PReLU,
/// computed as `weight (C_out, C_in·k·k) × columns (N, C_in·k·k, H'·W')`.
#[derive(Debug, Clone)]
struct Conv2d {
    /// `(C_out, C_in·k·k)`, row-major.
    weight: Vec<f32>,
    bias: Vec<f32>,
    prelu: Option<Vec<f32>>,
    in_channels: usize,
    kernel: usize,
}

impl Conv2d {
    fn load(in_c: usize, out_c: usize, kernel: usize, vb: VarBuilder) -> Result<Conv2d> {
        let weight = vb
            .get((out_c, in_c, kernel, kernel), "weight")?
            .flatten_all()?
            .to_vec1()?;
        Ok(Conv2d {
            weight,
            bias: vb.get(out_c, "bias")?.to_vec1()?,
            prelu: None,
            in_channels: in_c,
            kernel,
        })
    }

    fn with_prelu(mut self, vb: VarBuilder) -> Result<Conv2d> {
        self.prelu = Some(prelu_weights(self.bias.len(), vb)?);
        Ok(self)
    }

    /// `weight × columns` for each of `n` images, into one buffer laid out `(n, C_out, pixels)`.
    ///
    /// `gemm` is called directly: candle's `matmul` added a copy of the weights per image (the
    /// broadcast), a zero-filled output and a copy of that output back out of the tensor
    /// (together about a tenth of a `--faces-only` scan). The product is asked for transposed,
    /// `(pixels × rows) · (rows × C_out)` written column by column, so that gemm's vector
    /// dimension runs over the pixels (hundreds to thousands) rather than the 10–128 output
    /// channels: the same sums in the same order (records identical on 300 pictures), about
    /// 2% less time.
    fn multiply(&self, columns: &[f32], n: usize, rows: usize, pixels: usize) -> Vec<f32> {
        let c_out = self.bias.len();
        assert_eq!(self.weight.len(), c_out * rows, "weights match the columns");
        assert_eq!(columns.len(), n * rows * pixels, "columns hold every image");
        let threads = candle_core::utils::get_num_threads();
        let parallelism = if threads > 1 {
            gemm::Parallelism::Rayon(threads)
        } else {
            gemm::Parallelism::None
        };
        let mut out: Vec<f32> = Vec::with_capacity(n * c_out * pixels);
        for b in 0..n {
            let image_columns = &columns[b * rows * pixels..][..rows * pixels];
            // SAFETY: `out` has room for `n * c_out * pixels` values and this call writes the
            // `c_out × pixels` block after the `b` blocks already written (as the transposed
            // `pixels × c_out` product: column stride `pixels`, row stride 1), reading nothing
            // of it (`read_dst` false); `weight` is `c_out × rows` and `image_columns` is
            // `rows × pixels`, both row-major (read transposed through their strides), as the
            // asserts above and the slice bounds check.
            unsafe {
                gemm::gemm(
                    pixels,
                    c_out,
                    rows,
                    out.as_mut_ptr().add(b * c_out * pixels),
                    pixels as isize,
                    1,
                    false,
                    image_columns.as_ptr(),
                    pixels as isize,
                    1,
                    self.weight.as_ptr(),
                    rows as isize,
                    1,
                    0.0,
                    1.0,
                    false,
                    false,
                    false,
                    parallelism,
                );
                out.set_len((b + 1) * c_out * pixels);
            }
        }
        out
    }

    fn forward(&self, x: &Maps) -> Result<Maps> {
        let k = self.kernel;
        if x.c != self.in_channels || x.h < k || x.w < k {
            candle_core::bail!("conv input {}x{}x{} does not fit kernel {k}", x.c, x.h, x.w);
        }
        let (oh, ow) = (x.h - k + 1, x.w - k + 1);
        let rows = x.c * k * k;
        // Written in order (image, channel, ky, kx, output row), which is the columns' own
        // layout: appending instead of zero-filling first saves a pass over the largest buffer
        // of the face stage (the fill was 5% of a `--faces-only` scan's time).
        let mut columns = Vec::with_capacity(x.n * rows * oh * ow);
        for b in 0..x.n {
            for ch in 0..x.c {
                let plane = &x.data[(b * x.c + ch) * x.h * x.w..][..x.h * x.w];
                for ky in 0..k {
                    for kx in 0..k {
                        for oy in 0..oh {
                            columns.extend_from_slice(&plane[(oy + ky) * x.w + kx..][..ow]);
                        }
                    }
                }
            }
        }
        let mut data = self.multiply(&columns, x.n, rows, oh * ow);
        let c_out = self.bias.len();
        for (i, plane) in data.chunks_exact_mut(oh * ow).enumerate() {
            let ch = i % c_out;
            let bias = self.bias[ch];
            match &self.prelu {
                Some(slopes) => {
                    let slope = slopes[ch];
                    for v in plane {
                        let z = *v + bias;
                        *v = if z < 0.0 { z * slope } else { z };
                    }
                }
                None => plane.iter_mut().for_each(|v| *v += bias),
            }
        }
        Ok(Maps {
            data,
            n: x.n,
            c: c_out,
            h: oh,
            w: ow,
        })
    }
}

/// Max pooling with PyTorch's `ceil_mode=True`: a last, partial window is kept.
/// Per output row: the maximum over the window's input rows, then over each window's columns
/// of that row (see [`pool_row`]). Both passes run over contiguous memory and vectorise.
fn max_pool_ceil(x: &Maps, kernel: usize, stride: usize) -> Maps {
    let out = |size: usize| size.saturating_sub(kernel).div_ceil(stride) + 1;
    let (oh, ow) = (out(x.h), out(x.w));
    let mut data = vec![0.0f32; x.n * x.c * oh * ow];
    let mut column_max = vec![0.0f32; x.w];
    let mut window_max = vec![0.0f32; x.w];
    for (plane, dst) in x
        .data
        .chunks_exact(x.h * x.w)
        .zip(data.chunks_exact_mut(oh * ow))
    {
        for (oy, dst_row) in dst.chunks_exact_mut(ow).enumerate() {
            let y0 = oy * stride;
            column_max.copy_from_slice(&plane[y0 * x.w..][..x.w]);
            for y in y0 + 1..(y0 + kernel).min(x.h) {
                for (m, v) in column_max.iter_mut().zip(&plane[y * x.w..][..x.w]) {
                    *m = larger(*m, *v);
                }
            }
            pool_row(&column_max, kernel, stride, &mut window_max, dst_row);
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

/// One output row of the pooling from the row of column maxima: `dst[ox]` is the maximum of
/// `column_max[ox·stride .. ox·stride + kernel]`, cut at the row's end (ceil mode).
///
/// The maximum over a window is taken first at *every* start, in whole-row passes that
/// vectorise, and then every `stride`-th one is picked; picking the windows one by one (a
/// slice and a branch on its length per output) took 13% of a `--faces-only` scan, more than
/// some of the convolutions it sits between. A maximum is exact in any order, so the values
/// are the same.
fn pool_row(
    column_max: &[f32],
    kernel: usize,
    stride: usize,
    window_max: &mut [f32],
    dst: &mut [f32],
) {
    let w = column_max.len();
    // Windows that start at or past `full` run past the row's end.
    let full = (w + 1).saturating_sub(kernel);
    let window_max = &mut window_max[..full];
    window_max.copy_from_slice(&column_max[..full]);
    for j in 1..kernel {
        // (`j` may pass a row shorter than one window, which has no whole window.)
        for (m, v) in window_max.iter_mut().zip(&column_max[j.min(w)..]) {
            *m = larger(*m, *v);
        }
    }
    let whole = full.div_ceil(stride).min(dst.len());
    for (d, m) in dst[..whole]
        .iter_mut()
        .zip(window_max.iter().step_by(stride))
    {
        *d = *m;
    }
    for (ox, d) in dst.iter_mut().enumerate().skip(whole) {
        let window = &column_max[ox * stride..];
        *d = window.iter().fold(f32::NEG_INFINITY, |m, v| larger(m, *v));
    }
}

/// The larger of two values as one instruction. `f32::max` also decides what a NaN gives,
/// which costs a compare and a blend per value in the pooling's loops; the maps hold no NaN
/// (they come from pixels through finite weights).
#[inline(always)]
fn larger(a: f32, b: f32) -> f32 {
    if b > a {
        b
    } else {
        a
    }
}

/// A fully connected layer, optionally followed by PReLU.
#[derive(Debug, Clone)]
struct Dense {
    linear: Linear,
    prelu: Option<Tensor>,
}

impl Dense {
    fn load(in_f: usize, out_f: usize, vb: VarBuilder) -> Result<Dense> {
        Ok(Dense {
            linear: candle_nn::linear(in_f, out_f, vb)?,
            prelu: None,
        })
    }

    fn with_prelu(mut self, out_f: usize, vb: VarBuilder) -> Result<Dense> {
        self.prelu = Some(vb.get(out_f, "weight")?.reshape((1, out_f))?);
        Ok(self)
    }

    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let ys = self.linear.forward(xs)?;
        match &self.prelu {
            Some(slope) => ys.relu()? - ys.neg()?.relu()?.broadcast_mul(slope)?,
            None => Ok(ys),
        }
    }
}

/// Probability of the "face" class from two logits along dimension 1.
fn face_probability(logits: &Tensor) -> Result<Tensor> {
    candle_nn::ops::softmax(logits, 1)?
        .narrow(1, 1, 1)?
        .squeeze(1)
}

/// Proposal network: fully convolutional, run over an image pyramid.
#[derive(Debug, Clone)]
pub struct PNet {
    conv1: Conv2d,
    conv2: Conv2d,
    conv3: Conv2d,
    conv4_1: Conv2d,
    conv4_2: Conv2d,
}

impl PNet {
    pub fn load(vb: VarBuilder) -> Result<Self> {
        Ok(PNet {
            conv1: Conv2d::load(3, 10, 3, vb.pp("conv1"))?.with_prelu(vb.pp("prelu1"))?,
            conv2: Conv2d::load(10, 16, 3, vb.pp("conv2"))?.with_prelu(vb.pp("prelu2"))?,
            conv3: Conv2d::load(16, 32, 3, vb.pp("conv3"))?.with_prelu(vb.pp("prelu3"))?,
            conv4_1: Conv2d::load(32, 2, 1, vb.pp("conv4_1"))?,
            conv4_2: Conv2d::load(32, 4, 1, vb.pp("conv4_2"))?,
        })
    }

    /// Returns `(regression (N,4,H',W'), face probability (N,H',W'))`; each output cell is a
    /// 12×12 window at stride 2 of the input.
    pub fn forward(&self, xs: &Tensor) -> Result<(Tensor, Tensor)> {
        let device = xs.device();
        let x = self.conv1.forward(&Maps::from_tensor(xs)?)?;
        let x = self.conv2.forward(&max_pool_ceil(&x, 2, 2))?;
        let x = self.conv3.forward(&x)?;
        let logits = self.conv4_1.forward(&x)?.into_tensor(device)?;
        let reg = self.conv4_2.forward(&x)?.into_tensor(device)?;
        Ok((reg, face_probability(&logits)?))
    }
}

/// Refinement network on 24×24 crops.
#[derive(Debug, Clone)]
pub struct RNet {
    conv1: Conv2d,
    conv2: Conv2d,
    conv3: Conv2d,
    dense4: Dense,
    dense5_1: Dense,
    dense5_2: Dense,
}

impl RNet {
    pub fn load(vb: VarBuilder) -> Result<Self> {
        Ok(RNet {
            conv1: Conv2d::load(3, 28, 3, vb.pp("conv1"))?.with_prelu(vb.pp("prelu1"))?,
            conv2: Conv2d::load(28, 48, 3, vb.pp("conv2"))?.with_prelu(vb.pp("prelu2"))?,
            conv3: Conv2d::load(48, 64, 2, vb.pp("conv3"))?.with_prelu(vb.pp("prelu3"))?,
            dense4: Dense::load(576, 128, vb.pp("dense4"))?.with_prelu(128, vb.pp("prelu4"))?,
            dense5_1: Dense::load(128, 2, vb.pp("dense5_1"))?,
            dense5_2: Dense::load(128, 4, vb.pp("dense5_2"))?,
        })
    }

    /// Returns `(regression (N,4), face probability (N))`.
    pub fn forward(&self, xs: &Tensor) -> Result<(Tensor, Tensor)> {
        let x = self.conv1.forward(&Maps::from_tensor(xs)?)?;
        let x = self.conv2.forward(&max_pool_ceil(&x, 3, 2))?;
        let x = self.conv3.forward(&max_pool_ceil(&x, 3, 2))?;
        let x = self.dense4.forward(&x.flatten_whc(xs.device())?)?;
        let prob = face_probability(&self.dense5_1.forward(&x)?)?;
        Ok((self.dense5_2.forward(&x)?, prob))
    }
}

/// Output network on 48×48 crops: box, landmarks and the final confidence.
#[derive(Debug, Clone)]
pub struct ONet {
    conv1: Conv2d,
    conv2: Conv2d,
    conv3: Conv2d,
    conv4: Conv2d,
    dense5: Dense,
    dense6_1: Dense,
    dense6_2: Dense,
    dense6_3: Dense,
}

/// What O-Net says about each crop.
pub struct ONetOutput {
    /// `(N, 4)` box regression, relative to the crop's size.
    pub regression: Tensor,
    /// `(N, 10)`: five x then five y, in [0, 1] of the crop.
    pub landmarks: Tensor,
    /// `(N)` face probability.
    pub probability: Tensor,
}

impl ONet {
    pub fn load(vb: VarBuilder) -> Result<Self> {
        Ok(ONet {
            conv1: Conv2d::load(3, 32, 3, vb.pp("conv1"))?.with_prelu(vb.pp("prelu1"))?,
            conv2: Conv2d::load(32, 64, 3, vb.pp("conv2"))?.with_prelu(vb.pp("prelu2"))?,
            conv3: Conv2d::load(64, 64, 3, vb.pp("conv3"))?.with_prelu(vb.pp("prelu3"))?,
            conv4: Conv2d::load(64, 128, 2, vb.pp("conv4"))?.with_prelu(vb.pp("prelu4"))?,
            dense5: Dense::load(1152, 256, vb.pp("dense5"))?.with_prelu(256, vb.pp("prelu5"))?,
            dense6_1: Dense::load(256, 2, vb.pp("dense6_1"))?,
            dense6_2: Dense::load(256, 4, vb.pp("dense6_2"))?,
            dense6_3: Dense::load(256, 10, vb.pp("dense6_3"))?,
        })
    }

    pub fn forward(&self, xs: &Tensor) -> Result<ONetOutput> {
        let x = self.conv1.forward(&Maps::from_tensor(xs)?)?;
        let x = self.conv2.forward(&max_pool_ceil(&x, 3, 2))?;
        let x = self.conv3.forward(&max_pool_ceil(&x, 3, 2))?;
        let x = self.conv4.forward(&max_pool_ceil(&x, 2, 2))?;
        let x = self.dense5.forward(&x.flatten_whc(xs.device())?)?;
        Ok(ONetOutput {
            regression: self.dense6_2.forward(&x)?,
            landmarks: self.dense6_3.forward(&x)?,
            probability: face_probability(&self.dense6_1.forward(&x)?)?,
        })
    }
}

/// The three networks, loaded together.
#[derive(Debug, Clone)]
pub struct Mtcnn {
    pub pnet: PNet,
    pub rnet: RNet,
    pub onet: ONet,
}

impl Mtcnn {
    /// Loads the networks from a safetensors buffer with `pnet.*`, `rnet.*`, `onet.*` names.
    pub fn from_safetensors(bytes: &[u8], device: &Device) -> Result<Self> {
        let vb = VarBuilder::from_buffered_safetensors(bytes.to_vec(), DType::F32, device)?;
        Ok(Mtcnn {
            pnet: PNet::load(vb.pp("pnet"))?,
            rnet: RNet::load(vb.pp("rnet"))?,
            onet: ONet::load(vb.pp("onet"))?,
        })
    }

    /// The published weights compiled into the binary.
    pub fn embedded() -> Result<Self> {
        Self::from_safetensors(EMBEDDED_WEIGHTS, &Device::Cpu)
    }
}

/// Rows of a 2-D tensor as `Vec<Vec<f32>>` (small outputs only).
pub(crate) fn rows(t: &Tensor) -> Result<Vec<Vec<f32>>> {
    t.to_dtype(DType::F32)?.to_vec2()
}

/// A 1-D tensor as `Vec<f32>`.
pub(crate) fn values(t: &Tensor) -> Result<Vec<f32>> {
    t.flatten_all()?.to_vec1()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_weights_load_and_shapes_flow() -> Result<()> {
        let nets = Mtcnn::embedded()?;
        let x = Tensor::zeros((1, 3, 30, 40), DType::F32, &Device::Cpu)?;
        let (reg, prob) = nets.pnet.forward(&x)?;
        assert!(values(&prob)?.iter().all(|p| p.is_finite()));
        // 30 -> conv3 28 -> pool(ceil) 14 -> 12 -> 10; 40 -> 38 -> 19 -> 17 -> 15
        assert_eq!(reg.dims(), &[1, 4, 10, 15]);
        assert_eq!(prob.dims(), &[1, 10, 15]);
        let (reg, prob) =
            nets.rnet
                .forward(&Tensor::zeros((2, 3, 24, 24), DType::F32, &Device::Cpu)?)?;
        assert_eq!((reg.dims(), prob.dims()), (&[2usize, 4][..], &[2usize][..]));
        let out = nets
            .onet
            .forward(&Tensor::zeros((3, 3, 48, 48), DType::F32, &Device::Cpu)?)?;
        assert_eq!(out.landmarks.dims(), &[3, 10]);
        let p = values(&out.probability)?;
        assert!(p.iter().all(|v| (0.0..=1.0).contains(v)));
        Ok(())
    }

    #[test]
    fn columns_convolution_matches_candle_conv2d() -> Result<()> {
        let dev = Device::Cpu;
        let weight = Tensor::randn(0f32, 1.0, (5, 3, 3, 3), &dev)?;
        let bias = Tensor::randn(0f32, 1.0, 5, &dev)?;
        let xs = Tensor::randn(0f32, 1.0, (2, 3, 9, 11), &dev)?;
        let ours = Conv2d {
            weight: weight.flatten_all()?.to_vec1()?,
            bias: bias.to_vec1()?,
            prelu: None,
            in_channels: 3,
            kernel: 3,
        }
        .forward(&Maps::from_tensor(&xs)?)?
        .into_tensor(&dev)?;
        let theirs = xs
            .conv2d(&weight, 0, 1, 1, 1)?
            .broadcast_add(&bias.reshape((1, 5, 1, 1))?)?;
        assert_eq!(ours.dims(), theirs.dims());
        let diff: f32 = (ours - theirs)?.abs()?.max_all()?.to_scalar()?;
        assert!(diff < 1e-4, "max difference {diff}");
        Ok(())
    }

    /// The plain definition: each output the maximum of its window, cut at the map's edges.
    fn plain_max_pool_ceil(x: &Maps, kernel: usize, stride: usize) -> Vec<f32> {
        let out = |size: usize| size.saturating_sub(kernel).div_ceil(stride) + 1;
        let (oh, ow) = (out(x.h), out(x.w));
        let mut data = Vec::new();
        for plane in x.data.chunks_exact(x.h * x.w) {
            for oy in 0..oh {
                for ox in 0..ow {
                    let mut m = f32::NEG_INFINITY;
                    for y in oy * stride..(oy * stride + kernel).min(x.h) {
                        for xx in ox * stride..(ox * stride + kernel).min(x.w) {
                            m = m.max(plane[y * x.w + xx]);
                        }
                    }
                    data.push(m);
                }
            }
        }
        data
    }

    #[test]
    fn pooling_equals_the_plain_window_maxima() {
        for (kernel, stride) in [(2, 2), (3, 2)] {
            for h in 1..12 {
                for w in 1..12 {
                    let data = (0..2 * h * w)
                        .map(|i| ((i * 7919 % 103) as f32 - 51.0) / 7.0)
                        .collect();
                    let x = Maps {
                        data,
                        n: 1,
                        c: 2,
                        h,
                        w,
                    };
                    let pooled = max_pool_ceil(&x, kernel, stride);
                    assert_eq!(
                        pooled.data,
                        plain_max_pool_ceil(&x, kernel, stride),
                        "{kernel}/{stride} on {h}x{w}"
                    );
                }
            }
        }
    }

    #[test]
    fn ceil_mode_pooling_keeps_partial_windows() -> Result<()> {
        let x =
            Maps::from_tensor(&Tensor::arange(0f32, 25., &Device::Cpu)?.reshape((1, 1, 5, 5))?)?;
        let pooled = max_pool_ceil(&x, 2, 2);
        assert_eq!((pooled.h, pooled.w), (3, 3));
        assert_eq!(pooled.data, vec![6., 8., 9., 16., 18., 19., 21., 23., 24.]);
        let mut negative = x.clone();
        negative.data.iter_mut().for_each(|v| *v = -*v - 1.0);
        let pooled = max_pool_ceil(&negative, 3, 2).data;
        // Partial windows of negative numbers must not pick up the padding.
        assert!(pooled.iter().all(|&v| v > -30.0));
        Ok(())
    }
}
