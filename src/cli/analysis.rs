//! `grokscope analyze`, `prune`, `scores`, `analytic` and `bench`: thin shells over `grokscope::analyze`,
//! `grokscope::analysis` and `grokscope::bench`.

use anyhow::{bail, Result};
use clap::Args;
use grokscope::analysis::prune::Order;
use grokscope::bench;
use grokscope::progress::{busy, fmt_opt};
use grokscope::rundir;
use grokscope::train::Engine;
use std::path::PathBuf;

#[derive(Args)]
pub struct AnalyzeArgs {
    /// A run directory written by `grokscope train`.
    pub run_dir: PathBuf,
    /// Only this model of the fleet (0-based index, as in summary.json).
    #[arg(long)]
    pub model: Option<usize>,
    /// Replace analysis files that already exist.
    #[arg(long)]
    pub force: bool,
    /// Write the analysis files into DIR instead of RUN_DIR/analysis/ (for a run you cannot
    /// write, e.g. one shared read-only).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

#[derive(Args)]
pub struct ScoresArgs {
    /// A run directory written by `grokscope train` (the two-layer MLP or the deep MLP).
    pub run_dir: PathBuf,
    /// Only this model of the fleet (0-based index, as in summary.json).
    #[arg(long)]
    pub model: Option<usize>,
    /// Replace score files that already exist.
    #[arg(long)]
    pub force: bool,
    /// Write the score files into DIR instead of RUN_DIR/analysis/ (for a run you cannot
    /// write).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

pub fn cmd_scores(a: ScoresArgs) -> Result<()> {
    let mut run = load(&a.run_dir, a.out.as_deref())?;
    let m = grokscope::analyze::score_check(&run, a.model, a.force)?.len();
    let units = run.setup.network.n_neurons();
    eprintln!(
        "scoring {} ({m} model{}, {units} units each: one evaluation per unit, then the pruning curves)",
        a.run_dir.display(),
        if m == 1 { "" } else { "s" }
    );
    let mut bar = grokscope::progress::WorkBar::new("unit scores and pruning by score");
    let t0 = std::time::Instant::now();
    let summaries =
        grokscope::analyze::score_run(&mut run, a.model, a.force, &mut |d, t| bar.update(d, t));
    bar.finish();
    let summaries = summaries?;
    eprintln!("scored in {:.1} s", t0.elapsed().as_secs_f64());
    let corr = |v: &[(&str, Option<f64>)]| {
        v.iter()
            .map(|(n, r)| format!("{n} {}", fmt_opt(*r)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    for s in &summaries {
        say!(
            "model {}: test {:.3}, A_mem {} | pruning by training-set ablation selectivity (highest first): best test {:.3} with {} unit{} removed (A_mem {})",
            s.model,
            s.test_acc,
            fmt_opt(s.mem_acc),
            s.pruned_best_test,
            s.pruned_units,
            if s.pruned_units == 1 { "" } else { "s" },
            fmt_opt(s.pruned_mem)
        );
        if !s.with_ipr.is_empty() {
            say!("  Spearman with the Fourier IPR: {}", corr(&s.with_ipr));
        }
        if !s.with_gamma.is_empty() {
            say!("  Spearman with |γ|: {}", corr(&s.with_gamma));
        }
    }
    say!(
        "Results in {} (scores.csv, prune-by-<score>-<highest|lowest>.csv)",
        run.dir.analysis_root().display()
    );
    Ok(())
}

#[derive(Args)]
pub struct PruneArgs {
    /// A run directory written by `grokscope train`.
    pub run_dir: PathBuf,
    /// Which neurons go first: ascending IPR (memorizing first), descending, or random.
    #[arg(long, value_enum, default_value = "ascending")]
    pub order: Order,
    /// Only this model of the fleet (0-based index).
    #[arg(long)]
    pub model: Option<usize>,
    /// Seed of the random order.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Replace the output file if it exists.
    #[arg(long)]
    pub force: bool,
    /// Write the pruning curve into DIR instead of RUN_DIR/analysis/ (for a run you cannot
    /// write).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

#[derive(Args)]
pub struct AnalyticArgs {
    /// Modulus (≥ 3).
    #[arg(long, default_value_t = 97)]
    pub p: usize,
    /// Number of neurons (≥ 8 per frequency, i.e. ≥ 8·(p−1)/2, for exact cancellation).
    #[arg(long, short, default_value_t = 500)]
    pub n: usize,
}

#[derive(Args)]
pub struct BenchArgs {
    /// Timed steps per case.
    #[arg(long, default_value_t = 10)]
    pub steps: usize,
    /// Also time the Transformer of docs/SCIENCE.md §8 (d = 128, 4 heads, p = 97, α = 0.5, M = 1 and 4).
    #[arg(long)]
    pub transformer: bool,
    /// Also time the deep MLP on MNIST-sized inputs (784 → 200 → 200 → 200 → 10, ReLU, biases, cross-entropy, minibatches of 128, M = 1 and 8).
    #[arg(long)]
    pub deep: bool,
    /// Also time what the progress measures (docs/PROGRESS.md) add to the default run: it
    /// trains the default run R times with and R times without them, alternating, and reports
    /// the medians (about 30 s per repetition on 2 cores).
    #[arg(long, value_name = "R", num_args = 0..=1, default_missing_value = "3")]
    pub progress: Option<usize>,
    /// Also time what the content digests (docs/OUTPUTS.md, "What is verified") add to the
    /// default run: one SHA-256 pass to seal its weights and dataset, one more for each read,
    /// against the default run's training time (trained R times; about 15 s each on 2 cores).
    #[arg(long, value_name = "R", num_args = 0..=1, default_missing_value = "3")]
    pub digest: Option<usize>,
}

pub fn cmd_bench(a: BenchArgs) -> Result<()> {
    if a.steps == 0 {
        bail!("--steps must be at least 1");
    }
    let threads = rayon::current_num_threads();
    say!(
        "grokscope bench: p = 97, N = 500, α = 0.5 (n = 4704), full batch, {threads} thread{}",
        if threads == 1 { "" } else { "s" }
    );
    let peak = bench::peak_gflops(2048, threads, 5);
    say!(
        "{:<42} {:>10} {:>9.1} GFLOP/s",
        "matmul 2048×2048×2048 (peak)",
        "",
        peak
    );
    let mut normal = None;
    for (m, sub) in [(1, false), (8, false), (1, true), (8, true)] {
        let t = bench::time_step(m, a.steps, sub)?;
        say!(
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
                say!(
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
            say!(
                "{:<42} {:>7.1} ms  (d = 128, 4 heads, 1 layer, n = 4704, full batch; per model-step)",
                format!("transformer train step, M = {models}"),
                ms
            );
        }
    }
    if let Some(reps) = a.progress {
        if reps == 0 {
            bail!("--progress needs at least 1 repetition");
        }
        let (mut with, mut without) = (Vec::new(), Vec::new());
        for r in 0..reps {
            eprint!("\rprogress measures: repetition {}/{reps} …", r + 1);
            without.push(bench::time_default_run(false)?);
            with.push(bench::time_default_run(true)?);
        }
        eprintln!();
        let median = |v: &mut Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        let (w, wo) = (median(&mut with), median(&mut without));
        say!(
            "{:<42} {:>7.2} s without, {:.2} s with: +{:.1} %  (median of {reps}; 3 models, 500 steps, 51 evaluations)",
            "default run, progress measures",
            wo,
            w,
            100.0 * (w / wo - 1.0)
        );
    }
    if let Some(reps) = a.digest {
        if reps == 0 {
            bail!("--digest needs at least 1 repetition");
        }
        let (bytes, pass) = busy("timing SHA-256 over the default run's files", || {
            bench::time_digests(21)
        })?;
        let mut runs = Vec::new();
        for r in 0..reps {
            eprint!("\rdigests: default run {}/{reps} …", r + 1);
            runs.push(bench::time_default_run(true)?);
        }
        eprintln!();
        runs.sort_by(f64::total_cmp);
        let run = runs[runs.len() / 2];
        // Sealed once when written, verified once by each reader (analyze, report, Python).
        let cost = 2.0 * pass;
        say!(
            "{:<42} {:>7.2} ms per pass over {:.2} MB ({:.0} MB/s); seal + one read: {:.2} ms = {:.3} % of the default run's {:.2} s (median of {reps})",
            "default run, content digests",
            pass * 1e3,
            bytes as f64 / 1e6,
            bytes as f64 / 1e6 / pass,
            cost * 1e3,
            100.0 * cost / run,
            run
        );
    }
    if a.deep {
        for models in [1, 8] {
            let ms = bench::time_deep_step(a.steps.max(20), models)?;
            say!(
                "{:<42} {:>7.3} ms  (784 → 200 → 200 → 200 → 10, B = 128; per model-step)",
                format!("deep MLP train step, M = {models}"),
                ms
            );
        }
    }
    Ok(())
}

pub fn cmd_analyze(a: AnalyzeArgs) -> Result<()> {
    let mut run = load(&a.run_dir, a.out.as_deref())?;
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
        if m.phase == grokscope::metrics::Phase::Diverged && m.mean_ipr.is_none() {
            say!(
                "model {}: Diverged (its weights are not finite: no IPR, frequencies or pruning curve to speak of)",
                m.model
            );
            continue;
        }
        let freqs: Vec<String> = m
            .dominant_frequencies
            .iter()
            .take(8)
            .map(|(f, c)| format!("{f}:{c}"))
            .collect();
        say!(
            "model {}: {} (test {:.3}, A_mem {}, A_inv {}) | mean IPR {} | IPR ≥ 0.5: {} | near-constant {} | dead {} | dominant freq:neurons {}{}",
            m.model,
            m.phase,
            m.test_acc,
            fmt_opt(m.mem_acc),
            fmt_opt(m.inv_acc),
            fmt_opt(m.mean_ipr),
            fmt_opt(m.frac_ipr_ge_half),
            fmt_opt(m.frac_near_constant),
            m.dead_neurons,
            freqs.join(" "),
            if m.dominant_frequencies.len() > 8 { " …" } else { "" }
        );
        if m.frac_near_constant.is_some_and(|f| f >= 0.5) {
            say!(
                "  note: most of its neurons are near-constant over the tokens (frequency 0 holds at least half their power): their IPR is high without their being periodic"
            );
        }
        if let Some(r) = m.bn_scale_ipr_spearman {
            say!(
                "  BatchNorm: Spearman(|γ|/σ, IPR) = {r:.3}, Spearman(|γ|, IPR) = {}",
                fmt_opt(m.bn_gamma_ipr_spearman)
            );
        }
    }
    say!(
        "Written to {}/ ({})",
        run.dir.analysis_root().display(),
        grokscope::analyze::analysis_files(&run)
            .iter()
            .map(|f| f.name())
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(())
}

pub fn cmd_prune(a: PruneArgs) -> Result<()> {
    let mut run = load(&a.run_dir, a.out.as_deref())?;
    let (path, sweeps) = busy("pruning", || {
        grokscope::analyze::write_prune(&mut run, a.model, a.order, a.seed, a.force)
    })?;
    let n = run.setup.network.n_neurons();
    for (m, pts) in &sweeps {
        say!("model {m}, {} order:", a.order.name());
        say!(
            "{:>7} {:>7} {:>7} {:>7} {:>7} {:>7}",
            "pruned",
            "train",
            "test",
            "A_mem",
            "A_inv",
            "A_clean"
        );
        for tenth in 0..=10 {
            let target = (tenth * n / 10) as i64;
            let Some(pt) = pts.iter().min_by_key(|p| (p.pruned as i64 - target).abs()) else {
                continue;
            };
            say!(
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
    say!("Written to {}", path.display());
    Ok(())
}

pub fn cmd_analytic(a: AnalyticArgs) -> Result<()> {
    use grokscope::model::memory;
    grokscope::model::analytic::limits(a.p, a.n)?;
    memory::ensure(&memory::analytic(a.p, a.n), "the analytic network", "")?;
    let r = grokscope::model::analytic::evaluate_analytic(a.p, a.n)?;
    for w in &r.warnings {
        eprintln!("warning: {w}");
    }
    say!(
        "analytic network p = {}, N = {}: accuracy {:.4} on all {} pairs ({} wrong); IPR mean {:.6}, min {:.6}; {} frequencies",
        a.p, a.n, r.accuracy, r.pairs, r.wrong, r.mean_ipr, r.min_ipr, r.frequencies
    );
    Ok(())
}

/// `grokscope verify DIR`: one line per problem on stdout, exit 1 if there is any.
pub fn cmd_verify(dir: &std::path::Path) -> Result<i32> {
    let (problems, unsealed, checked) = if grokscope::sweep::store::is_sweep(dir) {
        grokscope::sweep::store::verify(dir)
    } else {
        let run = rundir::RunDir::open(dir)?;
        let v = busy("verifying the run", || Ok::<_, anyhow::Error>(run.verify()))?;
        (v.problems, v.unsealed, v.checked)
    };
    let mut text = String::new();
    for p in &problems {
        text.push_str(&format!("{p}\n"));
    }
    for u in &unsealed {
        eprintln!("note: {u} has no content digest (written before grokscope recorded them): it was read but cannot be checked for damage");
    }
    if problems.is_empty() {
        text.push_str(&format!(
            "{}: whole ({checked} files checked{})\n",
            dir.display(),
            if unsealed.is_empty() {
                String::new()
            } else {
                format!(", {} without a digest", unsealed.len())
            }
        ));
    }
    crate::out(&text)?;
    Ok(if problems.is_empty() { 0 } else { 1 })
}

/// The run in `dir`, its analysis files going to `out` if given.
fn load(dir: &std::path::Path, out: Option<&std::path::Path>) -> Result<rundir::LoadedRun> {
    let mut run = rundir::load_run(dir)?;
    if let Some(out) = out {
        run.dir = run.dir.clone().with_analysis_at(out);
    }
    Ok(run)
}
