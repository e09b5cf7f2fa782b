//! The Transformer: the engine's gradients against finite differences (f64), a small
//! configuration that generalizes without corruption, runs, pruning, sweeps, threads and
//! `rescale_optim`. (The engine against candle's autograd: `transformer_oracle.rs`.)

mod common;
use common::grokscope;

use grokscope::config::{Axis, Config};
use grokscope::data::Split;
use grokscope::experiment::{train_config, Outcome};
use grokscope::model::transformer::{TActivation, TInit, TransformerConfig};
use grokscope::train::adamw::AdamWHyper;
use grokscope::train::loss::Loss;
use grokscope::train::transformer::TFleet;
use grokscope::train::{Engine, ModelHyper};

/// A config of the Transformer (everything else at its default).
fn transformer_config() -> Config {
    Config::from_toml("[model]\nkind = \"transformer\"", &[]).unwrap()
}

fn train(cfg: Config) -> Outcome {
    train_config(&cfg.check().unwrap(), &mut |_| Ok(())).unwrap()
}

fn hyper(dropout: f32) -> ModelHyper {
    ModelHyper {
        adam: AdamWHyper {
            lr: 0.01,
            weight_decay: 0.0,
            beta1: 0.9,
            beta2: 0.98,
            eps: 1e-8,
            perp: Default::default(),
        },
        dropout,
        dropout_seed: 3,
    }
}

fn corrupted_labels(split: &Split) -> Vec<u32> {
    split
        .corrupt(0.3, grokscope::data::CorruptionMode::Wrong, 2)
        .unwrap()
        .labels
}

/// Central differences on every parameter entry of a tiny Transformer in f64.
fn check(cfg: TransformerConfig, loss: Loss, dropout: f32) {
    let split = Split::new(7, grokscope::data::Operation::Add, 0.5, 1).unwrap();
    let labels = corrupted_labels(&split);
    let mut fleet = TFleet::<f64>::new(
        &cfg,
        loss,
        &split,
        vec![(5, hyper(dropout), labels.clone())],
    );
    let batch: Vec<u32> = (0..split.n_train() as u32).collect();
    let (loss0, grads) = fleet.gradients(0, Some(&batch));
    if dropout > 0.0 {
        // Dropout really acts: the same weights without it give another loss.
        let mut plain = TFleet::<f64>::new(&cfg, loss, &split, vec![(5, hyper(0.0), labels)]);
        let l = plain.gradients(0, Some(&batch)).0;
        assert!(
            (l - loss0).abs() > 1e-3,
            "dropout changed nothing: {l} vs {loss0}"
        );
    }
    let eps = 1e-6;
    let mut worst = 0.0f64;
    let specs = fleet.specs.clone();
    for (j, q) in specs.iter().enumerate() {
        for i in q.range() {
            let orig = fleet.models[0].params[i];
            let mut loss_at = |x: f64| {
                fleet.models[0].params[i] = x;
                fleet.gradients(0, Some(&batch)).0
            };
            let fd = (loss_at(orig + eps) - loss_at(orig - eps)) / (2.0 * eps);
            fleet.models[0].params[i] = orig;
            let g = grads[j][i - q.offset];
            let err = (fd - g).abs() / (1e-6 + g.abs().max(fd.abs()));
            if (fd - g).abs() > 1e-7 {
                worst = worst.max(err);
                assert!(
                    err < 1e-4,
                    "{} [{i}]: gradient {g} vs finite difference {fd}",
                    q.name
                );
            }
        }
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
fn gradients_plain_ce_mup_no_bias() {
    check(tiny(), Loss::CrossEntropy, 0.0);
}

#[test]
fn gradients_layernorm_gelu_mse_two_layers_bias_uniform() {
    let cfg = TransformerConfig {
        layers: 2,
        layernorm: true,
        activation: TActivation::Gelu,
        mlp_bias: true,
        init: TInit::Uniform,
        mup: false,
        ..tiny()
    };
    check(cfg, Loss::Mse, 0.0);
}

#[test]
fn gradients_stablemax() {
    check(tiny(), Loss::StableMax, 0.0);
}

#[test]
fn gradients_tied_standard_dropout() {
    let cfg = TransformerConfig {
        tie_embeddings: true,
        mup_s: 0.0,
        ..tiny()
    };
    check(cfg, Loss::CrossEntropy, 0.2);
}

#[test]
fn small_transformer_generalizes_without_corruption() {
    let mut cfg = transformer_config();
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
    let out = train(cfg);
    let last = out.history[0].last().unwrap();
    assert_eq!(last.test_acc, 1.0, "{last:?}");
}

/// `train.softmax_precision`: the Transformer's default is f32 (its passes compute in f32),
/// f64 computes the loss's softmax in f64; the training losses of the two agree to f32
/// rounding over 30 steps of cross-entropy and of StableMax, and are not the same bits.
#[test]
fn softmax_precision_f32_and_f64_train_alike() {
    use grokscope::model::Precision;
    for loss in [Loss::CrossEntropy, Loss::StableMax] {
        let run = |prec: Option<Precision>| {
            let mut cfg = transformer_config();
            cfg.model.transformer = TransformerConfig {
                d_model: 16,
                heads: 2,
                ..Default::default()
            };
            cfg.data.p = 11;
            cfg.train.loss = loss;
            cfg.train.steps = Some(30);
            cfg.train.softmax_precision = prec;
            cfg.eval.every = 10;
            assert_eq!(
                cfg.softmax_precision(),
                prec.unwrap_or(Precision::F32),
                "the Transformer's default"
            );
            train(cfg).history[0]
                .iter()
                .map(|r| r.train_loss)
                .collect::<Vec<f64>>()
        };
        let (a, b, c) = (
            run(None),
            run(Some(Precision::F32)),
            run(Some(Precision::F64)),
        );
        assert_eq!(a, b, "{loss:?}: the default is f32");
        assert_ne!(a, c, "{loss:?}: f64 rounds differently");
        for (x, y) in a.iter().zip(&c) {
            assert!(
                (x - y).abs() < 1e-4 * y.abs().max(1.0),
                "{loss:?}: {a:?} vs {c:?}"
            );
        }
    }
    let mut mlp = Config::default();
    assert_eq!(mlp.softmax_precision(), Precision::F64, "the MLP's default");
    mlp.train.softmax_precision = Some(Precision::F32);
    assert_eq!(mlp.softmax_precision(), Precision::F32);
}

#[test]
fn transformer_run_analyze_prune_report() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let out = grokscope(
        &[
            "train",
            "-q",
            "--out",
            "run",
            "--set",
            "model.kind=transformer",
            "--set",
            "data.p=11",
            "--set",
            "model.transformer.d_model=16",
            "--set",
            "model.transformer.heads=2",
            "--set",
            "train.loss=ce",
            "--set",
            "train.epochs=30",
            "--set",
            "eval.every=10",
        ],
        t,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run = t.join("run");
    for f in [
        "accuracy",
        "loss_norms",
        "progress",
        "ipr",
        "fourier_model0",
        "fourier_model2",
        "pruning",
    ] {
        assert!(run.join("report").join(format!("{f}.png")).exists(), "{f}");
    }
    let bytes = std::fs::read(run.join("weights.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    assert_eq!(st.tensor("tok_emb").unwrap().shape(), &[3, 11, 16]);
    assert_eq!(st.tensor("layers.0.mlp.fc1").unwrap().shape(), &[3, 64, 16]);
    // Reading the run back reproduces its final accuracies.
    let mut loaded = grokscope::rundir::load_run(&run).unwrap();
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("summary.json")).unwrap()).unwrap();
    let s = &mut loaded.setup;
    for i in 0..3 {
        let ev = s.network.eval_model(i).unwrap();
        let a = grokscope::metrics::accuracies(
            11,
            s.network.loss(),
            &s.split,
            &s.labels[i].labels,
            &s.labels[i].corrupted,
            &ev,
        );
        let fin = summary["models"][i]["final"]["test_acc"].as_f64().unwrap();
        assert!((a.test_acc - fin).abs() < 1e-12);
    }
    let out = grokscope(&["analyze", "run"], t);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines = |f: &str| {
        std::fs::read_to_string(run.join("analysis").join(f))
            .unwrap()
            .lines()
            .count()
    };
    assert_eq!(lines("neurons.csv"), 1 + 3 * 64);
    assert_eq!(lines("embedding.csv"), 1 + 3 * 16);
    assert_eq!(
        lines("prune-ascending.csv"),
        1 + 3 * 65,
        "levels 0 … 64 per model"
    );
    let out = grokscope(
        &[
            "prune",
            "run",
            "--order",
            "descending",
            "--model",
            "2",
            "--force",
        ],
        t,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(lines("prune-descending-model2.csv"), 1 + 65);
    let out = grokscope(&["prune", "run", "--model", "3"], t);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("out of range"));
}

#[test]
fn transformer_pruning_starts_from_the_network_and_restores_it() {
    use grokscope::analysis::prune::Order;
    let mut cfg = transformer_config();
    cfg.model.transformer = TransformerConfig {
        d_model: 16,
        heads: 2,
        ..Default::default()
    };
    cfg.data.p = 13;
    cfg.data.corruption = Axis::One(0.2);
    cfg.train.loss = Loss::CrossEntropy;
    cfg.train.weight_decay = Axis::One(0.0);
    cfg.train.steps = Some(60);
    let mut out = train(cfg).setup;
    let before = out.network.eval_model(0).unwrap();
    let iprs = out.network.weight_stats(0).neuron_iprs;
    assert_eq!(iprs.len(), 64);
    assert_eq!(out.network.n_neurons(), 64);
    let ord = out.network.prune_order(0, Order::Ascending, 0);
    let ipr = |i: usize| iprs[ord[i]].unwrap();
    assert!(ipr(0) <= ipr(30) && ipr(30) <= ipr(63), "ascending IPR");
    let at = out.network.prune_levels(101);
    let sweep = out
        .network
        .prune_sweep(0, &out.split, &out.labels[0], &ord, &at)
        .unwrap();
    assert_eq!(sweep.len(), 65);
    let a0 = grokscope::metrics::accuracies(
        13,
        out.network.loss(),
        &out.split,
        &out.labels[0].labels,
        &out.labels[0].corrupted,
        &before,
    );
    assert_eq!(sweep[0].acc, a0, "level 0 is the trained network");
    assert_ne!(
        sweep[64].acc.train_acc, a0.train_acc,
        "pruning every neuron changes it"
    );
    let after = out.network.eval_model(0).unwrap();
    assert_eq!(after.preds, before.preds, "weights restored");
}

#[test]
fn transformer_sweeps_run_through_the_same_store() {
    let text = r#"
name = "t-sweep"
[base]
data.p = 11
model.kind = "transformer"
model.transformer.d_model = 8
model.transformer.heads = 2
train.loss = "ce"
train.steps = 10
[axes]
"data.corruption" = [0.0, 0.3]
"train.weight_decay" = [0, 1]
"#;
    let tmp = tempfile::tempdir().unwrap();
    let plan = grokscope::sweep::Plan::from_text(text).unwrap();
    let recs = grokscope::sweep::run_all(&plan, &tmp.path().join("s"), None, &mut |_| {}).unwrap();
    assert_eq!(recs.len(), 4);
    assert!(recs
        .values()
        .all(|r| r.steps == 10 && r.last.mean_ipr.is_some()));
    assert!(recs[&0].last.mem_acc.is_none() && recs[&2].last.mem_acc.is_some());
}

/// `--threads 1` runs the Transformer on one thread: its CPU time (user + sys, from the
/// kernel's accounting of this child alone) is not above its wall time.
#[test]
// The child is reaped by `wait4` (which also returns its resource usage), not by `wait()`.
#[allow(clippy::zombie_processes)]
fn one_thread_means_one_thread() {
    let tmp = tempfile::tempdir().unwrap();
    let start = std::time::Instant::now();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_grokscope"))
        .args([
            "train",
            "--threads",
            "1",
            "-q",
            "--no-report",
            "--set",
            "model.kind=\"transformer\"",
            "--set",
            "data.p=23",
            "--set",
            "train.epochs=400",
            "--out",
        ])
        .arg(tmp.path().join("run"))
        .env_remove("RAYON_NUM_THREADS")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut status = 0;
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = unsafe { libc::wait4(child.id() as libc::pid_t, &mut status, 0, &mut usage) };
    let wall = start.elapsed().as_secs_f64();
    assert_eq!(pid, child.id() as libc::pid_t);
    assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0);
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
    let cpu = secs(usage.ru_utime) + secs(usage.ru_stime);
    assert!(
        cpu <= 1.15 * wall + 0.1,
        "--threads 1: {cpu:.2} s of CPU in {wall:.2} s of wall time"
    );
}

/// `rescale_optim`: each parameter's first AdamW step is the reference's, with its group's
/// learning rate (d = 128, s = 1: attention lr/128, fc1 lr/256, fc2 lr/512, output lr,
/// embeddings lr without decay): Δp = −lr_j·wd_j·p − lr_j·g/(|g| + eps) at step 1.
#[test]
fn rescale_optim_gives_the_reference_learning_rates() {
    use grokscope::model::transformer::Kind;
    let cfg = TransformerConfig {
        rescale_optim: true,
        ..TransformerConfig::default()
    };
    let table = [
        ("layers.0.attn.wq", Kind::Matrix, 1.0 / 128.0, true),
        ("layers.0.attn.wo", Kind::Matrix, 1.0 / 128.0, true),
        ("layers.0.mlp.fc1", Kind::Matrix, 1.0 / 256.0, true),
        ("layers.0.mlp.fc2", Kind::Matrix, 1.0 / 512.0, true),
        ("unembed", Kind::Matrix, 1.0, true),
        ("tok_emb", Kind::Embedding, 1.0, false),
        ("layers.0.ln1.weight", Kind::Norm, 1.0, false),
    ];
    for (name, kind, lr, decays) in table {
        let (got, d) = cfg.rescaled(name, kind).unwrap();
        assert!((got - lr).abs() < 1e-15 && d == decays, "{name}: {got} {d}");
    }
    // The standard parametrization (s = 0): g = d^{-1/2}.
    let sp = TransformerConfig {
        mup_s: 0.0,
        ..cfg.clone()
    };
    let (g, _) = sp.rescaled("unembed", Kind::Matrix).unwrap();
    assert!((g - 128f64.powf(-0.5)).abs() < 1e-15);
    assert!(TransformerConfig::default()
        .rescaled("unembed", Kind::Matrix)
        .is_none());

    // One step of a small model in f64.
    let small = TransformerConfig {
        d_model: 16,
        heads: 2,
        rescale_optim: true,
        ..TransformerConfig::default()
    };
    let split = Split::new(7, grokscope::data::Operation::Add, 0.5, 1).unwrap();
    let mut h = hyper(0.0);
    h.adam.weight_decay = 2.0;
    let mut fleet = TFleet::<f64>::new(
        &small,
        Loss::CrossEntropy,
        &split,
        vec![(5, h, corrupted_labels(&split))],
    );
    let (_, grads) = fleet.gradients(0, None);
    let before = fleet.models[0].params.clone();
    fleet.step_on(None);
    let st = &fleet.models[0];
    let mut checked = 0;
    for (j, q) in fleet.specs.iter().enumerate() {
        let (f, decays) = small.rescaled(&q.name, q.kind).unwrap();
        let lr = 0.01 * f;
        let wd = if decays { 2.0 } else { 0.0 };
        for ((&p0, &p1), &g) in before[q.range()]
            .iter()
            .zip(&st.params[q.range()])
            .zip(&grads[j])
        {
            let want = -lr * wd * p0 - lr * g / (g.abs() + 1e-8);
            let got = p1 - p0;
            let ulp = 4.0 * f64::EPSILON * p0.abs().max(p1.abs());
            assert!(
                (got - want).abs() <= 1e-9 * lr + ulp,
                "{}: Δ {got} vs {want} (lr {lr}, wd {wd})",
                q.name
            );
            checked += 1;
        }
    }
    assert!(checked > 1000);
    // Biases have no group in the reference: refused.
    let mut bad = transformer_config();
    bad.model.transformer.rescale_optim = true;
    bad.model.transformer.mlp_bias = true;
    let err = bad.check().unwrap_err().to_string();
    assert!(err.contains("rescale_optim"), "{err}");
}
