//! The fleet axes — the settings a fleet may vary from model to model — declared once, in
//! [`fleet_axes!`]: the per-model [`ModelSpec`], the expansion into one model per combination
//! ([`Config::fleet`]), the fleet's size check, and the table [`FLEET_AXES`] (config key,
//! field, labels, value) that sweeps, reports, the CLI's table and Python read.

use super::axis::Axis;
use super::schema::{Config, MAX_FLEET};
use crate::error::{Error, Result};
use crate::model::PerpGrad;
use serde::Serialize;

/// One fleet axis: its config key, its field of [`ModelSpec`] (and column in tables and
/// `summary.json`), its short label (legends, the CLI's table), its long label (the report's
/// table) and the value of a model.
pub struct FleetAxis {
    pub key: &'static str,
    pub field: &'static str,
    pub short: &'static str,
    pub long: &'static str,
    pub value: fn(&ModelSpec) -> String,
}

macro_rules! fleet_axes {
    ($($(#[$doc:meta])* $field:ident: $ty:ty = $section:ident . $key:ident, $short:literal, $long:literal;)*) => {
        /// The settings of one model of the fleet.
        #[derive(Clone, Debug, Default, PartialEq, Serialize)]
        pub struct ModelSpec {
            pub index: usize,
            $($(#[$doc])* pub $field: $ty,)*
        }

        /// The fleet axes in expansion order (the last varies fastest).
        pub const FLEET_AXES: &[FleetAxis] = &[$(FleetAxis {
            key: concat!(stringify!($section), ".", stringify!($key)),
            field: stringify!($field),
            short: $short,
            long: $long,
            value: |m| Shown::shown(&m.$field),
        }),*];

        impl Config {
            /// Each fleet axis's number of values, in [`FLEET_AXES`] order.
            pub fn fleet_lens(&self) -> Vec<usize> {
                vec![$(self.$section.$key.len()),*]
            }

            /// One model per combination of the fleet axes, in [`FLEET_AXES`] order (the
            /// last varies fastest).
            pub fn fleet(&self) -> Vec<ModelSpec> {
                let mut out = vec![ModelSpec::default()];
                $(
                    let values = self.$section.$key.values();
                    out = out
                        .into_iter()
                        .flat_map(|s| {
                            values.iter().map(move |&v| ModelSpec { $field: v, ..s.clone() })
                        })
                        .collect();
                )*
                for (i, s) in out.iter_mut().enumerate() {
                    s.index = i;
                }
                out
            }

            /// The config with every fleet axis emptied: what the models of one fleet share
            /// (sweeps group runs into fleets by it).
            pub fn without_fleet_axes(&self) -> Config {
                let mut c = self.clone();
                $(c.$section.$key = Axis::Many(vec![]);)*
                c
            }
        }
    };
}

fleet_axes! {
    corruption: f64 = data.corruption, "ξ", "ξ";
    corruption_seed: u64 = data.corruption_seed, "ξ seed", "corruption seed";
    init_seed: u64 = model.init_seed, "init seed", "init seed";
    weight_decay: f64 = train.weight_decay, "wd", "weight decay";
    dropout: f64 = model.dropout, "drop", "dropout";
    /// The learning rate as configured (before any batch-size scaling).
    lr: f64 = train.lr, "lr", "lr";
    /// ⊥Grad (`none`, `project`, `project-keep-norm`).
    perp_grad: PerpGrad = train.perp_grad, "⊥grad", "⊥Grad";
}

/// A fleet axis's value as tables and legends print it: short (a number far from 1 in
/// exponent notation, never 309 digits).
trait Shown {
    fn shown(&self) -> String;
}

impl Shown for f64 {
    fn shown(&self) -> String {
        let a = self.abs();
        if a != 0.0 && a.is_finite() && !(1e-4..1e6).contains(&a) {
            format!("{self:e}")
        } else {
            self.to_string()
        }
    }
}

impl Shown for u64 {
    fn shown(&self) -> String {
        self.to_string()
    }
}

impl Shown for PerpGrad {
    fn shown(&self) -> String {
        self.to_string()
    }
}

impl Config {
    /// The number of models of the fleet (the product of the fleet axes' lengths), refused
    /// above [`MAX_FLEET`].
    pub fn fleet_len(&self) -> Result<usize> {
        let lens = self.fleet_lens();
        let n = lens.iter().fold(1usize, |n, &l| n.saturating_mul(l));
        if n > MAX_FLEET {
            let many: Vec<String> = FLEET_AXES
                .iter()
                .zip(&lens)
                .filter(|(_, &l)| l > 1)
                .map(|(a, l)| format!("{l} {}", a.key))
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
}
