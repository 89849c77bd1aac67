//! The review page in a real browser (Debian's chromium driven by playwright-core, see
//! `e2e/`): upload an image and see its score, record decisions, restart the server and see
//! them kept. `.ci/run` installs chromium and playwright-core; elsewhere the test says what is
//! missing and passes only when not in CI.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{examples, scan_line, store_simulated_run, Server, TOKEN};
use serde_json::Value;

fn e2e_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../e2e")
}

/// What the browser test needs, or why it cannot run.
fn browser_ready() -> Result<(), String> {
    let chromium = std::env::var("FACADE_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    if !Path::new(&chromium).exists() {
        return Err(format!(
            "no chromium at {chromium} (apt-get install chromium)"
        ));
    }
    if !e2e_dir().join("node_modules/playwright-core").exists() {
        return Err("e2e/node_modules has no playwright-core (cd e2e && npm ci)".into());
    }
    if Command::new("node").arg("--version").output().is_err() {
        return Err("no node on PATH".into());
    }
    Ok(())
}

fn run_phase(phase: &str, server: &Server, out: &Path) -> Value {
    let image = examples().join("astronaut.png");
    // The same picture with an A1111 record in a PNG text chunk: a file declaring itself made.
    let declared = out.join("declared.png");
    let parameters = "portrait\nSteps: 20, Sampler: Euler a, Seed: 1, Model: dreamshaper_8";
    let bytes = facade_image::fixtures::png_with_chunks(
        &std::fs::read(&image).expect("example"),
        &[facade_image::fixtures::png_text("parameters", parameters)],
    );
    std::fs::write(&declared, bytes).expect("write the declared image");
    let output = Command::new("node")
        .arg(e2e_dir().join("review-page.mjs"))
        .arg(phase)
        .arg(&server.base)
        .arg(TOKEN)
        .arg(&image)
        .arg(out.join(format!("{phase}.png")))
        .arg(&declared)
        .output()
        .expect("node runs");
    assert!(
        output.status.success(),
        "{phase} failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let line = String::from_utf8_lossy(&output.stdout);
    serde_json::from_str(line.trim().lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("{phase}: not JSON ({e}): {line}"))
}

#[test]
fn an_analyst_scans_reviews_and_finds_the_decisions_after_a_restart() {
    if let Err(missing) = browser_ready() {
        facade_image::fixtures::skip_unless_ci(
            "the browser test",
            &missing,
            "run bash scripts/setup-browser.sh (Debian chromium and playwright-core from npm)",
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("f.db");
    store_simulated_run(dir.path(), &db);
    let shots = std::env::var_os("FACADE_SCREENSHOTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| dir.path().to_owned());
    std::fs::create_dir_all(&shots).unwrap();

    let server = Server::start(&db, &["--token", TOKEN]);
    let first = run_phase("scan-and-review", &server, &shots);
    assert_eq!(first["page_errors"], serde_json::json!([]), "{first}");
    assert_eq!(first["networks"], 6, "{first}");
    // The page shows the score `facade scan` gives the same file.
    let cli = scan_line(&examples().join("astronaut.png"));
    let cli_score = cli["score"].as_f64().unwrap();
    let shown = first["score"].as_f64().unwrap();
    // The page shows the record's score (5 decimals) to three (`toFixed(3)`): off by up to
    // 0.0005, reached exactly when the score ends in 5 (0.0455 shows as 0.045).
    assert!(
        (shown - cli_score).abs() <= 0.0005 + 1e-9,
        "page {shown} vs cli {cli_score}"
    );
    assert_eq!(first["verdict"], cli["verdict"]);
    assert_eq!(first["reviews"].as_array().unwrap().len(), 2, "{first}");
    // A plain photo declares nothing; the declared file's claim is shown beside the detectors.
    assert_eq!(first["declared_before"], 0, "{first}");
    let declared = first["declared"].as_str().unwrap_or_default();
    assert!(
        declared.contains("AI-generated (png-text: AUTOMATIC1111 (dreamshaper_8))"),
        "{first}"
    );
    assert_eq!(first["declared_verdict"], "ai", "{first}");
    assert!(first["network_decision"]
        .as_str()
        .unwrap()
        .contains("confirmed by ana"));
    drop(server); // SIGKILL

    let server = Server::start(&db, &["--token", TOKEN]);
    let after = run_phase("check-kept", &server, &shots);
    assert_eq!(after["page_errors"], serde_json::json!([]), "{after}");
    // Newest first: the network confirmation, then the image dismissal.
    let rows = after["reviews"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{after}");
    let network = first["network"].as_str().unwrap();
    assert_eq!(rows[0][1], format!("network:{network}"));
    assert_eq!(rows[0][2], "confirm");
    assert_eq!(rows[0][3], "same links within seconds");
    assert_eq!(rows[0][4], "ana");
    let sha = cli["sha256"].as_str().unwrap();
    assert_eq!(rows[1][1], format!("image:{sha}"));
    assert_eq!(rows[1][2], "dismiss");
    assert!(after["network_decision"]
        .as_str()
        .unwrap()
        .contains("confirmed by ana"));
}
