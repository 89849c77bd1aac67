//! `facade report` end to end: a network of accounts wearing StyleGAN faces (from the shared
//! set) and one of real portraits, found by `facade networks --images`, then reported.

mod common;

use common::{facade, networks_on_posts_with_images, read_json, report_on_networks, run_ok};
use std::path::{Path, PathBuf};

/// Six accounts per group post the same texts within seconds; each wears its own picture.
fn export(dir: &Path, groups: &[(&str, Vec<PathBuf>)]) -> (PathBuf, PathBuf) {
    let images = dir.join("images");
    std::fs::create_dir_all(&images).unwrap();
    let mut lines = String::new();
    let mut id = 0;
    for (g, (name, pictures)) in groups.iter().enumerate() {
        for (a, picture) in pictures.iter().enumerate() {
            let account = format!("{name}{a}");
            std::fs::copy(picture, images.join(format!("{account}.jpg"))).unwrap();
            for k in 0..6 {
                let time = 1_600_000_000 + g * 1_000_000 + k * 3_600 + a;
                lines.push_str(&format!(
                    "{{\"id\": \"p{id}\", \"account\": \"{account}\", \"time\": {time}, \"text\": \"{name} slogan number {k} for everyone\"}}\n"
                ));
                id += 1;
            }
        }
    }
    let posts = dir.join("posts.jsonl");
    std::fs::write(&posts, lines).unwrap();
    (posts, images)
}

#[test]
fn a_report_shows_the_composite_with_stylegan_eyes_lined_up() {
    let Some(faces) = facade_image::fixtures::shared_faces_or_skip(
        "a_report_shows_the_composite_with_stylegan_eyes_lined_up",
    ) else {
        return;
    };
    let pick = |folder: &str, n: usize| -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(faces.join(folder))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        files.truncate(n);
        files
    };
    let dir = tempfile::tempdir().unwrap();
    let groups = [
        ("gan", pick("fake/tpdne-1024", 6)),
        ("real", pick("real/web-photos", 6)),
    ];
    let (posts, images) = export(dir.path(), &groups);
    let out = dir.path().join("out");
    run_ok(&mut networks_on_posts_with_images(&posts, &images, &out));
    let report = dir.path().join("report");
    let stderr = report_on_networks(&out.join("networks.json"), &report);
    assert!(stderr.contains("2 sections, 12 pictures"), "{stderr}");
    let json = read_json(&report.join("report.json"));
    let networks = json["networks"].as_array().unwrap();
    let spread_of = |prefix: &str| -> f64 {
        let network = networks
            .iter()
            .find(|n| n["members"][0]["id"].as_str().unwrap().starts_with(prefix))
            .unwrap_or_else(|| panic!("a {prefix} network in {json}"));
        assert_eq!(network["composite"]["pictures"], 6);
        assert_eq!(network["composite"]["faces"], 6);
        assert_eq!(
            network["activity"]["counts"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c.as_u64().unwrap())
                .sum::<u64>(),
            36
        );
        network["composite"]["eye_spread_px"].as_f64().unwrap()
    };
    let (gan, real) = (spread_of("gan"), spread_of("real"));
    eprintln!("eye spread: StyleGAN {gan:.2} px, real {real:.2} px");
    // StyleGAN's alignment puts the eyes within a few pixels of each other; real photos
    // scatter them.
    assert!(gan < 4.0 && real > 3.0 * gan, "StyleGAN {gan}, real {real}");

    let html = std::fs::read_to_string(report.join("index.html")).unwrap();
    assert!(html.contains("Composite of 6 profile pictures"));
    assert_eq!(html.matches("class=\"thumb\"").count(), 12);
    assert!(!html.contains("src=\"http") && !html.contains("href=\"http"));
}

#[test]
fn an_image_report_covers_every_input() {
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("broken.jpg");
    std::fs::write(&broken, b"\xff\xd8\xff not really").unwrap();
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let report = dir.path().join("report");
    let stderr = run_ok(
        facade()
            .arg("report")
            .arg(examples.join("astronaut.png"))
            .arg(&broken)
            .arg("--out")
            .arg(&report),
    );
    assert!(stderr.contains("2 sections, 1 pictures"), "{stderr}");
    let json = read_json(&report.join("report.json"));
    let images = json["images"].as_array().unwrap();
    assert_eq!(images.len(), 2);
    assert_eq!(images[0]["status"], "ok");
    assert_eq!(images[1]["status"], "error");
    let html = std::fs::read_to_string(report.join("index.html")).unwrap();
    assert!(html.contains("broken.jpg"));
    assert!(html.contains("classifier") && html.contains("<circle"));
}
