//! Real image datasets in the IDX format (LeCun's MNIST files, gzip-compressed or not):
//! Fashion-MNIST from Debian's package `dataset-fashion-mnist` (SCIENCE.md §9). Nothing is
//! fetched: a missing file is an error naming the script that installs it. Every file is
//! validated — magic number, dimensions, size, label range, images and labels in equal
//! number — and a bad one is an error naming the file and what is wrong.

use super::dataset::DenseSplit;
use crate::error::{Error, Result};
use std::io::Read;
use std::path::{Path, PathBuf};

/// Where Debian's `dataset-fashion-mnist` installs its files.
pub const FASHION_MNIST_DIR: &str = "/usr/share/datasets/fashion-mnist";
/// The command that installs the real datasets.
pub const INSTALL: &str = "scripts/install-datasets";
/// The largest IDX file read, after decompression, by rank: labels (Fashion-MNIST's: 60 kB)
/// and images (47 MB).
fn max_bytes(rank: usize) -> u64 {
    if rank <= 1 {
        1 << 24
    } else {
        1 << 28
    }
}

/// The bytes of `path`, decompressed if it is gzip (by its magic bytes), at most `max` + 1 of
/// them read (a longer file is the caller's error to name).
pub fn read_gz_or_plain(path: &Path, max: u64) -> Result<Vec<u8>> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut raw = Vec::new();
    file.take(max + 1)
        .read_to_end(&mut raw)
        .map_err(|e| Error::io(path, e))?;
    if !raw.starts_with(&[0x1f, 0x8b]) {
        return Ok(raw);
    }
    let mut out = Vec::new();
    // Every member of a multi-member file (pigz, `cat a.gz b.gz`), as gzip reads them.
    flate2::read::MultiGzDecoder::new(raw.as_slice())
        .take(max + 1)
        .read_to_end(&mut out)
        .map_err(|e| Error::BadFile {
            path: path.to_path_buf(),
            why: format!("not a readable gzip file ({e}): truncated or damaged?"),
        })?;
    Ok(out)
}

/// An IDX file's contents: its dimensions and its unsigned bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Idx {
    pub dims: Vec<usize>,
    pub data: Vec<u8>,
}

/// Reads an IDX file of unsigned bytes (type 0x08) with `rank` dimensions, gzip-compressed
/// (by its magic bytes) or not.
pub fn read_idx(path: &Path, rank: usize) -> Result<Idx> {
    let bad = |why: String| Error::BadFile {
        path: path.to_path_buf(),
        why,
    };
    let max = max_bytes(rank);
    let bytes = read_gz_or_plain(path, max)?;
    if bytes.len() as u64 > max {
        return Err(bad(format!(
            "more than {max} bytes: not an IDX file of this dataset"
        )));
    }
    if bytes.len() < 4 || bytes[0] != 0 || bytes[1] != 0 {
        return Err(bad(
            "not an IDX file (its first two bytes must be zero)".into()
        ));
    }
    if bytes[2] != 0x08 {
        return Err(bad(format!(
            "IDX data type 0x{:02x}; these datasets hold unsigned bytes (0x08)",
            bytes[2]
        )));
    }
    if bytes[3] as usize != rank {
        return Err(bad(format!(
            "an IDX file of {} dimensions, expected {rank} ({})",
            bytes[3],
            if rank == 1 { "labels" } else { "images" }
        )));
    }
    let header = 4 + 4 * rank;
    if bytes.len() < header {
        return Err(bad(format!(
            "{} bytes, shorter than its header",
            bytes.len()
        )));
    }
    let dims: Vec<usize> = (0..rank)
        .map(|i| {
            u32::from_be_bytes([
                bytes[4 + 4 * i],
                bytes[5 + 4 * i],
                bytes[6 + 4 * i],
                bytes[7 + 4 * i],
            ]) as usize
        })
        .collect();
    let size = dims
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .filter(|&s| s > 0)
        .ok_or_else(|| bad(format!("dimensions {dims:?} hold no data")))?;
    if Some(bytes.len()) != header.checked_add(size) {
        return Err(bad(format!(
            "dimensions {dims:?} need {size} bytes of data, the file has {} (truncated or damaged?)",
            bytes.len() - header
        )));
    }
    Ok(Idx {
        dims,
        data: bytes[header..].to_vec(),
    })
}

/// Images `[n, rows, cols]` and their labels from two IDX files, pixels scaled to [0, 1].
fn images_and_labels(
    images: &Path,
    labels: &Path,
    classes: usize,
) -> Result<(Vec<f32>, Vec<u32>, [usize; 2])> {
    let x = read_idx(images, 3)?;
    let y = read_idx(labels, 1)?;
    if x.dims[0] != y.dims[0] {
        return Err(Error::BadFile {
            path: labels.to_path_buf(),
            why: format!(
                "{} labels for the {} images of {}",
                y.dims[0],
                x.dims[0],
                images.display()
            ),
        });
    }
    if let Some(l) = y.data.iter().find(|&&l| l as usize >= classes) {
        return Err(Error::BadFile {
            path: labels.to_path_buf(),
            why: format!("a label is {l}, outside 0 … {}", classes - 1),
        });
    }
    Ok((
        x.data.iter().map(|&p| p as f32 / 255.0).collect(),
        y.data.iter().map(|&l| l as u32).collect(),
        [x.dims[1], x.dims[2]],
    ))
}

/// Fashion-MNIST (Xiao, Rasul, Vollgraf 2017; MIT licence): 60 000 training and 10 000 test
/// images of 28 × 28, 10 classes, pixels in [0, 1], from `dir` (Debian's
/// [`FASHION_MNIST_DIR`] by default).
pub fn fashion_mnist(dir: &Path) -> Result<DenseSplit> {
    if dir.exists() && !dir.is_dir() {
        return Err(Error::invalid(
            "data.dataset",
            format!(
                "{} is not a directory: Fashion-MNIST is the directory of its four IDX files",
                dir.display()
            ),
        ));
    }
    let file = |name: &str| -> Result<PathBuf> {
        let gz = dir.join(format!("{name}.gz"));
        let plain = dir.join(name);
        if gz.is_file() {
            Ok(gz)
        } else if plain.is_file() {
            Ok(plain)
        } else if let Some(p) = [&gz, &plain].into_iter().find(|p| p.exists()) {
            Err(Error::BadFile {
                path: p.to_path_buf(),
                why: "not a regular file".into(),
            })
        } else {
            Err(Error::invalid(
                "data.dataset",
                format!(
                    "Fashion-MNIST is not installed: {} is missing (install it with {INSTALL}, which installs Debian's package dataset-fashion-mnist)",
                    gz.display()
                ),
            ))
        }
    };
    let (train_x, train_y, shape) = images_and_labels(
        &file("train-images-idx3-ubyte")?,
        &file("train-labels-idx1-ubyte")?,
        10,
    )?;
    let (test_x, test_y, test_shape) = images_and_labels(
        &file("t10k-images-idx3-ubyte")?,
        &file("t10k-labels-idx1-ubyte")?,
        10,
    )?;
    if shape != test_shape {
        return Err(Error::invalid(
            "data.dataset",
            format!(
                "Fashion-MNIST in {}: training images of {shape:?}, test images of {test_shape:?}",
                dir.display()
            ),
        ));
    }
    DenseSplit::new(
        "fashion-mnist",
        10,
        shape.to_vec(),
        (train_x, train_y),
        (test_x, test_y),
    )
}
