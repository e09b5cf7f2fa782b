//! Slurm: a job array whose tasks are workers on one sweep directory, and a finishing job.
//!
//! `DIR/slurm/worker.sbatch` runs `grokscope sweep run --out DIR` in each array task (the
//! workers share the directory through claims and leases, so any task may die, be preempted
//! or requeued: the others, or its next incarnation, take its unit over).
//! `DIR/slurm/finish.sbatch`, submitted with `--dependency=afterany:<array job>`, runs one more
//! worker (it finishes whatever a failed task left), then writes the report and the status.

use crate::error::{Error, Result};
use crate::fsio;
use std::path::{Path, PathBuf};
use std::process::Command;

/// What the scripts ask Slurm for.
#[derive(Clone, Debug)]
pub struct SlurmOptions {
    /// Array tasks (workers).
    pub tasks: usize,
    pub partition: Option<String>,
    /// Wall-time limit per task, in Slurm's format (`HH:MM:SS`, `D-HH:MM`, minutes …).
    pub time: Option<String>,
    pub cpus_per_task: usize,
    /// Memory per task, in Slurm's format (`4G`, `500M`).
    pub mem: Option<String>,
    /// Let Slurm requeue preempted or failed tasks.
    pub requeue: bool,
    /// The workers' lease (seconds).
    pub lease: f64,
    /// The grokscope executable the jobs run (an absolute path on the shared file system).
    pub exe: PathBuf,
}

/// The scripts written.
#[derive(Clone, Debug)]
pub struct Scripts {
    pub worker: PathBuf,
    pub finish: PathBuf,
    pub logs: PathBuf,
}

fn bad(key: &str, msg: String) -> Error {
    Error::invalid(key, msg)
}

/// A value for an `#SBATCH` line: letters, digits and `:_.,+-` only.
fn check_value(key: &str, v: &str) -> Result<()> {
    let ok = !v.is_empty()
        && v.len() <= 200
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || ":_.,+-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(bad(
            key,
            format!("{v:?}: expected Slurm's syntax (letters, digits and :_.,+- only)"),
        ))
    }
}

/// Quotes `s` for bash (single quotes).
pub fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

fn path_arg(p: &Path, what: &str) -> Result<String> {
    let s = p.to_str().ok_or_else(|| {
        bad(
            what,
            format!("{}: the path must be valid UTF-8", p.display()),
        )
    })?;
    if s.contains('\n') {
        return Err(bad(what, "the path must not contain a line break".into()));
    }
    Ok(shell_quote(s))
}

impl SlurmOptions {
    pub fn check(&self) -> Result<()> {
        if self.tasks == 0 || self.tasks > 100_000 {
            return Err(bad(
                "--tasks",
                format!("{}: must be between 1 and 100000", self.tasks),
            ));
        }
        if self.cpus_per_task == 0 || self.cpus_per_task > 4096 {
            return Err(bad(
                "--cpus-per-task",
                format!("{}: must be between 1 and 4096", self.cpus_per_task),
            ));
        }
        if !(self.lease.is_finite() && self.lease >= 1.0) {
            return Err(bad("--lease", format!("{}: at least 1 second", self.lease)));
        }
        for (k, v) in [
            ("--partition", &self.partition),
            ("--time", &self.time),
            ("--mem", &self.mem),
        ] {
            if let Some(v) = v {
                check_value(k, v)?;
            }
        }
        Ok(())
    }

    fn header(&self, name: &str, log: &str) -> String {
        let mut h = format!(
            "#!/bin/bash\n#SBATCH --job-name={name}\n#SBATCH --output={log}\n#SBATCH --open-mode=append\n#SBATCH --nodes=1\n#SBATCH --ntasks=1\n#SBATCH --cpus-per-task={}\n",
            self.cpus_per_task
        );
        for (k, v) in [
            ("partition", &self.partition),
            ("time", &self.time),
            ("mem", &self.mem),
        ] {
            if let Some(v) = v {
                h.push_str(&format!("#SBATCH --{k}={v}\n"));
            }
        }
        h
    }
}

/// Whether the sweep directory's path fits an `#SBATCH --output` line (checked before
/// anything is written).
pub fn check_dir(dir: &Path) -> Result<()> {
    let s = dir.to_string_lossy();
    if s.contains(char::is_whitespace) || s.contains('%') || dir.to_str().is_none() {
        return Err(bad(
            "--out",
            format!(
                "{}: Slurm's #SBATCH --output cannot hold spaces, % signs or non-UTF-8 names; use another directory",
                dir.display()
            ),
        ));
    }
    Ok(())
}

/// Writes `DIR/slurm/worker.sbatch` and `DIR/slurm/finish.sbatch` for the sweep directory
/// `dir` (which must hold its plan already).
pub fn write_scripts(dir: &Path, name: &str, o: &SlurmOptions) -> Result<Scripts> {
    o.check()?;
    let dir = std::path::absolute(dir).map_err(|e| Error::io(dir, e))?;
    let logs = dir.join("slurm");
    fsio::create_dir_all(&logs)?;
    let exe = path_arg(&o.exe, "executable")?;
    let d = path_arg(&dir, "--out")?;
    let job = format!("gs-{}", fsio::sanitize(name));
    // Slurm expands %A (array job), %a (task), %j (job) in --output; the path itself must
    // not contain other % signs or spaces to stay one #SBATCH word.
    check_dir(&dir)?;
    let logs_s = logs.to_str().unwrap_or_default();
    let lease = o.lease;
    let mut worker = o.header(&job, &format!("{logs_s}/worker-%A_%a.out"));
    worker.push_str(&format!("#SBATCH --array=1-{}\n", o.tasks));
    worker.push_str(if o.requeue {
        "#SBATCH --requeue\n"
    } else {
        "#SBATCH --no-requeue\n"
    });
    worker.push_str(&format!(
        "# A worker on the sweep directory: claims units, trains them, gives them back on\n# SIGTERM (preemption, scancel); a requeued task continues as the same worker.\nset -u\nexec {exe} --threads \"${{SLURM_CPUS_PER_TASK:-1}}\" sweep run --out {d} --log --lease {lease}\n"
    ));
    let mut finish = o.header(&format!("{job}-finish"), &format!("{logs_s}/finish-%j.out"));
    finish.push_str(&format!(
        "# After the workers (submitted with --dependency=afterany:<array job>): finishes what a\n# failed task left, checks every file (grokscope verify), writes the tables and the report,\n# prints the status.\nset -eu\n{exe} --threads \"${{SLURM_CPUS_PER_TASK:-1}}\" sweep run --out {d} --log --lease {lease}\n{exe} verify {d}\n{exe} report {d} --force\n{exe} sweep status {d}\n"
    ));
    let s = Scripts {
        worker: logs.join("worker.sbatch"),
        finish: logs.join("finish.sbatch"),
        logs,
    };
    fsio::write_atomic(&s.worker, worker.as_bytes())?;
    fsio::write_atomic(&s.finish, finish.as_bytes())?;
    Ok(s)
}

/// The commands that submit the scripts (printed for the user).
pub fn submit_commands(s: &Scripts) -> String {
    let w = shell_quote(&s.worker.to_string_lossy());
    let f = shell_quote(&s.finish.to_string_lossy());
    format!("jid=$(sbatch --parsable {w}) && sbatch --dependency=afterany:${{jid%%;*}} {f}")
}

fn sbatch(args: &[&str]) -> Result<String> {
    let out = Command::new("sbatch")
        .args(args)
        .output()
        .map_err(|e| Error::Sweep {
            dir: PathBuf::new(),
            why: format!("cannot run sbatch (is Slurm installed and on PATH?): {e}"),
        })?;
    if !out.status.success() {
        return Err(Error::Sweep {
            dir: PathBuf::new(),
            why: format!(
                "sbatch {} failed ({}): {}",
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        });
    }
    let text = String::from_utf8_lossy(&out.stdout);
    // --parsable prints `jobid[;cluster]`.
    let id = text
        .trim()
        .split(';')
        .next()
        .unwrap_or_default()
        .to_string();
    if id.is_empty() || !id.chars().all(|c| c.is_ascii_digit()) {
        return Err(Error::Sweep {
            dir: PathBuf::new(),
            why: format!("sbatch printed no job id: {text:?}"),
        });
    }
    Ok(id)
}

/// Submits the worker array, then the finishing job after it. Returns both job ids.
pub fn submit(s: &Scripts) -> Result<(String, String)> {
    let w = s.worker.to_string_lossy().to_string();
    let f = s.finish.to_string_lossy().to_string();
    let array = sbatch(&["--parsable", &w])?;
    let dep = format!("--dependency=afterany:{array}");
    let finish = sbatch(&["--parsable", &dep, &f])?;
    Ok((array, finish))
}
