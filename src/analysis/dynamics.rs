//! The two stages of the dynamics (SCIENCE.md §5): grokking (train and test accuracy rise, the
//! corrupted labels memorized), then unlearning of the memorized labels.

use crate::metrics::{final_phase, Phase, Record, Thresholds};
use serde::{Deserialize, Serialize};

/// Steps at which the dynamics happen, from the evaluated steps (`None`: never).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Dynamics {
    /// First step with train accuracy ≥ hi.
    pub first_train_acc_hi: Option<u64>,
    /// First step with test accuracy ≥ hi.
    pub first_test_acc_hi: Option<u64>,
    /// First step with `A_inv` ≥ hi.
    pub first_inv_acc_hi: Option<u64>,
    /// First step with `A_mem` ≥ hi.
    pub first_mem_acc_hi: Option<u64>,
    /// The step at which `A_mem` last fell below hi after having been ≥ hi.
    pub last_mem_acc_drop: Option<u64>,
    /// Test accuracy reached hi (the network generalized at some point).
    pub grokked: bool,
    /// The corrupted labels were memorized (`A_mem` ≥ hi) and, at the end, are not any more.
    pub unlearned: bool,
}

/// What a trained model ended as: its phase, its final record and its dynamics — the one
/// summary a run's `summary.json` and a sweep's run record both hold.
pub struct Outcome {
    pub phase: Phase,
    pub last: Record,
    pub dynamics: Dynamics,
}

/// The outcome of a model from its records in step order (`None` without any) and the step
/// its loss first was not finite (`diverged_at`).
pub fn outcome(history: &[Record], diverged_at: Option<u64>, t: Thresholds) -> Option<Outcome> {
    let last = history.last()?.clone();
    Some(Outcome {
        phase: final_phase(&last, diverged_at, t),
        dynamics: dynamics(history, t.hi),
        last,
    })
}

pub fn dynamics(history: &[Record], hi: f64) -> Dynamics {
    let first = |f: &dyn Fn(&Record) -> bool| history.iter().find(|r| f(r)).map(|r| r.step);
    let mem_hi = |r: &Record| r.mem_acc.is_some_and(|a| a >= hi);
    let last_mem_acc_drop = history
        .windows(2)
        .filter(|w| mem_hi(&w[0]) && !mem_hi(&w[1]))
        .map(|w| w[1].step)
        .next_back();
    let first_mem_acc_hi = first(&mem_hi);
    let first_test_acc_hi = first(&|r| r.test_acc >= hi);
    Dynamics {
        first_train_acc_hi: first(&|r| r.train_acc >= hi),
        first_test_acc_hi,
        first_inv_acc_hi: first(&|r| r.inv_acc.is_some_and(|a| a >= hi)),
        first_mem_acc_hi,
        last_mem_acc_drop,
        grokked: first_test_acc_hi.is_some(),
        unlearned: first_mem_acc_hi.is_some() && history.last().is_some_and(|r| !mem_hi(r)),
    }
}
