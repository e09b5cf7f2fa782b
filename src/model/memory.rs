//! How much memory a fleet needs, estimated before anything is allocated, and how much this
//! machine allows. A config whose estimate exceeds the limit is refused when it is checked
//! (with the estimate, the limit and the key to change) instead of dying in the allocator.
//!
//! The estimate is an upper bound calibrated against measured peak resident sizes (see
//! docs/DECISIONS.md "Size limits"); all arithmetic is in `f64`, so no size can overflow.

use crate::error::{Error, Result};
use crate::model::kind::Sizes;
use crate::model::Architecture;

/// The parts of an estimate, in bytes, each with the config key that drives it.
#[derive(Clone, Debug, PartialEq)]
pub struct Estimate {
    pub parts: Vec<(&'static str, &'static str, f64)>,
}

impl Estimate {
    pub fn total(&self) -> f64 {
        self.parts.iter().map(|p| p.2).sum()
    }

    /// The part that needs the most memory and that a config key drives: `(what, key)`.
    pub fn largest(&self) -> Option<(&'static str, &'static str)> {
        self.parts
            .iter()
            .filter(|p| !p.1.is_empty())
            .max_by(|a, b| a.2.total_cmp(&b.2))
            .map(|p| (p.0, p.1))
    }

    /// `data 1.2 GB, models 3.4 GB, …` (the parts over 1 % of the total).
    pub fn breakdown(&self) -> String {
        let total = self.total();
        self.parts
            .iter()
            .filter(|p| p.2 >= total / 100.0)
            .map(|p| format!("{} {}", p.0, bytes(p.2)))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// What a fleet is: its network, its data and how long it records.
#[derive(Clone, Copy, Debug)]
pub struct Shape<'a> {
    pub architecture: &'a Architecture,
    /// The modulus, or a dense dataset's number of classes.
    pub p: usize,
    /// A dense dataset's examples (training and test) and features per example (`None`: the
    /// operation table of `p`).
    pub dense: Option<(usize, usize)>,
    pub n_train: usize,
    /// Rows of one training step (the batch size, or `n_train` for full batch).
    pub batch: usize,
    pub models: usize,
    /// Evaluations kept in memory per model (the metric history).
    pub evals: f64,
    /// Whether evaluations take the progress measures' outputs (`eval.progress_every > 0` on
    /// an operation with Fourier directions).
    pub progress: bool,
}

/// Models whose outputs the progress measures hold at once, at most (the MLP's evaluation
/// waves are 16 tasks, so up to 16 models when each has one chunk).
const PROGRESS_HELD: f64 = 16.0;

/// Bytes of one record of the metric history (with its IPR histogram).
const RECORD_BYTES: f64 = 400.0;
/// Fixed overhead of the process (code, thread stacks, allocator).
const BASE: f64 = 64e6;

/// The memory a fleet needs at its peak, by part.
pub fn estimate(s: Shape) -> Estimate {
    let (p, table, data, key) = match s.dense {
        None => {
            let p = s.p as f64;
            // The table, the split's pair and label lists and the engine's copies of them.
            (p, p * p, 48.0 * p * p, "data.p")
        }
        // The features (the dataset's, the engine's, one evaluation block's) and labels; `p`
        // is the number of classes.
        Some((examples, dim)) => {
            let e = examples as f64;
            (
                s.p as f64,
                e,
                8.0 * e * dim as f64 + 48.0 * e,
                "data.n_train",
            )
        }
    };
    let n = s.n_train as f64;
    let m = s.models as f64;
    let rows = s.batch as f64;
    let mut parts = vec![
        ("process", "", BASE),
        ("data", key, data),
        // Labels (three copies of the training labels, the evaluation labels) and one
        // evaluation's predictions and row losses per model.
        ("labels and evaluations", key, m * (16.0 * n + 16.0 * table)),
        (
            "metric history",
            "eval.every",
            m * s.evals.max(2.0) * RECORD_BYTES,
        ),
    ];
    let sizes = Sizes {
        p,
        table,
        rows,
        models: m,
    };
    parts.extend(s.architecture.kind().memory_parts(&sizes));
    if s.progress && s.dense.is_none() {
        // Per model held: its logits on all pairs (f32) and its four pair sums; the
        // Transformer also keeps its group's logits and hidden activations until the probe
        // has read them (groups of 4). Spare buffers are the held ones, reused.
        let (held, per) = match s.architecture {
            Architecture::Mlp { arch, .. } => {
                let w = arch.width as f64;
                (m.min(PROGRESS_HELD), 4.0 * table * p + 24.0 * p * w)
            }
            Architecture::Transformer(t) => {
                let h = t.cfg.hidden() as f64;
                (m.min(4.0), 8.0 * table * p + 4.0 * table * h + 24.0 * p * h)
            }
            Architecture::Deep(_) => (0.0, 0.0),
        };
        parts.push(("progress measures", "eval.progress_every", held * per));
    }
    Estimate { parts }
}

/// Refuses `est` if it exceeds this machine's limit: an [`Error::Memory`] with the estimate,
/// its parts, the limit and where it comes from, and the key that drives its largest part.
/// `also` names what else could be made smaller (e.g. the fleet).
pub fn ensure(est: &Estimate, doing: &str, also: &str) -> Result<()> {
    let limit = machine_limit().map_err(Error::Memory)?;
    if est.total() <= limit.bytes {
        return Ok(());
    }
    let process = est
        .parts
        .iter()
        .filter(|p| p.1.is_empty())
        .map(|p| p.2)
        .sum::<f64>();
    let advice = match est.largest().filter(|_| limit.bytes > process) {
        Some((what, "eval.progress_every")) => format!(
            "the most goes to {what}: set eval.progress_every = 0 (no progress measures), or make data.p smaller"
        ),
        Some((what, "eval.every")) => format!(
            "the most goes to {what}: make eval.every larger (0: evaluate only at the first and last step){}",
            also.replace(" or ", " or make ").replace(")", ") smaller")
        ),
        Some((what, key)) if key.starts_with("model.transformer") => format!(
            "the most goes to {what}: make model.transformer.d_model, layers or mlp_ratio smaller{also}"
        ),
        Some((what, key)) => format!("the most goes to {what}: make {key} smaller{also}"),
        None => format!(
            "the limit is below what the process itself needs ({}): raise {LIMIT_VAR}",
            bytes(process)
        ),
    };
    Err(Error::Memory(format!(
        "{doing} needs about {} of memory ({}), more than the {} allowed ({}; set {LIMIT_VAR} to change the limit); {advice}",
        bytes(est.total()),
        est.breakdown(),
        bytes(limit.bytes),
        limit.source,
    )))
}

/// The memory of `grokscope analytic` (model::analytic::evaluate_analytic): the parameters,
/// one row of hidden activations per `a` and its `p × p` logits.
pub fn analytic(p: usize, width: usize) -> Estimate {
    let (p, n) = (p as f64, width as f64);
    Estimate {
        parts: vec![
            ("process", "", BASE),
            ("the network", "-n", 16.0 * p * n),
            ("the logits of a row of the table", "--p", 4.0 * p * p),
        ],
    }
}

/// Where the memory limit comes from.
#[derive(Clone, Debug, PartialEq)]
pub struct Limit {
    pub bytes: f64,
    pub source: String,
}

/// The largest memory limit accepted (1 EiB).
const MAX_LIMIT: f64 = 1152921504606846976.0;

/// The environment variable that sets the memory limit (bytes, or with a suffix K, M, G, T).
pub const LIMIT_VAR: &str = "GROKSCOPE_MEMORY_LIMIT";

/// The memory this process may use: `GROKSCOPE_MEMORY_LIMIT` if set, else the smaller of the
/// memory available now (`MemAvailable` of /proc/meminfo) and what the control group allows
/// (Slurm and containers set it); 16 GB where neither can be read.
pub fn machine_limit() -> std::result::Result<Limit, String> {
    // Reading /proc for every run of a 100 000-run sweep costs seconds: the limit is read
    // at most once a second.
    use std::sync::Mutex;
    use std::time::Instant;
    static CACHE: Mutex<Option<(Instant, Limit)>> = Mutex::new(None);
    let env = std::env::var(LIMIT_VAR).ok();
    if env.is_none() {
        if let Ok(guard) = CACHE.lock() {
            if let Some((at, limit)) = guard.as_ref() {
                if at.elapsed().as_secs_f64() < 1.0 {
                    return Ok(limit.clone());
                }
            }
        }
    }
    let limit = read_limit(env)?;
    if let Ok(mut guard) = CACHE.lock() {
        *guard = Some((Instant::now(), limit.clone()));
    }
    Ok(limit)
}

fn read_limit(env: Option<String>) -> std::result::Result<Limit, String> {
    if let Some(v) = env {
        let bytes = parse_bytes(&v).filter(|&b| b <= MAX_LIMIT).ok_or_else(|| {
            format!("{LIMIT_VAR}={v:?} is not a size from 1 byte to 1 EiB: give bytes or a number with K, M, G or T (e.g. 8G)")
        })?;
        return Ok(Limit {
            bytes,
            source: format!("{LIMIT_VAR}={v}"),
        });
    }
    let mut best: Option<Limit> = None;
    let mut consider = |bytes: f64, source: &str| {
        if best.as_ref().is_none_or(|b| bytes < b.bytes) {
            best = Some(Limit {
                bytes,
                source: source.to_string(),
            });
        }
    };
    if let Ok(text) = std::fs::read_to_string("/proc/meminfo") {
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("MemAvailable:") {
                let kb = rest.trim().trim_end_matches("kB").trim();
                if let Ok(kb) = kb.parse::<f64>() {
                    consider(kb * 1024.0, "the memory available now");
                }
            }
        }
    }
    if let Some(bytes) = cgroup_room() {
        consider(bytes, "the control group's memory limit");
    }
    Ok(best.unwrap_or(Limit {
        bytes: 16e9,
        source: "an assumed 16 GB (this system's memory cannot be read)".into(),
    }))
}

/// What the cgroup v2 (or v1) limit of this process leaves: limit − usage.
fn cgroup_room() -> Option<f64> {
    let read = |p: &str| std::fs::read_to_string(p).ok();
    let cg = read("/proc/self/cgroup")?;
    for line in cg.lines() {
        let mut f = line.splitn(3, ':');
        let (_, ctrl, path) = (f.next()?, f.next()?, f.next()?);
        let (max, cur) = if ctrl.is_empty() {
            let base = format!("/sys/fs/cgroup{path}");
            (
                read(&format!("{base}/memory.max")),
                read(&format!("{base}/memory.current")),
            )
        } else if ctrl.split(',').any(|c| c == "memory") {
            let base = format!("/sys/fs/cgroup/memory{path}");
            (
                read(&format!("{base}/memory.limit_in_bytes")),
                read(&format!("{base}/memory.usage_in_bytes")),
            )
        } else {
            continue;
        };
        let max: f64 = max?.trim().parse().ok()?; // "max" (no limit) does not parse
        let cur: f64 = cur.and_then(|c| c.trim().parse().ok()).unwrap_or(0.0);
        if max < 1e18 {
            return Some((max - cur).max(0.0));
        }
    }
    None
}

/// `8G`, `512M`, `1.5T`, `1000000` → bytes (powers of 1024 for the suffixes).
pub fn parse_bytes(s: &str) -> Option<f64> {
    let s = s.trim();
    let (num, mult) = match s.char_indices().last()? {
        (i, c) if c.is_ascii_alphabetic() => {
            let m = match c.to_ascii_uppercase() {
                'K' => 1024f64,
                'M' => 1024f64.powi(2),
                'G' => 1024f64.powi(3),
                'T' => 1024f64.powi(4),
                _ => return None,
            };
            (&s[..i], m)
        }
        _ => (s, 1.0),
    };
    let x: f64 = num.trim().parse().ok()?;
    (x.is_finite() && x > 0.0).then_some(x * mult)
}

/// `1.2 GB` (decimal units).
pub fn bytes(b: f64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    let mut x = b;
    let mut u = 0;
    while x >= 1000.0 && u + 1 < units.len() {
        x /= 1000.0;
        u += 1;
    }
    if u + 1 == units.len() && x >= 1000.0 {
        return format!("{b:.1e} B");
    }
    format!("{x:.1} {}", units[u])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_and_print() {
        assert_eq!(parse_bytes("8G"), Some(8.0 * 1024f64.powi(3)));
        assert_eq!(parse_bytes("1000"), Some(1000.0));
        assert_eq!(parse_bytes("1.5k"), Some(1536.0));
        for bad in ["", "G", "-1G", "8X", "nan", "0"] {
            assert_eq!(parse_bytes(bad), None, "{bad}");
        }
        assert_eq!(bytes(51_516_017_292.0), "51.5 GB");
        assert_eq!(bytes(999.0), "999.0 B");
        assert_eq!(bytes(1e30), "1.0e30 B");
    }
}
