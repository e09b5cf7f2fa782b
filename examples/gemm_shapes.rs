use grokscope::kernels::{matmul, Mat};
use std::time::Instant;
fn main() {
    let (rows, n, p) = (256usize, 500usize, 97usize);
    let y = vec![0.1f32; rows * n];
    let w = vec![0.1f32; p * n];
    let mut lg = vec![0.0f32; rows * p];
    let mut gw = vec![0.0f32; p * n];
    let mut dy = vec![0.0f32; rows * n];
    let reps = 2000;
    for (name, which) in [("logits", 0), ("dW", 1), ("dy", 2)] {
        let t = Instant::now();
        for _ in 0..reps {
            match which {
                0 => matmul(
                    &mut lg,
                    rows,
                    p,
                    n,
                    Mat::rows(&y, n),
                    Mat::transposed(&w, n),
                    false,
                ),
                1 => matmul(
                    &mut gw,
                    p,
                    n,
                    rows,
                    Mat::transposed(&lg, p),
                    Mat::rows(&y, n),
                    true,
                ),
                _ => matmul(
                    &mut dy,
                    rows,
                    n,
                    p,
                    Mat::rows(&lg, p),
                    Mat::rows(&w, n),
                    false,
                ),
            }
        }
        let s = t.elapsed().as_secs_f64() / reps as f64;
        println!(
            "{name}: {:.1} us, {:.1} GFLOP/s (one core)",
            s * 1e6,
            2.0 * (rows * n * p) as f64 / s / 1e9
        );
    }
}
