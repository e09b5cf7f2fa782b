//! `grokscope compare RUN_DIR… --out DIR`: several runs (or chosen models of runs) overlaid —
//! a figure of their test accuracy and A_mem (and training loss), a table of their final
//! metrics and dynamics (`compare.csv`), and one self-contained `compare.html` with the
//! curves to explore.

use super::curves::{self, overlay_panels, Options, Overlay};
use super::figure::{save_figure, short_label};
use super::html::{self, esc, Page};
use crate::analysis::dynamics::dynamics;
use crate::config::StepAxis;
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
    /// The run finished (its weights are written); else its curves end where it stopped.
    complete: bool,
    axis: StepAxis,
}

/// An argument that is not a run to compare.
fn bad_arg(arg: &Path, why: impl Into<String>) -> Error {
    Error::Config(format!("compare {}: {}", arg.display(), why.into()))
}

/// `DIR` (every model) or `DIR:i,j` (models i and j of the run in DIR, when `DIR:i,j` itself is
/// not a directory).
fn parse_arg(arg: &Path) -> Result<(PathBuf, Option<Vec<usize>>)> {
    let s = arg.to_string_lossy();
    let Some((dir, models)) = s.rsplit_once(':').filter(|(d, _)| Path::new(d).is_dir()) else {
        return Ok((arg.to_path_buf(), None));
    };
    let picked: std::result::Result<Vec<usize>, _> = models
        .split(',')
        .map(|m| m.trim().parse::<usize>())
        .collect();
    match (arg.exists(), picked) {
        (true, Ok(p)) if !p.is_empty() => Err(bad_arg(
            arg,
            format!(
                "both the directory of this name and models {models} of {dir} match: rename one, or write {}/ for the directory",
                s.trim_end_matches('/')
            ),
        )),
        (true, _) => Ok((arg.to_path_buf(), None)),
        (false, Ok(p)) if !p.is_empty() => Ok((PathBuf::from(dir), Some(p))),
        (false, _) => Err(bad_arg(
            arg,
            format!("after the ':' expected model numbers such as {dir}:0 or {dir}:0,2"),
        )),
    }
}

fn load(args: &[PathBuf]) -> Result<Vec<Curve>> {
    let mut runs = Vec::new();
    let mut seen: Vec<(PathBuf, usize)> = Vec::new();
    for arg in args {
        let (dir, models) = parse_arg(arg)?;
        if crate::sweep::store::is_sweep(&dir) {
            return Err(bad_arg(
                arg,
                "this is a sweep directory; compare takes run directories (grokscope report shows a sweep, and its runs' curves)",
            ));
        }
        let run = RunDir::open(&dir)?;
        let cfg = run.read_config()?;
        let specs = cfg.fleet();
        let history = run.read_history(specs.len())?;
        let n = specs.len();
        let picked = match models {
            Some(m) => {
                if let Some(&bad) = m.iter().find(|&&i| i >= n) {
                    return Err(bad_arg(
                        arg,
                        format!(
                            "the run has {n} model{} (0 to {}); there is no model {bad}",
                            if n == 1 { "" } else { "s" },
                            n - 1
                        ),
                    ));
                }
                m
            }
            None => (0..n).collect(),
        };
        let key = dir.canonicalize().unwrap_or_else(|_| dir.clone());
        for &i in &picked {
            if seen.contains(&(key.clone(), i)) {
                return Err(bad_arg(
                    arg,
                    format!("model {i} of this run is already being compared (each model once)"),
                ));
            }
            seen.push((key.clone(), i));
        }
        let complete = run.has_weights();
        runs.push((dir, cfg, specs, history, picked, complete));
    }
    // A run is named by its config's name, or by its directory when two runs share a name.
    // (by its path when their directories' names are the same too).
    let names: Vec<String> = runs.iter().map(|r| r.1.name.clone()).collect();
    let base = |d: &Path| d.file_name().map(|n| n.to_string_lossy().to_string());
    let bases: Vec<Option<String>> = runs.iter().map(|r| base(&r.0)).collect();
    let mut out = Vec::new();
    for (dir, cfg, specs, history, picked, complete) in runs {
        let name = if names.iter().filter(|n| **n == cfg.name).count() > 1 {
            match base(&dir) {
                Some(b) if bases.iter().filter(|x| x.as_ref() == Some(&b)).count() == 1 => b,
                _ => dir.display().to_string(),
            }
        } else {
            cfg.name.clone()
        };
        let th = Thresholds::from(&cfg.eval);
        for i in picked {
            let mut label = if specs.len() > 1 {
                format!("{name} ({})", short_label(&specs, i))
            } else {
                name.clone()
            };
            if !complete {
                label.push_str(" [unfinished]");
            }
            out.push(Curve {
                dir: dir.clone(),
                model: i,
                label,
                history: history[i].clone(),
                th,
                complete,
                axis: cfg.report.step_axis,
            });
        }
    }
    Ok(out)
}

/// A value for the table; empty when undefined (absent or not finite).
fn opt(x: Option<f64>) -> String {
    x.filter(|v| v.is_finite())
        .map(|v| format!("{v:.4}"))
        .unwrap_or_default()
}

fn step(s: Option<u64>) -> String {
    s.map(|s| s.to_string()).unwrap_or_default()
}

/// `compare.csv`: one row per curve.
fn table_csv(curves: &[Curve]) -> String {
    let mut s = String::from("label,run,model,complete,phase,steps,train_acc,test_acc,mem_acc,inv_acc,clean_acc,mean_ipr,first_train_acc_hi,first_test_acc_hi,first_inv_acc_hi,first_mem_acc_hi,last_mem_acc_drop\n");
    for c in curves {
        let Some(r) = c.history.last() else { continue };
        let d = dynamics(&c.history, c.th.hi);
        let quote = |x: &str| format!("\"{}\"", x.replace('"', "\"\""));
        s.push_str(&format!(
            "{},{},{},{},{},{},{:.4},{:.4},{},{},{},{},{},{},{},{},{}\n",
            quote(&c.label),
            quote(&c.dir.display().to_string()),
            c.model,
            c.complete,
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
    t.push_str("</table><p>Final metrics (last evaluation; [unfinished]: the run had not finished, its last evaluation so far) and dynamics: the first step at which an accuracy reached its run's threshold hi, and the last step at which A_mem fell below it (— never).</p>");
    t
}

/// The files a comparison directory holds: `--force` replaces a directory holding these only.
const FILES: [&str; 4] = [PAGE, "compare.csv", "compare.png", "compare.svg"];

/// Whether `out` may be written: new (its parent a directory), or an earlier comparison
/// (replaced only with `force`).
fn check_out(out: &Path, force: bool) -> Result<()> {
    let refuse = |why: String| Error::io(out, std::io::Error::other(why));
    if out
        .components()
        .next_back()
        .is_some_and(|c| !matches!(c, std::path::Component::Normal(_)))
    {
        return Err(refuse(
            "name the output directory itself (not `.`, `..` or `/`)".into(),
        ));
    }
    if out
        .symlink_metadata()
        .is_ok_and(|m| m.file_type().is_symlink())
    {
        return Err(refuse(
            "it is a symbolic link; give the directory's real path".into(),
        ));
    }
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if !parent.is_dir() {
        return Err(refuse(format!(
            "its parent {} is not a directory",
            parent.display()
        )));
    }
    if !out.exists() {
        return Ok(());
    }
    if !out.is_dir() {
        return Err(refuse("it is a file; choose another --out".into()));
    }
    // Plain files of the four names only: a directory or link named like one is not ours.
    let listed: Vec<(String, bool)> = std::fs::read_dir(out)
        .map_err(|e| Error::io(out, e))?
        .flatten()
        .map(|e| {
            let plain = e.file_type().is_ok_and(|t| t.is_file());
            (e.file_name().to_string_lossy().to_string(), plain)
        })
        .collect();
    let others: Vec<String> = listed
        .iter()
        .filter(|(n, plain)| !plain || !FILES.contains(&n.as_str()))
        .map(|(n, plain)| {
            if *plain {
                n.clone()
            } else {
                format!("{n} (not a plain file)")
            }
        })
        .collect();
    let entries: Vec<&String> = listed.iter().map(|(n, _)| n).collect();
    if !entries.iter().any(|n| *n == PAGE) || !others.is_empty() {
        return Err(refuse(format!(
            "it exists and is not an earlier comparison (it holds {}); compare writes only into a new directory or replaces one holding just {}",
            if others.is_empty() { "no compare.html".to_string() } else { others.iter().take(3).cloned().collect::<Vec<_>>().join(", ") },
            FILES.join(", ")
        )));
    }
    if !force {
        return Err(Error::FileExists(out.to_path_buf()));
    }
    Ok(())
}

/// What `compare` wrote.
#[derive(Debug)]
pub struct Compared {
    /// `compare.html`.
    pub page: PathBuf,
    /// Curves tabulated and curves drawn (at most [`MAX_CURVES`]).
    pub curves: usize,
    pub drawn: usize,
}

/// Compares the runs `args` into the directory `out` (created, or replaced with `force` when
/// it holds an earlier comparison).
pub fn compare(args: &[PathBuf], out: &Path, force: bool, opts: &Options) -> Result<Compared> {
    if args.is_empty() {
        return Err(Error::Config(
            "compare needs at least one run directory".into(),
        ));
    }
    swap::recover(out)?;
    check_out(out, force)?;
    let curves = load(args)?;
    let drawn = curves.len().min(MAX_CURVES);
    let staged = swap::stage(out)?;
    let made = write(&curves, drawn, &staged, opts).and_then(|_| swap::swap_in(&staged, out));
    if let Err(e) = made {
        swap::discard(&staged);
        return Err(e);
    }
    Ok(Compared {
        page: out.join(PAGE),
        curves: curves.len(),
        drawn,
    })
}

fn write(curves: &[Curve], drawn: usize, dir: &Path, opts: &Options) -> Result<()> {
    let note = if drawn < curves.len() {
        format!(
            " The first {drawn} of {} curves are drawn (all are in the table; name models as DIR:0,2 to choose).",
            curves.len()
        )
    } else {
        String::new()
    };
    let table = table_html(curves);
    let csv_text = table_csv(curves);
    let curves = &curves[..drawn];
    // The runs' own step axis when they agree, else auto.
    let agreed = curves
        .first()
        .map(|c| c.axis)
        .filter(|a| curves.iter().all(|c| c.axis == *a))
        .unwrap_or_default();
    let axis = opts.step_axis.unwrap_or(agreed);
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
    crate::fsio::write_atomic(&csv, csv_text.as_bytes())?;
    html::write(
        dir,
        PAGE,
        &Page {
            title: format!("grokscope compare: {} curves", curves.len()),
            summary: table,
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
