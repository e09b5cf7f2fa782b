//! Real data through the command line: a short Fashion-MNIST run of the deep MLP on the
//! installed files, and every bad dataset setting or file refused with exit 2, naming what is
//! wrong, before anything is written.

mod common;

use common::grokscope;
use std::io::Write;
use std::path::Path;

fn text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

const DEEP: &str = r#"
name = "fm"
[data]
dataset = "fashion-mnist"
n_train = 300
n_test = 200
corruption = 0.3
[model]
kind = "deep"
[model.deep]
widths = [32, 16]
[train]
loss = "ce"
lr = 0.003
batch_size = 50
epochs = 4
weight_decay = [0.0, 1.0]
[eval]
every = 0
"#;

fn train(dir: &Path, config: &str, sets: &[&str], out: &str) -> std::process::Output {
    std::fs::write(dir.join("c.toml"), config).unwrap();
    let mut args = vec!["train", "-q", "--no-report", "-c", "c.toml", "--out", out];
    for s in sets {
        args.extend(["--set", s]);
    }
    grokscope(&args, dir)
}

#[test]
fn a_short_fashion_mnist_run_of_the_deep_mlp() {
    let tmp = tempfile::tempdir().unwrap();
    let out = train(tmp.path(), DEEP, &[], "run");
    assert!(out.status.success(), "{}", text(&out));
    let t = text(&out);
    // 4 epochs of 6 steps; both models learn something (chance is 0.1).
    assert!(t.contains("24 steps × 2 models"), "{t}");
    let summary = std::fs::read_to_string(tmp.path().join("run/summary.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&summary).unwrap();
    for m in v["models"].as_array().unwrap() {
        let test = m["final"]["test_acc"].as_f64().unwrap();
        assert!(test > 0.3, "{m}");
    }
    assert_eq!(v["n_train"], 300);
    assert_eq!(v["n_test"], 200);
    // The report shows corrupted images with their labels; no Fourier figures.
    let rep = grokscope(&["report", "run"], tmp.path());
    assert!(rep.status.success(), "{}", text(&rep));
    let dir = tmp.path().join("run/report");
    for f in ["samples-model0.png", "samples-model1.svg", "accuracy.png"] {
        assert!(dir.join(f).is_file(), "{f}");
    }
    assert!(!dir.join("ipr.png").exists());
    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    assert!(html.contains("Corrupted examples") && html.contains("no Fourier basis"));
    // The scores of its units, with the pruning curves by each score.
    let sc = grokscope(&["scores", "run", "--model", "1"], tmp.path());
    assert!(sc.status.success(), "{}", text(&sc));
    let csv = std::fs::read_to_string(tmp.path().join("run/analysis/scores.csv")).unwrap();
    assert_eq!(csv.lines().count(), 1 + 48, "{csv}");
    assert!(csv.starts_with("model,layer,unit,ablation,ablation_clean,data_ipr,attribution"));
    assert!(tmp
        .path()
        .join("run/analysis/prune-by-ablation_clean-highest.csv")
        .is_file());
    for l in 0..2 {
        let f = format!("run/analysis/prune-by-data_ipr-lowest-layer{l}.csv");
        assert!(tmp.path().join(&f).is_file(), "{f}");
    }
    let again = grokscope(&["scores", "run", "--model", "1"], tmp.path());
    assert_eq!(again.status.code(), Some(2), "{}", text(&again));
    assert!(text(&again).contains("--force"), "{}", text(&again));
    // The report draws the pruning curves it finds (model 1's only), and refuses a damaged file.
    let rep = grokscope(&["report", "--force", "run"], tmp.path());
    assert!(rep.status.success(), "{}", text(&rep));
    assert!(dir.join("prune-scores-model1.png").is_file());
    assert!(dir.join("prune-layers-model1.svg").is_file());
    assert!(!dir.join("prune-scores-model0.png").exists());
    let bad = tmp.path().join("run/analysis/prune-by-gamma-highest.csv");
    std::fs::write(&bad, "model,pruned\n").unwrap();
    let rep = grokscope(&["report", "--force", "run"], tmp.path());
    assert_eq!(rep.status.code(), Some(2), "{}", text(&rep));
    assert!(
        text(&rep).contains("prune-by-gamma-highest.csv"),
        "{}",
        text(&rep)
    );
    assert!(
        dir.join("prune-scores-model1.png").is_file(),
        "the previous report stays"
    );
}

#[test]
fn bad_dataset_settings_and_files_exit_2_naming_the_problem() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let broken = dir.join("broken");
    std::fs::create_dir(&broken).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&[0, 0, 8, 3, 0, 0, 0, 2]).unwrap();
    std::fs::write(
        broken.join("train-images-idx3-ubyte.gz"),
        gz.finish().unwrap(),
    )
    .unwrap();
    for name in [
        "train-labels-idx1-ubyte",
        "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
    ] {
        std::fs::write(broken.join(format!("{name}.gz")), b"not gzip").unwrap();
    }
    let broken_set = format!("data.path={:?}", broken.display().to_string());
    let empty_set = format!("data.path={:?}", dir.join("nothing").display().to_string());
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["model.kind=\"mlp\""],
            "two-layer MLP reads token pairs",
        ),
        (
            vec!["data.dataset=\"table\""],
            "this key is for dense datasets",
        ),
        (vec!["data.n_train=70000"], "data.n_train"),
        (vec!["data.dataset=\"cifar\""], "data.dataset"),
        (vec!["model.deep.widths=[]"], "model.deep.widths"),
        (vec!["model.deep.norm=\"group\""], "model.deep.norm"),
        (vec![&empty_set], "invalid `data.path`"),
        (vec![&broken_set], "train-images-idx3-ubyte"),
    ];
    for (i, (sets, want)) in cases.iter().enumerate() {
        let out_dir = format!("out{i}");
        let out = train(dir, DEEP, sets, &out_dir);
        assert_eq!(out.status.code(), Some(2), "{sets:?}: {}", text(&out));
        assert!(text(&out).contains(want), "{sets:?}: {}", text(&out));
        assert!(!dir.join(&out_dir).exists(), "{sets:?} wrote {out_dir}");
    }
    // The default location, when it lacks the file, names the install script.
    std::fs::write(
        dir.join("c.toml"),
        DEEP.replace("fashion-mnist", "mnist-5k"),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_grokscope"))
        .args(["train", "-q", "-c", "c.toml", "--out", "out-5k"])
        .env("GROKSCOPE_DATA", dir.join("empty"))
        .current_dir(dir)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("scripts/install-datasets"),
        "{}",
        text(&out)
    );
    assert!(!dir.join("out-5k").exists());
    let table = "[model]\nkind = \"deep\"\n";
    let out = train(dir, table, &[], "out-table");
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("the deep MLP reads dense feature vectors"),
        "{}",
        text(&out)
    );
}

#[test]
fn keys_that_do_not_apply_are_warned_about() {
    use grokscope::config::Config;
    let warn = |text: &str| -> Vec<String> {
        Config::from_toml(text, &[])
            .unwrap()
            .check()
            .unwrap()
            .warnings()
            .to_vec()
    };
    let dense = "[data]\ndataset = \"mnist1d\"\n[model]\nkind = \"deep\"\n";
    assert!(warn(dense).is_empty(), "{:?}", warn(dense));
    let w = warn(&format!("{dense}[model.mlp]\nwidth = 10\n"));
    assert!(w.iter().any(|x| x.contains("[model.mlp] is set")), "{w:?}");
    let w = warn(&dense.replace("[data]\n", "[data]\np = 11\n"));
    assert!(w.iter().any(|x| x.contains("data.p")), "{w:?}");
    let w = warn("[model.deep]\nwidths = [8]\n");
    assert!(w.iter().any(|x| x.contains("[model.deep] is set")), "{w:?}");
    // Keys of dense data on the operation table are refused, naming the key.
    for key in ["path = \"/tmp\"", "n_train = 10"] {
        let e = Config::from_toml(&format!("[data]\n{key}\n"), &[])
            .unwrap()
            .check()
            .unwrap_err()
            .to_string();
        let name = key.split(' ').next().unwrap();
        assert!(
            e.contains(&format!("data.{name}")) && e.contains("dense datasets"),
            "{e}"
        );
    }
}
