//! Cell charts: heatmaps with a labelled colour bar, and phase diagrams in the paper's style
//! (one colour per phase, its code written in every cell, a corner mark where seeds disagree
//! that leaves the colour alone; α upward as in the text grid).

use super::plot::{pe, tick_str, DESC, LABEL, TITLE};
use crate::metrics::Phase;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// A sequential colour map from 0 (light) to 1 (dark blue).
pub fn seq_color(v: f64) -> RGBColor {
    let v = if v.is_finite() {
        v.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let stops = [
        (255.0, 255.0, 229.0),
        (65.0, 182.0, 196.0),
        (8.0, 29.0, 88.0),
    ];
    let (a, b, t) = if v < 0.5 {
        (stops[0], stops[1], v * 2.0)
    } else {
        (stops[1], stops[2], v * 2.0 - 1.0)
    };
    let mix = |x: f64, y: f64| (x + (y - x) * t).round() as u8;
    RGBColor(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

/// Black or white, whichever reads better on `c`.
fn ink_on(c: RGBColor) -> RGBColor {
    let l = 0.299 * c.0 as f64 + 0.587 * c.1 as f64 + 0.114 * c.2 as f64;
    if l > 140.0 {
        BLACK
    } else {
        WHITE
    }
}

fn left(size: f64) -> TextStyle<'static> {
    ("sans-serif", size)
        .into_font()
        .color(&BLACK)
        .pos(Pos::new(HPos::Left, VPos::Center))
}

fn centred(size: f64, color: RGBColor) -> TextStyle<'static> {
    ("sans-serif", size)
        .into_font()
        .color(&color)
        .pos(Pos::new(HPos::Center, VPos::Center))
}

/// The label of the cell centred on axis coordinate `v` (cells are unit wide, centred on
/// 0, 1, 2 …); empty between cells.
fn label_at(labels: &[String], v: f64) -> String {
    let i = v.round();
    if (v - i).abs() > 0.01 || i < 0.0 {
        return String::new();
    }
    labels.get(i as usize).cloned().unwrap_or_default()
}

/// A cell chart's frame: unit cells, labels at cell centres, no grid.
fn cells<'a, DB: DrawingBackend + 'a>(
    area: &DrawingArea<DB, Shift>,
    x_desc: &str,
    y_desc: &str,
    xl: &[String],
    yl: &[String],
) -> Result<
    ChartContext<
        'a,
        DB,
        Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
    >,
    String,
> {
    let (nx, ny) = (xl.len().max(1), yl.len().max(1));
    // As many labels as fit without touching (plotters then labels every k-th cell).
    let (w, h) = area.dim_in_pixel();
    let widest = xl
        .iter()
        .map(|l| super::text::advance(l, LABEL, false))
        .fold(0.0, f64::max);
    let fit_x = ((w as f64 - 90.0) / (widest + 12.0)).floor().max(2.0) as usize;
    let fit_y = ((h as f64 - 90.0) / (LABEL + 6.0)).floor().max(2.0) as usize;
    let mut c = ChartBuilder::on(area)
        .margin(6)
        .margin_right(12)
        .x_label_area_size(46)
        .y_label_area_size(66)
        .build_cartesian_2d(-0.5..nx as f64 - 0.5, -0.5..ny as f64 - 0.5)
        .map_err(pe)?;
    c.configure_mesh()
        .disable_mesh()
        .x_desc(x_desc)
        .y_desc(y_desc)
        .label_style(("sans-serif", LABEL))
        .axis_desc_style(("sans-serif", DESC))
        .x_labels(nx.min(fit_x).clamp(2, 24))
        .y_labels(ny.min(fit_y).clamp(2, 24))
        .x_label_formatter(&|v| label_at(xl, *v))
        .y_label_formatter(&|v| label_at(yl, *v))
        .draw()
        .map_err(pe)?;
    Ok(c)
}

/// A heatmap of `values[row][col]` (rows drawn bottom-up), values in [0, 1] coloured by
/// [`seq_color`], optionally written in their cells, with a colour bar titled `bar`.
pub struct Heatmap<'a> {
    pub title: String,
    pub x_desc: &'a str,
    pub y_desc: &'a str,
    pub x_labels: Vec<String>,
    pub y_labels: Vec<String>,
    pub values: Vec<Vec<f64>>,
    pub annotate: bool,
    pub bar: String,
}

impl Heatmap<'_> {
    pub fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> super::plot::R {
        let area = area
            .titled(&self.title, ("sans-serif", TITLE))
            .map_err(pe)?;
        let (area, bar) = area.split_horizontally(area.dim_in_pixel().0 as i32 - 78);
        colorbar(&bar, &self.bar)?;
        let mut c = cells(
            &area,
            self.x_desc,
            self.y_desc,
            &self.x_labels,
            &self.y_labels,
        )?;
        c.draw_series(self.values.iter().enumerate().flat_map(|(r, row)| {
            row.iter().enumerate().map(move |(col, &v)| {
                let color = if v.is_finite() {
                    seq_color(v)
                } else {
                    RGBColor(235, 235, 235)
                };
                let (x, y) = (col as f64, r as f64);
                Rectangle::new([(x - 0.5, y - 0.5), (x + 0.5, y + 0.5)], color.filled())
            })
        }))
        .map_err(pe)?;
        if self.annotate {
            for (r, row) in self.values.iter().enumerate() {
                for (col, &v) in row.iter().enumerate() {
                    if v.is_finite() {
                        c.draw_series(std::iter::once(Text::new(
                            format!("{v:.2}"),
                            (col as f64, r as f64),
                            centred(LABEL - 1.0, ink_on(seq_color(v))),
                        )))
                        .map_err(pe)?;
                    }
                }
            }
        }
        Ok(())
    }
}

/// A vertical colour scale from 0 to 1, titled along its side.
fn colorbar<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, title: &str) -> super::plot::R {
    let (_, h) = area.dim_in_pixel();
    let (top, bottom) = (16i32, h as i32 - 56);
    let steps = 50;
    for i in 0..steps {
        let y0 = bottom - (bottom - top) * i / steps;
        let y1 = bottom - (bottom - top) * (i + 1) / steps;
        area.draw(&Rectangle::new(
            [(30, y1), (44, y0)],
            seq_color((i as f64 + 0.5) / steps as f64).filled(),
        ))
        .map_err(pe)?;
    }
    area.draw(&Rectangle::new(
        [(30, top), (44, bottom)],
        RGBColor(90, 90, 90).stroke_width(1),
    ))
    .map_err(pe)?;
    for (v, y) in [("0", bottom), ("0.5", (top + bottom) / 2), ("1", top)] {
        area.draw(&Text::new(v, (48, y), left(LABEL - 1.0)))
            .map_err(pe)?;
    }
    area.draw(&Text::new(
        title.to_string(),
        (14, (top + bottom) / 2),
        ("sans-serif", LABEL - 1.0)
            .into_font()
            .transform(FontTransform::Rotate270)
            .color(&BLACK)
            .pos(Pos::new(HPos::Center, VPos::Center)),
    ))
    .map_err(pe)
}

/// The colour of a phase in figures.
pub fn phase_color(phase: Phase) -> RGBColor {
    let (r, g, b) = phase.rgb();
    RGBColor(r, g, b)
}

/// An α × ξ (or weight decay × ξ) grid coloured by phase, the phase's code in every cell, and a corner mark where
/// the seeds disagree on the majority phase.
pub struct PhaseGrid<'a> {
    pub title: String,
    /// The row axis's name and values (upward).
    pub y_desc: &'a str,
    pub rows: &'a [String],
    pub xis: &'a [String],
    /// `(row index, xi index, phase, agreement)`.
    pub cells: Vec<(usize, usize, Phase, f64)>,
}

impl PhaseGrid<'_> {
    pub fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> super::plot::R {
        let area = area
            .titled(&self.title, ("sans-serif", TITLE))
            .map_err(pe)?;
        let (main, legend) = area.split_horizontally(area.dim_in_pixel().0 as i32 - 190);
        let xl: Vec<String> = self.xis.iter().map(|s| tick_str(s)).collect();
        let yl: Vec<String> = self.rows.iter().map(|s| tick_str(s)).collect();
        let mut c = cells(&main, "corruption fraction ξ", self.y_desc, &xl, &yl)?;
        // Cell size in pixels decides the code's size.
        let (p0, p1) = (c.backend_coord(&(0.0, 0.0)), c.backend_coord(&(1.0, 1.0)));
        let cell = (p1.0 - p0.0).abs().min((p1.1 - p0.1).abs());
        let code_size = (cell as f64 * 0.45).clamp(7.0, 18.0);
        for (a, x, phase, agree) in &self.cells {
            let col = phase_color(*phase);
            let (x, y) = (*x as f64, *a as f64);
            c.draw_series(std::iter::once(Rectangle::new(
                [(x - 0.5, y - 0.5), (x + 0.5, y + 0.5)],
                col.filled(),
            )))
            .map_err(pe)?;
            c.draw_series(std::iter::once(Rectangle::new(
                [(x - 0.5, y - 0.5), (x + 0.5, y + 0.5)],
                WHITE.stroke_width(1),
            )))
            .map_err(pe)?;
            if cell >= 12 {
                c.draw_series(std::iter::once(Text::new(
                    phase.code(),
                    (x, y),
                    centred(code_size, ink_on(col)),
                )))
                .map_err(pe)?;
            }
            if *agree < 1.0 {
                // A black corner triangle outlined in white: the hue stays the phase's.
                let tri = vec![(x + 0.5, y + 0.5), (x + 0.12, y + 0.5), (x + 0.5, y + 0.12)];
                c.draw_series(std::iter::once(Polygon::new(tri.clone(), BLACK.filled())))
                    .map_err(pe)?;
                // Outlined in white: visible on a Diverged (black) cell too.
                c.draw_series(std::iter::once(PathElement::new(
                    vec![tri[1], tri[2]],
                    WHITE.stroke_width(2),
                )))
                .map_err(pe)?;
            }
        }
        legend.fill(&WHITE).map_err(pe)?;
        let row = 24;
        legend
            .draw(&Text::new("phase", (8, 18), ("sans-serif", DESC)))
            .map_err(pe)?;
        for (i, p) in Phase::ALL.iter().enumerate() {
            let y = 44 + row * i as i32;
            let col = phase_color(*p);
            legend
                .draw(&Rectangle::new([(8, y), (34, y + 19)], col.filled()))
                .map_err(pe)?;
            legend
                .draw(&Text::new(
                    p.code(),
                    (21, y + 10),
                    centred(LABEL - 2.0, ink_on(col)),
                ))
                .map_err(pe)?;
            legend
                .draw(&Text::new(p.name(), (40, y + 10), left(LABEL - 1.0)))
                .map_err(pe)?;
        }
        let y = 44 + row * Phase::ALL.len() as i32 + 6;
        legend
            .draw(&Rectangle::new(
                [(8, y), (34, y + 19)],
                RGBColor(200, 200, 200).filled(),
            ))
            .map_err(pe)?;
        legend
            .draw(&Polygon::new(
                vec![(34, y), (24, y), (34, y + 10)],
                BLACK.filled(),
            ))
            .map_err(pe)?;
        legend
            .draw(&Text::new(
                "seeds disagree",
                (40, y + 10),
                left(LABEL - 1.0),
            ))
            .map_err(pe)?;
        Ok(())
    }
}
