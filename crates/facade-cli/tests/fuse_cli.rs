//! End-to-end: `facade fuse` adds a second model's classifier to a model as its coarse branch.
//! Two small models are trained by the binary on a slice of the shared faces, fused, and the
//! fused model scans a held-out face with four detectors' evidence; models whose folds differ,
//! and a model fused already, are refused. `facade cascade` measures the fused model's mirror
//! cascade again as `facade fuse` did, and refuses a manifest whose calibration fold differs.
//!
//! Needs the shared data set beside the project (or `FACADE_SHARED_DIR`).

use std::path::Path;
use std::process::{Command, Output};

use facade_detect::dataset::{fold_of, read_manifest, sha256_hex, shared_faces_dir, Fold};
use serde_json::Value;

fn facade() -> Command {
    Command::new(env!("CARGO_BIN_EXE_facade"))
}

fn run(args: &[&std::ffi::OsStr]) -> Output {
    facade().args(args).output().expect("run facade")
}

fn succeeded(out: &Output) -> bool {
    if !out.status.success() {
        eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    }
    out.status.success()
}

/// A small `facade train` run: the small network (no downloaded weights), a few images of
/// every source, one short pass.
fn train_small(out: &Path, width: &str) -> Output {
    let manifest = shared_faces_dir().join("manifest.csv");
    run(&[
        "train".as_ref(),
        "--manifest".as_ref(),
        manifest.as_os_str(),
        "--out".as_ref(),
        out.as_os_str(),
        "--backbone".as_ref(),
        "small".as_ref(),
        "--classifier-width".as_ref(),
        width.as_ref(),
        "--max-per-source".as_ref(),
        "16".as_ref(),
        "--epochs".as_ref(),
        "1".as_ref(),
        "--samples-per-epoch".as_ref(),
        "128".as_ref(),
        "--variants".as_ref(),
        "1".as_ref(),
    ])
}

fn fuse(model: &Path, coarse: &Path, out: &Path) -> Output {
    run(&[
        "fuse".as_ref(),
        "--model".as_ref(),
        model.as_os_str(),
        "--coarse".as_ref(),
        coarse.as_os_str(),
        "--out".as_ref(),
        out.as_os_str(),
    ])
}

fn record(dir: &Path) -> Value {
    let text = std::fs::read_to_string(dir.join("detectors.json")).expect("detectors.json");
    serde_json::from_str(&text).expect("JSON")
}

fn hashes(dir: &Path) -> std::collections::BTreeSet<String> {
    std::fs::read_to_string(dir.join("training-set.sha256"))
        .expect("training set")
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn a_fused_model_scores_with_its_coarse_branch() {
    let Some(_faces) =
        facade_image::fixtures::shared_faces_or_skip("a_fused_model_scores_with_its_coarse_branch")
    else {
        return;
    };
    let dir = tempfile::tempdir().expect("dir");
    let (base, coarse, fused) = (
        dir.path().join("base"),
        dir.path().join("coarse"),
        dir.path().join("fused"),
    );
    assert!(succeeded(&train_small(&base, "2")));
    assert!(succeeded(&train_small(&coarse, "1")));
    assert!(succeeded(&fuse(&base, &coarse, &fused)));

    let fused_record = record(&fused);
    let training = &fused_record["training"];
    assert_eq!(training["coarse"]["classifier_width"], 1);
    assert_eq!(training["classifier_width"], 2);
    assert_eq!(
        fused_record["fusion"]["weights"].as_array().map(Vec::len),
        Some(4)
    );
    assert!(
        training["calibration_auc"]["coarse"].is_number(),
        "{training}"
    );
    assert!(training["coarse_fused_by"]["calibration_observations"].as_u64() > Some(0));
    let union: std::collections::BTreeSet<String> =
        hashes(&base).union(&hashes(&coarse)).cloned().collect();
    assert_eq!(hashes(&fused), union);

    // A held-out face, scanned with the fused model: four detectors' evidence.
    let entries = read_manifest(&shared_faces_dir().join("manifest.csv")).expect("manifest");
    let held_out = entries
        .iter()
        .filter(|e| e.source == "stylegan1-140k")
        .find(|e| {
            let bytes = std::fs::read(&e.path).expect("image");
            fold_of(&sha256_hex(&bytes)) == Fold::Test
        })
        .expect("a held-out StyleGAN face");
    let out = run(&[
        "scan".as_ref(),
        "--model".as_ref(),
        fused.as_os_str(),
        held_out.path.as_os_str(),
    ]);
    assert!(succeeded(&out));
    let scanned: Value = serde_json::from_slice(&out.stdout).expect("one JSON record");
    let evidence = &scanned["faces"][0]["evidence"];
    for detector in ["geometry", "embedding", "classifier", "coarse"] {
        assert!(
            evidence[detector]["contribution"].is_number(),
            "{detector}: {scanned}"
        );
    }
    let score = scanned["faces"][0]["score"].as_f64().expect("score");
    assert!((0.0..=1.0).contains(&score));

    // `facade cascade` measures the mirror cascade of a model with both branches again: the
    // same faces, the same networks, so the same cascade as `facade fuse` fitted, and no drift.
    let cascaded = dir.path().join("cascaded");
    assert!(succeeded(&run(&[
        "cascade".as_ref(),
        "--model".as_ref(),
        fused.as_os_str(),
        "--out".as_ref(),
        cascaded.as_os_str(),
    ])));
    let cascaded_record = record(&cascaded);
    assert!(fused_record["mirror_cascade"]["margin"].as_f64() > Some(0.0));
    assert_eq!(
        cascaded_record["mirror_cascade"],
        fused_record["mirror_cascade"]
    );
    let added = &cascaded_record["training"]["mirror_cascade_added_by"];
    assert_eq!(added["largest_calibration_score_drift"], 0.0, "{added}");
    assert_eq!(cascaded_record["fusion"], fused_record["fusion"]);
    // Given a manifest whose calibration fold is not the model's, it refuses.
    let one_line = dir.path().join("one.csv");
    std::fs::write(
        &one_line,
        format!(
            "path,label,source,generator\n{},fake,stylegan1-140k,stylegan\n",
            held_out.path.display()
        ),
    )
    .expect("write manifest");
    let refused = run(&[
        "cascade".as_ref(),
        "--model".as_ref(),
        fused.as_os_str(),
        "--out".as_ref(),
        dir.path().join("refused").as_os_str(),
        "--manifest".as_ref(),
        one_line.as_os_str(),
    ]);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("not the fold the model was fitted on"),
        "{stderr}"
    );

    // A record that drops the branch while the fusion still reads four detectors is refused
    // when loaded, not scored with a missing input.
    let mut without_branch = fused_record.clone();
    if let Some(training) = without_branch["training"].as_object_mut() {
        training.remove("coarse");
    }
    let broken = dir.path().join("broken");
    std::fs::create_dir_all(&broken).expect("dir");
    for file in ["detectors.safetensors", "training-set.sha256"] {
        std::fs::copy(fused.join(file), broken.join(file)).expect("copy");
    }
    std::fs::write(
        broken.join("detectors.json"),
        serde_json::to_string(&without_branch).expect("json"),
    )
    .expect("write");
    let refused = run(&[
        "scan".as_ref(),
        "--model".as_ref(),
        broken.as_os_str(),
        held_out.path.as_os_str(),
    ]);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("reads 4 detectors"), "{stderr}");

    // A fused model cannot be fused again, and models whose folds differ are refused.
    let refused = fuse(&fused, &coarse, &dir.path().join("twice"));
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("coarse branch"));
    let mut other_seed = record(&coarse);
    other_seed["training"]["seed"] = 7.into();
    std::fs::write(
        coarse.join("detectors.json"),
        serde_json::to_string(&other_seed).expect("json"),
    )
    .expect("write");
    let refused = fuse(&base, &coarse, &dir.path().join("seeds"));
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("different seed"), "{stderr}");
}
