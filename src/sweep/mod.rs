//! Sweeps (phase diagrams): a grid of runs, grouped into fleets, trained into a crash-safe
//! store, sharded over processes and merged back.

pub mod results;
pub mod spec;
pub mod store;

use crate::analysis::dynamics::dynamics;
use crate::error::{Error, Result};
use crate::experiment::train;
use crate::metrics::Thresholds;
use spec::{group_fleets, FleetPlan, RunPoint, SweepSpec};
use std::collections::BTreeMap;
use std::path::Path;
use store::{PlanFile, RunRecord, Store};

/// `i/n`: this process runs the runs with `id % n == i − 1`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

impl std::str::FromStr for Shard {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Shard, String> {
        let err = || format!("shard {s:?}: expected i/n with 1 ≤ i ≤ n, e.g. 2/3");
        let (i, n) = s.split_once('/').ok_or_else(err)?;
        let (index, count): (usize, usize) = (
            i.trim().parse().map_err(|_| err())?,
            n.trim().parse().map_err(|_| err())?,
        );
        if count == 0 || index == 0 || index > count {
            return Err(err());
        }
        Ok(Shard { index, count })
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl Shard {
    pub fn contains(&self, run: usize) -> bool {
        run % self.count == self.index - 1
    }
}

/// A parsed, expanded sweep.
pub struct Plan {
    pub spec: SweepSpec,
    pub points: Vec<RunPoint>,
}

impl Plan {
    pub fn from_text(text: &str) -> Result<Plan> {
        let spec = SweepSpec::parse(text)?;
        let points = spec.expand()?;
        Ok(Plan { spec, points })
    }

    /// Coordinate keys (zipped axes split into their keys).
    pub fn axes(&self) -> Vec<String> {
        axis_keys(&self.spec)
    }

    pub fn plan_file(&self, shard: Option<Shard>) -> PlanFile {
        PlanFile {
            name: self.spec.name.clone(),
            hash: self.spec.plan_hash(),
            runs: self.points.len(),
            shard: shard.map(|s| s.to_string()),
            spec: self.spec.canonical(),
        }
    }

    /// The fleets that train the runs `wanted` (all runs of the shard not yet finished).
    pub fn fleets(&self, wanted: impl Fn(usize) -> bool) -> Vec<FleetPlan> {
        let pts: Vec<&RunPoint> = self.points.iter().filter(|p| wanted(p.id)).collect();
        group_fleets(&pts, self.spec.max_fleet)
    }
}

/// Work units of a fleet for progress and estimates: model-steps.
pub fn fleet_work(f: &FleetPlan, n_train: usize) -> u64 {
    f.cfg.total_steps(n_train) * f.specs.len() as u64
}

/// Training examples of a config (the split is cheap to build).
pub fn n_train(cfg: &crate::config::Checked) -> Result<usize> {
    let d = &cfg.data;
    Ok(crate::data::Split::new(d.p, d.operation, d.train_fraction, d.split_seed)?.n_train())
}

/// Estimated seconds per fleet on this machine, from a few measured steps and one evaluation
/// of each distinct fleet shape (batch rows, width, p, BatchNorm, dropout, loss).
pub fn estimate(fleets: &[FleetPlan]) -> Result<Vec<f64>> {
    let mut measured: BTreeMap<String, (f64, f64)> = BTreeMap::new();
    let mut out = Vec::with_capacity(fleets.len());
    for f in fleets {
        let n = n_train(&f.cfg)?;
        let rows = f.cfg.train.batch_size.unwrap_or(n).min(n);
        let dropout = f.specs.iter().any(|s| s.dropout > 0.0);
        let shape = format!(
            "{rows}/{}/{}/{}/{dropout}/{:?}/{n}/{:?}/{:?}",
            f.cfg.model.width,
            f.cfg.data.p,
            f.cfg.model.batchnorm,
            f.cfg.train.loss,
            f.cfg.model.kind,
            f.cfg.model.transformer
        );
        let (t_step, t_eval) = match measured.get(&shape) {
            Some(&t) => t,
            None => {
                let t = crate::experiment::measure(&f.cfg, f.specs.clone(), rows)?;
                measured.insert(shape, t);
                t
            }
        };
        let steps = f.cfg.total_steps(n);
        let evals = steps.checked_div(f.cfg.eval.every).unwrap_or(0) + 2;
        out.push(f.specs.len() as f64 * (steps as f64 * t_step + evals as f64 * t_eval));
    }
    Ok(out)
}

/// What a sweep run reports as it goes.
pub struct SweepProgress {
    pub runs_done: usize,
    pub runs_total: usize,
    pub work_done: u64,
    pub work_total: u64,
}

/// Runs the (shard of the) sweep into `dir`, resuming what is there. Returns the records of
/// the directory when done.
pub fn run(
    plan: &Plan,
    dir: &Path,
    shard: Option<Shard>,
    progress: &mut dyn FnMut(&SweepProgress),
) -> Result<BTreeMap<usize, RunRecord>> {
    let store = Store::open(dir, &plan.plan_file(shard))?;
    let done = store.records()?;
    let in_shard = |id: usize| shard.is_none_or(|s| s.contains(id));
    let runs_total = plan.points.iter().filter(|p| in_shard(p.id)).count();
    let fleets = plan.fleets(|id| in_shard(id) && !done.contains_key(&id));
    let mut works = Vec::with_capacity(fleets.len());
    for f in &fleets {
        works.push(fleet_work(f, n_train(&f.cfg)?));
    }
    let mut st = SweepProgress {
        runs_done: done.keys().filter(|&&id| in_shard(id)).count(),
        runs_total,
        work_done: 0,
        work_total: works.iter().sum(),
    };
    progress(&st);
    for (f, work) in fleets.iter().zip(works) {
        let hi = f.cfg.eval.threshold;
        let base = st.work_done;
        let m = f.specs.len() as u64;
        let setup = f.cfg.setup_specs(f.specs.clone())?;
        let total_steps = setup.total_steps;
        let sink =
            |net: &crate::train::Network, step: u64| store.write_checkpoints(&f.runs, net, step);
        let out = train(&f.cfg, setup, Some(&sink), &mut |p| {
            st.work_done = base + p.step * m;
            progress(&st);
            Ok(())
        })?;
        let history = out.history;
        for (i, &run) in f.runs.iter().enumerate() {
            let pt = &plan.points[run];
            let Some(last) = history[i].last().cloned() else {
                continue;
            };
            let rec = RunRecord {
                run,
                coords: pt
                    .coords
                    .iter()
                    .map(|(k, v)| (k.clone(), toml_to_json(v)))
                    .collect(),
                phase: last.phase(Thresholds::from(&f.cfg.eval)),
                steps: total_steps,
                dynamics: dynamics(&history[i], hi),
                last,
            };
            store.commit(&rec)?;
            st.runs_done += 1;
        }
        st.work_done = base + work;
        progress(&st);
    }
    let records = store.records()?;
    write_tables(dir, &plan.axes(), &records)?;
    Ok(records)
}

fn axis_keys(spec: &SweepSpec) -> Vec<String> {
    spec.axes
        .iter()
        .flat_map(|(k, _)| {
            k.split(',')
                .map(|x| x.trim().to_string())
                .collect::<Vec<_>>()
        })
        .collect()
}

fn toml_to_json(v: &toml::Value) -> serde_json::Value {
    serde_json::to_value(v).unwrap_or(serde_json::Value::Null)
}

/// Writes `results.csv`, `phase_grid.csv` and `phase_grid.txt` (derived from the records,
/// replaced atomically).
pub fn write_tables(
    dir: &Path,
    axes: &[String],
    records: &BTreeMap<usize, RunRecord>,
) -> Result<()> {
    let grids = results::phase_grids(axes, records);
    let tables =
        (!grids.is_empty()).then(|| (results::grid_csv(&grids), results::grid_text(&grids)));
    store::write_tables(
        dir,
        &results::results_csv(axes, records),
        tables.as_ref().map(|(c, t)| (c.as_str(), t.as_str())),
    )
}

/// Joins shard directories into `out`: they must share one plan and no run.
pub fn merge(out: &Path, inputs: &[&Path]) -> Result<BTreeMap<usize, RunRecord>> {
    if inputs.is_empty() {
        return Err(Error::Sweep {
            dir: out.to_path_buf(),
            why: "merge needs at least one sweep directory".into(),
        });
    }
    let plans: Vec<PlanFile> = inputs
        .iter()
        .map(|d| store::read_plan(d))
        .collect::<Result<_>>()?;
    for (d, p) in inputs.iter().zip(&plans).skip(1) {
        if p.hash != plans[0].hash {
            return Err(Error::Sweep {
                dir: d.to_path_buf(),
                why: format!(
                    "holds a different plan ({}, hash {}) than {} ({}, hash {})",
                    p.name,
                    p.hash,
                    inputs[0].display(),
                    plans[0].name,
                    plans[0].hash
                ),
            });
        }
    }
    let mut all: BTreeMap<usize, RunRecord> = BTreeMap::new();
    let mut from: BTreeMap<usize, &Path> = BTreeMap::new();
    for d in inputs {
        for (id, rec) in store::read_records(d)? {
            if let Some(prev) = from.get(&id) {
                return Err(Error::Sweep {
                    dir: d.to_path_buf(),
                    why: format!("run {id} is also in {}: shards overlap", prev.display()),
                });
            }
            from.insert(id, d);
            all.insert(id, rec);
        }
    }
    if out.exists() {
        return Err(Error::OutputExists(out.to_path_buf()));
    }
    let mut plan = plans[0].clone();
    plan.shard = None;
    let store = Store::open(out, &plan)?;
    for rec in all.values() {
        store.commit(rec)?;
    }
    for d in inputs {
        let runs: Vec<usize> = from
            .iter()
            .filter(|(_, src)| *src == d)
            .map(|(&id, _)| id)
            .collect();
        store.copy_checkpoints(d, &runs)?;
    }
    let spec = SweepSpec::parse(&plan.spec)?;
    write_tables(out, &axis_keys(&spec), &all)?;
    Ok(all)
}
