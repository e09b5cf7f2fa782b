//! Dataset counts and properties (SCIENCE.md §1).

use grokscope::data::{CorruptionMode, Operation, Split};
use std::collections::HashSet;

#[test]
fn split_sizes_and_partition() {
    let s = Split::new(97, Operation::Add, 0.5, 3).unwrap();
    assert_eq!(s.n_train(), (0.5f64 * 9409.0).floor() as usize);
    assert_eq!(s.n_train(), 4704);
    assert_eq!(s.n_test(), 9409 - 4704);
    let all: HashSet<_> = s.train_pairs.iter().chain(&s.test_pairs).collect();
    assert_eq!(all.len(), 9409, "train and test partition the table");
    for (&(a, b), &y) in s.train_pairs.iter().zip(&s.train_true) {
        assert_eq!(y, (a + b) % 97);
    }
    for (&(a, b), &y) in s.test_pairs.iter().zip(&s.test_labels) {
        assert_eq!(y, (a + b) % 97);
    }
}

#[test]
fn operations_match_hand_computation() {
    let p = 7u64;
    let cases = [
        (Operation::Sub, 2, 5, 4),
        (Operation::Mul, 3, 5, 1),
        (Operation::Div, 3, 5, 2), // 5⁻¹ = 3 mod 7; 3·3 = 9 = 2
        (Operation::X2PlusY2, 3, 4, 4),
        (Operation::X2PlusXyPlusY2, 1, 2, 0),
        (Operation::X3PlusXy, 2, 3, 0),
        (Operation::X3PlusXy2PlusY, 2, 3, 1), // 8 + 18 + 3 = 29
    ];
    for (op, a, b, y) in cases {
        assert_eq!(op.apply(a, b, p), Some(y), "{op:?}({a}, {b})");
    }
    assert_eq!(Operation::Div.apply(3, 0, p), None);
}

#[test]
fn division_leaves_out_b_zero() {
    let s = Split::new(11, Operation::Div, 0.5, 0).unwrap();
    assert_eq!(s.n_train() + s.n_test(), 11 * 10);
    assert!(s
        .train_pairs
        .iter()
        .chain(&s.test_pairs)
        .all(|&(_, b)| b != 0));
    for (&(a, b), &y) in s.train_pairs.iter().zip(&s.train_true) {
        assert_eq!((y as u64 * b as u64) % 11, a as u64, "y·b = a");
    }
}

#[test]
fn corruption_count_and_wrong_labels() {
    let s = Split::new(97, Operation::Add, 0.5, 0).unwrap();
    for xi in [0.0, 0.1, 0.35, 0.9] {
        let l = s.corrupt(xi, CorruptionMode::Wrong, 7).unwrap();
        let expected = (xi * s.n_train() as f64).floor() as usize;
        assert_eq!(l.n_corrupted(), expected, "ξ = {xi}");
        for i in 0..s.n_train() {
            if l.corrupted[i] {
                assert_ne!(l.labels[i], s.train_true[i]);
                assert!(l.labels[i] < 97);
            } else {
                assert_eq!(l.labels[i], s.train_true[i]);
            }
        }
    }
}

#[test]
fn any_label_mode_keeps_about_one_in_p_correct() {
    let s = Split::new(7, Operation::Add, 0.9, 0).unwrap();
    let l = s.corrupt(0.9, CorruptionMode::Any, 1).unwrap();
    let k = (0.9 * s.n_train() as f64).floor() as usize;
    // Some of the k drawn labels equal the truth and are not flagged.
    assert!(l.n_corrupted() < k, "{} < {k}", l.n_corrupted());
    assert!(l.n_corrupted() > k / 2);
}

#[test]
fn determinism_by_seed() {
    let a = Split::new(31, Operation::Mul, 0.4, 5).unwrap();
    let b = Split::new(31, Operation::Mul, 0.4, 5).unwrap();
    let c = Split::new(31, Operation::Mul, 0.4, 6).unwrap();
    assert_eq!(a.train_pairs, b.train_pairs);
    assert_ne!(a.train_pairs, c.train_pairs);
    let la = a.corrupt(0.3, CorruptionMode::Wrong, 1).unwrap();
    let lb = a.corrupt(0.3, CorruptionMode::Wrong, 1).unwrap();
    let lc = a.corrupt(0.3, CorruptionMode::Wrong, 2).unwrap();
    assert_eq!(la, lb);
    assert_ne!(la, lc);
}

#[test]
fn bad_ranges_are_refused() {
    assert!(Split::new(1, Operation::Add, 0.5, 0).is_err());
    assert!(Split::new(10, Operation::Div, 0.5, 0).is_err());
    assert!(Split::new(10, Operation::Add, 0.0, 0).is_err());
    assert!(Split::new(10, Operation::Add, 1.0, 0).is_err());
    assert!(
        Split::new(10, Operation::Add, 0.001, 0).is_err(),
        "empty training set"
    );
    let s = Split::new(10, Operation::Add, 0.5, 0).unwrap();
    assert!(s.corrupt(1.0, CorruptionMode::Wrong, 0).is_err());
    assert!(s.corrupt(-0.1, CorruptionMode::Wrong, 0).is_err());
}

/// The reference's draw (SCIENCE.md §1): every picked example is in `C`, also where the draw is its
/// true label; a network that predicts every training label then has
/// `A_mem + A_inv = 1 + (share of C that kept its true label)`, exactly.
#[test]
fn reference_mode_counts_unchanged_draws_as_corrupted() {
    use grokscope::metrics::accuracies;
    use grokscope::train::loss::Loss;
    use grokscope::train::EvalOutput;
    // p = 5: a fifth of the draws hit the true label.
    let s = Split::new(5, Operation::Add, 0.8, 2).unwrap();
    let l = s.corrupt(0.75, CorruptionMode::Reference, 4).unwrap();
    let picked = (0.75 * s.n_train() as f64).floor() as usize;
    assert_eq!(l.n_corrupted(), picked, "every picked example is in C");
    let kept = (0..s.n_train())
        .filter(|&i| l.corrupted[i] && l.labels[i] == s.train_true[i])
        .count();
    assert!(
        kept > 0,
        "the dataset is built so that some draws hit the true label"
    );
    // The same seed in `any` mode draws the same labels but leaves the kept ones clean.
    let any = s.corrupt(0.75, CorruptionMode::Any, 4).unwrap();
    assert_eq!(any.labels, l.labels);
    assert_eq!(any.n_corrupted(), picked - kept);
    // Predict every training label (and the true test labels).
    let mut preds = l.labels.clone();
    preds.extend_from_slice(&s.test_labels);
    let out = EvalOutput {
        row_loss: vec![0.0; preds.len()],
        preds,
    };
    let a = accuracies(5, Loss::Mse, &s, &l.labels, &l.corrupted, &out);
    assert_eq!(a.mem_acc, Some(1.0));
    let share = kept as f64 / picked as f64;
    assert!((a.mem_acc.unwrap() + a.inv_acc.unwrap() - (1.0 + share)).abs() < 1e-12);
    // In `wrong` mode the two always add up to at most 1.
    let w = s.corrupt(0.75, CorruptionMode::Wrong, 4).unwrap();
    let mut preds = w.labels.clone();
    preds.extend_from_slice(&s.test_labels);
    let out = EvalOutput {
        row_loss: vec![0.0; preds.len()],
        preds,
    };
    let a = accuracies(5, Loss::Mse, &s, &w.labels, &w.corrupted, &out);
    assert_eq!((a.mem_acc, a.inv_acc), (Some(1.0), Some(0.0)));
}

/// The Transformer notebook draws from `0 … p−2`: label `p − 1` never comes out of a draw.
#[test]
fn reference_transformer_mode_never_draws_the_last_label() {
    for p in [3usize, 7, 11] {
        let s = Split::new(p, Operation::Add, 0.9, 1).unwrap();
        let mut seen = HashSet::new();
        for seed in 0..20 {
            let l = s
                .corrupt(0.9, CorruptionMode::ReferenceTransformer, seed)
                .unwrap();
            for i in (0..s.n_train()).filter(|&i| l.corrupted[i]) {
                assert_ne!(l.labels[i] as usize, p - 1, "p = {p}, seed {seed}");
                seen.insert(l.labels[i]);
            }
        }
        assert_eq!(seen.len(), p - 1, "every other label is drawn");
    }
}
