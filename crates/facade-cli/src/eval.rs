//! `facade eval`: ROC figures of the detectors on a labelled manifest, per source, beside the
//! GANEyeDistance peer, on images the model was not trained on.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use facade_detect::evaluation::{
    evaluate, Condition, ConditionReport, EvalConfig, EvalReport, Pooled,
};

use crate::model_args::ModelArgs;

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum ConditionArg {
    Original,
    Small,
    Both,
}

#[derive(clap::Args)]
pub struct EvalArgs {
    /// Labelled manifest (`path,label,source,...`; paths relative to its folder).
    #[arg(long)]
    manifest: PathBuf,
    #[command(flatten)]
    model: ModelArgs,
    /// Which condition: the images as they are, resized to ≤200 px at JPEG quality 80, or both.
    #[arg(long, value_enum, default_value_t = ConditionArg::Both)]
    condition: ConditionArg,
    /// Also report on images used in training (their figures are not results).
    #[arg(long)]
    allow_train_overlap: bool,
    /// GANEyeDistance reference (JSON Lines with `path` and `gan_eye_distance`)
    /// [default: reference-mtcnn.jsonl beside the manifest, if present].
    #[arg(long, value_name = "FILE")]
    peer_reference: Option<PathBuf>,
    /// Score at most N held-out images of each source, spread evenly over the manifest (a
    /// quicker, noisier run; the report says how many were scored).
    #[arg(long, value_name = "N")]
    max_per_source: Option<usize>,
    /// Also write every scored image's scores to this CSV (condition, path, source,
    /// generator, label, facade score, peer eye distance), to group the figures other ways.
    #[arg(long, value_name = "FILE")]
    scores: Option<PathBuf>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    /// Worker threads [default: all cores].
    #[arg(long, short = 'j')]
    threads: Option<usize>,
}

pub fn run(args: EvalArgs) -> anyhow::Result<ExitCode> {
    let detectors = args.model.load()?;
    let peer_reference = args.peer_reference.clone().or_else(|| {
        let beside = args.manifest.parent()?.join("reference-mtcnn.jsonl");
        beside.is_file().then_some(beside)
    });
    let config = EvalConfig {
        manifest: args.manifest.clone(),
        conditions: match args.condition {
            ConditionArg::Original => vec![Condition::Original],
            ConditionArg::Small => vec![Condition::Small200Jpeg80],
            ConditionArg::Both => vec![Condition::Original, Condition::Small200Jpeg80],
        },
        allow_train_overlap: args.allow_train_overlap,
        fpr: args.model.fpr,
        peer_reference,
        max_per_source: args.max_per_source,
        threads: args
            .threads
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())),
    };
    let report = evaluate(&detectors, &config).context("evaluating")?;
    if let Some(path) = &args.scores {
        write_scores(path, &report).with_context(|| format!("writing {}", path.display()))?;
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", render(&report));
    }
    Ok(ExitCode::SUCCESS)
}

/// One row per scored image and condition; empty cells where there is no face or value.
fn write_scores(path: &std::path::Path, report: &EvalReport) -> anyhow::Result<()> {
    let mut writer = csv::Writer::from_path(path)?;
    writer.write_record([
        "condition",
        "path",
        "source",
        "generator",
        "label",
        "score",
        "peer_eye_distance",
        "failed",
    ])?;
    let cell = |v: Option<f64>| v.map_or(String::new(), |v| format!("{v:.6}"));
    for condition in &report.conditions {
        let name = match condition.condition {
            Condition::Original => "original",
            Condition::Small200Jpeg80 => "small",
        };
        for image in &condition.images_scored {
            writer.write_record([
                name,
                &image.name,
                &image.source,
                &image.generator,
                if image.fake { "fake" } else { "real" },
                &cell(image.facade),
                &cell(image.peer_eye_distance),
                if image.failed { "true" } else { "false" },
            ])?;
        }
    }
    writer.flush()?;
    Ok(())
}

fn pct(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{:.1}%", 100.0 * v))
}

fn auc(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{v:.4}"))
}

fn render(report: &EvalReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{}: {} images, {} left out as used in training, {} unreadable",
        report.manifest,
        report.images_in_manifest,
        report.excluded_as_training,
        report.unreadable.len()
    );
    if let Some(n) = report.sampled_per_source {
        let _ = writeln!(out, "sample: at most {n} images of each source scored");
    }
    for (name, reason) in &report.unreadable {
        let _ = writeln!(out, "  unreadable: {name}: {reason}");
    }
    let _ = writeln!(out, "peer: {}", report.peer);
    for c in &report.conditions {
        render_condition(&mut out, c);
    }
    out
}

fn pooled_line(out: &mut String, name: &str, facade: &Pooled, peer: &Pooled) {
    let _ = writeln!(
        out,
        "  {name:<34} facade AUC {} TPR@1% {} TPR@0.1% {}   peer AUC {} TPR@1% {} TPR@0.1% {}",
        auc(facade.auc),
        pct(facade.tpr_at_fpr_1pct),
        pct(facade.tpr_at_fpr_01pct),
        auc(peer.auc),
        pct(peer.tpr_at_fpr_1pct),
        pct(peer.tpr_at_fpr_01pct)
    );
}

fn render_condition(out: &mut String, c: &ConditionReport) {
    let _ = writeln!(
        out,
        "\n== {} ({} images, {} failed to decode)",
        c.description, c.images, c.failed
    );
    pooled_line(out, "all fakes vs all reals", &c.facade, &c.peer);
    if let Some((name, facade, peer)) = &c.without_largest_real_source {
        pooled_line(
            out,
            &format!("all fakes vs reals except {name}"),
            facade,
            peer,
        );
    }
    if c.faces_scored > 0 {
        let _ = writeln!(
            out,
            "  mirror view read for {} of {} faces ({}); the others were scored on the crop alone (far from the operating points at FPR 1%, 0.1% and --fpr)",
            c.faces_mirror_read,
            c.faces_scored,
            pct(Some(c.faces_mirror_read as f64 / c.faces_scored as f64))
        );
    }
    let op = &c.operating_point;
    let _ = writeln!(
        out,
        "  operating point (model threshold {:.4} for FPR {}): FPR {} TPR {}",
        op.threshold,
        op.target_fpr,
        pct(op.fpr),
        pct(op.tpr)
    );
    let _ = writeln!(
        out,
        "  {:<16} {:<5} {:>5} {:>7} | {:>7} {:>8} {:>8} {:>7} {:>9} | {:>7} {:>8} {:>8} {:>7}",
        "source",
        "label",
        "n",
        "no face",
        "AUC",
        "@FPR1%",
        "@FPR.1%",
        "flagged",
        "op.point",
        "peerAUC",
        "@FPR1%",
        "@FPR.1%",
        "flagged"
    );
    for s in &c.sources {
        let _ = writeln!(
            out,
            "  {:<16} {:<5} {:>5} {:>7} | {:>7} {:>8} {:>8} {:>7} {:>9} | {:>7} {:>8} {:>8} {:>7}",
            s.source,
            s.label,
            s.facade.images,
            s.facade.no_face,
            auc(s.facade.auc),
            pct(s.facade.rate_at_fpr_1pct),
            pct(s.facade.rate_at_fpr_01pct),
            s.facade.flagged_at_fpr_1pct,
            pct(s.operating_point_rate),
            auc(s.peer.auc),
            pct(s.peer.rate_at_fpr_1pct),
            pct(s.peer.rate_at_fpr_01pct),
            s.peer.flagged_at_fpr_1pct,
        );
    }
    let _ = writeln!(
        out,
        "  (fakes: TPR at thresholds set on all reals of this manifest; reals: FPR there; op.point: rate flagged at the model's operating point)"
    );
}
