//! Phase classification from final accuracies (SPEC §5).

use serde::{Deserialize, Serialize};

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
}

impl Phase {
    /// Every phase, in legend order: the six of SPEC §5, then Generalization (no corruption).
    pub const ALL: [Phase; 7] = [
        Phase::Coexistence,
        Phase::PartialInversion,
        Phase::FullInversion,
        Phase::Memorization,
        Phase::Forgetting,
        Phase::Confusion,
        Phase::Generalization,
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
        }
    }
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Classifies a network. `mem` and `inv` are `None` when there are no corrupted examples;
/// `clean` is `None` when every training example is corrupted (then it counts as < hi).
///
/// With corruption the rows of SPEC §5 are checked in order; the "training data" column is a
/// condition where it names `A_clean` (see `docs/DECISIONS.md`):
/// test ≥ hi: Coexistence (mem ≥ hi), Full Inversion (inv ≥ hi), else Partial Inversion;
/// test < hi: Forgetting (clean < hi), Memorization (mem ≥ hi), else Confusion.
pub fn classify(
    test: f64,
    mem: Option<f64>,
    inv: Option<f64>,
    clean: Option<f64>,
    hi: f64,
) -> Phase {
    let clean_ok = clean.is_some_and(|c| c >= hi);
    match (mem, inv) {
        (Some(mem), Some(inv)) => {
            if test >= hi {
                if mem >= hi {
                    Phase::Coexistence
                } else if inv >= hi {
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
