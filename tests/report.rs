//! Reports: every figure is a valid PNG and SVG of the expected size, made from a small real
//! run or sweep; report.html references only what it embeds or what sits beside it.

use grokscope::config::{Axis, Config};
use grokscope::experiment::train_into;
use grokscope::report::report;
use grokscope::rundir::RunDir;
use std::path::Path;

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

/// Every `src=` and `href=` is a data URI or a file beside report.html.
fn check_html(dir: &Path, figures: &[&str]) {
    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    for attr in ["src=\"", "href=\""] {
        for part in html.split(attr).skip(1) {
            let target = &part[..part.find('"').unwrap()];
            if target.starts_with("data:image/png;base64,") {
                continue;
            }
            assert!(
                !target.contains('/') && !target.contains(':'),
                "external reference {target}"
            );
            assert!(dir.join(target).exists(), "missing {target}");
        }
    }
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "no network references"
    );
    assert_eq!(html.matches("<figure").count(), figures.len());
    for f in figures {
        assert!(html.contains(&format!("id=\"{f}\"")), "{f} in report.html");
    }
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
    cfg.model.width = 24;
    cfg.model.batchnorm = true;
    cfg.train.weight_decay = Axis::Many(vec![0.0, 1.0]);
    cfg.train.epochs = Some(60);
    let dir = tmp.path().join("run");
    let run = RunDir::create(&dir).unwrap();
    let cfg = cfg.check().unwrap();
    run.write_config(&cfg).unwrap();
    train_into(
        &cfg,
        cfg.setup().unwrap(),
        &run,
        false,
        Default::default(),
        &mut |_| Ok(()),
    )
    .unwrap();
    let html = report(&dir, false).unwrap();
    assert_eq!(html, dir.join("report/report.html"));
    let rep = dir.join("report");
    let figures = [
        "accuracy",
        "loss_norms",
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
    assert_eq!(check_figure(&rep, "accuracy"), (1120, 360));
    assert_eq!(check_figure(&rep, "loss_norms"), (1120, 720));
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
    std::fs::write(
        dir.join("metrics.csv"),
        std::fs::read_to_string(dir.join("metrics.csv"))
            .unwrap()
            .lines()
            .next()
            .unwrap(),
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
