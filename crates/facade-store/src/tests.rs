use super::*;

mod postgres_tests;
use facade_image::sha256_hex;

fn temp_store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_file(&dir.path().join("nested/facade.db")).unwrap();
    (dir, store)
}

/// The behaviour every backend must have: each case gets a fresh, empty store from `open`
/// (and may call it again to reopen the same one).
type Case = fn(&dyn Fn() -> Store);

const CASES: &[(&str, Case)] = &[
    (
        "reopening_keeps_data_and_applies_nothing_twice",
        reopening_keeps_data,
    ),
    (
        "scans_are_found_by_hash_and_judge",
        scans_are_found_by_hash_and_judge,
    ),
    (
        "the_same_members_are_the_same_network_across_runs",
        same_members_same_network,
    ),
    (
        "unflagged_networks_and_plain_accounts_are_listed_only_when_asked",
        unflagged_listed_when_asked,
    ),
    (
        "reviews_are_kept_in_order_and_by_subject",
        reviews_in_order_and_by_subject,
    ),
];

/// Runs one case on a new SQLite file.
fn on_sqlite(case: Case) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/facade.db");
    case(&|| Store::open_file(&path).unwrap());
}

#[test]
fn the_store_suite_passes_on_sqlite() {
    for (name, case) in CASES {
        eprintln!("sqlite: {name}");
        on_sqlite(*case);
    }
}

/// The same cases on a real PostgreSQL server (a private cluster this test starts), each on
/// its own new database.
#[test]
fn the_store_suite_passes_on_postgresql() {
    let cluster = match testing::TestCluster::start() {
        Ok(cluster) => cluster,
        Err(why) => {
            return facade_image::fixtures::skip_unless_ci(
                "the PostgreSQL store tests",
                &why.to_string(),
                testing::HOW_TO_INSTALL,
            )
        }
    };
    for (name, case) in CASES {
        eprintln!("postgresql: {name}");
        let url = cluster.new_database();
        case(&|| Store::open(&Location::Postgres(url.clone())).unwrap());
    }
    for (name, case) in postgres_tests::CASES {
        eprintln!("postgresql: {name}");
        case(&cluster);
    }
}

/// The SQLite connection under a store (for checks of SQLite's own settings).
fn sqlite_conn(store: &Store) -> &rusqlite::Connection {
    match &store.backend {
        Backend::Sqlite(sqlite) => &sqlite.conn,
        Backend::Postgres(_) => panic!("a SQLite store was expected"),
    }
}

fn review(subject: &str, decision: Decision) -> NewReview {
    NewReview {
        subject: subject.parse().unwrap(),
        decision,
        note: "why".into(),
        reviewer: "tester".into(),
    }
}

#[test]
fn a_new_store_is_at_the_latest_version_in_wal_mode() {
    let (_dir, mut store) = temp_store();
    assert_eq!(store.schema_version().unwrap(), sqlite_migrations::LATEST);
    let mode: String = sqlite_conn(&store)
        .pragma_query_value(None, "journal_mode", |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    let sync: i64 = sqlite_conn(&store)
        .pragma_query_value(None, "synchronous", |r| r.get(0))
        .unwrap();
    assert_eq!(sync, 2, "synchronous = FULL");
}

fn reopening_keeps_data(open: &dyn Fn() -> Store) {
    let mut store = open();
    assert_eq!(store.schema_version().unwrap(), sqlite_migrations::LATEST);
    store
        .add_review(&review("account:1", Decision::Confirm))
        .unwrap();
    drop(store);
    let mut store = open();
    assert_eq!(store.reviews(None).unwrap().len(), 1);
    assert_eq!(store.schema_version().unwrap(), sqlite_migrations::LATEST);
    assert_eq!(store.integrity_check().unwrap(), "ok");
}

#[test]
fn a_store_from_a_newer_facade_is_refused() {
    let (dir, store) = temp_store();
    sqlite_conn(&store)
        .pragma_update(None, "user_version", sqlite_migrations::LATEST + 1)
        .unwrap();
    drop(store);
    let error = Store::open_file(&dir.path().join("nested/facade.db"))
        .err()
        .expect("refused");
    assert!(matches!(error, StoreError::TooNew { .. }), "{error}");
    assert!(error.to_string().contains("upgrade facade"));
}

#[test]
fn a_file_that_is_not_a_database_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("junk.db");
    std::fs::write(
        &path,
        b"this is not sqlite, just some text that fills the header",
    )
    .unwrap();
    let error = Store::open_file(&path).err().expect("refused");
    assert!(error.to_string().contains("junk.db"), "{error}");
}

fn scans_are_found_by_hash_and_judge(open: &dyn Fn() -> Store) {
    let mut store = open();
    let sha = sha256_hex(b"image bytes");
    assert_eq!(sha.len(), 64);
    let record = serde_json::json!({"status": "ok", "score": 0.9});
    store
        .put_scan(&NewScan {
            sha256: &sha,
            judge: "builtin@0.01",
            record: &record,
            thumbnail: Some(b"jpeg"),
        })
        .unwrap();
    let found = store.cached_scan(&sha, "builtin@0.01").unwrap().unwrap();
    assert_eq!(found.record, record);
    assert!(store.cached_scan(&sha, "other-model").unwrap().is_none());
    assert!(store
        .cached_scan(&sha256_hex(b"x"), "builtin@0.01")
        .unwrap()
        .is_none());
    assert_eq!(
        store.thumbnail(&sha).unwrap().as_deref(),
        Some(&b"jpeg"[..])
    );
}

fn same_members_same_network(open: &dyn Fn() -> Store) {
    let mut store = open();
    let members = vec!["b".to_owned(), "a".to_owned(), "c".to_owned()];
    let record = serde_json::json!({"id": "N1"});
    let network = NewNetwork {
        label: "N1",
        score: 0.9,
        flagged: true,
        members: &members,
        record: &record,
    };
    let accounts = vec![Account {
        id: "a".into(),
        handle: "alice".into(),
        network: Some("N1".into()),
        image_sha256: None,
        ai_score: Some(0.97),
    }];
    let first = store.put_run("run-1", &[network], &accounts).unwrap();
    let reordered = vec!["c".to_owned(), "a".to_owned(), "b".to_owned()];
    let network = NewNetwork {
        label: "N3",
        score: 0.8,
        flagged: true,
        members: &reordered,
        record: &record,
    };
    let second = store.put_run("run-2", &[network], &[]).unwrap();
    assert_eq!(first, second);
    let listed = store.networks(false).unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (listed[0].label.as_str(), listed[0].run.as_str()),
        ("N3", "run-2")
    );
    let stored = store.network(&first[0]).unwrap().unwrap();
    assert_eq!(stored.record, record);
    assert!(store.network("n000000000000").unwrap().is_none());
    let accounts = store.accounts(false, 0.5).unwrap();
    assert_eq!(accounts[0].network.as_deref(), Some(first[0].as_str()));
}

fn unflagged_listed_when_asked(open: &dyn Fn() -> Store) {
    let mut store = open();
    let members = vec!["x".to_owned(), "y".to_owned()];
    let record = serde_json::json!({});
    let network = NewNetwork {
        label: "N1",
        score: 0.2,
        flagged: false,
        members: &members,
        record: &record,
    };
    let plain = Account {
        id: "z".into(),
        handle: "zed".into(),
        network: None,
        image_sha256: None,
        ai_score: Some(0.1),
    };
    store.put_run("r", &[network], &[plain]).unwrap();
    assert!(store.networks(false).unwrap().is_empty());
    assert_eq!(store.networks(true).unwrap().len(), 1);
    assert!(store.accounts(false, 0.5).unwrap().is_empty());
    assert_eq!(store.accounts(true, 0.5).unwrap().len(), 1);
}

fn reviews_in_order_and_by_subject(open: &dyn Fn() -> Store) {
    let mut store = open();
    let first = store
        .add_review(&review("network:n1", Decision::Confirm))
        .unwrap();
    let image = format!("image:{}", sha256_hex(b"face"));
    store
        .add_review(&review(&image, Decision::Dismiss))
        .unwrap();
    store
        .add_review(&review("network:n1", Decision::Dismiss))
        .unwrap();
    let all = store.reviews(None).unwrap();
    assert_eq!(all.len(), 3);
    assert_eq!(all[0], first);
    let of_network = store.reviews(Some(&"network:n1".parse().unwrap())).unwrap();
    assert_eq!(of_network.len(), 2);
    assert_eq!(of_network[1].decision, Decision::Dismiss);
}

#[test]
fn the_queue_refuses_a_sqlite_store() {
    let error = queue::Queue::open(&Location::parse("facade.db"))
        .err()
        .expect("refused");
    assert!(
        error.to_string().contains("needs a PostgreSQL store"),
        "{error}"
    );
}

#[test]
fn subjects_parse_strictly() {
    assert_eq!(
        "account:123".parse::<Subject>(),
        Ok(Subject::Account("123".into()))
    );
    assert!("account:".parse::<Subject>().is_err());
    assert!("user:1".parse::<Subject>().is_err());
    assert!("plain".parse::<Subject>().is_err());
    assert_eq!("image:abc".parse::<Subject>(), Err(SubjectError::ImageHash));
    assert!(format!("image:{}", "A".repeat(64))
        .parse::<Subject>()
        .is_err());
    assert!("network:a\nb".parse::<Subject>().is_err());
    let subject: Subject = serde_json::from_str("\"network:n1\"").unwrap();
    assert_eq!(serde_json::to_string(&subject).unwrap(), "\"network:n1\"");
}
