//! The classifier's training step, timed: forward and backward over a batch of 64 crops, the
//! cost that bounds how large a classifier `facade train` can afford on a CPU.
//!
//! `cargo bench -p facade-detect --bench classifier_step`. `facade train` also raises glibc's
//! mmap threshold (see facade-cli's train.rs); to time the step as training runs it, set
//! `MALLOC_MMAP_THRESHOLD_=33554432 MALLOC_TRIM_THRESHOLD_=1073741824 MALLOC_TOP_PAD_=268435456`.
//! `FACADE_CLASSIFIER_WIDTH=N` times the small network at width N (default: training's
//! default); `FACADE_LITE0_SIDE=S` times EfficientNet-Lite0 on S px crops read at S px (as
//! `facade train`'s defaults do), and its forward pass alone (what a scan pays per view);
//! `FACADE_LITE0_FORWARD_BATCH=N` times that forward pass on batches of N crops instead (a scan
//! runs a batch of two: a face and its mirror image), the fastest of five rounds;
//! `FACADE_LITE_VARIANT=lite1` (or `lite2`) times that variant instead of Lite0.

use std::time::Instant;

use candle_core::{DType, Device};
use candle_nn::{VarBuilder, VarMap};
use facade_detect::align::CROP_SIDE;
use facade_detect::classifier::{crops_to_tensor, FaceClassifier};
use facade_detect::lite::{Lite, Variant};

const BATCH: usize = 64;

fn width() -> usize {
    std::env::var("FACADE_CLASSIFIER_WIDTH")
        .ok()
        .and_then(|w| w.parse().ok())
        .unwrap_or(facade_detect::training::DEFAULT_CLASSIFIER_WIDTH)
}
const STEPS: usize = 20;

fn main() -> candle_core::Result<()> {
    if let Some(side) = std::env::var("FACADE_LITE0_SIDE")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        let variant = std::env::var("FACADE_LITE_VARIANT")
            .ok()
            .and_then(|name| Variant::named(&name))
            .unwrap_or(Variant::Lite0);
        return lite(variant, side);
    }
    let map = VarMap::new();
    let net = FaceClassifier::new(
        VarBuilder::from_varmap(&map, DType::F32, &Device::Cpu).pp("classifier"),
        width(),
    )?;
    let crop: Vec<u8> = (0..3 * CROP_SIDE * CROP_SIDE)
        .map(|i| (i * 7 % 251) as u8)
        .collect();
    let crops: Vec<&[u8]> = (0..BATCH).map(|_| crop.as_slice()).collect();
    let x = crops_to_tensor(&crops, &[], &Device::Cpu)?;
    let started = Instant::now();
    for _ in 0..STEPS {
        net.forward(&x)?.sqr()?.mean_all()?.backward()?;
    }
    let per_face = started.elapsed().as_secs_f64() * 1e3 / (STEPS * BATCH) as f64;
    println!(
        "classifier training step, width {}: {per_face:.2} ms per face (forward + backward)",
        width()
    );
    Ok(())
}

fn lite(variant: Variant, side: usize) -> candle_core::Result<()> {
    let map = VarMap::new();
    let net = Lite::new(
        VarBuilder::from_varmap(&map, DType::F32, &Device::Cpu).pp("classifier"),
        variant,
        side,
    )?;
    let name = variant.name();
    let crop: Vec<u8> = (0..3 * side * side).map(|i| (i * 7 % 251) as u8).collect();
    let crops: Vec<&[u8]> = (0..BATCH).map(|_| crop.as_slice()).collect();
    let forward_batch: Option<usize> = std::env::var("FACADE_LITE0_FORWARD_BATCH")
        .ok()
        .and_then(|n| n.parse().ok());
    if forward_batch.is_none() {
        let started = Instant::now();
        for _ in 0..STEPS {
            let x = net.input(&crops, &[], &Device::Cpu)?;
            net.forward(&x)?.sqr()?.mean_all()?.backward()?;
        }
        let step = started.elapsed().as_secs_f64() * 1e3 / (STEPS * BATCH) as f64;
        println!("{name} at {side} px: training step {step:.2} ms per face");
    }
    let crops = &crops[..forward_batch.unwrap_or(BATCH).clamp(1, BATCH)];
    let rounds = (2 * BATCH / crops.len()).max(1);
    let mut forward = f64::INFINITY;
    for _ in 0..5 {
        let started = Instant::now();
        for _ in 0..rounds {
            let x = net.input(crops, &[], &Device::Cpu)?;
            net.forward(&x)?;
        }
        let per_face = started.elapsed().as_secs_f64() * 1e3 / (rounds * crops.len()) as f64;
        forward = forward.min(per_face);
    }
    println!(
        "{name} at {side} px: forward alone {forward:.2} ms per face (batches of {})",
        crops.len()
    );
    Ok(())
}
