//! Sweeps: fleet grouping, crash safety under SIGKILL, shards and merge, plan mismatches.

mod common;
use common::grokscope;

use grokscope::sweep::spec::group_fleets;
use grokscope::sweep::Plan;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// 8 runs of about 0.3 s each, one per fleet, so that a kill lands between commits.
const SLOW: &str = r#"
name = "slow"
max_fleet = 1
[base]
data.p = 41
model.width = 128
train.epochs = 1500
eval.every = 100
[axes]
"data.train_fraction" = [0.4, 0.7]
"data.corruption" = [0.2, 0.5]
"train.weight_decay" = [0, 3]
"#;

#[test]
fn grouping_covers_every_run_once() {
    let text = r#"
name = "g"
max_fleet = 5
[base]
data.p = 11
model.width = 8
train.epochs = 3
[axes]
data.train_fraction = { from = 0.2, to = 0.8, count = 4 }
data.corruption = { from = 0.0, to = 0.6, count = 3 }
train.weight_decay = [0, 1, 2]
model.init_seed = [0, 1]
model.batchnorm = [false, true]
"#;
    let plan = Plan::from_text(text).unwrap();
    assert_eq!(plan.points.len(), 4 * 3 * 3 * 2 * 2);
    let pts: Vec<_> = plan.points.iter().collect();
    let fleets = group_fleets(&pts, 5);
    let mut seen = vec![0; plan.points.len()];
    for f in &fleets {
        assert!(f.runs.len() <= 5 && !f.runs.is_empty());
        assert_eq!(f.runs.len(), f.specs.len());
        for (&r, s) in f.runs.iter().zip(&f.specs) {
            seen[r] += 1;
            let cfg = &plan.points[r].cfg;
            // Members share everything but the fleet axes; the spec carries the run's values.
            assert_eq!(cfg.data.train_fraction, f.cfg.data.train_fraction);
            assert_eq!(cfg.model.mlp.batchnorm, f.cfg.model.mlp.batchnorm);
            let own = cfg.fleet().remove(0);
            assert_eq!(
                (own.corruption, own.weight_decay, own.init_seed),
                (s.corruption, s.weight_decay, s.init_seed)
            );
        }
    }
    assert!(
        seen.iter().all(|&c| c == 1),
        "every run exactly once: {seen:?}"
    );
    // 4 α × 2 BatchNorm settings = 8 groups of 18 runs, in fleets of ≤ 5: 8 × 4.
    assert_eq!(fleets.len(), 8 * 4);
    // Ranges expand to exact decimals.
    assert_eq!(plan.spec.axes[1].1[1].as_float(), Some(0.4));
}

fn sweep_dir(tmp: &Path, name: &str, args: &[&str]) -> String {
    let mut v = vec!["sweep", "run", "slow.toml", "--out", name, "-q"];
    v.extend_from_slice(args);
    let out = grokscope(&v, tmp);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::read_to_string(tmp.join(name).join("results.csv")).unwrap()
}

fn count_runs(dir: &Path) -> usize {
    std::fs::read_dir(dir.join("runs"))
        .map(|d| {
            d.filter(|e| {
                e.as_ref()
                    .unwrap()
                    .path()
                    .extension()
                    .is_some_and(|x| x == "json")
            })
            .count()
        })
        .unwrap_or(0)
}

#[test]
fn killed_and_resumed_sweeps_match_an_uninterrupted_one() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    std::fs::write(t.join("slow.toml"), SLOW).unwrap();
    let reference = sweep_dir(t, "ref", &[]);
    assert_eq!(reference.lines().count(), 1 + 8);

    // Kill with SIGKILL twice, at different points, then let it finish.
    let dir = t.join("killed");
    for kill_after in [2, 5] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_grokscope"))
            .args(["sweep", "run", "slow.toml", "--out", "killed", "-q"])
            .current_dir(t)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let start = Instant::now();
        while count_runs(&dir) < kill_after {
            assert!(start.elapsed() < Duration::from_secs(120), "sweep too slow");
            assert!(
                child.try_wait().unwrap().is_none(),
                "finished before the kill"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
        child.kill().unwrap(); // SIGKILL on Unix
        child.wait().unwrap();
        let n = count_runs(&dir);
        assert!(
            (kill_after..8).contains(&n),
            "killed mid-run with {n} runs committed"
        );
        // Every committed record is whole.
        for e in std::fs::read_dir(dir.join("runs")).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "json") {
                let v: serde_json::Value =
                    serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
                assert!(v["final"]["test_acc"].is_number());
            }
        }
    }
    let resumed = sweep_dir(t, "killed", &[]);
    assert_eq!(
        resumed, reference,
        "same table, no run missing or duplicated"
    );
    // Resuming a finished sweep changes nothing.
    assert_eq!(sweep_dir(t, "killed", &[]), reference);
}

#[test]
fn shards_merge_to_the_whole_sweep() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    std::fs::write(t.join("slow.toml"), SLOW.replace("1500", "300")).unwrap();
    let whole = sweep_dir(t, "whole", &[]);
    let mut parts = Vec::new();
    for i in 1..=3 {
        let name = format!("s{i}");
        let part = sweep_dir(t, &name, &["--shard", &format!("{i}/3")]);
        parts.push(part.lines().count() - 1);
    }
    assert_eq!(parts, vec![3, 3, 2]);
    let out = grokscope(&["sweep", "merge", "--out", "merged", "s1", "s2", "s3"], t);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let merged = std::fs::read_to_string(t.join("merged/results.csv")).unwrap();
    assert_eq!(merged, whole);
    assert_eq!(
        std::fs::read_to_string(t.join("merged/phase_grid.txt")).unwrap(),
        std::fs::read_to_string(t.join("whole/phase_grid.txt")).unwrap()
    );
    // Overlapping shards are refused.
    let out = grokscope(&["sweep", "merge", "--out", "m2", "s1", "whole"], t);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("overlap"));
    assert!(!t.join("m2").exists());
    // A shard directory resumed as another shard is refused.
    let out = grokscope(
        &["sweep", "run", "slow.toml", "--out", "s1", "--shard", "2/3"],
        t,
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("different plan"));
    // Bad shard syntax.
    let out = grokscope(
        &["sweep", "run", "slow.toml", "--out", "x", "--shard", "4/3"],
        t,
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("1 ≤ i ≤ n"));
}

#[test]
fn a_changed_plan_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let small = SLOW
        .replace("1500", "20")
        .replace("41", "13")
        .replace("128", "8");
    std::fs::write(t.join("slow.toml"), &small).unwrap();
    sweep_dir(t, "d", &[]);
    let before = std::fs::read_to_string(t.join("d/results.csv")).unwrap();
    std::fs::write(t.join("slow.toml"), small.replace("[0, 3]", "[0, 4]")).unwrap();
    let out = grokscope(&["sweep", "run", "slow.toml", "--out", "d"], t);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("different plan"), "{err}");
    assert_eq!(
        std::fs::read_to_string(t.join("d/results.csv")).unwrap(),
        before
    );
    // Comments and layout do not change the plan.
    std::fs::write(t.join("slow.toml"), format!("# a comment\n{small}")).unwrap();
    assert!(
        grokscope(&["sweep", "run", "slow.toml", "--out", "d", "-q"], t)
            .status
            .success()
    );
    // A directory that is not a sweep is refused.
    std::fs::create_dir(t.join("other")).unwrap();
    std::fs::write(t.join("other/file"), "x").unwrap();
    let out = grokscope(&["sweep", "run", "slow.toml", "--out", "other"], t);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a sweep directory"));
}

#[test]
fn zipped_axes_vary_together() {
    let text = r#"
name = "z"
[base]
data.p = 11
model.width = 8
[axes]
"data.corruption" = [0.0, 0.2]
"train.batch_size,train.steps,eval.every" = [[8, 64, 16], ["full", 4, 1]]
"#;
    let plan = Plan::from_text(text).unwrap();
    assert_eq!(plan.points.len(), 4);
    assert_eq!(
        plan.axes(),
        vec![
            "data.corruption",
            "train.batch_size",
            "train.steps",
            "eval.every"
        ]
    );
    let p1 = &plan.points[1].cfg;
    assert_eq!(
        (p1.train.batch_size, p1.train.steps, p1.eval.every),
        (None, Some(4), 1)
    );
    let p2 = &plan.points[2].cfg;
    assert_eq!(
        (p2.train.batch_size, p2.train.steps, p2.eval.every),
        (Some(8), Some(64), 16)
    );
    // Different batch sizes cannot share a fleet; corruption levels can.
    let pts: Vec<_> = plan.points.iter().collect();
    let fleets = group_fleets(&pts, 64);
    assert_eq!(fleets.len(), 2);
    assert!(fleets.iter().all(|f| f.runs.len() == 2));
    let bad = text.replace("[8, 64, 16]", "[8, 64]");
    let err = Plan::from_text(&bad).err().unwrap().to_string();
    assert!(err.contains("3-element lists"), "{err}");
}

#[test]
fn bad_sweep_files_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    for (text, expect) in [
        ("name = \"x\"\n", "missing field `axes`"),
        ("[axes]\n", "at least one axis"),
        ("[axes]\n\"data.corruption\" = []\n", "empty"),
        (
            "[axes]\n\"data.corruption\" = { from = 0.1, to = 0.5 }\n",
            "count",
        ),
        ("[axes]\n\"data.corruption\" = [0.1, 1.5]\n", "corruption"),
        (
            "[axes]\n\"data.nonsense\" = [1, 2]\n",
            "unknown field `nonsense`",
        ),
        (
            "[base]\ntrain.weight_decay = [0, 5]\n[axes]\n\"data.corruption\" = [0.1]\n",
            "under [axes]",
        ),
        ("[axes\n", "bad.toml: line 1, column 6"),
    ] {
        std::fs::write(t.join("bad.toml"), text).unwrap();
        for cmd in ["plan", "run"] {
            let mut args = vec!["sweep", cmd, "bad.toml"];
            if cmd == "run" {
                args.extend(["--out", "o"]);
            }
            let out = grokscope(&args, t);
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(!out.status.success(), "{text:?}");
            assert!(
                err.contains(expect),
                "{text:?}: expected {expect:?} in {err}"
            );
            assert!(!t.join("o").exists());
        }
    }
}

/// Checkpoints are written by the library's training loop: a sweep writes one file per run
/// and checkpoint step, and each holds exactly the weights the same model has at that step
/// when trained alone into a run directory.
#[test]
fn sweep_checkpoints_hold_each_runs_weights() {
    use grokscope::config::Config;
    let text = r#"
name = "ckpt"
[base]
data.p = 11
model.width = 16
train.steps = 20
eval.checkpoint_every = 10
[axes]
"data.corruption" = [0.1, 0.3]
"train.weight_decay" = [0, 2]
"#;
    let tmp = tempfile::tempdir().unwrap();
    let plan = Plan::from_text(text).unwrap();
    let dir = tmp.path().join("s");
    grokscope::sweep::run_all(&plan, &dir, None, &mut |_| {}).unwrap();
    let read = |path: &Path, name: &str| -> (Vec<usize>, Vec<u8>) {
        let bytes = std::fs::read(path).unwrap_or_else(|_| panic!("{}", path.display()));
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let t = st.tensor(name).unwrap();
        (t.shape().to_vec(), t.data().to_vec())
    };
    for run in 0..4 {
        for step in [10, 20] {
            let p = dir.join(format!(
                "checkpoints/run-{run:06}/step-{step:08}.safetensors"
            ));
            assert_eq!(read(&p, "U").0, vec![1, 16, 11], "one model per file");
        }
    }
    // Run 3 (ξ = 0.3, wd = 2) alone, through the library into a run directory.
    let cfg = Config::from_toml(
        "name = \"alone\"\n[data]\np = 11\ncorruption = 0.3\n[model]\nwidth = 16\n[train]\nsteps = 20\nweight_decay = 2\n[eval]\ncheckpoint_every = 10\n",
        &[],
    )
    .unwrap()
    .check()
    .unwrap();
    common::train_dir(&cfg, &tmp.path().join("alone"));
    for step in [10, 20] {
        let name = format!("step-{step:08}.safetensors");
        let alone = tmp.path().join("alone/checkpoints").join(&name);
        let swept = dir.join("checkpoints/run-000003").join(&name);
        for t in ["U", "V", "W"] {
            assert_eq!(read(&alone, t), read(&swept, t), "{t} at step {step}");
        }
    }
    // Shards keep their runs' checkpoints, and a merge carries them over.
    use grokscope::sweep::Shard;
    let shards: Vec<_> = [1, 2]
        .iter()
        .map(|&i| {
            let d = tmp.path().join(format!("shard{i}"));
            let shard = Shard { index: i, count: 2 };
            grokscope::sweep::run_all(&plan, &d, Some(shard), &mut |_| {}).unwrap();
            d
        })
        .collect();
    let merged = tmp.path().join("merged");
    let refs: Vec<&Path> = shards.iter().map(|d| d.as_path()).collect();
    grokscope::sweep::merge(&merged, &refs).unwrap();
    for run in 0..4 {
        let name = format!("checkpoints/run-{run:06}/step-00000020.safetensors");
        assert_eq!(
            read(&merged.join(&name), "W"),
            read(&dir.join(&name), "W"),
            "run {run}"
        );
    }
}

/// A run that diverges to NaN is a Diverged cell (`Dv`); its record (NaN written as the
/// string "NaN", not `null`) reads back, so the sweep finishes, resumes and reports.
#[test]
fn a_diverging_run_is_a_diverged_cell() {
    let text = r#"
name = "div"
[base]
data.p = 11
model.width = 16
train.epochs = 30
train.batch_size = 8
[axes]
"data.train_fraction" = [0.5, 0.7]
"data.corruption" = [0.2]
"train.lr" = [0.01, 1e6]
"#;
    let tmp = tempfile::tempdir().unwrap();
    let plan = Plan::from_text(text).unwrap();
    let dir = tmp.path().join("s");
    let recs = grokscope::sweep::run_all(&plan, &dir, None, &mut |_| {}).unwrap();
    use grokscope::metrics::Phase;
    let diverged: Vec<usize> = recs
        .values()
        .filter(|r| r.phase == Phase::Diverged)
        .map(|r| r.run)
        .collect();
    assert_eq!(diverged, vec![1, 3], "the lr = 1e6 runs");
    assert!(!recs[&1].last.is_finite());
    // NaN weights are not dead neurons: the mean IPR is NaN, no neuron counts as dead.
    assert!(
        recs[&1].last.norm_u.is_nan(),
        "this run reaches NaN weights"
    );
    assert_eq!(recs[&1].last.dead_neurons, 0);
    assert!(recs[&1].last.mean_ipr.is_some_and(f64::is_nan));
    let record = std::fs::read_to_string(dir.join("runs/000001.json")).unwrap();
    assert!(record.contains(r#""train_loss": "NaN""#), "{record}");
    // Resuming reads the records back; the grid and the report show the cells.
    let again = grokscope::sweep::run_all(&plan, &dir, None, &mut |_| {}).unwrap();
    let json = |r: &std::collections::BTreeMap<usize, grokscope::sweep::store::RunRecord>| {
        serde_json::to_string(r).unwrap()
    };
    assert_eq!(
        json(&again),
        json(&recs),
        "NaN compares unequal; the records are the same"
    );
    let grid = std::fs::read_to_string(dir.join("phase_grid.txt")).unwrap();
    assert!(grid.contains("Dv"), "{grid}");
    grokscope::report::report(&dir, false).unwrap();
}

/// A sweep over ξ and the weight decay (α fixed, as the Transformer presets) gets phase
/// grids with the weight decay along the rows, in the text, the CSV and the report.
#[test]
fn weight_decay_by_corruption_grids() {
    let text = r#"
name = "wdxi"
[base]
data.p = 11
model.width = 16
train.epochs = 5
[axes]
"data.corruption" = [0.0, 0.3]
"train.weight_decay" = [5.0, 0.0005, 0.0001, 0.0]
"model.init_seed" = [1, 2]
"#;
    // −0 is the value 0 given twice (it would count as two more agreeing seeds): refused.
    match Plan::from_text(&text.replace("0.0]", "0.0, -0.0]")) {
        Err(e) => assert!(e.to_string().contains("given twice"), "{e}"),
        Ok(_) => panic!("0 and -0 on one axis were accepted"),
    }
    let tmp = tempfile::tempdir().unwrap();
    let plan = Plan::from_text(text).unwrap();
    let dir = tmp.path().join("s");
    let recs = grokscope::sweep::run_all(&plan, &dir, None, &mut |_| {}).unwrap();
    assert_eq!(recs.len(), 16);
    let grid = std::fs::read_to_string(dir.join("phase_grid.txt")).unwrap();
    let rows: Vec<&str> = grid.lines().filter(|l| l.contains('|')).collect();
    assert!(rows[0].contains("wd ↑"), "{grid}");
    // Largest weight decay on top, one row per value, labels exact.
    let labels: Vec<&str> = rows[1..]
        .iter()
        .map(|r| r.split('|').next().unwrap().trim())
        .collect();
    assert_eq!(labels, ["5", "5e-4", "1e-4", "0"], "{grid}");
    let csv = std::fs::read_to_string(dir.join("phase_grid.csv")).unwrap();
    assert!(csv.starts_with("group,weight_decay,xi,phase,"), "{csv}");
    let col = |i: usize| -> Vec<String> {
        csv.lines()
            .skip(1)
            .map(|l| l.split(',').nth(i).unwrap().to_string())
            .collect()
    };
    assert_eq!(
        col(1),
        ["0.0", "0.0", "0.0001", "0.0001", "0.0005", "0.0005", "5.0", "5.0"],
        "numeric order: {csv}"
    );
    assert_eq!(
        col(5),
        ["2", "2", "2", "2", "2", "2", "2", "2"],
        "two seeds a cell: {csv}"
    );
    grokscope::report::report(&dir, false).unwrap();
    let html = std::fs::read_to_string(dir.join("report/report.html")).unwrap();
    assert!(
        html.contains("wd ↑") && html.contains("(wd, ξ)"),
        "the report's grids"
    );
}
