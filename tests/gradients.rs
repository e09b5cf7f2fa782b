//! Hand-derived gradients against central finite differences, for every parameter.

use grokscope::config::{Axis, Config};
use grokscope::model::Activation;
use grokscope::setup::Prepare;
use grokscope::train::loss::Loss;

fn tiny(loss: Loss, bn: bool, act: Activation, dropout: f64) -> Config {
    let mut c = Config::default();
    c.data.p = 7;
    c.data.train_fraction = 0.6;
    c.data.corruption = Axis::One(0.3);
    c.model.mlp.width = 6;
    c.model.mlp.activation = act;
    c.model.mlp.batchnorm = bn;
    c.model.dropout = Axis::One(dropout);
    c.model.mlp.init_std = Some(0.8);
    c.train.loss = loss;
    c.train.steps = Some(1);
    c
}

/// Checks every parameter's gradient; returns the largest relative error.
fn check(cfg: &Config, eps: f32) -> f64 {
    let mut s = cfg.clone().check().unwrap().setup().unwrap();
    let fleet = s.network.as_mlp_mut().unwrap();
    // Move away from the init so BatchNorm's γ, β are not all 1, 0.
    for _ in 0..3 {
        fleet.step_full();
    }
    let batch = fleet.full_batch();
    let (_, grad) = fleet.gradients(&batch).remove(0);
    let scale = grad.iter().fold(0.0f64, |m, g| m.max(g.abs() as f64));
    assert!(scale > 0.0);
    let mut worst = 0.0f64;
    for (i, &g) in grad.iter().enumerate() {
        let orig = fleet.models[0].params[i];
        fleet.models[0].params[i] = orig + eps;
        let lp = fleet.gradients(&batch)[0].0;
        fleet.models[0].params[i] = orig - eps;
        let lm = fleet.gradients(&batch)[0].0;
        fleet.models[0].params[i] = orig;
        let fd = (lp - lm) / (2.0 * eps as f64);
        let err = (fd - g as f64).abs() / (scale * 1e-2 + (g as f64).abs());
        worst = worst.max(err);
        assert!(
            err < 2e-2,
            "parameter {i}: analytic {g} vs finite difference {fd} (rel. err {err})"
        );
    }
    eprintln!("worst relative error {worst:.2e}");
    worst
}

#[test]
fn mse_square_plain() {
    check(&tiny(Loss::Mse, false, Activation::Square, 0.0), 1e-3);
}

#[test]
fn mse_square_batchnorm() {
    check(&tiny(Loss::Mse, true, Activation::Square, 0.0), 1e-3);
}

#[test]
fn ce_square_plain() {
    check(
        &tiny(Loss::CrossEntropy, false, Activation::Square, 0.0),
        1e-3,
    );
}

#[test]
fn ce_square_batchnorm() {
    check(
        &tiny(Loss::CrossEntropy, true, Activation::Square, 0.0),
        1e-3,
    );
}

#[test]
fn stablemax_square_plain_and_relu_batchnorm() {
    check(&tiny(Loss::StableMax, false, Activation::Square, 0.0), 1e-3);
    check(&tiny(Loss::StableMax, true, Activation::Relu, 0.0), 5e-4);
}

#[test]
fn mse_gelu_batchnorm() {
    check(&tiny(Loss::Mse, true, Activation::Gelu, 0.0), 1e-3);
}

#[test]
fn ce_relu_plain() {
    check(
        &tiny(Loss::CrossEntropy, false, Activation::Relu, 0.0),
        5e-4,
    );
}

#[test]
fn dropout_with_fixed_mask() {
    // The mask depends only on (seed, step, row), so the loss is a fixed function of the
    // parameters within one step and finite differences apply.
    check(&tiny(Loss::Mse, false, Activation::Gelu, 0.3), 1e-3);
    check(&tiny(Loss::Mse, true, Activation::Square, 0.3), 1e-3);
}

#[test]
fn a_wrong_gradient_is_caught() {
    // The checker itself must be able to fail: perturb one analytic entry.
    let cfg = tiny(Loss::Mse, false, Activation::Square, 0.0);
    let mut s = cfg.check().unwrap().setup().unwrap();
    let fleet = s.network.as_mlp_mut().unwrap();
    let batch = fleet.full_batch();
    let (_, grad) = fleet.gradients(&batch).remove(0);
    let i = grad
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.abs().total_cmp(&b.1.abs()))
        .unwrap()
        .0;
    let eps = 1e-3;
    let orig = fleet.models[0].params[i];
    fleet.models[0].params[i] = orig + eps;
    let lp = fleet.gradients(&batch)[0].0;
    fleet.models[0].params[i] = orig - eps;
    let lm = fleet.gradients(&batch)[0].0;
    let fd = (lp - lm) / (2.0 * eps as f64);
    assert!((fd - grad[i] as f64).abs() < 1e-2 * grad[i].abs() as f64);
    assert!((fd - 1.1 * grad[i] as f64).abs() > 5e-2 * grad[i].abs() as f64);
}
