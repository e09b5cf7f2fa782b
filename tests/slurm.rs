//! Sweeps on a real Slurm: `sweep slurm --submit` against the one-node Slurm that
//! `scripts/slurm-local up` starts (`.ci/run` does, and sets GROKSCOPE_REQUIRE_SLURM=1 so that
//! a missing Slurm fails the test instead of skipping it).

mod common;
use common::{grokscope, trained_counts};

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

fn slurm_up() -> bool {
    let ok = Command::new("sinfo")
        .args(["-h", "-o", "%T"])
        .output()
        .is_ok_and(|o| o.status.success() && !o.stdout.is_empty());
    if !ok {
        assert!(
            std::env::var_os("GROKSCOPE_REQUIRE_SLURM").is_none(),
            "GROKSCOPE_REQUIRE_SLURM is set but Slurm does not answer (scripts/slurm-local up)"
        );
        eprintln!("skipped: no Slurm here (start one with scripts/slurm-local up)");
    }
    ok
}

fn results_tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    for sub in ["runs", "curves"] {
        for e in std::fs::read_dir(dir.join(sub)).unwrap() {
            let p = e.unwrap().path();
            let name = p.file_name().unwrap().to_string_lossy().to_string();
            if !name.starts_with('.') {
                out.insert(format!("{sub}/{name}"), std::fs::read(&p).unwrap());
            }
        }
    }
    for f in [
        "plan.json",
        "results.csv",
        "phase_grid.txt",
        "phase_grid.csv",
    ] {
        out.insert(f.into(), std::fs::read(dir.join(f)).unwrap_or_default());
    }
    out
}

/// Waits until none of `jobs` is in the queue.
fn wait_for(jobs: &[String], limit: Duration) {
    let t0 = Instant::now();
    loop {
        let out = Command::new("squeue")
            .args(["-h", "-o", "%A %i %T"])
            .output()
            .unwrap();
        let q = String::from_utf8_lossy(&out.stdout).to_string();
        let pending = q.lines().any(|l| {
            jobs.iter().any(|j| {
                l.split_whitespace().any(|w| {
                    w == j
                        || w.strip_prefix(j.as_str())
                            .is_some_and(|r| r.starts_with('_'))
                })
            })
        });
        if !pending {
            return;
        }
        assert!(t0.elapsed() < limit, "jobs {jobs:?} still queued: {q}");
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn sbatch_ids(stdout: &str) -> (String, String) {
    // "submitted: workers job 12 (array 1-3), finishing job 13 (after the workers)"
    let line = stdout
        .lines()
        .find(|l| l.starts_with("submitted:"))
        .unwrap_or_else(|| panic!("{stdout}"));
    let nums: Vec<String> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    (nums[0].clone(), nums[nums.len() - 1].clone())
}

const QUICK: &str = r#"
name = "slurm-quick"
max_fleet = 1
[base]
data.p = 23
model.width = 48
train.epochs = 300
eval.every = 50
[axes]
"data.train_fraction" = [0.4, 0.7]
"data.corruption" = [0.2]
"train.weight_decay" = [0, 1, 3]
"#;

/// Units of about two seconds, so that a task can be cancelled while it trains.
const LONGER: &str = r#"
name = "slurm-cancel"
max_fleet = 1
[base]
data.p = 41
model.width = 128
train.epochs = 2500
eval.every = 250
[axes]
"data.train_fraction" = [0.5]
"data.corruption" = [0.2]
"train.weight_decay" = [0, 1, 2, 3]
"#;

#[test]
fn sweeps_on_a_real_slurm() {
    if !slurm_up() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();

    // A quick sweep as a 3-task array ends identical to the same sweep run locally.
    std::fs::write(t.join("quick.toml"), QUICK).unwrap();
    let local = grokscope(&["sweep", "run", "quick.toml", "--out", "local", "-q"], t);
    assert!(local.status.success());
    let out = grokscope(
        &[
            "sweep",
            "slurm",
            "quick.toml",
            "--out",
            "onslurm",
            "--tasks",
            "3",
            "--lease",
            "10",
            "--submit",
        ],
        t,
    );
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (array, finish) = sbatch_ids(&stdout);
    wait_for(&[array, finish], Duration::from_secs(300));
    let dir = t.join("onslurm");
    assert_eq!(
        results_tree(&t.join("local")),
        results_tree(&dir),
        "the Slurm sweep equals the local one"
    );
    assert!(
        trained_counts(&dir).values().all(|&c| c == 1),
        "{:?}",
        trained_counts(&dir)
    );
    assert!(
        dir.join("report/report.html").is_file(),
        "the finishing job wrote the report"
    );

    // One task cancelled while it trains, then resubmitted: the sweep completes, identical to a
    // local run, with no run trained twice to completion.
    std::fs::write(t.join("longer.toml"), LONGER).unwrap();
    let local = grokscope(&["sweep", "run", "longer.toml", "--out", "local2", "-q"], t);
    assert!(local.status.success());
    let out = grokscope(
        &[
            "sweep",
            "slurm",
            "longer.toml",
            "--out",
            "cancel",
            "--tasks",
            "2",
            "--lease",
            "10",
            "--submit",
        ],
        t,
    );
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{stdout}");
    let (array, finish) = sbatch_ids(&stdout);
    let dir = t.join("cancel");
    let victim = format!("slurm-{array}_2");
    let t0 = Instant::now();
    loop {
        let hb = std::fs::read_to_string(dir.join(format!("workers/{victim}.json")));
        if hb.is_ok_and(|h| h.contains("\"training\"")) {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(120),
            "task 2 never trained"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(300));
    let c = Command::new("scancel")
        .arg(format!("{array}_2"))
        .status()
        .unwrap();
    assert!(c.success());
    let again = Command::new("sbatch")
        .args(["--parsable", "--array=2"])
        .arg(dir.join("slurm/worker.sbatch"))
        .output()
        .unwrap();
    assert!(again.status.success());
    let again = String::from_utf8_lossy(&again.stdout).trim().to_string();
    wait_for(&[array, finish, again], Duration::from_secs(300));
    assert_eq!(results_tree(&t.join("local2")), results_tree(&dir));
    let log = std::fs::read_to_string(dir.join(format!("workers/{victim}.log"))).unwrap();
    assert!(
        log.contains("release unit"),
        "the cancelled task gave its unit back: {log}"
    );
    let counts = trained_counts(&dir);
    assert!(
        counts.len() == 4 && counts.values().all(|&c| c == 1),
        "{counts:?}"
    );
}
