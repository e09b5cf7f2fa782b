//! `grokscope report DIR`: figures (PNG and SVG) and one self-contained `report.html` for a
//! run directory, a sweep directory, or a run's analysis (pruning) results.
//! Everything goes to `DIR/report/`; `report.html` embeds its PNGs as data URIs and links
//! the SVGs beside it.

mod compare;
mod curves;
mod dense;
mod explore;
mod figure;
pub mod grid;
pub mod html;
pub mod legend;
pub mod plot;
mod progress;
pub mod style;
pub mod text;
mod weights;

pub use compare::compare;
pub use curves::Options;
pub use figure::{save_figure, FigureFile, Panel, MAX_MODELS_SHOWN};

/// The report page in `report/`.
const HTML: &str = "report.html";

use crate::analysis::dynamics::dynamics;
use crate::config::StepAxis;
use crate::config::{ModelKind, ModelSpec};
use crate::error::{Error, Result};
use crate::metrics::{Record, Thresholds, IPR_BINS};
use crate::rundir::{swap, RunDir, REPORT};
use crate::sweep::results::{phase_grids, Grid, GridCell};
use crate::sweep::store;
use curves::{accuracy_lines, overlay_panels, steps_line, Overlay};
use figure::{line, model_label, short_label, PANEL};
use grid::{Heatmap, PhaseGrid};
use html::{Chart, Page};
use plot::*;
use std::path::{Path, PathBuf};

/// What a directory holds.
pub enum Source {
    Run(PathBuf),
    Sweep(PathBuf),
}

/// Recognises a run directory, a sweep directory, or a run's `analysis/` directory or pruning
/// CSV (reported as their run).
pub fn classify(path: &Path) -> Result<Source> {
    let dir = if path.is_file() {
        path.parent().unwrap_or(path)
    } else {
        path
    };
    if store::is_sweep(dir) {
        return Ok(Source::Sweep(dir.to_path_buf()));
    }
    if RunDir::is_run(dir) {
        return Ok(Source::Run(dir.to_path_buf()));
    }
    if let Some(run) = RunDir::of_analysis_dir(dir) {
        return Ok(Source::Run(run.path().to_path_buf()));
    }
    Err(Error::NotARun {
        dir: path.to_path_buf(),
        why: "expected a run directory (config.toml), a sweep directory (plan.json) or a run's analysis/".into(),
    })
}

/// Writes the report of `path` into `<dir>/report/`; returns the path of `report.html`.
///
/// The report is drawn into a staging directory beside it and swapped into place when
/// complete ([`swap`]), so a failed or killed `report` leaves the previous report (or none)
/// intact.
pub fn report(path: &Path, force: bool) -> Result<PathBuf> {
    report_with(path, force, &Options::default())
}

/// [`report`] with options.
pub fn report_with(path: &Path, force: bool, opts: &Options) -> Result<PathBuf> {
    let (dir, is_run) = match classify(path)? {
        Source::Run(dir) => (dir, true),
        Source::Sweep(dir) => (dir, false),
    };
    let out = dir.join(REPORT);
    swap::recover(&out)?;
    if out.exists() && !out.is_dir() {
        return Err(Error::io(
            &out,
            std::io::Error::other("a file is where grokscope keeps the report: move it away"),
        ));
    }
    if out.exists() && !force {
        return Err(Error::FileExists(out));
    }
    let tmp = swap::stage(&out)?;
    let made = if is_run {
        run_report(&dir, &tmp, opts)
    } else {
        sweep_report(&dir, &tmp)
    };
    if let Err(e) = made {
        swap::discard(&tmp);
        return Err(e);
    }
    swap::swap_in(&tmp, &out)?;
    Ok(out.join(HTML))
}

/// The report of one run.
fn run_report(dir: &Path, out: &Path, opts: &Options) -> Result<PathBuf> {
    let run = RunDir::open(dir)?;
    let cfg = run.read_config()?;
    let specs = cfg.fleet();
    let history = run.read_history(specs.len())?;
    if run.has_weights() {
        let (_, n_train) = cfg.example_counts();
        let total = cfg.total_steps(n_train);
        let last = history[0].last().map_or(0, |r| r.step);
        // The last evaluations are the final metrics summary.json reports.
        let path = dir.join("summary.json");
        let summary: serde_json::Value = std::fs::read_to_string(&path)
            .map_err(|e| Error::io(&path, e))
            .and_then(|t| {
                serde_json::from_str(&t).map_err(|e| Error::json(&path, "not a run summary", e))
            })?;
        for (i, h) in history.iter().enumerate() {
            let final_row = h.last().and_then(|r| serde_json::to_value(r).ok());
            if !crate::rundir::same_final(
                final_row.as_ref(),
                summary["models"].get(i).map(|m| &m["final"]),
            ) {
                return Err(Error::BadFile {
                    path: dir.join("metrics.csv"),
                    why: format!(
                        "model {i}'s last row differs from its final metrics in summary.json: one of them was edited"
                    ),
                });
            }
        }
        if last != total || history[0][0].step != 0 {
            return Err(Error::BadFile {
                path: dir.join("metrics.csv"),
                why: format!(
                    "its evaluations run from step {} to {last}, but the finished run trained steps 0 to {total}",
                    history[0][0].step
                ),
            });
        }
    }
    let name = cfg.name.clone();
    let hi = cfg.eval.threshold;
    let th = Thresholds::from(&cfg.eval);
    let axis = opts.step_axis.unwrap_or(cfg.report.step_axis);
    let log_x = axis.is_log(history[0].iter().map(|r| r.step));
    let step = if log_x { "step (log)" } else { "step" };
    let shown: Vec<usize> = (0..specs.len().min(MAX_MODELS_SHOWN)).collect();
    let cols = shown.len().min(2);
    let mut figs = Vec::new();
    let more = if specs.len() > MAX_MODELS_SHOWN {
        format!(
            " The first {MAX_MODELS_SHOWN} of {} models are shown.",
            specs.len()
        )
    } else {
        String::new()
    };
    let from = if log_x {
        " Log step axis (the evaluation at step 0 is not drawn)."
    } else {
        ""
    };

    // 1. Accuracy curves with the dynamics marked.
    let panels: Vec<Panel> = shown
        .iter()
        .map(|&i| {
            let h = &history[i];
            let d = dynamics(h, hi);
            let marks = [
                (d.first_train_acc_hi, "train", TRAIN),
                (d.first_test_acc_hi, "test", TEST),
                (d.first_inv_acc_hi, "A_inv", INV),
                (d.last_mem_acc_drop, "A_mem drop", MEM),
            ]
            .into_iter()
            .filter_map(|(s, l, c)| {
                Some(Mark {
                    x: s? as f64,
                    label: l.to_string(),
                    color: PALETTE[c],
                })
            })
            .collect();
            Panel::Line(LineChart {
                title: format!("accuracy, {}", model_label(&specs, i)),
                x_desc: step,
                y_desc: "accuracy",
                lines: accuracy_lines(h),
                log_x,
                log_y: false,
                y_range: Some((-0.02, 1.02)),
                marks,
            })
        })
        .collect();
    figs.push(save_figure(
        out,
        "accuracy",
        "Accuracy over training",
        &format!("{name}: train and test accuracy (solid), accuracy on the corrupted training examples against their corrupted labels (A_mem, dashed) and their true labels (A_inv, dashed), and on the clean training examples (A_clean, dotted). Dotted verticals, labelled above the plot: the first step at which train, test and A_inv reach {hi}, and the last step at which A_mem fell below it.{from}{more}"),
        &panels,
        cols,
        PANEL,
    )?);

    // 2. Models overlaid: test accuracy and A_mem of each.
    if specs.len() > 1 {
        let curves: Vec<(String, &[Record])> = shown
            .iter()
            .map(|&i| (short_label(&specs, i), history[i].as_slice()))
            .collect();
        figs.push(save_figure(
            out,
            "overlay",
            "Models overlaid",
            &format!("{name}: test accuracy (solid) and A_mem (dashed) of every model, one colour per model.{from}{more}"),
            &overlay_panels(&curves, log_x, step),
            2,
            PANEL,
        )?);
    }

    // 3. Losses (log scale) and weight norms.
    let loss_label = format!("{} loss", format!("{:?}", cfg.train.loss).to_uppercase());
    let mut panels = Vec::new();
    let [n0, n1, n2] = cfg.architecture().norm_names();
    for &i in &shown {
        let h = &history[i];
        panels.push(Panel::Line(LineChart {
            title: format!("loss, model {i}"),
            x_desc: step,
            y_desc: &loss_label,
            lines: vec![
                line(
                    "train",
                    TRAIN,
                    Dash::Solid,
                    steps_line(h, |r| Some(r.train_loss)),
                ),
                line(
                    "test",
                    TEST,
                    Dash::Solid,
                    steps_line(h, |r| Some(r.test_loss)),
                ),
                line(
                    "train batch",
                    5,
                    Dash::Dashed,
                    steps_line(h, |r| r.batch_loss),
                ),
            ],
            log_x,
            log_y: true,
            y_range: None,
            marks: vec![],
        }));
        panels.push(Panel::Line(LineChart {
            title: format!("weight norms, model {i}"),
            x_desc: step,
            y_desc: "Frobenius norm",
            lines: vec![
                line(n0, 0, Dash::Solid, steps_line(h, |r| Some(r.norm_u))),
                line(n1, 3, Dash::Dashed, steps_line(h, |r| Some(r.norm_v))),
                line(n2, 2, Dash::Dotted, steps_line(h, |r| Some(r.norm_w))),
            ],
            log_x,
            log_y: false,
            y_range: None,
            marks: vec![],
        }));
    }
    figs.push(save_figure(
        out,
        "loss_norms",
        "Loss and weight norms",
        &format!("{name}. Left: training loss (evaluation mode, whole training set, on the labels trained on), test loss, and dashed the reference's logged loss (training mode, on the step's batch, before its update), on a log scale. Right: Frobenius norms of the weights ({n0}, {n1}, {n2}).{from}{more}"),
        &panels,
        2,
        PANEL,
    )?);

    // 4. IPR over steps and its histogram at the start and the end.
    let ipr_lines: Vec<Line> = shown
        .iter()
        .map(|&i| {
            line(
                &short_label(&specs, i),
                i,
                Dash::Solid,
                steps_line(&history[i], |r| r.mean_ipr),
            )
        })
        .collect();
    let mut panels = vec![Panel::Line(LineChart {
        title: "mean IPR of living neurons".into(),
        x_desc: step,
        y_desc: "mean IPR",
        lines: ipr_lines,
        log_x,
        log_y: false,
        y_range: Some((0.0, 1.0)),
        marks: vec![],
    })];
    let edges: Vec<f64> = (0..=IPR_BINS).map(|b| b as f64 / IPR_BINS as f64).collect();
    for &i in &shown {
        let h = &history[i];
        let (Some(first), Some(last)) = (h.first(), h.last()) else {
            continue;
        };
        if first.ipr_hist.len() == IPR_BINS && last.ipr_hist.len() == IPR_BINS {
            panels.push(Panel::Bar(BarChart {
                title: format!("IPR histogram, model {i}"),
                x_desc: "neuron IPR",
                y_desc: "neurons (log scale)",
                edges: edges.clone(),
                series: vec![
                    (
                        format!("step {}", first.step),
                        PALETTE[6],
                        first.ipr_hist.iter().map(|&c| c as f64).collect(),
                    ),
                    (
                        format!("step {}", last.step),
                        PALETTE[0],
                        last.ipr_hist.iter().map(|&c| c as f64).collect(),
                    ),
                ],
                log_y: true,
            }));
        }
    }
    let fourier = cfg.token_space().is_some();
    if fourier {
        figs.push(save_figure(
        out,
        "ipr",
        "Inverse participation ratio",
        &format!("{name}: mean Fourier IPR (r = 2) of the living neurons over training, and the number of neurons per IPR bin at the first and the last evaluation (log scale, so that the final distribution stays visible beside the initial one). Periodic (generalizing) neurons have IPR near 1, memorizing ones a small IPR.{from}"),
        &panels,
        2,
        PANEL,
    )?);
    }

    if let Some(f) = progress::figure(
        &progress::Ctx {
            out,
            name: &name,
            specs: &specs,
            shown: &shown,
            log_x,
            step,
            from,
            loss: cfg.train.loss,
            p: cfg.data.p,
        },
        &history,
    )? {
        figs.push(f);
    }

    // Figures from the weights.
    let phases: Vec<_> = history
        .iter()
        .map(|h| {
            h.last().map_or(crate::metrics::Phase::Confusion, |r| {
                crate::metrics::final_phase(r, None, th)
            })
        })
        .collect();
    let ctx = weights::Ctx {
        run: &run,
        phases: &phases,
        out,
        name: &name,
        specs: &specs,
        shown: &shown,
        cols,
    };
    // A run still training (or interrupted) has its streamed metrics but no final weights yet:
    // its report shows the metrics figures.
    let mut notes = Vec::new();
    if !fourier {
        notes.push(NO_TOKEN_SPACE.to_string());
        if run.has_weights() {
            figs.extend(dense::figures(&run, out, &name, &specs, &shown)?);
            figs.extend(dense::score_figures(&run, out, &name, &specs, &shown)?);
            figs.extend(dense::pruning_figures(&run, out, &name, &specs, &shown)?);
        }
    } else if run.has_weights() {
        notes = weights::figures(&ctx, &mut figs)?;
        figs.extend(dense::score_figures(&run, out, &name, &specs, &shown)?);
        figs.extend(dense::pruning_figures(&run, out, &name, &specs, &shown)?);
    }
    if axis == StepAxis::Log && !log_x {
        notes.push("The step axis is linear although log was asked: a log axis needs two evaluations after step 0.".into());
    }
    let mut table = String::new();
    for n in &notes {
        table.push_str(&format!("<p><b>Note.</b> {}</p>\n", esc(n)));
    }
    if !run.has_weights() {
        let (_, n_train) = cfg.example_counts();
        let last = history[0].last().map_or(0, |r| r.step);
        table.push_str(&format!(
            "<p><b>This run has not finished</b>: its evaluations so far end at step {last} of {} (phases and figures are those of step {last}; it may still be training, or was interrupted — <code>grokscope train --resume</code> continues it).</p>\n",
            cfg.total_steps(n_train)
        ));
    }
    table.push_str(&run_table(&specs, &history, th, hi));
    let config = shown_config(&run.config_text()?);
    let mut sections = Vec::new();
    let accuracy: Vec<Chart> = shown
        .iter()
        .map(|&i| {
            curves::accuracy_chart(
                format!("accuracy, {}", model_label(&specs, i)),
                &history[i],
                log_x,
            )
        })
        .collect();
    sections.push((
        "Accuracy over training".to_string(),
        "Train and test accuracy, A_mem (corrupted examples, corrupted labels), A_inv (corrupted examples, true labels), A_clean (clean training examples).".to_string(),
        accuracy,
    ));
    let labelled: Vec<(String, &[Record])> = shown
        .iter()
        .map(|&i| (short_label(&specs, i), history[i].as_slice()))
        .collect();
    let mut overlays = Vec::new();
    if specs.len() > 1 {
        overlays.push(curves::overlay_chart(
            "test accuracy (solid) and A_mem (dashed), all models",
            Overlay::Accuracy,
            &labelled,
            log_x,
        ));
    }
    overlays.push(curves::overlay_chart(
        "mean IPR of living neurons",
        Overlay::Ipr,
        &labelled,
        log_x,
    ));
    sections.push((
        "Models overlaid".to_string(),
        "One colour per model.".to_string(),
        overlays,
    ));
    sections.push((
        "Loss".to_string(),
        "Training loss (evaluation mode, whole training set), test loss, and the reference's logged batch loss (dashed).".to_string(),
        shown
            .iter()
            .map(|&i| curves::loss_chart(format!("loss, {}", model_label(&specs, i)), &history[i], log_x))
            .collect(),
    ));
    html::write(
        out,
        HTML,
        &Page {
            title: format!("grokscope report: {name}"),
            summary: table,
            sections,
            extra: String::new(),
            extra_data: serde_json::Value::Null,
            figures: &figs,
            fig_dir: out,
            config: Some(config),
        },
    )
}

/// The report's note for a dataset without a token space (its figures of Fourier IPR, spectra
/// and neurons are left out).
pub const NO_TOKEN_SPACE: &str = "This run's inputs are dense feature vectors, not tokens: they have no Fourier basis, so the report leaves out the IPR figure, the Fourier spectra and the neuron figures, and shows corrupted examples with their given and true labels and the network's prediction instead (docs/SCIENCE.md §9; memorizing units: grokscope scores, docs/REAL_DATA.md).";

/// The run's config as the report shows it: without the table of the network it does not use
/// (`[model.transformer]` of an MLP run).
fn shown_config(text: &str) -> String {
    let Ok(mut t) = text.parse::<toml::Table>() else {
        return text.to_string();
    };
    if let Some(m) = t.get_mut("model").and_then(|m| m.as_table_mut()) {
        // Only the run's own kind's table: the others hold defaults it does not use.
        let kind = m
            .get("kind")
            .and_then(|k| k.as_str())
            .unwrap_or("mlp")
            .to_string();
        for other in ModelKind::ALL {
            let name = serde_json::to_value(other).ok();
            if name.as_ref().and_then(|n| n.as_str()) != Some(kind.as_str()) {
                m.remove(other.table());
            }
        }
    }
    toml::to_string(&t).unwrap_or_else(|_| text.to_string())
}

use html::esc;

fn fmt(x: Option<f64>) -> String {
    x.map(|v| format!("{v:.3}")).unwrap_or_else(|| "—".into())
}

fn step(s: Option<u64>) -> String {
    s.map_or_else(|| "—".into(), |s| s.to_string())
}

fn run_table(specs: &[ModelSpec], history: &[Vec<Record>], th: Thresholds, hi: f64) -> String {
    let axes: String = crate::config::FLEET_AXES
        .iter()
        .map(|a| format!("<th>{}</th>", esc(a.long)))
        .collect();
    let mut t = format!("<table><tr><th>model</th>{axes}<th>train</th><th>test</th><th>A_mem</th><th>A_inv</th><th>A_clean</th><th>mean IPR</th><th>phase</th><th title=\"first step with train accuracy ≥ {hi}\">train ≥ hi</th><th title=\"first step with test accuracy ≥ {hi}\">test ≥ hi</th><th title=\"first step with A_inv ≥ {hi}\">A_inv ≥ hi</th><th title=\"first step with A_mem ≥ {hi}\">A_mem ≥ hi</th><th title=\"last step at which A_mem fell below {hi}\">A_mem drop</th></tr>\n");
    for (i, (spec, h)) in specs.iter().zip(history).enumerate() {
        let Some(r) = h.last() else { continue };
        let d = dynamics(h, hi);
        t.push_str(&format!(
            "<tr><td>{i}</td>{}<td>{:.3}</td><td>{:.3}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>\n",
            crate::config::FLEET_AXES
                .iter()
                .map(|a| format!("<td>{}</td>", (a.value)(spec)))
                .collect::<String>(),
            r.train_acc, r.test_acc, fmt(r.mem_acc), fmt(r.inv_acc), fmt(r.clean_acc), fmt(r.mean_ipr),
            esc(r.phase(th).name()),
            step(d.first_train_acc_hi), step(d.first_test_acc_hi), step(d.first_inv_acc_hi),
            step(d.first_mem_acc_hi), step(d.last_mem_acc_drop)
        ));
    }
    t.push_str(
        "</table><p>Steps: the first evaluation at which an accuracy reached the threshold hi = ",
    );
    t.push_str(&format!(
        "{hi} (— never), and the last at which A_mem fell below it after having reached it.</p>"
    ));
    t
}

/// The report of a sweep.
fn sweep_report(dir: &Path, out: &Path) -> Result<PathBuf> {
    let plan = crate::sweep::store::read_plan(dir)?;
    let records = crate::sweep::store::read_records(dir)?;
    let spec = crate::sweep::spec::SweepSpec::parse(&plan.spec)?;
    let axes: Vec<String> = spec
        .axes
        .iter()
        .flat_map(|(k, _)| {
            k.split(',')
                .map(|x| x.trim().to_string())
                .collect::<Vec<_>>()
        })
        .collect();
    let grids = phase_grids(&axes, &records);
    let name = plan.name.clone();
    let mut figs = Vec::new();
    if !grids.is_empty() {
        let title = |g: &Grid| {
            if g.group.is_empty() {
                name.clone()
            } else {
                format!(
                    "{name}: {}",
                    g.group
                        .iter()
                        .map(|(k, v)| format!("{} = {v}", k.rsplit('.').next().unwrap_or(k)))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            }
        };
        let idx = |g: &Grid, a: &str, x: &str| {
            (
                g.rows.iter().position(|v| v == a).unwrap_or(0),
                g.xis.iter().position(|v| v == x).unwrap_or(0),
            )
        };
        let labels = |v: &[String]| -> Vec<String> { v.iter().map(|s| tick_str(s)).collect() };
        let panels: Vec<Panel> = grids
            .iter()
            .map(|g| {
                Panel::Phase(PhaseGrid {
                    title: title(g),
                    y_desc: g.axis.desc,
                    rows: &g.rows,
                    xis: &g.xis,
                    cells: g
                        .cells
                        .iter()
                        .map(|c| {
                            let (a, x) = idx(g, &c.row, &c.xi);
                            (a, x, c.phase, c.agreement)
                        })
                        .collect(),
                })
            })
            .collect();
        figs.push(save_figure(
            out,
            "phase_grid",
            "Phase diagrams",
            &format!("Majority phase of each ({sym}, ξ) cell over its seeds (its code written in the cell), one panel per value of the other axes; a black corner: the seeds disagree (the agreement is in phase_grid.csv). {sym} grows upward, as in phase_grid.txt.", sym = grids[0].axis.symbol),
            &panels,
            2,
            (640, 480),
        )?);
        type CellValue = fn(&GridCell) -> Option<f64>;
        let maps: [(&str, &str, &str, CellValue); 2] = [
            ("test_acc_grid", "test accuracy", "test accuracy", |c| {
                Some(c.test_acc)
            }),
            (
                "mem_acc_grid",
                "A_mem",
                "A_mem (corrupted examples, corrupted labels)",
                |c| c.mem_acc,
            ),
        ];
        for (fname, short, what, f) in maps {
            let panels: Vec<Panel> = grids
                .iter()
                .map(|g| {
                    let mut values = vec![vec![f64::NAN; g.xis.len()]; g.rows.len()];
                    for c in &g.cells {
                        let (a, x) = idx(g, &c.row, &c.xi);
                        values[a][x] = f(c).unwrap_or(f64::NAN);
                    }
                    Panel::Heat(Heatmap {
                        title: format!("{}: {short}", title(g)),
                        x_desc: "corruption fraction ξ",
                        y_desc: g.axis.desc,
                        x_labels: labels(&g.xis),
                        y_labels: labels(&g.rows),
                        values,
                        annotate: true,
                        bar: short.to_string(),
                    })
                })
                .collect();
            figs.push(save_figure(
                out,
                fname,
                &format!("Mean {what} over the grid"),
                &format!("Mean final {what} per ({}, ξ) cell, averaged over seeds; colour from 0 (light) to 1 (dark).", grids[0].axis.symbol),
                &panels,
                2,
                (640, 480),
            )?);
        }
    }
    let mut table = format!(
        "<p>{} of {} runs finished.</p><table><tr><th>phase</th><th>runs</th></tr>",
        records.len(),
        plan.runs
    );
    let mut counts = std::collections::BTreeMap::new();
    for r in records.values() {
        *counts.entry(r.phase).or_insert(0usize) += 1;
    }
    for (p, c) in counts {
        table.push_str(&format!("<tr><td>{}</td><td>{c}</td></tr>", esc(p.name())));
    }
    table.push_str("</table>");
    let grid_text = store::read_grid_text(dir)?.unwrap_or_default();
    if !grid_text.is_empty() {
        table.push_str(&format!("<pre>{}</pre>", esc(&grid_text)));
    }
    let (extra, extra_data) = explore::explorer(dir, &axes, &records, &grids)?;
    html::write(
        out,
        HTML,
        &Page {
            title: format!("grokscope sweep report: {name}"),
            summary: table,
            sections: Vec::new(),
            extra,
            extra_data,
            figures: &figs,
            fig_dir: out,
            config: Some(plan.spec.clone()),
        },
    )
}
