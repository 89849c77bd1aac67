//! Times the built-in model's classifiers on batches of face crops of several sizes: per crop,
//! the fastest of several interleaved rounds (this machine's timings vary by a tenth or more
//! from one second to the next).
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let detectors = facade_detect::Detectors::embedded()?;
    let branches = [
        ("main", detectors.main_branch()),
        (
            "coarse",
            detectors.coarse_branch().ok_or("no coarse branch")?,
        ),
    ];
    let batches = [1usize, 2, 4, 8, 16];
    for (name, branch) in branches {
        let side = branch.crop.side;
        let crop: Vec<u8> = (0..side * side * 3).map(|i| (i * 7 % 251) as u8).collect();
        let mut fastest = vec![f64::INFINITY; batches.len()];
        for _round in 0..6 {
            for (b, &batch) in batches.iter().enumerate() {
                let crops: Vec<&[u8]> = (0..batch).map(|_| crop.as_slice()).collect();
                let passes = 32 / batch;
                let start = Instant::now();
                for _ in 0..passes {
                    branch.classifier.view_sums(&crops, false)?;
                }
                let per = start.elapsed().as_secs_f64() * 1e3 / (passes * batch) as f64;
                fastest[b] = fastest[b].min(per);
            }
        }
        for (batch, per) in batches.iter().zip(fastest) {
            println!("{name} {side} px, batch {batch:>2}: {per:.2} ms a crop");
        }
    }
    Ok(())
}
