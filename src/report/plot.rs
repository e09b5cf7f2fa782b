//! Line, bar and scatter charts over `plotters`, generic over the drawing backend so that
//! every figure is drawn once as PNG and once as SVG: a light grid without minor lines, ticks
//! with as many decimals as their spacing needs, log axes on request, each series in its own
//! line style, and the legend in an empty corner of the data or beside it (never on it).
//! Heatmaps and phase diagrams: `grid.rs`; text: `text.rs`; legends: `legend.rs`.

use super::legend::{self, Entry, Key, Rect};
pub use super::style::*;
use super::text;
use plotters::coord::combinators::LogCoord;
use plotters::coord::ranged1d::{AsRangedCoord, Ranged, ValueFormatter};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// The grid lines' colour and the axes' colour.
const GRID: RGBColor = RGBColor(232, 232, 232);
const AXIS: RGBColor = RGBColor(90, 90, 90);
/// A log axis from `lo` to `hi` whose ticks are 1, 2 and 5 times powers of ten (or fewer,
/// when they would not fit): plotters' own log axis labels either decades only or every
/// integer multiple.
#[derive(Clone, Debug)]
pub struct LogAxis(pub f64, pub f64);

/// Where a log count axis starts (bars from 0.5; no tick below 1, a count is whole).
pub const COUNT_AXIS_START: f64 = 0.5;

/// The coordinate of a [`LogAxis`].
pub struct Log125 {
    inner: LogCoord<f64>,
    /// The smallest tick: 1 on a count axis (which starts at 0.5, where bars begin).
    min_tick: f64,
}

impl AsRangedCoord for LogAxis {
    type CoordDescType = Log125;
    type Value = f64;
}

impl From<LogAxis> for Log125 {
    fn from(a: LogAxis) -> Self {
        Log125 {
            inner: (a.0..a.1).log_scale().into(),
            min_tick: if a.0 == COUNT_AXIS_START { 1.0 } else { 0.0 },
        }
    }
}

impl Ranged for Log125 {
    type FormatOption = plotters::coord::ranged1d::DefaultFormatting;
    type ValueType = f64;

    fn map(&self, v: &f64, limit: (i32, i32)) -> i32 {
        self.inner.map(v, limit)
    }

    fn key_points<H: plotters::coord::ranged1d::KeyPointHint>(&self, hint: H) -> Vec<f64> {
        let max = hint.max_num_points().max(2);
        let r = self.inner.range();
        let (lo, hi) = (r.start.min(r.end), r.start.max(r.end));
        if !(lo > 0.0 && hi.is_finite()) {
            return vec![];
        }
        let first = lo.log10().floor() as i32;
        let last = hi.log10().ceil() as i32;
        let gen = |mults: &[f64], every: i32| -> Vec<f64> {
            (first..=last)
                .filter(|e| (e - first) % every == 0)
                .flat_map(|e| mults.iter().map(move |m| m * 10f64.powi(e)))
                .filter(|v| *v >= lo * (1.0 - 1e-9) && *v <= hi * (1.0 + 1e-9))
                .filter(|v| *v >= self.min_tick)
                .collect()
        };
        for mults in [&[1.0, 2.0, 5.0][..], &[1.0, 3.0][..], &[1.0][..]] {
            let pts = gen(mults, 1);
            if pts.len() <= max && pts.len() >= 2 {
                return pts;
            }
        }
        let mut every = 1;
        loop {
            let pts = gen(&[1.0], every);
            if pts.len() <= max || every > 64 {
                return pts;
            }
            every *= 2;
        }
    }

    fn range(&self) -> std::ops::Range<f64> {
        self.inner.range()
    }
}

/// A linear axis tick with as many decimals as ticks `span / 6` apart need (no two equal).
pub fn tick(v: f64, span: f64) -> String {
    let digits = if span > 0.0 && span.is_finite() {
        ((-(span / 6.0).log10()).ceil() + 1.0).clamp(0.0, 8.0) as usize
    } else {
        3
    };
    if v.abs() >= 1e6 {
        return log_tick(v);
    }
    let s = format!("{v:.digits$}");
    let s = if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    };
    if s == "-0" {
        "0".into()
    } else {
        s
    }
}

/// A log axis tick: integers as integers, other values as `1e-3`, `2.5e-4`.
pub fn log_tick(v: f64) -> String {
    if (1.0..1e6).contains(&v) && (v - v.round()).abs() < 1e-9 * v {
        return format!("{v:.0}");
    }
    let s = format!("{v:.1e}");
    s.replace(".0e", "e")
}

/// A numeric label shortened (`0.30000` → `0.3`); other text unchanged.
pub fn tick_str(x: &str) -> String {
    x.parse::<f64>()
        .map(|v| tick(v, 0.006))
        .unwrap_or_else(|_| x.to_string())
}

/// One line of a line chart.
pub struct Line {
    pub label: String,
    pub color: RGBColor,
    pub dash: Dash,
    pub points: Vec<(f64, f64)>,
}

/// A labelled vertical marker (an event of the training dynamics).
pub struct Mark {
    pub x: f64,
    pub label: String,
    pub color: RGBColor,
}

/// A line chart.
pub struct LineChart<'a> {
    pub title: String,
    pub x_desc: &'a str,
    pub y_desc: &'a str,
    pub lines: Vec<Line>,
    pub log_x: bool,
    pub log_y: bool,
    /// Fixed y range (linear axes); `None`: from the data.
    pub y_range: Option<(f64, f64)>,
    pub marks: Vec<Mark>,
}

/// What a drawn panel occupies (backend pixels): its plotting area, its legend, and every
/// pixel its data is drawn through (points, and samples along the lines between them).
#[derive(Clone, Debug, Default)]
pub struct Drawn {
    pub plot: Option<Rect>,
    pub legend: Option<Rect>,
    pub data: Vec<Rect>,
}

type Ctx<'a, DB, XR, YR> = ChartContext<
    'a,
    DB,
    Cartesian2d<<XR as AsRangedCoord>::CoordDescType, <YR as AsRangedCoord>::CoordDescType>,
>;

/// The plotting area of a chart in backend pixels.
fn plot_rect<DB: DrawingBackend, X: Ranged, Y: Ranged>(
    c: &ChartContext<DB, Cartesian2d<X, Y>>,
) -> Rect {
    let (xs, ys) = c.plotting_area().get_pixel_range();
    Rect {
        x0: xs.start,
        y0: ys.start,
        x1: xs.end,
        y1: ys.end,
    }
}

/// A chart frame on `area` (no caption: the panel's title is drawn by the caller) with
/// `top` extra pixels above the plot.
fn frame<'a, DB, XR, YR>(
    area: &DrawingArea<DB, Shift>,
    xr: XR,
    yr: YR,
    top: u32,
) -> Result<Ctx<'a, DB, XR, YR>, String>
where
    DB: DrawingBackend + 'a,
    XR: AsRangedCoord<Value = f64>,
    YR: AsRangedCoord<Value = f64>,
{
    ChartBuilder::on(area)
        .margin_top(6 + top)
        .margin_left(6)
        .margin_bottom(6)
        .margin_right(26)
        .x_label_area_size(46)
        .y_label_area_size(66)
        .build_cartesian_2d(xr, yr)
        .map_err(pe)
}

/// Axis, tick labels and the light grid (major lines only).
fn mesh<DB, X, Y>(
    c: &mut ChartContext<DB, Cartesian2d<X, Y>>,
    x_desc: &str,
    y_desc: &str,
    xf: &dyn Fn(&f64) -> String,
    yf: &dyn Fn(&f64) -> String,
) -> R
where
    DB: DrawingBackend,
    X: Ranged<ValueType = f64> + ValueFormatter<f64>,
    Y: Ranged<ValueType = f64> + ValueFormatter<f64>,
{
    c.configure_mesh()
        .light_line_style(TRANSPARENT)
        .bold_line_style(GRID.stroke_width(1))
        .axis_style(AXIS.stroke_width(1))
        .x_labels(7)
        .y_labels(7)
        .x_desc(x_desc)
        .y_desc(y_desc)
        .label_style(
            ("sans-serif", LABEL)
                .into_font()
                .color(&RGBColor(50, 50, 50)),
        )
        .axis_desc_style(("sans-serif", DESC))
        .x_label_formatter(xf)
        .y_label_formatter(yf)
        .draw()
        .map_err(pe)
}

/// The pixels of a polyline: its points and samples every 3 pixels between them.
fn trace(pts: &[(i32, i32)], out: &mut Vec<Rect>) {
    for w in pts.windows(2) {
        let ((ax, ay), (bx, by)) = (w[0], w[1]);
        let n = ((bx - ax).abs().max((by - ay).abs()) / 3).max(1);
        for k in 0..n {
            out.push(Rect::point(ax + (bx - ax) * k / n, ay + (by - ay) * k / n));
        }
    }
    if let Some(&(x, y)) = pts.last() {
        out.push(Rect::point(x, y));
    }
}

/// Data range of a set of values: finite ones (positive ones on a log axis).
fn extent(vals: impl Iterator<Item = f64>, log: bool) -> Option<(f64, f64)> {
    let (lo, hi) = vals
        .filter(|v| v.is_finite() && (!log || *v > 0.0))
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
            (a.min(v), b.max(v))
        });
    lo.is_finite().then_some((lo, hi))
}

/// A range with room: linear ranges padded by 5 % (or widened when flat), log ranges to at
/// least a factor of 10 and at most 30 decades; huge values clamped so that no padding
/// overflows.
fn fit(r: Option<(f64, f64)>, log: bool, pad: bool) -> (f64, f64) {
    let (mut lo, mut hi) = r.unwrap_or(if log { (1e-3, 1.0) } else { (0.0, 1.0) });
    (lo, hi) = (lo.clamp(-1e300, 1e300), hi.clamp(-1e300, 1e300));
    if log {
        if hi / lo > 1e30 {
            lo = hi / 1e30;
        }
        if hi / lo < 10.0 {
            let m = (hi * lo).sqrt();
            (lo, hi) = (m / 3.3, m * 3.3);
        }
        if pad {
            (lo, hi) = (lo / 1.25, hi * 1.25);
        }
        (lo, hi)
    } else {
        if hi <= lo {
            (lo, hi) = (lo - 0.5, hi + 0.5);
        }
        let p = if pad { 0.05 * (hi - lo) } else { 0.0 };
        (lo - p, hi + p)
    }
}

/// Lays a chart out on an area (and draws it when asked): its plot rectangle and data pixels.
type Layout<'l, DB> =
    dyn FnMut(&DrawingArea<DB, Shift>, bool) -> Result<(Rect, Vec<Rect>), String> + 'l;

/// The legend of a panel: inside the plot where no data lies under it, else in a column at
/// the right; `draw` builds the chart on the area it is given and returns its plot rectangle
/// and data pixels without drawing; `finish` draws it.
fn with_legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    entries: &[Entry],
    layout: &mut Layout<DB>,
) -> Result<Drawn, String> {
    let size = legend::size(entries);
    let (w, _) = area.dim_in_pixel();
    for outside in [false, true] {
        if entries.is_empty() && outside {
            break;
        }
        let (plot_area, side) = if outside {
            let (a, b) = area.split_horizontally((w as i32 - size.0 - 12).max(w as i32 / 2));
            (a, Some(b))
        } else {
            (area.clone(), None)
        };
        // A dry run: where the data goes.
        let (plot, data) = layout(&plot_area, false)?;
        let spot = match &side {
            _ if entries.is_empty() => None,
            None => match legend::place(plot, size, &data) {
                Some(r) => Some(r),
                None => continue,
            },
            Some(s) => {
                let (bx, _) = s.get_base_pixel();
                Some(Rect {
                    x0: bx + 2,
                    y0: plot.y0,
                    x1: bx + 2 + size.0,
                    y1: plot.y0 + size.1,
                })
            }
        };
        layout(&plot_area, true)?;
        if let Some(at) = spot {
            legend::draw(area, at, entries)?;
        }
        return Ok(Drawn {
            plot: Some(plot),
            legend: spot,
            data,
        });
    }
    Ok(Drawn::default())
}

/// Rows of labels centred at pixels `px` (greedy: the first row where a label does not touch
/// the one before it), and how many rows that takes.
fn mark_rows(labels: &[&str], px: &[i32]) -> (Vec<usize>, usize) {
    let mut ends: Vec<i32> = Vec::new();
    let mut rows = vec![0; labels.len()];
    let mut order: Vec<usize> = (0..labels.len()).collect();
    order.sort_by_key(|&i| px[i]);
    for i in order {
        let w = text::advance(labels[i], LABEL - 1.0, false).ceil() as i32 + 8;
        let start = px[i] - w / 2;
        match ends.iter().position(|&e| e <= start) {
            Some(r) => {
                ends[r] = start + w;
                rows[i] = r;
            }
            None => {
                rows[i] = ends.len();
                ends.push(start + w);
            }
        }
    }
    (rows, ends.len())
}

impl LineChart<'_> {
    pub fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> Result<Drawn, String> {
        let area = area
            .titled(&self.title, ("sans-serif", TITLE))
            .map_err(pe)?;
        let xs = self.lines.iter().flat_map(|l| l.points.iter().map(|p| p.0));
        let (x0, x1) = fit(extent(xs, self.log_x), self.log_x, false);
        let ys = self.lines.iter().flat_map(|l| l.points.iter().map(|p| p.1));
        let (y0, y1) = match self.y_range {
            Some(r) if !self.log_y => r,
            _ => fit(extent(ys, self.log_y), self.log_y, true),
        };
        match (self.log_x, self.log_y) {
            (false, false) => self.draw_in(&area, x0..x1, y0..y1),
            (true, false) => self.draw_in(&area, LogAxis(x0, x1), y0..y1),
            (false, true) => self.draw_in(&area, x0..x1, LogAxis(y0, y1)),
            (true, true) => self.draw_in(&area, LogAxis(x0, x1), LogAxis(y0, y1)),
        }
    }

    fn entries(&self) -> Vec<Entry> {
        // A lone curve is named by its panel's title: no legend of one entry.
        if self.lines.len() < 2 {
            return Vec::new();
        }
        self.lines
            .iter()
            .map(|l| Entry {
                key: Key::Line(l.color, l.dash),
                label: l.label.clone(),
            })
            .collect()
    }

    fn draw_in<DB, XR, YR>(
        &self,
        area: &DrawingArea<DB, Shift>,
        xr: XR,
        yr: YR,
    ) -> Result<Drawn, String>
    where
        DB: DrawingBackend,
        XR: AsRangedCoord<Value = f64> + Clone,
        YR: AsRangedCoord<Value = f64> + Clone,
        XR::CoordDescType: ValueFormatter<f64>,
        YR::CoordDescType: ValueFormatter<f64>,
    {
        let (xlo, xhi) = {
            let r: XR::CoordDescType = xr.clone().into();
            let r = r.range();
            (r.start, r.end)
        };
        let marks: Vec<&Mark> = self
            .marks
            .iter()
            .filter(|m| m.x >= xlo && m.x <= xhi && (!self.log_x || m.x > 0.0))
            .collect();
        let (ylo, yhi) = {
            let r: YR::CoordDescType = yr.clone().into();
            let r = r.range();
            (r.start, r.end)
        };
        let row_h = 17;
        let mut layout =
            |a: &DrawingArea<DB, Shift>, paint: bool| -> Result<(Rect, Vec<Rect>), String> {
                let probe = frame(a, xr.clone(), yr.clone(), 0)?;
                let px: Vec<i32> = marks
                    .iter()
                    .map(|m| probe.backend_coord(&(m.x, ylo)).0)
                    .collect();
                let labels: Vec<&str> = marks.iter().map(|m| m.label.as_str()).collect();
                let (rows, n_rows) = mark_rows(&labels, &px);
                let mut c = frame(a, xr.clone(), yr.clone(), (n_rows as i32 * row_h) as u32)?;
                let plot = plot_rect(&c);
                let mut data = Vec::new();
                let pts: Vec<Vec<(f64, f64)>> = self
                    .lines
                    .iter()
                    .map(|l| {
                        l.points
                            .iter()
                            .copied()
                            .filter(|p| {
                                p.1.is_finite()
                                    && (!self.log_y || p.1 > 0.0)
                                    && (!self.log_x || p.0 > 0.0)
                            })
                            .map(|(x, y)| (x, y.clamp(ylo, yhi)))
                            .collect()
                    })
                    .collect();
                for p in &pts {
                    let px: Vec<(i32, i32)> = p.iter().map(|q| c.backend_coord(q)).collect();
                    trace(&px, &mut data);
                }
                if !paint {
                    return Ok((plot, data));
                }
                let xspan = xhi - xlo;
                let yspan = yhi - ylo;
                let (lx, ly) = (self.log_x, self.log_y);
                let xf = move |v: &f64| if lx { log_tick(*v) } else { tick(*v, xspan) };
                let yf = move |v: &f64| if ly { log_tick(*v) } else { tick(*v, yspan) };
                mesh(&mut c, self.x_desc, self.y_desc, &xf, &yf)?;
                for (m, (row, x)) in marks.iter().zip(rows.iter().zip(&px)) {
                    c.draw_series(DashedLineSeries::new(
                        vec![(m.x, ylo), (m.x, yhi)],
                        2,
                        3,
                        m.color.mix(0.9).stroke_width(1),
                    ))
                    .map_err(pe)?;
                    let y = plot.y0 - 3 - row_h * *row as i32;
                    let (bx, by) = a.get_base_pixel();
                    a.draw(&Text::new(
                        m.label.clone(),
                        (*x - bx, y - by),
                        ("sans-serif", LABEL - 1.0)
                            .into_font()
                            .color(&m.color)
                            .pos(Pos::new(HPos::Center, VPos::Bottom)),
                    ))
                    .map_err(pe)?;
                }
                for (l, p) in self.lines.iter().zip(pts) {
                    let style = l.color.stroke_width(2);
                    // A line of one or two points would be (nearly) invisible: mark its points.
                    if p.len() <= 2 {
                        c.draw_series(p.iter().map(|q| Circle::new(*q, 3, l.color.filled())))
                            .map_err(pe)?;
                    }
                    match l.dash {
                        Dash::Solid => c.draw_series(LineSeries::new(p, style)).map(|_| ()),
                        d => {
                            let (on, off) = d.pattern();
                            c.draw_series(DashedLineSeries::new(p, on as u32, off as u32, style))
                                .map(|_| ())
                        }
                    }
                    .map_err(pe)?;
                }
                Ok((plot, data))
            };
        with_legend(area, &self.entries(), &mut layout)
    }
}

/// Side-by-side bars: one group per bin, one bar per series.
pub struct BarChart<'a> {
    pub title: String,
    pub x_desc: &'a str,
    pub y_desc: &'a str,
    /// Bin edges (n + 1 values) along x.
    pub edges: Vec<f64>,
    pub series: Vec<(String, RGBColor, Vec<f64>)>,
    /// A log count axis (bars start at 0.5, empty bins are not drawn).
    pub log_y: bool,
}

impl BarChart<'_> {
    pub fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> Result<Drawn, String> {
        let area = area
            .titled(&self.title, ("sans-serif", TITLE))
            .map_err(pe)?;
        let vals = self.series.iter().flat_map(|s| s.2.iter().copied());
        let (x0, x1) = (
            self.edges.first().copied().unwrap_or(0.0),
            self.edges.last().copied().unwrap_or(1.0),
        );
        if self.log_y {
            let ymax = extent(vals, true).map_or(10.0, |r| r.1);
            self.draw_in(
                &area,
                x0..x1,
                LogAxis(COUNT_AXIS_START, (ymax * 3.0).max(10.0)),
                COUNT_AXIS_START,
            )
        } else {
            let ymax = extent(vals, false).map_or(1.0, |r| r.1.max(1.0));
            self.draw_in(&area, x0..x1, 0.0..ymax * 1.1, 0.0)
        }
    }

    fn draw_in<DB, YR>(
        &self,
        area: &DrawingArea<DB, Shift>,
        xr: std::ops::Range<f64>,
        yr: YR,
        floor: f64,
    ) -> Result<Drawn, String>
    where
        DB: DrawingBackend,
        YR: AsRangedCoord<Value = f64> + Clone,
        YR::CoordDescType: ValueFormatter<f64>,
    {
        let k = self.series.len().max(1) as f64;
        let bars: Vec<(RGBColor, [(f64, f64); 2])> = self
            .series
            .iter()
            .enumerate()
            .flat_map(|(j, (_, color, vals))| {
                vals.iter()
                    .enumerate()
                    .filter(|(_, v)| **v > floor)
                    .map(move |(i, &v)| {
                        let (a, b) = (self.edges[i], self.edges[i + 1]);
                        let w = (b - a) / k;
                        (
                            *color,
                            [(a + w * j as f64, floor), (a + w * (j as f64 + 0.9), v)],
                        )
                    })
            })
            .filter(|(_, r)| r[1].1.is_finite())
            .collect();
        let entries: Vec<Entry> = self
            .series
            .iter()
            .map(|(l, c, _)| Entry {
                key: Key::Box(*c),
                label: l.clone(),
            })
            .collect();
        let span = xr.end - xr.start;
        let log = self.log_y;
        let mut layout =
            |a: &DrawingArea<DB, Shift>, paint: bool| -> Result<(Rect, Vec<Rect>), String> {
                let mut c = frame(a, xr.clone(), yr.clone(), 0)?;
                let data = bars
                    .iter()
                    .map(|(_, r)| {
                        let (p, q) = (c.backend_coord(&r[0]), c.backend_coord(&r[1]));
                        Rect {
                            x0: p.0.min(q.0),
                            y0: p.1.min(q.1),
                            x1: p.0.max(q.0) + 1,
                            y1: p.1.max(q.1) + 1,
                        }
                    })
                    .collect();
                if paint {
                    let xf = move |v: &f64| tick(*v, span);
                    let yf = move |v: &f64| if log { log_tick(*v) } else { tick(*v, 6.0) };
                    mesh(&mut c, self.x_desc, self.y_desc, &xf, &yf)?;
                    c.draw_series(bars.iter().map(|(col, r)| Rectangle::new(*r, col.filled())))
                        .map_err(pe)?;
                }
                Ok((plot_rect(&c), data))
            };
        with_legend(area, &entries, &mut layout)
    }
}

/// Points `(x, y)` with a title and axis names.
pub struct Scatter<'a> {
    pub title: String,
    pub x_desc: &'a str,
    pub y_desc: &'a str,
    pub label: String,
    pub points: Vec<(f64, f64)>,
}

impl Scatter<'_> {
    pub fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> Result<Drawn, String> {
        let area = area
            .titled(&self.title, ("sans-serif", TITLE))
            .map_err(pe)?;
        let (y0, y1) = fit(extent(self.points.iter().map(|p| p.1), false), false, true);
        let entries = vec![Entry {
            key: Key::Dot(PALETTE[0]),
            label: self.label.clone(),
        }];
        let mut layout =
            |a: &DrawingArea<DB, Shift>, paint: bool| -> Result<(Rect, Vec<Rect>), String> {
                let mut c = frame(a, 0.0..1.0, y0.min(0.0)..y1, 0)?;
                let data = self
                    .points
                    .iter()
                    .map(|p| {
                        let (x, y) = c.backend_coord(p);
                        Rect::point(x, y).grow(3)
                    })
                    .collect();
                if paint {
                    let ys = y1 - y0.min(0.0);
                    mesh(&mut c, self.x_desc, self.y_desc, &|v| tick(*v, 1.0), &|v| {
                        tick(*v, ys)
                    })?;
                    c.draw_series(
                        self.points
                            .iter()
                            .map(|&p| Circle::new(p, 3, PALETTE[0].mix(0.6).filled())),
                    )
                    .map_err(pe)?;
                }
                Ok((plot_rect(&c), data))
            };
        with_legend(&area, &entries, &mut layout)
    }
}
