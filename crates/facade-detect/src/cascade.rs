//! The mirror-view cascade: scanning reads a face's aligned crop first, and the crop's mirror
//! image only where the second view could change a decision.
//!
//! The classifier's answer for a face is the mean of its logits on the crop and on its mirror
//! image. The mirror is worth about 7 points of TPR at FPR 1% (README, stop 27), and it doubles
//! the classifier's cost, the largest part of a full scan. But adding the mirror moves a face's
//! fused log-odds by a bounded amount, and most faces are further than that from every operating
//! point, so for them the second view cannot change the verdict.
//!
//! The bound is measured on the calibration fold (faces no classifier was trained on): the
//! largest change the mirror made to any calibration face's fused log-odds. A face whose one-view
//! log-odds lies further than that from each protected threshold keeps its one-view score; the
//! others read the mirror and get exactly the two-view score. So on the calibration fold no
//! verdict at a protected operating point differs from reading both views everywhere; on other
//! faces it can only differ where the mirror moves a face more than it moved any calibration face.
//!
//! What this changes in records: far from the protected thresholds the score is the crop's
//! alone (a little higher or lower than the two-view score, on the same side of each threshold).

use serde::{Deserialize, Serialize};

use crate::fusion::logit;

/// The operating points every scan protects: the verdict's default (FPR 1%) and the stricter
/// one `facade eval` reports (FPR 0.1%). A scan at another false-positive rate protects its own
/// as well ([`crate::Detectors::protect_operating_point`]).
pub const PROTECTED_FPRS: [f64; 2] = [0.01, 0.001];

/// How far the mirror view moved fused scores on the calibration fold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MirrorCascade {
    /// The largest change in fused log-odds that adding the mirror view made to a calibration
    /// face: the half-width of the band around each threshold.
    pub margin: f64,
    /// How many calibration faces it was measured on.
    pub faces: usize,
    /// The median and the 99th percentile of that change, for the record.
    pub median_shift: f64,
    pub p99_shift: f64,
    /// The share of the calibration faces whose mirror falls to be read at [`PROTECTED_FPRS`]'
    /// thresholds, for the record (what the cascade saves is the rest).
    pub share_read: f64,
}

/// One calibration face's fused log-odds from the crop alone and from both views.
#[derive(Debug, Clone, Copy)]
pub struct ViewPair {
    pub one_view: f64,
    pub both_views: f64,
}

impl MirrorCascade {
    /// Measured on calibration faces; `thresholds` are the fused-score thresholds of
    /// [`PROTECTED_FPRS`]. `None` without faces or with a log-odds that is not finite.
    pub fn fit(pairs: &[ViewPair], thresholds: &[f64]) -> Option<MirrorCascade> {
        let mut shifts: Vec<f64> = pairs
            .iter()
            .map(|p| (p.both_views - p.one_view).abs())
            .collect();
        if shifts.is_empty() || shifts.iter().any(|s| !s.is_finite()) {
            return None;
        }
        shifts.sort_by(f64::total_cmp);
        let quantile = |q: f64| shifts[((shifts.len() - 1) as f64 * q).round() as usize];
        let mut cascade = MirrorCascade {
            margin: quantile(1.0),
            faces: shifts.len(),
            median_shift: quantile(0.5),
            p99_shift: quantile(0.99),
            share_read: 1.0,
        };
        let band = cascade.band(thresholds);
        let read = pairs.iter().filter(|p| band.reads(p.one_view)).count();
        cascade.share_read = read as f64 / pairs.len() as f64;
        Some(cascade)
    }

    /// The one-view log-odds at which the mirror is read: within [`MirrorCascade::margin`] of
    /// any of `thresholds` (fused scores), and everything between them.
    pub fn band(&self, thresholds: &[f64]) -> MirrorBand {
        let log_odds = thresholds.iter().map(|&t| logit(t));
        MirrorBand {
            low: log_odds.clone().fold(f64::INFINITY, f64::min) - self.margin,
            high: log_odds.fold(f64::NEG_INFINITY, f64::max) + self.margin,
        }
    }
}

/// The fused log-odds, from the crop alone, within which a face's mirror is read.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MirrorBand {
    low: f64,
    high: f64,
}

impl MirrorBand {
    /// Whether a face whose crop alone gives `one_view` log-odds must read its mirror (a value
    /// that is not a number always does).
    pub fn reads(&self, one_view: f64) -> bool {
        !(one_view < self.low || one_view > self.high)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fusion::sigmoid;

    fn pair(one_view: f64, both_views: f64) -> ViewPair {
        ViewPair {
            one_view,
            both_views,
        }
    }

    #[test]
    fn margin_is_the_largest_shift_and_the_band_spans_every_threshold() {
        let pairs: Vec<ViewPair> = (0..101)
            .map(|i| {
                let x = f64::from(i) / 10.0 - 5.0;
                pair(
                    x,
                    x + if i == 100 {
                        -0.75
                    } else {
                        0.01 * f64::from(i % 7)
                    },
                )
            })
            .collect();
        let thresholds = [sigmoid(1.0), sigmoid(2.5)];
        let cascade = MirrorCascade::fit(&pairs, &thresholds).expect("fitted");
        assert_eq!(cascade.margin, 0.75);
        assert_eq!(cascade.faces, 101);
        assert!(cascade.median_shift <= cascade.p99_shift && cascade.p99_shift <= 0.75);
        let band = cascade.band(&thresholds);
        // 1 - 0.75 = 0.25 to 2.5 + 0.75 = 3.25, edges included.
        assert!(band.reads(0.25 + 1e-12) && band.reads(3.25 - 1e-12) && band.reads(1.7));
        assert!(!band.reads(0.2) && !band.reads(3.3) && !band.reads(-4.0));
        assert!(band.reads(f64::NAN));
        // One-view values -5.0..5.0 in steps of 0.1: 0.3..=3.2 are inside, 30 of 101.
        assert!(
            (cascade.share_read - 30.0 / 101.0).abs() < 1e-12,
            "{cascade:?}"
        );
    }

    /// The promise the cascade makes, checked on the faces it was measured on: a face outside
    /// the band has its one-view and two-view scores on the same side of every threshold.
    #[test]
    fn outside_the_band_the_mirror_changes_no_verdict_on_the_fitted_faces() {
        let pairs: Vec<ViewPair> = (0..400)
            .map(|i| {
                let x = f64::from(i) / 40.0 - 5.0;
                let shift = 0.6 * ((f64::from(i) * 0.37).sin());
                pair(x, x + shift)
            })
            .collect();
        let thresholds = [sigmoid(0.4), sigmoid(1.9)];
        let cascade = MirrorCascade::fit(&pairs, &thresholds).expect("fitted");
        let band = cascade.band(&thresholds);
        for p in pairs.iter().filter(|p| !band.reads(p.one_view)) {
            for t in thresholds.map(logit) {
                assert_eq!(p.one_view > t, p.both_views > t, "{p:?}");
            }
        }
        assert!(cascade.share_read < 0.5, "{cascade:?}");
    }

    #[test]
    fn nothing_to_measure_gives_no_cascade() {
        assert!(MirrorCascade::fit(&[], &[0.9]).is_none());
        assert!(MirrorCascade::fit(&[pair(0.0, f64::INFINITY)], &[0.9]).is_none());
    }
}
