//! What only the PostgreSQL backend has: schema refusal across processes, reconnection after a
//! restart, and the scan queue. Run one after the other on one private cluster by
//! `the_store_suite_passes_on_postgresql`.

use std::time::Duration;

use crate::queue::{Completion, JobState, Queue, MAX_ATTEMPTS};
use crate::testing::TestCluster;
use crate::*;

pub(super) type Case = fn(&TestCluster);

pub(super) const CASES: &[(&str, Case)] = &[
    ("a_newer_schema_is_refused", a_newer_schema_is_refused),
    ("a_wrong_url_is_a_clear_error", a_wrong_url_is_a_clear_error),
    ("adding_twice_queues_once", adding_twice_queues_once),
    ("claims_never_overlap", claims_never_overlap),
    (
        "an_expired_lease_moves_the_job",
        an_expired_lease_moves_the_job,
    ),
    (
        "released_jobs_are_pending_again",
        released_jobs_are_pending_again,
    ),
    (
        "a_job_that_kills_every_worker_fails",
        a_job_that_kills_every_worker_fails,
    ),
    ("completion_keeps_the_scan", completion_keeps_the_scan),
    (
        "store_and_queue_reconnect",
        store_and_queue_reconnect_after_a_restart,
    ),
];

fn queue(url: &str) -> Queue {
    Queue::open(&Location::Postgres(url.to_owned())).unwrap()
}

fn item(path: &str, content: &str) -> (String, String) {
    (
        path.to_owned(),
        facade_image::sha256_hex(content.as_bytes()),
    )
}

fn record(path: &str) -> serde_json::Value {
    serde_json::json!({"path": path, "status": "ok", "score": 0.25})
}

fn complete(queue: &mut Queue, jobs: &[queue::Job]) -> usize {
    let records: Vec<_> = jobs.iter().map(|j| record(&j.path)).collect();
    let completions: Vec<Completion> = jobs
        .iter()
        .zip(&records)
        .map(|(job, record)| Completion {
            job,
            record,
            failed: false,
            scan: None,
        })
        .collect();
    queue.complete(&completions).unwrap()
}

fn states(queue: &mut Queue) -> Vec<(String, JobState)> {
    let mut seen = Vec::new();
    queue
        .results(|r| {
            seen.push((r.path, r.state));
            Ok(())
        })
        .unwrap();
    seen
}

fn a_newer_schema_is_refused(cluster: &TestCluster) {
    let url = cluster.new_database();
    drop(Store::open(&Location::Postgres(url.clone())).unwrap());
    let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    client
        .execute(
            "UPDATE facade_schema SET version = $1",
            &[&(postgres_migrations::LATEST as i32 + 1)],
        )
        .unwrap();
    let error = Store::open(&Location::Postgres(url))
        .err()
        .expect("refused");
    assert!(matches!(error, StoreError::TooNew { .. }), "{error}");
    assert!(error.to_string().contains("upgrade facade"), "{error}");
}

fn a_wrong_url_is_a_clear_error(cluster: &TestCluster) {
    let url = cluster
        .url("no_such_database")
        .replace("facade@", "facade:hunter2@");
    let error = Store::open(&Location::Postgres(url))
        .err()
        .expect("refused");
    let message = error.to_string();
    assert!(message.contains("no_such_database"), "{message}");
    assert!(message.contains("does not exist"), "{message}");
    assert!(
        !message.contains("hunter2"),
        "the password leaked: {message}"
    );
}

fn adding_twice_queues_once(cluster: &TestCluster) {
    let mut queue = queue(&cluster.new_database());
    let added = queue
        .add(&[item("/a.jpg", "a"), item("/b.jpg", "b")])
        .unwrap();
    assert_eq!((added.new, added.changed, added.unchanged), (2, 0, 0));
    let again = queue
        .add(&[item("/a.jpg", "a"), item("/b.jpg", "b2")])
        .unwrap();
    assert_eq!((again.new, again.changed, again.unchanged), (0, 1, 1));
    assert!(queue
        .add_unreadable("/c.jpg", "cannot open: denied")
        .unwrap());
    assert!(!queue.add_unreadable("/a.jpg", "cannot open").unwrap());
    let status = queue.status().unwrap();
    assert_eq!((status.pending, status.failed, status.total), (2, 1, 3));
    let mut errors = Vec::new();
    queue
        .results(|r| {
            errors.push(r.error);
            Ok(())
        })
        .unwrap();
    assert_eq!(
        errors,
        vec![None, None, Some("cannot open: denied".to_owned())]
    );
}

fn claims_never_overlap(cluster: &TestCluster) {
    let url = cluster.new_database();
    let mut setup = queue(&url);
    let items: Vec<_> = (0..200)
        .map(|i| item(&format!("/{i:03}.jpg"), &i.to_string()))
        .collect();
    setup.add(&items).unwrap();
    let claimed: Vec<Vec<i64>> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..4)
            .map(|w| {
                let url = url.clone();
                scope.spawn(move || {
                    let mut queue = queue(&url);
                    let mut mine = Vec::new();
                    loop {
                        let jobs = queue
                            .claim(&format!("w{w}"), 7, Duration::from_secs(60))
                            .unwrap();
                        if jobs.is_empty() {
                            return mine;
                        }
                        assert_eq!(complete(&mut queue, &jobs), jobs.len());
                        mine.extend(jobs.iter().map(|j| j.id));
                    }
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    });
    let mut all: Vec<i64> = claimed.into_iter().flatten().collect();
    all.sort_unstable();
    let before = all.len();
    all.dedup();
    assert_eq!((before, all.len()), (200, 200), "a job was claimed twice");
    assert!(states(&mut setup).iter().all(|(_, s)| *s == JobState::Done));
    assert_eq!(setup.unfinished().unwrap(), 0);
}

fn an_expired_lease_moves_the_job(cluster: &TestCluster) {
    let url = cluster.new_database();
    let (mut slow, mut fast) = (queue(&url), queue(&url));
    slow.add(&[item("/x.jpg", "x")]).unwrap();
    let held = slow.claim("slow", 5, Duration::from_millis(50)).unwrap();
    assert_eq!(held.len(), 1);
    assert!(fast
        .claim("fast", 5, Duration::from_secs(60))
        .unwrap()
        .is_empty());
    std::thread::sleep(Duration::from_millis(120));
    let taken = fast.claim("fast", 5, Duration::from_secs(60)).unwrap();
    assert_eq!(taken.len(), 1, "the lease ran out, so the job is claimable");
    assert_eq!(
        complete(&mut slow, &held),
        0,
        "a lost lease completes nothing"
    );
    assert_eq!(complete(&mut fast, &taken), 1);
    assert_eq!(complete(&mut fast, &taken), 0, "a job completes once");
    assert_eq!(states(&mut fast), vec![("/x.jpg".into(), JobState::Done)]);
}

fn released_jobs_are_pending_again(cluster: &TestCluster) {
    let mut queue = queue(&cluster.new_database());
    queue.add(&[item("/r.jpg", "r")]).unwrap();
    let jobs = queue.claim("w", 5, Duration::from_secs(600)).unwrap();
    queue.release(&jobs).unwrap();
    assert_eq!(queue.status().unwrap().pending, 1);
    assert_eq!(
        complete(&mut queue, &jobs),
        0,
        "released means no longer held"
    );
    let again = queue.claim("w", 5, Duration::from_secs(600)).unwrap();
    assert_eq!(again.len(), 1);
}

fn a_job_that_kills_every_worker_fails(cluster: &TestCluster) {
    let mut queue = queue(&cluster.new_database());
    queue.add(&[item("/poison.jpg", "p")]).unwrap();
    for attempt in 1..=MAX_ATTEMPTS {
        let jobs = queue.claim("doomed", 1, Duration::from_millis(20)).unwrap();
        assert_eq!(jobs.len(), 1, "attempt {attempt}");
        std::thread::sleep(Duration::from_millis(40));
    }
    assert!(queue
        .claim("next", 1, Duration::from_secs(60))
        .unwrap()
        .is_empty());
    let mut results = Vec::new();
    queue
        .results(|r| {
            results.push(r);
            Ok(())
        })
        .unwrap();
    assert_eq!(results[0].state, JobState::Failed);
    let error = results[0].error.as_deref().unwrap_or_default();
    assert!(error.contains("abandoned: 3 workers"), "{error}");
    assert_eq!(queue.unfinished().unwrap(), 0);
}

fn completion_keeps_the_scan(cluster: &TestCluster) {
    let url = cluster.new_database();
    let mut queue = queue(&url);
    queue.add(&[item("/s.jpg", "s")]).unwrap();
    let jobs = queue.claim("w", 1, Duration::from_secs(60)).unwrap();
    let record = record("/s.jpg");
    let kept = queue
        .complete(&[Completion {
            job: &jobs[0],
            record: &record,
            failed: false,
            scan: Some(NewScan {
                sha256: &jobs[0].sha256,
                judge: "judge@1",
                record: &record,
                thumbnail: None,
            }),
        }])
        .unwrap();
    assert_eq!(kept, 1);
    let cached = queue.cached_scans(&[&jobs[0].sha256], "judge@1").unwrap();
    assert_eq!(cached[&jobs[0].sha256]["score"], 0.25);
    assert!(cached[&jobs[0].sha256].get("path").is_none());
    let mut store = Store::open(&Location::Postgres(url)).unwrap();
    assert!(store
        .cached_scan(&jobs[0].sha256, "judge@1")
        .unwrap()
        .is_some());
    let mut stored = Vec::new();
    queue
        .results(|r| {
            stored.push(r.record);
            Ok(())
        })
        .unwrap();
    assert_eq!(stored, vec![Some(record.to_string())]);
}

fn store_and_queue_reconnect_after_a_restart(cluster: &TestCluster) {
    let url = cluster.new_database();
    let mut store = Store::open(&Location::Postgres(url.clone())).unwrap();
    let mut queue = queue(&url);
    store
        .add_review(&NewReview {
            subject: "account:7".parse().unwrap(),
            decision: Decision::Confirm,
            note: String::new(),
            reviewer: "r".into(),
        })
        .unwrap();
    cluster.restart();
    // The first call on a connection the server cut may fail; the next one reconnects.
    let _ = store.reviews(None);
    assert_eq!(store.reviews(None).unwrap().len(), 1);
    let _ = queue.status();
    assert_eq!(queue.status().unwrap().total, 0);
}
