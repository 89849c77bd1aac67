//! The benchmark's floor: decode every image file in a directory, with THREADS threads, and
//! print images/s. `decode_only DIR THREADS`
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use facade_image::{decode, DecodeLimits};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = args.next().ok_or("usage: decode_only DIR THREADS")?;
    let threads: usize = args.next().unwrap_or_else(|| "1".into()).parse()?;
    let mut files: Vec<_> = std::fs::read_dir(&dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    files.sort();
    let next = AtomicUsize::new(0);
    let started = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(path) = files.get(i) else { break };
                let bytes = std::fs::read(path).expect("readable file");
                let decoded = decode(&bytes, &DecodeLimits::default()).expect("decodable");
                std::hint::black_box(decoded);
            });
        }
    });
    let secs = started.elapsed().as_secs_f64();
    println!(
        "decode-only: {} images in {secs:.2} s = {:.1} images/s",
        files.len(),
        files.len() as f64 / secs
    );
    Ok(())
}
