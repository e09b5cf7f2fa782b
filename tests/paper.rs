//! The built-in default experiment reaches the paper's phases (SCIENCE.md §6, regularization study):
//! weight decay 0 → Coexistence, 5 → Partial Inversion, 15 → Full Inversion.
//! About 30 s in a release build on 2 cores.

use grokscope::config::{Config, DEFAULT_CONFIG};
use grokscope::experiment::{train_config, Outcome};
use grokscope::kernels::init_threads;
use grokscope::metrics::{Phase, Thresholds};
use grokscope::train::Engine;

fn train(cfg: Config) -> Outcome {
    train_config(&cfg.check().unwrap(), &mut |_| Ok(())).unwrap()
}

/// Trains the paper preset `configs/paper/<name>.toml`, evaluating at the end only.
fn train_preset(name: &str) -> Outcome {
    let path = format!("{}/configs/paper/{name}.toml", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(path).unwrap();
    train(Config::from_toml(&text, &["eval.every=0".into()]).unwrap())
}

#[test]
fn default_experiment_reaches_the_papers_phases() {
    init_threads(0);
    let cfg = Config::from_toml(DEFAULT_CONFIG, &["eval.every=50".into()]).unwrap();
    let out = train(cfg);
    let expected = [
        (0.0, Phase::Coexistence),
        (5.0, Phase::PartialInversion),
        (15.0, Phase::FullInversion),
    ];
    for ((spec, hist), (wd, phase)) in out.setup.specs.iter().zip(&out.history).zip(expected) {
        let last = hist.last().unwrap();
        assert_eq!(spec.weight_decay, wd);
        assert_eq!(
            last.phase(Thresholds::default()),
            phase,
            "wd {wd}: {last:?}"
        );
        assert!(
            last.test_acc >= 0.95,
            "wd {wd}: test accuracy {}",
            last.test_acc
        );
    }
    // Weight decay makes the network ignore the corrupted labels: A_inv grows with it.
    let inv: Vec<f64> = out
        .history
        .iter()
        .map(|h| h.last().unwrap().inv_acc.unwrap())
        .collect();
    assert!(inv[0] < inv[1] && inv[1] < inv[2], "{inv:?}");
}

/// SCIENCE.md §4/§6: in a Coexistence network (α = 0.5, ξ = 0.35, no weight decay, 1000 epochs),
/// pruning the low-IPR neurons first removes memorization while test accuracy stays high;
/// pruning the high-IPR neurons first destroys generalization. About 12 s.
#[test]
fn pruning_separates_memorization_from_generalization() {
    use grokscope::analysis::prune::Order;
    init_threads(0);
    let out = train_preset("pruning");
    let last = out.history[0].last().unwrap();
    assert_eq!(
        last.phase(Thresholds::default()),
        Phase::Coexistence,
        "{last:?}"
    );
    let mut s = out.setup;
    let n = s.network.n_neurons();
    let at = s.network.prune_levels(usize::MAX);
    let mut sweep = |order| {
        let ord = s.network.prune_order(0, order, 0);
        s.network
            .prune_sweep(0, &s.split, &s.labels[0], &ord, &at)
            .unwrap()
    };
    let asc = sweep(Order::Ascending);
    assert!(
        asc.iter()
            .any(|pt| pt.acc.mem_acc.unwrap() <= 0.1 && pt.acc.test_acc >= 0.95),
        "no pruned fraction with A_mem ≤ 0.1 and test ≥ 0.95"
    );
    let desc = sweep(Order::Descending);
    assert!(
        desc[..=3 * n / 10].iter().any(|pt| pt.acc.test_acc < 0.5),
        "descending pruning keeps test accuracy ≥ 0.5 over the first 30 %"
    );
}

/// SCIENCE.md §5/§6: with the reference's corruption draw and the `full` threshold, the minibatch
/// network is a Partial Inversion (the reference's notebook: `A_inv` 0.917) and the
/// BatchNorm network a Full Inversion (0.989). About 4 s.
#[test]
fn minibatch_inverts_partially_and_batchnorm_fully() {
    init_threads(0);
    for (preset, phase) in [
        ("minibatch", Phase::PartialInversion),
        ("batchnorm", Phase::FullInversion),
    ] {
        let out = train_preset(preset);
        let last = out.history[0].last().unwrap();
        assert_eq!(
            last.phase(Thresholds::default()),
            phase,
            "{preset}: {last:?}"
        );
        assert_eq!(last.test_acc, 1.0, "{preset}");
    }
}
