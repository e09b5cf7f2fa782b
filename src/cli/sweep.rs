//! `grokscope sweep`: plan, estimate, run (locally, as many workers, or on Slurm), status,
//! merge and show a phase diagram — thin shells over `grokscope::sweep`.

use super::train::{install_stop, signal_exit};
use anyhow::{bail, Context, Result};
use clap::Subcommand;
use grokscope::progress::hms;
use grokscope::report::html::counted;
use grokscope::sweep::Shard;
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum SweepCmd {
    /// Print how many runs and fleets a sweep has and estimate its time on this machine
    /// (from a few measured steps of each fleet shape).
    Plan {
        /// Sweep file (TOML: name, max_fleet, [base], [axes]; see docs/SWEEPS.md), or a shipped
        /// sweep by name (`grokscope presets`).
        file: PathBuf,
        /// Only this shard, i/n.
        #[arg(long)]
        shard: Option<Shard>,
    },
    /// Run a sweep into a directory as one of any number of workers: the first creates the
    /// directory, others (on this or other machines sharing the file system) join it and take
    /// the units nobody holds; an existing directory of the same plan is resumed. See
    /// docs/SWEEPS.md (claims, leases).
    Run {
        /// Sweep file (TOML), or a shipped sweep by name (`grokscope presets`: phase-wd-quick,
        /// …). Without it, join the plan the directory holds.
        file: Option<PathBuf>,
        /// The sweep directory.
        #[arg(long, short)]
        out: PathBuf,
        /// Run only the runs with id % n == i − 1 (i/n), into a directory of its own.
        #[arg(long)]
        shard: Option<Shard>,
        /// This worker's name (default: the Slurm array task `slurm-<job>_<task>`, else
        /// `<host>-<pid>`); a worker restarted under the same name takes its units back at once.
        #[arg(long)]
        worker: Option<String>,
        /// Seconds without a heartbeat after which a unit's claim is taken over by another
        /// worker (give every worker of a directory the same lease; more than the clock skew
        /// between machines).
        #[arg(long, default_value_t = 120.0, value_parser = parse_lease)]
        lease: f64,
        /// Leave when nothing is left to claim instead of waiting for the other workers (and
        /// taking over the units of any that dies); the tables are then written by the last.
        #[arg(long)]
        no_wait: bool,
        /// No progress bar.
        #[arg(long, short)]
        quiet: bool,
        /// Progress as log lines (every 30 s and every 10 %) instead of a bar.
        #[arg(long)]
        log: bool,
    },
    /// Where a sweep directory stands: finished, running (by worker, with heartbeat age), left,
    /// diverged, and an estimate of the time to go.
    Status {
        dir: PathBuf,
        /// The lease the workers use (seconds): older heartbeats count as dead workers.
        #[arg(long, default_value_t = 120.0, value_parser = parse_lease)]
        lease: f64,
    },
    /// Write a Slurm job array of workers on one sweep directory and a finishing job (tables,
    /// report); print how to submit them, or submit them with --submit.
    Slurm {
        /// Sweep file (TOML).
        file: PathBuf,
        /// The sweep directory (on a file system every node sees); created with the plan.
        #[arg(long, short)]
        out: PathBuf,
        /// Array tasks: workers that train at the same time.
        #[arg(long)]
        tasks: usize,
        /// Slurm partition.
        #[arg(long)]
        partition: Option<String>,
        /// Wall-time limit of each task (Slurm syntax: 2:00:00, 1-00:00, minutes).
        #[arg(long)]
        time: Option<String>,
        /// Cores per task (the worker trains on this many threads).
        #[arg(long, default_value_t = 1)]
        cpus_per_task: usize,
        /// Memory per task (Slurm syntax: 4G, 500M).
        #[arg(long)]
        mem: Option<String>,
        /// Let Slurm requeue preempted or failed tasks (they continue as the same worker).
        #[arg(long)]
        requeue: bool,
        /// The workers' lease in seconds.
        #[arg(long, default_value_t = 120.0, value_parser = parse_lease)]
        lease: f64,
        /// Submit the array and the finishing job (needs sbatch) and print their job ids.
        #[arg(long)]
        submit: bool,
    },
    /// Join the directories of shards of one sweep into a new directory.
    Merge {
        /// The new, merged sweep directory (must not exist).
        #[arg(long, short)]
        out: PathBuf,
        /// Shard directories.
        #[arg(required = true)]
        dirs: Vec<PathBuf>,
    },
    /// Print the phase grids of a sweep directory.
    Show { dir: PathBuf },
}

pub fn read_plan_file(file: &std::path::Path) -> Result<grokscope::sweep::Plan> {
    // A shipped sweep by name (`grokscope presets`), unless a file (or a link) has that name;
    // a directory of that name (a sweep directory named after its preset) does not hide it.
    let entry = std::fs::symlink_metadata(file);
    if entry.as_ref().map_or(true, |m| m.is_dir()) {
        let name = file.to_string_lossy();
        if let Ok(text) = grokscope::config::preset(&name) {
            if !grokscope::config::presets::is_sweep(text) {
                bail!("preset {name:?} is a training config, not a sweep: grokscope train --preset {name}");
            }
            return grokscope::sweep::Plan::from_text(text)
                .with_context(|| format!("in preset {name}"));
        }
    }
    let text = grokscope::fsio::read_text(file)
        .with_context(|| format!("cannot read sweep file {}", file.display()))?;
    grokscope::sweep::Plan::from_text(&text).with_context(|| format!("in {}", file.display()))
}

pub fn parse_lease(s: &str) -> std::result::Result<f64, String> {
    match s.parse::<f64>() {
        Ok(x) if x.is_finite() && (1.0..=1e7).contains(&x) => Ok(x),
        _ => Err(format!("{s:?}: a number of seconds from 1 to 10000000")),
    }
}

pub fn print_status(dir: &std::path::Path, st: &grokscope::sweep::status::Status) {
    let now = grokscope::fsio::now();
    say!(
        "{} ({}): {} of {} runs done ({} diverged), {} running, {} left{}",
        dir.display(),
        st.plan.name,
        st.done,
        st.total,
        st.diverged,
        st.running.iter().map(|r| r.runs.len()).sum::<usize>(),
        st.left,
        match st.eta {
            Some(_) if st.done == st.total => "; complete".to_string(),
            Some(e) => format!("; eta {}", hms(e)),
            None => "; eta unknown (no live worker)".into(),
        }
    );
    if !st.phases.is_empty() {
        let p: Vec<String> = st
            .phases
            .iter()
            .map(|(k, v)| format!("{} {v}", k.name()))
            .collect();
        say!("phases: {}", p.join(", "));
    }
    for r in &st.running {
        say!(
            "  unit {:>4}: {} run(s), step {}/{}, worker {} (heartbeat {:.0} s ago)",
            r.unit,
            r.runs.len(),
            r.step,
            r.total_steps,
            r.worker,
            r.age
        );
    }
    for (u, w) in &st.stale {
        say!("  unit {u:>4}: claimed by {w}, whose heartbeat is older than the lease (the next worker takes it over)");
    }
    for h in &st.workers {
        say!(
            "  worker {}: {:?}, {} runs committed, last heartbeat {:.0} s ago ({} pid {})",
            h.worker,
            h.state,
            h.runs_done,
            (now - h.beat).max(0.0),
            h.host,
            h.pid
        );
    }
}

pub fn cmd_sweep(c: SweepCmd) -> Result<i32> {
    use grokscope::sweep;
    match c {
        SweepCmd::Plan { file, shard } => {
            let plan = read_plan_file(&file)?;
            sweep::check_units(&plan, shard, plan.spec.max_fleet)
                .with_context(|| format!("in {}", file.display()))?;
            let fleets = plan.fleets(|id| shard.is_none_or(|s| s.contains(id)));
            let runs: usize = fleets.iter().map(|f| f.runs.len()).sum();
            say!(
                "{}: {}{} in {} (at most {} each); axes: {}",
                plan.spec.name,
                counted(runs, "run"),
                shard
                    .map(|s| format!(" (shard {s} of {})", plan.points.len()))
                    .unwrap_or_default(),
                counted(fleets.len(), "fleet"),
                counted(plan.spec.max_fleet, "model"),
                plan.spec
                    .axes
                    .iter()
                    .map(|(k, v)| format!("{k} ({})", v.len()))
                    .collect::<Vec<_>>()
                    .join(" × ")
            );
            eprintln!("measuring a few steps of each fleet shape …");
            let est = sweep::estimate(&fleets)?;
            let total: f64 = est.iter().sum();
            say!(
                "estimated time on this machine ({}): {} (plan hash {})",
                counted(rayon::current_num_threads(), "thread"),
                hms(total),
                plan.spec.plan_hash()
            );
            Ok(0)
        }
        SweepCmd::Run {
            file,
            out,
            shard,
            worker,
            lease,
            no_wait,
            quiet,
            log,
        } => {
            let (plan, shard) = match file {
                Some(f) => (read_plan_file(&f)?, shard),
                None => {
                    if !sweep::store::is_sweep(&out) {
                        bail!(
                            "{}: not a sweep directory (no plan.json); give a sweep file to create it: grokscope sweep run FILE --out {}",
                            out.display(),
                            out.display()
                        );
                    }
                    let (plan, dir_shard) = sweep::Plan::from_dir(&out)?;
                    if shard.is_some() && shard != dir_shard {
                        bail!(
                            "--shard: the directory holds shard {:?} of its plan",
                            dir_shard.map(|s| s.to_string())
                        );
                    }
                    (plan, dir_shard)
                }
            };
            let opts = sweep::WorkerOptions {
                name: worker,
                lease,
                wait: !no_wait,
                ..Default::default()
            };
            let stop = install_stop()?;
            let mut rep = grokscope::progress::SweepReporter::new(quiet, log);
            let t0 = std::time::Instant::now();
            let outcome = sweep::run(&plan, &out, shard, &opts, &stop, &mut |p| {
                let note = match (p.unit, p.elsewhere) {
                    (Some(u), 0) => format!("training unit {u}"),
                    (Some(u), n) => format!("training unit {u}; {n} unit(s) with other workers"),
                    (None, 0) => "finishing".to_string(),
                    (None, n) => format!("waiting for {n} unit(s) with other workers"),
                };
                rep.update(
                    (p.runs_done, p.runs_total),
                    (p.work_done, p.work_total),
                    &note,
                );
            });
            rep.finish();
            let outcome = outcome?;
            let trained = outcome.trained.len();
            match outcome.end {
                sweep::SweepEnd::Complete(records) => {
                    print_grids(&out)?;
                    say!(
                        "{} runs ({trained} trained by this worker, {}) in {} → {}/ ({})",
                        records.len(),
                        outcome.worker,
                        hms(t0.elapsed().as_secs_f64()),
                        out.display(),
                        sweep::store::TABLE_FILES
                            .iter()
                            .filter(|f| !f.starts_with("phase_grid") || out.join(f).exists())
                            .copied()
                            .collect::<Vec<_>>()
                            .join(", ")
                    );
                    Ok(0)
                }
                sweep::SweepEnd::Left { units } => {
                    say!(
                        "worker {} trained {trained} runs; {units} unit(s) are with other workers, and the last to finish writes the tables (see `grokscope sweep status {}`)",
                        outcome.worker,
                        out.display()
                    );
                    Ok(0)
                }
                sweep::SweepEnd::Interrupted { signal } => {
                    eprintln!(
                        "stopped by signal {signal} after {trained} runs; the unit in training was given back. Continue with: grokscope sweep run --out {}",
                        out.display()
                    );
                    Ok(signal_exit(signal))
                }
            }
        }
        SweepCmd::Status { dir, lease } => {
            let st = sweep::status::status(&dir, lease)?;
            print_status(&dir, &st);
            for p in &st.problems {
                eprintln!("problem: {p}");
            }
            Ok(if st.problems.is_empty() { 0 } else { 1 })
        }
        SweepCmd::Slurm {
            file,
            out,
            tasks,
            partition,
            time,
            cpus_per_task,
            mem,
            requeue,
            lease,
            submit,
        } => {
            let plan = read_plan_file(&file)?;
            let o = sweep::slurm::SlurmOptions {
                tasks,
                partition,
                time,
                cpus_per_task,
                mem,
                requeue,
                lease,
                exe: std::env::current_exe().context("cannot find the grokscope executable")?,
            };
            o.check()?;
            // Each task must fit its --mem (Slurm reads a plain number as megabytes).
            if let Some(m) = &o.mem {
                let m = m.trim();
                let with_unit = if m.ends_with(|c: char| c.is_ascii_digit()) {
                    format!("{m}M")
                } else {
                    m.to_string()
                };
                if grokscope::model::memory::parse_bytes(&with_unit).is_none() {
                    bail!("--mem {m:?}: give a size such as 4G, 500M or 4000 (megabytes)");
                }
                // SAFETY of set_var: no other thread reads the environment at this point.
                std::env::set_var(grokscope::model::memory::LIMIT_VAR, &with_unit);
                sweep::check_units(&plan, None, plan.spec.max_fleet)
                    .with_context(|| format!("in {} (each task has --mem {m})", file.display()))?;
            }
            sweep::slurm::check_dir(&std::path::absolute(&out)?)?;
            // Create (or join) the directory now, so the plan is fixed before any task runs.
            sweep::store::Store::open(&out, &plan.plan_file(None), lease)?;
            let s = sweep::slurm::write_scripts(&out, &plan.spec.name, &o)?;
            say!(
                "wrote {} (an array of {tasks} workers) and {} (tables and report after them); logs go to {}/",
                s.worker.display(),
                s.finish.display(),
                s.logs.display()
            );
            if submit {
                let (array, finish) = sweep::slurm::submit(&s)?;
                say!("submitted: workers job {array} (array 1-{tasks}), finishing job {finish} (after the workers)");
                say!("watch it: grokscope sweep status {}", out.display());
            } else {
                say!("submit with:\n  {}", sweep::slurm::submit_commands(&s));
            }
            Ok(0)
        }
        SweepCmd::Merge { out, dirs } => {
            let refs: Vec<&std::path::Path> = dirs.iter().map(|d| d.as_path()).collect();
            let all = sweep::merge(&out, &refs)?;
            let plan = sweep::store::read_plan(&out)?;
            if all.len() < plan.runs {
                eprintln!(
                    "warning: {} of {} runs are missing",
                    plan.runs - all.len(),
                    plan.runs
                );
            }
            print_grids(&out)?;
            say!("merged {} runs → {}/", all.len(), out.display());
            Ok(0)
        }
        SweepCmd::Show { dir } => {
            let plan = sweep::store::read_plan(&dir)?;
            let records = sweep::store::read_records(&dir)?;
            if sweep::store::read_grid_text(&dir)?.is_none() {
                say!(
                    "{}: {} of {} runs finished; no phase grids yet (they are written when `sweep run` ends, and only for sweeps over both data.train_fraction and data.corruption)",
                    plan.name,
                    records.len(),
                    plan.runs
                );
            }
            print_grids(&dir).map(|_| 0)
        }
    }
}

pub fn print_grids(dir: &std::path::Path) -> Result<()> {
    if let Some(text) = grokscope::sweep::store::read_grid_text(dir)? {
        crate::out(&text)?;
    }
    Ok(())
}
