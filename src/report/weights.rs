//! Report figures drawn from a run's weights, the same for both networks: Fourier spectra of
//! every neuron's weight vectors (and of the Transformer's token embedding), the neuron with
//! the highest IPR before and after training, BatchNorm scales against IPR (with BatchNorm),
//! and pruning curves.

use super::figure::{bin_rows, line, model_label, save_figure, FigureFile, Panel, PANEL};
use super::grid::Heatmap;
use super::plot::*;
use crate::analysis::neurons::{analyze_neurons, NeuronRow};
use crate::analysis::prune::{Order, PrunePoint};
use crate::config::ModelSpec;
use crate::error::Result;
use crate::metrics::Phase;
use crate::model::ipr::Ipr;
use crate::rundir::RunDir;
use crate::setup::Prepare;
use crate::train::Engine;
use std::path::Path;

/// What every weight figure needs to know about the run and the report.
pub struct Ctx<'a> {
    pub run: &'a RunDir,
    /// Each model's final phase.
    pub phases: &'a [Phase],
    pub out: &'a Path,
    pub name: &'a str,
    pub specs: &'a [ModelSpec],
    pub shown: &'a [usize],
    pub cols: usize,
}

/// Evaluations from scratch a pruning curve of the report may cost (every 5 %).
const PRUNE_LEVELS: usize = 21;

fn heat(title: String, y_desc: &'static str, p: usize, rows: Vec<Vec<f64>>) -> Panel<'static> {
    // Each row scaled to its largest magnitude 1: the colour shows which frequencies a
    // vector is made of, whatever its norm.
    let rows: Vec<Vec<f64>> = rows
        .into_iter()
        .map(|r| {
            let m = r
                .iter()
                .copied()
                .filter(|v| v.is_finite())
                .fold(0.0, f64::max);
            if m > 0.0 {
                r.iter().map(|v| v / m).collect()
            } else {
                r
            }
        })
        .collect();
    let (values, y_labels) = bin_rows(&rows, 128);
    Panel::Heat(Heatmap {
        title,
        x_desc: "frequency",
        y_desc,
        x_labels: (0..=p / 2).map(|f| f.to_string()).collect(),
        y_labels,
        values,
        annotate: false,
        bar: "|coefficient| / row's largest".into(),
    })
}

/// Spectra of p-vectors sorted by dominant frequency; all-zero vectors are left out.
fn sorted_spectra(ipr: &mut Ipr, vectors: &[Vec<f32>]) -> Vec<Vec<f64>> {
    let mut rows: Vec<(usize, Vec<f64>)> = vectors
        .iter()
        .filter_map(|v| {
            let s = ipr.of(v)?;
            Some((s.dominant, ipr.spectrum(v, 0, 1)?))
        })
        .collect();
    rows.sort_by_key(|r| r.0);
    rows.into_iter().map(|r| r.1).collect()
}

/// The living neurons, sorted by dominant frequency (then index).
fn by_frequency(rows: &[NeuronRow]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..rows.len()).filter(|&k| rows[k].ipr.is_some()).collect();
    order.sort_by_key(|&k| (rows[k].dominant_freq, k));
    order
}

/// Every figure drawn from the run's weights.
/// Every figure drawn from the run's weights; returns notes for the page (what could not be
/// drawn and why).
pub fn figures(c: &Ctx, figs: &mut Vec<FigureFile>) -> Result<Vec<String>> {
    let mut notes = Vec::new();
    let (out, name, specs) = (c.out, c.name, c.specs);
    let mut run = c.run.load()?;
    let init = run.cfg.setup()?;
    let net = &run.setup.network;
    let p = net.p();
    let names = net.vector_names();
    let mut ipr = Ipr::new(p);
    for &i in c.shown {
        // Fourier spectra: the embedding's columns (Transformer), then each neuron vector.
        let (rows, spectra) = analyze_neurons(net, i);
        let order = by_frequency(&rows);
        if order.is_empty() {
            notes.push(format!(
                "Model {i} has no living neuron at the end (every weight vector is zero or not finite): it has no Fourier spectra, no neuron figure and an empty final IPR histogram."
            ));
        }
        let mut panels = Vec::new();
        if let Some(cols) = net.embedding_columns(i) {
            panels.push(heat(
                format!("{name}: token embedding, model {i}"),
                "columns (by dominant frequency)",
                p,
                sorted_spectra(&mut ipr, &cols),
            ));
        }
        for (j, v) in names.iter().enumerate().filter(|_| !order.is_empty()) {
            let all: Vec<Vec<f64>> = order
                .iter()
                .map(|&k| {
                    spectra[k][j]
                        .clone()
                        .unwrap_or_else(|| vec![0.0; p / 2 + 1])
                })
                .collect();
            panels.push(heat(
                format!("{name}: |û| of {v}, model {i}"),
                "neurons (by dominant frequency)",
                p,
                all,
            ));
        }
        let embedding = if net.embedding_columns(i).is_some() {
            "the token embedding's columns and "
        } else {
            ""
        };
        if !panels.is_empty() {
            figs.push(save_figure(
            out,
            &format!("fourier_model{i}"),
            &format!("Fourier spectra, {}", model_label(specs, i)),
            &format!("Magnitude of the real DFT over the p tokens of {embedding}{}, each row divided by its largest magnitude (so 1 marks a row's dominant frequency); neurons sorted by their dominant frequency (groups averaged when there are more than 128). A generalizing network has one bright frequency per row; a memorizing neuron spreads over many.", net.vector_description()),
            &panels,
            3,
            (420, 420),
        )?);
        }

        // The neurons with the highest and the lowest final IPR, before and after training.
        let living: Vec<usize> = (0..rows.len()).filter(|&k| rows[k].ipr.is_some()).collect();
        let by_ipr = |a: &usize, b: &usize| {
            rows[*a]
                .ipr
                .unwrap_or(0.0)
                .total_cmp(&rows[*b].ipr.unwrap_or(0.0))
                .then(b.cmp(a))
        };
        let (Some(&k_hi), Some(&k_lo)) = (
            living.iter().max_by(|a, b| by_ipr(a, b)),
            living.iter().min_by(|a, b| by_ipr(a, b)),
        ) else {
            continue;
        };
        let first = |v: &[Vec<f32>]| -> Vec<(f64, f64)> {
            v.first()
                .map(|x| {
                    x.iter()
                        .enumerate()
                        .map(|(t, &y)| (t as f64, y as f64))
                        .collect()
                })
                .unwrap_or_default()
        };
        let before_view = init.network.neurons(i);
        let after_view = net.neurons(i);
        let ipr_of = |v: &[Vec<f32>], ipr: &mut Ipr| {
            v.first()
                .and_then(|x| ipr.of(x))
                .map(|s| s.ipr)
                .unwrap_or(0.0)
        };
        let y_desc = format!("{}[k, n]", names[0]);
        let mut panels = Vec::new();
        for (k, which) in [(k_hi, "highest"), (k_lo, "lowest")] {
            let (Some(bv), Some(av)) = (before_view.get(k), after_view.get(k)) else {
                continue;
            };
            let (ib, ia) = (ipr_of(&bv.vectors, &mut ipr), ipr_of(&av.vectors, &mut ipr));
            panels.push(Panel::Line(LineChart {
                title: format!("{which} IPR: neuron {k} at init (IPR {ib:.2})"),
                x_desc: "input token n",
                y_desc: &y_desc,
                lines: vec![line("at init", 6, Dash::Solid, first(&bv.vectors))],
                log_x: false,
                log_y: false,
                y_range: None,
                marks: vec![],
            }));
            panels.push(Panel::Line(LineChart {
                title: format!("{which} IPR: neuron {k} trained (IPR {ia:.2})"),
                x_desc: "input token n",
                y_desc: &y_desc,
                lines: vec![line("trained", 0, Dash::Solid, first(&av.vectors))],
                log_x: false,
                log_y: false,
                y_range: None,
                marks: vec![],
            }));
        }
        let phase = c.phases.get(i).copied().unwrap_or(Phase::Confusion);
        figs.push(save_figure(
            out,
            &format!("neuron_model{i}"),
            &format!("A high-IPR and a low-IPR neuron, {}", model_label(specs, i)),
            &format!(
                "{name}: the first weight vector ({y_desc}) over the input tokens n of the neuron with the highest final IPR (top) and of the one with the lowest (bottom), at initialisation (left) and after training (right). This model ended in phase {}: {}",
                phase.name(),
                neuron_story(phase)
            ),
            &panels,
            2,
            PANEL,
        )?);

        // BatchNorm: |γ| against IPR.
        let points: Vec<(f64, f64)> = rows
            .iter()
            .filter_map(|r| Some((r.ipr?, r.bn_gamma?.abs())))
            .collect();
        if !points.is_empty() {
            figs.push(save_figure(
                out,
                &format!("batchnorm_model{i}"),
                &format!("BatchNorm scale against IPR, {}", model_label(specs, i)),
                "Per neuron: the |γ| of the BatchNorm after the activation against the neuron's IPR. Memorizing (low-IPR) neurons get small scales.",
                &[Panel::Scatter(Scatter {
                    title: format!("|γ| against IPR, model {i}"),
                    x_desc: "neuron IPR",
                    y_desc: "|γ| (BatchNorm scale)",
                    label: "neuron".into(),
                    points,
                })],
                1,
                PANEL,
            )?);
        }
    }

    // Pruning curves.
    let noun = run.cfg.architecture().neuron_noun();
    let s = &mut run.setup;
    let n = s.network.n_neurons();
    let at = s.network.prune_levels(PRUNE_LEVELS);
    let mut panels = Vec::new();
    for &i in c.shown {
        let mut lines = Vec::new();
        for (order, dashed, tag) in [
            (Order::Ascending, Dash::Solid, "low IPR first"),
            (Order::Descending, Dash::Dashed, "high IPR first"),
        ] {
            let ord = s.network.prune_order(i, order, 0);
            let sw = s
                .network
                .prune_sweep(i, &s.split, &s.labels[i], &ord, &at)?;
            lines.extend(prune_lines(&sw, n, tag, dashed));
        }
        panels.push(Panel::Line(LineChart {
            title: format!("pruning {noun} by IPR, model {i}"),
            x_desc: "fraction pruned",
            y_desc: "accuracy",
            lines,
            log_x: false,
            log_y: false,
            y_range: Some((-0.02, 1.02)),
            marks: vec![],
        }));
    }
    figs.push(save_figure(
        out,
        "pruning",
        "Pruning by IPR",
        &format!("{name}: test accuracy, A_mem and A_clean after removing a fraction of the {noun} in order of ascending IPR (solid: non-periodic, memorizing neurons first) and of descending IPR (dashed: periodic neurons first)."),
        &panels,
        c.cols,
        PANEL,
    )?);
    Ok(notes)
}

/// Accuracy lines of one pruning sweep (x = fraction of `width` pruned).
fn prune_lines(sw: &[PrunePoint], width: usize, tag: &str, dashed: Dash) -> Vec<Line> {
    let frac = |m: usize| m as f64 / width.max(1) as f64;
    vec![
        line(
            &format!("test, {tag}"),
            TEST,
            dashed,
            sw.iter()
                .map(|p| (frac(p.pruned), p.acc.test_acc))
                .collect(),
        ),
        line(
            &format!("A_mem, {tag}"),
            MEM,
            dashed,
            sw.iter()
                .filter_map(|p| Some((frac(p.pruned), p.acc.mem_acc?)))
                .collect(),
        ),
        line(
            &format!("A_clean, {tag}"),
            CLEAN,
            dashed,
            sw.iter()
                .filter_map(|p| Some((frac(p.pruned), p.acc.clean_acc?)))
                .collect(),
        ),
    ]
}

/// What the high- and low-IPR neurons of a model in `phase` show (the paper's reading).
fn neuron_story(phase: Phase) -> &'static str {
    match phase {
        Phase::Coexistence => "the network generalizes and memorizes the corrupted labels at once; the periodic (high-IPR) neurons carry the modular-arithmetic rule and the non-periodic (low-IPR) ones the memorized labels — pruning them recovers the true labels.",
        Phase::PartialInversion => "the network recovers the true labels of part of the corrupted examples; most neurons are periodic, and the few non-periodic ones keep part of the memorized labels.",
        Phase::FullInversion => "regularization has removed the memorizing neurons; the network ignores the corrupted labels, and even the lowest-IPR neuron is mostly weak or periodic.",
        Phase::Memorization => "the network memorized the training set without generalizing; its neurons are not periodic — even the highest-IPR one spreads over many frequencies.",
        Phase::Forgetting => "strong regularization collapsed the network to small outputs; its weights carry little structure, periodic or not.",
        Phase::Confusion => "the network neither generalizes nor memorizes; no clean periodic structure is expected.",
        Phase::Generalization => "the network generalizes without corrupted labels to memorize; its neurons become periodic.",
        Phase::Diverged => "training diverged; its weights are not finite and the curves are not meaningful.",
    }
}
