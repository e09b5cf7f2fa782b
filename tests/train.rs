//! AdamW against a hand computation; end-to-end training; determinism; fleet independence.

use grokscope::config::{Axis, Config};
use grokscope::experiment::{train_config, Outcome};
use grokscope::metrics::{classify, Phase, Thresholds};
use grokscope::model::ipr::{mean_ipr, Ipr};
use grokscope::setup::{Prepare, Setup};
use grokscope::train::adamw::{AdamWHyper, AdamWState};
use grokscope::train::mlp::Fleet;

fn train(cfg: &Config) -> Outcome {
    train_config(&cfg.clone().check().unwrap(), &mut |_| Ok(())).unwrap()
}

fn setup(cfg: &Config) -> Setup {
    cfg.clone().check().unwrap().setup().unwrap()
}

fn mlp(s: &Setup) -> &Fleet {
    s.network.as_mlp().unwrap()
}

#[test]
fn adamw_one_step_by_hand() {
    let h = AdamWHyper {
        lr: 0.01,
        weight_decay: 5.0,
        beta1: 0.9,
        beta2: 0.98,
        eps: 1e-8,
        perp: Default::default(),
    };
    let mut st = AdamWState::new(3);
    let mut p = vec![1.0f32, -2.0, 0.5];
    let g = vec![0.3f32, -0.1, 0.0];
    st.step(&h, &mut p, &g);
    // Step 1: θ ← θ(1 − lr·wd) = 0.95 θ; m = 0.1 g, v = 0.02 g²; m̂ = g, v̂ = g²;
    // θ ← θ − lr · g / (|g| + eps).
    let expect = [
        0.95 * 1.0 - 0.01 * 0.3 / (0.3 + 1e-8),
        0.95 * -2.0 + 0.01 * 0.1 / (0.1 + 1e-8),
        0.95 * 0.5,
    ];
    for i in 0..3 {
        assert!(
            (p[i] as f64 - expect[i]).abs() < 1e-6,
            "{i}: {} vs {}",
            p[i],
            expect[i]
        );
    }
    // Step 2 with the same gradient: m = 0.19 g, m̂ = g; v = 0.0396 g², v̂ = g².
    let before = p.clone();
    st.step(&h, &mut p, &g);
    let m_hat = 0.19 * 0.3 / (1.0 - 0.81);
    let v_hat = 0.0396 * 0.09 / (1.0 - 0.9604);
    let e0 = 0.95 * before[0] as f64 - 0.01 * m_hat / (f64::sqrt(v_hat) + 1e-8);
    assert!((p[0] as f64 - e0).abs() < 1e-6, "{} vs {e0}", p[0]);
}

/// One MLP step with ⊥Grad equals AdamW, by hand, on the gradient with its component along
/// each weight tensor (U, V, W, γ, β) removed; ⊥Grad is a fleet axis: the fleet's second
/// model (`none`, the same init) takes the plain step.
#[test]
fn perp_grad_step_by_hand() {
    for batchnorm in [true, false] {
        perp_grad_step(batchnorm);
    }
}

fn perp_grad_step(batchnorm: bool) {
    use grokscope::model::PerpGrad;
    let mut cfg = small(11, vec![1.0], 1);
    cfg.model.mlp.width = 12;
    cfg.model.mlp.batchnorm = batchnorm;
    cfg.train.perp_grad = Axis::Many(vec![PerpGrad::Project, PerpGrad::None]);
    let mut s = setup(&cfg);
    assert_eq!(s.specs.len(), 2);
    assert_eq!(s.specs[0].perp_grad, PerpGrad::Project);
    let fleet = s.network.as_mlp_mut().unwrap();
    fleet.step_full();
    let batch = fleet.full_batch();
    let before: Vec<_> = fleet.models.clone();
    let mut grads = fleet.gradients(&batch);
    let arch = fleet.arch;
    let (_, g0) = grads.remove(0);
    let (_, g1) = grads.remove(0);
    let mut g = g0.clone();
    for r in arch.tensor_ranges() {
        let (w, gr) = (&before[0].params[r.clone()], &g0[r.clone()]);
        let (wg, ww): (f64, f64) = w.iter().zip(gr).fold((0.0, 0.0), |(a, b), (&x, &y)| {
            (a + x as f64 * y as f64, b + x as f64 * x as f64)
        });
        for (gi, &wi) in g[r].iter_mut().zip(w) {
            *gi = (*gi as f64 - wg / ww * wi as f64) as f32;
        }
    }
    let step = |m: usize, g: &[f32]| {
        let mut want = before[m].params.clone();
        before[m]
            .adam
            .clone()
            .step(&before[m].hyper.adam, &mut want, g);
        want
    };
    let (want, plain) = (step(0, &g), step(1, &g1));
    fleet.step_full();
    let worst = |got: &[f32], want: &[f32]| {
        got.iter()
            .zip(want)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max)
    };
    let got = &fleet.models[0].params;
    assert!(
        worst(got, &want) < 1e-6,
        "⊥Grad: largest difference {}",
        worst(got, &want)
    );
    let got1 = &fleet.models[1].params;
    assert!(
        worst(got1, &plain) < 1e-6,
        "plain: largest difference {}",
        worst(got1, &plain)
    );
    // And the projected step is not the plain one.
    assert!(worst(got, got1) > 1e-4);
}

fn small(p: usize, wd: Vec<f64>, epochs: u64) -> Config {
    let mut c = Config {
        name: "small".into(),
        ..Default::default()
    };
    c.data.p = p;
    c.model.mlp.width = 128;
    c.train.weight_decay = Axis::Many(wd);
    c.train.epochs = Some(epochs);
    c
}

#[test]
fn small_run_generalizes_without_corruption() {
    let cfg = small(23, vec![2.0], 400);
    let out = train(&cfg);
    let last = out.history[0].last().unwrap();
    assert_eq!(last.test_acc, 1.0, "test accuracy {}", last.test_acc);
    assert_eq!(last.train_acc, 1.0);
    assert_eq!(
        last.mem_acc, None,
        "no corrupted examples: A_mem is missing"
    );
    assert_eq!(last.phase(Thresholds::default()), Phase::Generalization);
    // Without weight decay the same network only memorizes (SCIENCE.md §6).
    let cfg0 = small(23, vec![0.0], 400);
    let out0 = train(&cfg0);
    let l0 = out0.history[0].last().unwrap();
    assert!(l0.test_acc < 0.5 && l0.train_acc == 1.0);
    assert_eq!(l0.phase(Thresholds::default()), Phase::Memorization);
}

#[test]
fn same_config_gives_identical_metrics() {
    let mut cfg = small(23, vec![0.0, 2.0], 60);
    cfg.data.corruption = Axis::One(0.2);
    cfg.model.dropout = Axis::One(0.1);
    cfg.model.mlp.batchnorm = true;
    cfg.train.batch_size = Some(64);
    let a = train(&cfg);
    let b = train(&cfg);
    assert_eq!(a.history, b.history);
    for (x, y) in mlp(&a.setup).models.iter().zip(&mlp(&b.setup).models) {
        assert_eq!(x.params, y.params);
    }
    cfg.model.init_seed = Axis::One(1);
    let c = train(&cfg);
    assert_ne!(a.history, c.history);
}

#[test]
fn a_model_trains_the_same_alone_or_in_a_fleet() {
    let mut cfg = small(23, vec![2.0], 30);
    cfg.data.corruption = Axis::One(0.2);
    let alone = train(&cfg);
    cfg.train.weight_decay = Axis::Many(vec![0.0, 2.0, 7.0]);
    let fleet = train(&cfg);
    assert_eq!(
        mlp(&alone.setup).models[0].params,
        mlp(&fleet.setup).models[1].params
    );
    assert_eq!(alone.history[0], fleet.history[1]);
}

#[test]
fn batchnorm_running_stats_follow_pytorch() {
    let mut cfg = small(11, vec![0.0], 1);
    cfg.model.mlp.batchnorm = true;
    let mut s = setup(&cfg);
    s.network.as_mlp_mut().unwrap().step_full();
    // After one step from (0, 1): mean = 0.1·μ_batch, var = 0.9 + 0.1·var_unbiased, where the
    // batch statistics are those of z = φ(h) at the initial parameters.
    let s0 = setup(&cfg);
    let arch = mlp(&s0).arch;
    let params = &mlp(&s0).models[0].params;
    let n = arch.width;
    let k = 3;
    let zs: Vec<f64> = s0
        .split
        .table()
        .unwrap()
        .train_pairs
        .iter()
        .map(|&(a, b)| {
            let h = params[a as usize * n + k] + params[arch.v_range().start + b as usize * n + k];
            (h * h) as f64
        })
        .collect();
    let mu = zs.iter().sum::<f64>() / zs.len() as f64;
    let var = zs.iter().map(|z| (z - mu).powi(2)).sum::<f64>() / (zs.len() - 1) as f64;
    let rs = mlp(&s).models[0].running.as_ref().unwrap();
    assert!((rs.mean[k] as f64 - 0.1 * mu).abs() < 1e-6);
    assert!((rs.var[k] as f64 - (0.9 + 0.1 * var)).abs() < 1e-6);
}

#[test]
fn ipr_of_cosine_one_hot_and_zero() {
    let p = 31;
    let mut ipr = Ipr::new(p);
    let cosine: Vec<f32> = (0..p)
        .map(|n| (2.0 * std::f32::consts::PI * 5.0 * n as f32 / p as f32 + 0.3).cos())
        .collect();
    let s = ipr.of(&cosine).unwrap();
    assert!((s.ipr - 1.0).abs() < 1e-9);
    assert_eq!(s.dominant, 5);
    let mut one_hot = vec![0.0f32; p];
    one_hot[4] = 3.0;
    let s = ipr.of(&one_hot).unwrap();
    assert!((s.ipr - 1.0 / (p / 2 + 1) as f64).abs() < 1e-12);
    assert!(ipr.of(&vec![0.0; p]).is_none());
    // Tiny (subnormal-range) weights keep their IPR: computed after rescaling, in f64.
    let tiny: Vec<f32> = cosine.iter().map(|x| x * 1e-30).collect();
    assert!((ipr.of(&tiny).unwrap().ipr - 1.0).abs() < 1e-6);
    let (mean, dead) = mean_ipr(&[Some(0.5), None, Some(1.0)]);
    assert_eq!((mean, dead), (Some(0.75), 1));
}

#[test]
fn phases_follow_the_table() {
    let t = Thresholds::default();
    assert_eq!((t.hi, t.full), (0.9, 0.95));
    let c = |test, m, i, k| classify(test, Some(m), Some(i), Some(k), t);
    assert_eq!(c(1.0, 0.95, 0.05, 1.0), Phase::Coexistence);
    assert_eq!(c(1.0, 0.4, 0.6, 1.0), Phase::PartialInversion);
    assert_eq!(c(1.0, 0.0, 1.0, 1.0), Phase::FullInversion);
    // Between hi and full: a partial inversion.
    assert_eq!(c(1.0, 0.05, 0.93, 1.0), Phase::PartialInversion);
    assert_eq!(c(1.0, 0.05, 0.95, 1.0), Phase::FullInversion);
    assert_eq!(c(0.1, 1.0, 0.0, 1.0), Phase::Memorization);
    assert_eq!(c(0.1, 0.0, 0.0, 0.05), Phase::Forgetting);
    assert_eq!(c(0.1, 0.5, 0.0, 0.95), Phase::Confusion);
    assert_eq!(
        classify(0.95, None, None, Some(1.0), t),
        Phase::Generalization
    );
    assert_eq!(classify(0.5, None, None, Some(1.0), t), Phase::Memorization);
    assert_eq!(classify(0.5, None, None, Some(0.5), t), Phase::Forgetting);
    // With full = hi, the single-threshold table.
    let one = Thresholds { hi: 0.9, full: 0.9 };
    assert_eq!(
        classify(1.0, Some(0.05), Some(0.93), Some(1.0), one),
        Phase::FullInversion
    );
}

/// The six networks of the reference notebook (`Grokking_with_label_corruption.ipynb`), with
/// the labels its section headings give them. `A_inv` of the BatchNorm (0.989), weight decay
/// 15 (1.0) and minibatch (0.917, `A_mem` 0.092) networks are SCIENCE.md §5's; the notebook prints
/// train and test accuracy only, so the other `A_mem`/`A_inv` are those its printed
/// accuracies imply (all clean examples right; 17 of 1646 and 12 of 1223 picked examples
/// keep their true label under the reference's draw).
#[test]
fn the_reference_notebooks_six_networks_get_its_labels() {
    let t = Thresholds::default();
    let cases = [
        // (heading, test, A_mem, A_inv, A_clean, label)
        (
            "Coexistence, wd 0",
            0.983,
            0.938,
            0.072,
            1.0,
            Phase::Coexistence,
        ),
        (
            "Partial Inversion, wd 5",
            1.0,
            0.387,
            0.623,
            1.0,
            Phase::PartialInversion,
        ),
        (
            "Full Inversion, wd 15",
            1.0,
            0.0103,
            1.0,
            1.0,
            Phase::FullInversion,
        ),
        (
            "Forgetting, wd 20",
            0.0108,
            0.0,
            0.0,
            0.0092,
            Phase::Forgetting,
        ),
        (
            "BatchNorm (Full Inversion)",
            1.0,
            0.021,
            0.989,
            1.0,
            Phase::FullInversion,
        ),
        (
            "Minibatch (Partial Inversion)",
            1.0,
            0.092,
            0.917,
            1.0,
            Phase::PartialInversion,
        ),
    ];
    for (name, test, mem, inv, clean, label) in cases {
        assert_eq!(
            classify(test, Some(mem), Some(inv), Some(clean), t),
            label,
            "{name}"
        );
    }
    // With the single threshold 0.9 the minibatch network would be a Full Inversion.
    let single = Thresholds { hi: 0.9, full: 0.9 };
    assert_eq!(
        classify(1.0, Some(0.092), Some(0.917), Some(1.0), single),
        Phase::FullInversion
    );
}

/// A learning rate of 10⁶ blows the weights up to NaN or infinity: Diverged, not Forgetting.
#[test]
fn a_huge_learning_rate_diverges() {
    let mut cfg = small(11, vec![0.0], 50);
    cfg.model.mlp.width = 32;
    cfg.data.corruption = Axis::One(0.2);
    cfg.train.lr = Axis::One(1e6);
    let out = train(&cfg);
    let last = out.history[0].last().unwrap();
    assert!(!last.is_finite(), "{last:?}");
    assert_eq!(last.phase(Thresholds::default()), Phase::Diverged);
    // The same accuracies with finite losses would read as Forgetting.
    assert_eq!(
        classify(
            last.test_acc,
            last.mem_acc,
            last.inv_acc,
            last.clean_acc,
            Thresholds::default()
        ),
        Phase::Forgetting
    );
}

/// `dataset.safetensors` holds what any language needs to recompute the accuracies: the
/// pairs with their true labels, the split, and per model its training labels and corrupted
/// set — the same as the training used.
#[test]
fn the_dataset_is_exported_with_the_run() {
    use grokscope::experiment::{train_into, Begin};
    use grokscope::rundir::RunDir;
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = small(13, vec![0.0, 1.0], 5);
    cfg.data.corruption = Axis::Many(vec![0.2, 0.4]);
    let cfg = cfg.check().unwrap();
    let dir = tmp.path().join("run");
    let run = RunDir::create(&dir).unwrap();
    run.write_config(&cfg).unwrap();
    let s = cfg.setup().unwrap();
    let (split, labels) = (s.split.table().unwrap().clone(), s.labels.clone());
    train_into(&cfg, s, &run, Begin::Fresh, Default::default(), &mut |_| {
        Ok(())
    })
    .unwrap();
    let bytes = std::fs::read(dir.join("dataset.safetensors")).unwrap();
    // The same config gives the same file to the byte (metadata order included).
    for k in 0..3 {
        let again = tmp.path().join(format!("again{k}"));
        let run = RunDir::create(&again).unwrap();
        run.write_config(&cfg).unwrap();
        let s = cfg.setup().unwrap();
        run.write_dataset(&cfg, &s.split, &s.labels, false).unwrap();
        assert_eq!(
            std::fs::read(again.join("dataset.safetensors")).unwrap(),
            bytes
        );
    }
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let u32s = |name: &str| -> (Vec<usize>, Vec<u32>) {
        let t = st.tensor(name).unwrap();
        assert_eq!(t.dtype(), safetensors::Dtype::U32, "{name}");
        let v = t
            .data()
            .chunks(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        (t.shape().to_vec(), v)
    };
    let u8s = |name: &str| -> (Vec<usize>, Vec<u8>) {
        let t = st.tensor(name).unwrap();
        assert_eq!(t.dtype(), safetensors::Dtype::U8, "{name}");
        (t.shape().to_vec(), t.data().to_vec())
    };
    let n_train = split.train_pairs.len();
    let n = n_train + split.test_pairs.len();
    let (shape, pairs) = u32s("pairs");
    assert_eq!(shape, vec![n, 2]);
    assert_eq!((pairs[0], pairs[1]), split.train_pairs[0]);
    let (_, truth) = u32s("labels");
    for (i, l) in truth.iter().enumerate() {
        let (a, b) = (pairs[2 * i], pairs[2 * i + 1]);
        assert_eq!(*l, (a + b) % 13, "pair {i}: true label of {a} + {b}");
    }
    let (_, train) = u8s("train");
    assert_eq!(train.iter().filter(|&&t| t == 1).count(), n_train);
    assert!(train[..n_train].iter().all(|&t| t == 1));
    let (shape, trained) = u32s("train_labels");
    assert_eq!(shape, vec![4, n_train], "2 corruptions × 2 weight decays");
    let (_, corrupted) = u8s("corrupted");
    for m in 0..4 {
        assert_eq!(
            trained[m * n_train..(m + 1) * n_train],
            labels[m].labels[..]
        );
        let row = &corrupted[m * n_train..(m + 1) * n_train];
        assert_eq!(
            row.iter().filter(|&&c| c == 1).count(),
            labels[m].n_corrupted()
        );
        // Outside C, a model trains on the true labels.
        for i in 0..n_train {
            if row[i] == 0 {
                assert_eq!(trained[m * n_train + i], truth[i]);
            }
        }
    }
}
