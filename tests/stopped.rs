//! Runs stopped by what happens to their directory while they train, and the ways on from a
//! stopped or finished run (issue 26's findings): a write that fails saves the state and
//! says how to continue, state.json never stays "running" for a run no process trains, a run
//! that saved nothing trains again from step 0, and a finished run is extended to a longer
//! length with its first steps unchanged.

mod common;
use common::grokscope;

use grokscope::job::{Request, Source};
use std::path::{Path, PathBuf};
use std::process::Command;

const OUTPUTS: [&str; 5] = [
    "metrics.csv",
    "ipr_hist.csv",
    "summary.json",
    "weights.safetensors",
    "dataset.safetensors",
];

fn sets(steps: u64, extra: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = [
        "data.p=13",
        "model.width=32",
        "data.corruption=0.2",
        "eval.every=10",
        "eval.progress_every=2",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    v.push(format!("train.steps={steps}"));
    v.extend(extra.iter().map(|s| s.to_string()));
    v
}

fn fresh(dir: &Path, steps: u64, extra: &[&str]) -> Request {
    Request::Fresh {
        source: Source::Default,
        sets: sets(steps, extra),
        out: Some(dir.to_path_buf()),
        runs_dir: PathBuf::from("runs"),
    }
}

fn resume(dir: &Path, sets: &[&str]) -> Request {
    Request::Resume {
        dir: dir.to_path_buf(),
        sets: sets.iter().map(|s| s.to_string()).collect(),
    }
}

/// Trains `request` to its end, calling `at(step)` after every step.
fn train(request: Request, at: &mut dyn FnMut(u64)) -> grokscope::Result<()> {
    let job = request.resolve()?.create()?;
    job.train(Default::default(), &mut |p| {
        at(p.step);
        Ok(())
    })
    .map(|_| ())
}

/// Trains `request`, stopped by an error of its caller at step `stop`.
fn train_stopped(request: Request, stop: u64) -> String {
    let job = request.resolve().unwrap().create().unwrap();
    let end = job.train(Default::default(), &mut |p| match p.step == stop {
        true => Err(grokscope::Error::Config("stopped by the test".into())),
        false => Ok(()),
    });
    end.err().expect("stopped").to_string()
}

fn state(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("state.json")).unwrap()
}

fn assert_same(a: &Path, b: &Path) {
    for f in OUTPUTS {
        let (x, y) = (std::fs::read(a.join(f)), std::fs::read(b.join(f)));
        assert!(x.is_ok() && x.ok() == y.ok(), "{f} differs");
    }
}

fn temps(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| n.ends_with(".tmp"))
        .collect()
}

#[test]
fn a_file_in_place_of_checkpoints_stops_the_run_with_its_state_saved() {
    let t = tempfile::tempdir().unwrap();
    let (full, part) = (t.path().join("full"), t.path().join("part"));
    let every = ["eval.checkpoint_every=20"];
    train(fresh(&full, 60, &every), &mut |_| {}).unwrap();
    // A file appears where checkpoints/ was while the run trains.
    let ck = part.join("checkpoints");
    let err = train(fresh(&part, 60, &every), &mut |step| {
        if step == 25 {
            std::fs::remove_dir_all(&ck).unwrap();
            std::fs::write(&ck, "not a directory").unwrap();
        }
    })
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("checkpoints: is a file, not a directory")
            && err.contains("state at step 40 is saved")
            && err.contains("--resume"),
        "{err}"
    );
    assert!(!err.contains("os error"), "{err}");
    assert!(state(&part).contains("\"interrupted\""), "{}", state(&part));
    // Resuming with the file still there is refused before a step is trained, naming it.
    let again = train(resume(&part, &[]), &mut |_| {})
        .unwrap_err()
        .to_string();
    assert!(again.contains("checkpoints: is a file"), "{again}");
    std::fs::remove_file(&ck).unwrap();
    train(resume(&part, &[]), &mut |_| {}).unwrap();
    assert_same(&full, &part);
    for k in [40, 60] {
        let name = format!("checkpoints/step-{k:08}.safetensors");
        let (a, b) = (
            std::fs::read(full.join(&name)),
            std::fs::read(part.join(&name)),
        );
        assert!(a.is_ok() && a.ok() == b.ok(), "{name}");
    }
}

#[test]
fn metrics_removed_while_training_are_written_whole_at_the_end() {
    let t = tempfile::tempdir().unwrap();
    let (full, part) = (t.path().join("full"), t.path().join("part"));
    train(fresh(&full, 80, &[]), &mut |_| {}).unwrap();
    train(fresh(&part, 80, &[]), &mut |step| {
        if step == 30 {
            std::fs::remove_file(part.join("metrics.csv")).unwrap();
            std::fs::write(part.join("ipr_hist.csv"), "cut").unwrap();
        }
    })
    .unwrap();
    assert_same(&full, &part);
}

#[test]
fn an_autosave_on_a_full_disk_leaves_no_temporary_and_the_run_interrupted() {
    let t = tempfile::tempdir().unwrap();
    let mut args = vec!["train", "--no-report", "-q", "--out", "run"];
    let sets = sets(400_000, &["eval.autosave_minutes=0.001", "eval.every=1000"]);
    for s in &sets {
        args.extend(["--set", s]);
    }
    let out = Command::new(env!("CARGO_BIN_EXE_grokscope"))
        .args(&args)
        .current_dir(t.path())
        .env("GROKSCOPE_DISK_FULL", "resume.safetensors")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("resume.safetensors") && err.contains("No space left on device"),
        "{err}"
    );
    assert!(
        err.contains("no state was saved yet") && err.contains("--resume run"),
        "{err}"
    );
    let dir = t.path().join("run");
    assert_eq!(temps(&dir), Vec::<String>::new());
    assert!(state(&dir).contains("\"interrupted\""), "{}", state(&dir));
    assert!(!dir.join("resume.safetensors").exists());
}

#[test]
fn a_run_that_saved_no_state_trains_again_from_step_0() {
    let t = tempfile::tempdir().unwrap();
    let (full, part) = (t.path().join("full"), t.path().join("part"));
    train(fresh(&full, 60, &[]), &mut |_| {}).unwrap();
    // As a run killed before its first autosave leaves it: state.json "running" at step 0,
    // some rows streamed, no resume.safetensors.
    let killed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        train(fresh(&part, 60, &[]), &mut |step| {
            assert!(step < 35, "killed");
        })
    }));
    assert!(killed.is_err());
    assert!(state(&part).contains("\"running\""), "{}", state(&part));
    assert!(!part.join("resume.safetensors").exists());
    let resolved = resume(&part, &[]).resolve().unwrap();
    assert!(
        resolved
            .notes
            .iter()
            .any(|n| n.contains("training it again from step 0")),
        "{:?}",
        resolved.notes
    );
    assert!(resolved.resume_point().is_none());
    train(resume(&part, &[]), &mut |_| {}).unwrap();
    assert_same(&full, &part);
}

#[test]
fn a_finished_run_is_extended_to_the_bytes_of_the_longer_run() {
    let t = tempfile::tempdir().unwrap();
    let p = |n: &str| t.path().join(n);
    // 65 steps: its last evaluation is off the schedule of 10 and measures progress, which
    // the 100-step run does not at 65; 60 steps: on it, progress measured at the end only.
    for (short, steps) in [("a", 65), ("b", 60)] {
        train(fresh(&p(short), steps, &[]), &mut |_| {}).unwrap();
        assert!(p(short).join("resume.safetensors").is_file());
        train(resume(&p(short), &["train.steps=100"]), &mut |_| {}).unwrap();
    }
    train(fresh(&p("long"), 100, &[]), &mut |_| {}).unwrap();
    assert_same(&p("long"), &p("a"));
    assert_same(&p("long"), &p("b"));
    assert!(state(&p("a")).contains("\"finished\""));
    let verify = grokscope(&["verify", "a"], t.path());
    assert!(verify.status.success(), "{verify:?}");
    // An interrupted extension continues (from the final state) to the same bytes.
    train(fresh(&p("c"), 50, &[]), &mut |_| {}).unwrap();
    let err = train_stopped(resume(&p("c"), &["train.steps=100"]), 70);
    assert!(
        err.contains("stopped by the test") && err.contains("state at step 50 is saved"),
        "{err}"
    );
    assert!(state(&p("c")).contains("\"interrupted\""));
    train(resume(&p("c"), &[]), &mut |_| {}).unwrap();
    assert_same(&p("long"), &p("c"));
}

#[test]
fn extending_is_refused_for_other_settings_a_shorter_length_and_a_stale_analysis() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("run");
    train(fresh(&dir, 40, &[]), &mut |_| {}).unwrap();
    let before: Vec<Vec<u8>> = ["config.toml", "resume.safetensors", "summary.json"]
        .iter()
        .map(|f| std::fs::read(dir.join(f)).unwrap())
        .collect();
    let refused = |sets: &[&str], expect: &str| {
        let e = train(resume(&dir, sets), &mut |_| {})
            .unwrap_err()
            .to_string();
        assert!(e.contains(expect), "{sets:?}: {e}");
    };
    refused(&[], "finished already (40 steps)");
    refused(&["train.steps=30"], "can only be extended");
    refused(&["train.steps=40"], "can only be extended");
    refused(&["data.p=17"], "only its length may change");
    refused(
        &["train.steps=80", "train.weight_decay=1"],
        "only its length",
    );
    std::fs::create_dir(dir.join("analysis")).unwrap();
    refused(&["train.steps=80"], "holds the analysis of the 40-step run");
    std::fs::remove_dir(dir.join("analysis")).unwrap();
    // A finished run whose final state is missing (written before it was kept) says how to
    // train the longer run anew.
    std::fs::rename(dir.join("resume.safetensors"), t.path().join("kept")).unwrap();
    refused(&["train.steps=80"], "cannot be extended");
    std::fs::rename(t.path().join("kept"), dir.join("resume.safetensors")).unwrap();
    let after: Vec<Vec<u8>> = ["config.toml", "resume.safetensors", "summary.json"]
        .iter()
        .map(|f| std::fs::read(dir.join(f)).unwrap())
        .collect();
    assert!(before == after, "a refused extension changed the run");
}
