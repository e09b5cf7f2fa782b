//! Low-level compute: the matrix product (the `gemm` crate, runtime CPU dispatch), the
//! thread pool, and flush-to-zero / denormals-are-zero on every computing thread.

use std::sync::Once;

/// A strided view of a row-major or transposed matrix: element `(i, j)` is
/// `data[i * rs + j * cs]`.
#[derive(Clone, Copy)]
pub struct Mat<'a> {
    pub data: &'a [f32],
    pub rs: usize,
    pub cs: usize,
}

impl<'a> Mat<'a> {
    /// Row-major `rows × cols`.
    pub fn rows(data: &'a [f32], cols: usize) -> Mat<'a> {
        Mat {
            data,
            rs: cols,
            cs: 1,
        }
    }
    /// The transpose of a row-major matrix with `cols` columns.
    pub fn transposed(data: &'a [f32], cols: usize) -> Mat<'a> {
        Mat {
            data,
            rs: 1,
            cs: cols,
        }
    }
    fn check(&self, r: usize, c: usize, what: &str) {
        if r > 0 && c > 0 {
            let last = (r - 1) * self.rs + (c - 1) * self.cs;
            assert!(
                last < self.data.len(),
                "{what}: {r}×{c} view exceeds its buffer"
            );
        }
    }
}

/// `dst (m × n, row-major) = [dst +] lhs (m × k) · rhs (k × n)` on the calling thread.
pub fn matmul(dst: &mut [f32], m: usize, n: usize, k: usize, lhs: Mat, rhs: Mat, accumulate: bool) {
    matmul_par(dst, m, n, k, lhs, rhs, accumulate, 1)
}

/// As [`matmul`], spread over `threads` threads of the current rayon pool.
#[allow(clippy::too_many_arguments)]
pub fn matmul_par(
    dst: &mut [f32],
    m: usize,
    n: usize,
    k: usize,
    lhs: Mat,
    rhs: Mat,
    accumulate: bool,
    threads: usize,
) {
    assert!(dst.len() >= m * n, "matmul: destination too small");
    lhs.check(m, k, "matmul lhs");
    rhs.check(k, n, "matmul rhs");
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            dst[..m * n].fill(0.0);
        }
        return;
    }
    let par = if threads > 1 {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: the views were bounds-checked above; `dst` is exclusively borrowed and does not
    // alias `lhs` or `rhs` (Rust's borrow rules).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            lhs.data.as_ptr(),
            lhs.cs as isize,
            lhs.rs as isize,
            rhs.data.as_ptr(),
            rhs.cs as isize,
            rhs.rs as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            par,
        )
    }
}

/// Sets flush-to-zero and denormals-are-zero for SSE/AVX arithmetic on the calling thread.
///
/// Under strong weight decay the weights decay toward zero; subnormal arithmetic is many
/// times slower on x86, and with FTZ/DAZ the weights reach exactly 0 instead (see
/// `docs/NUMERICS.md`).
pub fn flush_denormals() {
    #[cfg(target_arch = "x86_64")]
    {
        let mut csr: u32 = 0;
        // SAFETY: stmxcsr/ldmxcsr read and write the calling thread's SSE control register;
        // setting bits 15 (FTZ) and 6 (DAZ) changes only how subnormals are treated.
        unsafe {
            std::arch::asm!("stmxcsr [{}]", in(reg) &mut csr, options(nostack));
            csr |= (1 << 15) | (1 << 6);
            std::arch::asm!("ldmxcsr [{}]", in(reg) &csr, options(nostack, readonly));
        }
    }
}

static POOL: Once = Once::new();

/// Builds the global rayon pool (with `threads` workers, 0 = one per core), each worker with
/// flush-to-zero set. Later calls do nothing. Results never depend on the thread count.
pub fn init_threads(threads: usize) {
    POOL.call_once(|| {
        // candle (the Transformer's autograd) keeps its own pool of `CANDLE_NUM_THREADS − 1`
        // workers beside the caller, sized by the machine unless told: it gets the same count.
        // Set before any candle operation, while this process has one thread.
        if threads > 0 && std::env::var_os("CANDLE_NUM_THREADS").is_none() {
            std::env::set_var("CANDLE_NUM_THREADS", threads.to_string());
        }
        let mut b = rayon::ThreadPoolBuilder::new().start_handler(|_| flush_denormals());
        if threads > 0 {
            b = b.num_threads(threads);
        }
        // An already-built global pool (e.g. by a host program) is kept; its threads then
        // compute without FTZ unless the host set it.
        let _ = b.build_global();
    });
    flush_denormals();
}
