//! The scores of memorizing units (SCIENCE.md §9) validated where the answer is known: on the
//! paper's pruning network (modular addition, ξ = 0.35, no weight decay: Coexistence), low
//! Fourier IPR marks the memorizing neurons, so a score of memorization must be
//! rank-correlated with the IPR in the negative direction (ablation selectivity, data-IPR,
//! gradient attribution on the true labels; Maini et al.'s on the training labels does not,
//! at convergence, and the test says so); and pruning the units of highest
//! ablation selectivity first removes memorization while the test accuracy stays. Then the
//! same scores on a deep MLP on MNIST-1D with corrupted labels. About 30 s.

use grokscope::analysis::scores::{rank_correlation, score_order, unit_scores, Score};
use grokscope::config::Config;
use grokscope::experiment::train_config;
use grokscope::kernels::init_threads;
use grokscope::train::Engine;

fn trained(text: &str, sets: &[&str]) -> grokscope::experiment::Outcome {
    let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
    let cfg = Config::from_toml(text, &sets).unwrap().check().unwrap();
    train_config(&cfg, &mut |_| Ok(())).unwrap()
}

#[test]
fn the_scores_find_the_low_ipr_neurons_of_the_modular_task() {
    init_threads(0);
    let text = grokscope::config::preset("pruning").unwrap();
    let out = trained(text, &["eval.every=0"]);
    let mut s = out.setup;
    let units = unit_scores(&mut s.network, 0, &s.split, &s.labels[0], &mut || {}).unwrap();
    assert_eq!(units.len(), s.network.n_neurons());
    let r = |score: Score| {
        let r = rank_correlation(&units, score, Score::Ipr).unwrap();
        println!("Spearman({}, Fourier IPR) = {r:.3}", score.name());
        r
    };
    for score in [
        Score::Ablation,
        Score::AblationClean,
        Score::DataIpr,
        Score::AttributionTrue,
    ] {
        let v = r(score);
        assert!(
            v < -0.3,
            "{}: rank correlation with IPR {v} is not clearly negative",
            score.name()
        );
    }
    // Maini et al.'s attribution on the training labels, at convergence, does not find them:
    // the corrupted examples' residual runs through the periodic neurons that oppose their
    // memorized labels (docs/DECISIONS.md "Gradient attribution at convergence").
    let maini = r(Score::Attribution);
    assert!(maini > r(Score::AttributionTrue) + 0.3, "{maini}");
    // Pruning by ablation selectivity, highest first, removes memorization and keeps the rule.
    let order = score_order(&units, Score::Ablation, true);
    let at = s.network.prune_levels(usize::MAX);
    let sweep = s
        .network
        .prune_sweep(0, &s.split, &s.labels[0], &order, &at)
        .unwrap();
    let best = sweep
        .iter()
        .filter(|p| p.acc.test_acc >= 0.9)
        .filter_map(|p| p.acc.mem_acc)
        .fold(1.0f64, f64::min);
    println!("pruning by ablation selectivity: lowest A_mem with test ≥ 0.9: {best:.3}");
    assert!(best <= 0.2, "A_mem stays above 0.2 while test ≥ 0.9");
}

const MNIST1D: &str = r#"
name = "m1d"
[data]
dataset = "mnist1d"
corruption = 0.3
[model]
kind = "deep"
[model.deep]
widths = [128, 128]
norm = "batchnorm"
[train]
loss = "ce"
lr = 0.002
beta2 = 0.999
batch_size = 100
epochs = 60
[eval]
every = 0
"#;

#[test]
fn the_scores_on_a_deep_mlp_with_batchnorm() {
    init_threads(0);
    let out = trained(MNIST1D, &[]);
    let last = out.history[0].last().unwrap();
    println!("MNIST-1D, ξ = 0.3: {last:?}");
    let mut s = out.setup;
    let units = unit_scores(&mut s.network, 0, &s.split, &s.labels[0], &mut || {}).unwrap();
    assert_eq!(units.len(), 256);
    assert!(units.iter().all(|u| u.ipr.is_none() && u.gamma.is_some()));
    assert_eq!((units[128].layer, units[128].unit), (1, 0));
    for score in [
        Score::DataIpr,
        Score::Attribution,
        Score::AttributionTrue,
        Score::Gamma,
    ] {
        let r = rank_correlation(&units, Score::Ablation, score);
        println!("Spearman(ablation, {}) = {r:?}", score.name());
        assert!(r.is_some_and(f64::is_finite), "{}", score.name());
    }
    // Ablations restore the network: its evaluation is unchanged.
    let a = s.network.eval_model(0).unwrap().preds;
    let b = s.network.eval_all().unwrap().swap_remove(0).preds;
    assert_eq!(a, b);
}
