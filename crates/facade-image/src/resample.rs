//! Planar float images and the "area" resampling filter.
//!
//! The MTCNN weights were trained and published with inputs made by PyTorch's
//! `interpolate(mode="area")`, which is `adaptive_avg_pool2d`: output pixel `i` of `n` averages
//! input pixels `floor(i·m/n) .. ceil((i+1)·m/n)`. We reproduce exactly that, because
//! preprocessing that silently differs from training is the classic way detectors degrade.
//! The filter is separable (every output pixel averages a rectangle with equal weights), so it
//! runs as a vertical then a horizontal pass.

use image::RgbImage;

/// A three-channel image stored plane by plane (`[c][y][x]`), as the networks consume it.
#[derive(Debug, Clone, PartialEq)]
pub struct Planes {
    pub width: usize,
    pub height: usize,
    /// `3 * width * height` values, red plane first.
    pub data: Vec<f32>,
}

impl Planes {
    /// Converts 8-bit RGB to planes with `value = (pixel - 127.5) / 128`, the MTCNN input scale.
    ///
    /// One pass over the pixels, each byte's value read from a table of the 256 (the same
    /// floats as computing it): three strided passes, one per plane, cost 6% of a
    /// `--faces-only` scan.
    pub fn from_rgb_normalized(image: &RgbImage) -> Planes {
        let (width, height) = (image.width() as usize, image.height() as usize);
        let n = width * height;
        let table: [f32; 256] = std::array::from_fn(|v| (v as f32 - 127.5) * 0.0078125);
        let mut data = vec![0.0f32; 3 * n];
        let (red, rest) = data.split_at_mut(n);
        let (green, blue) = rest.split_at_mut(n);
        let pixels = image.as_raw().chunks_exact(3).take(n);
        for ((pixel, r), (g, b)) in pixels.zip(red).zip(green.iter_mut().zip(blue)) {
            *r = table[usize::from(pixel[0])];
            *g = table[usize::from(pixel[1])];
            *b = table[usize::from(pixel[2])];
        }
        Planes {
            width,
            height,
            data,
        }
    }

    pub fn filled(width: usize, height: usize, value: f32) -> Planes {
        Planes {
            width,
            height,
            data: vec![value; 3 * width * height],
        }
    }

    pub fn plane(&self, channel: usize) -> &[f32] {
        let n = self.width * self.height;
        &self.data[channel * n..(channel + 1) * n]
    }

    /// A copy with `border` pixels of `fill` added on every side.
    pub fn padded(&self, border: usize, fill: f32) -> Planes {
        let mut out = Planes::filled(self.width + 2 * border, self.height + 2 * border, fill);
        let (src_n, dst_n) = (self.width * self.height, out.width * out.height);
        for c in 0..3 {
            for y in 0..self.height {
                let src = &self.data[c * src_n + y * self.width..][..self.width];
                let dst_start = c * dst_n + (y + border) * out.width + border;
                out.data[dst_start..dst_start + self.width].copy_from_slice(src);
            }
        }
        out
    }

    /// Area-resamples the whole image to `width × height`.
    pub fn resized(&self, width: usize, height: usize) -> Planes {
        self.crop_resized(0, 0, self.width, self.height, width, height, 0.0)
    }

    /// Area-resamples the rectangle with top-left `(x0, y0)` (may be negative) and size
    /// `crop_w × crop_h` to `width × height`; pixels outside the image read as `fill`.
    ///
    /// Filling instead of clamping the crop to the image is what keeps landmarks right on faces
    /// that run past the frame: the network sees the face where it is, not stretched.
    #[allow(clippy::too_many_arguments)]
    pub fn crop_resized(
        &self,
        x0: i64,
        y0: i64,
        crop_w: usize,
        crop_h: usize,
        width: usize,
        height: usize,
        fill: f32,
    ) -> Planes {
        let mut out = Planes::filled(width, height, fill);
        if crop_w == 0 || crop_h == 0 || width == 0 || height == 0 {
            return out;
        }
        let x_bins = RowBins::new(crop_w, width);
        let y_bins = area_bins(crop_h, height);
        let mut line = vec![fill; crop_w];
        let mut column_sums = vec![0.0f32; crop_w];
        // The part of each crop row that lies inside the image: [inside.0, inside.1).
        let inside = (
            (-x0).clamp(0, crop_w as i64) as usize,
            (self.width as i64 - x0).clamp(0, crop_w as i64) as usize,
        );
        let whole_rows = inside == (0, crop_w);
        let n_in = self.width * self.height;
        let n_out = width * height;
        for c in 0..3 {
            let plane = &self.data[c * n_in..(c + 1) * n_in];
            let dst = &mut out.data[c * n_out..(c + 1) * n_out];
            for (dst_row, &(start, end)) in dst.chunks_exact_mut(width).zip(&y_bins) {
                // Vertical pass first: the crop rows of this output row, averaged column by
                // column over contiguous memory. Averaging rows first and columns second leaves
                // the short horizontal sums (a chain of dependent additions per output pixel)
                // to the `height` output rows instead of all `crop_h` crop rows: a face box of
                // 300 px cut to O-Net's 48 has 48 such rows instead of 300.
                for cy in start..end {
                    let sy = y0 + cy as i64;
                    let in_frame = sy >= 0 && (sy as usize) < self.height;
                    let source: &[f32] = if in_frame && whole_rows {
                        // The whole crop row lies in the image: read it where it is.
                        let first = x0 as usize + sy as usize * self.width;
                        &plane[first..first + crop_w]
                    } else {
                        line.fill(fill);
                        if in_frame && inside.0 < inside.1 {
                            let first = (x0 + inside.0 as i64) as usize + sy as usize * self.width;
                            line[inside.0..inside.1]
                                .copy_from_slice(&plane[first..first + (inside.1 - inside.0)]);
                        }
                        &line
                    };
                    if cy == start {
                        column_sums.copy_from_slice(source);
                    } else {
                        for (sum, v) in column_sums.iter_mut().zip(source) {
                            *sum += v;
                        }
                    }
                }
                let count = (end - start) as f32;
                for sum in column_sums.iter_mut() {
                    *sum /= count;
                }
                // Horizontal pass over the column means.
                x_bins.means(&column_sums, dst_row);
            }
        }
        out
    }
}

/// The horizontal pass's bins, with what it derives from them once per crop rather than once
/// per row.
struct RowBins {
    ranges: Vec<(usize, usize)>,
    counts: Vec<f32>,
    longest: usize,
}

impl RowBins {
    fn new(n_in: usize, n_out: usize) -> RowBins {
        let ranges = area_bins(n_in, n_out);
        RowBins {
            counts: ranges.iter().map(|&(s, e)| (e - s) as f32).collect(),
            longest: ranges.iter().map(|&(s, e)| e - s).max().unwrap_or(1),
            ranges,
        }
    }

    /// Each bin's mean of `source` into `out`: the sums, then the divisions in a pass of their
    /// own over the row, where they vectorise (each still correctly rounded).
    fn means(&self, source: &[f32], out: &mut [f32]) {
        self.sums(source, out);
        for (o, count) in out.iter_mut().zip(&self.counts) {
            *o /= count;
        }
    }

    /// Each bin's sum of `source[start..end]`, left to right, into `out`. The bins of a
    /// downscale by less than 4 hold one to four pixels and their lengths alternate (1, 2, 1,
    /// 2, …), so a loop per bin mispredicts its exit at every other pixel. Short bins are
    /// summed over a fixed number of pixels instead, the ones past the bin's end replaced by
    /// zeros: adding zero is exact, so every sum is the loop's.
    fn sums(&self, source: &[f32], out: &mut [f32]) {
        let bins = &self.ranges;
        match self.longest {
            1 => sum_short_bins::<1>(source, bins, out),
            2 => sum_short_bins::<2>(source, bins, out),
            3 => sum_short_bins::<3>(source, bins, out),
            4 => sum_short_bins::<4>(source, bins, out),
            _ => {
                for (o, &(start, end)) in out.iter_mut().zip(bins) {
                    *o = source[start..end].iter().sum::<f32>();
                }
            }
        }
    }
}

#[inline(always)]
fn sum_short_bins<const L: usize>(source: &[f32], bins: &[(usize, usize)], out: &mut [f32]) {
    for (o, &(start, end)) in out.iter_mut().zip(bins) {
        let mut sum = source[start];
        for j in 1..L {
            let v = source.get(start + j).copied().unwrap_or(0.0);
            sum += if start + j < end { v } else { 0.0 };
        }
        *o = sum;
    }
}

/// Input index ranges `[start, end)` averaged into each of `n_out` outputs (adaptive pooling).
fn area_bins(n_in: usize, n_out: usize) -> Vec<(usize, usize)> {
    (0..n_out)
        .map(|i| {
            let start = (i * n_in) / n_out;
            let end = ((i + 1) * n_in).div_ceil(n_out);
            (start, end.max(start + 1))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bin_sums_are_the_plain_left_to_right_sums_bit_for_bit() {
        // Values whose sums round differently in another order.
        let source: Vec<f32> = (0..97)
            .map(|i| ((i * 7919 % 101) as f32 - 50.0) / 128.0 + 1e-3 * i as f32)
            .collect();
        for n_in in 1..=source.len() {
            for n_out in 1..=n_in {
                let bins = RowBins::new(n_in, n_out);
                let mut fast = vec![0.0f32; n_out];
                bins.sums(&source[..n_in], &mut fast);
                for (got, &(start, end)) in fast.iter().zip(&bins.ranges) {
                    let plain: f32 = source[start..end].iter().sum();
                    assert_eq!(got.to_bits(), plain.to_bits(), "{n_in} -> {n_out}");
                }
            }
        }
    }

    fn ramp(width: usize, height: usize) -> Planes {
        let mut p = Planes::filled(width, height, 0.0);
        for c in 0..3 {
            for y in 0..height {
                for x in 0..width {
                    p.data[c * width * height + y * width + x] = (x + 10 * y + 100 * c) as f32;
                }
            }
        }
        p
    }

    #[test]
    fn area_bins_match_adaptive_pooling() {
        // PyTorch adaptive_avg_pool1d(5 -> 3) uses bins [0,2) [1,4) [3,5).
        assert_eq!(area_bins(5, 3), vec![(0, 2), (1, 4), (3, 5)]);
        // Upsampling 2 -> 4 repeats each input twice.
        assert_eq!(area_bins(2, 4), vec![(0, 1), (0, 1), (1, 2), (1, 2)]);
    }

    #[test]
    fn halving_averages_two_by_two_blocks() {
        let p = ramp(4, 2);
        let half = p.resized(2, 1);
        // Block x∈{0,1}, y∈{0,1}: (0+1+10+11)/4 = 5.5
        assert_eq!(half.plane(0), &[5.5, 7.5]);
        assert_eq!(half.plane(2), &[205.5, 207.5]);
    }

    #[test]
    fn identity_resize_is_exact() {
        let p = ramp(7, 5);
        assert_eq!(p.resized(7, 5), p);
    }

    #[test]
    fn crop_outside_reads_fill() {
        let p = ramp(3, 3);
        let crop = p.crop_resized(-3, -3, 3, 3, 3, 3, -1.0);
        assert!(crop.data.iter().all(|&v| v == -1.0));
        let inside = p.crop_resized(1, 1, 1, 1, 1, 1, -1.0);
        assert_eq!(inside.plane(0), &[11.0]);
    }

    #[test]
    fn padding_places_image_in_the_middle() {
        let p = ramp(2, 2);
        let padded = p.padded(1, 9.0);
        assert_eq!((padded.width, padded.height), (4, 4));
        assert_eq!(padded.plane(0)[5], 0.0);
        assert_eq!(padded.plane(0)[10], 11.0);
        assert_eq!(padded.plane(0)[0], 9.0);
    }

    #[test]
    fn normalisation_matches_mtcnn() {
        let img = RgbImage::from_pixel(1, 1, image::Rgb([0, 255, 128]));
        let p = Planes::from_rgb_normalized(&img);
        assert_eq!(p.data, vec![-0.99609375, 0.99609375, 0.00390625]);
    }

    /// Every byte value, in every channel, of a picture wider than tall lands in its plane at
    /// its pixel with the formula's own float.
    #[test]
    fn normalisation_puts_each_channel_in_its_plane() {
        let (w, h) = (37u32, 11u32);
        let img = RgbImage::from_fn(w, h, |x, y| {
            let v = (x * 7 + y * 13) as u8;
            image::Rgb([v, v.wrapping_mul(3), v.wrapping_add(91)])
        });
        let p = Planes::from_rgb_normalized(&img);
        assert_eq!((p.width, p.height, p.data.len()), (37, 11, 3 * 37 * 11));
        for (x, y, pixel) in img.enumerate_pixels() {
            for c in 0..3 {
                let expected = (f32::from(pixel[c]) - 127.5) * 0.0078125;
                let at = (y * w + x) as usize;
                assert_eq!(
                    p.plane(c)[at].to_bits(),
                    expected.to_bits(),
                    "({x}, {y}) {c}"
                );
            }
        }
    }
}
