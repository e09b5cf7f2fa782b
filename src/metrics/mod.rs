//! What is measured at an evaluation step (SCIENCE.md §4), and the phase it puts a network in
//! (SCIENCE.md §5, [`phase`]).

pub mod fourier;
pub mod nonfinite;
pub mod phase;
pub mod progress;

pub use phase::{classify, Phase, Thresholds};

use crate::data::dataset::Examples;
use crate::model::ipr::mean_ipr;
use crate::train::loss::Loss;
use crate::train::{EvalOutput, WeightStats};
use serde::{Deserialize, Serialize};

/// One model's metrics at one step. Accuracies are fractions in [0, 1]; `None` where the
/// set they are measured on is empty (no corrupted examples, or no clean ones). In JSON a NaN
/// or infinite value is written as a string ([`nonfinite`]), never as `null`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub step: u64,
    #[serde(with = "nonfinite")]
    pub epoch: f64,
    /// Evaluation-mode loss on the whole training set after the step.
    #[serde(with = "nonfinite")]
    pub train_loss: f64,
    #[serde(with = "nonfinite")]
    pub train_acc: f64,
    #[serde(with = "nonfinite")]
    pub test_loss: f64,
    #[serde(with = "nonfinite")]
    pub test_acc: f64,
    #[serde(default, with = "nonfinite::option")]
    pub mem_acc: Option<f64>,
    #[serde(default, with = "nonfinite::option")]
    pub inv_acc: Option<f64>,
    #[serde(default, with = "nonfinite::option")]
    pub clean_acc: Option<f64>,
    #[serde(with = "nonfinite")]
    pub norm_u: f64,
    #[serde(with = "nonfinite")]
    pub norm_v: f64,
    #[serde(with = "nonfinite")]
    pub norm_w: f64,
    #[serde(default, with = "nonfinite::option")]
    pub mean_ipr: Option<f64>,
    pub dead_neurons: usize,
    /// The reference's logged training loss: training mode (dropout, batch statistics), on the
    /// batch of the step that led here, before that step's update (`None` at step 0). Absent
    /// in records of older runs.
    #[serde(default, with = "nonfinite::option")]
    pub batch_loss: Option<f64>,
    /// The sum of the squares of every parameter. Absent in records of older runs.
    #[serde(default, with = "nonfinite::option")]
    pub weight_sq: Option<f64>,
    /// Progress measures (SCIENCE.md §10, [`progress`]); absent where not measured (dense
    /// data, the deep MLP, an evaluation `eval.progress_every` skips, older runs). Gini
    /// coefficients of the Fourier norms of the embedding and the read-out:
    #[serde(default, with = "nonfinite::option")]
    pub gini_embed: Option<f64>,
    #[serde(default, with = "nonfinite::option")]
    pub gini_unembed: Option<f64>,
    /// The key frequencies (empty: none, or not measured; only `add` and `sub` have them).
    #[serde(default)]
    pub key_freqs: Vec<u32>,
    /// Full, restricted and excluded loss ([`progress::Measures`]): cross-entropy (`_ce`)
    /// and, for a network trained with MSE, MSE (`_mse`); on all pairs (full, restricted) or
    /// the training pairs (excluded), and on the clean and corrupted training examples.
    #[serde(default, with = "nonfinite::option")]
    pub full_ce: Option<f64>,
    #[serde(default, with = "nonfinite::option")]
    pub full_ce_clean: Option<f64>,
    #[serde(default, with = "nonfinite::option")]
    pub full_ce_corrupt: Option<f64>,
    #[serde(default, with = "nonfinite::option")]
    pub restricted_ce: Option<f64>,
    #[serde(default, with = "nonfinite::option")]
    pub restricted_ce_clean: Option<f64>,
    #[serde(default, with = "nonfinite::option")]
    pub restricted_ce_corrupt: Option<f64>,
    #[serde(default, with = "nonfinite::option")]
    pub excluded_ce: Option<f64>,
    #[serde(default, with = "nonfinite::option")]
    pub excluded_ce_clean: Option<f64>,
    #[serde(default, with = "nonfinite::option")]
    pub excluded_ce_corrupt: Option<f64>,
    #[serde(default, with = "nonfinite::option")]
    pub full_mse: Option<f64>,
    #[serde(default, with = "nonfinite::option")]
    pub full_mse_clean: Option<f64>,
    #[serde(default, with = "nonfinite::option")]
    pub full_mse_corrupt: Option<f64>,
    #[serde(default, with = "nonfinite::option")]
    pub restricted_mse: Option<f64>,
    #[serde(default, with = "nonfinite::option")]
    pub restricted_mse_clean: Option<f64>,
    #[serde(default, with = "nonfinite::option")]
    pub restricted_mse_corrupt: Option<f64>,
    #[serde(default, with = "nonfinite::option")]
    pub excluded_mse: Option<f64>,
    #[serde(default, with = "nonfinite::option")]
    pub excluded_mse_clean: Option<f64>,
    #[serde(default, with = "nonfinite::option")]
    pub excluded_mse_corrupt: Option<f64>,
    /// Per-neuron IPR histogram ([`IPR_BINS`] bins on [0, 1]); in `ipr_hist.csv`.
    #[serde(skip, default)]
    pub ipr_hist: Vec<u32>,
}

impl Record {
    /// What is out of range, if anything: an accuracy or mean IPR outside [0, 1], a negative
    /// loss, norm or epoch (NaN and infinities are values of a diverged model).
    pub fn out_of_range(&self) -> Option<&'static str> {
        let accs = [
            Some(self.train_acc),
            Some(self.test_acc),
            self.mem_acc,
            self.inv_acc,
            self.clean_acc,
            self.mean_ipr,
            self.gini_embed,
            self.gini_unembed,
        ];
        if !accs
            .iter()
            .flatten()
            .all(|a| a.is_nan() || (0.0..=1.0).contains(a))
        {
            return Some("an accuracy, mean IPR or Gini coefficient outside [0, 1]");
        }
        let nonneg = [
            self.train_loss,
            self.test_loss,
            self.norm_u,
            self.norm_v,
            self.norm_w,
            self.epoch,
        ];
        if self.key_freqs.first() == Some(&0) || self.key_freqs.windows(2).any(|w| w[0] >= w[1]) {
            return Some("key frequencies that are not ascending positive numbers");
        }
        let progress = self.progress_losses();
        if !nonneg
            .iter()
            .chain(self.batch_loss.iter())
            .chain(self.weight_sq.iter())
            .chain(progress.iter().filter_map(|(_, x)| x.as_ref()))
            .all(|x| x.is_nan() || *x >= 0.0)
        {
            return Some("a negative loss, norm, sum of squares or epoch");
        }
        None
    }

    /// Whether every loss and weight norm is finite (else the model diverged).
    pub fn is_finite(&self) -> bool {
        [
            self.train_loss,
            self.test_loss,
            self.norm_u,
            self.norm_v,
            self.norm_w,
        ]
        .iter()
        .chain(self.batch_loss.as_ref())
        .all(|x| x.is_finite())
    }

    /// The phase of SCIENCE.md §5: Diverged if a loss or the weights are not finite, else by the
    /// accuracies.
    pub fn phase(&self, t: Thresholds) -> Phase {
        if !self.is_finite() {
            return Phase::Diverged;
        }
        classify(self.test_acc, self.mem_acc, self.inv_acc, self.clean_acc, t)
    }
}

impl Record {
    /// Sets the progress measures of this record's evaluation.
    pub fn set_progress(
        &mut self,
        ginis: (Option<f64>, Option<f64>),
        m: Option<&progress::Measures>,
    ) {
        (self.gini_embed, self.gini_unembed) = ginis;
        let Some(m) = m else {
            return;
        };
        self.key_freqs = m.key_freqs.clone();
        let l = &m.ce;
        (self.full_ce, self.full_ce_clean, self.full_ce_corrupt) =
            (Some(l.full.all), l.full.clean, l.full.corrupt);
        (
            self.restricted_ce,
            self.restricted_ce_clean,
            self.restricted_ce_corrupt,
        ) = (
            Some(l.restricted.all),
            l.restricted.clean,
            l.restricted.corrupt,
        );
        (
            self.excluded_ce,
            self.excluded_ce_clean,
            self.excluded_ce_corrupt,
        ) = (Some(l.excluded.all), l.excluded.clean, l.excluded.corrupt);
        if let Some(l) = &m.mse {
            (self.full_mse, self.full_mse_clean, self.full_mse_corrupt) =
                (Some(l.full.all), l.full.clean, l.full.corrupt);
            (
                self.restricted_mse,
                self.restricted_mse_clean,
                self.restricted_mse_corrupt,
            ) = (
                Some(l.restricted.all),
                l.restricted.clean,
                l.restricted.corrupt,
            );
            (
                self.excluded_mse,
                self.excluded_mse_clean,
                self.excluded_mse_corrupt,
            ) = (Some(l.excluded.all), l.excluded.clean, l.excluded.corrupt);
        }
    }

    /// Removes the progress measures (an evaluation a longer run of the config does not
    /// measure them at: the last one of a run that is extended).
    pub fn clear_progress(&mut self) {
        (self.gini_embed, self.gini_unembed) = (None, None);
        self.key_freqs.clear();
        for f in [
            &mut self.full_ce,
            &mut self.full_ce_clean,
            &mut self.full_ce_corrupt,
            &mut self.restricted_ce,
            &mut self.restricted_ce_clean,
            &mut self.restricted_ce_corrupt,
            &mut self.excluded_ce,
            &mut self.excluded_ce_clean,
            &mut self.excluded_ce_corrupt,
            &mut self.full_mse,
            &mut self.full_mse_clean,
            &mut self.full_mse_corrupt,
            &mut self.restricted_mse,
            &mut self.restricted_mse_clean,
            &mut self.restricted_mse_corrupt,
            &mut self.excluded_mse,
            &mut self.excluded_mse_clean,
            &mut self.excluded_mse_corrupt,
        ] {
            *f = None;
        }
    }

    /// The progress-measure losses, named as their `metrics.csv` columns.
    pub fn progress_losses(&self) -> [(&'static str, Option<f64>); 18] {
        [
            ("full_ce", self.full_ce),
            ("full_ce_clean", self.full_ce_clean),
            ("full_ce_corrupt", self.full_ce_corrupt),
            ("restricted_ce", self.restricted_ce),
            ("restricted_ce_clean", self.restricted_ce_clean),
            ("restricted_ce_corrupt", self.restricted_ce_corrupt),
            ("excluded_ce", self.excluded_ce),
            ("excluded_ce_clean", self.excluded_ce_clean),
            ("excluded_ce_corrupt", self.excluded_ce_corrupt),
            ("full_mse", self.full_mse),
            ("full_mse_clean", self.full_mse_clean),
            ("full_mse_corrupt", self.full_mse_corrupt),
            ("restricted_mse", self.restricted_mse),
            ("restricted_mse_clean", self.restricted_mse_clean),
            ("restricted_mse_corrupt", self.restricted_mse_corrupt),
            ("excluded_mse", self.excluded_mse),
            ("excluded_mse_clean", self.excluded_mse_clean),
            ("excluded_mse_corrupt", self.excluded_mse_corrupt),
        ]
    }
}

/// The phase a trained model ends in (SCIENCE.md §5): Diverged if its training loss was ever
/// NaN or infinite (`diverged_at`, the first such step), else the phase of its last record.
/// The one rule that run summaries, sweep records, reports and analyses use.
pub fn final_phase(last: &Record, diverged_at: Option<u64>, t: Thresholds) -> Phase {
    if diverged_at.is_some() {
        Phase::Diverged
    } else {
        last.phase(t)
    }
}

fn frac(hits: usize, n: usize) -> Option<f64> {
    (n > 0).then(|| hits as f64 / n as f64)
}

/// Losses and accuracies of one model's predictions (SCIENCE.md §4).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Accuracies {
    pub train_loss: f64,
    pub train_acc: f64,
    pub test_loss: f64,
    pub test_acc: f64,
    pub mem_acc: Option<f64>,
    pub inv_acc: Option<f64>,
    pub clean_acc: Option<f64>,
}

/// Accuracies and losses from predictions and row losses on every example (training
/// examples first, then test examples) of a dataset (or of its operation table).
pub fn accuracies(
    p: usize,
    loss: Loss,
    split: &impl Examples,
    labels: &[u32],
    corrupted: &[bool],
    out: &EvalOutput,
) -> Accuracies {
    let nt = split.n_train();
    let truth = split.train_true();
    let (train_preds, test_preds) = out.preds.split_at(nt);
    let mut train_hits = 0;
    let (mut mem, mut inv, mut n_c) = (0, 0, 0);
    let (mut clean, mut n_k) = (0, 0);
    for i in 0..nt {
        let pred = train_preds[i];
        train_hits += (pred == labels[i]) as usize;
        if corrupted[i] {
            n_c += 1;
            mem += (pred == labels[i]) as usize;
            inv += (pred == truth[i]) as usize;
        } else {
            n_k += 1;
            clean += (pred == truth[i]) as usize;
        }
    }
    let test_hits = test_preds
        .iter()
        .zip(split.test_labels())
        .filter(|(a, b)| a == b)
        .count();
    Accuracies {
        train_loss: out.row_loss[..nt].iter().sum::<f64>() / loss.norm(nt, p),
        train_acc: train_hits as f64 / nt as f64,
        test_loss: out.row_loss[nt..].iter().sum::<f64>() / loss.norm(split.n_test(), p),
        test_acc: test_hits as f64 / split.n_test() as f64,
        mem_acc: frac(mem, n_c),
        inv_acc: frac(inv, n_c),
        clean_acc: frac(clean, n_k),
    }
}

/// Turns one model's evaluation output and weight statistics into a [`Record`].
#[allow(clippy::too_many_arguments)]
pub fn record(
    step: u64,
    epoch: f64,
    p: usize,
    loss: Loss,
    split: &impl Examples,
    labels: &[u32],
    corrupted: &[bool],
    stats: &WeightStats,
    out: &EvalOutput,
) -> Record {
    let a = accuracies(p, loss, split, labels, corrupted, out);
    let (mean_ipr, dead_neurons) = mean_ipr(&stats.neuron_iprs);
    Record {
        step,
        epoch,
        train_loss: a.train_loss,
        train_acc: a.train_acc,
        test_loss: a.test_loss,
        test_acc: a.test_acc,
        mem_acc: a.mem_acc,
        inv_acc: a.inv_acc,
        clean_acc: a.clean_acc,
        norm_u: stats.norms[0],
        norm_v: stats.norms[1],
        norm_w: stats.norms[2],
        mean_ipr,
        dead_neurons,
        batch_loss: None,
        weight_sq: Some(stats.sum_sq),
        ipr_hist: ipr_histogram(&stats.neuron_iprs),
        ..Record::default()
    }
}

/// Bins of the per-neuron IPR histogram: `IPR_BINS` equal bins on [0, 1] (the last one
/// closed); dead neurons are not counted.
pub const IPR_BINS: usize = 20;

pub fn ipr_histogram(iprs: &[Option<f64>]) -> Vec<u32> {
    let mut h = vec![0u32; IPR_BINS];
    for x in iprs.iter().flatten().filter(|x| x.is_finite()) {
        let b = ((x * IPR_BINS as f64) as usize).min(IPR_BINS - 1);
        h[b] += 1;
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipr_histogram_by_hand() {
        let h = ipr_histogram(&[
            Some(0.0),
            Some(0.04),
            Some(0.05),
            Some(0.5),
            Some(1.0),
            None,
        ]);
        assert_eq!(h.len(), IPR_BINS);
        assert_eq!((h[0], h[1], h[10], h[19]), (2, 1, 1, 1), "{h:?}");
        assert_eq!(h.iter().sum::<u32>(), 5, "the dead neuron is not counted");
    }
}
