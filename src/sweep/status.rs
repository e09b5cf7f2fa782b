//! Where a sweep directory stands: finished, running (by worker), left, diverged, and an ETA.

use super::claims::{Claims, Heartbeat, Me, WorkerState};
use super::store::{read_records, PlanFile};
use super::{n_train, units, Plan, Shard};
use crate::error::Result;
use crate::fsio::now;
use crate::metrics::Phase;
use std::collections::BTreeMap;
use std::path::Path;

/// A unit a live worker trains.
#[derive(Clone, Debug)]
pub struct Running {
    pub unit: usize,
    pub runs: Vec<usize>,
    pub worker: String,
    /// Seconds since the worker's last heartbeat.
    pub age: f64,
    pub step: u64,
    pub total_steps: u64,
}

/// The state of a sweep directory.
#[derive(Clone, Debug)]
pub struct Status {
    pub plan: PlanFile,
    pub shard: Option<Shard>,
    pub total: usize,
    pub done: usize,
    pub diverged: usize,
    pub phases: BTreeMap<Phase, usize>,
    pub running: Vec<Running>,
    /// Runs neither finished nor in training.
    pub left: usize,
    /// Units whose worker stopped beating (taken over by the next worker that looks).
    pub stale: Vec<(usize, String)>,
    pub workers: Vec<Heartbeat>,
    /// Files of `claims/` and `workers/` that cannot be read as they should, one line each.
    pub problems: Vec<String>,
    /// Seconds to go at the live workers' measured speed.
    pub eta: Option<f64>,
}

/// Reads the state of the sweep directory `dir`; a claim counts as running while its
/// worker's heartbeat is younger than `lease` seconds.
pub fn status(dir: &Path, lease: f64) -> Result<Status> {
    let (plan, shard) = Plan::from_dir(dir)?;
    let pf = super::store::read_plan(dir)?;
    let units = units(&plan, shard, pf.max_fleet);
    let records = read_records(dir)?;
    let claims = Claims::open_read(dir, lease);
    // An observer on this host: a dead worker of this host counts as dead at once.
    let observer = Me {
        name: "\u{0}status".into(),
        host: crate::fsio::host_tag().to_string(),
        pid: std::process::id(),
    };
    let mut phases = BTreeMap::new();
    for r in records.values() {
        *phases.entry(r.phase).or_insert(0usize) += 1;
    }
    let mut running = Vec::new();
    let mut stale = Vec::new();
    let mut total = 0;
    let mut left = 0;
    let mut remaining_work = 0u64;
    for (u, f) in units.iter().enumerate() {
        let steps = f.cfg.total_steps(n_train(&f.cfg)?);
        let open: Vec<usize> = f
            .runs
            .iter()
            .copied()
            .filter(|r| !records.contains_key(r))
            .collect();
        total += f.runs.len();
        if open.is_empty() {
            continue;
        }
        remaining_work += steps * open.len() as u64;
        let holder = claims.current(u)?;
        match holder {
            Some((_, c)) if !c.released => match claims.takeable(&c, &observer) {
                Err(age) => {
                    let hb = claims.heartbeat(&c.worker);
                    let step = hb
                        .as_ref()
                        .filter(|h| h.unit == Some(u))
                        .map_or(0, |h| h.step);
                    remaining_work = remaining_work.saturating_sub(step * open.len() as u64);
                    running.push(Running {
                        unit: u,
                        runs: open,
                        worker: c.worker,
                        age,
                        step,
                        total_steps: steps,
                    });
                }
                Ok(()) => {
                    stale.push((u, c.worker));
                    left += open.len();
                }
            },
            _ => left += open.len(),
        }
    }
    let workers = claims.heartbeats();
    let t = now();
    let rate: f64 = workers
        .iter()
        .filter(|h| {
            matches!(h.state, WorkerState::Training | WorkerState::Waiting)
                && t - h.beat <= lease
                && h.beat > h.started
        })
        .map(|h| h.work_done as f64 / (h.beat - h.started))
        .sum();
    let eta = (rate > 0.0).then(|| remaining_work as f64 / rate);
    Ok(Status {
        done: records.len(),
        diverged: phases.get(&Phase::Diverged).copied().unwrap_or(0),
        plan: pf,
        shard,
        total,
        phases,
        running,
        left,
        stale,
        problems: claims.problems(),
        workers,
        eta: if remaining_work == 0 { Some(0.0) } else { eta },
    })
}
