//! The report's figures of a dense dataset — corrupted training examples of a model, each with
//! its given (corrupted) label, its true label and the trained network's prediction — images
//! as heat maps, feature vectors as lines; and the pruning curves by score that `grokscope
//! scores` wrote into the run's analysis/ (read back and validated).

use super::figure::{line, model_label, save_figure, FigureFile, Panel};
use super::grid::Heatmap;
use super::plot::*;
use crate::config::ModelSpec;
use crate::data::{Dataset, Inputs};
use crate::error::Result;
use crate::rundir::RunDir;
use crate::train::Engine;
use std::path::Path;

/// Examples shown per model.
pub const SAMPLES: usize = 12;

/// Fashion-MNIST's class names (Xiao et al. 2017), by label: for the caption.
const FASHION: [&str; 10] = [
    "T-shirt/top",
    "trouser",
    "pullover",
    "dress",
    "coat",
    "sandal",
    "shirt",
    "sneaker",
    "bag",
    "ankle boot",
];

/// The figure `samples-model<i>` for each model of `shown`: its first [`SAMPLES`] corrupted
/// training examples (none without corruption).
pub fn figures(
    run: &RunDir,
    out: &Path,
    name: &str,
    specs: &[ModelSpec],
    shown: &[usize],
) -> Result<Vec<FigureFile>> {
    let mut loaded = run.load()?;
    let s = &mut loaded.setup;
    let Dataset::Dense(d) = &s.split else {
        return Ok(Vec::new());
    };
    let Inputs::Dense { dim, train, .. } = s.split.inputs() else {
        return Ok(Vec::new());
    };
    let mut figs = Vec::new();
    for &i in shown {
        let labels = &s.labels[i];
        let picked: Vec<usize> = (0..labels.labels.len())
            .filter(|&k| labels.corrupted[k])
            .take(SAMPLES)
            .collect();
        if picked.is_empty() {
            continue;
        }
        let preds = s.network.eval_model(i)?.preds;
        let title = |k: usize| {
            format!(
                "given {} · true {} · net {}",
                labels.labels[k], d.train_true[k], preds[k]
            )
        };
        let panels: Vec<Panel> = picked
            .iter()
            .map(|&k| {
                let x = &train[k * dim..(k + 1) * dim];
                match d.shape.as_slice() {
                    &[h, w] if h * w == dim => {
                        let (lo, hi) = x
                            .iter()
                            .fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &v| {
                                (a.min(v), b.max(v))
                            });
                        let span = (hi - lo).max(1e-12) as f64;
                        // Row 0 of the image at the top.
                        let values = (0..h)
                            .rev()
                            .map(|r| (0..w).map(|c| (x[r * w + c] - lo) as f64 / span).collect())
                            .collect();
                        Panel::Heat(Heatmap {
                            title: title(k),
                            x_desc: "",
                            y_desc: "",
                            x_labels: (0..w).map(|c| c.to_string()).collect(),
                            y_labels: (0..h).rev().map(|r| r.to_string()).collect(),
                            values,
                            annotate: false,
                            bar: "pixel (scaled)".into(),
                        })
                    }
                    _ => Panel::Line(LineChart {
                        title: title(k),
                        x_desc: "feature",
                        y_desc: "value",
                        lines: vec![line(
                            "input",
                            0,
                            Dash::Solid,
                            x.iter()
                                .enumerate()
                                .map(|(j, &v)| (j as f64, v as f64))
                                .collect(),
                        )],
                        log_x: false,
                        log_y: false,
                        y_range: None,
                        marks: Vec::new(),
                    }),
                }
            })
            .collect();
        figs.push(save_figure(
            out,
            &format!("samples-model{i}"),
            &format!("Corrupted examples, {}", model_label(specs, i)),
            &format!(
                "{name}: the first {} corrupted training examples of {} ({}), each with the label it was trained on (given), its true label and the trained network's prediction (net). A prediction equal to the given label is a memorized example; equal to the true label, an inverted one.{}",
                picked.len(),
                model_label(specs, i),
                s.split.describe(),
                if d.name == "fashion-mnist" {
                    let names: Vec<String> = FASHION
                        .iter()
                        .enumerate()
                        .map(|(l, n)| format!("{l} {n}"))
                        .collect();
                    format!(" Classes: {}.", names.join(", "))
                } else {
                    String::new()
                }
            ),
            &panels,
            4,
            (330, 300),
        )?);
    }
    Ok(figs)
}

/// The text of a CSV file `grokscope scores` wrote, its header checked; `None` when the file
/// does not exist.
fn read_csv(path: &Path, head: &str) -> Result<Option<String>> {
    use crate::error::Error;
    if !path.exists() {
        return Ok(None);
    }
    let text = crate::fsio::read_text(path).map_err(|e| Error::io(path, e))?;
    if text.lines().next() != Some(head) {
        return Err(Error::csv(path, 1, format!("the header is not {head:?}")));
    }
    Ok(Some(text))
}

/// One row of a `prune-by-*.csv`: model, fraction pruned, test, `A_mem`, `A_inv`, `A_clean`.
type PruneRow = (usize, f64, f64, Option<f64>, Option<f64>, Option<f64>);

/// The rows of a pruning CSV written by `grokscope scores`, validated (header, field count,
/// numbers); `None` when the file does not exist.
fn read_prune(path: &Path) -> Result<Option<Vec<PruneRow>>> {
    use crate::error::Error;
    const HEAD: &str = "model,pruned,fraction,layer,neuron,train_loss,train_acc,test_loss,test_acc,mem_acc,inv_acc,clean_acc";
    let Some(text) = read_csv(path, HEAD)? else {
        return Ok(None);
    };
    let mut rows = Vec::new();
    for (i, l) in text.lines().skip(1).enumerate() {
        let f: Vec<&str> = l.split(',').collect();
        let bad = |why: &str| Error::csv(path, i + 2, why.to_string());
        if f.len() != 12 {
            return Err(bad("not 12 fields"));
        }
        let num = |s: &str| -> Result<f64> {
            s.parse::<f64>()
                .ok()
                .filter(|v| v.is_finite())
                .ok_or_else(|| bad("a field is not a finite number"))
        };
        let opt = |s: &str| -> Result<Option<f64>> {
            if s.is_empty() {
                Ok(None)
            } else {
                num(s).map(Some)
            }
        };
        let model = f[0].parse().map_err(|_| bad("the model is not an index"))?;
        f[1].parse::<usize>()
            .map_err(|_| bad("the number pruned is not a count"))?;
        let unit = |x: f64| -> Result<f64> {
            if (0.0..=1.0).contains(&x) {
                Ok(x)
            } else {
                Err(bad("a fraction or accuracy outside [0, 1]"))
            }
        };
        let acc = |s: &str| -> Result<Option<f64>> { opt(s)?.map(unit).transpose() };
        rows.push((
            model,
            unit(num(f[2])?)?,
            unit(num(f[8])?)?,
            acc(f[9])?,
            acc(f[10])?,
            acc(f[11])?,
        ));
    }
    Ok(Some(rows))
}

/// The curves of one pruning CSV for model `m`: test, `A_mem`, `A_inv`, `A_clean` over the
/// fraction pruned.
fn prune_curves(rows: &[PruneRow], m: usize) -> Vec<Line> {
    let pick = |f: &dyn Fn(&PruneRow) -> Option<f64>| -> Vec<(f64, f64)> {
        rows.iter()
            .filter(|r| r.0 == m)
            .filter_map(|r| Some((r.1, f(r)?)))
            .collect()
    };
    vec![
        line("test", 0, Dash::Solid, pick(&|r| Some(r.2))),
        line("A_mem", 1, Dash::Dashed, pick(&|r| r.3)),
        line("A_inv", 2, Dash::Solid, pick(&|r| r.4)),
        line("A_clean", 3, Dash::Dashed, pick(&|r| r.5)),
    ]
}

/// The pruning figures of `grokscope scores` (the form of the paper's Fig. 6), where its
/// files exist: per model of `shown`, one panel per score and order over all units, and one
/// per layer for the training-set ablation selectivity.
pub fn pruning_figures(
    run: &RunDir,
    out: &Path,
    name: &str,
    specs: &[ModelSpec],
    shown: &[usize],
) -> Result<Vec<FigureFile>> {
    use crate::analysis::scores::Score;
    use crate::rundir::AnalysisFile;
    let mut curves: Vec<(String, Vec<PruneRow>)> = Vec::new();
    for score in Score::ALL {
        for highest in [true, false] {
            let file = AnalysisFile::ScorePrune {
                score,
                highest,
                layer: None,
            };
            if let Some(rows) = read_prune(&run.analysis_path(file))? {
                let order = if highest { "highest" } else { "lowest" };
                curves.push((format!("by {}, {order} first", score.name()), rows));
            }
        }
    }
    let mut layers: Vec<(String, Vec<PruneRow>)> = Vec::new();
    for l in 0..64 {
        let file = AnalysisFile::ScorePrune {
            score: Score::AblationClean,
            highest: true,
            layer: Some(l),
        };
        match read_prune(&run.analysis_path(file))? {
            Some(rows) => {
                layers.push((format!("layer {l}, by ablation_clean, highest first"), rows))
            }
            None => break,
        }
    }
    let mut figs = Vec::new();
    for &i in shown {
        for (what, set, fname) in [
            ("all units", &curves, "prune-scores"),
            ("per layer", &layers, "prune-layers"),
        ] {
            let panels: Vec<Panel> = set
                .iter()
                .filter(|(_, rows)| rows.iter().any(|r| r.0 == i))
                .map(|(title, rows)| {
                    Panel::Line(LineChart {
                        title: title.clone(),
                        x_desc: "fraction pruned",
                        y_desc: "accuracy",
                        lines: prune_curves(rows, i),
                        log_x: false,
                        log_y: false,
                        y_range: Some((0.0, 1.0)),
                        marks: Vec::new(),
                    })
                })
                .collect();
            if panels.is_empty() {
                continue;
            }
            figs.push(save_figure(
                out,
                &format!("{fname}-model{i}"),
                &format!("Pruning by score, {what}, {}", model_label(specs, i)),
                &format!(
                    "{name}: test accuracy, A_mem, A_inv and A_clean of {} as hidden units are removed in the order of each score of grokscope scores (analysis/prune-by-*.csv; docs/REAL_DATA.md), {what}. A score that finds the memorizing units drops A_mem first (highest first) while test accuracy stays.",
                    model_label(specs, i)
                ),
                &panels,
                2,
                (480, 320),
            )?);
        }
    }
    Ok(figs)
}

/// The columns of `scores.csv` after `model, layer, unit`.
const SCORE_COLUMNS: [&str; 7] = [
    "ablation",
    "ablation_clean",
    "data_ipr",
    "attribution",
    "attribution_true",
    "gamma",
    "ipr",
];

/// One row of `scores.csv`: the model and its unit's seven scores.
type ScoreRow = (usize, [Option<f64>; 7]);

/// `scores.csv` (written by `grokscope scores`), validated: per row the model and the seven
/// scores (`None` where empty); `None` when the file does not exist.
fn read_scores(path: &Path) -> Result<Option<Vec<ScoreRow>>> {
    use crate::error::Error;
    let head = format!("model,layer,unit,{}", SCORE_COLUMNS.join(","));
    let Some(text) = read_csv(path, &head)? else {
        return Ok(None);
    };
    let mut rows = Vec::new();
    for (i, l) in text.lines().skip(1).enumerate() {
        let f: Vec<&str> = l.split(',').collect();
        let bad = |why: &str| Error::csv(path, i + 2, why.to_string());
        if f.len() != 3 + SCORE_COLUMNS.len() {
            return Err(bad("not 10 fields"));
        }
        let model = f[0].parse().map_err(|_| bad("the model is not an index"))?;
        let mut v = [None; 7];
        for (o, s) in v.iter_mut().zip(&f[3..]) {
            if !s.is_empty() {
                *o = Some(
                    s.parse::<f64>()
                        .ok()
                        .filter(|x| x.is_finite())
                        .ok_or_else(|| bad("a score is not a finite number"))?,
                );
            }
        }
        rows.push((model, v));
    }
    Ok(Some(rows))
}

/// The figure `scores-model<i>` from `scores.csv`: each score against the training-set
/// ablation selectivity and, with BatchNorm, |γ| against each score (the paper's Fig. 5).
pub fn score_figures(
    run: &RunDir,
    out: &Path,
    name: &str,
    specs: &[ModelSpec],
    shown: &[usize],
) -> Result<Vec<FigureFile>> {
    let Some(rows) = read_scores(&run.analysis_path(crate::rundir::AnalysisFile::Scores))? else {
        return Ok(Vec::new());
    };
    let (abl, gamma) = (1, 5);
    let mut figs = Vec::new();
    for &i in shown {
        let mine: Vec<&[Option<f64>; 7]> = rows.iter().filter(|r| r.0 == i).map(|r| &r.1).collect();
        if mine.is_empty() {
            continue;
        }
        let pairs = |x: usize, y: usize| -> Vec<(f64, f64)> {
            mine.iter().filter_map(|v| Some((v[x]?, v[y]?))).collect()
        };
        let mut panels = Vec::new();
        for (y, desc) in [
            (2, "data-IPR"),
            (3, "attribution"),
            (4, "attribution (true labels)"),
            (6, "Fourier IPR"),
        ] {
            let points = pairs(abl, y);
            if !points.is_empty() {
                panels.push(Panel::Scatter(Scatter {
                    title: format!("{desc} against ablation selectivity"),
                    x_desc: "ablation_clean",
                    y_desc: desc,
                    label: "unit".into(),
                    points,
                }));
            }
        }
        for (x, desc) in [(1, "ablation_clean"), (2, "data_ipr"), (3, "attribution")] {
            let points: Vec<(f64, f64)> = pairs(x, gamma)
                .into_iter()
                .map(|(a, g)| (a, g.abs()))
                .collect();
            if !points.is_empty() {
                panels.push(Panel::Scatter(Scatter {
                    title: format!("BatchNorm |γ| against {desc}"),
                    x_desc: desc,
                    y_desc: "|γ| (BatchNorm scale)",
                    label: "unit".into(),
                    points,
                }));
            }
        }
        if panels.is_empty() {
            continue;
        }
        figs.push(save_figure(
            out,
            &format!("scores-model{i}"),
            &format!("Scores of the hidden units, {}", model_label(specs, i)),
            &format!(
                "{name}: every hidden unit of {} by the scores of grokscope scores (analysis/scores.csv; docs/REAL_DATA.md): each score against the training-set ablation selectivity (the A_mem a unit carries beyond the clean accuracy), and with BatchNorm its |γ| against the scores (the paper's Fig. 5 on these units).",
                model_label(specs, i)
            ),
            &panels,
            2,
            (480, 340),
        )?);
    }
    Ok(figs)
}
