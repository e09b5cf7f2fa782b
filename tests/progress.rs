//! Progress measures (SCIENCE.md §10): on Gromov's analytic network the key-frequency part of
//! the outputs is all of it; the probed evaluation is the plain one; which runs and steps
//! carry the measures.

use grokscope::config::{Axis, Config, Init};
use grokscope::data::Operation;
use grokscope::experiment::train_config;
use grokscope::metrics::Record;
use grokscope::model::ModelKind;
use grokscope::setup::Prepare;
use grokscope::train::{Engine, EvalProbe};

fn history(cfg: Config) -> Vec<Vec<Record>> {
    let cfg = cfg.check().unwrap();
    train_config(&cfg, &mut |_| Ok(())).unwrap().history
}

/// The analytic network is built from the key directions alone: every frequency is key, the
/// restricted loss is the full loss, and the excluded outputs carry nothing (their
/// cross-entropy is that of uniform outputs, ln p; their MSE that of zero outputs, 1/p).
#[test]
fn on_the_analytic_network_the_restricted_loss_is_the_full_loss() {
    let (p, n) = (31usize, 120usize);
    let mut cfg = Config::default();
    cfg.data.p = p;
    cfg.data.corruption = Axis::One(0.2);
    cfg.model.mlp.width = n;
    cfg.model.mlp.init = Init::Analytic;
    cfg.train.steps = Some(1);
    cfg.train.weight_decay = Axis::One(0.0);
    let r = &history(cfg)[0][0];
    assert_eq!(r.step, 0);
    assert_eq!(r.key_freqs, (1..=15).collect::<Vec<u32>>());
    let (full, restricted, excluded) = (
        r.full_ce.unwrap(),
        r.restricted_ce.unwrap(),
        r.excluded_ce.unwrap(),
    );
    assert!(
        (restricted - full).abs() < 1e-6 * full,
        "restricted {restricted}, full {full}"
    );
    assert!(
        (excluded - (p as f64).ln()).abs() < 1e-4,
        "excluded {excluded} against ln p"
    );
    assert!(excluded > full + 0.5, "the excluded loss is high");
    let (fm, rm, em) = (
        r.full_mse.unwrap(),
        r.restricted_mse.unwrap(),
        r.excluded_mse.unwrap(),
    );
    assert!((rm - fm).abs() < 1e-6 * fm.max(1e-6), "{rm} vs {fm}");
    assert!((em - 1.0 / p as f64).abs() < 1e-4, "excluded MSE {em}");
    // The corrupted examples: the circuit predicts their true labels, so the loss on their
    // (wrong) training labels is high, in the full and the restricted outputs alike.
    let (rc, rk) = (
        r.restricted_ce_corrupt.unwrap(),
        r.restricted_ce_clean.unwrap(),
    );
    assert!(rc > rk + 0.5, "corrupt {rc}, clean {rk}");
    // Every neuron has the same spectrum shape: the embedding's Fourier norms are spread evenly
    // over the 2·15 non-constant components, so their Gini coefficient is small.
    let g = r.gini_embed.unwrap();
    assert!(g > 0.0 && g < 0.1, "gini {g}");
    assert!(r.weight_sq.unwrap() > 0.0);
}

/// Records whether a probe saw every row of every model exactly once, in row order.
struct Rows {
    next: Vec<usize>,
    ok: bool,
}

impl EvalProbe for Rows {
    fn block(&mut self, m: usize, row0: usize, logits: &[f32], hidden: &[f32], width: usize) {
        let rows = logits.len() / 13;
        self.ok &= row0 == self.next[m] && hidden.len() == rows * width && width > 0;
        self.next[m] += rows;
    }
}

/// Probing an evaluation changes none of its numbers, for both kinds that take the measures.
#[test]
fn the_probed_evaluation_is_the_plain_one() {
    for kind in [ModelKind::Mlp, ModelKind::Transformer] {
        let mut cfg = Config::default();
        cfg.data.p = 13;
        cfg.model.kind = kind;
        cfg.model.mlp.width = 24;
        cfg.model.transformer.d_model = 16;
        cfg.model.transformer.heads = 2;
        cfg.train.weight_decay = Axis::Many(vec![0.0, 1.0]);
        cfg.train.steps = Some(1);
        let mut s = cfg.check().unwrap().setup().unwrap();
        s.network.step_all().unwrap();
        let plain = s.network.eval_all().unwrap();
        let mut probe = Rows {
            next: vec![0; 2],
            ok: true,
        };
        let probed = s.network.eval_all_probed(&mut probe).unwrap();
        assert!(probe.ok, "{kind:?}: blocks in row order");
        assert_eq!(probe.next, vec![169, 169], "{kind:?}: every row seen");
        for (a, b) in plain.iter().zip(&probed) {
            assert_eq!(a.preds, b.preds, "{kind:?}");
            assert_eq!(a.row_loss, b.row_loss, "{kind:?}");
        }
    }
}

/// Which evaluations carry the measures: every `eval.progress_every`-th and the last; none
/// with 0; Gini coefficients but no losses for an operation without Fourier directions.
#[test]
fn the_measures_are_taken_where_configured() {
    let base = || {
        let mut cfg = Config::default();
        cfg.data.p = 11;
        cfg.model.mlp.width = 16;
        cfg.train.steps = Some(35);
        cfg.eval.every = 5;
        cfg
    };
    let mut cfg = base();
    cfg.eval.progress_every = 3;
    let h = history(cfg);
    let taken: Vec<u64> = h[0]
        .iter()
        .filter(|r| r.restricted_ce.is_some())
        .map(|r| r.step)
        .collect();
    assert_eq!(taken, vec![0, 15, 30, 35]);
    assert!(h[0].iter().all(|r| r.weight_sq.is_some()));
    assert!(h[0]
        .iter()
        .all(|r| r.restricted_ce.is_some() == r.gini_embed.is_some()));

    let mut cfg = base();
    cfg.eval.progress_every = 0;
    let h = history(cfg);
    assert!(h[0]
        .iter()
        .all(|r| r.restricted_ce.is_none() && r.gini_embed.is_none()));

    let mut cfg = base();
    cfg.data.operation = Operation::Mul;
    let last = history(cfg)[0].pop().unwrap();
    assert!(last.gini_embed.is_some() && last.gini_unembed.is_some());
    assert!(last.restricted_ce.is_none() && last.key_freqs.is_empty());

    // Cross-entropy networks have no MSE columns.
    let mut cfg = base();
    cfg.train.loss = grokscope::config::Loss::CrossEntropy;
    let last = history(cfg)[0].pop().unwrap();
    assert!(last.restricted_ce.is_some() && last.restricted_mse.is_none());
}
