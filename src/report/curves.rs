//! Curves of runs as figure panels and as interactive charts: a model's accuracies, several
//! models or runs overlaid (test accuracy and A_mem), losses and mean IPR.

use super::figure::{line, Panel};
use super::html::{Chart, Series};
use super::plot::*;
use crate::config::StepAxis;
use crate::metrics::Record;

/// What a report or comparison may be asked beyond its runs' configs.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// The step axis of the curves; `None`: the run's `report.step_axis` (`auto`).
    pub step_axis: Option<StepAxis>,
}

pub(crate) fn steps_line(h: &[Record], f: impl Fn(&Record) -> Option<f64>) -> Vec<(f64, f64)> {
    h.iter()
        .filter_map(|r| f(r).map(|y| (r.step as f64, y)))
        .collect()
}

/// The five accuracies of one model, each in its colour and stroke.
pub(crate) fn accuracy_lines(h: &[Record]) -> Vec<Line> {
    vec![
        line(
            "train",
            TRAIN,
            Dash::Solid,
            steps_line(h, |r| Some(r.train_acc)),
        ),
        line(
            "test",
            TEST,
            Dash::Solid,
            steps_line(h, |r| Some(r.test_acc)),
        ),
        line("A_mem", MEM, Dash::Dashed, steps_line(h, |r| r.mem_acc)),
        line("A_inv", INV, Dash::Dashed, steps_line(h, |r| r.inv_acc)),
        line(
            "A_clean",
            CLEAN,
            Dash::Dotted,
            steps_line(h, |r| r.clean_acc),
        ),
    ]
}

/// Test accuracy (solid) and A_mem (dashed) of several curves in one panel, and their
/// training losses in a second, one colour per curve.
pub(crate) fn overlay_panels<'a>(
    curves: &[(String, &[Record])],
    log_x: bool,
    step: &'a str,
) -> Vec<Panel<'a>> {
    let mut acc = Vec::new();
    let mut loss = Vec::new();
    for (k, (label, h)) in curves.iter().enumerate() {
        acc.push(line(
            &format!("{label}: test"),
            k,
            Dash::Solid,
            steps_line(h, |r| Some(r.test_acc)),
        ));
        acc.push(line(
            &format!("{label}: A_mem"),
            k,
            Dash::Dashed,
            steps_line(h, |r| r.mem_acc),
        ));
        loss.push(line(
            label,
            k,
            Dash::Solid,
            steps_line(h, |r| Some(r.train_loss)),
        ));
    }
    vec![
        Panel::Line(LineChart {
            title: "test accuracy and A_mem".into(),
            x_desc: step,
            y_desc: "accuracy",
            lines: acc,
            log_x,
            log_y: false,
            y_range: Some((-0.02, 1.02)),
            marks: vec![],
        }),
        Panel::Line(LineChart {
            title: "training loss".into(),
            x_desc: step,
            y_desc: "loss",
            lines: loss,
            log_x,
            log_y: true,
            y_range: None,
            marks: vec![],
        }),
    ]
}

fn xs(h: &[Record]) -> Vec<f64> {
    h.iter().map(|r| r.step as f64).collect()
}

fn series(
    label: &str,
    color: usize,
    dash: Dash,
    h: &[Record],
    f: impl Fn(&Record) -> Option<f64>,
) -> Series {
    Series {
        label: label.to_string(),
        color: PALETTE[color % PALETTE.len()],
        dash,
        y: h.iter().map(f).collect(),
    }
}

/// The five accuracies of one model.
pub(crate) fn accuracy_chart(title: String, h: &[Record], log_x: bool) -> Chart {
    Chart {
        title,
        x_label: "step".into(),
        y_label: "accuracy".into(),
        x: xs(h),
        series: vec![
            series("train", TRAIN, Dash::Solid, h, |r| Some(r.train_acc)),
            series("test", TEST, Dash::Solid, h, |r| Some(r.test_acc)),
            series("A_mem", MEM, Dash::Dashed, h, |r| r.mem_acc),
            series("A_inv", INV, Dash::Dashed, h, |r| r.inv_acc),
            series("A_clean", CLEAN, Dash::Dotted, h, |r| r.clean_acc),
        ],
        log_x,
        log_y: false,
        y_range: Some((-0.02, 1.02)),
    }
}

/// Losses of one model (log y).
pub(crate) fn loss_chart(title: String, h: &[Record], log_x: bool) -> Chart {
    Chart {
        title,
        x_label: "step".into(),
        y_label: "loss".into(),
        x: xs(h),
        series: vec![
            series("train", TRAIN, Dash::Solid, h, |r| Some(r.train_loss)),
            series("test", TEST, Dash::Solid, h, |r| Some(r.test_loss)),
            series("train batch", 5, Dash::Dashed, h, |r| r.batch_loss),
        ],
        log_x,
        log_y: true,
        y_range: None,
    }
}

/// Values of several curves on the union of their steps (`None` where a curve has no
/// evaluation).
fn union(curves: &[(String, &[Record])]) -> Vec<u64> {
    let mut steps: Vec<u64> = curves
        .iter()
        .flat_map(|c| c.1.iter().map(|r| r.step))
        .collect();
    steps.sort_unstable();
    steps.dedup();
    steps
}

fn aligned(steps: &[u64], h: &[Record], f: impl Fn(&Record) -> Option<f64>) -> Vec<Option<f64>> {
    let mut out = Vec::with_capacity(steps.len());
    let mut j = 0;
    for &s in steps {
        while j < h.len() && h[j].step < s {
            j += 1;
        }
        out.push(h.get(j).filter(|r| r.step == s).and_then(&f));
    }
    out
}

/// Curves overlaid, one colour per curve: `what` = test accuracy and A_mem, mean IPR, or
/// training loss.
pub(crate) fn overlay_chart(
    title: &str,
    what: Overlay,
    curves: &[(String, &[Record])],
    log_x: bool,
) -> Chart {
    let steps = union(curves);
    let mut out = Vec::new();
    for (k, (label, h)) in curves.iter().enumerate() {
        let color = PALETTE[k % PALETTE.len()];
        let mut push = |l: String, dash, f: &dyn Fn(&Record) -> Option<f64>| {
            out.push(Series {
                label: l,
                color,
                dash,
                y: aligned(&steps, h, f),
            })
        };
        match what {
            Overlay::Accuracy => {
                push(format!("{label}: test"), Dash::Solid, &|r| Some(r.test_acc));
                push(format!("{label}: A_mem"), Dash::Dashed, &|r| r.mem_acc);
            }
            Overlay::Ipr => push(label.clone(), Dash::Solid, &|r| r.mean_ipr),
            Overlay::Loss => push(label.clone(), Dash::Solid, &|r| Some(r.train_loss)),
        }
    }
    let (y_label, log_y, y_range) = match what {
        Overlay::Accuracy => ("accuracy", false, Some((-0.02, 1.02))),
        Overlay::Ipr => ("mean IPR", false, Some((0.0, 1.0))),
        Overlay::Loss => ("training loss", true, None),
    };
    Chart {
        title: title.to_string(),
        x_label: "step".into(),
        y_label: y_label.into(),
        x: steps.iter().map(|&s| s as f64).collect(),
        series: out,
        log_x,
        log_y,
        y_range,
    }
}

/// What an overlay chart shows.
#[derive(Clone, Copy)]
pub(crate) enum Overlay {
    Accuracy,
    Ipr,
    Loss,
}
