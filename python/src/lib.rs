//! `grokscope._native`: the Rust library seen from Python. The Python package
//! (`python/grokscope/`) wraps these functions in its API; they take and return plain values
//! (strings, lists, paths) and raise `grokscope.GrokscopeError` with the message the CLI would
//! print. Training releases the GIL; Ctrl-C stops it after the current step with the run left
//! resumable, as the CLI's does, and raises `KeyboardInterrupt`.

use grokscope::analysis::prune::Order;
use grokscope::config::{blamed_message, Config};
use grokscope::experiment::{Control, Progress, RunEnd};
use grokscope::job::{Request, Source};
use grokscope::rundir::{self, RunDir};
use pyo3::exceptions::{PyKeyboardInterrupt, PyValueError};
use pyo3::prelude::*;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pyo3::create_exception!(
    _native,
    GrokscopeError,
    PyValueError,
    "A bad config, input or run directory: the message is the one the grokscope CLI prints."
);

fn err(e: grokscope::Error) -> PyErr {
    GrokscopeError::new_err(e.message(&grokscope::error::PYTHON))
}

/// The stop flags of the trainings and sweeps running now (any thread), so that an exiting
/// interpreter can stop them resumably first ([`shutdown`]).
static ACTIVE: Mutex<Vec<Arc<AtomicUsize>>> = Mutex::new(Vec::new());

/// A stop flag registered in [`ACTIVE`] while it lives.
struct Active(Arc<AtomicUsize>);

impl Active {
    fn new() -> Active {
        let flag = Arc::new(AtomicUsize::new(0));
        if let Ok(mut a) = ACTIVE.lock() {
            a.push(flag.clone());
        }
        Active(flag)
    }
}

impl Drop for Active {
    fn drop(&mut self) {
        if let Ok(mut a) = ACTIVE.lock() {
            a.retain(|f| !Arc::ptr_eq(f, &self.0));
        }
    }
}

/// Stops every training and sweep running in other threads (as SIGTERM stops the CLI: after
/// the current step, the state saved) and waits for them (at most `timeout` seconds); called
/// by the package at interpreter exit, before daemon threads are killed.
#[pyfunction]
#[pyo3(signature = (timeout = 120.0))]
fn shutdown(py: Python<'_>, timeout: f64) {
    let t0 = Instant::now();
    loop {
        let n = match ACTIVE.lock() {
            Ok(a) => {
                for f in a.iter() {
                    f.store(15, Ordering::SeqCst);
                }
                a.len()
            }
            Err(_) => 0,
        };
        if n == 0 || t0.elapsed().as_secs_f64() > timeout {
            return;
        }
        py.allow_threads(|| std::thread::sleep(Duration::from_millis(20)));
    }
}

/// Run directories being trained by this process now: the run's `.lock` names the process, so
/// two threads of one process must be kept apart here.
static IN_USE: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// A run directory claimed in [`IN_USE`] while it lives.
struct InUse(PathBuf);

impl InUse {
    fn claim(dir: &Path) -> PyResult<InUse> {
        let key = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
        let mut used = IN_USE
            .lock()
            .map_err(|_| GrokscopeError::new_err("internal: the run registry is poisoned"))?;
        if used.contains(&key) {
            return Err(GrokscopeError::new_err(format!(
                "{}: the run is being trained by another thread of this process",
                dir.display()
            )));
        }
        used.push(key.clone());
        Ok(InUse(key))
    }
}

impl Drop for InUse {
    fn drop(&mut self) {
        if let Ok(mut used) = IN_USE.lock() {
            used.retain(|d| *d != self.0);
        }
    }
}

/// Sweep calls of this process so far: each call's workers get their own names.
static SWEEP_CALLS: AtomicUsize = AtomicUsize::new(0);

/// The phases of SCIENCE.md §5, in the order of the paper's table.
#[pyfunction]
fn phases() -> Vec<&'static str> {
    grokscope::metrics::Phase::ALL
        .iter()
        .map(|p| p.name())
        .collect()
}

/// The fields of a model's settings that a fleet may vary (`config::FLEET_AXES`, in their
/// order): the hyper-parameter columns of `Run.summary` and `Run.metrics`.
#[pyfunction]
fn fleet_axes() -> Vec<&'static str> {
    grokscope::config::FLEET_AXES
        .iter()
        .map(|a| a.field)
        .collect()
}

/// `[(name, toml text)]` of the shipped configs.
#[pyfunction]
fn presets() -> Vec<(&'static str, &'static str)> {
    grokscope::config::PRESETS.to_vec()
}

/// The config `text` with `sets` (`KEY=VALUE`, TOML values) applied and checked, every default
/// filled in, as JSON.
#[pyfunction]
#[pyo3(signature = (text, sets, source = "the config".to_string()))]
fn resolve(text: &str, sets: Vec<String>, source: String) -> PyResult<String> {
    let blamed = |e: grokscope::Error| GrokscopeError::new_err(blamed_message(&e, &sets, &source));
    let cfg = Config::from_toml(text, &sets).map_err(blamed)?;
    let checked = cfg.check().map_err(blamed)?;
    serde_json::to_string(&*checked).map_err(|e| GrokscopeError::new_err(e.to_string()))
}

/// Trains into a run directory and returns its path: a fresh run from `text` with `sets`
/// into `out` (or `runs_dir/<name>-<time>`), or with `resume`, the interrupted run in that
/// directory. `progress(step, total)` is called a few times a second (with the GIL).
#[pyfunction]
#[pyo3(signature = (text, sets, out = None, runs_dir = PathBuf::from("runs"), resume = None, report = true, progress = None, source = "the config".to_string()))]
#[allow(clippy::too_many_arguments)]
fn train(
    py: Python<'_>,
    text: Option<String>,
    sets: Vec<String>,
    out: Option<PathBuf>,
    runs_dir: PathBuf,
    resume: Option<PathBuf>,
    report: bool,
    progress: Option<PyObject>,
    source: String,
) -> PyResult<String> {
    // The library's one entry point for a run: everything is checked and built before the
    // directory is created (or, on resume, changed).
    let _in_use;
    let job = match resume {
        Some(dir) => {
            _in_use = InUse::claim(&dir)?;
            Request::Resume {
                dir,
                sets: sets.clone(),
            }
            .resolve()
            .map_err(err)?
            .create()
            .map_err(err)?
        }
        None => {
            let source = match text {
                Some(text) => Source::Text { text, name: source },
                None => Source::Default,
            };
            let request = Request::Fresh {
                source,
                sets,
                out,
                runs_dir,
            };
            let job = request.resolve().map_err(err)?.create().map_err(err)?;
            _in_use = InUse::claim(job.run.path())?;
            job
        }
    };
    let dir = job.run.path().to_path_buf();
    let active = Active::new();
    let stop: &AtomicUsize = &active.0;
    // What Python said while training ran without the GIL: a callback's error or Ctrl-C.
    let raised: Mutex<Option<PyErr>> = Mutex::new(None);
    let control = Control {
        stop: Some(stop),
        autosave: job.autosave_seconds(),
    };
    let mut last = Instant::now() - Duration::from_secs(1);
    let end = py.allow_threads(|| {
        job.train(control, &mut |p: &Progress| {
            let done = p.step >= p.total_steps;
            if !done && last.elapsed() < Duration::from_millis(100) {
                return Ok(());
            }
            last = Instant::now();
            Python::with_gil(|py| {
                let r = py.check_signals().and_then(|_| match &progress {
                    Some(cb) => cb.call1(py, (p.step, p.total_steps)).map(|_| ()),
                    None => Ok(()),
                });
                if let Err(e) = r {
                    stop.store(2, Ordering::SeqCst);
                    if let Ok(mut slot) = raised.lock() {
                        slot.get_or_insert(e);
                    }
                }
            });
            Ok(())
        })
    });
    let raised = raised.into_inner().ok().flatten();
    match end.map_err(err)? {
        RunEnd::Interrupted { step, .. } => {
            let saved = format!(
                "interrupted after step {step}: the run is saved in {}; continue it with grokscope.train(resume={:?})",
                dir.display(),
                dir.display().to_string()
            );
            Err(match raised {
                // Ctrl-C's KeyboardInterrupt has no message: say where the run is.
                Some(e) if e.is_instance_of::<PyKeyboardInterrupt>(py) => {
                    PyKeyboardInterrupt::new_err(saved)
                }
                Some(e) => e,
                None => PyKeyboardInterrupt::new_err(saved),
            })
        }
        RunEnd::Finished(..) => {
            if let Some(e) = raised {
                return Err(e);
            }
            if report {
                let path = &dir;
                py.allow_threads(|| grokscope::report::report(path, true))
                    .map_err(|e| {
                        GrokscopeError::new_err(format!(
                            "the run is complete in {}, but its report could not be written: {e}",
                            dir.display()
                        ))
                    })?;
            }
            Ok(dir.display().to_string())
        }
    }
}

/// The resolved config of a run directory (`config.toml`, checked) as JSON. The MLP's keys
/// are in `model.mlp` and, as in release 0.1, also in `model` itself (notebooks read
/// `cfg["model"]["width"]`).
#[pyfunction]
fn run_config(dir: PathBuf) -> PyResult<String> {
    let run = RunDir::open(&dir).map_err(err)?;
    let cfg = run.read_config().map_err(err)?;
    let to_py = |e: serde_json::Error| GrokscopeError::new_err(e.to_string());
    let mut json = serde_json::to_value(&*cfg).map_err(to_py)?;
    if let Some(model) = json.get_mut("model").and_then(|m| m.as_object_mut()) {
        if let Some(mlp) = model.get("mlp").and_then(|m| m.as_object()).cloned() {
            for (k, v) in mlp {
                model.entry(k).or_insert(v);
            }
        }
    }
    serde_json::to_string(&json).map_err(to_py)
}

/// The settings of every model of a run's fleet, as JSON (a list of objects).
#[pyfunction]
fn fleet(dir: PathBuf) -> PyResult<String> {
    let run = RunDir::open(&dir).map_err(err)?;
    let cfg = run.read_config().map_err(err)?;
    serde_json::to_string(&cfg.fleet()).map_err(|e| GrokscopeError::new_err(e.to_string()))
}

/// Per-neuron analysis and pruning sweeps into `DIR/analysis/`; returns that directory.
#[pyfunction]
#[pyo3(signature = (dir, model = None, force = false))]
fn analyze(py: Python<'_>, dir: PathBuf, model: Option<usize>, force: bool) -> PyResult<String> {
    py.allow_threads(|| {
        let mut run = rundir::load_run(&dir)?;
        grokscope::analyze::analyze_run(&mut run, model, force)?;
        Ok(dir.join("analysis").display().to_string())
    })
    .map_err(err)
}

/// A pruning sweep in `order` (`ascending`, `descending`, `random`); returns its CSV's path.
#[pyfunction]
#[pyo3(signature = (dir, order, model = None, seed = 0, force = false))]
fn prune(
    py: Python<'_>,
    dir: PathBuf,
    order: &str,
    model: Option<usize>,
    seed: u64,
    force: bool,
) -> PyResult<String> {
    let order = match order {
        "ascending" => Order::Ascending,
        "descending" => Order::Descending,
        "random" => Order::Random,
        o => {
            return Err(GrokscopeError::new_err(format!(
                "order {o:?}: expected ascending, descending or random"
            )))
        }
    };
    py.allow_threads(|| {
        let mut run = rundir::load_run(&dir)?;
        let (path, _) = grokscope::analyze::write_prune(&mut run, model, order, seed, force)?;
        Ok(path.display().to_string())
    })
    .map_err(err)
}

/// Figures and report.html of a run or sweep directory; returns report.html's path.
#[pyfunction]
#[pyo3(signature = (dir, force = true))]
fn report(py: Python<'_>, dir: PathBuf, force: bool) -> PyResult<String> {
    py.allow_threads(|| grokscope::report::report(&dir, force))
        .map(|p| p.display().to_string())
        .map_err(err)
}

/// Runs the sweep `spec` (a sweep file's text) in `out` with `workers` workers (threads on
/// the shared directory, as several `grokscope sweep run` processes would); returns `out`.
/// `progress(done, total)` (runs) is called a few times a second; Ctrl-C stops every worker
/// after its current step (the sweep resumes when run again) and raises KeyboardInterrupt.
#[pyfunction]
#[pyo3(signature = (spec, out, workers = 1, progress = None))]
fn sweep(
    py: Python<'_>,
    spec: &str,
    out: PathBuf,
    workers: usize,
    progress: Option<PyObject>,
) -> PyResult<String> {
    if !(1..=1024).contains(&workers) {
        return Err(GrokscopeError::new_err(format!(
            "workers = {workers}: expected 1 to 1024"
        )));
    }
    let plan = grokscope::sweep::Plan::from_text(spec).map_err(err)?;
    let call = SWEEP_CALLS.fetch_add(1, Ordering::SeqCst);
    let active = Active::new();
    let stop: &AtomicUsize = &active.0;
    let done = AtomicUsize::new(0);
    let total = AtomicUsize::new(plan.points.len());
    let mut raised: Option<PyErr> = None;
    let result: grokscope::Result<()> = py.allow_threads(|| {
        std::thread::scope(|scope| {
            let handles: Vec<_> = (0..workers)
                .map(|w| {
                    let (plan, out, done, total) = (&plan, &out, &done, &total);
                    scope.spawn(move || {
                        let opts = grokscope::sweep::WorkerOptions {
                            name: Some(format!("python-{}-{call}-{w}", std::process::id())),
                            ..Default::default()
                        };
                        grokscope::sweep::run(plan, out, None, &opts, stop, &mut |p| {
                            done.fetch_max(p.runs_done, Ordering::SeqCst);
                            total.store(p.runs_total, Ordering::SeqCst);
                        })
                        .map(|_| ())
                    })
                })
                .collect();
            // This thread watches: Ctrl-C and progress, a few times a second.
            while !handles.iter().all(|h| h.is_finished()) {
                std::thread::sleep(Duration::from_millis(100));
                Python::with_gil(|py| {
                    let (d, t) = (done.load(Ordering::SeqCst), total.load(Ordering::SeqCst));
                    let r = py.check_signals().and_then(|_| match &progress {
                        Some(cb) => cb.call1(py, (d, t)).map(|_| ()),
                        None => Ok(()),
                    });
                    if let Err(e) = r {
                        stop.store(2, Ordering::SeqCst);
                        raised.get_or_insert(e);
                    }
                });
            }
            handles
                .into_iter()
                .map(|h| {
                    h.join().unwrap_or_else(|_| {
                        Err(grokscope::Error::Config("a sweep worker panicked".into()))
                    })
                })
                .collect::<grokscope::Result<Vec<()>>>()
                .map(|_| ())
        })
    });
    let stopped = format!(
        "the sweep in {} was stopped; run it again to continue",
        out.display()
    );
    if let Some(e) = raised {
        return Err(if e.is_instance_of::<PyKeyboardInterrupt>(py) {
            PyKeyboardInterrupt::new_err(stopped)
        } else {
            e
        });
    }
    result.map_err(err)?;
    if stop.load(Ordering::SeqCst) != 0 {
        return Err(PyKeyboardInterrupt::new_err(stopped));
    }
    if let Some(cb) = &progress {
        let t = total.load(Ordering::SeqCst);
        cb.call1(py, (t, t))?;
    }
    Ok(out.display().to_string())
}

/// Reads a run's metrics back with every check the CLI makes (raises on a bad file).
#[pyfunction]
fn check_history(py: Python<'_>, dir: PathBuf) -> PyResult<()> {
    py.allow_threads(|| {
        let run = RunDir::open(&dir)?;
        let cfg = run.read_config()?;
        run.read_history(cfg.fleet().len()).map(|_| ())
    })
    .map_err(err)
}

/// Whether `dir` is a sweep directory.
#[pyfunction]
fn is_sweep(dir: PathBuf) -> bool {
    grokscope::sweep::store::is_sweep(Path::new(&dir))
}

// ============================================================================================
// Pure functions over arrays (issue 23, "Python for people with their own arrays"): the
// Fourier IPR of weight vectors, the phase of accuracies and the dataset of a config, each
// computed by the library itself for `grokscope.ipr`, `grokscope.neuron_ipr`,
// `grokscope.phase` and `grokscope.dataset` (python/grokscope/_arrays.py). Arrays travel as
// little-endian bytes (numpy's `tobytes`), since the abi3 build has no buffer protocol.
// ============================================================================================

/// The f32 values of `data` (little-endian), checked to be whole vectors of length `p`.
fn f32_vectors(data: &[u8], p: usize) -> PyResult<Vec<f32>> {
    if p == 0 {
        return Err(GrokscopeError::new_err(
            "vectors of length 0 have no Fourier spectrum: give vectors of length p ≥ 1",
        ));
    }
    let whole = p
        .checked_mul(4)
        .is_some_and(|w| data.len().is_multiple_of(w));
    if !whole {
        return Err(GrokscopeError::new_err(format!(
            "{} bytes are not whole float32 vectors of length {p}",
            data.len()
        )));
    }
    Ok(data
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect())
}

/// The Fourier `IPR_2` (SCIENCE.md §4) of each length-`p` vector of `data` (float32,
/// little-endian, the vectors one after another), by the library's `model::ipr::Ipr::of`:
/// `None` for an all-zero vector (no IPR), NaN for a vector with a NaN or infinite entry.
#[pyfunction]
fn ipr_vectors(py: Python<'_>, data: &[u8], p: usize) -> PyResult<Vec<Option<f64>>> {
    let x = f32_vectors(data, p)?;
    if x.is_empty() {
        return Ok(Vec::new()); // no vectors: no FFT to plan, however long they would be
    }
    Ok(py.allow_threads(|| {
        let mut calc = grokscope::model::ipr::Ipr::new(p);
        x.chunks_exact(p)
            .map(|v| calc.of(v).map(|s| s.ipr))
            .collect()
    }))
}

/// The IPR of each neuron given as `vectors` length-`p` vectors (`data`: float32,
/// little-endian, `[neurons, vectors, p]`): the mean of its vectors' IPRs over the non-zero
/// ones (`model::ipr::mean_of_vectors`, as `neuron_iprs` of the metrics); `None` for a dead
/// neuron (every vector zero).
#[pyfunction]
fn neuron_ipr_vectors(
    py: Python<'_>,
    data: &[u8],
    vectors: usize,
    p: usize,
) -> PyResult<Vec<Option<f64>>> {
    if vectors == 0 {
        return Err(GrokscopeError::new_err(
            "a neuron needs at least one weight vector",
        ));
    }
    let x = f32_vectors(data, p.saturating_mul(vectors))?;
    if x.is_empty() {
        return Ok(Vec::new()); // no neurons: no FFT to plan, however long their vectors
    }
    Ok(py.allow_threads(|| {
        let mut calc = grokscope::model::ipr::Ipr::new(p);
        x.chunks_exact(p * vectors)
            .map(|neuron| {
                grokscope::model::ipr::mean_of_vectors(
                    neuron.chunks_exact(p).map(|v| calc.of(v).map(|s| s.ipr)),
                )
            })
            .collect()
    }))
}

/// The phase names (SCIENCE.md §5, `metrics::phase::classify`) of equally long lists of final
/// accuracies; `mem`, `inv` are `None` where there are no corrupted examples, `clean` where
/// there are no clean ones. The thresholds default to the library's (`Thresholds::default`)
/// and are checked as `eval.threshold` and `eval.full_threshold` are.
#[pyfunction]
#[pyo3(signature = (test, mem, inv, clean, threshold = None, full_threshold = None))]
fn classify_phases(
    test: Vec<f64>,
    mem: Vec<Option<f64>>,
    inv: Vec<Option<f64>>,
    clean: Vec<Option<f64>>,
    threshold: Option<f64>,
    full_threshold: Option<f64>,
) -> PyResult<Vec<&'static str>> {
    use grokscope::metrics::phase::{classify, Thresholds};
    let invalid = |key: &str, why: String| err(grokscope::Error::invalid(key, why));
    let d = Thresholds::default();
    let t = Thresholds {
        hi: threshold.unwrap_or(d.hi),
        full: full_threshold.unwrap_or(d.full),
    };
    if !(t.hi > 0.0 && t.hi <= 1.0) {
        return Err(invalid(
            "threshold",
            format!("must lie in (0, 1] (as eval.threshold), got {}", t.hi),
        ));
    }
    if !(t.full >= t.hi && t.full <= 1.0) {
        return Err(invalid(
            "full_threshold",
            format!(
                "must lie in [threshold, 1] = [{}, 1] (as eval.full_threshold), got {}",
                t.hi, t.full
            ),
        ));
    }
    let n = test.len();
    if [mem.len(), inv.len(), clean.len()] != [n, n, n] {
        return Err(GrokscopeError::new_err(format!(
            "test, mem, inv and clean must be equally long, got {}, {}, {}, {}",
            n,
            mem.len(),
            inv.len(),
            clean.len()
        )));
    }
    let accuracy = |what: &str, i: usize, a: f64| -> PyResult<f64> {
        if (0.0..=1.0).contains(&a) {
            Ok(a)
        } else {
            let at = if n > 1 {
                format!("[{i}]")
            } else {
                String::new()
            };
            Err(invalid(
                what,
                format!("{what}{at} = {a}: an accuracy is a fraction in [0, 1]"),
            ))
        }
    };
    (0..n)
        .map(|i| {
            let test = accuracy("test", i, test[i])?;
            let mem = mem[i].map(|a| accuracy("mem", i, a)).transpose()?;
            let inv = inv[i].map(|a| accuracy("inv", i, a)).transpose()?;
            let clean = clean[i].map(|a| accuracy("clean", i, a)).transpose()?;
            if mem.is_some() != inv.is_some() {
                return Err(invalid(
                    "mem",
                    format!(
                        "mem and inv are both given (the model has corrupted examples) or both missing (it has none), got mem {mem:?} and inv {inv:?}{}",
                        if n > 1 { format!(" at [{i}]") } else { String::new() }
                    ),
                ));
            }
            Ok(classify(test, mem, inv, clean, t).name())
        })
        .collect()
}

/// The dataset that the config `text` with `sets` trains on, built as `Checked::setup` builds
/// it (`Checked::dataset`: the split dataset, and its corruption per model of the fleet)
/// without the network: `(n_train, models, inputs_name, inputs_shape, inputs, labels,
/// train_labels, corrupted)`, the arrays as little-endian bytes laid out as in
/// `dataset.safetensors` (inputs `pairs` u32 `[N, 2]` or `features` f32 `[N, dim]`, training
/// examples first; true labels u32 `[N]`; training labels u32 `[models, n_train]`; corrupted
/// u8 `[models, n_train]`).
#[pyfunction]
#[pyo3(signature = (text, sets, source = "the config".to_string()))]
#[allow(clippy::type_complexity)]
fn dataset<'py>(
    py: Python<'py>,
    text: &str,
    sets: Vec<String>,
    source: String,
) -> PyResult<(
    usize,
    usize,
    &'static str,
    Vec<usize>,
    Bound<'py, pyo3::types::PyBytes>,
    Bound<'py, pyo3::types::PyBytes>,
    Bound<'py, pyo3::types::PyBytes>,
    Bound<'py, pyo3::types::PyBytes>,
)> {
    use pyo3::types::PyBytes;
    let blamed = |e: grokscope::Error| GrokscopeError::new_err(blamed_message(&e, &sets, &source));
    let cfg = Config::from_toml(text, &sets).map_err(blamed)?;
    let cfg = cfg.check().map_err(blamed)?;
    let a = py
        .allow_threads(|| {
            let (split, labels) = cfg.dataset(&cfg.fleet())?;
            Ok(grokscope::rundir::dataset::dataset_arrays(&split, &labels))
        })
        .map_err(blamed)?;
    Ok((
        a.n_train,
        a.models,
        a.inputs_name,
        a.inputs_shape,
        PyBytes::new(py, &a.inputs),
        PyBytes::new(py, &a.labels),
        PyBytes::new(py, &a.train_labels),
        PyBytes::new(py, &a.corrupted),
    ))
}

// ============================================================================================
// End of the pure functions over arrays.
// ============================================================================================

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("GrokscopeError", m.py().get_type::<GrokscopeError>())?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_function(wrap_pyfunction!(presets, m)?)?;
    m.add_function(wrap_pyfunction!(fleet_axes, m)?)?;
    m.add_function(wrap_pyfunction!(phases, m)?)?;
    m.add_function(wrap_pyfunction!(resolve, m)?)?;
    m.add_function(wrap_pyfunction!(train, m)?)?;
    m.add_function(wrap_pyfunction!(run_config, m)?)?;
    m.add_function(wrap_pyfunction!(fleet, m)?)?;
    m.add_function(wrap_pyfunction!(analyze, m)?)?;
    m.add_function(wrap_pyfunction!(prune, m)?)?;
    m.add_function(wrap_pyfunction!(report, m)?)?;
    m.add_function(wrap_pyfunction!(sweep, m)?)?;
    m.add_function(wrap_pyfunction!(is_sweep, m)?)?;
    m.add_function(wrap_pyfunction!(shutdown, m)?)?;
    m.add_function(wrap_pyfunction!(check_history, m)?)?;
    // The pure functions over arrays (issue 23).
    m.add_function(wrap_pyfunction!(ipr_vectors, m)?)?;
    m.add_function(wrap_pyfunction!(neuron_ipr_vectors, m)?)?;
    m.add_function(wrap_pyfunction!(classify_phases, m)?)?;
    m.add_function(wrap_pyfunction!(dataset, m)?)?;
    Ok(())
}
