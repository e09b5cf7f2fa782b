//! The dataset seam (`data::Dataset`): corruption written against the number of classes, dense
//! datasets checked on construction, the engines refusing inputs they cannot read, the
//! accuracies and `dataset.safetensors` of either kind of inputs.

use grokscope::config::{Checked, Config};

/// The built-in default config: the run whose fingerprint tags the dataset files below.
fn cfg0() -> Checked {
    Config::from_toml("", &[]).unwrap().check().unwrap()
}
use grokscope::data::dataset::TokenSpace;
use grokscope::data::{CorruptionMode, Dataset, DenseSplit, Inputs, Operation, Split};
use grokscope::metrics::accuracies;
use grokscope::model::{Loss, Precision};
use grokscope::rundir::dataset::dataset_arrays;
use grokscope::rundir::RunDir;
use grokscope::train::adamw::AdamWHyper;
use grokscope::train::network::{ModelInit, Network};
use grokscope::train::{EvalOutput, ModelHyper};

/// A dense dataset of `n_train` + `n_test` examples of 3 features and 4 classes.
fn dense(n_train: usize, n_test: usize) -> DenseSplit {
    let x = |n: usize, off: f32| (0..n * 3).map(|i| i as f32 * 0.5 + off).collect();
    let y = |n: usize, off: usize| (0..n).map(|i| ((i * 7 + off) % 4) as u32).collect();
    DenseSplit::new(
        "toy",
        4,
        vec![3],
        (x(n_train, 0.0), y(n_train, 0)),
        (x(n_test, 1.0), y(n_test, 1)),
    )
    .unwrap()
}

#[test]
fn corruption_depends_only_on_the_labels_and_the_classes() {
    let split = Split::new(11, Operation::Add, 0.5, 4).unwrap();
    let table = Dataset::from(split.clone());
    // A dense dataset with the table's true labels and classes draws the same corruption.
    let n = split.n_train();
    let same = Dataset::Dense(
        DenseSplit::new(
            "same labels",
            11,
            vec![2],
            (vec![0.0; 2 * n], split.train_true.clone()),
            (vec![0.0; 2], vec![0]),
        )
        .unwrap(),
    );
    for mode in [
        CorruptionMode::Wrong,
        CorruptionMode::Any,
        CorruptionMode::Reference,
        CorruptionMode::ReferenceTransformer,
    ] {
        let a = split.corrupt(0.3, mode, 9).unwrap();
        assert_eq!(a, table.corrupt(0.3, mode, 9).unwrap(), "{mode:?}");
        assert_eq!(a, same.corrupt(0.3, mode, 9).unwrap(), "{mode:?}");
    }
}

#[test]
fn dense_corruption_counts_and_ranges() {
    let d = Dataset::Dense(dense(200, 10));
    let l = d.corrupt(0.25, CorruptionMode::Wrong, 1).unwrap();
    assert_eq!(l.n_corrupted(), 50);
    for ((&given, &truth), &c) in l.labels.iter().zip(d.train_true()).zip(&l.corrupted) {
        assert!(given < 4);
        assert_eq!(c, given != truth);
    }
    let r = d
        .corrupt(0.25, CorruptionMode::ReferenceTransformer, 1)
        .unwrap();
    assert!(r
        .labels
        .iter()
        .zip(&r.corrupted)
        .all(|(&y, &c)| !c || y < 3));
}

#[test]
fn dense_datasets_are_checked_when_built() {
    let ok = || (vec![0.0f32; 6], vec![0u32, 1]);
    let err = |r: grokscope::Result<DenseSplit>| r.unwrap_err().to_string();
    let e = err(DenseSplit::new(
        "d",
        2,
        vec![3],
        ok(),
        (vec![0.0; 5], vec![0, 1]),
    ));
    assert!(e.contains("5 values for 2 examples of 3 features"), "{e}");
    let e = err(DenseSplit::new(
        "d",
        2,
        vec![3],
        ok(),
        (vec![0.0; 6], vec![0, 2]),
    ));
    assert!(e.contains("label is 2, outside 0 … 1"), "{e}");
    let e = err(DenseSplit::new("d", 1, vec![3], ok(), ok()));
    assert!(e.contains("1 classes"), "{e}");
    let e = err(DenseSplit::new("d", 2, vec![3, 0], ok(), ok()));
    assert!(e.contains("no features"), "{e}");
    let e = err(DenseSplit::new("d", 2, vec![3], ok(), (vec![], vec![])));
    assert!(e.contains("test set is empty"), "{e}");
    let e = err(DenseSplit::new(
        "d",
        2,
        vec![3],
        ok(),
        (vec![f32::NAN; 6], vec![0, 1]),
    ));
    assert!(e.contains("not finite"), "{e}");
    let e = err(DenseSplit::new("d", 2, vec![usize::MAX, 2], ok(), ok()));
    assert!(e.contains("no features"), "{e}");
}

#[test]
fn only_token_tasks_have_a_token_space() {
    let cfg = Config::from_toml("[data]\np = 13", &[])
        .unwrap()
        .check()
        .unwrap();
    assert_eq!(cfg.token_space(), Some(TokenSpace { vocab: 13 }));
    let (table, _) = cfg.dataset(&cfg.fleet()).unwrap();
    assert_eq!(table.token_space(), cfg.token_space());
    assert!(matches!(table.inputs(), Inputs::Tokens { vocab: 13, .. }));
    let d = Dataset::Dense(dense(5, 5));
    assert_eq!(d.token_space(), None);
    assert!(d.table().is_none());
    assert!(matches!(d.inputs(), Inputs::Dense { dim: 3, .. }));
}

#[test]
fn engines_of_token_tasks_refuse_dense_inputs() {
    let cfg = Config::from_toml("[data]\np = 7\n[model]\nwidth = 4", &[])
        .unwrap()
        .check()
        .unwrap();
    let d = Dataset::Dense(dense(6, 2));
    let adam = AdamWHyper {
        lr: 0.01,
        weight_decay: 0.0,
        beta1: 0.9,
        beta2: 0.98,
        eps: 1e-8,
        perp: Default::default(),
    };
    let models = vec![ModelInit {
        init_seed: 0,
        hyper: ModelHyper {
            adam,
            dropout: 0.0,
            dropout_seed: 0,
        },
        labels: vec![0; 6],
    }];
    let e = Network::new(cfg.architecture(), Loss::Mse, Precision::F64, &d, models)
        .err()
        .expect("a dense dataset is refused")
        .to_string();
    assert!(e.contains("two-layer MLP reads token pairs"), "{e}");
    assert!(e.contains("toy (3 features, 4 classes)"), "{e}");
}

#[test]
fn accuracies_of_a_dense_dataset_by_hand() {
    let d = Dataset::Dense(dense(4, 2)); // train labels 0 3 2 1, test labels 0 3
    let labels = [0, 1, 2, 1];
    let corrupted = [false, true, false, false];
    let out = EvalOutput {
        preds: vec![0, 3, 1, 1, 0, 0],
        row_loss: vec![1.0; 6],
    };
    let a = accuracies(4, Loss::Mse, &d, &labels, &corrupted, &out);
    assert_eq!(a.train_acc, 0.5); // rows 0 and 3 match their training labels
    assert_eq!(a.mem_acc, Some(0.0)); // row 1 predicts 3, was trained on 1
    assert_eq!(a.inv_acc, Some(1.0)); // … which is its true label
    assert_eq!(a.clean_acc, Some(2.0 / 3.0));
    assert_eq!(a.test_acc, 0.5);
    assert_eq!(d.n_classes(), 4);
}

#[test]
fn dataset_file_of_dense_features() {
    let d = Dataset::Dense(dense(3, 2));
    let labels = vec![d.corrupt(0.0, CorruptionMode::Wrong, 0).unwrap()];
    let a = dataset_arrays(&d, &labels);
    assert_eq!(
        (a.inputs_name, a.inputs_shape.clone()),
        ("features", vec![5, 3])
    );
    let values: Vec<f32> = a
        .inputs
        .chunks(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    assert_eq!(values[..3], [0.0, 0.5, 1.0]);
    assert_eq!(values[9..12], [1.0, 1.5, 2.0], "the test examples follow");
    let tmp = tempfile::tempdir().unwrap();
    let run = RunDir::create(&tmp.path().join("run")).unwrap();
    run.write_dataset(&cfg0(), &d, &labels, false).unwrap();
    let bytes = std::fs::read(tmp.path().join("run/dataset.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let t = st.tensor("features").unwrap();
    assert_eq!(t.dtype(), safetensors::Dtype::F32);
    assert_eq!(t.shape(), [5, 3]);
    assert!(st.tensor("pairs").is_err());
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let meta = meta
        .metadata()
        .as_ref()
        .unwrap()
        .values()
        .next()
        .unwrap()
        .clone();
    // The metadata names the data, the training fingerprint that wrote it and the content
    // digest (docs/OUTPUTS.md).
    let meta: serde_json::Value = serde_json::from_str(&meta).unwrap();
    assert_eq!(meta["format"], "grokscope-dataset");
    assert_eq!(meta["classes"], 4);
    assert_eq!(meta["name"], "toy");
    assert_eq!(meta["shape"], serde_json::json!([3]));
    assert_eq!(
        meta["trained_config"].as_str().unwrap(),
        cfg0().training_fingerprint()
    );
    assert_eq!(meta["sha256"].as_str().unwrap().len(), 64);
}

#[test]
fn a_damaged_dataset_file_is_rebuilt_from_the_config() {
    let d = Dataset::from(Split::new(7, Operation::Add, 0.5, 0).unwrap());
    let labels = vec![d.corrupt(0.2, CorruptionMode::Wrong, 1).unwrap()];
    let tmp = tempfile::tempdir().unwrap();
    let run = RunDir::create(&tmp.path().join("run")).unwrap();
    let path = tmp.path().join("run/dataset.safetensors");
    assert!(
        !run.write_dataset(&cfg0(), &d, &labels, false).unwrap(),
        "written new"
    );
    let good = std::fs::read(&path).unwrap();
    assert!(
        !run.write_dataset(&cfg0(), &d, &labels, false).unwrap(),
        "intact: kept"
    );
    std::fs::write(&path, &good[..good.len() / 2]).unwrap();
    assert!(
        run.write_dataset(&cfg0(), &d, &labels, false).unwrap(),
        "cut short: rebuilt"
    );
    assert_eq!(std::fs::read(&path).unwrap(), good);
}

#[test]
fn pair_flip_corruption_is_a_fixed_class_map() {
    let d = Dataset::Dense(dense(400, 10));
    let l = d.corrupt(0.3, CorruptionMode::PairFlip, 2).unwrap();
    assert_eq!(l.n_corrupted(), 120);
    for ((&given, &truth), &c) in l.labels.iter().zip(d.train_true()).zip(&l.corrupted) {
        assert_eq!(given, if c { (truth + 1) % 4 } else { truth });
    }
    // The same examples are picked as by the symmetric draw of the same seed.
    let w = d.corrupt(0.3, CorruptionMode::Wrong, 2).unwrap();
    assert_eq!(l.corrupted, w.corrupted);
    let cfg = Config::from_toml(
        "[data]\np = 7\ncorruption = 0.5\ncorruption_mode = \"pair-flip\"",
        &[],
    )
    .unwrap()
    .check()
    .unwrap();
    let (table, labels) = cfg.dataset(&cfg.fleet()).unwrap();
    let truth = table.train_true();
    assert!(labels[0]
        .labels
        .iter()
        .zip(truth)
        .all(|(&y, &t)| y == t || y == (t + 1) % 7));
}

#[test]
fn a_dense_run_refuses_dataset_files_that_changed() {
    let d = Dataset::Dense(dense(40, 4));
    let labels = vec![d.corrupt(0.2, CorruptionMode::Wrong, 1).unwrap()];
    let tmp = tempfile::tempdir().unwrap();
    let run = RunDir::create(&tmp.path().join("run")).unwrap();
    run.write_dataset(&cfg0(), &d, &labels, false).unwrap();
    run.check_dense_data(&cfg0(), &d, &labels).unwrap();
    assert!(
        !run.write_dataset(&cfg0(), &d, &labels, true).unwrap(),
        "resume: the same data"
    );
    // Other files (here: other labels) give other bytes: refused, the file kept.
    let before = std::fs::read(tmp.path().join("run/dataset.safetensors")).unwrap();
    let other = vec![d.corrupt(0.2, CorruptionMode::Wrong, 2).unwrap()];
    for e in [
        run.check_dense_data(&cfg0(), &d, &other).unwrap_err(),
        run.write_dataset(&cfg0(), &d, &other, true).unwrap_err(),
    ] {
        let e = e.to_string();
        assert!(
            e.contains("dataset.safetensors") && e.contains("changed"),
            "{e}"
        );
    }
    assert_eq!(
        std::fs::read(tmp.path().join("run/dataset.safetensors")).unwrap(),
        before
    );
    std::fs::remove_file(tmp.path().join("run/dataset.safetensors")).unwrap();
    let e = run
        .check_dense_data(&cfg0(), &d, &labels)
        .unwrap_err()
        .to_string();
    assert!(e.contains("cannot be read"), "{e}");
}
