//! Bad and unusual input, one case per test, with files made here.

use super::*;
use image::{ImageBuffer, Luma, Rgb, Rgba};

fn encode(image: &DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut out = Vec::new();
    image
        .write_to(&mut Cursor::new(&mut out), format)
        .expect("encoding a test image");
    out
}

fn two_colour_rgb(width: u32, height: u32) -> RgbImage {
    // Left half red, right half blue: orientation mistakes become visible.
    RgbImage::from_fn(width, height, |x, _| {
        if x < width / 2 {
            Rgb([220, 20, 20])
        } else {
            Rgb([20, 20, 220])
        }
    })
}

fn jpeg_with_app1(pixels: &RgbImage, app1: Option<&[u8]>) -> Vec<u8> {
    let mut out = Vec::new();
    let mut encoder = jpeg_encoder::Encoder::new(&mut out, 95);
    if let Some(data) = app1 {
        encoder.add_app_segment(1, data).expect("app segment");
    }
    encoder
        .encode(
            pixels.as_raw(),
            pixels.width() as u16,
            pixels.height() as u16,
            jpeg_encoder::ColorType::Rgb,
        )
        .expect("jpeg encoding");
    out
}

use crate::fixtures::{exif_orientation, png_claiming};

#[test]
fn empty_file_is_rejected() {
    assert_eq!(
        decode(&[], &DecodeLimits::default()).unwrap_err(),
        DecodeError::Empty
    );
}

#[test]
fn text_is_not_an_image() {
    let err = decode(b"hello, this is not a picture", &DecodeLimits::default()).unwrap_err();
    assert_eq!(err, DecodeError::NotAnImage);
    assert!(err.to_string().contains("not an image"));
}

#[test]
fn content_decides_format_not_name() {
    // A PNG whatever its name: decoding never looks at the name.
    let png = encode(
        &DynamicImage::ImageRgb8(two_colour_rgb(8, 6)),
        ImageFormat::Png,
    );
    let decoded = decode(&png, &DecodeLimits::default()).unwrap();
    assert_eq!(decoded.format, Format::Png);
    assert_eq!(decoded.image.dimensions(), (8, 6));
}

#[test]
fn truncated_jpeg_is_an_error_not_a_panic() {
    let jpeg = jpeg_with_app1(&two_colour_rgb(64, 64), None);
    for cut in [3, 20, jpeg.len() / 3, jpeg.len() / 2] {
        let result = decode(&jpeg[..cut], &DecodeLimits::default());
        // zune-jpeg may fill a partly-present scan with grey; what matters is no panic and,
        // where it fails, a reason naming the format.
        if let Err(err) = result {
            assert!(
                err.to_string().contains("jpeg"),
                "cut at {cut}: unexpected error {err}"
            );
        }
    }
    assert!(decode(&jpeg[..3], &DecodeLimits::default()).is_err());
}

#[test]
fn truncated_png_is_an_error() {
    let png = encode(
        &DynamicImage::ImageRgb8(two_colour_rgb(64, 64)),
        ImageFormat::Png,
    );
    let err = decode(&png[..png.len() / 2], &DecodeLimits::default()).unwrap_err();
    assert!(
        matches!(err, DecodeError::Corrupt { format: "png", .. }),
        "{err}"
    );
}

#[test]
fn corrupt_bytes_after_a_valid_header_are_an_error() {
    let mut png = encode(
        &DynamicImage::ImageRgb8(two_colour_rgb(32, 32)),
        ImageFormat::Png,
    );
    let middle = png.len() / 2;
    for b in &mut png[middle..] {
        *b = b.wrapping_mul(31).wrapping_add(7);
    }
    assert!(decode(&png, &DecodeLimits::default()).is_err());
}

#[test]
fn png_bomb_is_rejected_before_allocation() {
    let png = png_claiming(50_000, 50_000);
    let err = decode(&png, &DecodeLimits::default()).unwrap_err();
    assert!(matches!(err, DecodeError::TooLarge { .. }), "{err}");
    assert!(err.to_string().contains("too large"));
}

#[test]
fn jpeg_bomb_is_rejected_before_allocation() {
    let mut jpeg = jpeg_with_app1(&two_colour_rgb(16, 16), None);
    let sof = jpeg
        .windows(2)
        .position(|w| w == [0xFF, 0xC0])
        .expect("baseline SOF marker");
    // FFC0, length(2), precision(1), height(2), width(2)
    jpeg[sof + 5..sof + 7].copy_from_slice(&50_000u16.to_be_bytes());
    jpeg[sof + 7..sof + 9].copy_from_slice(&50_000u16.to_be_bytes());
    let err = decode(&jpeg, &DecodeLimits::default()).unwrap_err();
    assert!(matches!(err, DecodeError::TooLarge { .. }), "{err}");
}

#[test]
fn oversized_file_is_rejected_by_byte_count() {
    let limits = DecodeLimits {
        max_file_bytes: 10,
        ..DecodeLimits::default()
    };
    let png = encode(
        &DynamicImage::ImageRgb8(two_colour_rgb(4, 4)),
        ImageFormat::Png,
    );
    assert!(matches!(
        decode(&png, &limits).unwrap_err(),
        DecodeError::FileTooLarge { .. }
    ));
}

#[test]
fn greyscale_becomes_rgb() {
    let grey: ImageBuffer<Luma<u8>, Vec<u8>> = ImageBuffer::from_pixel(5, 4, Luma([77]));
    let png = encode(&DynamicImage::ImageLuma8(grey), ImageFormat::Png);
    let decoded = decode(&png, &DecodeLimits::default()).unwrap();
    assert_eq!(decoded.image.get_pixel(2, 2), &Rgb([77, 77, 77]));
}

#[test]
fn sixteen_bit_becomes_eight_bit() {
    let deep: ImageBuffer<Rgb<u16>, Vec<u16>> =
        ImageBuffer::from_pixel(3, 3, Rgb([65535, 0, 32896]));
    let png = encode(&DynamicImage::ImageRgb16(deep), ImageFormat::Png);
    let decoded = decode(&png, &DecodeLimits::default()).unwrap();
    assert_eq!(decoded.image.get_pixel(1, 1), &Rgb([255, 0, 128]));
}

#[test]
fn transparent_pixels_become_white() {
    let rgba: ImageBuffer<Rgba<u8>, Vec<u8>> = ImageBuffer::from_fn(2, 1, |x, _| {
        if x == 0 {
            Rgba([0, 0, 0, 0])
        } else {
            Rgba([10, 20, 30, 255])
        }
    });
    let png = encode(&DynamicImage::ImageRgba8(rgba), ImageFormat::Png);
    let decoded = decode(&png, &DecodeLimits::default()).unwrap();
    assert_eq!(decoded.image.get_pixel(0, 0), &Rgb([255, 255, 255]));
    assert_eq!(decoded.image.get_pixel(1, 0), &Rgb([10, 20, 30]));
}

#[test]
fn cmyk_jpeg_decodes_to_rgb() {
    // All-zero ink is paper white in CMYK.
    let (w, h) = (16u16, 8u16);
    let cmyk = vec![0u8; usize::from(w) * usize::from(h) * 4];
    let mut jpeg = Vec::new();
    jpeg_encoder::Encoder::new(&mut jpeg, 95)
        .encode(&cmyk, w, h, jpeg_encoder::ColorType::Cmyk)
        .unwrap();
    let decoded = decode(&jpeg, &DecodeLimits::default()).unwrap();
    assert_eq!(decoded.image.dimensions(), (16, 8));
    let px = decoded.image.get_pixel(4, 4);
    assert!(
        px.0.iter().all(|&v| v > 200),
        "white paper decoded as {px:?}"
    );
}

#[test]
fn exif_orientation_is_applied() {
    let stored = two_colour_rgb(40, 20);
    // Orientation 6: rotate 90° clockwise to display, so the stored left half becomes the top.
    let jpeg = jpeg_with_app1(&stored, Some(&exif_orientation(6)));
    let decoded = decode(&jpeg, &DecodeLimits::default()).unwrap();
    assert_eq!(decoded.image.dimensions(), (20, 40));
    let top = decoded.image.get_pixel(10, 5);
    let bottom = decoded.image.get_pixel(10, 35);
    assert!(
        top[0] > 150 && top[2] < 100,
        "top should be red, got {top:?}"
    );
    assert!(
        bottom[2] > 150 && bottom[0] < 100,
        "bottom should be blue, got {bottom:?}"
    );
}

#[test]
fn webp_decodes() {
    let webp = encode(
        &DynamicImage::ImageRgb8(two_colour_rgb(10, 10)),
        ImageFormat::WebP,
    );
    let decoded = decode(&webp, &DecodeLimits::default()).unwrap();
    assert_eq!(decoded.format, Format::WebP);
    assert_eq!(decoded.image.dimensions(), (10, 10));
}

#[test]
fn sniffing_ignores_short_and_random_input() {
    assert_eq!(sniff_format(b""), None);
    assert_eq!(sniff_format(b"\xFF\xD8"), None);
    assert_eq!(sniff_format(b"BM"), None);
    assert_eq!(sniff_format(b"RIFF\0\0\0\0WAVE"), None);
    assert_eq!(sniff_format(b"RIFF\0\0\0\0WEBPVP8 "), Some(Format::WebP));
}
