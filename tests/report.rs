//! Reports: every figure is a valid PNG and SVG of the expected size, made from a small real
//! run or sweep; report.html references only what it embeds or what sits beside it.

mod common;

use grokscope::config::{Axis, Config};
use grokscope::report::report;
use std::path::Path;

/// Trains `cfg` into the new run directory `dir`.
fn train(cfg: Config, dir: &Path) {
    common::train_dir(&cfg.check().unwrap(), dir);
}

/// Width and height from a PNG's IHDR chunk (after checking the signature).
fn png_size(bytes: &[u8]) -> (u32, u32) {
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "PNG signature");
    assert_eq!(&bytes[12..16], b"IHDR");
    let be = |i: usize| u32::from_be_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
    (be(16), be(20))
}

fn check_figure(dir: &Path, name: &str) -> (u32, u32) {
    let png =
        std::fs::read(dir.join(format!("{name}.png"))).unwrap_or_else(|_| panic!("{name}.png"));
    let (w, h) = png_size(&png);
    assert!(w >= 400 && h >= 300, "{name}: {w}×{h}");
    assert!(png.len() > 5_000, "{name}.png has content");
    let svg = std::fs::read_to_string(dir.join(format!("{name}.svg"))).unwrap();
    assert!(svg.contains("<svg"), "{name}.svg");
    assert!(svg.contains(&format!("width=\"{w}\"")) && svg.contains(&format!("height=\"{h}\"")));
    assert!(svg.trim_end().ends_with("</svg>"));
    assert!(svg.contains("<text"), "{name}.svg has labels");
    (w, h)
}

/// A page references nothing outside itself: every `src=`, `href=` and CSS `url(` is a data
/// URI or an anchor in the page, and nothing is imported or fetched.
fn assert_self_contained(html: &str) {
    for attr in ["src=\"", "href=\"", "src='", "href='", "url("] {
        for part in html.split(attr).skip(1) {
            let target: String = part.chars().take(40).collect();
            assert!(
                target.starts_with("data:") || target.starts_with('#'),
                "{attr}{target}… refers outside the page"
            );
        }
    }
    for needle in ["@import", "fetch(", "XMLHttpRequest", "<link", "<iframe"] {
        assert!(!html.contains(needle), "{needle} in the page");
    }
}

fn check_html(dir: &Path, figures: &[&str]) {
    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    assert_self_contained(&html);
    assert_eq!(html.matches("<figure").count(), figures.len());
    for f in figures {
        assert!(html.contains(&format!("id=\"{f}\"")), "{f} in report.html");
    }
    // The interactive charts' library is inlined, with the curves' data.
    assert!(html.contains("uPlot") && html.contains("id=\"grokscope-data\""));
}

#[test]
fn run_report_has_every_figure() {
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = Config {
        name: "tiny-bn".into(),
        ..Default::default()
    };
    cfg.data.p = 13;
    cfg.data.corruption = Axis::One(0.3);
    cfg.model.mlp.width = 24;
    cfg.model.mlp.batchnorm = true;
    cfg.train.weight_decay = Axis::Many(vec![0.0, 1.0]);
    cfg.train.epochs = Some(60);
    let dir = tmp.path().join("run");
    train(cfg, &dir);
    let html = report(&dir, false).unwrap();
    assert_eq!(html, dir.join("report/report.html"));
    let rep = dir.join("report");
    let figures = [
        "accuracy",
        "overlay",
        "loss_norms",
        "progress",
        "ipr",
        "fourier_model0",
        "fourier_model1",
        "neuron_model0",
        "neuron_model1",
        "batchnorm_model0",
        "batchnorm_model1",
        "pruning",
    ];
    for f in figures {
        check_figure(&rep, f);
    }
    // Panels: accuracy has one per model (2 side by side); loss_norms two per model.
    assert_eq!(check_figure(&rep, "accuracy"), (1280, 420));
    assert_eq!(check_figure(&rep, "loss_norms"), (1280, 840));
    check_html(&rep, &figures);
    // An existing report is kept unless forced.
    assert!(report(&dir, false).is_err());
    assert!(report(&dir, true).is_ok());
    // A run's analysis directory reports its run.
    std::fs::create_dir(dir.join("analysis")).unwrap();
    assert!(report(&dir.join("analysis"), true).is_ok());
    // Not a run.
    let err = report(tmp.path(), false).unwrap_err().to_string();
    assert!(err.contains("not a grokscope run directory"), "{err}");
    // A report that fails (metrics.csv without rows) leaves the previous one intact.
    let html_before = std::fs::read(dir.join("report/report.html")).unwrap();
    let text = std::fs::read_to_string(dir.join("metrics.csv")).unwrap();
    // Cut inside the last number: the missing newline gives it away.
    std::fs::write(dir.join("metrics.csv"), &text[..text.len() - 3]).unwrap();
    let err = report(&dir, true).unwrap_err().to_string();
    assert!(err.contains("truncated"), "{err}");
    std::fs::write(
        dir.join("metrics.csv"),
        format!("{}\n", text.lines().next().unwrap()),
    )
    .unwrap();
    let err = report(&dir, true).unwrap_err().to_string();
    assert!(
        err.contains("metrics.csv") && err.contains("no rows"),
        "{err}"
    );
    assert_eq!(
        std::fs::read(dir.join("report/report.html")).unwrap(),
        html_before
    );
    assert!(
        !dir.join(".report.tmp").exists(),
        "no half-written report left behind"
    );
}

#[test]
fn sweep_report_has_phase_diagrams() {
    let tmp = tempfile::tempdir().unwrap();
    let text = r#"
name = "tiny-sweep"
[base]
data.p = 11
model.width = 16
train.epochs = 40
[axes]
"data.train_fraction" = [0.4, 0.8]
"data.corruption" = [0.1, 0.4]
"train.weight_decay" = [0, 2]
"model.init_seed" = [0, 1]
"#;
    let plan = grokscope::sweep::Plan::from_text(text).unwrap();
    let dir = tmp.path().join("sweep");
    grokscope::sweep::run_all(&plan, &dir, None, &mut |_| {}).unwrap();
    report(&dir, false).unwrap();
    let rep = dir.join("report");
    let figures = ["phase_grid", "test_acc_grid", "mem_acc_grid"];
    for f in figures {
        let (w, h) = check_figure(&rep, f);
        assert_eq!((w, h), (1280, 480), "{f}: two panels, one per weight decay");
    }
    check_html(&rep, &figures);
    let svg = std::fs::read_to_string(rep.join("phase_grid.svg")).unwrap();
    for phase in [
        "Coexistence",
        "Partial Inversion",
        "Full Inversion",
        "Memorization",
        "Forgetting",
        "Confusion",
        "Generalization",
        "Diverged",
    ] {
        assert!(svg.contains(phase), "legend names {phase}");
    }
}

/// Ink columns and rows (pixels with more than ~8 % coverage) of an RGB buffer.
fn ink_box(px: &[u8], w: usize) -> Option<(usize, usize, usize, usize)> {
    let mut b: Option<(usize, usize, usize, usize)> = None;
    for (i, p) in px.chunks(3).enumerate() {
        if (p[0] as u32 + p[1] as u32 + p[2] as u32) < 3 * 235 {
            let (x, y) = (i % w, i / w);
            b = Some(match b {
                None => (x, y, x, y),
                Some((x0, y0, x1, y1)) => (x0.min(x), y0.min(y), x1.max(x), y1.max(y)),
            });
        }
    }
    b
}

fn render_text(text: &str, size: f64) -> (usize, usize, usize, usize) {
    use grokscope::report::text::{Crisp, TextMode};
    use plotters::prelude::*;
    let (w, h) = (900usize, 80usize);
    let mut px = vec![255u8; w * h * 3];
    {
        let area = Crisp {
            inner: BitMapBackend::with_buffer(&mut px, (w as u32, h as u32)),
            mode: TextMode::Raster,
        }
        .into_drawing_area();
        area.draw(&Text::new(
            text,
            (20, 20),
            ("sans-serif", size).into_font().color(&BLACK),
        ))
        .unwrap();
        area.present().unwrap();
    }
    ink_box(&px, w).expect("the text left ink")
}

/// PNG text is DejaVu Sans at the size asked for: the ink of a known string spans what the
/// font's advance widths and kerning say (within 5 %), and a capital's height is the font's
/// cap height (0.729 em, em = size / 1.24, the em the SVG writes).
#[test]
fn png_text_has_the_fonts_widths_and_size() {
    use grokscope::report::text::{advance, em, ink_extent};
    for (s, size) in [
        ("fraction of neurons pruned", 16.0),
        ("accuracy, model 0 (ξ=0.35, wd=5)", 18.0),
        ("Wave AVAVA tl;dr 0.0095", 13.0),
    ] {
        let (x0, _, x1, _) = render_text(s, size);
        let measured = (x1 - x0 + 1) as f64;
        let (lo, hi) = ink_extent(s, size);
        let expected = hi - lo;
        let adv = advance(s, size, false);
        // The acceptance asks for 5 %; glyphs placed at their advances land within 1.5 px.
        // (plotters' own bitmap text misses by 4.6 % on these strings: size by line height,
        // left bearings dropped.)
        assert!(
            (measured - expected).abs() <= 0.05 * adv && (measured - expected).abs() <= 1.5,
            "{s:?} at {size}: ink {measured} px, the font says {expected:.1} px (advance {adv:.1})"
        );
        // Where the ink starts: the pen (x = 20) plus the first glyph's left bearing.
        assert!(
            (x0 as f64 - (20.0 + lo)).abs() <= 1.5,
            "{s:?}: starts at {x0}, expected {}",
            20.0 + lo
        );
    }
    let (_, y0, _, y1) = render_text("H", 40.0);
    let cap = (y1 - y0 + 1) as f64;
    let want = 0.729 * em(40.0) as f64;
    assert!(
        (cap - want).abs() <= 1.5,
        "cap height {cap} px, expected {want:.1}"
    );
}

/// Legends sit where no data is drawn: checked against the data's own pixel positions,
/// computed here from the plot rectangle and the axis ranges (not by the chart).
#[test]
fn legends_never_cover_plotted_points() {
    use grokscope::report::plot::{Dash, Line, LineChart, PALETTE};
    use grokscope::report::text::{Crisp, TextMode};
    use plotters::prelude::*;
    let curve = |f: &dyn Fn(f64) -> f64| {
        (0..=200)
            .map(|i| (i as f64, f(i as f64)))
            .collect::<Vec<_>>()
    };
    let cases: Vec<Vec<Vec<(f64, f64)>>> = vec![
        // Accuracy-like: rising to 1, one falling, one flat at 0.
        vec![
            curve(&|x| 1.0 - (-x / 20.0).exp()),
            curve(&|x| 1.0 / (1.0 + (-(x - 120.0) / 10.0).exp())),
            curve(&|x| (-(x / 60.0)).exp()),
            curve(&|_| 0.0),
        ],
        // Every corner crossed: lines along all four edges and both diagonals.
        vec![
            curve(&|_| 1.0),
            curve(&|_| 0.0),
            curve(&|x| x / 200.0),
            curve(&|x| 1.0 - x / 200.0),
            curve(&|x| 0.5 + 0.5 * (x / 7.0).sin()),
        ],
        // Pruning-like: everything high on the left, collapsing at the right.
        vec![
            curve(&|x| if x < 180.0 { 1.0 } else { (200.0 - x) / 20.0 }),
            curve(&|x| 0.9 - x / 400.0),
        ],
    ];
    for (k, lines) in cases.into_iter().enumerate() {
        let chart = LineChart {
            title: format!("case {k}"),
            x_desc: "x",
            y_desc: "y",
            lines: lines
                .iter()
                .enumerate()
                .map(|(i, p)| Line {
                    label: format!("series {i}"),
                    color: PALETTE[i],
                    dash: if i % 2 == 0 {
                        Dash::Solid
                    } else {
                        Dash::Dashed
                    },
                    points: p.clone(),
                })
                .collect(),
            log_x: false,
            log_y: false,
            y_range: Some((-0.02, 1.02)),
            marks: vec![],
        };
        let (w, h) = (640u32, 420u32);
        let mut px = vec![255u8; (w * h * 3) as usize];
        let drawn = {
            let area = Crisp {
                inner: BitMapBackend::with_buffer(&mut px, (w, h)),
                mode: TextMode::Raster,
            }
            .into_drawing_area();
            chart.draw(&area).unwrap()
        };
        let (plot, legend) = (drawn.plot.unwrap(), drawn.legend.unwrap());
        // The data's pixels, mapped here: x over [0, 200], y over [-0.02, 1.02].
        let map = |(x, y): (f64, f64)| {
            let fx = plot.x0 as f64 + x / 200.0 * (plot.x1 - plot.x0) as f64;
            let fy = plot.y1 as f64 - (y + 0.02) / 1.04 * (plot.y1 - plot.y0) as f64;
            (fx, fy)
        };
        for l in &lines {
            for pair in l.windows(2) {
                let (a, b) = (map(pair[0]), map(pair[1]));
                for t in 0..=20 {
                    let t = t as f64 / 20.0;
                    let (x, y) = (a.0 + (b.0 - a.0) * t, a.1 + (b.1 - a.1) * t);
                    let inside = x > (legend.x0 - 1) as f64
                        && x < (legend.x1 + 1) as f64
                        && y > (legend.y0 - 1) as f64
                        && y < (legend.y1 + 1) as f64;
                    assert!(
                        !inside,
                        "case {k}: a line passes under the legend {legend:?} at ({x:.0}, {y:.0})"
                    );
                }
            }
        }
        if k == 1 {
            assert!(
                legend.x0 >= plot.x1,
                "case 1 has no free corner: the legend goes beside the plot"
            );
        }
    }
}

/// The default run's report.html is one file under 3 MB that references nothing outside
/// itself, and it shows the interactive curves of its three models.
#[test]
fn default_report_is_small_and_self_contained() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg: Config = toml::from_str(grokscope::config::DEFAULT_CONFIG).unwrap();
    let dir = tmp.path().join("run");
    train(cfg, &dir);
    let html_path = report(&dir, false).unwrap();
    let bytes = std::fs::metadata(&html_path).unwrap().len();
    assert!(bytes < 3_000_000, "report.html is {bytes} bytes");
    let html = std::fs::read_to_string(&html_path).unwrap();
    assert_self_contained(&html);
    // 3 accuracy charts, 2 overlays, 3 loss charts.
    assert_eq!(html.matches("data-chart=").count(), 8);
    assert!(
        html.contains("A_mem drop") || html.contains("A_mem"),
        "dynamics in the table"
    );
    // An MLP run's config shows no [model.transformer].
    assert!(!html.contains("[model.transformer]"));
}

/// `compare` overlays two runs in one figure (test accuracy and A_mem of each, in the SVG's
/// legend) and tabulates them; it never writes into a directory that is not a comparison.
#[test]
fn compare_overlays_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let mut dirs = Vec::new();
    for (name, wd) in [("plain", 0.0), ("decayed", 5.0)] {
        let mut cfg = Config {
            name: name.into(),
            ..Default::default()
        };
        cfg.data.p = 13;
        cfg.data.corruption = Axis::One(0.3);
        cfg.model.mlp.width = 24;
        cfg.train.weight_decay = Axis::One(wd);
        cfg.train.epochs = Some(40);
        let dir = tmp.path().join(name);
        train(cfg, &dir);
        dirs.push(dir);
    }
    let out = tmp.path().join("cmp");
    let opts = grokscope::report::Options::default();
    let done = grokscope::report::compare(&dirs, &out, false, &opts).unwrap();
    assert_eq!((done.curves, done.drawn), (2, 2));
    assert_self_contained(&std::fs::read_to_string(&done.page).unwrap());
    let svg = std::fs::read_to_string(out.join("compare.svg")).unwrap();
    for label in [
        "plain: test",
        "plain: A_mem",
        "decayed: test",
        "decayed: A_mem",
    ] {
        assert!(svg.contains(label), "{label} in compare.svg's legend");
    }
    let csv = std::fs::read_to_string(out.join("compare.csv")).unwrap();
    assert_eq!(csv.lines().count(), 3, "{csv}");
    // An existing comparison is replaced only with force; a run directory never.
    assert!(grokscope::report::compare(&dirs, &out, false, &opts).is_err());
    assert!(grokscope::report::compare(&dirs, &out, true, &opts).is_ok());
    let err = grokscope::report::compare(&dirs, &dirs[0], true, &opts)
        .unwrap_err()
        .to_string();
    assert!(err.contains("is not an earlier comparison"), "{err}");
    assert!(dirs[0].join("config.toml").is_file());
    // Nor a directory that holds a compare.html among other things.
    std::fs::write(out.join("notes.txt"), "mine").unwrap();
    let err = grokscope::report::compare(&dirs, &out, true, &opts)
        .unwrap_err()
        .to_string();
    assert!(err.contains("notes.txt"), "{err}");
    assert!(out.join("notes.txt").is_file());
    // A model given twice.
    let twice = std::path::PathBuf::from(format!("{}:0,0", dirs[0].display()));
    let err = grokscope::report::compare(&[twice], &tmp.path().join("c3"), false, &opts)
        .unwrap_err()
        .to_string();
    assert!(err.contains("already being compared"), "{err}");
    // A model that does not exist.
    let bad = std::path::PathBuf::from(format!("{}:3", dirs[0].display()));
    let err = grokscope::report::compare(&[bad], &tmp.path().join("c2"), false, &opts)
        .unwrap_err()
        .to_string();
    assert!(err.contains("no model 3"), "{err}");
}

/// A phase diagram keeps every cell in its phase's colour (a disagreement of seeds is a black
/// corner, not a lighter hue) and writes the phase's code in the cell.
#[test]
fn phase_grid_marks_disagreement_without_changing_the_hue() {
    use grokscope::metrics::Phase;
    use grokscope::report::grid::{phase_color, PhaseGrid};
    use grokscope::report::text::{Crisp, TextMode};
    use plotters::prelude::*;
    let alphas = vec!["0.3".to_string(), "0.5".to_string()];
    let xis = vec!["0.1".to_string(), "0.3".to_string()];
    let grid = PhaseGrid {
        title: "test".into(),
        y_desc: "training fraction α",
        rows: &alphas,
        xis: &xis,
        cells: vec![
            (0, 0, Phase::Coexistence, 1.0),
            (0, 1, Phase::Memorization, 0.5),
            (1, 0, Phase::FullInversion, 2.0 / 3.0),
            (1, 1, Phase::PartialInversion, 1.0),
        ],
    };
    let (w, h) = (640u32, 480u32);
    let mut px = vec![255u8; (w * h * 3) as usize];
    {
        let area = Crisp {
            inner: BitMapBackend::with_buffer(&mut px, (w, h)),
            mode: TextMode::Raster,
        }
        .into_drawing_area();
        grid.draw(&area).unwrap();
        area.present().unwrap();
    }
    let at = |x: u32, y: u32| {
        let i = ((y * w + x) * 3) as usize;
        (px[i], px[i + 1], px[i + 2])
    };
    // Count each phase's exact colour and black pixels per quadrant of the cell area
    // (the plot spans roughly x 72..450, y 30..430 on this canvas).
    let count = |x0: u32, x1: u32, y0: u32, y1: u32, c: (u8, u8, u8)| {
        (y0..y1)
            .flat_map(|y| (x0..x1).map(move |x| (x, y)))
            .filter(|&(x, y)| at(x, y) == c)
            .count()
    };
    let rgb = |p: Phase| {
        let c = phase_color(p);
        (c.0, c.1, c.2)
    };
    // Cells: bottom-left Co (α 0.3, ξ 0.1), bottom-right Me, top-left FI, top-right PI.
    let (xm, ym) = (260, 230);
    let quads = [
        (80, xm, ym, 420, Phase::Coexistence, false),
        (xm, 445, ym, 420, Phase::Memorization, true),
        (80, xm, 40, ym, Phase::FullInversion, true),
        (xm, 445, 40, ym, Phase::PartialInversion, false),
    ];
    for (x0, x1, y0, y1, phase, disagree) in quads {
        let own = count(x0, x1, y0, y1, rgb(phase));
        assert!(own > 10_000, "{phase:?}: {own} pixels of its exact colour");
        let black = count(x0, x1, y0, y1, (0, 0, 0));
        if disagree {
            assert!(black > 150, "{phase:?}: a black corner mark ({black} px)");
        } else {
            assert!(black < 150, "{phase:?}: no mark ({black} black px)");
        }
    }
    let png = image::RgbImage::from_raw(w, h, px).unwrap();
    std::fs::create_dir_all("target").ok();
    png.save("target/phase-grid-test.png").ok();
}

/// A model whose loss became NaN (all-zero IPR histograms from then on) still has a report,
/// and the report of a run that has not finished says so.
#[test]
fn diverged_and_unfinished_runs_are_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = Config {
        name: "nan".into(),
        ..Default::default()
    };
    cfg.data.p = 13;
    cfg.model.mlp.width = 16;
    cfg.train.lr = Axis::Many(vec![0.01, 1e6]);
    cfg.train.epochs = Some(40);
    let dir = tmp.path().join("nan");
    train(cfg, &dir);
    let summary = std::fs::read_to_string(dir.join("summary.json")).unwrap();
    assert!(summary.contains("Diverged"), "model 1 diverged");
    let html = std::fs::read_to_string(report(&dir, false).unwrap()).unwrap();
    assert!(html.contains("Diverged"));
    assert!(!html.contains("has not finished"));
    // Without its weights the run reads as unfinished (as while it trains).
    std::fs::remove_file(dir.join("weights.safetensors")).unwrap();
    let html = std::fs::read_to_string(report(&dir, true).unwrap()).unwrap();
    assert!(
        html.contains("has not finished"),
        "an unfinished run is said to be one"
    );
}

/// Tick labels never repeat: as many decimals as the spacing needs (the loss axis of the
/// default run used to read 0.011, 0.01, 0.01, 0.009, 0.009).
#[test]
fn tick_labels_are_distinct() {
    use grokscope::report::plot::{log_tick, tick};
    for (lo, hi, step) in [
        (0.0088f64, 0.0112f64, 0.0005f64),
        (0.0, 1.0, 0.2),
        (10.0, 35.0, 5.0),
        (-0.02, 1.02, 0.1),
        (1e-7, 2e-6, 2e-7),
        (0.0, 500.0, 100.0),
    ] {
        let mut labels = Vec::new();
        let mut v = (lo / step).ceil() * step;
        while v <= hi + 1e-12 {
            labels.push(tick(v, hi - lo));
            v += step;
        }
        let mut unique = labels.clone();
        unique.dedup();
        assert_eq!(labels, unique, "{lo}..{hi}: {labels:?}");
        assert!(labels.len() >= 3, "{lo}..{hi}: {labels:?}");
    }
    assert_eq!(tick(0.2, 1.0), "0.2");
    assert_eq!(tick(500.0, 500.0), "500");
    assert_eq!(log_tick(1000.0), "1000");
    assert_eq!(log_tick(0.002), "2e-3");
    assert_eq!(log_tick(2.5e-4), "2.5e-4");
}
