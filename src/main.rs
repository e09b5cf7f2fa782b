//! The `grokscope` command line: a thin shell over the library.

use anyhow::Result;
use clap::{Parser, Subcommand};
use grokscope::kernels::init_threads;
use grokscope::progress::busy;
use std::path::PathBuf;

/// `println!` that never panics: standard output closed (a pipe to `head`) or full
/// (`> /dev/full`) must not stop a command before its files are complete. The first failure
/// is kept and reported once at exit ([`stdout_failure`]).
macro_rules! say {
    ($($arg:tt)*) => {
        $crate::say_line(format_args!($($arg)*))
    };
}

mod cli;
use cli::analysis::{
    cmd_analytic, cmd_analyze, cmd_bench, cmd_prune, cmd_scores, AnalyticArgs, AnalyzeArgs,
    BenchArgs, PruneArgs, ScoresArgs,
};
use cli::sweep::{cmd_sweep, SweepCmd};
use cli::train::{cmd_train, TrainArgs};

/// mimalloc: chosen when the Transformer still trained through candle's autograd, which
/// allocated and freed many large tensors per step (glibc's allocator sent them to
/// mmap/munmap: 366 → 227 ms per step at d = 128, p = 97; docs/NUMERICS.md). The hand-derived
/// engines that replaced it reuse their buffers; mimalloc stays, as it costs nothing there.
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
    /// 2048³ matrix product on all threads; with --transformer also the Transformer's step,
    /// with --deep the deep MLP's on MNIST-sized inputs.
    Bench(BenchArgs),
    /// Analyse a run: per-neuron IPR and Fourier spectra, BatchNorm scales against IPR,
    /// pruning sweeps in all three orders; written to RUN_DIR/analysis/.
    Analyze(AnalyzeArgs),
    /// Prune a run's neurons in IPR order and report every accuracy after each removal;
    /// written to RUN_DIR/analysis/prune-<order>.csv.
    Prune(PruneArgs),
    /// Find memorizing units without Fourier structure (docs/SCIENCE.md §9, docs/REAL_DATA.md):
    /// per hidden unit its ablation selectivity, data-IPR, gradient attribution and BatchNorm
    /// γ, their rank correlations (with the Fourier IPR on token tasks), and pruning curves in
    /// the order of each score; written to RUN_DIR/analysis/scores.csv and prune-by-*.csv.
    Scores(ScoresArgs),
    /// Build Gromov's analytic network for modular addition (docs/SCIENCE.md §7) and evaluate it on the
    /// whole table.
    Analytic(AnalyticArgs),
    /// Phase diagrams: grids of runs over (α, ξ, regularization, seed) — plan, run, status,
    /// slurm, merge, show.
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
    /// Check every file of a run or sweep directory: the digests of its binary files
    /// (weights, resume state, checkpoints, dataset, sweep records and curves), that each
    /// belongs to this run, and that config, summary and metrics read back. One line per
    /// problem; exit 0 only when all is whole, 1 when a problem was found (docs/OUTPUTS.md).
    Verify {
        /// A run directory or a sweep directory.
        dir: PathBuf,
    },
    /// Print the built-in default config, then every other key with its default and meaning
    /// commented out: a starting point for your own (`default-config > my.toml`).
    DefaultConfig,
    /// List the shipped configs (`grokscope train --preset NAME`; the phase-* sweeps:
    /// `grokscope sweep run NAME --out DIR`), or print one by its name.
    Presets {
        /// Print this preset's TOML.
        name: Option<String>,
    },
}

fn main() {
    let code = match run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            2
        }
    };
    if let Some(why) = stdout_failure() {
        eprintln!("error: cannot write to standard output ({why}); the command ran to its end and its files are complete");
        std::process::exit(if code == 0 { 1 } else { code });
    }
    std::process::exit(code);
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
        Some(Command::Scores(a)) => cmd_scores(a).map(|_| 0),
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
            say!(
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
            say!(
                "comparison: {} ({:.1} s; also compare.png, compare.svg, compare.csv)",
                done.page.display(),
                t0.elapsed().as_secs_f64()
            );
            Ok(0)
        }
        Some(Command::Verify { dir }) => cli::analysis::cmd_verify(&dir),
        Some(Command::DefaultConfig) => out(&grokscope::config::presets::commented_default()),
        Some(Command::Presets { name: Some(name) }) => out(grokscope::config::preset(&name)?),
        Some(Command::Presets { name: None }) => {
            let mut lines = String::new();
            for (name, text) in grokscope::config::PRESETS {
                let what = if grokscope::config::presets::is_sweep(text) {
                    "sweep"
                } else {
                    "train"
                };
                // The first comment line says what it is.
                let about = text
                    .lines()
                    .find_map(|l| l.strip_prefix("# "))
                    .unwrap_or_default();
                lines.push_str(&format!("{name:<24} {what:<6} {about}\n"));
            }
            out(&lines)
        }
    }
}

/// Writes `text` to stdout: a closed pipe (`| head`) ends quietly, another write error is an
/// error, never a panic.
static STDOUT_FAILED: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Writes one line to standard output (see `say!`).
fn say_line(args: std::fmt::Arguments) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = stdout.write_fmt(args).and_then(|_| stdout.write_all(b"\n")) {
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            let _ = STDOUT_FAILED.set(e.to_string());
        }
    }
}

/// Why standard output could not be written, if it could not (a broken pipe is not a failure:
/// the reader has what it wanted).
fn stdout_failure() -> Option<&'static String> {
    use std::io::Write;
    if let Err(e) = std::io::stdout().lock().flush() {
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            let _ = STDOUT_FAILED.set(e.to_string());
        }
    }
    STDOUT_FAILED.get()
}

fn out(text: &str) -> Result<i32> {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|_| stdout.flush())
    {
        Ok(()) => Ok(0),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(0),
        Err(e) => Err(anyhow::Error::new(e).context("cannot write to standard output")),
    }
}

fn parse_threads(s: &str) -> std::result::Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(n) if (1..=1024).contains(&n) => Ok(n),
        _ => Err(format!("{s:?}: a number of threads from 1 to 1024")),
    }
}
