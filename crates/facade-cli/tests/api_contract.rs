//! The service keeps its own contract: Schemathesis, run as a new user would against `facade
//! serve` with a token (`--checks all`, every phase including the stateful one), finds no
//! response that `/openapi.json` does not describe, no schema-valid request refused and no
//! schema-violating request accepted.
//!
//! The checker comes from PyPI (`bash scripts/setup-schemathesis.sh`, which `.ci/run` calls);
//! without it the test is skipped with a message, except under `CI`, where it fails. In CI it
//! runs a bounded, seeded sample (`FACADE_SCHEMATHESIS_EXAMPLES`, default 25 per operation);
//! for a longer run with a fresh seed:
//! `target/schemathesis run http://127.0.0.1:PORT/openapi.json -H "Authorization: Bearer T" --checks all -n 500`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{Server, TOKEN};

/// The Schemathesis wrapper, or why there is none.
fn schemathesis() -> Result<PathBuf, String> {
    let path = std::env::var_os("FACADE_SCHEMATHESIS")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/schemathesis"));
    let works = Command::new(&path)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if works {
        Ok(path)
    } else {
        Err(format!("no working Schemathesis at {}", path.display()))
    }
}

#[test]
fn schemathesis_finds_the_service_true_to_its_document() {
    let checker = match schemathesis() {
        Ok(path) => path,
        Err(missing) => {
            facade_image::fixtures::skip_unless_ci(
                "the API contract test",
                &missing,
                "run bash scripts/setup-schemathesis.sh (Schemathesis from PyPI)",
            );
            return;
        }
    };
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("f.db"), &["--token", TOKEN]);
    let examples = std::env::var("FACADE_SCHEMATHESIS_EXAMPLES").unwrap_or_else(|_| "25".into());
    let output = Command::new(&checker)
        .current_dir(dir.path())
        .arg("run")
        .arg(server.url("/openapi.json"))
        .args(["-H", &format!("Authorization: Bearer {TOKEN}")])
        .args([
            "--checks",
            "all",
            "--max-examples",
            &examples,
            "--seed",
            "1",
        ])
        .args(["--workers", "1", "--no-color"])
        .output()
        .expect("run schemathesis");
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "Schemathesis found failures:\n{report}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // Every phase ran, the stateful one included.
    for phase in ["Coverage", "Fuzzing", "Stateful"] {
        assert!(
            report.contains(&format!("✅ {phase}")),
            "{phase} did not pass:\n{report}"
        );
    }
}
