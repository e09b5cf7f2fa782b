//! `Config::check`: every value validated once, into a [`Checked`] config that carries its
//! warnings and the [`Architecture`] it asks for; the memory a fleet of it needs.

use super::axis::nonempty;
use super::schema::{
    Config, DataConfig, ModelConfig, MAX_D_MODEL, MAX_LAYERS, MAX_MLP_RATIO, MAX_STEPS,
};
use crate::data::{check_alpha, check_xi, validate_table, Operation};
use crate::error::{Error, Result};
use crate::model::memory;
use crate::model::transformer::TransformerArch;
use crate::model::{Architecture, Init, ModelKind};

impl Config {
    /// Checks every value once; the result carries the warnings that do not stop a run and
    /// the network the config asks for.
    pub fn check(self) -> Result<Checked> {
        let warnings = self.validate()?;
        let models = self.fleet_len()?;
        let m = &self.model;
        let architecture = match m.kind {
            ModelKind::Mlp => {
                let (arch, init, init_std) = m.mlp.check(self.data.p)?;
                Architecture::Mlp {
                    arch,
                    init,
                    init_std,
                }
            }
            ModelKind::Transformer => {
                validate_transformer(m)?;
                Architecture::Transformer(TransformerArch {
                    cfg: m.transformer.clone(),
                    p: self.data.p,
                })
            }
            ModelKind::Deep => {
                let Some(sz) = self.data.dataset.sizes() else {
                    return Err(Error::invalid(
                        "model.kind",
                        "the deep MLP reads dense feature vectors, and data.dataset = \"table\" has token pairs: set data.dataset to mnist1d, fashion-mnist or mnist-5k (or model.kind to mlp or transformer)",
                    ));
                };
                if m.mlp.batchnorm {
                    return Err(Error::invalid(
                        "model.mlp.batchnorm",
                        "the deep MLP's BatchNorm is model.deep.norm = \"batchnorm\"",
                    ));
                }
                if m.deep.norm == crate::model::deep::Norm::Batchnorm
                    && self.train.batch_size == Some(1)
                {
                    return Err(Error::invalid(
                        "train.batch_size",
                        "BatchNorm over a batch of one example normalises every unit to 0 (PyTorch refuses it too): use a batch of at least 2, or model.deep.norm = \"layernorm\"",
                    ));
                }
                Architecture::Deep(m.deep.check(sz.dim, sz.classes)?)
            }
        };
        if m.kind != ModelKind::Deep && !self.data.dataset.is_table() {
            return Err(Error::invalid(
                "model.kind",
                format!(
                    "the {} reads token pairs, and data.dataset = \"{}\" has dense feature vectors: use model.kind = \"deep\"",
                    if m.kind == ModelKind::Mlp { "two-layer MLP" } else { "Transformer" },
                    self.data.dataset.name()
                ),
            ));
        }
        let checked = Checked {
            cfg: self,
            warnings,
            architecture,
        };
        checked.check_size(models)?;
        Ok(checked)
    }

    /// Checks every value but the Transformer's; returns warnings that do not stop a run.
    fn validate(&self) -> Result<Vec<String>> {
        let d = &self.data;
        let mut warnings = Vec::new();
        match d.dataset.sizes() {
            None => {
                warnings.extend(validate_table(d.p, d.operation)?);
                check_alpha(d.train_fraction)?;
                // The key-frequency rule (docs/PROGRESS.md) needs more frequencies than a
                // random unit can hold half its variance in: at p ≤ 13 untrained Transformers
                // (and at p ≤ 7 untrained MLPs) already have every frequency "key".
                if self.eval.progress_every > 0
                    && (3..=13).contains(&d.p)
                    && matches!(
                        d.operation,
                        crate::data::Operation::Add | crate::data::Operation::Sub
                    )
                {
                    warnings.push(format!(
                        "p = {} has only {} frequencies: units of an untrained network already hold half their variance in one of them, so key_freqs and the restricted and excluded losses say little below p = 17 (docs/PROGRESS.md)",
                        d.p,
                        (d.p - 1) / 2
                    ));
                }
                for (key, set) in [
                    ("data.n_train", d.n_train),
                    ("data.n_test", d.n_test),
                    ("data.path", d.path.as_ref().map(|_| 0)),
                ] {
                    if set.is_some() {
                        return Err(Error::invalid(
                            key,
                            "this key is for dense datasets (data.dataset = mnist1d, fashion-mnist or mnist-5k); the operation table follows from data.p, data.operation and data.train_fraction",
                        ));
                    }
                }
            }
            Some(sz) => {
                crate::data::source::check_installed(d.dataset, d.path.as_deref())?;
                let table = DataConfig::default();
                if d.p != table.p
                    || d.operation != table.operation
                    || d.train_fraction != table.train_fraction
                {
                    warnings.push(format!(
                        "data.p, data.operation and data.train_fraction describe the operation table; data.dataset = \"{}\" has its own examples and split, so they are ignored",
                        d.dataset.name()
                    ));
                }
                for (key, set, have) in [
                    ("data.n_train", d.n_train, sz.n_train),
                    ("data.n_test", d.n_test, sz.n_test),
                ] {
                    if let Some(n) = set.filter(|&n| n == 0 || n > have) {
                        return Err(Error::invalid(
                            key,
                            format!(
                                "{} has {have} examples in this set: ask for 1 … {have}, or omit the key for all of them (got {n})",
                                d.dataset.name()
                            ),
                        ));
                    }
                }
            }
        }
        for &xi in nonempty(&d.corruption, "data.corruption")?.iter() {
            check_xi(xi)?;
        }
        nonempty(&d.corruption_seed, "data.corruption_seed")?;
        let m = &self.model;
        // The MLP's table is checked whatever the kind (as before per-kind tables).
        m.mlp.check(d.p)?;
        for &q in nonempty(&m.dropout, "model.dropout")?.iter() {
            if !(0.0..1.0).contains(&q) {
                return Err(Error::invalid(
                    "model.dropout",
                    format!("the dropout rate must satisfy 0 ≤ q < 1, got {q}"),
                ));
            }
        }
        nonempty(&m.init_seed, "model.init_seed")?;
        let other = |table: &str| {
            format!(
                "[model.{table}] is set but model.kind = \"{}\": its keys are ignored",
                m.kind.table()
            )
        };
        if m.kind != ModelKind::Deep && !m.deep.is_default() {
            warnings.push(other("deep"));
        }
        if self.train.loss == crate::model::Loss::Mse && self.train.softmax_precision.is_some() {
            warnings.push(
                "train.softmax_precision has no effect with train.loss = \"mse\" (no softmax in the training loss; docs/NUMERICS.md)"
                    .into(),
            );
        }
        if m.kind == ModelKind::Deep {
            if m.mlp != crate::model::MlpConfig::default() {
                warnings.push(other("mlp"));
            }
            if m.transformer != crate::model::transformer::TransformerConfig::default() {
                warnings.push(other("transformer"));
            }
        }
        if m.mlp.init == Init::Analytic && d.dataset.is_table() {
            warnings.extend(crate::model::analytic::check(d.p, m.mlp.width)?);
            if d.operation != Operation::Add {
                warnings.push(format!(
                    "init = \"analytic\" is the solution of `add`, not of `{}`",
                    d.operation.name()
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
        nonempty(&t.perp_grad, "train.perp_grad")?;
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
        for (key, b) in [("train.beta1", t.beta1), ("train.beta2", t.beta2)] {
            if !(0.0..1.0).contains(&b) {
                return Err(Error::invalid(key, format!("= {b}: must lie in [0, 1)")));
            }
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
    if m.mlp.batchnorm || m.mlp.init != Init::Normal {
        return Err(Error::invalid(
            if m.mlp.batchnorm {
                "model.mlp.batchnorm"
            } else {
                "model.mlp.init"
            },
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

impl Checked {
    /// Refuses a run longer than [`MAX_STEPS`] or a fleet of `models` models that needs more
    /// memory than this machine allows, before anything is allocated.
    pub fn check_size(&self, models: usize) -> Result<()> {
        let (_, n) = self.example_counts();
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
        let dense = self.data.dataset.sizes().map(|sz| {
            let (all, _) = self.example_counts();
            (all.max(n), sz.dim)
        });
        let est = memory::estimate(memory::Shape {
            architecture: &self.architecture,
            p: self
                .data
                .dataset
                .sizes()
                .map_or(self.data.p, |sz| sz.classes),
            dense,
            n_train: n,
            batch: self.train.batch_size.unwrap_or(n).min(n),
            models,
            evals,
            progress: self.eval.progress_every > 0
                && matches!(
                    self.data.operation,
                    crate::data::Operation::Add | crate::data::Operation::Sub
                ),
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
}
