//! The crash-safe result store of a sweep directory.
//!
//! ```text
//! DIR/plan.json          the plan: canonical spec, its hash, the shard, the run count
//! DIR/runs/<id>.json     one record per finished run, written to a temporary file,
//!                        flushed to disk and renamed into place (atomic on POSIX)
//! DIR/results.csv …      derived tables, rewritten from the records
//! ```
//!
//! A process killed at any moment leaves whole records or none: a run is either committed
//! or redone on resume. Leftover temporary files are removed when the directory is opened.

use crate::analysis::dynamics::Dynamics;
use crate::error::{Error, Result};
use crate::metrics::{Phase, Record};
pub use crate::rundir::atomic_write;
use crate::rundir::{checkpoint_name, write_file};
use crate::train::{Engine, Network};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

const PLAN: &str = "plan.json";
const RUNS: &str = "runs";
const CHECKPOINTS: &str = "checkpoints";
const RESULTS: &str = "results.csv";
const GRID_CSV: &str = "phase_grid.csv";
const GRID_TXT: &str = "phase_grid.txt";
/// What a sweep directory holds besides its plan and checkpoints.
pub const TABLE_FILES: [&str; 4] = [RESULTS, GRID_TXT, GRID_CSV, "runs/"];

/// Whether `path` is a sweep directory (it has a plan).
pub fn is_sweep(path: &Path) -> bool {
    path.join(PLAN).is_file()
}

/// The phase grids as text (`phase_grid.txt`), if the sweep has them.
pub fn read_grid_text(dir: &Path) -> Result<Option<String>> {
    let p = dir.join(GRID_TXT);
    if !p.exists() {
        return Ok(None);
    }
    fs::read_to_string(&p)
        .map(Some)
        .map_err(|e| Error::io(&p, e))
}

/// Writes the derived tables: `results.csv`, and with phase grids `phase_grid.csv` and
/// `phase_grid.txt` (each replaced atomically).
pub fn write_tables(dir: &Path, results: &str, grids: Option<(&str, &str)>) -> Result<()> {
    atomic_write(&dir.join(RESULTS), results.as_bytes())?;
    if let Some((csv, txt)) = grids {
        atomic_write(&dir.join(GRID_CSV), csv.as_bytes())?;
        atomic_write(&dir.join(GRID_TXT), txt.as_bytes())?;
    }
    Ok(())
}

/// What identifies a sweep directory's plan.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanFile {
    pub name: String,
    pub hash: String,
    pub runs: usize,
    /// `"i/n"`, or absent for the whole sweep.
    pub shard: Option<String>,
    /// The canonical spec, for reference.
    pub spec: String,
}

/// One finished run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    pub run: usize,
    /// Axis values of this run, by dotted key.
    pub coords: BTreeMap<String, serde_json::Value>,
    pub phase: Phase,
    pub steps: u64,
    #[serde(rename = "final")]
    pub last: Record,
    pub dynamics: Dynamics,
}

pub struct Store {
    pub dir: PathBuf,
    pub plan: PlanFile,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |e| Error::io(path, e)
}

impl Store {
    /// Opens `dir` for `plan`: creates it if needed; refuses a directory that holds another
    /// plan or other files.
    pub fn open(dir: &Path, plan: &PlanFile) -> Result<Store> {
        let plan_path = dir.join(PLAN);
        let refuse = |why: String| Error::Sweep {
            dir: dir.to_path_buf(),
            why,
        };
        if dir.exists() {
            if !dir.is_dir() {
                return Err(refuse("it is not a directory".into()));
            }
            if plan_path.exists() {
                let found = read_plan(dir)?;
                if found.hash != plan.hash || found.shard != plan.shard {
                    return Err(refuse(format!(
                        "it holds a different plan ({}{}, hash {}) than this one ({}{}, hash {}); use another --out",
                        found.name,
                        found.shard.as_deref().map(|s| format!(", shard {s}")).unwrap_or_default(),
                        found.hash,
                        plan.name,
                        plan.shard.as_deref().map(|s| format!(", shard {s}")).unwrap_or_default(),
                        plan.hash
                    )));
                }
            } else if fs::read_dir(dir).map_err(io(dir))?.next().is_some() {
                return Err(refuse(format!(
                    "it exists and is not a sweep directory (no {PLAN}); use another --out"
                )));
            }
        }
        let runs = dir.join(RUNS);
        fs::create_dir_all(&runs).map_err(io(&runs))?;
        if !plan_path.exists() {
            let text = serde_json::to_string_pretty(plan)
                .map_err(|e| Error::json(&plan_path, "cannot write the plan", e))?;
            atomic_write(&plan_path, text.as_bytes())?;
        }
        // Temporary files of runs in flight when a process died.
        for e in fs::read_dir(&runs).map_err(io(&runs))? {
            let p = e.map_err(io(&runs))?.path();
            if p.extension().is_some_and(|x| x == "tmp") {
                fs::remove_file(&p).map_err(io(&p))?;
            }
        }
        Ok(Store {
            dir: dir.to_path_buf(),
            plan: plan.clone(),
        })
    }

    /// The committed records, by run id.
    pub fn records(&self) -> Result<BTreeMap<usize, RunRecord>> {
        read_records(&self.dir)
    }

    /// Writes `checkpoints/run-XXXXXX/step-XXXXXXXX.safetensors` for each run of a fleet
    /// (`runs[i]` is model `i` of `network`), one model per file. A fleet redone after a
    /// crash writes the same weights again, so existing files are replaced.
    pub fn write_checkpoints(&self, runs: &[usize], network: &Network, step: u64) -> Result<()> {
        for (i, &run) in runs.iter().enumerate() {
            let dir = self.checkpoint_dir(run);
            fs::create_dir_all(&dir).map_err(io(&dir))?;
            write_file(
                &dir,
                &checkpoint_name(step),
                &network.save(step, &[i])?,
                true,
            )?;
        }
        Ok(())
    }

    fn checkpoint_dir(&self, run: usize) -> PathBuf {
        self.dir.join(CHECKPOINTS).join(format!("run-{run:06}"))
    }

    /// Copies the checkpoints of `runs` from the sweep directory `from` (a shard) into this
    /// one; returns how many files were copied.
    pub fn copy_checkpoints(&self, from: &Path, runs: &[usize]) -> Result<usize> {
        let mut copied = 0;
        for &run in runs {
            let src = from.join(CHECKPOINTS).join(format!("run-{run:06}"));
            if !src.is_dir() {
                continue;
            }
            let dst = self.checkpoint_dir(run);
            fs::create_dir_all(&dst).map_err(io(&dst))?;
            for e in fs::read_dir(&src).map_err(io(&src))? {
                let p = e.map_err(io(&src))?.path();
                let Some(name) = p.file_name().and_then(|n| n.to_str()) else {
                    continue;
                };
                if p.is_file() && name.ends_with(".safetensors") {
                    let tmp = dst.join(format!(".{name}.tmp"));
                    fs::copy(&p, &tmp).map_err(io(&p))?;
                    fs::rename(&tmp, dst.join(name)).map_err(io(&dst))?;
                    copied += 1;
                }
            }
        }
        Ok(copied)
    }

    /// Commits one finished run.
    pub fn commit(&self, rec: &RunRecord) -> Result<()> {
        let path = self.dir.join(RUNS).join(format!("{:06}.json", rec.run));
        let text = serde_json::to_string_pretty(rec)
            .map_err(|e| Error::json(&path, "cannot write the run record", e))?;
        atomic_write(&path, text.as_bytes())
    }
}

pub fn read_plan(dir: &Path) -> Result<PlanFile> {
    let p = dir.join(PLAN);
    let text = fs::read_to_string(&p).map_err(|_| Error::Sweep {
        dir: dir.to_path_buf(),
        why: format!("it is not a sweep directory (no {PLAN})"),
    })?;
    serde_json::from_str(&text).map_err(|e| Error::json(&p, "corrupt sweep plan", e))
}

/// Reads every committed record of a sweep directory.
pub fn read_records(dir: &Path) -> Result<BTreeMap<usize, RunRecord>> {
    let runs = dir.join(RUNS);
    let mut out = BTreeMap::new();
    if !runs.exists() {
        return Ok(out);
    }
    for e in fs::read_dir(&runs).map_err(io(&runs))? {
        let p = e.map_err(io(&runs))?.path();
        if p.extension().is_none_or(|x| x != "json") {
            continue;
        }
        let text = fs::read_to_string(&p).map_err(io(&p))?;
        let rec: RunRecord =
            serde_json::from_str(&text).map_err(|e| Error::json(&p, "corrupt run record", e))?;
        out.insert(rec.run, rec);
    }
    Ok(out)
}
