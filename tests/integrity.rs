//! Damaged run files are detected, never silently used (issue 26): 64 bytes inverted in
//! place (the length unchanged, as disks, copies and sync tools damage files) in each kind of
//! file, and every reader refuses it by name, with exit 2 (`verify`: 1), changing nothing.

mod common;

use common::grokscope;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Inverts 64 bytes of `path` starting at `at_fraction` of its length.
fn flip(path: &Path, at_fraction: f64) {
    let mut b = std::fs::read(path).unwrap();
    let n = b.len();
    let start = ((n as f64 * at_fraction) as usize).min(n.saturating_sub(64));
    for x in &mut b[start..(start + 64).min(n)] {
        *x = !*x;
    }
    std::fs::write(path, b).unwrap();
}

/// Every file under `dir` with its bytes.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.insert(p.clone(), std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

/// Runs `args` in `cwd` and asserts exit `code` with every string of `expect` on stderr.
fn refused(args: &[&str], cwd: &Path, code: i32, expect: &[&str]) {
    let o = grokscope(args, cwd);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(o.status.code(), Some(code), "{args:?}: {text}");
    for e in expect {
        assert!(text.contains(e), "{args:?}: expected {e:?} in {text}");
    }
}

fn small(out: &str, extra: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = [
        "train",
        "-q",
        "--no-report",
        "--set",
        "data.p=11",
        "--set",
        "model.width=8",
        "--set",
        "train.steps=200",
        "--set",
        "eval.every=50",
        "--set",
        "eval.checkpoint_every=100",
        "--set",
        "train.weight_decay=[0, 1]",
        "--out",
        out,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for e in extra {
        v.push("--set".into());
        v.push(e.to_string());
    }
    v
}

fn train(args: &[String], cwd: &Path) {
    let a: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
    let o = grokscope(&a, cwd);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn damaged_weights_dataset_and_checkpoints_are_refused_by_name() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    train(&small("run", &[]), t);
    train(&small("seed1", &["model.init_seed=1"]), t);
    let dir = t.join("run");
    refused(&["verify", "run"], t, 0, &["run: whole"]);
    let whole = snapshot(&dir);
    let ckpt = "checkpoints/step-00000100.safetensors";
    assert!(dir.join(ckpt).is_file());
    // Weights: near the start (the header), in the middle, near the end (tensor data).
    for at in [0.05, 0.5, 0.97] {
        flip(&dir.join("weights.safetensors"), at);
        for args in [
            &["analyze", "run"][..],
            &["prune", "run"],
            &["report", "run"],
            &["scores", "run"],
        ] {
            refused(args, t, 2, &["run/weights.safetensors"]);
        }
        refused(&["verify", "run"], t, 1, &["run/weights.safetensors"]);
        assert!(!dir.join("analysis").exists() && !dir.join("report").exists());
        std::fs::write(
            dir.join("weights.safetensors"),
            &whole[&dir.join("weights.safetensors")],
        )
        .unwrap();
    }
    // In the tensor data, the message says what happened and what to do.
    flip(&dir.join("weights.safetensors"), 0.9);
    refused(
        &["analyze", "run"],
        t,
        2,
        &[
            "SHA-256 digest",
            "changed or damaged",
            "grokscope train --config",
        ],
    );
    // The dataset and a checkpoint: `verify` names them.
    for name in ["dataset.safetensors", ckpt] {
        flip(&dir.join(name), 0.6);
        refused(&["verify", "run"], t, 1, &[name, "digest"]);
    }
    for (p, b) in &whole {
        std::fs::write(p, b).unwrap();
    }
    // A whole file of another run (another init seed): refused as another run's.
    std::fs::copy(
        t.join("seed1/weights.safetensors"),
        dir.join("weights.safetensors"),
    )
    .unwrap();
    refused(
        &["analyze", "run"],
        t,
        2,
        &["run/weights.safetensors", "another run"],
    );
    std::fs::copy(
        t.join("seed1/dataset.safetensors"),
        dir.join("dataset.safetensors"),
    )
    .unwrap();
    refused(&["verify", "run"], t, 1, &["dataset.safetensors"]);
    // The refusals wrote nothing: the directory is as it was, apart from the copies.
    let now = snapshot(&dir);
    assert_eq!(now.len(), whole.len());
    for (p, b) in &whole {
        if !p.ends_with("weights.safetensors") && !p.ends_with("dataset.safetensors") {
            assert_eq!(&now[p], b, "{}", p.display());
        }
    }
    // Restored, everything reads again.
    for (p, b) in &whole {
        std::fs::write(p, b).unwrap();
    }
    refused(&["verify", "run"], t, 0, &["whole"]);
    let o = grokscope(&["analyze", "run"], t);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// Sends SIGINT to the child (through libc: a minimal system may have no `kill` program).
fn interrupt(child: &Child) {
    // SAFETY: kill(2) on the pid of a child this test spawned and has not yet waited for.
    let rc = unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
    assert_eq!(rc, 0);
}

#[test]
fn a_damaged_resume_state_is_refused_and_left_as_it_is() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let args: Vec<String> = [
        "train",
        "--no-report",
        "--set",
        "data.p=31",
        "--set",
        "model.width=64",
        "--set",
        "train.batch_size=32",
        "--set",
        "train.steps=40000",
        "--set",
        "eval.every=50",
        "--out",
        "part",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut child = Command::new(env!("CARGO_BIN_EXE_grokscope"))
        .args(&args)
        .current_dir(t)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while std::fs::read_to_string(t.join("part/metrics.csv")).map_or(0, |m| m.lines().count()) < 4 {
        assert!(t0.elapsed() < Duration::from_secs(120), "never got going");
        std::thread::sleep(Duration::from_millis(20));
    }
    interrupt(&child);
    let status = child.wait().unwrap();
    let mut err = String::new();
    BufReader::new(child.stderr.take().unwrap())
        .read_line(&mut err)
        .ok();
    assert_eq!(status.code(), Some(130), "{err}");
    let dir = t.join("part");
    let resume = dir.join("resume.safetensors");
    assert!(resume.is_file());
    let whole = snapshot(&dir);
    flip(&resume, 0.5);
    let damaged = snapshot(&dir);
    refused(
        &["train", "-q", "--no-report", "--resume", "part"],
        t,
        2,
        &["part/resume.safetensors", "SHA-256 digest"],
    );
    assert_eq!(snapshot(&dir), damaged, "nothing written, the state kept");
    refused(&["verify", "part"], t, 1, &["part/resume.safetensors"]);
    // Restored, it is whole again (and would resume).
    std::fs::write(&resume, &whole[&resume]).unwrap();
    refused(&["verify", "part"], t, 0, &["whole"]);
}

#[test]
fn damaged_sweep_records_curves_and_checkpoints_are_not_merged() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    std::fs::write(
        t.join("s.toml"),
        "name = \"i\"\n[base]\ndata.p = 11\nmodel.width = 8\ntrain.steps = 20\neval.every = 5\neval.checkpoint_every = 10\n[axes]\n\"train.weight_decay\" = [0, 1]\n",
    )
    .unwrap();
    let o = grokscope(&["sweep", "run", "s.toml", "--out", "sw", "-q"], t);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    refused(&["verify", "sw"], t, 0, &["whole"]);
    let d = t.join("sw");
    let whole = snapshot(&d);
    // One digit of a record's number changed (the length unchanged).
    let rec = std::fs::read_to_string(d.join("runs/000001.json")).unwrap();
    let at = rec.find("\"test_acc\": ").unwrap() + "\"test_acc\": ".len();
    let mut bad = rec.clone().into_bytes();
    bad[at] = if bad[at] == b'0' { b'1' } else { b'0' };
    std::fs::write(d.join("runs/000001.json"), &bad).unwrap();
    refused(
        &["sweep", "merge", "--out", "m", "sw"],
        t,
        2,
        &["runs/000001.json", "digest"],
    );
    refused(&["verify", "sw"], t, 1, &["runs/000001.json"]);
    assert!(!t.join("m").exists());
    std::fs::write(d.join("runs/000001.json"), &rec).unwrap();
    // A curve and a checkpoint with bytes inverted.
    for name in [
        "curves/000000.csv",
        "checkpoints/run-000001/step-00000010.safetensors",
    ] {
        let path = d.join(name);
        flip(&path, 0.5);
        refused(&["sweep", "merge", "--out", "m", "sw"], t, 2, &[name]);
        refused(&["verify", "sw"], t, 1, &[name]);
        assert!(!t.join("m").exists(), "{name}");
        std::fs::write(&path, &whole[&path]).unwrap();
    }
    let o = grokscope(&["sweep", "merge", "--out", "m", "sw"], t);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    refused(&["verify", "m"], t, 0, &["whole"]);
}
