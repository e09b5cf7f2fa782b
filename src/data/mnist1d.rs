//! MNIST-1D (Greydanus, 2020; github.com/greydanus/mnist1d, Apache-2.0): a procedural
//! dataset of 1-D "digits", the file-free dense dataset of grokscope (SCIENCE.md §9). Ten
//! templates of 12 values are padded, dilated, scaled, translated, given correlated noise
//! where they are zero and iid noise everywhere, sheared and resampled to 40 values; the
//! whole set is then standardized and split 80 / 20.
//!
//! This is a port of the generator's steps and defaults, not of its random stream: the draws
//! come from ChaCha8 seeded by `seed` (in numpy's order per example: padding, scale,
//! translation, correlated noise, iid noise, shear), so the examples are distributed as the
//! original's but are not the same numbers. The correlated noise is a Gaussian filter of
//! σ = 2 truncated at 4σ with reflected edges, as `scipy.ndimage.gaussian_filter`.

use super::dataset::DenseSplit;
use crate::error::{Error, Result};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;

/// The generator's settings (the defaults are the original's `get_dataset_args`).
#[derive(Clone, Debug, PartialEq)]
pub struct Mnist1dArgs {
    /// Examples in all (an equal number per class: `num_samples / 10` each).
    pub num_samples: usize,
    /// The fraction of examples in the training set.
    pub train_split: f64,
    /// Zeros appended to a template: uniform in `padding.0 ..= padding.1`.
    pub padding: (usize, usize),
    pub scale_coeff: f64,
    pub max_translation: usize,
    pub corr_noise_scale: f64,
    pub iid_noise_scale: f64,
    pub shear_scale: f64,
    /// Values per example.
    pub final_seq_length: usize,
}

impl Default for Mnist1dArgs {
    fn default() -> Self {
        Mnist1dArgs {
            num_samples: 5000,
            train_split: 0.8,
            padding: (36, 60),
            scale_coeff: 0.4,
            max_translation: 48,
            corr_noise_scale: 0.25,
            iid_noise_scale: 0.02,
            shear_scale: 0.75,
            final_seq_length: 40,
        }
    }
}

/// The number of classes (digits).
pub const CLASSES: usize = 10;
/// The most examples [`generate`] makes (40 MB of features at the default length).
pub const MAX_SAMPLES: usize = 1 << 20;

/// The ten digit templates (the original's values), before whitening.
const TEMPLATES: [[f64; 12]; CLASSES] = [
    [5.0, 6.0, 6.5, 6.75, 7.0, 7.0, 7.0, 7.0, 6.75, 6.5, 6.0, 5.0],
    [5.0, 3.0, 3.0, 3.4, 3.8, 4.2, 4.6, 5.0, 5.4, 5.8, 5.0, 5.0],
    [5.0, 6.0, 6.5, 6.5, 6.0, 5.25, 4.75, 4.0, 3.5, 3.5, 4.0, 5.0],
    [5.0, 6.0, 6.5, 6.5, 6.0, 5.0, 5.0, 6.0, 6.5, 6.5, 6.0, 5.0],
    [5.0, 4.4, 3.8, 3.2, 2.6, 2.6, 5.0, 5.0, 5.0, 5.0, 5.0, 5.0],
    [5.0, 3.0, 3.0, 3.0, 3.0, 5.0, 6.0, 6.5, 6.5, 6.0, 4.5, 5.0],
    [5.0, 4.0, 3.5, 3.25, 3.0, 3.0, 3.0, 3.0, 3.25, 3.5, 4.0, 5.0],
    [5.0, 7.0, 7.0, 6.6, 6.2, 5.8, 5.4, 5.0, 4.6, 4.2, 5.0, 5.0],
    [5.0, 4.0, 3.5, 3.5, 4.0, 5.0, 5.0, 4.0, 3.5, 3.5, 4.0, 5.0],
    [5.0, 4.0, 3.5, 3.5, 4.0, 5.0, 5.0, 5.0, 5.0, 4.7, 4.3, 5.0],
];

/// A template whitened (zero mean, unit population std), shifted to start at 0, over 6.
fn template(digit: usize) -> Vec<f64> {
    let t = &TEMPLATES[digit];
    let n = t.len() as f64;
    let mean = t.iter().sum::<f64>() / n;
    let std = (t.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n).sqrt();
    let w: Vec<f64> = t.iter().map(|x| (x - mean) / std).collect();
    w.iter().map(|x| (x - w[0]) / 6.0).collect()
}

/// `x` resampled linearly to `n` points over the same span (`numpy.interp` on a linspace).
fn interpolate(x: &[f64], n: usize) -> Vec<f64> {
    let last = (x.len() - 1) as f64;
    (0..n)
        .map(|i| {
            let at = if n == 1 {
                0.0
            } else {
                i as f64 * last / (n - 1) as f64
            };
            let lo = (at.floor() as usize).min(x.len() - 1);
            let hi = (lo + 1).min(x.len() - 1);
            let f = at - lo as f64;
            x[lo] * (1.0 - f) + x[hi] * f
        })
        .collect()
}

/// A Gaussian filter of `sigma`, truncated at 4σ, edges reflected (scipy's `reflect`:
/// `d c b a | a b c d | d c b a`).
fn gaussian_filter(x: &[f64], sigma: f64) -> Vec<f64> {
    let radius = (4.0 * sigma + 0.5) as isize;
    let weights: Vec<f64> = (-radius..=radius)
        .map(|k| (-0.5 * (k * k) as f64 / (sigma * sigma)).exp())
        .collect();
    let total: f64 = weights.iter().sum();
    let n = x.len() as isize;
    let at = |mut i: isize| -> f64 {
        // Reflect until inside (the radius may exceed the length).
        loop {
            if i < 0 {
                i = -i - 1;
            } else if i >= n {
                i = 2 * n - i - 1;
            } else {
                return x[i as usize];
            }
        }
    };
    (0..n)
        .map(|i| {
            (-radius..=radius)
                .zip(&weights)
                .map(|(k, w)| w * at(i + k))
                .sum::<f64>()
                / total
        })
        .collect()
}

/// One example of `digit`, transformed as the original's `transform`.
fn example(digit: usize, a: &Mnist1dArgs, rng: &mut ChaCha8Rng) -> Vec<f64> {
    let (low, high) = a.padding;
    // Pad (the template shifted by ε, so that only the padding is exactly zero).
    let pad = low + (rng.random::<f64>() * (high - low + 1) as f64) as usize;
    let mut x: Vec<f64> = template(digit).iter().map(|v| v + 1e-8).collect();
    x.resize(x.len() + pad, 0.0);
    // Dilate, scale, translate (a circular shift to the right).
    let mut x = interpolate(&x, 12 + high);
    let scale = 1.0 + a.scale_coeff * (rng.random::<f64>() - 0.5);
    x.iter_mut().for_each(|v| *v *= scale);
    let k = rng.random_range(0..a.max_translation.max(1));
    let len = x.len();
    x.rotate_right(k % len);
    // Correlated noise where the signal is zero, iid noise everywhere.
    let noise: Vec<f64> = (0..x.len())
        .map(|_| a.corr_noise_scale * rng.sample::<f64, _>(StandardNormal))
        .collect();
    let corr = gaussian_filter(&noise, 2.0);
    for (v, c) in x.iter_mut().zip(corr) {
        if *v == 0.0 {
            *v = c;
        }
    }
    for v in x.iter_mut() {
        *v += a.iid_noise_scale * rng.sample::<f64, _>(StandardNormal);
    }
    // Shear, then resample to the final length.
    let coeff = a.shear_scale * (rng.random::<f64>() - 0.5);
    let n = x.len();
    for (i, v) in x.iter_mut().enumerate() {
        *v -= coeff * (i as f64 / (n - 1) as f64 - 0.5);
    }
    interpolate(&x, a.final_seq_length)
}

/// The dataset: `num_samples / 10` examples of each digit, shuffled, standardized over all
/// values (mean 0, std 1), the first `⌊train_split · n⌋` for training.
pub fn generate(a: &Mnist1dArgs, seed: u64) -> Result<DenseSplit> {
    let bad = |why: String| Error::invalid("data.mnist1d", why);
    let per_class = a.num_samples / CLASSES;
    if per_class == 0 || a.num_samples > MAX_SAMPLES {
        return Err(bad(format!(
            "num_samples must lie in [{CLASSES}, {MAX_SAMPLES}], got {}",
            a.num_samples
        )));
    }
    if !(a.train_split > 0.0 && a.train_split < 1.0) {
        return Err(bad(format!(
            "train_split must lie in (0, 1), got {}",
            a.train_split
        )));
    }
    if a.padding.0 > a.padding.1 || a.padding.1 > 1 << 16 {
        return Err(bad(format!(
            "padding {:?}: expected low ≤ high ≤ 65536",
            a.padding
        )));
    }
    if !(2..=1 << 16).contains(&a.final_seq_length) {
        return Err(bad(format!(
            "final_seq_length must lie in [2, 65536], got {}",
            a.final_seq_length
        )));
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut all: Vec<(Vec<f64>, u32)> = Vec::with_capacity(per_class * CLASSES);
    for digit in 0..CLASSES {
        for _ in 0..per_class {
            all.push((example(digit, a, &mut rng), digit as u32));
        }
    }
    all.shuffle(&mut rng);
    let values = all.iter().flat_map(|(x, _)| x.iter());
    let count = (all.len() * a.final_seq_length) as f64;
    let mean = values.clone().sum::<f64>() / count;
    let std = (values.map(|v| (v - mean) * (v - mean)).sum::<f64>() / count).sqrt();
    let n_train = (all.len() as f64 * a.train_split) as usize;
    if n_train == 0 || n_train == all.len() {
        return Err(bad(format!(
            "train_split {} leaves an empty set of {} examples",
            a.train_split,
            all.len()
        )));
    }
    let part = |rows: &[(Vec<f64>, u32)]| {
        let x: Vec<f32> = rows
            .iter()
            .flat_map(|(x, _)| x.iter().map(|v| ((v - mean) / std) as f32))
            .collect();
        (x, rows.iter().map(|r| r.1).collect::<Vec<u32>>())
    };
    let (train, test) = all.split_at(n_train);
    DenseSplit::new(
        "mnist1d",
        CLASSES,
        vec![a.final_seq_length],
        part(train),
        part(test),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_start_at_zero_with_the_originals_scale() {
        for d in 0..CLASSES {
            let t = template(d);
            assert_eq!(t[0], 0.0);
            // Whitened then shifted: the std over 6 is 1/6.
            let m = t.iter().sum::<f64>() / 12.0;
            let s = (t.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / 12.0).sqrt();
            assert!((s - 1.0 / 6.0).abs() < 1e-12, "{d}: {s}");
        }
    }

    #[test]
    fn interpolation_and_filter_by_hand() {
        assert_eq!(interpolate(&[0.0, 1.0], 5), [0.0, 0.25, 0.5, 0.75, 1.0]);
        assert_eq!(interpolate(&[2.0, 4.0, 0.0], 3), [2.0, 4.0, 0.0]);
        // A constant survives the filter (weights sum to one, reflected edges).
        let f = gaussian_filter(&[3.0; 5], 2.0);
        assert!(f.iter().all(|v| (v - 3.0).abs() < 1e-12), "{f:?}");
        // An impulse spreads symmetrically, its mass kept away from the edges.
        let mut x = vec![0.0; 41];
        x[20] = 1.0;
        let f = gaussian_filter(&x, 2.0);
        assert!((f.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        assert!((f[18] - f[22]).abs() < 1e-15 && f[20] > f[19]);
        assert_eq!(f[11], 0.0, "truncated at 4σ = 8");
    }
}
