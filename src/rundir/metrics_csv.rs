//! The codec of `metrics.csv` (one row per model per evaluation; a sweep's per-run curves use
//! the same format) and `ipr_hist.csv`, driven by one table of columns: adding a metric column
//! is one line of [`COLUMNS`] (and its field in `metrics::Record`). Old files whose header
//! lacks the columns added later ([`Column::since`]) still read, those values `None`.

use super::paths::{RunDir, IPR_HIST, METRICS};
use crate::error::{Error, Result};
use crate::fsio::read_text;
use crate::metrics::{Record, IPR_BINS};
use std::fmt::Write as _;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

/// A value of a `metrics.csv` cell: written with `{}` (`None` as an empty cell), read back
/// with the same rules.
trait Cell: Sized {
    fn write(&self, out: &mut String);
    fn read(s: &str) -> std::result::Result<Self, &'static str>;
}

impl Cell for f64 {
    fn write(&self, out: &mut String) {
        let _ = write!(out, "{self}");
    }
    fn read(s: &str) -> std::result::Result<f64, &'static str> {
        s.parse().map_err(|_| "not a number")
    }
}

impl Cell for u64 {
    fn write(&self, out: &mut String) {
        let _ = write!(out, "{self}");
    }
    fn read(s: &str) -> std::result::Result<u64, &'static str> {
        s.parse().map_err(|_| "not a non-negative integer")
    }
}

impl Cell for usize {
    fn write(&self, out: &mut String) {
        let _ = write!(out, "{self}");
    }
    fn read(s: &str) -> std::result::Result<usize, &'static str> {
        s.parse().map_err(|_| "not a non-negative integer")
    }
}

impl Cell for Option<f64> {
    fn write(&self, out: &mut String) {
        if let Some(v) = self {
            v.write(out);
        }
    }
    fn read(s: &str) -> std::result::Result<Option<f64>, &'static str> {
        if s.is_empty() {
            Ok(None)
        } else {
            f64::read(s).map(Some)
        }
    }
}

/// A list of small integers (the key frequencies), space-separated; empty for none.
impl Cell for Vec<u32> {
    fn write(&self, out: &mut String) {
        for (i, x) in self.iter().enumerate() {
            let _ = write!(out, "{}{x}", if i > 0 { " " } else { "" });
        }
    }
    fn read(s: &str) -> std::result::Result<Vec<u32>, &'static str> {
        s.split_whitespace()
            .map(|x| x.parse().map_err(|_| "not a list of non-negative integers"))
            .collect()
    }
}

/// A column of `metrics.csv` after `model`: a field of [`Record`].
pub struct Column {
    pub name: &'static str,
    /// `None`: in every file; `Some(why)`: added later (older files may end before it, and
    /// every column after it is added later too).
    pub since: Option<&'static str>,
    write: fn(&Record, &mut String),
    read: fn(&mut Record, &str) -> std::result::Result<(), &'static str>,
}

macro_rules! columns {
    ($($field:ident $(since $since:literal)?),* $(,)?) => {
        /// The columns of `metrics.csv` after `model`, in file order.
        pub const COLUMNS: &[Column] = &[$(Column {
            name: stringify!($field),
            since: columns!(@since $($since)?),
            write: |r, out| Cell::write(&r.$field, out),
            read: |r, s| {
                r.$field = Cell::read(s)?;
                Ok(())
            },
        }),*];
    };
    (@since) => { None };
    (@since $s:literal) => { Some($s) };
}

columns![
    step,
    epoch,
    train_loss,
    train_acc,
    test_loss,
    test_acc,
    mem_acc,
    inv_acc,
    clean_acc,
    norm_u,
    norm_v,
    norm_w,
    mean_ipr,
    dead_neurons,
    batch_loss since "the reference's training-mode batch loss",
    weight_sq since "progress measures",
    gini_embed since "progress measures",
    gini_unembed since "progress measures",
    key_freqs since "progress measures",
    full_ce since "progress measures",
    full_ce_clean since "progress measures",
    full_ce_corrupt since "progress measures",
    restricted_ce since "progress measures",
    restricted_ce_clean since "progress measures",
    restricted_ce_corrupt since "progress measures",
    excluded_ce since "progress measures",
    excluded_ce_clean since "progress measures",
    excluded_ce_corrupt since "progress measures",
    full_mse since "progress measures",
    full_mse_clean since "progress measures",
    full_mse_corrupt since "progress measures",
    restricted_mse since "progress measures",
    restricted_mse_clean since "progress measures",
    restricted_mse_corrupt since "progress measures",
    excluded_mse since "progress measures",
    excluded_mse_clean since "progress measures",
    excluded_mse_corrupt since "progress measures",
];

/// The columns a file's header names (after `model`): a prefix of [`COLUMNS`] that leaves
/// out only columns added later; `None` if the header is not one.
fn header_columns(header: &[&str]) -> Option<&'static [Column]> {
    let (first, rest) = header.split_first()?;
    let n = rest.len();
    let fits = *first == "model"
        && n <= COLUMNS.len()
        && rest.iter().zip(COLUMNS).all(|(h, c)| *h == c.name)
        && COLUMNS[n..].iter().all(|c| c.since.is_some());
    fits.then(|| &COLUMNS[..n])
}

fn metrics_header() -> String {
    let mut s = String::from("model");
    for c in COLUMNS {
        s.push(',');
        s.push_str(c.name);
    }
    s.push('\n');
    s
}

/// `metrics.csv` rows of one evaluation: `(model, record)`.
fn metrics_rows(rows: &[(usize, &Record)]) -> String {
    let mut s = String::new();
    for (m, r) in rows {
        let _ = write!(s, "{m}");
        for c in COLUMNS {
            s.push(',');
            (c.write)(r, &mut s);
        }
        s.push('\n');
    }
    s
}

/// `metrics.csv` and `ipr_hist.csv` of `history` (per model, its records in step order), as
/// a run streams them: evaluation by evaluation, every model's row of one evaluation
/// together.
pub fn metrics_files(history: &[Vec<Record>]) -> (String, String) {
    let (mut m, mut h) = (metrics_header(), ipr_hist_header());
    let evals = history.iter().map(|x| x.len()).max().unwrap_or(0);
    for k in 0..evals {
        let rows: Vec<(usize, &Record)> = history
            .iter()
            .enumerate()
            .filter_map(|(i, x)| Some((i, x.get(k)?)))
            .collect();
        m.push_str(&metrics_rows(&rows));
        h.push_str(&ipr_hist_rows(&rows));
    }
    (m, h)
}

/// One model's records in the format of `metrics.csv` (its `model` column 0): a sweep
/// keeps each run's curves this way.
pub fn curve_csv(records: &[Record]) -> String {
    let mut s = metrics_header();
    for r in records {
        s.push_str(&metrics_rows(&[(0, r)]));
    }
    s
}

/// Reads a file written by [`curve_csv`] (`path` names it in errors).
pub fn read_curve_csv(path: &Path, text: &str) -> Result<Vec<Record>> {
    let mut h = read_metrics_csv(path, text, 1, path, None, false)?;
    Ok(h.pop().unwrap_or_default())
}

/// The open, streamed `metrics.csv` and `ipr_hist.csv` of a training run.
pub struct MetricsStream {
    metrics: (PathBuf, fs::File),
    hist: (PathBuf, fs::File),
}

impl MetricsStream {
    /// Opens the files `metrics` and `hist` (both written already) for appending.
    pub fn open(metrics: PathBuf, hist: PathBuf) -> Result<MetricsStream> {
        let open = |p: &Path| {
            fs::OpenOptions::new()
                .append(true)
                .open(p)
                .map_err(|e| Error::io(p, e))
        };
        Ok(MetricsStream {
            metrics: (metrics.clone(), open(&metrics)?),
            hist: (hist.clone(), open(&hist)?),
        })
    }
}

impl MetricsStream {
    /// Appends one evaluation (each model's record) to both files and flushes them, so a
    /// reader sees every evaluation so far.
    pub fn append(&mut self, records: &[&Record]) -> Result<()> {
        let rows: Vec<(usize, &Record)> = records.iter().copied().enumerate().collect();
        for ((path, f), text) in [
            (&mut self.metrics, metrics_rows(&rows)),
            (&mut self.hist, ipr_hist_rows(&rows)),
        ] {
            f.write_all(text.as_bytes())
                .and_then(|_| f.flush())
                .map_err(|e| Error::io(&*path, e))?;
        }
        Ok(())
    }
}

impl RunDir {
    /// The metrics history of each of the `n_models` models of the run, from `metrics.csv`
    /// (and `ipr_hist.csv` if present); every model has at least one row.
    pub fn read_history(&self, n_models: usize) -> Result<Vec<Vec<Record>>> {
        let path = self.path.join(METRICS);
        let text = read_text(&path).map_err(|e| Error::io(&path, e))?;
        let hist_path = self.path.join(IPR_HIST);
        let complete = self.has_weights();
        if !complete {
            // A run still training appends as we read: take the evaluations every model has
            // finished writing.
            if let Some(step) = last_common_step(&text, n_models) {
                return self.read_history_upto(n_models, step);
            }
        }
        let hist = match read_text(&hist_path) {
            Ok(h) => Some(h),
            Err(e) if complete || e.kind() != std::io::ErrorKind::NotFound => {
                return Err(Error::io(&hist_path, e))
            }
            Err(_) => None,
        };
        read_metrics_csv(
            &path,
            &text,
            n_models,
            &hist_path,
            hist.as_deref(),
            complete,
        )
    }

    /// The records up to `step` of a run that stopped (or is still streaming): a line cut short by a
    /// kill (no newline at its end) and rows after `step` are left out.
    pub fn read_history_upto(&self, n_models: usize, step: u64) -> Result<Vec<Vec<Record>>> {
        fn whole_lines(text: String) -> String {
            match text.rfind('\n') {
                Some(i) => text[..=i].to_string(),
                None => String::new(),
            }
        }
        let path = self.path.join(METRICS);
        let text = whole_lines(read_text(&path).map_err(|e| Error::io(&path, e))?);
        let hist_path = self.path.join(IPR_HIST);
        let hist = read_text(&hist_path).ok().map(whole_lines);
        // Rows after `step` may belong to evaluations the kill cut short for some models.
        let keep = |t: &str| -> String {
            let mut out = String::new();
            for (i, line) in t.lines().enumerate() {
                let row_step = line.split(',').nth(1).and_then(|x| x.parse::<u64>().ok());
                if i == 0 || row_step.is_some_and(|s| s <= step) {
                    out.push_str(line);
                    out.push('\n');
                }
            }
            out
        };
        let hist = hist.map(|h| keep(&h));
        read_metrics_csv(
            &path,
            &keep(&text),
            n_models,
            &hist_path,
            hist.as_deref(),
            false,
        )
    }
}

/// Reads `metrics.csv` (as written by [`metrics_rows`]) back into per-model histories, with
/// the IPR histograms of `ipr_hist` (the text of `ipr_hist.csv`) when given.
fn read_metrics_csv(
    path: &Path,
    text: &str,
    n_models: usize,
    hist_path: &Path,
    ipr_hist: Option<&str>,
    complete: bool,
) -> Result<Vec<Vec<Record>>> {
    let bad = |line: usize, why: &str| Error::csv(path, line, why);
    // Every row is written with its newline: a finished run's file that ends without one was
    // cut short (possibly inside a number that still parses).
    if complete && !text.is_empty() && !text.ends_with('\n') {
        return Err(bad(
            text.lines().count(),
            "the file ends in the middle of a line (truncated?)",
        ));
    }
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap_or_default().split(',').collect();
    let columns = header_columns(&header).ok_or_else(|| bad(1, "unexpected header"))?;
    let mut out: Vec<Vec<Record>> = vec![Vec::new(); n_models];
    for (i, line) in lines.enumerate() {
        let f: Vec<&str> = line.split(',').collect();
        if f.len() != header.len() {
            return Err(bad(i + 2, "wrong number of fields"));
        }
        let model = u64::read(f[0]).map_err(|why| bad(i + 2, why))?;
        let Some(h) = usize::try_from(model).ok().and_then(|m| out.get_mut(m)) else {
            return Err(bad(
                i + 2,
                &format!("model {model}, but config.toml has {n_models} model(s)"),
            ));
        };
        let mut r = Record::default();
        for (c, field) in columns.iter().zip(&f[1..]) {
            (c.read)(&mut r, field).map_err(|why| bad(i + 2, why))?;
        }
        h.push(r);
    }
    if let Some(m) = out.iter().position(|h| h.is_empty()) {
        return Err(Error::csv(
            path,
            text.lines().count(),
            format!("no rows for model {m} (did the run finish?)"),
        ));
    }
    // Every model has the same evaluations, in increasing step order, with values in range.
    let bad_file = |why: String| Error::BadFile {
        path: path.to_path_buf(),
        why,
    };
    for (m, h) in out.iter().enumerate() {
        if let Some(w) = h.windows(2).find(|w| w[1].step <= w[0].step) {
            return Err(bad_file(format!(
                "model {m}: step {} follows step {} (steps must increase)",
                w[1].step, w[0].step
            )));
        }
        let steps = |h: &[Record]| h.iter().map(|r| r.step).collect::<Vec<_>>();
        if steps(h) != steps(&out[0]) {
            return Err(bad_file(format!(
                "model {m} has other evaluation steps than model 0"
            )));
        }
        if let Some((r, why)) = h.iter().find_map(|r| r.out_of_range().map(|w| (r, w))) {
            return Err(bad_file(format!("model {m} at step {}: {why}", r.step)));
        }
    }
    if let Some(h) = ipr_hist {
        let mut total: Option<u64> = None;
        for (i, line) in h.lines().skip(1).enumerate() {
            let f: Vec<&str> = line.split(',').collect();
            let bad = || {
                Error::csv(
                    hist_path,
                    i + 2,
                    format!("expected model, step and {} bin counts", IPR_BINS),
                )
            };
            if f.len() != 2 + IPR_BINS {
                return Err(bad());
            }
            let model: usize = f[0].parse().map_err(|_| bad())?;
            let step: u64 = f[1].parse().map_err(|_| bad())?;
            let counts: Vec<u32> = f[2..]
                .iter()
                .map(|x| x.parse().map_err(|_| bad()))
                .collect::<Result<_>>()?;
            let sum: u64 = counts.iter().map(|&c| c as u64).sum();
            let Some(r) = out
                .get_mut(model)
                .and_then(|h| h.iter_mut().find(|r| r.step == step))
                .filter(|r| r.ipr_hist.is_empty())
            else {
                return Err(Error::csv(
                    hist_path,
                    i + 2,
                    format!(
                        "model {model} at step {step}: not an evaluation of {} (or given twice)",
                        path.display()
                    ),
                ));
            };
            if !r.is_finite() {
                // A diverged model's neurons have no IPR: neither binned nor dead.
                r.ipr_hist = counts;
                continue;
            }
            // Living neurons are binned, dead ones counted in metrics.csv: together, the width.
            let neurons = sum + r.dead_neurons as u64;
            if total.is_some_and(|t| t != neurons) {
                return Err(Error::csv(
                    hist_path,
                    i + 2,
                    format!(
                        "its bin counts and the dead neurons of metrics.csv sum to {neurons} neurons, the rows above to {}",
                        total.unwrap_or(0)
                    ),
                ));
            }
            total = Some(neurons);
            r.ipr_hist = counts;
        }
        // A run killed between the two appends has an evaluation without its histogram.
        if let Some((m, r)) = out
            .iter()
            .enumerate()
            .find_map(|(m, h)| h.iter().find(|r| r.ipr_hist.is_empty()).map(|r| (m, r)))
            .filter(|_| complete)
        {
            return Err(Error::csv(
                hist_path,
                h.lines().count(),
                format!("no row for model {m} at step {}", r.step),
            ));
        }
    }
    Ok(out)
}

fn ipr_hist_header() -> String {
    let mut s = String::from("model,step");
    for i in 0..IPR_BINS {
        s.push_str(&format!(",bin{:02}", i));
    }
    s.push('\n');
    s
}

/// `ipr_hist.csv` rows of one evaluation: per model, the number of living neurons whose IPR
/// falls in each of the bins `[i/B, (i+1)/B)` (the last bin closed).
fn ipr_hist_rows(rows: &[(usize, &Record)]) -> String {
    let mut s = String::new();
    for (m, r) in rows {
        s.push_str(&format!("{m},{}", r.step));
        for c in &r.ipr_hist {
            s.push_str(&format!(",{c}"));
        }
        s.push('\n');
    }
    s
}

/// The last step of `metrics.csv` text (whole lines only) at which all `n_models` models have
/// a row; `None` when there is none.
fn last_common_step(text: &str, n_models: usize) -> Option<u64> {
    let whole = &text[..text.rfind('\n').map_or(0, |i| i + 1)];
    let mut last: Vec<Option<u64>> = vec![None; n_models];
    for line in whole.lines().skip(1) {
        let mut f = line.split(',');
        let model = f.next().and_then(|m| m.parse::<usize>().ok());
        let step = f.next().and_then(|x| x.parse::<u64>().ok());
        if let (Some(m), Some(s)) = (model, step) {
            if let Some(l) = last.get_mut(m) {
                *l = Some(l.map_or(s, |v: u64| v.max(s)));
            }
        }
    }
    last.into_iter()
        .try_fold(u64::MAX, |acc, l| l.map(|v| acc.min(v)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metrics_csv(history: &[Vec<Record>]) -> String {
        let mut s = metrics_header();
        for (m, recs) in history.iter().enumerate() {
            recs.iter()
                .for_each(|r| s.push_str(&metrics_rows(&[(m, r)])));
        }
        s
    }

    fn ipr_hist_csv(history: &[Vec<Record>]) -> String {
        let mut s = ipr_hist_header();
        for (m, recs) in history.iter().enumerate() {
            recs.iter()
                .for_each(|r| s.push_str(&ipr_hist_rows(&[(m, r)])));
        }
        s
    }

    fn rec(step: u64, mem: Option<f64>) -> Record {
        Record {
            step,
            epoch: step as f64 / 3.0,
            train_loss: 0.125,
            train_acc: 0.5,
            test_loss: 1e-9,
            test_acc: 1.0,
            mem_acc: mem,
            inv_acc: mem.map(|m| 1.0 - m),
            clean_acc: Some(0.75),
            norm_u: 3.5,
            norm_v: 0.1,
            norm_w: 2.0,
            mean_ipr: None,
            dead_neurons: 4,
            batch_loss: mem.map(|m| m + 0.5),
            ipr_hist: vec![1; IPR_BINS],
            weight_sq: Some(12.5),
            gini_embed: mem,
            key_freqs: if mem.is_some() {
                vec![3, 17, 41]
            } else {
                vec![]
            },
            restricted_ce_corrupt: mem.map(|m| m * 7.0),
            excluded_mse: Some(1e-300),
            ..Record::default()
        }
    }

    #[test]
    fn metrics_csv_reads_back_exactly() {
        let history = vec![
            vec![rec(0, None), rec(10, Some(0.3))],
            vec![rec(0, Some(1.0)), rec(10, None)],
        ];
        let (m, h) = (metrics_csv(&history), ipr_hist_csv(&history));
        let p = Path::new("x");
        let back = read_metrics_csv(p, &m, 2, p, Some(&h), true).unwrap();
        assert_eq!(back, history);
        let err = read_metrics_csv(p, &m, 1, p, None, false)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("model 1, but config.toml has 1 model"),
            "{err}"
        );
        let err = read_metrics_csv(p, &m, 3, p, None, false)
            .unwrap_err()
            .to_string();
        assert!(err.contains("no rows for model 2"), "{err}");
        let header_only = metrics_csv(&[]);
        assert!(read_metrics_csv(p, &header_only, 1, p, None, false).is_err());
        let err = read_metrics_csv(p, &m, 2, p, Some("model,step\n0,0,1\n"), true).unwrap_err();
        assert!(matches!(err, Error::Csv { line: 2, .. }), "{err}");
    }

    #[test]
    fn a_malformed_metrics_file_names_its_line() {
        let good = metrics_csv(&[vec![rec(0, None), rec(10, None)]]);
        let bad = good.replacen("\n0,10,", "\n0,ten,", 1);
        let err =
            read_metrics_csv(Path::new("m.csv"), &bad, 1, Path::new("h"), None, false).unwrap_err();
        assert!(matches!(err, Error::Csv { line: 3, .. }), "{err}");
        assert!(
            err.to_string()
                .starts_with("m.csv line 3: not a non-negative integer"),
            "{err}"
        );
        let err = read_metrics_csv(Path::new("m.csv"), "a,b\n", 1, Path::new("h"), None, false)
            .unwrap_err();
        assert!(err.to_string().contains("line 1"), "{err}");
    }
}
