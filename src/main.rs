//! The `grokscope` command line: a thin shell over the library.

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use grokscope::bench;
use grokscope::config::{Config, DEFAULT_CONFIG};
use grokscope::output;
use grokscope::train::kernels::init_threads;
use grokscope::train::run::{train, Progress};
use indicatif::{ProgressBar, ProgressStyle};
use std::path::PathBuf;

const ABOUT: &str = "Memorization and generalization on corrupted modular arithmetic \
(Doshi et al., 'To grok or not to grok', ICLR 2024).";

const LONG_ABOUT: &str = "Memorization and generalization on corrupted modular arithmetic \
(Doshi et al., 'To grok or not to grok', ICLR 2024).\n\n\
With no command, grokscope trains the built-in default experiment: the paper's \
regularization study (p = 97, N = 500, α = 0.5, ξ = 0.35, weight decay 0, 5, 15, 500 epochs) \
as one fleet, prints a table of the final accuracies and phases, and writes the run under runs/.";

#[derive(Parser)]
#[command(name = "grokscope", version, about = ABOUT, long_about = LONG_ABOUT)]
struct Cli {
    /// Worker threads (default: one per core). Results do not depend on it.
    #[arg(long, global = true, value_name = "N")]
    threads: Option<usize>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Train a fleet of models from a TOML config and write a run directory.
    Train(TrainArgs),
    /// Time one training step (M = 1 and M = 8, normal and subnormal weights) against a
    /// 2048³ matrix product on all threads.
    Bench(BenchArgs),
    /// Print the built-in default config (a starting point for your own).
    DefaultConfig,
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
}

#[derive(Args)]
struct BenchArgs {
    /// Timed steps per case.
    #[arg(long, default_value_t = 10)]
    steps: usize,
}

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e:#}");
        std::process::exit(2);
    }
}

fn run() -> Result<()> {
    let cli = Cli::parse();
    init_threads(cli.threads.unwrap_or(0));
    match cli.command {
        None => cmd_train(TrainArgs {
            runs_dir: PathBuf::from("runs"),
            ..Default::default()
        }),
        Some(Command::Train(a)) => cmd_train(a),
        Some(Command::Bench(a)) => cmd_bench(a),
        Some(Command::DefaultConfig) => {
            print!("{DEFAULT_CONFIG}");
            Ok(())
        }
    }
}

fn cmd_train(a: TrainArgs) -> Result<()> {
    let (text, source) = match &a.config {
        Some(path) => (
            std::fs::read_to_string(path)
                .with_context(|| format!("cannot read config {}", path.display()))?,
            path.display().to_string(),
        ),
        None => (DEFAULT_CONFIG.to_string(), "built-in default".to_string()),
    };
    let cfg = Config::from_toml(&text, &a.sets).with_context(|| format!("in {source}"))?;
    let warnings = cfg.validate().with_context(|| format!("in {source}"))?;
    for w in &warnings {
        eprintln!("warning: {w}");
    }
    let dir = match &a.out {
        Some(d) => d.clone(),
        None => output::default_run_dir(&a.runs_dir, &cfg.name),
    };
    // Check everything that can fail before creating the directory.
    grokscope::train::run::setup(&cfg).with_context(|| format!("in {source}"))?;
    output::create_run_dir(&dir)?;
    output::write_config(&dir, &cfg)?;
    let n_models = cfg.fleet().len();
    eprintln!(
        "training {} ({} model{}) → {}",
        cfg.name,
        n_models,
        if n_models == 1 { "" } else { "s" },
        dir.display()
    );
    let bar = if a.quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(1)
    };
    bar.set_style(
        ProgressStyle::with_template(
            "{elapsed_precise} [{bar:30}] {pos}/{len} steps (eta {eta}) {msg}",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    let mut last_eval = u64::MAX;
    let mut progress = |p: &Progress| {
        bar.set_length(p.total_steps);
        bar.set_position(p.step);
        let step = p.latest.first().map(|r| r.step).unwrap_or(0);
        if step != last_eval {
            last_eval = step;
            let k = p.latest.len().max(1) as f64;
            let mean = |f: &dyn Fn(&grokscope::metrics::Record) -> f64| {
                p.latest.iter().map(|r| f(r)).sum::<f64>() / k
            };
            bar.set_message(format!(
                "loss {:.3e} train {:.3} test {:.3}{}",
                mean(&|r| r.train_loss),
                mean(&|r| r.train_acc),
                mean(&|r| r.test_acc),
                if p.latest.len() > 1 {
                    " (fleet mean)"
                } else {
                    ""
                }
            ));
        }
    };
    let outcome = train(&cfg, &mut progress)?;
    bar.finish_and_clear();
    let summary = output::write_results(&dir, &cfg, &outcome)?;
    print_table(&summary);
    println!(
        "\n{} steps × {} model{} in {:.1} s ({:.2} ms per model-step).",
        outcome.total_steps,
        n_models,
        if n_models == 1 { "" } else { "s" },
        outcome.seconds,
        outcome.seconds * 1e3 / (outcome.total_steps as f64 * n_models as f64)
    );
    println!(
        "Results in {}/ (config.toml, metrics.csv, summary.json, weights.safetensors)",
        dir.display()
    );
    Ok(())
}

fn print_table(s: &output::Summary) {
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
            m.phase
        );
    }
}

fn cmd_bench(a: BenchArgs) -> Result<()> {
    if a.steps == 0 {
        bail!("--steps must be at least 1");
    }
    let threads = rayon::current_num_threads();
    println!("grokscope bench: p = 97, N = 500, α = 0.5 (n = 4704), full batch, {threads} threads");
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
    Ok(())
}
