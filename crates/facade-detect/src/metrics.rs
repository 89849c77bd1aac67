//! ROC figures: area under the curve and true-positive rate at a fixed false-positive rate.
//!
//! Convention: a higher score means "more likely generated"; an image is flagged when its score
//! is strictly above the threshold, so ties at the threshold count against the detector.

use crate::fusion::threshold_for_fpr;

/// ROC AUC: the probability that a random fake scores above a random real (ties count half).
pub fn roc_auc(fakes: &[f64], reals: &[f64]) -> Option<f64> {
    if fakes.is_empty() || reals.is_empty() {
        return None;
    }
    let mut all: Vec<(f64, bool)> = fakes
        .iter()
        .map(|&s| (s, true))
        .chain(reals.iter().map(|&s| (s, false)))
        .collect();
    all.sort_by(|a, b| a.0.total_cmp(&b.0));
    // Mann-Whitney U with average ranks for ties.
    let mut rank_sum_fake = 0.0;
    let mut i = 0;
    while i < all.len() {
        let mut j = i;
        while j < all.len() && all[j].0 == all[i].0 {
            j += 1;
        }
        let average_rank = (i + j + 1) as f64 / 2.0;
        rank_sum_fake += average_rank * all[i..j].iter().filter(|x| x.1).count() as f64;
        i = j;
    }
    let (nf, nr) = (fakes.len() as f64, reals.len() as f64);
    Some((rank_sum_fake - nf * (nf + 1.0) / 2.0) / (nf * nr))
}

/// The fraction of `scores` strictly above `threshold`.
pub fn rate_above(scores: &[f64], threshold: f64) -> Option<f64> {
    if scores.is_empty() {
        return None;
    }
    Some(scores.iter().filter(|&&s| s > threshold).count() as f64 / scores.len() as f64)
}

/// TPR at the threshold that flags at most a fraction `fpr` of the reals, with that threshold.
pub fn tpr_at_fpr(fakes: &[f64], reals: &[f64], fpr: f64) -> Option<(f64, f64)> {
    if reals.is_empty() {
        return None;
    }
    let threshold = threshold_for_fpr(reals, fpr);
    rate_above(fakes, threshold).map(|tpr| (tpr, threshold))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auc_of_perfect_random_and_inverted_scores() {
        assert_eq!(roc_auc(&[2.0, 3.0], &[0.0, 1.0]), Some(1.0));
        assert_eq!(roc_auc(&[0.0, 1.0], &[2.0, 3.0]), Some(0.0));
        assert_eq!(roc_auc(&[1.0, 1.0], &[1.0, 1.0]), Some(0.5));
        assert_eq!(roc_auc(&[], &[1.0]), None);
    }

    #[test]
    fn tpr_at_fpr_counts_ties_against_the_detector() {
        let reals: Vec<f64> = (0..100).map(f64::from).collect();
        // FPR 1%: one real (99) may lie above, so the threshold is 98.
        let (tpr, t) = tpr_at_fpr(&[98.0, 98.5, 200.0], &reals, 0.01).expect("figures");
        assert_eq!(t, 98.0);
        assert!((tpr - 2.0 / 3.0).abs() < 1e-12);
    }
}
