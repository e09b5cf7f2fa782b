//! Experiment configuration: TOML files, `--set key=value` overrides, validation, and the
//! expansion of fleet axes into one model per combination.
//!
//! Fleet axes (a value or a list of values; declared once, in `fleet.rs`): `data.corruption`,
//! `data.corruption_seed`, `model.init_seed`, `train.weight_decay`, `model.dropout`,
//! `train.lr`. Everything else is shared by the fleet. See `docs/CONFIG.md` for every key.
//!
//! One file per concern: [`schema`] (the sections and keys), [`axis`] (fleet axes), [`parse`]
//! (TOML and `--set`), [`presets`] (the shipped configs by name), [`fleet`] (the axes expanded into models), [`check`] (validation into a
//! [`Checked`] config). The config is a pure schema: building the network from it is the
//! `setup` stage's work.

pub mod axis;
pub mod check;
pub mod dataset;
pub mod fleet;
pub mod parse;
pub mod presets;
pub mod schema;

pub use crate::data::Operation;
pub use crate::model::{Init, Loss, ModelKind};
pub use axis::Axis;
pub use check::Checked;
pub use fleet::{FleetAxis, ModelSpec, FLEET_AXES};
pub use parse::{blame, blamed_message, canonical_key, located, set_path, Blame};
pub use presets::{preset, DEFAULT_CONFIG, PRESETS};
pub use schema::*;
