//! Small JPEG previews for reports, the store and the review page.

use image::codecs::jpeg::JpegEncoder;
use image::imageops::{self, FilterType};
use image::RgbImage;

/// `image` scaled down (never up) to fit `max_side`, encoded as a JPEG of quality 85.
pub fn jpeg_thumbnail(image: &RgbImage, max_side: u32) -> Vec<u8> {
    let (w, h) = image.dimensions();
    let scale = (max_side as f64 / w.max(h).max(1) as f64).min(1.0);
    let size = |v: u32| ((v as f64 * scale).round() as u32).max(1);
    let small = if scale < 1.0 {
        imageops::resize(image, size(w), size(h), FilterType::Triangle)
    } else {
        image.clone()
    };
    let mut out = Vec::new();
    // Encoding an in-memory RGB buffer into a Vec cannot fail but for dimensions of zero,
    // which `size` rules out; an empty preview is the harmless answer if it ever did.
    if JpegEncoder::new_with_quality(&mut out, 85)
        .encode_image(&small)
        .is_err()
    {
        out.clear();
    }
    out
}

/// `image` cropped to the square around `bbox` (x1, y1, x2, y2) grown by `margin` of its side,
/// clamped to the image: a face's picture for a report.
pub fn square_crop(image: &RgbImage, bbox: [f32; 4], margin: f32) -> RgbImage {
    let (w, h) = image.dimensions();
    if w == 0 || h == 0 {
        return image.clone();
    }
    let [x1, y1, x2, y2] = bbox;
    let side = ((x2 - x1).max(y2 - y1) * (1.0 + 2.0 * margin)).max(1.0);
    let (cx, cy) = ((x1 + x2) / 2.0, (y1 + y2) / 2.0);
    // NaN coordinates clamp to 0 (`as` saturates), so a bad box still gives a 1-px crop.
    let at = |v: f32, lo: u32, hi: u32| (v.round().max(0.0) as u32).clamp(lo, hi);
    let (left, top) = (at(cx - side / 2.0, 0, w - 1), at(cy - side / 2.0, 0, h - 1));
    let right = at(cx + side / 2.0, left + 1, w);
    let bottom = at(cy + side / 2.0, top + 1, h);
    imageops::crop_imm(image, left, top, right - left, bottom - top).to_image()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thumbnails_fit_and_decode() {
        let image = RgbImage::from_pixel(400, 200, image::Rgb([200, 10, 10]));
        let jpeg = jpeg_thumbnail(&image, 100);
        let back = image::load_from_memory(&jpeg).unwrap();
        assert_eq!((back.width(), back.height()), (100, 50));
        let small = RgbImage::new(20, 10);
        let back = image::load_from_memory(&jpeg_thumbnail(&small, 100)).unwrap();
        assert_eq!((back.width(), back.height()), (20, 10));
    }

    #[test]
    fn crops_stay_inside_the_image() {
        let image = RgbImage::new(100, 80);
        let crop = square_crop(&image, [10.0, 10.0, 50.0, 60.0], 0.2);
        assert_eq!((crop.width(), crop.height()), (65, 70));
        let corner = square_crop(&image, [90.0, 70.0, 130.0, 120.0], 0.5);
        assert!(corner.width() >= 1 && corner.height() >= 1);
        let degenerate = square_crop(&image, [f32::NAN, 0.0, 0.0, 0.0], 0.0);
        assert!(degenerate.width() >= 1);
    }
}
