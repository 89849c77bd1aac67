//! Hostile input, fuzzed: mutated real files thrown at the image decoder path (decoding, the
//! truncation check, the provenance reader, and a full scan on a share of them), at the account
//! export readers (Twitter IO CSV, JSON Lines, QUT CSV) and at the HTTP scan route. Nothing may
//! panic past the reader's own error handling, hang, or grow memory without bound; every bad
//! input must come back as an error or a record.
//!
//! A seeded mutation fuzzer (no nightly, no external tool): each case takes a seed file (the
//! bundled examples, small images and exports made here), applies one to four mutations (bit
//! flips, interesting bytes and 32-bit values over length fields, inserted, deleted and
//! duplicated ranges, truncation, splices of two seeds, and for text quotes, separators and
//! newlines), and runs it. CI runs `FACADE_FUZZ_CASES` cases per target (default 5,000; about ten
//! seconds on two cores); a longer run with a fresh seed:
//! `FACADE_FUZZ_CASES=200000 FACADE_FUZZ_SEED=$RANDOM cargo test --release -p facade-cli --test fuzz -- --nocapture`.
//! It prints cases run, errors, panics, the slowest case and peak memory per target.

mod common;

use std::io::{Cursor, Write};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::time::{Duration, Instant};

use common::{examples, Server};
use facade_detect::Judge;
use facade_face::DetectorConfig;
use facade_image::provenance::ProvenanceReader;
use facade_image::{decode, DecodeLimits};
use facade_network::dataset::{Dataset, IngestOptions};
use facade_network::diagnostics::Diagnostics;
use facade_network::ingest;

/// A case slower than this counts as a hang.
const HANG: Duration = Duration::from_secs(10);

fn cases() -> usize {
    std::env::var("FACADE_FUZZ_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(5000)
}

fn seed() -> u64 {
    std::env::var("FACADE_FUZZ_SEED")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(2026)
}

/// xorshift64*: small, seeded, the same sequence everywhere.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const INTERESTING_BYTES: [u8; 8] = [0x00, 0x01, 0x7F, 0x80, 0xFF, 0xFE, b'\n', b'"'];
const INTERESTING_U32: [u32; 6] = [0, 1, 0x7FFF_FFFF, 0x8000_0000, 0xFFFF_FFFF, 0x0001_0000];
const TEXT_TOKENS: [&[u8]; 8] = [b",", b"\"", b"\n", b"\r\n", b"{", b"}", b"\\u0000", b"#tag"];

/// One to four mutations of `seed`, sometimes spliced with `other`.
fn mutate(rng: &mut Rng, seed: &[u8], other: &[u8], text: bool) -> Vec<u8> {
    let mut data = seed.to_vec();
    for _ in 0..1 + rng.below(4) {
        let len = data.len().max(1);
        let at = rng.below(len);
        match rng.below(if text { 9 } else { 8 }) {
            0 => {
                if let Some(b) = data.get_mut(at) {
                    *b ^= 1 << rng.below(8);
                }
            }
            1 => {
                if let Some(b) = data.get_mut(at) {
                    *b = INTERESTING_BYTES[rng.below(INTERESTING_BYTES.len())];
                }
            }
            2 if data.len() >= at + 4 => {
                let value = INTERESTING_U32[rng.below(INTERESTING_U32.len())];
                let bytes = if rng.below(2) == 0 {
                    value.to_be_bytes()
                } else {
                    value.to_le_bytes()
                };
                data[at..at + 4].copy_from_slice(&bytes);
            }
            3 => {
                let extra: Vec<u8> = (0..1 + rng.below(64)).map(|_| rng.next() as u8).collect();
                data.splice(at.min(data.len())..at.min(data.len()), extra);
            }
            4 => {
                let end = (at + 1 + rng.below(256)).min(data.len());
                data.drain(at.min(end)..end);
            }
            5 => {
                let end = (at + 1 + rng.below(512)).min(data.len());
                let copy = data[at.min(end)..end].to_vec();
                let to = rng.below(data.len().max(1)).min(data.len());
                data.splice(to..to, copy);
            }
            6 => data.truncate(at),
            7 if !other.is_empty() => {
                let from = rng.below(other.len());
                data.truncate(at);
                data.extend_from_slice(&other[from..]);
            }
            _ if text => {
                let token = TEXT_TOKENS[rng.below(TEXT_TOKENS.len())];
                let at = at.min(data.len());
                data.splice(at..at, token.iter().copied());
            }
            _ => {}
        }
    }
    data
}

/// What one target saw.
#[derive(Default)]
struct Tally {
    cases: usize,
    errors: usize,
    panics: Vec<String>,
    slowest: Duration,
}

impl Tally {
    fn run(&mut self, case: impl FnOnce() -> bool) {
        let started = Instant::now();
        match catch_unwind(AssertUnwindSafe(case)) {
            Ok(ok) => self.errors += usize::from(!ok),
            Err(panic) => self.panics.push(
                panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default(),
            ),
        }
        self.cases += 1;
        self.slowest = self.slowest.max(started.elapsed());
    }

    /// Says what happened (past the test harness's capture) and fails on a panic or a hang.
    fn report(&self, target: &str) {
        let line = format!(
            "fuzz {target}: {} cases, {} rejected as errors, {} panics, slowest {:.0} ms, peak RSS {} MiB\n",
            self.cases,
            self.errors,
            self.panics.len(),
            self.slowest.as_secs_f64() * 1e3,
            peak_rss_mib()
        );
        let _ = std::io::stderr().write_all(line.as_bytes());
        assert!(self.panics.is_empty(), "{target}: {:?}", self.panics);
        assert!(
            self.slowest < HANG,
            "{target}: a case took {:?}",
            self.slowest
        );
    }
}

fn peak_rss_mib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb / 1024)
}

/// Seed images: the bundled examples and small pictures in every format the decoder takes,
/// with metadata for the provenance reader.
fn image_seeds() -> Vec<Vec<u8>> {
    let mut seeds: Vec<Vec<u8>> = ["astronaut-400.jpg", "astronaut.png"]
        .iter()
        .map(|name| std::fs::read(examples().join(name)).expect("example"))
        .collect();
    let small = image::imageops::resize(
        &image::open(examples().join("astronaut.png"))
            .expect("example")
            .to_rgb8(),
        96,
        96,
        image::imageops::FilterType::Triangle,
    );
    for format in [
        image::ImageFormat::Png,
        image::ImageFormat::Jpeg,
        image::ImageFormat::WebP,
        image::ImageFormat::Gif,
        image::ImageFormat::Bmp,
        image::ImageFormat::Tiff,
    ] {
        let mut bytes = Vec::new();
        if format == image::ImageFormat::Gif {
            image::DynamicImage::ImageRgb8(small.clone())
                .to_rgba8()
                .write_to(&mut Cursor::new(&mut bytes), format)
                .expect("encode");
        } else {
            small
                .write_to(&mut Cursor::new(&mut bytes), format)
                .expect("encode");
        }
        seeds.push(bytes);
    }
    let png = seeds[2].clone();
    seeds.push(facade_image::fixtures::png_with_chunks(
        &png,
        &[
            facade_image::fixtures::png_text("parameters", "a face\nSteps: 20, Model: x"),
            facade_image::fixtures::png_chunk(b"caBX", b"\0\0\0\x10jumbc2pa......"),
        ],
    ));
    seeds.push(facade_image::fixtures::jpeg_with_xmp(
        &seeds[3],
        &facade_image::fixtures::xmp_digital_source_type("trainedAlgorithmicMedia"),
    ));
    seeds
}

#[test]
fn the_image_path_survives_mutated_files() {
    let seeds = image_seeds();
    let limits = DecodeLimits::default();
    let reader = ProvenanceReader::default();
    let judge = Judge::new(
        DetectorConfig::default(),
        Some((facade_detect::Detectors::embedded().expect("model"), 0.01)),
    )
    .expect("judge");
    let mut rng = Rng(seed());
    let mut tally = Tally::default();
    for case in 0..cases() {
        let seed = &seeds[rng.below(seeds.len())];
        let other = &seeds[rng.below(seeds.len())];
        let bytes = mutate(&mut rng, seed, other, false);
        // Every 25th case goes through the whole scan; the rest through its first stages.
        let full = case % 25 == 0;
        tally.run(|| {
            let _ = reader.read(&bytes);
            if full {
                judge.scan_bytes("fuzz", &bytes, &limits).is_ok()
            } else {
                decode(&bytes, &limits).is_ok()
            }
        });
    }
    tally.report("image decode + provenance (+ full scan 1 in 25)");
}

/// Small exports in each format, made by `facade simulate` and by hand.
fn export_seeds(dir: &Path) -> Vec<(&'static str, Vec<u8>)> {
    let status = std::process::Command::new(common::BIN)
        .args([
            "simulate",
            "--organic",
            "20",
            "--mean-posts",
            "4",
            "--days",
            "3",
            "--qut",
            "--out",
        ])
        .arg(dir)
        .output()
        .expect("simulate");
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    let head = |name: &str, lines: usize| -> Vec<u8> {
        let text = std::fs::read_to_string(dir.join(name)).expect("simulated file");
        text.lines()
            .take(lines)
            .flat_map(|l| format!("{l}\n").into_bytes())
            .collect()
    };
    let accounts = b"{\"id\": \"1\", \"handle\": \"ann\", \"created\": \"2020-01-01T00:00:00Z\"}\n{\"id\": \"2\", \"handle\": \"bob\", \"created\": 1577836800}\n".to_vec();
    let posts = b"{\"id\": \"p1\", \"account\": \"1\", \"time\": 1600000000, \"text\": \"hi #a #b https://x.io/1\"}\n{\"id\": \"p2\", \"account\": \"2\", \"time\": \"2020-09-13T12:26:40Z\", \"text\": \"RT hi\", \"repost_of\": \"p1\"}\n".to_vec();
    vec![
        ("users", head("users.csv", 30)),
        ("tweets", head("tweets.csv", 60)),
        ("qut", head("posts-qut.csv", 60)),
        ("accounts", accounts),
        ("posts", posts),
    ]
}

#[test]
fn the_export_readers_survive_mutated_rows() {
    let dir = tempfile::tempdir().unwrap();
    let seeds = export_seeds(dir.path());
    let file = dir.path().join("case");
    let mut rng = Rng(seed() ^ 0x5eed);
    let mut tally = Tally::default();
    for _ in 0..cases() {
        let (kind, seed) = &seeds[rng.below(seeds.len())];
        let other = &seeds[rng.below(seeds.len())].1;
        std::fs::write(&file, mutate(&mut rng, seed, other, true)).unwrap();
        tally.run(|| {
            let mut data = Dataset::new(IngestOptions::default());
            let mut diag = Diagnostics::default();
            let read = match *kind {
                "users" => ingest::read_twitter_users(&file, &mut data, &mut diag),
                "tweets" => ingest::read_twitter_tweets(&file, &mut data, &mut diag),
                "qut" => ingest::read_qut_csv(&file, &mut data, &mut diag),
                "accounts" => ingest::read_jsonl_accounts(&file, &mut data, &mut diag),
                _ => ingest::read_jsonl_posts(&file, &mut data, &mut diag),
            };
            read.is_ok() && data.finish_reading_into(&mut diag).is_ok()
        });
    }
    tally.report("export readers (Twitter IO CSV, JSON Lines, QUT CSV)");
}

#[test]
fn the_scan_route_survives_mutated_uploads() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("f.db"), &[]);
    let agent = common::agent();
    let seeds = image_seeds();
    let mut rng = Rng(seed() ^ 0x4770);
    let mut tally = Tally::default();
    // Each case is a whole request and a scan: a tenth of the cases of the other targets.
    for _ in 0..cases() / 10 {
        let seed = &seeds[rng.below(seeds.len())];
        let other = &seeds[rng.below(seeds.len())];
        let bytes = mutate(&mut rng, seed, other, false);
        tally.run(|| {
            let response = agent
                .post(&server.url("/v1/scan"))
                .header("Content-Type", "application/octet-stream")
                .send(&bytes[..])
                .expect("the server answers");
            let status = response.status().as_u16();
            let text = response
                .into_body()
                .read_to_string()
                .expect("a readable answer");
            let body: serde_json::Value =
                serde_json::from_str(&text).expect("every answer is JSON");
            assert!(status == 200 || status == 400, "{status} {body}");
            status == 200 && body["status"] != "error"
        });
    }
    let health = agent.get(&server.url("/healthz")).call().expect("still up");
    assert_eq!(health.status().as_u16(), 200);
    tally.report("HTTP POST /v1/scan");
}
