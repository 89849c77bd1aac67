//! Helpers shared by the tests that drive `facade serve`.
#![allow(dead_code)]

use std::io::BufRead;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_facade");
pub const TOKEN: &str = "test-token-123";

pub fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

/// A running `facade serve`, stopped (SIGKILL) when dropped.
pub struct Server {
    child: Child,
    pub base: String,
}

impl Server {
    /// `facade serve` on the store `db` (a SQLite file or a postgres:// URL).
    pub fn start(db: &(impl AsRef<std::ffi::OsStr> + ?Sized), extra: &[&str]) -> Server {
        let mut child = Command::new(BIN)
            .args(["serve", "--addr", "127.0.0.1:0", "--db"])
            .arg(db)
            .args(extra)
            .env_remove("FACADE_API_TOKEN")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("facade serve starts");
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let first = lines.next().expect("a first line").unwrap();
        let base = first
            .split("serving on ")
            .nth(1)
            .and_then(|rest| rest.split('/').nth(2))
            .map(|addr| format!("http://{addr}"))
            .unwrap_or_else(|| panic!("no address in {first:?}"));
        // Keep draining stderr so that the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Server { child, base }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn addr(&self) -> String {
        self.base.trim_start_matches("http://").to_owned()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(120)))
        .build()
        .into()
}

/// Status and body (JSON when it parses, else the text as a JSON string).
pub fn answer(response: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> (u16, Value) {
    let mut response = response.expect("a response");
    let status = response.status().as_u16();
    let text = response.body_mut().read_to_string().unwrap_or_default();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, body)
}

/// The `facade` binary, ready for arguments.
pub fn facade() -> Command {
    Command::new(BIN)
}

/// Runs `command`, asserts it succeeded and returns its stderr.
pub fn run_ok(command: &mut Command) -> String {
    let output = command.output().expect("facade runs");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "{command:?} failed:\n{stderr}");
    stderr
}

pub fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// The record `facade scan` writes for one file.
pub fn scan_line(path: &Path) -> Value {
    let out = facade()
        .args(["scan", "--format", "jsonl", "--no-progress"])
        .arg(path)
        .output()
        .unwrap();
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Simulates an export and keeps its `facade networks` run in the store at `db` (six
/// planted networks of 30, 25, 20, 15, 18 and 10 accounts).
pub fn store_simulated_run(dir: &Path, db: &(impl AsRef<std::ffi::OsStr> + ?Sized)) {
    let sim = dir.join("sim");
    run_ok(
        facade()
            .args(["simulate", "--organic", "300", "--out"])
            .arg(&sim),
    );
    run_ok(
        networks_on_simulation(&sim, &dir.join("out"))
            .arg("--db")
            .arg(db),
    );
}

/// `facade networks` on a JSON Lines posts file, scanning the profile pictures in `images`.
pub fn networks_on_posts_with_images(posts: &Path, images: &Path, out: &Path) -> Command {
    let mut command = facade();
    command
        .arg("networks")
        .arg("--posts")
        .arg(posts)
        .arg("--images")
        .arg(images)
        .arg("--out")
        .arg(out);
    command
}

/// `facade report --networks` on a networks.json, into `out`; its stderr.
pub fn report_on_networks(networks: &Path, out: &Path) -> String {
    run_ok(
        facade()
            .arg("report")
            .arg("--networks")
            .arg(networks)
            .arg("--out")
            .arg(out),
    )
}

/// `facade networks` on the users and tweets CSVs `facade simulate` wrote to `sim`.
pub fn networks_on_simulation(sim: &Path, out: &Path) -> Command {
    let mut command = facade();
    command
        .arg("networks")
        .arg("--users")
        .arg(sim.join("users.csv"))
        .arg("--tweets")
        .arg(sim.join("tweets.csv"))
        .arg("--out")
        .arg(out);
    command
}
