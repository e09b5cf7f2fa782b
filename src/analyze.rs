//! `grokscope analyze` and `grokscope prune`: the analysis of a run, written into
//! `RUN_DIR/analysis/` (formats in `docs/OUTPUTS.md`).

use crate::analysis::ipr::mean_ipr;
use crate::analysis::neurons::{analyze_neurons, spearman, NeuronRow, NeuronSpectra};
use crate::analysis::prune::{prune_order, prune_sweep, Order, PrunePoint};
use crate::error::{Error, Result};
use crate::metrics::record;
use crate::output::write_new;
use crate::rundir::LoadedRun;
use crate::train::Engine;
use rayon::prelude::*;
use serde::Serialize;
use std::path::{Path, PathBuf};

/// What `analyze` reports per model.
#[derive(Clone, Debug, Serialize)]
pub struct ModelAnalysis {
    pub model: usize,
    pub phase: String,
    pub test_acc: f64,
    pub mem_acc: Option<f64>,
    pub inv_acc: Option<f64>,
    pub mean_ipr: Option<f64>,
    /// Share of living neurons with IPR ≥ 0.5.
    pub frac_ipr_ge_half: Option<f64>,
    pub dead_neurons: usize,
    /// (frequency, number of living neurons whose dominant frequency it is), most common first.
    pub dominant_frequencies: Vec<(usize, usize)>,
    /// BatchNorm: Spearman rank correlation of `|γ_k|/sqrt(var_k + eps)` with the IPR.
    pub bn_scale_ipr_spearman: Option<f64>,
    pub bn_gamma_ipr_spearman: Option<f64>,
}

/// The directory analysis files go to; created if needed.
pub fn analysis_dir(run: &Path) -> Result<PathBuf> {
    let d = run.join("analysis");
    std::fs::create_dir_all(&d).map_err(|e| Error::io(&d, e))?;
    Ok(d)
}

/// The files `analyze` writes: neurons, `extra`, the summary and three pruning orders.
fn analysis_files(extra: &str) -> Vec<String> {
    ["neurons.csv", extra, "summary.json"]
        .iter()
        .map(|s| s.to_string())
        .chain(ORDERS.iter().map(|o| format!("prune-{}.csv", o.name())))
        .collect()
}

const ORDERS: [Order; 3] = [Order::Ascending, Order::Descending, Order::Random];

/// `(frequency, neurons)` pairs, most common first, and the share of IPRs ≥ 0.5, over the
/// living neurons given as `(ipr, dominant frequency)`.
fn frequency_summary(alive: &[(f64, usize)]) -> (Vec<(usize, usize)>, Option<f64>) {
    let mut counts = std::collections::BTreeMap::new();
    for &(_, f) in alive {
        *counts.entry(f).or_insert(0usize) += 1;
    }
    let mut dominant: Vec<(usize, usize)> = counts.into_iter().collect();
    dominant.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let frac = (!alive.is_empty())
        .then(|| alive.iter().filter(|a| a.0 >= 0.5).count() as f64 / alive.len() as f64);
    (dominant, frac)
}

/// Refuses to replace existing files unless `force`.
pub fn check_free(dir: &Path, names: &[String], force: bool) -> Result<()> {
    for n in names {
        let p = dir.join(n);
        if p.exists() {
            if force {
                std::fs::remove_file(&p).map_err(|e| Error::io(&p, e))?;
            } else {
                return Err(Error::Output(format!(
                    "{} exists; pass --force to replace it",
                    p.display()
                )));
            }
        }
    }
    Ok(())
}

fn opt(x: Option<f64>) -> String {
    x.map(|v| v.to_string()).unwrap_or_default()
}

pub fn neurons_csv(rows: &[NeuronRow]) -> String {
    let mut s = String::from(
        "model,neuron,ipr_u,ipr_v,ipr_w,ipr,dominant_freq,dominant_share,bn_gamma,bn_beta,bn_scale\n",
    );
    for r in rows {
        s.push_str(&format!(
            "{},{},{},{},{},{},{},{},{},{},{}\n",
            r.model,
            r.neuron,
            opt(r.ipr_u),
            opt(r.ipr_v),
            opt(r.ipr_w),
            opt(r.ipr),
            r.dominant_freq,
            opt(r.dominant_share),
            opt(r.bn_gamma),
            opt(r.bn_beta),
            opt(r.bn_scale)
        ));
    }
    s
}

pub fn spectra_csv(p: usize, spectra: &[(usize, Vec<NeuronSpectra>)]) -> String {
    let mut s = String::from("model,neuron,vector");
    for f in 0..=p / 2 {
        s.push_str(&format!(",f{f}"));
    }
    s.push('\n');
    for (m, sp) in spectra {
        for (k, ns) in sp.iter().enumerate() {
            for (name, v) in [("U", &ns.u), ("V", &ns.v), ("W", &ns.w)] {
                s.push_str(&format!("{m},{k},{name}"));
                match v {
                    Some(v) => v.iter().for_each(|a| s.push_str(&format!(",{a}"))),
                    None => (0..=p / 2).for_each(|_| s.push_str(",0")),
                }
                s.push('\n');
            }
        }
    }
    s
}

pub fn prune_csv(n: usize, sweeps: &[Sweep]) -> String {
    let mut s = String::from(
        "model,pruned,fraction,neuron,train_loss,train_acc,test_loss,test_acc,mem_acc,inv_acc,clean_acc\n",
    );
    for (m, pts) in sweeps {
        for pt in pts {
            let a = &pt.acc;
            s.push_str(&format!(
                "{m},{},{},{},{},{},{},{},{},{},{}\n",
                pt.pruned,
                pt.pruned as f64 / n as f64,
                pt.neuron.map(|k| k.to_string()).unwrap_or_default(),
                a.train_loss,
                a.train_acc,
                a.test_loss,
                a.test_acc,
                opt(a.mem_acc),
                opt(a.inv_acc),
                opt(a.clean_acc)
            ));
        }
    }
    s
}

/// The models to look at: all, or the one given (checked).
pub fn select_models(run: &LoadedRun, model: Option<usize>) -> Result<Vec<usize>> {
    select(run.setup.fleet.models.len(), model)
}

/// One model's pruning sweep: its index and the metrics at `m = 0 … N`.
pub type Sweep = (usize, Vec<PrunePoint>);

/// The pruning sweep of each selected model in `order`.
pub fn prune_models(run: &LoadedRun, models: &[usize], order: Order, seed: u64) -> Vec<Sweep> {
    let s = &run.setup;
    let arch = s.fleet.arch;
    models
        .par_iter()
        .map(|&i| {
            let model = &s.fleet.models[i];
            let ord = prune_order(&arch, &model.params, order, seed);
            (
                i,
                prune_sweep(&arch, s.fleet.loss, &s.split, &s.labels[i], model, &ord),
            )
        })
        .collect()
}

/// The analysis directory and the free file name of one pruning output.
fn prune_target(
    run_dir: &Path,
    model: Option<usize>,
    order: Order,
    force: bool,
) -> Result<(PathBuf, String)> {
    let dir = analysis_dir(run_dir)?;
    let name = match model {
        Some(i) => format!("prune-{}-model{i}.csv", order.name()),
        None => format!("prune-{}.csv", order.name()),
    };
    check_free(&dir, std::slice::from_ref(&name), force)?;
    Ok((dir, name))
}

/// The model indices to look at: all `n`, or the one given (checked).
fn select(n: usize, model: Option<usize>) -> Result<Vec<usize>> {
    match model {
        Some(i) if i >= n => Err(Error::ModelIndex {
            index: i,
            models: n,
        }),
        Some(i) => Ok(vec![i]),
        None => Ok((0..n).collect()),
    }
}

/// Writes `prune-<order>.csv` (or `prune-<order>-model<i>.csv`) into `RUN/analysis/`.
pub fn write_prune(
    run: &LoadedRun,
    model: Option<usize>,
    order: Order,
    seed: u64,
    force: bool,
) -> Result<(PathBuf, Vec<Sweep>)> {
    let models = select_models(run, model)?;
    let (dir, name) = prune_target(&run.dir, model, order, force)?;
    let sweeps = prune_models(run, &models, order, seed);
    write_new(
        &dir,
        &name,
        prune_csv(run.setup.fleet.arch.width, &sweeps).as_bytes(),
    )?;
    Ok((dir.join(name), sweeps))
}

/// Everything `analyze` writes; returns the per-model summaries.
pub fn analyze_run(
    run: &mut LoadedRun,
    model: Option<usize>,
    force: bool,
) -> Result<Vec<ModelAnalysis>> {
    let models = select_models(run, model)?;
    let dir = analysis_dir(&run.dir)?;
    check_free(&dir, &analysis_files("spectra.csv"), force)?;
    let hi = run.cfg.eval.threshold;
    let outs = run.setup.fleet.evaluate();
    let s = &run.setup;
    let arch = s.fleet.arch;
    let mut all_rows = Vec::new();
    let mut all_spectra = Vec::new();
    let mut summaries = Vec::new();
    for &i in &models {
        let model = &s.fleet.models[i];
        let rec = record(
            s.total_steps,
            s.total_steps as f64 / s.steps_per_epoch as f64,
            arch.p,
            s.fleet.loss,
            &s.split,
            &s.labels[i].labels,
            &s.labels[i].corrupted,
            &s.fleet.weight_stats(i),
            &outs[i],
        );
        let (rows, spectra) = analyze_neurons(&arch, i, model);
        let iprs: Vec<Option<f64>> = rows.iter().map(|r| r.ipr).collect();
        let (mean, dead) = mean_ipr(&iprs);
        let alive: Vec<&NeuronRow> = rows.iter().filter(|r| r.ipr.is_some()).collect();
        let pairs: Vec<(f64, usize)> = rows
            .iter()
            .filter_map(|r| Some((r.ipr?, r.dominant_freq)))
            .collect();
        let (dominant, frac) = frequency_summary(&pairs);
        let bn_corr = |f: &dyn Fn(&NeuronRow) -> Option<f64>| {
            let (x, y): (Vec<f64>, Vec<f64>) =
                alive.iter().filter_map(|r| Some((f(r)?, r.ipr?))).unzip();
            spearman(&x, &y)
        };
        summaries.push(ModelAnalysis {
            model: i,
            phase: rec.phase(hi).name().to_string(),
            test_acc: rec.test_acc,
            mem_acc: rec.mem_acc,
            inv_acc: rec.inv_acc,
            mean_ipr: mean,
            frac_ipr_ge_half: frac,
            dead_neurons: dead,
            dominant_frequencies: dominant,
            bn_scale_ipr_spearman: bn_corr(&|r| r.bn_scale),
            bn_gamma_ipr_spearman: bn_corr(&|r| r.bn_gamma.map(f64::abs)),
        });
        all_rows.extend(rows);
        all_spectra.push((i, spectra));
    }
    write_new(&dir, "neurons.csv", neurons_csv(&all_rows).as_bytes())?;
    write_new(
        &dir,
        "spectra.csv",
        spectra_csv(arch.p, &all_spectra).as_bytes(),
    )?;
    for order in ORDERS {
        let sweeps = prune_models(run, &models, order, 0);
        write_new(
            &dir,
            &format!("prune-{}.csv", order.name()),
            prune_csv(arch.width, &sweeps).as_bytes(),
        )?;
    }
    let json =
        serde_json::to_string_pretty(&summaries).map_err(|e| Error::Output(e.to_string()))?;
    write_new(&dir, "summary.json", json.as_bytes())?;
    Ok(summaries)
}

/// `neurons.csv` of a Transformer: its MLP neurons as seen from the tokens.
pub fn t_neurons_csv(rows: &[(usize, Vec<crate::train::transformer::TNeuron>)]) -> String {
    let mut s = String::from("model,layer,neuron,ipr_in,ipr_out,ipr,dominant_freq\n");
    for (m, ns) in rows {
        for n in ns {
            s.push_str(&format!(
                "{m},{},{},{},{},{},{}\n",
                n.layer,
                n.neuron,
                opt(n.ipr_in),
                opt(n.ipr_out),
                opt(n.ipr),
                n.dominant_in
            ));
        }
    }
    s
}

/// `embedding.csv` of a Transformer: IPR and dominant frequency of each token-embedding
/// column (over the p tokens).
pub fn t_embedding_csv(rows: &[(usize, Vec<Option<crate::analysis::ipr::Spectral>>)]) -> String {
    let mut s = String::from("model,column,ipr,dominant_freq\n");
    for (m, cols) in rows {
        for (j, c) in cols.iter().enumerate() {
            s.push_str(&format!(
                "{m},{j},{},{}\n",
                opt(c.map(|c| c.ipr)),
                c.map(|c| c.dominant).unwrap_or(0)
            ));
        }
    }
    s
}

fn t_select(run: &crate::rundir::LoadedTransformerRun, model: Option<usize>) -> Result<Vec<usize>> {
    select(run.setup.fleet.models.len(), model)
}

fn t_sweeps(
    run: &mut crate::rundir::LoadedTransformerRun,
    models: &[usize],
    order: Order,
    seed: u64,
) -> Result<Vec<Sweep>> {
    use crate::analysis::transformer::{t_prune_order, t_prune_sweep};
    let mut out = Vec::new();
    for &i in models {
        let neurons = run.setup.fleet.mlp_neuron_spectra(i);
        let ord = t_prune_order(&neurons, order, seed);
        let s = &mut run.setup;
        out.push((
            i,
            t_prune_sweep(&mut s.fleet, i, &s.split, &s.labels[i], &ord)?,
        ));
    }
    Ok(out)
}

/// `prune` for a Transformer run: MLP neurons by IPR, evaluated at every 1 %.
pub fn t_write_prune(
    run: &mut crate::rundir::LoadedTransformerRun,
    model: Option<usize>,
    order: Order,
    seed: u64,
    force: bool,
) -> Result<(PathBuf, Vec<Sweep>)> {
    let models = t_select(run, model)?;
    let (dir, name) = prune_target(&run.dir, model, order, force)?;
    let sweeps = t_sweeps(run, &models, order, seed)?;
    let n = run.setup.fleet.cfg.hidden() * run.setup.fleet.cfg.layers;
    write_new(&dir, &name, prune_csv(n, &sweeps).as_bytes())?;
    Ok((dir.join(name), sweeps))
}

/// `analyze` for a Transformer run.
pub fn t_analyze_run(
    run: &mut crate::rundir::LoadedTransformerRun,
    model: Option<usize>,
    force: bool,
) -> Result<Vec<ModelAnalysis>> {
    let models = t_select(run, model)?;
    let dir = analysis_dir(&run.dir)?;
    check_free(&dir, &analysis_files("embedding.csv"), force)?;
    let hi = run.cfg.eval.threshold;
    let mut neurons = Vec::new();
    let mut embeds = Vec::new();
    let mut summaries = Vec::new();
    for &i in &models {
        let s = &run.setup;
        let ev = s.fleet.eval_model(i)?;
        let rec = record(
            s.total_steps,
            s.total_steps as f64 / s.steps_per_epoch as f64,
            s.fleet.p,
            s.fleet.loss,
            &s.split,
            &s.labels[i].labels,
            &s.labels[i].corrupted,
            &s.fleet.weight_stats(i),
            &ev,
        );
        let ns = s.fleet.mlp_neuron_spectra(i);
        let pairs: Vec<(f64, usize)> = ns
            .iter()
            .filter_map(|n| Some((n.ipr?, n.dominant_in)))
            .collect();
        let (dominant, frac) = frequency_summary(&pairs);
        summaries.push(ModelAnalysis {
            model: i,
            phase: rec.phase(hi).name().to_string(),
            test_acc: rec.test_acc,
            mem_acc: rec.mem_acc,
            inv_acc: rec.inv_acc,
            mean_ipr: rec.mean_ipr,
            frac_ipr_ge_half: frac,
            dead_neurons: rec.dead_neurons,
            dominant_frequencies: dominant,
            bn_scale_ipr_spearman: None,
            bn_gamma_ipr_spearman: None,
        });
        embeds.push((i, s.fleet.embedding_spectra(i)));
        neurons.push((i, ns));
    }
    write_new(&dir, "neurons.csv", t_neurons_csv(&neurons).as_bytes())?;
    write_new(&dir, "embedding.csv", t_embedding_csv(&embeds).as_bytes())?;
    let n = run.setup.fleet.cfg.hidden() * run.setup.fleet.cfg.layers;
    for order in ORDERS {
        let sweeps = t_sweeps(run, &models, order, 0)?;
        write_new(
            &dir,
            &format!("prune-{}.csv", order.name()),
            prune_csv(n, &sweeps).as_bytes(),
        )?;
    }
    let json =
        serde_json::to_string_pretty(&summaries).map_err(|e| Error::Output(e.to_string()))?;
    write_new(&dir, "summary.json", json.as_bytes())?;
    Ok(summaries)
}
