//! Run directories written by the previous release (tests/fixtures/release-0.1/) still load,
//! report, analyse and resume with the current code.

mod common;

use common::grokscope;
use std::path::{Path, PathBuf};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/release-0.1")
        .join(name)
}

/// A copy of the fixture `name` in a new temporary directory (the fixture itself is never
/// written to).
fn copy_of(name: &str, tmp: &Path) -> PathBuf {
    let dest = tmp.join(name);
    std::fs::create_dir_all(&dest).unwrap();
    for e in std::fs::read_dir(fixture(name)).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), dest.join(e.file_name())).unwrap();
    }
    dest
}

fn ok(out: &std::process::Output, what: &str) {
    assert!(
        out.status.success(),
        "{what}: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn finished_runs_of_the_previous_release_load_report_and_analyse() {
    let tmp = tempfile::tempdir().unwrap();
    for name in ["finished", "transformer"] {
        let dir = copy_of(name, tmp.path());
        // Through the library: the config checks, the weights fit, the summary reads back.
        let run = grokscope::rundir::RunDir::open(&dir).unwrap();
        let loaded = run.load().unwrap();
        let n = loaded.setup.specs.len();
        let history = run.read_history(n).unwrap();
        assert_eq!(history.len(), n, "{name}");
        assert!(history
            .iter()
            .all(|h| h.last().is_some_and(|r| r.step == loaded.setup.total_steps)));
        // Through the CLI: analysis and report are written.
        let d = dir.to_str().unwrap();
        let analyzed = grokscope(&["analyze", d], tmp.path());
        ok(&analyzed, "analyze");
        // Its weights have no content digest: read unchecked, with a note saying so.
        let err = String::from_utf8_lossy(&analyzed.stderr);
        assert!(
            err.contains("weights.safetensors has no content digest"),
            "{name}: {err}"
        );
        // `verify` finds nothing wrong, and says what it could not check.
        let v = grokscope(&["verify", d], tmp.path());
        ok(&v, "verify");
        assert!(
            String::from_utf8_lossy(&v.stderr).contains("no content digest"),
            "{name}"
        );
        ok(&grokscope(&["report", d], tmp.path()), "report");
        assert!(dir.join("analysis/neurons.csv").is_file(), "{name}");
        assert!(dir.join("report/report.html").is_file(), "{name}");
        // What the old release wrote is left as it was.
        for f in [
            "metrics.csv",
            "summary.json",
            "weights.safetensors",
            "config.toml",
        ] {
            assert_eq!(
                std::fs::read(dir.join(f)).unwrap(),
                std::fs::read(fixture(name).join(f)).unwrap(),
                "{name}/{f}"
            );
        }
    }
}

#[test]
fn an_interrupted_run_of_the_previous_release_resumes() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = copy_of("interrupted", tmp.path());
    let before = std::fs::read_to_string(dir.join("metrics.csv")).unwrap();
    let out = grokscope(
        &[
            "train",
            "-q",
            "--no-report",
            "--resume",
            dir.to_str().unwrap(),
        ],
        tmp.path(),
    );
    ok(&out, "resume");
    let state = std::fs::read_to_string(dir.join("state.json")).unwrap();
    assert!(state.contains("\"finished\""), "{state}");
    // The final training state is kept: the run may be extended.
    assert!(dir.join("resume.safetensors").is_file());
    let after = std::fs::read_to_string(dir.join("metrics.csv")).unwrap();
    // The rows the previous release streamed are kept as they were, the columns added since
    // (the progress measures) empty; the run goes on to the last step (20 000, evaluated
    // every 500: 41 rows per model and a header).
    for (b, a) in before.lines().zip(after.lines()) {
        let rest = a
            .strip_prefix(b)
            .unwrap_or_else(|| panic!("earlier row kept: {b} → {a}"));
        let header = b.starts_with("model,");
        assert!(
            header || rest.chars().all(|c| c == ','),
            "new columns empty: {a}"
        );
    }
    assert_eq!(after.lines().count(), 1 + 2 * 41);
    assert!(dir.join("weights.safetensors").is_file());

    // The same config trained here without interruption: where this machine computes the
    // previous release's bits (its rows up to the interruption agree), the resumed run equals
    // it byte for byte.
    let fresh = tmp.path().join("fresh");
    let cfg = fixture("fx-long.toml");
    let out = grokscope(
        &[
            "train",
            "-q",
            "--no-report",
            "-c",
            cfg.to_str().unwrap(),
            "--out",
            fresh.to_str().unwrap(),
        ],
        tmp.path(),
    );
    ok(&out, "fresh run");
    let fresh_metrics = std::fs::read_to_string(fresh.join("metrics.csv")).unwrap();
    let early = |s: &str| {
        s.lines()
            .filter(|l| {
                let step = l.split(',').nth(1).and_then(|x| x.parse::<u64>().ok());
                step.is_none_or(|s| s <= 4000)
            })
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    // The previous release's 16 columns of every row; the rows it did not write, whole.
    let old_columns = |s: &str| {
        s.lines()
            .map(|l| l.split(',').take(16).collect::<Vec<_>>().join(","))
            .collect::<Vec<_>>()
    };
    let late = |s: &str| {
        s.lines()
            .filter(|l| {
                let step = l.split(',').nth(1).and_then(|x| x.parse::<u64>().ok());
                step.is_some_and(|s| s > 4000)
            })
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    if old_columns(&early(&fresh_metrics).join("\n")) == old_columns(&early(&before).join("\n")) {
        assert_eq!(
            old_columns(&after),
            old_columns(&fresh_metrics),
            "resumed = uninterrupted"
        );
        assert_eq!(
            late(&after),
            late(&fresh_metrics),
            "the resumed evaluations, whole"
        );
        for f in ["summary.json", "weights.safetensors", "ipr_hist.csv"] {
            assert_eq!(
                std::fs::read(dir.join(f)).unwrap(),
                std::fs::read(fresh.join(f)).unwrap(),
                "{f}"
            );
        }
    } else {
        eprintln!(
            "this machine's floating-point bits differ from the fixture's: byte comparison skipped"
        );
    }
}
