//! The HTML pages (`report.html`, `compare.html`): one self-contained file each — the PNG
//! figures as data URIs, the curves as JSON drawn in the browser by the vendored uPlot
//! (`assets/uplot/`, MIT), inlined, so that a page needs no network and references nothing
//! outside itself. Every interactive chart zooms (drag; double-click resets), shows the
//! values under the cursor, hides a series on a click of its legend entry, and has log-x,
//! log-y and smoothing controls. With `#selftest` in its address a page checks itself (every
//! chart drew coloured pixels; toggling log y changed the drawing) and records the result in
//! `<body data-selftest>`, which `.ci/browser-check` reads.

use super::figure::FigureFile;
use super::plot::Dash;
use crate::error::{Error, Result};
use base64::Engine;
use plotters::style::RGBColor;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

const UPLOT_JS: &str = include_str!("../../assets/uplot/uPlot.iife.min.js");
const UPLOT_CSS: &str = include_str!("../../assets/uplot/uPlot.min.css");

/// At most this many points per curve are embedded (evenly thinned, the last kept).
pub const MAX_POINTS: usize = 1000;

/// One series of an interactive chart.
pub struct Series {
    pub label: String,
    pub color: RGBColor,
    pub dash: Dash,
    pub y: Vec<Option<f64>>,
}

/// An interactive chart: series over a shared x.
pub struct Chart {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub x: Vec<f64>,
    pub series: Vec<Series>,
    pub log_x: bool,
    pub log_y: bool,
    pub y_range: Option<(f64, f64)>,
}

pub fn hex(c: RGBColor) -> String {
    format!("#{:02x}{:02x}{:02x}", c.0, c.1, c.2)
}

fn dash(d: Dash) -> Value {
    match d {
        Dash::Solid => json!([]),
        Dash::Dashed => json!([8, 4]),
        Dash::Dotted => json!([2, 3]),
    }
}

/// Indices of at most [`MAX_POINTS`] evenly spread rows of `n`, the last included.
pub fn thin(n: usize) -> Vec<usize> {
    let k = n.div_ceil(MAX_POINTS).max(1);
    (0..n).filter(|i| i % k == 0 || *i + 1 == n).collect()
}

impl Chart {
    pub fn to_json(&self) -> Value {
        let keep = thin(self.x.len());
        let finite = |v: Option<f64>| v.filter(|v| v.is_finite());
        json!({
            "title": self.title,
            "x_label": self.x_label,
            "y_label": self.y_label,
            "x": keep.iter().map(|&i| self.x[i]).collect::<Vec<_>>(),
            "log_x": self.log_x,
            "log_y": self.log_y,
            "y_range": self.y_range.map(|(a, b)| vec![a, b]),
            "series": self.series.iter().map(|s| json!({
                "label": s.label,
                "color": hex(s.color),
                "dash": dash(s.dash),
                "y": keep.iter().map(|&i| finite(s.y.get(i).copied().flatten())).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
        })
    }
}

pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A page: a summary, sections of interactive charts, the static figures and the config.
pub struct Page<'a> {
    pub title: String,
    /// HTML of the summary section.
    pub summary: String,
    /// `(heading, caption, charts)`.
    pub sections: Vec<(String, String, Vec<Chart>)>,
    /// HTML placed after the chart sections (e.g. the sweep explorer) and the data it reads.
    pub extra: String,
    pub extra_data: Value,
    /// Figures drawn into `fig_dir` (embedded as PNG data URIs).
    pub figures: &'a [FigureFile],
    pub fig_dir: &'a Path,
    pub config: Option<String>,
}

/// "1 figure", "3 figures".
pub fn counted(n: usize, noun: &str) -> String {
    format!("{n} {noun}{}", if n == 1 { "" } else { "s" })
}

/// Writes `page` as `dir/file` (atomically); returns its path.
pub fn write(dir: &Path, file: &str, page: &Page) -> Result<PathBuf> {
    let mut charts = Vec::new();
    let mut body = String::new();
    let n_charts = page.sections.iter().map(|s| s.2.len()).sum::<usize>();
    let mut holds = vec![counted(n_charts, "interactive chart")];
    if !page.extra.is_empty() {
        holds.push("an interactive explorer of its cells".into());
    }
    holds.push(counted(page.figures.len(), "figure"));
    body.push_str(&format!(
        "<h1>{}</h1>\n<p class=\"meta\">Written by grokscope {}. {}.</p>\n<h2>Summary</h2>\n<div class=\"tbl\">{}</div>\n",
        esc(&page.title),
        env!("CARGO_PKG_VERSION"),
        holds.join(", "),
        page.summary
    ));
    for (heading, caption, list) in &page.sections {
        body.push_str(&format!(
            "<h2>{}</h2>\n<p>{}</p>\n<div class=\"charts\">\n",
            esc(heading),
            esc(caption)
        ));
        for c in list {
            body.push_str(&format!(
                "<div class=\"chart\" data-chart=\"{}\"></div>\n",
                charts.len()
            ));
            charts.push(c.to_json());
        }
        body.push_str("</div>\n");
    }
    body.push_str(&page.extra);
    if !page.figures.is_empty() {
        body.push_str("<h2>Figures</h2>\n<p>The static figures (PNG here; PNG and SVG beside this page in the report directory).</p>\n");
    }
    for f in page.figures {
        let path = page.fig_dir.join(format!("{}.png", f.name));
        let png = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
        let b64 = base64::engine::general_purpose::STANDARD.encode(png);
        body.push_str(&format!(
            "<figure id=\"{n}\"><img src=\"data:image/png;base64,{b64}\" width=\"{w}\" height=\"{ht}\" alt=\"{t}\">\n<figcaption><b>{t}.</b> {c} <span class=\"file\">({n}.png, {n}.svg)</span></figcaption></figure>\n",
            n = f.name,
            w = f.width,
            ht = f.height,
            t = esc(&f.title),
            c = esc(&f.caption)
        ));
    }
    if let Some(cfg) = &page.config {
        body.push_str(&format!(
            "<h2>Configuration</h2>\n<pre>{}</pre>\n",
            esc(cfg)
        ));
    }
    let data = json!({ "charts": charts, "extra": page.extra_data });
    // No `<` inside the script element at all (`</script>`, `<!--` would change how the
    // browser reads it): JSON allows `\u003c` for it (only strings hold one).
    let data = data.to_string().replace('<', "\\u003c");
    let html = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}</title>\n<style>\n{UPLOT_CSS}\n{CSS}</style></head>\n<body>\n{body}<script type=\"application/json\" id=\"grokscope-data\">{data}</script>\n<script>\n{UPLOT_JS}\n</script>\n<script>\n{GLUE}\n</script>\n</body></html>\n",
        title = esc(&page.title),
    );
    let path = dir.join(file);
    crate::fsio::write_atomic(&path, html.as_bytes())?;
    Ok(path)
}

const CSS: &str = r#"body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1240px;color:#222;padding:0 1em}
table{border-collapse:collapse;margin:1em 0;font-size:.9em}td,th{border:1px solid #ccc;padding:.25em .5em;text-align:right}th{background:#f3f3f3}
.tbl{overflow-x:auto}
figure{margin:2em 0}img{max-width:100%;height:auto;border:1px solid #eee}figcaption{color:#444;margin-top:.4em}.file{color:#888}
pre{background:#f7f7f7;padding:1em;overflow:auto}.meta{color:#666}
.charts{display:grid;grid-template-columns:repeat(auto-fill,minmax(560px,1fr));gap:1.2em}
.chart{border:1px solid #eee;padding:.4em}.ctl{font-size:.85em;color:#444;margin-bottom:.2em}.ctl label{margin-right:1em}.hint{color:#888}
table.grid td{width:3.2em;height:2.2em;text-align:center;cursor:pointer;color:#000;position:relative;border:2px solid #fff}
table.grid td.light{color:#fff}table.grid td.sel{outline:3px solid #222}
table.grid td.dis::after{content:"";position:absolute;right:0;top:0;border-style:solid;border-width:0 .8em .8em 0;border-color:transparent #000 transparent transparent}
table.grid th{background:none;border:none}
"#;

const GLUE: &str = r##"(function () {
  "use strict";
  var D = JSON.parse(document.getElementById("grokscope-data").textContent);
  var errors = [];
  window.addEventListener("error", function (e) {
    errors.push(String(e.message));
    document.body.setAttribute("data-errors", String(errors.length));
  });
  // TensorBoard's smoothing: a debiased exponential moving average.
  function ema(ys, a) {
    if (!a) return ys;
    var out = [], m = 0, w = 0;
    for (var i = 0; i < ys.length; i++) {
      var v = ys[i];
      if (v === null) { out.push(null); continue; }
      m = m * a + (1 - a) * v; w = w * a + (1 - a);
      out.push(m / w);
    }
    return out;
  }
  function columns(c, st) {
    var keep = [];
    for (var i = 0; i < c.x.length; i++) if (!st.logx || c.x[i] > 0) keep.push(i);
    var cols = [keep.map(function (i) { return c.x[i]; })];
    c.series.forEach(function (s) {
      var ys = ema(s.y, st.smooth);
      cols.push(keep.map(function (i) {
        var v = ys[i];
        return v === null || v === undefined || (st.logy && !(v > 0)) ? null : v;
      }));
    });
    return cols;
  }
  function fmt(u, v) { return v === null || v === undefined ? "—" : Number(v.toPrecision(4)).toString(); }
  function options(c, st, width) {
    var y = { distr: st.logy ? 3 : 1 };
    if (!st.logy && c.y_range) y.range = c.y_range;
    return {
      title: c.title, width: width, height: 330,
      scales: { x: { time: false, distr: st.logx ? 3 : 1, range: function (u, lo, hi) { return [lo, hi]; } }, y: y },
      axes: [{ label: c.x_label + (st.logx ? " (log)" : "") },
        { label: c.y_label + (st.logy ? " (log)" : ""), size: 60, values: function (u, vals) {
          return vals.map(function (v) {
            return v === null ? "" : st.logy ? v.toExponential(0) : Number(v.toPrecision(4)).toString();
          });
        } }],
      series: [{ label: c.x_label, value: fmt }].concat(c.series.map(function (s) {
        return { label: s.label, stroke: s.color, width: 2, dash: s.dash, spanGaps: true,
          value: fmt };
      })),
      cursor: { drag: { x: true, y: true, uni: 40 } },
      legend: { live: true }
    };
  }
  function mount(c, host) {
    var st = { logx: !!c.log_x, logy: !!c.log_y, smooth: 0 };
    host.innerHTML = "";
    var ctl = document.createElement("div");
    ctl.className = "ctl";
    ctl.innerHTML = '<label><input type="checkbox" class="lx"> log x</label>' +
      '<label><input type="checkbox" class="ly"> log y</label>' +
      '<label>smoothing <input type="range" class="sm" min="0" max="0.99" step="0.01" value="0"></label>' +
      '<span class="hint">drag to zoom · double-click to reset · click a legend entry to hide it</span>';
    host.appendChild(ctl);
    var el = document.createElement("div");
    host.appendChild(el);
    var lx = ctl.querySelector(".lx"), ly = ctl.querySelector(".ly"), sm = ctl.querySelector(".sm");
    lx.checked = st.logx; ly.checked = st.logy;
    var u = null;
    function build() {
      var shown = u ? u.series.map(function (s) { return s.show; }) : null;
      if (u) u.destroy();
      var o = options(c, st, Math.max(320, Math.min(host.clientWidth - 12 || 560, 1180)));
      if (shown) o.series.forEach(function (s, i) { s.show = shown[i]; });
      u = new uPlot(o, columns(c, st), el);
      host.uplot = u;
    }
    lx.onchange = function () { st.logx = lx.checked; build(); };
    ly.onchange = function () { st.logy = ly.checked; build(); };
    sm.oninput = function () { st.smooth = +sm.value; u.setData(columns(c, st)); };
    build();
  }
  window.grokscopeMount = mount;
  document.querySelectorAll("[data-chart]").forEach(function (h) {
    mount(D.charts[+h.getAttribute("data-chart")], h);
  });
  if (D.extra && D.extra.runs) explorer(D.extra);

  // The sweep explorer: a phase-grid cell (or a value per axis) → its runs' curves.
  function explorer(S) {
    var byId = {};
    S.runs.forEach(function (r) { byId[r.run] = r; });
    var out = document.getElementById("cell-charts"), info = document.getElementById("cell-info");
    var picks = document.getElementById("pickers");
    var COLORS = S.palette;
    var ACC = [["train", "train", COLORS[0], []], ["test", "test", COLORS[1], []],
      ["mem", "A_mem", COLORS[2], [8, 4]], ["inv", "A_inv", COLORS[3], [8, 4]], ["clean", "A_clean", COLORS[4], [2, 3]]];
    function chart(title, x, series) {
      return { title: title, x_label: "step", y_label: "accuracy", x: x, series: series,
        log_x: S.log_x, log_y: false, y_range: [-0.02, 1.02] };
    }
    function add(c) { var h = document.createElement("div"); h.className = "chart"; out.appendChild(h); mount(c, h); }
    function show(ids, what) {
      out.innerHTML = "";
      var runs = ids.map(function (i) { return byId[i]; }).filter(Boolean);
      if (!runs.length) { info.textContent = what + ": no finished run with curves"; return; }
      info.textContent = what + ": " + runs.map(function (r) { return "run " + r.run + " (" + r.phase + ")"; }).join(", ");
      var r = runs[0];
      add(chart("run " + r.run + ": accuracies", r.step, ACC.map(function (a) {
        return { label: a[1], color: a[2], dash: a[3], y: r[a[0]] };
      })));
      if (runs.length > 1) {
        var steps = [];
        runs.forEach(function (q) { q.step.forEach(function (s) { if (steps.indexOf(s) < 0) steps.push(s); }); });
        steps.sort(function (a, b) { return a - b; });
        var series = [];
        runs.forEach(function (q, k) {
          var at = {};
          q.step.forEach(function (s, i) { at[s] = i; });
          var col = COLORS[k % COLORS.length];
          [["test", "test", []], ["mem", "A_mem", [8, 4]]].forEach(function (a) {
            series.push({ label: "run " + q.run + ": " + a[1], color: col, dash: a[2],
              y: steps.map(function (s) { return at[s] === undefined ? null : q[a[0]][at[s]]; }) });
          });
        });
        add(chart("the cell's " + runs.length + " runs: test (solid) and A_mem (dashed)", steps, series));
      }
    }
    var sels = S.axes.map(function (a, i) {
      var l = document.createElement("label"); l.textContent = a + " ";
      var s = document.createElement("select");
      S.values[i].forEach(function (v) { var o = document.createElement("option"); o.value = o.textContent = v; s.appendChild(o); });
      s.onchange = pick; l.appendChild(s); picks.appendChild(l);
      return s;
    });
    function pick() {
      var want = sels.map(function (s) { return s.value; });
      var r = S.runs.filter(function (x) { return x.coords.every(function (c, i) { return c === want[i]; }); });
      show(r.map(function (x) { return x.run; }), want.join(", "));
    }
    document.querySelectorAll("table.grid td[data-runs]").forEach(function (td) {
      td.onclick = function () {
        document.querySelectorAll("table.grid td.sel").forEach(function (x) { x.classList.remove("sel"); });
        td.classList.add("sel");
        var ids = td.getAttribute("data-runs").split(" ").filter(Boolean).map(Number);
        var r = byId[ids[0]];
        if (r) sels.forEach(function (s, i) { s.value = r.coords[i]; });
        show(ids, td.getAttribute("title"));
      };
    });
    var first = document.querySelector("table.grid td[data-runs]");
    if (first) first.onclick(); else pick();
  }

  // Self-check for the browser test: every chart drew coloured pixels, and toggling log y on
  // the first one changes its drawing.
  function coloured(h) {
    var cv = h.querySelector("canvas");
    if (!cv) return 0;
    var d = cv.getContext("2d").getImageData(0, 0, cv.width, cv.height).data, n = 0;
    for (var i = 0; i < d.length; i += 4) {
      if (d[i + 3] > 0 && Math.max(d[i], d[i + 1], d[i + 2]) - Math.min(d[i], d[i + 1], d[i + 2]) > 40) n++;
    }
    return n;
  }
  function selftest() {
    var hosts = document.querySelectorAll(".chart");
    var drawn = 0;
    hosts.forEach(function (h) { if (coloured(h) > 50) drawn++; });
    var loaded = 0;
    for (var i = 0; i < document.images.length; i++) {
      var im = document.images[i];
      if (im.complete && im.naturalWidth > 0) loaded++;
    }
    var result = "images=" + loaded + "/" + document.images.length + " charts=" + hosts.length + " drawn=" + drawn;
    if (!hosts.length) {
      document.body.setAttribute("data-selftest", result + " toggled=0 errors=" + errors.length);
      return;
    }
    var h = hosts[0], before = h.querySelector("canvas").toDataURL(), ly = h.querySelector(".ly");
    ly.checked = !ly.checked; ly.onchange();
    setTimeout(function () {
      var after = h.querySelector("canvas").toDataURL();
      document.body.setAttribute("data-selftest", result + " toggled=" + (after !== before ? 1 : 0) +
        " errors=" + errors.length);
    }, 300);
  }
  if (location.hash === "#selftest") setTimeout(selftest, 500);
})();"##;
