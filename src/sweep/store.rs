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
use crate::metrics::Record;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

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
    pub phase: String,
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
        let plan_path = dir.join("plan.json");
        if dir.exists() {
            if !dir.is_dir() {
                return Err(Error::Output(format!(
                    "{} is not a directory",
                    dir.display()
                )));
            }
            if plan_path.exists() {
                let found = read_plan(dir)?;
                if found.hash != plan.hash || found.shard != plan.shard {
                    return Err(Error::Output(format!(
                        "{} holds a different plan ({}{}, hash {}) than this one ({}{}, hash {}); use another --out",
                        dir.display(),
                        found.name,
                        found.shard.as_deref().map(|s| format!(", shard {s}")).unwrap_or_default(),
                        found.hash,
                        plan.name,
                        plan.shard.as_deref().map(|s| format!(", shard {s}")).unwrap_or_default(),
                        plan.hash
                    )));
                }
            } else if fs::read_dir(dir).map_err(io(dir))?.next().is_some() {
                return Err(Error::Output(format!(
                    "{} exists and is not a sweep directory (no plan.json); use another --out",
                    dir.display()
                )));
            }
        }
        let runs = dir.join("runs");
        fs::create_dir_all(&runs).map_err(io(&runs))?;
        if !plan_path.exists() {
            let text =
                serde_json::to_string_pretty(plan).map_err(|e| Error::Output(e.to_string()))?;
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

    /// Commits one finished run.
    pub fn commit(&self, rec: &RunRecord) -> Result<()> {
        let text = serde_json::to_string_pretty(rec).map_err(|e| Error::Output(e.to_string()))?;
        atomic_write(
            &self.dir.join("runs").join(format!("{:06}.json", rec.run)),
            text.as_bytes(),
        )
    }
}

pub fn read_plan(dir: &Path) -> Result<PlanFile> {
    let p = dir.join("plan.json");
    let text = fs::read_to_string(&p).map_err(|_| {
        Error::Output(format!(
            "{} is not a sweep directory (no plan.json)",
            dir.display()
        ))
    })?;
    serde_json::from_str(&text).map_err(|e| Error::Output(format!("{}: {e}", p.display())))
}

/// Reads every committed record of a sweep directory.
pub fn read_records(dir: &Path) -> Result<BTreeMap<usize, RunRecord>> {
    let runs = dir.join("runs");
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
        let rec: RunRecord = serde_json::from_str(&text)
            .map_err(|e| Error::Output(format!("{}: corrupt run record: {e}", p.display())))?;
        out.insert(rec.run, rec);
    }
    Ok(out)
}

/// Writes `bytes` to `path` through a flushed temporary file renamed into place.
pub fn atomic_write(path: &Path, bytes: &[u8]) -> Result<()> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp"));
    {
        let mut f = fs::File::create(&tmp).map_err(io(&tmp))?;
        f.write_all(bytes).map_err(io(&tmp))?;
        f.sync_all().map_err(io(&tmp))?;
    }
    fs::rename(&tmp, path).map_err(io(path))
}
