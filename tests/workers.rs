//! Many workers on one sweep directory: exclusive plans, claims, take-over of a killed worker's
//! unit, kills at every file operation, diverged runs as results.

mod common;
use common::{grokscope, trained_counts};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_grokscope"))
}

/// The files that make a sweep's results (not the workers' claims, heartbeats and logs):
/// relative path → bytes.
fn results_tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(root).unwrap().to_string_lossy().to_string();
            let name = p.file_name().unwrap().to_string_lossy().to_string();
            if name.starts_with('.')
                || rel.starts_with("claims")
                || rel.starts_with("workers")
                || rel.starts_with("slurm")
                || rel.starts_with("report")
            {
                continue;
            }
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

fn assert_same_results(a: &Path, b: &Path) {
    let (ta, tb) = (results_tree(a), results_tree(b));
    assert_eq!(
        ta.keys().collect::<Vec<_>>(),
        tb.keys().collect::<Vec<_>>(),
        "the same files"
    );
    for (k, v) in &ta {
        assert!(tb[k] == *v, "{k} differs between {a:?} and {b:?}");
    }
}

fn run_ok(args: &[&str], cwd: &Path) {
    let out = grokscope(args, cwd);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The sweep of the issue: lr [0.01, 1] × wd [0, 5], where lr 1 with wd 5 diverges.
const LRWD: &str = r#"
name = "lrwd"
max_fleet = 2
[base]
data.p = 23
model.width = 32
train.epochs = 200
eval.every = 20
[axes]
"data.train_fraction" = [0.5]
"data.corruption" = [0.2]
"train.lr" = [0.01, 1]
"train.weight_decay" = [0, 5]
"#;

#[test]
fn a_sweep_with_diverging_runs_finishes_and_reports() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    std::fs::write(t.join("lrwd.toml"), LRWD).unwrap();
    run_ok(&["sweep", "run", "lrwd.toml", "--out", "s", "-q"], t);
    let csv = std::fs::read_to_string(t.join("s/results.csv")).unwrap();
    let diverged: Vec<&str> = csv.lines().filter(|l| l.contains(",Diverged,")).collect();
    assert_eq!(diverged.len(), 1, "{csv}");
    assert!(diverged[0].starts_with("3,"), "lr 1, wd 5: {csv}");
    let grid = std::fs::read_to_string(t.join("s/phase_grid.txt")).unwrap();
    assert!(grid.contains("Dv"), "{grid}");
    // Every run has its curve: 11 evaluations (steps 0, 20, …, 200).
    for run in 0..4 {
        let c = std::fs::read_to_string(t.join(format!("s/curves/{run:06}.csv"))).unwrap();
        assert_eq!(c.lines().count(), 1 + 11, "run {run}");
    }
    // A later run is a no-op: nothing trained, nothing changed.
    let before = results_tree(&t.join("s"));
    let out = grokscope(&["sweep", "run", "lrwd.toml", "--out", "s", "-q"], t);
    assert!(out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("(0 trained by this worker"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(results_tree(&t.join("s")), before);
    assert_eq!(trained_counts(&t.join("s")).values().sum::<usize>(), 4);
    // Joining without the sweep file works too, and status counts the diverged run.
    run_ok(&["sweep", "run", "--out", "s", "-q"], t);
    let st = grokscope(&["sweep", "status", "s"], t);
    let text = String::from_utf8_lossy(&st.stdout);
    assert!(text.contains("4 of 4 runs done (1 diverged)"), "{text}");
    run_ok(&["report", "s"], t);
    assert!(t.join("s/report/report.html").is_file());
}

fn tiny(name: &str, axis: &str) -> String {
    format!(
        "name = \"{name}\"\nmax_fleet = 1\n[base]\ndata.p = 11\nmodel.width = 8\ntrain.epochs = 20\n[axes]\n\"data.train_fraction\" = [0.5]\n\"data.corruption\" = [0.2]\n\"{axis}\" = [0, 1, 2]\n"
    )
}

#[test]
fn two_plans_at_once_never_mix() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    std::fs::write(t.join("a.toml"), tiny("plan-a", "train.weight_decay")).unwrap();
    std::fs::write(t.join("b.toml"), tiny("plan-b", "model.init_seed")).unwrap();
    let mut wins = [0, 0];
    for trial in 0..20 {
        let dir = format!("d{trial}");
        let start = |file: &str| -> Child {
            bin()
                .args(["sweep", "run", file, "--out", &dir, "-q"])
                .current_dir(t)
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        };
        let (a, b) = (start("a.toml"), start("b.toml"));
        let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
        let codes = (a.status.code(), b.status.code());
        let (winner, loser) = match codes {
            (Some(0), Some(2)) => (0, &b),
            (Some(2), Some(0)) => (1, &a),
            other => panic!(
                "trial {trial}: exit codes {other:?}: {} / {}",
                String::from_utf8_lossy(&a.stderr),
                String::from_utf8_lossy(&b.stderr)
            ),
        };
        wins[winner] += 1;
        let err = String::from_utf8_lossy(&loser.stderr);
        assert!(
            err.contains("plan-a") && err.contains("plan-b") && err.contains("different plan"),
            "trial {trial}: {err}"
        );
        // Every record belongs to the winning plan (its axis), and all three are there.
        let d = t.join(&dir);
        let plan = std::fs::read_to_string(d.join("plan.json")).unwrap();
        let axis = ["train.weight_decay", "model.init_seed"][winner];
        let other = ["train.weight_decay", "model.init_seed"][1 - winner];
        assert!(plan.contains(["plan-a", "plan-b"][winner]), "{plan}");
        for run in 0..3 {
            let rec = std::fs::read_to_string(d.join(format!("runs/{run:06}.json"))).unwrap();
            assert!(
                rec.contains(axis) && !rec.contains(other),
                "trial {trial}: {rec}"
            );
        }
        assert_eq!(std::fs::read_dir(d.join("runs")).unwrap().count(), 3);
    }
    eprintln!("plan a won {} times, plan b {}", wins[0], wins[1]);
}

/// 6 runs of about half a second each, one per unit.
const SIX: &str = r#"
name = "six"
max_fleet = 1
[base]
data.p = 31
model.width = 96
train.epochs = 600
eval.every = 50
eval.checkpoint_every = 300
[axes]
"data.train_fraction" = [0.5]
"data.corruption" = [0.2, 0.4]
"train.weight_decay" = [0, 1, 3]
"#;

fn spawn_worker(t: &Path, dir: &str, name: &str) -> Child {
    bin()
        .args([
            "sweep", "run", "six.toml", "--out", dir, "-q", "--worker", name, "--lease", "30",
        ])
        .current_dir(t)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn heartbeat_state(dir: &Path, worker: &str) -> Option<String> {
    let text = std::fs::read_to_string(dir.join(format!("workers/{worker}.json"))).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    let unit = v["unit"].as_u64();
    Some(format!("{}:{unit:?}", v["state"].as_str()?))
}

#[test]
fn three_workers_equal_one_even_when_one_is_killed() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    std::fs::write(t.join("six.toml"), SIX).unwrap();
    run_ok(&["sweep", "run", "six.toml", "--out", "one", "-q"], t);
    assert_eq!(
        trained_counts(&t.join("one")),
        (0..6).map(|r| (r, 1)).collect()
    );

    // Three workers at once.
    let kids: Vec<Child> = ["w1", "w2", "w3"]
        .iter()
        .map(|w| spawn_worker(t, "three", w))
        .collect();
    for k in kids {
        let out = k.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert_same_results(&t.join("one"), &t.join("three"));
    let counts = trained_counts(&t.join("three"));
    assert_eq!(
        counts,
        (0..6).map(|r| (r, 1)).collect(),
        "each run trained once"
    );

    // Three workers, one SIGKILLed while it trains: the others take its unit over.
    let dir = t.join("killed");
    let mut victim = spawn_worker(t, "killed", "victim");
    let t0 = Instant::now();
    loop {
        if heartbeat_state(&dir, "victim").is_some_and(|s| s.starts_with("training:Some")) {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "victim never trained"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let others: Vec<Child> = ["a", "b"]
        .iter()
        .map(|w| spawn_worker(t, "killed", w))
        .collect();
    std::thread::sleep(Duration::from_millis(100));
    victim.kill().unwrap();
    let status = victim.wait().unwrap();
    assert!(!status.success());
    for k in others {
        let out = k.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert_same_results(&t.join("one"), &dir);
    let counts = trained_counts(&dir);
    let log = std::fs::read_to_string(dir.join("workers/victim.log")).unwrap();
    // A kill between the end of training and the commit (a millisecond) rightly leaves that
    // unit to be trained again; every other run is trained exactly once.
    let trained_uncommitted = log
        .lines()
        .last()
        .is_some_and(|l| l.contains(" trained unit "));
    assert!(
        counts.len() == 6 && (trained_uncommitted || counts.values().all(|&c| c == 1)),
        "no run trained twice to completion: {counts:?}"
    );
    // The victim's claimed unit was taken over (a second generation of its claim exists).
    let claimed = log
        .lines()
        .rfind(|l| l.contains(" claim unit "))
        .map(|l| {
            l.split(" claim unit ")
                .nth(1)
                .unwrap()
                .split(' ')
                .next()
                .unwrap()
                .to_string()
        })
        .unwrap();
    let unit: usize = claimed.parse().unwrap();
    let gens = std::fs::read_dir(dir.join("claims"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with(&format!("unit-{unit:06}."))
        })
        .count();
    assert!(gens >= 2, "unit {unit}: {gens} claim generation(s)");
    assert!(
        !log.contains(&format!("trained unit {unit} ")),
        "the victim was killed before it finished unit {unit}"
    );
}

/// Counts the sweep file operations of a whole small sweep, then kills a fresh sweep at each
/// one (the test hook of `fsio`) and resumes it: every directory left behind resumes,
/// and ends with the results of an uninterrupted sweep.
#[test]
fn a_kill_at_every_file_operation_leaves_a_resumable_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let text = "name = \"ops\"\nmax_fleet = 2\n[base]\ndata.p = 11\nmodel.width = 8\ntrain.epochs = 10\neval.checkpoint_every = 5\n[axes]\n\"data.train_fraction\" = [0.5]\n\"data.corruption\" = [0.2]\n\"train.weight_decay\" = [0, 1, 2]\n";
    std::fs::write(t.join("ops.toml"), text).unwrap();
    let log = t.join("ops.log");
    let out = bin()
        .args(["sweep", "run", "ops.toml", "--out", "ref", "-q"])
        .env("GROKSCOPE_SWEEP_FAULT_LOG", &log)
        .current_dir(t)
        .output()
        .unwrap();
    assert!(out.status.success());
    let n = std::fs::read_to_string(&log).unwrap().lines().count();
    assert!(n >= 30, "{n} file operations");
    for k in 1..=n {
        let dir = format!("k{k}");
        let out = bin()
            .args(["sweep", "run", "ops.toml", "--out", &dir, "-q"])
            .env("GROKSCOPE_SWEEP_FAULT", k.to_string())
            .current_dir(t)
            .output()
            .unwrap();
        assert!(!out.status.success(), "fault {k} of {n} stopped the sweep");
        let out = grokscope(&["sweep", "run", "ops.toml", "--out", &dir, "-q"], t);
        assert!(
            out.status.success(),
            "after a kill at file operation {k} of {n}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_same_results(&t.join("ref"), &t.join(&dir));
        std::fs::remove_dir_all(t.join(&dir)).unwrap();
    }
}

#[test]
fn status_shows_running_workers_and_slurm_scripts_are_written() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    std::fs::write(t.join("six.toml"), SIX).unwrap();
    let mut w = spawn_worker(t, "s", "busy");
    let dir: PathBuf = t.join("s");
    let t0 = Instant::now();
    while !heartbeat_state(&dir, "busy").is_some_and(|s| s.starts_with("training:Some")) {
        assert!(t0.elapsed() < Duration::from_secs(30));
        std::thread::sleep(Duration::from_millis(5));
    }
    let st = grokscope(&["sweep", "status", "s"], t);
    let text = String::from_utf8_lossy(&st.stdout).to_string();
    assert!(st.status.success(), "{text}");
    assert!(text.contains("worker busy"), "{text}");
    assert!(
        text.contains("1 running") || text.contains("runs done"),
        "{text}"
    );
    w.kill().unwrap();
    w.wait().unwrap();
    // Slurm scripts (without submitting): an array of workers and a finishing job.
    let out = grokscope(
        &[
            "sweep",
            "slurm",
            "six.toml",
            "--out",
            "s",
            "--tasks",
            "3",
            "--time",
            "1:00:00",
            "--partition",
            "short",
            "--cpus-per-task",
            "2",
            "--mem",
            "2G",
            "--requeue",
        ],
        t,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let w = std::fs::read_to_string(dir.join("slurm/worker.sbatch")).unwrap();
    for line in [
        "#SBATCH --array=1-3",
        "#SBATCH --partition=short",
        "#SBATCH --time=1:00:00",
        "#SBATCH --cpus-per-task=2",
        "#SBATCH --mem=2G",
        "#SBATCH --requeue",
        "sweep run --out",
    ] {
        assert!(w.contains(line), "{line}: {w}");
    }
    let f = std::fs::read_to_string(dir.join("slurm/finish.sbatch")).unwrap();
    assert!(f.contains("report") && f.contains("sweep status"), "{f}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("--dependency=afterany"));
    // Bad Slurm values are refused before anything is written.
    let out = grokscope(
        &[
            "sweep",
            "slurm",
            "six.toml",
            "--out",
            "s2",
            "--tasks",
            "2",
            "--time",
            "1:00\n#SBATCH x",
        ],
        t,
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--time"));
    assert!(!t.join("s2").exists());
    let out = grokscope(
        &["sweep", "slurm", "six.toml", "--out", "s3", "--tasks", "0"],
        t,
    );
    assert_eq!(out.status.code(), Some(2));
}
