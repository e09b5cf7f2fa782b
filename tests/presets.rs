//! The shipped configs by name: `grokscope presets`, `train --preset`, `sweep plan NAME`, and
//! `job` from a preset — each the same as the file in configs/.

mod common;
use common::grokscope;

use std::path::Path;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn every_file_of_configs_is_a_preset_printed_to_the_byte() {
    let tmp = tempfile::tempdir().unwrap();
    let mut files: Vec<(String, std::path::PathBuf)> = ["configs/paper", "configs/real"]
        .iter()
        .flat_map(|d| std::fs::read_dir(root().join(d)).unwrap())
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .map(|p| (p.file_stem().unwrap().to_string_lossy().to_string(), p))
        .collect();
    files.push(("default".into(), root().join("configs/default.toml")));
    let list = grokscope(&["presets"], tmp.path());
    assert!(list.status.success(), "{}", text(&list));
    let listed = String::from_utf8_lossy(&list.stdout).to_string();
    assert_eq!(listed.lines().count(), files.len(), "{listed}");
    for (name, path) in &files {
        assert!(
            listed
                .lines()
                .any(|l| l.split_whitespace().next() == Some(name)),
            "{name} listed"
        );
        let shown = grokscope(&["presets", name], tmp.path());
        assert!(shown.status.success(), "{}", text(&shown));
        assert_eq!(shown.stdout, std::fs::read(path).unwrap(), "{name}");
    }
    let bad = grokscope(&["presets", "no-such"], tmp.path());
    assert_eq!(bad.status.code(), Some(2));
    assert!(text(&bad).contains("\"no-such\": no such preset (presets: default,"));
}

#[test]
fn train_preset_equals_train_config_file() {
    let tmp = tempfile::tempdir().unwrap();
    let sets = [
        "--set",
        "train.steps=40",
        "--set",
        "eval.every=10",
        "--set",
        "model.width=32",
        "--set",
        "data.p=23",
    ];
    let run = |how: &[&str], out: &str| {
        let mut args = vec!["train", "-q", "--no-report", "--out", out];
        args.extend_from_slice(how);
        args.extend_from_slice(&sets);
        let o = grokscope(&args, tmp.path());
        assert!(o.status.success(), "{}", text(&o));
    };
    let file = root().join("configs/paper/minibatch.toml");
    run(&["--preset", "minibatch"], "by-name");
    run(&["-c", file.to_str().unwrap()], "by-file");
    for f in [
        "metrics.csv",
        "summary.json",
        "weights.safetensors",
        "dataset.safetensors",
    ] {
        assert_eq!(
            std::fs::read(tmp.path().join("by-name").join(f)).unwrap(),
            std::fs::read(tmp.path().join("by-file").join(f)).unwrap(),
            "{f}"
        );
    }
}

#[test]
fn a_sweep_preset_is_refused_by_train_and_planned_by_sweep() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("never");
    let o = grokscope(
        &[
            "train",
            "--preset",
            "phase-wd-quick",
            "--out",
            out.to_str().unwrap(),
        ],
        tmp.path(),
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("is a sweep") && text(&o).contains("grokscope sweep run phase-wd-quick"),
        "{}",
        text(&o)
    );
    assert!(!out.exists(), "nothing written");
    // A training preset is not a sweep.
    let o = grokscope(&["sweep", "plan", "minibatch"], tmp.path());
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("training config, not a sweep"),
        "{}",
        text(&o)
    );
    // A directory named like a preset does not hide it; a file of that name wins.
    std::fs::create_dir(tmp.path().join("phase-wd-quick")).unwrap();
    let o = grokscope(&["sweep", "plan", "phase-wd-quick"], tmp.path());
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("100 runs"), "{}", text(&o));
    std::fs::write(
        tmp.path().join("minibatch"),
        "name = \"mine\"\n[base]\ndata.p = 11\n[axes]\n\"train.weight_decay\" = [0, 1]\n",
    )
    .unwrap();
    let o = grokscope(&["sweep", "plan", "minibatch"], tmp.path());
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("mine: 2 runs"), "{}", text(&o));
}

#[test]
fn a_request_resolves_without_writing_and_blames_the_override() {
    use grokscope::job::{Request, Source};
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let request = |sets: &[&str]| Request::Fresh {
        source: Source::Preset("grokking".into()),
        sets: sets.iter().map(|s| s.to_string()).collect(),
        out: Some(out.clone()),
        runs_dir: tmp.path().to_path_buf(),
    };
    let err = request(&["data.p=1"]).resolve().err().expect("refused");
    assert!(
        err.to_string()
            .starts_with("--set data.p=1: invalid `data.p`"),
        "{err}"
    );
    let resolved = request(&["data.p=11", "model.width=8"]).resolve().unwrap();
    assert_eq!(resolved.dir(), out);
    assert!(!out.exists(), "resolving writes nothing");
    let job = resolved.create().unwrap();
    assert!(out.join("config.toml").is_file());
    assert!(!job.resumed);
}

/// `grokscope default-config` is the commented starting point README promises: read as TOML
/// it is the built-in default, and every other key is there, commented out, with its meaning.
#[test]
fn default_config_is_the_default_with_every_key_commented() {
    use grokscope::config::{presets::commented_default, Config, DEFAULT_CONFIG};
    let text = commented_default();
    let a = Config::from_toml(&text, &[]).unwrap();
    let b = Config::from_toml(DEFAULT_CONFIG, &[]).unwrap();
    assert_eq!(a.fingerprint(), b.fingerprint());
    for key in [
        "split_seed",
        "corruption_mode",
        "init_seed",
        "dropout",
        "batch_seed",
        "checkpoint_every",
        "autosave_minutes",
        "progress_every",
    ] {
        assert!(
            text.lines()
                .any(|l| l.starts_with(&format!("# {key} = ")) && l.contains(" # ")),
            "{key} is not listed with its meaning"
        );
    }
}
