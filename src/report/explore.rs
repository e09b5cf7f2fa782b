//! The sweep report's explorer: pick any cell (a value per axis) and see its run's curves,
//! drawn in the browser from the sweep's `curves/` (embedded; no network).

use crate::error::Result;
use crate::metrics::Record;
use crate::sweep::store::{self, RunRecord};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::Path;

/// At most this many points per curve are embedded (evenly thinned, the last kept).
const MAX_POINTS: usize = 400;

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
    if curve.len() <= MAX_POINTS {
        return curve;
    }
    let k = curve.len().div_ceil(MAX_POINTS);
    let last = curve.len() - 1;
    curve
        .into_iter()
        .enumerate()
        .filter(|(i, _)| i % k == 0 || *i == last)
        .map(|(_, r)| r)
        .collect()
}

fn cell(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The explorer section (HTML with its script), or a note when no run has a curve.
pub fn explorer(
    dir: &Path,
    axes: &[String],
    records: &BTreeMap<usize, RunRecord>,
) -> Result<String> {
    let mut runs = Vec::new();
    let mut values: Vec<Vec<String>> = vec![Vec::new(); axes.len()];
    let mut missing = 0;
    for r in records.values() {
        // A missing curve is a run being trained again; a wrong one is an error.
        if !store::has_curve(dir, r.run) {
            missing += 1;
            continue;
        }
        let curve = store::read_checked_curve(dir, r)?;
        let curve = thin(curve);
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
    if runs.is_empty() {
        return Ok(format!(
            "<h2>Curves of a cell</h2><p>No run of this sweep has its curve ({missing} finished runs without curves/: written by a grokscope before curves were kept).</p>"
        ));
    }
    for v in &mut values {
        v.sort_by(|a, b| match (a.parse::<f64>(), b.parse::<f64>()) {
            (Ok(x), Ok(y)) => x.total_cmp(&y),
            _ => a.cmp(b),
        });
    }
    let data = json!({ "axes": axes, "values": values, "runs": runs });
    // `</` cannot end the script early: JSON escapes it.
    let data = data.to_string().replace("</", "<\\/");
    Ok(format!(
        "<h2 id=\"explore\">Curves of a cell</h2>\n<p>Pick a value of every axis to see that run's accuracies over training ({} runs with curves{}).</p>\n<div id=\"pickers\"></div>\n<p><label><input type=\"checkbox\" id=\"logx\" checked> log step axis</label> <span id=\"runinfo\"></span></p>\n<svg id=\"curves\" width=\"820\" height=\"380\" viewBox=\"0 0 820 380\" role=\"img\" aria-label=\"accuracy curves\"></svg>\n<script>\nconst SWEEP = {data};\n{SCRIPT}\n</script>\n",
        runs.len(),
        if missing > 0 {
            format!("; {missing} without")
        } else {
            String::new()
        }
    ))
}

const SCRIPT: &str = r##"(function () {
  const S = SWEEP;
  const picks = document.getElementById("pickers"), svg = document.getElementById("curves");
  const info = document.getElementById("runinfo"), logx = document.getElementById("logx");
  const sel = S.axes.map((a, i) => {
    const l = document.createElement("label"); l.textContent = a + " ";
    const s = document.createElement("select");
    S.values[i].forEach(v => { const o = document.createElement("option"); o.value = o.textContent = v; s.appendChild(o); });
    s.onchange = draw; l.appendChild(s); picks.appendChild(l); picks.appendChild(document.createTextNode("  "));
    return s;
  });
  logx.onchange = draw;
  const SER = [["train", "train", "#0072B2", ""], ["test", "test", "#D55E00", ""],
    ["mem", "A_mem", "#009E73", "6 3"], ["inv", "A_inv", "#CC79A7", "2 3"], ["clean", "A_clean", "#7f7f7f", "8 3 2 3"]];
  // SVG markup, set as the inline <svg>'s innerHTML (parsed as SVG by the browser).
  let out = [];
  const esc = v => String(v).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/"/g, "&quot;");
  function el(n, a) {
    const e = {n: n, a: a, t: null, textContent: null};
    out.push(e); return e;
  }
  function flush() {
    svg.innerHTML = out.map(e => "<" + e.n + Object.keys(e.a).map(k => " " + k + "=\"" + esc(e.a[k]) + "\"").join("") +
      ">" + (e.textContent === null ? "" : esc(e.textContent)) + "</" + e.n + ">").join("");
    out = [];
  }
  function draw() {
    out = []; svg.innerHTML = "";
    const want = sel.map(s => s.value);
    const r = S.runs.find(x => x.coords.every((c, i) => c === want[i]));
    if (!r) { info.textContent = "no finished run at this cell"; return; }
    info.textContent = "run " + r.run + ": " + r.phase;
    const L = 60, T = 15, W = 600, H = 320;
    const lg = logx.checked, fx = s => lg ? Math.log10(Math.max(s, 1)) : s;
    const xs = r.step.map(fx), x0 = Math.min(...xs), x1 = Math.max(...xs, x0 + 1e-9);
    const X = v => L + (fx(v) - x0) / (x1 - x0) * W, Y = v => T + (1 - v) * H;
    for (let k = 0; k <= 5; k++) {
      const v = k / 5;
      el("line", {x1: L, x2: L + W, y1: Y(v), y2: Y(v), stroke: "#e5e5e5"});
      el("text", {x: L - 6, y: Y(v) + 4, "text-anchor": "end", "font-size": 12}).textContent = v.toFixed(1);
    }
    const ticks = [];
    if (lg) { for (let p = Math.floor(x0); p <= Math.ceil(x1); p++) ticks.push(Math.pow(10, p)); }
    else { for (let k = 0; k <= 5; k++) ticks.push(Math.round(x0 + (x1 - x0) * k / 5)); }
    ticks.forEach(s => { if (fx(s) < x0 - 1e-9 || fx(s) > x1 + 1e-9) return;
      el("line", {x1: X(s), x2: X(s), y1: T, y2: T + H, stroke: "#e5e5e5"});
      el("text", {x: X(s), y: T + H + 16, "text-anchor": "middle", "font-size": 12}).textContent = s; });
    el("rect", {x: L, y: T, width: W, height: H, fill: "none", stroke: "#444"});
    el("text", {x: L + W / 2, y: T + H + 34, "text-anchor": "middle", "font-size": 13}).textContent = "step" + (lg ? " (log)" : "");
    el("text", {x: 16, y: T + H / 2, "text-anchor": "middle", "font-size": 13, transform: "rotate(-90 16 " + (T + H / 2) + ")"}).textContent = "accuracy";
    let ly = T + 10;
    SER.forEach(([key, name, col, dash]) => {
      const pts = [];
      r[key].forEach((v, i) => { if (v !== null) pts.push(X(r.step[i]).toFixed(1) + "," + Y(v).toFixed(1)); });
      if (!pts.length) return;
      el("polyline", {points: pts.join(" "), fill: "none", stroke: col, "stroke-width": 2, "stroke-dasharray": dash, "class": "series"});
      el("line", {x1: L + W + 20, x2: L + W + 50, y1: ly, y2: ly, stroke: col, "stroke-width": 2, "stroke-dasharray": dash});
      el("text", {x: L + W + 56, y: ly + 4, "font-size": 13}).textContent = name;
      ly += 20;
    });
    flush();
  }
  draw();
})();"##;
