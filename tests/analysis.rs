//! Analysis: IPR properties, the analytic solution, fast pruning against pruning from
//! scratch, rank correlation, dynamics, and reading a run directory back.

use grokscope::analysis::dynamics::dynamics;
use grokscope::analysis::neurons::{analyze_neurons, spearman};
use grokscope::analysis::prune::Order;
use grokscope::config::{Axis, Config, Init};
use grokscope::experiment::train_config;
use grokscope::metrics::{accuracies, Record};
use grokscope::model::analytic::{analytic_params, evaluate_analytic};
use grokscope::model::ipr::Ipr;
use grokscope::model::{Activation, Arch};
use grokscope::setup::Prepare;
use grokscope::train::Engine;

#[test]
fn ipr_is_invariant_to_scale_and_cyclic_shift() {
    let p = 23;
    let x: Vec<f32> = (0..p).map(|i| ((i * 7 + 3) % 11) as f32 - 4.5).collect();
    let mut ipr = Ipr::new(p);
    let base = ipr.of(&x).unwrap().ipr;
    assert!(base > 1.0 / 12.0 && base < 1.0);
    for s in [1e-20f32, 0.5, -3.0, 1e20] {
        let y: Vec<f32> = x.iter().map(|v| v * s).collect();
        // f32 rounding of the scaled entries moves the IPR by ~1e-8 at most.
        assert!((ipr.of(&y).unwrap().ipr - base).abs() < 1e-6, "scale {s}");
    }
    for shift in [1, 5, 22] {
        let y: Vec<f32> = (0..p).map(|i| x[(i + shift) % p]).collect();
        assert!(
            (ipr.of(&y).unwrap().ipr - base).abs() < 1e-9,
            "shift {shift}"
        );
    }
}

#[test]
fn analytic_network_solves_addition() {
    for (p, n) in [(97, 500), (11, 40), (13, 48)] {
        let r = evaluate_analytic(p, n).unwrap();
        assert_eq!(r.wrong, 0, "p = {p}, N = {n}");
        assert_eq!(r.accuracy, 1.0);
        assert!(
            (r.min_ipr - 1.0).abs() < 1e-6,
            "every neuron has IPR 1: {}",
            r.min_ipr
        );
        assert!(r.warnings.is_empty());
    }
    assert!(evaluate_analytic(2, 10).is_err());
    // Its neurons' dominant frequencies are the assigned ones, dealt round-robin.
    let arch = Arch {
        p: 11,
        width: 40,
        activation: Activation::Square,
        batchnorm: false,
        bn_momentum: 0.1,
        bn_eps: 1e-5,
    };
    let mut cfg = Config::default();
    cfg.data.p = 11;
    cfg.model.mlp.width = 40;
    cfg.model.mlp.init = Init::Analytic;
    cfg.train.steps = Some(1);
    let mut s = cfg.check().unwrap().setup().unwrap();
    assert_eq!(
        s.network.as_mlp().unwrap().models[0].params,
        analytic_params(&arch)
    );
    let (rows, _) = analyze_neurons(&s.network, 0);
    for r in &rows {
        assert_eq!(r.dominant_freq, 1 + r.neuron % 5);
        assert!((r.dominant_share.unwrap() - 1.0).abs() < 1e-6);
    }
    // As an initialisation it is already perfect on the whole table.
    let out = s.network.as_mlp_mut().unwrap().evaluate();
    let a = accuracies(
        11,
        s.network.loss(),
        &s.split,
        &s.labels[0].labels,
        &s.labels[0].corrupted,
        &out[0],
    );
    assert_eq!((a.train_acc, a.test_acc), (1.0, 1.0));
}

/// A small MLP on ξ = 0.3 (p, width, BatchNorm, epochs as given; no evaluations on the way),
/// trained: its checked config and its setup with the trained network.
fn trained_corrupted(
    p: usize,
    width: usize,
    batchnorm: bool,
    epochs: u64,
) -> (grokscope::config::Checked, grokscope::setup::Setup) {
    let mut cfg = Config::default();
    cfg.data.p = p;
    cfg.data.corruption = Axis::One(0.3);
    cfg.model.mlp.width = width;
    cfg.model.mlp.batchnorm = batchnorm;
    cfg.train.epochs = Some(epochs);
    cfg.eval.every = 0;
    let cfg = cfg.check().unwrap();
    let out = train_config(&cfg, &mut |_| Ok(())).unwrap().setup;
    (cfg, out)
}

/// Trains a small corrupted model, then checks the fast sweep against zeroing the neurons and
/// evaluating from scratch.
fn check_pruning(batchnorm: bool) {
    let (cfg, mut out) = trained_corrupted(23, 64, batchnorm, 150);
    let arch = out.network.as_mlp().unwrap().arch;
    let model = out.network.as_mlp().unwrap().models[0].clone();
    for order in [Order::Ascending, Order::Descending, Order::Random] {
        let ord = out.network.prune_order(0, order, 3);
        let mut sorted = ord.clone();
        sorted.sort();
        assert_eq!(sorted, (0..64).collect::<Vec<_>>(), "a permutation");
        let at = out.network.prune_levels(usize::MAX);
        let sweep = out
            .network
            .prune_sweep(0, &out.split, &out.labels[0], &ord, &at)
            .unwrap();
        assert_eq!(sweep.len(), 65);
        let mut s = cfg.setup().unwrap();
        let fleet = s.network.as_mlp_mut().unwrap();
        for m in [0usize, 1, 7, 32, 50, 63, 64] {
            fleet.models[0].params = model.params.clone();
            fleet.models[0].running = model.running.clone();
            for &k in &ord[..m] {
                arch.zero_neuron(&mut fleet.models[0].params, k);
            }
            let ev = fleet.evaluate();
            let a = accuracies(
                arch.p,
                fleet.loss,
                &s.split,
                &s.labels[0].labels,
                &s.labels[0].corrupted,
                &ev[0],
            );
            let f = &sweep[m].acc;
            assert_eq!(
                (a.train_acc, a.test_acc, a.mem_acc, a.inv_acc, a.clean_acc),
                (f.train_acc, f.test_acc, f.mem_acc, f.inv_acc, f.clean_acc),
                "{order:?}, m = {m}, BN {batchnorm}"
            );
            assert!((a.test_loss - f.test_loss).abs() <= 1e-5 * a.test_loss.max(1e-3));
        }
    }
}

#[test]
fn fast_pruning_equals_pruning_from_scratch() {
    check_pruning(false);
}

#[test]
fn fast_pruning_equals_pruning_from_scratch_with_batchnorm() {
    check_pruning(true);
}

#[test]
fn spearman_by_hand() {
    assert_eq!(spearman(&[1.0, 2.0, 3.0], &[10.0, 20.0, 30.0]), Some(1.0));
    assert_eq!(spearman(&[1.0, 2.0, 3.0], &[3.0, 2.0, 1.0]), Some(-1.0));
    // Ranks x: 1 2 3 4, y: 2 1 4 3 → d² = 4 → ρ = 1 − 6·4/(4·15) = 0.6.
    let r = spearman(&[1.0, 2.0, 3.0, 4.0], &[5.0, 1.0, 9.0, 7.0]).unwrap();
    assert!((r - 0.6).abs() < 1e-12);
    assert_eq!(spearman(&[1.0, 1.0], &[1.0, 2.0]), None);
}

fn rec(step: u64, train: f64, test: f64, mem: f64, inv: f64) -> Record {
    Record {
        step,
        epoch: step as f64,
        train_acc: train,
        test_acc: test,
        mem_acc: Some(mem),
        inv_acc: Some(inv),
        clean_acc: Some(1.0),
        norm_u: 1.0,
        norm_v: 1.0,
        norm_w: 1.0,
        ..Record::default()
    }
}

#[test]
fn dynamics_find_both_stages() {
    let h = vec![
        rec(0, 0.0, 0.0, 0.0, 0.0),
        rec(10, 0.95, 0.2, 0.92, 0.0),
        rec(20, 1.0, 0.97, 1.0, 0.0),
        rec(30, 0.8, 1.0, 0.5, 0.5),
        rec(40, 0.7, 1.0, 0.05, 0.95),
    ];
    let d = dynamics(&h, 0.9);
    assert_eq!(d.first_train_acc_hi, Some(10));
    assert_eq!(d.first_test_acc_hi, Some(20));
    assert_eq!(d.first_mem_acc_hi, Some(10));
    assert_eq!(d.last_mem_acc_drop, Some(30));
    assert_eq!(d.first_inv_acc_hi, Some(40));
    assert!(d.grokked && d.unlearned);
    let d = dynamics(&h[..3], 0.9);
    assert!(d.grokked && !d.unlearned);
    assert_eq!(d.last_mem_acc_drop, None);
}

/// The generic from-scratch sweep (what any model kind without a fast sweep gets, through
/// `Engine::prune_neurons`) on an MLP equals the MLP's fast sweep, and leaves the weights as
/// they were.
#[test]
fn the_engines_scratch_sweep_equals_the_mlps_fast_sweep() {
    use grokscope::analysis::prune::scratch_prune_sweep;
    let (_, mut s) = trained_corrupted(17, 24, true, 60);
    let before = s.network.as_mlp().unwrap().models[0].params.clone();
    let ord = s.network.prune_order(0, Order::Ascending, 0);
    let at: Vec<usize> = vec![0, 1, 5, 12, 23, 24];
    let fast = s
        .network
        .prune_sweep(0, &s.split, &s.labels[0], &ord, &at)
        .unwrap();
    let scratch =
        scratch_prune_sweep(&mut s.network, 0, (&s.split, &s.labels[0]), &ord, &at).unwrap();
    assert_eq!(fast.len(), scratch.len());
    for (f, g) in fast.iter().zip(&scratch) {
        assert_eq!((f.pruned, f.neuron), (g.pruned, g.neuron));
        let (a, b) = (&f.acc, &g.acc);
        assert_eq!(
            (a.train_acc, a.test_acc, a.mem_acc, a.inv_acc, a.clean_acc),
            (b.train_acc, b.test_acc, b.mem_acc, b.inv_acc, b.clean_acc),
            "level {}",
            f.pruned
        );
        assert!((a.test_loss - b.test_loss).abs() <= 1e-5 * a.test_loss.max(1e-3));
    }
    assert_eq!(
        s.network.as_mlp().unwrap().models[0].params,
        before,
        "weights restored"
    );
}
