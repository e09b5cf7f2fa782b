//! The MNIST-1D generator (`data::mnist1d`, SCIENCE.md §9): shapes, class balance,
//! standardization, determinism, and a signal a simple classifier finds.

use grokscope::data::mnist1d::{generate, Mnist1dArgs, CLASSES};
use grokscope::data::DenseSplit;

fn default() -> DenseSplit {
    generate(&Mnist1dArgs::default(), 0).unwrap()
}

#[test]
fn shapes_and_class_balance() {
    let d = default();
    assert_eq!((d.n_classes, d.dim, d.shape.clone()), (10, 40, vec![40]));
    assert_eq!((d.train_true.len(), d.test_labels.len()), (4000, 1000));
    assert_eq!((d.train_x.len(), d.test_x.len()), (4000 * 40, 1000 * 40));
    let mut count = [0usize; CLASSES];
    for &y in d.train_true.iter().chain(&d.test_labels) {
        count[y as usize] += 1;
    }
    assert_eq!(count, [500; CLASSES], "500 of each digit");
    // Shuffled: every digit is in both sets, none in a long run.
    let mut test = [0usize; CLASSES];
    d.test_labels.iter().for_each(|&y| test[y as usize] += 1);
    assert!(test.iter().all(|&c| (60..=140).contains(&c)), "{test:?}");
}

#[test]
fn standardized_over_all_values() {
    let d = default();
    let all: Vec<f64> = d
        .train_x
        .iter()
        .chain(&d.test_x)
        .map(|&v| v as f64)
        .collect();
    let n = all.len() as f64;
    let mean = all.iter().sum::<f64>() / n;
    let std = (all.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n).sqrt();
    assert!(
        mean.abs() < 1e-5 && (std - 1.0).abs() < 1e-5,
        "{mean} {std}"
    );
}

#[test]
fn the_same_seed_gives_the_same_numbers() {
    let (a, b) = (default(), default());
    assert_eq!(a, b);
    let c = generate(&Mnist1dArgs::default(), 1).unwrap();
    assert_ne!(a.train_x, c.train_x);
}

/// Test accuracy of the nearest class mean (of the training set).
fn nearest_mean_accuracy(d: &DenseSplit) -> f64 {
    let mut means = vec![vec![0.0f64; d.dim]; CLASSES];
    let mut n = [0.0f64; CLASSES];
    for (x, &y) in d.train_x.chunks(d.dim).zip(&d.train_true) {
        n[y as usize] += 1.0;
        for (m, &v) in means[y as usize].iter_mut().zip(x) {
            *m += v as f64;
        }
    }
    for (m, k) in means.iter_mut().zip(n) {
        m.iter_mut().for_each(|v| *v /= k);
    }
    let hits = d
        .test_x
        .chunks(d.dim)
        .zip(&d.test_labels)
        .filter(|(x, &y)| {
            let dist = |m: &Vec<f64>| -> f64 {
                m.iter()
                    .zip(x.iter())
                    .map(|(a, &b)| (a - b as f64).powi(2))
                    .sum()
            };
            let best = (0..CLASSES)
                .min_by(|&a, &b| dist(&means[a]).total_cmp(&dist(&means[b])))
                .unwrap();
            best == y as usize
        })
        .count();
    hits as f64 / d.test_labels.len() as f64
}

#[test]
fn the_digits_are_told_apart_above_chance_but_not_trivially() {
    // The original reports 32 % for logistic regression, 68 % for an MLP: a nearest class
    // mean lies well above chance (10 %) and far from solving it.
    let acc = nearest_mean_accuracy(&default());
    eprintln!("nearest class mean: test accuracy {acc:.3}");
    assert!(acc > 0.2 && acc < 0.7, "{acc}");
    // Without noise and transformations, every example is its template: solved.
    let clean = Mnist1dArgs {
        padding: (48, 48),
        scale_coeff: 0.0,
        max_translation: 1,
        corr_noise_scale: 0.0,
        iid_noise_scale: 0.0,
        shear_scale: 0.0,
        ..Mnist1dArgs::default()
    };
    assert_eq!(nearest_mean_accuracy(&generate(&clean, 0).unwrap()), 1.0);
}

#[test]
fn bad_settings_are_refused() {
    let e = |a: Mnist1dArgs| generate(&a, 0).unwrap_err().to_string();
    let d = Mnist1dArgs::default;
    assert!(e(Mnist1dArgs {
        num_samples: 5,
        ..d()
    })
    .contains("num_samples"));
    assert!(e(Mnist1dArgs {
        num_samples: usize::MAX,
        ..d()
    })
    .contains("num_samples"));
    assert!(e(Mnist1dArgs {
        train_split: 1.0,
        ..d()
    })
    .contains("train_split"));
    assert!(e(Mnist1dArgs {
        train_split: f64::NAN,
        ..d()
    })
    .contains("train_split"));
    assert!(e(Mnist1dArgs {
        padding: (9, 3),
        ..d()
    })
    .contains("padding"));
    assert!(e(Mnist1dArgs {
        final_seq_length: 1,
        ..d()
    })
    .contains("final_seq_length"));
    assert!(e(Mnist1dArgs {
        num_samples: 10,
        train_split: 0.01,
        ..d()
    })
    .contains("empty"));
}
