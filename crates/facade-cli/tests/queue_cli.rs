//! The shared scan queue and the service on PostgreSQL, driven through the real binary against
//! a real server: a private cluster each test starts (`facade_store::testing`). Without
//! PostgreSQL installed these tests say they did not run; under CI they fail instead.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{agent, answer, examples, facade, run_ok, store_simulated_run, Server, TOKEN};
use facade_store::testing::TestCluster;
use serde_json::Value;

fn cluster_or_skip(test: &str) -> Option<TestCluster> {
    match TestCluster::start() {
        Ok(cluster) => Some(cluster),
        Err(why) => {
            facade_image::fixtures::skip_unless_ci(
                test,
                &why.to_string(),
                facade_store::testing::HOW_TO_INSTALL,
            );
            None
        }
    }
}

/// `count` different JPEG portraits (the bundled astronaut, shifted and brightened a little
/// each time so that no two files have the same bytes), in a new folder of `dir`.
fn portraits(dir: &Path, count: u32) -> PathBuf {
    let folder = dir.join("images");
    std::fs::create_dir_all(&folder).unwrap();
    let original = image::open(examples().join("astronaut-400.jpg"))
        .unwrap()
        .to_rgb8();
    for i in 0..count {
        let shifted = image::imageops::crop_imm(&original, i % 7, i % 5, 380, 380).to_image();
        let mut pixels = shifted;
        for pixel in pixels.pixels_mut() {
            pixel.0[0] = pixel.0[0].saturating_add((i % 11) as u8);
        }
        pixels.save(folder.join(format!("p{i:03}.jpg"))).unwrap();
    }
    folder
}

fn queue_add(db: &str, paths: &[&Path]) -> String {
    run_ok(facade().args(["queue", "add", "--db", db]).args(paths))
}

/// A worker in the background: `-j 1`, claiming 4 at a time, with a short lease unless
/// `extra` sets one.
fn spawn_worker(db: &str, extra: &[&str]) -> Child {
    let lease: &[&str] = match extra.contains(&"--lease") {
        true => &[],
        false => &["--lease", "2s"],
    };
    facade()
        .args(["worker", "--db", db, "-j", "1", "--batch", "4"])
        .args(lease)
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("facade worker starts")
}

fn status(db: &str) -> Value {
    let out = facade()
        .args(["queue", "status", "--json", "--db", db])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Polls the queue until `ready` holds of its status (or a minute passes: a failure).
fn wait_for(db: &str, what: &str, ready: impl Fn(&Value) -> bool) -> Value {
    let started = Instant::now();
    loop {
        let now = status(db);
        if ready(&now) {
            return now;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "waited a minute for {what}: {now}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits for a worker to exit and returns its stderr; it must exit 0.
fn finished(child: Child) -> String {
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "worker failed:\n{stderr}");
    stderr
}

/// `facade results` as JSON Lines, by path; asserts there is one record per path.
fn results(db: &str) -> BTreeMap<String, Value> {
    let out = facade().args(["results", "--db", db]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut by_path = BTreeMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let record: Value = serde_json::from_str(line).unwrap();
        let path = record["path"].as_str().unwrap().to_owned();
        assert!(
            by_path.insert(path.clone(), record).is_none(),
            "two records for {path}"
        );
    }
    by_path
}

/// What `facade scan` writes for the same files, by path.
fn scanned(folder: &Path) -> BTreeMap<String, Value> {
    let out = facade()
        .args(["scan", "--format", "jsonl", "--no-progress"])
        .arg(folder)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|line| {
            let record: Value = serde_json::from_str(line).unwrap();
            (record["path"].as_str().unwrap().to_owned(), record)
        })
        .collect()
}

fn assert_same_records(queued: &BTreeMap<String, Value>, folder: &Path) {
    let direct = scanned(folder);
    assert_eq!(
        queued.keys().collect::<BTreeSet<_>>(),
        direct.keys().collect::<BTreeSet<_>>()
    );
    for (path, record) in queued {
        assert_eq!(
            record, &direct[path],
            "{path}: not the record facade scan writes"
        );
    }
}

/// Jobs leased now by workers whose name matches `holder` (SQL LIKE).
fn leased_by(client: &mut postgres::Client, holder: &str) -> i64 {
    client
        .query_one(
            "SELECT count(*) FROM jobs WHERE state = 'leased' AND leased_by LIKE $1",
            &[&holder],
        )
        .unwrap()
        .get(0)
}

#[test]
fn three_workers_one_killed_every_image_gets_one_record() {
    let Some(cluster) = cluster_or_skip("the queue's kill test") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let folder = portraits(dir.path(), 48);
    let db = cluster.new_database();
    let added = queue_add(&db, &[&folder]);
    assert!(added.contains("queued 48 new images"), "{added}");
    let again = queue_add(&db, &[&folder]);
    assert!(again.contains("48 already queued"), "{again}");

    let mut doomed = spawn_worker(&db, &[]);
    let survivors: Vec<Child> = (0..2)
        .map(|_| spawn_worker(&db, &["--until-empty"]))
        .collect();
    // Killed while it holds a batch, after the queue got going.
    let mut db_client = postgres::Client::connect(&db, postgres::NoTls).unwrap();
    let holder = format!("%:{}", doomed.id());
    wait_for(&db, "some results", |s| s["done"].as_u64().unwrap() >= 6);
    let started = Instant::now();
    while leased_by(&mut db_client, &holder) == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "it never held a job"
        );
    }
    doomed.kill().unwrap(); // SIGKILL
    doomed.wait().unwrap();
    assert!(
        leased_by(&mut db_client, &holder) > 0,
        "killed holding jobs"
    );
    let logs: Vec<String> = survivors.into_iter().map(finished).collect();
    let end = status(&db);
    assert_eq!(
        (
            end["done"].as_u64(),
            end["pending"].as_u64(),
            end["leased"].as_u64()
        ),
        (Some(48), Some(0), Some(0)),
        "{end}"
    );
    let retried: i64 = db_client
        .query_one("SELECT count(*) FROM jobs WHERE attempts > 1", &[])
        .unwrap()
        .get(0);
    assert!(retried > 0, "the killed worker's jobs were taken again");
    let queued = results(&db);
    assert_eq!(queued.len(), 48);
    assert!(queued.values().all(|r| r["status"] == "ok"));
    assert_same_records(&queued, &folder);
    assert!(logs.iter().all(|l| l.contains("stopped")), "{logs:?}");
}

#[test]
fn a_database_restart_mid_batch_loses_and_doubles_nothing() {
    let Some(cluster) = cluster_or_skip("the queue's restart test") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let folder = portraits(dir.path(), 40);
    let db = cluster.new_database();
    queue_add(&db, &[&folder]);
    let workers: Vec<Child> = (0..2)
        .map(|_| spawn_worker(&db, &["--until-empty"]))
        .collect();
    wait_for(&db, "the first results", |s| {
        s["done"].as_u64().unwrap() >= 6
    });
    cluster.stop();
    std::thread::sleep(Duration::from_millis(1500));
    cluster.start_again();
    let logs: Vec<String> = workers.into_iter().map(finished).collect();
    assert!(
        logs.iter()
            .any(|l| l.contains("the database is unavailable")),
        "no worker noticed the restart: {logs:?}"
    );
    let queued = results(&db);
    assert_eq!(queued.len(), 40);
    assert_same_records(&queued, &folder);
    assert_eq!(status(&db)["done"], 40);
}

#[test]
fn sigterm_finishes_the_batch_in_hand_and_exits_cleanly() {
    let Some(cluster) = cluster_or_skip("the worker's SIGTERM test") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let folder = portraits(dir.path(), 24);
    let db = cluster.new_database();
    queue_add(&db, &[&folder]);
    let worker = spawn_worker(&db, &["--lease", "10m"]);
    wait_for(&db, "a first result", |s| s["done"].as_u64().unwrap() >= 2);
    let term = Command::new("kill")
        .args(["-TERM", &worker.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let log = finished(worker);
    assert!(log.contains("stopped"), "{log}");
    // Nothing left leased for ten minutes: the batch in hand was completed.
    let now = status(&db);
    assert_eq!(now["leased"], 0, "{now}");
    assert_eq!(
        now["done"].as_u64().unwrap() + now["pending"].as_u64().unwrap(),
        24
    );
    // An idle worker also stops at once on SIGTERM.
    finished(spawn_worker(&db, &["--until-empty"]));
    let idle = spawn_worker(&db, &[]);
    std::thread::sleep(Duration::from_millis(800));
    Command::new("kill")
        .args(["-TERM", &idle.id().to_string()])
        .status()
        .unwrap();
    finished(idle);
    assert_eq!(results(&db).len(), 24);
}

#[test]
fn results_cover_unreadable_paths_and_unfinished_jobs_and_write_csv() {
    let Some(cluster) = cluster_or_skip("the queue's results test") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let folder = portraits(dir.path(), 3);
    std::fs::write(folder.join("broken.jpg"), b"\xff\xd8\xff not really").unwrap();
    let db = cluster.new_database();
    let missing = dir.path().join("missing.jpg");
    let out = facade()
        .args(["queue", "add", "--db", &db])
        .arg(&folder)
        .arg(&missing)
        .output()
        .unwrap();
    assert!(out.status.success());
    let pending = facade().args(["results", "--db", &db]).output().unwrap();
    assert_eq!(pending.status.code(), Some(3), "unfinished jobs: exit 3");
    assert_eq!(String::from_utf8_lossy(&pending.stdout).lines().count(), 1);
    assert!(String::from_utf8_lossy(&pending.stderr).contains("4 queued images not finished"));
    finished(spawn_worker(&db, &["--until-empty"]));
    let records = results(&db);
    assert_eq!(records.len(), 5);
    let broken = &records[folder.join("broken.jpg").to_str().unwrap()];
    assert_eq!(broken["status"], "error");
    assert_eq!(records[missing.to_str().unwrap()]["status"], "error");
    let csv = facade()
        .args(["results", "--format", "csv", "--db", &db])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&csv.stdout);
    assert!(text.starts_with("path,status,"), "{text}");
    // A header, then a row per face (at least one per record).
    assert!(text.lines().count() >= 6, "{text}");
    let human = facade()
        .args(["queue", "status", "--db", &db])
        .output()
        .unwrap();
    let line = String::from_utf8_lossy(&human.stdout);
    assert!(line.contains("3 done, 2 failed"), "{line}");

    // The same bytes under other names: records from the store, with their own paths.
    let copies = dir.path().join("copies");
    std::fs::create_dir(&copies).unwrap();
    for i in 0..3 {
        let name = format!("p{i:03}.jpg");
        std::fs::copy(folder.join(&name), copies.join(&name)).unwrap();
    }
    queue_add(&db, &[&copies]);
    let log = finished(spawn_worker(&db, &["--until-empty"]));
    assert!(
        log.contains("3 images judged (0 errors, 3 from the store)"),
        "{log}"
    );
    let records = results(&db);
    assert_eq!(records.len(), 8);
    for i in 0..3 {
        let name = format!("p{i:03}.jpg");
        let original = &records[folder.join(&name).to_str().unwrap()];
        let copy = &records[copies.join(&name).to_str().unwrap()];
        assert_eq!(copy["score"], original["score"]);
        assert_eq!(copy["sha256"], original["sha256"]);
    }
}

#[test]
fn the_queue_needs_postgresql() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("f.db");
    for args in [
        vec!["queue", "add", "--db", db.to_str().unwrap(), "."],
        vec!["worker", "--db", db.to_str().unwrap()],
        vec!["results", "--db", db.to_str().unwrap()],
    ] {
        let out = facade().args(&args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("needs a PostgreSQL store"), "{stderr}");
    }
}

#[test]
fn two_servers_on_one_database_share_networks_and_reviews() {
    let Some(cluster) = cluster_or_skip("the service's PostgreSQL test") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let db = cluster.new_database();
    store_simulated_run(dir.path(), &db);
    let first = Server::start(&db, &["--token", TOKEN]);
    let second = Server::start(&db, &["--token", TOKEN]);
    let agent = agent();
    let get = |server: &Server, path: &str| {
        answer(
            agent
                .get(&server.url(path))
                .header("Authorization", &format!("Bearer {TOKEN}"))
                .call(),
        )
    };
    let (status, body) = get(&second, "/v1/networks");
    assert_eq!(status, 200);
    let networks = body["networks"].as_array().unwrap();
    assert_eq!(networks.len(), 6, "the six planted networks: {body}");
    let id = networks[0]["id"].as_str().unwrap();
    let review = serde_json::json!({
        "subject": format!("network:{id}"),
        "decision": "confirm",
        "note": "seen from the other server",
        "reviewer": "ana"
    });
    let (status, created) = answer(
        agent
            .post(&first.url("/v1/reviews"))
            .header("Authorization", &format!("Bearer {TOKEN}"))
            .header("Content-Type", "application/json")
            .send(review.to_string().as_bytes()),
    );
    assert_eq!(status, 201, "{created}");
    let (status, body) = get(&second, &format!("/v1/reviews?subject=network:{id}"));
    assert_eq!(status, 200);
    assert_eq!(body["reviews"][0]["note"], "seen from the other server");
    assert_eq!(body["reviews"][0]["id"], created["id"]);
    // A scan through one server is a store hit through the other.
    let bytes = std::fs::read(examples().join("astronaut-400.jpg")).unwrap();
    let scan = |server: &Server| {
        let mut response = agent
            .post(&server.url("/v1/scan"))
            .header("Authorization", &format!("Bearer {TOKEN}"))
            .send(&bytes[..])
            .unwrap();
        let cache = response.headers()["x-facade-cache"]
            .to_str()
            .unwrap()
            .to_owned();
        let body: Value =
            serde_json::from_str(&response.body_mut().read_to_string().unwrap()).unwrap();
        (cache, body["score"].clone())
    };
    let (miss, score) = scan(&first);
    let (hit, same_score) = scan(&second);
    assert_eq!((miss.as_str(), hit.as_str()), ("miss", "hit"));
    assert_eq!(score, same_score);
}
