//! Fusion: the detectors' outputs combined into one calibrated probability.
//!
//! The detectors are geometry, embedding and classifier, and in models with a coarse branch
//! the coarse classifier as a fourth. Each detector's raw value is mapped to a feature on a
//! log scale (so that a detector that is "very sure" cannot swamp the others linearly),
//! standardised, and combined by logistic regression fitted on a calibration set that none of
//! the detectors was trained on (stacking).
//! The classes are weighted equally in the fit, so the output reads as the probability that the
//! face is generated when generated and real faces are equally likely a priori; each detector's
//! contribution is its term in the log-odds, which is what the scan reports as evidence.
//!
//! The operating point is a threshold on that probability, chosen so that a given fraction of
//! the calibration set's real faces (the false-positive rate) lies above it.

use serde::{Deserialize, Serialize};

/// Names of the fused detectors, in feature order; `coarse` only in models with a coarse branch.
pub const DETECTORS: [&str; 4] = ["geometry", "embedding", "classifier", "coarse"];

/// Raw detector outputs for one face.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Raw {
    /// Mahalanobis distance of the landmarks from the StyleGAN alignment.
    pub geometry: f32,
    /// Fraction of the frame thumbnail the synthetic-face embedding cannot reconstruct.
    pub embedding: f32,
    /// The classifiers' mean logit.
    pub classifier: f32,
    /// The coarse branch's logit (the same kind of network on a smaller crop), in models that
    /// have one.
    pub coarse: Option<f32>,
}

impl Raw {
    pub fn values(&self) -> Vec<f32> {
        let mut values = vec![self.geometry, self.embedding, self.classifier];
        values.extend(self.coarse);
        values
    }

    /// Log-scale features: large distances and errors differ by orders of magnitude; logits
    /// are log-odds already.
    pub fn features(&self) -> Vec<f64> {
        let logit = |v: f32| f64::from(v).clamp(-30.0, 30.0);
        let mut features = vec![
            f64::from(self.geometry).max(0.0).ln_1p(),
            f64::from(self.embedding).max(1e-6).ln(),
            logit(self.classifier),
        ];
        features.extend(self.coarse.map(logit));
        features
    }
}

/// Logistic regression over standardised features (three, or four with a coarse branch).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fusion {
    pub feature_mean: Vec<f64>,
    pub feature_scale: Vec<f64>,
    pub weights: Vec<f64>,
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
    /// much each sample counts (training gives each class half the total). Every sample must
    /// carry the same detectors.
    pub fn fit(samples: &[(Raw, bool)], weights: &[f64]) -> Fusion {
        let features: Vec<Vec<f64>> = samples.iter().map(|(r, _)| r.features()).collect();
        let n = features.first().map_or(3, Vec::len);
        let (mean, scale) = standardization(&features, n);
        let x: Vec<nalgebra::DVector<f64>> = features
            .iter()
            .map(|f| {
                nalgebra::DVector::from_iterator(
                    n + 1,
                    (0..n).map(|i| (f[i] - mean[i]) / scale[i]).chain([1.0]),
                )
            })
            .collect();
        let mut beta = nalgebra::DVector::<f64>::zeros(n + 1);
        const RIDGE: f64 = 1e-3;
        for _ in 0..50 {
            let mut grad = nalgebra::DVector::<f64>::zeros(n + 1);
            let mut hess = nalgebra::DMatrix::<f64>::zeros(n + 1, n + 1);
            for ((v, (_, fake)), &w) in x.iter().zip(samples).zip(weights) {
                let p = sigmoid(beta.dot(v));
                grad += v * (w * (p - if *fake { 1.0 } else { 0.0 }));
                hess += v * v.transpose() * (w * p * (1.0 - p));
            }
            for i in 0..n {
                grad[i] += RIDGE * beta[i];
                hess[(i, i)] += RIDGE;
            }
            let Some(step) = hess.try_inverse().map(|h| h * grad) else {
                break;
            };
            beta -= &step;
            if step.norm() < 1e-10 {
                break;
            }
        }
        Fusion {
            feature_mean: mean,
            feature_scale: scale,
            weights: beta.iter().take(n).copied().collect(),
            bias: beta[n],
        }
    }

    /// How many detectors the regression reads: 3, or 4 with a coarse branch.
    pub fn detectors(&self) -> usize {
        self.weights.len()
    }

    /// Whether the three vectors agree and name 3 or 4 detectors (a model file's check).
    pub fn is_consistent(&self) -> bool {
        let n = self.weights.len();
        (3..=DETECTORS.len()).contains(&n)
            && self.feature_mean.len() == n
            && self.feature_scale.len() == n
            && self.feature_scale.iter().all(|s| *s > 0.0)
    }

    /// Each detector's term in the log-odds. A detector the regression does not read (a coarse
    /// value given to a model without the branch) is left out.
    pub fn contributions(&self, raw: &Raw) -> Vec<Contribution> {
        let f = raw.features();
        let values = raw.values();
        (0..f.len().min(self.weights.len()))
            .map(|i| Contribution {
                detector: DETECTORS[i],
                value: values[i],
                log_odds: self.weights[i] * (f[i] - self.feature_mean[i]) / self.feature_scale[i],
            })
            .collect()
    }

    /// The fused log-odds that the face is generated.
    pub fn log_odds(&self, raw: &Raw) -> f64 {
        self.bias
            + self
                .contributions(raw)
                .iter()
                .map(|c| c.log_odds)
                .sum::<f64>()
    }

    /// The fused probability that the face is generated.
    pub fn probability(&self, raw: &Raw) -> f64 {
        sigmoid(self.log_odds(raw))
    }
}

fn standardization(features: &[Vec<f64>], n: usize) -> (Vec<f64>, Vec<f64>) {
    let count = features.len().max(1) as f64;
    let mut mean = vec![0.0; n];
    let mut scale = vec![1.0; n];
    for i in 0..n {
        mean[i] = features.iter().map(|f| f[i]).sum::<f64>() / count;
        let var = features
            .iter()
            .map(|f| (f[i] - mean[i]).powi(2))
            .sum::<f64>()
            / count;
        scale[i] = var.sqrt().max(1e-9);
    }
    (mean, scale)
}

pub fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// The log-odds of a probability (±infinity at 1 and 0).
pub fn logit(p: f64) -> f64 {
    (p / (1.0 - p)).ln()
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
            coarse: None,
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

    /// With a coarse branch the regression reads four detectors; a branch that carries
    /// signal the others lack gets weight, and a three-detector fusion ignores it.
    #[test]
    fn a_coarse_branch_is_a_fourth_feature() {
        let mut samples = Vec::new();
        for k in 0..400 {
            let noise = ((k * 37) % 17) as f32 / 17.0 - 0.5;
            let coarse = ((k * 11) % 13) as f32 / 13.0 - 0.5;
            // The classifier alone cannot separate the classes; the coarse logit can.
            let (fake, shift) = if k % 2 == 0 {
                (true, 1.5)
            } else {
                (false, -1.5)
            };
            let mut r = raw(noise);
            r.coarse = Some(shift + coarse);
            samples.push((r, fake));
        }
        let weights = vec![1.0 / samples.len() as f64; samples.len()];
        let fusion = Fusion::fit(&samples, &weights);
        assert!(fusion.is_consistent());
        assert_eq!(fusion.detectors(), 4);
        assert!(fusion.weights[3] > 1.0, "{:?}", fusion.weights);
        let mut sure = raw(0.0);
        sure.coarse = Some(3.0);
        let c = fusion.contributions(&sure);
        assert_eq!(c.len(), 4);
        assert_eq!(c[3].detector, "coarse");
        assert!(fusion.probability(&sure) > 0.99);

        let three = Fusion::fit(&[(raw(2.0), true), (raw(-2.0), false)], &[0.5, 0.5]);
        assert_eq!(three.contributions(&sure).len(), 3);
        assert_eq!(three.probability(&sure), three.probability(&raw(0.0)));
    }

    #[test]
    fn threshold_leaves_the_requested_fraction_above() {
        let reals: Vec<f64> = (0..1000).map(|i| i as f64 / 1000.0).collect();
        let t = threshold_for_fpr(&reals, 0.01);
        let above = reals.iter().filter(|&&s| s > t).count();
        assert_eq!(above, 10);
    }
}
