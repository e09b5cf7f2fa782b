//! Plot primitives over `plotters`, generic over the drawing backend so that every figure is
//! drawn once as PNG and once as SVG. Fonts: DejaVu Sans, embedded in the binary.

use crate::metrics::Phase;
use plotters::coord::Shift;
use plotters::prelude::*;
use std::sync::Once;

pub type R = std::result::Result<(), String>;

/// A drawing error as one line (plotters' `Display`, never a `Debug` dump).
pub fn pe<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}

static FONT: Once = Once::new();

/// Registers the embedded font as `sans-serif` (plotters' text needs a registered font).
pub fn init_font() {
    FONT.call_once(|| {
        let _ = plotters::style::register_font(
            "sans-serif",
            FontStyle::Normal,
            dejavu::sans::regular(),
        );
        let _ = plotters::style::register_font("sans-serif", FontStyle::Bold, dejavu::sans::bold());
    });
}

/// A categorical palette (colour-blind friendly, Okabe–Ito).
pub const PALETTE: [RGBColor; 8] = [
    RGBColor(0, 114, 178),
    RGBColor(213, 94, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(230, 159, 0),
    RGBColor(86, 180, 233),
    RGBColor(120, 120, 120),
    RGBColor(0, 0, 0),
];

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

/// An axis tick: integers without decimals, other values with up to three.
pub fn tick(v: f64) -> String {
    if v == v.round() && v.abs() < 1e15 {
        format!("{v:.0}")
    } else {
        let s = format!("{v:.3}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// A numeric label shortened (`0.30000` → `0.3`); other text unchanged.
pub fn tick_str(x: &str) -> String {
    x.parse::<f64>().map(tick).unwrap_or_else(|_| x.to_string())
}

/// One line of a line chart.
pub struct Line {
    pub label: String,
    pub color: RGBColor,
    pub dashed: bool,
    pub points: Vec<(f64, f64)>,
}

/// A line chart with optional log y axis and labelled vertical markers.
pub struct LineChart<'a> {
    pub title: String,
    pub x_desc: &'a str,
    pub y_desc: &'a str,
    pub lines: Vec<Line>,
    pub log_y: bool,
    /// Fixed y range (linear axes); `None`: from the data.
    pub y_range: Option<(f64, f64)>,
    pub marks: Vec<(f64, String)>,
}

fn x_extent(lines: &[Line]) -> (f64, f64) {
    let xs = lines.iter().flat_map(|l| l.points.iter().map(|p| p.0));
    let (lo, hi) = xs.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), x| {
        (a.min(x), b.max(x))
    });
    if lo.is_finite() && hi > lo {
        (lo, hi)
    } else if lo.is_finite() {
        (lo - 0.5, lo + 0.5)
    } else {
        (0.0, 1.0)
    }
}

impl LineChart<'_> {
    pub fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> R {
        let (x0, x1) = x_extent(&self.lines);
        let ys: Vec<f64> = self
            .lines
            .iter()
            .flat_map(|l| l.points.iter().map(|p| p.1))
            .filter(|y| y.is_finite() && (!self.log_y || *y > 0.0))
            .collect();
        let (mut y0, mut y1) = ys
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &y| {
                (a.min(y), b.max(y))
            });
        if !y0.is_finite() {
            (y0, y1) = if self.log_y { (1e-3, 1.0) } else { (0.0, 1.0) };
        }
        if let Some(r) = self.y_range {
            (y0, y1) = r;
        }
        // Huge values (a diverging loss near f64::MAX) must not overflow the padded range,
        // and a log axis shows at most 30 decades (plotters' tick search never ends on a
        // range of hundreds of decades); what lies outside is clipped.
        (y0, y1) = (y0.clamp(-1e300, 1e300), y1.clamp(-1e300, 1e300));
        if self.log_y && y1 / y0 > 1e30 {
            y0 = y1 / 1e30;
        }
        if y1 <= y0 {
            y1 = if self.log_y { y0 * 10.0 } else { y0 + 1.0 };
        }
        // A log axis needs at least a decade and a half to show labels.
        let log_y = self.log_y && y1 / y0 >= 30.0;
        let mut b = ChartBuilder::on(area);
        b.caption(&self.title, ("sans-serif", 16))
            .margin(8)
            .x_label_area_size(36)
            .y_label_area_size(56);
        let font = ("sans-serif", 13);
        if log_y {
            let mut c = b
                .build_cartesian_2d(x0..x1, (y0 * 0.8..y1 * 1.25).log_scale())
                .map_err(pe)?;
            c.configure_mesh()
                .x_desc(self.x_desc)
                .y_desc(self.y_desc)
                .label_style(font)
                .y_labels(6)
                .y_label_formatter(&|v| format!("{v:.0e}"))
                .x_label_formatter(&|v| tick(*v))
                .draw()
                .map_err(pe)?;
            self.series(&mut c, y0 * 0.8, y1 * 1.25)
        } else {
            let pad = if self.y_range.is_some() {
                0.0
            } else {
                0.05 * (y1 - y0)
            };
            let mut c = b
                .build_cartesian_2d(x0..x1, (y0 - pad)..(y1 + pad))
                .map_err(pe)?;
            c.configure_mesh()
                .x_desc(self.x_desc)
                .y_desc(self.y_desc)
                .label_style(font)
                .x_label_formatter(&|v| tick(*v))
                .y_label_formatter(&|v| tick(*v))
                .draw()
                .map_err(pe)?;
            self.series(&mut c, y0 - pad, y1 + pad)
        }
    }

    fn series<'a, DB: DrawingBackend + 'a, X, Y>(
        &self,
        c: &mut ChartContext<'a, DB, Cartesian2d<X, Y>>,
        ylo: f64,
        yhi: f64,
    ) -> R
    where
        X: plotters::coord::ranged1d::Ranged<ValueType = f64>,
        Y: plotters::coord::ranged1d::Ranged<ValueType = f64>,
    {
        for (i, (x, label)) in self.marks.iter().enumerate() {
            let col = RGBColor(150, 150, 150);
            c.draw_series(DashedLineSeries::new(
                vec![(*x, ylo), (*x, yhi)],
                4,
                4,
                col.stroke_width(1),
            ))
            .map_err(pe)?;
            let y = if i % 2 == 0 { yhi } else { ylo };
            c.draw_series(std::iter::once(Text::new(
                label.clone(),
                (*x, y),
                ("sans-serif", 11).into_font().color(&RGBColor(90, 90, 90)),
            )))
            .map_err(pe)?;
        }
        for l in &self.lines {
            let style = l.color.stroke_width(2);
            let pts: Vec<(f64, f64)> = l
                .points
                .iter()
                .copied()
                .filter(|p| p.1.is_finite())
                .collect();
            let color = l.color;
            if l.dashed {
                c.draw_series(DashedLineSeries::new(pts, 6, 4, style))
                    .map_err(pe)?
                    .label(&l.label)
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
                    });
            } else {
                c.draw_series(LineSeries::new(pts, style))
                    .map_err(pe)?
                    .label(&l.label)
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
                    });
            }
        }
        if !self.lines.is_empty() {
            legend(c, SeriesLabelPosition::UpperRight)?;
        }
        Ok(())
    }
}

/// Side-by-side bars: one group per x label, one bar per series.
pub struct BarChart<'a> {
    pub title: String,
    pub x_desc: &'a str,
    pub y_desc: &'a str,
    /// Bin edges (n + 1 values) along x.
    pub edges: Vec<f64>,
    pub series: Vec<(String, RGBColor, Vec<f64>)>,
}

impl BarChart<'_> {
    pub fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> R {
        let ymax = self
            .series
            .iter()
            .flat_map(|s| s.2.iter().copied())
            .fold(1.0f64, f64::max);
        let (x0, x1) = (self.edges[0], *self.edges.last().unwrap_or(&1.0));
        let mut c = ChartBuilder::on(area)
            .caption(&self.title, ("sans-serif", 16))
            .margin(8)
            .x_label_area_size(36)
            .y_label_area_size(56)
            .build_cartesian_2d(x0..x1, 0.0..ymax * 1.1)
            .map_err(pe)?;
        c.configure_mesh()
            .x_desc(self.x_desc)
            .y_desc(self.y_desc)
            .label_style(("sans-serif", 13))
            .x_label_formatter(&|v| tick(*v))
            .y_label_formatter(&|v| tick(*v))
            .draw()
            .map_err(pe)?;
        let k = self.series.len().max(1) as f64;
        for (j, (label, color, vals)) in self.series.iter().enumerate() {
            let color = *color;
            c.draw_series(vals.iter().enumerate().map(|(i, &v)| {
                let (a, b) = (self.edges[i], self.edges[i + 1]);
                let w = (b - a) / k;
                Rectangle::new(
                    [(a + w * j as f64, 0.0), (a + w * (j as f64 + 0.9), v)],
                    color.filled(),
                )
            }))
            .map_err(pe)?
            .label(label)
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], color.filled()));
        }
        legend(&mut c, SeriesLabelPosition::UpperRight)
    }
}

/// Draws the legend of a chart's labelled series.
fn legend<'a, DB: DrawingBackend + 'a, X, Y>(
    c: &mut ChartContext<'a, DB, Cartesian2d<X, Y>>,
    position: SeriesLabelPosition,
) -> R
where
    X: plotters::coord::ranged1d::Ranged,
    Y: plotters::coord::ranged1d::Ranged,
{
    c.configure_series_labels()
        .position(position)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 12))
        .draw()
        .map_err(pe)
}

/// A heatmap of `values[row][col]` (rows drawn bottom-up), each cell coloured by
/// `color(value)`, optionally with the value written in it.
pub struct Heatmap<'a> {
    pub title: String,
    pub x_desc: &'a str,
    pub y_desc: &'a str,
    pub x_labels: Vec<String>,
    pub y_labels: Vec<String>,
    pub values: Vec<Vec<f64>>,
    pub annotate: bool,
}

impl Heatmap<'_> {
    pub fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> R {
        let rows = self.values.len();
        let cols = self.values.first().map(|r| r.len()).unwrap_or(0);
        let max = self
            .values
            .iter()
            .flatten()
            .copied()
            .filter(|v| v.is_finite())
            .fold(0.0f64, f64::max);
        let scale = if self.annotate || max == 0.0 {
            1.0
        } else {
            max
        };
        let (area, bar) = area.split_horizontally(area.dim_in_pixel().0 as i32 - 64);
        colorbar(&bar, scale)?;
        let mut c = ChartBuilder::on(&area)
            .caption(&self.title, ("sans-serif", 16))
            .margin(8)
            .x_label_area_size(36)
            .y_label_area_size(56)
            .build_cartesian_2d(
                -0.5..cols.max(1) as f64 - 0.5,
                -0.5..rows.max(1) as f64 - 0.5,
            )
            .map_err(pe)?;
        let (xl, yl) = (&self.x_labels, &self.y_labels);
        c.configure_mesh()
            .disable_mesh()
            .x_desc(self.x_desc)
            .y_desc(self.y_desc)
            .label_style(("sans-serif", 12))
            .x_labels(xl.len().clamp(2, 13))
            .y_labels(yl.len().clamp(2, 13))
            .x_label_formatter(&|v| label_at(xl, *v))
            .y_label_formatter(&|v| label_at(yl, *v))
            .draw()
            .map_err(pe)?;
        c.draw_series(self.values.iter().enumerate().flat_map(|(r, row)| {
            row.iter().enumerate().map(move |(col, &v)| {
                let color = if v.is_finite() {
                    seq_color(v / scale)
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
                        let fg = if v > 0.55 { WHITE } else { BLACK };
                        c.draw_series(std::iter::once(Text::new(
                            format!("{v:.2}"),
                            (col as f64 - 0.2, r as f64 + 0.1),
                            ("sans-serif", 12).into_font().color(&fg),
                        )))
                        .map_err(pe)?;
                    }
                }
            }
        }
        Ok(())
    }
}

/// A vertical colour scale from 0 to `max` with three labels.
fn colorbar<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, max: f64) -> R {
    let (_, h) = area.dim_in_pixel();
    let (top, bottom) = (40i32, h as i32 - 50);
    let steps = 40;
    for i in 0..steps {
        let y0 = bottom - (bottom - top) * i / steps;
        let y1 = bottom - (bottom - top) * (i + 1) / steps;
        area.draw(&Rectangle::new(
            [(8, y1), (22, y0)],
            seq_color((i as f64 + 0.5) / steps as f64).filled(),
        ))
        .map_err(pe)?;
    }
    area.draw(&Rectangle::new(
        [(8, top), (22, bottom)],
        BLACK.stroke_width(1),
    ))
    .map_err(pe)?;
    for (frac, y) in [(0.0, bottom), (0.5, (top + bottom) / 2), (1.0, top)] {
        area.draw(&Text::new(
            tick(frac * max),
            (26, y - 6),
            ("sans-serif", 11),
        ))
        .map_err(pe)?;
    }
    area.draw(&Text::new("scale", (4, top - 22), ("sans-serif", 12)))
        .map_err(pe)
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

/// Points `(x, y)` with a title and axis names.
pub struct Scatter<'a> {
    pub title: String,
    pub x_desc: &'a str,
    pub y_desc: &'a str,
    pub points: Vec<(f64, f64)>,
}

impl Scatter<'_> {
    pub fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> R {
        let ymax = self.points.iter().map(|p| p.1).fold(1e-9f64, f64::max);
        let mut c = ChartBuilder::on(area)
            .caption(&self.title, ("sans-serif", 16))
            .margin(8)
            .x_label_area_size(36)
            .y_label_area_size(56)
            .build_cartesian_2d(0.0..1.0, 0.0..ymax * 1.05)
            .map_err(pe)?;
        c.configure_mesh()
            .x_desc(self.x_desc)
            .y_desc(self.y_desc)
            .label_style(("sans-serif", 13))
            .draw()
            .map_err(pe)?;
        c.draw_series(
            self.points
                .iter()
                .map(|&p| Circle::new(p, 3, PALETTE[0].mix(0.6).filled())),
        )
        .map_err(pe)?
        .label("neuron")
        .legend(|(x, y)| Circle::new((x + 6, y), 3, PALETTE[0].filled()));
        legend(&mut c, SeriesLabelPosition::UpperLeft)
    }
}

/// The colour of a phase in figures.
pub fn phase_color(phase: Phase) -> RGBColor {
    let (r, g, b) = phase.rgb();
    RGBColor(r, g, b)
}

/// An α × ξ grid coloured by phase; cells whose seeds disagree are lighter and show their
/// agreement.
pub struct PhaseGrid<'a> {
    pub title: String,
    pub alphas: &'a [String],
    pub xis: &'a [String],
    /// `(alpha index, xi index, phase, agreement)`.
    pub cells: Vec<(usize, usize, Phase, f64)>,
}

impl PhaseGrid<'_> {
    pub fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> R {
        let (nx, ny) = (self.xis.len().max(1), self.alphas.len().max(1));
        let (main, legend) = area.split_horizontally(area.dim_in_pixel().0 as i32 - 170);
        let mut c = ChartBuilder::on(&main)
            .caption(&self.title, ("sans-serif", 16))
            .margin(8)
            .x_label_area_size(36)
            .y_label_area_size(56)
            .build_cartesian_2d(-0.5..nx as f64 - 0.5, -0.5..ny as f64 - 0.5)
            .map_err(pe)?;
        let xl: Vec<String> = self.xis.iter().map(|s| tick_str(s)).collect();
        let yl: Vec<String> = self.alphas.iter().map(|s| tick_str(s)).collect();
        c.configure_mesh()
            .disable_mesh()
            .x_desc("corruption fraction ξ")
            .y_desc("training fraction α")
            .label_style(("sans-serif", 12))
            .x_labels(nx.clamp(2, 18))
            .y_labels(ny.clamp(2, 18))
            .x_label_formatter(&|v| label_at(&xl, *v))
            .y_label_formatter(&|v| label_at(&yl, *v))
            .draw()
            .map_err(pe)?;
        c.draw_series(self.cells.iter().map(|(a, x, phase, agree)| {
            let col = phase_color(*phase).mix(0.35 + 0.65 * agree.clamp(0.0, 1.0));
            let (x, y) = (*x as f64, *a as f64);
            Rectangle::new(
                [(x - 0.485, y - 0.485), (x + 0.485, y + 0.485)],
                col.filled(),
            )
        }))
        .map_err(pe)?;
        for (a, x, _, agree) in &self.cells {
            if *agree < 1.0 {
                c.draw_series(std::iter::once(Text::new(
                    format!("{:.0}%", agree * 100.0),
                    (*x as f64 - 0.3, *a as f64 + 0.1),
                    ("sans-serif", 11).into_font().color(&BLACK),
                )))
                .map_err(pe)?;
            }
        }
        legend.fill(&WHITE).map_err(pe)?;
        for (i, p) in Phase::ALL.iter().enumerate() {
            let y = 40 + 24 * i as i32;
            legend
                .draw(&Rectangle::new(
                    [(6, y), (24, y + 16)],
                    phase_color(*p).filled(),
                ))
                .map_err(pe)?;
            legend
                .draw(&Text::new(p.to_string(), (30, y + 2), ("sans-serif", 13)))
                .map_err(pe)?;
        }
        legend
            .draw(&Text::new("phase", (6, 14), ("sans-serif", 14)))
            .map_err(pe)?;
        legend
            .draw(&Text::new(
                "% = seeds agreeing",
                (6, 40 + 24 * Phase::ALL.len() as i32 + 6),
                ("sans-serif", 11),
            ))
            .map_err(pe)?;
        Ok(())
    }
}
