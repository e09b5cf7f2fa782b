//! The paper's two-layer MLP (SCIENCE.md §2): architecture, parameter layout and initialisation.
//!
//! All trainable parameters of one model live in one contiguous `Vec<f32>`:
//!
//! | block   | shape    | meaning                                                   |
//! |---------|----------|-----------------------------------------------------------|
//! | `Uᵀ`    | `p × N`  | row `a` is column `a` of the paper's `U` (token `a`'s input)|
//! | `Vᵀ`    | `p × N`  | row `b` is column `b` of `V`                              |
//! | `W`     | `p × N`  | the paper's `W` (row `q` feeds logit `q`)                  |
//! | `γ`     | `N`      | BatchNorm scale (only with BatchNorm)                      |
//! | `β`     | `N`      | BatchNorm shift (only with BatchNorm)                      |
//!
//! So neuron `k` is column `k` of all three matrices, and the first layer is a gather of
//! rows of `Uᵀ` and `Vᵀ`. The BatchNorm running statistics are state, not parameters.
//!
//! The forward pass in evaluation mode lives here ([`Arch::gather`], [`Arch::eval_hidden`],
//! [`Arch::output`]); training, evaluation, pruning and the analytic check all use it. The
//! training-mode pass (dropout, batch statistics) and its backward are in `train::mlp`, and
//! start from the same [`Arch::gather`].

use crate::data::Pair;
use crate::error::{Error, Result};
use crate::kernels::{matmul, Mat, Real};
use crate::model::kind::{NetworkKind, Part, Sizes, Tensor, TASKS};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};
use serde::{Deserialize, Serialize};

/// The nonlinearity φ.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Activation {
    /// φ(x) = x² (the paper's default; also written `quadratic`).
    #[default]
    #[serde(alias = "quadratic")]
    Square,
    Relu,
    /// Exact (erf) GELU, as PyTorch's default.
    Gelu,
}

impl Activation {
    #[inline(always)]
    pub fn f(self, x: f32) -> f32 {
        match self {
            Activation::Square => x * x,
            Activation::Relu => x.max(0.0),
            Activation::Gelu => 0.5 * x * (1.0 + libm::erff(x * std::f32::consts::FRAC_1_SQRT_2)),
        }
    }

    /// φ'(x).
    #[inline(always)]
    pub fn df(self, x: f32) -> f32 {
        match self {
            Activation::Square => 2.0 * x,
            Activation::Relu => {
                if x > 0.0 {
                    1.0
                } else {
                    0.0
                }
            }
            Activation::Gelu => {
                let cdf = 0.5 * (1.0 + libm::erff(x * std::f32::consts::FRAC_1_SQRT_2));
                let pdf = (-0.5 * x * x).exp() * 0.398_942_3;
                cdf + x * pdf
            }
        }
    }
}

impl Activation {
    /// φ(x) in any float type (the deep MLP's and the Transformer's passes, f32 and f64).
    pub fn at<T: Real>(self, x: T) -> T {
        match self {
            Activation::Square => x * x,
            Activation::Relu => x.max(T::ZERO),
            Activation::Gelu => {
                let half = T::from_f64(0.5);
                half * x * (T::ONE + (x * T::from_f64(std::f64::consts::FRAC_1_SQRT_2)).erf())
            }
        }
    }

    /// φ'(x) in any float type.
    pub fn grad_at<T: Real>(self, x: T) -> T {
        match self {
            Activation::Square => T::from_f64(2.0) * x,
            Activation::Relu => {
                if x > T::ZERO {
                    T::ONE
                } else {
                    T::ZERO
                }
            }
            Activation::Gelu => {
                let half = T::from_f64(0.5);
                let cdf =
                    half * (T::ONE + (x * T::from_f64(std::f64::consts::FRAC_1_SQRT_2)).erf());
                let pdf = (-(half * x * x)).exp() * T::from_f64(0.398_942_280_401_432_7);
                cdf + x * pdf
            }
        }
    }

    /// `dst = φ(src)`, with the match outside the loop so that each arm vectorizes.
    pub fn apply(self, src: &[f32], dst: &mut [f32]) {
        match self {
            Activation::Square => dst.iter_mut().zip(src).for_each(|(d, &x)| *d = x * x),
            Activation::Relu => dst.iter_mut().zip(src).for_each(|(d, &x)| *d = x.max(0.0)),
            Activation::Gelu => dst.iter_mut().zip(src).for_each(|(d, &x)| *d = self.f(x)),
        }
    }

    pub fn apply_in_place(self, x: &mut [f32]) {
        match self {
            Activation::Square => x.iter_mut().for_each(|v| *v *= *v),
            Activation::Relu => x.iter_mut().for_each(|v| *v = v.max(0.0)),
            Activation::Gelu => x.iter_mut().for_each(|v| *v = self.f(*v)),
        }
    }

    /// `d ← d ⊙ φ'(h)`.
    pub fn mul_derivative(self, d: &mut [f32], h: &[f32]) {
        match self {
            Activation::Square => d.iter_mut().zip(h).for_each(|(d, &x)| *d *= 2.0 * x),
            Activation::Relu => d
                .iter_mut()
                .zip(h)
                .for_each(|(d, &x)| *d = if x > 0.0 { *d } else { 0.0 }),
            Activation::Gelu => d.iter_mut().zip(h).for_each(|(d, &x)| *d *= self.df(x)),
        }
    }
}

/// How an MLP's weights start.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Init {
    /// Every entry of U, V, W from Normal(0, init_std²).
    #[default]
    Normal,
    /// Gromov's analytic solution for modular addition (SCIENCE.md §7), output layer scaled by 2/N.
    Analytic,
}

/// The largest hidden width N (and Transformer width d · mlp_ratio).
pub const MAX_WIDTH: usize = 1 << 24;

/// The MLP's own settings, the table `[model.mlp]` (SCIENCE.md §2; in release 0.1 these keys were
/// in `[model]` itself, where they are still read).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MlpConfig {
    /// Hidden width N.
    pub width: usize,
    pub activation: Activation,
    pub batchnorm: bool,
    pub bn_momentum: f64,
    pub bn_eps: f64,
    /// `normal` (the paper's Gaussian init) or `analytic` (Gromov's periodic network, SCIENCE.md §7).
    pub init: Init,
    /// Standard deviation of the normal init; absent: the paper's 0.5 / (2N)^{1/3}.
    pub init_std: Option<f64>,
}

impl Default for MlpConfig {
    fn default() -> Self {
        MlpConfig {
            width: 500,
            activation: Activation::Square,
            batchnorm: false,
            bn_momentum: 0.1,
            bn_eps: 1e-5,
            init: Init::Normal,
            init_std: None,
        }
    }
}

impl MlpConfig {
    /// Checks the table's values (each once) into the shared architecture of a fleet on `p`
    /// tokens, with its init and the init's standard deviation.
    pub fn check(&self, p: usize) -> Result<(Arch, Init, f64)> {
        if self.width == 0 || self.width > MAX_WIDTH {
            return Err(Error::invalid(
                "model.mlp.width",
                format!(
                    "the width N must lie in [1, {MAX_WIDTH}], got {}",
                    self.width
                ),
            ));
        }
        if !(self.bn_momentum >= 0.0 && self.bn_momentum <= 1.0) {
            return Err(Error::invalid(
                "model.mlp.bn_momentum",
                "must lie in [0, 1]",
            ));
        }
        if self.bn_eps.is_nan() || self.bn_eps <= 0.0 {
            return Err(Error::invalid("model.mlp.bn_eps", "must be positive"));
        }
        if let Some(s) = self.init_std {
            if !(s >= 0.0 && s.is_finite()) {
                return Err(Error::invalid(
                    "model.mlp.init_std",
                    "must be a finite number ≥ 0",
                ));
            }
        }
        let arch = Arch {
            p,
            width: self.width,
            activation: self.activation,
            batchnorm: self.batchnorm,
            bn_momentum: self.bn_momentum as f32,
            bn_eps: self.bn_eps as f32,
        };
        let std = self.init_std.unwrap_or_else(|| arch.default_init_std());
        Ok((arch, self.init, std))
    }
}

impl NetworkKind for Arch {
    fn parameters(&self) -> Vec<Tensor> {
        let (p, n) = (self.p, self.width);
        // Uᵀ and Vᵀ are kept transposed in the vector (a row per token): the file holds U, V.
        let t = |name: &str, shape: Vec<usize>, transposed| Tensor {
            name: name.to_string(),
            shape,
            transposed,
        };
        let mut out = vec![
            t("U", vec![p, n], true),
            t("V", vec![p, n], true),
            t("W", vec![p, n], false),
        ];
        if self.batchnorm {
            out.extend([t("bn.weight", vec![n], false), t("bn.bias", vec![n], false)]);
        }
        out
    }

    fn norm_names(&self) -> [&'static str; 3] {
        ["‖U‖", "‖V‖", "‖W‖"]
    }

    fn neuron_noun(&self) -> &'static str {
        "neurons"
    }

    fn shape_key(&self) -> String {
        format!("mlp {self:?}")
    }

    fn memory_parts(&self, s: &Sizes) -> Vec<Part> {
        let (p, m, rows) = (s.p, s.models, s.rows);
        let mut parts = Vec::new();
        let width = self.width as f64;
        let params = 3.0 * p * width + 2.0 * width;
        // Parameters and AdamW's two moments (12 bytes a parameter) and, while the weights
        // or the resumable state are written, their copies and serialized bytes (24).
        parts.push(("models", "model.mlp.width", m * 36.0 * params));
        parts.push((
            "gradients",
            "model.mlp.width",
            TASKS.min(2.0 * m) * 4.0 * params,
        ));
        // A task's workspace: a BatchNorm training task holds half the batch, the
        // others a block of 256 rows; evaluation tasks hold 2048 rows.
        let task_rows = if self.batchnorm {
            (rows / 2.0).ceil().max(2048.0)
        } else {
            2048.0
        };
        parts.push((
            "activations",
            "model.mlp.width",
            TASKS * task_rows * (12.0 * width + 4.0 * p + 16.0),
        ));
        parts
    }
}

/// What every model of a fleet shares.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Arch {
    /// Modulus = vocabulary = number of outputs.
    pub p: usize,
    /// Hidden width N.
    pub width: usize,
    pub activation: Activation,
    pub batchnorm: bool,
    pub bn_momentum: f32,
    pub bn_eps: f32,
}

impl Arch {
    pub fn n_params(&self) -> usize {
        3 * self.p * self.width + if self.batchnorm { 2 * self.width } else { 0 }
    }
    pub fn u_range(&self) -> std::ops::Range<usize> {
        0..self.p * self.width
    }
    pub fn v_range(&self) -> std::ops::Range<usize> {
        self.p * self.width..2 * self.p * self.width
    }
    pub fn w_range(&self) -> std::ops::Range<usize> {
        2 * self.p * self.width..3 * self.p * self.width
    }
    /// γ (empty without BatchNorm).
    pub fn gamma_range(&self) -> std::ops::Range<usize> {
        let s = 3 * self.p * self.width;
        if self.batchnorm {
            s..s + self.width
        } else {
            s..s
        }
    }
    /// The parameter tensors U, V, W, γ, β as ranges of the flat vector (γ and β empty
    /// without BatchNorm): what ⊥Grad projects one at a time.
    pub fn tensor_ranges(&self) -> [std::ops::Range<usize>; 5] {
        [
            self.u_range(),
            self.v_range(),
            self.w_range(),
            self.gamma_range(),
            self.beta_range(),
        ]
    }
    /// β (empty without BatchNorm).
    pub fn beta_range(&self) -> std::ops::Range<usize> {
        let g = self.gamma_range();
        g.end..g.end + g.len()
    }

    /// The paper's init scale `σ = 0.5 / (2N)^{1/3}`.
    pub fn default_init_std(&self) -> f64 {
        0.5 / (2.0 * self.width as f64).cbrt()
    }

    /// Fresh parameters: every entry of U, V, W from `Normal(0, std²)`, drawn in the
    /// order Uᵀ, Vᵀ, W (row-major), from `seed`; γ = 1, β = 0.
    pub fn init_params(&self, std: f64, seed: u64) -> Vec<f32> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let normal = Normal::new(0.0f64, std).expect("std is finite and non-negative");
        let mut params = vec![0.0f32; self.n_params()];
        for x in &mut params[..3 * self.p * self.width] {
            *x = normal.sample(&mut rng) as f32;
        }
        let g = self.gamma_range();
        params[g].fill(1.0);
        params
    }
}

/// The forward pass (evaluation mode).
impl Arch {
    /// The first layer: row `r` of `h` (`N` wide) becomes `Uᵀ[a] + Vᵀ[b]` for the `r`-th pair.
    pub fn gather(&self, params: &[f32], pairs: impl Iterator<Item = Pair>, h: &mut [f32]) {
        let n = self.width;
        let u = &params[self.u_range()];
        let v = &params[self.v_range()];
        for ((a, b), h) in pairs.zip(h.chunks_exact_mut(n)) {
            let ua = &u[a as usize * n..(a as usize + 1) * n];
            let vb = &v[b as usize * n..(b as usize + 1) * n];
            for ((h, &x), &y) in h.iter_mut().zip(ua).zip(vb) {
                *h = x + y;
            }
        }
    }

    /// The neuron outputs `y_k` of `pairs` in evaluation mode, row-major `pairs × N` in `y`:
    /// `φ(Uᵀ[a] + Vᵀ[b])`, then (with running statistics) BatchNorm as the affine map
    /// `y = z·s + t`, `s = γ/sqrt(var + eps)`, `t = β − s·mean`.
    pub fn eval_hidden(
        &self,
        params: &[f32],
        running: Option<&RunningStats>,
        pairs: &[Pair],
        y: &mut [f32],
    ) {
        let n = self.width;
        let y = &mut y[..pairs.len() * n];
        self.gather(params, pairs.iter().copied(), y);
        let (scale, shift): (Vec<f32>, Vec<f32>) = match running {
            Some(rs) => {
                let gamma = &params[self.gamma_range()];
                let beta = &params[self.beta_range()];
                (0..n)
                    .map(|k| {
                        let s = gamma[k] / (rs.var[k] + self.bn_eps).sqrt();
                        (s, beta[k] - s * rs.mean[k])
                    })
                    .unzip()
            }
            None => (Vec::new(), Vec::new()),
        };
        for z in y.chunks_exact_mut(n) {
            self.activation.apply_in_place(z);
            if !scale.is_empty() {
                for ((z, &s), &t) in z.iter_mut().zip(&scale).zip(&shift) {
                    *z = *z * s + t;
                }
            }
        }
    }

    /// Zeroes neuron `k` in place: row `k` of `U`, `V`, column `k` of `W` and its BatchNorm
    /// `γ`, `β` (the from-scratch definition of pruning it).
    pub fn zero_neuron(&self, params: &mut [f32], k: usize) {
        let n = self.width;
        for a in 0..self.p {
            params[self.u_range().start + a * n + k] = 0.0;
            params[self.v_range().start + a * n + k] = 0.0;
            params[self.w_range().start + a * n + k] = 0.0;
        }
        if self.batchnorm {
            params[self.gamma_range().start + k] = 0.0;
            params[self.beta_range().start + k] = 0.0;
        }
    }

    /// The output layer: `logits = y Wᵀ` for `rows` rows of neuron outputs.
    pub fn output(&self, params: &[f32], y: &[f32], rows: usize, logits: &mut [f32]) {
        let (p, n) = (self.p, self.width);
        matmul(
            &mut logits[..rows * p],
            rows,
            p,
            n,
            Mat::rows(&y[..rows * n], n),
            Mat::transposed(&params[self.w_range()], n),
            false,
        );
    }
}

/// BatchNorm running statistics (PyTorch's `running_mean`, `running_var`).
#[derive(Clone, Debug, PartialEq)]
pub struct RunningStats {
    pub mean: Vec<f32>,
    pub var: Vec<f32>,
}

impl RunningStats {
    pub fn new(width: usize) -> RunningStats {
        RunningStats {
            mean: vec![0.0; width],
            var: vec![1.0; width],
        }
    }
}
