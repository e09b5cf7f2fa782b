//! The built-in default experiment reaches the paper's phases (SPEC §6, regularization study):
//! weight decay 0 → Coexistence, 5 → Partial Inversion, 15 → Full Inversion.
//! About 30 s in a release build on 2 cores.

use grokscope::analysis::phase::Phase;
use grokscope::config::{Config, DEFAULT_CONFIG};
use grokscope::train::kernels::init_threads;
use grokscope::train::run::train;

#[test]
fn default_experiment_reaches_the_papers_phases() {
    init_threads(0);
    let cfg = Config::from_toml(DEFAULT_CONFIG, &["eval.every=50".into()]).unwrap();
    let out = train(&cfg, &mut |_| Ok(())).unwrap();
    let expected = [
        (0.0, Phase::Coexistence),
        (5.0, Phase::PartialInversion),
        (15.0, Phase::FullInversion),
    ];
    for ((spec, hist), (wd, phase)) in out.specs.iter().zip(&out.history).zip(expected) {
        let last = hist.last().unwrap();
        assert_eq!(spec.weight_decay, wd);
        assert_eq!(last.phase(0.9), phase, "wd {wd}: {last:?}");
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

/// SPEC §4/§6: in a Coexistence network (α = 0.5, ξ = 0.35, no weight decay, 1000 epochs),
/// pruning the low-IPR neurons first removes memorization while test accuracy stays high;
/// pruning the high-IPR neurons first destroys generalization. About 12 s.
#[test]
fn pruning_separates_memorization_from_generalization() {
    use grokscope::analysis::prune::{prune_order, prune_sweep, Order};
    init_threads(0);
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/configs/paper/pruning.toml"
    ))
    .unwrap();
    let cfg = Config::from_toml(&text, &["eval.every=0".into()]).unwrap();
    let out = train(&cfg, &mut |_| Ok(())).unwrap();
    let last = out.history[0].last().unwrap();
    assert_eq!(last.phase(0.9), Phase::Coexistence, "{last:?}");
    let arch = out.fleet.arch;
    let model = &out.fleet.models[0];
    let sweep = |order| {
        let ord = prune_order(&arch, &model.params, order, 0);
        prune_sweep(
            &arch,
            out.fleet.loss,
            &out.split,
            &out.labels[0],
            model,
            &ord,
        )
    };
    let asc = sweep(Order::Ascending);
    assert!(
        asc.iter()
            .any(|pt| pt.acc.mem_acc.unwrap() <= 0.1 && pt.acc.test_acc >= 0.95),
        "no pruned fraction with A_mem ≤ 0.1 and test ≥ 0.95"
    );
    let desc = sweep(Order::Descending);
    let n = arch.width;
    assert!(
        desc[..=3 * n / 10].iter().any(|pt| pt.acc.test_acc < 0.5),
        "descending pruning keeps test accuracy ≥ 0.5 over the first 30 %"
    );
}
