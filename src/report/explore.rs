//! The sweep report's explorer: the phase diagrams as clickable tables, and for a clicked cell
//! (or any value per axis) its runs' curves, drawn in the browser by uPlot from the sweep's
//! `curves/` (embedded in the page; the script is in `html.rs`).

use super::html::esc;
use super::plot::{tick_str, PALETTE};
use crate::config::StepAxis;
use crate::error::Result;
use crate::metrics::Phase;
use crate::metrics::Record;
use crate::sweep::results::Grid;
use crate::sweep::store::{self, RunRecord};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::Path;

fn series(curve: &[Record], f: impl Fn(&Record) -> Option<f64>) -> Value {
    Value::Array(
        curve
            .iter()
            .map(|r| {
                f(r).filter(|x| x.is_finite())
                    .map_or(Value::Null, |x| json!(x))
            })
            .collect(),
    )
}

fn thin(curve: Vec<Record>) -> Vec<Record> {
    let keep = super::html::thin(curve.len());
    keep.into_iter().map(|i| curve[i].clone()).collect()
}

fn cell(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The phase grids as clickable tables (α or the weight decay upward, ξ rightward, each cell in its phase's
/// colour with its code, a corner mark where seeds disagree).
fn grid_tables(grids: &[Grid]) -> String {
    let mut h = String::new();
    for g in grids {
        let title = g.title();
        h.push_str(&format!(
            "<h3>{}</h3>\n<table class=\"grid\">\n",
            esc(&title)
        ));
        for (row, a) in g.rows.iter().enumerate().rev() {
            h.push_str(&format!(
                "<tr><th>{}</th>",
                if row + 1 == g.rows.len() {
                    format!("{} ↑ {}", g.axis.symbol, esc(&tick_str(a)))
                } else {
                    esc(&tick_str(a))
                }
            ));
            for x in &g.xis {
                match g.cells.iter().find(|c| c.row == *a && c.xi == *x) {
                    Some(c) => {
                        let (r, gr, b) = c.phase.rgb();
                        let light =
                            0.299 * r as f64 + 0.587 * gr as f64 + 0.114 * b as f64 <= 140.0;
                        let ids: Vec<String> = c.ids.iter().map(|i| i.to_string()).collect();
                        h.push_str(&format!(
                            "<td class=\"{}{}\" style=\"background:#{r:02x}{gr:02x}{b:02x}\" data-runs=\"{}\" title=\"{} = {}, ξ = {}: {} ({} of {} runs agree)\">{}</td>",
                            if light { "light" } else { "" },
                            if c.agreement < 1.0 { " dis" } else { "" },
                            ids.join(" "),
                            g.axis.symbol,
                            esc(a),
                            esc(x),
                            esc(c.phase.name()),
                            (c.agreement * c.runs as f64).round(),
                            c.runs,
                            c.phase.code()
                        ));
                    }
                    None => {
                        h.push_str("<td title=\"no run: not finished, or not in the plan\">··</td>")
                    }
                }
            }
            h.push_str("</tr>\n");
        }
        h.push_str("<tr><th></th>");
        for x in &g.xis {
            h.push_str(&format!("<th>{}</th>", esc(&tick_str(x))));
        }
        h.push_str("<th>ξ →</th></tr>\n</table>\n");
    }
    if !grids.is_empty() {
        let codes: Vec<String> = Phase::ALL
            .iter()
            .map(|p| format!("{} {}", p.code(), esc(p.name())))
            .collect();
        h.push_str(&format!(
            "<p>Codes: {}. A black corner: the cell's seeds disagree. Click a cell to see its runs' curves below.</p>\n",
            codes.join(", ")
        ));
    }
    h
}

/// The explorer section (HTML) and the data its script reads, or a note when no run has a
/// curve.
pub fn explorer(
    dir: &Path,
    axes: &[String],
    records: &BTreeMap<usize, RunRecord>,
    grids: &[Grid],
) -> Result<(String, Value)> {
    let mut runs = Vec::new();
    let mut values: Vec<Vec<String>> = vec![Vec::new(); axes.len()];
    let mut missing = 0;
    let mut steps_seen: Vec<u64> = Vec::new();
    for r in records.values() {
        // A missing curve is a run being trained again; a wrong one is an error.
        if !store::has_curve(dir, r.run) {
            missing += 1;
            continue;
        }
        let curve = store::read_checked_curve(dir, r)?;
        let curve = thin(curve);
        if steps_seen.is_empty() {
            steps_seen = curve.iter().map(|x| x.step).collect();
        }
        let coords: Vec<String> = axes
            .iter()
            .map(|a| r.coords.get(a).map(cell).unwrap_or_default())
            .collect();
        for (i, c) in coords.iter().enumerate() {
            if !values[i].contains(c) {
                values[i].push(c.clone());
            }
        }
        runs.push(json!({
            "run": r.run,
            "coords": coords,
            "phase": r.phase.name(),
            "step": curve.iter().map(|x| x.step).collect::<Vec<_>>(),
            "train": series(&curve, |x| Some(x.train_acc)),
            "test": series(&curve, |x| Some(x.test_acc)),
            "mem": series(&curve, |x| x.mem_acc),
            "inv": series(&curve, |x| x.inv_acc),
            "clean": series(&curve, |x| x.clean_acc),
        }));
    }
    let tables = grid_tables(grids);
    if runs.is_empty() {
        return Ok((
            format!("<h2>Phase diagrams</h2>\n{tables}<h2>Curves of a cell</h2><p>No run of this sweep has its curve ({missing} finished runs without curves/: written by a grokscope before curves were kept).</p>"),
            Value::Null,
        ));
    }
    for v in &mut values {
        v.sort_by(|a, b| match (a.parse::<f64>(), b.parse::<f64>()) {
            (Ok(x), Ok(y)) => x.total_cmp(&y),
            _ => a.cmp(b),
        });
    }
    let log_x = StepAxis::Auto.is_log(steps_seen.into_iter());
    let palette: Vec<String> = PALETTE.iter().map(|c| super::html::hex(*c)).collect();
    let data =
        json!({ "axes": axes, "values": values, "runs": runs, "log_x": log_x, "palette": palette });
    let heading = if grids.is_empty() {
        ""
    } else {
        "<h2>Phase diagrams</h2>\n"
    };
    Ok((
        format!(
            "{heading}{tables}<h2 id=\"explore\">Curves of a cell</h2>\n<p>Click a cell of a phase diagram, or pick a value of every axis, to see its runs' accuracies over training ({} runs with curves{}).</p>\n<div id=\"pickers\" class=\"ctl\"></div>\n<p id=\"cell-info\"></p>\n<div id=\"cell-charts\" class=\"charts\"></div>\n",
            runs.len(),
            if missing > 0 {
                format!("; {missing} without")
            } else {
                String::new()
            }
        ),
        data,
    ))
}
