//! The progress-measure figure of a run (SCIENCE.md §10): per model, the full, restricted
//! and excluded loss with their clean/corrupted split, and the Gini coefficients of the
//! token weights' Fourier norms with the share of frequencies that are key.

use super::curves::steps_line;
use super::figure::{line, model_label, save_figure, FigureFile, Panel, PANEL};
use super::plot::*;
use crate::config::ModelSpec;
use crate::error::Result;
use crate::metrics::fourier::n_freqs;
use crate::metrics::Record;
use crate::model::Loss;
use std::path::Path;

/// A curve: label, colour, stroke, value.
type Curve<'a> = (&'a str, usize, Dash, &'a dyn Fn(&Record) -> Option<f64>);

/// Where a figure goes and what it shows.
pub(super) struct Ctx<'a> {
    pub out: &'a Path,
    pub name: &'a str,
    pub specs: &'a [ModelSpec],
    pub shown: &'a [usize],
    pub log_x: bool,
    pub step: &'a str,
    pub from: &'a str,
    /// The loss the network was trained with: the curves are in it (MSE as its own loss,
    /// softmax cross-entropy of MSE outputs says little).
    pub loss: Loss,
    pub p: usize,
}

/// The figure, or `None` when no evaluation of the shown models took the measures.
pub(super) fn figure(c: &Ctx, history: &[Vec<Record>]) -> Result<Option<FigureFile>> {
    let any = c.shown.iter().any(|&i| {
        history[i]
            .iter()
            .any(|r| r.restricted_ce.is_some() || r.gini_embed.is_some())
    });
    if !any {
        return Ok(None);
    }
    let mse = c.loss == Loss::Mse;
    let pick = |ce: Option<f64>, m: Option<f64>| if mse { m } else { ce };
    let losses = c
        .shown
        .iter()
        .any(|&i| history[i].iter().any(|r| r.restricted_ce.is_some()));
    let mut panels = Vec::new();
    for &i in c.shown {
        let h = &history[i];
        let series: [Curve; 7] = [
            ("full, all pairs", TEST, Dash::Solid, &|r| {
                pick(r.full_ce, r.full_mse)
            }),
            ("restricted, all pairs", INV, Dash::Solid, &|r| {
                pick(r.restricted_ce, r.restricted_mse)
            }),
            ("excluded, train", MEM, Dash::Solid, &|r| {
                pick(r.excluded_ce, r.excluded_mse)
            }),
            ("restricted, corrupted", INV, Dash::Dashed, &|r| {
                pick(r.restricted_ce_corrupt, r.restricted_mse_corrupt)
            }),
            ("excluded, corrupted", MEM, Dash::Dashed, &|r| {
                pick(r.excluded_ce_corrupt, r.excluded_mse_corrupt)
            }),
            ("restricted, clean", INV, Dash::Dotted, &|r| {
                pick(r.restricted_ce_clean, r.restricted_mse_clean)
            }),
            ("excluded, clean", MEM, Dash::Dotted, &|r| {
                pick(r.excluded_ce_clean, r.excluded_mse_clean)
            }),
        ];
        let lines: Vec<Line> = series
            .iter()
            .map(|(l, col, dash, f)| {
                line(l, *col, *dash, steps_line(h, |r| f(r).filter(|x| *x > 0.0)))
            })
            .filter(|l| !l.points.is_empty())
            .collect();
        if losses {
            panels.push(Panel::Line(LineChart {
                title: format!("progress measures, {}", model_label(c.specs, i)),
                x_desc: c.step,
                y_desc: if mse {
                    "MSE (f64)"
                } else {
                    "cross-entropy (f64)"
                },
                lines,
                log_x: c.log_x,
                log_y: true,
                y_range: None,
                marks: vec![],
            }));
        }
        let k = n_freqs(c.p).max(1) as f64;
        let mut lines = vec![
            line(
                "Gini, embedding",
                0,
                Dash::Solid,
                steps_line(h, |r| r.gini_embed),
            ),
            line(
                "Gini, read-out",
                2,
                Dash::Dashed,
                steps_line(h, |r| r.gini_unembed),
            ),
        ];
        if losses {
            lines.push(line(
                "key frequencies / (p−1)/2",
                5,
                Dash::Dotted,
                steps_line(h, |r| r.restricted_ce.map(|_| r.key_freqs.len() as f64 / k)),
            ));
        }
        panels.push(Panel::Line(LineChart {
            title: format!("Fourier sparsity, model {i}"),
            x_desc: c.step,
            y_desc: "Gini / fraction",
            lines,
            log_x: c.log_x,
            log_y: false,
            y_range: Some((0.0, 1.0)),
            marks: vec![],
        }));
    }
    let lname = if mse {
        "MSE, the loss it was trained with (the cross-entropy columns are in metrics.csv too)"
    } else {
        "cross-entropy"
    };
    let caption = format!(
        "{}: Nanda et al.'s progress measures, in {lname}, computed in f64. Left: the full loss on all pairs against the true labels a∘b; the restricted loss (the outputs projected, per class, onto the cos/sin directions of the key frequencies in a ± b, plus the mean of the rest) on all pairs against the true labels; the excluded loss (those components removed) on the training pairs against the labels trained on; dashed and dotted, the restricted and excluded loss on the corrupted and on the clean training examples (their training labels). A restricted loss below the full one: the key-frequency circuit computes the rule better than the whole network, whose other components carry memorized labels. Right: Gini coefficients of the Fourier-component norms of the embedding and the read-out (near 1: one frequency carries the norm), and the number of key frequencies as a fraction of (p−1)/2; with no key frequency the restricted outputs are the mean output, a constant prediction. The rule for key frequencies and the losses' labels are in docs/PROGRESS.md.{}",
        c.name, c.from
    );
    let (caption, cols) = if losses {
        (caption, 2)
    } else {
        (format!("{}: the Gini coefficients of the Fourier-component norms of the embedding and the read-out (near 1: one frequency carries the norm). This task has no restricted or excluded loss: only addition and subtraction have Fourier directions, and only for p ≥ 3 (docs/PROGRESS.md).{}", c.name, c.from), 1)
    };
    save_figure(
        c.out,
        "progress",
        "Progress measures",
        &caption,
        &panels,
        cols,
        PANEL,
    )
    .map(Some)
}
