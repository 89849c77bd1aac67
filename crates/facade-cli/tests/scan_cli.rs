//! End-to-end: the real `facade` binary on real files, its real output read back.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

fn facade() -> Command {
    Command::new(env!("CARGO_BIN_EXE_facade"))
}

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

fn records(output: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect()
}

fn scan(args: &[&str]) -> Output {
    facade()
        .arg("scan")
        .args(args)
        .output()
        .expect("run facade")
}

fn astronaut_rgb() -> image::RgbImage {
    image::open(examples().join("astronaut-400.jpg"))
        .expect("example")
        .to_rgb8()
}

/// A JPEG whose stored pixels are rotated 90° counter-clockwise, with EXIF orientation 6
/// telling viewers to rotate them back: it must scan like the upright image.
fn exif_rotated_jpeg(upright: &image::RgbImage) -> Vec<u8> {
    let stored = image::imageops::rotate270(upright);
    let exif = facade_image::fixtures::exif_orientation(6);
    encode_jpeg(&stored, false, Some(&exif))
}

/// `pixels` as a JPEG (quality 92), baseline or progressive, with an APP1 segment if given.
fn encode_jpeg(pixels: &image::RgbImage, progressive: bool, app1: Option<&[u8]>) -> Vec<u8> {
    let mut out = Vec::new();
    let mut encoder = jpeg_encoder::Encoder::new(&mut out, 92);
    encoder.set_progressive(progressive);
    if let Some(data) = app1 {
        encoder.add_app_segment(1, data).unwrap();
    }
    encoder
        .encode(
            pixels.as_raw(),
            pixels.width() as u16,
            pixels.height() as u16,
            jpeg_encoder::ColorType::Rgb,
        )
        .unwrap();
    out
}

fn find<'a>(recs: &'a [Value], suffix: &str) -> &'a Value {
    let matches: Vec<&Value> = recs
        .iter()
        .filter(|r| r["path"].as_str().unwrap().ends_with(suffix))
        .collect();
    assert_eq!(matches.len(), 1, "{suffix} reported exactly once");
    matches[0]
}

#[test]
fn scans_the_bundled_examples() {
    let out = scan(&[examples().to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let recs = records(&out);
    assert_eq!(recs.len(), 3, "three images; LICENSES.md skipped");
    let astronaut = find(&recs, "astronaut.png");
    assert_eq!(astronaut["status"], "ok");
    assert_eq!(astronaut["width"], 512);
    assert_eq!(astronaut["height"], 512);
    let face = &astronaut["faces"][0];
    assert!(face["confidence"].as_f64().unwrap() > 0.99);
    let lm = |i: usize, k: usize| face["landmarks"][i][k].as_f64().unwrap();
    // Eyes level and left of right, nose below the eyes, mouth below the nose.
    assert!(lm(0, 0) < lm(1, 0) && (lm(0, 1) - lm(1, 1)).abs() < 10.0);
    assert!(lm(2, 1) > lm(0, 1) && lm(3, 1) > lm(2, 1));
    // The NASA portrait is a photograph: scored, judged real, with every detector's evidence
    // (the built-in model's coarse branch included).
    assert_eq!(astronaut["verdict"], "real");
    let score = astronaut["score"].as_f64().unwrap();
    assert!((0.0..0.5).contains(&score), "{score}");
    assert_eq!(face["score"], astronaut["score"]);
    for detector in ["geometry", "embedding", "classifier", "coarse"] {
        assert!(face["evidence"][detector]["contribution"].is_number());
    }
    let hubble = find(&recs, "hubble_deep_field.jpg");
    assert_eq!(hubble["status"], "no_face");
    assert!(hubble.get("score").is_none() && hubble.get("verdict").is_none());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("scanned 3 images: 2 with faces, 1 no face, 0 errors"),
        "{stderr}"
    );
    assert!(stderr.contains("1 non-image files skipped"), "{stderr}");
}

#[test]
fn every_bad_input_is_reported_once_and_the_batch_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let jpeg = std::fs::read(examples().join("astronaut-400.jpg")).unwrap();
    let mut corrupt = jpeg.clone();
    let mid = corrupt.len() / 2;
    corrupt[mid..].iter_mut().for_each(|b| *b = !*b);
    let files: Vec<(&str, Vec<u8>)> = vec![
        ("a-empty.jpg", Vec::new()),
        ("b-truncated.jpg", jpeg[..jpeg.len() / 3].to_vec()),
        ("c-text-named.jpg", b"this is a text file".to_vec()),
        (
            "d-png-named.jpg",
            std::fs::read(examples().join("astronaut.png")).unwrap(),
        ),
        (
            "e-bomb.png",
            facade_image::fixtures::png_claiming(50_000, 50_000),
        ),
        ("f-rotated.jpg", exif_rotated_jpeg(&astronaut_rgb())),
        ("g-good.jpg", jpeg.clone()),
        ("h-corrupt.jpg", corrupt),
        ("notes.txt", b"skipped, not an image".to_vec()),
    ];
    for (name, bytes) in &files {
        std::fs::write(d.join(name), bytes).unwrap();
    }
    let missing = d.join("missing.jpg");
    let out = scan(&[d.to_str().unwrap(), missing.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "errors give exit code 1");
    let recs = records(&out);
    assert_eq!(
        recs.len(),
        9,
        "8 files in the directory less notes.txt, plus the missing path"
    );
    assert_eq!(find(&recs, "a-empty.jpg")["error"], "empty file");
    let text = find(&recs, "c-text-named.jpg");
    assert_eq!(text["status"], "error");
    assert!(text["error"].as_str().unwrap().contains("not an image"));
    assert_eq!(
        find(&recs, "d-png-named.jpg")["status"],
        "ok",
        "content, not name, decides"
    );
    assert!(find(&recs, "e-bomb.png")["error"]
        .as_str()
        .unwrap()
        .contains("too large"));
    assert_eq!(find(&recs, "missing.jpg")["status"], "error");
    // Truncated and corrupt JPEGs: an error, or (zune-jpeg fills missing scans with grey) a
    // decoded image; either way exactly one record and no crash.
    for name in ["b-truncated.jpg", "h-corrupt.jpg"] {
        let status = find(&recs, name)["status"].as_str().unwrap().to_string();
        assert!(["error", "no_face", "ok"].contains(&status.as_str()));
    }
    // The EXIF-rotated copy scans like the upright image.
    let (good, rotated) = (find(&recs, "g-good.jpg"), find(&recs, "f-rotated.jpg"));
    assert_eq!(rotated["width"], good["width"]);
    assert_eq!(rotated["status"], "ok");
    for k in 0..5 {
        for c in 0..2 {
            let a = good["faces"][0]["landmarks"][k][c].as_f64().unwrap();
            let b = rotated["faces"][0]["landmarks"][k][c].as_f64().unwrap();
            assert!((a - b).abs() < 3.0, "landmark {k}: {a} vs {b}");
        }
    }
    // Records come in input order (sorted directory walk, then the second argument).
    let paths: Vec<&str> = recs.iter().map(|r| r["path"].as_str().unwrap()).collect();
    assert!(paths.windows(2).take(7).all(|w| w[0] < w[1]), "{paths:?}");
    assert!(paths[8].ends_with("missing.jpg"));
}

#[test]
fn reads_paths_from_stdin_and_writes_csv_to_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let csv_path = dir.path().join("out.csv");
    let mut child = facade()
        .args(["scan", "--format", "csv", "--output"])
        .arg(&csv_path)
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let list = format!(
        "{}\n{}\n",
        examples().join("astronaut-400.jpg").display(),
        examples().join("hubble_deep_field.jpg").display()
    );
    child
        .stdin
        .take()
        .unwrap()
        .write_all(list.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let mut reader = csv::Reader::from_path(&csv_path).unwrap();
    assert_eq!(&reader.headers().unwrap()[0], "path");
    let rows: Vec<csv::StringRecord> = reader.records().map(|r| r.unwrap()).collect();
    assert_eq!(rows.len(), 2);
    assert_eq!(&rows[0][1], "ok");
    assert_eq!(&rows[1][1], "no_face");
}

#[test]
fn table_format_is_readable() {
    let image = examples().join("astronaut-400.jpg");
    let out = scan(&["--format", "table", image.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("STATUS"));
    assert!(text.contains("ok") && text.contains("400x400"));
}

#[test]
fn bad_arguments_are_usage_errors() {
    let out = scan(&["--min-face", "3", "x.jpg"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("fraction"));
}

/// A file cut short still decodes (the codec fills the missing rows), so it is scanned, but
/// its record, the CSV row and the summary say it is truncated; the whole file says nothing.
#[test]
fn truncated_files_are_scanned_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let whole = std::fs::read(examples().join("astronaut-400.jpg")).unwrap();
    let rgb = astronaut_rgb();
    let progressive = encode_jpeg(&rgb, true, None);
    let mut png = Vec::new();
    image::DynamicImage::ImageRgb8(rgb)
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .unwrap();
    let files = [
        ("whole.jpg", whole.clone()),
        ("third.jpg", whole[..whole.len() / 3].to_vec()),
        (
            "tenth-progressive.jpg",
            progressive[..progressive.len() / 10].to_vec(),
        ),
        ("no-end.png", png[..png.len() - 12].to_vec()),
    ];
    for (name, bytes) in &files {
        std::fs::write(dir.path().join(name), bytes).unwrap();
    }
    let out = scan(&["--faces-only", dir.path().to_str().unwrap()]);
    let recs = records(&out);
    assert_eq!(recs.len(), 4, "{recs:?}");
    assert!(find(&recs, "whole.jpg").get("warnings").is_none());
    // JPEG decoders fill what is missing: scanned, with the warning.
    for name in ["third.jpg", "tenth-progressive.jpg"] {
        let r = find(&recs, name);
        assert_ne!(r["status"], "error", "{r}");
        let warning = r["warnings"][0].as_str().unwrap_or("");
        assert!(warning.starts_with("truncated: "), "{name}: {r}");
    }
    // The PNG decoder refuses a stream that stops early: an error that says so.
    let png = find(&recs, "no-end.png");
    assert_eq!(png["status"], "error", "{png}");
    assert!(
        png["error"].as_str().unwrap().contains("truncated"),
        "{png}"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("2 with warnings"), "{stderr}");

    let csv_out = scan(&[
        "--faces-only",
        "--format",
        "csv",
        dir.path().to_str().unwrap(),
    ]);
    let mut reader = csv::Reader::from_reader(csv_out.stdout.as_slice());
    let column = reader
        .headers()
        .unwrap()
        .iter()
        .position(|h| h == "warnings")
        .expect("warnings column");
    let warned = reader
        .records()
        .filter(|r| r.as_ref().unwrap()[column].starts_with("truncated: "))
        .count();
    assert_eq!(warned, 2);
}

/// What a file declares about its origin reaches the record, the CSV, the table and the
/// summary: a declaration of generation sets the verdict (`verdict_source: provenance`, also
/// without a face) and leaves the score alone; a camera declaration changes nothing; a file
/// that says nothing has no `provenance` field.
#[test]
fn files_that_declare_themselves_generated_are_reported_so() {
    use facade_image::fixtures::{
        jpeg_with_xmp, png_text, png_with_chunks, xmp_digital_source_type,
    };
    let dir = tempfile::tempdir().unwrap();
    let face = encode_jpeg(&astronaut_rgb(), false, None);
    let declared = jpeg_with_xmp(&face, &xmp_digital_source_type("trainedAlgorithmicMedia"));
    let captured = jpeg_with_xmp(&face, &xmp_digital_source_type("digitalCapture"));
    let mut faceless = Vec::new();
    image::RgbImage::from_pixel(96, 64, image::Rgb([40, 90, 160]))
        .write_to(
            &mut std::io::Cursor::new(&mut faceless),
            image::ImageFormat::Png,
        )
        .unwrap();
    let parameters =
        "a forest\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1, Model: dreamshaper_8";
    let generated_landscape = png_with_chunks(&faceless, &[png_text("parameters", parameters)]);
    for (name, bytes) in [
        ("plain.jpg", &face),
        ("declared.jpg", &declared),
        ("captured.jpg", &captured),
        ("landscape.png", &generated_landscape),
    ] {
        std::fs::write(dir.path().join(name), bytes).unwrap();
    }
    let out = scan(&[dir.path().to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let recs = records(&out);
    let plain = find(&recs, "plain.jpg");
    assert!(plain.get("provenance").is_none(), "{plain}");
    assert_eq!(plain["verdict_source"], "detectors");

    let declared = find(&recs, "declared.jpg");
    assert_eq!(declared["verdict"], "ai");
    assert_eq!(declared["verdict_source"], "provenance");
    assert_eq!(declared["provenance"]["source"], "xmp");
    assert_eq!(declared["provenance"]["ai_generated"], true);
    assert_eq!(declared["provenance"]["signature"], Value::Null);
    // The detectors' score is theirs alone: the same pixels, the same score.
    assert_eq!(declared["score"], plain["score"]);

    let captured = find(&recs, "captured.jpg");
    assert_eq!(captured["provenance"]["ai_generated"], false);
    assert_eq!(captured["verdict"], plain["verdict"]);
    assert_eq!(captured["verdict_source"], "detectors");

    let landscape = find(&recs, "landscape.png");
    assert_eq!(landscape["status"], "no_face");
    assert_eq!(landscape["verdict"], "ai");
    assert_eq!(landscape["verdict_source"], "provenance");
    assert_eq!(
        landscape["provenance"]["generator"],
        "AUTOMATIC1111 (dreamshaper_8)"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("2 declared AI-generated by the file itself"),
        "{stderr}"
    );

    let csv_out = scan(&["--format", "csv", dir.path().to_str().unwrap()]);
    let mut reader = csv::Reader::from_reader(csv_out.stdout.as_slice());
    let headers = reader.headers().unwrap().clone();
    let column = |name: &str| headers.iter().position(|h| h == name).unwrap();
    let rows: Vec<csv::StringRecord> = reader.records().map(|r| r.unwrap()).collect();
    let row = rows
        .iter()
        .find(|r| r[0].ends_with("landscape.png"))
        .unwrap();
    assert_eq!(&row[column("provenance_source")], "png-text");
    assert_eq!(
        &row[column("provenance_generator")],
        "AUTOMATIC1111 (dreamshaper_8)"
    );
    assert_eq!(&row[column("provenance_ai")], "true");
    assert_eq!(&row[column("verdict_source")], "provenance");
    let plain_row = rows.iter().find(|r| r[0].ends_with("plain.jpg")).unwrap();
    assert_eq!(&plain_row[column("provenance_ai")], "");

    let table = scan(&["--format", "table", dir.path().to_str().unwrap()]);
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(
        text.contains(
            "declared by the file: AI-generated (png-text: AUTOMATIC1111 (dreamshaper_8))"
        ),
        "{text}"
    );
}
