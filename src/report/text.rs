//! Text in the figures, laid out and rasterised by us with the embedded DejaVu Sans.
//!
//! plotters' own bitmap text drops each glyph's left side bearing and rounds every pen
//! position, so letters drift ("fr action of neur on s"), and it scales fonts by line height
//! where its SVG output scales by em, so PNG and SVG text differ in size. [`Crisp`] wraps a
//! backend: every text size plotters asks for is measured here (advance widths and kerning at
//! em = size / 1.24, the em plotters' SVG writes), and on bitmaps the glyphs are drawn here,
//! at subpixel positions with anti-aliased coverage, in the SVG's placement (baseline 0.76 em
//! below a top anchor, 0.5 ex below a centre anchor, 0.5 ex above a bottom anchor).

use ab_glyph::{point, Font, FontRef, PxScale, ScaleFont};
use plotters_backend::text_anchor::{HPos, VPos};
use plotters_backend::{
    BackendColor, BackendCoord, BackendStyle, BackendTextStyle, DrawingBackend, DrawingErrorKind,
    FontStyle, FontTransform,
};
use std::sync::OnceLock;

/// The em of a plotters text size (its SVG backend writes `font-size = size / 1.24`).
pub fn em(size: f64) -> f32 {
    (size / 1.24) as f32
}

fn font(bold: bool) -> &'static FontRef<'static> {
    static REGULAR: OnceLock<FontRef<'static>> = OnceLock::new();
    static BOLD: OnceLock<FontRef<'static>> = OnceLock::new();
    let (cell, bytes) = if bold {
        (&BOLD, dejavu::sans::bold())
    } else {
        (&REGULAR, dejavu::sans::regular())
    };
    // The font is compiled in and parsed by ab_glyph's own tests of it; a failure here is a
    // build defect, not an input.
    cell.get_or_init(|| FontRef::try_from_slice(bytes).expect("the embedded DejaVu Sans parses"))
}

/// ab_glyph's scale (ascent to descent) for an em of `em` pixels.
fn scale(f: &FontRef<'static>, em: f32) -> PxScale {
    let upem = f.units_per_em().unwrap_or(2048.0);
    PxScale::from(em * f.height_unscaled() / upem)
}

/// Pen positions of each glyph along the baseline, and the advance of the whole string.
fn layout(text: &str, size: f64, bold: bool) -> (Vec<(ab_glyph::GlyphId, f32)>, f32) {
    let f = font(bold);
    let s = f.as_scaled(scale(f, em(size)));
    let mut x = 0.0f32;
    let mut prev = None;
    let mut out = Vec::with_capacity(text.len());
    for c in text.chars() {
        let id = s.glyph_id(c);
        if let Some(p) = prev {
            x += s.kern(p, id);
        }
        out.push((id, x));
        x += s.h_advance(id);
        prev = Some(id);
    }
    (out, x)
}

/// The advance width in pixels of `text` at plotters size `size` (the sum of the glyphs'
/// advances and kerning pairs).
pub fn advance(text: &str, size: f64, bold: bool) -> f64 {
    layout(text, size, bold).1 as f64
}

/// The horizontal extent of `text`'s ink (from the first glyph's left edge to the last one's
/// right edge) when the pen starts at 0, from the font's outlines.
pub fn ink_extent(text: &str, size: f64) -> (f64, f64) {
    let f = font(false);
    let sc = scale(f, em(size));
    let (glyphs, _) = layout(text, size, false);
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for (id, x) in glyphs {
        if let Some(o) = f.outline_glyph(id.with_scale_and_position(sc, point(x, 0.0))) {
            let b = o.px_bounds();
            lo = lo.min(b.min.x as f64);
            hi = hi.max(b.max.x as f64);
        }
    }
    (lo, hi)
}

/// Coverage `(x, y, alpha)` of `text` with its anchor at (0, 0), before rotation.
fn raster(text: &str, size: f64, bold: bool, h: HPos, v: VPos) -> Vec<(i32, i32, f32)> {
    let f = font(bold);
    let e = em(size);
    let sc = scale(f, e);
    let (glyphs, width) = layout(text, size, bold);
    let x0 = match h {
        HPos::Left => 0.0,
        HPos::Center => -width / 2.0,
        HPos::Right => -width,
    };
    // The ex of DejaVu Sans: 1120 / 2048 em.
    let ex = e * 1120.0 / 2048.0;
    let baseline = match v {
        VPos::Top => 0.76 * e,
        VPos::Center => 0.5 * ex,
        VPos::Bottom => -0.5 * ex,
    };
    let mut out = Vec::new();
    for (id, x) in glyphs {
        let g = id.with_scale_and_position(sc, point(x0 + x, baseline));
        if let Some(o) = f.outline_glyph(g) {
            let b = o.px_bounds();
            let (bx, by) = (b.min.x as i32, b.min.y as i32);
            o.draw(|gx, gy, c| {
                if c > 0.0 {
                    out.push((bx + gx as i32, by + gy as i32, c.min(1.0)));
                }
            });
        }
    }
    out
}

/// Which text the wrapped backend draws itself.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum TextMode {
    /// Glyphs rasterised here (bitmaps).
    Raster,
    /// Text handed to the backend (SVG writes `<text>` elements), measured here.
    Delegate,
}

/// A backend whose text is measured (and on bitmaps drawn) by this module; everything else
/// goes to the wrapped backend unchanged.
pub struct Crisp<B> {
    pub inner: B,
    pub mode: TextMode,
}

type E<B> = DrawingErrorKind<<B as DrawingBackend>::ErrorType>;

impl<B: DrawingBackend> DrawingBackend for Crisp<B> {
    type ErrorType = B::ErrorType;

    fn get_size(&self) -> (u32, u32) {
        self.inner.get_size()
    }
    fn ensure_prepared(&mut self) -> Result<(), E<B>> {
        self.inner.ensure_prepared()
    }
    fn present(&mut self) -> Result<(), E<B>> {
        self.inner.present()
    }
    fn draw_pixel(&mut self, p: BackendCoord, c: BackendColor) -> Result<(), E<B>> {
        self.inner.draw_pixel(p, c)
    }
    fn draw_line<S: BackendStyle>(
        &mut self,
        a: BackendCoord,
        b: BackendCoord,
        s: &S,
    ) -> Result<(), E<B>> {
        self.inner.draw_line(a, b, s)
    }
    fn draw_rect<S: BackendStyle>(
        &mut self,
        a: BackendCoord,
        b: BackendCoord,
        s: &S,
        fill: bool,
    ) -> Result<(), E<B>> {
        self.inner.draw_rect(a, b, s, fill)
    }
    fn draw_path<S: BackendStyle, I: IntoIterator<Item = BackendCoord>>(
        &mut self,
        path: I,
        s: &S,
    ) -> Result<(), E<B>> {
        self.inner.draw_path(path, s)
    }
    fn draw_circle<S: BackendStyle>(
        &mut self,
        c: BackendCoord,
        r: u32,
        s: &S,
        fill: bool,
    ) -> Result<(), E<B>> {
        self.inner.draw_circle(c, r, s, fill)
    }
    fn fill_polygon<S: BackendStyle, I: IntoIterator<Item = BackendCoord>>(
        &mut self,
        vert: I,
        s: &S,
    ) -> Result<(), E<B>> {
        self.inner.fill_polygon(vert, s)
    }
    fn blit_bitmap(&mut self, pos: BackendCoord, wh: (u32, u32), src: &[u8]) -> Result<(), E<B>> {
        self.inner.blit_bitmap(pos, wh, src)
    }

    fn estimate_text_size<S: BackendTextStyle>(
        &self,
        text: &str,
        s: &S,
    ) -> Result<(u32, u32), E<B>> {
        let w = advance(text, s.size(), matches!(s.style(), FontStyle::Bold));
        Ok((w.ceil() as u32, em(s.size()).ceil() as u32))
    }

    fn draw_text<S: BackendTextStyle>(
        &mut self,
        text: &str,
        s: &S,
        pos: BackendCoord,
    ) -> Result<(), E<B>> {
        if self.mode == TextMode::Delegate {
            return self.inner.draw_text(text, s, pos);
        }
        let color = s.color();
        if color.alpha == 0.0 {
            return Ok(());
        }
        let a = s.anchor();
        let cov = raster(
            text,
            s.size(),
            matches!(s.style(), FontStyle::Bold),
            a.h_pos,
            a.v_pos,
        );
        let t = s.transform();
        for (x, y, c) in cov {
            // The pixel [x, x+1) × [y, y+1) rotated clockwise about the anchor.
            let (dx, dy) = match t {
                FontTransform::None => (x, y),
                FontTransform::Rotate90 => (-y - 1, x),
                FontTransform::Rotate180 => (-x - 1, -y - 1),
                FontTransform::Rotate270 => (y, -x - 1),
            };
            self.inner.draw_pixel(
                (pos.0 + dx, pos.1 + dy),
                BackendColor {
                    alpha: color.alpha * c as f64,
                    rgb: color.rgb,
                },
            )?;
        }
        Ok(())
    }
}
