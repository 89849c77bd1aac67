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
//!
//! A model may hold several such networks trained from different seeds, a
//! [`ClassifierEnsemble`]; its logit is their mean. One network's answer on a face moves with
//! the seed it was trained from (the README measures how much), and the mean of independent
//! runs moves less. The second and later members are stored as `classifier1.…`,
//! `classifier2.…`, so a one-network model reads the same as before ensembles existed.

use candle_core::{CpuStorage, CustomOp1, Device, Layout, Module, Result, Shape, Tensor, D};
use candle_nn::{conv2d, linear, Conv2d, Conv2dConfig, Linear, VarBuilder};

use crate::align::{CROP_SIDE, CROP_SIDES};
use crate::lite::{InputFilter, Variant};

/// Channels of the input and the four convolutions at width 1.
pub const CHANNELS: [usize; 5] = [3, 16, 32, 64, 64];

/// Widest network a model may ask for (width 4: about 1.2 million weights, 16× the
/// multiply-adds of width 1).
pub const MAX_WIDTH: usize = 4;

/// The channels at `width` (every convolution `width` times as wide as at width 1).
pub fn channels(width: usize) -> [usize; 5] {
    let w = width.clamp(1, MAX_WIDTH);
    [
        CHANNELS[0],
        CHANNELS[1] * w,
        CHANNELS[2] * w,
        CHANNELS[3] * w,
        CHANNELS[4] * w,
    ]
}

/// The classifier network.
#[derive(Debug, Clone)]
pub struct FaceClassifier {
    convs: Vec<Conv2d>,
    head: Linear,
}

impl FaceClassifier {
    /// The network at `width` (1: the 75-thousand-weight network; see [`channels`]).
    pub fn new(vb: VarBuilder, width: usize) -> Result<FaceClassifier> {
        let config = Conv2dConfig {
            padding: 1,
            ..Default::default()
        };
        let channels = channels(width);
        let convs = (0..4)
            .map(|i| {
                conv2d(
                    channels[i],
                    channels[i + 1],
                    3,
                    config,
                    vb.pp(format!("conv{i}")),
                )
            })
            .collect::<Result<Vec<_>>>()?;
        let head = linear(channels[4], 1, vb.pp("head"))?;
        Ok(FaceClassifier { convs, head })
    }

    /// Logits (positive = generated) for a batch `(n, 3, 64, 64)` made by [`crops_to_tensor`].
    ///
    /// Between layers the maps are channel-major, `(C, N, H, W)`, so that each convolution is
    /// a single matrix product `weight (C_out, C_in·9) × columns (C_in·9, N·H·W)` over
    /// [`Columns3x3`], whose backward pass is written out, and the bias gradient is a sum
    /// along contiguous rows. Candle's own conv2d took about 8 ms per face forward and
    /// backward on this CPU, which is what limited the network's size.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut h = x.transpose(0, 1)?.contiguous()?;
        for (i, conv) in self.convs.iter().enumerate() {
            let (_, n, height, width) = h.dims4()?;
            let c_out = conv.weight().dim(0)?;
            h = column_conv(conv.weight(), conv.bias(), &h)?
                .relu()?
                .reshape((c_out, n, height, width))?;
            if i < 3 {
                h = h.apply_op1(MaxPool2x2)?;
            }
        }
        let pooled = h.mean(D::Minus1)?.mean(D::Minus1)?.t()?;
        self.head.forward(&pooled)?.squeeze(1)
    }

    /// The logit of each crop as scanning and calibration use it: the mean over the crop and
    /// its mirror image. Training shows both (mirroring is an augmentation), so the mean is
    /// the network's answer for the face rather than for one of its two orientations.
    pub fn logits(&self, crops: &[&[u8]]) -> Result<Vec<f32>> {
        Network::Small(self.clone()).logits(crops)
    }
}

/// Which network a classifier is: the small network above (trained from scratch) or an
/// EfficientNet-Lite ([`crate::lite`], fine-tuned from ImageNet weights).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Architecture {
    Small {
        width: usize,
    },
    Lite {
        variant: Variant,
        input_side: usize,
        filter: InputFilter,
    },
}

impl Architecture {
    /// The record's words for it: `("small", width)` or (`"lite0"`, `"lite1"` or `"lite2"`,
    /// input side).
    pub fn describe(&self) -> (&'static str, usize) {
        match *self {
            Architecture::Small { width } => ("small", width),
            Architecture::Lite {
                variant,
                input_side,
                ..
            } => (variant.name(), input_side),
        }
    }

    /// Whether this network can be trained on and read crops of `side` pixels. The weights fit
    /// any crop size (the networks pool globally), so this is the one place that says which
    /// sides are meant: 64 for the small network, any of [`CROP_SIDES`] for a Lite (resized to
    /// its input side).
    pub fn reads_crop_side(&self, side: usize) -> bool {
        match self {
            Architecture::Small { .. } => side == CROP_SIDE,
            Architecture::Lite { .. } => CROP_SIDES.contains(&side),
        }
    }

    /// What [`Architecture::reads_crop_side`] allows, in words for an error message.
    pub fn crop_sides_read(&self) -> String {
        match self {
            Architecture::Small { .. } => format!("{CROP_SIDE} px"),
            Architecture::Lite { .. } => {
                format!("{}-{} px", CROP_SIDES.start(), CROP_SIDES.end())
            }
        }
    }
}

/// One classifier network of either [`Architecture`].
#[derive(Debug, Clone)]
pub enum Network {
    Small(FaceClassifier),
    Lite(crate::lite::Lite),
}

impl Network {
    pub fn new(vb: VarBuilder, architecture: Architecture) -> Result<Network> {
        Ok(match architecture {
            Architecture::Small { width } => Network::Small(FaceClassifier::new(vb, width)?),
            Architecture::Lite {
                variant,
                input_side,
                filter,
            } => Network::Lite(
                crate::lite::Lite::new(vb, variant, input_side)?.with_input_filter(filter),
            ),
        })
    }

    /// The batch this network reads for aligned crops, `mirror[i]` flipping crop `i`.
    pub fn input(&self, crops: &[&[u8]], mirror: &[bool], device: &Device) -> Result<Tensor> {
        match self {
            Network::Small(_) => crops_to_tensor(crops, mirror, device),
            Network::Lite(net) => net.input(crops, mirror, device),
        }
    }

    /// Logits (positive = generated) of a batch made by [`Network::input`].
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match self {
            Network::Small(net) => net.forward(x),
            Network::Lite(net) => net.forward(x),
        }
    }

    /// Training logits: a Lite under `regularisation` (noise from `rng`); the small network
    /// has none (training refuses a rate for it).
    pub fn forward_training(
        &self,
        x: &Tensor,
        regularisation: crate::lite::Regularisation,
        rng: &mut impl rand::Rng,
    ) -> Result<Tensor> {
        match self {
            Network::Small(net) => net.forward(x),
            Network::Lite(net) => net.forward_regularised(x, regularisation, rng),
        }
    }

    /// The logit of each crop as scanning uses it: the mean over the crop and its mirror.
    pub fn logits(&self, crops: &[&[u8]]) -> Result<Vec<f32>> {
        let views = both_views(std::slice::from_ref(self), crops)?;
        Ok(mean_of_views(&views, crops.len()))
    }
}

/// Most classifiers a model may average: each one costs a forward pass per scanned face.
pub const MAX_MEMBERS: usize = 8;

/// Where member `index` of an ensemble keeps its weights: `classifier`, `classifier1`, ...
pub fn member_prefix(index: usize) -> String {
    match index {
        0 => "classifier".to_owned(),
        i => format!("classifier{i}"),
    }
}

/// Classifiers trained from different seeds, answering as one: the mean of their logits.
#[derive(Debug, Clone)]
pub struct ClassifierEnsemble {
    members: Vec<Network>,
}

impl ClassifierEnsemble {
    pub fn new(members: Vec<Network>) -> ClassifierEnsemble {
        ClassifierEnsemble { members }
    }

    /// Loads `count` members of `architecture` stored under [`member_prefix`] names.
    pub fn load(
        vb: &VarBuilder,
        count: usize,
        architecture: Architecture,
    ) -> Result<ClassifierEnsemble> {
        let members = (0..count)
            .map(|i| Network::new(vb.pp(member_prefix(i)), architecture))
            .collect::<Result<Vec<_>>>()?;
        Ok(ClassifierEnsemble { members })
    }

    pub fn members(&self) -> &[Network] {
        &self.members
    }

    /// The ensemble's logit of each crop: every member on the crop and its mirror, averaged.
    pub fn logits(&self, crops: &[&[u8]]) -> Result<Vec<f32>> {
        Ok(mean_of_views(
            &both_views(&self.members, crops)?,
            crops.len(),
        ))
    }

    /// Each member's own logits (as [`FaceClassifier::logits`]), the ensemble's (as
    /// [`ClassifierEnsemble::logits`]) and the ensemble's on the crops alone, without their
    /// mirror images (as [`ViewSums::one_view`]), from one forward pass of each member.
    pub fn member_and_mean_logits(&self, crops: &[&[u8]]) -> Result<CropLogits> {
        let views = both_views(&self.members, crops)?;
        let each = views
            .iter()
            .map(|v| mean_of_views(std::slice::from_ref(v), crops.len()))
            .collect();
        let crop_alone = ViewSums {
            sums: sum_over_networks(&views, crops.len()),
            networks: self.members.len(),
        };
        Ok(CropLogits {
            each,
            mean: mean_of_views(&views, crops.len()),
            crop_alone: crop_alone.one_view(),
        })
    }

    /// The members' summed logits on one view of each crop (`mirrored`: its mirror image), for
    /// scanning that reads the mirror only where it could change a decision
    /// ([`crate::cascade`]). At most [`CROPS_PER_PASS`] crops go through a forward pass, so
    /// that a batch of many faces holds no more activations than one of a few.
    pub fn view_sums(&self, crops: &[&[u8]], mirrored: bool) -> Result<ViewSums> {
        let mut sums = Vec::with_capacity(crops.len());
        for chunk in crops.chunks(CROPS_PER_PASS) {
            let outputs = outputs(&self.members, chunk, &vec![mirrored; chunk.len()])?;
            sums.extend(sum_over_networks(&outputs, chunk.len()));
        }
        Ok(ViewSums {
            sums,
            networks: self.members.len(),
        })
    }
}

/// The most face crops one forward pass reads when scanning, so that an image of many faces
/// (`--max-faces` up to 1,000) holds the activations of a few crops, not of all of them. Four:
/// a pass of several crops reads each layer's weights once for all of them, which makes the
/// 64 px network's crops a quarter cheaper in fours than one by one, while past four the
/// 128 px network's maps outgrow the caches and its crops cost a quarter more
/// (`examples/batch_timing.rs`, the fastest of six rounds: 6.4–6.5 ms a crop one, two or four
/// at a time, 8.0 eight at a time; 2.2, 1.9 and 1.7 ms for the 64 px network).
pub const CROPS_PER_PASS: usize = 4;

/// What [`ClassifierEnsemble::member_and_mean_logits`] returns.
pub struct CropLogits {
    /// Each member's mean over the crop and its mirror.
    pub each: Vec<Vec<f32>>,
    /// The ensemble's mean over the crop and its mirror: the logit scanning reads.
    pub mean: Vec<f32>,
    /// The ensemble's mean over the crops alone.
    pub crop_alone: Vec<f32>,
}

/// The ensemble's logits on one view of each crop, summed over its members.
#[derive(Debug, Clone)]
pub struct ViewSums {
    pub sums: Vec<f32>,
    networks: usize,
}

impl ViewSums {
    /// The ensemble's logit from this view alone.
    pub fn one_view(&self) -> Vec<f32> {
        let votes = self.networks.max(1) as f32;
        self.sums.iter().map(|s| s / votes).collect()
    }

    /// The ensemble's logit of crop `i` over both views, `mirror` being the mirror view's sum:
    /// the same floats as [`ClassifierEnsemble::logits`] (the views' sums added, then divided).
    pub fn both_views(&self, i: usize, mirror: f32) -> f32 {
        (self.sums[i] + mirror) / (2 * self.networks).max(1) as f32
    }
}

/// Each network's outputs on the crops and then on their mirror images (`2 × crops` values per
/// network); the batch tensor is built once and shared by the networks (an ensemble's members
/// share one architecture, so one input).
fn both_views(networks: &[Network], crops: &[&[u8]]) -> Result<Vec<Vec<f32>>> {
    let mut twice = crops.to_vec();
    twice.extend_from_slice(crops);
    let mirror: Vec<bool> = (0..twice.len()).map(|i| i >= crops.len()).collect();
    outputs(networks, &twice, &mirror)
}

/// Each network's outputs on the crops, `mirror[i]` flipping crop `i`; the batch tensor is
/// built once and shared by the networks.
fn outputs(networks: &[Network], crops: &[&[u8]], mirror: &[bool]) -> Result<Vec<Vec<f32>>> {
    let Some(first) = networks.first() else {
        return Ok(Vec::new());
    };
    let x = first.input(crops, mirror, &Device::Cpu)?;
    networks
        .iter()
        .map(|network| network.forward(&x)?.to_vec1())
        .collect()
}

/// The networks' first `len` outputs summed, output by output.
fn sum_over_networks(outputs: &[Vec<f32>], len: usize) -> Vec<f32> {
    let mut sum = vec![0.0f32; len];
    for network in outputs {
        for (total, logit) in sum.iter_mut().zip(network) {
            *total += logit;
        }
    }
    sum
}

/// The mean of [`both_views`] outputs over the networks and over each crop and its mirror.
fn mean_of_views(views: &[Vec<f32>], crops: usize) -> Vec<f32> {
    let sum = sum_over_networks(views, 2 * crops);
    let votes = (2 * views.len()).max(1) as f32;
    let (plain, mirrored) = sum.split_at(crops);
    plain
        .iter()
        .zip(mirrored)
        .map(|(a, b)| (a + b) / votes)
        .collect()
}

/// One zero-padded 3×3 convolution of contiguous channel-major maps `(C_in, N, H, W)`, as one
/// matrix product over [`Columns3x3`]: the pre-activations as a matrix `(C_out, N·H·W)`.
/// Left flat on purpose: the classifier applies ReLU before reshaping to `(C_out, N, H, W)`,
/// which made its training step about a quarter faster than reshaping first (measured with
/// the step bench).
fn column_conv(weight: &Tensor, bias: Option<&Tensor>, maps: &Tensor) -> Result<Tensor> {
    let (c_out, c_in, _, _) = weight.dims4()?;
    let columns = maps.apply_op1(Columns3x3)?;
    let z = weight.reshape((c_out, c_in * 9))?.matmul(&columns)?;
    match bias {
        Some(bias) => z.broadcast_add(&bias.reshape((c_out, 1))?),
        None => Ok(z),
    }
}

/// Calls `copy(src, dst, len)` for every contiguous run of the zero-padded 3×3 column matrix
/// `(C·9, N·H·W)` of channel-major maps `(C, N, H, W)`: the matrix's values `dst..dst + len`
/// are the maps' values `src..src + len`. Positions no call covers lie in the padding.
fn visit_columns(
    c: usize,
    n: usize,
    h: usize,
    w: usize,
    mut copy: impl FnMut(usize, usize, usize),
) {
    let plane = h * w;
    for ch in 0..c {
        for ky in 0..3 {
            for kx in 0..3 {
                let row = (ch * 9 + ky * 3 + kx) * n * plane;
                // Output x reads input x + kx − 1; output y reads input y + ky − 1.
                let (x0, x1) = (1usize.saturating_sub(kx), (w + 1 - kx).min(w));
                for b in 0..n {
                    let src_plane = (ch * n + b) * plane;
                    for oy in 0..h {
                        let Some(iy) = (oy + ky).checked_sub(1).filter(|&iy| iy < h) else {
                            continue;
                        };
                        let src = src_plane + iy * w + x0 + kx - 1;
                        copy(src, row + b * plane + oy * w + x0, x1 - x0);
                    }
                }
            }
        }
    }
}

/// The column matrix `(C·9, N·H·W)` of channel-major maps `(C, N, H, W)`.
fn columns_3x3(maps: &[f32], c: usize, n: usize, h: usize, w: usize) -> Vec<f32> {
    let mut columns = vec![0.0f32; c * 9 * n * h * w];
    visit_columns(c, n, h, w, |src, dst, len| {
        columns[dst..][..len].copy_from_slice(&maps[src..][..len]);
    });
    columns
}

/// [`columns_3x3`] as a differentiable candle op on a contiguous `(C, N, H, W)` tensor; its
/// gradient adds each column entry back where it was copied from.
struct Columns3x3;

impl CustomOp1 for Columns3x3 {
    fn name(&self) -> &'static str {
        "columns-3x3"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let (c, n, h, w) = layout.shape().dims4()?;
        let Some((start, end)) = layout.contiguous_offsets() else {
            candle_core::bail!("columns of a non-contiguous tensor");
        };
        let CpuStorage::F32(values) = storage else {
            candle_core::bail!("columns of a non-f32 tensor");
        };
        let columns = columns_3x3(&values[start..end], c, n, h, w);
        Ok((CpuStorage::F32(columns), Shape::from((c * 9, n * h * w))))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad_res: &Tensor) -> Result<Option<Tensor>> {
        let (c, n, h, w) = arg.dims4()?;
        let grad: Vec<f32> = grad_res.flatten_all()?.to_vec1()?;
        let mut input = vec![0.0f32; c * n * h * w];
        visit_columns(c, n, h, w, |src, dst, len| {
            for (g, v) in input[src..][..len].iter_mut().zip(&grad[dst..][..len]) {
                *g += v;
            }
        });
        Ok(Some(Tensor::from_vec(input, (c, n, h, w), arg.device())?))
    }
}

/// For each 2×2 window (stride 2) of contiguous `(C, N, H, W)` maps, the offset of its
/// maximum, the first in reading order when several are equal; a trailing odd row or column
/// is dropped, as candle's `max_pool2d` drops it.
fn window_maxima(maps: &[f32], planes: usize, h: usize, w: usize) -> Vec<usize> {
    let (oh, ow) = (h / 2, w / 2);
    let mut at = Vec::with_capacity(planes * oh * ow);
    for plane in 0..planes {
        let base = plane * h * w;
        for oy in 0..oh {
            for ox in 0..ow {
                let top = base + 2 * oy * w + 2 * ox;
                let mut best = top;
                for candidate in [top + 1, top + w, top + w + 1] {
                    if maps[candidate] > maps[best] {
                        best = candidate;
                    }
                }
                at.push(best);
            }
        }
    }
    at
}

/// The maximum of each 2×2 window (stride 2), plane by plane: the same values as
/// [`window_maxima`] picks, found without keeping where they were (the scan's forward pass
/// needs only the values, and this runs over rows the compiler vectorises).
fn window_max_values(maps: &[f32], planes: usize, h: usize, w: usize) -> Vec<f32> {
    let (oh, ow) = (h / 2, w / 2);
    let mut pooled = Vec::with_capacity(planes * oh * ow);
    for plane in maps.chunks_exact(h * w).take(planes) {
        for rows in plane.chunks_exact(2 * w).take(oh) {
            let (top, bottom) = rows.split_at(w);
            let pairs = top.chunks_exact(2).zip(bottom.chunks_exact(2)).take(ow);
            pooled.extend(pairs.map(|(t, b)| t[0].max(t[1]).max(b[0].max(b[1]))));
        }
    }
    pooled
}

/// 2×2 max-pooling (stride 2) whose gradient goes to one element of each window, the first
/// maximum. Candle's `max_pool2d` gives the gradient to every element equal to the maximum,
/// so a window with two equal values passed its gradient on twice: a rare event (two
/// activations rounding to the same f32) that made training's gradient wrong there and made a
/// float-level comparison of two paths to the same network fail about once in a hundred runs.
/// The forward pass computes values only; the backward pass finds the maxima again from the
/// input (a scan runs the forward pass for every face, training the backward pass once per
/// forward: keeping positions cost the scan 8% of its time).
#[derive(Default)]
struct MaxPool2x2;

impl CustomOp1 for MaxPool2x2 {
    fn name(&self) -> &'static str {
        "max-pool-2x2"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let (c, n, h, w) = layout.shape().dims4()?;
        let Some((start, end)) = layout.contiguous_offsets() else {
            candle_core::bail!("max-pooling a non-contiguous tensor");
        };
        let CpuStorage::F32(values) = storage else {
            candle_core::bail!("max-pooling a non-f32 tensor");
        };
        let pooled = window_max_values(&values[start..end], c * n, h, w);
        Ok((CpuStorage::F32(pooled), Shape::from((c, n, h / 2, w / 2))))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad_res: &Tensor) -> Result<Option<Tensor>> {
        let (c, n, h, w) = arg.dims4()?;
        let maps: Vec<f32> = arg.flatten_all()?.to_vec1()?;
        let maxima = window_maxima(&maps, c * n, h, w);
        let grad: Vec<f32> = grad_res.flatten_all()?.to_vec1()?;
        let mut input = vec![0.0f32; c * n * h * w];
        for (&at, g) in maxima.iter().zip(grad) {
            input[at] += g;
        }
        Ok(Some(Tensor::from_vec(input, (c, n, h, w), arg.device())?))
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
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// A network with weights from a seeded generator (He-uniform, small biases), so that every
    /// run of a test sees the same network.
    fn fresh_network() -> (VarMap, FaceClassifier) {
        let map = VarMap::new();
        let vb = VarBuilder::from_varmap(&map, DType::F32, &Device::Cpu);
        let net = FaceClassifier::new(vb.pp("classifier"), 1).expect("build");
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let mut vars: Vec<(String, candle_core::Var)> = map
            .data()
            .lock()
            .map(|d| d.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default();
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        for (name, var) in vars {
            let dims = var.dims().to_vec();
            let count: usize = dims.iter().product();
            let bound = if name.ends_with("bias") {
                0.05
            } else {
                (6.0 / (count / dims[0]) as f32).sqrt()
            };
            let values = seeded_values(&mut rng, count, bound);
            var.set(&Tensor::from_vec(values, dims, &Device::Cpu).expect("values"))
                .expect("set");
        }
        (map, net)
    }

    fn seeded_values(rng: &mut ChaCha8Rng, count: usize, bound: f32) -> Vec<f32> {
        (0..count)
            .map(|_| rng.random_range(-bound..bound))
            .collect()
    }

    /// A deterministic crop with texture: value `i · step mod modulus` at byte `i`.
    fn patterned_crop(step: usize, modulus: usize) -> Vec<u8> {
        (0..3 * CROP_SIDE * CROP_SIDE)
            .map(|i| (i * step % modulus) as u8)
            .collect()
    }

    #[test]
    fn pooled_values_are_the_values_at_the_maxima() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        // Few distinct values, so that windows hold ties.
        let maps: Vec<f32> = (0..3 * 8 * 6)
            .map(|_| f32::from(rng.random_range(0u8..4)) - 1.5)
            .collect();
        let at = window_maxima(&maps, 3, 8, 6);
        let gathered: Vec<f32> = at.iter().map(|&i| maps[i]).collect();
        assert_eq!(window_max_values(&maps, 3, 8, 6), gathered);
        assert_eq!(gathered.len(), 3 * 4 * 3);
    }

    #[test]
    fn forward_gives_one_logit_per_crop() {
        let (map, net) = fresh_network();
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
    fn a_wider_network_has_wider_convolutions_and_the_same_output() {
        let map = VarMap::new();
        let vb = VarBuilder::from_varmap(&map, DType::F32, &Device::Cpu);
        let net = FaceClassifier::new(vb.pp("classifier"), 2).expect("build");
        let crop = patterned_crop(7, 251);
        let x = crops_to_tensor(&[&crop], &[false], &Device::Cpu).expect("batch");
        assert_eq!(net.forward(&x).expect("forward").dims(), &[1]);
        let data = map.data().lock().expect("lock");
        let conv0 = data["classifier.conv0.weight"].dims().to_vec();
        assert_eq!(conv0, vec![32, 3, 3, 3]);
        let head = data["classifier.head.weight"].dims().to_vec();
        assert_eq!(head, vec![1, 128]);
        assert_eq!(channels(9), channels(MAX_WIDTH), "width is capped");
    }

    #[test]
    fn an_ensemble_answers_the_mean_of_its_members_and_loads_them_by_name() {
        let map = VarMap::new();
        let vb = VarBuilder::from_varmap(&map, DType::F32, &Device::Cpu);
        let ensemble =
            ClassifierEnsemble::load(&vb, 2, Architecture::Small { width: 1 }).expect("build");
        let crops = [patterned_crop(7, 251), patterned_crop(13, 199)];
        let crops: Vec<&[u8]> = crops.iter().map(Vec::as_slice).collect();
        let each: Vec<Vec<f32>> = ensemble
            .members()
            .iter()
            .map(|m| m.logits(&crops).expect("logits"))
            .collect();
        assert_ne!(each[0], each[1], "members must be distinct networks");
        let mean = ensemble.logits(&crops).expect("logits");
        for (i, m) in mean.iter().enumerate() {
            let expected = 0.5 * (each[0][i] + each[1][i]);
            assert!((m - expected).abs() < 1e-5, "{m} vs {expected}");
        }
        let names: Vec<String> = map
            .data()
            .lock()
            .map(|d| d.keys().cloned().collect())
            .unwrap_or_default();
        for name in ["classifier.head.weight", "classifier1.head.weight"] {
            assert!(names.iter().any(|n| n == name), "{name} in {names:?}");
        }
    }

    #[test]
    fn a_face_and_its_mirror_image_get_the_same_logit() {
        let (_map, net) = fresh_network();
        let side = CROP_SIDE;
        let crop = patterned_crop(7, 251);
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
    fn columns_path_matches_candle_conv2d() {
        let (_map, net) = fresh_network();
        let (a, b) = (patterned_crop(7, 251), patterned_crop(13, 241));
        let x = crops_to_tensor(&[&a, &b], &[false, true], &Device::Cpu).expect("batch");
        let reference = candle_conv2d_logits(&net, &x)
            .and_then(|t| t.to_vec1::<f32>())
            .expect("candle conv2d");
        let path: Vec<f32> = net.forward(&x).and_then(|t| t.to_vec1()).expect("forward");
        assert_eq!(reference.len(), path.len());
        for (r, f) in reference.iter().zip(&path) {
            assert!(
                (r - f).abs() < 1e-4 * (1.0 + r.abs()),
                "{reference:?} {path:?}"
            );
        }
    }

    /// The network computed with candle's own conv2d: the reference for the column path.
    fn candle_conv2d_logits(net: &FaceClassifier, x: &Tensor) -> Result<Tensor> {
        let mut h = x.clone();
        for (i, conv) in net.convs.iter().enumerate() {
            h = conv.forward(&h)?.relu()?;
            if i < 3 {
                let pooled = h.transpose(0, 1)?.contiguous()?.apply_op1(MaxPool2x2)?;
                h = pooled.transpose(0, 1)?;
            }
        }
        net.head
            .forward(&h.mean(D::Minus1)?.mean(D::Minus1)?)?
            .squeeze(1)
    }

    /// The gradients of one convolution by the column path equal those of candle's conv2d, for
    /// the input, the weights and the bias, at the sizes of every layer of a width-2 network.
    /// The loss is linear in the convolution's output, so the gradients are defined everywhere
    /// and two correct paths can differ only by summation order.
    #[test]
    fn column_gradients_match_candle_conv2d_gradients() {
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        let channels = channels(2);
        for (layer, side) in [64usize, 32, 16, 8].into_iter().enumerate() {
            let (c_in, c_out, n) = (channels[layer], channels[layer + 1], 3);
            let fan_in = (c_in * 9) as f32;
            let tensor = |rng: &mut ChaCha8Rng, dims: &[usize], bound: f32| {
                let count = dims.iter().product();
                candle_core::Var::from_vec(seeded_values(rng, count, bound), dims, &Device::Cpu)
                    .expect("var")
            };
            let x = tensor(&mut rng, &[n, c_in, side, side], 1.0);
            let weight = tensor(&mut rng, &[c_out, c_in, 3, 3], (6.0 / fan_in).sqrt());
            let bias = tensor(&mut rng, &[c_out], 0.1);
            let probe = tensor(&mut rng, &[n, c_out, side, side], 1.0);

            let conv = Conv2d::new(
                weight.as_tensor().clone(),
                Some(bias.as_tensor().clone()),
                Conv2dConfig {
                    padding: 1,
                    ..Default::default()
                },
            );
            let theirs = (conv.forward(x.as_tensor()).expect("conv") * probe.as_tensor())
                .and_then(|t| t.sum_all())
                .and_then(|t| t.backward())
                .expect("reference gradients");

            let channel_major = x.as_tensor().transpose(0, 1).and_then(|t| t.contiguous());
            let ours = channel_major
                .and_then(|h| column_conv(weight.as_tensor(), Some(bias.as_tensor()), &h))
                .and_then(|z| z.reshape((c_out, n, side, side))?.transpose(0, 1))
                .and_then(|z| (z * probe.as_tensor())?.sum_all())
                .and_then(|loss| loss.backward())
                .expect("column gradients");

            for (what, var) in [("input", &x), ("weight", &weight), ("bias", &bias)] {
                let values = |store: &candle_core::backprop::GradStore| -> Vec<f32> {
                    store
                        .get(var.as_tensor())
                        .and_then(|t| t.flatten_all().ok())
                        .and_then(|t| t.to_vec1().ok())
                        .unwrap_or_default()
                };
                let (mine, reference) = (values(&ours), values(&theirs));
                assert!(!reference.is_empty() && mine.len() == reference.len());
                let scale = reference.iter().fold(0f32, |m, v| m.max(v.abs()));
                for (m, t) in mine.iter().zip(&reference) {
                    assert!(
                        (m - t).abs() <= 1e-5 * scale,
                        "layer {layer} {what}: {m} vs {t}"
                    );
                }
            }
        }
    }

    /// The whole network's gradients by the column path equal those of the same network built
    /// from candle's conv2d. Max-pooling and ReLU make the gradient jump where two values of a
    /// window are equal or an activation is zero, so two paths that round differently can only
    /// be compared away from those points: the seeded network and crop are fixed, and the test
    /// checks they stay clear of them rather than hoping a random draw does.
    #[test]
    fn network_gradients_match_candle_conv2d_gradients() {
        let (map, net) = fresh_network();
        let a = patterned_crop(7, 251);
        let x = crops_to_tensor(&[&a, &a], &[false, true], &Device::Cpu).expect("batch");
        assert!(
            branches(&net, &x, true).ok() == branches(&net, &x, false).ok(),
            "the two paths round differently at a tie or a zero: pick another seed"
        );
        let grads = |logits: Tensor| logits.sqr()?.sum_all()?.backward();
        let ours = grads(net.forward(&x).expect("forward")).expect("backward");
        let reference = candle_conv2d_logits(&net, &x)
            .and_then(grads)
            .expect("reference");
        let values = |store: &candle_core::backprop::GradStore, var: &Tensor| -> Vec<f32> {
            store
                .get(var)
                .and_then(|t| t.flatten_all().ok())
                .and_then(|t| t.to_vec1().ok())
                .unwrap_or_default()
        };
        for var in map.all_vars() {
            let mine = values(&ours, var.as_tensor());
            let theirs = values(&reference, var.as_tensor());
            assert!(!theirs.is_empty() && mine.len() == theirs.len());
            let scale = theirs.iter().fold(0f32, |m, v| m.max(v.abs())) + 1e-6;
            for (m, t) in mine.iter().zip(&theirs) {
                assert!((m - t).abs() < 1e-3 * scale, "{m} vs {t}");
            }
        }
    }

    /// Where the network's evaluation on `x` goes at each point where its gradient jumps:
    /// every pre-activation's sign (ReLU) and every pooling window's maximum, computed with the
    /// column path or with candle's conv2d.
    fn branches(
        net: &FaceClassifier,
        x: &Tensor,
        columns: bool,
    ) -> Result<(Vec<bool>, Vec<usize>)> {
        let (mut signs, mut maxima) = (Vec::new(), Vec::new());
        let mut h = x.clone();
        for (i, conv) in net.convs.iter().enumerate() {
            let z = if columns {
                let (n, _, side, _) = h.dims4()?;
                let channel_major = h.transpose(0, 1)?.contiguous()?;
                column_conv(conv.weight(), conv.bias(), &channel_major)?
                    .reshape((conv.weight().dim(0)?, n, side, side))?
                    .transpose(0, 1)?
            } else {
                conv.forward(&h)?
            };
            signs.extend(z.flatten_all()?.to_vec1::<f32>()?.iter().map(|v| *v > 0.0));
            h = z.relu()?;
            if i < 3 {
                let (n, c, side, _) = h.dims4()?;
                let maps: Vec<f32> = h.transpose(0, 1)?.flatten_all()?.to_vec1()?;
                maxima.extend(window_maxima(&maps, n * c, side, side));
                h = h.max_pool2d(2)?;
            }
        }
        Ok((signs, maxima))
    }

    /// Pooling keeps each window's maximum; its gradient goes to that one element, to the first
    /// of equal maxima, never to two.
    #[test]
    fn max_pooling_passes_each_gradient_to_one_element() {
        let maps = Tensor::from_vec(
            vec![1.0f32, 3.0, 5.0, 5.0, 2.0, 0.0, 5.0, 5.0],
            (1, 1, 2, 4),
            &Device::Cpu,
        )
        .expect("maps");
        let var = candle_core::Var::from_tensor(&maps).expect("var");
        let pooled = var.as_tensor().apply_op1(MaxPool2x2).expect("pool");
        assert_eq!(
            pooled.flatten_all().and_then(|t| t.to_vec1::<f32>()).ok(),
            Some(vec![3.0, 5.0])
        );
        let grads = (pooled * 2.0)
            .and_then(|t| t.sum_all())
            .and_then(|t| t.backward())
            .expect("backward");
        let grad: Vec<f32> = grads
            .get(var.as_tensor())
            .and_then(|t| t.flatten_all().ok())
            .and_then(|t| t.to_vec1().ok())
            .unwrap_or_default();
        assert_eq!(grad, vec![0.0, 2.0, 2.0, 0.0, 0.0, 0.0, 0.0, 0.0]);
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
