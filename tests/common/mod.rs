//! Helpers shared by the integration tests.

use std::path::Path;
use std::process::{Command, Output};

/// Runs the `grokscope` binary with `args` in `cwd`.
#[allow(dead_code)]
pub fn grokscope(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_grokscope"))
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("binary runs")
}

/// Per run, how many times a sweep worker trained it to completion (from the workers' logs).
#[allow(dead_code)]
pub fn trained_counts(dir: &Path) -> std::collections::BTreeMap<usize, usize> {
    let mut out = std::collections::BTreeMap::new();
    for e in std::fs::read_dir(dir.join("workers")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_none_or(|x| x != "log") {
            continue;
        }
        for line in std::fs::read_to_string(&p).unwrap().lines() {
            if let Some(rest) = line.split(" trained unit ").nth(1) {
                let runs = rest.split_once("runs [").unwrap().1.trim_end_matches(']');
                for r in runs.split(',') {
                    *out.entry(r.trim().parse::<usize>().unwrap()).or_default() += 1;
                }
            }
        }
    }
    out
}

/// Trains the checked config `cfg` through the library's entry point for a run
/// (`grokscope::job`) into the new run directory `dir`.
#[allow(dead_code)]
pub fn train_dir(cfg: &grokscope::config::Checked, dir: &Path) {
    use grokscope::job::{Request, Source};
    let request = Request::Fresh {
        source: Source::Config(Box::new(cfg.config().clone())),
        sets: Vec::new(),
        out: Some(dir.to_path_buf()),
        runs_dir: std::path::PathBuf::from("runs"),
    };
    let job = request.resolve().unwrap().create().unwrap();
    job.train(Default::default(), &mut |_| Ok(())).unwrap();
}
