//! `facade train`: rebuilds the detectors from a labelled manifest and writes a model folder;
//! `facade fuse`: adds a second model's classifier to one as its coarse branch;
//! `facade cascade`: measures where a model's scan may skip the mirror view.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use facade_detect::lite::{InputFilter, Regularisation, Variant};
use facade_detect::training::{add_coarse_branch, add_mirror_cascade, train, TrainConfig, Trained};

#[derive(Clone, Copy, clap::ValueEnum)]
enum Backbone {
    Lite0,
    Lite1,
    Lite2,
    Small,
}

impl Backbone {
    /// The EfficientNet-Lite this names, if it names one.
    fn lite(self) -> Option<Variant> {
        match self {
            Backbone::Lite0 => Some(Variant::Lite0),
            Backbone::Lite1 => Some(Variant::Lite1),
            Backbone::Lite2 => Some(Variant::Lite2),
            Backbone::Small => None,
        }
    }
}

#[derive(clap::Args)]
pub struct TrainArgs {
    /// Labelled manifest (`path,label,source,generator,...`; paths relative to its folder).
    #[arg(long)]
    manifest: PathBuf,
    /// Folder to write the model into (`detectors.safetensors`, `detectors.json`,
    /// `training-set.sha256`).
    #[arg(long)]
    out: PathBuf,
    /// Seed of every random choice (augmentation, initialisation, sampling).
    #[arg(long, default_value_t = 2026)]
    seed: u64,
    /// Passes of the classifier over the training faces.
    #[arg(long, default_value_t = facade_detect::training::DEFAULT_EPOCHS)]
    epochs: usize,
    /// Classifiers trained from different seeds and averaged (the first from --seed itself).
    #[arg(long, default_value_t = facade_detect::training::DEFAULT_CLASSIFIERS as u16,
          value_parser = clap::value_parser!(u16)
              .range(1..=facade_detect::classifier::MAX_MEMBERS as i64))]
    classifiers: u16,
    /// The classifiers' network: EfficientNet-Lite0 (or the larger Lite1, Lite2) fine-tuned
    /// from ImageNet weights, or the small network of earlier models trained from scratch.
    #[arg(long, value_enum, default_value_t = Backbone::Lite0)]
    backbone: Backbone,
    /// Lite only: the side the face crop is resized to before the network.
    #[arg(long, value_name = "N", default_value_t = facade_detect::training::DEFAULT_LITE_INPUT_SIDE as u16,
          value_parser = clap::value_parser!(u16).range(
              facade_detect::lite::MIN_INPUT_SIDE as i64..=facade_detect::lite::MAX_INPUT_SIDE as i64))]
    input_side: u16,
    /// Lite only: show the network the crop itself (plain), or only its high frequencies, the
    /// crop less its 5×5 blur (residual), so that colour, lighting and framing cannot carry
    /// the label.
    #[arg(long, value_name = "plain|residual", default_value = "plain")]
    input_filter: InputFilter,
    /// Side of the aligned face crop, in pixels [default: 128 for a Lite; the small network reads
    /// 64 only]. Larger crops keep the finer detail of large pictures.
    #[arg(long, value_name = "N",
          value_parser = clap::value_parser!(u16).range(
              *facade_detect::align::CROP_SIDES.start() as i64..=*facade_detect::align::CROP_SIDES.end() as i64))]
    crop_side: Option<u16>,
    /// How close the crop is taken, relative to the ArcFace template: 1.3 (the default) holds
    /// the inner face; 0.75 about the whole StyleGAN frame, hair, ears and background included.
    #[arg(long, value_name = "Z", default_value_t = facade_detect::align::ZOOM)]
    crop_zoom: f32,
    /// Lite only: the ImageNet weights it starts from [default: what
    /// scripts/convert_lite_weights.py writes, target/pretrained/efficientnet-liteN.safetensors].
    #[arg(long, value_name = "FILE")]
    pretrained: Option<PathBuf>,
    /// Small network only: every convolution N times as wide as the 75-thousand-weight network
    /// (N² times its multiply-adds).
    #[arg(long, default_value_t = facade_detect::training::DEFAULT_CLASSIFIER_WIDTH as u16,
          value_parser = clap::value_parser!(u16)
              .range(1..=facade_detect::classifier::MAX_WIDTH as i64))]
    classifier_width: u16,
    /// Focal-loss exponent of the classifier's training: faces it already gets right with
    /// confidence weigh (1 - p)^G of their loss (0: plain cross-entropy).
    #[arg(long, value_name = "G", default_value_t = facade_detect::training::DEFAULT_FOCAL_GAMMA)]
    focal_gamma: f64,
    /// Lite only: stochastic depth while training, the chance that a sample skips the last
    /// residual block (earlier blocks in proportion to their depth; EfficientNet used 0.2).
    #[arg(long, value_name = "P", default_value_t = 0.0)]
    drop_path: f32,
    /// Lite only: dropout of the pooled features before the output layer while training
    /// (EfficientNet-Lite0 used 0.2).
    #[arg(long, value_name = "P", default_value_t = 0.0)]
    dropout: f32,
    /// Chance that a training crop has one random rectangle (2% to 25% of it) painted the
    /// mean colour (random erasing), so that no single region decides.
    #[arg(long, value_name = "P", default_value_t = 0.0)]
    erase: f64,
    /// Weigh SOURCE's faces W times as much as the other sources of their class when the
    /// classifier draws its training faces (repeatable; the class keeps its half).
    #[arg(long = "source-weight", value_name = "SOURCE=W", value_parser = parse_source_weight)]
    source_weights: Vec<(String, f64)>,
    /// Faces drawn per epoch.
    #[arg(long, default_value_t = 4096)]
    samples_per_epoch: usize,
    /// Degraded copies of each training image.
    #[arg(long, default_value_t = 3)]
    variants: usize,
    /// Leave this source out of training entirely (repeatable), to measure generalisation.
    #[arg(long = "holdout-source", value_name = "SOURCE")]
    holdout_sources: Vec<String>,
    /// Use at most N images of each source (quick runs).
    #[arg(long, value_name = "N")]
    max_per_source: Option<usize>,
    /// Threads for face extraction [default: all cores].
    #[arg(long, short = 'j')]
    threads: Option<usize>,
}

#[derive(clap::Args)]
pub struct FuseArgs {
    /// The model to extend (a `facade train` folder): its classifier, geometry and embedding
    /// are kept.
    #[arg(long)]
    model: PathBuf,
    /// A model trained by `facade train` on the same manifest, seed and folds, on another crop
    /// side (e.g. `--crop-side 64 --input-side 64`): its classifier becomes the coarse branch.
    #[arg(long)]
    coarse: PathBuf,
    /// Folder to write the fused model into.
    #[arg(long)]
    out: PathBuf,
    #[command(flatten)]
    calibration: CalibrationArgs,
}

/// Where `facade fuse` and `facade cascade` find a model's calibration fold again.
#[derive(clap::Args)]
struct CalibrationArgs {
    /// The labelled manifest [default: the one the model's record names].
    #[arg(long)]
    manifest: Option<PathBuf>,
    /// Threads [default: all cores].
    #[arg(long, short = 'j')]
    threads: Option<usize>,
}

impl CalibrationArgs {
    fn threads(&self) -> usize {
        self.threads
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
    }
}

/// `facade fuse`: the calibration fold's faces are extracted again and the fusion refitted
/// over geometry, embedding, the classifier and the coarse branch.
pub fn fuse(args: FuseArgs) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    keep_freed_memory_for_reuse();
    let log = |line: &str| eprintln!("facade fuse: {line}");
    let threads = args.calibration.threads();
    let fused = add_coarse_branch(
        &args.model,
        &args.coarse,
        args.calibration.manifest,
        threads,
        &log,
    )
    .context("adding the coarse branch")?;
    write_model(&fused, &args.out, "fuse", started)
}

#[derive(clap::Args)]
pub struct CascadeArgs {
    /// The model to measure (a `facade train` or `facade fuse` folder); only its mirror
    /// cascade changes.
    #[arg(long)]
    model: PathBuf,
    /// Folder to write the model with its cascade into.
    #[arg(long)]
    out: PathBuf,
    #[command(flatten)]
    calibration: CalibrationArgs,
}

/// `facade cascade`: the calibration fold's faces are extracted again and scored with and
/// without the mirror view; the largest change sets where a scan reads it (`facade train`
/// does this for the models it writes).
pub fn cascade(args: CascadeArgs) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let log = |line: &str| eprintln!("facade cascade: {line}");
    let threads = args.calibration.threads();
    let measured = add_mirror_cascade(&args.model, args.calibration.manifest, threads, &log)
        .context("measuring the mirror cascade")?;
    write_model(&measured, &args.out, "cascade", started)
}

fn write_model(
    model: &Trained,
    out: &std::path::Path,
    command: &str,
    started: Instant,
) -> anyhow::Result<ExitCode> {
    model
        .detectors
        .save(out, &model.classifier_weights)
        .with_context(|| format!("writing the model to {}", out.display()))?;
    eprintln!(
        "facade {command}: model written to {} in {:.0} s",
        out.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(ExitCode::SUCCESS)
}

/// `SOURCE=W` of `--source-weight`.
fn parse_source_weight(text: &str) -> Result<(String, f64), String> {
    let (source, weight) = text
        .rsplit_once('=')
        .ok_or_else(|| format!("{text:?} is not SOURCE=W"))?;
    let weight: f64 = weight
        .parse()
        .map_err(|e| format!("weight {weight:?} of {source}: {e}"))?;
    Ok((source.to_owned(), weight))
}

pub fn run(args: TrainArgs) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    keep_freed_memory_for_reuse();
    let mut config = TrainConfig::new(args.manifest);
    config.seed = args.seed;
    config.epochs = args.epochs;
    config.classifiers = usize::from(args.classifiers);
    config.classifier_width = usize::from(args.classifier_width);
    config.lite_input_side = None;
    if let Some(variant) = args.backbone.lite() {
        config.lite_variant = variant;
        config.lite_input_side = Some(usize::from(args.input_side));
    }
    // Refused with the small network by `train`, before any image is read.
    config.lite_input_filter = args.input_filter;
    config.crop_side = match (args.crop_side, args.backbone) {
        (Some(side), _) => usize::from(side),
        (None, Backbone::Small) => facade_detect::align::CROP_SIDE,
        (None, _) => facade_detect::training::DEFAULT_CROP_SIDE,
    };
    // Checked by `train` with the crop side, before any image is read.
    config.crop_zoom = args.crop_zoom;
    anyhow::ensure!(
        (0.0..=5.0).contains(&args.focal_gamma),
        "--focal-gamma must be 0 to 5, not {}",
        args.focal_gamma
    );
    config.focal_gamma = args.focal_gamma;
    // These three are checked by `train` (with the backbone, and the sources against the
    // manifest) before any face is found.
    config.erase = args.erase;
    config.source_weights = args.source_weights.into_iter().collect();
    config.regularisation = Regularisation {
        drop_path: args.drop_path,
        dropout: args.dropout,
    };
    if let Some(pretrained) = args.pretrained {
        config.pretrained = Some(pretrained);
    }
    config.samples_per_epoch = args.samples_per_epoch;
    config.variants = args.variants;
    config.holdout_sources = args.holdout_sources;
    config.max_per_source = args.max_per_source;
    if let Some(threads) = args.threads {
        config.threads = threads.max(1);
    }
    let log = |line: &str| eprintln!("facade train: {line}");
    let trained = train(&config, &log).context("training")?;
    write_model(&trained, &args.out, "train", started)
}

/// Training allocates the same large batch tensors (up to ~38 MB) at every step. glibc's
/// malloc serves blocks over its mmap threshold straight from the kernel and gives them back
/// on free, so every step page-faulted its tensors in afresh: that cost more than the
/// arithmetic (4.9 vs 2.8 ms per face, forward and backward). Raising the threshold to its
/// maximum and keeping freed memory lets the steps reuse it.
fn keep_freed_memory_for_reuse() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters; called before any training thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
        libc::mallopt(libc::M_TOP_PAD, 256 << 20);
    }
}
