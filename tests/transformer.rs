//! The Transformer: autograd gradients against finite differences (f64), and a small
//! configuration that generalizes without corruption.

use candle_core::DType;
use grokscope::config::{Axis, Config, ModelKind};
use grokscope::data::Split;
use grokscope::model::transformer::{TActivation, TransformerConfig};
use grokscope::train::adamw::AdamWHyper;
use grokscope::train::engine::ModelHyper;
use grokscope::train::loss::Loss;
use grokscope::train::transformer::TFleet;

fn hyper(dropout: f32) -> ModelHyper {
    ModelHyper {
        adam: AdamWHyper {
            lr: 0.01,
            weight_decay: 0.0,
            beta1: 0.9,
            beta2: 0.98,
            eps: 1e-8,
        },
        dropout,
        dropout_seed: 3,
    }
}

/// Central differences on every parameter entry of a tiny Transformer in f64.
fn check(cfg: TransformerConfig, loss: Loss, dropout: f32) {
    let split = Split::new(7, grokscope::data::Operation::Add, 0.5, 1).unwrap();
    let labels = split
        .corrupt(0.3, grokscope::data::CorruptionMode::Wrong, 2)
        .unwrap()
        .labels;
    let fleet = TFleet::new(
        &cfg,
        loss,
        &split,
        vec![(5, hyper(dropout), labels)],
        DType::F64,
    )
    .unwrap();
    let batch: Vec<u32> = (0..split.n_train() as u32).collect();
    let (_, grads) = fleet.gradients(0, Some(&batch)).unwrap();
    let eps = 1e-6;
    let mut worst = 0.0f64;
    for (j, q) in fleet.models[0].model.params.iter().enumerate() {
        let orig = q
            .var
            .as_tensor()
            .flatten_all()
            .unwrap()
            .to_vec1::<f64>()
            .unwrap();
        let shape = q.var.shape().clone();
        for i in 0..orig.len() {
            let mut v = orig.clone();
            let mut loss_at = |x: f64| {
                v[i] = x;
                let t = candle_core::Tensor::from_vec(
                    v.clone(),
                    shape.clone(),
                    &candle_core::Device::Cpu,
                )
                .unwrap();
                q.var.set(&t).unwrap();
                fleet
                    .batch_loss(0, Some(&batch))
                    .unwrap()
                    .to_scalar::<f64>()
                    .unwrap()
            };
            let fd = (loss_at(orig[i] + eps) - loss_at(orig[i] - eps)) / (2.0 * eps);
            let g = grads[j][i];
            let err = (fd - g).abs() / (1e-6 + g.abs().max(fd.abs()));
            if (fd - g).abs() > 1e-7 {
                worst = worst.max(err);
                assert!(
                    err < 1e-4,
                    "{} [{i}]: autograd {g} vs finite difference {fd}",
                    q.name
                );
            }
        }
        let t = candle_core::Tensor::from_vec(orig, shape, &candle_core::Device::Cpu).unwrap();
        q.var.set(&t).unwrap();
    }
    eprintln!("worst relative error {worst:.2e}");
}

fn tiny() -> TransformerConfig {
    TransformerConfig {
        d_model: 8,
        heads: 2,
        layers: 1,
        mlp_ratio: 2,
        ..Default::default()
    }
}

#[test]
fn gradients_plain_ce() {
    check(tiny(), Loss::CrossEntropy, 0.0);
}

#[test]
fn gradients_layernorm_gelu_mse_two_layers() {
    let cfg = TransformerConfig {
        layers: 2,
        layernorm: true,
        activation: TActivation::Gelu,
        ..tiny()
    };
    check(cfg, Loss::Mse, 0.0);
}

#[test]
fn gradients_tied_mup_dropout() {
    let cfg = TransformerConfig {
        tie_embeddings: true,
        mup: true,
        ..tiny()
    };
    check(cfg, Loss::CrossEntropy, 0.2);
}

#[test]
fn small_transformer_generalizes_without_corruption() {
    let mut cfg = Config::default();
    cfg.model.kind = ModelKind::Transformer;
    cfg.model.transformer = TransformerConfig {
        d_model: 32,
        heads: 4,
        decay_embeddings: true,
        ..Default::default()
    };
    cfg.data.p = 23;
    cfg.data.train_fraction = 0.7;
    cfg.train.loss = Loss::CrossEntropy;
    cfg.train.weight_decay = Axis::One(2.0);
    cfg.train.epochs = Some(1000);
    cfg.eval.every = 100;
    let s = grokscope::train::run::setup_transformer(&cfg, cfg.fleet()).unwrap();
    let out = grokscope::train::run::train_setup(&cfg, s, &mut |_| Ok(())).unwrap();
    let last = out.history[0].last().unwrap();
    assert_eq!(last.test_acc, 1.0, "{last:?}");
}
