//! The `grokscope` command line: a thin shell over the library.

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use grokscope::analysis::prune::Order;
use grokscope::bench;
use grokscope::config::{Checked, Config, Setup, DEFAULT_CONFIG};
use grokscope::experiment::{train_into, Control, Progress, RunEnd};
use grokscope::kernels::init_threads;
use grokscope::progress::{busy, hms, Reporter};
use grokscope::rundir::{self, RunDir};
use grokscope::sweep::Shard;
use std::path::PathBuf;

/// mimalloc: the Transformer's autograd allocates and frees many large tensors per step;
/// with glibc's allocator they go to mmap/munmap and page faults cost more than the maths
/// (measured: 366 → 227 ms per step at d = 128, p = 97; see docs/NUMERICS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const ABOUT: &str = "Memorization and generalization on corrupted modular arithmetic \
(Doshi et al., 'To grok or not to grok', ICLR 2024).";

const LONG_ABOUT: &str = "Memorization and generalization on corrupted modular arithmetic \
(Doshi et al., 'To grok or not to grok', ICLR 2024).\n\n\
With no command, grokscope trains the built-in default experiment: the paper's \
regularization study (p = 97, N = 500, α = 0.5, ξ = 0.35, weight decay 0, 5, 15, 500 epochs) \
as one fleet, prints a table of the final accuracies and phases, and writes the run with its figures and report.html under runs/.\n\n\
The science (data, model, metrics, the phase table with its thresholds eval.threshold and \
eval.full_threshold): docs/SCIENCE.md, after the paper (arXiv 2310.13061); every config key: \
docs/CONFIG.md; every output file: docs/OUTPUTS.md.";

#[derive(Parser)]
#[command(name = "grokscope", version, about = ABOUT, long_about = LONG_ABOUT)]
struct Cli {
    /// Worker threads, 1 to 1024 (default: one per core). Results do not depend on it.
    #[arg(long, global = true, value_name = "N", value_parser = parse_threads)]
    threads: Option<usize>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Train a fleet of models from a TOML config and write a run directory.
    #[command(
        after_help = "Config keys and their defaults: docs/CONFIG.md. What the metrics and phases mean (thresholds eval.threshold and eval.full_threshold, the corruption draws of data.corruption_mode): docs/SCIENCE.md. The files of a run directory: docs/OUTPUTS.md."
    )]
    Train(TrainArgs),
    /// Time one training step (M = 1 and M = 8, normal and subnormal weights) against a
    /// 2048³ matrix product on all threads; with --transformer also the Transformer's step.
    Bench(BenchArgs),
    /// Analyse a run: per-neuron IPR and Fourier spectra, BatchNorm scales against IPR,
    /// pruning sweeps in all three orders; written to RUN_DIR/analysis/.
    Analyze(AnalyzeArgs),
    /// Prune a run's neurons in IPR order and report every accuracy after each removal;
    /// written to RUN_DIR/analysis/prune-<order>.csv.
    Prune(PruneArgs),
    /// Build Gromov's analytic network for modular addition (docs/SCIENCE.md §7) and evaluate it on the
    /// whole table.
    Analytic(AnalyticArgs),
    /// Phase diagrams: grids of runs over (α, ξ, regularization, seed) — plan, run, merge.
    #[command(subcommand)]
    Sweep(SweepCmd),
    /// Write figures (PNG, SVG) and a self-contained report.html for a run directory, a sweep
    /// directory or a run's analysis/ (into the run's or the sweep's report/).
    Report {
        /// A run directory, a sweep directory, or a run's analysis/ directory.
        dir: PathBuf,
        /// Replace an existing DIR/report/.
        #[arg(long)]
        force: bool,
        /// Step axis of the curves: auto (log when the steps span 1.5 decades or more), log or
        /// linear; default: the run's report.step_axis (auto).
        #[arg(long, value_name = "AXIS")]
        step_axis: Option<grokscope::config::StepAxis>,
    },
    /// Overlay several runs (or models of runs): a figure of their test accuracy and A_mem and
    /// training loss, a table of final metrics and dynamics (compare.csv), and one
    /// self-contained compare.html. Name models as DIR:0,2 (default: every model of DIR).
    Compare {
        /// Run directories, each optionally followed by :MODELS (e.g. runs/wd:0,2).
        #[arg(required = true, value_name = "RUN_DIR")]
        runs: Vec<PathBuf>,
        /// Where to write the comparison (a new directory, or an earlier comparison with --force).
        #[arg(long, default_value = "compare")]
        out: PathBuf,
        /// Replace an earlier comparison in --out.
        #[arg(long)]
        force: bool,
        /// Step axis: auto (log when the steps span 1.5 decades or more), log or linear;
        /// default: the runs' report.step_axis when they all agree, else auto.
        #[arg(long, value_name = "AXIS")]
        step_axis: Option<grokscope::config::StepAxis>,
    },
    /// Print the built-in default config (a starting point for your own).
    DefaultConfig,
}

#[derive(Subcommand)]
enum SweepCmd {
    /// Print how many runs and fleets a sweep has and estimate its time on this machine
    /// (from a few measured steps of each fleet shape).
    Plan {
        /// Sweep file (TOML: name, max_fleet, [base], [axes]; see docs/SWEEPS.md).
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
        /// Sweep file (TOML). Without it, join the plan the directory holds.
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

#[derive(Args)]
struct AnalyzeArgs {
    /// A run directory written by `grokscope train`.
    run_dir: PathBuf,
    /// Only this model of the fleet (0-based index, as in summary.json).
    #[arg(long)]
    model: Option<usize>,
    /// Replace analysis files that already exist.
    #[arg(long)]
    force: bool,
}

#[derive(Args)]
struct PruneArgs {
    /// A run directory written by `grokscope train`.
    run_dir: PathBuf,
    /// Which neurons go first: ascending IPR (memorizing first), descending, or random.
    #[arg(long, value_enum, default_value = "ascending")]
    order: Order,
    /// Only this model of the fleet (0-based index).
    #[arg(long)]
    model: Option<usize>,
    /// Seed of the random order.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Replace the output file if it exists.
    #[arg(long)]
    force: bool,
}

#[derive(Args)]
struct AnalyticArgs {
    /// Modulus (≥ 3).
    #[arg(long, default_value_t = 97)]
    p: usize,
    /// Number of neurons (≥ 8 per frequency, i.e. ≥ 8·(p−1)/2, for exact cancellation).
    #[arg(long, short, default_value_t = 500)]
    n: usize,
}

#[derive(Args, Default)]
struct TrainArgs {
    /// Config file (TOML). Without it: the built-in default experiment.
    #[arg(long, short, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Override a config key, e.g. --set train.weight_decay=[0,5] --set data.p=23.
    /// Repeatable; values are TOML.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    sets: Vec<String>,
    /// Output directory; must not exist. Default: runs/<name>-<UTC time>.
    #[arg(long, short, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Parent of the default output directory.
    #[arg(long, value_name = "DIR", default_value = "runs")]
    runs_dir: PathBuf,
    /// No progress bar.
    #[arg(long, short)]
    quiet: bool,
    /// Do not write the figures and report.html at the end.
    #[arg(long)]
    no_report: bool,
    /// Continue an interrupted run in DIR from its saved state (written on Ctrl-C/SIGTERM and
    /// every eval.autosave_minutes); the results equal an uninterrupted run's to the byte.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["config", "sets", "out", "runs_dir"])]
    resume: Option<PathBuf>,
}

#[derive(Args)]
struct BenchArgs {
    /// Timed steps per case.
    #[arg(long, default_value_t = 10)]
    steps: usize,
    /// Also time the Transformer of docs/SCIENCE.md §8 (d = 128, 4 heads, p = 97, α = 0.5, M = 1 and 4).
    #[arg(long)]
    transformer: bool,
}

fn main() {
    match run() {
        Ok(0) => {}
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::exit(2);
        }
    }
}

/// The exit code of a run stopped by signal `sig` (128 + the signal, as shells report it).
fn signal_exit(sig: usize) -> i32 {
    128 + sig as i32
}

fn run() -> Result<i32> {
    let cli = Cli::parse();
    init_threads(cli.threads.unwrap_or(0));
    match cli.command {
        None => cmd_train(TrainArgs {
            runs_dir: PathBuf::from("runs"),
            ..Default::default()
        }),
        Some(Command::Train(a)) => cmd_train(a),
        Some(Command::Bench(a)) => cmd_bench(a).map(|_| 0),
        Some(Command::Analyze(a)) => cmd_analyze(a).map(|_| 0),
        Some(Command::Prune(a)) => cmd_prune(a).map(|_| 0),
        Some(Command::Analytic(a)) => cmd_analytic(a).map(|_| 0),
        Some(Command::Sweep(c)) => cmd_sweep(c),
        Some(Command::Report {
            dir,
            force,
            step_axis,
        }) => {
            let t0 = std::time::Instant::now();
            let opts = grokscope::report::Options { step_axis };
            let path = busy("drawing the report", || {
                grokscope::report::report_with(&dir, force, &opts)
            })?;
            println!(
                "report: {} ({:.1} s)",
                path.display(),
                t0.elapsed().as_secs_f64()
            );
            Ok(0)
        }
        Some(Command::Compare {
            runs,
            out,
            force,
            step_axis,
        }) => {
            let t0 = std::time::Instant::now();
            let opts = grokscope::report::Options { step_axis };
            let done = busy("comparing the runs", || {
                grokscope::report::compare(&runs, &out, force, &opts)
            })?;
            if done.drawn < done.curves {
                eprintln!(
                    "note: {} curves; the figures and charts draw the first {} (compare.csv and the table have all; name models as DIR:0,2 to choose)",
                    done.curves, done.drawn
                );
            }
            println!(
                "comparison: {} ({:.1} s; also compare.png, compare.svg, compare.csv)",
                done.page.display(),
                t0.elapsed().as_secs_f64()
            );
            Ok(0)
        }
        Some(Command::DefaultConfig) => {
            print!("{DEFAULT_CONFIG}");
            Ok(0)
        }
    }
}

/// Installs the SIGINT/SIGTERM handlers: the first signal sets the returned flag (to its
/// number), so the run stops after its current step with a resumable state; a second SIGINT
/// or SIGTERM more than 2 s later exits at once.
fn install_stop() -> Result<std::sync::Arc<std::sync::atomic::AtomicUsize>> {
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

fn cmd_train(a: TrainArgs) -> Result<i32> {
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
    if let Some(dir) = &a.resume {
        let run = RunDir::open(dir)?;
        let cfg = run.read_config()?;
        let setup = cfg.setup()?;
        // Check everything before anything changes.
        let point = run.resume_point(&cfg, setup.specs.len(), setup.total_steps)?;
        eprintln!(
            "resuming {} at step {} of {} ({})",
            dir.display(),
            point.step,
            setup.total_steps,
            point.state.status.name()
        );
        if let Some(code) = stopped_early() {
            return Ok(code);
        }
        return train_run(&a, &cfg, run, setup, true, &stop);
    }
    let (text, source) = match &a.config {
        Some(path) => (
            rundir::read_text(path)
                .with_context(|| format!("cannot read config {}", path.display()))?,
            path.display().to_string(),
        ),
        None => (DEFAULT_CONFIG.to_string(), "built-in default".to_string()),
    };
    // An error names where the bad value came from: a --set as typed, or the config file.
    let whose = |e: grokscope::Error| -> anyhow::Error {
        use grokscope::config::{blame, Blame};
        let context = match blame(&e, &a.sets) {
            Blame::Itself => return e.into(),
            Blame::Set(s) => format!("--set {s}"),
            Blame::Source => format!("in {source}"),
        };
        anyhow::Error::new(e).context(context)
    };
    let (cfg, notes) = Config::from_toml_noted(&text, &a.sets).map_err(whose)?;
    for n in &notes {
        eprintln!("note: {n}");
    }
    let cfg = cfg.check().map_err(whose)?;
    for w in cfg.warnings() {
        eprintln!("warning: {w}");
    }
    let dir = match &a.out {
        Some(d) => d.clone(),
        None => RunDir::default_path(&a.runs_dir, &cfg.name),
    };
    // Build everything that can fail before creating the directory.
    let setup = cfg.setup().map_err(whose)?;
    if let Some(code) = stopped_early() {
        return Ok(code);
    }
    let run = RunDir::create(&dir)?;
    run.write_config(&cfg)?;
    train_run(&a, &cfg, run, setup, false, &stop)
}

/// Trains a built fleet in the run directory `run` (fresh or resumed), with a progress bar on
/// a terminal and progress lines otherwise; Ctrl-C or SIGTERM stops it resumably.
fn train_run(
    a: &TrainArgs,
    cfg: &Checked,
    run: RunDir,
    setup: Setup,
    resume: bool,
    stop: &std::sync::atomic::AtomicUsize,
) -> Result<i32> {
    let dir = run.path().to_path_buf();
    let n_models = setup.specs.len();
    eprintln!(
        "training {} ({} model{}) → {}",
        cfg.name,
        n_models,
        if n_models == 1 { "" } else { "s" },
        dir.display()
    );
    let mut reporter = Reporter::new(a.quiet);
    let minutes = cfg.eval.autosave_minutes;
    let control = Control {
        stop: Some(stop),
        autosave: (minutes > 0.0).then_some(minutes * 60.0),
    };
    let end = train_into(cfg, setup, &run, resume, control, &mut |p: &Progress| {
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
        println!(
            "\n{} steps × {} model{} (resumed; this session: {:.1} s).",
            steps,
            n_models,
            if n_models == 1 { "" } else { "s" },
            outcome.seconds
        );
    } else {
        println!(
            "\n{} steps × {} model{} in {:.1} s ({:.2} ms per model-step).",
            steps,
            n_models,
            if n_models == 1 { "" } else { "s" },
            outcome.seconds,
            outcome.seconds * 1e3 / (steps as f64 * n_models as f64)
        );
    }
    println!(
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
        println!("Report: {}", path.display());
    }
    Ok(0)
}

fn print_table(s: &rundir::Summary) {
    let f = |x: Option<f64>| x.map(|v| format!("{v:.3}")).unwrap_or_else(|| "—".into());
    println!(
        "\n{:>3} {:>5} {:>6} {:>5} {:>7} {:>5} {:>5} | {:>6} {:>6} {:>6} {:>6} {:>7} | phase",
        "#", "ξ", "wd", "drop", "lr", "init", "corr", "train", "test", "A_mem", "A_inv", "A_clean"
    );
    for m in &s.models {
        println!(
            "{:>3} {:>5} {:>6} {:>5} {:>7} {:>5} {:>5} | {:>6} {:>6} {:>6} {:>6} {:>7} | {}",
            m.spec.index,
            m.spec.corruption,
            m.spec.weight_decay,
            m.spec.dropout,
            m.spec.lr,
            m.spec.init_seed,
            m.spec.corruption_seed,
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

fn cmd_bench(a: BenchArgs) -> Result<()> {
    if a.steps == 0 {
        bail!("--steps must be at least 1");
    }
    let threads = rayon::current_num_threads();
    println!(
        "grokscope bench: p = 97, N = 500, α = 0.5 (n = 4704), full batch, {threads} thread{}",
        if threads == 1 { "" } else { "s" }
    );
    let peak = bench::peak_gflops(2048, threads, 5);
    println!(
        "{:<42} {:>10} {:>9.1} GFLOP/s",
        "matmul 2048×2048×2048 (peak)", "", peak
    );
    let mut normal = None;
    for (m, sub) in [(1, false), (8, false), (1, true), (8, true)] {
        let t = bench::time_step(m, a.steps, sub)?;
        println!(
            "{:<42} {:>7.2} ms {:>9.1} GFLOP/s  {:>5.1} % of peak  (per model-step)",
            t.label,
            t.ms_per_model_step,
            t.gflops,
            100.0 * t.gflops / peak
        );
        if !sub && m == 1 {
            normal = Some(t.ms_per_model_step);
        } else if sub && m == 1 {
            if let Some(n) = normal {
                println!(
                    "{:<42} {:>7.2}×",
                    "subnormal / normal step time (M = 1)",
                    t.ms_per_model_step / n
                );
            }
        }
    }
    if a.transformer {
        for models in [1, 4] {
            let ms = bench::time_transformer_step(a.steps.min(5), models)?;
            println!(
                "{:<42} {:>7.1} ms  (d = 128, 4 heads, 1 layer, n = 4704, full batch; per model-step)",
                format!("transformer train step, M = {models}"),
                ms
            );
        }
    }
    Ok(())
}

use grokscope::progress::fmt_opt;

fn cmd_analyze(a: AnalyzeArgs) -> Result<()> {
    let mut run = rundir::load_run(&a.run_dir)?;
    let m = run.setup.specs.len();
    eprintln!(
        "analysing {} ({m} model{})",
        a.run_dir.display(),
        if m == 1 { "" } else { "s" }
    );
    let summaries = busy("per-neuron analysis and three pruning sweeps", || {
        grokscope::analyze::analyze_run(&mut run, a.model, a.force)
    })?;
    for m in &summaries {
        let freqs: Vec<String> = m
            .dominant_frequencies
            .iter()
            .take(8)
            .map(|(f, c)| format!("{f}:{c}"))
            .collect();
        println!(
            "model {}: {} (test {:.3}, A_mem {}, A_inv {}) | mean IPR {} | IPR ≥ 0.5: {} | dead {} | dominant freq:neurons {}{}",
            m.model,
            m.phase,
            m.test_acc,
            fmt_opt(m.mem_acc),
            fmt_opt(m.inv_acc),
            fmt_opt(m.mean_ipr),
            fmt_opt(m.frac_ipr_ge_half),
            m.dead_neurons,
            freqs.join(" "),
            if m.dominant_frequencies.len() > 8 { " …" } else { "" }
        );
        if let Some(r) = m.bn_scale_ipr_spearman {
            println!(
                "  BatchNorm: Spearman(|γ|/σ, IPR) = {r:.3}, Spearman(|γ|, IPR) = {}",
                fmt_opt(m.bn_gamma_ipr_spearman)
            );
        }
    }
    println!(
        "Written to {}/analysis/ ({})",
        a.run_dir.display(),
        grokscope::analyze::analysis_files(&run)
            .iter()
            .map(|f| f.name())
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(())
}

fn cmd_prune(a: PruneArgs) -> Result<()> {
    let mut run = rundir::load_run(&a.run_dir)?;
    let (path, sweeps) = busy("pruning", || {
        grokscope::analyze::write_prune(&mut run, a.model, a.order, a.seed, a.force)
    })?;
    let n = run.setup.network.n_neurons();
    for (m, pts) in &sweeps {
        println!("model {m}, {} order:", a.order.name());
        println!(
            "{:>7} {:>7} {:>7} {:>7} {:>7} {:>7}",
            "pruned", "train", "test", "A_mem", "A_inv", "A_clean"
        );
        for tenth in 0..=10 {
            let target = (tenth * n / 10) as i64;
            let Some(pt) = pts.iter().min_by_key(|p| (p.pruned as i64 - target).abs()) else {
                continue;
            };
            println!(
                "{:>6.0}% {:>7.3} {:>7.3} {:>7} {:>7} {:>7}",
                100.0 * pt.pruned as f64 / n as f64,
                pt.acc.train_acc,
                pt.acc.test_acc,
                fmt_opt(pt.acc.mem_acc),
                fmt_opt(pt.acc.inv_acc),
                fmt_opt(pt.acc.clean_acc)
            );
        }
    }
    println!("Written to {}", path.display());
    Ok(())
}

fn cmd_analytic(a: AnalyticArgs) -> Result<()> {
    use grokscope::train::memory;
    grokscope::model::analytic::limits(a.p, a.n)?;
    memory::ensure(&memory::analytic(a.p, a.n), "the analytic network", "")?;
    let r = grokscope::model::analytic::evaluate_analytic(a.p, a.n)?;
    for w in &r.warnings {
        eprintln!("warning: {w}");
    }
    println!(
        "analytic network p = {}, N = {}: accuracy {:.4} on all {} pairs ({} wrong); IPR mean {:.6}, min {:.6}; {} frequencies",
        a.p, a.n, r.accuracy, r.pairs, r.wrong, r.mean_ipr, r.min_ipr, r.frequencies
    );
    Ok(())
}

fn read_plan_file(file: &std::path::Path) -> Result<grokscope::sweep::Plan> {
    let text = grokscope::rundir::read_text(file)
        .with_context(|| format!("cannot read sweep file {}", file.display()))?;
    grokscope::sweep::Plan::from_text(&text).with_context(|| format!("in {}", file.display()))
}

fn parse_threads(s: &str) -> std::result::Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(n) if (1..=1024).contains(&n) => Ok(n),
        _ => Err(format!("{s:?}: a number of threads from 1 to 1024")),
    }
}

fn parse_lease(s: &str) -> std::result::Result<f64, String> {
    match s.parse::<f64>() {
        Ok(x) if x.is_finite() && (1.0..=1e7).contains(&x) => Ok(x),
        _ => Err(format!("{s:?}: a number of seconds from 1 to 10000000")),
    }
}

fn print_status(dir: &std::path::Path, st: &grokscope::sweep::status::Status) {
    let now = grokscope::sweep::fsio::now();
    println!(
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
        println!("phases: {}", p.join(", "));
    }
    for r in &st.running {
        println!(
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
        println!("  unit {u:>4}: claimed by {w}, whose heartbeat is older than the lease (the next worker takes it over)");
    }
    for h in &st.workers {
        println!(
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

fn cmd_sweep(c: SweepCmd) -> Result<i32> {
    use grokscope::sweep;
    match c {
        SweepCmd::Plan { file, shard } => {
            let plan = read_plan_file(&file)?;
            sweep::check_units(&plan, shard, plan.spec.max_fleet)
                .with_context(|| format!("in {}", file.display()))?;
            let fleets = plan.fleets(|id| shard.is_none_or(|s| s.contains(id)));
            let runs: usize = fleets.iter().map(|f| f.runs.len()).sum();
            println!(
                "{}: {} runs{} in {} fleets (at most {} models each); axes: {}",
                plan.spec.name,
                runs,
                shard
                    .map(|s| format!(" (shard {s} of {})", plan.points.len()))
                    .unwrap_or_default(),
                fleets.len(),
                plan.spec.max_fleet,
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
            println!(
                "estimated time on this machine ({} threads): {} (plan hash {})",
                rayon::current_num_threads(),
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
                    println!(
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
                    println!(
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
            Ok(0)
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
                if grokscope::train::memory::parse_bytes(&with_unit).is_none() {
                    bail!("--mem {m:?}: give a size such as 4G, 500M or 4000 (megabytes)");
                }
                // SAFETY of set_var: no other thread reads the environment at this point.
                std::env::set_var(grokscope::train::memory::LIMIT_VAR, &with_unit);
                sweep::check_units(&plan, None, plan.spec.max_fleet)
                    .with_context(|| format!("in {} (each task has --mem {m})", file.display()))?;
            }
            sweep::slurm::check_dir(&std::path::absolute(&out)?)?;
            // Create (or join) the directory now, so the plan is fixed before any task runs.
            sweep::store::Store::open(&out, &plan.plan_file(None), lease)?;
            let s = sweep::slurm::write_scripts(&out, &plan.spec.name, &o)?;
            println!(
                "wrote {} (an array of {tasks} workers) and {} (tables and report after them); logs go to {}/",
                s.worker.display(),
                s.finish.display(),
                s.logs.display()
            );
            if submit {
                let (array, finish) = sweep::slurm::submit(&s)?;
                println!("submitted: workers job {array} (array 1-{tasks}), finishing job {finish} (after the workers)");
                println!("watch it: grokscope sweep status {}", out.display());
            } else {
                println!("submit with:\n  {}", sweep::slurm::submit_commands(&s));
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
            println!("merged {} runs → {}/", all.len(), out.display());
            Ok(0)
        }
        SweepCmd::Show { dir } => {
            let plan = sweep::store::read_plan(&dir)?;
            let records = sweep::store::read_records(&dir)?;
            if sweep::store::read_grid_text(&dir)?.is_none() {
                println!(
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

fn print_grids(dir: &std::path::Path) -> Result<()> {
    if let Some(text) = grokscope::sweep::store::read_grid_text(dir)? {
        print!("{text}");
    }
    Ok(())
}
