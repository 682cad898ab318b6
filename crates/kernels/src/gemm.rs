//! A bounds-checked, safe front end to the `gemm` crate's f32 matrix multiply (the kernel
//! candle-core itself uses), taking each operand as a slice with arbitrary row and column
//! strides so that transposed operands are read in place, never copied.
#![allow(unsafe_code, reason = "the gemm crate's entry point takes raw pointers; every call is bounds-checked first")]

/// A read-only matrix: element `(i, j)` is `data[i * rs + j * cs]`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Mat<'a> {
    pub data: &'a [f32],
    pub rs: usize,
    pub cs: usize,
}

impl<'a> Mat<'a> {
    /// A row-major matrix with `cols` columns.
    pub fn rows(data: &'a [f32], cols: usize) -> Self {
        Self { data, rs: cols, cs: 1 }
    }

    /// The transpose of a row-major matrix with `cols` columns (read in place).
    pub fn rows_t(data: &'a [f32], cols: usize) -> Self {
        Self { data, rs: 1, cs: cols }
    }
}

/// How many threads a multiply may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Par {
    /// The calling thread only.
    Seq,
    /// Rayon's current pool.
    Rayon,
}

/// Largest index `(rows - 1) * rs + (cols - 1) * cs` touched by a `rows x cols` view, or `None`
/// when the view is empty.
fn extent(rows: usize, cols: usize, rs: usize, cs: usize) -> Option<usize> {
    if rows == 0 || cols == 0 {
        return None;
    }
    Some((rows - 1) * rs + (cols - 1) * cs)
}

/// True when distinct `(i, j)` of a `rows x cols` view with these strides are distinct
/// elements (so the multiply's threads never write the same element).
fn injective(rows: usize, cols: usize, rs: usize, cs: usize) -> bool {
    // Sort the two axes by stride; the larger stride must step over the whole smaller axis.
    let (mut a, mut b) = ((rows, rs), (cols, cs));
    if a.1 > b.1 {
        std::mem::swap(&mut a, &mut b);
    }
    let (small_n, small_s) = a;
    let (big_n, big_s) = b;
    (small_n <= 1 || small_s >= 1) && (big_n <= 1 || big_s >= small_n.max(1) * small_s.max(1))
}

fn check(what: &str, len: usize, rows: usize, cols: usize, rs: usize, cs: usize) {
    if let Some(e) = extent(rows, cols, rs, cs) {
        assert!(e < len, "gemm: {what} view {rows}x{cols} (strides {rs}, {cs}) exceeds its {len} elements");
    }
}

/// `dst (m x n) = [dst +] a (m x k) · b (k x n)`, with `dst` row-major-or-not as its strides say.
///
/// Panics when a view runs past its slice or `dst`'s view maps two positions to one element
/// (internal errors of this crate, never user input: callers validate shapes first).
#[allow(clippy::too_many_arguments, reason = "the three operands of a multiply with their strides")]
pub(crate) fn gemm(
    m: usize,
    n: usize,
    k: usize,
    dst: &mut [f32],
    dst_rs: usize,
    dst_cs: usize,
    accumulate: bool,
    a: Mat<'_>,
    b: Mat<'_>,
    par: Par,
) {
    if m == 0 || n == 0 {
        return;
    }
    check("dst", dst.len(), m, n, dst_rs, dst_cs);
    assert!(injective(m, n, dst_rs, dst_cs), "gemm: dst view {m}x{n} (strides {dst_rs}, {dst_cs}) overlaps itself");
    if k == 0 {
        if !accumulate {
            for i in 0..m {
                for j in 0..n {
                    dst[i * dst_rs + j * dst_cs] = 0.0;
                }
            }
        }
        return;
    }
    check("lhs", a.data.len(), m, k, a.rs, a.cs);
    check("rhs", b.data.len(), k, n, b.rs, b.cs);
    let parallelism = match par {
        Par::Seq => gemm::Parallelism::None,
        Par::Rayon => {
            let t = rayon::current_num_threads();
            if t > 1 { gemm::Parallelism::Rayon(t) } else { gemm::Parallelism::None }
        }
    };
    let s = |v: usize| v as isize;
    // SAFETY: every element the multiply reads or writes lies inside its slice (checked just
    // above against each view's largest index, strides being non-negative); `dst` is a unique
    // borrow, so it aliases neither operand, and its view is injective, so no two threads of
    // the multiply write one element.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            s(dst_cs),
            s(dst_rs),
            accumulate,
            a.data.as_ptr(),
            s(a.cs),
            s(a.rs),
            b.data.as_ptr(),
            s(b.cs),
            s(b.rs),
            1.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(m: usize, n: usize, k: usize, a: Mat<'_>, b: Mat<'_>) -> Vec<f32> {
        let mut out = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                out[i * n + j] = (0..k).map(|p| a.data[i * a.rs + p * a.cs] * b.data[p * b.rs + j * b.cs]).sum();
            }
        }
        out
    }

    #[test]
    fn strided_operands_match_a_naive_product() {
        let (m, n, k) = (7, 5, 3);
        let a: Vec<f32> = (0..m * k).map(|v| v as f32 * 0.1 - 1.0).collect();
        let b: Vec<f32> = (0..k * n).map(|v| (v as f32 * 0.37).sin()).collect();
        for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
            let av = if ta { Mat::rows_t(&a, m) } else { Mat::rows(&a, k) };
            let bv = if tb { Mat::rows_t(&b, k) } else { Mat::rows(&b, n) };
            let want = naive(m, n, k, av, bv);
            let mut got = vec![1.0; m * n];
            gemm(m, n, k, &mut got, n, 1, false, av, bv, Par::Seq);
            assert!(got.iter().zip(&want).all(|(g, w)| (g - w).abs() < 1e-5));
            // Column-major destination, accumulating onto ones.
            let mut acc = vec![1.0; m * n];
            gemm(m, n, k, &mut acc, 1, m, true, av, bv, Par::Rayon);
            for i in 0..m {
                for j in 0..n {
                    assert!((acc[j * m + i] - want[i * n + j] - 1.0).abs() < 1e-5);
                }
            }
        }
    }

    #[test]
    fn injectivity() {
        assert!(injective(3, 4, 4, 1));
        assert!(injective(3, 4, 1, 3));
        assert!(!injective(3, 4, 2, 1));
        assert!(injective(1, 4, 0, 1));
        assert!(!injective(2, 4, 0, 1));
    }
}
