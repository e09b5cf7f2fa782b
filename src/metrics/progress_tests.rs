//! Tests of the progress measures against hand computations and the projection written out.
use super::*;

#[test]
fn the_exponential_is_exact_to_a_few_ulps() {
    let mut worst = 0.0f64;
    for i in 0..=200_000 {
        let x = -(i as f64) * 700.0 / 200_000.0;
        let (got, want) = (exp_nonpositive(x), x.exp());
        worst = worst.max(((got - want) / want).abs());
    }
    assert!(worst < 1e-15, "relative error {worst}");
    assert_eq!(exp_nonpositive(0.0), 1.0);
    let (lse, sq) = lse_and_sq(&[0.0, 1.0, f64::ln(2.0)]);
    assert!((lse - (1.0 + std::f64::consts::E + 2.0).ln()).abs() < 1e-14);
    assert!((sq - (1.0 + f64::ln(2.0).powi(2))).abs() < 1e-14);
    assert!(lse_and_sq_f32(&[0.0, f32::NAN]).0.is_nan());
}

fn lcg(seed: &mut u64) -> f64 {
    *seed = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (*seed >> 11) as f64 / (1u64 << 53) as f64 - 0.5
}

/// The restricted and excluded losses against the projection written out in the
/// p²-dimensional space of pairs, with the unit directions (c⊗c − s⊗s)/√2 and
/// (s⊗c + c⊗s)/√2 of SCIENCE.md §10 (and their a − b versions), on random outputs; and
/// the pitfall: an outer product of 1-D frequency masks keeps many more components.
#[test]
fn losses_match_the_projection_written_out() {
    for op in [crate::data::Operation::Add, crate::data::Operation::Sub] {
        let p = 7usize;
        let split = Split::new(p, op, 0.6, 3).unwrap();
        let labels = split.corrupt(0.3, Default::default(), 5).unwrap();
        let table = PairTable::new(&split, Loss::Mse).unwrap();
        let n = p * p;
        let mut seed = 99u64;
        let logits: Vec<f32> = (0..n * p).map(|_| lcg(&mut seed) as f32 * 3.0).collect();
        // Hidden units: units 0 and 1 pure frequency 2 of a + b, unit 2 random.
        let mut sums = PairSums::new(p, 3);
        for &(a, b) in &table.pairs {
            let x = 2.0 * PI * (2 * (a + b) as usize % p) as f64 / p as f64;
            let h = [x.cos() as f32, x.sin() as f32, lcg(&mut seed) as f32];
            sums.add_rows(&[(a, b)], &h);
        }
        let tables = Tables::new(p);
        let m = table.measure(&tables, &logits, &sums, &labels.labels, &labels.corrupted);
        assert_eq!(m.key_freqs, vec![2], "{op:?}");
        // The two unit directions of frequency 2, as vectors over the pairs (row order).
        let b = fourier::basis(p);
        let (c, sn) = (&b[3 * p..4 * p], &b[4 * p..5 * p]);
        let sign = if op == crate::data::Operation::Add {
            1.0
        } else {
            -1.0
        };
        let dirs: Vec<Vec<f64>> = [0, 1]
            .iter()
            .map(|&which| {
                table
                    .pairs
                    .iter()
                    .map(|&(a, b)| {
                        let (a, b) = (a as usize, b as usize);
                        let v = if which == 0 {
                            c[a] * c[b] - sign * sn[a] * sn[b]
                        } else {
                            sn[a] * c[b] + sign * c[a] * sn[b]
                        };
                        v / 2f64.sqrt()
                    })
                    .collect()
            })
            .collect();
        for d in &dirs {
            let norm: f64 = d.iter().map(|x| x * x).sum();
            assert!((norm - 1.0).abs() < 1e-12, "a unit direction");
        }
        let (mut restricted, mut excluded) = (vec![0.0f64; n * p], vec![0.0f64; n * p]);
        let mut key_energy = 0.0;
        for cl in 0..p {
            let col: Vec<f64> = (0..n).map(|i| logits[i * p + cl] as f64).collect();
            let mean = col.iter().sum::<f64>() / n as f64;
            let mut proj = vec![0.0; n];
            for d in &dirs {
                let coef: f64 = d.iter().zip(&col).map(|(x, y)| x * y).sum();
                for (pi, x) in proj.iter_mut().zip(d) {
                    *pi += coef * x;
                }
            }
            key_energy += proj.iter().map(|x| x * x).sum::<f64>();
            let rest_mean = mean - proj.iter().sum::<f64>() / n as f64;
            for i in 0..n {
                restricted[i * p + cl] = proj[i] + rest_mean;
                excluded[i * p + cl] = col[i] - proj[i];
            }
        }
        let ce = |row: &[f64], y: usize| {
            let mx = row.iter().cloned().fold(f64::MIN, f64::max);
            mx + row.iter().map(|v| (v - mx).exp()).sum::<f64>().ln() - row[y]
        };
        let mse = |row: &[f64], y: usize| {
            row.iter()
                .enumerate()
                .map(|(q, v)| (v - if q == y { 1.0 } else { 0.0 }).powi(2))
                .sum::<f64>()
                / p as f64
        };
        let mean_over = |f: &dyn Fn(&[f64], usize) -> f64,
                         out: &[f64],
                         rows: &[usize],
                         y: &dyn Fn(usize) -> usize| {
            rows.iter()
                .map(|&i| f(&out[i * p..(i + 1) * p], y(i)))
                .sum::<f64>()
                / rows.len() as f64
        };
        let all: Vec<usize> = (0..n).collect();
        let nt = split.n_train();
        let train: Vec<usize> = (0..nt).collect();
        let corrupt: Vec<usize> = (0..nt).filter(|&i| labels.corrupted[i]).collect();
        assert!(!corrupt.is_empty());
        let truth = |i: usize| table.truth[i] as usize;
        let given = |i: usize| labels.labels[i] as usize;
        let full: Vec<f64> = logits.iter().map(|&x| x as f64).collect();
        let close = |a: f64, b: f64| {
            assert!(
                (a - b).abs() < 1e-9 * (1.0 + b.abs()),
                "{a} vs {b} ({op:?})"
            )
        };
        close(m.ce.full.all, mean_over(&ce, &full, &all, &truth));
        close(
            m.ce.restricted.all,
            mean_over(&ce, &restricted, &all, &truth),
        );
        close(m.ce.excluded.all, mean_over(&ce, &excluded, &train, &given));
        close(
            m.ce.restricted.corrupt.unwrap(),
            mean_over(&ce, &restricted, &corrupt, &given),
        );
        close(
            m.ce.excluded.corrupt.unwrap(),
            mean_over(&ce, &excluded, &corrupt, &given),
        );
        let mse_m = m.mse.unwrap();
        close(
            mse_m.restricted.all,
            mean_over(&mse, &restricted, &all, &truth),
        );
        close(
            mse_m.excluded.all,
            mean_over(&mse, &excluded, &train, &given),
        );
        close(
            mse_m.full.corrupt.unwrap(),
            mean_over(&mse, &full, &corrupt, &given),
        );
        // The pitfall: masking frequency 2 in a and in b separately (an outer product of
        // 1-D masks) keeps the 8 components of the 2-D frequency (2, 2) block and the
        // marginals, not the 2 directions of a ± b: its restricted outputs differ.
        let mut masked = vec![0.0f64; n * p];
        let keep = [0usize, 3, 4];
        for cl in 0..p {
            for &i in &keep {
                for &j in &keep {
                    if i == 0 && j == 0 {
                        continue;
                    }
                    let f = |(x, y): Pair| b_at(&b, i, x, p) * b_at(&b, j, y, p);
                    let coef: f64 = (0..n)
                        .map(|r| f(table.pairs[r]) * logits[r * p + cl] as f64)
                        .sum();
                    for r in 0..n {
                        masked[r * p + cl] += coef * f(table.pairs[r]);
                    }
                }
            }
        }
        let mask_energy: f64 = masked.iter().map(|x| x * x).sum();
        assert!(
            mask_energy > 2.0 * key_energy,
            "the outer-product mask keeps {mask_energy}, the key directions {key_energy}"
        );
    }
}

fn b_at(b: &[f64], i: usize, x: u32, p: usize) -> f64 {
    b[i * p + x as usize]
}

/// The copies compiled for AVX2 / AVX-512 give the same bits as the plain code.
#[test]
fn the_vectorised_copies_give_the_same_bits() {
    let p = 13usize;
    let split = Split::new(p, crate::data::Operation::Add, 0.5, 1).unwrap();
    let labels = split.corrupt(0.2, Default::default(), 2).unwrap();
    let table = PairTable::new(&split, Loss::Mse).unwrap();
    let mut seed = 7u64;
    let n = p * p;
    let logits: Vec<f32> = (0..n * p).map(|_| lcg(&mut seed) as f32 * 9.0).collect();
    let proj: Vec<f64> = (0..p * p).map(|_| lcg(&mut seed)).collect();
    let restricted: Vec<f64> = (0..p * p).map(|_| lcg(&mut seed) * 4.0).collect();
    let stats: Vec<(f64, f64)> = restricted.chunks_exact(p).map(lse_and_sq).collect();
    let rows = Rows {
        table: &table,
        logits: &logits,
        labels: &labels.labels,
        corrupted: &labels.corrupted,
        proj: &proj,
        restricted: &restricted,
        stats: &stats,
    };
    let (a, b) = (row_sums(&rows, 0, n), row_sums_body(&rows, 0, n));
    for (x, y) in [
        (a.full, b.full),
        (a.restricted, b.restricted),
        (a.excluded, b.excluded),
    ] {
        for (u, v) in x.sums.iter().flatten().zip(y.sums.iter().flatten()) {
            assert_eq!(u.to_bits(), v.to_bits());
        }
    }
    let hidden: Vec<f32> = (0..n * 5).map(|_| lcg(&mut seed) as f32).collect();
    let (mut d1, mut d2) = (vec![0.0f32; p * 5], vec![0.0f32; p * 5]);
    crate::metrics::fourier::tests_marginal(&mut d1, &mut d2, p, &table.pairs, &hidden);
    assert_eq!(d1, d2);
}
