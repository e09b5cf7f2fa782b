//! The deep MLP on dense inputs (SCIENCE.md §9): its hand-derived gradients against central
//! finite differences and against candle's autograd (f64), a model alone against the same
//! model in a fleet and under another thread count (to the bit), its state round trip, and
//! a short run on MNIST-1D that learns.

#[allow(dead_code)]
#[path = "common/oracle.rs"]
mod oracle;

use candle_core::{Device, Tensor, Var};
use grokscope::data::mnist1d::{generate, Mnist1dArgs};
use grokscope::data::DenseSplit;
use grokscope::model::deep::{DeepArch, DeepConfig, Norm};
use grokscope::model::kind::NetworkKind;
use grokscope::model::Activation;
use grokscope::train::adamw::AdamWHyper;
use grokscope::train::deep::DFleet;
use grokscope::train::loss::Loss;
use grokscope::train::{Engine, ModelHyper};

/// A small dense dataset: MNIST-1D's first examples (40 features, 10 classes).
fn data(n_train: usize) -> DenseSplit {
    let args = Mnist1dArgs {
        num_samples: 600,
        ..Default::default()
    };
    let mut d = generate(&args, 1).unwrap();
    d.train_x.truncate(n_train * d.dim);
    d.train_true.truncate(n_train);
    d
}

fn arch(widths: &[usize], activation: Activation, norm: Norm, bias: bool) -> DeepArch {
    DeepConfig {
        widths: widths.to_vec(),
        activation,
        norm,
        bias,
        ..Default::default()
    }
    .check(40, 10)
    .unwrap()
}

fn hyper(wd: f64, dropout: f32, seed: u64) -> ModelHyper {
    ModelHyper {
        adam: AdamWHyper {
            lr: 1e-3,
            weight_decay: wd,
            beta1: 0.9,
            beta2: 0.98,
            eps: 1e-8,
            perp: Default::default(),
        },
        dropout,
        dropout_seed: seed,
    }
}

struct Case {
    name: &'static str,
    arch: DeepArch,
    loss: Loss,
    dropout: f32,
}

/// Every option in at least one case: the three activations, no norm, BatchNorm and
/// LayerNorm, biases or none, CE, StableMax and MSE, dropout, one to three hidden layers.
fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "GELU, CE, biases, 2 layers",
            arch: arch(&[12, 9], Activation::Gelu, Norm::None, true),
            loss: Loss::CrossEntropy,
            dropout: 0.0,
        },
        Case {
            name: "square, MSE, LayerNorm, no biases, 3 layers",
            arch: arch(&[8, 7, 6], Activation::Square, Norm::Layernorm, false),
            loss: Loss::Mse,
            dropout: 0.0,
        },
        Case {
            name: "GELU, CE, BatchNorm, 2 layers",
            arch: arch(&[10, 8], Activation::Gelu, Norm::Batchnorm, true),
            loss: Loss::CrossEntropy,
            dropout: 0.0,
        },
        Case {
            name: "ReLU, CE, dropout 0.3, 1 layer",
            arch: arch(&[16], Activation::Relu, Norm::None, true),
            loss: Loss::CrossEntropy,
            dropout: 0.3,
        },
        Case {
            name: "ReLU, StableMax, LayerNorm, 2 layers",
            arch: arch(&[10, 8], Activation::Relu, Norm::Layernorm, true),
            loss: Loss::StableMax,
            dropout: 0.0,
        },
        Case {
            name: "ReLU, MSE, BatchNorm, dropout 0.2, 2 layers",
            arch: arch(&[10, 10], Activation::Relu, Norm::Batchnorm, true),
            loss: Loss::Mse,
            dropout: 0.2,
        },
    ]
}

fn fleet64(c: &Case, d: &DenseSplit, seed: u64) -> DFleet<f64> {
    let labels = d.train_true.clone();
    DFleet::new(
        c.arch.clone(),
        c.loss,
        d,
        vec![(c.arch.init_params(seed), hyper(0.0, c.dropout, 5), labels)],
    )
}

#[test]
fn gradients_match_central_finite_differences() {
    let d = data(48);
    for c in cases() {
        let mut f = fleet64(&c, &d, 2);
        let (_, g) = f.gradients(0, None);
        let n = c.arch.n_params();
        // Every tensor's first entries and a spread of the rest.
        let picks: Vec<usize> = (0..n).step_by((n / 40).max(1)).collect();
        let mut worst: f64 = 0.0;
        for &j in &picks {
            let x = f.models[0].params[j];
            let h = 1e-5 * x.abs().max(1.0);
            f.models[0].params[j] = x + h;
            let (lp, _) = f.gradients(0, None);
            f.models[0].params[j] = x - h;
            let (lm, _) = f.gradients(0, None);
            f.models[0].params[j] = x;
            let fd = (lp - lm) / (2.0 * h);
            // Entries near zero (a bias before BatchNorm has none) are compared absolutely.
            let err = (fd - g[j]).abs() / (fd.abs() + g[j].abs()).max(1e-4);
            worst = worst.max(err);
            assert!(
                err < 1e-5,
                "{}: parameter {j}: finite difference {fd}, gradient {}",
                c.name,
                g[j]
            );
        }
        println!(
            "{}: worst relative error {worst:.1e} over {} parameters",
            c.name,
            picks.len()
        );
    }
}

/// The case's network in candle (f64, autograd), on the parameters `values`.
fn candle_grads(c: &Case, values: &[f64], d: &DenseSplit) -> (f64, Vec<f64>) {
    let dev = Device::Cpu;
    let layout = c.arch.parameters();
    let mut vars = Vec::new();
    let mut at = 0;
    for t in &layout {
        let v = Tensor::from_vec(values[at..at + t.len()].to_vec(), t.shape.clone(), &dev).unwrap();
        vars.push((t.name.clone(), Var::from_tensor(&v).unwrap()));
        at += t.len();
    }
    let get = |name: &str| {
        vars.iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_tensor().clone())
    };
    let n = d.train_true.len();
    let x0 = Tensor::from_vec(
        d.train_x.iter().map(|&v| v as f64).collect::<Vec<f64>>(),
        (n, d.dim),
        &dev,
    )
    .unwrap();
    let mut x = x0;
    for l in 0..c.arch.depth() {
        let w = get(&format!("layers.{l}.weight")).unwrap();
        let mut h = x.matmul(&w.t().unwrap()).unwrap();
        if let Some(b) = get(&format!("layers.{l}.bias")) {
            h = h.broadcast_add(&b).unwrap();
        }
        let g = get(&format!("layers.{l}.norm.weight"));
        let be = get(&format!("layers.{l}.norm.bias"));
        let z = match c.arch.norm {
            Norm::None => h,
            Norm::Layernorm => oracle::layer_norm(&h, &g.unwrap(), &be.unwrap()).unwrap(),
            Norm::Batchnorm => {
                let mean = h.mean_keepdim(0).unwrap();
                let hc = h.broadcast_sub(&mean).unwrap();
                let var = hc.sqr().unwrap().mean_keepdim(0).unwrap();
                let eps = c.arch.bn_eps as f64;
                let xn = hc
                    .broadcast_div(&(var + eps).unwrap().sqrt().unwrap())
                    .unwrap();
                xn.broadcast_mul(&g.unwrap())
                    .unwrap()
                    .broadcast_add(&be.unwrap())
                    .unwrap()
            }
        };
        x = match c.arch.activation {
            Activation::Relu => z.relu().unwrap(),
            Activation::Square => z.sqr().unwrap(),
            Activation::Gelu => ((&z * 0.5).unwrap()
                * ((&z * std::f64::consts::FRAC_1_SQRT_2)
                    .unwrap()
                    .erf()
                    .unwrap()
                    + 1.0)
                    .unwrap())
            .unwrap(),
        };
    }
    let mut logits = x.matmul(&get("out.weight").unwrap().t().unwrap()).unwrap();
    if let Some(b) = get("out.bias") {
        logits = logits.broadcast_add(&b).unwrap();
    }
    let lab = Tensor::from_vec(d.train_true.clone(), n, &dev).unwrap();
    let loss = oracle::loss_tensor(c.loss, &logits, &lab, 10).unwrap();
    let grads = loss.backward().unwrap();
    let mut flat = Vec::new();
    for (_, v) in &vars {
        let g = grads.get(v.as_tensor()).unwrap();
        flat.extend(g.flatten_all().unwrap().to_vec1::<f64>().unwrap());
    }
    (loss.to_scalar::<f64>().unwrap(), flat)
}

#[test]
fn gradients_match_the_candle_oracle() {
    let d = data(64);
    // Dropout is checked against finite differences; candle has no access to the masks.
    for c in cases().into_iter().filter(|c| c.dropout == 0.0) {
        let mut f = fleet64(&c, &d, 3);
        let values = f.models[0].params.clone();
        let (l, g) = f.gradients(0, None);
        let (lo, go) = candle_grads(&c, &values, &d);
        assert!(
            (l - lo).abs() <= 1e-10 * lo.abs().max(1.0),
            "{}: loss {l} vs {lo}",
            c.name
        );
        let scale = go.iter().fold(0f64, |a, b| a.max(b.abs()));
        let worst = g
            .iter()
            .zip(&go)
            .map(|(a, b)| (a - b).abs() / scale)
            .fold(0f64, f64::max);
        println!(
            "{}: largest gradient difference {worst:.1e} of the largest entry",
            c.name
        );
        assert!(worst < 1e-9, "{}: gradients differ by {worst:e}", c.name);
    }
}

/// A fleet of three different models trained on minibatches with f32.
fn train(arch: &DeepArch, d: &DenseSplit, models: &[(u64, f64, f32)], steps: usize) -> DFleet {
    let list = models
        .iter()
        .map(|&(seed, wd, q)| {
            let mut labels = d.train_true.clone();
            labels[seed as usize] = (labels[seed as usize] + 1) % 10;
            (arch.init_params(seed), hyper(wd, q, seed + 100), labels)
        })
        .collect();
    let mut f: DFleet = DFleet::new(arch.clone(), Loss::CrossEntropy, d, list);
    let n = d.train_true.len() as u32;
    for s in 0..steps as u32 {
        let batch: Vec<u32> = (0..32).map(|i| (s * 7 + i * 13) % n).collect();
        f.step_on(Some(&batch));
    }
    f
}

#[test]
fn a_model_alone_equals_the_same_model_in_a_fleet_and_under_any_thread_count() {
    let d = data(200);
    let a = arch(&[24, 16], Activation::Relu, Norm::Batchnorm, true);
    let models = [(0, 0.0, 0.0), (1, 0.5, 0.3), (2, 5.0, 0.1)];
    let fleet = train(&a, &d, &models, 30);
    for (i, m) in models.iter().enumerate() {
        let alone = train(&a, &d, &[*m], 30);
        assert_eq!(alone.models[0].params, fleet.models[i].params, "model {i}");
        assert_eq!(
            alone.models[0].running, fleet.models[i].running,
            "model {i}"
        );
    }
    let one = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap()
        .install(|| train(&a, &d, &models, 30));
    for i in 0..models.len() {
        assert_eq!(
            one.models[i].params, fleet.models[i].params,
            "model {i}, 1 thread"
        );
    }
    let mut f = fleet;
    let mut g = one;
    assert_eq!(
        f.eval_all().unwrap()[2].preds,
        g.eval_all().unwrap()[2].preds
    );
}

#[test]
fn the_saved_state_continues_to_the_same_bits() {
    let d = data(200);
    let a = arch(&[16, 16], Activation::Gelu, Norm::Batchnorm, true);
    let models = [(0, 0.1, 0.2), (1, 1.0, 0.0)];
    let mut straight = train(&a, &d, &models, 10);
    let state = straight.save_state(vec![]).unwrap();
    let weights = straight.save(10, &[0, 1]).unwrap();
    let n = d.train_true.len() as u32;
    let batch: Vec<u32> = (0..32).map(|i| (i * 5) % n).collect();
    let mut resumed = train(&a, &d, &models, 0);
    resumed.load_state(&state).unwrap();
    for _ in 0..5 {
        straight.step_on(Some(&batch));
        resumed.step_on(Some(&batch));
    }
    for i in 0..2 {
        assert_eq!(straight.models[i].params, resumed.models[i].params);
        assert_eq!(straight.models[i].running, resumed.models[i].running);
    }
    // The weights file loads into a fresh fleet and evaluates as the saved models.
    let mut fresh = train(&a, &d, &models, 0);
    fresh.load(&weights).unwrap();
    let mut at10 = train(&a, &d, &models, 10);
    assert_eq!(
        fresh.eval_all().unwrap()[1].preds,
        at10.eval_all().unwrap()[1].preds
    );
    // A file of another shape is refused and leaves the fleet as it was.
    let other = arch(&[16, 8], Activation::Gelu, Norm::Batchnorm, true);
    let before = fresh.models[0].params.clone();
    let mut wrong = train(&other, &d, &models, 0);
    let e = wrong.load(&weights).unwrap_err().to_string();
    assert!(e.contains("widths"), "{e}");
    assert_eq!(fresh.models[0].params, before);
}

#[test]
fn pruning_a_unit_is_the_network_without_it() {
    let d = data(100);
    let a = arch(&[12, 10], Activation::Relu, Norm::None, true);
    let mut f = train(&a, &d, &[(0, 0.0, 0.0)], 20);
    let saved = f.prunable_weights(0);
    // Layer 1's unit 3 is neuron 12 + 3; its outgoing read-out column becomes zero.
    f.prune_neurons(0, &saved, &[15]).unwrap();
    let acts = f.activations(0, &d.train_x[..40]);
    assert_eq!(acts.len(), 2);
    let slots = a.slots();
    let out = &slots[2];
    for r in 0..out.fan_out {
        assert_eq!(
            f.models[0].params[out.weight.start + r * out.fan_in + 3],
            0.0
        );
    }
    f.prune_neurons(0, &saved, &[]).unwrap();
    assert_eq!(f.models[0].params, saved[0].1);
    assert_eq!(Engine::neuron_id(&f, 15), (1, 3));
    assert!(f.prune_neurons(0, &saved, &[22]).is_err(), "no unit 22");
    assert_eq!(
        f.models[0].params, saved[0].1,
        "a refused pruning changes nothing"
    );
}

#[test]
fn an_evaluation_after_pruning_equals_one_from_scratch() {
    // Pruned evaluations start at the layer after the first pruned unit, from the unpruned
    // network's cached outputs; they must equal a fresh fleet's evaluation to the bit.
    let d = data(300);
    let a = arch(&[12, 10, 8], Activation::Gelu, Norm::Batchnorm, true);
    let mut f = train(&a, &d, &[(0, 0.0, 0.0), (1, 0.1, 0.0)], 20);
    let saved = f.prunable_weights(1);
    for gone in [vec![13usize], vec![25, 2], vec![29, 23], vec![]] {
        f.prune_neurons(1, &saved, &gone).unwrap();
        let cached = f.eval_model(1).unwrap();
        let mut fresh = train(&a, &d, &[(0, 0.0, 0.0), (1, 0.1, 0.0)], 0);
        fresh.models[1].params = f.models[1].params.clone();
        fresh.models[1].running = f.models[1].running.clone();
        let scratch = fresh.eval_model(1).unwrap();
        assert_eq!(cached.preds, scratch.preds, "{gone:?}");
        let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&cached.row_loss), bits(&scratch.row_loss), "{gone:?}");
    }
    // A change of the parameters outside pruning is never evaluated from the cache.
    f.prune_neurons(1, &saved, &[25]).unwrap();
    f.models[1].params[0] += 1.0;
    let changed = f.eval_model(1).unwrap();
    let mut fresh = train(&a, &d, &[(0, 0.0, 0.0), (1, 0.1, 0.0)], 0);
    fresh.models[1].params = f.models[1].params.clone();
    fresh.models[1].running = f.models[1].running.clone();
    assert_eq!(changed.row_loss, fresh.eval_model(1).unwrap().row_loss);
}

#[test]
fn a_short_run_on_mnist1d_learns_its_classes() {
    let d = generate(&Mnist1dArgs::default(), 0).unwrap();
    let a = arch(&[128, 128], Activation::Relu, Norm::None, true);
    let labels = d.train_true.clone();
    let mut f: DFleet = DFleet::new(
        a.clone(),
        Loss::CrossEntropy,
        &d,
        vec![(a.init_params(0), hyper(0.0, 0.0, 0), labels)],
    );
    let n = d.train_true.len() as u32;
    for s in 0..600u32 {
        let batch: Vec<u32> = (0..100).map(|i| (s * 100 + i) % n).collect();
        f.step_on(Some(&batch));
    }
    let out = &f.eval_all().unwrap()[0];
    let nt = d.train_true.len();
    let test = out.preds[nt..]
        .iter()
        .zip(&d.test_labels)
        .filter(|(a, b)| a == b)
        .count() as f64
        / d.test_labels.len() as f64;
    println!("MNIST-1D, 15 epochs: test accuracy {test:.3}");
    // Chance is 0.1 and the nearest class mean 0.25.
    assert!(test > 0.4, "test accuracy {test}");
}
