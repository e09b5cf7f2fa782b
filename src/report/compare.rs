//! `grokscope compare RUN_DIR… --out DIR`: several runs (or chosen models of runs) overlaid —
//! a figure of their test accuracy and A_mem (and training loss), a table of their final
//! metrics and dynamics (`compare.csv`), and one self-contained `compare.html` with the
//! curves to explore.

use super::curves::{self, overlay_panels, Options, Overlay};
use super::figure::{save_figure, short_label};
use super::html::{self, esc, Page};
use crate::analysis::dynamics::dynamics;
use crate::error::{Error, Result};
use crate::metrics::{Record, Thresholds};
use crate::rundir::{swap, RunDir};
use std::path::{Path, PathBuf};

/// At most this many curves are overlaid.
pub const MAX_CURVES: usize = 24;

/// The page written into the output directory.
pub const PAGE: &str = "compare.html";

/// One curve to compare: a model of a run.
struct Curve {
    dir: PathBuf,
    model: usize,
    label: String,
    history: Vec<Record>,
    th: Thresholds,
}

/// `DIR` (every model) or `DIR:i,j` (models i and j of the run in DIR, when `DIR:i,j` itself is
/// not a directory).
fn parse_arg(arg: &Path) -> Result<(PathBuf, Option<Vec<usize>>)> {
    let s = arg.to_string_lossy();
    if !arg.exists() {
        if let Some((dir, models)) = s.rsplit_once(':') {
            if !models.is_empty() && models.chars().all(|c| c.is_ascii_digit() || c == ',') {
                let picked: std::result::Result<Vec<usize>, _> =
                    models.split(',').map(|m| m.parse::<usize>()).collect();
                return match picked {
                    Ok(p) if !p.is_empty() => Ok((PathBuf::from(dir), Some(p))),
                    _ => Err(Error::NotARun {
                        dir: arg.to_path_buf(),
                        why: "after the ':' expected model numbers such as 0 or 0,2".into(),
                    }),
                };
            }
        }
    }
    Ok((arg.to_path_buf(), None))
}

fn load(args: &[PathBuf]) -> Result<Vec<Curve>> {
    let mut runs = Vec::new();
    for arg in args {
        let (dir, models) = parse_arg(arg)?;
        let run = RunDir::open(&dir)?;
        let cfg = run.read_config()?;
        let specs = cfg.fleet();
        let history = run.read_history(specs.len())?;
        let picked = match models {
            Some(m) => {
                if let Some(&bad) = m.iter().find(|&&i| i >= specs.len()) {
                    return Err(Error::NotARun {
                        dir: arg.clone(),
                        why: format!(
                            "it has {} models (0 to {}); there is no model {bad}",
                            specs.len(),
                            specs.len() - 1
                        ),
                    });
                }
                m
            }
            None => (0..specs.len()).collect(),
        };
        runs.push((dir, cfg, specs, history, picked));
    }
    // A run is named by its config's name, or by its directory when two runs share a name.
    let names: Vec<String> = runs.iter().map(|r| r.1.name.clone()).collect();
    let mut out = Vec::new();
    for (dir, cfg, specs, history, picked) in runs {
        let name = if names.iter().filter(|n| **n == cfg.name).count() > 1 {
            dir.file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_else(|| dir.display().to_string())
        } else {
            cfg.name.clone()
        };
        let th = Thresholds::from(&cfg.eval);
        for i in picked {
            let label = if specs.len() > 1 {
                format!("{name} ({})", short_label(&specs, i))
            } else {
                name.clone()
            };
            out.push(Curve {
                dir: dir.clone(),
                model: i,
                label,
                history: history[i].clone(),
                th,
            });
        }
    }
    Ok(out)
}

fn opt(x: Option<f64>) -> String {
    x.map(|v| format!("{v:.4}")).unwrap_or_default()
}

fn step(s: Option<u64>) -> String {
    s.map(|s| s.to_string()).unwrap_or_default()
}

/// `compare.csv`: one row per curve.
fn table_csv(curves: &[Curve]) -> String {
    let mut s = String::from("label,run,model,phase,steps,train_acc,test_acc,mem_acc,inv_acc,clean_acc,mean_ipr,first_train_acc_hi,first_test_acc_hi,first_inv_acc_hi,first_mem_acc_hi,last_mem_acc_drop\n");
    for c in curves {
        let Some(r) = c.history.last() else { continue };
        let d = dynamics(&c.history, c.th.hi);
        let quote = |x: &str| format!("\"{}\"", x.replace('"', "\"\""));
        s.push_str(&format!(
            "{},{},{},{},{},{:.4},{:.4},{},{},{},{},{},{},{},{},{}\n",
            quote(&c.label),
            quote(&c.dir.display().to_string()),
            c.model,
            r.phase(c.th).name(),
            r.step,
            r.train_acc,
            r.test_acc,
            opt(r.mem_acc),
            opt(r.inv_acc),
            opt(r.clean_acc),
            opt(r.mean_ipr),
            step(d.first_train_acc_hi),
            step(d.first_test_acc_hi),
            step(d.first_inv_acc_hi),
            step(d.first_mem_acc_hi),
            step(d.last_mem_acc_drop)
        ));
    }
    s
}

fn table_html(curves: &[Curve]) -> String {
    let mut t = String::from("<table><tr><th>curve</th><th>run</th><th>model</th><th>phase</th><th>steps</th><th>train</th><th>test</th><th>A_mem</th><th>A_inv</th><th>A_clean</th><th>mean IPR</th><th>train ≥ hi</th><th>test ≥ hi</th><th>A_inv ≥ hi</th><th>A_mem ≥ hi</th><th>A_mem drop</th></tr>\n");
    let dash = |s: String| if s.is_empty() { "—".to_string() } else { s };
    for c in curves {
        let Some(r) = c.history.last() else { continue };
        let d = dynamics(&c.history, c.th.hi);
        t.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.3}</td><td>{:.3}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>\n",
            esc(&c.label),
            esc(&c.dir.display().to_string()),
            c.model,
            esc(r.phase(c.th).name()),
            r.step,
            r.train_acc,
            r.test_acc,
            dash(opt(r.mem_acc)),
            dash(opt(r.inv_acc)),
            dash(opt(r.clean_acc)),
            dash(opt(r.mean_ipr)),
            dash(step(d.first_train_acc_hi)),
            dash(step(d.first_test_acc_hi)),
            dash(step(d.first_inv_acc_hi)),
            dash(step(d.first_mem_acc_hi)),
            dash(step(d.last_mem_acc_drop))
        ));
    }
    t.push_str("</table><p>Final metrics (last evaluation) and dynamics: the first step at which an accuracy reached its run's threshold hi, and the last step at which A_mem fell below it (— never).</p>");
    t
}

/// Compares the runs `args` into the directory `out` (created, or replaced with `force` when
/// it holds an earlier comparison); returns the path of `compare.html`.
pub fn compare(args: &[PathBuf], out: &Path, force: bool, opts: &Options) -> Result<PathBuf> {
    if args.is_empty() {
        return Err(Error::Config(
            "compare needs at least one run directory".into(),
        ));
    }
    let mut curves = load(args)?;
    let note = if curves.len() > MAX_CURVES {
        let n = curves.len();
        curves.truncate(MAX_CURVES);
        format!(
            " The first {MAX_CURVES} of {n} curves are shown (name models as DIR:0,2 to choose)."
        )
    } else {
        String::new()
    };
    swap::recover(out)?;
    if out.exists() {
        if !out.join(PAGE).is_file() {
            return Err(Error::io(
                out,
                std::io::Error::other(format!(
                    "it exists and holds no {PAGE}: compare writes only into a new directory or replaces an earlier comparison; choose another --out"
                )),
            ));
        }
        if !force {
            return Err(Error::FileExists(out.to_path_buf()));
        }
    }
    let staged = swap::stage(out)?;
    let made = write(&curves, &staged, opts, &note);
    if let Err(e) = made {
        swap::discard(&staged);
        return Err(e);
    }
    swap::swap_in(&staged, out)?;
    Ok(out.join(PAGE))
}

fn write(curves: &[Curve], dir: &Path, opts: &Options, note: &str) -> Result<()> {
    let axis = opts.step_axis.unwrap_or_default();
    let log_x = axis.is_log(curves.iter().flat_map(|c| c.history.iter().map(|r| r.step)));
    let step = if log_x { "step (log)" } else { "step" };
    let labelled: Vec<(String, &[Record])> = curves
        .iter()
        .map(|c| (c.label.clone(), c.history.as_slice()))
        .collect();
    let fig = save_figure(
        dir,
        "compare",
        "Runs compared",
        &format!("Top: test accuracy (solid) and A_mem (dashed), one colour per run or model. Bottom: training loss (log scale).{note}"),
        &overlay_panels(&labelled, log_x, step),
        1,
        (960, 460),
    )?;
    let csv = dir.join("compare.csv");
    crate::rundir::atomic_write(&csv, table_csv(curves).as_bytes())?;
    html::write(
        dir,
        PAGE,
        &Page {
            title: format!("grokscope compare: {} curves", curves.len()),
            summary: table_html(curves),
            sections: vec![(
                "Curves overlaid".into(),
                format!("One colour per run or model.{note}"),
                vec![
                    curves::overlay_chart(
                        "test accuracy (solid) and A_mem (dashed)",
                        Overlay::Accuracy,
                        &labelled,
                        log_x,
                    ),
                    curves::overlay_chart("training loss", Overlay::Loss, &labelled, log_x),
                    curves::overlay_chart(
                        "mean IPR of living neurons",
                        Overlay::Ipr,
                        &labelled,
                        log_x,
                    ),
                ],
            )],
            extra: String::new(),
            extra_data: serde_json::Value::Null,
            figures: &[fig],
            fig_dir: dir,
            config: None,
        },
    )?;
    Ok(())
}
