//! Experiment configuration: TOML files, `--set key=value` overrides, validation, and the
//! expansion of fleet axes into one model per combination.
//!
//! Fleet axes (a value or a list of values): `data.corruption`, `data.corruption_seed`,
//! `model.init_seed`, `model.dropout`, `train.weight_decay`, `train.lr`. Everything else is
//! shared by the fleet. See `docs/CONFIG.md` for every key.

use crate::data::{validate_table, CorruptionMode, Split, TrainLabels};
use crate::error::{Error, Result};
use crate::model::transformer::TransformerConfig;
use crate::model::{Activation, Arch, Architecture};
use crate::train::adamw::AdamWHyper;
use crate::train::loss::Loss;
use crate::train::memory;
use crate::train::network::{ModelInit, Network};
use crate::train::ModelHyper;
use serde::{Deserialize, Serialize};

pub use crate::data::Operation;
pub use crate::model::{Init, ModelKind};

/// The built-in default experiment (the regularization study at 500 epochs).
pub const DEFAULT_CONFIG: &str = include_str!("../configs/default.toml");

/// The largest hidden width N (and Transformer width d · mlp_ratio).
pub const MAX_WIDTH: usize = 1 << 24;
/// The most models one fleet trains together (the product of the fleet axes' lengths).
pub const MAX_FLEET: usize = 1 << 16;
/// The longest run, in optimizer steps (about 2 weeks at a microsecond per step).
pub const MAX_STEPS: u64 = 1 << 40;
/// The Transformer's largest `d_model`, `layers` and `mlp_ratio`.
pub const MAX_D_MODEL: usize = 1 << 16;
pub const MAX_LAYERS: usize = 1024;
pub const MAX_MLP_RATIO: usize = 64;

/// One value, or a list of values that the fleet sweeps over.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Axis<T> {
    One(T),
    Many(Vec<T>),
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Axis<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        use serde::de::{value, IntoDeserializer, SeqAccess, Visitor};
        struct V<T>(std::marker::PhantomData<T>);
        macro_rules! scalar {
            ($name:ident, $t:ty) => {
                fn $name<E: serde::de::Error>(self, x: $t) -> std::result::Result<Axis<T>, E> {
                    T::deserialize(IntoDeserializer::<E>::into_deserializer(x)).map(Axis::One)
                }
            };
        }
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = Axis<T>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a value or a list of values")
            }
            scalar!(visit_i64, i64);
            scalar!(visit_u64, u64);
            scalar!(visit_f64, f64);
            scalar!(visit_bool, bool);
            fn visit_str<E: serde::de::Error>(self, x: &str) -> std::result::Result<Axis<T>, E> {
                T::deserialize(value::StrDeserializer::<E>::new(x)).map(Axis::One)
            }
            fn visit_seq<A: SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> std::result::Result<Axis<T>, A::Error> {
                let mut v = Vec::new();
                while let Some(x) = seq.next_element()? {
                    v.push(x);
                }
                Ok(Axis::Many(v))
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

impl<T: Clone> Axis<T> {
    /// How many values the axis has.
    pub fn len(&self) -> usize {
        match self {
            Axis::One(_) => 1,
            Axis::Many(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn values(&self) -> Vec<T> {
        match self {
            Axis::One(x) => vec![x.clone()],
            Axis::Many(v) => v.clone(),
        }
    }
}

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
    /// `wrong` (a uniformly drawn wrong label) or `any` (the reference: any label).
    pub corruption_mode: CorruptionMode,
    /// Seed of which examples are corrupted and of their new labels (fleet axis).
    pub corruption_seed: Axis<u64>,
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
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelConfig {
    /// `mlp` or `transformer`.
    pub kind: ModelKind,
    /// Hidden width N (MLP).
    pub width: usize,
    pub activation: Activation,
    /// Dropout rate q before φ, 0 ≤ q < 1 (fleet axis).
    pub dropout: Axis<f64>,
    pub batchnorm: bool,
    pub bn_momentum: f64,
    pub bn_eps: f64,
    /// `normal` (the paper's Gaussian init) or `analytic` (Gromov's periodic network, SCIENCE.md §7).
    pub init: Init,
    /// Standard deviation of the normal init; absent: the paper's 0.5 / (2N)^{1/3}.
    pub init_std: Option<f64>,
    /// Seed of the initial weights and of the dropout masks (fleet axis).
    pub init_seed: Axis<u64>,
    /// The Transformer's shape (with `kind = "transformer"`).
    pub transformer: TransformerConfig,
}

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig {
            width: 500,
            activation: Activation::Square,
            dropout: Axis::One(0.0),
            batchnorm: false,
            bn_momentum: 0.1,
            bn_eps: 1e-5,
            init: Init::Normal,
            init_std: None,
            init_seed: Axis::One(0),
            kind: ModelKind::default(),
            transformer: TransformerConfig::default(),
        }
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
}

impl Default for EvalConfig {
    fn default() -> Self {
        EvalConfig {
            every: 10,
            threshold: 0.9,
            full_threshold: 0.95,
            checkpoint_every: 0,
            autosave_minutes: 5.0,
        }
    }
}

/// The settings of one model of the fleet.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ModelSpec {
    pub index: usize,
    pub corruption: f64,
    pub corruption_seed: u64,
    pub init_seed: u64,
    pub weight_decay: f64,
    pub dropout: f64,
    /// The learning rate as configured (before any batch-size scaling).
    pub lr: f64,
}

impl Config {
    /// A config from a TOML table.
    pub fn from_table(table: &toml::Table) -> Result<Config> {
        check_sections(table)?;
        table
            .clone()
            .try_into()
            .map_err(|e: toml::de::Error| Error::Config(plain(e.message())))
    }

    /// Parses a config from TOML text, applying `key=value` overrides first.
    pub fn from_toml(text: &str, sets: &[String]) -> Result<Config> {
        Config::from_toml_noted(text, sets).map(|(c, _)| c)
    }

    /// As [`Config::from_toml`], with notes on what the overrides replaced: `--set
    /// train.steps=N` on a config that gives `train.epochs` replaces it (and the reverse),
    /// unless the overrides give both.
    ///
    /// Errors name the line and column of `text`, or the `--set` as typed.
    pub fn from_toml_noted(text: &str, sets: &[String]) -> Result<(Config, Vec<String>)> {
        let mut table: toml::Table =
            toml::from_str(text).map_err(|e| Error::Config(located(text, &e)))?;
        check_sections(&table)?;
        if sets.is_empty() {
            let cfg = toml::from_str(text).map_err(|e| Error::Config(located(text, &e)))?;
            return Ok((cfg, Vec::new()));
        }
        let mut notes = Vec::new();
        let set_keys: Vec<&str> = sets
            .iter()
            .filter_map(|s| s.split_once('=').map(|(k, _)| k.trim()))
            .collect();
        for (given, other) in [("steps", "epochs"), ("epochs", "steps")] {
            let (gk, ok) = (format!("train.{given}"), format!("train.{other}"));
            if set_keys.contains(&gk.as_str()) && !set_keys.contains(&ok.as_str()) {
                let train = table.get_mut("train").and_then(|t| t.as_table_mut());
                if let Some(old) = train.and_then(|t| t.remove(other)) {
                    notes.push(format!(
                        "--set {gk} replaces the config's {ok} = {old} (give one length, not both)"
                    ));
                }
            }
        }
        let base = table.clone();
        for s in sets {
            apply_set(&mut table, s)?;
        }
        match Config::from_table(&table) {
            Ok(cfg) => Ok((cfg, notes)),
            Err(merged) => {
                // Whose error is it: the file's, or the first `--set` after which the
                // config no longer reads?
                toml::from_str::<Config>(text).map_err(|e| Error::Config(located(text, &e)))?;
                let mut t = base;
                for s in sets {
                    apply_set(&mut t, s)?;
                    if let Err(Error::Config(why)) = Config::from_table(&t) {
                        return Err(Error::Set {
                            set: s.clone(),
                            why,
                        });
                    }
                }
                Err(merged)
            }
        }
    }

    /// A fingerprint of the resolved config (FNV-1a of its TOML): what a saved state or a
    /// sweep plan belongs to.
    pub fn fingerprint(&self) -> String {
        // How often the state is saved does not change what is trained.
        let mut c = self.clone();
        c.eval.autosave_minutes = 0.0;
        fingerprint(&c.to_toml())
    }

    /// A fingerprint of what is trained: the data, model and train sections (not the name or
    /// the evaluation settings, which may change after training).
    pub fn training_fingerprint(&self) -> String {
        let mut c = self.clone();
        c.name = String::new();
        c.eval = EvalConfig::default();
        c.report = ReportConfig::default();
        fingerprint(&c.to_toml())
    }

    /// The config as TOML, every default filled in.
    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("a config always serializes")
    }

    /// Checks every value once; the result carries the warnings that do not stop a run and
    /// the network the config asks for.
    pub fn check(self) -> Result<Checked> {
        let warnings = self.validate()?;
        let models = self.fleet_len()?;
        let m = &self.model;
        let architecture = match m.kind {
            ModelKind::Mlp => {
                let arch = Arch {
                    p: self.data.p,
                    width: m.width,
                    activation: m.activation,
                    batchnorm: m.batchnorm,
                    bn_momentum: m.bn_momentum as f32,
                    bn_eps: m.bn_eps as f32,
                };
                Architecture::Mlp {
                    arch,
                    init: m.init,
                    init_std: m.init_std.unwrap_or_else(|| arch.default_init_std()),
                }
            }
            ModelKind::Transformer => {
                validate_transformer(m)?;
                Architecture::Transformer {
                    cfg: m.transformer.clone(),
                    p: self.data.p,
                }
            }
        };
        let checked = Checked {
            cfg: self,
            warnings,
            architecture,
        };
        checked.check_size(models)?;
        Ok(checked)
    }

    /// The number of models of the fleet (the product of the fleet axes' lengths), refused
    /// above [`MAX_FLEET`].
    pub fn fleet_len(&self) -> Result<usize> {
        let lens = [
            ("data.corruption", self.data.corruption.len()),
            ("data.corruption_seed", self.data.corruption_seed.len()),
            ("model.init_seed", self.model.init_seed.len()),
            ("train.weight_decay", self.train.weight_decay.len()),
            ("model.dropout", self.model.dropout.len()),
            ("train.lr", self.train.lr.len()),
        ];
        let mut n: usize = 1;
        for (_, len) in lens {
            n = n.saturating_mul(len);
        }
        if n > MAX_FLEET {
            let many: Vec<String> = lens
                .iter()
                .filter(|l| l.1 > 1)
                .map(|l| format!("{} {}", l.1, l.0))
                .collect();
            return Err(Error::invalid(
                "fleet",
                format!(
                    "the fleet axes ask for {} models ({}), more than the {MAX_FLEET} one fleet may train; use fewer values, or a sweep (docs/SWEEPS.md)",
                    if n == usize::MAX { "over 10^19".to_string() } else { n.to_string() },
                    many.join(" × ")
                ),
            ));
        }
        Ok(n)
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

    /// Checks every value but the Transformer's; returns warnings that do not stop a run.
    fn validate(&self) -> Result<Vec<String>> {
        let d = &self.data;
        let mut warnings = validate_table(d.p, d.operation)?;
        if !(d.train_fraction > 0.0 && d.train_fraction < 1.0) {
            return Err(Error::invalid(
                "data.train_fraction",
                format!("α must satisfy 0 < α < 1, got {}", d.train_fraction),
            ));
        }
        for &xi in nonempty(&d.corruption, "data.corruption")?.iter() {
            if !(0.0..1.0).contains(&xi) {
                return Err(Error::invalid(
                    "data.corruption",
                    format!("ξ must satisfy 0 ≤ ξ < 1, got {xi}"),
                ));
            }
        }
        nonempty(&d.corruption_seed, "data.corruption_seed")?;
        let m = &self.model;
        if m.width == 0 || m.width > MAX_WIDTH {
            return Err(Error::invalid(
                "model.width",
                format!("the width N must lie in [1, {MAX_WIDTH}], got {}", m.width),
            ));
        }
        for &q in nonempty(&m.dropout, "model.dropout")?.iter() {
            if !(0.0..1.0).contains(&q) {
                return Err(Error::invalid(
                    "model.dropout",
                    format!("the dropout rate must satisfy 0 ≤ q < 1, got {q}"),
                ));
            }
        }
        nonempty(&m.init_seed, "model.init_seed")?;
        if m.init == Init::Analytic {
            warnings.extend(crate::model::analytic::check(d.p, m.width)?);
            if d.operation != Operation::Add {
                warnings.push(format!(
                    "init = \"analytic\" is the solution of `add`, not of `{}`",
                    d.operation.name()
                ));
            }
        }
        if !(m.bn_momentum >= 0.0 && m.bn_momentum <= 1.0) {
            return Err(Error::invalid("model.bn_momentum", "must lie in [0, 1]"));
        }
        if m.bn_eps.is_nan() || m.bn_eps <= 0.0 {
            return Err(Error::invalid("model.bn_eps", "must be positive"));
        }
        if let Some(s) = m.init_std {
            if !(s >= 0.0 && s.is_finite()) {
                return Err(Error::invalid(
                    "model.init_std",
                    "must be a finite number ≥ 0",
                ));
            }
        }
        let t = &self.train;
        for &lr in nonempty(&t.lr, "train.lr")?.iter() {
            if !(lr > 0.0 && lr.is_finite()) {
                return Err(Error::invalid(
                    "train.lr",
                    format!("must be positive, got {lr}"),
                ));
            }
        }
        for &wd in nonempty(&t.weight_decay, "train.weight_decay")?.iter() {
            if !(wd >= 0.0 && wd.is_finite()) {
                return Err(Error::invalid(
                    "train.weight_decay",
                    format!("must be ≥ 0, got {wd}"),
                ));
            }
        }
        let lrs = t.lr.values();
        let over: Vec<(f64, f64)> = t
            .weight_decay
            .values()
            .iter()
            .flat_map(|&wd| lrs.iter().map(move |&lr| (lr, wd)))
            .filter(|(lr, wd)| lr * wd >= 1.0)
            .collect();
        if let Some(&(lr, wd)) = over.first() {
            let more = match over.len() {
                1 => String::new(),
                k => format!(" (and {} more of the fleet's lr, wd pairs)", k - 1),
            };
            warnings.push(format!(
                "lr·wd = {lr}·{wd} = {} ≥ 1{more}: the decoupled decay factor 1 − lr·wd is not positive",
                lr * wd
            ));
        }
        if !(0.0..1.0).contains(&t.beta1) || !(0.0..1.0).contains(&t.beta2) {
            return Err(Error::invalid("train.beta1/beta2", "must lie in [0, 1)"));
        }
        if t.eps.is_nan() || t.eps <= 0.0 {
            return Err(Error::invalid("train.eps", "must be positive"));
        }
        match (t.epochs, t.steps) {
            (Some(_), Some(_)) => {
                return Err(Error::invalid(
                    "train.epochs",
                    "give either `epochs` or `steps`, not both",
                ))
            }
            (Some(0), _) => {
                return Err(Error::invalid(
                    "train.epochs",
                    "the training length must be at least 1 epoch",
                ))
            }
            (_, Some(0)) => {
                return Err(Error::invalid(
                    "train.steps",
                    "the training length must be at least 1 step",
                ))
            }
            _ => {}
        }
        if t.batch_size == Some(0) {
            return Err(Error::invalid(
                "train.batch_size",
                "must be at least 1 (omit it for full batch)",
            ));
        }
        let e = &self.eval;
        if !(e.autosave_minutes >= 0.0 && e.autosave_minutes.is_finite()) {
            return Err(Error::invalid(
                "eval.autosave_minutes",
                format!(
                    "must be a finite number of minutes ≥ 0 (0: only on interrupt), got {}",
                    e.autosave_minutes
                ),
            ));
        }
        if !(e.threshold > 0.0 && e.threshold <= 1.0) {
            return Err(Error::invalid(
                "eval.threshold",
                format!("must lie in (0, 1], got {}", e.threshold),
            ));
        }
        if !(e.full_threshold >= e.threshold && e.full_threshold <= 1.0) {
            return Err(Error::invalid(
                "eval.full_threshold",
                format!(
                    "the Full Inversion threshold must lie in [eval.threshold, 1] = [{}, 1], got {} (its default is 0.95: raising eval.threshold above it needs eval.full_threshold too)",
                    e.threshold, e.full_threshold
                ),
            ));
        }
        if self.name.is_empty()
            || self
                .name
                .chars()
                .any(|c| !(c.is_ascii_alphanumeric() || "-_.".contains(c)))
        {
            return Err(Error::invalid(
                "name",
                format!(
                    "use letters, digits, '-', '_' and '.' only, got {:?}",
                    self.name
                ),
            ));
        }
        Ok(warnings)
    }

    /// One model per combination of the fleet axes, in the order corruption, corruption_seed,
    /// init_seed, weight_decay, dropout, lr (the last varies fastest).
    pub fn fleet(&self) -> Vec<ModelSpec> {
        let mut out = Vec::new();
        for &corruption in &self.data.corruption.values() {
            for &corruption_seed in &self.data.corruption_seed.values() {
                for &init_seed in &self.model.init_seed.values() {
                    for &weight_decay in &self.train.weight_decay.values() {
                        for &dropout in &self.model.dropout.values() {
                            for &lr in &self.train.lr.values() {
                                out.push(ModelSpec {
                                    index: out.len(),
                                    corruption,
                                    corruption_seed,
                                    init_seed,
                                    weight_decay,
                                    dropout,
                                    lr,
                                });
                            }
                        }
                    }
                }
            }
        }
        out
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

    /// The learning rate actually used for a configured `lr`.
    pub fn effective_lr(&self, lr: f64) -> f64 {
        match self.train.batch_size {
            Some(b) if self.train.scale_lr_with_batch && b < 256 => lr * (b as f64 / 256.0).sqrt(),
            _ => lr,
        }
    }
}

/// The Transformer's settings (`model.kind = "transformer"`).
fn validate_transformer(m: &ModelConfig) -> Result<()> {
    let t = &m.transformer;
    for (key, value, max) in [
        ("d_model", t.d_model, MAX_D_MODEL),
        ("heads", t.heads, MAX_D_MODEL),
        ("layers", t.layers, MAX_LAYERS),
        ("mlp_ratio", t.mlp_ratio, MAX_MLP_RATIO),
    ] {
        if value == 0 || value > max {
            return Err(Error::invalid(
                format!("model.transformer.{key}"),
                format!("must lie in [1, {max}], got {value}"),
            ));
        }
    }
    if !t.d_model.is_multiple_of(t.heads) {
        return Err(Error::invalid(
            "model.transformer.heads",
            format!(
                "d_model = {} is not divisible by {} heads",
                t.d_model, t.heads
            ),
        ));
    }
    if !(-1.0..=3.0).contains(&t.mup_s) {
        return Err(Error::invalid(
            "model.transformer.mup_s",
            format!(
                "{} is outside [-1, 3] (1 is μP, 0 the standard parametrization)",
                t.mup_s
            ),
        ));
    }
    if t.rescale_optim && t.mlp_bias {
        return Err(Error::invalid(
            "model.transformer.rescale_optim",
            "the reference's rescale_optim has no learning-rate group for biases: set model.transformer.mlp_bias = false",
        ));
    }
    if m.batchnorm || m.init != Init::Normal {
        return Err(Error::invalid(
            "model.kind",
            "the Transformer has no BatchNorm and no analytic init (use LayerNorm: model.transformer.layernorm)",
        ));
    }
    Ok(())
}

/// A config that passed [`Config::check`]: the only kind the rest of the library accepts.
/// It reads as the [`Config`] it wraps.
#[derive(Clone, Debug)]
pub struct Checked {
    cfg: Config,
    warnings: Vec<String>,
    architecture: Architecture,
}

impl std::ops::Deref for Checked {
    type Target = Config;
    fn deref(&self) -> &Config {
        &self.cfg
    }
}

/// Everything a checked config resolves to before training.
pub struct Setup {
    pub split: Split,
    pub specs: Vec<ModelSpec>,
    pub labels: Vec<TrainLabels>,
    pub network: Network,
    pub total_steps: u64,
    pub steps_per_epoch: u64,
}

/// The seed of a model's dropout masks, derived from its init seed.
pub fn dropout_seed(init_seed: u64) -> u64 {
    init_seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03
}

impl Checked {
    /// Refuses a run longer than [`MAX_STEPS`] or a fleet of `models` models that needs more
    /// memory than this machine allows, before anything is allocated.
    pub fn check_size(&self, models: usize) -> Result<()> {
        let (_, n) = self.table_sizes();
        let per_epoch = self.steps_per_epoch(n);
        let steps = match (self.train.steps, self.train.epochs) {
            (Some(s), _) => Some(s),
            (None, e) => e.unwrap_or(1000).checked_mul(per_epoch),
        };
        match steps {
            Some(s) if s <= MAX_STEPS => {}
            _ => {
                let (key, given) = match (self.train.steps, self.train.epochs) {
                    (Some(s), _) => ("train.steps", s.to_string()),
                    (None, e) => (
                        "train.epochs",
                        format!("{} epochs of {per_epoch} steps", e.unwrap_or(1000)),
                    ),
                };
                return Err(Error::invalid(
                    key,
                    format!("{given} is more than the {MAX_STEPS} optimizer steps a run may take"),
                ));
            }
        }
        let steps = steps.unwrap_or(0) as f64;
        let every = self.eval.every;
        let evals = if every == 0 {
            2.0
        } else {
            steps / every as f64 + 2.0
        };
        let est = memory::estimate(memory::Shape {
            architecture: &self.architecture,
            p: self.data.p,
            n_train: n,
            batch: self.train.batch_size.unwrap_or(n).min(n),
            models,
            evals,
        });
        let fleet = if models > 1 {
            format!(" or the fleet ({models} models)")
        } else {
            String::new()
        };
        memory::ensure(&est, "this experiment", &fleet)?;
        Ok(())
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// What the config allows but a researcher should know.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// The network the config asks for.
    pub fn architecture(&self) -> &Architecture {
        &self.architecture
    }

    /// The split, the labels of every model of the fleet and the untrained network.
    pub fn setup(&self) -> Result<Setup> {
        self.setup_specs(self.fleet())
    }

    /// As [`Checked::setup`], with the models given explicitly (their fleet-axis values
    /// replace the config's; sweeps group arbitrary runs into fleets).
    pub fn setup_specs(&self, specs: Vec<ModelSpec>) -> Result<Setup> {
        if specs.len() > MAX_FLEET {
            return Err(Error::invalid(
                "max_fleet",
                format!("{} models in one fleet, more than {MAX_FLEET}", specs.len()),
            ));
        }
        self.check_size(specs.len())?;
        let d = &self.data;
        let split = Split::new(d.p, d.operation, d.train_fraction, d.split_seed)?;
        let n = split.n_train();
        if let Some(b) = self.train.batch_size {
            if b > n {
                return Err(Error::invalid(
                    "train.batch_size",
                    format!("B = {b} exceeds the {n} training examples (omit it for full batch)"),
                ));
            }
        }
        let mut labels = Vec::with_capacity(specs.len());
        let mut models = Vec::with_capacity(specs.len());
        for s in &specs {
            let l = split.corrupt(s.corruption, d.corruption_mode, s.corruption_seed)?;
            models.push(ModelInit {
                init_seed: s.init_seed,
                hyper: ModelHyper {
                    adam: AdamWHyper {
                        lr: self.effective_lr(s.lr),
                        weight_decay: s.weight_decay,
                        beta1: self.train.beta1,
                        beta2: self.train.beta2,
                        eps: self.train.eps,
                    },
                    dropout: s.dropout as f32,
                    dropout_seed: dropout_seed(s.init_seed),
                },
                labels: l.labels.clone(),
            });
            labels.push(l);
        }
        let network = Network::new(&self.architecture, self.train.loss, &split, models)?;
        Ok(Setup {
            total_steps: self.total_steps(n),
            steps_per_epoch: self.steps_per_epoch(n),
            split,
            specs,
            labels,
            network,
        })
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

fn nonempty<T: Clone>(axis: &Axis<T>, key: &str) -> Result<Vec<T>> {
    let v = axis.values();
    if v.is_empty() {
        return Err(Error::invalid(
            key,
            "the fleet axis is empty: give one value or a non-empty list",
        ));
    }
    Ok(v)
}

/// Sets the dotted `key` (e.g. `train.weight_decay`) of a TOML table to `value`, creating
/// intermediate tables.
pub fn set_path(table: &mut toml::Table, key: &str, value: toml::Value) -> Result<()> {
    let parts: Vec<&str> = key.split('.').map(str::trim).collect();
    if parts.iter().any(|p| p.is_empty()) {
        return Err(Error::Config(format!("empty part in key `{key}`")));
    }
    let mut cur = table;
    for part in &parts[..parts.len() - 1] {
        let entry = cur
            .entry(part.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        cur = entry.as_table_mut().ok_or_else(|| {
            Error::Config(format!(
                "`{part}` of `{key}` is a value, not a table of keys"
            ))
        })?;
    }
    cur.insert(parts[parts.len() - 1].to_string(), value);
    Ok(())
}

/// Applies `a.b.c=value` to a TOML table; `value` is read as TOML (`5`, `[0, 5]`, `true`,
/// `"add"`) and, failing that, as a bare string.
fn apply_set(table: &mut toml::Table, set: &str) -> Result<()> {
    let bad = |why: String| Error::Set {
        set: set.replace('\n', "\\n").replace('\r', "\\r"),
        why,
    };
    let (key, raw) = set
        .split_once('=')
        .ok_or_else(|| bad("expected KEY=VALUE, e.g. train.weight_decay=5".into()))?;
    let key = key.trim();
    if key.is_empty() || key.split('.').any(|k| k.trim().is_empty()) {
        return Err(bad("empty key (or an empty part between dots)".into()));
    }
    if matches!(
        key,
        "data" | "model" | "train" | "eval" | "report" | "model.transformer"
    ) || raw.trim_start().starts_with('{')
    {
        return Err(bad(format!(
            "set one key at a time (e.g. {key}.KEY=VALUE), not a whole table"
        )));
    }
    if raw.contains(['\n', '\r']) {
        return Err(bad("a value is one line (one --set per key)".into()));
    }
    let value = match toml::from_str::<toml::Table>(&format!("v = {raw}")) {
        Ok(t) if t.len() == 1 && t.contains_key("v") => t["v"].clone(),
        Ok(_) => return Err(bad("one value per --set".into())),
        Err(_) if looks_numeric(raw) => {
            return Err(bad(format!(
                "{} is not a number TOML can hold (integers are 64-bit, up to 9223372036854775807; floats up to about 1.8e308)",
                raw.trim()
            )))
        }
        Err(_) => toml::Value::String(raw.trim().to_string()),
    };
    set_path(table, key, value).map_err(|e| match e {
        Error::Config(why) => bad(why),
        e => e,
    })
}

/// The sections of a config are tables: serde would read an array by position.
fn check_sections(table: &toml::Table) -> Result<()> {
    let model = table.get("model").and_then(|m| m.as_table());
    for (name, v) in ["data", "model", "train", "eval", "report"]
        .iter()
        .map(|k| (k.to_string(), table.get(*k)))
        .chain(std::iter::once((
            "model.transformer".to_string(),
            model.and_then(|m| m.get("transformer")),
        )))
    {
        if let Some(v) = v.filter(|v| !v.is_table()) {
            return Err(Error::Config(format!(
                "`{name}` must be a table of settings ([{name}] with keys), got {} {v}",
                v.type_str()
            )));
        }
    }
    Ok(())
}

/// Whether `raw` is meant as a number: digits with an optional sign, point and exponent.
fn looks_numeric(raw: &str) -> bool {
    let t = raw.trim().trim_start_matches(['-', '+']);
    !t.is_empty()
        && t.starts_with(|c: char| c.is_ascii_digit())
        && t.chars()
            .all(|c| c.is_ascii_digit() || "._eE+-".contains(c))
}

/// A serde message in the words of the config file: sections, not Rust types.
fn plain(message: &str) -> String {
    let mut m = message.to_string();
    for (rust, toml) in [
        ("struct DataConfig", "the table [data]"),
        ("struct ModelConfig", "the table [model]"),
        ("struct TrainConfig", "the table [train]"),
        ("struct EvalConfig", "the table [eval]"),
        ("struct ReportConfig", "the table [report]"),
        ("struct TransformerConfig", "the table [model.transformer]"),
        ("struct Config", "a config"),
        ("unit variant", "a value"),
    ] {
        m = m.replace(rust, toml);
    }
    m
}

/// Where an error about a config came from: the error names it itself (a `--set`, a memory
/// limit), the `--set` that set the key it is about, or the config file.
pub enum Blame<'a> {
    Itself,
    Set(&'a str),
    Source,
}

/// Whom to blame for `e`, an error of reading or checking a config given with `sets`.
pub fn blame<'a>(e: &Error, sets: &'a [String]) -> Blame<'a> {
    match e {
        Error::Set { .. } | Error::Memory(_) => Blame::Itself,
        Error::Invalid { key, .. } => sets
            .iter()
            .rev()
            .find(|s| {
                s.split_once('=')
                    .is_some_and(|(k, _)| k.trim() == key.as_str())
            })
            .map_or(Blame::Source, |s| Blame::Set(s)),
        _ => Blame::Source,
    }
}

/// The message of [`blame`]: `--set K=V: …`, `in SOURCE: …`, or the error itself.
pub fn blamed_message(e: &Error, sets: &[String], source: &str) -> String {
    match blame(e, sets) {
        Blame::Itself => e.to_string(),
        Blame::Set(s) => format!("--set {s}: {e}"),
        Blame::Source => format!("in {source}: {e}"),
    }
}

/// A TOML error as `line L, column C: message` (one line; the position in `text`).
pub fn located(text: &str, e: &toml::de::Error) -> String {
    match e.span() {
        Some(span) => {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
            format!("line {line}, column {column}: {}", plain(e.message()))
        }
        None => plain(e.message()),
    }
}
