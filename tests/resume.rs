//! Runs that are never lost: streamed metrics, interrupt (SIGINT) and resume, autosave and
//! SIGKILL, progress lines in logs, a diverging model in a fleet.

mod common;
use common::grokscope;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const OUTPUTS: [&str; 4] = [
    "metrics.csv",
    "ipr_hist.csv",
    "summary.json",
    "weights.safetensors",
];

/// An MLP fleet with dropout, minibatches and BatchNorm: a few seconds of training.
fn mlp_args(out: &str) -> Vec<String> {
    [
        "train",
        "--no-report",
        "--set",
        "data.p=31",
        "--set",
        "model.width=64",
        "--set",
        "model.batchnorm=true",
        "--set",
        "model.dropout=[0.0, 0.1]",
        "--set",
        "data.corruption=0.2",
        "--set",
        "train.batch_size=32",
        "--set",
        "train.steps=12000",
        "--set",
        "eval.every=50",
        "--out",
        out,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// A small Transformer with dropout.
fn transformer_args(out: &str) -> Vec<String> {
    [
        "train",
        "--no-report",
        "--set",
        "model.kind=transformer",
        "--set",
        "data.p=13",
        "--set",
        "data.corruption=0.2",
        "--set",
        "model.transformer.d_model=16",
        "--set",
        "model.transformer.heads=2",
        "--set",
        "model.dropout=0.1",
        "--set",
        "train.loss=ce",
        "--set",
        "train.steps=400",
        "--set",
        "eval.every=20",
        "--out",
        out,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn spawn(args: &[String], cwd: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_grokscope"))
        .args(args)
        .current_dir(cwd)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("binary runs")
}

/// Waits until `metrics.csv` in `dir` has more than `rows` lines (the run is under way).
fn wait_for_rows(dir: &Path, rows: usize) {
    let t0 = Instant::now();
    loop {
        let n = std::fs::read_to_string(dir.join("metrics.csv"))
            .map(|t| t.lines().count())
            .unwrap_or(0);
        if n > rows {
            return;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(120),
            "the run never got going"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Sends `sig` ("-INT", "-TERM", "-KILL") to the child (through libc: a minimal system may
/// have no `kill` program).
fn signal(child: &Child, sig: &str) {
    let number = match sig {
        "-INT" => libc::SIGINT,
        "-TERM" => libc::SIGTERM,
        "-KILL" => libc::SIGKILL,
        other => panic!("unknown signal {other}"),
    };
    // SAFETY: kill(2) on the pid of a child this test spawned and has not yet waited for.
    let rc = unsafe { libc::kill(child.id() as libc::pid_t, number) };
    assert_eq!(rc, 0, "kill {sig}");
}

fn assert_same_outputs(a: &Path, b: &Path) {
    for f in OUTPUTS {
        let (x, y) = (
            std::fs::read(a.join(f)).unwrap(),
            std::fs::read(b.join(f)).unwrap(),
        );
        assert!(
            x == y,
            "{f} differs between {} and {}",
            a.display(),
            b.display()
        );
    }
}

fn resume(dir: &str, cwd: &Path) {
    let out = grokscope(&["train", "--resume", dir, "--no-report"], cwd);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn interrupted_run_resumes_to_the_same_bytes(args: fn(&str) -> Vec<String>, wait_rows: usize) {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let full = grokscope(
        &args("full").iter().map(|s| s.as_str()).collect::<Vec<_>>(),
        t,
    );
    assert!(
        full.status.success(),
        "{}",
        String::from_utf8_lossy(&full.stderr)
    );
    let mut child = spawn(&args("part"), t);
    wait_for_rows(&t.join("part"), wait_rows);
    // Mid-run, metrics.csv holds every evaluation so far: whole rows of as many fields as
    // its header (38 columns).
    let mid = std::fs::read_to_string(t.join("part/metrics.csv")).unwrap();
    let fields = mid.lines().next().map_or(0, |h| h.split(',').count());
    assert_eq!(fields, 38);
    assert!(mid.lines().all(|l| l.split(',').count() == fields), "{mid}");
    signal(&child, "-INT");
    let status = child.wait().unwrap();
    let mut err = String::new();
    BufReader::new(child.stderr.take().unwrap())
        .read_line(&mut err)
        .ok();
    assert_eq!(status.code(), Some(130), "exit 128 + SIGINT");
    let state = std::fs::read_to_string(t.join("part/state.json")).unwrap();
    assert!(state.contains("\"interrupted\""), "{state}");
    assert!(
        !t.join("part/summary.json").exists(),
        "a run interrupted early is unfinished"
    );
    resume("part", t);
    assert_same_outputs(&t.join("full"), &t.join("part"));
    // A finished run is not resumed again (only extended, from its final state).
    assert!(t.join("part/resume.safetensors").is_file());
    let again = grokscope(&["train", "--resume", "part"], t);
    assert_eq!(again.status.code(), Some(2));
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(
        err.contains("finished") && err.contains("--set train.steps=N"),
        "{err}"
    );
}

#[test]
fn an_mlp_interrupted_with_sigint_resumes_to_the_same_bytes() {
    interrupted_run_resumes_to_the_same_bytes(mlp_args, 20);
}

#[test]
fn a_transformer_interrupted_with_sigint_resumes_to_the_same_bytes() {
    interrupted_run_resumes_to_the_same_bytes(transformer_args, 4);
}

/// SIGKILL gives no chance to save: the run resumes from its last autosave and still ends
/// identical to an uninterrupted run.
#[test]
fn a_killed_run_resumes_from_its_autosave() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let with_autosave = |out: &str| {
        let mut a = mlp_args(out);
        a.extend([
            "--set".into(),
            "eval.autosave_minutes=0.002".into(),
            "--set".into(),
            "eval.checkpoint_every=100".into(),
        ]);
        a
    };
    let full = grokscope(
        &with_autosave("full")
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>(),
        t,
    );
    assert!(full.status.success());
    let mut child = spawn(&with_autosave("part"), t);
    // Wait for an autosave, then kill without warning.
    let t0 = Instant::now();
    while !t.join("part/resume.safetensors").exists() {
        assert!(t0.elapsed() < Duration::from_secs(120), "no autosave");
        std::thread::sleep(Duration::from_millis(10));
    }
    wait_for_rows(&t.join("part"), 30);
    signal(&child, "-KILL");
    child.wait().unwrap();
    let state = std::fs::read_to_string(t.join("part/state.json")).unwrap();
    if state.contains("\"finished\"") {
        // The machine was fast enough to finish before the kill: nothing to resume.
        return;
    }
    assert!(state.contains("\"running\""), "{state}");
    resume("part", t);
    assert_same_outputs(&t.join("full"), &t.join("part"));
    // Checkpoints the killed attempt wrote after its last autosave are written again, alike.
    for step in [100, 5000, 12000] {
        let name = format!("checkpoints/step-{step:08}.safetensors");
        let (a, b) = (t.join("full").join(&name), t.join("part").join(&name));
        assert_eq!(
            std::fs::read(a).unwrap(),
            std::fs::read(b).unwrap(),
            "{name}"
        );
    }
}

/// Without a terminal, progress lines appear in the log while the run trains.
#[test]
fn progress_lines_appear_before_the_run_ends() {
    let tmp = tempfile::tempdir().unwrap();
    let mut child = spawn(&mlp_args("run"), tmp.path());
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen_while_running = false;
    while let Some(Ok(line)) = lines.next() {
        if line.starts_with("step ") {
            seen_while_running |= child.try_wait().unwrap().is_none();
            assert!(line.contains("eta") && line.contains("test"), "{line}");
        }
    }
    assert!(child.wait().unwrap().success());
    assert!(seen_while_running, "a progress line before the end");
}

/// One model of a fleet diverges: the run finishes (exit 0), that model is Diverged at a
/// recorded step, and the other trains exactly as it does alone.
#[test]
fn a_diverging_model_does_not_disturb_its_fleet() {
    let tmp = tempfile::tempdir().unwrap();
    let base = [
        "train",
        "-q",
        "--no-report",
        "--set",
        "data.p=11",
        "--set",
        "model.width=16",
        "--set",
        "data.corruption=0.2",
        "--set",
        "train.batch_size=8",
        "--set",
        "train.steps=200",
    ];
    let run = |lr: &str, out: &str| {
        let mut a = base.to_vec();
        a.extend(["--set", lr, "--out", out]);
        let o = grokscope(&a, tmp.path());
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    };
    run("train.lr=[1e6, 0.01]", "fleet");
    run("train.lr=0.01", "alone");
    let summary: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(tmp.path().join("fleet/summary.json")).unwrap(),
    )
    .unwrap();
    let m0 = &summary["models"][0];
    assert_eq!(m0["phase"], "Diverged");
    let at = m0["diverged_step"].as_u64().expect("the step it diverged");
    assert!((1..=200).contains(&at));
    assert!(summary["models"][1]["diverged_step"].is_null());
    let rows = |dir: &str, model: &str| -> Vec<String> {
        std::fs::read_to_string(tmp.path().join(dir).join("metrics.csv"))
            .unwrap()
            .lines()
            .skip(1)
            .filter(|l| l.starts_with(&format!("{model},")))
            .map(|l| l.split_once(',').unwrap().1.to_string())
            .collect()
    };
    assert_eq!(rows("fleet", "1"), rows("alone", "0"));
}

/// The saved state alone decides where a run continues (state.json only reports), and it is
/// checked: a state saved by another config, or metrics that stop short of its step, are
/// refused with exit 2 and nothing changed; a run held by a live process is refused too.
#[test]
fn resume_checks_what_it_continues_from() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let interrupted = |out: &str, extra: &[&str]| {
        let mut args = mlp_args(out);
        args.extend(extra.iter().map(|s| s.to_string()));
        let mut child = spawn(&args, t);
        wait_for_rows(&t.join(out), 20);
        signal(&child, "-INT");
        assert_eq!(child.wait().unwrap().code(), Some(130));
    };
    interrupted("a", &[]);
    interrupted("b", &["--set", "data.corruption=0.3"]);
    let snapshot = |d: &str| -> Vec<Vec<u8>> {
        [
            "metrics.csv",
            "ipr_hist.csv",
            "state.json",
            "resume.safetensors",
        ]
        .iter()
        .map(|f| std::fs::read(t.join(d).join(f)).unwrap())
        .collect()
    };
    // A state of another config.
    std::fs::copy(
        t.join("b/resume.safetensors"),
        t.join("a/resume.safetensors"),
    )
    .unwrap();
    let before = snapshot("a");
    let out = grokscope(&["train", "--resume", "a"], t);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("resume.safetensors") && err.contains("another config"),
        "{err}"
    );
    assert_eq!(snapshot("a"), before, "nothing changed");
    // Metrics cut short of the saved step.
    let m = std::fs::read_to_string(t.join("b/metrics.csv")).unwrap();
    let short: String = m.lines().take(4).map(|l| format!("{l}\n")).collect();
    std::fs::write(t.join("b/metrics.csv"), short).unwrap();
    let out = grokscope(&["train", "--resume", "b"], t);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("metrics.csv"));
    // A state.json older than the saved state (a kill between the two writes) is harmless.
    let full = grokscope(
        &mlp_args("full")
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>(),
        t,
    );
    assert!(full.status.success());
    interrupted("c", &[]);
    let state = std::fs::read_to_string(t.join("c/state.json")).unwrap();
    let stale = state.replace("\"status\": \"interrupted\"", "\"status\": \"running\"");
    let stale = regex_free_replace_step(&stale);
    std::fs::write(t.join("c/state.json"), stale).unwrap();
    // What an attempt killed while finishing leaves is replaced.
    std::fs::write(t.join("c/summary.json"), "{ half").unwrap();
    resume("c", t);
    assert_same_outputs(&t.join("full"), &t.join("c"));
    // A run in use by a live process.
    let mut child = spawn(&mlp_args("d"), t);
    wait_for_rows(&t.join("d"), 2);
    let out = grokscope(&["train", "--resume", "d"], t);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("in use"));
    child.kill().unwrap();
    child.wait().unwrap();
}

/// `"resumable_step": N` → `"resumable_step": 1` (an older step than the saved state's).
fn regex_free_replace_step(state: &str) -> String {
    state
        .lines()
        .map(|l| {
            if l.trim_start().starts_with("\"resumable_step\"") {
                "  \"resumable_step\": 1,".to_string()
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}
