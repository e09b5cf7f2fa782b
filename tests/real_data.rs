//! The readers of real datasets (`data::idx`) on the installed files (scripts/install-datasets,
//! which .ci/run calls) and on damaged ones: every bad file is an error naming the file and
//! what is wrong.

use grokscope::data::idx::{fashion_mnist, read_idx, FASHION_MNIST_DIR};
use std::io::Write;
use std::path::Path;

#[test]
fn fashion_mnist_as_installed() {
    let d = fashion_mnist(Path::new(FASHION_MNIST_DIR)).expect("run scripts/install-datasets");
    assert_eq!(
        (d.n_classes, d.dim, d.shape.clone()),
        (10, 784, vec![28, 28])
    );
    assert_eq!((d.train_true.len(), d.test_labels.len()), (60_000, 10_000));
    let mut count = [0usize; 10];
    d.train_true.iter().for_each(|&y| count[y as usize] += 1);
    assert_eq!(count, [6000; 10], "6000 training images per class");
    let mut count = [0usize; 10];
    d.test_labels.iter().for_each(|&y| count[y as usize] += 1);
    assert_eq!(count, [1000; 10]);
    assert!(d.train_x.iter().all(|&p| (0.0..=1.0).contains(&p)));
    let mean = d.train_x.iter().map(|&p| p as f64).sum::<f64>() / d.train_x.len() as f64;
    // Fashion-MNIST's published mean pixel: 0.2860.
    assert!((mean - 0.2860).abs() < 1e-3, "{mean}");
}

fn idx(dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut v = vec![0, 0, 8, dims.len() as u8];
    for d in dims {
        v.extend(d.to_be_bytes());
    }
    v.extend(data);
    v
}

fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

#[test]
fn idx_files_read_plain_and_compressed() {
    let tmp = tempfile::tempdir().unwrap();
    let good = idx(&[2, 2, 3], &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
    for (name, bytes) in [("a", good.clone()), ("a.gz", gz(&good))] {
        let p = tmp.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        let x = read_idx(&p, 3).unwrap();
        assert_eq!(x.dims, [2, 2, 3]);
        assert_eq!(x.data[11], 12);
    }
}

#[test]
fn damaged_files_are_named_with_what_is_wrong() {
    let tmp = tempfile::tempdir().unwrap();
    let good = idx(&[2, 2, 3], &[0; 12]);
    let mut wrong_magic = good.clone();
    wrong_magic[0] = 7;
    let mut floats = good.clone();
    floats[2] = 0x0d;
    let cases: Vec<(&str, Vec<u8>, usize, &str)> = vec![
        (
            "truncated",
            good[..good.len() - 1].to_vec(),
            3,
            "need 12 bytes of data, the file has 11",
        ),
        (
            "long",
            [good.clone(), vec![0]].concat(),
            3,
            "the file has 13",
        ),
        ("magic", wrong_magic, 3, "not an IDX file"),
        ("type", floats, 3, "data type 0x0d"),
        ("rank", good.clone(), 1, "3 dimensions, expected 1 (labels)"),
        ("empty", vec![], 3, "not an IDX file"),
        ("header", good[..9].to_vec(), 3, "shorter than its header"),
        ("zero", idx(&[0, 28, 28], &[]), 3, "hold no data"),
        (
            "huge",
            idx(&[u32::MAX, u32::MAX, u32::MAX], &[]),
            3,
            "hold no data",
        ),
        (
            "gzip",
            gz(&good)[..20].to_vec(),
            3,
            "not a readable gzip file",
        ),
    ];
    for (name, bytes, rank, want) in cases {
        let p = tmp.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        let e = read_idx(&p, rank).unwrap_err().to_string();
        assert!(e.contains(want) && e.contains(name), "{name}: {e}");
    }
}

#[test]
fn a_dataset_directory_with_bad_or_missing_files() {
    let tmp = tempfile::tempdir().unwrap();
    let e = fashion_mnist(tmp.path()).unwrap_err().to_string();
    assert!(
        e.contains("not installed") && e.contains("scripts/install-datasets"),
        "{e}"
    );
    let w = |name: &str, b: Vec<u8>| std::fs::write(tmp.path().join(name), gz(&b)).unwrap();
    w("train-images-idx3-ubyte.gz", idx(&[2, 1, 1], &[0, 255]));
    w("train-labels-idx1-ubyte.gz", idx(&[3], &[0, 1, 2]));
    w("t10k-images-idx3-ubyte.gz", idx(&[1, 1, 1], &[9]));
    w("t10k-labels-idx1-ubyte.gz", idx(&[1], &[3]));
    let e = fashion_mnist(tmp.path()).unwrap_err().to_string();
    assert!(e.contains("3 labels for the 2 images"), "{e}");
    w("train-labels-idx1-ubyte.gz", idx(&[2], &[0, 10]));
    let e = fashion_mnist(tmp.path()).unwrap_err().to_string();
    assert!(
        e.contains("train-labels") && e.contains("label is 10, outside 0 … 9"),
        "{e}"
    );
    w("train-labels-idx1-ubyte.gz", idx(&[2], &[0, 9]));
    let d = fashion_mnist(tmp.path()).unwrap();
    assert_eq!(
        (d.train_x.clone(), d.test_labels.clone()),
        (vec![0.0, 1.0], vec![3])
    );
}

#[test]
fn mnist_5k_as_installed() {
    use grokscope::data::mnist5k::{default_path, mnist5k};
    let d = mnist5k(&default_path(), 0).expect("run scripts/install-datasets");
    assert_eq!(
        (d.n_classes, d.dim, d.shape.clone()),
        (10, 784, vec![28, 28])
    );
    assert_eq!((d.train_true.len(), d.test_labels.len()), (4000, 1000));
    let mut count = [0usize; 10];
    d.train_true
        .iter()
        .chain(&d.test_labels)
        .for_each(|&y| count[y as usize] += 1);
    assert_eq!(count, [500; 10]);
    let mut test = [0usize; 10];
    d.test_labels.iter().for_each(|&y| test[y as usize] += 1);
    assert!(
        test.iter().all(|&c| (60..=140).contains(&c)),
        "shuffled before the split: {test:?}"
    );
    // MNIST's mean pixel is about 0.13.
    let mean = d.train_x.iter().map(|&p| p as f64).sum::<f64>() / d.train_x.len() as f64;
    assert!((0.1..0.16).contains(&mean), "{mean}");
    assert_eq!(mnist5k(&default_path(), 0).unwrap(), d, "deterministic");
}

#[test]
fn damaged_mnist_5k_files() {
    use grokscope::data::mnist5k::mnist5k;
    let tmp = tempfile::tempdir().unwrap();
    let row = |label: &str| format!("{}{label}\n", "0,".repeat(784));
    let good: String = (0..10).map(|d| row(&d.to_string())).collect();
    let cases = [
        (
            "short",
            good.replace(&row("3"), "0,0,3\n"),
            "line 4: 3 values, expected 785",
        ),
        (
            "label",
            good.replace(&row("3"), &row("12")),
            "line 4: label \"12\"",
        ),
        (
            "pixel",
            good.replacen("0,", "256,", 1),
            "line 1: pixel \"256\"",
        ),
        ("few", row("1"), "1 images"),
    ];
    for (name, text, want) in cases {
        let p = tmp.path().join(name);
        std::fs::write(&p, gz(text.as_bytes())).unwrap();
        let e = mnist5k(&p, 0).unwrap_err().to_string();
        assert!(e.contains(want) && e.contains(name), "{name}: {e}");
    }
    let e = mnist5k(&tmp.path().join("absent.csv.gz"), 0)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("not installed") && e.contains("install-datasets"),
        "{e}"
    );
    let blank = good.replacen("\n", "\n\n", 1);
    std::fs::write(tmp.path().join("blank"), &blank).unwrap();
    let e = mnist5k(&tmp.path().join("blank"), 0)
        .unwrap_err()
        .to_string();
    assert!(e.contains("line 2: an empty line"), "{e}");
    let all: String = (0..5000).map(|i| row(&(i % 10).to_string())).collect();
    std::fs::write(tmp.path().join("ok"), all + "\n\n").unwrap();
    let d = mnist5k(&tmp.path().join("ok"), 3).unwrap();
    assert_eq!((d.train_true.len(), d.test_labels.len()), (4000, 1000));
}
