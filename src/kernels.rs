//! Low-level compute: the matrix product (the `gemm` crate, runtime CPU dispatch), the
//! thread pool, and flush-to-zero / denormals-are-zero on every computing thread.

use std::sync::Once;

/// The floating-point types the engines compute in: `f32` for training, `f64` for the
/// gradient checks against the oracle.
pub trait Real:
    Copy
    + Send
    + Sync
    + Default
    + PartialOrd
    + std::fmt::Debug
    + std::ops::Add<Output = Self>
    + std::ops::Sub<Output = Self>
    + std::ops::Mul<Output = Self>
    + std::ops::Div<Output = Self>
    + std::ops::Neg<Output = Self>
    + std::ops::AddAssign
    + std::ops::SubAssign
    + std::ops::MulAssign
    + 'static
{
    const ZERO: Self;
    const ONE: Self;
    fn from_f64(x: f64) -> Self;
    fn to_f64(self) -> f64;
    fn from_f32(x: f32) -> Self;
    fn to_f32(self) -> f32;
    fn exp(self) -> Self;
    fn ln(self) -> Self;
    fn sqrt(self) -> Self;
    fn erf(self) -> Self;
    fn max(self, other: Self) -> Self;
}

macro_rules! real {
    ($t:ty, $erf:path) => {
        impl Real for $t {
            const ZERO: $t = 0.0;
            const ONE: $t = 1.0;
            fn from_f64(x: f64) -> $t {
                x as $t
            }
            fn to_f64(self) -> f64 {
                self as f64
            }
            fn from_f32(x: f32) -> $t {
                x as $t
            }
            fn to_f32(self) -> f32 {
                self as f32
            }
            fn exp(self) -> $t {
                <$t>::exp(self)
            }
            fn ln(self) -> $t {
                <$t>::ln(self)
            }
            fn sqrt(self) -> $t {
                <$t>::sqrt(self)
            }
            fn erf(self) -> $t {
                $erf(self)
            }
            fn max(self, other: $t) -> $t {
                <$t>::max(self, other)
            }
        }
    };
}

real!(f32, libm::erff);
real!(f64, libm::erf);

/// A strided view of a row-major or transposed matrix: element `(i, j)` is
/// `data[i * rs + j * cs]`.
#[derive(Clone, Copy)]
pub struct Mat<'a, T = f32> {
    pub data: &'a [T],
    pub rs: usize,
    pub cs: usize,
}

impl<'a, T> Mat<'a, T> {
    /// Row-major `rows × cols`.
    pub fn rows(data: &'a [T], cols: usize) -> Mat<'a, T> {
        Mat {
            data,
            rs: cols,
            cs: 1,
        }
    }
    /// The transpose of a row-major matrix with `cols` columns.
    pub fn transposed(data: &'a [T], cols: usize) -> Mat<'a, T> {
        Mat {
            data,
            rs: 1,
            cs: cols,
        }
    }
    /// Row-major with row stride `rs` (a block of columns of a wider matrix).
    pub fn strided(data: &'a [T], rs: usize) -> Mat<'a, T> {
        Mat { data, rs, cs: 1 }
    }
    /// The transpose of a row-major matrix with row stride `rs`.
    pub fn strided_t(data: &'a [T], rs: usize) -> Mat<'a, T> {
        Mat {
            data,
            rs: 1,
            cs: rs,
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
pub fn matmul<T: Real>(
    dst: &mut [T],
    m: usize,
    n: usize,
    k: usize,
    lhs: Mat<T>,
    rhs: Mat<T>,
    accumulate: bool,
) {
    gemm_into(dst, n, m, n, k, lhs, rhs, accumulate, 1)
}

/// As [`matmul`], spread over `threads` threads of the current rayon pool.
#[allow(clippy::too_many_arguments)]
pub fn matmul_par<T: Real>(
    dst: &mut [T],
    m: usize,
    n: usize,
    k: usize,
    lhs: Mat<T>,
    rhs: Mat<T>,
    accumulate: bool,
    threads: usize,
) {
    gemm_into(dst, n, m, n, k, lhs, rhs, accumulate, threads)
}

/// `dst (m × n, row stride dst_rs) = [dst +] lhs (m × k) · rhs (k × n)`.
#[allow(clippy::too_many_arguments)]
pub fn gemm_into<T: Real>(
    dst: &mut [T],
    dst_rs: usize,
    m: usize,
    n: usize,
    k: usize,
    lhs: Mat<T>,
    rhs: Mat<T>,
    accumulate: bool,
    threads: usize,
) {
    if m == 0 || n == 0 {
        return;
    }
    assert!(
        n <= dst_rs && dst.len() >= (m - 1) * dst_rs + n,
        "matmul: destination too small"
    );
    lhs.check(m, k, "matmul lhs");
    rhs.check(k, n, "matmul rhs");
    if k == 0 {
        if !accumulate {
            for r in 0..m {
                dst[r * dst_rs..r * dst_rs + n].fill(T::ZERO);
            }
        }
        return;
    }
    let par = if threads > 1 {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: the views were bounds-checked above; `dst` is exclusively borrowed and does not
    // alias `lhs` or `rhs` (Rust's borrow rules); `T` is f32 or f64, which gemm supports.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            dst_rs as isize,
            accumulate,
            lhs.data.as_ptr(),
            lhs.cs as isize,
            lhs.rs as isize,
            rhs.data.as_ptr(),
            rhs.cs as isize,
            rhs.rs as isize,
            T::ONE,
            T::ONE,
            false,
            false,
            false,
            par,
        )
    }
}

/// Whether the CPU has AVX2 and FMA: then the hot loops of the progress measures run in
/// copies compiled for them ([`avx2_copy!`]).
pub fn has_avx2_fma() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Whether the CPU has AVX-512F besides AVX2 and FMA.
pub fn has_avx512() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        has_avx2_fma() && std::arch::is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// `avx2_copy!(fn name(args) -> R = body_fn)` defines `name`, which calls the
/// `#[inline(always)]` function `body_fn(args)` inside a copy compiled for AVX2 and FMA when
/// the CPU has them (and in one for AVX-512 where it has that), so that its loops vectorise 4
/// or 8 f64 (8 or 16 f32) wide instead of SSE2's 2 (4).
/// The results are the same bits either way: the same IEEE operations in the same order
/// (Rust never contracts `a·b + c` into an FMA by itself). Measured on the progress
/// measures' log-sum-exps: 2.5 against 4.8 ns per entry (docs/PROGRESS.md, "Cost").
macro_rules! avx2_copy {
    ($vis:vis fn $name:ident $(<$($lt:lifetime),*>)? ($($arg:ident : $ty:ty),* $(,)?) -> $ret:ty = $body:path) => {
        $vis fn $name $(<$($lt),*>)? ($($arg: $ty),*) -> $ret {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx2,fma")]
                fn wide $(<$($lt),*>)? ($($arg: $ty),*) -> $ret {
                    $body($($arg),*)
                }
                #[target_feature(enable = "avx2,fma")]
                fn fast $(<$($lt),*>)? ($($arg: $ty),*) -> $ret {
                    $body($($arg),*)
                }
                if $crate::kernels::has_avx512() {
                    // SAFETY: the CPU has the features `wide` is compiled for.
                    return unsafe { wide($($arg),*) };
                }
                if $crate::kernels::has_avx2_fma() {
                    // SAFETY: the CPU has the features `fast` is compiled for.
                    return unsafe { fast($($arg),*) };
                }
            }
            $body($($arg),*)
        }
    };
}
pub(crate) use avx2_copy;

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
