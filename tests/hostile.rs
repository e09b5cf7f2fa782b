//! Every bad input of issue 14 gets exit 2 and a one-paragraph message naming what is
//! wrong: no panic (101), no abort (134), no hang, and nothing written or deleted.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Runs grokscope with a 60 s limit (a hang fails the test) and an 8 GB memory limit (so the
/// size checks do not depend on this machine).
fn run(args: &[&str], cwd: &Path) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_grokscope"))
        .args(args)
        .current_dir(cwd)
        .env("GROKSCOPE_MEMORY_LIMIT", "8G")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            panic!("{args:?} hangs");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

/// A listing of every file under `dir` with its bytes: what must not change.
fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(dir).unwrap().display().to_string();
                out.push((rel, std::fs::read(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}

/// Asserts exit 2, a message containing every one of `expect` in a single `error:` line, and
/// no change under `cwd`.
#[track_caller]
fn refused(args: &[&str], cwd: &Path, expect: &[&str]) -> String {
    let before = snapshot(cwd);
    let out = run(args, cwd);
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
    let lines: Vec<&str> = err
        .lines()
        .filter(|l| !l.starts_with("warning:") && !l.starts_with("note:"))
        .filter(|l| !l.trim_end().ends_with('…') && !l.trim().is_empty())
        // clap's standard pointer to --help after a bad argument.
        .filter(|l| !l.starts_with("For more information, try"))
        .collect();
    assert_eq!(lines.len(), 1, "{args:?}: one paragraph, got {err}");
    assert!(lines[0].starts_with("error: "), "{args:?}: {err}");
    for e in expect {
        assert!(err.contains(e), "{args:?}: expected {e:?} in {err}");
    }
    assert!(!err.contains("panicked") && !err.contains("{ "), "{err}");
    assert!(before == snapshot(cwd), "{args:?} changed files");
    err
}

/// A run record edited on purpose, sealed again so the checks behind its digest are reached.
fn sealed(rec: &str) -> String {
    grokscope::sweep::store::reseal_record(rec, None).unwrap()
}

fn train(sets: &[&str]) -> Vec<String> {
    let mut v = vec!["train", "-q", "--no-report", "--out", "x"];
    for s in sets {
        v.extend_from_slice(&["--set", s]);
    }
    v.into_iter().map(String::from).collect()
}

fn refused_train(cwd: &Path, sets: &[&str], expect: &[&str]) {
    let args = train(sets);
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    refused(&a, cwd, expect);
}

#[test]
fn sizes_beyond_the_machine_are_refused_before_allocating() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    refused_train(
        t,
        &["data.p=65521"],
        &["data.p", "needs about", "B of memory", "8.6 GB allowed"],
    );
    refused_train(t, &["model.width=1000000000"], &["model.width", "16777216"]);
    refused_train(
        t,
        &["model.width=4611686018427387904"],
        &["model.width", "4611686018427387904"],
    );
    refused_train(
        t,
        &["model.width=200000"],
        &["model.width", "needs about", "memory"],
    );
    let tf = "model.kind=transformer";
    refused_train(t, &[tf, "model.transformer.d_model=400000"], &["d_model"]);
    refused_train(
        t,
        &[tf, "model.transformer.mlp_ratio=400000"],
        &["mlp_ratio"],
    );
    refused_train(t, &[tf, "model.transformer.layers=400000"], &["layers"]);
    refused_train(
        t,
        &[
            tf,
            "model.transformer.d_model=8192",
            "model.transformer.heads=4",
        ],
        &["model.transformer.d_model", "memory"],
    );
    let hundred = format!(
        "[{}]",
        (0..100)
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(",")
    );
    let fleet: Vec<String> = [
        "data.corruption_seed",
        "model.init_seed",
        "train.lr",
        "train.weight_decay",
    ]
    .iter()
    .map(|k| {
        if *k == "train.lr" {
            format!(
                "{k}=[{}]",
                (1..=100)
                    .map(|i| format!("{}e-4", i))
                    .collect::<Vec<_>>()
                    .join(",")
            )
        } else {
            format!("{k}={hundred}")
        }
    })
    .collect();
    let fleet: Vec<&str> = fleet.iter().map(String::as_str).collect();
    refused_train(t, &fleet, &["100000000 models", "65536"]);
    refused_train(
        t,
        &["train.epochs=4611686018427387904", "train.batch_size=64"],
        &["train.epochs", "optimizer steps"],
    );
    refused(&["analytic", "--p", "100003"], t, &["--p", "100003"]);
    refused(
        &["analytic", "--p", "3000", "-n", "100000"],
        t,
        &["multiply-adds"],
    );
}

#[test]
fn oversized_sweeps_are_refused_with_their_size() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    for (count, expect) in [("2147483648", "count"), ("9223372036854775807", "count")] {
        std::fs::write(
            t.join("s.toml"),
            format!("[base]\ndata.p = 11\n[axes]\n\"data.corruption\" = {{ from = 0.0, to = 0.5, count = {count} }}\n"),
        )
        .unwrap();
        refused(&["sweep", "plan", "s.toml"], t, &[expect, "100000"]);
        refused(&["sweep", "run", "s.toml", "--out", "o"], t, &[expect]);
    }
    // Four 65536-value axes (2^64 runs: the product overflows) with an invalid value and an
    // unknown key: refused for its size, never planned as 0 runs.
    std::fs::write(
        t.join("s.toml"),
        "[base]\ndata.p = 11\ntrain.bogus = 1\n[axes]\n\"data.corruption\" = { from = 0.0, to = 2.0, count = 65536 }\n\"train.weight_decay\" = { from = 0, to = 1, count = 65536 }\n\"model.init_seed\" = { from = 0, to = 1, count = 65536 }\n\"train.lr\" = { from = 0.1, to = 1, count = 65536 }\n",
    )
    .unwrap();
    refused(&["sweep", "plan", "s.toml"], t, &["over 10^19 runs"]);
    refused(&["sweep", "run", "s.toml", "--out", "o"], t, &["runs"]);
    std::fs::write(
        t.join("s.toml"),
        "max_fleet = 100000000\n[axes]\n\"data.corruption\" = [0.1]\n",
    )
    .unwrap();
    refused(&["sweep", "plan", "s.toml"], t, &["max_fleet"]);
    // Every run fits in memory alone, but not 64 of them in one fleet.
    let wds: Vec<String> = (0..64).map(|i| i.to_string()).collect();
    std::fs::write(
        t.join("s.toml"),
        format!(
            "max_fleet = 64\n[base]\nmodel.width = 16000\n[axes]\n\"train.weight_decay\" = [{}]\n",
            wds.join(", ")
        ),
    )
    .unwrap();
    for cmd in [
        &["sweep", "plan", "s.toml"][..],
        &["sweep", "run", "s.toml", "--out", "o"],
    ] {
        refused(cmd, t, &["the 64 runs 0 … 63", "max_fleet = 64", "memory"]);
    }
}

#[test]
fn messages_quote_the_input_once() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    // The --set as typed, not a line of an internal re-serialization.
    let e = refused(
        &["train", "--set", "model.width=abc", "--out", "x"],
        t,
        &[
            "--set model.width=abc",
            "invalid type: string \"abc\", expected usize",
        ],
    );
    assert!(!e.contains("line"), "{e}");
    refused(
        &["train", "--set", "model.width=0", "--out", "x"],
        t,
        &["--set model.width=0", "invalid `model.width`"],
    );
    // A file's error: its name, line and column.
    std::fs::write(t.join("c.toml"), "[data]\np = 11\n\n[model]\nwidth = -3\n").unwrap();
    refused(
        &["train", "-c", "c.toml", "--out", "x"],
        t,
        &["c.toml", "line 5, column 9", "invalid value"],
    );
    // An I/O error prints its cause once.
    let e = refused(
        &["train", "-c", "missing.toml", "--out", "x"],
        t,
        &["missing.toml"],
    );
    assert_eq!(e.matches("os error 2").count(), 1, "{e}");
    let e = refused(&["analyze", "nothing-here"], t, &["nothing-here"]);
    assert!(!e.contains("os error 2): No such"), "{e}");
    // An output path under a file.
    std::fs::write(t.join("afile"), "").unwrap();
    refused(
        &["train", "--set", "data.p=11", "--out", "afile/sub"],
        t,
        &["afile is a file, not a directory"],
    );
}

/// A small finished run with its report and analysis.
fn small_run(t: &Path) -> std::path::PathBuf {
    let out = run(
        &[
            "train",
            "-q",
            "--set",
            "data.p=11",
            "--set",
            "model.width=8",
            "--set",
            "train.steps=20",
            "--set",
            "train.weight_decay=[0, 1]",
            "--out",
            "run",
        ],
        t,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run(&["analyze", "run"], t);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    t.join("run")
}

#[test]
fn corrupt_run_files_are_errors_and_the_old_report_survives() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let dir = small_run(t);
    let metrics = std::fs::read_to_string(dir.join("metrics.csv")).unwrap();
    let header = metrics.lines().next().unwrap().to_string();
    let model0: String = metrics
        .lines()
        .filter(|l| l.starts_with("0,"))
        .map(|l| format!("{l}\n"))
        .collect();
    let cases: Vec<(&str, String, &str)> = vec![
        ("metrics.csv", format!("{header}\n"), "no rows for model 0"),
        (
            "metrics.csv",
            format!("{header}\n{model0}"),
            "no rows for model 1",
        ),
        (
            "metrics.csv",
            metrics.replacen("\n0,", "\n7,", 1),
            "model 7, but config.toml has 2",
        ),
        ("metrics.csv", metrics.replacen(",0,", ",x,", 1), "not a"),
        ("metrics.csv", String::new(), "metrics.csv"),
    ];
    for (file, text, expect) in &cases {
        let saved = std::fs::read(dir.join(file)).unwrap();
        std::fs::write(dir.join(file), text).unwrap();
        refused(&["report", "run", "--force"], t, &[file, expect]);
        std::fs::write(dir.join(file), saved).unwrap();
    }
    // An edited config.toml next to the weights: refused by analyze, prune and report.
    let cfg = std::fs::read_to_string(dir.join("config.toml")).unwrap();
    let edits = [
        (
            cfg.replace("activation = \"square\"", "activation = \"relu\""),
            "config.toml",
        ),
        (cfg.replace("width = 8", "width = 9"), "config.toml"),
        (
            cfg.replace("corruption = 0.35", "corruption = 0.1"),
            "changed after the run",
        ),
    ];
    for (edited, expect) in &edits {
        assert_ne!(&cfg, edited);
        std::fs::write(dir.join("config.toml"), edited).unwrap();
        refused(&["analyze", "run", "--force"], t, &[expect]);
        refused(&["prune", "run", "--force"], t, &[expect]);
        std::fs::write(dir.join("config.toml"), &cfg).unwrap();
    }
    // Weights whose metadata contradicts the config (same shapes, other activation).
    let w = std::fs::read(dir.join("weights.safetensors")).unwrap();
    let needle = b"activation\\\":\\\"square";
    let at = w
        .windows(needle.len())
        .position(|x| x == needle)
        .expect("the weights record their activation");
    let mut bad = w.clone();
    bad[at + needle.len() - 6..at + needle.len()].copy_from_slice(b"relu__");
    // As changed, the digest refuses it; sealed again, the metadata check behind it does.
    std::fs::write(dir.join("weights.safetensors"), &bad).unwrap();
    refused(
        &["analyze", "run", "--force"],
        t,
        &["weights.safetensors", "SHA-256 digest"],
    );
    grokscope::digest::reseal(&mut bad).unwrap();
    std::fs::write(dir.join("weights.safetensors"), &bad).unwrap();
    refused(
        &["analyze", "run", "--force"],
        t,
        &[
            "weights.safetensors",
            "activation = relu__",
            "activation = square",
        ],
    );
    std::fs::write(dir.join("weights.safetensors"), &w).unwrap();
    // A bad model index.
    refused(
        &["prune", "run", "--model", "9"],
        t,
        &["model index 9", "2 model"],
    );
}

#[test]
fn two_identical_runs_write_byte_identical_weights() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    for kind in ["mlp", "transformer"] {
        let mut weights = Vec::new();
        for i in 0..2 {
            let out = format!("{kind}{i}");
            let kind_set = format!("model.kind={kind}");
            let o = run(
                &[
                    "train",
                    "-q",
                    "--no-report",
                    "--set",
                    "data.p=7",
                    "--set",
                    "model.width=8",
                    "--set",
                    &kind_set,
                    "--set",
                    "model.transformer.d_model=8",
                    "--set",
                    "model.transformer.heads=2",
                    "--set",
                    "train.steps=3",
                    "--out",
                    &out,
                ],
                t,
            );
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            weights.push(std::fs::read(t.join(&out).join("weights.safetensors")).unwrap());
        }
        assert!(weights[0] == weights[1], "{kind}: the weights files differ");
    }
}

/// Whether `dir/sub` is complete: exactly the files of `names`, none empty, and text files
/// ending in a newline (or a closing tag).
fn complete(dir: &Path, names: &[String]) -> bool {
    let now: Vec<String> = snapshot(dir).into_iter().map(|(n, _)| n).collect();
    now == names
        && snapshot(dir).iter().all(|(n, b)| {
            !b.is_empty()
                && (!(n.ends_with(".csv") || n.ends_with(".json") || n.ends_with(".html"))
                    || b.ends_with(b"\n")
                    || b.ends_with(b">")
                    || b.ends_with(b"]")
                    || b.ends_with(b"}"))
        })
}

#[test]
fn report_and_analyze_killed_at_any_moment_leave_a_complete_old_or_new_one() {
    use rand::{Rng, SeedableRng};
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let out = run(
        &[
            "train",
            "-q",
            "--set",
            "data.p=23",
            "--set",
            "model.width=48",
            "--set",
            "train.steps=40",
            "--set",
            "train.weight_decay=[0, 1, 2]",
            "--out",
            "run",
        ],
        t,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(run(&["analyze", "run"], t).status.success());
    let dir = t.join("run");
    let names = |sub: &str| -> Vec<String> {
        snapshot(&dir.join(sub))
            .into_iter()
            .map(|(n, _)| n)
            .collect()
    };
    let (report, analysis) = (names("report"), names("analysis"));
    assert!(report.len() > 10 && analysis.len() >= 6);
    let check = |what: &str| {
        assert!(
            complete(&dir.join("report"), &report),
            "{what}: report/ incomplete"
        );
        assert!(
            complete(&dir.join("analysis"), &analysis),
            "{what}: analysis/ incomplete"
        );
        // Debris is hidden (dot names), never taken for a result.
        for e in std::fs::read_dir(&dir).unwrap().flatten() {
            let n = e.file_name().to_string_lossy().to_string();
            assert!(
                n.starts_with('.')
                    || [
                        "analysis",
                        "report",
                        "config.toml",
                        "metrics.csv",
                        "ipr_hist.csv",
                        "summary.json",
                        "weights.safetensors",
                        "dataset.safetensors",
                        "resume.safetensors",
                        "state.json"
                    ]
                    .contains(&n.as_str()),
                "{what}: {n}"
            );
        }
    };
    // Killed at each step of the swap (on both the exchange and the two-rename path): the
    // next command finds the complete old or new directory.
    for fault in ["swap", "remove-old", "between-renames"] {
        for cmd in ["report", "analyze"] {
            let mut c = Command::new(env!("CARGO_BIN_EXE_grokscope"));
            c.args([cmd, "run", "--force"])
                .current_dir(t)
                .env("GROKSCOPE_FAULT", fault);
            if fault == "between-renames" {
                c.env("GROKSCOPE_NO_EXCHANGE", "1");
            }
            let o = c.output().unwrap();
            assert_eq!(o.status.code(), None, "{cmd} with fault {fault}: killed");
            // The next command (even one that only refuses) puts things back.
            let again = run(&[cmd, "run"], t);
            assert_eq!(again.status.code(), Some(2), "{cmd} without --force");
            check(&format!("{cmd} killed at {fault}"));
        }
    }
    // Killed at random moments.
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(14);
    for trial in 0..24 {
        let cmd = ["report", "analyze"][trial % 2];
        let mut child = Command::new(env!("CARGO_BIN_EXE_grokscope"))
            .args([cmd, "run", "--force"])
            .current_dir(t)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(rng.random_range(0..400)));
        let _ = child.kill();
        let _ = child.wait();
        let again = run(&[cmd, "run"], t);
        assert_eq!(again.status.code(), Some(2), "{cmd} without --force");
        check(&format!("trial {trial}: {cmd}"));
    }
}

#[test]
fn tampered_sweep_directories_are_errors_naming_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    std::fs::write(
        t.join("s.toml"),
        "name = \"h\"\nmax_fleet = 2\n[base]\ndata.p = 11\nmodel.width = 8\ntrain.steps = 10\n[axes]\n\"train.weight_decay\" = [0, 1, 2]\n",
    )
    .unwrap();
    let ok = |args: &[&str]| {
        let o = run(args, t);
        assert!(
            o.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    };
    ok(&["sweep", "run", "s.toml", "--out", "sw", "-q"]);
    let d = t.join("sw");
    let plan = std::fs::read_to_string(d.join("plan.json")).unwrap();
    let rec = std::fs::read_to_string(d.join("runs/000001.json")).unwrap();
    // plan.json edited by hand: every command that reads the directory refuses it.
    std::fs::write(
        d.join("plan.json"),
        plan.replace("\"runs\": 3", "\"runs\": 4"),
    )
    .unwrap();
    for args in [
        &["sweep", "show", "sw"][..],
        &["sweep", "status", "sw"],
        &["report", "sw", "--force"],
        &["sweep", "merge", "--out", "m", "sw"],
    ] {
        refused(args, t, &["plan.json", "it says 4 runs, its spec has 3"]);
    }
    std::fs::write(d.join("plan.json"), plan.replace("[0, 1, 2]", "[0, 1, 3]")).unwrap();
    refused(&["sweep", "show", "sw"], t, &["plan.json", "hashes to"]);
    std::fs::write(d.join("plan.json"), &plan).unwrap();
    // A record of another plan, and one of a run the plan does not have.
    let hash = serde_json::from_str::<serde_json::Value>(&plan).unwrap()["hash"]
        .as_str()
        .unwrap()
        .to_string();
    std::fs::write(
        d.join("runs/000001.json"),
        sealed(&rec.replace(&hash, "0123456789abcdef")),
    )
    .unwrap();
    refused(
        &["report", "sw", "--force"],
        t,
        &["000001.json", "belongs to plan 0123456789abcdef"],
    );
    std::fs::write(d.join("runs/000001.json"), &rec).unwrap();
    std::fs::write(
        d.join("runs/000007.json"),
        sealed(&rec.replace("\"run\": 1", "\"run\": 7")),
    )
    .unwrap();
    refused(
        &["sweep", "show", "sw"],
        t,
        &["000007.json", "run 7 is not a run"],
    );
    std::fs::remove_file(d.join("runs/000007.json")).unwrap();
    // A deleted curve: the run is trained again (same bytes), not reported without it.
    let curve = std::fs::read(d.join("curves/000002.csv")).unwrap();
    std::fs::remove_file(d.join("curves/000002.csv")).unwrap();
    let o = run(&["sweep", "run", "--out", "sw", "-q"], t);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(std::fs::read(d.join("curves/000002.csv")).unwrap(), curve);
    // A merge that fails leaves no directory behind.
    std::fs::write(d.join("runs/000001.json"), "{").unwrap();
    refused(&["sweep", "merge", "--out", "m", "sw"], t, &["000001.json"]);
    assert!(!t.join("m").exists());
}

#[test]
fn what_a_hostile_tester_found_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    refused(
        &["--threads", "18446744073709551615", "train"],
        t,
        &["--threads"],
    );
    refused(
        &["--threads", "100000", "train"],
        t,
        &["--threads", "from 1 to 1024"],
    );
    let with_limit = |limit: &str, args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_grokscope"))
            .args(args)
            .current_dir(t)
            .env("GROKSCOPE_MEMORY_LIMIT", limit)
            .output()
            .unwrap()
    };
    let o = with_limit("99999999999999999999G", &["train", "--out", "x"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("1 EiB"));
    let o = with_limit("1K", &["train", "--out", "x"]);
    let e = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{e}");
    assert!(
        e.contains("raise GROKSCOPE_MEMORY_LIMIT") && !e.contains("``"),
        "{e}"
    );
    assert!(!t.join("x").exists());
    // The key given, as typed.
    refused_train(
        t,
        &["train.epochs=0"],
        &["--set train.epochs=0", "train.epochs"],
    );
    refused_train(
        t,
        &["train.epochs=1099511627776", "eval.every=1"],
        &["make eval.every larger"],
    );
    refused(
        &["train", "--set", "data.p=13\ndata.x=1", "--out", "x"],
        t,
        &["one line"],
    );
    std::fs::write(
        t.join("z.toml"),
        "[axes]\n\"data.corruption,data.corruption\" = [[0.1, 0.2]]\n",
    )
    .unwrap();
    refused(
        &["sweep", "plan", "z.toml"],
        t,
        &["`data.corruption` is swept twice"],
    );
    std::fs::write(
        t.join("r.toml"),
        "[base]\nmodel.width = 8\ntrain.steps = 1\n[axes]\n\"data.p\" = { from = 11, to = 13, count = 2 }\n",
    )
    .unwrap();
    let o = run(&["sweep", "plan", "r.toml"], t);
    assert!(
        o.status.success(),
        "integer ranges: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    // Whole sections replaced or given as arrays (serde would read them by position).
    refused(
        &["train", "--set", "data=[13]", "--out", "x"],
        t,
        &["one key at a time"],
    );
    refused(
        &["train", "--set", "data.p={a=1}", "--out", "x"],
        t,
        &["one key at a time"],
    );
    std::fs::write(t.join("c13.toml"), "data = [13]\n").unwrap();
    refused(
        &["train", "-c", "c13.toml", "--out", "x"],
        t,
        &["`data` must be a table"],
    );
    // A run whose neurons die is a valid run: its report is written (regression).
    let o = run(
        &[
            "train",
            "-q",
            "--set",
            "data.p=11",
            "--set",
            "model.width=8",
            "--set",
            "train.steps=2000",
            "--out",
            "dying",
        ],
        t,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let m = std::fs::read_to_string(t.join("dying/metrics.csv")).unwrap();
    assert!(
        m.lines().skip(1).any(|l| l.split(',').nth(14) != Some("0")),
        "some neurons die in this run"
    );
    // A file where a directory of results goes is named, not swapped away.
    std::fs::remove_dir_all(t.join("dying/report")).unwrap();
    std::fs::write(t.join("dying/report"), "notes").unwrap();
    refused(
        &["report", "dying", "--force"],
        t,
        &["dying/report", "move it away"],
    );
    // Weights of another run (another step) are refused.
    let o = run(
        &[
            "train",
            "-q",
            "--no-report",
            "--set",
            "data.p=11",
            "--set",
            "model.width=8",
            "--set",
            "train.steps=20",
            "--out",
            "short",
        ],
        t,
    );
    assert!(o.status.success());
    std::fs::copy(
        t.join("dying/weights.safetensors"),
        t.join("short/weights.safetensors"),
    )
    .unwrap();
    refused(
        &["analyze", "short"],
        t,
        &["weights of step 2000", "last step is 20"],
    );
}

#[test]
fn tampered_run_files_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let dir = small_run(t);
    let restore: Vec<(String, Vec<u8>)> =
        ["summary.json", "config.toml", "metrics.csv", "ipr_hist.csv"]
            .iter()
            .map(|f| (f.to_string(), std::fs::read(dir.join(f)).unwrap()))
            .collect();
    let put = |f: &str, text: &str| std::fs::write(dir.join(f), text).unwrap();
    let back = || {
        for (f, b) in &restore {
            std::fs::write(dir.join(f), b).unwrap();
        }
    };
    let cfg = String::from_utf8(restore[1].1.clone()).unwrap();
    let metrics = String::from_utf8(restore[2].1.clone()).unwrap();
    let hist = String::from_utf8(restore[3].1.clone()).unwrap();
    // An emptied summary no longer hides an edited config.
    put("summary.json", "{}");
    put(
        "config.toml",
        &cfg.replace("corruption = 0.35", "corruption = 0.2"),
    );
    for cmd in ["analyze", "prune", "report"] {
        refused(&[cmd, "run", "--force"], t, &["summary.json"]);
    }
    back();
    // metrics.csv: a model's row given to another, steps out of the run, values out of range.
    let dup = metrics.replacen("\n1,0,", "\n0,0,", 1);
    put("metrics.csv", &dup);
    refused(&["report", "run", "--force"], t, &["metrics.csv"]);
    back();
    let last = metrics.lines().last().unwrap().to_string();
    let f: Vec<&str> = last.split(',').collect();
    let beyond = metrics.replace(&last, &[&[f[0], "999999"][..], &f[2..]].concat().join(","));
    put("metrics.csv", &beyond);
    refused(&["report", "run", "--force"], t, &["metrics.csv"]);
    back();
    let acc = metrics.replace(&last, &[&f[..4], &["5.0"][..], &f[5..]].concat().join(","));
    put("metrics.csv", &acc);
    refused(
        &["report", "run", "--force"],
        t,
        &["metrics.csv", "outside [0, 1]"],
    );
    back();
    // A loss near f64::MAX (a diverging model) is drawn, not a hang (fuzzer finding: the
    // log axis's tick search never ended).
    let first1 = metrics
        .lines()
        .find(|l| l.starts_with("1,0,"))
        .unwrap()
        .to_string();
    let mut h1: Vec<String> = first1.split(',').map(String::from).collect();
    h1[3] = "1e308".into();
    put("metrics.csv", &metrics.replace(&first1, &h1.join(",")));
    let o = run(&["report", "run", "--force"], t);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    back();
    // The last row edited within range: it no longer matches summary.json.
    let mut g: Vec<String> = last.split(',').map(String::from).collect();
    g[6] = if g[6] == "0.9" {
        "0.8".into()
    } else {
        "0.9".into()
    };
    put("metrics.csv", &metrics.replace(&last, &g.join(",")));
    refused(
        &["report", "run", "--force"],
        t,
        &["metrics.csv", "summary.json"],
    );
    back();
    // ipr_hist.csv: a row whose bins count other neurons, and a missing file.
    let hlast = hist.lines().last().unwrap().to_string();
    let mut hf: Vec<String> = hlast.split(',').map(String::from).collect();
    hf[2] = "99999".into();
    put("ipr_hist.csv", &hist.replace(&hlast, &hf.join(",")));
    refused(
        &["report", "run", "--force"],
        t,
        &["ipr_hist.csv", "sum to"],
    );
    std::fs::remove_file(dir.join("ipr_hist.csv")).unwrap();
    refused(&["report", "run", "--force"], t, &["ipr_hist.csv"]);
    back();
    // Debris of a dead process is removed by the next command.
    std::fs::create_dir_all(dir.join(".report.new.4000000")).unwrap();
    let o = run(&["report", "run", "--force"], t);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(!dir.join(".report.new.4000000").exists());
}

#[test]
fn tampered_sweep_records_and_curves_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    std::fs::write(
        t.join("s.toml"),
        "name = \"c\"\n[base]\ndata.p = 11\nmodel.width = 8\ntrain.steps = 10\neval.every = 2\n[axes]\n\"data.corruption\" = [0.1, 0.2]\n",
    )
    .unwrap();
    let o = run(&["sweep", "run", "s.toml", "--out", "sw", "-q"], t);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let d = t.join("sw");
    let rec = std::fs::read_to_string(d.join("runs/000001.json")).unwrap();
    let curve0 = std::fs::read(d.join("curves/000000.csv")).unwrap();
    let curve1 = std::fs::read(d.join("curves/000001.csv")).unwrap();
    // Edited by hand: the record's digest refuses it; sealed again, its own checks do.
    std::fs::write(d.join("runs/000001.json"), rec.replace("0.2", "0.7")).unwrap();
    refused(
        &["sweep", "show", "sw"],
        t,
        &["000001.json", "SHA-256 digest"],
    );
    std::fs::write(
        d.join("runs/000001.json"),
        sealed(&rec.replace("0.2", "0.7")),
    )
    .unwrap();
    refused(&["sweep", "show", "sw"], t, &["000001.json", "coordinates"]);
    let v: serde_json::Value = serde_json::from_str(&rec).unwrap();
    let acc = v["final"]["test_acc"].to_string();
    std::fs::write(
        d.join("runs/000001.json"),
        sealed(&rec.replace(&format!("\"test_acc\": {acc}"), "\"test_acc\": 7.5")),
    )
    .unwrap();
    refused(
        &["report", "sw", "--force"],
        t,
        &["000001.json", "outside [0, 1]"],
    );
    // A phase or step count the record's own metrics and config contradict.
    let phase = v["phase"].as_str().unwrap().to_string();
    let other = if phase == "Coexistence" {
        "Forgetting"
    } else {
        "Coexistence"
    };
    std::fs::write(
        d.join("runs/000001.json"),
        sealed(&rec.replace(
            &format!("\"phase\": \"{phase}\""),
            &format!("\"phase\": \"{other}\""),
        )),
    )
    .unwrap();
    refused(&["report", "sw", "--force"], t, &["000001.json", "phase"]);
    std::fs::write(
        d.join("runs/000001.json"),
        sealed(&rec.replace("\"steps\": 10", "\"steps\": 99")),
    )
    .unwrap();
    refused(
        &["sweep", "merge", "--out", "m", "sw"],
        t,
        &["000001.json", "10 steps"],
    );
    std::fs::write(d.join("runs/000001.json"), &rec).unwrap();
    // A curve with a row left out.
    let text = String::from_utf8(curve1.clone()).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    assert!(lines.len() >= 4, "{text}");
    lines.remove(2);
    let cut = lines.join("\n") + "\n";
    std::fs::write(d.join("curves/000001.csv"), &cut).unwrap();
    refused(
        &["report", "sw", "--force"],
        t,
        &["curves/000001.csv", "digest"],
    );
    // With a record that vouches for the cut curve, the curve's own check refuses it.
    let vouching = grokscope::sweep::store::reseal_record(&rec, Some(cut.as_bytes())).unwrap();
    std::fs::write(d.join("runs/000001.json"), &vouching).unwrap();
    refused(
        &["report", "sw", "--force"],
        t,
        &["curves/000001.csv", "evenly"],
    );
    std::fs::write(d.join("runs/000001.json"), &rec).unwrap();
    // Another run's curve, and garbage.
    std::fs::write(d.join("curves/000001.csv"), &curve0).unwrap();
    refused(&["report", "sw", "--force"], t, &["curves/000001.csv"]);
    std::fs::write(d.join("curves/000001.csv"), "garbage").unwrap();
    refused(&["report", "sw", "--force"], t, &["curves/000001.csv"]);
    refused(
        &["sweep", "merge", "--out", "m", "sw"],
        t,
        &["curves/000001.csv"],
    );
    std::fs::write(d.join("curves/000001.csv"), &curve1).unwrap();
    let o = run(&["report", "sw", "--force"], t);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn two_sigterms_at_once_still_save_the_run() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let mut child = Command::new(env!("CARGO_BIN_EXE_grokscope"))
        .args([
            "train",
            "-q",
            "--no-report",
            "--set",
            "data.p=23",
            "--set",
            "model.width=32",
            "--set",
            "train.steps=5000000",
            "--out",
            "run",
        ])
        .current_dir(t)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while !t.join("run/metrics.csv").exists() && start.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(500));
    for _ in 0..2 {
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    }
    assert_eq!(child.wait().unwrap().code(), Some(143));
    let state = std::fs::read_to_string(t.join("run/state.json")).unwrap();
    assert!(state.contains("\"interrupted\""), "{state}");
    assert!(t.join("run/resume.safetensors").exists());
}

/// Standard output that cannot be written (`> /dev/full`) or is closed early (a pipe to
/// `head`) never panics, and the command's files are complete (issue 26).
#[test]
fn a_full_or_closed_standard_output_never_panics() {
    use std::process::{Command, Stdio};
    let full = std::path::Path::new("/dev/full");
    if !full.exists() {
        return; // not Linux
    }
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let to_full = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_grokscope"))
            .args(args)
            .current_dir(t)
            .stdout(std::fs::OpenOptions::new().write(true).open(full).unwrap())
            .output()
            .unwrap()
    };
    let o = to_full(&[
        "train",
        "-q",
        "--set",
        "data.p=11",
        "--set",
        "model.mlp.width=8",
        "--set",
        "train.steps=20",
        "--out",
        "run",
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("cannot write to standard output") && !err.contains("panicked"),
        "{err}"
    );
    assert!(t.join("run/summary.json").is_file() && t.join("run/report/report.html").is_file());
    for args in [&["default-config"][..], &["analyze", "run", "--force"]] {
        let o = to_full(args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            matches!(o.status.code(), Some(1 | 2)) && !err.contains("panicked"),
            "{args:?}: {err}"
        );
        assert!(err.contains("standard output"), "{args:?}: {err}");
    }
    assert!(t.join("run/analysis/neurons.csv").is_file());
    // A reader that stops early: a quiet exit 0.
    let mut child = Command::new(env!("CARGO_BIN_EXE_grokscope"))
        .args(["analyze", "run", "--force"])
        .current_dir(t)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

/// A sweep axis that repeats a value (it would count as two agreeing seeds in
/// phase_grid.csv) and a range of count = 1 whose `to` would be ignored are refused before
/// anything is written (issue 26).
#[test]
fn repeated_axis_values_and_one_point_ranges_with_a_to_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let base = "name = \"d\"\n[base]\ndata.p = 11\nmodel.mlp.width = 8\ntrain.steps = 10\n[axes]\n";
    for (axes, expect) in [
        (
            "\"data.corruption\" = [0.1, 0.2, 0.1]\n",
            &["axes.data.corruption", "given twice", "entries 1 and 3"][..],
        ),
        (
            "\"train.weight_decay\" = [1, 1.0]\n",
            &["axes.train.weight_decay", "given twice"],
        ),
        (
            "\"data.corruption\" = { from = 0.1, to = 0.5, count = 1 }\n",
            &["count = 1", "`to` = 0.5 would be ignored"],
        ),
    ] {
        std::fs::write(t.join("s.toml"), format!("{base}{axes}")).unwrap();
        refused(&["sweep", "plan", "s.toml"], t, expect);
        refused(&["sweep", "run", "s.toml", "--out", "sw", "-q"], t, expect);
        assert!(!t.join("sw").exists());
    }
    // A one-point range with to = from is a plain single value.
    std::fs::write(
        t.join("s.toml"),
        format!("{base}\"data.corruption\" = {{ from = 0.1, to = 0.1, count = 1 }}\n"),
    )
    .unwrap();
    let o = run(&["sweep", "plan", "s.toml"], t);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// A bad value given by `--set` is blamed on that `--set`, with the value (issue 26: it said
/// "in built-in default: invalid train.beta1/beta2").
#[test]
fn set_values_out_of_range_are_blamed_on_the_set() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    for (set, expect) in [
        (
            "train.beta1=1.5",
            &["--set train.beta1=1.5", "= 1.5: must lie in [0, 1)"][..],
        ),
        (
            "train.beta2=nan",
            &["--set train.beta2=nan", "must lie in [0, 1)"],
        ),
    ] {
        let e = refused(&["train", "--set", set, "--out", "x"], t, expect);
        assert!(!e.contains("built-in default"), "{e}");
    }
    let wd = format!(
        "train.weight_decay=[{}]",
        (0..300)
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(",")
    );
    let drop = format!(
        "model.dropout=[{}]",
        (0..300)
            .map(|i| format!("{}", i as f64 / 400.0))
            .collect::<Vec<_>>()
            .join(",")
    );
    let e = refused(
        &["train", "--set", &wd, "--set", &drop, "--out", "x"],
        t,
        &["--set model.dropout=", "90000 models"],
    );
    assert!(!e.contains("built-in default"), "{e}");
}
