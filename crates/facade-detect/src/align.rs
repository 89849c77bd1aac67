//! Landmark-aligned face crops at a fixed resolution.
//!
//! The learned classifier must judge the face, not the picture around it: image size, framing
//! and where the face sits are what separate most fakes from most reals in any collected data
//! set, and a network fed whole images learns those instead. So every face is mapped by a
//! similarity transform (rotation, uniform scale, shift) that puts its five landmarks as close
//! as possible to a fixed template, and sampled at [`CROP_SIDE`]² pixels. A 1024 px StyleGAN
//! image and a 200 px crop of a photograph then give the classifier the same kind of input.
//!
//! Downscaling is area-averaged (not point-sampled): a face that is 400 px wide in the source
//! would otherwise alias into a crop whose texture says more about the source size than about
//! the face. Pixels the crop needs from beyond the frame repeat the nearest edge pixel, so a
//! tight crop does not carry a tell-tale grey border.

use facade_image::{Planes, RgbImage};

/// Side of the aligned crop in pixels that the small network reads, and the default.
/// Fine-tuned Lite0 models may record another side (`crop_side`): at 64 px the inner face of a
/// 256 px picture is already halved and that of a 1024 px StyleGAN picture shrunk ninefold.
pub const CROP_SIDE: usize = 64;

/// Smallest and largest crop side a model may ask for.
pub const CROP_SIDES: std::ops::RangeInclusive<usize> = 32..=256;

/// The five-point template of ArcFace-style alignment (left eye, right eye, nose, left and
/// right mouth corner) for a 112 px crop, which spans forehead to chin.
const TEMPLATE_112: [[f32; 2]; 5] = [
    [38.2946, 51.6963],
    [73.5318, 51.5014],
    [56.0252, 71.7366],
    [41.5493, 92.3655],
    [70.7299, 92.2041],
];

/// A similarity transform `p' = [a -b; b a] p + t` from crop pixels to image pixels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Similarity {
    pub a: f32,
    pub b: f32,
    pub tx: f32,
    pub ty: f32,
}

impl Similarity {
    pub fn apply(&self, [x, y]: [f32; 2]) -> [f32; 2] {
        [
            self.a * x - self.b * y + self.tx,
            self.b * x + self.a * y + self.ty,
        ]
    }

    /// Image pixels per crop pixel.
    pub fn scale(&self) -> f32 {
        self.a.hypot(self.b)
    }
}

/// How much closer than the ArcFace template the crop is taken. At 1.0 a third of a typical
/// tight 200 px crop (UTKFace) and a sixth of a typical Stable Diffusion portrait's crop lie
/// beyond the frame; at 1.3 none of the StyleGAN, FFHQ, web or congress faces do and the
/// rest much less, so the crop holds the inner face (eyes, nose, mouth, cheeks) and little of
/// the framing. The crop of every model before stop 33, and the default.
pub const ZOOM: f32 = 1.3;

/// The zooms a model may ask for: from about the whole StyleGAN frame (0.75 puts the eyes
/// where StyleGAN puts them, hair, ears and background included) to a close-up of the eyes,
/// nose and mouth (above 1.5 the mouth corners leave the crop).
pub const ZOOMS: std::ops::RangeInclusive<f32> = 0.5..=1.5;

/// Which aligned crop a classifier reads: its side in pixels and how close it is taken.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CropFrame {
    pub side: usize,
    /// Relative to the ArcFace template: above 1 closer, below 1 wider ([`ZOOM`]).
    pub zoom: f32,
}

impl CropFrame {
    /// The inner-face crop ([`ZOOM`]) at `side` pixels.
    pub fn inner(side: usize) -> CropFrame {
        CropFrame { side, zoom: ZOOM }
    }

    /// Template landmark positions in this crop.
    pub fn template(&self) -> [[f32; 2]; 5] {
        let k = self.side as f32 / 112.0;
        let centre = self.side as f32 / 2.0;
        TEMPLATE_112.map(|[x, y]| {
            [
                (x * k - centre) * self.zoom + centre,
                (y * k - centre) * self.zoom + centre,
            ]
        })
    }
}

/// Template landmark positions for an inner-face crop of `side` pixels.
pub fn template(side: usize) -> [[f32; 2]; 5] {
    CropFrame::inner(side).template()
}

/// Least-squares similarity mapping `from` points onto `to` points (Umeyama, no reflection).
pub fn fit_similarity(from: &[[f32; 2]; 5], to: &[[f32; 2]; 5]) -> Similarity {
    let mean = |pts: &[[f32; 2]; 5]| {
        let (sx, sy) = pts
            .iter()
            .fold((0.0, 0.0), |(sx, sy), p| (sx + p[0], sy + p[1]));
        [sx / 5.0, sy / 5.0]
    };
    let (mf, mt) = (mean(from), mean(to));
    let (mut num_a, mut num_b, mut den) = (0.0f32, 0.0f32, 0.0f32);
    for (f, t) in from.iter().zip(to) {
        let (fx, fy) = (f[0] - mf[0], f[1] - mf[1]);
        let (tx, ty) = (t[0] - mt[0], t[1] - mt[1]);
        num_a += fx * tx + fy * ty;
        num_b += fx * ty - fy * tx;
        den += fx * fx + fy * fy;
    }
    let den = den.max(1e-6);
    let (a, b) = (num_a / den, num_b / den);
    Similarity {
        a,
        b,
        tx: mt[0] - (a * mf[0] - b * mf[1]),
        ty: mt[1] - (b * mf[0] + a * mf[1]),
    }
}

/// Small perturbation of the alignment, used to augment training data so that the classifier
/// tolerates the landmark noise of a re-encoded or resized image.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Jitter {
    /// Shift in crop pixels.
    pub dx: f32,
    pub dy: f32,
    /// Relative scale change (0 = none).
    pub scale: f32,
    /// Rotation in radians.
    pub angle: f32,
    /// Mirror the crop left-right.
    pub mirror: bool,
}

/// The aligned crop of one face: `3 × side × side` values in `[0, 255]`, plane by
/// plane, with the fraction of its pixels that had to come from beyond the frame.
#[derive(Debug, Clone, PartialEq)]
pub struct AlignedCrop {
    pub pixels: Vec<u8>,
    pub outside_fraction: f32,
}

/// Samples the aligned crop `frame` of the face with these landmarks.
pub fn aligned_crop(
    image: &RgbImage,
    landmarks: &[[f32; 2]; 5],
    jitter: Jitter,
    frame: CropFrame,
) -> AlignedCrop {
    let side = frame.side;
    let to_image = crop_to_image(landmarks, jitter, frame);
    // Area-downscale the region the crop covers so that one intermediate pixel is about one
    // crop pixel, then sample it bilinearly.
    let corners = [
        [0.0, 0.0],
        [side as f32, 0.0],
        [0.0, side as f32],
        [side as f32; 2],
    ]
    .map(|p| to_image.apply(p));
    let x0 = corners
        .iter()
        .map(|p| p[0])
        .fold(f32::MAX, f32::min)
        .floor()
        - 1.0;
    let y0 = corners
        .iter()
        .map(|p| p[1])
        .fold(f32::MAX, f32::min)
        .floor()
        - 1.0;
    let x1 = corners.iter().map(|p| p[0]).fold(f32::MIN, f32::max).ceil() + 1.0;
    let y1 = corners.iter().map(|p| p[1]).fold(f32::MIN, f32::max).ceil() + 1.0;
    let shrink = to_image.scale().max(1.0);
    let (region_w, region_h) = ((x1 - x0).max(1.0), (y1 - y0).max(1.0));
    let (mid_w, mid_h) = (
        ((region_w / shrink).ceil() as usize).clamp(1, 4 * side),
        ((region_h / shrink).ceil() as usize).clamp(1, 4 * side),
    );
    let clamped = clamp_to_frame(image, x0, y0, region_w as usize, region_h as usize);
    let planes = Planes {
        width: clamped.width() as usize,
        height: clamped.height() as usize,
        data: rgb_planes(&clamped),
    };
    let mid = planes.resized(mid_w, mid_h);
    let (kx, ky) = (mid_w as f32 / region_w, mid_h as f32 / region_h);

    let mut pixels = vec![0u8; 3 * side * side];
    let mut outside = 0usize;
    for oy in 0..side {
        for ox in 0..side {
            let sx = if jitter.mirror { side - 1 - ox } else { ox };
            let [ix, iy] = to_image.apply([sx as f32 + 0.5, oy as f32 + 0.5]);
            if ix < 0.0 || iy < 0.0 || ix >= image.width() as f32 || iy >= image.height() as f32 {
                outside += 1;
            }
            let (mx, my) = ((ix - x0) * kx - 0.5, (iy - y0) * ky - 0.5);
            for c in 0..3 {
                let v = bilinear(mid.plane(c), mid_w, mid_h, mx, my);
                pixels[c * side * side + oy * side + ox] = v.round().clamp(0.0, 255.0) as u8;
            }
        }
    }
    AlignedCrop {
        pixels,
        outside_fraction: outside as f32 / (side * side) as f32,
    }
}

/// The transform from crop pixels to image pixels for these landmarks and jitter.
fn crop_to_image(landmarks: &[[f32; 2]; 5], jitter: Jitter, frame: CropFrame) -> Similarity {
    let centre = frame.side as f32 / 2.0;
    let (sin, cos) = jitter.angle.sin_cos();
    let k = 1.0 + jitter.scale;
    // Jitter moves the template: rotate and scale it about the crop centre, then shift.
    let moved = frame.template().map(|[x, y]| {
        let (u, v) = (x - centre, y - centre);
        [
            centre + k * (cos * u - sin * v) + jitter.dx,
            centre + k * (sin * u + cos * v) + jitter.dy,
        ]
    });
    fit_similarity(&moved, landmarks)
}

/// The `width × height` window at `(x0, y0)` of the image, with out-of-frame pixels repeating
/// the nearest edge pixel.
fn clamp_to_frame(image: &RgbImage, x0: f32, y0: f32, width: usize, height: usize) -> RgbImage {
    let (w, h) = (image.width() as i64, image.height() as i64);
    let (x0, y0) = (x0 as i64, y0 as i64);
    let width = width.clamp(1, 8192) as u32;
    let height = height.clamp(1, 8192) as u32;
    RgbImage::from_fn(width, height, |x, y| {
        let sx = (x0 + i64::from(x)).clamp(0, w - 1) as u32;
        let sy = (y0 + i64::from(y)).clamp(0, h - 1) as u32;
        *image.get_pixel(sx, sy)
    })
}

fn rgb_planes(image: &RgbImage) -> Vec<f32> {
    let n = (image.width() * image.height()) as usize;
    let mut data = vec![0.0f32; 3 * n];
    for (i, px) in image.as_raw().chunks_exact(3).enumerate() {
        for c in 0..3 {
            data[c * n + i] = f32::from(px[c]);
        }
    }
    data
}

fn bilinear(plane: &[f32], width: usize, height: usize, x: f32, y: f32) -> f32 {
    let x = x.clamp(0.0, (width - 1) as f32);
    let y = y.clamp(0.0, (height - 1) as f32);
    let (xi, yi) = (x.floor() as usize, y.floor() as usize);
    let (xn, yn) = ((xi + 1).min(width - 1), (yi + 1).min(height - 1));
    let (fx, fy) = (x - xi as f32, y - yi as f32);
    let top = plane[yi * width + xi] * (1.0 - fx) + plane[yi * width + xn] * fx;
    let bottom = plane[yn * width + xi] * (1.0 - fx) + plane[yn * width + xn] * fx;
    top * (1.0 - fy) + bottom * fy
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fit_recovers_a_known_similarity() {
        let truth = Similarity {
            a: 1.8,
            b: 0.3,
            tx: 40.0,
            ty: -7.0,
        };
        let from = template(CROP_SIDE);
        let to = from.map(|p| truth.apply(p));
        let fit = fit_similarity(&from, &to);
        assert!((fit.a - truth.a).abs() < 1e-4 && (fit.b - truth.b).abs() < 1e-4);
        assert!((fit.tx - truth.tx).abs() < 1e-2 && (fit.ty - truth.ty).abs() < 1e-2);
    }

    #[test]
    fn crop_puts_landmarks_on_the_template() {
        // Paint a bright dot at each landmark of a big image; the crop must show the dots at
        // the template positions whatever the image scale, the crop side and the zoom.
        for (scale, side, zoom) in [
            (1.0f32, 64, ZOOM),
            (4.0, 64, ZOOM),
            (10.0, 64, ZOOM),
            (1.0, 128, ZOOM),
            (4.0, 96, ZOOM),
            (4.0, 64, 0.8),
            (2.0, 128, 0.8),
            (4.0, 96, 1.5),
        ] {
            let frame = CropFrame { side, zoom };
            // Room around the face for the widest crop.
            let size = (CROP_SIDE as f32 * scale * 2.5) as u32;
            let offset = CROP_SIDE as f32 * scale * 0.75;
            let landmarks =
                template(CROP_SIDE).map(|[x, y]| [x * scale + offset, y * scale + offset]);
            let mut image = RgbImage::new(size, size);
            for [x, y] in landmarks {
                let r = (scale * 1.5).max(1.0) as i64;
                for dy in -r..=r {
                    for dx in -r..=r {
                        let (px, py) = (x as i64 + dx, y as i64 + dy);
                        image.put_pixel(px as u32, py as u32, image::Rgb([255, 255, 255]));
                    }
                }
            }
            let crop = aligned_crop(&image, &landmarks, Jitter::default(), frame);
            assert_eq!(crop.pixels.len(), 3 * side * side);
            assert_eq!(crop.outside_fraction, 0.0, "{frame:?}");
            for [x, y] in frame.template() {
                let v = crop.pixels[y as usize * side + x as usize];
                assert!(
                    v > 100,
                    "{frame:?} at scale {scale}: dot at ({x}, {y}) reads {v}"
                );
            }
        }
    }

    #[test]
    fn a_lower_zoom_takes_a_wider_crop() {
        let eye_gap = |zoom: f32| {
            let t = CropFrame { side: 128, zoom }.template();
            t[1][0] - t[0][0]
        };
        // The crop is as many times wider as the zoom is lower: the eyes sit closer together.
        assert!((eye_gap(0.65) * 2.0 - eye_gap(1.3)).abs() < 1e-3);
        assert_eq!(template(128), CropFrame::inner(128).template());
    }

    #[test]
    fn faces_past_the_frame_report_the_outside_fraction() {
        let image = RgbImage::from_pixel(50, 50, image::Rgb([10, 20, 30]));
        let landmarks = template(CROP_SIDE).map(|[x, y]| [x - 20.0, y - 20.0]);
        let crop = aligned_crop(
            &image,
            &landmarks,
            Jitter::default(),
            CropFrame::inner(CROP_SIDE),
        );
        assert!(crop.outside_fraction > 0.3);
        // Edge pixels repeat: the whole crop has the image's colour.
        assert!(crop.pixels[..CROP_SIDE * CROP_SIDE]
            .iter()
            .all(|&v| v == 10));
    }
}
