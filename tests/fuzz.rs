//! A time-bounded, seeded fuzzer over everything grokscope reads: config text and `--set`
//! overrides, sweep files, and each file of a run directory and of a sweep directory.
//!
//! Every case must give `Ok` or an `Err`, never a panic, an abort or a hang. The seed corpus
//! is the presets in `configs/` and a small run and sweep written by the binary; mutations
//! are structure-aware (numbers replaced by edge values, lines deleted, duplicated and
//! swapped, keys added) and byte-level (flips, truncation, garbage).
//!
//! `cargo test --release` runs it for 60 s (split between the targets). A longer campaign:
//!
//! ```text
//! GROKSCOPE_FUZZ_SECS=1800 GROKSCOPE_FUZZ_SEED=7 cargo test --release --test fuzz -- --nocapture
//! ```
//!
//! Inputs that fail are written to `target/fuzz-findings/`. See docs/FUZZING.md.

mod common;

use grokscope::config::Config;
use grokscope::setup::Prepare;
use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const EDGE_VALUES: &[&str] = &[
    "0",
    "1",
    "-1",
    "2",
    "3",
    "0.5",
    "1e308",
    "-1e308",
    "1e-320",
    "nan",
    "inf",
    "-inf",
    "NaN",
    "65521",
    "65536",
    "4294967296",
    "9223372036854775807",
    "18446744073709551615",
    "18446744073709551616",
    "4611686018427387904",
    "2147483648",
    "999999999",
    "\"\"",
    "\"x\"",
    "\"full\"",
    "[]",
    "[0, 1]",
    "[[1, 2]]",
    "true",
    "{}",
    "null",
    "-0",
    "1.5",
];

const KEYS: &[&str] = &[
    "name",
    "data.p",
    "data.operation",
    "data.train_fraction",
    "data.split_seed",
    "data.corruption",
    "data.corruption_mode",
    "data.corruption_seed",
    "model.kind",
    "model.width",
    "model.activation",
    "model.dropout",
    "model.batchnorm",
    "model.bn_momentum",
    "model.bn_eps",
    "model.init",
    "model.init_std",
    "model.init_seed",
    "model.transformer.d_model",
    "model.transformer.heads",
    "model.transformer.layers",
    "model.transformer.mlp_ratio",
    "model.transformer.mup_s",
    "train.loss",
    "train.lr",
    "train.weight_decay",
    "train.beta1",
    "train.beta2",
    "train.eps",
    "train.batch_size",
    "train.epochs",
    "train.steps",
    "eval.every",
    "eval.threshold",
    "eval.full_threshold",
    "eval.checkpoint_every",
    "eval.autosave_minutes",
    "max_fleet",
    "axes.\"data.corruption\"",
    "axes.\"train.weight_decay\".count",
    "bogus.key",
];

/// How long the whole campaign runs and from which seed.
fn budget() -> (Duration, u64) {
    let secs = std::env::var("GROKSCOPE_FUZZ_SECS")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .unwrap_or(60.0);
    let seed = std::env::var("GROKSCOPE_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (Duration::from_secs_f64(secs), seed)
}

fn pick<'a, T>(rng: &mut ChaCha8Rng, v: &'a [T]) -> &'a T {
    &v[rng.random_range(0..v.len())]
}

/// Byte ranges of the numbers in `text`.
fn numbers(text: &str) -> Vec<(usize, usize)> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let starts =
            b[i].is_ascii_digit() || (b[i] == b'-' && i + 1 < b.len() && b[i + 1].is_ascii_digit());
        if starts && (i == 0 || !b[i - 1].is_ascii_alphanumeric() && b[i - 1] != b'_') {
            let s = i;
            i += 1;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b"._+-".contains(&b[i])) {
                i += 1;
            }
            out.push((s, i));
        } else {
            i += 1;
        }
    }
    out
}

/// One structure-aware or byte-level mutation of `data`.
fn mutate(rng: &mut ChaCha8Rng, data: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(data).to_string();
    let lines: Vec<&str> = text.lines().collect();
    let mut out = data.to_vec();
    match rng.random_range(0..11) {
        0..=2 => {
            let nums = numbers(&text);
            if !nums.is_empty() {
                let (s, e) = *pick(rng, &nums);
                let v = pick(rng, EDGE_VALUES);
                out = format!("{}{}{}", &text[..s], v, &text[e..]).into_bytes();
            }
        }
        3 if !lines.is_empty() => {
            let k = rng.random_range(0..lines.len());
            let mut l = lines.clone();
            l.remove(k);
            out = (l.join("\n") + "\n").into_bytes();
        }
        4 if !lines.is_empty() => {
            let k = rng.random_range(0..lines.len());
            let mut l = lines.clone();
            l.insert(k, lines[k]);
            out = (l.join("\n") + "\n").into_bytes();
        }
        5 if lines.len() > 1 => {
            let (a, b) = (
                rng.random_range(0..lines.len()),
                rng.random_range(0..lines.len()),
            );
            let mut l = lines.clone();
            l.swap(a, b);
            out = (l.join("\n") + "\n").into_bytes();
        }
        6 if !out.is_empty() => {
            out.truncate(rng.random_range(0..out.len()));
        }
        7 if !out.is_empty() => {
            for _ in 0..rng.random_range(1..4) {
                let i = rng.random_range(0..out.len());
                out[i] ^= 1 << rng.random_range(0..8);
            }
        }
        8 => {
            let k = pick(rng, KEYS);
            let v = pick(rng, EDGE_VALUES);
            out.extend_from_slice(format!("\n{k} = {v}\n").as_bytes());
        }
        9 => {
            let mut garbage = vec![0u8; rng.random_range(1..64)];
            rng.fill_bytes(&mut garbage);
            let at = rng.random_range(0..=out.len());
            out.splice(at..at, garbage);
        }
        _ => {
            // Replace a string value or word by an edge value.
            if let Some(q) = text.find('"') {
                let end = text[q + 1..].find('"').map_or(text.len(), |e| q + 2 + e);
                out = format!("{}{}{}", &text[..q], pick(rng, EDGE_VALUES), &text[end..])
                    .into_bytes();
            }
        }
    }
    out
}

/// A case's target and its input files.
type CurrentCase = (String, Vec<(String, Vec<u8>)>);

/// Failures found: (target, message, where the input was saved).
type Findings = Arc<Mutex<Vec<String>>>;

struct Campaign {
    rng: ChaCha8Rng,
    findings: Findings,
    cases: u64,
    findings_dir: PathBuf,
    /// The start of the current case, for the watchdog (ms since `epoch`; 0: idle).
    busy_since: Arc<AtomicU64>,
    /// The current case's target and inputs, for the watchdog to save on a hang.
    current: Arc<Mutex<CurrentCase>>,
    epoch: Instant,
}

thread_local! {
    static LAST_PANIC: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
}

impl Campaign {
    /// Runs `case`; a panic is recorded as a finding with the input files `inputs`.
    fn case(&mut self, target: &str, inputs: &[(&str, &[u8])], case: impl FnOnce()) {
        self.cases += 1;
        if let Ok(mut cur) = self.current.lock() {
            *cur = (
                target.to_string(),
                inputs
                    .iter()
                    .map(|(n, b)| (n.to_string(), b.to_vec()))
                    .collect(),
            );
        }
        let t = self.epoch.elapsed().as_millis() as u64 + 1;
        self.busy_since.store(t, Ordering::SeqCst);
        let r = catch_unwind(AssertUnwindSafe(case));
        self.busy_since.store(0, Ordering::SeqCst);
        if r.is_err() {
            let msg = LAST_PANIC.with(|p| p.borrow().clone());
            let n = self.findings.lock().unwrap().len();
            let dir = self.findings_dir.join(format!("{target}-{n}"));
            let _ = std::fs::create_dir_all(&dir);
            for (name, bytes) in inputs {
                let _ = std::fs::write(dir.join(name.replace('/', "_")), bytes);
            }
            self.findings
                .lock()
                .unwrap()
                .push(format!("{target}: {msg} (input in {})", dir.display()));
        }
    }
}

fn corpus() -> (Vec<String>, Vec<String>) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs");
    let mut configs = Vec::new();
    let mut sweeps = Vec::new();
    for dir in [root.clone(), root.join("paper")] {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "toml") {
                let t = std::fs::read_to_string(&p).unwrap();
                if t.contains("[axes]") {
                    sweeps.push(t);
                } else {
                    configs.push(t);
                }
            }
        }
    }
    configs.push(grokscope::config::DEFAULT_CONFIG.to_string());
    assert!(
        configs.len() >= 5 && sweeps.len() >= 5,
        "the presets are the seed corpus"
    );
    (configs, sweeps)
}

fn fuzz_config(c: &mut Campaign, configs: &[String], until: Instant) {
    while Instant::now() < until {
        let base = pick(&mut c.rng, configs).clone();
        let mut text = base.into_bytes();
        for _ in 0..c.rng.random_range(0..4) {
            text = mutate(&mut c.rng, &text);
        }
        let text = String::from_utf8_lossy(&text).to_string();
        let sets: Vec<String> = (0..c.rng.random_range(0..3))
            .map(|_| {
                let k = pick(&mut c.rng, KEYS);
                let v = pick(&mut c.rng, EDGE_VALUES);
                match c.rng.random_range(0..4) {
                    0 => k.to_string(),
                    1 => format!("{k}=={v}"),
                    _ => format!("{k}={v}"),
                }
            })
            .collect();
        let input = format!("{text}\n# sets: {sets:?}\n");
        c.case("config", &[("config.toml", input.as_bytes())], || {
            if let Ok(cfg) = Config::from_toml(&text, &sets) {
                if let Ok(checked) = cfg.check() {
                    let _ = checked.setup();
                }
            }
        });
    }
}

fn fuzz_sweep_spec(c: &mut Campaign, sweeps: &[String], until: Instant) {
    while Instant::now() < until {
        let mut text = pick(&mut c.rng, sweeps).clone().into_bytes();
        for _ in 0..c.rng.random_range(1..4) {
            text = mutate(&mut c.rng, &text);
        }
        let text = String::from_utf8_lossy(&text).to_string();
        c.case("sweep-spec", &[("sweep.toml", text.as_bytes())], || {
            if let Ok(plan) = grokscope::sweep::Plan::from_text(&text) {
                let _ = plan.fleets(|_| true);
            }
        });
    }
}

/// Every file under `dir` (relative paths), sorted.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p.strip_prefix(dir).unwrap().to_path_buf());
            }
        }
    }
    out.sort();
    out
}

fn copy_tree(from: &Path, to: &Path) {
    for f in files(from) {
        let dst = to.join(&f);
        std::fs::create_dir_all(dst.parent().unwrap()).unwrap();
        std::fs::copy(from.join(&f), dst).unwrap();
    }
}

/// Mutates 1–2 files of a copy of `pristine` (or deletes one); returns the changed inputs.
fn mutate_dir(
    rng: &mut ChaCha8Rng,
    pristine: &Path,
    work: &Path,
    wanted: &dyn Fn(&Path) -> bool,
) -> Vec<(String, Vec<u8>)> {
    let _ = std::fs::remove_dir_all(work);
    copy_tree(pristine, work);
    let all: Vec<PathBuf> = files(pristine).into_iter().filter(|f| wanted(f)).collect();
    let mut changed = Vec::new();
    for _ in 0..rng.random_range(1..3) {
        let f = pick(rng, &all).clone();
        let path = work.join(&f);
        if rng.random_range(0..12) == 0 {
            let _ = std::fs::remove_file(&path);
            changed.push((format!("{}.deleted", f.display()), Vec::new()));
            continue;
        }
        let before = std::fs::read(&path).unwrap_or_default();
        let mut after = before;
        for _ in 0..rng.random_range(1..3) {
            after = mutate(rng, &after);
        }
        std::fs::write(&path, &after).unwrap();
        changed.push((f.display().to_string(), after));
    }
    changed
}

fn fuzz_run_dir(c: &mut Campaign, pristine: &Path, scratch: &Path, until: Instant) {
    use grokscope::rundir::{load_run, RunDir};
    let work = scratch.join("run");
    while Instant::now() < until {
        let changed = mutate_dir(&mut c.rng, pristine, &work, &|f| {
            !f.starts_with("report") && !f.ends_with(".lock")
        });
        let inputs: Vec<(&str, &[u8])> = changed
            .iter()
            .map(|(n, b)| (n.as_str(), b.as_slice()))
            .collect();
        let with_report = c.rng.random_range(0..6) == 0;
        c.case("run-dir", &inputs, || {
            if let Ok(run) = RunDir::open(&work) {
                if let Ok(cfg) = run.read_config() {
                    let n = cfg.fleet().len();
                    let _ = run.read_history(n);
                    if let Ok(setup) = cfg.setup() {
                        let _ = run.resume_point(&cfg, n, setup.total_steps);
                    }
                }
                let _ = run.read_state();
            }
            if let Ok(mut loaded) = load_run(&work) {
                let _ = grokscope::analyze::analyze_run(&mut loaded, None, true);
                let _ = grokscope::analyze::write_prune(
                    &mut loaded,
                    Some(0),
                    grokscope::analysis::prune::Order::Random,
                    1,
                    true,
                );
            }
            if with_report {
                let _ = grokscope::report::report(&work, true);
                let _ = grokscope::report::report(&work.join("analysis"), true);
            }
        });
    }
}

fn fuzz_sweep_dir(c: &mut Campaign, pristine: &Path, scratch: &Path, until: Instant) {
    let work = scratch.join("sweep");
    let merged = scratch.join("merged");
    while Instant::now() < until {
        let changed = mutate_dir(&mut c.rng, pristine, &work, &|f| {
            !f.starts_with("report") && !f.starts_with("workers") && !f.starts_with("claims")
        });
        let inputs: Vec<(&str, &[u8])> = changed
            .iter()
            .map(|(n, b)| (n.as_str(), b.as_slice()))
            .collect();
        let with_report = c.rng.random_range(0..6) == 0;
        c.case("sweep-dir", &inputs, || {
            let _ = grokscope::sweep::status::status(&work, 120.0);
            if let Ok(store) = grokscope::sweep::store::Store::join(&work, 1e9) {
                if let Ok(recs) = store.records() {
                    for id in recs.keys() {
                        let _ = store.curve(*id);
                    }
                }
            }
            let _ = grokscope::sweep::store::read_grid_text(&work);
            let _ = std::fs::remove_dir_all(&merged);
            let _ = grokscope::sweep::merge(&merged, &[work.as_path()]);
            if with_report {
                let _ = grokscope::report::report(&work, true);
            }
        });
    }
}

#[test]
fn fuzz_every_reader() {
    let (total, seed) = budget();
    // Cases that pass validation allocate for real: keep them small.
    std::env::set_var("GROKSCOPE_MEMORY_LIMIT", "512M");
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    // Seed corpus of directories: a finished, analysed, reported run with checkpoints and a
    // finished sweep.
    std::fs::write(
        t.join("run.toml"),
        "name = \"fz\"\n[data]\np = 11\ncorruption = 0.2\n[model]\nwidth = 8\nbatchnorm = true\n[train]\nsteps = 30\nweight_decay = [0, 1]\n[eval]\nevery = 10\ncheckpoint_every = 15\n",
    )
    .unwrap();
    let ok = |o: std::process::Output| {
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    };
    ok(common::grokscope(
        &["train", "-q", "-c", "run.toml", "--out", "run"],
        t,
    ));
    ok(common::grokscope(&["analyze", "run"], t));
    std::fs::write(
        t.join("sweep.toml"),
        "name = \"fzs\"\nmax_fleet = 2\n[base]\ndata.p = 11\nmodel.width = 8\ntrain.steps = 20\neval.every = 10\n[axes]\n\"data.corruption\" = [0.0, 0.3]\n\"train.weight_decay\" = [0, 1]\n",
    )
    .unwrap();
    ok(common::grokscope(
        &["sweep", "run", "sweep.toml", "--out", "sw", "-q"],
        t,
    ));
    let (configs, sweeps) = corpus();
    let findings_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/fuzz-findings");
    let mut c = Campaign {
        rng: ChaCha8Rng::seed_from_u64(seed),
        findings: Arc::new(Mutex::new(Vec::new())),
        cases: 0,
        findings_dir,
        busy_since: Arc::new(AtomicU64::new(0)),
        current: Arc::new(Mutex::new((String::new(), Vec::new()))),
        epoch: Instant::now(),
    };
    std::panic::set_hook(Box::new(|info| {
        let msg = format!("{info}");
        LAST_PANIC.with(|p| *p.borrow_mut() = msg);
    }));
    // The watchdog: a case that runs for more than two minutes is a hang.
    {
        let busy = Arc::clone(&c.busy_since);
        let current = Arc::clone(&c.current);
        let dir = c.findings_dir.join("hang");
        let epoch = c.epoch;
        std::thread::spawn(move || loop {
            std::thread::sleep(Duration::from_secs(1));
            let since = busy.load(Ordering::SeqCst);
            let now = epoch.elapsed().as_millis() as u64;
            if since != 0 && now.saturating_sub(since) > 120_000 {
                let (target, inputs) = current.lock().map(|c| c.clone()).unwrap_or_default();
                let _ = std::fs::create_dir_all(&dir);
                for (name, bytes) in &inputs {
                    let _ = std::fs::write(dir.join(name.replace('/', "_")), bytes);
                }
                eprintln!(
                    "fuzz: a {target} case has run for over 120 s: a hang (input in {})",
                    dir.display()
                );
                std::process::exit(3);
            }
        });
    }
    let start = Instant::now();
    let scratch = t.join("scratch");
    std::fs::create_dir_all(&scratch).unwrap();
    let share = |f: f64| start + total.mul_f64(f);
    let mut counts = Vec::new();
    let mut last = 0;
    for (name, end) in [
        ("config and --set", 0.3),
        ("sweep files", 0.45),
        ("run directories", 0.8),
        ("sweep directories", 1.0),
    ] {
        let until = share(end);
        match name {
            "config and --set" => fuzz_config(&mut c, &configs, until),
            "sweep files" => fuzz_sweep_spec(&mut c, &sweeps, until),
            "run directories" => fuzz_run_dir(&mut c, &t.join("run"), &scratch, until),
            _ => fuzz_sweep_dir(&mut c, &t.join("sw"), &scratch, until),
        }
        counts.push(format!("{name} {}", c.cases - last));
        last = c.cases;
    }
    let _ = std::panic::take_hook();
    let found = c.findings.lock().unwrap().clone();
    eprintln!(
        "fuzz: seed {seed}, {:.0} s, {} cases ({}), {} finding(s)",
        start.elapsed().as_secs_f64(),
        c.cases,
        counts.join(", "),
        found.len()
    );
    assert!(found.is_empty(), "{}", found.join("\n"));
}

#[test]
fn mutations_change_inputs_and_numbers_are_found() {
    assert_eq!(
        numbers("p = 97\nlr = -1e-3\nname = \"a1\""),
        [(4, 6), (12, 17)]
    );
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let base = b"p = 97\nwidth = 500\n".to_vec();
    let changed = (0..50).filter(|_| mutate(&mut rng, &base) != base).count();
    assert!(changed > 40, "{changed} of 50 mutations changed the input");
}
