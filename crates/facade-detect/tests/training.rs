//! Training end to end on a small slice of the shared faces: it runs, it is deterministic, and
//! what it writes loads back and scores faces. (The full run is `facade train`; its figures
//! come from `facade eval`, see the README.)
//!
//! Needs the shared data set beside the project (or `FACADE_SHARED_DIR`).

use std::path::PathBuf;

use facade_detect::dataset::shared_faces_dir;
use facade_detect::lite::Variant;
use facade_detect::training::{add_mirror_cascade, train, TrainConfig};
use facade_detect::Detectors;

fn shared_manifest() -> PathBuf {
    shared_faces_dir().join("manifest.csv")
}

/// Images of each source in the small runs.
const PER_SOURCE: usize = 24;

fn small_config() -> TrainConfig {
    let mut config = TrainConfig::new(shared_manifest());
    config.max_per_source = Some(PER_SOURCE);
    config.epochs = 2;
    config.samples_per_epoch = 256;
    config.variants = 1;
    config.threads = 2;
    // The small network, which needs no downloaded weights; Lite0 has its own test below.
    config.lite_input_side = None;
    config.crop_side = facade_detect::align::CROP_SIDE;
    config
}

#[test]
fn training_is_deterministic_and_its_model_loads() {
    let Some(_faces) = facade_image::fixtures::shared_faces_or_skip(
        "training_is_deterministic_and_its_model_loads",
    ) else {
        return;
    };
    let quiet = |_: &str| {};
    let dirs = [
        tempfile::tempdir().expect("dir"),
        tempfile::tempdir().expect("dir"),
    ];
    for dir in &dirs {
        let trained = train(&small_config(), &quiet).expect("train");
        trained
            .detectors
            .save(dir.path(), &trained.classifier_weights)
            .expect("save");
    }
    for file in ["detectors.safetensors", "training-set.sha256"] {
        let a = std::fs::read(dirs[0].path().join(file)).expect("read");
        let b = std::fs::read(dirs[1].path().join(file)).expect("read");
        assert!(a == b, "{file} differs between two runs with the same seed");
    }
    // The JSON differs only in the recorded wall time.
    let strip = |dir: &tempfile::TempDir| {
        let text = std::fs::read_to_string(dir.path().join("detectors.json")).expect("read");
        let mut v: serde_json::Value = serde_json::from_str(&text).expect("json");
        v["training"]["seconds"] = serde_json::Value::Null;
        v
    };
    assert_eq!(strip(&dirs[0]), strip(&dirs[1]));

    let model = Detectors::load(dirs[0].path()).expect("load");
    assert_eq!(
        model.classifier_members(),
        facade_detect::training::DEFAULT_CLASSIFIERS
    );
    // PER_SOURCE images of each source, 65% of them (train + calibration folds) recorded.
    let sources: std::collections::HashSet<String> =
        facade_detect::dataset::read_manifest(&shared_manifest())
            .expect("manifest")
            .into_iter()
            .map(|e| e.source)
            .collect();
    let selected = (PER_SOURCE * sources.len()) as f64;
    let n = model.training_set().len() as f64;
    assert!(
        (0.5 * selected..0.8 * selected).contains(&n),
        "{n} training hashes of {selected} images"
    );
    let t1 = model.threshold(0.01);
    assert!((0.0..=1.0).contains(&t1) && model.threshold(0.001) >= t1);

    // Training measures the mirror cascade; `facade cascade` measures the same on the saved
    // model (the same calibration faces, extracted afresh, and the same networks).
    let cascade = model
        .parameters()
        .mirror_cascade
        .clone()
        .expect("training measures the mirror cascade");
    assert!(cascade.margin > 0.0 && (0.0..=1.0).contains(&cascade.share_read));
    let measured = add_mirror_cascade(dirs[0].path(), None, 2, &quiet).expect("cascade");
    let again = measured.detectors.parameters();
    assert_eq!(again.mirror_cascade.as_ref(), Some(&cascade));
    assert_eq!(
        again.training["mirror_cascade_added_by"]["largest_calibration_score_drift"],
        0.0
    );
    assert_eq!(again.fusion, model.parameters().fusion);

    // A model whose classifier saw other crop sizes is refused, not run on the wrong input.
    let mut other = strip(&dirs[1]);
    other["training"]["crop_side"] = serde_json::json!(32);
    let json = serde_json::to_string(&other).expect("json");
    std::fs::write(dirs[1].path().join("detectors.json"), json).expect("write");
    let refused = Detectors::load(dirs[1].path())
        .map(|_| ())
        .expect_err("refused");
    assert!(refused.to_string().contains("32 px"), "{refused}");

    // So is one whose crop zoom no crop is taken at; an older record without one reads the
    // inner face, as every model before the zoom was recorded did.
    other["training"]["crop_side"] = serde_json::json!(facade_detect::align::CROP_SIDE);
    other["training"]["crop_zoom"] = serde_json::json!(9.0);
    let json = serde_json::to_string(&other).expect("json");
    std::fs::write(dirs[1].path().join("detectors.json"), json).expect("write");
    let refused = Detectors::load(dirs[1].path())
        .map(|_| ())
        .expect_err("refused");
    assert!(refused.to_string().contains("crop_zoom 9"), "{refused}");
    other["training"]
        .as_object_mut()
        .expect("record")
        .remove("crop_zoom");
    let json = serde_json::to_string(&other).expect("json");
    std::fs::write(dirs[1].path().join("detectors.json"), json).expect("write");
    let loaded = Detectors::load(dirs[1].path()).expect("load");
    assert_eq!(loaded.main_branch().crop.zoom, facade_detect::align::ZOOM);

    // A record naming more classifiers than the weights hold is refused too.
    let stored = facade_detect::training::DEFAULT_CLASSIFIERS;
    let mut more = strip(&dirs[0]);
    more["training"]["classifier_members"] = serde_json::json!(stored + 1);
    let json = serde_json::to_string(&more).expect("json");
    std::fs::write(dirs[0].path().join("detectors.json"), json).expect("write");
    let refused = Detectors::load(dirs[0].path())
        .map(|_| ())
        .expect_err("refused");
    let missing = format!("classifier{stored}.");
    assert!(refused.to_string().contains(&missing), "{refused}");
}

#[test]
fn held_out_sources_are_never_opened() {
    let Some(_faces) =
        facade_image::fixtures::shared_faces_or_skip("held_out_sources_are_never_opened")
    else {
        return;
    };
    let mut config = small_config();
    config.holdout_sources = vec!["sdfd".into(), "ffhq".into()];
    let trained = train(&config, &|_| {}).expect("train");
    let record = &trained.detectors.parameters().training["images_per_fold_and_source"];
    assert!(
        record.get("sdfd").is_none() && record.get("ffhq").is_none(),
        "{record}"
    );
    assert!(record.get("congress").is_some());
}

/// EfficientNet-Lite0 fine-tuned from its ImageNet weights: deterministic for a seed, the
/// model records its network and loads back as it, and the pretrained weights were used (the
/// fine-tuned network is close to them, not to a fresh initialisation).
#[test]
fn lite0_fine_tuning_is_deterministic_and_its_model_loads() {
    // A wider crop than the default inner face: the model must record it and read it back.
    check_fine_tuning(
        "lite0_fine_tuning_is_deterministic_and_its_model_loads",
        Variant::Lite0,
        (96, 0.8),
        2,
    );
}

/// The larger backbones the same way, once each: a model of either records its variant, loads
/// back as it (21 blocks, Lite2's wider stages) and started from that variant's weights.
#[test]
fn lite1_and_lite2_fine_tune_and_their_models_load() {
    for variant in [Variant::Lite1, Variant::Lite2] {
        check_fine_tuning(
            "lite1_and_lite2_fine_tune_and_their_models_load",
            variant,
            (64, facade_detect::align::ZOOM),
            1,
        );
    }
}

/// Fine-tunes `variant` for one short pass on `(side, zoom)` crops, `runs` times from the same
/// seed, and checks that the runs wrote the same weights, that the model records and loads the
/// network and crop, and that it started from the variant's ImageNet weights.
fn check_fine_tuning(test: &str, variant: Variant, (side, zoom): (usize, f32), runs: usize) {
    let Some(_faces) = facade_image::fixtures::shared_faces_or_skip(test) else {
        return;
    };
    let pretrained = facade_detect::lite::default_pretrained_path(variant);
    if !pretrained.is_file() {
        facade_image::fixtures::skip_unless_ci(
            test,
            &format!("no ImageNet weights at {}", pretrained.display()),
            &facade_detect::lite::how_to_get_pretrained(variant),
        );
        return;
    }
    let mut config = small_config();
    config.lite_input_side = Some(side);
    config.lite_variant = variant;
    config.crop_side = side;
    config.crop_zoom = zoom;
    config.classifiers = 1;
    config.epochs = 1;
    config.samples_per_epoch = 128;
    let dirs: Vec<tempfile::TempDir> = (0..runs)
        .map(|_| tempfile::tempdir().expect("dir"))
        .collect();
    for dir in &dirs {
        let trained = train(&config, &|_| {}).expect("train");
        trained
            .detectors
            .save(dir.path(), &trained.classifier_weights)
            .expect("save");
    }
    let weights = |dir: &tempfile::TempDir| {
        std::fs::read(dir.path().join("detectors.safetensors")).expect("read")
    };
    assert!(
        dirs.iter().all(|dir| weights(dir) == weights(&dirs[0])),
        "{variant:?} weights differ between two runs with the same seed"
    );
    let model = Detectors::load(dirs[0].path()).expect("load");
    let training = &model.parameters().training;
    let name = variant.name();
    assert_eq!(training["classifier_backbone"], name);
    assert_eq!(training["lite_input_side"], side);
    assert_eq!(training["crop_side"], side);
    let crop = model.main_branch().crop;
    assert_eq!((crop.side, crop.zoom), (side, zoom));
    assert_eq!(
        training["pretrained"]["file"],
        format!("efficientnet-{name}.safetensors")
    );
    assert_eq!(model.classifier_members(), 1);
    assert!(
        matches!(
            model.main_branch().classifier.members(),
            [facade_detect::classifier::Network::Lite(net)] if net.variant() == variant
        ),
        "{variant:?}: the model loads another network"
    );

    // One epoch of 128 faces at a small learning rate moves the stem only a little from
    // ImageNet's weights.
    let tuned = candle_core::safetensors::load(
        dirs[0].path().join("detectors.safetensors"),
        &candle_core::Device::Cpu,
    )
    .expect("tuned");
    let start =
        candle_core::safetensors::load(&pretrained, &candle_core::Device::Cpu).expect("start");
    let a: Vec<f32> = tuned[&format!("classifier.{name}.stem.weight")]
        .flatten_all()
        .and_then(|t| t.to_vec1())
        .expect("tuned stem");
    let b: Vec<f32> = start[&format!("{name}.stem.weight")]
        .flatten_all()
        .and_then(|t| t.to_vec1())
        .expect("pretrained stem");
    let moved = a
        .iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max);
    let scale = b.iter().map(|v| v.abs()).fold(0.0, f32::max);
    assert!(
        moved > 0.0 && moved < 0.1 * scale,
        "{variant:?}: stem moved by {moved} (weights up to {scale})"
    );
}
