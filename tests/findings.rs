//! What a hostile round found (issue 26), each kept as a test: numbers that break tables,
//! files that are not what their names say, sweep directories whose bookkeeping is damaged,
//! staging left by killed merges, the analysis of a diverged or collapsed model.

mod common;
use common::grokscope;

use std::path::Path;

fn ok(args: &[&str], cwd: &Path) -> String {
    let o = grokscope(args, cwd);
    assert!(
        o.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).to_string()
}

fn small(out: &str, extra: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = ["train", "--no-report", "-q", "--out", out]
        .iter()
        .map(|s| s.to_string())
        .collect();
    for s in ["data.p=13", "model.width=16", "train.steps=20"]
        .iter()
        .chain(extra)
    {
        v.push("--set".into());
        v.push(s.to_string());
    }
    v
}

fn args(v: &[String]) -> Vec<&str> {
    v.iter().map(|s| s.as_str()).collect()
}

#[test]
fn huge_and_tiny_values_print_short_in_the_table_and_seed_columns_say_seed() {
    let t = tempfile::tempdir().unwrap();
    let v = small(
        "run",
        &["train.lr=[1e308, 1e-9, 0.001]", "train.weight_decay=0"],
    );
    let out = ok(&args(&v), t.path());
    let header = out.lines().find(|l| l.contains("phase")).unwrap();
    assert!(
        header.contains("ξ seed") && header.contains("init seed"),
        "{header}"
    );
    assert!(out.contains("1e308") && out.contains("1e-9"), "{out}");
    for l in out.lines() {
        assert!(
            l.chars().count() < 200,
            "a table line of {} characters: {l}",
            l.len()
        );
    }
}

#[cfg(unix)]
#[test]
fn a_fifo_in_place_of_the_weights_is_named_not_missing_and_nothing_hangs() {
    let t = tempfile::tempdir().unwrap();
    ok(&args(&small("run", &[])), t.path());
    let w = t.path().join("run/weights.safetensors");
    std::fs::remove_file(&w).unwrap();
    let made = std::process::Command::new("mkfifo")
        .arg(&w)
        .status()
        .unwrap();
    assert!(made.success());
    let o = grokscope(&["analyze", "run"], t.path());
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("weights.safetensors") && err.contains("not a regular file"),
        "{err}"
    );
    assert!(!err.contains("did the run finish"), "{err}");
}

fn sweep(t: &Path) {
    std::fs::write(
        t.join("s.toml"),
        "name = \"f\"\nmax_fleet = 2\n[base]\ndata.p = 11\nmodel.width = 8\ntrain.steps = 10\n[axes]\n\"train.weight_decay\" = [0, 1, 2]\n",
    )
    .unwrap();
    ok(&["sweep", "run", "s.toml", "--out", "sw", "-q"], t);
}

#[test]
fn damaged_sweep_bookkeeping_is_reported_and_refused_by_name() {
    let t = tempfile::tempdir().unwrap();
    sweep(t.path());
    let d = t.path().join("sw");
    // A heartbeat that is not one: status says so and exits 1 (it did exit 0, the worker
    // silently gone).
    std::fs::create_dir_all(d.join("workers")).unwrap();
    std::fs::write(d.join("workers/ghost.json"), "{ garbage").unwrap();
    let o = grokscope(&["sweep", "status", "sw"], t.path());
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("workers/ghost.json") && err.contains("not a worker heartbeat"),
        "{err}"
    );
    std::fs::remove_file(d.join("workers/ghost.json")).unwrap();
    // claims/ replaced by a file: status names it, run refuses with the file named (not a
    // raw OS error).
    let _ = std::fs::remove_dir_all(d.join("claims"));
    std::fs::write(d.join("claims"), "x").unwrap();
    let o = grokscope(&["sweep", "status", "sw"], t.path());
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("claims: not a directory"), "{err}");
    let o = grokscope(&["sweep", "run", "s.toml", "--out", "sw", "-q"], t.path());
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("claims") && err.contains("not a directory") && !err.contains("os error"),
        "{err}"
    );
}

#[test]
fn a_merge_removes_the_staging_left_by_killed_merges() {
    let t = tempfile::tempdir().unwrap();
    sweep(t.path());
    // What `sweep merge --out m` killed mid-way leaves: its staging directory, named by a
    // process that is gone (pid beyond any this machine hands out).
    let left = t.path().join(".m.new.4194999");
    std::fs::create_dir_all(left.join("runs")).unwrap();
    std::fs::write(left.join("runs/000000.json"), "half").unwrap();
    ok(&["sweep", "merge", "--out", "m2", "sw"], t.path());
    assert!(
        !left.exists(),
        "the dead merge's staging directory is still there"
    );
    assert!(t.path().join("m2/plan.json").is_file());
}

#[test]
fn a_diverged_model_gets_no_ipr_and_a_collapsed_one_is_flagged_near_constant() {
    let t = tempfile::tempdir().unwrap();
    // lr 1e30 diverges at once; weight decay 15 at lr 0.05 collapses the weights (Forgetting).
    let v = small(
        "run",
        &[
            "train.lr=[1e30, 0.05]",
            "train.weight_decay=15",
            "train.steps=300",
        ],
    );
    let _ = grokscope(&args(&v), t.path());
    let out = ok(&["analyze", "run"], t.path());
    let lines: Vec<&str> = out.lines().filter(|l| l.starts_with("model ")).collect();
    assert!(
        lines[0].contains("Diverged") && !lines[0].contains("mean IPR"),
        "{out}"
    );
    let summary = std::fs::read_to_string(t.path().join("run/analysis/summary.json")).unwrap();
    let json: serde_json::Value = serde_json::from_str(&summary).unwrap();
    assert!(json[0]["mean_ipr"].is_null() && json[0]["frac_near_constant"].is_null());
    assert_eq!(
        json[0]["dominant_frequencies"].as_array().map(Vec::len),
        Some(0)
    );
    // The collapsed model: its near-constant share is reported beside its IPR.
    let near = json[1]["frac_near_constant"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&near), "{summary}");
    assert!(lines[1].contains("near-constant"), "{out}");
}

#[test]
fn a_run_is_analysed_into_another_directory_and_left_as_it_was() {
    let t = tempfile::tempdir().unwrap();
    ok(&args(&small("run", &[])), t.path());
    let listing = |d: &Path| {
        let mut v: Vec<(String, Vec<u8>)> = std::fs::read_dir(d)
            .unwrap()
            .flatten()
            .filter(|e| e.path().is_file())
            .map(|e| {
                let n = e.file_name().to_string_lossy().to_string();
                (n, std::fs::read(e.path()).unwrap())
            })
            .collect();
        v.sort();
        v
    };
    let before = listing(&t.path().join("run"));
    let out = ok(&["analyze", "run", "--out", "mine/an"], t.path());
    assert!(out.contains("Written to mine/an/"), "{out}");
    ok(
        &["prune", "run", "--out", "mine/pr", "--order", "random"],
        t.path(),
    );
    assert!(t.path().join("mine/an/neurons.csv").is_file());
    assert!(t.path().join("mine/pr/prune-random.csv").is_file());
    assert!(!t.path().join("run/analysis").exists());
    assert!(
        before == listing(&t.path().join("run")),
        "the run was changed"
    );
}
