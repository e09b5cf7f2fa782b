//! Inverse participation ratio of Fourier spectra (SCIENCE.md §4).
//!
//! For a vector `u` of length `p`, `û = |rfft(u)|` (the `⌊p/2⌋ + 1` magnitudes of its real
//! DFT) and `IPR_r(u) = Σ û^{2r} / (Σ û²)^r` with `r = 2`. Computed in f64 after dividing by
//! the largest magnitude, so strongly decayed weights do not underflow. An all-zero vector has
//! no IPR (its neuron may be dead); a vector with a NaN or infinite entry has IPR NaN (its
//! model diverged; its neuron is not dead).

use realfft::{RealFftPlanner, RealToComplex};
use std::sync::Arc;

/// A reusable IPR calculator for vectors of one length.
pub struct Ipr {
    fft: Arc<dyn RealToComplex<f64>>,
    input: Vec<f64>,
    spectrum: Vec<realfft::num_complex::Complex<f64>>,
    scratch: Vec<realfft::num_complex::Complex<f64>>,
}

/// IPR and dominant frequency of one vector.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Spectral {
    pub ipr: f64,
    /// argmax of `û` over frequencies `1 … ⌊p/2⌋` (frequency 0 ignored); 0 when `p < 3`.
    pub dominant: usize,
}

impl Ipr {
    pub fn new(p: usize) -> Ipr {
        let fft = RealFftPlanner::<f64>::new().plan_fft_forward(p);
        Ipr {
            input: fft.make_input_vec(),
            spectrum: fft.make_output_vec(),
            scratch: fft.make_scratch_vec(),
            fft,
        }
    }

    pub fn len(&self) -> usize {
        self.input.len()
    }

    pub fn is_empty(&self) -> bool {
        self.input.is_empty()
    }

    /// The spectrum `|û|` of the vector `x[offset + i·stride]`, `i < p`, scaled so that the
    /// input's largest magnitude is 1; `None` for an all-zero vector.
    pub fn spectrum(&mut self, x: &[f32], offset: usize, stride: usize) -> Option<Vec<f64>> {
        self.load(x, offset, stride)?;
        Some(self.spectrum.iter().map(|c| c.norm()).collect())
    }

    fn load(&mut self, x: &[f32], offset: usize, stride: usize) -> Option<()> {
        let p = self.input.len();
        if (0..p).any(|i| !x[offset + i * stride].is_finite()) {
            // A diverged vector is not a dead one: its spectrum and IPR are NaN.
            let nan = realfft::num_complex::Complex::new(f64::NAN, f64::NAN);
            self.spectrum.iter_mut().for_each(|c| *c = nan);
            return Some(());
        }
        let max = (0..p)
            .map(|i| (x[offset + i * stride] as f64).abs())
            .fold(0.0, f64::max);
        if max == 0.0 {
            return None;
        }
        for i in 0..p {
            self.input[i] = x[offset + i * stride] as f64 / max;
        }
        self.fft
            .process_with_scratch(&mut self.input, &mut self.spectrum, &mut self.scratch)
            .expect("buffers sized by the planner");
        Some(())
    }

    /// IPR (r = 2) and dominant frequency of `x[offset + i·stride]`, `i < p`.
    pub fn of_strided(&mut self, x: &[f32], offset: usize, stride: usize) -> Option<Spectral> {
        self.load(x, offset, stride)?;
        let mut s2 = 0.0;
        let mut s4 = 0.0;
        let mut dominant = 0;
        let mut best = f64::NEG_INFINITY;
        for (f, c) in self.spectrum.iter().enumerate() {
            let a2 = c.norm_sqr();
            s2 += a2;
            s4 += a2 * a2;
            if f > 0 && a2 > best {
                best = a2;
                dominant = f;
            }
        }
        Some(Spectral {
            ipr: s4 / (s2 * s2),
            dominant,
        })
    }

    pub fn of(&mut self, x: &[f32]) -> Option<Spectral> {
        self.of_strided(x, 0, 1)
    }
}

/// The IPR of a neuron from the IPRs of its weight vectors: their mean over the non-zero
/// vectors; `None` when all are zero (a dead neuron).
pub fn mean_of_vectors(iprs: impl IntoIterator<Item = Option<f64>>) -> Option<f64> {
    let vals: Vec<f64> = iprs.into_iter().flatten().collect();
    (!vals.is_empty()).then(|| vals.iter().sum::<f64>() / vals.len() as f64)
}

/// The IPR of a neuron given as its weight vectors (each a p-vector over the tokens).
pub fn neuron_ipr(calc: &mut Ipr, vectors: &[Vec<f32>]) -> Option<f64> {
    mean_of_vectors(vectors.iter().map(|v| calc.of(v).map(|s| s.ipr)))
}

/// Per-neuron IPR of an MLP stored as three `p × N` matrices (neuron `k` = column `k` of
/// `Uᵀ`, `Vᵀ`, `W`), read in place.
pub fn neuron_iprs(u: &[f32], v: &[f32], w: &[f32], p: usize, width: usize) -> Vec<Option<f64>> {
    let mut calc = Ipr::new(p);
    (0..width)
        .map(|k| {
            mean_of_vectors(
                [u, v, w]
                    .iter()
                    .map(|m| calc.of_strided(m, k, width).map(|s| s.ipr)),
            )
        })
        .collect()
}

/// Mean IPR over the living neurons (`None` if all are dead) and the number of dead ones.
pub fn mean_ipr(iprs: &[Option<f64>]) -> (Option<f64>, usize) {
    let alive: Vec<f64> = iprs.iter().flatten().copied().collect();
    let dead = iprs.len() - alive.len();
    let mean = (!alive.is_empty()).then(|| alive.iter().sum::<f64>() / alive.len() as f64);
    (mean, dead)
}
