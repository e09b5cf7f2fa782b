//! A run directory: `config.toml`, `metrics.csv`, `summary.json`, `weights.safetensors`
//! (formats in `docs/OUTPUTS.md`). Nothing existing is ever overwritten.

use crate::analysis::dynamics::{dynamics, Dynamics};
use crate::config::{Config, ModelSpec};
use crate::error::{Error, Result};
use crate::metrics::Record;
use crate::train::engine::Fleet;
use crate::train::run::Outcome;
use crate::train::Engine;
use serde::Serialize;
use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

pub const METRICS_COLUMNS: &[&str] = &[
    "model",
    "step",
    "epoch",
    "train_loss",
    "train_acc",
    "test_loss",
    "test_acc",
    "mem_acc",
    "inv_acc",
    "clean_acc",
    "norm_u",
    "norm_v",
    "norm_w",
    "mean_ipr",
    "dead_neurons",
];

/// Creates `dir` (and its parents); fails if it exists or cannot be created.
pub fn create_run_dir(dir: &Path) -> Result<()> {
    if dir.exists() {
        return Err(Error::OutputExists(dir.to_path_buf()));
    }
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
    }
    fs::create_dir(dir).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            Error::OutputExists(dir.to_path_buf())
        } else {
            Error::io(dir, e)
        }
    })
}

/// A fresh directory `base/name-YYYYMMDD-HHMMSS` (with `-2`, `-3` … if taken).
pub fn default_run_dir(base: &Path, name: &str) -> PathBuf {
    let stamp = humantime::format_rfc3339_seconds(std::time::SystemTime::now())
        .to_string()
        .replace(['-', ':'], "")
        .replace('T', "-")
        .trim_end_matches('Z')
        .to_string();
    let first = base.join(format!("{name}-{stamp}"));
    let mut dir = first.clone();
    let mut k = 2;
    while dir.exists() {
        dir = PathBuf::from(format!("{}-{k}", first.display()));
        k += 1;
    }
    dir
}

/// Writes `bytes` to `dir/name` through a temporary file renamed into place.
pub fn write_new(dir: &Path, name: &str, bytes: &[u8]) -> Result<()> {
    let path = dir.join(name);
    if path.exists() {
        return Err(Error::Output(format!(
            "{} exists; not overwriting it",
            path.display()
        )));
    }
    let tmp = dir.join(format!(".{name}.tmp"));
    fs::write(&tmp, bytes).map_err(|e| Error::io(&tmp, e))?;
    fs::rename(&tmp, &path).map_err(|e| Error::io(&path, e))
}

pub fn write_config(dir: &Path, cfg: &Config) -> Result<()> {
    let text = format!(
        "# Resolved configuration of this run: every default filled in.\n# Re-run with: grokscope train --config {}\n\n{}",
        dir.join("config.toml").display(),
        cfg.to_toml()
    );
    write_new(dir, "config.toml", text.as_bytes())
}

fn opt(x: Option<f64>) -> String {
    x.map(|v| format!("{v}")).unwrap_or_default()
}

/// `metrics.csv`: one row per model per evaluation step.
pub fn metrics_csv(history: &[Vec<Record>]) -> String {
    let mut s = METRICS_COLUMNS.join(",");
    s.push('\n');
    for (m, recs) in history.iter().enumerate() {
        for r in recs {
            s.push_str(&format!(
                "{m},{},{},{},{},{},{},{},{},{},{},{},{},{},{}\n",
                r.step,
                r.epoch,
                r.train_loss,
                r.train_acc,
                r.test_loss,
                r.test_acc,
                opt(r.mem_acc),
                opt(r.inv_acc),
                opt(r.clean_acc),
                r.norm_u,
                r.norm_v,
                r.norm_w,
                opt(r.mean_ipr),
                r.dead_neurons
            ));
        }
    }
    s
}

#[derive(Serialize)]
pub struct ModelSummary {
    #[serde(flatten)]
    pub spec: ModelSpec,
    pub lr_effective: f64,
    pub n_corrupted: usize,
    pub phase: String,
    #[serde(rename = "final")]
    pub last: Record,
    pub dynamics: Dynamics,
}

#[derive(Serialize)]
pub struct Summary {
    pub name: String,
    pub steps: u64,
    pub seconds: f64,
    pub threshold: f64,
    pub n_train: usize,
    pub n_test: usize,
    pub models: Vec<ModelSummary>,
}

pub fn summary<E>(cfg: &Config, out: &Outcome<E>) -> Summary {
    let hi = cfg.eval.threshold;
    Summary {
        name: cfg.name.clone(),
        steps: out.total_steps,
        seconds: out.seconds,
        threshold: hi,
        n_train: out.split.n_train(),
        n_test: out.split.n_test(),
        models: out
            .specs
            .iter()
            .zip(&out.history)
            .zip(&out.labels)
            .map(|((spec, hist), labels)| {
                let last = hist
                    .last()
                    .expect("the final step is always evaluated")
                    .clone();
                ModelSummary {
                    spec: spec.clone(),
                    lr_effective: cfg.effective_lr(spec.lr),
                    n_corrupted: labels.n_corrupted(),
                    phase: last.phase(hi).name().to_string(),
                    dynamics: dynamics(hist, hi),
                    last,
                }
            })
            .collect(),
    }
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// `weights.safetensors`: the fleet's parameters stacked over models, in the paper's shapes:
/// `U`, `V` `[M, N, p]`, `W` `[M, p, N]`, and with BatchNorm `bn.weight`, `bn.bias`,
/// `bn.running_mean`, `bn.running_var` `[M, N]`.
pub fn weights_safetensors(fleet: &Fleet, step: u64) -> Result<Vec<u8>> {
    let arch = fleet.arch;
    let (p, n) = (arch.p, arch.width);
    let models = &fleet.models;
    let mm = models.len();
    let transpose = |src: &[f32], dst: &mut Vec<f32>| {
        for k in 0..n {
            for a in 0..p {
                dst.push(src[a * n + k]);
            }
        }
    };
    let mut tensors: Vec<(String, Vec<usize>, Vec<f32>)> = Vec::new();
    let mut u = Vec::with_capacity(mm * p * n);
    let mut v = Vec::with_capacity(mm * p * n);
    let mut w = Vec::with_capacity(mm * p * n);
    for m in models {
        transpose(&m.params[arch.u_range()], &mut u);
        transpose(&m.params[arch.v_range()], &mut v);
        w.extend_from_slice(&m.params[arch.w_range()]);
    }
    tensors.push(("U".into(), vec![mm, n, p], u));
    tensors.push(("V".into(), vec![mm, n, p], v));
    tensors.push(("W".into(), vec![mm, p, n], w));
    if arch.batchnorm {
        let cat = |f: &dyn Fn(&crate::train::engine::ModelState) -> Vec<f32>| {
            models.iter().flat_map(f).collect::<Vec<f32>>()
        };
        tensors.push((
            "bn.weight".into(),
            vec![mm, n],
            cat(&|m| m.params[arch.gamma_range()].to_vec()),
        ));
        tensors.push((
            "bn.bias".into(),
            vec![mm, n],
            cat(&|m| m.params[arch.beta_range()].to_vec()),
        ));
        let stat = |mean: bool| {
            cat(&|m| {
                let rs = m
                    .running
                    .as_ref()
                    .expect("BatchNorm models keep running statistics");
                if mean {
                    rs.mean.clone()
                } else {
                    rs.var.clone()
                }
            })
        };
        tensors.push(("bn.running_mean".into(), vec![mm, n], stat(true)));
        tensors.push(("bn.running_var".into(), vec![mm, n], stat(false)));
    }
    let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
        .into_iter()
        .map(|(name, shape, data)| (name, shape, f32_bytes(&data)))
        .collect();
    let views = bytes
        .iter()
        .map(|(name, shape, data)| {
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), data)
                .map(|t| (name.clone(), t))
        })
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| Error::Output(format!("safetensors: {e}")))?;
    let meta = HashMap::from([
        ("format".to_string(), "grokscope-mlp".to_string()),
        ("p".to_string(), p.to_string()),
        ("width".to_string(), n.to_string()),
        ("models".to_string(), mm.to_string()),
        ("step".to_string(), step.to_string()),
        (
            "activation".to_string(),
            format!("{:?}", arch.activation).to_lowercase(),
        ),
    ]);
    safetensors::serialize(views, Some(meta))
        .map_err(|e| Error::Output(format!("safetensors: {e}")))
}

/// Reads `metrics.csv` (as written by [`metrics_csv`]) back into per-model histories, with
/// the IPR histograms of `ipr_hist` (the text of `ipr_hist.csv`) when given.
pub fn read_metrics_csv(text: &str, ipr_hist: Option<&str>) -> Result<Vec<Vec<Record>>> {
    let bad = |line: usize, why: &str| Error::Output(format!("metrics.csv line {line}: {why}"));
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap_or_default().split(',').collect();
    if header != METRICS_COLUMNS {
        return Err(Error::Output("metrics.csv: unexpected header".into()));
    }
    let mut out: Vec<Vec<Record>> = Vec::new();
    for (i, line) in lines.enumerate() {
        let f: Vec<&str> = line.split(',').collect();
        if f.len() != METRICS_COLUMNS.len() {
            return Err(bad(i + 2, "wrong number of fields"));
        }
        let num =
            |j: usize| -> Result<f64> { f[j].parse().map_err(|_| bad(i + 2, "not a number")) };
        let opt = |j: usize| -> Result<Option<f64>> {
            if f[j].is_empty() {
                Ok(None)
            } else {
                num(j).map(Some)
            }
        };
        let model = num(0)? as usize;
        while out.len() <= model {
            out.push(Vec::new());
        }
        out[model].push(Record {
            step: num(1)? as u64,
            epoch: num(2)?,
            train_loss: num(3)?,
            train_acc: num(4)?,
            test_loss: num(5)?,
            test_acc: num(6)?,
            mem_acc: opt(7)?,
            inv_acc: opt(8)?,
            clean_acc: opt(9)?,
            norm_u: num(10)?,
            norm_v: num(11)?,
            norm_w: num(12)?,
            mean_ipr: opt(13)?,
            dead_neurons: num(14)? as usize,
            ipr_hist: Vec::new(),
        });
    }
    if let Some(h) = ipr_hist {
        for (i, line) in h.lines().skip(1).enumerate() {
            let f: Vec<&str> = line.split(',').collect();
            let bad = || Error::Output(format!("ipr_hist.csv line {}: malformed", i + 2));
            let model: usize = f.first().and_then(|x| x.parse().ok()).ok_or_else(bad)?;
            let step: u64 = f.get(1).and_then(|x| x.parse().ok()).ok_or_else(bad)?;
            let counts: Vec<u32> = f[2..]
                .iter()
                .map(|x| x.parse().map_err(|_| bad()))
                .collect::<Result<_>>()?;
            if let Some(r) = out
                .get_mut(model)
                .and_then(|h| h.iter_mut().find(|r| r.step == step))
            {
                r.ipr_hist = counts;
            }
        }
    }
    Ok(out)
}

/// `ipr_hist.csv`: per model and evaluation step, the number of living neurons whose IPR falls
/// in each of the bins `[i/B, (i+1)/B)` (the last bin closed).
pub fn ipr_hist_csv(history: &[Vec<Record>]) -> String {
    let bins = crate::metrics::IPR_BINS;
    let mut s = String::from("model,step");
    for i in 0..bins {
        s.push_str(&format!(",bin{:02}", i));
    }
    s.push('\n');
    for (m, recs) in history.iter().enumerate() {
        for r in recs {
            s.push_str(&format!("{m},{}", r.step));
            for c in &r.ipr_hist {
                s.push_str(&format!(",{c}"));
            }
            s.push('\n');
        }
    }
    s
}

/// Writes `checkpoints/step-XXXXXXXX.safetensors` (same layout as `weights.safetensors`).
pub fn write_checkpoint<E: Engine>(dir: &Path, fleet: &E, step: u64) -> Result<()> {
    let cdir = dir.join("checkpoints");
    fs::create_dir_all(&cdir).map_err(|e| Error::io(&cdir, e))?;
    write_new(
        &cdir,
        &format!("step-{step:08}.safetensors"),
        &fleet.safetensors(step)?,
    )
}

/// Writes the metrics, the summary and the weights of a finished run into `dir` (which
/// already holds its `config.toml`).
pub fn write_results<E: Engine>(dir: &Path, cfg: &Config, out: &Outcome<E>) -> Result<Summary> {
    write_new(dir, "metrics.csv", metrics_csv(&out.history).as_bytes())?;
    write_new(dir, "ipr_hist.csv", ipr_hist_csv(&out.history).as_bytes())?;
    let s = summary(cfg, out);
    let json = serde_json::to_string_pretty(&s).map_err(|e| Error::Output(e.to_string()))?;
    write_new(dir, "summary.json", json.as_bytes())?;
    write_new(
        dir,
        "weights.safetensors",
        &out.fleet.safetensors(out.total_steps)?,
    )?;
    Ok(s)
}
