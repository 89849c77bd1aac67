//! The simulator's planted networks are recovered from its archive-format export.

use facade_network::dataset::{Dataset, IngestOptions};
use facade_network::diagnostics::Diagnostics;
use facade_network::ingest::{read_twitter_tweets, read_twitter_users};
use facade_network::networks::{analyse, AnalysisParams};
use facade_network::simulate::{recovery, simulate, SimulateParams};

fn detect(dir: &std::path::Path) -> (Dataset, facade_network::networks::Analysis, Diagnostics) {
    let mut data = Dataset::new(IngestOptions::default());
    let mut diag = Diagnostics::default();
    read_twitter_users(&dir.join("users.csv"), &mut data, &mut diag).unwrap();
    read_twitter_tweets(&dir.join("tweets.csv"), &mut data, &mut diag).unwrap();
    data.finish_reading_into(&mut diag).unwrap();
    let analysis = analyse(&data, &AnalysisParams::default()).unwrap();
    (data, analysis, diag)
}

#[test]
fn default_simulation_is_recovered_with_f1_at_least_0_9_and_no_organic_network() {
    for seed in 1..=5 {
        let dir = tempfile::tempdir().unwrap();
        let params = SimulateParams {
            seed,
            ..SimulateParams::default()
        };
        let truth = simulate(dir.path(), &params, false).unwrap();
        let (data, analysis, diag) = detect(dir.path());
        assert_eq!(diag.rejected, 0, "{}", diag.summary());
        assert_eq!(diag.posts_read, truth.posts);
        let flagged = analysis.flagged_accounts(&data);
        let result = recovery(&truth, &flagged);
        eprintln!("seed {seed}: {:?}", result);
        for (name, found, f1) in &result.per_network {
            assert!(
                *f1 >= 0.9,
                "seed {seed}: {name} best match {found:?} F1 {f1:.3}"
            );
        }
        assert!(
            result.false_networks.is_empty(),
            "seed {seed}: organic communities flagged: {:?}",
            result.false_networks
        );
    }
}
