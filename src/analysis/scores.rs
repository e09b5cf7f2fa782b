//! Memorizing units without Fourier structure (SCIENCE.md §9): per hidden unit `k` of a model,
//!
//! - *ablation selectivity* `S_k = [A_mem − A_mem^(−k)] − [A_test − A_test^(−k)]`, the network
//!   evaluated with the unit alone removed (exact: `Engine::prune_neurons`, `eval_model`),
//!   and `ablation_clean`, the same with `A_clean` for `A_test`: it reads the training set
//!   only, so pruning in its order is a remedy that never looks at the test set;
//! - *data-IPR* `D_k = Σ_i a_k(x_i)⁴ / (Σ_i a_k(x_i)²)²` over the training inputs;
//! - *gradient attribution* (Maini et al., ICML 2023) `G_k = Σ_{i∈C} |θ_k·∂ℓ_i/∂θ_k| /
//!   Σ_{i∉C} |θ_k·∂ℓ_i/∂θ_k|`, from the engine's [`UnitTraces`], with `ℓ_i` on the training
//!   labels (Maini's) and, as `attribution_true`, on the true labels of the corrupted
//!   examples: at the end of training the first is dominated by the residual the rule leaves
//!   on corrupted examples, the second asks which units hold their wrong answers
//!   (docs/DECISIONS.md "Gradient attribution at convergence");
//! - its BatchNorm γ and, where the task has a token space, its Fourier IPR,
//!
//! the rank correlations between them, and the orders that prune by a score.

use super::neurons::spearman;
use crate::data::{Dataset, TrainLabels};
use crate::error::{Error, Result};
use crate::metrics::{accuracies, Accuracies};
use crate::model::memory;
use crate::train::{Engine, Network};

/// The scores of one unit (`None` where a score is undefined: a unit that never fires, no
/// corrupted examples, no BatchNorm, no token space).
#[derive(Clone, Debug, PartialEq)]
pub struct UnitScore {
    pub layer: usize,
    pub unit: usize,
    pub ablation: Option<f64>,
    pub ablation_clean: Option<f64>,
    pub data_ipr: Option<f64>,
    pub attribution: Option<f64>,
    pub attribution_true: Option<f64>,
    pub gamma: Option<f64>,
    pub ipr: Option<f64>,
}

/// A score to order units by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Score {
    Ablation,
    AblationClean,
    DataIpr,
    Attribution,
    AttributionTrue,
    /// |γ| of the unit's BatchNorm.
    Gamma,
    /// The Fourier IPR (token tasks).
    Ipr,
}

impl Score {
    pub const ALL: [Score; 7] = [
        Score::Ablation,
        Score::AblationClean,
        Score::DataIpr,
        Score::Attribution,
        Score::AttributionTrue,
        Score::Gamma,
        Score::Ipr,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Score::Ablation => "ablation",
            Score::AblationClean => "ablation_clean",
            Score::DataIpr => "data_ipr",
            Score::Attribution => "attribution",
            Score::AttributionTrue => "attribution_true",
            Score::Gamma => "gamma",
            Score::Ipr => "ipr",
        }
    }

    pub fn of(self, u: &UnitScore) -> Option<f64> {
        match self {
            Score::Ablation => u.ablation,
            Score::AblationClean => u.ablation_clean,
            Score::DataIpr => u.data_ipr,
            Score::Attribution => u.attribution,
            Score::AttributionTrue => u.attribution_true,
            Score::Gamma => u.gamma.map(f64::abs),
            Score::Ipr => u.ipr,
        }
        .filter(|x| x.is_finite())
    }
}

/// `Σ a⁴ / (Σ a²)²` in f64 (`None` for a unit that is 0 on every example).
pub fn data_ipr(a: &[f32]) -> Option<f64> {
    let (mut s2, mut s4) = (0f64, 0f64);
    for &x in a {
        let q = (x as f64) * (x as f64);
        s2 += q;
        s4 += q * q;
    }
    (s2 > 0.0).then(|| s4 / (s2 * s2))
}

/// `Σ_{i∈C} g_i / Σ_{i∉C} g_i` (`None` without corrupted or without clean mass).
pub fn attribution(g: &[f32], corrupted: &[bool]) -> Option<f64> {
    let (mut c, mut k) = (0f64, 0f64);
    let mut any = false;
    for (&x, &is_c) in g.iter().zip(corrupted) {
        if is_c {
            c += x as f64;
            any = true;
        } else {
            k += x as f64;
        }
    }
    (any && k > 0.0).then(|| c / k)
}

/// Every score of every hidden unit of model `m`; `tick` is called after each unit's
/// ablation. The network is restored afterwards.
pub fn unit_scores(
    net: &mut Network,
    m: usize,
    split: &Dataset,
    labels: &TrainLabels,
    tick: &mut dyn FnMut(),
) -> Result<Vec<UnitScore>> {
    let units = net.n_neurons();
    let n = split.n_train() as f64;
    let all = n + split.n_test() as f64;
    let est = memory::Estimate {
        parts: vec![
            (
                "every unit's output and attributions on every training example",
                "data.n_train",
                16.0 * units as f64 * n,
            ),
            (
                "the cached hidden outputs of pruned evaluations",
                "data.n_train",
                4.0 * units as f64 * all,
            ),
        ],
    };
    memory::ensure(&est, "the unit scores", "")?;
    let (p, loss) = (net.vocab(), net.loss());
    let acc = |net: &mut Network| -> Result<Accuracies> {
        let ev = net.eval_model(m)?;
        Ok(accuracies(
            p,
            loss,
            split,
            &labels.labels,
            &labels.corrupted,
            &ev,
        ))
    };
    let base = acc(net)?;
    let saved = net.prunable_weights(m);
    let mut ablation = Vec::with_capacity(units);
    let mut result = Ok(());
    for k in 0..units {
        if let Err(e) = net.prune_neurons(m, &saved, &[k]) {
            result = Err(e);
            break;
        }
        tick();
        match acc(net) {
            Ok(a) => {
                let mem = base.mem_acc.zip(a.mem_acc).map(|(b, x)| b - x);
                let clean = base.clean_acc.zip(a.clean_acc).map(|(b, x)| b - x);
                ablation.push((
                    mem.map(|d| d - (base.test_acc - a.test_acc)),
                    mem.zip(clean).map(|(d, c)| d - c),
                ));
            }
            Err(e) => {
                result = Err(e);
                break;
            }
        }
    }
    net.prune_neurons(m, &saved, &[])?;
    result?;
    let none = || {
        Error::invalid(
            "model.kind",
            "the unit scores need hidden units with activations (the MLPs); the Transformer has none here",
        )
    };
    let traces = net.unit_traces(m, &labels.labels)?.ok_or_else(none)?;
    let truth = net.unit_traces(m, split.train_true())?.ok_or_else(none)?;
    let iprs = net.weight_stats(m).neuron_iprs;
    let neurons = net.neurons(m);
    Ok((0..units)
        .map(|k| {
            let (layer, unit) = net.neuron_id(k);
            UnitScore {
                layer,
                unit,
                ablation: ablation[k].0,
                ablation_clean: ablation[k].1,
                data_ipr: data_ipr(&traces.act[k]),
                attribution: attribution(&traces.attr[k], &labels.corrupted),
                attribution_true: attribution(&truth.attr[k], &labels.corrupted),
                gamma: neurons.get(k).and_then(|v| v.bn).map(|b| b.gamma as f64),
                ipr: iprs.get(k).copied().flatten(),
            }
        })
        .collect())
}

/// The Spearman rank correlation of two scores over the units where both are defined.
pub fn rank_correlation(units: &[UnitScore], a: Score, b: Score) -> Option<f64> {
    let (x, y): (Vec<f64>, Vec<f64>) = units
        .iter()
        .filter_map(|u| Some((a.of(u)?, b.of(u)?)))
        .unzip();
    spearman(&x, &y)
}

/// The units in the order that prunes by `score`: highest first with `descending`, else
/// lowest first; units without the score last (in index order).
pub fn score_order(units: &[UnitScore], score: Score, descending: bool) -> Vec<usize> {
    let mut with: Vec<(usize, f64)> = units
        .iter()
        .enumerate()
        .filter_map(|(i, u)| Some((i, score.of(u)?)))
        .collect();
    with.sort_by(|a, b| {
        let o = a.1.total_cmp(&b.1);
        (if descending { o.reverse() } else { o }).then(a.0.cmp(&b.0))
    });
    let mut order: Vec<usize> = with.into_iter().map(|(i, _)| i).collect();
    let mut rest: Vec<usize> = (0..units.len()).filter(|i| !order.contains(i)).collect();
    order.append(&mut rest);
    order
}

/// `scores.csv`: one row per unit of each model.
pub fn scores_csv(models: &[(usize, Vec<UnitScore>)]) -> String {
    let f = |x: Option<f64>| x.map(|v| format!("{v}")).unwrap_or_default();
    let mut s =
        String::from("model,layer,unit,ablation,ablation_clean,data_ipr,attribution,attribution_true,gamma,ipr\n");
    for (m, units) in models {
        for u in units {
            s.push_str(&format!(
                "{m},{},{},{},{},{},{},{},{},{}\n",
                u.layer,
                u.unit,
                f(u.ablation),
                f(u.ablation_clean),
                f(u.data_ipr),
                f(u.attribution),
                f(u.attribution_true),
                f(u.gamma),
                f(u.ipr)
            ));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_ipr_and_attribution_by_hand() {
        // A unit firing on one example of four has IPR 1; evenly on all, 1/4.
        assert_eq!(data_ipr(&[0.0, 3.0, 0.0, 0.0]), Some(1.0));
        assert_eq!(data_ipr(&[2.0, 2.0, 2.0, 2.0]), Some(0.25));
        assert_eq!(data_ipr(&[0.0, 0.0]), None);
        let c = [true, false, false, true];
        assert_eq!(attribution(&[1.0, 2.0, 2.0, 3.0], &c), Some(1.0));
        assert_eq!(attribution(&[1.0, 0.0, 0.0, 3.0], &c), None);
        assert_eq!(attribution(&[1.0, 2.0], &[false, false]), None);
    }

    #[test]
    fn score_orders_put_undefined_units_last() {
        let u = |s: Option<f64>| UnitScore {
            layer: 0,
            unit: 0,
            ablation: s,
            ablation_clean: None,
            data_ipr: None,
            attribution: None,
            attribution_true: None,
            gamma: None,
            ipr: None,
        };
        let units = [u(Some(0.2)), u(None), u(Some(-0.1)), u(Some(0.5))];
        assert_eq!(score_order(&units, Score::Ablation, true), [3, 0, 2, 1]);
        assert_eq!(score_order(&units, Score::Ablation, false), [2, 0, 3, 1]);
    }
}
