//! One figure: panels drawn side by side, saved as PNG and SVG, and the small helpers every
//! report figure shares.

use super::grid::{Heatmap, PhaseGrid};
use super::plot::*;
use super::text::{Crisp, TextMode};
use crate::config::{ModelSpec, FLEET_AXES};
use crate::error::{Error, Result};
use image::ImageEncoder;
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::Path;

/// Models shown per figure at most (fleets can be large).
pub const MAX_MODELS_SHOWN: usize = 8;
/// Width and height of one panel in pixels.
pub const PANEL: (u32, u32) = (640, 420);

/// One panel of a figure.
pub enum Panel<'a> {
    Line(LineChart<'a>),
    Bar(BarChart<'a>),
    Heat(Heatmap<'a>),
    Scatter(Scatter<'a>),
    Phase(PhaseGrid<'a>),
}

impl Panel<'_> {
    fn draw<DB: DrawingBackend>(&self, a: &DrawingArea<DB, Shift>) -> R {
        match self {
            Panel::Line(p) => p.draw(a).map(|_| ()),
            Panel::Bar(p) => p.draw(a).map(|_| ()),
            Panel::Heat(p) => p.draw(a),
            Panel::Scatter(p) => p.draw(a).map(|_| ()),
            Panel::Phase(p) => p.draw(a),
        }
    }
}

/// A figure written to `NAME.png` and `NAME.svg`.
#[derive(Clone, Debug)]
pub struct FigureFile {
    pub name: String,
    pub title: String,
    pub caption: String,
    pub width: u32,
    pub height: u32,
}

fn render<DB: DrawingBackend>(root: DrawingArea<DB, Shift>, panels: &[Panel], cols: usize) -> R {
    root.fill(&WHITE).map_err(pe)?;
    let rows = panels.len().div_ceil(cols);
    let areas = root.split_evenly((rows, cols));
    for (a, p) in areas.iter().zip(panels) {
        p.draw(a)?;
    }
    root.present().map_err(pe)
}

/// Draws `panels` (in rows of `cols`, each `panel` pixels) as `dir/name.png` and `.svg`.
pub fn save_figure(
    dir: &Path,
    name: &str,
    title: &str,
    caption: &str,
    panels: &[Panel],
    cols: usize,
    panel: (u32, u32),
) -> Result<FigureFile> {
    let cols = cols.clamp(1, panels.len().max(1));
    let rows = panels.len().div_ceil(cols).max(1);
    let size = (panel.0 * cols as u32, panel.1 * rows as u32);
    let png = dir.join(format!("{name}.png"));
    let svg = dir.join(format!("{name}.svg"));
    let fail = |why: String| Error::Plot {
        figure: name.to_string(),
        why,
    };
    // Drawn in memory and written by us, so that a full disk is an I/O error naming the file
    // (not a backend's Debug dump) and no truncated figure is left behind.
    let mut pixels = vec![0u8; size.0 as usize * size.1 as usize * 3];
    render(
        Crisp {
            inner: BitMapBackend::with_buffer(&mut pixels, size),
            mode: TextMode::Raster,
        }
        .into_drawing_area(),
        panels,
        cols,
    )
    .map_err(fail)?;
    let mut bytes = Vec::new();
    image::codecs::png::PngEncoder::new(&mut bytes)
        .write_image(&pixels, size.0, size.1, image::ColorType::Rgb8)
        .map_err(|e| fail(format!("cannot encode the PNG: {e}")))?;
    std::fs::write(&png, &bytes).map_err(|e| Error::io(&png, e))?;
    let mut text = String::new();
    render(
        Crisp {
            inner: SVGBackend::with_string(&mut text, size),
            mode: TextMode::Delegate,
        }
        .into_drawing_area(),
        panels,
        cols,
    )
    .map_err(fail)?;
    std::fs::write(&svg, text).map_err(|e| Error::io(&svg, e))?;
    Ok(FigureFile {
        name: name.to_string(),
        title: title.to_string(),
        caption: caption.to_string(),
        width: size.0,
        height: size.1,
    })
}

/// A model's label in captions: its ξ and weight decay, and every other fleet axis
/// (`config::FLEET_AXES`) that differs between the models of the fleet or is not zero
/// (dropout).
pub fn model_label(specs: &[ModelSpec], i: usize) -> String {
    let s = &specs[i];
    let parts: Vec<String> = FLEET_AXES
        .iter()
        .filter(|a| {
            let v = (a.value)(s);
            matches!(a.field, "corruption" | "weight_decay")
                || (a.field == "dropout" && v != "0")
                || specs.iter().any(|o| (a.value)(o) != v)
        })
        .map(|a| format!("{}={}", a.short, (a.value)(s)))
        .collect();
    format!("model {i} ({})", parts.join(", "))
}

/// A model's short label in legends: the fleet axes whose values differ between the models
/// of the fleet (`wd=5`), or `model i` when none does.
pub fn short_label(specs: &[ModelSpec], i: usize) -> String {
    let s = &specs[i];
    let parts: Vec<String> = FLEET_AXES
        .iter()
        .filter(|a| specs.iter().any(|o| (a.value)(o) != (a.value)(s)))
        .map(|a| format!("{}={}", a.short, (a.value)(s)))
        .collect();
    if parts.is_empty() {
        format!("model {i}")
    } else {
        parts.join(", ")
    }
}

pub fn line(label: &str, color: usize, dash: Dash, points: Vec<(f64, f64)>) -> Line {
    Line {
        label: label.to_string(),
        color: PALETTE[color % PALETTE.len()],
        dash,
        points,
    }
}

/// Averages consecutive rows into at most `max` rows; labels give the first row of each bin.
pub fn bin_rows(rows: &[Vec<f64>], max: usize) -> (Vec<Vec<f64>>, Vec<String>) {
    if rows.is_empty() {
        return (vec![vec![0.0]], vec!["0".into()]);
    }
    let bins = rows.len().min(max);
    let mut out = Vec::with_capacity(bins);
    let mut labels = Vec::with_capacity(bins);
    for b in 0..bins {
        let (lo, hi) = (b * rows.len() / bins, (b + 1) * rows.len() / bins);
        let w = rows[0].len();
        let mut acc = vec![0.0; w];
        for r in &rows[lo..hi] {
            for (a, v) in acc.iter_mut().zip(r) {
                *a += v;
            }
        }
        acc.iter_mut().for_each(|a| *a /= (hi - lo) as f64);
        out.push(acc);
        labels.push(lo.to_string());
    }
    (out, labels)
}
