//! The built-in default experiment reaches the paper's phases (SPEC §6, regularization study):
//! weight decay 0 → Coexistence, 5 → Partial Inversion, 15 → Full Inversion.
//! About 15 s in a release build on 2 cores.

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
