//! Report figures drawn from a run's weights, the same for both networks: Fourier spectra of
//! every neuron's weight vectors (and of the Transformer's token embedding), the neuron with
//! the highest IPR before and after training, BatchNorm scales against IPR (with BatchNorm),
//! and pruning curves.

use super::figure::{bin_rows, line, model_label, save_figure, FigureFile, Panel, PANEL};
use super::plot::*;
use crate::analysis::neurons::{analyze_neurons, NeuronRow};
use crate::analysis::prune::{Order, PrunePoint};
use crate::config::ModelSpec;
use crate::error::Result;
use crate::model::ipr::Ipr;
use crate::rundir::RunDir;
use std::path::Path;

/// What every weight figure needs to know about the run and the report.
pub struct Ctx<'a> {
    pub run: &'a RunDir,
    pub out: &'a Path,
    pub name: &'a str,
    pub specs: &'a [ModelSpec],
    pub shown: &'a [usize],
    pub cols: usize,
}

/// Evaluations from scratch a pruning curve of the report may cost (every 5 %).
const PRUNE_LEVELS: usize = 21;

fn heat(title: String, y_desc: &'static str, p: usize, rows: Vec<Vec<f64>>) -> Panel<'static> {
    let (values, y_labels) = bin_rows(&rows, 128);
    Panel::Heat(Heatmap {
        title,
        x_desc: "frequency",
        y_desc,
        x_labels: (0..=p / 2).map(|f| f.to_string()).collect(),
        y_labels,
        values,
        annotate: false,
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
pub fn figures(c: &Ctx, figs: &mut Vec<FigureFile>) -> Result<()> {
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
        let mut panels = Vec::new();
        if let Some(cols) = net.embedding_columns(i) {
            panels.push(heat(
                format!("{name}: token embedding, model {i}"),
                "columns (by dominant frequency)",
                p,
                sorted_spectra(&mut ipr, &cols),
            ));
        }
        for (j, v) in names.iter().enumerate() {
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
        let embedding = if panels.len() > names.len() {
            "the token embedding's columns and "
        } else {
            ""
        };
        figs.push(save_figure(
            out,
            &format!("fourier_model{i}"),
            &format!("Fourier spectra, {}", model_label(specs, i)),
            &format!("Magnitude of the real DFT over the p tokens (scaled to largest entry 1) of {embedding}{}; neurons sorted by their dominant frequency (groups averaged when there are more than 128). A generalizing network has one bright frequency per row.", net.vector_description()),
            &panels,
            3,
            (420, 420),
        )?);

        // The neuron with the highest final IPR, before and after training.
        let k = (0..rows.len())
            .max_by(|&a, &b| {
                rows[a]
                    .ipr
                    .unwrap_or(-1.0)
                    .total_cmp(&rows[b].ipr.unwrap_or(-1.0))
                    .then(b.cmp(&a))
            })
            .unwrap_or(0);
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
        let (Some(bv), Some(av)) = (before_view.get(k), after_view.get(k)) else {
            continue;
        };
        let (before, after) = (first(&bv.vectors), first(&av.vectors));
        let ipr_of = |v: &[Vec<f32>], ipr: &mut Ipr| {
            v.first()
                .and_then(|x| ipr.of(x))
                .map(|s| s.ipr)
                .unwrap_or(0.0)
        };
        let (ib, ia) = (ipr_of(&bv.vectors, &mut ipr), ipr_of(&av.vectors, &mut ipr));
        let y_desc = format!("{}[k, n]", names[0]);
        let panels = vec![
            Panel::Line(LineChart {
                title: format!("{name}: neuron {k} before training (IPR {ib:.2})"),
                x_desc: "input token n",
                y_desc: &y_desc,
                lines: vec![line(&format!("{} at init", names[0]), 6, false, before)],
                log_y: false,
                y_range: None,
                marks: vec![],
            }),
            Panel::Line(LineChart {
                title: format!("{name}: neuron {k} after training (IPR {ia:.2})"),
                x_desc: "input token n",
                y_desc: &y_desc,
                lines: vec![line(&format!("{} trained", names[0]), 0, false, after)],
                log_y: false,
                y_range: None,
                marks: vec![],
            }),
        ];
        figs.push(save_figure(
            out,
            &format!("neuron_model{i}"),
            &format!("One neuron before and after training, {}", model_label(specs, i)),
            &format!("The first weight vector ({}) over the input tokens n of the neuron with the highest final IPR: random at initialisation, periodic after training (as in the paper's first figure).", names[0]),
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
                "Per neuron: |γ_k| of the BatchNorm after the activation against the neuron's IPR. Memorizing (low-IPR) neurons get small scales.",
                &[Panel::Scatter(Scatter {
                    title: format!("{name}: |γ| vs IPR, model {i}"),
                    x_desc: "neuron IPR",
                    y_desc: "|γ_k|",
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
            (Order::Ascending, false, "asc"),
            (Order::Descending, true, "desc"),
        ] {
            let ord = s.network.prune_order(i, order, 0);
            let sw = s
                .network
                .prune_sweep(i, &s.split, &s.labels[i], &ord, &at)?;
            lines.extend(prune_lines(&sw, n, tag, dashed));
        }
        panels.push(Panel::Line(LineChart {
            title: format!("{name}: pruning {noun} by IPR, model {i}"),
            x_desc: "fraction pruned",
            y_desc: "accuracy (fraction)",
            lines,
            log_y: false,
            y_range: Some((0.0, 1.02)),
            marks: vec![],
        }));
    }
    figs.push(save_figure(
        out,
        "pruning",
        "Pruning by IPR",
        &format!("Accuracies after removing {noun} in order of ascending IPR (solid: memorizing neurons first) and descending IPR (dashed: periodic neurons first)."),
        &panels,
        c.cols,
        PANEL,
    )?);
    Ok(())
}

/// Accuracy lines of one pruning sweep (x = fraction of `width` pruned).
fn prune_lines(sw: &[PrunePoint], width: usize, tag: &str, dashed: bool) -> Vec<Line> {
    let frac = |m: usize| m as f64 / width.max(1) as f64;
    vec![
        line(
            &format!("test ({tag})"),
            1,
            dashed,
            sw.iter()
                .map(|p| (frac(p.pruned), p.acc.test_acc))
                .collect(),
        ),
        line(
            &format!("A_mem ({tag})"),
            2,
            dashed,
            sw.iter()
                .filter_map(|p| Some((frac(p.pruned), p.acc.mem_acc?)))
                .collect(),
        ),
        line(
            &format!("A_clean ({tag})"),
            4,
            dashed,
            sw.iter()
                .filter_map(|p| Some((frac(p.pruned), p.acc.clean_acc?)))
                .collect(),
        ),
    ]
}
