//! The config file's schema: its sections and keys with their defaults (docs/CONFIG.md),
//! and what follows from them alone (fingerprints, table sizes, steps, the effective lr).

use super::axis::Axis;
use crate::data::source::{Source, Standardize};
use crate::data::{CorruptionMode, Operation};
use crate::model::deep::DeepConfig;
use crate::model::transformer::TransformerConfig;
use crate::model::{Activation, Init, Loss, MlpConfig, ModelKind, PerpGrad, Precision};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

pub use crate::model::MAX_WIDTH;
/// The most models one fleet trains together (the product of the fleet axes' lengths).
pub const MAX_FLEET: usize = 1 << 16;
/// The longest run, in optimizer steps (about 2 weeks at a microsecond per step).
pub const MAX_STEPS: u64 = 1 << 40;
/// The Transformer's largest `d_model`, `layers` and `mlp_ratio`.
pub const MAX_D_MODEL: usize = 1 << 16;
pub const MAX_LAYERS: usize = 1024;
pub const MAX_MLP_RATIO: usize = 64;

/// The name of a Rust type (`std::any::type_name::<T>`).
pub type TypeName = fn() -> &'static str;

/// The tables of a config file, with the Rust type each is read into: one list for the
/// section checks, the whole-table `--set` refusal and error messages in the file's words
/// (`config::parse`). A new table (a model kind's `[model.<kind>]`) is one line here.
pub const SECTIONS: &[(&str, TypeName)] = &[
    ("data", std::any::type_name::<DataConfig>),
    ("model", std::any::type_name::<RawModel>),
    ("model.mlp", std::any::type_name::<RawMlp>),
    ("train", std::any::type_name::<TrainConfig>),
    ("eval", std::any::type_name::<EvalConfig>),
    ("report", std::any::type_name::<ReportConfig>),
    (
        "model.transformer",
        std::any::type_name::<TransformerConfig>,
    ),
    ("model.deep", std::any::type_name::<DeepConfig>),
];

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// A name for the experiment; names the default output directory.
    #[serde(default = "default_name")]
    pub name: String,
    #[serde(default)]
    pub data: DataConfig,
    #[serde(default)]
    pub model: ModelConfig,
    #[serde(default)]
    pub train: TrainConfig,
    #[serde(default)]
    pub eval: EvalConfig,
    /// How the report draws the run (written to config.toml only when not the default).
    #[serde(default, skip_serializing_if = "ReportConfig::is_default")]
    pub report: ReportConfig,
}

/// The step axis of the report's curves.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StepAxis {
    /// Logarithmic when the evaluated steps span at least 1.5 decades.
    #[default]
    Auto,
    Log,
    Linear,
}

impl StepAxis {
    /// Whether curves over `steps` are drawn on a log step axis. A log axis needs two
    /// evaluations after step 0 (step 0 cannot be drawn on it): with fewer, the axis is linear
    /// whatever was asked.
    pub fn is_log(self, steps: impl Iterator<Item = u64>) -> bool {
        let (lo, hi) = steps
            .filter(|&s| s > 0)
            .fold((u64::MAX, 0), |(a, b), s| (a.min(s), b.max(s)));
        let two = hi > lo;
        match self {
            StepAxis::Log => two,
            StepAxis::Linear => false,
            StepAxis::Auto => two && hi as f64 / lo as f64 >= 30.0,
        }
    }
}

impl std::str::FromStr for StepAxis {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "auto" => Ok(StepAxis::Auto),
            "log" => Ok(StepAxis::Log),
            "linear" => Ok(StepAxis::Linear),
            _ => Err(format!("{s:?}: expected auto, log or linear")),
        }
    }
}

/// The `[report]` section: how figures are drawn (never changes training).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReportConfig {
    /// `auto` (log when the steps span 1.5 decades or more), `log` or `linear`.
    pub step_axis: StepAxis,
}

impl ReportConfig {
    fn is_default(&self) -> bool {
        *self == ReportConfig::default()
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            name: default_name(),
            data: DataConfig::default(),
            model: ModelConfig::default(),
            train: TrainConfig::default(),
            eval: EvalConfig::default(),
            report: ReportConfig::default(),
        }
    }
}

fn default_name() -> String {
    "experiment".into()
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DataConfig {
    /// Modulus p.
    pub p: usize,
    pub operation: Operation,
    /// Training fraction α, 0 < α < 1.
    pub train_fraction: f64,
    /// Seed of the train/test split (shared by the fleet).
    pub split_seed: u64,
    /// Corruption fraction ξ, 0 ≤ ξ < 1 (fleet axis).
    pub corruption: Axis<f64>,
    /// How corrupted labels are drawn (SCIENCE.md §1, `data::CorruptionMode`): `wrong` (a
    /// uniformly drawn wrong label), `any` (any label; a draw of the true one is clean),
    /// `reference` (the reference's MLP draw: any label, every pick counted as corrupted) or
    /// `reference-transformer` (its Transformer draw: labels 0 … p − 2) or `pair-flip` (the
    /// class-dependent map y → (y + 1) mod p).
    pub corruption_mode: CorruptionMode,
    /// Seed of which examples are corrupted and of their new labels (fleet axis).
    pub corruption_seed: Axis<u64>,
    /// What the examples are (SCIENCE.md §9): `table` (the operation table above; the
    /// default), `mnist1d`, `fashion-mnist` or `mnist-5k`. A dense dataset ignores `p`,
    /// `operation` and `train_fraction`; `split_seed` seeds its generator, split and subsets.
    #[serde(skip_serializing_if = "Source::is_table")]
    pub dataset: Source,
    /// Where an installed dataset is (a directory for Fashion-MNIST, the file for MNIST-5k);
    /// absent: where `scripts/install-datasets` puts it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
    /// A dense dataset's training examples to keep (a seeded subset); absent: all.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub n_train: Option<usize>,
    /// A dense dataset's test examples to keep; absent: all.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub n_test: Option<usize>,
    /// How a dense dataset's inputs are standardised with training statistics: `global`
    /// (the default), `feature` or `none`.
    #[serde(skip_serializing_if = "is_global")]
    pub standardize: Standardize,
}

fn is_global(s: &Standardize) -> bool {
    *s == Standardize::Global
}

impl Default for DataConfig {
    fn default() -> Self {
        DataConfig {
            p: 97,
            operation: Operation::Add,
            train_fraction: 0.5,
            split_seed: 0,
            corruption: Axis::One(0.0),
            corruption_mode: CorruptionMode::Wrong,
            corruption_seed: Axis::One(0),
            dataset: Source::Table,
            path: None,
            n_train: None,
            n_test: None,
            standardize: Standardize::Global,
        }
    }
}

/// The `[model]` table: which kind of network, the fleet axes every kind has, and each kind's
/// own table (`[model.mlp]`, `[model.transformer]`). The MLP's keys are still read from
/// `[model]` itself, where they were in release 0.1 (with a note; [`MLP_KEYS`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawModel")]
pub struct ModelConfig {
    /// `mlp` or `transformer`.
    pub kind: ModelKind,
    /// Dropout rate q before φ, 0 ≤ q < 1 (fleet axis).
    pub dropout: Axis<f64>,
    /// Seed of the initial weights and of the dropout masks (fleet axis).
    pub init_seed: Axis<u64>,
    /// The MLP's settings (with `kind = "mlp"`).
    pub mlp: MlpConfig,
    /// The Transformer's shape (with `kind = "transformer"`).
    pub transformer: TransformerConfig,
    /// The deep MLP's shape (with `kind = "deep"`, on a dense dataset).
    #[serde(skip_serializing_if = "DeepConfig::is_default")]
    pub deep: DeepConfig,
}

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig {
            kind: ModelKind::default(),
            dropout: Axis::One(0.0),
            init_seed: Axis::One(0),
            mlp: MlpConfig::default(),
            transformer: TransformerConfig::default(),
            deep: DeepConfig::default(),
        }
    }
}

/// The MLP's keys that `[model]` itself still accepts (the layout of release 0.1).
pub const MLP_KEYS: [&str; 7] = [
    "width",
    "activation",
    "batchnorm",
    "bn_momentum",
    "bn_eps",
    "init",
    "init_std",
];

/// The MLP's keys as written, in `[model.mlp]` or (in release 0.1) in `[model]`: each absent
/// key takes `MlpConfig`'s default.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawMlp {
    width: Option<usize>,
    activation: Option<Activation>,
    batchnorm: Option<bool>,
    bn_momentum: Option<f64>,
    bn_eps: Option<f64>,
    init: Option<Init>,
    init_std: Option<f64>,
}

/// `[model]` as written: the MLP's keys in `[model.mlp]` or in `[model]` itself, not both.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawModel {
    #[serde(default)]
    kind: ModelKind,
    #[serde(default = "no_dropout")]
    dropout: Axis<f64>,
    #[serde(default = "seed_zero")]
    init_seed: Axis<u64>,
    // The MLP's keys where they were in release 0.1 (`MLP_KEYS`).
    width: Option<usize>,
    activation: Option<Activation>,
    batchnorm: Option<bool>,
    bn_momentum: Option<f64>,
    bn_eps: Option<f64>,
    init: Option<Init>,
    init_std: Option<f64>,
    #[serde(default)]
    mlp: RawMlp,
    #[serde(default)]
    transformer: TransformerConfig,
    #[serde(default)]
    deep: DeepConfig,
}

fn no_dropout() -> Axis<f64> {
    Axis::One(0.0)
}

fn seed_zero() -> Axis<u64> {
    Axis::One(0)
}

impl TryFrom<RawModel> for ModelConfig {
    type Error = String;
    fn try_from(r: RawModel) -> std::result::Result<ModelConfig, String> {
        let old = RawMlp {
            width: r.width,
            activation: r.activation,
            batchnorm: r.batchnorm,
            bn_momentum: r.bn_momentum,
            bn_eps: r.bn_eps,
            init: r.init,
            init_std: r.init_std,
        };
        let new = r.mlp;
        let d = MlpConfig::default();
        fn one<T>(
            key: &str,
            old: Option<T>,
            new: Option<T>,
        ) -> std::result::Result<Option<T>, String> {
            match (old, new) {
                (Some(_), Some(_)) => Err(format!(
                    "model.{key} and model.mlp.{key} are the same setting: give it once (under [model.mlp])"
                )),
                (old, new) => Ok(new.or(old)),
            }
        }
        let mlp = MlpConfig {
            width: one("width", old.width, new.width)?.unwrap_or(d.width),
            activation: one("activation", old.activation, new.activation)?.unwrap_or(d.activation),
            batchnorm: one("batchnorm", old.batchnorm, new.batchnorm)?.unwrap_or(d.batchnorm),
            bn_momentum: one("bn_momentum", old.bn_momentum, new.bn_momentum)?
                .unwrap_or(d.bn_momentum),
            bn_eps: one("bn_eps", old.bn_eps, new.bn_eps)?.unwrap_or(d.bn_eps),
            init: one("init", old.init, new.init)?.unwrap_or(d.init),
            init_std: one("init_std", old.init_std, new.init_std)?.or(d.init_std),
        };
        Ok(ModelConfig {
            kind: r.kind,
            dropout: r.dropout,
            init_seed: r.init_seed,
            mlp,
            transformer: r.transformer,
            deep: r.deep,
        })
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    pub loss: Loss,
    /// Learning rate (fleet axis).
    pub lr: Axis<f64>,
    /// AdamW weight decay (fleet axis); the per-step shrink is `1 − lr·wd`.
    pub weight_decay: Axis<f64>,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    /// Minibatch size B; absent or `"full"`: full batch.
    #[serde(
        deserialize_with = "batch_size_de",
        skip_serializing_if = "Option::is_none"
    )]
    pub batch_size: Option<usize>,
    /// The reference's rule `lr ← lr · sqrt(B / 256)` for `B < 256`.
    pub scale_lr_with_batch: bool,
    /// Training length in epochs (an epoch is ⌊n_train / B⌋ steps). Give `epochs` or `steps`.
    pub epochs: Option<u64>,
    /// Training length in optimizer steps.
    pub steps: Option<u64>,
    /// Seed of the minibatch permutations (shared by the fleet).
    pub batch_seed: u64,
    /// ⊥Grad before every AdamW step: `none`, `project` or `project-keep-norm` (fleet axis).
    #[serde(skip_serializing_if = "TrainConfig::perp_default")]
    pub perp_grad: Axis<PerpGrad>,
    /// The precision of the training loss's softmax (cross-entropy, StableMax): `f32` or
    /// `f64`; absent: the kind's default (f64 for the MLPs, f32 for the Transformer).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub softmax_precision: Option<Precision>,
}

impl TrainConfig {
    fn perp_default(p: &Axis<PerpGrad>) -> bool {
        *p == Axis::One(PerpGrad::None)
    }
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            loss: Loss::Mse,
            lr: Axis::One(0.01),
            weight_decay: Axis::One(0.0),
            beta1: 0.9,
            beta2: 0.98,
            eps: 1e-8,
            batch_size: None,
            scale_lr_with_batch: false,
            epochs: None,
            steps: None,
            batch_seed: 0,
            perp_grad: Axis::One(PerpGrad::None),
            softmax_precision: None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EvalConfig {
    /// Evaluate every this many steps (0: only at the start and the end).
    pub every: u64,
    /// The threshold `hi` of the phase classification and the dynamics.
    pub threshold: f64,
    /// The stricter threshold `full` that `A_inv` must reach for Full Inversion (SCIENCE.md §5).
    pub full_threshold: f64,
    /// Save every model's weights every this many steps under `checkpoints/` (0: never).
    pub checkpoint_every: u64,
    /// Minutes of wall time between saves of the resumable state (`resume.safetensors`) of a
    /// run directory; 0: only when interrupted.
    pub autosave_minutes: f64,
    /// Take the progress measures (SCIENCE.md §10: key frequencies, restricted and excluded
    /// loss, Gini coefficients) at every this many evaluations and at the last (0: never).
    /// Token tasks of the MLP and the Transformer only; the losses for `add` and `sub`.
    #[serde(skip_serializing_if = "EvalConfig::progress_default")]
    pub progress_every: u64,
}

impl EvalConfig {
    fn progress_default(n: &u64) -> bool {
        *n == 1
    }

    /// Whether the evaluation at `step` (of `total` steps) takes the progress measures: the
    /// evaluations are numbered by `step / every`, so a resumed run takes them at the same
    /// steps.
    pub fn progress_at(&self, step: u64, total: u64) -> bool {
        let k = self.progress_every;
        k > 0 && (step == total || (step / self.every.max(1)).is_multiple_of(k))
    }
}

impl Default for EvalConfig {
    fn default() -> Self {
        EvalConfig {
            every: 10,
            threshold: 0.9,
            full_threshold: 0.95,
            checkpoint_every: 0,
            autosave_minutes: 5.0,
            progress_every: 1,
        }
    }
}

impl Config {
    /// A fingerprint of the resolved config (FNV-1a of its TOML): what a saved state or a
    /// sweep plan belongs to.
    pub fn fingerprint(&self) -> String {
        // How often the state is saved does not change what is trained.
        let mut c = self.clone();
        c.eval.autosave_minutes = 0.0;
        fingerprint(&c.legacy_toml())
    }

    /// [`Config::fingerprint`] of the config at any length (`train.steps`, `train.epochs`):
    /// what a saved training state belongs to, which a longer run of the config continues.
    pub fn fingerprint_any_length(&self) -> String {
        let mut c = self.clone();
        c.train.steps = None;
        c.train.epochs = None;
        c.fingerprint()
    }

    /// A fingerprint of what is trained: the data, model and train sections (not the name or
    /// the evaluation settings, which may change after training, nor the run's length: a
    /// longer run of the config trains the same first steps, so an extended run's files keep
    /// their tag).
    pub fn training_fingerprint(&self) -> String {
        let mut c = self.clone();
        c.train.steps = None;
        c.train.epochs = None;
        c.legacy_training_fingerprint()
    }

    /// The training fingerprint as files written before it left out the run's length carry
    /// it (summary.json's `trained_config` and the `trained_config` tags of that version).
    pub fn legacy_training_fingerprint(&self) -> String {
        let mut c = self.clone();
        c.name = String::new();
        c.eval = EvalConfig::default();
        c.report = ReportConfig::default();
        fingerprint(&c.legacy_toml())
    }

    /// Whether a file's `trained_config` tag says this config trained it (either form).
    pub fn trained_by(&self, tag: &str) -> bool {
        tag == self.training_fingerprint() || tag == self.legacy_training_fingerprint()
    }

    /// The config as TOML in the layout of release 0.1 (the MLP's keys in `[model]`), to the byte
    /// as that version wrote it: what the fingerprints are taken over, so that the
    /// fingerprints in run directories and sweeps written before stay valid.
    pub fn legacy_toml(&self) -> String {
        #[derive(Serialize)]
        struct Legacy<'a> {
            name: &'a str,
            data: &'a DataConfig,
            model: LegacyModel<'a>,
            train: &'a TrainConfig,
            eval: &'a EvalConfig,
            #[serde(skip_serializing_if = "ReportConfig::is_default")]
            report: &'a ReportConfig,
        }
        // `ModelConfig`'s fields in their order in release 0.1.
        #[derive(Serialize)]
        struct LegacyModel<'a> {
            kind: ModelKind,
            width: usize,
            activation: Activation,
            dropout: &'a Axis<f64>,
            batchnorm: bool,
            bn_momentum: f64,
            bn_eps: f64,
            init: Init,
            init_std: Option<f64>,
            init_seed: &'a Axis<u64>,
            transformer: &'a TransformerConfig,
            // Kinds added since release 0.1: written only when not at their defaults, so
            // that the fingerprints of earlier configs do not change.
            #[serde(skip_serializing_if = "DeepConfig::is_default")]
            deep: &'a DeepConfig,
        }
        let (m, mlp) = (&self.model, &self.model.mlp);
        let legacy = Legacy {
            name: &self.name,
            data: &self.data,
            model: LegacyModel {
                kind: m.kind,
                width: mlp.width,
                activation: mlp.activation,
                dropout: &m.dropout,
                batchnorm: mlp.batchnorm,
                bn_momentum: mlp.bn_momentum,
                bn_eps: mlp.bn_eps,
                init: mlp.init,
                init_std: mlp.init_std,
                init_seed: &m.init_seed,
                transformer: &m.transformer,
                deep: &m.deep,
            },
            train: &self.train,
            eval: &self.eval,
            report: &self.report,
        };
        toml::to_string(&legacy).expect("a config always serializes")
    }

    /// The config as TOML, every default filled in.
    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("a config always serializes")
    }

    /// The number of pairs of the table (`p²`, or `p(p − 1)` for `div`) and of training pairs
    /// (`⌊α · table⌋`), as [`Split::new`] draws them.
    pub fn table_sizes(&self) -> (usize, usize) {
        let p = self.data.p;
        let table = if self.data.operation == Operation::Div {
            p.saturating_mul(p.saturating_sub(1))
        } else {
            p.saturating_mul(p)
        };
        (
            table,
            (self.data.train_fraction * table as f64).floor() as usize,
        )
    }

    /// The number of examples (training and test) and of training examples the data has:
    /// the table's sizes ([`Config::table_sizes`]) or a dense dataset's, after `n_train` and
    /// `n_test`.
    pub fn example_counts(&self) -> (usize, usize) {
        match self.data.dataset.sizes() {
            None => self.table_sizes(),
            Some(sz) => {
                let train = self.data.n_train.unwrap_or(sz.n_train).min(sz.n_train);
                let test = self.data.n_test.unwrap_or(sz.n_test).min(sz.n_test);
                (train + test, train)
            }
        }
    }

    /// Optimizer steps per epoch for `n_train` training examples.
    pub fn steps_per_epoch(&self, n_train: usize) -> u64 {
        match self.train.batch_size {
            Some(b) if b < n_train => (n_train / b) as u64,
            _ => 1,
        }
    }

    /// Total optimizer steps (default: 1000 epochs).
    pub fn total_steps(&self, n_train: usize) -> u64 {
        match (self.train.steps, self.train.epochs) {
            (Some(s), _) => s,
            (None, Some(e)) => e.saturating_mul(self.steps_per_epoch(n_train)),
            (None, None) => 1000u64.saturating_mul(self.steps_per_epoch(n_train)),
        }
    }

    /// The precision of the training loss's softmax: `train.softmax_precision`, else the
    /// kind's default — f32 for the Transformer (its passes compute in f32), f64 for the
    /// MLPs (as they always did; docs/NUMERICS.md).
    pub fn softmax_precision(&self) -> Precision {
        self.train
            .softmax_precision
            .unwrap_or(match self.model.kind {
                ModelKind::Transformer => Precision::F32,
                _ => Precision::F64,
            })
    }

    /// The learning rate actually used for a configured `lr`.
    pub fn effective_lr(&self, lr: f64) -> f64 {
        match self.train.batch_size {
            Some(b) if self.train.scale_lr_with_batch && b < 256 => lr * (b as f64 / 256.0).sqrt(),
            _ => lr,
        }
    }
}

/// FNV-1a (64 bits, hex) of `text`: a stable fingerprint, the same on every machine.
pub fn fingerprint(text: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// `batch_size`: a positive integer or `"full"` (= absent).
fn batch_size_de<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<usize>, D::Error> {
    use serde::de::Unexpected;
    struct V;
    impl serde::de::Visitor<'_> for V {
        type Value = Option<usize>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a batch size ≥ 1 or \"full\"")
        }
        fn visit_i64<E: serde::de::Error>(self, x: i64) -> std::result::Result<Self::Value, E> {
            if x >= 1 {
                Ok(Some(x as usize))
            } else {
                Err(E::invalid_value(Unexpected::Signed(x), &self))
            }
        }
        fn visit_u64<E: serde::de::Error>(self, x: u64) -> std::result::Result<Self::Value, E> {
            self.visit_i64(x as i64)
        }
        fn visit_str<E: serde::de::Error>(self, x: &str) -> std::result::Result<Self::Value, E> {
            if x == "full" {
                Ok(None)
            } else {
                Err(E::invalid_value(Unexpected::Str(x), &self))
            }
        }
    }
    d.deserialize_any(V)
}
