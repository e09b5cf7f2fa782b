//! What every panel shares: the error type of drawing, the palette, text sizes and strokes.

use plotters::style::RGBColor;

pub type R = std::result::Result<(), String>;

/// A drawing error as one line (plotters' `Display`, never a `Debug` dump).
pub fn pe<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}

/// Colours of the five accuracies and of further series: Paul Tol's "bright" scheme
/// (distinct hues, safe for colour-blind readers): blue, red, purple, green, yellow, cyan, grey.
pub const PALETTE: [RGBColor; 7] = [
    RGBColor(0x44, 0x77, 0xAA),
    RGBColor(0xEE, 0x66, 0x77),
    RGBColor(0xAA, 0x33, 0x77),
    RGBColor(0x22, 0x88, 0x33),
    RGBColor(0xCC, 0xBB, 0x44),
    RGBColor(0x66, 0xCC, 0xEE),
    RGBColor(0xBB, 0xBB, 0xBB),
];

/// Palette indices of the accuracies: train, test, A_mem, A_inv, A_clean.
pub const TRAIN: usize = 0;
pub const TEST: usize = 1;
pub const MEM: usize = 2;
pub const INV: usize = 3;
pub const CLEAN: usize = 4;

/// Text sizes (plotters sizes: em = size / 1.24).
pub const TITLE: f64 = 18.0;
pub const LABEL: f64 = 15.0;
pub const DESC: f64 = 16.0;

/// A line's stroke.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dash {
    Solid,
    Dashed,
    Dotted,
}

impl Dash {
    /// Pixels on and off.
    pub fn pattern(self) -> (i32, i32) {
        match self {
            Dash::Solid => (i32::MAX / 4, 0),
            Dash::Dashed => (8, 4),
            Dash::Dotted => (2, 3),
        }
    }
}
