//! Legends: each entry's key drawn in its series' real style (solid, dashed, dotted line, box
//! or dot), placed in an empty corner of the plot or, when every corner holds data, beside it.

use super::style::{pe, Dash, R};
use super::text;
use plotters::coord::Shift;
use plotters::prelude::*;

/// A pixel rectangle `[x0, x1) × [y0, y1)` in backend coordinates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rect {
    pub x0: i32,
    pub y0: i32,
    pub x1: i32,
    pub y1: i32,
}

impl Rect {
    pub fn intersects(&self, o: &Rect) -> bool {
        self.x0 < o.x1 && o.x0 < self.x1 && self.y0 < o.y1 && o.y0 < self.y1
    }
    pub fn grow(&self, d: i32) -> Rect {
        Rect {
            x0: self.x0 - d,
            y0: self.y0 - d,
            x1: self.x1 + d,
            y1: self.y1 + d,
        }
    }
    pub fn point(x: i32, y: i32) -> Rect {
        Rect {
            x0: x,
            y0: y,
            x1: x + 1,
            y1: y + 1,
        }
    }
}

/// How an entry's series is drawn.
#[derive(Clone, Copy)]
pub enum Key {
    Line(RGBColor, Dash),
    Box(RGBColor),
    Dot(RGBColor),
}

pub struct Entry {
    pub key: Key,
    pub label: String,
}

const FONT: f64 = 15.0;
const ROW: i32 = 18;
const SAMPLE: i32 = 26;
const PAD: i32 = 6;

/// Width and height of the legend box of `entries`.
pub fn size(entries: &[Entry]) -> (i32, i32) {
    let w = entries
        .iter()
        .map(|e| text::advance(&e.label, FONT, false).ceil() as i32)
        .max()
        .unwrap_or(0);
    (
        PAD * 2 + SAMPLE + 6 + w,
        PAD * 2 + ROW * entries.len() as i32 - 4,
    )
}

/// The first free spot inside `plot` for a legend of `size`: the corners, then the middles of
/// the edges; `None` when data lies under every one of them.
pub fn place(plot: Rect, size: (i32, i32), occupied: &[Rect]) -> Option<Rect> {
    let (w, h) = size;
    let inset = 8;
    let (l, r) = (plot.x0 + inset, plot.x1 - inset - w);
    let (t, b) = (plot.y0 + inset, plot.y1 - inset - h);
    let (cx, cy) = ((plot.x0 + plot.x1 - w) / 2, (plot.y0 + plot.y1 - h) / 2);
    if r < l || b < t {
        return None;
    }
    [
        (r, t),
        (l, t),
        (r, b),
        (l, b),
        (cx, t),
        (cx, b),
        (r, cy),
        (l, cy),
    ]
    .into_iter()
    .map(|(x, y)| Rect {
        x0: x,
        y0: y,
        x1: x + w,
        y1: y + h,
    })
    .find(|c| {
        let g = c.grow(3);
        !occupied.iter().any(|o| o.intersects(&g))
    })
}

/// Draws the legend box `at` (backend coordinates) on `area`.
pub fn draw<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, at: Rect, entries: &[Entry]) -> R {
    let (bx, by) = area.get_base_pixel();
    let (x0, y0) = (at.x0 - bx, at.y0 - by);
    area.draw(&Rectangle::new(
        [(x0, y0), (at.x1 - bx, at.y1 - by)],
        WHITE.mix(0.92).filled(),
    ))
    .map_err(pe)?;
    area.draw(&Rectangle::new(
        [(x0, y0), (at.x1 - bx, at.y1 - by)],
        RGBColor(190, 190, 190).stroke_width(1),
    ))
    .map_err(pe)?;
    for (i, e) in entries.iter().enumerate() {
        let y = y0 + PAD + ROW * i as i32 + 7;
        let x = x0 + PAD;
        match e.key {
            Key::Line(c, dash) => {
                let (on, off) = dash.pattern();
                let mut s = 0;
                while s < SAMPLE {
                    let end = (s + on).min(SAMPLE);
                    area.draw(&PathElement::new(
                        vec![(x + s, y), (x + end, y)],
                        c.stroke_width(2),
                    ))
                    .map_err(pe)?;
                    s = end + off;
                }
            }
            Key::Box(c) => area
                .draw(&Rectangle::new(
                    [(x + 6, y - 6), (x + 20, y + 6)],
                    c.filled(),
                ))
                .map_err(pe)?,
            Key::Dot(c) => area
                .draw(&Circle::new((x + 13, y), 4, c.filled()))
                .map_err(pe)?,
        }
        area.draw(&Text::new(
            e.label.clone(),
            (x + SAMPLE + 6, y),
            ("sans-serif", FONT)
                .into_font()
                .color(&RGBColor(40, 40, 40))
                .pos(plotters::style::text_anchor::Pos::new(
                    plotters::style::text_anchor::HPos::Left,
                    plotters::style::text_anchor::VPos::Center,
                )),
        ))
        .map_err(pe)?;
    }
    Ok(())
}
