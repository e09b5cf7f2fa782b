//! Phase classification from final accuracies (SCIENCE.md §5).

use crate::config::EvalConfig;
use serde::{Deserialize, Serialize};

/// The thresholds of the phase table: `hi` for every row, the stricter `full` for Full
/// Inversion (`eval.threshold`, `eval.full_threshold`).
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Thresholds {
    pub hi: f64,
    pub full: f64,
}

impl Default for Thresholds {
    fn default() -> Thresholds {
        Thresholds {
            hi: 0.9,
            full: 0.95,
        }
    }
}

impl From<&EvalConfig> for Thresholds {
    fn from(e: &EvalConfig) -> Thresholds {
        Thresholds {
            hi: e.threshold,
            full: e.full_threshold,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Hash, PartialOrd, Ord)]
pub enum Phase {
    Coexistence,
    #[serde(rename = "Partial Inversion")]
    PartialInversion,
    #[serde(rename = "Full Inversion")]
    FullInversion,
    Memorization,
    Forgetting,
    Confusion,
    /// Without corruption: test accuracy ≥ hi.
    Generalization,
    /// The loss or the weights became NaN or infinite.
    Diverged,
}

impl Phase {
    /// Every phase, in legend order: the six of SCIENCE.md §5, then Generalization (no corruption).
    pub const ALL: [Phase; 8] = [
        Phase::Coexistence,
        Phase::PartialInversion,
        Phase::FullInversion,
        Phase::Memorization,
        Phase::Forgetting,
        Phase::Confusion,
        Phase::Generalization,
        Phase::Diverged,
    ];

    /// The two-letter code of phase grids.
    pub fn code(self) -> &'static str {
        match self {
            Phase::Coexistence => "Co",
            Phase::PartialInversion => "PI",
            Phase::FullInversion => "FI",
            Phase::Memorization => "Me",
            Phase::Forgetting => "Fo",
            Phase::Confusion => "Cf",
            Phase::Generalization => "Ge",
            Phase::Diverged => "Dv",
        }
    }

    /// The colour of the phase in figures, as RGB (the Okabe–Ito palette).
    pub fn rgb(self) -> (u8, u8, u8) {
        match self {
            Phase::Coexistence => (0, 114, 178),
            Phase::PartialInversion => (86, 180, 233),
            Phase::FullInversion => (0, 158, 115),
            Phase::Memorization => (213, 94, 0),
            Phase::Forgetting => (120, 120, 120),
            Phase::Confusion => (204, 121, 167),
            Phase::Generalization => (230, 159, 0),
            Phase::Diverged => (0, 0, 0),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Phase::Coexistence => "Coexistence",
            Phase::PartialInversion => "Partial Inversion",
            Phase::FullInversion => "Full Inversion",
            Phase::Memorization => "Memorization",
            Phase::Forgetting => "Forgetting",
            Phase::Confusion => "Confusion",
            Phase::Generalization => "Generalization",
            Phase::Diverged => "Diverged",
        }
    }
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Classifies a network whose loss and weights are finite (a model with NaN or infinite ones
/// is [`Phase::Diverged`]; see `metrics::Record::phase`). `mem` and `inv` are `None` when
/// there are no corrupted examples; `clean` is `None` when every training example is
/// corrupted (then it counts as < hi).
///
/// With corruption the rows of SCIENCE.md §5 are checked in order; the "training data" column is a
/// condition where it names `A_clean` (see `docs/DECISIONS.md`):
/// test ≥ hi: Coexistence (mem ≥ hi), Full Inversion (inv ≥ full), else Partial Inversion;
/// test < hi: Forgetting (clean < hi), Memorization (mem ≥ hi), else Confusion.
pub fn classify(
    test: f64,
    mem: Option<f64>,
    inv: Option<f64>,
    clean: Option<f64>,
    t: Thresholds,
) -> Phase {
    let Thresholds { hi, full } = t;
    let clean_ok = clean.is_some_and(|c| c >= hi);
    match (mem, inv) {
        (Some(mem), Some(inv)) => {
            if test >= hi {
                if mem >= hi {
                    Phase::Coexistence
                } else if inv >= full {
                    Phase::FullInversion
                } else {
                    Phase::PartialInversion
                }
            } else if !clean_ok {
                Phase::Forgetting
            } else if mem >= hi {
                Phase::Memorization
            } else {
                Phase::Confusion
            }
        }
        _ => {
            if test >= hi {
                Phase::Generalization
            } else if clean_ok {
                Phase::Memorization
            } else {
                Phase::Forgetting
            }
        }
    }
}
