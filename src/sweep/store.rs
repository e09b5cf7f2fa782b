//! The crash-safe result store of a sweep directory, shared by any number of workers.
//!
//! ```text
//! DIR/plan.json          the plan: canonical spec, its hash, the shard, the run count and
//!                        max_fleet; created exclusively (the first worker's plan wins)
//! DIR/runs/<id>.json     one record per finished run (final metrics, phase, dynamics)
//! DIR/curves/<id>.csv    the run's metrics at every evaluation (metrics.csv's columns)
//! DIR/claims/, workers/  who trains what, and heartbeats (`claims`)
//! DIR/results.csv …      derived tables, written when every run is finished
//! ```
//!
//! Every file is written whole through a temporary name unique to its writer and renamed
//! into place (`fsio`), the curve before the record, so a committed record always has its
//! curve. A process killed at any moment leaves whole files or none: a run is either committed
//! or redone.

use crate::analysis::dynamics::Dynamics;
use crate::error::{Error, Result};
use crate::fsio;
use crate::metrics::{Phase, Record};
use crate::rundir::{checkpoint_name, curve_csv, read_curve_csv};
use crate::train::{Engine, Network};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

const PLAN: &str = "plan.json";
const RUNS: &str = "runs";
const CURVES: &str = "curves";
const CHECKPOINTS: &str = "checkpoints";
const RESULTS: &str = "results.csv";
const GRID_CSV: &str = "phase_grid.csv";
const GRID_TXT: &str = "phase_grid.txt";
/// What a sweep directory holds besides its plan and checkpoints.
pub const TABLE_FILES: [&str; 5] = [RESULTS, GRID_TXT, GRID_CSV, "runs/", "curves/"];

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
    fsio::write_atomic(&dir.join(RESULTS), results.as_bytes())?;
    if let Some((csv, txt)) = grids {
        fsio::write_atomic(&dir.join(GRID_CSV), csv.as_bytes())?;
        fsio::write_atomic(&dir.join(GRID_TXT), txt.as_bytes())?;
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
    /// The canonical spec: workers joining the directory without a sweep file run this.
    pub spec: String,
    /// Fleet size of the plan's units: every worker groups the runs the same way.
    #[serde(default = "default_max_fleet")]
    pub max_fleet: usize,
}

fn default_max_fleet() -> usize {
    64
}

impl PlanFile {
    fn describe(&self) -> String {
        format!(
            "{}{}, hash {}",
            self.name,
            self.shard
                .as_deref()
                .map(|s| format!(", shard {s}"))
                .unwrap_or_default(),
            self.hash
        )
    }
}

/// One finished run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    pub run: usize,
    /// The hash of the plan the run belongs to (plan.json's `hash`).
    pub plan: String,
    /// Axis values of this run, by dotted key.
    pub coords: BTreeMap<String, serde_json::Value>,
    pub phase: Phase,
    pub steps: u64,
    #[serde(rename = "final")]
    pub last: Record,
    pub dynamics: Dynamics,
    /// The SHA-256 of the run's curve file (`curves/<id>.csv`), as committed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub curve_sha256: Option<String>,
    /// The SHA-256 of this record's text written without this field (`RunRecord::seal`).
    /// Records written before digests have neither (read with a note).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

impl RunRecord {
    /// The record's text (pretty JSON) without its own digest, and that digest.
    fn digest(&self) -> Result<(String, String)> {
        let mut bare = self.clone();
        bare.sha256 = None;
        let text = serde_json::to_string_pretty(&bare)
            .map_err(|e| Error::Config(format!("run record {}: {e}", self.run)))?;
        let d = crate::digest::sha256_hex(&[text.as_bytes()]);
        Ok((text, d))
    }

    /// Whether the record is the one written (its digest matches; `None`: it has none).
    fn check_digest(&self) -> Result<Option<bool>> {
        match &self.sha256 {
            None => Ok(None),
            Some(found) => Ok(Some(self.digest()?.1 == *found)),
        }
    }
}

pub struct Store {
    pub dir: PathBuf,
    pub plan: PlanFile,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |e| Error::io(path, e)
}

impl Store {
    /// Opens `dir` for `plan`, creating it if needed. Of several processes creating one
    /// directory at once, exactly one plan wins; a different plan, or a non-empty directory
    /// that is not a sweep, is refused. Temporary files of writers killed more than `stale`
    /// seconds ago are removed.
    pub fn open(dir: &Path, plan: &PlanFile, stale: f64) -> Result<Store> {
        let plan_path = dir.join(PLAN);
        let refuse = |why: String| Error::Sweep {
            dir: dir.to_path_buf(),
            why,
        };
        if dir.exists() && !dir.is_dir() {
            return Err(refuse("it is not a directory".into()));
        }
        fsio::create_dir_all(dir)?;
        if !plan_path.exists() {
            // Only the temporary files of a plan being created (or of a creator killed
            // before it finished) may be there.
            let other = fs::read_dir(dir)
                .map_err(io(dir))?
                .flatten()
                .map(|e| e.file_name().to_string_lossy().to_string())
                .find(|n| {
                    let temp = n.starts_with(".plan.json") && fsio::is_temp(n);
                    // An empty runs/ of a creation killed by an earlier grokscope.
                    let empty_runs = n == RUNS
                        && fs::read_dir(dir.join(n)).is_ok_and(|mut d| d.next().is_none());
                    !(temp || empty_runs)
                });
            // Another creator may have won between the check above and the listing:
            // then its plan.json (and its runs/, curves/) are there, and that is fine.
            if let Some(name) = other.filter(|_| !plan_path.exists()) {
                return Err(refuse(format!(
                    "it exists and is not a sweep directory (no {PLAN}, but {name}); use another --out"
                )));
            }
            let text = serde_json::to_string_pretty(plan)
                .map_err(|e| Error::json(&plan_path, "cannot write the plan", e))?;
            fsio::create_exclusive(&plan_path, text.as_bytes())?;
        }
        let found = read_plan(dir)?;
        if found.hash != plan.hash || found.shard != plan.shard {
            return Err(refuse(format!(
                "it holds a different plan ({}) than this one ({}); use another --out (or join the directory's plan: `sweep run --out DIR` with no sweep file)",
                found.describe(),
                plan.describe()
            )));
        }
        Store::at(dir, found, stale)
    }

    /// Opens an existing sweep directory with the plan it holds.
    pub fn join(dir: &Path, stale: f64) -> Result<Store> {
        let plan = read_plan(dir)?;
        Store::at(dir, plan, stale)
    }

    fn at(dir: &Path, plan: PlanFile, stale: f64) -> Result<Store> {
        for sub in [RUNS, CURVES] {
            let p = dir.join(sub);
            fsio::create_dir_all(&p)?;
            fsio::remove_stale_temps(&p, stale)?;
        }
        fsio::remove_stale_temps(dir, stale)?;
        Ok(Store {
            dir: dir.to_path_buf(),
            plan,
        })
    }

    /// The ids of the committed runs (from the file names; cheap).
    pub fn done_ids(&self) -> Result<std::collections::BTreeSet<usize>> {
        done_ids(&self.dir)
    }

    /// The curve of a committed run.
    pub fn curve(&self, run: usize) -> Result<Vec<Record>> {
        read_curve(&self.dir, run)
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
            fsio::create_dir_all(&dir)?;
            fsio::write_atomic(&dir.join(checkpoint_name(step)), &network.save(step, &[i])?)?;
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
            fsio::create_dir_all(&dst)?;
            for e in fs::read_dir(&src).map_err(io(&src))? {
                let p = e.map_err(io(&src))?.path();
                let Some(name) = p.file_name().and_then(|n| n.to_str()) else {
                    continue;
                };
                if p.is_file() && name.ends_with(".safetensors") && !name.starts_with('.') {
                    // A checkpoint damaged in the shard is not carried into the merge.
                    let bytes = fsio::read_bytes(&p).map_err(io(&p))?;
                    match crate::digest::verify(&bytes) {
                        Ok(crate::digest::Seal::Verified) => {}
                        Ok(crate::digest::Seal::Absent) => crate::digest::note_unsealed(&p),
                        Err(why) => return Err(Error::BadFile { path: p, why }),
                    }
                    fsio::write_atomic(&dst.join(name), &bytes)?;
                    copied += 1;
                }
            }
        }
        Ok(copied)
    }

    /// Commits one finished run: its curve, then its record (the record marks it done).
    pub fn commit(&self, rec: &RunRecord, curve: &[Record]) -> Result<()> {
        let cpath = self.dir.join(CURVES).join(format!("{:06}.csv", rec.run));
        let text = curve_csv(curve);
        fsio::write_atomic(&cpath, text.as_bytes())?;
        let mut rec = rec.clone();
        rec.curve_sha256 = Some(crate::digest::sha256_hex(&[text.as_bytes()]));
        self.commit_record(&rec)
    }

    /// Writes a run's record (its curve must be in place first), sealed with its digest.
    pub fn commit_record(&self, rec: &RunRecord) -> Result<()> {
        let path = self.dir.join(RUNS).join(format!("{:06}.json", rec.run));
        let mut rec = rec.clone();
        // A record merged from a shard keeps its digest only if it is the one written there.
        if rec.check_digest()? == Some(false) {
            return Err(Error::BadFile {
                path,
                why: "the record to write does not match its own digest".into(),
            });
        }
        if rec.sha256.is_none() && rec.curve_sha256.is_some() {
            rec.sha256 = Some(rec.digest()?.1);
        }
        let text = serde_json::to_string_pretty(&rec)
            .map_err(|e| Error::json(&path, "cannot write the run record", e))?;
        fsio::write_atomic(&path, text.as_bytes())
    }

    /// Copies the curve of `run` from the sweep directory `from` (a merge).
    /// Copies the curve of `rec` from the sweep directory `from`, after checking it.
    pub fn copy_curve(&self, from: &Path, rec: &RunRecord) -> Result<()> {
        read_checked_curve(from, rec)?;
        let name = format!("{:06}.csv", rec.run);
        fsio::copy_atomic(
            &from.join(CURVES).join(&name),
            &self.dir.join(CURVES).join(name),
        )
    }
}

/// Reads and checks `plan.json`: its spec parses and hashes to its hash, and its run count and
/// `max_fleet` agree with the spec.
pub fn read_plan(dir: &Path) -> Result<PlanFile> {
    let p = dir.join(PLAN);
    let text = crate::fsio::read_text(&p).map_err(|e| Error::Sweep {
        dir: dir.to_path_buf(),
        why: if !dir.exists() {
            "no such directory".to_string()
        } else if !dir.is_dir() {
            "it is a file, not a sweep directory".to_string()
        } else if p.exists() {
            format!("cannot read {PLAN}: {e}")
        } else {
            format!("it has no {PLAN}: not a sweep directory")
        },
    })?;
    let pf: PlanFile =
        serde_json::from_str(&text).map_err(|e| Error::json(&p, "corrupt sweep plan", e))?;
    let bad = |why: String| Error::BadFile {
        path: p.clone(),
        why: format!("{why} (was it edited? plan.json is written once, by the first worker)"),
    };
    let spec =
        super::spec::SweepSpec::parse(&pf.spec).map_err(|e| bad(format!("its spec: {e}")))?;
    if spec.plan_hash() != pf.hash {
        return Err(bad(format!(
            "its spec hashes to {}, not to its hash {}",
            spec.plan_hash(),
            pf.hash
        )));
    }
    let runs = spec.n_runs().map_err(|e| bad(format!("its spec: {e}")))?;
    if runs != pf.runs {
        return Err(bad(format!(
            "it says {} runs, its spec has {runs}",
            pf.runs
        )));
    }
    if pf.max_fleet == 0 || pf.max_fleet > crate::config::MAX_FLEET {
        return Err(bad(format!(
            "max_fleet = {} is outside [1, {}]",
            pf.max_fleet,
            crate::config::MAX_FLEET
        )));
    }
    if let Some(s) = &pf.shard {
        s.parse::<super::spec::Shard>()
            .map_err(|e| bad(format!("its shard: {e}")))?;
    }
    Ok(pf)
}

/// The ids of the committed runs of a sweep directory (from the record file names): runs
/// whose record and curve are both there (a run whose curve was deleted is trained again).
pub fn done_ids(dir: &Path) -> Result<std::collections::BTreeSet<usize>> {
    let runs = dir.join(RUNS);
    let mut out = std::collections::BTreeSet::new();
    if !runs.exists() {
        return Ok(out);
    }
    for e in fs::read_dir(&runs).map_err(io(&runs))? {
        let name = e.map_err(io(&runs))?.file_name();
        let name = name.to_string_lossy();
        if let Some(id) = name
            .strip_suffix(".json")
            .filter(|s| !s.starts_with('.'))
            .and_then(|s| s.parse::<usize>().ok())
        {
            if dir.join(CURVES).join(format!("{id:06}.csv")).is_file() {
                out.insert(id);
            }
        }
    }
    Ok(out)
}

/// Whether run `run` has a curve file.
pub fn has_curve(dir: &Path, run: usize) -> bool {
    dir.join(CURVES).join(format!("{run:06}.csv")).is_file()
}

/// The curve of a committed run (its metrics at every evaluation).
pub fn read_curve(dir: &Path, run: usize) -> Result<Vec<Record>> {
    let p = dir.join(CURVES).join(format!("{run:06}.csv"));
    let text = crate::fsio::read_text(&p).map_err(io(&p))?;
    read_curve_csv(&p, &text)
}

/// The curve of the committed run `rec`, checked against its record: it starts at step 0
/// and ends at the record's step with the record's final metrics.
pub fn read_checked_curve(dir: &Path, rec: &RunRecord) -> Result<Vec<Record>> {
    let p = dir.join(CURVES).join(format!("{:06}.csv", rec.run));
    if let Some(want) = &rec.curve_sha256 {
        let bytes = crate::fsio::read_bytes(&p).map_err(io(&p))?;
        if crate::digest::sha256_hex(&[&bytes]) != *want {
            return Err(Error::BadFile {
                path: p,
                why: format!(
                    "its content does not match the SHA-256 digest runs/{:06}.json records for it: it was changed or damaged after the run was committed, or belongs to another run; delete both files to have the run trained again",
                    rec.run
                ),
            });
        }
    }
    let curve = read_curve(dir, rec.run)?;
    let same =
        |a: &Record, b: &Record| serde_json::to_value(a).ok() == serde_json::to_value(b).ok();
    // Evaluations are evenly spaced (every eval.every steps), the last one possibly closer.
    let gaps: Vec<u64> = curve.windows(2).map(|w| w[1].step - w[0].step).collect();
    let even = match gaps.split_last() {
        Some((last, rest)) => rest.iter().all(|g| *g == gaps[0]) && *last <= gaps[0],
        None => true,
    };
    match (curve.first(), curve.last()) {
        (Some(first), Some(last)) if first.step == 0 && even && same(last, &rec.last) => {
            Ok(curve)
        }
        _ => Err(Error::BadFile {
            path: p,
            why: format!(
                "it does not run evenly from step 0 to the final metrics of runs/{:06}.json (step {}): it belongs to another run or was edited",
                rec.run, rec.steps
            ),
        }),
    }
}

/// Reads every committed record of a sweep directory, each checked against the plan: its
/// plan hash, a run id of the plan (and of its shard), the name of its file.
/// A record's text sealed again after a deliberate edit (the tests' way of reaching the
/// checks behind the digest), with `curve` (the run's curve file, if given) as its curve.
pub fn reseal_record(text: &str, curve: Option<&[u8]>) -> Result<String> {
    let mut rec: RunRecord =
        serde_json::from_str(text).map_err(|e| Error::Config(format!("not a run record: {e}")))?;
    if let Some(c) = curve {
        rec.curve_sha256 = Some(crate::digest::sha256_hex(&[c]));
    }
    rec.sha256 = None;
    rec.sha256 = Some(rec.digest()?.1);
    serde_json::to_string_pretty(&rec).map_err(|e| Error::Config(format!("run record: {e}")))
}

pub fn read_records(dir: &Path) -> Result<BTreeMap<usize, RunRecord>> {
    let plan = read_plan(dir)?;
    let spec = super::spec::SweepSpec::parse(&plan.spec)?;
    let shard = plan
        .shard
        .as_deref()
        .and_then(|s| s.parse::<super::spec::Shard>().ok());
    let runs = dir.join(RUNS);
    let mut out = BTreeMap::new();
    if !runs.exists() {
        return Ok(out);
    }
    for e in fs::read_dir(&runs).map_err(io(&runs))? {
        let p = e.map_err(io(&runs))?.path();
        let hidden = p
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with('.'));
        if hidden || p.extension().is_none_or(|x| x != "json") {
            continue;
        }
        let text = crate::fsio::read_text(&p).map_err(io(&p))?;
        let rec: RunRecord =
            serde_json::from_str(&text).map_err(|e| Error::json(&p, "corrupt run record", e))?;
        let named: Option<usize> = p
            .file_stem()
            .and_then(|s| s.to_str())
            .and_then(|s| s.parse().ok());
        if named != Some(rec.run) {
            return Err(Error::BadFile {
                path: p.clone(),
                why: format!(
                    "holds run {}, but its name says another run (delete it to have the run trained again)",
                    rec.run
                ),
            });
        }
        let bad = |why: String| Error::BadFile {
            path: p.clone(),
            why,
        };
        match rec.check_digest()? {
            Some(false) => {
                return Err(bad(
                    "its content does not match the SHA-256 digest it was written with: it was changed or damaged after the run was committed (delete it and its curve to have the run trained again)"
                        .into(),
                ))
            }
            None => crate::digest::note_unsealed(&runs.join("*.json")),
            Some(true) => {}
        }
        if rec.plan != plan.hash {
            return Err(bad(format!(
                "belongs to plan {}, the directory's plan is {} (delete it to have the run trained again)",
                rec.plan, plan.hash
            )));
        }
        if rec.run < plan.runs {
            let want: BTreeMap<String, serde_json::Value> = spec
                .coords(rec.run)
                .into_iter()
                .map(|(k, v)| (k, serde_json::to_value(v).unwrap_or_default()))
                .collect();
            if rec.coords != want {
                return Err(bad(format!(
                    "its coordinates {} are not run {}'s {} (delete it to have the run trained again)",
                    serde_json::to_string(&rec.coords).unwrap_or_default(),
                    rec.run,
                    serde_json::to_string(&want).unwrap_or_default()
                )));
            }
        }
        if let Some(why) = rec.last.out_of_range() {
            return Err(bad(format!("its final metrics have {why}")));
        }
        if rec.run < plan.runs {
            // The run's steps and phase follow from its config and final metrics.
            let cfg = spec.config_at(&spec.coords(rec.run))?;
            let steps = cfg.total_steps(cfg.example_counts().1);
            // A record keeps no divergence step: a diverged model's last record is not finite.
            let t = crate::metrics::Thresholds::from(&cfg.eval);
            let phase = crate::metrics::final_phase(&rec.last, None, t);
            if rec.steps != steps || rec.last.step != steps || rec.phase != phase {
                return Err(bad(format!(
                    "it says {} steps (final step {}) and phase {}; the run's config and final metrics give {steps} steps and phase {} (delete it to have the run trained again)",
                    rec.steps,
                    rec.last.step,
                    rec.phase.name(),
                    phase.name()
                )));
            }
        }
        if rec.run >= plan.runs || shard.is_some_and(|s| !s.contains(rec.run)) {
            return Err(bad(format!(
                "run {} is not a run of this directory's plan ({} runs{})",
                rec.run,
                plan.runs,
                plan.shard
                    .as_deref()
                    .map(|s| format!(", shard {s}"))
                    .unwrap_or_default()
            )));
        }
        out.insert(rec.run, rec);
    }
    Ok(out)
}

/// Refuses a sweep directory with any problem [`verify`] finds (a merge's inputs).
pub fn refuse_damaged(dir: &Path) -> Result<()> {
    let (problems, _, _) = verify(dir);
    match problems.first() {
        None => Ok(()),
        Some(first) => Err(Error::Sweep {
            dir: dir.to_path_buf(),
            why: format!(
                "is damaged, nothing was merged: {first}{} (see `grokscope verify {}`)",
                match problems.len() {
                    1 => String::new(),
                    n => format!(" — and {} more problems", n - 1),
                },
                dir.display()
            ),
        }),
    }
}

/// `grokscope verify SWEEP`: the plan, every record and its curve, every checkpoint's digest;
/// the problems (one per file) and the files without a digest.
pub fn verify(dir: &Path) -> (Vec<String>, Vec<String>, usize) {
    let (mut problems, mut unsealed, mut checked) = (Vec::new(), Vec::new(), 1);
    if let Err(e) = read_plan(dir) {
        return (vec![e.to_string()], unsealed, checked);
    }
    match read_records(dir) {
        Ok(recs) => {
            for rec in recs.values() {
                checked += 2;
                if rec.sha256.is_none() {
                    unsealed.push(
                        dir.join(RUNS)
                            .join(format!("{:06}.json", rec.run))
                            .display()
                            .to_string(),
                    );
                }
                if let Err(e) = read_checked_curve(dir, rec) {
                    problems.push(e.to_string());
                }
            }
        }
        Err(e) => problems.push(e.to_string()),
    }
    let ck = dir.join(CHECKPOINTS);
    let mut files = Vec::new();
    if let Ok(runs) = fs::read_dir(&ck) {
        for r in runs.flatten() {
            if let Ok(steps) = fs::read_dir(r.path()) {
                files.extend(steps.flatten().map(|e| e.path()));
            }
        }
    }
    files.sort();
    for p in files {
        checked += 1;
        match crate::fsio::read_bytes(&p) {
            Ok(b) => match crate::digest::verify(&b) {
                Ok(crate::digest::Seal::Verified) => {}
                Ok(crate::digest::Seal::Absent) => unsealed.push(p.display().to_string()),
                Err(why) => problems.push(format!("{}: {why}", p.display())),
            },
            Err(e) => problems.push(format!("{}: {e}", p.display())),
        }
    }
    (problems, unsealed, checked)
}
