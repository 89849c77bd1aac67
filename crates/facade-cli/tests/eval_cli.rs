//! End-to-end: `facade eval` and `facade scan` with the built-in detectors, on the shared
//! faces the built-in model never saw (its training hashes are excluded by `facade eval`).
//!
//! Needs the shared data set beside the project (or `FACADE_SHARED_DIR`).

use std::path::PathBuf;
use std::process::Command;

use facade_detect::dataset::{fold_of, read_manifest, sha256_hex, shared_faces_dir, Entry, Fold};
use serde_json::Value;

fn facade() -> Command {
    Command::new(env!("CARGO_BIN_EXE_facade"))
}

fn shared_manifest() -> PathBuf {
    shared_faces_dir().join("manifest.csv")
}

/// Runs `facade eval --json` with these arguments and reads its report.
fn eval_json(args: &[&std::ffi::OsStr]) -> Value {
    let out = facade()
        .args(["eval", "--json"])
        .args(args)
        .output()
        .expect("run facade eval");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON report")
}

/// Up to `n` images of the manifest in this fold (and source, if given).
fn in_fold(fold: Fold, source: Option<&str>, n: usize) -> Vec<Entry> {
    read_manifest(&shared_manifest())
        .expect("manifest")
        .into_iter()
        .filter(|e| source.is_none_or(|s| e.source == s))
        .filter(|e| fold_of(&sha256_hex(&std::fs::read(&e.path).expect("read"))) == fold)
        .take(n)
        .collect()
}

fn source<'a>(condition: &'a Value, name: &str, label: &str) -> &'a Value {
    condition["sources"]
        .as_array()
        .expect("sources")
        .iter()
        .find(|s| s["source"] == name && s["label"] == label)
        .unwrap_or_else(|| panic!("no {label} source {name}"))
}

fn rate(v: &Value) -> f64 {
    v.as_f64().unwrap_or(f64::NAN)
}

/// Held-out images scored per source by the regression guard: an even sample of each source's
/// held-out fold, so the test fits CI's time on the 14,000-image set (the README's figures come
/// from the whole fold).
const GUARD_PER_SOURCE: &str = "100";

/// Held-out figures through the real binary, as regression guards. They sit at what the
/// committed model measures on this sample (README, "Measured") minus a margin, not at the
/// issue's targets: on this sample (1,091 images) the committed model (stop 39: stop 27's
/// EfficientNet-Lite0 on 128 px crops with a residual 64 px Lite0 as its coarse branch) measures
/// pooled AUC 0.976 / 0.969 (original / 200 px), TPR at FPR 1% 76% / 62%, StyleGAN sources AUC
/// 0.971–0.988, Stable Diffusion AUC 0.946 / 0.920, and flags 0% of each real source but FFHQ
/// (its forms 3%) at the pooled 1% threshold. (Stop 27's model without the branch: 0.974 /
/// 0.970, 68% / 62%, 0.968–0.989, 0.938 / 0.922; stop 26's 96 px model: 0.967 / 0.965,
/// 65% / 67%, 0.962–0.987, 0.916 / 0.907; stop 25's 64 px model: 0.965 / 0.962, 54% / 42%,
/// 0.966–0.982, 0.914 / 0.905; the stop-15 small network: 0.920 / 0.918, 34% / 33%,
/// 0.931–0.965, 0.784 / 0.770.)
#[test]
fn held_out_figures_do_not_regress() {
    let Some(_faces) =
        facade_image::fixtures::shared_faces_or_skip("held_out_figures_do_not_regress")
    else {
        return;
    };
    let manifest = shared_manifest();
    let report = eval_json(&[
        "--manifest".as_ref(),
        manifest.as_os_str(),
        "--max-per-source".as_ref(),
        GUARD_PER_SOURCE.as_ref(),
    ]);
    assert!(report["excluded_as_training"].as_u64().unwrap_or(0) > 9000);
    assert_eq!(report["sampled_per_source"], 100);
    let conditions = report["conditions"].as_array().expect("conditions");
    assert_eq!(conditions.len(), 2);
    assert_eq!(conditions[0]["condition"], "original");
    for condition in conditions {
        let facade = &condition["facade"];
        assert!(rate(&facade["auc"]) >= 0.955, "{facade}");
        assert!(rate(&facade["tpr_at_fpr_1pct"]) >= 0.55, "{facade}");
        assert!(
            rate(&facade["auc"]) > rate(&condition["peer"]["auc"]) + 0.1,
            "{condition}"
        );
        for stylegan in [
            "tpdne-junguler",
            "boredhumans",
            "tpdne-128",
            "stylegan1-140k",
        ] {
            let s = source(condition, stylegan, "fake");
            assert!(rate(&s["facade"]["auc"]) >= 0.955, "{stylegan}: {s}");
        }
        let sd = source(condition, "sdfd", "fake");
        assert!(rate(&sd["facade"]["auc"]) >= 0.88, "{sd}");
        // Ahead of GANEyeDistance where it matters most: the generator it cannot see.
        assert!(
            rate(&sd["facade"]["auc"]) > rate(&sd["peer"]["auc"]) + 0.5,
            "{sd}"
        );
        for real in ["congress", "utkface", "celeba-256", "flickr-portraits"] {
            let s = source(condition, real, "real");
            assert!(rate(&s["facade"]["rate_at_fpr_1pct"]) <= 0.02, "{s}");
        }
        for ffhq in ["ffhq-128", "ffhq-256"] {
            let s = source(condition, ffhq, "real");
            assert!(rate(&s["facade"]["rate_at_fpr_1pct"]) <= 0.08, "{s}");
        }
        // The mirror cascade runs: the mirror view is read near the operating points (about a
        // third of the faces on the whole held-out fold), not for every face.
        let count = |field: &str| condition[field].as_u64().expect(field);
        let (read, faces) = (count("faces_mirror_read"), count("faces_scored"));
        assert!(read > 0 && 2 * read < faces, "{read} of {faces}");
    }
}

#[test]
fn eval_refuses_training_images_unless_told() {
    let Some(_faces) =
        facade_image::fixtures::shared_faces_or_skip("eval_refuses_training_images_unless_told")
    else {
        return;
    };
    let train = in_fold(Fold::Train, None, 6);
    let dir = tempfile::tempdir().expect("dir");
    let mut text = String::from("path,label,source,generator\n");
    for e in &train {
        let label = if e.fake { "fake" } else { "real" };
        text.push_str(&format!(
            "{},{label},{},{}\n",
            e.path.display(),
            e.source,
            e.generator
        ));
    }
    let small = dir.path().join("train-only.csv");
    std::fs::write(&small, text).expect("write manifest");
    let run = |extra: &[&str]| -> Value {
        let mut args: Vec<&std::ffi::OsStr> = vec!["--condition".as_ref(), "original".as_ref()];
        args.extend(["--manifest".as_ref(), small.as_os_str()]);
        args.extend(extra.iter().map(std::ffi::OsStr::new));
        eval_json(&args)
    };
    let refused = run(&[]);
    assert_eq!(refused["excluded_as_training"], 6);
    assert_eq!(refused["conditions"][0]["images"], 0);
    let allowed = run(&["--allow-train-overlap"]);
    assert_eq!(allowed["excluded_as_training"], 0);
    assert_eq!(allowed["conditions"][0]["images"], 6);
}

#[test]
fn scan_scores_held_out_fakes_and_reals() {
    let Some(_faces) =
        facade_image::fixtures::shared_faces_or_skip("scan_scores_held_out_fakes_and_reals")
    else {
        return;
    };
    let held_out = |source: &str| -> Vec<PathBuf> {
        in_fold(Fold::Test, Some(source), 10)
            .into_iter()
            .map(|e| e.path)
            .collect()
    };
    let fakes = held_out("tpdne-junguler");
    let reals = held_out("congress");
    let scan = |extra: &[&str]| -> Vec<Value> {
        let out = facade()
            .args(["scan", "--no-progress"])
            .args(extra)
            .args(&fakes)
            .args(&reals)
            .output()
            .expect("run facade scan");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).expect("JSON line"))
            .collect()
    };
    let records = scan(&[]);
    assert_eq!(records.len(), fakes.len() + reals.len());
    // Reading the mirror view of every face changes no verdict here (nor on any of the 4,966
    // held-out images, README): the cascade skips it only far from the operating point.
    let every_view = scan(&["--every-view"]);
    for (cascade, every) in records.iter().zip(&every_view) {
        assert_eq!(cascade["path"], every["path"]);
        assert_eq!(cascade["verdict"], every["verdict"], "{cascade}\n{every}");
    }
    let verdicts = |range: std::ops::Range<usize>, verdict: &str| {
        records[range]
            .iter()
            .filter(|r| r["verdict"] == verdict)
            .count()
    };
    // The operating point (1% of the calibration reals, FFHQ photographs among them) flags
    // about half of the held-out thispersondoesnotexist originals; six of these ten.
    assert!(
        verdicts(0..fakes.len(), "ai") >= 5,
        "StyleGAN fakes flagged"
    );
    // No held-out congress portrait is flagged at the operating point; one of these ten has
    // no face found.
    assert!(
        verdicts(fakes.len()..records.len(), "ai") <= 1,
        "portraits flagged"
    );
    assert!(
        verdicts(fakes.len()..records.len(), "real") >= 8,
        "portraits passed"
    );
    for r in records.iter().filter(|r| r["status"] == "ok") {
        let face = &r["faces"][0];
        let score = face["score"].as_f64().expect("face score");
        assert!((0.0..=1.0).contains(&score));
        for detector in ["geometry", "embedding", "classifier"] {
            assert!(face["evidence"][detector]["value"].is_number(), "{face}");
            assert!(
                face["evidence"][detector]["contribution"].is_number(),
                "{face}"
            );
        }
    }
}
