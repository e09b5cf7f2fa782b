//! Report figures drawn from a run's weights: Fourier spectra, one neuron before and after,
//! BatchNorm scales and pruning curves for the MLP; spectra of the embedding and of the MLP
//! neurons seen from the tokens, and pruning curves, for the Transformer.

use super::plot::*;
use super::{bin_rows, line, model_label, save_figure, FigureFile, Panel, PANEL};
use crate::analysis::ipr::Ipr;
use crate::analysis::neurons::analyze_neurons;
use crate::analysis::prune::{prune_order, prune_sweep, Order, PrunePoint};
use crate::analysis::transformer::{t_prune_order, t_prune_sweep_at};
use crate::config::ModelSpec;
use crate::error::Result;
use crate::rundir::{load_run, load_transformer_run};
use std::path::Path;

/// What every weight figure needs to know about the run and the report.
pub struct Ctx<'a> {
    pub dir: &'a Path,
    pub out: &'a Path,
    pub name: &'a str,
    pub specs: &'a [ModelSpec],
    pub shown: &'a [usize],
    pub cols: usize,
}

/// Fourier spectra, one neuron before and after, BatchNorm scales and pruning curves.
pub fn mlp_figures(c: &Ctx, figs: &mut Vec<FigureFile>) -> Result<()> {
    let (dir, out, name, specs, shown) = (c.dir, c.out, c.name, c.specs, c.shown);
    let run = load_run(dir)?;
    let arch = run.setup.fleet.arch;
    // 4. Fourier spectra and one neuron before/after; 6. BatchNorm.
    let init = crate::train::run::setup(&run.cfg)?;
    for &i in shown {
        let model = &run.setup.fleet.models[i];
        let (rows, spectra) = analyze_neurons(&arch, i, model);
        let mut order: Vec<usize> = (0..arch.width).filter(|&k| rows[k].ipr.is_some()).collect();
        order.sort_by_key(|&k| (rows[k].dominant_freq, k));
        let panels: Vec<Panel> = ["U", "V", "W"]
            .iter()
            .enumerate()
            .map(|(j, m)| {
                let spec = |k: usize| match j {
                    0 => spectra[k].u.clone(),
                    1 => spectra[k].v.clone(),
                    _ => spectra[k].w.clone(),
                };
                let all: Vec<Vec<f64>> = order
                    .iter()
                    .map(|&k| spec(k).unwrap_or_else(|| vec![0.0; arch.p / 2 + 1]))
                    .collect();
                let (values, y_labels) = bin_rows(&all, 128);
                Panel::Heat(Heatmap {
                    title: format!("{name}: |û| of {m}, model {i}"),
                    x_desc: "frequency",
                    y_desc: "neurons (by dominant frequency)",
                    x_labels: (0..=arch.p / 2).map(|f| f.to_string()).collect(),
                    y_labels,
                    values,
                    annotate: false,
                })
            })
            .collect();
        figs.push(save_figure(
            out,
            &format!("fourier_model{i}"),
            &format!("Fourier spectra, {}", model_label(specs, i)),
            "Magnitude of the real DFT of each neuron's U row, V row and W column (scaled to largest entry 1), neurons sorted by dominant frequency (groups of neurons averaged when there are more than 128). A generalizing network has one bright frequency per neuron.",
            &panels,
            3,
            (420, 420),
        )?);
        // The neuron with the highest final IPR, before and after training.
        let k = (0..arch.width)
            .max_by(|&a, &b| {
                rows[a]
                    .ipr
                    .unwrap_or(-1.0)
                    .total_cmp(&rows[b].ipr.unwrap_or(-1.0))
                    .then(b.cmp(&a))
            })
            .unwrap_or(0);
        let col = |params: &[f32]| -> Vec<(f64, f64)> {
            (0..arch.p)
                .map(|t| {
                    (
                        t as f64,
                        params[arch.u_range().start + t * arch.width + k] as f64,
                    )
                })
                .collect()
        };
        let before = col(&init.fleet.models[i].params);
        let after = col(&model.params);
        let mut ipr = Ipr::new(arch.p);
        let ipr_of = |v: &[(f64, f64)], ipr: &mut Ipr| {
            let x: Vec<f32> = v.iter().map(|p| p.1 as f32).collect();
            ipr.of(&x).map(|s| s.ipr).unwrap_or(0.0)
        };
        let (ib, ia) = (ipr_of(&before, &mut ipr), ipr_of(&after, &mut ipr));
        let panels = vec![
            Panel::Line(LineChart {
                title: format!("{name}: neuron {k} before training (IPR {ib:.2})"),
                x_desc: "input token n",
                y_desc: "U[k, n]",
                lines: vec![line("U row at init", 6, false, before)],
                log_y: false,
                y_range: None,
                marks: vec![],
            }),
            Panel::Line(LineChart {
                title: format!("{name}: neuron {k} after training (IPR {ia:.2})"),
                x_desc: "input token n",
                y_desc: "U[k, n]",
                lines: vec![line("U row trained", 0, false, after)],
                log_y: false,
                y_range: None,
                marks: vec![],
            }),
        ];
        figs.push(save_figure(
            out,
            &format!("neuron_model{i}"),
            &format!("One neuron before and after training, {}", model_label(specs, i)),
            "The first-layer weights U[k, n] of the neuron with the highest final IPR over the input tokens n: random at initialisation, periodic after training (as in the paper's first figure).",
            &panels,
            2,
            PANEL,
        )?);
        if arch.batchnorm {
            let points: Vec<(f64, f64)> = rows
                .iter()
                .filter_map(|r| Some((r.ipr?, r.bn_gamma?.abs())))
                .collect();
            figs.push(save_figure(
                out,
                &format!("batchnorm_model{i}"),
                &format!("BatchNorm scale against IPR, {}", model_label(specs, i)),
                "Per neuron: |γ_k| of the BatchNorm after the square against the neuron's IPR. Memorizing (low-IPR) neurons get small scales.",
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

    // 5. Pruning curves.
    let s = &run.setup;
    let panels: Vec<Panel> = shown
        .iter()
        .map(|&i| {
            let model = &s.fleet.models[i];
            let mut lines = Vec::new();
            for (order, dashed, tag) in [
                (Order::Ascending, false, "asc"),
                (Order::Descending, true, "desc"),
            ] {
                let ord = prune_order(&arch, &model.params, order, 0);
                let sw = prune_sweep(&arch, s.fleet.loss, &s.split, &s.labels[i], model, &ord);
                lines.extend(prune_lines(&sw, arch.width, tag, dashed));
            }
            Panel::Line(LineChart {
                title: format!("{name}: pruning by IPR, model {i}"),
                x_desc: "fraction of neurons pruned",
                y_desc: "accuracy (fraction)",
                lines,
                log_y: false,
                y_range: Some((0.0, 1.02)),
                marks: vec![],
            })
        })
        .collect();
    pruning_figure(c, panels, figs, "neurons")
}

/// Accuracy lines of one pruning sweep (x = fraction of `width` pruned).
fn prune_lines(sw: &[PrunePoint], width: usize, tag: &str, dashed: bool) -> Vec<Line> {
    let frac = |m: usize| m as f64 / width as f64;
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

fn pruning_figure(
    c: &Ctx,
    panels: Vec<Panel>,
    figs: &mut Vec<FigureFile>,
    what: &str,
) -> Result<()> {
    figs.push(save_figure(
        c.out,
        "pruning",
        "Pruning by IPR",
        &format!("Accuracies after removing {what} in order of ascending IPR (solid: memorizing neurons first) and descending IPR (dashed: periodic neurons first)."),
        &panels,
        c.cols,
        PANEL,
    )?);
    Ok(())
}

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

/// Spectra of rows (p-vectors) sorted by dominant frequency; dead rows are left out.
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

/// Transformer runs: spectra of the token embedding's columns and of the MLP neurons' input
/// and output views, and pruning curves (every 5 % of the neurons).
pub fn transformer_figures(c: &Ctx, figs: &mut Vec<FigureFile>) -> Result<()> {
    let mut run = load_transformer_run(c.dir)?;
    let (p, d) = (run.setup.fleet.p, run.cfg.model.transformer.d_model);
    let mut ipr = Ipr::new(p);
    for &i in c.shown {
        let (emb, _) = run
            .setup
            .fleet
            .host(i, "tok_emb")
            .expect("a Transformer has a token embedding");
        let columns: Vec<Vec<f32>> = (0..d)
            .map(|j| (0..p).map(|t| emb[t * d + j]).collect())
            .collect();
        let views = run.setup.fleet.mlp_neuron_views(i);
        let ins: Vec<Vec<f32>> = views.iter().map(|v| v.2.clone()).collect();
        let outs: Vec<Vec<f32>> = views.iter().map(|v| v.3.clone()).collect();
        let panels = vec![
            heat(
                format!("token embedding, model {i}"),
                "columns (by dominant frequency)",
                p,
                sorted_spectra(&mut ipr, &columns),
            ),
            heat(
                format!("MLP inputs E·fc1[k], model {i}"),
                "neurons (by dominant frequency)",
                p,
                sorted_spectra(&mut ipr, &ins),
            ),
            heat(
                format!("MLP outputs unembed·fc2[:,k], model {i}"),
                "neurons (by dominant frequency)",
                p,
                sorted_spectra(&mut ipr, &outs),
            ),
        ];
        figs.push(save_figure(
            c.out,
            &format!("fourier_model{i}"),
            &format!("Fourier spectra, {}", model_label(c.specs, i)),
            "Magnitude of the real DFT over the p tokens (scaled to largest entry 1) of each column of the token embedding, and of each MLP neuron's input and output as seen from the tokens; rows sorted by dominant frequency (groups averaged when there are more than 128). A generalizing network has one bright frequency per row.",
            &panels,
            3,
            (420, 420),
        )?);
    }
    let s = &mut run.setup;
    let mut panels = Vec::new();
    for &i in c.shown {
        let neurons = s.fleet.mlp_neuron_spectra(i);
        let n = neurons.len();
        let at: Vec<usize> = (0..=20).map(|j| j * n / 20).collect();
        let mut lines = Vec::new();
        for (order, dashed, tag) in [
            (Order::Ascending, false, "asc"),
            (Order::Descending, true, "desc"),
        ] {
            let ord = t_prune_order(&neurons, order, 0);
            let sw = t_prune_sweep_at(&mut s.fleet, i, &s.split, &s.labels[i], &ord, &at)?;
            lines.extend(prune_lines(&sw, n, tag, dashed));
        }
        panels.push(Panel::Line(LineChart {
            title: format!("{}: pruning MLP neurons by IPR, model {i}", c.name),
            x_desc: "fraction of MLP neurons pruned",
            y_desc: "accuracy (fraction)",
            lines,
            log_y: false,
            y_range: Some((0.0, 1.02)),
            marks: vec![],
        }));
    }
    pruning_figure(c, panels, figs, "MLP neurons")
}
