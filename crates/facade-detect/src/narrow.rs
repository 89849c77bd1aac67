//! Matrix products with few columns, for scoring: a weight matrix `(out, in)` times maps
//! `(in, columns)` with at most [`MAX_COLUMNS`] columns.
//!
//! Why: in a Lite's last stages the maps are 4×4 (128 px crop) or 2×2 (64 px), so the
//! pointwise convolutions there multiply the largest weight matrices (up to 1,152 × 192 and
//! 1,280 × 320) by 4 to 32 columns: most of a network's weights, each used a few times per
//! view. Their cost is streaming those weights from memory, whatever the kernel (`perf` on a
//! full scan: gemm's narrow kernel, and a register-tiled kernel in f32 in its place, both spent
//! their time waiting on the weight loads; README, Benchmark, stop 39). So the weights are
//! kept a second time, in half precision, laid out once when the model is loaded in tiles of
//! 32 output channels ([`Tiled`]): a tile reads its weights as one contiguous stream of half
//! the bytes, converts them to f32 in registers and sums over the input channels in f32 (up to
//! 8 columns at a time, a vector of weights times a broadcast map value per step).
//!
//! Only for weights that track no gradient (training keeps candle's product and its backward
//! pass) and on CPUs with AVX-512 (elsewhere gemm's kernels are used, as before). Each output
//! is one fused multiply-add chain over the input channels in order, whatever the thread
//! split, so scores are deterministic. They differ from candle's f32 products by the weights'
//! rounding to half precision (2^-11 relative): on the 4,966 held-out images a score moved by
//! at most 0.0002 and no verdict changed.

use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use crate::lite::contiguous_f32;

/// The most columns [`Tiled::product`] takes over from candle's matrix product.
pub const MAX_COLUMNS: usize = 32;

/// Output channels per task when the channels are shared out over threads.
const ROWS_PER_TASK: usize = 2 * TILE_ROWS;

/// A pointwise weight matrix `(out, in)` kept for scoring as well in half-precision tiles: for
/// each band of [`TILE_ROWS`] output channels, its weights input channel by input channel,
/// contiguous, so that a tile reads them as one stream (the last band padded with zeros).
#[derive(Debug, Clone)]
pub struct Tiled {
    /// `(tiles, in, TILE_ROWS)`, f16.
    tiles: Tensor,
    /// Output channels (the last tile's padding aside).
    rows: usize,
}

impl Tiled {
    /// The tiles of `weight` when it tracks no gradient and the CPU can use them; `None`
    /// otherwise (the product stays candle's).
    pub fn of(weight: &Tensor) -> Result<Option<Tiled>> {
        if weight.track_op() || !has_avx512() {
            return Ok(None);
        }
        let (rows, depth) = weight.dims2()?;
        let tiles = Tensor::from_vec(
            tile(&weight.flatten_all()?.to_vec1()?, rows, depth),
            (rows.div_ceil(TILE_ROWS), depth, TILE_ROWS),
            weight.device(),
        )?;
        Ok(Some(Tiled { tiles, rows }))
    }

    /// `weight · maps` for maps `(in, columns)` of `crops` crops, `weight` being the matrix
    /// these tiles were made of: the narrow kernel for maps of at most [`MAX_COLUMNS`] columns
    /// a crop that track no gradient, candle's product otherwise. The choice is made per crop,
    /// not per batch, so that a crop's logit is the same scored alone or with others (each of
    /// the kernel's columns is its own sum).
    pub fn product(&self, weight: &Tensor, maps: &Tensor, crops: usize) -> Result<Tensor> {
        let (_, columns) = maps.dims2()?;
        if columns > MAX_COLUMNS * crops.max(1) || maps.track_op() {
            return weight.matmul(maps);
        }
        self.tiles
            .apply_op2_no_bwd(maps, &NarrowProduct { rows: self.rows })
    }
}

/// The tiles of a row-major `(rows, depth)` matrix in one pass (it runs for every network
/// when a model is loaded): for each band of [`TILE_ROWS`] rows, column by column, each
/// column's values converted to half precision together, zeros past the last row.
fn tile(values: &[f32], rows: usize, depth: usize) -> Vec<half::f16> {
    use half::slice::HalfFloatSliceExt;
    let mut tiles = vec![half::f16::ZERO; rows.div_ceil(TILE_ROWS) * depth * TILE_ROWS];
    let mut column = [0f32; TILE_ROWS];
    for (t, tile) in tiles.chunks_exact_mut(depth * TILE_ROWS).enumerate() {
        let first = t * TILE_ROWS;
        let count = TILE_ROWS.min(rows - first);
        for (k, out) in tile.chunks_exact_mut(TILE_ROWS).enumerate() {
            for (r, value) in column[..count].iter_mut().enumerate() {
                *value = values[(first + r) * depth + k];
            }
            out[..count].convert_from_f32_slice(&column[..count]);
        }
    }
    tiles
}

fn has_avx512() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// The product of [`Tiled`] weights of `rows` output channels with maps.
struct NarrowProduct {
    rows: usize,
}

impl CustomOp2 for NarrowProduct {
    fn name(&self) -> &'static str {
        "narrow-product"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (tiles, depth, tile_rows) = l1.shape().dims3()?;
        let (maps_depth, columns) = l2.shape().dims2()?;
        let rows = self.rows;
        if depth != maps_depth || tile_rows != TILE_ROWS || tiles * TILE_ROWS < rows {
            candle_core::bail!(
                "narrow-product: tiles ({tiles}, {depth}, {tile_rows}) of {rows} channels and maps ({maps_depth}, {columns})"
            );
        }
        let tiles = halves(s1, l1)?;
        let maps = contiguous_f32(s2, l2, "narrow-product")?;
        let mut out = vec![0f32; rows * columns];
        if columns > 0 {
            out.par_chunks_mut(ROWS_PER_TASK * columns)
                .enumerate()
                .try_for_each(|(task, out)| {
                    let band = Band {
                        tiles,
                        depth,
                        maps,
                        columns,
                        first_row: task * ROWS_PER_TASK,
                    };
                    band.multiply(out)
                })?;
        }
        Ok((CpuStorage::F32(out), Shape::from((rows, columns))))
    }
}

/// The tiles' half-precision weights, as their bits.
fn halves<'a>(storage: &'a CpuStorage, layout: &Layout) -> Result<&'a [u16]> {
    let Some((start, end)) = layout.contiguous_offsets() else {
        candle_core::bail!("narrow-product of non-contiguous tiles");
    };
    let CpuStorage::F16(values) = storage else {
        candle_core::bail!("narrow-product of tiles that are not f16");
    };
    let values = &values[start..end];
    Ok(half::slice::HalfFloatSliceExt::reinterpret_cast(values))
}

/// Output channels `first_row..first_row + out.len() / columns` of one product.
struct Band<'a> {
    /// `(tiles, depth, TILE_ROWS)`, half precision.
    tiles: &'a [u16],
    depth: usize,
    /// `(depth, columns)`.
    maps: &'a [f32],
    columns: usize,
    first_row: usize,
}

impl Band<'_> {
    /// Writes the band's outputs, `(band rows, columns)` row-major, into `out`.
    fn multiply(&self, out: &mut [f32]) -> Result<()> {
        let band_rows = out.len() / self.columns;
        // Tiles leave their sums column by column (a vector of channels per column); the band
        // is turned back to channels by columns at the end.
        let mut by_column = vec![0f32; self.columns * band_rows];
        #[cfg(target_arch = "x86_64")]
        if has_avx512() {
            for tile_row in (0..band_rows).step_by(TILE_ROWS) {
                let tile_rows = TILE_ROWS.min(band_rows - tile_row);
                for first_column in (0..self.columns).step_by(TILE_COLUMNS) {
                    let tile_columns = TILE_COLUMNS.min(self.columns - first_column);
                    // SAFETY: the CPU has AVX-512F (checked above), and the tile lies inside
                    // `tiles`, `maps` and `by_column` (see `avx512::tile`).
                    unsafe {
                        avx512::tile(
                            self,
                            tile_row,
                            tile_rows,
                            first_column,
                            tile_columns,
                            band_rows,
                            &mut by_column,
                        )
                    };
                }
            }
            for (r, out) in out.chunks_exact_mut(self.columns).enumerate() {
                for (c, out) in out.iter_mut().enumerate() {
                    *out = by_column[c * band_rows + r];
                }
            }
            return Ok(());
        }
        candle_core::bail!("narrow-product needs AVX-512F")
    }
}

/// Output channels per tile: two 16-float vectors.
const TILE_ROWS: usize = 32;
/// Columns per tile: 16 accumulating vectors with the two of weights, within AVX-512's 32.
const TILE_COLUMNS: usize = 8;

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::{Band, TILE_COLUMNS, TILE_ROWS};
    use std::arch::x86_64::*;

    /// One tile: channels `tile_row..tile_row + tile_rows` (at most 32) of the band, columns
    /// `first_column..first_column + tile_columns` (at most 8), each the sum over the input
    /// channels in order of weight times map value, fused multiply-adds in registers.
    ///
    /// # Safety
    /// The CPU must have AVX-512F; the band starts on a tile, `tile_row` is a multiple of
    /// [`TILE_ROWS`] and `tile_row + tile_rows` ≤ the band's rows, which lie inside the
    /// product's tiles; `first_column + tile_columns` ≤ `columns`; `by_column` holds
    /// `columns × band_rows` values.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn tile(
        band: &Band,
        tile_row: usize,
        tile_rows: usize,
        first_column: usize,
        tile_columns: usize,
        band_rows: usize,
        by_column: &mut [f32],
    ) {
        debug_assert!(tile_rows <= TILE_ROWS && tile_columns <= TILE_COLUMNS);
        // Lanes past the tile's last channel are masked out of the stores (the loads read the
        // tiles' zero padding there).
        let lanes = |from: usize| -> __mmask16 {
            let n = tile_rows.saturating_sub(from).min(16);
            ((1u32 << n) - 1) as __mmask16
        };
        let (low_mask, high_mask) = (lanes(0), lanes(16));
        // Bands start on a tile (`ROWS_PER_TASK` is a whole number of tiles).
        let tile = (band.first_row + tile_row) / TILE_ROWS;
        let mut low = [_mm512_setzero_ps(); TILE_COLUMNS];
        let mut high = [_mm512_setzero_ps(); TILE_COLUMNS];
        let weights = band.tiles.as_ptr().add(tile * band.depth * TILE_ROWS);
        let maps = band.maps.as_ptr();
        for k in 0..band.depth {
            // The tile's 32 weights of input channel k, zero past the last channel.
            let w_low = _mm512_cvtph_ps(_mm256_loadu_si256(weights.add(k * TILE_ROWS).cast()));
            let w_high =
                _mm512_cvtph_ps(_mm256_loadu_si256(weights.add(k * TILE_ROWS + 16).cast()));
            let values = maps.add(k * band.columns + first_column);
            for c in 0..TILE_COLUMNS {
                if c < tile_columns {
                    let x = _mm512_set1_ps(*values.add(c));
                    low[c] = _mm512_fmadd_ps(w_low, x, low[c]);
                    high[c] = _mm512_fmadd_ps(w_high, x, high[c]);
                }
            }
        }
        let out = by_column.as_mut_ptr();
        for c in 0..tile_columns {
            let at = (first_column + c) * band_rows + tile_row;
            _mm512_mask_storeu_ps(out.wrapping_add(at), low_mask, low[c]);
            _mm512_mask_storeu_ps(out.wrapping_add(at + 16), high_mask, high[c]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device, Var};

    fn filled(rows: usize, columns: usize, seed: u32) -> Tensor {
        let values: Vec<f32> = (0..rows * columns)
            .map(|i| {
                let x = (i as u32).wrapping_mul(2_654_435_761).wrapping_add(seed) >> 8;
                (x % 2001) as f32 / 1000.0 - 1.0
            })
            .collect();
        Tensor::from_vec(values, (rows, columns), &Device::Cpu).expect("tensor")
    }

    fn largest_difference(a: &Tensor, b: &Tensor) -> f32 {
        (a - b)
            .and_then(|d| d.abs())
            .and_then(|d| d.max_all())
            .and_then(|d| d.to_scalar())
            .expect("difference")
    }

    /// Every shape a Lite's narrow layers have, and odd ones (channels that fill no tile or
    /// vector, one column, a column count that is not a tile's), gives candle's product of the
    /// half-precision weights up to the rounding of f32 sums, and the product of the full
    /// weights within half precision's rounding of each weight (2^-11 of Σ|w·x|).
    #[test]
    fn the_narrow_product_equals_candles() {
        for (rows, depth, columns) in [
            (1152, 192, 4),
            (1280, 320, 16),
            (320, 1152, 32),
            (672, 112, 8),
            (40, 24, 1),
            (24, 144, 2),
            (1, 7, 3),
            (130, 33, 13),
            (97, 5, 31),
        ] {
            let weight = filled(rows, depth, 1);
            let maps = filled(depth, columns, 2);
            let Some(tiled) = Tiled::of(&weight).expect("tiles") else {
                eprintln!("no AVX-512 here: the product stays candle's");
                return;
            };
            let narrow = tiled.product(&weight, &maps, 1).expect("narrow");
            let halved = weight
                .to_dtype(DType::F16)
                .unwrap()
                .to_dtype(DType::F32)
                .unwrap();
            let candle = halved.matmul(&maps).expect("gemm");
            assert_eq!(narrow.dims(), candle.dims());
            let scale = candle
                .abs()
                .unwrap()
                .max_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap();
            let difference = largest_difference(&narrow, &candle);
            assert!(
                difference <= 1e-6 * depth as f32 * (1.0 + scale),
                "({rows}, {depth}, {columns}): {difference} apart (largest value {scale})"
            );
            let full = weight.matmul(&maps).expect("gemm");
            let magnitude = weight.abs().unwrap().matmul(&maps.abs().unwrap()).unwrap();
            let excess = ((narrow - full).unwrap().abs().unwrap()
                - (magnitude * 2f64.powi(-11)).unwrap())
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
            assert!(
                excess <= 1e-6 * depth as f32 * (1.0 + scale),
                "({rows}, {depth}, {columns}): {excess} past half precision's bound"
            );
        }
    }

    /// The same product twice gives the same bits (the thread split does not enter the sums);
    /// weights that track a gradient keep candle's product, and so do maps with too many
    /// columns a crop; a crop's columns in a batch get the bits they get alone.
    #[test]
    fn the_narrow_product_is_deterministic_and_leaves_training_alone() {
        let weight = filled(1152, 192, 3);
        let maps = filled(192, 4, 4);
        let trained = Var::from_tensor(&weight).expect("var");
        assert!(Tiled::of(trained.as_tensor()).expect("var").is_none());
        let Some(tiled) = Tiled::of(&weight).expect("transpose") else {
            eprintln!("no AVX-512 here: the product stays candle's");
            return;
        };
        let bits = |t: Tensor| -> Vec<u32> {
            let values: Vec<f32> = t.flatten_all().unwrap().to_vec1().unwrap();
            values.into_iter().map(f32::to_bits).collect()
        };
        let once = bits(tiled.product(&weight, &maps, 1).expect("once"));
        let twice = bits(tiled.product(&weight, &maps, 1).expect("twice"));
        assert_eq!(once, twice);
        let wide = filled(192, MAX_COLUMNS + 1, 5);
        let candle = weight.matmul(&wide).expect("gemm");
        let product = tiled.product(&weight, &wide, 1).expect("wide");
        assert_eq!(
            largest_difference(&product, &candle),
            0.0,
            "more than {MAX_COLUMNS} columns go to candle"
        );
        // A batch of crops whose maps are narrow stays narrow, and each crop's columns are
        // the bits it gets alone.
        let crops = 3;
        let batch = filled(192, crops * 16, 6);
        let together = tiled.product(&weight, &batch, crops).expect("batch");
        for crop in 0..crops {
            let alone = batch
                .narrow(1, crop * 16, 16)
                .unwrap()
                .contiguous()
                .unwrap();
            assert_eq!(
                bits(together.narrow(1, crop * 16, 16).unwrap()),
                bits(tiled.product(&weight, &alone, 1).expect("alone")),
                "crop {crop}"
            );
        }
    }
}
