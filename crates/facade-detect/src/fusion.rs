//! Fusion: the detectors' outputs combined into one calibrated probability.
//!
//! Each detector's raw value is mapped to a feature on a log scale (so that a detector that is
//! "very sure" cannot swamp the others linearly), standardised, and combined by logistic
//! regression fitted on a calibration set that none of the detectors was trained on (stacking).
//! The classes are weighted equally in the fit, so the output reads as the probability that the
//! face is generated when generated and real faces are equally likely a priori; each detector's
//! contribution is its term in the log-odds, which is what the scan reports as evidence.
//!
//! The operating point is a threshold on that probability, chosen so that a given fraction of
//! the calibration set's real faces (the false-positive rate) lies above it.

use serde::{Deserialize, Serialize};

/// Names of the fused detectors, in feature order.
pub const DETECTORS: [&str; 3] = ["geometry", "embedding", "classifier"];

/// Raw detector outputs for one face.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Raw {
    /// Mahalanobis distance of the landmarks from the StyleGAN alignment.
    pub geometry: f32,
    /// Fraction of the frame thumbnail the synthetic-face embedding cannot reconstruct.
    pub embedding: f32,
    /// The classifiers' mean logit.
    pub classifier: f32,
}

impl Raw {
    pub fn values(&self) -> [f32; 3] {
        [self.geometry, self.embedding, self.classifier]
    }

    /// Log-scale features: large distances and errors differ by orders of magnitude.
    pub fn features(&self) -> [f64; 3] {
        [
            f64::from(self.geometry).max(0.0).ln_1p(),
            f64::from(self.embedding).max(1e-6).ln(),
            f64::from(self.classifier).clamp(-30.0, 30.0),
        ]
    }
}

/// Logistic regression over standardised features.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fusion {
    pub feature_mean: [f64; 3],
    pub feature_scale: [f64; 3],
    pub weights: [f64; 3],
    pub bias: f64,
}

/// One detector's share of a fused score.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Contribution {
    pub detector: &'static str,
    pub value: f32,
    /// Its term in the log-odds (positive pushes towards "generated").
    pub log_odds: f64,
}

impl Fusion {
    /// Fits the regression (Newton's method with a small ridge penalty); `weights` says how
    /// much each sample counts (training gives each class half the total).
    pub fn fit(samples: &[(Raw, bool)], weights: &[f64]) -> Fusion {
        let features: Vec<[f64; 3]> = samples.iter().map(|(r, _)| r.features()).collect();
        let (mean, scale) = standardization(&features);
        let x: Vec<[f64; 4]> = features
            .iter()
            .map(|f| {
                let z = |i: usize| (f[i] - mean[i]) / scale[i];
                [z(0), z(1), z(2), 1.0]
            })
            .collect();
        let mut beta = nalgebra::Vector4::<f64>::zeros();
        const RIDGE: f64 = 1e-3;
        for _ in 0..50 {
            let mut grad = nalgebra::Vector4::<f64>::zeros();
            let mut hess = nalgebra::Matrix4::<f64>::zeros();
            for ((xi, (_, fake)), &w) in x.iter().zip(samples).zip(weights) {
                let v = nalgebra::Vector4::from_row_slice(xi);
                let p = sigmoid(beta.dot(&v));
                grad += v * (w * (p - if *fake { 1.0 } else { 0.0 }));
                hess += v * v.transpose() * (w * p * (1.0 - p));
            }
            for i in 0..3 {
                grad[i] += RIDGE * beta[i];
                hess[(i, i)] += RIDGE;
            }
            let Some(step) = hess.try_inverse().map(|h| h * grad) else {
                break;
            };
            beta -= step;
            if step.norm() < 1e-10 {
                break;
            }
        }
        Fusion {
            feature_mean: mean,
            feature_scale: scale,
            weights: [beta[0], beta[1], beta[2]],
            bias: beta[3],
        }
    }

    /// Each detector's term in the log-odds.
    pub fn contributions(&self, raw: &Raw) -> [Contribution; 3] {
        let f = raw.features();
        let values = raw.values();
        std::array::from_fn(|i| Contribution {
            detector: DETECTORS[i],
            value: values[i],
            log_odds: self.weights[i] * (f[i] - self.feature_mean[i]) / self.feature_scale[i],
        })
    }

    /// The fused probability that the face is generated.
    pub fn probability(&self, raw: &Raw) -> f64 {
        let log_odds: f64 = self.bias
            + self
                .contributions(raw)
                .iter()
                .map(|c| c.log_odds)
                .sum::<f64>();
        sigmoid(log_odds)
    }
}

fn standardization(features: &[[f64; 3]]) -> ([f64; 3], [f64; 3]) {
    let n = features.len().max(1) as f64;
    let mut mean = [0.0; 3];
    let mut scale = [1.0; 3];
    for i in 0..3 {
        mean[i] = features.iter().map(|f| f[i]).sum::<f64>() / n;
        let var = features
            .iter()
            .map(|f| (f[i] - mean[i]).powi(2))
            .sum::<f64>()
            / n;
        scale[i] = var.sqrt().max(1e-9);
    }
    (mean, scale)
}

pub fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// The threshold above which a fraction `fpr` of these real-face scores lie: the operating
/// point for that false-positive rate. Scores strictly above it are flagged.
pub fn threshold_for_fpr(real_scores: &[f64], fpr: f64) -> f64 {
    let mut sorted: Vec<f64> = real_scores.to_vec();
    sorted.sort_by(|a, b| b.total_cmp(a));
    if sorted.is_empty() {
        return 0.5;
    }
    // Allow at most floor(fpr·n) reals strictly above the threshold.
    let allowed = (fpr * sorted.len() as f64).floor() as usize;
    sorted[allowed.min(sorted.len() - 1)]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(classifier: f32) -> Raw {
        Raw {
            geometry: 3.0,
            embedding: 0.3,
            classifier,
        }
    }

    #[test]
    fn fit_separates_and_reports_contributions() {
        let mut samples = Vec::new();
        for k in 0..200 {
            let noise = ((k * 37) % 17) as f32 / 17.0 - 0.5;
            samples.push((raw(2.0 + noise), true));
            samples.push((raw(-2.0 + noise), false));
        }
        let weights = vec![1.0 / samples.len() as f64; samples.len()];
        let fusion = Fusion::fit(&samples, &weights);
        assert!(fusion.probability(&raw(3.0)) > 0.99);
        assert!(fusion.probability(&raw(-3.0)) < 0.01);
        let c = fusion.contributions(&raw(3.0));
        assert_eq!(c[2].detector, "classifier");
        assert!(c[2].log_odds > 0.0);
    }

    #[test]
    fn threshold_leaves_the_requested_fraction_above() {
        let reals: Vec<f64> = (0..1000).map(|i| i as f64 / 1000.0).collect();
        let t = threshold_for_fpr(&reals, 0.01);
        let above = reals.iter().filter(|&&s| s > t).count();
        assert_eq!(above, 10);
    }
}
