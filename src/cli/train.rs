//! `grokscope train`: a run from a config file, a preset or the built-in default, through the
//! library's one entry point (`grokscope::job`), with a progress bar, the signal handling that
//! makes Ctrl-C resumable, and the table of final phases.

use anyhow::{Context, Result};
use clap::Args;
use grokscope::experiment::{Control, Progress, RunEnd};
use grokscope::job::{Prepared, Request, Source};
use grokscope::progress::Reporter;
use grokscope::rundir;
use std::path::PathBuf;

#[derive(Args, Default)]
pub struct TrainArgs {
    /// Config file (TOML). Without it (and without --preset): the built-in default
    /// experiment.
    #[arg(long, short, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// A shipped config by name instead of a file: `default`, one of the paper's presets
    /// (configs/paper/, e.g. regularization, minibatch, batchnorm, transformer-grokking) or
    /// one on real data (configs/real/, e.g. fashion-wd); `grokscope presets` lists them.
    #[arg(long, short, value_name = "NAME", conflicts_with = "config")]
    pub preset: Option<String>,
    /// Override a config key, e.g. --set train.weight_decay=[0,5] --set data.p=23.
    /// Repeatable; values are TOML.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub sets: Vec<String>,
    /// Output directory; must not exist. Default: runs/<name>-<UTC time>.
    #[arg(long, short, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Parent of the default output directory.
    #[arg(long, value_name = "DIR", default_value = "runs")]
    pub runs_dir: PathBuf,
    /// No progress bar.
    #[arg(long, short)]
    pub quiet: bool,
    /// Do not write the figures and report.html at the end.
    #[arg(long)]
    pub no_report: bool,
    /// Continue an interrupted run in DIR from its saved state (written on Ctrl-C/SIGTERM and
    /// every eval.autosave_minutes; from step 0 if it saved none); the results equal an
    /// uninterrupted run's to the byte. With --set train.steps=N (or train.epochs), a finished
    /// or interrupted run is extended to N steps: its first steps are the longer run's.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["config", "preset", "out", "runs_dir"])]
    pub resume: Option<PathBuf>,
}

/// The exit code of a run stopped by signal `sig` (128 + the signal, as shells report it).
pub fn signal_exit(sig: usize) -> i32 {
    128 + sig as i32
}

/// Installs the SIGINT/SIGTERM handlers: the first signal sets the returned flag (to its
/// number), so the run stops after its current step with a resumable state; a second SIGINT
/// or SIGTERM more than 2 s later exits at once.
pub fn install_stop() -> Result<std::sync::Arc<std::sync::atomic::AtomicUsize>> {
    use std::sync::atomic::{AtomicBool, AtomicUsize};
    use std::sync::Arc;
    let stop = Arc::new(AtomicUsize::new(0));
    let armed = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        let install = || -> std::io::Result<()> {
            signal_hook::flag::register_conditional_shutdown(
                sig,
                signal_exit(sig as usize),
                Arc::clone(&armed),
            )?;
            signal_hook::flag::register_usize(sig, Arc::clone(&stop), sig as usize)?;
            Ok(())
        };
        install().context("cannot install the signal handler")?;
    }
    // A second signal exits at once only if it comes more than 2 s after the first: tools
    // like `timeout` send one SIGTERM to the process and another to its group at once, and
    // those two must not skip the save.
    {
        let (stop, armed) = (Arc::clone(&stop), Arc::clone(&armed));
        std::thread::spawn(move || {
            use std::sync::atomic::Ordering;
            while stop.load(Ordering::SeqCst) == 0 {
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            std::thread::sleep(std::time::Duration::from_secs(2));
            armed.store(true, Ordering::SeqCst);
        });
    }
    Ok(stop)
}

pub fn cmd_train(a: TrainArgs) -> Result<i32> {
    use std::sync::atomic::Ordering;
    // First of all, so that no signal is lost while the config is read and the data built.
    let stop = install_stop()?;
    let stopped_early = || {
        let sig = stop.load(Ordering::SeqCst);
        (sig != 0).then(|| {
            eprintln!("interrupted before training started; nothing was written");
            signal_exit(sig)
        })
    };
    let request = match &a.resume {
        Some(dir) => Request::Resume {
            dir: dir.clone(),
            sets: a.sets.clone(),
        },
        None => Request::Fresh {
            source: match (&a.config, &a.preset) {
                (Some(path), _) => Source::File(path.clone()),
                (None, Some(name)) => Source::Preset(name.clone()),
                (None, None) => Source::Default,
            },
            sets: a.sets.clone(),
            out: a.out.clone(),
            runs_dir: a.runs_dir.clone(),
        },
    };
    // Everything that can fail is checked and built before the directory is created.
    let resolved = request.resolve()?;
    for n in &resolved.notes {
        eprintln!("note: {n}");
    }
    match resolved.resume_point() {
        Some(point) => eprintln!(
            "resuming {} at step {} of {} ({})",
            resolved.dir().display(),
            point.step,
            resolved.setup.total_steps,
            point.state.status.name()
        ),
        None => {
            for w in resolved.cfg.warnings() {
                eprintln!("warning: {w}");
            }
        }
    }
    if let Some(code) = stopped_early() {
        return Ok(code);
    }
    train_run(&a, resolved.create()?, &stop)
}

/// Trains a prepared run in its directory (fresh or resumed), with a progress bar on a
/// terminal and progress lines otherwise; Ctrl-C or SIGTERM stops it resumably.
fn train_run(a: &TrainArgs, job: Prepared, stop: &std::sync::atomic::AtomicUsize) -> Result<i32> {
    let dir = job.run.path().to_path_buf();
    let resume = job.resumed;
    let cfg = job.cfg.clone();
    let n_models = job.setup.specs.len();
    eprintln!(
        "training {} ({} model{}) → {}",
        cfg.name,
        n_models,
        if n_models == 1 { "" } else { "s" },
        dir.display()
    );
    let mut reporter = Reporter::new(a.quiet);
    let control = Control {
        stop: Some(stop),
        autosave: job.autosave_seconds(),
    };
    let end = job.train(control, &mut |p: &Progress| {
        reporter.update(p);
        Ok(())
    })?;
    reporter.finish();
    let (outcome, summary) = match end {
        RunEnd::Finished(o, s) => (o, s),
        RunEnd::Interrupted { step, signal } => {
            eprintln!(
                "interrupted after step {step}: the run is saved in {} (metrics so far in metrics.csv). Continue it with:\n  grokscope train --resume {}",
                dir.display(),
                dir.display()
            );
            return Ok(signal_exit(signal));
        }
    };
    print_table(&summary);
    let steps = outcome.setup.total_steps;
    if resume {
        say!(
            "\n{} steps × {} model{} (resumed; this session: {:.1} s).",
            steps,
            n_models,
            if n_models == 1 { "" } else { "s" },
            outcome.seconds
        );
    } else {
        say!(
            "\n{} steps × {} model{} in {:.1} s ({:.2} ms per model-step).",
            steps,
            n_models,
            if n_models == 1 { "" } else { "s" },
            outcome.seconds,
            outcome.seconds * 1e3 / (steps as f64 * n_models as f64)
        );
    }
    say!(
        "Results in {}/ ({}{})",
        dir.display(),
        rundir::RESULT_FILES.join(", "),
        if cfg.eval.checkpoint_every > 0 {
            ", checkpoints/"
        } else {
            ""
        }
    );
    if !a.no_report {
        // The run's own final report replaces one drawn while it trained.
        let path = grokscope::report::report(&dir, true).with_context(|| {
            format!(
                "the run is complete in {}, but its report could not be written (retry with `grokscope report --force {}`)",
                dir.display(),
                dir.display()
            )
        })?;
        say!("Report: {}", path.display());
    }
    Ok(0)
}

/// The final accuracies and phase of every model, with its fleet-axis values
/// (`config::FLEET_AXES`, in their order).
fn print_table(s: &rundir::Summary) {
    use grokscope::config::FLEET_AXES;
    let f = |x: Option<f64>| x.map(|v| format!("{v:.3}")).unwrap_or_else(|| "—".into());
    // Each column as wide as its longest value (6 at least: ⊥Grad's values are words).
    let widths: Vec<usize> = FLEET_AXES
        .iter()
        .map(|a| {
            s.models
                .iter()
                .map(|m| (a.value)(&m.spec).chars().count())
                .fold(6, usize::max)
        })
        .collect();
    let axes = |cell: &dyn Fn(&grokscope::config::FleetAxis) -> String| {
        FLEET_AXES
            .iter()
            .zip(&widths)
            .map(|(a, &w)| format!(" {:>w$}", cell(a)))
            .collect::<String>()
    };
    say!(
        "\n{:>3}{} | {:>6} {:>6} {:>6} {:>6} {:>7} | phase",
        "#",
        axes(&|a| a.short.to_string()),
        "train",
        "test",
        "A_mem",
        "A_inv",
        "A_clean"
    );
    for m in &s.models {
        say!(
            "{:>3}{} | {:>6} {:>6} {:>6} {:>6} {:>7} | {}",
            m.spec.index,
            axes(&|a| (a.value)(&m.spec)),
            f(Some(m.last.train_acc)),
            f(Some(m.last.test_acc)),
            f(m.last.mem_acc),
            f(m.last.inv_acc),
            f(m.last.clean_acc),
            match m.diverged_step {
                Some(step) => format!("{} (loss not finite from step {step})", m.phase),
                None => m.phase.to_string(),
            }
        );
    }
}
