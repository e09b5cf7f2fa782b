//! The `grokscope` binary: a small run's outputs, and every bad input giving a clear error,
//! a non-zero exit and nothing written.

mod common;
use common::grokscope;

use grokscope::train::Engine;
use std::path::Path;

const SMALL: &[&str] = &[
    "--set",
    "data.p=13",
    "--set",
    "model.width=16",
    "--set",
    "train.epochs=20",
    "--set",
    "eval.every=5",
];

fn small_args<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec!["train", "-q"];
    v.extend_from_slice(SMALL);
    v.extend_from_slice(extra);
    v
}

#[test]
fn a_run_writes_its_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let out = grokscope(&small_args(&["--out", "run1"]), tmp.path());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("Coexistence")
            || stdout.contains("Memorization")
            || stdout.contains("Inversion")
            || stdout.contains("Confusion")
            || stdout.contains("Forgetting")
    );
    let dir = tmp.path().join("run1");
    // The resolved config reproduces the run.
    let cfg = std::fs::read_to_string(dir.join("config.toml")).unwrap();
    assert!(cfg.contains("p = 13") && cfg.contains("weight_decay = [0.0, 5.0, 15.0]"));
    // metrics.csv: header + 3 models × (steps 0, 5, 10, 15, 20).
    let csv = std::fs::read_to_string(dir.join("metrics.csv")).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert!(lines[0].starts_with("model,step,epoch,train_loss"));
    assert_eq!(lines.len(), 1 + 3 * 5);
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap();
    let models = summary["models"].as_array().unwrap();
    assert_eq!(models.len(), 3);
    assert_eq!(models[1]["weight_decay"], 5.0);
    assert!(models[0]["final"]["test_acc"].is_number());
    let n_train = summary["n_train"].as_u64().unwrap() as f64;
    assert_eq!(models[0]["n_corrupted"], (0.35 * n_train).floor() as u64);
    // weights.safetensors holds U, V [M, N, p] and W [M, p, N].
    let bytes = std::fs::read(dir.join("weights.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    assert_eq!(st.tensor("U").unwrap().shape(), &[3, 16, 13]);
    assert_eq!(st.tensor("V").unwrap().shape(), &[3, 16, 13]);
    assert_eq!(st.tensor("W").unwrap().shape(), &[3, 13, 16]);
    // The same --out again is refused and leaves the first run untouched.
    let again = grokscope(&small_args(&["--out", "run1"]), tmp.path());
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));
    assert_eq!(
        std::fs::read_to_string(dir.join("metrics.csv")).unwrap(),
        csv
    );
}

/// Runs with a bad input; asserts a non-zero exit, a message naming the problem, and no
/// output directory.
fn refused(args: &[&str], config: Option<&str>, expect: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let mut v: Vec<&str> = vec!["train", "-q", "--out", "out"];
    if let Some(text) = config {
        std::fs::write(tmp.path().join("c.toml"), text).unwrap();
        v.extend_from_slice(&["--config", "c.toml"]);
    }
    v.extend_from_slice(args);
    let out = grokscope(&v, tmp.path());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{args:?} {config:?} should fail");
    assert!(
        err.contains(expect),
        "{args:?} {config:?}: expected {expect:?} in {err:?}"
    );
    assert!(
        !tmp.path().join("out").exists(),
        "nothing written for {args:?}"
    );
}

#[test]
fn bad_inputs_are_refused() {
    refused(
        &["--set", "data.train_fraction=1.5"],
        None,
        "train_fraction",
    );
    refused(&["--set", "data.train_fraction=0"], None, "train_fraction");
    refused(&["--set", "data.corruption=1.0"], None, "corruption");
    refused(&["--set", "data.corruption=[0.1,-0.2]"], None, "corruption");
    refused(&["--set", "data.p=1"], None, "data.p");
    refused(
        &["--set", "data.p=12", "--set", "data.operation=div"],
        None,
        "prime",
    );
    refused(&["--set", "model.width=0"], None, "model.width");
    refused(
        &["--set", "data.operation=pow"],
        None,
        "unknown variant `pow`",
    );
    refused(
        &["--set", "train.weight_dekay=5"],
        None,
        "unknown field `weight_dekay`",
    );
    refused(&["--set", "train.weight_decay=[]"], None, "empty");
    refused(&["--set", "model.dropout=1.0"], None, "dropout");
    refused(&["--set", "train.lr=0"], None, "train.lr");
    refused(
        &["--set", "train.epochs=10", "--set", "train.steps=10"],
        None,
        "not both",
    );
    refused(&["--set", "nonsense"], None, "KEY=VALUE");
    refused(&[], Some("[data\np = 13"), "c.toml: line 1, column 6");
    refused(
        &[],
        Some("[data]\np = \"many\""),
        "c.toml: line 2, column 5: invalid type: string \"many\"",
    );
    refused(
        &["--set", "train.weight_decay=[\"a\"]"],
        None,
        "invalid type: string",
    );
    refused(&[], Some("[unknown]\nx = 1"), "unknown field `unknown`");
    refused(&["--set", "train.batch_size=100000"], None, "batch_size");
    let tf = ["--set", "model.kind=transformer"];
    refused(
        &[&tf[..], &["--set", "model.transformer.mup_s=nan"]].concat(),
        None,
        "mup_s",
    );
    refused(
        &[&tf[..], &["--set", "model.transformer.heads=3"]].concat(),
        None,
        "divisible",
    );
    refused(
        &[&tf[..], &["--set", "model.transformer.init=xavier"]].concat(),
        None,
        "unknown variant `xavier`",
    );
}

#[test]
fn a_missing_config_file_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let out = grokscope(&["train", "--config", "nope.toml"], tmp.path());
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("nope.toml"));
}

#[test]
fn an_unwritable_output_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("file"), "x").unwrap();
    // A directory below a regular file cannot be created (as root too).
    let out = grokscope(&small_args(&["--out", "file/run"]), tmp.path());
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("file"));
    assert_eq!(
        std::fs::read_to_string(tmp.path().join("file")).unwrap(),
        "x"
    );
}

#[test]
fn presets_parse_and_validate() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs");
    let (mut n, mut sweeps) = (0, 0);
    for sub in ["", "paper"] {
        for e in std::fs::read_dir(dir.join(sub)).unwrap() {
            let path = e.unwrap().path();
            if path.extension().is_some_and(|x| x == "toml") {
                let text = std::fs::read_to_string(&path).unwrap();
                if text.contains("[axes]") {
                    // A sweep: every grid point is expanded and validated.
                    let plan = grokscope::sweep::Plan::from_text(&text)
                        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                    assert!(plan.points.len() >= if sub == "paper" { 25 } else { 2 });
                    sweeps += 1;
                } else {
                    let cfg = grokscope::config::Config::from_toml(&text, &[])
                        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                    cfg.check()
                        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                    n += 1;
                }
            }
        }
    }
    assert!(n >= 8, "default + seven paper presets, found {n}");
    assert_eq!(
        sweeps, 13,
        "six phase diagrams (four of the MLP, two of the Transformer), their quick variants and configs/sweep-bench.toml"
    );
}

#[test]
fn analyze_and_prune_a_run() {
    let tmp = tempfile::tempdir().unwrap();
    let out = grokscope(
        &small_args(&["--out", "run", "--set", "eval.checkpoint_every=10"]),
        tmp.path(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run = tmp.path().join("run");
    assert!(run.join("checkpoints/step-00000010.safetensors").exists());
    assert!(run.join("checkpoints/step-00000020.safetensors").exists());
    let hist = std::fs::read_to_string(run.join("ipr_hist.csv")).unwrap();
    let row: Vec<u32> = hist
        .lines()
        .nth(1)
        .unwrap()
        .split(',')
        .skip(2)
        .map(|x| x.parse().unwrap())
        .collect();
    assert_eq!(
        row.iter().sum::<u32>(),
        16,
        "every living neuron in one bin"
    );

    // Reading the run back reproduces its final accuracies.
    let mut loaded = grokscope::rundir::load_run(&run).unwrap();
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("summary.json")).unwrap()).unwrap();
    let evals = loaded.setup.network.eval_all().unwrap();
    let s = &loaded.setup;
    for (i, ev) in evals.iter().enumerate() {
        let a = grokscope::metrics::accuracies(
            13,
            s.network.loss(),
            &s.split,
            &s.labels[i].labels,
            &s.labels[i].corrupted,
            ev,
        );
        let fin = &summary["models"][i]["final"];
        assert!((a.test_acc - fin["test_acc"].as_f64().unwrap()).abs() < 1e-12);
        assert!((a.train_acc - fin["train_acc"].as_f64().unwrap()).abs() < 1e-12);
    }

    let out = grokscope(&["analyze", "run"], tmp.path());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("model 2:") && stdout.contains("mean IPR"));
    for f in [
        "neurons.csv",
        "spectra.csv",
        "summary.json",
        "prune-ascending.csv",
        "prune-descending.csv",
        "prune-random.csv",
    ] {
        assert!(run.join("analysis").join(f).exists(), "{f}");
    }
    let neurons = std::fs::read_to_string(run.join("analysis/neurons.csv")).unwrap();
    assert_eq!(neurons.lines().count(), 1 + 3 * 16);
    let prune = std::fs::read_to_string(run.join("analysis/prune-ascending.csv")).unwrap();
    assert_eq!(prune.lines().count(), 1 + 3 * 17, "m = 0 … 16 for 3 models");
    // Again: refused without --force, the files untouched.
    let again = grokscope(&["analyze", "run"], tmp.path());
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("--force"));
    assert_eq!(
        std::fs::read_to_string(run.join("analysis/neurons.csv")).unwrap(),
        neurons
    );
    assert!(grokscope(&["analyze", "run", "--force"], tmp.path())
        .status
        .success());

    let out = grokscope(
        &["prune", "run", "--order", "descending", "--model", "1"],
        tmp.path(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let p1 = std::fs::read_to_string(run.join("analysis/prune-descending-model1.csv")).unwrap();
    assert_eq!(p1.lines().count(), 1 + 17);
    assert!(p1.lines().skip(1).all(|l| l.starts_with("1,")));
}

#[test]
fn analysis_bad_inputs_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir(tmp.path().join("empty")).unwrap();
    for args in [
        vec!["analyze", "empty"],
        vec!["prune", "empty"],
        vec!["analyze", "missing"],
    ] {
        let out = grokscope(&args, tmp.path());
        assert!(!out.status.success(), "{args:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("not a grokscope run directory"),
            "{args:?}"
        );
    }
    assert!(!tmp.path().join("empty/analysis").exists());
    let out = grokscope(&small_args(&["--out", "run"]), tmp.path());
    assert!(out.status.success());
    for args in [
        vec!["analyze", "run", "--model", "3"],
        vec!["prune", "run", "--model", "7"],
    ] {
        let out = grokscope(&args, tmp.path());
        assert!(!out.status.success(), "{args:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("out of range"),
            "{args:?}"
        );
    }
    let out = grokscope(&["prune", "run", "--order", "sideways"], tmp.path());
    assert!(!out.status.success());
    let out = grokscope(&["analytic", "--p", "2"], tmp.path());
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("p ≥ 3"));
    // Weights of another network: an error naming the file, exit 2, nothing written.
    let out = grokscope(
        &small_args(&["--out", "wide", "--set", "model.width=24", "--no-report"]),
        tmp.path(),
    );
    assert!(out.status.success());
    std::fs::copy(
        tmp.path().join("wide/weights.safetensors"),
        tmp.path().join("run/weights.safetensors"),
    )
    .unwrap();
    for args in [vec!["analyze", "run"], vec!["prune", "run"]] {
        let out = grokscope(&args, tmp.path());
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("run/weights.safetensors")
                && err.contains("written for width = 24, but the config gives width = 16"),
            "{err}"
        );
    }
    assert!(!tmp.path().join("run/analysis").exists());
}

/// `--set train.steps=N` on a config that gives epochs (the built-in default) replaces them,
/// with a note; giving both through `--set` stays an error.
#[test]
fn a_length_override_replaces_the_other_length() {
    let tmp = tempfile::tempdir().unwrap();
    let args = [
        "train",
        "-q",
        "--no-report",
        "--set",
        "data.p=11",
        "--set",
        "model.width=8",
        "--set",
        "train.steps=7",
        "--out",
        "run",
    ];
    let out = grokscope(&args, tmp.path());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("replaces the config's train.epochs"));
    let cfg = std::fs::read_to_string(tmp.path().join("run/config.toml")).unwrap();
    assert!(
        cfg.contains("steps = 7") && !cfg.contains("epochs ="),
        "{cfg}"
    );
    let both = grokscope(
        &[
            "train",
            "--set",
            "train.steps=7",
            "--set",
            "train.epochs=2",
            "--out",
            "b",
        ],
        tmp.path(),
    );
    assert_eq!(both.status.code(), Some(2));
    assert!(!tmp.path().join("b").exists());
}

/// Run directories stay readable across versions: the resolved config.toml of a default run
/// written before `[report]`, `rescale_optim` and `dataset.safetensors` existed still has the
/// training fingerprint its summary.json recorded (new keys are written only when set).
#[test]
fn the_training_fingerprint_of_old_runs_is_unchanged() {
    let text = include_str!("fixtures/config-2026-11-29.toml");
    let cfg = grokscope::config::Config::from_toml(text, &[])
        .unwrap()
        .check()
        .unwrap();
    assert_eq!(cfg.legacy_training_fingerprint(), "4cce05540363c416");
    assert!(cfg.trained_by("4cce05540363c416"));
    // Since the run's length left the fingerprint: the same at every length, and a file of
    // the old form still trained by it.
    let longer = grokscope::config::Config::from_toml(text, &["train.steps=123456".into()])
        .unwrap()
        .check()
        .unwrap();
    assert_eq!(longer.training_fingerprint(), cfg.training_fingerprint());
    assert!(!longer.trained_by("4cce05540363c416"));
}
