//! The report's figure of a dense dataset: corrupted training examples of a model, each with
//! its given (corrupted) label, its true label and the trained network's prediction — images
//! as heat maps, feature vectors as lines.

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

/// Fashion-MNIST's class names (Xiao et al. 2017), by label.
const FASHION: [&str; 10] = [
    "T-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "boot",
];

fn class(dataset: &str, label: u32) -> String {
    match (dataset, FASHION.get(label as usize)) {
        ("fashion-mnist", Some(n)) => format!("{label} {n}"),
        _ => label.to_string(),
    }
}

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
            let c = |l: u32| class(&d.name, l);
            format!(
                "given {} · true {} · predicted {}",
                c(labels.labels[k]),
                c(d.train_true[k]),
                c(preds[k])
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
                "{name}: the first {} corrupted training examples of {} ({}), each with the label it was trained on (given), its true label and the trained network's prediction. A prediction equal to the given label is a memorized example; equal to the true label, an inverted one.",
                picked.len(),
                model_label(specs, i),
                s.split.describe()
            ),
            &panels,
            4,
            (330, 300),
        )?);
    }
    Ok(figs)
}
