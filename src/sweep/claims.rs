//! Many workers on one sweep directory: who trains which unit (a fleet of runs), and who is
//! alive.
//!
//! ```text
//! DIR/claims/unit-000003.g000000   the first claim of unit 3 (JSON: worker, host, pid, time)
//! DIR/claims/unit-000003.g000001   a later one: a take-over, or a release
//! DIR/workers/<worker>.json        each worker's heartbeat, rewritten every few seconds
//! DIR/workers/<worker>.log         what each worker claimed, trained, committed, released
//! ```
//!
//! A unit's claim is its file of highest generation. To claim, a worker creates the next
//! generation's file exclusively (`fsio::create_exclusive`, hard link: atomic on NFS and
//! Lustre), so of any number of workers racing for a generation exactly one wins, and claims
//! are never deleted or overwritten. A claim is free to take when it is a release, when its
//! worker's heartbeat is older than the lease, when its worker ran on this host and its process
//! is gone, or when it names this worker (a Slurm task requeued under the same name). A worker
//! that finds a later generation on its unit has lost it and stops training it.

use crate::error::{Error, Result};
use crate::fsio::{self, create_exclusive, host_tag, now, write_atomic};
use serde::{Deserialize, Serialize};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

pub const CLAIMS: &str = "claims";
pub const WORKERS: &str = "workers";

/// A worker process: its name (unique among the sweep's workers), host and pid.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Me {
    pub name: String,
    pub host: String,
    pub pid: u32,
}

impl Me {
    /// `name`, or by default the Slurm array task (`slurm-<job>_<task>`, so a requeued task
    /// is the same worker) or the job, else `<host>-<pid>`.
    pub fn new(name: Option<&str>) -> Me {
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let host = host_tag().to_string();
        let pid = std::process::id();
        let name = match name {
            Some(n) => fsio::sanitize(n),
            None => match (
                env("SLURM_ARRAY_JOB_ID"),
                env("SLURM_ARRAY_TASK_ID"),
                env("SLURM_JOB_ID"),
            ) {
                (Some(j), Some(t), _) => fsio::sanitize(&format!("slurm-{j}_{t}")),
                (_, _, Some(j)) => fsio::sanitize(&format!("slurm-{j}")),
                _ => format!("{host}-{pid}"),
            },
        };
        Me { name, host, pid }
    }
}

/// Checks a worker name given by the user: 1 to 64 of `A-Z a-z 0-9 . _ -`, not starting
/// with a dot (it names files).
pub fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            "--worker",
            format!("{name:?}: 1 to 64 letters, digits, '.', '_' or '-', not starting with '.'"),
        ))
    }
}

/// One claim file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClaimFile {
    pub worker: String,
    pub host: String,
    pub pid: u32,
    /// Seconds since the Unix epoch when it was written.
    pub time: f64,
    /// A release: the unit is free again (its worker stopped before finishing it).
    #[serde(default)]
    pub released: bool,
}

/// What a worker is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WorkerState {
    Starting,
    Training,
    Waiting,
    Finished,
    Stopped,
}

/// A worker's heartbeat file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Heartbeat {
    pub worker: String,
    pub host: String,
    pub pid: u32,
    pub started: f64,
    /// When it was written (seconds since the Unix epoch).
    pub beat: f64,
    pub state: WorkerState,
    /// The unit in training and its runs.
    pub unit: Option<usize>,
    #[serde(default)]
    pub runs: Vec<usize>,
    pub step: u64,
    pub total_steps: u64,
    /// Model-steps this process has trained.
    pub work_done: u64,
    /// Runs this process has committed.
    pub runs_done: usize,
}

/// Who holds a unit.
#[derive(Clone, Debug, PartialEq)]
pub enum Attempt {
    /// This worker now holds the unit, with this generation.
    Won(u32),
    /// A live worker holds it; its heartbeat is `age` seconds old.
    Held { worker: String, age: f64 },
}

/// The claims and heartbeats of a sweep directory.
pub struct Claims {
    claims: PathBuf,
    workers: PathBuf,
    /// Seconds without a heartbeat after which a claim may be taken over.
    pub lease: f64,
}

fn unit_file(dir: &Path, unit: usize, gen: u32) -> PathBuf {
    dir.join(format!("unit-{unit:06}.g{gen:06}"))
}

fn pid_gone(pid: u32) -> bool {
    !crate::fsio::process_alive(pid)
}

impl Claims {
    /// Opens (creating) `claims/` and `workers/` in the sweep directory `dir`.
    pub fn open(dir: &Path, lease: f64) -> Result<Claims> {
        let c = Claims {
            claims: dir.join(CLAIMS),
            workers: dir.join(WORKERS),
            lease,
        };
        fsio::create_dir_all(&c.claims)?;
        fsio::create_dir_all(&c.workers)?;
        fsio::remove_stale_temps(&c.workers, lease)?;
        fsio::remove_stale_temps(&c.claims, lease)?;
        Ok(c)
    }

    /// Reads the claims of `dir` without creating or cleaning anything (for status).
    pub fn open_read(dir: &Path, lease: f64) -> Claims {
        Claims {
            claims: dir.join(CLAIMS),
            workers: dir.join(WORKERS),
            lease,
        }
    }

    /// The unit's current claim: its highest generation, if any.
    pub fn current(&self, unit: usize) -> Result<Option<(u32, ClaimFile)>> {
        let mut gen = 0;
        while unit_file(&self.claims, unit, gen).exists() {
            gen += 1;
        }
        if gen == 0 {
            return Ok(None);
        }
        let path = unit_file(&self.claims, unit, gen - 1);
        let text = fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
        let c: ClaimFile =
            serde_json::from_str(&text).map_err(|e| Error::json(&path, "corrupt claim", e))?;
        Ok(Some((gen - 1, c)))
    }

    /// A worker's heartbeat, if it has written one (an unreadable one counts as none).
    pub fn heartbeat(&self, worker: &str) -> Option<Heartbeat> {
        let text = fs::read_to_string(self.workers.join(format!("{worker}.json"))).ok()?;
        serde_json::from_str(&text).ok()
    }

    /// What in `claims/` and `workers/` cannot be read as it should (for status): each a line
    /// naming the file.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        for d in [&self.claims, &self.workers] {
            if d.exists() && !d.is_dir() {
                out.push(format!(
                    "{}: not a directory (the sweep keeps its {} there); move it away",
                    d.display(),
                    if d == &self.claims {
                        "claims"
                    } else {
                        "workers' heartbeats"
                    }
                ));
            }
        }
        let names = self.heartbeat_files();
        for n in names {
            if self.heartbeat(n.trim_end_matches(".json")).is_none() {
                out.push(format!(
                    "{}: not a worker heartbeat (damaged or not written by grokscope): that worker is not counted; remove the file",
                    self.workers.join(&n).display()
                ));
            }
        }
        out
    }

    /// The names of the heartbeat files in `workers/`, sorted.
    fn heartbeat_files(&self) -> Vec<String> {
        let Ok(entries) = fs::read_dir(&self.workers) else {
            return Vec::new();
        };
        let mut names: Vec<String> = entries
            .flatten()
            .map(|e| e.file_name().to_string_lossy().to_string())
            .filter(|n| n.ends_with(".json") && !n.starts_with('.'))
            .collect();
        names.sort();
        names
    }

    /// Every worker's heartbeat, by name.
    pub fn heartbeats(&self) -> Vec<Heartbeat> {
        let mut out = Vec::new();
        let names = self.heartbeat_files();
        for n in names {
            if let Some(h) = self.heartbeat(n.trim_end_matches(".json")) {
                out.push(h);
            }
        }
        out
    }

    /// Whether the claim `c` can be taken by `me`: a release, this worker's own name (a
    /// restarted incarnation), a dead process on this host, or a heartbeat older than the lease.
    /// `Err(age)`: held by a live worker whose last sign of life is `age` seconds old.
    pub fn takeable(&self, c: &ClaimFile, me: &Me) -> std::result::Result<(), f64> {
        if c.released || c.worker == me.name {
            return Ok(());
        }
        let hb = self
            .heartbeat(&c.worker)
            .filter(|h| h.pid == c.pid && h.host == c.host);
        let last = hb.as_ref().map_or(c.time, |h| h.beat.max(c.time));
        let finished = hb
            .as_ref()
            .is_some_and(|h| matches!(h.state, WorkerState::Finished | WorkerState::Stopped));
        if finished || (c.host == me.host && pid_gone(c.pid)) {
            return Ok(());
        }
        let age = now() - last;
        if age > self.lease {
            Ok(())
        } else {
            Err(age.max(0.0))
        }
    }

    fn claim_bytes(me: &Me, released: bool) -> Result<Vec<u8>> {
        let c = ClaimFile {
            worker: me.name.clone(),
            host: me.host.clone(),
            pid: me.pid,
            time: now(),
            released,
        };
        serde_json::to_vec_pretty(&c).map_err(|e| Error::Sweep {
            dir: PathBuf::new(),
            why: format!("cannot write a claim: {e}"),
        })
    }

    /// Tries to claim `unit` for `me`.
    pub fn try_claim(&self, unit: usize, me: &Me) -> Result<Attempt> {
        // A few rounds: another worker may create the generation looked at in between.
        for _ in 0..8 {
            let next = match self.current(unit)? {
                None => 0,
                Some((gen, c)) => match self.takeable(&c, me) {
                    Ok(()) => gen + 1,
                    Err(age) => {
                        return Ok(Attempt::Held {
                            worker: c.worker,
                            age,
                        })
                    }
                },
            };
            let path = unit_file(&self.claims, unit, next);
            if create_exclusive(&path, &Self::claim_bytes(me, false)?)? {
                return Ok(Attempt::Won(next));
            }
        }
        // Lost every race: someone is busy with it.
        Ok(match self.current(unit)? {
            Some((_, c)) => Attempt::Held {
                worker: c.worker,
                age: 0.0,
            },
            None => Attempt::Held {
                worker: "?".into(),
                age: 0.0,
            },
        })
    }

    /// Whether `me` still holds `unit` at generation `gen` (no later claim exists).
    pub fn holds(&self, unit: usize, gen: u32) -> bool {
        !unit_file(&self.claims, unit, gen + 1).exists()
    }

    /// Gives `unit` back (a release claim after `gen`), so another worker takes it at once.
    pub fn release(&self, unit: usize, gen: u32, me: &Me) -> Result<()> {
        if self.holds(unit, gen) {
            create_exclusive(
                &unit_file(&self.claims, unit, gen + 1),
                &Self::claim_bytes(me, true)?,
            )?;
        }
        Ok(())
    }

    /// Writes `me`'s heartbeat.
    pub fn beat(&self, hb: &Heartbeat) -> Result<()> {
        let path = self.workers.join(format!("{}.json", hb.worker));
        let text = serde_json::to_vec_pretty(hb)
            .map_err(|e| Error::json(&path, "cannot write a heartbeat", e))?;
        write_atomic(&path, &text)
    }

    /// Appends a line to `me`'s log (`time event details`).
    pub fn log(&self, me: &Me, event: &str, details: &str) -> Result<()> {
        let path = self.workers.join(format!("{}.log", me.name));
        let mut f = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        writeln!(
            f,
            "{:.3} {} {}/{} {event} {details}",
            now(),
            me.name,
            me.host,
            me.pid
        )
        .map_err(|e| Error::io(&path, e))
    }

    /// Every worker log line of the directory (for status and tests).
    pub fn log_lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        let Ok(entries) = fs::read_dir(&self.workers) else {
            return out;
        };
        let mut paths: Vec<PathBuf> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "log"))
            .collect();
        paths.sort();
        for p in paths {
            if let Ok(t) = fs::read_to_string(&p) {
                out.extend(t.lines().map(str::to_string));
            }
        }
        out
    }
}

/// A worker's heartbeat, kept fresh by a thread; the thread also watches the worker's unit and
/// raises `lost` when another worker has taken it over.
pub struct Pulse {
    pub state: Arc<Mutex<(Heartbeat, Option<u32>)>>,
    pub lost: Arc<AtomicBool>,
    stop: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Pulse {
    /// Writes the first heartbeat and starts the thread (one beat every `lease / 6` seconds,
    /// at least every 0.2 s and at most every 10 s).
    pub fn start(claims: Arc<Claims>, me: &Me) -> Result<Pulse> {
        let t = now();
        let hb = Heartbeat {
            worker: me.name.clone(),
            host: me.host.clone(),
            pid: me.pid,
            started: t,
            beat: t,
            state: WorkerState::Starting,
            unit: None,
            runs: Vec::new(),
            step: 0,
            total_steps: 0,
            work_done: 0,
            runs_done: 0,
        };
        claims.beat(&hb)?;
        let state = Arc::new(Mutex::new((hb, None)));
        let lost = Arc::new(AtomicBool::new(false));
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let every = std::time::Duration::from_secs_f64((claims.lease / 6.0).clamp(0.2, 10.0));
        let (st, lo) = (Arc::clone(&state), Arc::clone(&lost));
        let thread = std::thread::Builder::new()
            .name("grokscope-heartbeat".into())
            .spawn(move || {
                while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(every) {
                    let (mut hb, gen) = match st.lock() {
                        Ok(g) => g.clone(),
                        Err(_) => return,
                    };
                    if let (Some(unit), Some(gen)) = (hb.unit, gen) {
                        if !claims.holds(unit, gen) {
                            lo.store(true, Ordering::SeqCst);
                        }
                    }
                    hb.beat = now();
                    // A failed beat is retried at the next one; a long failure lets the lease
                    // expire, which is what it is for.
                    let _ = claims.beat(&hb);
                }
            })
            .map_err(|e| Error::Sweep {
                dir: PathBuf::new(),
                why: format!("cannot start the heartbeat thread: {e}"),
            })?;
        Ok(Pulse {
            state,
            lost,
            stop: Some(tx),
            thread: Some(thread),
        })
    }

    /// Changes the heartbeat's contents (written at the next beat).
    pub fn update(&self, f: impl FnOnce(&mut Heartbeat, &mut Option<u32>)) {
        if let Ok(mut g) = self.state.lock() {
            let (hb, gen) = &mut *g;
            f(hb, gen);
        }
    }

    /// Changes the heartbeat's contents and writes it now (state changes: claims, waiting).
    pub fn update_now(
        &self,
        claims: &Claims,
        f: impl FnOnce(&mut Heartbeat, &mut Option<u32>),
    ) -> Result<()> {
        let hb = match self.state.lock() {
            Ok(mut g) => {
                let (hb, gen) = &mut *g;
                f(hb, gen);
                hb.beat = now();
                hb.clone()
            }
            Err(_) => return Ok(()),
        };
        claims.beat(&hb)
    }

    /// Stops the thread and writes the final heartbeat with `state`.
    pub fn finish(mut self, claims: &Claims, state: WorkerState) -> Result<()> {
        self.halt();
        let hb = self.state.lock().ok().map(|g| g.0.clone());
        if let Some(mut hb) = hb {
            hb.state = state;
            hb.unit = None;
            hb.runs.clear();
            hb.beat = now();
            claims.beat(&hb)?;
        }
        Ok(())
    }

    fn halt(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Pulse {
    fn drop(&mut self) {
        self.halt();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn me(name: &str, host: &str, pid: u32) -> Me {
        Me {
            name: name.into(),
            host: host.into(),
            pid,
        }
    }

    /// A claim of a worker on another machine is taken over only after its lease; one whose
    /// heartbeat keeps beating is not; exactly one of two racing workers wins a generation.
    #[test]
    fn leases_and_generations() {
        let tmp = tempfile::tempdir().unwrap();
        let c = Claims::open(tmp.path(), 60.0).unwrap();
        let far = me("far", "elsewhere", 4242);
        assert_eq!(c.try_claim(7, &far).unwrap(), Attempt::Won(0));
        // Its heartbeat is fresh: held.
        let beat = |t: f64| Heartbeat {
            worker: "far".into(),
            host: "elsewhere".into(),
            pid: 4242,
            started: t,
            beat: t,
            state: WorkerState::Training,
            unit: Some(7),
            runs: vec![1],
            step: 0,
            total_steps: 10,
            work_done: 0,
            runs_done: 0,
        };
        c.beat(&beat(now())).unwrap();
        let local = me("local", "here", std::process::id());
        assert!(matches!(
            c.try_claim(7, &local).unwrap(),
            Attempt::Held { ref worker, .. } if worker == "far"
        ));
        // Its heartbeat (and claim) are older than the lease: taken over, generation 1.
        let old = now() - 120.0;
        c.beat(&beat(old)).unwrap();
        let path = unit_file(&c.claims, 7, 0);
        let mut claim: ClaimFile =
            serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
        claim.time = old;
        fs::write(&path, serde_json::to_vec(&claim).unwrap()).unwrap();
        assert_eq!(c.try_claim(7, &local).unwrap(), Attempt::Won(1));
        assert!(!c.holds(7, 0), "the old holder has lost it");
        assert!(c.holds(7, 1));
        // A release frees it at once; the same name (a requeued task) takes it back at once.
        c.release(7, 1, &local).unwrap();
        let other = me("other", "here", 1);
        assert_eq!(c.try_claim(7, &other).unwrap(), Attempt::Won(3));
        let again = me("other", "there", 2);
        assert_eq!(c.try_claim(7, &again).unwrap(), Attempt::Won(4));
        // Racing threads: each generation has one winner.
        let c = std::sync::Arc::new(c);
        let wins: Vec<bool> = (0..8)
            .map(|i| {
                let c = std::sync::Arc::clone(&c);
                std::thread::spawn(move || {
                    matches!(
                        c.try_claim(9, &me(&format!("w{i}"), "here", std::process::id())),
                        Ok(Attempt::Won(_))
                    )
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|h| h.join().unwrap())
            .collect();
        assert_eq!(wins.iter().filter(|w| **w).count(), 1, "{wins:?}");
    }
}
