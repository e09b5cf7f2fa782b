//! Reading a run directory back: its `config.toml` rebuilds the split, the labels and the
//! fleet (everything is seeded), and `weights.safetensors` restores the trained parameters.

use crate::config::Config;
use crate::error::{Error, Result};
use crate::train::run::{setup, Setup};
use std::path::{Path, PathBuf};

/// A trained run, ready to analyse.
pub struct LoadedRun {
    pub dir: PathBuf,
    pub cfg: Config,
    pub setup: Setup,
}

fn not_a_run(dir: &Path, why: impl std::fmt::Display) -> Error {
    Error::NotARun {
        dir: dir.to_path_buf(),
        why: why.to_string(),
    }
}

/// Loads `dir` (a directory written by `grokscope train`).
pub fn load_run(dir: &Path) -> Result<LoadedRun> {
    if !dir.is_dir() {
        return Err(not_a_run(dir, "no such directory"));
    }
    let cfg_path = dir.join("config.toml");
    let text = std::fs::read_to_string(&cfg_path)
        .map_err(|_| not_a_run(dir, "it has no readable config.toml"))?;
    let cfg = Config::from_toml(&text, &[]).map_err(|e| not_a_run(dir, e))?;
    let mut s = setup(&cfg).map_err(|e| not_a_run(dir, e))?;
    let w_path = dir.join("weights.safetensors");
    let bytes = std::fs::read(&w_path)
        .map_err(|_| not_a_run(dir, "it has no weights.safetensors (did the run finish?)"))?;
    let st = safetensors::SafeTensors::deserialize(&bytes)
        .map_err(|e| not_a_run(dir, format!("weights.safetensors: {e}")))?;
    let arch = s.fleet.arch;
    let (p, n) = (arch.p, arch.width);
    let m = s.fleet.models.len();
    let get = |name: &str, shape: &[usize]| -> Result<Vec<f32>> {
        let t = st
            .tensor(name)
            .map_err(|e| not_a_run(dir, format!("weights.safetensors: {name}: {e}")))?;
        if t.shape() != shape || t.dtype() != safetensors::Dtype::F32 {
            return Err(not_a_run(
                dir,
                format!(
                    "weights.safetensors: {name} has shape {:?} ({:?}), config.toml implies {shape:?} (F32)",
                    t.shape(),
                    t.dtype()
                ),
            ));
        }
        Ok(t.data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect())
    };
    let u = get("U", &[m, n, p])?;
    let v = get("V", &[m, n, p])?;
    let w = get("W", &[m, p, n])?;
    let bn = if arch.batchnorm {
        Some([
            get("bn.weight", &[m, n])?,
            get("bn.bias", &[m, n])?,
            get("bn.running_mean", &[m, n])?,
            get("bn.running_var", &[m, n])?,
        ])
    } else {
        None
    };
    for (i, model) in s.fleet.models.iter_mut().enumerate() {
        let params = &mut model.params;
        for k in 0..n {
            for a in 0..p {
                params[arch.u_range().start + a * n + k] = u[i * n * p + k * p + a];
                params[arch.v_range().start + a * n + k] = v[i * n * p + k * p + a];
            }
        }
        params[arch.w_range()].copy_from_slice(&w[i * p * n..(i + 1) * p * n]);
        if let (Some([g, b, rm, rv]), Some(rs)) = (&bn, model.running.as_mut()) {
            let r = i * n..(i + 1) * n;
            params[arch.gamma_range()].copy_from_slice(&g[r.clone()]);
            params[arch.beta_range()].copy_from_slice(&b[r.clone()]);
            rs.mean.copy_from_slice(&rm[r.clone()]);
            rs.var.copy_from_slice(&rv[r]);
        }
    }
    Ok(LoadedRun {
        dir: dir.to_path_buf(),
        cfg,
        setup: s,
    })
}

/// A trained Transformer run.
pub struct LoadedTransformerRun {
    pub dir: PathBuf,
    pub cfg: Config,
    pub setup: Setup<crate::train::transformer::TFleet>,
}

/// The config of a run directory, without loading anything else.
pub fn read_run_config(dir: &Path) -> Result<Config> {
    if !dir.is_dir() {
        return Err(not_a_run(dir, "no such directory"));
    }
    let text = std::fs::read_to_string(dir.join("config.toml"))
        .map_err(|_| not_a_run(dir, "it has no readable config.toml"))?;
    Config::from_toml(&text, &[]).map_err(|e| not_a_run(dir, e))
}

/// Loads a Transformer run (`model.kind = "transformer"`) written by `grokscope train`.
pub fn load_transformer_run(dir: &Path) -> Result<LoadedTransformerRun> {
    let cfg = read_run_config(dir)?;
    let mut s =
        crate::train::run::setup_transformer(&cfg, cfg.fleet()).map_err(|e| not_a_run(dir, e))?;
    let bytes = std::fs::read(dir.join("weights.safetensors"))
        .map_err(|_| not_a_run(dir, "it has no weights.safetensors (did the run finish?)"))?;
    let st = safetensors::SafeTensors::deserialize(&bytes)
        .map_err(|e| not_a_run(dir, format!("weights.safetensors: {e}")))?;
    let m = s.fleet.models.len();
    for name in s.fleet.param_names() {
        let t = st
            .tensor(&name)
            .map_err(|e| not_a_run(dir, format!("weights.safetensors: {name}: {e}")))?;
        let all: Vec<f32> = t
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        if t.shape().first() != Some(&m) || !all.len().is_multiple_of(m) {
            return Err(not_a_run(
                dir,
                format!("weights.safetensors: {name} has shape {:?}", t.shape()),
            ));
        }
        let per = all.len() / m;
        for i in 0..m {
            s.fleet
                .set_param(i, &name, &all[i * per..(i + 1) * per])
                .map_err(|e| not_a_run(dir, e))?;
        }
    }
    Ok(LoadedTransformerRun {
        dir: dir.to_path_buf(),
        cfg,
        setup: s,
    })
}
