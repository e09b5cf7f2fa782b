//! Sweeps (phase diagrams): a grid of runs, grouped into fleets, trained into a crash-safe
//! store, sharded over processes and merged back.

pub mod claims;
pub mod results;
pub mod slurm;
pub mod spec;
pub mod status;
pub mod store;

use crate::analysis::dynamics::outcome;
use crate::config::ModelSpec;
use crate::error::{Error, Result};
use crate::experiment::train;
use crate::metrics::Thresholds;
use crate::setup::Prepare;
use claims::{Attempt, Claims, Me, Pulse, WorkerState};
pub use spec::Shard;
use spec::{group_fleets, FleetPlan, RunPoint, SweepSpec};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use store::{PlanFile, RunRecord, Store};

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
            max_fleet: self.spec.max_fleet,
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

/// Training examples of a config (the table's split is cheap to build; a dense dataset's
/// count is known without reading it).
pub fn n_train(cfg: &crate::config::Checked) -> Result<usize> {
    let d = &cfg.data;
    if !d.dataset.is_table() {
        return Ok(cfg.example_counts().1);
    }
    Ok(crate::data::Split::new(d.p, d.operation, d.train_fraction, d.split_seed)?.n_train())
}

/// Estimated seconds per fleet on this machine, from a few measured steps and one evaluation
/// of each distinct fleet shape (batch rows, dropout, loss, the architecture's shape key).
pub fn estimate(fleets: &[FleetPlan]) -> Result<Vec<f64>> {
    let mut measured: BTreeMap<String, (f64, f64)> = BTreeMap::new();
    let mut out = Vec::with_capacity(fleets.len());
    for f in fleets {
        let n = n_train(&f.cfg)?;
        let rows = f.cfg.train.batch_size.unwrap_or(n).min(n);
        let dropout = f.specs.iter().any(|s| s.dropout > 0.0);
        let shape = format!(
            "{rows}/{dropout}/{:?}/{n}/{}",
            f.cfg.train.loss,
            f.cfg.architecture().shape_key()
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

/// How a worker joins a sweep directory.
#[derive(Clone, Debug)]
pub struct WorkerOptions {
    /// The worker's name (default: the Slurm array task, else `<host>-<pid>`).
    pub name: Option<String>,
    /// Seconds without a heartbeat after which another worker takes over a claimed unit.
    pub lease: f64,
    /// When nothing is left to claim but other workers still train: wait for them (and take
    /// over the units of any that dies) instead of leaving.
    pub wait: bool,
    /// Seconds between looks at the directory while waiting.
    pub poll: f64,
}

impl Default for WorkerOptions {
    fn default() -> WorkerOptions {
        WorkerOptions {
            name: None,
            lease: 120.0,
            wait: true,
            poll: 2.0,
        }
    }
}

/// What a sweep worker reports as it goes.
pub struct SweepProgress {
    /// Finished runs in the directory (all workers).
    pub runs_done: usize,
    pub runs_total: usize,
    /// Model-steps of the finished runs plus this worker's unit in flight.
    pub work_done: u64,
    pub work_total: u64,
    /// The unit this worker trains, if any.
    pub unit: Option<usize>,
    /// Units other workers are training.
    pub elsewhere: usize,
}

/// How a worker's part of a sweep ended.
#[derive(Debug)]
pub enum SweepEnd {
    /// Every run of the plan (shard) is finished and the tables are written.
    Complete(BTreeMap<usize, RunRecord>),
    /// Nothing left to claim, but other workers still train `units` units (without `wait`).
    Left { units: usize },
    /// Stopped by signal `signal`; the unit in training was given back.
    Interrupted { signal: usize },
}

/// What a worker did.
#[derive(Debug)]
pub struct WorkerOutcome {
    pub end: SweepEnd,
    pub worker: String,
    /// The runs this worker trained to completion and committed.
    pub trained: Vec<usize>,
}

impl Plan {
    /// The plan held by the sweep directory `dir` (to join it without the sweep file), and
    /// its shard.
    pub fn from_dir(dir: &Path) -> Result<(Plan, Option<Shard>)> {
        let pf = store::read_plan(dir)?;
        let bad = |why: String| Error::BadFile {
            path: dir.join("plan.json"),
            why,
        };
        // read_plan checked the hash, the run count, max_fleet and the shard.
        let mut plan = Plan::from_text(&pf.spec).map_err(|e| bad(format!("its spec: {e}")))?;
        plan.spec.max_fleet = pf.max_fleet;
        let shard = pf
            .shard
            .as_deref()
            .map(|s| s.parse::<Shard>().map_err(bad))
            .transpose()?;
        Ok((plan, shard))
    }
}

/// Refuses a plan one of whose units (fleets of at most `max_fleet` runs) needs more memory
/// than this machine allows (or is otherwise too large).
pub fn check_units(plan: &Plan, shard: Option<Shard>, max_fleet: usize) -> Result<()> {
    for u in units(plan, shard, max_fleet) {
        u.cfg.check_size(u.specs.len()).map_err(|e| {
            let runs = match u.runs.as_slice() {
                [one] => format!("run {one}"),
                [first, .., last] => format!(
                    "the {} runs {first} … {last} (one fleet; max_fleet = {max_fleet})",
                    u.runs.len()
                ),
                [] => "no run".into(),
            };
            Error::Config(format!("sweep {runs}: {e}"))
        })?;
    }
    Ok(())
}

/// The units of a plan (shard): its runs grouped into fleets, the same for every worker.
fn units(plan: &Plan, shard: Option<Shard>, max_fleet: usize) -> Vec<FleetPlan> {
    let pts: Vec<&RunPoint> = plan
        .points
        .iter()
        .filter(|p| shard.is_none_or(|s| s.contains(p.id)))
        .collect();
    group_fleets(&pts, max_fleet.max(1))
}

/// The part of a unit whose runs are in `left`.
fn subset(f: &FleetPlan, left: &[usize]) -> FleetPlan {
    let (runs, specs): (Vec<usize>, Vec<ModelSpec>) = f
        .runs
        .iter()
        .zip(&f.specs)
        .filter(|(r, _)| left.contains(r))
        .enumerate()
        .map(|(i, (r, s))| {
            (
                *r,
                ModelSpec {
                    index: i,
                    ..s.clone()
                },
            )
        })
        .unzip();
    FleetPlan {
        cfg: f.cfg.clone(),
        runs,
        specs,
    }
}

/// Why a unit's training stopped early.
enum Halt {
    Lost,
    Signal(usize),
}

/// Runs the (shard of the) sweep into `dir` as one worker among any number: creates the
/// directory or joins it (same plan), claims unit after unit, trains and commits them, and,
/// when every run is finished, writes the tables. `stop` (a signal number, 0 for none) stops
/// it between steps; the unit in training is given back.
pub fn run(
    plan: &Plan,
    dir: &Path,
    shard: Option<Shard>,
    opts: &WorkerOptions,
    stop: &AtomicUsize,
    progress: &mut dyn FnMut(&SweepProgress),
) -> Result<WorkerOutcome> {
    if let Some(n) = &opts.name {
        claims::check_name(n)?;
    }
    // Every unit fits this machine's memory, before anything is written.
    let max_fleet = match store::read_plan(dir) {
        Ok(pf) if pf.hash == plan.spec.plan_hash() => pf.max_fleet,
        _ => plan.spec.max_fleet,
    };
    check_units(plan, shard, max_fleet)?;
    let store = Store::open(dir, &plan.plan_file(shard), opts.lease)?;
    let claims = Arc::new(Claims::open(dir, opts.lease)?);
    let me = Me::new(opts.name.as_deref());
    let units = units(plan, shard, store.plan.max_fleet);
    let mut run_work: BTreeMap<usize, u64> = BTreeMap::new();
    let mut unit_steps = Vec::with_capacity(units.len());
    for u in &units {
        let steps = u.cfg.total_steps(n_train(&u.cfg)?);
        unit_steps.push(steps);
        for &r in &u.runs {
            run_work.insert(r, steps);
        }
    }
    let work_total: u64 = run_work.values().sum();
    if let Some(h) = claims.heartbeat(&me.name) {
        let running = !matches!(h.state, WorkerState::Finished | WorkerState::Stopped);
        let here = h.host == me.host && h.pid != me.pid && crate::fsio::process_alive(h.pid);
        // A name given by the user, alive on another host (a Slurm task requeued elsewhere
        // keeps its default name and continues).
        let elsewhere =
            opts.name.is_some() && h.host != me.host && crate::fsio::now() - h.beat < opts.lease;
        let alive = running && (here || elsewhere);
        if alive {
            return Err(Error::Sweep {
                dir: dir.to_path_buf(),
                why: format!(
                    "a worker named {} is already running (host {}, pid {}); give each worker its own --worker name",
                    me.name, h.host, h.pid
                ),
            });
        }
    }
    let pulse = Pulse::start(Arc::clone(&claims), &me)?;
    claims.log(&me, "start", &format!("plan {}", store.plan.hash))?;
    let mut trained = Vec::new();
    let w = Worker {
        plan,
        store: &store,
        claims: &claims,
        me: &me,
        pulse: &pulse,
        units: &units,
        unit_steps: &unit_steps,
        run_work: &run_work,
        work_total,
        opts,
        stop,
    };
    let end = w.work(&mut trained, progress);
    let state = match &end {
        Ok(SweepEnd::Interrupted { .. }) | Err(_) => WorkerState::Stopped,
        Ok(_) => WorkerState::Finished,
    };
    let detail = match &end {
        Ok(SweepEnd::Complete(_)) => "complete".to_string(),
        Ok(SweepEnd::Left { units }) => format!("left ({units} units with other workers)"),
        Ok(SweepEnd::Interrupted { signal }) => format!("interrupted by signal {signal}"),
        Err(e) => format!("error: {e}"),
    };
    let _ = claims.log(&me, "end", &detail);
    pulse.finish(&claims, state)?;
    Ok(WorkerOutcome {
        end: end?,
        worker: me.name,
        trained,
    })
}

/// Runs the whole (shard of the) sweep in this process as one worker (joining any others on
/// the directory and waiting for them), and returns every record.
pub fn run_all(
    plan: &Plan,
    dir: &Path,
    shard: Option<Shard>,
    progress: &mut dyn FnMut(&SweepProgress),
) -> Result<BTreeMap<usize, RunRecord>> {
    let never = AtomicUsize::new(0);
    match run(
        plan,
        dir,
        shard,
        &WorkerOptions::default(),
        &never,
        progress,
    )?
    .end
    {
        SweepEnd::Complete(records) => Ok(records),
        other => Err(Error::Sweep {
            dir: dir.to_path_buf(),
            why: format!("the sweep did not complete: {other:?}"),
        }),
    }
}

/// One worker's view of the sweep.
struct Worker<'a> {
    plan: &'a Plan,
    store: &'a Store,
    claims: &'a Claims,
    me: &'a Me,
    pulse: &'a Pulse,
    units: &'a [FleetPlan],
    unit_steps: &'a [u64],
    /// Model-steps of each run of the plan (shard).
    run_work: &'a BTreeMap<usize, u64>,
    work_total: u64,
    opts: &'a WorkerOptions,
    stop: &'a AtomicUsize,
}

impl Worker<'_> {
    fn work(
        &self,
        trained: &mut Vec<usize>,
        progress: &mut dyn FnMut(&SweepProgress),
    ) -> Result<SweepEnd> {
        let Worker {
            plan,
            store,
            claims,
            me,
            pulse,
            units,
            unit_steps,
            run_work,
            work_total,
            opts,
            stop,
        } = *self;
        let mut work_done_here = 0u64;
        loop {
            let sig = stop.load(Ordering::SeqCst);
            if sig != 0 {
                return Ok(SweepEnd::Interrupted { signal: sig });
            }
            let done = store.done_ids()?;
            let done_work: u64 = done.iter().filter_map(|r| run_work.get(r)).sum();
            let runs_done = done.iter().filter(|r| run_work.contains_key(r)).count();
            let mut held = 0;
            let mut won = None;
            for (u, unit) in units.iter().enumerate() {
                if unit.runs.iter().all(|r| done.contains(r)) {
                    continue;
                }
                match claims.try_claim(u, me)? {
                    Attempt::Won(gen) => {
                        won = Some((u, gen));
                        break;
                    }
                    Attempt::Held { .. } => held += 1,
                }
            }
            let mut st = SweepProgress {
                runs_done,
                runs_total: run_work.len(),
                work_done: done_work,
                work_total,
                unit: None,
                elsewhere: held,
            };
            let Some((u, gen)) = won else {
                if held == 0 {
                    let records = store.records()?;
                    write_tables(&store.dir, &plan.axes(), &records)?;
                    progress(&st);
                    return Ok(SweepEnd::Complete(records));
                }
                if !opts.wait {
                    return Ok(SweepEnd::Left { units: held });
                }
                progress(&st);
                pulse.update_now(claims, |hb, g| {
                    if hb.state != WorkerState::Waiting {
                        hb.state = WorkerState::Waiting;
                        hb.unit = None;
                        hb.runs.clear();
                        *g = None;
                    }
                })?;
                let until =
                    std::time::Instant::now() + std::time::Duration::from_secs_f64(opts.poll);
                while std::time::Instant::now() < until && stop.load(Ordering::SeqCst) == 0 {
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                continue;
            };
            // Runs of the unit another worker finished meanwhile are not trained again.
            let done = store.done_ids()?;
            let left: Vec<usize> = units[u]
                .runs
                .iter()
                .copied()
                .filter(|r| !done.contains(r))
                .collect();
            if left.is_empty() {
                claims.release(u, gen, me)?;
                continue;
            }
            let f = subset(&units[u], &left);
            let steps = unit_steps[u];
            claims.log(me, "claim", &format!("unit {u} g{gen} runs {left:?}"))?;
            pulse.lost.store(false, Ordering::SeqCst);
            pulse.update_now(claims, |hb, g| {
                hb.state = WorkerState::Training;
                hb.unit = Some(u);
                hb.runs = left.clone();
                hb.step = 0;
                hb.total_steps = steps;
                *g = Some(gen);
            })?;
            st.unit = Some(u);
            st.work_done = done.iter().filter_map(|r| run_work.get(r)).sum();
            st.runs_done = done.iter().filter(|r| run_work.contains_key(r)).count();
            let base = st.work_done;
            let m = f.specs.len() as u64;
            let setup = f.cfg.setup_specs(f.specs.clone())?;
            let sink = |net: &crate::train::Network, step: u64| {
                store.write_checkpoints(&f.runs, net, step)
            };
            let mut halt = None;
            let out = train(&f.cfg, setup, Some(&sink), &mut |p| {
                let sig = stop.load(Ordering::SeqCst);
                if sig != 0 {
                    halt = Some(Halt::Signal(sig));
                } else if pulse.lost.load(Ordering::SeqCst) {
                    halt = Some(Halt::Lost);
                }
                if halt.is_some() {
                    return Err(Error::Sweep {
                        dir: store.dir.clone(),
                        why: "stopped".into(),
                    });
                }
                st.work_done = base + p.step * m;
                pulse.update(|hb, _| {
                    hb.step = p.step;
                    hb.work_done = work_done_here + p.step * m;
                });
                progress(&st);
                Ok(())
            });
            let out = match (out, halt) {
                (Ok(out), _) => out,
                (Err(_), Some(Halt::Lost)) => {
                    claims.log(me, "lost", &format!("unit {u} g{gen}: taken over"))?;
                    continue;
                }
                (Err(_), Some(Halt::Signal(sig))) => {
                    claims.release(u, gen, me)?;
                    claims.log(me, "release", &format!("unit {u} g{gen} (signal {sig})"))?;
                    return Ok(SweepEnd::Interrupted { signal: sig });
                }
                (Err(e), None) => {
                    let _ = claims.release(u, gen, me);
                    return Err(e);
                }
            };
            work_done_here += steps * m;
            claims.log(me, "trained", &format!("unit {u} runs {left:?}"))?;
            if !claims.holds(u, gen) {
                claims.log(
                    me,
                    "lost",
                    &format!("unit {u} g{gen}: taken over before commit"),
                )?;
                continue;
            }
            let (history, diverged_at) = (out.history, out.diverged_at);
            for (i, &run) in f.runs.iter().enumerate() {
                let t = Thresholds::from(&f.cfg.eval);
                let Some(o) = outcome(&history[i], diverged_at.get(i).copied().flatten(), t) else {
                    continue;
                };
                let rec = RunRecord {
                    run,
                    plan: plan.spec.plan_hash(),
                    coords: plan.points[run]
                        .coords
                        .iter()
                        .map(|(k, v)| (k.clone(), toml_to_json(v)))
                        .collect(),
                    phase: o.phase,
                    steps,
                    dynamics: o.dynamics,
                    last: o.last,
                    curve_sha256: None,
                    sha256: None,
                };
                store.commit(&rec, &history[i])?;
                trained.push(run);
            }
            claims.log(me, "commit", &format!("unit {u} runs {left:?}"))?;
            pulse.update(|hb, _| {
                hb.runs_done += left.len();
                hb.work_done = work_done_here;
            });
        }
    }
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

fn merge_into(
    out: &Path,
    plan: &PlanFile,
    all: &BTreeMap<usize, RunRecord>,
    from: &BTreeMap<usize, &Path>,
    inputs: &[&Path],
) -> Result<()> {
    let mut plan = plan.clone();
    plan.shard = None;
    let store = Store::open(out, &plan, f64::INFINITY)?;
    for (id, rec) in all {
        if let Some(src) = from.get(id) {
            store.copy_curve(src, rec)?;
        }
        store.commit_record(rec)?;
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
    write_tables(out, &axis_keys(&spec), all)
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
    // Every input checked whole (`grokscope verify`) before anything is written.
    for d in inputs {
        store::refuse_damaged(d)?;
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
    // Built under a staging name and renamed into place complete: a merge killed or failed
    // halfway leaves no directory that looks like a (partial) sweep.
    // The staging directories of merges killed before (dead processes, whatever output they
    // were building) are removed first.
    let parent = out.parent().filter(|p| !p.as_os_str().is_empty());
    if let Some(parent) = parent {
        crate::fsio::create_dir_all(parent)?;
    }
    crate::rundir::swap::recover_all(parent.unwrap_or(Path::new(".")))?;
    let staged = crate::rundir::swap::stage(out)?;
    let built = merge_into(&staged, &plans[0], &all, &from, inputs)
        .and_then(|_| crate::rundir::swap::swap_in(&staged, out));
    if built.is_err() {
        crate::rundir::swap::discard(&staged);
    }
    built?;
    Ok(all)
}
