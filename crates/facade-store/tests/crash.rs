//! Kill -9 during a stream of writes, reopen, check that every acknowledged write is there.
//!
//! The writer is this test binary run again as a child (selected by an environment variable):
//! it writes reviews and scans as fast as it can and prints `acked <n>` after each call
//! returns. The parent kills it with SIGKILL after a varying number of acknowledgements, reads
//! whatever acknowledgements made it out before the kill, then reopens the store. On
//! PostgreSQL the server itself is also stopped without a checkpoint (`immediate`, as in a
//! crash) and started again after each round.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use facade_image::sha256_hex;
use facade_store::testing::TestCluster;
use facade_store::{Decision, Location, NewReview, NewScan, Store};

const CHILD_ENV: &str = "FACADE_STORE_CRASH_CHILD_DB";

#[test]
fn crash_child_writer() {
    let Ok(location) = std::env::var(CHILD_ENV) else {
        return; // Only does something when run by the crash tests below.
    };
    let mut store = Store::open(&Location::parse(&location)).unwrap();
    let record = serde_json::json!({"status": "ok", "faces": []});
    for n in 0u64.. {
        if n % 2 == 0 {
            store
                .add_review(&NewReview {
                    subject: format!("account:{n}").parse().unwrap(),
                    decision: Decision::Confirm,
                    note: format!("write {n}"),
                    reviewer: "crash-test".into(),
                })
                .unwrap();
        } else {
            let sha = sha256_hex(&n.to_le_bytes());
            store
                .put_scan(&NewScan {
                    sha256: &sha,
                    judge: "crash-test",
                    record: &record,
                    thumbnail: Some(&[0u8; 2048]),
                })
                .unwrap();
        }
        println!("acked {n}");
    }
}

#[test]
fn no_acknowledged_write_is_lost_to_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("crash.db");
    kill_writers(&db.to_string_lossy(), || {});
}

#[test]
fn no_acknowledged_write_is_lost_to_kill_9_on_postgresql() {
    let cluster = match TestCluster::start() {
        Ok(cluster) => cluster,
        Err(why) => {
            return facade_image::fixtures::skip_unless_ci(
                "the PostgreSQL crash test",
                &why.to_string(),
                facade_store::testing::HOW_TO_INSTALL,
            )
        }
    };
    kill_writers(&cluster.new_database(), || cluster.restart());
}

/// Rounds of writing and killing on the store at `location`; `crash_server` runs after each
/// kill, before the check.
fn kill_writers(location: &str, crash_server: impl Fn()) {
    let mut acked_total = 0u64;
    // Each round kills the writer at a different point of its stream, on the same file, so
    // later rounds also recover from the previous round's crash.
    for (round, kill_after) in [7u64, 60, 1, 250, 33].into_iter().enumerate() {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "crash_child_writer",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, location)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let mut acked = Vec::new();
        let mut lines = stdout.lines();
        while let Some(Ok(line)) = lines.next() {
            if let Some(n) = line.strip_prefix("acked ") {
                acked.push(n.parse::<u64>().unwrap());
                if acked.len() as u64 == kill_after {
                    child.kill().unwrap(); // SIGKILL on Unix
                    break;
                }
            }
        }
        // Acknowledgements already in the pipe when the kill landed count too.
        for line in lines.map_while(Result::ok) {
            if let Some(n) = line.strip_prefix("acked ") {
                acked.push(n.parse::<u64>().unwrap());
            }
        }
        let status = child.wait().unwrap();
        assert!(!status.success(), "round {round}: the writer was killed");
        assert!(acked.len() as u64 >= kill_after);
        crash_server();

        let mut store = Store::open(&Location::parse(location)).unwrap();
        assert_eq!(store.integrity_check().unwrap(), "ok");
        let notes: std::collections::HashSet<String> = store
            .reviews(None)
            .unwrap()
            .into_iter()
            .map(|r| r.note)
            .collect();
        for n in &acked {
            if n % 2 == 0 {
                assert!(
                    notes.contains(&format!("write {n}")),
                    "round {round}: review {n} lost"
                );
            } else {
                let sha = sha256_hex(&n.to_le_bytes());
                assert!(
                    store.cached_scan(&sha, "crash-test").unwrap().is_some(),
                    "round {round}: scan {n} lost"
                );
            }
        }
        acked_total += acked.len() as u64;
    }
    assert!(acked_total >= 351);
}
